/* fleet/fl_etcd.c -- the etcd client: endpoints, the connection for requests, the queue, retries
 * on the next endpoint with back-off, deadlines. */
#include "fleet/fl_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void fl_etcd_on_body(void *arg, const char *data, size_t len);
static void fl_etcd_on_done(void *arg, int status, const char *body, size_t len);
static void fl_etcd_on_error(void *arg, const char *why, bool maybe_sent);

static const struct fl_http_cbs fl_etcd_http_cbs = {
    .body = fl_etcd_on_body,
    .done = fl_etcd_on_done,
    .error = fl_etcd_on_error,
};

int
fl_endpoint_check(const char *url, struct xf_err *err)
{
    struct fl_endpoint ep;

    return fl_endpoint_parse(&ep, url, err);
}

static void fl_etcd_on_kick(evutil_socket_t fd, short what, void *arg);

struct fl_etcd *
fl_etcd_new(struct event_base *base, const char *const *endpoints, size_t n,
            const struct fl_etcd_opts *opts, struct xf_err *err)
{
    struct fl_etcd *e;

    if (n == 0 || n > FL_ENDPOINTS_MAX) {
        xf_err_set(err, "etcd: %zu endpoints (expected 1 to %d)", n, FL_ENDPOINTS_MAX);
        return NULL;
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL) {
        xf_err_set(err, "etcd: out of memory");
        return NULL;
    }
    for (size_t k = 0; k < n; k++)
        if (fl_endpoint_parse(&e->eps[k], endpoints[k], err) == -1)
            goto fail;
    e->n_eps = n;
    e->base = base;
    if (opts != NULL)
        e->opts = *opts;
    if (e->opts.timeout_ms == 0)
        e->opts.timeout_ms = FL_TIMEOUT_MS_DEFAULT;
    if (e->opts.backoff_min_ms == 0)
        e->opts.backoff_min_ms = FL_BACKOFF_MIN_MS;
    if (e->opts.backoff_max_ms == 0)
        e->opts.backoff_max_ms = FL_BACKOFF_MAX_MS;
    if (e->opts.backoff_max_ms < e->opts.backoff_min_ms)
        e->opts.backoff_max_ms = e->opts.backoff_min_ms;
    e->backoff_ms = e->opts.backoff_min_ms;
    e->tail = &e->head;
    e->state = -1;
    e->rng = xf_now_us() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)e;
    e->kick = event_new(base, -1, 0, fl_etcd_on_kick, e);
    e->retry = evtimer_new(base, fl_etcd_on_kick, e);
    if (e->kick == NULL || e->retry == NULL) {
        xf_err_set(err, "etcd: out of memory");
        goto fail;
    }
    return e;
fail:
    fl_etcd_free(e);
    return NULL;
}

static void
fl_req_free(struct fl_req *r)
{
    if (r == NULL)
        return;
    if (r->timer != NULL)
        event_free(r->timer);
    free(r->body);
    free(r);
}

void
fl_etcd_free(struct fl_etcd *e)
{
    if (e == NULL)
        return;
    if (e->dead != NULL)
        *e->dead = true;
    fl_watch_free_all(e);
    fl_lease_free_all(e);
    fl_http_free(e->conn);
    fl_req_free(e->inflight);
    while (e->head != NULL) {
        struct fl_req *r = e->head;

        e->head = r->next;
        fl_req_free(r);
    }
    if (e->kick != NULL)
        event_free(e->kick);
    if (e->retry != NULL)
        event_free(e->retry);
    free(e);
}

const char *
fl_etcd_endpoint(const struct fl_etcd *e)
{
    return e->eps[e->cur].url;
}

unsigned
fl_etcd_backoff(struct fl_etcd *e, unsigned *backoff_ms)
{
    unsigned b = *backoff_ms;

    /* xorshift64: jitter needs no quality, only to differ between instances. */
    e->rng ^= e->rng << 13;
    e->rng ^= e->rng >> 7;
    e->rng ^= e->rng << 17;
    *backoff_ms = XF_MIN(b * 2, e->opts.backoff_max_ms);
    return b / 2 + (unsigned)(e->rng % (b / 2 + 1));
}

