/* bench/bench_upstream_conn.c -- xf-upstream's connections: accept, recv, speculative send, close.
 */
#include "bench/bench_upstream.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#define BENCH_UP_ACCEPT_BATCH 64
#define BENCH_UP_ACCEPT_PAUSE 100 /* ms without accepting after EMFILE */
#define BENCH_UP_LINGER_READS 16  /* reads per wake-up while discarding input */

/* What a read brought. */
enum bench_up_rd {
    BENCH_UP_RD_DATA = 0,
    BENCH_UP_RD_AGAIN,
    BENCH_UP_RD_EOF,
    BENCH_UP_RD_FULL, /* the buffer holds only an unfinished head: it is too long */
    BENCH_UP_RD_ERROR,
};

static void bench_up_conn_drive(struct bench_up_conn *c, int readable);

static void
bench_up_conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
    XF_UNUSED(fd);
    XF_UNUSED(what);
    bench_up_conn_drive(arg, 1);
}

static void
bench_up_conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
    XF_UNUSED(fd);
    XF_UNUSED(what);
    bench_up_conn_drive(arg, 0);
}

static void
bench_up_conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bench_up_conn *c = arg;
    enum bench_up_timer kind = c->timer;

    XF_UNUSED(fd);
    XF_UNUSED(what);
    c->timer = BENCH_UP_TIMER_NONE;
    switch (kind) {
    case BENCH_UP_TIMER_WAIT:
        bench_up_http_timer(c);
        bench_up_conn_drive(c, 0);
        break;
    case BENCH_UP_TIMER_IDLE:
        c->closing = 1;
        bench_up_conn_drive(c, 0);
        break;
    case BENCH_UP_TIMER_LINGER:
        bench_up_conn_free(c);
        break;
    case BENCH_UP_TIMER_NONE:
        break;
    }
}

int
bench_up_conn_timer(struct bench_up_conn *c, enum bench_up_timer kind, uint64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};

    if (c->tev == NULL && (c->tev = evtimer_new(c->w->base, bench_up_conn_timer_cb, c)) == NULL)
        return -1;
    if (evtimer_add(c->tev, &tv) == -1)
        return -1;
    c->timer = kind;
    return 0;
}

static void
bench_up_conn_timer_stop(struct bench_up_conn *c)
{
    if (c->timer == BENCH_UP_TIMER_NONE)
        return;
    evtimer_del(c->tev);
    c->timer = BENCH_UP_TIMER_NONE;
}

/* Arms or disarms the read and write events; a no-op (no epoll_ctl) when nothing changes. */
static void
bench_up_conn_want(struct bench_up_conn *c, int rd, int wr)
{
    if (rd != c->rev_on) {
        if (rd)
            event_add(c->rev, NULL);
        else
            event_del(c->rev);
        c->rev_on = (uint8_t)rd;
    }
    if (wr != c->wev_on) {
        if (wr)
            event_add(c->wev, NULL);
        else
            event_del(c->wev);
        c->wev_on = (uint8_t)wr;
    }
}

static void
bench_up_buf_release(struct bench_up_buf *b)
{
    if (b->owned)
        free(b->p);
    memset(b, 0, sizeof(*b));
}

void
bench_up_conn_free(struct bench_up_conn *c)
{
    struct bench_up_worker *w;

    if (c == NULL)
        return;
    w = c->w;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    if (c->rev != NULL)
        event_free(c->rev);
    if (c->wev != NULL)
        event_free(c->wev);
    if (c->tev != NULL)
        event_free(c->tev);
    if (c->fd != -1)
        close(c->fd);
    bench_up_buf_release(&c->in);
    bench_up_buf_release(&c->out);
    bench_up_http_fini(c);
    free(c);
}

/* Takes `fd`; closes it on failure. */
static void
bench_up_conn_new(struct bench_up_worker *w, int fd)
{
    struct bench_up_conn *c;
    int one = 1;

    if ((c = calloc(1, sizeof(*c))) == NULL) {
        close(fd);
        return;
    }
    c->w = w;
    c->fd = fd;
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    bench_up_count(&w->accepted);
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1) {
        /* Loopback Unix sockets aside, this does not fail; serving without it is still right. */
    }
    c->rev = event_new(w->base, fd, EV_READ | EV_PERSIST, bench_up_conn_read_cb, c);
    c->wev = event_new(w->base, fd, EV_WRITE | EV_PERSIST, bench_up_conn_write_cb, c);
    if (c->rev == NULL || c->wev == NULL || event_add(c->rev, NULL) == -1) {
        bench_up_conn_free(c);
        return;
    }
    c->rev_on = 1;
    bench_up_http_init(c);
    if (w->cfg->idle_close_ms > 0)
        bench_up_conn_timer(c, BENCH_UP_TIMER_IDLE, w->cfg->idle_close_ms);
}

