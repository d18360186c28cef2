/* admin/adm_state.c -- what the commands share: start-up from the config or the state file,
 * saving every change to the state file, and `show state`. */
#include "admin/adm.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int64_t
adm_state_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "on since 2026-11-30T04:59:04Z" or "off". */
static const char *
adm_state_freeze_text(bool on, int64_t since, char *buf, size_t size)
{
    char t[32];

    if (on)
        snprintf(buf, size, "on since %s", adm_time_text((time_t)since, t, sizeof(t)));
    else
        snprintf(buf, size, "off");
    return buf;
}

/* The weight, the freeze and the pins of `p` into a snapshot not published yet (p's pins move). */
static void
adm_state_take(struct bal_snapshot *next, struct adm_persist *p)
{
    next->weight_bp = p->weight_bp;
    next->freeze = p->freeze;
    next->freeze_since = p->freeze_since;
    bal_pins_unref(next->pins);
    next->pins = p->pins; /* the reference moves to the snapshot */
    p->pins = NULL;
}

/*
 * Fleet mode: the seed `p` carries (the fleet's) into a snapshot not published yet, recorded as
 * made by `who`. The fleet's seed wins over split.seed: a config that differs is said once, when
 * the seed in force changes. Standalone, split.seed rules and `p`'s seed is not applied.
 */
static void
adm_state_take_seed(struct adm_state *st, struct bal_snapshot *next, const struct adm_persist *p,
                    const char *who)
{
    char a[20], b[20];
    uint64_t mine;

    if (!p->have_seed || !st->cfg->fleet.configured || next->seed_hash == p->seed_hash)
        return;
    snprintf(a, sizeof(a), "%016" PRIx64, next->seed_hash);
    snprintf(b, sizeof(b), "%016" PRIx64, p->seed_hash);
    adm_events_add(&st->events, -1, -1, who, "seed", a, b);
    next->seed_hash = p->seed_hash;
    mine = bal_seed_hash(st->cfg->split.seed);
    if (mine != p->seed_hash)
        XF_LOG(XF_LOG_WARN, "admin",
               "event=fleet_seed_differs fleet_seed=%s config_seed=%016" PRIx64
               " note=\"split.seed in this configuration differs from the fleet's: the fleet's is "
               "in force; a reload that changes split.seed writes the new one for the fleet\"",
               b, mine);
    else
        XF_LOG(XF_LOG_INFO, "admin", "event=fleet_seed_changed from=%s to=%s by=\"%s\"", a, b, who);
}

/*
 * Publishes what a state file holds (weight, freeze, pins) and takes over its ramp, each change
 * recorded as made by "state file". Returns 0, or -1 when out of memory (nothing changed).
 */
static int
adm_state_restore(struct adm_state *st, struct adm_persist *p)
{
    struct bal_snapshot *next = adm_snapshot_begin(st);
    char a[64], b[64], w[ADM_WEIGHT_TEXT], ramp[64];

    if (next == NULL)
        return -1;
    if (next->weight_bp != p->weight_bp)
        adm_events_add(&st->events, -1, -1, "state file", "weight",
                       adm_weight_text(next->weight_bp, a), adm_weight_text(p->weight_bp, b));
    if (p->freeze)
        adm_events_add(&st->events, -1, -1, "state file", "freeze", "off",
                       adm_state_freeze_text(true, p->freeze_since, b, sizeof(b)));
    if (bal_pins_count(p->pins) > 0) {
        snprintf(b, sizeof(b), "%zu", bal_pins_count(p->pins));
        adm_events_add(&st->events, -1, -1, "state file", "pins", "0", b);
    }
    if (p->n_nodes > 0) {
        int applied = adm_node_apply(next, p->nodes, p->n_nodes);

        if (applied == -1) {
            bal_snapshot_unref(next);
            return -1;
        }
        snprintf(b, sizeof(b), "%d of %zu applied", applied, p->n_nodes);
        adm_events_add(&st->events, -1, -1, "state file", "node changes", "-", b);
    }
    adm_state_take_seed(st, next, p, "state file");
    adm_state_take(next, p);
    bal_router_publish(st->router, next);
    ramp[0] = '\0';
    if (p->have_guard && st->cfg->guard.configured) {
        st->guard.on = p->guard_on;
        st->guard.tripped = p->guard_tripped;
        if (p->guard_tripped)
            snprintf(st->guard.trip, sizeof(st->guard.trip),
                     "tripped before the restart (show events has why)");
    }
    if (p->ramp.state != ADM_RAMP_NONE) {
        st->ramp = p->ramp;
        adm_ramp_rebase(&st->ramp, st->wall_ms(), (int64_t)st->mono_ms());
        st->ramp.last_step_ms = (int64_t)st->mono_ms();
        st->ramp.guard_held_ms = 0;
        snprintf(ramp, sizeof(ramp), "%s to %s",
                 st->ramp.state == ADM_RAMP_PAUSED ? "paused" : "running",
                 adm_weight_text(st->ramp.to_bp, w));
        adm_events_add(&st->events, -1, -1, "state file", "ramp", "-", ramp);
    }
    XF_LOG(XF_LOG_INFO, "admin",
           "event=state_loaded path=%s weight=%s freeze=%s pins=%zu node_changes=%zu ramp=\"%s\"",
           st->cfg->state_file, adm_weight_text(p->weight_bp, w), p->freeze ? "on" : "off",
           bal_pins_count(next->pins), p->n_nodes, ramp[0] != '\0' ? ramp : "-");
    return 0;
}

