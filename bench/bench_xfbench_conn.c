/* bench/bench_xfbench_conn.c -- xfbench's workers: connections, requests, responses, the timeline.
 */
#include "bench/bench_xfbench.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define BENCH_XFB_BACKOFF_MS 100 /* before reconnecting after a failed connect */

uint64_t
bench_xfb_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* --- the shared timeline --- */

int
bench_xfb_agg_init(struct bench_xfb_agg *a, unsigned nworkers)
{
    memset(a, 0, sizeof(*a));
    if (pthread_mutex_init(&a->mu, NULL) != 0)
        return -1;
    for (size_t i = 0; i < BENCH_XFB_RING; i++) {
        a->ring[i].sec = -1;
        bench_xfb_hist_reset(&a->ring[i].h);
    }
    a->nworkers = nworkers;
    if ((a->flushed = calloc(nworkers, sizeof(*a->flushed))) == NULL) {
        pthread_mutex_destroy(&a->mu);
        return -1;
    }
    return 0;
}

void
bench_xfb_agg_fini(struct bench_xfb_agg *a)
{
    pthread_mutex_destroy(&a->mu);
    XF_FREE(a->secs);
    XF_FREE(a->flushed);
}

/* Closes second a->nsec: its percentiles are computed and its slot freed. Under the lock. */
static int
bench_xfb_agg_close_one(struct bench_xfb_agg *a)
{
    int64_t s = (int64_t)a->nsec;
    struct bench_xfb_slot *slot = &a->ring[s % BENCH_XFB_RING];
    struct bench_xfb_sec *sec;

    if (a->nsec == a->cap) {
        size_t cap = a->cap == 0 ? 64 : a->cap * 2;
        struct bench_xfb_sec *p = realloc(a->secs, cap * sizeof(*p));
        if (p == NULL)
            return -1;
        a->secs = p;
        a->cap = cap;
    }
    sec = &a->secs[a->nsec++];
    memset(sec, 0, sizeof(*sec));
    sec->span_s = 1.0;
    sec->weight_bp = -1;
    if (slot->sec == s) {
        sec->c = slot->c;
        sec->p50_ns = bench_xfb_hist_quantile(&slot->h, 0.5);
        sec->p99_ns = bench_xfb_hist_quantile(&slot->h, 0.99);
        sec->max_ns = slot->h.count > 0 ? slot->h.max : 0;
        slot->sec = -1;
        memset(&slot->c, 0, sizeof(slot->c));
        bench_xfb_hist_reset(&slot->h);
    }
    return 0;
}

size_t
bench_xfb_agg_close(struct bench_xfb_agg *a, int64_t now_sec, int all)
{
    size_t closed = 0;
    int64_t upto = all ? XF_MAX(a->hi, now_sec) : now_sec;

    pthread_mutex_lock(&a->mu);
    if (all)
        upto = XF_MAX(a->hi, now_sec);
    while ((int64_t)a->nsec < upto) {
        int64_t s = (int64_t)a->nsec;
        int ready = all || now_sec >= s + 1 + (BENCH_XFB_GRACE_MS + 999) / 1000;
        for (unsigned i = 0; !ready && i < a->nworkers; i++) {
            if (a->flushed[i] <= s)
                break;
            if (i + 1 == a->nworkers)
                ready = 1;
        }
        if (!ready || bench_xfb_agg_close_one(a) == -1)
            break;
        closed++;
    }
    pthread_mutex_unlock(&a->mu);
    return closed;
}

/*
 * Hands in worker `id`'s second `sec` (counts c and histogram h, either may be NULL when it holds
 * nothing) and says every second below `next` is handed in.
 */
static void
bench_xfb_agg_put(struct bench_xfb_agg *a, unsigned id, int64_t sec,
                  const struct bench_xfb_counts *c, const struct bench_xfb_hist *h, int64_t next)
{
    pthread_mutex_lock(&a->mu);
    if (c != NULL && sec >= (int64_t)a->nsec) {
        struct bench_xfb_slot *slot = &a->ring[sec % BENCH_XFB_RING];
        /* A slot still holding an older second: the main thread fell behind; close it now. */
        while (slot->sec != -1 && slot->sec != sec && (int64_t)a->nsec <= slot->sec) {
            if (bench_xfb_agg_close_one(a) == -1)
                break;
        }
        if (slot->sec == -1 || slot->sec == sec) {
            slot->sec = sec;
            bench_xfb_counts_add(&slot->c, c);
            if (h != NULL)
                bench_xfb_hist_merge(&slot->h, h);
        }
    } else if (c != NULL && sec >= 0) {
        /* Late: the second is closed; its counts still go in (its percentiles stay). */
        struct bench_xfb_sec *s = &a->secs[sec];
        bench_xfb_counts_add(&s->c, c);
        if (h != NULL && h->count > 0 && h->max > s->max_ns)
            s->max_ns = h->max;
    }
    if (c != NULL && sec + 1 > a->hi)
        a->hi = sec + 1;
    a->flushed[id] = next;
    pthread_mutex_unlock(&a->mu);
}

