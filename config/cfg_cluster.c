/* config/cfg_cluster.c -- reads `clusters`: nodes, balance, failover, limits, health, outlier,
 * slow start. */
#include "config/cfg_int.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "common/xf.h"

#define CFG_DEFAULT_HEALTH_PATH "/status"
#define CFG_HEALTH_PATH_MAX     1024
#define CFG_HEALTH_HOST_MAX     255     /* a DNS name, and the most a Host header needs */
#define CFG_NODE_LIMIT_MAX      1000000 /* max_connections and max_pending, per node */

/* The schema of a cluster, as in cfg_load.c: one key list per mapping, indexed by an enum. */
static const char *const cfg_cluster_names[CFG_CLUSTER_COUNT] = {"x", "y"};

enum cfg_cluster_key {
    CFG_CLUSTER_NODES = 0,
    CFG_CLUSTER_BALANCE,
    CFG_CLUSTER_FAILOVER,
    CFG_CLUSTER_MAX_CONNECTIONS,
    CFG_CLUSTER_MAX_PENDING,
    CFG_CLUSTER_HEALTH,
    CFG_CLUSTER_OUTLIER,
    CFG_CLUSTER_SLOW_START,
    CFG_CLUSTER_RESOLVE_INTERVAL,
    CFG_CLUSTER_TLS,
    CFG_CLUSTER_PROXY_PROTOCOL,
    CFG_CLUSTER_MAX_IDLE,
    CFG_CLUSTER_KEY_COUNT,
};
static const char *const cfg_cluster_keys[CFG_CLUSTER_KEY_COUNT] = {
    "nodes",          "balance",  "failover",   "max_connections",  "max_pending",
    "health",         "outlier",  "slow_start", "resolve_interval", "tls",
    "proxy_protocol", "max_idle",
};
static const char *const cfg_balance_names[] = {"hash", "round_robin", "least_conn"}; /* by enum */
static const char *const cfg_pp_names[] = {"off", "v1", "v2"}; /* by version */

enum cfg_node_key {
    CFG_NODE_ADDRESS = 0,
    CFG_NODE_WEIGHT,
    CFG_NODE_MAX_CONNECTIONS,
    CFG_NODE_MAX_PENDING,
    CFG_NODE_COUNT,
};
static const char *const cfg_node_keys[CFG_NODE_COUNT] = {"address", "weight", "max_connections",
                                                          "max_pending"};

enum cfg_health_key {
    CFG_HEALTH_PATH = 0,
    CFG_HEALTH_HOST,
    CFG_HEALTH_PORT,
    CFG_HEALTH_INTERVAL,
    CFG_HEALTH_TIMEOUT,
    CFG_HEALTH_RISE,
    CFG_HEALTH_FALL,
    CFG_HEALTH_EXPECT,
    CFG_HEALTH_COUNT,
};
static const char *const cfg_health_keys[CFG_HEALTH_COUNT] = {
    "path", "host", "port", "interval", "timeout", "rise", "fall", "expect",
};

enum cfg_outlier_key {
    CFG_OUTLIER_FAILURES = 0,
    CFG_OUTLIER_EJECTION,
    CFG_OUTLIER_MAX_EJECTION,
    CFG_OUTLIER_COUNT,
};
static const char *const cfg_outlier_keys[CFG_OUTLIER_COUNT] = {"failures", "ejection",
                                                                "max_ejection"};

/* ---- Typed values -------------------------------------------------------------------------- */

/* Writes `ms` (above 0) as the shortest duration cfg_duration_parse reads back: "1m30s". */
static const char *
cfg_show_ms(char *buf, size_t size, unsigned ms)
{
    static const struct {
        const char *name;
        unsigned ms;
    } units[] = {{"h", 3600000u}, {"m", 60000u}, {"s", 1000u}, {"ms", 1u}};
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < XF_ARRAY_LEN(units) && used < size; i++) {
        int n;

        if (ms / units[i].ms == 0)
            continue;
        n = snprintf(buf + used, size - used, "%u%s", ms / units[i].ms, units[i].name);
        if (n < 0)
            break;
        used += (size_t)n;
        ms %= units[i].ms;
    }
    return buf;
}