bool
fl_etcd_report(struct fl_etcd *e, const char *what, bool up, const char *endpoint, const char *why)
{
    bool dead = false, *prev = e->dead;

    XF_LOG(up ? XF_LOG_INFO : XF_LOG_WARN, "fleet", "event=etcd_%s_%s endpoint=%s%s%s", what,
           up ? "up" : "down", endpoint, why != NULL ? " why=" : "", why != NULL ? why : "");
    if (e->opts.conn_cb == NULL)
        return true;
    e->dead = &dead;
    e->opts.conn_cb(e->opts.conn_arg, what, up, endpoint, why);
    if (dead) {
        if (prev != NULL)
            *prev = true;
        return false;
    }
    e->dead = prev;
    return true;
}

/* Calls r's callback (if any) and frees r. Returns false when the callback freed the client. */
static bool
fl_req_complete(struct fl_req *r, const struct fl_result *res, const char *error)
{
    struct fl_etcd *e = r->e;
    fl_result_fn cb = r->cb;
    void *arg = r->arg;
    bool dead = false, *prev = e->dead;

    fl_req_free(r);
    if (cb == NULL)
        return true;
    e->dead = &dead;
    cb(arg, res, error);
    if (dead) {
        if (prev != NULL)
            *prev = true;
        return false;
    }
    e->dead = prev;
    return true;
}

static void
fl_etcd_kick(struct fl_etcd *e)
{
    event_active(e->kick, EV_TIMEOUT, 0);
}

static void
fl_etcd_push_front(struct fl_etcd *e, struct fl_req *r)
{
    r->next = e->head;
    e->head = r;
    if (e->tail == &e->head)
        e->tail = &r->next;
}

/*
 * The endpoint in use failed (`why`): drop its connection, move to the next one, and wait out the
 * back-off before the next attempt. Returns false when the state callback freed the client.
 */
static bool
fl_etcd_endpoint_failed(struct fl_etcd *e, const char *why)
{
    size_t failed = e->cur;
    struct timeval tv;
    unsigned ms;

    fl_http_free(e->conn);
    e->conn = NULL;
    e->cur = (e->cur + 1) % e->n_eps;
    ms = fl_etcd_backoff(e, &e->backoff_ms);
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(e->retry, &tv);
    XF_LOG(XF_LOG_DEBUG, "fleet", "event=etcd_retry endpoint=%s next=%s in_ms=%u why=%s",
           e->eps[failed].url, e->eps[e->cur].url, ms, why);
    if (e->state == 0)
        return true;
    e->state = 0;
    return fl_etcd_report(e, "kv", false, e->eps[failed].url, why);
}

/* Sends the first waiting request when the connection is free and no back-off runs. */
static void
fl_etcd_pump(struct fl_etcd *e)
{
    struct xf_err err;
    struct fl_req *r;

    if (e->inflight != NULL || e->head == NULL || evtimer_pending(e->retry, NULL))
        return;
    if (e->conn == NULL) {
        e->conn = fl_http_new(e->base, &e->eps[e->cur], &fl_etcd_http_cbs, e, &err);
        if (e->conn == NULL) {
            fl_etcd_endpoint_failed(e, err.msg);
            return;
        }
    }
    r = e->head;
    if (fl_http_post(e->conn, fl_op_path(r->op), r->body, r->body_len, false) == -1) {
        fl_etcd_endpoint_failed(e, "cannot send on the connection");
        return;
    }
    e->head = r->next;
    if (e->head == NULL)
        e->tail = &e->head;
    r->next = NULL;
    e->inflight = r;
}

static void
fl_etcd_on_kick(evutil_socket_t fd, short what, void *arg)
{
    struct fl_etcd *e = arg;

    XF_UNUSED(fd);
    XF_UNUSED(what);
    fl_etcd_pump(e);
}

static void
fl_etcd_on_body(void *arg, const char *data, size_t len)
{
    /* Requests never ask for stream mode. */
    XF_UNUSED(arg);
    XF_UNUSED(data);
    XF_UNUSED(len);
}

