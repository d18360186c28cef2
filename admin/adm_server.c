/* admin/adm_server.c -- the admin socket: the Unix listener and one bufferevent per admin client.
 */
#include "admin/adm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/listener.h>

#define ADM_BACKLOG       16
#define ADM_RELISTEN_MS   1000 /* after accept failed for lack of descriptors */
#define ADM_REFUSE_LOG_MS 10000

struct adm_client {
    struct adm_server *srv;  /* borrowed */
    struct bufferevent *bev; /* owned; closes the socket */
    struct adm_framer framer;
    struct adm_peer peer;
    bool stalled;     /* reading stopped until the output drains below ADM_OUT_LOW */
    bool eof;         /* the peer sent its last byte: answer what is left, then close */
    bool closing;     /* no more commands: close once the output is sent */
    bool watching;    /* `watch`: events are streamed to it; what it sends is dropped */
    uint64_t last_ms; /* when it last sent a command, or connected (monotonic) */
    /* A reply held until the state file's writer has the change on disk (wait_gen written):
     * no further command of this client runs meanwhile, so replies stay in order. */
    struct evbuffer *held;     /* owned; NULL when no reply is held */
    uint64_t wait_gen;         /* UINT64_MAX while its command is still pending (job) */
    uint64_t wait_version;     /* ... and the router version every worker must have taken */
    uint64_t wait_fleet;       /* ... and the fleet change etcd must have answered (0: none) */
    void *job;                 /* borrowed: the pending command's job (st->job_done names it) */
    struct adm_stream *stream; /* owned: the rest of a long reply, written as the client reads */
    TAILQ_ENTRY(adm_client) link;
};

struct adm_server {
    struct event_base *base; /* borrowed */
    struct adm_state state;
    bool state_ready;
    char *path; /* owned: the socket file */
    bool bound; /* the socket file at path is ours (dev, ino) */
    dev_t dev;
    ino_t ino;
    struct evconnlistener *listener;  /* owned; owns the listening socket */
    struct adm_http *http;            /* owned: admin.http; NULL when off */
    struct event *ev_relisten;        /* owned */
    TAILQ_HEAD(, adm_client) clients; /* owned */
    unsigned n_clients;
    unsigned n_watching;
    unsigned next_id;
    uint64_t refused, refuse_logged_ms; /* clients refused at ADM_MAX_CLIENTS, for the log */
    struct evbuffer *scratch;           /* owned: a command's reply before it goes out or is held */
    struct event *ev_saved;             /* owned: the state file's writer finished a write */
    int spare_fd;              /* owned: /dev/null, given up to accept an admin client at EMFILE */
    bool relisten_logged;      /* an accept failure was logged and descriptors did not come back */
    struct event *ev_handover; /* owned: the deadline of a takeover's `takeover done` */
    char *final_path;          /* owned: admin.socket while bound aside for a takeover; NULL */
};

static const struct timeval adm_write_tv = {ADM_WRITE_TIMEOUT_MS / 1000,
                                            (ADM_WRITE_TIMEOUT_MS % 1000) * 1000};
static const struct timeval adm_idle_tv = {ADM_IDLE_TIMEOUT_MS / 1000,
                                           (ADM_IDLE_TIMEOUT_MS % 1000) * 1000};

enum adm_client_rc {
    ADM_CLIENT_ALIVE = 0,
    ADM_CLIENT_GONE, /* freed: touch nothing */
};

/* ------------------------------------------------------------------ clients */

static void
adm_client_free(struct adm_client *c, const char *why)
{
    struct adm_server *s = c->srv;

    XF_LOG(XF_LOG_DEBUG, "admin", "event=client_closed id=%u uid=%ld reason=%s", c->peer.id,
           c->peer.uid, why);
    TAILQ_REMOVE(&s->clients, c, link);
    s->n_clients--;
    if (s->state.handover && !s->state.handed && c->peer.id == s->state.handover_client) {
        /* The new process gave up (or failed, or its deadline passed): this one goes on. */
        if (s->ev_handover != NULL)
            event_del(s->ev_handover);
        adm_takeover_abandon(&s->state, why);
    }
    if (c->watching)
        s->n_watching--;
    if (c->held != NULL)
        evbuffer_free(c->held);
    if (c->stream != NULL)
        c->stream->free(c->stream);
    bufferevent_free(c->bev);
    free(c);
}

/* Drops a client that misbehaves (logged at warn: someone may want to know). */
static void
adm_client_drop(struct adm_client *c, const char *why)
{
    XF_LOG(XF_LOG_WARN, "admin", "event=client_dropped id=%u uid=%ld pid=%ld reason=%s", c->peer.id,
           c->peer.uid, c->peer.pid, why);
    adm_client_free(c, why);
}

/* Tells a client why it is being closed (one error reply, sent without waiting), logs it, and
 * frees it. */
static void adm_client_goodbye(struct adm_client *c, const char *why, const char *fmt, ...)
    XF_PRINTF(3, 4);

