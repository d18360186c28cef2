/* tests/fuzz/fuzz_req.c -- the request path: bytes a client sends, cut into chunks at points the
 * input's first bytes choose, go through the real proxy (fuzz_px.c) to a node on loopback.
 *
 * The differential property: every request the node receives, read by an independent strict
 * parser (fuzz_http.c), is a request the client sent -- the client's bytes read by the same
 * strict reader give a complete request at the same position -- and the same message: method,
 * target (an absolute-form target becomes its path, its authority the Host), the end-to-end
 * header fields in order, byte for byte, and the body bytes; the node receives nothing after it
 * but the next one. The rewrites allowed are the ones docs/architecture.md and px_rewrite.c
 * document: Host first; hop-by-hop fields (Connection, Keep-Alive, Proxy-Connection, TE,
 * Trailer, Upgrade, Transfer-Encoding, Content-Length), the fields Connection names,
 * X-Forwarded-For/-Proto/-Host and a 1.0 request's Expect removed; then X-Forwarded-For (the
 * client's values joined, then the client), X-Forwarded-Proto, X-Forwarded-Host, and the proxy's
 * own Connection, Upgrade and framing fields. A violation aborts, so libFuzzer keeps the input. */
#include "tests/fuzz/fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "tests/fuzz/fuzz_http.h"
#include "tests/fuzz/fuzz_px.h"

#define FZ_REQ_CLIENT_IP "192.0.2.10" /* fuzz_px.c's client */

/* What the node read on each of its connections, kept until the run's check. */
static struct fz_http fz_req_node[FZ_PX_NODE_CONNS];
static size_t fz_req_answered[FZ_PX_NODE_CONNS];
static const struct fz_http_msg *fz_req_fwd[FZ_PX_NODE_CONNS * FZ_HTTP_MSGS];
static size_t fz_req_n_fwd;

static const char fz_req_ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

static size_t
fz_req_conn_index(const struct fz_px_node_conn *nc)
{
    for (size_t i = 0; i < fz_px_node_conns(); i++)
        if (fz_px_node_conn(i) == nc)
            return i;
    fz_fail(__FILE__, __LINE__, "conn", "unknown node connection");
}

static void
fz_req_node_data(struct fz_px_node_conn *nc, const char *data, size_t len, void *arg)
{
    size_t i = fz_req_conn_index(nc);
    struct fz_http *h = &fz_req_node[i];

    (void)arg;
    if (nc->user == NULL) {
        fz_http_init(h, HTTP_REQUEST);
        fz_req_answered[i] = 0;
        nc->user = h;
    }
    FZ_CHECK(fz_http_feed(h, data, len),
             "the node received bytes that are not HTTP (%s) on connection %zu:\n%.*s", h->reason,
             i, (int)evbuffer_get_length(nc->got), (const char *)evbuffer_pullup(nc->got, -1));
    /* Each request gets a 200 as it completes (in order): the proxy then reads the next one. */
    while (fz_req_answered[i] < fz_http_complete(h)) {
        fz_req_fwd[fz_req_n_fwd++] = &h->msgs[fz_req_answered[i]++];
        (void)!send(nc->fd, fz_req_ok, sizeof(fz_req_ok) - 1, MSG_NOSIGNAL);
    }
}

static void
fz_req_node_close(struct fz_px_node_conn *nc, bool by_proxy, void *arg)
{
    (void)nc;
    (void)by_proxy;
    (void)arg; /* the parse is kept until the run's check */
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const struct fz_px_hooks hooks = {.node_data = fz_req_node_data,
                                             .node_close = fz_req_node_close};

    (void)argc;
    (void)argv;
    fz_px_init(&hooks);
    return 0;
}

