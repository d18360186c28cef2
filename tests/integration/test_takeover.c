/* tests/integration/test_takeover.c -- binary upgrade (crossfade --takeover): the new process
 * takes the listening sockets and the runtime state of the running one and serves on them without
 * a refused connection or a failed request; a new process that fails leaves the old one serving
 * untouched; while the handover is under way, the old process refuses state changes. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/harness.h"
#include "tests/integration/tls_helpers.h"

/*
 * Every process a test starts, the second crossfade included, goes through h_spawn (directly, or
 * through h_proxy_start / h_run): the harness registers it, h_teardown kills whatever still runs
 * on every path out of the test (a failed assertion too), and PR_SET_PDEATHSIG kills it with the
 * test process when a timeout ends the test before its .fini.
 */
TestSuite(takeover, .init = h_setup, .fini = ht_teardown); /* ht_: the TLS test's sessions */

#define SPLIT "  key: [\"header:X-Key\"]\n" /* split.key: the tests route by X-Key */
/* The most sockets a raw handover accepts: the tests' processes have one listener, a few
 * workers. */
#define HANDOVER_MAX_FDS 64
/* The longest a takeover may take beyond the old process's shutdown time: the new one starts,
 * gets its checks' first verdicts, and the old one finishes its connections. */
#define TAKEOVER_SLACK_MS 10000

/* ------------------------------------------------------------------ small helpers */

/* `text` with the first `from` replaced by `to` (harness-owned); asserts that `from` is there. */
static const char *
replace_once(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);

    cr_assert(ne(ptr, (void *)at, NULL), "\"%s\" is not in the config:\n%s", from, text);
    return h_fmt("%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
}

/* The line of `text` that starts with `prefix`, without its LF (harness-owned), or NULL. */
static const char *
line_starting(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);

    for (const char *at = text; at != NULL && *at != '\0';) {
        const char *nl = strchr(at, '\n');

        if (strncmp(at, prefix, n) == 0)
            return h_fmt("%.*s", nl != NULL ? (int)(nl - at) : (int)strlen(at), at);
        at = nl != NULL ? nl + 1 : NULL;
    }
    return NULL;
}

/* The first line of `text` that holds `needle`, without its LF (harness-owned), or NULL. */
static const char *
line_holding(const char *text, const char *needle)
{
    const char *at = strstr(text, needle), *start, *end;

    if (at == NULL)
        return NULL;
    for (start = at; start > text && start[-1] != '\n'; start--)
        ;
    end = strchr(at, '\n');
    return h_fmt("%.*s", end != NULL ? (int)(end - start) : (int)strlen(start), start);
}

/* Whether `line` holds the word `field` ("new_pid=42"): after a space or at the start, before a
 * space or at the end, so that "new_pid=42" does not match "new_pid=421". */
static bool
has_field(const char *line, const char *field)
{
    size_t n = strlen(field);

    for (const char *at = strstr(line, field); at != NULL; at = strstr(at + 1, field))
        if ((at == line || at[-1] == ' ') && (at[n] == '\0' || at[n] == ' ' || at[n] == '\n'))
            return true;
    return false;
}

/* The number (from 1) of the first line of the file that holds `needle`, or 0. */
static size_t
log_line_no(const char *path, const char *needle)
{
    FILE *f = fopen(path, "re");
    char *line = NULL;
    size_t cap = 0, no = 0, found = 0;

    if (f == NULL)
        return 0;
    while (found == 0 && getline(&line, &cap, f) != -1) {
        no++;
        if (strstr(line, needle) != NULL)
            found = no;
    }
    free(line);
    fclose(f);
    return found;
}

/* Asserts that the first line of the log that holds `event` is there and holds the word `field`
 * (NULL: any); returns that line. */
static const char *
expect_log(const char *path, const char *event, const char *field)
{
    const char *line = h_log_line(path, event);

    cr_assert(ne(ptr, (void *)line, NULL), "no \"%s\" in %s", event, path);
    if (field != NULL)
        cr_assert(has_field(line, field), "the %s line of %s does not say %s: %s", event, path,
                  field, line);
    return line;
}

/* Sends an admin command and asserts its whole reply (without the closing empty line). */
static void
expect_reply(int adm, const char *cmd, const char *want)
{
    char *reply = h_admin_cmd(adm, cmd);

    cr_assert(eq(str, reply, (char *)want), "\"%s\" answered:\n%s\nexpected:\n%s", cmd, reply,
              want);
}

/* The pid `show version` names on the admin connection adm. */
static long
admin_pid(int adm)
{
    char *reply = h_admin_cmd(adm, "show version");
    const char *line = line_starting(reply, "pid ");

    cr_assert(ne(ptr, (void *)line, NULL), "no pid line in show version:\n%s", reply);
    return strtol(line + 4, NULL, 10);
}

/* y's weight as `show weight` gives it ("x 70.00\ny 30.00\n"). */
static double
admin_y_weight(int adm)
{
    char *reply = h_admin_cmd(adm, "show weight");
    const char *line = line_starting(reply, "y ");

    cr_assert(ne(ptr, (void *)line, NULL), "no y line in show weight:\n%s", reply);
    return strtod(line + 2, NULL);
}

/* Polls `show weight` every 50 ms until y's weight is at least `want` (true), or timeout_ms
 * passed (false). */
static bool
wait_y_weight_at_least(int adm, double want, int timeout_ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;

    while (admin_y_weight(adm) < want) {
        if (h_now_ms() >= deadline)
            return false;
        h_sleep_ms(50);
    }
    return true;
}

/* `freeze show` without its "(N s ago)", which moves: "freeze on since 2026-...Z". */
static const char *
freeze_state(int adm)
{
    char *reply = h_admin_cmd(adm, "freeze show");

    return h_fmt("%.*s", (int)strcspn(reply, "(\n"), reply);
}

/* ------------------------------------------------------------------ the process taking over */

/*
 * Writes NAME.yaml, the config of a process that takes over `old`: `o` on old's port, which
 * also gives it old's admin socket and access log (the harness puts both at fixed names in the
 * scratch directory); with one more proxy listener on 127.0.0.1:more_port unless more_port is 0.
 * Returns its path.
 */
static const char *
next_config(const struct h_proxy *old, const char *name, const struct h_proxy_opts *o,
            int more_port)
{
    const char *path = h_proxy_write_config(h_fmt("%s.yaml", name), o, old->port);
    const char *text;

    if (more_port == 0)
        return path;
    text = h_read_file(path, NULL);
    cr_assert(ne(ptr, (void *)text, NULL), "cannot read back %s", path);
    text = replace_once(text, "listen:\n",
                        h_fmt("listen:\n  - address: \"127.0.0.1:%d\"\n", more_port));
    return h_write_file(h_fmt("%s.yaml", name), "%s", text);
}

/*
 * Starts `crossfade -c cfg_path --takeover` with its stdout and stderr in NAME.log (the runner
 * prints it when the test fails) and returns it as a proxy on old's port and admin socket, so
 * that h_admin_connect and h_proxy_finish work on it once it took over. Registered with the
 * harness by h_spawn: stopped at teardown whatever happens.
 */
static struct h_proxy *
takeover_spawn(const struct h_proxy *old, const char *name, const char *cfg_path)
{
    struct h_proxy *next = h_alloc(sizeof(*next));
    char *argv[] = {(char *)h_bin("crossfade"), "-c", (char *)cfg_path, "--takeover", NULL};

    next->port = old->port;
    next->cfg_path = cfg_path;
    next->access_log = old->access_log;
    next->admin_socket = old->admin_socket;
    next->shutdown_ms = old->shutdown_ms;
    next->proc = h_spawn(name, argv, h_path(h_fmt("%s.log", name)), NULL);
    return next;
}

/*
 * Waits for a takeover to end well and asserts everything it leaves to see:
 *  - the old process exits, with 0, within its shutdown time and TAKEOVER_SLACK_MS, while the
 *    new one lives (a new one that dies first fails the test at once, with its code);
 *  - the old one logged event=takeover_begin new_pid=NEW, event=takeover_done,
 *    event=taken_over, event=stopped, in that order, neither event=takeover_abandoned nor
 *    event=shutdown_deadline (which would have cut connections);
 *  - the new one logged event=takeover_begin old_pid=OLD and event=takeover_complete
 *    old_pid=OLD, and nothing is left at ADMIN_SOCKET.takeover.
 */
