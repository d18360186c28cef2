/* tests/fuzz/fuzz_resp.c -- the response path: a client sends one request through the real proxy
 * (fuzz_px.c); the node answers with the input's bytes, cut into chunks at points the input
 * chooses, then closes. Byte 0 picks the request: bit 0 HEAD instead of GET, bit 1 HTTP/1.0.
 * The property: what reaches the client, read by an independent strict parser (fuzz_http.c, told
 * which response answers a HEAD), is HTTP -- interim responses, then at most one final response
 * (the node's, or the proxy's 502), possibly cut short, and nothing after it. A node must never be
 * able to make the client read a second response, or bytes that are not HTTP. */
#include "tests/fuzz/fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_http.h"
#include "tests/fuzz/fuzz_px.h"

static bool fz_resp_head; /* this run's request is a HEAD */

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
    char req[128];
    int rlen;

    if (size < 1)
        return 0;
    fz_resp_head = data[0] & 1;
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
    fz_px_node_eof(nc);
    fz_px_client_eof();

    got = fz_px_client_got();
    fz_http_init(&client, HTTP_RESPONSE);
    client.is_head = fz_resp_is_head;
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

    fz_http_fini(&client);
    fz_px_close();
    return 0;
}
