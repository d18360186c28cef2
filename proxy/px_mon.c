/* proxy/px_mon.c -- what the control thread keeps of the workers' counters: each second taken
 * once it is over (the guard, the status page, show stats), the preview, the nodes' counters. */
#include "proxy/px.h"

#include <stdlib.h>

/* Takes the seconds that are over from every worker. */
static void
px_mon_harvest(struct px_ctl *ctl)
{
    const struct xf_stats *w[CFG_WORKERS_MAX];
    struct bal_snapshot *snap = bal_router_acquire(ctl->router);

    for (unsigned i = 0; i < ctl->n_workers; i++)
        w[i] = ctl->workers[i]->stats;
    xf_mon_harvest(ctl->mon, w, ctl->n_workers, xf_now_ms() / 1000u, snap->weight_bp, xf_wall_ms());
    bal_snapshot_unref(snap);
}

static void
px_mon_on_tick(evutil_socket_t fd, short what, void *arg)
{
    XF_UNUSED(fd);
    XF_UNUSED(what);
    px_mon_harvest(arg);
}

int
px_mon_start(struct px_ctl *ctl, struct xf_err *err)
{
    struct timeval second = {1, 0};

    ctl->mon = calloc(1, sizeof(*ctl->mon));
    ctl->ev_mon = event_new(ctl->base, -1, EV_PERSIST, px_mon_on_tick, ctl);
    if (ctl->mon == NULL || ctl->ev_mon == NULL || event_add(ctl->ev_mon, &second) == -1) {
        xf_err_set(err, "out of memory setting up the counters' history");
        return -1;
    }
    return 0;
}

void
px_mon_stop(struct px_ctl *ctl)
{
    if (ctl->ev_mon != NULL)
        event_free(ctl->ev_mon);
    ctl->ev_mon = NULL;
    free(ctl->mon);
    ctl->mon = NULL;
}

const struct xf_mon *
px_ctl_mon(void *arg)
{
    struct px_ctl *ctl = arg;

    px_mon_harvest(ctl);
    return ctl->mon;
}

int
px_ctl_preview(void *arg, unsigned from_bp, unsigned to_bp, struct xf_preview_sum *out)
{
    struct px_ctl *ctl = arg;
    const struct xf_preview *p[CFG_WORKERS_MAX];

    for (unsigned i = 0; i < ctl->n_workers; i++)
        p[i] = ctl->workers[i]->preview;
    return xf_preview_sum(p, ctl->n_workers, xf_now_ms() / 1000u, from_bp, to_bp, out);
}

int
px_ctl_node_stats(void *arg, uint32_t id, struct xf_node_stats *out)
{
    struct px_ctl *ctl = arg;
    bool known = false;

    for (unsigned i = 0; i < ctl->n_workers; i++) {
        const struct px_usage *u = __atomic_load_n(&ctl->workers[i]->usage_pub, __ATOMIC_ACQUIRE);

        if (u == NULL || id >= u->n)
            continue;
        known = true;
        xf_node_stats_merge(out, &u->ns[id]);
    }
    return known ? 0 : -1;
}
