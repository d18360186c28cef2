/* config/cfg_diff.c -- what a reload would change, from the running configuration to a new one:
 * counted per part, with the changes that cannot be applied live named. Pure: no I/O. */
#include "config/cfg.h"

#include <stdio.h>
#include <string.h>

static bool
cfg_diff_str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

/* Two addresses are the same when they resolve to the same socket address. */
static bool
cfg_diff_addr_eq(const struct cfg_addr *a, const struct cfg_addr *b)
{
    return a->sa_len == b->sa_len && memcmp(&a->sa, &b->sa, a->sa_len) == 0;
}

static bool
cfg_diff_listener_eq(const struct cfg_listener *a, const struct cfg_listener *b)
{
    return cfg_diff_addr_eq(&a->addr, &b->addr) && a->role == b->role &&
           a->node_port == b->node_port && a->mode == b->mode && a->key == b->key &&
           a->proxy_protocol == b->proxy_protocol;
}

/* The index of the node of `cl` at `addr`, or -1. */
static long
cfg_diff_node_find(const struct cfg_cluster *cl, const struct cfg_addr *addr)
{
    for (size_t i = 0; i < cl->n_nodes; i++)
        if (cfg_diff_addr_eq(&cl->nodes[i].addr, addr))
            return (long)i;
    return -1;
}

static bool
cfg_diff_health_eq(const struct cfg_health *a, const struct cfg_health *b)
{
    return a->enabled == b->enabled && cfg_diff_str_eq(a->path, b->path) &&
           cfg_diff_str_eq(a->host, b->host) && a->port == b->port &&
           a->interval_ms == b->interval_ms && a->timeout_ms == b->timeout_ms &&
           a->rise == b->rise && a->fall == b->fall && a->expect_min == b->expect_min &&
           a->expect_max == b->expect_max;
}

/* Whether the cluster-wide settings (not its nodes) are the same. */
static bool
cfg_diff_cluster_eq(const struct cfg_cluster *a, const struct cfg_cluster *b)
{
    return a->balance == b->balance && cfg_diff_health_eq(&a->health, &b->health) &&
           memcmp(&a->outlier, &b->outlier, sizeof(a->outlier)) == 0 &&
           a->failover == b->failover && a->max_connections == b->max_connections &&
           a->max_pending == b->max_pending && a->slow_start_ms == b->slow_start_ms &&
           a->resolve_interval_ms == b->resolve_interval_ms &&
           a->proxy_protocol == b->proxy_protocol && a->max_idle == b->max_idle;
}

static bool
cfg_diff_cidrs_eq(const struct cfg_cidr *a, size_t na, const struct cfg_cidr *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (a[i].family != b[i].family || a[i].prefix != b[i].prefix ||
            memcmp(a[i].addr, b[i].addr, sizeof(a[i].addr)) != 0)
            return false;
    return true;
}

/* The split's rules, its weight left out (the running weight is runtime state). */
static bool
cfg_diff_split_eq(const struct cfg_split *a, const struct cfg_split *b)
{
    if (a->n_keys != b->n_keys || !cfg_diff_str_eq(a->seed, b->seed) ||
        !cfg_diff_str_eq(a->override_header, b->override_header) ||
        !cfg_diff_str_eq(a->override_cookie, b->override_cookie) ||
        a->override_any != b->override_any || !cfg_diff_str_eq(a->expose, b->expose) ||
        !cfg_diff_cidrs_eq(a->trusted_proxies, a->n_trusted_proxies, b->trusted_proxies,
                           b->n_trusted_proxies) ||
        !cfg_diff_cidrs_eq(a->override_from, a->n_override_from, b->override_from,
                           b->n_override_from))
        return false;
    for (size_t i = 0; i < a->n_keys; i++)
        if (a->keys[i].kind != b->keys[i].kind ||
            !cfg_diff_str_eq(a->keys[i].name, b->keys[i].name))
            return false;
    return true;
}

/* Whether two fleet sections are the same: endpoints (in order), prefix, name and settings
 * (epoch_header aside: it applies to the next response, like split.expose). */
