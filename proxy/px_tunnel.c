/* proxy/px_tunnel.c -- tunnels: after a node's 101 (WebSocket, any HTTP upgrade), the client's
 * and the node's connections relay bytes both ways, as they come, until both have finished.
 *
 * Side 0 is the client, side 1 the node. Bytes read from side i go to side !i's output (that
 * connection's own px_buf); at PX_HIGH_MARK there, reading side i stops until the output drains
 * below PX_LOW_MARK, so a peer that does not read holds memory flat. An end of stream from side i
 * (or its close_notify) becomes a shutdown of our sending to side !i once that output is drained:
 * each direction is half-closed on its own. The tunnel ends when both directions have ended, on
 * an error of either side, or after timeouts.tunnel_idle without a byte either way. The request
 * that opened it is logged then, with the bytes each way and the tunnel's duration.
 *
 * A tunnel stays on the node it opened on while the weight moves, except when its node is drained
 * or removed, or its key goes to the other side on a rollback (or on any change, with
 * tunnels.follow_weight): px_tunnel_follow dooms it, and each worker closes its doomed tunnels at
 * its share of tunnels.close_rate, at jittered ticks, so that clients reconnect to the right side
 * without a storm. A WebSocket gets a close frame (1001, going away) between two of the node's
 * frames first: the framing of what the node sends is followed (px_tun_ws_advance).
 *
 * The tunnel has events of its own on the two sockets (the connections' events are idle): the
 * client and the node connection stay what they were for the accounting (connections open,
 * node slots, requests in flight), and px_client_free ends the tunnel with the client.
 */
#include "proxy/px_conn.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static void px_tun_close_start(struct px_worker *w);

static inline int
px_tun_fd(const struct px_tunnel *tun, int i)
{
    return i == 0 ? tun->c->fd : tun->u->fd;
}

static inline SSL *
px_tun_ssl(const struct px_tunnel *tun, int i)
{
    return i == 0 ? tun->c->ssl : tun->u->ssl;
}

/* The bytes waiting to be written to side i. */
static inline struct px_buf *
px_tun_out(struct px_tunnel *tun, int i)
{
    return i == 0 ? &tun->c->out : &tun->u->out;
}

static ssize_t
px_tun_recv(struct px_tunnel *tun, int i, void *buf, size_t len)
{
    SSL *ssl = px_tun_ssl(tun, i);

    if (ssl == NULL)
        return recv(px_tun_fd(tun, i), buf, len, 0);
    return px_tls_recv(ssl, buf, len, &tun->read_ww[i]);
}

static void
px_tun_read_on(struct px_tunnel *tun, int i)
{
    SSL *ssl = px_tun_ssl(tun, i);

    if (!tun->read_off[i] || tun->eof[i])
        return;
    event_add(&tun->rev[i], NULL);
    tun->read_off[i] = false;
    /* Bytes TLS already took from the socket wake no event: read them now. */
    if (ssl != NULL && SSL_has_pending(ssl))
        event_active(&tun->rev[i], EV_READ, 1);
}

static void
px_tun_read_off(struct px_tunnel *tun, int i)
{
    if (!tun->read_off[i]) {
        event_del(&tun->rev[i]);
        tun->read_off[i] = true;
    }
}

static void
px_tun_wev(struct px_tunnel *tun, int i, bool on)
{
    if (on && !tun->wev_on[i])
        event_add(&tun->wev[i], NULL);
    else if (!on && tun->wev_on[i])
        event_del(&tun->wev[i]);
    tun->wev_on[i] = on;
}

/* Our sending to side i is over: close_notify on TLS, then a TCP half-close. PX_CLOSE once both
 * directions are over. */
static enum px_rc
px_tun_shut(struct px_tunnel *tun, int i)
{
    SSL *ssl = px_tun_ssl(tun, i);

    tun->shut[i] = true;
    if (ssl != NULL) {
        ERR_clear_error();
        SSL_shutdown(ssl);
        if (i == 0)
            tun->c->tls_shut = true;
    }
    if (shutdown(px_tun_fd(tun, i), SHUT_WR) == -1 && errno != ENOTCONN)
        return PX_CLOSE;
    return tun->shut[!i] ? PX_CLOSE : PX_OK;
}

/* Writes what waits for side i; reading its peer goes on below the low mark, and the peer's end
 * of stream is passed on once all is written. */
