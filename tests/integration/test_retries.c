/* tests/integration/test_retries.c -- a request that failed before any byte of the response came
 * back is retried on another node (idempotent methods, or nothing of it sent), at most `retries`
 * times, then on the other cluster when failover allows; a request whose body was sent is never
 * replayed; nodes closing idle keep-alive connections cause no client error. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/integration/harness.h"

TestSuite(retries, .init = h_setup, .fini = h_teardown);

#define SPLIT      "  key: [\"header:X-Key\"]\n"
#define NO_OUTLIER "    outlier: {failures: 0}\n" /* no passive ejection: every attempt counts */
#define OK_REPLY   "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Upstream: good\r\n\r\nok\n"

/* A node that reads each request and closes without answering a byte. */
static struct h_fake *
closer(void)
{
    return h_fake_start1("", H_FAKE_CLOSE_NOW);
}

static const char *
addr_of(int port)
{
    return h_fmt("127.0.0.1:%d", port);
}

/* A split key (header X-Key) that goes to the node at `port` by its hash. */
static const char *
key_for(const struct h_proxy *p, int port)
{
    int adm = h_admin_connect(p);
    const char *k = h_admin_key_for_node(adm, "header:X-Key", addr_of(port), 0);

    cr_assert(ne(ptr, (void *)k, NULL), "no split key goes to %s", addr_of(port));
    return k;
}

/* Sends METHOD / with split key `key` and, when body is not NULL, that body; returns the
 * response (asserts that one came). */
static struct h_msg *
request(struct h_conn *c, const char *method, const char *target, const char *key, const char *body)
{
    struct h_msg *m = h_alloc(sizeof(*m));
    int r;

    if (body != NULL)
        r = h_sendf(c, "%s %s HTTP/1.1\r\nHost: %s\r\nX-Key: %s\r\nContent-Length: %zu\r\n\r\n%s",
                    method, target, H_HOST, key, strlen(body), body);
    else
        r = h_sendf(c, "%s %s HTTP/1.1\r\nHost: %s\r\nX-Key: %s\r\n\r\n", method, target, H_HOST,
                    key);
    cr_assert(eq(int, r, 0), "sending %s: %s", method, strerror(errno));
    cr_assert(eq(int,
                 h_read_response_ex(c, m, strcmp(method, "HEAD") == 0 ? H_NO_BODY : 0,
                                    H_IO_TIMEOUT_MS, NULL, NULL),
                 0),
              "%s: %s", method, m->error);
    return m;
}

static const char *
upstream(const struct h_msg *m)
{
    const char *u = h_header(m, "X-Upstream");

    return u != NULL ? u : "";
}

/* The sentinels the fakes f[0..n) received. */
static size_t
sentinels_of(struct h_fake *const *f, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        k += h_fake_sentinels(f[i]);
    return k;
}

/*
 * After a request to closers that must not be retried: a sentinel GET with split key `key` goes
 * to the same closers, and is tried (1 + the retries it adds to x's count) until it gets 502. Once
 * every attempt has reached a closer, whatever the earlier request caused has too: returns the
 * requests they got that were not the sentinel.
 */
static size_t
closers_got(const struct h_proxy *p, int adm, struct h_fake *const *f, size_t n, const char *key)
{
    long long retries = h_admin_stat(adm, "x retries", NULL);
    size_t attempts, seen, others = 0;
    uint64_t deadline;
    int status = h_send_sentinel(p->port, h_fmt("X-Key: %s\r\n", key));

    cr_assert(eq(int, status, 502), "the sentinel got %d from the closers", status);
    attempts = (size_t)(1 + h_admin_stat(adm, "x retries", NULL) - retries);
    deadline = h_now_ms() + H_IO_TIMEOUT_MS;
    /* A poll of the closers' counts until every attempt is in. */
    while ((seen = sentinels_of(f, n)) < attempts) {
        cr_assert(lt(u64, h_now_ms(), deadline), "%zu of the sentinel's %zu attempts arrived", seen,
                  attempts);
        h_sleep_ms(5);
    }
    cr_assert(eq(sz, seen, attempts), "the sentinel reached the closers %zu times in %zu attempts",
              seen, attempts);
    for (size_t i = 0; i < n; i++)
        others += h_fake_non_sentinels(f[i]);
    return others;
}

/* Two closers in x: wherever a request goes first, a retry would reach a node again.
 * `request_buffer`: limits.request_buffer_bytes as written (NULL: the default). */
