/* tests/integration/test_catalogue_conn.c -- the catalogue's connection cases: Connection naming
 * framing or forwarding fields, Expect: 100-continue, pipelining after an error, and Upgrade
 * abuse (RFC 9110 7.6.1, 7.8, 10.1.1; RFC 9112 9.3; docs/security.md). */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <string.h>

#include "tests/integration/catalogue_helpers.h"

TestSuite(catalogue_conn, .init = h_setup, .fini = h_teardown);

#define FORWARDED(name, bytes, fwd)                                                                \
    Test(catalogue_conn, name, .timeout = H_TEST_TIMEOUT)                                          \
    {                                                                                              \
        cat_req_run(&(struct cat_req){CAT_BYTES(bytes), .status = 200, .node = fwd});              \
    }

/* ------------------------------------------------ Connection (RFC 9110 7.6.1) */

/* crossfade writes Host, the framing and X-Forwarded-* itself: Connection cannot take them out
 * of what the node gets (the hop-by-hop stripping attack). */
FORWARDED(connection_naming_content_length_keeps_the_framing,
          CAT_POST "Connection: Content-Length\r\nContent-Length: 3\r\n\r\nabc",
          CAT_FWD_POST("Content-Length: 3\r\n") "abc")
FORWARDED(connection_naming_transfer_encoding_keeps_the_framing,
          CAT_POST "Connection: Transfer-Encoding\r\n" CAT_TE "\r\n3\r\nabc\r\n0\r\n\r\n",
          CAT_FWD_POST(CAT_TE) "3\r\nabc\r\n0\r\n\r\n")
FORWARDED(connection_naming_host_keeps_host, CAT_GET "Connection: Host\r\n\r\n", CAT_FWD_GET(""))
FORWARDED(connection_naming_x_forwarded_for_keeps_the_chain_and_the_client,
          CAT_GET
          "Connection: X-Forwarded-For, X-Forwarded-Host\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n",
          "GET / HTTP/1.1\r\nHost: " H_HOST "\r\nX-Forwarded-For: 192.0.2.1, 127.0.0.1\r\n"
          "X-Forwarded-Proto: http\r\nX-Forwarded-Host: " H_HOST "\r\n\r\n")
/* An end-to-end field the client names is removed, as RFC 9110 7.6.1 requires. */
FORWARDED(connection_naming_an_end_to_end_field_removes_it,
          CAT_GET "Connection: Authorization, X-Real-IP\r\nAuthorization: Basic eDp5\r\n"
                  "X-Real-IP: 192.0.2.1\r\n\r\n",
          CAT_FWD_GET(""))

Test(catalogue_conn, connection_close_in_one_line_wins_over_keep_alive_in_another,
     .timeout = H_TEST_TIMEOUT)
{
    cat_req_run(&(struct cat_req){
        CAT_BYTES(CAT_GET "Connection: close\r\nConnection: keep-alive\r\n\r\n"), .status = 200,
        .closed = true, .node = CAT_FWD("GET / HTTP/1.1", H_HOST, "", "Connection: close\r\n"),
        .node_closed = true});
}

/* ------------------------------------------------ Expect (RFC 9110 10.1.1) */

/* A 100-continue without content is forwarded as is: the node answers it like any request. */
FORWARDED(expect_100_continue_without_a_body_is_forwarded, CAT_POST "Expect: 100-continue\r\n\r\n",
          CAT_FWD("POST / HTTP/1.1", H_HOST, "Expect: 100-continue\r\n", ""))
FORWARDED(expect_100_continue_with_its_body_sent_at_once_is_forwarded_whole,
          CAT_POST "Expect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
          CAT_FWD("POST / HTTP/1.1", H_HOST, "Expect: 100-continue\r\n",
                  "Content-Length: 3\r\n") "abc")
/* RFC 9110 10.1.1: a 1.0 request's 100-continue is ignored; the node never sees it. */
Test(catalogue_conn, expect_100_continue_of_an_http_1_0_request_is_dropped,
     .timeout = H_TEST_TIMEOUT)
{
    cat_req_run(&(struct cat_req){
        CAT_BYTES("POST / HTTP/1.0\r\nHost: " H_HOST
                  "\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc"),
        .status = 200, .closed = true, .node = CAT_FWD_POST("Content-Length: 3\r\n") "abc"});
}
/* RFC 9110 10.1.1 lets a server answer 417 to an unknown expectation; crossfade leaves that to
 * the node. */
FORWARDED(an_unknown_expectation_is_forwarded,
          CAT_POST "Expect: x-never\r\nContent-Length: 1\r\n\r\nz",
          CAT_FWD("POST / HTTP/1.1", H_HOST, "Expect: x-never\r\n", "Content-Length: 1\r\n") "z")

/* The node answers for good before the body: the client gets it, then the connection closes
 * (the body never sent cannot be told from a next request), and the node's connection too. */
Test(catalogue_conn, an_early_final_response_to_expect_closes_both_connections,
     .timeout = H_TEST_TIMEOUT)
{
    cat_req_run(&(struct cat_req){
        CAT_BYTES(CAT_POST "Expect: 100-continue\r\n" CAT_TE "\r\n"),
        .reply = "HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n", .status = 417,
        .closed = true, .close_unsaid = true,
        .node = CAT_FWD("POST / HTTP/1.1", H_HOST, "Expect: 100-continue\r\n", CAT_TE),
        .node_closed = true});
}

/* ------------------------------------------------ pipelining after an error (RFC 9112 9.3) */

#define NEXT "GET /pipelined HTTP/1.1\r\nHost: " H_HOST "\r\n\r\n"

