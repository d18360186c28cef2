/* admin/adm.h -- the admin socket: a line protocol over a Unix stream socket, and its commands. */
#ifndef ADM_H
#define ADM_H

#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "balancer/bal.h"
#include "common/xf.h"
#include "common/xf_stats.h"
#include "config/cfg.h"

/*
 * The protocol (docs/admin.md): one command per line (LF or CRLF); each reply is one or more
 * non-empty lines followed by an empty line; a failed command's reply starts with "error: ".
 * Blank lines are ignored and get no reply.
 */
#define ADM_LINE_MAX         4096 /* bytes of a command line, its CR LF not counted */
#define ADM_MAX_ARGS         16   /* words of a command line */
#define ADM_EVENTS_MAX       256  /* the audit trail keeps the latest this many changes */
#define ADM_MAX_CLIENTS      64   /* admin connections at once; more are answered and closed */
#define ADM_LINES_PER_WAKE   32   /* commands run per client per read callback (fairness) */
#define ADM_IN_HIGH          (64u * 1024)  /* stop reading a client with this much input pending */
#define ADM_OUT_HIGH         (64u * 1024)  /* stop running its commands with this much output... */
#define ADM_OUT_LOW          (16u * 1024)  /* ...until it drained to this */
#define ADM_OUT_MAX          (256u * 1024) /* a client with more output waiting is dropped */
#define ADM_WRITE_TIMEOUT_MS 10000  /* a client that reads nothing for this long is dropped */
#define ADM_IDLE_TIMEOUT_MS  600000 /* a client that sends nothing for this long is closed */
#define ADM_EVICT_IDLE_MS                                                                          \
    2000 /* at ADM_MAX_CLIENTS, a new connection closes the client idle                            \
            the longest, if for at least this long: rollback always gets                           \
            through */

/* ------------------------------------------------------------------ the server */

struct adm_server;
struct adm_monitor;
struct adm_state;

/*
 * Listens on cfg->admin_socket: creates the parent directory when missing (mode 0700), removes a
 * stale socket file (only a socket nobody answers on), binds with mode 0600 and serves admin
 * clients on `base`. base, cfg and router are borrowed and must outlive the server. Reads
 * cfg->state_file first (when set) and publishes what it holds (weight, pins, freeze; a ramp
 * resumes its schedule on `base`): a missing file starts from the config, an unusable one is
 * logged and left in place, and the config is used. Returns an owned server, or NULL with err
 * naming the path and the reason (another crossfade answering on the socket is one).
 */
struct adm_server *adm_server_new(struct event_base *base, const struct cfg *cfg,
                                  struct bal_router *router, struct xf_err *err);
/* The traffic counters `show stats` reads: fn(arg, out) adds every worker's to *out (zeroed by
 * the caller). Without it (the default) `show stats` answers that no counters are available. */
typedef void (*adm_stats_fn)(void *arg, struct xf_stats *out);
void adm_server_set_stats(struct adm_server *s, adm_stats_fn fn, void *arg);
/* What the guard, `preview weight`, latency_1m and the HTTP listener read (copied). */
void adm_server_set_monitor(struct adm_server *s, const struct adm_monitor *m);
/*
 * The router version every worker routes with now (fn(arg)): a reply to a command that published
 * a snapshot is held until each worker has taken it, so that once `ok:` arrives no request on any
 * connection is routed by the old one. Without it (one loop) nothing waits.
 */
void adm_server_set_applied(struct adm_server *s, uint64_t (*fn)(void *arg), void *arg);
/* The workers took a snapshot: replies held for it may go. */
void adm_server_applied(struct adm_server *s);
/*
 * What `show nodes` reads of the proxy per node id: requests in flight and idle pooled
 * connections. fn returns 0, or -1 when it knows nothing of the id; arg is borrowed and passed
 * back. Without it (the default) `show nodes` prints "-" for both.
 */
typedef int (*adm_node_info_fn)(void *arg, uint32_t id, unsigned *active, unsigned *idle,
                                unsigned *tunnels);
void adm_server_set_node_info(struct adm_server *s, adm_node_info_fn fn, void *arg);
/* What `add node` asks before it gives a node the id of one removed earlier: whether the proxy
 * still holds state under it (bal_id_busy_fn). Without it (the default) every free id is taken. */
void adm_server_set_id_busy(struct adm_server *s, bal_id_busy_fn fn, void *arg);
/* What the health checks know of a node, for `show nodes` and the capacity check. */
struct adm_node_health {
    /* The last active check's result as one word: "-" when none ran or the cluster has no checks;
     * "ok:200", "fail:503", "fail:timeout", "fail:refused", "fail:reset", "fail:invalid". */
    char check[24];
    unsigned ejections; /* how many times passive detection ejected it */
    /* Why the node takes no traffic, or a part of its weight only, for people: "pending first
     * checks: 1 of 2 passed, last fail:503", "ejected until 14:03:12Z (5 failures in a row)",
     * "slow start: 35% of its weight, all of it at 14:05:00Z"; "" when there is nothing to say. */
    char note[160];
};
/* Fills *out for node id; returns 0, or -1 for an id it does not know. */
typedef int (*adm_health_info_fn)(void *arg, uint32_t id, struct adm_node_health *out);
void adm_server_set_health_info(struct adm_server *s, adm_health_info_fn fn, void *arg);
/*
 * Tells the watchers (`watch`) of a change the admin did not make: a node's health ("node
 * y/10.0.1.1:8000", "up", "down (3 checks failed, last fail:503)"). Not kept in the audit trail.
 * arg is the adm_server (px_health_event_fn).
 */
void adm_server_node_event(void *arg, const char *what, const char *from, const char *to);
/* The resolver `add node` hands host names to (borrowed), so that a slow DNS never stalls the
 * event loop; without one they are resolved at once. */
void adm_server_set_resolver(struct adm_server *s, struct cfg_resolver *r);
/* What `show version` says of the proxy: fn(arg) returns "starting" (the first health checks are
 * not done: connections wait), "serving" or "stopping". Without it the line is left out. */
void adm_server_set_status(struct adm_server *s, const char *(*fn)(void *arg), void *arg);
/* How many worker threads carry the traffic, for show version (0, the default: not shown). */
void adm_server_set_workers(struct adm_server *s, unsigned n);
/* Calls fn(arg) after every snapshot an admin command publishes (the proxy takes it at once, so
 * a drained node's idle connections close and requests waiting for it move). */
void adm_server_set_published(struct adm_server *s, void (*fn)(void *arg), void *arg);
/* The listening sockets a binary upgrade hands over: fills fds (at most cap) and returns how many
 * there are (more than cap: call again with room). */
typedef size_t (*adm_listen_fds_fn)(void *arg, int *fds, size_t cap);

/* How the proxy tells `reload` its outcome: once, ok or not, with the reply's text ("listeners
 * +1 -0; x nodes ..." or why it failed). */
typedef void (*adm_reload_done_fn)(void *job, bool ok, const char *text);
/* What `reload` runs: fn(arg, done, job) reloads the configuration and calls done(job, ...) once,
 * maybe before it returns. Without it (the default) `reload` answers that it is not available. */
typedef void (*adm_reload_fn)(void *arg, adm_reload_done_fn done, void *job);
void adm_server_set_reload(struct adm_server *s, adm_reload_fn fn, void *arg);
/* What `reexec` runs (a binary upgrade the proxy starts itself): fn(arg, done, job) starts the
 * new process and calls done(job, ...) once -- before it returns when it cannot start it, else
 * when the new process took over or failed. Without it `reexec` is not available. */
