/* proxy/px_dispatch.c -- getting a request to a node: per-node connection limits and their
 * bounded queues, retries on another node, failover to the other cluster. */
#include "proxy/px_conn.h"

#include <string.h>

static void px_txn_on_queue(evutil_socket_t fd, short what, void *arg);
static enum px_rc px_txn_give_up(struct px_txn *t, int status, const char *why, enum xf_fail kind);

void
px_txn_observe(struct px_txn *t, bool ok)
{
    if (t->node != NULL)
        px_worker_observe(t->c->w, t->node->id, ok);
}

int
px_pool_slot_take(struct px_pool *pool)
{
    unsigned cur = __atomic_load_n(&pool->share->busy, __ATOMIC_SEQ_CST);

    do {
        if (cur >= pool->max_conns)
            return -1;
    } while (!__atomic_compare_exchange_n(&pool->share->busy, &cur, cur + 1, true, __ATOMIC_SEQ_CST,
                                          __ATOMIC_SEQ_CST));
    return 0;
}

void
px_pool_slot_put(struct px_pool *pool)
{
    __atomic_fetch_sub(&pool->share->busy, 1, __ATOMIC_SEQ_CST);
    /* This worker's first waiter not woken yet takes it; else another worker's. */
    if (!px_pool_wake(pool))
        px_pool_pass_on(pool);
}

void
px_pool_waiting(struct px_pool *pool, int delta)
{
    pool->n_waiting = (unsigned)((int)pool->n_waiting + delta);
    if (pool->share == NULL)
        return;
    __atomic_fetch_add(&pool->share->waiting, (unsigned)delta, __ATOMIC_SEQ_CST);
    if (delta > 0 && pool->n_waiting == 1)
        __atomic_fetch_or(&pool->share->waiters, 1ull << pool->w->index, __ATOMIC_SEQ_CST);
    else if (delta < 0 && pool->n_waiting == 0)
        __atomic_fetch_and(&pool->share->waiters, ~(1ull << pool->w->index), __ATOMIC_SEQ_CST);
}

/* Requests waiting for the node's connections: in every worker for a node with a limit. */
static unsigned
px_pool_queued(const struct px_pool *pool)
{
    if (pool->share != NULL)
        return __atomic_load_n(&pool->share->waiting, __ATOMIC_SEQ_CST);
    return pool->n_waiting;
}

struct px_buf *
px_txn_sink(struct px_txn *t)
{
    if (t->u != NULL)
        return &t->u->out;
    if (t->queued || t->buffering)
        return &t->held;
    return NULL;
}

bool
px_pool_wake(struct px_pool *pool)
{
    struct px_txn *t;

    TAILQ_FOREACH(t, &pool->waiting, qlink)
    {
        if (!t->woken) {
            t->woken = true;
            event_active(&t->qev, EV_WRITE, 1);
            return true;
        }
    }
    return false;
}

void
px_pool_pass_on(struct px_pool *pool)
{
    struct px_worker *w = pool->w;
    struct px_ctl *ctl = w->ctl;
    uint64_t others;

    if (pool->share == NULL || pool->max_conns == 0 || ctl->freeing ||
        __atomic_load_n(&pool->share->busy, __ATOMIC_SEQ_CST) >= pool->max_conns)
        return;
    /* After the slot is back: a worker that set its bit before sees the slot when it looks
     * again after setting it, or is seen here (both sequentially consistent). */
    others = __atomic_load_n(&pool->share->waiters, __ATOMIC_SEQ_CST) & ~(1ull << w->index);
    if (others == 0)
        return;
    /* The next one after this worker, so that no worker is always served first. */
    for (unsigned k = 1; k <= ctl->n_workers; k++) {
        unsigned i = (w->index + k) % ctl->n_workers;

        if (others & (1ull << i)) {
            px_worker_post(ctl->workers[i], PX_MSG_WAKE);
            return;
        }
    }
}

void
px_txn_dequeue(struct px_txn *t)
{
    struct px_pool *pool = t->qpool;
    bool handoff = t->woken;

    if (!t->queued)
        return;
    TAILQ_REMOVE(&pool->waiting, t, qlink);
    px_pool_waiting(pool, -1);
    XF_STAT_DEC(t->c->w->stats->cluster[t->cluster].queue_waiting);
    event_del(&t->qev);
    t->queued = false;
    t->woken = false;
    t->qpool = NULL;
    /* Leaving without the slot freed for it (an error, the client gone, its time up in the same
     * turn): the next one gets it, or the node would wait for a wake-up that never comes. */
    if (handoff && !px_pool_wake(pool))
        px_pool_pass_on(pool);
}

