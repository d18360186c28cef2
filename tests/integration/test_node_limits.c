/* tests/integration/test_node_limits.c -- per-node max_connections and max_pending (a bounded
 * queue with a timeout, then 503), and the capacity check that keeps set weight and ramp from
 * giving y more than its healthy nodes can take. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/integration/harness.h"

TestSuite(node_limits, .init = h_setup, .fini = h_teardown);

#define HEALTH  "    health: {path: /status, interval: 200ms, timeout: 100ms, rise: 2, fall: 3}\n"
#define WAIT_MS 3000

static void
send_get(struct h_conn *c, const char *target)
{
    cr_assert(eq(int, h_sendf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, H_HOST), 0),
              "sending GET %s: %s", target, strerror(errno));
}

/* Sends GET target on c and waits until crossfade has routed it: x's requests count is `nth`. */
static void
send_routed(int adm, struct h_conn *c, const char *target, long long nth)
{
    send_get(c, target);
    h_await_stat(adm, "x requests", NULL, nth);
}

/*
 * Waits for the responses on the n connections, noting in ms[i] when the first byte of each came
 * (milliseconds after t0), then reads them into m[i].
 */
static void
collect(struct h_conn **c, size_t n, uint64_t t0, uint64_t *ms, struct h_msg *m)
{
    uint64_t deadline = h_now_ms() + 10000;
    size_t left = n;

    for (size_t i = 0; i < n; i++)
        ms[i] = UINT64_MAX;
    while (left > 0) {
        for (size_t i = 0; i < n; i++) {
            if (ms[i] == UINT64_MAX && h_conn_wait(c[i], 0) != H_OPEN) {
                ms[i] = h_now_ms() - t0;
                left--;
            }
        }
        cr_assert(lt(u64, h_now_ms(), deadline), "%zu responses missing after 10 s", left);
        h_sleep_ms(2); /* a poll: the arrival times are read to within a few ms */
    }
    for (size_t i = 0; i < n; i++)
        cr_assert(eq(int, h_read_response(c[i], &m[i]), 0), "response %zu: %s", i, m[i].error);
}

/* Reads one response on c within 5 s; returns it and the milliseconds since t0 in *ms. */
static struct h_msg *
read_timed(struct h_conn *c, uint64_t t0, uint64_t *ms)
{
    struct h_msg *m = h_alloc(sizeof(*m));

    cr_assert(eq(int, h_read_response_ex(c, m, 0, 5000, NULL, NULL), 0), "%s", m->error);
    *ms = h_now_ms() - t0;
    return m;
}

/* ------------------------------------------------------------------ max_connections, max_pending
 */

Test(node_limits, a_full_node_queue_answers_503_at_once, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_proxy *p = h_proxy_start(
        &(struct h_proxy_opts){.x = {{x1->port, 0, "max_connections: 1, max_pending: 1"}}});
    int adm = h_admin_connect(p);
    struct h_conn *c[3] = {h_connect(p->port), h_connect(p->port), h_connect(p->port)};
    struct h_msg m[3];
    uint64_t ms[3], t0 = h_now_ms(), slowest = 0;
    int ok = 0, full = 0;

    /* One on the node's only connection, one in its queue of one, one over. */
    for (int i = 0; i < 3; i++)
        send_routed(adm, c[i], "/delay/500", i + 1);
    collect(c, 3, t0, ms, m);
    for (int i = 0; i < 3; i++) {
        if (m[i].status == 200) {
            ok++;
            slowest = ms[i] > slowest ? ms[i] : slowest;
        } else {
            cr_assert(eq(int, m[i].status, 503), "request %d: status %d", i, m[i].status);
            cr_assert(lt(u64, ms[i], (uint64_t)400),
                      "the 503 came after %llu ms, not at once (the node answers in 500 ms)",
                      (unsigned long long)ms[i]);
            full++;
        }
    }
    cr_assert(eq(int, ok, 2), "%d answers 200", ok);
    cr_assert(eq(int, full, 1), "%d answers 503", full);
    /* One connection: the queued request waited for the first one. */
    cr_assert(ge(u64, slowest, (uint64_t)900), "the second 200 came after %llu ms",
              (unsigned long long)slowest);
    h_assert_stat(adm, "x queue", "full", 1);
    h_assert_stat(adm, "x queue", "timeouts", 0);
    h_assert_stat(adm, "x queue", "waiting", 0);
    h_proxy_finish(p);
}

