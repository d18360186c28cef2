/* common/xf_stats.h -- traffic counters per cluster: the data path writes, the admin reads. */
#ifndef XF_STATS_H
#define XF_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Why a request failed on the proxy's side (answered by the proxy, or cut). */
enum xf_fail {
    XF_FAIL_CONNECT = 0, /* the node refused or was unreachable (502) */
    XF_FAIL_TIMEOUT,     /* connect or response timeout (504) */
    XF_FAIL_RESET,       /* the node closed or reset before or during the response (502/cut) */
    XF_FAIL_INVALID,     /* the node's response was invalid (502) */
    XF_FAIL_NO_NODE,     /* no node could take it (503) */
    XF_FAIL_QUEUE, /* the node's queue was full, or the wait for a connection timed out (503) */
    XF_FAIL_COUNT,
};

/* Latency histogram: 8 sub-buckets per power of two of microseconds (at most 12.5 % apart). */
#define XF_LAT_SUB     8u
#define XF_LAT_BUCKETS (40u * XF_LAT_SUB)
/* The latency window: one histogram per second over the last minute. */
#define XF_LAT_SLOTS 60u

struct xf_cluster_stats {
    uint64_t requests;     /* routed to this cluster */
    uint64_t responses[6]; /* by class: [1] 1xx .. [5] 5xx (the proxy's own included) */
    uint64_t failures[XF_FAIL_COUNT];
    uint64_t active;    /* in flight now */
    uint64_t failovers; /* assigned here, served by the other cluster: none of ours could take it */
    uint64_t retries;   /* attempts retried elsewhere after failing on one of our nodes */
    uint64_t health_down, health_up; /* nodes taken down / brought back by health checks */
    uint64_t ejections;              /* nodes ejected by passive detection */
    uint64_t queue_waiting;          /* requests waiting for a node connection now */
    uint64_t queue_timeouts;         /* requests that waited too long (503) */
    uint64_t queue_full;             /* requests refused by a full queue (503) */
    uint64_t tunnels;                /* tunnels open now (after a 101): also in active */
    uint64_t tunnels_total;          /* tunnels opened */
    uint32_t lat[XF_LAT_SLOTS][XF_LAT_BUCKETS]; /* response times, per second slot */
    uint64_t lat_slot_second[XF_LAT_SLOTS];     /* the second (monotonic) each slot holds */
};

/*
 * One worker's counters: only that worker writes them, the control thread reads and sums them
 * (xf_stats_merge). Updates are a relaxed atomic load and store, which compile to plain moves
 * (no lock prefix, no shared cache line): the per-request path pays nothing for the reader.
 */
struct xf_stats {
    struct xf_cluster_stats cluster[2]; /* x, y */
    uint64_t client_connections;        /* open now */
    uint64_t override_invalid;          /* tester overrides ignored: a value other than x or y */
    uint64_t override_not_allowed;      /* ... or from a client outside split.override_from */
    uint64_t tls_handshakes;            /* clients' TLS handshakes completed */
    uint64_t tls_resumed;               /* ... of which resumed a session (ticket or cache) */
    uint64_t tls_failed;                /* clients' handshakes that failed or timed out */
    uint64_t tls_node_handshakes;       /* TLS handshakes with nodes completed */
    uint64_t tls_node_resumed;          /* ... of which resumed a session */
    uint64_t tls_node_failed;           /* ... that failed (verification, protocol, timeout) */
    uint64_t tcp_connections;           /* tcp-mode connections taken */
    uint64_t tcp_no_sni;                /* ... keyed on sni that gave none: split on the ip */
    uint64_t proxy_refused;             /* connections closed for their PROXY header */
    uint64_t started_s;                 /* monotonic second the process started */
};

#define XF_STAT_ADD(field, n)                                                                      \
    __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
#define XF_STAT_INC(field) XF_STAT_ADD(field, 1)
#define XF_STAT_DEC(field) XF_STAT_ADD(field, -1)
#define XF_STAT_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

/* Adds what `src` (another thread's, being written) holds to `dst` (the reader's own): counters
 * summed, latency slots of the same second summed, newer slots replacing older ones. */
void xf_stats_merge(struct xf_stats *dst, const struct xf_stats *src);

/* The bucket of a latency in microseconds, and the lower bound of a bucket. */
unsigned xf_lat_bucket(uint64_t us);
uint64_t xf_lat_bucket_low(unsigned bucket);

/* Counts a response time at monotonic second `now_s`. */
void xf_stats_latency(struct xf_cluster_stats *cs, uint64_t us, uint64_t now_s);

/*
 * Percentiles (q in 0..1, e.g. 0.5, 0.9, 0.99) of the response times of the last 60 seconds
 * before `now_s`; writes n values in microseconds (the bucket's lower bound) and returns how many
 * responses the window holds (0: the values are 0).
 */
uint64_t xf_stats_percentiles(const struct xf_cluster_stats *cs, uint64_t now_s, const double *q,
                              size_t n, uint64_t *out_us);

#endif
