/* tests/integration/test_connection_lifecycle.c -- how connections end: half-closes, timeouts,
 * shutdown, cut responses, refusals and the reuse of node connections. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/integration/harness.h"

/*
 * Besides the harness's fake node, which answers at once, some tests need a node that takes its
 * time (stops reading, sends bytes late): a scripted node runs a function of the test on a thread
 * per accepted connection. The suite's .fini stops those threads and closes the clients opened
 * here before the harness's teardown.
 */
static void lc_teardown(void);

TestSuite(connection_lifecycle, .init = h_setup, .fini = lc_teardown);

#define SMALL_RCVBUF 4096 /* a client that reads slowly: the kernel holds little for it */
#define SLOW_BODY    3000000
#define OK_REPLY     "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"

/* ------------------------------------------------------------------ clients */

#define LC_MAX_CONNS 8

struct node;

static struct {
    struct h_conn *conns[LC_MAX_CONNS]; /* opened here, closed by lc_teardown */
    size_t n_conns;
    struct node *nodes[4]; /* scripted nodes, stopped by lc_teardown */
    size_t n_nodes;
} lc_state;

/*
 * Connects to 127.0.0.1:port with SO_RCVBUF set before the connect, so the window the proxy sees
 * is small from the first byte. Non-blocking, like the harness's connections.
 */
static struct h_conn *
connect_small_rcvbuf(int port, int rcvbuf)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct h_conn *c = h_alloc(sizeof(*c));
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    socklen_t len = sizeof(int);
    int one = 1, err = 0;

    cr_assert(ge(int, fd, 0), "socket: %s", strerror(errno));
    cr_assert(lt(sz, lc_state.n_conns, (size_t)LC_MAX_CONNS));
    c->fd = fd;
    lc_state.conns[lc_state.n_conns++] = c;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
        cr_assert(eq(int, errno, EINPROGRESS), "connect: %s", strerror(errno));
        cr_assert(eq(int, poll(&pfd, 1, 5000), 1), "connect to 127.0.0.1:%d timed out", port);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        cr_assert(eq(int, err, 0), "connect to 127.0.0.1:%d: %s", port, strerror(err));
    }
    return c;
}

/* Appends `n` bytes to the connection's receive buffer, as if h_fill had read them. */
static void
conn_append(struct h_conn *c, const char *data, size_t n)
{
    if (c->cap - c->len < n) {
        c->cap = c->len + n + 65536;
        c->buf = h_realloc(c->buf, c->cap);
    }
    memcpy(c->buf + c->len, data, n);
    c->len += n;
}

/*
 * Reads until the peer ends the connection, starting with the bytes already buffered. Returns 0
 * for a clean close (EOF), the errno of the read that failed (ECONNRESET...), or ETIMEDOUT when
 * no byte came for timeout_ms. *out (NUL-terminated, harness-owned) gets every byte.
 */
