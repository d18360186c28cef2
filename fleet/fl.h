/* fleet/fl.h -- fleet mode's etcd client: a small asynchronous client of etcd 3.4's v3 JSON gateway
 * (HTTP/1.1) on a libevent event_base: reads, writes, compare-and-swap, leases and watches. */
#ifndef FL_H
#define FL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "common/xf.h"

/*
 * Everything here runs on one event_base (the control thread's) and is not thread-safe. Calls
 * never invoke a callback before they return: every callback comes from the event loop. A
 * callback may free the object that called it (or the whole client); nothing is touched after.
 *
 * Keys and values are byte strings (any bytes, NULs included): the client base64-encodes them
 * for the gateway. What a callback receives (struct fl_result, struct fl_event and the bytes they
 * point to) lives only during the callback: copy what you keep.
 */

#define FL_ENDPOINTS_MAX      16
#define FL_TIMEOUT_MS_DEFAULT 5000        /* a request's deadline, from the call */
#define FL_BACKOFF_MIN_MS     100         /* first wait after an endpoint failed */
#define FL_BACKOFF_MAX_MS     5000        /* the wait doubles up to this */
#define FL_BODY_MAX           (16u << 20) /* a response body, or one line of a watch stream */
#define FL_KEY_MAX                                                                                 \
    (1u << 20) /* a key or value we send (etcd's default limit is 1.5 MiB a request) */

/* ---- the client ---------------------------------------------------------------------------- */

struct fl_etcd;

/*
 * A connection changed state: `what` is "kv" (the connection for requests) or "watch"; `up`
 * says whether `endpoint` ("http://host:port") now answers; `why` (NULL when up) says what
 * failed. Called once per change, not per retry, so it can be logged as it comes.
 */
typedef void (*fl_conn_fn)(void *arg, const char *what, bool up, const char *endpoint,
                           const char *why);

struct fl_etcd_opts {
    unsigned timeout_ms;     /* 0: FL_TIMEOUT_MS_DEFAULT */
    unsigned backoff_min_ms; /* 0: FL_BACKOFF_MIN_MS */
    unsigned backoff_max_ms; /* 0: FL_BACKOFF_MAX_MS */
    fl_conn_fn conn_cb;      /* may be NULL */
    void *conn_arg;
};

/*
 * Checks one endpoint, "http://host:port" (host a name, an IPv4 address or [an IPv6 one]; a
 * trailing "/" is allowed, nothing else after the port). 0, or -1 with err saying what is wrong.
 */
int fl_endpoint_check(const char *url, struct xf_err *err);

/*
 * A client of the etcd cluster at `endpoints` (n of them, 1..FL_ENDPOINTS_MAX, copied), on `base`
 * (borrowed, must outlive the client). `opts` may be NULL (defaults); it is copied. Nothing is
 * connected until the first request or watch. Returns an owned client, or NULL with err naming
 * the bad endpoint. Host names are resolved (blocking getaddrinfo) at each connect.
 */
struct fl_etcd *fl_etcd_new(struct event_base *base, const char *const *endpoints, size_t n,
                            const struct fl_etcd_opts *opts, struct xf_err *err);
/*
 * Closes every connection and frees the client with its watches and leases (their handles are
 * then invalid). No callback is called after, not even for requests in flight. NULL: nothing.
 */
void fl_etcd_free(struct fl_etcd *e);

/* The endpoint requests go to now ("http://host:port"; borrowed, valid until the next call). */
const char *fl_etcd_endpoint(const struct fl_etcd *e);

/* ---- requests ------------------------------------------------------------------------------ */

struct fl_kv {
    const char *key; /* borrowed: key_len bytes, then a NUL */
    size_t key_len;
    const char *value; /* borrowed: value_len bytes, then a NUL ("" in a DELETE event) */
    size_t value_len;
    int64_t create_revision;
    int64_t mod_revision;
    int64_t version; /* 0 in a DELETE event */
    int64_t lease;   /* 0: none */
};

/* What a request's callback gets; the fields its operation does not set are 0. */
struct fl_result {
    int64_t revision;        /* the store's revision when etcd answered (its header) */
    const struct fl_kv *kvs; /* get: the keys found, in key order; cas that failed: the key, if
                                it exists (n_kvs 0 or 1) */
    size_t n_kvs;
    int64_t count;   /* get: how many keys matched (more than n_kvs when `more`) */
    bool more;       /* get: a limit cut the answer */
    bool succeeded;  /* cas: the comparison held and the puts were made */
    int64_t deleted; /* del: keys deleted */
    int64_t lease;   /* lease_grant, lease_keepalive: the lease's ID */
    int64_t ttl;     /* lease_grant, lease_keepalive: seconds left; 0 from keepalive: lease gone */
};

/*
 * A request's outcome: `res` when etcd answered 200 (error NULL), else `error`, a one-line text
 * (etcd's own message when it gave one, e.g. "etcdserver: requested lease not found") and res
 * NULL. A request is retried on the next endpoint after a connection failure, a timeout or a 5xx
 * when that is safe: reads and lease keep-alives always; writes (put, cas, del, lease grant and
 * revoke) only when they cannot have reached etcd. Otherwise, and at its deadline, it fails.
 */
