/* bench/bench_xfbench_ctl.c -- xfbench's admin client: the rollout script, ramps, and the weight
 * in force, from the admin socket's watch (or a poll when crossfade has none). */
#include "bench/bench_xfbench.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#define BENCH_XFB_CTL_IN      16384 /* unanswered reply bytes held; a longer reply is an error */
#define BENCH_XFB_CTL_OUT     16384
#define BENCH_XFB_CTL_PENDING 64
#define BENCH_XFB_CTL_WAIT_MS 3000 /* connect and first reply, before the run */
#define BENCH_XFB_CTL_END_MS  2000 /* replies still due when the run ends */
/* The server is on this machine (a Unix socket): its clock may only differ from ours by the
 * time its first line took to come. More, and its times cannot be put on the run's clock. */
#define BENCH_XFB_CTL_CLOCK_MS 1000
/* Events the watch may add to the timeline: the rest is kept for the script's commands. */
#define BENCH_XFB_CTL_WATCH_EVENTS (BENCH_XFB_EVENTS_MAX / 2)

enum bench_xfb_pend {
    BENCH_XFB_PEND_POLL = 0, /* show weight, once a second */
    BENCH_XFB_PEND_EVENT,    /* a command of the script: its event is waiting */
};

struct bench_xfb_pending {
    enum bench_xfb_pend kind;
    size_t event;     /* PEND_EVENT: index in events */
    uint64_t sent_us; /* from the start of the run */
};

struct bench_xfb_ctl {
    const struct bench_xfb_opts *o; /* borrowed */
    int fd;                         /* owned: the commands' connection */
    struct event_base *base;        /* borrowed */
    struct event *rev, *wev;        /* owned */
    struct event *step_timer;       /* owned: the next script step or ramp change */
    struct event *poll_timer;       /* owned: show weight, every second, without a watch */
    uint64_t start_ns;
    char in[BENCH_XFB_CTL_IN];
    size_t in_len;
    char out[BENCH_XFB_CTL_OUT];
    size_t out_len, out_off;
    struct bench_xfb_pending pend[BENCH_XFB_CTL_PENDING]; /* a ring */
    size_t pend_head, pend_n;
    size_t next_step; /* the script's next step */
    /* The ramp under way: its changes from ramp_start_us on; ramp_next is the next to send. */
    struct bench_xfb_change ramp[BENCH_XFB_RAMP_MAX];
    size_t ramp_n, ramp_next;
    uint64_t ramp_start_us;
    unsigned ramp_step;             /* its script step */
    struct bench_xfb_event *events; /* owned: BENCH_XFB_EVENTS_MAX */
    size_t nevents;
    uint64_t dropped;
    struct bench_xfb_change *changes; /* owned: the weight's history, BENCH_XFB_EVENTS_MAX */
    size_t nchanges;
    int initial_bp;
    int weight_bp; /* the latest weight any reply or the watch told */
    int hist_bp;   /* the weight the history ends on */
    int broken;    /* the connection is gone: commands are recorded as not sent */
    int draining;
    int stopping; /* the run is over: a watch that ends now loses nothing */
    char broken_why[128];
    /* The watch: a second connection on which crossfade tells each change at its time. */
    int wfd;            /* owned; -1: no watch (never, or no more) */
    struct event *wrev; /* owned */
    char win[BENCH_XFB_WATCH_IN];
    size_t win_len;
    int64_t epoch_us; /* CLOCK_REALTIME at start_ns, in µs since the Unix epoch */
    long pid;         /* ours: the watch names it for the commands we sent */
    size_t watch_events;
    enum bench_xfb_wsrc source; /* WATCH, or POLL from the start */
    uint64_t seen_us;           /* poll: the weight was last seen by a command sent then */
    char poll_why[256];         /* why the poll, "" with a watch */
    int lost;                   /* the history ended at lost_us, for lost_why */
    uint64_t lost_us;
    char lost_why[256];
};

static uint64_t
bench_xfb_ctl_now_us(const struct bench_xfb_ctl *ctl)
{
    uint64_t now = bench_xfb_now_ns();

    return now > ctl->start_ns ? (now - ctl->start_ns) / 1000 : 0;
}

/* A new event in the timeline, or NULL once the list is full (then counted as dropped). */
static struct bench_xfb_event *
bench_xfb_ctl_event(struct bench_xfb_ctl *ctl, unsigned step, const char *command)
{
    struct bench_xfb_event *e;

    if (ctl->nevents == BENCH_XFB_EVENTS_MAX) {
        ctl->dropped++;
        return NULL;
    }
    e = &ctl->events[ctl->nevents++];
    memset(e, 0, sizeof(*e));
    e->at_us = bench_xfb_ctl_now_us(ctl);
    e->step = step;
    e->ok = 1;
    e->weight_bp = -1;
    snprintf(e->command, sizeof(e->command), "%s", command);
    return e;
}

/*
 * The history of the weight ends at `at_us` (a watch that broke, a full list): --check judges
 * nothing after it. Said once, as a warning and in the timeline.
 */
