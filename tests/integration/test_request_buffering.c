/* tests/integration/test_request_buffering.c -- limits.request_buffer_bytes: a request body up to
 * that size is read whole before the request goes to a node, so a slow client holds no node
 * connection meanwhile and a malformed body reaches no node; larger bodies, and a client that
 * waits for 100 Continue, stream as before. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <stdio.h>
#include <string.h>

#include "tests/integration/harness.h"

TestSuite(request_buffering, .init = h_setup, .fini = h_teardown);

/* Waits until crossfade opened a connection to the node beyond the `conns0` it had: the request
 * went on before its body ended (the node counts a request only once it read it whole). */
static bool
wait_connected(struct h_upstream *u, uint64_t conns0, int ms)
{
    uint64_t end = h_now_ms() + (uint64_t)ms, conns, reqs;

    for (;;) {
        h_upstream_counters(u, &conns, &reqs);
        if (conns > conns0)
            return true;
        if (h_now_ms() >= end)
            return false;
        h_sleep_ms(20);
    }
}

/* A body trickled in ten pieces over a second: the node sees neither a connection nor the request
 * until the last byte came, then the whole request at once. */
Test(request_buffering, a_slow_small_body_reaches_the_node_only_once_it_is_whole,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}});
    struct h_conn *c = h_connect(p->port);
    uint64_t conns0, reqs0, conns, reqs;
    struct h_msg m;

    h_upstream_counters(u, &conns0, &reqs0);
    cr_assert(eq(
        int, h_sendf(c, "POST /echo HTTP/1.1\r\nHost: %s\r\nContent-Length: 100\r\n\r\n", H_HOST),
        0));
    for (int i = 0; i < 10; i++) {
        h_sleep_ms(100);
        h_upstream_counters(u, &conns, &reqs);
        cr_assert(eq(u64, conns, conns0), "a node connection while the body trickles in");
        cr_assert(eq(u64, reqs, reqs0));
        cr_assert(eq(int, h_send_str(c, "0123456789"), 0));
    }
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(ne(ptr, strstr(m.body, "\r\n\r\n0123456789012345678901234567890123456789"), NULL),
              "%s", m.body);
    h_upstream_counters(u, &conns, &reqs);
    cr_assert(eq(u64, reqs, reqs0 + 1));
    h_close(c);
    h_proxy_finish(p);
}

/* A chunked body is buffered too: one that turns out malformed is answered 400 by crossfade and
 * nothing of it reached a node. A good one arrives whole, still chunked. */
Test(request_buffering, a_malformed_chunked_body_reaches_no_node, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}});
    struct h_conn *c = h_connect(p->port);
    uint64_t conns0, reqs0, conns, reqs;
    struct h_msg m;

    h_upstream_counters(u, &conns0, &reqs0);
    cr_assert(eq(int,
                 h_sendf(c,
                         "POST /echo HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "5\r\nhello\r\n5\r\nworld\r\nzz\r\n",
                         H_HOST),
                 0));
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 400));
    h_upstream_counters(u, &conns, &reqs);
    cr_assert(eq(u64, conns, conns0), "a node was connected for a body crossfade refused");
    cr_assert(eq(u64, reqs, reqs0));
    h_close(c);

    c = h_connect(p->port);
    cr_assert(eq(int,
                 h_sendf(c,
                         "POST /echo HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "5\r\nhello\r\n",
                         H_HOST),
                 0));
    h_sleep_ms(300);
    h_upstream_counters(u, &conns, &reqs);
    cr_assert(eq(u64, reqs, reqs0), "sent before the body ended");
    cr_assert(eq(int, h_send_str(c, "6\r\n world\r\n0\r\n\r\n"), 0));
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(ne(ptr, strstr(m.body, "\r\n\r\nhello world"), NULL), "%s", m.body);
    h_close(c);
    h_proxy_finish(p);
}

/* Past the buffer, the body streams: the node has the request while the client still sends
 * (a Content-Length larger than the buffer, and a chunked body that outgrows it). */
