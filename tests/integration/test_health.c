/* tests/integration/test_health.c -- active health checks (the probe, fall and rise, the health
 * port, expect) and passive detection (outlier ejection), as traffic, show nodes, show stats and
 * the log see them. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/integration/harness.h"

TestSuite(health, .init = h_setup, .fini = h_teardown);

/* Fast checks: a node that fails them is down after 3 x 200 ms. */
#define FAST     "interval: 200ms, timeout: 100ms, rise: 2, fall: 3"
#define OK_REPLY "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Upstream: fake\r\n\r\nok\n"
#define WAIT_MS  3000 /* the longest wait for a state change that takes a few intervals */

/* Sleeps until h_now_ms() reaches `when` (at once when it has): for a time that must pass, never
 * to wait for something to happen. */
static void
sleep_until(uint64_t when)
{
    uint64_t now = h_now_ms();

    if (when > now)
        h_sleep_ms((unsigned)(when - now));
}

/* Sends GET / and returns the response (asserts that one came). */
static struct h_msg *
get(struct h_conn *c)
{
    struct h_msg *m = h_alloc(sizeof(*m));

    cr_assert(eq(int, h_get(c, "/", m), 0), "%s", m->error);
    return m;
}

/* The X-Upstream of a response ("" when it has none). */
static const char *
upstream(const struct h_msg *m)
{
    const char *u = h_header(m, "X-Upstream");

    return u != NULL ? u : "";
}

/* Sends GET / and asserts a 200 from `name`. */
static void
get_from(struct h_conn *c, const char *name)
{
    struct h_msg *m = get(c);

    cr_assert(eq(int, m->status, 200), "status %d from \"%s\", expected 200 from %s", m->status,
              upstream(m), name);
    cr_assert(eq(str, (char *)upstream(m), (char *)name));
}

/* Asserts that the node's line of `show nodes` has `value` as word `word`. */
static void
assert_node(int adm, const char *cluster, const char *addr, unsigned word, const char *value)
{
    const char *line = h_admin_node_line(adm, cluster, addr);

    cr_assert(ne(ptr, (void *)line, NULL), "no node %s %s in show nodes:\n%s", cluster, addr,
              h_admin_cmd(adm, "show nodes"));
    cr_assert(eq(str, (char *)h_word(line, word), (char *)value), "show nodes: %s", line);
}

/* Waits until word `word` of the node's line is `value`; asserts it happens within timeout_ms. */
static void
wait_node(int adm, const char *cluster, const char *addr, unsigned word, const char *value,
          int timeout_ms)
{
    cr_assert(h_admin_wait_node(adm, cluster, addr, word, value, timeout_ms),
              "node %s %s: no \"%s\" within %d ms; show nodes:\n%s", cluster, addr, value,
              timeout_ms, h_admin_cmd(adm, "show nodes"));
}

static const char *
log_of(const struct h_proxy *p)
{
    return p->proc->log_path;
}

/* Asserts that crossfade logs a line holding `needle` within a second. */
static void
assert_logged(const struct h_proxy *p, const char *needle)
{
    cr_assert(h_log_wait(log_of(p), needle, 1000), "no \"%s\" in crossfade's log", needle);
}

/* ------------------------------------------------------------------ active checks */

Test(health, a_node_that_never_answers_is_down_in_interval_x_fall, .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f = h_fake_start1("", H_FAKE_SILENT);
    struct h_upstream *x2 = h_upstream_start("x2", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{h_fake_port(f)}, {x2->port}}, .x_extra = "    health: {path: /status, " FAST "}\n"});
    uint64_t t0 = h_now_ms();
    int adm = h_admin_connect(p);
    const char *addr = h_fmt("127.0.0.1:%d", h_fake_port(f));
    const char *line = NULL;
    bool down = false;

    /* interval 200 ms x fall 3 = 600 ms, and 400 ms for scheduling. */
    while (!down && h_now_ms() - t0 <= 1000) {
        line = h_admin_node_line(adm, "x", addr);
        down = strcmp(h_word(line, H_NODE_STATE), "down") == 0;
        if (!down)
            h_sleep_ms(50);
    }
    cr_assert(down, "the silent node is not down 1000 ms after the start: %s",
              line != NULL ? line : "(not in show nodes)");
    cr_assert(eq(str, (char *)h_word(line, H_NODE_CHECK), "fail:timeout"), "%s", line);
    cr_assert(eq(str, (char *)h_word(line, H_NODE_EJECTIONS), "0"), "%s", line);
    cr_assert(ge(sz, h_fake_conns(f), (size_t)3), "fewer than fall (3) probe connections");
    assert_node(adm, "x", x2->addr, H_NODE_STATE, "up");
    assert_node(adm, "x", x2->addr, H_NODE_CHECK, "ok:200");
    assert_logged(p, h_fmt("event=node_down cluster=x node=%s", addr));
    h_assert_stat(adm, "x health", "down", 1);
    h_proxy_finish(p);
}

