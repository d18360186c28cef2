/* admin/adm_ramp.c -- ramps: the weight moves to a target in even steps at an even pace. */
#include "admin/adm.h"

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ the schedule (pure) */

static unsigned
adm_ramp_distance(unsigned from_bp, unsigned to_bp)
{
    return from_bp < to_bp ? to_bp - from_bp : from_bp - to_bp;
}

int
adm_ramp_plan(struct adm_ramp *r, unsigned from_bp, unsigned to_bp, unsigned step_bp,
              uint64_t duration_ms, int64_t now_ms, struct xf_err *err)
{
    unsigned dist = adm_ramp_distance(from_bp, to_bp), n;
    char a[ADM_WEIGHT_TEXT], b[32], c[ADM_WEIGHT_TEXT], d[32], e[32];

    memset(r, 0, sizeof(*r));
    if (dist == 0) {
        xf_err_set(err, "the weight is already %s; nothing to ramp", adm_weight_text(to_bp, a));
        return -1;
    }
    if (duration_ms == 0) {
        xf_err_set(err, "the duration must be more than 0 (such as 30s, 10m or 1h)");
        return -1;
    }
    if (step_bp == 0) {
        /* 1 point, or larger for a short ramp: more than a step a second shows nothing more. */
        uint64_t n_max = XF_MAX(duration_ms / ADM_RAMP_DEFAULT_INTERVAL_MS, (uint64_t)1);

        step_bp = XF_MIN((unsigned)ADM_RAMP_DEFAULT_STEP, dist);
        if ((dist + step_bp - 1) / step_bp > n_max)
            step_bp = (unsigned)((dist + n_max - 1) / n_max);
    } else if (step_bp > dist) {
        xf_err_set(err, "the step (%s) is larger than the distance from %s to %s (%s)",
                   adm_weight_text(step_bp, a), adm_weight_text(from_bp, b),
                   adm_weight_text(to_bp, c), adm_weight_text(dist, d));
        return -1;
    } else if (duration_ms / ((dist + step_bp - 1) / step_bp) < ADM_RAMP_MIN_INTERVAL_MS) {
        n = (dist + step_bp - 1) / step_bp;
        xf_err_set(err,
                   "%u steps of %s over %s would come every %s; steps must be at least %s apart "
                   "(take a larger step or a longer duration)",
                   n, adm_weight_text(step_bp, a), adm_duration_text(duration_ms, d, sizeof(d)),
                   adm_duration_text(duration_ms / n, e, sizeof(e)),
                   adm_duration_text(ADM_RAMP_MIN_INTERVAL_MS, b, sizeof(b)));
        return -1;
    }
    r->state = ADM_RAMP_RUNNING;
    r->from_bp = from_bp;
    r->to_bp = to_bp;
    r->step_bp = step_bp;
    r->n_steps = (dist + step_bp - 1) / step_bp;
    r->duration_ms = duration_ms;
    r->start_ms = now_ms;
    r->uid = r->pid = -1;
    return 0;
}

unsigned
adm_ramp_weight_at(const struct adm_ramp *r, unsigned k)
{
    if (k >= r->n_steps)
        return r->to_bp;
    return r->from_bp < r->to_bp ? r->from_bp + k * r->step_bp : r->from_bp - k * r->step_bp;
}

int64_t
adm_ramp_due(const struct adm_ramp *r, unsigned k)
{
    return r->start_ms + (int64_t)((uint64_t)k * r->duration_ms / r->n_steps);
}

unsigned
adm_ramp_steps_due(const struct adm_ramp *r, int64_t now_ms)
{
    unsigned k = r->done;

    while (k < r->n_steps && adm_ramp_due(r, k + 1) <= now_ms)
        k++;
    return k;
}

void
adm_ramp_rebase(struct adm_ramp *r, int64_t now_from, int64_t now_to)
{
    r->start_ms += now_to - now_from;
    if (r->state == ADM_RAMP_PAUSED)
        r->paused_ms += now_to - now_from;
}

