/* tests/fuzz/fuzz_px.c -- the real proxy in one process for the request and response harnesses.
 *
 * Why not a parse function fed directly: the request path is llhttp callbacks in px_client.c that
 * reach the worker's header table, pick a node and dispatch the transaction as the head completes;
 * the response path lives in px_upstream.c on a connection from the pool. Separating parsing from
 * the sockets would touch the hot path that is measured against HAProxy; driving the worker as it
 * runs costs nothing there. So this builds one worker (px_ctl_new, never spawned: its loop runs
 * on this thread), gives it the client end of a socketpair as an accepted connection, and points
 * cluster x at a loopback listener of the harness in the same event loop. A run goes: open, send
 * chunks (the loop runs until nothing moves after each), EOF, check, close: every connection
 * closed and freed on both sides so that LeakSanitizer stays quiet and runs do not leak into each
 * other. Nothing waits for a timer: the proxy's timeouts are far longer than a run. */
#include "tests/fuzz/fuzz_px.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "proxy/px_conn.h"
#include "tests/fuzz/fuzz.h"

#define FZ_PX_QUIET 4     /* loop turns without progress that count as idle */
#define FZ_PX_TURNS 20000 /* more turns than this in one settle: the proxy spins (a bug) */

static struct {
    struct cfg *cfg;
    struct bal_router router;
    struct px_ctl *ctl;
    struct px_worker *w; /* borrowed from ctl */
    struct px_listener l;
    int node_lfd;
    struct event *node_lev;
    struct fz_px_hooks hooks;
    /* the run */
    int cfd; /* the client's end; -1 between runs */
    struct evbuffer *client_got;
    bool client_closed;
    struct fz_px_node_conn conns[FZ_PX_NODE_CONNS];
    size_t n_conns;
    unsigned long progress;
} fz;

static void
fz_px_conn_close(struct fz_px_node_conn *nc, bool by_proxy)
{
    if (nc->fd == -1)
        return;
    if (fz.hooks.node_close != NULL)
        fz.hooks.node_close(nc, by_proxy, fz.hooks.arg);
    event_free(nc->ev);
    nc->ev = NULL;
    close(nc->fd);
    nc->fd = -1;
    fz.progress++;
}

static void
fz_px_on_node_read(evutil_socket_t fd, short what, void *arg)
{
    struct fz_px_node_conn *nc = arg;
    char buf[16384];

    (void)what;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);

        if (n > 0) {
            fz.progress++;
            evbuffer_add(nc->got, buf, (size_t)n);
            if (fz.hooks.node_data != NULL)
                fz.hooks.node_data(nc, buf, (size_t)n, fz.hooks.arg);
            if (nc->fd == -1)
                return; /* the hook closed it */
            continue;
        }
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        fz_px_conn_close(nc, true); /* EOF or reset */
        return;
    }
}

static void
fz_px_on_node_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    for (;;) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct fz_px_node_conn *nc;

        if (cfd == -1)
            return;
        fz.progress++;
        if (fz.cfd == -1 || fz.n_conns == FZ_PX_NODE_CONNS) {
            close(cfd); /* between runs (a late connect), or too many */
            continue;
        }
        nc = &fz.conns[fz.n_conns++];
        nc->fd = cfd;
        nc->user = NULL;
        nc->got = evbuffer_new();
        nc->ev = event_new(fz.w->base, cfd, EV_READ | EV_PERSIST, fz_px_on_node_read, nc);
        FZ_CHECK(nc->got != NULL && nc->ev != NULL && event_add(nc->ev, NULL) == 0, "node conn");
    }
}

void
fz_px_init(const struct fz_px_hooks *hooks)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof(sin);
    struct xf_err err = {{0}};
    struct bal_snapshot *snap;
    char yaml[1024];
    int n;

    signal(SIGPIPE, SIG_IGN);
    xf_log_min = XF_LOG_ERR + 1;
    fz.hooks = *hooks;
    fz.cfd = -1;
    fz.node_lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    FZ_CHECK(fz.node_lfd != -1 && bind(fz.node_lfd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
                 listen(fz.node_lfd, 64) == 0 &&
                 getsockname(fz.node_lfd, (struct sockaddr *)&sin, &slen) == 0,
             "node listener: %s", strerror(errno));
    /* Small limits, so that inputs of a few KiB reach them; no retries and no failover, so that
     * a run has one node connection at a time. */
    n = snprintf(yaml, sizeof(yaml),
                 "listen:\n"
                 "  - address: \"127.0.0.1:1\"\n"
                 "workers: 1\n"
                 "split: {weight: 0, key: [\"header:X-Consumer-ID\", \"ip\"], seed: fuzz}\n"
                 "clusters:\n"
                 "  x: {nodes: [\"127.0.0.1:%u\"], failover: false}\n"
                 "  y: {nodes: [\"127.0.0.1:1\"], failover: false}\n"
                 "retries: 0\n"
                 "limits:\n"
                 "  max_request_line_bytes: 1024\n"
                 "  max_header_bytes: 2048\n"
                 "  max_headers: 24\n"
                 "  max_body_bytes: 8192\n",
                 ntohs(sin.sin_port));
    fz.cfg = cfg_parse(yaml, (size_t)n, "fuzz.yaml", &err);
    FZ_CHECK(fz.cfg != NULL, "config: %s", err.msg);
    snap = bal_snapshot_new(fz.cfg, NULL, 1, &err);
    FZ_CHECK(snap != NULL, "snapshot: %s", err.msg);
    bal_router_init(&fz.router, snap);
    fz.ctl = px_ctl_new(fz.cfg, &fz.router, &err);
    FZ_CHECK(fz.ctl != NULL && fz.ctl->n_workers == 1, "proxy: %s", err.msg);
    fz.w = fz.ctl->workers[0];
    fz.w->passive = false; /* no control thread reads its observations: never hold requests */
    fz.w->accepting = true;
    fz.l.w = fz.w;
    fz.l.conf = fz.cfg->listeners[0];
    fz.l.fd = -1;
    fz.node_lev =
        event_new(fz.w->base, fz.node_lfd, EV_READ | EV_PERSIST, fz_px_on_node_accept, NULL);
    FZ_CHECK(fz.node_lev != NULL && event_add(fz.node_lev, NULL) == 0, "node listener event");
    fz.client_got = evbuffer_new();
    FZ_CHECK(fz.client_got != NULL, "out of memory");
}

