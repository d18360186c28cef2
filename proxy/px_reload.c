/* proxy/px_reload.c -- a new configuration while serving (SIGHUP, `reload`): read and checked on
 * the control thread, everything that may fail prepared there, then put in force; each worker
 * takes its part between two events of its loop, and the reload is over once all have. */
#include "proxy/px_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "admin/adm.h"

static bool
px_reload_addr_eq(const struct cfg_addr *a, const struct cfg_addr *b)
{
    return a->sa_len == b->sa_len && memcmp(&a->sa, &b->sa, a->sa_len) == 0;
}

static bool
px_reload_str_eq(const char *a, const char *b)
{
    return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

void
px_reload_msg_fini(struct px_reload_msg *m)
{
    if (m->listeners != NULL && m->cfg != NULL) {
        for (size_t i = 0; i < m->cfg->n_listeners; i++) {
            if (m->listeners[i] == NULL)
                continue;
            if (m->listeners[i]->fd != -1)
                close(m->listeners[i]->fd);
            free(m->listeners[i]);
        }
    }
    px_tls_set_free(m->tls, m->cfg != NULL ? m->cfg->n_listeners : 0);
    m->tls = NULL;
    px_tls_nodes_free(m->node_tls);
    free(m->listeners);
    free(m->target_ports);
    free(m->hdrs);
    free(m->resp_hdrs);
    cfg_free(m->cfg);
    m->listeners = NULL;
    m->target_ports = NULL;
    m->hdrs = m->resp_hdrs = NULL;
    m->cfg = NULL;
}

/* --- the worker's part --- */

/*
 * A listener the reload removed: connections already in its queue are taken (closing a
 * SO_REUSEPORT socket would reset them), then it closes. Connections it took earlier go on.
 */
static void
px_worker_listener_gone(struct px_worker *w, struct px_listener *l)
{
    if (w->accepting && !w->draining && l->fd != -1)
        for (int i = 0; i < 16 && !w->accept_backoff; i++) {
            unsigned before = w->n_clients;

            px_listener_on_accept(l->fd, EV_READ, l);
            if (w->n_clients == before)
                break; /* its queue is empty */
        }
    if (w->index == 0) /* once for the process: every worker closes its socket */
        XF_LOG(XF_LOG_INFO, "proxy", "event=listener_closed address=%s reason=reload",
               l->conf.addr.text);
    px_listener_close(l);
    l->next_gone = w->gone_listeners;
    w->gone_listeners = l;
}

void
px_worker_reload(struct px_worker *w)
{
    struct px_reload_msg *m = &w->reload_msg;
    const struct cfg *cfg = m->cfg, *old = w->cfg;
    struct px_listener **ls = m->listeners;
    size_t n = 0;

    if (cfg == NULL)
        return;
    /* The targets first: each listener takes its index in the new table. */
    free(w->target_ports);
    w->target_ports = m->target_ports;
    w->n_targets = m->n_targets;
    m->target_ports = NULL;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct cfg_listener *lc = &cfg->listeners[i];
        struct px_listener *l = ls[i];

        if (l == NULL) {
            /* Kept: the socket this worker has at the address (its role or node_port may have
             * changed: requests taken from now on follow the new ones). */
            for (size_t k = 0; k < w->n_listeners && l == NULL; k++)
                if (w->listeners[k] != NULL &&
                    px_reload_addr_eq(&w->listeners[k]->conf.addr, &lc->addr)) {
                    l = w->listeners[k];
                    w->listeners[k] = NULL;
                }
        } else {
            px_listener_arm(w, l);
        }
        if (l == NULL)
            continue; /* cannot be: the control thread chose by the same rule */
        /* Certificates read again by this reload: new connections take them, open ones keep
         * theirs. */
        SSL_CTX_free(l->tls);
        l->tls = m->tls[i];
        m->tls[i] = NULL;
        l->conf = *lc;
        l->target = px_worker_target_of(w, lc->node_port);
        ls[n++] = l;
    }
    for (size_t k = 0; k < w->n_listeners; k++)
        if (w->listeners[k] != NULL)
            px_worker_listener_gone(w, w->listeners[k]);
    free(w->listeners);
    w->listeners = ls;
    w->n_listeners = n;
    m->listeners = NULL;
    px_tls_set_free(m->tls, cfg->n_listeners); /* what no listener took, and the array */
    m->tls = NULL;
    if (m->hdrs != NULL) {
        free(w->hdrs);
        w->hdrs = m->hdrs;
        w->hdrs_cap = m->hdrs_cap;
        m->hdrs = NULL;
    }
    if (m->resp_hdrs != NULL) {
        free(w->resp_hdrs);
        w->resp_hdrs = m->resp_hdrs;
        w->resp_hdrs_cap = m->resp_hdrs_cap;
        m->resp_hdrs = NULL;
    }
    w->cfg = cfg;
    m->cfg = NULL;
    /* TLS to the nodes as the file now says: new connections use it, sessions made before are
     * not resumed (they were checked against the old settings), pooled connections drain. */
    px_tls_nodes_move(w->node_tls, m->node_tls);
    w->node_tls_gen++;
    px_worker_timeouts_set(w);
    if (!px_reload_str_eq(old->access_log, cfg->access_log)) {
        struct xf_err err = {{0}};

        px_alog_close(&w->alog);
        px_alog_init(&w->alog);
        if (px_alog_open(w, cfg->access_log, &err) == -1)
            XF_LOG(XF_LOG_ERR, "alog", "event=reopen_failed worker=%u error=\"%s\"", w->index,
                   err.msg);
    } else {
        px_alog_configure(w); /* the same file: only the format and the sample can change */
    }
    cfg_free(old);
    if (w->draining)
        for (size_t k = 0; k < w->n_listeners; k++)
            px_listener_close(w->listeners[k]);
    px_worker_accept_update(w);
}

