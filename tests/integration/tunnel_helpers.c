/* tests/integration/tunnel_helpers.c -- the tunnel half of the harness: WebSocket nodes and
 * clients on python3-websockets, `show tunnels`, and raw nodes the test plays itself. */
#include "tests/integration/tunnel_helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

/* ------------------------------------------------------------------ python3-websockets */

/* The top of the source tree: $XF_SRC (the Makefile sets it), else the current directory. */
const char *
ws_src(void)
{
    const char *src = getenv("XF_SRC");

    return src != NULL && *src != '\0' ? src : ".";
}

/* Fails the test, saying how to fix it, when python3-websockets cannot be imported. */
void
ws_need_python(void)
{
    char *err = NULL;
    int code;

    cr_assert(eq(int, access(WS_PYTHON, X_OK), 0),
              WS_PYTHON " is missing: `make deps` installs python3 and python3-websockets");
    code = h_run((char *[]){WS_PYTHON, "-c", "import websockets", NULL}, 20000, NULL, &err);
    cr_assert(eq(int, code, 0),
              WS_PYTHON " cannot import websockets (exit %d): `make deps` installs "
                        "python3-websockets\n%s",
              code, err != NULL ? err : "");
}

/* Starts tests/integration/ws_echo.py as `name` on a free loopback port and waits until it
 * listens: it greets each client with "hello from NAME", then echoes every message. */
struct ws_node *
ws_node_start(const char *name)
{
    struct ws_node *n = h_alloc(sizeof(*n));
    const char *script = h_fmt("%s/tests/integration/ws_echo.py", ws_src());

    ws_need_python();
    n->port = h_free_port();
    snprintf(n->addr, sizeof(n->addr), "127.0.0.1:%d", n->port);
    n->log = h_path(h_fmt("ws-%s.log", name));
    n->proc = h_spawn(h_fmt("ws_echo %s", name),
                      (char *[]){WS_PYTHON, "-u", (char *)script, "--port",
                                 (char *)h_fmt("%d", n->port), "--name", (char *)name, NULL},
                      n->log, NULL);
    cr_assert(h_log_wait(n->log, "listening", 20000), "ws_echo.py %s did not start:\n%s", name,
              h_read_file(n->log, NULL));
    cr_assert(eq(int, h_try_connect(n->port, 2000), 0), "ws_echo.py %s does not accept", name);
    return n;
}

/* Starts the Python script tests/integration/SCRIPT with more arguments; output to `log`. */
struct h_proc *
ws_script_start(const char *script, const char *name, const char *log, const char *url,
                const char *const more[])
{
    char **argv = h_alloc(32 * sizeof(*argv));
    size_t k = 0;

    argv[k++] = WS_PYTHON;
    argv[k++] = "-u";
    argv[k++] = (char *)h_fmt("%s/tests/integration/%s", ws_src(), script);
    argv[k++] = (char *)url;
    for (size_t i = 0; more != NULL && more[i] != NULL; i++) {
        cr_assert(lt(sz, k, (size_t)31), "too many arguments for %s", script);
        argv[k++] = (char *)more[i];
    }
    argv[k] = NULL;
    return h_spawn(h_fmt("%s %s", script, name), argv, h_path(log), NULL);
}

/* Starts tests/integration/ws_client.py on `url`; its output goes to ws-client-NAME.log. */
struct h_proc *
ws_client_start(const char *name, const char *url, const char *const more[])
{
    return ws_script_start("ws_client.py", name, h_fmt("ws-client-%s.log", name), url, more);
}

/* ------------------------------------------------------------------ show tunnels */

/* The count of `show tunnels` for CLUSTER ADDRESS, or -1 when the node is not listed. */
long long
tunnels_of(int fd, const char *cluster, const char *addr)
{
    const char *reply = h_admin_cmd(fd, "show tunnels");
    const char *want = h_fmt("%s %s ", cluster, addr);

    cr_assert(eq(int, strncmp(reply, "cluster address tunnels\n", 24), 0), "show tunnels:\n%s",
              reply);
    for (const char *l = reply; *l != '\0'; l = strchr(l, '\n') + 1) {
        if (strncmp(l, want, strlen(want)) == 0)
            return strtoll(l + strlen(want), NULL, 10);
        if (strchr(l, '\n') == NULL)
            break;
    }
    return -1;
}

