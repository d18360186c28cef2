/* proxy/px_client.c -- client connections: reading, checking and forwarding requests. */
#include "proxy/px_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void px_client_on_read(evutil_socket_t fd, short what, void *arg);
static void px_client_on_write(evutil_socket_t fd, short what, void *arg);
static enum px_rc px_client_linger(struct px_client *c);
static enum px_rc px_client_linger_read(struct px_client *c);

/* The request parser's callbacks reach the head through the client; one parse at a time. */
static struct px_req_head *
px_client_head_of(llhttp_t *p)
{
    struct px_client *c = p->data;
    return &c->w->req_head;
}

static int
px_req_fail(llhttp_t *p, int status, const char *why)
{
    struct px_req_head *h = px_client_head_of(p);

    h->status = status;
    h->why = why;
    return -1;
}

static int
px_req_on_url(llhttp_t *p, const char *at, size_t len)
{
    struct px_req_head *h = px_client_head_of(p);

    h->url = at;
    h->url_len = len;
    /* A line break right after the target is an HTTP/0.9 request line: refused without waiting. */
    if (at + len < h->end && (at[len] == '\r' || at[len] == '\n'))
        return px_req_fail(p, 400, "request line without an HTTP version");
    return 0;
}

static int
px_req_on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct px_client *c = p->data;
    struct px_req_head *h = px_client_head_of(p);

    if (c->txn != NULL)
        return 0; /* trailer fields of a chunked body: dropped */
    if (px_hdr_open(c->w->hdrs, c->w->cfg->limits.max_headers, h->n_hdrs, at, len) == -1)
        return px_req_fail(p, 431, "too many header fields");
    h->field_open = true;
    return 0;
}

static int
px_req_on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct px_client *c = p->data;
    struct px_req_head *h = px_client_head_of(p);
    struct xf_hdr *hd;

    if (c->txn != NULL)
        return 0;
    if (!h->field_open)
        return px_req_fail(p, 400, "empty header name");
    if (!px_http_value_ok(at, len))
        return px_req_fail(p, 400, "control character, obs-fold or bare CR in a header value");
    /* An empty value (len 0) is a span at the start of the next line: never a fold. */
    if (len > 0 && px_http_is_fold(at))
        return px_req_fail(p, 400, "obs-fold (a header line continued on the next line)");
    hd = &c->w->hdrs[h->n_hdrs];
    hd->value = at;
    hd->value_len = (uint32_t)len;
    return 0;
}

static int
px_req_on_header_value_complete(llhttp_t *p)
{
    struct px_client *c = p->data;
    struct px_req_head *h = px_client_head_of(p);

    if (c->txn != NULL)
        return 0;
    if (!h->field_open)
        return px_req_fail(p, 400, "empty header name");
    h->field_open = false;
    h->n_hdrs++;
    return 0;
}

/* A request line with no version after the target (HTTP/0.9 style) is refused at once. */
static int
px_req_on_url_complete(llhttp_t *p)
{
    struct px_req_head *h = px_client_head_of(p);

    if (h->url_len > 0 && h->url[h->url_len] != ' ')
        return px_req_fail(p, 400, "request line without an HTTP version");
    return 0;
}

static int px_req_on_headers_complete(llhttp_t *p);
static int px_req_on_body(llhttp_t *p, const char *at, size_t len);
static bool px_req_buffers(const struct px_worker *w, const llhttp_t *p,
                           const struct px_req_out *res);
static void px_req_send(struct px_txn *t, struct px_buf *data);
static int px_req_on_message_complete(llhttp_t *p);

static const llhttp_settings_t px_req_settings = {
    .on_url = px_req_on_url,
    .on_url_complete = px_req_on_url_complete,
    .on_header_field = px_req_on_header_field,
    .on_header_value = px_req_on_header_value,
    .on_header_value_complete = px_req_on_header_value_complete,
    .on_headers_complete = px_req_on_headers_complete,
    .on_body = px_req_on_body,
    .on_message_complete = px_req_on_message_complete,
};

/* --- reading --- */

static const struct timeval px_client_drain_tv = {PX_DRAIN_IDLE_MS / 1000,
                                                  (PX_DRAIN_IDLE_MS % 1000) * 1000};

void
px_client_read_on(struct px_client *c)
{
    const struct timeval *tv = NULL;
    struct timeval rem;

    if (c->eof || c->closing || c->held)
        return; /* a held client reads on once released (px_worker_resume) */
    if (XF_UNLIKELY(c->tls_hs)) {
        /* The handshake's time runs from the connection, whatever trickles in meanwhile. */
        rem = px_tv_until(c->tls_hs_end_ms);
        tv = &rem;
    } else if (c->state == PX_C_HEAD) {
        if (c->head_start_ms != 0) {
            uint64_t end = c->head_start_ms + c->w->cfg->timeouts.client_header_ms;

            rem = px_tv_until(c->req_end_ms != 0 ? XF_MIN(end, c->req_end_ms) : end);
            tv = &rem;
        } else if (px_buf_len(&c->out) == 0) {
            tv = c->first ? c->w->tv_client_header : c->w->tv_client_idle;
            if (XF_UNLIKELY(c->w->draining))
                tv = &px_client_drain_tv; /* stopping: its next request, or it closes soon */
        } /* else: a response is still being written; the write timeout governs */
    } else if (c->state == PX_C_BODY) {
        tv = c->w->tv_client_idle;
        if (c->req_end_ms != 0) {
            /* The whole request's deadline, when it comes before the next byte's. */
            rem = px_tv_until(c->req_end_ms);
            if (evutil_timercmp(&rem, tv, <))
                tv = &rem;
        }
    }
    px_ev_arm(&c->rev, tv);
    c->read_off = false;
    /* Bytes TLS already took from the socket wake no event: read them now. */
    if (XF_UNLIKELY(c->ssl != NULL) && px_tls_pending(c))
        event_active(&c->rev, EV_READ, 1);
}

/* recv for the connection, through TLS on a TLS listener. */
static inline ssize_t
px_client_recv(struct px_client *c, void *buf, size_t len)
{
    if (c->ssl == NULL)
        return recv(c->fd, buf, len, 0);
    return px_tls_recv(c->ssl, buf, len, &c->tls_read_ww);
}

