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

/*
 * Per-key pins: split-key values sent to one side whatever the weight (testers always on y, a
 * fragile customer always on x). An immutable table once published, shared by every snapshot
 * that holds it (reference counted), looked up in O(1) by XXH3_64bits of the key with no lock
 * and no allocation. Bounded: at most BAL_PINS_MAX keys of 1 to BAL_PIN_KEY_MAX bytes.
 */
#define BAL_PINS_MAX    10000
#define BAL_PIN_KEY_MAX 1024
struct bal_pins;

/* What an operator made of a node (admin `drain node`, `enable node`). Only UP nodes take new
 * requests; the others count as weight 0. */
enum bal_node_state {
    BAL_NODE_UP = 0,
    BAL_NODE_DRAINING, /* no new requests; those in flight finish; idle pooled connections close */
    BAL_NODE_DISABLED, /* the same, without the intent of removing it */
};

/* What the health checks made of a node, independent of the operator's state: a node takes new
 * requests only when both are UP. */
enum bal_health {
    BAL_HEALTH_UP = 0,
    BAL_HEALTH_DOWN,    /* active checks failed `fall` times in a row */
    BAL_HEALTH_EJECTED, /* passive detection: consecutive failures on live traffic */
    BAL_HEALTH_PENDING, /* in a cluster with active checks, not passed `rise` of them yet */
};

/* Slow start (clusters.*.slow_start): a node that just came into service takes warm /
 * BAL_WARM_STEPS of its weight, growing step by step; warm 0 is the whole weight. */
#define BAL_WARM_STEPS 20u

/* A node of a cluster as the data path sees it. Immutable once its snapshot is published. */
struct bal_node {
    uint32_t
        id; /* stable for the address across snapshots of one process: indexes per-node state */
    enum cfg_cluster_id cluster;
    unsigned weight;
    enum bal_node_state state;
    enum bal_health health;
    unsigned warm;        /* slow start: 1..BAL_WARM_STEPS-1 of the weight; 0: all of it */
    unsigned max_conns;   /* connections per worker; 0: no limit */
    unsigned max_pending; /* requests waiting for one of them */
    uint64_t hash;        /* XXH3_64bits of addr.text: the node's identity in rendezvous hashing */
    struct cfg_addr addr; /* copied from the config */
};

struct bal_cluster {
    struct bal_node *nodes; /* owned */
    size_t n_nodes;
    enum cfg_balance balance;
    uint32_t *schedule; /* owned: smooth weighted round-robin order of node indexes */
    size_t n_schedule;  /* sum of the weights; 0 when every weight is 0 */
    bool failover;      /* with no node to take a request, the other cluster may */
    bool checked;       /* active health checks: a new node is BAL_HEALTH_PENDING until it passes */
    unsigned max_conns, max_pending; /* for nodes added at run time */
};

/*
 * The routing snapshot: everything a routing decision reads. Built whole, published by swapping
 * one pointer (struct bal_router), never changed afterwards, so a request reads one consistent
 * version without a lock. Reference counted: freed when the last holder lets go.
 */
struct bal_snapshot {
    atomic_uint refs;
    uint64_t version;
    unsigned weight_bp; /* percent of clients to y, in hundredths (0..10000) */
    uint64_t seed_hash; /* XXH3_64bits(split.seed); in fleet mode the fleet's */
    /* Fleet mode: the routing epoch (16 hex digits; "" outside it), set by the admin side when it
     * publishes, for fleet.epoch_header. */
    char epoch[17];
    const struct cfg *cfg;         /* a hold on the config it was built from (cfg_ref) */
    const struct cfg_split *split; /* cfg's split: keys, overrides, trusted proxies */
    struct bal_cluster clusters[CFG_CLUSTER_COUNT];
    uint32_t max_id; /* node ids run from 0 to max_id - 1 (some may be unused) */
    /* The upgrade freeze: writes through admin_api listeners get 423 while it is on. */
    bool freeze;
    int64_t freeze_since;  /* wall-clock seconds (time(2)) when it went on */
    struct bal_pins *pins; /* owned reference (shared with other snapshots); NULL: no pins */
};

/* A client address in binary form (the TCP peer, or one read from X-Forwarded-For). */
struct bal_addr {
    uint8_t family; /* AF_INET or AF_INET6; 0 when unknown */
    uint8_t bytes[16];
};

