/* config/cfg.h -- the YAML configuration file read into one immutable struct cfg. */
#ifndef CFG_H
#define CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "common/xf.h"

/* The size of a "FILE:LINE:COL: key.path" prefix kept for a later message (struct cfg_file). */
#define CFG_AT_MAX 192

/* An address as written ("127.0.0.1:8000", "[::1]:8000", "localhost:8000"), resolved at load. */
struct cfg_addr {
    struct sockaddr_storage sa;
    socklen_t sa_len;
    char text[128]; /* the host:port text as written, NUL-terminated */
};

enum cfg_role {
    CFG_ROLE_PROXY = 0, /* splits traffic between x and y */
    CFG_ROLE_ADMIN_API, /* proxies to x only; subject to the freeze (issue 4) */
};

/*
 * A file the configuration names (a certificate, a key, a CA bundle), with where it names it, so
 * that the checks made when the file is read can point at the line: `at` reads
 * "FILE:LINE:COL: listen[0].tls.certificates[1].key", like the walk's own messages.
 */
struct cfg_file {
    char *path; /* owned; NULL: not set */
    char at[CFG_AT_MAX];
};

/* listen[].tls.certificates[]: a certificate chain, its key, and the SNI names it serves. */
struct cfg_tls_cert {
    struct cfg_file cert, key;
    char **names;   /* owned, each owned: names given in the file (`names:`); none: the names */
    size_t n_names; /* the certificate itself holds (subject alternative names, else the CN) */
    char at[CFG_AT_MAX]; /* the entry itself */
};

enum cfg_tls_verify {
    CFG_TLS_VERIFY_OFF = 0,  /* no client certificate is asked for (default) */
    CFG_TLS_VERIFY_OPTIONAL, /* asked for; one that does not verify is ignored */
    CFG_TLS_VERIFY_REQUIRED, /* asked for; the handshake fails without a valid one */
};

#define CFG_TLS_V12 1u
#define CFG_TLS_V13 2u

/* listen[].tls: crossfade terminates TLS on this listener. */
struct cfg_tls_listen {
    struct cfg_tls_cert *certs; /* owned, n_certs >= 1; the first is the default */
    size_t n_certs;
    unsigned protocols;        /* CFG_TLS_V12 | CFG_TLS_V13 (default both) */
    char *ciphers;             /* owned; TLS 1.2 cipher list (OpenSSL syntax); NULL: the default */
    char *ciphersuites;        /* owned; TLS 1.3 suites; NULL: the default */
    struct cfg_file client_ca; /* CAs that sign client certificates; path NULL: none */
    enum cfg_tls_verify verify_client;
    char at[CFG_AT_MAX]; /* "FILE:LINE:COL: listen[0].tls" */
    char ciphers_at[CFG_AT_MAX], ciphersuites_at[CFG_AT_MAX];
};

enum cfg_mode {
    CFG_MODE_HTTP = 0, /* HTTP/1.1 requests, each split on split.key (default) */
    CFG_MODE_TCP,      /* a byte stream relayed to one node, split on the listener's key */
};

/* What a tcp-mode listener splits on. */
enum cfg_l4_key {
    CFG_L4_KEY_IP = 0, /* the client's address (default) */
    CFG_L4_KEY_SNI,    /* the server name of the TLS ClientHello, read without terminating TLS */
};

struct cfg_listener {
    struct cfg_addr addr;
    enum cfg_role role;
    enum cfg_mode mode;
    enum cfg_l4_key key; /* tcp mode only */
    bool proxy_protocol; /* a PROXY v1/v2 header starts each connection (from trusted_proxies) */
    uint16_t node_port;  /* requests taken here go to each node's host at this port; 0 (default):
                            the node's own port */
    struct cfg_tls_listen *tls; /* owned by the cfg (copies borrow it); NULL: plain HTTP */
};

struct cfg_node {
    struct cfg_addr addr;
    unsigned weight;          /* 0..1000, default 1 */
    unsigned max_connections; /* requests in progress on this node, all workers together; 0: no
                                 limit. Default: the cluster's max_connections */
    unsigned max_pending;     /* requests waiting for a connection; default: the cluster's */
};

enum cfg_cluster_id {
    CFG_CLUSTER_X = 0,
    CFG_CLUSTER_Y,
    CFG_CLUSTER_COUNT,
};

enum cfg_balance {
    CFG_BALANCE_HASH = 0,    /* consistent, weighted, on the split key (default) */
    CFG_BALANCE_ROUND_ROBIN, /* smooth weighted round-robin */
    CFG_BALANCE_LEAST_CONN,  /* fewest active requests, weighted */
};