/* --- a worker's per-second counting --- */

static int
bench_xfb_counts_empty(const struct bench_xfb_counts *c)
{
    return c->responses == 0 && bench_xfb_counts_errors(c) == 0 && c->bytes == 0 &&
           c->handshakes == 0;
}

/* Hands in the current second and starts second `sec`. */
static void
bench_xfb_worker_flush(struct bench_xfb_worker *w, int64_t sec)
{
    int empty = bench_xfb_counts_empty(&w->cur);

    bench_xfb_agg_put(&w->run->agg, w->id, w->cur_sec, empty ? NULL : &w->cur,
                      empty ? NULL : w->cur_h, sec);
    if (!empty) {
        bench_xfb_counts_add(&w->total, &w->cur);
        bench_xfb_hist_merge(w->total_h, w->cur_h);
        memset(&w->cur, 0, sizeof(w->cur));
        bench_xfb_hist_reset(w->cur_h);
    }
    w->cur_sec = sec;
}

/*
 * The counts of the second `now` falls in, or NULL once the run's deadline has passed (what
 * completes after it is not counted, as in wrk).
 */
static struct bench_xfb_counts *
bench_xfb_worker_counts(struct bench_xfb_worker *w, uint64_t now)
{
    const struct bench_xfb_run *run = w->run;
    int64_t sec;

    if (run->end_ns != 0 && now >= run->end_ns)
        return NULL;
    sec = (int64_t)((now - run->start_ns) / 1000000000u);
    if (sec != w->cur_sec)
        bench_xfb_worker_flush(w, sec);
    w->cur_tenth = (unsigned)(((now - run->start_ns) % 1000000000u) / 100000000u);
    return &w->cur;
}

static void
bench_xfb_worker_error(struct bench_xfb_worker *w, enum bench_xfb_err kind)
{
    struct bench_xfb_counts *c = bench_xfb_worker_counts(w, bench_xfb_now_ns());

    if (c != NULL)
        c->err[kind]++;
}

/* Counts the response's route header value ("y 127.0.0.1:9201") by name and by cluster. */
static void
bench_xfb_worker_route(struct bench_xfb_worker *w, struct bench_xfb_counts *c, const char *v,
                       size_t len)
{
    size_t i;

    c->routed++;
    c->routed_tenth[w->cur_tenth < 10 ? w->cur_tenth : 9]++;
    if (v[0] == 'y' && (len == 1 || v[1] == ' '))
        c->on_y++;
    for (i = 0; i < w->nroutes; i++) {
        if (strlen(w->routes[i].name) == len && memcmp(w->routes[i].name, v, len) == 0) {
            w->routes[i].count++;
            return;
        }
    }
    if (w->nroutes == BENCH_XFB_ROUTES_MAX) {
        w->routes_other++;
        return;
    }
    memcpy(w->routes[w->nroutes].name, v, len);
    w->routes[w->nroutes].name[len] = '\0';
    w->routes[w->nroutes].count = 1;
    w->nroutes++;
}

/* --- the response parser --- */

static int
bench_xfb_on_message_begin(llhttp_t *p)
{
    struct bench_xfb_conn *c = p->data;

    c->status = 0;
    c->route_len = 0;
    c->route_done = 0;
    c->field_len = 0;
    c->field_long = 0;
    c->field_match = 0;
    return 0;
}

static int
bench_xfb_on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct bench_xfb_conn *c = p->data;

    if (c->field_long || c->field_len + len > sizeof(c->field)) {
        c->field_long = 1;
        return 0;
    }
    memcpy(c->field + c->field_len, at, len);
    c->field_len = (uint8_t)(c->field_len + len);
    return 0;
}

static int
bench_xfb_on_header_field_complete(llhttp_t *p)
{
    struct bench_xfb_conn *c = p->data;
    const struct bench_xfb_run *run = c->w->run;

    c->field_match = !c->field_long && !c->route_done && c->field_len == run->route_name_len &&
                     xf_span_ieq(c->field, c->field_len, run->route_name);
    c->field_len = 0;
    c->field_long = 0;
    return 0;
}

static int
bench_xfb_on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct bench_xfb_conn *c = p->data;
    size_t room = sizeof(c->route) - 1 - c->route_len;

    if (!c->field_match)
        return 0;
    len = XF_MIN(len, room);
    memcpy(c->route + c->route_len, at, len);
    c->route_len = (uint8_t)(c->route_len + len);
    return 0;
}

static int
bench_xfb_on_header_value_complete(llhttp_t *p)
{
    struct bench_xfb_conn *c = p->data;

    if (c->field_match)
        c->route_done = 1;
    c->field_match = 0;
    return 0;
}

