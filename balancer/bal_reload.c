/* balancer/bal_reload.c -- the routing snapshot a configuration reload puts in force: the new
 * file's clusters with the running process's state carried over. Pure: no I/O. */
#include "balancer/bal.h"

#include <string.h>

#include <xxhash.h>

/* The index of the node at `text` in cfg cluster `cl`, or -1. Nodes are matched by their address
 * as written, as the state file's node changes are. */
static long
bal_reload_cfg_find(const struct cfg_cluster *cl, const char *text)
{
    for (size_t i = 0; i < cl->n_nodes; i++)
        if (strcmp(cl->nodes[i].addr.text, text) == 0)
            return (long)i;
    return -1;
}

/* Whether any cluster of `cfg` lists `text`. */
static bool
bal_reload_cfg_has(const struct cfg *cfg, const char *text)
{
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++)
        if (bal_reload_cfg_find(&cfg->clusters[c], text) != -1)
            return true;
    return false;
}

/* The node at `text` in cluster `cl` of a snapshot, or NULL. */
static const struct bal_node *
bal_reload_snap_find(const struct bal_cluster *cl, const char *text)
{
    for (size_t i = 0; i < cl->n_nodes; i++)
        if (strcmp(cl->nodes[i].addr.text, text) == 0)
            return &cl->nodes[i];
    return NULL;
}

/* Ids in use while the new snapshot is built: every node of the running one (a node the reload
 * removes still has requests in flight under its id) and those given out so far. */
struct bal_reload_ids {
    bool *taken; /* by id, n of them */
    uint32_t n;
    uint32_t max_id; /* ids run below this */
    bal_id_busy_fn busy;
    void *busy_arg;
};

/* The lowest id free for a node new in the file, or a new one past max_id. */
static uint32_t
bal_reload_id(struct bal_reload_ids *ids)
{
    for (uint32_t i = 0; i < ids->n; i++)
        if (!ids->taken[i] && (ids->busy == NULL || !ids->busy(ids->busy_arg, i))) {
            ids->taken[i] = true;
            return i;
        }
    return ids->max_id++;
}

/* Node `n` as the file `fn` describes it: address, weight and limits; health as a node that
 * just appeared (checked clusters wait for their checks). */
static void
bal_reload_node_new(struct bal_node *n, uint32_t id, enum cfg_cluster_id c, bool checked,
                    const struct cfg_node *fn)
{
    memset(n, 0, sizeof(*n));
    n->id = id;
    n->cluster = c;
    n->weight = fn->weight;
    n->state = BAL_NODE_UP;
    n->health = checked ? BAL_HEALTH_PENDING : BAL_HEALTH_UP;
    n->max_conns = fn->max_connections;
    n->max_pending = fn->max_pending;
    n->addr = fn->addr;
    n->hash = XXH3_64bits(n->addr.text, strlen(n->addr.text));
}

/* Fills cluster c of `next`: the new file's nodes in its order, then the nodes the operator
 * added at run time that the new file does not list. */
static void
bal_reload_cluster(struct bal_snapshot *next, const struct bal_snapshot *cur, const struct cfg *old,
                   const struct cfg *new, enum cfg_cluster_id c, struct bal_reload_ids *ids)
{
    const struct cfg_cluster *oc = &old->clusters[c], *nc = &new->clusters[c];
    const struct bal_cluster *cc = &cur->clusters[c];
    struct bal_cluster *dst = &next->clusters[c];

    dst->balance = nc->balance;
    dst->failover = nc->failover;
    dst->checked = nc->health.enabled;
    dst->max_conns = nc->max_connections;
    dst->max_pending = nc->max_pending;
    for (size_t i = 0; i < nc->n_nodes; i++) {
        const struct cfg_node *fn = &nc->nodes[i];
        const struct bal_node *running = bal_reload_snap_find(cc, fn->addr.text);
        long was = bal_reload_cfg_find(oc, fn->addr.text);
        struct bal_node *n = &dst->nodes[dst->n_nodes];

        if (was != -1 && running == NULL)
            continue; /* deleted by the operator: it stays deleted */
        if (running == NULL) {
            bal_reload_node_new(n, bal_reload_id(ids), c, dst->checked, fn);
        } else {
            *n = *running; /* id, state, health, slow start */
            /* A weight the operator set (it differs from the old file's) is kept; otherwise
             * the file's. A node the operator added and the file now lists takes the file's. */
            if (was == -1 || running->weight == oc->nodes[was].weight)
                n->weight = fn->weight;
            n->max_conns = fn->max_connections;
            n->max_pending = fn->max_pending;
            n->addr = fn->addr; /* the same text; the address resolved now */
        }
        dst->n_nodes++;
    }
    for (size_t i = 0; i < cc->n_nodes; i++) {
        const struct bal_node *running = &cc->nodes[i];

        /* Added by the operator (no file listed it) and not in the new file: kept. */
        if (!bal_reload_cfg_has(old, running->addr.text) &&
            !bal_reload_cfg_has(new, running->addr.text))
            dst->nodes[dst->n_nodes++] = *running;
    }
    for (size_t i = 0; i < dst->n_nodes; i++) {
        struct bal_node *n = &dst->nodes[i];

        /* Without checks any more: what they said no longer holds (an ejection does). */
        if (!dst->checked && (n->health == BAL_HEALTH_DOWN || n->health == BAL_HEALTH_PENDING))
            n->health = BAL_HEALTH_UP;
        if (n->id >= ids->max_id)
            ids->max_id = n->id + 1;
    }
}

struct bal_snapshot *
bal_snapshot_reload(const struct bal_snapshot *cur, const struct cfg *old, const struct cfg *new,
                    bal_id_busy_fn busy, void *arg, uint64_t version, struct xf_err *err)
{
    struct bal_snapshot *next = calloc(1, sizeof(*next));
    struct bal_reload_ids ids = {
        .n = cur->max_id, .max_id = cur->max_id, .busy = busy, .busy_arg = arg};

    ids.taken = calloc(cur->max_id ? cur->max_id : 1, sizeof(*ids.taken));
    if (next == NULL || ids.taken == NULL)
        goto oom;
    atomic_init(&next->refs, 1);
    next->version = version;
    next->weight_bp = cur->weight_bp;
    next->cfg = cfg_ref(new);
    next->split = &new->split;
    next->seed_hash = bal_seed_hash(new->split.seed);
    memcpy(next->epoch, cur->epoch, sizeof(next->epoch));
    next->freeze = cur->freeze;
    next->freeze_since = cur->freeze_since;
    next->pins = bal_pins_ref(cur->pins);
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++)
        for (size_t i = 0; i < cur->clusters[c].n_nodes; i++)
            if (cur->clusters[c].nodes[i].id < ids.n)
                ids.taken[cur->clusters[c].nodes[i].id] = true;
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++) {
        size_t cap = new->clusters[c].n_nodes + cur->clusters[c].n_nodes;

        next->clusters[c].nodes = calloc(cap ? cap : 1, sizeof(*next->clusters[c].nodes));
        if (next->clusters[c].nodes == NULL)
            goto oom;
        bal_reload_cluster(next, cur, old, new, (enum cfg_cluster_id)c, &ids);
    }
    next->max_id = ids.max_id;
    free(ids.taken);
    if (bal_snapshot_rebuild(next, err) == -1) {
        bal_snapshot_unref(next);
        return NULL;
    }
    return next;
oom:
    free(ids.taken);
    bal_snapshot_unref(next);
    xf_err_set(err, "out of memory building the routing snapshot");
    return NULL;
}