/* ------------------------------------------------------------------ the timer */

static unsigned adm_ramp_current(struct adm_state *st);
static void adm_ramp_guard_release(struct adm_state *st, int64_t now);

static int64_t
adm_ramp_now(const struct adm_state *st)
{
    return (int64_t)st->mono_ms();
}

/* Arms the timer for the next step of a running ramp (no-op without a timer). */
static void
adm_ramp_arm(struct adm_state *st, int64_t now)
{
    const struct adm_ramp *r = &st->ramp;
    int64_t delay;
    struct timeval tv;

    if (st->ramp_timer == NULL)
        return;
    evtimer_del(st->ramp_timer);
    if (r->state != ADM_RAMP_RUNNING || r->done >= r->n_steps)
        return;
    delay = XF_MAX(adm_ramp_due(r, r->done + 1) - now, (int64_t)0);
    tv.tv_sec = (time_t)(delay / 1000);
    tv.tv_usec = (suseconds_t)(delay % 1000 * 1000);
    evtimer_add(st->ramp_timer, &tv);
}

void
adm_ramp_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct adm_state *st = arg;

    XF_UNUSED(fd);
    XF_UNUSED(what);
    adm_ramp_tick(st);
}

const char *
adm_ramp_text(const struct adm_ramp *r, char *buf, size_t size)
{
    char to[ADM_WEIGHT_TEXT];

    snprintf(buf, size, "%s to %s", r->state == ADM_RAMP_PAUSED ? "paused" : "running",
             adm_weight_text(r->to_bp, to));
    return buf;
}

/*
 * How many of the steps up to k y can take now: the last step from r->done + 1 to k that
 * adm_capacity_check lets through (k for a forced ramp, and for a ramp down). When one is held
 * back, *cap_bp and `why` say why.
 */
static unsigned
adm_ramp_fit(struct adm_state *st, unsigned k, unsigned *cap_bp, char *why, size_t size)
{
    const struct adm_ramp *r = &st->ramp;
    struct bal_snapshot *snap;
    unsigned fit = r->done;

    if (r->force || k <= r->done)
        return k;
    snap = bal_router_acquire(st->router);
    while (fit < k &&
           adm_capacity_check(st, snap, adm_ramp_weight_at(r, fit + 1), cap_bp, why, size) == 0)
        fit++;
    bal_snapshot_unref(snap);
    return fit;
}

/* Pauses a running ramp whose next step y cannot take now (crossfade's decision, recorded in the
 * name of who started the ramp, as its steps are). */
static void
adm_ramp_hold(struct adm_state *st, int64_t now, unsigned cap_bp, const char *why)
{
    struct adm_ramp *r = &st->ramp;
    char was[64], held[ADM_EVENT_VALUE], w[3][ADM_WEIGHT_TEXT], logged[2][ADM_WHY_SIZE * 2];
    const char *missing = strstr(why, "; missing: ");
    size_t missing_len = missing != NULL ? strcspn(missing, ")") : 0;

    adm_ramp_text(r, was, sizeof(was));
    /* Paused from when the held step was due (earlier than now after a late tick), so that a
     * resume takes it at once and the steps after it keep their pace. */
    r->state = ADM_RAMP_PAUSED;
    r->paused_ms = XF_MIN(adm_ramp_due(r, r->done + 1), now);
    r->capacity_paused = true;
    if (st->ramp_timer != NULL)
        evtimer_del(st->ramp_timer);
    /* The audit trail says which nodes y is missing, as the refusal of a command would. */
    snprintf(held, sizeof(held), "paused to %s at capacity %s%.*s", adm_weight_text(r->to_bp, w[0]),
             adm_weight_text(cap_bp, w[1]), (int)missing_len, missing != NULL ? missing : "");
    adm_events_add(&st->events, r->uid, r->pid, r->command, "ramp", was, held);
    XF_LOG(XF_LOG_WARN, "admin",
           "event=ramp_paused reason=capacity weight=%s next=%s capacity=%s step=%u/%u uid=%ld "
           "cmd=\"%s\" detail=\"%s\"",
           adm_weight_text(adm_ramp_weight_at(r, r->done), w[0]),
           adm_weight_text(adm_ramp_weight_at(r, r->done + 1), w[1]), adm_weight_text(cap_bp, w[2]),
           r->done, r->n_steps, r->uid, adm_log_text(r->command, logged[0], sizeof(logged[0])),
           adm_log_text(why, logged[1], sizeof(logged[1])));
    adm_state_changed(st);
}

