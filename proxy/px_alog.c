/* proxy/px_alog.c -- the access log: one line per request, buffered, flushed by size and timer. */
#include "proxy/px_conn.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PX_ALOG_FLUSH_AT (48u * 1024u)
#define PX_ALOG_MAX      (4u * 1024u * 1024u) /* beyond this, lines are dropped and counted */

void
px_alog_init(struct px_alog *a)
{
    memset(a, 0, sizeof(*a));
    a->fd = -1;
}

static void
px_alog_on_timer(evutil_socket_t fd, short what, void *arg)
{
    XF_UNUSED(fd);
    XF_UNUSED(what);
    px_alog_flush(arg);
}

int
px_alog_open(struct px_worker *w, const char *target, struct xf_err *err)
{
    struct px_alog *a = &w->alog;
    struct timeval one = {1, 0};

    px_alog_configure(w);
    if (target == NULL)
        return 0;
    if (strcmp(target, "-") == 0) {
        struct stat sb;

        a->fd = STDOUT_FILENO;
        a->owns_fd = false;
        /* A regular file takes each O_APPEND write whole; a pipe or a socket only up to
         * PIPE_BUF bytes. */
        a->pipe = fstat(a->fd, &sb) == 0 && !S_ISREG(sb.st_mode);
    } else {
        a->fd = open(target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (a->fd == -1) {
            xf_err_set(err, "access_log: cannot open %s: %s", target, strerror(errno));
            return -1;
        }
        a->owns_fd = true;
    }
    a->timer = event_new(w->base, -1, EV_PERSIST, px_alog_on_timer, a);
    if (a->timer == NULL || event_add(a->timer, &one) == -1) {
        xf_err_set(err, "access_log: cannot start its timer");
        return -1;
    }
    return 0;
}

void
px_alog_configure(struct px_worker *w)
{
    struct px_alog *a = &w->alog;
    double f = w->cfg->access_log_sample;

    a->json = w->cfg->access_log_format == CFG_ALOG_JSON;
    a->sampled = f < 1.0;
    a->keep_below = a->sampled ? (uint64_t)ldexp(f, 64) : UINT64_MAX; /* f < 1: it fits */
    if (a->rng == 0) {
        /* splitmix64 of the time, the process and the worker: workers started in the same
         * microsecond, or two processes after a takeover, do not keep the same requests. */
        uint64_t z = xf_now_us() ^ ((uint64_t)getpid() << 32) ^
                     ((uint64_t)w->index + 1) * 0x9e3779b97f4a7c15u;

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
        z ^= z >> 31;
        a->rng = z != 0 ? z : 1;
    }
}

void
px_alog_reopen(struct px_worker *w)
{
    struct px_alog *a = &w->alog;
    const char *target = w->cfg->access_log;
    int fd;

    if (!a->owns_fd || target == NULL)
        return;       /* off, or standard output: nothing to reopen */
    px_alog_flush(a); /* what was written before the rotation goes to the old file */
    fd = open(target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd == -1) {
        XF_LOG(XF_LOG_ERR, "alog",
               "event=reopen_failed path=%s error=\"%s\" note=\"still writing "
               "to the file opened before\"",
               target, strerror(errno));
        return;
    }
    close(a->fd);
    a->fd = fd;
    XF_LOG(XF_LOG_INFO, "alog", "event=reopened path=%s", target);
}

void
px_alog_flush(struct px_alog *a)
{
    while (a->fd != -1 && px_buf_len(&a->buf) > 0) {
        size_t len = px_buf_len(&a->buf);
        ssize_t n;

        if (a->pipe && len > PIPE_BUF) {
            /* Whole lines of at most PIPE_BUF bytes: a pipe keeps only such writes of several
             * workers from mixing. */
            const char *head = px_buf_head(&a->buf);
            const char *nl = memrchr(head, '\n', PIPE_BUF);

            len = nl != NULL ? (size_t)(nl - head) + 1 : PIPE_BUF;
        }
        n = write(a->fd, px_buf_head(&a->buf), len);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                XF_LOG(XF_LOG_WARN, "alog", "event=write_failed error=\"%s\"", strerror(errno));
            break;
        }
        px_buf_consume(&a->buf, (size_t)n);
    }
    if (px_buf_len(&a->buf) == 0)
        px_buf_free(&a->buf);
}

void
px_alog_close(struct px_alog *a)
{
    px_alog_flush(a);
    if (a->timer != NULL) {
        event_free(a->timer);
        a->timer = NULL;
    }
    if (a->owns_fd && a->fd != -1)
        close(a->fd);
    a->fd = -1;
    px_buf_free(&a->buf);
    if (a->dropped > 0)
        XF_LOG(XF_LOG_WARN, "alog", "event=dropped lines=%llu", (unsigned long long)a->dropped);
}