static void
adm_client_goodbye(struct adm_client *c, const char *why, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof(msg) - 2, fmt, ap);
    va_end(ap);
    if (n > 0) {
        n = XF_MIN(n, (int)sizeof(msg) - 3);
        msg[n++] = '\n';
        msg[n++] = '\n';
        (void)!send(bufferevent_getfd(c->bev), msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    XF_LOG(XF_LOG_INFO, "admin", "event=client_closed id=%u uid=%ld pid=%ld reason=%s", c->peer.id,
           c->peer.uid, c->peer.pid, why);
    adm_client_free(c, why);
}

/* Stops reading and running commands until the output drained (see adm_client_on_write). */
static void
adm_client_stall(struct adm_client *c)
{
    c->stalled = true;
    bufferevent_disable(c->bev, EV_READ);
}

/* Whether a reply must wait for the state file text `gen` (0: none) to be written, or for every
 * worker to route by router version `version` (0: none, the command published nothing); *st
 * gets the writer's status (error_wall_ms 0 when there is nothing to say). */
static bool
adm_server_must_wait(struct adm_server *s, uint64_t gen, uint64_t version,
                     struct adm_saver_status *st)
{
    bool disk = false;

    memset(st, 0, sizeof(*st));
    if (gen != 0 && s->state.saver != NULL) {
        adm_saver_status(s->state.saver, st);
        disk = st->written < gen;
    }
    return disk || (version != 0 && s->state.applied != NULL &&
                    s->state.applied(s->state.applied_arg) < version);
}

/* The router version a command's reply waits for: the current one when the command published
 * (the version moved from `before`), else 0. */
static uint64_t
adm_server_published_version(const struct adm_server *s, uint64_t before)
{
    uint64_t now = bal_router_version(s->state.router);

    return now != before ? now : 0;
}

/* Whether client c's held reply may go: its change is on disk and every worker routes by it. */
static bool
adm_client_may_go(const struct adm_server *s, const struct adm_client *c,
                  const struct adm_saver_status *st)
{
    const char *error;

    if (c->held == NULL || c->job != NULL)
        return false;
    if (s->state.saver != NULL && st->written < c->wait_gen && c->wait_gen != 0)
        return false;
    if (!adm_fleet_done(&s->state, c->wait_fleet, &error))
        return false;
    return c->wait_version == 0 || s->state.applied == NULL ||
           s->state.applied(s->state.applied_arg) >= c->wait_version;
}

static enum adm_client_rc adm_client_process(struct adm_client *c);
static void adm_server_release_ready(struct adm_server *s);

/* A takeover's new process did not say `takeover done` in time: it is dropped, which gives the
 * state back to this process (adm_client_free). */
static void
adm_server_on_handover_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct adm_server *s = arg;
    struct adm_client *c;

    XF_UNUSED(fd);
    XF_UNUSED(what);
    TAILQ_FOREACH(c, &s->clients, link)
    {
        if (c->peer.id == s->state.handover_client) {
            adm_client_drop(c, "takeover_deadline");
            return;
        }
    }
}

static int
adm_server_handover_arm(struct adm_server *s)
{
    static const struct timeval tv = {ADM_TAKEOVER_DEADLINE_MS / 1000, 0};

    if (s->ev_handover == NULL)
        s->ev_handover = evtimer_new(s->base, adm_server_on_handover_deadline, s);
    return s->ev_handover != NULL ? evtimer_add(s->ev_handover, &tv) : -1;
}
static void adm_server_note_unsaved(struct evbuffer *held, const char *error);

/* A reply that need not wait: the write that holds its change is over already, and it may have
 * failed (a missing directory fails at once, before the reply could be held): say so. */
static void
adm_server_note_if_unsaved(struct evbuffer *reply, const struct adm_saver_status *st)
{
    if (st->error_wall_ms != 0)
        adm_server_note_unsaved(reply, st->error);
}

/* Adds a note line before the closing empty line of a held reply: the change it answers is in
 * force, but the state file could not be written, so a restart would lose it. */
static void
adm_server_note_unsaved(struct evbuffer *held, const char *error)
{
    size_t len = evbuffer_get_length(held);
    char *text = malloc(len + 1);

    if (text == NULL || len < 2) {
        free(text);
        return;
    }
    evbuffer_remove(held, text, len);
    evbuffer_add(held, text, len - 1); /* without the closing empty line */
    evbuffer_add_printf(held,
                        "note: in force, but not written to the state file (%s): a restart "
                        "would lose it\n\n",
                        error);
    free(text);
}

/* A fleet change etcd refused was undone: its reply becomes the error that says why. True when
 * it did. */
static bool
adm_server_fleet_refused(const struct adm_state *st, uint64_t gen, struct evbuffer *reply)
{
    const char *error = NULL;

    if (gen == 0 || !adm_fleet_done(st, gen, &error) || error == NULL)
        return false;
    evbuffer_drain(reply, evbuffer_get_length(reply));
    adm_write_error(reply, "%s", error);
    return true;
}

/* Sends a held reply and goes on with the client's next commands. */
static void
adm_client_release(struct adm_client *c, const struct adm_saver_status *st)
{
    if (!adm_server_fleet_refused(&c->srv->state, c->wait_fleet, c->held) && st != NULL &&
        st->error_wall_ms != 0)
        adm_server_note_unsaved(c->held, st->error);
    c->wait_fleet = 0;
    evbuffer_add_buffer(bufferevent_get_output(c->bev), c->held);
    evbuffer_free(c->held);
    c->held = NULL;
    adm_client_process(c);
}

/* st->job_done: a pending command finished; its client (if it is still there) gets the reply,
 * once the change it made is on disk. */
static void
adm_server_job_done(void *arg, void *job, struct evbuffer *reply)
{
    struct adm_server *s = arg;
    struct adm_saver_status st;
    struct adm_client *c;

    TAILQ_FOREACH(c, &s->clients, link)
    {
        if (c->job == job)
            break;
    }
    if (c == NULL) {
        evbuffer_drain(reply, evbuffer_get_length(reply)); /* its client went away */
        return;
    }
    c->job = NULL;
    evbuffer_add_buffer(c->held, reply);
    /* wait_version held the router version when the command began. */
    c->wait_version = adm_server_published_version(s, c->wait_version);
    if (adm_server_must_wait(s, s->state.exec_gen, c->wait_version, &st) ||
        !adm_fleet_done(&s->state, c->wait_fleet, &(const char *){NULL})) {
        c->wait_gen = s->state.exec_gen;
        return;
    }
    adm_client_release(c, &st);
}