static int
bench_xfb_on_headers_complete(llhttp_t *p)
{
    struct bench_xfb_conn *c = p->data;

    c->status = p->status_code;
    /* A HEAD response announces a length it does not send. */
    return c->w->run->o->method[0] == 'H' && strcmp(c->w->run->o->method, "HEAD") == 0 ? 1 : 0;
}

static int
bench_xfb_on_message_complete(llhttp_t *p)
{
    struct bench_xfb_conn *c = p->data;

    if (c->status >= 100 && c->status < 200 && c->status != 101)
        return 0; /* an interim response: the real one follows */
    c->complete = 1;
    c->keep_alive = (uint8_t)llhttp_should_keep_alive(p);
    return HPE_PAUSED;
}

static const llhttp_settings_t bench_xfb_resp_settings = {
    .on_message_begin = bench_xfb_on_message_begin,
    .on_header_field = bench_xfb_on_header_field,
    .on_header_field_complete = bench_xfb_on_header_field_complete,
    .on_header_value = bench_xfb_on_header_value,
    .on_header_value_complete = bench_xfb_on_header_value_complete,
    .on_headers_complete = bench_xfb_on_headers_complete,
    .on_message_complete = bench_xfb_on_message_complete,
};

/* --- connections --- */

static void bench_xfb_conn_connect(struct bench_xfb_conn *c);
static void bench_xfb_conn_next(struct bench_xfb_conn *c);

/* Closes the socket and its events; the connection itself stays (DOWN). */
static void
bench_xfb_conn_close(struct bench_xfb_conn *c)
{
    if (c->ssl != NULL) {
        /* One close_notify, not waited for, on a connection whose TLS is still sound. */
        bench_xfb_tls_keep_session(c->w, c->ssl);
        if (c->tls_live)
            SSL_shutdown(c->ssl);
        ERR_clear_error();
        SSL_free(c->ssl);
        c->ssl = NULL;
        c->tls_live = 0;
        c->tls_write_on_read = 0;
        c->tls_read_on_write = 0;
    }
    c->epoch++;
    if (c->rev != NULL)
        event_free(c->rev);
    c->rev = NULL;
    if (c->wev != NULL)
        event_free(c->wev);
    c->wev = NULL;
    if (c->tev != NULL)
        evtimer_del(c->tev);
    if (c->fd != -1)
        close(c->fd);
    c->fd = -1;
    c->st = BENCH_XFB_C_DOWN;
}

/* This connection sends no more requests. */
static void
bench_xfb_conn_done(struct bench_xfb_conn *c)
{
    struct bench_xfb_worker *w = c->w;

    if (c->st == BENCH_XFB_C_DONE)
        return;
    bench_xfb_conn_close(c);
    c->st = BENCH_XFB_C_DONE;
    if (--w->active == 0 && w->run->o->requests > 0)
        event_base_loopbreak(w->base);
}

/* A request failed: count it, drop the connection, open a new one. */
static void
bench_xfb_conn_fail(struct bench_xfb_conn *c, enum bench_xfb_err kind)
{
    bench_xfb_worker_error(c->w, kind);
    bench_xfb_conn_close(c);
    bench_xfb_conn_connect(c);
}

/* The server closed, or asked to close, a connection with no request outstanding. */
static void
bench_xfb_conn_reopen(struct bench_xfb_conn *c)
{
    bench_xfb_conn_close(c);
    bench_xfb_conn_connect(c);
}

static int
bench_xfb_conn_stopping(const struct bench_xfb_conn *c, uint64_t now)
{
    const struct bench_xfb_run *run = c->w->run;

    return atomic_load_explicit(&((struct bench_xfb_run *)run)->stop, memory_order_relaxed) ||
           (run->end_ns != 0 && now >= run->end_ns);
}

/* A TLS error on an established connection with a request outstanding: counted (tls, or reset
 * for a reset connection), the connection dropped and a new one opened. */
static void bench_xfb_conn_tls_error(struct bench_xfb_conn *c, int rc);

/*
 * https: sends what is left of the request with SSL_write, head then body (one record each at
 * least). SSL_write takes a single buffer; a partial write (SSL_MODE_ENABLE_PARTIAL_WRITE) moves
 * on, and a retry after WANT_WRITE repeats the same length from the same offset, as OpenSSL
 * requires.
 */
static void
bench_xfb_conn_flush_tls(struct bench_xfb_conn *c)
{
    const struct bench_xfb_run *run = c->w->run;
    size_t total = c->out_len + (size_t)run->o->body_size;

    while (c->out_off < total) {
        const char *p;
        size_t len;
        int n;

        if (c->out_off < c->out_len) {
            p = c->out + c->out_off;
            len = c->out_len - c->out_off;
        } else {
            p = run->body + (c->out_off - c->out_len);
            len = total - c->out_off;
        }
        n = SSL_write(c->ssl, p, (int)XF_MIN(len, (size_t)1 << 30));
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        switch (SSL_get_error(c->ssl, n)) {
        case SSL_ERROR_WANT_WRITE:
            event_add(c->wev, NULL);
            return;
        case SSL_ERROR_WANT_READ:
            c->tls_write_on_read = 1; /* the read event is always armed */
            return;
        default:
            bench_xfb_conn_tls_error(c, n);
            return;
        }
    }
    c->st = BENCH_XFB_C_WAITING;
}