/* What the split's cert: keys read of a TLS client's verified certificate. */
enum bal_cert_field {
    BAL_CERT_SUBJECT = 0, /* the subject, RFC 2253 ("CN=alice,O=Acme") */
    BAL_CERT_SAN,         /* the first DNS, email or URI subject alternative name */
    BAL_CERT_FINGERPRINT, /* SHA-256 of the DER certificate, 64 lower-case hex digits */
    BAL_CERT_COUNT,
};

/* What a decision may read of a request. Every span is borrowed for the duration of the call. */
struct bal_request {
    struct bal_addr peer;             /* the TCP peer */
    const char *cert[BAL_CERT_COUNT]; /* the client certificate's identity; NULL: none */
    size_t cert_len[BAL_CERT_COUNT];
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
    BAL_REASON_PIN,        /* the key is pinned to a side (bal_pins) */
};

/* What became of a tester override the request carried (split.override_header/_cookie). */
enum bal_override_use {
    BAL_OVERRIDE_NONE = 0,    /* none present */
    BAL_OVERRIDE_HONOURED,    /* x or y, from a client override_from allows: followed */
    BAL_OVERRIDE_INVALID,     /* present with a value other than x or y: ignored */
    BAL_OVERRIDE_NOT_ALLOWED, /* x or y from a client outside override_from: ignored */
};

struct bal_choice {
    enum cfg_cluster_id cluster;  /* where the request goes */
    enum cfg_cluster_id assigned; /* where the split sent it (differs after a failover) */
    bool failover;                /* cluster != assigned: assigned had no node to take it */
    const struct bal_node *node;  /* borrowed from the snapshot; NULL when no cluster has one */
    uint32_t bucket;              /* 0..9999 */
    enum bal_reason reason;
    enum bal_override_use override; /* what became of an override it carried (bal_pick) */
    int key_index;  /* index in split.key of the key used; -1 when keyed by the client address */
    uint64_t khash; /* the key's node hash (bal_node_key_hash), kept for a retry */
    uint64_t kid;   /* the key's hash under the seed (bucket = kid % BAL_BUCKETS); bal_pick only */
};

/*
 * Builds a snapshot from the config (borrowed: it must outlive the snapshot). Node ids are taken
 * from `prev` for addresses it has, new ones after its max_id; `prev` may be NULL. Returns an
 * owned snapshot (refs = 1) or NULL with err set.
 */
struct bal_snapshot *bal_snapshot_new(const struct cfg *cfg, const struct bal_snapshot *prev,
                                      uint64_t version, struct xf_err *err);
/*
 * A copy of `s` with another version, not published yet and so still the caller's to change
 * (weight_bp, freeze, freeze_since, pins: drop the copy's reference before replacing it). The
 * pin table is shared, not copied. Returns an owned snapshot (refs = 1), or NULL when out of
 * memory.
 */
struct bal_snapshot *bal_snapshot_copy(const struct bal_snapshot *s, uint64_t version);
/* A copy of `s` with another weight (0..10000) and version. Returns NULL when out of memory. */
struct bal_snapshot *bal_snapshot_with_weight(const struct bal_snapshot *s, unsigned weight_bp,
                                              uint64_t version);
struct bal_snapshot *bal_snapshot_ref(struct bal_snapshot *s);
/*
 * Recomputes every cluster's round-robin schedule from its node array (weights and states) in a
 * snapshot not published yet: call it after changing nodes. Returns 0, or -1 with err when out of
 * memory (the snapshot is then unusable: unref it).
 */
int bal_snapshot_rebuild(struct bal_snapshot *s, struct xf_err *err);
/* The cluster and index of the node whose address text is `addr` in any cluster; 0, or -1. */
int bal_snapshot_find(const struct bal_snapshot *s, const char *addr, enum cfg_cluster_id *c,
                      size_t *i);
/*
 * Whether some part of the proxy still keeps state under node id `id` for a node that is gone
 * (requests in flight, a connection pool): such an id is not given to a new node yet. arg is the
 * caller's, passed back.
 */