/* --- the control thread's part --- */

/* Which of cfg's listeners are new: no listener of `old` is at the address. */
static bool
px_reload_listener_new(const struct cfg *old, const struct cfg_listener *lc)
{
    for (size_t k = 0; k < old->n_listeners; k++)
        if (px_reload_addr_eq(&old->listeners[k].addr, &lc->addr))
            return false;
    return true;
}

/*
 * Fills each worker's message for `cfg`: the new listeners bound (one socket per worker), the
 * target table, larger header tables. 0, or -1 with err and every message emptied (nothing
 * stays open).
 */
static int
px_reload_prepare(struct px_ctl *ctl, const struct cfg *cfg, SSL_CTX *const *tls,
                  SSL_CTX *const *node_tls, struct xf_err *err)
{
    int *fds = calloc(ctl->n_workers, sizeof(*fds));
    size_t hdrs_cap = cfg->limits.max_headers + 1u;
    size_t resp_cap = XF_MAX(cfg->limits.max_headers, 256u);

    if (fds == NULL)
        goto oom;
    for (unsigned i = 0; i < ctl->n_workers; i++) {
        struct px_worker *w = ctl->workers[i];
        struct px_reload_msg *m = &w->reload_msg;

        m->listeners = calloc(cfg->n_listeners, sizeof(*m->listeners));
        m->target_ports = calloc(w->n_targets + cfg->n_listeners, sizeof(*m->target_ports));
        m->tls = calloc(cfg->n_listeners, sizeof(*m->tls));
        if (m->listeners == NULL || m->target_ports == NULL || m->tls == NULL)
            goto oom;
        for (size_t k = 0; k < cfg->n_listeners; k++)
            if (tls[k] != NULL && SSL_CTX_up_ref(tls[k]) == 1)
                m->tls[k] = tls[k];
        px_tls_nodes_copy(m->node_tls, node_tls);
        /* The ports the worker has keep their index (pools and connections hold it). */
        memcpy(m->target_ports, w->target_ports, w->n_targets * sizeof(*m->target_ports));
        m->n_targets = w->n_targets;
        for (size_t k = 0; k < cfg->n_listeners; k++) {
            uint16_t port = cfg->listeners[k].node_port;
            size_t t = 0;

            while (t < m->n_targets && m->target_ports[t] != port)
                t++;
            if (t == m->n_targets)
                m->target_ports[m->n_targets++] = port;
        }
        if (hdrs_cap > w->hdrs_cap) {
            m->hdrs = calloc(hdrs_cap, sizeof(*m->hdrs));
            m->hdrs_cap = hdrs_cap;
        }
        if (resp_cap > w->resp_hdrs_cap) {
            m->resp_hdrs = calloc(resp_cap, sizeof(*m->resp_hdrs));
            m->resp_hdrs_cap = resp_cap;
        }
        if ((hdrs_cap > w->hdrs_cap && m->hdrs == NULL) ||
            (resp_cap > w->resp_hdrs_cap && m->resp_hdrs == NULL))
            goto oom;
        m->cfg = cfg_ref(cfg); /* the message's fini lets it go on failure */
    }
    for (size_t k = 0; k < cfg->n_listeners; k++) {
        const struct cfg_listener *lc = &cfg->listeners[k];

        if (!px_reload_listener_new(ctl->cfg, lc))
            continue;
        for (unsigned i = 0; i < ctl->n_workers; i++) {
            struct px_listener *l = calloc(1, sizeof(*l));

            if (l == NULL)
                goto oom;
            l->fd = -1;
            l->conf = *lc;
            ctl->workers[i]->reload_msg.listeners[k] = l;
        }
        if (px_listener_open(ctl, &lc->addr, fds, err) == -1)
            goto fail;
        for (unsigned i = 0; i < ctl->n_workers; i++)
            ctl->workers[i]->reload_msg.listeners[k]->fd = fds[i];
        XF_LOG(XF_LOG_INFO, "proxy", "event=listening address=%s role=%s workers=%u reason=reload",
               lc->addr.text, lc->role == CFG_ROLE_ADMIN_API ? "admin_api" : "proxy",
               ctl->n_workers);
    }
    free(fds);
    return 0;
oom:
    xf_err_set(err, "out of memory preparing the reload");
fail:
    free(fds);
    for (unsigned i = 0; i < ctl->n_workers; i++) {
        struct px_reload_msg *m = &ctl->workers[i]->reload_msg;

        if (m->cfg == NULL)
            m->cfg = cfg_ref(cfg); /* so that fini finds the listeners' count */
        px_reload_msg_fini(m);
    }
    return -1;
}

