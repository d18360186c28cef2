/* tests/integration/harness.h -- real binaries and fake upstreams on loopback, for the tests. */
#ifndef HARNESS_H
#define HARNESS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Every suite is declared with `.init = h_setup, .fini = h_teardown` and every test carries a
 * `.timeout`. Criterion runs each test in its own process: the harness keeps one scratch directory
 * per test, stops every process the test started (children also get PR_SET_PDEATHSIG=SIGKILL, so a
 * test killed by its timeout leaves nothing behind) and frees what it allocated (the sanitizer run
 * fails a test process that leaks). When a test fails, the runner prints the logs of that test's
 * scratch directory (crossfade's stderr, the access log, the upstreams' stderr).
 *
 * Memory: strings and buffers the harness returns are owned by the harness and live until the end
 * of the test; tests never free them.
 */

#define H_TEST_TIMEOUT 30  /* seconds: the .timeout of an ordinary test */
#define H_BIG_TIMEOUT  240 /* seconds: tests that move XF_TEST_BIG_MB through the proxy */
/* The longest wait for the next byte, unless a test says otherwise. */
#define H_IO_TIMEOUT_MS 10000
#define H_MAX_NODES     8
#define H_HOST          "crossfade.test" /* the Host header of the harness's requests */

void h_setup(void);
void h_teardown(void);

/* --- the test's scratch directory, files and memory --- */