static void
bench_xfb_ctl_lose(struct bench_xfb_ctl *ctl, uint64_t at_us, const char *label, const char *why)
{
    struct bench_xfb_event *e;

    if (ctl->lost)
        return;
    ctl->lost = 1;
    ctl->lost_us = at_us;
    snprintf(ctl->lost_why, sizeof(ctl->lost_why), "%s", why);
    XF_LOG(XF_LOG_WARN, "xfbench", "%s; --check judges nothing after %.2fs", why,
           (double)at_us / 1e6);
    if ((e = bench_xfb_ctl_event(ctl, 0, label)) != NULL) {
        e->at_us = at_us;
        e->ok = 0;
        snprintf(e->reply, sizeof(e->reply), "%s", why);
    }
}

/*
 * The weight in force became `bp` at `at_us`, or up to lead_us before it: one more entry in the
 * history --check and the charts read. Times never go back (a clock stepped back keeps the order).
 */
static void
bench_xfb_ctl_history(struct bench_xfb_ctl *ctl, unsigned bp, uint64_t at_us, uint64_t lead_us)
{
    if (ctl->hist_bp == (int)bp)
        return;
    if (ctl->nchanges > 0 && at_us < ctl->changes[ctl->nchanges - 1].at_us)
        at_us = ctl->changes[ctl->nchanges - 1].at_us;
    if (ctl->nchanges == BENCH_XFB_EVENTS_MAX) {
        bench_xfb_ctl_lose(ctl, at_us, "(weight history)",
                           "more than 4096 weight changes: xfbench keeps no more");
        return;
    }
    ctl->changes[ctl->nchanges].at_us = at_us;
    ctl->changes[ctl->nchanges].weight_bp = bp;
    ctl->changes[ctl->nchanges].lead_us = XF_MIN(lead_us, at_us);
    ctl->nchanges++;
    ctl->hist_bp = (int)bp;
}

