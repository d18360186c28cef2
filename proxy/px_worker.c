/* proxy/px_worker.c -- one event loop: listeners, accepting, limits, signals and shutdown. */
#include "proxy/px_conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PX_RBUF_SIZE (64u * 1024u)

static const struct timeval *
px_worker_timeout(struct px_worker *w, unsigned ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    return event_base_init_common_timeout(w->base, &tv);
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
            w->pools[i]->closing = true;
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++)
        for (size_t i = 0; i < s->clusters[c].n_nodes; i++) {
            const struct bal_node *n = &s->clusters[c].nodes[i];

            if (n->id < w->n_pools && w->pools[n->id] != NULL) {
                struct px_pool *pool = w->pools[n->id];

                pool->max_conns = n->max_conns;
                pool->max_pending = n->max_pending;
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
            if (pool->n_waiting > 0 && !px_pool_full(pool))
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
        if (TAILQ_EMPTY(&pool->idle))
            continue;
        XF_LOG(XF_LOG_INFO, "proxy", "event=pool_closed node=%s idle=%u busy=%u", pool->addr.text,
               pool->n_idle, pool->n_busy);
        while (!TAILQ_EMPTY(&pool->idle))
            px_upstream_release_idle(TAILQ_FIRST(&pool->idle));
    }
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
    if (ps->s->max_id > w->n_pools) {
        struct px_pool **pools = realloc(w->pools, ps->s->max_id * sizeof(*pools));
        uint32_t *active = realloc(w->active, ps->s->max_id * sizeof(*active));
        if (pools != NULL)
            w->pools = pools;
        if (active != NULL)
            w->active = active;
        if (pools != NULL && active != NULL) {
            for (size_t i = w->n_pools; i < ps->s->max_id; i++) {
                w->pools[i] = NULL;
                w->active[i] = 0;
            }
            w->n_pools = ps->s->max_id;
        }
    }
    w->bal.active = w->active;
    px_worker_pools_follow(w, ps->s);
    return ps;
}

void
px_worker_refresh(void *arg)
{
    px_worker_snapshot(arg);
}

int
px_worker_node_info(void *arg, uint32_t id, unsigned *active, unsigned *idle)
{
    struct px_worker *w = arg;

    px_worker_snapshot(w);
    if (id >= w->n_pools)
        return -1;
    *active = w->active[id];
    *idle = w->pools[id] != NULL ? w->pools[id]->n_idle : 0;
    return 0;
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

struct px_pool *
px_worker_pool(struct px_worker *w, const struct bal_node *node)
{
    struct px_pool *pool;

    if (node->id >= w->n_pools)
        return NULL;
    pool = w->pools[node->id];
    if (pool == NULL) {
        pool = calloc(1, sizeof(*pool));
        if (pool == NULL)
            return NULL;
        pool->id = node->id;
        pool->addr = node->addr;
        pool->max_conns = node->max_conns;
        pool->max_pending = node->max_pending;
        TAILQ_INIT(&pool->idle);
        TAILQ_INIT(&pool->waiting);
        w->pools[node->id] = pool;
    }
    return pool;
}

struct px_worker *
px_worker_new(const struct cfg *cfg, struct bal_router *router, struct xf_err *err)
{
    struct px_worker *w = calloc(1, sizeof(*w));
    const struct cfg_timeouts *to = &cfg->timeouts;

    if (w == NULL) {
        xf_err_set(err, "out of memory");
        return NULL;
    }
    w->cfg = cfg;
    w->router = router;
    TAILQ_INIT(&w->clients);
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
    if (w->base == NULL || w->rbuf == NULL || w->hdrs == NULL || w->resp_hdrs == NULL ||
        w->snap == NULL || w->stats == NULL) {
        xf_err_set(err, "out of memory setting up the event loop");
        goto fail;
    }
    w->snap->s = bal_router_acquire(router);
    w->snap_version = 0; /* the first request takes the current one and sizes the pools */
    px_worker_snapshot(w);
    w->tv_client_idle = px_worker_timeout(w, to->client_idle_ms);
    w->tv_client_header = px_worker_timeout(w, to->client_header_ms);
    w->tv_upstream_response = px_worker_timeout(w, to->upstream_response_ms);
    w->tv_upstream_idle = px_worker_timeout(w, to->upstream_idle_ms);
    w->tv_connect = px_worker_timeout(w, to->connect_ms);
    w->tv_queue = px_worker_timeout(w, to->queue_ms);
    if (px_alog_open(w, cfg->access_log, err) == -1)
        goto fail;
    return w;
fail:
    px_worker_free(w);
    return NULL;
}

static void
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

        if (w->n_clients >= w->cfg->limits.max_connections) {
            for (size_t k = 0; k < w->n_listeners; k++) {
                if (!w->listeners[k].paused) {
                    event_del(&w->listeners[k].ev);
                    w->listeners[k].paused = true;
                }
            }
            XF_LOG(XF_LOG_WARN, "proxy", "event=max_connections limit=%u",
                   w->cfg->limits.max_connections);
            return;
        }
        cfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                XF_LOG(XF_LOG_WARN, "proxy", "event=accept_failed listener=%s error=\"%s\"",
                       l->cfg->addr.text, strerror(errno));
            return;
        }
        px_client_accept(w, l, cfd, (const struct sockaddr *)&ss);
    }
}

void
px_worker_client_gone(struct px_worker *w)
{
    w->n_clients--;
    if (w->draining) {
        if (w->n_clients == 0)
            event_base_loopexit(w->base, NULL);
        return;
    }
    if (w->n_clients < w->cfg->limits.max_connections) {
        for (size_t k = 0; k < w->n_listeners; k++) {
            if (w->listeners[k].paused && w->listeners[k].fd != -1) {
                event_add(&w->listeners[k].ev, NULL);
                w->listeners[k].paused = false;
            }
        }
    }
}

