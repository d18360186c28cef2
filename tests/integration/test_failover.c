/* tests/integration/test_failover.c -- nodes of y die or stop under load and no client request
 * fails; y's clients go to x when y has no usable node (counted and logged); a cluster whose
 * failover is off (x by default) answers 503 and forwards nothing. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/integration/harness.h"

TestSuite(failover, .init = h_setup, .fini = h_teardown);

#define SPLIT    "  key: [\"header:X-Key\"]\n"
#define HEALTH   "    health: {path: /status, interval: 200ms, timeout: 100ms, rise: 2, fall: 3}\n"
#define OK_REPLY "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Upstream: fake\r\n\r\nok\n"
#define WAIT_MS  3000 /* the longest wait for a node to go down (fall 3 x 200 ms, and margin) */
#define KEYS     3    /* split keys of each y node the test sends itself */

/* x1 and x2, y1 and y2 (xf-upstream), weight 50, checks on y. */
struct fleet {
    struct h_upstream *x1, *x2, *y1, *y2;
    struct h_proxy *p;
    int adm;
    const char *k1[KEYS], *k2[KEYS]; /* split keys that go to y1, to y2 */
};

static const char *
key_for(int adm, const char *addr, unsigned nth)
{
    const char *k = h_admin_key_for_node(adm, "header:X-Key", addr, nth);

    cr_assert(ne(ptr, (void *)k, NULL), "no split key goes to %s", addr);
    return k;
}

static void
fleet_start(struct fleet *f)
{
    f->x1 = h_upstream_start("x1", NULL);
    f->x2 = h_upstream_start("x2", NULL);
    f->y1 = h_upstream_start("y1", NULL);
    f->y2 = h_upstream_start("y2", NULL);
    f->p = h_proxy_start(&(struct h_proxy_opts){.x = {{f->x1->port}, {f->x2->port}},
                                                .y = {{f->y1->port}, {f->y2->port}},
                                                .weight = "50",
                                                .split_extra = SPLIT,
                                                .y_extra = HEALTH});
    f->adm = h_admin_connect(f->p);
    for (unsigned i = 0; i < KEYS; i++) {
        f->k1[i] = key_for(f->adm, f->y1->addr, i);
        f->k2[i] = key_for(f->adm, f->y2->addr, i);
    }
}

/* GET / with split key `key`; asserts that a response came and returns it. */
static struct h_msg *
get_key(struct h_conn *c, const char *key)
{
    struct h_msg *m = h_alloc(sizeof(*m));

    cr_assert(
        eq(int, h_sendf(c, "GET / HTTP/1.1\r\nHost: %s\r\nX-Key: %s\r\n\r\n", H_HOST, key), 0),
        "sending: %s", strerror(errno));
    cr_assert(eq(int, h_read_response(c, m), 0), "key %s: %s", key, m->error);
    return m;
}

/* GET / with split key `key`; asserts a 200 and returns its X-Upstream. */
static const char *
served_by(struct h_conn *c, const char *key)
{
    struct h_msg *m = get_key(c, key);
    const char *u = h_header(m, "X-Upstream");

    cr_assert(eq(int, m->status, 200), "key %s: status %d from \"%s\"", key, m->status,
              u != NULL ? u : "");
    cr_assert(ne(ptr, (void *)u, NULL), "key %s: no X-Upstream", key);
    return u;
}

static bool
is_x(const char *u)
{
    return strcmp(u, "x1") == 0 || strcmp(u, "x2") == 0;
}

/* Starts bin/xfbench: 8 connections, 400 GETs/s over 2000 split keys, for `duration`. */
static struct h_proc *
load_start(const struct h_proxy *p, const char *duration)
{
    char *argv[] = {(char *)h_bin("xfbench"),
                    "-q",
                    "-t",
                    "1",
                    "-c",
                    "8",
                    "--rate",
                    "400",
                    "-d",
                    (char *)duration,
                    "--keys",
                    "2000",
                    "--key-header",
                    "X-Key",
                    "--timeout",
                    "3s",
                    "--json",
                    (char *)h_path("load.json"),
                    (char *)h_fmt("http://127.0.0.1:%d/", p->port),
                    NULL};

    return h_spawn("xfbench", argv, h_path("xfbench.log"), NULL);
}

/* The number after the first `"key": ` in the JSON. */
static double
json_num(const char *json, const char *key)
{
    const char *k = h_fmt("\"%s\": ", key);
    const char *at = strstr(json, k);

    cr_assert(ne(ptr, (void *)at, NULL), "no %s in xfbench's JSON:\n%s", k, json);
    return strtod(at + strlen(k), NULL);
}

/* Waits for the load to end and asserts that every one of its requests got a 200. */
static void
load_check(struct h_proc *b)
{
    int code = h_proc_wait(b, 20000);
    char *json;
    const char *kinds;

    cr_assert(eq(int, code, 0), "xfbench exited %d: see xfbench.log", code);
    json = h_read_file(h_path("load.json"), NULL);
    cr_assert(ne(ptr, json, NULL), "no JSON report from xfbench");
    kinds = strstr(json, "\"errors\": {");
    cr_assert(ge(dbl, json_num(json, "responses"), 500.0), "too little load:\n%s", json);
    cr_assert(eq(dbl, json_num(json, "errors"), 0.0), "client requests failed: %.140s",
              kinds != NULL ? kinds : json);
}

