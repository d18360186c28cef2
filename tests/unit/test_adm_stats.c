/* tests/unit/test_adm_stats.c -- show stats and show stats json over counters filled by hand. */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "admin/adm.h"

static const char fx_yaml[] = "listen:\n  - address: \"127.0.0.1:8000\"\n"
                              "clusters:\n  x:\n    nodes: [\"10.0.0.1:8000\"]\n"
                              "  y:\n    nodes: [\"10.0.1.1:8000\"]\n";

static struct cfg *fx_cfg;
static struct bal_router fx_router;
static struct adm_state fx_st;
static struct evbuffer *fx_out;
static char *fx_reply;
static struct xf_stats *fx_stats;

/* What the proxy gives the admin socket: the workers' counters summed (here one worker's). */
static void
fx_stats_sum(void *arg, struct xf_stats *out)
{
    xf_stats_merge(out, arg);
}

/* The seconds the proxy keeps: filled by hand, against the real clock (adm_window reads it). */
static struct xf_mon *fx_mon;

static const struct xf_mon *
fx_mon_get(void *arg)
{
    return arg;
}

/* Counts a response time of `us` in cluster c, `ago` seconds before the current one. */
static void
fx_latency(int c, uint64_t us, uint64_t ago)
{
    uint64_t sec = xf_now_ms() / 1000u - ago;
    struct xf_mon_sec *ms = &fx_mon->sec[sec % XF_MON_SECONDS];

    if (ms->second != sec) {
        memset(ms, 0, sizeof(*ms));
        ms->second = sec;
    }
    ms->requests[c]++;
    ms->lat[c][xf_lat_bucket(us)]++;
}

static uint64_t
fx_clock(void)
{
    return 500000; /* second 500 */
}

static void
fx_setup(void)
{
    struct xf_err err = {{0}};

    xf_log_min = XF_LOG_WARN;
    fx_cfg = cfg_parse(fx_yaml, strlen(fx_yaml), "t.yaml", &err);
    cr_assert(ne(ptr, fx_cfg, NULL), "%s", err.msg);
    bal_router_init(&fx_router, bal_snapshot_new(fx_cfg, NULL, 1, &err));
    cr_assert(eq(int, adm_state_init(&fx_st, fx_cfg, &fx_router, NULL, &err), 0), "%s", err.msg);
    fx_st.mono_ms = fx_clock;
    fx_out = evbuffer_new();
    fx_stats = calloc(1, sizeof(*fx_stats));
    fx_mon = calloc(1, sizeof(*fx_mon));
}

static void
fx_teardown(void)
{
    free(fx_stats);
    free(fx_mon);
    free(fx_reply);
    evbuffer_free(fx_out);
    adm_state_fini(&fx_st);
    bal_router_fini(&fx_router);
    cfg_free(fx_cfg);
}

TestSuite(adm_stats, .init = fx_setup, .fini = fx_teardown);
TestSuite(adm_guard, .init = fx_setup, .fini = fx_teardown);

static const char *
run(const char *line, enum adm_result want)
{
    enum adm_result res = adm_exec(&fx_st, &(struct adm_peer){0, 1, 1}, line, strlen(line), fx_out);
    size_t n = evbuffer_get_length(fx_out);

    free(fx_reply);
    fx_reply = calloc(1, n + 1);
    evbuffer_remove(fx_out, fx_reply, n);
    fx_reply[n - 2] = '\0';
    cr_assert(eq(int, res, want), "\"%s\": %s", line, fx_reply);
    return fx_reply;
}

/* x: 100 requests, 90 2xx, 5 4xx, 5 5xx (2 connect failures, 1 queue), 3 active; latencies
 * 1..100 ms in the last minute plus one from two minutes ago that must not count; failovers,
 * retries, health and queue figures each of their own. y: nothing. */
