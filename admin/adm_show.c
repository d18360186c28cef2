/* admin/adm_show.c -- the read-only commands (help, show events/config/version) and the rest. */
#include "admin/adm.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum adm_result
adm_cmd_help(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
             struct adm_reply *r)
{
    size_t n;
    const struct adm_cmd *cmds = adm_cmd_table(&n);

    int width = 0;

    XF_UNUSED(st);
    XF_UNUSED(peer);
    XF_UNUSED(a);
    for (size_t i = 0; i < n; i++)
        width = XF_MAX(width, (int)strlen(cmds[i].usage));
    for (size_t i = 0; i < n; i++)
        adm_reply_line(r, "%-*s  %s", width, cmds[i].usage, cmds[i].help);
    return ADM_OK;
}

enum adm_result
adm_cmd_show_events(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                    struct adm_reply *r)
{
    char line[ADM_EVENT_LINE];

    XF_UNUSED(peer);
    XF_UNUSED(a);
    for (size_t i = 0; i < st->events.n; i++)
        adm_reply_line(r, "%s",
                       adm_event_line(adm_events_get(&st->events, i), false, line, sizeof(line)));
    if (st->events.n == 0)
        adm_reply_line(r, "no events");
    return ADM_OK;
}

enum adm_result
adm_cmd_watch(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
              struct adm_reply *r)
{
    struct bal_snapshot *snap = bal_router_acquire(st->router);
    char when[40], w[ADM_WEIGHT_TEXT];

    XF_UNUSED(peer);
    XF_UNUSED(a);
    adm_reply_line(r, "ok: watching at %s weight y %s",
                   xf_wall_text(xf_wall_ms(), 1, when, sizeof(when)),
                   adm_weight_text(snap->weight_bp, w));
    bal_snapshot_unref(snap);
    return ADM_WATCH;
}

/* A list of networks, or "-" when empty. */
static void
adm_show_cidrs(struct adm_reply *r, const char *key, const struct cfg_cidr *nets, size_t n)
{
    char list[1024];
    size_t o = 0;

    snprintf(list, sizeof(list), "-");
    for (size_t i = 0; i < n && o < sizeof(list); i++) {
        int k = snprintf(list + o, sizeof(list) - o, "%s%s", i > 0 ? " " : "", nets[i].text);

        if (k > 0)
            o = XF_MIN(o + (size_t)k, sizeof(list) - 1);
    }
    adm_reply_line(r, "%s %s", key, list);
}

static const char *
adm_show_or_dash(const char *s)
{
    return s != NULL ? s : "-";
}

/* Who may choose a side with the override header or cookie: the networks, and in words when it is
 * everyone or no one, so that nobody leaves the public a switch to y without seeing it. */
static void
adm_show_override_from(struct adm_reply *r, const struct cfg_split *sp)
{
    const char *how = sp->override_header != NULL ? sp->override_header : sp->override_cookie;

    if (how == NULL) {
        adm_show_cidrs(r, "split.override_from", sp->override_from, sp->n_override_from);
        adm_reply_line(r, "note: the override header and cookie are off: no client chooses its "
                          "side");
    } else if (sp->override_any) {
        adm_reply_line(r, "split.override_from any");
        adm_reply_line(r,
                       "note: WARNING: every client, the public included, can choose its side "
                       "(%s%s y), even after a rollback; list the testers' networks in "
                       "split.override_from",
                       how, sp->override_header != NULL ? ":" : "=");
    } else if (sp->n_override_from == 0) {
        adm_reply_line(r, "split.override_from -");
        adm_reply_line(r, "note: no client may choose its side: overrides are ignored");
    } else {
        adm_show_cidrs(r, "split.override_from", sp->override_from, sp->n_override_from);
    }
}