/* Stops accepting for a while: a full descriptor table would make the listener spin. */
static void
bench_up_accept_pause(struct bench_up_worker *w, int err)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = BENCH_UP_ACCEPT_PAUSE * 1000};
    uint64_t now = xf_now_ms();

    if (now - w->last_warn_ms >= 1000) {
        w->last_warn_ms = now;
        XF_LOG(XF_LOG_WARN, "bench", "accept failed, pausing %d ms: %s", BENCH_UP_ACCEPT_PAUSE,
               strerror(err));
    }
    for (size_t i = 0; i < w->cfg->nlisten; i++)
        event_del(w->lev[i]);
    evtimer_add(w->accept_resume, &tv);
}

void
bench_up_accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bench_up_worker *w = arg;

    XF_UNUSED(fd);
    XF_UNUSED(what);
    for (size_t i = 0; i < w->cfg->nlisten; i++)
        event_add(w->lev[i], NULL);
}

void
bench_up_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
    struct bench_up_worker *w = arg;

    XF_UNUSED(what);
    for (int i = 0; i < BENCH_UP_ACCEPT_BATCH; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                bench_up_accept_pause(w, errno);
            return;
        }
        bench_up_conn_new(w, fd);
    }
}

/* Lends the worker's scratch buffers to a connection that owns none, for one turn. */
static void
bench_up_conn_turn_begin(struct bench_up_conn *c)
{
    if (!c->in.owned) {
        c->in.p = c->w->in_mem;
        c->in.cap = BENCH_UP_IN_CAP;
    }
    if (!c->out.owned) {
        c->out.p = c->w->out_mem;
        c->out.cap = BENCH_UP_OUT_CAP;
    }
}

/* First input byte still needed: the open head's start (for /echo), else the first unparsed. */
static size_t
bench_up_conn_keep_from(const struct bench_up_conn *c)
{
    return c->req.head_open ? c->req.head_start : c->parse_off;
}

/* Moves what input is still needed to the front of the buffer. */
static void
bench_up_conn_in_compact(struct bench_up_conn *c)
{
    size_t from = bench_up_conn_keep_from(c);

    if (from == 0)
        return;
    memmove(c->in.p, c->in.p + from, c->in.len - from);
    c->in.len -= from;
    c->parse_off -= from;
    if (c->req.head_open)
        c->req.head_start -= from;
}

/*
 * Ends a turn: input and output that outlive it move from the scratch buffers to the connection's
 * own (allocated once, kept until close). Returns 0, or -1 when that allocation fails.
 */
static int
bench_up_conn_turn_end(struct bench_up_conn *c)
{
    struct bench_up_buf *in = &c->in, *out = &c->out;

    bench_up_conn_in_compact(c);
    if (in->len > 0 && !in->owned) {
        char *p = malloc(BENCH_UP_IN_CAP);
        if (p == NULL)
            return -1;
        memcpy(p, in->p, in->len);
        in->p = p;
        in->owned = 1;
    }
    if (!in->owned)
        in->p = NULL;
    if (out->off == out->len) {
        out->off = out->len = 0;
    } else if (!out->owned) {
        char *p = malloc(BENCH_UP_OUT_CAP);
        if (p == NULL)
            return -1;
        memcpy(p, out->p + out->off, out->len - out->off);
        out->len -= out->off;
        out->off = 0;
        out->p = p;
        out->owned = 1;
    }
    if (!out->owned)
        out->p = NULL;
    return 0;
}

/*
 * Sends queued output once. Returns 1 when all of it went, 0 when the socket would block (a short
 * send means the socket buffer is full: no second call to learn EAGAIN), -1 on error.
 */
static int
bench_up_conn_flush(struct bench_up_conn *c)
{
    struct bench_up_buf *o = &c->out;
    ssize_t n = send(c->fd, o->p + o->off, o->len - o->off, MSG_NOSIGNAL);

    if (n == -1)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    o->off += (size_t)n;
    if (o->off < o->len)
        return 0;
    o->off = o->len = 0;
    return 1;
}