/* The requests xf-upstream `u` has received so far (its health checks included). */
static uint64_t
requests_of(struct h_upstream *u)
{
    uint64_t conns, reqs;

    h_upstream_counters(u, &conns, &reqs);
    return reqs;
}

/* Waits until the load has brought `u` 20 requests more than `before`: the load reaches it (the
 * health checks alone add one every 200 ms). */
static void
wait_load_on(struct h_upstream *u, uint64_t before)
{
    cr_assert(h_upstream_wait_requests(u, before + 20, H_IO_TIMEOUT_MS),
              "the load did not reach %s: %llu requests, %llu before it started", u->name,
              (unsigned long long)requests_of(u), (unsigned long long)before);
}

static void
wait_down(int adm, const char *cluster, const char *addr)
{
    cr_assert(h_admin_wait_node(adm, cluster, addr, H_NODE_STATE, "down", WAIT_MS),
              "%s %s is not down after %d ms:\n%s", cluster, addr, WAIT_MS,
              h_admin_cmd(adm, "show nodes"));
}

Test(failover, killing_one_of_two_y_nodes_fails_no_request, .timeout = H_TEST_TIMEOUT)
{
    struct fleet f;
    struct h_conn *c;
    struct h_proc *bench;
    uint64_t until, before;

    fleet_start(&f);
    c = h_connect(f.p->port);
    for (unsigned i = 0; i < KEYS; i++) {
        cr_assert(eq(str, (char *)served_by(c, f.k1[i]), "y1"));
        cr_assert(eq(str, (char *)served_by(c, f.k2[i]), "y2"));
    }
    before = requests_of(f.y1);
    bench = load_start(f.p, "3s");
    wait_load_on(f.y1, before);
    h_upstream_kill(f.y1);
    /* y1's clients stay on y: y2 is healthy. Checked over 1.5 s of the episode, a round every
     * 20 ms beside the load. */
    until = h_now_ms() + 1500;
    while (h_now_ms() < until) {
        for (unsigned i = 0; i < KEYS; i++) {
            cr_assert(eq(str, (char *)served_by(c, f.k1[i]), "y2"), "a key of the killed y1");
            cr_assert(eq(str, (char *)served_by(c, f.k2[i]), "y2"));
        }
        h_sleep_ms(20);
    }
    load_check(bench);
    wait_down(f.adm, "y", f.y1->addr);
    h_assert_stat(f.adm, "y failovers", NULL, 0);
    h_assert_stat(f.adm, "y health", "down", 1);
    h_close(c);
    h_proxy_finish(f.p);
}

Test(failover, stopping_every_y_node_under_load_fails_over_to_x, .timeout = H_TEST_TIMEOUT)
{
    struct fleet f;
    struct h_conn *c;
    struct h_proc *bench;
    uint64_t until, before1, before2;
    long long failovers;

    fleet_start(&f);
    c = h_connect(f.p->port);
    before1 = requests_of(f.y1);
    before2 = requests_of(f.y2);
    bench = load_start(f.p, "3s");
    wait_load_on(f.y1, before1);
    wait_load_on(f.y2, before2);
    kill(f.y1->proc->pid, SIGTERM);
    kill(f.y2->proc->pid, SIGTERM);
    h_proc_wait(f.y1->proc, 5000);
    h_proc_wait(f.y2->proc, 5000);
    /* Checked over 1.5 s of the episode, a round every 20 ms beside the load. */
    until = h_now_ms() + 1500;
    while (h_now_ms() < until) {
        for (unsigned i = 0; i < KEYS; i++) {
            const char *u1 = served_by(c, f.k1[i]), *u2 = served_by(c, f.k2[i]);

            cr_assert(is_x(u1), "a key of y1 was served by %s", u1);
            cr_assert(is_x(u2), "a key of y2 was served by %s", u2);
        }
        h_sleep_ms(20);
    }
    load_check(bench);
    failovers = h_admin_stat(f.adm, "y failovers", NULL);
    cr_assert(gt(i64, failovers, 0LL), "y failovers %lld:\n%s", failovers,
              h_admin_cmd(f.adm, "show stats"));
    cr_assert(h_log_wait(f.p->proc->log_path, "event=failover", 1000),
              "no event=failover in crossfade's log");
    wait_down(f.adm, "y", f.y1->addr);
    wait_down(f.adm, "y", f.y2->addr);
    h_close(c);
    h_proxy_finish(f.p);
}

