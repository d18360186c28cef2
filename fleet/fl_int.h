/* fleet/fl_int.h -- internal to fleet/, not part of the module's API: the JSON reader, base64 and
 * the small HTTP/1.1 client the etcd client is built on. */
#ifndef FL_INT_H
#define FL_INT_H

#include "fleet/fl.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "common/xf.h"

/* ---- JSON reader (fl_json.c) --------------------------------------------------------------- */

/*
 * A strict RFC 8259 reader: the whole document is checked in one pass (grammar, escapes, UTF-8,
 * surrogate pairs, nesting at most FL_JSON_MAX_DEPTH) and kept as a flat array of tokens in
 * document order, each knowing where its subtree ends, so that skipping a value is O(1). Nothing
 * is decoded until asked for. Duplicate member names are not refused; fl_json_member finds the
 * first.
 */
#define FL_JSON_MAX_DEPTH 64
#define FL_JSON_NONE      UINT32_MAX /* "no such token": what a failed look-up returns */
#define FL_JSON_MAX_LEN   (UINT32_MAX - 1)

enum fl_json_type {
    FL_JSON_MISSING = 0, /* the type of FL_JSON_NONE */
    FL_JSON_NULL,
    FL_JSON_FALSE,
    FL_JSON_TRUE,
    FL_JSON_NUMBER,
    FL_JSON_STRING,
    FL_JSON_ARRAY,
    FL_JSON_OBJECT,
};

struct fl_json_tok {
    uint32_t start; /* offset of its first byte; a string's first byte after the quote */
    uint32_t len;   /* its bytes; a string's raw bytes between the quotes, escapes undecoded */
    uint32_t next;  /* index of the first token after its subtree */
    uint32_t n;     /* array: elements; object: members; string: 1 when it holds escapes */
    uint8_t type;   /* enum fl_json_type */
};

struct fl_json {
    const char *text;         /* borrowed: the document, which must outlive this */
    size_t len;               /* bytes of text */
    struct fl_json_tok *toks; /* owned; toks[0] is the root */
    uint32_t n_toks;
    uint32_t cap;
};

/*
 * Parses the `len` bytes at `text` (borrowed, kept by reference: it must outlive doc) as one JSON
 * document. Returns 0, or -1 with err saying at which byte and why (doc is then empty, and
 * fl_json_fini may still be called). Reads no byte outside [text, text + len).
 */
int fl_json_parse(struct fl_json *doc, const char *text, size_t len, struct xf_err *err);
void fl_json_fini(struct fl_json *doc);

/* The type of token i (FL_JSON_MISSING for FL_JSON_NONE or an index out of range). */
enum fl_json_type fl_json_type(const struct fl_json *doc, uint32_t i);
/* The value of member `name` of object i, or FL_JSON_NONE (no such member, or i no object). */
uint32_t fl_json_member(const struct fl_json *doc, uint32_t i, const char *name);
/* Elements of an array (or members of an object), or 0. */
uint32_t fl_json_count(const struct fl_json *doc, uint32_t i);
/*
 * Walking a container's children: fl_json_child gives the first (an object's first member name),
 * fl_json_sibling the one after `child` within `parent` (after a member name: its value), both
 * FL_JSON_NONE at the end.
 */
uint32_t fl_json_child(const struct fl_json *doc, uint32_t parent);
uint32_t fl_json_sibling(const struct fl_json *doc, uint32_t parent, uint32_t child);
/*
 * The decoded bytes of string i (escapes resolved, \uD83D\uDE00 pairs as one UTF-8 sequence) as
 * a new NUL-terminated buffer the caller owns; *len (may be NULL) gets its length, which counts
 * the NULs a \u0000 made. NULL when i is not a string or memory ran out.
 */
char *fl_json_strdup(const struct fl_json *doc, uint32_t i, size_t *len);
/* Whether string i decodes to the `len` bytes at s. */
bool fl_json_str_eq(const struct fl_json *doc, uint32_t i, const char *s, size_t len);
/*
 * An integer: a number without fraction or exponent, or a string holding one (etcd writes its
 * int64 fields as strings), in int64 range. Returns 0, or -1 (and *out untouched).
 */
int fl_json_int(const struct fl_json *doc, uint32_t i, int64_t *out);
/* true or false; -1 for anything else. */
int fl_json_bool(const struct fl_json *doc, uint32_t i, bool *out);

/* ---- base64 (fl_b64.c): RFC 4648's standard alphabet, with padding ------------------------- */

#define FL_B64_ENC_LEN(n) (((n) + 2) / 3 * 4)
#define FL_B64_DEC_MAX(n) ((n) / 4 * 3)