/*
 * The writer finished a write: each held reply whose change is on disk goes out (with a note
 * when the write failed: the change is in force but would not survive a restart), and its
 * client goes on with its next commands.
 */
static void
adm_server_on_saved(evutil_socket_t fd, short what, void *arg)
{
    struct adm_server *s = arg;
    uint64_t count;

    XF_UNUSED(what);
    (void)!read(fd, &count, sizeof(count));
    adm_server_release_ready(s);
}

/* Each held reply whose change is on disk and taken by every worker goes out. */
static void
adm_server_release_ready(struct adm_server *s)
{
    struct adm_saver_status st;
    struct adm_client *c;
    bool again = true;

    memset(&st, 0, sizeof(st));
    if (s->state.saver != NULL)
        adm_saver_status(s->state.saver, &st);
    /* A released client runs its next commands, which may free other clients (a watcher that
     * does not read): the walk starts again after each release rather than keep a pointer. */
    while (again) {
        again = false;
        TAILQ_FOREACH(c, &s->clients, link)
        {
            if (adm_client_may_go(s, c, &st)) {
                adm_client_release(c, &st);
                again = true;
                break;
            }
        }
    }
}

void
adm_server_applied(struct adm_server *s)
{
    adm_server_release_ready(s);
}

/* st->released: etcd answered a fleet change; the replies waiting for it may go. */
static void
adm_server_on_released(void *arg)
{
    adm_server_release_ready(arg);
}

/*
 * Runs the complete lines waiting in the client's input: at most ADM_LINES_PER_WAKE per call
 * (the rest is picked up by a deferred read callback, after other events had their turn), and
 * none while ADM_OUT_HIGH bytes of replies wait. Frees the client when it is done with it.
 */