static void
fx_fill(void)
{
    struct xf_cluster_stats *x = &fx_stats->cluster[0];

    x->requests = 100;
    x->responses[2] = 90;
    x->responses[4] = 5;
    x->responses[5] = 5;
    x->failures[XF_FAIL_CONNECT] = 2;
    x->failures[XF_FAIL_QUEUE] = 1;
    x->active = 3;
    x->failovers = 11;
    x->retries = 12;
    x->health_down = 13;
    x->health_up = 14;
    x->ejections = 15;
    x->queue_waiting = 16;
    x->queue_timeouts = 17;
    x->queue_full = 18;
    x->tunnels = 27;
    x->tunnels_total = 28;
    x->bytes_in = 32;
    x->bytes_out = 33;
    x->test_requests = 34;
    x->test_errors = 35;
    for (uint64_t i = 1; i <= 100; i++)
        fx_latency(0, i * 1000, 1 + i % 50);
    fx_latency(0, 9000000, 120);
    fx_st.monitor = (struct adm_monitor){.mon = fx_mon_get, .arg = fx_mon};
    fx_stats->client_connections = 7;
    fx_stats->override_invalid = 19;
    fx_stats->override_not_allowed = 20;
    fx_stats->tls_handshakes = 21;
    fx_stats->tls_resumed = 22;
    fx_stats->tls_failed = 23;
    fx_stats->tls_node_handshakes = 24;
    fx_stats->tls_node_resumed = 25;
    fx_stats->tls_node_failed = 26;
    fx_stats->tcp_connections = 29;
    fx_stats->tcp_no_sni = 30;
    fx_stats->proxy_refused = 31;
    fx_st.stats = fx_stats_sum;
    fx_st.stats_arg = fx_stats;
}

Test(adm_stats, without_counters_the_reply_says_so)
{
    cr_assert(eq(str, (char *)run("show stats", ADM_ERROR),
                 "error: no traffic counters: this crossfade does not count yet"));
    cr_assert(
        eq(str, (char *)run("show stats yaml", ADM_ERROR), "error: usage: show stats [json]"));
}

Test(adm_stats, the_text_form_has_one_line_per_figure_prefixed_by_the_cluster)
{
    fx_fill();
    cr_assert(eq(str, (char *)run("show stats", ADM_OK),
                 "x requests 100\n"
                 "x active 3\n"
                 "x responses 1xx=0 2xx=90 3xx=0 4xx=5 5xx=5\n"
                 "x failures connect=2 timeout=0 reset=0 invalid=0 no_node=0 queue=1\n"
                 "x latency_1m p50=49.66ms p90=89.08ms p99=99.32ms responses=100\n"
                 "x failovers 11\n"
                 "x retries 12\n"
                 "x health down=13 up=14 ejected=15\n"
                 "x queue waiting=16 timeouts=17 full=18\n"
                 "x tunnels open=27 total=28\n"
                 "x bytes in=32 out=33\n"
                 "x test requests=34 errors=35\n"
                 "y requests 0\n"
                 "y active 0\n"
                 "y responses 1xx=0 2xx=0 3xx=0 4xx=0 5xx=0\n"
                 "y failures connect=0 timeout=0 reset=0 invalid=0 no_node=0 queue=0\n"
                 "y latency_1m p50=- p90=- p99=- responses=0\n"
                 "y failovers 0\n"
                 "y retries 0\n"
                 "y health down=0 up=0 ejected=0\n"
                 "y queue waiting=0 timeouts=0 full=0\n"
                 "y tunnels open=0 total=0\n"
                 "y bytes in=0 out=0\n"
                 "y test requests=0 errors=0\n"
                 "client_connections 7\n"
                 "override_ignored invalid=19 not_allowed=20\n"
                 "tls_handshakes completed=21 resumed=22 failed=23\n"
                 "tls_node_handshakes completed=24 resumed=25 failed=26\n"
                 "tcp connections=29 no_sni=30 proxy_refused=31"));
}

