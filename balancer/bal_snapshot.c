/* balancer/bal_snapshot.c -- building, sharing and publishing immutable routing snapshots. */
#include "balancer/bal.h"

#include <string.h>

#include <xxhash.h>

/*
 * Fills `sched` with node indexes in smooth weighted round-robin order (the interleaving nginx
 * uses): weights 5,1,1 give a a b a c a a rather than a a a a a b c, so a burst of requests is
 * spread even over a short window. O(total weight x nodes), done once per snapshot.
 */
static unsigned long
bal_gcd(unsigned long a, unsigned long b)
{
    while (b != 0) {
        unsigned long t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/*
 * The weight of node i in the schedule: its weight, or while a node of the cluster warms up (slow
 * start) the effective weights reduced by their common divisor, so that a warming node of weight
 * 1 among others of weight 1 at 5 % gives a schedule of 41, not of 2 x 20 x 20.
 */
static unsigned long
bal_schedule_weight(const struct bal_cluster *cl, size_t i, unsigned long div)
{
    const struct bal_node *n = &cl->nodes[i];

    if (!bal_node_takes(n))
        return 0;
    return div == 0 ? n->weight : bal_node_eff_weight(n) / div;
}

static int
bal_schedule_build(struct bal_cluster *cl, struct xf_err *err)
{
    size_t total = 0;
    long *current = NULL;
    unsigned long div = 0;

    XF_FREE(cl->schedule);
    for (size_t i = 0; i < cl->n_nodes; i++)
        if (bal_node_takes(&cl->nodes[i]) && cl->nodes[i].warm != 0)
            div = 1; /* a node warms up: effective weights */
    if (div != 0) {
        div = 0;
        for (size_t i = 0; i < cl->n_nodes; i++)
            if (bal_node_takes(&cl->nodes[i]))
                div = bal_gcd(bal_node_eff_weight(&cl->nodes[i]), div);
    }
    for (size_t i = 0; i < cl->n_nodes; i++)
        total += bal_schedule_weight(cl, i, div);
    cl->n_schedule = total;
    if (total == 0)
        return 0;
    cl->schedule = calloc(total, sizeof(*cl->schedule));
    current = calloc(cl->n_nodes, sizeof(*current));
    if (cl->schedule == NULL || current == NULL) {
        xf_err_set(err, "out of memory building the node schedule");
        XF_FREE(current);
        return -1;
    }
    for (size_t k = 0; k < total; k++) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < cl->n_nodes; i++) {
            if (!bal_node_takes(&cl->nodes[i]))
                continue;
            current[i] += (long)bal_schedule_weight(cl, i, div);
            if (best == SIZE_MAX || current[i] > current[best])
                best = i;
        }
        current[best] -= (long)total;
        cl->schedule[k] = (uint32_t)best;
    }
    XF_FREE(current);
    return 0;
}

/* The id a node had in `prev` (same address), or UINT32_MAX. */
static uint32_t
bal_prev_id(const struct bal_snapshot *prev, const struct cfg_addr *addr)
{
    if (prev == NULL)
        return UINT32_MAX;
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++)
        for (size_t i = 0; i < prev->clusters[c].n_nodes; i++)
            if (strcmp(prev->clusters[c].nodes[i].addr.text, addr->text) == 0)
                return prev->clusters[c].nodes[i].id;
    return UINT32_MAX;
}

struct bal_snapshot *
bal_snapshot_new(const struct cfg *cfg, const struct bal_snapshot *prev, uint64_t version,
                 struct xf_err *err)
{
    struct bal_snapshot *snap = calloc(1, sizeof(*snap));
    uint32_t next_id = prev != NULL ? prev->max_id : 0;

    if (snap == NULL) {
        xf_err_set(err, "out of memory building the routing snapshot");
        return NULL;
    }
    atomic_init(&snap->refs, 1);
    snap->version = version;
    snap->weight_bp = cfg->split.weight_bp;
    snap->cfg = cfg_ref(cfg);
    snap->split = &cfg->split;
    snap->seed_hash = bal_seed_hash(cfg->split.seed);
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++) {
        const struct cfg_cluster *src = &cfg->clusters[c];
        struct bal_cluster *dst = &snap->clusters[c];

        dst->nodes = calloc(src->n_nodes ? src->n_nodes : 1, sizeof(*dst->nodes));
        if (dst->nodes == NULL) {
            xf_err_set(err, "out of memory building the routing snapshot");
            goto fail;
        }
        dst->n_nodes = src->n_nodes;
        dst->balance = src->balance;
        dst->failover = src->failover;
        dst->checked = src->health.enabled;
        dst->max_conns = src->max_connections;
        dst->max_pending = src->max_pending;
        for (size_t i = 0; i < src->n_nodes; i++) {
            struct bal_node *n = &dst->nodes[i];
            n->id = bal_prev_id(prev, &src->nodes[i].addr);
            if (n->id == UINT32_MAX)
                n->id = next_id++;
            n->cluster = (enum cfg_cluster_id)c;
            n->weight = src->nodes[i].weight;
            n->health = dst->checked ? BAL_HEALTH_PENDING : BAL_HEALTH_UP;
            n->max_conns = src->nodes[i].max_connections;
            n->max_pending = src->nodes[i].max_pending;
            n->addr = src->nodes[i].addr;
            n->hash = XXH3_64bits(n->addr.text, strlen(n->addr.text));
            if (n->id >= snap->max_id)
                snap->max_id = n->id + 1;
        }
        if (bal_schedule_build(dst, err) == -1)
            goto fail;
    }
    if (snap->max_id < next_id)
        snap->max_id = next_id;
    return snap;
