/* tests/unit/test_bench_check.c -- xfbench --check (failed requests, commands, the y share) and the
 * reports' escaping. */
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
        f->secs[s].c.on_y = (uint64_t)(y_pct[s] * 10);
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

/* 0 % for 5 s, then 50 % (the weight changes at 5.0 s), back to 0 at 12.0 s. */
static const double ramp_ok[NSEC] = {0,  0,  0, 0, 0, 22, 40, 49, 51, 50,
                                     49, 50, 9, 1, 0, 0,  0,  0,  0,  0};
static const struct bench_xfb_change ramp_changes[] = {{5000000, 5000}, {12000000, 0}};

Test(bench_check, a_clean_run_with_the_share_on_the_weight_passes)
{
    struct fx *f = fx_new(ramp_ok, 0);

    cr_assert(eq(int, bench_xfb_check(&f->r, ramp_changes, 2), 1), "%s", fails_text(&f->r));
    /* Windows: 0-5 s at 0; 7-12 s at 50 (2 s settle); 14-20 s at 0. */
    cr_assert(eq(sz, f->r.nwindows, 3));
    cr_assert(eq(dbl, f->r.windows[0].from_s, 0));
    cr_assert(eq(dbl, f->r.windows[0].to_s, 5));
    cr_assert(eq(dbl, f->r.windows[1].from_s, 7));
    cr_assert(eq(dbl, f->r.windows[1].to_s, 12));
    cr_assert(eq(uint, f->r.windows[1].weight_bp, 5000));
    cr_assert(eq(u64, f->r.windows[1].routed, 5000));
    cr_assert(eq(dbl, f->r.windows[2].from_s, 14));
    cr_assert(eq(dbl, f->r.windows[2].to_s, 20));
    free(f);
}

Test(bench_check, seconds_still_settling_after_a_change_are_not_judged)
{
    /* 22 % and 40 % at 5-7 s would fail if judged against 50. */
    struct fx *f = fx_new(ramp_ok, 0);

    f->o.settle_ms = 0;
    cr_assert(eq(int, bench_xfb_check(&f->r, ramp_changes, 2), 0));
    cr_assert(ne(ptr, (void *)strstr(fails_text(&f->r), "from 5s to 12.0s"), NULL), "%s",
              fails_text(&f->r));
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
    snprintf(f->ev[0].command, sizeof(f->ev[0].command), "admin which \"<b>\"\\");
    snprintf(f->ev[0].reply, sizeof(f->ev[0].reply), "error: \x01 & <script>");
    bench_xfb_check(&f->r, ramp_changes, 2);
    json = report(bench_xfb_report_json, &f->r);
    html = report(bench_xfb_report_html, &f->r);
    cr_assert(ne(ptr, strstr(json, "\"command\": \"admin which \\\"<b>\\\"\\\\\""), NULL), "%s",
              json);
    cr_assert(ne(ptr, strstr(json, "\"reply\": \"error: \\u0001 & <script>\""), NULL));
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