/*
 * Puts t in the queue of `pool` with the request bytes `data` (taken). A transaction that waited
 * already goes back to the front with what is left of its time; a new one joins the end, or gets
 * 503 when max_pending wait already.
 */
static enum px_rc
px_txn_enqueue(struct px_txn *t, struct px_pool *pool, struct px_buf *data, bool front)
{
    struct px_worker *w = t->c->w;
    struct xf_cluster_stats *cs = &w->stats->cluster[t->cluster];

    if (!front && px_pool_queued(pool) >= pool->max_pending) {
        px_buf_free(data);
        XF_STAT_INC(cs->queue_full);
        return px_txn_give_up(t, 503, "the node is at its connection limit and its queue is full",
                              XF_FAIL_QUEUE);
    }
    if (px_buf_move(&t->held, data) == -1)
        return px_txn_give_up(t, 502, "out of memory", XF_FAIL_QUEUE);
    t->queued = true;
    t->woken = false;
    t->qpool = pool;
    px_pool_waiting(pool, +1);
    XF_STAT_INC(cs->queue_waiting);
    if (front) {
        uint64_t now = xf_now_us();
        uint64_t left = t->q_deadline_us > now ? t->q_deadline_us - now : 0;
        struct timeval tv = {.tv_sec = (time_t)(left / 1000000u),
                             .tv_usec = (suseconds_t)(left % 1000000u)};

        TAILQ_INSERT_HEAD(&pool->waiting, t, qlink);
        event_add(&t->qev, &tv);
    } else {
        TAILQ_INSERT_TAIL(&pool->waiting, t, qlink);
        t->q_deadline_us = xf_now_us() + (uint64_t)w->cfg->timeouts.queue_ms * 1000u;
        event_assign(&t->qev, w->base, -1, 0, px_txn_on_queue, t);
        event_add(&t->qev, w->tv_queue);
    }
    /* A slot another worker gave back between our try and the bit set in px_pool_waiting. */
    if (pool->share != NULL && px_pool_next_fits(pool))
        px_pool_wake(pool);
    return PX_OK;
}

/* Logs the start of a failover episode of cluster `from` once; counted per request anyway. */
static void
px_txn_note_failover(struct px_worker *w, enum cfg_cluster_id from, enum cfg_cluster_id to)
{
    if (w->failing_over[from])
        return;
    w->failing_over[from] = true;
    XF_LOG(XF_LOG_WARN, "proxy",
           "event=failover from=%s to=%s reason=\"no node of %s can take requests\"",
           cfg_cluster_name(from), cfg_cluster_name(to), cfg_cluster_name(from));
}

void
px_txn_route(struct px_txn *t, const struct bal_choice *ch)
{
    struct px_worker *w = t->c->w;

    t->choice = *ch;
    t->cluster = ch->cluster;
    t->node = ch->node;
    t->counted = true;
    /* A failed-over request counts in both clusters' requests (and the first's failovers), so
     * that requests = responses + failures + active + failovers holds for each. */
    if (ch->failover)
        XF_STAT_INC(w->stats->cluster[ch->assigned].requests);
    XF_STAT_INC(w->stats->cluster[t->cluster].requests);
    XF_STAT_INC(w->stats->cluster[t->cluster].active);
    /* What `preview weight` reads: requests the weight itself decided. */
    if (ch->reason == BAL_REASON_WEIGHT && !t->test && !t->x_only)
        xf_preview_count(w->preview, ch->kid, ch->bucket, t->t_start_us / 1000000u);
    if (ch->failover) {
        XF_STAT_INC(w->stats->cluster[ch->assigned].failovers);
        px_txn_note_failover(w, ch->assigned, ch->cluster);
    } else if (XF_UNLIKELY(w->failing_over[ch->assigned]) && ch->node != NULL) {
        w->failing_over[ch->assigned] = false;
        XF_LOG(XF_LOG_INFO, "proxy", "event=failover_end cluster=%s",
               cfg_cluster_name(ch->assigned));
    }
}

/*
 * Moves t to another node, by its balance, not one tried already; away from the cluster the split
 * chose only when that cluster's failover allows it. The current snapshot is used (it knows the
 * latest health). `counted`: the move spends one of cfg retries. Returns false when no retry is
 * left or no node can take it (t unchanged).
 */
