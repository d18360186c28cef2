/* proxy/px.h -- the data path: listeners, client and upstream connections, HTTP/1.1 forwarding. */
#ifndef PX_H
#define PX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <llhttp.h>
#include <openssl/ssl.h>

#include "balancer/bal.h"
#include "common/xf.h"
#include "common/xf_stats.h"
#include "config/cfg.h"

/* Outcome of a step of the data path. PX_CLOSE asks the top-level callback to tear down. */
enum px_rc {
    PX_OK = 0,
    PX_AGAIN,
    PX_CLOSE,
    PX_DONE, /* the transaction was ended (answered with an error): touch neither it nor its node */
};

/*
 * A growable byte buffer; empty buffers hold no memory. A failed allocation is sticky: the buffer
 * takes no more bytes and px_buf_send refuses to send any, so a head cut short by an allocation
 * failure in the middle of a sequence of appends is never sent. Callers check once, at the send,
 * instead of after every append.
 */
struct px_buf {
    char *data; /* owned, NULL while nothing was ever stored */
    size_t start, end, cap;
    bool failed; /* an append or a reservation failed: nothing more is taken or sent */
    bool block;  /* data is a first block (px_buf.c): given back to the blocks, not free()d */
};

static inline size_t
px_buf_len(const struct px_buf *b)
{
    return b->end - b->start;
}

static inline const char *
px_buf_head(const struct px_buf *b)
{
    return b->data + b->start;
}

/* Appends n bytes; returns 0, or -1 when out of memory or the buffer failed before. */
int px_buf_append(struct px_buf *b, const void *p, size_t n);
int px_buf_printf(struct px_buf *b, const char *fmt, ...) XF_PRINTF(2, 3);
/* Makes room for at least n more bytes at the end; returns the write pointer, or NULL (the buffer
 * is then failed). An empty buffer takes a first block of 16 KiB. */
char *px_buf_reserve(struct px_buf *b, size_t n);
/* The same for a buffer that usually stays small (a client's partial request head): its first
 * block is 1 KiB, then it doubles as needed, so that thousands of slow clients hold little. */
char *px_buf_reserve_small(struct px_buf *b, size_t n);
int px_buf_append_small(struct px_buf *b, const void *p, size_t n);
void px_buf_consume(struct px_buf *b, size_t n);
/* Keeps the first n bytes (n <= px_buf_len(b)) and drops the rest. */
void px_buf_truncate(struct px_buf *b, size_t n);
/* Makes b hold a copy of n bytes in a block of exactly n (a buffer that will not grow: no
 * 16 KiB minimum). Returns 0, or -1 when out of memory (b empty). */
int px_buf_dup(struct px_buf *b, const void *p, size_t n);
/* Appends what `src` holds to `dst` and empties src; no copy when dst is empty. A failed src fails
 * dst. 0, or -1 when out of memory (src is emptied either way). */
int px_buf_move(struct px_buf *dst, struct px_buf *src);
/* Frees the memory (the buffer becomes empty, holds nothing, and is no longer failed). A first
 * block of 16 KiB is kept for the thread's next buffer (a few at most). */
void px_buf_free(struct px_buf *b);
/* Frees the blocks the calling thread kept (at the end of a worker thread, and of main). */
void px_buf_cache_drain(void);
/* Gives back to the kernel the memory of this thread's free first blocks but the `keep` most
 * recently used (after a burst). */
void px_buf_trim(size_t keep);
/* px_buf_trim of the blocks none needed since the last call, all but `keep` (once a second). */
void px_buf_trim_unused(size_t keep);

/* Gives libevent's small allocations a region outside malloc's heap (px_evmem.c); first thing in
 * main, before libevent allocates anything. */
void px_evmem_init(void);

/*
 * Sends what `b` holds on `fd` without waiting. Returns PX_OK when all is sent, PX_AGAIN when the
 * socket would block (the rest stays in b), PX_CLOSE on a socket error (errno set) or when the
 * buffer failed (errno ENOMEM; nothing is sent: what it holds may be cut).
 */
enum px_rc px_buf_send(struct px_buf *b, int fd, uint64_t *sent);

/*
 * Adds `ev` with timeout `tv`, or with none when tv is NULL. event_add(ev, NULL) on a pending event
 * would keep its old timeout; the timer is removed instead (no system call either way).
 */
static inline void
px_ev_arm(struct event *ev, const struct timeval *tv)
{
    event_add(ev, tv);
    if (tv == NULL)
        event_remove_timer(ev);
}

/* --- HTTP helpers (px_http.c): pure functions on raw header bytes, unit tested. --- */

/*
 * Starts entry n of a header table with the name span `at` (the value empty until its callback).
 * Returns 0, or -1 when the table already holds `cap` entries.
 */
int px_hdr_open(struct xf_hdr *tab, size_t cap, size_t n, const char *at, size_t len);

/* Whether a header value holds only field-vchar, SP and HTAB (no CR, LF, NUL or other CTLs). */
bool px_http_value_ok(const char *v, size_t len);
/*
 * Whether the header value piece starting at `at` begins a continuation line (obs-fold): the bytes
 * before it, past spaces and tabs, end a line instead of being the field's colon. `at` must follow
 * a header name and colon in the same buffer, which llhttp's value spans always do. Only for a
 * piece of at least one byte: llhttp gives an empty value as a zero-length span at the start of
 * the next line, which this would take for a fold.
 */
bool px_http_is_fold(const char *at);
/* Whether a span is a valid token (RFC 9110 tchar+). */
bool px_http_token_ok(const char *v, size_t len);
/* Whether a Host value is uri-host [ ":" port ] with a valid reg-name or IP literal. */
bool px_http_host_ok(const char *v, size_t len);
/* Whether `name` (len bytes) is a hop-by-hop header RFC 9110 7.6.1 names, or one of the framing. */
bool px_http_is_hop(const char *name, size_t len);
/* Whether a comma-separated list contains `token` (case-insensitive), e.g. Connection: close. */
bool px_http_list_has(const char *v, size_t len, const char *token);
/* The same with a token of tlen bytes. */
bool px_http_list_has_n(const char *v, size_t len, const char *token, size_t tlen);
/* Calls fn(arg, element, length) on each trimmed, non-empty element of a comma-separated list,
 * until fn returns true; returns whether one did. */
