/* proxy/px_conn.h -- the client, upstream and transaction structs shared inside proxy/. */
#ifndef PX_CONN_H
#define PX_CONN_H

#include "proxy/px.h"

/* Output above this many bytes stops the reads that feed it until it drains below the low mark. */
#define PX_HIGH_MARK (256u * 1024u)
#define PX_LOW_MARK  (64u * 1024u)
/* How long a closing connection reads and drops what its client still sends. */
#define PX_LINGER_MS 2000
/* While stopping (shutdown, or a takeover), how long an idle keep-alive connection stays open for
 * its client's next request, which is answered with Connection: close: closing it at once would
 * fail a request the client sends at that moment (clients do not all retry). */
#define PX_DRAIN_IDLE_MS 1000

enum px_cstate {
    PX_C_HEAD = 0, /* waiting for, or reading, a request head */
    PX_C_BODY,     /* forwarding the request body */
    PX_C_DONE,     /* request complete; its response is pending */
};

struct px_client {
    struct px_worker *w;          /* borrowed */
    struct px_listener *l;        /* borrowed */
    struct px_txn *txn;           /* owned; NULL between requests */
    TAILQ_ENTRY(px_client) link;  /* in w->clients */
    TAILQ_ENTRY(px_client) hlink; /* in w->held while `held` */
    bool held;     /* its next request waits for the health checks to read this worker's reports */
    int fd;        /* owned */
    uint8_t state; /* enum px_cstate */
    bool first;    /* no request seen yet on this connection */
    bool eof;      /* the client shut its side */
    bool read_off; /* reads stopped (back-pressure, eof, closing) */
    bool wev_on;   /* waiting for EV_WRITE */
    bool closing;  /* close as soon as the output is flushed */
    bool linger;   /* close gracefully: shut our side, drop what the client still sends */
    bool lingering;
    bool abort;             /* close with a reset: the response was cut */
    bool in_feed;           /* inside px_client_feed: answers wait for it to finish them */
    uint64_t head_start_ms; /* when the partial head being read began; 0 when none */
    uint64_t req_end_ms;    /* when the request being read must be whole (client_request); 0: no
                               such limit */
    uint32_t n_requests;    /* requests read on this connection (max_requests_per_connection) */
    uint64_t linger_end_ms;
    uint64_t sent_total; /* bytes written to the client over the connection's life */
    struct event rev, wev;
    llhttp_t parser;
    struct px_buf in;     /* received bytes not consumed yet (partial head, pipelined requests) */
    struct px_buf out;    /* bytes waiting to be written to the client */
    struct bal_addr peer; /* the TCP peer, for the split's ip key */
    char ip[46];
    SSL *ssl;               /* owned; NULL on a plain listener */
    bool tls_hs;            /* the TLS handshake is under way */
    bool tls_shut;          /* close_notify was sent */
    bool tls_read_ww;       /* SSL_read waits for the socket to take a write */
    uint64_t tls_hs_end_ms; /* when an unfinished handshake is given up */
    char *tls_id; /* owned: the verified client certificate's identity for the split's cert:
                     keys, NUL-separated fields at tls_id_off (length 0: absent); NULL: none */
    uint16_t tls_id_off[BAL_CERT_COUNT], tls_id_len[BAL_CERT_COUNT];
    struct px_tunnel *tunnel; /* owned: after a 101, the tunnel that relays its bytes */
    /* Before HTTP or the relay (px_tcp.c): a PROXY header to read, a ClientHello to peek at. */
    bool raw;            /* a tcp-mode listener's: its bytes are relayed, never parsed */
    uint8_t pre;         /* enum px_pre */
    uint64_t pre_end_ms; /* when the PROXY header or the ClientHello is given up */
    struct sockaddr_storage *pp_addrs; /* owned: [0] client, [1] destination, from its PROXY
                                          header; NULL: the socket's own */
};

enum px_pre {
    PX_PRE_NONE = 0, /* HTTP requests (or, raw, the relay) */
    PX_PRE_PROXY,    /* reading the PROXY header (listen[].proxy_protocol) */
    PX_PRE_HELLO,    /* raw, key sni: reading the ClientHello into c->in */
};

enum px_ustate {
    PX_U_CONNECTING = 0,
    PX_U_BUSY,
    PX_U_IDLE,
};