static int
read_to_end(struct h_conn *c, char **out, size_t *len, int timeout_ms)
{
    size_t cap = h_pending(c) + 65536, n = 0;
    char *buf = h_alloc(cap);
    int end;

    memcpy(buf, c->buf + c->off, h_pending(c));
    n = h_pending(c);
    c->off = c->len;
    for (;;) {
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        ssize_t got;

        if (cap - n < 65536) {
            cap *= 2;
            buf = h_realloc(buf, cap);
        }
        if (poll(&pfd, 1, timeout_ms) == 0) {
            end = ETIMEDOUT;
            break;
        }
        got = recv(c->fd, buf + n, cap - n - 1, 0);
        if (got > 0) {
            n += (size_t)got;
            continue;
        }
        if (got == -1 && (errno == EINTR || errno == EAGAIN))
            continue;
        end = got == 0 ? 0 : errno;
        break;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return end;
}

static const char *
end_name(int end)
{
    return end == 0 ? "a clean close (EOF)" : strerror(end);
}

/* ------------------------------------------------------------------ bodies */

/* Checks a /bytes body against the pattern as it arrives; optionally reads it at a set pace. */
struct body_check {
    uint64_t offset;
    long long bad;       /* stream offset of the first byte off the pattern, or -1 */
    uint64_t pace_total; /* 0: as fast as it comes; else the body reaches this size ... */
    unsigned pace_ms;    /* ... after this many milliseconds, read evenly */
    uint64_t start_ms;
};

static int
body_check_sink(void *ctx, const char *data, size_t len)
{
    struct body_check *b = ctx;
    long long bad = h_pattern_check(data, len, b->offset);

    if (bad >= 0 && b->bad < 0)
        b->bad = (long long)b->offset + bad;
    b->offset += len;
    if (b->pace_total > 0) {
        uint64_t due, now = h_now_ms();

        if (b->start_ms == 0)
            b->start_ms = now;
        due = b->start_ms + b->offset * b->pace_ms / b->pace_total;
        if (due > now)
            h_sleep_ms((unsigned)(due - now)); /* a slow reader is the behaviour under test */
    }
    return 0;
}

/* Reads a /bytes response of `total` bytes on c and checks status, length and pattern. */
static void
expect_whole_body(struct h_conn *c, struct body_check *b, uint64_t total)
{
    struct h_msg m;
    int rc;

    b->bad = -1;
    rc = h_read_response_ex(c, &m, 0, H_IO_TIMEOUT_MS, body_check_sink, b);
    cr_assert(eq(int, rc, 0), "the download failed after %llu of %llu body bytes: %s",
              (unsigned long long)b->offset, (unsigned long long)total, m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(u64, (uint64_t)m.body_len, total), "got %zu of %llu body bytes", m.body_len,
              (unsigned long long)total);
    cr_assert(eq(i64, b->bad, -1LL), "byte %lld of the body is off the pattern", b->bad);
}

/* ------------------------------------------------------------------ scripted nodes */

#define NODE_MAX_CONNS 16
#define NODE_IN_CAP    65536

/* Serves the index-th connection accepted, on its own thread; returns when done (the fd stays
 * open until the node stops). Never asserts: it leaves what it saw in the node's ctx. */
typedef void (*node_fn)(struct node *n, int fd, size_t index);

struct node_conn {
    struct node *n;
    int fd;
    size_t index;
    pthread_t thread;
};

struct node {
    int listen_fd;
    int port;
    int wake[2]; /* a byte on wake[1] stops the acceptor */
    node_fn fn;
    void *ctx;          /* the test's, borrowed; guarded by mu */
    pthread_mutex_t mu; /* guards conns, n_conns and ctx */
    atomic_bool stop;   /* the node is stopping: scripts return */
    pthread_t acceptor;
    struct node_conn conns[NODE_MAX_CONNS];
    size_t n_conns;
};

static void *
node_conn_main(void *arg)
{
    struct node_conn *nc = arg;

    nc->n->fn(nc->n, nc->fd, nc->index);
    return NULL;
}

static void *
node_accept_main(void *arg)
{
    struct node *n = arg;

    for (;;) {
        struct pollfd pfd[2] = {{.fd = n->wake[0], .events = POLLIN},
                                {.fd = n->listen_fd, .events = POLLIN}};
        struct node_conn *nc;
        int fd;

        if (poll(pfd, 2, -1) == -1) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pfd[0].revents != 0)
            break;
        fd = accept4(n->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd == -1)
            continue;
        pthread_mutex_lock(&n->mu);
        if (n->n_conns == NODE_MAX_CONNS) {
            pthread_mutex_unlock(&n->mu);
            close(fd);
            continue;
        }
        nc = &n->conns[n->n_conns];
        *nc = (struct node_conn){.n = n, .fd = fd, .index = n->n_conns};
        if (pthread_create(&nc->thread, NULL, node_conn_main, nc) == 0)
            n->n_conns++;
        else
            close(fd);
        pthread_mutex_unlock(&n->mu);
    }
    return NULL;
}

/*
 * Starts a scripted node on a free loopback port. rcvbuf > 0 sets the accepted connections'
 * SO_RCVBUF and mss > 0 the MSS they announce (both through the listener): a node that looks
 * like one far away, whose socket takes little before a sender blocks.
 */