Test(node_limits, max_connections_bounds_the_conns_to_a_node, .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f = h_fake_start1("", H_FAKE_SILENT);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{h_fake_port(f), 0, "max_connections: 2"}}, .upstream_response_ms = 500});
    int adm = h_admin_connect(p);
    struct h_conn *c[5];
    struct h_msg m[5];
    uint64_t ms[5], t0 = h_now_ms();

    for (int i = 0; i < 5; i++) {
        c[i] = h_connect(p->port);
        send_routed(adm, c[i], "/", i + 1);
    }
    /* Two went to the node, three wait for its connections. */
    cr_assert(h_fake_wait_requests(f, 2, H_IO_TIMEOUT_MS), "%zu requests reached the node",
              h_fake_requests_all(f));
    h_assert_stat(adm, "x queue", "waiting", 3);
    cr_assert(eq(sz, h_fake_conns(f), (size_t)2), "%zu connections to a node of max_connections 2",
              h_fake_conns(f));
    cr_assert(eq(sz, h_fake_requests_all(f), (size_t)2));
    /* The node never answers: each request in turn gets 504 after upstream_response. */
    collect(c, 5, t0, ms, m);
    for (int i = 0; i < 5; i++)
        cr_assert(eq(int, m[i].status, 504), "request %d: status %d", i, m[i].status);
    cr_assert(eq(sz, h_fake_requests_all(f), (size_t)5));
    h_proxy_finish(p);
}

Test(node_limits, a_queued_request_gets_503_after_timeouts_queue, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{x1->port}}, .x_extra = "    max_connections: 1\n", .queue_ms = 200});
    int adm = h_admin_connect(p);
    struct h_conn *c1 = h_connect(p->port), *c2 = h_connect(p->port);
    struct h_msg *m;
    uint64_t t0, ms;

    send_routed(adm, c1, "/delay/1000", 1);
    t0 = h_now_ms();
    send_get(c2, "/delay/1000");
    m = read_timed(c2, t0, &ms);
    cr_assert(eq(int, m->status, 503), "the queued request got %d", m->status);
    cr_assert(ge(u64, ms, (uint64_t)100), "the 503 came after %llu ms: it did not wait",
              (unsigned long long)ms);
    cr_assert(lt(u64, ms, (uint64_t)1000), "the 503 came after %llu ms (timeouts.queue 200ms)",
              (unsigned long long)ms);
    m = read_timed(c1, t0, &ms);
    cr_assert(eq(int, m->status, 200));
    h_assert_stat(adm, "x queue", "timeouts", 1);
    h_assert_stat(adm, "x queue", "full", 0);
    h_assert_stat(adm, "x queue", "waiting", 0);
    h_assert_stat_json(adm, "x", "queue", "timeouts", 1);
    h_assert_stat_json(adm, "x", "queue", "full", 0);
    h_assert_stat_json(adm, "x", "queue", "waiting", 0);
    h_proxy_finish(p);
}

Test(node_limits, a_waiting_request_is_counted_then_served, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_proxy *p = h_proxy_start(
        &(struct h_proxy_opts){.x = {{x1->port}}, .x_extra = "    max_connections: 1\n"});
    int adm = h_admin_connect(p);
    struct h_conn *c1 = h_connect(p->port), *c2 = h_connect(p->port);
    struct h_msg *m;
    uint64_t t0 = h_now_ms(), ms1, ms2;

    send_routed(adm, c1, "/delay/800", 1);
    send_get(c2, "/");
    h_await_stat(adm, "x queue", "waiting", 1);
    m = read_timed(c1, t0, &ms1);
    cr_assert(eq(int, m->status, 200));
    m = read_timed(c2, t0, &ms2);
    cr_assert(eq(int, m->status, 200), "the queued request got %d", m->status);
    cr_assert(ge(u64, ms2, ms1), "the queued request was answered before the busy one");
    h_assert_stat(adm, "x queue", "waiting", 0);
    h_assert_stat(adm, "x queue", "timeouts", 0);
    h_assert_stat(adm, "x queue", "full", 0);
    h_proxy_finish(p);
}

