/* admin/adm.h -- the admin socket: a line protocol over a Unix stream socket, and its commands. */
#ifndef ADM_H
#define ADM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "balancer/bal.h"
#include "common/xf.h"
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
#define ADM_WRITE_TIMEOUT_MS 10000 /* a client that reads nothing for this long is dropped */

/* ------------------------------------------------------------------ the server */

struct adm_server;

/*
 * Listens on cfg->admin_socket: creates the parent directory when missing (mode 0700), removes a
 * stale socket file (only a socket nobody answers on), binds with mode 0600 and serves admin
 * clients on `base`. base, cfg and router are borrowed and must outlive the server. Returns an
 * owned server, or NULL with err naming the path and the reason (another crossfade answering on
 * the socket is one).
 */
struct adm_server *adm_server_new(struct event_base *base, const struct cfg *cfg,
                                  struct bal_router *router, struct xf_err *err);
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
/* "header", "cookie", "query", "ip", "jwt_sub", "basic_user" or "random". */
const char *adm_key_kind_name(enum cfg_key_kind kind);

/* ------------------------------------------------------------------ the audit trail */

struct adm_event {
    uint64_t seq;     /* 1 for the first event since start */
    time_t time;      /* wall clock */
    long uid, pid;    /* of the admin peer; -1 for crossfade itself */
    char command[96]; /* the command line, escaped, cut */
    char what[32];    /* what changed: "weight", later "ramp", "node y/10.0.1.1:8000", "freeze" */
    char old_value[48], new_value[48];
};

/* A ring of the latest ADM_EVENTS_MAX events; zero-initialised is empty. */
struct adm_events {
    struct adm_event ring[ADM_EVENTS_MAX];
    size_t next; /* the slot the next event goes to */
    size_t n;    /* events held */
    uint64_t seq;
};

/* Records one change; strings are copied (cut to their field). */
void adm_events_add(struct adm_events *ev, long uid, long pid, const char *command,
                    const char *what, const char *old_value, const char *new_value);
/* The i-th event held, oldest first; NULL when i >= ev->n. */
const struct adm_event *adm_events_get(const struct adm_events *ev, size_t i);

/* ------------------------------------------------------------------ commands */

/* Who sent a command. */
struct adm_peer {
    long uid, pid; /* SO_PEERCRED; -1 when unknown */
    unsigned id;   /* the admin connection's number, for logs */
};

/*
 * What the commands act on, shared by every admin client. No I/O: tested without sockets. Later
 * issues add the ramp, node changes, the freeze, pins and the state file here; changes are still
 * published through the router as new snapshots.
 */
struct adm_state {
    const struct cfg *cfg;     /* borrowed */
    struct bal_router *router; /* borrowed: where changes are published */
    time_t started;            /* wall clock at init, for show version */
    uint64_t started_ms;       /* monotonic */
    struct evbuffer *reply;    /* owned: the reply being built */
    struct adm_events events;
};

enum adm_result {
    ADM_OK = 0, /* the reply is a success */
    ADM_ERROR,  /* the reply starts with "error: " */
    ADM_SILENT, /* a blank line: no reply */
    ADM_CLOSE,  /* success, and the connection closes after the reply (quit) */
};

/* Initialises `st` on a borrowed config and router; records the start in the audit trail.
 * Returns 0, or -1 (out of memory) with err. */
int adm_state_init(struct adm_state *st, const struct cfg *cfg, struct bal_router *router,
                   struct xf_err *err);
void adm_state_fini(struct adm_state *st);

/*
 * Runs one command line (without its CR LF) for `peer` and appends its whole reply, closing
 * empty line included, to `out` (nothing for ADM_SILENT). A change is published before this
 * returns, so it is in force for new requests when the client reads the reply.
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
    ADM_CMD_JSON = 1u << 0,     /* takes a trailing "json" (xfctl -j) */
    ADM_CMD_RAW_ARGS = 1u << 1, /* takes the rest of the line as typed: no word count check */
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
enum adm_result adm_cmd_quit(struct adm_state *, const struct adm_peer *, const struct adm_args *,
                             struct adm_reply *);

/* Publishes a copy of the current snapshot with weight `bp` and records the change; *old_bp gets
 * the weight it replaced. Returns 0 (also when the weight did not change), or -1 when out of
 * memory. */
int adm_weight_publish(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                       unsigned bp, unsigned *old_bp);

#endif
