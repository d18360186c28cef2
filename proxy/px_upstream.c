/* proxy/px_upstream.c -- connections to the nodes: pools, forwarding and checking responses. */
#include "proxy/px_conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A response head longer than this is refused (502): nodes are gateways, not attackers, but
 * bounded. */
#define PX_RESP_HEAD_MAX (64u * 1024u)

static void px_upstream_on_read(evutil_socket_t fd, short what, void *arg);
static void px_upstream_on_write(evutil_socket_t fd, short what, void *arg);

static struct px_resp_head *
px_upstream_head_of(llhttp_t *p)
{
    struct px_upstream *u = p->data;
    return &u->w->resp_head;
}

static int
px_resp_fail(llhttp_t *p, const char *why)
{
    px_upstream_head_of(p)->why = why;
    return -1;
}

static int
px_resp_on_status(llhttp_t *p, const char *at, size_t len)
{
    struct px_resp_head *h = px_upstream_head_of(p);

    /* RFC 9112 4: the reason phrase is text, as a header value is; NUL or a control byte there
     * is refused alike (it would reach the client otherwise). */
    if (!px_http_value_ok(at, len))
        return px_resp_fail(p, "control character in the response's reason phrase");
    h->reason = at;
    h->reason_len = len;
    return 0;
}

static int
px_resp_on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct px_upstream *u = p->data;
    struct px_resp_head *h = px_upstream_head_of(p);

    if (u->head_done)
        return 0; /* trailer fields: dropped */
    if (px_hdr_open(u->w->resp_hdrs, u->w->resp_hdrs_cap, h->n_hdrs, at, len) == -1)
        return px_resp_fail(p, "too many header fields in the response");
    h->field_open = true;
    return 0;
}

static int
px_resp_on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct px_upstream *u = p->data;
    struct px_resp_head *h = px_upstream_head_of(p);

    if (u->head_done)
        return 0;
    if (!h->field_open)
        return px_resp_fail(p, "empty header name in the response");
    if (!px_http_value_ok(at, len))
        return px_resp_fail(p, "control character or obs-fold in a response header");
    /* An empty value (len 0) is a span at the start of the next line: never a fold. */
    if (len > 0 && px_http_is_fold(at))
        return px_resp_fail(p, "obs-fold in a response header");
    u->w->resp_hdrs[h->n_hdrs].value = at;
    u->w->resp_hdrs[h->n_hdrs].value_len = (uint32_t)len;
    return 0;
}

static int
px_resp_on_header_value_complete(llhttp_t *p)
{
    struct px_upstream *u = p->data;
    struct px_resp_head *h = px_upstream_head_of(p);

    if (u->head_done)
        return 0;
    if (!h->field_open)
        return px_resp_fail(p, "empty header name in the response");
    h->field_open = false;
    h->n_hdrs++;
    return 0;
}

/* Checks the response head and writes the client's (px_rewrite_response). */
static int
px_resp_on_headers_complete(llhttp_t *p)
{
    struct px_upstream *u = p->data;
    struct px_resp_head *h = px_upstream_head_of(p);
    struct px_txn *t = u->txn;
    struct px_client *c = t->c;
    struct px_resp_in in = {.status = p->status_code,
                            .reason = h->reason,
                            .reason_len = h->reason_len,
                            .http_major = p->http_major,
                            .hdrs = u->w->resp_hdrs,
                            .n_hdrs = h->n_hdrs,
                            .req_method = t->method,
                            .client_minor = t->minor,
                            .client_ka = t->client_ka && !c->w->draining,
                            .upgrade_offer = t->upgrade,
                            .parser_te_other = (p->flags & F_TRANSFER_ENCODING) != 0 &&
                                               (p->flags & F_CHUNKED) == 0};
    struct px_resp_out res;
    const char *why = NULL;
    char route[sizeof(t->node->addr.text) + 4];

    h->complete = true;
    if (c->w->cfg->split.expose != NULL) {
        snprintf(route, sizeof(route), "%s %s", cfg_cluster_name(t->cluster),
                 u->pool->t[u->target].addr.text);
        in.expose_name = c->w->cfg->split.expose;
        in.expose_value = route;
    }
    if (c->w->cfg->fleet.epoch_header != NULL && t->snap->s->epoch[0] != '\0') {
        in.epoch_name = c->w->cfg->fleet.epoch_header;
        in.epoch_value = t->snap->s->epoch;
    }
    if (px_rewrite_response(&in, &c->out, &res, &why) == -1)
        return px_resp_fail(p, why);
    if (res.interim) {
        u->interim = true;
        return 1;
    }
    t->status = in.status;
    px_txn_observe(t, in.status < 500);
    if (in.status < 500)
        px_pool_fault_end(u->pool);
    t->resp_no_body = res.no_body;
    if (res.suspect)
        u->broken = true;
    t->resp_chunked_out = res.chunked_out;
    t->resp_close_out = res.close_out;
    t->ka = res.ka;
    t->resp_started = true;
    t->t_head_us = xf_now_us();
    u->head_done = true;
    if (XF_UNLIKELY(res.upgrade)) {
        t->tunnel = true; /* what follows the head is the new protocol's: px_upstream_feed */
        t->websocket = res.websocket;
        u->broken = true;
        return 2;
    }
    return res.no_body ? 1 : 0;
}