/*
 * Sends what is left of the request: head from c->out, body from the run's shared body. A short
 * send means the socket buffer is full: wait for EV_WRITE rather than learn EAGAIN by a second
 * call.
 */
static void
bench_xfb_conn_flush(struct bench_xfb_conn *c)
{
    const struct bench_xfb_run *run = c->w->run;
    size_t total = c->out_len + (size_t)run->o->body_size;
    struct iovec iov[2];
    struct msghdr msg;
    ssize_t n;
    int niov = 0;

    if (c->ssl != NULL) {
        bench_xfb_conn_flush_tls(c);
        return;
    }
    if (c->out_off < c->out_len) {
        iov[niov].iov_base = c->out + c->out_off;
        iov[niov++].iov_len = c->out_len - c->out_off;
    }
    if (total > XF_MAX(c->out_off, c->out_len)) {
        size_t boff = c->out_off > c->out_len ? c->out_off - c->out_len : 0;
        iov[niov].iov_base = run->body + boff;
        iov[niov++].iov_len = (size_t)run->o->body_size - boff;
    }
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = iov;
    msg.msg_iovlen = (size_t)niov;
    do {
        n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
    } while (n == -1 && errno == EINTR);
    if (n == -1) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            event_add(c->wev, NULL);
            return;
        }
        bench_xfb_conn_fail(c, BENCH_XFB_ERR_RESET);
        return;
    }
    c->out_off += (size_t)n;
    if (c->out_off < total) {
        event_add(c->wev, NULL);
        return;
    }
    c->st = BENCH_XFB_C_WAITING;
}

/* Builds the next request (a fresh key) and sends it; latency will count from `origin`. */
static void
bench_xfb_conn_send(struct bench_xfb_conn *c, uint64_t origin, uint64_t now)
{
    struct bench_xfb_worker *w = c->w;
    const struct bench_xfb_run *run = w->run;
    size_t len = run->prefix_len;

    if (run->o->requests > 0)
        w->quota--;
    c->nth++;
    if (run->o->keys.n > 0)
        len += bench_xfb_key_format(bench_xfb_keys_draw(&run->o->keys, &w->rng), c->out + len);
    memcpy(c->out + len, run->suffix, run->suffix_len);
    c->out_len = len + run->suffix_len;
    c->out_off = 0;
    c->origin_ns = origin;
    c->sent_ns = now;
    c->got_bytes = 0;
    c->complete = 0;
    c->st = BENCH_XFB_C_SENDING;
    bench_xfb_conn_flush(c);
}

/* Starts the next request now (closed loop), or when it is due (open loop). */
static void
bench_xfb_conn_next(struct bench_xfb_conn *c)
{
    struct bench_xfb_worker *w = c->w;
    const struct bench_xfb_run *run = w->run;
    uint64_t now = bench_xfb_now_ns(), due;

    if (bench_xfb_conn_stopping(c, now) || (run->o->requests > 0 && w->quota == 0)) {
        bench_xfb_conn_done(c);
        return;
    }
    c->st = BENCH_XFB_C_IDLE;
    if (run->o->rate_milli == 0) {
        bench_xfb_conn_send(c, now, now);
        return;
    }
    due = bench_xfb_rate_due(&run->rate, c->index + c->nth * run->o->conns);
    if (due > now) {
        uint64_t us = (due - now + 999) / 1000;
        struct timeval tv = {.tv_sec = (time_t)(us / 1000000),
                             .tv_usec = (suseconds_t)(us % 1000000)};
        evtimer_add(c->tev, &tv);
        return;
    }
    bench_xfb_conn_send(c, due, now);
}

/* A complete response: count it, then the next request (or a new connection). */
static void
bench_xfb_conn_complete(struct bench_xfb_conn *c, int leftover)
{
    struct bench_xfb_worker *w = c->w;
    uint64_t now = bench_xfb_now_ns();
    struct bench_xfb_counts *cnt = bench_xfb_worker_counts(w, now);
    int sending = c->st == BENCH_XFB_C_SENDING;

    c->complete = 0;
    if (cnt != NULL) {
        cnt->responses++;
        bench_xfb_hist_record(w->cur_h, now > c->origin_ns ? now - c->origin_ns : 0);
        if (c->status >= 500)
            cnt->err[BENCH_XFB_ERR_5XX]++;
        else if (c->status >= 400)
            cnt->err[BENCH_XFB_ERR_4XX]++;
        if (c->route_len > 0)
            bench_xfb_worker_route(w, cnt, c->route, c->route_len);
    }
    if (leftover) {
        /* Bytes after the response, with no request to answer: not HTTP as we know it. */
        bench_xfb_conn_fail(c, BENCH_XFB_ERR_PROTOCOL);
        return;
    }
    if (!c->keep_alive || sending) {
        bench_xfb_conn_reopen(c);
        return;
    }
    bench_xfb_conn_next(c);
}

