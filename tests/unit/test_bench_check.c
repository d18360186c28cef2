/* tests/unit/test_bench_check.c -- xfbench --check (failed requests, commands, the y share against
 * the weights in force, second by second) and the reports. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "bench/bench_xfbench.h"

#define NSEC 20

/* A run of NSEC seconds with 1000 routed responses a second; y_pct[s] of them on y. */
struct fx {
    struct bench_xfb_opts o;
    struct bench_xfb_result r;
    struct bench_xfb_sec secs[NSEC];
    struct bench_xfb_hist h;
    struct bench_xfb_event ev[4];
};

static struct fx *
fx_new(const double *y_pct, int initial_bp)
{
    struct fx *f = calloc(1, sizeof(*f));

    cr_assert(ne(ptr, f, NULL));
    f->o.url = "http://127.0.0.1:8080/";
    f->o.method = "GET";
    f->o.route_header = "X-Crossfade-Route";
    f->o.key_header = "X-Consumer-ID";
    f->o.threads = 1;
    f->o.conns = 10;
    f->o.duration_ms = NSEC * 1000;
    f->o.tolerance_bp = 500;
    f->o.settle_ms = 2000;
    f->o.check_min = 100;
    f->o.check = 1;
    bench_xfb_hist_reset(&f->h);
    for (int s = 0; s < NSEC; s++) {
        f->secs[s].span_s = 1;
        f->secs[s].weight_bp = -1;
        f->secs[s].c.responses = 1000;
        f->secs[s].c.routed = 1000;
        f->secs[s].c.on_y = (uint64_t)llround(y_pct[s] * 10);
        bench_xfb_counts_add(&f->r.totals, &f->secs[s].c);
        bench_xfb_hist_record(&f->h, 1000000);
    }
    f->r.o = &f->o;
    f->r.hist = &f->h;
    f->r.secs = f->secs;
    f->r.nsec = NSEC;
    f->r.elapsed_s = NSEC;
    f->r.initial_bp = initial_bp;
    f->r.final_bp = initial_bp;
    f->r.events = f->ev;
    return f;
}

/* Second s gets `routed` responses, y_pct % of them on y; the totals follow. */
static void
fx_second(struct fx *f, int s, uint64_t routed, double y_pct)
{
    f->secs[s].c.responses = routed;
    f->secs[s].c.routed = routed;
    f->secs[s].c.on_y = (uint64_t)llround(y_pct * (double)routed / 100);
    memset(&f->r.totals, 0, sizeof(f->r.totals));
    for (int i = 0; i < NSEC; i++)
        bench_xfb_counts_add(&f->r.totals, &f->secs[i].c);
}

static const char *
fails_text(const struct bench_xfb_result *r)
{
    static char buf[4096];
    size_t o = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < r->nfails && o < sizeof(buf); i++)
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s\n", r->fails[i]);
    return buf;
}

TestSuite(bench_check);

/* 0 % for 5 s, then 50 % (the weight changes at 5.0 s), back to 0 at 12.0 s: traffic that takes
 * two seconds to follow each change (--settle 2s in the fixture). */
static const double ramp_ok[NSEC] = {0,  0,  0, 0, 0, 22, 40, 49, 51, 50,
                                     49, 50, 9, 1, 0, 0,  0,  0,  0,  0};
static const struct bench_xfb_change ramp_changes[] = {{5000000, 5000, 0}, {12000000, 0, 0}};

/* Asserts window i: the seconds it covers and what it expected (in basis points). */
static void
assert_window(const struct bench_xfb_result *r, size_t i, double from, double to, double expect,
              double lo, double hi)
{
    const struct bench_xfb_window *w = &r->windows[i];

    cr_assert(lt(sz, i, r->nwindows), "no window %zu", i);
    cr_assert(eq(dbl, w->from_s, from), "window %zu from %.3f", i, w->from_s);
    cr_assert(eq(dbl, w->to_s, to), "window %zu to %.3f", i, w->to_s);
    cr_assert(epsilon_eq(dbl, w->expect_bp, expect, 1e-6), "window %zu expects %.4f, not %.4f", i,
              w->expect_bp, expect);
    cr_assert(epsilon_eq(dbl, w->lo_bp, lo, 1e-6), "window %zu low %.4f, not %.4f", i, w->lo_bp,
              lo);
    cr_assert(epsilon_eq(dbl, w->hi_bp, hi, 1e-6), "window %zu high %.4f, not %.4f", i, w->hi_bp,
              hi);
}