struct px_upstream {
    struct px_worker *w;           /* borrowed */
    struct px_pool *pool;          /* borrowed */
    unsigned target;               /* index of pool->t: the address it is connected to */
    unsigned gen;                  /* pool->gen when it connected */
    struct px_txn *txn;            /* borrowed: the transaction it serves (which owns it) */
    TAILQ_ENTRY(px_upstream) link; /* in pool->t[target].idle while idle */
    int fd;                        /* owned */
    uint8_t state;                 /* enum px_ustate */
    bool reused;                   /* taken from the pool, not freshly connected */
    bool head_done;                /* the final response head has been parsed */
    bool interim;                  /* the head being parsed is a 1xx */
    bool got_bytes;                /* any response byte arrived */
    bool read_off;
    bool wev_on;
    bool resp_timer; /* the response timeout is armed on rev (the request was sent) */
    bool broken;     /* must not be reused */
    bool slot;       /* holds a slot of its node's limit (px_pool_slot_take) */
    uint64_t sent;   /* request bytes written for the transaction it serves */
    struct event rev, wev;
    llhttp_t parser;
    struct px_buf out;   /* request bytes not yet written to the node */
    struct px_buf in;    /* a partial response head */
    SSL *ssl;            /* owned; NULL for a plain node */
    bool tls_started;    /* connected: the TLS handshake began (state PX_U_CONNECTING until done) */
    bool tls_hs;         /* the TLS handshake is not over */
    bool tls_want_write; /* the handshake waits for the socket to take a write */
    bool tls_read_ww;    /* SSL_read waits for the socket to take a write */
    unsigned tls_gen;    /* w->node_tls_gen at its start */
    uint8_t pp_len;      /* the PROXY header at the start of out (clusters.*.proxy_protocol) */
};

/* A run of faults of a node ends after this long without one. */
#define PX_FAULT_QUIET_MS 10000u

/* The access log keeps this much of a request target in the transaction's `target` (the text
 * format's cut), and up to PX_ALOG_PATH_MAX of a longer one in `url_long` for the json format. */
#define PX_TARGET_URL_MAX 300
#define PX_ALOG_PATH_MAX  2048

/* At most this many nodes are tried for one request (cfg retries is at most 10). */
#define PX_TRIES_MAX 12

struct px_txn {
    struct px_client *c;         /* borrowed back-pointer */
    struct px_upstream *u;       /* owned while attached; NULL before and after */
    struct px_snap *snap;        /* the snapshot it was routed with (counted in snap->inflight) */
    const struct bal_node *node; /* borrowed from snap */
    enum cfg_cluster_id cluster; /* the cluster serving it (counted there) */
    struct bal_choice choice;    /* the routing decision, kept for a retry (node: see above) */
    /* Request bytes for the node while no connection holds them (queued, or its body buffered:
     * limits.request_buffer_bytes): head, then body. */
    struct px_buf held;
    /* A copy of what went to the first node for a replay (the head, and a buffered body):
     * idempotent requests, until a body byte read later went out or the node began to answer. */
    struct px_buf replay;
    uint32_t held_head;           /* while buffering: the head's length at the start of `held` */
    uint32_t tried[PX_TRIES_MAX]; /* ids of the nodes tried, the current one last */
    uint8_t n_tried;
    uint8_t n_retries;         /* retries counted against cfg retries */
    bool idempotent;           /* GET, HEAD, OPTIONS, PUT, DELETE, TRACE */
    bool x_only;               /* an admin_api listener's request: never to y */
    bool stale_retried;        /* one transparent retry after a stale keep-alive connection */
    bool queued;               /* waiting in pool->waiting (qpool) */
    bool woken;                /* a connection slot freed: its queue event is active */
    struct px_pool *qpool;     /* borrowed: the pool it waits for */
    TAILQ_ENTRY(px_txn) qlink; /* in qpool->waiting */
    struct event qev;          /* while queued: the wait's timeout, or activated to go on */
    uint64_t q_deadline_us;    /* when the wait ends */
    uint8_t node_target;       /* where on the node: pool->t index (its port, or a node_port) */
    uint8_t override;          /* enum bal_override_use: an ignored one goes in the access log */
    uint8_t method;
    uint8_t minor;         /* the client's HTTP/1.minor */
    bool client_ka;        /* the client wants the connection kept open */
    bool req_chunked;      /* the body goes to the node chunked */
    bool req_done;         /* the whole request was received */
    bool buffering;        /* the body is read into `held` before the request goes to a node */
    bool resp_started;     /* the final response head went to the client */
    bool resp_done;        /* the whole response is in the client's output */
    bool resp_chunked_out; /* the proxy chunks the body to the client */
    bool resp_close_out;   /* the body to the client is delimited by closing */
    bool resp_no_body;
    bool ka;         /* the client connection stays open after this response */
    bool counted;    /* counted in the stats of its cluster */
    bool failed;     /* counted as a failure */
    bool dispatched; /* counted in w->active[node->id] */
    bool up_close;   /* the client sent Connection: close: so does the node request */
    bool test;       /* test traffic (test_traffic): counted apart, kept out of the guard */
    int status;
    uint64_t req_body;  /* request payload bytes seen */
    uint64_t bytes_in;  /* request bytes received from the client */
    uint64_t bytes_out; /* response bytes queued for the client (set when it ends) */
    uint64_t out_mark;  /* sent_total + queued output when the transaction began */
    uint64_t t_start_us, t_up_start_us, t_up_end_us;
    uint64_t t_head_us; /* when the node's final response head was read (time to first byte) */
    size_t target_len;
    char target[384]; /* "METHOD target HTTP/1.x" for the access log, truncated */
    char *upgrade;    /* owned: the protocols offered to the node (Upgrade); NULL: none */
    char *key;        /* owned with upgrade: its split key's bytes (NUL-terminated) */
    size_t key_len;
    /* owned: a target longer than PX_TARGET_URL_MAX, cut at PX_ALOG_PATH_MAX, for the json access
     * log (not NUL-terminated); NULL when `target` holds it whole or the log is text */
    char *url_long;
    size_t url_long_len;
    bool raw;              /* a tcp-mode connection: relayed as a tunnel once connected */
    bool tunnel;           /* a 101 turned it into a tunnel: logged when the tunnel closes */
    bool websocket;        /* ... a WebSocket */
    uint32_t tunnel_early; /* bytes the node sent after its 101, in the client's output */
};