static void
check_body_not_replayed(const char *method, const char *request_buffer)
{
    struct h_fake *c1 = closer(), *c2 = closer();
    struct h_fake *both[2] = {c1, c2};
    struct h_proxy *p =
        h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(c1)}, {h_fake_port(c2)}},
                                             .split_extra = SPLIT,
                                             .x_extra = NO_OUTLIER,
                                             .request_buffer = request_buffer});
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    struct h_msg *m = request(c, method, "/echo", "k1", "name=value&x=1");
    struct h_fake *first;
    size_t got;

    cr_assert(eq(int, m->status, 502), "%s: status %d", method, m->status);
    h_assert_stat(adm, "x retries", NULL, 0);
    got = closers_got(p, adm, both, 2, "k1");
    cr_assert(eq(sz, got, (size_t)1), "the %s reached the nodes %zu times", method, got);
    first = h_fake_non_sentinels(c1) == 1 ? c1 : c2;
    cr_assert(ne(ptr, strstr(h_fake_received(first, 0, NULL), "\r\n\r\nname=value&x=1"), NULL),
              "the node did not get the whole body");
    h_close(c);
    h_proxy_finish(p);
}

Test(retries, a_post_whose_body_was_sent_gets_502_not_a_retry, .timeout = H_TEST_TIMEOUT)
{
    check_body_not_replayed("POST", NULL);
}

Test(retries, a_put_whose_body_was_streamed_is_not_replayed, .timeout = H_TEST_TIMEOUT)
{
    check_body_not_replayed("PUT", "0");
}

/* A PUT whose body crossfade buffered whole (limits.request_buffer_bytes) is idempotent and
 * still all here: it is sent again, body included, to the other node. */
Test(retries, a_put_whose_body_was_buffered_is_replayed_whole, .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *c1 = closer(), *c2 = closer();
    struct h_fake *both[2] = {c1, c2};
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{h_fake_port(c1)}, {h_fake_port(c2)}}, .split_extra = SPLIT, .x_extra = NO_OUTLIER});
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    struct h_msg *m = request(c, "PUT", "/echo", "k1", "name=value&x=1");

    cr_assert(eq(int, m->status, 502), "both nodes close: status %d", m->status);
    h_assert_stat(adm, "x retries", NULL, 1);
    cr_assert(eq(sz, closers_got(p, adm, both, 2, "k1"), (size_t)2), "not sent to both nodes");
    for (size_t i = 0; i < 2; i++)
        cr_assert(
            ne(ptr, strstr(h_fake_received(both[i], 0, NULL), "\r\n\r\nname=value&x=1"), NULL),
            "node %zu did not get the whole body", i + 1);
    h_close(c);
    h_proxy_finish(p);
}

Test(retries, a_get_closed_before_any_byte_is_retried_elsewhere, .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *bad = closer(), *good = h_fake_start1(OK_REPLY, H_FAKE_KEEP);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{h_fake_port(bad)}, {h_fake_port(good)}}, .split_extra = SPLIT});
    const char *key = key_for(p, h_fake_port(bad));
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    struct h_msg *m = request(c, "GET", "/", key, NULL);

    cr_assert(eq(int, m->status, 200), "status %d", m->status);
    cr_assert(eq(str, (char *)upstream(m), "good"));
    cr_assert(eq(sz, h_fake_requests_all(bad), (size_t)1), "the first node did not get the GET");
    cr_assert(eq(sz, h_fake_requests_all(good), (size_t)1));
    h_assert_stat(adm, "x retries", NULL, 1);
    h_assert_stat_json(adm, "x", NULL, "retries", 1);
    h_assert_stat_json(adm, "y", NULL, "retries", 0);
    h_close(c);
    h_proxy_finish(p);
}