/* Writes FL_B64_ENC_LEN(len) bytes at dst (no NUL) and returns that count. */
size_t fl_b64_encode(char *dst, const void *src, size_t len);
/*
 * Decodes the `len` characters at src into dst (FL_B64_DEC_MAX(len) bytes at least). Refuses (-1)
 * a length that is not a multiple of 4, a byte outside the alphabet, misplaced padding and
 * non-zero bits under the padding (one text per value); 0 and *out_len otherwise.
 */
int fl_b64_decode(void *dst, size_t *out_len, const char *src, size_t len);

/* ---- endpoints and the HTTP/1.1 connection (fl_http.c) --------------------------------------- */

struct fl_endpoint {
    char url[300];       /* "http://host:port", as messages show it */
    char host[256];      /* a name or an address, IPv6 without its brackets */
    char port[8];        /* numeric */
    char authority[270]; /* the Host header: host:port, IPv6 in brackets */
};

/* Fills ep from "http://host:port[/]"; 0, or -1 with err quoting the URL and saying why. */
int fl_endpoint_parse(struct fl_endpoint *ep, const char *url, struct xf_err *err);

/*
 * One HTTP/1.1 client connection to one endpoint, one request at a time.
 *
 * Why not libevent's evhttp: a watch is a response that never ends, read a line at a time, and
 * evhttp gives it no way to go without a read timeout (evhttp_connection_set_timeout can only
 * set one, 50 s by default); evhttp 2.1 touches the connection after the request's callback
 * returns, so the owner cannot free it from there (the natural place, when an endpoint failed);
 * and on a failure it reconnects for the next queued request by itself, to the same host, where
 * we want the next endpoint. A response parser for the one server we talk to (Go's net/http: a
 * status line, fields, Content-Length or chunked with trailers) is small; this one is strict and
 * bounded (FL_HTTP_LINE_MAX a line, FL_HTTP_HEAD_MAX a head, FL_BODY_MAX a buffered body).
 */
#define FL_HTTP_LINE_MAX 8192
#define FL_HTTP_HEAD_MAX (64u * 1024)

struct fl_http;

/* What a connection tells its owner. Each may free the connection (fl_http_free); nothing of it is
 * touched after. */
struct fl_http_cbs {
    /* Stream mode, status 200: the body's bytes as they arrive (de-chunked). */
    void (*body)(void *arg, const char *data, size_t len);
    /* The response is complete: its status and the body it buffered (all of it, except what went
     * to `body`), len bytes then a NUL, valid during the call. */
    void (*done)(void *arg, int status, const char *body, size_t len);
    /* The connection failed or was closed (also while idle: a keep-alive connection the server
     * closed). `maybe_sent`: the request in progress may have reached the server. The connection
     * is of no further use: free it. */
    void (*error)(void *arg, const char *why, bool maybe_sent);
};

/*
 * Starts connecting to ep (borrowed, must outlive the connection; the host is resolved here, with
 * a blocking getaddrinfo for a name). cbs is copied. Returns an owned connection, or NULL with err.
 */
struct fl_http *fl_http_new(struct event_base *base, const struct fl_endpoint *ep,
                            const struct fl_http_cbs *cbs, void *arg, struct xf_err *err);
/*
 * Sends "POST path" with the JSON body (copied) on an idle connection (even one still
 * connecting). `stream`: a 200's body goes to cbs->body as it comes rather than to cbs->done.
 * 0, or -1 (busy, closing, or out of memory).
 */
int fl_http_post(struct fl_http *h, const char *path, const char *body, size_t len, bool stream);
/* Idle, and the server did not ask to close: the next request may use it. */
bool fl_http_reusable(const struct fl_http *h);
void fl_http_free(struct fl_http *h);

/* ---- requests: JSON bodies and answers (fl_ops.c) ------------------------------------------ */

enum fl_op {
    FL_OP_GET = 0,
    FL_OP_PUT,
    FL_OP_DEL,
    FL_OP_CAS,
    FL_OP_GRANT,
    FL_OP_KEEPALIVE,
    FL_OP_REVOKE,
};

/* A growing byte string; `oom` sticks once an append failed. */
struct fl_buf {
    char *p; /* owned */
    size_t len;
    size_t cap;
    bool oom;
};

void fl_buf_add(struct fl_buf *b, const void *s, size_t len);
void fl_buf_str(struct fl_buf *b, const char *s);
void fl_buf_printf(struct fl_buf *b, const char *fmt, ...) XF_PRINTF(2, 3);
/* Appends "name":"<base64 of s>". */
void fl_buf_b64_member(struct fl_buf *b, const char *name, const char *s, size_t len);
void fl_buf_fini(struct fl_buf *b);

