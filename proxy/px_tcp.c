/* proxy/px_tcp.c -- what happens on a connection before HTTP or the relay: the PROXY header an L4
 * balancer sends first (listen[].proxy_protocol), and a tcp-mode listener's connections (mode:
 * tcp): keyed on the client's address or on the server name its TLS ClientHello asks for (read,
 * not terminated), split with the same seed, weight, pins and nodes as HTTP, then relayed as a
 * tunnel (px_tunnel.c) once the node's connection is up. A connect that fails goes to the next
 * node of the same side with the same bytes (nothing reached the client, and the node got none).
 *
 * The PROXY header is read with MSG_PEEK and then taken to its exact length, so that nothing
 * after it is read here: TLS or HTTP begin on the socket as if it had come alone.
 */
#include "proxy/px_conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static void px_tcp_begin(struct px_client *c);

/* A connection refused before its payload: logged (rate-limited), counted, closed. */
static void
px_tcp_refuse(struct px_client *c, const char *event, const char *why)
{
    struct px_worker *w = c->w;

    XF_STAT_INC(w->stats->proxy_refused);
    if (px_ratelog_allow(&w->l4_log, "proxy", event, w->index))
        XF_LOG(XF_LOG_WARN, "proxy", "event=%s client=%s listener=%s reason=\"%s\"", event, c->ip,
               c->l->conf.addr.text, why);
    px_client_free(c);
}

/* Waits for the next bytes until c->pre_end_ms. */
static void
px_tcp_wait(struct px_client *c)
{
    struct timeval tv = px_tv_until(c->pre_end_ms);

    event_add(&c->rev, &tv);
    c->read_off = false;
}

void
px_tcp_accept(struct px_client *c)
{
    const struct cfg_split *split = &c->w->cfg->split;
    struct bal_request req = {.peer = c->peer};
    struct bal_addr a;

    c->raw = c->l->conf.mode == CFG_MODE_TCP;
    if (c->raw)
        XF_STAT_INC(c->w->stats->tcp_connections);
    if (!c->l->conf.proxy_protocol) {
        px_tcp_begin(c);
        return;
    }
    bal_client_addr(split, &req, &a);
    if (!bal_addr_in(&a, split->trusted_proxies, split->n_trusted_proxies)) {
        px_tcp_refuse(c, "proxy_header_refused",
                      "a connection from outside split.trusted_proxies on a proxy_protocol "
                      "listener");
        return;
    }
    c->pre = PX_PRE_PROXY;
    c->pre_end_ms = xf_now_ms() + c->w->cfg->timeouts.client_header_ms;
    px_tcp_wait(c);
}

/* The client's address becomes the one the PROXY header names. */
static int
px_tcp_pp_apply(struct px_client *c, const struct px_pp *pp)
{
    c->pp_addrs = malloc(2 * sizeof(*c->pp_addrs));
    if (c->pp_addrs == NULL)
        return -1;
    c->pp_addrs[0] = pp->src;
    c->pp_addrs[1] = pp->dst;
    px_client_set_peer(c, (const struct sockaddr *)&pp->src);
    return 0;
}

/*
 * Reads the PROXY header: what is peeked is parsed after the bytes of it taken already (c->in);
 * an incomplete header's bytes are all header, and are taken; a complete one is taken to its
 * exact end. PX_OK while it waits or once done (c->pre moved on), PX_CLOSE to close.
 */