Test(health, show_nodes_header_and_a_node_without_checks, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{x1->port, 2}}});
    int adm = h_admin_connect(p);
    char *nodes = h_admin_cmd(adm, "show nodes");
    const char *header = "cluster address weight state active idle check ejections note\n";

    cr_assert(eq(int, strncmp(nodes, header, strlen(header)), 0), "%s", nodes);
    cr_assert(ne(ptr, strstr(nodes, h_fmt("\nx %s 2 up 0 0 - 0 -\n", x1->addr)), NULL),
              "a node without checks shows check \"-\" and 0 ejections:\n%s", nodes);
    h_proxy_finish(p);
}

Test(health, a_node_failing_its_check_with_503_gets_no_traffic, .timeout = H_TEST_TIMEOUT)
{
    /* The check asks for /status/503: xf-upstream answers 503, the fake 200 to anything. */
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_fake *f = h_fake_start1(OK_REPLY, H_FAKE_KEEP);
    struct h_proxy *p = h_proxy_start(
        &(struct h_proxy_opts){.x = {{x1->port}, {h_fake_port(f)}},
                               .balance_x = "round_robin",
                               .x_extra = "    health: {path: /status/503, " FAST "}\n"});
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);

    wait_node(adm, "x", x1->addr, H_NODE_STATE, "down", WAIT_MS);
    assert_node(adm, "x", x1->addr, H_NODE_CHECK, "fail:503");
    assert_node(adm, "x", h_fmt("127.0.0.1:%d", h_fake_port(f)), H_NODE_STATE, "up");
    assert_node(adm, "x", h_fmt("127.0.0.1:%d", h_fake_port(f)), H_NODE_CHECK, "ok:200");
    for (int i = 0; i < 10; i++)
        get_from(c, "fake");
    h_close(c);
    h_proxy_finish(p);
}

Test(health, the_health_port_decides_and_rise_brings_it_back, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *hc = h_upstream_start("hc", NULL);
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *y1 = h_upstream_start("y1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{x1->port}},
        .y = {{y1->port}},
        .weight = "100",
        .y_extra = h_fmt("    health: {path: /status, port: %d, interval: 200ms, timeout: 100ms, "
                         "rise: 5, fall: 5}\n",
                         hc->port)});
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);

    wait_node(adm, "y", y1->addr, H_NODE_CHECK, "ok:200", WAIT_MS);
    get_from(c, "y1");
    /* y1's own port still answers; its health port does not. */
    h_upstream_kill(hc);
    /* A failed probe does not take it down: fall is 5 (down 800 ms after the first at the
     * soonest). */
    wait_node(adm, "y", y1->addr, H_NODE_CHECK, "fail:refused", WAIT_MS);
    assert_node(adm, "y", y1->addr, H_NODE_STATE, "up");
    wait_node(adm, "y", y1->addr, H_NODE_STATE, "down", WAIT_MS);
    assert_node(adm, "y", y1->addr, H_NODE_CHECK, "fail:refused");
    assert_logged(p, h_fmt("event=node_down cluster=y node=%s", y1->addr));
    get_from(c, "x1"); /* y has no healthy node: y's clients fail over to x */
    /* The health port answers again: up after `rise` passes, not before. */
    h_upstream_start("hc2", &(struct h_upstream_opts){.port = hc->port});
    wait_node(adm, "y", y1->addr, H_NODE_CHECK, "ok:200", WAIT_MS); /* a pass: rise is 5 */
    assert_node(adm, "y", y1->addr, H_NODE_STATE, "down");
    wait_node(adm, "y", y1->addr, H_NODE_STATE, "up", WAIT_MS);
    assert_node(adm, "y", y1->addr, H_NODE_CHECK, "ok:200");
    assert_logged(p, h_fmt("event=node_up cluster=y node=%s", y1->addr));
    get_from(c, "y1");
    h_assert_stat(adm, "y health", "down", 1);
    h_assert_stat(adm, "y health", "up", 1);
    h_assert_stat(adm, "y health", "ejected", 0);
    h_assert_stat(adm, "x health", "down", 0);
    h_assert_stat_json(adm, "y", "health", "down", 1);
    h_assert_stat_json(adm, "y", "health", "up", 1);
    h_assert_stat_json(adm, "y", "health", "ejected", 0);
    h_assert_stat_json(adm, "x", "health", "down", 0);
    h_close(c);
    h_proxy_finish(p);
}

