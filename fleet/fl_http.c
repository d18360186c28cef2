/* fleet/fl_http.c -- endpoints, and the HTTP/1.1 client connection the etcd client sends its
 * requests and reads its watch streams on (why not evhttp: fl_int.h). */
#include "fleet/fl_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>

int
fl_endpoint_parse(struct fl_endpoint *ep, const char *url, struct xf_err *err)
{
    char show[XF_QUOTE_SIZE];
    struct xf_err why = {{0}};
    unsigned port;

    memset(ep, 0, sizeof(*ep));
    if (xf_http_url_parse(url, 0, ep->host, sizeof(ep->host), &port, &why) == -1) {
        xf_err_set(err, "endpoint %s: %s", xf_quote(show, url, strlen(url)), why.msg);
        return -1;
    }
    snprintf(ep->port, sizeof(ep->port), "%u", port);
    if (strchr(ep->host, ':') != NULL)
        snprintf(ep->authority, sizeof(ep->authority), "[%s]:%s", ep->host, ep->port);
    else
        snprintf(ep->authority, sizeof(ep->authority), "%s:%s", ep->host, ep->port);
    snprintf(ep->url, sizeof(ep->url), "http://%s", ep->authority);
    return 0;
}

enum fl_http_state {
    FL_H_IDLE = 0,
    FL_H_STATUS,      /* waiting for the status line */
    FL_H_FIELDS,      /* header fields */
    FL_H_LEN,         /* a body of Content-Length bytes */
    FL_H_CHUNK_SIZE,  /* a chunk-size line */
    FL_H_CHUNK_DATA,  /* a chunk's bytes */
    FL_H_CHUNK_END,   /* the CRLF after them */
    FL_H_TRAILERS,    /* trailer fields after the last chunk */
    FL_H_UNTIL_CLOSE, /* a body delimited by the connection's end */
};

struct fl_http {
    struct bufferevent *bev;      /* owned */
    const struct fl_endpoint *ep; /* borrowed */
    struct fl_http_cbs cbs;
    void *arg;             /* borrowed: the owner */
    struct evbuffer *body; /* owned: the body being buffered */
    bool *dead;            /* set to true by fl_http_free during a callback */
    enum fl_http_state state;
    bool stream;      /* the request asked for stream mode */
    bool connected;   /* the TCP connection was established */
    bool reused;      /* a response was read before on this connection */
    bool got_bytes;   /* a byte of the current response arrived */
    bool close_after; /* the server will close after this response */
    bool failed;      /* the error callback was called */
    bool chunked;
    int status;
    int64_t content_length; /* -1: none */
    uint64_t remaining;     /* bytes left in the body or the chunk */
    size_t head_bytes;
};

/* Tells the owner the connection failed (once). Returns -1: the caller stops at once. */
static int
fl_http_fail(struct fl_http *h, const char *why)
{
    bool maybe_sent = h->state != FL_H_IDLE && h->connected && !(h->reused && !h->got_bytes);

    if (h->failed)
        return -1;
    h->failed = true;
    bufferevent_disable(h->bev, EV_READ | EV_WRITE);
    h->cbs.error(h->arg, why, maybe_sent);
    return -1;
}

/*
 * Takes one line (CRLF or LF) off the input into buf (FL_HTTP_LINE_MAX + 1 bytes), NUL-ended.
 * Returns 1 with a line, 0 when it has not fully arrived, -1 when it is too long (reported).
 */
static int
fl_http_line(struct fl_http *h, struct evbuffer *in, char *buf)
{
    size_t eol_len = 0;
    struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);

    if (p.pos == -1) {
        if (evbuffer_get_length(in) > FL_HTTP_LINE_MAX)
            return fl_http_fail(h, "a response line is too long");
        return 0;
    }
    if ((size_t)p.pos > FL_HTTP_LINE_MAX)
        return fl_http_fail(h, "a response line is too long");
    evbuffer_remove(in, buf, (size_t)p.pos);
    buf[p.pos] = '\0';
    evbuffer_drain(in, eol_len);
    if (h->state == FL_H_STATUS || h->state == FL_H_FIELDS) {
        h->head_bytes += (size_t)p.pos + eol_len;
        if (h->head_bytes > FL_HTTP_HEAD_MAX)
            return fl_http_fail(h, "the response head is too large");
    }
    return 1;
}