static struct node *
node_start(node_fn fn, void *ctx, int rcvbuf, int mss)
{
    struct node *n = h_alloc(sizeof(*n));
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);

    cr_assert(lt(sz, lc_state.n_nodes, sizeof(lc_state.nodes) / sizeof(lc_state.nodes[0])));
    n->fn = fn;
    n->ctx = ctx;
    pthread_mutex_init(&n->mu, NULL);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    n->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(ge(int, n->listen_fd, 0), "socket: %s", strerror(errno));
    if (rcvbuf > 0)
        setsockopt(n->listen_fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    if (mss > 0)
        cr_assert(eq(int, setsockopt(n->listen_fd, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof(mss)), 0),
                  "TCP_MAXSEG %d: %s", mss, strerror(errno));
    cr_assert(eq(int, bind(n->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0), "bind: %s",
              strerror(errno));
    cr_assert(eq(int, listen(n->listen_fd, 64), 0), "listen: %s", strerror(errno));
    getsockname(n->listen_fd, (struct sockaddr *)&sa, &len);
    n->port = ntohs(sa.sin_port);
    cr_assert(eq(int, pipe2(n->wake, O_CLOEXEC), 0), "pipe2: %s", strerror(errno));
    lc_state.nodes[lc_state.n_nodes++] = n;
    cr_assert(eq(int, pthread_create(&n->acceptor, NULL, node_accept_main, n), 0));
    return n;
}

/* Stops the acceptor, wakes every script (their sockets are shut down) and joins them. */
static void
node_stop(struct node *n)
{
    atomic_store(&n->stop, true);
    (void)!write(n->wake[1], "x", 1);
    pthread_join(n->acceptor, NULL);
    for (size_t i = 0; i < n->n_conns; i++)
        shutdown(n->conns[i].fd, SHUT_RDWR);
    for (size_t i = 0; i < n->n_conns; i++) {
        pthread_join(n->conns[i].thread, NULL);
        close(n->conns[i].fd);
    }
    close(n->listen_fd);
    close(n->wake[0]);
    close(n->wake[1]);
    pthread_mutex_destroy(&n->mu);
}

static size_t
node_conns(struct node *n)
{
    size_t k;

    pthread_mutex_lock(&n->mu);
    k = n->n_conns;
    pthread_mutex_unlock(&n->mu);
    return k;
}

static void
lc_teardown(void)
{
    for (size_t i = 0; i < lc_state.n_nodes; i++)
        node_stop(lc_state.nodes[i]);
    for (size_t i = 0; i < lc_state.n_conns; i++)
        h_close(lc_state.conns[i]);
    memset(&lc_state, 0, sizeof(lc_state));
    h_teardown();
}

/* Sleeps `ms`, in slices, returning early when the node stops: for scripts whose slowness is the
 * behaviour under test (a node that stops reading, one that answers late). */
static void
node_sleep(struct node *n, unsigned ms)
{
    uint64_t end = h_now_ms() + ms;

    while (!atomic_load(&n->stop) && h_now_ms() < end)
        h_sleep_ms(10);
}

/* Receives what is there within timeout_ms: bytes, 0 at EOF, -1 on error, timeout or stop. */
static ssize_t
node_recv(struct node *n, int fd, char *buf, size_t cap, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};

    if (atomic_load(&n->stop) || poll(&pfd, 1, timeout_ms) != 1)
        return -1;
    return recv(fd, buf, cap, 0);
}

static int
node_send(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t k = send(fd, data, len, MSG_NOSIGNAL);

        if (k == -1 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        data += k;
        len -= (size_t)k;
    }
    return 0;
}

/* A script's input buffer: bytes received and not consumed yet, NUL-terminated. */
struct node_in {
    char buf[NODE_IN_CAP + 1];
    size_t len;
};

/* Reads until in->buf holds a whole request head: its length, or -1 (EOF, error, timeout). */
static ssize_t
node_read_head(struct node *n, int fd, struct node_in *in, int timeout_ms)
{
    for (;;) {
        char *end = strstr(in->buf, "\r\n\r\n");
        ssize_t k;

        if (end != NULL)
            return end + 4 - in->buf;
        if (in->len == NODE_IN_CAP)
            return -1;
        k = node_recv(n, fd, in->buf + in->len, NODE_IN_CAP - in->len, timeout_ms);
        if (k <= 0)
            return -1;
        in->len += (size_t)k;
        in->buf[in->len] = '\0';
    }
}