static enum px_rc
px_tun_flush(struct px_tunnel *tun, int i)
{
    struct px_buf *out = px_tun_out(tun, i);
    enum px_rc rc = PX_OK;

    if (px_buf_len(out) > 0) {
        uint64_t *sent = i == 0 ? &tun->c->sent_total : &tun->u->sent;
        SSL *ssl = px_tun_ssl(tun, i);

        rc = ssl == NULL ? px_buf_send(out, px_tun_fd(tun, i), sent) : px_tls_send(ssl, out, sent);
        if (rc == PX_CLOSE) {
            tun->failed = true;
            return PX_CLOSE;
        }
    }
    px_tun_wev(tun, i, rc == PX_AGAIN || tun->read_ww[i]);
    if (px_buf_len(out) < PX_LOW_MARK)
        px_tun_read_on(tun, !i);
    if (rc == PX_AGAIN)
        return PX_OK;
    px_buf_free(out); /* an idle tunnel holds no buffer */
    if (tun->eof[!i] && !tun->shut[i])
        return px_tun_shut(tun, i);
    return PX_OK;
}

/* Passes n bytes read from one side to side i: written at once when nothing waits there and it
 * speaks plain TCP (no copy), the rest kept in its output. */
static enum px_rc
px_tun_relay(struct px_tunnel *tun, int i, const char *p, size_t n)
{
    struct px_buf *out = px_tun_out(tun, i);

    if (px_buf_len(out) == 0 && px_tun_ssl(tun, i) == NULL && !tun->shut[i]) {
        ssize_t k = send(px_tun_fd(tun, i), p, n, MSG_NOSIGNAL);

        if (k == -1 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            tun->failed = true;
            return PX_CLOSE;
        }
        if (k > 0) {
            if (i == 0)
                tun->c->sent_total += (uint64_t)k;
            else
                tun->u->sent += (uint64_t)k;
            p += k;
            n -= (size_t)k;
        }
    }
    return n == 0 || px_buf_append(out, p, n) == 0 ? PX_OK : PX_CLOSE;
}

/*
 * Follows the WebSocket framing of n bytes the node sent (RFC 6455 5.2; a server's frames are not
 * masked, but a mask is allowed for): returns how many belong to frames up to the first frame
 * boundary when `stop` (a close frame of ours goes there), else n.
 */
static size_t
px_tun_ws_advance(struct px_tunnel *tun, const unsigned char *p, size_t n, bool stop)
{
    size_t i = 0;

    while (i < n) {
        if (tun->ws_left > 0) {
            size_t take = (size_t)XF_MIN(tun->ws_left, (uint64_t)(n - i));

            tun->ws_left -= take;
            i += take;
        } else {
            size_t need;

            if (stop && tun->ws_hdr_len == 0)
                return i; /* between two frames */
            tun->ws_hdr[tun->ws_hdr_len++] = p[i++];
            need = 2;
            if (tun->ws_hdr_len >= 2) {
                unsigned l7 = tun->ws_hdr[1] & 0x7fu;

                need += (l7 == 126 ? 2u : l7 == 127 ? 8u : 0u) + (tun->ws_hdr[1] & 0x80u ? 4u : 0u);
            }
            if (tun->ws_hdr_len == need) {
                unsigned l7 = tun->ws_hdr[1] & 0x7fu;
                uint64_t len = l7;

                if (l7 == 126)
                    len = (uint64_t)tun->ws_hdr[2] << 8 | tun->ws_hdr[3];
                else if (l7 == 127)
                    for (int k = 0; k < 8; k++)
                        len = len << 8 | tun->ws_hdr[2 + k];
                tun->ws_left = l7 == 126 || l7 == 127 ? len : l7;
                tun->ws_hdr_len = 0;
            }
        }
    }
    return n;
}

/* Whether the node's stream is between two WebSocket frames. */
static inline bool
px_tun_ws_boundary(const struct px_tunnel *tun)
{
    return tun->ws_left == 0 && tun->ws_hdr_len == 0;
}

/* A retiring WebSocket at a frame boundary: the close frame (1001, going away) goes after what the
 * client has not received yet, nothing more from the node, and our sending to the client ends
 * after it; what the client answers still goes to the node. */
static void
px_tun_ws_close(struct px_tunnel *tun)
{
    static const unsigned char going_away[4] = {0x88, 0x02, 0x03, 0xe9};

    px_buf_append(&tun->c->out, going_away, sizeof(going_away));
    tun->eof[1] = true;
    px_tun_read_off(tun, 1);
}

/* Reads what side s sent (a bounded number of reads: other connections get their turn) into its
 * peer's output, and writes it there. */