/* The time from now until the monotonic deadline end_ms (at least 1 ms), for an event_add. */
static inline struct timeval
px_tv_until(uint64_t end_ms)
{
    uint64_t now = xf_now_ms(), left = end_ms > now ? end_ms - now : 1;

    return (struct timeval){.tv_sec = (time_t)(left / 1000),
                            .tv_usec = (suseconds_t)(left % 1000) * 1000};
}

/* px_tls.c: a client's TLS (see px.h for the contexts) */
#define PX_TLS_EXPIRY_WARN_DAYS 14 /* a certificate's end is warned about this long before */
/* Starts TLS on c's socket with ctx (the listener's); -1 when it cannot (the caller frees c). */
int px_tls_client_start(struct px_client *c, SSL_CTX *ctx);
/* Moves c's handshake on: PX_OK once done, PX_AGAIN while it waits for the socket (its event
 * armed for the time left), PX_CLOSE when it failed (counted and logged, rate-limited). */
enum px_rc px_tls_handshake(struct px_client *c);
/* Counts and logs (rate-limited) a handshake that ran out of time; the caller frees c. */
void px_tls_handshake_timeout(struct px_client *c);
/* Sends close_notify once (before a graceful close of our side). */
void px_tls_client_shut(struct px_client *c);
/* Ends c's TLS: close_notify unless cut or never established, then frees the session. */
void px_tls_client_close(struct px_client *c);
/* Whether c's TLS holds bytes already read from its socket that no read has returned yet. */
bool px_tls_pending(const struct px_client *c);
/* SSL_read into buf as recv would: bytes, 0 at the end, -1 with errno (EAGAIN when it must wait:
 * *want_write set when for the socket to take a write). */
ssize_t px_tls_recv(SSL *ssl, void *buf, size_t len, bool *want_write);
/* SSL_write of b's bytes as px_buf_send does. */
enum px_rc px_tls_send(SSL *ssl, struct px_buf *b, uint64_t *sent);
/* Starts TLS on u's connected socket with ctx; the name sent and checked is sni, else the host
 * of u's target (an IP address is checked, not sent). 0, or -1 (u->ssl may be set: freed with
 * u). */
