/* tests/integration/test_upstream_pool.c -- keep-alive connections to the nodes: reuse and its
 * limits. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <string.h>
#include <unistd.h>

#include "tests/integration/harness.h"

TestSuite(upstream_pool, .init = h_setup, .fini = h_teardown);

#define OK_REPLY "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"

/* A proxy in front of one fake node. */
static struct h_proxy *
proxy_for(struct h_fake *f)
{
    return h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(f)}}});
}

static void
get_ok(struct h_conn *c, const char *target, int i)
{
    struct h_msg m;

    cr_assert(eq(int, h_get(c, target, &m), 0), "request %d: %s", i, m.error);
    cr_assert(eq(int, m.status, 200), "request %d: status %d", i, m.status);
    cr_assert(eq(str, m.body, "ok\n"), "request %d", i);
}

Test(upstream_pool, sequential_requests_on_one_client_connection_reuse_one_upstream_connection,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f = h_fake_start1(OK_REPLY, H_FAKE_KEEP);
    struct h_proxy *p = proxy_for(f);
    struct h_conn *c = h_connect(p->port);

    for (int i = 0; i < 20; i++)
        get_ok(c, "/", i);
    cr_assert(eq(sz, h_fake_conns(f), (size_t)1), "20 requests opened %zu upstream connections",
              h_fake_conns(f));
    cr_assert(eq(sz, h_fake_requests(f, 0), (size_t)20));
    h_proxy_finish(p);
}

Test(upstream_pool, requests_from_successive_client_connections_reuse_the_pooled_connection,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f = h_fake_start1(OK_REPLY, H_FAKE_KEEP);
    /* Pools are per worker (docs/architecture.md): with one worker every client meets the same
     * pool; with more, each worker would keep a connection of its own. */
    struct h_proxy *p = h_proxy_start(
        &(struct h_proxy_opts){.x = {{h_fake_port(f)}}, .extra_yaml = "workers: 1\n"});
    int adm = h_admin_connect(p);
    const char *addr = h_fmt("127.0.0.1:%d", h_fake_port(f));

    for (int i = 0; i < 10; i++) {
        struct h_conn *c = h_connect(p->port);

        get_ok(c, "/", i);
        h_close(c);
        /* Reuse is the point, not how soon after the response the connection is back in the
         * pool: the next client comes once it is. */
        cr_assert(h_admin_wait_node(adm, "x", addr, H_NODE_IDLE, "1", H_IO_TIMEOUT_MS),
                  "the node connection is not back in the pool:\n%s",
                  h_admin_cmd(adm, "show nodes"));
    }
    cr_assert(eq(sz, h_fake_conns(f), (size_t)1),
              "10 clients one after the other opened %zu upstream connections", h_fake_conns(f));
    h_proxy_finish(p);
}

Test(upstream_pool, with_two_workers_each_keeps_at_most_one_connection_for_successive_clients,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f = h_fake_start1(OK_REPLY, H_FAKE_KEEP);
    struct h_proxy *p = h_proxy_start(
        &(struct h_proxy_opts){.x = {{h_fake_port(f)}}, .extra_yaml = "workers: 2\n"});
    int adm = h_admin_connect(p);
    const char *addr = h_fmt("127.0.0.1:%d", h_fake_port(f));

    for (int i = 0; i < 20; i++) {
        struct h_conn *c = h_connect(p->port);

        get_ok(c, "/", i);
        h_close(c);
        /* Every connection opened so far is back in its worker's pool (show nodes sums them). */
        cr_assert(h_admin_wait_node(adm, "x", addr, H_NODE_IDLE, h_fmt("%zu", h_fake_conns(f)),
                                    H_IO_TIMEOUT_MS),
                  "the node connections are not back in the pools:\n%s",
                  h_admin_cmd(adm, "show nodes"));
    }
    cr_assert(le(sz, h_fake_conns(f), (size_t)2),
              "20 clients one after the other opened %zu upstream connections with 2 workers",
              h_fake_conns(f));
    h_proxy_finish(p);
}