Test(catalogue_conn, a_request_pipelined_after_a_bad_header_never_reaches_the_node,
     .timeout = H_TEST_TIMEOUT)
{
    cat_req_run(&(struct cat_req){CAT_BYTES(CAT_GET "X-A: a\x01z\r\n\r\n"), .pipelined = NEXT,
                                  .status = 400, .closed = true});
}

Test(catalogue_conn, a_request_pipelined_after_a_413_never_reaches_the_node,
     .timeout = H_TEST_TIMEOUT)
{
    cat_req_run(&(struct cat_req){CAT_BYTES(CAT_POST "Content-Length: 2000\r\n\r\n"),
                                  .pipelined = NEXT, .max_body_bytes = 1000, .status = 413,
                                  .closed = true});
}

Test(catalogue_conn, a_request_pipelined_after_a_bad_chunk_never_reaches_the_node,
     .timeout = H_TEST_TIMEOUT)
{
    /* Buffered (the default), nothing reaches the node; streamed, only the head does. */
    cat_req_run(&(struct cat_req){CAT_BYTES(CAT_POST CAT_TE "\r\nzz\r\n" NEXT), .status = 400,
                                  .closed = true});
    cat_req_run(&(struct cat_req){
        CAT_BYTES(CAT_POST CAT_TE "\r\n"), .rest = "zz\r\n" NEXT, .silent = true, .status = 400,
        .closed = true, .node = CAT_FWD_POST(CAT_TE), .node_closed = true, .request_buffer = "0"});
}

Test(catalogue_conn, a_bad_request_line_after_a_good_request_ends_the_pipeline,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f = h_fake_start1(CAT_OK, H_FAKE_KEEP);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(f)}}});
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    h_send_str(c, "GET /first HTTP/1.1\r\nHost: " H_HOST "\r\n\r\nBOGUS\r\n\r\n" NEXT);
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 400));
    cr_assert(h_header_has_token(&m, "Connection", "close"));
    cr_assert(eq(int, h_conn_wait(c, 3000), H_CLOSED));
    cr_assert(h_fake_wait_requests(f, 1, H_IO_TIMEOUT_MS));
    cr_assert(eq(str, h_fake_received(f, 0, NULL), CAT_FWD("GET /first HTTP/1.1", H_HOST, "", "")));
    /* Once a sentinel arrived, whatever the pipeline made crossfade send has arrived too. */
    cr_assert(eq(int, h_send_sentinel(p->port, NULL), 200));
    cr_assert(h_fake_wait_sentinels(f, 1, H_IO_TIMEOUT_MS));
    cr_assert(eq(sz, h_fake_non_sentinels(f), (size_t)1), "the node got more than /first");
    for (size_t i = 0; i < h_fake_conns(f); i++)
        cr_assert(eq(ptr, strstr(h_fake_received(f, i, NULL), "/pipelined"), NULL));
    h_proxy_finish(p);
}

/* Bytes after a Content-Length body are the next request, whole: never part of the first. */
Test(catalogue_conn, bytes_after_a_content_length_body_are_the_next_request,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f = h_fake_start1(CAT_OK, H_FAKE_KEEP);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(f)}}});
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    h_send_str(c, CAT_POST "Content-Length: 3\r\n\r\nabc" NEXT);
    for (int i = 0; i < 2; i++) {
        cr_assert(eq(int, h_read_response(c, &m), 0), "response %d: %s", i + 1, m.error);
        cr_assert(eq(int, m.status, 200));
    }
    cr_assert(eq(int, h_conn_wait(c, 200), H_OPEN));
    cr_assert(h_fake_wait_requests(f, 2, H_IO_TIMEOUT_MS));
    cr_assert(eq(str, h_fake_received(f, 0, NULL),
                 CAT_FWD_POST("Content-Length: 3\r\n") "abc" CAT_FWD("GET /pipelined HTTP/1.1",
                                                                     H_HOST, "", "")));
    h_proxy_finish(p);
}

/* ------------------------------------------------ Upgrade (RFC 9110 7.8) */

FORWARDED(an_h2c_upgrade_goes_on_as_plain_http_without_its_settings,
          CAT_GET "Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                  "HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
          CAT_FWD_GET(""))
FORWARDED(an_upgrade_that_connection_does_not_name_is_dropped,
          CAT_GET "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
          CAT_FWD_GET("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"))
FORWARDED(connection_upgrade_without_an_upgrade_field_is_plain_http,
          CAT_GET "Connection: Upgrade\r\n\r\n", CAT_FWD_GET(""))
FORWARDED(an_upgrade_with_a_body_is_plain_http,
          CAT_POST "Upgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 3\r\n\r\nabc",
          CAT_FWD_POST("Content-Length: 3\r\n") "abc")

/* A 101 to a request whose upgrade crossfade did not forward is the node's error: 502. */
Test(catalogue_conn, a_101_to_an_upgrade_without_connection_upgrade_gets_502,
     .timeout = H_TEST_TIMEOUT)
{
    cat_resp_run(
        &(struct cat_resp){.req = CAT_GET "Upgrade: websocket\r\n\r\n",
                           CAT_REPLY("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                     "Connection: upgrade\r\n\r\n"),
                           .status = 502,
                           .why = "without being asked",
                           .pool = CAT_POOL_CLOSED});
}

Test(catalogue_conn, a_101_to_an_h2c_upgrade_gets_502, .timeout = H_TEST_TIMEOUT)
{
    cat_resp_run(&(struct cat_resp){
        .req = CAT_GET "Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                       "HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
        CAT_REPLY("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n"
                  "\x00\x00\x00\x04\x00\x00\x00\x00\x00"),
        .status = 502,
        .why = "without being asked",
        .pool = CAT_POOL_CLOSED});
}