void
px_client_read_off(struct px_client *c)
{
    if (!c->read_off) {
        event_del(&c->rev);
        c->read_off = true;
    }
}

/* Sends a complete response of the proxy's own, short and plain. A response to HEAD has no
 * content (RFC 9110 9.3.2): its text would be read as the next response on a kept connection. */
static void
px_client_simple_response(struct px_client *c, int status, const char *why, bool close, int minor,
                          bool head)
{
    const char *reason = px_http_reason(status);

    px_buf_printf(&c->out,
                  "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n",
                  status, reason, strlen(why) + strlen(reason) + 7,
                  close        ? "Connection: close\r\n"
                  : minor == 0 ? "Connection: keep-alive\r\n"
                               : "");
    if (!head)
        px_buf_printf(&c->out, "%d %s: %s\n", status, reason, why);
}

/* Refuses a request that never reached a node: the status, Connection: close, then close. */
static enum px_rc
px_client_reject(struct px_client *c, int status, const char *why)
{
    XF_LOG(XF_LOG_DEBUG, "proxy", "event=reject client=%s status=%d reason=\"%s\"", c->ip, status,
           why);
    /* The text goes even to a HEAD (its method may not be read yet): the connection closes
     * after it, so no later response can be mistaken for it. */
    px_client_simple_response(c, status, why, true, 1, false);
    c->closing = true;
    c->linger = true;
    px_client_read_off(c);
    return px_client_flush(c);
}

/* Whether a request line could still be within the limits: 414 decides on the first line. */
static int
px_client_line_status(const struct px_client *c, const char *p, size_t n)
{
    size_t lim = c->w->cfg->limits.max_request_line_bytes;
    const char *lf = memchr(p, '\n', XF_MIN(n, lim + 2));

    if (lf == NULL)
        return n > lim ? 414 : 0;
    return (size_t)(lf - p) > lim + 1 ? 414 : 0;
}

/* Maps a request parse error to a status: 505 for a well-formed version other than 1.0/1.1. */
static int
px_client_parse_status(const struct px_client *c, const char *p, size_t n, llhttp_errno_t err)
{
    const struct px_req_head *h = &c->w->req_head;

    if (h->status != 0)
        return h->status;
    if (err == HPE_INVALID_VERSION) {
        const char *lf = memchr(p, '\n', n);
        const char *end = lf ? lf : p + n;
        if (end > p && end[-1] == '\r')
            end--;
        /* "HTTP/" DIGIT "." DIGIT at the end of the line is well-formed: the version is refused. */
        if (end - p >= 9 && memcmp(end - 8, "HTTP/", 5) == 0 && end[-3] >= '0' && end[-3] <= '9' &&
            end[-2] == '.' && end[-1] >= '0' && end[-1] <= '9' && end[-9] == ' ')
            return 505;
    }
    return 400;
}

/*
 * Parses a request head from its first byte. Returns PX_OK once the head is complete and the
 * request dispatched (*used = bytes the parser took, head and any body), PX_AGAIN when more bytes
 * are needed (nothing consumed), PX_CLOSE after a refusal.
 */
static enum px_rc
px_client_head(struct px_client *c, const char *p, size_t n, size_t *used)
{
    struct px_req_head *h = &c->w->req_head;
    size_t max = c->w->cfg->limits.max_header_bytes;
    size_t m = XF_MIN(n, max);
    llhttp_errno_t err;
    int st;

    *used = 0;
    st = px_client_line_status(c, p, n);
    if (st != 0)
        return px_client_reject(c, st, "request line too long");
    memset(h, 0, sizeof(*h));
    h->end = p + m;
    llhttp_init(&c->parser, HTTP_REQUEST, &px_req_settings);
    c->parser.data = c;
    err = llhttp_execute(&c->parser, p, m);
    if (err == HPE_PAUSED_H2_UPGRADE)
        /* The HTTP/2 connection preface ("PRI * HTTP/2.0"): llhttp pauses on it, and its own
         * message ("Pause on PRI/Upgrade") would tell the client nothing. */
        return px_client_reject(c, 505,
                                "HTTP/2 is not served on this listener: it speaks HTTP/1.1 (HTTP/2 "
                                "needs TLS with ALPN, or a tcp-mode listener)");
    if (!h->complete) {
        if (err == HPE_OK) {
            if (n > max)
                return px_client_reject(c, 431, "request header fields too large");
            return PX_AGAIN;
        }
        st = px_client_parse_status(c, p, n, err);
        return px_client_reject(c, st, h->why ? h->why : llhttp_get_error_reason(&c->parser));
    }
    /* The head was taken; the request is dispatched (or answered) from now on. */
    if (err == HPE_OK) {
        *used = m;
        return PX_OK;
    }
    if (err == HPE_PAUSED) {
        *used = (size_t)(llhttp_get_error_pos(&c->parser) - p);
        return PX_OK;
    }
    if (c->txn == NULL)
        return px_client_reject(c, px_client_parse_status(c, p, n, err),
                                h->why ? h->why : llhttp_get_error_reason(&c->parser));
    *used = (size_t)(llhttp_get_error_pos(&c->parser) - p);
    return px_txn_error(c->txn, h->status ? h->status : 400,
                        h->why ? h->why : "malformed request body");
}

/*
 * Feeds request bytes (head or body) to the state machine; *consumed says how many it took. A
 * transaction answered meanwhile is finished here, and parsing goes on with a pipelined request.
 */