/*
 * Reads a string of 1 to `max` visible ASCII characters (no space, control or 8-bit byte): a
 * health check's path or Host, which go on the request as written.
 */
static int
cfg_get_visible(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
                const char *what, size_t max, char **dst)
{
    char shown[CFG_SHOW_SIZE];
    const char *text = cfg_scalar(ctx, node, path, what);
    size_t len;

    if (text == NULL)
        return -1;
    len = strlen(text);
    if (len == 0)
        return cfg_fail(ctx, node, path, "expected %s, got \"\"", what);
    if (len > max)
        return cfg_fail(ctx, node, path, "expected at most %zu bytes, got %zu", max, len);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];

        if (c <= 0x20 || c >= 0x7f)
            return cfg_fail(ctx, node, path, "expected printable ASCII without spaces, got %s",
                            cfg_show_str(shown, text));
    }
    return cfg_set_string(ctx, dst, text);
}

/*
 * clusters.NAME.health.path: the target of the check's GET in origin form, a path and maybe a
 * query. A fragment is never sent on the wire, so a '#' is refused rather than sent.
 */
static int
cfg_get_health_path(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
                    char **dst)
{
    static const char what[] = "a path such as /status";
    char shown[CFG_SHOW_SIZE];
    const char *text = cfg_scalar(ctx, node, path, what);

    if (text == NULL)
        return -1;
    if (text[0] != '\0' && text[0] != '/')
        return cfg_fail(ctx, node, path, "expected %s, starting with \"/\", got %s", what,
                        cfg_show_str(shown, text));
    if (strchr(text, '#') != NULL)
        return cfg_fail(ctx, node, path, "expected %s, without a fragment ('#'), got %s", what,
                        cfg_show_str(shown, text));
    return cfg_get_visible(ctx, node, path, what, CFG_HEALTH_PATH_MAX, dst);
}

/* An HTTP status as a check may expect it: three digits, 100 to 599. Returns 0 or -1. */
static int
cfg_status_parse(const char *text, size_t len, unsigned *out)
{
    unsigned n = 0;

    if (len != 3)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -1;
        n = n * 10 + (unsigned)(text[i] - '0');
    }
    if (n < 100 || n > 599)
        return -1;
    *out = n;
    return 0;
}

/* clusters.NAME.health.expect: one status ("200", or 200 as an integer) or a range "200-399". */
static int
cfg_get_expect(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
               struct cfg_health *h)
{
    static const char what[] = "a status such as 200 or a range such as 200-399, from 100 to 599";
    char shown[CFG_SHOW_SIZE];
    const char *text = cfg_scalar(ctx, node, path, what), *dash;
    unsigned lo, hi;

    if (text == NULL)
        return -1;
    cfg_show_str(shown, text);
    dash = strchr(text, '-');
    if (dash == NULL) {
        if (cfg_status_parse(text, strlen(text), &lo) == -1)
            return cfg_fail(ctx, node, path, "expected %s, got %s", what, shown);
        hi = lo;
    } else if (cfg_status_parse(text, (size_t)(dash - text), &lo) == -1 ||
               cfg_status_parse(dash + 1, strlen(dash + 1), &hi) == -1) {
        return cfg_fail(ctx, node, path, "expected %s, got %s", what, shown);
    }
    if (lo > hi)
        return cfg_fail(ctx, node, path, "expected the lower status first, as in %u-%u, got %s", hi,
                        lo, shown);
    h->expect_min = lo;
    h->expect_max = hi;
    return 0;
}

/* ---- Clusters ------------------------------------------------------------------------------ */