static enum px_rc
px_tcp_read_pp(struct px_client *c)
{
    char buf[PX_PP2_MAX];
    size_t have = px_buf_len(&c->in);
    struct px_pp pp;
    ssize_t n;

    if (have > 0)
        memcpy(buf, px_buf_head(&c->in), have);
    n = recv(c->fd, buf + have, sizeof(buf) - have, MSG_PEEK);
    if (n == -1)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? PX_OK : PX_CLOSE;
    if (n == 0)
        return PX_CLOSE; /* gone before its header: nothing to say */
    switch (px_pp_parse(buf, have + (size_t)n, &pp)) {
    case PX_PP_MORE:
        if (have + (size_t)n >= sizeof(buf)) {
            px_tcp_refuse(c, "proxy_header_refused", "a PROXY header longer than the limit");
            return PX_DONE;
        }
        if (recv(c->fd, buf + have, (size_t)n, 0) != n ||
            px_buf_append_small(&c->in, buf + have, (size_t)n) == -1)
            return PX_CLOSE;
        return PX_OK;
    case PX_PP_BAD:
        px_tcp_refuse(c, "proxy_header_refused", pp.why);
        return PX_DONE;
    case PX_PP_DONE:
        break;
    }
    if (pp.len > have && recv(c->fd, buf + have, pp.len - have, 0) != (ssize_t)(pp.len - have))
        return PX_CLOSE;
    px_buf_free(&c->in);
    if (pp.have_addr && px_tcp_pp_apply(c, &pp) == -1)
        return PX_CLOSE;
    c->pre = PX_PRE_NONE;
    event_del(&c->rev);
    c->read_off = true;
    px_tcp_begin(c);
    return PX_DONE;
}

/* --- tcp mode --- */

/* Routes c by `key` and sends what it sent so far (c->in) to the node chosen. Frees c when it
 * must go. */
static void
px_tcp_route(struct px_client *c, const char *key, size_t key_len, bool sni)
{
    struct px_worker *w = c->w;
    struct px_txn *t = px_txn_new(c);
    struct bal_choice choice;
    struct px_buf data = {0};
    enum px_rc rc;

    c->pre = PX_PRE_NONE;
    px_client_read_off(c); /* its next bytes wait in the socket for the tunnel */
    if (t == NULL) {
        px_client_free(c);
        return;
    }
    t->raw = true;
    t->client_ka = false;
    t->target_len = (size_t)snprintf(t->target, sizeof(t->target), "TCP %s%.*s",
                                     sni ? "sni=" : "ip", sni ? (int)key_len : 0, key);
    t->key = malloc(key_len + 1);
    if (t->key == NULL) {
        px_txn_free(t);
        px_client_free(c);
        return;
    }
    memcpy(t->key, key, key_len);
    t->key[key_len] = '\0';
    t->key_len = key_len;
    t->snap = px_worker_snapshot(w);
    t->snap->inflight++;
    t->node_target = (uint8_t)c->l->target;
    bal_pick_key(t->snap->s, key, key_len, &w->bal, &choice);
    if (choice.node != NULL && t->node_target != 0)
        px_worker_pool(w, choice.node); /* so that its target's address is known */
    px_txn_route(t, &choice);
    c->txn = t;
    c->first = false;
    c->state = PX_C_DONE;
    t->req_done = true;
    if (t->node == NULL) {
        if (px_ratelog_allow(&w->l4_log, "proxy", "tcp_no_node", w->index))
            XF_LOG(XF_LOG_WARN, "proxy", "event=tcp_no_node client=%s listener=%s key=\"%.*s\"",
                   c->ip, c->l->conf.addr.text, (int)XF_MIN(key_len, (size_t)64), key);
        px_txn_fail(t, 503, "no node available", XF_FAIL_NO_NODE);
        px_client_free(c);
        return;
    }
    t->t_up_start_us = xf_now_us();
    XF_STAT_INC(w->active[t->node->id]);
    XF_STAT_INC(w->usage->ns[t->node->id].requests);
    t->dispatched = true;
    t->tried[t->n_tried++] = t->node->id;
    t->bytes_in = px_buf_len(&c->in);
    px_buf_move(&data, &c->in);
    rc = px_txn_dispatch(t, &data);
    if (rc == PX_OK && c->txn != NULL && c->txn->u != NULL)
        rc = px_upstream_flush(c->txn->u);
    if (rc == PX_CLOSE || (c->txn == NULL && c->tunnel == NULL))
        px_client_free(c);
}

/* The client's address as the split's ip key (its text, IPv4-mapped addresses as IPv4). */
static void
px_tcp_route_ip(struct px_client *c)
{
    struct bal_request req = {.peer = c->peer};
    struct bal_addr a;
    char text[BAL_ADDR_TEXT];
    size_t len;

    bal_client_addr(&c->w->cfg->split, &req, &a);
    len = bal_addr_text(&a, text, sizeof(text));
    px_tcp_route(c, text, len, false);
}

