/* tests/integration/test_request_rejection.c -- bad requests get refused before any node. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <string.h>

#include "tests/integration/harness.h"

TestSuite(request_rejection, .init = h_setup, .fini = h_teardown);

#define OK_REPLY "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"

/* A fake node behind crossfade with options `o` (its cluster x is filled in here). */
static struct h_proxy *
proxy_for_fake(struct h_fake **f, struct h_proxy_opts o)
{
    *f = h_fake_start1(OK_REPLY, H_FAKE_KEEP);
    o.x[0] = (struct h_node){.port = h_fake_port(*f)};
    return h_proxy_start(&o);
}

/*
 * Sends `len` bytes of `raw` on a new connection and expects the answer `status` (or `alt`, when
 * not 0) with Connection: close, the connection closed after it, and not one byte at the node: a
 * sentinel sent afterwards is all the node gets.
 */
static void
expect_rejection(struct h_proxy *p, struct h_fake *f, const char *raw, size_t len, int status,
                 int alt)
{
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    /* The proxy may close before it read everything: a failed send is not the point. */
    (void)h_send(c, raw, len);
    cr_assert(eq(int, h_read_response(c, &m), 0), "no response: %s", m.error);
    if (alt != 0)
        cr_assert(m.status == status || m.status == alt, "status %d, expected %d or %d", m.status,
                  status, alt);
    else
        cr_assert(eq(int, m.status, status), "status %d, expected %d", m.status, status);
    cr_assert(h_header_has_token(&m, "Connection", "close"), "no Connection: close in\n%s", m.head);
    cr_assert(eq(int, h_conn_wait(c, 3000), H_CLOSED), "the connection was not closed after the %d",
              m.status);
    h_fake_expect_only_sentinels(f, p->port, NULL);
}

static void
check_rejected_opts(const char *raw, size_t len, int status, int alt, struct h_proxy_opts o)
{
    struct h_fake *f;
    struct h_proxy *p = proxy_for_fake(&f, o);

    expect_rejection(p, f, raw, len, status, alt);
    h_proxy_finish(p);
}

static void
check_rejected(const char *raw, int status)
{
    check_rejected_opts(raw, strlen(raw), status, 0, (struct h_proxy_opts){.x = {{0}}});
}

#define GET_HEAD(extra) "GET / HTTP/1.1\r\nHost: " H_HOST "\r\n" extra "\r\n"