Test(bench_check, a_clean_run_with_the_share_on_the_weight_passes)
{
    struct fx *f = fx_new(ramp_ok, 0);

    cr_assert(eq(int, bench_xfb_check(&f->r, ramp_changes, 2), 1), "%s", fails_text(&f->r));
    /* Steady stretches are one window each; the two seconds within --settle of a change expect
     * anything between the weights before and after it. */
    cr_assert(eq(sz, f->r.nwindows, 5));
    assert_window(&f->r, 0, 0, 5, 0, 0, 0);
    assert_window(&f->r, 1, 5, 7, 5000, 0, 5000);
    assert_window(&f->r, 2, 7, 12, 5000, 5000, 5000);
    cr_assert(eq(u64, f->r.windows[2].routed, 5000));
    assert_window(&f->r, 3, 12, 14, 0, 0, 5000);
    assert_window(&f->r, 4, 14, 20, 0, 0, 0);
    cr_assert(eq(sz, f->r.njudged, 5));
    free(f);
}

Test(bench_check, seconds_within_settle_of_a_change_may_follow_either_weight)
{
    /* 22 % and 40 % at 5-7 s: without a settle, 5-12 s is one steady stretch at 50 and its share
     * falls short. */
    struct fx *f = fx_new(ramp_ok, 0);

    f->o.settle_ms = 0;
    cr_assert(eq(int, bench_xfb_check(&f->r, ramp_changes, 2), 0));
    cr_assert(eq(str, f->r.fails[0],
                 "y share 44.43 % from 5s to 12.0s (7000 responses) but weight 50.00 in force: off "
                 "by 5.57 pp, tolerance 5.00 pp"),
              "%s", fails_text(&f->r));
    /* With 1 s, second 5 may follow either weight; the 40 % of second 6 is then averaged with the
     * steady seconds after it. */
    f->o.settle_ms = 1000;
    cr_assert(eq(int, bench_xfb_check(&f->r, ramp_changes, 2), 1), "%s", fails_text(&f->r));
    assert_window(&f->r, 1, 5, 6, 5000, 0, 5000);
    assert_window(&f->r, 2, 6, 12, 5000, 5000, 5000);
    free(f);
}

Test(bench_check, a_share_off_the_weight_fails_with_the_numbers)
{
    double y[NSEC];
    struct fx *f;

    for (int s = 0; s < NSEC; s++)
        y[s] = s < 5 ? 0 : 38;
    f = fx_new(y, 0);
    cr_assert(eq(int, bench_xfb_check(&f->r, ramp_changes, 1), 0));
    cr_assert(eq(sz, f->r.nfails, 1));
    cr_assert(
        eq(str, f->r.fails[0],
           "y share 38.00 % from 7s to 20.0s (13000 responses) but weight 50.00 in force: off "
           "by 12.00 pp, tolerance 5.00 pp"));
    /* Within a wider tolerance it passes. */
    f->o.tolerance_bp = 1200;
    cr_assert(eq(int, bench_xfb_check(&f->r, ramp_changes, 1), 1), "%s", fails_text(&f->r));
    free(f);
}

Test(bench_check, failed_requests_fail_the_check_by_kind)
{
    struct fx *f = fx_new(ramp_ok, 0);

    f->r.totals.err[BENCH_XFB_ERR_TIMEOUT] = 2;
    f->r.totals.err[BENCH_XFB_ERR_5XX] = 1;
    cr_assert(eq(int, bench_xfb_check(&f->r, ramp_changes, 2), 0));
    cr_assert(eq(str, f->r.fails[0], "3 requests failed (timeout 2, status_5xx 1)"));
    free(f);
}