static enum px_rc
px_client_feed(struct px_client *c, const char *p, size_t n, size_t *consumed)
{
    enum px_rc rc = PX_OK;
    size_t used;

    *consumed = 0;
    c->in_feed = true;
    while (n > 0 && !c->closing && c->state != PX_C_DONE) {
        if (c->state == PX_C_HEAD) {
            if (XF_UNLIKELY(px_worker_behind(c->w))) {
                px_worker_hold(c->w, c); /* a failure reported a moment ago: its verdict first */
                break;
            }
            if (c->head_start_ms == 0) {
                unsigned whole = c->w->cfg->timeouts.client_request_ms;

                c->head_start_ms = xf_now_ms();
                c->req_end_ms = whole != 0 ? c->head_start_ms + whole : 0;
            }
            rc = px_client_head(c, p, n, &used);
            if (rc == PX_AGAIN) {
                rc = PX_OK;
                break;
            }
        } else {
            llhttp_errno_t err;
            c->w->req_head.status = 0;
            c->w->req_head.why = NULL;
            err = llhttp_execute(&c->parser, p, n);
            used = err == HPE_OK ? n : (size_t)(llhttp_get_error_pos(&c->parser) - p);
            if (err != HPE_OK && err != HPE_PAUSED) {
                struct px_req_head *h = &c->w->req_head;
                rc = px_txn_error(c->txn, h->status ? h->status : 400,
                                  h->why ? h->why : "malformed request body");
            }
        }
        if (c->txn != NULL)
            c->txn->bytes_in += used;
        *consumed += used;
        p += used;
        n -= used;
        if (rc == PX_CLOSE)
            break;
        if (c->txn != NULL && c->txn->u != NULL)
            rc = px_upstream_flush(c->txn->u);
        if (rc == PX_CLOSE)
            break;
        if (c->txn != NULL && c->txn->resp_done)
            px_txn_finish(c->txn);
    }
    c->in_feed = false;
    return rc;
}

static enum px_rc
px_client_on_eof(struct px_client *c)
{
    c->eof = true;
    px_client_read_off(c);
    /* A request in flight still gets its response (the client may have half-closed). */
    if (c->txn != NULL && c->state == PX_C_DONE)
        return PX_OK;
    if (c->txn == NULL && px_buf_len(&c->out) > 0) {
        c->closing = true; /* the queued response still goes out, then the connection ends */
        return PX_OK;
    }
    return PX_CLOSE;
}

static enum px_rc
px_client_read(struct px_client *c)
{
    struct px_worker *w = c->w;
    enum px_rc rc;
    size_t consumed;
    ssize_t n;

    if (px_buf_len(&c->in) == 0) {
        n = px_client_recv(c, w->rbuf, w->rbuf_cap);
        if (n > 0) {
            rc = px_client_feed(c, w->rbuf, (size_t)n, &consumed);
            if (rc == PX_OK && consumed < (size_t)n && !c->closing &&
                px_buf_append_small(&c->in, w->rbuf + consumed, (size_t)n - consumed) == -1)
                rc = PX_CLOSE;
            goto fed;
        }
    } else {
        /* Room for as much again as it holds (1 KiB at least): a head that arrives in pieces
         * grows its buffer by doubling, not by 16 KiB at once. */
        char *dst = px_buf_reserve_small(&c->in, XF_MAX(px_buf_len(&c->in), (size_t)1024));
        if (dst == NULL)
            return PX_CLOSE;
        n = px_client_recv(c, dst, c->in.cap - c->in.end);
        if (n > 0) {
            c->in.end += (size_t)n;
            rc = px_client_feed(c, px_buf_head(&c->in), px_buf_len(&c->in), &consumed);
            if (rc != PX_CLOSE)
                px_buf_consume(&c->in, consumed);
            goto fed;
        }
    }
    if (n == 0)
        return px_client_on_eof(c);
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        if (XF_UNLIKELY(c->tls_read_ww) && !c->wev_on) {
            event_add(&c->wev, c->w->tv_client_idle); /* TLS must write before it reads on */
            c->wev_on = true;
        }
        return PX_OK;
    }
    return PX_CLOSE;
fed:
    if (rc == PX_CLOSE)
        return PX_CLOSE;
    if (px_buf_len(&c->out) > 0 || c->closing) {
        rc = px_client_flush(c);
        if (rc == PX_CLOSE)
            return PX_CLOSE;
    }
    if (px_buf_len(&c->in) == 0) {
        px_buf_free(&c->in);
        c->head_start_ms = 0;
    }
    /* Bound what a client may queue ahead of its responses (pipelining, slow nodes). */
    if (px_buf_len(&c->in) > c->w->cfg->limits.max_header_bytes * 2u + 65536u)
        px_client_read_off(c);
    else if ((c->state == PX_C_HEAD && px_buf_len(&c->in) > 0 && c->head_start_ms != 0) ||
             (c->state == PX_C_BODY && c->req_end_ms != 0))
        px_client_read_on(c); /* re-arm the head's or the whole request's deadline */
    else if (XF_UNLIKELY(c->ssl != NULL) && !c->read_off && px_tls_pending(c))
        event_active(&c->rev, EV_READ, 1);
    return rc;
}

/* The TLS handshake goes on (either event); once done, whatever came with it is read. */
static void
px_client_on_handshake(struct px_client *c, short what)
{
    enum px_rc rc;

    if (what & EV_TIMEOUT) {
        px_tls_handshake_timeout(c);
        px_client_free(c); /* a stalled handshake: nothing was asked, nothing to answer */
        return;
    }
    rc = px_tls_handshake(c);
    if (rc == PX_AGAIN)
        return;
    if (rc == PX_OK) {
        px_client_read_on(c); /* the header timeout from now on */
        rc = px_client_read(c);
    }
    if (rc == PX_CLOSE)
        px_client_free(c);
}

static void
px_client_on_timeout(struct px_client *c)
{
    enum px_rc rc = PX_CLOSE;

    if (c->state == PX_C_HEAD && (c->head_start_ms != 0 || px_buf_len(&c->in) > 0))
        rc = px_client_reject(c, 408, "the request head took too long");
    else if (c->state == PX_C_BODY && c->txn != NULL && !c->txn->resp_started)
        rc = px_txn_error(c->txn, 408, "the request body took too long");
    if (rc == PX_CLOSE)
        px_client_free(c);
}

static void
px_client_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct px_client *c = arg;

    XF_UNUSED(fd);
    if (c->lingering) {
        if ((what & EV_TIMEOUT) || px_client_linger_read(c) == PX_CLOSE)
            px_client_free(c);
        return;
    }
    if (XF_UNLIKELY(c->pre != PX_PRE_NONE)) {
        px_tcp_on_read(c, what);
        return;
    }
    if (XF_UNLIKELY(c->tls_hs)) {
        px_client_on_handshake(c, what);
        return;
    }
    if (what & EV_TIMEOUT) {
        px_client_on_timeout(c);
        return;
    }
    if (px_client_read(c) == PX_CLOSE)
        px_client_free(c);
}

