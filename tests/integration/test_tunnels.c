/* tests/integration/test_tunnels.c -- HTTP Upgrade through bin/crossfade: WebSocket tunnels with
 * python3-websockets, and raw nodes the test plays itself for the protocol's edges (101s not
 * asked for, half-closes, back-pressure, timeouts.tunnel_idle). */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/integration/harness.h"
#include "tests/integration/tunnel_helpers.h"

TestSuite(tunnels, .init = h_setup, .fini = h_teardown);

/* ------------------------------------------------------------------ python3-websockets */

/* Waits for the client to end, asserts it went well; returns what it printed. */
static const char *
ws_client_finish(struct h_proc *cl)
{
    int code = h_proc_wait(cl, 30000);
    const char *out = h_read_file(cl->log_path, NULL);

    cr_assert(eq(int, code, 0), "%s exited %d:\n%s", cl->name, code, out != NULL ? out : "");
    return out;
}

struct ws_counts {
    unsigned long long request_head, response_fields, up, down;
};

/* The client's "bytes ..." line: what each direction carried. */
static struct ws_counts
ws_client_counts(const char *out)
{
    struct ws_counts n;
    const char *line = strstr(out, "bytes request_head=");

    cr_assert(ne(ptr, (void *)line, NULL), "no counts in the client's output:\n%s", out);
    cr_assert(eq(int,
                 sscanf(line, "bytes request_head=%llu response_fields=%llu up=%llu down=%llu",
                        &n.request_head, &n.response_fields, &n.up, &n.down),
                 4),
              "%s", line);
    return n;
}

/* ------------------------------------------------------------------ admin and access log */

struct alog {
    const char *line;
    const char *cluster, *node;
    int status;
    unsigned long long in, out;
    double up_ms, total_ms;
};

/* The access log's line for `request` ("GET /x HTTP/1.1"), waited for. */
static struct alog
alog_of(const struct h_proxy *p, const char *request)
{
    struct alog a = {0};
    const char *needle = h_fmt("\"%s\" ", request);
    const char *at;
    char cluster[8], node[64];

    cr_assert(h_log_wait(p->access_log, needle, H_IO_TIMEOUT_MS), "no access log line for %s:\n%s",
              request, h_read_file(p->access_log, NULL));
    a.line = h_log_line(p->access_log, needle);
    /* <time> <ip> <cluster> <node> "<request>" <status> <in> <out> <up ms> <total ms> */
    cr_assert(eq(int, sscanf(a.line, "%*s %*s %7s %63s", cluster, node), 2), "%s", a.line);
    a.cluster = h_fmt("%s", cluster);
    a.node = h_fmt("%s", node);
    at = strstr(a.line, needle) + strlen(needle);
    cr_assert(
        eq(int, sscanf(at, "%d %llu %llu %lf %lf", &a.status, &a.in, &a.out, &a.up_ms, &a.total_ms),
           5),
        "%s", a.line);
    return a;
}

/* A proxy in front of the raw node n alone. */
static struct h_proxy *
raw_proxy(struct raw_node *n, unsigned tunnel_idle_ms)
{
    return h_proxy_start(&(struct h_proxy_opts){
        .x = {{n->port}}, .tunnel_idle_ms = tunnel_idle_ms, .small_quarantine = true});
}

/* ------------------------------------------------------------------ WebSocket */