/* Checks that the node at `i` of cluster `id` appears nowhere before it, in this cluster or x. */
static int
cfg_check_node_unique(const struct cfg_ctx *ctx, const yaml_node_t *at, const char *path,
                      enum cfg_cluster_id id, size_t i)
{
    const struct cfg_cluster *clusters = ctx->cfg->clusters;
    const struct cfg_addr *addr = &clusters[id].nodes[i].addr;
    char shown[CFG_SHOW_SIZE];

    cfg_show_str(shown, addr->text);
    for (size_t j = 0; j < i; j++) {
        if (cfg_addr_same(addr, &clusters[id].nodes[j].addr))
            return cfg_fail(ctx, at, path,
                            "expected each node once, got %s again (as clusters.%s.nodes[%zu])",
                            shown, cfg_cluster_names[id], j);
    }
    for (size_t j = 0; id == CFG_CLUSTER_Y && j < clusters[CFG_CLUSTER_X].n_nodes; j++) {
        if (cfg_addr_same(addr, &clusters[CFG_CLUSTER_X].nodes[j].addr))
            return cfg_fail(ctx, at, path,
                            "expected a node in one cluster only, got %s, which is also "
                            "clusters.x.nodes[%zu]",
                            shown, j);
    }
    return 0;
}

/*
 * One entry of clusters.<id>.nodes: "host:port", or {address: "host:port", weight: N,
 * max_connections: N, max_pending: N}. The limits left out are the cluster's, which the caller
 * has read already.
 */
static int
cfg_walk_node(const struct cfg_ctx *ctx, const yaml_node_t *item, const char *nodes_path,
              enum cfg_cluster_id id, size_t i)
{
    const struct cfg_cluster *cluster = &ctx->cfg->clusters[id];
    struct cfg_node *node = &cluster->nodes[i];
    char path[CFG_PATH_MAX], addr_path[CFG_PATH_MAX], sub[CFG_PATH_MAX];
    char shown[CFG_SHOW_SIZE];
    yaml_node_t *v[CFG_NODE_COUNT] = {NULL};
    const yaml_node_t *addr_node = item;

    cfg_path_index(path, nodes_path, i);
    memcpy(addr_path, path, sizeof(path));
    node->weight = 1;
    node->max_connections = cluster->max_connections;
    node->max_pending = cluster->max_pending;
    if (item->type == YAML_SEQUENCE_NODE)
        return cfg_fail(ctx, item, path,
                        "expected an address or a mapping with address and weight, got %s",
                        cfg_got(item, shown));
    if (item->type == YAML_MAPPING_NODE) {
        if (cfg_map_lookup(ctx, item, path, cfg_node_keys, CFG_NODE_COUNT, v) == -1)
            return -1;
        cfg_path_key(addr_path, path, "address");
        if (v[CFG_NODE_ADDRESS] == NULL)
            return cfg_fail(ctx, item, addr_path,
                            "expected an address such as 10.0.0.1:8000, got nothing");
        addr_node = v[CFG_NODE_ADDRESS];
    }
    if (cfg_get_addr(ctx, addr_node, addr_path, &node->addr) == -1 ||
        cfg_check_node_unique(ctx, addr_node, addr_path, id, i) == -1)
        return -1;
    if (item->type != YAML_MAPPING_NODE)
        return 0;
    if (v[CFG_NODE_WEIGHT] != NULL &&
        cfg_get_unsigned(ctx, v[CFG_NODE_WEIGHT], cfg_path_key(sub, path, "weight"), 0, 1000,
                         &node->weight) == -1)
        return -1;
    if (v[CFG_NODE_MAX_CONNECTIONS] != NULL &&
        cfg_get_unsigned(ctx, v[CFG_NODE_MAX_CONNECTIONS],
                         cfg_path_key(sub, path, "max_connections"), 0, CFG_NODE_LIMIT_MAX,
                         &node->max_connections) == -1)
        return -1;
    if (v[CFG_NODE_MAX_PENDING] != NULL &&
        cfg_get_unsigned(ctx, v[CFG_NODE_MAX_PENDING], cfg_path_key(sub, path, "max_pending"), 0,
                         CFG_NODE_LIMIT_MAX, &node->max_pending) == -1)
        return -1;
    return 0;
}

