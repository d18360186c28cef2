/* common/xf.h -- logging, the caller-owned error buffer, time and small helpers shared by every
 * module. */
#ifndef XF_H
#define XF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#ifndef XF_VERSION
#define XF_VERSION "0.1.0"
#endif

#define XF_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define XF_MIN(a, b)    ((a) < (b) ? (a) : (b))
#define XF_MAX(a, b)    ((a) > (b) ? (a) : (b))
#define XF_UNUSED(x)    ((void)(x))
#define XF_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define XF_LIKELY(x)    __builtin_expect(!!(x), 1)
#define XF_UNLIKELY(x)  __builtin_expect(!!(x), 0)

/* Free and clear in one step, so no reachable pointer is left to freed memory. */
#define XF_FREE(p)                                                                                 \
    do {                                                                                           \
        free(p);                                                                                   \
        (p) = NULL;                                                                                \
    } while (0)

/*
 * An error travels up in a caller-owned fixed buffer: no allocation on the error path. Every
 * function that takes a `struct xf_err *` accepts NULL when the caller does not want the text.
 */
struct xf_err {
    char msg[512];
};

void xf_err_set(struct xf_err *err, const char *fmt, ...) XF_PRINTF(2, 3);

enum xf_log_level {
    XF_LOG_DEBUG = 0,
    XF_LOG_INFO,
    XF_LOG_WARN,
    XF_LOG_ERR,
};

/* The one process-wide logging threshold; set at start-up and by a reload, read on every XF_LOG
 * (atomically, relaxed: a plain load). */
extern enum xf_log_level xf_log_min;

/*
 * Writes "<time> <LEVEL> <module>: <message>\n" to stderr in one write(2), so lines from several
 * threads never interleave. Use through XF_LOG, which tests the level inline.
 */
void xf_log_write(enum xf_log_level level, const char *module, const char *fmt, ...)
    XF_PRINTF(3, 4);

#define XF_LOG(level, module, ...)                                                                 \
    do {                                                                                           \
        if ((level) >= __atomic_load_n(&xf_log_min, __ATOMIC_RELAXED))                             \
            xf_log_write((level), (module), __VA_ARGS__);                                          \
    } while (0)

/* Parses "debug", "info", "warn" or "error"; returns 0, or -1 when the name is unknown. */
int xf_log_level_parse(const char *name, enum xf_log_level *out);

/*
 * One header field of a parsed HTTP head: spans into the head's bytes, valid while those bytes
 * live. Shared by the balancer (split keys) and the proxy (rewriting).
 */
struct xf_hdr {
    const char *name;
    const char *value;
    uint32_t name_len;
    uint32_t value_len;
};

/* Monotonic clock in milliseconds and in microseconds. */
uint64_t xf_now_ms(void);
uint64_t xf_now_us(void);
/* The wall clock (CLOCK_REALTIME) in milliseconds since 1970. */
int64_t xf_wall_ms(void);
/* A wall-clock time in ms as "2026-11-30T04:06:33Z" (`with_ms`: "...:33.123Z") into buf (at least
 * 32 bytes); returns buf. */
const char *xf_wall_text(int64_t ms, int with_ms, char *buf, size_t size);

/* Levenshtein distance between two short strings (for "did you mean" hints); capped at 64 chars. */
size_t xf_edit_distance(const char *a, const char *b);

struct sockaddr_storage;

/*
 * Resolves `host` and the numeric `port` (getaddrinfo, AI_NUMERICSERV; AI_PASSIVE when `passive`)
 * into the first address found. Returns 0, or -1 with getaddrinfo's reason in *why.
 */
int xf_resolve(const char *host, const char *port, int passive, struct sockaddr_storage *out,
               unsigned *out_len, const char **why);

/*
 * An http:// URL naming a server and nothing else: "http://HOST[:PORT][/]", HOST a name, an IPv4
 * address or a bracketed IPv6 one (written to host without its brackets, host_size bytes),
 * PORT from 1 to 65535, default_port when left out (0: it is required). 0 with *port, or -1 with
 * err saying what is wrong (not quoting the URL: the caller names it).
 */
int xf_http_url_parse(const char *url, unsigned default_port, char *host, size_t host_size,
                      unsigned *port, struct xf_err *err);

/* Bytes of text xf_quote shows, and the buffer it needs. */
#define XF_QUOTE_MAX  60
#define XF_QUOTE_SIZE (XF_QUOTE_MAX * 4 + 8)

/*
 * Writes the `len` bytes at `s` into `buf` (XF_QUOTE_SIZE bytes) as a double-quoted excerpt fit
 * for a one-line message: quotes, backslashes and control bytes escaped, long text cut on a UTF-8
 * boundary and followed by "...". Returns buf, so that it can be a printf argument.
 */
const char *xf_quote(char *buf, const char *s, size_t len);

/* The most bytes xf_json_escape writes for `len` bytes (each may become \u00XX). */
#define XF_JSON_ESCAPED_MAX(len) ((len)*6)

/*
 * Writes the `len` bytes at `s` into `dst` (XF_JSON_ESCAPED_MAX(len) bytes at least) as the inside
 * of a JSON string, without the quotes: `"` and `\` behind a backslash, control bytes and DEL as
 * \u00XX, and every byte from 0x80 as \u00XX too. Those bytes come from clients and need not be
 * UTF-8: taken one by one as U+0080..U+00FF, any input makes valid JSON and the bytes received
 * can be told from the text. Returns the bytes written (no NUL).
 */
size_t xf_json_escape(char *dst, const char *s, size_t len);

/*
 * Descriptors running out (common/xf_util.c). The admin socket keeps a spare descriptor to take
 * the operator's connection when every other is used; it closes it and accepts at once. With
 * worker threads accepting too, a worker could take the descriptor in between: once any thread
 * has run out (xf_fd_scarce set), accepts happen under xf_fd_lock, so the spare goes where it
 * was meant to. Uncontended, and only while descriptors are scarce.
 */
extern int xf_fd_scarce; /* atomic: 1 once a thread ran out of descriptors, 0 when they came back */
void xf_fd_lock(void);
void xf_fd_unlock(void);

/*
 * The service manager's notification socket (systemd's Type=notify, without libsystemd): sends
 * `state` ("READY=1", "STOPPING=1", "STATUS=...") as one datagram to $NOTIFY_SOCKET (a path, or
 * "@name" for the abstract namespace). Nothing when the variable is unset. 0, or -1 (logged once).
 */
int xf_notify(const char *state);
/* RELOADING=1 with the monotonic time, as systemd asks for it at the start of a reload. */
int xf_notify_reloading(void);

/*
 * Fatal signals (common/xf_fatal.c). xf_fatal_install catches the signals that would end the
 * process without the event loop seeing them (SIGSEGV, SIGABRT, SIGQUIT, SIGUSR2, ...), and an
 * exit() from elsewhere than the normal path; on one, the file registered with
 * xf_fatal_unlink_on_exit (the admin socket) is removed if it is still the same file (dev, ino),
 * then the signal takes its course as before (core dumps and sanitizer reports included). One
 * file at a time; xf_fatal_forget unregisters it.
 */
void xf_fatal_install(void);
void xf_fatal_unlink_on_exit(const char *path, unsigned long dev, unsigned long ino);
void xf_fatal_forget(void);

/* Case-insensitive comparison of a span with a NUL-terminated lower-case ASCII literal. */
int xf_span_ieq(const char *s, size_t len, const char *lit);

#endif