bool px_http_list_each(const char *v, size_t len, bool (*fn)(void *arg, const char *tok, size_t n),
                       void *arg);
/* Whether the header `name` is listed in any of the Connection values. */
bool px_http_conn_names(const struct xf_hdr *const conn_hdrs[], size_t n_conn, const char *name,
                        size_t len);

enum px_te {
    PX_TE_NONE = 0, /* no Transfer-Encoding */
    PX_TE_CHUNKED,  /* exactly "chunked" */
    PX_TE_BAD,      /* malformed, chunked not last, twice or with a parameter */
    PX_TE_UNKNOWN,  /* a well-formed list ending in chunked with other codings too */
};
/* Classifies the combined Transfer-Encoding values. */
enum px_te px_http_te_classify(const struct xf_hdr *te[], size_t n);

/* Parses the Content-Length values: all must be the same 1*DIGIT. Returns 0 or -1. */
int px_http_cl_parse(const struct xf_hdr *cl[], size_t n, uint64_t *out);

/* The reason phrase of a status the proxy generates. */
const char *px_http_reason(int status);

/* --- before the payload (px_l4.c): PROXY protocol headers and a ClientHello's server name; pure
 * functions, unit tested --- */

#define PX_PP1_MAX 107 /* the longest v1 line, CRLF included */
#define PX_PP2_MAX                                                                                 \
    1040 /* the longest v2 header accepted: 16 bytes and 1024 of addresses and TLVs */

enum px_pp_rc {
    PX_PP_MORE = 0, /* a header may still come: read more */
    PX_PP_DONE,     /* a complete header of out->len bytes */
    PX_PP_BAD,      /* not a PROXY header, or a malformed one (out->why) */
};

/* A PROXY header read: the client's address and the one it connected to, when it says them
 * (TCP over IPv4 or IPv6 from a PROXY command; not for LOCAL, UNKNOWN or other families). */
struct px_pp {
    size_t len; /* the header's length once PX_PP_DONE */
    bool have_addr;
    struct sockaddr_storage src, dst;
    const char *why; /* static text, for PX_PP_BAD */
};

/* Reads a v1 or v2 header at the start of the n bytes of buf. */
enum px_pp_rc px_pp_parse(const void *buf, size_t n, struct px_pp *out);
/* Writes a header of `version` (1 or 2) saying that src connected to dst (a v1 UNKNOWN, or a v2
 * with no address, when they are not both IPv4 or both IPv6). Returns its length, or 0 when it
 * does not fit in cap (108 bytes always do). */
size_t px_pp_build(int version, const struct sockaddr_storage *src,
                   const struct sockaddr_storage *dst, char *buf, size_t cap);

#define PX_HELLO_MAX (16384 + 5) /* the bytes of a ClientHello read at most, records included */
#define PX_SNI_MAX   253         /* a DNS name's longest text */

enum px_sni_rc {
    PX_SNI_MORE = 0, /* the ClientHello is not complete yet */
    PX_SNI_FOUND,    /* out->name holds the server name, lower-cased */
    PX_SNI_NONE,     /* no name: not TLS, no server_name, malformed, too large (out->why) */
};

struct px_sni {
    char name[PX_SNI_MAX + 1];
    size_t len;
    const char *why; /* static text, for PX_SNI_NONE */
};

/* Reads the server name from the first n bytes a client sent (TLS records, not decrypted). */
enum px_sni_rc px_sni_parse(const void *buf, size_t n, struct px_sni *out);

/* --- rewriting heads (px_rewrite.c): pure functions, unit tested --- */

/* A parsed request head and what the proxy knows of its client. */
struct px_req_in {
    uint8_t method; /* llhttp_method_t */
    uint8_t minor;  /* HTTP/1.minor of the client */
    const char *url;
    size_t url_len;
    const struct xf_hdr *hdrs;
    size_t n_hdrs;
    const char *client_ip;     /* appended to X-Forwarded-For */
    const char *proto;         /* X-Forwarded-Proto: "http" */
    const char *fallback_host; /* Host for an HTTP/1.0 request without one (the node) */
    uint64_t max_body;         /* 0: no limit */
    /* llhttp saw a Transfer-Encoding whose last coding it does not take for chunked: its framing
     * wins, so a value px_http_te_classify calls chunked is refused (see px_rewrite_request). */
    bool parser_te_other;
};

/* What the rewrite decided about the request's framing. */
struct px_req_out {
    bool chunked;    /* the body goes to the node chunked */
    bool has_length; /* ... or with this Content-Length */
    uint64_t content_length;
    bool close;      /* the client sent Connection: close (forwarded, node conn not reused) */
    bool expect_100; /* the client waits for 100 Continue before it sends the body */
    /* The protocols offered to the node (Upgrade minus h2c, comma-joined); length 0: no
     * upgrade, the Upgrade fields were dropped. */
    char upgrade[128];
    size_t upgrade_len;
};

/*
 * Checks a complete request head against what a front proxy must refuse and appends the request
 * head the node will see to `out`: the request line (HTTP/1.1), Host, the end-to-end headers in
 * order, X-Forwarded-For/-Proto/-Host, and framing of the proxy's own. Hop-by-hop headers and the
 * ones Connection names are dropped. Returns 0, or the HTTP status to answer with *why set.
 */
int px_rewrite_request(const struct px_req_in *in, struct px_buf *out, struct px_req_out *res,
                       const char **why);

/* A parsed response head and what the proxy knows of the request it answers. */
struct px_resp_in {
    int status;
    const char *reason;
    size_t reason_len;
    uint8_t http_major;
    const struct xf_hdr *hdrs;
    size_t n_hdrs;
    uint8_t req_method;        /* llhttp_method_t of the request */
    uint8_t client_minor;      /* HTTP/1.minor of the client */
    bool client_ka;            /* the client connection may stay open */
    const char *expose_name;   /* split.expose: a header naming the route; NULL when off */
    const char *expose_value;  /* its value: "CLUSTER NODE" */
    const char *epoch_name;    /* fleet.epoch_header; NULL when off */
    const char *epoch_value;   /* the routing epoch of the request's snapshot */
    const char *upgrade_offer; /* the protocols the request offered (px_req_out); NULL: none */
    bool parser_te_other;      /* as in px_req_in */
};