static void
px_client_on_write(evutil_socket_t fd, short what, void *arg)
{
    struct px_client *c = arg;

    XF_UNUSED(fd);
    if (XF_UNLIKELY(c->tls_hs)) {
        px_client_on_handshake(c, what);
        return;
    }
    if (what & EV_TIMEOUT) {
        /* The client read nothing for client_idle: what is still queued for it would hold the
         * kernel's buffers (and a FIN behind them) as long as it keeps its window shut. */
        c->abort = true;
        px_client_free(c);
        return;
    }
    if (XF_UNLIKELY(c->tls_read_ww)) {
        c->tls_read_ww = false;
        if (px_client_read(c) == PX_CLOSE) {
            px_client_free(c);
            return;
        }
    }
    if (px_client_flush(c) == PX_CLOSE)
        px_client_free(c);
}

enum px_rc
px_client_flush(struct px_client *c)
{
    enum px_rc rc = XF_LIKELY(c->ssl == NULL) ? px_buf_send(&c->out, c->fd, &c->sent_total)
                                              : px_tls_send(c->ssl, &c->out, &c->sent_total);

    if (rc == PX_CLOSE)
        return PX_CLOSE;
    if (rc == PX_AGAIN) {
        if (!c->wev_on) {
            event_add(&c->wev, c->w->tv_client_idle);
            c->wev_on = true;
        }
        if (px_buf_len(&c->out) > PX_HIGH_MARK && c->txn != NULL && c->txn->u != NULL)
            px_upstream_read_off(c->txn->u);
        return PX_OK;
    }
    if (c->wev_on) {
        event_del(&c->wev);
        c->wev_on = false;
    }
    if (c->closing)
        return c->linger && !c->eof ? px_client_linger(c) : PX_CLOSE;
    if (c->txn == NULL) {
        px_buf_free(&c->out);
        if (c->state == PX_C_HEAD && c->head_start_ms == 0)
            px_client_read_on(c); /* the keep-alive idle time starts now */
    } else if (c->txn->u != NULL && c->txn->u->read_off && !c->txn->resp_done) {
        px_upstream_read_on(c->txn->u);
    }
    return PX_OK;
}

/*
 * Closes gracefully a connection whose client may still be sending (a refused request, an early
 * answer): our side is shut, and what the client sends is read and dropped until it closes or
 * for at most PX_LINGER_MS, so its unread bytes don't turn our close into a reset that could
 * destroy the answer before the client reads it (RFC 9112 9.6).
 */
static enum px_rc
px_client_linger(struct px_client *c)
{
    static const struct timeval tv = {.tv_sec = PX_LINGER_MS / 1000,
                                      .tv_usec = (PX_LINGER_MS % 1000) * 1000};

    if (c->lingering)
        return PX_OK;
    px_tls_client_shut(c);
    if (shutdown(c->fd, SHUT_WR) == -1)
        return PX_CLOSE;
    c->lingering = true;
    c->linger_end_ms = xf_now_ms() + PX_LINGER_MS;
    c->closing = true;
    event_add(&c->rev, &tv);
    c->read_off = false;
    return PX_OK;
}

/* Reads and drops what a lingering client still sends; PX_CLOSE when it is time to close. */
static enum px_rc
px_client_linger_read(struct px_client *c)
{
    for (int i = 0; i < 16; i++) {
        ssize_t n = recv(c->fd, c->w->rbuf, c->w->rbuf_cap, 0);
        if (n == 0)
            return PX_CLOSE;
        if (n == -1)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? PX_OK : PX_CLOSE;
        if (xf_now_ms() >= c->linger_end_ms)
            return PX_CLOSE;
    }
    return PX_OK;
}

/* --- requests --- */

static bool
px_req_keep_alive(const struct px_client *c)
{
    return llhttp_should_keep_alive(&c->parser) != 0;
}

/* Writes "METHOD target HTTP/1.x" (the target cut at 300 bytes) for the access log. */
static size_t
px_req_line_copy(char *dst, size_t cap, const char *method, const char *url, size_t url_len,
                 int minor)
{
    size_t m = strlen(method), u = XF_MIN(url_len, (size_t)PX_TARGET_URL_MAX), n = 0;

    if (m + u + 11 > cap)
        return 0;
    memcpy(dst, method, m);
    n = m;
    dst[n++] = ' ';
    memcpy(dst + n, url, u);
    n += u;
    memcpy(dst + n, " HTTP/1.", 8);
    n += 8;
    dst[n++] = (char)('0' + minor);
    dst[n] = '\0';
    return n;
}

/* RFC 9110 9.2.2: a request that may be sent twice with the effect of once. */
static bool
px_req_is_idempotent(uint8_t method)
{
    return method == HTTP_GET || method == HTTP_HEAD || method == HTTP_OPTIONS ||
           method == HTTP_PUT || method == HTTP_DELETE || method == HTTP_TRACE;
}

/* GET, HEAD and OPTIONS pass the freeze; every other method is a write. */
static bool
px_req_is_read(uint8_t method)
{
    return method == HTTP_GET || method == HTTP_HEAD || method == HTTP_OPTIONS;
}

/* The 423's explanation, with the time the freeze began (kept in the worker: one at a time). */
static const char *
px_req_freeze_why(struct px_worker *w, const struct bal_snapshot *s)
{
    time_t since = (time_t)s->freeze_since;
    struct tm tm;
    char when[32] = "an unknown time";

    if (gmtime_r(&since, &tm) != NULL)
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(w->why_buf, sizeof(w->why_buf),
             "the upgrade freeze is on since %s: configuration writes through this listener are "
             "refused until it is lifted",
             when);
    return w->why_buf;
}

/*
 * An admin_api listener (the gateways' own admin API) always goes to cluster x, the version in
 * service, on the node the split key would choose there.
 */