/* Drops the first `k` bytes of in->buf. */
static void
node_consume(struct node_in *in, size_t k)
{
    memmove(in->buf, in->buf + k, in->len - k);
    in->len -= k;
    in->buf[in->len] = '\0';
}

/* ------------------------------------------------------------------ 1-3: slow readers */

/* A proxy in front of one xf-upstream, with options `o` (cluster x is filled in here). */
static struct h_proxy *
proxy_with_upstream(struct h_proxy_opts o)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);

    o.x[0] = (struct h_node){.port = u->port};
    return h_proxy_start(&o);
}

Test(connection_lifecycle, a_client_that_half_closes_and_reads_slowly_still_gets_the_whole_body,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = proxy_with_upstream((struct h_proxy_opts){.x = {{0}}});
    struct h_conn *c = connect_small_rcvbuf(p->port, SMALL_RCVBUF);
    struct body_check b = {.offset = 0};
    int adm = h_admin_connect(p);

    cr_assert(
        eq(int, h_sendf(c, "GET /bytes/%d HTTP/1.1\r\nHost: %s\r\n\r\n", SLOW_BODY, H_HOST), 0));
    /*
     * "Nothing more from me", once the node has sent all of the response (the proxy counts it)
     * and the proxy holds the end of it, stuck behind the client's small window. A half-close
     * that arrives with the request is seen while it is in flight, which hides a proxy that
     * drops what it still has to write when it reads the EOF later.
     */
    h_await_stat(adm, "x responses", "2xx", 1);
    cr_assert(eq(int, shutdown(c->fd, SHUT_WR), 0), "shutdown: %s", strerror(errno));
    /* The client reads on only once the proxy has had the EOF: it is at the proxy's socket, and
     * the proxy's loop has gone round since. */
    cr_assert(h_tcp_wait(p->port, h_conn_port(c), H_TCP_CLOSE_WAIT, 0, H_IO_TIMEOUT_MS),
              "the client's FIN did not reach the proxy's socket");
    h_admin_sync(adm);
    expect_whole_body(c, &b, SLOW_BODY);
    h_proxy_finish(p);
}

Test(connection_lifecycle, client_idle_does_not_cut_a_response_that_is_still_being_written,
     .timeout = H_TEST_TIMEOUT)
{
    /*
     * 16 MiB read evenly over 2 s, past client_idle (1 s), never idle for more than a few ms. The
     * kernel buffers on the way (the proxy's send buffer grows to tcp_wmem's maximum, 4 MiB by
     * default) hold far less than the 8 MiB still to come at 1 s: a proxy that closes then, even
     * gracefully, cuts the body.
     */
    const uint64_t total = UINT64_C(16) << 20;
    struct h_proxy *p =
        proxy_with_upstream((struct h_proxy_opts){.x = {{0}}, .client_idle_ms = 1000});
    struct h_conn *c = connect_small_rcvbuf(p->port, SMALL_RCVBUF);
    struct body_check b = {.pace_total = total, .pace_ms = 2000};
    uint64_t start = h_now_ms();

    h_sendf(c, "GET /bytes/%llu HTTP/1.1\r\nHost: %s\r\n\r\n", (unsigned long long)total, H_HOST);
    expect_whole_body(c, &b, total);
    cr_assert(gt(u64, h_now_ms() - start, (uint64_t)1250),
              "the download took %llu ms: not longer than client_idle, it proves nothing",
              (unsigned long long)(h_now_ms() - start));
    h_proxy_finish(p);
}