void adm_server_set_reexec(struct adm_server *s, adm_reload_fn fn, void *arg);
/* `show tls` writes its lines through line(ctx, text), one per certificate. */
typedef void (*adm_line_fn)(void *ctx, const char *text);
typedef void (*adm_tls_show_fn)(void *arg, adm_line_fn line, void *ctx);
/* What `tls reload` runs (re-reads the certificate files the configuration in force names; done
 * as for reload) and what `show tls` lists. Without them both answer that TLS is not there. */
void adm_server_set_tls(struct adm_server *s, adm_reload_fn reload, adm_tls_show_fn show,
                        void *arg);
/* The pid of the process a handover of the state went to, which has not taken over yet; 0 when
 * no takeover is under way. */
long adm_server_handover_pid(const struct adm_server *s);
/*
 * A reload put `cfg` in force (borrowed: the caller holds it until the next reload or
 * adm_server_free): `next` (from bal_snapshot_reload; taken) is published, commands and the
 * state file read cfg from now on, the audit trail records the reload with `text` (what changed)
 * in the name of the `reload` command that asked, or of SIGHUP, and the state goes to the state
 * file's writer. In fleet mode a note on split.seed may be appended to `text` (a buffer of
 * `size` bytes: the reply's text).
 */
void adm_server_reload(struct adm_server *s, const struct cfg *cfg, struct bal_snapshot *next,
                       char *text, size_t size);
/* crossfade begins to stop (its drain): in fleet mode this instance leaves the members at once
 * (its lease revoked, so its member key goes), while the loop still runs to send it; fn(arg) is
 * called once etcd answered it (or the request failed). */
void adm_server_stopping(struct adm_server *s, void (*fn)(void *arg), void *arg);
/* Whether the revoke adm_server_stopping sent still waits for etcd's answer. */
bool adm_server_leaving(const struct adm_server *s);
/*
 * Binary upgrade, the old process's side: `takeover` sends fn's listening sockets (SCM_RIGHTS) and
 * the state to the admin client that asks (crossfade --takeover), after which state changes are
 * refused until it says `takeover done` -- then handed_over(arg) stops this process -- or goes
 * away, or ADM_TAKEOVER_DEADLINE_MS pass: then this process goes on as before.
 */
#define ADM_TAKEOVER_DEADLINE_MS 60000
void adm_server_set_takeover(struct adm_server *s, adm_listen_fds_fn fn,
                             void (*handed_over)(void *arg, long new_pid), void *arg);
/* The secret a takeover also hands over (the TLS ticket secret, so that the new process resumes
 * the sessions of the old one): fn fills out (at most cap bytes) and returns its length, 0 for
 * none. Without it none is sent. */
#define ADM_TAKEOVER_SECRET_MAX 64
void adm_server_set_takeover_secret(struct adm_server *s,
                                    size_t (*fn)(void *arg, unsigned char *out, size_t cap),
                                    void *arg);

/* The new process's side (a blocking client, run before the event loops start). */
struct adm_takeover {
    int fd;       /* the admin connection to the old process */
    long old_pid; /* the old process */
    int *fds;     /* owned: the listening sockets received */
    size_t n_fds;
    char *state; /* owned: the state, as the state file would hold it */
    size_t state_len;
    unsigned char secret[ADM_TAKEOVER_SECRET_MAX]; /* the old one's secret; wiped at free */
    size_t secret_len;                             /* 0: it sent none (an older crossfade) */
};
/* Connects to the admin socket at `path` and asks for the sockets and the state. Returns an owned
 * takeover, or NULL with err (no crossfade answering, a refusal, a broken reply). */
struct adm_takeover *adm_takeover_begin(const char *path, struct xf_err *err);
/* Tells the old process to stop accepting and finish (`takeover done`): 0, or -1 with err. */
int adm_takeover_done(struct adm_takeover *t, struct xf_err *err);
/* Closes the connection and the sockets nobody took (fds set to -1 were taken). */
void adm_takeover_free(struct adm_takeover *t);
/*
 * adm_server_new for a process taking over from `t`: the state comes from t (applied whatever the
 * configuration's layout; node changes that no longer fit are skipped), and the socket is bound at
 * admin.socket + ".takeover" until adm_server_claim renames it over the old process's.
 */
struct adm_server *adm_server_new_takeover(struct event_base *base, const struct cfg *cfg,
                                           struct bal_router *router, const struct adm_takeover *t,
                                           struct xf_err *err);
/* Moves the socket to admin.socket (atomically replacing the old process's). 0, or -1 with err. */
int adm_server_claim(struct adm_server *s, struct xf_err *err);

/* Closes every admin client and the listener, and removes the socket file if it is still ours.
 * NULL is a no-op. Call before the event base is freed. */
void adm_server_free(struct adm_server *s);

/* ------------------------------------------------------------------ line framing (pure) */

struct adm_framer {
    bool skipping; /* inside a line that was too long: drop bytes up to its LF */
};

enum adm_frame {
    ADM_FRAME_MORE = 0, /* no complete line: drop *consumed (may be 0), then wait for more bytes */
    ADM_FRAME_LINE,     /* data[0, *line_len) is a line without its CR LF; drop *consumed */
    ADM_FRAME_TOO_LONG, /* a line longer than ADM_LINE_MAX: answer it once; drop *consumed */
};

/* Bytes adm_frame_next needs to see at once to decide on a line: the longest line and CR LF. */
#define ADM_FRAME_WINDOW (ADM_LINE_MAX + 2)

/*
 * Finds the next line at the start of the pending input data[0, len). Looks at no more than
 * ADM_FRAME_WINDOW bytes. With `eof` (the peer sent its last byte) a last line without LF counts
 * as a line. The rest of a too-long line is skipped (fr->skipping) through ADM_FRAME_MORE
 * results that consume bytes; call again while *consumed > 0 or a line came out.
 */
enum adm_frame adm_frame_next(struct adm_framer *fr, const char *data, size_t len, bool eof,
                              size_t *line_len, size_t *consumed);

/* ------------------------------------------------------------------ command lines (pure) */

struct adm_span {
    const char *ptr; /* borrowed */
    size_t len;
};

/* A command line split into words; every span points into the line (borrowed). */
struct adm_args {
    struct adm_span v[ADM_MAX_ARGS];
    size_t n;
    struct adm_span line;
};

/* The index of the first byte of the line that is a control byte (below 0x20 but tab, or 0x7f),
 * or -1 when the line is text. Bytes from 0x80 up pass (UTF-8 in key values). */
long adm_line_bad_byte(const char *line, size_t len);
/* Splits a line into words separated by spaces and tabs. Returns 0, or -1 when it has more than
 * ADM_MAX_ARGS words. */
int adm_args_split(const char *line, size_t len, struct adm_args *a);
/* The rest of the line from word i on, as typed (inner blanks kept); empty when i >= a->n. */
struct adm_span adm_args_rest(const struct adm_args *a, size_t i);
/* Whether a span equals a NUL-terminated word (case-insensitive for ASCII). */
bool adm_span_is(struct adm_span s, const char *word);

/* "100.00" and its NUL. */
#define ADM_WEIGHT_TEXT 8

/*
 * Parses a weight in percent: digits, optionally a dot and one or two digits, from 0 to 100
 * ("25", "12.5", "0.01", "100.00"). Nothing else: no sign, no blank, no exponent. Returns 0 with
 * *bp in hundredths (0..10000), or -1.
 */
int adm_weight_parse(const char *s, size_t len, unsigned *bp);
/* Writes hundredths as "25.00" into buf (ADM_WEIGHT_TEXT bytes) and returns buf. */
const char *adm_weight_text(unsigned bp, char *buf);

/* Writes the len bytes of `s` into buf (size bytes, NUL-terminated) with \" \\ and \xNN
 * escapes, as many as fit whole (an escape is never cut); returns how many bytes of s it took. */