fail:
    bal_snapshot_unref(snap);
    return NULL;
}

struct bal_snapshot *
bal_snapshot_copy(const struct bal_snapshot *s, uint64_t version)
{
    struct bal_snapshot *copy = calloc(1, sizeof(*copy));

    if (copy == NULL)
        return NULL;
    atomic_init(&copy->refs, 1);
    copy->version = version;
    copy->weight_bp = s->weight_bp;
    copy->seed_hash = s->seed_hash;
    memcpy(copy->epoch, s->epoch, sizeof(copy->epoch));
    copy->cfg = cfg_ref(s->cfg);
    copy->split = s->split;
    copy->max_id = s->max_id;
    copy->freeze = s->freeze;
    copy->freeze_since = s->freeze_since;
    copy->pins = bal_pins_ref(s->pins);
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++) {
        const struct bal_cluster *src = &s->clusters[c];
        struct bal_cluster *dst = &copy->clusters[c];

        *dst = *src; /* every field; the two arrays are the copy's own below */
        dst->nodes = calloc(src->n_nodes ? src->n_nodes : 1, sizeof(*dst->nodes));
        dst->schedule = calloc(src->n_schedule ? src->n_schedule : 1, sizeof(*dst->schedule));
        if (dst->nodes == NULL || dst->schedule == NULL) {
            bal_snapshot_unref(copy);
            return NULL;
        }
        if (src->n_nodes > 0)
            memcpy(dst->nodes, src->nodes, src->n_nodes * sizeof(*dst->nodes));
        if (src->n_schedule > 0)
            memcpy(dst->schedule, src->schedule, src->n_schedule * sizeof(*dst->schedule));
    }
    return copy;
}

struct bal_snapshot *
bal_snapshot_with_weight(const struct bal_snapshot *s, unsigned weight_bp, uint64_t version)
{
    struct bal_snapshot *copy = bal_snapshot_copy(s, version);

    if (copy != NULL)
        copy->weight_bp = weight_bp;
    return copy;
}

int
bal_snapshot_rebuild(struct bal_snapshot *s, struct xf_err *err)
{
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++)
        if (bal_schedule_build(&s->clusters[c], err) == -1)
            return -1;
    return 0;
}

int
bal_snapshot_find(const struct bal_snapshot *s, const char *addr, enum cfg_cluster_id *c, size_t *i)
{
    for (int k = 0; k < CFG_CLUSTER_COUNT; k++)
        for (size_t j = 0; j < s->clusters[k].n_nodes; j++)
            if (strcmp(s->clusters[k].nodes[j].addr.text, addr) == 0) {
                *c = (enum cfg_cluster_id)k;
                *i = j;
                return 0;
            }
    return -1;
}

uint32_t
bal_snapshot_free_id(const struct bal_snapshot *s, bal_id_busy_fn busy, void *arg)
{
    bool *taken = s->max_id > 0 ? calloc(s->max_id, sizeof(*taken)) : NULL;
    uint32_t id = s->max_id;

    if (taken == NULL)
        return s->max_id; /* none below, or out of memory: a new one is always right */
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++)
        for (size_t i = 0; i < s->clusters[c].n_nodes; i++)
            if (s->clusters[c].nodes[i].id < s->max_id)
                taken[s->clusters[c].nodes[i].id] = true;
    for (uint32_t i = 0; i < s->max_id; i++)
        if (!taken[i] && (busy == NULL || !busy(arg, i))) {
            id = i;
            break;
        }
    free(taken);
    return id;
}