/* Whether the seed in force (its hash: in fleet mode the fleet's, not always split.seed) or the
 * keys changed: the same client may then hash to the other side. */
static bool
px_reload_moves_clients(uint64_t seed_a, const struct cfg_split *a, uint64_t seed_b,
                        const struct cfg_split *b)
{
    if (seed_a != seed_b || a->n_keys != b->n_keys)
        return true;
    for (size_t i = 0; i < a->n_keys; i++)
        if (a->keys[i].kind != b->keys[i].kind ||
            !px_reload_str_eq(a->keys[i].name, b->keys[i].name))
            return true;
    return false;
}

/* Warns when the reload moved clients between x and y: the seed in force (seed_before before it)
 * or the keys changed while both sides take clients. */
static void
px_reload_warn_moves(struct px_ctl *ctl, uint64_t seed_before, const struct cfg_split *old,
                     const struct cfg_split *new)
{
    struct bal_snapshot *now = bal_router_acquire(ctl->router);

    if (now->weight_bp > 0 && now->weight_bp < BAL_BUCKETS &&
        px_reload_moves_clients(seed_before, old, now->seed_hash, new))
        XF_LOG(XF_LOG_WARN, "proxy",
               "event=reload_split_changed weight_bp=%u note=\"the split's seed or keys changed "
               "while both sides take clients: clients move between x and y\"",
               now->weight_bp);
    bal_snapshot_unref(now);
}

/* A new access log must open before anything changes: the workers open it in turn. */
static int
px_reload_check_alog(const struct cfg *old, const struct cfg *cfg, struct xf_err *err)
{
    int fd;

    if (px_reload_str_eq(old->access_log, cfg->access_log) || cfg->access_log == NULL ||
        strcmp(cfg->access_log, "-") == 0)
        return 0;
    fd = open(cfg->access_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd == -1) {
        xf_err_set(err, "access_log: cannot open %s: %s", cfg->access_log, strerror(errno));
        return -1;
    }
    close(fd);
    return 0;
}

/* The reload is over (ok or not): said once to the log, to systemd and to who asked. */
static void
px_reload_end(struct px_ctl *ctl, void (*done)(void *, bool, const char *), void *arg, bool ok,
              const char *text)
{
    char esc[1200];
    size_t j = 0;

    /* Quotes and backslashes of an error message escaped for the log's key="value". */
    for (const char *p = text; *p != '\0' && j + 2 < sizeof(esc); p++) {
        if (*p == '"' || *p == '\\')
            esc[j++] = '\\';
        esc[j++] = *p;
    }
    esc[j] = '\0';
    if (ctl->reload_tls) {
        /* Certificates only: the configuration is the same, systemd is not told. */
        ctl->reload_tls = false;
        if (ok)
            XF_LOG(XF_LOG_INFO, "tls", "event=tls_reload result=ok changes=\"%s\"", esc);
        else
            XF_LOG(XF_LOG_ERR, "tls",
                   "event=tls_reload result=failed error=\"%s\" note=\"the certificates in force "
                   "are unchanged\"",
                   esc);
        if (done != NULL)
            done(arg, ok, text);
        return;
    }
    if (ok)
        XF_LOG(XF_LOG_INFO, "proxy", "event=reload result=ok config=%s reloads=%u changes=\"%s\"",
               ctl->cfg->path, ctl->reloads, esc);
    else
        XF_LOG(XF_LOG_ERR, "proxy",
               "event=reload result=failed config=%s error=\"%s\" note=\"the configuration in "
               "force is unchanged\"",
               ctl->cfg->path, esc);
    xf_notify(ok ? "READY=1\nSTATUS=serving (configuration reloaded)"
                 : "READY=1\nSTATUS=serving (the last reload failed: see the log)");
    if (done != NULL)
        done(arg, ok, text);
}

