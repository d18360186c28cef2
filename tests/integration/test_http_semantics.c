/* tests/integration/test_http_semantics.c -- RFC 9110/9112 rules the proxy applies to what it
 * forwards. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <string.h>

#include <xxhash.h>

#include "tests/integration/harness.h"

TestSuite(http_semantics, .init = h_setup, .fini = h_teardown);

/* A proxy in front of one xf-upstream called u1. */
static struct h_proxy *
proxy_with_u1(void)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);

    return h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}});
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

/* The connection stays quiet for a moment: no stray byte follows the last response. */
static void
assert_nothing_more(struct h_conn *c)
{
    cr_assert(eq(int, h_conn_wait(c, 300), H_OPEN),
              "bytes or a close followed the response (%zu bytes pending)", h_pending(c));
}

Test(http_semantics, hop_by_hop_request_headers_do_not_reach_the_node, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = proxy_with_u1();
    struct h_conn *c = h_connect(p->port);
    struct h_msg seen;
    const char *hop[] = {"X-Hop-Req", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Upgrade"};

    echo(c,
         "GET /echo HTTP/1.1\r\n"
         "Host: " H_HOST "\r\n"
         "Connection: keep-alive, X-Hop-Req\r\n"
         "X-Hop-Req: secret\r\n"
         "Keep-Alive: timeout=5\r\n"
         "Proxy-Connection: keep-alive\r\n"
         "TE: trailers\r\n"
         "Trailer: X-T\r\n"
         "Upgrade: foo/1\r\n"
         "X-E2E: kept\r\n"
         "\r\n",
         &seen);
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        cr_expect(eq(sz, h_header_count(&seen, hop[i]), (size_t)0), "%s reached the node:\n%s",
                  hop[i], seen.head);
    /* The proxy may say keep-alive or close for its own hop, but not pass the client's list on. */
    cr_expect(not(h_header_has_token(&seen, "Connection", "X-Hop-Req")),
              "the client's Connection list reached the node:\n%s", seen.head);
    cr_expect(eq(ptr, (void *)h_memcasemem(seen.head, seen.head_len, "secret"), NULL));
    cr_assert(eq(str, (char *)h_header(&seen, "X-E2E"), "kept"), "an end-to-end header was lost");
    h_proxy_finish(p);
}

Test(http_semantics, hop_by_hop_response_headers_do_not_reach_the_client, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = proxy_with_u1();
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;
    const char *keep_alive;

    cr_assert(eq(int, h_get(c, "/headers", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_expect(eq(sz, h_header_count(&m, "X-Hop"), (size_t)0), "X-Hop reached the client");
    cr_expect(eq(sz, h_header_count(&m, "Upgrade"), (size_t)0), "Upgrade reached the client");
    cr_expect(eq(sz, h_header_count(&m, "Proxy-Connection"), (size_t)0));
    cr_expect(eq(sz, h_header_count(&m, "Trailer"), (size_t)0), "Trailer reached the client");
    keep_alive = h_header(&m, "Keep-Alive");
    cr_expect(keep_alive == NULL || strcmp(keep_alive, "timeout=5") != 0,
              "the node's Keep-Alive reached the client");
    cr_expect(not(h_header_has_token(&m, "Connection", "X-Hop")),
              "the node's Connection list reached the client");
    cr_assert(eq(str, (char *)h_header(&m, "X-E2E"), "kept"), "an end-to-end header was lost:\n%s",
              m.head);
    h_proxy_finish(p);
}

Test(http_semantics, x_forwarded_for_is_set_to_the_client_address, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = proxy_with_u1();
    struct h_msg seen;

    echo(h_connect(p->port), "GET /echo HTTP/1.1\r\nHost: " H_HOST "\r\n\r\n", &seen);
    cr_assert(eq(sz, h_header_count(&seen, "X-Forwarded-For"), (size_t)1), "%s", seen.head);
    cr_assert(eq(str, (char *)h_header(&seen, "X-Forwarded-For"), "127.0.0.1"));
    h_proxy_finish(p);
}

Test(http_semantics, x_forwarded_for_keeps_its_value_and_gets_the_client_address_appended,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = proxy_with_u1();
    struct h_msg seen;

    echo(h_connect(p->port),
         "GET /echo HTTP/1.1\r\nHost: " H_HOST "\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n", &seen);
    cr_assert(eq(sz, h_header_count(&seen, "X-Forwarded-For"), (size_t)1), "%s", seen.head);
    cr_assert(eq(str, (char *)h_header(&seen, "X-Forwarded-For"), "203.0.113.7, 127.0.0.1"));
    h_proxy_finish(p);
}

Test(http_semantics, x_forwarded_proto_is_set_to_http, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = proxy_with_u1();
    struct h_msg seen;

    /* Set, not appended: a client cannot claim https through a plain-text listener. */
    echo(h_connect(p->port),
         "GET /echo HTTP/1.1\r\nHost: " H_HOST "\r\nX-Forwarded-Proto: https\r\n\r\n", &seen);
    cr_assert(eq(sz, h_header_count(&seen, "X-Forwarded-Proto"), (size_t)1), "%s", seen.head);
    cr_assert(eq(str, (char *)h_header(&seen, "X-Forwarded-Proto"), "http"));
    h_proxy_finish(p);
}

Test(http_semantics, x_forwarded_host_is_set_to_the_host_header, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = proxy_with_u1();
    struct h_msg seen;

    echo(h_connect(p->port),
         "GET /echo HTTP/1.1\r\nHost: shop.example:8080\r\nX-Forwarded-Host: evil.example\r\n\r\n",
         &seen);
    cr_assert(eq(sz, h_header_count(&seen, "X-Forwarded-Host"), (size_t)1), "%s", seen.head);
    cr_assert(eq(str, (char *)h_header(&seen, "X-Forwarded-Host"), "shop.example:8080"));
    h_proxy_finish(p);
}

Test(http_semantics, the_host_header_reaches_the_node_unchanged, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = proxy_with_u1();
    struct h_msg seen;

    echo(h_connect(p->port), "GET /echo HTTP/1.1\r\nHost: shop.example:8080\r\n\r\n", &seen);
    cr_assert(eq(sz, h_header_count(&seen, "Host"), (size_t)1), "%s", seen.head);
    cr_assert(eq(str, (char *)h_header(&seen, "Host"), "shop.example:8080"));
    h_proxy_finish(p);
}

Test(http_semantics, a_head_response_carries_no_body_and_the_connection_goes_on,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = proxy_with_u1();
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    h_sendf(c, "HEAD /bytes/100 HTTP/1.1\r\nHost: %s\r\n\r\n", H_HOST);
    cr_assert(eq(int, h_read_response_ex(c, &m, H_NO_BODY, H_IO_TIMEOUT_MS, NULL, NULL), 0), "%s",
              m.error);
    cr_assert(eq(int, m.status, 200));
    assert_nothing_more(c);
    cr_assert(eq(int, h_get(c, "/", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, m.body, "u1\n"));
    h_proxy_finish(p);
}

Test(http_semantics, a_204_response_carries_no_body_and_the_connection_goes_on,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = proxy_with_u1();
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    cr_assert(eq(int, h_get(c, "/status/204", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 204));
    cr_assert(eq(sz, h_header_count(&m, "Transfer-Encoding"), (size_t)0),
              "a 204 response got a Transfer-Encoding:\n%s", m.head);
    assert_nothing_more(c);
    cr_assert(eq(int, h_get(c, "/", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, m.body, "u1\n"));
    h_proxy_finish(p);
}

/* A 304 may carry the Content-Length of the representation it stands for (RFC 9110 8.6): the
 * proxy must not wait for those bytes. */
Test(http_semantics, a_304_response_carries_no_body_even_with_a_content_length,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f = h_fake_start1(
        "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 100\r\n\r\n", H_FAKE_KEEP);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(f)}}});
    struct h_conn *c = h_connect(p->port);

    for (int i = 0; i < 2; i++) {
        struct h_msg m;

        h_sendf(c, "GET / HTTP/1.1\r\nHost: %s\r\nIf-None-Match: \"v1\"\r\n\r\n", H_HOST);
        cr_assert(eq(int, h_read_response_ex(c, &m, 0, 3000, NULL, NULL), 0), "request %d: %s", i,
                  m.error);
        cr_assert(eq(int, m.status, 304));
        cr_assert(eq(sz, h_header_count(&m, "Transfer-Encoding"), (size_t)0),
                  "a 304 response got a Transfer-Encoding:\n%s", m.head);
        assert_nothing_more(c);
    }
    h_proxy_finish(p);
}

Test(http_semantics, an_interim_1xx_response_is_forwarded_without_a_body_before_the_final_one,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f = h_fake_start1("HTTP/1.1 103 Early Hints\r\n"
                                     "Link: </style.css>; rel=preload\r\n"
                                     "\r\n"
                                     "HTTP/1.1 200 OK\r\n"
                                     "Content-Length: 3\r\n"
                                     "\r\n"
                                     "ok\n",
                                     H_FAKE_KEEP);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(f)}}});
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    h_sendf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", H_HOST);
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 103), "the 103 was not forwarded (RFC 9110 15.2: a proxy MUST)");
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, m.body, "ok\n"));
    assert_nothing_more(c);
    h_proxy_finish(p);
}