/* Joins a reply's lines with " / " into the event. */
static void
bench_xfb_ctl_reply_text(const char *reply, char *out, size_t size)
{
    size_t o = 0;

    for (const char *p = reply; *p != '\0' && o + 1 < size; p++) {
        if (*p == '\n') {
            if (p[1] == '\0')
                break;
            if (o + 4 >= size)
                break;
            memcpy(out + o, " / ", 3);
            o += 3;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

static void
bench_xfb_ctl_break(struct bench_xfb_ctl *ctl, const char *why)
{
    struct bench_xfb_event *e;

    if (ctl->broken)
        return;
    ctl->broken = 1;
    snprintf(ctl->broken_why, sizeof(ctl->broken_why), "%s", why);
    XF_LOG(XF_LOG_WARN, "xfbench", "admin socket: %s", why);
    /* Commands sent and never answered failed. */
    for (size_t i = 0; i < ctl->pend_n; i++) {
        const struct bench_xfb_pending *p =
            &ctl->pend[(ctl->pend_head + i) % BENCH_XFB_CTL_PENDING];
        if (p->kind == BENCH_XFB_PEND_EVENT) {
            ctl->events[p->event].ok = 0;
            snprintf(ctl->events[p->event].reply, sizeof(ctl->events[0].reply), "no reply: %s",
                     why);
        }
    }
    ctl->pend_n = 0;
    if ((e = bench_xfb_ctl_event(ctl, 0, "(admin connection)")) != NULL) {
        e->ok = 0;
        snprintf(e->reply, sizeof(e->reply), "%s", why);
    }
    if (ctl->rev != NULL)
        event_del(ctl->rev);
    if (ctl->wev != NULL)
        event_del(ctl->wev);
    if (ctl->draining)
        event_base_loopbreak(ctl->base);
}

static void
bench_xfb_ctl_write(struct bench_xfb_ctl *ctl)
{
    while (ctl->out_off < ctl->out_len) {
        ssize_t n =
            send(ctl->fd, ctl->out + ctl->out_off, ctl->out_len - ctl->out_off, MSG_NOSIGNAL);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (ctl->wev != NULL)
                    event_add(ctl->wev, NULL);
                return;
            }
            bench_xfb_ctl_break(ctl, strerror(errno));
            return;
        }
        ctl->out_off += (size_t)n;
    }
    ctl->out_off = ctl->out_len = 0;
}

/* Queues one command line; returns 0, or -1 when it cannot be sent (the reason in the event). */
static int
bench_xfb_ctl_send(struct bench_xfb_ctl *ctl, const char *line, enum bench_xfb_pend kind,
                   struct bench_xfb_event *e)
{
    size_t len = strlen(line);
    struct bench_xfb_pending *p;

    if (ctl->broken) {
        if (e != NULL) {
            e->ok = 0;
            snprintf(e->reply, sizeof(e->reply), "not sent: %s", ctl->broken_why);
        }
        return -1;
    }
    if (ctl->pend_n == BENCH_XFB_CTL_PENDING || ctl->out_len + len + 1 > sizeof(ctl->out)) {
        if (kind == BENCH_XFB_PEND_POLL)
            return -1;
        bench_xfb_ctl_break(ctl, "crossfade does not answer its admin socket");
        if (e != NULL) {
            e->ok = 0;
            snprintf(e->reply, sizeof(e->reply), "not sent: %s", ctl->broken_why);
        }
        return -1;
    }
    if (ctl->out_off > 0 && ctl->out_off == ctl->out_len)
        ctl->out_off = ctl->out_len = 0;
    memcpy(ctl->out + ctl->out_len, line, len);
    ctl->out[ctl->out_len + len] = '\n';
    ctl->out_len += len + 1;
    p = &ctl->pend[(ctl->pend_head + ctl->pend_n) % BENCH_XFB_CTL_PENDING];
    p->kind = kind;
    p->event = e != NULL ? (size_t)(e - ctl->events) : 0;
    p->sent_us = bench_xfb_ctl_now_us(ctl);
    ctl->pend_n++;
    bench_xfb_ctl_write(ctl);
    return 0;
}

/*
 * A whole reply (lines, each ending in LF, the empty line removed) for the oldest command. Without
 * a watch, the weight's history is built from the replies: a change a reply announces happened
 * between the command's send and its reply, one a poll finds since the weight was last seen.
 */
static void
bench_xfb_ctl_reply(struct bench_xfb_ctl *ctl, const char *reply)
{
    struct bench_xfb_pending p;
    uint64_t now = bench_xfb_ctl_now_us(ctl);
    int watching = ctl->wfd != -1;
    unsigned bp;

    if (ctl->pend_n == 0)
        return; /* nothing asked: ignore */
    p = ctl->pend[ctl->pend_head];
    ctl->pend_head = (ctl->pend_head + 1) % BENCH_XFB_CTL_PENDING;
    ctl->pend_n--;
    if (p.kind == BENCH_XFB_PEND_POLL) {
        if (bench_xfb_reply_weight(reply, &bp) == 0) {
            if ((int)bp != ctl->weight_bp) {
                struct bench_xfb_event *e = bench_xfb_ctl_event(ctl, 0, "show weight");
                if (e != NULL) {
                    bench_xfb_ctl_reply_text(reply, e->reply, sizeof(e->reply));
                    e->reply_us = now;
                    e->weight_bp = (int)bp;
                    e->minor = 1; /* the weight line shows it; crossfade's own ramp makes many */
                }
                ctl->weight_bp = (int)bp;
            }
            if (!watching)
                bench_xfb_ctl_history(ctl, bp, now, now - XF_MIN(ctl->seen_us, now));
            ctl->seen_us = XF_MAX(ctl->seen_us, p.sent_us);
        }
    } else {
        struct bench_xfb_event *e = &ctl->events[p.event];
        e->reply_us = now;
        bench_xfb_ctl_reply_text(reply, e->reply, sizeof(e->reply));
        e->ok = strncmp(reply, "error:", 6) != 0;
        if (e->ok && bench_xfb_reply_weight(reply, &bp) == 0) {
            e->weight_bp = (int)bp;
            ctl->weight_bp = (int)bp;
            if (!watching)
                bench_xfb_ctl_history(ctl, bp, now, now - XF_MIN(p.sent_us, now));
            ctl->seen_us = XF_MAX(ctl->seen_us, p.sent_us);
        }
        if (!e->ok)
            XF_LOG(XF_LOG_WARN, "xfbench", "rollout step %u \"%s\": %s", e->step, e->command,
                   e->reply);
    }
    if (ctl->draining && ctl->pend_n == 0)
        event_base_loopbreak(ctl->base);
}

/* Splits the input into replies: each ends with an empty line. */
static void
bench_xfb_ctl_parse(struct bench_xfb_ctl *ctl)
{
    size_t start = 0;

    for (;;) {
        char *end = NULL;
        size_t i;

        /* A reply is over at "\n\n", or at a lone "\n" at its very start (an empty reply). */
        for (i = start; i < ctl->in_len; i++) {
            if (ctl->in[i] == '\n' && (i == start || ctl->in[i - 1] == '\n')) {
                end = ctl->in + i;
                break;
            }
        }
        if (end == NULL)
            break;
        *end = '\0';
        bench_xfb_ctl_reply(ctl, ctl->in + start);
        start = i + 1;
    }
    memmove(ctl->in, ctl->in + start, ctl->in_len - start);
    ctl->in_len -= start;
}

static void
bench_xfb_ctl_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bench_xfb_ctl *ctl = arg;

    XF_UNUSED(what);
    for (;;) {
        ssize_t n;

        if (ctl->in_len + 1 >= sizeof(ctl->in)) {
            bench_xfb_ctl_break(ctl, "a reply longer than 16 KiB");
            return;
        }
        /* Keep a byte for the NUL that ends the last reply's text. */
        n = recv(fd, ctl->in + ctl->in_len, sizeof(ctl->in) - 1 - ctl->in_len, 0);
        if (n > 0) {
            ctl->in_len += (size_t)n;
            bench_xfb_ctl_parse(ctl);
            continue;
        }
        if (n == 0) {
            bench_xfb_ctl_break(ctl, "crossfade closed the admin connection");
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            bench_xfb_ctl_break(ctl, strerror(errno));
        return;
    }
}

static void
bench_xfb_ctl_write_cb(evutil_socket_t fd, short what, void *arg)
{
    XF_UNUSED(fd);
    XF_UNUSED(what);
    bench_xfb_ctl_write(arg);
}

/* --- the watch --- */

/*
 * The watch connection is over (closed, broken, or it sent what xfbench cannot read): from now on
 * the weight is only known from the poll, which takes over for the live line and the charts, and
 * the history used by --check ends here. At the end of the run nothing is lost: it just closes.
 */
static void
bench_xfb_ctl_watch_break(struct bench_xfb_ctl *ctl, const char *why)
{
    struct timeval second = {.tv_sec = 1, .tv_usec = 0};
    uint64_t now = bench_xfb_ctl_now_us(ctl);
    char text[256];

    if (ctl->wfd == -1)
        return;
    if (ctl->wrev != NULL)
        event_del(ctl->wrev);
    close(ctl->wfd);
    ctl->wfd = -1;
    ctl->win_len = 0;
    if (ctl->stopping)
        return;
    snprintf(text, sizeof(text), "the watch connection broke: %s", why);
    bench_xfb_ctl_lose(ctl, now, "(watch connection)", text);
    ctl->seen_us = now;
    if (ctl->poll_timer != NULL)
        event_add(ctl->poll_timer, &second);
}

/* An event of the watch in the timeline, unless it is one of our own commands (already there). */
static void
bench_xfb_ctl_watch_event(struct bench_xfb_ctl *ctl, const struct bench_xfb_watch_line *wl,
                          uint64_t at_us)
{
    struct bench_xfb_event *e;
    char uid[24] = "-", pid[24] = "-";

    if (wl->pid != -1 && wl->pid == ctl->pid)
        return;
    if (ctl->watch_events == BENCH_XFB_CTL_WATCH_EVENTS) {
        ctl->dropped++;
        return;
    }
    if ((e = bench_xfb_ctl_event(ctl, 0, wl->command)) == NULL)
        return;
    ctl->watch_events++;
    e->at_us = at_us;
    e->minor = 1; /* the weight line draws the weight's; the others would crowd the charts */
    if (wl->is_weight)
        e->weight_bp = (int)wl->new_bp;
    if (wl->uid != -1)
        snprintf(uid, sizeof(uid), "%lld", (long long)wl->uid);
    if (wl->pid != -1)
        snprintf(pid, sizeof(pid), "%lld", (long long)wl->pid);
    snprintf(e->reply, sizeof(e->reply), "watch: %.*s %.*s -> %.*s (uid=%s pid=%s)",
             (int)XF_MIN(wl->what_len, 32), wl->what, (int)XF_MIN(wl->old_len, 200), wl->old_v,
             (int)XF_MIN(wl->new_len, 200), wl->new_v, uid, pid);
}

/* One line of the watch (its LF removed). Returns 0, or -1 when it ended the watch. */
static int
bench_xfb_ctl_watch_line(struct bench_xfb_ctl *ctl, const char *line, size_t len)
{
    struct bench_xfb_watch_line wl;
    struct xf_err err = {{0}};
    char why[256];
    int64_t us;
    uint64_t at;

    if (bench_xfb_watch_parse(line, len, &wl, &err) == -1) {
        /* A line misread may be a change missed: better no verdict than one on a stale weight. */
        snprintf(why, sizeof(why), "a line xfbench cannot read (%.100s): %.*s", err.msg,
                 (int)XF_MIN(len, 80), line);
        bench_xfb_ctl_watch_break(ctl, why);
        return -1;
    }
    us = wl.at_ms * 1000 - ctl->epoch_us;
    at = us > 0 ? (uint64_t)us : 0;
    if (wl.is_weight) {
        ctl->weight_bp = (int)wl.new_bp;
        if (us <= 0 && ctl->nchanges == 0)
            ctl->initial_bp = ctl->hist_bp = (int)wl.new_bp; /* before the run: its start */
        else
            bench_xfb_ctl_history(ctl, wl.new_bp, at, 0);
    }
    bench_xfb_ctl_watch_event(ctl, &wl, at);
    return 0;
}

/* The complete lines received so far. Returns 0, or -1 when one ended the watch. */
static int
bench_xfb_ctl_watch_lines(struct bench_xfb_ctl *ctl)
{
    size_t start = 0;

    for (;;) {
        char *eol = memchr(ctl->win + start, '\n', ctl->win_len - start);
        if (eol == NULL)
            break;
        if (bench_xfb_ctl_watch_line(ctl, ctl->win + start, (size_t)(eol - ctl->win) - start) == -1)
            return -1;
        start = (size_t)(eol - ctl->win) + 1;
    }
    memmove(ctl->win, ctl->win + start, ctl->win_len - start);
    ctl->win_len -= start;
    return 0;
}

static void
bench_xfb_ctl_watch_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bench_xfb_ctl *ctl = arg;

    XF_UNUSED(what);
    for (;;) {
        ssize_t n;

        if (ctl->win_len == sizeof(ctl->win)) {
            bench_xfb_ctl_watch_break(ctl, "a line longer than 24 KiB");
            return;
        }
        n = recv(fd, ctl->win + ctl->win_len, sizeof(ctl->win) - ctl->win_len, 0);
        if (n > 0) {
            ctl->win_len += (size_t)n;
            if (bench_xfb_ctl_watch_lines(ctl) == -1)
                return;
            continue;
        }
        if (n == 0) {
            bench_xfb_ctl_watch_break(ctl, "crossfade closed it");
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            bench_xfb_ctl_watch_break(ctl, strerror(errno));
        return;
    }
}

/*
 * CLOCK_REALTIME at the monotonic start_ns, in µs since the Unix epoch: the watch's times are the
 * server's CLOCK_REALTIME, the run counts on CLOCK_MONOTONIC. The two clocks are read back to back
 * (the closest of three tries), so a time converts within a few µs plus its own millisecond.
 */
static int64_t
bench_xfb_ctl_epoch_us(uint64_t start_ns)
{
    uint64_t best_gap = UINT64_MAX;
    int64_t best = 0;

    for (int i = 0; i < 3; i++) {
        struct timespec rt;
        uint64_t m0 = bench_xfb_now_ns(), m1;

        clock_gettime(CLOCK_REALTIME, &rt);
        m1 = bench_xfb_now_ns();
        if (m1 - m0 < best_gap) {
            int64_t rt_ns = (int64_t)rt.tv_sec * 1000000000 + rt.tv_nsec;
            int64_t since_start = (int64_t)(m0 + (m1 - m0) / 2) - (int64_t)start_ns;
            best_gap = m1 - m0;
            best = (rt_ns - since_start) / 1000;
        }
    }
    return best;
}
/* Sends a command of step `step` as an event of the timeline. */
static void
bench_xfb_ctl_command(struct bench_xfb_ctl *ctl, unsigned step, const char *line, int minor)
{
    struct bench_xfb_event *e = bench_xfb_ctl_event(ctl, step, line);

    if (e == NULL)
        return;
    e->minor = minor;
    bench_xfb_ctl_send(ctl, line, BENCH_XFB_PEND_EVENT, e);
}

/* Runs script step `i` (0-based): a command, or the plan of a ramp. */
static void
bench_xfb_ctl_step(struct bench_xfb_ctl *ctl, size_t i)
{
    const struct bench_xfb_step *st = &ctl->o->script.steps[i];
    char from[8], to[8];

    if (ctl->ramp_next < ctl->ramp_n) {
        struct bench_xfb_event *e = bench_xfb_ctl_event(ctl, (unsigned)i + 1, "(ramp cancelled)");
        if (e != NULL)
            snprintf(e->reply, sizeof(e->reply),
                     "step %zu starts: the ramp of step %u stops after %zu of %zu changes", i + 1,
                     ctl->ramp_step, ctl->ramp_next, ctl->ramp_n);
    }
    ctl->ramp_n = ctl->ramp_next = 0;
    if (st->kind != BENCH_XFB_STEP_RAMP) {
        bench_xfb_ctl_command(ctl, (unsigned)i + 1, st->line, 0);
        return;
    }
    {
        unsigned start = ctl->weight_bp >= 0 ? (unsigned)ctl->weight_bp : 0;
        struct bench_xfb_event *e = bench_xfb_ctl_event(ctl, (unsigned)i + 1, st->text);

        ctl->ramp_n = bench_xfb_ramp_plan(start, st->weight_bp, st->over_ms, st->step_bp, ctl->ramp,
                                          BENCH_XFB_RAMP_MAX);
        ctl->ramp_start_us = bench_xfb_ctl_now_us(ctl);
        ctl->ramp_step = (unsigned)i + 1;
        if (e != NULL) {
            e->reply_us = e->at_us;
            snprintf(e->reply, sizeof(e->reply),
                     "xfbench sends %zu set weight command%s from %s to %s", ctl->ramp_n,
                     ctl->ramp_n == 1 ? "" : "s", bench_xfb_weight_text(start, from),
                     bench_xfb_weight_text(st->weight_bp, to));
        }
    }
}

static void
bench_xfb_ctl_schedule(struct bench_xfb_ctl *ctl)
{
    uint64_t next = UINT64_MAX, now = bench_xfb_ctl_now_us(ctl), wait;
    struct timeval tv;

    if (ctl->next_step < ctl->o->script.n)
        next = ctl->o->script.steps[ctl->next_step].at_ms * 1000;
    if (ctl->ramp_next < ctl->ramp_n)
        next = XF_MIN(next, ctl->ramp_start_us + ctl->ramp[ctl->ramp_next].at_us);
    if (next == UINT64_MAX)
        return;
    wait = next > now ? next - now : 0;
    tv.tv_sec = (time_t)(wait / 1000000);
    tv.tv_usec = (suseconds_t)(wait % 1000000);
    evtimer_add(ctl->step_timer, &tv);
}

static void
bench_xfb_ctl_step_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bench_xfb_ctl *ctl = arg;
    uint64_t now = bench_xfb_ctl_now_us(ctl);

    XF_UNUSED(fd);
    XF_UNUSED(what);
    for (;;) {
        uint64_t step_at = ctl->next_step < ctl->o->script.n
                               ? ctl->o->script.steps[ctl->next_step].at_ms * 1000
                               : UINT64_MAX;
        uint64_t ramp_at = ctl->ramp_next < ctl->ramp_n
                               ? ctl->ramp_start_us + ctl->ramp[ctl->ramp_next].at_us
                               : UINT64_MAX;
        if (step_at <= now && step_at <= ramp_at) {
            bench_xfb_ctl_step(ctl, ctl->next_step++);
        } else if (ramp_at <= now) {
            char line[40], w[8];
            snprintf(line, sizeof(line), "set weight %s%s",
                     bench_xfb_weight_text(ctl->ramp[ctl->ramp_next].weight_bp, w),
                     ctl->o->script.steps[ctl->ramp_step - 1].force ? " force" : "");
            ctl->ramp_next++;
            bench_xfb_ctl_command(ctl, ctl->ramp_step, line, 1);
        } else {
            break;
        }
    }
    bench_xfb_ctl_schedule(ctl);
}