/* The answer to the request in flight. */
static void
fl_etcd_on_done(void *arg, int status, const char *body, size_t len)
{
    struct fl_etcd *e = arg;
    struct fl_req *r = e->inflight;
    struct fl_result res;
    struct xf_err err;
    char why[400];
    bool ok;

    e->inflight = NULL;
    if (r == NULL) /* cannot happen: fl_http reports bytes with no request as an error */
        return;
    if (status >= 500) {
        fl_error_text(status, body, len, why, sizeof(why));
        if (fl_op_idempotent(r->op)) {
            fl_etcd_push_front(e, r);
            fl_etcd_endpoint_failed(e, why);
            return;
        }
        if (!fl_etcd_endpoint_failed(e, why)) {
            fl_req_free(r);
            return;
        }
        fl_req_complete(r, NULL, why);
        return;
    }
    if (!fl_http_reusable(e->conn)) {
        fl_http_free(e->conn);
        e->conn = NULL;
    }
    e->backoff_ms = e->opts.backoff_min_ms;
    if (e->state != 1) {
        e->state = 1;
        if (!fl_etcd_report(e, "kv", true, e->eps[e->cur].url, NULL)) {
            fl_req_free(r);
            return;
        }
    }
    if (status != 200) {
        fl_error_text(status, body, len, why, sizeof(why));
        ok = fl_req_complete(r, NULL, why);
    } else if (fl_result_parse(r->op, body, len, &res, &err) == -1) {
        ok = fl_req_complete(r, NULL, err.msg);
    } else {
        ok = fl_req_complete(r, &res, NULL);
        fl_result_fini(&res);
    }
    if (ok)
        fl_etcd_pump(e);
}

static void
fl_etcd_on_error(void *arg, const char *why, bool maybe_sent)
{
    struct fl_etcd *e = arg;
    struct fl_req *r = e->inflight;
    char text[400];

    e->inflight = NULL;
    if (r == NULL) {
        /* A keep-alive connection closed while idle: the next request opens another. */
        fl_http_free(e->conn);
        e->conn = NULL;
        fl_etcd_pump(e);
        return;
    }
    if (!maybe_sent || fl_op_idempotent(r->op)) {
        fl_etcd_push_front(e, r);
        fl_etcd_endpoint_failed(e, why);
        return;
    }
    snprintf(text, sizeof(text), "%s: %s (the request may have been applied)", e->eps[e->cur].url,
             why);
    if (!fl_etcd_endpoint_failed(e, why)) {
        fl_req_free(r);
        return;
    }
    fl_req_complete(r, NULL, text);
}

/* A request's deadline passed. */
static void
fl_req_on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct fl_req *r = arg;
    struct fl_etcd *e = r->e;
    char text[200];

    XF_UNUSED(fd);
    XF_UNUSED(what);
    if (r == e->inflight) {
        /* Its answer could still come and be taken for the next one's: that connection goes. */
        e->inflight = NULL;
        snprintf(text, sizeof(text), "%s: no answer within %u ms", e->eps[e->cur].url,
                 e->opts.timeout_ms);
        if (!fl_etcd_endpoint_failed(e, "no answer in time")) {
            fl_req_free(r);
            return;
        }
    } else {
        struct fl_req **p = &e->head;

        while (*p != r)
            p = &(*p)->next;
        *p = r->next;
        if (e->tail == &r->next)
            e->tail = p;
        snprintf(text, sizeof(text), "no etcd endpoint answered within %u ms (last tried %s)",
                 e->opts.timeout_ms, e->eps[e->cur].url);
    }
    if (fl_req_complete(r, NULL, text))
        fl_etcd_pump(e);
}

int
fl_etcd_submit(struct fl_etcd *e, enum fl_op op, struct fl_buf *b, fl_result_fn cb, void *arg)
{
    struct timeval tv = {.tv_sec = e->opts.timeout_ms / 1000,
                         .tv_usec = (e->opts.timeout_ms % 1000) * 1000};
    struct fl_req *r;

    if (b->oom || b->len == 0) {
        fl_buf_fini(b);
        return -1;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        fl_buf_fini(b);
        return -1;
    }
    r->e = e;
    r->op = op;
    r->body = b->p;
    r->body_len = b->len;
    b->p = NULL;
    fl_buf_fini(b);
    r->cb = cb;
    r->arg = arg;
    r->timer = evtimer_new(e->base, fl_req_on_timeout, r);
    if (r->timer == NULL || evtimer_add(r->timer, &tv) == -1) {
        fl_req_free(r);
        return -1;
    }
    *e->tail = r;
    e->tail = &r->next;
    fl_etcd_kick(e);
    return 0;
}