static bool
px_txn_next_node(struct px_txn *t, bool counted)
{
    struct px_worker *w = t->c->w;
    struct bal_choice ch = t->choice;
    enum cfg_cluster_id from = t->cluster;
    struct px_snap *ps;

    if ((counted && t->n_retries >= w->cfg->retries) || t->n_tried >= PX_TRIES_MAX)
        return false;
    ps = px_worker_snapshot(w);
    if (bal_repick(ps->s, &w->bal, t->tried, t->n_tried, &ch) == -1 || ch.node->id >= w->n_pools)
        return false;
    if (t->x_only && ch.cluster != CFG_CLUSTER_X)
        return false;
    /* The old node's count goes before its snapshot may: t->node points into it. */
    if (t->dispatched) {
        XF_STAT_DEC(w->active[t->node->id]);
        if (counted)
            XF_STAT_INC(w->usage->ns[t->node->id].retries);
    }
    if (ps != t->snap) {
        ps->inflight++;
        px_worker_snapshot_done(w, t->snap);
        t->snap = ps;
    }
    t->choice = ch;
    t->node = ch.node;
    XF_STAT_INC(w->active[t->node->id]);
    XF_STAT_INC(w->usage->ns[t->node->id].requests);
    t->dispatched = true;
    t->tried[t->n_tried++] = t->node->id;
    if (counted) {
        t->n_retries++;
        XF_STAT_INC(w->stats->cluster[from].retries);
    }
    if (ch.cluster != from) {
        struct xf_cluster_stats *old = &w->stats->cluster[from],
                                *now = &w->stats->cluster[ch.cluster];

        XF_STAT_DEC(old->active);
        XF_STAT_INC(now->active);
        XF_STAT_INC(now->requests);
        XF_STAT_INC(w->stats->cluster[ch.assigned].failovers);
        t->cluster = ch.cluster;
        px_txn_note_failover(w, ch.assigned, ch.cluster);
    }
    return true;
}

/* Answers t with an error: PX_CLOSE when the client must be freed, else PX_DONE (t may be gone). */
static enum px_rc
px_txn_give_up(struct px_txn *t, int status, const char *why, enum xf_fail kind)
{
    return px_txn_fail(t, status, why, kind) == PX_CLOSE ? PX_CLOSE : PX_DONE;
}

/* Hands t to node connection u with the request bytes `data` (taken). */
static enum px_rc
px_txn_attach(struct px_txn *t, struct px_upstream *u, struct px_buf *data)
{
    t->u = u;
    u->txn = t;
    u->sent = 0;
    if (XF_UNLIKELY(t->c->w->cfg->clusters[t->cluster].proxy_protocol != 0) &&
        px_tcp_pp_out(t, u) == -1) {
        px_buf_free(data);
        return px_txn_give_up(t, 502, "out of memory", XF_FAIL_CONNECT);
    }
    if (px_buf_move(&u->out, data) == -1)
        return px_txn_give_up(t, 502, "out of memory", XF_FAIL_CONNECT);
    if (t->req_done)
        px_upstream_arm_response_timeout(u);
    return PX_OK;
}

/* px_txn_dispatch, for a transaction that `waited` in a queue already (it goes first). */
static enum px_rc
px_txn_dispatch_at(struct px_txn *t, struct px_buf *data, bool waited)
{
    struct px_worker *w = t->c->w;

    for (;;) {
        struct px_pool *pool = px_worker_pool(w, t->node);
        struct px_upstream *u;
        int err_status = 502;
        bool slot;

        if (pool == NULL) {
            px_buf_free(data);
            return px_txn_give_up(t, 502, "out of memory", XF_FAIL_CONNECT);
        }
        if (pool->closing) {
            /* The node stopped taking requests while this one waited: nothing was sent yet. */
            if (!px_txn_next_node(t, false)) {
                px_buf_free(data);
                return px_txn_give_up(t, 503, "no node available", XF_FAIL_NO_NODE);
            }
            waited = false;
            continue;
        }
        if (px_pool_full(pool, t->node_target) || (!waited && pool->n_waiting > 0))
            return px_txn_enqueue(t, pool, data, waited);
        /* A node with a limit: a slot of it, taken for every worker at once. */
        slot = pool->share != NULL && pool->max_conns > 0;
        if (slot && px_pool_slot_take(pool) == -1)
            return px_txn_enqueue(t, pool, data, waited);
        u = px_upstream_get(w, pool, t->node_target, t->node->cluster, &err_status,
                            t->raw          ? PX_REUSE_NONE
                            : t->idempotent ? PX_REUSE_ANY
                                            : PX_REUSE_CHECKED);
        if (u != NULL) {
            u->slot = slot;
            return px_txn_attach(t, u, data);
        }
        if (slot)
            px_pool_slot_put(pool);
        if (err_status == 503) {
            /* Out of sockets or memory here: no fault of the node, and no other node would do. */
            px_buf_free(data);
            return px_txn_give_up(t, 503, "the proxy is out of resources", XF_FAIL_CONNECT);
        }
        /* Refused at once (a local node that is gone): nothing was sent, another node may do. */
        px_txn_observe(t, false);
        if (!px_txn_next_node(t, true)) {
            px_buf_free(data);
            return px_txn_give_up(t, err_status, "could not connect to the node", XF_FAIL_CONNECT);
        }
        waited = false;
    }
}

