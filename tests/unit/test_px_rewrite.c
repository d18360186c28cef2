/* tests/unit/test_px_rewrite.c -- the heads the proxy forwards: checks, header rewriting, framing.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <string.h>

#include "proxy/px.h"

#define MAX_HDRS 32

/* Parses "Name: value" lines (\n separated) into a header table over a private copy. */
struct hset {
    char text[4096];
    struct xf_hdr h[MAX_HDRS];
    size_t n;
};

static void
hset_parse(struct hset *s, const char *lines)
{
    char *p;

    strncpy(s->text, lines, sizeof(s->text) - 1);
    s->n = 0;
    p = s->text;
    while (*p != '\0' && s->n < MAX_HDRS) {
        char *nl = strchr(p, '\n'), *colon = strchr(p, ':');
        char *end = nl ? nl : p + strlen(p);
        char *v = colon + 1;
        while (*v == ' ')
            v++;
        s->h[s->n].name = p;
        s->h[s->n].name_len = (uint32_t)(colon - p);
        s->h[s->n].value = v;
        s->h[s->n].value_len = (uint32_t)(end - v);
        s->n++;
        p = nl ? nl + 1 : end;
    }
}

struct req_case {
    struct hset hs;
    struct px_req_in in;
    struct px_req_out res;
    struct px_buf out;
    const char *why;
    int status;
};

static char *
req_run(struct req_case *k, int method, int minor, const char *url, const char *headers)
{
    hset_parse(&k->hs, headers);
    k->in = (struct px_req_in){.method = (uint8_t)method,
                               .minor = (uint8_t)minor,
                               .url = url,
                               .url_len = strlen(url),
                               .hdrs = k->hs.h,
                               .n_hdrs = k->hs.n,
                               .client_ip = "192.0.2.7",
                               .proto = "http",
                               .fallback_host = "10.0.0.1:8000",
                               .max_body = 1000};
    memset(&k->out, 0, sizeof(k->out));
    k->why = NULL;
    k->status = px_rewrite_request(&k->in, &k->out, &k->res, &k->why);
    px_buf_append(&k->out, "", 1); /* NUL-terminate for the string assertions */
    return k->out.data;
}

static int
req_status(int method, int minor, const char *url, const char *headers)
{
    struct req_case k;
    req_run(&k, method, minor, url, headers);
    px_buf_free(&k.out);
    return k.status;
}

Test(px_rewrite_request, keeps_host_and_end_to_end_headers_in_order)
{
    struct req_case k;
    char *out = req_run(&k, HTTP_GET, 1, "/a?b=c", "Host: api.example\nAccept: */*\nX-Id: 7");

    cr_assert(eq(int, k.status, 0));
    cr_assert(eq(str, out,
                 "GET /a?b=c HTTP/1.1\r\nHost: api.example\r\nAccept: */*\r\nX-Id: 7\r\n"
                 "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\n"
                 "X-Forwarded-Host: api.example\r\n\r\n"));
    px_buf_free(&k.out);
}

Test(px_rewrite_request, drops_hop_by_hop_headers_and_those_connection_names)
{
    struct req_case k;
    char *out = req_run(&k, HTTP_GET, 1, "/",
                        "Host: h\nConnection: keep-alive, X-Secret\nX-Secret: s\nKeep-Alive: 5\n"
                        "Proxy-Connection: keep-alive\nTE: trailers\nTrailer: X-T\nUpgrade: ws\n"
                        "X-Kept: yes");

    cr_assert(eq(int, k.status, 0));
    cr_assert(ne(ptr, strstr(out, "X-Kept: yes\r\n"), NULL));
    const char *gone[] = {"Connection", "X-Secret", "Keep-Alive", "Proxy-Connection",
                          "TE:",        "Trailer",  "Upgrade"};
    for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
        cr_assert(eq(ptr, strstr(out, gone[i]), NULL), "%s forwarded in:\n%s", gone[i], out);
    cr_assert_not(k.res.close);
    px_buf_free(&k.out);
}

