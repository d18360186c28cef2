/* proxy/px_health.c -- node health: active HTTP probes, passive outlier ejection, slow start, and
 * the snapshots that carry their verdict to the data path. */
#include "proxy/px.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

#include "admin/adm.h"

/* A probe's response head longer than this is invalid. */
#define PX_HEALTH_HEAD_MAX (16u * 1024u)
/* How often new snapshots (nodes added or removed by the admin) are looked for. */
#define PX_HEALTH_SYNC_MS 250u
/* The first probe of a node comes within this (spread so that probes do not come in bursts). */
#define PX_HEALTH_FIRST_MS 100u
/* While a node waits for its first verdict and passes, its probes come this often (or every
 * interval when that is shorter): a ready node joins in about rise x this. */
#define PX_HEALTH_FAST_MS 250u
/* Start-up waits this long at most for the first verdicts before the listeners accept. */
#define PX_HEALTH_WARMUP_MAX_MS 10000u
/* Ejections double at most this many times before max_ejection caps them anyway. */
#define PX_HEALTH_STREAK_MAX 16u
/* A slow start takes its steps at least this far apart. */
#define PX_HEALTH_WARM_TICK_MIN_MS 50u

/* What the active checks made of a node. */
enum px_hstate {
    PX_H_PENDING = 0, /* new, no verdict yet (neither `rise` passes nor `fall` failures): out */
    PX_H_UP,          /* in service (also every node of a cluster without checks) */
    PX_H_DOWN,        /* `fall` failures in a row: out of service until `rise` passes */
};

struct px_hnode {
    struct px_health *h; /* borrowed */
    uint32_t id;
    enum cfg_cluster_id cluster;
    struct cfg_addr addr; /* copied from the snapshot that named the node */
    bool seen;            /* present in the snapshot being synced */
    /* Active checks. */
    enum px_hstate active;
    bool verdict; /* it came into service or failed a check: start-up waits for this */
    unsigned ok_run, fail_run;
    char last[24];           /* the last result: "-", "ok:200", "fail:timeout", ... */
    int64_t down_wall_ms;    /* when it went down */
    struct event *probe_ev;  /* owned: the next probe, or the running probe's deadline */
    uint64_t probe_ms;       /* when the running (or last) probe started (monotonic) */
    struct bufferevent *bev; /* owned: the running probe's connection; NULL between probes */
    bool connected;          /* the running probe's connection was established */
    /* Passive detection. */
    unsigned fails; /* consecutive failures on live traffic */
    bool ejected;
    bool probation;         /* back from an ejection: one failure ejects it again */
    bool eject_skipped;     /* an ejection was refused (last node): logged once */
    unsigned ejections;     /* how many times it was ejected */
    unsigned streak;        /* how many times the ejection doubled */
    unsigned eject_fails;   /* the failures in a row that ejected it */
    uint64_t back_ms;       /* when the last ejection ended (monotonic) */
    int64_t eject_until_ms; /* when the ejection ends (wall clock) */
    struct event *eject_ev; /* owned: the end of the ejection */
    /* Slow start. */
    bool op_in_service;     /* the operator's side of the last snapshot: up, weight above 0 */
    unsigned warm;          /* BAL_WARM_STEPS-ths of its weight while warming; 0: all */
    uint64_t warm_start_ms; /* monotonic */
    int64_t warm_end_wall;  /* when it will have its whole weight */
    struct event *warm_ev;  /* owned: the next step */
};

struct px_health {
    struct event_base *base; /* borrowed */
    const struct cfg *cfg;   /* borrowed */
    struct bal_router *router;
    struct xf_stats *stats;  /* borrowed; may be NULL */
    struct px_hnode **nodes; /* owned: by node id; NULL where no node has the id */
    size_t n_nodes;
    uint64_t seen_version; /* the router version last synced */
    struct event *sync_ev; /* owned */
    uint64_t rng;
    bool skip_logged;         /* a probe skipped for want of resources was logged */
    bool serving;             /* start-up is over: the listeners accept */
    struct event *warmup_ev;  /* owned: the longest start-up waits for verdicts */
    void (*ready)(void *arg); /* called once when start-up is over; NULL when done */
    void *ready_arg;
    void (*notify)(void *arg); /* after a publish; may be NULL */
    void *notify_arg;
    px_health_event_fn event; /* a state change, for the admin socket's watchers; may be NULL */
    void *event_arg;
    struct cfg_resolver *resolver; /* borrowed; NULL: names not looked up again */
    SSL_CTX *const *node_tls;      /* borrowed (px_ctl's, changed by reloads): TLS per cluster */
    struct event *resolve_ev[CFG_CLUSTER_COUNT]; /* owned: clusters.*.resolve_interval */
    bool lookup_failed[CFG_CLUSTER_COUNT];       /* a failed lookup was logged (once per run) */
    /* The resolve timers' argument: h, and the cluster in id. */
    struct px_relookup {
        struct px_health *h; /* borrowed */
        uint32_t id;         /* a node's id; for a resolve timer, its cluster */
        char text[sizeof(((struct cfg_addr *)0)->text)];
    } resolve_ctx[CFG_CLUSTER_COUNT];
};

static void px_health_on_probe_timer(evutil_socket_t fd, short what, void *arg);
static void px_health_on_eject_end(evutil_socket_t fd, short what, void *arg);
static void px_health_on_warm(evutil_socket_t fd, short what, void *arg);
static void px_health_check_ready(struct px_health *h);