static enum adm_client_rc
adm_client_process(struct adm_client *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    unsigned handled = 0;

    if (c->held != NULL || c->stream != NULL)
        return ADM_CLIENT_ALIVE; /* its reply waits for the disk, a lookup, or to be read */
    if (c->watching) {
        /* A watcher only listens: what it sends is dropped, its end of input closes it. */
        evbuffer_drain(in, evbuffer_get_length(in));
        if (c->eof) {
            adm_client_free(c, "eof");
            return ADM_CLIENT_GONE;
        }
        return ADM_CLIENT_ALIVE;
    }
    while (!c->closing) {
        size_t avail = evbuffer_get_length(in), take, line_len, consumed;
        enum adm_frame f;
        const char *data;

        if (evbuffer_get_length(out) >= ADM_OUT_HIGH) {
            adm_client_stall(c);
            return ADM_CLIENT_ALIVE;
        }
        if (avail == 0)
            break;
        if (handled == ADM_LINES_PER_WAKE) {
            bufferevent_trigger(c->bev, EV_READ,
                                BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
            return ADM_CLIENT_ALIVE;
        }
        take = XF_MIN(avail, (size_t)ADM_FRAME_WINDOW);
        data = (const char *)evbuffer_pullup(in, (ev_ssize_t)take);
        if (data == NULL) {
            adm_client_drop(c, "out_of_memory");
            return ADM_CLIENT_GONE;
        }
        f = adm_frame_next(&c->framer, data, take, c->eof && take == avail, &line_len, &consumed);
        if (f == ADM_FRAME_LINE) {
            struct adm_state *st = &c->srv->state;
            struct adm_saver_status saved;

            c->last_ms = xf_now_ms();
            struct evbuffer *reply = c->srv->scratch;
            uint64_t before = bal_router_version(st->router);
            enum adm_result res = adm_exec(st, &c->peer, data, line_len, reply);
            uint64_t version = adm_server_published_version(c->srv, before);

            if (res == ADM_CLOSE)
                c->closing = true;
            if (res == ADM_MORE) {
                /* A long reply: its first part goes now, the rest as the client reads. */
                evbuffer_add_buffer(out, reply);
                c->stream = st->stream;
                st->stream = NULL;
                evbuffer_drain(in, consumed);
                return ADM_CLIENT_ALIVE;
            }
            if (res == ADM_TAKEOVER) {
                struct xf_err err = {{0}};

                evbuffer_drain(in, consumed);
                /* The sockets go on the connection itself, before anything else it is sent. */
                if (evbuffer_get_length(out) > 0) {
                    adm_write_error(out, "takeover must be the first command of its connection");
                    continue;
                }
                if (adm_takeover_send(st, &c->peer, bufferevent_getfd(c->bev), out, &err) == -1) {
                    XF_LOG(XF_LOG_ERR, "admin", "event=takeover_failed pid=%ld error=\"%s\"",
                           c->peer.pid, err.msg);
                    adm_client_drop(c, "takeover_failed");
                    return ADM_CLIENT_GONE;
                }
                if (adm_server_handover_arm(c->srv) == -1) {
                    adm_client_drop(c, "out_of_memory");
                    return ADM_CLIENT_GONE;
                }
                continue;
            }
            if (res == ADM_PENDING) {
                /* No reply yet (a host name being resolved): nothing more runs for this client
                 * until it comes (adm_server_job_done). */
                c->held = evbuffer_new();
                if (c->held == NULL) {
                    adm_client_drop(c, "out_of_memory");
                    return ADM_CLIENT_GONE;
                }
                c->job = st->pending;
                st->pending = NULL;
                c->wait_gen = UINT64_MAX;
                c->wait_fleet = st->fleet_gen;
                c->wait_version = before; /* what it publishes is known when it ends */
                evbuffer_drain(in, consumed);
                return ADM_CLIENT_ALIVE;
            }
            if (adm_server_must_wait(c->srv, st->exec_gen, version, &saved) ||
                !adm_fleet_done(st, st->fleet_gen, &(const char *){NULL})) {
                /* An "ok:" must survive a crash, and be in force on every worker (and, in fleet
                 * mode, in etcd): the reply goes once the change is on disk, each worker routes
                 * by it and etcd took it. */
                c->held = evbuffer_new();
                if (c->held == NULL || evbuffer_add_buffer(c->held, reply) == -1) {
                    adm_client_drop(c, "out_of_memory");
                    return ADM_CLIENT_GONE;
                }
                c->wait_gen = st->exec_gen;
                c->wait_version = version;
                c->wait_fleet = st->fleet_gen;
                evbuffer_drain(in, consumed);
                return ADM_CLIENT_ALIVE;
            }
            adm_server_note_if_unsaved(reply, &saved);
            adm_server_fleet_refused(st, st->fleet_gen, reply);
            evbuffer_add_buffer(out, reply);
            if (res == ADM_WATCH) {
                c->watching = true;
                c->srv->n_watching++;
                /* A watcher only listens: no idle timeout for it. */
                bufferevent_set_timeouts(c->bev, NULL, &adm_write_tv);
                evbuffer_drain(in, consumed);
                return adm_client_process(c); /* drops the rest: it only listens now */
            }
        } else if (f == ADM_FRAME_TOO_LONG) {
            adm_write_error(out, "line too long (over %d bytes); the rest of it is skipped",
                            ADM_LINE_MAX);
        }
        evbuffer_drain(in, consumed);
        if (f != ADM_FRAME_MORE)
            handled++;
        else if (consumed == 0)
            break;
        if (evbuffer_get_length(out) > ADM_OUT_MAX) {
            adm_client_drop(c, "output_over_limit");
            return ADM_CLIENT_GONE;
        }
    }
    if (c->eof || c->closing) {
        c->closing = true;
        bufferevent_disable(c->bev, EV_READ);
        if (evbuffer_get_length(out) == 0) {
            adm_client_free(c, c->eof ? "eof" : "quit");
            return ADM_CLIENT_GONE;
        }
    }
    return ADM_CLIENT_ALIVE;
}

static void
adm_client_on_read(struct bufferevent *bev, void *arg)
{
    struct adm_client *c = arg;

    XF_UNUSED(bev);
    if (c->stalled || c->closing)
        return; /* a deferred trigger that came after the stall: the write callback resumes */
    adm_client_process(c);
}

/* The output went down to ADM_OUT_LOW (or was sent): resume a stalled client, or finish one. */
static void
adm_client_on_write(struct bufferevent *bev, void *arg)
{
    struct adm_client *c = arg;

    if (c->closing) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            adm_client_free(c, c->eof ? "eof" : "quit");
        return;
    }
    if (c->stream != NULL) {
        /* A long reply: its next part, now that the last one was read. */
        struct adm_reply r = {c->srv->scratch, false};
        enum adm_result res = c->stream->next(&c->srv->state, c->stream, &r);

        evbuffer_add_buffer(bufferevent_get_output(bev), c->srv->scratch);
        if (res == ADM_MORE)
            return;
        evbuffer_add(bufferevent_get_output(bev), "\n", 1); /* the reply's end */
        c->stream->free(c->stream);
        c->stream = NULL;
        adm_client_process(c); /* the commands that came meanwhile */
        return;
    }
    if (!c->stalled)
        return;
    c->stalled = false;
    if (!c->eof)
        bufferevent_enable(bev, EV_READ);
    adm_client_process(c);
}

static void
adm_client_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct adm_client *c = arg;

    XF_UNUSED(bev);
    if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING)) {
        /* Sent nothing for ADM_IDLE_TIMEOUT_MS: its slot goes back to the pool. */
        adm_client_goodbye(c, "idle", "error: idle for %ds; closing this admin connection",
                           ADM_IDLE_TIMEOUT_MS / 1000);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        adm_client_drop(c, "not_reading_its_replies");
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        adm_client_free(c, "error");
        return;
    }
    if (what & BEV_EVENT_EOF) {
        /* A half-close (socat, nc -N): the commands sent before it are still answered. */
        c->eof = true;
        if (c->stalled)
            return; /* the write callback picks up the rest */
        adm_client_process(c);
    }
}

/* ------------------------------------------------------------------ watchers */

/* Sends one line to every watcher; one that lets ADM_OUT_MAX bytes pile up is dropped. */
static void
adm_server_broadcast(struct adm_server *s, const struct adm_event *e)
{
    struct adm_client *c, *next;
    char line[ADM_EVENT_LINE];
    size_t len;

    if (s->n_watching == 0)
        return;
    adm_event_line(e, true, line, sizeof(line) - 1);
    len = strlen(line);
    line[len++] = '\n';
    for (c = TAILQ_FIRST(&s->clients); c != NULL; c = next) {
        struct evbuffer *out = bufferevent_get_output(c->bev);

        next = TAILQ_NEXT(c, link);
        if (!c->watching)
            continue;
        if (evbuffer_get_length(out) + len > ADM_OUT_MAX) {
            adm_client_drop(c, "not_reading_its_watch");
            continue;
        }
        evbuffer_add(out, line, len);
    }
}