Test(health, a_node_that_never_passed_its_checks_takes_nothing, .timeout = H_TEST_TIMEOUT)
{
    /* The check fails (503) but comes every 10 s: neither rise 2 nor fall 3 during the test. */
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{x1->port}},
        .x_extra =
            "    health: {path: /status/503, interval: 10s, timeout: 1s, rise: 2, fall: 3}\n"});
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    const char *line;
    struct h_msg *m;

    /* Start-up waited for the first verdict (one failed check) before accepting. */
    cr_assert(h_log_wait(log_of(p), "event=ready reason=first_verdicts", 5000),
              "crossfade did not report the end of its start-up");
    line = h_admin_node_line(adm, "x", x1->addr);
    cr_assert(eq(str, (char *)h_word(line, H_NODE_STATE), "pending"), "%s", line);
    cr_assert(eq(str, (char *)h_word(line, H_NODE_CHECK), "fail:503"), "%s", line);
    cr_assert(ne(ptr, strstr(line, " pending first checks: 0 of 2 passed, last fail:503"), NULL),
              "show nodes gives no reason: %s", line);
    /* Nothing goes to it: x fails over to nobody, so the client gets 503 from crossfade. */
    m = get(c);
    cr_assert(eq(int, m->status, 503), "status %d from \"%s\"", m->status, upstream(m));
    cr_assert(eq(str, (char *)upstream(m), ""), "a pending node served the request");
    h_assert_stat(adm, "x health", "down", 0);
    h_assert_stat(adm, "x failures", "no_node", 1);
    h_close(c);
    h_proxy_finish(p);
}

Test(health, expect_sets_the_statuses_that_pass, .timeout = H_TEST_TIMEOUT)
{
    /* Both check /status/404: x passes 400-404, y keeps the default 200-399. */
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *y1 = h_upstream_start("y1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{x1->port}},
        .y = {{y1->port}},
        .x_extra = "    health: {path: /status/404, expect: \"400-404\", " FAST "}\n",
        .y_extra = "    health: {path: /status/404, " FAST "}\n"});
    int adm = h_admin_connect(p);

    wait_node(adm, "x", x1->addr, H_NODE_CHECK, "ok:404", WAIT_MS);
    wait_node(adm, "y", y1->addr, H_NODE_STATE, "down", WAIT_MS);
    assert_node(adm, "y", y1->addr, H_NODE_CHECK, "fail:404");
    assert_node(adm, "x", x1->addr, H_NODE_STATE, "up");
    h_proxy_finish(p);
}

/* The probe requests the fake received: each on a connection of its own, checked one by one. */
static void
assert_probes(struct h_fake *f, const char *path, const char *host)
{
    cr_assert(h_fake_wait_requests(f, 2, WAIT_MS), "fewer than 2 probes in %d ms", WAIT_MS);
    for (size_t i = 0; i < 2; i++) {
        size_t len;
        char *rx = h_fake_received(f, i, &len);
        struct h_msg m;

        cr_assert(eq(sz, h_fake_requests(f, i), (size_t)1), "probe connection %zu: %zu requests", i,
                  h_fake_requests(f, i));
        cr_assert(eq(int, h_parse_request_head(rx, len, &m), 0), "%s: %s", m.error, rx);
        cr_assert(eq(str, (char *)m.method, "GET"), "%s", rx);
        cr_assert(eq(str, (char *)m.target, (char *)path), "%s", rx);
        cr_assert(eq(int, m.version_minor, 1), "%s", rx);
        cr_assert(ne(ptr, (void *)h_header(&m, "Host"), NULL), "no Host: %s", rx);
        cr_assert(eq(str, (char *)h_header(&m, "Host"), (char *)host), "%s", rx);
        cr_assert(h_header_has_token(&m, "Connection", "close"), "%s", rx);
    }
}