static struct timeval
px_health_tv(unsigned ms)
{
    return (struct timeval){.tv_sec = (time_t)(ms / 1000u),
                            .tv_usec = (suseconds_t)(ms % 1000u) * 1000};
}

static uint64_t
px_health_rand(struct px_health *h)
{
    h->rng ^= h->rng << 13;
    h->rng ^= h->rng >> 7;
    h->rng ^= h->rng << 17;
    return h->rng;
}

static struct xf_cluster_stats *
px_health_cs(struct px_health *h, enum cfg_cluster_id c)
{
    return h->stats != NULL ? &h->stats->cluster[c] : NULL;
}

/* What the snapshot should say of a node. */
static enum bal_health
px_hnode_health(const struct px_hnode *n)
{
    if (n->active == PX_H_PENDING)
        return BAL_HEALTH_PENDING;
    if (n->active == PX_H_DOWN)
        return BAL_HEALTH_DOWN;
    return n->ejected ? BAL_HEALTH_EJECTED : BAL_HEALTH_UP;
}

/* "up", "down", "ejected" or "pending": the word of px_hnode_health, for events. */
static const char *
px_hnode_word(const struct px_hnode *n)
{
    static const char *const words[] = {[BAL_HEALTH_UP] = "up",
                                        [BAL_HEALTH_DOWN] = "down",
                                        [BAL_HEALTH_EJECTED] = "ejected",
                                        [BAL_HEALTH_PENDING] = "pending"};
    return words[px_hnode_health(n)];
}

/* Tells the admin socket's watchers that node n went from `from` to what `fmt` says. */
static void px_health_tell(struct px_hnode *n, const char *from, const char *fmt, ...)
    XF_PRINTF(3, 4);

static void
px_health_tell(struct px_hnode *n, const char *from, const char *fmt, ...)
{
    char what[160], to[200];
    va_list ap;

    if (n->h->event == NULL)
        return;
    snprintf(what, sizeof(what), "node %s/%s", cfg_cluster_name(n->cluster), n->addr.text);
    va_start(ap, fmt);
    vsnprintf(to, sizeof(to), fmt, ap);
    va_end(ap);
    n->h->event(n->h->event_arg, what, from, to);
}

/*
 * Publishes a snapshot whose nodes carry the health and slow start of their records, when the
 * current one does not already. Admin commands do the same read-copy-publish on this thread, so
 * neither loses the other's change.
 */
static void
px_health_publish(struct px_health *h)
{
    struct bal_snapshot *cur = bal_router_acquire(h->router), *next = NULL;
    struct xf_err err = {0};

    for (int c = 0; c < CFG_CLUSTER_COUNT; c++)
        for (size_t i = 0; i < cur->clusters[c].n_nodes; i++) {
            const struct bal_node *n = &cur->clusters[c].nodes[i];
            struct px_hnode *r = n->id < h->n_nodes ? h->nodes[n->id] : NULL;

            if (r == NULL || (n->health == px_hnode_health(r) && n->warm == r->warm))
                continue;
            if (next == NULL && (next = bal_snapshot_copy(cur, cur->version + 1)) == NULL)
                goto oom;
            next->clusters[c].nodes[i].health = px_hnode_health(r);
            next->clusters[c].nodes[i].warm = r->warm;
        }
    if (next != NULL) {
        if (bal_snapshot_rebuild(next, &err) == -1)
            goto oom;
        bal_router_publish(h->router, next);
        if (h->notify != NULL)
            h->notify(h->notify_arg);
    }
    bal_snapshot_unref(cur);
    return;
oom:
    XF_LOG(XF_LOG_ERR, "health", "event=publish_failed error=\"out of memory\"");
    bal_snapshot_unref(next);
    bal_snapshot_unref(cur);
}

/* --- slow start --- */

/* The steps of a slow start: BAL_WARM_STEPS of them over clusters.*.slow_start. */
static unsigned
px_health_warm_tick_ms(const struct px_hnode *n)
{
    unsigned ms = n->h->cfg->clusters[n->cluster].slow_start_ms / BAL_WARM_STEPS;

    return XF_MAX(ms, PX_HEALTH_WARM_TICK_MIN_MS);
}

/*
 * Node n just came into service (its checks passed, its ejection ended, the operator added or
 * enabled it): with clusters.*.slow_start it takes a small part of its weight, grown step by step.
 * Not at start-up, where every node comes at once and none would take traffic from the others.
 */
static void
px_health_warm_start(struct px_hnode *n)
{
    unsigned slow = n->h->cfg->clusters[n->cluster].slow_start_ms;
    struct timeval tv;

    if (slow == 0 || !n->h->serving)
        return;
    n->warm = 1;
    n->warm_start_ms = xf_now_ms();
    n->warm_end_wall = xf_wall_ms() + slow;
    tv = px_health_tv(px_health_warm_tick_ms(n));
    evtimer_add(n->warm_ev, &tv);
    XF_LOG(XF_LOG_INFO, "health", "event=slow_start cluster=%s node=%s for_ms=%u",
           cfg_cluster_name(n->cluster), n->addr.text, slow);
}