struct px_resp_out {
    bool interim;     /* 1xx: the final response follows */
    bool no_body;     /* HEAD, 1xx, 204, 304: the parser must be told */
    bool chunked_out; /* the body is chunked to the client */
    bool close_out;   /* the body to the client ends with the connection */
    bool ka;          /* the client connection stays open after it */
    bool suspect;     /* HEAD, or framing on a 204/304: the node connection is not reused */
    bool upgrade;     /* a 101 to an offered protocol: the connection becomes a tunnel */
    bool websocket;   /* ... to WebSocket (RFC 6455) */
};

/*
 * Checks a response head and appends the head the client will see to `out` (nothing for a 1xx to
 * an HTTP/1.0 client). Returns 0, or -1 with *why set when the response must become a 502.
 */
int px_rewrite_response(const struct px_resp_in *in, struct px_buf *out, struct px_resp_out *res,
                        const char **why);

/* --- the worker, connections and transactions --- */

struct px_worker;
struct px_client;
struct px_upstream;
struct px_txn;
struct px_tunnel;

/*
 * Where a worker connects for a node: its own address (target 0), or its host at a listener's
 * node_port (targets 1..). Connections to one target never serve another, so each has its idle
 * list; the limits and the queue are the node's, shared by its targets.
 */
#define PX_TLS_NODE_SESSIONS 2
struct px_pool_target {
    struct cfg_addr addr; /* the node's address, or its host at the target's port */
    TAILQ_HEAD(px_upstream_list, px_upstream) idle;
    unsigned n_idle;
    /* Owned: the last TLS sessions the node gave, newest last, to resume. A TLS 1.3 session is
     * offered once (RFC 8446 C.4: OpenSSL resumes it once), and a node gives two tickets after a
     * full handshake and one after a resumption, so each connection finds one. */
    SSL_SESSION *tls_sess[PX_TLS_NODE_SESSIONS];
    uint8_t n_tls_sess;
    unsigned tls_sess_gen; /* w->node_tls_gen when they were made: older ones are not offered */
};

/*
 * Per-node state of one worker: the pools of idle keep-alive connections, the limits and their
 * queue, and counters. Pools are indexed by the node's id, which stays the same across snapshots;
 * a pool outlives them all.
 */
struct px_pool {
    uint32_t id;
    /* Shared by every worker: the limit's slots taken, the requests waiting and which workers
     * have some, the node's run of faults. NULL only when out of memory. */
    struct px_node_share *share; /* borrowed from the control thread's table */
    bool obs_failed;             /* the last observation sent to the health checks was a failure */
    uint64_t obs_ok_ms;          /* when the last success was sent */
    unsigned n_idle;             /* over every target */
    unsigned gen; /* bumped when the node's address changes: older connections are not reused */
    unsigned n_busy;
    bool closing;       /* the node is not up in the current snapshot (draining, disabled, removed):
                           its connections close instead of going back to the pool */
    bool removed;       /* its node is not in the current snapshot: freed once quiet */
    unsigned max_conns; /* busy connections (0: no limit), from the node */
    unsigned max_pending; /* transactions that may wait for one */
    /* Idle connections this worker keeps: its share of clusters.*.max_idle; UINT_MAX: auto, the
     * most busy at once in this period or the last (each upstream_idle long). */
    unsigned max_idle;
    unsigned peak_busy, peak_prev;
    uint64_t peak_since_ms;
    TAILQ_HEAD(, px_txn) waiting; /* borrowed: transactions waiting for a connection, FIFO */
    unsigned n_waiting;
    /* A run of faults of the node seen by this worker (docs/architecture.md, "Logs"). */
    unsigned fault_count; /* faults in the run; 0: none running */
    uint64_t fault_first_ms, fault_last_ms;
    char fault_last[256];     /* the last fault, as logged */
    struct event *fault_ev;   /* owned: ends a run that stayed quiet */
    struct px_worker *w;      /* borrowed */
    size_t n_targets;         /* fewer than the worker's after a reload added a node_port: grown
                                 at the pool's next use (px_worker_pool) */
    struct px_pool_target *t; /* owned: n_targets of them */
};

/* A listening address of one worker. It outlives a reload that removes it (closed, kept in
 * w->gone_listeners) for as long as the worker runs: connections it took point to it. */
struct px_listener {
    struct px_worker *w;      /* borrowed */
    struct cfg_listener conf; /* copied from the config in force */
    unsigned target;          /* where its requests go: index of w->target_ports */
    int fd;                   /* -1 once closed */
    struct event ev;          /* assigned by the worker that owns it */
    bool paused;  /* its event is not armed: not accepting (see px_worker_accept_update) */
    SSL_CTX *tls; /* a counted reference (SSL_CTX_up_ref): TLS is terminated here; NULL: plain */
    struct px_listener *next_gone; /* in w->gone_listeners once a reload removed it */
};

/* Buffered access log of one worker; flushed by size and by a 1 s timer, never per request. */
struct px_alog {
    int fd; /* -1 when off */
    bool owns_fd;
    bool pipe;           /* not a regular file: written in whole lines of at most PIPE_BUF bytes */
    bool json;           /* access_log_format: json */
    bool sampled;        /* access_log_sample < 1: a line that is no error is kept at random */
    uint64_t keep_below; /* ... when the next random number is below this (sample x 2^64) */
    uint64_t rng;        /* xorshift64* state, seeded per worker; never 0 */
    struct px_buf buf;
    struct event *timer; /* owned */
    uint64_t dropped;
};

/* The parse of one request head: spans into the bytes being parsed, valid during the parse. */
struct px_req_head {
    const char *url;
    size_t url_len;
    const char *end; /* the end of the bytes being parsed */
    size_t n_hdrs;
    bool field_open; /* a header name was seen and its value not finished */
    bool complete;   /* on_headers_complete ran */
    int status;      /* a status chosen by a check (0: llhttp's error decides) */
    const char *why;
};

/* The parse of one response head. */
struct px_resp_head {
    const char *reason;
    size_t reason_len;
    size_t n_hdrs;
    bool field_open;
    bool complete;
    const char *why; /* set when a check refused the head */
};

/* A snapshot this worker routes with, and how many of its transactions still use it. */
struct px_snap {
    struct bal_snapshot *s; /* owns one reference */
    unsigned inflight;
    TAILQ_ENTRY(px_snap) link; /* in w->retired once replaced */
};

