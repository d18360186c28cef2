/* proxy/px_worker.c -- one event loop: listeners, accepting, limits, signals and shutdown. */
#include "proxy/px_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define PX_RBUF_SIZE (64u * 1024u)
/* Once this many client connections have closed since the most open at once, their memory is
 * given back to the system (a flood of slow clients, say: glibc keeps freed heap resident). */
#define PX_TRIM_CLOSED 2048u
/* How long accepting pauses after accept ran out of descriptors or memory. */
#define PX_ACCEPT_RETRY_MS 100u

static void px_worker_on_accept_retry(evutil_socket_t fd, short what, void *arg);
static void px_worker_start(struct px_worker *w);
static void px_worker_on_trim(evutil_socket_t fd, short what, void *arg);

static const struct timeval *
px_worker_timeout(struct px_worker *w, unsigned ms, size_t slot)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    const struct timeval *common = event_base_init_common_timeout(w->base, &tv);

    /* A base has 256 common timeouts; reloads that change durations again and again could use
     * them up: then a plain timeout (a heap entry per connection) does the same job. */
    if (common != NULL)
        return common;
    w->tv_plain[slot] = tv;
    return &w->tv_plain[slot];
}

void
px_worker_timeouts_set(struct px_worker *w)
{
    const struct cfg_timeouts *to = &w->cfg->timeouts;

    w->tv_client_idle = px_worker_timeout(w, to->client_idle_ms, 0);
    w->tv_client_header = px_worker_timeout(w, to->client_header_ms, 1);
    w->tv_upstream_response = px_worker_timeout(w, to->upstream_response_ms, 2);
    w->tv_upstream_idle = px_worker_timeout(w, to->upstream_idle_ms, 3);
    w->tv_connect = px_worker_timeout(w, to->connect_ms, 4);
    w->tv_queue = px_worker_timeout(w, to->queue_ms, 5);
}

static void px_pool_set_addr(const struct px_worker *w, struct px_pool *pool,
                             const struct bal_node *node);

/* A pool takes its node's limits; a limited node's slots are shared by every worker. */
static void
px_pool_set_limits(struct px_worker *w, struct px_pool *pool, const struct bal_node *node)
{
    unsigned idle = w->cfg->clusters[node->cluster].max_idle;
    unsigned n = w->ctl->n_workers > 0 ? w->ctl->n_workers : 1;

    pool->max_conns = node->max_conns;
    pool->max_pending = node->max_pending;
    /* Each worker's share, rounded up: a node given 1 keeps one connection in every worker. */
    pool->max_idle = idle == CFG_MAX_IDLE_AUTO ? UINT_MAX : (idle + n - 1) / n;
}
static void px_pool_free(struct px_pool *pool);

/* The pool of a removed node with nothing left in it (no connection, no request in flight or
 * waiting): freed, and its id free for a new node. Returns whether it was. */
static bool
px_worker_pool_reap(struct px_worker *w, uint32_t id)
{
    struct px_pool *pool = w->pools[id];

    if (pool == NULL || !pool->removed || pool->n_busy > 0 || pool->n_idle > 0 ||
        pool->n_waiting > 0 || w->active[id] > 0)
        return false;
    px_pool_free(pool);
    w->pools[id] = NULL;
    /* A node added later may take the id: it starts its counters from zero. */
    xf_node_stats_clear(&w->usage->ns[id]);
    __atomic_store_n(&w->usage->held[id], 0, __ATOMIC_RELEASE);
    return true;
}

/* The node's host name got another address (clusters.*.resolve_interval): connections to the
 * old one are not used again (idle ones close now, busy ones when their request ends). */
static void
px_pool_readdress(struct px_worker *w, struct px_pool *pool, const struct bal_node *node)
{
    XF_LOG(XF_LOG_INFO, "proxy", "event=pool_readdressed node=%s idle=%u busy=%u", node->addr.text,
           pool->n_idle, pool->n_busy);
    px_pool_close_idle(pool);
    pool->gen++;
    px_pool_set_addr(w, pool, node);
}

/*
 * Marks the pools of nodes that take no new requests in `s` (draining, disabled, down, ejected,
 * weight 0, removed) as closing and closes their idle connections; requests in flight keep theirs
 * until they end, and requests waiting in their queues move to another node. Pools of nodes that
 * take requests again are reopened; every pool takes its node's limits. O(pools x nodes), only
 * when a new snapshot is taken.
 */
static void
px_worker_pools_follow(struct px_worker *w, const struct bal_snapshot *s)
{
    for (size_t i = 0; i < w->n_pools; i++)
        if (w->pools[i] != NULL)
            w->pools[i]->closing = w->pools[i]->removed = true;
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++)
        for (size_t i = 0; i < s->clusters[c].n_nodes; i++) {
            const struct bal_node *n = &s->clusters[c].nodes[i];

            if (n->id < w->n_pools && w->pools[n->id] != NULL) {
                struct px_pool *pool = w->pools[n->id];

                pool->removed = false;
                if (pool->t[0].addr.sa_len != n->addr.sa_len ||
                    memcmp(&pool->t[0].addr.sa, &n->addr.sa, n->addr.sa_len) != 0)
                    px_pool_readdress(w, pool, n);
                px_pool_set_limits(w, pool, n);
                if (bal_node_takes(n))
                    pool->closing = false;
            }
        }
    for (size_t i = 0; i < w->n_pools; i++) {
        struct px_pool *pool = w->pools[i];
        struct px_txn *t;

        if (pool == NULL)
            continue;
        if (!pool->closing) {
            if (px_pool_next_fits(pool))
                px_pool_wake(pool); /* its limit was raised */
            continue;
        }
        TAILQ_FOREACH(t, &pool->waiting, qlink)
        {
            if (!t->woken) {
                t->woken = true;
                event_active(&t->qev, EV_WRITE, 1);
            }
        }
        if (pool->n_idle > 0) {
            XF_LOG(XF_LOG_INFO, "proxy", "event=pool_closed node=%s idle=%u busy=%u",
                   pool->t[0].addr.text, pool->n_idle, pool->n_busy);
            px_pool_close_idle(pool);
        }
        px_worker_pool_reap(w, (uint32_t)i);
    }
}

