/* tests/integration/test_connection_limits.c -- limits.max_connections holds extra clients back. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/integration/harness.h"

TestSuite(connection_limits, .init = h_setup, .fini = h_teardown);

static void
get_ok(struct h_conn *c, const char *who)
{
    struct h_msg m;

    cr_assert(eq(int, h_get(c, "/", &m), 0), "%s: %s", who, m.error);
    cr_assert(eq(int, m.status, 200), "%s: status %d", who, m.status);
}

Test(connection_limits, a_client_over_max_connections_is_served_only_once_another_closes,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p =
        h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}, .max_connections = 2});
    struct h_conn *c1 = h_connect(p->port);
    struct h_conn *c2 = h_connect(p->port);
    struct h_conn *c3;
    struct h_msg m;

    get_ok(c1, "client 1");
    get_ok(c2, "client 2");
    c3 = h_connect(p->port); /* may sit in the kernel's backlog: connect() still succeeds */
    h_sendf(c3, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", H_HOST);
    cr_assert(eq(int, h_conn_wait(c3, 1000), H_OPEN),
              "a third client was answered or closed while two were connected (limit 2)");
    h_close(c1);
    cr_assert(eq(int, h_read_response(c3, &m), 0), "the third client was not served: %s", m.error);
    cr_assert(eq(int, m.status, 200));
    get_ok(c2, "client 2 again");
    h_proxy_finish(p);
}

/* limits.max_requests_per_connection: 3 -- the third response says Connection: close and the
 * connection closes after it; a new connection starts its own count. */
Test(connection_limits, the_last_request_allowed_on_a_connection_gets_its_answer_and_a_close,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p =
        h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}, .max_requests_per_connection = 3});
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    for (int i = 1; i <= 3; i++) {
        const char *conn;

        cr_assert(eq(int, h_get(c, "/", &m), 0), "request %d: %s", i, m.error);
        cr_assert(eq(int, m.status, 200), "request %d", i);
        conn = h_header(&m, "Connection");
        if (i < 3)
            cr_assert(conn == NULL || strcasecmp(conn, "close") != 0,
                      "request %d of 3 was told to close", i);
        else
            cr_assert(conn != NULL && strcasecmp(conn, "close") == 0,
                      "the third response has no Connection: close");
    }
    cr_assert(eq(int, h_conn_wait(c, 2000), H_CLOSED), "the connection stayed open");
    h_close(c);
    c = h_connect(p->port);
    get_ok(c, "a new connection");
    h_close(c);
    h_proxy_finish(p);
}

/* Pipelined past the limit: the first two are answered, the rest is not read. */
Test(connection_limits, requests_pipelined_past_the_limit_are_not_answered,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p =
        h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}, .max_requests_per_connection = 2});
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    for (int i = 0; i < 5; i++)
        h_sendf(c, "GET /%d HTTP/1.1\r\nHost: %s\r\n\r\n", i, H_HOST);
    for (int i = 0; i < 2; i++) {
        cr_assert(eq(int, h_read_response(c, &m), 0), "response %d: %s", i, m.error);
        cr_assert(eq(int, m.status, 200));
    }
    cr_assert(eq(int, h_conn_wait(c, 2000), H_CLOSED), "a third response came, or no close");
    h_close(c);
    h_proxy_finish(p);
}

/* timeouts.client_request bounds the whole request: a body trickled a byte every 200 ms never
 * trips client_idle (10 s) but gets a 408 once the request is 1 s old. */
Test(connection_limits, a_request_body_trickled_past_client_request_gets_a_408,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{u->port}}, .client_idle_ms = 10000, .client_request_ms = 1000});
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;
    uint64_t start = h_now_ms();
    int sent = 0;

    h_sendf(c, "POST /slow HTTP/1.1\r\nHost: %s\r\nContent-Length: 100\r\n\r\n", H_HOST);
    while (sent < 100 && h_conn_wait(c, 200) == H_OPEN) {
        h_send_str(c, "x");
        sent++;
    }
    cr_assert(lt(int, sent, 20), "the body trickled on for %d bytes", sent);
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 408));
    cr_assert(ge(u64, h_now_ms() - start, 900));
    cr_assert(eq(int, h_conn_wait(c, 2000), H_CLOSED));
    h_close(c);
    h_proxy_finish(p);
}

/* The same deadline for a head sent a byte at a time (client_header is 10 s). */
Test(connection_limits, a_head_trickled_past_client_request_gets_a_408, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{u->port}}, .client_header_ms = 10000, .client_request_ms = 1000});
    struct h_conn *c = h_connect(p->port);
    const char *head =
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    struct h_msg m;
    size_t i = 0;

    while (head[i] != '\0' && h_conn_wait(c, 100) == H_OPEN) {
        cr_assert(eq(int, h_send(c, head + i, 1), 0));
        i++;
    }
    cr_assert(lt(sz, i, strlen(head)), "the whole head went through");
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 408));
    h_close(c);
    h_proxy_finish(p);
}