size_t adm_escape(const char *s, size_t len, char *buf, size_t size);
/* Writes `s` in double quotes into buf with \" \\ and \xNN escapes, cut after 64 bytes of
 * input with "..." so a hostile line stays short in a reply or a log. Returns buf. */
#define ADM_QUOTE_TEXT 300
const char *adm_quote(const char *s, size_t len, char *buf, size_t size);

/* A split key as `which` takes it: KIND:NAME=VALUE, ip=ADDR, basic_user=USER, or a bare VALUE. */
struct adm_key {
    bool bare;              /* a bare value: no kind given */
    enum cfg_key_kind kind; /* when !bare */
    struct adm_span name;   /* header, cookie, query or jwt_sub name; empty for ip and basic_user */
    struct adm_span value;  /* the key's value (the bytes that are hashed; ip: as typed) */
};

/* Parses a key; returns 0, or -1 with err saying what is wrong. Spans point into s. */
int adm_key_parse(const char *s, size_t len, struct adm_key *out, struct xf_err *err);
/*
 * The bytes the balancer hashes for a parsed key: the value, or for ip= the address in the form
 * the balancer writes it (written into buf, BAL_ADDR_TEXT bytes). Returns 0, or -1 with err when
 * an ip= value is not an address.
 */
int adm_key_bytes(const struct adm_key *k, char *buf, const char **key, size_t *len,
                  struct xf_err *err);

/* Parses a duration ("500ms", "30s", "10m", "1h30m"; a bare number is seconds) into ms; returns
 * 0, or -1 with err saying what is allowed. */
int adm_duration_parse(const char *s, size_t len, unsigned *ms, struct xf_err *err);
/* A duration in the config's notation ("250ms", "3s", "1m30s") into buf; returns buf. */
const char *adm_duration_text(uint64_t ms, char *buf, size_t size);
/* A time left or gone, rounded for people: "0.8s", "9.5s", then whole seconds ("59s", "9m59s",
 * "1h2m3s"). Returns buf. */
const char *adm_duration_about(uint64_t ms, char *buf, size_t size);
/* `s` with \" and \\ escaped into buf (cut to fit), for a quoted value in a log line. */
const char *adm_log_text(const char *s, char *buf, size_t size);
/* A wall-clock time as "2026-11-30T04:06:33Z" into buf (at least 32 bytes); returns buf. */
const char *adm_time_text(time_t t, char *buf, size_t size);
/* "header", "cookie", "query", "ip", "jwt_sub", "basic_user" or "random". */
const char *adm_key_kind_name(enum cfg_key_kind kind);

/* ------------------------------------------------------------------ the audit trail */

#define ADM_EVENT_VALUE 256 /* an event's old and new values, cut to fit */

struct adm_event {
    uint64_t seq;     /* 1 for the first event recorded (the count goes on across restarts with a
                         state file); 0 for one that is only told to watchers (health) */
    int64_t time_ms;  /* wall clock, ms since 1970 */
    long uid, pid;    /* of the admin peer; -1 for crossfade itself */
    char command[96]; /* the command line, escaped, cut */
    char what[160];   /* what changed: "weight", "ramp", "node y/10.0.1.1:8000", "freeze" */
    char old_value[ADM_EVENT_VALUE], new_value[ADM_EVENT_VALUE];
};

/* Called with each event as it is recorded (the admin socket's watchers); arg is borrowed. */
typedef void (*adm_event_fn)(void *arg, const struct adm_event *e);

/* A ring of the latest ADM_EVENTS_MAX events; zero-initialised is empty. */
struct adm_events {
    struct adm_event ring[ADM_EVENTS_MAX];
    size_t next; /* the slot the next event goes to */
    size_t n;    /* events held */
    uint64_t seq;
    adm_event_fn notify; /* may be NULL */
    void *notify_arg;
};

/* Records one change; strings are copied (cut to their field). Tells ev->notify. */
void adm_events_add(struct adm_events *ev, long uid, long pid, const char *command,
                    const char *what, const char *old_value, const char *new_value);
/* Puts back an event recorded before a restart (the state file), with its number and time. */
void adm_events_restore(struct adm_events *ev, const struct adm_event *e);
/* The i-th event held, oldest first; NULL when i >= ev->n. */
const struct adm_event *adm_events_get(const struct adm_events *ev, size_t i);
/*
 * One event as a line without LF: "#SEQ TIME uid=U pid=P "COMMAND" WHAT OLD -> NEW"; TIME with
 * milliseconds when `ms` (the watch stream) else whole seconds (show events); SEQ "-" for an event
 * not recorded; U and P "-" for crossfade itself. Returns buf.
 */
#define ADM_EVENT_LINE 1024
const char *adm_event_line(const struct adm_event *e, bool ms, char *buf, size_t size);

/* ------------------------------------------------------------------ ramps (pure) */

/*
 * A ramp moves the weight from `from_bp` to `to_bp` in n_steps even steps of step_bp (the last
 * one shorter when the distance is not a multiple), step k (1..n_steps) due at
 * start_ms + k * duration_ms / n_steps. Pausing shifts start_ms by the time spent paused, so the
 * steps left keep their pace. Times are on one clock: the monotonic one in memory, the wall
 * clock in the state file.
 */
#define ADM_RAMP_DEFAULT_STEP        100  /* hundredths: 1 percentage point... */
#define ADM_RAMP_DEFAULT_INTERVAL_MS 1000 /* ...larger when needed for steps >= 1 s apart */
#define ADM_RAMP_MIN_INTERVAL_MS     100  /* an explicit step may not come faster than this */

enum adm_ramp_state {
    ADM_RAMP_NONE = 0,
    ADM_RAMP_RUNNING,
    ADM_RAMP_PAUSED,
};

struct adm_ramp {
    enum adm_ramp_state state;
    unsigned from_bp, to_bp, step_bp; /* hundredths of a percent */
    unsigned n_steps;                 /* >= 1 */
    unsigned done;                    /* steps in force, 0..n_steps */
    uint64_t duration_ms;             /* > 0 */
    int64_t start_ms;                 /* see above */
    int64_t paused_ms;                /* when it was paused (ADM_RAMP_PAUSED only) */
    long uid, pid;                    /* who started it: its steps are recorded in their name */
    char command[96];                 /* the command that started it, escaped */
    bool force;                       /* started with "force": its steps skip the capacity check */
    bool capacity_paused;  /* ADM_RAMP_PAUSED by crossfade: a step was over y's capacity */
    bool guarded;          /* `guarded`: each step waits for the guard's pass over a whole window
                              after the step before */
    int64_t guard_held_ms; /* a due step the guard holds, since when; 0: none */
    int64_t last_step_ms;  /* when the last step was taken (its start for none) */
};

/*
 * Plans a ramp from `from_bp` to `to_bp` over `duration_ms` starting at `now_ms`, in steps of
 * `step_bp` (0: the default step). Returns 0 with *r running (uid, pid and command left empty),
 * or -1 with err: equal weights, a duration of 0, a step of 0 or over the distance, steps closer
 * than ADM_RAMP_MIN_INTERVAL_MS.
 */
int adm_ramp_plan(struct adm_ramp *r, unsigned from_bp, unsigned to_bp, unsigned step_bp,
                  uint64_t duration_ms, int64_t now_ms, struct xf_err *err);
/* What starts a ramp (`ramp`, or `set weight P at TIME`: one step at TIME). */
struct adm_ramp_args {
    unsigned to_bp, duration_ms, step_bp;
    bool force, guarded;
    bool at; /* set weight P at TIME: one step, due at the end of duration_ms */
};
struct adm_state;
struct adm_peer;
struct adm_args;
struct adm_reply;
/* Plans and starts a ramp for `peer` (refused while another runs), and writes the reply. */
enum adm_result adm_ramp_start(struct adm_state *st, const struct adm_peer *peer,
                               const struct adm_args *a, struct adm_reply *r,
                               const struct adm_ramp_args *ra);