/* The cluster column: "x", "y", "y>x" when y's request was served by x (failover), "-". */
static const char *
px_alog_cluster(const struct px_txn *t)
{
    if (t->node == NULL)
        return "-";
    if (t->cluster != t->choice.assigned)
        return t->cluster == CFG_CLUSTER_X ? "y>x" : "x>y";
    return cfg_cluster_name(t->cluster);
}

/* Whether a line is kept whatever the sample: a 5xx, a failure the proxy counted, or no status
 * at all (the connection ended before an answer). These are what the log is read for. */
static bool
px_alog_is_error(const struct px_txn *t)
{
    return t->failed || t->status >= 500 || t->status == 0;
}

/* xorshift64* (Vigna, 2016): one multiply and three shifts; its 64-bit outputs are uniform
 * enough for a sample, and rand() would share a state (and maybe a lock) between workers. */
static uint64_t
px_alog_rand(struct px_alog *a)
{
    uint64_t x = a->rng;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    a->rng = x;
    return x * 0x2545f4914f6cdd1du;
}

/*
 * Appends the line of one transaction:
 *   TIME CLIENT CLUSTER NODE "REQUEST" STATUS BYTES_IN BYTES_OUT UPSTREAM_MS TOTAL_MS
 * The target is cut at 300 bytes; control bytes cannot occur (the parser refused them).
 */
static void
px_alog_text(struct px_worker *w, const struct px_txn *t, const struct timespec *ts, uint64_t up,
             uint64_t total)
{
    struct tm tm;
    char status[12];

    gmtime_r(&ts->tv_sec, &tm);
    if (XF_UNLIKELY(t->raw) && t->tunnel)
        snprintf(status, sizeof(status), "-"); /* relayed bytes: no status to tell */
    else
        snprintf(status, sizeof(status), "%d", t->status);
    px_buf_printf(
        &w->alog.buf, "%04d-%02d-%02dT%02d:%02d:%02dZ %s %s %s \"%.*s\" %s %llu %llu %.3f %.3f%s\n",
        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, t->c->ip,
        px_alog_cluster(t), t->node ? px_pool_target_text(w, t->node, t->node_target) : "-",
        (int)t->target_len, t->target, status, (unsigned long long)t->bytes_in,
        (unsigned long long)t->bytes_out, (double)up / 1000.0, (double)total / 1000.0,
        t->override == BAL_OVERRIDE_INVALID       ? " override=invalid"
        : t->override == BAL_OVERRIDE_NOT_ALLOWED ? " override=not_allowed"
                                                  : "");
}

/* Appends `len` bytes of s escaped for the inside of a JSON string (xf_json_escape). */
static void
px_alog_json_esc(struct px_buf *b, const char *s, size_t len)
{
    char *dst = px_buf_reserve(b, XF_JSON_ESCAPED_MAX(len));

    if (dst != NULL) /* else the buffer failed: px_alog_txn drops what it held */
        b->end += xf_json_escape(dst, s, len);
}

/* Appends ,"name":"s" with s escaped, or ,"name":null when s is NULL. */
static void
px_alog_json_str(struct px_buf *b, const char *name, const char *s, size_t len)
{
    if (s == NULL) {
        px_buf_printf(b, ",\"%s\":null", name);
        return;
    }
    px_buf_printf(b, ",\"%s\":\"", name);
    px_alog_json_esc(b, s, len);
    px_buf_append(b, "\"", 1);
}

/* Appends a duration in µs as milliseconds with 3 decimals, or null when unknown (UINT64_MAX). */
static void
px_alog_json_ms(struct px_buf *b, const char *name, uint64_t us)
{
    if (us == UINT64_MAX)
        px_buf_printf(b, ",\"%s\":null", name);
    else
        px_buf_printf(b, ",\"%s\":%llu.%03u", name, (unsigned long long)(us / 1000),
                      (unsigned)(us % 1000));
}

/*
 * The split key source that decided, as split.key names it ("header:x-user", "cookie:s"); "ip"
 * when the client address did (no rule matched); for a tcp listener "ip" or "sni". A tunnel let
 * go of its snapshot: the config in force names its rule, which a reload in between may have
 * changed (an index it no longer has gives null).
 */
static void
px_alog_json_key(struct px_buf *b, const struct px_worker *w, const struct px_txn *t)
{
    const struct cfg_split *split = t->snap != NULL ? t->snap->s->split : &w->cfg->split;
    int k = t->choice.key_index;

    if (XF_UNLIKELY(t->raw)) {
        bool sni = t->target_len > 8 && memcmp(t->target, "TCP sni=", 8) == 0;

        px_buf_printf(b, ",\"key\":\"%s\"", sni ? "sni" : "ip");
    } else if (k < 0) {
        px_buf_printf(b, ",\"key\":\"ip\"");
    } else if ((size_t)k >= split->n_keys) {
        px_buf_printf(b, ",\"key\":null");
    } else {
        const struct cfg_split_key *key = &split->keys[k];

        px_buf_printf(b, ",\"key\":\"%s%s", cfg_key_kind_name(key->kind), key->name ? ":" : "");
        if (key->name != NULL)
            px_alog_json_esc(b, key->name, strlen(key->name));
        px_buf_append(b, "\"", 1);
    }
}