static void
px_health_on_warm(evutil_socket_t fd, short what, void *arg)
{
    struct px_hnode *n = arg;
    unsigned slow = n->h->cfg->clusters[n->cluster].slow_start_ms;
    uint64_t gone = xf_now_ms() - n->warm_start_ms;
    struct timeval tv;

    XF_UNUSED(fd);
    XF_UNUSED(what);
    if (n->warm == 0)
        return;
    if (gone >= slow) {
        n->warm = 0;
        XF_LOG(XF_LOG_INFO, "health", "event=slow_start_done cluster=%s node=%s",
               cfg_cluster_name(n->cluster), n->addr.text);
    } else {
        n->warm = XF_MAX(1u, (unsigned)(gone * BAL_WARM_STEPS / slow));
        tv = px_health_tv(px_health_warm_tick_ms(n));
        evtimer_add(n->warm_ev, &tv);
    }
    px_health_publish(n->h);
}

/* Stops a slow start (the node left service): it starts again when the node comes back. */
static void
px_health_warm_stop(struct px_hnode *n)
{
    n->warm = 0;
    event_del(n->warm_ev);
}

/* --- active probes --- */

static void
px_health_probe_end(struct px_hnode *n)
{
    if (n->bev != NULL) {
        bufferevent_free(n->bev);
        n->bev = NULL;
    }
}

/* Schedules the next probe `ms` from now. */
static void
px_health_schedule(struct px_hnode *n, unsigned ms)
{
    struct timeval tv = px_health_tv(ms);

    evtimer_add(n->probe_ev, &tv);
}

/* The checks of node n passed `rise` times: it comes into service. */
static void
px_health_rise(struct px_hnode *n)
{
    struct xf_cluster_stats *cs = px_health_cs(n->h, n->cluster);
    const char *from = px_hnode_word(n);

    /* Counted as brought back up only when it was down: a new node's first passes are not. */
    if (cs != NULL && n->active == PX_H_DOWN)
        cs->health_up++;
    n->active = PX_H_UP;
    XF_LOG(XF_LOG_INFO, "health", "event=node_up cluster=%s node=%s passes=%u was=%s",
           cfg_cluster_name(n->cluster), n->addr.text, n->ok_run, from);
    px_health_tell(n, from, "%s (%u checks passed)", px_hnode_word(n), n->ok_run);
    if (!n->ejected)
        px_health_warm_start(n);
    px_health_publish(n->h);
}

/* The checks of node n failed `fall` times: it leaves service, or a new node is known down. */
static void
px_health_fall(struct px_hnode *n)
{
    struct xf_cluster_stats *cs = px_health_cs(n->h, n->cluster);
    const char *from = px_hnode_word(n);

    if (cs != NULL)
        cs->health_down++;
    n->active = PX_H_DOWN;
    n->down_wall_ms = xf_wall_ms();
    XF_LOG(XF_LOG_WARN, "health", "event=node_down cluster=%s node=%s failures=%u last=%s",
           cfg_cluster_name(n->cluster), n->addr.text, n->fail_run, n->last);
    px_health_tell(n, from, "down (%u checks failed, last %s)", n->fail_run, n->last);
    px_health_warm_stop(n);
    px_health_publish(n->h);
}

/* A probe ended: `ok`, with `what` ("ok:200", "fail:timeout", ...) as the node's last result. */
static void
px_health_result(struct px_hnode *n, bool ok, const char *what)
{
    struct px_health *h = n->h;
    const struct cfg_health *hc = &h->cfg->clusters[n->cluster].health;
    unsigned next = hc->interval_ms;
    uint64_t took;

    px_health_probe_end(n);
    h->skip_logged = false;
    snprintf(n->last, sizeof(n->last), "%s", what);
    if (ok) {
        n->fail_run = 0;
        n->ok_run++;
        if (n->active != PX_H_UP && n->ok_run >= hc->rise)
            px_health_rise(n);
        else if (n->active == PX_H_PENDING)
            next = XF_MIN(next, PX_HEALTH_FAST_MS); /* a ready node joins soon */
    } else {
        n->ok_run = 0;
        n->fail_run++;
        if (n->active != PX_H_DOWN && n->fail_run >= hc->fall)
            px_health_fall(n);
    }
    /* Start-up waits for each node to be in service, or known to fail: a pass short of `rise`
     * is no verdict yet. */
    if (!n->verdict && (!ok || n->active == PX_H_UP)) {
        n->verdict = true;
        px_health_check_ready(h);
    }
    /* Probes start `interval` apart whatever they took (timeout <= interval), so a node that
     * stops answering is down within fall x interval of the first probe it fails. */
    took = xf_now_ms() - n->probe_ms;
    px_health_schedule(n, took < next ? next - (unsigned)took : 0);
}

/* A probe that could not start for a reason of this process, not of the node: counted nowhere,
 * logged once per run of them, tried again an interval later. */
static void
px_health_skipped(struct px_hnode *n, int e)
{
    const struct cfg_health *hc = &n->h->cfg->clusters[n->cluster].health;

    if (!n->h->skip_logged)
        XF_LOG(XF_LOG_WARN, "health",
               "event=probe_skipped cluster=%s node=%s error=\"%s\" note=\"no verdict on the "
               "node while this process is short of resources\"",
               cfg_cluster_name(n->cluster), n->addr.text, strerror(e));
    n->h->skip_logged = true;
    px_health_schedule(n, hc->interval_ms);
}

/*
 * The status of a complete response head "HTTP/1.x SSS ...": 100..599, or -1 when the status line
 * is not one.
 */