static int
px_resp_on_body(llhttp_t *p, const char *at, size_t len)
{
    struct px_upstream *u = p->data;
    struct px_txn *t = u->txn;
    struct px_buf *out = &t->c->out;

    if (t->resp_chunked_out) {
        char sz[24];
        int n = snprintf(sz, sizeof(sz), "%zx\r\n", len);
        px_buf_append(out, sz, (size_t)n);
        px_buf_append(out, at, len);
        return px_buf_append(out, "\r\n", 2);
    }
    return px_buf_append(out, at, len);
}

static int
px_resp_on_message_complete(llhttp_t *p)
{
    struct px_upstream *u = p->data;
    struct px_txn *t = u->txn;

    if (u->interim || t->tunnel)
        return HPE_PAUSED;
    if (t->resp_chunked_out)
        px_buf_append(&t->c->out, "0\r\n\r\n", 5);
    t->resp_done = true;
    if (!llhttp_should_keep_alive(p))
        u->broken = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t px_resp_settings = {
    .on_status = px_resp_on_status,
    .on_header_field = px_resp_on_header_field,
    .on_header_value = px_resp_on_header_value,
    .on_header_value_complete = px_resp_on_header_value_complete,
    .on_headers_complete = px_resp_on_headers_complete,
    .on_body = px_resp_on_body,
    .on_message_complete = px_resp_on_message_complete,
};

/* --- runs of faults of a node --- */

void
px_pool_fault(struct px_pool *pool, unsigned target, const char *fmt, ...)
{
    static const struct timeval quiet = {.tv_sec = PX_FAULT_QUIET_MS / 1000,
                                         .tv_usec = (PX_FAULT_QUIET_MS % 1000) * 1000};
    uint64_t now = xf_now_ms();
    va_list ap;
    int n;

    n = snprintf(pool->fault_last, sizeof(pool->fault_last), "node=%s ", pool->t[target].addr.text);
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(pool->fault_last))
        vsnprintf(pool->fault_last + n, sizeof(pool->fault_last) - (size_t)n, fmt, ap);
    va_end(ap);
    if (pool->fault_count++ == 0)
        pool->fault_first_ms = now;
    pool->fault_last_ms = now;
    /* The run is the node's, whichever workers see its faults: the first one logs it. */
    if (pool->share == NULL || __atomic_fetch_add(&pool->share->faults, 1, __ATOMIC_ACQ_REL) == 0) {
        if (pool->share != NULL)
            __atomic_store_n(&pool->share->fault_first_ms, now, __ATOMIC_RELAXED);
        XF_LOG(XF_LOG_WARN, "proxy",
               "%s note=\"the node's next faults are counted, not logged, until it answers or "
               "stays quiet %us\"",
               pool->fault_last, PX_FAULT_QUIET_MS / 1000);
    }
    if (pool->share != NULL)
        __atomic_store_n(&pool->share->fault_last_ms, now, __ATOMIC_RELAXED);
    evtimer_add(pool->fault_ev, &quiet);
}