/* adm_event_fn of the audit trail: every recorded change goes to the watchers too. */
static void
adm_server_on_event(void *arg, const struct adm_event *e)
{
    adm_server_broadcast(arg, e);
}

void
adm_server_node_event(void *arg, const char *what, const char *from, const char *to)
{
    struct adm_server *s = arg;
    struct adm_event e;

    if (s == NULL || s->n_watching == 0)
        return;
    memset(&e, 0, sizeof(e));
    e.time_ms = xf_wall_ms();
    e.uid = e.pid = -1;
    snprintf(e.command, sizeof(e.command), "health");
    snprintf(e.what, sizeof(e.what), "%s", what);
    snprintf(e.old_value, sizeof(e.old_value), "%s", from);
    snprintf(e.new_value, sizeof(e.new_value), "%s", to);
    adm_server_broadcast(s, &e);
}

/* Sends a one-line refusal to a connection that is not taken on, and closes it. */
static void
adm_server_refuse(struct adm_server *s, evutil_socket_t fd)
{
    char msg[128];
    int n =
        snprintf(msg, sizeof(msg), "error: too many admin connections (%d); try again later\n\n",
                 ADM_MAX_CLIENTS);
    uint64_t now = xf_now_ms();

    (void)!send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    evutil_closesocket(fd);
    s->refused++;
    if (now - s->refuse_logged_ms >= ADM_REFUSE_LOG_MS || s->refuse_logged_ms == 0) {
        XF_LOG(XF_LOG_WARN, "admin",
               "event=client_refused reason=too_many_clients max=%d "
               "refused_total=%llu",
               ADM_MAX_CLIENTS, (unsigned long long)s->refused);
        s->refuse_logged_ms = now;
    }
}

/*
 * Every slot is taken: the client idle the longest (a watcher counts from when it subscribed)
 * leaves its slot to the new one, if it has been idle ADM_EVICT_IDLE_MS at least, so that idle
 * connections never keep an operator from rolling back. Returns whether a slot was freed.
 */
static bool
adm_server_evict(struct adm_server *s)
{
    struct adm_client *c, *oldest = NULL;
    uint64_t now = xf_now_ms();

    TAILQ_FOREACH(c, &s->clients, link)
    {
        if (c->held != NULL || c->stream != NULL ||
            evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
            continue; /* a reply on its way: not idle */
        if (oldest == NULL || c->last_ms < oldest->last_ms)
            oldest = c;
    }
    if (oldest == NULL || now - oldest->last_ms < ADM_EVICT_IDLE_MS)
        return false;
    adm_client_goodbye(oldest, "evicted",
                       "error: closed to make room for a new admin connection (%d open; this one "
                       "idle for %llus)",
                       ADM_MAX_CLIENTS, (unsigned long long)((now - oldest->last_ms) / 1000));
    return true;
}

static void
adm_server_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                     void *arg)
{
    struct adm_server *s = arg;
    struct adm_client *c;
    struct ucred cred;
    socklen_t cred_len = sizeof(cred);

    XF_UNUSED(l);
    XF_UNUSED(sa);
    XF_UNUSED(salen);
    if (s->n_clients >= ADM_MAX_CLIENTS && !adm_server_evict(s)) {
        adm_server_refuse(s, fd);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL || (c->bev = bufferevent_socket_new(
                          s->base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS)) == NULL) {
        XF_LOG(XF_LOG_ERR, "admin", "event=accept_failed reason=out_of_memory");
        evutil_closesocket(fd);
        free(c);
        return;
    }
    c->srv = s;
    c->last_ms = xf_now_ms();
    c->peer.id = ++s->next_id;
    c->peer.uid = -1;
    c->peer.pid = -1;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) == 0) {
        c->peer.uid = (long)cred.uid;
        c->peer.pid = (long)cred.pid;
    }
    TAILQ_INSERT_TAIL(&s->clients, c, link);
    s->n_clients++;
    bufferevent_setcb(c->bev, adm_client_on_read, adm_client_on_write, adm_client_on_event, c);
    /* Input is bounded by the read high mark; the write low mark wakes a stalled client. */
    bufferevent_setwatermark(c->bev, EV_READ, 0, ADM_IN_HIGH);
    bufferevent_setwatermark(c->bev, EV_WRITE, ADM_OUT_LOW, 0);
    bufferevent_set_timeouts(c->bev, &adm_idle_tv, &adm_write_tv);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    XF_LOG(XF_LOG_DEBUG, "admin", "event=client_connected id=%u uid=%ld pid=%ld", c->peer.id,
           c->peer.uid, c->peer.pid);
}

/*
 * accept failed with something else than "try again" (EMFILE, ENFILE, ENOMEM). Out of
 * descriptors, the spare one kept for this is given up to take the operator's connection (the
 * proxy's clients may have taken every other one: the admin socket is how the operator finds out).
 * Then the listener pauses for a second rather than spin on a socket that stays readable.
 */