Test(adm_stats, the_json_form_is_one_object_on_one_line)
{
    fx_fill();
    cr_assert(eq(str, (char *)run("show stats json", ADM_OK),
                 "{\"clusters\":{\"x\":{\"requests\":100,\"active\":3,\"responses\":{\"1xx\":0,"
                 "\"2xx\":90,\"3xx\":0,\"4xx\":5,\"5xx\":5},\"failures\":{\"connect\":2,"
                 "\"timeout\":0,\"reset\":0,\"invalid\":0,\"no_node\":0,\"queue\":1},"
                 "\"latency_1m\":{\"responses\":100,\"p50_us\":49664,\"p90_us\":89088,"
                 "\"p99_us\":99328},\"failovers\":11,\"retries\":12,\"health\":{\"down\":13,"
                 "\"up\":14,\"ejected\":15},\"queue\":{\"waiting\":16,\"timeouts\":17,"
                 "\"full\":18},\"tunnels\":{\"open\":27,\"total\":28},"
                 "\"bytes\":{\"in\":32,\"out\":33},\"test\":{\"requests\":34,\"errors\":35}},"
                 "\"y\":{\"requests\":0,\"active\":0,\"responses\":{\"1xx\":0,\"2xx\":0,\"3xx\":0,"
                 "\"4xx\":0,\"5xx\":0},\"failures\":{\"connect\":0,\"timeout\":0,\"reset\":0,"
                 "\"invalid\":0,\"no_node\":0,\"queue\":0},\"latency_1m\":{\"responses\":0,"
                 "\"p50_us\":0,\"p90_us\":0,\"p99_us\":0},\"failovers\":0,\"retries\":0,"
                 "\"health\":{\"down\":0,\"up\":0,\"ejected\":0},\"queue\":{\"waiting\":0,"
                 "\"timeouts\":0,\"full\":0},\"tunnels\":{\"open\":0,\"total\":0},"
                 "\"bytes\":{\"in\":0,\"out\":0},\"test\":{\"requests\":0,\"errors\":0}}},"
                 "\"client_connections\":7,"
                 "\"override_ignored\":{\"invalid\":19,\"not_allowed\":20},"
                 "\"tls_handshakes\":{\"completed\":21,\"resumed\":22,\"failed\":23},"
                 "\"tls_node_handshakes\":{\"completed\":24,\"resumed\":25,\"failed\":26},"
                 "\"tcp\":{\"connections\":29,\"no_sni\":30,\"proxy_refused\":31}}"));
}

/* The largest figures still fit the one line of JSON whole (no cut object). */
Test(adm_stats, the_json_line_holds_every_counter_at_its_largest)
{
    const char *reply;

    for (int c = 0; c < 2; c++) {
        struct xf_cluster_stats *cs = &fx_stats->cluster[c];

        cs->requests = cs->active = cs->failovers = cs->retries = UINT64_MAX;
        cs->health_down = cs->health_up = cs->ejections = UINT64_MAX;
        cs->queue_waiting = cs->queue_timeouts = cs->queue_full = UINT64_MAX;
        cs->tunnels = cs->tunnels_total = UINT64_MAX;
        cs->bytes_in = cs->bytes_out = cs->test_requests = cs->test_errors = UINT64_MAX;
        for (int k = 0; k < 6; k++)
            cs->responses[k] = UINT64_MAX;
        for (int f = 0; f < XF_FAIL_COUNT; f++)
            cs->failures[f] = UINT64_MAX;
    }
    fx_stats->client_connections = UINT64_MAX;
    fx_stats->override_invalid = fx_stats->override_not_allowed = UINT64_MAX;
    fx_stats->tls_handshakes = fx_stats->tls_resumed = fx_stats->tls_failed = UINT64_MAX;
    fx_stats->tls_node_handshakes = fx_stats->tls_node_resumed = UINT64_MAX;
    fx_stats->tls_node_failed = UINT64_MAX;
    fx_stats->tcp_connections = fx_stats->tcp_no_sni = fx_stats->proxy_refused = UINT64_MAX;
    fx_st.stats = fx_stats_sum;
    fx_st.stats_arg = fx_stats;
    reply = run("show stats json", ADM_OK);
    cr_assert(ne(ptr,
                 strstr(reply, "\"queue\":{\"waiting\":18446744073709551615,\"timeouts\":"
                               "18446744073709551615,\"full\":18446744073709551615},"
                               "\"tunnels\":{\"open\":18446744073709551615,"
                               "\"total\":18446744073709551615},"
                               "\"bytes\":{\"in\":18446744073709551615,"
                               "\"out\":18446744073709551615},"
                               "\"test\":{\"requests\":18446744073709551615,"
                               "\"errors\":18446744073709551615}}},"
                               "\"client_connections\":18446744073709551615,"
                               "\"override_ignored\":{\"invalid\":18446744073709551615,"
                               "\"not_allowed\":18446744073709551615},"
                               "\"tls_handshakes\":{\"completed\":18446744073709551615,"
                               "\"resumed\":18446744073709551615,\"failed\":18446744073709551615},"
                               "\"tls_node_handshakes\":{\"completed\":18446744073709551615,"
                               "\"resumed\":18446744073709551615,\"failed\":18446744073709551615},"
                               "\"tcp\":{\"connections\":18446744073709551615,"
                               "\"no_sni\":18446744073709551615,"
                               "\"proxy_refused\":18446744073709551615}}"),
                 NULL),
              "%s", reply);
}

