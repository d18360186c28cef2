/* bench/bench_upstream.h -- xf-upstream's shared types: configuration, workers, connections. */
#ifndef BENCH_UPSTREAM_H
#define BENCH_UPSTREAM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <llhttp.h>
#include <xxhash.h>

#include "common/xf.h"

/*
 * Buffers are bounded. The input buffer also bounds a request head (a longer head gets 431): the
 * head stays in it until it is complete so /echo can return it byte for byte. Output is queued up
 * to BENCH_UP_OUT_CAP bytes, then sent; a response head is only started with BENCH_UP_HEAD_ROOM
 * bytes of room, which is more than the longest head written here.
 */
#define BENCH_UP_IN_CAP      (64 * 1024)
#define BENCH_UP_OUT_CAP     (64 * 1024)
#define BENCH_UP_HEAD_ROOM   1024
#define BENCH_UP_URL_MAX     128
#define BENCH_UP_NAME_MAX    128
#define BENCH_UP_LINE_MAX    (BENCH_UP_NAME_MAX + 64)
#define BENCH_UP_ECHO_MAX    (1024 * 1024)
#define BENCH_UP_CHUNK_MAX   (16 * 1024)
#define BENCH_UP_PATTERN_LEN (26 * 2560) /* >= BENCH_UP_OUT_CAP + 25: a slice at any phase fits */
#define BENCH_UP_N_MAX       (UINT64_C(1) << 40)
#define BENCH_UP_MS_MAX      (UINT64_C(3600) * 1000)
#define BENCH_UP_LINGER_MS   2000
#define BENCH_UP_PPM         1000000u
#define BENCH_UP_THREADS_MAX 64

/* One --listen address: as given until bound, then the bound address (the real port for :0). */
struct bench_up_listen {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char text[80]; /* "127.0.0.1:9001", "[::1]:9001" */
};

/* The command line; built by main, then read-only while the workers run. */
struct bench_up_cfg {
    char name[BENCH_UP_NAME_MAX + 1];
    size_t name_len;
    char name_line[BENCH_UP_LINE_MAX]; /* "NAME\n", the default body */
    size_t name_line_len;
    char error_line[BENCH_UP_LINE_MAX]; /* "NAME error\n", injected 500s */
    size_t error_line_len;
    char bad_line[BENCH_UP_LINE_MAX]; /* "NAME bad request\n", 4xx answers */
    size_t bad_line_len;
    struct bench_up_listen *listen; /* owned */
    size_t nlisten;
    uint64_t delay_ms;
    uint64_t idle_close_ms;
    uint64_t body_bytes; /* with has_body_bytes: default bodies are this many pattern bytes */
    int has_body_bytes;
    uint32_t error_ppm; /* --error-rate and --close-rate in parts per million */
    uint32_t close_ppm;
    unsigned threads;
    int quiet;
};

/* One event loop (thread) with its own listening sockets (SO_REUSEPORT when there are several). */
struct bench_up_worker {
    const struct bench_up_cfg *cfg; /* borrowed */
    struct bench_up_worker *peers;  /* borrowed: every worker, so worker 0 can stop the others */
    unsigned id;
    struct event_base *base;     /* owned */
    int *lfd;                    /* owned: cfg->nlisten listening sockets, -1 when not open */
    struct event **lev;          /* owned: their accept events */
    struct event *accept_resume; /* owned: re-arms the listeners after EMFILE */
    int wake_fd;                 /* owned: eventfd that stops workers 1..N-1, or -1 */
    struct event *wake;          /* owned */
    struct event *sig[2];        /* owned: SIGTERM and SIGINT, worker 0 only */
    pthread_t thread;
    int started;
    struct bench_up_conn *conns; /* owned: live connections, doubly linked */
    char *in_mem;                /* owned: input scratch for the connection being served */
    char *out_mem;               /* owned: output scratch, likewise */
    char *pattern;               /* owned: BENCH_UP_PATTERN_LEN bytes of 'a' + i % 26 */
    uint32_t error_acc;          /* fault injection accumulators, in ppm */
    uint32_t close_acc;
    /* Written by this loop only (bench_up_count), read by any loop's /_counters. */
    _Atomic uint64_t requests; /* complete requests, /_counters not counted */
    _Atomic uint64_t accepted; /* connections accepted */
    uint64_t last_warn_ms;
};