static void
bench_xfb_ctl_poll_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bench_xfb_ctl *ctl = arg;

    XF_UNUSED(fd);
    XF_UNUSED(what);
    for (size_t i = 0; i < ctl->pend_n; i++) {
        if (ctl->pend[(ctl->pend_head + i) % BENCH_XFB_CTL_PENDING].kind == BENCH_XFB_PEND_POLL)
            return; /* the last one is still unanswered */
    }
    bench_xfb_ctl_send(ctl, "show weight", BENCH_XFB_PEND_POLL, NULL);
}

/*
 * Reads from fd until `until` is in the bytes read (before the loop runs, at most 3 s). Returns 0
 * with *len bytes in buf (NUL-terminated; more may follow `until`), or -1 with err naming
 * `command`.
 */
static int
bench_xfb_ctl_read_sync(const struct bench_xfb_ctl *ctl, int fd, const char *command,
                        const char *until, char *buf, size_t size, size_t *len, struct xf_err *err)
{
    uint64_t deadline = xf_now_ms() + BENCH_XFB_CTL_WAIT_MS;

    *len = 0;
    buf[0] = '\0';
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        uint64_t now = xf_now_ms();
        ssize_t n;

        if (now >= deadline) {
            xf_err_set(err, "admin socket %s: no reply to \"%s\" within %d ms",
                       ctl->o->admin_socket, command, BENCH_XFB_CTL_WAIT_MS);
            return -1;
        }
        if (poll(&pfd, 1, (int)(deadline - now)) <= 0)
            continue;
        n = recv(fd, buf + *len, size - 1 - *len, 0);
        if (n <= 0) {
            if (n == -1 && (errno == EINTR || errno == EAGAIN))
                continue;
            xf_err_set(err, "admin socket %s: closed before replying", ctl->o->admin_socket);
            return -1;
        }
        *len += (size_t)n;
        buf[*len] = '\0';
        if (strstr(buf, until) != NULL)
            return 0;
        if (*len + 1 >= size) {
            xf_err_set(err, "admin socket %s: reply too long", ctl->o->admin_socket);
            return -1;
        }
    }
}