/* Feeds received bytes to the parser; returns 0, or -1 when the connection was dropped. */
static int
bench_xfb_conn_parse(struct bench_xfb_conn *c, const char *data, size_t len)
{
    llhttp_errno_t e;

    if (c->st != BENCH_XFB_C_WAITING && c->st != BENCH_XFB_C_SENDING) {
        /* Bytes with no request outstanding (a 408 before an idle close, say): no request of
         * ours failed; start afresh on a new connection. */
        bench_xfb_conn_reopen(c);
        return -1;
    }
    c->got_bytes = 1;
    e = llhttp_execute(&c->parser, data, len);
    if (e == HPE_PAUSED) {
        const char *pos = llhttp_get_error_pos(&c->parser);
        llhttp_resume(&c->parser);
        bench_xfb_conn_complete(c, pos != NULL && pos < data + len);
        return -1; /* whatever follows, this read's bytes are used up */
    }
    if (e != HPE_OK) {
        bench_xfb_conn_fail(c, BENCH_XFB_ERR_PROTOCOL);
        return -1;
    }
    return 0;
}

/* The server closed its side. */
static void
bench_xfb_conn_eof(struct bench_xfb_conn *c)
{
    c->tls_live = 0; /* no close_notify to a server that has gone */
    if (c->st != BENCH_XFB_C_WAITING && c->st != BENCH_XFB_C_SENDING) {
        bench_xfb_conn_reopen(c);
        return;
    }
    if (c->got_bytes) {
        /* A body delimited by the close ends here. */
        llhttp_finish(&c->parser);
        if (c->complete) {
            llhttp_resume(&c->parser);
            c->keep_alive = 0;
            bench_xfb_conn_complete(c, 0);
            return;
        }
    }
    bench_xfb_conn_fail(c, BENCH_XFB_ERR_RESET);
}

static void bench_xfb_conn_handshake(struct bench_xfb_conn *c);

/*
 * https: reads with SSL_read until it wants more from the socket. A short read says nothing there
 * (SSL_read returns one record at most), and bytes OpenSSL already holds (SSL_has_pending) wake
 * no event: so the loop goes on while they are there, until the response is complete.
 */
static void
bench_xfb_conn_read_tls(struct bench_xfb_conn *c)
{
    struct bench_xfb_worker *w = c->w;
    uint32_t epoch = c->epoch;

    if (c->st == BENCH_XFB_C_HANDSHAKE) {
        bench_xfb_conn_handshake(c);
        return;
    }
    if (c->tls_write_on_read) {
        c->tls_write_on_read = 0;
        bench_xfb_conn_flush_tls(c);
        if (c->epoch != epoch || c->tls_write_on_read)
            return;
    }
    for (;;) {
        int n = SSL_read(c->ssl, w->rbuf, BENCH_XFB_RBUF);
        if (n > 0) {
            struct bench_xfb_counts *cnt = bench_xfb_worker_counts(w, bench_xfb_now_ns());
            if (cnt != NULL)
                cnt->bytes += (uint64_t)n;
            if (bench_xfb_conn_parse(c, w->rbuf, (size_t)n) == -1 &&
                (c->epoch != epoch || !SSL_has_pending(c->ssl)))
                return;
            continue;
        }
        switch (SSL_get_error(c->ssl, n)) {
        case SSL_ERROR_WANT_READ:
            return;
        case SSL_ERROR_WANT_WRITE:
            c->tls_read_on_write = 1;
            event_add(c->wev, NULL);
            return;
        case SSL_ERROR_ZERO_RETURN:
            bench_xfb_conn_eof(c);
            return;
        default:
            if (c->st == BENCH_XFB_C_WAITING || c->st == BENCH_XFB_C_SENDING) {
                bench_xfb_conn_tls_error(c, n);
            } else {
                ERR_clear_error();
                c->tls_live = 0;
                bench_xfb_conn_reopen(c);
            }
            return;
        }
    }
}

static void
bench_xfb_conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bench_xfb_conn *c = arg;
    struct bench_xfb_worker *w = c->w;

    XF_UNUSED(what);
    if (c->ssl != NULL) {
        bench_xfb_conn_read_tls(c);
        return;
    }
    for (;;) {
        ssize_t n = recv(fd, w->rbuf, BENCH_XFB_RBUF, 0);
        if (n > 0) {
            struct bench_xfb_counts *cnt = bench_xfb_worker_counts(w, bench_xfb_now_ns());
            if (cnt != NULL)
                cnt->bytes += (uint64_t)n;
            if (bench_xfb_conn_parse(c, w->rbuf, (size_t)n) == -1 || n < BENCH_XFB_RBUF)
                return;
            continue;
        }
        if (n == 0) {
            bench_xfb_conn_eof(c);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        if (c->st == BENCH_XFB_C_WAITING || c->st == BENCH_XFB_C_SENDING)
            bench_xfb_conn_fail(c, BENCH_XFB_ERR_RESET);
        else
            bench_xfb_conn_reopen(c);
        return;
    }
}