Test(connection_lifecycle, sigterm_during_a_slow_download_lets_the_whole_body_out_then_exits_0,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = proxy_with_upstream((struct h_proxy_opts){.x = {{0}}});
    struct h_conn *c = connect_small_rcvbuf(p->port, SMALL_RCVBUF);
    struct body_check b = {.offset = 0};
    int code;

    h_sendf(c, "GET /bytes/%d HTTP/1.1\r\nHost: %s\r\n\r\n", SLOW_BODY, H_HOST);
    /* The response is under way, stuck behind the client's small window. */
    cr_assert(eq(int, h_conn_wait(c, H_IO_TIMEOUT_MS), H_DATA), "no byte of the response came");
    cr_assert(eq(int, kill(p->proc->pid, SIGTERM), 0));
    /* The client reads on only once the proxy has begun its shutdown. */
    cr_assert(h_log_wait(p->proc->log_path, "event=shutdown in_flight=", H_IO_TIMEOUT_MS),
              "crossfade did not log the start of its shutdown");
    expect_whole_body(c, &b, SLOW_BODY);
    code = h_proc_wait(p->proc, (int)p->shutdown_ms + 5000);
    cr_assert(eq(int, code, 0), "crossfade exited with %d after SIGTERM and the download", code);
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ 4: a node slow to read */

#define UPLOAD_BYTES (UINT64_C(8) << 20)
#define NODE_MSS     88   /* the smallest Linux takes: a send buffer of ~120 KiB at most */
#define NODE_RCVBUF  1024 /* the kernel doubles it, and keeps a floor */

struct slow_reader {
    uint64_t body_bytes; /* request body bytes the node read */
};

/* Reads the head, stops reading for 2.5 s, then reads the body (now quickly) and answers 200. */
static void
slow_reader_script(struct node *n, int fd, size_t index)
{
    struct slow_reader *s = n->ctx;
    struct node_in *in = malloc(sizeof(*in));
    char sink[65536];
    int big = 4 << 20;
    const char *cl;
    uint64_t want, got;
    ssize_t head;

    (void)index;
    if (in == NULL)
        return;
    in->len = 0;
    in->buf[0] = '\0';
    head = node_read_head(n, fd, in, 10000);
    if (head < 0)
        goto out;
    cl = strstr(in->buf, "Content-Length:");
    want = cl != NULL ? strtoull(cl + 15, NULL, 10) : 0;
    got = in->len - (size_t)head;
    node_sleep(n, 2500); /* the pause is the behaviour under test */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    while (got < want) {
        ssize_t k = node_recv(n, fd, sink, sizeof(sink), 10000);

        if (k <= 0)
            break;
        got += (uint64_t)k;
    }
    pthread_mutex_lock(&n->mu);
    s->body_bytes = got;
    pthread_mutex_unlock(&n->mu);
    if (got == want)
        node_send(fd, OK_REPLY, strlen(OK_REPLY));
out:
    free(in);
}

/*
 * The node stops reading for 2.5 s, longer than connect (1 s), shorter than upstream_response
 * (10 s): the sends that wait meanwhile are bounded by upstream_response. The node's small MSS
 * and receive buffer make the proxy block on its very first send after the connect (the first
 * 64 KiB read from the client do not fit), where a connect timeout left armed would fire.
 */
Test(connection_lifecycle,
     a_node_slow_to_read_the_request_body_is_bounded_by_upstream_response_not_connect,
     .timeout = H_TEST_TIMEOUT)
{
    struct slow_reader s = {.body_bytes = 0};
    struct node *n = node_start(slow_reader_script, &s, NODE_RCVBUF, NODE_MSS);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{n->port}}, .connect_ms = 1000, .upstream_response_ms = 10000});
    struct h_conn *c = h_connect(p->port);
    const char *head = h_fmt("POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Length: %llu\r\n\r\n",
                             H_HOST, (unsigned long long)UPLOAD_BYTES);
    size_t first = 65536, head_len = strlen(head);
    char *buf = h_alloc(first);
    uint64_t sent, node_got;
    struct h_msg m;
    int rc;

    /* The head and the start of the body in one segment: the proxy reads them in one go. */
    memset(buf, 'u', first);
    memcpy(buf, head, head_len);
    rc = h_send(c, buf, first);
    sent = first - head_len;
    memset(buf, 'u', first);
    /* Blocks while the node does not read; stops if the proxy gives up and closes. */
    while (rc == 0 && sent < UPLOAD_BYTES) {
        size_t k = UPLOAD_BYTES - sent < first ? (size_t)(UPLOAD_BYTES - sent) : first;

        rc = h_send(c, buf, k);
        sent += rc == 0 ? k : 0;
    }
    rc = h_read_response_ex(c, &m, 0, 15000, NULL, NULL);
    pthread_mutex_lock(&n->mu);
    node_got = s.body_bytes;
    pthread_mutex_unlock(&n->mu);
    cr_assert(eq(int, rc, 0), "no response after %llu of %llu body bytes: %s",
              (unsigned long long)sent, (unsigned long long)UPLOAD_BYTES, m.error);
    cr_assert(eq(int, m.status, 200),
              "status %d after %llu of %llu body bytes, while the node paused 2.5 s "
              "(connect: 1s, upstream_response: 10s)",
              m.status, (unsigned long long)sent, (unsigned long long)UPLOAD_BYTES);
    cr_assert(eq(str, m.body, "ok\n"));
    cr_assert(eq(u64, node_got, UPLOAD_BYTES), "the node read %llu body bytes",
              (unsigned long long)node_got);
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ 5: a response cut mid-body */