/*
 * Subscribes to the watch on a second connection, before the run (at most 3 s): its first line
 * gives the weight in force at that moment, and every later change comes with its time. Anything
 * short of that leaves the once-a-second poll in charge, with a warning: the run goes on.
 */
static void
bench_xfb_ctl_watch_open(struct bench_xfb_ctl *ctl, const struct sockaddr_un *sun)
{
    struct xf_err err = {{0}};
    struct timespec rt;
    size_t len = 0, line_len;
    int64_t at_ms, skew_ms;
    unsigned bp;
    char *eol;

    ctl->wfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ctl->wfd == -1 || connect(ctl->wfd, (const struct sockaddr *)sun, sizeof(*sun)) == -1 ||
        send(ctl->wfd, "watch\n", 6, MSG_NOSIGNAL) != 6) {
        snprintf(ctl->poll_why, sizeof(ctl->poll_why), "no second admin connection for watch: %s",
                 strerror(errno));
        goto poll;
    }
    if (bench_xfb_ctl_read_sync(ctl, ctl->wfd, "watch", "\n", ctl->win, sizeof(ctl->win), &len,
                                &err) == -1) {
        snprintf(ctl->poll_why, sizeof(ctl->poll_why), "%.200s", err.msg);
        goto poll;
    }
    clock_gettime(CLOCK_REALTIME, &rt);
    eol = memchr(ctl->win, '\n', len);
    line_len = (size_t)(eol - ctl->win);
    if (line_len > 0 && ctl->win[line_len - 1] == '\r')
        line_len--;
    *eol = '\0'; /* the first line alone, as a string; the bytes after it stay */
    if (strncmp(ctl->win, "error:", 6) == 0) {
        snprintf(ctl->poll_why, sizeof(ctl->poll_why), "%s (%.*s)",
                 strstr(ctl->win, "unknown command") != NULL ? "crossfade has no watch command"
                                                             : "crossfade refused watch",
                 (int)XF_MIN(line_len, 120), ctl->win);
        goto poll;
    }
    if (bench_xfb_watch_hello(ctl->win, line_len, &at_ms, &bp) == -1) {
        snprintf(ctl->poll_why, sizeof(ctl->poll_why), "unexpected reply to watch: %.*s",
                 (int)XF_MIN(line_len, 120), ctl->win);
        goto poll;
    }
    skew_ms = ((int64_t)rt.tv_sec * 1000 + rt.tv_nsec / 1000000) - at_ms;
    if (skew_ms > BENCH_XFB_CTL_CLOCK_MS || skew_ms < -BENCH_XFB_CTL_CLOCK_MS) {
        snprintf(ctl->poll_why, sizeof(ctl->poll_why),
                 "the watch's clock is %.1fs off xfbench's: its times cannot be used",
                 (double)skew_ms / 1000);
        goto poll;
    }
    ctl->source = BENCH_XFB_WSRC_WATCH;
    ctl->initial_bp = ctl->weight_bp = ctl->hist_bp = (int)bp;
    /* Events may have followed the first line at once: kept for the loop. */
    ctl->win_len = len - (size_t)(eol - ctl->win) - 1;
    memmove(ctl->win, eol + 1, ctl->win_len);
    return;