Test(tunnels, a_websocket_echo_goes_through_and_the_close_handshake_completes,
     .timeout = H_TEST_TIMEOUT)
{
    struct ws_node *x1 = ws_node_start("x1");
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{x1->port}}});
    int fd = h_admin_connect(p);
    const char *out;
    struct ws_counts n;
    struct alog a;

    out = ws_client_finish(
        ws_client_start("a", h_fmt("ws://127.0.0.1:%d/chat?room=1", p->port),
                        (const char *[]){"--binary-bytes", "70000", "--linger-ms", "300", NULL}));
    cr_assert(ne(ptr, strstr(out, "greeting: hello from x1\n"), NULL), "%s", out);
    cr_assert(ne(ptr, strstr(out, "text echo ok\n"), NULL), "%s", out);
    cr_assert(ne(ptr, strstr(out, "binary echo ok 70000\n"), NULL), "%s", out);
    cr_assert(ne(ptr, strstr(out, "closed code=1000 "), NULL), "%s", out);
    cr_assert(h_log_wait(x1->log, "closed code=1000", H_IO_TIMEOUT_MS),
              "the node saw no close 1000:\n%s", h_read_file(x1->log, NULL));
    cr_assert(h_log_wait(x1->log, "open path=/chat?room=1", 0), "%s", h_read_file(x1->log, NULL));

    h_await_stat(fd, "x tunnels", "open", 0);
    h_assert_stat(fd, "x tunnels", "total", 1);
    h_assert_stat(fd, "y tunnels", "total", 0);
    h_assert_stat(fd, "x responses", "1xx", 1);
    h_assert_stat(fd, "x responses", "5xx", 0);
    h_assert_stat_json(fd, "x", "tunnels", "open", 0);
    h_assert_stat_json(fd, "x", "tunnels", "total", 1);

    /* One line for the request, once the tunnel closed: the request and the client's frames in,
     * the 101 head and the node's frames out, the tunnel's life (it lingered 300 ms). */
    n = ws_client_counts(out);
    a = alog_of(p, "GET /chat?room=1 HTTP/1.1");
    cr_assert(eq(int, a.status, 101), "%s", a.line);
    cr_assert(eq(str, (char *)a.cluster, "x"), "%s", a.line);
    cr_assert(eq(str, (char *)a.node, x1->addr), "%s", a.line);
    cr_assert(eq(u64, a.in, n.request_head + n.up), "bytes in: %s (request %llu + frames %llu)",
              a.line, n.request_head, n.up);
    cr_assert(
        eq(u64, a.out, strlen("HTTP/1.1 101 Switching Protocols\r\n") + n.response_fields + n.down),
        "bytes out: %s (head fields %llu + frames %llu)", a.line, n.response_fields, n.down);
    cr_assert(ge(dbl, a.total_ms, 300.0), "the duration does not cover the tunnel: %s", a.line);
    cr_assert(ge(dbl, a.up_ms, 300.0), "the node's time does not cover the tunnel: %s", a.line);
    cr_assert(eq(sz, h_log_count(p->access_log, "/chat?room=1"), (size_t)1),
              "one line per request:\n%s", h_read_file(p->access_log, NULL));
    h_proxy_finish(p);
}

Test(tunnels, show_tunnels_counts_a_tunnel_while_it_is_open, .timeout = H_TEST_TIMEOUT)
{
    struct ws_node *x1 = ws_node_start("x1");
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{x1->port}}});
    int fd = h_admin_connect(p);
    const char *release = h_path("release");
    struct h_proc *cl;

    await_tunnels(fd, "x", x1->addr, 0);
    cl = ws_client_start("b", h_fmt("ws://127.0.0.1:%d/hold", p->port),
                         (const char *[]){"--hold-until", release, NULL});
    cr_assert(h_log_wait(cl->log_path, "holding", 20000), "the client did not get through:\n%s",
              h_read_file(cl->log_path, NULL));
    await_tunnels(fd, "x", x1->addr, 1);
    cr_assert(eq(str, (char *)tunnels_total(fd), "total x=1 y=0"));
    h_assert_stat(fd, "x tunnels", "open", 1);
    h_assert_stat(fd, "x tunnels", "total", 1);
    h_assert_stat_json(fd, "x", "tunnels", "open", 1);
    /* The request stays in flight while its tunnel is open; it is logged when it closes. */
    h_assert_stat(fd, "x active", NULL, 1);
    cr_assert(eq(sz, h_log_count(p->access_log, "/hold"), (size_t)0),
              "logged before the tunnel closed");

    h_write_file("release", "now\n");
    ws_client_finish(cl);
    h_await_stat(fd, "x tunnels", "open", 0);
    await_tunnels(fd, "x", x1->addr, 0);
    cr_assert(eq(str, (char *)tunnels_total(fd), "total x=0 y=0"));
    h_assert_stat(fd, "x tunnels", "total", 1);
    h_assert_stat(fd, "x active", NULL, 0);
    cr_assert(eq(int, alog_of(p, "GET /hold HTTP/1.1").status, 101));
    h_proxy_finish(p);
}

