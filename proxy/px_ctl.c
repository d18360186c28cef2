/* proxy/px_ctl.c -- the control thread: starts the workers, carries messages both ways, sums
 * what they count, handles signals and waits for every worker at shutdown. */
#include "proxy/px_conn.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <unistd.h>

#include "admin/adm.h"

/* --- observations: a worker writes, the control thread reads --- */

void
px_worker_observe(struct px_worker *w, uint32_t id, bool ok)
{
    struct px_pool *pool = id < w->n_pools ? w->pools[id] : NULL;
    unsigned tail, head;
    uint64_t one = 1;

    if (!w->passive)
        return;
    if (pool != NULL) {
        /* A run of successes is told now and then: a success clears a run of failures only
         * when it comes after one, and that one is always told. */
        if (ok && !pool->obs_failed) {
            struct timeval tv;
            uint64_t now;

            event_base_gettimeofday_cached(w->base, &tv);
            now = (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
            if (now - pool->obs_ok_ms < PX_OBS_OK_MS)
                return;
            pool->obs_ok_ms = now;
        }
        pool->obs_failed = !ok;
    }
    tail = __atomic_load_n(&w->obs_tail, __ATOMIC_RELAXED);
    head = __atomic_load_n(&w->obs_head, __ATOMIC_ACQUIRE);
    if (tail - head >= PX_OBS_RING) {
        XF_STAT_INC(w->obs_dropped);
        return;
    }
    w->obs[tail & (PX_OBS_RING - 1u)] = id << 1 | (ok ? 1u : 0u);
    /* Store (tail) then read (poked), against the reader's store (poked) then load (tail): only
     * sequentially consistent operations on both sides keep each from missing the other's. */
    __atomic_store_n(&w->obs_tail, tail + 1u, __ATOMIC_SEQ_CST);
    if (!ok)
        w->obs_fail_mark = tail + 1u;
    if (!__atomic_exchange_n(&w->obs_poked, true, __ATOMIC_SEQ_CST))
        (void)!write(w->ctl->efd, &one, sizeof(one));
}

/* What worker w observed since the last look goes to the health checks. */
static void
px_ctl_drain(struct px_ctl *ctl, struct px_worker *w)
{
    unsigned head, tail;
    bool failure = false;

    __atomic_store_n(&w->obs_poked, false, __ATOMIC_SEQ_CST);
    head = __atomic_load_n(&w->obs_head, __ATOMIC_RELAXED);
    tail = __atomic_load_n(&w->obs_tail, __ATOMIC_SEQ_CST);
    while (head != tail) {
        uint32_t e = w->obs[head & (PX_OBS_RING - 1u)];

        head++;
        failure |= (e & 1u) == 0;
        if (ctl->health != NULL)
            px_health_observe(ctl->health, e >> 1, (e & 1u) != 0);
    }
    /* After the verdicts were published: a request the worker held sees them. */
    __atomic_store_n(&w->obs_head, head, __ATOMIC_RELEASE);
    if (failure)
        px_worker_post(w, PX_MSG_RESUME);
}

/* A worker poked: observations to pass on, a snapshot taken (replies waiting for it may go), or
 * its loop ended (the last one ends the control loop). */
static void
px_ctl_on_poke(evutil_socket_t fd, short what, void *arg)
{
    struct px_ctl *ctl = arg;
    uint64_t count;
    unsigned done = 0;

    XF_UNUSED(what);
    (void)!read(fd, &count, sizeof(count));
    for (unsigned i = 0; i < ctl->n_workers; i++) {
        px_ctl_drain(ctl, ctl->workers[i]);
        if (__atomic_load_n(&ctl->workers[i]->done, __ATOMIC_ACQUIRE))
            done++;
    }
    px_reload_check(ctl);
    if (ctl->adm != NULL)
        adm_server_applied(ctl->adm);
    if (done == ctl->n_workers) {
        /* Fleet mode: the revoke of this instance's lease may still be on its way (at most a
         * second more), else its member key would stay until the lease runs out. */
        static const struct timeval grace = {1, 0};

        ctl->workers_done = true;
        event_base_loopexit(ctl->base,
                            ctl->adm != NULL && adm_server_leaving(ctl->adm) ? &grace : NULL);
    }
}

/* The fleet's revoke at stop was answered: the loop ends now if the workers are done. */
static void
px_ctl_left(void *arg)
{
    struct px_ctl *ctl = arg;

    if (ctl->workers_done)
        event_base_loopexit(ctl->base, NULL);
}

/* --- messages to the workers --- */

static void
px_ctl_post_all(struct px_ctl *ctl, unsigned msg)
{
    if (ctl->freeing)
        return;
    for (unsigned i = 0; i < ctl->n_workers; i++)
        px_worker_post(ctl->workers[i], msg);
}

void
px_ctl_refresh(void *arg)
{
    px_ctl_post_all(arg, PX_MSG_REFRESH);
}

void
px_ctl_start(void *arg)
{
    struct px_ctl *ctl = arg;

    ctl->accepting = true;
    px_ctl_post_all(ctl, PX_MSG_START);
    /* The listeners accept from now on: a Type=notify unit is started. */
    xf_notify("READY=1\nSTATUS=serving");
}

/* --- what the admin socket reads --- */

void
px_ctl_stats(void *arg, struct xf_stats *out)
{
    struct px_ctl *ctl = arg;

    xf_stats_merge(out, ctl->stats);
    for (unsigned i = 0; i < ctl->n_workers; i++)
        xf_stats_merge(out, ctl->workers[i]->stats);
}

int
px_ctl_node_info(void *arg, uint32_t id, unsigned *active, unsigned *idle, unsigned *tunnels)
{
    struct px_ctl *ctl = arg;
    bool known = false;

    *active = *idle = *tunnels = 0;
    for (unsigned i = 0; i < ctl->n_workers; i++) {
        const struct px_usage *u = __atomic_load_n(&ctl->workers[i]->usage_pub, __ATOMIC_ACQUIRE);

        if (u == NULL || id >= u->n)
            continue;
        known = true;
        *active += XF_STAT_GET(u->active[id]);
        *idle += XF_STAT_GET(u->idle[id]);
        *tunnels += XF_STAT_GET(u->tunnels[id]);
    }
    return known ? 0 : -1;
}

bool
px_ctl_id_busy(void *arg, uint32_t id)
{
    struct px_ctl *ctl = arg;

    for (unsigned i = 0; i < ctl->n_workers; i++) {
        const struct px_usage *u = __atomic_load_n(&ctl->workers[i]->usage_pub, __ATOMIC_ACQUIRE);

        if (u != NULL && id < u->n &&
            (__atomic_load_n(&u->held[id], __ATOMIC_ACQUIRE) != 0 ||
             XF_STAT_GET(u->active[id]) > 0))
            return true;
    }
    return false;
}

uint64_t
px_ctl_applied(void *arg)
{
    struct px_ctl *ctl = arg;
    uint64_t low = UINT64_MAX;

    for (unsigned i = 0; i < ctl->n_workers; i++) {
        uint64_t v = __atomic_load_n(&ctl->workers[i]->applied, __ATOMIC_ACQUIRE);
        if (v < low)
            low = v;
    }
    return low;
}

const char *
px_ctl_status(void *arg)
{
    const struct px_ctl *ctl = arg;

    if (ctl->draining)
        return "stopping";
    return ctl->accepting ? "serving" : "starting";
}

int
px_ctl_client_take(struct px_ctl *ctl)
{
    unsigned cur = __atomic_load_n(&ctl->clients, __ATOMIC_SEQ_CST);
    unsigned max = __atomic_load_n(&ctl->max_clients, __ATOMIC_RELAXED);

    do {
        if (cur >= max)
            return -1;
    } while (!__atomic_compare_exchange_n(&ctl->clients, &cur, cur + 1, true, __ATOMIC_SEQ_CST,
                                          __ATOMIC_SEQ_CST));
    return 0;
}

void
px_ctl_client_put(struct px_ctl *ctl)
{
    /* From the limit to below it: workers that stopped accepting start again. */
    if (__atomic_fetch_sub(&ctl->clients, 1, __ATOMIC_SEQ_CST) ==
        __atomic_load_n(&ctl->max_clients, __ATOMIC_RELAXED))
        px_ctl_post_all(ctl, PX_MSG_ACCEPT);
}

struct px_node_share *
px_ctl_share(struct px_ctl *ctl, uint32_t id)
{
    size_t k = id / PX_SHARE_CHUNK;
    struct px_node_share *chunk, *fresh = NULL;

    if (k >= PX_SHARE_CHUNKS)
        return NULL;
    chunk = __atomic_load_n(&ctl->shares[k], __ATOMIC_ACQUIRE);
    if (chunk == NULL) {
        /* Workers may ask at once: the first chunk stored wins, the others are freed. */
        fresh = calloc(PX_SHARE_CHUNK, sizeof(*fresh));
        if (fresh == NULL)
            return NULL;
        if (__atomic_compare_exchange_n(&ctl->shares[k], &chunk, fresh, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            chunk = fresh;
        else
            free(fresh);
    }
    return &chunk[id % PX_SHARE_CHUNK];
}

/* The connections open in every worker (for the log). */
static uint64_t
px_ctl_open_connections(const struct px_ctl *ctl)
{
    uint64_t n = 0;

    for (unsigned i = 0; i < ctl->n_workers; i++)
        n += XF_STAT_GET(ctl->workers[i]->stats->client_connections);
    return n;
}

/* Stops accepting, lets requests in flight finish (Connection: close) and exits when the last
 * one is done or at timeouts.shutdown; a second time, at once. */
static void
px_ctl_shutdown(struct px_ctl *ctl)
{
    if (ctl->draining) {
        XF_LOG(XF_LOG_WARN, "proxy", "event=shutdown_now open_connections=%llu",
               (unsigned long long)px_ctl_open_connections(ctl));
    } else {
        XF_LOG(XF_LOG_INFO, "proxy", "event=shutdown in_flight=%llu deadline_ms=%u",
               (unsigned long long)px_ctl_open_connections(ctl), ctl->cfg->timeouts.shutdown_ms);
        ctl->draining = true;
        if (!ctl->handed)
            xf_notify("STOPPING=1\nSTATUS=draining");
        px_reexec_stopping(ctl, "this crossfade is stopping");
        if (ctl->adm != NULL)
            adm_server_stopping(ctl->adm, px_ctl_left, ctl); /* fleet mode: leaves the members */
    }
    px_ctl_post_all(ctl, PX_MSG_SHUTDOWN);
}

void
px_ctl_stop_now(struct px_ctl *ctl)
{
    ctl->draining = true;
    /* Nothing was accepted: each worker ends its loop at once. */
    px_ctl_post_all(ctl, PX_MSG_SHUTDOWN);
}

size_t
px_ctl_listen_fds(void *arg, int *fds, size_t cap)
{
    struct px_ctl *ctl = arg;
    size_t n = 0;

    /* The workers' listener arrays change only in a reload, which the control thread waits for:
     * outside one they are stable to read here. */
    if (ctl->reloading || ctl->draining)
        return SIZE_MAX;
    for (unsigned i = 0; i < ctl->n_workers; i++) {
        const struct px_worker *w = ctl->workers[i];

        for (size_t k = 0; k < w->n_listeners; k++) {
            if (w->listeners[k]->fd == -1)
                continue;
            if (n < cap)
                fds[n] = w->listeners[k]->fd;
            n++;
        }
    }
    return n;
}

void
px_ctl_handed_over(void *arg, long new_pid)
{
    struct px_ctl *ctl = arg;
    char msg[64];

    /* Under systemd the new process is the service from now on (it must run in the unit's
     * cgroup: `xfctl reexec` starts it there). This one's STOPPING=1 is not sent. */
    snprintf(msg, sizeof(msg), "MAINPID=%ld", new_pid);
    xf_notify(msg);
    ctl->handed = true;
    px_reexec_handed(ctl, new_pid);
    XF_LOG(XF_LOG_INFO, "proxy",
           "event=taken_over note=\"the new process accepts on the same "
           "sockets; this one finishes its connections and exits\"");
    px_ctl_shutdown(ctl);
}

/* --- signals --- */

static const int px_ctl_signals[PX_SIGNALS] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGCHLD};

static void
px_ctl_on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct px_ctl *ctl = arg;

    XF_UNUSED(what);
    switch (sig) {
    case SIGTERM:
    case SIGINT:
        XF_LOG(XF_LOG_INFO, "proxy", "event=signal signal=%s", sig == SIGTERM ? "TERM" : "INT");
        px_ctl_shutdown(ctl);
        break;
    case SIGHUP:
        XF_LOG(XF_LOG_INFO, "proxy", "event=signal signal=HUP action=reload");
        px_ctl_reload(ctl, NULL, NULL);
        break;
    case SIGUSR1:
        XF_LOG(XF_LOG_INFO, "proxy", "event=signal signal=USR1 action=reopen_access_log");
        px_ctl_post_all(ctl, PX_MSG_REOPEN);
        break;
    case SIGCHLD:
        px_reexec_reap(ctl);
        break;
    default:
        break;
    }
}

/* --- life cycle --- */

struct px_ctl *
px_ctl_new(const struct cfg *cfg, struct bal_router *router, struct xf_err *err)
{
    struct px_ctl *ctl = calloc(1, sizeof(*ctl));

    if (ctl == NULL) {
        xf_err_set(err, "out of memory");
        return NULL;
    }
    ctl->cfg = cfg_ref(cfg);
    ctl->max_clients = cfg->limits.max_connections;
    ctl->router = router;
    ctl->reexec_fd = -1;
    ctl->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ctl->base = event_base_new();
    ctl->stats = calloc(1, sizeof(*ctl->stats));
    ctl->shares = calloc(PX_SHARE_CHUNKS, sizeof(*ctl->shares));
    ctl->n_workers = cfg_workers(cfg);
    ctl->workers = calloc(ctl->n_workers, sizeof(*ctl->workers));
    if (ctl->efd == -1 || ctl->base == NULL || ctl->stats == NULL || ctl->shares == NULL ||
        ctl->workers == NULL) {
        xf_err_set(err, "out of memory setting up the control thread");
        goto fail;
    }
    ctl->ev_efd = event_new(ctl->base, ctl->efd, EV_READ | EV_PERSIST, px_ctl_on_poke, ctl);
    if (ctl->ev_efd == NULL || event_add(ctl->ev_efd, NULL) == -1) {
        xf_err_set(err, "out of memory setting up the control thread");
        goto fail;
    }
    if (px_reexec_init(ctl, err) == -1 || px_mon_start(ctl, err) == -1)
        goto fail;
    for (unsigned i = 0; i < ctl->n_workers; i++) {
        ctl->workers[i] = px_worker_new(ctl, i, err);
        if (ctl->workers[i] == NULL)
            goto fail;
    }
    return ctl;
fail:
    px_ctl_free(ctl);
    return NULL;
}

int
px_ctl_spawn(struct px_ctl *ctl, struct xf_err *err)
{
    for (unsigned i = 0; i < ctl->n_workers; i++)
        if (px_worker_spawn(ctl->workers[i], err) == -1)
            return -1;
    XF_LOG(XF_LOG_INFO, "proxy", "event=workers_started workers=%u", ctl->n_workers);
    return 0;
}

void
px_ctl_wire(struct px_ctl *ctl, struct adm_server *adm, struct px_health *health)
{
    ctl->adm = adm;
    ctl->health = health;
}

int
px_ctl_run(struct px_ctl *ctl)
{
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < PX_SIGNALS; i++) {
        ctl->ev_signals[i] = evsignal_new(ctl->base, px_ctl_signals[i], px_ctl_on_signal, ctl);
        if (ctl->ev_signals[i] == NULL || evsignal_add(ctl->ev_signals[i], NULL) == -1) {
            XF_LOG(XF_LOG_ERR, "proxy", "event=signal_setup_failed signal=%d", px_ctl_signals[i]);
            return 1;
        }
    }
    if (event_base_dispatch(ctl->base) == -1) {
        XF_LOG(XF_LOG_ERR, "proxy", "event=control_loop_failed");
        ctl->exit_code = 1;
        /* Twice: the second ends a worker's loop at once. */
        px_ctl_post_all(ctl, PX_MSG_SHUTDOWN);
        px_ctl_post_all(ctl, PX_MSG_SHUTDOWN);
    }
    /* Every worker has finished: none runs past this. */
    for (unsigned i = 0; i < ctl->n_workers; i++)
        px_worker_join(ctl->workers[i]);
    px_reexec_settle(ctl);
    XF_LOG(XF_LOG_INFO, "proxy", "event=stopped");
    return ctl->exit_code;
}