/* Seconds at two weights make two segments, each with its own sums; the audit trail follows. */
Test(adm_stats, the_report_has_a_segment_per_weight_with_x_against_y)
{
    const char *reply;
    uint64_t now_s = xf_now_ms() / 1000u;

    for (uint64_t ago = 6; ago >= 1; ago--) {
        struct xf_mon_sec *ms = &fx_mon->sec[(now_s - ago) % XF_MON_SECONDS];

        memset(ms, 0, sizeof(*ms));
        ms->second = now_s - ago;
        ms->wall_ms = 1796540000000 + (int64_t)(6 - ago) * 1000;
        ms->weight_bp = ago > 3 ? 1000 : 2500;
        ms->requests[0] = 90;
        ms->requests[1] = ago > 3 ? 10 : 30;
        ms->errors[1] = ago > 3 ? 0 : 3;
        ms->lat[1][xf_lat_bucket(2000)] = ms->requests[1];
    }
    fx_mon->last = now_s - 1;
    /* The admin started before those seconds: none is left out as counted before it. */
    fx_st.started = 1796540000 - 10;
    fx_st.monitor = (struct adm_monitor){.mon = fx_mon_get, .arg = fx_mon};
    reply = run("report", ADM_OK);
    cr_assert(ne(ptr, strstr(reply, "(2 segments, one per weight in force; x | y)"), NULL), "%s",
              reply);
    cr_assert(ne(ptr,
                 strstr(reply, "weight 10.00 requests 270 | 30 (y share 10.00%) errors "
                               "0.00% | 0.00%"),
                 NULL),
              "%s", reply);
    cr_assert(ne(ptr,
                 strstr(reply, "weight 25.00 requests 270 | 90 (y share 25.00%) errors "
                               "0.00% | 10.00%"),
                 NULL),
              "%s", reply);
    cr_assert(ne(ptr, strstr(reply, "\nevent #"), NULL), "%s", reply);
    reply = run("report json", ADM_OK);
    cr_assert(
        ne(ptr, strstr(reply, "\"weight\":25.00,\"x\":{\"requests\":270,\"errors\":0,"), NULL),
        "%s", reply);
    cr_assert(eq(str, (char *)run("report yaml", ADM_ERROR), "error: usage: report [json]"));
}

/* Fills the last `n` seconds: x with `ex` errors in `rx` requests at `us_x`, y likewise. */
static void
fx_window(unsigned n, uint32_t rx, uint32_t ex, uint64_t us_x, uint32_t ry, uint32_t ey,
          uint64_t us_y)
{
    uint64_t now_s = xf_now_ms() / 1000u;

    for (uint64_t ago = n; ago >= 1; ago--) {
        struct xf_mon_sec *ms = &fx_mon->sec[(now_s - ago) % XF_MON_SECONDS];

        memset(ms, 0, sizeof(*ms));
        ms->second = now_s - ago;
        ms->requests[0] = rx;
        ms->errors[0] = ex;
        ms->requests[1] = ry;
        ms->errors[1] = ey;
        /* Spread over a few buckets around the value, as real times are. */
        for (uint32_t i = 0; i < rx; i++)
            ms->lat[0][xf_lat_bucket(us_x + us_x * (i % 10) / 50)]++;
        for (uint32_t i = 0; i < ry; i++)
            ms->lat[1][xf_lat_bucket(us_y + us_y * (i % 10) / 50)]++;
    }
    fx_mon->last = now_s - 1;
}

static void
fx_guard(void)
{
    xf_log_min = XF_LOG_ERR; /* the trips are logged as warnings: expected here */
    fx_cfg->guard.configured = true;
    fx_cfg->guard.window_s = 10;
    fx_st.guard.on = true;
    fx_st.monitor = (struct adm_monitor){.mon = fx_mon_get, .arg = fx_mon};
}