static void
adm_show_split(struct adm_state *st, struct adm_reply *r)
{
    const struct cfg_split *sp = &st->cfg->split;
    struct bal_snapshot *snap = bal_router_acquire(st->router);
    char w[ADM_WEIGHT_TEXT], now[ADM_WEIGHT_TEXT], keys[1024];
    size_t o = 0;

    adm_weight_text(sp->weight_bp, w);
    if (snap->weight_bp != sp->weight_bp)
        adm_reply_line(r, "split.weight %s (now %s)", w, adm_weight_text(snap->weight_bp, now));
    else
        adm_reply_line(r, "split.weight %s", w);
    bal_snapshot_unref(snap);
    keys[0] = '\0';
    for (size_t i = 0; i < sp->n_keys; i++) {
        int k = snprintf(keys + o, sizeof(keys) - o, "%s%s%s%s", i > 0 ? " " : "",
                         adm_key_kind_name(sp->keys[i].kind), sp->keys[i].name != NULL ? ":" : "",
                         sp->keys[i].name != NULL ? sp->keys[i].name : "");

        if (k > 0)
            o = XF_MIN(o + (size_t)k, sizeof(keys) - 1);
    }
    adm_reply_line(r, "split.key %s", keys);
    adm_reply_line(r, "split.seed %s", sp->seed);
    adm_show_cidrs(r, "split.trusted_proxies", sp->trusted_proxies, sp->n_trusted_proxies);
    adm_reply_line(r, "split.override_header %s", adm_show_or_dash(sp->override_header));
    adm_reply_line(r, "split.override_cookie %s", adm_show_or_dash(sp->override_cookie));
    adm_reply_line(r, "split.expose %s", adm_show_or_dash(sp->expose));
    adm_show_override_from(r, sp);
}

/* clusters.NAME.health: "off", or one line per key (host and port "-": the node's). */
static void
adm_show_health(struct adm_reply *r, const char *name, const struct cfg_health *h)
{
    char d[32];

    if (!h->enabled) {
        adm_reply_line(r, "clusters.%s.health off", name);
        return;
    }
    adm_reply_line(r, "clusters.%s.health.path %s", name, adm_show_or_dash(h->path));
    adm_reply_line(r, "clusters.%s.health.host %s", name, adm_show_or_dash(h->host));
    if (h->port != 0)
        adm_reply_line(r, "clusters.%s.health.port %u", name, (unsigned)h->port);
    else
        adm_reply_line(r, "clusters.%s.health.port -", name);
    adm_reply_line(r, "clusters.%s.health.interval %s", name,
                   adm_duration_text(h->interval_ms, d, sizeof(d)));
    adm_reply_line(r, "clusters.%s.health.timeout %s", name,
                   adm_duration_text(h->timeout_ms, d, sizeof(d)));
    adm_reply_line(r, "clusters.%s.health.rise %u", name, h->rise);
    adm_reply_line(r, "clusters.%s.health.fall %u", name, h->fall);
    if (h->expect_min == h->expect_max)
        adm_reply_line(r, "clusters.%s.health.expect %u", name, h->expect_min);
    else
        adm_reply_line(r, "clusters.%s.health.expect %u-%u", name, h->expect_min, h->expect_max);
}

/* clusters.NAME.outlier: "off" when failures is 0, else one line per key. */
static void
adm_show_outlier(struct adm_reply *r, const char *name, const struct cfg_outlier *o)
{
    char d[32];

    if (o->failures == 0) {
        adm_reply_line(r, "clusters.%s.outlier off", name);
        return;
    }
    adm_reply_line(r, "clusters.%s.outlier.failures %u", name, o->failures);
    adm_reply_line(r, "clusters.%s.outlier.ejection %s", name,
                   adm_duration_text(o->ejection_ms, d, sizeof(d)));
    adm_reply_line(r, "clusters.%s.outlier.max_ejection %s", name,
                   adm_duration_text(o->max_ejection_ms, d, sizeof(d)));
}