Test(tunnels, a_tunnel_goes_to_the_side_the_split_chose, .timeout = H_TEST_TIMEOUT)
{
    struct ws_node *x1 = ws_node_start("x1");
    struct ws_node *y1 = ws_node_start("y1");
    struct h_proxy *p =
        h_proxy_start(&(struct h_proxy_opts){.x = {{x1->port}},
                                             .y = {{y1->port}},
                                             .weight = "0",
                                             .split_extra = "  key: [\"header:X-Key\"]\n"});
    int fd = h_admin_connect(p);
    const char *out;

    cr_assert(eq(str, h_admin_cmd(fd, "pin ws-tester y"), "ok: pinned \"ws-tester\" to y\n"));
    out = ws_client_finish(ws_client_start("pinned", h_fmt("ws://127.0.0.1:%d/pinned", p->port),
                                           (const char *[]){"--header", "X-Key: ws-tester", NULL}));
    cr_assert(ne(ptr, strstr(out, "greeting: hello from y1\n"), NULL),
              "the pinned key's tunnel did not land on y:\n%s", out);
    h_await_stat(fd, "y tunnels", "open", 0);
    h_assert_stat(fd, "y tunnels", "total", 1);
    h_assert_stat(fd, "x tunnels", "total", 0);
    cr_assert(eq(str, (char *)alog_of(p, "GET /pinned HTTP/1.1").cluster, "y"));

    /* Another key follows the weight: 0 % on y. */
    out = ws_client_finish(ws_client_start("other", h_fmt("ws://127.0.0.1:%d/other", p->port),
                                           (const char *[]){"--header", "X-Key: someone", NULL}));
    cr_assert(ne(ptr, strstr(out, "greeting: hello from x1\n"), NULL), "%s", out);
    h_await_stat(fd, "x tunnels", "open", 0);
    h_assert_stat(fd, "x tunnels", "total", 1);
    h_assert_stat(fd, "y tunnels", "total", 1);

    /* And weight 100 sends everyone to y. */
    cr_assert(eq(int, strncmp(h_admin_cmd(fd, "set weight 100"), "ok", 2), 0));
    out = ws_client_finish(ws_client_start("weight", h_fmt("ws://127.0.0.1:%d/weight", p->port),
                                           (const char *[]){"--header", "X-Key: someone", NULL}));
    cr_assert(ne(ptr, strstr(out, "greeting: hello from y1\n"), NULL), "%s", out);
    h_await_stat(fd, "y tunnels", "open", 0);
    h_assert_stat(fd, "y tunnels", "total", 2);
    h_assert_stat(fd, "x tunnels", "total", 1);
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ the handshake's edges */

/* Reads one response; asserts its status and that nothing follows it on the connection. */
static void
expect_only(struct h_conn *c, int status, const char *what)
{
    struct h_msg m;
    enum h_wait after;

    cr_assert(eq(int, h_read_response(c, &m), 0), "%s: %s", what, m.error);
    cr_assert(eq(int, m.status, status), "%s: the client got:\n%.*s", what, (int)m.head_len,
              m.head);
    cr_assert(eq(sz, h_header_count(&m, "Upgrade"), (size_t)0), "%s:\n%.*s", what, (int)m.head_len,
              m.head);
    after = h_conn_wait(c, 300);
    cr_assert(ne(int, after, H_DATA), "%s: bytes followed the %d: \"%.*s\"", what, status,
              (int)h_pending(c), c->buf + c->off);
}

Test(tunnels, a_101_to_a_request_that_offered_no_upgrade_is_a_502, .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f = h_fake_start1(WS_SWITCH "tunnel bytes", H_FAKE_KEEP);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(f)}}});
    int fd = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);

    cr_assert(eq(int, h_send_str(c, "GET /plain HTTP/1.1\r\nHost: " H_HOST "\r\n\r\n"), 0));
    expect_only(c, 502, "a 101 nobody asked for");
    h_assert_stat(fd, "x tunnels", "total", 0);
    h_assert_stat(fd, "x tunnels", "open", 0);
    h_assert_stat(fd, "x responses", "1xx", 0);
    cr_assert(eq(int, alog_of(p, "GET /plain HTTP/1.1").status, 502));
    h_proxy_finish(p);
}

Test(tunnels, a_101_to_a_protocol_the_client_did_not_offer_is_a_502, .timeout = H_TEST_TIMEOUT)
{
    static const struct h_fake_reply replies[] = {
        {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: other\r\nConnection: Upgrade\r\n\r\n", 0,
         H_FAKE_KEEP},
        {"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n", 0, H_FAKE_KEEP},
    };
    struct h_fake *f = h_fake_start(replies, 2);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(f)}}});
    int fd = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);

    cr_assert(eq(int, h_send_str(c, WS_REQUEST("/other")), 0));
    expect_only(c, 502, "a 101 to Upgrade: other");
    cr_assert(eq(sz, h_fake_conns(f), (size_t)1));
    /* The second connection to the node gets a 101 that names no protocol. */
    c = h_connect(p->port);
    cr_assert(eq(int, h_send_str(c, WS_REQUEST("/none")), 0));
    expect_only(c, 502, "a 101 without Upgrade");
    cr_assert(eq(sz, h_fake_conns(f), (size_t)2), "the node connection after a refused 101 was "
                                                  "used again");
    h_assert_stat(fd, "x tunnels", "total", 0);
    h_assert_stat(fd, "x responses", "1xx", 0);
    h_assert_stat(fd, "x responses", "5xx", 2);
    h_proxy_finish(p);
}