#define CUT_CHUNKED "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\na\r\nwor"

/* Whether a raw chunked body reaches its last chunk ("0" size line). */
static bool
chunked_has_last_chunk(const char *p, size_t len)
{
    size_t i = 0;

    while (i < len && isxdigit((unsigned char)p[i])) {
        const char *eol = memmem(p + i, len - i, "\r\n", 2);
        unsigned long long size = strtoull(p + i, NULL, 16);

        if (eol == NULL)
            return false;
        if (size == 0)
            return true;
        i = (size_t)(eol - p) + 2 + size + 2;
    }
    return false;
}

Test(connection_lifecycle, a_response_cut_mid_body_resets_an_http_1_0_client,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f = h_fake_start1(CUT_CHUNKED, H_FAKE_CLOSE);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(f)}}});
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;
    char *body;
    size_t len;
    int end;

    h_sendf(c, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", H_HOST);
    cr_assert(eq(int, h_read_head(c, &m, H_IO_TIMEOUT_MS), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(ptr, (void *)h_header(&m, "Content-Length"), NULL), "%s", m.head);
    /* The body is delimited by the close: only a reset says it was cut. */
    end = read_to_end(c, &body, &len, 5000);
    cr_assert(eq(int, end, ECONNRESET),
              "the cut body \"%s\" (%zu bytes) ended with %s, not a reset: it looks complete", body,
              len, end_name(end));
    h_proxy_finish(p);
}

Test(connection_lifecycle, a_response_cut_mid_body_stays_unterminated_for_an_http_1_1_client,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f = h_fake_start1(CUT_CHUNKED, H_FAKE_CLOSE);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(f)}}});
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;
    char *body;
    size_t len;
    int end;

    h_sendf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", H_HOST);
    cr_assert(eq(int, h_read_head(c, &m, H_IO_TIMEOUT_MS), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(h_header_has_token(&m, "Transfer-Encoding", "chunked"), "%s", m.head);
    end = read_to_end(c, &body, &len, 5000);
    cr_assert(ne(int, end, ETIMEDOUT), "the connection stayed open after the cut body \"%s\"",
              body);
    cr_assert(not(chunked_has_last_chunk(body, len)),
              "the cut body got a last chunk, it looks complete: \"%s\"", body);
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ 6: Connection headers */

Test(connection_lifecycle, a_header_named_by_connection_is_removed_even_with_a_132_char_name,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = proxy_with_upstream((struct h_proxy_opts){.x = {{0}}});
    struct h_conn *c = h_connect(p->port);
    char name[133];
    struct h_msg m, seen;

    memcpy(name, "X-Hop-", 6);
    memset(name + 6, 'n', sizeof(name) - 7);
    name[sizeof(name) - 1] = '\0';
    cr_assert(eq(sz, strlen(name), (size_t)132));
    h_sendf(c,
            "GET /echo HTTP/1.1\r\nHost: %s\r\nConnection: %s\r\n%s: hop-secret\r\n"
            "X-E2E: kept\r\n\r\n",
            H_HOST, name, name);
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200), "/echo answered %d", m.status);
    cr_assert(eq(int, h_parse_request_head(m.body, m.body_len, &seen), 0), "%s", seen.error);
    cr_assert(eq(sz, h_header_count(&seen, name), (size_t)0),
              "the header named by Connection reached the node:\n%s", seen.head);
    cr_assert(eq(ptr, (void *)h_memcasemem(seen.head, seen.head_len, "hop-secret"), NULL));
    cr_assert(eq(str, (char *)h_header(&seen, "X-E2E"), "kept"), "an end-to-end header was lost");
    h_proxy_finish(p);
}