Test(retries, idempotent_methods_are_retried_and_post_is_not, .timeout = H_TEST_TIMEOUT)
{
    static const char *const methods[] = {"HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"};
    struct h_fake *bad = closer();
    struct h_upstream *x2 = h_upstream_start("x2", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{h_fake_port(bad)}, {x2->port}}, .split_extra = SPLIT, .x_extra = NO_OUTLIER});
    const char *key = key_for(p, h_fake_port(bad));
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    struct h_msg *m;
    size_t n = 0;
    uint64_t conns, x2_requests;
    int status;

    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        m = request(c, methods[i], "/", key, NULL);
        cr_assert(eq(int, m->status, 200), "%s: status %d", methods[i], m->status);
        cr_assert(eq(str, (char *)upstream(m), "x2"), "%s", methods[i]);
        cr_assert(eq(sz, h_fake_requests_all(bad), ++n), "%s did not go to the closer first",
                  methods[i]);
    }
    h_assert_stat(adm, "x retries", NULL, (long long)n);
    /* A POST, even without a body: its head was sent, so it is not retried. */
    m = request(c, "POST", "/", key, "");
    cr_assert(eq(int, m->status, 502), "POST: status %d from \"%s\"", m->status, upstream(m));
    h_assert_stat(adm, "x retries", NULL, (long long)n);
    /* A sentinel GET goes the same way, the closer then x2: once it is answered, x2 has had the
     * n requests retried above and the sentinel, not the POST. */
    status = h_send_sentinel(p->port, h_fmt("X-Key: %s\r\n", key));
    cr_assert(eq(int, status, 200), "the sentinel got %d", status);
    h_upstream_counters(x2, &conns, &x2_requests);
    cr_assert(eq(u64, x2_requests, (uint64_t)n + 1),
              "x2 got %llu requests, %zu retried and the sentinel expected: the POST was retried",
              (unsigned long long)x2_requests, n);
    cr_assert(h_fake_wait_sentinels(bad, 1, H_IO_TIMEOUT_MS), "the sentinel missed the closer");
    cr_assert(eq(sz, h_fake_non_sentinels(bad), n + 1));
    h_close(c);
    h_proxy_finish(p);
}

Test(retries, a_post_to_a_refused_node_is_retried_elsewhere, .timeout = H_TEST_TIMEOUT)
{
    int dead = h_free_port();
    struct h_upstream *x2 = h_upstream_start("x2", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{dead}, {x2->port}}, .split_extra = SPLIT, .x_extra = NO_OUTLIER});
    const char *key = key_for(p, dead);
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    struct h_msg *m = request(c, "POST", "/echo", key, "a=1&b=2");

    /* Nothing of it had been sent: the POST goes to x2, its body intact. */
    cr_assert(eq(int, m->status, 200), "status %d", m->status);
    cr_assert(eq(str, (char *)upstream(m), "x2"));
    cr_assert(ne(ptr, strstr(m->body, "POST /echo HTTP/1.1\r\n"), NULL), "%s", m->body);
    cr_assert(ne(ptr, strstr(m->body, "\r\n\r\na=1&b=2"), NULL), "%s", m->body);
    h_assert_stat(adm, "x retries", NULL, 1);
    h_close(c);
    h_proxy_finish(p);
}

Test(retries, a_get_whose_connect_times_out_is_retried_elsewhere, .timeout = H_TEST_TIMEOUT)
{
    int hole = h_blackhole_start();
    struct h_fake *good = h_fake_start1(OK_REPLY, H_FAKE_KEEP);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{hole}, {h_fake_port(good)}},
                                                             .split_extra = SPLIT,
                                                             .x_extra = NO_OUTLIER,
                                                             .connect_ms = 200});
    const char *key = key_for(p, hole);
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    struct h_msg *m = request(c, "GET", "/", key, NULL);

    cr_assert(eq(int, m->status, 200), "status %d", m->status);
    cr_assert(eq(str, (char *)upstream(m), "good"));
    h_assert_stat(adm, "x retries", NULL, 1);
    h_close(c);
    h_proxy_finish(p);
}

Test(retries, with_retries_0_a_failed_get_gets_502, .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *bad = closer(), *good = h_fake_start1(OK_REPLY, H_FAKE_KEEP);
    struct h_proxy *p =
        h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(bad)}, {h_fake_port(good)}},
                                             .split_extra = SPLIT,
                                             .extra_yaml = "retries: 0\n"});
    const char *key = key_for(p, h_fake_port(bad));
    const char *good_key = key_for(p, h_fake_port(good));
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    struct h_msg *m = request(c, "GET", "/", key, NULL);

    cr_assert(eq(int, m->status, 502), "status %d from \"%s\"", m->status, upstream(m));
    cr_assert(eq(sz, h_fake_requests_all(bad), (size_t)1));
    h_assert_stat(adm, "x retries", NULL, 0);
    /* Not retried with retries: 0: a sentinel of its own is all the other node gets. */
    h_fake_expect_only_sentinels(good, p->port, h_fmt("X-Key: %s\r\n", good_key));
    h_close(c);
    h_proxy_finish(p);
}

Test(retries, a_get_is_tried_at_most_1_plus_retries_times, .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *n[4] = {closer(), closer(), closer(), closer()};
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{h_fake_port(n[0])}, {h_fake_port(n[1])}, {h_fake_port(n[2])}, {h_fake_port(n[3])}},
        .split_extra = SPLIT,
        .x_extra = NO_OUTLIER});
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    struct h_msg *m = request(c, "GET", "/", "k1", NULL);
    size_t total = 0;

    /* retries defaults to 2: three attempts, each on a node not tried yet. */
    cr_assert(eq(int, m->status, 502), "status %d", m->status);
    h_assert_stat(adm, "x retries", NULL, 2);
    total = closers_got(p, adm, n, 4, "k1");
    for (int i = 0; i < 4; i++)
        cr_assert(le(sz, h_fake_non_sentinels(n[i]), (size_t)1), "node %d was tried twice", i);
    cr_assert(eq(sz, total, (size_t)3), "%zu attempts", total);
    h_close(c);
    h_proxy_finish(p);
}