static void
takeover_wait(struct h_proxy *old, struct h_proxy *next)
{
    const char *ol = old->proc->log_path, *nl = next->proc->log_path;
    uint64_t deadline = h_now_ms() + old->shutdown_ms + TAKEOVER_SLACK_MS;
    const char *old_pid = h_fmt("old_pid=%d", old->proc->pid);
    const char *new_pid = h_fmt("new_pid=%d", next->proc->pid);
    size_t begin, done, taken, stopped;

    while (h_proc_alive(old->proc)) {
        cr_assert(h_proc_alive(next->proc),
                  "the new crossfade (pid %d) exited with %d while the old one (pid %d) still "
                  "runs: see %s",
                  next->proc->pid, next->proc->code, old->proc->pid, nl);
        if (h_now_ms() >= deadline)
            cr_fatal("the old crossfade (pid %d) still runs %u ms after pid %d started to take "
                     "over",
                     old->proc->pid, old->shutdown_ms + TAKEOVER_SLACK_MS, next->proc->pid);
        h_sleep_ms(20);
    }
    cr_assert(eq(int, old->proc->code, 0), "the old crossfade exited with %d once taken over",
              old->proc->code);
    cr_assert(h_proc_alive(next->proc), "the new crossfade exited (%d) as the old one stopped",
              next->proc->code);

    cr_assert(h_log_wait(nl, "event=takeover_complete", H_IO_TIMEOUT_MS),
              "the new crossfade did not log event=takeover_complete");
    expect_log(nl, "event=takeover_complete", old_pid);
    expect_log(nl, "event=takeover_begin old_pid=", old_pid);
    /* The new process's admin socket, bound aside at ADMIN_SOCKET.takeover, was moved over the
     * old one's (the tests then reach it at ADMIN_SOCKET). */
    cr_assert(ne(int, access(h_fmt("%s.takeover", next->admin_socket), F_OK), 0),
              "%s.takeover is still there after the takeover", next->admin_socket);

    expect_log(ol, "event=takeover_begin new_pid=", new_pid);
    begin = log_line_no(ol, "event=takeover_begin new_pid=");
    done = log_line_no(ol, "event=takeover_done");
    taken = log_line_no(ol, "event=taken_over");
    stopped = log_line_no(ol, "event=stopped");
    cr_assert(done > begin && taken > done && stopped > taken,
              "the old crossfade's log does not say takeover_begin, takeover_done, taken_over, "
              "stopped in that order (lines %zu, %zu, %zu, %zu of %s)",
              begin, done, taken, stopped, ol);
    cr_assert(eq(sz, h_log_count(ol, "event=takeover_abandoned"), (size_t)0),
              "the old crossfade abandoned a takeover: %s",
              h_log_line(ol, "event=takeover_abandoned"));
    cr_assert(eq(sz, h_log_count(ol, "event=shutdown_deadline"), (size_t)0),
              "the old crossfade hit its shutdown deadline: %s",
              h_log_line(ol, "event=shutdown_deadline"));
}

/* ------------------------------------------------------------------ traffic */

/* The requests the upstreams received so far, all together (xf-upstream's own counts). */
static uint64_t
served_total(struct h_upstream *const *ups, size_t n)
{
    uint64_t total = 0;

    for (size_t i = 0; i < n; i++) {
        uint64_t conns, reqs;

        h_upstream_counters(ups[i], &conns, &reqs);
        total += reqs;
    }
    return total;
}

/* Waits until the upstreams received `more` requests beyond what they had at the call (true),
 * or timeout_ms passed (false). */
static bool
wait_served_more(struct h_upstream *const *ups, size_t n, uint64_t more, int timeout_ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
    uint64_t want = served_total(ups, n) + more;

    while (served_total(ups, n) < want) {
        if (h_now_ms() >= deadline)
            return false;
        h_sleep_ms(20);
    }
    return true;
}

enum load_kind {
    LOAD_KEEP_ALIVE = 0, /* 8 keep-alive connections, each sending as soon as answered */
    LOAD_CONN_PER_REQ,   /* a new TCP connection for every request, 1500 requests/s */
};

/*
 * Starts bin/xfbench on p's port: one thread, 8 connections, keys 1..2000 in X-Key, for up to
 * 60 s (the test ends it with SIGINT: load_stop); its JSON report goes to run.json. With
 * LOAD_CONN_PER_REQ each request carries `Connection: close`, so crossfade closes the
 * connection after the response and xfbench opens a new one for the next request: every
 * request goes through accept(). The rate is bounded there, so the run stays far from running
 * out of loopback ports.
 */
static struct h_proc *
load_start(const struct h_proxy *p, enum load_kind kind)
{
    char *argv[24];
    size_t n = 0;

    argv[n++] = (char *)h_bin("xfbench");
    argv[n++] = "-q";
    argv[n++] = "-t";
    argv[n++] = "1";
    argv[n++] = "-c";
    argv[n++] = "8";
    argv[n++] = "-d";
    argv[n++] = "60s";
    argv[n++] = "--keys";
    argv[n++] = "2000";
    argv[n++] = "--key-header";
    argv[n++] = "X-Key";
    argv[n++] = "--timeout";
    argv[n++] = "3s";
    argv[n++] = "--json";
    argv[n++] = (char *)h_path("run.json");
    if (kind == LOAD_CONN_PER_REQ) {
        argv[n++] = "-H";
        argv[n++] = "Connection: close";
        argv[n++] = "-R";
        argv[n++] = "1500";
    }
    argv[n++] = (char *)h_fmt("http://127.0.0.1:%d/", p->port);
    argv[n] = NULL;
    return h_spawn("xfbench", argv, h_path("xfbench.log"), NULL);
}

/* What xfbench's report says of a run. */
struct load_result {
    double responses;      /* totals.responses */
    double errors;         /* totals.errors: failed requests of every kind */
    double connect_errors; /* errors.connect: refused, failed or timed-out connects */
    double connects;       /* totals.connects: TCP connections opened */
};

/* The number after "KEY": at its first place in xfbench's JSON (the totals and the error kinds
 * of the whole run come before the per-second timeline). */
static double
json_number(const char *json, const char *key)
{
    const char *k = h_fmt("\"%s\":", key), *at = strstr(json, k);

    cr_assert(ne(ptr, (void *)at, NULL), "no %s in xfbench's JSON:\n%s", k, json);
    return strtod(at + strlen(k), NULL);
}

/* Ends xfbench with SIGINT (it must still be running: the load spanned what the test did),
 * asserts that it exits 0 and returns its report's totals. */
static struct load_result
load_stop(struct h_proc *bench)
{
    struct load_result r;
    char *json;
    int code;

    cr_assert(h_proc_alive(bench), "xfbench ended (%d) before the test was over: see xfbench.log",
              bench->code);
    code = h_proc_stop(bench, SIGINT, 10000);
    cr_assert(eq(int, code, 0), "xfbench exited %d after SIGINT: see xfbench.log", code);
    json = h_read_file(h_path("run.json"), NULL);
    cr_assert(ne(ptr, json, NULL), "xfbench wrote no JSON report");
    r.responses = json_number(json, "responses");
    r.errors = json_number(json, "errors");
    r.connect_errors = json_number(json, "connect");
    r.connects = json_number(json, "connects");
    return r;
}

/* ------------------------------------------------------------------ listening sockets */

struct tcp_listener {
    unsigned long inode;
    unsigned long queue; /* rx_queue of a listening socket: connections not accepted yet */
};

/* The TCP sockets listening on 127.0.0.1:port, as /proc/net/tcp lists them (state 0A): up to
 * cap of them in out; returns how many there are. */
static size_t
tcp_listeners(int port, struct tcp_listener *out, size_t cap)
{
    FILE *f = fopen("/proc/net/tcp", "re");
    char line[512];
    size_t n = 0;

    cr_assert(ne(ptr, (void *)f, NULL), "/proc/net/tcp: %s", strerror(errno));
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long laddr, raddr, tx, rx, inode;
        unsigned lport, rport, st;

        /* sl: local rem st tx:rx tr:when retrnsmt uid timeout inode (the header line does not
         * parse) */
        if (sscanf(line, " %*u: %lx:%x %lx:%x %x %lx:%lx %*x:%*x %*x %*u %*u %lu", &laddr, &lport,
                   &raddr, &rport, &st, &tx, &rx, &inode) != 8)
            continue;
        if (st != 0x0A || lport != (unsigned)port || laddr != (unsigned long)htonl(INADDR_LOOPBACK))
            continue;
        if (n < cap) {
            out[n].inode = inode;
            out[n].queue = rx;
        }
        n++;
    }
    fclose(f);
    return n;
}

/* Whether process pid holds the socket of inode `ino` (/proc/PID/fd/N -> "socket:[INO]"). */
static bool
proc_holds_socket(pid_t pid, unsigned long ino)
{
    const char *dir_path = h_fmt("/proc/%d/fd", (int)pid);
    const char *want = h_fmt("socket:[%lu]", ino);
    DIR *dir = opendir(dir_path);
    struct dirent *e;
    bool found = false;

    cr_assert(ne(ptr, (void *)dir, NULL), "%s: %s", dir_path, strerror(errno));
    while (!found && (e = readdir(dir)) != NULL) {
        char target[64];
        ssize_t n;

        if (e->d_name[0] == '.')
            continue;
        n = readlinkat(dirfd(dir), e->d_name, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        found = strcmp(target, want) == 0;
    }
    closedir(dir);
    return found;
}

/* How many of the sockets listening on 127.0.0.1:port process pid holds. */
static size_t
listeners_held_by(pid_t pid, int port)
{
    struct tcp_listener l[HANDOVER_MAX_FDS];
    size_t n = tcp_listeners(port, l, HANDOVER_MAX_FDS), held = 0;

    cr_assert(le(sz, n, (size_t)HANDOVER_MAX_FDS), "%zu sockets listen on port %d", n, port);
    for (size_t i = 0; i < n; i++)
        held += proc_holds_socket(pid, l[i].inode);
    return held;
}

/*
 * Once the load has stopped, every socket listening on the proxy's port must have its accept
 * queue emptied by the process that now serves it: a socket that was handed over but that no
 * worker accepts from keeps the connections the kernel gave it. Polls until every queue is empty
 * (asserts it within H_IO_TIMEOUT_MS); asserts that at least one socket listens.
 */
static void
expect_accept_queues_drained(int port)
{
    uint64_t deadline = h_now_ms() + H_IO_TIMEOUT_MS;

    for (;;) {
        struct tcp_listener l[HANDOVER_MAX_FDS];
        size_t n = tcp_listeners(port, l, HANDOVER_MAX_FDS);
        unsigned long queued = 0;

        cr_assert(gt(sz, n, (size_t)0), "nothing listens on 127.0.0.1:%d", port);
        for (size_t i = 0; i < n && i < HANDOVER_MAX_FDS; i++)
            queued += l[i].queue;
        if (queued == 0)
            return;
        if (h_now_ms() >= deadline)
            cr_fatal("%lu connection(s) still wait in the accept queues of the %zu sockets "
                     "listening on port %d: a socket is not served",
                     queued, n, port);
        h_sleep_ms(20);
    }
}

/* A TCP socket listening on 127.0.0.1 at a free port (plain bind: no SO_REUSEPORT, so nobody
 * else can bind that port while it is open); the port in *port. */
static int
hold_port(int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    cr_assert(ne(int, fd, -1), "socket: %s", strerror(errno));
    cr_assert(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 16) == 0 &&
                  getsockname(fd, (struct sockaddr *)&sa, &len) == 0,
              "bind/listen on 127.0.0.1:0: %s", strerror(errno));
    *port = ntohs(sa.sin_port);
    return fd;
}