static int
px_health_status(const char *p, size_t len)
{
    int st;

    if (len < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
        return -1;
    for (int i = 9; i < 12; i++)
        if (p[i] < '0' || p[i] > '9')
            return -1;
    if (len > 12 && p[12] != ' ' && p[12] != '\r')
        return -1;
    st = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    return st >= 100 && st <= 599 ? st : -1;
}

static void
px_health_on_read(struct bufferevent *bev, void *arg)
{
    struct px_hnode *n = arg;
    const struct cfg_health *hc = &n->h->cfg->clusters[n->cluster].health;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    char what[24];
    const char *p;
    int st;

    if (end.pos == -1) {
        if (evbuffer_get_length(in) > PX_HEALTH_HEAD_MAX)
            px_health_result(n, false, "fail:invalid");
        return;
    }
    p = (const char *)evbuffer_pullup(in, end.pos + 4);
    st = p != NULL ? px_health_status(p, (size_t)end.pos) : -1;
    if (st == -1) {
        px_health_result(n, false, "fail:invalid");
        return;
    }
    snprintf(what, sizeof(what), "%s:%d",
             (unsigned)st >= hc->expect_min && (unsigned)st <= hc->expect_max ? "ok" : "fail", st);
    px_health_result(n, what[0] == 'o', what);
}

static void
px_health_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct px_hnode *n = arg;

    if (what & BEV_EVENT_CONNECTED) {
        n->connected = true;
        return;
    }
    /* An error before the connection is a refusal (or, over TLS, a failed handshake); after
     * it, or an end of stream before a whole head came, a reset. */
    if (!n->connected && bufferevent_get_openssl_error(bev) != 0)
        px_health_result(n, false, "fail:tls");
    else
        px_health_result(n, false, n->connected ? "fail:reset" : "fail:refused");
}