/* "running to 20.00" or "paused to 20.00" (the audit trail's view of a ramp) in buf; returns it. */
const char *adm_ramp_text(const struct adm_ramp *r, char *buf, size_t size);
/* The weight once k steps are in force (k >= n_steps: to_bp). */
unsigned adm_ramp_weight_at(const struct adm_ramp *r, unsigned k);
/* When step k (1..n_steps) is due. */
int64_t adm_ramp_due(const struct adm_ramp *r, unsigned k);
/* How many steps are due at now_ms (never fewer than r->done). */
unsigned adm_ramp_steps_due(const struct adm_ramp *r, int64_t now_ms);
/* Moves every time of a ramp from one clock to another: now_from on the first is now_to on the
 * second. */
void adm_ramp_rebase(struct adm_ramp *r, int64_t now_from, int64_t now_to);

/* ------------------------------------------------------------------ the state file */

/* Version 2 adds the layout line and the audit trail; version 1 files (no layout, no events)
 * are still read, their layout unknown. */
#define ADM_STATE_VERSION 2
/* Room for a layout: the config's node addresses of both clusters. */
#define ADM_LAYOUT_MAX 8192

/* One node change of the state file, applied on top of the config at start-up. */
enum adm_node_op_kind {
    ADM_NODE_OP_ADD = 0, /* node add CLUSTER ADDRESS WEIGHT */
    ADM_NODE_OP_DEL,     /* node del CLUSTER/ADDRESS */
    ADM_NODE_OP_WEIGHT,  /* node weight CLUSTER/ADDRESS WEIGHT */
    ADM_NODE_OP_STATE,   /* node state CLUSTER/ADDRESS draining|disabled */
};

struct adm_node_op {
    enum adm_node_op_kind kind;
    enum cfg_cluster_id cluster;
    char addr[128]; /* the address as written */
    unsigned weight;
    enum bal_node_state state;
};

#define ADM_NODE_WEIGHT_MAX 1000

/* What the state file keeps (docs/admin.md, "The state file"). */
struct adm_persist {
    /* The cluster layout it was written for (adm_layout); "" in a version 1 file (unknown). */
    char layout[ADM_LAYOUT_MAX];
    unsigned weight_bp;
    bool freeze;
    int64_t freeze_since;      /* wall-clock seconds */
    struct adm_ramp ramp;      /* ADM_RAMP_NONE when none; times on the wall clock, in ms */
    struct bal_pins *pins;     /* owned reference; NULL when none */
    struct adm_node_op *nodes; /* owned: node changes against the config, in order */
    size_t n_nodes;
    struct adm_event *events; /* owned: the audit trail, oldest first (at most ADM_EVENTS_MAX) */
    size_t n_events;
    bool have_guard;    /* a guard line was read (files before issue 14 have none) */
    bool guard_on;      /* `guard on|off` */
    bool guard_tripped; /* it tripped and nobody typed `guard reset` */
    /* Fleet mode only: the seed in force, as its hash (bal_snapshot.seed_hash): the fleet's,
     * which wins over split.seed (docs/fleet.md). "seed HEX" in the text. */
    bool have_seed;
    uint64_t seed_hash;
};

/*
 * The cluster layout of a config, as the state file records it: "x=A,B y=C" with each cluster's
 * node addresses as written, sorted, so that the order of the nodes in the file does not count.
 * State written for another layout (nodes added, removed or moved between clusters in the file)
 * is not applied at start-up. Writes into buf (ADM_LAYOUT_MAX; a layout too long for it is cut
 * and ends in "~" and a hash of the whole, so that any change still shows); returns buf.
 */
const char *adm_layout(const struct cfg *cfg, char *buf, size_t size);

/*
 * The node changes that take the config's nodes to the snapshot's: deletions, then per node of
 * the snapshot an addition or a weight change, and a state when it is not up. Returns 0 with
 * *ops (owned by the caller, NULL when none), or -1 when out of memory.
 */
int adm_node_diff(const struct cfg *cfg, const struct bal_snapshot *s, struct adm_node_op **ops,
                  size_t *n);
/* Applies node changes to a snapshot not published yet; a change that no longer fits the config
 * (an unknown node, a duplicate) is logged and skipped. Returns how many were applied, or -1
 * when out of memory. */
int adm_node_apply(struct bal_snapshot *s, const struct adm_node_op *ops, size_t n);
/*
 * Makes the nodes of `next` (a snapshot not published yet, copied from the one in force) those of
 * the config with `ops` applied: nodes missing are added (a free id, as `add node`), nodes not
 * wanted are deleted, weights and states set; health and ids of the others are kept. Returns how
 * many nodes changed, or -1 when out of memory.
 */
int adm_node_apply_to(struct adm_state *st, struct bal_snapshot *next,
                      const struct adm_node_op *ops, size_t n);

/* Writes the file's text for `p` to out. */
void adm_persist_format(const struct adm_persist *p, struct evbuffer *out);
/*
 * Parses the text of a state file; `name` (its path) starts error messages. Returns 0 with *out
 * filled (release it with adm_persist_fini), or -1 with err "NAME:LINE: what is wrong" and *out
 * empty.
 */
int adm_persist_parse(const char *text, size_t len, const char *name, struct adm_persist *out,
                      struct xf_err *err);
void adm_persist_fini(struct adm_persist *p);

enum adm_load {
    ADM_LOAD_MISSING = 0, /* no file: start from the config */
    ADM_LOAD_OK,          /* *out holds the file's state */
    ADM_LOAD_BAD,         /* unreadable or corrupt: err says why; start from the config */
    ADM_LOAD_STALE, /* written for another cluster layout: kept aside, start from the config */
};
enum adm_load adm_persist_load(const char *path, struct adm_persist *out, struct xf_err *err);
/*
 * Replaces the file at `path` with `text` atomically: a temporary file in the same directory,
 * written and fsynced, renamed over `path`, then the directory fsynced. Returns 0, or -1 with err
 * naming the path and the step that failed (the temporary file is removed).
 */
int adm_persist_write(const char *path, const char *text, size_t len, struct xf_err *err);

/*
 * The state file's writer: a thread that writes the latest text it was given, so that the event
 * loop never waits for the disk. Texts given faster than they are written replace each other.
 */
struct adm_saver;

struct adm_saver_status {
    uint64_t submitted, written; /* texts given, and the number of the last one written */
    int64_t ok_wall_ms;          /* when a write last succeeded; 0: never */
    int64_t error_wall_ms;       /* when the last write failed; 0 when it succeeded */
    char error[512];             /* why the last write failed */
};

/* Starts the writer for `path`. With `keep_bad`, the file found there is renamed to
 * PATH.corrupt before the first write. Returns an owned saver, or NULL with err. */
struct adm_saver *adm_saver_new(const char *path, bool keep_bad, struct xf_err *err);
/* Hands a text over to be written (takes ownership of the malloc'd `text`); returns its number
 * (adm_saver_status's `written` reaches it once it, or a later one, is on disk). */
uint64_t adm_saver_submit(struct adm_saver *s, char *text, size_t len);
/* An eventfd that becomes readable after each write (read it to clear it): the event loop's
 * wake-up for replies that wait for the disk. */
int adm_saver_event_fd(const struct adm_saver *s);
/* Waits until every text submitted so far is written (or failed). */
void adm_saver_flush(struct adm_saver *s);
void adm_saver_status(struct adm_saver *s, struct adm_saver_status *out);
/* Writes what is pending, stops the thread and frees the saver. NULL is a no-op. */
void adm_saver_free(struct adm_saver *s);

