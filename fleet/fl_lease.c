/* fleet/fl_lease.c -- a lease kept alive: granted, renewed every ttl/3, granted again when lost. */
#include "fleet/fl_int.h"

#include <inttypes.h>
#include <stdio.h>

struct fl_lease {
    struct fl_lease *next; /* the client's list */
    struct fl_lease **pprev;
    struct fl_etcd *e; /* borrowed */
    int64_t ttl;       /* seconds asked for */
    int64_t id;        /* 0 while none is granted */
    fl_lease_fn cb;
    void *arg;           /* borrowed */
    struct event *timer; /* owned: the next grant or keep-alive */
    uint64_t alive_ms;   /* when etcd last said the lease lives (xf_now_ms) */
    bool busy;           /* a grant or keep-alive is in flight */
    bool *dead;          /* set to true by fl_lease_free during a callback */
};

static void
fl_lease_arm(struct fl_lease *l, uint64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};

    evtimer_add(l->timer, &tv);
}

/* Tells the owner; false when the callback freed l. */
static bool
fl_lease_tell(struct fl_lease *l, enum fl_lease_state state, int64_t id, const char *why)
{
    bool dead = false;

    XF_LOG(state == FL_LEASE_LOST ? XF_LOG_WARN : XF_LOG_INFO, "fleet",
           "event=lease_%s lease=%" PRId64 " ttl=%" PRId64 "%s%s",
           state == FL_LEASE_LOST ? "lost" : "granted", id, l->ttl, why != NULL ? " why=" : "",
           why != NULL ? why : "");
    l->dead = &dead;
    l->cb(l->arg, state, id, why);
    if (dead)
        return false;
    l->dead = NULL;
    return true;
}

/* The lease is gone: tell the owner, then grant another at once. */
static void
fl_lease_lost(struct fl_lease *l, const char *why)
{
    int64_t id = l->id;

    l->id = 0;
    fl_lease_arm(l, 0);
    fl_lease_tell(l, FL_LEASE_LOST, id, why);
}

static void
fl_lease_on_grant(void *arg, const struct fl_result *res, const char *error)
{
    struct fl_lease *l = arg;

    l->busy = false;
    if (res == NULL || res->lease <= 0 || res->ttl <= 0) {
        XF_LOG(XF_LOG_WARN, "fleet", "event=lease_grant_failed ttl=%" PRId64 " why=%s", l->ttl,
               error != NULL ? error : "no lease in the answer");
        fl_lease_arm(l, XF_MIN((uint64_t)l->ttl * 1000 / 3, 1000));
        return;
    }
    l->id = res->lease;
    l->alive_ms = xf_now_ms();
    fl_lease_arm(l, (uint64_t)l->ttl * 1000 / 3);
    fl_lease_tell(l, FL_LEASE_GRANTED, l->id, NULL);
}

static void
fl_lease_on_keepalive(void *arg, const struct fl_result *res, const char *error)
{
    struct fl_lease *l = arg;
    char why[300];

    l->busy = false;
    if (res != NULL && res->ttl > 0) {
        l->alive_ms = xf_now_ms();
        fl_lease_arm(l, (uint64_t)l->ttl * 1000 / 3);
        return;
    }
    if (res != NULL) {
        fl_lease_lost(l, "etcd says the lease no longer exists");
        return;
    }
    if (xf_now_ms() - l->alive_ms >= (uint64_t)l->ttl * 1000) {
        snprintf(why, sizeof(why), "no keep-alive succeeded for %" PRId64 " s: %s", l->ttl, error);
        fl_lease_lost(l, why);
        return;
    }
    fl_lease_arm(l, XF_MIN((uint64_t)l->ttl * 1000 / 3, 1000));
}

static void
fl_lease_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct fl_lease *l = arg;
    int rc;

    XF_UNUSED(fd);
    XF_UNUSED(what);
    if (l->busy)
        return;
    if (l->id == 0)
        rc = fl_etcd_lease_grant(l->e, l->ttl, fl_lease_on_grant, l);
    else
        rc = fl_etcd_lease_keepalive(l->e, l->id, fl_lease_on_keepalive, l);
    if (rc == -1) {
        fl_lease_arm(l, 1000); /* out of memory: try again later */
        return;
    }
    l->busy = true;
}

struct fl_lease *
fl_lease_new(struct fl_etcd *e, int64_t ttl_s, fl_lease_fn cb, void *arg)
{
    struct fl_lease *l;

    if (ttl_s < 2 || ttl_s > INT32_MAX || cb == NULL)
        return NULL;
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->timer = evtimer_new(e->base, fl_lease_on_timer, l);
    if (l->timer == NULL) {
        free(l);
        return NULL;
    }
    l->e = e;
    l->ttl = ttl_s;
    l->cb = cb;
    l->arg = arg;
    l->next = e->leases;
    if (l->next != NULL)
        l->next->pprev = &l->next;
    l->pprev = &e->leases;
    e->leases = l;
    fl_lease_arm(l, 0);
    return l;
}

int64_t
fl_lease_id(const struct fl_lease *l)
{
    return l->id;
}

void
fl_lease_free(struct fl_lease *l, bool revoke)
{
    if (l == NULL)
        return;
    if (l->dead != NULL)
        *l->dead = true;
    fl_etcd_cancel(l->e, l);
    if (revoke && l->id != 0)
        fl_etcd_lease_revoke(l->e, l->id, NULL, NULL);
    *l->pprev = l->next;
    if (l->next != NULL)
        l->next->pprev = l->pprev;
    event_free(l->timer);
    free(l);
}

void
fl_lease_free_all(struct fl_etcd *e)
{
    while (e->leases != NULL)
        fl_lease_free(e->leases, false);
}