/* ------------------------------------------------------------------ a raw handover */

/* The test playing the new process: the admin connection that sent `takeover`, and what the old
 * process answered on it. */
struct handover {
    int fd;                    /* the admin connection; closing it abandons the handover */
    long pid;                  /* "ok: takeover pid PID" */
    size_t n_fds;              /* sockets received (SCM_RIGHTS) */
    int fds[HANDOVER_MAX_FDS]; /* owned: closed by the test */
    const char *state;         /* the state text (harness-owned, NUL-terminated) */
    size_t state_len;          /* "state BYTES" */
};

/*
 * Connects to p's admin socket, sends `takeover` as the connection's first command and reads
 * the whole answer: the line "ok: takeover pid PID fds N state BYTES", ceil(N / 250) bytes "."
 * carrying the N sockets, then BYTES bytes of state. Asserts that this is what arrives, exactly
 * (no byte more), within H_IO_TIMEOUT_MS, and that no socket was lost (MSG_CTRUNC).
 */
static void
handover_begin(const struct h_proxy *p, struct handover *h)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    size_t cap = 1u << 20, len = 0, head = 0, dots = 0, want_fds = 0;
    char *buf = h_alloc(cap + 1);
    uint64_t deadline = h_now_ms() + H_IO_TIMEOUT_MS;

    memset(h, 0, sizeof(*h));
    cr_assert(lt(sz, strlen(p->admin_socket), sizeof(sun.sun_path)));
    memcpy(sun.sun_path, p->admin_socket, strlen(p->admin_socket) + 1);
    h->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(ne(int, h->fd, -1), "socket: %s", strerror(errno));
    cr_assert(eq(int, connect(h->fd, (struct sockaddr *)&sun, sizeof(sun)), 0), "connect %s: %s",
              p->admin_socket, strerror(errno));
    cr_assert(eq(long, (long)send(h->fd, "takeover\n", 9, MSG_NOSIGNAL), 9L));
    for (;;) {
        union {
            char space[CMSG_SPACE(sizeof(int) * 253)]; /* the kernel's SCM_MAX_FD */
            struct cmsghdr align;
        } ctl;
        struct iovec iov = {.iov_base = buf + len, .iov_len = cap - len};
        struct msghdr msg = {.msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = ctl.space,
                             .msg_controllen = sizeof(ctl)};
        struct pollfd pfd = {.fd = h->fd, .events = POLLIN};
        long long left = (long long)deadline - (long long)h_now_ms();
        int truncated;
        ssize_t n;

        if (head == 0) {
            const char *nl = memchr(buf, '\n', len);

            if (nl != NULL) {
                head = (size_t)(nl - buf) + 1;
                cr_assert(eq(int,
                             sscanf(buf, "ok: takeover pid %ld fds %zu state %zu", &h->pid,
                                    &want_fds, &h->state_len),
                             3),
                          "takeover answered: %.*s", (int)(head - 1), buf);
                cr_assert(le(sz, want_fds, (size_t)HANDOVER_MAX_FDS), "%zu sockets announced",
                          want_fds);
                dots = (want_fds + 249) / 250;
                cr_assert(lt(sz, head + dots + h->state_len, cap), "a state of %zu bytes",
                          h->state_len);
            }
        }
        if (head != 0 && len >= head + dots + h->state_len && h->n_fds >= want_fds)
            break;
        cr_assert(gt(llong, left, 0LL),
                  "the answer to takeover was not complete after %d ms: %zu bytes and %zu "
                  "sockets so far",
                  H_IO_TIMEOUT_MS, len, h->n_fds);
        cr_assert(eq(int, poll(&pfd, 1, (int)left), 1),
                  "the answer to takeover was not complete after %d ms: %zu bytes and %zu "
                  "sockets so far",
                  H_IO_TIMEOUT_MS, len, h->n_fds);
        n = recvmsg(h->fd, &msg, MSG_CMSG_CLOEXEC);
        cr_assert(gt(long, (long)n, 0L), "the admin connection %s during the answer to takeover",
                  n == 0 ? "closed" : strerror(errno));
        truncated = msg.msg_flags & MSG_CTRUNC;
        cr_assert(eq(int, truncated, 0), "sockets were cut off (MSG_CTRUNC)");
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
            size_t k;

            if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                continue;
            k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            cr_assert(le(sz, h->n_fds + k, (size_t)HANDOVER_MAX_FDS), "too many sockets");
            memcpy(h->fds + h->n_fds, CMSG_DATA(cm), k * sizeof(int));
            h->n_fds += k;
        }
        len += (size_t)n;
    }
    cr_assert(eq(sz, h->n_fds, want_fds), "%zu sockets received, %zu announced", h->n_fds,
              want_fds);
    cr_assert(eq(sz, len, head + dots + h->state_len),
              "%zu bytes after the first line, %zu dots and %zu bytes of state announced",
              len - head, dots, h->state_len);
    for (size_t i = 0; i < dots; i++)
        cr_assert(eq(chr, buf[head + i], '.'), "byte %zu after the first line is not a dot", i);
    buf[len] = '\0';
    h->state = buf + head + dots;
}

/*
 * Asserts that fd, received from the old process, is one of its proxy listeners: a listening
 * TCP socket bound to 127.0.0.1 at p's port, and the very socket the old process holds (the same
 * inode among its descriptors), not a new one bound to the same port.
 */
static void
expect_proxy_listener(int fd, const struct h_proxy *p)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int type = 0, listening = 0;
    socklen_t ilen = sizeof(int);
    struct stat st;

    cr_assert(eq(int, getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &ilen), 0),
              "fd %d is not a socket: %s", fd, strerror(errno));
    cr_assert(eq(int, type, SOCK_STREAM), "fd %d: not a stream socket", fd);
    ilen = sizeof(int);
    cr_assert(eq(int, getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ilen), 0));
    cr_assert(eq(int, listening, 1), "fd %d does not listen", fd);
    cr_assert(eq(int, getsockname(fd, (struct sockaddr *)&sa, &len), 0), "getsockname: %s",
              strerror(errno));
    cr_assert(eq(int, sa.sin_family, AF_INET), "fd %d: not an IPv4 socket", fd);
    cr_assert(eq(int, ntohs(sa.sin_port), p->port), "fd %d listens on port %d, not the proxy's %d",
              fd, ntohs(sa.sin_port), p->port);
    cr_assert(eq(u32, ntohl(sa.sin_addr.s_addr), (uint32_t)INADDR_LOOPBACK),
              "fd %d is not bound to 127.0.0.1", fd);
    cr_assert(eq(int, fstat(fd, &st), 0));
    cr_assert(proc_holds_socket(p->proc->pid, (unsigned long)st.st_ino),
              "fd %d (socket inode %lu) is not a socket of the old process", fd,
              (unsigned long)st.st_ino);
}

/* The old process's refusal of a state change while pid `taker` takes over. */
static const char *
refusal(long taker)
{
    return h_fmt("error: a binary upgrade is under way: this process handed its state to "
                 "crossfade pid %ld, which takes over in a moment; run the command again then\n",
                 taker);
}

/* ------------------------------------------------------------------ the tests */

/*
 * The takeover under keep-alive load: with workers: 2, eight keep-alive connections send GETs
 * while a second crossfade takes over. Not one request fails; the old process exits 0; the load
 * goes on through the new one alone; and on the admin socket's path the new one answers -- its
 * pid in show version -- with the weight, the pin and the freeze set before, and the audit
 * trail of the old one.
 */