Test(px_rewrite_request, appends_the_client_to_x_forwarded_for_and_sets_proto_and_host)
{
    struct req_case k;
    char *out = req_run(&k, HTTP_GET, 1, "/",
                        "Host: h:81\nX-Forwarded-For: 203.0.113.1\nX-Forwarded-For: 10.1.1.1\n"
                        "X-Forwarded-Proto: https\nX-Forwarded-Host: evil");

    cr_assert(ne(ptr, strstr(out, "X-Forwarded-For: 203.0.113.1, 10.1.1.1, 192.0.2.7\r\n"), NULL),
              "%s", out);
    cr_assert(ne(ptr, strstr(out, "X-Forwarded-Proto: http\r\n"), NULL));
    cr_assert(eq(ptr, strstr(out, "https"), NULL));
    cr_assert(ne(ptr, strstr(out, "X-Forwarded-Host: h:81\r\n"), NULL));
    cr_assert(eq(ptr, strstr(out, "evil"), NULL));
    px_buf_free(&k.out);
}

Test(px_rewrite_request, writes_its_own_content_length_from_the_parsed_value)
{
    struct req_case k;
    char *out = req_run(&k, HTTP_POST, 1, "/", "Host: h\nContent-Length: 5, 5\nContent-Type: a/b");

    cr_assert(eq(int, k.status, 0));
    cr_assert(ne(ptr, strstr(out, "Content-Length: 5\r\n"), NULL), "%s", out);
    cr_assert(eq(ptr, strstr(out, "5, 5"), NULL));
    cr_assert(k.res.has_length);
    cr_assert(eq(u64, k.res.content_length, 5));
    cr_assert_not(k.res.chunked);
    px_buf_free(&k.out);
}

Test(px_rewrite_request, forwards_a_chunked_body_as_chunked)
{
    struct req_case k;
    char *out = req_run(&k, HTTP_POST, 1, "/", "Host: h\nTransfer-Encoding: Chunked");

    cr_assert(eq(int, k.status, 0));
    cr_assert(k.res.chunked);
    cr_assert(ne(ptr, strstr(out, "Transfer-Encoding: chunked\r\n"), NULL), "%s", out);
    cr_assert(eq(ptr, strstr(out, "Chunked"), NULL));
    px_buf_free(&k.out);
}

Test(px_rewrite_request, turns_an_absolute_target_into_origin_form_with_its_authority_as_host)
{
    struct req_case k;
    char *out = req_run(&k, HTTP_GET, 1, "http://api.example:8080/v1?x", "Host: other");

    cr_assert(eq(int, k.status, 0));
    cr_assert(eq(int, strncmp(out, "GET /v1?x HTTP/1.1\r\nHost: api.example:8080\r\n", 44), 0),
              "%s", out);
    cr_assert(eq(ptr, strstr(out, "other"), NULL));
    px_buf_free(&k.out);
}

Test(px_rewrite_request, gives_an_http_1_0_request_without_host_the_node_as_host)
{
    struct req_case k;
    char *out = req_run(&k, HTTP_GET, 0, "/", "Expect: 100-continue");

    cr_assert(eq(int, k.status, 0));
    cr_assert(eq(int, strncmp(out, "GET / HTTP/1.1\r\nHost: 10.0.0.1:8000\r\n", 37), 0), "%s", out);
    cr_assert(eq(ptr, strstr(out, "Expect"), NULL), "a 1.0 request's Expect was forwarded");
    cr_assert(not(k.res.expect_100), "nobody waits for a 100 in HTTP/1.0");
    px_buf_free(&k.out);
}

Test(px_rewrite_request, keeps_expect_100_continue_of_http_1_1)
{
    struct req_case k;
    char *out = req_run(&k, HTTP_PUT, 1, "/", "Host: h\nExpect: 100-continue\nContent-Length: 3");

    cr_assert(ne(ptr, strstr(out, "Expect: 100-continue\r\n"), NULL));
    cr_assert(k.res.expect_100, "the client waits for the node's 100: its body is not buffered");
    px_buf_free(&k.out);
    out = req_run(&k, HTTP_PUT, 1, "/", "Host: h\nContent-Length: 3");
    cr_assert(not(k.res.expect_100));
    px_buf_free(&k.out);
}