/*
 * A connect or a handshake failed: count it as `kind` (and under -n it uses up a request), retry
 * after a pause.
 */
static void
bench_xfb_conn_connect_failed(struct bench_xfb_conn *c, enum bench_xfb_err kind)
{
    struct bench_xfb_worker *w = c->w;
    struct timeval tv = {.tv_sec = 0, .tv_usec = BENCH_XFB_BACKOFF_MS * 1000};

    bench_xfb_worker_error(w, kind);
    bench_xfb_conn_close(c);
    if (w->run->o->requests > 0) {
        if (w->quota == 0) {
            bench_xfb_conn_done(c);
            return;
        }
        w->quota--;
    }
    c->st = BENCH_XFB_C_BACKOFF;
    evtimer_add(c->tev, &tv);
}

/*
 * Keeps the worker's first TLS failure for the report, and prints the run's first one at once
 * (each later one is only counted): a certificate replaced during the run, a server that stopped
 * speaking TLS, say.
 */
static void
bench_xfb_worker_tls_failure(struct bench_xfb_worker *w, const char *why)
{
    uint64_t at = bench_xfb_now_ns() - w->run->start_ns;

    if (w->tls_error[0] == '\0')
        snprintf(w->tls_error, sizeof(w->tls_error), "at %.2fs: %s", (double)at / 1e9, why);
    if (atomic_exchange(&w->run->tls_warned, 1) == 0)
        fprintf(stderr,
                "xfbench: warning: %s: %s at %.2fs; each such failure is counted in the "
                "errors (tls, tls_verify), only the first is printed\n",
                w->run->o->url, why, (double)at / 1e9);
}

/* A handshake failed (after the connect): counted as tls or tls_verify, retried after a pause. */
static void
bench_xfb_conn_handshake_failed(struct bench_xfb_conn *c, enum bench_xfb_err kind, const char *why)
{
    bench_xfb_worker_tls_failure(c->w, why);
    c->tls_live = 0;
    bench_xfb_conn_connect_failed(c, kind);
}

static void
bench_xfb_conn_tls_error(struct bench_xfb_conn *c, int rc)
{
    char why[256];
    enum bench_xfb_err kind = bench_xfb_tls_reason(c->ssl, rc, c->w->run->o, why, sizeof(why));

    c->tls_live = 0;
    if (kind != BENCH_XFB_ERR_RESET)
        bench_xfb_worker_tls_failure(c->w, why);
    bench_xfb_conn_fail(c, kind);
}

/* Drives the handshake; once done, the first request goes out. */
static void
bench_xfb_conn_handshake(struct bench_xfb_conn *c)
{
    struct bench_xfb_worker *w = c->w;
    int n = SSL_do_handshake(c->ssl);
    char why[256];
    enum bench_xfb_err kind;

    if (n == 1) {
        struct bench_xfb_counts *cnt = bench_xfb_worker_counts(w, bench_xfb_now_ns());
        if (cnt != NULL) {
            cnt->handshakes++;
            cnt->resumed += SSL_session_reused(c->ssl) ? 1 : 0;
        }
        if (w->tls_version == NULL) {
            w->tls_version = SSL_get_version(c->ssl);
            w->tls_cipher = SSL_get_cipher_name(c->ssl);
        }
        c->tls_live = 1;
        c->st = BENCH_XFB_C_IDLE;
        bench_xfb_conn_next(c);
        return;
    }
    switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_WANT_READ:
        return; /* the read event is always armed */
    case SSL_ERROR_WANT_WRITE:
        event_add(c->wev, NULL);
        return;
    default:
        kind = bench_xfb_tls_reason(c->ssl, n, w->run->o, why, sizeof(why));
        bench_xfb_conn_handshake_failed(
            c, kind == BENCH_XFB_ERR_TLS_VERIFY ? kind : BENCH_XFB_ERR_TLS, why);
    }
}

/* The TCP connection is up: https starts its handshake (offering the worker's last session),
 * http its first request. */