Test(takeover, under_keep_alive_load_no_request_fails_and_weight_pins_freeze_carry_over,
     .timeout = 90)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *y1 = h_upstream_start("y1", NULL);
    struct h_upstream *const ups[] = {x1, y1};
    struct h_proxy_opts o = {
        .x = {{x1->port}}, .y = {{y1->port}}, .split_extra = SPLIT, .extra_yaml = "workers: 2\n"};
    struct h_proxy *p = h_proxy_start(&o), *next;
    int adm = h_admin_connect(p);
    const char *freeze_before, *events, *line;
    struct h_proc *bench;
    struct load_result r;

    expect_reply(adm, "set weight 30", "ok: weight y 30.00 (was 0.00)\n");
    expect_reply(adm, "pin tester-7 y", "ok: pinned \"tester-7\" to y\n");
    cr_assert(eq(int, strncmp(h_admin_cmd(adm, "freeze on"), "ok: freeze on", 13), 0));
    freeze_before = freeze_state(adm);
    cr_assert(eq(int, strncmp(freeze_before, "freeze on since ", 16), 0), "%s", freeze_before);

    bench = load_start(p, LOAD_KEEP_ALIVE);
    cr_assert(wait_served_more(ups, 2, 500, H_IO_TIMEOUT_MS), "the load did not get going");

    next = takeover_spawn(p, "next", next_config(p, "next", &o, 0));
    takeover_wait(p, next);
    /* Only the new process is left: the load goes on through it. */
    cr_assert(wait_served_more(ups, 2, 1000, H_IO_TIMEOUT_MS),
              "the load did not go on after the old process exited");
    r = load_stop(bench);
    cr_assert(gt(dbl, r.responses, 1500.0), "too few responses: %.0f", r.responses);
    cr_assert(eq(dbl, r.errors, 0.0), "%.0f requests failed across the takeover (see run.json)",
              r.errors);
    expect_accept_queues_drained(p->port);

    /* The admin socket's path now leads to the new process, with the old one's state. */
    adm = h_admin_connect(next);
    cr_assert(eq(long, admin_pid(adm), (long)next->proc->pid),
              "show version on %s does not name the new process", next->admin_socket);
    expect_reply(adm, "show weight", "x 70.00\ny 30.00\n");
    cr_assert(ne(ptr, strstr(h_admin_cmd(adm, "show pins"), "pin tester-7 y\n"), NULL),
              "the pin was lost:\n%s", h_admin_cmd(adm, "show pins"));
    cr_assert(eq(str, (char *)freeze_state(adm), (char *)freeze_before),
              "the freeze was not kept as it was");
    events = h_admin_cmd(adm, "show events");
    cr_assert(ne(ptr, strstr(events, "\"set weight 30\" weight 0.00 -> 30.00"), NULL),
              "the old process's audit trail is not in the new one's:\n%s", events);
    /* The takeover itself is in the trail, naming both processes. */
    line = line_holding(events, "\"takeover\"");
    cr_assert(ne(ptr, (void *)line, NULL), "no takeover entry in show events:\n%s", events);
    cr_assert(has_field(line, h_fmt("%d", p->proc->pid)) &&
                  has_field(line, h_fmt("%d", next->proc->pid)),
              "the takeover entry does not name both pids: %s", line);
    /* The pin still routes, in the new process. */
    cr_assert(eq(str, (char *)h_served_by(h_connect(p->port), "tester-7"), "y1"));
    h_proxy_finish(next);
}

/*
 * The takeover under connection-per-request load: every request comes on a new TCP connection
 * (Connection: close), so connections keep arriving at the listening sockets while they change
 * hands. Not one connect is refused and not one request fails: the sockets never close, and
 * what the old process leaves in their queues the new one accepts.
 */
Test(takeover, under_connection_per_request_load_no_connect_is_refused_and_no_request_fails,
     .timeout = 90)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *y1 = h_upstream_start("y1", NULL);
    struct h_upstream *const ups[] = {x1, y1};
    struct h_proxy_opts o = {.x = {{x1->port}},
                             .y = {{y1->port}},
                             .weight = "30",
                             .split_extra = SPLIT,
                             .extra_yaml = "workers: 2\n"};
    struct h_proxy *p = h_proxy_start(&o), *next;
    struct h_proc *bench = load_start(p, LOAD_CONN_PER_REQ);
    struct load_result r;

    cr_assert(wait_served_more(ups, 2, 500, H_IO_TIMEOUT_MS), "the load did not get going");
    next = takeover_spawn(p, "next", next_config(p, "next", &o, 0));
    takeover_wait(p, next);
    cr_assert(wait_served_more(ups, 2, 1000, H_IO_TIMEOUT_MS),
              "the load did not go on after the old process exited");
    r = load_stop(bench);
    /* The load is what the test says: (about) one connection per response. */
    cr_assert(ge(dbl, r.connects, r.responses), "%.0f connects for %.0f responses", r.connects,
              r.responses);
    cr_assert(gt(dbl, r.responses, 1500.0), "too few responses: %.0f", r.responses);
    cr_assert(eq(dbl, r.connect_errors, 0.0),
              "%.0f connects were refused or failed across the takeover (see run.json)",
              r.connect_errors);
    cr_assert(eq(dbl, r.errors, 0.0), "%.0f requests failed across the takeover (see run.json)",
              r.errors);
    expect_accept_queues_drained(p->port);
    cr_assert(eq(long, admin_pid(h_admin_connect(next)), (long)next->proc->pid));
    h_proxy_finish(next);
}

/*
 * --takeover with nothing to take over exits 1 at once and says why, naming the admin socket:
 * when there is no socket file at all, and when a socket file is left there with nobody
 * listening on it (what a crossfade that was killed leaves behind).
 */
Test(takeover, with_no_crossfade_on_the_admin_socket_exits_1_naming_the_socket,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy_opts o = {.x = {{h_free_port()}}};
    const char *cfg = h_proxy_write_config("alone.yaml", &o, h_free_port());
    const char *sock = h_path("admin.sock"); /* the harness's admin.socket */
    const char *want =
        h_fmt("crossfade: --takeover: no crossfade answers on the admin socket %s (", sock);
    char *argv[] = {(char *)h_bin("crossfade"), "-c", (char *)cfg, "--takeover", NULL};

    for (int round = 0; round < 2; round++) {
        char *err = NULL;
        int code;

        if (round == 1) {
            /* A socket file nobody listens on: bound, then closed without unlink. */
            struct sockaddr_un sun = {.sun_family = AF_UNIX};
            int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

            cr_assert(lt(sz, strlen(sock), sizeof(sun.sun_path)));
            memcpy(sun.sun_path, sock, strlen(sock) + 1);
            cr_assert(ne(int, fd, -1));
            cr_assert(eq(int, bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0), "bind %s: %s",
                      sock, strerror(errno));
            close(fd);
        }
        code = h_run(argv, 10000, NULL, &err);
        cr_assert(eq(int, code, 1), "round %d: crossfade --takeover exited %d:\n%s", round, code,
                  err != NULL ? err : "");
        cr_assert(ne(ptr, err, NULL));
        cr_assert(ne(ptr, strstr(err, want), NULL), "round %d: stderr does not say \"%s...\":\n%s",
                  round, want, err);
    }
}

/*
 * A new process that fails after it asked -- its config has one more listener, on a port a
 * socket of the test holds, so its bind fails -- exits 1 with a "--takeover:" line, and the old
 * one serves on untouched: the connection-per-request load running meanwhile loses nothing, a
 * keep-alive connection opened before is still served, the admin socket is still the old
 * process's, which logged event=takeover_abandoned and takes state changes again.
 */
Test(takeover, a_new_process_that_fails_after_asking_exits_1_and_the_old_serves_on, .timeout = 60)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *y1 = h_upstream_start("y1", NULL);
    struct h_upstream *const ups[] = {x1, y1};
    struct h_proxy_opts o = {.x = {{x1->port}}, .y = {{y1->port}}, .extra_yaml = "workers: 2\n"};
    struct h_proxy *p = h_proxy_start(&o), *next;
    struct h_conn *kept = h_connect(p->port);
    const char *ol = p->proc->log_path, *line, *new_pid;
    struct h_proc *bench;
    struct load_result r;
    int held_port, held = hold_port(&held_port), code, adm;

    cr_assert(eq(str, (char *)h_served_by(kept, NULL), "x1"));
    bench = load_start(p, LOAD_CONN_PER_REQ);
    cr_assert(wait_served_more(ups, 2, 300, H_IO_TIMEOUT_MS), "the load did not get going");

    next = takeover_spawn(p, "next", next_config(p, "next", &o, held_port));
    new_pid = h_fmt("new_pid=%d", next->proc->pid);
    code = h_proc_wait(next->proc, 20000);
    cr_assert(eq(int, code, 1), "the new crossfade %s %d",
              code == -1 ? "still runs after" : "exited", code == -1 ? 20000 : code);
    line = h_log_line(next->proc->log_path, "crossfade: --takeover: ");
    cr_assert(ne(ptr, (void *)line, NULL), "no \"crossfade: --takeover: \" line in %s",
              next->proc->log_path);
    /* ... for the reason the test gave it: the listener it could not open. */
    cr_assert(ne(ptr, strstr(line, h_fmt("127.0.0.1:%d", held_port)), NULL),
              "the failure does not name the listener that could not be opened: %s", line);
    /* It failed after asking: the old process had handed its sockets and state to it. */
    expect_log(ol, "event=takeover_begin new_pid=", new_pid);
    cr_assert(h_log_wait(ol, "event=takeover_abandoned", H_IO_TIMEOUT_MS),
              "the old crossfade did not log event=takeover_abandoned");
    expect_log(ol, "event=takeover_abandoned", new_pid);
    cr_assert(eq(sz, h_log_count(ol, "event=taken_over"), (size_t)0),
              "the old crossfade stopped for a takeover that failed");

    /* The old process serves on, the load and the connection opened before included. */
    cr_assert(wait_served_more(ups, 2, 300, H_IO_TIMEOUT_MS),
              "the load stopped after the takeover failed");
    r = load_stop(bench);
    cr_assert(eq(dbl, r.connect_errors, 0.0), "%.0f connects were refused or failed",
              r.connect_errors);
    cr_assert(eq(dbl, r.errors, 0.0), "%.0f requests failed around the failed takeover", r.errors);
    cr_assert(eq(str, (char *)h_served_by(kept, NULL), "x1"),
              "the keep-alive connection opened before was not served");
    cr_assert(eq(str, (char *)h_served_by(h_connect(p->port), NULL), "x1"));
    cr_assert(h_proc_alive(p->proc), "the old crossfade exited (%d)", p->proc->code);

    /* Its admin socket is still its own, and takes changes again. */
    adm = h_admin_connect(p);
    cr_assert(eq(long, admin_pid(adm), (long)p->proc->pid),
              "show version does not name the old process any more");
    expect_reply(adm, "set weight 40", "ok: weight y 40.00 (was 0.00)\n");
    expect_reply(adm, "show weight", "x 60.00\ny 40.00\n");
    close(held);
    h_proxy_finish(p);
}