Test(node_limits, max_pending_0_answers_503_at_once_when_busy, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{x1->port}}, .x_extra = "    max_connections: 1\n    max_pending: 0\n"});
    int adm = h_admin_connect(p);
    struct h_conn *c1 = h_connect(p->port), *c2 = h_connect(p->port);
    struct h_msg *m;
    uint64_t t0, ms;

    send_routed(adm, c1, "/delay/500", 1);
    t0 = h_now_ms();
    send_get(c2, "/");
    m = read_timed(c2, t0, &ms);
    cr_assert(eq(int, m->status, 503), "status %d", m->status);
    cr_assert(lt(u64, ms, (uint64_t)400), "the 503 came after %llu ms, not at once",
              (unsigned long long)ms);
    m = read_timed(c1, t0, &ms);
    cr_assert(eq(int, m->status, 200));
    h_assert_stat(adm, "x queue", "full", 1);
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ the capacity check */

/* Asserts that `cmd` is refused for y's capacity: "error: ", the word, and the numbers. */
static void
assert_refused(int adm, const char *cmd, const char *asked, const char *capacity)
{
    char *r = h_admin_cmd(adm, cmd);

    cr_assert(eq(int, strncmp(r, "error: ", 7), 0), "\"%s\" was not refused: %s", cmd, r);
    cr_assert(ne(ptr, strstr(r, "capacity"), NULL), "\"%s\": %s", cmd, r);
    cr_assert(ne(ptr, strstr(r, asked), NULL), "\"%s\" does not name %s: %s", cmd, asked, r);
    cr_assert(ne(ptr, strstr(r, capacity), NULL), "\"%s\" does not name the capacity %s: %s", cmd,
              capacity, r);
}

static void
assert_ok(int adm, const char *cmd)
{
    char *r = h_admin_cmd(adm, cmd);

    cr_assert(eq(int, strncmp(r, "ok:", 3), 0), "\"%s\": %s", cmd, r);
}

static void
assert_weight(int adm, const char *y)
{
    char *r = h_admin_cmd(adm, "show weight");

    cr_assert(ne(ptr, strstr(r, h_fmt("y %s\n", y)), NULL), "weight y is not %s: %s", y, r);
}

Test(node_limits, raising_y_past_its_capacity_is_refused, .timeout = H_TEST_TIMEOUT)
{
    /* Nothing listens on the nodes: no request is sent, and no checks are configured. */
    struct h_proxy *p = h_proxy_start(
        &(struct h_proxy_opts){.x = {{h_free_port()}, {h_free_port()}}, .y = {{h_free_port()}}});
    int adm = h_admin_connect(p);

    /* y: one node of weight 1 against x's two: capacity 50. */
    assert_refused(adm, "set weight 60", "60", "50");
    assert_weight(adm, "0.00");
    assert_ok(adm, "set weight 50");
    assert_weight(adm, "50.00");
    assert_ok(adm, "set weight 60 force");
    assert_weight(adm, "60.00");
    assert_ok(adm, "set weight 55"); /* lowering is never refused */
    assert_refused(adm, "ramp 80 over 10s", "80", "50");
    assert_ok(adm, "ramp 80 over 10s step 5 force");
    assert_ok(adm, "rollback");
    assert_weight(adm, "0.00");
    h_proxy_finish(p);
}

Test(node_limits, capacity_is_measured_by_node_weights, .timeout = H_TEST_TIMEOUT)
{
    /* 100 x 1 / (1 + 3) = 25. */
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{h_free_port(), 1}, {h_free_port(), 3}}, .y = {{h_free_port()}}});
    int adm = h_admin_connect(p);

    assert_refused(adm, "set weight 26", "26", "25");
    assert_ok(adm, "set weight 25");
    assert_weight(adm, "25.00");
    h_proxy_finish(p);
}