Test(tunnels, a_426_to_an_upgrade_request_is_forwarded_and_the_connection_goes_on,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}});
    int fd = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    cr_assert(eq(int, h_send_str(c, WS_REQUEST("/status/426")), 0));
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 426), "%.*s", (int)m.head_len, m.head);
    cr_assert(not(h_header_has_token(&m, "Connection", "close")),
              "crossfade closes the client after a 426:\n%.*s", (int)m.head_len, m.head);
    /* Still HTTP: the same connection serves the next request. */
    cr_assert(eq(int, h_get(c, "/", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, m.body, "u1\n"));
    /* And a 200 to an upgrade request, too. */
    cr_assert(eq(int, h_send_str(c, WS_REQUEST("/")), 0));
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, m.body, "u1\n"));
    cr_assert(eq(int, h_get(c, "/", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    h_assert_stat(fd, "x tunnels", "total", 0);
    h_assert_stat(fd, "x responses", "4xx", 1);
    h_assert_stat(fd, "x responses", "2xx", 3);
    h_proxy_finish(p);
}

/* Sends `raw` (a request to /echo) and parses the head the node received into *seen. */
static void
echo(struct h_conn *c, const char *raw, struct h_msg *seen)
{
    struct h_msg m;

    cr_assert(eq(int, h_send_str(c, raw), 0));
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200), "/echo answered %d", m.status);
    cr_assert(eq(int, h_parse_request_head(m.body, m.body_len, seen), 0),
              "the echoed head does not parse: %s", seen->error);
}

Test(tunnels, an_h2c_upgrade_reaches_the_node_as_a_plain_request, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}});
    struct h_conn *c = h_connect(p->port);
    struct h_msg seen, m;

    echo(c,
         "GET /echo HTTP/1.1\r\n"
         "Host: " H_HOST "\r\n"
         "Connection: Upgrade, HTTP2-Settings\r\n"
         "Upgrade: h2c\r\n"
         "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"
         "\r\n",
         &seen);
    cr_assert(eq(sz, h_header_count(&seen, "Upgrade"), (size_t)0), "%s", seen.head);
    cr_assert(eq(sz, h_header_count(&seen, "HTTP2-Settings"), (size_t)0), "%s", seen.head);
    cr_assert(not(h_header_has_token(&seen, "Connection", "upgrade")), "%s", seen.head);
    cr_assert(not(h_header_has_token(&seen, "Connection", "HTTP2-Settings")), "%s", seen.head);
    cr_assert(eq(ptr, (void *)h_memcasemem(seen.head, seen.head_len, "h2c"), NULL), "%s",
              seen.head);
    cr_assert(eq(int, h_get(c, "/", &m), 0), "%s", m.error);
    cr_assert(eq(str, m.body, "u1\n"));
    h_proxy_finish(p);
}

Test(tunnels, a_websocket_upgrade_reaches_the_node_with_its_fields, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}});
    struct h_msg seen;

    echo(h_connect(p->port), WS_REQUEST("/echo"), &seen);
    cr_assert(eq(sz, h_header_count(&seen, "Upgrade"), (size_t)1), "%s", seen.head);
    cr_assert(eq(str, (char *)h_header(&seen, "Upgrade"), "websocket"), "%s", seen.head);
    cr_assert(eq(sz, h_header_count(&seen, "Connection"), (size_t)1), "%s", seen.head);
    cr_assert(eq(str, (char *)h_header(&seen, "Connection"), "upgrade"), "%s", seen.head);
    cr_assert(eq(str, (char *)h_header(&seen, "Sec-WebSocket-Key"), WS_KEY), "%s", seen.head);
    cr_assert(eq(str, (char *)h_header(&seen, "Sec-WebSocket-Version"), "13"), "%s", seen.head);
    h_proxy_finish(p);
}

Test(tunnels, connection_close_and_upgrade_reach_the_node_together, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}});
    struct h_msg seen;

    /* The node gets both tokens in a well-formed Connection field, and the Upgrade field. */
    echo(h_connect(p->port),
         "GET /echo HTTP/1.1\r\n"
         "Host: " H_HOST "\r\n"
         "Connection: close, Upgrade\r\n"
         "Upgrade: websocket\r\n"
         "Sec-WebSocket-Key: " WS_KEY "\r\n"
         "Sec-WebSocket-Version: 13\r\n"
         "\r\n",
         &seen);
    cr_assert(h_header_has_token(&seen, "Connection", "close"), "%s", seen.head);
    cr_assert(h_header_has_token(&seen, "Connection", "upgrade"), "%s", seen.head);
    cr_assert(eq(sz, h_header_count(&seen, "Upgrade"), (size_t)1), "%s", seen.head);
    cr_assert(eq(str, (char *)h_header(&seen, "Upgrade"), "websocket"), "%s", seen.head);
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ raw tunnels */