Test(px_rewrite_request, forwards_a_clients_connection_close)
{
    struct req_case k;
    char *out = req_run(&k, HTTP_GET, 1, "/", "Host: h\nConnection: Close");

    cr_assert(k.res.close);
    cr_assert(ne(ptr, strstr(out, "Connection: close\r\n"), NULL));
    px_buf_free(&k.out);
}

Test(px_rewrite_request, refuses_framing_conflicts_with_400)
{
    cr_assert(
        eq(int,
           req_status(HTTP_POST, 1, "/", "Host: h\nContent-Length: 3\nTransfer-Encoding: chunked"),
           400));
    cr_assert(eq(
        int, req_status(HTTP_POST, 1, "/", "Host: h\nContent-Length: 3\nContent-Length: 4"), 400));
    cr_assert(
        eq(int, req_status(HTTP_POST, 1, "/", "Host: h\nTransfer-Encoding: chunked, gzip"), 400));
    cr_assert(eq(int, req_status(HTTP_POST, 1, "/", "Host: h\nTransfer-Encoding: chunked, chunked"),
                 400));
    cr_assert(eq(int, req_status(HTTP_POST, 0, "/", "Transfer-Encoding: chunked"), 400));
    cr_assert(eq(int, req_status(HTTP_POST, 1, "/", "Host: h\nContent-Length: -1"), 400));
}

Test(px_rewrite_request, refuses_chunked_that_the_parser_does_not_frame_as_chunked)
{
    struct req_case k;

    hset_parse(&k.hs, "Host: a\nTransfer-Encoding: chunked");
    k.in = (struct px_req_in){.method = HTTP_POST,
                              .minor = 1,
                              .url = "/",
                              .url_len = 1,
                              .hdrs = k.hs.h,
                              .n_hdrs = k.hs.n,
                              .client_ip = "192.0.2.7",
                              .proto = "http",
                              .fallback_host = "n",
                              .parser_te_other = true};
    memset(&k.out, 0, sizeof(k.out));
    cr_assert(eq(int, px_rewrite_request(&k.in, &k.out, &k.res, &k.why), 400));
    px_buf_free(&k.out);
}

Test(px_rewrite_request, answers_unknown_transfer_codings_with_501)
{
    cr_assert(
        eq(int, req_status(HTTP_POST, 1, "/", "Host: h\nTransfer-Encoding: gzip, chunked"), 501));
}

Test(px_rewrite_request, refuses_missing_repeated_or_invalid_host_with_400)
{
    cr_assert(eq(int, req_status(HTTP_GET, 1, "/", "Accept: */*"), 400));
    cr_assert(eq(int, req_status(HTTP_GET, 1, "/", "Host: a\nHost: a"), 400));
    cr_assert(eq(int, req_status(HTTP_GET, 1, "/", "Host: a b"), 400));
    cr_assert(eq(int, req_status(HTTP_GET, 1, "/", "Host: a/b"), 400));
    cr_assert(eq(int, req_status(HTTP_GET, 1, "http://a b/x", "Host: a"), 400));
}

Test(px_rewrite_request, refuses_connect_and_bad_targets)
{
    cr_assert(eq(int, req_status(HTTP_CONNECT, 1, "a:443", "Host: a:443"), 501));
    cr_assert(eq(int, req_status(HTTP_GET, 1, "*", "Host: a"), 400));
    cr_assert(eq(int, req_status(HTTP_OPTIONS, 1, "*", "Host: a"), 0));
    cr_assert(eq(int, req_status(HTTP_GET, 1, "a/b", "Host: a"), 400));
    cr_assert(eq(int, req_status(HTTP_GET, 1, "/a#b", "Host: a"), 400));
    cr_assert(eq(int, req_status(HTTP_GET, 1, "/a?q#b", "Host: a"), 400));
    cr_assert(eq(int, req_status(HTTP_GET, 1, "http://a/b#c", "Host: a"), 400));
    cr_assert(eq(int, req_status(HTTP_GET, 1, "/", "Host: a\nBad Name: x"), 400));
}