/* ------------------------------------------------------------------ commands */

/* Who sent a command. */
struct adm_peer {
    long uid, pid; /* SO_PEERCRED; -1 when unknown */
    unsigned id;   /* the admin connection's number, for logs */
};

/*
 * What the commands act on, shared by every admin client. No socket: tested without one. Changes
 * are published through the router as new snapshots (the weight, the freeze and the pins live
 * there), then handed to the state file's writer.
 */
/* The guard's verdict on y against x (adm_guard.c). */
enum adm_verdict {
    ADM_VERDICT_OFF = 0,      /* not configured, or `guard off` */
    ADM_VERDICT_INCONCLUSIVE, /* too few requests, or a difference that is not significant */
    ADM_VERDICT_PASS,
    ADM_VERDICT_FAIL,
    ADM_VERDICT_COUNT,
};
const char *adm_verdict_name(enum adm_verdict v);

/* One side over the guard's window. */
struct adm_guard_side {
    uint64_t requests, errors;
    uint64_t p50_us, p99_us;
};

struct adm_guard {
    bool on;                    /* judging (starts on when the configuration has a guard) */
    bool tripped;               /* it failed y and acted: upward changes wait for `guard reset` */
    bool configured;            /* the configuration in force has a guard section */
    enum adm_verdict verdict;   /* the latest */
    char reason[320];           /* the latest verdict in words */
    char trip[ADM_EVENT_VALUE]; /* what the trip said, while tripped */
    struct adm_guard_side x, y; /* the latest window's numbers */
    int64_t pass_since_ms;      /* mono ms since when every verdict passed; 0: the last did not */
    uint64_t since_s; /* the first second judged after a trip, a reset or `guard on`; 0: any */
    uint64_t verdicts[ADM_VERDICT_COUNT]; /* how many of each since the start */
    uint64_t trips;
    struct event *timer; /* owned: each second */
};

/* One stretch of the upgrade at one weight (the rollout report, adm_report.c). */
struct adm_segment {
    int64_t start_ms, end_ms; /* wall clock */
    unsigned weight_bp;
    unsigned seconds;
    uint64_t requests[2], errors[2]; /* x, y (test traffic left out) */
    uint64_t p50_us[2], p99_us[2];
    uint64_t verdicts[ADM_VERDICT_COUNT]; /* the guard's, one per second */
};
#define ADM_REPORT_SEGMENTS 512
struct adm_report {
    struct adm_segment seg[ADM_REPORT_SEGMENTS]; /* a ring of the closed ones */
    size_t first, n;
    struct adm_segment cur; /* the one in progress */
    struct xf_win lat[2];   /* its response times */
    uint64_t last;          /* the last second taken from the history */
};

/* What the proxy keeps of its counters (all on the admin's thread): the seconds (after taking the
 * latest), the preview, each node's counters. */
struct adm_monitor {
    const struct xf_mon *(*mon)(void *arg);
    int (*preview)(void *arg, unsigned from_bp, unsigned to_bp, struct xf_preview_sum *out);
    int (*node_stats)(void *arg, uint32_t id, struct xf_node_stats *out);
    void *arg; /* borrowed */
};

struct adm_state {
    const struct cfg *cfg;     /* borrowed */
    struct bal_router *router; /* borrowed: where changes are published */
    struct event_base *base;   /* borrowed; NULL: ramps advance only through adm_ramp_tick */
    struct event *ramp_timer;  /* owned; NULL without a base */
    time_t started;            /* wall clock at init, for show version */
    uint64_t started_ms;       /* monotonic */
    uint64_t (*mono_ms)(void); /* the clock of ramps: xf_now_ms (tests may set their own) */
    int64_t (*wall_ms)(void);  /* the wall clock in ms: freeze_since, the state file */
    struct evbuffer *reply;    /* owned: the reply being built */
    struct adm_events events;
    struct adm_ramp ramp;                       /* the ramp in progress; times on mono_ms */
    struct adm_saver *saver;                    /* owned; NULL when state_file is off */
    enum adm_load loaded;                       /* what start-up found in the state file */
    char load_error[ADM_LAYOUT_MAX * 2 + 1200]; /* why it was unusable or stale */
    uint64_t saved_seq; /* the audit trail's last event handed to the state file's writer */
    bool dirty;         /* a change not handed to the writer yet (adm_state_changed) */
    uint64_t exec_gen;  /* the state file text the last adm_exec handed to the writer; 0: none */
    adm_stats_fn stats; /* NULL until adm_server_set_stats */
    struct adm_monitor monitor; /* all NULL until adm_server_set_monitor */
    struct adm_guard guard;
    struct adm_report *report;        /* owned: the rollout report's segments */
    void *stats_arg;                  /* borrowed */
    uint64_t (*applied)(void *arg);   /* NULL until adm_server_set_applied */
    void *applied_arg;                /* borrowed */
    adm_node_info_fn node_info;       /* NULL until adm_server_set_node_info */
    void *node_info_arg;              /* borrowed */
    bal_id_busy_fn id_busy;           /* NULL until adm_server_set_id_busy */
    void *id_busy_arg;                /* borrowed */
    adm_health_info_fn health_info;   /* NULL until adm_server_set_health_info */
    void *health_info_arg;            /* borrowed */
    void (*published)(void *arg);     /* NULL until adm_server_set_published */
    void *published_arg;              /* borrowed */
    const char *(*status)(void *arg); /* NULL until adm_server_set_status */
    unsigned workers;                 /* 0 until adm_server_set_workers */
    void *status_arg;                 /* borrowed */
    /* Host names of `add node` are resolved off the loop (NULL, as in unit tests: at once). */
    struct cfg_resolver *resolver;      /* borrowed */
    void *pending;                      /* the job an ADM_PENDING command left, for the server */
    adm_reload_fn reload;               /* NULL until adm_server_set_reload */
    void *reload_arg;                   /* borrowed */
    const struct adm_peer *reload_peer; /* the peer of the `reload` running now; NULL otherwise */
    char reload_cmd[96];                /* its command text */
    unsigned reloads;                   /* reloads applied since the start */
    time_t reloaded;                    /* when the last one was; 0: none */
    adm_reload_fn reexec;               /* NULL until adm_server_set_reexec */
    void *reexec_arg;                   /* borrowed */
    adm_reload_fn tls_reload;           /* NULL until adm_server_set_tls */
    adm_tls_show_fn tls_show;
    void *tls_arg; /* borrowed */
    /* Binary upgrade (adm_takeover.c), the old process's side. */
    adm_listen_fds_fn listen_fds; /* NULL until adm_server_set_takeover: no takeover */
    void (*handed_over)(void *arg, long new_pid); /* it took over: stop accepting, finish */
    void *takeover_arg;                           /* borrowed */
    size_t (*secret)(void *arg, unsigned char *out, size_t cap); /* NULL: no secret */
    void *secret_arg;                                            /* borrowed */
    bool handover;             /* the state went to a new process: changes are refused */
    bool handed;               /* ... and it took over: this process only finishes */
    unsigned handover_client;  /* the admin connection of the new process */
    long handover_pid;         /* the new process */
    struct event *handover_ev; /* owned: the deadline for its `takeover done` */
    /* The new process's side: the state came from the old one, not from the state file. */
    const char *inherit; /* borrowed during adm_state_init; NULL: none */
    size_t inherit_len;
    long inherit_pid;
    struct adm_stream *stream; /* owned until the server takes it: an ADM_MORE reply's rest */
    /* A pending command finished: its whole reply (closing empty line included) is in `reply`
     * and st->exec_gen says which state file text it waits for; `job` is the one st->pending
     * named when the command returned ADM_PENDING. */
    void (*job_done)(void *arg, void *job, struct evbuffer *reply);
    void *job_done_arg;
    /* Fleet mode (adm_fleet.c); NULL outside it. */
    struct adm_fleet *fleet; /* owned */
    uint64_t fleet_gen;      /* the fleet change the last adm_exec waits for; 0: none */
    int64_t ramp_wall_off;   /* wall minus monotonic ms when the ramp was planned or taken */
    bool applying;           /* adm_state_apply is running: its changes are not new ones */
    bool seed_untaken; /* fleet mode: a reload's new split.seed was not taken (etcd unreachable):
                        * the next reload takes it even if the file did not change again */
    void (*released)(void *arg); /* a held reply may go now (a fleet change's outcome came) */
    void *released_arg;
    void (*left)(void *arg); /* fleet mode: the lease's revoke at stop was answered (or failed) */
    void *left_arg;
};