int px_tls_upstream_start(struct px_upstream *u, SSL_CTX *ctx, const char *sni);
/* Moves u's handshake on: PX_OK once done, PX_AGAIN while it waits (u->tls_want_write says for
 * what), PX_CLOSE when it failed (counted; the reason, with the verification error, in why). */
enum px_rc px_tls_upstream_handshake(struct px_upstream *u, char *why, size_t size);
/* An idle TLS connection turned readable: true when it only took post-handshake messages. */
bool px_tls_upstream_idle_read(struct px_upstream *u);
/* Frees the sessions kept to resume at a pool's target. */
void px_tls_node_sessions_free(struct px_pool_target *pt);
/* Ends u's TLS (close_notify when clean and established) and frees the session. */
void px_tls_upstream_close(struct px_upstream *u, bool clean);

/* px_tunnel.c: a client and a node connection joined after a 101 */
struct px_tunnel {
    struct px_worker *w;         /* borrowed */
    struct px_client *c;         /* borrowed: it owns the tunnel (c->tunnel) */
    struct px_upstream *u;       /* owned */
    struct px_txn *t;            /* owned: the request that opened it, logged at the end */
    TAILQ_ENTRY(px_tunnel) link; /* in w->tunnels */
    struct event rev[2], wev[2]; /* on each side's socket: [0] the client's, [1] the node's */
    struct event idle;           /* timeouts.tunnel_idle, checked against active_ms */
    uint64_t active_ms;          /* when a byte last moved either way */
    uint64_t bytes[2];           /* relayed: [0] from the client, [1] from the node */
    bool eof[2];                 /* [i] stopped sending (end of stream, or close_notify) */
    bool shut[2];                /* our sending to [i] is over (shut down once drained) */
    bool read_off[2];            /* reading from [i] stopped: its peer's output is full */
    bool wev_on[2];
    bool read_ww[2]; /* TLS: reading [i] waits for its socket to take a write */
    /* Its node, copied: the transaction lets go of its snapshot (t->node points here), which a
     * long-lived tunnel would otherwise keep, with every other, for hours. */
    struct bal_node node;
    /* Where it belongs (px_tunnel_follow): its node, and whether its key still goes there. */
    uint32_t node_id;
    enum cfg_cluster_id cluster;
    bool keyed;    /* the side followed its key (not an override, not an admin_api listener) */
    bool doomed;   /* it no longer belongs where it is: in w->tunnels_doomed, closed at a rate */
    bool retiring; /* being closed: a WebSocket close frame waits for a frame boundary */
    bool failed;   /* a side failed (reset, error): the client is reset, not closed in order */
    TAILQ_ENTRY(px_tunnel) dlink; /* in w->tunnels_doomed while doomed */
    /* A WebSocket (RFC 6455): the framing of what the node sends, so that a close frame of
     * crossfade's own goes in between two frames. */
    bool ws;
    uint8_t ws_hdr_len; /* bytes of a frame header read so far */
    uint8_t ws_hdr[14]; /* the frame header being read */
    uint64_t ws_left;   /* payload bytes of the current frame still to come */
};
/* The node's 101 went into c->out: t's client and node connections become a tunnel (t->u is
 * taken). PX_OK, or PX_CLOSE when the client must go (px_client_free ends the tunnel). */
enum px_rc px_tunnel_start(struct px_txn *t);
/* Ends the tunnel of c (called by px_client_free): the node connection closes, the request is
 * logged with the bytes each way and its duration. */
void px_tunnel_free(struct px_tunnel *tun);
/*
 * A new snapshot: each tunnel whose node was drained or removed, or whose key now goes to the
 * other side -- on a rollback (weight 0), or on any change with tunnels.follow_weight -- is
 * doomed, to be closed at tunnels.close_rate (this worker's share), a WebSocket with a close
 * frame (1001, going away) first. One that belongs again (the weight went back up) is spared.
 */
void px_tunnel_follow(struct px_worker *w, const struct bal_snapshot *s);
/* The worker is stopping (SIGTERM, a takeover): every tunnel is doomed, closed at the configured
 * rate or faster, so that all are closed in order within 80 % of timeouts.shutdown and their
 * clients reconnect (to the new process) spread over that time, not all at its deadline. */
void px_tunnel_drain(struct px_worker *w);

/* px_tcp.c: before HTTP or the relay */
/* A new connection of c->l: a PROXY header to read first, else px_tcp_begin. Frees c when it
 * must go. */