Test(request_rejection, a_well_formed_request_reaches_the_node, .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f;
    struct h_proxy *p = proxy_for_fake(&f, (struct h_proxy_opts){.x = {{0}}});
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    cr_assert(eq(int, h_get(c, "/fine", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, m.body, "ok\n"));
    cr_assert(eq(sz, h_fake_requests(f, 0), (size_t)1));
    cr_assert(eq(int, strncmp(h_fake_received(f, 0, NULL), "GET /fine HTTP/1.1\r\n", 20), 0));
    h_proxy_finish(p);
}

Test(request_rejection, a_malformed_request_line_gets_400, .timeout = H_TEST_TIMEOUT)
{
    check_rejected("GET /a b HTTP/1.1\r\nHost: " H_HOST "\r\n\r\n", 400);
}

Test(request_rejection, a_header_line_without_a_colon_gets_400, .timeout = H_TEST_TIMEOUT)
{
    check_rejected(GET_HEAD("X-Broken-Header\r\n"), 400);
}

Test(request_rejection, content_length_together_with_transfer_encoding_gets_400,
     .timeout = H_TEST_TIMEOUT)
{
    check_rejected("POST / HTTP/1.1\r\nHost: " H_HOST "\r\nContent-Length: 5\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                   400);
}

Test(request_rejection, two_different_content_length_values_get_400, .timeout = H_TEST_TIMEOUT)
{
    check_rejected("POST / HTTP/1.1\r\nHost: " H_HOST "\r\nContent-Length: 5\r\n"
                   "Content-Length: 6\r\n\r\nhello!",
                   400);
}

Test(request_rejection, transfer_encoding_with_chunked_before_another_coding_gets_400,
     .timeout = H_TEST_TIMEOUT)
{
    check_rejected("POST / HTTP/1.1\r\nHost: " H_HOST "\r\nTransfer-Encoding: chunked, gzip\r\n"
                   "\r\n0\r\n\r\n",
                   400);
}

Test(request_rejection, transfer_encoding_with_a_coding_before_chunked_is_refused,
     .timeout = H_TEST_TIMEOUT)
{
    const char *raw = "POST / HTTP/1.1\r\nHost: " H_HOST "\r\nTransfer-Encoding: gzip, chunked\r\n"
                      "\r\n0\r\n\r\n";

    check_rejected_opts(raw, strlen(raw), 400, 501, (struct h_proxy_opts){.x = {{0}}});
}

Test(request_rejection, an_obs_fold_continuation_line_gets_400, .timeout = H_TEST_TIMEOUT)
{
    check_rejected(GET_HEAD("X-Folded: a\r\n b\r\n"), 400);
}

Test(request_rejection, an_obs_fold_in_transfer_encoding_gets_400, .timeout = H_TEST_TIMEOUT)
{
    check_rejected("POST / HTTP/1.1\r\nHost: " H_HOST "\r\nTransfer-Encoding:\r\n chunked\r\n"
                   "\r\n0\r\n\r\n",
                   400);
}

Test(request_rejection, a_bare_cr_in_a_header_value_gets_400, .timeout = H_TEST_TIMEOUT)
{
    check_rejected(GET_HEAD("X-Cr: a\rb\r\n"), 400);
}

Test(request_rejection, a_nul_byte_in_a_header_gets_400, .timeout = H_TEST_TIMEOUT)
{
    static const char raw[] = GET_HEAD("X-Nul: a\0b\r\n");

    check_rejected_opts(raw, sizeof(raw) - 1, 400, 0, (struct h_proxy_opts){.x = {{0}}});
}

Test(request_rejection, a_control_byte_in_a_header_value_gets_400, .timeout = H_TEST_TIMEOUT)
{
    check_rejected(GET_HEAD("X-Ctl: a\x01z\r\n"), 400);
}

Test(request_rejection, an_empty_header_name_gets_400, .timeout = H_TEST_TIMEOUT)
{
    check_rejected(GET_HEAD(": x\r\n"), 400);
}

Test(request_rejection, an_http_1_1_request_without_host_gets_400, .timeout = H_TEST_TIMEOUT)
{
    check_rejected("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400);
}

Test(request_rejection, two_host_headers_get_400, .timeout = H_TEST_TIMEOUT)
{
    check_rejected(GET_HEAD("Host: other.test\r\n"), 400);
}

Test(request_rejection, an_invalid_host_gets_400, .timeout = H_TEST_TIMEOUT)
{
    const char *hosts[] = {"a b", "exa mple.com", "host/path"};
    struct h_fake *f;
    struct h_proxy *p = proxy_for_fake(&f, (struct h_proxy_opts){.x = {{0}}});

    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        const char *raw = h_fmt("GET / HTTP/1.1\r\nHost: %s\r\n\r\n", hosts[i]);

        expect_rejection(p, f, raw, strlen(raw), 400, 0);
    }
    h_proxy_finish(p);
}

Test(request_rejection, an_http_2_0_request_line_gets_505, .timeout = H_TEST_TIMEOUT)
{
    check_rejected("GET / HTTP/2.0\r\nHost: " H_HOST "\r\n\r\n", 505);
}

Test(request_rejection, an_http_1_2_request_line_gets_505, .timeout = H_TEST_TIMEOUT)
{
    check_rejected("GET / HTTP/1.2\r\nHost: " H_HOST "\r\n\r\n", 505);
}

Test(request_rejection, an_http_0_9_request_gets_400_or_a_close_and_reaches_no_node,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f;
    struct h_proxy *p = proxy_for_fake(&f, (struct h_proxy_opts){.x = {{0}}});
    struct h_conn *c = h_connect(p->port);
    enum h_wait w;

    h_send_str(c, "GET /\r\n");
    w = h_conn_wait(c, 5000);
    cr_assert(ne(int, w, H_OPEN), "neither an answer nor a close within 5 s");
    if (w == H_DATA) {
        struct h_msg m;

        cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
        cr_assert(eq(int, m.status, 400));
        cr_assert(eq(int, h_conn_wait(c, 3000), H_CLOSED), "not closed after the 400");
    }
    h_fake_expect_only_sentinels(f, p->port, NULL);
    h_proxy_finish(p);
}

Test(request_rejection, an_http_1_0_request_with_transfer_encoding_gets_400,
     .timeout = H_TEST_TIMEOUT)
{
    check_rejected("POST / HTTP/1.0\r\nHost: " H_HOST "\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "0\r\n\r\n",
                   400);
}

Test(request_rejection, connect_gets_501, .timeout = H_TEST_TIMEOUT)
{
    check_rejected("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501);
}

Test(request_rejection, a_request_line_over_max_request_line_bytes_gets_414,
     .timeout = H_TEST_TIMEOUT)
{
    char *target = h_alloc(9001);

    memset(target, 'a', 9000);
    target[0] = '/';
    check_rejected(h_fmt("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, H_HOST), 414);
}

Test(request_rejection, a_head_over_max_header_bytes_gets_431, .timeout = H_TEST_TIMEOUT)
{
    char *value = h_alloc(20001);

    memset(value, 'v', 20000);
    check_rejected(h_fmt("GET / HTTP/1.1\r\nHost: %s\r\nX-Big: %s\r\n\r\n", H_HOST, value), 431);
}

/* "GET / HTTP/1.1", Host, then `n - 1` more header fields. */
static const char *
head_with_headers(int n)
{
    const char *s = h_fmt("GET / HTTP/1.1\r\nHost: %s\r\n", H_HOST);

    for (int i = 1; i < n; i++)
        s = h_fmt("%sX-H-%d: %d\r\n", s, i, i);
    return h_fmt("%s\r\n", s);
}

Test(request_rejection, more_than_max_headers_header_fields_get_431, .timeout = H_TEST_TIMEOUT)
{
    check_rejected(head_with_headers(101), 431);
}

Test(request_rejection, exactly_max_headers_header_fields_are_accepted, .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f;
    struct h_proxy *p = proxy_for_fake(&f, (struct h_proxy_opts){.x = {{0}}});
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    h_send_str(c, head_with_headers(100));
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200), "100 header fields (the limit) got %d", m.status);
    cr_assert(eq(sz, h_fake_requests(f, 0), (size_t)1));
    h_proxy_finish(p);
}

Test(request_rejection, a_content_length_over_max_body_bytes_gets_413, .timeout = H_TEST_TIMEOUT)
{
    const char *raw = "POST / HTTP/1.1\r\nHost: " H_HOST "\r\nContent-Length: 2000\r\n\r\n";

    check_rejected_opts(raw, strlen(raw), 413, 0,
                        (struct h_proxy_opts){.x = {{0}}, .max_body_bytes = 1000});
}

Test(request_rejection, a_body_of_exactly_max_body_bytes_is_accepted, .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f;
    struct h_proxy *p =
        proxy_for_fake(&f, (struct h_proxy_opts){.x = {{0}}, .max_body_bytes = 1000});
    struct h_conn *c = h_connect(p->port);
    char body[1000];
    struct h_msg m;

    h_pattern_fill(body, sizeof(body), 0);
    h_sendf(c, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Length: 1000\r\n\r\n", H_HOST);
    h_send(c, body, sizeof(body));
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200), "a body of max_body_bytes got %d", m.status);
    cr_assert(eq(sz, h_fake_requests(f, 0), (size_t)1));
    h_proxy_finish(p);
}

Test(request_rejection, a_client_too_slow_to_send_its_head_gets_408_and_is_closed,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f;
    struct h_proxy *p =
        proxy_for_fake(&f, (struct h_proxy_opts){.x = {{0}}, .client_header_ms = 300});
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    h_send_str(c, "GET / HTTP/1.1\r\nHost: " H_HOST "\r\n");
    cr_assert(eq(int, h_read_response_ex(c, &m, 0, 3000, NULL, NULL), 0),
              "no answer within 3 s to a head left unfinished (client_header: 300ms): %s", m.error);
    cr_assert(eq(int, m.status, 408));
    cr_assert(h_header_has_token(&m, "Connection", "close"), "no Connection: close in\n%s", m.head);
    cr_assert(eq(int, h_conn_wait(c, 3000), H_CLOSED), "not closed after the 408");
    cr_assert(eq(sz, h_fake_bytes(f), (size_t)0), "bytes reached the node");
    h_proxy_finish(p);
}

/*
 * After a refusal crossfade shuts its side and reads what the client still sends, for at most
 * PX_LINGER_MS (2 s): a client that neither sends nor closes cannot hold the connection longer.
 * (The other tests close theirs once refused, as clients do, and so do not wait for it.)
 */
Test(request_rejection, a_refused_client_that_keeps_its_connection_open_is_let_go_after_the_linger,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f;
    struct h_proxy *p = proxy_for_fake(&f, (struct h_proxy_opts){.x = {{0}}});
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    h_send_str(c, "GET /a b HTTP/1.1\r\nHost: " H_HOST "\r\n\r\n");
    cr_assert(eq(int, h_read_response(c, &m), 0), "no response: %s", m.error);
    cr_assert(eq(int, m.status, 400));
    cr_assert(eq(int, h_conn_wait(c, 3000), H_CLOSED), "not closed after the 400");
    /* Our side stays open: only the linger's end can close crossfade's. */
    h_await_stat(adm, "client_connections", NULL, 0);
    cr_assert(ge(int, c->fd, 0));
    h_proxy_finish_open(p);
}