/*
 * State written for another cluster layout (the file's nodes changed: added, removed, clusters
 * swapped) would apply a weight and node changes meant for other nodes. It is renamed aside,
 * said, recorded, and the configuration's values apply.
 */
static void
adm_state_set_aside(struct adm_state *st, const struct adm_persist *p, const char *now)
{
    const char *path = st->cfg->state_file;
    char aside[1100], to[ADM_EVENT_VALUE], logged[2][ADM_LAYOUT_MAX];

    snprintf(aside, sizeof(aside), "%s.stale", path);
    if (rename(path, aside) == -1) {
        XF_LOG(XF_LOG_ERR, "admin", "event=state_file_keep_failed path=%s as=%s error=\"%s\"", path,
               aside, strerror(errno));
        snprintf(aside, sizeof(aside), "(not renamed: %s)", strerror(errno));
    }
    snprintf(st->load_error, sizeof(st->load_error),
             "written for the layout %s, the configuration has %s; set aside as %s", p->layout, now,
             aside);
    XF_LOG(XF_LOG_WARN, "admin",
           "event=state_file_stale path=%s file_layout=\"%s\" config_layout=\"%s\" as=%s "
           "note=\"the clusters' nodes changed in the configuration: its weight, pins, freeze, "
           "ramp and node changes are not applied; the configuration's values are\"",
           path, adm_log_text(p->layout, logged[0], sizeof(logged[0])),
           adm_log_text(now, logged[1], sizeof(logged[1])), aside);
    snprintf(to, sizeof(to), "set aside as %.180s: starting from the configuration", aside);
    adm_events_add(&st->events, -1, -1, "state file", "layout", p->layout, to);
}

/*
 * Reads the state file at start-up: the audit trail it holds comes back first, then the start is
 * recorded, then what it holds is applied when it was written for the configuration's layout. An
 * unusable file is logged, left alone, and ignored; a stale one is set aside.
 */