/* clusters.NAME.health: active HTTP checks, each a GET on a connection of its own. */
struct cfg_health {
    bool enabled;         /* the key is present */
    char *path;           /* owned; default "/status"; an origin-form target */
    char *host;           /* owned; the Host header; NULL (default): the node's address text */
    uint16_t port;        /* 0 (default): the node's port */
    unsigned interval_ms; /* 2s */
    unsigned timeout_ms;  /* 1s: connect to the end of the response head */
    unsigned rise;        /* 2: consecutive passes that bring a down node up */
    unsigned fall;        /* 3: consecutive failures that take an up node down */
    unsigned expect_min;  /* 200 */
    unsigned expect_max;  /* 399 */
};

/* clusters.NAME.outlier: passive detection from live traffic (outlier ejection). */
struct cfg_outlier {
    unsigned failures;        /* 5: consecutive connect failures or 5xx that eject; 0: off */
    unsigned ejection_ms;     /* 10s: the first ejection; doubles on each repeat */
    unsigned max_ejection_ms; /* 5m: the longest ejection */
};

/* clusters.NAME.tls: crossfade speaks TLS to the cluster's nodes. */
struct cfg_tls_node {
    bool verify;          /* the node's certificate is checked (default true) */
    struct cfg_file ca;   /* the CAs that sign the nodes' certificates; NULL: the system's */
    char *sni;            /* owned; the name sent and checked; NULL: each node's host name */
    struct cfg_file cert; /* a client certificate for mTLS to the nodes; NULL: none */
    struct cfg_file key;
    char at[CFG_AT_MAX]; /* "FILE:LINE:COL: clusters.y.tls" */
};

struct cfg_cluster {
    struct cfg_node *nodes; /* owned */
    size_t n_nodes;
    enum cfg_balance balance; /* clusters.NAME.balance: hash | round_robin | least_conn */
    struct cfg_health health;
    struct cfg_outlier outlier;
    bool failover; /* with no healthy node, send this cluster's requests to the other one;
                      default true for y, false for x */
    unsigned max_connections;     /* default for the nodes: 0 (no limit) */
    unsigned max_pending;         /* default for the nodes: 100 */
    unsigned slow_start_ms;       /* a node coming into service ramps its weight up over this; 0:
                                     off (default) */
    unsigned resolve_interval_ms; /* nodes named by a host name are looked up again this often;
                                     0: only at start-up and add node (default) */
    struct cfg_tls_node *tls;     /* owned; NULL: plain HTTP to the nodes (default) */
    unsigned proxy_protocol;      /* PROXY header version sent to the nodes: 1 or 2; 0: none */
    /* Idle keep-alive connections kept per node, all workers together (each keeps its share);
     * CFG_MAX_IDLE_AUTO (default): as many as were in use at once lately. */
    unsigned max_idle;
};
#define CFG_MAX_IDLE_AUTO UINT_MAX

enum cfg_key_kind {
    CFG_KEY_HEADER = 0, /* header:NAME */
    CFG_KEY_COOKIE,     /* cookie:NAME */
    CFG_KEY_QUERY,      /* query:NAME */
    CFG_KEY_IP,         /* ip */
    CFG_KEY_JWT_SUB,    /* jwt_sub:HEADER */
    CFG_KEY_BASIC_USER, /* basic_user */
    CFG_KEY_RANDOM,     /* random */
    CFG_KEY_CERT,       /* cert:subject, cert:san, cert:fingerprint (a TLS client certificate) */
};

struct cfg_split_key {
    enum cfg_key_kind kind;
    char *name; /* owned; NULL for ip, basic_user and random */
};

/* An IPv4 or IPv6 network ("10.0.0.0/8", "::1/128"; a bare address is a /32 or /128). */
struct cfg_cidr {
    uint8_t family;   /* AF_INET or AF_INET6 */
    uint8_t prefix;   /* 0..32 or 0..128 */
    uint8_t addr[16]; /* network byte order; IPv4 in the first 4 bytes; host bits zero */
    char text[64];    /* as written */
};