/* guard and test_traffic as the file set them (`guard show` tells the guard's state now). */
static void
adm_show_guard(struct adm_reply *r, const struct cfg *cfg)
{
    static const char *const actions[] = {[CFG_GUARD_ROLLBACK] = "rollback",
                                          [CFG_GUARD_PAUSE] = "pause",
                                          [CFG_GUARD_STEP_DOWN] = "step_down"};
    const struct cfg_guard *g = &cfg->guard;
    char a[ADM_WEIGHT_TEXT], d[32];

    adm_reply_line(r, "test_traffic.header %s", adm_show_or_dash(cfg->test_traffic.header));
    adm_show_cidrs(r, "test_traffic.sources", cfg->test_traffic.sources,
                   cfg->test_traffic.n_sources);
    if (!g->configured) {
        adm_reply_line(r, "guard off");
        return;
    }
    adm_reply_line(r, "guard.window %s", adm_duration_text(g->window_s * 1000u, d, sizeof(d)));
    adm_reply_line(r, "guard.min_requests %u", g->min_requests);
    adm_reply_line(r, "guard.max_error_rate_delta %s%%", adm_weight_text(g->max_error_delta_bp, a));
    adm_reply_line(r, "guard.max_latency_ratio %g", g->max_latency_ratio);
    adm_reply_line(r, "guard.min_latency_delta %s",
                   adm_duration_text(g->min_latency_delta_us / 1000u, d, sizeof(d)));
    adm_reply_line(r, "guard.confidence %g%%", g->confidence * 100.0);
    adm_reply_line(r, "guard.action %s", actions[g->action]);
    adm_reply_line(r, "guard.step_down %s%%", adm_weight_text(g->step_down_bp, a));
}

/* fleet as the file set it (`show fleet` tells how it goes). */
static void
adm_show_fleet_config(struct adm_reply *r, const struct cfg *cfg)
{
    const struct cfg_fleet *f = &cfg->fleet;
    char d[32], e[32];

    if (!f->configured) {
        adm_reply_line(r, "fleet off");
        return;
    }
    for (size_t i = 0; i < f->n_etcd; i++)
        adm_reply_line(r, "fleet.etcd[%zu] %s", i, f->etcd[i]);
    adm_reply_line(r, "fleet.prefix %s", f->prefix);
    adm_reply_line(r, "fleet.name %s", f->name);
    adm_reply_line(r, "fleet.local_fallback %s", f->local_fallback ? "true" : "false");
    adm_reply_line(r, "fleet.timeout %s fleet.lease %s",
                   adm_duration_text(f->timeout_ms, d, sizeof(d)),
                   adm_duration_text(f->lease_ms, e, sizeof(e)));
    adm_reply_line(r, "fleet.epoch_header %s", adm_show_or_dash(f->epoch_header));
}

/*
 * A node as it is now (the snapshot's), with its own limits when they are not its cluster's, and
 * what the admin socket changed: "(added at run time)", "(config: weight 1)", its operator state.
 */
static void
adm_show_node(struct adm_reply *r, const char *name, const struct cfg_cluster *cl,
              const struct bal_cluster *bc, const struct bal_node *n)
{
    const struct cfg_node *cn = NULL;
    char extra[160] = "";
    size_t o = 0;
    int k;

    for (size_t i = 0; i < cl->n_nodes && cn == NULL; i++)
        if (strcmp(cl->nodes[i].addr.text, n->addr.text) == 0)
            cn = &cl->nodes[i];
    if (n->max_conns != bc->max_conns) {
        k = snprintf(extra, sizeof(extra), " max_connections %u", n->max_conns);
        o = k > 0 ? XF_MIN((size_t)k, sizeof(extra) - 1) : o;
    }
    if (n->max_pending != bc->max_pending) {
        k = snprintf(extra + o, sizeof(extra) - o, " max_pending %u", n->max_pending);
        o = k > 0 ? XF_MIN(o + (size_t)k, sizeof(extra) - 1) : o;
    }
    if (n->state != BAL_NODE_UP) {
        k = snprintf(extra + o, sizeof(extra) - o, " %s", bal_node_state_name(n->state));
        o = k > 0 ? XF_MIN(o + (size_t)k, sizeof(extra) - 1) : o;
    }
    if (cn == NULL)
        snprintf(extra + o, sizeof(extra) - o, " (added at run time)");
    else if (cn->weight != n->weight)
        snprintf(extra + o, sizeof(extra) - o, " (config: weight %u)", cn->weight);
    adm_reply_line(r, "clusters.%s.node %s weight %u%s", name, n->addr.text, n->weight, extra);
}