/* A usage table for n ids holding what `old` (may be NULL) holds; NULL when out of memory. */
static struct px_usage *
px_usage_new(size_t n, const struct px_usage *old)
{
    struct px_usage *u =
        calloc(1, sizeof(*u) + n * (sizeof(struct xf_node_stats) + 3 * sizeof(uint32_t) + 1));

    if (u == NULL)
        return NULL;
    u->n = n;
    u->ns = (struct xf_node_stats *)(u + 1);
    u->active = (uint32_t *)(u->ns + n);
    u->idle = u->active + n;
    u->tunnels = u->idle + n;
    u->held = (uint8_t *)(u->tunnels + n);
    if (old != NULL) {
        for (size_t i = 0; i < old->n; i++) {
            u->active[i] = XF_STAT_GET(old->active[i]);
            u->idle[i] = XF_STAT_GET(old->idle[i]);
            u->tunnels[i] = XF_STAT_GET(old->tunnels[i]);
            u->held[i] = XF_STAT_GET(old->held[i]);
            xf_node_stats_merge(&u->ns[i], &old->ns[i]);
        }
    }
    return u;
}

static void
px_usage_free(struct px_usage *u)
{
    while (u != NULL) {
        struct px_usage *older = u->older;
        free(u);
        u = older;
    }
}

/* Grows the pools and the usage table to `n` ids. 0, or -1 when out of memory (unchanged). */
static int
px_worker_grow(struct px_worker *w, size_t n)
{
    struct px_pool **pools;
    struct px_usage *u;

    if (n <= w->n_pools)
        return 0;
    pools = realloc(w->pools, n * sizeof(*pools));
    if (pools == NULL)
        return -1;
    w->pools = pools;
    u = px_usage_new(n, w->usage);
    if (u == NULL)
        return -1;
    for (size_t i = w->n_pools; i < n; i++)
        w->pools[i] = NULL;
    u->older = w->usage;
    w->usage = u;
    w->active = u->active;
    w->bal.active = u->active;
    w->n_pools = n;
    __atomic_store_n(&w->usage_pub, u, __ATOMIC_RELEASE);
    return 0;
}

struct px_snap *
px_worker_snapshot(struct px_worker *w)
{
    uint64_t v = bal_router_version(w->router);
    struct px_snap *ps;

    if (XF_LIKELY(v == w->snap_version))
        return w->snap;
    ps = calloc(1, sizeof(*ps));
    if (ps == NULL)
        return w->snap; /* keep routing with the one we have */
    ps->s = bal_router_acquire(w->router);
    if (w->snap->inflight == 0) {
        bal_snapshot_unref(w->snap->s);
        free(w->snap);
    } else {
        TAILQ_INSERT_TAIL(&w->retired, w->snap, link);
    }
    w->snap = ps;
    w->snap_version = v;
    if (px_worker_grow(w, ps->s->max_id) == -1)
        XF_LOG(XF_LOG_ERR, "proxy", "event=pools_grow_failed reason=out_of_memory");
    px_worker_pools_follow(w, ps->s);
    if (XF_UNLIKELY(!TAILQ_EMPTY(&w->tunnels)))
        px_tunnel_follow(w, ps->s);
    return ps;
}

void
px_worker_refresh(struct px_worker *w)
{
    px_worker_snapshot(w);
    __atomic_store_n(&w->applied, w->snap_version, __ATOMIC_RELEASE);
}

/* Every second: the pools of removed nodes that went quiet are freed, so that their ids may go to
 * new nodes, and buffer blocks no request needed in that second go back to the kernel. */
static void
px_worker_on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct px_worker *w = arg;

    XF_UNUSED(fd);
    XF_UNUSED(what);
    for (size_t i = 0; i < w->n_pools; i++)
        if (w->pools[i] != NULL && w->pools[i]->removed)
            px_worker_pool_reap(w, (uint32_t)i);
    px_buf_trim_unused(PX_BUF_KEEP);
}

void
px_worker_snapshot_done(struct px_worker *w, struct px_snap *ps)
{
    ps->inflight--;
    if (ps != w->snap && ps->inflight == 0) {
        TAILQ_REMOVE(&w->retired, ps, link);
        bal_snapshot_unref(ps->s);
        free(ps);
    }
}

void
px_pool_close_idle(struct px_pool *pool)
{
    for (size_t k = 0; k < pool->n_targets; k++)
        while (!TAILQ_EMPTY(&pool->t[k].idle))
            px_upstream_release_idle(TAILQ_FIRST(&pool->t[k].idle));
}

/* `a` with another port: the sockaddr's and the text's (after its last ':'). */
static void
px_pool_target_addr(struct cfg_addr *a, uint16_t port)
{
    char *colon = strrchr(a->text, ':');

    if (a->sa.ss_family == AF_INET)
        ((struct sockaddr_in *)&a->sa)->sin_port = htons(port);
    else if (a->sa.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&a->sa)->sin6_port = htons(port);
    if (colon != NULL)
        snprintf(colon + 1, sizeof(a->text) - (size_t)(colon + 1 - a->text), "%u", (unsigned)port);
}