#define PX_SIGNALS 5 /* the signals the control thread handles: TERM, INT, HUP, USR1, CHLD */

/*
 * What one worker holds per node id, published for the control thread (show nodes, and whether
 * an id is free for a new node). Only the worker writes (relaxed atomic stores); it grows by a
 * copy published through one pointer, and the arrays it replaced stay until the worker is freed,
 * so a reader never sees freed memory.
 */
struct px_usage {
    size_t n;                 /* ids 0..n-1 */
    struct xf_node_stats *ns; /* each node's counters (the control thread sums the workers') */
    uint32_t *active;         /* requests in flight (least_conn reads it too) */
    uint32_t *idle;           /* idle pooled connections */
    uint32_t *tunnels;        /* tunnels open (WebSocket): also counted in active */
    uint8_t *held;            /* 1: the worker has a pool under the id (connections may remain) */
    struct px_usage *older;   /* owned: the one this replaced */
};

/*
 * A node's limit across workers (docs/config.md, "max_connections"): slots are taken with a
 * compare-and-swap only for nodes that have a limit, so unlimited nodes cost nothing shared.
 */
struct px_node_share {
    unsigned busy;    /* slots taken: busy connections to the node, every worker (atomic) */
    unsigned waiting; /* requests waiting for a slot, every worker (atomic) */
    uint64_t waiters; /* bit i: worker i has requests waiting (atomic) */
    /* The node's current run of faults, seen by any worker: logged once when it begins and
     * summed up once when it ends (atomic). */
    unsigned faults;
    uint64_t fault_first_ms, fault_last_ms;
};

/* Messages from the control thread: bits set in px_worker.msgs, then its eventfd poked. */
enum px_msg {
    PX_MSG_REFRESH = 1u << 0,  /* take the current snapshot now */
    PX_MSG_START = 1u << 1,    /* start-up is over: accept */
    PX_MSG_SHUTDOWN = 1u << 2, /* stop accepting and finish (a second time: at once) */
    PX_MSG_REOPEN = 1u << 3,   /* open the access log's file again */
    PX_MSG_WAKE = 1u << 4,     /* a slot of a limited node freed elsewhere: look at the queues */
    PX_MSG_ACCEPT = 1u << 5,   /* limits.max_connections no longer reached: accept again */
    PX_MSG_RESUME = 1u << 6,   /* the health checks read this worker's reports of failures */
    PX_MSG_RELOAD = 1u << 7,   /* a reload: take w->reload_msg, then say so in w->reloaded */
};

/*
 * A reload handed to one worker: everything it needs that could fail to allocate is made by the
 * control thread beforehand, so the worker's part cannot fail. Written before PX_MSG_RELOAD is
 * posted, read once by the worker; one reload at a time.
 */
struct px_reload_msg {
    uint64_t gen;          /* the reload's number: w->reloaded takes it when done */
    const struct cfg *cfg; /* a hold, the worker's from now on */
    /* The new config's listeners in its order: a new one (bound for this worker, conf set) where
     * the worker has none at the address, NULL where it has (it keeps its socket). Owned by the
     * message until the worker takes them. */
    struct px_listener **listeners;
    uint16_t *target_ports; /* the worker's targets with the new node_ports after them */
    size_t n_targets;
    struct xf_hdr *hdrs, *resp_hdrs; /* larger header tables (limits.max_headers rose), or NULL */
    size_t hdrs_cap, resp_hdrs_cap;
    SSL_CTX **tls; /* owned: each listener's TLS context (a reference each), NULL for plain ones */
    SSL_CTX *node_tls[CFG_CLUSTER_COUNT]; /* owned references: TLS to each cluster's nodes */
};

/* --- TLS contexts (px_tls.c; a client connection's TLS is in px_conn.h) --- */

/* Process-wide set-up (the ticket keys' master secret); once, before any context. 0, or -1. */
int px_tls_init(struct xf_err *err);
/* The life of a session ticket key (tls.ticket_rotation); read by every worker's handshakes. */
void px_tls_set_rotation(unsigned rotation_ms);
/* The ticket secret, for a binary upgrade: copies it into out (cap >= 32) and returns its length
 * (arg unused: the adm_server_set_takeover_secret callback). */
size_t px_tls_ticket_secret(void *arg, unsigned char *out, size_t cap);
/* The new process of a binary upgrade takes the old one's ticket secret (before the workers
 * start), so that the tickets its clients hold still resume: 0, or -1 with err (not 32 bytes). */
int px_tls_ticket_secret_set(const unsigned char *secret, size_t len, struct xf_err *err);
/*
 * A listener's TLS context, its certificates read and checked (chain, key match, names, dates:
 * expired ones are warned about, not refused), SNI choosing among them. Returns a reference the
 * caller frees with SSL_CTX_free, or NULL with err ("FILE:LINE:COL: key.path: what is wrong").
 */
SSL_CTX *px_tls_listen_new(const struct cfg_tls_listen *t, unsigned rotation_ms,
                           struct xf_err *err);
/* Contexts for each of cfg's listeners (NULL for plain ones) into *out, owned by the caller
 * (px_tls_set_free with cfg->n_listeners). 0, or -1 with err and nothing left allocated. */
int px_tls_set_new(const struct cfg *cfg, SSL_CTX ***out, struct xf_err *err);
void px_tls_set_free(SSL_CTX **set, size_t n);
/* The client contexts for each cluster's nodes (NULL where plain) into out: the CAs, the client
 * certificate, resumption. 0, or -1 with err and out all NULL. */
int px_tls_nodes_new(const struct cfg *cfg, SSL_CTX *out[CFG_CLUSTER_COUNT], struct xf_err *err);
void px_tls_nodes_free(SSL_CTX *set[CFG_CLUSTER_COUNT]);
/* Moves references: frees dst's, takes src's (src emptied). */
void px_tls_nodes_move(SSL_CTX *dst[CFG_CLUSTER_COUNT], SSL_CTX *src[CFG_CLUSTER_COUNT]);
/* Copies references (each taken again). */
void px_tls_nodes_copy(SSL_CTX *dst[CFG_CLUSTER_COUNT], SSL_CTX *const src[CFG_CLUSTER_COUNT]);
/* Calls line(arg, text) for each certificate of a listener's context: "LISTENER CERT NAMES
 * NOT_AFTER DAYS_LEFT" (names comma-separated, NOT_AFTER in UTC). */