/* clusters.NAME.balance: how a cluster spreads its requests over its nodes. */
/*
 * clusters.NAME.health (`path` is "clusters.NAME.health"): present, it turns the checks on with
 * a default for each key left out. The timeout may not exceed the interval, so that a node has at
 * most one check in flight.
 */
static int
cfg_walk_health(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
                struct cfg_health *h)
{
    unsigned *const dst[CFG_HEALTH_COUNT] = {
        [CFG_HEALTH_INTERVAL] = &h->interval_ms,
        [CFG_HEALTH_TIMEOUT] = &h->timeout_ms,
        [CFG_HEALTH_RISE] = &h->rise,
        [CFG_HEALTH_FALL] = &h->fall,
    };
    char sub[CFG_PATH_MAX], a[32], b[32];
    yaml_node_t *v[CFG_HEALTH_COUNT];
    unsigned port;

    if (cfg_map_lookup(ctx, node, path, cfg_health_keys, CFG_HEALTH_COUNT, v) == -1 ||
        cfg_set_string(ctx, &h->path, CFG_DEFAULT_HEALTH_PATH) == -1)
        return -1;
    h->enabled = true;
    if (v[CFG_HEALTH_PATH] != NULL &&
        cfg_get_health_path(ctx, v[CFG_HEALTH_PATH], cfg_path_key(sub, path, "path"), &h->path) ==
            -1)
        return -1;
    if (v[CFG_HEALTH_HOST] != NULL &&
        cfg_get_visible(ctx, v[CFG_HEALTH_HOST], cfg_path_key(sub, path, "host"),
                        "a host such as status.local", CFG_HEALTH_HOST_MAX, &h->host) == -1)
        return -1;
    if (v[CFG_HEALTH_PORT] != NULL) {
        if (cfg_get_unsigned(ctx, v[CFG_HEALTH_PORT], cfg_path_key(sub, path, "port"), 1, 65535,
                             &port) == -1)
            return -1;
        h->port = (uint16_t)port;
    }
    for (size_t k = CFG_HEALTH_INTERVAL; k <= CFG_HEALTH_FALL; k++) {
        int rc;

        if (v[k] == NULL)
            continue;
        cfg_path_key(sub, path, cfg_health_keys[k]);
        if (k == CFG_HEALTH_INTERVAL || k == CFG_HEALTH_TIMEOUT)
            rc = cfg_get_timeout(ctx, v[k], sub, dst[k]);
        else
            rc = cfg_get_unsigned(ctx, v[k], sub, 1, 100, dst[k]);
        if (rc == -1)
            return -1;
    }
    if (v[CFG_HEALTH_EXPECT] != NULL &&
        cfg_get_expect(ctx, v[CFG_HEALTH_EXPECT], cfg_path_key(sub, path, "expect"), h) == -1)
        return -1;
    if (h->timeout_ms <= h->interval_ms)
        return 0;
    cfg_show_ms(a, sizeof(a), h->interval_ms);
    cfg_show_ms(b, sizeof(b), h->timeout_ms);
    if (v[CFG_HEALTH_TIMEOUT] != NULL)
        return cfg_fail(ctx, v[CFG_HEALTH_TIMEOUT], cfg_path_key(sub, path, "timeout"),
                        "expected at most interval (%s), got %s", a, b);
    return cfg_fail(ctx, v[CFG_HEALTH_INTERVAL], cfg_path_key(sub, path, "interval"),
                    "expected at least timeout (%s), got %s", b, a);
}