typedef bool (*bal_id_busy_fn)(void *arg, uint32_t id);
/*
 * The id for a node added to `s`: the lowest that no node of s has and that busy (NULL: none is)
 * does not hold, or s->max_id when all below are taken. Reusing ids keeps the per-id arrays of
 * the worker and the health checks as small as the most nodes ever present at once, however many
 * nodes come and go. O(max_id + nodes).
 */
uint32_t bal_snapshot_free_id(const struct bal_snapshot *s, bal_id_busy_fn busy, void *arg);
/*
 * The snapshot a reload puts in force: `cur` (the one running) taken from the config `old` to
 * `new` with the runtime state kept -- the weight, the freeze, the pins, and what the operator
 * did to nodes (added, deleted, drained, disabled, reweighted: each node's difference from
 * `old`), and every node's id, health and slow start. A node new in the file gets a free id
 * (neither in `cur` nor held by `busy`, as in bal_snapshot_free_id) and, in a cluster with checks,
 * waits for them; a node gone from the file leaves (requests in flight end on it). Cluster
 * settings and the split's rules come from `new`, which the snapshot holds. Returns an owned
 * snapshot not published yet, or NULL with err when out of memory.
 */
struct bal_snapshot *bal_snapshot_reload(const struct bal_snapshot *cur, const struct cfg *old,
                                         const struct cfg *new, bal_id_busy_fn busy, void *arg,
                                         uint64_t version, struct xf_err *err);
/*
 * Appends a node (address copied, state UP, id `id`, from bal_snapshot_free_id; max_id grows past
 * it) to cluster c of a snapshot not published yet, and rebuilds the schedules. In a cluster with
 * active checks the node is BAL_HEALTH_PENDING: it takes nothing before it passed them. Returns 0,
 * or -1 with err when out of memory.
 */
int bal_snapshot_add_node(struct bal_snapshot *s, enum cfg_cluster_id c,
                          const struct cfg_addr *addr, unsigned weight, uint32_t id,
                          struct xf_err *err);
/* Removes node i of cluster c from a snapshot not published yet and rebuilds the schedules.
 * Returns 0, or -1 with err when out of memory. */
int bal_snapshot_del_node(struct bal_snapshot *s, enum cfg_cluster_id c, size_t i,
                          struct xf_err *err);
/* Whether a node takes new requests: UP, healthy, with a weight above 0. */
static inline bool
bal_node_takes(const struct bal_node *n)
{
    return n->state == BAL_NODE_UP && n->health == BAL_HEALTH_UP && n->weight > 0;
}
/* The weight a node's share is drawn from: its weight, scaled by its slow start (x BAL_WARM_STEPS
 * when it has none, x warm when it has), so nodes compare in the same unit. */
static inline unsigned long
bal_node_eff_weight(const struct bal_node *n)
{
    return (unsigned long)n->weight * (n->warm != 0 ? n->warm : BAL_WARM_STEPS);
}
/* The operator's state: "up", "draining" or "disabled". */
const char *bal_node_state_name(enum bal_node_state state);
/* What `show nodes` says: the operator's state unless it is up, then the health: "up", "down"
 * (active checks), "ejected" (passive detection) or "pending" (no verdict of the checks yet). */
const char *bal_node_status_name(const struct bal_node *n);
/* The node with id `id` in any cluster, or NULL. O(nodes). */
const struct bal_node *bal_snapshot_node(const struct bal_snapshot *s, uint32_t id);
/*
 * The share of clients (in hundredths of a percent, 0..10000) that y can take: 10000 x the weight
 * of y's nodes that take requests over the weight of x's nodes in service (the operator's state
 * up, whatever their health: the capacity the traffic was sized for), at most 10000; 10000 when x
 * has no such weight.
 */
unsigned bal_capacity_bp(const struct bal_snapshot *s);
/* The weight of a cluster's nodes that take requests (bal_node_takes). */
unsigned long bal_cluster_usable_weight(const struct bal_cluster *cl);
/* Drops a reference; frees the snapshot with the last one. NULL is a no-op. */
void bal_snapshot_unref(struct bal_snapshot *s);

/*
 * Chooses the cluster and the node for one request. No allocation, no system call, no lock.
 * The side: an honoured override, else the key's pin, else bucket < weight_bp -> y. The node: by
 * the cluster's balance. When that cluster has no node to take it and its failover is on, the other
 * cluster's (out->failover). Returns 0, or -1 when there is no node (out->node NULL).
 */