/* The address a node's probes go to: the node's, with health.port when set. */
static void
px_health_target(const struct px_hnode *n, struct sockaddr_storage *sa, socklen_t *len)
{
    uint16_t port = n->h->cfg->clusters[n->cluster].health.port;

    memcpy(sa, &n->addr.sa, sizeof(*sa));
    *len = n->addr.sa_len;
    if (port == 0)
        return;
    if (sa->ss_family == AF_INET)
        ((struct sockaddr_in *)sa)->sin_port = htons(port);
    else if (sa->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
}

static void
px_health_probe_start(struct px_hnode *n)
{
    const struct cfg_health *hc = &n->h->cfg->clusters[n->cluster].health;
    struct sockaddr_storage sa;
    socklen_t len;
    struct timeval tv = px_health_tv(hc->timeout_ms);

    SSL_CTX *tls = n->h->node_tls != NULL ? n->h->node_tls[n->cluster] : NULL;

    px_health_target(n, &sa, &len);
    n->connected = false;
    n->probe_ms = xf_now_ms();
    if (tls != NULL) {
        /* A TLS cluster is checked over TLS, its certificate verified as for requests; the
         * connection counts as made once the handshake is over. */
        const struct cfg_tls_node *t = n->h->cfg->clusters[n->cluster].tls;
        SSL *ssl = px_tls_node_ssl(tls, t != NULL ? t->sni : NULL, n->addr.text);

        n->bev =
            ssl == NULL
                ? NULL
                : bufferevent_openssl_socket_new(n->h->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                 BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        if (n->bev == NULL)
            SSL_free(ssl);
    } else {
        n->bev =
            bufferevent_socket_new(n->h->base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    }
    if (n->bev == NULL) {
        px_health_result(n, false, "fail:refused");
        return;
    }
    bufferevent_setcb(n->bev, px_health_on_read, NULL, px_health_on_event, n);
    /* A node that takes PROXY headers wants one on every connection: a check says it speaks
     * for no client (v1 UNKNOWN, v2 LOCAL). */
    if (n->h->cfg->clusters[n->cluster].proxy_protocol == 1)
        evbuffer_add(bufferevent_get_output(n->bev), "PROXY UNKNOWN\r\n", 15);
    else if (n->h->cfg->clusters[n->cluster].proxy_protocol == 2)
        evbuffer_add(bufferevent_get_output(n->bev), "\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00", 16);
    evbuffer_add_printf(bufferevent_get_output(n->bev),
                        "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: crossfade-health\r\n"
                        "Connection: close\r\n\r\n",
                        hc->path, hc->host != NULL ? hc->host : n->addr.text);
    bufferevent_enable(n->bev, EV_READ | EV_WRITE);
    evtimer_add(n->probe_ev, &tv); /* the probe's deadline */
    if (bufferevent_socket_connect(n->bev, (struct sockaddr *)&sa, (int)len) == -1) {
        int e = errno;

        event_del(n->probe_ev);
        if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
            /* This process is out of descriptors or memory: no verdict on the node. */
            px_health_probe_end(n);
            px_health_skipped(n, e);
            return;
        }
        px_health_result(n, false, "fail:refused");
    }
}

/* The probe timer: start a probe, or, while one runs, its deadline passed. */
static void
px_health_on_probe_timer(evutil_socket_t fd, short what, void *arg)
{
    struct px_hnode *n = arg;

    XF_UNUSED(fd);
    XF_UNUSED(what);
    if (n->bev != NULL)
        px_health_result(n, false, "fail:timeout");
    else
        px_health_probe_start(n);
}

/* --- start-up: the listeners accept once every checked node had its first verdict --- */

static void
px_health_serve(struct px_health *h, const char *why)
{
    void (*ready)(void *arg) = h->ready;

    if (h->serving)
        return;
    h->serving = true;
    h->ready = NULL;
    event_del(h->warmup_ev);
    XF_LOG(XF_LOG_INFO, "health", "event=ready reason=%s", why);
    if (ready != NULL)
        ready(h->ready_arg);
}

/* Ends start-up when no node of a checked cluster is still without a verdict. */
static void
px_health_check_ready(struct px_health *h)
{
    if (h->serving || h->ready == NULL)
        return;
    for (size_t i = 0; i < h->n_nodes; i++) {
        const struct px_hnode *n = h->nodes[i];

        if (n != NULL && h->cfg->clusters[n->cluster].health.enabled && !n->verdict)
            return;
    }
    px_health_serve(h, "first_verdicts");
}

static void
px_health_on_warmup_max(evutil_socket_t fd, short what, void *arg)
{
    XF_UNUSED(fd);
    XF_UNUSED(what);
    XF_LOG(XF_LOG_WARN, "health",
           "event=ready_without_verdicts after_ms=%u note=\"some nodes gave no verdict yet; they "
           "stay out of service until they pass their checks\"",
           PX_HEALTH_WARMUP_MAX_MS);
    px_health_serve(arg, "deadline");
}

/* --- passive detection --- */

/* Whether node id is the last node of its cluster that takes requests in the current snapshot. */
static bool
px_health_is_last(struct px_health *h, const struct px_hnode *n)
{
    struct bal_snapshot *s = bal_router_acquire(h->router);
    const struct bal_cluster *cl = &s->clusters[n->cluster];
    size_t others = 0;

    for (size_t i = 0; i < cl->n_nodes; i++)
        if (cl->nodes[i].id != n->id && bal_node_takes(&cl->nodes[i]))
            others++;
    bal_snapshot_unref(s);
    return others == 0;
}

static void
px_health_eject(struct px_hnode *n)
{
    struct px_health *h = n->h;
    const struct cfg_outlier *o = &h->cfg->clusters[n->cluster].outlier;
    struct xf_cluster_stats *cs = px_health_cs(h, n->cluster);
    const char *from = px_hnode_word(n);
    char until[32];
    uint64_t ms;
    struct timeval tv;

    /* A cluster that cannot fail over keeps its last node: its errors beat a 503 for everyone. */
    if (!h->cfg->clusters[n->cluster].failover && px_health_is_last(h, n)) {
        if (!n->eject_skipped)
            XF_LOG(XF_LOG_WARN, "health",
                   "event=ejection_skipped cluster=%s node=%s failures=%u "
                   "reason=\"the last node of a cluster without failover\"",
                   cfg_cluster_name(n->cluster), n->addr.text, n->fails);
        n->eject_skipped = true;
        return;
    }
    /* A node that stayed clean for a whole max_ejection starts its back-off afresh. */
    if (n->back_ms != 0 && xf_now_ms() - n->back_ms > o->max_ejection_ms)
        n->streak = 0;
    ms = (uint64_t)o->ejection_ms << n->streak;
    if (ms > o->max_ejection_ms)
        ms = o->max_ejection_ms;
    if (n->streak < PX_HEALTH_STREAK_MAX)
        n->streak++;
    n->ejected = true;
    n->probation = false;
    n->eject_skipped = false;
    n->ejections++;
    n->eject_fails = n->fails;
    n->eject_until_ms = xf_wall_ms() + (int64_t)ms;
    if (cs != NULL)
        cs->ejections++;
    XF_LOG(XF_LOG_WARN, "health", "event=node_ejected cluster=%s node=%s failures=%u for_ms=%llu",
           cfg_cluster_name(n->cluster), n->addr.text, n->fails, (unsigned long long)ms);
    px_health_tell(n, from, "ejected until %s (%u failures in a row)",
                   xf_wall_text(n->eject_until_ms, 0, until, sizeof(until)) + 11, n->fails);
    px_health_warm_stop(n);
    tv = px_health_tv((unsigned)ms);
    evtimer_add(n->eject_ev, &tv);
    px_health_publish(h);
}

static void
px_health_on_eject_end(evutil_socket_t fd, short what, void *arg)
{
    struct px_hnode *n = arg;

    XF_UNUSED(fd);
    XF_UNUSED(what);
    n->ejected = false;
    n->probation = true;
    n->fails = 0;
    n->back_ms = xf_now_ms();
    XF_LOG(XF_LOG_INFO, "health", "event=node_probation cluster=%s node=%s",
           cfg_cluster_name(n->cluster), n->addr.text);
    px_health_tell(n, "ejected", "%s (on probation: one failure ejects it again)",
                   px_hnode_word(n));
    if (n->active == PX_H_UP)
        px_health_warm_start(n);
    px_health_publish(n->h);
}

/* --- host names looked up again (clusters.*.resolve_interval) --- */

/* An address's host as text, for the log. */
static const char *
px_health_host_text(const struct cfg_addr *a, char *buf, size_t size)
{
    const void *raw = a->sa.ss_family == AF_INET6
                          ? (const void *)&((const struct sockaddr_in6 *)&a->sa)->sin6_addr
                          : (const void *)&((const struct sockaddr_in *)&a->sa)->sin_addr;

    if (inet_ntop(a->sa.ss_family, raw, buf, (socklen_t)size) == NULL)
        snprintf(buf, size, "?");
    return buf;
}

/* Publishes a snapshot in which node `id` (still named `text`) has the address `addr`. */
static void
px_health_readdress(struct px_health *h, uint32_t id, const char *text, const struct cfg_addr *addr)
{
    struct bal_snapshot *cur = bal_router_acquire(h->router), *next = NULL;
    char was[INET6_ADDRSTRLEN], now[INET6_ADDRSTRLEN];

    for (int c = 0; c < CFG_CLUSTER_COUNT; c++)
        for (size_t i = 0; i < cur->clusters[c].n_nodes; i++) {
            const struct bal_node *n = &cur->clusters[c].nodes[i];

            if (n->id != id || strcmp(n->addr.text, text) != 0)
                continue;
            if (n->addr.sa_len == addr->sa_len && memcmp(&n->addr.sa, &addr->sa, addr->sa_len) == 0)
                goto out; /* the same answer */
            next = bal_snapshot_copy(cur, cur->version + 1);
            if (next == NULL) {
                XF_LOG(XF_LOG_ERR, "health", "event=publish_failed error=\"out of memory\"");
                goto out;
            }
            next->clusters[c].nodes[i].addr = *addr;
            XF_LOG(XF_LOG_WARN, "health",
                   "event=node_address_changed cluster=%s node=%s from=%s to=%s",
                   cfg_cluster_name((enum cfg_cluster_id)c), text,
                   px_health_host_text(&n->addr, was, sizeof(was)),
                   px_health_host_text(addr, now, sizeof(now)));
            if (id < h->n_nodes && h->nodes[id] != NULL)
                h->nodes[id]->addr = *addr; /* its probes go there too */
            bal_router_publish(h->router, next);
            if (h->notify != NULL)
                h->notify(h->notify_arg);
            goto out;
        }
out:
    bal_snapshot_unref(cur);
}

/* cfg_resolved_fn of a node looked up again: a new address is published; a failure keeps the
 * old one (logged once per run of failures of the cluster). */
static void
px_health_on_relooked(void *arg, const struct cfg_addr *addr, const char *error)
{
    struct px_relookup *r = arg;
    struct px_health *h = r->h;
    struct px_hnode *n = r->id < h->n_nodes ? h->nodes[r->id] : NULL;

    if (n != NULL && strcmp(n->addr.text, r->text) == 0) {
        if (addr == NULL) {
            if (!h->lookup_failed[n->cluster])
                XF_LOG(XF_LOG_WARN, "health",
                       "event=resolve_failed cluster=%s node=%s error=\"%s\" note=\"the node "
                       "keeps its last address; logged once until a lookup works\"",
                       cfg_cluster_name(n->cluster), r->text, error);
            h->lookup_failed[n->cluster] = true;
        } else {
            h->lookup_failed[n->cluster] = false;
            px_health_readdress(h, r->id, r->text, addr);
        }
    }
    free(r);
}

/* The resolve timer of a cluster (arg: its timer's index in resolve_ev): each node named by a
 * host name is looked up again. */
static void
px_health_on_resolve_timer(evutil_socket_t fd, short what, void *arg)
{
    struct px_health *h = ((struct px_relookup *)arg)->h;
    enum cfg_cluster_id c = (enum cfg_cluster_id)((struct px_relookup *)arg)->id;
    struct bal_snapshot *s = bal_router_acquire(h->router);
    struct timeval tv = px_health_tv(h->cfg->clusters[c].resolve_interval_ms);

    XF_UNUSED(fd);
    XF_UNUSED(what);
    for (size_t i = 0; i < s->clusters[c].n_nodes; i++) {
        const struct bal_node *n = &s->clusters[c].nodes[i];
        struct px_relookup *r;

        if (!cfg_addr_is_name(n->addr.text) || (r = calloc(1, sizeof(*r))) == NULL)
            continue;
        r->h = h;
        r->id = n->id;
        memcpy(r->text, n->addr.text, sizeof(r->text));
        if (cfg_resolver_submit(h->resolver, r->text, px_health_on_relooked, r) == -1)
            free(r); /* the resolver is full: the next interval tries again */
    }
    bal_snapshot_unref(s);
    evtimer_add(h->resolve_ev[c], &tv);
}

void
px_health_set_tls(struct px_health *h, SSL_CTX *const *node_tls)
{
    h->node_tls = node_tls;
}

void
px_health_set_resolver(struct px_health *h, struct cfg_resolver *r)
{
    h->resolver = r;
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++) {
        unsigned every = h->cfg->clusters[c].resolve_interval_ms;
        struct timeval tv = px_health_tv(every);

        if (every == 0 || r == NULL || h->resolve_ev[c] != NULL)
            continue;
        h->resolve_ctx[c].h = h;
        h->resolve_ctx[c].id = (uint32_t)c;
        h->resolve_ev[c] = evtimer_new(h->base, px_health_on_resolve_timer, &h->resolve_ctx[c]);
        if (h->resolve_ev[c] != NULL)
            evtimer_add(h->resolve_ev[c], &tv);
    }
}

/* --- records --- */

static void
px_hnode_free(struct px_hnode *n)
{
    if (n == NULL)
        return;
    px_health_probe_end(n);
    if (n->probe_ev != NULL)
        event_free(n->probe_ev);
    if (n->eject_ev != NULL)
        event_free(n->eject_ev);
    if (n->warm_ev != NULL)
        event_free(n->warm_ev);
    free(n);
}

/* Whether the operator's side of a node lets it take requests: up, with a weight. */
static bool
px_hnode_op_in_service(const struct bal_node *bn)
{
    return bn->state == BAL_NODE_UP && bn->weight > 0;
}

static struct px_hnode *
px_hnode_new(struct px_health *h, const struct bal_node *bn)
{
    struct px_hnode *n = calloc(1, sizeof(*n));
    const struct cfg_health *hc = &h->cfg->clusters[bn->cluster].health;

    if (n == NULL)
        return NULL;
    n->h = h;
    n->id = bn->id;
    n->cluster = bn->cluster;
    n->addr = bn->addr;
    n->active = hc->enabled ? PX_H_PENDING : PX_H_UP;
    n->op_in_service = px_hnode_op_in_service(bn);
    snprintf(n->last, sizeof(n->last), "-");
    n->probe_ev = evtimer_new(h->base, px_health_on_probe_timer, n);
    n->eject_ev = evtimer_new(h->base, px_health_on_eject_end, n);
    n->warm_ev = evtimer_new(h->base, px_health_on_warm, n);
    if (n->probe_ev == NULL || n->eject_ev == NULL || n->warm_ev == NULL) {
        px_hnode_free(n);
        return NULL;
    }
    if (hc->enabled) {
        unsigned first = XF_MIN(hc->interval_ms, PX_HEALTH_FIRST_MS);
        px_health_schedule(n, (unsigned)(px_health_rand(h) % (first + 1u)));
    } else if (n->op_in_service) {
        px_health_warm_start(n); /* added at run time to a cluster without checks */
    }
    return n;
}

/*
 * Makes the records follow the current snapshot: new nodes get one, removed nodes lose theirs,
 * and a node the operator brings back into service (enable, a weight above 0) starts its slow
 * start. Publishes the slow starts that began.
 */
static void
px_health_sync(struct px_health *h)
{
    uint64_t v = bal_router_version(h->router);
    struct bal_snapshot *s;
    bool warmed = false;

    if (v == h->seen_version)
        return;
    h->seen_version = v;
    s = bal_router_acquire(h->router);
    if (s->max_id > h->n_nodes) {
        struct px_hnode **nodes = realloc(h->nodes, s->max_id * sizeof(*nodes));

        if (nodes == NULL) {
            bal_snapshot_unref(s);
            h->seen_version = 0; /* try again at the next tick */
            return;
        }
        memset(nodes + h->n_nodes, 0, (s->max_id - h->n_nodes) * sizeof(*nodes));
        h->nodes = nodes;
        h->n_nodes = s->max_id;
    }
    for (size_t i = 0; i < h->n_nodes; i++)
        if (h->nodes[i] != NULL)
            h->nodes[i]->seen = false;
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++)
        for (size_t i = 0; i < s->clusters[c].n_nodes; i++) {
            const struct bal_node *bn = &s->clusters[c].nodes[i];
            struct px_hnode *n = h->nodes[bn->id];

            if (n != NULL && (n->cluster != bn->cluster || strcmp(n->addr.text, bn->addr.text))) {
                /* The id of a removed node, given to a new one before this sync saw it go. */
                px_hnode_free(n);
                n = h->nodes[bn->id] = NULL;
            }
            if (n == NULL) {
                n = h->nodes[bn->id] = px_hnode_new(h, bn);
                warmed = warmed || (n != NULL && n->warm != 0);
            } else if (px_hnode_op_in_service(bn) != n->op_in_service) {
                n->op_in_service = !n->op_in_service;
                if (!n->op_in_service)
                    px_health_warm_stop(n);
                else if (px_hnode_health(n) == BAL_HEALTH_UP)
                    px_health_warm_start(n);
                warmed = true;
            }
            if (n != NULL)
                n->seen = true;
        }
    for (size_t i = 0; i < h->n_nodes; i++)
        if (h->nodes[i] != NULL && !h->nodes[i]->seen) {
            px_hnode_free(h->nodes[i]);
            h->nodes[i] = NULL;
        }
    bal_snapshot_unref(s);
    if (warmed)
        px_health_publish(h);
}