static void
adm_server_on_accept_error(struct evconnlistener *l, void *arg)
{
    struct adm_server *s = arg;
    struct timeval tv = {ADM_RELISTEN_MS / 1000, (ADM_RELISTEN_MS % 1000) * 1000};
    int e = EVUTIL_SOCKET_ERROR();

    if ((e == EMFILE || e == ENFILE) && s->spare_fd != -1) {
        int fd;

        /* The descriptor freed here must not go to another thread's accept. */
        __atomic_store_n(&xf_fd_scarce, 1, __ATOMIC_SEQ_CST);
        xf_fd_lock();
        close(s->spare_fd);
        s->spare_fd = -1;
        fd = accept4(evconnlistener_get_fd(l), NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        xf_fd_unlock();
        if (fd != -1) {
            XF_LOG(XF_LOG_WARN, "admin",
                   "event=accept_with_spare error=\"%s\" note=\"out of descriptors: the spare "
                   "one serves this admin connection\"",
                   evutil_socket_error_to_string(e));
            adm_server_on_accept(l, fd, NULL, 0, s);
        }
    }
    if (!s->relisten_logged)
        XF_LOG(XF_LOG_WARN, "admin", "event=accept_failed error=\"%s\" retry_ms=%d",
               evutil_socket_error_to_string(e), ADM_RELISTEN_MS);
    s->relisten_logged = true;
    evconnlistener_disable(l);
    evtimer_add(s->ev_relisten, &tv);
}

/* Keeps one descriptor aside for an admin connection when the process runs out of them. */
static void
adm_server_spare(struct adm_server *s)
{
    if (s->spare_fd == -1)
        s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void
adm_server_on_relisten(evutil_socket_t fd, short what, void *arg)
{
    struct adm_server *s = arg;

    XF_UNUSED(fd);
    XF_UNUSED(what);
    adm_server_spare(s);
    if (s->spare_fd != -1)
        s->relisten_logged = false; /* descriptors are back: a new shortage is logged again */
    evconnlistener_enable(s->listener);
}

/* ------------------------------------------------------------------ the socket file */

/*
 * Creates the missing directories above `path`, each with mode 0700, or 0750 and given to the
 * group when admin.group is set (so that its members can reach the socket).
 */
static int
adm_socket_mkdirs(const char *path, const struct cfg *cfg, struct xf_err *err)
{
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char *slash;

    snprintf(dir, sizeof(dir), "%s", path);
    slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return 0;
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char keep = *p;

        *p = '\0';
        if (mkdir(dir, cfg->admin_group != NULL ? 0750 : 0700) == 0) {
            if (cfg->admin_group != NULL && chown(dir, (uid_t)-1, cfg->admin_gid) == -1) {
                xf_err_set(err, "admin.socket %s: cannot give the directory %s to the group %s: %s",
                           path, dir, cfg->admin_group, strerror(errno));
                return -1;
            }
        } else if (errno != EEXIST) {
            xf_err_set(err, "admin.socket %s: cannot create the directory %s: %s", path, dir,
                       strerror(errno));
            return -1;
        }
        *p = keep;
        if (keep == '\0')
            return 0;
    }
}

/* Warns when the members of admin.group cannot get through the socket's directory. */
static void
adm_socket_check_dir(const char *path, const struct cfg *cfg)
{
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char *slash;
    struct stat st;

    snprintf(dir, sizeof(dir), "%s", path);
    slash = strrchr(dir, '/');
    if (slash == NULL)
        return;
    slash[slash == dir ? 1 : 0] = '\0';
    if (stat(dir, &st) == -1 || (st.st_mode & S_IXOTH) ||
        (st.st_gid == cfg->admin_gid && (st.st_mode & S_IXGRP)))
        return;
    XF_LOG(XF_LOG_WARN, "admin",
           "event=group_cannot_reach_socket group=%s dir=%s mode=%04o note=\"the directory lets "
           "neither the group nor others through\"",
           cfg->admin_group, dir, (unsigned)(st.st_mode & 07777));
}

/*
 * Leaves `path` free for bind: nothing there, or a socket file nobody answers on (removed).
 * Anything else is an error: a file that is not a socket is never removed, and a socket that
 * answers belongs to a running process (most likely another crossfade).
 */
static int
adm_socket_clear_stale(const char *path, const struct sockaddr_un *sun, struct xf_err *err)
{
    struct stat st;
    int fd, rc, e;

    if (lstat(path, &st) == -1) {
        if (errno == ENOENT)
            return 0;
        xf_err_set(err, "admin.socket %s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        xf_err_set(err, "admin.socket %s: the file exists and is not a socket; not removing it",
                   path);
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        xf_err_set(err, "admin.socket %s: socket: %s", path, strerror(errno));
        return -1;
    }
    rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
    e = errno;
    close(fd);
    if (rc == 0 || e == EAGAIN) {
        xf_err_set(err,
                   "admin.socket %s: another process answers on this socket (is crossfade already "
                   "running?)",
                   path);
        return -1;
    }
    if (e != ECONNREFUSED) {
        xf_err_set(err, "admin.socket %s: cannot check the existing socket: %s", path, strerror(e));
        return -1;
    }
    if (unlink(path) == -1 && errno != ENOENT) {
        xf_err_set(err, "admin.socket %s: cannot remove the stale socket: %s", path,
                   strerror(errno));
        return -1;
    }
    XF_LOG(XF_LOG_INFO, "admin", "event=stale_socket_removed socket=%s", path);
    return 0;
}

/* Creates the socket file, mode 0600 (0660 and the group's with admin.group), and returns the
 * bound socket (not listening yet), or -1. */
static int
adm_socket_bind(struct adm_server *s, struct xf_err *err)
{
    const struct cfg *cfg = s->state.cfg;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct stat st;
    mode_t old_mask;
    int fd, rc;

    if (strlen(s->path) == 0 || strlen(s->path) >= sizeof(sun.sun_path)) {
        xf_err_set(err, "admin.socket %s: the path must be 1 to %zu bytes", s->path,
                   sizeof(sun.sun_path) - 1);
        return -1;
    }
    memcpy(sun.sun_path, s->path, strlen(s->path) + 1);
    if (adm_socket_mkdirs(s->path, cfg, err) == -1 ||
        adm_socket_clear_stale(s->path, &sun, err) == -1)
        return -1;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        xf_err_set(err, "admin.socket %s: socket: %s", s->path, strerror(errno));
        return -1;
    }
    /* The file is created 0600 by bind itself: no moment where others could connect. */
    old_mask = umask(0177);
    rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    umask(old_mask);
    if (rc == -1) {
        xf_err_set(err, "admin.socket %s: bind: %s", s->path, strerror(errno));
        goto fail;
    }
    s->bound = true;
    /* The group gets the socket before its mode lets the group in: never a wrong moment. */
    if (cfg->admin_group != NULL && chown(s->path, (uid_t)-1, cfg->admin_gid) == -1) {
        xf_err_set(err,
                   "admin.socket %s: cannot give it to the group %s: %s (crossfade's user must be "
                   "a member of the group)",
                   s->path, cfg->admin_group, strerror(errno));
        goto fail;
    }
    if (chmod(s->path, cfg->admin_group != NULL ? 0660 : 0600) == -1 || stat(s->path, &st) == -1) {
        xf_err_set(err, "admin.socket %s: %s", s->path, strerror(errno));
        goto fail;
    }
    if (cfg->admin_group != NULL)
        adm_socket_check_dir(s->path, cfg);
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    xf_fatal_unlink_on_exit(s->path, (unsigned long)s->dev, (unsigned long)s->ino);
    return fd;
fail:
    close(fd);
    return -1;
}