void
adm_ramp_pause(struct adm_state *st, long uid, long pid, const char *cmd)
{
    struct adm_ramp *ramp = &st->ramp;
    char was[64], now_text[64], w[ADM_WEIGHT_TEXT];

    if (ramp->state != ADM_RAMP_RUNNING)
        return;
    adm_ramp_text(ramp, was, sizeof(was));
    adm_ramp_guard_release(st, adm_ramp_now(st));
    ramp->state = ADM_RAMP_PAUSED;
    ramp->paused_ms = adm_ramp_now(st);
    if (st->ramp_timer != NULL)
        evtimer_del(st->ramp_timer);
    adm_weight_text(adm_ramp_current(st), w);
    adm_events_add(&st->events, uid, pid, cmd, "ramp", was,
                   adm_ramp_text(ramp, now_text, sizeof(now_text)));
    XF_LOG(XF_LOG_INFO, "admin", "event=ramp_paused weight=%s step=%u/%u uid=%ld pid=%ld", w,
           ramp->done, ramp->n_steps, uid, pid);
    st->dirty = true;
}

/* A ramp held by the guard goes on: its schedule moves by the time it was held, so the steps
 * after it keep their pace. */
static void
adm_ramp_guard_release(struct adm_state *st, int64_t now)
{
    struct adm_ramp *r = &st->ramp;

    if (r->guard_held_ms == 0)
        return;
    if (now > r->guard_held_ms)
        r->start_ms += now - r->guard_held_ms;
    r->guard_held_ms = 0;
}

void
adm_ramp_tick(struct adm_state *st)
{
    struct adm_ramp *r = &st->ramp;
    int64_t now = adm_ramp_now(st);
    unsigned k, due, prev, old, cap = 0;
    char w[ADM_WEIGHT_TEXT], why[ADM_WHY_SIZE] = "";

    if (r->state != ADM_RAMP_RUNNING)
        return;
    due = adm_ramp_steps_due(r, now);
    /* The guard holds a due step until y passes (adm_guard.c); it calls again each second. */
    if (due > r->done && !adm_guard_allows_step(st, now)) {
        if (r->guard_held_ms == 0) {
            r->guard_held_ms = XF_MIN(adm_ramp_due(r, r->done + 1), now);
            XF_LOG(XF_LOG_INFO, "admin", "event=ramp_held step=%u/%u reason=\"%s\"", r->done + 1,
                   r->n_steps, st->guard.reason);
        }
        if (st->ramp_timer != NULL)
            evtimer_del(st->ramp_timer);
        return;
    }
    if (r->guard_held_ms != 0) {
        adm_ramp_guard_release(st, now);
        due = adm_ramp_steps_due(r, now);
    }
    /* A step over what y can take now is not taken: the ramp pauses before it. */
    k = adm_ramp_fit(st, due, &cap, why, sizeof(why));
    if (k > r->done) {
        prev = r->done;
        r->done = k;
        r->last_step_ms = now;
        /* The last step ends the ramp before it is published, so the file no longer holds it. */
        if (k == r->n_steps)
            r->state = ADM_RAMP_NONE;
        if (adm_weight_apply(st, r->uid, r->pid, r->command, adm_ramp_weight_at(r, k), &old) ==
            -1) {
            /* Out of memory: try again at the next tick (a second later at most). */
            r->done = prev;
            r->state = ADM_RAMP_RUNNING;
            if (st->ramp_timer != NULL) {
                struct timeval retry = {1, 0};

                evtimer_add(st->ramp_timer, &retry);
            }
            return;
        }
        XF_LOG(XF_LOG_INFO, "admin", "event=ramp_step step=%u/%u weight=%s uid=%ld", k, r->n_steps,
               adm_weight_text(adm_ramp_weight_at(r, k), w), r->uid);
        if (old == adm_ramp_weight_at(r, k))
            st->dirty = true; /* nothing was published, but the progress changed */
        if (r->state == ADM_RAMP_NONE) {
            char from[64];

            snprintf(from, sizeof(from), "running to %s", adm_weight_text(r->to_bp, w));
            adm_events_add(&st->events, r->uid, r->pid, r->command, "ramp", from, "done");
            XF_LOG(XF_LOG_INFO, "admin", "event=ramp_done weight=%s uid=%ld cmd=\"%s\"", w, r->uid,
                   r->command);
        }
    }
    if (k < due) {
        adm_ramp_hold(st, now, cap, why);
        return;
    }
    adm_ramp_arm(st, now);
    adm_state_changed(st);
}