static void
px_pool_free(struct px_pool *pool)
{
    if (pool == NULL)
        return;
    if (pool->fault_count > 0)
        px_pool_fault_summary(pool, "removed");
    px_pool_close_idle(pool);
    if (pool->fault_ev != NULL)
        event_free(pool->fault_ev);
    for (size_t k = 0; k < pool->n_targets; k++)
        px_tls_node_sessions_free(&pool->t[k]);
    free(pool->t);
    free(pool);
}

/* Each target's address: the node's, or its host at the target's node_port. */
static void
px_pool_set_addr(const struct px_worker *w, struct px_pool *pool, const struct bal_node *node)
{
    for (size_t k = 0; k < pool->n_targets; k++) {
        pool->t[k].addr = node->addr;
        if (w->target_ports[k] != 0)
            px_pool_target_addr(&pool->t[k].addr, w->target_ports[k]);
    }
}

/*
 * A reload added a listener with another node_port: the pool gets its targets. The idle lists
 * move to the new array (each connection knows its target by index). 0, or -1 when out of
 * memory (the pool is unchanged).
 */
static int
px_pool_grow_targets(struct px_worker *w, struct px_pool *pool, const struct bal_node *node)
{
    struct px_pool_target *t = calloc(w->n_targets, sizeof(*t));

    if (t == NULL)
        return -1;
    for (size_t k = 0; k < w->n_targets; k++) {
        TAILQ_INIT(&t[k].idle);
        if (k < pool->n_targets) {
            TAILQ_CONCAT(&t[k].idle, &pool->t[k].idle, link);
            t[k].n_idle = pool->t[k].n_idle;
            memcpy(t[k].tls_sess, pool->t[k].tls_sess, sizeof(t[k].tls_sess));
            t[k].n_tls_sess = pool->t[k].n_tls_sess;
            t[k].tls_sess_gen = pool->t[k].tls_sess_gen;
        }
    }
    free(pool->t);
    pool->t = t;
    pool->n_targets = w->n_targets;
    px_pool_set_addr(w, pool, node);
    return 0;
}

struct px_pool *
px_worker_pool(struct px_worker *w, const struct bal_node *node)
{
    struct px_pool *pool;

    if (node->id >= w->n_pools)
        return NULL;
    pool = w->pools[node->id];
    if (pool != NULL && XF_UNLIKELY(pool->n_targets < w->n_targets))
        return px_pool_grow_targets(w, pool, node) == 0 ? pool : NULL;
    if (pool == NULL) {
        pool = calloc(1, sizeof(*pool));
        if (pool == NULL)
            return NULL;
        pool->t = calloc(w->n_targets, sizeof(*pool->t));
        pool->fault_ev =
            pool->t != NULL ? evtimer_new(w->base, px_pool_on_fault_quiet, pool) : NULL;
        if (pool->fault_ev == NULL) {
            free(pool->t);
            free(pool);
            return NULL;
        }
        pool->w = w;
        pool->id = node->id;
        /* Only here: a pool that started without its share (out of memory) keeps counting
         * alone, rather than give back what it never counted. */
        pool->share = px_ctl_share(w->ctl, node->id);
        px_pool_set_limits(w, pool, node);
        TAILQ_INIT(&pool->waiting);
        pool->n_targets = w->n_targets;
        for (size_t k = 0; k < w->n_targets; k++)
            TAILQ_INIT(&pool->t[k].idle);
        px_pool_set_addr(w, pool, node);
        w->pools[node->id] = pool;
        __atomic_store_n(&w->usage->held[node->id], 1, __ATOMIC_RELEASE);
    }
    return pool;
}

const char *
px_pool_target_text(const struct px_worker *w, const struct bal_node *node, unsigned target)
{
    if (target == 0 || node->id >= w->n_pools || w->pools[node->id] == NULL)
        return node->addr.text;
    return w->pools[node->id]->t[target].addr.text;
}

/*
 * The targets of the listeners: 0 for the node's own port, then each distinct node_port. Each
 * listener is given the index of its own. Returns 0, or -1 when out of memory.
 */
static int
px_worker_targets(struct px_worker *w)
{
    const struct cfg *cfg = w->cfg;

    w->target_ports = calloc(cfg->n_listeners + 1, sizeof(*w->target_ports));
    if (w->target_ports == NULL)
        return -1;
    w->n_targets = 1;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        uint16_t port = cfg->listeners[i].node_port;
        size_t k = 0;

        while (k < w->n_targets && w->target_ports[k] != port)
            k++;
        if (k == w->n_targets)
            w->target_ports[w->n_targets++] = port;
    }
    return 0;
}

/* The target index of a listener's node_port. */
unsigned
px_worker_target_of(const struct px_worker *w, uint16_t port)
{
    for (size_t k = 0; k < w->n_targets; k++)
        if (w->target_ports[k] == port)
            return (unsigned)k;
    return 0;
}

void
px_worker_hold(struct px_worker *w, struct px_client *c)
{
    if (c->held)
        return;
    c->held = true;
    TAILQ_INSERT_TAIL(&w->held, c, hlink);
    px_client_read_off(c);
}

/* The control thread read this worker's reports of failures: held requests go on. */
static void
px_worker_resume(struct px_worker *w)
{
    struct px_client *c;

    while (!px_worker_behind(w) && (c = TAILQ_FIRST(&w->held)) != NULL) {
        TAILQ_REMOVE(&w->held, c, hlink);
        c->held = false;
        if (px_client_continue(c) == PX_CLOSE)
            px_client_free(c);
    }
}

/* The control thread's messages (enum px_msg), handled in the order that makes sense: a new
 * snapshot first, shutdown last. */
