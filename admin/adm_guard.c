/* admin/adm_guard.c -- the guard: every second y is judged against x over the same window, and
 * a failure rolls back, pauses the ramp or steps the weight down (docs/monitoring.md). */
#include "admin/adm.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/xf_judge.h"

static const char *const adm_verdict_names[ADM_VERDICT_COUNT] = {"off", "inconclusive", "pass",
                                                                 "fail"};
static const char *const adm_guard_action_names[] = {"rollback", "pause", "step_down"};

const char *
adm_verdict_name(enum adm_verdict v)
{
    return v < ADM_VERDICT_COUNT ? adm_verdict_names[v] : "?";
}

void
adm_window(struct adm_state *st, int c, unsigned seconds, struct xf_win *out)
{
    const struct xf_mon *m;

    memset(out, 0, sizeof(*out));
    if (st->monitor.mon == NULL)
        return;
    m = st->monitor.mon(st->monitor.arg);
    xf_mon_window(m, c, xf_now_ms() / 1000u, seconds, out);
}

bool
adm_guard_is_on(const struct adm_state *st)
{
    return st->cfg->guard.configured && st->guard.on;
}

/* "p < 0.001" or "p = 0.042". */
static const char *
adm_guard_p(double p, char *buf, size_t size)
{
    if (p < 0.001)
        snprintf(buf, size, "p < 0.001");
    else
        snprintf(buf, size, "p = %.3f", p);
    return buf;
}

/* "850us", "1.2ms", "2.50s". */
static const char *
adm_guard_us(uint64_t us, char *buf, size_t size)
{
    if (us < 1000)
        snprintf(buf, size, "%lluus", (unsigned long long)us);
    else if (us < 1000000)
        snprintf(buf, size, "%.1fms", (double)us / 1000.0);
    else
        snprintf(buf, size, "%.2fs", (double)us / 1e6);
    return buf;
}

/* Values of a window above `limit` microseconds (whole buckets from the one holding it). */
static uint64_t
adm_guard_above(const struct xf_win *w, uint64_t limit)
{
    uint64_t n = 0;

    for (unsigned b = xf_lat_bucket(limit) + 1; b < XF_LAT_BUCKETS; b++)
        n += w->lat[b];
    return n;
}

/*
 * The verdict over one window: the error rule (two-proportion test), the p99 rule (the share of
 * each side above max_latency_ratio x x's p99, two-proportion test) and the median rule (a
 * Mann-Whitney rank test over the whole histograms). A rule fails when its limit is passed and
 * the difference is significant at the configured confidence; passed but not significant is
 * inconclusive. Writes the reason in words.
 */