Test(health, the_probe_is_a_get_with_its_host_and_conn_close, .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f = h_fake_start1("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close"
                                     "\r\n\r\n",
                                     H_FAKE_CLOSE);
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{x1->port}},
        .x_extra = h_fmt("    health: {path: /ping/me, host: \"gw.test\", port: %d, " FAST "}\n",
                         h_fake_port(f))});
    int adm = h_admin_connect(p);

    assert_probes(f, "/ping/me", "gw.test");
    wait_node(adm, "x", x1->addr, H_NODE_CHECK, "ok:200", WAIT_MS);
    h_proxy_finish(p);
}

Test(health, the_probe_host_defaults_to_the_node_address, .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f = h_fake_start1("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close"
                                     "\r\n\r\n",
                                     H_FAKE_CLOSE);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{h_fake_port(f)}}, .x_extra = "    health: {path: /status, " FAST "}\n"});

    assert_probes(f, "/status", h_fmt("127.0.0.1:%d", h_fake_port(f)));
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ passive detection */

/* An xf-upstream that answers every request 500. */
static struct h_upstream *
bad_node(void)
{
    return h_upstream_start("bad", &(struct h_upstream_opts){.error_rate = 100});
}

/* Sends GETs until `bad` answered `n` of them with 500 (at most `max` GETs); asserts it did. */
static void
get_until_bad_failed(struct h_conn *c, int n, int max)
{
    int failed = 0;

    for (int i = 0; i < max && failed < n; i++) {
        struct h_msg *m = get(c);

        if (strcmp(upstream(m), "bad") == 0) {
            cr_assert(eq(int, m->status, 500), "the bad node answered %d", m->status);
            failed++;
        } else {
            cr_assert(eq(int, m->status, 200), "status %d from %s", m->status, upstream(m));
        }
    }
    cr_assert(eq(int, failed, n), "%d of %d GETs reached the bad node", failed, max);
}

Test(health, consecutive_5xx_eject_a_node_and_traffic_avoids_it, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *bad = bad_node(), *good = h_upstream_start("good", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{bad->port}, {good->port}},
        .balance_x = "round_robin",
        .x_extra = "    outlier: {failures: 3, ejection: 10s, max_ejection: 1m}\n"});
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);

    get_until_bad_failed(c, 3, 12);
    for (int i = 0; i < 10; i++)
        get_from(c, "good");
    assert_node(adm, "x", bad->addr, H_NODE_STATE, "ejected");
    assert_node(adm, "x", bad->addr, H_NODE_EJECTIONS, "1");
    assert_node(adm, "x", good->addr, H_NODE_STATE, "up");
    h_assert_stat(adm, "x health", "ejected", 1);
    assert_logged(p, h_fmt("event=node_ejected cluster=x node=%s", bad->addr));
    h_close(c);
    h_proxy_finish(p);
}

/* Sends up to 4 GETs and asserts that one of them was answered 500 by the bad node (the others 200
 * by another node). */
static void
assert_bad_is_back(struct h_conn *c)
{
    get_until_bad_failed(c, 1, 4);
}