static enum px_rc
px_tun_pump(struct px_tunnel *tun, int s)
{
    struct px_worker *w = tun->w;
    struct px_buf *out = px_tun_out(tun, !s);

    for (int k = 0; k < 8; k++) {
        ssize_t n;

        if (px_buf_len(out) >= PX_HIGH_MARK) {
            px_tun_read_off(tun, s); /* its peer does not read: on again once it drains */
            break;
        }
        n = px_tun_recv(tun, s, w->rbuf, w->rbuf_cap);
        if (n > 0) {
            size_t keep = (size_t)n;

            tun->bytes[s] += (uint64_t)n;
            tun->active_ms = xf_now_ms();
            if (s == 1 && tun->ws)
                keep = px_tun_ws_advance(tun, (const unsigned char *)w->rbuf, keep, tun->retiring);
            if (px_tun_relay(tun, !s, w->rbuf, keep) == PX_CLOSE)
                return PX_CLOSE;
            if (s == 1 && tun->retiring && px_tun_ws_boundary(tun)) {
                px_tun_ws_close(tun); /* the rest, the node's next frames, is not passed on */
                break;
            }
            if (px_tun_flush(tun, !s) == PX_CLOSE)
                return PX_CLOSE;
            /* A short read emptied a plain socket: the next recv would only say EAGAIN (the
             * event fires again when more comes). TLS may hold more records: it reads on. */
            if ((size_t)n < w->rbuf_cap && px_tun_ssl(tun, s) == NULL)
                break;
            continue;
        }
        if (n == 0) {
            tun->eof[s] = true;
            px_tun_read_off(tun, s);
            break;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            tun->failed = true;
            return PX_CLOSE;
        }
        if (tun->read_ww[s])
            px_tun_wev(tun, s, true); /* TLS must write before it reads on */
        break;
    }
    /* Records TLS took from the socket in one read (read_ahead) wake no event: on with them. */
    if (!tun->read_off[s] && !tun->eof[s] && px_tun_ssl(tun, s) != NULL &&
        SSL_has_pending(px_tun_ssl(tun, s)))
        event_active(&tun->rev[s], EV_READ, 1);
    return px_tun_flush(tun, !s);
}

static void
px_tun_event(struct px_tunnel *tun, int i, bool writable)
{
    enum px_rc rc;

    if (writable && tun->read_ww[i]) {
        tun->read_ww[i] = false;
        rc = tun->eof[i] ? PX_OK : px_tun_pump(tun, i);
        if (rc == PX_OK)
            rc = px_tun_flush(tun, i);
    } else {
        rc = writable ? px_tun_flush(tun, i) : px_tun_pump(tun, i);
    }
    if (rc == PX_CLOSE) {
        /* A side that failed is not passed on as an orderly end: the client gets a reset. */
        if (tun->failed)
            tun->c->abort = true;
        px_client_free(tun->c); /* ends the tunnel */
    }
}

static void
px_tun_on_client_read(evutil_socket_t fd, short what, void *arg)
{
    XF_UNUSED(fd);
    XF_UNUSED(what);
    px_tun_event(arg, 0, false);
}

static void
px_tun_on_node_read(evutil_socket_t fd, short what, void *arg)
{
    XF_UNUSED(fd);
    XF_UNUSED(what);
    px_tun_event(arg, 1, false);
}

static void
px_tun_on_client_write(evutil_socket_t fd, short what, void *arg)
{
    XF_UNUSED(fd);
    XF_UNUSED(what);
    px_tun_event(arg, 0, true);
}

static void
px_tun_on_node_write(evutil_socket_t fd, short what, void *arg)
{
    XF_UNUSED(fd);
    XF_UNUSED(what);
    px_tun_event(arg, 1, true);
}

/* timeouts.tunnel_idle: the timer runs from the tunnel's last byte (checked when it fires, so
 * that bytes cost no timer update). */
static void
px_tun_on_idle(evutil_socket_t fd, short what, void *arg)
{
    struct px_tunnel *tun = arg;
    uint64_t idle = tun->w->cfg->timeouts.tunnel_idle_ms;

    XF_UNUSED(fd);
    XF_UNUSED(what);
    if (!tun->retiring && xf_now_ms() - tun->active_ms < idle) {
        struct timeval tv = px_tv_until(tun->active_ms + idle);

        evtimer_add(&tun->idle, &tv);
        return;
    }
    XF_LOG(XF_LOG_DEBUG, "proxy", "event=tunnel_idle client=%s", tun->c->ip);
    px_client_free(tun->c);
}