void
fl_etcd_cancel(struct fl_etcd *e, const void *arg)
{
    if (e->inflight != NULL && e->inflight->arg == arg)
        e->inflight->cb = NULL;
    for (struct fl_req *r = e->head; r != NULL; r = r->next)
        if (r->arg == arg)
            r->cb = NULL;
}

/* ---- the operations ------------------------------------------------------------------------ */

int
fl_etcd_get(struct fl_etcd *e, const char *key, size_t key_len, unsigned flags, fl_result_fn cb,
            void *arg)
{
    struct fl_buf b = {0};

    if (key_len > FL_KEY_MAX)
        return -1;
    fl_buf_str(&b, "{");
    fl_buf_range(&b, key, key_len, flags);
    fl_buf_str(&b, "}");
    return fl_etcd_submit(e, FL_OP_GET, &b, cb, arg);
}

int
fl_etcd_put(struct fl_etcd *e, const char *key, size_t key_len, const char *value, size_t value_len,
            int64_t lease, fl_result_fn cb, void *arg)
{
    struct fl_put put = {key, key_len, value, value_len, lease};
    struct fl_buf b = {0};

    if (key_len == 0 || key_len > FL_KEY_MAX || value_len > FL_KEY_MAX || lease < 0)
        return -1;
    fl_buf_put(&b, &put);
    return fl_etcd_submit(e, FL_OP_PUT, &b, cb, arg);
}

int
fl_etcd_del(struct fl_etcd *e, const char *key, size_t key_len, unsigned flags, fl_result_fn cb,
            void *arg)
{
    struct fl_buf b = {0};

    if (key_len > FL_KEY_MAX || (key_len == 0 && !(flags & FL_PREFIX)))
        return -1;
    fl_buf_str(&b, "{");
    fl_buf_range(&b, key, key_len, flags);
    fl_buf_str(&b, "}");
    return fl_etcd_submit(e, FL_OP_DEL, &b, cb, arg);
}

int
fl_etcd_cas(struct fl_etcd *e, int64_t mod_revision, const struct fl_put *puts, size_t n_puts,
            fl_result_fn cb, void *arg)
{
    struct fl_buf b = {0};
    size_t total = 0;

    if (n_puts == 0 || mod_revision < 0)
        return -1;
    for (size_t k = 0; k < n_puts; k++) {
        if (puts[k].key_len == 0 || puts[k].key_len > FL_KEY_MAX ||
            puts[k].value_len > FL_KEY_MAX || puts[k].lease < 0)
            return -1;
        total += puts[k].key_len + puts[k].value_len;
    }
    if (total > FL_KEY_MAX)
        return -1;
    fl_buf_cas(&b, mod_revision, puts, n_puts);
    return fl_etcd_submit(e, FL_OP_CAS, &b, cb, arg);
}

static int
fl_etcd_lease_op(struct fl_etcd *e, enum fl_op op, const char *name, int64_t v, fl_result_fn cb,
                 void *arg)
{
    struct fl_buf b = {0};

    if (v <= 0)
        return -1;
    fl_buf_printf(&b, "{\"%s\":\"%" PRId64 "\"}", name, v);
    return fl_etcd_submit(e, op, &b, cb, arg);
}

int
fl_etcd_lease_grant(struct fl_etcd *e, int64_t ttl_s, fl_result_fn cb, void *arg)
{
    return fl_etcd_lease_op(e, FL_OP_GRANT, "TTL", ttl_s, cb, arg);
}

int
fl_etcd_lease_keepalive(struct fl_etcd *e, int64_t lease, fl_result_fn cb, void *arg)
{
    return fl_etcd_lease_op(e, FL_OP_KEEPALIVE, "ID", lease, cb, arg);
}

int
fl_etcd_lease_revoke(struct fl_etcd *e, int64_t lease, fl_result_fn cb, void *arg)
{
    return fl_etcd_lease_op(e, FL_OP_REVOKE, "ID", lease, cb, arg);
}