static void
px_worker_on_msg(evutil_socket_t fd, short what, void *arg)
{
    struct px_worker *w = arg;
    uint64_t count;
    unsigned m;

    XF_UNUSED(what);
    (void)!read(fd, &count, sizeof(count));
    m = __atomic_exchange_n(&w->msgs, 0, __ATOMIC_ACQ_REL);
    if (m & PX_MSG_RELOAD) {
        uint64_t one = 1;

        /* Its snapshot was published first: the new config and the snapshot built from it
         * are taken together. */
        px_worker_reload(w);
        px_worker_refresh(w);
        __atomic_store_n(&w->reloaded, w->reload_msg.gen, __ATOMIC_RELEASE);
        (void)!write(w->ctl->efd, &one, sizeof(one));
    }
    if (m & PX_MSG_REFRESH) {
        uint64_t one = 1;

        px_worker_refresh(w);
        /* Admin replies wait for every worker to route by the new snapshot: say so. */
        (void)!write(w->ctl->efd, &one, sizeof(one));
    }
    if (m & (PX_MSG_RESUME | PX_MSG_REFRESH | PX_MSG_RELOAD))
        px_worker_resume(w);
    if (m & PX_MSG_ACCEPT)
        px_worker_accept_update(w);
    if (m & PX_MSG_WAKE) {
        /* A slot nobody here takes (the waiter left, or was woken already) goes on. */
        for (size_t i = 0; i < w->n_pools; i++)
            if (w->pools[i] != NULL && px_pool_next_fits(w->pools[i]) && !px_pool_wake(w->pools[i]))
                px_pool_pass_on(w->pools[i]);
    }
    if (m & PX_MSG_REOPEN)
        px_alog_reopen(w);
    if (m & PX_MSG_START)
        px_worker_start(w);
    if (m & PX_MSG_SHUTDOWN)
        px_worker_begin_shutdown(w);
}

void
px_worker_post(struct px_worker *w, unsigned msg)
{
    uint64_t one = 1;

    __atomic_fetch_or(&w->msgs, msg, __ATOMIC_ACQ_REL);
    (void)!write(w->efd, &one, sizeof(one));
}

struct px_worker *
px_worker_new(struct px_ctl *ctl, unsigned index, struct xf_err *err)
{
    const struct cfg *cfg = ctl->cfg;
    struct px_worker *w = calloc(1, sizeof(*w));
    static const struct timeval second = {1, 0};

    if (w == NULL) {
        xf_err_set(err, "out of memory");
        return NULL;
    }
    w->index = index;
    w->ctl = ctl;
    w->cfg = cfg_ref(cfg);
    w->router = ctl->router;
    w->efd = -1;
    w->passive = true;
    TAILQ_INIT(&w->clients);
    TAILQ_INIT(&w->tunnels);
    TAILQ_INIT(&w->tunnels_doomed);
    TAILQ_INIT(&w->held);
    TAILQ_INIT(&w->retired);
    px_alog_init(&w->alog);
    w->base = event_base_new();
    w->rbuf_cap = PX_RBUF_SIZE;
    w->rbuf = malloc(w->rbuf_cap);
    w->hdrs_cap = cfg->limits.max_headers + 1u;
    w->hdrs = calloc(w->hdrs_cap, sizeof(*w->hdrs));
    w->resp_hdrs_cap = XF_MAX(cfg->limits.max_headers, 256u);
    w->resp_hdrs = calloc(w->resp_hdrs_cap, sizeof(*w->resp_hdrs));
    w->snap = calloc(1, sizeof(*w->snap));
    w->stats = calloc(1, sizeof(*w->stats));
    w->preview = calloc(1, sizeof(*w->preview));
    w->usage = px_usage_new(0, NULL);
    w->usage_pub = w->usage;
    w->active = w->usage != NULL ? w->usage->active : NULL;
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (px_worker_targets(w) == -1) {
        xf_err_set(err, "out of memory setting up the event loop");
        goto fail;
    }
    if (w->base != NULL) {
        w->ev_accept_retry = evtimer_new(w->base, px_worker_on_accept_retry, w);
        w->ev_trim = evtimer_new(w->base, px_worker_on_trim, w);
        w->ev_tick = event_new(w->base, -1, EV_PERSIST, px_worker_on_tick, w);
        if (w->efd != -1)
            w->ev_msg = event_new(w->base, w->efd, EV_READ | EV_PERSIST, px_worker_on_msg, w);
    }
    if (w->base == NULL || w->rbuf == NULL || w->hdrs == NULL || w->resp_hdrs == NULL ||
        w->snap == NULL || w->stats == NULL || w->preview == NULL || w->usage == NULL ||
        w->ev_accept_retry == NULL || w->ev_trim == NULL || w->ev_tick == NULL ||
        w->ev_msg == NULL || event_add(w->ev_msg, NULL) == -1 ||
        event_add(w->ev_tick, &second) == -1) {
        xf_err_set(err, "out of memory setting up the event loop");
        goto fail;
    }
    w->snap->s = bal_router_acquire(w->router);
    w->snap_version = 0; /* the first request takes the current one and sizes the pools */
    px_worker_refresh(w);
    px_worker_timeouts_set(w);
    if (px_alog_open(w, cfg->access_log, err) == -1)
        goto fail;
    return w;
fail:
    px_worker_free(w);
    return NULL;
}

/*
 * Arms or disarms the listeners: they accept only once start-up is over (px_worker_start), while
 * not shutting down, below limits.max_connections, and outside a back-off after accept ran out of
 * descriptors or memory. Called wherever one of those changes.
 */
