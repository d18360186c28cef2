/* tests/integration/test_workers.c -- worker threads: a change is in force on every worker once
 * its reply comes, and limits, counters and logs hold for all the workers together. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/integration/harness.h"

TestSuite(workers, .init = h_setup, .fini = h_teardown);

#define WORKERS "workers: 2\n"
#define SPLIT   "  key: [\"header:X-Key\"]\n"
#define N_CONNS 16

/* Starts bin/xfbench against the proxy (8 connections), its JSON in run.json: for a minute at
 * most, ended by load_errors once the test is done with it. */
static struct h_proc *
load_start(const struct h_proxy *p)
{
    char *argv[] = {(char *)h_bin("xfbench"),
                    "-q",
                    "-t",
                    "1",
                    "-c",
                    "8",
                    "-d",
                    "60s",
                    "--keys",
                    "2000",
                    "--key-header",
                    "X-Key",
                    "--timeout",
                    "3s",
                    "--json",
                    (char *)h_path("run.json"),
                    (char *)h_fmt("http://127.0.0.1:%d/", p->port),
                    NULL};

    return h_spawn("xfbench", argv, h_path("xfbench.log"), NULL);
}

/* Ends the load and returns its error count. SIGINT ends xfbench's run as its duration would:
 * no new request, those under way finish, then the report. So the load lasts as long as the
 * test's rounds, however slow a sanitizer makes them. The caller saw the load arrive: xfbench's
 * signal handlers were set before its first request. */
static double
load_errors(struct h_proc *b)
{
    char *json, *at;

    cr_assert(eq(int, h_proc_stop(b, SIGINT, 30000), 0), "xfbench failed: see xfbench.log");
    json = h_read_file(h_path("run.json"), NULL);
    cr_assert(ne(ptr, json, NULL), "no JSON report");
    at = strstr(json, "\"errors\":");
    cr_assert(ne(ptr, at, NULL), "no errors in the JSON");
    return strtod(at + strlen("\"errors\":"), NULL);
}

/* One request with key `key` on c; returns the name of the upstream that answered. */
static const char *
routed_to(struct h_conn *c, const char *key)
{
    struct h_msg *m = h_alloc(sizeof(*m));

    cr_assert(eq(int, h_sendf(c, "GET / HTTP/1.1\r\nHost: h\r\nX-Key: %s\r\n\r\n", key), 0));
    cr_assert(eq(int, h_read_response(c, m), 0), "%s", m->error);
    cr_assert(eq(int, m->status, 200), "key %s: status %d", key, m->status);
    return h_header(m, "X-Upstream");
}

Test(workers, after_a_rollback_reply_no_connection_of_any_worker_reaches_y, .timeout = 90)
{
    struct h_upstream *x = h_upstream_start("x1", NULL), *y = h_upstream_start("y1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{x->port}},
                                                             .y = {{y->port}},
                                                             .weight = "100",
                                                             .split_extra = SPLIT,
                                                             .extra_yaml = WORKERS});
    int adm = h_admin_connect(p);
    struct h_proc *bench = load_start(p);
    struct h_conn *c[N_CONNS];

    cr_assert(ne(ptr, strstr(h_admin_cmd(adm, "show version"), "\nworkers 2\n"), NULL),
              "show version does not say 2 workers");
    /* 16 kept-alive connections: the kernel spreads them over both workers' listeners. */
    for (int i = 0; i < N_CONNS; i++)
        c[i] = h_connect(p->port);
    cr_assert(h_upstream_wait_requests(y, 200, H_IO_TIMEOUT_MS), "the load did not reach y");
    for (int round = 0; round < 10; round++) {
        char *reply = h_admin_cmd(adm, "set weight 100");

        cr_assert(eq(int, strncmp(reply, "ok", 2), 0), "set weight 100: %s", reply);
        for (int i = 0; i < N_CONNS; i++)
            cr_assert(eq(str, (char *)routed_to(c[i], h_fmt("r%d-c%d-y", round, i)), "y1"),
                      "round %d, connection %d: weight 100 but not y", round, i);
        reply = h_admin_cmd(adm, "rollback");
        cr_assert(eq(int, strncmp(reply, "ok:", 3), 0), "rollback: %s", reply);
        /* The next request of every connection, on whichever worker holds it, goes to x. */
        for (int i = 0; i < N_CONNS; i++)
            cr_assert(eq(str, (char *)routed_to(c[i], h_fmt("r%d-c%d-x", round, i)), "x1"),
                      "round %d, connection %d: a request after the rollback reply went to y",
                      round, i);
    }
    cr_assert(eq(dbl, load_errors(bench), 0), "requests failed under load");
    h_proxy_finish(p);
}