enum adm_result
adm_cmd_show_config(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                    struct adm_reply *r)
{
    static const char *const roles[] = {
        [CFG_ROLE_PROXY] = "proxy", [CFG_ROLE_ADMIN_API] = "admin_api"};
    static const char *const balances[] = {[CFG_BALANCE_HASH] = "hash",
                                           [CFG_BALANCE_ROUND_ROBIN] = "round_robin",
                                           [CFG_BALANCE_LEAST_CONN] = "least_conn"};
    static const char *const levels[] = {[XF_LOG_DEBUG] = "debug",
                                         [XF_LOG_INFO] = "info",
                                         [XF_LOG_WARN] = "warn",
                                         [XF_LOG_ERR] = "error"};
    const struct cfg *cfg = st->cfg;
    const struct cfg_timeouts *t = &cfg->timeouts;
    struct bal_snapshot *snap = bal_router_acquire(st->router);
    char d[32];

    XF_UNUSED(peer);
    XF_UNUSED(a);
    adm_reply_line(r, "config %s", adm_show_or_dash(cfg->path));
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        if (cfg->listeners[i].node_port != 0)
            adm_reply_line(r, "listen %s %s node_port %u", cfg->listeners[i].addr.text,
                           roles[cfg->listeners[i].role], (unsigned)cfg->listeners[i].node_port);
        else
            adm_reply_line(r, "listen %s %s", cfg->listeners[i].addr.text,
                           roles[cfg->listeners[i].role]);
    }
    adm_reply_line(r, "admin.socket %s", cfg->admin_socket);
    adm_reply_line(r, "admin.group %s", adm_show_or_dash(cfg->admin_group));
    adm_reply_line(r, "admin.http %s", cfg->admin_http != NULL ? cfg->admin_http->text : "off");
    adm_show_split(st, r);
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++) {
        const struct cfg_cluster *cl = &cfg->clusters[c];
        const char *name = cfg_cluster_name((enum cfg_cluster_id)c);

        adm_reply_line(r, "clusters.%s.balance %s", name, balances[cl->balance]);
        adm_reply_line(r, "clusters.%s.failover %s", name, cl->failover ? "true" : "false");
        adm_reply_line(r, "clusters.%s.max_connections %u", name, cl->max_connections);
        adm_reply_line(r, "clusters.%s.max_pending %u", name, cl->max_pending);
        if (cl->max_idle == CFG_MAX_IDLE_AUTO)
            adm_reply_line(r, "clusters.%s.max_idle auto", name);
        else
            adm_reply_line(r, "clusters.%s.max_idle %u", name, cl->max_idle);
        adm_show_health(r, name, &cl->health);
        adm_show_outlier(r, name, &cl->outlier);
        if (cl->slow_start_ms != 0)
            adm_reply_line(r, "clusters.%s.slow_start %s", name,
                           adm_duration_text(cl->slow_start_ms, d, sizeof(d)));
        else
            adm_reply_line(r, "clusters.%s.slow_start off", name);
        if (cl->resolve_interval_ms != 0)
            adm_reply_line(r, "clusters.%s.resolve_interval %s", name,
                           adm_duration_text(cl->resolve_interval_ms, d, sizeof(d)));
        else
            adm_reply_line(r, "clusters.%s.resolve_interval off", name);
        /* The nodes as they are now: those added at run time listed, those deleted not. */
        for (size_t i = 0; i < snap->clusters[c].n_nodes; i++)
            adm_show_node(r, name, cl, &snap->clusters[c], &snap->clusters[c].nodes[i]);
    }
    bal_snapshot_unref(snap);
    adm_reply_line(r, "timeouts.connect %s", adm_duration_text(t->connect_ms, d, sizeof(d)));
    adm_reply_line(r, "timeouts.client_header %s",
                   adm_duration_text(t->client_header_ms, d, sizeof(d)));
    adm_reply_line(r, "timeouts.client_idle %s",
                   adm_duration_text(t->client_idle_ms, d, sizeof(d)));
    adm_reply_line(r, "timeouts.upstream_response %s",
                   adm_duration_text(t->upstream_response_ms, d, sizeof(d)));
    adm_reply_line(r, "timeouts.upstream_idle %s",
                   adm_duration_text(t->upstream_idle_ms, d, sizeof(d)));
    adm_reply_line(r, "timeouts.shutdown %s", adm_duration_text(t->shutdown_ms, d, sizeof(d)));
    adm_reply_line(r, "timeouts.queue %s", adm_duration_text(t->queue_ms, d, sizeof(d)));
    adm_reply_line(r, "timeouts.client_request %s",
                   t->client_request_ms != 0 ? adm_duration_text(t->client_request_ms, d, sizeof(d))
                                             : "off");
    adm_reply_line(r, "limits.max_connections %u", cfg->limits.max_connections);
    adm_reply_line(r, "limits.max_request_line_bytes %u", cfg->limits.max_request_line_bytes);
    adm_reply_line(r, "limits.max_header_bytes %u", cfg->limits.max_header_bytes);
    adm_reply_line(r, "limits.max_headers %u", cfg->limits.max_headers);
    adm_reply_line(r, "limits.max_body_bytes %llu", (unsigned long long)cfg->limits.max_body_bytes);
    adm_reply_line(r, "limits.max_requests_per_connection %u",
                   cfg->limits.max_requests_per_connection);
    adm_reply_line(r, "limits.request_buffer_bytes %u", cfg->limits.request_buffer_bytes);
    adm_reply_line(r, "retries %u", cfg->retries);
    adm_reply_line(r, "access_log %s", cfg->access_log != NULL ? cfg->access_log : "off");
    adm_reply_line(r, "access_log_format %s",
                   cfg->access_log_format == CFG_ALOG_JSON ? "json" : "text");
    adm_reply_line(r, "access_log_sample %g", cfg->access_log_sample);
    adm_reply_line(r, "log_level %s", levels[cfg->log_level]);
    adm_reply_line(r, "state_file %s", cfg->state_file != NULL ? cfg->state_file : "off");
    adm_show_guard(r, cfg);
    adm_show_fleet_config(r, cfg);
    return ADM_OK;
}