typedef void (*fl_result_fn)(void *arg, const struct fl_result *res, const char *error);

#define FL_PREFIX 1u /* get/del/watch: every key that starts with `key` (range_end = key + 1) */

/*
 * Each request returns 0 (cb will be called exactly once, unless the client is freed first or the
 * request cancelled), or -1 at once (an argument out of range, out of memory; cb never called).
 * cb may be NULL (fire and forget).
 */
int fl_etcd_get(struct fl_etcd *e, const char *key, size_t key_len, unsigned flags, fl_result_fn cb,
                void *arg);
int fl_etcd_put(struct fl_etcd *e, const char *key, size_t key_len, const char *value,
                size_t value_len, int64_t lease, fl_result_fn cb, void *arg);
int fl_etcd_del(struct fl_etcd *e, const char *key, size_t key_len, unsigned flags, fl_result_fn cb,
                void *arg);

/* One put of a transaction. */
struct fl_put {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
    int64_t lease; /* 0: none */
};

/*
 * Compare-and-swap in one transaction: if mod_revision(puts[0].key) == mod_revision (0: the key
 * must not exist), then every put of `puts` (n_puts >= 1: the key itself first, then any others),
 * else read the key. res->succeeded says which; on failure res->kvs holds the key as it is (none
 * when it was deleted) and res->revision the store's revision.
 */
int fl_etcd_cas(struct fl_etcd *e, int64_t mod_revision, const struct fl_put *puts, size_t n_puts,
                fl_result_fn cb, void *arg);

/* Leases: res->lease and res->ttl. A keep-alive answers ttl 0 when the lease no longer exists. */
int fl_etcd_lease_grant(struct fl_etcd *e, int64_t ttl_s, fl_result_fn cb, void *arg);
int fl_etcd_lease_keepalive(struct fl_etcd *e, int64_t lease, fl_result_fn cb, void *arg);
int fl_etcd_lease_revoke(struct fl_etcd *e, int64_t lease, fl_result_fn cb, void *arg);

/* Cancels every request not yet answered whose callback argument is `arg`: none of their
 * callbacks will be called (a request already sent may still take effect in etcd). */
void fl_etcd_cancel(struct fl_etcd *e, const void *arg);

/* ---- a lease kept alive -------------------------------------------------------------------- */

enum fl_lease_state {
    FL_LEASE_GRANTED = 0, /* `id` is granted (again, after FL_LEASE_LOST): attach keys to it */
    FL_LEASE_LOST,        /* `id` expired or was revoked; keys attached to it are gone */
};
typedef void (*fl_lease_fn)(void *arg, enum fl_lease_state state, int64_t id, const char *why);

struct fl_lease;

/*
 * Grants a lease of ttl_s seconds (>= 2) and keeps it alive (a keep-alive every ttl/3). When it is
 * lost (etcd says it is gone, or no keep-alive succeeded for a whole ttl) cb hears FL_LEASE_LOST,
 * and a new one is granted (FL_LEASE_GRANTED). Owned by the caller; freed by fl_lease_free or
 * with the client. NULL on a bad argument or out of memory.
 */
struct fl_lease *fl_lease_new(struct fl_etcd *e, int64_t ttl_s, fl_lease_fn cb, void *arg);
/* The lease's ID, 0 while none is granted. */
int64_t fl_lease_id(const struct fl_lease *l);
/* Stops keeping it alive; `revoke`: also revokes it (its keys go at once). NULL: nothing. */
void fl_lease_free(struct fl_lease *l, bool revoke);

/* ---- watches ------------------------------------------------------------------------------- */

enum fl_event_type {
    FL_EVENT_PUT = 0,
    FL_EVENT_DELETE,
};

struct fl_event {
    enum fl_event_type type;
    struct fl_kv kv; /* kv.mod_revision is the event's revision */
};

struct fl_watch_cbs {
    /* Events in revision order, each delivered once across reconnections; `revision` is the
     * store's revision when they were sent. */
    void (*events)(void *arg, const struct fl_event *evs, size_t n, int64_t revision);
    /*
     * The revision to resume from was compacted away: events were lost. The watch is stopped;
     * read the keys again (fl_etcd_get) and call fl_watch_restart with that answer's revision + 1.
     * May be NULL (then the watch just stops).
     */
    void (*compacted)(void *arg, int64_t compact_revision);
};

struct fl_watch;

/*
 * Watches `key` (FL_PREFIX: every key under it) from start_revision (0: from now on) over a
 * connection of its own. On losing the stream it reconnects (next endpoint, back-off) and resumes
 * after the last revision delivered. Connection changes go to the client's conn_cb ("watch").
 * cbs is copied. Owned by the caller; NULL on a bad argument or out of memory.
 */
struct fl_watch *fl_watch_new(struct fl_etcd *e, const char *key, size_t key_len, unsigned flags,
                              int64_t start_revision, const struct fl_watch_cbs *cbs, void *arg);
/* Starts a stopped (compacted) or running watch again from start_revision. 0, or -1. */
int fl_watch_restart(struct fl_watch *w, int64_t start_revision);
/* The revision the watch resumes from if the stream is lost now (0: "now", nothing seen yet). */
int64_t fl_watch_next_revision(const struct fl_watch *w);
void fl_watch_free(struct fl_watch *w);

#endif