/* Polls `show tunnels` until the node's count is `want`; fails showing the reply when not. */
void
await_tunnels(int fd, const char *cluster, const char *addr, long long want)
{
    uint64_t deadline = h_now_ms() + H_IO_TIMEOUT_MS;

    while (tunnels_of(fd, cluster, addr) != want && h_now_ms() < deadline)
        h_sleep_ms(10);
    cr_assert(eq(i64, tunnels_of(fd, cluster, addr), want), "%s %s has not %lld tunnels:\n%s",
              cluster, addr, want, h_admin_cmd(fd, "show tunnels"));
}

/* The "total x=N y=M" line of `show tunnels`. */
const char *
tunnels_total(int fd)
{
    const char *reply = h_admin_cmd(fd, "show tunnels");
    const char *t = strstr(reply, "\ntotal ");

    cr_assert(ne(ptr, (void *)t, NULL), "no total in show tunnels:\n%s", reply);
    return h_fmt("%.*s", (int)strcspn(t + 1, "\n"), t + 1);
}

/* ------------------------------------------------------------------ a node the test plays */

struct raw_node *
raw_node_start(void)
{
    struct raw_node *n = h_alloc(sizeof(*n));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);

    n->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(ne(int, n->lfd, -1), "socket: %s", strerror(errno));
    cr_assert(eq(int, bind(n->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0), "bind: %s",
              strerror(errno));
    cr_assert(eq(int, listen(n->lfd, 16), 0));
    cr_assert(eq(int, getsockname(n->lfd, (struct sockaddr *)&sa, &len), 0));
    n->port = ntohs(sa.sin_port);
    snprintf(n->addr, sizeof(n->addr), "127.0.0.1:%d", n->port);
    return n;
}

/* The next connection crossfade opens to the node. */
int
raw_accept(struct raw_node *n)
{
    struct pollfd pfd = {.fd = n->lfd, .events = POLLIN};
    int fd;

    cr_assert(eq(int, poll(&pfd, 1, H_IO_TIMEOUT_MS), 1), "crossfade did not connect to the node");
    fd = accept4(n->lfd, NULL, NULL, SOCK_CLOEXEC);
    cr_assert(ne(int, fd, -1), "accept: %s", strerror(errno));
    return fd;
}

/* Reads from fd until `n` bytes are in buf or timeout_ms passed without a byte, or EOF; returns
 * how many were read. */