bool
adm_ramp_stop(struct adm_state *st, long uid, long pid, const char *cmd, unsigned *to_bp)
{
    struct adm_ramp *r = &st->ramp;
    struct bal_snapshot *snap;
    char was[64], now[64], w[ADM_WEIGHT_TEXT];

    if (r->state == ADM_RAMP_NONE)
        return false;
    snap = bal_router_acquire(st->router);
    adm_weight_text(snap->weight_bp, w);
    bal_snapshot_unref(snap);
    adm_ramp_text(r, was, sizeof(was));
    snprintf(now, sizeof(now), "cancelled at %s", w);
    adm_events_add(&st->events, uid, pid, cmd, "ramp", was, now);
    XF_LOG(XF_LOG_INFO, "admin", "event=ramp_cancelled weight=%s uid=%ld pid=%ld cmd=\"%s\"", w,
           uid, pid, cmd);
    *to_bp = r->to_bp;
    r->state = ADM_RAMP_NONE;
    if (st->ramp_timer != NULL)
        evtimer_del(st->ramp_timer);
    return true;
}

/* ------------------------------------------------------------------ commands */

/* The weight in force now. */
static unsigned
adm_ramp_current(struct adm_state *st)
{
    struct bal_snapshot *snap = bal_router_acquire(st->router);
    unsigned bp = snap->weight_bp;

    bal_snapshot_unref(snap);
    return bp;
}

/* Parses the words of `ramp TO over DURATION [step P] [force]`; returns 0, or an error reply. */
static int
adm_ramp_args(const struct adm_args *a, unsigned *to_bp, unsigned *duration_ms, unsigned *step_bp,
              bool *force, bool *guarded, struct adm_reply *r)
{
    char q[ADM_QUOTE_TEXT];
    struct xf_err err = {{0}};
    size_t n = a->n;

    *force = *guarded = false;
    /* The flags come last, in either order, each once. */
    while (n > 4) {
        if (!*force && adm_span_is(a->v[n - 1], "force"))
            *force = true;
        else if (!*guarded && adm_span_is(a->v[n - 1], "guarded"))
            *guarded = true;
        else
            break;
        n--;
    }
    if (n != 4 && n != 6) {
        adm_reply_error(r, "usage: ramp TO over DURATION [step P] [guarded] [force] (or ramp "
                           "pause, ramp resume, ramp cancel)");
        return -1;
    }
    if (adm_weight_parse(a->v[1].ptr, a->v[1].len, to_bp) == -1) {
        adm_reply_error(r,
                        "the target must be a weight from 0 to 100 with at most two decimals "
                        "(or pause, resume, cancel), got %s",
                        adm_quote(a->v[1].ptr, a->v[1].len, q, sizeof(q)));
        return -1;
    }
    if (!adm_span_is(a->v[2], "over")) {
        adm_reply_error(r, "expected \"over\" after the target, got %s",
                        adm_quote(a->v[2].ptr, a->v[2].len, q, sizeof(q)));
        return -1;
    }
    if (adm_duration_parse(a->v[3].ptr, a->v[3].len, duration_ms, &err) == -1) {
        adm_reply_error(r, "duration: %s", err.msg);
        return -1;
    }
    *step_bp = 0;
    if (n == 4)
        return 0;
    if (!adm_span_is(a->v[4], "step")) {
        adm_reply_error(r, "expected \"step\" after the duration, got %s",
                        adm_quote(a->v[4].ptr, a->v[4].len, q, sizeof(q)));
        return -1;
    }
    if (adm_weight_parse(a->v[5].ptr, a->v[5].len, step_bp) == -1 || *step_bp == 0) {
        adm_reply_error(r,
                        "the step must be a number of points from 0.01 to 100 with at most two "
                        "decimals, got %s",
                        adm_quote(a->v[5].ptr, a->v[5].len, q, sizeof(q)));
        return -1;
    }
    return 0;
}