int
px_worker_listen(struct px_worker *w, struct xf_err *err)
{
    const struct cfg *cfg = w->cfg;

    w->listeners = calloc(cfg->n_listeners, sizeof(*w->listeners));
    if (w->listeners == NULL) {
        xf_err_set(err, "out of memory");
        return -1;
    }
    w->n_listeners = cfg->n_listeners;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        struct px_listener *l = &w->listeners[i];
        const struct cfg_addr *a = &cfg->listeners[i].addr;
        int one = 1;

        l->w = w;
        l->cfg = &cfg->listeners[i];
        l->fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (l->fd == -1) {
            xf_err_set(err, "listen %s: %s", a->text, strerror(errno));
            return -1;
        }
        setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (a->sa.ss_family == AF_INET6)
            setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (bind(l->fd, (const struct sockaddr *)&a->sa, a->sa_len) == -1 ||
            listen(l->fd, 4096) == -1) {
            xf_err_set(err, "listen %s: %s", a->text, strerror(errno));
            return -1;
        }
        event_assign(&l->ev, w->base, l->fd, EV_READ | EV_PERSIST, px_listener_on_accept, l);
        event_add(&l->ev, NULL);
        XF_LOG(XF_LOG_INFO, "proxy", "event=listening address=%s role=%s", a->text,
               l->cfg->role == CFG_ROLE_ADMIN_API ? "admin_api" : "proxy");
    }
    return 0;
}

static void
px_worker_on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct px_worker *w = arg;

    XF_UNUSED(fd);
    XF_UNUSED(what);
    XF_LOG(XF_LOG_WARN, "proxy", "event=shutdown_deadline open_connections=%u", w->n_clients);
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

    if (w->draining) {
        XF_LOG(XF_LOG_WARN, "proxy", "event=shutdown_now open_connections=%u", w->n_clients);
        event_base_loopexit(w->base, NULL);
        return;
    }
    XF_LOG(XF_LOG_INFO, "proxy", "event=shutdown in_flight=%u deadline_ms=%u", w->n_clients,
           w->cfg->timeouts.shutdown_ms);
    w->draining = true;
    for (size_t k = 0; k < w->n_listeners; k++) {
        if (w->listeners[k].fd != -1) {
            event_del(&w->listeners[k].ev);
            close(w->listeners[k].fd);
            w->listeners[k].fd = -1;
        }
    }
    for (size_t i = 0; i < w->n_pools; i++)
        while (w->pools[i] != NULL && !TAILQ_EMPTY(&w->pools[i]->idle))
            px_upstream_release_idle(TAILQ_FIRST(&w->pools[i]->idle));
    for (c = TAILQ_FIRST(&w->clients); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        if (c->txn != NULL || px_buf_len(&c->in) > 0)
            continue; /* in flight: it ends with Connection: close */
        if (px_buf_len(&c->out) == 0) {
            px_client_free(c);
        } else {
            c->closing = true; /* a response is still being written: close once it is out */
            px_client_read_off(c);
        }
    }
    if (w->n_clients == 0) {
        event_base_loopexit(w->base, NULL);
        return;
    }
    w->ev_deadline = evtimer_new(w->base, px_worker_on_deadline, w);
    if (w->ev_deadline != NULL)
        evtimer_add(w->ev_deadline, &dl);
}

static void
px_worker_on_signal(evutil_socket_t sig, short what, void *arg)
{
    XF_UNUSED(what);
    XF_LOG(XF_LOG_INFO, "proxy", "event=signal signal=%s", sig == SIGTERM ? "TERM" : "INT");
    px_worker_begin_shutdown(arg);
}

int
px_worker_run(struct px_worker *w)
{
    signal(SIGPIPE, SIG_IGN);
    w->ev_sigterm = evsignal_new(w->base, SIGTERM, px_worker_on_signal, w);
    w->ev_sigint = evsignal_new(w->base, SIGINT, px_worker_on_signal, w);
    if (w->ev_sigterm == NULL || w->ev_sigint == NULL || evsignal_add(w->ev_sigterm, NULL) == -1 ||
        evsignal_add(w->ev_sigint, NULL) == -1) {
        XF_LOG(XF_LOG_ERR, "proxy", "event=signal_setup_failed");
        return 1;
    }
    event_base_dispatch(w->base);
    XF_LOG(XF_LOG_INFO, "proxy", "event=stopped");
    return w->exit_code;
}

void
px_worker_free(struct px_worker *w)
{
    if (w == NULL)
        return;
    while (!TAILQ_EMPTY(&w->clients))
        px_client_free(TAILQ_FIRST(&w->clients));
    for (size_t i = 0; i < w->n_pools; i++) {
        while (w->pools[i] != NULL && !TAILQ_EMPTY(&w->pools[i]->idle))
            px_upstream_release_idle(TAILQ_FIRST(&w->pools[i]->idle));
        free(w->pools[i]);
    }
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
    for (size_t k = 0; k < w->n_listeners; k++) {
        if (w->listeners[k].fd != -1) {
            event_del(&w->listeners[k].ev);
            close(w->listeners[k].fd);
        }
    }
    px_alog_close(&w->alog);
    if (w->ev_sigterm != NULL)
        event_free(w->ev_sigterm);
    if (w->ev_sigint != NULL)
        event_free(w->ev_sigint);
    if (w->ev_deadline != NULL)
        event_free(w->ev_deadline);
    free(w->listeners);
    free(w->pools);
    free(w->active);
    free(w->stats);
    free(w->hdrs);
    free(w->resp_hdrs);
    free(w->rbuf);
    if (w->base != NULL)
        event_base_free(w->base);
    free(w);
}