static int
adm_state_load(struct adm_state *st, const char *start_weight, struct xf_err *err)
{
    const char *path = st->cfg->state_file;
    struct adm_persist *p = calloc(1, sizeof(*p));
    struct xf_err e = {{0}};
    char logged[sizeof(e.msg) * 2], *now = malloc(ADM_LAYOUT_MAX);

    if (p == NULL || now == NULL) {
        free(p);
        free(now);
        xf_err_set(err, "admin: out of memory");
        return -1;
    }
    adm_layout(st->cfg, now, ADM_LAYOUT_MAX);
    st->loaded = adm_persist_load(path, p, &e);
    for (size_t i = 0; st->loaded == ADM_LOAD_OK && i < p->n_events; i++)
        adm_events_restore(&st->events, &p->events[i]);
    adm_events_add(&st->events, -1, -1, "start", "weight", "-", start_weight);
    if (st->loaded == ADM_LOAD_OK && p->layout[0] != '\0' && strcmp(p->layout, now) != 0)
        st->loaded = ADM_LOAD_STALE;
    switch (st->loaded) {
    case ADM_LOAD_MISSING:
        XF_LOG(XF_LOG_INFO, "admin",
               "event=state_file_missing path=%s note=\"starting from the "
               "config\"",
               path);
        break;
    case ADM_LOAD_BAD:
        snprintf(st->load_error, sizeof(st->load_error), "%s", e.msg);
        XF_LOG(XF_LOG_ERR, "admin",
               "event=state_file_unusable path=%s error=\"%s\" note=\"starting from the config; "
               "the file is left as it is until the next change, which first renames it to "
               "%s.corrupt\"",
               path, adm_log_text(e.msg, logged, sizeof(logged)), path);
        break;
    case ADM_LOAD_STALE:
        adm_state_set_aside(st, p, now);
        break;
    case ADM_LOAD_OK:
        if (p->layout[0] == '\0')
            XF_LOG(XF_LOG_WARN, "admin",
                   "event=state_file_without_layout path=%s note=\"written by an older crossfade: "
                   "applied as it is; the next change records the layout\"",
                   path);
        if (adm_state_restore(st, p) == -1) {
            adm_persist_fini(p);
            free(p);
            free(now);
            xf_err_set(err, "admin: out of memory");
            return -1;
        }
        break;
    }
    adm_persist_fini(p);
    free(p);
    free(now);
    st->saver = adm_saver_new(path, st->loaded == ADM_LOAD_BAD, err);
    return st->saver != NULL ? 0 : -1;
}

/*
 * The state a process taking over was handed (crossfade --takeover): applied whatever the layout
 * (the weight in force must survive a binary upgrade; node changes that no longer fit are
 * skipped), recorded, and written to the state file at once, for the new configuration's layout.
 */
static int
adm_state_inherit(struct adm_state *st, struct xf_err *err)
{
    struct adm_persist *p = calloc(1, sizeof(*p));
    struct xf_err e = {{0}};
    char from[32], to[32];

    if (p == NULL) {
        xf_err_set(err, "admin: out of memory");
        return -1;
    }
    if (adm_persist_parse(st->inherit, st->inherit_len, "the state handed over", p, &e) == -1) {
        xf_err_set(err, "%s", e.msg);
        free(p);
        return -1;
    }
    for (size_t i = 0; i < p->n_events; i++)
        adm_events_restore(&st->events, &p->events[i]);
    snprintf(from, sizeof(from), "pid %ld", st->inherit_pid);
    snprintf(to, sizeof(to), "pid %ld", (long)getpid());
    adm_events_add(&st->events, -1, -1, "takeover", "process", from, to);
    if (adm_state_restore(st, p) == -1) {
        adm_persist_fini(p);
        free(p);
        xf_err_set(err, "admin: out of memory");
        return -1;
    }
    adm_persist_fini(p);
    free(p);
    st->loaded = ADM_LOAD_OK;
    if (st->cfg->state_file != NULL) {
        st->saver = adm_saver_new(st->cfg->state_file, false, err);
        if (st->saver == NULL)
            return -1;
    }
    st->dirty = true; /* the file gets this process's layout with the next save, at once */
    return 0;
}

int
adm_state_init(struct adm_state *st, const struct cfg *cfg, struct bal_router *router,
               struct event_base *base, struct xf_err *err)
{
    return adm_state_init_from(st, cfg, router, base, NULL, 0, 0, err);
}