void px_tls_show(SSL_CTX *ctx, const char *listener, void (*line)(void *arg, const char *text),
                 void *arg);
/* Logs a warning for each certificate of ctx that expired or expires within 14 days. */
void px_tls_warn_expiry(SSL_CTX *ctx);
/* Drops the expired sessions of ctx's session cache (the control thread, once a minute). */
void px_tls_flush(SSL_CTX *ctx);
/* A client session toward a node at addr_text ("host:port") with ctx: the name sent and checked
 * is sni, else the host (an IP address is checked, not sent). NULL when out of memory. */
SSL *px_tls_node_ssl(SSL_CTX *ctx, const char *sni, const char *addr_text);
/* RFC 6125: whether a certificate's name (a leading "*." stands for one label) covers host. */
bool px_tls_name_match(const char *pattern, const char *host);

struct px_ctl;

#define PX_BUF_KEEP  8u    /* first blocks a worker keeps in memory after a burst (px_buf_trim) */
#define PX_TXN_CACHE 64u   /* transactions a worker keeps for reuse */
#define PX_OBS_RING  4096u /* a power of two */
/* A worker tells the health checks of a success at most this often per node, of every failure,
 * and of the first success after a failure. */
#define PX_OBS_OK_MS 50u

/* Lines of one kind, at most PX_LOG_BURST per 10 s per worker; the rest are counted and said once
 * their window ends (px_ratelog_allow). */
#define PX_LOG_BURST 5
struct px_ratelog {
    uint64_t window_ms; /* the window's start */
    unsigned n;         /* lines written in it */
    unsigned dropped;   /* lines left out */
};
/* Whether a line may be written now; a window that ended with lines left out is summed up first
 * ("event=EVENT worker=N suppressed=K" at WARN in `module`). */
bool px_ratelog_allow(struct px_ratelog *r, const char *module, const char *event, unsigned worker);

struct px_worker {
    unsigned index;                  /* 0..n-1 */
    struct px_ctl *ctl;              /* borrowed */
    pthread_t thread;                /* valid while `running` */
    bool running;                    /* its thread was started and not joined */
    int efd;                         /* owned: eventfd the control thread pokes */
    struct event *ev_msg;            /* owned */
    unsigned msgs;                   /* enum px_msg bits not handled yet (atomic) */
    uint64_t applied;                /* router version of the snapshot it routes with (atomic) */
    struct px_reload_msg reload_msg; /* see PX_MSG_RELOAD */
    uint64_t reloaded;               /* the last reload it applied (atomic) */
    bool done;                       /* its loop ended (atomic) */
    bool shutdown_seen;              /* a SHUTDOWN came before */
    struct px_usage *usage;          /* owned: published through usage_pub */
    struct px_usage *usage_pub;      /* the same, for the control thread (atomic) */
    struct event *ev_tick;           /* owned: each second, px_worker_on_tick */
    /* Observations for the health checks (id << 1 | ok), to the control thread: a ring with one
     * writer (this worker) and one reader (the control thread); head and tail are atomic. */
    uint32_t obs[PX_OBS_RING];
    unsigned obs_head, obs_tail;
    bool obs_poked;       /* the control thread was poked and has not looked yet (atomic) */
    uint64_t obs_dropped; /* observations lost to a full ring (atomic) */
    /* The ring position just past the last failure reported, and the last position known to be
     * read: while the control thread has not read a failure, new requests wait (w->held), so
     * that a request routed after a failure sees the verdict on it (an ejection), as with one
     * thread. Costs a compare per request, and a control round trip only after a failure. */
    unsigned obs_fail_mark, obs_fail_read;
    TAILQ_HEAD(, px_client) held;         /* borrowed: clients whose next request waits for that */
    struct event_base *base;              /* owned */
    const struct cfg *cfg;                /* a hold: the config this worker serves with */
    SSL_CTX *node_tls[CFG_CLUSTER_COUNT]; /* owned references: TLS to each cluster's nodes */
    unsigned node_tls_gen;     /* bumped when they change: sessions of older ones are not resumed */
    struct bal_router *router; /* borrowed: where new snapshots are published */
    struct px_snap *snap;      /* owned: the snapshot new requests are routed with */
    uint64_t snap_version;     /* the router version snap was taken at */
    TAILQ_HEAD(, px_snap) retired; /* owned: older snapshots still used by transactions */
    struct bal_state bal;
    struct px_pool **pools; /* owned: one per node id, allocated on first use; grows */
    uint16_t *target_ports; /* owned: 0 (the node's own port), then each listener node_port */
    size_t n_targets;
    uint32_t *active; /* borrowed from usage: requests in flight per node id (least_conn) */
    size_t n_pools;
    struct px_listener **listeners; /* owned: the config's, in its order */
    size_t n_listeners;
    struct px_listener *gone_listeners; /* owned: removed by reloads, closed; a list */
    char *rbuf;                         /* owned: the read scratch buffer */
    size_t rbuf_cap;
    struct xf_hdr *hdrs; /* owned: header table of the head being parsed */
    size_t hdrs_cap;
    struct px_req_head req_head;   /* the request head being parsed (one at a time) */
    struct px_resp_head resp_head; /* the response head being parsed (one at a time) */
    struct xf_hdr *resp_hdrs;      /* owned: header table of the response head being parsed */
    size_t resp_hdrs_cap;
    struct px_alog alog;
    struct xf_stats *stats;                 /* owned: this worker's counters */
    struct xf_preview *preview;             /* owned: requests and keys per split bucket */
    struct px_txn *txn_cache[PX_TXN_CACHE]; /* owned: freed transactions for the next requests */
    unsigned n_txn_cache;
    char why_buf[192]; /* a formatted error text, used at once */
    const struct timeval *tv_client_idle, *tv_client_header, *tv_upstream_response,
        *tv_upstream_idle, *tv_connect, *tv_queue; /* libevent common timeouts, or tv_plain */
    struct timeval tv_plain[6]; /* the same when a base has no common timeout left to give */
    bool passive;               /* observations go to the health checks (px_ctl_observe) */
    bool failing_over[CFG_CLUSTER_COUNT]; /* logged once per episode */
    struct px_ratelog tls_log;            /* failed handshakes */
    struct px_ratelog l4_log;             /* refused PROXY headers, relays that found no node */
    TAILQ_HEAD(, px_client) clients;
    TAILQ_HEAD(, px_tunnel) tunnels;        /* borrowed: the clients' tunnels */
    TAILQ_HEAD(, px_tunnel) tunnels_doomed; /* borrowed: those to close (px_tunnel_follow) */
    unsigned n_doomed;                      /* in tunnels_doomed */
    struct event *ev_tunnel_close;          /* owned: closes doomed tunnels at the rate */
    double tunnel_close_budget;             /* closings the rate allows and not done yet */
    double tunnel_drain_rate; /* while stopping: closings per second that end them in time */
    uint64_t tunnel_close_ms; /* the last tick of ev_tunnel_close */
    uint64_t tunnel_rng;      /* xorshift state: the ticks' jitter */
    unsigned n_clients;
    unsigned clients_peak; /* the most open at once since memory was last given back */
    bool draining;
    bool accepting;                /* start-up is over: the listeners may accept */
    bool accept_backoff;           /* accept ran out of descriptors: waiting ev_accept_retry */
    uint64_t accept_episode_ms;    /* when its current run of such failures began; 0: none */
    struct event *ev_accept_retry; /* owned */
    struct event *ev_trim;         /* owned: gives memory back after a wave of connections */
    struct event *ev_deadline;     /* owned */
    int exit_code;
};

