/* bench/bench_xfbench_check.c -- --check: failed requests, failed commands, the y share against the
 * weights in force. */
#include "bench/bench_xfbench.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *const bench_xfb_wsrc_names[4] = {"none", "option", "watch", "poll"};

/* The first change whose at_us + shift_us is after t (n when none): the history is in time order.
 */
static size_t
bench_xfb_first_after(const struct bench_xfb_change *ch, size_t n, uint64_t shift_us, uint64_t t)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ch[mid].at_us + shift_us <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int
bench_xfb_weight_at(int initial_bp, const struct bench_xfb_change *changes, size_t n,
                    uint64_t at_us)
{
    size_t k;

    if (initial_bp < 0)
        return -1;
    k = bench_xfb_first_after(changes, n, 0, at_us);
    return k > 0 ? (int)changes[k - 1].weight_bp : initial_bp;
}

double
bench_xfb_weight_mean(int initial_bp, const struct bench_xfb_change *changes, size_t n,
                      uint64_t a_us, uint64_t b_us)
{
    size_t k;
    double w, sum = 0;
    uint64_t t = a_us;

    if (initial_bp < 0)
        return -1;
    k = bench_xfb_first_after(changes, n, 0, a_us);
    w = k > 0 ? (double)changes[k - 1].weight_bp : (double)initial_bp;
    if (b_us <= a_us)
        return w;
    for (; k < n && changes[k].at_us < b_us; k++) {
        sum += w * (double)(changes[k].at_us - t);
        t = changes[k].at_us;
        w = (double)changes[k].weight_bp;
    }
    sum += w * (double)(b_us - t);
    return sum / (double)(b_us - a_us);
}

/* The second s as microseconds from the start: [*a, *b). */
static void
bench_xfb_sec_span(const struct bench_xfb_result *r, size_t s, uint64_t *a, uint64_t *b)
{
    *a = (uint64_t)s * 1000000u;
    *b = (uint64_t)(((double)s + r->secs[s].span_s) * 1e6 + 0.5);
    if (*b < *a)
        *b = *a;
}