/* Puts tun among the worker's doomed tunnels (at the head or the tail), counted for the whole
 * process too: each worker's share of tunnels.close_rate is its share of the doomed. */
static void
px_tun_doom(struct px_tunnel *tun, bool head)
{
    struct px_worker *w = tun->w;

    if (head)
        TAILQ_INSERT_HEAD(&w->tunnels_doomed, tun, dlink);
    else
        TAILQ_INSERT_TAIL(&w->tunnels_doomed, tun, dlink);
    tun->doomed = true;
    w->n_doomed++;
    __atomic_fetch_add(&w->ctl->tunnels_doomed, 1, __ATOMIC_RELAXED);
}

static void
px_tun_undoom(struct px_tunnel *tun)
{
    struct px_worker *w = tun->w;

    TAILQ_REMOVE(&w->tunnels_doomed, tun, dlink);
    tun->doomed = false;
    w->n_doomed--;
    __atomic_fetch_sub(&w->ctl->tunnels_doomed, 1, __ATOMIC_RELAXED);
}

enum px_rc
px_tunnel_start(struct px_txn *t)
{
    struct px_client *c = t->c;
    struct px_upstream *u = t->u;
    struct px_worker *w = c->w;
    struct px_tunnel *tun = calloc(1, sizeof(*tun));
    struct timeval tv;
    enum px_rc rc;

    if (tun == NULL)
        return PX_CLOSE; /* the client goes, and with it the transaction and u */
    if (t->raw) {
        /* A tcp-mode connection: relayed from its node's connect; logged as relayed (2xx). */
        t->tunnel = true;
        t->status = 200;
        t->resp_started = true;
        t->resp_done = true;
        c->state = PX_C_HEAD;
    }
    tun->w = w;
    tun->c = c;
    tun->u = u;
    tun->t = t;
    t->u = NULL;
    u->txn = NULL;
    c->txn = NULL;
    c->tunnel = tun;
    /* The connections' own events rest; the tunnel's take over their sockets. */
    px_client_read_off(c);
    event_del(&c->wev);
    c->wev_on = false;
    event_del(&u->rev);
    event_del(&u->wev);
    u->wev_on = false;
    u->read_off = true;
    event_assign(&tun->rev[0], w->base, c->fd, EV_READ | EV_PERSIST, px_tun_on_client_read, tun);
    event_assign(&tun->wev[0], w->base, c->fd, EV_WRITE | EV_PERSIST, px_tun_on_client_write, tun);
    event_assign(&tun->rev[1], w->base, u->fd, EV_READ | EV_PERSIST, px_tun_on_node_read, tun);
    event_assign(&tun->wev[1], w->base, u->fd, EV_WRITE | EV_PERSIST, px_tun_on_node_write, tun);
    evtimer_assign(&tun->idle, w->base, px_tun_on_idle, tun);
    tun->read_off[0] = tun->read_off[1] = true;
    tun->eof[0] = c->eof;
    tun->node = *t->node;
    t->node = &tun->node;
    t->choice.node = NULL;
    px_worker_snapshot_done(w, t->snap);
    t->snap = NULL;
    px_buf_free(&t->replay);
    px_buf_free(&t->held);
    px_buf_free(&u->in);
    tun->node_id = tun->node.id;
    tun->cluster = t->cluster;
    tun->keyed = !t->x_only && t->choice.reason != BAL_REASON_OVERRIDE;
    tun->ws = t->websocket;
    /* The node's first frames may have come with its 101: the framing is followed from there. */
    if (tun->ws && t->tunnel_early > 0 && t->tunnel_early <= px_buf_len(&c->out))
        px_tun_ws_advance(tun,
                          (const unsigned char *)px_buf_head(&c->out) + px_buf_len(&c->out) -
                              t->tunnel_early,
                          t->tunnel_early, false);
    TAILQ_INSERT_TAIL(&w->tunnels, tun, link);
    if (XF_UNLIKELY(w->draining)) {
        /* Opened while stopping (its request came before): it goes with the others. */
        bool was_idle = TAILQ_EMPTY(&w->tunnels_doomed);

        px_tun_doom(tun, false);
        if (was_idle)
            px_tun_close_start(w);
    }
    XF_STAT_INC(w->stats->cluster[t->cluster].tunnels);
    XF_STAT_INC(w->stats->cluster[t->cluster].tunnels_total);
    XF_STAT_INC(w->usage->tunnels[t->node->id]);
    /* What the client sent after its request (it may speak first) follows it to the node. */
    if (px_buf_len(&c->in) > 0) {
        tun->bytes[0] += px_buf_len(&c->in);
        if (px_buf_append(&u->out, px_buf_head(&c->in), px_buf_len(&c->in)) == -1)
            return PX_CLOSE;
        px_buf_free(&c->in);
    }
    tun->active_ms = xf_now_ms();
    tv = px_tv_until(tun->active_ms + w->cfg->timeouts.tunnel_idle_ms);
    evtimer_add(&tun->idle, &tv);
    px_tun_read_on(tun, 0);
    px_tun_read_on(tun, 1);
    /* The 101 and what the node sent after it, then the client's first bytes. */
    rc = px_tun_flush(tun, 0);
    if (rc == PX_OK)
        rc = px_tun_flush(tun, 1);
    return rc;
}