/*
 * Creates worker `index` of `ctl` (borrowed, with its config and router): its event loop,
 * buffers, pools and access log. It does not run until px_worker_spawn.
 */
struct px_worker *px_worker_new(struct px_ctl *ctl, unsigned index, struct xf_err *err);
/* Starts its thread (signals blocked in it). 0, or -1 with err. */
int px_worker_spawn(struct px_worker *w, struct xf_err *err);
/* Sets `msg` bits and wakes the worker (any thread). */
void px_worker_post(struct px_worker *w, unsigned msg);
/* Waits for its thread to end (after it finished its shutdown). */
void px_worker_join(struct px_worker *w);
void px_worker_free(struct px_worker *w);

/*
 * The control thread (px_ctl.c): the admin socket, health checks, ramps, the state file, the
 * resolver and signals run on its event loop; it starts the workers, tells them of each new
 * snapshot, sums their counters, and waits for every one of them at shutdown. A worker never
 * waits for it.
 */
struct px_ctl {
    struct event_base *base;    /* owned */
    const struct cfg *cfg;      /* a hold: the config in force (workers take it at a reload) */
    unsigned max_clients;       /* its limits.max_connections, for the workers (atomic) */
    struct bal_router *router;  /* borrowed */
    struct px_worker **workers; /* owned */
    unsigned n_workers;
    unsigned tunnels_doomed; /* tunnels doomed in every worker (atomic): the close rate's shares */
    SSL_CTX **tls;           /* owned: the TLS context of each of cfg's listeners (NULL: plain) */
    SSL_CTX *node_tls[CFG_CLUSTER_COUNT]; /* owned: TLS to each cluster's nodes (NULL: plain) */
    struct event *ev_tls_tick;            /* owned: px_ctl_tls_tick, each minute */
    unsigned tls_ticks;                   /* its runs, for the daily expiry check */
    int efd;                              /* owned: eventfd the workers poke */
    struct event *ev_efd;                 /* owned */
    struct xf_stats *stats;               /* owned: the health checks' counters */
    struct xf_mon *mon;                   /* owned: the seconds taken from the workers */
    struct event *ev_mon;                 /* owned: takes them each second (px_mon.c) */
    struct px_health *health;             /* borrowed */
    struct adm_server *adm;               /* borrowed; NULL without an admin socket */
    bool workers_done;                    /* every worker's loop ended: the control loop ends */
    struct px_node_share **shares; /* owned: PX_SHARE_CHUNKS chunks, allocated on first use */
    struct event *ev_signals[PX_SIGNALS]; /* owned */
    unsigned clients;                     /* client connections open in every worker (atomic) */
    unsigned accept_paused;               /* workers in an episode of failed accepts (atomic) */
    uint64_t accept_episode_ms;           /* when the process's episode began (atomic) */
    uint64_t accept_failures;             /* failed accepts in it, every worker (atomic) */
    bool accepting, draining;
    bool handed;  /* a new process took over (binary upgrade): this one only finishes */
    bool freeing; /* the workers are being freed (threads joined): nothing is posted to them */
    int exit_code;
    /* Reloads (px_reload.c): one at a time; the one under way waits for every worker. */
    uint64_t reload_gen;   /* the last reload handed to the workers */
    bool reloading;        /* it is not applied by every worker yet */
    bool reload_tls;       /* the one under way is `tls reload` (certificates only) */
    bool reload_again;     /* a SIGHUP came meanwhile: reload once more */
    char reload_text[512]; /* what it changed: the reply's text */
    void (*reload_done)(void *arg, bool ok, const char *text); /* who waits for it; may be NULL */
    void *reload_done_arg;
    unsigned reloads; /* reloads applied since the start */
    /* A binary upgrade this process starts itself (px_reexec.c, `reexec`): one at a time. */
    char *exe;                     /* owned: this binary's path, read at start; NULL: unknown */
    long reexec_pid;               /* the new process; 0: none */
    int reexec_fd;                 /* owned: the pipe it writes why it failed to; -1: none */
    struct event *ev_reexec;       /* owned: its deadline to begin the handover */
    struct event *ev_reexec_reply; /* owned: the outcome, given to `done` from the loop */
    void (*reexec_done)(void *arg, bool ok, const char *text); /* who waits; NULL once told */
    void *reexec_done_arg;
    bool reexec_finished, reexec_ok; /* the outcome is known (and what it is) */
    char reexec_text[768];
};

#define PX_SHARE_CHUNK  1024u
#define PX_SHARE_CHUNKS 1024u

/* The control thread on `cfg` and `router` (borrowed) with its workers (not started). */
struct px_ctl *px_ctl_new(const struct cfg *cfg, struct bal_router *router, struct xf_err *err);
/* Binds every worker's listeners (SO_REUSEPORT: each worker has its own sockets on the same
 * addresses); 0 or -1 with err naming the address and the reason. A process taking over passes
 * the sockets it was handed (inherited, n_inherited): those at a listener's address are served
 * instead of new ones (the ones taken are set to -1; those of no listener are closed). */
