/* tests/integration/test_upstream_faults.c -- nodes that fail, hang or answer badly. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <ctype.h>
#include <string.h>

#include "tests/integration/harness.h"

TestSuite(upstream_faults, .init = h_setup, .fini = h_teardown);

/* Starts crossfade in front of the fake, sends one GET and returns the response. */
static void
get_through(struct h_fake *f, const struct h_proxy_opts *extra, struct h_msg *m,
            struct h_proxy **out)
{
    struct h_proxy_opts o = extra != NULL ? *extra : (struct h_proxy_opts){.x = {{0}}};
    struct h_proxy *p;

    o.x[0] = (struct h_node){.port = h_fake_port(f)};
    p = h_proxy_start(&o);
    cr_assert(eq(int, h_get(h_connect(p->port), "/", m), 0), "%s", m->error);
    *out = p;
}

/* A node answering `reply` (then doing `action`) makes the client get `status`. */
static void
check_fault(const char *reply, enum h_fake_action action, int status)
{
    struct h_fake *f = h_fake_start1(reply, action);
    struct h_proxy *p;
    struct h_msg m;

    get_through(f, NULL, &m, &p);
    cr_assert(eq(int, m.status, status), "status %d, expected %d", m.status, status);
    h_proxy_finish(p);
}

Test(upstream_faults, a_node_refusing_connections_gets_502, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{h_free_port()}}});
    struct h_msg m;

    cr_assert(eq(int, h_get(h_connect(p->port), "/", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 502));
    h_proxy_finish(p);
}

Test(upstream_faults, an_error_response_has_a_short_text_body, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{h_free_port()}}});
    struct h_msg m;

    cr_assert(eq(int, h_get(h_connect(p->port), "/", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 502));
    cr_assert(lt(sz, m.body_len, (size_t)200), "a %zu-byte error body", m.body_len);
    for (size_t i = 0; i < m.body_len; i++) {
        unsigned char ch = (unsigned char)m.body[i];
        bool text = isprint(ch) || isspace(ch);

        cr_assert(text, "byte %zu of the error body is not text: 0x%02x", i, ch);
    }
    h_proxy_finish(p);
}

Test(upstream_faults, a_node_that_never_answers_gets_504_after_upstream_response,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f = h_fake_start1("", H_FAKE_SILENT);
    struct h_proxy *p = h_proxy_start(
        &(struct h_proxy_opts){.x = {{h_fake_port(f)}}, .upstream_response_ms = 1000});
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    h_sendf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", H_HOST);
    cr_assert(eq(int, h_read_response_ex(c, &m, 0, 5000, NULL, NULL), 0),
              "no answer within 5 s (upstream_response: 1s): %s", m.error);
    cr_assert(eq(int, m.status, 504));
    cr_assert(eq(sz, h_fake_requests(f, 0), (size_t)1), "the request did not reach the node");
    h_proxy_finish(p);
}

Test(upstream_faults, a_node_closing_without_answering_gets_502, .timeout = H_TEST_TIMEOUT)
{
    check_fault("", H_FAKE_CLOSE_NOW, 502);
}

Test(upstream_faults, an_invalid_response_head_gets_502, .timeout = H_TEST_TIMEOUT)
{
    check_fault("THIS IS NOT HTTP\r\n\r\n", H_FAKE_KEEP, 502);
}

Test(upstream_faults, a_response_head_cut_short_by_a_close_gets_502, .timeout = H_TEST_TIMEOUT)
{
    check_fault("HTTP/1.1 200 OK\r\nContent-Len", H_FAKE_CLOSE, 502);
}

Test(upstream_faults, a_response_with_status_99_gets_502, .timeout = H_TEST_TIMEOUT)
{
    check_fault("HTTP/1.1 099 Too Early\r\nContent-Length: 3\r\n\r\nok\n", H_FAKE_KEEP, 502);
}

Test(upstream_faults, a_response_with_transfer_encoding_chunked_twice_gets_502,
     .timeout = H_TEST_TIMEOUT)
{
    check_fault("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"
                "3\r\nok\n\r\n0\r\n\r\n",
                H_FAKE_KEEP, 502);
}

Test(upstream_faults, a_204_with_a_content_length_cannot_smuggle_a_response_to_the_next_request,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_fake_reply replies[] = {
        {.bytes = "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello"
                  "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nsmuggled\n",
         .action = H_FAKE_KEEP},
        {.bytes = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nfresh\n", .action = H_FAKE_KEEP},
    };
    struct h_fake *f = h_fake_start(replies, 2);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(f)}}});
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    cr_assert(eq(int, h_get(c, "/first", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 204));
    cr_assert(eq(int, h_conn_wait(c, 300), H_OPEN), "bytes followed the 204: \"%.*s\"",
              (int)h_pending(c), c->buf + c->off);
    cr_assert(eq(int, h_get(c, "/second", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, m.body, "fresh\n"), "the second request got the smuggled response");
    cr_assert(eq(sz, h_fake_requests(f, 0), (size_t)1),
              "the connection that sent bytes after its 204 was reused");
    h_proxy_finish(p);
}

Test(upstream_faults, bytes_after_a_complete_response_are_dropped_and_end_that_connection,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_fake_reply replies[] = {
        {.bytes = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\nEXTRA BYTES",
         .action = H_FAKE_KEEP},
        {.bytes = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nfresh\n", .action = H_FAKE_KEEP},
    };
    struct h_fake *f = h_fake_start(replies, 2);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(f)}}});
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    cr_assert(eq(int, h_get(c, "/first", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, m.body, "ok\n"));
    cr_assert(eq(int, h_conn_wait(c, 300), H_OPEN), "bytes followed the response: \"%.*s\"",
              (int)h_pending(c), c->buf + c->off);
    cr_assert(eq(int, h_get(c, "/second", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, m.body, "fresh\n"));
    cr_assert(eq(sz, h_fake_requests(f, 0), (size_t)1),
              "the connection that sent extra bytes was reused");
    h_proxy_finish(p);
}

/* Found by fuzz_resp (tests/fuzz/): the proxy's own 502 to a HEAD request carried its text body,
 * which a client reads as the start of the next response on a kept connection (RFC 9110 9.3.2:
 * no content in a response to HEAD). */
Test(upstream_faults, a_502_to_a_head_request_has_no_body_and_the_connection_goes_on,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_fake_reply replies[] = {
        {.bytes = "THIS IS NOT HTTP\r\n\r\n", .action = H_FAKE_CLOSE},
        {.bytes = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nfresh\n", .action = H_FAKE_KEEP},
    };
    struct h_fake *f = h_fake_start(replies, 2);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(f)}}});
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    cr_assert(eq(int, h_send_str(c, "HEAD /first HTTP/1.1\r\nHost: " H_HOST "\r\n\r\n"), 0));
    cr_assert(eq(int, h_read_response_ex(c, &m, H_NO_BODY, 5000, NULL, NULL), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 502));
    cr_assert(eq(int, h_conn_wait(c, 300), H_OPEN), "bytes followed the 502 to HEAD: \"%.*s\"",
              (int)h_pending(c), c->buf + c->off);
    cr_assert(eq(int, h_get(c, "/second", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, m.body, "fresh\n"), "the second request read what followed the 502");
    h_proxy_finish(p);
}