static void
px_health_on_sync(evutil_socket_t fd, short what, void *arg)
{
    XF_UNUSED(fd);
    XF_UNUSED(what);
    px_health_sync(arg);
}

struct px_health *
px_health_new(struct event_base *base, const struct cfg *cfg, struct bal_router *router,
              struct xf_stats *stats, struct xf_err *err)
{
    struct px_health *h = calloc(1, sizeof(*h));
    struct timeval tv = px_health_tv(PX_HEALTH_SYNC_MS);

    if (h == NULL)
        goto oom;
    h->base = base;
    h->cfg = cfg;
    h->router = router;
    h->stats = stats;
    h->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)xf_now_us();
    h->sync_ev = event_new(base, -1, EV_PERSIST, px_health_on_sync, h);
    h->warmup_ev = evtimer_new(base, px_health_on_warmup_max, h);
    if (h->sync_ev == NULL || h->warmup_ev == NULL)
        goto oom;
    event_add(h->sync_ev, &tv);
    px_health_sync(h);
    return h;
oom:
    xf_err_set(err, "out of memory setting up health checks");
    px_health_free(h);
    return NULL;
}

void
px_health_start(struct px_health *h, void (*ready)(void *arg), void *arg)
{
    struct timeval tv = px_health_tv(PX_HEALTH_WARMUP_MAX_MS);

    h->ready = ready;
    h->ready_arg = arg;
    evtimer_add(h->warmup_ev, &tv);
    px_health_check_ready(h);
}