static void
px_req_pick_admin_api(struct px_worker *w, const struct bal_snapshot *s,
                      const struct bal_request *req, struct bal_choice *out)
{
    struct bal_key key;

    memset(out, 0, sizeof(*out));
    bal_key_find(s->split, req, &w->bal, &key);
    out->cluster = CFG_CLUSTER_X;
    out->assigned = CFG_CLUSTER_X;
    out->key_index = key.index;
    out->khash = bal_node_key_hash(key.ptr, key.len, s->seed_hash);
    out->node = bal_node_pick_hashed(&s->clusters[CFG_CLUSTER_X], CFG_CLUSTER_X, out->khash,
                                     &w->bal, NULL, 0);
}

/* An upgrade request (a tunnel if the node agrees) keeps what it offered, for the 101, and its
 * split key, so that its tunnel can tell later whether the key moved to the other side. 0, or
 * -1 when out of memory. */
static int
px_req_keep_upgrade(struct px_txn *t, const struct px_req_out *res, const struct bal_request *breq)
{
    struct bal_key key;

    t->upgrade = strdup(res->upgrade);
    if (t->upgrade == NULL)
        return -1;
    bal_key_find(t->snap->s->split, breq, &t->c->w->bal, &key);
    t->key = malloc(key.len + 1);
    if (t->key == NULL)
        return -1;
    memcpy(t->key, key.ptr, key.len);
    t->key[key.len] = '\0';
    t->key_len = key.len;
    return 0;
}

/* Whether a request is test traffic (test_traffic): from one of its sources, or carrying its
 * header (whatever the value). */
static bool
px_req_is_test(const struct cfg_test_traffic *tt, const struct bal_request *req)
{
    if (tt->n_sources > 0 && bal_addr_in(&req->peer, tt->sources, tt->n_sources))
        return true;
    if (tt->header != NULL) {
        size_t len = strlen(tt->header);

        for (size_t i = 0; i < req->n_hdrs; i++)
            if (req->hdrs[i].name_len == len &&
                strncasecmp(req->hdrs[i].name, tt->header, len) == 0)
                return true;
    }
    return false;
}