Test(failover, y_without_failover_answers_503_and_forwards_nothing, .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *fx = h_fake_start1(OK_REPLY, H_FAKE_KEEP);
    int dead = h_free_port();
    struct h_proxy *p =
        h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(fx)}},
                                             .y = {{dead}},
                                             .weight = "100",
                                             .split_extra = SPLIT,
                                             .y_extra = "    failover: false\n" HEALTH});
    int adm = h_admin_connect(p);
    struct h_conn *c;
    struct h_msg *m;

    wait_down(adm, "y", h_fmt("127.0.0.1:%d", dead));
    c = h_connect(p->port);
    m = get_key(c, "k1");
    cr_assert(eq(int, m->status, 503), "status %d", m->status);
    h_assert_stat(adm, "y failovers", NULL, 0);
    /* x was not sent y's request: once every client is on x again, a sentinel is all x gets. */
    cr_assert(eq(int, strncmp(h_admin_cmd(adm, "rollback"), "ok:", 3), 0));
    h_fake_expect_only_sentinels(fx, p->port, "X-Key: k1\r\n");
    h_close(c);
    h_proxy_finish(p);
}

Test(failover, x_does_not_fail_over_to_y_by_default, .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *fy = h_fake_start1(OK_REPLY, H_FAKE_KEEP);
    int dead = h_free_port();
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{dead}}, .y = {{h_fake_port(fy)}}, .weight = "0", .x_extra = HEALTH});
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    struct h_msg *m;

    /* Before the checks take it down: the refused connection cannot go to y either. */
    m = get_key(c, "k1");
    cr_assert(ge(int, m->status, 500), "status %d", m->status);
    cr_assert(le(int, m->status, 599), "status %d", m->status);
    cr_assert(eq(ptr, (void *)h_header(m, "X-Upstream"), NULL), "y answered");
    wait_down(adm, "x", h_fmt("127.0.0.1:%d", dead));
    m = get_key(c, "k1");
    cr_assert(eq(int, m->status, 503), "status %d with x down", m->status);
    h_assert_stat(adm, "x failovers", NULL, 0);
    /* y was not sent x's request: once every client is on y, a sentinel is all y gets. */
    cr_assert(eq(int, strncmp(h_admin_cmd(adm, "set weight 100"), "ok:", 3), 0));
    h_fake_expect_only_sentinels(fy, p->port, NULL);
    h_close(c);
    h_proxy_finish(p);
}

Test(failover, x_with_failover_true_is_served_by_y, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *y1 = h_upstream_start("y1", NULL);
    int dead = h_free_port();
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{dead}}, .y = {{y1->port}}, .weight = "0", .x_extra = "    failover: true\n" HEALTH});
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);

    wait_down(adm, "x", h_fmt("127.0.0.1:%d", dead));
    cr_assert(eq(str, (char *)served_by(c, "k1"), "y1"));
    h_assert_stat(adm, "x failovers", NULL, 1);
    h_assert_stat(adm, "y failovers", NULL, 0);
    cr_assert(h_log_wait(p->proc->log_path, "event=failover", 1000),
              "no event=failover in crossfade's log");
    h_close(c);
    h_proxy_finish(p);
}

Test(failover, draining_every_y_node_sends_y_clients_to_x, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *y1 = h_upstream_start("y1", NULL);
    struct h_proxy *p = h_proxy_start(
        &(struct h_proxy_opts){.x = {{x1->port}}, .y = {{y1->port}}, .weight = "100"});
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    char *reply;

    cr_assert(eq(str, (char *)served_by(c, "k1"), "y1"));
    reply = h_admin_cmd(adm, h_fmt("drain node y/%s", y1->addr));
    cr_assert(eq(int, strncmp(reply, "ok:", 3), 0), "%s", reply);
    for (int i = 0; i < 3; i++)
        cr_assert(eq(str, (char *)served_by(c, "k1"), "x1"));
    h_assert_stat(adm, "y failovers", NULL, 3);
    h_assert_stat_json(adm, "y", NULL, "failovers", 3);
    h_assert_stat_json(adm, "x", NULL, "failovers", 0);
    reply = h_admin_cmd(adm, h_fmt("enable node y/%s", y1->addr));
    cr_assert(eq(int, strncmp(reply, "ok:", 3), 0), "%s", reply);
    cr_assert(eq(str, (char *)served_by(c, "k1"), "y1"));
    h_close(c);
    h_proxy_finish(p);
}

Test(failover, y_nodes_of_weight_0_send_y_clients_to_x, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *y1 = h_upstream_start("y1", NULL);
    struct h_proxy *p = h_proxy_start(
        &(struct h_proxy_opts){.x = {{x1->port}}, .y = {{y1->port}}, .weight = "100"});
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    char *reply;

    cr_assert(eq(str, (char *)served_by(c, "k1"), "y1"));
    reply = h_admin_cmd(adm, h_fmt("set node y/%s weight 0", y1->addr));
    cr_assert(eq(int, strncmp(reply, "ok:", 3), 0), "%s", reply);
    for (int i = 0; i < 2; i++)
        cr_assert(eq(str, (char *)served_by(c, "k1"), "x1"));
    h_assert_stat(adm, "y failovers", NULL, 2);
    h_close(c);
    h_proxy_finish(p);
}