Test(bench_check, a_rollout_command_that_failed_fails_the_check)
{
    struct fx *f = fx_new(ramp_ok, 0);

    f->r.nevents = 2;
    f->ev[0] = (struct bench_xfb_event){.at_us = 5000000, .step = 1, .ok = 1};
    snprintf(f->ev[0].command, sizeof(f->ev[0].command), "set weight 50");
    f->ev[1] = (struct bench_xfb_event){.at_us = 9000000, .step = 2, .ok = 0};
    snprintf(f->ev[1].command, sizeof(f->ev[1].command), "set weight 500");
    snprintf(f->ev[1].reply, sizeof(f->ev[1].reply), "error: weight must be a number");
    cr_assert(eq(int, bench_xfb_check(&f->r, ramp_changes, 2), 0));
    cr_assert(eq(sz, f->r.nfails, 1));
    cr_assert(eq(str, f->r.fails[0],
                 "rollout step 2 \"set weight 500\" at 9.00s failed: error: weight must be a "
                 "number"));
    free(f);
}

Test(bench_check, too_few_responses_or_an_unknown_weight_are_not_judged)
{
    double y[NSEC];
    struct fx *f;

    for (int s = 0; s < NSEC; s++)
        y[s] = 90;
    f = fx_new(y, 0);
    f->o.check_min = 100000;
    cr_assert(eq(int, bench_xfb_check(&f->r, NULL, 0), 1), "%s", fails_text(&f->r));
    cr_assert(eq(sz, f->r.nwindows, 1));
    cr_assert(eq(int, f->r.windows[0].judged, 0));
    free(f);
    f = fx_new(y, -1);
    cr_assert(eq(int, bench_xfb_check(&f->r, NULL, 0), 1));
    cr_assert(eq(sz, f->r.nwindows, 0));
    free(f);
}

Test(bench_check, responses_without_the_route_header_fail_a_share_check)
{
    struct fx *f = fx_new(ramp_ok, 0);

    f->r.totals.routed = 0;
    cr_assert(eq(int, bench_xfb_check(&f->r, NULL, 0), 0));
    cr_assert(ne(ptr, (void *)strstr(f->r.fails[0], "no response carried the route header"), NULL));
    free(f);
}

Test(bench_check, the_weight_in_force_follows_the_history)
{
    cr_assert(eq(int, bench_xfb_weight_at(0, ramp_changes, 2, 4999999), 0));
    cr_assert(eq(int, bench_xfb_weight_at(0, ramp_changes, 2, 5000000), 5000));
    cr_assert(eq(int, bench_xfb_weight_at(0, ramp_changes, 2, 20000000), 0));
    cr_assert(eq(int, bench_xfb_weight_at(-1, ramp_changes, 2, 6000000), -1));
}

/* crossfade's `ramp 60 over 6s step 10`, started at 0.234 s: watch tells each step at its time. */
static const struct bench_xfb_change xf_ramp[] = {
    {1234000, 1000, 0}, {2234000, 2000, 0}, {3234000, 3000, 0},
    {4234000, 4000, 0}, {5234000, 5000, 0}, {6234000, 6000, 0},
};

/* The y share each second of that ramp calls for: 76.6 % of second 1 at 10, the rest at 0... */
static double
xf_ramp_pct(int s)
{
    if (s < 1)
        return 0;
    if (s > 6)
        return 60;
    return 0.234 * 10 * (s - 1) + 0.766 * 10 * s;
}