/* Runs inside on_headers_complete: checks the head, picks a node and queues the request. */
static int
px_req_on_headers_complete(llhttp_t *p)
{
    struct px_client *c = p->data;
    struct px_req_head *h = px_client_head_of(p);
    struct px_worker *w = c->w;
    struct bal_request breq = {.peer = c->peer,
                               .hdrs = w->hdrs,
                               .n_hdrs = h->n_hdrs,
                               .target = h->url,
                               .target_len = h->url_len};

    if (XF_UNLIKELY(c->tls_id != NULL))
        for (int i = 0; i < BAL_CERT_COUNT; i++)
            if (c->tls_id_len[i] > 0) {
                breq.cert[i] = c->tls_id + c->tls_id_off[i];
                breq.cert_len[i] = c->tls_id_len[i];
            }
    struct bal_choice choice;
    struct px_txn *t;
    const char *why = NULL;
    int status = 0;
    struct px_buf head = {0};
    struct px_req_out res;
    struct px_req_in in = {.method = p->method,
                           .minor = p->http_minor,
                           .url = h->url,
                           .url_len = h->url_len,
                           .hdrs = w->hdrs,
                           .n_hdrs = h->n_hdrs,
                           .client_ip = c->ip,
                           .proto = c->ssl != NULL ? "https" : "http",
                           .max_body = w->cfg->limits.max_body_bytes,
                           .parser_te_other = (p->flags & F_TRANSFER_ENCODING) != 0 &&
                                              (p->flags & F_CHUNKED) == 0};

    h->complete = true;
    if (h->url_len > 0 && !(h->url[h->url_len] == ' ' && h->url[h->url_len + 1] == 'H')) {
        h->complete = false;
        return px_req_fail(p, 400, "request line without an HTTP version");
    }
    if (p->http_major != 1 || p->http_minor > 1) {
        h->complete = false;
        return px_req_fail(p, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
    }
    t = px_txn_new(c);
    if (t == NULL) {
        h->complete = false;
        return px_req_fail(p, 500, "out of memory");
    }
    t->method = p->method;
    t->idempotent = px_req_is_idempotent(p->method);
    t->minor = p->http_minor;
    /* The connection's last request (limits.max_requests_per_connection): its response closes. */
    c->n_requests++;
    t->client_ka =
        px_req_keep_alive(c) && (c->w->cfg->limits.max_requests_per_connection == 0 ||
                                 c->n_requests < c->w->cfg->limits.max_requests_per_connection);
    t->target_len = px_req_line_copy(t->target, sizeof(t->target), llhttp_method_name(p->method),
                                     h->url, h->url_len, p->http_minor);
    if (XF_UNLIKELY(h->url_len > PX_TARGET_URL_MAX) && w->alog.json && w->alog.fd != -1) {
        /* Rare enough to allocate for: the json log shows more of it than `target` holds. A
         * failure only cuts the path in its line. */
        t->url_long_len = XF_MIN(h->url_len, (size_t)PX_ALOG_PATH_MAX);
        t->url_long = malloc(t->url_long_len);
        if (t->url_long != NULL)
            memcpy(t->url_long, h->url, t->url_long_len);
    }

    /* The node is chosen first (bal_pick does no I/O); nothing is sent before the head passed. */
    t->snap = px_worker_snapshot(w);
    t->snap->inflight++;
    t->x_only = c->l->conf.role == CFG_ROLE_ADMIN_API;
    t->node_target = (uint8_t)c->l->target;
    if (t->x_only)
        px_req_pick_admin_api(w, t->snap->s, &breq, &choice);
    else
        bal_pick(t->snap->s, &breq, &w->bal, &choice);
    t->cluster = choice.cluster;
    t->node = choice.node;
    if (XF_UNLIKELY(w->cfg->test_traffic.header != NULL || w->cfg->test_traffic.n_sources > 0))
        t->test = px_req_is_test(&w->cfg->test_traffic, &breq);
    if (XF_UNLIKELY(choice.override > BAL_OVERRIDE_HONOURED)) {
        /* Said in the access log and counted: a tester whose override is ignored should know. */
        t->override = (uint8_t)choice.override;
        if (choice.override == BAL_OVERRIDE_INVALID)
            XF_STAT_INC(w->stats->override_invalid);
        else
            XF_STAT_INC(w->stats->override_not_allowed);
    }
    if (t->node != NULL && t->node_target != 0)
        px_worker_pool(w, t->node); /* so that its target's address is known */
    in.fallback_host =
        t->node != NULL ? px_pool_target_text(w, t->node, t->node_target) : "localhost";
    status = px_rewrite_request(&in, &head, &res, &why);
    if (status == 0 && head.failed) {
        status = 503;
        why = "the proxy is out of memory";
    }
    if (status == 0 && c->l->conf.role == CFG_ROLE_ADMIN_API && t->snap->s->freeze &&
        !px_req_is_read(p->method)) {
        why = px_req_freeze_why(w, t->snap->s);
        status = 423;
    }
    if (status != 0) {
        px_buf_free(&head);
        px_txn_free(t);
        h->complete = false;
        return px_req_fail(p, status, why);
    }
    t->req_chunked = res.chunked;
    t->up_close = res.close;
    if (XF_UNLIKELY(res.upgrade_len > 0) && px_req_keep_upgrade(t, &res, &breq) == -1) {
        px_buf_free(&head);
        px_txn_free(t);
        h->complete = false;
        return px_req_fail(p, 503, "the proxy is out of memory");
    }
    px_txn_route(t, &choice);
    if (t->node == NULL) {
        px_buf_free(&head);
        c->txn = t;
        c->first = false;
        c->state = PX_C_BODY;
        c->head_start_ms = 0;
        px_txn_fail(t, 503, "no node available", XF_FAIL_NO_NODE);
        return 0;
    }
    c->txn = t;
    c->first = false;
    c->state = PX_C_BODY;
    c->head_start_ms = 0;
    px_client_read_on(c);
    /* The node counts the request from now on, its body buffered or not: least_conn sees it,
     * and the node's id stays busy (a reload that removes the node cannot hand the id on). */
    XF_STAT_INC(w->active[t->node->id]);
    XF_STAT_INC(w->usage->ns[t->node->id].requests);
    t->dispatched = true;
    t->tried[t->n_tried++] = t->node->id;
    if (px_req_buffers(w, p, &res)) {
        /* The body is read whole first: a slow client holds no node connection meanwhile. */
        t->buffering = true;
        /* Its pool exists from now on, so that a reload or a drain meanwhile marks it (the
         * request then moves to another node: px_txn_dispatch). */
        px_worker_pool(w, t->node);
        t->held_head = (uint32_t)px_buf_len(&head);
        t->held = head; /* moved: the body is appended to it (px_txn_sink) */
        return 0;
    }
    px_req_send(t, &head); /* an error is answered there; px_client_feed finishes it */
    return 0;
}

/*
 * Whether the body of a request is read whole before it goes to a node
 * (limits.request_buffer_bytes): there is one, not known to be larger than the buffer (a chunked
 * one goes as soon as it outgrows it), and the client does not wait for 100 Continue (the node
 * says it, once it has the head).
 */
static bool
px_req_buffers(const struct px_worker *w, const llhttp_t *p, const struct px_req_out *res)
{
    unsigned max = w->cfg->limits.request_buffer_bytes;

    if (max == 0 || res->expect_100 || res->upgrade_len > 0)
        return false;
    if (res->chunked)
        return true;
    return res->has_length && p->content_length > 0 && p->content_length <= max;
}

/* The request goes to its node (chosen with its head): `data` (taken) is its head, and the body
 * read so far. */
static void
px_req_send(struct px_txn *t, struct px_buf *data)
{
    t->t_up_start_us = xf_now_us();
    /* An idempotent request keeps what it sends for a replay on another node (until a body byte
     * read later goes out: px_req_on_body); `data` itself is handed over without a copy. */
    if (t->idempotent)
        px_buf_dup(&t->replay, px_buf_head(data), px_buf_len(data));
    px_txn_dispatch(t, data);
}

/* A buffered body is complete, or outgrew the buffer: what was read goes to the node. */
static void
px_req_send_held(struct px_txn *t)
{
    struct px_buf data = t->held;

    memset(&t->held, 0, sizeof(t->held));
    t->buffering = false;
    px_req_send(t, &data);
}

static int
px_req_on_body(llhttp_t *p, const char *at, size_t len)
{
    struct px_client *c = p->data;
    struct px_txn *t = c->txn;
    uint64_t max = c->w->cfg->limits.max_body_bytes;

    struct px_buf *sink;

    t->req_body += len;
    if (max > 0 && t->req_body > max)
        return px_req_fail(p, 413, "request body larger than the limit");
    sink = t->resp_done ? NULL : px_txn_sink(t);
    if (sink == NULL)
        return 0; /* answered already: the body is read and dropped */
    if (px_buf_len(&t->replay) > 0)
        px_buf_free(&t->replay); /* a streamed body is never replayed */
    if (t->queued && px_buf_len(sink) > PX_HIGH_MARK)
        px_client_read_off(c); /* resumed once a connection takes the bytes and drains them */
    if (t->req_chunked) {
        char sz[24];
        int n = snprintf(sz, sizeof(sz), "%zx\r\n", len);
        px_buf_append(sink, sz, (size_t)n);
        px_buf_append(sink, at, len);
        if (px_buf_append(sink, "\r\n", 2) == -1)
            return -1;
    } else if (px_buf_append(sink, at, len) == -1) {
        return -1;
    }
    /* A chunked body that outgrew the buffer streams from here on. What is held counts, chunk
     * framing included: one-byte chunks cannot hold six times the buffer. */
    if (t->buffering &&
        px_buf_len(&t->held) - t->held_head > c->w->cfg->limits.request_buffer_bytes)
        px_req_send_held(t);
    return 0;
}

static int
px_req_on_message_complete(llhttp_t *p)
{
    struct px_client *c = p->data;
    struct px_txn *t = c->txn;

    struct px_buf *sink = t->resp_done ? NULL : px_txn_sink(t);

    t->req_done = true;
    c->state = PX_C_DONE;
    if (sink != NULL && t->req_chunked) {
        px_buf_append(sink, "0\r\n\r\n", 5);
        /* An empty chunked body: the replay copy must end the same way. */
        if (px_buf_len(&t->replay) > 0 && px_buf_append(&t->replay, "0\r\n\r\n", 5) == -1)
            px_buf_free(&t->replay);
    }
    if (t->buffering)
        px_req_send_held(t); /* the whole request, at once */
    if (t->u != NULL && !t->resp_done)
        px_upstream_arm_response_timeout(t->u);
    px_client_read_on(c);
    return HPE_PAUSED;
}

/* --- transactions --- */

struct px_txn *
px_txn_new(struct px_client *c)
{
    struct px_worker *w = c->w;
    struct px_txn *t;

    if (w->n_txn_cache > 0) {
        t = w->txn_cache[--w->n_txn_cache];
        memset(t, 0, sizeof(*t));
    } else {
        t = calloc(1, sizeof(*t));
    }
    if (t == NULL)
        return NULL;
    t->c = c;
    t->t_start_us = xf_now_us();
    t->out_mark = c->sent_total + px_buf_len(&c->out);
    return t;
}

/*
 * Answers the transaction with an error of the proxy's own when no response byte went out yet;
 * otherwise the client connection can only be cut. The node connection is dropped.
 */
enum px_rc
px_txn_error(struct px_txn *t, int status, const char *why)
{
    struct px_client *c = t->c;

    px_txn_dequeue(t);
    if (t->u != NULL) {
        px_upstream_release(t->u, false);
        t->u = NULL;
    }
    if (t->resp_started && !t->resp_done && c->sent_total <= t->out_mark) {
        /* The node's response failed (a malformed chunked body, a cut) before a byte of it went
         * to the client: what it had queued is taken back and the client gets a 502 like for a
         * bad head, not a cut connection. */
        px_buf_truncate(&c->out, (size_t)(t->out_mark - c->sent_total));
        t->resp_started = false;
        t->resp_chunked_out = false;
        t->resp_close_out = false;
    }
    if (t->resp_started && !t->resp_done) {
        /* Part of the response went out: only an abortive close tells the client it is cut. */
        c->closing = true;
        c->abort = true;
        return PX_CLOSE;
    }
    if (t->resp_done) {
        /* Answered already (an error of ours is queued): it still goes out, then we close. */
        t->ka = false;
        c->closing = true;
        c->linger = true;
        px_client_read_off(c);
        return c->in_feed ? PX_OK : px_txn_resp_done(t);
    }
    XF_LOG(XF_LOG_DEBUG, "proxy", "event=error client=%s status=%d reason=\"%s\"", c->ip, status,
           why);
    t->status = status;
    if (XF_UNLIKELY(t->raw)) {
        /* A tcp-mode connection has no HTTP to answer in: it is closed (logged with the status
         * an HTTP client would have had). */
        t->resp_started = true;
        t->resp_done = true;
        c->closing = true;
        return PX_CLOSE;
    }
    /* After a node fault the connection can go on; after a refused request body it cannot. */
    t->ka = t->client_ka && status >= 500 && !c->w->draining;
    px_client_simple_response(c, status, why, !t->ka, t->minor, t->method == HTTP_HEAD);
    t->resp_started = true;
    t->resp_done = true;
    if (c->in_feed)
        return PX_OK; /* px_client_feed finishes it once the parser is out of the way */
    return px_txn_resp_done(t);
}

/*
 * Ends a transaction whose response is complete in the client's output: logs it and frees it.
 * When the request is not complete (the node answered early, or an error cut it) the connection
 * closes once the output drains; otherwise it is ready for the next request.
 */
void
px_txn_finish(struct px_txn *t)
{
    struct px_client *c = t->c;
    bool req_done = t->req_done;
    bool ka = t->ka && req_done && !c->w->draining && !c->eof;

    if (t->u != NULL) {
        px_upstream_release(t->u, false);
        t->u = NULL;
    }
    t->bytes_out = c->sent_total + px_buf_len(&c->out) - t->out_mark;
    px_alog_txn(c->w, t);
    c->txn = NULL;
    px_txn_free(t);
    c->state = PX_C_HEAD;
    c->head_start_ms = 0;
    if (!ka) {
        c->closing = true;
        c->linger = c->linger || !req_done;
        px_client_read_off(c);
    }
}

/* The response is complete (called from the node's side): finish and go on with the client. */
enum px_rc
px_txn_resp_done(struct px_txn *t)
{
    struct px_client *c = t->c;

    t->resp_done = true;
    px_txn_finish(t);
    if (c->closing)
        return px_client_flush(c);
    return px_client_continue(c);
}

/* Goes on with the connection after a response: flushes, then parses any pipelined request. */
enum px_rc
px_client_continue(struct px_client *c)
{
    enum px_rc rc = px_client_flush(c);
    size_t consumed;

    if (rc == PX_CLOSE)
        return rc;
    if (px_buf_len(&c->in) == 0) {
        px_client_read_on(c);
        return PX_OK;
    }
    rc = px_client_feed(c, px_buf_head(&c->in), px_buf_len(&c->in), &consumed);
    if (rc == PX_CLOSE)
        return rc;
    px_buf_consume(&c->in, consumed);
    if (px_buf_len(&c->in) == 0)
        px_buf_free(&c->in);
    px_client_read_on(c);
    return px_client_flush(c);
}

/* A failure on the node's side (or no node): counted for the stats, then answered as an error. */
enum px_rc
px_txn_fail(struct px_txn *t, int status, const char *why, enum xf_fail kind)
{
    if (t->counted && !t->failed) {
        t->failed = true;
        XF_STAT_INC(t->c->w->stats->cluster[t->cluster].failures[kind]);
        if (t->node != NULL && t->dispatched)
            XF_STAT_INC(t->c->w->usage->ns[t->node->id].failures[kind]);
    }
    return px_txn_error(t, status, why);
}

/*
 * Counts a transaction that ends: its cluster's and its node's counters and latencies, and the
 * second the guard reads (test traffic apart; tunnels are not responses to time).
 */
static void
px_txn_count(struct px_worker *w, const struct px_txn *t)
{
    struct xf_cluster_stats *cs = &w->stats->cluster[t->cluster];
    struct xf_node_stats *ns = t->node != NULL && t->dispatched ? &w->usage->ns[t->node->id] : NULL;
    bool answered = t->status >= 100 && t->status < 600 && t->resp_done;
    bool error = t->failed || (answered && t->status >= 500);
    uint64_t now = xf_now_us(), total = now - t->t_start_us;

    XF_STAT_DEC(cs->active);
    XF_STAT_ADD(cs->bytes_in, t->bytes_in);
    XF_STAT_ADD(cs->bytes_out, t->bytes_out);
    if (ns != NULL) {
        XF_STAT_ADD(ns->bytes_in, t->bytes_in);
        XF_STAT_ADD(ns->bytes_out, t->bytes_out);
    }
    if (answered)
        XF_STAT_INC(cs->responses[t->status / 100]);
    if (XF_UNLIKELY(t->test)) {
        XF_STAT_INC(cs->test_requests);
        if (error)
            XF_STAT_INC(cs->test_errors);
    }
    if (t->tunnel || t->raw)
        return;
    if (answered) {
        xf_fixhist_add(&cs->total, total);
        if (t->t_head_us != 0)
            xf_fixhist_add(&cs->ttfb, t->t_head_us - t->t_start_us);
        if (ns != NULL && t->t_head_us != 0) {
            /* The node's own answer (the proxy's errors are the node's failures). */
            XF_STAT_INC(ns->responses[t->status / 100]);
            xf_fixhist_add(&ns->total, total);
            xf_fixhist_add(&ns->ttfb, t->t_head_us - t->t_start_us);
        }
    }
    /* A client that went away before its answer tells nothing of the side. */
    if (!t->test && (answered || t->failed))
        xf_stats_second(cs, now / 1000000u, error, answered ? total : UINT64_MAX);
}

/* Frees a transaction (its node connection already released) and lets go of its snapshot. */
void
px_txn_free(struct px_txn *t)
{
    struct px_worker *w = t->c->w;

    if (t->counted)
        px_txn_count(w, t);
    if (XF_UNLIKELY(t->key != NULL)) {
        XF_FREE(t->upgrade);
        XF_FREE(t->key);
    }
    if (XF_UNLIKELY(t->url_long != NULL)) /* most have none: no call on the common path */
        XF_FREE(t->url_long);

    px_txn_dequeue(t);
    px_buf_free(&t->held);
    px_buf_free(&t->replay);
    if (t->node != NULL && t->dispatched)
        XF_STAT_DEC(w->active[t->node->id]);
    if (t->snap != NULL) /* a tunnel's transaction let go of its snapshot (px_tunnel_start) */
        px_worker_snapshot_done(w, t->snap);
    /* Kept for the worker's next request (a few: a burst's worth). */
    if (w->n_txn_cache < PX_TXN_CACHE)
        w->txn_cache[w->n_txn_cache++] = t;
    else
        free(t);
}

/* --- life cycle --- */

void
px_client_set_peer(struct px_client *c, const struct sockaddr *sa)
{
    memset(&c->peer, 0, sizeof(c->peer));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &in4->sin_addr, c->ip, sizeof(c->ip));
        c->peer.family = AF_INET;
        memcpy(c->peer.bytes, &in4->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, c->ip, sizeof(c->ip));
        c->peer.family = AF_INET6;
        memcpy(c->peer.bytes, &in6->sin6_addr, 16);
    } else {
        strcpy(c->ip, "unknown");
    }
}