void
px_worker_accept_update(struct px_worker *w)
{
    bool on = w->accepting && !w->draining && !w->accept_backoff &&
              __atomic_load_n(&w->ctl->clients, __ATOMIC_SEQ_CST) <
                  __atomic_load_n(&w->ctl->max_clients, __ATOMIC_RELAXED);

    for (size_t k = 0; k < w->n_listeners; k++) {
        struct px_listener *l = w->listeners[k];

        if (l->fd == -1 || l->paused == !on)
            continue;
        if (on)
            event_add(&l->ev, NULL);
        else
            event_del(&l->ev);
        l->paused = !on;
    }
}

/* A wave of connections closed (the first of them a second ago): give their memory back. */
static void
px_worker_on_trim(evutil_socket_t fd, short what, void *arg)
{
    struct px_worker *w = arg;

    XF_UNUSED(fd);
    XF_UNUSED(what);
    px_buf_trim(PX_BUF_KEEP);
    malloc_trim(0);
    w->clients_peak = w->n_clients;
}

/* The back-off after EMFILE/ENFILE/ENOMEM is over: try again. */
static void
px_worker_on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
    struct px_worker *w = arg;

    XF_UNUSED(fd);
    XF_UNUSED(what);
    w->accept_backoff = false;
    px_worker_accept_update(w);
    /* Try now rather than wait for a connection to this worker's queue: an empty queue (EAGAIN)
     * ends its episode too, so that the process's episode can end (another worker may be taking
     * every new connection). */
    for (size_t k = 0; k < w->n_listeners && !w->accept_backoff; k++)
        if (w->listeners[k]->fd != -1 && !w->listeners[k]->paused)
            px_listener_on_accept(w->listeners[k]->fd, EV_READ, w->listeners[k]);
}

/*
 * accept failed for want of descriptors or memory: the connection stays in the kernel's queue and
 * the listener stays readable, so retrying at once would spin. Stop accepting for a moment (as
 * nginx and HAProxy do); the first failure of an episode is logged, the rest counted.
 */
static void
px_worker_accept_failed(struct px_worker *w, const struct px_listener *l, int e)
{
    static const struct timeval retry = {.tv_sec = 0, .tv_usec = PX_ACCEPT_RETRY_MS * 1000};

    __atomic_fetch_add(&w->ctl->accept_failures, 1, __ATOMIC_RELAXED);
    if (e == EMFILE || e == ENFILE)
        __atomic_store_n(&xf_fd_scarce, 1, __ATOMIC_SEQ_CST);
    if (w->accept_episode_ms == 0) {
        w->accept_episode_ms = xf_now_ms();
        /* Logged once for the process: every worker runs into the same lack. */
        if (__atomic_fetch_add(&w->ctl->accept_paused, 1, __ATOMIC_ACQ_REL) == 0) {
            __atomic_store_n(&w->ctl->accept_episode_ms, w->accept_episode_ms, __ATOMIC_RELAXED);
            XF_LOG(XF_LOG_WARN, "proxy",
                   "event=accept_paused listener=%s error=\"%s\" retry_ms=%u open_connections=%u "
                   "note=\"accepting again every %u ms until it works; logged once\"",
                   l->conf.addr.text, strerror(e), PX_ACCEPT_RETRY_MS,
                   __atomic_load_n(&w->ctl->clients, __ATOMIC_RELAXED), PX_ACCEPT_RETRY_MS);
        }
    }
    w->accept_backoff = true;
    px_worker_accept_update(w);
    evtimer_add(w->ev_accept_retry, &retry);
}

/* An accept worked, or found nothing to take: this worker's episode of failures, if one was
 * running, is over; the last worker out of one logs the end of the process's. */
static void
px_worker_accept_ok(struct px_worker *w)
{
    if (XF_LIKELY(w->accept_episode_ms == 0))
        return;
    if (__atomic_sub_fetch(&w->ctl->accept_paused, 1, __ATOMIC_ACQ_REL) == 0) {
        __atomic_store_n(&xf_fd_scarce, 0, __ATOMIC_SEQ_CST);
        XF_LOG(
            XF_LOG_INFO, "proxy", "event=accept_resumed paused_ms=%llu failed_accepts=%llu",
            (unsigned long long)(xf_now_ms() -
                                 __atomic_load_n(&w->ctl->accept_episode_ms, __ATOMIC_RELAXED)),
            (unsigned long long)__atomic_exchange_n(&w->ctl->accept_failures, 0, __ATOMIC_RELAXED));
    }
    w->accept_episode_ms = 0;
}

void
px_listener_on_accept(evutil_socket_t fd, short what, void *arg)
{
    struct px_listener *l = arg;
    struct px_worker *w = l->w;

    XF_UNUSED(what);
    /* Take a bounded batch per wake-up so one busy listener cannot starve the loop. */
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int cfd;

        if (px_ctl_client_take(w->ctl) == -1) {
            XF_LOG(XF_LOG_WARN, "proxy", "event=max_connections limit=%u",
                   w->cfg->limits.max_connections);
            px_worker_accept_update(w);
            return;
        }
        if (XF_LIKELY(__atomic_load_n(&xf_fd_scarce, __ATOMIC_RELAXED) == 0)) {
            cfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        } else {
            /* Out of descriptors a moment ago: not while the admin socket uses its spare. */
            xf_fd_lock();
            cfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
            xf_fd_unlock();
        }
        if (cfd == -1) {
            int e = errno;

            px_ctl_client_put(w->ctl);
            if (e == EINTR || e == ECONNABORTED)
                continue;
            if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM)
                px_worker_accept_failed(w, l, e);
            else if (e == EAGAIN || e == EWOULDBLOCK)
                px_worker_accept_ok(w); /* its queue is empty: it no longer fails */
            else
                XF_LOG(XF_LOG_WARN, "proxy", "event=accept_failed listener=%s error=\"%s\"",
                       l->conf.addr.text, strerror(e));
            return;
        }
        px_worker_accept_ok(w);
        px_client_accept(w, l, cfd, (const struct sockaddr *)&ss); /* takes the slot */
    }
}