Test(node_limits, with_y_down_by_checks_raising_weight_is_refused, .timeout = H_TEST_TIMEOUT)
{
    int dead = h_free_port();
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{h_free_port()}, {h_free_port()}}, .y = {{dead}}, .weight = "5", .y_extra = HEALTH});
    int adm = h_admin_connect(p);

    cr_assert(
        h_admin_wait_node(adm, "y", h_fmt("127.0.0.1:%d", dead), H_NODE_STATE, "down", WAIT_MS),
        "y's node is not down:\n%s", h_admin_cmd(adm, "show nodes"));
    /* No healthy node: capacity 0. */
    assert_refused(adm, "set weight 10", "10", "0");
    assert_refused(adm, "ramp 80 over 10s", "80", "0");
    assert_weight(adm, "5.00");
    assert_ok(adm, "set weight 2");
    assert_ok(adm, "rollback");
    assert_weight(adm, "0.00");
    h_proxy_finish(p);
}

Test(node_limits, with_x_out_of_service_there_is_no_limit, .timeout = H_TEST_TIMEOUT)
{
    int dead = h_free_port(), x1 = h_free_port();
    struct h_proxy *p =
        h_proxy_start(&(struct h_proxy_opts){.x = {{x1}}, .y = {{dead}}, .y_extra = HEALTH});
    int adm = h_admin_connect(p);

    cr_assert(
        h_admin_wait_node(adm, "y", h_fmt("127.0.0.1:%d", dead), H_NODE_STATE, "down", WAIT_MS),
        "y's node is not down:\n%s", h_admin_cmd(adm, "show nodes"));
    assert_refused(adm, "set weight 10", "10", "0");
    /* x's weight in service is 0: no limit. */
    assert_ok(adm, h_fmt("drain node x/127.0.0.1:%d", x1));
    assert_ok(adm, "set weight 10");
    h_proxy_finish(p);
}

Test(node_limits, y_capacity_counts_only_healthy_weight, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *y1 = h_upstream_start("y1", NULL);
    int dead = h_free_port();
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{h_free_port()}, {h_free_port()}}, .y = {{y1->port}, {dead}}, .y_extra = HEALTH});
    int adm = h_admin_connect(p);

    cr_assert(
        h_admin_wait_node(adm, "y", h_fmt("127.0.0.1:%d", dead), H_NODE_STATE, "down", WAIT_MS),
        "y's dead node is not down:\n%s", h_admin_cmd(adm, "show nodes"));
    /* y1 alone against x's two: 50, not 100. */
    assert_refused(adm, "set weight 60", "60", "50");
    assert_ok(adm, "set weight 50");
    h_proxy_finish(p);
}

Test(node_limits, x_capacity_counts_in_service_nodes_down_or_not, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    int dead = h_free_port();
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{x1->port}, {dead}}, .y = {{h_free_port()}}, .x_extra = HEALTH});
    int adm = h_admin_connect(p);
    const char *addr = h_fmt("127.0.0.1:%d", dead);

    cr_assert(h_admin_wait_node(adm, "x", addr, H_NODE_STATE, "down", WAIT_MS),
              "x's dead node is not down:\n%s", h_admin_cmd(adm, "show nodes"));
    /* x's down node still counts (y's one node against two): 50. */
    assert_refused(adm, "set weight 60", "60", "50");
    /* A drained one does not: 100. */
    assert_ok(adm, h_fmt("drain node x/%s", addr));
    assert_ok(adm, "set weight 60");
    h_proxy_finish(p);
}

/*
 * A woken request that leaves in the same turn as its wake-up (its client closed) must pass the
 * freed connection on: the request behind it is served, not left waiting for its timeout. The
 * proxy is stopped while the node answers and the client goes, so both arrive in one loop turn,
 * the node's answer first.
 */
