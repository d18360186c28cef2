/* tests/integration/catalogue_helpers.h -- the catalogue of hostile input: one request (or one
 * node reply) per case, and the three outcomes each case asserts. */
#ifndef CATALOGUE_HELPERS_H
#define CATALOGUE_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tests/integration/harness.h"

/*
 * Every case starts crossfade in front of a fake node (h_fake_*) and checks, whatever it sends:
 * the status line the client gets, whether crossfade closes the connection after it, and every
 * byte the node received (nothing, proven with a sentinel, when the request must not reach it).
 * docs/security.md lists the cases by class with the RFC section behind each.
 */

/* The node's answer unless a case says otherwise. */
#define CAT_OK "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
/* Request heads from the harness's client. */
#define CAT_GET  "GET / HTTP/1.1\r\nHost: " H_HOST "\r\n"
#define CAT_POST "POST / HTTP/1.1\r\nHost: " H_HOST "\r\n"
#define CAT_TE   "Transfer-Encoding: chunked\r\n"

/* The head crossfade forwards for a request whose request line becomes `line` and whose Host is
 * `host`: the client's other end-to-end fields (`mid`, in order), the X-Forwarded-* fields it
 * sets, then its own framing (`framing`). */
#define CAT_FWD(line, host, mid, framing)                                                          \
    line "\r\nHost: " host "\r\n" mid "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n"  \
         "X-Forwarded-Host: " host "\r\n" framing "\r\n"
#define CAT_FWD_GET(mid)      CAT_FWD("GET / HTTP/1.1", H_HOST, mid, "")
#define CAT_FWD_POST(framing) CAT_FWD("POST / HTTP/1.1", H_HOST, "", framing)

/* A string literal and its length (it may hold NUL bytes). */
#define CAT_BYTES(s) .raw = (s), .raw_len = sizeof(s) - 1

struct cat_req {
    const char *raw; /* what the client sends (CAT_BYTES) */
    size_t raw_len;
    /* When set: sent once the node holds every byte of `node` (the head went on before the rest
     * of the request arrived: a streaming proxy cannot take that back, only cut it). */
    const char *rest;
    int status;      /* the status the client gets */
    const char *why; /* a piece of the body of crossfade's own answer; NULL: not checked */
    bool closed;     /* crossfade closes the client connection after the response */
    /* ... without saying Connection: close first (the node's response, begun before crossfade
     * knew the request would stay unfinished) */
    bool close_unsaid;
    const char *node; /* every byte the node receives; NULL: nothing at all */
    /* crossfade closes the node connection after those bytes (false: not checked; the fake
     * node takes a chunked body's last chunk for a second request and answers it too). */
    bool node_closed;
    const char *reply;       /* the node's answer; NULL: CAT_OK */
    bool silent;             /* the node never answers (its answer would end the request) */
    uint64_t max_body_bytes; /* limits.max_body_bytes; 0: unlimited */
    /* limits.request_buffer_bytes as written ("0": every body streams); NULL: the default. */
    const char *request_buffer;
    /* Pipelined after `raw` in the same write: must never reach the node (closed cases). */
    const char *pipelined;
};

/* Runs one request case and asserts its three outcomes. */
void cat_req_run(const struct cat_req *k);

/* What becomes of the node's connection after its response. */
enum cat_pool {
    CAT_POOL_ANY = 0, /* not checked */
    CAT_POOL_REUSED,  /* the next request goes on it */
    CAT_POOL_CLOSED,  /* crossfade closes it; the next request opens another */
};

struct cat_resp {
    const char *req;   /* the client's request; NULL: GET /r1 */
    const char *reply; /* what the node answers (CAT_REPLY) */
    size_t reply_len;
    enum h_fake_action action; /* after the reply */
    unsigned flags;            /* h_read_response_ex's (H_NO_BODY for HEAD) */
    int status;                /* the status the client gets; 0: the response is cut */
    const char *status_line;   /* how the client's head starts; NULL: not checked */
    const char *body;          /* the exact body the client gets; NULL: not checked */
    const char *why;           /* a piece of a 502's body; NULL: not checked */
    bool closed;               /* crossfade closes the client connection after the response */
    enum cat_pool pool;
};
#define CAT_REPLY(s) .reply = (s), .reply_len = sizeof(s) - 1

/* Runs one response case: the client's outcome, then (with the same client connection when it
 * stays open, so the same worker and pool) whether the node connection was reused. */
void cat_resp_run(const struct cat_resp *k);

#endif