Test(workers, a_node_limit_holds_for_all_workers_together, .timeout = 60)
{
    struct h_upstream *x = h_upstream_start("x1", NULL);
    struct h_proxy *p = h_proxy_start(
        &(struct h_proxy_opts){.x = {{x->port, 0, "max_connections: 2, max_pending: 50"}},
                               .queue_ms = 10000,
                               .extra_yaml = WORKERS});
    int adm = h_admin_connect(p);
    struct h_conn *c[8];
    uint64_t t0 = h_now_ms(), took;

    for (int i = 0; i < 8; i++) {
        c[i] = h_connect(p->port);
        cr_assert(eq(int, h_sendf(c[i], "GET /delay/400 HTTP/1.1\r\nHost: %s\r\n\r\n", H_HOST), 0));
    }
    /* Two at the node, six waiting: in whichever worker their connections landed. */
    h_await_stat(adm, "x queue", "waiting", 6);
    h_assert_stat(adm, "x active", NULL, 8);
    for (int i = 0; i < 8; i++) {
        struct h_msg m;

        cr_assert(eq(int, h_read_response_ex(c[i], &m, 0, 10000, NULL, NULL), 0), "%d: %s", i,
                  m.error);
        cr_assert(eq(int, m.status, 200), "request %d: status %d", i, m.status);
    }
    /* Never more than two at once: four rounds of 400 ms. */
    took = h_now_ms() - t0;
    cr_assert(ge(u64, took, (uint64_t)1500), "8 requests of 400 ms took %llu ms: over the limit",
              (unsigned long long)took);
    h_assert_stat(adm, "x queue", "waiting", 0);
    h_proxy_finish(p);
}

Test(workers, a_slot_freed_in_one_worker_reaches_requests_waiting_in_the_others, .timeout = 60)
{
    struct h_upstream *x = h_upstream_start("x1", NULL);
    struct h_proxy *p = h_proxy_start(
        &(struct h_proxy_opts){.x = {{x->port, 0, "max_connections: 1, max_pending: 50"}},
                               .queue_ms = 4000,
                               .extra_yaml = "workers: 4\n"});
    struct h_conn *c[12];
    uint64_t t0 = h_now_ms(), took;

    /* One at a time at the node, eleven waiting over four workers: each slot given back must
     * reach a waiting request wherever it waits, or that one times out with a 503. */
    for (int i = 0; i < 12; i++) {
        c[i] = h_connect(p->port);
        cr_assert(eq(int, h_sendf(c[i], "GET /delay/150 HTTP/1.1\r\nHost: %s\r\n\r\n", H_HOST), 0));
    }
    for (int i = 0; i < 12; i++) {
        struct h_msg m;

        cr_assert(eq(int, h_read_response_ex(c[i], &m, 0, 10000, NULL, NULL), 0), "%d: %s", i,
                  m.error);
        cr_assert(eq(int, m.status, 200), "request %d: status %d (%s)", i, m.status,
                  m.body != NULL ? m.body : "");
    }
    took = h_now_ms() - t0;
    cr_assert(ge(u64, took, (uint64_t)1700), "12 requests of 150 ms one at a time took %llu ms",
              (unsigned long long)took);
    h_proxy_finish(p);
}

Test(workers, show_stats_and_show_nodes_add_up_every_worker, .timeout = 60)
{
    struct h_upstream *x = h_upstream_start("x1", NULL);
    struct h_proxy *p =
        h_proxy_start(&(struct h_proxy_opts){.x = {{x->port}}, .extra_yaml = WORKERS});
    int adm = h_admin_connect(p);
    const char *addr = h_fmt("127.0.0.1:%d", x->port);
    struct h_conn *c[N_CONNS];
    uint64_t conns, reqs;
    const char *line;

    uint64_t conns0, reqs0;

    h_upstream_counters(x, &conns0, &reqs0);
    for (int i = 0; i < N_CONNS; i++) {
        struct h_msg m;

        c[i] = h_connect(p->port);
        cr_assert(eq(int, h_get(c[i], "/", &m), 0), "%s", m.error);
    }
    h_assert_stat(adm, "x requests", NULL, N_CONNS);
    h_assert_stat(adm, "client_connections", NULL, N_CONNS);
    h_upstream_counters(x, &conns, &reqs);
    cr_assert(eq(u64, reqs - reqs0, (uint64_t)N_CONNS));
    /* Both workers served, and each pooled the node connection it used: show nodes adds them. */
    line = h_admin_node_line(adm, "x", addr);
    cr_assert(eq(str, (char *)h_word(line, H_NODE_IDLE - 1), "0"), "show nodes: %s", line);
    cr_assert(eq(str, (char *)h_word(line, H_NODE_IDLE), "2"), "show nodes: %s", line);
    for (int i = 0; i < N_CONNS; i++)
        h_close(c[i]);
    cr_assert(h_admin_wait_stat(adm, "client_connections", NULL, 0, H_IO_TIMEOUT_MS),
              "the closed connections are still counted");
    h_proxy_finish(p);
}

Test(workers, one_worker_and_sixty_four_start_and_serve, .timeout = 60)
{
    static const char *const counts[] = {"1", "64"};

    for (size_t k = 0; k < 2; k++) {
        struct h_upstream *x = h_upstream_start(h_fmt("x%zu", k), NULL);
        struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
            .x = {{x->port}}, .extra_yaml = h_fmt("workers: %s\n", counts[k])});
        int adm = h_admin_connect(p);
        struct h_conn *c = h_connect(p->port);
        struct h_msg m;

        cr_assert(ne(ptr,
                     strstr(h_admin_cmd(adm, "show version"), h_fmt("\nworkers %s\n", counts[k])),
                     NULL));
        cr_assert(eq(int, h_get(c, "/", &m), 0), "%s", m.error);
        cr_assert(eq(int, m.status, 200));
        h_close(c);
        h_proxy_finish(p);
    }
}