int bal_pick(const struct bal_snapshot *snap, const struct bal_request *req, struct bal_state *st,
             struct bal_choice *out);
/* As bal_pick for a key given as bytes (a tcp-mode connection's address text or server name): the
 * same bucket, pins and nodes as a request with that key; no override. */
int bal_pick_key(const struct bal_snapshot *snap, const char *key, size_t len, struct bal_state *st,
                 struct bal_choice *out);
/*
 * Another node for a request that failed on the node of `ch` before any response byte: by the
 * same balance in the same cluster (hash: the next best by ch->khash), skipping the ids in
 * `tried` (n_tried of them); when none is left and ch->assigned's failover is on, one of the other
 * cluster (ch->cluster and ch->failover change). Returns 0 with ch->node set, or -1 (ch->node
 * NULL).
 */
int bal_repick(const struct bal_snapshot *snap, struct bal_state *st, const uint32_t *tried,
               size_t n_tried, struct bal_choice *ch);

/* The hash a seed text routes by (bal_snapshot.seed_hash): XXH3_64bits of split.seed. */
uint64_t bal_seed_hash(const char *seed);

/* The bucket (0..9999) of a key under a seed hash: XXH3_64bits_withSeed(key, seed_hash) % 10000. */
uint32_t bal_bucket(const char *key, size_t len, uint64_t seed_hash);

/*
 * Where a given key goes now (for the admin socket): the side by its pin, else by its bucket
 * against the weight (no override), and for a `hash` cluster the node; for round_robin and
 * least_conn out->node is NULL (the key does not choose the node). When that side has no node to
 * take it and its failover is on, the other side (out->failover, out->assigned). Fills cluster,
 * assigned, failover, node, bucket, khash; reason PIN or WEIGHT, key_index -1.
 * Returns 0, or -1 when the cluster has no node that takes requests (out->node NULL).
 */
int bal_which(const struct bal_snapshot *snap, const char *key, size_t len, struct bal_choice *out);

/* The weight in hundredths of a percent from which a key of this bucket goes to y: bucket + 1. */
unsigned bal_flip_weight(uint32_t bucket);

/* "weight", "override" or "pin". */
const char *bal_reason_name(enum bal_reason reason);

/* --- pins (balancer/bal_pins.c) --- */

/* An empty table (refs = 1), still the caller's to fill; NULL when out of memory. */
struct bal_pins *bal_pins_new(void);
/* A new table (refs = 1) holding the pins of `src` (NULL: none) but the key `skip` (NULL: all),
 * still the caller's to change; NULL when out of memory. */
struct bal_pins *bal_pins_copy(const struct bal_pins *src, const char *skip, size_t skip_len);
struct bal_pins *bal_pins_ref(struct bal_pins *p);
/* Drops a reference; frees the table with the last one. NULL is a no-op. */
void bal_pins_unref(struct bal_pins *p);
/*
 * Pins a key (1 to BAL_PIN_KEY_MAX bytes, copied) to a side, in a table nobody else holds yet:
 * adds it, or changes the side of a key already pinned. *old_side gets the side it had, -1 when
 * it was not pinned. Returns 0, or -1 with err (a bad length, the table full, out of memory).
 */
int bal_pins_set(struct bal_pins *p, const char *key, size_t len, enum cfg_cluster_id side,
                 int *old_side, struct xf_err *err);
/* The side a key is pinned to: 0 with *side, or -1 when it is not pinned (p may be NULL).
 * No allocation, no lock: safe on a published table from any thread. */
int bal_pins_find(const struct bal_pins *p, const char *key, size_t len, enum cfg_cluster_id *side);
/* How many keys are pinned (0 for NULL). */
size_t bal_pins_count(const struct bal_pins *p);
/* The i-th pin (0 <= i < count), in the order they were added: its key (borrowed) and side. */
enum cfg_cluster_id bal_pins_get(const struct bal_pins *p, size_t i, const char **key, size_t *len);

/* --- the split key (balancer/bal_key.c); see docs/splitting.md for the exact byte rules --- */

/* Room for a decoded key: a JWT payload or Basic credentials decoded, an address as text. */
#define BAL_KEY_BUF 8192