/* The reply's first line for a ramp just planned: "ramping ..." or, for `set weight P at TIME`,
 * when the one step comes. */
static void
adm_ramp_started_reply(struct adm_state *st, struct adm_reply *r, const struct adm_ramp *ramp,
                       unsigned from_bp, bool at)
{
    char w[3][ADM_WEIGHT_TEXT], d[32], e[32], t[32];
    int64_t at_ms = adm_ramp_due(ramp, 1) - (int64_t)st->mono_ms() + st->wall_ms();

    adm_weight_text(ramp->to_bp, w[0]);
    adm_weight_text(ramp->step_bp, w[1]);
    adm_weight_text(from_bp, w[2]);
    if (at)
        adm_reply_line(r, "ok: weight y %s (now %s) at %s, in %s", w[0], w[2],
                       adm_time_text((time_t)((at_ms + 500) / 1000), t, sizeof(t)),
                       adm_duration_text(ramp->duration_ms, d, sizeof(d)));
    else
        adm_reply_line(
            r, "ok: ramping y from %s to %s over %s: %u step%s of %s, one every %s", w[2], w[0],
            adm_duration_text(ramp->duration_ms, d, sizeof(d)), ramp->n_steps,
            ramp->n_steps == 1 ? "" : "s", w[1],
            adm_duration_text((unsigned)(ramp->duration_ms / ramp->n_steps), e, sizeof(e)));
}

enum adm_result
adm_ramp_start(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
               struct adm_reply *r, const struct adm_ramp_args *ra)
{
    char w[3][ADM_WEIGHT_TEXT], d[32], next[64], why[ADM_WHY_SIZE] = "";
    unsigned from_bp, cap;
    struct xf_err err = {{0}};
    struct bal_snapshot *snap;
    struct adm_ramp ramp;
    int64_t now = adm_ramp_now(st);
    bool over;