static void
bench_xfb_conn_connected(struct bench_xfb_conn *c)
{
    struct bench_xfb_worker *w = c->w;

    w->connects++;
    if (event_add(c->rev, NULL) == -1) {
        bench_xfb_conn_fail(c, BENCH_XFB_ERR_CONNECT);
        return;
    }
    llhttp_init(&c->parser, HTTP_RESPONSE, &bench_xfb_resp_settings);
    c->parser.data = c;
    if (w->run->ssl_ctx != NULL) {
        c->ssl = bench_xfb_tls_new(w->run->ssl_ctx, w->run->o, c->fd, w->sess);
        if (c->ssl == NULL) {
            bench_xfb_conn_handshake_failed(c, BENCH_XFB_ERR_TLS, "cannot create an SSL");
            return;
        }
        c->st = BENCH_XFB_C_HANDSHAKE;
        bench_xfb_conn_handshake(c);
        return;
    }
    bench_xfb_conn_next(c);
}

static void
bench_xfb_conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bench_xfb_conn *c = arg;
    int err = 0;
    socklen_t len = sizeof(err);

    XF_UNUSED(what);
    if (c->st == BENCH_XFB_C_CONNECTING) {
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 || err != 0) {
            bench_xfb_conn_connect_failed(c, BENCH_XFB_ERR_CONNECT);
            return;
        }
        c->st = BENCH_XFB_C_IDLE;
        bench_xfb_conn_connected(c);
        return;
    }
    if (c->st == BENCH_XFB_C_HANDSHAKE) {
        bench_xfb_conn_handshake(c);
        return;
    }
    if (c->tls_read_on_write) {
        c->tls_read_on_write = 0;
        bench_xfb_conn_read_tls(c);
        return;
    }
    if (c->st == BENCH_XFB_C_SENDING)
        bench_xfb_conn_flush(c);
}

static void
bench_xfb_conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bench_xfb_conn *c = arg;
    uint64_t now = bench_xfb_now_ns();

    XF_UNUSED(fd);
    XF_UNUSED(what);
    if (c->st == BENCH_XFB_C_BACKOFF) {
        bench_xfb_conn_connect(c);
    } else if (c->st == BENCH_XFB_C_IDLE) {
        if (bench_xfb_conn_stopping(c, now)) {
            bench_xfb_conn_done(c);
            return;
        }
        bench_xfb_conn_send(
            c, bench_xfb_rate_due(&c->w->run->rate, c->index + c->nth * c->w->run->o->conns), now);
    }
}

/* Opens the connection (non-blocking); the outcome arrives in the write callback. */
static void
bench_xfb_conn_connect(struct bench_xfb_conn *c)
{
    struct bench_xfb_worker *w = c->w;
    const struct bench_xfb_opts *o = w->run->o;
    int one = 1;

    /* Under -n with every request started, a new connection would carry none (and for https
     * would count a handshake of no request). */
    if (bench_xfb_conn_stopping(c, bench_xfb_now_ns()) || (o->requests > 0 && w->quota == 0)) {
        bench_xfb_conn_done(c);
        return;
    }
    c->fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd == -1) {
        bench_xfb_conn_connect_failed(c, BENCH_XFB_ERR_CONNECT);
        return;
    }
    if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1) {
        /* Requests still go out, a little later. */
    }
    c->rev = event_new(w->base, c->fd, EV_READ | EV_PERSIST, bench_xfb_conn_read_cb, c);
    c->wev = event_new(w->base, c->fd, EV_WRITE, bench_xfb_conn_write_cb, c);
    if (c->rev == NULL || c->wev == NULL) {
        bench_xfb_conn_connect_failed(c, BENCH_XFB_ERR_CONNECT);
        return;
    }
    c->sent_ns = bench_xfb_now_ns();
    if (connect(c->fd, (const struct sockaddr *)&o->addr, o->addr_len) == 0) {
        c->st = BENCH_XFB_C_IDLE;
        bench_xfb_conn_connected(c);
        return;
    }
    if (errno != EINPROGRESS) {
        bench_xfb_conn_connect_failed(c, BENCH_XFB_ERR_CONNECT);
        return;
    }
    c->st = BENCH_XFB_C_CONNECTING;
    event_add(c->wev, NULL);
}

/* --- the worker's loop --- */

/* Every tick: hand in finished seconds, time out slow requests and connects, notice a stop. */
static void
bench_xfb_worker_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bench_xfb_worker *w = arg;
    struct bench_xfb_run *run = w->run;
    uint64_t now = bench_xfb_now_ns(), limit = run->o->timeout_ms * 1000000u;

    XF_UNUSED(fd);
    XF_UNUSED(what);
    if (atomic_load(&run->stop)) {
        event_base_loopbreak(w->base);
        return;
    }
    bench_xfb_worker_counts(w, now);
    for (size_t i = 0; i < w->nconns; i++) {
        struct bench_xfb_conn *c = &w->conns[i];
        if (now - c->sent_ns < limit)
            continue;
        if (c->st == BENCH_XFB_C_WAITING || c->st == BENCH_XFB_C_SENDING)
            bench_xfb_conn_fail(c, BENCH_XFB_ERR_TIMEOUT);
        else if (c->st == BENCH_XFB_C_CONNECTING)
            bench_xfb_conn_connect_failed(c, BENCH_XFB_ERR_CONNECT);
        else if (c->st == BENCH_XFB_C_HANDSHAKE)
            bench_xfb_conn_handshake_failed(c, BENCH_XFB_ERR_TLS,
                                            "the handshake was not complete within --timeout");
    }
}

