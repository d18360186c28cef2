/* admin/xfctl.c -- bin/xfctl: sends admin commands to crossfade's admin socket (plain libc). */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin/adm.h"
#include "common/xf.h"

#define XFCTL_DEFAULT_SOCKET "/run/crossfade/admin.sock"
#define XFCTL_LINE_MAX       4096 /* the server's limit on a command line */
#define XFCTL_REPLY_MAX      (16u * 1024 * 1024)
#define XFCTL_TIMEOUT_MS     60000 /* for the whole reply to a command */
/* `reexec` answers once the new process took over: its start-up, its first health checks, and
 * the handover (each under a deadline in crossfade) come first. */
#define XFCTL_REEXEC_TIMEOUT_MS 150000
#define XFCTL_BUSY_RETRY_MS     5000 /* how long a command is retried while every slot is taken */
#define XFCTL_BUSY_REPLY        "error: too many admin connections"

/* Exit statuses. */
enum xfctl_exit {
    XFCTL_OK = 0,       /* the reply was a success */
    XFCTL_ERROR = 1,    /* the reply starts with "error:" */
    XFCTL_NO_SERVER = 2 /* cannot connect, the connection broke, or bad usage */
};

/* The connection and what was received past the last reply. */
struct xfctl_conn {
    int fd;
    const char *path; /* borrowed */
    char *buf;        /* owned */
    size_t len, cap;
    int timeout_ms; /* for the reply to the command sent last */
};

static void
xfctl_usage(FILE *f)
{
    fprintf(f, "usage: xfctl [-s SOCKET] [-j] [-w SECONDS] [COMMAND...]\n"
               "\n"
               "Sends one command to crossfade's admin socket and prints the reply.\n"
               "Without a command it reads commands from standard input, one per line\n"
               "(with a prompt when that is a terminal); quit or end of input leaves.\n"
               "\"xfctl watch\" prints the changes as they happen until interrupted.\n"
               "\n"
               "  -s, --socket PATH  the admin socket (default: $CROSSFADE_SOCKET, else\n"
               "                     " XFCTL_DEFAULT_SOCKET ")\n"
               "  -j, --json         ask for JSON (appends \"json\" to each command)\n"
               "  -w, --wait SECONDS wait up to SECONDS for crossfade to answer and to have\n"
               "                     finished starting (its first health checks) before the\n"
               "                     command: for scripts that have just started it\n"
               "  -h, --help         show this help and exit\n"
               "  -V, --version      show the version and exit\n"
               "\n"
               "\"xfctl report --html FILE\" writes the rollout report as one HTML page.\n"
               "Examples: xfctl show weight; xfctl set weight 25; xfctl rollback; xfctl watch\n"
               "\n"
               "Exit status: 0 success, 1 the reply was an error (printed on stderr),\n"
               "2 no connection to crossfade (or bad usage, or still starting after -w).\n");
}

/* Connects; `quiet`: no message for a socket that is not there (yet). Returns 0, or -1 with
 * errno. */
static int
xfctl_connect(struct xfctl_conn *c, const char *path, bool quiet)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};

    c->path = path;
    c->fd = -1;
    if (strlen(path) == 0 || strlen(path) >= sizeof(sun.sun_path)) {
        fprintf(stderr, "xfctl: cannot connect to %s: the path must be 1 to %zu bytes\n", path,
                sizeof(sun.sun_path) - 1);
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd == -1 || connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
        int e = errno;

        if (!quiet || (e != ENOENT && e != ECONNREFUSED))
            fprintf(stderr, "xfctl: cannot connect to %s: %s%s\n", path, strerror(e),
                    e == ENOENT || e == ECONNREFUSED
                        ? " (is crossfade running? -s or $CROSSFADE_SOCKET name another socket)"
                        : "");
        if (c->fd != -1)
            close(c->fd);
        c->fd = -1;
        errno = e;
        return -1;
    }
    return 0;
}