Test(px_rewrite_request, refuses_a_declared_body_over_the_limit_with_413)
{
    cr_assert(eq(int, req_status(HTTP_POST, 1, "/", "Host: h\nContent-Length: 1001"), 413));
    cr_assert(eq(int, req_status(HTTP_POST, 1, "/", "Host: h\nContent-Length: 1000"), 0));
}

/* The head forwarded for an upgrade request: asserts px_rewrite_request accepted it. */
static char *
upgrade_run(struct req_case *k, int method, int minor, const char *headers)
{
    char *out = req_run(k, method, minor, "/ws", headers);

    cr_assert(eq(int, k->status, 0), "refused (%s)", k->why != NULL ? k->why : "");
    return out;
}

/* Whether the forwarded head offers no upgrade at all: no Upgrade field, no upgrade token. */
static void
assert_no_upgrade(const struct req_case *k, const char *out)
{
    cr_assert(eq(sz, k->res.upgrade_len, (size_t)0), "offer \"%s\" for:\n%s", k->res.upgrade, out);
    cr_assert(eq(ptr, strstr(out, "Upgrade"), NULL), "an Upgrade field reached the node:\n%s", out);
    cr_assert(eq(ptr, strstr(out, "upgrade"), NULL), "an upgrade token reached the node:\n%s", out);
}

Test(px_rewrite_request, forwards_a_websocket_upgrade_with_connection_upgrade)
{
    struct req_case k;
    char *out =
        upgrade_run(&k, HTTP_GET, 1,
                    "Host: h\nConnection: Upgrade\nUpgrade: websocket\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13");

    cr_assert(ne(ptr, strstr(out, "\r\nConnection: upgrade\r\n"), NULL), "%s", out);
    cr_assert(ne(ptr, strstr(out, "\r\nUpgrade: websocket\r\n"), NULL), "%s", out);
    cr_assert(ne(ptr, strstr(out, "\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"), NULL),
              "%s", out);
    cr_assert(ne(ptr, strstr(out, "\r\nSec-WebSocket-Version: 13\r\n"), NULL), "%s", out);
    cr_assert(eq(ptr, strstr(out, "Connection: Upgrade"), NULL), "the client's field went on");
    cr_assert(eq(str, k.res.upgrade, "websocket"));
    cr_assert(eq(sz, k.res.upgrade_len, strlen("websocket")));
    cr_assert_not(k.res.close);
    px_buf_free(&k.out);
}

Test(px_rewrite_request, joins_the_offered_protocols_of_every_upgrade_field)
{
    struct req_case k;
    char *out = upgrade_run(&k, HTTP_GET, 1,
                            "Host: h\nConnection: keep-alive, upgrade\nUpgrade: websocket , foo/2\n"
                            "Upgrade: bar");

    cr_assert(ne(ptr, strstr(out, "\r\nUpgrade: websocket, foo/2, bar\r\n"), NULL), "%s", out);
    cr_assert(eq(str, k.res.upgrade, "websocket, foo/2, bar"));
    px_buf_free(&k.out);
}

Test(px_rewrite_request, drops_an_upgrade_that_offers_only_h2c)
{
    struct req_case k;
    char *out = upgrade_run(&k, HTTP_GET, 1,
                            "Host: h\nConnection: Upgrade, HTTP2-Settings\nUpgrade: h2c\n"
                            "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA");

    assert_no_upgrade(&k, out);
    cr_assert(eq(ptr, strstr(out, "h2c"), NULL), "%s", out);
    cr_assert(eq(ptr, strstr(out, "HTTP2-Settings"), NULL), "%s", out);
    px_buf_free(&k.out);
}

Test(px_rewrite_request, takes_h2c_out_of_an_offer_and_keeps_the_rest)
{
    struct req_case k;
    char *out =
        upgrade_run(&k, HTTP_GET, 1, "Host: h\nConnection: Upgrade\nUpgrade: H2C, websocket");

    cr_assert(ne(ptr, strstr(out, "\r\nUpgrade: websocket\r\n"), NULL), "%s", out);
    cr_assert(ne(ptr, strstr(out, "\r\nConnection: upgrade\r\n"), NULL), "%s", out);
    cr_assert(eq(ptr, strstr(out, "2C"), NULL), "%s", out);
    cr_assert(eq(str, k.res.upgrade, "websocket"));
    px_buf_free(&k.out);
}