/*
 * The test plays the new process on a raw admin connection: `takeover` hands over listening
 * sockets -- the old process's own proxy listeners, every one of them -- and the state. Until
 * that connection goes, every state change on another connection is refused naming the test's
 * pid and changes nothing, read-only commands answer, requests are served, and `takeover done`
 * from that other connection is refused. Once it closes (without `takeover done`), the old
 * process logs event=takeover_abandoned and takes changes again.
 */
Test(takeover, a_raw_handover_refuses_changes_until_its_connection_closes, .timeout = 60)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *x2 = h_upstream_start("x2", NULL),
                      *y1 = h_upstream_start("y1", NULL);
    struct h_proxy_opts o = {
        .x = {{x1->port}}, .y = {{y1->port}}, .split_extra = SPLIT, .extra_yaml = "workers: 2\n"};
    struct h_proxy *p = h_proxy_start(&o);
    int adm = h_admin_connect(p);
    const char *no = refusal((long)getpid()), *x1_line, *pins;
    struct handover h;
    size_t listeners;
    const char *changes[] = {
        "set weight 40",
        "rollback",
        "promote",
        "ramp 50 over 30s",
        "ramp pause",
        "ramp resume",
        "ramp cancel",
        "pin k-2 x",
        "unpin tester-7",
        "freeze on",
        h_fmt("add node x %s", x2->addr),
        h_fmt("set node x/%s weight 3", x1->addr),
        h_fmt("drain node x/%s", x1->addr),
        h_fmt("enable node x/%s", x1->addr),
        h_fmt("del node y/%s force", y1->addr),
        "reload",
        "reexec",
    };

    expect_reply(adm, "set weight 30", "ok: weight y 30.00 (was 0.00)\n");
    expect_reply(adm, "pin tester-7 y", "ok: pinned \"tester-7\" to y\n");
    pins = h_admin_cmd(adm, "show pins");
    x1_line = h_admin_node_line(adm, "x", x1->addr);
    cr_assert(ne(ptr, (void *)x1_line, NULL));
    listeners = listeners_held_by(p->proc->pid, p->port);
    cr_assert(gt(sz, listeners, (size_t)0), "the old process holds no listener on its port");

    handover_begin(p, &h);
    cr_assert(eq(long, h.pid, (long)p->proc->pid), "the answer names pid %ld, not %d", h.pid,
              p->proc->pid);
    /* Every proxy listener of the old process, each the very socket it serves. */
    cr_assert(eq(sz, h.n_fds, listeners), "%zu sockets handed over; the old process listens on %zu",
              h.n_fds, listeners);
    for (size_t i = 0; i < h.n_fds; i++) {
        expect_proxy_listener(h.fds[i], p);
        close(h.fds[i]);
    }
    cr_assert(gt(sz, h.state_len, (size_t)0), "no state handed over");
    cr_assert(ne(ptr, strstr(h.state, "\nweight 30.00\n"), NULL),
              "the state handed over does not hold the weight:\n%s", h.state);
    cr_assert(ne(ptr, strstr(h.state, "\npin tester-7 y\n"), NULL),
              "the state handed over does not hold the pin:\n%s", h.state);
    expect_log(p->proc->log_path,
               "event=takeover_begin new_pid=", h_fmt("new_pid=%d", (int)getpid()));

    /* State changes are refused, naming the process that took the state (the test). */
    for (size_t i = 0; i < sizeof(changes) / sizeof(changes[0]); i++)
        expect_reply(adm, changes[i], no);
    /* ... and none of them happened. Read-only commands answer. */
    expect_reply(adm, "show weight", "x 70.00\ny 30.00\n");
    expect_reply(adm, "show pins", pins);
    cr_assert(eq(str, (char *)h_word(h_admin_node_line(adm, "x", x1->addr), H_NODE_STATE),
                 (char *)h_word(x1_line, H_NODE_STATE)),
              "x1's state changed:\n%s", h_admin_cmd(adm, "show nodes"));
    cr_assert(eq(ptr, (void *)h_admin_node_line(adm, "x", x2->addr), NULL), "a node was added:\n%s",
              h_admin_cmd(adm, "show nodes"));
    cr_assert(ne(ptr, (void *)h_admin_node_line(adm, "y", y1->addr), NULL),
              "a node was removed:\n%s", h_admin_cmd(adm, "show nodes"));
    cr_assert(eq(long, admin_pid(adm), (long)p->proc->pid));
    /* `takeover done` belongs to the connection that asked. */
    expect_reply(adm, "takeover done", "error: no takeover is under way on this connection\n");
    /* Requests are served meanwhile, with the state in force. */
    cr_assert(eq(str, (char *)h_served_by(h_connect(p->port), "tester-7"), "y1"));
    cr_assert(h_proc_alive(p->proc));

    /* The taker goes away without `takeover done`: the old process goes on as before. */
    close(h.fd);
    cr_assert(h_log_wait(p->proc->log_path, "event=takeover_abandoned", H_IO_TIMEOUT_MS),
              "no event=takeover_abandoned after the handover's connection closed");
    expect_log(p->proc->log_path, "event=takeover_abandoned", h_fmt("new_pid=%d", (int)getpid()));
    /* The refused `freeze on` changed nothing either (`freeze show` is checked only now: see
     * read_only_commands_answer_during_a_handover). */
    expect_reply(adm, "freeze show", "freeze off\n");
    expect_reply(adm, "set weight 40", "ok: weight y 40.00 (was 30.00)\n");
    cr_assert(eq(int, strncmp(h_admin_cmd(adm, "freeze on"), "ok: freeze on", 13), 0));
    cr_assert(eq(str, (char *)h_served_by(h_connect(p->port), "tester-7"), "y1"));
    cr_assert(eq(long, admin_pid(adm), (long)p->proc->pid));
    h_proxy_finish(p);
}

/*
 * While a handover is under way only changes are refused: every read-only command of the admin
 * socket answers as usual, `freeze show` included (it reads the freeze; `freeze on` and
 * `freeze off` change it).
 */
Test(takeover, read_only_commands_answer_during_a_handover, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *y1 = h_upstream_start("y1", NULL);
    struct h_proxy_opts o = {.x = {{x1->port}}, .y = {{y1->port}}, .split_extra = SPLIT};
    struct h_proxy *p = h_proxy_start(&o);
    int adm = h_admin_connect(p);
    const char *const reads[] = {
        "show weight", "show ramp",    "show pins",   "show nodes",
        "freeze show", "show stats",   "show events", "show state",
        "show config", "show version", "help",        "which header:X-Key=k1",
    };
    const char *refused = "";
    struct handover h;

    handover_begin(p, &h);
    for (size_t i = 0; i < h.n_fds; i++)
        close(h.fds[i]);
    /* The handover is under way: a change is refused... */
    expect_reply(adm, "set weight 40", refusal((long)getpid()));
    /* ... and every read answers (all are tried: the failure lists every one refused). */
    for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
        char *reply = h_admin_cmd(adm, reads[i]);

        if (strncmp(reply, "error:", 6) == 0)
            refused = h_fmt("%s  %s -> %s", refused, reads[i], reply);
    }
    cr_assert(eq(str, (char *)refused, ""),
              "read-only commands answered an error during the handover:\n%s", refused);
    expect_reply(adm, "freeze show", "freeze off\n");
    close(h.fd);
    cr_assert(h_log_wait(p->proc->log_path, "event=takeover_abandoned", H_IO_TIMEOUT_MS));
    h_proxy_finish(p);
}

/*
 * A second --takeover while a handover is under way (the test holds one on a raw connection) is
 * refused: that process exits 1 naming the takeover under way, the first handover stays under
 * way (changes still refused, naming the first taker), and the admin socket stays the old
 * process's. Once the first taker goes, changes are taken again.
 */