Test(connection_lifecycle, seventeen_connection_header_fields_get_400, .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f = h_fake_start1(OK_REPLY, H_FAKE_KEEP);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(f)}}});
    struct h_conn *c = h_connect(p->port);
    const char *raw = h_fmt("GET / HTTP/1.1\r\nHost: %s\r\n", H_HOST);
    struct h_msg m;

    /* Only the first 16 would be honoured: the 17th's header would reach the node. */
    for (int i = 1; i <= 17; i++)
        raw = h_fmt("%sConnection: X-Hop-%d\r\nX-Hop-%d: hop-secret\r\n", raw, i, i);
    raw = h_fmt("%s\r\n", raw);
    (void)h_send_str(c, raw);
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 400), "17 Connection fields got %d", m.status);
    h_fake_expect_only_sentinels(f, p->port, NULL); /* the request did not reach the node */
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ 7: refusal before the body */

#define REFUSED_BODY_SENT (UINT64_C(2) << 20)

Test(connection_lifecycle,
     a_client_still_sending_a_refused_body_reads_the_whole_413_then_a_clean_close,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f = h_fake_start1(OK_REPLY, H_FAKE_KEEP);
    struct h_proxy *p =
        h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(f)}}, .max_body_bytes = 1000});
    struct h_conn *c = h_connect(p->port);
    char *piece = h_alloc(65536), rx[65536], *rest;
    uint64_t sent = 0;
    int send_err = 0, recv_err = 0, end;
    size_t rest_len;
    struct h_msg m;

    memset(piece, 'b', 65536);
    h_sendf(c, "POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Length: 50000000\r\n\r\n", H_HOST);
    /* A client that streams its body and watches for an early answer, as curl does. */
    while (sent < REFUSED_BODY_SENT && send_err == 0 && recv_err == 0) {
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN | POLLOUT};
        ssize_t k;

        cr_assert(eq(int, poll(&pfd, 1, H_IO_TIMEOUT_MS), 1), "the connection stalled");
        if (pfd.revents & (POLLIN | POLLERR | POLLHUP)) {
            k = recv(c->fd, rx, sizeof(rx), 0);
            if (k > 0)
                conn_append(c, rx, (size_t)k);
            else if (k == -1 && errno != EAGAIN && errno != EINTR)
                recv_err = errno;
        }
        if (recv_err == 0 && (pfd.revents & POLLOUT)) {
            k = send(c->fd, piece, 65536, MSG_NOSIGNAL);
            if (k > 0)
                sent += (uint64_t)k;
            else if (k == -1 && errno != EAGAIN && errno != EINTR)
                send_err = errno;
        }
    }
    cr_assert(eq(int, h_read_response(c, &m), 0),
              "the 413 could not be read (%llu body bytes sent; send: %s; recv: %s): %s",
              (unsigned long long)sent, send_err != 0 ? strerror(send_err) : "ok",
              recv_err != 0 ? strerror(recv_err) : "ok", m.error);
    cr_assert(eq(int, m.status, 413));
    cr_assert(gt(sz, m.body_len, (size_t)0), "the 413 came without its body:\n%s", m.head);
    /* Graceful: the proxy read and dropped the body meanwhile, and only shut its side. */
    cr_assert(eq(int, send_err, 0), "sending the body failed with %s after %llu bytes",
              strerror(send_err), (unsigned long long)sent);
    cr_assert(eq(int, recv_err, 0), "reading failed with %s", strerror(recv_err));
    end = read_to_end(c, &rest, &rest_len, 5000);
    cr_assert(eq(int, end, 0), "the connection ended with %s after the 413, not a clean close",
              end_name(end));
    cr_assert(eq(sz, rest_len, (size_t)0), "bytes followed the 413: \"%s\"", rest);
    cr_assert(eq(sz, h_fake_bytes(f), (size_t)0), "bytes reached the node: \"%s\"",
              h_fake_received(f, 0, NULL));
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ 8: late bytes after HEAD */

#define SPOOF      "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nspoofed\n"
#define REAL_REPLY "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nreal\n"

struct late_bytes {
    char log[4096]; /* "conn <i>: <request line>\n" for every request the node got */
    size_t log_len;
};