bool
px_health_serving(const struct px_health *h)
{
    return h->serving;
}

void
px_health_set_notify(struct px_health *h, void (*fn)(void *arg), void *arg)
{
    h->notify = fn;
    h->notify_arg = arg;
}

void
px_health_set_events(struct px_health *h, px_health_event_fn fn, void *arg)
{
    h->event = fn;
    h->event_arg = arg;
}

void
px_health_refresh(void *arg)
{
    px_health_sync(arg);
}

/*
 * A reload put `cfg` in force (the snapshot with its nodes is published already): the records
 * follow it. A cluster whose checks went off puts its nodes in service (an ejection stays); one
 * whose checks came on keeps its nodes in service and starts probing them; other settings are
 * read from cfg at their next use. The resolve timers take their new intervals.
 */
void
px_health_reload(struct px_health *h, const struct cfg *cfg)
{
    const struct cfg *old = h->cfg;

    h->cfg = cfg;
    for (size_t i = 0; i < h->n_nodes; i++) {
        struct px_hnode *n = h->nodes[i];
        const struct cfg_health *hc, *oh;

        if (n == NULL)
            continue;
        hc = &cfg->clusters[n->cluster].health;
        oh = &old->clusters[n->cluster].health;
        if (!hc->enabled && oh->enabled) {
            px_health_probe_end(n);
            event_del(n->probe_ev);
            n->active = PX_H_UP;
            n->verdict = true;
            n->ok_run = n->fail_run = 0;
            snprintf(n->last, sizeof(n->last), "-");
        } else if (hc->enabled && !oh->enabled) {
            n->ok_run = n->fail_run = 0;
            px_health_schedule(n, (unsigned)(px_health_rand(h) %
                                             (XF_MIN(hc->interval_ms, PX_HEALTH_FIRST_MS) + 1u)));
        }
    }
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++) {
        if (cfg->clusters[c].resolve_interval_ms == old->clusters[c].resolve_interval_ms)
            continue;
        if (h->resolve_ev[c] != NULL) {
            event_free(h->resolve_ev[c]);
            h->resolve_ev[c] = NULL;
        }
    }
    px_health_set_resolver(h, h->resolver);
    px_health_sync(h);
    px_health_publish(h);
    px_health_check_ready(h);
}