void
px_client_accept(struct px_worker *w, struct px_listener *l, int fd, const struct sockaddr *sa)
{
    struct px_client *c = calloc(1, sizeof(*c));
    int one = 1;

    if (c == NULL) {
        close(fd);
        px_ctl_client_put(w->ctl); /* the slot taken for it (px_client_free gives it back later) */
        return;
    }
    c->w = w;
    c->l = l;
    c->fd = fd;
    c->first = true;
    px_client_set_peer(c, sa);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    event_assign(&c->rev, w->base, fd, EV_READ | EV_PERSIST, px_client_on_read, c);
    event_assign(&c->wev, w->base, fd, EV_WRITE | EV_PERSIST, px_client_on_write, c);
    TAILQ_INSERT_TAIL(&w->clients, c, link);
    w->n_clients++;
    if (w->n_clients > w->clients_peak)
        w->clients_peak = w->n_clients;
    XF_STAT_INC(w->stats->client_connections);
    if (XF_UNLIKELY(l->conf.mode != CFG_MODE_HTTP || l->conf.proxy_protocol)) {
        px_tcp_accept(c); /* a PROXY header first, or a relay */
        return;
    }
    px_client_start(c);
}

void
px_client_start(struct px_client *c)
{
    if (c->l->tls != NULL && px_tls_client_start(c, c->l->tls) == -1) {
        px_client_free(c);
        return;
    }
    px_client_read_on(c);
}

void
px_client_free(struct px_client *c)
{
    struct px_worker *w;

    if (c == NULL)
        return;
    w = c->w;
    if (XF_UNLIKELY(c->tunnel != NULL))
        px_tunnel_free(c->tunnel);
    if (c->txn != NULL) {
        struct px_txn *t = c->txn;
        if (t->resp_started && !t->resp_done)
            c->abort = true;
        if (t->u != NULL)
            px_upstream_release(t->u, false);
        if (t->status == 0)
            t->status = c->eof ? 499 : 0;
        t->bytes_out = c->sent_total - t->out_mark;
        px_alog_txn(w, t);
        px_txn_free(t);
        c->txn = NULL;
    }
    event_del(&c->rev);
    event_del(&c->wev);
    if (c->abort) {
        /* A reset, not a FIN: a close-delimited body must not look complete. */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    px_tls_client_close(c);
    close(c->fd);
    px_buf_free(&c->in);
    px_buf_free(&c->out);
    free(c->pp_addrs);
    TAILQ_REMOVE(&w->clients, c, link);
    if (c->held)
        TAILQ_REMOVE(&w->held, c, hlink);
    XF_STAT_DEC(w->stats->client_connections);
    free(c);
    px_worker_client_gone(w);
}