    if (ra->guarded && !adm_guard_is_on(st))
        return adm_reply_error(r, "a guarded ramp needs the guard: %s",
                               st->cfg->guard.configured
                                   ? "it is off (\"guard on\" starts it)"
                                   : "the configuration has no guard section");
    if (st->ramp.state != ADM_RAMP_NONE)
        return adm_reply_error(r,
                               "a ramp to %s is already %s (step %u of %u); \"ramp cancel\" "
                               "it first",
                               adm_weight_text(st->ramp.to_bp, w[0]),
                               st->ramp.state == ADM_RAMP_PAUSED ? "paused" : "running",
                               st->ramp.done, st->ramp.n_steps);
    snap = bal_router_acquire(st->router);
    from_bp = snap->weight_bp;
    over = adm_capacity_check(st, snap, ra->to_bp, &cap, why, sizeof(why)) == -1;
    bal_snapshot_unref(snap);
    if (ra->at && from_bp == ra->to_bp)
        return adm_reply_error(r, "the weight is %s already", adm_weight_text(from_bp, w[0]));
    if (adm_ramp_plan(&ramp, from_bp, ra->to_bp,
                      ra->at ? (from_bp > ra->to_bp ? from_bp - ra->to_bp : ra->to_bp - from_bp)
                             : ra->step_bp,
                      ra->duration_ms, now, &err) == -1)
        return adm_reply_error(r, "%s", err.msg);
    /* Checked once here; each step is checked again when it comes, unless forced. */
    if (over && !ra->force)
        return adm_reply_error(r, "%s; add \"force\" to do it anyway", why);
    if (ra->to_bp > from_bp && adm_guard_refuses_up(st, r))
        return ADM_ERROR;
    ramp.uid = peer->uid;
    ramp.guarded = ra->guarded;
    ramp.last_step_ms = now;
    ramp.pid = peer->pid;
    ramp.force = ra->force;
    adm_command_text(a, ramp.command, sizeof(ramp.command));
    st->ramp = ramp;
    snprintf(next, sizeof(next), "to %s over %s step %s", adm_weight_text(ra->to_bp, w[0]),
             adm_duration_text(ra->duration_ms, d, sizeof(d)), adm_weight_text(ramp.step_bp, w[1]));
    adm_events_add(&st->events, peer->uid, peer->pid, ramp.command, "ramp", "-", next);
    adm_weight_text(from_bp, w[2]);
    XF_LOG(XF_LOG_INFO, "admin",
           "event=ramp_started from=%s to=%s step=%s steps=%u duration_ms=%u uid=%ld pid=%ld "
           "cmd=\"%s\"",
           w[2], w[0], w[1], ramp.n_steps, ra->duration_ms, peer->uid, peer->pid, ramp.command);
    adm_ramp_arm(st, now);
    st->dirty = true;
    adm_ramp_started_reply(st, r, &ramp, from_bp, ra->at);
    if (over) {
        XF_LOG(XF_LOG_WARN, "admin",
               "event=capacity_forced weight=%s capacity=%s uid=%ld pid=%ld cmd=\"%s\"", w[0],
               adm_weight_text(cap, w[1]), peer->uid, peer->pid, ramp.command);
        adm_reply_line(r, "note: forced: %s", why);
    }
    return ADM_OK;
}

enum adm_result
adm_cmd_ramp(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
             struct adm_reply *r)
{
    struct adm_ramp_args ra = {0};

    if (adm_ramp_args(a, &ra.to_bp, &ra.duration_ms, &ra.step_bp, &ra.force, &ra.guarded, r) == -1)
        return ADM_ERROR;
    return adm_ramp_start(st, peer, a, r, &ra);
}

/* The error for pause/resume/cancel without a ramp. */
static enum adm_result
adm_ramp_none(struct adm_reply *r)
{
    return adm_reply_error(r, "no ramp is in progress (\"ramp TO over DURATION\" starts one)");
}

enum adm_result
adm_cmd_ramp_pause(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                   struct adm_reply *r)
{
    struct adm_ramp *ramp = &st->ramp;
    char cmd[96], w[ADM_WEIGHT_TEXT];

    if (ramp->state == ADM_RAMP_NONE)
        return adm_ramp_none(r);
    if (ramp->state == ADM_RAMP_PAUSED)
        return adm_reply_error(r, "the ramp is already paused (\"ramp resume\" goes on)");
    adm_command_text(a, cmd, sizeof(cmd));
    adm_ramp_pause(st, peer->uid, peer->pid, cmd);
    adm_weight_text(adm_ramp_current(st), w);
    adm_reply_line(r, "ok: ramp paused at weight y %s (step %u of %u); \"ramp resume\" goes on", w,
                   ramp->done, ramp->n_steps);
    return ADM_OK;
}