static int
fl_http_status_line(struct fl_http *h, const char *line)
{
    if (strncmp(line, "HTTP/1.", 7) != 0 || (line[7] != '0' && line[7] != '1') || line[8] != ' ' ||
        line[9] < '1' || line[9] > '5' || line[10] < '0' || line[10] > '9' || line[11] < '0' ||
        line[11] > '9' || (line[12] != ' ' && line[12] != '\0'))
        return fl_http_fail(h, "not an HTTP/1.x status line");
    h->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    h->close_after = line[7] == '0';
    h->chunked = false;
    h->content_length = -1;
    h->state = FL_H_FIELDS;
    return 0;
}

/* Whether the comma-separated list `v` holds the token `tok` (ASCII case ignored). */
static bool
fl_http_has_token(const char *v, const char *tok)
{
    size_t n = strlen(tok);

    while (*v != '\0') {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        if (strncasecmp(v, tok, n) == 0 &&
            (v[n] == '\0' || v[n] == ',' || v[n] == ' ' || v[n] == '\t'))
            return true;
        while (*v != '\0' && *v != ',')
            v++;
    }
    return false;
}

static int
fl_http_field(struct fl_http *h, char *line)
{
    char *colon = strchr(line, ':'), *v, *end;

    if (colon == NULL || colon == line)
        return fl_http_fail(h, "a malformed header field");
    *colon = '\0';
    for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
        ;
    for (end = v + strlen(v); end > v && (end[-1] == ' ' || end[-1] == '\t'); end--)
        ;
    *end = '\0';
    if (strcasecmp(line, "content-length") == 0) {
        int64_t n = 0;

        if (*v == '\0' || strlen(v) > 18 || strspn(v, "0123456789") != strlen(v))
            return fl_http_fail(h, "an invalid Content-Length");
        for (const char *c = v; *c != '\0'; c++)
            n = n * 10 + (*c - '0');
        if (h->content_length != -1 && h->content_length != n)
            return fl_http_fail(h, "conflicting Content-Length fields");
        h->content_length = n;
    } else if (strcasecmp(line, "transfer-encoding") == 0) {
        if (strcasecmp(v, "chunked") != 0)
            return fl_http_fail(h, "a transfer coding other than chunked");
        h->chunked = true;
    } else if (strcasecmp(line, "connection") == 0) {
        if (fl_http_has_token(v, "close"))
            h->close_after = true;
    }
    return 0;
}

/* The response is complete: back to idle, then the owner hears it. -1 when it freed h. */
static int
fl_http_finish(struct fl_http *h)
{
    bool dead = false;
    size_t len = evbuffer_get_length(h->body);
    const char *body;

    h->state = FL_H_IDLE;
    h->reused = true;
    evbuffer_add(h->body, "", 1);
    body = (const char *)evbuffer_pullup(h->body, -1);
    h->dead = &dead;
    h->cbs.done(h->arg, h->status, body, len);
    if (dead)
        return -1;
    h->dead = NULL;
    evbuffer_drain(h->body, evbuffer_get_length(h->body));
    return 0;
}

/* Hands over n body bytes from the input: to the owner in stream mode, else to the buffer.
 * -1 when the connection failed or was freed. */
static int
fl_http_take(struct fl_http *h, struct evbuffer *in, size_t n)
{
    bool dead = false;

    if (n == 0)
        return 0;
    if (h->stream && h->status == 200) {
        const char *p = (const char *)evbuffer_pullup(in, (ssize_t)n);

        h->dead = &dead;
        h->cbs.body(h->arg, p, n);
        if (dead)
            return -1;
        h->dead = NULL;
        evbuffer_drain(in, n);
        return h->failed ? -1 : 0;
    }
    if (evbuffer_get_length(h->body) + n > FL_BODY_MAX)
        return fl_http_fail(h, "the response body is too large");
    evbuffer_remove_buffer(in, h->body, n);
    return 0;
}