void
px_worker_client_gone(struct px_worker *w)
{
    w->n_clients--;
    px_ctl_client_put(w->ctl);
    /* Thousands of connections gone: their memory goes back to the system a second later, with
     * whatever else of the wave has closed by then; a longer wave is trimmed again for every
     * PX_TRIM_CLOSED more. */
    if (XF_UNLIKELY(w->clients_peak - w->n_clients >= PX_TRIM_CLOSED) &&
        !evtimer_pending(w->ev_trim, NULL)) {
        static const struct timeval second = {1, 0};

        evtimer_add(w->ev_trim, &second);
    }
    if (w->draining) {
        if (w->n_clients == 0)
            event_base_loopexit(w->base, NULL);
        return;
    }
}

static void
px_worker_start(struct px_worker *w)
{
    if (w->accepting)
        return;
    w->accepting = true;
    px_worker_accept_update(w);
}

/* Binds one listening socket of `a` with SO_REUSEPORT (reuse: every worker has its own on the
 * address, and the kernel spreads new connections among them). Returns the fd, or -1 with err. */
int
px_listen_bind(const struct cfg_addr *a, bool reuse, struct xf_err *err)
{
    int one = 1, fd;

    fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        xf_err_set(err, "listen %s: %s", a->text, strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuse)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (a->sa.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&a->sa, a->sa_len) == -1 ||
        (reuse && listen(fd, 4096) == -1)) {
        xf_err_set(err, "listen %s: %s", a->text, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

void
px_listener_close(struct px_listener *l)
{
    SSL_CTX_free(l->tls); /* its connections' sessions hold their own references */
    l->tls = NULL;
    if (l->fd == -1)
        return;
    if (!l->paused)
        event_del(&l->ev);
    close(l->fd);
    l->fd = -1;
}

void
px_listener_arm(struct px_worker *w, struct px_listener *l)
{
    l->w = w;
    event_assign(&l->ev, w->base, l->fd, EV_READ | EV_PERSIST, px_listener_on_accept, l);
    l->paused = true; /* connections wait in the queue until px_worker_accept_update arms it */
}

int
px_listener_open(struct px_ctl *ctl, const struct cfg_addr *a, int *fds, struct xf_err *err)
{
    const char *env = getenv("XF_LISTEN_SHARED");
    bool shared = env != NULL && strcmp(env, "1") == 0;
    int fd;

    for (unsigned i = 0; i < ctl->n_workers; i++)
        fds[i] = -1;
    if (shared) {
        /* One socket in every worker's loop (a measurement switch: bench/bench_spread.sh). */
        fd = px_listen_bind(a, false, err);
        if (fd == -1)
            return -1;
        if (listen(fd, 4096) == -1) {
            xf_err_set(err, "listen %s: %s", a->text, strerror(errno));
            close(fd);
            return -1;
        }
        fds[0] = fd;
        for (unsigned i = 1; i < ctl->n_workers; i++) {
            fds[i] = fcntl(fd, F_DUPFD_CLOEXEC, 0);
            if (fds[i] == -1) {
                xf_err_set(err, "listen %s: %s", a->text, strerror(errno));
                goto fail;
            }
        }
        return 0;
    }
    /*
     * SO_REUSEPORT would let this bind share a port another program (or another crossfade)
     * listens on with it set too. A plain bind first fails on any taken port.
     */
    fd = px_listen_bind(a, false, err);
    if (fd == -1)
        return -1;
    close(fd);
    for (unsigned i = 0; i < ctl->n_workers; i++) {
        fds[i] = px_listen_bind(a, true, err);
        if (fds[i] == -1)
            goto fail;
    }
    return 0;
fail:
    for (unsigned i = 0; i < ctl->n_workers; i++)
        if (fds[i] != -1)
            close(fds[i]);
    return -1;
}

/* Whether the listening socket fd is bound to a's address (one handed over by a takeover). */
static bool
px_fd_is_at(int fd, const struct cfg_addr *a)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == -1 || ss.ss_family != a->sa.ss_family)
        return false;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)&ss;
        const struct sockaddr_in *y = (const struct sockaddr_in *)&a->sa;

        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)&ss;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)&a->sa;

        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}

/* The sockets of listener k for every worker: the ones handed over at its address first (taken
 * from `inherited`: set to -1), new SO_REUSEPORT ones for workers left over. Sockets handed over
 * beyond one per worker are returned in extra (n_extra of them): they must still be served, their
 * queues hold connections. 0, or -1 with err. */
static int
px_ctl_listen_inherited(struct px_ctl *ctl, const struct cfg_addr *a, int *inherited,
                        size_t n_inherited, int *fds, int *extra, size_t *n_extra,
                        struct xf_err *err)
{
    unsigned got = 0;

    *n_extra = 0;
    for (size_t j = 0; j < n_inherited; j++) {
        if (inherited[j] == -1 || !px_fd_is_at(inherited[j], a))
            continue;
        if (got < ctl->n_workers)
            fds[got++] = inherited[j];
        else
            extra[(*n_extra)++] = inherited[j];
        inherited[j] = -1;
    }
    if (got == 0)
        return px_listener_open(ctl, a, fds, err);
    for (unsigned i = got; i < ctl->n_workers; i++) {
        /* More workers than the old process had: a socket of their own joins the group (no
         * plain bind first: the port is this process's already). */
        fds[i] = px_listen_bind(a, true, err);
        if (fds[i] == -1) {
            for (unsigned k = 0; k < i; k++)
                close(fds[k]);
            for (size_t k = 0; k < *n_extra; k++)
                close(extra[k]);
            return -1;
        }
    }
    return 0;
}

