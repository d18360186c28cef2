/* balancer/bal_snapshot.c -- building the immutable routing snapshot and choosing a node. */
#include "balancer/bal.h"

#include <string.h>

/*
 * Fills `sched` with node indexes in smooth weighted round-robin order (the interleaving nginx
 * uses): weights 5,1,1 give a a b a c a a rather than a a a a a b c, so a burst of requests is
 * spread even over a short window. O(total weight x nodes), done once per snapshot.
 */
static int
bal_schedule_build(struct bal_cluster *cl, struct xf_err *err)
{
    size_t total = 0;
    long *current = NULL;

    for (size_t i = 0; i < cl->n_nodes; i++)
        total += cl->nodes[i].weight;
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
        size_t best = 0;
        for (size_t i = 0; i < cl->n_nodes; i++) {
            current[i] += cl->nodes[i].weight;
            if (current[i] > current[best])
                best = i;
        }
        current[best] -= (long)total;
        cl->schedule[k] = (uint32_t)best;
    }
    XF_FREE(current);
    return 0;
}

struct bal_snapshot *
bal_snapshot_new(const struct cfg *cfg, uint64_t version, struct xf_err *err)
{
    struct bal_snapshot *snap = calloc(1, sizeof(*snap));
    uint32_t id = 0;

    if (snap == NULL) {
        xf_err_set(err, "out of memory building the routing snapshot");
        return NULL;
    }
    snap->version = version;
    snap->weight_bp = cfg->split.weight_bp;
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++) {
        const struct cfg_cluster *src = &cfg->clusters[c];
        struct bal_cluster *dst = &snap->clusters[c];

        dst->nodes = calloc(src->n_nodes ? src->n_nodes : 1, sizeof(*dst->nodes));
        if (dst->nodes == NULL) {
            xf_err_set(err, "out of memory building the routing snapshot");
            goto fail;
        }
        dst->n_nodes = src->n_nodes;
        for (size_t i = 0; i < src->n_nodes; i++) {
            dst->nodes[i].id = id++;
            dst->nodes[i].cluster = (enum cfg_cluster_id)c;
            dst->nodes[i].weight = src->nodes[i].weight;
            dst->nodes[i].addr = src->nodes[i].addr;
        }
        if (bal_schedule_build(dst, err) == -1)
            goto fail;
    }
    snap->n_nodes = id;
    return snap;
fail:
    bal_snapshot_free(snap);
    return NULL;
}

void
bal_snapshot_free(struct bal_snapshot *snap)
{
    if (snap == NULL)
        return;
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++) {
        XF_FREE(snap->clusters[c].nodes);
        XF_FREE(snap->clusters[c].schedule);
    }
    free(snap);
}

int
bal_pick(const struct bal_snapshot *snap, const struct bal_request *req, struct bal_cursor *cur,
         struct bal_choice *out)
{
    const struct bal_cluster *cl = &snap->clusters[CFG_CLUSTER_X];

    XF_UNUSED(req);
    out->cluster = CFG_CLUSTER_X;
    out->node = NULL;
    if (cl->n_schedule == 0)
        return -1;
    out->node = &cl->nodes[cl->schedule[cur->rr[CFG_CLUSTER_X]++ % cl->n_schedule]];
    return 0;
}
