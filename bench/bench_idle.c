/* bench/bench_idle.c -- opens N keep-alive client connections, one request each, then holds them
 * idle.
 *
 * Used by bench/bench.sh to measure a proxy's memory per idle keep-alive client connection: the
 * script reads the proxy's RSS, runs this tool, waits for its "ready" line, reads the RSS again and
 * sends SIGTERM. Self-contained (libc only) so the script can build it with plain cc:
 *     cc -std=c11 -O2 -Wall -Wextra -o bench_idle bench/bench_idle.c
 *
 * usage: bench_idle HOST PORT N [HOLD_SECONDS [partial]]
 *   Connects N times to HOST:PORT (an IPv4 or IPv6 literal), one connection after the other; on
 *   each it sends "GET /idle HTTP/1.1" and reads the whole response (a 200 with Content-Length),
 *   then keeps the connection open without sending anything more. With `partial`, it sends only
 *   the first 266 bytes of a request head (a slow client, or a slowloris) and reads nothing. Prints
 * "ready OPENED" once all are open (or the first failure stopped it), then waits for SIGTERM,
 * SIGINT or HOLD_SECONDS (default 120), prints "alive K of OPENED" (connections the peer had not
 * closed) and exits. Exit status: 0 when all N were opened and answered, 1 when fewer were, 2 on a
 * usage error.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define BENCH_IDLE_IO_TIMEOUT_S 5
#define BENCH_IDLE_RESP_MAX     16384

static const char bench_idle_request[] =
    "GET /idle HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench_idle\r\n\r\n";

/* What a slow client has sent when it stops: a head that is not finished (no empty line). */
static const char bench_idle_partial[] =
    "GET /idle HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench_idle\r\nX-Pad: "
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaaaaaaaaaaaa\r\n";

/* Parses "HOST PORT" into a socket address; returns 0, or -1 if HOST is not an IP literal. */
static int
bench_idle_addr(const char *host, const char *port, struct sockaddr_storage *ss, socklen_t *len)
{
    char *end = NULL;
    long p = strtol(port, &end, 10);
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

    if (end == port || *end != '\0' || p < 1 || p > 65535)
        return -1;
    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((unsigned short)p);
        *len = sizeof(*in4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((unsigned short)p);
        *len = sizeof(*in6);
        return 0;
    }
    return -1;
}

/* Raises the soft limit on open files to the hard one; returns the limit now in force. */
static rlim_t
bench_idle_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
            (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur;
}

/* Finds the value of Content-Length in a response head (head_len bytes, ends with CRLFCRLF);
 * returns it, or -1 if absent or malformed. */
static long
bench_idle_content_length(const char *head, size_t head_len)
{
    static const char name[] = "\r\ncontent-length:";
    size_t n = sizeof(name) - 1;

    for (size_t i = 0; i + n <= head_len; i++) {
        if (strncasecmp(head + i, name, n) == 0) {
            char *end = NULL;
            long v = strtol(head + i + n, &end, 10);
            return (end == head + i + n || v < 0) ? -1 : v;
        }
    }
    return -1;
}

/* Sends the request on fd and reads one complete 200 response with a Content-Length;
 * returns 0, or -1 with a reason in *why. Leaves the connection open either way. */
static int
bench_idle_exchange(int fd, const char **why)
{
    char buf[BENCH_IDLE_RESP_MAX + 1];
    size_t got = 0, sent = 0, want = 0;
    char *eoh = NULL;

    while (sent < sizeof(bench_idle_request) - 1) {
        ssize_t w = send(fd, bench_idle_request + sent, sizeof(bench_idle_request) - 1 - sent,
                         MSG_NOSIGNAL);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            *why = "send failed";
            return -1;
        }
        sent += (size_t)w;
    }
    for (;;) {
        ssize_t r = recv(fd, buf + got, BENCH_IDLE_RESP_MAX - got, 0);
        if (r == -1 && errno == EINTR)
            continue;
        if (r <= 0) {
            *why = r == 0 ? "closed before the response ended" : "recv failed or timed out";
            return -1;
        }
        got += (size_t)r;
        buf[got] = '\0';
        if (eoh == NULL && (eoh = strstr(buf, "\r\n\r\n")) != NULL) {
            long cl = bench_idle_content_length(buf, (size_t)(eoh - buf) + 4);
            if (strncmp(buf, "HTTP/1.1 200 ", 13) != 0) {
                *why = "response is not HTTP/1.1 200";
                return -1;
            }
            if (cl < 0) {
                *why = "response has no Content-Length";
                return -1;
            }
            want = (size_t)(eoh - buf) + 4 + (size_t)cl;
            if (want > BENCH_IDLE_RESP_MAX) {
                *why = "response too large";
                return -1;
            }
        }
        if (eoh != NULL && got >= want)
            return 0;
        if (got == BENCH_IDLE_RESP_MAX) {
            *why = "response head too large";
            return -1;
        }
    }
}

