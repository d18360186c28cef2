/* tests/integration/test_signals.c -- graceful stop on SIGTERM and SIGINT; SIGPIPE is harmless. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <signal.h>
#include <string.h>

#include "tests/integration/harness.h"

TestSuite(signals, .init = h_setup, .fini = h_teardown);

/*
 * With a request in flight (the node answers after 2 s), `sig` closes the listener at once,
 * the request still completes, and crossfade exits 0.
 */
static void
check_graceful_stop(int sig)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}});
    struct h_conn *c = h_connect(p->port);
    uint64_t deadline;
    struct h_msg m;
    int refused = 0, code;

    h_sendf(c, "GET /delay/2000 HTTP/1.1\r\nHost: %s\r\n\r\n", H_HOST);
    h_sleep_ms(300); /* the request reaches the node */
    kill(p->proc->pid, sig);
    deadline = h_now_ms() + 1500;
    while (h_now_ms() < deadline && (refused = h_try_connect(p->port, 200)) != ECONNREFUSED)
        h_sleep_ms(20);
    cr_assert(eq(int, refused, ECONNREFUSED),
              "new connections were still accepted 1.5 s after signal %d (%s)", sig,
              strerror(refused));
    cr_assert(h_proc_alive(p->proc), "crossfade did not wait for the request in flight");
    cr_assert(eq(int, h_read_response(c, &m), 0), "the request in flight failed: %s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, m.body, "u1\n"));
    code = h_proc_wait(p->proc, (int)p->shutdown_ms + 5000);
    cr_assert(eq(int, code, 0), "crossfade exited with %d after signal %d", code, sig);
}

Test(signals, sigterm_finishes_the_request_in_flight_refuses_new_connections_and_exits_0,
     .timeout = H_TEST_TIMEOUT)
{
    check_graceful_stop(SIGTERM);
}

Test(signals, sigint_finishes_the_request_in_flight_refuses_new_connections_and_exits_0,
     .timeout = H_TEST_TIMEOUT)
{
    check_graceful_stop(SIGINT);
}

Test(signals, a_client_resetting_mid_download_does_not_stop_the_proxy, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}});
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    h_sendf(c, "GET /bytes/1073741824 HTTP/1.1\r\nHost: %s\r\n\r\n", H_HOST);
    cr_assert(eq(int, h_read_head(c, &m, H_IO_TIMEOUT_MS), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(int, h_conn_wait(c, H_IO_TIMEOUT_MS), H_DATA), "no body came");
    h_abort(c); /* the proxy's next writes get ECONNRESET, then EPIPE (SIGPIPE unless ignored) */
    h_sleep_ms(300);
    cr_assert(h_proc_alive(p->proc), "crossfade died when a client went away mid-body");
    cr_assert(eq(int, h_get(h_connect(p->port), "/", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, m.body, "u1\n"));
    h_proxy_finish(p);
}