void
bench_xfb_weights_fill(struct bench_xfb_result *r, const struct bench_xfb_change *changes, size_t n)
{
    for (size_t s = 0; s < r->nsec; s++) {
        uint64_t a, b;
        bench_xfb_sec_span(r, s, &a, &b);
        r->secs[s].weight_bp = bench_xfb_weight_at(r->initial_bp, changes, n, b);
        r->secs[s].mean_bp = bench_xfb_weight_mean(r->initial_bp, changes, n, a, b);
    }
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

/* What one second expects: the mean with each change at its time, and the range it may take. */
struct bench_xfb_expect {
    double mean, lo, hi;
};

/* How much of [a, b) lies after c. */
static double
bench_xfb_after(uint64_t a, uint64_t b, uint64_t c)
{
    if (c <= a)
        return 1;
    if (c >= b)
        return 0;
    return (double)(b - c) / (double)(b - a);
}

/*
 * The weight in force over [a, b) is initial + the sum of each change's step times the part of
 * [a, b) after it. That is linear in each change's time, so its least and most come from each
 * change at one end of [at - lead, at + settle]: the range below is exact for changes far apart,
 * and wider than needed (never narrower) when their ranges overlap. `max_lead` bounds every lead,
 * so changes from at + settle <= a (in force throughout) to at - max_lead >= b are looked at.
 */
static void
bench_xfb_expect_span(const struct bench_xfb_result *r, const struct bench_xfb_change *ch, size_t n,
                      uint64_t settle_us, uint64_t max_lead, uint64_t a, uint64_t b,
                      struct bench_xfb_expect *e)
{
    size_t k = bench_xfb_first_after(ch, n, settle_us, a);
    double prev = k > 0 ? (double)ch[k - 1].weight_bp : (double)r->initial_bp;

    e->mean = e->lo = e->hi = prev;
    for (; k < n && ch[k].at_us < b + max_lead; k++) {
        uint64_t early = ch[k].at_us > ch[k].lead_us ? ch[k].at_us - ch[k].lead_us : 0;
        double d = (double)ch[k].weight_bp - prev;
        double f_early = bench_xfb_after(a, b, early);
        double f_late = bench_xfb_after(a, b, ch[k].at_us + settle_us);

        prev = (double)ch[k].weight_bp;
        e->mean += d * bench_xfb_after(a, b, ch[k].at_us);
        e->lo += d * (d > 0 ? f_late : f_early);
        e->hi += d * (d > 0 ? f_early : f_late);
    }
}

/*
 * Second s's expectation weighed by its responses: each tenth of the second's own expectation
 * times the routed responses that came in it. The time-weighted one (e) when no tenth counted any
 * (counts from before tenths were kept, or a second without routed responses).
 */
static void
bench_xfb_expect_by_responses(const struct bench_xfb_result *r, const struct bench_xfb_change *ch,
                              size_t n, uint64_t settle_us, uint64_t max_lead, size_t s, uint64_t a,
                              uint64_t b, const struct bench_xfb_expect *e,
                              struct bench_xfb_expect *er)
{
    const uint64_t *tenth = r->secs[s].c.routed_tenth;
    double total = 0;

    memset(er, 0, sizeof(*er));
    for (unsigned i = 0; i < 10; i++) {
        uint64_t ta = a + (uint64_t)i * 100000u, tb = XF_MIN(ta + 100000u, b);
        struct bench_xfb_expect ei;

        if (tenth[i] == 0)
            continue;
        if (ta >= b) /* a late count past a short last second: the second's end */
            ta = b > 1 ? b - 1 : 0, tb = b;
        bench_xfb_expect_span(r, ch, n, settle_us, max_lead, ta, tb, &ei);
        er->mean += (double)tenth[i] * ei.mean;
        er->lo += (double)tenth[i] * ei.lo;
        er->hi += (double)tenth[i] * ei.hi;
        total += (double)tenth[i];
    }
    if (total == 0) {
        *er = *e;
        return;
    }
    er->mean /= total;
    er->lo /= total;
    er->hi /= total;
}

/* Seconds gathered into one window, before it is judged. */
struct bench_xfb_acc {
    size_t first, last;
    uint64_t routed, on_y;
    struct bench_xfb_expect by_resp; /* sums of the seconds' expectations times their responses */
    struct bench_xfb_expect by_time; /* ... times their span, for a window without responses */
    double span;
    int unknown;
    struct bench_xfb_expect prev; /* the last second's */
};

/* e is the second's expectation over time, er the same weighed by its responses. */
static void
bench_xfb_acc_add(struct bench_xfb_acc *acc, const struct bench_xfb_result *r, size_t s,
                  const struct bench_xfb_expect *e, const struct bench_xfb_expect *er)
{
    const struct bench_xfb_sec *sec = &r->secs[s];
    double n = (double)sec->c.routed, t = sec->span_s;

    acc->last = s;
    acc->routed += sec->c.routed;
    acc->on_y += sec->c.on_y;
    acc->span += t;
    if (e == NULL)
        return;
    /* The share is a mean over responses, so the seconds weigh by their responses. */
    acc->by_resp.mean += n * er->mean;
    acc->by_resp.lo += n * er->lo;
    acc->by_resp.hi += n * er->hi;
    acc->by_time.mean += t * e->mean;
    acc->by_time.lo += t * e->lo;
    acc->by_time.hi += t * e->hi;
    acc->prev = *e;
}

/* Judges the window gathered in acc and keeps it (while the list has room). */
static void
bench_xfb_acc_close(struct bench_xfb_result *r, const struct bench_xfb_acc *acc)
{
    const struct bench_xfb_opts *o = r->o;
    struct bench_xfb_window w;

    memset(&w, 0, sizeof(w));
    w.from_s = (double)acc->first;
    w.to_s = (double)acc->last + r->secs[acc->last].span_s;
    w.routed = acc->routed;
    w.on_y = acc->on_y;
    w.ok = 1;
    if (acc->unknown) {
        w.expect_bp = w.lo_bp = w.hi_bp = -1;
        w.unknown = 1;
    } else {
        const struct bench_xfb_expect *sum = acc->routed > 0 ? &acc->by_resp : &acc->by_time;
        double wt = acc->routed > 0 ? (double)acc->routed : acc->span;
        wt = wt > 0 ? wt : 1;
        w.expect_bp = sum->mean / wt;
        w.lo_bp = sum->lo / wt;
        w.hi_bp = sum->hi / wt;
    }
    w.judged = !w.unknown && w.routed > 0 && w.routed >= o->check_min;
    if (w.judged) {
        double share = (double)w.on_y * 10000.0 / (double)w.routed;
        double near = share < w.lo_bp ? w.lo_bp : share > w.hi_bp ? w.hi_bp : share;
        double p = near / 10000.0;
        /*
         * The share of a window is a sample: with n responses its noise is sqrt(p(1-p)/n). A
         * window of few responses (a second of a ramp at a low rate) is allowed four of those
         * when that is more than --tolerance, so that a correct rollout does not fail by chance
         * (about 1 in 16,000 windows); a wrong share still fails once the window is large enough
         * to tell.
         */
        double noise = 4.0 * 10000.0 * sqrt(p * (1.0 - p) / (double)w.routed);
        double allowed = XF_MAX((double)o->tolerance_bp, noise);

        w.off_bp = share < w.lo_bp ? w.lo_bp - share : share > w.hi_bp ? share - w.hi_bp : 0;
        w.ok = w.off_bp <= allowed + 1e-9;
        r->njudged++;
        if (!w.ok) {
            char how[96];

            if (noise > (double)o->tolerance_bp)
                snprintf(how, sizeof(how), "allowed %.2f pp (the noise of %llu responses)",
                         allowed / 100, (unsigned long long)w.routed);
            else
                snprintf(how, sizeof(how), "tolerance %.2f pp", allowed / 100);
            if (w.hi_bp - w.lo_bp < 0.5)
                bench_xfb_fail(r,
                               "y share %.2f %% from %.0fs to %.1fs (%llu responses) but weight "
                               "%.2f in force: off by %.2f pp, %s",
                               share / 100, w.from_s, w.to_s, (unsigned long long)w.routed,
                               w.expect_bp / 100, w.off_bp / 100, how);
            else
                bench_xfb_fail(r,
                               "y share %.2f %% from %.0fs to %.1fs (%llu responses) but weight "
                               "%.2f in force on average (%.2f to %.2f as the changes reached the "
                               "traffic): off by %.2f pp, %s",
                               share / 100, w.from_s, w.to_s, (unsigned long long)w.routed,
                               w.expect_bp / 100, w.lo_bp / 100, w.hi_bp / 100, w.off_bp / 100,
                               how);
        }
    }
    if (r->nwindows < BENCH_XFB_WINDOWS_MAX)
        r->windows[r->nwindows++] = w;
    else
        r->windows_more++;
}

static int
bench_xfb_expect_same(const struct bench_xfb_expect *x, const struct bench_xfb_expect *y)
{
    return fabs(x->lo - y->lo) < 1e-6 && fabs(x->hi - y->hi) < 1e-6;
}

/*
 * Gathers the seconds into windows: a window goes on while it holds fewer than --check-min routed
 * responses, and past that only while the next second expects the same as the last one (a steady
 * weight); the seconds after the history ended form windows of their own, not judged.
 */
static void
bench_xfb_check_share(struct bench_xfb_result *r, const struct bench_xfb_change *ch, size_t n)
{
    const struct bench_xfb_opts *o = r->o;
    uint64_t settle_us = o->settle_ms * 1000, max_lead = 0;
    struct bench_xfb_acc acc;
    struct bench_xfb_expect e = {0, 0, 0}, er = {0, 0, 0};
    int open = 0;

    if (r->initial_bp < 0)
        return;
    if (r->totals.routed == 0 && r->totals.responses > 0) {
        bench_xfb_fail(r,
                       "no response carried the route header %s (set split.expose in crossfade's "
                       "config, or name the header with --route-header)",
                       o->route_header);
        return;
    }
    for (size_t k = 0; k < n; k++)
        max_lead = XF_MAX(max_lead, ch[k].lead_us);
    memset(&acc, 0, sizeof(acc));
    for (size_t s = 0; s < r->nsec; s++) {
        uint64_t a, b;
        int unknown;

        bench_xfb_sec_span(r, s, &a, &b);
        unknown = r->weights_lost && b > r->weights_lost_us;
        if (!unknown)
            bench_xfb_expect_span(r, ch, n, settle_us, max_lead, a, b, &e);
        if (open &&
            (acc.unknown != unknown || (!unknown && acc.routed >= o->check_min && acc.routed > 0 &&
                                        !bench_xfb_expect_same(&acc.prev, &e)))) {
            bench_xfb_acc_close(r, &acc);
            open = 0;
        }
        if (!open) {
            memset(&acc, 0, sizeof(acc));
            acc.first = s;
            acc.unknown = unknown;
            open = 1;
        }
        if (!unknown)
            bench_xfb_expect_by_responses(r, ch, n, settle_us, max_lead, s, a, b, &e, &er);
        bench_xfb_acc_add(&acc, r, s, unknown ? NULL : &e, &er);
    }
    if (open)
        bench_xfb_acc_close(r, &acc);
}

int
bench_xfb_check(struct bench_xfb_result *r, const struct bench_xfb_change *changes, size_t nchanges)
{
    r->checked = 1;
    r->nfails = 0;
    r->nwindows = 0;
    r->windows_more = 0;
    r->njudged = 0;
    bench_xfb_check_errors(r);
    bench_xfb_check_commands(r);
    bench_xfb_check_share(r, changes, nchanges);
    r->passed = r->nfails == 0;
    return r->passed;
}