enum adm_result {
    ADM_OK = 0,   /* the reply is a success */
    ADM_ERROR,    /* the reply starts with "error: " */
    ADM_SILENT,   /* a blank line: no reply */
    ADM_CLOSE,    /* success, and the connection closes after the reply (quit) */
    ADM_WATCH,    /* success (one line, no closing empty line): the connection streams events */
    ADM_PENDING,  /* no reply yet: it comes through st->job_done (st->pending names the job) */
    ADM_MORE,     /* a first part of a long reply: st->stream gives the rest, a part at a time */
    ADM_TAKEOVER, /* `takeover`: the server sends the listening sockets and the state itself */
};

/* Bytes a long reply's part holds, about: the rest waits until the client has read it. */
#define ADM_STREAM_CHUNK (32u * 1024)

struct adm_reply;

/*
 * A long reply written a part at a time (show pins with thousands of long keys): next() appends
 * the next part (about ADM_STREAM_CHUNK bytes of lines) and returns ADM_MORE while more is left,
 * ADM_OK with the last part; free() releases it, whether or not it was written to the end.
 */
struct adm_stream {
    enum adm_result (*next)(struct adm_state *st, struct adm_stream *s, struct adm_reply *r);
    void (*free)(struct adm_stream *s);
};

/*
 * Initialises `st` on a borrowed config, router and event base (NULL: no ramp timer; tests call
 * adm_ramp_tick). Reads cfg->state_file when it is set, publishes what it holds and resumes its
 * ramp; records the start in the audit trail. Returns 0, or -1 (out of memory, or the writer
 * thread could not start) with err. An unusable state file is not a failure (st->loaded).
 */
int adm_state_init(struct adm_state *st, const struct cfg *cfg, struct bal_router *router,
                   struct event_base *base, struct xf_err *err);
/* adm_state_init for a process taking over: the state is `inherit` (the old process's text, as
 * the state file holds it; borrowed for the call), not the state file. */
int adm_state_init_from(struct adm_state *st, const struct cfg *cfg, struct bal_router *router,
                        struct event_base *base, const char *inherit, size_t inherit_len,
                        long inherit_pid, struct xf_err *err);
/* Stops the ramp timer, writes the state file's last text, and releases what `st` owns. */
void adm_state_fini(struct adm_state *st);
/* Publishes the ramp's steps due by st->mono_ms() and arms the timer for the next one. */
void adm_ramp_tick(struct adm_state *st);
/* The ramp timer's callback (arg: the adm_state): adm_ramp_tick. */
void adm_ramp_on_timer(evutil_socket_t fd, short what, void *arg);

/*
 * Runs one command line (without its CR LF) for `peer` and appends its whole reply, closing
 * empty line included, to `out` (nothing for ADM_SILENT). A change is published before this
 * returns, so it is in force for new requests when the client reads the reply. A change is also
 * handed to the state file's writer: st->exec_gen says which text (0: nothing to write); the
 * admin server holds the reply until the writer has it on disk, so that an "ok:" survives a
 * crash.
 */
enum adm_result adm_exec(struct adm_state *st, const struct adm_peer *peer, const char *line,
                         size_t len, struct evbuffer *out);
/* Appends a whole error reply ("error: " and the message, then the empty line) to `out`. */
void adm_write_error(struct evbuffer *out, const char *fmt, ...) XF_PRINTF(2, 3);

/* ------------------------------------------------------------------ internal to admin/ */

/* The reply a handler builds; lines are escaped so a reply never holds an empty line. */
struct adm_reply {
    struct evbuffer *buf; /* borrowed: st->reply */
    bool failed;
};

/* Appends one line (no LF in fmt). */
void adm_reply_line(struct adm_reply *r, const char *fmt, ...) XF_PRINTF(2, 3);
/* Replaces whatever was written by "error: <message>"; returns ADM_ERROR for the handler to
 * return. */
enum adm_result adm_reply_error(struct adm_reply *r, const char *fmt, ...) XF_PRINTF(2, 3);

typedef enum adm_result (*adm_cmd_fn)(struct adm_state *st, const struct adm_peer *peer,
                                      const struct adm_args *a, struct adm_reply *r);

enum adm_cmd_flag {
    ADM_CMD_JSON = 1u << 0,     /* takes a trailing "json" (xfctl -j); the handler checks it */
    ADM_CMD_RAW_ARGS = 1u << 1, /* takes the rest of the line as typed: no word count check */
    ADM_CMD_CHANGES = 1u << 2,  /* changes the state: refused while it is being handed over */
    ADM_CMD_ROLLOUT = 1u << 3,  /* changes the rollout the fleet shares (adm_fleet.c) */
};

/* One entry of the command table (admin/adm_cmd.c). */
struct adm_cmd {
    const char *name;            /* one or two words: "rollback", "show weight" */
    const char *usage;           /* "set weight P" */
    const char *help;            /* one line */
    unsigned min_args, max_args; /* words after the name (json not counted) */
    unsigned flags;              /* enum adm_cmd_flag */
    adm_cmd_fn fn;
};

/* The command table, in the order help lists it. */
const struct adm_cmd *adm_cmd_table(size_t *n);
/* The command whose name starts the line (the longest such name); NULL when none does. */
const struct adm_cmd *adm_cmd_find(const struct adm_args *a);
/* Writes the error for a line that names no command: the closest commands when there are some
 * within a small edit distance, else a pointer to help. */
enum adm_result adm_cmd_unknown(const struct adm_args *a, struct adm_reply *r);
/*
 * Whether a line names a command with as many words as it takes, as adm_exec would find it,
 * without running it (its values are checked when it runs): 0, or -1 with the error the admin
 * socket would answer, without "error: ", in why. For clients that check commands before they
 * send them (xfbench's rollout).
 */
int adm_cmd_check(const char *line, size_t len, char *why, size_t size);

/* The handlers, by file. adm_split.c: */
enum adm_result adm_cmd_show_weight(struct adm_state *, const struct adm_peer *,
                                    const struct adm_args *, struct adm_reply *);
enum adm_result adm_cmd_set_weight(struct adm_state *, const struct adm_peer *,
                                   const struct adm_args *, struct adm_reply *);
enum adm_result adm_cmd_rollback(struct adm_state *, const struct adm_peer *,
                                 const struct adm_args *, struct adm_reply *);
enum adm_result adm_cmd_promote(struct adm_state *, const struct adm_peer *,
                                const struct adm_args *, struct adm_reply *);
enum adm_result adm_cmd_which(struct adm_state *, const struct adm_peer *, const struct adm_args *,
                              struct adm_reply *);
/* adm_show.c: */
enum adm_result adm_cmd_help(struct adm_state *, const struct adm_peer *, const struct adm_args *,
                             struct adm_reply *);
enum adm_result adm_cmd_show_events(struct adm_state *, const struct adm_peer *,
                                    const struct adm_args *, struct adm_reply *);
