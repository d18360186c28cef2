/* common/xf_stats.h -- traffic counters per cluster: the data path writes, the admin reads. */
#ifndef XF_STATS_H
#define XF_STATS_H

#include <stdbool.h>
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

/*
 * Latency histogram, log-linear as HDR histograms are: 32 sub-buckets per power of two of
 * microseconds, so a bucket is at most 1/32 (3.1 %) of its value wide and its middle within
 * 1.6 % of any value in it; values up to 2^40 us (12 days), longer ones in the last bucket.
 */
#define XF_LAT_SUB_BITS 5u
#define XF_LAT_SUB      (1u << XF_LAT_SUB_BITS)
#define XF_LAT_BUCKETS  ((40u - XF_LAT_SUB_BITS + 1u) * XF_LAT_SUB)
/* Each worker keeps the last few seconds, one histogram each; the control thread takes each
 * second once it is over (xf_mon_harvest), long before its slot comes round again. */
#define XF_SEC_SLOTS 8u

/* One second of one cluster's completed requests in one worker; test traffic left out. */
struct xf_sec {
    uint64_t second;              /* monotonic second the slot holds; 0: none */
    uint32_t requests;            /* completed: answered (by the node or the proxy) or cut */
    uint32_t errors;              /* 5xx, and failures the proxy answered or cut */
    uint32_t lat[XF_LAT_BUCKETS]; /* total response time of those answered */
};

/* Fixed buckets for Prometheus histograms, in microseconds (le 1ms .. 10s, then +Inf). */
#define XF_FIX_BUCKETS 13u
extern const uint64_t xf_fix_le_us[XF_FIX_BUCKETS];
struct xf_fixhist {
    uint64_t b[XF_FIX_BUCKETS + 1]; /* counts per bucket, not cumulative; the last is +Inf */
    uint64_t sum_us;
};

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
    uint64_t bytes_in, bytes_out;    /* request bytes from clients, response bytes to them */
    uint64_t test_requests;          /* test traffic (test_traffic): also in requests */
    uint64_t test_errors;            /* ... answered with a 5xx or failed */
    struct xf_fixhist ttfb;          /* time to the first byte of the node's response */
    struct xf_fixhist total;         /* time to the whole response */
    struct xf_sec sec[XF_SEC_SLOTS]; /* the last seconds, for the guard and the status page */
};