Test(px_rewrite_request, drops_an_upgrade_that_connection_does_not_name)
{
    struct req_case k;
    char *out = upgrade_run(&k, HTTP_GET, 1, "Host: h\nUpgrade: websocket");

    assert_no_upgrade(&k, out);
    px_buf_free(&k.out);
    out = upgrade_run(&k, HTTP_GET, 1, "Host: h\nConnection: keep-alive\nUpgrade: websocket");
    assert_no_upgrade(&k, out);
    px_buf_free(&k.out);
    /* Connection names upgrade, but there is no Upgrade field to go with it. */
    out = upgrade_run(&k, HTTP_GET, 1, "Host: h\nConnection: upgrade");
    assert_no_upgrade(&k, out);
    px_buf_free(&k.out);
}

Test(px_rewrite_request, drops_the_upgrade_of_an_http_1_0_request)
{
    struct req_case k;
    char *out = upgrade_run(&k, HTTP_GET, 0, "Host: h\nConnection: upgrade\nUpgrade: websocket");

    assert_no_upgrade(&k, out);
    px_buf_free(&k.out);
}

Test(px_rewrite_request, drops_the_upgrade_of_a_head_request)
{
    struct req_case k;
    char *out = upgrade_run(&k, HTTP_HEAD, 1, "Host: h\nConnection: upgrade\nUpgrade: websocket");

    assert_no_upgrade(&k, out);
    px_buf_free(&k.out);
}

Test(px_rewrite_request, drops_the_upgrade_of_a_request_with_a_body)
{
    struct req_case k;
    char *out = upgrade_run(&k, HTTP_POST, 1,
                            "Host: h\nConnection: upgrade\nUpgrade: websocket\nContent-Length: 5");

    assert_no_upgrade(&k, out);
    cr_assert(ne(ptr, strstr(out, "Content-Length: 5\r\n"), NULL), "%s", out);
    px_buf_free(&k.out);
    out = upgrade_run(&k, HTTP_POST, 1,
                      "Host: h\nConnection: upgrade\nUpgrade: websocket\n"
                      "Transfer-Encoding: chunked");
    assert_no_upgrade(&k, out);
    cr_assert(k.res.chunked);
    px_buf_free(&k.out);
    /* An empty body is no body: the upgrade goes on. */
    out = upgrade_run(&k, HTTP_GET, 1,
                      "Host: h\nConnection: upgrade\nUpgrade: websocket\nContent-Length: 0");
    cr_assert(ne(ptr, strstr(out, "\r\nUpgrade: websocket\r\n"), NULL), "%s", out);
    cr_assert(eq(str, k.res.upgrade, "websocket"));
    px_buf_free(&k.out);
}

Test(px_rewrite_request, forwards_close_and_upgrade_in_one_connection_field)
{
    struct req_case k;
    char *out =
        upgrade_run(&k, HTTP_GET, 1, "Host: h\nConnection: close, Upgrade\nUpgrade: websocket");

    cr_assert(k.res.close);
    cr_assert(ne(ptr, strstr(out, "\r\nConnection: close, upgrade\r\n"), NULL), "%s", out);
    cr_assert(ne(ptr, strstr(out, "\r\nUpgrade: websocket\r\n"), NULL), "%s", out);
    cr_assert(eq(ptr, strstr(out, "Connection: close\r\n"), NULL), "%s", out);
    cr_assert(eq(str, k.res.upgrade, "websocket"));
    px_buf_free(&k.out);
}

struct resp_case {
    struct hset hs;
    struct px_resp_out res;
    struct px_buf out;
    const char *why;
    int rc;
};