enum adm_result adm_cmd_show_config(struct adm_state *, const struct adm_peer *,
                                    const struct adm_args *, struct adm_reply *);
enum adm_result adm_cmd_show_version(struct adm_state *, const struct adm_peer *,
                                     const struct adm_args *, struct adm_reply *);
enum adm_result adm_cmd_reload(struct adm_state *, const struct adm_peer *, const struct adm_args *,
                               struct adm_reply *);
enum adm_result adm_cmd_tls_reload(struct adm_state *, const struct adm_peer *,
                                   const struct adm_args *, struct adm_reply *);
enum adm_result adm_cmd_show_tls(struct adm_state *, const struct adm_peer *,
                                 const struct adm_args *, struct adm_reply *);
enum adm_result adm_cmd_reexec(struct adm_state *, const struct adm_peer *, const struct adm_args *,
                               struct adm_reply *);
enum adm_result adm_cmd_quit(struct adm_state *, const struct adm_peer *, const struct adm_args *,
                             struct adm_reply *);
enum adm_result adm_cmd_watch(struct adm_state *, const struct adm_peer *, const struct adm_args *,
                              struct adm_reply *);

/* adm_ramp.c: */
enum adm_result adm_cmd_ramp(struct adm_state *, const struct adm_peer *, const struct adm_args *,
                             struct adm_reply *);
enum adm_result adm_cmd_ramp_pause(struct adm_state *, const struct adm_peer *,
                                   const struct adm_args *, struct adm_reply *);
enum adm_result adm_cmd_ramp_resume(struct adm_state *, const struct adm_peer *,
                                    const struct adm_args *, struct adm_reply *);
enum adm_result adm_cmd_ramp_cancel(struct adm_state *, const struct adm_peer *,
                                    const struct adm_args *, struct adm_reply *);
enum adm_result adm_cmd_show_ramp(struct adm_state *, const struct adm_peer *,
                                  const struct adm_args *, struct adm_reply *);
/* adm_pin.c: */
enum adm_result adm_cmd_pin(struct adm_state *, const struct adm_peer *, const struct adm_args *,
                            struct adm_reply *);
enum adm_result adm_cmd_unpin(struct adm_state *, const struct adm_peer *, const struct adm_args *,
                              struct adm_reply *);
enum adm_result adm_cmd_show_pins(struct adm_state *, const struct adm_peer *,
                                  const struct adm_args *, struct adm_reply *);
enum adm_result adm_cmd_freeze(struct adm_state *, const struct adm_peer *, const struct adm_args *,
                               struct adm_reply *);
/* adm_node.c: */
enum adm_result adm_cmd_show_tunnels(struct adm_state *, const struct adm_peer *,
                                     const struct adm_args *, struct adm_reply *);
enum adm_result adm_cmd_show_nodes(struct adm_state *, const struct adm_peer *,
                                   const struct adm_args *, struct adm_reply *);
enum adm_result adm_cmd_add_node(struct adm_state *, const struct adm_peer *,
                                 const struct adm_args *, struct adm_reply *);
enum adm_result adm_cmd_set_node(struct adm_state *, const struct adm_peer *,
                                 const struct adm_args *, struct adm_reply *);
enum adm_result adm_cmd_drain_node(struct adm_state *, const struct adm_peer *,
                                   const struct adm_args *, struct adm_reply *);
enum adm_result adm_cmd_enable_node(struct adm_state *, const struct adm_peer *,
                                    const struct adm_args *, struct adm_reply *);
enum adm_result adm_cmd_del_node(struct adm_state *, const struct adm_peer *,
                                 const struct adm_args *, struct adm_reply *);
/* adm_takeover.c: */
enum adm_result adm_cmd_takeover(struct adm_state *, const struct adm_peer *,
                                 const struct adm_args *, struct adm_reply *);
/* Sends the listening sockets and the state on `fd` (the client's; nothing of it may be waiting
 * to be sent), the state's text going to `out`. Starts the handover. 0, or -1 with err. */
int adm_takeover_send(struct adm_state *st, const struct adm_peer *peer, int fd,
                      struct evbuffer *out, struct xf_err *err);
/* The client of the handover went away, or its deadline passed, before `takeover done`: this
 * process goes on as before. */
void adm_takeover_abandon(struct adm_state *st, const char *why);
/* The state as the state file holds it (malloc'd, *len bytes), or NULL when out of memory. */
char *adm_state_text(struct adm_state *st, size_t *len);
enum adm_text_form {
    ADM_TEXT_FILE = 0, /* the state file's: the audit trail, the ramp's progress */
    ADM_TEXT_FLEET,    /* the fleet's (adm_fleet.c): neither; a ramp's times as it was planned */
};
char *adm_state_text_for(struct adm_state *st, enum adm_text_form form, size_t *len);
/* Wall-clock minus monotonic ms, read once: the fleet's ramp times convert with it both ways. */
int64_t adm_state_wall_off(struct adm_state *st);
/*
 * Applies a state from elsewhere while running (the fleet's, from etcd): the weight, the freeze,
 * the pins, the ramp on its schedule, the guard's switch and trip, and the node changes when `p`
 * was written for this config's layout. Each change is recorded as made by `who` ("fleet:
 * edge-2 at ..."). Takes p's pins. 0, or -1 when out of memory (nothing changed).
 */
int adm_state_apply(struct adm_state *st, struct adm_persist *p, const char *who);
/* adm_state_apply of a state file's text; -1 also when it cannot be read (logged). */
int adm_state_apply_text(struct adm_state *st, const char *text, size_t len, const char *who);
/* What `rollback` does, for `who`: the ramp cancelled, the weight 0. */
void adm_state_rollback(struct adm_state *st, const char *who);

/* ------------------------------------------------------------------ fleet mode (adm_fleet.c) */

/* Starts fleet mode when st->cfg->fleet is configured (else nothing): the etcd client on `base`,
 * the first read of the fleet's state, the watch, this instance's member key. 0, or -1 with err. */
int adm_fleet_start(struct adm_state *st, struct event_base *base, struct xf_err *err);
/* Stops it: the member key goes (its lease revoked), the client is freed. */
void adm_fleet_stop(struct adm_state *st);
/* This instance leaves the members now (its lease revoked); the state is still followed. When
 * etcd answered the revoke, st->left is called. */
void adm_fleet_leave(struct adm_state *st);
/* Whether adm_fleet_leave's revoke still waits for its answer. */
bool adm_fleet_leaving(const struct adm_state *st);
/* After a change (adm_state_changed): a state that differs from the fleet's goes to etcd. */
void adm_fleet_changed(struct adm_state *st);
/* Why a command that changes the rollout may not run now (etcd unreachable, the first read not
 * done), or NULL. `rollback`: the command is rollback (fleet.local_fallback accepts it). */
const char *adm_fleet_refuse(struct adm_state *st, bool rollback);
/* Whether a change made now can be written to etcd (true outside fleet mode). */
bool adm_fleet_writable(const struct adm_state *st);
/* A command that changes the rollout is about to run: the generation its reply waits for (0
 * outside fleet mode). */
uint64_t adm_fleet_begin(struct adm_state *st);
/* Whether generation `gen`'s change has its outcome from etcd; *error: why it was refused (the
 * change was undone), or NULL. True for 0 and outside fleet mode. */
bool adm_fleet_done(const struct adm_state *st, uint64_t gen, const char **error);
/* Appends fleet mode's families to /metrics: crossfade_fleet_info{name,epoch} 1, the revision
 * applied, whether etcd answers, members listed and how many are in step (nothing outside it). */