Test(retries, a_get_failing_on_the_last_y_node_is_retried_on_x, .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *bad = closer();
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_proxy *p = h_proxy_start(
        &(struct h_proxy_opts){.x = {{x1->port}}, .y = {{h_fake_port(bad)}}, .weight = "100"});
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    struct h_msg *m = request(c, "GET", "/", "k1", NULL);

    cr_assert(eq(int, m->status, 200), "status %d", m->status);
    cr_assert(eq(str, (char *)upstream(m), "x1"));
    cr_assert(eq(sz, h_fake_requests_all(bad), (size_t)1));
    h_assert_stat(adm, "y retries", NULL, 1);
    h_close(c);
    h_proxy_finish(p);
}

Test(retries, no_retry_on_x_when_y_failover_is_off, .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *bad = closer(), *fx = h_fake_start1(OK_REPLY, H_FAKE_KEEP);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(fx)}},
                                                             .y = {{h_fake_port(bad)}},
                                                             .weight = "100",
                                                             .y_extra = "    failover: false\n"});
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    struct h_msg *m = request(c, "GET", "/", "k1", NULL);

    cr_assert(eq(int, m->status, 502), "status %d from \"%s\"", m->status, upstream(m));
    cr_assert(eq(sz, h_fake_requests_all(bad), (size_t)1));
    /* y's request did not go to x: once every client is on x, a sentinel is all x gets. */
    cr_assert(eq(int, strncmp(h_admin_cmd(adm, "rollback"), "ok:", 3), 0));
    h_fake_expect_only_sentinels(fx, p->port, "X-Key: k1\r\n");
    h_close(c);
    h_proxy_finish(p);
}

Test(retries, a_pooled_conn_the_node_closed_is_retried_on_a_new_one, .timeout = H_TEST_TIMEOUT)
{
    /* Connection 0 answers once, then closes when the next request comes: the keep-alive race,
     * made certain. One node: the retry can only be a new connection to the same node. */
    struct h_fake_reply replies[] = {
        {.bytes = OK_REPLY, .action = H_FAKE_CLOSE_SECOND},
        {.bytes = OK_REPLY, .action = H_FAKE_KEEP},
    };
    struct h_fake *f = h_fake_start(replies, 2);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(f)}}});
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    struct h_msg *m = request(c, "GET", "/first", "k1", NULL);

    cr_assert(eq(int, m->status, 200), "status %d", m->status);
    /* The second request must find the first connection in the pool. */
    cr_assert(
        h_admin_wait_node(adm, "x", addr_of(h_fake_port(f)), H_NODE_IDLE, "1", H_IO_TIMEOUT_MS),
        "the first connection is not idle in the pool:\n%s", h_admin_cmd(adm, "show nodes"));
    m = request(c, "GET", "/second", "k1", NULL);
    cr_assert(eq(int, m->status, 200), "status %d on the reused connection", m->status);
    cr_assert(eq(sz, h_fake_requests(f, 0), (size_t)2), "the first connection was not reused");
    cr_assert(eq(sz, h_fake_conns(f), (size_t)2));
    cr_assert(eq(sz, h_fake_requests(f, 1), (size_t)1), "not retried on a new connection");
    h_close(c);
    h_proxy_finish(p);
}

/* The connections an xf-upstream accepted, from the line it logs when it stops. */
static long
upstream_connections(struct h_upstream *u)
{
    const char *line;
    char *log;

    cr_assert(eq(int, h_proc_stop(u->proc, SIGTERM, 5000), 0), "xf-upstream %s did not stop",
              u->name);
    log = h_read_file(u->proc->log_path, NULL);
    line = log != NULL ? strstr(log, "stopped: connections=") : NULL;
    cr_assert(ne(ptr, (void *)line, NULL), "no stop line in the log of %s", u->name);
    return strtol(line + strlen("stopped: connections="), NULL, 10);
}