Test(takeover, a_second_takeover_during_a_handover_is_refused_and_changes_nothing,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *y1 = h_upstream_start("y1", NULL);
    struct h_proxy_opts o = {.x = {{x1->port}}, .y = {{y1->port}}};
    struct h_proxy *p = h_proxy_start(&o), *second;
    int adm = h_admin_connect(p), code;
    struct handover h;
    const char *line;

    handover_begin(p, &h);
    for (size_t i = 0; i < h.n_fds; i++)
        close(h.fds[i]);
    second = takeover_spawn(p, "second", next_config(p, "second", &o, 0));
    code = h_proc_wait(second->proc, 20000);
    cr_assert(eq(int, code, 1), "the second crossfade %s %d",
              code == -1 ? "still runs after" : "exited", code == -1 ? 20000 : code);
    line = h_log_line(second->proc->log_path, "crossfade: --takeover: ");
    cr_assert(ne(ptr, (void *)line, NULL), "no \"crossfade: --takeover: \" line in %s",
              second->proc->log_path);
    cr_assert(has_field(line, h_fmt("%d", (int)getpid())),
              "the refusal does not name the takeover under way (pid %d): %s", (int)getpid(), line);
    /* The first handover is still the one under way. */
    expect_reply(adm, "set weight 40", refusal((long)getpid()));
    cr_assert(eq(long, admin_pid(h_admin_connect(p)), (long)p->proc->pid),
              "the admin socket does not lead to the old process any more");
    cr_assert(eq(str, (char *)h_served_by(h_connect(p->port), NULL), "x1"));

    close(h.fd);
    cr_assert(h_log_wait(p->proc->log_path, "event=takeover_abandoned", H_IO_TIMEOUT_MS),
              "no event=takeover_abandoned after the handover's connection closed");
    expect_reply(adm, "set weight 40", "ok: weight y 40.00 (was 0.00)\n");
    h_proxy_finish(p);
}

/*
 * The new process's worker count may differ from the old one's: 2 workers taken over by 3, then
 * those 3 by 1 (a process that took over can itself be taken over), under connection-per-request
 * load. No connect is refused and no request fails; and once the load stops, every socket on the
 * port has its accept queue emptied -- the one worker left serves every socket it was handed,
 * not only one per worker.
 */
Test(takeover, a_new_process_with_more_or_fewer_workers_takes_over_under_load, .timeout = 120)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *y1 = h_upstream_start("y1", NULL);
    struct h_upstream *const ups[] = {x1, y1};
    struct h_proxy_opts o = {.x = {{x1->port}},
                             .y = {{y1->port}},
                             .weight = "30",
                             .split_extra = SPLIT,
                             .extra_yaml = "workers: 2\n"};
    struct h_proxy *p = h_proxy_start(&o), *three, *one;
    struct h_proc *bench;
    struct load_result r;
    int adm;

    cr_assert(
        ne(ptr, strstr(h_admin_cmd(h_admin_connect(p), "show version"), "\nworkers 2\n"), NULL));
    bench = load_start(p, LOAD_CONN_PER_REQ);
    cr_assert(wait_served_more(ups, 2, 500, H_IO_TIMEOUT_MS), "the load did not get going");

    o.extra_yaml = "workers: 3\n";
    three = takeover_spawn(p, "three", next_config(p, "three", &o, 0));
    takeover_wait(p, three);
    adm = h_admin_connect(three);
    cr_assert(eq(long, admin_pid(adm), (long)three->proc->pid));
    cr_assert(ne(ptr, strstr(h_admin_cmd(adm, "show version"), "\nworkers 3\n"), NULL),
              "the process with workers: 3 does not say so:\n%s", h_admin_cmd(adm, "show version"));
    cr_assert(wait_served_more(ups, 2, 1000, H_IO_TIMEOUT_MS),
              "the load did not go on through 3 workers");

    o.extra_yaml = "workers: 1\n";
    one = takeover_spawn(three, "one", next_config(three, "one", &o, 0));
    takeover_wait(three, one);
    adm = h_admin_connect(one);
    cr_assert(eq(long, admin_pid(adm), (long)one->proc->pid));
    cr_assert(ne(ptr, strstr(h_admin_cmd(adm, "show version"), "\nworkers 1\n"), NULL),
              "the process with workers: 1 does not say so:\n%s", h_admin_cmd(adm, "show version"));
    /* Long enough for a connection stuck in a socket nobody serves to time out (--timeout 3s at
     * 1500 requests/s). */
    cr_assert(wait_served_more(ups, 2, 6000, 20000), "the load did not go on through 1 worker");

    r = load_stop(bench);
    cr_assert(ge(dbl, r.connects, r.responses), "%.0f connects for %.0f responses", r.connects,
              r.responses);
    cr_assert(eq(dbl, r.connect_errors, 0.0), "%.0f connects were refused or failed",
              r.connect_errors);
    cr_assert(eq(dbl, r.errors, 0.0), "%.0f requests failed across the takeovers (see run.json)",
              r.errors);
    expect_accept_queues_drained(p->port);
    h_proxy_finish(one);
}

/* "ends in 25s at 2026-12-05T12:29:13Z" of `show ramp`: the end time, in seconds since the
 * epoch. */
static time_t
ramp_end(const char *show_ramp)
{
    const char *line = line_starting(show_ramp, "ends "), *at;
    struct tm tm;

    cr_assert(ne(ptr, (void *)line, NULL), "no ends line in show ramp:\n%s", show_ramp);
    at = strstr(line, " at ");
    cr_assert(ne(ptr, (void *)at, NULL), "no time in: %s", line);
    memset(&tm, 0, sizeof(tm));
    cr_assert(ne(ptr, strptime(at + 4, "%Y-%m-%dT%H:%M:%SZ", &tm), NULL), "no time in: %s", line);
    return timegm(&tm);
}

/*
 * A ramp in progress goes on in the new process: `ramp 50 over 30s` from 30 (a step of 1 every
 * 1.5 s) has taken two steps when the takeover starts; the new process's `show ramp` says it
 * runs from 30 to 50, at a weight between the two no lower than before, ending when it would
 * have ended (within a second: not restarted), and its weight goes on rising there.
 */
Test(takeover, a_ramp_in_progress_goes_on_in_the_new_process, .timeout = 60)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *y1 = h_upstream_start("y1", NULL);
    struct h_proxy_opts o = {.x = {{x1->port}}, .y = {{y1->port}}};
    struct h_proxy *p = h_proxy_start(&o), *next;
    int adm = h_admin_connect(p);
    const char *before, *after, *reply;
    double w_before, w_after;
    long long shift;

    expect_reply(adm, "set weight 30", "ok: weight y 30.00 (was 0.00)\n");
    reply = h_admin_cmd(adm, "ramp 50 over 30s");
    cr_assert(eq(int, strncmp(reply, "ok: ramping y from 30.00 to 50.00 over 30s", 42), 0),
              "ramp answered: %s", reply);
    cr_assert(wait_y_weight_at_least(adm, 32.0, 10000), "the ramp did not take two steps in 10 s");
    w_before = admin_y_weight(adm);
    before = h_admin_cmd(adm, "show ramp");

    next = takeover_spawn(p, "next", next_config(p, "next", &o, 0));
    takeover_wait(p, next);
    adm = h_admin_connect(next);
    cr_assert(eq(long, admin_pid(adm), (long)next->proc->pid));
    after = h_admin_cmd(adm, "show ramp");
    cr_assert(eq(int, strncmp(after, "ramp running\n", 13), 0),
              "the ramp does not run in the new process:\n%s", after);
    cr_assert(ne(ptr, (void *)line_starting(after, "from 30.00"), NULL), "%s", after);
    cr_assert(ne(ptr, (void *)line_starting(after, "to 50.00"), NULL), "%s", after);
    w_after = admin_y_weight(adm);
    cr_assert(ge(dbl, w_after, w_before), "the weight went back from %.2f to %.2f", w_before,
              w_after);
    cr_assert(lt(dbl, w_after, 50.0), "the ramp ended at once: weight %.2f", w_after);
    /* The same schedule: the end did not move (a restarted ramp would end 3 s later or more). */
    shift = (long long)ramp_end(after) - (long long)ramp_end(before);
    cr_assert(le(llong, llabs(shift), 1LL),
              "the ramp's end moved by %lld s in the new process:\nbefore:\n%s\nafter:\n%s", shift,
              before, after);
    /* And it goes on there: the next step within 5 s (steps are 1.5 s apart). */
    cr_assert(wait_y_weight_at_least(adm, w_after + 1.0, 5000),
              "the ramp took no step in the new process in 5 s (weight %.2f):\n%s", w_after,
              h_admin_cmd(adm, "show ramp"));
    expect_log(next->proc->log_path, "event=ramp_step", NULL);
    h_proxy_finish(next);
}

/*
 * What the old process does with its own connections once taken over: a request in flight on
 * it finishes there (answered by the node, after the takeover) and its connection then closes;
 * an idle keep-alive connection is closed without a byte; the old process exits 0 only after
 * that; new connections meanwhile are served by the new process. shutdown is 20 s here, so the
 * 3 s request finishes well within it.
 */