static int
xfctl_send_all(struct xfctl_conn *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);

        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1)
            return -1; /* errno says why; the caller tells */
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The end of the first reply in c->buf (after its closing empty line), or 0 when incomplete. */
static size_t
xfctl_reply_end(const struct xfctl_conn *c)
{
    for (size_t i = 0; i < c->len; i++) {
        if (c->buf[i] == '\n' && (i == 0 || c->buf[i - 1] == '\n'))
            return i + 1;
    }
    return 0;
}

/* Reads until one whole reply is in c->buf; returns its length (closing empty line included),
 * or 0 after printing why not. */
static size_t
xfctl_read_reply(struct xfctl_conn *c)
{
    size_t end;

    while ((end = xfctl_reply_end(c)) == 0) {
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        ssize_t n;
        int rc;

        if (c->cap - c->len < 4096) {
            size_t cap = c->cap == 0 ? 16384 : c->cap * 2;
            char *p;

            if (cap > XFCTL_REPLY_MAX || (p = realloc(c->buf, cap)) == NULL) {
                fprintf(stderr, "xfctl: the reply from %s is too long\n", c->path);
                return 0;
            }
            c->buf = p;
            c->cap = cap;
        }
        rc = poll(&pfd, 1, c->timeout_ms);
        if (rc == -1 && errno == EINTR)
            continue;
        if (rc == 0) {
            fprintf(stderr, "xfctl: no reply from %s within %d s\n", c->path, c->timeout_ms / 1000);
            return 0;
        }
        n = rc == -1 ? -1 : recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1) {
            fprintf(stderr, "xfctl: reading from %s: %s\n", c->path, strerror(errno));
            return 0;
        }
        if (n == 0) {
            if (c->len > 0) /* what the server said before it closed, if anything */
                fprintf(stderr, "%.*s%s", (int)c->len, c->buf,
                        c->buf[c->len - 1] == '\n' ? "" : "\n");
            fprintf(stderr, "xfctl: %s closed the connection before the reply ended\n", c->path);
            return 0;
        }
        c->len += (size_t)n;
    }
    return end;
}

/* Whether a command line is the one word `word` (any case, blanks around). */
static bool
xfctl_is_word(const char *line, const char *word)
{
    const char *p = line + strspn(line, " \t");
    size_t n = strcspn(p, " \t"), wl = strlen(word);

    return n == wl && strncasecmp(p, word, wl) == 0 && p[n + strspn(p + n, " \t")] == '\0';
}

/*
 * Sends one command line (no LF in it) and prints its reply without the closing empty line: on
 * stdout, or on stderr when it is an error and `errors_to_stderr`. Returns an enum xfctl_exit.
 * With `busy` not NULL, a refusal for want of admin slots is not printed: *busy says it came.
 */
