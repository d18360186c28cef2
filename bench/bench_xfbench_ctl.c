/* bench/bench_xfbench_ctl.c -- xfbench's admin client: the rollout script, ramps, the weight poll.
 */
#include "bench/bench_xfbench.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#define BENCH_XFB_CTL_IN      16384 /* unanswered reply bytes held; a longer reply is an error */
#define BENCH_XFB_CTL_OUT     16384
#define BENCH_XFB_CTL_PENDING 64
#define BENCH_XFB_CTL_WAIT_MS 3000 /* connect and first reply, before the run */
#define BENCH_XFB_CTL_END_MS  2000 /* replies still due when the run ends */

enum bench_xfb_pend {
    BENCH_XFB_PEND_POLL = 0, /* show weight, once a second */
    BENCH_XFB_PEND_EVENT,    /* a command of the script: its event is waiting */
};

struct bench_xfb_pending {
    enum bench_xfb_pend kind;
    size_t event; /* PEND_EVENT: index in events */
};

struct bench_xfb_ctl {
    const struct bench_xfb_opts *o; /* borrowed */
    int fd;                         /* owned */
    struct event_base *base;        /* borrowed */
    struct event *rev, *wev;        /* owned */
    struct event *step_timer;       /* owned: the next script step or ramp change */
    struct event *poll_timer;       /* owned: show weight, every second */
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
    int weight_bp;
    int broken; /* the connection is gone: commands are recorded as not sent */
    int draining;
    char broken_why[128];
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

/* The weight changed at `at_us` (a reply said so): remember it for --check and the charts. */
static void
bench_xfb_ctl_weight_now(struct bench_xfb_ctl *ctl, unsigned bp, uint64_t at_us)
{
    if (ctl->weight_bp == (int)bp)
        return;
    ctl->weight_bp = (int)bp;
    if (ctl->nchanges < BENCH_XFB_EVENTS_MAX) {
        ctl->changes[ctl->nchanges].at_us = at_us;
        ctl->changes[ctl->nchanges].weight_bp = bp;
        ctl->nchanges++;
    }
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
    ctl->pend_n++;
    bench_xfb_ctl_write(ctl);
    return 0;
}

/* A whole reply (lines, each ending in LF, the empty line removed) for the oldest command. */
static void
bench_xfb_ctl_reply(struct bench_xfb_ctl *ctl, const char *reply)
{
    struct bench_xfb_pending p;
    uint64_t now = bench_xfb_ctl_now_us(ctl);
    unsigned bp;

    if (ctl->pend_n == 0)
        return; /* nothing asked: ignore */
    p = ctl->pend[ctl->pend_head];
    ctl->pend_head = (ctl->pend_head + 1) % BENCH_XFB_CTL_PENDING;
    ctl->pend_n--;
    if (p.kind == BENCH_XFB_PEND_POLL) {
        if (bench_xfb_reply_weight(reply, &bp) == 0 && (int)bp != ctl->weight_bp) {
            struct bench_xfb_event *e = bench_xfb_ctl_event(ctl, 0, "show weight");
            if (e != NULL) {
                bench_xfb_ctl_reply_text(reply, e->reply, sizeof(e->reply));
                e->reply_us = now;
                e->weight_bp = (int)bp;
                e->minor = 1; /* the weight line shows it; crossfade's own ramp makes many */
            }
            bench_xfb_ctl_weight_now(ctl, bp, now);
        }
    } else {
        struct bench_xfb_event *e = &ctl->events[p.event];
        e->reply_us = now;
        bench_xfb_ctl_reply_text(reply, e->reply, sizeof(e->reply));
        e->ok = strncmp(reply, "error:", 6) != 0;
        if (e->ok && bench_xfb_reply_weight(reply, &bp) == 0) {
            e->weight_bp = (int)bp;
            bench_xfb_ctl_weight_now(ctl, bp, now);
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
            char line[32], w[8];
            snprintf(line, sizeof(line), "set weight %s",
                     bench_xfb_weight_text(ctl->ramp[ctl->ramp_next].weight_bp, w));
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

/* Reads one reply with a deadline, before the loop runs; returns 0 or -1 with err. */
static int
bench_xfb_ctl_read_sync(struct bench_xfb_ctl *ctl, char *reply, size_t size, struct xf_err *err)
{
    uint64_t deadline = xf_now_ms() + BENCH_XFB_CTL_WAIT_MS;
    size_t len = 0;

    for (;;) {
        struct pollfd pfd = {.fd = ctl->fd, .events = POLLIN};
        uint64_t now = xf_now_ms();
        ssize_t n;
        char *end;

        if (now >= deadline) {
            xf_err_set(err, "admin socket %s: no reply to \"show weight\" within %d ms",
                       ctl->o->admin_socket, BENCH_XFB_CTL_WAIT_MS);
            return -1;
        }
        if (poll(&pfd, 1, (int)(deadline - now)) <= 0)
            continue;
        n = recv(ctl->fd, reply + len, size - 1 - len, 0);
        if (n <= 0) {
            if (n == -1 && (errno == EINTR || errno == EAGAIN))
                continue;
            xf_err_set(err, "admin socket %s: closed before replying", ctl->o->admin_socket);
            return -1;
        }
        len += (size_t)n;
        reply[len] = '\0';
        if ((end = strstr(reply, "\n\n")) != NULL) {
            end[1] = '\0';
            return 0;
        }
        if (len + 1 >= size) {
            xf_err_set(err, "admin socket %s: reply too long", ctl->o->admin_socket);
            return -1;
        }
    }
}

struct bench_xfb_ctl *
bench_xfb_ctl_new(const struct bench_xfb_opts *o, struct xf_err *err)
{
    struct bench_xfb_ctl *ctl = calloc(1, sizeof(*ctl));
    struct sockaddr_un sun;
    char reply[1024];
    unsigned bp;

    if (ctl == NULL) {
        xf_err_set(err, "out of memory");
        return NULL;
    }
    ctl->o = o;
    ctl->fd = -1;
    ctl->initial_bp = ctl->weight_bp = -1;
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
    if (bench_xfb_ctl_read_sync(ctl, reply, sizeof(reply), err) == -1)
        goto fail;
    if (bench_xfb_reply_weight(reply, &bp) == -1) {
        reply[strcspn(reply, "\n")] = '\0';
        xf_err_set(err, "admin socket %s: unexpected reply to \"show weight\": %s", o->admin_socket,
                   reply);
        goto fail;
    }
    ctl->initial_bp = ctl->weight_bp = (int)bp;
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
    ctl->rev = event_new(base, ctl->fd, EV_READ | EV_PERSIST, bench_xfb_ctl_read_cb, ctl);
    ctl->wev = event_new(base, ctl->fd, EV_WRITE, bench_xfb_ctl_write_cb, ctl);
    ctl->step_timer = evtimer_new(base, bench_xfb_ctl_step_cb, ctl);
    ctl->poll_timer = event_new(base, -1, EV_PERSIST, bench_xfb_ctl_poll_cb, ctl);
    if (ctl->rev == NULL || ctl->wev == NULL || ctl->step_timer == NULL ||
        ctl->poll_timer == NULL || event_add(ctl->rev, NULL) == -1 ||
        event_add(ctl->poll_timer, &second) == -1)
        return -1;
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
    for (size_t i = 0; i < ctl->pend_n; i++)
        waiting |=
            ctl->pend[(ctl->pend_head + i) % BENCH_XFB_CTL_PENDING].kind == BENCH_XFB_PEND_EVENT;
    if (waiting && !ctl->broken && ctl->base != NULL) {
        ctl->draining = 1;
        event_base_loopexit(ctl->base, &tv);
        event_base_dispatch(ctl->base);
        ctl->draining = 0;
    }
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
    if (ctl->fd != -1)
        close(ctl->fd);
    free(ctl->events);
    free(ctl->changes);
    free(ctl);
}