poll:
    if (ctl->wfd != -1)
        close(ctl->wfd);
    ctl->wfd = -1;
    ctl->win_len = 0;
    ctl->source = BENCH_XFB_WSRC_POLL;
    XF_LOG(XF_LOG_WARN, "xfbench",
           "admin socket: %s; the weight is read with show weight once a second instead, each "
           "change known within about a second",
           ctl->poll_why);
}

struct bench_xfb_ctl *
bench_xfb_ctl_new(const struct bench_xfb_opts *o, struct xf_err *err)
{
    struct bench_xfb_ctl *ctl = calloc(1, sizeof(*ctl));
    struct sockaddr_un sun;
    char reply[1024];
    size_t len;
    unsigned bp;

    if (ctl == NULL) {
        xf_err_set(err, "out of memory");
        return NULL;
    }
    ctl->o = o;
    ctl->fd = ctl->wfd = -1;
    ctl->initial_bp = ctl->weight_bp = ctl->hist_bp = -1;
    ctl->events = calloc(BENCH_XFB_EVENTS_MAX, sizeof(*ctl->events));
    ctl->changes = calloc(BENCH_XFB_EVENTS_MAX, sizeof(*ctl->changes));
    if (ctl->events == NULL || ctl->changes == NULL) {
        xf_err_set(err, "out of memory");
        goto fail;
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(o->admin_socket) >= sizeof(sun.sun_path)) {
        xf_err_set(err, "admin socket %s: path too long (at most %zu bytes)", o->admin_socket,
                   sizeof(sun.sun_path) - 1);
        goto fail;
    }
    memcpy(sun.sun_path, o->admin_socket, strlen(o->admin_socket) + 1);
    ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ctl->fd == -1 || connect(ctl->fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
        xf_err_set(err, "admin socket %s: %s", o->admin_socket, strerror(errno));
        goto fail;
    }
    if (send(ctl->fd, "show weight\n", 12, MSG_NOSIGNAL) != 12) {
        xf_err_set(err, "admin socket %s: %s", o->admin_socket, strerror(errno));
        goto fail;
    }
    if (bench_xfb_ctl_read_sync(ctl, ctl->fd, "show weight", "\n\n", reply, sizeof(reply), &len,
                                err) == -1)
        goto fail;
    strstr(reply, "\n\n")[1] = '\0';
    if (bench_xfb_reply_weight(reply, &bp) == -1) {
        reply[strcspn(reply, "\n")] = '\0';
        xf_err_set(err, "admin socket %s: unexpected reply to \"show weight\": %s", o->admin_socket,
                   reply);
        goto fail;
    }
    ctl->initial_bp = ctl->weight_bp = ctl->hist_bp = (int)bp;
    bench_xfb_ctl_watch_open(ctl, &sun);
    return ctl;
fail:
    bench_xfb_ctl_free(ctl);
    return NULL;
}