struct cfg_split {
    unsigned weight_bp;         /* percent of clients to y, in hundredths: 0..10000 */
    struct cfg_split_key *keys; /* owned; never empty (default: ip) */
    size_t n_keys;
    char *seed; /* owned */
    /* ip keys: the right-most X-Forwarded-For address not in these networks is the client. */
    struct cfg_cidr *trusted_proxies; /* owned; may be empty */
    size_t n_trusted_proxies;
    /* Tester override: a request header / cookie whose value x or y forces the side. */
    char *override_header; /* owned; default "X-Crossfade-Target"; NULL when off */
    char *override_cookie; /* owned; default NULL (off) */
    /* owned; overrides are honoured only from these clients (default: loopback, 127.0.0.0/8 and
     * ::1); none when empty, unless override_any */
    struct cfg_cidr *override_from;
    size_t n_override_from;
    bool override_any; /* override_from: any -- every client may choose its side */
    char *expose;      /* owned; response header naming cluster and node; NULL (default) when off */
};

/* What the guard does when y fails against x (docs/monitoring.md). */
enum cfg_guard_action {
    CFG_GUARD_ROLLBACK = 0, /* everything back to x (the default) */
    CFG_GUARD_PAUSE,        /* the ramp pauses where it is */
    CFG_GUARD_STEP_DOWN,    /* the weight goes down by a step */
};

/* guard: y judged against x over a sliding window, every second (admin/adm_guard.c). */
struct cfg_guard {
    bool configured;               /* the section is there: the guard starts on */
    unsigned window_s;             /* 30: the seconds compared side by side (5..300) */
    unsigned min_requests;         /* 200: per side in the window, below it: inconclusive */
    unsigned max_error_delta_bp;   /* 100 (1 %): y's error rate minus x's, in hundredths of % */
    double max_latency_ratio;      /* 1.5: y's p99 over x's p99 */
    unsigned min_latency_delta_us; /* 1ms: a latency difference smaller than this never fails */
    double confidence;             /* 0.99: a difference counts when p < 1 - confidence */
    enum cfg_guard_action action;
    unsigned
        step_down_bp; /* 500: what step_down takes off the weight (a ramp's step when one runs) */
};

/* test_traffic: requests marked as tests are routed as usual, counted apart, kept out of the
 * guard. */
struct cfg_test_traffic {
    char *header;             /* owned; a request with this header is a test; NULL: none */
    struct cfg_cidr *sources; /* owned; requests from these networks are tests */
    size_t n_sources;
};

/* access_log_format: the layout of an access log line (docs/config.md, "access_log_format"). */
enum cfg_alog_format {
    CFG_ALOG_TEXT = 0, /* TIME CLIENT CLUSTER NODE "REQUEST" STATUS ... (the default) */
    CFG_ALOG_JSON,     /* one JSON object per line, fixed fields */
};

/* Every duration in milliseconds. */
struct cfg_timeouts {
    unsigned connect_ms;           /* 3s */
    unsigned client_header_ms;     /* 10s */
    unsigned client_idle_ms;       /* 60s */
    unsigned upstream_response_ms; /* 60s */
    unsigned upstream_idle_ms;     /* 30s */
    unsigned shutdown_ms;          /* 10s: how long SIGTERM waits for in-flight requests */
    unsigned queue_ms;             /* 5s: how long a request waits for a node connection */
    unsigned tls_handshake_ms;     /* 10s: a client's TLS handshake, from its connection */
    unsigned tunnel_idle_ms;       /* 1h: a tunnel (WebSocket) with no byte either way */
    unsigned tcp_hello_ms; /* 5s: a tcp-mode sni listener waits this long for the ClientHello */
    unsigned client_request_ms; /* 0 (off): a whole request, head and body, from its first byte */
};

struct cfg_limits {
    unsigned max_connections;             /* 20000 client connections */
    unsigned max_request_line_bytes;      /* 8192; longer request line -> 414 */
    unsigned max_header_bytes;            /* 16384; the whole head, request line included -> 431 */
    unsigned max_headers;                 /* 100 -> 431 */
    uint64_t max_body_bytes;              /* 0 = no limit -> 413 */
    unsigned max_requests_per_connection; /* 0 = no limit; the last one's response closes */
    /* A request body up to this size is read whole before it goes to a node (a slow client
     * holds no node connection meanwhile); larger ones, and those sent after `Expect:
     * 100-continue`, stream as they come. 0: every body streams. */
    unsigned request_buffer_bytes;
};
#define CFG_DEFAULT_REQUEST_BUFFER 16384

/*
 * A configuration is immutable once loaded; it is shared by whatever routes or serves with it and
 * freed by the last of them (cfg_ref, cfg_free): a reload puts a new one in force while requests
 * routed with the old one finish with it.
 */