static void
late_bytes_log(struct node *n, size_t index, const char *head)
{
    struct late_bytes *l = n->ctx;
    size_t line = strcspn(head, "\r\n");

    pthread_mutex_lock(&n->mu);
    snprintf(l->log + l->log_len, sizeof(l->log) - l->log_len, "conn %zu: %.*s\n", index, (int)line,
             head);
    l->log_len += strlen(l->log + l->log_len);
    pthread_mutex_unlock(&n->mu);
}

/*
 * Answers a HEAD with Content-Length: 46 and, 50 ms later, 46 more bytes that form a whole
 * response; from then on it only records what comes on that connection. Any other request gets
 * the real reply.
 */
static void
late_bytes_script(struct node *n, int fd, size_t index)
{
    static const char head_reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 46\r\n\r\n";
    struct node_in *in = malloc(sizeof(*in));
    bool answering = true;
    ssize_t head;

    _Static_assert(sizeof(SPOOF) - 1 == 46, "the spoofed response fills the HEAD's length");
    if (in == NULL)
        return;
    in->len = 0;
    in->buf[0] = '\0';
    while ((head = node_read_head(n, fd, in, 10000)) >= 0) {
        late_bytes_log(n, index, in->buf);
        if (answering && strncmp(in->buf, "HEAD ", 5) == 0) {
            node_send(fd, head_reply, sizeof(head_reply) - 1);
            node_sleep(n, 50); /* late bytes, after the proxy took the HEAD response as whole */
            node_send(fd, SPOOF, sizeof(SPOOF) - 1);
            answering = false;
        } else if (answering) {
            node_send(fd, REAL_REPLY, sizeof(REAL_REPLY) - 1);
        }
        node_consume(in, (size_t)head);
    }
    free(in);
}

Test(connection_lifecycle, bytes_a_node_sends_after_a_head_response_never_answer_the_next_request,
     .timeout = H_TEST_TIMEOUT)
{
    struct late_bytes l = {.log_len = 0};
    struct node *n = node_start(late_bytes_script, &l, 0, 0);
    struct h_proxy *p =
        h_proxy_start(&(struct h_proxy_opts){.x = {{n->port}}, .upstream_response_ms = 3000});
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;
    char log[sizeof(l.log)];
    int rc;

    h_sendf(c, "HEAD /a HTTP/1.1\r\nHost: %s\r\n\r\nGET /b HTTP/1.1\r\nHost: %s\r\n\r\n", H_HOST,
            H_HOST);
    cr_assert(eq(int, h_read_response_ex(c, &m, H_NO_BODY, H_IO_TIMEOUT_MS, NULL, NULL), 0),
              "HEAD: %s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, (char *)h_header(&m, "Content-Length"), "46"), "%s", m.head);
    rc = h_read_response(c, &m);
    pthread_mutex_lock(&n->mu);
    memcpy(log, l.log, sizeof(log));
    pthread_mutex_unlock(&n->mu);
    cr_assert(eq(int, rc, 0), "GET: %s; the node got:\n%s", m.error, log);
    cr_assert(ne(str, m.body, "spoofed\n"),
              "the GET got the bytes the node sent after its HEAD response (%zu node "
              "connections); the node got:\n%s",
              node_conns(n), log);
    cr_assert(eq(int, m.status, 200), "GET: status %d; the node got:\n%s", m.status, log);
    cr_assert(eq(str, m.body, "real\n"), "the node got:\n%s", log);
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ 9: 204 with a length */

Test(connection_lifecycle, a_node_connection_is_not_reused_after_a_204_with_a_content_length,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_fake_reply replies[] = {
        {.bytes = "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", .action = H_FAKE_KEEP},
        {.bytes = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nfresh\n", .action = H_FAKE_KEEP},
    };
    struct h_fake *f = h_fake_start(replies, 2);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(f)}}});
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    cr_assert(eq(int, h_get(c, "/first", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 204));
    cr_assert(eq(int, h_get(c, "/second", &m), 0), "%s", m.error);
    cr_assert(eq(sz, h_fake_requests(f, 0), (size_t)1),
              "the node connection that framed a 204 with Content-Length: 5 was reused");
    cr_assert(eq(sz, h_fake_conns(f), (size_t)2), "%zu node connections", h_fake_conns(f));
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, m.body, "fresh\n"));
    h_proxy_finish(p);
}