Test(adm_guard, ten_percent_errors_on_y_roll_back_and_hold_the_weight_down_until_reset)
{
    fx_guard();
    run("set weight 50", ADM_OK);
    fx_window(10, 100, 0, 2000, 100, 10, 2000);
    adm_guard_tick(&fx_st);
    cr_assert(eq(int, fx_st.guard.verdict, ADM_VERDICT_FAIL));
    cr_assert(fx_st.guard.tripped);
    cr_assert(eq(str, (char *)run("show weight", ADM_OK), "x 100.00\ny 0.00"));
    cr_assert(ne(ptr,
                 strstr(run("show events", ADM_OK),
                        "guard armed -> guard: y error rate 10.0% vs x 0.0% over 10s "
                        "(p < 0.001): rolled back"),
                 NULL),
              "%s", fx_reply);
    cr_assert(ne(ptr, strstr(run("set weight 10", ADM_ERROR), "\"guard reset\" first"), NULL));
    cr_assert(ne(ptr, strstr(run("promote", ADM_ERROR), "\"guard reset\" first"), NULL));
    /* Acts once: the next failing second changes nothing more. */
    adm_guard_tick(&fx_st);
    cr_assert(eq(u64, fx_st.guard.trips, 1));
    run("guard reset", ADM_OK);
    cr_assert(eq(str, (char *)run("set weight 10", ADM_OK), "ok: weight y 10.00 (was 0.00)"));
}

Test(adm_guard, a_twice_slower_y_fails_a_healthy_one_passes_and_few_requests_are_inconclusive)
{
    fx_guard();
    fx_cfg->guard.action = CFG_GUARD_PAUSE;
    run("set weight 50", ADM_OK);
    fx_window(10, 100, 0, 20000, 100, 0, 40000);
    adm_guard_tick(&fx_st);
    cr_assert(eq(int, fx_st.guard.verdict, ADM_VERDICT_FAIL), "%s", fx_st.guard.reason);
    cr_assert(ne(ptr, strstr(fx_st.guard.reason, "y p99"), NULL), "%s", fx_st.guard.reason);
    /* pause: the weight stays. */
    cr_assert(eq(str, (char *)run("show weight", ADM_OK), "x 50.00\ny 50.00"));
    run("guard reset", ADM_OK);
    /* The seconds it acted on are not judged again: nothing newer yet, so inconclusive. */
    adm_guard_tick(&fx_st);
    cr_assert(eq(int, fx_st.guard.verdict, ADM_VERDICT_INCONCLUSIVE), "%s", fx_st.guard.reason);
    cr_assert(not(fx_st.guard.tripped));
    /* New seconds (the fixture writes them in the past: let the window take them all). */
    fx_st.guard.since_s = 0;
    fx_window(10, 100, 1, 20000, 100, 1, 20500);
    adm_guard_tick(&fx_st);
    cr_assert(eq(int, fx_st.guard.verdict, ADM_VERDICT_PASS), "%s", fx_st.guard.reason);
    fx_window(10, 100, 0, 20000, 5, 5, 80000);
    adm_guard_tick(&fx_st);
    cr_assert(eq(int, fx_st.guard.verdict, ADM_VERDICT_INCONCLUSIVE), "%s", fx_st.guard.reason);
    cr_assert(not(fx_st.guard.tripped));
    cr_assert(ne(ptr, strstr(fx_st.guard.reason, "too few requests"), NULL));
}

Test(adm_guard, off_and_unconfigured_guards_do_nothing)
{
    cr_assert(eq(str, (char *)run("guard on", ADM_ERROR),
                 "error: no guard is configured (add a guard section and reload)"));
    fx_guard();
    run("guard off", ADM_OK);
    run("set weight 50", ADM_OK);
    fx_window(10, 100, 0, 2000, 100, 50, 2000);
    adm_guard_tick(&fx_st);
    cr_assert(eq(int, fx_st.guard.verdict, ADM_VERDICT_OFF));
    cr_assert(eq(str, (char *)run("show weight", ADM_OK), "x 50.00\ny 50.00"));
    cr_assert(ne(ptr, strstr(run("ramp 60 over 10s guarded", ADM_ERROR), "needs the guard"), NULL));
}