/* Gives worker w the socket fd for config listener lc, at w->listeners[slot]. */
static int
px_ctl_give(struct px_worker *w, size_t slot, const struct cfg_listener *lc, int fd, SSL_CTX *tls)
{
    struct px_listener *l = calloc(1, sizeof(*l));

    if (l == NULL)
        return -1;
    if (tls != NULL && SSL_CTX_up_ref(tls) == 1)
        l->tls = tls;
    l->conf = *lc;
    l->target = px_worker_target_of(w, lc->node_port);
    l->fd = fd;
    px_listener_arm(w, l);
    w->listeners[slot] = l;
    return 0;
}

int
px_ctl_listen(struct px_ctl *ctl, int *inherited, size_t n_inherited, struct xf_err *err)
{
    const struct cfg *cfg = ctl->cfg;
    int *fds = calloc(ctl->n_workers, sizeof(*fds));
    int *extra = calloc(n_inherited + 1, sizeof(*extra));
    size_t n_extra;

    if (fds == NULL || extra == NULL)
        goto oom;
    /* The certificates first: a wrong file stops the start before any socket is taken. */
    if (px_tls_set_new(cfg, &ctl->tls, err) == -1 ||
        px_tls_nodes_new(cfg, ctl->node_tls, err) == -1)
        goto fail;
    px_tls_set_rotation(cfg->tls_ticket_rotation_ms);
    if (ctl->ev_tls_tick == NULL) {
        static const struct timeval minute = {.tv_sec = 60, .tv_usec = 0};

        ctl->ev_tls_tick = event_new(ctl->base, -1, EV_PERSIST, px_ctl_tls_tick, ctl);
        if (ctl->ev_tls_tick != NULL)
            event_add(ctl->ev_tls_tick, &minute);
    }
    for (unsigned i = 0; i < ctl->n_workers; i++) {
        struct px_worker *w = ctl->workers[i];

        px_tls_nodes_copy(w->node_tls, ctl->node_tls);

        /* Room for a socket of every listener, and for any handed over beyond one per worker. */
        w->listeners = calloc(cfg->n_listeners + n_inherited, sizeof(*w->listeners));
        if (w->listeners == NULL)
            goto oom;
        w->n_listeners = cfg->n_listeners;
    }
    for (size_t k = 0; k < cfg->n_listeners; k++) {
        const struct cfg_listener *lc = &cfg->listeners[k];

        if (px_ctl_listen_inherited(ctl, &lc->addr, inherited, n_inherited, fds, extra, &n_extra,
                                    err) == -1)
            goto fail;
        for (unsigned i = 0; i < ctl->n_workers; i++)
            if (px_ctl_give(ctl->workers[i], k, lc, fds[i], ctl->tls[k]) == -1) {
                for (unsigned j = i; j < ctl->n_workers; j++)
                    close(fds[j]);
                for (size_t j = 0; j < n_extra; j++)
                    close(extra[j]);
                goto oom;
            }
        for (size_t j = 0; j < n_extra; j++) {
            struct px_worker *w = ctl->workers[j % ctl->n_workers];

            if (px_ctl_give(w, w->n_listeners, lc, extra[j], ctl->tls[k]) == -1) {
                for (size_t m = j; m < n_extra; m++)
                    close(extra[m]);
                goto oom;
            }
            w->n_listeners++;
        }
        XF_LOG(XF_LOG_INFO, "proxy", "event=listening address=%s role=%s workers=%u%s",
               lc->addr.text, lc->role == CFG_ROLE_ADMIN_API ? "admin_api" : "proxy",
               ctl->n_workers, n_inherited > 0 ? " from=takeover" : "");
    }
    for (size_t j = 0; j < n_inherited; j++) {
        if (inherited[j] == -1)
            continue;
        /* Handed over for an address the new configuration does not listen on. */
        XF_LOG(XF_LOG_WARN, "proxy",
               "event=listener_closed reason=not_in_configuration note=\"a socket handed over by "
               "the old process listens on an address this configuration has no listener for\"");
        close(inherited[j]);
        inherited[j] = -1;
    }
    free(fds);
    free(extra);
    return 0;
oom:
    xf_err_set(err, "out of memory");
fail:
    free(fds);
    free(extra);
    return -1;
}

static void
px_worker_on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct px_worker *w = arg;

    XF_UNUSED(fd);
    XF_UNUSED(what);
    XF_LOG(XF_LOG_WARN, "proxy", "event=shutdown_deadline worker=%u open_connections=%u", w->index,
           w->n_clients);
    event_base_loopexit(w->base, NULL);
}

/*
 * Stops accepting, closes idle connections (client and pooled), lets requests in flight finish
 * with Connection: close, and exits when the last one is done or at the deadline.
 */