static bool
fz_req_ieq(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

/* Whether a comma-separated list (the value of a Connection field) names `name`. */
static bool
fz_req_list_has(const char *v, size_t vlen, const char *name, size_t len)
{
    size_t i = 0;

    while (i < vlen) {
        size_t s, e;

        while (i < vlen && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        s = i;
        while (i < vlen && v[i] != ',')
            i++;
        e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == len && strncasecmp(v + s, name, len) == 0)
            return true;
    }
    return false;
}

/* Whether the client's field k is one the proxy removes (the module comment's list). */
static bool
fz_req_removed(const struct fz_http_msg *c, size_t k)
{
    static const char *const names[] = {
        "connection", "keep-alive",      "proxy-connection",  "te",
        "trailer",    "upgrade",         "transfer-encoding", "content-length",
        "host",       "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"};
    const struct fz_http_hdr *h = &c->hdrs[k];

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (fz_req_ieq(h->name, h->name_len, names[i]))
            return true;
    if (c->minor == 0 && fz_req_ieq(h->name, h->name_len, "expect"))
        return true;
    for (size_t i = 0; i < c->n_hdrs; i++)
        if (fz_req_ieq(c->hdrs[i].name, c->hdrs[i].name_len, "connection") &&
            fz_req_list_has(c->hdrs[i].value, c->hdrs[i].value_len, h->name, h->name_len))
            return true;
    return false;
}

/* Whether the node's field k is one the proxy sets itself. */
static bool
fz_req_added(const struct fz_http_hdr *h)
{
    static const char *const names[] = {
        "host",       "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
        "connection", "upgrade",         "transfer-encoding", "content-length"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (fz_req_ieq(h->name, h->name_len, names[i]))
            return true;
    return false;
}

/* The value of the only field `name` of m, or NULL; aborts when there are several. */
static const struct fz_http_hdr *
fz_req_one(const struct fz_http_msg *m, const char *name, size_t i)
{
    const struct fz_http_hdr *found = NULL;

    for (size_t k = 0; k < m->n_hdrs; k++)
        if (fz_req_ieq(m->hdrs[k].name, m->hdrs[k].name_len, name)) {
            FZ_CHECK(found == NULL, "request %zu reached the node with two %s fields", i, name);
            found = &m->hdrs[k];
        }
    return found;
}

/* Checks that the node's request n is the client's request c (index i), rewrites aside. */
static void
fz_req_compare(const struct fz_http_msg *c, const struct fz_http_msg *n, size_t i)
{
    const char *want_target = c->url, *auth = NULL;
    size_t want_len = c->url_len, auth_len = 0, kc = 0, kn = 0;
    const struct fz_http_hdr *host = fz_req_one(n, "host", i), *xff;
    char xff_want[8192];
    size_t xff_len = 0;

    FZ_CHECK(n->method == c->method, "request %zu: method %s became %s", i,
             llhttp_method_name(c->method), llhttp_method_name(n->method));
    FZ_CHECK(n->major == 1 && n->minor == 1, "request %zu: HTTP/%d.%d to the node", i, n->major,
             n->minor);
    /* absolute-form: the path goes on, the authority becomes Host (RFC 9112 3.2.2) */
    if (c->url_len > 7 && strncasecmp(c->url, "http://", 7) == 0)
        auth = c->url + 7;
    else if (c->url_len > 8 && strncasecmp(c->url, "https://", 8) == 0)
        auth = c->url + 8;
    if (auth != NULL) {
        const char *slash = memchr(auth, '/', c->url_len - (size_t)(auth - c->url));

        auth_len = slash ? (size_t)(slash - auth) : c->url_len - (size_t)(auth - c->url);
        want_target = slash ? slash : "/";
        want_len = slash ? c->url_len - (size_t)(slash - c->url) : 1;
    }
    FZ_CHECK(n->url_len == want_len && memcmp(n->url, want_target, want_len) == 0,
             "request %zu: target \"%s\" reached the node as \"%s\"", i, c->url, n->url);
    FZ_CHECK(n->n_hdrs > 0 && host == &n->hdrs[0], "request %zu: Host is not the first field", i);
    if (auth != NULL) {
        FZ_CHECK(host->value_len == auth_len && memcmp(host->value, auth, auth_len) == 0,
                 "request %zu: Host \"%s\" is not the target's authority", i, host->value);
    } else {
        const struct fz_http_hdr *ch = fz_req_one(c, "host", i);

        if (ch != NULL)
            FZ_CHECK(host->value_len == ch->value_len &&
                         memcmp(host->value, ch->value, ch->value_len) == 0,
                     "request %zu: Host \"%s\" became \"%s\"", i, ch->value, host->value);
        else
            FZ_CHECK(c->minor == 0, "request %zu: a 1.1 request without Host forwarded", i);
    }
    /* The end-to-end fields, in order, byte for byte. */
    for (;;) {
        while (kc < c->n_hdrs && fz_req_removed(c, kc))
            kc++;
        while (kn < n->n_hdrs && fz_req_added(&n->hdrs[kn]))
            kn++;
        if (kc == c->n_hdrs || kn == n->n_hdrs)
            break;
        FZ_CHECK(c->hdrs[kc].name_len == n->hdrs[kn].name_len &&
                     memcmp(c->hdrs[kc].name, n->hdrs[kn].name, c->hdrs[kc].name_len) == 0 &&
                     c->hdrs[kc].value_len == n->hdrs[kn].value_len &&
                     memcmp(c->hdrs[kc].value, n->hdrs[kn].value, c->hdrs[kc].value_len) == 0,
                 "request %zu: field \"%s: %s\" reached the node as \"%s: %s\"", i,
                 c->hdrs[kc].name, c->hdrs[kc].value, n->hdrs[kn].name, n->hdrs[kn].value);
        kc++;
        kn++;
    }
    FZ_CHECK(kc == c->n_hdrs, "request %zu: field \"%s\" did not reach the node", i,
             kc < c->n_hdrs ? c->hdrs[kc].name : "");
    FZ_CHECK(kn == n->n_hdrs, "request %zu: field \"%s\" reached the node from nowhere", i,
             kn < n->n_hdrs ? n->hdrs[kn].name : "");
    /* X-Forwarded-For: the client's non-empty values, joined, then the client. */
    for (size_t k = 0; k < c->n_hdrs; k++)
        if (fz_req_ieq(c->hdrs[k].name, c->hdrs[k].name_len, "x-forwarded-for") &&
            c->hdrs[k].value_len > 0 && xff_len + c->hdrs[k].value_len + 2 < sizeof(xff_want)) {
            memcpy(xff_want + xff_len, c->hdrs[k].value, c->hdrs[k].value_len);
            xff_len += c->hdrs[k].value_len;
            memcpy(xff_want + xff_len, ", ", 2);
            xff_len += 2;
        }
    memcpy(xff_want + xff_len, FZ_REQ_CLIENT_IP, sizeof(FZ_REQ_CLIENT_IP) - 1);
    xff_len += sizeof(FZ_REQ_CLIENT_IP) - 1;
    xff = fz_req_one(n, "x-forwarded-for", i);
    FZ_CHECK(xff != NULL && xff->value_len == xff_len && memcmp(xff->value, xff_want, xff_len) == 0,
             "request %zu: X-Forwarded-For \"%s\"", i, xff ? xff->value : "(none)");
    fz_req_one(n, "x-forwarded-proto", i);
    fz_req_one(n, "x-forwarded-host", i);
    FZ_CHECK(n->body_len == c->body_len &&
                 (c->body_len == 0 || memcmp(n->body, c->body, c->body_len) == 0),
             "request %zu: a body of %zu bytes reached the node as %zu bytes", i, c->body_len,
             n->body_len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *payload;
    size_t len, ends[FZ_MAX_CHUNKS], n = fz_split(data, size, &payload, &len, ends), at = 0;
    struct fz_http client;

    /* The client's requests as the strict reader sees them, whatever the proxy makes of them. */
    fz_http_init(&client, HTTP_REQUEST);
    fz_http_feed(&client, (const char *)payload, len);
    fz_req_n_fwd = 0;

    fz_px_open();
    for (size_t k = 0; k < n; k++) {
        fz_px_client_send(payload + at, ends[k] - at);
        at = ends[k];
    }
    fz_px_client_eof();

    if (getenv("FZ_DEBUG") != NULL) {
        /* What a run did, to read a reproduced input (docs/fuzzing.md). */
        fprintf(stderr, "---- %zu chunk(s), %zu request(s) forwarded\n", n, fz_req_n_fwd);
        for (size_t i = 0; i < fz_px_node_conns(); i++) {
            struct evbuffer *got = fz_px_node_conn(i)->got;
            fprintf(stderr, "---- node connection %zu received:\n%.*s\n", i,
                    (int)evbuffer_get_length(got), (const char *)evbuffer_pullup(got, -1));
        }
        fprintf(stderr, "---- the client received%s:\n%.*s\n",
                fz_px_client_closed() ? " (then the connection closed)" : "",
                (int)evbuffer_get_length(fz_px_client_got()),
                (const char *)evbuffer_pullup(fz_px_client_got(), -1));
    }
    for (size_t i = 0; i < fz_req_n_fwd; i++) {
        FZ_CHECK(i < fz_http_complete(&client),
                 "request %zu reached the node, but the client's bytes hold no such complete "
                 "request for a strict parser (%s):\n%.*s",
                 i, client.error ? client.reason : "incomplete", (int)len, (const char *)payload);
        fz_req_compare(&client.msgs[i], fz_req_fwd[i], i);
    }

    fz_px_close();
    for (size_t i = 0; i < FZ_PX_NODE_CONNS; i++)
        fz_http_fini(&fz_req_node[i]);
    fz_http_fini(&client);
    return 0;
}