int px_ctl_listen(struct px_ctl *ctl, int *inherited, size_t n_inherited, struct xf_err *err);
/* Starts the worker threads; 0 or -1 with err. */
int px_ctl_spawn(struct px_ctl *ctl, struct xf_err *err);
/* Wires the admin socket and the health checks (both borrowed, either may be NULL). */
void px_ctl_wire(struct px_ctl *ctl, struct adm_server *adm, struct px_health *health);
/*
 * Reloads the configuration from the file it was read from (px_reload.c): reads and checks it,
 * refuses a change that cannot be made while running, opens the new listeners and builds the new
 * snapshot; only then puts it all in force -- the admin socket and the health checks at once,
 * each worker at its next turn. done(arg, ok, text) (may be NULL) is called once: before this
 * returns when the reload fails or must wait for one under way (text: why), else when every
 * worker has applied it (text: what changed). Either way the outcome is logged.
 */
void px_ctl_reload(struct px_ctl *ctl, void (*done)(void *arg, bool ok, const char *text),
                   void *arg);
/* adm_reload_fn for `tls reload` (arg: the ctl): the certificate and key files of the
 * configuration in force read again and put in force in every worker (open connections keep
 * theirs); a file that is wrong changes nothing and the reply says which. */
void px_ctl_tls_reload(void *arg, void (*done)(void *arg, bool ok, const char *text),
                       void *done_arg);
/* adm_tls_show_fn for `show tls` (arg: the ctl). */
void px_ctl_tls_show(void *arg, void (*line)(void *ctx, const char *text), void *ctx);
/* The TLS timer (arg: the ctl), each minute: the session caches' clean-up, and once a day a
 * warning for each certificate near or past its end. */
void px_ctl_tls_tick(evutil_socket_t fd, short what, void *arg);
/* adm_listen_fds_fn (arg: the ctl): every worker's listening sockets, for a binary upgrade;
 * SIZE_MAX while a reload is under way. */
size_t px_ctl_listen_fds(void *arg, int *fds, size_t cap);
/* Ends the process before it accepted anything (a takeover that failed at its last step). */
void px_ctl_stop_now(struct px_ctl *ctl);
/* The new process took over (arg: the ctl): stop accepting, finish, exit 0. */
void px_ctl_handed_over(void *arg, long new_pid);
/*
 * Binary upgrade started from here (px_reexec.c; arg: the ctl): runs the binary installed at this
 * process's path (read at start) with `-c FILE --takeover` in this process's cgroup and session,
 * so under systemd the new process belongs to the service. done(arg, ok, text) is called once:
 * before this returns when it cannot start, else from the loop when the new process took over
 * (text: both pids) or exited or did not begin within its deadline (text: why, as the new process
 * said it).
 */
void px_ctl_reexec(void *arg, void (*done)(void *arg, bool ok, const char *text), void *done_arg);
/* Records this binary's path for px_ctl_reexec; 0, or -1 with err. */
int px_reexec_init(struct px_ctl *ctl, struct xf_err *err);
/* SIGCHLD: reaps the children; the one px_ctl_reexec started tells its outcome if it exited. */
void px_reexec_reap(struct px_ctl *ctl);
/* The state went to new_pid, which took over: `reexec` answers if that is its process. */
void px_reexec_handed(struct px_ctl *ctl, long new_pid);
/* The process begins to stop (why: "this crossfade is stopping (SIGTERM)"): a `reexec` whose
 * new process has not taken over fails. */
void px_reexec_stopping(struct px_ctl *ctl, const char *why);
/* The control loop has ended: a `reexec` still waiting for its reply gets it now (the admin
 * socket sends it as the process exits). */
void px_reexec_settle(struct px_ctl *ctl);
/* Frees what px_reexec_init and px_ctl_reexec hold. */
void px_reexec_fini(struct px_ctl *ctl);
/* A worker poked: the reload under way ends once every worker has applied it. */
void px_reload_check(struct px_ctl *ctl);
/* Start-up is over: the workers accept (arg: the ctl). */
void px_ctl_start(void *arg);
/* A snapshot was published (arg: the ctl): every worker takes it now. */
void px_ctl_refresh(void *arg);
/* Runs the control loop until every worker has finished; returns the exit status. */
int px_ctl_run(struct px_ctl *ctl);
/* Joins the workers (after px_ctl_run) and frees everything; NULL is a no-op. */
void px_ctl_free(struct px_ctl *ctl);
/* A client connection slot under limits.max_connections, for every worker: 0, or -1 at the
 * limit. Given back with px_ctl_client_put, which lets paused workers accept again. */
int px_ctl_client_take(struct px_ctl *ctl);
void px_ctl_client_put(struct px_ctl *ctl);
/* The share of node id `id` (created on first use; NULL when out of memory or id too large). */
struct px_node_share *px_ctl_share(struct px_ctl *ctl, uint32_t id);
/* A worker saw an attempt on node `id` end (ok or failed): told to the health checks. */
void px_worker_observe(struct px_worker *w, uint32_t id, bool ok);
/* Whether a failure this worker reported is still unread by the control thread. */
static inline bool
px_worker_behind(struct px_worker *w)
{
    if (XF_LIKELY(w->obs_fail_mark == w->obs_fail_read))
        return false;
    if ((int)(w->obs_fail_mark - __atomic_load_n(&w->obs_head, __ATOMIC_ACQUIRE)) > 0)
        return true;
    w->obs_fail_read = w->obs_fail_mark;
    return false;
}
/* Holds client c's next request until px_worker_behind is false (reads stop meanwhile). */
void px_worker_hold(struct px_worker *w, struct px_client *c);
/* adm callbacks: the sum of the workers' counters, of their usage of a node id, whether any still
 * holds the id, the router version every worker has taken, and the proxy's status. */
void px_ctl_stats(void *arg, struct xf_stats *out);
/* The seconds kept of the workers' counters (px_mon.c): started with the control thread, taken
 * each second; px_ctl_mon takes the latest first (adm_monitor's functions, on the control
 * thread). */