/*
 * The end of the range of keys that start with key[0..len): the key with its last byte below 0xff
 * incremented and what follows dropped; "\0" (every key from `key` on) when there is no such
 * byte. Writes at most len bytes (1 when len is 0) at out; returns the count.
 */
size_t fl_prefix_end(const char *key, size_t len, char *out);
/* Appends "key":..., and "range_end":... when flags has FL_PREFIX. */
void fl_buf_range(struct fl_buf *b, const char *key, size_t len, unsigned flags);

/* The path an operation is sent to ("/v3/kv/range"...). */
const char *fl_op_path(enum fl_op op);
/* Whether sending it twice is harmless (retried after a failure even when it may have arrived). */
bool fl_op_idempotent(enum fl_op op);
/* The JSON for a put (fl_etcd_put, a transaction's request_put) into b. */
void fl_buf_put(struct fl_buf *b, const struct fl_put *put);
void fl_buf_cas(struct fl_buf *b, int64_t mod_revision, const struct fl_put *puts, size_t n);

/*
 * A decoded key-value: kv->key and kv->value (NUL-terminated) are owned by kv, freed by
 * fl_kv_fini. Reads object i of doc (etcd's mvccpb.KeyValue): absent fields are 0 or empty, as
 * the gateway leaves out zero values. 0, or -1 with err.
 */
int fl_kv_parse(const struct fl_json *doc, uint32_t i, struct fl_kv *kv, struct xf_err *err);
void fl_kv_fini(struct fl_kv *kv);
/* Parses array i of key-values into a new array (*out, owned) of *n. */
int fl_kvs_parse(const struct fl_json *doc, uint32_t i, struct fl_kv **out, size_t *n,
                 struct xf_err *err);
void fl_kvs_free(struct fl_kv *kvs, size_t n);

/* The answer (a 200's body) of an operation into res (its kvs owned: fl_result_fini). 0, or -1
 * with err (a malformed answer, or an error etcd put inside a 200). */
int fl_result_parse(enum fl_op op, const char *body, size_t len, struct fl_result *res,
                    struct xf_err *err);
void fl_result_fini(struct fl_result *res);
/* The message of an error answer: etcd's "message" (or "error"), else "HTTP <status>". */
void fl_error_text(int status, const char *body, size_t len, char *out, size_t size);

/* ---- the client's insides, shared with fl_watch.c and fl_lease.c (fl_etcd.c) ------------------
 */

struct fl_watch;
struct fl_lease;

struct fl_req {
    struct fl_req *next; /* the queue */
    struct fl_etcd *e;   /* borrowed */
    enum fl_op op;
    char *body; /* owned: the JSON to send */
    size_t body_len;
    fl_result_fn cb;     /* NULL: nobody waits (cancelled, or fire and forget) */
    void *arg;           /* borrowed */
    struct event *timer; /* owned: the deadline */
};

struct fl_etcd {
    struct event_base *base; /* borrowed */
    struct fl_endpoint eps[FL_ENDPOINTS_MAX];
    size_t n_eps;
    struct fl_etcd_opts opts; /* zeros replaced by the defaults */
    size_t cur;               /* the endpoint requests go to */
    struct fl_http *conn;     /* owned: the connection for requests, or NULL */
    struct fl_req *inflight;  /* owned: the request sent on conn, or NULL */
    struct fl_req *head;      /* owned: requests waiting, in order */
    struct fl_req **tail;
    struct event *kick;       /* owned: runs the queue from the event loop */
    struct event *retry;      /* owned: pending while waiting out the back-off */
    unsigned backoff_ms;      /* the next back-off */
    int state;                /* the "kv" state last reported: -1 none yet, 0 down, 1 up */
    struct fl_watch *watches; /* owned: a list through fl_watch.next */
    struct fl_lease *leases;  /* owned: a list through fl_lease.next */
    uint64_t rng;             /* for the back-off's jitter */
    bool *dead;               /* set to true by fl_etcd_free during a callback */
};

/* Queues a request of op whose body (owned) is in b; cb/arg as for the public calls. */
int fl_etcd_submit(struct fl_etcd *e, enum fl_op op, struct fl_buf *b, fl_result_fn cb, void *arg);
/* The wait before the next attempt for a back-off that is at *backoff_ms, which doubles (capped):
 * somewhere in [b/2, b], so that many instances do not come back at the same moment. */
unsigned fl_etcd_backoff(struct fl_etcd *e, unsigned *backoff_ms);
/* Tells conn_cb. Returns false when the callback freed the client. */
bool fl_etcd_report(struct fl_etcd *e, const char *what, bool up, const char *endpoint,
                    const char *why);
/* fl_etcd_free's part in fl_watch.c and fl_lease.c. */
void fl_watch_free_all(struct fl_etcd *e);
void fl_lease_free_all(struct fl_etcd *e);

#endif