int
bal_snapshot_add_node(struct bal_snapshot *s, enum cfg_cluster_id c, const struct cfg_addr *addr,
                      unsigned weight, uint32_t id, struct xf_err *err)
{
    struct bal_cluster *cl = &s->clusters[c];
    struct bal_node *nodes = realloc(cl->nodes, (cl->n_nodes + 1) * sizeof(*nodes));
    struct bal_node *n;

    if (nodes == NULL) {
        xf_err_set(err, "out of memory adding a node");
        return -1;
    }
    cl->nodes = nodes;
    n = &cl->nodes[cl->n_nodes++];
    memset(n, 0, sizeof(*n));
    n->id = id;
    if (id >= s->max_id)
        s->max_id = id + 1;
    n->cluster = c;
    n->weight = weight;
    n->state = BAL_NODE_UP;
    n->health = cl->checked ? BAL_HEALTH_PENDING : BAL_HEALTH_UP;
    n->max_conns = cl->max_conns;
    n->max_pending = cl->max_pending;
    n->addr = *addr;
    n->hash = XXH3_64bits(n->addr.text, strlen(n->addr.text));
    return bal_snapshot_rebuild(s, err);
}

int
bal_snapshot_del_node(struct bal_snapshot *s, enum cfg_cluster_id c, size_t i, struct xf_err *err)
{
    struct bal_cluster *cl = &s->clusters[c];

    memmove(&cl->nodes[i], &cl->nodes[i + 1], (cl->n_nodes - i - 1) * sizeof(*cl->nodes));
    cl->n_nodes--;
    return bal_snapshot_rebuild(s, err);
}

const char *
bal_node_state_name(enum bal_node_state state)
{
    switch (state) {
    case BAL_NODE_UP:
        return "up";
    case BAL_NODE_DRAINING:
        return "draining";
    case BAL_NODE_DISABLED:
        return "disabled";
    }
    return "?";
}

const char *
bal_node_status_name(const struct bal_node *n)
{
    if (n->state != BAL_NODE_UP)
        return bal_node_state_name(n->state);
    switch (n->health) {
    case BAL_HEALTH_UP:
        return "up";
    case BAL_HEALTH_DOWN:
        return "down";
    case BAL_HEALTH_EJECTED:
        return "ejected";
    case BAL_HEALTH_PENDING:
        return "pending";
    }
    return "?";
}

const struct bal_node *
bal_snapshot_node(const struct bal_snapshot *s, uint32_t id)
{
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++)
        for (size_t i = 0; i < s->clusters[c].n_nodes; i++)
            if (s->clusters[c].nodes[i].id == id)
                return &s->clusters[c].nodes[i];
    return NULL;
}

unsigned long
bal_cluster_usable_weight(const struct bal_cluster *cl)
{
    unsigned long sum = 0;

    for (size_t i = 0; i < cl->n_nodes; i++)
        if (bal_node_takes(&cl->nodes[i]))
            sum += cl->nodes[i].weight;
    return sum;
}

unsigned
bal_capacity_bp(const struct bal_snapshot *s)
{
    const struct bal_cluster *x = &s->clusters[CFG_CLUSTER_X];
    unsigned long x_weight = 0, y_weight = bal_cluster_usable_weight(&s->clusters[CFG_CLUSTER_Y]);

    for (size_t i = 0; i < x->n_nodes; i++)
        if (x->nodes[i].state == BAL_NODE_UP)
            x_weight += x->nodes[i].weight;
    if (x_weight == 0 || y_weight >= x_weight)
        return BAL_BUCKETS;
    return (unsigned)(y_weight * BAL_BUCKETS / x_weight);
}

struct bal_snapshot *
bal_snapshot_ref(struct bal_snapshot *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void
bal_snapshot_unref(struct bal_snapshot *s)
{
    if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++) {
        XF_FREE(s->clusters[c].nodes);
        XF_FREE(s->clusters[c].schedule);
    }
    bal_pins_unref(s->pins);
    cfg_free(s->cfg);
    free(s);
}

/* --- publication --- */

void
bal_router_init(struct bal_router *r, struct bal_snapshot *first)
{
    atomic_init(&r->current, first);
    atomic_init(&r->version, 1);
    pthread_mutex_init(&r->lock, NULL);
}

void
bal_router_fini(struct bal_router *r)
{
    bal_snapshot_unref(atomic_load(&r->current));
    atomic_store(&r->current, NULL);
    pthread_mutex_destroy(&r->lock);
}

void
bal_router_publish(struct bal_router *r, struct bal_snapshot *next)
{
    struct bal_snapshot *old;

    pthread_mutex_lock(&r->lock);
    old = atomic_exchange_explicit(&r->current, next, memory_order_acq_rel);
    atomic_fetch_add_explicit(&r->version, 1, memory_order_release);
    pthread_mutex_unlock(&r->lock);
    bal_snapshot_unref(old);
}

struct bal_snapshot *
bal_router_acquire(struct bal_router *r)
{
    struct bal_snapshot *s;

    /* The lock keeps a publisher from dropping the last reference between the load and the ref. */
    pthread_mutex_lock(&r->lock);
    s = bal_snapshot_ref(atomic_load_explicit(&r->current, memory_order_acquire));
    pthread_mutex_unlock(&r->lock);
    return s;
}

uint64_t
bal_router_version(const struct bal_router *r)
{
    return atomic_load_explicit(&r->version, memory_order_acquire);
}