static void
bench_xfb_worker_end_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bench_xfb_worker *w = arg;

    XF_UNUSED(fd);
    XF_UNUSED(what);
    event_base_loopbreak(w->base);
}

int
bench_xfb_worker_init(struct bench_xfb_worker *w, struct bench_xfb_run *run, unsigned id,
                      size_t first_conn, size_t nconns, uint64_t quota, struct xf_err *err)
{
    struct event_config *ec;

    memset(w, 0, sizeof(*w));
    w->run = run;
    w->id = id;
    w->quota = quota;
    w->nconns = nconns;
    w->active = nconns;
    bench_xfb_rng_seed(&w->rng, run->o->seed ^ ((uint64_t)(id + 1) * UINT64_C(0x9e3779b97f4a7c15)));
    w->conns = calloc(nconns, sizeof(*w->conns));
    w->rbuf = malloc(BENCH_XFB_RBUF);
    w->cur_h = malloc(sizeof(*w->cur_h));
    w->total_h = malloc(sizeof(*w->total_h));
    if (w->conns == NULL || w->rbuf == NULL || w->cur_h == NULL || w->total_h == NULL) {
        xf_err_set(err, "out of memory");
        return -1;
    }
    bench_xfb_hist_reset(w->cur_h);
    bench_xfb_hist_reset(w->total_h);
    if ((ec = event_config_new()) == NULL) {
        xf_err_set(err, "event_config_new failed");
        return -1;
    }
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
    w->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (w->base == NULL) {
        xf_err_set(err, "event_base_new failed");
        return -1;
    }
    for (size_t i = 0; i < nconns; i++) {
        struct bench_xfb_conn *c = &w->conns[i];
        c->w = w;
        c->fd = -1;
        c->index = first_conn + i;
        c->out = malloc(run->head_cap);
        c->tev = evtimer_new(w->base, bench_xfb_conn_timer_cb, c);
        if (c->out == NULL || c->tev == NULL) {
            xf_err_set(err, "out of memory");
            return -1;
        }
        memcpy(c->out, run->prefix, run->prefix_len);
    }
    w->tick = event_new(w->base, -1, EV_PERSIST, bench_xfb_worker_tick_cb, w);
    w->end = evtimer_new(w->base, bench_xfb_worker_end_cb, w);
    if (w->tick == NULL || w->end == NULL) {
        xf_err_set(err, "out of memory");
        return -1;
    }
    return 0;
}

void *
bench_xfb_worker_main(void *arg)
{
    struct bench_xfb_worker *w = arg;
    struct bench_xfb_run *run = w->run;
    struct timeval tick = {.tv_sec = 0, .tv_usec = BENCH_XFB_TICK_MS * 1000};
    uint64_t now = bench_xfb_now_ns();

    w->cur_sec = 0;
    event_add(w->tick, &tick);
    if (run->end_ns != 0) {
        uint64_t us = run->end_ns > now ? (run->end_ns - now) / 1000 : 0;
        struct timeval tv = {.tv_sec = (time_t)(us / 1000000),
                             .tv_usec = (suseconds_t)(us % 1000000)};
        evtimer_add(w->end, &tv);
    }
    for (size_t i = 0; i < w->nconns; i++)
        bench_xfb_conn_connect(&w->conns[i]);
    if (w->active > 0)
        event_base_dispatch(w->base);
    w->finish_ns = bench_xfb_now_ns();
    for (size_t i = 0; i < w->nconns; i++)
        bench_xfb_conn_close(&w->conns[i]);
    bench_xfb_worker_counts(w, w->finish_ns);
    bench_xfb_worker_flush(w, INT64_MAX);
    atomic_fetch_add(&run->finished, 1);
    return NULL;
}

void
bench_xfb_worker_fini(struct bench_xfb_worker *w)
{
    for (size_t i = 0; w->conns != NULL && i < w->nconns; i++) {
        struct bench_xfb_conn *c = &w->conns[i];
        bench_xfb_conn_close(c);
        if (c->tev != NULL)
            event_free(c->tev);
        c->tev = NULL;
        XF_FREE(c->out);
    }
    XF_FREE(w->conns);
    if (w->tick != NULL)
        event_free(w->tick);
    w->tick = NULL;
    if (w->end != NULL)
        event_free(w->end);
    w->end = NULL;
    if (w->base != NULL)
        event_base_free(w->base);
    w->base = NULL;
    XF_FREE(w->rbuf);
    XF_FREE(w->cur_h);
    XF_FREE(w->total_h);
    SSL_SESSION_free(w->sess);
    w->sess = NULL;
}