int
adm_state_init_from(struct adm_state *st, const struct cfg *cfg, struct bal_router *router,
                    struct event_base *base, const char *inherit, size_t inherit_len,
                    long inherit_pid, struct xf_err *err)
{
    struct bal_snapshot *snap;
    char w[ADM_WEIGHT_TEXT];

    memset(st, 0, sizeof(*st));
    st->inherit = inherit;
    st->inherit_len = inherit_len;
    st->inherit_pid = inherit_pid;
    st->cfg = cfg;
    st->router = router;
    st->base = base;
    st->started = time(NULL);
    st->started_ms = xf_now_ms();
    st->mono_ms = xf_now_ms;
    st->wall_ms = adm_state_wall_ms;
    st->reply = evbuffer_new();
    if (st->reply == NULL ||
        (base != NULL && (st->ramp_timer = evtimer_new(base, adm_ramp_on_timer, st)) == NULL)) {
        xf_err_set(err, "admin: out of memory");
        adm_state_fini(st);
        return -1;
    }
    st->report = calloc(1, sizeof(*st->report));
    if (st->report == NULL || adm_guard_init(st) == -1) {
        xf_err_set(err, "admin: out of memory starting the guard");
        adm_state_fini(st);
        return -1;
    }
    snap = bal_router_acquire(router);
    adm_weight_text(snap->weight_bp, w);
    bal_snapshot_unref(snap);
    if (inherit != NULL) {
        if (adm_state_inherit(st, err) == -1) {
            adm_state_fini(st);
            return -1;
        }
        st->inherit = NULL;
        adm_ramp_tick(st); /* the ramp goes on where the old process left it */
        adm_state_changed(st);
        return 0;
    }
    if (cfg->state_file == NULL)
        adm_events_add(&st->events, -1, -1, "start", "weight", "-", w);
    if (cfg->state_file != NULL) {
        if (adm_state_load(st, w, err) == -1) {
            adm_state_fini(st);
            return -1;
        }
        /* A running ramp catches up with its schedule (steps due while crossfade was down). */
        adm_ramp_tick(st);
    }
    /* What start-up recorded is written with the first change, not before: a file set aside or
     * unusable stays as it was until someone changes something. */
    st->saved_seq = st->events.seq;
    return 0;
}

void
adm_state_fini(struct adm_state *st)
{
    adm_fleet_stop(st);
    if (st->ramp_timer != NULL)
        event_free(st->ramp_timer);
    st->ramp_timer = NULL;
    adm_guard_fini(st);
    free(st->report);
    st->report = NULL;
    adm_saver_free(st->saver); /* writes the last text first */
    st->saver = NULL;
    if (st->reply != NULL)
        evbuffer_free(st->reply);
    st->reply = NULL;
}

char *
adm_state_text(struct adm_state *st, size_t *len)
{
    return adm_state_text_for(st, ADM_TEXT_FILE, len);
}

/* wall minus monotonic ms, taken once: the fleet's ramp times convert with it both ways, so that
 * writing the same ramp twice gives the same text. */
int64_t
adm_state_wall_off(struct adm_state *st)
{
    if (st->ramp_wall_off == 0)
        st->ramp_wall_off = st->wall_ms() - (int64_t)st->mono_ms();
    return st->ramp_wall_off;
}

char *
adm_state_text_for(struct adm_state *st, enum adm_text_form form, size_t *len)
{
    struct adm_persist p;
    struct bal_snapshot *snap = bal_router_acquire(st->router);
    struct evbuffer *buf;
    char *text;

    memset(&p, 0, sizeof(p));
    adm_layout(st->cfg, p.layout, sizeof(p.layout));
    p.weight_bp = snap->weight_bp;
    p.freeze = snap->freeze;
    p.freeze_since = snap->freeze_since;
    p.pins = snap->pins; /* borrowed for the formatting only */
    p.ramp = st->ramp;
    if (form == ADM_TEXT_FLEET) {
        /* Each instance takes the steps by the schedule and its clock: the progress is not
         * shared (a step would be a write). */
        adm_ramp_rebase(&p.ramp, 0, adm_state_wall_off(st));
        if (p.ramp.state == ADM_RAMP_RUNNING) {
            p.ramp.done = 0;
            p.weight_bp = adm_ramp_weight_at(&p.ramp, 0);
        }
    } else {
        adm_ramp_rebase(&p.ramp, (int64_t)st->mono_ms(), st->wall_ms());
    }
    p.guard_on = st->guard.on;
    p.guard_tripped = st->guard.tripped;
    p.have_seed = st->cfg->fleet.configured;
    p.seed_hash = snap->seed_hash;
    p.events =
        st->events.n > 0 && form == ADM_TEXT_FILE ? calloc(st->events.n, sizeof(*p.events)) : NULL;
    if (adm_node_diff(st->cfg, snap, &p.nodes, &p.n_nodes) == -1 ||
        (st->events.n > 0 && form == ADM_TEXT_FILE && p.events == NULL)) {
        free(p.nodes);
        free(p.events);
        bal_snapshot_unref(snap);
        return NULL;
    }
    for (size_t i = 0; p.events != NULL && i < st->events.n; i++)
        p.events[p.n_events++] = *adm_events_get(&st->events, i);
    buf = evbuffer_new();
    if (buf != NULL)
        adm_persist_format(&p, buf);
    free(p.nodes);
    free(p.events);
    bal_snapshot_unref(snap);
    *len = buf != NULL ? evbuffer_get_length(buf) : 0;
    text = buf != NULL ? malloc(*len + 1) : NULL;
    if (text != NULL) {
        evbuffer_remove(buf, text, *len);
        text[*len] = '\0';
    }
    if (buf != NULL)
        evbuffer_free(buf);
    return text;
}