enum px_rc
px_txn_dispatch(struct px_txn *t, struct px_buf *data)
{
    return px_txn_dispatch_at(t, data, false);
}

enum px_rc
px_txn_retry(struct px_txn *t, int status, const char *why, enum xf_fail kind)
{
    struct px_upstream *u = t->u;
    struct px_pool *pool = u->pool;
    struct px_buf data = {0};
    /* A reused keep-alive connection that ends before any answer: the node closed it while it
     * was idle (the close crossed our request), not a fault of the node. */
    bool stale = u->reused && kind == XF_FAIL_RESET;
    bool replay = false;
    enum px_rc rc;

    if (!stale)
        px_txn_observe(t, false);
    if (t->resp_started || u->got_bytes)
        goto fail;
    if (u->sent == 0) {
        replay = px_buf_move(&data, &u->out) == 0; /* nothing went out: every byte is still here */
        px_buf_consume(&data, u->pp_len);          /* but the PROXY header: the next says its own */
    } else if (t->idempotent && px_buf_len(&t->replay) > 0)
        replay = px_buf_append(&data, px_buf_head(&t->replay), px_buf_len(&t->replay)) == 0;
    if (!replay)
        goto fail;
    u->broken = true;
    px_upstream_release(u, false);
    t->u = NULL;
    if (stale)
        px_pool_close_idle(pool); /* the others, mostly older (LIFO), are as likely to be gone */
    if (stale && !t->stale_retried) {
        t->stale_retried = true; /* the same node, on a new connection, not counted */
    } else if (!px_txn_next_node(t, true)) {
        px_buf_free(&data);
        goto fail;
    }
    XF_LOG(XF_LOG_DEBUG, "proxy", "event=retry node=%s after=\"%s\"", t->node->addr.text, why);
    rc = px_txn_dispatch_at(t, &data, false);
    if (rc == PX_OK && t->u != NULL)
        rc = px_upstream_flush(t->u);
    return rc == PX_CLOSE ? PX_CLOSE : PX_DONE;
fail:
    px_buf_free(&data);
    return px_txn_give_up(t, status, why, kind);
}

/* A queued transaction's turn came (a slot freed), or its wait timed out. */
static void
px_txn_on_queue(evutil_socket_t fd, short what, void *arg)
{
    struct px_txn *t = arg;
    struct px_client *c = t->c;
    struct px_pool *pool = t->qpool;
    struct px_buf data = t->held;
    enum px_rc rc;

    XF_UNUSED(fd);
    if (!(what & EV_TIMEOUT))
        t->woken = false; /* it takes its slot: no hand-off */
    px_txn_dequeue(t);
    memset(&t->held, 0, sizeof(t->held));
    if (what & EV_TIMEOUT) {
        px_buf_free(&data);
        XF_STAT_INC(c->w->stats->cluster[t->cluster].queue_timeouts);
        rc =
            px_txn_give_up(t, 503, "timed out waiting for a connection to the node", XF_FAIL_QUEUE);
    } else {
        rc = px_txn_dispatch_at(t, &data, true);
        /* More room than this one took (two slots freed in one turn, a raised limit): go on. */
        if (px_pool_next_fits(pool))
            px_pool_wake(pool);
        if (rc == PX_OK && t->u != NULL)
            rc = px_upstream_flush(t->u);
    }
    if (rc == PX_CLOSE)
        px_client_free(c);
}
