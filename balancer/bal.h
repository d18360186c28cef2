/* balancer/bal.h -- the routing snapshot, the x/y split and the node choice. No I/O at all. */
#ifndef BAL_H
#define BAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/xf.h"
#include "config/cfg.h"

/* Buckets of the split: a weight of P percent sends buckets [0, P x 100) to y. */
#define BAL_BUCKETS 10000u

/* A node of a cluster as the data path sees it. Immutable once its snapshot is published. */
struct bal_node {
    uint32_t
        id; /* stable for the address across snapshots of one process: indexes per-node state */
    enum cfg_cluster_id cluster;
    unsigned weight;
    uint64_t hash;        /* XXH3_64bits of addr.text: the node's identity in rendezvous hashing */
    struct cfg_addr addr; /* copied from the config */
};

struct bal_cluster {
    struct bal_node *nodes; /* owned */
    size_t n_nodes;
    enum cfg_balance balance;
    uint32_t *schedule; /* owned: smooth weighted round-robin order of node indexes */
    size_t n_schedule;  /* sum of the weights; 0 when every weight is 0 */
};

/*
 * The routing snapshot: everything a routing decision reads. Built whole, published by swapping
 * one pointer (struct bal_router), never changed afterwards, so a request reads one consistent
 * version without a lock. Reference counted: freed when the last holder lets go.
 */
struct bal_snapshot {
    atomic_uint refs;
    uint64_t version;
    unsigned weight_bp;            /* percent of clients to y, in hundredths (0..10000) */
    uint64_t seed_hash;            /* XXH3_64bits(split.seed) */
    const struct cfg_split *split; /* borrowed from the config: keys, overrides, trusted proxies */
    struct bal_cluster clusters[CFG_CLUSTER_COUNT];
    uint32_t max_id; /* node ids run from 0 to max_id - 1 (some may be unused) */
};

/* A client address in binary form (the TCP peer, or one read from X-Forwarded-For). */
struct bal_addr {
    uint8_t family; /* AF_INET or AF_INET6; 0 when unknown */
    uint8_t bytes[16];
};

/* What a decision may read of a request. Every span is borrowed for the duration of the call. */
struct bal_request {
    struct bal_addr peer;      /* the TCP peer */
    const struct xf_hdr *hdrs; /* the request's header fields, in order */
    size_t n_hdrs;
    const char *target; /* the request target (query:NAME reads its query string) */
    size_t target_len;
};

/* Per-worker mutable state of the decisions; zero-initialise, then set what applies. */
struct bal_state {
    uint64_t rr[CFG_CLUSTER_COUNT]; /* round-robin cursors */
    uint64_t rng;                   /* xorshift state for `random` keys; 0 picks a fixed seed */
    const uint32_t *active;         /* active requests per node id (least_conn); may be NULL */
};

enum bal_reason {
    BAL_REASON_WEIGHT = 0, /* the bucket against the weight */
    BAL_REASON_OVERRIDE,   /* the override header or cookie */
};

struct bal_choice {
    enum cfg_cluster_id cluster;
    const struct bal_node *node; /* borrowed from the snapshot; NULL when the cluster has none */
    uint32_t bucket;             /* 0..9999 */
    enum bal_reason reason;
    int key_index; /* index in split.key of the key used; -1 when keyed by the client address */
};

/*
 * Builds a snapshot from the config (borrowed: it must outlive the snapshot). Node ids are taken
 * from `prev` for addresses it has, new ones after its max_id; `prev` may be NULL. Returns an
 * owned snapshot (refs = 1) or NULL with err set.
 */
struct bal_snapshot *bal_snapshot_new(const struct cfg *cfg, const struct bal_snapshot *prev,
                                      uint64_t version, struct xf_err *err);
/* A copy of `s` with another weight (0..10000) and version. Returns NULL when out of memory. */
struct bal_snapshot *bal_snapshot_with_weight(const struct bal_snapshot *s, unsigned weight_bp,
                                              uint64_t version);
struct bal_snapshot *bal_snapshot_ref(struct bal_snapshot *s);
/* Drops a reference; frees the snapshot with the last one. NULL is a no-op. */
void bal_snapshot_unref(struct bal_snapshot *s);

/*
 * Chooses the cluster and the node for one request. No allocation, no system call, no lock.
 * The side: an honoured override, else bucket < weight_bp -> y. The node: by the cluster's
 * balance. Returns 0, or -1 when the chosen cluster has no node to take it (out->node NULL).
 */
int bal_pick(const struct bal_snapshot *snap, const struct bal_request *req, struct bal_state *st,
             struct bal_choice *out);

/* The bucket (0..9999) of a key under a seed hash: XXH3_64bits_withSeed(key, seed_hash) % 10000. */
uint32_t bal_bucket(const char *key, size_t len, uint64_t seed_hash);

/* --- publication: one current snapshot, swapped atomically, read without a lock --- */

struct bal_router {
    _Atomic(struct bal_snapshot *) current; /* owns one reference */
    atomic_uint_fast64_t version;           /* bumped after every publish */
    pthread_mutex_t lock;                   /* serialises publish against acquire */
};

/* Takes ownership of `first` (one reference). */
void bal_router_init(struct bal_router *r, struct bal_snapshot *first);
void bal_router_fini(struct bal_router *r);
/* Makes `next` current (takes its reference) and drops the router's reference on the old one. */
void bal_router_publish(struct bal_router *r, struct bal_snapshot *next);
/* A new reference on the current snapshot; the caller unrefs it. */
struct bal_snapshot *bal_router_acquire(struct bal_router *r);
/* The version counter: a reader compares it with the one it saw to know when to re-acquire. */
uint64_t bal_router_version(const struct bal_router *r);

#endif