void
px_ctl_free(struct px_ctl *ctl)
{
    if (ctl == NULL)
        return;
    for (unsigned i = 0; ctl->workers != NULL && i < ctl->n_workers; i++) {
        struct px_worker *w = ctl->workers[i];

        if (w != NULL && w->running) {
            /* Start-up failed after the threads started: they stop at once (no client yet). */
            px_worker_post(w, PX_MSG_SHUTDOWN);
            px_worker_join(w);
        }
    }
    ctl->freeing = true; /* a client freed below must not post to a worker already freed */
    for (unsigned i = 0; ctl->workers != NULL && i < ctl->n_workers; i++) {
        px_worker_free(ctl->workers[i]);
        ctl->workers[i] = NULL;
    }
    free(ctl->workers);
    px_tls_set_free(ctl->tls, ctl->cfg != NULL ? ctl->cfg->n_listeners : 0);
    px_tls_nodes_free(ctl->node_tls);
    if (ctl->ev_tls_tick != NULL)
        event_free(ctl->ev_tls_tick);
    px_reexec_fini(ctl);
    px_mon_stop(ctl);
    for (size_t i = 0; i < PX_SIGNALS; i++)
        if (ctl->ev_signals[i] != NULL)
            event_free(ctl->ev_signals[i]);
    if (ctl->ev_efd != NULL)
        event_free(ctl->ev_efd);
    if (ctl->efd != -1)
        close(ctl->efd);
    for (size_t k = 0; ctl->shares != NULL && k < PX_SHARE_CHUNKS; k++)
        free(ctl->shares[k]);
    free(ctl->shares);
    free(ctl->stats);
    cfg_free(ctl->cfg);
    if (ctl->base != NULL)
        event_base_free(ctl->base);
    free(ctl);
}