/* Sends the partial head; returns 0, or -1 with *why. */
static int
bench_idle_send_partial(int fd, const char **why)
{
    size_t sent = 0;

    while (sent < sizeof(bench_idle_partial) - 1) {
        ssize_t w = send(fd, bench_idle_partial + sent, sizeof(bench_idle_partial) - 1 - sent,
                         MSG_NOSIGNAL);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            *why = "send failed";
            return -1;
        }
        sent += (size_t)w;
    }
    return 0;
}

/* Opens one connection and runs one exchange on it (or sends a partial head); returns the fd, or
 * -1 with *why set. */
static int
bench_idle_open(const struct sockaddr_storage *ss, socklen_t len, bool partial, const char **why)
{
    struct timeval tv = {.tv_sec = BENCH_IDLE_IO_TIMEOUT_S, .tv_usec = 0};
    int one = 1, saved;
    int fd = socket(ss->ss_family, SOCK_STREAM, 0);

    if (fd == -1) {
        *why = "socket failed (out of file descriptors?)";
        return -1;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)ss, len) == -1) {
        *why = "connect failed";
        goto fail;
    }
    if ((partial ? bench_idle_send_partial(fd, why) : bench_idle_exchange(fd, why)) == -1)
        goto fail;
    return fd;
fail:
    saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

/* Counts the connections the peer has not closed (nothing readable: no EOF, no error). */
static int
bench_idle_count_alive(const int *fds, int n)
{
    int alive = 0;

    for (int i = 0; i < n; i++) {
        struct pollfd p = {.fd = fds[i], .events = POLLIN};
        if (poll(&p, 1, 0) == 0)
            alive++;
    }
    return alive;
}

int
main(int argc, char **argv)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    long n, hold = 120;
    rlim_t nofile;
    int *fds = NULL, opened = 0, status = 0;
    sigset_t set;
    struct timespec ts = {0};
    const char *why = NULL;
    bool partial = argc == 6 && strcmp(argv[5], "partial") == 0;

    if (argc < 4 || argc > 6 || (argc == 6 && !partial) ||
        bench_idle_addr(argv[1], argv[2], &ss, &len) == -1) {
        fprintf(stderr, "usage: bench_idle HOST PORT N [HOLD_SECONDS [partial]] (HOST: an IP "
                        "literal)\n");
        return 2;
    }
    n = strtol(argv[3], NULL, 10);
    if (argc >= 5)
        hold = strtol(argv[4], NULL, 10);
    if (n < 1 || n > 1000000 || hold < 1) {
        fprintf(stderr, "bench_idle: N must be 1..1000000 and HOLD_SECONDS positive\n");
        return 2;
    }
    nofile = bench_idle_raise_nofile();
    if (nofile != RLIM_INFINITY && (rlim_t)n + 16 > nofile) {
        fprintf(stderr, "bench_idle: %ld connections need more than the %lu open files allowed\n",
                n, (unsigned long)nofile);
        return 2;
    }
    fds = calloc((size_t)n, sizeof(*fds));
    if (fds == NULL) {
        fprintf(stderr, "bench_idle: out of memory\n");
        return 2;
    }

    /* Block the stop signals before the first connection so none is lost: sigtimedwait takes them.
     */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);

    while (opened < n) {
        int fd = bench_idle_open(&ss, len, partial, &why);
        if (fd == -1) {
            fprintf(stderr, "bench_idle: connection %d of %ld to %s:%s: %s (errno %d: %s)\n",
                    opened + 1, n, argv[1], argv[2], why, errno, strerror(errno));
            status = 1;
            break;
        }
        fds[opened++] = fd;
    }
    printf("ready %d\n", opened);
    fflush(stdout);

    ts.tv_sec = hold;
    while (sigtimedwait(&set, NULL, &ts) == -1 && errno == EINTR)
        ;
    printf("alive %d of %d\n", bench_idle_count_alive(fds, opened), opened);
    fflush(stdout);
    for (int i = 0; i < opened; i++)
        close(fds[i]);
    free(fds);
    return status;
}