Test(health, an_ejection_doubles_and_probation_ejects_at_once, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *bad = bad_node(), *good = h_upstream_start("good", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{bad->port}, {good->port}},
        .balance_x = "round_robin",
        .x_extra = "    outlier: {failures: 2, ejection: 500ms, max_ejection: 10s}\n"});
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    uint64_t t, now;

    get_until_bad_failed(c, 2, 8);
    t = h_now_ms();
    for (int i = 0; i < 4; i++)
        get_from(c, "good");
    assert_node(adm, "x", bad->addr, H_NODE_EJECTIONS, "1");
    /* After the first ejection (500 ms) the node is back on probation: one failure ejects it. */
    wait_node(adm, "x", bad->addr, H_NODE_STATE, "up", WAIT_MS);
    assert_bad_is_back(c);
    t = h_now_ms();
    assert_node(adm, "x", bad->addr, H_NODE_STATE, "ejected");
    assert_node(adm, "x", bad->addr, H_NODE_EJECTIONS, "2");
    for (int i = 0; i < 4; i++)
        get_from(c, "good");
    /* The second ejection lasts 1000 ms: still out 700 ms later (that time must pass), back by
     * 1500 ms. */
    sleep_until(t + 700);
    for (int i = 0; i < 4; i++)
        get_from(c, "good");
    assert_node(adm, "x", bad->addr, H_NODE_STATE, "ejected");
    now = h_now_ms();
    wait_node(adm, "x", bad->addr, H_NODE_STATE, "up", now < t + 1500 ? (int)(t + 1500 - now) : 0);
    assert_bad_is_back(c);
    assert_node(adm, "x", bad->addr, H_NODE_EJECTIONS, "3");
    h_assert_stat(adm, "x health", "ejected", 3);
    h_close(c);
    h_proxy_finish(p);
}

Test(health, connect_failures_eject_a_node_and_clients_see_none, .timeout = H_TEST_TIMEOUT)
{
    int dead = h_free_port();
    struct h_upstream *good = h_upstream_start("good", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{dead}, {good->port}},
        .balance_x = "round_robin",
        .x_extra = "    outlier: {failures: 2, ejection: 10s, max_ejection: 1m}\n"});
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    const char *addr = h_fmt("127.0.0.1:%d", dead);

    /* Refused connections are retried on the good node; two of them eject the dead one. */
    for (int i = 0; i < 8; i++)
        get_from(c, "good");
    assert_node(adm, "x", addr, H_NODE_STATE, "ejected");
    assert_node(adm, "x", addr, H_NODE_EJECTIONS, "1");
    assert_logged(p, h_fmt("event=node_ejected cluster=x node=%s", addr));
    h_close(c);
    h_proxy_finish(p);
}

Test(health, x_without_failover_never_ejects_its_last_node, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *bad = bad_node();
    struct h_upstream *y1 = h_upstream_start("y1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{bad->port}},
        .y = {{y1->port}},
        .x_extra = "    outlier: {failures: 2, ejection: 10s, max_ejection: 1m}\n"});
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);

    /* x's failover is off by default: its only node keeps answering, 500 and all. */
    for (int i = 0; i < 6; i++) {
        struct h_msg *m = get(c);

        cr_assert(eq(int, m->status, 500), "GET %d: status %d from \"%s\"", i, m->status,
                  upstream(m));
        cr_assert(eq(str, (char *)upstream(m), "bad"));
    }
    assert_node(adm, "x", bad->addr, H_NODE_STATE, "up");
    assert_node(adm, "x", bad->addr, H_NODE_EJECTIONS, "0");
    h_assert_stat(adm, "x health", "ejected", 0);
    h_close(c);
    h_proxy_finish(p);
}

Test(health, y_with_failover_ejects_its_last_node_and_uses_x, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *bad = bad_node();
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{x1->port}},
        .y = {{bad->port}},
        .weight = "100",
        .y_extra = "    outlier: {failures: 2, ejection: 10s, max_ejection: 1m}\n"});
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);

    for (int i = 0; i < 2; i++) {
        struct h_msg *m = get(c);

        cr_assert(eq(int, m->status, 500), "GET %d: status %d from \"%s\"", i, m->status,
                  upstream(m));
        cr_assert(eq(str, (char *)upstream(m), "bad"));
    }
    for (int i = 0; i < 5; i++)
        get_from(c, "x1");
    assert_node(adm, "y", bad->addr, H_NODE_STATE, "ejected");
    assert_node(adm, "y", bad->addr, H_NODE_EJECTIONS, "1");
    h_assert_stat(adm, "y failovers", NULL, 5);
    h_assert_stat(adm, "y health", "ejected", 1);
    h_assert_stat_json(adm, "y", NULL, "failovers", 5);
    h_assert_stat_json(adm, "y", "health", "ejected", 1);
    h_close(c);
    h_proxy_finish(p);
}
