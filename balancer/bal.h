/* balancer/bal.h -- the routing snapshot and the one function that picks a cluster and a node. */
#ifndef BAL_H
#define BAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/xf.h"
#include "config/cfg.h"

/* A node of a cluster as the data path sees it. Immutable once its snapshot is published. */
struct bal_node {
    uint32_t id; /* unique in the snapshot, dense from 0: indexes per-node state */
    enum cfg_cluster_id cluster;
    unsigned weight;
    struct cfg_addr addr; /* copied from the config */
};

struct bal_cluster {
    struct bal_node *nodes; /* owned */
    size_t n_nodes;
    uint32_t *schedule; /* owned: smooth weighted round-robin order of node indexes */
    size_t n_schedule;  /* sum of the weights; 0 when every weight is 0 */
};

/*
 * The routing snapshot: everything a routing decision reads. Built whole, published by swapping
 * one pointer, never changed afterwards, so a request reads one consistent version without a lock.
 */
struct bal_snapshot {
    uint64_t version;
    unsigned weight_bp; /* percent of clients to y, in hundredths (0..10000) */
    struct bal_cluster clusters[CFG_CLUSTER_COUNT];
    size_t n_nodes; /* nodes of both clusters: ids run from 0 to n_nodes - 1 */
};

/* What a decision may read of a request. Spans are borrowed for the duration of the call. */
struct bal_request {
    const char *client_ip;
};

/* Per-worker mutable state of the decisions (round-robin cursors); zero-initialised. */
struct bal_cursor {
    uint64_t rr[CFG_CLUSTER_COUNT];
};

struct bal_choice {
    enum cfg_cluster_id cluster;
    const struct bal_node *node; /* borrowed from the snapshot; NULL when no node can take it */
};

/* Builds a snapshot from the config. Returns an owned snapshot or NULL with err set. */
struct bal_snapshot *bal_snapshot_new(const struct cfg *cfg, uint64_t version, struct xf_err *err);
void bal_snapshot_free(struct bal_snapshot *snap);

/*
 * Chooses the cluster and the node for one request. No allocation, no system call, no lock.
 * Until the weighted split lands, every request goes to cluster x, weighted round-robin over its
 * nodes. Returns 0, or -1 when no node can take the request (out->node is then NULL).
 */
int bal_pick(const struct bal_snapshot *snap, const struct bal_request *req, struct bal_cursor *cur,
             struct bal_choice *out);

#endif