/* A connection to 127.0.0.1:port whose receive buffer is 4 KiB, set before the handshake so that
 * the window stays small: a client that does not read backs the responses up at once. */
static int
connect_small_window(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), small = 4096;

    cr_assert(ne(int, fd, -1));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    cr_assert(eq(int, connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0), "%s", strerror(errno));
    return fd;
}

/* A TCP state of `fd` from TCP_INFO (TCP_CLOSE_WAIT: the peer closed). */
static int
tcp_state(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);

    return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 ? ti.tcpi_state : -1;
}

/* A client that pipelines 10,000 requests and reads nothing (a small receive buffer, so that the
 * responses back up): crossfade stops reading it, its memory stays bounded, and the connection is
 * closed once its responses could not be written for client_idle; others are served meanwhile. */
Test(connection_limits, a_client_pipelining_10000_requests_without_reading_is_bounded_then_closed,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p =
        h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}, .client_idle_ms = 1000});
    int fd = connect_small_window(p->port);
    const char *req = "GET /bytes/16384 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    size_t len = strlen(req), sent = 0, total = len * 10000;
    long rss_before = h_rss_kib(p->proc->pid), rss_after;
    uint64_t stalled = 0, until;
    struct h_conn *other;
    size_t log_len = 0, answered = 0;
    char *log;

    /* Send until everything went or crossfade stopped taking bytes for half a second. */
    while (sent < total) {
        ssize_t n = send(fd, req + sent % len, len - sent % len, MSG_DONTWAIT | MSG_NOSIGNAL);

        if (n > 0) {
            sent += (size_t)n;
            stalled = 0;
        } else if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (stalled == 0)
                stalled = h_now_ms();
            else if (h_now_ms() - stalled > 500)
                break;
            h_sleep_ms(5);
        } else {
            break; /* closed already */
        }
    }
    rss_after = h_rss_kib(p->proc->pid);
    /* 10,000 responses of 16 KiB would be 160 MiB; the bound leaves room for the sanitizers. */
    cr_assert(lt(long, rss_after - rss_before, 32768L), "RSS grew by %ld KiB",
              rss_after - rss_before);
    /* Others are served meanwhile. */
    other = h_connect(p->port);
    get_ok(other, "another client");
    h_close(other);
    /* Closed (FIN or reset) within client_idle and a margin. */
    until = h_now_ms() + 5000;
    while (h_now_ms() < until && tcp_state(fd) == TCP_ESTABLISHED)
        h_sleep_ms(20);
    cr_assert(ne(int, tcp_state(fd), TCP_ESTABLISHED), "the connection is still open");
    close(fd);
    h_proxy_finish(p);
    /* What was answered is what the kernel's buffers took, not 10,000 (about 200 here). */
    log = h_read_file(p->access_log, &log_len);
    for (size_t i = 0; log != NULL && i < log_len; i++)
        answered += log[i] == '\n';
    cr_assert(lt(sz, answered, (size_t)2000), "%zu of the 10,000 requests were answered", answered);
}

/* A node streams 1 GiB to a client that reads a byte at a time, five a second: crossfade pushes
 * back on the node instead of buffering, so its memory stays flat. */
Test(connection_limits, a_big_body_to_a_client_reading_a_byte_at_a_time_keeps_memory_flat,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}});
    int fd = connect_small_window(p->port);
    const char *req = "GET /bytes/1073741824 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    long rss_before = h_rss_kib(p->proc->pid), rss_max = rss_before;
    char byte;

    cr_assert(eq(long, (long)send(fd, req, strlen(req), MSG_NOSIGNAL), (long)strlen(req)));
    for (int i = 0; i < 20; i++) {
        long rss;

        cr_assert(eq(long, (long)recv(fd, &byte, 1, 0), 1L), "the download stopped at byte %d", i);
        rss = h_rss_kib(p->proc->pid);
        rss_max = rss > rss_max ? rss : rss_max;
        h_sleep_ms(200);
    }
    /* Without back-pressure the node's 1 GiB would pile up at loopback speed (hundreds of MiB in
     * these 4 s); the bound leaves room for the sanitizers' shadow memory. */
    cr_assert(lt(long, rss_max - rss_before, 32768L),
              "crossfade's RSS grew by %ld KiB while its client read 20 bytes",
              rss_max - rss_before);
    close(fd);
    h_proxy_finish(p);
}