Test(tunnels, bytes_each_side_sends_first_go_through, .timeout = H_TEST_TIMEOUT)
{
    struct raw_node *n = raw_node_start();
    struct h_proxy *p = raw_proxy(n, 0);
    int fd = h_admin_connect(p);
    static const char request[] = WS_REQUEST("/first");
    struct raw_tunnel t = raw_tunnel_open(p, n, request, "client-first", "node-first");
    char buf[64];
    struct alog a;

    /* What the node sent with its 101 head reaches the client... */
    conn_expect(t.c, "node-first", 10);
    /* ... and what the client sent with its request reaches the node, once it switched. */
    cr_assert(eq(sz, raw_recv(t.node, buf, 12, H_IO_TIMEOUT_MS), (size_t)12));
    cr_assert(eq(int, memcmp(buf, "client-first", 12), 0), "the node got \"%.12s\"", buf);
    h_assert_stat(fd, "x tunnels", "open", 1);

    /* Then bytes both ways, as they come. */
    cr_assert(eq(int, h_send_str(t.c, "ping"), 0));
    cr_assert(eq(sz, raw_recv(t.node, buf, 4, H_IO_TIMEOUT_MS), (size_t)4));
    cr_assert(eq(int, memcmp(buf, "ping", 4), 0));
    raw_send(t.node, "pong!", 5);
    conn_expect(t.c, "pong!", 5);

    h_close(t.c);
    cr_assert(raw_wait_eof(t.node, H_IO_TIMEOUT_MS), "the node did not see the client's end");
    close(t.node);
    h_await_stat(fd, "x tunnels", "open", 0);
    h_assert_stat(fd, "x responses", "1xx", 1);
    a = alog_of(p, "GET /first HTTP/1.1");
    cr_assert(eq(int, a.status, 101), "%s", a.line);
    cr_assert(eq(u64, a.in, (unsigned long long)(strlen(request) + 12 + 4)), "%s", a.line);
    cr_assert(eq(u64, a.out, (unsigned long long)(t.head_len + 10 + 5)), "%s", a.line);
    close(n->lfd);
    h_proxy_finish(p);
}

Test(tunnels, a_client_half_close_reaches_the_node_which_can_still_answer,
     .timeout = H_TEST_TIMEOUT)
{
    struct raw_node *n = raw_node_start();
    struct h_proxy *p = raw_proxy(n, 0);
    int fd = h_admin_connect(p);
    struct raw_tunnel t = raw_tunnel_open(p, n, WS_REQUEST("/half"), "", "");
    char buf[64];

    cr_assert(eq(int, h_send_str(t.c, "last words"), 0));
    cr_assert(eq(int, shutdown(t.c->fd, SHUT_WR), 0));
    /* The node gets the bytes, then the end of the client's stream... */
    cr_assert(eq(sz, raw_recv(t.node, buf, 10, H_IO_TIMEOUT_MS), (size_t)10));
    cr_assert(eq(int, memcmp(buf, "last words", 10), 0));
    cr_assert(raw_wait_eof(t.node, H_IO_TIMEOUT_MS), "the client's FIN did not reach the node");
    /* ... and the other direction is still open: the node answers, the client reads it. */
    h_assert_stat(fd, "x tunnels", "open", 1);
    raw_send(t.node, "answer after your end", 21);
    conn_expect(t.c, "answer after your end", 21);
    raw_send(t.node, " and more", 9);
    conn_expect(t.c, " and more", 9);
    /* The node closes: the client sees the end, and the tunnel is over. */
    /* The node's close reaches the client (a half-close: the tunnel ends when the client's
     * side ends too). */
    close(t.node);
    cr_assert(conn_eof(t.c, H_IO_TIMEOUT_MS), "the node's close did not reach the client");
    h_close(t.c);
    h_await_stat(fd, "x tunnels", "open", 0);
    h_assert_stat(fd, "x tunnels", "total", 1);
    close(n->lfd);
    h_proxy_finish(p);
}

Test(tunnels, a_node_half_close_reaches_the_client_which_can_still_send, .timeout = H_TEST_TIMEOUT)
{
    struct raw_node *n = raw_node_start();
    struct h_proxy *p = raw_proxy(n, 0);
    int fd = h_admin_connect(p);
    struct raw_tunnel t = raw_tunnel_open(p, n, WS_REQUEST("/half"), "", "bye");
    char buf[64];

    cr_assert(eq(int, shutdown(t.node, SHUT_WR), 0));
    conn_expect(t.c, "bye", 3);
    cr_assert(conn_eof(t.c, H_IO_TIMEOUT_MS), "the node's FIN did not reach the client");
    h_assert_stat(fd, "x tunnels", "open", 1);
    cr_assert(eq(int, h_send_str(t.c, "still talking"), 0));
    cr_assert(eq(sz, raw_recv(t.node, buf, 13, H_IO_TIMEOUT_MS), (size_t)13),
              "the client's bytes after the node's FIN did not arrive");
    cr_assert(eq(int, memcmp(buf, "still talking", 13), 0));
    cr_assert(eq(int, shutdown(t.c->fd, SHUT_WR), 0));
    cr_assert(raw_wait_eof(t.node, H_IO_TIMEOUT_MS), "the client's FIN did not reach the node");
    /* Both directions ended: the tunnel is over. */
    h_await_stat(fd, "x tunnels", "open", 0);
    close(t.node);
    close(n->lfd);
    h_proxy_finish(p);
}