/* A node's counters in one worker (px_usage), indexed by node id. */
struct xf_node_stats {
    uint64_t requests; /* attempts sent to it (a retry counts on each node it tried) */
    uint64_t responses[6];
    uint64_t failures[XF_FAIL_COUNT];
    uint64_t retries; /* attempts that failed on it and were retried elsewhere */
    uint64_t bytes_in, bytes_out;
    struct xf_fixhist ttfb, total;
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
 * summed; the seconds ring is left out (xf_mon_harvest reads it). */
void xf_stats_merge(struct xf_stats *dst, const struct xf_stats *src);
void xf_node_stats_merge(struct xf_node_stats *dst, const struct xf_node_stats *src);
/* Zeroes a node's counters (its writer only; a reader sees each value whole). */
void xf_node_stats_clear(struct xf_node_stats *ns);

/* The bucket of a latency in microseconds, and the lower bound and the middle of a bucket. */
unsigned xf_lat_bucket(uint64_t us);
uint64_t xf_lat_bucket_low(unsigned bucket);
uint64_t xf_lat_bucket_mid(unsigned bucket);

/* Counts a time in a fixed-bucket histogram. */
void xf_fixhist_add(struct xf_fixhist *h, uint64_t us);
void xf_fixhist_merge(struct xf_fixhist *dst, const struct xf_fixhist *src);

/*
 * Counts a completed request of monotonic second `now_s` in the seconds ring: `error` for a 5xx
 * or a failure, `us` its response time (UINT64_MAX: none, it was cut).
 */
void xf_stats_second(struct xf_cluster_stats *cs, uint64_t now_s, bool error, uint64_t us);

/* ------------------------------------------------------------------ windows (control thread) */

/* Some seconds of one cluster summed. */
struct xf_win {
    uint64_t requests, errors;
    uint64_t n;                   /* responses in lat */
    uint64_t lat[XF_LAT_BUCKETS]; /* response times */
};

/* Percentiles (q ascending in 0..1) of a window's response times: n values in microseconds (the
 * middle of the bucket); 0 for each when the window holds none. Returns w->n. */
uint64_t xf_win_percentiles(const struct xf_win *w, const double *q, size_t n, uint64_t *out_us);

/*
 * The seconds the control thread took from the workers: XF_MON_SECONDS of them, each the sum of
 * every worker's second, with its p50 and p99 worked out once for the history.
 */
#define XF_MON_SECONDS 300u
struct xf_mon_sec {
    uint64_t second; /* 0: none */
    int64_t wall_ms; /* when it was taken */
    unsigned weight_bp;
    uint32_t requests[2], errors[2];
    uint32_t p50_us[2], p99_us[2];
    uint32_t lat[2][XF_LAT_BUCKETS];
};
struct xf_mon {
    struct xf_mon_sec sec[XF_MON_SECONDS];
    uint64_t last; /* the last second taken; 0: none yet */
};

/*
 * Takes every second before `now_s` not taken yet (at most XF_SEC_SLOTS back) from the n
 * workers' counters; weight_bp and wall_ms label them. Call at least every few seconds.
 */
void xf_mon_harvest(struct xf_mon *m, const struct xf_stats *const *workers, size_t n,
                    uint64_t now_s, unsigned weight_bp, int64_t wall_ms);
/* Sums cluster c's seconds [now_s - seconds, now_s) into *out (zeroed first). */
void xf_mon_window(const struct xf_mon *m, int c, uint64_t now_s, unsigned seconds,
                   struct xf_win *out);

/* ------------------------------------------------------------------ preview (split buckets) */

/*
 * What `preview weight W` reads: per split bucket the requests of the last few minutes, and the
 * distinct keys seen, each with its bucket. Only requests the weight decided count (not pinned,
 * not overridden, not test traffic). One per worker; the control thread reads them all.
 */
#define XF_PREVIEW_BUCKETS  10000u
#define XF_PREVIEW_SLOT_S   30u
#define XF_PREVIEW_SLOTS    10u /* 5 minutes, in slots of 30 seconds */
#define XF_PREVIEW_WINDOW_S (XF_PREVIEW_SLOT_S * XF_PREVIEW_SLOTS)
#define XF_PREVIEW_KEYS     (1u << 16) /* keys kept per worker */
#define XF_PREVIEW_PROBE    16u
struct xf_preview {
    uint64_t slot_epoch[XF_PREVIEW_SLOTS]; /* second / XF_PREVIEW_SLOT_S + 1 the slot holds */
    uint32_t req[XF_PREVIEW_SLOTS][XF_PREVIEW_BUCKETS];
    uint64_t key[XF_PREVIEW_KEYS];   /* a key's identity (its 64-bit hash); 0: empty */
    uint32_t key_s[XF_PREVIEW_KEYS]; /* the monotonic second it was last seen */
    uint16_t key_bucket[XF_PREVIEW_KEYS];
    uint64_t keys_lost; /* keys not kept: the table's place for them held recent ones */
};

/* Counts a request of key `kid` in `bucket` at monotonic second now_s. */
void xf_preview_count(struct xf_preview *p, uint64_t kid, uint32_t bucket, uint64_t now_s);

struct xf_preview_sum {
    uint64_t requests, requests_moved; /* in the window; of them in the buckets that move */
    uint64_t keys, keys_moved;         /* distinct keys, every worker's together */
    uint64_t keys_lost;                /* keys left out (a full table): the key share is a guess */
    unsigned window_s;                 /* the seconds the window covers now */
};
/* What would move if the weight went from `from_bp` to `to_bp`: buckets in [lo, hi) change
 * side. Reads n workers' previews; returns -1 when out of memory. */
int xf_preview_sum(const struct xf_preview *const *p, size_t n, uint64_t now_s, unsigned from_bp,
                   unsigned to_bp, struct xf_preview_sum *out);

#endif