Test(takeover, the_old_process_finishes_its_requests_in_flight_and_closes_idle_connections,
     .timeout = 60)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *y1 = h_upstream_start("y1", NULL);
    struct h_proxy_opts o = {.x = {{x1->port}}, .y = {{y1->port}}, .shutdown_ms = 20000};
    struct h_proxy *p = h_proxy_start(&o), *next;
    struct h_conn *idle = h_connect(p->port), *busy = h_connect(p->port);
    struct h_msg m;
    uint64_t conns, reqs;
    int adm;

    cr_assert(eq(str, (char *)h_served_by(idle, NULL), "x1"));
    h_upstream_counters(x1, &conns, &reqs);
    cr_assert(eq(int, h_sendf(busy, "GET /delay/3000 HTTP/1.1\r\nHost: %s\r\n\r\n", H_HOST), 0));
    cr_assert(h_upstream_wait_requests(x1, reqs + 1, H_IO_TIMEOUT_MS),
              "the slow request did not reach x1");

    next = takeover_spawn(p, "next", next_config(p, "next", &o, 0));
    cr_assert(h_log_wait(p->proc->log_path, "event=taken_over", H_IO_TIMEOUT_MS),
              "the old crossfade was not taken over");
    /* The slow request is still in flight in the old process, which waits for it. */
    cr_assert(eq(int, h_conn_wait(busy, 0), H_OPEN),
              "the slow request was answered before the takeover: the test proves nothing");
    cr_assert(h_proc_alive(p->proc), "the old crossfade exited with a request in flight (%d)",
              p->proc->code);

    /* A new connection goes to the new process, which counts it (its stats start at 0). The old
     * one stopped accepting as it answered `takeover done`, before the new one logged
     * takeover_complete and answered on the admin socket. */
    cr_assert(h_log_wait(next->proc->log_path, "event=takeover_complete", H_IO_TIMEOUT_MS));
    adm = h_admin_connect(next);
    cr_assert(eq(long, admin_pid(adm), (long)next->proc->pid));
    cr_assert(eq(str, (char *)h_served_by(h_connect(p->port), NULL), "x1"));
    h_assert_stat(adm, "x requests", NULL, 1);

    /* The idle connection is closed by the old process, with nothing sent. */
    cr_assert(eq(int, h_conn_wait(idle, 5000), H_CLOSED),
              "the idle keep-alive connection was not closed within 5 s of the takeover");
    cr_assert(eq(sz, h_pending(idle), (size_t)0), "bytes came on the idle connection");

    /* The request in flight is answered by the node, then its connection closes. */
    cr_assert(eq(int, h_read_response_ex(busy, &m, 0, 10000, NULL, NULL), 0),
              "the request in flight failed: %s", m.error);
    cr_assert(eq(int, m.status, 200), "the request in flight: status %d", m.status);
    cr_assert(eq(str, (char *)h_header(&m, "X-Upstream"), "x1"));
    cr_assert(eq(int, h_conn_wait(busy, 5000), H_CLOSED),
              "the old process left the connection open after its last response");

    takeover_wait(p, next);
    h_proxy_finish(next);
}

/* ------------------------------------------------------------------ reexec */

/* `reexec` answers once the new process took over: start-up and first checks come first. */
#define REEXEC_REPLY_MS 30000

/*
 * Asserts that `reply` is reexec's success for the old process `old`: "ok: pid NEW (EXE) took
 * over; pid OLD finishes its connections and exits", with EXE the binary old runs. Returns NEW.
 */
static long
reexec_new_pid(const char *reply, const struct h_proxy *old, const char *exe)
{
    long pid;
    const char *want;

    cr_assert(eq(int, strncmp(reply, "ok: pid ", 8), 0), "reexec answered: %s", reply);
    pid = strtol(reply + 8, NULL, 10);
    cr_assert(gt(long, pid, 0L), "reexec answered: %s", reply);
    cr_assert(ne(long, pid, (long)old->proc->pid), "reexec names the old pid: %s", reply);
    want = h_fmt("ok: pid %ld (%s) took over; pid %d finishes its connections and exits\n", pid,
                 exe, old->proc->pid);
    cr_assert(eq(str, (char *)reply, (char *)want), "reexec answered:\n%s\nexpected:\n%s", reply,
              want);
    return pid;
}

/*
 * After a successful reexec: the old process exits 0 within its shutdown time, and the new one,
 * its orphan, comes to the test (a subreaper) alive. Returns the new one as a proxy on old's
 * port and admin socket, registered with the harness (stopped at teardown).
 */
static struct h_proxy *
reexec_adopt(struct h_proxy *old, long pid)
{
    struct h_proxy *next = h_alloc(sizeof(*next));
    int code = h_proc_wait(old->proc, (int)(old->shutdown_ms + TAKEOVER_SLACK_MS));

    cr_assert(eq(int, code, 0), "the old crossfade exited with %d after the reexec (-1: runs on)",
              code);
    *next = *old;
    next->proc = h_adopt("reexec", (pid_t)pid, old->proc->log_path);
    cr_assert(h_proc_alive(next->proc), "the new crossfade (pid %ld) is gone: see %s", pid,
              old->proc->log_path);
    return next;
}

/* The binary a process runs (/proc/PID/exe). */
static const char *
exe_of(long pid)
{
    char exe[PATH_MAX];
    ssize_t n = readlink(h_fmt("/proc/%ld/exe", pid), exe, sizeof(exe) - 1);

    cr_assert(gt(long, (long)n, 0L), "readlink /proc/%ld/exe: %s", pid, strerror(errno));
    return h_fmt("%.*s", (int)n, exe);
}

/* Writes an executable file at path (0755). */
static void
install_binary(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "we");

    cr_assert(ne(ptr, (void *)f, NULL), "%s: %s", path, strerror(errno));
    cr_assert(eq(sz, fwrite(data, 1, len, f), len));
    cr_assert(eq(int, fclose(f), 0));
    cr_assert(eq(int, chmod(path, 0755), 0));
}

/*
 * Starts crossfade as `o` says, run from a copy of the binary installed at NAME in the scratch
 * directory (o->binary is set to it), so that the test may replace or remove the file; returns
 * the proxy, and the binary's bytes in *bin and *len for the test to install again.
 */
static struct h_proxy *
start_from_copy(struct h_proxy_opts *o, const char *name, const char **bin, size_t *len)
{
    struct h_proxy *p;

    *bin = h_read_file(h_bin("crossfade"), len);
    cr_assert(ne(ptr, (void *)*bin, NULL));
    o->binary = h_path(name);
    install_binary(o->binary, *bin, *len);
    p = h_proxy_start(o);
    cr_assert(eq(str, (char *)exe_of(p->proc->pid), (char *)o->binary));
    return p;
}

/* Whether the process is gone or a zombie. */
static bool
proc_gone(long pid)
{
    const char *stat = h_read_file(h_fmt("/proc/%ld/stat", pid), NULL);
    const char *rp = stat != NULL ? strrchr(stat, ')') : NULL;

    return rp == NULL || rp[1] == '\0' || rp[2] == 'Z';
}

/*
 * `reexec` (`xfctl reexec`) under keep-alive load with workers: 2: the crossfade binary at the
 * running one's path is started with --takeover by crossfade itself; the reply names both pids
 * once the new one took over; not one request fails; the old one exits 0; the new one answers
 * on the admin socket with the weight, pins and freeze of the old one, and the audit trail.
 */
Test(takeover, reexec_under_load_starts_the_installed_binary_which_takes_over, .timeout = 90)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *y1 = h_upstream_start("y1", NULL);
    struct h_upstream *const ups[] = {x1, y1};
    struct h_proxy_opts o = {
        .x = {{x1->port}}, .y = {{y1->port}}, .split_extra = SPLIT, .extra_yaml = "workers: 2\n"};
    struct h_proxy *p = h_proxy_start(&o), *next;
    int adm = h_admin_connect(p);
    const char *freeze_before, *exe = exe_of(p->proc->pid);
    struct h_proc *bench;
    struct load_result r;
    long pid;

    expect_reply(adm, "set weight 30", "ok: weight y 30.00 (was 0.00)\n");
    expect_reply(adm, "pin tester-7 y", "ok: pinned \"tester-7\" to y\n");
    cr_assert(eq(int, strncmp(h_admin_cmd(adm, "freeze on"), "ok: freeze on", 13), 0));
    freeze_before = freeze_state(adm);

    bench = load_start(p, LOAD_KEEP_ALIVE);
    cr_assert(wait_served_more(ups, 2, 500, H_IO_TIMEOUT_MS), "the load did not get going");
    h_admin_send(adm, "reexec");
    pid = reexec_new_pid(h_admin_reply(adm, REEXEC_REPLY_MS), p, exe);
    next = reexec_adopt(p, pid);
    cr_assert(wait_served_more(ups, 2, 1000, H_IO_TIMEOUT_MS),
              "the load did not go on after the old process exited");
    r = load_stop(bench);
    cr_assert(eq(dbl, r.errors, 0.0), "%.0f requests failed across the reexec (see run.json)",
              r.errors);

    /* The new process, the same binary, runs with --takeover on the same file. */
    cr_assert(
        ne(ptr, strstr(h_read_file(h_fmt("/proc/%ld/cmdline", pid), NULL), "crossfade"), NULL));
    adm = h_admin_connect(next);
    cr_assert(eq(long, admin_pid(adm), pid), "show version does not name the new process");
    expect_reply(adm, "show weight", "x 70.00\ny 30.00\n");
    cr_assert(ne(ptr, strstr(h_admin_cmd(adm, "show pins"), "pin tester-7 y\n"), NULL),
              "the pin was lost");
    cr_assert(eq(str, (char *)freeze_state(adm), (char *)freeze_before));
    cr_assert(ne(ptr, strstr(h_admin_cmd(adm, "show events"), "\"set weight 30\""), NULL),
              "the audit trail was lost");
    expect_log(p->proc->log_path, "event=reexec_started", h_fmt("pid=%ld", pid));
    expect_log(p->proc->log_path, "event=reexec result=ok", h_fmt("pid=%ld", pid));
    cr_assert(eq(str, (char *)h_served_by(h_connect(p->port), "tester-7"), "y1"));
    /* And it serves on by itself: a second reexec from it works the same way. */
    h_admin_send(adm, "reexec");
    pid = reexec_new_pid(h_admin_reply(adm, REEXEC_REPLY_MS), next, exe);
    next = reexec_adopt(next, pid);
    adm = h_admin_connect(next);
    cr_assert(eq(long, admin_pid(adm), pid));
    expect_reply(adm, "show weight", "x 70.00\ny 30.00\n");
    h_proxy_finish(next);
}