/* The test's own scratch directory (created on first use; short enough for a unix socket path). */
const char *h_dir(void);
/* "<dir>/<name>". */
const char *h_path(const char *name);
/* Writes a file in the scratch directory and returns its path. */
const char *h_write_file(const char *name, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The whole content of a file, NUL-terminated (NULL when it cannot be read); *len may be NULL. */
char *h_read_file(const char *path, size_t *len);
/* printf into a harness-owned string. */
char *h_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Harness-owned memory, zeroed, freed at teardown. */
void *h_alloc(size_t n);
void *h_realloc(void *p, size_t n);
/* Finds `needle` in `hay` ignoring ASCII case; NULL when absent. */
const char *h_memcasemem(const char *hay, size_t hay_len, const char *needle);

/* Milliseconds on the monotonic clock; sleeping for `ms`. */
uint64_t h_now_ms(void);
void h_sleep_ms(unsigned ms);

/* The size of the big transfers: XF_TEST_BIG_MB MiB (default 1024). */
uint64_t h_big_bytes(void);

/* The body pattern of xf-upstream's /bytes, /chunked and /nolength: byte i is 'a' + i % 26. */
void h_pattern_fill(char *buf, size_t len, uint64_t offset);
/* Index of the first byte of `data` (which starts at stream offset `offset`) off the pattern,
 * or -1 when every byte matches. */
long long h_pattern_check(const char *data, size_t len, uint64_t offset);

/* Parses xf-upstream's /count answer "bytes=N xxh64=HEX\n": 0, or -1 when it is not one. */
int h_count_parse(const char *body, uint64_t *bytes, uint64_t *xxh64);

/* --- processes --- */

struct h_proc {
    pid_t pid;          /* 0 when never started */
    bool reaped;        /* waited for: `code` is valid */
    int code;           /* exit status 0..255, or 128 + signal number */
    char name[48];      /* for messages */
    char log_path[256]; /* stdout and stderr of the process */
};

/* "$XF_BIN/<name>" (XF_BIN defaults to ./bin). */
const char *h_bin(const char *name);
/* Registers a process the test did not start but that is its child (an orphan of a process the
 * test started: the test process is a child subreaper), so that it is waited for with
 * h_proc_wait and stopped at teardown. Processes left unregistered are killed at teardown too. */
struct h_proc *h_adopt(const char *name, pid_t pid, const char *log_path);
/* Starts argv[0] with stdout and stderr appended to `log_path`, stdin from /dev/null, and dies with
 * the test. `env_extra` ("KEY=VALUE" strings, NULL-terminated, may be NULL) overrides the
 * environment. The process is stopped at teardown. */
struct h_proc *h_spawn(const char *name, char *const argv[], const char *log_path,
                       char *const env_extra[]);
/* Waits up to timeout_ms for the process to exit: returns its code, or -1 if it still runs. */
int h_proc_wait(struct h_proc *p, int timeout_ms);
/* Sends `sig` and waits up to timeout_ms: the exit code, or -1 (then the process is SIGKILLed). */
int h_proc_stop(struct h_proc *p, int sig, int timeout_ms);
bool h_proc_alive(struct h_proc *p);
/* Runs a program to completion (at most timeout_ms); returns its code, -1 on timeout. Its stdout
 * and stderr are returned in *out / *err when those are not NULL. */
int h_run(char *const argv[], int timeout_ms, char **out, char **err);
/* VmRSS of a process in KiB, or -1. */
long h_rss_kib(pid_t pid);
/* The CPU time a process has used so far (utime + stime of /proc/PID/stat) in ms, or -1. */
long long h_cpu_ms(pid_t pid);

/* --- ports --- */

/* A port that was free on 127.0.0.1 a moment ago (bound to port 0, then closed). */
int h_free_port(void);
/* Connects to 127.0.0.1:port: 0, or the errno of the failure (ECONNREFUSED, ETIMEDOUT...). */
int h_try_connect(int port, int timeout_ms);
/* A loopback port that listens but whose queue is full: a connect to it neither completes nor
 * fails (it times out). Open until the end of the test. */
int h_blackhole_start(void);

/* TCP states as /proc/net/tcp numbers them. */
#define H_TCP_ESTABLISHED 1
#define H_TCP_CLOSE_WAIT  8 /* the peer's FIN arrived; the owner has not closed yet */

/*
 * Polls the kernel's view of IPv4 TCP sockets (/proc/net/tcp) until one from local_port to
 * remote_port on loopback (a port 0 matches any) is in `state` (H_TCP_*; 0: any) with at least
 * `rx_min` bytes waiting to be read (true), or timeout_ms passed (false). It sees other processes'
 * sockets: what has reached crossfade's side of a connection, even while crossfade is stopped.
 */
bool h_tcp_wait(int local_port, int remote_port, int state, unsigned long rx_min, int timeout_ms);

/* --- xf-upstream --- */

struct h_upstream_opts {
    unsigned delay_ms;      /* --delay */
    double error_rate;      /* --error-rate, 0: not given */
    double close_rate;      /* --close-rate, 0: not given */
    uint64_t body_bytes;    /* --body-bytes, 0: not given */
    unsigned idle_close_ms; /* --idle-close, 0: not given */
    int port;               /* listen on this port (no retry when it is taken); 0: a free one */
};

struct h_upstream {
    struct h_proc *proc;
    int port;
    char name[32];
    char addr[32];           /* "127.0.0.1:PORT" as it appears in the config and the access log */
    struct h_conn *counters; /* the harness's connection for /_counters, opened on first use */
};

/* Starts bin/xf-upstream on a free loopback port and waits until it accepts; opts may be NULL. */
struct h_upstream *h_upstream_start(const char *name, const struct h_upstream_opts *opts);
/* kill -9: the upstream dies at once (its connections are reset) and is reaped. */
void h_upstream_kill(struct h_upstream *u);
/*
 * xf-upstream's own counts (its /_counters): the connections it accepted (the harness's one for
 * this question included) and the requests it received whole, /_counters not counted. Asserts
 * that it answers.
 */
void h_upstream_counters(struct h_upstream *u, uint64_t *connections, uint64_t *requests);
/* Waits until u has received at least n requests (true), or timeout_ms passed (false). */
bool h_upstream_wait_requests(struct h_upstream *u, uint64_t n, int timeout_ms);

/* --- crossfade --- */

struct h_node {
    int port;        /* 127.0.0.1:port; 0 ends the list */
    unsigned weight; /* 0: not written (the default weight, 1) */
    /* More keys of the node's mapping ("max_connections: 1, max_pending: 1"); NULL: none. */
    const char *extra;
    /* The host of the address instead of 127.0.0.1: a name for h_proxy_opts.fake_dns; NULL:
     * 127.0.0.1. */
    const char *host;
};

/* Anything left 0 takes the harness default (the values of the config example in the brief, with
 * shutdown: 5s). */
struct h_proxy_opts {
    struct h_node x[H_MAX_NODES]; /* cluster x: at least one node */
    struct h_node y[H_MAX_NODES]; /* cluster y: none given -> one port where nothing listens */
    unsigned connect_ms, client_header_ms, client_idle_ms;
    unsigned upstream_response_ms, upstream_idle_ms, shutdown_ms;
    unsigned max_connections, max_request_line_bytes, max_header_bytes, max_headers;
    uint64_t max_body_bytes;
    const char *log_level;   /* default "info" */
    bool small_quarantine;   /* under ASan: a small quarantine, so RSS reflects live memory */
    const char *weight;      /* split.weight as written; default "0" */
    const char *split_extra; /* more lines under split:, each indented two spaces */
    const char *balance_x, *balance_y; /* clusters.NAME.balance; default hash */
    int admin_api_port;                /* when set: a second listener there, role admin_api */
    int admin_http_port;               /* when set: admin.http, on 127.0.0.1 there */
    const char *extra_yaml;            /* top-level lines appended at the end of the config */
    const char *x_extra, *y_extra; /* more lines under clusters.x / clusters.y, each indented four
                                      spaces ("    failover: true\n") */
    unsigned queue_ms;             /* timeouts.queue; 0: not written */
    unsigned tunnel_idle_ms;       /* timeouts.tunnel_idle; 0: not written */
    unsigned client_request_ms;    /* timeouts.client_request; 0: not written (off) */
    unsigned max_requests_per_connection; /* limits.max_requests_per_connection; 0: not written */
    /* limits.request_buffer_bytes as written ("0", "1024"); NULL: not written (the default). */
    const char *request_buffer;
    /* More keys of the admin_api listener's mapping ("node_port: 9001"); NULL: none. Needs
     * admin_api_port. */
    const char *admin_api_extra;
    /* RLIMIT_NOFILE (soft and hard) of the crossfade process, set in the child before exec;
     * 0: inherited from the test. */
    unsigned nofile;
    /* When set, crossfade runs with the tests' getaddrinfo (LD_PRELOAD of $XF_FAKE_DNS_LIB,
     * tests/integration/shim/fake_dns.c), which looks host names up in this file (XF_FAKE_DNS). */
    const char *fake_dns;
    /* When set: crossfade's NOTIFY_SOCKET (systemd's readiness notification goes there). */
    const char *notify_socket;
    /* The crossfade binary to run; NULL: h_bin("crossfade"). */
    const char *binary;
    /* Several crossfade processes in one test: each names its files (NAME.yaml, NAME.sock,
     * NAME.log, NAME-access.log) and its process; NULL: crossfade.yaml, admin.sock, ... */
    const char *name;
};

struct h_proxy {
    struct h_proc *proc;
    int port;
    const char *cfg_path;
    const char *access_log; /* path of the access log */
    const char *admin_socket;
    unsigned shutdown_ms;
};

/* Writes the YAML config for `o` (with listen port `port`) to `file` in the scratch directory. */
const char *h_proxy_write_config(const char *file, const struct h_proxy_opts *o, int port);
/* Starts bin/crossfade on a free port and waits until the port accepts. */
struct h_proxy *h_proxy_start(const struct h_proxy_opts *o);
/* Waits (at most 15 s) until `show version` no longer says "status starting": crossfade accepts
 * once its first health checks gave their verdicts. h_proxy_start does it. */
void h_proxy_wait_serving(const struct h_proxy *p);
/* SIGTERM, then the exit code (-1: still running after shutdown + 5 s, then killed). */
int h_proxy_stop(struct h_proxy *p);
/* Ends a test that started crossfade: closes the test's connections to its port (h_connect), as a
 * client done with them does, then SIGTERM, and asserts that it exits 0 (under ASan a leak makes
 * it exit non-zero). Left open, each would hold the stop for its drain: a second for an idle
 * keep-alive connection, PX_LINGER_MS for a refused client. */
void h_proxy_finish(struct h_proxy *p);
/* h_proxy_finish with the test's connections left as they are: for a test of what a stop does to
 * them (tested where it is the point, so that other tests need not wait for it). */
void h_proxy_finish_open(struct h_proxy *p);

/* --- HTTP messages --- */

struct h_header {
    const char *name;
    const char *value; /* optional whitespace trimmed */
};

struct h_msg {
    int version_major, version_minor;
    int status;         /* responses */
    const char *method; /* requests (h_parse_request_head) */
    const char *target; /* requests */
    struct h_header *headers;
    size_t n_headers;
    const char *head; /* the raw head, start line to the empty line included */
    size_t head_len;
    char *body; /* the body as received (de-chunked), NUL-terminated */
    size_t body_len;
    bool chunked;         /* the body came chunked */
    bool close_delimited; /* the body was delimited by the server closing */
    char error[200];      /* why the last call on this message failed */
};

/* The value of the first header `name` (any case), or NULL. */
const char *h_header(const struct h_msg *m, const char *name);
/* How many headers are called `name`. */
size_t h_header_count(const struct h_msg *m, const char *name);
/* Whether the comma-separated header `name` holds `token` (any case), in any of its lines. */
bool h_header_has_token(const struct h_msg *m, const char *name, const char *token);
/* Parses a request head ("GET / HTTP/1.1\r\n...\r\n\r\n"); returns 0, or -1 with m->error. The body
 * fields get the bytes after the head. */
int h_parse_request_head(const char *data, size_t len, struct h_msg *m);

/* --- a raw client connection --- */

struct h_conn {
    int fd;    /* -1 once closed */
    int port;  /* the port it connected to (0: unknown) */
    char *buf; /* received bytes not yet consumed: buf[off..len) */
    size_t off, len, cap;
    struct h_conn *next; /* the harness's list, closed at teardown */
};

enum h_wait {
    H_OPEN = 0, /* nothing happened within the time */
    H_DATA,     /* bytes arrived (kept in the buffer) */
    H_CLOSED,   /* the peer closed (EOF or reset) with no byte pending */
};

/* Connects to 127.0.0.1:port (asserts that it works). */
struct h_conn *h_connect(int port);
void h_close(struct h_conn *c);
/* Closes with SO_LINGER 0: the peer gets a reset. */
void h_abort(struct h_conn *c);
/* Sends every byte (each wait for buffer space bounded by H_IO_TIMEOUT_MS): 0, or -1 (errno). */
int h_send(struct h_conn *c, const void *data, size_t len);
int h_send_str(struct h_conn *c, const char *s);
int h_sendf(struct h_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sends in pieces of `piece` bytes with `pause_ms` between them. */
int h_send_pieces(struct h_conn *c, const void *data, size_t len, size_t piece, unsigned pause_ms);
/* Waits up to timeout_ms for bytes or for the peer to close. */
enum h_wait h_conn_wait(struct h_conn *c, int timeout_ms);
/* Bytes received and not consumed yet. */
size_t h_pending(const struct h_conn *c);
/* The local port of the connection: with crossfade's port, it names crossfade's side of it for
 * h_tcp_wait. */
int h_conn_port(const struct h_conn *c);

/* Called with each piece of a body as it arrives; return 0 to go on, -1 to stop with an error. */
typedef int (*h_sink_fn)(void *ctx, const char *data, size_t len);

#define H_NO_BODY 1u /* the response to a HEAD request: no body whatever the headers say */

/*
 * Reads one response: head, then body by the HTTP/1.1 rules (no body for HEAD, 1xx, 204, 304;
 * chunked; Content-Length; else until close). Returns 0, or -1 with m->error (timeout: no byte for
 * timeout_ms; closed early; malformed). A 1xx response is returned alone: call again for the next.
 * With a sink the body is handed over in pieces and not kept (m->body_len still counts it).
 */
int h_read_response_ex(struct h_conn *c, struct h_msg *m, unsigned flags, int timeout_ms,
                       h_sink_fn sink, void *ctx);
int h_read_response(struct h_conn *c, struct h_msg *m);
/* Reads only the head; h_read_body then reads the body the head announced. */
int h_read_head(struct h_conn *c, struct h_msg *m, int timeout_ms);
int h_read_body(struct h_conn *c, struct h_msg *m, unsigned flags, int timeout_ms, h_sink_fn sink,
                void *ctx);
/* Reads everything until the peer closes; NUL-terminated, harness-owned. -1 on timeout. */
int h_read_until_close(struct h_conn *c, char **out, size_t *len, int timeout_ms);

/* Sends "GET target HTTP/1.1" with Host: H_HOST and reads the response. */
int h_get(struct h_conn *c, const char *target, struct h_msg *m);
/* GET / on c with X-Key: key (none when NULL), for split.key header:X-Key; asserts a 200 and
 * returns the X-Upstream of the node that answered (harness-owned). */
const char *h_served_by(struct h_conn *c, const char *key);

/* --- a fake upstream: a thread of the test process that records every byte it receives --- */

enum h_fake_action {
    H_FAKE_KEEP = 0,  /* answer each request with the reply, keep the connection open */
    H_FAKE_CLOSE,     /* answer the first request with the reply, then close */
    H_FAKE_SILENT,    /* never answer, never close */
    H_FAKE_CLOSE_NOW, /* close once the first request has arrived, answering nothing */
    /* Answer the first request (keep-alive), then close once a second one has arrived, answering
     * nothing: a node that closed a pooled connection just as the next request went out. */
    H_FAKE_CLOSE_SECOND,
};
/* "Close" sends a FIN (shutdown of the fake's side) and goes on reading, so what the proxy sends
 * or whether it closes afterwards is still recorded. */

struct h_fake_reply {
    const char *bytes; /* sent as is (strlen when len is 0) */
    size_t len;
    enum h_fake_action action;
};

struct h_fake; /* owned by the harness, stopped at teardown */

/*
 * Listens on a free loopback port. The n-th connection accepted is answered by replies[n], or by
 * the last reply once past the end. A request is a head plus the Content-Length bytes it announces
 * (the fake does not understand chunked request bodies).
 */
struct h_fake *h_fake_start(const struct h_fake_reply *replies, size_t n_replies);
/* One reply for every connection. */
struct h_fake *h_fake_start1(const char *reply, enum h_fake_action action);
int h_fake_port(const struct h_fake *f);
size_t h_fake_conns(struct h_fake *f);              /* connections accepted so far */
size_t h_fake_bytes(struct h_fake *f);              /* bytes received on all of them */
size_t h_fake_requests(struct h_fake *f, size_t i); /* requests received on connection i */
size_t h_fake_requests_all(struct h_fake *f);       /* requests received on all connections */
/* A copy of every byte received on connection i (NUL-terminated, harness-owned). */
char *h_fake_received(struct h_fake *f, size_t i, size_t *len);
/* Whether the proxy closed connection i (the fake read EOF or a reset on it). */
bool h_fake_peer_closed(struct h_fake *f, size_t i);
/* Waits until `n` requests have arrived in all (true), or timeout_ms passed (false). */
bool h_fake_wait_requests(struct h_fake *f, size_t n, int timeout_ms);
/* Waits until the proxy closed connection i. */
bool h_fake_wait_peer_closed(struct h_fake *f, size_t i, int timeout_ms);

/*
 * Sentinels end negative checks ("nothing of that request reached the node"): a sleep before such
 * a check proves nothing, a sentinel does. crossfade decides what a request causes at the nodes
 * before it answers it, and it runs one event loop; so once a later request -- the sentinel --
 * has reached a node, whatever an earlier request made crossfade send to it has arrived too. The
 * fake reads every connection that is ready in one round, and the counts below are taken between
 * rounds, so bytes sent on another connection before the sentinel are never missed.
 */
#define H_SENTINEL_LINE "GET /h-sentinel HTTP/1.1\r\n" /* how a sentinel starts */
/* Sends a sentinel through crossfade on `port` on a new connection (`headers`: more header lines
 * that route it, "X-Key: k\r\n", or NULL), reads its response and closes; returns its status. */
int h_send_sentinel(int port, const char *headers);
/* Requests f received that are sentinels, and that are not (as of the fake's last round). */
size_t h_fake_sentinels(struct h_fake *f);
size_t h_fake_non_sentinels(struct h_fake *f);
/* Waits until f has received at least n sentinels (true), or timeout_ms passed (false). */
bool h_fake_wait_sentinels(struct h_fake *f, size_t n, int timeout_ms);
/*
 * Sends a sentinel to f through crossfade on `port` (h_send_sentinel; f must answer it), waits
 * until f has it, then asserts that f received the test's sentinels and nothing else: no other
 * request, no stray byte.
 */
void h_fake_expect_only_sentinels(struct h_fake *f, int port, const char *headers);

/* --- the admin socket --- */

/* Connects to p's admin socket, retrying while crossfade creates it; closed at teardown. */
int h_admin_connect(const struct h_proxy *p);
/* Sends one command line and returns its reply without the closing empty line (each line ends
 * with LF; harness-owned memory). */
char *h_admin_cmd(int fd, const char *line);
/* h_admin_cmd in two halves, for a command whose reply comes later: sends the line, ... */
void h_admin_send(int fd, const char *line);
/* ... then reads the reply (as h_admin_cmd returns it) within timeout_ms. */
char *h_admin_reply(int fd, int timeout_ms);

/* The words of a `show nodes` line: cluster address weight state active idle check ejections. */
#define H_NODE_STATE     3
#define H_NODE_IDLE      5 /* pooled connections waiting for a request */
#define H_NODE_CHECK     6
#define H_NODE_EJECTIONS 7

/* The line of `show nodes` for CLUSTER ADDRESS without its LF (harness-owned), or NULL. */
const char *h_admin_node_line(int fd, const char *cluster, const char *addr);
/* Word i (from 0) of a line of words separated by spaces (harness-owned); "" past the end or when
 * line is NULL. */
const char *h_word(const char *line, unsigned i);
/* Polls `show nodes` every 50 ms until word `word` of the node's line is `value` (true), or
 * timeout_ms passed (false). */
bool h_admin_wait_node(int fd, const char *cluster, const char *addr, unsigned word,
                       const char *value, int timeout_ms);
/*
 * A counter of `show stats`: the line that starts with `prefix` and a space ("y failovers",
 * "x queue"); with name NULL the number that follows the prefix, else the number after `name=` in
 * that line ("y health" "down" reads "y health down=1 up=0 ejected=0"). -1 when it is not there.
 */
long long h_admin_stat(int fd, const char *prefix, const char *name);
/*
 * A number of `show stats json`, in the object of `cluster` ("x" or "y"): the value of `key`, or
 * with `object` not NULL the value of `key` in that inner object ("queue", "timeouts"). -1 when it
 * is not there.
 */
long long h_admin_stat_json(int fd, const char *cluster, const char *object, const char *key);
/* Polls `show stats` every 10 ms until the counter (h_admin_stat) is `want` (true), or timeout_ms
 * passed (false). */
bool h_admin_wait_stat(int fd, const char *prefix, const char *name, long long want,
                       int timeout_ms);
/* Waits (at most H_IO_TIMEOUT_MS) until the counter is `want`; fails the test, showing them all,
 * when it does not come. */
void h_await_stat(int fd, const char *prefix, const char *name, long long want);
/* Asserts a counter of show stats (h_admin_stat; -1 when absent), showing them all when not. */
void h_assert_stat(int fd, const char *prefix, const char *name, long long want);
/* Asserts a number of show stats json (h_admin_stat_json), showing the object when not. */
void h_assert_stat_json(int fd, const char *cluster, const char *object, const char *key,
                        long long want);
/*
 * The nth (from 0) split-key value "k0", "k1", ... that `which KIND=VALUE` sends to node ADDR
 * (kind as in split.key: "header:X-Key"), by its hash; NULL when none of the first 2000 does.
 */
const char *h_admin_key_for_node(int fd, const char *kind, const char *addr, unsigned nth);

/*
 * Two round trips on the admin socket, which is served by crossfade's event loop: when it
 * returns, crossfade has handled every event that was ready before the call (a FIN that
 * h_tcp_wait saw arrive, for instance).
 */
void h_admin_sync(int fd);

/* --- logs --- */

/* Waits until the file holds `needle` (true), or timeout_ms passed (false). */
bool h_log_wait(const char *path, const char *needle, int timeout_ms);
/* How many lines of the file hold `needle` (0 when the file cannot be read). */
size_t h_log_count(const char *path, const char *needle);
/* The first line of the file that holds `needle`, without its LF (harness-owned), or NULL. */
const char *h_log_line(const char *path, const char *needle);

/* Whether crossfade runs under a sanitizer, whose allocator makes RSS figures loose: this test
 * program is built with the same flags (build/san/), or XF_BIN names a sanitizer build. */
bool h_under_sanitizer(void);

#endif