/* clusters.NAME.outlier (`path` is "clusters.NAME.outlier"); defaults fill what is left out. */
static int
cfg_walk_outlier(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
                 struct cfg_outlier *o)
{
    char sub[CFG_PATH_MAX], a[32], b[32];
    yaml_node_t *v[CFG_OUTLIER_COUNT];

    if (cfg_map_lookup(ctx, node, path, cfg_outlier_keys, CFG_OUTLIER_COUNT, v) == -1)
        return -1;
    if (v[CFG_OUTLIER_FAILURES] != NULL &&
        cfg_get_unsigned(ctx, v[CFG_OUTLIER_FAILURES], cfg_path_key(sub, path, "failures"), 0, 1000,
                         &o->failures) == -1)
        return -1;
    if (v[CFG_OUTLIER_EJECTION] != NULL &&
        cfg_get_timeout(ctx, v[CFG_OUTLIER_EJECTION], cfg_path_key(sub, path, "ejection"),
                        &o->ejection_ms) == -1)
        return -1;
    if (v[CFG_OUTLIER_MAX_EJECTION] != NULL &&
        cfg_get_timeout(ctx, v[CFG_OUTLIER_MAX_EJECTION], cfg_path_key(sub, path, "max_ejection"),
                        &o->max_ejection_ms) == -1)
        return -1;
    /* The ejection doubles up to max_ejection: a maximum below the first would be no maximum. */
    if (o->ejection_ms <= o->max_ejection_ms)
        return 0;
    cfg_show_ms(a, sizeof(a), o->ejection_ms);
    cfg_show_ms(b, sizeof(b), o->max_ejection_ms);
    if (v[CFG_OUTLIER_MAX_EJECTION] != NULL)
        return cfg_fail(ctx, v[CFG_OUTLIER_MAX_EJECTION], cfg_path_key(sub, path, "max_ejection"),
                        "expected at least ejection (%s), got %s", a, b);
    return cfg_fail(ctx, v[CFG_OUTLIER_EJECTION], cfg_path_key(sub, path, "ejection"),
                    "expected at most max_ejection (%s), got %s", b, a);
}

/* clusters.NAME.nodes (`path` is "clusters.NAME"), after the cluster's node limits are read. */
static int
cfg_walk_nodes(const struct cfg_ctx *ctx, const yaml_node_t *cluster_node, const yaml_node_t *nodes,
               const char *path, enum cfg_cluster_id id)
{
    static const char what[] = "a sequence of at least one node address";
    struct cfg_cluster *cluster = &ctx->cfg->clusters[id];
    char nodes_path[CFG_PATH_MAX], shown[CFG_SHOW_SIZE];
    size_t n;

    cfg_path_key(nodes_path, path, "nodes");
    if (nodes == NULL)
        return cfg_fail(ctx, cluster_node, nodes_path, "expected %s, got nothing", what);
    if (nodes->type != YAML_SEQUENCE_NODE || cfg_seq_len(nodes) == 0)
        return cfg_fail(ctx, nodes, nodes_path, "expected %s, got %s", what, cfg_got(nodes, shown));
    n = cfg_seq_len(nodes);
    cluster->nodes = calloc(n, sizeof(*cluster->nodes));
    if (cluster->nodes == NULL)
        return cfg_oom(ctx);
    for (size_t i = 0; i < n; i++) {
        cluster->n_nodes = i + 1;
        if (cfg_walk_node(ctx, cfg_node(ctx, nodes->data.sequence.items.start[i]), nodes_path, id,
                          i) == -1)
            return -1;
    }
    return 0;
}

/*
 * One cluster. Its max_connections and max_pending are read before the nodes, wherever they
 * stand in the mapping, so that each node holds its effective limits.
 */