Test(request_buffering, a_body_larger_than_the_buffer_streams_to_the_node,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p =
        h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}, .request_buffer = "1024"});
    struct h_conn *c = h_connect(p->port);
    uint64_t conns0, reqs0;
    char part[1001];
    struct h_msg m;

    h_upstream_counters(u, &conns0, &reqs0);
    memset(part, 'a', sizeof(part) - 1);
    part[sizeof(part) - 1] = '\0';
    /* Connection: close, so that the node connection closes too and the next request opens one. */
    cr_assert(eq(int,
                 h_sendf(c,
                         "POST /count HTTP/1.1\r\nHost: %s\r\nContent-Length: 2000\r\n"
                         "Connection: close\r\n\r\n",
                         H_HOST),
                 0));
    cr_assert(eq(int, h_send_str(c, "x"), 0));
    cr_assert(wait_connected(u, conns0, 3000), "a body over the buffer did not stream");
    cr_assert(eq(int, h_sendf(c, "%.*s", 1999, h_fmt("%s%s", part, part)), 0));
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(int, strncmp(m.body, "bytes=2000 ", 11), 0), "%s", m.body);
    h_close(c);
    /* Chunked: a first chunk of 1000 bytes is held; the second outgrows the buffer and goes. */
    c = h_connect(p->port);
    h_upstream_counters(u, &conns0, &reqs0);
    cr_assert(eq(int,
                 h_sendf(c,
                         "POST /count HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "3e8\r\n%s\r\n",
                         H_HOST, part),
                 0));
    h_sleep_ms(300);
    cr_assert(not(wait_connected(u, conns0, 0)), "1000 bytes are within the buffer");
    cr_assert(eq(int, h_sendf(c, "3e8\r\n%s\r\n", part), 0));
    cr_assert(wait_connected(u, conns0, 3000), "a chunked body over the buffer did not go");
    cr_assert(eq(int, h_send_str(c, "0\r\n\r\n"), 0));
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, strncmp(m.body, "bytes=2000 ", 11), 0), "%s", m.body);
    h_close(c);
    h_proxy_finish(p);
}

/* A client that sends `Expect: 100-continue` waits for the node's 100 before its body: the head
 * goes at once. `request_buffer_bytes: 0` streams every body. */
Test(request_buffering, expect_100_continue_and_a_buffer_of_0_stream, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}});
    struct h_proxy *q;
    struct h_conn *c = h_connect(p->port);
    uint64_t conns0, reqs0;
    struct h_msg m;

    h_upstream_counters(u, &conns0, &reqs0);
    cr_assert(eq(int,
                 h_sendf(c,
                         "POST /count HTTP/1.1\r\nHost: %s\r\nContent-Length: 10\r\n"
                         "Expect: 100-continue\r\n\r\n",
                         H_HOST),
                 0));
    cr_assert(wait_connected(u, conns0, 3000), "the head waited for a body not sent yet");
    cr_assert(eq(int, h_send_str(c, "0123456789"), 0));
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    if (m.status == 100)
        cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(int, strncmp(m.body, "bytes=10 ", 9), 0), "%s", m.body);
    h_close(c);
    h_proxy_finish(p);

    q = h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}, .request_buffer = "0"});
    c = h_connect(q->port);
    h_upstream_counters(u, &conns0, &reqs0);
    cr_assert(eq(
        int, h_sendf(c, "POST /count HTTP/1.1\r\nHost: %s\r\nContent-Length: 10\r\n\r\n01", H_HOST),
        0));
    cr_assert(wait_connected(u, conns0, 3000), "with a buffer of 0 the body streams");
    cr_assert(eq(int, h_send_str(c, "23456789"), 0));
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, strncmp(m.body, "bytes=10 ", 9), 0), "%s", m.body);
    h_close(c);
    h_proxy_finish(q);
}

/* The node a buffered request was routed to is removed by a reload while its body trickles in:
 * once whole, the request goes to a node the new configuration has, not to the removed one. */
Test(request_buffering, a_node_removed_while_a_body_is_read_gets_no_request,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *x2 = h_upstream_start("x2", NULL);
    struct h_proxy_opts o = {.x = {{x1->port}}};
    struct h_proxy *p = h_proxy_start(&o);
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    const char *next, *r;
    struct h_msg m;

    cr_assert(
        eq(int,
           h_sendf(c, "POST /echo HTTP/1.1\r\nHost: %s\r\nContent-Length: 10\r\n\r\n01234", H_HOST),
           0));
    h_sleep_ms(200);
    o.x[0].port = x2->port;
    next = h_proxy_write_config("next.yaml", &o, p->port);
    cr_assert(eq(int, rename(next, p->cfg_path), 0));
    r = h_admin_cmd(adm, "reload");
    cr_assert(eq(int, strncmp(r, "ok:", 3), 0), "%s", r);
    cr_assert(eq(int, h_send_str(c, "56789"), 0));
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, (char *)h_header(&m, "X-Upstream"), "x2"), "went to the removed node");
    cr_assert(ne(ptr, strstr(m.body, "\r\n\r\n0123456789"), NULL), "%s", m.body);
    h_close(c);
    h_proxy_finish(p);
}
