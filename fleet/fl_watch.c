/* fleet/fl_watch.c -- watches: one streaming POST /v3/watch each, read a line at a time, resumed
 * after the last revision delivered when the stream is lost. */
#include "fleet/fl_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/*
 * etcd 3.4's gateway answers a watch with a chunked 200 that never ends: one JSON object per
 * message, each followed by "\n" (each message in a chunk of its own today, but a message may
 * take several chunks, so lines are what counts):
 *   {"result":{"header":{...,"revision":"5"},"created":true}}
 *   {"result":{"header":{...},"events":[{"kv":{...}},{"type":"DELETE","kv":{...}}]}}
 *   {"result":{"header":{...},"canceled":true,"compact_revision":"4"}}   (then nothing more)
 *   {"error":{"grpc_code":14,"http_code":503,"message":"...","http_status":"..."}}
 * A PUT event has no "type" (zero values are left out); a DELETE's kv holds only key and
 * mod_revision. A cancelled watch leaves the stream open: we close it.
 */

struct fl_watch {
    struct fl_watch *next; /* the client's list */
    struct fl_watch **pprev;
    struct fl_etcd *e; /* borrowed */
    char *key;         /* owned: key_len bytes */
    size_t key_len;
    unsigned flags;
    int64_t next_rev; /* the revision to resume from; 0: "now" */
    struct fl_watch_cbs cbs;
    void *arg;            /* borrowed */
    struct fl_http *conn; /* owned: the stream, or NULL */
    size_t ep;            /* the endpoint of conn, or of the next attempt */
    struct fl_buf line;   /* owned: bytes of a line not complete yet */
    struct event *timer;  /* owned: back-off before connecting, or the deadline for "created" */
    unsigned backoff_ms;
    int state;    /* "watch" state last reported: -1 none yet, 0 down, 1 up */
    bool created; /* this stream's watch was created */
    bool stopped; /* compacted: waiting for fl_watch_restart */
    bool *dead;   /* set to true by fl_watch_free during a callback */
};

static void fl_watch_on_body(void *arg, const char *data, size_t len);
static void fl_watch_on_done(void *arg, int status, const char *body, size_t len);
static void fl_watch_on_error(void *arg, const char *why, bool maybe_sent);

static const struct fl_http_cbs fl_watch_http_cbs = {
    .body = fl_watch_on_body,
    .done = fl_watch_on_done,
    .error = fl_watch_on_error,
};

static void
fl_watch_arm(struct fl_watch *w, unsigned ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

    evtimer_add(w->timer, &tv);
}

/* Reports the stream's state once per change. Returns false when the callback freed w. */
static bool
fl_watch_report(struct fl_watch *w, bool up, const char *why)
{
    bool dead = false;

    if (w->state == (up ? 1 : 0))
        return true;
    w->state = up ? 1 : 0;
    w->dead = &dead;
    fl_etcd_report(w->e, "watch", up, w->e->eps[w->ep].url, why);
    if (dead)
        return false;
    w->dead = NULL;
    return true;
}

/* The stream is lost: close it and try the next endpoint after the back-off. false: w freed. */
static bool
fl_watch_failed(struct fl_watch *w, const char *why)
{
    size_t ep = w->ep;
    unsigned ms;

    fl_http_free(w->conn);
    w->conn = NULL;
    w->line.len = 0;
    ms = fl_etcd_backoff(w->e, &w->backoff_ms);
    XF_LOG(XF_LOG_DEBUG, "fleet",
           "event=watch_retry endpoint=%s in_ms=%u next_revision=%" PRId64 " why=%s",
           w->e->eps[ep].url, ms, w->next_rev, why);
    fl_watch_arm(w, ms);
    if (!fl_watch_report(w, false, why))
        return false;
    w->ep = (ep + 1) % w->e->n_eps;
    return true;
}