/* fleet: the rollout state kept in etcd and shared with other instances (docs/fleet.md). */
#define CFG_FLEET_ENDPOINTS_MAX  16
#define CFG_FLEET_ENDPOINT_MAX   300 /* "http://HOST:PORT" and its NUL */
#define CFG_FLEET_DEFAULT_PREFIX "/crossfade/"
struct cfg_fleet {
    bool configured;     /* the section is there: fleet mode */
    char **etcd;         /* owned: n_etcd endpoints, each "http://HOST:PORT" */
    size_t n_etcd;       /* 1..CFG_FLEET_ENDPOINTS_MAX */
    char *prefix;        /* owned: the keys' prefix, ending in '/' ("/crossfade/") */
    char *name;          /* owned: this instance's name (default: the host name) */
    bool local_fallback; /* false: without etcd no change is accepted; true: rollback is, here */
    unsigned timeout_ms; /* 2s: an etcd request's */
    unsigned lease_ms;   /* 10s: how long this instance stays listed after it stops answering */
    char *epoch_header;  /* owned: response header carrying the routing epoch; NULL when off */
};

/*
 * Checks an etcd endpoint, "http://HOST:PORT" (PORT 2379 when left out), and writes its normal
 * form into out (CFG_FLEET_ENDPOINT_MAX). 0, or -1 with err saying why it is not one.
 */
int cfg_fleet_endpoint_parse(const char *text, char *out, size_t size, struct xf_err *err);

struct cfg {
    unsigned refs; /* holders (atomic); 0 for a struct not made by cfg_parse: not counted */
    char *path;    /* owned: the file it was read from */
    struct cfg_listener *listeners; /* owned, n_listeners >= 1 */
    size_t n_listeners;
    char *admin_socket;          /* owned; default "/run/crossfade/admin.sock" */
    char *admin_group;           /* owned; admin.group as written; NULL (default): the user only */
    gid_t admin_gid;             /* admin.group's id, resolved at load */
    struct cfg_addr *admin_http; /* owned; the read-only HTTP listener (admin.http); NULL: off */
    struct cfg_split split;
    struct cfg_cluster clusters[CFG_CLUSTER_COUNT]; /* x and y, both required */
    struct cfg_timeouts timeouts;
    struct cfg_limits limits;
    struct cfg_guard guard;
    struct cfg_test_traffic test_traffic;
    struct cfg_fleet fleet;
    unsigned retries; /* 2: further attempts on other nodes for a request that failed before any
                         response byte (0..10) */
    char *access_log; /* owned; "-" for stdout, a path, or NULL when off */
    enum cfg_alog_format access_log_format; /* text (default) or json */
    /* access_log_sample: the share of requests logged, 0 < F <= 1 (default 1); errors are always
     * logged (proxy/px_alog.c). */
    double access_log_sample;
    char *state_file;            /* owned; where the admin socket keeps its changes; NULL: off */
    enum xf_log_level log_level; /* log_level: debug | info | warn | error (default info) */
    unsigned workers;            /* worker threads, 1..CFG_WORKERS_MAX; 0: auto (the online CPUs) */
    unsigned tls_ticket_rotation_ms; /* tls.ticket_rotation: 1h; a session ticket key's life */
    /* tunnels: how tunnels (WebSocket) leave a side they no longer belong to (docs/tunnels.md). */
    struct {
        unsigned close_rate; /* 200: tunnels closed per second, the whole process */
        bool follow_weight;  /* false: a tunnel moves only on rollback, drain, del */
    } tunnels;
};

#define CFG_WORKERS_MAX 64

/*
 * What a reload from `old` (running) to `new` would change (config/cfg_diff.c). Nodes are matched
 * by the address they resolve to, listeners by address, role and node_port. `refused` is set when
 * a change cannot be applied while crossfade runs (admin.socket, admin.group, workers,
 * state_file); the rest is counted.
 */
struct cfg_diff {
    char refused[256]; /* why the reload must be refused; "" when it may go on */
    unsigned listeners_added, listeners_removed;
    unsigned nodes_added[CFG_CLUSTER_COUNT], nodes_removed[CFG_CLUSTER_COUNT];
    unsigned nodes_changed[CFG_CLUSTER_COUNT]; /* same address, other weight or limits */
    bool cluster_changed[CFG_CLUSTER_COUNT];   /* balance, health, outlier, failover, limits... */
    bool split_changed;                        /* keys, seed, proxies, overrides, expose */
    bool weight_in_file_changed; /* split.weight: not applied, the weight in force is kept */
    bool timeouts_changed, limits_changed, retries_changed, access_log_changed, log_level_changed;
    bool guard_changed, test_traffic_changed;
    bool epoch_header_changed; /* fleet.epoch_header, the one fleet key a reload may change */
    bool tls_reread; /* the new file has TLS somewhere: its certificate files are read again */
};
/* Fills *d; returns 0, or -1 when the reload must be refused (d->refused says why). */
int cfg_diff(const struct cfg *old, const struct cfg *new, struct cfg_diff *d);
/* "listeners +1 -0; x nodes +1 -0; y nodes +0 -0; timeouts changed" in buf (size bytes,
 * NUL-terminated); returns its length. Nodes whose weight or limits changed add " ~N". */