/* What a connection does next, as the HTTP layer tells the I/O layer. */
enum bench_up_step {
    BENCH_UP_STEP_INPUT = 0, /* every byte read is parsed: read more */
    BENCH_UP_STEP_FLUSH,     /* output is full: send it before producing more */
    BENCH_UP_STEP_WAIT,      /* a timer resumes the response (--delay, /delay, /slowbody) */
    BENCH_UP_STEP_CLOSE,     /* send what is queued, then close */
    BENCH_UP_STEP_DONE,      /* the current response is complete (inside the HTTP layer) */
};

enum bench_up_timer {
    BENCH_UP_TIMER_NONE = 0,
    BENCH_UP_TIMER_WAIT,   /* the response waits (delay, slow body) */
    BENCH_UP_TIMER_IDLE,   /* --idle-close */
    BENCH_UP_TIMER_LINGER, /* bounds the wait for the peer's FIN after ours */
};

enum bench_up_route {
    BENCH_UP_ROUTE_DEFAULT = 0,
    BENCH_UP_ROUTE_ECHO,
    BENCH_UP_ROUTE_COUNT,
    BENCH_UP_ROUTE_BYTES,
    BENCH_UP_ROUTE_CHUNKED,
    BENCH_UP_ROUTE_NOLENGTH,
    BENCH_UP_ROUTE_STATUS,
    BENCH_UP_ROUTE_DELAY,
    BENCH_UP_ROUTE_CLOSE,
    BENCH_UP_ROUTE_HEADERS,
    BENCH_UP_ROUTE_SLOWBODY,
    BENCH_UP_ROUTE_ERROR,  /* --error-rate chose this request */
    BENCH_UP_ROUTE_BADARG, /* a known path with a bad number: 400, connection kept */
    BENCH_UP_ROUTE_CONNECT,
    BENCH_UP_ROUTE_COUNTERS, /* /_counters: what every loop has seen so far */
};

enum bench_up_framing {
    BENCH_UP_FRAME_LENGTH = 0,
    BENCH_UP_FRAME_CHUNKED,
    BENCH_UP_FRAME_EOF,  /* neither length nor chunks: the close ends the body */
    BENCH_UP_FRAME_NONE, /* 204 and 304: no body and no length */
};

/*
 * A byte buffer. Between turns it holds memory only when it owns some: while a connection is
 * served, an unowned buffer borrows the worker's scratch, and what is left in it at the end of the
 * turn (a partial head, pipelined requests, unsent output) moves to an owned allocation kept until
 * the connection closes. Idle connections that never blocked hold no buffer at all.
 */
struct bench_up_buf {
    char *p;
    size_t off; /* output: first unsent byte */
    size_t len;
    size_t cap;
    int owned;
};

/* The request being parsed. Reset at each message begin. */
struct bench_up_req {
    enum bench_up_route route;
    uint64_t arg;         /* N, CODE or MS from the path */
    size_t head_start;    /* offset of the head's first byte in conn->in while head_open */
    size_t echo_head_len; /* /echo: head bytes at the start of echo */
    uint64_t echo_body;   /* /echo: body bytes kept (at most BENCH_UP_ECHO_MAX) */
    uint64_t body_len;    /* payload bytes seen */
    char *echo;           /* owned: /echo's response body */
    size_t echo_len;
    size_t echo_cap;
    size_t url_len;
    size_t field_len;
    size_t value_len;
    uint8_t url_cut;      /* the URL was longer than url[] */
    uint8_t echo_cut;     /* /echo: the body was longer than BENCH_UP_ECHO_MAX */
    uint8_t head_open;    /* the head has started and is not complete: keep its bytes */
    uint8_t echo_head;    /* paused at headers complete: copy the head */
    uint8_t field_expect; /* the current header is Expect */
    uint8_t expect_continue;
    uint8_t keep_alive;
    uint8_t http10; /* HTTP/1.0 (or 0.9): no chunked responses */
    uint8_t is_head;
    uint8_t complete; /* paused at message complete: answer it */
    uint8_t upgrade;
    /* Not cleared between requests: only read up to the lengths above. */
    char url[BENCH_UP_URL_MAX];
    char field[16];
    char value[16];
};