Test(http_semantics, expect_100_continue_gets_100_continue_then_the_response_to_the_body,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = proxy_with_u1();
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;
    uint64_t bytes, hash;

    h_sendf(c,
            "POST /count HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\nExpect: 100-continue\r\n"
            "\r\n",
            H_HOST);
    cr_assert(eq(int, h_read_response_ex(c, &m, 0, 5000, NULL, NULL), 0),
              "no 100 Continue before the body was sent: %s", m.error);
    cr_assert(eq(int, m.status, 100));
    h_send_str(c, "hello");
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(int, h_count_parse(m.body, &bytes, &hash), 0), "not a /count answer: %s", m.body);
    cr_assert(eq(u64, bytes, (uint64_t)5));
    cr_assert(eq(u64, hash, (uint64_t)XXH64("hello", 5, 0)));
    h_proxy_finish(p);
}

Test(http_semantics, an_http_1_0_client_is_closed_after_the_response, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = proxy_with_u1();
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    h_sendf(c, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", H_HOST);
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, m.body, "u1\n"));
    cr_assert(eq(int, h_conn_wait(c, 3000), H_CLOSED), "the 1.0 connection stayed open");
    h_proxy_finish(p);
}

Test(http_semantics, an_http_1_0_client_that_asks_for_keep_alive_keeps_its_connection,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = proxy_with_u1();
    struct h_conn *c = h_connect(p->port);

    for (int i = 0; i < 2; i++) {
        struct h_msg m;

        h_sendf(c, "GET / HTTP/1.0\r\nHost: %s\r\nConnection: keep-alive\r\n\r\n", H_HOST);
        cr_assert(eq(int, h_read_response(c, &m), 0), "request %d: %s", i, m.error);
        cr_assert(eq(int, m.status, 200));
        cr_assert(eq(str, m.body, "u1\n"));
        cr_assert(h_header_has_token(&m, "Connection", "keep-alive"),
                  "the response does not say Connection: keep-alive:\n%s", m.head);
        cr_assert(not(m.close_delimited), "a keep-alive response was delimited by close");
    }
    assert_nothing_more(c);
    h_proxy_finish(p);
}