static int
xfctl_command_to(struct xfctl_conn *c, const char *line, bool json, bool errors_to_stderr,
                 bool *busy, FILE *out)
{
    size_t len = strlen(line), end;
    char *msg = malloc(len + 7);
    bool failed;
    int rc;

    if (msg == NULL) {
        fprintf(stderr, "xfctl: out of memory\n");
        return XFCTL_NO_SERVER;
    }
    memcpy(msg, line, len);
    c->timeout_ms = xfctl_is_word(line, "reexec") ? XFCTL_REEXEC_TIMEOUT_MS : XFCTL_TIMEOUT_MS;
    if (json) {
        memcpy(msg + len, " json", 5);
        len += 5;
    }
    msg[len++] = '\n';
    rc = xfctl_send_all(c, msg, len);
    free(msg);
    if (rc == -1) {
        int e = errno;

        /* The server may have said why before it closed (too many admin connections, idle):
         * what it sent is still in our socket. */
        if ((end = xfctl_read_reply(c)) > 0) {
            if (busy != NULL && end > sizeof(XFCTL_BUSY_REPLY) - 1 &&
                memcmp(c->buf, XFCTL_BUSY_REPLY, sizeof(XFCTL_BUSY_REPLY) - 1) == 0) {
                *busy = true;
                c->len = 0;
                return XFCTL_NO_SERVER;
            }
            fwrite(c->buf, 1, end - 1, stderr);
        }
        fprintf(stderr, "xfctl: sending to %s: %s\n", c->path, strerror(e));
        return XFCTL_NO_SERVER;
    }
    if ((end = xfctl_read_reply(c)) == 0)
        return XFCTL_NO_SERVER;
    failed = end >= 6 && memcmp(c->buf, "error:", 6) == 0;
    if (busy != NULL && end > sizeof(XFCTL_BUSY_REPLY) - 1 &&
        memcmp(c->buf, XFCTL_BUSY_REPLY, sizeof(XFCTL_BUSY_REPLY) - 1) == 0) {
        /* Every admin slot was taken when we connected: the caller may try again. */
        *busy = true;
        c->len = 0;
        return XFCTL_ERROR;
    }
    fwrite(c->buf, 1, end - 1, failed && errors_to_stderr ? stderr : out);
    fflush(out);
    memmove(c->buf, c->buf + end, c->len - end);
    c->len -= end;
    return failed ? XFCTL_ERROR : XFCTL_OK;
}

static int
xfctl_command(struct xfctl_conn *c, const char *line, bool json, bool errors_to_stderr, bool *busy)
{
    return xfctl_command_to(c, line, json, errors_to_stderr, busy, stdout);
}

/*
 * `xfctl report --html FILE`: asks for `report json` and writes it into the HTML document
 * (adm_report_html) at `path`, "-" for standard output. Returns an enum xfctl_exit.
 */
static int
xfctl_report_html(struct xfctl_conn *c, const char *path)
{
    char *json = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&json, &len), *f;
    int rc;

    if (mem == NULL) {
        fprintf(stderr, "xfctl: out of memory\n");
        return XFCTL_NO_SERVER;
    }
    rc = xfctl_command_to(c, "report json", false, true, NULL, mem);
    fclose(mem);
    if (rc != XFCTL_OK) {
        free(json);
        return rc;
    }
    while (len > 0 && (json[len - 1] == '\n' || json[len - 1] == '\r'))
        len--;
    f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "xfctl: cannot write %s: %s\n", path, strerror(errno));
        free(json);
        return XFCTL_ERROR;
    }
    rc = adm_report_html(f, json, len) == 0 ? XFCTL_OK : XFCTL_ERROR;
    if ((f != stdout && fclose(f) != 0) || rc != XFCTL_OK) {
        fprintf(stderr, "xfctl: cannot write %s\n", path);
        rc = XFCTL_ERROR;
    } else if (f != stdout) {
        fprintf(stderr, "xfctl: report written to %s\n", path);
    }
    free(json);
    return rc;
}

/*
 * Sends the line and prints what comes back as it comes: `watch` streams events until crossfade
 * closes the connection (or we are interrupted). An error reply is printed on stderr. Returns an
 * enum xfctl_exit.
 */
static int
xfctl_watch(struct xfctl_conn *c, const char *line)
{
    char buf[4096];
    bool first = true;

    if (xfctl_send_all(c, line, strlen(line)) == -1 || xfctl_send_all(c, "\n", 1) == -1) {
        fprintf(stderr, "xfctl: sending to %s: %s\n", c->path, strerror(errno));
        return XFCTL_NO_SERVER;
    }
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == -1)
                fprintf(stderr, "xfctl: reading from %s: %s\n", c->path, strerror(errno));
            else
                fprintf(stderr, "xfctl: %s closed the connection\n", c->path);
            return XFCTL_NO_SERVER;
        }
        if (first && n >= 6 && memcmp(buf, "error:", 6) == 0) {
            /* Not a stream: one error reply, ended by its empty line. */
            const char *end = memmem(buf, (size_t)n, "\n\n", 2);
            fwrite(buf, 1, end != NULL ? (size_t)(end - buf) + 1 : (size_t)n, stderr);
            return XFCTL_ERROR;
        }
        first = false;
        fwrite(buf, 1, (size_t)n, stdout);
        fflush(stdout);
    }
}