enum adm_result
adm_cmd_ramp_resume(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                    struct adm_reply *r)
{
    struct adm_ramp *ramp = &st->ramp;
    char cmd[96], was[64], now_text[64], w[ADM_WEIGHT_TEXT], nw[ADM_WEIGHT_TEXT], d[32];
    char why[ADM_WHY_SIZE] = "";
    int64_t now = adm_ramp_now(st), left;
    struct bal_snapshot *snap;
    int over;

    if (ramp->state == ADM_RAMP_NONE)
        return adm_ramp_none(r);
    if (ramp->state == ADM_RAMP_RUNNING)
        return adm_reply_error(r, "the ramp is not paused");
    snap = bal_router_acquire(st->router);
    over = ramp->force ? 0
                       : adm_capacity_check(st, snap, adm_ramp_weight_at(ramp, ramp->done + 1),
                                            NULL, why, sizeof(why));
    bal_snapshot_unref(snap);
    if (over == -1)
        return adm_reply_error(r,
                               "%s; the ramp stays paused (\"ramp cancel\" and a new ramp with "
                               "\"force\" go on anyway)",
                               why);
    adm_command_text(a, cmd, sizeof(cmd));
    adm_ramp_text(ramp, was, sizeof(was));
    /* The steps left keep their pace: the schedule moves by the time spent paused. */
    ramp->start_ms += now - ramp->paused_ms;
    ramp->paused_ms = 0;
    ramp->state = ADM_RAMP_RUNNING;
    ramp->capacity_paused = false;
    adm_events_add(&st->events, peer->uid, peer->pid, cmd, "ramp", was,
                   adm_ramp_text(ramp, now_text, sizeof(now_text)));
    XF_LOG(XF_LOG_INFO, "admin", "event=ramp_resumed step=%u/%u uid=%ld pid=%ld", ramp->done,
           ramp->n_steps, peer->uid, peer->pid);
    adm_weight_text(adm_ramp_current(st), w);
    left = XF_MAX(adm_ramp_due(ramp, ramp->done + 1) - now, (int64_t)0);
    adm_reply_line(r, "ok: ramp resumed at weight y %s; next step to %s in %s", w,
                   adm_weight_text(adm_ramp_weight_at(ramp, ramp->done + 1), nw),
                   adm_duration_about((uint64_t)left, d, sizeof(d)));
    st->dirty = true;
    adm_ramp_tick(st);
    return ADM_OK;
}

enum adm_result
adm_cmd_ramp_cancel(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                    struct adm_reply *r)
{
    char cmd[96], w[ADM_WEIGHT_TEXT], to[ADM_WEIGHT_TEXT];
    unsigned to_bp;

    adm_command_text(a, cmd, sizeof(cmd));
    if (!adm_ramp_stop(st, peer->uid, peer->pid, cmd, &to_bp))
        return adm_ramp_none(r);
    st->dirty = true;
    adm_reply_line(r, "ok: ramp cancelled at weight y %s (it was going to %s)",
                   adm_weight_text(adm_ramp_current(st), w), adm_weight_text(to_bp, to));
    return ADM_OK;
}

/* A monotonic time as wall-clock text, by its distance from now. */
static const char *
adm_ramp_when(const struct adm_state *st, int64_t mono, int64_t now, char *buf, size_t size)
{
    return adm_time_text((time_t)((st->wall_ms() + (mono - now)) / 1000), buf, size);
}

/* Why a ramp is paused: "reason operator: ..." (`ramp pause`), or "reason capacity: ..." with what
 * y can take now against the next step. */
static void
adm_ramp_show_reason(struct adm_state *st, struct adm_reply *r)
{
    const struct adm_ramp *ramp = &st->ramp;
    unsigned next = adm_ramp_weight_at(ramp, ramp->done + 1), cap;
    struct bal_snapshot *snap;
    char why[ADM_WHY_SIZE], c[ADM_WEIGHT_TEXT], w[ADM_WEIGHT_TEXT];

    if (!ramp->capacity_paused) {
        adm_reply_line(r, "reason operator: \"ramp pause\"");
        return;
    }
    snap = bal_router_acquire(st->router);
    if (adm_capacity_check(st, snap, next, &cap, why, sizeof(why)) == -1)
        adm_reply_line(r, "reason capacity: %s", why);
    else
        adm_reply_line(r,
                       "reason capacity: the step to %s%% was over what y could take; it can take "
                       "%s%% now (\"ramp resume\" goes on)",
                       adm_weight_text(next, w), adm_weight_text(cap, c));
    bal_snapshot_unref(snap);
}