Test(retries, a_node_closing_idle_conns_at_250ms_fails_nothing, .timeout = H_TEST_TIMEOUT)
{
    /* Two requests at a time, so two pooled connections, idle for about 250 ms between rounds:
     * some rounds find a connection the node has just closed, or closes as the request goes. */
    static const unsigned gaps[] = {250, 249, 250, 251, 250, 260};
    struct h_upstream *x1 = h_upstream_start("x1", &(struct h_upstream_opts){.idle_close_ms = 250});
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{x1->port}}});
    struct h_conn *c[2] = {h_connect(p->port), h_connect(p->port)};
    uint64_t until = h_now_ms() + 3000;
    unsigned round = 0, sent = 0;

    while (h_now_ms() < until) {
        for (int i = 0; i < 2; i++)
            cr_assert(eq(int, h_sendf(c[i], "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", H_HOST), 0));
        for (int i = 0; i < 2; i++) {
            struct h_msg m;

            cr_assert(eq(int, h_read_response(c[i], &m), 0), "request %u: %s", sent, m.error);
            cr_assert(eq(int, m.status, 200), "request %u: status %d", sent, m.status);
            sent++;
        }
        /* The idle time between rounds is the behaviour under test. */
        h_sleep_ms(gaps[round++ % (sizeof(gaps) / sizeof(gaps[0]))]);
    }
    h_close(c[0]);
    h_close(c[1]);
    h_proxy_finish(p);
    /* The node did close idle connections: the proxy had to open new ones. */
    cr_assert(gt(i64, (long long)upstream_connections(x1), 2LL), "no idle connection was closed");
}

Test(retries, a_node_closing_idle_conns_after_1s_fails_nothing, .timeout = H_TEST_TIMEOUT)
{
    static const unsigned gaps[] = {1000, 999, 1000, 1001};
    struct h_upstream *x1 =
        h_upstream_start("x1", &(struct h_upstream_opts){.idle_close_ms = 1000});
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{x1->port}}});
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    cr_assert(eq(int, h_get(c, "/", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    for (size_t i = 0; i < sizeof(gaps) / sizeof(gaps[0]); i++) {
        h_sleep_ms(gaps[i]); /* idle about as long as the node waits: the behaviour under test */
        cr_assert(eq(int, h_get(c, "/", &m), 0), "after %u ms: %s", gaps[i], m.error);
        cr_assert(eq(int, m.status, 200), "after %u ms: status %d", gaps[i], m.status);
    }
    h_close(c);
    h_proxy_finish(p);
}

/* An empty chunked body ends with its terminator: the replay must carry it too, or the other
 * node waits for the rest of the body and the request times out. */
Test(retries, a_replayed_empty_chunked_request_is_complete, .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *bad = closer();
    struct h_upstream *x2 = h_upstream_start("x2", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(bad)}, {x2->port}},
                                                             .split_extra = SPLIT,
                                                             .x_extra = NO_OUTLIER,
                                                             .upstream_response_ms = 3000});
    const char *key = key_for(p, h_fake_port(bad));
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;
    uint64_t t0 = h_now_ms();

    cr_assert(eq(int,
                 h_sendf(c,
                         "DELETE /echo HTTP/1.1\r\nHost: %s\r\nX-Key: %s\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                         H_HOST, key),
                 0));
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200), "status %d", m.status);
    cr_assert(eq(str, (char *)upstream(&m), "x2"));
    cr_assert(lt(u64, h_now_ms() - t0, (uint64_t)2000), "the replay waited for a body");
    cr_assert(eq(sz, h_fake_requests_all(bad), (size_t)1));
    h_close(c);
    h_proxy_finish(p);
}

/* A request that fails over counts in both clusters' requests and in y's failovers, so that
 * requests = responses + failures + active + failovers holds for each cluster. */
Test(retries, a_failed_over_request_keeps_both_counts_whole, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    /* y: nothing listens. The first request fails over on its retry and ejects y's node; the
     * others fail over when they are routed. */
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{x1->port}}, .weight = "100", .y_extra = "    outlier: {failures: 1}\n"});
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);

    for (int i = 0; i < 3; i++) {
        struct h_msg *m = request(c, "GET", "/", h_fmt("k%d", i), NULL);

        cr_assert(eq(int, m->status, 200), "status %d", m->status);
        cr_assert(eq(str, (char *)upstream(m), "x1"));
    }
    h_assert_stat(adm, "y health", "ejected", 1);
    h_assert_stat(adm, "y requests", NULL, 3);
    h_assert_stat(adm, "y failovers", NULL, 3);
    h_assert_stat_json(adm, "y", NULL, "requests", 3);
    h_assert_stat(adm, "x requests", NULL, 3);
    h_assert_stat_json(adm, "x", NULL, "failovers", 0);
    h_close(c);
    h_proxy_finish(p);
}