void
px_pool_fault_summary(struct px_pool *pool, const char *reason)
{
    /* The last fault by its event's name only: the summary stays one flat key=value line. */
    const char *ev = strstr(pool->fault_last, "event=");
    int ev_len = ev != NULL ? (int)strcspn(ev + 6, " ") : 1;
    unsigned n = pool->fault_count;
    uint64_t first = pool->fault_first_ms, last = pool->fault_last_ms;

    pool->fault_count = 0;
    event_del(pool->fault_ev);
    if (pool->share != NULL) {
        /* Every worker's faults of the run, summed up by the first worker to see it end. */
        n = __atomic_exchange_n(&pool->share->faults, 0, __ATOMIC_ACQ_REL);
        if (n == 0)
            return;
        first = __atomic_load_n(&pool->share->fault_first_ms, __ATOMIC_RELAXED);
        last = __atomic_load_n(&pool->share->fault_last_ms, __ATOMIC_RELAXED);
    }
    XF_LOG(XF_LOG_WARN, "proxy",
           "event=node_faults_end node=%s faults=%u for_ms=%llu reason=%s last_fault=%.*s",
           pool->t[0].addr.text, n, (unsigned long long)(last > first ? last - first : 0), reason,
           ev_len, ev != NULL ? ev + 6 : "-");
}

void
px_pool_on_fault_quiet(evutil_socket_t fd, short what, void *arg)
{
    XF_UNUSED(fd);
    XF_UNUSED(what);
    px_pool_fault_summary(arg, "quiet");
}

/* --- pool and connections --- */

/* One more connection busy; the most at once is what the pool keeps idle under max_idle: auto. */
static inline void
px_pool_busy_add(struct px_pool *pool)
{
    if (++pool->n_busy > pool->peak_busy)
        pool->peak_busy = pool->n_busy;
}

/* Whether an idle connection to `target` may be kept: under the worker's share of max_idle, or for
 * auto under the most that were busy at once in this period or the last. Each port of the node
 * (node_port listeners) has its own idle list and its own room: one must not push out another. */
static bool
px_pool_keeps_idle(struct px_pool *pool, unsigned target)
{
    uint64_t now;
    unsigned cap = pool->max_idle;

    if (cap == UINT_MAX) {
        /* Under this period's peak it is kept whatever the clock says (a new period keeps the
         * last one's peak): the clock is read only near the bound, not for every request. */
        if (pool->t[target].n_idle < pool->peak_busy)
            return true;
        now = xf_now_ms();
        if (now - pool->peak_since_ms >= pool->w->cfg->timeouts.upstream_idle_ms) {
            pool->peak_prev = pool->peak_busy;
            pool->peak_busy = pool->n_busy; /* the one being released still counts */
            pool->peak_since_ms = now;
        }
        cap = XF_MAX(pool->peak_busy, pool->peak_prev);
    }
    return pool->t[target].n_idle < cap;
}

void
px_upstream_free(struct px_upstream *u)
{
    if (u->state == PX_U_IDLE) {
        TAILQ_REMOVE(&u->pool->t[u->target].idle, u, link);
        u->pool->t[u->target].n_idle--;
        px_pool_idle_add(u->pool, -1);
    } else {
        u->pool->n_busy--;
        if (u->slot) {
            u->slot = false;
            px_pool_slot_put(u->pool);
        } else if (u->pool->n_waiting > 0) {
            px_pool_wake(u->pool);
        }
    }
    event_del(&u->rev);
    event_del(&u->wev);
    px_tls_upstream_close(u, !u->broken);
    close(u->fd);
    px_buf_free(&u->in);
    px_buf_free(&u->out);
    free(u);
}

void
px_upstream_release_idle(struct px_upstream *u)
{
    px_upstream_free(u);
}

/* Whether an idle connection is still open as far as this end can tell: no end of stream or
 * error waiting in its socket (one recv with MSG_PEEK). */