#define BP_OFFER    (64u << 20) /* what the client tries to send */
#define BP_PIECE    (64u << 10)
#define BP_STALL_MS 2000

/* How much crossfade may grow while the node reads nothing: a tunnel's buffer (256 KiB) and read
 * buffers, never what the client offers (64 MiB). Under ASan, freed memory waits in a
 * quarantine of 8 MiB (h_proxy_opts.small_quarantine) before it is reused, and counts in RSS. */
static long
bp_rss_limit_kib(void)
{
    return h_under_sanitizer() ? 16L * 1024 : 4L * 1024;
}

/* Non-blocking sends of the byte pattern from offset *sent until `until` bytes went or
 * deadline_ms passed; returns whether the client sent them all. */
static bool
bp_push(int fd, const char *pattern, uint64_t *sent, uint64_t until, uint64_t deadline_ms)
{
    while (*sent < until && h_now_ms() < deadline_ms) {
        size_t off = (size_t)(*sent % 26), len = tun_min(BP_PIECE, until - *sent);
        ssize_t r = send(fd, pattern + off, len, MSG_DONTWAIT | MSG_NOSIGNAL);

        if (r > 0) {
            *sent += (uint64_t)r;
            continue;
        }
        cr_assert(r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK), "send: %s",
                  strerror(errno));
        poll(&(struct pollfd){.fd = fd, .events = POLLOUT}, 1, 20);
    }
    return *sent >= until;
}

Test(tunnels, a_node_that_does_not_read_stops_the_client_and_memory_stays_flat,
     .timeout = H_TEST_TIMEOUT)
{
    struct raw_node *n = raw_node_start();
    struct h_proxy *p = raw_proxy(n, 0);
    int fd = h_admin_connect(p);
    struct raw_tunnel t = raw_tunnel_open(p, n, WS_REQUEST("/flood"), "", "");
    char *pattern = h_alloc(BP_PIECE + 26), *buf = h_alloc(BP_PIECE);
    uint64_t sent = 0, got = 0, deadline;
    long before, after;

    h_pattern_fill(pattern, BP_PIECE + 26, 0);
    h_admin_sync(fd);
    before = h_rss_kib(p->proc->pid);
    cr_assert(gt(long, before, 0L), "no VmRSS for crossfade");
    /* The node reads nothing: the client's writes must stall. */
    cr_assert(not(bp_push(t.c->fd, pattern, &sent, BP_OFFER, h_now_ms() + BP_STALL_MS)),
              "the client sent all %u MiB to a node that reads nothing", BP_OFFER >> 20);
    cr_assert(h_tcp_wait(p->port, h_conn_port(t.c), H_TCP_ESTABLISHED, 1, H_IO_TIMEOUT_MS),
              "crossfade reads everything the client sends");
    h_admin_sync(fd);
    after = h_rss_kib(p->proc->pid);
    cr_log_info("the client sent %llu KiB before it stalled; crossfade RSS %ld -> %ld KiB",
                (unsigned long long)(sent >> 10), before, after);
    cr_assert(lt(long, after - before, bp_rss_limit_kib()),
              "crossfade grew from %ld to %ld KiB while %llu KiB waited for the node (limit +%ld "
              "KiB)",
              before, after, (unsigned long long)(sent >> 10), bp_rss_limit_kib());
    h_assert_stat(fd, "x tunnels", "open", 1);

    /* The node reads again: every byte arrives, in order, and the client finishes. */
    deadline = h_now_ms() + 60000;
    while ((sent < BP_OFFER || got < sent) && h_now_ms() < deadline) {
        ssize_t r;

        if (sent < BP_OFFER)
            bp_push(t.c->fd, pattern, &sent, BP_OFFER, h_now_ms() + 5);
        while ((r = recv(t.node, buf, BP_PIECE, MSG_DONTWAIT)) > 0) {
            long long bad = h_pattern_check(buf, (size_t)r, got);

            cr_assert(eq(i64, bad, -1LL), "byte %llu reached the node altered",
                      (unsigned long long)(got + (uint64_t)bad));
            got += (uint64_t)r;
        }
        cr_assert(r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK),
                  "the node's connection ended after %llu bytes", (unsigned long long)got);
        poll(&(struct pollfd){.fd = t.node, .events = POLLIN}, 1, 5);
    }
    cr_assert(eq(u64, got, (uint64_t)BP_OFFER), "the node got %llu of %u bytes",
              (unsigned long long)got, BP_OFFER);
    /* Everything closes cleanly. */
    h_close(t.c);
    cr_assert(raw_wait_eof(t.node, H_IO_TIMEOUT_MS), "the client's close did not reach the node");
    close(t.node);
    h_await_stat(fd, "x tunnels", "open", 0);
    cr_assert(ge(u64, alog_of(p, "GET /flood HTTP/1.1").in, (unsigned long long)BP_OFFER));
    close(n->lfd);
    h_proxy_finish(p);
}