void
px_tunnel_free(struct px_tunnel *tun)
{
    struct px_worker *w = tun->w;
    struct px_client *c = tun->c;
    struct px_txn *t = tun->t;

    for (int i = 0; i < 2; i++) {
        event_del(&tun->rev[i]);
        event_del(&tun->wev[i]);
    }
    event_del(&tun->idle);
    TAILQ_REMOVE(&w->tunnels, tun, link);
    if (tun->doomed)
        px_tun_undoom(tun);
    XF_STAT_DEC(w->stats->cluster[t->cluster].tunnels);
    XF_STAT_DEC(w->usage->tunnels[t->node->id]);
    tun->u->broken = true; /* never pooled; a close_notify went with our half-close */
    px_upstream_free(tun->u);
    t->t_up_end_us = xf_now_us();
    t->bytes_in += tun->bytes[0];
    t->bytes_out = c->sent_total - t->out_mark;
    t->resp_done = true;
    px_alog_txn(w, t);
    px_txn_free(t);
    c->tunnel = NULL;
    free(tun);
}

/* --- leaving a side the tunnel no longer belongs to --- */

/* Whether tun still belongs where it is under snapshot s. */
static bool
px_tun_belongs(const struct px_tunnel *tun, const struct bal_snapshot *s,
               const struct bal_node *const *by_id)
{
    const struct bal_node *n = tun->node_id < s->max_id ? by_id[tun->node_id] : NULL;
    const struct cfg_addr *addr = &tun->node.addr;
    enum cfg_cluster_id side;
    const struct px_txn *t = tun->t;

    /* Drained, disabled or removed (an id given to another node is another address). */
    if (n == NULL || n->state != BAL_NODE_UP || n->addr.sa_len != addr->sa_len ||
        memcmp(&n->addr.sa, &addr->sa, addr->sa_len) != 0)
        return false;
    if (!tun->keyed)
        return true;
    /* The bucket under this snapshot's seed: a reload may have changed it. */
    side =
        bal_bucket(t->key, t->key_len, s->seed_hash) < s->weight_bp ? CFG_CLUSTER_Y : CFG_CLUSTER_X;
    if (s->pins != NULL)
        bal_pins_find(s->pins, t->key, t->key_len, &side);
    if (side == tun->cluster)
        return true;
    /* Its key went to the other side: it moves on a rollback (weight 0), or on any change when
     * tunnels follow the weight. */
    return !(s->weight_bp == 0 || s->cfg->tunnels.follow_weight);
}

static uint64_t
px_tun_rand(struct px_worker *w)
{
    uint64_t x = w->tunnel_rng;

    if (x == 0)
        x = xf_now_us() | 1u;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    w->tunnel_rng = x;
    return x;
}

/* The next tick of the closing: 50 to 150 ms, so that the workers' closings do not line up. */
static void
px_tun_close_arm(struct px_worker *w)
{
    struct timeval tv = {0, (suseconds_t)(50000 + px_tun_rand(w) % 100001)};

    evtimer_add(w->ev_tunnel_close, &tv);
}

/* Starts closing tun: a WebSocket at its next frame boundary with a close frame first (and its
 * close handshake given 2 s), any other tunnel at once. */
static void
px_tun_retire(struct px_tunnel *tun)
{
    struct timeval tv = {2, 0};

    px_tun_undoom(tun);
    if (!tun->ws) {
        px_client_free(tun->c);
        return;
    }
    tun->retiring = true;
    evtimer_add(&tun->idle, &tv); /* the idle timer becomes the close handshake's deadline */
    if (tun->eof[1])
        return; /* the node ended first (its own close frame): the tunnel ends as it goes */
    if (px_tun_ws_boundary(tun)) {
        px_tun_ws_close(tun);
        if (px_tun_flush(tun, 0) == PX_CLOSE)
            px_client_free(tun->c);
    }
}