static char *
resp_run(struct resp_case *k, int status, int method, int minor, bool ka, const char *headers)
{
    struct px_resp_in in;

    hset_parse(&k->hs, headers);
    in = (struct px_resp_in){.status = status,
                             .reason = "R",
                             .reason_len = 1,
                             .http_major = 1,
                             .hdrs = k->hs.h,
                             .n_hdrs = k->hs.n,
                             .req_method = (uint8_t)method,
                             .client_minor = (uint8_t)minor,
                             .client_ka = ka};
    memset(&k->out, 0, sizeof(k->out));
    k->why = NULL;
    k->rc = px_rewrite_response(&in, &k->out, &k->res, &k->why);
    px_buf_append(&k->out, "", 1);
    return k->out.data;
}

static int
resp_rc(int status, const char *headers)
{
    struct resp_case k;
    resp_run(&k, status, HTTP_GET, 1, true, headers);
    px_buf_free(&k.out);
    return k.rc;
}

Test(px_rewrite_response, keeps_content_length_and_drops_hop_by_hop)
{
    struct resp_case k;
    char *out = resp_run(&k, 200, HTTP_GET, 1, true,
                         "Content-Length: 3\nConnection: X-Hop, keep-alive\nX-Hop: s\n"
                         "Keep-Alive: timeout=5\nUpgrade: foo\nProxy-Connection: x\nTrailer: X-T\n"
                         "X-E2E: kept");

    cr_assert(eq(int, k.rc, 0));
    cr_assert(eq(str, out, "HTTP/1.1 200 R\r\nX-E2E: kept\r\nContent-Length: 3\r\n\r\n"));
    cr_assert(k.res.ka);
    cr_assert_not(k.res.chunked_out || k.res.close_out || k.res.no_body);
    px_buf_free(&k.out);
}

Test(px_rewrite_response, rechunks_for_http_1_1_and_dechunks_to_close_for_http_1_0)
{
    struct resp_case k;
    char *out = resp_run(&k, 200, HTTP_GET, 1, true, "Transfer-Encoding: chunked");

    cr_assert(k.res.chunked_out);
    cr_assert(ne(ptr, strstr(out, "Transfer-Encoding: chunked\r\n"), NULL));
    px_buf_free(&k.out);

    out = resp_run(&k, 200, HTTP_GET, 0, true, "Transfer-Encoding: chunked");
    cr_assert(k.res.close_out);
    cr_assert_not(k.res.ka);
    cr_assert(eq(ptr, strstr(out, "Transfer-Encoding"), NULL), "chunked to 1.0: %s", out);
    cr_assert(ne(ptr, strstr(out, "Connection: close\r\n"), NULL));
    px_buf_free(&k.out);
}

Test(px_rewrite_response, turns_a_close_delimited_body_into_chunked_for_http_1_1)
{
    struct resp_case k;
    char *out = resp_run(&k, 200, HTTP_GET, 1, true, "Content-Type: a/b");

    cr_assert(k.res.chunked_out);
    cr_assert(k.res.ka);
    cr_assert(ne(ptr, strstr(out, "Transfer-Encoding: chunked\r\n"), NULL));
    px_buf_free(&k.out);
}

Test(px_rewrite_response, says_keep_alive_to_an_http_1_0_client_that_keeps_it)
{
    struct resp_case k;
    char *out = resp_run(&k, 200, HTTP_GET, 0, true, "Content-Length: 2");

    cr_assert(k.res.ka);
    cr_assert(ne(ptr, strstr(out, "Connection: keep-alive\r\n"), NULL));
    px_buf_free(&k.out);
    out = resp_run(&k, 200, HTTP_GET, 1, false, "Content-Length: 2");
    cr_assert(ne(ptr, strstr(out, "Connection: close\r\n"), NULL));
    px_buf_free(&k.out);
}

Test(px_rewrite_response, knows_no_body_follows_head_204_and_304)
{
    struct resp_case k;
    char *out = resp_run(&k, 200, HTTP_HEAD, 1, true, "Content-Length: 1234");

    cr_assert(k.res.no_body);
    cr_assert(ne(ptr, strstr(out, "Content-Length: 1234\r\n"), NULL), "HEAD keeps the length");
    px_buf_free(&k.out);
    out = resp_run(&k, 204, HTTP_GET, 1, true, "Content-Length: 5");
    cr_assert(k.res.no_body);
    cr_assert(eq(ptr, strstr(out, "Content-Length"), NULL), "a 204 carried a length: %s", out);
    px_buf_free(&k.out);
    out = resp_run(&k, 304, HTTP_GET, 1, true, "Content-Length: 5");
    cr_assert(k.res.no_body);
    px_buf_free(&k.out);
}