/* Opens the stream on w->ep from w->next_rev. */
static void
fl_watch_connect(struct fl_watch *w)
{
    struct fl_buf b = {0};
    struct xf_err err;

    w->conn = fl_http_new(w->e->base, &w->e->eps[w->ep], &fl_watch_http_cbs, w, &err);
    if (w->conn == NULL) {
        fl_watch_failed(w, err.msg);
        return;
    }
    /* progress_notify: on a quiet prefix, etcd's periodic progress reports move next_rev on, so
     * that a reconnection does not ask for a revision compacted since the last event. */
    fl_buf_str(&b, "{\"create_request\":{");
    fl_buf_range(&b, w->key, w->key_len, w->flags);
    fl_buf_printf(&b, ",\"start_revision\":\"%" PRId64 "\",\"progress_notify\":true}}",
                  w->next_rev);
    if (b.oom || fl_http_post(w->conn, "/v3/watch", b.p, b.len, true) == -1) {
        fl_buf_fini(&b);
        fl_watch_failed(w, "out of memory");
        return;
    }
    fl_buf_fini(&b);
    w->created = false;
    w->line.len = 0;
    fl_watch_arm(w, w->e->opts.timeout_ms);
}

static void
fl_watch_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct fl_watch *w = arg;

    XF_UNUSED(fd);
    XF_UNUSED(what);
    if (w->stopped)
        return;
    if (w->conn == NULL)
        fl_watch_connect(w);
    else if (!w->created)
        fl_watch_failed(w, "no watch created in time");
}

/* Delivers the events of one message, skipping what was delivered before. false: w freed. */
static bool
fl_watch_events(struct fl_watch *w, const struct fl_json *doc, uint32_t evs, int64_t revision,
                struct xf_err *err)
{
    uint32_t count = fl_json_count(doc, evs);
    struct fl_event *out;
    size_t n = 0;
    bool dead = false, ok = true;

    if (fl_json_type(doc, evs) != FL_JSON_ARRAY) {
        xf_err_set(err, "\"events\" is not an array");
        return fl_watch_failed(w, err->msg);
    }
    if (count == 0)
        return true;
    out = calloc(count, sizeof(*out));
    if (out == NULL)
        return fl_watch_failed(w, "out of memory");
    for (uint32_t c = fl_json_child(doc, evs); c != FL_JSON_NONE;
         c = fl_json_sibling(doc, evs, c)) {
        uint32_t type = fl_json_member(doc, c, "type");
        struct fl_event *ev = &out[n];

        if (fl_kv_parse(doc, fl_json_member(doc, c, "kv"), &ev->kv, err) == -1) {
            ok = false;
            break;
        }
        if (type == FL_JSON_NONE || fl_json_str_eq(doc, type, "PUT", 3)) {
            ev->type = FL_EVENT_PUT;
        } else if (fl_json_str_eq(doc, type, "DELETE", 6)) {
            ev->type = FL_EVENT_DELETE;
        } else {
            xf_err_set(err, "an event of unknown type");
            fl_kv_fini(&ev->kv);
            ok = false;
            break;
        }
        /* After a reconnection nothing before next_rev comes again; this keeps it so. */
        if (ev->kv.mod_revision < w->next_rev) {
            fl_kv_fini(&ev->kv);
            continue;
        }
        n++;
    }
    if (ok && n > 0) {
        w->next_rev = out[n - 1].kv.mod_revision + 1;
        w->dead = &dead;
        w->cbs.events(w->arg, out, n, revision);
        if (!dead)
            w->dead = NULL;
    }
    for (size_t k = 0; k < n; k++)
        fl_kv_fini(&out[k].kv);
    free(out);
    if (dead)
        return false;
    return ok ? true : fl_watch_failed(w, err->msg);
}