/* A tick: as many doomed tunnels close as this worker's share of the rate allows since the last. */
static void
px_tun_on_close_tick(evutil_socket_t fd, short what, void *arg)
{
    struct px_worker *w = arg;
    uint64_t now = xf_now_ms();
    unsigned all = __atomic_load_n(&w->ctl->tunnels_doomed, __ATOMIC_RELAXED);
    /* This worker's share of the rate: its share of the tunnels doomed in the whole process. */
    double rate = (double)w->cfg->tunnels.close_rate * (double)w->n_doomed /
                  (double)XF_MAX(XF_MAX(all, w->n_doomed), 1u);

    if (w->draining && w->tunnel_drain_rate > rate)
        rate = w->tunnel_drain_rate; /* stopping: all of them before timeouts.shutdown */

    XF_UNUSED(fd);
    XF_UNUSED(what);
    w->tunnel_close_budget += rate * (double)(now - w->tunnel_close_ms) / 1000.0;
    w->tunnel_close_ms = now;
    while (w->tunnel_close_budget >= 1.0 && !TAILQ_EMPTY(&w->tunnels_doomed)) {
        w->tunnel_close_budget -= 1.0;
        px_tun_retire(TAILQ_FIRST(&w->tunnels_doomed));
    }
    if (TAILQ_EMPTY(&w->tunnels_doomed)) {
        w->tunnel_close_budget = 0;
        return;
    }
    px_tun_close_arm(w);
}

/* Doomed tunnels wait (none were before): the closing starts, a tick's worth at once. */
static void
px_tun_close_start(struct px_worker *w)
{
    if (TAILQ_EMPTY(&w->tunnels_doomed))
        return;
    if (w->ev_tunnel_close == NULL) {
        w->ev_tunnel_close = evtimer_new(w->base, px_tun_on_close_tick, w);
        if (w->ev_tunnel_close == NULL)
            return; /* out of memory: they stay until they end */
    }
    w->tunnel_close_ms = xf_now_ms();
    w->tunnel_close_budget = 1.0;
    px_tun_on_close_tick(-1, 0, w);
}

void
px_tunnel_follow(struct px_worker *w, const struct bal_snapshot *s)
{
    const struct bal_node **by_id;
    struct px_tunnel *tun;
    bool was_idle = TAILQ_EMPTY(&w->tunnels_doomed);

    if (w->draining)
        return; /* stopping: every tunnel is on its way out (px_tunnel_drain) */
    by_id = calloc(XF_MAX(s->max_id, 1u), sizeof(*by_id));
    if (by_id == NULL)
        return; /* out of memory: judged at the next snapshot */
    /* The nodes by id, so that a pass costs tunnels + nodes, not their product. */
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++)
        for (size_t i = 0; i < s->clusters[c].n_nodes; i++)
            if (s->clusters[c].nodes[i].id < s->max_id)
                by_id[s->clusters[c].nodes[i].id] = &s->clusters[c].nodes[i];
    TAILQ_FOREACH(tun, &w->tunnels, link)
    {
        bool belongs;

        if (tun->retiring)
            continue;
        belongs = px_tun_belongs(tun, s, by_id);
        if (!belongs && !tun->doomed) {
            /* At the head or the tail at random: the closings mix nodes and clients. */
            px_tun_doom(tun, px_tun_rand(w) & 1u);
        } else if (belongs && tun->doomed) {
            px_tun_undoom(tun); /* the change was undone: it stays */
        }
    }
    free(by_id);
    if (was_idle)
        px_tun_close_start(w);
}

void
px_tunnel_drain(struct px_worker *w)
{
    struct px_tunnel *tun;
    bool was_idle = TAILQ_EMPTY(&w->tunnels_doomed);
    unsigned n = 0;
    double window_s = (double)w->cfg->timeouts.shutdown_ms * 0.8 / 1000.0;

    TAILQ_FOREACH(tun, &w->tunnels, link)
    {
        if (tun->retiring)
            continue;
        if (!tun->doomed)
            px_tun_doom(tun, false);
        n++;
    }
    /* At least the configured rate; faster when that would not close them all in time. */
    w->tunnel_drain_rate = (double)n / XF_MAX(window_s, 0.05);
    if (was_idle)
        px_tun_close_start(w);
}