static enum adm_verdict
adm_guard_judge(const struct cfg_guard *g, unsigned secs, const struct xf_win *wx,
                const struct xf_win *wy, struct adm_guard_side *sx, struct adm_guard_side *sy,
                char *why, size_t size)
{
    static const double q[2] = {0.5, 0.99};
    double alpha = 1.0 - g->confidence, rx, ry, p_err, auc, p_mw, p_tail;
    uint64_t px[2], py[2];
    bool err_over, p99_over, p50_over, unsure = false;
    char a[3][24], b[3][24], pe[24], pt[24], pm[24];
    size_t o;

    sx->requests = wx->requests;
    sx->errors = wx->errors;
    sy->requests = wy->requests;
    sy->errors = wy->errors;
    xf_win_percentiles(wx, q, 2, px);
    xf_win_percentiles(wy, q, 2, py);
    sx->p50_us = px[0];
    sx->p99_us = px[1];
    sy->p50_us = py[0];
    sy->p99_us = py[1];
    if (wx->requests < g->min_requests || wy->requests < g->min_requests) {
        snprintf(why, size, "too few requests over %us: y %llu, x %llu (min_requests %u)", secs,
                 (unsigned long long)wy->requests, (unsigned long long)wx->requests,
                 g->min_requests);
        return ADM_VERDICT_INCONCLUSIVE;
    }
    rx = (double)wx->errors / (double)wx->requests;
    ry = (double)wy->errors / (double)wy->requests;
    p_err = xf_two_prop_p(wx->errors, wx->requests, wy->errors, wy->requests);
    err_over = (ry - rx) * 10000.0 > (double)g->max_error_delta_bp;
    if (err_over && p_err < alpha) {
        snprintf(why, size, "y error rate %.1f%% vs x %.1f%% over %us (%s)", ry * 100.0, rx * 100.0,
                 secs, adm_guard_p(p_err, pe, sizeof(pe)));
        return ADM_VERDICT_FAIL;
    }
    unsure |= err_over;
    p_mw = xf_mann_whitney_p(wx->lat, wy->lat, XF_LAT_BUCKETS, &auc);
    /* Over the ratio, and by more than min_latency_delta: jitter of a few hundred microseconds
     * on a fast path is not a slower y. */
    p99_over = wx->n > 0 && wy->n > 0 && (double)py[1] > g->max_latency_ratio * (double)px[1] &&
               py[1] >= px[1] + g->min_latency_delta_us;
    p50_over = wx->n > 0 && wy->n > 0 && (double)py[0] > g->max_latency_ratio * (double)px[0] &&
               py[0] >= px[0] + g->min_latency_delta_us;
    p_tail = 1.0;
    if (p99_over) {
        uint64_t limit = (uint64_t)(g->max_latency_ratio * (double)px[1]);

        p_tail =
            xf_two_prop_p(adm_guard_above(wx, limit), wx->n, adm_guard_above(wy, limit), wy->n);
    }
    adm_guard_us(py[1], a[0], sizeof(a[0]));
    adm_guard_us(px[1], a[1], sizeof(a[1]));
    adm_guard_us(py[0], b[0], sizeof(b[0]));
    adm_guard_us(px[0], b[1], sizeof(b[1]));
    if ((p99_over && p_tail < alpha) || (p50_over && p_mw < alpha)) {
        if (p99_over && p_tail < alpha)
            snprintf(why, size, "y p99 %s vs x %s over %us, ratio %.2f > %.2f (%s)", a[0], a[1],
                     secs, px[1] ? (double)py[1] / (double)px[1] : 0.0, g->max_latency_ratio,
                     adm_guard_p(p_tail, pt, sizeof(pt)));
        else
            snprintf(why, size, "y median %s vs x %s over %us, ratio %.2f > %.2f (rank test %s)",
                     b[0], b[1], secs, px[0] ? (double)py[0] / (double)px[0] : 0.0,
                     g->max_latency_ratio, adm_guard_p(p_mw, pm, sizeof(pm)));
        return ADM_VERDICT_FAIL;
    }
    unsure |= p99_over || p50_over;
    o = (size_t)snprintf(why, size, "y error rate %.1f%% vs x %.1f%% (%s); ", ry * 100.0,
                         rx * 100.0, adm_guard_p(p_err, pe, sizeof(pe)));
    if (o < size)
        snprintf(why + o, size - o, "y p99 %s vs x %s, median %s vs %s (rank test %s); over %us%s",
                 a[0], a[1], b[0], b[1], adm_guard_p(p_mw, pm, sizeof(pm)), secs,
                 unsure ? ": over a limit, not significant yet" : "");
    return unsure ? ADM_VERDICT_INCONCLUSIVE : ADM_VERDICT_PASS;
}

/* The seconds the window covers now: guard.window, but none from before the last trip, reset
 * or `guard on` (the requests a verdict already acted on are not judged again). */
static unsigned
adm_guard_seconds(const struct adm_state *st)
{
    uint64_t now_s = xf_now_ms() / 1000u, since = st->guard.since_s;
    unsigned w = st->cfg->guard.window_s;

    if (since != 0 && now_s > since && now_s - since < w)
        return (unsigned)(now_s - since);
    return since != 0 && now_s <= since ? 0 : w;
}

/* Judging starts afresh from the next whole second. */
static void
adm_guard_restart(struct adm_guard *gd)
{
    gd->since_s = xf_now_ms() / 1000u + 1u;
}

/* Acts on a failure: the configured action, recorded with the verdict's words. */
static void
adm_guard_act(struct adm_state *st)
{
    const struct cfg_guard *g = &st->cfg->guard;
    struct adm_guard *gd = &st->guard;
    struct bal_snapshot *snap = bal_router_acquire(st->router);
    unsigned cur = snap->weight_bp, to = cur, old, target, step;
    char done[64], text[ADM_EVENT_VALUE], w[ADM_WEIGHT_TEXT];

    bal_snapshot_unref(snap);
    gd->tripped = true;
    gd->trips++;
    adm_guard_restart(gd);
    switch (g->action) {
    case CFG_GUARD_ROLLBACK:
        adm_ramp_stop(st, -1, -1, "guard", &target);
        to = 0;
        snprintf(done, sizeof(done), "rolled back");
        break;
    case CFG_GUARD_PAUSE:
        if (st->ramp.state == ADM_RAMP_RUNNING) {
            adm_ramp_pause(st, -1, -1, "guard");
            snprintf(done, sizeof(done), "ramp paused at %s", adm_weight_text(cur, w));
        } else {
            snprintf(done, sizeof(done), "weight held at %s", adm_weight_text(cur, w));
        }
        break;
    case CFG_GUARD_STEP_DOWN:
        step = st->ramp.state != ADM_RAMP_NONE && st->ramp.step_bp > 0 ? st->ramp.step_bp
                                                                       : g->step_down_bp;
        adm_ramp_pause(st, -1, -1, "guard");
        to = cur > step ? cur - step : 0;
        snprintf(done, sizeof(done), "stepped down to %s", adm_weight_text(to, w));
        break;
    }
    snprintf(text, sizeof(text), "guard: %.180s: %.60s", gd->reason, done);
    memcpy(gd->trip, text, sizeof(text));
    adm_events_add(&st->events, -1, -1, "guard", "guard", "armed", text);
    XF_LOG(XF_LOG_WARN, "admin", "event=guard_tripped action=%s detail=\"%s\"",
           adm_guard_action_names[g->action], text);
    if (to != cur && adm_weight_apply(st, -1, -1, "guard", to, &old) == -1)
        XF_LOG(XF_LOG_ERR, "admin", "event=guard_action_failed reason=\"out of memory\"");
    adm_state_changed(st);
}