/*
 * Appends the json line of one transaction: one object whose fields come in a fixed order
 * (docs/config.md, "access_log_format"); "override" last, and only when one was ignored. The
 * path is the target as received (up to PX_ALOG_PATH_MAX bytes), escaped so that any bytes make
 * valid JSON.
 */
static void
px_alog_json(struct px_worker *w, const struct px_txn *t, const struct timespec *ts, uint64_t up,
             uint64_t total)
{
    struct px_buf *b = &w->alog.buf;
    const char *method = NULL, *path = NULL;
    size_t m = 0, path_len = 0;
    struct tm tm;

    gmtime_r(&ts->tv_sec, &tm);
    px_buf_printf(b, "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"client\":\"%s\"",
                  tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  ts->tv_nsec / 1000000, t->c->ip);
    if (!t->raw) { /* a tcp connection has neither */
        method = llhttp_method_name(t->method);
        m = strlen(method);
        if (t->url_long != NULL) {
            path = t->url_long;
            path_len = t->url_long_len;
        } else if (t->target_len >= m + 10) { /* "METHOD " url " HTTP/1.x" */
            path = t->target + m + 1;
            path_len = t->target_len - m - 10;
        }
    }
    px_alog_json_str(b, "method", method, m);
    px_alog_json_str(b, "path", path, path_len);
    if ((t->raw && t->tunnel) || t->status == 0)
        px_buf_printf(b, ",\"status\":null");
    else
        px_buf_printf(b, ",\"status\":%d", t->status);
    px_buf_printf(b, ",\"bytes_in\":%llu,\"bytes_out\":%llu", (unsigned long long)t->bytes_in,
                  (unsigned long long)t->bytes_out);
    px_alog_json_ms(b, "ttfb_ms", t->t_head_us != 0 ? t->t_head_us - t->t_start_us : UINT64_MAX);
    px_alog_json_ms(b, "upstream_ms", t->t_up_start_us != 0 ? up : UINT64_MAX);
    px_alog_json_ms(b, "total_ms", total);
    if (t->node != NULL)
        px_buf_printf(b, ",\"cluster\":\"%s\"", cfg_cluster_name(t->cluster));
    else
        px_buf_printf(b, ",\"cluster\":null");
    px_buf_printf(b, ",\"assigned\":\"%s\"", cfg_cluster_name(t->choice.assigned));
    if (t->node != NULL) {
        const char *node = px_pool_target_text(w, t->node, t->node_target);

        px_alog_json_str(b, "node", node, strlen(node));
    } else {
        px_alog_json_str(b, "node", NULL, 0);
    }
    px_buf_printf(b, ",\"attempts\":%u", (unsigned)t->n_tried);
    px_alog_json_key(b, w, t);
    if (t->x_only) /* an admin_api listener's request: the split did not run */
        px_buf_printf(b, ",\"reason\":null,\"bucket\":null");
    else
        px_buf_printf(b, ",\"reason\":\"%s\",\"bucket\":%u", bal_reason_name(t->choice.reason),
                      (unsigned)t->choice.bucket);
    px_buf_printf(b, ",\"test\":%s%s}\n", t->test ? "true" : "false",
                  t->override == BAL_OVERRIDE_INVALID       ? ",\"override\":\"invalid\""
                  : t->override == BAL_OVERRIDE_NOT_ALLOWED ? ",\"override\":\"not_allowed\""
                                                            : "");
}

/*
 * Appends the line of one ending transaction in the configured format, unless the sample leaves
 * it out (never an error's). Written by size or by the timer, never here: the data path does not
 * wait on the disk.
 */
void
px_alog_txn(struct px_worker *w, const struct px_txn *t)
{
    struct px_alog *a = &w->alog;
    uint64_t now, up = 0;
    struct timespec ts;

    if (a->fd == -1)
        return;
    /* No draw at all with the whole log (the default): a sample costs nothing until asked. */
    if (XF_UNLIKELY(a->sampled) && !px_alog_is_error(t) && px_alog_rand(a) >= a->keep_below)
        return;
    if (px_buf_len(&a->buf) > PX_ALOG_MAX) {
        a->dropped++;
        return;
    }
    now = xf_now_us();
    if (t->t_up_start_us != 0)
        up = (t->t_up_end_us ? t->t_up_end_us : now) - t->t_up_start_us;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (a->json)
        px_alog_json(w, t, &ts, up, now - t->t_start_us);
    else
        px_alog_text(w, t, &ts, up, now - t->t_start_us);
    if (a->buf.failed) {
        /* Out of memory: what the buffer held may be cut; a log never gets half a line. */
        a->dropped++;
        px_buf_free(&a->buf);
        return;
    }
    if (px_buf_len(&a->buf) >= PX_ALOG_FLUSH_AT)
        px_alog_flush(a);
}