/* Whether a command line is `watch` (any case, blanks around). */
static bool
xfctl_is_watch(const char *line)
{
    return xfctl_is_word(line, "watch");
}

/*
 * -w: connects as soon as the socket answers, then waits for `show version` to stop saying
 * "status starting" (the proxy accepts once its first health checks are done), all within
 * wait_ms. Returns 0 connected and started, or -1 after saying why.
 */
static int
xfctl_connect_wait(struct xfctl_conn *c, const char *path, unsigned wait_ms)
{
    uint64_t deadline = xf_now_ms() + wait_ms;

    while (xfctl_connect(c, path, true) == -1) {
        if ((errno != ENOENT && errno != ECONNREFUSED) || xf_now_ms() >= deadline) {
            if (errno == ENOENT || errno == ECONNREFUSED)
                fprintf(stderr, "xfctl: %s did not answer within %u ms\n", path, wait_ms);
            return -1;
        }
        usleep(20000);
    }
    for (;;) {
        size_t end;
        bool starting;

        if (xfctl_send_all(c, "show version\n", 13) == -1) {
            fprintf(stderr, "xfctl: sending to %s: %s\n", c->path, strerror(errno));
            return -1;
        }
        if ((end = xfctl_read_reply(c)) == 0)
            return -1;
        starting = memmem(c->buf, end, "\nstatus starting\n", 17) != NULL;
        memmove(c->buf, c->buf + end, c->len - end);
        c->len -= end;
        if (!starting)
            return 0;
        if (xf_now_ms() >= deadline) {
            fprintf(stderr,
                    "xfctl: crossfade is still starting after %u ms (its first health "
                    "checks are not done)\n",
                    wait_ms);
            return -1;
        }
        usleep(20000);
    }
}

/* Whether a line holds nothing but blanks. */
static bool
xfctl_blank(const char *s)
{
    return s[strspn(s, " \t")] == '\0';
}

/* Reads commands from stdin, one per line; a prompt when stdin is a terminal. Returns 1 when a
 * reply was an error, 2 when the connection broke, else 0. */