/* After the empty line that ends the head. */
static int
fl_http_head_done(struct fl_http *h)
{
    if (h->status < 200) {
        if (h->status == 101)
            return fl_http_fail(h, "unexpected 101 Switching Protocols");
        h->state = FL_H_STATUS; /* an interim response: the final one follows */
        return 0;
    }
    if (h->chunked) {
        h->state = FL_H_CHUNK_SIZE;
    } else if (h->content_length >= 0) {
        h->state = FL_H_LEN;
        h->remaining = (uint64_t)h->content_length;
        if (h->remaining == 0)
            return fl_http_finish(h);
    } else if (h->status == 204 || h->status == 304) {
        return fl_http_finish(h);
    } else {
        h->state = FL_H_UNTIL_CLOSE;
        h->close_after = true;
    }
    return 0;
}

static int
fl_http_chunk_size(struct fl_http *h, const char *line)
{
    uint64_t n = 0;
    size_t k = 0;

    for (; k < 15; k++) {
        char c = line[k];
        unsigned d;

        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            break;
        n = n * 16 + d;
    }
    if (k == 0 || (line[k] != '\0' && line[k] != ';' && line[k] != ' ' && line[k] != '\t'))
        return fl_http_fail(h, "an invalid chunk size");
    h->remaining = n;
    h->state = n == 0 ? FL_H_TRAILERS : FL_H_CHUNK_DATA;
    return 0;
}

/*
 * Parses what the input holds as far as it goes. Returns 0 when it needs more bytes, -1 when the
 * connection failed or was freed (stop touching h).
 */
static int
fl_http_parse(struct fl_http *h)
{
    struct evbuffer *in = bufferevent_get_input(h->bev);
    char line[FL_HTTP_LINE_MAX + 1];
    int r;

    while (!h->failed) {
        size_t avail = evbuffer_get_length(in);

        if (avail > 0)
            h->got_bytes = true;
        switch (h->state) {
        case FL_H_IDLE:
            if (avail > 0)
                return fl_http_fail(h, "bytes from the server with no request pending");
            return 0;
        case FL_H_STATUS:
        case FL_H_FIELDS:
        case FL_H_CHUNK_SIZE:
        case FL_H_CHUNK_END:
        case FL_H_TRAILERS:
            r = fl_http_line(h, in, line);
            if (r <= 0)
                return r;
            if (h->state == FL_H_STATUS)
                r = fl_http_status_line(h, line);
            else if (h->state == FL_H_FIELDS)
                r = line[0] == '\0' ? fl_http_head_done(h) : fl_http_field(h, line);
            else if (h->state == FL_H_CHUNK_SIZE)
                r = fl_http_chunk_size(h, line);
            else if (h->state == FL_H_CHUNK_END)
                r = line[0] == '\0' ? (h->state = FL_H_CHUNK_SIZE, 0)
                                    : fl_http_fail(h, "no CRLF after a chunk");
            else if (line[0] == '\0')
                r = fl_http_finish(h);
            if (r == -1)
                return -1;
            break;
        case FL_H_LEN:
        case FL_H_CHUNK_DATA: {
            size_t n = (size_t)XF_MIN((uint64_t)avail, h->remaining);

            if (n == 0)
                return 0;
            if (fl_http_take(h, in, n) == -1)
                return -1;
            h->remaining -= n;
            if (h->remaining == 0 && h->state == FL_H_CHUNK_DATA)
                h->state = FL_H_CHUNK_END;
            else if (h->remaining == 0 && fl_http_finish(h) == -1)
                return -1;
            break;
        }
        case FL_H_UNTIL_CLOSE:
            if (avail == 0)
                return 0;
            if (fl_http_take(h, in, avail) == -1)
                return -1;
            break;
        }
    }
    return -1;
}