Test(bench_check, a_ramp_of_one_step_a_second_is_judged_and_passes)
{
    double y[NSEC];
    struct fx *f;

    for (int s = 0; s < NSEC; s++)
        y[s] = xf_ramp_pct(s) + (s % 2 == 0 ? 0.8 : -0.8); /* the keys' and sampling's noise */
    f = fx_new(y, 0);
    f->o.settle_ms = 250; /* the default */
    cr_assert(eq(int, bench_xfb_check(&f->r, xf_ramp, 6), 1), "%s", fails_text(&f->r));
    /* Every second of the ramp is a window of its own, judged: 0, six steps, 60. */
    cr_assert(eq(sz, f->r.nwindows, 8));
    cr_assert(eq(sz, f->r.njudged, 8));
    assert_window(&f->r, 0, 0, 1, 0, 0, 0);
    /* Second 1: 0.234 s at 0 then 10 (766); the step may reach the traffic 250 ms late (516). */
    assert_window(&f->r, 1, 1, 2, 766, 516, 766);
    assert_window(&f->r, 3, 3, 4, 2766, 2516, 2766);
    assert_window(&f->r, 7, 7, 20, 6000, 6000, 6000);
    for (size_t i = 0; i < f->r.nwindows; i++)
        cr_assert(f->r.windows[i].judged && f->r.windows[i].ok, "window %zu", i);
    free(f);
}

Test(bench_check, a_share_a_second_behind_the_ramp_fails)
{
    double y[NSEC];
    struct fx *f;

    /* Traffic that follows the ramp one second late: what a poll once a second would believe. */
    for (int s = 0; s < NSEC; s++)
        y[s] = xf_ramp_pct(s - 1);
    f = fx_new(y, 0);
    f->o.settle_ms = 250;
    cr_assert(eq(int, bench_xfb_check(&f->r, xf_ramp, 6), 0));
    cr_assert(ne(ptr,
                 (void *)strstr(fails_text(&f->r),
                                "y share 7.70 % from 2s to 3.0s (1000 responses) but weight 17.66 "
                                "in force on average (15.16 to 17.66 as the changes reached the "
                                "traffic): off by 7.46 pp, tolerance 5.00 pp"),
                 NULL),
              "%s", fails_text(&f->r));
    free(f);
}

Test(bench_check, a_share_off_the_weights_during_a_ramp_fails)
{
    double y[NSEC];
    struct fx *f;

    /* Half of what the ramp calls for: caught from the second step on. */
    for (int s = 0; s < NSEC; s++)
        y[s] = xf_ramp_pct(s) / 2;
    f = fx_new(y, 0);
    f->o.settle_ms = 250;
    cr_assert(eq(int, bench_xfb_check(&f->r, xf_ramp, 6), 0));
    cr_assert(eq(int, f->r.windows[1].ok, 1), "3.83 against 5.16-7.66 is within 5 pp");
    for (size_t i = 2; i < f->r.nwindows; i++)
        cr_assert(eq(int, f->r.windows[i].ok, 0), "window %zu passed", i);
    free(f);
}

Test(bench_check, a_change_mid_second_gives_the_time_weighted_expectation)
{
    static const struct bench_xfb_change mid[] = {{5250000, 5000, 0}};
    double y[NSEC];
    struct fx *f;

    cr_assert(eq(dbl, bench_xfb_weight_mean(0, mid, 1, 5000000, 6000000), 3750));
    cr_assert(eq(dbl, bench_xfb_weight_mean(0, mid, 1, 5500000, 6000000), 5000));
    cr_assert(eq(dbl, bench_xfb_weight_mean(0, mid, 1, 4000000, 5000000), 0));
    cr_assert(eq(dbl, bench_xfb_weight_mean(-1, mid, 1, 4000000, 5000000), -1));
    for (int s = 0; s < NSEC; s++)
        y[s] = s < 5 ? 0 : s == 5 ? 37.5 : 50;
    f = fx_new(y, 0);
    f->o.settle_ms = 0;
    cr_assert(eq(int, bench_xfb_check(&f->r, mid, 1), 1), "%s", fails_text(&f->r));
    assert_window(&f->r, 1, 5, 6, 3750, 3750, 3750);
    /* The whole second at 50 is 12.5 points too much for a change a quarter into it. */
    fx_second(f, 5, 1000, 50);
    cr_assert(eq(int, bench_xfb_check(&f->r, mid, 1), 0));
    cr_assert(eq(str, f->r.fails[0],
                 "y share 50.00 % from 5s to 6.0s (1000 responses) but weight 37.50 in force: off "
                 "by 12.50 pp, allowed 6.12 pp (the noise of 1000 responses)"));
    free(f);
}