size_t
raw_recv(int fd, char *buf, size_t n, int timeout_ms)
{
    size_t got = 0;

    while (got < n) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        ssize_t r;

        if (poll(&pfd, 1, timeout_ms) != 1)
            break;
        r = recv(fd, buf + got, n - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

/* Reads a request head on fd (asserts one comes); the bytes after it go to *rest (may be 0). */
const char *
raw_read_head(int fd, const char **rest, size_t *rest_len)
{
    size_t cap = 65536, len = 0;
    char *buf = h_alloc(cap + 1);
    const char *end = NULL;

    while (end == NULL) {
        size_t r = raw_recv(fd, buf + len, 1, H_IO_TIMEOUT_MS);

        cr_assert(eq(sz, r, (size_t)1), "the node got no whole request head: \"%.*s\"", (int)len,
                  buf);
        len++;
        cr_assert(lt(sz, len, cap));
        if (len >= 4 && memcmp(buf + len - 4, "\r\n\r\n", 4) == 0)
            end = buf + len;
    }
    if (rest != NULL) {
        /* Whatever else is there already. */
        size_t more = 0;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        char *tail = h_alloc(cap);

        if (poll(&pfd, 1, 0) == 1) {
            ssize_t r = recv(fd, tail, cap, MSG_DONTWAIT);

            more = r > 0 ? (size_t)r : 0;
        }
        *rest = tail;
        *rest_len = more;
    }
    return h_fmt("%.*s", (int)(end - buf), buf);
}

void
raw_send(int fd, const void *data, size_t len)
{
    size_t off = 0;

    while (off < len) {
        ssize_t r = send(fd, (const char *)data + off, len - off, MSG_NOSIGNAL);

        cr_assert(gt(long, (long)r, 0L), "the node could not send: %s", strerror(errno));
        off += (size_t)r;
    }
}

/* Whether the peer of fd ended its sending (EOF, or a reset) within timeout_ms with no byte. */
bool
raw_wait_eof(int fd, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    char b;

    if (poll(&pfd, 1, timeout_ms) != 1)
        return false;
    return recv(fd, &b, 1, MSG_DONTWAIT) <= 0;
}

/* Reads exactly `len` bytes the client received (those already buffered first), asserts that
 * they are `want`. */
void
conn_expect(struct h_conn *c, const char *want, size_t len)
{
    char *buf = h_alloc(len + 1);
    size_t got = tun_min(h_pending(c), len);

    if (got > 0) /* c->buf is NULL until something was received */
        memcpy(buf, c->buf + c->off, got);
    c->off += got;
    got += raw_recv(c->fd, buf + got, len - got, H_IO_TIMEOUT_MS);
    cr_assert(eq(sz, got, len), "the client got %zu of %zu bytes (\"%.*s\")", got, len, (int)got,
              buf);
    cr_assert(eq(int, memcmp(buf, want, len), 0), "the client got \"%.*s\", not \"%.*s\"", (int)len,
              buf, (int)len, want);
}

/* The client's peer ended its sending: nothing pending, and EOF within timeout_ms. */
bool
conn_eof(struct h_conn *c, int timeout_ms)
{
    return h_pending(c) == 0 && h_conn_wait(c, timeout_ms) == H_CLOSED;
}

/*
 * Opens a tunnel through p to the raw node n: the client sends `request` followed by `early`
 * in one write, the node answers WS_SWITCH followed by `node_first`. Returns once the client read
 * the 101 head (asserting its fields); what followed it stays in the client's buffer, `early`
 * waits in the node's socket.
 */
struct raw_tunnel
raw_tunnel_open(struct h_proxy *p, struct raw_node *n, const char *request, const char *early,
                const char *node_first)
{
    struct raw_tunnel t = {0};
    const char *msg = h_fmt("%s%s", request, early);
    const char *rest;
    size_t rest_len;
    struct h_msg m;

    t.c = h_connect(p->port);
    cr_assert(eq(int, h_send(t.c, msg, strlen(msg)), 0));
    t.node = raw_accept(n);
    t.seen = raw_read_head(t.node, &rest, &rest_len);
    cr_assert(
        ne(ptr, (void *)h_memcasemem(t.seen, strlen(t.seen), "\r\nUpgrade: websocket\r\n"), NULL),
        "the node got no upgrade:\n%s", t.seen);
    /* Nothing of the client's tunnel bytes may pass before the node switched protocols. */
    cr_assert(eq(sz, rest_len, (size_t)0), "bytes followed the request before the 101: \"%.*s\"",
              (int)rest_len, rest);
    raw_send(t.node, h_fmt("%s%s", WS_SWITCH, node_first), strlen(WS_SWITCH) + strlen(node_first));
    cr_assert(eq(int, h_read_head(t.c, &m, H_IO_TIMEOUT_MS), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 101), "the client got %d:\n%.*s", m.status, (int)m.head_len,
              m.head);
    cr_assert(eq(str, (char *)h_header(&m, "Upgrade"), "websocket"), "%.*s", (int)m.head_len,
              m.head);
    cr_assert(h_header_has_token(&m, "Connection", "upgrade"), "%.*s", (int)m.head_len, m.head);
    cr_assert(eq(str, (char *)h_header(&m, "Sec-WebSocket-Accept"), WS_ACCEPT),
              "the node's end-to-end field was lost:\n%.*s", (int)m.head_len, m.head);
    t.head_len = m.head_len;
    return t;
}