static int
cfg_walk_cluster(const struct cfg_ctx *ctx, const yaml_node_t *node, enum cfg_cluster_id id)
{
    struct cfg_cluster *cluster = &ctx->cfg->clusters[id];
    char path[CFG_PATH_MAX], sub[CFG_PATH_MAX];
    yaml_node_t *v[CFG_CLUSTER_KEY_COUNT];

    cfg_path_key(path, "clusters", cfg_cluster_names[id]);
    if (cfg_map_lookup(ctx, node, path, cfg_cluster_keys, CFG_CLUSTER_KEY_COUNT, v) == -1)
        return -1;
    if (v[CFG_CLUSTER_MAX_CONNECTIONS] != NULL &&
        cfg_get_unsigned(ctx, v[CFG_CLUSTER_MAX_CONNECTIONS],
                         cfg_path_key(sub, path, "max_connections"), 0, CFG_NODE_LIMIT_MAX,
                         &cluster->max_connections) == -1)
        return -1;
    if (v[CFG_CLUSTER_MAX_PENDING] != NULL &&
        cfg_get_unsigned(ctx, v[CFG_CLUSTER_MAX_PENDING], cfg_path_key(sub, path, "max_pending"), 0,
                         CFG_NODE_LIMIT_MAX, &cluster->max_pending) == -1)
        return -1;
    if (cfg_walk_nodes(ctx, node, v[CFG_CLUSTER_NODES], path, id) == -1)
        return -1;
    if (v[CFG_CLUSTER_MAX_IDLE] != NULL) {
        const yaml_node_t *m = v[CFG_CLUSTER_MAX_IDLE];
        const char *text = m->type == YAML_SCALAR_NODE ? (const char *)m->data.scalar.value : "";
        char shown[CFG_SHOW_SIZE];

        cfg_path_key(sub, path, "max_idle");
        if (strcmp(text, "auto") == 0)
            cluster->max_idle = CFG_MAX_IDLE_AUTO;
        else if (text[0] < '0' || text[0] > '9')
            return cfg_fail(
                ctx, m, sub, "expected auto or a number of connections from 0 to %u, got %s",
                CFG_NODE_LIMIT_MAX,
                m->type == YAML_SCALAR_NODE ? cfg_show_str(shown, text) : "a collection");
        else if (cfg_get_unsigned(ctx, m, sub, 0, CFG_NODE_LIMIT_MAX, &cluster->max_idle) == -1)
            return -1;
    }
    if (v[CFG_CLUSTER_BALANCE] != NULL) {
        unsigned b;

        if (cfg_get_choice(ctx, v[CFG_CLUSTER_BALANCE], cfg_path_key(sub, path, "balance"),
                           cfg_balance_names, XF_ARRAY_LEN(cfg_balance_names),
                           "hash, round_robin or least_conn", &b) == -1)
            return -1;
        cluster->balance = (enum cfg_balance)b;
    }
    if (v[CFG_CLUSTER_PROXY_PROTOCOL] != NULL &&
        cfg_get_choice(ctx, v[CFG_CLUSTER_PROXY_PROTOCOL],
                       cfg_path_key(sub, path, "proxy_protocol"), cfg_pp_names,
                       XF_ARRAY_LEN(cfg_pp_names), "v1, v2 or off", &cluster->proxy_protocol) == -1)
        return -1;
    if (v[CFG_CLUSTER_FAILOVER] != NULL &&
        cfg_get_bool(ctx, v[CFG_CLUSTER_FAILOVER], cfg_path_key(sub, path, "failover"),
                     &cluster->failover) == -1)
        return -1;
    if (v[CFG_CLUSTER_HEALTH] != NULL &&
        cfg_walk_health(ctx, v[CFG_CLUSTER_HEALTH], cfg_path_key(sub, path, "health"),
                        &cluster->health) == -1)
        return -1;
    if (v[CFG_CLUSTER_OUTLIER] != NULL &&
        cfg_walk_outlier(ctx, v[CFG_CLUSTER_OUTLIER], cfg_path_key(sub, path, "outlier"),
                         &cluster->outlier) == -1)
        return -1;
    if (v[CFG_CLUSTER_SLOW_START] != NULL &&
        cfg_get_timeout(ctx, v[CFG_CLUSTER_SLOW_START], cfg_path_key(sub, path, "slow_start"),
                        &cluster->slow_start_ms) == -1)
        return -1;
    if (v[CFG_CLUSTER_RESOLVE_INTERVAL] != NULL) {
        char shown[CFG_SHOW_SIZE];

        if (cfg_get_timeout(ctx, v[CFG_CLUSTER_RESOLVE_INTERVAL],
                            cfg_path_key(sub, path, "resolve_interval"),
                            &cluster->resolve_interval_ms) == -1)
            return -1;
        /* Every node's host name is looked up each interval: more often than a second would
         * flood the resolver for nothing (DNS answers live seconds at least). */
        if (cluster->resolve_interval_ms < 1000)
            return cfg_fail(ctx, v[CFG_CLUSTER_RESOLVE_INTERVAL], sub,
                            "expected a duration from 1s to 24h, got %s",
                            cfg_got(v[CFG_CLUSTER_RESOLVE_INTERVAL], shown));
    }
    if (v[CFG_CLUSTER_TLS] != NULL &&
        cfg_walk_cluster_tls(ctx, v[CFG_CLUSTER_TLS], cfg_path_key(sub, path, "tls"), cluster) ==
            -1)
        return -1;
    if (cluster->proxy_protocol != 0 && cluster->tls != NULL)
        return cfg_fail(ctx, v[CFG_CLUSTER_PROXY_PROTOCOL],
                        cfg_path_key(sub, path, "proxy_protocol"),
                        "expected off on a cluster with tls: the PROXY header goes before the TLS "
                        "handshake, which crossfade does not send that way (pass TLS through a "
                        "tcp-mode listener to a plain cluster instead)");
    return 0;
}