/* The key of one request: a span into the request, or into buf when it had to be decoded. */
struct bal_key {
    const char *ptr; /* borrowed: into the request or into buf; never NULL (may be "" len 0) */
    size_t len;
    int index; /* index in split.keys; -1 when keyed by the client address (no key present) */
    char buf[BAL_KEY_BUF];
};

/*
 * Finds the key of `req`: the first of split->keys present (an empty value counts as absent),
 * else the client address as text (the empty key when that is unknown). `st` advances its rng
 * for a `random` key (may be NULL: then a fixed seed). Returns out->index. No allocation.
 */
int bal_key_find(const struct cfg_split *split, const struct bal_request *req, struct bal_state *st,
                 struct bal_key *out);

/*
 * Request readers, spans borrowed from `req`. Each returns 0 with the value, or -1 when absent.
 * bal_header_value: the first header named `name` (case-insensitive), value without surrounding
 * spaces and tabs. bal_cookie_value: the first cookie named `name` (exact) over every Cookie
 * header in order, one pair of surrounding double quotes removed. bal_query_value: the first
 * parameter named `name` (exact, raw bytes) of the target's query string, split on & and ;.
 */
int bal_header_value(const struct bal_request *req, const char *name, const char **val,
                     size_t *len);
int bal_cookie_value(const struct bal_request *req, const char *name, const char **val,
                     size_t *len);
int bal_query_value(const struct bal_request *req, const char *name, const char **val, size_t *len);

/*
 * The client address: the TCP peer, or, when the peer is in split->trusted_proxies, the right-most
 * X-Forwarded-For address not in them (walking every XFF header from the last, each comma list
 * from its end; empty elements skipped; an unparsable element stops the walk at the last address
 * read; when all are trusted, the left-most). IPv4-mapped IPv6 addresses are read as IPv4.
 */
void bal_client_addr(const struct cfg_split *split, const struct bal_request *req,
                     struct bal_addr *out);
/* Parses one X-Forwarded-For element: an address, "[v6]", "[v6]:port" or "v4:port", OWS trimmed. */
int bal_addr_parse(const char *s, size_t len, struct bal_addr *out);
/* True when `a` is in one of the `n` networks. */
bool bal_addr_in(const struct bal_addr *a, const struct cfg_cidr *nets, size_t n);
/* The address as inet_ntop writes it into buf (size >= BAL_ADDR_TEXT); returns the length (0 when
 * the family is unknown). */
#define BAL_ADDR_TEXT 46
size_t bal_addr_text(const struct bal_addr *a, char *buf, size_t size);

/* --- the node inside a cluster (balancer/bal_node.c) --- */

/* XORed into the seed hash for node hashing, so the node does not depend on the bucket. */
#define BAL_NODE_SEED_XOR 0x9e3779b97f4a7c15ull

/* The key's hash for rendezvous hashing:
 * XXH3_64bits_withSeed(key, seed_hash ^ BAL_NODE_SEED_XOR). */
uint64_t bal_node_key_hash(const char *key, size_t len, uint64_t seed_hash);
/*
 * Weighted rendezvous hashing: among the nodes that take requests (bal_node_takes: up, weight
 * > 0), the one with the highest weight / -ln(u), where u in (0, 1) comes from
 * mix64(khash ^ node->hash); ties to the lower id. NULL when no node takes requests.
 */
const struct bal_node *bal_node_hrw(const struct bal_cluster *cl, uint64_t khash);
/*
 * The node of cluster `c` by its balance, skipping the ids in `skip` (n_skip of them; 0 for
 * none): hash on khash, round robin (st->rr[c]), least_conn (st->active). NULL when none is left.
 */
const struct bal_node *bal_node_pick_hashed(const struct bal_cluster *cl, enum cfg_cluster_id c,
                                            uint64_t khash, struct bal_state *st,
                                            const uint32_t *skip, size_t n_skip);
/*
 * The node of cluster `c` for one request, by the cluster's balance: hash (HRW on the key), round
 * robin (st->rr[c]) or least_conn (st->active, ties by the round-robin schedule). `st` may be NULL
 * for hash only. NULL when no node takes requests (bal_node_takes: up, healthy, weight > 0).
 */
const struct bal_node *bal_node_pick(const struct bal_cluster *cl, enum cfg_cluster_id c,
                                     const char *key, size_t len, uint64_t seed_hash,
                                     struct bal_state *st);

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