static void
fl_http_on_read(struct bufferevent *bev, void *arg)
{
    struct fl_http *h = arg;

    XF_UNUSED(bev);
    fl_http_parse(h);
}

static void
fl_http_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct fl_http *h = arg;
    char why[160];

    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;

        h->connected = true;
        /* Small requests that wait for their answer: none may sit in Nagle's buffer. */
        (void)setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        return;
    }
    if (h->failed)
        return;
    /* Whatever arrived before the end is parsed first. */
    if (fl_http_parse(h) == -1)
        return;
    if (what & BEV_EVENT_EOF) {
        if (h->state == FL_H_UNTIL_CLOSE) {
            h->close_after = true;
            if (fl_http_finish(h) == -1)
                return;
        }
        fl_http_fail(h, h->state == FL_H_IDLE ? "the server closed the connection"
                                              : "the server closed the connection mid-response");
        return;
    }
    snprintf(why, sizeof(why), "%s: %s", h->connected ? "connection error" : "connect failed",
             evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    fl_http_fail(h, why);
}

struct fl_http *
fl_http_new(struct event_base *base, const struct fl_endpoint *ep, const struct fl_http_cbs *cbs,
            void *arg, struct xf_err *err)
{
    struct sockaddr_storage ss;
    unsigned ss_len;
    const char *why = NULL;
    struct fl_http *h;

    if (xf_resolve(ep->host, ep->port, 0, &ss, &ss_len, &why) == -1) {
        xf_err_set(err, "%s: cannot resolve: %s", ep->url, why);
        return NULL;
    }
    h = calloc(1, sizeof(*h));
    if (h == NULL)
        goto oom;
    h->ep = ep;
    h->cbs = *cbs;
    h->arg = arg;
    h->content_length = -1;
    h->body = evbuffer_new();
    h->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (h->body == NULL || h->bev == NULL)
        goto oom;
    bufferevent_setcb(h->bev, fl_http_on_read, NULL, fl_http_on_event, h);
    bufferevent_enable(h->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(h->bev, (struct sockaddr *)&ss, (int)ss_len) == -1) {
        xf_err_set(err, "%s: connect: %s", ep->url,
                   evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        fl_http_free(h);
        return NULL;
    }
    return h;
oom:
    xf_err_set(err, "%s: out of memory", ep->url);
    fl_http_free(h);
    return NULL;
}

int
fl_http_post(struct fl_http *h, const char *path, const char *body, size_t len, bool stream)
{
    struct evbuffer *out;

    if (h->state != FL_H_IDLE || h->failed || h->close_after)
        return -1;
    out = bufferevent_get_output(h->bev);
    /* Grpc-Metadata-Hasleader reaches etcd as the gRPC metadata hasleader=true (what clientv3's
     * WithRequireLeader sends): a member cut off from its leader refuses at once, and ends the
     * watch streams it serves, rather than leaving them silent. */
    if (evbuffer_add_printf(out,
                            "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                            "Grpc-Metadata-Hasleader: true\r\nContent-Length: %zu\r\n\r\n",
                            path, h->ep->authority, len) == -1 ||
        evbuffer_add(out, body, len) == -1)
        return -1;
    h->state = FL_H_STATUS;
    h->stream = stream;
    h->got_bytes = false;
    h->head_bytes = 0;
    h->status = 0;
    return 0;
}

bool
fl_http_reusable(const struct fl_http *h)
{
    return h->state == FL_H_IDLE && !h->failed && !h->close_after;
}

void
fl_http_free(struct fl_http *h)
{
    if (h == NULL)
        return;
    if (h->dead != NULL)
        *h->dead = true;
    if (h->bev != NULL)
        bufferevent_free(h->bev);
    if (h->body != NULL)
        evbuffer_free(h->body);
    free(h);
}