void
adm_state_save(struct adm_state *st)
{
    size_t len;
    char *text;

    /* Once a new process took the state over, the state file is its to write. */
    if (st->saver == NULL || st->handover)
        return;
    text = adm_state_text(st, &len);
    if (text == NULL) {
        XF_LOG(XF_LOG_ERR, "admin", "event=state_file_write_failed error=\"out of memory\"");
        return;
    }
    st->saved_seq = st->events.seq;
    st->dirty = false;
    st->exec_gen = adm_saver_submit(st->saver, text, len);
}

void
adm_state_epoch(struct adm_state *st)
{
    struct bal_snapshot *cur, *next;
    char epoch[17];

    if (!st->cfg->fleet.configured)
        return;
    cur = bal_router_acquire(st->router);
    adm_fleet_epoch(st, cur, epoch);
    next = strcmp(epoch, cur->epoch) != 0 ? adm_snapshot_begin(st) : NULL;
    bal_snapshot_unref(cur);
    if (next != NULL)
        adm_publish(st, next);
}

void
adm_state_changed(struct adm_state *st)
{
    adm_state_epoch(st);
    if (st->dirty || st->events.seq != st->saved_seq)
        adm_state_save(st);
    if (!st->applying)
        adm_fleet_changed(st);
}

/* The ramp of `p` (times on the wall clock) takes the place of the one in force. */
static void
adm_state_apply_ramp(struct adm_state *st, const struct adm_persist *p, const char *who)
{
    char was[64] = "-", now[64] = "-";

    if (st->ramp.state != ADM_RAMP_NONE)
        adm_ramp_text(&st->ramp, was, sizeof(was));
    if (p->ramp.state != ADM_RAMP_NONE)
        adm_ramp_text(&p->ramp, now, sizeof(now));
    if (p->ramp.state == ADM_RAMP_NONE) {
        if (st->ramp.state != ADM_RAMP_NONE) {
            st->ramp.state = ADM_RAMP_NONE;
            if (st->ramp_timer != NULL)
                evtimer_del(st->ramp_timer);
            adm_events_add(&st->events, -1, -1, who, "ramp", was, "none");
        }
        return;
    }
    if (strcmp(was, now) != 0)
        adm_events_add(&st->events, -1, -1, who, "ramp", was, now);
    st->ramp = p->ramp;
    adm_ramp_rebase(&st->ramp, adm_state_wall_off(st), 0);
    /* The steps due by now are taken from the weight the ramp started from: its progress is not
     * in the fleet's text (0), and adm_ramp_tick catches up. */
    st->ramp.last_step_ms = (int64_t)st->mono_ms();
    st->ramp.guard_held_ms = 0;
}