Test(upstream_pool, an_upstream_connection_is_not_reused_after_an_invalid_response,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_fake_reply replies[] = {
        {.bytes = "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\nok\n", .action = H_FAKE_KEEP},
        {.bytes = OK_REPLY, .action = H_FAKE_KEEP},
    };
    struct h_fake *f = h_fake_start(replies, 2);
    struct h_proxy *p = proxy_for(f);
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    cr_assert(eq(int, h_get(c, "/first", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 502));
    cr_assert(h_fake_wait_peer_closed(f, 0, 5000),
              "the proxy kept the connection that sent an invalid response");
    c = h_connect(p->port);
    get_ok(c, "/second", 1);
    cr_assert(eq(sz, h_fake_conns(f), (size_t)2));
    cr_assert(eq(sz, h_fake_requests(f, 0), (size_t)1), "the second request went to the bad conn");
    h_proxy_finish(p);
}

Test(upstream_pool, an_upstream_connection_is_not_reused_after_a_response_delimited_by_close,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_fake_reply replies[] = {
        {.bytes = "HTTP/1.1 200 OK\r\n\r\nuntil close\n", .action = H_FAKE_CLOSE},
        {.bytes = OK_REPLY, .action = H_FAKE_KEEP},
    };
    struct h_fake *f = h_fake_start(replies, 2);
    struct h_proxy *p = proxy_for(f);
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    cr_assert(eq(int, h_get(c, "/first", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, m.body, "until close\n"));
    cr_assert(h_fake_wait_peer_closed(f, 0, 5000),
              "the proxy did not close its side of a connection whose response ended by close");
    /* The client connection may have been closed too (a 1.1 client can get its body delimited by
     * close): the next request goes on a new one either way. */
    c = h_connect(p->port);
    get_ok(c, "/second", 1);
    cr_assert(eq(sz, h_fake_conns(f), (size_t)2));
    cr_assert(eq(sz, h_fake_requests(f, 1), (size_t)1));
    h_proxy_finish(p);
}

Test(upstream_pool, an_upstream_connection_is_closed_after_the_node_answers_connection_close,
     .timeout = H_TEST_TIMEOUT)
{
    /* The fake keeps its side open: only the proxy can close it. */
    struct h_fake *f = h_fake_start1(
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n", H_FAKE_KEEP);
    struct h_proxy *p = proxy_for(f);
    struct h_conn *c = h_connect(p->port);

    get_ok(c, "/first", 0);
    cr_assert(h_fake_wait_peer_closed(f, 0, 5000),
              "the proxy kept a connection whose node said Connection: close");
    /* Whether the client connection survives is not the point here: use a new one. */
    get_ok(h_connect(p->port), "/second", 1);
    cr_assert(eq(sz, h_fake_conns(f), (size_t)2));
    cr_assert(eq(sz, h_fake_requests(f, 0), (size_t)1));
    h_proxy_finish(p);
}

Test(upstream_pool, an_upstream_connection_is_closed_after_a_request_from_a_client_asking_to_close,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f = h_fake_start1(OK_REPLY, H_FAKE_KEEP);
    struct h_proxy *p = proxy_for(f);
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    h_sendf(c, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", H_HOST);
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(int, h_conn_wait(c, 5000), H_CLOSED), "the client connection stayed open");
    cr_assert(eq(sz, h_fake_requests(f, 0), (size_t)1));
    cr_assert(h_fake_wait_peer_closed(f, 0, 5000),
              "the upstream connection of a client that asked to close stayed open");
    h_proxy_finish(p);
}

/* Five requests at once on five node connections, then each back to the pool: a node's pool keeps
 * `max_idle` of them (here 2, with one worker) and closes the others, or all five with auto. */
static void
five_at_once_then_idle(const char *x_extra, const char *want_idle)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p = h_proxy_start(
        &(struct h_proxy_opts){.x = {{u->port}}, .x_extra = x_extra, .extra_yaml = "workers: 1\n"});
    int adm = h_admin_connect(p);
    const char *addr = h_fmt("127.0.0.1:%d", u->port);
    struct h_conn *c[5];
    struct h_msg m;

    for (int i = 0; i < 5; i++) {
        c[i] = h_connect(p->port);
        h_sendf(c[i], "GET /delay/300 HTTP/1.1\r\nHost: %s\r\n\r\n", H_HOST);
    }
    for (int i = 0; i < 5; i++) {
        cr_assert(eq(int, h_read_response(c[i], &m), 0), "client %d: %s", i, m.error);
        cr_assert(eq(int, m.status, 200));
    }
    cr_assert(h_admin_wait_node(adm, "x", addr, H_NODE_IDLE, want_idle, H_IO_TIMEOUT_MS),
              "not %s idle:\n%s", want_idle, h_admin_cmd(adm, "show nodes"));
    usleep(300000);
    cr_assert(h_admin_wait_node(adm, "x", addr, H_NODE_IDLE, want_idle, 100), "%s",
              h_admin_cmd(adm, "show nodes"));
    for (int i = 0; i < 5; i++)
        h_close(c[i]);
    h_proxy_finish(p);
}

Test(upstream_pool, max_idle_bounds_the_idle_connections_kept_for_a_node, .timeout = H_TEST_TIMEOUT)
{
    five_at_once_then_idle("    max_idle: 2\n", "2");
}

Test(upstream_pool, max_idle_auto_keeps_as_many_as_were_busy_at_once, .timeout = H_TEST_TIMEOUT)
{
    five_at_once_then_idle(NULL, "5");
}

Test(upstream_pool, max_idle_0_keeps_no_idle_connection, .timeout = H_TEST_TIMEOUT)
{
    five_at_once_then_idle("    max_idle: 0\n", "0");
}
