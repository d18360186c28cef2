/* bench/bench_xfbench_check.c -- --check: failed requests, failed commands, the y share per weight.
 */
#include "bench/bench_xfbench.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int
bench_xfb_weight_at(int initial_bp, const struct bench_xfb_change *changes, size_t n,
                    uint64_t at_us)
{
    int w = initial_bp;

    if (w < 0)
        return -1;
    for (size_t i = 0; i < n && changes[i].at_us <= at_us; i++)
        w = (int)changes[i].weight_bp;
    return w;
}

static void bench_xfb_fail(struct bench_xfb_result *r, const char *fmt, ...) XF_PRINTF(2, 3);

static void
bench_xfb_fail(struct bench_xfb_result *r, const char *fmt, ...)
{
    va_list ap;

    if (r->nfails == BENCH_XFB_FAILS_MAX) {
        snprintf(r->fails[BENCH_XFB_FAILS_MAX - 1], sizeof(r->fails[0]), "and more failures");
        return;
    }
    va_start(ap, fmt);
    vsnprintf(r->fails[r->nfails], sizeof(r->fails[0]), fmt, ap);
    va_end(ap);
    r->nfails++;
}

static void
bench_xfb_check_errors(struct bench_xfb_result *r)
{
    uint64_t n = bench_xfb_counts_errors(&r->totals);
    char kinds[200] = "";
    size_t off = 0;

    if (n == 0)
        return;
    for (size_t i = 0; i < BENCH_XFB_ERR_COUNT; i++) {
        if (r->totals.err[i] > 0 && off < sizeof(kinds)) {
            int m = snprintf(kinds + off, sizeof(kinds) - off, "%s%s %llu", off > 0 ? ", " : "",
                             bench_xfb_err_names[i], (unsigned long long)r->totals.err[i]);
            if (m > 0)
                off += (size_t)m;
        }
    }
    bench_xfb_fail(r, "%llu request%s failed (%s)", (unsigned long long)n, n == 1 ? "" : "s",
                   kinds);
}

static void
bench_xfb_check_commands(struct bench_xfb_result *r)
{
    for (size_t i = 0; i < r->nevents; i++) {
        const struct bench_xfb_event *e = &r->events[i];
        if (e->step == 0 || e->ok)
            continue;
        bench_xfb_fail(r, "rollout step %u \"%s\" at %.2fs failed: %s", e->step, e->command,
                       (double)e->at_us / 1e6, e->reply[0] != '\0' ? e->reply : "no reply");
    }
}

/* Judges the whole seconds of [start_us + settle_us, end_us) under weight w as one window. */
static void
bench_xfb_check_window(struct bench_xfb_result *r, uint64_t from_us, uint64_t end_us, unsigned w)
{
    const struct bench_xfb_opts *o = r->o;
    struct bench_xfb_window *win;
    size_t first = (size_t)((from_us + 999999) / 1000000), last = first;
    char wt[8];

    for (size_t s = first; s < r->nsec; s++) {
        double sec_end = (double)s + r->secs[s].span_s;
        if (sec_end * 1e6 > (double)end_us + 1000) /* 1 ms of slack for the timers' rounding */
            break;
        last = s + 1;
    }
    if (last == first || r->nwindows == BENCH_XFB_WINDOWS_MAX)
        return;
    win = &r->windows[r->nwindows++];
    memset(win, 0, sizeof(*win));
    win->from_s = (double)first;
    win->to_s = (double)(last - 1) + r->secs[last - 1].span_s;
    win->weight_bp = w;
    for (size_t s = first; s < last; s++) {
        win->routed += r->secs[s].c.routed;
        win->on_y += r->secs[s].c.on_y;
    }
    win->judged = win->routed > 0 && win->routed >= o->check_min;
    win->ok = 1;
    if (win->judged) {
        double share_bp = (double)win->on_y * 10000.0 / (double)win->routed;
        double off = fabs(share_bp - (double)w);
        win->ok = off <= (double)o->tolerance_bp + 1e-9;
        if (!win->ok)
            bench_xfb_fail(r,
                           "y share %.2f %% from %.0fs to %.1fs (%llu responses) but weight %s "
                           "in force: off by %.2f pp, tolerance %.2f pp",
                           share_bp / 100, win->from_s, win->to_s, (unsigned long long)win->routed,
                           bench_xfb_weight_text(w, wt), off / 100, (double)o->tolerance_bp / 100);
    }
}

static void
bench_xfb_check_share(struct bench_xfb_result *r, const struct bench_xfb_change *ch, size_t n)
{
    uint64_t end_us = (uint64_t)(r->elapsed_s * 1e6), start = 0;
    unsigned w;

    if (r->initial_bp < 0)
        return;
    if (r->totals.routed == 0 && r->totals.responses > 0) {
        bench_xfb_fail(r,
                       "no response carried the route header %s (set split.expose in crossfade's "
                       "config, or name the header with --route-header)",
                       r->o->route_header);
        return;
    }
    w = (unsigned)r->initial_bp;
    for (size_t i = 0; i <= n; i++) {
        uint64_t end = i < n ? ch[i].at_us : end_us;
        if (i < n && ch[i].weight_bp == w)
            continue; /* no change: the stretch goes on */
        if (end > start)
            bench_xfb_check_window(r, start == 0 ? 0 : start + r->o->settle_ms * 1000,
                                   XF_MIN(end, end_us), w);
        if (i < n) {
            start = XF_MAX(ch[i].at_us, 1);
            w = ch[i].weight_bp;
        }
    }
}

int
bench_xfb_check(struct bench_xfb_result *r, const struct bench_xfb_change *changes, size_t nchanges)
{
    r->checked = 1;
    r->nfails = 0;
    r->nwindows = 0;
    bench_xfb_check_errors(r);
    bench_xfb_check_commands(r);
    bench_xfb_check_share(r, changes, nchanges);
    r->passed = r->nfails == 0;
    return r->passed;
}