/* The mirror: a client that reads nothing while its node sends stops the node (its writes
 * stall), crossfade's memory stays flat, and once the client reads, every byte arrives in order. */
Test(tunnels, a_client_that_does_not_read_stops_the_node_and_memory_stays_flat,
     .timeout = H_TEST_TIMEOUT)
{
    struct raw_node *n = raw_node_start();
    struct h_proxy *p = raw_proxy(n, 0);
    int fd = h_admin_connect(p);
    struct raw_tunnel t = raw_tunnel_open(p, n, WS_REQUEST("/download"), "", "");
    char *pattern = h_alloc(BP_PIECE + 26), *buf = h_alloc(BP_PIECE);
    uint64_t sent = 0, got = 0, deadline;
    long before, after;

    h_pattern_fill(pattern, BP_PIECE + 26, 0);
    cr_assert(eq(sz, h_pending(t.c), (size_t)0), "bytes after the 101 before the node sent any");
    h_admin_sync(fd);
    before = h_rss_kib(p->proc->pid);
    cr_assert(gt(long, before, 0L), "no VmRSS for crossfade");
    cr_assert(not(bp_push(t.node, pattern, &sent, BP_OFFER, h_now_ms() + BP_STALL_MS)),
              "the node sent all %u MiB to a client that reads nothing", BP_OFFER >> 20);
    h_admin_sync(fd);
    after = h_rss_kib(p->proc->pid);
    cr_log_info("the node sent %llu KiB before it stalled; crossfade RSS %ld -> %ld KiB",
                (unsigned long long)(sent >> 10), before, after);
    cr_assert(lt(long, after - before, bp_rss_limit_kib()),
              "crossfade grew from %ld to %ld KiB while %llu KiB waited for the client (limit +%ld "
              "KiB)",
              before, after, (unsigned long long)(sent >> 10), bp_rss_limit_kib());

    deadline = h_now_ms() + 60000;
    while ((sent < BP_OFFER || got < sent) && h_now_ms() < deadline) {
        ssize_t r;

        if (sent < BP_OFFER)
            bp_push(t.node, pattern, &sent, BP_OFFER, h_now_ms() + 5);
        while ((r = recv(t.c->fd, buf, BP_PIECE, MSG_DONTWAIT)) > 0) {
            long long bad = h_pattern_check(buf, (size_t)r, got);

            cr_assert(eq(i64, bad, -1LL), "byte %llu reached the client altered",
                      (unsigned long long)(got + (uint64_t)bad));
            got += (uint64_t)r;
        }
        cr_assert(r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK),
                  "the client's connection ended after %llu bytes", (unsigned long long)got);
        poll(&(struct pollfd){.fd = t.c->fd, .events = POLLIN}, 1, 5);
    }
    cr_assert(eq(u64, got, (uint64_t)BP_OFFER), "the client got %llu of %u bytes",
              (unsigned long long)got, BP_OFFER);
    /* The node's close reaches the client (a half-close: the tunnel ends when the client's
     * side ends too). */
    close(t.node);
    cr_assert(conn_eof(t.c, H_IO_TIMEOUT_MS), "the node's close did not reach the client");
    h_close(t.c);
    h_await_stat(fd, "x tunnels", "open", 0);
    close(n->lfd);
    h_proxy_finish(p);
}

Test(tunnels, an_idle_tunnel_is_closed_after_tunnel_idle, .timeout = H_TEST_TIMEOUT)
{
    struct raw_node *n = raw_node_start();
    struct h_proxy *p = raw_proxy(n, 300);
    int fd = h_admin_connect(p);
    struct raw_tunnel t = raw_tunnel_open(p, n, WS_REQUEST("/idle"), "", "");

    h_assert_stat(fd, "x tunnels", "open", 1);
    cr_assert(conn_eof(t.c, 1500), "an idle tunnel was still open 1.5 s after tunnel_idle 300ms");
    cr_assert(raw_wait_eof(t.node, H_IO_TIMEOUT_MS), "the node's connection stayed open");
    h_await_stat(fd, "x tunnels", "open", 0);
    cr_assert(eq(int, alog_of(p, "GET /idle HTTP/1.1").status, 101));
    close(t.node);
    close(n->lfd);
    h_proxy_finish(p);
}