void
px_reload_check(struct px_ctl *ctl)
{
    void (*done)(void *, bool, const char *) = ctl->reload_done;

    if (!ctl->reloading)
        return;
    for (unsigned i = 0; i < ctl->n_workers; i++)
        if (__atomic_load_n(&ctl->workers[i]->reloaded, __ATOMIC_ACQUIRE) < ctl->reload_gen)
            return;
    ctl->reloading = false;
    ctl->reload_done = NULL;
    px_reload_end(ctl, done, ctl->reload_done_arg, true, ctl->reload_text);
    if (ctl->reload_again) {
        ctl->reload_again = false;
        px_ctl_reload(ctl, NULL, NULL);
    }
}

void
px_ctl_reload(struct px_ctl *ctl, void (*done)(void *arg, bool ok, const char *text), void *arg)
{
    struct xf_err err = {{0}};
    struct bal_snapshot *cur, *next;
    uint64_t seed_before;
    const struct cfg *old = ctl->cfg;
    struct cfg *cfg = NULL;
    SSL_CTX **tls = NULL, *node_tls[CFG_CLUSTER_COUNT] = {NULL};
    struct cfg_diff d;
    char why[600];
    bool more_clients;

    if (ctl->reloading) {
        /* One at a time: a signal is kept for later, a command told to try again. */
        if (done == NULL) {
            ctl->reload_again = true;
            return;
        }
        done(arg, false, "a reload is under way: try again once it has finished");
        return;
    }
    if (ctl->draining) {
        XF_LOG(XF_LOG_WARN, "proxy", "event=reload result=refused reason=stopping");
        if (done != NULL)
            done(arg, false, "crossfade is stopping: nothing to reload");
        return;
    }
    xf_notify_reloading();
    cfg = cfg_load(old->path, &err);
    if (cfg == NULL) {
        px_reload_end(ctl, done, arg, false, err.msg);
        return;
    }
    if (cfg_diff(old, cfg, &d) == -1) {
        snprintf(why, sizeof(why), "reload refused: %s", d.refused);
        goto fail;
    }
    /* Certificates and keys are read again, whether their names in the file changed or not. */
    if (px_reload_check_alog(old, cfg, &err) == -1 || px_tls_set_new(cfg, &tls, &err) == -1 ||
        px_tls_nodes_new(cfg, node_tls, &err) == -1 ||
        px_reload_prepare(ctl, cfg, tls, node_tls, &err) == -1) {
        snprintf(why, sizeof(why), "%s", err.msg);
        goto fail;
    }
    cur = bal_router_acquire(ctl->router);
    seed_before = cur->seed_hash;
    next = bal_snapshot_reload(cur, old, cfg, px_ctl_id_busy, ctl, cur->version + 1, &err);
    bal_snapshot_unref(cur);
    if (next == NULL) {
        for (unsigned i = 0; i < ctl->n_workers; i++)
            px_reload_msg_fini(&ctl->workers[i]->reload_msg);
        snprintf(why, sizeof(why), "%s", err.msg);
        goto fail;
    }
    /* Nothing fails from here on. The health checks read the new settings before the snapshot
     * shows them the nodes it adds. */
    cfg_diff_text(&d, ctl->reload_text, sizeof(ctl->reload_text));
    if (ctl->health != NULL)
        px_health_reload(ctl->health, cfg);
    if (ctl->adm != NULL) {
        adm_server_reload(ctl->adm, cfg, next, ctl->reload_text,
                          sizeof(ctl->reload_text)); /* publishes: workers told */
    } else {
        bal_router_publish(ctl->router, next);
        px_ctl_refresh(ctl);
        if (ctl->health != NULL)
            px_health_refresh(ctl->health);
    }
    px_reload_warn_moves(ctl, seed_before, &old->split, &cfg->split);
    px_tls_set_free(ctl->tls, old->n_listeners);
    ctl->tls = tls;
    tls = NULL;
    px_tls_nodes_move(ctl->node_tls, node_tls);
    px_tls_set_rotation(cfg->tls_ticket_rotation_ms);
    ctl->cfg = cfg; /* the load's hold */
    more_clients = cfg->limits.max_connections > old->limits.max_connections;
    __atomic_store_n(&ctl->max_clients, cfg->limits.max_connections, __ATOMIC_RELAXED);
    __atomic_store_n(&xf_log_min, cfg->log_level, __ATOMIC_RELAXED);
    ctl->reload_gen++;
    ctl->reloads++;
    ctl->reloading = true;
    ctl->reload_done = done;
    ctl->reload_done_arg = arg;
    for (unsigned i = 0; i < ctl->n_workers; i++) {
        ctl->workers[i]->reload_msg.gen = ctl->reload_gen;
        px_worker_post(ctl->workers[i], PX_MSG_RELOAD | (more_clients ? PX_MSG_ACCEPT : 0u));
    }
    cfg_free(old); /* the workers and snapshots still using it hold it */
    px_reload_check(ctl);
    return;
fail:
    px_tls_set_free(tls, cfg != NULL ? cfg->n_listeners : 0);
    px_tls_nodes_free(node_tls);
    cfg_free(cfg);
    px_reload_end(ctl, done, arg, false, why);
}