/* Removes the socket file if it is still the one this server created. */
static void
adm_socket_unlink(struct adm_server *s)
{
    struct stat st;

    if (!s->bound)
        return;
    s->bound = false;
    xf_fatal_forget();
    /* Handed over: the path is the new process's (it renames its socket onto it at any moment;
     * checking the inode first would leave a window in which its socket is the one removed). */
    if (s->state.handed)
        return;
    if (lstat(s->path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == s->ino &&
        st.st_dev == s->dev)
        unlink(s->path);
}

/* ------------------------------------------------------------------ the server */

struct adm_server *
adm_server_new(struct event_base *base, const struct cfg *cfg, struct bal_router *router,
               struct xf_err *err)
{
    return adm_server_new_takeover(base, cfg, router, NULL, err);
}

struct adm_server *
adm_server_new_takeover(struct event_base *base, const struct cfg *cfg, struct bal_router *router,
                        const struct adm_takeover *t, struct xf_err *err)
{
    struct adm_server *s = calloc(1, sizeof(*s));
    int fd;

    if (s == NULL) {
        xf_err_set(err, "admin: out of memory");
        return NULL;
    }
    s->base = base;
    s->spare_fd = -1;
    TAILQ_INIT(&s->clients);
    if (adm_state_init_from(&s->state, cfg, router, base, t != NULL ? t->state : NULL,
                            t != NULL ? t->state_len : 0, t != NULL ? t->old_pid : 0, err) == -1)
        goto fail;
    s->state_ready = true;
    s->state.events.notify = adm_server_on_event;
    s->state.events.notify_arg = s;
    s->state.job_done = adm_server_job_done;
    s->state.job_done_arg = s;
    s->state.released = adm_server_on_released;
    s->state.released_arg = s;
    if (adm_fleet_start(&s->state, base, err) == -1)
        goto fail;
    s->scratch = evbuffer_new();
    if (s->scratch == NULL) {
        xf_err_set(err, "admin: out of memory");
        goto fail;
    }
    if (cfg->admin_http != NULL &&
        (s->http = adm_http_new(base, &s->state, cfg->admin_http, err)) == NULL)
        goto fail;
    if (s->state.saver != NULL) {
        s->ev_saved = event_new(base, adm_saver_event_fd(s->state.saver), EV_READ | EV_PERSIST,
                                adm_server_on_saved, s);
        if (s->ev_saved == NULL || event_add(s->ev_saved, NULL) == -1) {
            xf_err_set(err, "admin: out of memory");
            goto fail;
        }
    }
    if (t != NULL) {
        /* Aside until adm_server_claim: the old process answers on admin.socket meanwhile. */
        s->final_path = strdup(cfg->admin_socket);
        size_t n = strlen(cfg->admin_socket) + sizeof(".takeover");

        s->path = s->final_path != NULL ? malloc(n) : NULL;
        if (s->path != NULL)
            snprintf(s->path, n, "%s.takeover", cfg->admin_socket);
    } else {
        s->path = strdup(cfg->admin_socket);
    }
    s->ev_relisten = evtimer_new(base, adm_server_on_relisten, s);
    if (s->path == NULL || s->ev_relisten == NULL) {
        xf_err_set(err, "admin: out of memory");
        goto fail;
    }
    fd = adm_socket_bind(s, err);
    if (fd == -1)
        goto fail;
    s->listener =
        evconnlistener_new(base, adm_server_on_accept, s,
                           LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, ADM_BACKLOG, fd);
    if (s->listener == NULL) {
        xf_err_set(err, "admin.socket %s: listen: %s", s->path, strerror(errno));
        close(fd);
        goto fail;
    }
    evconnlistener_set_error_cb(s->listener, adm_server_on_accept_error);
    adm_server_spare(s);
    XF_LOG(XF_LOG_INFO, "admin", "event=listening socket=%s", s->path);
    return s;
fail:
    adm_server_free(s);
    return NULL;
}

void
adm_server_set_stats(struct adm_server *s, adm_stats_fn fn, void *arg)
{
    s->state.stats = fn;
    s->state.stats_arg = arg;
}

void
adm_server_set_monitor(struct adm_server *s, const struct adm_monitor *m)
{
    s->state.monitor = *m;
}

void
adm_server_set_workers(struct adm_server *s, unsigned n)
{
    s->state.workers = n;
}

void
adm_server_set_applied(struct adm_server *s, uint64_t (*fn)(void *arg), void *arg)
{
    s->state.applied = fn;
    s->state.applied_arg = arg;
}

void
adm_server_set_node_info(struct adm_server *s, adm_node_info_fn fn, void *arg)
{
    s->state.node_info = fn;
    s->state.node_info_arg = arg;
}

void
adm_server_set_id_busy(struct adm_server *s, bal_id_busy_fn fn, void *arg)
{
    s->state.id_busy = fn;
    s->state.id_busy_arg = arg;
}

void
adm_server_set_health_info(struct adm_server *s, adm_health_info_fn fn, void *arg)
{
    s->state.health_info = fn;
    s->state.health_info_arg = arg;
}

void
adm_server_set_resolver(struct adm_server *s, struct cfg_resolver *r)
{
    s->state.resolver = r;
}

void
adm_server_set_status(struct adm_server *s, const char *(*fn)(void *arg), void *arg)
{
    s->state.status = fn;
    s->state.status_arg = arg;
}

void
adm_server_set_reload(struct adm_server *s, adm_reload_fn fn, void *arg)
{
    s->state.reload = fn;
    s->state.reload_arg = arg;
}

void
adm_server_set_tls(struct adm_server *s, adm_reload_fn reload, adm_tls_show_fn show, void *arg)
{
    s->state.tls_reload = reload;
    s->state.tls_show = show;
    s->state.tls_arg = arg;
}

void
adm_server_set_reexec(struct adm_server *s, adm_reload_fn fn, void *arg)
{
    s->state.reexec = fn;
    s->state.reexec_arg = arg;
}

long
adm_server_handover_pid(const struct adm_server *s)
{
    return s->state.handover && !s->state.handed ? s->state.handover_pid : 0;
}

void
adm_server_reload(struct adm_server *s, const struct cfg *cfg, struct bal_snapshot *next,
                  char *text, size_t size)
{
    adm_state_reload(&s->state, cfg, next, text, size);
}

void
adm_server_stopping(struct adm_server *s, void (*fn)(void *arg), void *arg)
{
    s->state.left = fn;
    s->state.left_arg = arg;
    adm_fleet_leave(&s->state);
}

bool
adm_server_leaving(const struct adm_server *s)
{
    return adm_fleet_leaving(&s->state);
}

void
adm_server_set_published(struct adm_server *s, void (*fn)(void *arg), void *arg)
{
    s->state.published = fn;
    s->state.published_arg = arg;
}

void
adm_server_free(struct adm_server *s)
{
    struct adm_client *c;

    if (s == NULL)
        return;
    while ((c = TAILQ_FIRST(&s->clients)) != NULL) {
        /* A reply the loop had no turn left to send (`reexec`'s, when the process stops right
         * after the handover) goes now, as far as the socket takes it without waiting. */
        struct evbuffer *out = bufferevent_get_output(c->bev);

        if (evbuffer_get_length(out) > 0)
            (void)evbuffer_write(out, bufferevent_getfd(c->bev));
        adm_client_free(c, "shutdown");
    }
    adm_http_free(s->http);
    /* A bufferevent freed while one of its deferred callbacks waits (clients that hung up just
     * before the loop stopped: libevent runs 32 deferred callbacks per turn, the rest next turn)
     * is released by that callback only: one more turn of the loop lets them run (with no
     * callbacks of ours left on them), so nothing is leaked at exit. */
    if (s->base != NULL)
        event_base_loop(s->base, EVLOOP_NONBLOCK);
    if (s->listener != NULL)
        evconnlistener_free(s->listener);
    if (s->ev_relisten != NULL)
        event_free(s->ev_relisten);
    if (s->ev_saved != NULL)
        event_free(s->ev_saved);
    if (s->ev_handover != NULL)
        event_free(s->ev_handover);
    if (s->scratch != NULL)
        evbuffer_free(s->scratch);
    if (s->spare_fd != -1)
        close(s->spare_fd);
    adm_socket_unlink(s);
    if (s->state_ready)
        adm_state_fini(&s->state);
    free(s->path);
    free(s->final_path);
    free(s);
}

void
adm_server_set_takeover(struct adm_server *s, adm_listen_fds_fn fn,
                        void (*handed_over)(void *arg, long new_pid), void *arg)
{
    s->state.listen_fds = fn;
    s->state.handed_over = handed_over;
    s->state.takeover_arg = arg;
}

void
adm_server_set_takeover_secret(struct adm_server *s,
                               size_t (*fn)(void *arg, unsigned char *out, size_t cap), void *arg)
{
    s->state.secret = fn;
    s->state.secret_arg = arg;
}

int
adm_server_claim(struct adm_server *s, struct xf_err *err)
{
    if (s->final_path == NULL)
        return 0;
    /* rename(2) replaces the old process's socket file at once: a client connecting now reaches
     * one of the two, never neither. */
    if (rename(s->path, s->final_path) == -1) {
        xf_err_set(err, "admin.socket: cannot move %s to %s: %s", s->path, s->final_path,
                   strerror(errno));
        return -1;
    }
    free(s->path);
    s->path = s->final_path;
    s->final_path = NULL;
    xf_fatal_unlink_on_exit(s->path, (unsigned long)s->dev, (unsigned long)s->ino);
    XF_LOG(XF_LOG_INFO, "admin", "event=listening socket=%s reason=takeover", s->path);
    return 0;
}