Test(node_limits, a_woken_request_that_leaves_passes_its_turn_on, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    /* b's unfinished POST must wait in the queue, not in crossfade's request buffer. */
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{x1->port}},
                                                             .x_extra = "    max_connections: 1\n",
                                                             .queue_ms = 3000,
                                                             .request_buffer = "0"});
    int adm = h_admin_connect(p);
    struct h_conn *a = h_connect(p->port), *b = h_connect(p->port), *c = h_connect(p->port);
    struct h_msg *m;
    uint64_t t0, ms;
    int b_port;

    send_routed(adm, a, "/delay/300", 1);
    cr_assert(
        eq(int,
           h_sendf(b, "POST /count HTTP/1.1\r\nHost: %s\r\nContent-Length: 100\r\n\r\nabc", H_HOST),
           0));
    h_await_stat(adm, "x queue", "waiting", 1);
    b_port = h_conn_port(b);
    send_get(c, "/");
    h_await_stat(adm, "x queue", "waiting", 2);
    cr_assert(eq(int, kill(p->proc->pid, SIGSTOP), 0));
    /* The node answers a meanwhile: its answer waits in the proxy's socket. */
    cr_assert(h_tcp_wait(0, x1->port, H_TCP_ESTABLISHED, 1, H_IO_TIMEOUT_MS),
              "x1's answer to a did not reach the stopped proxy");
    h_close(b);
    cr_assert(h_tcp_wait(p->port, b_port, H_TCP_CLOSE_WAIT, 0, H_IO_TIMEOUT_MS),
              "b's FIN did not reach the stopped proxy");
    t0 = h_now_ms();
    cr_assert(eq(int, kill(p->proc->pid, SIGCONT), 0));
    m = read_timed(a, t0, &ms);
    cr_assert(eq(int, m->status, 200));
    m = read_timed(c, t0, &ms);
    cr_assert(eq(int, m->status, 200), "the request behind the one that left got %d", m->status);
    cr_assert(lt(u64, ms, (uint64_t)1500), "it was served %llu ms later, not at once",
              (unsigned long long)ms);
    h_assert_stat(adm, "x queue", "timeouts", 0);
    h_assert_stat(adm, "x queue", "waiting", 0);
    h_proxy_finish(p);
}

/* Draining a node moves the requests waiting for it at once, not when its connection frees. */
Test(node_limits, draining_a_node_moves_its_waiting_requests, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_upstream *x2 = h_upstream_start("x2", NULL);
    struct h_proxy *p =
        h_proxy_start(&(struct h_proxy_opts){.x = {{x1->port, 0, "max_connections: 1"}, {x2->port}},
                                             .split_extra = "  key: [\"header:X-Key\"]\n"});
    int adm = h_admin_connect(p);
    const char *addr = h_fmt("127.0.0.1:%d", x1->port);
    const char *key = h_admin_key_for_node(adm, "header:X-Key", addr, 0);
    struct h_conn *a = h_connect(p->port), *b = h_connect(p->port);
    struct h_msg *m;
    uint64_t t0, ms;

    cr_assert(ne(ptr, (void *)key, NULL));
    cr_assert(eq(
        int, h_sendf(a, "GET /delay/1500 HTTP/1.1\r\nHost: %s\r\nX-Key: %s\r\n\r\n", H_HOST, key),
        0));
    h_await_stat(adm, "x requests", NULL, 1);
    cr_assert(
        eq(int, h_sendf(b, "GET / HTTP/1.1\r\nHost: %s\r\nX-Key: %s\r\n\r\n", H_HOST, key), 0));
    h_await_stat(adm, "x queue", "waiting", 1);
    t0 = h_now_ms();
    cr_assert(eq(str, h_admin_cmd(adm, h_fmt("drain node x/%s", addr)),
                 (char *)h_fmt("ok: node x/%s draining (was up)\n", addr)));
    m = read_timed(b, t0, &ms);
    cr_assert(eq(int, m->status, 200));
    cr_assert(eq(str, (char *)h_header(m, "X-Upstream"), "x2"));
    cr_assert(lt(u64, ms, (uint64_t)700), "the waiting request moved after %llu ms",
              (unsigned long long)ms);
    m = read_timed(a, t0, &ms);
    cr_assert(eq(int, m->status, 200), "the request in flight on the drained node finishes");
    cr_assert(eq(str, (char *)h_header(m, "X-Upstream"), "x1"));
    h_proxy_finish(p);
}