Test(px_rewrite_response, forwards_1xx_to_http_1_1_clients_only)
{
    struct resp_case k;
    char *out = resp_run(&k, 100, HTTP_PUT, 1, true, "");

    cr_assert(k.res.interim);
    cr_assert(eq(str, out, "HTTP/1.1 100 R\r\n\r\n"));
    px_buf_free(&k.out);
    out = resp_run(&k, 100, HTTP_PUT, 0, true, "");
    cr_assert(k.res.interim);
    cr_assert(eq(str, out, ""));
    px_buf_free(&k.out);
}

Test(px_rewrite_response, refuses_chunked_that_the_parser_does_not_frame_as_chunked)
{
    struct hset hs;
    struct px_buf out = {0};
    struct px_resp_out res;
    const char *why = NULL;
    struct px_resp_in in;

    hset_parse(&hs, "Transfer-Encoding: chunked");
    in = (struct px_resp_in){.status = 200,
                             .reason = "R",
                             .reason_len = 1,
                             .http_major = 1,
                             .hdrs = hs.h,
                             .n_hdrs = hs.n,
                             .req_method = HTTP_GET,
                             .client_minor = 1,
                             .client_ka = true,
                             .parser_te_other = true};
    cr_assert(eq(int, px_rewrite_response(&in, &out, &res, &why), -1));
    px_buf_free(&out);
}

Test(px_rewrite_response, refuses_bad_statuses_and_framing)
{
    cr_assert(eq(int, resp_rc(99, "Content-Length: 0"), -1));
    cr_assert(eq(int, resp_rc(600, "Content-Length: 0"), -1));
    cr_assert(eq(int, resp_rc(101, "Upgrade: x"), -1));
    cr_assert(eq(int, resp_rc(200, "Transfer-Encoding: chunked, chunked"), -1));
    cr_assert(eq(int, resp_rc(200, "Transfer-Encoding: gzip"), -1));
    cr_assert(eq(int, resp_rc(200, "Transfer-Encoding: chunked\nContent-Length: 3"), -1));
    cr_assert(eq(int, resp_rc(200, "Content-Length: 3\nContent-Length: 4"), -1));
    cr_assert(eq(int, resp_rc(200, "Bad Name: x"), -1));
    cr_assert(eq(int, resp_rc(200, "Content-Length: 3"), 0));
}

Test(px_rewrite_response, names_the_route_in_the_expose_header_when_asked)
{
    struct hset hs;
    struct px_resp_in in;
    struct px_resp_out res;
    struct px_buf out = {0};
    const char *why = NULL;

    hset_parse(&hs, "Content-Length: 0");
    in = (struct px_resp_in){.status = 200,
                             .reason = "OK",
                             .reason_len = 2,
                             .http_major = 1,
                             .hdrs = hs.h,
                             .n_hdrs = hs.n,
                             .req_method = HTTP_GET,
                             .client_minor = 1,
                             .client_ka = true,
                             .expose_name = "X-Crossfade-Route",
                             .expose_value = "y 10.0.1.1:8000"};
    cr_assert(eq(int, px_rewrite_response(&in, &out, &res, &why), 0));
    px_buf_append(&out, "", 1);
    cr_assert(ne(ptr, strstr(out.data, "X-Crossfade-Route: y 10.0.1.1:8000\r\n"), NULL), "%s",
              out.data);
    px_buf_free(&out);
}