int
bench_xfb_ctl_start(struct bench_xfb_ctl *ctl, struct event_base *base, uint64_t start_ns)
{
    struct timeval second = {.tv_sec = 1, .tv_usec = 0};

    ctl->base = base;
    ctl->start_ns = start_ns;
    ctl->epoch_us = bench_xfb_ctl_epoch_us(start_ns);
    ctl->pid = (long)getpid();
    ctl->rev = event_new(base, ctl->fd, EV_READ | EV_PERSIST, bench_xfb_ctl_read_cb, ctl);
    ctl->wev = event_new(base, ctl->fd, EV_WRITE, bench_xfb_ctl_write_cb, ctl);
    ctl->step_timer = evtimer_new(base, bench_xfb_ctl_step_cb, ctl);
    ctl->poll_timer = event_new(base, -1, EV_PERSIST, bench_xfb_ctl_poll_cb, ctl);
    if (ctl->rev == NULL || ctl->wev == NULL || ctl->step_timer == NULL ||
        ctl->poll_timer == NULL || event_add(ctl->rev, NULL) == -1)
        return -1;
    if (ctl->wfd != -1) {
        ctl->wrev =
            event_new(base, ctl->wfd, EV_READ | EV_PERSIST, bench_xfb_ctl_watch_read_cb, ctl);
        if (ctl->wrev == NULL || event_add(ctl->wrev, NULL) == -1)
            return -1;
        bench_xfb_ctl_watch_lines(ctl); /* what came with the first line */
    } else if (event_add(ctl->poll_timer, &second) == -1) {
        return -1;
    }
    bench_xfb_ctl_schedule(ctl);
    return 0;
}

