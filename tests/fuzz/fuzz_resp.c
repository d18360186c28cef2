/* tests/fuzz/fuzz_resp.c -- the response path: a client sends one request through the real proxy
 * (fuzz_px.c); the node answers with the input's bytes, cut into chunks at points the input
 * chooses, then closes. Byte 0 picks the request: bit 0 HEAD instead of GET, bit 1 HTTP/1.0,
 * bit 2 a WebSocket upgrade (bits 0 and 1 then unused), bit 3 the client sends a WebSocket frame
 * once the node has answered.
 * The property: what reaches the client, read by an independent strict parser (fuzz_http.c, told
 * which response answers a HEAD), is HTTP -- interim responses, then at most one final response
 * (the node's, or the proxy's 502), possibly cut short, and nothing after it. A node must never be
 * able to make the client read a second response, or bytes that are not HTTP. After a 101 to an
 * upgrade (the tunnel, proxy/px_tunnel.c), each side receives exactly what the other sent after
 * it: the client the node's bytes after its 101, the node the client's bytes after its request. */
#include "tests/fuzz/fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_http.h"
#include "tests/fuzz/fuzz_px.h"

static bool fz_resp_head; /* this run's request is a HEAD */

static const char fz_resp_ws_req[] = "GET /ws HTTP/1.1\r\nHost: fuzz\r\nConnection: Upgrade\r\n"
                                     "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
/* A masked text frame, "Hello" (RFC 6455 5.7). */
static const char fz_resp_ws_frame[] = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";

/* The tunnel's property: both sides switched at the 101, and each received exactly what the
 * other sent after it. `client` read what the client received. */
static void
fz_resp_check_tunnel(const struct fz_http *client, struct evbuffer *got, const uint8_t *node_bytes,
                     size_t node_len, struct fz_px_node_conn *nc, bool framed)
{
    struct fz_http node, fwd;
    size_t ctail = evbuffer_get_length(got) - client->upgraded_at, ntail;
    const char *c = (const char *)evbuffer_pullup(got, -1) + client->upgraded_at;
    const char *n;

    fz_http_init(&node, HTTP_RESPONSE);
    node.stop_upgrade = true;
    /* An interim response labelled HTTP/1.0 (a 100 before the 101) does not end the connection:
     * the final response's version and fields say that, as crossfade reads it. */
    llhttp_set_lenient_keep_alive(&node.parser, 1);
    fz_http_feed(&node, (const char *)node_bytes, node_len);
    FZ_CHECK(node.upgraded, "the client switched protocols, the node never sent a 101");
    ntail = node_len - node.upgraded_at;
    n = (const char *)node_bytes + node.upgraded_at;
    FZ_CHECK(ctail == ntail && memcmp(c, n, ntail) == 0,
             "after the 101, the node sent %zu bytes, the client received %zu:\n%.*s\n----\n%.*s",
             ntail, ctail, (int)ntail, n, (int)ctail, c);
    fz_http_fini(&node);
    /* What the node received: the request, then the client's frame, nothing else. */
    fz_http_init(&fwd, HTTP_REQUEST);
    fwd.stop_upgrade = true;
    fz_http_feed(&fwd, (const char *)evbuffer_pullup(nc->got, -1), evbuffer_get_length(nc->got));
    FZ_CHECK(fwd.upgraded, "a 101 went to the client, but the node's request offered no upgrade");
    ntail = evbuffer_get_length(nc->got) - fwd.upgraded_at;
    n = (const char *)evbuffer_pullup(nc->got, -1) + fwd.upgraded_at;
    FZ_CHECK((!framed && ntail == 0) || (framed && ntail == sizeof(fz_resp_ws_frame) - 1 &&
                                         memcmp(n, fz_resp_ws_frame, ntail) == 0),
             "the client sent %zu bytes into the tunnel, the node received %zu",
             framed ? sizeof(fz_resp_ws_frame) - 1 : 0, ntail);
    fz_http_fini(&fwd);
}

static bool
fz_resp_is_head(void *arg, size_t i)
{
    (void)arg;
    return i == 0 && fz_resp_head;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const struct fz_px_hooks hooks = {0};

    (void)argc;
    (void)argv;
    fz_px_init(&hooks);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *payload;
    size_t len, ends[FZ_MAX_CHUNKS], n, at = 0, finals = 0;
    struct fz_px_node_conn *nc;
    struct evbuffer *got;
    struct fz_http client;
    char req[256];
    int rlen;
    bool ws, framed;

    if (size < 1)
        return 0;
    ws = data[0] & 4;
    framed = data[0] & 8;
    fz_resp_head = !ws && (data[0] & 1);
    if (ws)
        rlen = snprintf(req, sizeof(req), "%s", fz_resp_ws_req);
    else
        rlen = snprintf(req, sizeof(req), "%s /r HTTP/1.%d\r\nHost: fuzz\r\n\r\n",
                        fz_resp_head ? "HEAD" : "GET", data[0] & 2 ? 0 : 1);
    n = fz_split(data + 1, size - 1, &payload, &len, ends);

    fz_px_open();
    fz_px_client_send(req, (size_t)rlen);
    nc = fz_px_node_conn(0);
    FZ_CHECK(nc != NULL, "the request did not reach the node");
    for (size_t k = 0; k < n; k++) {
        fz_px_node_send(nc, payload + at, ends[k] - at);
        at = ends[k];
    }
    if (framed) {
        /* Only into a tunnel: after any other answer it would be a next request, refused. */
        struct fz_http so_far;

        fz_http_init(&so_far, HTTP_RESPONSE);
        so_far.stop_upgrade = true;
        fz_http_feed(&so_far, (const char *)evbuffer_pullup(fz_px_client_got(), -1),
                     evbuffer_get_length(fz_px_client_got()));
        framed = ws && so_far.upgraded;
        fz_http_fini(&so_far);
        if (framed)
            fz_px_client_send(fz_resp_ws_frame, sizeof(fz_resp_ws_frame) - 1);
    }
    fz_px_node_eof(nc);
    fz_px_client_eof();

    got = fz_px_client_got();
    fz_http_init(&client, HTTP_RESPONSE);
    client.is_head = fz_resp_is_head;
    client.stop_upgrade = ws;
    fz_http_feed(&client, (const char *)evbuffer_pullup(got, -1), evbuffer_get_length(got));
    if (getenv("FZ_DEBUG") != NULL)
        fprintf(stderr, "---- the client received%s:\n%.*s\n",
                fz_px_client_closed() ? " (then the connection closed)" : "",
                (int)evbuffer_get_length(got), (const char *)evbuffer_pullup(got, -1));
    FZ_CHECK(!client.error, "the client received bytes that are not HTTP (%s):\n%.*s",
             client.reason, (int)evbuffer_get_length(got), (const char *)evbuffer_pullup(got, -1));
    for (size_t i = 0; i < client.n_msgs; i++)
        if (client.msgs[i].status >= 200 || !client.msgs[i].head_done)
            finals++;
    FZ_CHECK(finals <= 1, "one request, %zu responses:\n%.*s", finals,
             (int)evbuffer_get_length(got), (const char *)evbuffer_pullup(got, -1));
    if (client.upgraded)
        fz_resp_check_tunnel(&client, got, payload, len, nc, framed);

    fz_http_fini(&client);
    fz_px_close();
    return 0;
}
