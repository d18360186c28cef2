/* bench/bench_xfbench.h -- xfbench, the load generator: its pure parts and its run's shared types.
 */
#ifndef BENCH_XFBENCH_H
#define BENCH_XFBENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <llhttp.h>
#include <openssl/types.h>

#include "common/xf.h"

/*
 * Two halves. The pure half (bench_xfbench_hist.c, _rollout.c, _gen.c, _watch.c, _check.c,
 * _report.c) does no I/O beyond writing a report to a FILE and is linked into the unit tests. The
 * I/O half (bench_xfbench.c, _conn.c, _tls.c, _ctl.c) runs the load and the rollout; see
 * docs/xfbench.md.
 */

/* --- limits: every list and buffer below is bounded by one of these --- */
#define BENCH_XFB_THREADS_MAX  64
#define BENCH_XFB_CONNS_MAX    100000
#define BENCH_XFB_HEADERS_MAX  64
#define BENCH_XFB_HEAD_MAX     8192 /* a request head, key included */
#define BENCH_XFB_BODY_MAX     (UINT64_C(64) << 20)
#define BENCH_XFB_KEYS_MAX     UINT64_C(1000000000)
#define BENCH_XFB_RATE_MAX     10000000                         /* requests/s */
#define BENCH_XFB_DURATION_MAX (UINT64_C(7) * 24 * 3600 * 1000) /* ms */
#define BENCH_XFB_STEPS_MAX    256
#define BENCH_XFB_LINE_MAX     256   /* an admin command line */
#define BENCH_XFB_REPLY_MAX    512   /* an admin reply kept in the timeline */
#define BENCH_XFB_EVENTS_MAX   4096  /* commands and notes in the timeline */
#define BENCH_XFB_RAMP_MAX     1000  /* weight changes in one ramp */
#define BENCH_XFB_ROUTES_MAX   64    /* distinct route header values counted by name */
#define BENCH_XFB_ROUTE_MAX    96    /* bytes of a route header value kept */
#define BENCH_XFB_WINDOWS_MAX  4096  /* windows kept for the reports; more are judged, not kept */
#define BENCH_XFB_WATCH_IN     24576 /* a watch line: a 4 KiB command escaped, and what changed */
#define BENCH_XFB_FAILS_MAX    8
#define BENCH_XFB_KEY_PREFIX   "consumer-"

/* --- the latency histogram --- */

/*
 * Log-linear buckets in the manner of HdrHistogram, in nanoseconds: values below 256 are exact;
 * above, each power of two is cut into 128 equal buckets, so a bucket is at most 1/128 of its
 * values wide. Percentiles report the bucket's midpoint (clamped to the exact min and max): the
 * relative error is at most 1/256 (0.4 %); the documented bound is 1 %. Values from 2^40 ns
 * (about 18 minutes) up land in the last bucket; the exact maximum is kept aside.
 */
#define BENCH_XFB_HIST_SUB_BITS 7
#define BENCH_XFB_HIST_SUB      (1u << BENCH_XFB_HIST_SUB_BITS)
#define BENCH_XFB_HIST_LINEAR   (2u * BENCH_XFB_HIST_SUB)
#define BENCH_XFB_HIST_TOP_BITS 40
#define BENCH_XFB_HIST_BUCKETS                                                                     \
    (BENCH_XFB_HIST_LINEAR +                                                                       \
     (BENCH_XFB_HIST_TOP_BITS - BENCH_XFB_HIST_SUB_BITS - 1) * BENCH_XFB_HIST_SUB)

struct bench_xfb_hist {
    uint64_t count;
    uint64_t sum; /* ns; wraps after 584 years of latency */
    uint64_t min;
    uint64_t max;
    uint64_t b[BENCH_XFB_HIST_BUCKETS];
};

void bench_xfb_hist_reset(struct bench_xfb_hist *h);
/* The bucket of value v, and the lowest and highest value a bucket holds. */
size_t bench_xfb_hist_index(uint64_t v);
uint64_t bench_xfb_hist_low(size_t i);
uint64_t bench_xfb_hist_high(size_t i);
void bench_xfb_hist_merge(struct bench_xfb_hist *dst, const struct bench_xfb_hist *src);
/*
 * The value at quantile q (0 < q <= 1): the midpoint of the bucket holding the ceil(q * count)-th
 * smallest value, within [min, max]. 0 for an empty histogram.
 */