/* A cancelled watch: compacted (the owner must read again), or refused. false: w freed. */
static bool
fl_watch_canceled(struct fl_watch *w, const struct fl_json *doc, uint32_t res)
{
    int64_t compact = 0;
    bool dead = false;
    char *reason;
    char why[300];

    if (fl_json_int(doc, fl_json_member(doc, res, "compact_revision"), &compact) == 0 &&
        compact > 0) {
        XF_LOG(XF_LOG_WARN, "fleet",
               "event=watch_compacted next_revision=%" PRId64 " compact_revision=%" PRId64,
               w->next_rev, compact);
        fl_http_free(w->conn);
        w->conn = NULL;
        w->stopped = true;
        evtimer_del(w->timer);
        if (w->cbs.compacted == NULL)
            return true;
        w->dead = &dead;
        w->cbs.compacted(w->arg, compact);
        if (dead)
            return false;
        w->dead = NULL;
        return true;
    }
    reason = fl_json_strdup(doc, fl_json_member(doc, res, "cancel_reason"), NULL);
    snprintf(why, sizeof(why), "etcd cancelled the watch: %s",
             reason != NULL && *reason != '\0' ? reason : "no reason given");
    free(reason);
    return fl_watch_failed(w, why);
}

/* One message of the stream. false: w freed, or the stream closed (stop reading it). */
static bool
fl_watch_message(struct fl_watch *w, const char *text, size_t len)
{
    struct fl_json doc;
    struct xf_err err;
    uint32_t res, v;
    int64_t revision = 0;
    bool b = false, alive;
    const struct fl_http *conn = w->conn;

    /* The gateway's JSON has no raw control bytes; a line that would is cut there. */
    XF_LOG(XF_LOG_DEBUG, "fleet", "event=watch_message endpoint=%s bytes=%zu text=%.*s",
           w->e->eps[w->ep].url, len,
           (int)strcspn(text, "\r\n") < (int)XF_MIN(len, 2048) ? (int)strcspn(text, "\r\n")
                                                               : (int)XF_MIN(len, 2048),
           text);
    if (fl_json_parse(&doc, text, len, &err) == -1) {
        fl_watch_failed(w, err.msg);
        return false;
    }
    v = fl_json_member(&doc, 0, "error");
    if (v != FL_JSON_NONE) {
        char *msg = fl_json_strdup(&doc, fl_json_member(&doc, v, "message"), NULL);
        char why[300];

        snprintf(why, sizeof(why), "etcd ended the watch: %s", msg != NULL ? msg : "an error");
        free(msg);
        fl_json_fini(&doc);
        fl_watch_failed(w, why);
        return false;
    }
    res = fl_json_member(&doc, 0, "result");
    if (fl_json_type(&doc, res) != FL_JSON_OBJECT) {
        fl_json_fini(&doc);
        fl_watch_failed(w, "a watch message without a result");
        return false;
    }
    fl_json_int(&doc, fl_json_member(&doc, fl_json_member(&doc, res, "header"), "revision"),
                &revision);
    if (fl_json_bool(&doc, fl_json_member(&doc, res, "canceled"), &b) == 0 && b) {
        fl_watch_canceled(w, &doc, res);
        fl_json_fini(&doc);
        return false;
    }
    alive = true;
    v = fl_json_member(&doc, res, "events");
    if (fl_json_bool(&doc, fl_json_member(&doc, res, "created"), &b) == 0 && b) {
        /* Its header is the store's revision at creation: from a past start_revision, the
         * history up to it is still to come; "now" starts after it. */
        w->created = true;
        evtimer_del(w->timer);
        w->backoff_ms = w->e->opts.backoff_min_ms;
        if (w->next_rev == 0)
            w->next_rev = revision + 1;
        alive = fl_watch_report(w, true, NULL);
    } else if (v == FL_JSON_NONE && w->created && revision >= w->next_rev) {
        /* A progress report (etcd sends them only to watchers that caught up): nothing up to
         * `revision` is left to come. */
        w->next_rev = revision + 1;
    }
    if (alive && v != FL_JSON_NONE)
        alive = fl_watch_events(w, &doc, v, revision, &err);
    fl_json_fini(&doc);
    /* A callback that restarted the watch closed this stream. */
    return alive && w->conn == conn;
}