static bool
px_upstream_alive(const struct px_upstream *u)
{
    char b;
    ssize_t n = recv(u->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

    return n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

struct px_upstream *
px_upstream_get(struct px_worker *w, struct px_pool *pool, unsigned target,
                enum cfg_cluster_id cluster, int *err_status, enum px_reuse reuse)
{
    struct px_pool_target *pt = &pool->t[target];
    const struct cfg_addr *addr = &pt->addr;
    SSL_CTX *tls = w->node_tls[cluster];
    struct px_upstream *u;
    int one = 1, fd;

    while (reuse != PX_REUSE_NONE && (u = TAILQ_FIRST(&pt->idle)) != NULL) {
        /* A request that must not be replayed checks first that the node has not closed it.
         * One made with other TLS settings (a reload changed them) is not reused. */
        if ((reuse == PX_REUSE_CHECKED && !px_upstream_alive(u)) ||
            (XF_UNLIKELY(u->ssl != NULL || tls != NULL) &&
             (u->ssl == NULL || tls == NULL || u->tls_gen != w->node_tls_gen))) {
            px_upstream_free(u);
            continue;
        }
        TAILQ_REMOVE(&pt->idle, u, link);
        pt->n_idle--;
        px_pool_idle_add(pool, -1);
        px_pool_busy_add(pool);
        u->state = PX_U_BUSY;
        u->reused = true;
        px_ev_arm(&u->rev, NULL); /* the idle timeout no longer applies */
        return u;
    }
    fd = socket(addr->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        /* Ours, not the node's (out of descriptors): logged once per run, like a node fault. */
        px_pool_fault(pool, target, "event=socket_failed error=\"%s\"", strerror(errno));
        *err_status = 503;
        return NULL;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    u = calloc(1, sizeof(*u));
    if (u == NULL) {
        close(fd);
        *err_status = 503;
        return NULL;
    }
    u->w = w;
    u->pool = pool;
    u->target = target;
    u->gen = pool->gen;
    u->fd = fd;
    event_assign(&u->rev, w->base, fd, EV_READ | EV_PERSIST, px_upstream_on_read, u);
    event_assign(&u->wev, w->base, fd, EV_WRITE | EV_PERSIST, px_upstream_on_write, u);
    px_pool_busy_add(pool);
    if (tls != NULL && px_tls_upstream_start(u, tls, w->cfg->clusters[cluster].tls->sni) == -1) {
        u->state = PX_U_BUSY;
        px_upstream_free(u);
        *err_status = 503;
        return NULL;
    }
    if (connect(fd, (const struct sockaddr *)&addr->sa, addr->sa_len) == 0 && tls == NULL) {
        u->state = PX_U_BUSY;
        px_ev_arm(&u->rev, NULL);
        return u;
    }
    if (tls == NULL && errno != EINPROGRESS) {
        /* (With TLS, a connect done at once goes the same way as one in progress: the
         * handshake starts once the socket is writable.) */
        px_pool_fault(pool, target, "event=connect_failed error=\"%s\"", strerror(errno));
        u->state = PX_U_BUSY;
        px_upstream_free(u);
        *err_status = 502;
        return NULL;
    }
    u->state = PX_U_CONNECTING;
    event_add(&u->wev, w->tv_connect);
    u->wev_on = true;
    return u;
}

void
px_upstream_release(struct px_upstream *u, bool reuse)
{
    struct px_worker *w = u->w;

    u->txn = NULL;
    if (!reuse || u->broken || u->state != PX_U_BUSY || px_buf_len(&u->out) > 0 ||
        px_buf_len(&u->in) > 0 || w->draining || u->pool->closing || u->gen != u->pool->gen ||
        (u->ssl != NULL && SSL_has_pending(u->ssl))) {
        px_upstream_free(u);
        return;
    }
    if (!px_pool_keeps_idle(u->pool, u->target)) {
        /* The pool is full: the least recently used idle connection makes room (none with
         * max_idle 0: this one closes). */
        struct px_upstream *old = TAILQ_LAST(&u->pool->t[u->target].idle, px_upstream_list);

        if (old == NULL) {
            px_upstream_free(u);
            return;
        }
        px_upstream_free(old);
    }
    u->pool->n_busy--;
    px_pool_idle_add(u->pool, +1);
    u->pool->t[u->target].n_idle++;
    if (u->slot) {
        u->slot = false;
        px_pool_slot_put(u->pool);
    }
    u->state = PX_U_IDLE;
    u->sent = 0;
    u->head_done = false;
    u->interim = false;
    u->got_bytes = false;
    u->resp_timer = false;
    px_buf_free(&u->in);
    px_buf_free(&u->out);
    if (u->wev_on) {
        event_del(&u->wev);
        u->wev_on = false;
    }
    TAILQ_INSERT_HEAD(&u->pool->t[u->target].idle, u, link);
    event_add(&u->rev, w->tv_upstream_idle);
    u->read_off = false;
    if (u->pool->n_waiting > 0)
        px_pool_wake(u->pool);
}

void
px_upstream_read_on(struct px_upstream *u)
{
    const struct timeval *tv = NULL;

    if (u->txn != NULL && u->txn->req_done)
        tv = u->w->tv_upstream_response;
    px_ev_arm(&u->rev, tv);
    u->read_off = false;
    if (XF_UNLIKELY(u->ssl != NULL) && !u->tls_hs && SSL_has_pending(u->ssl))
        event_active(&u->rev, EV_READ, 1);
}

void
px_upstream_read_off(struct px_upstream *u)
{
    if (!u->read_off) {
        event_del(&u->rev);
        u->read_off = true;
    }
}

void
px_upstream_arm_response_timeout(struct px_upstream *u)
{
    u->resp_timer = true;
    if (!u->read_off && u->state != PX_U_CONNECTING)
        event_add(&u->rev, u->w->tv_upstream_response);
}

/* Writes pending request bytes. The result concerns the client connection (PX_CLOSE: free it). */
enum px_rc
px_upstream_flush(struct px_upstream *u)
{
    struct px_txn *t = u->txn;
    enum px_rc rc;

    if (XF_UNLIKELY(t->raw) && u->state == PX_U_BUSY)
        return px_tunnel_start(t); /* connected: a tcp-mode connection's relay begins */
    if (u->state == PX_U_CONNECTING) {
        if (px_buf_len(&u->out) > PX_HIGH_MARK)
            px_client_read_off(t->c); /* resumed once the connection drains what waits */
        return PX_OK;
    }
    if (u->out.failed) {
        /* Out of memory here: no fault of the node, which is neither blamed nor sent a cut
         * request. */
        rc = px_txn_fail(t, 503, "the proxy is out of memory", XF_FAIL_CONNECT);
        return rc == PX_CLOSE ? PX_CLOSE : PX_OK;
    }
    rc = XF_LIKELY(u->ssl == NULL) ? px_buf_send(&u->out, u->fd, &u->sent)
                                   : px_tls_send(u->ssl, &u->out, &u->sent);
    if (rc == PX_CLOSE) {
        int e = errno;
        if (!u->reused)
            px_pool_fault(u->pool, u->target, "event=send_failed error=\"%s\"", strerror(e));
        u->broken = true;
        rc = px_txn_retry(t, 502, "the connection to the node failed", XF_FAIL_RESET);
        return rc == PX_CLOSE ? PX_CLOSE : PX_OK;
    }
    if (rc == PX_AGAIN) {
        if (!u->wev_on) {
            event_add(&u->wev, u->w->tv_upstream_response);
            u->wev_on = true;
        }
        if (px_buf_len(&u->out) > PX_HIGH_MARK)
            px_client_read_off(t->c);
        return PX_OK;
    }
    if (u->wev_on) {
        event_del(&u->wev);
        u->wev_on = false;
    }
    if (t->c->read_off && t->c->state == PX_C_BODY && !t->c->closing)
        px_client_read_on(t->c);
    return PX_OK;
}

static enum px_rc px_upstream_read(struct px_upstream *u);

/* The connection is ready for the request (connected, and TLS established when it speaks TLS). */
static void
px_upstream_connected(struct px_upstream *u)
{
    struct px_txn *t = u->txn;

    u->state = PX_U_BUSY;
    event_del(&u->wev); /* it carried the connect timeout; a blocked send re-arms it */
    u->wev_on = false;
    if (t->req_done) {
        u->resp_timer = true;
        event_add(&u->rev, u->w->tv_upstream_response);
    } else {
        px_ev_arm(&u->rev, NULL);
    }
}

/* A step of the TLS handshake with the node, within the connect timeout. The result concerns the
 * client connection (PX_CLOSE: free it). */
static enum px_rc
px_upstream_tls_step(struct px_upstream *u)
{
    struct px_txn *t = u->txn;
    char why[192];
    enum px_rc rc = px_tls_upstream_handshake(u, why, sizeof(why));

    if (rc == PX_AGAIN) {
        if (u->tls_want_write) {
            event_del(&u->rev);
            event_add(&u->wev, u->w->tv_connect);
            u->wev_on = true;
        } else {
            event_del(&u->wev);
            u->wev_on = false;
            event_add(&u->rev, u->w->tv_connect);
        }
        return PX_OK;
    }
    if (rc == PX_CLOSE) {
        /* Never a fall back to plain text: the request goes to another node, or gets a 502. */
        px_pool_fault(u->pool, u->target, "event=tls_handshake_failed reason=\"%s\"", why);
        u->broken = true;
        rc = px_txn_retry(t, 502, "the TLS handshake with the node failed", XF_FAIL_CONNECT);
        return rc == PX_CLOSE ? PX_CLOSE : PX_OK;
    }
    px_upstream_connected(u);
    return px_upstream_flush(u);
}

static void
px_upstream_on_write(evutil_socket_t fd, short what, void *arg)
{
    struct px_upstream *u = arg;
    struct px_txn *t = u->txn;
    struct px_client *c = t->c;
    enum px_rc rc;
    int soerr = 0;
    socklen_t sl = sizeof(soerr);

    if (u->state == PX_U_CONNECTING) {
        if (what & EV_TIMEOUT) {
            px_pool_fault(u->pool, u->target,
                          u->tls_started ? "event=tls_handshake_timeout" : "event=connect_timeout");
            rc = px_txn_retry(t, 504, "timed out connecting to the node", XF_FAIL_TIMEOUT);
            goto out;
        }
        if (u->tls_started) {
            rc = px_upstream_tls_step(u);
            goto out;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1)
            soerr = errno;
        if (soerr != 0) {
            px_pool_fault(u->pool, u->target, "event=connect_failed error=\"%s\"", strerror(soerr));
            rc = px_txn_retry(t, soerr == ETIMEDOUT ? 504 : 502, "could not connect to the node",
                              soerr == ETIMEDOUT ? XF_FAIL_TIMEOUT : XF_FAIL_CONNECT);
            goto out;
        }
        if (u->ssl != NULL) {
            u->tls_started = true;
            rc = px_upstream_tls_step(u);
            goto out;
        }
        px_upstream_connected(u);
    } else if (what & EV_TIMEOUT) {
        px_txn_observe(t, false);
        rc = px_txn_fail(t, 504, "timed out sending to the node", XF_FAIL_TIMEOUT);
        goto out;
    } else if (XF_UNLIKELY(u->tls_read_ww)) {
        /* TLS had to write before it could read on: the read goes on now. */
        u->tls_read_ww = false;
        rc = px_upstream_read(u); /* may end t and release u: neither is touched after it */
        goto out;
    }
    rc = px_upstream_flush(u);
out:
    if (rc == PX_CLOSE)
        px_client_free(c);
}

/* Ends the transaction with an error; PX_DONE unless the client must close. */
static enum px_rc
px_upstream_fail(struct px_txn *t, int status, const char *why, enum xf_fail kind)
{
    enum px_rc rc = px_txn_fail(t, status, why, kind);
    return rc == PX_CLOSE ? PX_CLOSE : PX_DONE;
}

/*
 * Parses response bytes. Returns PX_OK (all consumed, or *consumed < n for a partial head kept by
 * the caller), or PX_CLOSE when the client connection must go; errors are answered here.
 */
static enum px_rc
px_upstream_feed(struct px_upstream *u, const char *p, size_t n, size_t *consumed)
{
    struct px_resp_head *h = &u->w->resp_head;
    struct px_txn *t = u->txn;
    llhttp_errno_t err;
    size_t used;

    *consumed = 0;
    while (n > 0) {
        if (!u->head_done) {
            size_t m = XF_MIN(n, PX_RESP_HEAD_MAX);
            memset(h, 0, sizeof(*h));
            u->interim = false;
            llhttp_init(&u->parser, HTTP_RESPONSE, &px_resp_settings);
            u->parser.data = u;
            err = llhttp_execute(&u->parser, p, m);
            if (!h->complete && err == HPE_OK) {
                if (n > PX_RESP_HEAD_MAX)
                    goto bad;
                return PX_OK; /* partial head: the caller keeps the bytes */
            }
            used = err == HPE_OK ? m : (size_t)(llhttp_get_error_pos(&u->parser) - p);
        } else {
            err = llhttp_execute(&u->parser, p, n);
            used = err == HPE_OK ? n : (size_t)(llhttp_get_error_pos(&u->parser) - p);
        }
        *consumed += used;
        p += used;
        n -= used;
        if (err == HPE_OK)
            continue;
        if (err != HPE_PAUSED)
            goto bad;
        if (u->interim) {
            u->interim = false;
            continue; /* a 1xx went by: the next head is the final one, or another 1xx */
        }
        if (XF_UNLIKELY(t->tunnel)) {
            /* A 101: what the node sent after it is already the tunnel's, for the client. */
            if (n > 0 && px_buf_append(&t->c->out, p, n) == -1)
                return px_upstream_fail(t, 502, "out of memory", XF_FAIL_INVALID);
            t->tunnel_early = (uint32_t)n;
            *consumed += n;
            return PX_OK;
        }
        if (n > 0) {
            /* Bytes after a complete response: never forwarded, and the connection not reused. */
            px_pool_fault(u->pool, u->target, "event=extra_bytes bytes=%zu", n);
            u->broken = true;
            *consumed += n;
        }
        return PX_OK;
    }
    return PX_OK;
bad:
    px_pool_fault(u->pool, u->target, "event=bad_response reason=\"%s\"",
                  h->why ? h->why : llhttp_get_error_reason(&u->parser));
    u->broken = true;
    if (!t->resp_started)
        px_txn_observe(t, false);
    return px_upstream_fail(t, 502, h->why ? h->why : "invalid response from the node",
                            XF_FAIL_INVALID);
}

/* The node closed its side or failed: ends a close-delimited body, or it is an error. */
static enum px_rc
px_upstream_on_eof(struct px_upstream *u, int e)
{
    struct px_txn *t = u->txn;

    u->broken = true;
    if (e == 0 && u->head_done && !t->resp_done && llhttp_message_needs_eof(&u->parser)) {
        if (llhttp_finish(&u->parser) == HPE_OK || t->resp_done) {
            if (t->resp_done)
                return PX_OK;
        }
    }
    if (!u->got_bytes) {
        /* A reused connection closed unanswered is the keep-alive race: retried, not logged. */
        if (!u->reused)
            px_pool_fault(u->pool, u->target, "event=no_response error=\"%s\"",
                          e ? strerror(e) : "closed");
        return px_txn_retry(t, 502, "the node closed the connection without answering",
                            XF_FAIL_RESET);
    }
    px_pool_fault(u->pool, u->target, "event=truncated_response error=\"%s\"",
                  e ? strerror(e) : "closed");
    if (!t->resp_started)
        px_txn_observe(t, false); /* a head cut short: the node's fault */
    return px_upstream_fail(t, 502, "the node sent an incomplete response", XF_FAIL_RESET);
}

/* recv for the connection, through TLS to a TLS cluster's node. */
static inline ssize_t
px_upstream_recv(struct px_upstream *u, void *buf, size_t len)
{
    if (u->ssl == NULL)
        return recv(u->fd, buf, len, 0);
    return px_tls_recv(u->ssl, buf, len, &u->tls_read_ww);
}

static enum px_rc
px_upstream_read(struct px_upstream *u)
{
    struct px_worker *w = u->w;
    struct px_txn *t = u->txn;
    size_t consumed = 0;
    enum px_rc rc = PX_OK;
    ssize_t n;

    if (px_buf_len(&u->in) == 0) {
        n = px_upstream_recv(u, w->rbuf, w->rbuf_cap);
        if (n > 0) {
            u->got_bytes = true;
            if (t != NULL && px_buf_len(&t->replay) > 0)
                px_buf_free(&t->replay); /* no retry once the node began to answer */
            rc = px_upstream_feed(u, w->rbuf, (size_t)n, &consumed);
            if (rc == PX_OK && consumed < (size_t)n &&
                px_buf_append(&u->in, w->rbuf + consumed, (size_t)n - consumed) == -1)
                rc = px_upstream_fail(t, 502, "out of memory", XF_FAIL_INVALID);
        }
    } else {
        char *dst = px_buf_reserve(&u->in, 16384);
        if (dst == NULL)
            return px_upstream_fail(t, 502, "out of memory", XF_FAIL_INVALID);
        n = px_upstream_recv(u, dst, u->in.cap - u->in.end);
        if (n > 0) {
            u->in.end += (size_t)n;
            rc = px_upstream_feed(u, px_buf_head(&u->in), px_buf_len(&u->in), &consumed);
            if (rc == PX_OK)
                px_buf_consume(&u->in, consumed);
        }
    }
    if (n == 0)
        rc = px_upstream_on_eof(u, 0);
    else if (n == -1) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            if (XF_UNLIKELY(u->tls_read_ww) && !u->wev_on) {
                event_add(&u->wev, u->w->tv_upstream_response);
                u->wev_on = true;
            }
            return PX_OK;
        }
        rc = px_upstream_on_eof(u, errno);
    }
    if (rc != PX_OK)
        return rc == PX_CLOSE ? PX_CLOSE : PX_OK; /* PX_DONE: t and u are gone */
    if (XF_UNLIKELY(t->tunnel))
        return px_tunnel_start(t);
    if (t->resp_done) {
        t->u = NULL;
        t->t_up_end_us = xf_now_us();
        px_upstream_release(u, t->req_done && !t->up_close);
        return px_txn_resp_done(t);
    }
    /* Bytes TLS already took from the socket wake no event: read them next. */
    if (XF_UNLIKELY(u->ssl != NULL) && !u->read_off && SSL_has_pending(u->ssl))
        event_active(&u->rev, EV_READ, 1);
    return px_client_flush(t->c);
}

static void
px_upstream_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct px_upstream *u = arg;
    struct px_txn *t = u->txn;
    struct px_client *c;
    enum px_rc rc;

    XF_UNUSED(fd);
    if (u->state == PX_U_IDLE) {
        /* Idle: a timeout, the node closing, or bytes nobody asked for. None is kept, but for
         * a TLS 1.3 session ticket, which comes after the handshake. */
        if (u->ssl != NULL && !(what & EV_TIMEOUT) && px_tls_upstream_idle_read(u))
            return;
        px_upstream_free(u);
        return;
    }
    c = t->c;
    if (u->state == PX_U_CONNECTING) {
        /* Only a TLS handshake reads before the connection is ready. */
        if (what & EV_TIMEOUT) {
            px_pool_fault(u->pool, u->target, "event=tls_handshake_timeout");
            rc = px_txn_retry(t, 504, "timed out connecting to the node", XF_FAIL_TIMEOUT);
        } else {
            rc = px_upstream_tls_step(u);
        }
        if (rc == PX_CLOSE)
            px_client_free(c);
        return;
    }
    if ((what & EV_TIMEOUT) && !u->resp_timer)
        return; /* an idle timeout that fired as the connection was taken from the pool */
    if (what & EV_TIMEOUT) {
        px_pool_fault(u->pool, u->target, "event=response_timeout");
        u->broken = true;
        if (!t->resp_started)
            px_txn_observe(t, false);
        rc = px_txn_fail(t, 504, "the node did not answer in time", XF_FAIL_TIMEOUT);
    } else {
        rc = px_upstream_read(u);
    }
    if (rc == PX_CLOSE)
        px_client_free(c);
}