Test(bench_check, a_second_whose_rate_changes_weighs_each_tenth_by_its_responses)
{
    /* 50 % from 5.5 s; the second half of second 5 brings three times the first half's
     * responses (y is faster, or the load warms up): 200 before, 600 after. */
    static const struct bench_xfb_change half[] = {{5500000, 5000, 0}};
    double y[NSEC];
    struct fx *f;

    for (int s = 0; s < NSEC; s++)
        y[s] = s < 5 ? 0 : 50;
    f = fx_new(y, 0);
    f->o.settle_ms = 0;
    fx_second(f, 5, 800, 37.5); /* 300 on y: half of the 600 after the change */
    for (int i = 0; i < 10; i++)
        f->secs[5].c.routed_tenth[i] = i < 5 ? 40 : 120;
    /* Over time the second expects 25 %; by its responses 0.5 x 600/800 = 37.5 %, as seen. */
    cr_assert(eq(int, bench_xfb_check(&f->r, half, 1), 1), "%s", fails_text(&f->r));
    assert_window(&f->r, 1, 5, 6, 3750, 3750, 3750);
    /* Without the tenths (as before) the same second would have been judged against 25 %. */
    memset(f->secs[5].c.routed_tenth, 0, sizeof(f->secs[5].c.routed_tenth));
    cr_assert(eq(int, bench_xfb_check(&f->r, half, 1), 0));
    free(f);
}

Test(bench_check, seconds_with_too_few_responses_are_judged_together_by_their_responses)
{
    double y[NSEC];
    struct fx *f;

    for (int s = 0; s < NSEC; s++)
        y[s] = xf_ramp_pct(s);
    f = fx_new(y, 0);
    f->o.settle_ms = 0;
    /* Seconds 1 and 2 hold 40 and 80 responses: one window of 120, expecting (40 x 766 + 80 x
     * 1766) / 120; second 3 alone has its thousand. */
    fx_second(f, 1, 40, 7.66);
    fx_second(f, 2, 80, 17.66);
    cr_assert(eq(int, bench_xfb_check(&f->r, xf_ramp, 6), 1), "%s", fails_text(&f->r));
    assert_window(&f->r, 1, 1, 3, (40 * 766.0 + 80 * 1766.0) / 120,
                  (40 * 766.0 + 80 * 1766.0) / 120, (40 * 766.0 + 80 * 1766.0) / 120);
    cr_assert(eq(u64, f->r.windows[1].routed, 120));
    assert_window(&f->r, 2, 3, 4, 2766, 2766, 2766);
    free(f);
}

Test(bench_check, a_change_known_only_from_a_poll_may_have_come_since_the_last_look)
{
    /* A poll at 6.1 s saw 50; the one at 5.1 s still saw 0: the change came in between. */
    static const struct bench_xfb_change polled[] = {{6100000, 5000, 1000000}};
    double y[NSEC];
    struct fx *f;

    for (int s = 0; s < NSEC; s++)
        y[s] = s < 5 ? 0 : s == 5 ? 30 : 50;
    f = fx_new(y, 0);
    f->o.settle_ms = 0;
    cr_assert(eq(int, bench_xfb_check(&f->r, polled, 1), 1), "%s", fails_text(&f->r));
    assert_window(&f->r, 1, 5, 6, 0, 0, 4500);
    assert_window(&f->r, 2, 6, 7, 4500, 4500, 5000);
    free(f);
}