Test(http_semantics, an_http_1_0_client_gets_a_chunked_response_de_chunked_and_delimited_by_close,
     .timeout = H_TEST_TIMEOUT)
{
    /* The node answers chunked whatever the client: the proxy talks HTTP/1.1 to it. */
    struct h_fake *f = h_fake_start1("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                     "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                                     H_FAKE_KEEP);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(f)}}});
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    h_sendf(c, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", H_HOST);
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(sz, h_header_count(&m, "Transfer-Encoding"), (size_t)0),
              "a 1.0 client got Transfer-Encoding:\n%s", m.head);
    cr_assert(eq(str, m.body, "hello world"));
    cr_assert(m.close_delimited, "the body was not delimited by close:\n%s", m.head);
    h_proxy_finish(p);
}

Test(http_semantics, a_request_head_arriving_in_small_pieces_is_forwarded_whole,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = proxy_with_u1();
    struct h_conn *c = h_connect(p->port);
    const char *raw =
        "POST /echo HTTP/1.1\r\nHost: " H_HOST "\r\nX-Long-Header-Name: some value\r\n"
        "Content-Length: 5\r\n\r\nhello";
    struct h_msg m, seen;

    cr_assert(eq(int, h_send_pieces(c, raw, strlen(raw), 3, 5), 0));
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(int, h_parse_request_head(m.body, m.body_len, &seen), 0), "%s", seen.error);
    cr_assert(eq(str, (char *)seen.target, "/echo"));
    cr_assert(eq(str, (char *)h_header(&seen, "X-Long-Header-Name"), "some value"));
    cr_assert(eq(str, seen.body, "hello"));
    h_proxy_finish(p);
}