size_t cfg_diff_text(const struct cfg_diff *d, char *buf, size_t size);

/* The number of worker threads `cfg` asks for: workers, or for auto the online CPUs (at most
 * CFG_WORKERS_MAX, at least 1). */
unsigned cfg_workers(const struct cfg *cfg);

/*
 * Reads and checks the YAML file at `path`. Returns an owned cfg, or NULL with one message in
 * `err` of the form "FILE:LINE:COL: key.path: what was expected, got what".
 */
struct cfg *cfg_load(const char *path, struct xf_err *err);

/* The same from a string; `name` stands for the file name in messages. */
struct cfg *cfg_parse(const char *text, size_t len, const char *name, struct xf_err *err);

/* Another holder of `cfg` (the count is the one part of a cfg that changes); returns cfg. A cfg
 * with refs 0 (a test's struct on the stack) is not counted: its owner keeps it alive. */
const struct cfg *cfg_ref(const struct cfg *cfg);
/* Lets go of one hold: the last one frees it. NULL, and a cfg with refs 0, are no-ops. Any
 * thread may let go. */
void cfg_free(const struct cfg *cfg);

/* Parses "host:port" or "[v6]:port" into `out` (resolving host names). Returns 0 or -1 with err. */
int cfg_addr_parse(const char *text, struct cfg_addr *out, struct xf_err *err);
/* Whether `text` names its host (cfg_addr_parse would ask the resolver), rather than an IPv4 or
 * [IPv6] address; false for text that is no address at all. */
bool cfg_addr_is_name(const char *text);

/*
 * Host names resolved off the event loop (config/cfg_resolver.c): one thread runs cfg_addr_parse,
 * which may wait seconds for a slow resolver; the loop watches cfg_resolver_fd and calls
 * cfg_resolver_collect, which runs each finished lookup's callback on the loop's thread.
 */
struct cfg_resolver;
/* The result of a lookup: addr (borrowed for the call) or NULL with error (borrowed). */
typedef void (*cfg_resolved_fn)(void *arg, const struct cfg_addr *addr, const char *error);
struct cfg_resolver *cfg_resolver_new(struct xf_err *err);
/* Readable when finished lookups wait for cfg_resolver_collect. */
int cfg_resolver_fd(const struct cfg_resolver *r);
/* Queues a lookup of "host:port" (copied); fn(arg, ...) runs from cfg_resolver_collect. Returns
 * 0, or -1 when the text is too long, memory is short or 1024 lookups wait already. */
int cfg_resolver_submit(struct cfg_resolver *r, const char *text, cfg_resolved_fn fn, void *arg);
/* Runs the callbacks of the lookups finished so far (clears the fd's readiness). */
void cfg_resolver_collect(struct cfg_resolver *r);
/* The callbacks of the lookups queued with `arg` will not run (arg is about to be freed). */
void cfg_resolver_cancel(struct cfg_resolver *r, void *arg);
/* Stops the thread (after the lookup under way, if any), runs the callbacks of the lookups left
 * (finished ones with their result, the others with an error) and frees everything; NULL is a
 * no-op. */
void cfg_resolver_free(struct cfg_resolver *r);

/* Parses a duration ("250ms", "3s", "1m", "1h", "1m30s"; a bare number is seconds) into ms. */
int cfg_duration_parse(const char *text, unsigned *out_ms, struct xf_err *err);

/* Parses "10.0.0.0/8", "::1/128" or a bare address into `out`. Returns 0 or -1 with err. */
int cfg_cidr_parse(const char *text, struct cfg_cidr *out, struct xf_err *err);

/* "x" or "y" for a cluster id. */
const char *cfg_cluster_name(enum cfg_cluster_id id);
/* "header", "cookie", "ip"... for a split key kind, as split.key writes it before the colon. */
const char *cfg_key_kind_name(enum cfg_key_kind kind);

#endif