void adm_fleet_metrics(struct adm_state *st, struct evbuffer *b);
/* "# HELP crossfade_NAME HELP" and "# TYPE crossfade_NAME TYPE" (adm_http.c). */
void adm_http_family(struct evbuffer *b, const char *name, const char *type, const char *help);
/* The routing epoch of `s` (the snapshot in force): 16 hex digits of a hash of the seed, the
 * weight (a running ramp's schedule instead), the key rules and the pins. Instances with the same
 * epoch send every client to the same side. */
void adm_fleet_epoch(struct adm_state *st, const struct bal_snapshot *s, char out[17]);

/* Fleet mode: publishes a snapshot whose routing epoch (the copy fleet.epoch_header sends) is
 * the one in force, when it is not (a ramp's change alone publishes none; start-up). */
void adm_state_epoch(struct adm_state *st);

/* adm_reload.c: */
/* adm_server_reload on the state: publishes, swaps the config, records, saves. */
void adm_state_reload(struct adm_state *st, const struct cfg *cfg, struct bal_snapshot *next,
                      char *text, size_t size);
/* adm_state.c: */
enum adm_result adm_cmd_show_fleet(struct adm_state *st, const struct adm_peer *peer,
                                   const struct adm_args *a, struct adm_reply *r);
enum adm_result adm_cmd_show_state(struct adm_state *, const struct adm_peer *,
                                   const struct adm_args *, struct adm_reply *);
/* adm_stats.c: */
enum adm_result adm_cmd_preview_weight(struct adm_state *, const struct adm_peer *,
                                       const struct adm_args *, struct adm_reply *);
enum adm_result adm_cmd_guard(struct adm_state *, const struct adm_peer *, const struct adm_args *,
                              struct adm_reply *);
enum adm_result adm_cmd_report(struct adm_state *, const struct adm_peer *, const struct adm_args *,
                               struct adm_reply *);
enum adm_result adm_cmd_show_stats(struct adm_state *, const struct adm_peer *,
                                   const struct adm_args *, struct adm_reply *);

/* Whether the config's split reads this kind of key (and name) (k is not bare); writes the keys
 * it reads into `keys` ("header:x-consumer-id, ip"). */
bool adm_split_reads(const struct cfg_split *split, const struct adm_key *k, char *keys,
                     size_t size);
/* The command line as the audit trail and the log keep it: escaped, cut to fit buf. */
void adm_command_text(const struct adm_args *a, char *buf, size_t size);

/* Room for a node's note, and for a capacity refusal that names the nodes y is missing. */
#define ADM_NODE_NOTE 200
#define ADM_WHY_SIZE  1024

/*
 * Why node n takes no traffic, or a part of its weight only, for people: the operator's reason
 * ("draining by the operator", "weight 0"), else what the health checks say ("pending first
 * checks: ...", "ejected until 14:03:12Z (5 failures in a row)", "slow start: ..."). "" when it
 * takes its whole share.
 */
void adm_node_note(struct adm_state *st, const struct bal_node *n, char *buf, size_t size);

/*
 * Whether y can take weight `bp` (hundredths) in snapshot `s`: returns 0 when bp is at most
 * bal_capacity_bp(s) or at most the weight in force (lowering is never refused), else -1 with
 * `why` (ADM_WHY_SIZE) saying "y can take at most C% of clients now (capacity: healthy weight Wy of
 * y against Wx of x; missing: y/ADDR NOTE, ...); P% would overload it", the missing nodes with
 * adm_node_note. *cap_bp (may be NULL) gets the capacity either way.
 */
int adm_capacity_check(struct adm_state *st, const struct bal_snapshot *s, unsigned bp,
                       unsigned *cap_bp, char *why, size_t size);

/* Publishes a copy of the current snapshot with weight `bp` and records the change; *old_bp gets
 * the weight it replaced. Returns 0 (also when the weight did not change), or -1 when out of
 * memory. */
int adm_weight_publish(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                       unsigned bp, unsigned *old_bp);
/* The same in the name of uid/pid and a command text (a ramp's steps). */
int adm_weight_apply(struct adm_state *st, long uid, long pid, const char *cmd, unsigned bp,
                     unsigned *old_bp);
/*
 * A copy of the current snapshot for a change (version + 1), or NULL when out of memory; the
 * caller changes it and hands it to adm_publish. Only the admin loop publishes, so nothing slips
 * in between.
 */
struct bal_snapshot *adm_snapshot_begin(struct adm_state *st);
/* Makes `next` current (takes it); the state is saved when the command or tick is over. */
void adm_publish(struct adm_state *st, struct bal_snapshot *next);
/* Hands the current state (snapshot, ramp, audit trail) to the state file's writer; no-op
 * without one. */
void adm_state_save(struct adm_state *st);
/* Saves once what changed since the last save (st->dirty, or new audit events): called at the
 * end of every command and of every ramp tick, so that a change and its event go out together. */
void adm_state_changed(struct adm_state *st);
/*
 * Ends a ramp in progress because of another change (`cmd` by uid/pid): records it and stops the
 * timer. Returns true and *to_bp (its target) when there was one. Does not save: the change that
 * stopped it does.
 */
bool adm_ramp_stop(struct adm_state *st, long uid, long pid, const char *cmd, unsigned *to_bp);
/* Pauses a running ramp in the name of uid/pid/cmd (recorded in the audit trail). */
void adm_ramp_pause(struct adm_state *st, long uid, long pid, const char *cmd);

/* ------------------------------------------------------------------ admin.http (adm_http.c) */

struct adm_http;
/* Serves /metrics, /api/stats, /healthz and the status page on `addr` for st (borrowed), read
 * only. Returns an owned listener, or NULL with err naming the address and the reason. */
struct adm_http *adm_http_new(struct event_base *base, struct adm_state *st,
                              const struct cfg_addr *addr, struct xf_err *err);
/* Closes the listener and its connections. NULL is a no-op. */
void adm_http_free(struct adm_http *h);
/* Appends s as a JSON string: quoted, control bytes, bytes from 0x80, <, > and & as \u00XX (so
 * that it may also stand inside an HTML script element). */
void adm_json_str(struct evbuffer *b, const char *s);
/* Appends an event of the audit trail as a JSON object {seq, time_ms, who, command, what, from,
 * to}; who is "crossfade" for crossfade's own. */
void adm_json_event(struct evbuffer *b, const struct adm_event *e);
/* n of all as "12.34%" ("-" when all is 0) in buf; returns buf. */
const char *adm_share_text(uint64_t n, uint64_t all, char *buf, size_t size);
/* Writes the HTML rollout report around `json` (the reply of `report json`) to f: 0, or -1 when
 * the write failed or the JSON could end the script element it goes in. */
int adm_report_html(FILE *f, const char *json, size_t len);
/* Takes the seconds the history gained into the report's segments (each second, and before a
 * report is read). */
void adm_report_tick(struct adm_state *st);

/* ------------------------------------------------------------------ the guard (adm_guard.c) */

/* Starts the guard's timer (with a base) and turns it on when cfg has a guard; 0 or -1. */
int adm_guard_init(struct adm_state *st);
void adm_guard_fini(struct adm_state *st);
/* The configuration changed (a reload): a guard added starts, one removed stops. */
void adm_guard_reconfigure(struct adm_state *st);
/* Judges y against x now and acts on a failure (the timer's work; tests call it). */
void adm_guard_tick(struct adm_state *st);
bool adm_guard_is_on(const struct adm_state *st);
/* Whether a due ramp step may be taken now (the guard's hold on ramps). */
bool adm_guard_allows_step(struct adm_state *st, int64_t now_ms);
/* While tripped, an upward change is refused: writes the error into r and returns true. */
bool adm_guard_refuses_up(struct adm_state *st, struct adm_reply *r);
/* The window's two sides, cluster c, over the last `seconds` (zeroed without a monitor). */
void adm_window(struct adm_state *st, int c, unsigned seconds, struct xf_win *out);

#endif