static bool
cfg_diff_fleet_eq(const struct cfg_fleet *a, const struct cfg_fleet *b)
{
    if (a->configured != b->configured || a->n_etcd != b->n_etcd ||
        a->local_fallback != b->local_fallback || a->timeout_ms != b->timeout_ms ||
        a->lease_ms != b->lease_ms || !cfg_diff_str_eq(a->prefix, b->prefix) ||
        !cfg_diff_str_eq(a->name, b->name))
        return false;
    for (size_t i = 0; i < a->n_etcd; i++)
        if (strcmp(a->etcd[i], b->etcd[i]) != 0)
            return false;
    return true;
}

int
cfg_diff(const struct cfg *old, const struct cfg *new, struct cfg_diff *d)
{
    memset(d, 0, sizeof(*d));
    /* What the process set up once and cannot move while it runs. */
    if (!cfg_diff_str_eq(old->admin_socket, new->admin_socket))
        snprintf(d->refused, sizeof(d->refused),
                 "admin.socket changed (%s -> %s): the admin socket cannot move while crossfade "
                 "runs; restart, or start the new one with --takeover",
                 old->admin_socket, new->admin_socket);
    else if (!cfg_diff_str_eq(old->admin_group, new->admin_group))
        snprintf(d->refused, sizeof(d->refused),
                 "admin.group changed: the admin socket's group is set when it is created; "
                 "restart to apply it");
    else if ((old->admin_http == NULL) != (new->admin_http == NULL) ||
             (old->admin_http != NULL && strcmp(old->admin_http->text, new->admin_http->text) != 0))
        snprintf(d->refused, sizeof(d->refused),
                 "admin.http changed: the status listener is opened at start-up; restart, or "
                 "start the new one with --takeover");
    else if (old->workers != new->workers)
        snprintf(d->refused, sizeof(d->refused),
                 "workers changed: the worker threads are started once; restart to apply it");
    else if (!cfg_diff_str_eq(old->state_file, new->state_file))
        snprintf(d->refused, sizeof(d->refused),
                 "state_file changed: the state file is read at start-up; restart to move it");
    else if (!cfg_diff_fleet_eq(&old->fleet, &new->fleet))
        snprintf(d->refused, sizeof(d->refused),
                 "fleet changed: the fleet's etcd and this instance's place in it are set at "
                 "start-up; restart, or start the new one with --takeover");
    if (d->refused[0] != '\0')
        return -1;
    for (size_t i = 0; i < new->n_listeners; i++) {
        size_t k = 0;

        while (k < old->n_listeners &&
               !cfg_diff_listener_eq(&old->listeners[k], &new->listeners[i]))
            k++;
        if (k == old->n_listeners)
            d->listeners_added++;
    }
    for (size_t k = 0; k < old->n_listeners; k++) {
        size_t i = 0;

        while (i < new->n_listeners &&
               !cfg_diff_listener_eq(&old->listeners[k], &new->listeners[i]))
            i++;
        if (i == new->n_listeners)
            d->listeners_removed++;
    }
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++) {
        const struct cfg_cluster *oc = &old->clusters[c], *nc = &new->clusters[c];

        for (size_t i = 0; i < nc->n_nodes; i++) {
            long k = cfg_diff_node_find(oc, &nc->nodes[i].addr);

            if (k == -1)
                d->nodes_added[c]++;
            else if (oc->nodes[k].weight != nc->nodes[i].weight ||
                     oc->nodes[k].max_connections != nc->nodes[i].max_connections ||
                     oc->nodes[k].max_pending != nc->nodes[i].max_pending)
                d->nodes_changed[c]++;
        }
        for (size_t k = 0; k < oc->n_nodes; k++)
            if (cfg_diff_node_find(nc, &oc->nodes[k].addr) == -1)
                d->nodes_removed[c]++;
        d->cluster_changed[c] = !cfg_diff_cluster_eq(oc, nc);
    }
    d->split_changed = !cfg_diff_split_eq(&old->split, &new->split);
    d->weight_in_file_changed = old->split.weight_bp != new->split.weight_bp;
    d->timeouts_changed = memcmp(&old->timeouts, &new->timeouts, sizeof(old->timeouts)) != 0;
    d->limits_changed = memcmp(&old->limits, &new->limits, sizeof(old->limits)) != 0;
    d->retries_changed = old->retries != new->retries;
    /* The format and the sample count as the log's: a reload applies them as it does a path. */
    d->access_log_changed = !cfg_diff_str_eq(old->access_log, new->access_log) ||
                            old->access_log_format != new->access_log_format ||
                            old->access_log_sample != new->access_log_sample;
    d->log_level_changed = old->log_level != new->log_level;
    d->guard_changed = memcmp(&old->guard, &new->guard, sizeof(old->guard)) != 0;
    d->epoch_header_changed = !cfg_diff_str_eq(old->fleet.epoch_header, new->fleet.epoch_header);
    d->test_traffic_changed =
        !cfg_diff_str_eq(old->test_traffic.header, new->test_traffic.header) ||
        !cfg_diff_cidrs_eq(old->test_traffic.sources, old->test_traffic.n_sources,
                           new->test_traffic.sources, new->test_traffic.n_sources);
    for (size_t i = 0; i < new->n_listeners; i++)
        d->tls_reread |= new->listeners[i].tls != NULL;
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++)
        d->tls_reread |= new->clusters[c].tls != NULL;
    return 0;
}

