/* tests/integration/test_admin_load.c -- steering through the admin socket while load runs. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/integration/harness.h"

TestSuite(admin_load, .init = h_setup, .fini = h_teardown);

#define SPLIT "  key: [\"header:X-Key\"]\n  expose: X-Crossfade-Route\n"

/* Starts bin/xfbench against the proxy, writing its JSON to run.json: for a minute at most,
 * ended by load_finish once the test is done with it. */
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

/* Ends the load and returns the number after "KEY": in its JSON (the first one). SIGINT ends
 * xfbench's run as its duration would: no new request, those under way finish, then the report.
 * So the load lasts as long as the test's changes, however slow a sanitizer makes them. The
 * caller saw the load arrive: xfbench's signal handlers were set before its first request. */
static double
load_finish(struct h_proc *b, const char *key)
{
    char *json, *at;

    cr_assert(eq(int, h_proc_stop(b, SIGINT, 30000), 0), "xfbench failed: see xfbench.log");
    json = h_read_file(h_path("run.json"), NULL);
    cr_assert(ne(ptr, json, NULL), "no JSON report");
    at = strstr(json, h_fmt("\"%s\":", key));
    cr_assert(ne(ptr, at, NULL), "no %s in the JSON", key);
    return strtod(at + strlen(key) + 3, NULL);
}

/* Waits until the load has brought `u` at least n requests. */
static void
wait_load_on(struct h_upstream *u, uint64_t n)
{
    cr_assert(h_upstream_wait_requests(u, n, H_IO_TIMEOUT_MS),
              "the load did not bring %s %llu requests: see xfbench.log", u->name,
              (unsigned long long)n);
}

static struct h_proxy *
load_proxy(const char *weight, struct h_upstream **x, struct h_upstream **y)
{
    *x = h_upstream_start("x1", NULL);
    *y = h_upstream_start("y1", NULL);
    return h_proxy_start(&(struct h_proxy_opts){
        .x = {{(*x)->port}}, .y = {{(*y)->port}}, .weight = weight, .split_extra = SPLIT});
}

Test(admin_load, after_a_rollback_reply_no_new_request_reaches_y, .timeout = 60)
{
    struct h_upstream *x, *y;
    struct h_proxy *p = load_proxy("50", &x, &y);
    int adm = h_admin_connect(p);
    struct h_proc *bench = load_start(p);
    struct h_conn *c = h_connect(p->port);
    char *reply;

    wait_load_on(y, 200); /* the rollback comes while the load is on y */
    reply = h_admin_cmd(adm, "rollback");
    cr_assert(eq(int, strncmp(reply, "ok:", 3), 0), "rollback: %s", reply);
    /* Every request sent after the reply -- 400 distinct keys, half of which were on y. */
    for (int i = 0; i < 400; i++) {
        struct h_msg m;

        cr_assert(
            eq(int, h_sendf(c, "GET / HTTP/1.1\r\nHost: h\r\nX-Key: after-%d\r\n\r\n", i), 0));
        cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
        cr_assert(eq(str, (char *)h_header(&m, "X-Upstream"), "x1"),
                  "request %d after the rollback reply went to %s", i, h_header(&m, "X-Upstream"));
    }
    cr_assert(eq(dbl, load_finish(bench, "errors"), 0), "requests failed under load");
    h_proxy_finish(p);
}

Test(admin_load, a_hundred_weight_changes_under_load_lose_no_request, .timeout = 60)
{
    struct h_upstream *x, *y;
    struct h_proxy *p = load_proxy("0", &x, &y);
    int adm = h_admin_connect(p);
    struct h_proc *bench = load_start(p);

    wait_load_on(x, 200);
    srand(11);
    for (int i = 0; i < 100; i++) {
        char *reply = h_admin_cmd(adm, h_fmt("set weight %d.%02d", rand() % 101, rand() % 100 / 2));
        cr_assert(
            eq(int, strncmp(reply, "ok", 2) == 0 || strncmp(reply, "error: weight", 13) == 0, 1),
            "change %d: %s", i, reply);
        h_sleep_ms(20); /* paced: the changes are spread over the load, not bunched at its start */
    }
    cr_assert(eq(dbl, load_finish(bench, "errors"), 0), "requests failed during the changes");
    h_proxy_finish(p);
}

Test(admin_load, hostile_admin_clients_do_not_stop_the_proxy, .timeout = 60)
{
    struct h_upstream *x, *y;
    struct h_proxy *p = load_proxy("50", &x, &y);
    int flood = h_admin_connect(p), slow = h_admin_connect(p), good;
    struct h_proc *bench = load_start(p);
    static char cmds[64 * 1024];
    uint64_t until;
    char *reply;

    wait_load_on(x, 100);
    until = h_now_ms() + 2500;
    /* One client floods commands and never reads its replies; one sends a line byte by byte. */
    for (size_t i = 0; i + 12 <= sizeof(cmds); i += 12)
        memcpy(cmds + i, "show weight\n", 12);
    fcntl(flood, F_SETFL, O_NONBLOCK);
    while (h_now_ms() < until) {
        if (send(flood, cmds, sizeof(cmds), MSG_NOSIGNAL) == -1 && errno != EAGAIN)
            break;
        send(slow, "s", 1, MSG_NOSIGNAL);
        h_sleep_ms(5); /* paced: one client is slow, the other floods, for the load's duration */
    }
    cr_assert(eq(dbl, load_finish(bench, "errors"), 0), "requests failed");
    /* Another admin client is still served. */
    good = h_admin_connect(p);
    reply = h_admin_cmd(good, "show weight");
    cr_assert(eq(str, reply, "x 50.00\ny 50.00\n"));
    h_proxy_finish(p);
}