Test(bench_check, nothing_is_judged_after_the_history_of_the_weight_ended)
{
    double y[NSEC];
    struct fx *f;

    /* The watch broke at 8.5 s; from 9 s the share is far off a weight xfbench no longer knows. */
    for (int s = 0; s < NSEC; s++)
        y[s] = s < 9 ? 0 : 80;
    f = fx_new(y, 0);
    f->r.weights_lost = 1;
    f->r.weights_lost_us = 8500000;
    cr_assert(eq(int, bench_xfb_check(&f->r, NULL, 0), 1), "%s", fails_text(&f->r));
    cr_assert(eq(sz, f->r.nwindows, 2));
    assert_window(&f->r, 0, 0, 8, 0, 0, 0);
    cr_assert(eq(int, f->r.windows[0].judged, 1));
    cr_assert(eq(int, f->r.windows[1].judged, 0));
    cr_assert(eq(int, f->r.windows[1].unknown, 1));
    cr_assert(eq(dbl, f->r.windows[1].from_s, 8));
    /* Without the loss, the same shares fail. */
    f->r.weights_lost = 0;
    cr_assert(eq(int, bench_xfb_check(&f->r, NULL, 0), 0));
    free(f);
}

Test(bench_check, each_second_gets_its_end_weight_and_its_time_weighted_mean)
{
    static const struct bench_xfb_change mid[] = {{5250000, 5000, 0}, {5500000, 1000, 0}};
    double y[NSEC] = {0};
    struct fx *f = fx_new(y, 0);

    bench_xfb_weights_fill(&f->r, mid, 2);
    cr_assert(eq(int, f->secs[4].weight_bp, 0));
    cr_assert(eq(dbl, f->secs[4].mean_bp, 0));
    cr_assert(eq(int, f->secs[5].weight_bp, 1000));
    cr_assert(eq(dbl, f->secs[5].mean_bp, 0.25 * 5000 + 0.5 * 1000));
    cr_assert(eq(int, f->secs[6].weight_bp, 1000));
    f->r.initial_bp = -1;
    bench_xfb_weights_fill(&f->r, mid, 2);
    cr_assert(eq(int, f->secs[6].weight_bp, -1));
    cr_assert(eq(dbl, f->secs[6].mean_bp, -1));
    free(f);
}

/* Writes a report into memory. */
static char *
report(int (*fn)(const struct bench_xfb_result *, FILE *), const struct bench_xfb_result *r)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    cr_assert(ne(ptr, f, NULL));
    cr_assert(eq(int, fn(r, f), 0));
    fclose(f);
    return buf;
}

Test(bench_check, reports_escape_commands_and_replies)
{
    struct fx *f = fx_new(ramp_ok, 0);
    char *json, *html;

    f->r.nevents = 1;
    f->ev[0] = (struct bench_xfb_event){.at_us = 5000000, .step = 1, .ok = 0, .weight_bp = -1};
    f->r.wsrc = BENCH_XFB_WSRC_POLL;
    snprintf(f->r.weights_note, sizeof(f->r.weights_note),
             "crossfade has no watch command "
             "(error: unknown command \"watch\")");
    snprintf(f->ev[0].command, sizeof(f->ev[0].command), "admin which \"<b>\"\\");
    snprintf(f->ev[0].reply, sizeof(f->ev[0].reply), "error: \x01 & <script>");
    bench_xfb_check(&f->r, ramp_changes, 2);
    json = report(bench_xfb_report_json, &f->r);
    html = report(bench_xfb_report_html, &f->r);
    cr_assert(ne(ptr, strstr(json, "\"command\": \"admin which \\\"<b>\\\"\\\\\""), NULL), "%s",
              json);
    cr_assert(ne(ptr, strstr(json, "\"reply\": \"error: \\u0001 & <script>\""), NULL));
    cr_assert(ne(ptr,
                 strstr(json, "\"note\": \"crossfade has no watch command (error: unknown "
                              "command \\\"watch\\\")\""),
                 NULL),
              "%s", json);
    cr_assert(eq(ptr, strstr(html, "<script"), NULL), "unescaped markup in the page");
    cr_assert(ne(ptr, strstr(html, "error: \x01 &amp; &lt;script&gt;"), NULL));
    /* Self-contained: nothing is fetched. */
    cr_assert(eq(ptr, strstr(html, " src="), NULL));
    cr_assert(eq(ptr, strstr(html, " href="), NULL));
    cr_assert(eq(ptr, strstr(html, "url("), NULL));
    cr_assert(eq(ptr, strstr(html, "@import"), NULL));
    cr_assert(ne(ptr, strstr(html, "<svg"), NULL));
    free(json);
    free(html);
    free(f);
}