/* Appends ", what" (or "what" first) to buf at *off, never past size. */
static void
cfg_diff_add(char *buf, size_t size, size_t *off, bool on, const char *what)
{
    int n;

    if (!on || *off >= size)
        return;
    n = snprintf(buf + *off, size - *off, "; %s", what);
    if (n > 0)
        *off += (size_t)n;
}

size_t
cfg_diff_text(const struct cfg_diff *d, char *buf, size_t size)
{
    static const char *const names[CFG_CLUSTER_COUNT] = {"x", "y"};
    size_t off = 0;
    int n;

    if (size == 0)
        return 0;
    n = snprintf(buf, size, "listeners +%u -%u", d->listeners_added, d->listeners_removed);
    off = n > 0 ? XF_MIN((size_t)n, size - 1) : 0;
    for (int c = 0; c < CFG_CLUSTER_COUNT && off < size; c++) {
        n = snprintf(buf + off, size - off, "; %s nodes +%u -%u", names[c], d->nodes_added[c],
                     d->nodes_removed[c]);
        if (n > 0)
            off += (size_t)n;
        if (d->nodes_changed[c] > 0 && off < size) {
            n = snprintf(buf + off, size - off, " ~%u", d->nodes_changed[c]);
            if (n > 0)
                off += (size_t)n;
        }
    }
    cfg_diff_add(buf, size, &off, d->cluster_changed[CFG_CLUSTER_X], "cluster x changed");
    cfg_diff_add(buf, size, &off, d->cluster_changed[CFG_CLUSTER_Y], "cluster y changed");
    cfg_diff_add(buf, size, &off, d->split_changed, "split changed");
    cfg_diff_add(buf, size, &off, d->timeouts_changed, "timeouts changed");
    cfg_diff_add(buf, size, &off, d->limits_changed, "limits changed");
    cfg_diff_add(buf, size, &off, d->retries_changed, "retries changed");
    cfg_diff_add(buf, size, &off, d->access_log_changed, "access_log changed");
    cfg_diff_add(buf, size, &off, d->log_level_changed, "log_level changed");
    cfg_diff_add(buf, size, &off, d->guard_changed, "guard changed");
    cfg_diff_add(buf, size, &off, d->test_traffic_changed, "test_traffic changed");
    cfg_diff_add(buf, size, &off, d->epoch_header_changed, "fleet.epoch_header changed");
    cfg_diff_add(buf, size, &off, d->tls_reread, "certificates read again");
    cfg_diff_add(buf, size, &off, d->weight_in_file_changed,
                 "split.weight in the file not applied (the weight in force is kept)");
    return XF_MIN(off, size - 1);
}