static int
xfctl_session(struct xfctl_conn *c, bool json)
{
    bool tty = isatty(STDIN_FILENO);
    char *line = NULL;
    size_t cap = 0;
    int worst = XFCTL_OK;

    for (;;) {
        ssize_t n;
        int rc;

        if (tty) {
            fputs("crossfade> ", stdout);
            fflush(stdout);
        }
        n = getline(&line, &cap, stdin);
        if (n == -1) {
            if (tty)
                fputc('\n', stdout);
            break;
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (xfctl_blank(line))
            continue;
        if (strcmp(line + strspn(line, " \t"), "quit") == 0 ||
            strcmp(line + strspn(line, " \t"), "exit") == 0)
            break;
        if (xfctl_is_watch(line)) {
            worst = XF_MAX(worst, xfctl_watch(c, line));
            break; /* the connection is the watch's now */
        }
        rc = xfctl_command(c, line, json, !tty, NULL);
        if (rc == XFCTL_NO_SERVER) {
            worst = rc;
            break;
        }
        if (rc > worst)
            worst = rc;
    }
    free(line);
    return worst;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'}, {"json", no_argument, NULL, 'j'},
        {"wait", required_argument, NULL, 'w'},   {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0}};
    const char *path = getenv("CROSSFADE_SOCKET");
    struct xfctl_conn c = {.fd = -1, .timeout_ms = XFCTL_TIMEOUT_MS};
    bool json = false;
    long wait_s = -1;
    char *end;
    int opt, rc;

    if (path == NULL || *path == '\0')
        path = XFCTL_DEFAULT_SOCKET;
    /* "+": options only before the command, so "xfctl set weight -1" reaches the server. */
    while ((opt = getopt_long(argc, argv, "+s:jw:hV", opts, NULL)) != -1) {
        switch (opt) {
        case 's':
            path = optarg;
            break;
        case 'w':
            errno = 0;
            wait_s = strtol(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || wait_s < 0 || wait_s > 3600) {
                fprintf(stderr, "xfctl: -w takes whole seconds from 0 to 3600, got \"%s\"\n",
                        optarg);
                return XFCTL_NO_SERVER;
            }
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            xfctl_usage(stdout);
            return XFCTL_OK;
        case 'V':
            printf("xfctl %s\n", XF_VERSION);
            return XFCTL_OK;
        default:
            xfctl_usage(stderr);
            return XFCTL_NO_SERVER;
        }
    }
    if (optind < argc) {
        size_t len = 0;
        char *line;

        for (int i = optind; i < argc; i++) {
            if (strpbrk(argv[i], "\r\n") != NULL) {
                fprintf(stderr, "xfctl: a command is one line; argument %d holds a line break\n",
                        i - optind + 1);
                return XFCTL_NO_SERVER;
            }
            len += strlen(argv[i]) + 1;
        }
        if (len > XFCTL_LINE_MAX) {
            fprintf(stderr, "xfctl: the command is longer than %d bytes\n", XFCTL_LINE_MAX);
            return XFCTL_NO_SERVER;
        }
        line = calloc(1, len + 1);
        if (line == NULL)
            return XFCTL_NO_SERVER;
        for (int i = optind; i < argc; i++) {
            if (i > optind)
                strcat(line, " ");
            strcat(line, argv[i]);
        }
        if (xfctl_blank(line)) {
            free(line);
            xfctl_usage(stderr);
            return XFCTL_NO_SERVER;
        }
        if ((wait_s >= 0 ? xfctl_connect_wait(&c, path, (unsigned)wait_s * 1000u)
                         : xfctl_connect(&c, path, false)) == -1) {
            free(line);
            free(c.buf);
            return XFCTL_NO_SERVER;
        }
        if (xfctl_is_watch(line)) {
            rc = xfctl_watch(&c, line);
        } else if (argc - optind == 3 && strcmp(argv[optind], "report") == 0 &&
                   strcmp(argv[optind + 1], "--html") == 0) {
            rc = xfctl_report_html(&c, argv[optind + 2]);
        } else {
            /* Every slot taken: crossfade closes the longest idle admin connection for a new
             * one within a few seconds, so a rollback gets through; try again meanwhile. */
            uint64_t until = xf_now_ms() + XFCTL_BUSY_RETRY_MS;
            bool busy = false;

            rc = xfctl_command(&c, line, json, true, &busy);
            while (busy && xf_now_ms() < until) {
                close(c.fd);
                usleep(200000);
                busy = false;
                if (xfctl_connect(&c, path, false) == -1) {
                    free(line);
                    free(c.buf);
                    return XFCTL_NO_SERVER;
                }
                rc = xfctl_command(&c, line, json, true, &busy);
            }
            if (busy) {
                fprintf(stderr, "%s (still after %d s)\n", XFCTL_BUSY_REPLY,
                        XFCTL_BUSY_RETRY_MS / 1000);
                rc = XFCTL_NO_SERVER;
            }
        }
        free(line);
    } else {
        if ((wait_s >= 0 ? xfctl_connect_wait(&c, path, (unsigned)wait_s * 1000u)
                         : xfctl_connect(&c, path, false)) == -1) {
            free(c.buf);
            return XFCTL_NO_SERVER;
        }
        rc = xfctl_session(&c, json);
    }
    close(c.fd);
    free(c.buf);
    return rc;
}