/* Reads once into the input buffer; `*more` says whether the read filled the room it had. */
static enum bench_up_rd
bench_up_conn_read(struct bench_up_conn *c, int *more)
{
    struct bench_up_buf *in = &c->in;
    ssize_t n;
    size_t room;

    bench_up_conn_in_compact(c);
    room = in->cap - in->len;
    if (room == 0)
        return BENCH_UP_RD_FULL;
    n = recv(c->fd, in->p + in->len, room, 0);
    if (n > 0) {
        in->len += (size_t)n;
        *more = (size_t)n == room;
        return BENCH_UP_RD_DATA;
    }
    *more = 0;
    if (n == 0)
        return BENCH_UP_RD_EOF;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return BENCH_UP_RD_AGAIN;
    return BENCH_UP_RD_ERROR;
}

/* Discards input after our FIN until the peer's FIN, an error or the linger timer. */
static void
bench_up_conn_linger(struct bench_up_conn *c)
{
    for (int i = 0; i < BENCH_UP_LINGER_READS; i++) {
        ssize_t n = recv(c->fd, c->w->in_mem, BENCH_UP_IN_CAP, 0);
        if (n > 0)
            continue;
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        bench_up_conn_free(c);
        return;
    }
}

/*
 * Closes after the output is sent. When the peer may still be sending, sends our FIN and keeps
 * reading for a while: closing with unread input would reset the connection, and the peer could
 * lose the answer it has not read yet. Frees the connection or leaves it lingering.
 */
static void
bench_up_conn_close(struct bench_up_conn *c)
{
    if (c->rd_eof || shutdown(c->fd, SHUT_WR) == -1) {
        bench_up_conn_free(c);
        return;
    }
    c->lingering = 1;
    bench_up_buf_release(&c->in);
    bench_up_buf_release(&c->out);
    bench_up_http_fini(c);
    bench_up_conn_want(c, 1, 0);
    if (bench_up_conn_timer(c, BENCH_UP_TIMER_LINGER, BENCH_UP_LINGER_MS) == -1)
        bench_up_conn_free(c);
}

/*
 * The one place a connection makes progress, from every event: produce responses from buffered
 * input, send them at once, read when the parser needs bytes. In the common case (one small
 * request per read) that is one recv and one send. `readable`: the socket reported input.
 */
static void
bench_up_conn_drive(struct bench_up_conn *c, int readable)
{
    enum bench_up_step step;
    int blocked = 0;

    if (c->lingering) {
        bench_up_conn_linger(c);
        return;
    }
    bench_up_conn_turn_begin(c);
    for (;;) {
        step = bench_up_http_produce(c);
        if (c->out.len > 0) {
            int r = bench_up_conn_flush(c);
            if (r == -1)
                goto dead;
            if (r == 0) {
                blocked = 1;
                break;
            }
            if (step == BENCH_UP_STEP_FLUSH)
                continue;
        }
        if (step == BENCH_UP_STEP_CLOSE) {
            bench_up_conn_close(c);
            return;
        }
        if (step != BENCH_UP_STEP_INPUT || !readable)
            break;
        switch (bench_up_conn_read(c, &readable)) {
        case BENCH_UP_RD_DATA:
            break;
        case BENCH_UP_RD_EOF:
            c->rd_eof = 1;
            break;
        case BENCH_UP_RD_FULL:
            bench_up_http_reject(c, 431);
            break;
        case BENCH_UP_RD_AGAIN:
            readable = 0;
            break;
        case BENCH_UP_RD_ERROR:
            goto dead;
        }
    }
    if (bench_up_conn_turn_end(c) == -1)
        goto dead;
    {
        int want_read = !blocked && step == BENCH_UP_STEP_INPUT && !c->rd_eof;
        bench_up_conn_want(c, want_read, blocked);
        if (want_read && c->w->cfg->idle_close_ms > 0)
            bench_up_conn_timer(c, BENCH_UP_TIMER_IDLE, c->w->cfg->idle_close_ms);
        else if (c->timer == BENCH_UP_TIMER_IDLE)
            bench_up_conn_timer_stop(c);
    }
    return;
dead:
    bench_up_conn_free(c);
}