/* --- certificates only (`tls reload`) --- */

void
px_ctl_tls_reload(void *arg, void (*done)(void *arg, bool ok, const char *text), void *done_arg)
{
    struct px_ctl *ctl = arg;
    const struct cfg *cfg = ctl->cfg;
    SSL_CTX **tls = NULL, *node_tls[CFG_CLUSTER_COUNT] = {NULL};
    struct xf_err err = {{0}};
    unsigned n_listeners = 0, n_certs = 0, n_clusters = 0;

    if (ctl->reloading) {
        done(done_arg, false, "a reload is under way: try again once it has finished");
        return;
    }
    if (ctl->draining) {
        done(done_arg, false, "crossfade is stopping: nothing to reload");
        return;
    }
    ctl->reload_tls = true;
    /* The files the configuration in force names, read again: a bad one changes nothing. */
    if (px_tls_set_new(cfg, &tls, &err) == -1 || px_tls_nodes_new(cfg, node_tls, &err) == -1 ||
        px_reload_prepare(ctl, cfg, tls, node_tls, &err) == -1) {
        px_tls_set_free(tls, cfg->n_listeners);
        px_tls_nodes_free(node_tls);
        px_reload_end(ctl, done, done_arg, false, err.msg);
        return;
    }
    for (size_t k = 0; k < cfg->n_listeners; k++)
        if (cfg->listeners[k].tls != NULL) {
            n_listeners++;
            n_certs += (unsigned)cfg->listeners[k].tls->n_certs;
        }
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++)
        n_clusters += cfg->clusters[c].tls != NULL;
    snprintf(ctl->reload_text, sizeof(ctl->reload_text),
             "certificates reloaded: %u on %u listener%s; TLS to the nodes of %u cluster%s",
             n_certs, n_listeners, n_listeners == 1 ? "" : "s", n_clusters,
             n_clusters == 1 ? "" : "s");
    px_tls_set_free(ctl->tls, cfg->n_listeners);
    ctl->tls = tls;
    px_tls_nodes_move(ctl->node_tls, node_tls);
    ctl->reload_gen++;
    ctl->reloading = true;
    ctl->reload_done = done;
    ctl->reload_done_arg = done_arg;
    for (unsigned i = 0; i < ctl->n_workers; i++) {
        ctl->workers[i]->reload_msg.gen = ctl->reload_gen;
        px_worker_post(ctl->workers[i], PX_MSG_RELOAD);
    }
    px_reload_check(ctl);
}

void
px_ctl_tls_show(void *arg, void (*line)(void *ctx, const char *text), void *ctx)
{
    struct px_ctl *ctl = arg;

    for (size_t k = 0; ctl->tls != NULL && k < ctl->cfg->n_listeners; k++)
        px_tls_show(ctl->tls[k], ctl->cfg->listeners[k].addr.text, line, ctx);
}

void
px_ctl_tls_tick(evutil_socket_t fd, short what, void *arg)
{
    struct px_ctl *ctl = arg;
    bool daily = ++ctl->tls_ticks % (24u * 60u) == 0;

    XF_UNUSED(fd);
    XF_UNUSED(what);
    for (size_t k = 0; ctl->tls != NULL && k < ctl->cfg->n_listeners; k++) {
        px_tls_flush(ctl->tls[k]);
        if (daily)
            px_tls_warn_expiry(ctl->tls[k]);
    }
}