/*
 * A binary upgrade hands the TLS ticket secret over with the sockets: a TLS 1.3 session the old
 * process gave resumes on the new one (no full handshake for every client at each upgrade), and
 * the new one counts it in show stats.
 */
Test(takeover, a_tls_session_of_the_old_process_resumes_on_the_new_one, .timeout = 60)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_proxy_opts o = {.x = {{x1->port}}};
    struct ht_opts tls = {.sni = "api.test", .min_version = TLS1_3_VERSION};
    struct ht_proxy *tp;
    struct ht_result first, again;
    struct h_proxy *next;
    const char *stats;
    long pid;
    int adm;

    ht_certs_make("ca ca 'Test CA'\n"
                  "leaf api ca /CN=api.test \"$ec\" \"$srv\nsubjectAltName = DNS:api.test\" 1\n");
    tp = ht_proxy_start("crossfade", &(struct ht_listen){.certs = {ht_made("api")}}, &o);
    first = ht_served(tp->tls_port, &tls, "before the reexec");
    cr_assert(ne(ptr, first.session, NULL), "the old process gave no session");
    h_admin_send(tp->adm, "reexec");
    pid = reexec_new_pid(h_admin_reply(tp->adm, REEXEC_REPLY_MS), tp->p, exe_of(tp->p->proc->pid));
    next = reexec_adopt(tp->p, pid);
    tls.session = first.session;
    again = ht_served(tp->tls_port, &tls, "after the reexec");
    cr_assert(again.reused, "the session of the old process did not resume on the new one");
    adm = h_admin_connect(next);
    cr_assert(eq(long, admin_pid(adm), pid), "show version does not name the new process");
    stats = h_admin_cmd(adm, "show stats");
    cr_assert(ne(ptr, strstr(stats, "tls_handshakes completed=1 resumed=1 failed=0\n"), NULL),
              "the new process does not count one resumed handshake:\n%s", stats);
    h_proxy_finish(next);
}

/*
 * A file that became invalid since the start: the new process exits 2 at once, and `reexec`
 * answers with its error as `crossfade -t` prints it (FILE:LINE:COL), the new process's pid and
 * status. The old one goes on serving and takes changes (no handover is left hanging).
 */
Test(takeover, reexec_with_an_invalid_file_answers_the_error_and_the_old_serves_on, .timeout = 60)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *y1 = h_upstream_start("y1", NULL);
    struct h_proxy_opts o = {.x = {{x1->port}}, .y = {{y1->port}}, .split_extra = SPLIT};
    struct h_proxy *p = h_proxy_start(&o);
    int adm = h_admin_connect(p);
    const char *text = h_read_file(p->cfg_path, NULL), *reply, *want_err, *bad;
    char *err = NULL;
    char *argv[] = {(char *)h_bin("crossfade"), "-t", "-c", NULL, NULL};

    cr_assert(ne(ptr, (void *)text, NULL));
    bad = h_write_file("crossfade.yaml", "%sbogus_key: 1\n", text);
    argv[3] = (char *)bad;
    cr_assert(eq(int, h_run(argv, H_IO_TIMEOUT_MS, NULL, &err), 2), "crossfade -t accepts it");
    want_err = h_fmt("%.*s", (int)strcspn(err, "\n"), err);
    cr_assert(ne(ptr, strstr(want_err, "bogus_key"), NULL), "crossfade -t said: %s", err);

    reply = h_admin_cmd(adm, "reexec");
    cr_assert(eq(int, strncmp(reply, "error: the new process (pid ", 28), 0), "%s", reply);
    cr_assert(ne(ptr, strstr(reply, h_fmt(") exited with status 2: %s;", want_err)), NULL),
              "the reply does not carry crossfade -t's error (%s):\n%s", want_err, reply);
    cr_assert(ne(ptr, strstr(reply, "this process goes on serving\n"), NULL), "%s", reply);
    expect_log(p->proc->log_path, "event=reexec result=failed", NULL);

    cr_assert(eq(long, admin_pid(adm), (long)p->proc->pid));
    cr_assert(eq(str, (char *)h_served_by(h_connect(p->port), NULL), "x1"));
    expect_reply(adm, "set weight 20", "ok: weight y 20.00 (was 0.00)\n");
    /* Fixed, it works. */
    h_write_file("crossfade.yaml", "%s", text);
    h_admin_send(adm, "reexec");
    h_proxy_finish(reexec_adopt(
        p, reexec_new_pid(h_admin_reply(adm, REEXEC_REPLY_MS), p, exe_of(p->proc->pid))));
}

/*
 * The binary is the one installed at the running one's path, read at start: removed, `reexec`
 * says it cannot run it and nothing changes; installed again (a new file moved over the path, as
 * `install` does, while the running one's file is deleted), that new file is what runs.
 */
Test(takeover, reexec_runs_the_file_installed_at_the_path_and_says_when_there_is_none,
     .timeout = 60)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *y1 = h_upstream_start("y1", NULL);
    const char *staged = h_path("crossfade-staged"), *bin, *reply, *copy;
    size_t len = 0;
    struct h_proxy_opts o = {.x = {{x1->port}}, .y = {{y1->port}}};
    struct h_proxy *p = start_from_copy(&o, "crossfade-installed", &bin, &len);
    int adm = h_admin_connect(p);
    long pid;

    copy = o.binary;

    cr_assert(eq(int, unlink(copy), 0));
    reply = h_admin_cmd(adm, "reexec");
    cr_assert(eq(str, (char *)reply,
                 h_fmt("error: cannot run %s: No such file or directory; this process goes on "
                       "serving\n",
                       copy)));
    cr_assert(eq(long, admin_pid(adm), (long)p->proc->pid));
    cr_assert(eq(str, (char *)h_served_by(h_connect(p->port), NULL), "x1"));

    /* A new file at the path: that is what runs. */
    install_binary(staged, bin, len);
    cr_assert(eq(int, rename(staged, copy), 0));
    h_admin_send(adm, "reexec");
    pid = reexec_new_pid(h_admin_reply(adm, REEXEC_REPLY_MS), p, copy);
    cr_assert(eq(str, (char *)exe_of(pid), (char *)copy));
    h_proxy_finish(reexec_adopt(p, pid));
}

/*
 * One reexec at a time: a second one while the first one's process starts is refused naming
 * it. A crossfade told to stop (SIGTERM) meanwhile answers the first one that it failed, stops
 * the process it started (which has not accepted anything), and exits 0. The binary here is a
 * script that never takes over.
 */
Test(takeover, a_second_reexec_is_refused_and_a_stop_ends_the_one_under_way, .timeout = 60)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    const char *staged = h_path("crossfade-staged"), *script = "#!/bin/sh\nexec sleep 30\n", *bin;
    size_t len = 0;
    struct h_proxy_opts o = {.x = {{x1->port}}};
    struct h_proxy *p = start_from_copy(&o, "crossfade-installed", &bin, &len);
    int adm = h_admin_connect(p), adm2 = h_admin_connect(p);
    long pid;

    install_binary(staged, script, strlen(script));
    cr_assert(eq(int, rename(staged, o.binary), 0));

    h_admin_send(adm, "reexec");
    cr_assert(h_log_wait(p->proc->log_path, "event=reexec_started", H_IO_TIMEOUT_MS));
    pid = strtol(strstr(h_log_line(p->proc->log_path, "event=reexec_started"), " pid=") + 5, NULL,
                 10);
    cr_assert(gt(long, pid, 0L));
    expect_reply(adm2, "reexec", h_fmt("error: a reexec is under way already (pid %ld)\n", pid));
    /* It waits; requests are served meanwhile. */
    cr_assert(eq(int, poll(&(struct pollfd){.fd = adm, .events = POLLIN}, 1, 300), 0),
              "reexec answered before its process took over or failed");
    cr_assert(eq(str, (char *)h_served_by(h_connect(p->port), NULL), "x1"));

    cr_assert(eq(int, kill(p->proc->pid, SIGTERM), 0));
    cr_assert(eq(str, (char *)h_admin_reply(adm, H_IO_TIMEOUT_MS),
                 h_fmt("error: this crossfade is stopping: the new process (pid %ld) cannot take "
                       "over\n",
                       pid)));
    cr_assert(eq(int, h_proc_wait(p->proc, (int)p->shutdown_ms + 5000), 0));
    for (uint64_t until = h_now_ms() + H_IO_TIMEOUT_MS; !proc_gone(pid);) {
        cr_assert(lt(u64, h_now_ms(), until), "pid %ld still runs after its parent stopped", pid);
        h_sleep_ms(20);
    }
}