/* The response being produced. */
struct bench_up_resp {
    const char *mem;   /* borrowed body bytes (cfg, line, req.echo), NULL: the pattern */
    uint64_t clen;     /* body length announced: what a GET gets */
    uint64_t left;     /* body bytes still to produce (0 for HEAD) */
    uint64_t sent;     /* body bytes produced: also the pattern's phase */
    uint64_t pause_at; /* /slowbody: wait after this many body bytes */
    uint64_t pause_ms;
    enum bench_up_framing framing;
    int status;
    uint8_t active;
    uint8_t waiting;
    uint8_t head_pending;
    uint8_t close_after;
    uint8_t conn_keep_alive; /* "Connection: keep-alive" for HTTP/1.0 */
    uint8_t hop;             /* /headers */
    uint8_t pause_pending;
    uint8_t final_chunk;
    size_t line_len;
    char line[BENCH_UP_LINE_MAX]; /* short bodies built per response */
};

struct bench_up_conn {
    struct bench_up_worker *w;         /* borrowed */
    struct bench_up_conn *prev, *next; /* in w->conns */
    int fd;                            /* owned */
    struct event *rev;                 /* owned: EV_READ|EV_PERSIST, armed while input is wanted */
    struct event *wev;                 /* owned: EV_WRITE|EV_PERSIST, armed only while blocked */
    struct event *tev;                 /* owned, created on first use */
    enum bench_up_timer timer;
    size_t parse_off; /* in.p[0 .. parse_off) has been fed to the parser */
    struct bench_up_buf in;
    struct bench_up_buf out;
    XXH64_state_t *xxh; /* owned: created by the first /count */
    llhttp_t parser;
    struct bench_up_req req;
    struct bench_up_resp resp;
    uint8_t rev_on;
    uint8_t wev_on;
    uint8_t rd_eof;     /* the peer finished sending */
    uint8_t closing;    /* close once the output is sent */
    uint8_t lingering;  /* our FIN is sent: discard input until the peer's FIN */
    uint8_t parse_dead; /* a parse error was answered: never parse again */
    uint8_t parse_more; /* paused before message complete: call the parser even without input */
};

/* Adds one to a counter that only this loop writes: a relaxed load and store, no locked
 * instruction on the hot path; other loops may read it at any time. */
static inline void
bench_up_count(_Atomic uint64_t *n)
{
    atomic_store_explicit(n, atomic_load_explicit(n, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* bench_upstream_conn.c: connections and their I/O. */
void bench_up_accept_cb(evutil_socket_t lfd, short what, void *arg);
void bench_up_accept_resume_cb(evutil_socket_t fd, short what, void *arg);
/* Closes the socket and frees everything the connection owns; NULL is a no-op. */
void bench_up_conn_free(struct bench_up_conn *c);
/* Arms the connection's one timer for `kind`, replacing any other use; returns 0 or -1. */
int bench_up_conn_timer(struct bench_up_conn *c, enum bench_up_timer kind, uint64_t ms);

/* bench_upstream_http.c: requests and responses. */
void bench_up_http_init(struct bench_up_conn *c);
/* Frees what the HTTP state owns (echo copy, hash state). */
void bench_up_http_fini(struct bench_up_conn *c);
/*
 * Parses buffered input and produces responses into c->out until more input, a flush, a timer or
 * a close is needed. Never does I/O.
 */
enum bench_up_step bench_up_http_produce(struct bench_up_conn *c);
/* Answers `status` with the bad-request body and stops parsing; the connection closes after. */
void bench_up_http_reject(struct bench_up_conn *c, int status);
/* The WAIT timer expired: the response goes on. */
void bench_up_http_timer(struct bench_up_conn *c);
/* Fills `n` bytes with the body pattern: byte i is 'a' + i % 26. */
void bench_up_pattern_fill(char *p, size_t n);
/* Parses decimal digits only (no sign, no space) up to `max`; returns 0 or -1. */
int bench_up_parse_u64(const char *s, size_t n, uint64_t max, uint64_t *out);

#endif