int
adm_state_apply(struct adm_state *st, struct adm_persist *p, const char *who)
{
    struct bal_snapshot *next = adm_snapshot_begin(st);
    char a[64], b[64], layout[ADM_LAYOUT_MAX];
    bool same_layout;
    size_t pins_before;

    if (next == NULL)
        return -1;
    same_layout =
        p->layout[0] != '\0' && strcmp(p->layout, adm_layout(st->cfg, layout, sizeof(layout))) == 0;
    if (same_layout) {
        int changed = adm_node_apply_to(st, next, p->nodes, p->n_nodes);

        if (changed == -1) {
            bal_snapshot_unref(next);
            return -1;
        }
        if (changed > 0) {
            snprintf(b, sizeof(b), "%d nodes changed", changed);
            adm_events_add(&st->events, -1, -1, who, "nodes", "-", b);
        }
    } else if (p->n_nodes > 0) {
        XF_LOG(XF_LOG_WARN, "admin",
               "event=fleet_nodes_skipped changes=%zu reason=\"written for another layout of the "
               "clusters (the configs differ)\"",
               p->n_nodes);
    }
    if (next->weight_bp != p->weight_bp)
        adm_events_add(&st->events, -1, -1, who, "weight", adm_weight_text(next->weight_bp, a),
                       adm_weight_text(p->weight_bp, b));
    if (next->freeze != p->freeze)
        adm_events_add(&st->events, -1, -1, who, "freeze",
                       adm_state_freeze_text(next->freeze, next->freeze_since, a, sizeof(a)),
                       adm_state_freeze_text(p->freeze, p->freeze_since, b, sizeof(b)));
    pins_before = bal_pins_count(next->pins);
    if (pins_before != bal_pins_count(p->pins)) {
        snprintf(a, sizeof(a), "%zu", pins_before);
        snprintf(b, sizeof(b), "%zu", bal_pins_count(p->pins));
        adm_events_add(&st->events, -1, -1, who, "pins", a, b);
    }
    adm_state_take_seed(st, next, p, who);
    adm_state_take(next, p);
    st->applying = true;
    adm_state_apply_ramp(st, p, who); /* before the publish: the epoch it carries counts it */
    adm_publish(st, next);
    if (p->have_guard && st->cfg->guard.configured) {
        if (p->guard_tripped && !st->guard.tripped)
            snprintf(st->guard.trip, sizeof(st->guard.trip), "tripped on another instance (%s)",
                     who);
        st->guard.on = p->guard_on;
        st->guard.tripped = p->guard_tripped;
    }
    adm_ramp_tick(st);
    adm_state_changed(st); /* the state file gets it; not a change of this instance's own */
    st->applying = false;
    return 0;
}

int
adm_state_apply_text(struct adm_state *st, const char *text, size_t len, const char *who)
{
    struct adm_persist p;
    struct xf_err err = {{0}};
    int rc;

    if (adm_persist_parse(text, len, "state", &p, &err) == -1) {
        XF_LOG(XF_LOG_ERR, "admin", "event=state_apply_failed error=\"%s\"", err.msg);
        return -1;
    }
    rc = adm_state_apply(st, &p, who);
    adm_persist_fini(&p);
    return rc;
}

void
adm_state_rollback(struct adm_state *st, const char *who)
{
    unsigned old, to;

    (void)adm_ramp_stop(st, -1, -1, who, &to);
    if (adm_weight_apply(st, -1, -1, who, 0, &old) == -1)
        XF_LOG(XF_LOG_ERR, "admin", "event=rollback_failed reason=out_of_memory who=\"%s\"", who);
    st->dirty = true;
}

enum adm_result
adm_cmd_show_state(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                   struct adm_reply *r)
{
    struct adm_saver_status s;
    char t[32];

    XF_UNUSED(peer);
    XF_UNUSED(a);
    if (st->saver == NULL) {
        adm_reply_line(r, "state_file off (changes are lost when crossfade stops)");
        return ADM_OK;
    }
    adm_reply_line(r, "state_file %s", st->cfg->state_file);
    switch (st->loaded) {
    case ADM_LOAD_MISSING:
        adm_reply_line(r, "at_start missing: started from the config");
        break;
    case ADM_LOAD_OK:
        adm_reply_line(r, "at_start loaded");
        break;
    case ADM_LOAD_BAD:
        adm_reply_line(r, "at_start unusable: started from the config: %s", st->load_error);
        break;
    case ADM_LOAD_STALE:
        adm_reply_line(r, "at_start stale: started from the config: %s", st->load_error);
        break;
    }
    adm_saver_status(st->saver, &s);
    adm_reply_line(r, "changes %llu, written %llu", (unsigned long long)s.submitted,
                   (unsigned long long)s.written);
    if (s.ok_wall_ms > 0)
        adm_reply_line(r, "saved %s", adm_time_text((time_t)(s.ok_wall_ms / 1000), t, sizeof(t)));
    else
        adm_reply_line(r, "saved never");
    if (s.error_wall_ms > 0)
        adm_reply_line(r, "last_error %s %s",
                       adm_time_text((time_t)(s.error_wall_ms / 1000), t, sizeof(t)), s.error);
    return ADM_OK;
}
