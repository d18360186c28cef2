/* proxy/px_worker.c -- one event loop: listeners, accepting, limits, signals and shutdown. */
#include "proxy/px_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PX_RBUF_SIZE (64u * 1024u)
/* Once this many client connections have closed since the most open at once, their memory is
 * given back to the system (a flood of slow clients, say: glibc keeps freed heap resident). */
#define PX_TRIM_CLOSED 2048u
/* How long accepting pauses after accept ran out of descriptors or memory. */
#define PX_ACCEPT_RETRY_MS 100u

static void px_worker_on_accept_retry(evutil_socket_t fd, short what, void *arg);
static void px_worker_on_trim(evutil_socket_t fd, short what, void *arg);

static const struct timeval *
px_worker_timeout(struct px_worker *w, unsigned ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    return event_base_init_common_timeout(w->base, &tv);
}

static void px_pool_set_addr(const struct px_worker *w, struct px_pool *pool,
                             const struct bal_node *node);
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

bool
px_worker_id_busy(void *arg, uint32_t id)
{
    struct px_worker *w = arg;

    px_worker_snapshot(w);
    if (id >= w->n_pools)
        return false;
    if (w->pools[id] != NULL && !px_worker_pool_reap(w, id))
        return true;
    return w->active[id] > 0;
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

struct px_pool *
px_worker_pool(struct px_worker *w, const struct bal_node *node)
{
    struct px_pool *pool;

    if (node->id >= w->n_pools)
        return NULL;
    pool = w->pools[node->id];
    if (pool == NULL) {
        pool = calloc(1, sizeof(*pool) + w->n_targets * sizeof(pool->t[0]));
        if (pool == NULL)
            return NULL;
        pool->fault_ev = evtimer_new(w->base, px_pool_on_fault_quiet, pool);
        if (pool->fault_ev == NULL) {
            free(pool);
            return NULL;
        }
        pool->w = w;
        pool->id = node->id;
        pool->max_conns = node->max_conns;
        pool->max_pending = node->max_pending;
        TAILQ_INIT(&pool->waiting);
        pool->n_targets = w->n_targets;
        for (size_t k = 0; k < w->n_targets; k++)
            TAILQ_INIT(&pool->t[k].idle);
        px_pool_set_addr(w, pool, node);
        w->pools[node->id] = pool;
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
static unsigned
px_worker_target_of(const struct px_worker *w, uint16_t port)
{
    for (size_t k = 0; k < w->n_targets; k++)
        if (w->target_ports[k] == port)
            return (unsigned)k;
    return 0;
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
    if (px_worker_targets(w) == -1) {
        xf_err_set(err, "out of memory setting up the event loop");
        goto fail;
    }
    w->ev_accept_retry =
        w->base != NULL ? evtimer_new(w->base, px_worker_on_accept_retry, w) : NULL;
    w->ev_trim = w->base != NULL ? evtimer_new(w->base, px_worker_on_trim, w) : NULL;
    if (w->base == NULL || w->rbuf == NULL || w->hdrs == NULL || w->resp_hdrs == NULL ||
        w->snap == NULL || w->stats == NULL || w->ev_accept_retry == NULL || w->ev_trim == NULL) {
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

/*
 * Arms or disarms the listeners: they accept only once start-up is over (px_worker_start), while
 * not shutting down, below limits.max_connections, and outside a back-off after accept ran out of
 * descriptors or memory. Called wherever one of those changes.
 */
static void
px_worker_accept_update(struct px_worker *w)
{
    bool on = w->accepting && !w->draining && !w->accept_backoff &&
              w->n_clients < w->cfg->limits.max_connections;

    for (size_t k = 0; k < w->n_listeners; k++) {
        struct px_listener *l = &w->listeners[k];

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

    w->accept_failures++;
    if (w->accept_episode_ms == 0) {
        w->accept_episode_ms = xf_now_ms();
        XF_LOG(XF_LOG_WARN, "proxy",
               "event=accept_paused listener=%s error=\"%s\" retry_ms=%u open_connections=%u "
               "note=\"accepting again every %u ms until it works; logged once\"",
               l->cfg->addr.text, strerror(e), PX_ACCEPT_RETRY_MS, w->n_clients,
               PX_ACCEPT_RETRY_MS);
    }
    w->accept_backoff = true;
    px_worker_accept_update(w);
    evtimer_add(w->ev_accept_retry, &retry);
}

/* An accept worked: an episode of failures, if one was running, is over. */
static void
px_worker_accept_ok(struct px_worker *w)
{
    if (XF_LIKELY(w->accept_episode_ms == 0))
        return;
    XF_LOG(XF_LOG_INFO, "proxy", "event=accept_resumed paused_ms=%llu failed_accepts=%llu",
           (unsigned long long)(xf_now_ms() - w->accept_episode_ms),
           (unsigned long long)w->accept_failures);
    w->accept_episode_ms = 0;
    w->accept_failures = 0;
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
            XF_LOG(XF_LOG_WARN, "proxy", "event=max_connections limit=%u",
                   w->cfg->limits.max_connections);
            px_worker_accept_update(w);
            return;
        }
        cfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd == -1) {
            int e = errno;

            if (e == EINTR || e == ECONNABORTED)
                continue;
            if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM)
                px_worker_accept_failed(w, l, e);
            else if (e != EAGAIN && e != EWOULDBLOCK)
                XF_LOG(XF_LOG_WARN, "proxy", "event=accept_failed listener=%s error=\"%s\"",
                       l->cfg->addr.text, strerror(e));
            return;
        }
        px_worker_accept_ok(w);
        px_client_accept(w, l, cfd, (const struct sockaddr *)&ss);
    }
}

void
px_worker_client_gone(struct px_worker *w)
{
    w->n_clients--;
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
    if (w->n_clients + 1 == w->cfg->limits.max_connections)
        px_worker_accept_update(w);
}

const char *
px_worker_status(void *arg)
{
    const struct px_worker *w = arg;

    if (w->draining)
        return "stopping";
    return w->accepting ? "serving" : "starting";
}

void
px_worker_start(struct px_worker *w)
{
    if (w->accepting)
        return;
    w->accepting = true;
    px_worker_accept_update(w);
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
    /* Only what was opened is closed if a later listener fails: none is open yet. */
    for (size_t i = 0; i < cfg->n_listeners; i++)
        w->listeners[i].fd = -1;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        struct px_listener *l = &w->listeners[i];
        const struct cfg_addr *a = &cfg->listeners[i].addr;
        int one = 1, fd;

        l->w = w;
        l->cfg = &cfg->listeners[i];
        l->target = px_worker_target_of(w, l->cfg->node_port);
        fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd == -1) {
            xf_err_set(err, "listen %s: %s", a->text, strerror(errno));
            return -1;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (a->sa.ss_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (bind(fd, (const struct sockaddr *)&a->sa, a->sa_len) == -1 || listen(fd, 4096) == -1) {
            xf_err_set(err, "listen %s: %s", a->text, strerror(errno));
            close(fd);
            return -1;
        }
        l->fd = fd;
        event_assign(&l->ev, w->base, l->fd, EV_READ | EV_PERSIST, px_listener_on_accept, l);
        l->paused = true; /* connections wait in the queue until px_worker_start */
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
            if (!w->listeners[k].paused)
                event_del(&w->listeners[k].ev);
            close(w->listeners[k].fd);
            w->listeners[k].fd = -1;
        }
    }
    for (size_t i = 0; i < w->n_pools; i++)
        if (w->pools[i] != NULL)
            px_pool_close_idle(w->pools[i]);
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

/* The signals the event loop handles, and what each does. */
static const int px_worker_signals[PX_SIGNALS] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};

static void
px_worker_on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct px_worker *w = arg;

    XF_UNUSED(what);
    switch (sig) {
    case SIGTERM:
    case SIGINT:
        XF_LOG(XF_LOG_INFO, "proxy", "event=signal signal=%s", sig == SIGTERM ? "TERM" : "INT");
        px_worker_begin_shutdown(w);
        break;
    case SIGHUP:
        /* Reload comes with a later issue; until then HUP must not stop the proxy. */
        XF_LOG(XF_LOG_WARN, "proxy",
               "event=signal signal=HUP action=none reason=\"reload is not supported yet: restart "
               "crossfade to apply a changed configuration\"");
        break;
    case SIGUSR1:
        XF_LOG(XF_LOG_INFO, "proxy", "event=signal signal=USR1 action=reopen_access_log");
        px_alog_reopen(w);
        break;
    default:
        break;
    }
}

int
px_worker_run(struct px_worker *w)
{
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < PX_SIGNALS; i++) {
        w->ev_signals[i] = evsignal_new(w->base, px_worker_signals[i], px_worker_on_signal, w);
        if (w->ev_signals[i] == NULL || evsignal_add(w->ev_signals[i], NULL) == -1) {
            XF_LOG(XF_LOG_ERR, "proxy", "event=signal_setup_failed signal=%d",
                   px_worker_signals[i]);
            return 1;
        }
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
    for (size_t k = 0; k < w->n_listeners; k++) {
        if (w->listeners[k].fd != -1) {
            if (!w->listeners[k].paused)
                event_del(&w->listeners[k].ev);
            close(w->listeners[k].fd);
        }
    }
    if (w->ev_accept_retry != NULL)
        event_free(w->ev_accept_retry);
    if (w->ev_trim != NULL)
        event_free(w->ev_trim);
    px_alog_close(&w->alog);
    for (size_t i = 0; i < PX_SIGNALS; i++)
        if (w->ev_signals[i] != NULL)
            event_free(w->ev_signals[i]);
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
