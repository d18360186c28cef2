/* tests/integration/test_catalogue_response.c -- the catalogue's response cases: status lines,
 * framing, bodies where none may be, bytes after the body, truncation, 1xx floods, long and
 * dirty header lines (RFC 9112 4, 6.3; RFC 9110 6.4.1, 15.2; docs/security.md). */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <string.h>

#include "tests/integration/catalogue_helpers.h"

TestSuite(catalogue_response, .init = h_setup, .fini = h_teardown);

/* A response refused: the client gets a whole 502 (its connection goes on), and the node's
 * connection is closed, never pooled. */
#define BAD_GATEWAY(name, bytes)                                                                   \
    Test(catalogue_response, name, .timeout = H_TEST_TIMEOUT)                                      \
    {                                                                                              \
        cat_resp_run(                                                                              \
            &(struct cat_resp){CAT_REPLY(bytes), .status = 502, .pool = CAT_POOL_CLOSED});         \
    }

/* ------------------------------------------------ status lines (RFC 9112 4) */

/* A status line without its reason (and its space) is taken; the client gets the space RFC
 * 9112 4 asks a sender for. */
Test(catalogue_response, a_status_line_without_a_reason_is_forwarded_with_its_space,
     .timeout = H_TEST_TIMEOUT)
{
    cat_resp_run(&(struct cat_resp){CAT_REPLY("HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok"),
                                    .status = 200, .status_line = "HTTP/1.1 200 \r\n", .body = "ok",
                                    .pool = CAT_POOL_REUSED});
}
BAD_GATEWAY(a_four_digit_status_gets_502, "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok")
BAD_GATEWAY(a_two_digit_status_gets_502, "HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok")
BAD_GATEWAY(status_600_gets_502, "HTTP/1.1 600 OK\r\nContent-Length: 2\r\n\r\nok")
BAD_GATEWAY(two_spaces_before_the_status_get_502, "HTTP/1.1  200 OK\r\nContent-Length: 2\r\n\r\nok")
BAD_GATEWAY(an_http_2_status_line_gets_502, "HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
BAD_GATEWAY(a_lower_case_version_gets_502, "http/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
BAD_GATEWAY(bare_lf_line_endings_get_502, "HTTP/1.1 200 OK\nContent-Length: 2\n\nok")

/* ------------------------------------------------ framing (RFC 9112 6.3) */

BAD_GATEWAY(content_length_with_transfer_encoding_gets_502,
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
            "2\r\nok\r\n0\r\n\r\n")
BAD_GATEWAY(two_different_content_lengths_get_502,
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!")
BAD_GATEWAY(two_equal_content_lengths_get_502,
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok")
BAD_GATEWAY(a_content_length_with_a_plus_sign_gets_502,
            "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok")
/* RFC 9112 6.3 would read such a body until close; crossfade refuses it instead. */
BAD_GATEWAY(a_transfer_coding_without_chunked_gets_502,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nokok")
BAD_GATEWAY(chunked_with_a_parameter_gets_502,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;x=1\r\n\r\n2\r\nok\r\n0\r\n\r\n")
BAD_GATEWAY(chunked_with_a_trailing_tab_gets_502,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\t\r\n\r\n2\r\nok\r\n0\r\n\r\n")

/* ------------------------------------------------ bodies where none may be (RFC 9110 6.4.1) */

Test(catalogue_response, a_204_with_a_chunked_body_gets_no_body_and_its_connection_closes,
     .timeout = H_TEST_TIMEOUT)
{
    cat_resp_run(&(struct cat_resp){
        CAT_REPLY("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        .status = 204, .body = "", .pool = CAT_POOL_CLOSED});
}

Test(catalogue_response, a_304_with_body_bytes_gets_no_body_and_its_connection_closes,
     .timeout = H_TEST_TIMEOUT)
{
    cat_resp_run(
        &(struct cat_resp){CAT_REPLY("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nhello"),
                           .status = 304, .body = "", .pool = CAT_POOL_CLOSED});
}

Test(catalogue_response, a_head_response_with_a_chunked_body_gets_no_body,
     .timeout = H_TEST_TIMEOUT)
{
    cat_resp_run(&(struct cat_resp){
        .req = "HEAD /r1 HTTP/1.1\r\nHost: " H_HOST "\r\n\r\n",
        CAT_REPLY("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
        .flags = H_NO_BODY,
        .status = 200,
        .body = "",
        .pool = CAT_POOL_CLOSED});
}

/* ------------------------------------------------ bytes after the body, truncation */

Test(catalogue_response, bytes_after_a_chunked_body_never_return_the_connection_to_the_pool,
     .timeout = H_TEST_TIMEOUT)
{
    cat_resp_run(&(struct cat_resp){
        CAT_REPLY("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
                  "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nsmuggled\n"),
        .status = 200, .body = "ok", .pool = CAT_POOL_CLOSED});
}

Test(catalogue_response, a_chunked_body_cut_by_a_close_never_gets_its_last_chunk,
     .timeout = H_TEST_TIMEOUT)
{
    cat_resp_run(&(struct cat_resp){
        CAT_REPLY("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"),
        .action = H_FAKE_CLOSE, .status = 0, .pool = CAT_POOL_CLOSED});
}

Test(catalogue_response, a_content_length_body_cut_by_a_close_is_cut_for_the_client,
     .timeout = H_TEST_TIMEOUT)
{
    cat_resp_run(&(struct cat_resp){CAT_REPLY("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"),
                                    .action = H_FAKE_CLOSE, .status = 0, .pool = CAT_POOL_CLOSED});
}

/* ------------------------------------------------ 1xx (RFC 9110 15.2) */

/* A 1xx has no body whatever it says: the final response follows at once. */
Test(catalogue_response, a_100_with_a_content_length_has_no_body, .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f = h_fake_start1("HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\n"
                                     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                                     H_FAKE_KEEP);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(f)}}});
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    cr_assert(eq(int, h_get(c, "/", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 100));
    cr_assert(eq(ptr, (void *)h_header(&m, "Content-Length"), NULL), "%s", m.head);
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, m.body, "ok"));
    cr_assert(eq(int, h_conn_wait(c, 200), H_OPEN));
    h_proxy_finish(p);
}

/* A proxy must not send a 1xx to an HTTP/1.0 client (RFC 9110 15.2). */
Test(catalogue_response, interim_responses_never_reach_an_http_1_0_client,
     .timeout = H_TEST_TIMEOUT)
{
    cat_resp_run(&(struct cat_resp){
        .req = "GET /r1 HTTP/1.0\r\nHost: " H_HOST "\r\n\r\n",
        CAT_REPLY("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        .status = 200,
        .body = "ok",
        .closed = true});
}

#define FLOOD 500

/* RFC 9110 15.2 sets no bound: each interim response is relayed in order (output bounded by
 * back-pressure), then the final one, and the node connection stays usable. */
Test(catalogue_response, a_flood_of_interim_responses_is_relayed_then_the_final_one,
     .timeout = H_TEST_TIMEOUT)
{
    char *reply = h_alloc(FLOOD * 30 + 64);
    struct h_fake *f;
    struct h_proxy *p;
    struct h_conn *c;
    struct h_msg m;

    for (int i = 0; i < FLOOD; i++)
        strcat(reply, "HTTP/1.1 100 Continue\r\n\r\n");
    strcat(reply, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    f = h_fake_start1(reply, H_FAKE_KEEP);
    p = h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(f)}}});
    c = h_connect(p->port);
    cr_assert(eq(int, h_get(c, "/", &m), 0), "%s", m.error);
    for (int i = 0; i < FLOOD; i++) {
        cr_assert(eq(int, m.status, 100), "response %d: %d", i + 1, m.status);
        cr_assert(eq(int, h_read_response(c, &m), 0), "after %d interim: %s", i + 1, m.error);
    }
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, m.body, "ok"));
    cr_assert(eq(int, h_conn_wait(c, 200), H_OPEN));
    h_proxy_finish(p);
}

/* ------------------------------------------------ header lines */

Test(catalogue_response, a_header_line_past_64_kib_gets_502, .timeout = H_TEST_TIMEOUT)
{
    char *reply = h_alloc(70000 + 100);

    strcpy(reply, "HTTP/1.1 200 OK\r\nX-Big: ");
    memset(reply + strlen(reply), 'a', 70000);
    strcat(reply, "\r\nContent-Length: 2\r\n\r\nok");
    cat_resp_run(&(struct cat_resp){
        .reply = reply, .reply_len = strlen(reply), .status = 502, .pool = CAT_POOL_CLOSED});
}

BAD_GATEWAY(a_bare_cr_in_a_header_value_gets_502,
            "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok")
BAD_GATEWAY(a_bare_lf_in_a_header_value_gets_502,
            "HTTP/1.1 200 OK\r\nX-A: a\nSet-Cookie: b\r\nContent-Length: 2\r\n\r\nok")
BAD_GATEWAY(a_nul_in_a_header_value_gets_502,
            "HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 2\r\n\r\nok")
BAD_GATEWAY(a_space_before_a_colon_gets_502,
            "HTTP/1.1 200 OK\r\nX-A : a\r\nContent-Length: 2\r\n\r\nok")
BAD_GATEWAY(a_space_before_content_length_colon_gets_502,
            "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok")