/* A 101 to a request that offered `offer` (NULL: none). */
static char *
switch_run(struct resp_case *k, const char *offer, const char *headers)
{
    struct px_resp_in in;

    hset_parse(&k->hs, headers);
    in = (struct px_resp_in){.status = 101,
                             .reason = "Switching Protocols",
                             .reason_len = strlen("Switching Protocols"),
                             .http_major = 1,
                             .hdrs = k->hs.h,
                             .n_hdrs = k->hs.n,
                             .req_method = HTTP_GET,
                             .client_minor = 1,
                             .client_ka = true,
                             .upgrade_offer = offer};
    memset(&k->out, 0, sizeof(k->out));
    memset(&k->res, 0, sizeof(k->res));
    k->why = NULL;
    k->rc = px_rewrite_response(&in, &k->out, &k->res, &k->why);
    px_buf_append(&k->out, "", 1);
    return k->out.data;
}

Test(px_rewrite_response, refuses_a_101_to_a_request_that_offered_no_upgrade)
{
    struct resp_case k;

    switch_run(&k, NULL, "Upgrade: websocket\nConnection: Upgrade");
    cr_assert(eq(int, k.rc, -1));
    cr_assert(eq(str, (char *)k.why, "the node switched protocols without being asked"));
    cr_assert_not(k.res.upgrade);
    px_buf_free(&k.out);
}

Test(px_rewrite_response, turns_a_101_to_an_offered_protocol_into_a_tunnel)
{
    struct resp_case k;
    char *out = switch_run(&k, "websocket",
                           "Upgrade: WebSocket\nConnection: Upgrade, X-Hop\nX-Hop: h\n"
                           "Keep-Alive: timeout=5\n"
                           "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\n"
                           "Sec-WebSocket-Protocol: chat");

    cr_assert(eq(int, k.rc, 0), "%s", k.why != NULL ? k.why : "");
    cr_assert(k.res.upgrade);
    cr_assert(k.res.no_body, "bytes after a 101 are the tunnel's, not a body");
    /* The node's end-to-end fields, then the proxy's own Connection and the node's protocol. */
    cr_assert(eq(str, out,
                 "HTTP/1.1 101 Switching Protocols\r\n"
                 "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                 "Sec-WebSocket-Protocol: chat\r\n"
                 "Connection: upgrade\r\n"
                 "Upgrade: WebSocket\r\n"
                 "\r\n"));
    px_buf_free(&k.out);
}

Test(px_rewrite_response, accepts_a_101_to_one_protocol_of_several_offered)
{
    struct resp_case k;
    char *out = switch_run(&k, "websocket, foo/2", "Upgrade: foo/2\nConnection: upgrade");

    cr_assert(eq(int, k.rc, 0), "%s", k.why != NULL ? k.why : "");
    cr_assert(k.res.upgrade);
    cr_assert(ne(ptr, strstr(out, "\r\nUpgrade: foo/2\r\n"), NULL), "%s", out);
    px_buf_free(&k.out);
}

Test(px_rewrite_response, refuses_a_101_to_a_protocol_that_was_not_offered)
{
    struct resp_case k;

    switch_run(&k, "websocket", "Upgrade: other\nConnection: upgrade");
    cr_assert(eq(int, k.rc, -1));
    cr_assert(eq(str, (char *)k.why, "the node switched to a protocol the client did not offer"));
    cr_assert_not(k.res.upgrade);
    px_buf_free(&k.out);
    /* One offered protocol does not excuse another that was not. */
    switch_run(&k, "websocket", "Upgrade: websocket, other\nConnection: upgrade");
    cr_assert(eq(int, k.rc, -1));
    cr_assert_not(k.res.upgrade);
    px_buf_free(&k.out);
    /* h2c is never offered to the node, whatever the client asked. */
    switch_run(&k, "websocket", "Upgrade: h2c\nConnection: upgrade");
    cr_assert(eq(int, k.rc, -1));
    px_buf_free(&k.out);
}

Test(px_rewrite_response, refuses_a_101_without_an_upgrade_field)
{
    struct resp_case k;

    switch_run(&k, "websocket", "Connection: upgrade\nSec-WebSocket-Accept: x");
    cr_assert(eq(int, k.rc, -1));
    cr_assert(
        eq(str, (char *)k.why, "the node switched protocols without naming one (no Upgrade)"));
    cr_assert_not(k.res.upgrade);
    px_buf_free(&k.out);
}