uint64_t bench_xfb_hist_quantile(const struct bench_xfb_hist *h, double q);
uint64_t bench_xfb_hist_mean(const struct bench_xfb_hist *h);

static inline void
bench_xfb_hist_record(struct bench_xfb_hist *h, uint64_t v)
{
    h->b[bench_xfb_hist_index(v)]++;
    h->count++;
    h->sum += v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

/* --- numbers on the command line and in rollout scripts --- */

/*
 * A duration: digits with an optional fraction and a unit ms, s, m or h ("500ms", "1.5s", "10m");
 * a bare number is seconds, as in wrk. Returns 0 with *ms, or -1 (bad text or over max_ms).
 */
int bench_xfb_duration_parse(const char *s, size_t len, uint64_t max_ms, uint64_t *ms);
/*
 * A number with at most `decimals` decimals, no sign, no exponent, scaled by 10^decimals and at
 * most `max` once scaled ("12.5" with 2 decimals is 1250). Returns 0 or -1.
 */
int bench_xfb_fixed_parse(const char *s, size_t len, unsigned decimals, uint64_t max,
                          uint64_t *out);
/* A split weight as the admin socket takes it: 0 to 100, two decimals; in basis points. */
int bench_xfb_weight_parse(const char *s, size_t len, unsigned *bp);
/* Writes bp as "12.50"; returns buf. */
char *bench_xfb_weight_text(unsigned bp, char buf[8]);

/* --- rollout scripts --- */

enum bench_xfb_step_kind {
    BENCH_XFB_STEP_SET = 0, /* set weight P [force] */
    BENCH_XFB_STEP_RAMP, /* ramp P over D [step Q] [force]: xfbench sends the set weight commands */
    BENCH_XFB_STEP_ROLLBACK,
    BENCH_XFB_STEP_PROMOTE,
    BENCH_XFB_STEP_ADMIN, /* any other admin command (or admin LINE): sent as written */
};

struct bench_xfb_step {
    uint64_t at_ms; /* offset from the start of the run */
    enum bench_xfb_step_kind kind;
    unsigned weight_bp; /* SET, RAMP: the target */
    uint64_t over_ms;   /* RAMP */
    unsigned step_bp;   /* RAMP: the change per command; 0: one command per second */
    bool force;         /* SET, PROMOTE, RAMP: past y's capacity (each command of a ramp) */
    char line[BENCH_XFB_LINE_MAX]; /* the admin command as written (all but RAMP) */
    char text[BENCH_XFB_LINE_MAX]; /* the step as written, offset excluded */
};

struct bench_xfb_script {
    struct bench_xfb_step *steps; /* owned */
    size_t n;
};

/*
 * Parses "10s set weight 10; 20s ramp 50 over 20s; 45s rollback" (';' or newlines between steps,
 * offsets in order). On error returns -1 with e.g. `rollout step 1: bad offset "10x"` in err and
 * nothing allocated. The caller frees a parsed script with bench_xfb_script_fini.
 */
int bench_xfb_script_parse(const char *text, struct bench_xfb_script *out, struct xf_err *err);
void bench_xfb_script_fini(struct bench_xfb_script *s);

struct bench_xfb_change {
    uint64_t at_us; /* from the start of the ramp (plans) or of the run (the weight's history) */
    unsigned weight_bp;
    /* The history only: the change may have happened this long before at_us (0: at at_us, as
     * watch tells; a poll only learns of a change after the fact). */
    uint64_t lead_us;
};

/*
 * Plans a ramp from `from_bp` to `to_bp` over `over_ms`: n changes evenly spaced, the last at
 * over_ms with to_bp exactly; n is the number of whole seconds in over_ms (at least 1), or with
 * step_bp the number of steps of that size. Writes at most `max` changes; returns how many.
 */
size_t bench_xfb_ramp_plan(unsigned from_bp, unsigned to_bp, uint64_t over_ms, unsigned step_bp,
                           struct bench_xfb_change *out, size_t max);

/* --- the admin socket's watch stream (docs/admin.md) --- */

/* "2026-12-04T16:28:53.123Z" (UTC, milliseconds, nothing more) -> ms since the Unix epoch.
 * Returns 0, or -1 for anything else (a field out of range, no milliseconds, no Z). */
int bench_xfb_utc_ms_parse(const char *s, size_t len, int64_t *ms);

/* The first line of a watch, "ok: watching at TIME weight y W" (more words may follow): returns 0
 * with the moment of subscription and the weight in force, or -1. */
int bench_xfb_watch_hello(const char *line, size_t len, int64_t *at_ms, unsigned *bp);

/* One event line: #SEQ TIME uid=U pid=P "COMMAND" WHAT OLD -> NEW. */
struct bench_xfb_watch_line {
    int64_t seq;                      /* -1: "-" */
    int64_t at_ms;                    /* ms since the Unix epoch, UTC */
    int64_t uid, pid;                 /* -1: "-" */
    char command[BENCH_XFB_LINE_MAX]; /* unescaped (a NUL byte as '?'), cut to fit */
    /* Spans of the line parsed: borrowed, valid as long as it is. */
    const char *what, *old_v, *new_v;
    size_t what_len, old_len, new_len;
    int is_weight; /* WHAT is "weight": then old_bp (-1 for "-") and new_bp hold the values */
    int old_bp;
    unsigned new_bp;
};

/* Parses one line without its LF. Returns 0, or -1 with what is wrong in err (may be NULL). */
int bench_xfb_watch_parse(const char *line, size_t len, struct bench_xfb_watch_line *out,
                          struct xf_err *err);

/* Finds "weight y N.NN" in an admin reply ("ok: weight y 25.00 (was 0.00)", "y 25.00" of show
 * weight); returns 0 with *bp, or -1. */
int bench_xfb_reply_weight(const char *reply, unsigned *bp);

/* --- keys, rates, random numbers --- */

struct bench_xfb_rng {
    uint64_t s;
};

void bench_xfb_rng_seed(struct bench_xfb_rng *r, uint64_t seed);
uint64_t bench_xfb_rng_next(struct bench_xfb_rng *r);
/* Uniform in [0, 1). */
double bench_xfb_rng_unit(struct bench_xfb_rng *r);

/* Zipf over ranks 1..n with exponent s > 0, by rejection-inversion (Hoermann and Derflinger): O(1)
 * time and memory whatever n. */
struct bench_xfb_zipf {
    double s;
    uint64_t n;
    double h_x1, h_n, cut;
};

int bench_xfb_zipf_init(struct bench_xfb_zipf *z, uint64_t n, double s);
uint64_t bench_xfb_zipf_draw(const struct bench_xfb_zipf *z, struct bench_xfb_rng *r);

/* The split keys: ids 1..n, uniform or Zipf (id 1 the most frequent). */
struct bench_xfb_keys {
    uint64_t n; /* 0: requests carry no key */
    int zipf;
    struct bench_xfb_zipf z;
};

uint64_t bench_xfb_keys_draw(const struct bench_xfb_keys *k, struct bench_xfb_rng *r);
/* Writes BENCH_XFB_KEY_PREFIX and the id's digits (no NUL); returns the length (at most 32). */
size_t bench_xfb_key_format(uint64_t id, char *out);

/*
 * Open loop at a constant rate: request number i (0, 1, 2... over the whole run; connection k of
 * C sends numbers k, k + C, k + 2C...) is due at start + i / rate.
 */
struct bench_xfb_rate {
    uint64_t start_ns;
    uint64_t rate_milli; /* requests per 1000 s */
};

uint64_t bench_xfb_rate_due(const struct bench_xfb_rate *r, uint64_t i);

/* --- what a run counts --- */

enum bench_xfb_err {
    BENCH_XFB_ERR_CONNECT = 0,
    BENCH_XFB_ERR_TIMEOUT,
    BENCH_XFB_ERR_RESET,    /* reset or closed before the response was complete */
    BENCH_XFB_ERR_PROTOCOL, /* the response could not be parsed */
    BENCH_XFB_ERR_4XX,
    BENCH_XFB_ERR_5XX,
    /* https only (the reports of an http run leave them out, see bench_xfb_err_kinds): */
    BENCH_XFB_ERR_TLS,        /* a handshake failed or timed out, or a TLS error after it */
    BENCH_XFB_ERR_TLS_VERIFY, /* the server's certificate failed verification */
    BENCH_XFB_ERR_COUNT,
};

extern const char *const bench_xfb_err_names[BENCH_XFB_ERR_COUNT];

struct bench_xfb_opts;
/* How many error kinds a run's reports list: all of them for https, those before
 * BENCH_XFB_ERR_TLS for http. */
size_t bench_xfb_err_kinds(const struct bench_xfb_opts *o);

struct bench_xfb_counts {
    uint64_t responses; /* complete responses, any status */
    uint64_t err[BENCH_XFB_ERR_COUNT];
    uint64_t routed; /* responses that carried the route header */
    uint64_t on_y;   /* ... naming cluster y */
    /* The routed ones by the tenth of the second they came in: --check weighs each tenth's
     * expected share by its responses, so a rate that changes within a second (the warm-up, a
     * side faster than the other) does not skew a second's expectation. */
    uint64_t routed_tenth[10];
    uint64_t bytes;      /* received (of HTTP: decrypted, for https) */
    uint64_t handshakes; /* TLS handshakes completed */
    uint64_t resumed;    /* ... of which resumed a session */
};

void bench_xfb_counts_add(struct bench_xfb_counts *dst, const struct bench_xfb_counts *src);
uint64_t bench_xfb_counts_errors(const struct bench_xfb_counts *c);

/* One second of the timeline. */
struct bench_xfb_sec {
    struct bench_xfb_counts c;
    uint64_t p50_ns, p99_ns, max_ns;
    double span_s;  /* the part of the second the run covered (the last one may be shorter) */
    int weight_bp;  /* in force at the end of the second; -1: unknown */
    double mean_bp; /* in force during the second, time-weighted; -1: unknown */
};

/* An admin command and its reply, or a note, in the timeline. */
struct bench_xfb_event {
    uint64_t at_us;    /* sent, from the start of the run */
    uint64_t reply_us; /* the reply arrived; 0: none */
    unsigned step;     /* rollout step (1-based); 0: not from the script */
    int ok;            /* the reply did not start with "error:" */
    int weight_bp;     /* the weight the reply announced, -1: none */
    int minor;         /* one command of a ramp: listed, not marked on the charts */
    char command[BENCH_XFB_LINE_MAX];
    char reply[BENCH_XFB_REPLY_MAX]; /* lines joined with " / " */
};

struct bench_xfb_route {
    char name[BENCH_XFB_ROUTE_MAX]; /* "y 127.0.0.1:9201" */
    uint64_t count;
};

/* Where the weight in force came from. */
enum bench_xfb_wsrc {
    BENCH_XFB_WSRC_NONE = 0, /* neither -s nor --weight: unknown */
    BENCH_XFB_WSRC_OPTION,   /* --weight, taken as constant */
    BENCH_XFB_WSRC_WATCH,    /* the admin socket's watch: each change at its time */
    BENCH_XFB_WSRC_POLL,     /* show weight once a second: each change within about a second */
};

extern const char *const bench_xfb_wsrc_names[4];

/* Consecutive seconds of the run judged together by --check. */
struct bench_xfb_window {
    double from_s, to_s; /* the seconds it covers */
    /* The y share expected: the weight in force averaged over each second's time, then over the
     * seconds by their routed responses; lo and hi allow for when each change reached the
     * traffic (--settle, and a poll's uncertainty). -1 when the weight is not known. */
    double expect_bp, lo_bp, hi_bp;
    uint64_t routed, on_y;
    int judged;  /* enough responses, and the weight known */
    int unknown; /* not judged: the weight's history had ended (see weights_lost) */
    int ok;
    double off_bp; /* how far the share lies outside [lo, hi] */
};

/* --- the command line --- */

struct bench_xfb_opts {
    const char *url; /* borrowed from argv, as the other strings */
    char host[256];  /* for Host: as written in the URL (port included unless default) */
    char path[2048];
    struct sockaddr_storage addr;
    socklen_t addr_len;
    int tls;             /* an https URL */
    const char *ca_file; /* --ca; NULL: the system's CA store */
    int insecure;        /* --insecure: the certificate is not verified */
    char tls_name[256];  /* the URL's host without port or brackets: the name (or address) the
                            certificate must hold, and the SNI */
    int tls_name_is_ip;  /* ... an IP address: verified as one, and no SNI sent */
    unsigned threads;
    unsigned conns;
    uint64_t duration_ms; /* 0 with -n alone */
    uint64_t requests;    /* -n; 0: by duration */
    uint64_t rate_milli;  /* --rate; 0: closed loop */
    struct bench_xfb_keys keys;
    double zipf_s;
    const char *key_header; /* NULL with --key-cookie */
    const char *key_cookie;
    const char *method;
    const char *headers[BENCH_XFB_HEADERS_MAX];
    size_t nheaders;
    uint64_t body_size;
    uint64_t timeout_ms;
    const char *route_header;
    const char *admin_socket;
    const char *rollout_text;
    struct bench_xfb_script script; /* owned */
    int check;
    unsigned tolerance_bp;
    uint64_t settle_ms;
    uint64_t check_min; /* responses a window needs to be judged */
    int weight_bp;      /* --weight, -1: not given */
    const char *json_path;
    const char *html_path;
    int quiet;
    uint64_t seed;
};

/* --- the outcome of a run, as the reports read it --- */

struct bench_xfb_result {
    const struct bench_xfb_opts *o; /* borrowed */
    char started[32];               /* UTC, ISO 8601 */
    double elapsed_s;
    struct bench_xfb_counts totals;
    uint64_t connects;
    /* https: what the handshakes agreed (OpenSSL's static strings; NULL: none completed), and
     * the first TLS failure of the run ("" when none). */
    const char *tls_version, *tls_cipher;
    char tls_error[256];
    struct bench_xfb_hist *hist;    /* borrowed */
    struct bench_xfb_route *routes; /* borrowed, by count, largest first */
    size_t nroutes;
    uint64_t routes_other; /* responses whose route value did not fit the table */
    struct bench_xfb_sec *secs;
    size_t nsec;
    struct bench_xfb_event *events;
    size_t nevents;
    uint64_t events_dropped;
    int initial_bp; /* -1: unknown */
    int final_bp;
    int interrupted; /* SIGINT or SIGTERM ended the run early */
    /* The weight's history: changes (borrowed, in time order) from wsrc. With weights_lost it ends
     * at weights_lost_us (the watch connection broke...), and nothing after is judged. */
    enum bench_xfb_wsrc wsrc;
    const struct bench_xfb_change *changes;
    size_t nchanges;
    int weights_lost;
    uint64_t weights_lost_us;
    char weights_note[256]; /* why the history is less than exact, "" when it is */
    /* --check */
    int checked;
    int passed;
    struct bench_xfb_window windows[BENCH_XFB_WINDOWS_MAX];
    size_t nwindows;
    size_t windows_more; /* judged but not kept: the list was full */
    size_t njudged;
    char fails[BENCH_XFB_FAILS_MAX][256];
    size_t nfails;
};

/*
 * Judges the run for --check: any failed request, any rollout command that failed, and the y share
 * of the routed responses against the weights in force (docs/xfbench.md "--check"). Each second
 * expects the weight in force averaged over its time; a change counts anywhere from lead_us before
 * its time to settle_ms after it, which widens the expectation into a range. Consecutive seconds
 * with the same expectation, or too few responses alone (check_min), form one window; a window
 * fails when its share lies more than tolerance_bp outside the range weighted by its seconds'
 * responses. `changes` is the weight's history (in time order, times from the start of the run);
 * r->initial_bp < 0 leaves the share unjudged, and r->weights_lost every second ending after
 * r->weights_lost_us. Fills r->windows, r->fails, r->checked and r->passed; returns r->passed.
 */
int bench_xfb_check(struct bench_xfb_result *r, const struct bench_xfb_change *changes,
                    size_t nchanges);
/* The weight in force at `at_us` given the history; -1 when the initial weight is unknown. */
int bench_xfb_weight_at(int initial_bp, const struct bench_xfb_change *changes, size_t n,
                        uint64_t at_us);
/* The weight in force over [a_us, b_us), averaged over the time, each change at its at_us; -1 when
 * the initial weight is unknown. An empty span gives the weight at a_us. */
double bench_xfb_weight_mean(int initial_bp, const struct bench_xfb_change *changes, size_t n,
                             uint64_t a_us, uint64_t b_us);
/* Fills each second's weight_bp (at its end) and mean_bp from the history and r->initial_bp. */
void bench_xfb_weights_fill(struct bench_xfb_result *r, const struct bench_xfb_change *changes,
                            size_t n);

/* The reports: the end-of-run summary (text), --json and --html. Return 0, or -1 on write error. */
int bench_xfb_report_text(const struct bench_xfb_result *r, FILE *f);
int bench_xfb_report_json(const struct bench_xfb_result *r, FILE *f);
int bench_xfb_report_html(const struct bench_xfb_result *r, FILE *f);
/* The live line for one second: "[  3s/10s]  45231 req/s  p50 ...". */
void bench_xfb_live_line(const struct bench_xfb_opts *o, size_t sec, const struct bench_xfb_sec *s,
                         uint64_t done, char *buf, size_t size);

/* ===================== the I/O half ===================== */

#define BENCH_XFB_RING     4 /* seconds the aggregator holds open */
#define BENCH_XFB_TICK_MS  100
#define BENCH_XFB_RBUF     (64 * 1024)
#define BENCH_XFB_GRACE_MS 1000 /* a second is closed at the latest this long after it ended */

struct bench_xfb_slot {
    int64_t sec; /* -1: free */
    struct bench_xfb_counts c;
    struct bench_xfb_hist h;
};

/* The per-second timeline, filled by every worker once a second and closed by the main thread. */
struct bench_xfb_agg {
    pthread_mutex_t mu;
    struct bench_xfb_slot ring[BENCH_XFB_RING];
    struct bench_xfb_sec *secs; /* owned: closed seconds 0 .. nsec-1 */
    size_t nsec, cap;
    int64_t *flushed; /* owned, per worker: every second below it was handed in */
    unsigned nworkers;
    int64_t hi; /* 1 + the last second that received data */
};

enum bench_xfb_cstate {
    BENCH_XFB_C_DOWN = 0,   /* no socket: connecting is the next step */
    BENCH_XFB_C_BACKOFF,    /* waiting before reconnecting after a failed connect */
    BENCH_XFB_C_CONNECTING, /* waiting for the connect to finish */
    BENCH_XFB_C_HANDSHAKE,  /* https: connected, the TLS handshake under way */
    BENCH_XFB_C_IDLE,       /* connected, no request in flight */
    BENCH_XFB_C_SENDING,    /* a request is partly sent */
    BENCH_XFB_C_WAITING,    /* the request is sent; the response is due */
    BENCH_XFB_C_DONE,       /* no more requests: the run or its quota is over */
};

struct bench_xfb_worker;

struct bench_xfb_conn {
    struct bench_xfb_worker *w; /* borrowed */
    int fd;                     /* owned, -1 when closed */
    SSL *ssl;                   /* owned: https only, NULL on the plain path and when closed */
    uint32_t epoch;             /* bumped at each close: tells a callback its socket was replaced */
    uint8_t tls_live;          /* handshake done, no TLS error, peer not closed: close_notify due */
    uint8_t tls_write_on_read; /* SSL_write wanted to read first: flush when readable */
    uint8_t tls_read_on_write; /* SSL_read wanted to write first: read when writable */
    struct event *rev;         /* owned: EV_READ|EV_PERSIST while connected */
    struct event *wev;         /* owned: EV_WRITE, armed while connecting or blocked */
    struct event *tev;         /* owned: due time (open loop) or reconnect back-off */
    enum bench_xfb_cstate st;
    uint64_t index;     /* among every connection of the run */
    uint64_t nth;       /* requests this connection started: the rate schedule's position */
    uint64_t origin_ns; /* latency is measured from here: the send, or the due time */
    uint64_t sent_ns;   /* the timeout runs from here */
    char *out;          /* owned: the request head; the prefix never changes */
    size_t out_len;     /* head bytes of the current request */
    size_t out_off;     /* bytes of head + body sent */
    llhttp_t parser;
    int status;
    uint8_t complete;   /* the response is complete (the parser paused there) */
    uint8_t keep_alive; /* ... and the connection stays open after it */
    uint8_t got_bytes;  /* some of the response has arrived */
    uint8_t route_done; /* the first route header was read: later ones are ignored */
    uint8_t field_match;
    uint8_t field_long;
    uint8_t field_len;
    uint8_t route_len;
    char field[64];
    char route[BENCH_XFB_ROUTE_MAX];
};

struct bench_xfb_run;

struct bench_xfb_worker {
    struct bench_xfb_run *run; /* borrowed */
    unsigned id;
    pthread_t thread;
    int started;
    struct event_base *base;      /* owned */
    struct event *tick;           /* owned: every BENCH_XFB_TICK_MS */
    struct event *end;            /* owned: the deadline of a timed run */
    struct bench_xfb_conn *conns; /* owned array */
    size_t nconns;
    size_t active; /* connections not DONE */
    char *rbuf;    /* owned: BENCH_XFB_RBUF bytes of receive scratch */
    struct bench_xfb_rng rng;
    uint64_t quota; /* -n: requests this worker may still start */
    uint64_t connects;
    int64_t cur_sec;
    unsigned cur_tenth;           /* the tenth of cur_sec the last count came in */
    struct bench_xfb_counts cur;  /* the current second */
    struct bench_xfb_hist *cur_h; /* owned */
    struct bench_xfb_counts total;
    struct bench_xfb_hist *total_h; /* owned */
    struct bench_xfb_route routes[BENCH_XFB_ROUTES_MAX];
    size_t nroutes;
    uint64_t routes_other;
    uint64_t finish_ns; /* when the loop ended; read by main after the join */
    /* https */
    /* owned (an SSL_SESSION): the session of the last connection that had one to resume; the
     * next connection offers it */
    struct ssl_session_st *sess;
    const char *tls_version, *tls_cipher; /* of the first handshake (OpenSSL's static strings) */
    char tls_error[256];                  /* the worker's first TLS failure, "" when none */
};

/* Everything a run shares between its threads; built by main, read-only once the workers run,
 * except agg (under its mutex) and stop. */
struct bench_xfb_run {
    struct bench_xfb_opts *o;
    uint64_t start_ns;
    uint64_t end_ns; /* 0: no deadline */
    atomic_int stop;
    struct bench_xfb_agg agg;
    struct bench_xfb_worker *workers; /* owned array */
    char *prefix;                     /* owned: the request head up to the key value */
    size_t prefix_len;
    char *suffix; /* owned: after the key value, through the empty line */
    size_t suffix_len;
    char *body; /* owned: body_size bytes */
    size_t head_cap;
    char route_name[64]; /* --route-header in lower case */
    size_t route_name_len;
    struct bench_xfb_rate rate; /* --rate: the schedule every connection follows */
    atomic_uint finished;       /* workers whose loop has ended */
    SSL_CTX *ssl_ctx;           /* owned: https only, shared by the workers (NULL for http) */
    const char *tls_version, *tls_cipher; /* from the check before the run; NULL: unknown */
    atomic_int tls_warned;                /* the run's first TLS failure was printed */
};

uint64_t bench_xfb_now_ns(void);

/* bench_xfbench_conn.c: a worker's loop, its connections, the per-second hand-in. */
int bench_xfb_worker_init(struct bench_xfb_worker *w, struct bench_xfb_run *run, unsigned id,
                          size_t first_conn, size_t nconns, uint64_t quota, struct xf_err *err);
void *bench_xfb_worker_main(void *arg);
void bench_xfb_worker_fini(struct bench_xfb_worker *w);

/* bench_xfbench_agg (in _conn.c): the shared timeline. */
int bench_xfb_agg_init(struct bench_xfb_agg *a, unsigned nworkers);
void bench_xfb_agg_fini(struct bench_xfb_agg *a);
/* Closes the seconds below `now_sec` that every worker handed in, and those whose grace has passed
 * (all of them with `all`). Returns the number of closed seconds. */
size_t bench_xfb_agg_close(struct bench_xfb_agg *a, int64_t now_sec, int all);

/* bench_xfbench_tls.c: https. */
/* The client context for o (verification by --ca, the system's store, or none with --insecure;
 * TLS 1.2 and up; sessions handed to the worker of their connection). NULL with err. */
SSL_CTX *bench_xfb_tls_ctx_new(const struct bench_xfb_opts *o, struct xf_err *err);
/* A client SSL on fd (borrowed) with the name to verify and the SNI, offering `sess` (may be
 * NULL). NULL when out of memory. */
SSL *bench_xfb_tls_new(SSL_CTX *ctx, const struct bench_xfb_opts *o, int fd,
                       struct ssl_session_st *sess);
/* A connection of w ends: its session (with the tickets read during its life) becomes the one
 * w's next connection offers, when it can be resumed; a session that resumed stays as it is. */
void bench_xfb_tls_keep_session(struct bench_xfb_worker *w, SSL *ssl);
/* Why the TLS call that returned rc failed (SSL_get_error is not SSL_ERROR_WANT_*): the reason in
 * buf, and BENCH_XFB_ERR_TLS_VERIFY when the certificate failed verification, BENCH_XFB_ERR_RESET
 * when the peer reset or closed the TCP connection during a read, else BENCH_XFB_ERR_TLS. Clears
 * the thread's OpenSSL error queue. */
enum bench_xfb_err bench_xfb_tls_reason(SSL *ssl, int rc, const struct bench_xfb_opts *o, char *buf,
                                        size_t size);
/*
 * Before the load: one connection and handshake (blocking, at most --timeout), then a clean
 * close. Returns 0 (sets run->tls_version and tls_cipher), -1 when the certificate failed
 * verification, 1 when it could not tell (no connection, or a handshake that failed otherwise);
 * why in err for -1 and 1.
 */
int bench_xfb_tls_probe(struct bench_xfb_run *run, struct xf_err *err);

/* bench_xfbench_ctl.c: the admin socket client and the rollout, on the main thread's loop. */
struct bench_xfb_ctl;
/*
 * Connects to the admin socket and reads the weight in force (blocking, at most 3 s), then opens a
 * second connection that sends `watch` (at most 3 s more; without it, a warning and the poll).
 * Returns the controller (owned by the caller, freed with bench_xfb_ctl_free) or NULL with the
 * reason in err.
 */
struct bench_xfb_ctl *bench_xfb_ctl_new(const struct bench_xfb_opts *o, struct xf_err *err);
/* Starts the script and the watch (or the once-a-second weight poll) on `base`; times count from
 * start_ns. */
int bench_xfb_ctl_start(struct bench_xfb_ctl *ctl, struct event_base *base, uint64_t start_ns);
/* Stops sending; waits (at most 2 s) for the replies still due. */
void bench_xfb_ctl_stop(struct bench_xfb_ctl *ctl);
int bench_xfb_ctl_weight(const struct bench_xfb_ctl *ctl); /* the weight in force, or -1 */
int bench_xfb_ctl_initial(const struct bench_xfb_ctl *ctl);
/* The timeline's events and the weight's history; borrowed until the controller is freed. */
const struct bench_xfb_event *bench_xfb_ctl_events(const struct bench_xfb_ctl *ctl, size_t *n,
                                                   uint64_t *dropped);
const struct bench_xfb_change *bench_xfb_ctl_changes(const struct bench_xfb_ctl *ctl, size_t *n);
/* Where the history comes from, and whether (and when, and why) it stopped being exact: fills
 * r->wsrc, r->weights_lost, r->weights_lost_us and r->weights_note. */
void bench_xfb_ctl_weights(const struct bench_xfb_ctl *ctl, struct bench_xfb_result *r);
void bench_xfb_ctl_free(struct bench_xfb_ctl *ctl);

#endif