void
px_health_free(struct px_health *h)
{
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->n_nodes; i++)
        px_hnode_free(h->nodes[i]);
    free(h->nodes);
    if (h->sync_ev != NULL)
        event_free(h->sync_ev);
    if (h->warmup_ev != NULL)
        event_free(h->warmup_ev);
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++)
        if (h->resolve_ev[c] != NULL)
            event_free(h->resolve_ev[c]);
    free(h);
}

void
px_health_observe(struct px_health *h, uint32_t id, bool ok)
{
    struct px_hnode *n;
    unsigned limit;

    if (id >= h->n_nodes || h->nodes[id] == NULL)
        px_health_sync(h);
    if (id >= h->n_nodes || (n = h->nodes[id]) == NULL)
        return;
    limit = h->cfg->clusters[n->cluster].outlier.failures;
    if (ok) {
        n->fails = 0;
        n->probation = false;
        n->eject_skipped = false;
        return;
    }
    n->fails++;
    if (limit == 0 || n->ejected)
        return;
    if (n->fails >= (n->probation ? 1u : limit))
        px_health_eject(n);
}

/* Writes why node n takes no traffic, or a part of its weight only; "" when neither. */
static void
px_health_note(const struct px_hnode *n, char *buf, size_t size)
{
    const struct cfg_health *hc = &n->h->cfg->clusters[n->cluster].health;
    char t[32];

    buf[0] = '\0';
    if (n->active == PX_H_PENDING) {
        if (n->last[0] == '-')
            snprintf(buf, size, "pending first checks: none done yet");
        else
            snprintf(buf, size, "pending first checks: %u of %u passed, last %s", n->ok_run,
                     hc->rise, n->last);
    } else if (n->active == PX_H_DOWN) {
        snprintf(buf, size, "down since %s: %u of %u checks passed since, last %s",
                 xf_wall_text(n->down_wall_ms, 0, t, sizeof(t)), n->ok_run, hc->rise, n->last);
    } else if (n->ejected) {
        snprintf(buf, size, "ejected until %s (%u failures in a row)",
                 xf_wall_text(n->eject_until_ms, 0, t, sizeof(t)) + 11, n->eject_fails);
    } else if (n->warm != 0) {
        snprintf(buf, size, "slow start: %u%% of its weight, all of it at %s",
                 n->warm * 100u / BAL_WARM_STEPS,
                 xf_wall_text(n->warm_end_wall, 0, t, sizeof(t)) + 11);
    } else if (n->probation) {
        snprintf(buf, size, "on probation: one failure ejects it again");
    }
}

int
px_health_info(void *arg, uint32_t id, struct adm_node_health *out)
{
    struct px_health *h = arg;
    struct px_hnode *n;

    px_health_sync(h);
    if (id >= h->n_nodes || (n = h->nodes[id]) == NULL)
        return -1;
    snprintf(out->check, sizeof(out->check), "%s", n->last);
    out->ejections = n->ejections;
    px_health_note(n, out->note, sizeof(out->note));
    return 0;
}