Test(http_semantics, pipelined_requests_are_answered_in_order, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = proxy_with_u1();
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    /* The first is the slowest: answering out of order would show. */
    h_sendf(c,
            "GET /delay/300 HTTP/1.1\r\nHost: %s\r\n\r\n"
            "GET /bytes/3 HTTP/1.1\r\nHost: %s\r\n\r\n"
            "GET /status/404 HTTP/1.1\r\nHost: %s\r\n\r\n",
            H_HOST, H_HOST, H_HOST);
    cr_assert(eq(int, h_read_response(c, &m), 0), "first: %s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, m.body, "u1\n"));
    cr_assert(eq(int, h_read_response(c, &m), 0), "second: %s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, m.body, "abc"));
    cr_assert(eq(int, h_read_response(c, &m), 0), "third: %s", m.error);
    cr_assert(eq(int, m.status, 404));
    assert_nothing_more(c);
    h_proxy_finish(p);
}

Test(http_semantics, a_request_with_content_length_reaches_the_node_with_that_content_length,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = proxy_with_u1();
    struct h_msg seen;

    echo(h_connect(p->port),
         "POST /echo HTTP/1.1\r\nHost: " H_HOST "\r\nContent-Length: 5\r\n\r\nhello", &seen);
    cr_assert(eq(sz, h_header_count(&seen, "Content-Length"), (size_t)1), "%s", seen.head);
    cr_assert(eq(str, (char *)h_header(&seen, "Content-Length"), "5"));
    cr_assert(eq(sz, h_header_count(&seen, "Transfer-Encoding"), (size_t)0), "%s", seen.head);
    cr_assert(eq(sz, seen.body_len, (size_t)5));
    cr_assert(eq(str, seen.body, "hello"));
    h_proxy_finish(p);
}

Test(http_semantics, a_chunked_request_reaches_the_node_chunked_with_the_same_payload,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = proxy_with_u1();
    struct h_msg seen;

    /* A chunk extension and a trailer field: the proxy writes its own chunk framing. */
    echo(h_connect(p->port),
         "POST /echo HTTP/1.1\r\nHost: " H_HOST "\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5;note=first\r\nhello\r\n"
         "6\r\n world\r\n"
         "0\r\nX-Trailer: t\r\n\r\n",
         &seen);
    cr_assert(eq(str, (char *)h_header(&seen, "Transfer-Encoding"), "chunked"), "%s", seen.head);
    cr_assert(eq(sz, h_header_count(&seen, "Content-Length"), (size_t)0), "%s", seen.head);
    cr_assert(eq(str, seen.body, "hello world"));
    h_proxy_finish(p);
}