int px_mon_start(struct px_ctl *ctl, struct xf_err *err);
void px_mon_stop(struct px_ctl *ctl);
const struct xf_mon *px_ctl_mon(void *arg);
int px_ctl_preview(void *arg, unsigned from_bp, unsigned to_bp, struct xf_preview_sum *out);
int px_ctl_node_stats(void *arg, uint32_t id, struct xf_node_stats *out);
int px_ctl_node_info(void *arg, uint32_t id, unsigned *active, unsigned *idle, unsigned *tunnels);
bool px_ctl_id_busy(void *arg, uint32_t id);
uint64_t px_ctl_applied(void *arg);
const char *px_ctl_status(void *arg);

/* Internal to proxy/ */
/* Takes fd, and the client slot taken for it (px_ctl_client_take): both go with the client, or at
 * once when it cannot be set up. */
void px_client_accept(struct px_worker *w, struct px_listener *l, int fd,
                      const struct sockaddr *sa);
void px_client_free(struct px_client *c);
void px_worker_client_gone(struct px_worker *w);
/* The snapshot to route a new request with (re-acquired when the router published a new one). */
struct px_snap *px_worker_snapshot(struct px_worker *w);
/* A transaction that used `ps` ended: a retired snapshot is let go with its last one. */
void px_worker_snapshot_done(struct px_worker *w, struct px_snap *ps);
/* Takes the current snapshot now rather than at the next request, so that pools of nodes taken
 * out close and their waiting requests move at once; publishes `applied`. */
void px_worker_refresh(struct px_worker *w);
/* The pool of a node id (created on first use); NULL when out of memory. */
struct px_pool *px_worker_pool(struct px_worker *w, const struct bal_node *node);
/* Closes every idle connection of a pool, of every target. */
void px_pool_close_idle(struct px_pool *pool);
/* The address text of a node as a transaction reaches it: the node's own, or its host at the
 * node_port of the listener that took it (for the logs and split.expose). */
const char *px_pool_target_text(const struct px_worker *w, const struct bal_node *node,
                                unsigned target);
void px_worker_begin_shutdown(struct px_worker *w);
/* Takes a slot of a limited node (pool->share): 0, or -1 when it is at its limit. */
int px_pool_slot_take(struct px_pool *pool);
/* Gives a slot back and wakes a request waiting for one, in this worker or another. */
void px_pool_slot_put(struct px_pool *pool);
/* Keeps pool->share's count of waiting requests and this worker's bit in step with n_waiting
 * (delta +1 or -1). */
void px_pool_waiting(struct px_pool *pool, int delta);

/* --- health checks (px_health.c): active probes, passive outlier ejection, slow start --- */

struct px_health;
struct adm_node_health;
/* A node's state changed: `what` names it ("node y/10.0.1.1:8000"), from and to say how. */
typedef void (*px_health_event_fn)(void *arg, const char *what, const char *from, const char *to);

/*
 * Starts the checks of every cluster that has `health` (probes on `base`), and passive detection
 * for every node; state changes are published as snapshots through the router and counted in
 * `stats` (borrowed, may be NULL). Nodes of a checked cluster start pending: out of service until
 * they pass `rise` checks. All borrowed objects must outlive it. NULL with err on failure.
 */
struct px_health *px_health_new(struct event_base *base, const struct cfg *cfg,
                                struct bal_router *router, struct xf_stats *stats,
                                struct xf_err *err);
/*
 * Start-up: calls ready(arg) once every node of a checked cluster has had its first verdict (a
 * check passed or failed), or after at most 10 s; at once when no cluster has checks. The proxy
 * accepts from then on, so that no client meets a cluster whose nodes nobody checked yet.
 */
void px_health_start(struct px_health *h, void (*ready)(void *arg), void *arg);
/* Whether start-up is over (ready was called). */
bool px_health_serving(const struct px_health *h);
/* Calls fn(arg) after each snapshot it publishes (the worker takes it at once). */
void px_health_set_notify(struct px_health *h, void (*fn)(void *arg), void *arg);
/* Calls fn(arg, ...) on each state change of a node (up, down, ejected, probation). */
void px_health_set_events(struct px_health *h, px_health_event_fn fn, void *arg);
/* Looks at the current snapshot now (arg: the px_health): nodes an admin command added get their
 * records and first probes at once, nodes brought back into service start their slow start. */
void px_health_refresh(void *arg);
/* The resolver (borrowed) that looks the nodes' host names up again every
 * clusters.*.resolve_interval; a node whose name gets a new address is published with it. */
void px_health_set_resolver(struct px_health *h, struct cfg_resolver *r);
/* The TLS contexts of each cluster's nodes (px_ctl's node_tls, which reloads update in place):
 * a TLS cluster's nodes are probed over TLS. */
void px_health_set_tls(struct px_health *h, SSL_CTX *const *node_tls);
/* Stops every probe and frees it; NULL is a no-op. */
/* A reload put `cfg` (borrowed, from now on instead of the one before) in force, its snapshot
 * published already: checks turned on or off per cluster, resolve intervals. */
void px_health_reload(struct px_health *h, const struct cfg *cfg);
void px_health_free(struct px_health *h);
/* The outcome of one attempt on live traffic for node `id` of cluster `c`: ok, or a connect
 * failure, timeout, reset, invalid response or 5xx. May publish a snapshot (ejection). */
void px_health_observe(struct px_health *h, uint32_t id, bool ok);
/* adm_health_info_fn for the admin socket (arg: the px_health). */
int px_health_info(void *arg, uint32_t id, struct adm_node_health *out);

void px_alog_init(struct px_alog *a);
/* Opens `target` (the config's access_log: a path, "-", or NULL when off) and takes the config's
 * format and sample (px_alog_configure). 0, or -1 with err. */
int px_alog_open(struct px_worker *w, const char *target, struct xf_err *err);
/* Takes access_log_format and access_log_sample from w->cfg: at the open, and at a reload that
 * keeps the path (the next line is written the new way). */
void px_alog_configure(struct px_worker *w);
void px_alog_flush(struct px_alog *a);
/* Opens the access log's file again (SIGUSR1, after logrotate moved it); the old one stays in use
 * when the new one cannot be opened (logged). */
void px_alog_reopen(struct px_worker *w);
void px_alog_close(struct px_alog *a);

#endif