/* A ramp step the guard holds is tried again after each verdict (its timer is off meanwhile). */
static void
adm_guard_drive_ramp(struct adm_state *st)
{
    if (st->ramp.state == ADM_RAMP_RUNNING && st->ramp.guard_held_ms != 0)
        adm_ramp_tick(st);
}

void
adm_guard_tick(struct adm_state *st)
{
    const struct cfg_guard *g = &st->cfg->guard;
    struct adm_guard *gd = &st->guard;
    struct xf_win *w;
    enum adm_verdict v;
    unsigned secs;

    adm_report_tick(st);
    if (!adm_guard_is_on(st)) {
        gd->verdict = ADM_VERDICT_OFF;
        gd->pass_since_ms = 0;
        snprintf(gd->reason, sizeof(gd->reason), "%s",
                 g->configured ? "the guard is off" : "no guard is configured");
        adm_guard_drive_ramp(st);
        return;
    }
    w = calloc(2, sizeof(*w));
    if (w == NULL)
        return;
    secs = adm_guard_seconds(st);
    adm_window(st, CFG_CLUSTER_X, secs, &w[0]);
    adm_window(st, CFG_CLUSTER_Y, secs, &w[1]);
    v = adm_guard_judge(g, secs, &w[0], &w[1], &gd->x, &gd->y, gd->reason, sizeof(gd->reason));
    free(w);
    if (v != gd->verdict)
        XF_LOG(v == ADM_VERDICT_FAIL ? XF_LOG_WARN : XF_LOG_INFO, "admin",
               "event=guard_verdict verdict=%s was=%s detail=\"%s\"", adm_verdict_name(v),
               adm_verdict_name(gd->verdict), gd->reason);
    gd->verdict = v;
    gd->verdicts[v]++;
    if (v != ADM_VERDICT_PASS)
        gd->pass_since_ms = 0;
    else if (gd->pass_since_ms == 0)
        gd->pass_since_ms = (int64_t)st->mono_ms();
    if (v == ADM_VERDICT_FAIL && !gd->tripped)
        adm_guard_act(st);
    adm_guard_drive_ramp(st);
}

bool
adm_guard_allows_step(struct adm_state *st, int64_t now_ms)
{
    const struct adm_ramp *r = &st->ramp;
    struct bal_snapshot *snap;
    unsigned cur;

    if (!adm_guard_is_on(st))
        return !r->guarded;
    if (st->guard.tripped)
        return false;
    /* At weight 0 y carries nobody: there is nothing to judge before the first step. */
    snap = bal_router_acquire(st->router);
    cur = snap->weight_bp;
    bal_snapshot_unref(snap);
    if (cur == 0)
        return true;
    if (st->guard.verdict != ADM_VERDICT_PASS)
        return false;
    /* A guarded ramp's step needs a pass over a whole window of the step before's weight. */
    return !r->guarded || now_ms - r->last_step_ms >= (int64_t)st->cfg->guard.window_s * 1000;
}

bool
adm_guard_refuses_up(struct adm_state *st, struct adm_reply *r)
{
    if (!st->guard.tripped)
        return false;
    adm_reply_error(r, "the guard tripped (%s); \"guard reset\" first", st->guard.trip);
    return true;
}

static void
adm_guard_on_timer(evutil_socket_t fd, short what, void *arg)
{
    XF_UNUSED(fd);
    XF_UNUSED(what);
    adm_guard_tick(arg);
}

int
adm_guard_init(struct adm_state *st)
{
    struct timeval second = {1, 0};

    st->guard.on = st->cfg->guard.configured;
    st->guard.configured = st->cfg->guard.configured;
    st->guard.verdict = ADM_VERDICT_OFF;
    if (st->base == NULL)
        return 0;
    st->guard.timer = event_new(st->base, -1, EV_PERSIST, adm_guard_on_timer, st);
    if (st->guard.timer == NULL || event_add(st->guard.timer, &second) == -1)
        return -1;
    return 0;
}