void px_tcp_accept(struct px_client *c);
/* A read event while c->pre is set (the PROXY header, the ClientHello, or their deadline). */
void px_tcp_on_read(struct px_client *c, short what);
/* The PROXY header for a new connection to t's node when its cluster sends one, into u->out
 * (u->pp_len set); 0, or -1 when out of memory. */
int px_tcp_pp_out(struct px_txn *t, struct px_upstream *u);

/* px_client.c */
/* A transaction for c, zeroed (from the worker's cache when it can); NULL when out of memory. */
struct px_txn *px_txn_new(struct px_client *c);
/* The client's address (c->peer, c->ip) from sa: the socket's peer, or a PROXY header's. */
void px_client_set_peer(struct px_client *c, const struct sockaddr *sa);
/* The connection goes on with HTTP, or TLS then HTTP, after what came before (px_tcp.c). */
void px_client_start(struct px_client *c);
enum px_rc px_client_flush(struct px_client *c);
enum px_rc px_client_continue(struct px_client *c);
void px_client_read_on(struct px_client *c);
void px_client_read_off(struct px_client *c);
enum px_rc px_txn_error(struct px_txn *t, int status, const char *why);
enum px_rc px_txn_resp_done(struct px_txn *t);
void px_txn_finish(struct px_txn *t);
void px_txn_free(struct px_txn *t);
enum px_rc px_txn_fail(struct px_txn *t, int status, const char *why, enum xf_fail kind);

/* px_upstream.c */
enum px_reuse {
    PX_REUSE_ANY = 0, /* an idle connection as it is (a request that may be replayed) */
    PX_REUSE_CHECKED, /* ... checked with a peek first (one that cannot be) */
    PX_REUSE_NONE,    /* a new connection (a tcp-mode relay) */
};
/* An idle connection of the pool as `reuse` allows, or a new one connecting. NULL with
 * *err_status (502) when connecting failed at once. */
struct px_upstream *px_upstream_get(struct px_worker *w, struct px_pool *pool, unsigned target,
                                    enum cfg_cluster_id cluster, int *err_status,
                                    enum px_reuse reuse);
enum px_rc px_upstream_flush(struct px_upstream *u);
void px_upstream_release(struct px_upstream *u, bool reuse);
/* Closes an idle pooled connection. */
void px_upstream_release_idle(struct px_upstream *u);
/* Closes a connection, idle or busy (a tunnel's): the pool's counts and the node's slot follow. */
void px_upstream_free(struct px_upstream *u);
void px_upstream_read_on(struct px_upstream *u);
void px_upstream_read_off(struct px_upstream *u);
void px_upstream_arm_response_timeout(struct px_upstream *u);
/*
 * A fault of a node seen by this worker (refused, timed out, reset, invalid response...): the first
 * of a run is logged at WARN with the fault, the others are counted; the run ends, with one line
 * that sums it up, when the node next answers (px_pool_fault_end) or after PX_FAULT_QUIET_MS
 * without a fault. `target` says which of its addresses. A dead node is one line, not one per
 * request.
 */
void px_pool_fault(struct px_pool *pool, unsigned target, const char *fmt, ...) XF_PRINTF(3, 4);
/* Ends a run of faults with its summary line (`reason`: "answered" or "quiet"). */
void px_pool_fault_summary(struct px_pool *pool, const char *reason);
/* The node answered: a run of faults, if one was going on, is over. */
static inline void
px_pool_fault_end(struct px_pool *pool)
{
    if (XF_UNLIKELY(pool->fault_count > 0))
        px_pool_fault_summary(pool, "answered");
}
/* The fault timer's callback (arg: the pool): the run stayed quiet long enough to be over. */
void px_pool_on_fault_quiet(evutil_socket_t fd, short what, void *arg);

/* px_dispatch.c */
/* Attaches t to a connection of t->node (or queues it at a full node), taking `data` (the request
 * bytes so far). Synchronous connect failures are retried there. Returns PX_OK (attached or
 * queued; not flushed), or PX_DONE / PX_CLOSE when it was answered (t may be gone). */
enum px_rc px_txn_dispatch(struct px_txn *t, struct px_buf *data);
/*
 * The attempt on t->u failed before any response byte (status, why and kind say how). Retries on
 * another node when the rules allow it (docs/architecture.md), else fails the transaction. t->u is
 * gone either way. Returns PX_CLOSE when the client must be freed, else PX_DONE.
 */