static void
fl_watch_on_body(void *arg, const char *data, size_t len)
{
    struct fl_watch *w = arg;
    size_t start = 0;

    if (w->line.len + len > FL_BODY_MAX) {
        fl_watch_failed(w, "a watch message is too large");
        return;
    }
    fl_buf_add(&w->line, data, len);
    if (w->line.oom) {
        w->line.oom = false;
        fl_watch_failed(w, "out of memory");
        return;
    }
    for (;;) {
        char *nl = memchr(w->line.p + start, '\n', w->line.len - start);
        size_t n;

        if (nl == NULL)
            break;
        n = (size_t)(nl - (w->line.p + start));
        if (n > 0 && !fl_watch_message(w, w->line.p + start, n))
            return;
        start += n + 1;
    }
    memmove(w->line.p, w->line.p + start, w->line.len - start);
    w->line.len -= start;
}

static void
fl_watch_on_done(void *arg, int status, const char *body, size_t len)
{
    struct fl_watch *w = arg;
    char why[400];

    if (status == 200) {
        fl_watch_failed(w, "the watch stream ended");
        return;
    }
    fl_error_text(status, body, len, why, sizeof(why));
    fl_watch_failed(w, why);
}

static void
fl_watch_on_error(void *arg, const char *why, bool maybe_sent)
{
    XF_UNUSED(maybe_sent);
    fl_watch_failed(arg, why);
}

struct fl_watch *
fl_watch_new(struct fl_etcd *e, const char *key, size_t key_len, unsigned flags,
             int64_t start_revision, const struct fl_watch_cbs *cbs, void *arg)
{
    struct fl_watch *w;

    if (key_len > FL_KEY_MAX || (key_len == 0 && !(flags & FL_PREFIX)) || start_revision < 0 ||
        cbs == NULL || cbs->events == NULL)
        return NULL;
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->key = malloc(key_len + 1);
    w->timer = evtimer_new(e->base, fl_watch_on_timer, w);
    if (w->key == NULL || w->timer == NULL) {
        if (w->timer != NULL)
            event_free(w->timer);
        free(w->key);
        free(w);
        return NULL;
    }
    memcpy(w->key, key, key_len);
    w->key_len = key_len;
    w->flags = flags;
    w->next_rev = start_revision;
    w->cbs = *cbs;
    w->arg = arg;
    w->e = e;
    w->ep = e->cur;
    w->state = -1;
    w->backoff_ms = e->opts.backoff_min_ms;
    w->next = e->watches;
    if (w->next != NULL)
        w->next->pprev = &w->next;
    w->pprev = &e->watches;
    e->watches = w;
    fl_watch_arm(w, 0);
    return w;
}

int
fl_watch_restart(struct fl_watch *w, int64_t start_revision)
{
    if (start_revision < 0)
        return -1;
    fl_http_free(w->conn);
    w->conn = NULL;
    w->line.len = 0;
    w->stopped = false;
    w->created = false;
    w->next_rev = start_revision;
    w->backoff_ms = w->e->opts.backoff_min_ms;
    fl_watch_arm(w, 0);
    return 0;
}

int64_t
fl_watch_next_revision(const struct fl_watch *w)
{
    return w->next_rev;
}

void
fl_watch_free(struct fl_watch *w)
{
    if (w == NULL)
        return;
    if (w->dead != NULL)
        *w->dead = true;
    *w->pprev = w->next;
    if (w->next != NULL)
        w->next->pprev = w->pprev;
    fl_http_free(w->conn);
    event_free(w->timer);
    fl_buf_fini(&w->line);
    free(w->key);
    free(w);
}

void
fl_watch_free_all(struct fl_etcd *e)
{
    while (e->watches != NULL)
        fl_watch_free(e->watches);
}