Test(bench_check, the_json_gives_the_history_and_each_windows_range)
{
    double y[NSEC];
    struct fx *f;
    char *json, *text;

    for (int s = 0; s < NSEC; s++)
        y[s] = xf_ramp_pct(s);
    f = fx_new(y, 0);
    f->o.settle_ms = 250;
    f->r.wsrc = BENCH_XFB_WSRC_WATCH;
    f->r.changes = xf_ramp;
    f->r.nchanges = 6;
    bench_xfb_weights_fill(&f->r, xf_ramp, 6);
    bench_xfb_check(&f->r, xf_ramp, 6);
    json = report(bench_xfb_report_json, &f->r);
    text = report(bench_xfb_report_text, &f->r);
    cr_assert(ne(ptr,
                 strstr(json, "\"weights\": {\"source\": \"watch\", \"lost_s\": null, \"note\": "
                              "null, \"changes\": [\n    {\"at_s\": 1.234000, \"lead_s\": "
                              "0.000000, \"weight\": 10.00},"),
                 NULL),
              "%s", json);
    cr_assert(ne(ptr,
                 strstr(json, "{\"from_s\": 1.000, \"to_s\": 2.000, \"weight\": 7.66, "
                              "\"weight_min\": 5.16, \"weight_max\": 7.66, \"routed\": 1000, "
                              "\"y\": 0.0770, \"judged\": true, \"ok\": true, \"off_pp\": 0.04, "
                              "\"reason\": null}"),
                 NULL),
              "%s", json);
    cr_assert(ne(ptr, strstr(json, "\"second\": 1, "), NULL));
    cr_assert(ne(ptr, strstr(json, "\"weight\": 10.00, \"weight_mean\": 7.66}"), NULL), "%s", json);
    cr_assert(ne(ptr, strstr(json, "\"check\": {\"passed\": true, \"failures\": [], \"judged\": 8"),
                 NULL),
              "%s", json);
    cr_assert(
        ne(ptr, strstr(text, "weights:   from watch, each change at its time (6 changes)"), NULL),
        "%s", text);
    cr_assert(ne(ptr,
                 strstr(text, "1.0s-2.0s      weight   7.66 (5.16-7.66)  y   7.70% of 1000  ok"),
                 NULL),
              "%s", text);
    free(json);
    free(text);
    free(f);
}

/* A window of few responses may stray by its sampling noise (4 standard deviations) when that is
 * more than --tolerance; a large window is held to --tolerance. */
Test(bench_check, a_small_window_is_allowed_its_sampling_noise_a_large_one_is_not)
{
    double y[NSEC];
    struct fx *f;

    for (int s = 0; s < NSEC; s++)
        y[s] = xf_ramp_pct(s);
    f = fx_new(y, 0);
    f->o.settle_ms = 0;
    /* Second 3 of the ramp alone, 100 responses, expecting 27.66 %: 4 sd is 17.9 points, so
     * 39.66 % (12 points off) is noise, not a fault. */
    fx_second(f, 3, 100, xf_ramp_pct(3) + 12);
    cr_assert(eq(int, bench_xfb_check(&f->r, xf_ramp, 6), 1), "%s", fails_text(&f->r));
    /* The same 12 points over 100,000 responses are no noise. */
    fx_second(f, 3, 100000, xf_ramp_pct(3) + 12);
    cr_assert(eq(int, bench_xfb_check(&f->r, xf_ramp, 6), 0));
    cr_assert(ne(ptr, strstr(f->r.fails[0], "tolerance 5.00 pp"), NULL), "%s", f->r.fails[0]);
    /* And 30 points over 100 responses are more than the noise: a fault, said as such. */
    fx_second(f, 3, 100, xf_ramp_pct(3) + 30);
    cr_assert(eq(int, bench_xfb_check(&f->r, xf_ramp, 6), 0));
    cr_assert(ne(ptr, strstr(f->r.fails[0], "(the noise of 100 responses)"), NULL), "%s",
              f->r.fails[0]);
    free(f);
}