int
cfg_walk_clusters(const struct cfg_ctx *ctx, const yaml_node_t *root, const yaml_node_t *node)
{
    char shown[CFG_SHOW_SIZE], path[CFG_PATH_MAX];
    yaml_node_t *v[CFG_CLUSTER_COUNT];

    if (node == NULL)
        return cfg_fail(ctx, root, "clusters",
                        "expected a mapping with clusters x and y, got "
                        "nothing");
    if (node->type == YAML_MAPPING_NODE) {
        /* Name the mistake for what it is: the two sides of an upgrade are x and y, always. */
        const yaml_node_pair_t *pair;

        for (pair = node->data.mapping.pairs.start; pair < node->data.mapping.pairs.top; pair++) {
            const yaml_node_t *key = cfg_node(ctx, pair->key);

            if (key->type == YAML_SCALAR_NODE && !cfg_scalar_is(key, "x") &&
                !cfg_scalar_is(key, "y"))
                return cfg_fail(
                    ctx, key, "clusters", "expected cluster x or y, got %s",
                    cfg_show(shown, (const char *)key->data.scalar.value, key->data.scalar.length));
        }
    }
    if (cfg_map_lookup(ctx, node, "clusters", cfg_cluster_names, CFG_CLUSTER_COUNT, v) == -1)
        return -1;
    for (int id = CFG_CLUSTER_X; id < CFG_CLUSTER_COUNT; id++) {
        if (v[id] == NULL)
            return cfg_fail(ctx, node, cfg_path_key(path, "clusters", cfg_cluster_names[id]),
                            "expected a cluster with nodes (both x and y are required), got "
                            "nothing");
        if (cfg_walk_cluster(ctx, v[id], (enum cfg_cluster_id)id) == -1)
            return -1;
    }
    return 0;
}

const char *
cfg_cluster_name(enum cfg_cluster_id id)
{
    return (unsigned)id < CFG_CLUSTER_COUNT ? cfg_cluster_names[id] : "?";
}