/* Reads what the proxy sent the client so far. */
static void
fz_px_client_read(void)
{
    char buf[16384];

    while (!fz.client_closed) {
        ssize_t n = recv(fz.cfd, buf, sizeof(buf), 0);

        if (n > 0) {
            evbuffer_add(fz.client_got, buf, (size_t)n);
            fz.progress++;
        } else if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        } else {
            fz.client_closed = true; /* EOF or reset */
            fz.progress++;
        }
    }
}

void
fz_px_settle(void)
{
    unsigned quiet = 0;

    for (unsigned turn = 0; quiet < FZ_PX_QUIET; turn++) {
        unsigned long before = fz.progress;

        FZ_CHECK(turn < FZ_PX_TURNS, "the loop never went idle: the proxy spins");
        event_base_loop(fz.w->base, EVLOOP_NONBLOCK);
        if (fz.cfd != -1)
            fz_px_client_read();
        quiet = fz.progress == before ? quiet + 1 : 0;
    }
}

void
fz_px_open(void)
{
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
    int sv[2];

    FZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0,
             "socketpair: %s", strerror(errno));
    inet_pton(AF_INET, "192.0.2.10", &peer.sin_addr);
    fz.cfd = sv[0];
    fz.client_closed = false;
    fz.n_conns = 0;
    evbuffer_drain(fz.client_got, evbuffer_get_length(fz.client_got));
    FZ_CHECK(px_ctl_client_take(fz.ctl) == 0, "no client slot");
    px_client_accept(fz.w, &fz.l, sv[1], (struct sockaddr *)&peer);
}

/*
 * Sends `data` on `*fd` as the proxy takes it, running the loop whenever the socket is full; stops
 * early when the proxy stops reading (back-pressure: the rest waits), closed, or `*stop` is set.
 */
static void
fz_px_send(const int *fd, const bool *stop, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0 && *fd != -1 && !*stop) {
        ssize_t n = send(*fd, p, len, MSG_NOSIGNAL);

        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            unsigned long before = fz.progress;

            fz_px_settle();
            if (fz.progress == before)
                break;
        } else {
            break; /* the proxy closed: what is left is never read */
        }
    }
    fz_px_settle();
}

void
fz_px_client_send(const void *data, size_t len)
{
    fz_px_send(&fz.cfd, &fz.client_closed, data, len);
}

void
fz_px_client_eof(void)
{
    shutdown(fz.cfd, SHUT_WR);
    fz_px_settle();
}

void
fz_px_node_send(struct fz_px_node_conn *nc, const void *data, size_t len)
{
    static const bool never;

    fz_px_send(&nc->fd, &never, data, len);
}

void
fz_px_node_eof(struct fz_px_node_conn *nc)
{
    if (nc->fd != -1)
        shutdown(nc->fd, SHUT_WR);
    fz_px_settle();
}

struct evbuffer *
fz_px_client_got(void)
{
    return fz.client_got;
}

bool
fz_px_client_closed(void)
{
    return fz.client_closed;
}

struct fz_px_node_conn *
fz_px_node_conn(size_t i)
{
    return i < fz.n_conns ? &fz.conns[i] : NULL;
}

size_t
fz_px_node_conns(void)
{
    return fz.n_conns;
}

void
fz_px_close(void)
{
    struct px_worker *w = fz.w;

    for (size_t i = 0; i < fz.n_conns; i++)
        fz_px_conn_close(&fz.conns[i], false);
    fz_px_settle(); /* the proxy sees its node connections end */
    while (!TAILQ_EMPTY(&w->clients))
        px_client_free(TAILQ_FIRST(&w->clients));
    for (size_t i = 0; i < w->n_pools; i++)
        if (w->pools[i] != NULL)
            px_pool_close_idle(w->pools[i]);
    close(fz.cfd);
    fz.cfd = -1;
    fz_px_settle(); /* a late connect is accepted and closed */
    for (size_t i = 0; i < fz.n_conns; i++) {
        evbuffer_free(fz.conns[i].got);
        fz.conns[i].got = NULL;
    }
    fz.n_conns = 0;
}