enum adm_result
adm_cmd_show_ramp(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                  struct adm_reply *r)
{
    const struct adm_ramp *ramp = &st->ramp;
    char w[ADM_WEIGHT_TEXT], d[32], t[32], who[48];
    int64_t now = adm_ramp_now(st), ref, left;
    unsigned cur = adm_ramp_current(st);
    unsigned dist = adm_ramp_distance(ramp->from_bp, ramp->to_bp);

    XF_UNUSED(peer);
    XF_UNUSED(a);
    if (ramp->state == ADM_RAMP_NONE) {
        adm_reply_line(r, "no ramp");
        return ADM_OK;
    }
    /* While paused, the clock of the schedule stands at the moment of the pause. */
    ref = ramp->state == ADM_RAMP_PAUSED ? ramp->paused_ms : now;
    adm_reply_line(r, "ramp %s%s",
                   ramp->state == ADM_RAMP_PAUSED ? "paused"
                   : ramp->guard_held_ms != 0     ? "held"
                                                  : "running",
                   ramp->guarded ? " guarded" : "");
    if (ramp->state == ADM_RAMP_PAUSED)
        adm_ramp_show_reason(st, r);
    else if (ramp->guard_held_ms != 0 && st->guard.verdict == ADM_VERDICT_PASS && ramp->guarded)
        adm_reply_line(r,
                       "reason guard pass: a guarded step waits for a whole %us window at the "
                       "weight of the step before",
                       st->cfg->guard.window_s);
    else if (ramp->guard_held_ms != 0)
        adm_reply_line(r, "reason guard %s: %s (the step waits for a pass)",
                       adm_verdict_name(st->guard.verdict), st->guard.reason);
    adm_reply_line(r, "from %s", adm_weight_text(ramp->from_bp, w));
    adm_reply_line(r, "to %s", adm_weight_text(ramp->to_bp, w));
    adm_reply_line(r, "step %s", adm_weight_text(ramp->step_bp, w));
    adm_reply_line(r, "weight %s", adm_weight_text(cur, w));
    adm_reply_line(r, "progress %u/%u steps, %u%%", ramp->done, ramp->n_steps,
                   (unsigned)(adm_ramp_distance(ramp->from_bp, cur) * 100u / dist));
    left = XF_MAX(adm_ramp_due(ramp, ramp->done + 1) - ref, (int64_t)0);
    if (ramp->state == ADM_RAMP_PAUSED)
        adm_reply_line(r, "next %s %s after \"ramp resume\"",
                       adm_weight_text(adm_ramp_weight_at(ramp, ramp->done + 1), w),
                       adm_duration_about((uint64_t)left, d, sizeof(d)));
    else
        adm_reply_line(r, "next %s in %s at %s",
                       adm_weight_text(adm_ramp_weight_at(ramp, ramp->done + 1), w),
                       adm_duration_about((uint64_t)left, d, sizeof(d)),
                       adm_ramp_when(st, now + left, now, t, sizeof(t)));
    left = XF_MAX(adm_ramp_due(ramp, ramp->n_steps) - ref, (int64_t)0);
    if (ramp->state == ADM_RAMP_PAUSED)
        adm_reply_line(r, "ends %s after \"ramp resume\"",
                       adm_duration_about((uint64_t)left, d, sizeof(d)));
    else
        adm_reply_line(r, "ends in %s at %s", adm_duration_about((uint64_t)left, d, sizeof(d)),
                       adm_ramp_when(st, now + left, now, t, sizeof(t)));
    adm_reply_line(r, "duration %s", adm_duration_text(ramp->duration_ms, d, sizeof(d)));
    if (ramp->uid < 0)
        snprintf(who, sizeof(who), "uid=-");
    else
        snprintf(who, sizeof(who), "uid=%ld", ramp->uid);
    adm_reply_line(r, "by %s \"%s\"", who, ramp->command);
    return ADM_OK;
}