Test(tunnels, a_busy_tunnel_outlives_tunnel_idle, .timeout = H_TEST_TIMEOUT)
{
    struct raw_node *n = raw_node_start();
    struct h_proxy *p = raw_proxy(n, 300);
    int fd = h_admin_connect(p);
    struct raw_tunnel t = raw_tunnel_open(p, n, WS_REQUEST("/busy"), "", "");
    char buf[8];

    /* 1 s of small messages every 100 ms, over three times tunnel_idle: from the client for the
     * first half, from the node for the second (a byte either way counts). */
    for (int i = 0; i < 10; i++) {
        h_sleep_ms(100);
        if (i < 5) {
            cr_assert(eq(int, h_send_str(t.c, "tick"), 0), "message %d", i);
            cr_assert(eq(sz, raw_recv(t.node, buf, 4, H_IO_TIMEOUT_MS), (size_t)4),
                      "message %d from the client did not arrive: the tunnel closed", i);
        } else {
            raw_send(t.node, "tock", 4);
            conn_expect(t.c, "tock", 4);
        }
    }
    h_assert_stat(fd, "x tunnels", "open", 1);
    cr_assert(eq(int, h_conn_wait(t.c, 0), H_OPEN), "the busy tunnel closed");
    /* Once quiet, it goes like any idle tunnel. */
    cr_assert(conn_eof(t.c, 1500), "the tunnel was still open 1.5 s after it went quiet");
    h_await_stat(fd, "x tunnels", "open", 0);
    close(t.node);
    close(n->lfd);
    h_proxy_finish(p);
}

Test(tunnels, only_tunnel_idle_times_a_tunnel_out, .timeout = H_TEST_TIMEOUT)
{
    struct raw_node *n = raw_node_start();
    /* Every HTTP timeout short, tunnel_idle at its default (an hour). */
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{n->port}},
                                                             .client_header_ms = 300,
                                                             .client_idle_ms = 300,
                                                             .upstream_response_ms = 300,
                                                             .upstream_idle_ms = 300});
    int fd = h_admin_connect(p);
    struct raw_tunnel t = raw_tunnel_open(p, n, WS_REQUEST("/long"), "", "");
    char buf[8];

    cr_assert(eq(int, h_conn_wait(t.c, 1500), H_OPEN),
              "a quiet tunnel closed within 1.5 s: an HTTP timeout of 300 ms applied to it");
    cr_assert(eq(int, h_send_str(t.c, "still"), 0));
    cr_assert(eq(sz, raw_recv(t.node, buf, 5, H_IO_TIMEOUT_MS), (size_t)5));
    raw_send(t.node, "here", 4);
    conn_expect(t.c, "here", 4);
    h_assert_stat(fd, "x tunnels", "open", 1);
    h_close(t.c);
    cr_assert(raw_wait_eof(t.node, H_IO_TIMEOUT_MS));
    close(t.node);
    h_await_stat(fd, "x tunnels", "open", 0);
    close(n->lfd);
    h_proxy_finish(p);
}

Test(tunnels, a_tunnel_open_at_shutdown_is_closed_and_logged, .timeout = H_TEST_TIMEOUT)
{
    struct raw_node *n = raw_node_start();
    struct h_proxy *p =
        h_proxy_start(&(struct h_proxy_opts){.x = {{n->port}}, .shutdown_ms = 1000});
    struct raw_tunnel t = raw_tunnel_open(p, n, WS_REQUEST("/at-exit"), "", "");

    static const unsigned char going_away[4] = {0x88, 0x02, 0x03, 0xe9};

    /* SIGTERM: the WebSocket gets a close frame (1001) at once; its client does not answer, so
     * crossfade closes the tunnel's connections at timeouts.shutdown, logs its request and exits
     * 0 (under ASan: with nothing leaked). */
    h_proxy_finish_open(p);
    conn_expect(t.c, (const char *)going_away, sizeof(going_away));
    cr_assert(conn_eof(t.c, H_IO_TIMEOUT_MS), "the client's tunnel outlived crossfade");
    cr_assert(raw_wait_eof(t.node, H_IO_TIMEOUT_MS), "the node's tunnel outlived crossfade");
    cr_assert(eq(int, alog_of(p, "GET /at-exit HTTP/1.1").status, 101));
    close(t.node);
    close(n->lfd);
}