void
adm_guard_fini(struct adm_state *st)
{
    if (st->guard.timer != NULL)
        event_free(st->guard.timer);
    st->guard.timer = NULL;
}

void
adm_guard_reconfigure(struct adm_state *st)
{
    /* A guard section added by a reload starts the guard; one that stays keeps `guard off`. */
    if (!st->cfg->guard.configured)
        st->guard.on = false;
    else if (!st->guard.configured)
        st->guard.on = true;
    st->guard.configured = st->cfg->guard.configured;
}

/* The guard's settings and latest verdict, a line each. */
static void
adm_guard_show(struct adm_state *st, struct adm_reply *r)
{
    const struct cfg_guard *g = &st->cfg->guard;
    const struct adm_guard *gd = &st->guard;
    char a[2][24], b[2][24];

    adm_reply_line(r,
                   "guard %s verdict=%s tripped=%s action=%s window=%us min_requests=%u "
                   "max_error_rate_delta=%u.%02u%% max_latency_ratio=%.2f "
                   "min_latency_delta=%ums confidence=%.2f%%",
                   adm_guard_is_on(st) ? "on" : "off", adm_verdict_name(gd->verdict),
                   gd->tripped ? "yes" : "no", adm_guard_action_names[g->action], g->window_s,
                   g->min_requests, g->max_error_delta_bp / 100, g->max_error_delta_bp % 100,
                   g->max_latency_ratio, g->min_latency_delta_us / 1000u, g->confidence * 100.0);
    adm_reply_line(r, "reason %s", gd->reason[0] != '\0' ? gd->reason : "-");
    if (gd->tripped)
        adm_reply_line(r, "trip %s", gd->trip);
    adm_reply_line(r, "x requests=%llu errors=%llu p50=%s p99=%s",
                   (unsigned long long)gd->x.requests, (unsigned long long)gd->x.errors,
                   adm_guard_us(gd->x.p50_us, a[0], sizeof(a[0])),
                   adm_guard_us(gd->x.p99_us, a[1], sizeof(a[1])));
    adm_reply_line(r, "y requests=%llu errors=%llu p50=%s p99=%s",
                   (unsigned long long)gd->y.requests, (unsigned long long)gd->y.errors,
                   adm_guard_us(gd->y.p50_us, b[0], sizeof(b[0])),
                   adm_guard_us(gd->y.p99_us, b[1], sizeof(b[1])));
}

enum adm_result
adm_cmd_guard(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
              struct adm_reply *r)
{
    struct adm_guard *gd = &st->guard;
    char cmd[96];

    adm_command_text(a, cmd, sizeof(cmd));
    if (adm_span_is(a->v[1], "show")) {
        adm_guard_show(st, r);
        return ADM_OK;
    }
    if (!st->cfg->guard.configured)
        return adm_reply_error(r, "no guard is configured (add a guard section and reload)");
    if (adm_span_is(a->v[1], "on") || adm_span_is(a->v[1], "off")) {
        bool on = adm_span_is(a->v[1], "on");

        if (gd->on == on) {
            adm_reply_line(r, "ok: the guard is already %s", on ? "on" : "off");
            return ADM_OK;
        }
        gd->on = on;
        gd->verdict = on ? ADM_VERDICT_INCONCLUSIVE : ADM_VERDICT_OFF;
        adm_guard_restart(gd);
        gd->pass_since_ms = 0;
        adm_events_add(&st->events, peer->uid, peer->pid, cmd, "guard", on ? "off" : "on",
                       on ? "on" : "off");
        XF_LOG(XF_LOG_INFO, "admin", "event=guard_%s uid=%ld pid=%ld", on ? "on" : "off", peer->uid,
               peer->pid);
        adm_reply_line(r, "ok: guard %s",
                       on ? "on: y is judged against x each second"
                          : "off: nothing is judged, nothing acts");
        return ADM_OK;
    }
    if (adm_span_is(a->v[1], "reset")) {
        if (!gd->tripped) {
            adm_reply_line(r, "ok: the guard has not tripped");
            return ADM_OK;
        }
        gd->tripped = false;
        gd->trip[0] = '\0';
        adm_guard_restart(gd);
        adm_events_add(&st->events, peer->uid, peer->pid, cmd, "guard", "tripped", "armed");
        XF_LOG(XF_LOG_INFO, "admin", "event=guard_reset uid=%ld pid=%ld", peer->uid, peer->pid);
        adm_reply_line(r, "ok: guard reset: the weight may go up again");
        return ADM_OK;
    }
    return adm_reply_error(r, "usage: guard on|off|show|reset");
}