enum adm_result
adm_cmd_show_version(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                     struct adm_reply *r)
{
    struct bal_snapshot *snap = bal_router_acquire(st->router);
    char when[32];

    XF_UNUSED(peer);
    XF_UNUSED(a);
    adm_reply_line(r, "crossfade %s", XF_VERSION);
    adm_reply_line(r, "libevent %s", event_get_version());
    adm_reply_line(r, "pid %ld", (long)getpid());
    if (st->status != NULL)
        adm_reply_line(r, "status %s", st->status(st->status_arg));
    if (st->workers != 0)
        adm_reply_line(r, "workers %u", st->workers);
    adm_reply_line(r, "started %s", adm_time_text(st->started, when, sizeof(when)));
    adm_reply_line(r, "uptime %llus", (unsigned long long)((xf_now_ms() - st->started_ms) / 1000));
    adm_reply_line(r, "snapshot %llu", (unsigned long long)snap->version);
    adm_reply_line(r, "config %s", st->cfg->path);
    if (st->reloaded != 0)
        adm_reply_line(r, "reloads %u, last %s", st->reloads,
                       adm_time_text(st->reloaded, when, sizeof(when)));
    else
        adm_reply_line(r, "reloads 0");
    bal_snapshot_unref(snap);
    return ADM_OK;
}

enum adm_result
adm_cmd_quit(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
             struct adm_reply *r)
{
    XF_UNUSED(st);
    XF_UNUSED(peer);
    XF_UNUSED(a);
    adm_reply_line(r, "ok: bye");
    return ADM_CLOSE;
}