enum px_rc px_txn_retry(struct px_txn *t, int status, const char *why, enum xf_fail kind);
/* Sets where t goes (node, cluster, the choice kept for retries); counts the request in its
 * cluster (and a failover, logged, in both). */
void px_txn_route(struct px_txn *t, const struct bal_choice *ch);
/* Takes a queued transaction out of its pool's queue (no-op when not queued). A wake-up it had
 * (a slot freed for it) goes to the next waiting transaction. */
void px_txn_dequeue(struct px_txn *t);
/* A connection slot of `pool` freed: wakes the first waiting transaction not woken yet; false
 * when there was none. */
bool px_pool_wake(struct px_pool *pool);
/* A slot of a limited node is free and no waiter of this worker takes it: tells the next worker
 * with requests waiting for the node (none: nothing). */
void px_pool_pass_on(struct px_pool *pool);
/* Counts idle connections of a pool, and publishes the count for the control thread. */
static inline void
px_pool_idle_add(struct px_pool *pool, int delta)
{
    pool->n_idle = (unsigned)((int)pool->n_idle + delta);
    XF_STAT_ADD(pool->w->usage->idle[pool->id], (uint32_t)delta);
}
/* A node's connections are all busy at its limit: every slot of it is taken, by any worker (or,
 * without a shared table, by this one, and none to `target` is idle: it would be taken). */
static inline bool
px_pool_full(const struct px_pool *pool, unsigned target)
{
    if (pool->max_conns == 0)
        return false;
    if (pool->share != NULL)
        return __atomic_load_n(&pool->share->busy, __ATOMIC_SEQ_CST) >= pool->max_conns;
    return TAILQ_EMPTY(&pool->t[target].idle) && pool->n_busy >= pool->max_conns;
}
/* Whether the first request waiting for a connection of `pool` could take one now. */
static inline bool
px_pool_next_fits(const struct px_pool *pool)
{
    return pool->n_waiting > 0 && !px_pool_full(pool, TAILQ_FIRST(&pool->waiting)->node_target);
}
/* Where request bytes for the node go now: the connection's output, the held bytes while queued,
 * or NULL when there is no node to send them to (answered). */
struct px_buf *px_txn_sink(struct px_txn *t);
/* Reports the outcome of a node's attempt to passive health detection (no-op without it). */
void px_txn_observe(struct px_txn *t, bool ok);

/* px_alog.c */
void px_alog_txn(struct px_worker *w, const struct px_txn *t);

/* --- listeners and reloads (px_worker.c, px_reload.c) --- */

/* Binds one listening socket at `a`, with SO_REUSEPORT when `reuse` (then listening too). Returns
 * the fd, or -1 with err naming the address. */
int px_listen_bind(const struct cfg_addr *a, bool reuse, struct xf_err *err);
/* Opens the sockets of one listening address, one per worker of ctl, into fds[0..n_workers):
 * after a plain bind proves the port free, each its own SO_REUSEPORT socket (or, with
 * XF_LISTEN_SHARED=1, one socket shared). 0, or -1 with err (nothing left open). */
int px_listener_open(struct px_ctl *ctl, const struct cfg_addr *a, int *fds, struct xf_err *err);
/* Gives listener l (fd set) to worker w: its event, not armed yet (px_worker_accept_update). */
void px_listener_arm(struct px_worker *w, struct px_listener *l);
/* Stops accepting on l and closes its socket; a closed one is a no-op. */
void px_listener_close(struct px_listener *l);
void px_listener_on_accept(evutil_socket_t fd, short what, void *arg);
/* Arms or disarms w's listeners after whatever decides it changed. */
void px_worker_accept_update(struct px_worker *w);
/* The index in w->target_ports of a listener's node_port. */
unsigned px_worker_target_of(const struct px_worker *w, uint16_t port);
/* Sets w's libevent timeouts from w->cfg->timeouts. */
void px_worker_timeouts_set(struct px_worker *w);
/* Applies w->reload_msg on the worker's thread (PX_MSG_RELOAD): its config, listeners, targets,
 * header tables, timeouts and access log. Cannot fail. */
void px_worker_reload(struct px_worker *w);
/* Frees what a reload message still owns (one the worker never took). */
void px_reload_msg_fini(struct px_reload_msg *m);

#endif