/* Reads what the client sends until its ClientHello's server name is known, or known to be
 * absent (then the address is the key). PX_DONE once routed (c may be gone), PX_OK while it
 * waits, PX_CLOSE to close. */
static enum px_rc
px_tcp_read_hello(struct px_client *c)
{
    struct px_sni sni;
    enum px_sni_rc rc;
    char *dst = px_buf_reserve_small(&c->in, 4096);
    ssize_t n;

    if (dst == NULL)
        return PX_CLOSE;
    n = recv(c->fd, dst, XF_MIN(c->in.cap - c->in.end, (size_t)PX_HELLO_MAX - px_buf_len(&c->in)),
             0);
    if (n == -1)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? PX_OK : PX_CLOSE;
    if (n == 0)
        return PX_CLOSE; /* gone before saying anything a node could take */
    c->in.end += (size_t)n;
    rc = px_sni_parse(px_buf_head(&c->in), px_buf_len(&c->in), &sni);
    if (rc == PX_SNI_MORE)
        return PX_OK;
    if (rc == PX_SNI_FOUND) {
        px_tcp_route(c, sni.name, sni.len, true);
        return PX_DONE;
    }
    /* Not TLS, or no name: keyed on the address; what it sent goes on all the same. */
    XF_STAT_INC(c->w->stats->tcp_no_sni);
    XF_LOG(XF_LOG_DEBUG, "proxy", "event=tcp_no_sni client=%s reason=\"%s\"", c->ip, sni.why);
    px_tcp_route_ip(c);
    return PX_DONE;
}

/* After the PROXY header (or without one): TLS and HTTP, or tcp mode's key. */
static void
px_tcp_begin(struct px_client *c)
{
    if (!c->raw) {
        px_client_start(c);
        return;
    }
    if (c->l->conf.key == CFG_L4_KEY_SNI) {
        c->pre = PX_PRE_HELLO;
        c->pre_end_ms = xf_now_ms() + c->w->cfg->timeouts.tcp_hello_ms;
        px_tcp_wait(c);
        return;
    }
    px_tcp_route_ip(c);
}

void
px_tcp_on_read(struct px_client *c, short what)
{
    enum px_rc rc;

    if (what & EV_TIMEOUT) {
        if (c->pre == PX_PRE_HELLO) {
            /* Silent, or too slow to say its name: the address decides, what came goes on. */
            XF_STAT_INC(c->w->stats->tcp_no_sni);
            px_tcp_route_ip(c);
            return;
        }
        px_tcp_refuse(c, "proxy_header_refused", "no complete PROXY header in time");
        return;
    }
    if (c->pre == PX_PRE_PROXY)
        rc = px_tcp_read_pp(c);
    else
        rc = px_tcp_read_hello(c);
    if (rc == PX_CLOSE)
        px_client_free(c);
    else if (rc == PX_OK)
        px_tcp_wait(c); /* what is left of the time: bytes trickling in do not extend it */
}

int
px_tcp_pp_out(struct px_txn *t, struct px_upstream *u)
{
    unsigned version = t->c->w->cfg->clusters[t->cluster].proxy_protocol;
    struct px_client *c = t->c;
    struct sockaddr_storage addrs[2];
    socklen_t len = sizeof(addrs[0]);
    char hdr[PX_PP1_MAX + 64];
    size_t n;

    u->pp_len = 0;
    if (version == 0 || u->reused)
        return 0;
    if (c->pp_addrs != NULL) {
        addrs[0] = c->pp_addrs[0];
        addrs[1] = c->pp_addrs[1];
    } else {
        memset(addrs, 0, sizeof(addrs));
        if (getpeername(c->fd, (struct sockaddr *)&addrs[0], &len) == -1)
            addrs[0].ss_family = AF_UNSPEC;
        len = sizeof(addrs[1]);
        if (getsockname(c->fd, (struct sockaddr *)&addrs[1], &len) == -1)
            addrs[1].ss_family = AF_UNSPEC;
    }
    n = px_pp_build((int)version, &addrs[0], &addrs[1], hdr, sizeof(hdr));
    if (n == 0 || px_buf_append(&u->out, hdr, n) == -1)
        return -1;
    u->pp_len = (uint8_t)n;
    /* The header speaks for one client: the connection is never handed to another. */
    u->broken = true;
    return 0;
}