void
bench_xfb_ctl_stop(struct bench_xfb_ctl *ctl)
{
    struct timeval tv = {.tv_sec = BENCH_XFB_CTL_END_MS / 1000,
                         .tv_usec = (BENCH_XFB_CTL_END_MS % 1000) * 1000};
    int waiting = 0;

    if (ctl->step_timer != NULL)
        evtimer_del(ctl->step_timer);
    if (ctl->poll_timer != NULL)
        event_del(ctl->poll_timer);
    /* What the watch told before the end of the run, and not read yet; a watch closing now
     * loses nothing the run needed. */
    ctl->stopping = 1;
    if (ctl->wfd != -1 && ctl->wrev != NULL)
        bench_xfb_ctl_watch_read_cb(ctl->wfd, EV_READ, ctl);
    for (size_t i = 0; i < ctl->pend_n; i++)
        waiting |=
            ctl->pend[(ctl->pend_head + i) % BENCH_XFB_CTL_PENDING].kind == BENCH_XFB_PEND_EVENT;
    if (waiting && !ctl->broken && ctl->base != NULL) {
        ctl->draining = 1;
        event_base_loopexit(ctl->base, &tv);
        event_base_dispatch(ctl->base);
        ctl->draining = 0;
    }
    if (ctl->wrev != NULL)
        event_del(ctl->wrev);
    if (ctl->pend_n > 0 && !ctl->broken) {
        for (size_t i = 0; i < ctl->pend_n; i++) {
            const struct bench_xfb_pending *p =
                &ctl->pend[(ctl->pend_head + i) % BENCH_XFB_CTL_PENDING];
            if (p->kind == BENCH_XFB_PEND_EVENT) {
                ctl->events[p->event].ok = 0;
                snprintf(ctl->events[p->event].reply, sizeof(ctl->events[0].reply),
                         "no reply within %d ms of the end of the run", BENCH_XFB_CTL_END_MS);
            }
        }
        ctl->pend_n = 0;
    }
}

int
bench_xfb_ctl_weight(const struct bench_xfb_ctl *ctl)
{
    return ctl->weight_bp;
}

int
bench_xfb_ctl_initial(const struct bench_xfb_ctl *ctl)
{
    return ctl->initial_bp;
}

const struct bench_xfb_event *
bench_xfb_ctl_events(const struct bench_xfb_ctl *ctl, size_t *n, uint64_t *dropped)
{
    *n = ctl->nevents;
    *dropped = ctl->dropped;
    return ctl->events;
}

const struct bench_xfb_change *
bench_xfb_ctl_changes(const struct bench_xfb_ctl *ctl, size_t *n)
{
    *n = ctl->nchanges;
    return ctl->changes;
}

void
bench_xfb_ctl_weights(const struct bench_xfb_ctl *ctl, struct bench_xfb_result *r)
{
    r->wsrc = ctl->source;
    r->weights_lost = ctl->lost;
    r->weights_lost_us = ctl->lost_us;
    /* Both halves may be long: each keeps its start. */
    snprintf(r->weights_note, sizeof(r->weights_note), "%.120s%s%.120s", ctl->poll_why,
             ctl->poll_why[0] != '\0' && ctl->lost ? "; " : "", ctl->lost ? ctl->lost_why : "");
}

void
bench_xfb_ctl_free(struct bench_xfb_ctl *ctl)
{
    if (ctl == NULL)
        return;
    if (ctl->rev != NULL)
        event_free(ctl->rev);
    if (ctl->wev != NULL)
        event_free(ctl->wev);
    if (ctl->step_timer != NULL)
        event_free(ctl->step_timer);
    if (ctl->poll_timer != NULL)
        event_free(ctl->poll_timer);
    if (ctl->wrev != NULL)
        event_free(ctl->wrev);
    if (ctl->fd != -1)
        close(ctl->fd);
    if (ctl->wfd != -1)
        close(ctl->wfd);
    free(ctl->events);
    free(ctl->changes);
    free(ctl);
}
