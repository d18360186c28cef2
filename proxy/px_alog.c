/* proxy/px_alog.c -- the access log: one line per request, buffered, flushed by size and timer. */
#include "proxy/px_conn.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
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

/*
 * Appends the line of one transaction:
 *   TIME CLIENT CLUSTER NODE "REQUEST" STATUS BYTES_IN BYTES_OUT UPSTREAM_MS TOTAL_MS
 * The target is cut at 300 bytes; control bytes cannot occur (the parser refused them).
 */
void
px_alog_txn(struct px_worker *w, const struct px_txn *t)
{
    struct px_alog *a = &w->alog;
    uint64_t now = xf_now_us();
    uint64_t up = 0;
    struct timespec ts;
    struct tm tm;
    char status[12];

    if (a->fd == -1)
        return;
    if (px_buf_len(&a->buf) > PX_ALOG_MAX) {
        a->dropped++;
        return;
    }
    if (t->t_up_start_us != 0)
        up = (t->t_up_end_us ? t->t_up_end_us : now) - t->t_up_start_us;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    if (XF_UNLIKELY(t->raw) && t->tunnel)
        snprintf(status, sizeof(status), "-"); /* relayed bytes: no status to tell */
    else
        snprintf(status, sizeof(status), "%d", t->status);
    px_buf_printf(
        &a->buf, "%04d-%02d-%02dT%02d:%02d:%02dZ %s %s %s \"%.*s\" %s %llu %llu %.3f %.3f%s\n",
        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, t->c->ip,
        px_alog_cluster(t), t->node ? px_pool_target_text(w, t->node, t->node_target) : "-",
        (int)t->target_len, t->target, status, (unsigned long long)t->bytes_in,
        (unsigned long long)t->bytes_out, (double)up / 1000.0,
        (double)(now - t->t_start_us) / 1000.0,
        t->override == BAL_OVERRIDE_INVALID       ? " override=invalid"
        : t->override == BAL_OVERRIDE_NOT_ALLOWED ? " override=not_allowed"
                                                  : "");
    if (a->buf.failed) {
        /* Out of memory: what the buffer held may be cut; a log never gets half a line. */
        a->dropped++;
        px_buf_free(&a->buf);
        return;
    }
    if (px_buf_len(&a->buf) >= PX_ALOG_FLUSH_AT)
        px_alog_flush(a);
}