void
px_worker_begin_shutdown(struct px_worker *w)
{
    struct px_client *c, *next;
    struct timeval dl = {.tv_sec = (time_t)(w->cfg->timeouts.shutdown_ms / 1000),
                         .tv_usec = (suseconds_t)(w->cfg->timeouts.shutdown_ms % 1000) * 1000};

    /* The control thread logs the shutdown once for the process. */
    if (w->draining) {
        event_base_loopexit(w->base, NULL);
        return;
    }
    w->draining = true;
    for (size_t k = 0; k < w->n_listeners; k++)
        px_listener_close(w->listeners[k]);
    for (size_t i = 0; i < w->n_pools; i++)
        if (w->pools[i] != NULL)
            px_pool_close_idle(w->pools[i]);
    for (c = TAILQ_FIRST(&w->clients); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        if (c->txn != NULL || c->tunnel != NULL || px_buf_len(&c->in) > 0 || c->pre != PX_PRE_NONE)
            continue; /* in flight: it ends with Connection: close; a tunnel, by px_tunnel_drain */
        if (px_buf_len(&c->out) == 0) {
            /* Idle: its next request is served with Connection: close, or it closes when
             * PX_DRAIN_IDLE_MS pass without one (px_client_read_on). */
            if (!c->read_off)
                px_client_read_on(c);
        } else {
            c->closing = true; /* a response is still being written: close once it is out */
            px_client_read_off(c);
        }
    }
    px_tunnel_drain(w);
    if (w->n_clients == 0) {
        event_base_loopexit(w->base, NULL);
        return;
    }
    w->ev_deadline = evtimer_new(w->base, px_worker_on_deadline, w);
    if (w->ev_deadline != NULL)
        evtimer_add(w->ev_deadline, &dl);
}

/* The worker's thread: its loop runs until its shutdown is over, then the control thread is
 * told (done, and a poke of its eventfd). */
static void *
px_worker_main(void *arg)
{
    struct px_worker *w = arg;
    uint64_t one = 1;

    event_base_dispatch(w->base);
    /* Ended at the shutdown deadline with requests waiting: other workers must not count on
     * this one to take a slot. */
    for (size_t i = 0; i < w->n_pools; i++)
        if (w->pools[i] != NULL && w->pools[i]->share != NULL)
            __atomic_fetch_and(&w->pools[i]->share->waiters, ~(1ull << w->index), __ATOMIC_SEQ_CST);
    px_alog_flush(&w->alog);
    px_buf_cache_drain(); /* what the worker frees later is freed by the thread that joins it */
    __atomic_store_n(&w->applied, UINT64_MAX, __ATOMIC_RELEASE);  /* it routes nothing more */
    __atomic_store_n(&w->reloaded, UINT64_MAX, __ATOMIC_RELEASE); /* nor waits for a reload */
    __atomic_store_n(&w->done, true, __ATOMIC_RELEASE);
    (void)!write(w->ctl->efd, &one, sizeof(one));
    return NULL;
}

int
px_worker_spawn(struct px_worker *w, struct xf_err *err)
{
    sigset_t all, old;
    char name[16];
    int rc;

    /* Signals go to the control thread: the workers block them all. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&w->thread, NULL, px_worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        xf_err_set(err, "cannot start worker thread %u: %s", w->index, strerror(rc));
        return -1;
    }
    /* For top -H, perf and /proc/PID/task: which thread is which. */
    snprintf(name, sizeof(name), "xf-worker-%u", w->index);
    pthread_setname_np(w->thread, name);
    w->running = true;
    return 0;
}

void
px_worker_join(struct px_worker *w)
{
    if (w == NULL || !w->running)
        return;
    pthread_join(w->thread, NULL);
    w->running = false;
}

void
px_worker_free(struct px_worker *w)
{
    if (w == NULL)
        return;
    while (!TAILQ_EMPTY(&w->clients))
        px_client_free(TAILQ_FIRST(&w->clients));
    for (size_t i = 0; i < w->n_pools; i++)
        px_pool_free(w->pools[i]);
    free(w->target_ports);
    while (!TAILQ_EMPTY(&w->retired)) {
        struct px_snap *ps = TAILQ_FIRST(&w->retired);
        TAILQ_REMOVE(&w->retired, ps, link);
        bal_snapshot_unref(ps->s);
        free(ps);
    }
    if (w->snap != NULL) {
        bal_snapshot_unref(w->snap->s);
        free(w->snap);
    }
    for (size_t k = 0; w->listeners != NULL && k < w->n_listeners; k++) {
        if (w->listeners[k] != NULL)
            px_listener_close(w->listeners[k]);
        free(w->listeners[k]);
    }
    while (w->gone_listeners != NULL) {
        struct px_listener *l = w->gone_listeners;

        w->gone_listeners = l->next_gone;
        free(l);
    }
    px_reload_msg_fini(&w->reload_msg);
    px_tls_nodes_free(w->node_tls);
    cfg_free(w->cfg);
    if (w->ev_accept_retry != NULL)
        event_free(w->ev_accept_retry);
    if (w->ev_trim != NULL)
        event_free(w->ev_trim);
    if (w->ev_tick != NULL)
        event_free(w->ev_tick);
    if (w->ev_msg != NULL)
        event_free(w->ev_msg);
    if (w->efd != -1)
        close(w->efd);
    px_alog_close(&w->alog);
    if (w->ev_deadline != NULL)
        event_free(w->ev_deadline);
    if (w->ev_tunnel_close != NULL)
        event_free(w->ev_tunnel_close);
    free(w->listeners);
    free(w->pools);
    while (w->n_txn_cache > 0)
        free(w->txn_cache[--w->n_txn_cache]);
    px_usage_free(w->usage);
    free(w->stats);
    free(w->preview);
    free(w->hdrs);
    free(w->resp_hdrs);
    free(w->rbuf);
    if (w->base != NULL)
        event_base_free(w->base);
    free(w);
}

bool
px_ratelog_allow(struct px_ratelog *r, const char *module, const char *event, unsigned worker)
{
    uint64_t now = xf_now_ms();

    if (now >= r->window_ms + 10000u) {
        if (r->dropped > 0)
            XF_LOG(XF_LOG_WARN, module, "event=%s worker=%u suppressed=%u", event, worker,
                   r->dropped);
        r->window_ms = now;
        r->n = 0;
        r->dropped = 0;
    }
    if (r->n >= PX_LOG_BURST) {
        r->dropped++;
        return false;
    }
    r->n++;
    return true;
}
