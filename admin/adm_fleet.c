/* admin/adm_fleet.c -- fleet mode: the rollout state kept in etcd, shared by every instance under
 * fleet.prefix, applied as it changes and changed only by compare-and-swap (docs/fleet.md). */
#include "admin/adm.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "fleet/fl.h"

/*
 * The keys, under fleet.prefix:
 *   state            the rollout state: a first line "by NAME WALL_MS", then the state file's
 *                    text without the audit trail, a ramp's progress written as 0 (every instance
 *                    computes it from the schedule and the clock);
 *   members/NAME     each instance, under its lease: the revision of state it applied, its
 *                    routing epoch, whether it is in step.
 *
 * A change made here (a command, the guard, a ramp that ends or pauses) is applied at once, then
 * written with a compare-and-swap on the revision of state this instance last applied; the admin
 * client's reply waits for the outcome. Lost to another instance's write, the change is undone by
 * applying the winner's state, and the reply is an error naming the winner. Without etcd, changes
 * are refused before they run (fleet.local_fallback: rollback is still accepted, here, and
 * written once etcd is back).
 */

#define ADM_FLEET_RESULTS 32 /* commits whose outcome a held reply may still ask for */
/* An instance's member key is written at most this often: each change would otherwise cost one
 * write per instance (50 for a fleet of 50) on top of its own, all at once. */
#define ADM_FLEET_REGISTER_MS 500
#define ADM_FLEET_ERROR       200

struct adm_fleet_member {
    char name[64];
    int64_t revision;
    char epoch[17];
    char note[48]; /* "ok", "local changes", "etcd unreachable" */
    long pid;
};

struct adm_fleet_result {
    uint64_t gen;                /* the commit covered the changes up to this generation */
    char error[ADM_FLEET_ERROR]; /* "" when it was written */
};

struct adm_fleet {
    struct adm_state *st; /* borrowed: the state it belongs to */
    const struct cfg_fleet *conf;
    struct fl_etcd *etcd;
    struct fl_watch *watch;
    struct fl_lease *lease;
    struct event *ev_retry;    /* owned: the first read again, a second after it failed */
    struct event *ev_register; /* owned: the member key written, ADM_FLEET_REGISTER_MS later */
    char *key_state, *key_members, *key_self; /* owned */
    size_t key_members_len;
    /* The state in etcd this instance applied: its revision (0: etcd has none yet), who wrote it,
     * and this instance's own text for it (what adm_fleet_text gives right after applying it: a
     * local text that differs is a local change). */
    int64_t rev;
    char by[64];
    int64_t by_ms;
    char *mine;    /* owned; NULL before the first sync */
    char *pending; /* owned: the text of the commit in flight */
    bool synced;   /* the first read of the prefix is done */
    bool syncing;  /* ... and under way */
    /* etcd's reachability as the client last said it. */
    bool up;
    int64_t down_ms; /* wall clock when it was lost; 0 while up */
    char down_why[160];
    /* The commit in flight (one at a time) and the changes since. */
    bool committing;
    uint64_t gen;         /* the generation of the latest local change */
    uint64_t commit_upto; /* the generation the commit in flight covers */
    uint64_t done_gen;    /* every change up to it has its outcome */
    bool local_only;      /* a rollback made without etcd (local_fallback) waits to be written */
    bool leaving;         /* stopping: the lease's revoke waits for its answer */
    bool adopted_seed;    /* the state adm_fleet_adopt applied last had a seed line */
    struct adm_fleet_result results[ADM_FLEET_RESULTS];
    size_t n_results; /* ring: the latest at (n_results - 1) % ADM_FLEET_RESULTS */
    /* What the other instances say, from members/ (this one included). */
    struct adm_fleet_member *members;
    size_t n_members;
};

static void adm_fleet_register(struct adm_fleet *f);

static int64_t
adm_fleet_wall_ms(const struct adm_fleet *f)
{
    return f->st->wall_ms();
}

/* ------------------------------------------------------------------ the epoch */

void
adm_fleet_epoch(struct adm_state *st, const struct bal_snapshot *s, char out[17])
{
    XXH3_state_t *h = XXH3_createState();
    const struct cfg_split *sp = s->split;
    const struct adm_ramp *r = &st->ramp;
    uint64_t v;

    if (h == NULL) {
        snprintf(out, 17, "%s", "0000000000000000");
        return;
    }
    XXH3_64bits_reset(h);
    XXH3_64bits_update(h, &s->seed_hash, sizeof(s->seed_hash));
    if (r->state == ADM_RAMP_RUNNING) {
        /* The weight is the schedule's at each moment: instances with the same schedule (and
         * clocks in step) route alike all along it. */
        int64_t sched[5] = {r->from_bp, r->to_bp, r->step_bp, r->start_ms + adm_state_wall_off(st),
                            (int64_t)r->duration_ms};

        XXH3_64bits_update(h, sched, sizeof(sched));
    } else {
        XXH3_64bits_update(h, &s->weight_bp, sizeof(s->weight_bp));
    }
    for (size_t i = 0; sp != NULL && i < sp->n_keys; i++) {
        int kind = (int)sp->keys[i].kind;

        XXH3_64bits_update(h, &kind, sizeof(kind));
        if (sp->keys[i].name != NULL)
            XXH3_64bits_update(h, sp->keys[i].name, strlen(sp->keys[i].name) + 1);
    }
    for (size_t i = 0; i < bal_pins_count(s->pins); i++) {
        const char *key;
        size_t len;
        int side = (int)bal_pins_get(s->pins, i, &key, &len);

        XXH3_64bits_update(h, &side, sizeof(side));
        XXH3_64bits_update(h, &len, sizeof(len));
        XXH3_64bits_update(h, key, len);
    }
    v = XXH3_64bits_digest(h);
    XXH3_freeState(h);
    snprintf(out, 17, "%016" PRIx64, v);
}

/* The seed hash in force. */
static uint64_t
adm_fleet_seed(const struct adm_fleet *f)
{
    struct bal_snapshot *s = bal_router_acquire(f->st->router);
    uint64_t h = s->seed_hash;

    bal_snapshot_unref(s);
    return h;
}

static void
adm_fleet_epoch_now(const struct adm_fleet *f, char out[17])
{
    struct bal_snapshot *s = bal_router_acquire(f->st->router);

    adm_fleet_epoch(f->st, s, out);
    bal_snapshot_unref(s);
}

/* ------------------------------------------------------------------ outcomes of commits */

static void
adm_fleet_outcome(struct adm_fleet *f, uint64_t upto, const char *error)
{
    struct adm_fleet_result *r = &f->results[f->n_results % ADM_FLEET_RESULTS];

    r->gen = upto;
    snprintf(r->error, sizeof(r->error), "%s", error != NULL ? error : "");
    f->n_results++;
    if (upto > f->done_gen)
        f->done_gen = upto;
    if (f->st->released != NULL)
        f->st->released(f->st->released_arg);
}

bool
adm_fleet_done(const struct adm_state *st, uint64_t gen, const char **error)
{
    const struct adm_fleet *f = st->fleet;
    size_t first;

    *error = NULL;
    if (f == NULL || gen == 0)
        return true;
    if (gen > f->done_gen)
        return false;
    /* The oldest commit that covered it says how it went. */
    first = f->n_results > ADM_FLEET_RESULTS ? f->n_results - ADM_FLEET_RESULTS : 0;
    for (size_t i = first; i < f->n_results; i++) {
        const struct adm_fleet_result *r = &f->results[i % ADM_FLEET_RESULTS];

        if (r->gen >= gen) {
            *error = r->error[0] != '\0' ? r->error : NULL;
            return true;
        }
    }
    return true;
}

/* ------------------------------------------------------------------ the text */

/* The state as the fleet shares it (malloc'd, *len bytes; NULL when out of memory). */
static char *
adm_fleet_text(struct adm_fleet *f, size_t *len)
{
    return adm_state_text_for(f->st, ADM_TEXT_FLEET, len);
}

/* The value written to etcd: "by NAME WALL_MS" and the text (malloc'd). */
static char *
adm_fleet_value(const struct adm_fleet *f, const char *text, size_t len, size_t *out_len)
{
    char head[128];
    int n = snprintf(head, sizeof(head), "by %s %lld\n", f->conf->name,
                     (long long)adm_fleet_wall_ms(f));
    char *v = malloc((size_t)n + len + 1);

    if (v == NULL)
        return NULL;
    memcpy(v, head, (size_t)n);
    memcpy(v + n, text, len);
    v[(size_t)n + len] = '\0';
    *out_len = (size_t)n + len;
    return v;
}

/* Splits a value into who wrote it and the text. 0, or -1 when its first line is not "by". */
static int
adm_fleet_split(const char *v, size_t len, char *by, size_t by_size, int64_t *by_ms,
                const char **text, size_t *text_len)
{
    const char *nl = memchr(v, '\n', len);
    char line[128];
    long long ms;
    char name[64];

    if (nl == NULL || (size_t)(nl - v) >= sizeof(line))
        return -1;
    memcpy(line, v, (size_t)(nl - v));
    line[nl - v] = '\0';
    if (sscanf(line, "by %63s %lld", name, &ms) != 2)
        return -1;
    snprintf(by, by_size, "%s", name);
    *by_ms = ms;
    *text = nl + 1;
    *text_len = len - (size_t)(nl + 1 - v);
    return 0;
}

/* "edge-2 at 2026-12-06 21:40:03 UTC" */
static const char *
adm_fleet_who(const char *by, int64_t ms, char *buf, size_t size)
{
    char t[32];

    snprintf(buf, size, "%s at %s", by[0] != '\0' ? by : "?",
             adm_time_text((time_t)(ms / 1000), t, sizeof(t)));
    return buf;
}

/* ------------------------------------------------------------------ applying etcd's state */

/*
 * Applies the state `v` (a value of the state key, at revision rev) to this instance. Returns 0,
 * or -1 when it cannot be read (logged; this instance keeps what it has).
 */
static int
adm_fleet_adopt(struct adm_fleet *f, const char *v, size_t len, int64_t rev)
{
    struct adm_persist *p = calloc(1, sizeof(*p));
    struct xf_err err = {{0}};
    char by[64], who[128], logged[256];
    const char *text;
    size_t text_len, mine_len;
    int64_t by_ms;
    char *mine;

    if (p == NULL)
        return -1;
    if (adm_fleet_split(v, len, by, sizeof(by), &by_ms, &text, &text_len) == -1 ||
        adm_persist_parse(text, text_len, "the fleet's state", p, &err) == -1) {
        XF_LOG(
            XF_LOG_ERR, "admin",
            "event=fleet_state_unreadable key=%s revision=%lld error=\"%s\" note=\"kept the "
            "state in force\"",
            f->key_state, (long long)rev,
            adm_log_text(err.msg[0] != '\0' ? err.msg : "no \"by\" line", logged, sizeof(logged)));
        free(p);
        /* The next change here is written over it (its compare-and-swap names this revision). */
        f->rev = rev;
        return -1;
    }
    snprintf(who, sizeof(who), "fleet: ");
    adm_fleet_who(by, by_ms, who + 7, sizeof(who) - 7);
    if (adm_state_apply(f->st, p, who) == -1) {
        adm_persist_fini(p);
        free(p);
        return -1;
    }
    f->adopted_seed = p->have_seed;
    adm_persist_fini(p);
    free(p);
    f->rev = rev;
    snprintf(f->by, sizeof(f->by), "%s", by);
    f->by_ms = by_ms;
    mine = adm_fleet_text(f, &mine_len);
    if (mine != NULL) {
        free(f->mine);
        f->mine = mine;
    }
    XF_LOG(XF_LOG_INFO, "admin", "event=fleet_state_applied revision=%lld by=%s", (long long)rev,
           by);
    adm_fleet_register(f);
    return 0;
}

/*
 * adm_fleet_adopt of a state another instance wrote (the watch, a catch-up; not the answer to
 * this instance's own write). A new seed from another instance supersedes a reload's seed not
 * taken here; a state without a seed line (written by hand) gets this instance's written.
 */
static void
adm_fleet_adopt_theirs(struct adm_fleet *f, const char *v, size_t len, int64_t rev)
{
    uint64_t before = adm_fleet_seed(f);

    if (adm_fleet_adopt(f, v, len, rev) == -1)
        return;
    if (adm_fleet_seed(f) != before)
        f->st->seed_untaken = false;
    if (!f->adopted_seed) {
        free(f->mine); /* differs from etcd's: the next look writes it */
        f->mine = NULL;
        adm_fleet_changed(f->st);
    }
}

/* A change etcd did not take: the state this instance last had from etcd comes back. */
static void
adm_fleet_undo(struct adm_fleet *f)
{
    if (f->mine != NULL)
        (void)adm_state_apply_text(f->st, f->mine, strlen(f->mine),
                                   "fleet: undone, etcd did not "
                                   "take it");
}

/* ------------------------------------------------------------------ members */

static void
adm_fleet_member_parse(struct adm_fleet_member *m, const char *name, size_t name_len, const char *v,
                       size_t len)
{
    char text[256];
    long long rev = 0;
    long pid = 0;
    char epoch[17] = "?", note[48] = "?";
    char *line, *save = NULL;

    memset(m, 0, sizeof(*m));
    snprintf(m->name, sizeof(m->name), "%.*s", (int)XF_MIN(name_len, sizeof(m->name) - 1), name);
    snprintf(text, sizeof(text), "%.*s", (int)XF_MIN(len, sizeof(text) - 1), v);
    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        if (sscanf(line, "revision %lld", &rev) == 1 || sscanf(line, "pid %ld", &pid) == 1 ||
            sscanf(line, "epoch %16s", epoch) == 1)
            continue;
        if (strncmp(line, "state ", 6) == 0)
            snprintf(note, sizeof(note), "%s", line + 6);
    }
    m->revision = rev;
    m->pid = pid;
    snprintf(m->epoch, sizeof(m->epoch), "%s", epoch);
    snprintf(m->note, sizeof(m->note), "%s", note);
}

/* A member key was written (v != NULL) or deleted. */
static void
adm_fleet_member_update(struct adm_fleet *f, const char *key, size_t key_len, const char *v,
                        size_t len)
{
    const char *name = key + f->key_members_len;
    size_t name_len = key_len - f->key_members_len, i;
    struct adm_fleet_member m, *grown;

    if (name_len == 0 || name_len >= sizeof(m.name))
        return;
    for (i = 0; i < f->n_members; i++)
        if (strlen(f->members[i].name) == name_len &&
            memcmp(f->members[i].name, name, name_len) == 0)
            break;
    if (v == NULL) {
        if (i < f->n_members) {
            f->members[i] = f->members[f->n_members - 1];
            f->n_members--;
        }
        /* This instance's own key gone while it runs (deleted by hand, or by the revoke of a
         * process it took over from): it is written again. */
        if (name_len == strlen(f->conf->name) && memcmp(name, f->conf->name, name_len) == 0 &&
            f->lease != NULL)
            adm_fleet_register(f);
        return;
    }
    adm_fleet_member_parse(&m, name, name_len, v, len);
    if (i == f->n_members) {
        grown = realloc(f->members, (f->n_members + 1) * sizeof(*grown));
        if (grown == NULL)
            return;
        f->members = grown;
        f->n_members++;
    }
    f->members[i] = m;
}

/* This instance's member key: what it applied and how it routes, under its lease. */
static void
adm_fleet_register_now(struct adm_fleet *f)
{
    char v[256], epoch[17];
    int64_t lease = f->lease != NULL ? fl_lease_id(f->lease) : 0;
    int n;

    if (lease == 0 || !f->up)
        return;
    adm_fleet_epoch_now(f, epoch);
    n = snprintf(v, sizeof(v), "revision %lld\nepoch %s\nstate %s\npid %ld\nversion %s\n",
                 (long long)f->rev, epoch,
                 f->local_only ? "local changes not in etcd" : (f->synced ? "ok" : "starting"),
                 (long)getpid(), XF_VERSION);
    (void)fl_etcd_put(f->etcd, f->key_self, strlen(f->key_self), v, (size_t)n, lease, NULL, NULL);
}

static void
adm_fleet_on_register(evutil_socket_t fd, short what, void *arg)
{
    XF_UNUSED(fd);
    XF_UNUSED(what);
    adm_fleet_register_now(arg);
}

/* The member key is written soon, once for the changes of the next ADM_FLEET_REGISTER_MS. */
static void
adm_fleet_register(struct adm_fleet *f)
{
    static const struct timeval soon = {0, ADM_FLEET_REGISTER_MS * 1000};

    if (!evtimer_pending(f->ev_register, NULL))
        evtimer_add(f->ev_register, &soon);
}

static void
adm_fleet_on_lease(void *arg, enum fl_lease_state state, int64_t id, const char *why)
{
    struct adm_fleet *f = arg;

    if (state == FL_LEASE_LOST) {
        XF_LOG(XF_LOG_WARN, "admin", "event=fleet_lease_lost lease=%lld reason=\"%s\"",
               (long long)id, why != NULL ? why : "-");
        return;
    }
    adm_fleet_register_now(f); /* a new lease: the key went with the old one */
}

/* ------------------------------------------------------------------ the watch */

static void
adm_fleet_on_events(void *arg, const struct fl_event *evs, size_t n, int64_t revision)
{
    struct adm_fleet *f = arg;

    XF_UNUSED(revision);
    for (size_t i = 0; i < n; i++) {
        const struct fl_kv *kv = &evs[i].kv;

        if (kv->key_len == strlen(f->key_state) &&
            memcmp(kv->key, f->key_state, kv->key_len) == 0) {
            /* While a commit is in flight, its answer says what etcd holds (its own write, or the
             * winner's): the event is not applied twice. */
            if (evs[i].type == FL_EVENT_PUT && kv->mod_revision > f->rev && !f->committing) {
                adm_fleet_adopt_theirs(f, kv->value, kv->value_len, kv->mod_revision);
            } else if (evs[i].type == FL_EVENT_DELETE && !f->committing) {
                /* Deleted by hand: etcd has none; this instance's state is written again (the
                 * instances race, the losers take the winner's). */
                XF_LOG(XF_LOG_WARN, "admin",
                       "event=fleet_state_deleted revision=%lld note=\"writing it again\"",
                       (long long)kv->mod_revision);
                f->rev = 0;
                free(f->mine);
                f->mine = NULL;
                adm_fleet_changed(f->st);
            }
            continue;
        }
        if (kv->key_len > f->key_members_len &&
            memcmp(kv->key, f->key_members, f->key_members_len) == 0)
            adm_fleet_member_update(f, kv->key, kv->key_len,
                                    evs[i].type == FL_EVENT_PUT ? kv->value : NULL, kv->value_len);
    }
}

static void adm_fleet_sync(struct adm_fleet *f);

static void
adm_fleet_on_compacted(void *arg, int64_t compact_revision)
{
    struct adm_fleet *f = arg;

    XF_LOG(XF_LOG_WARN, "admin",
           "event=fleet_watch_compacted revision=%lld note=\"reading the state again\"",
           (long long)compact_revision);
    f->synced = false;
    adm_fleet_sync(f);
}

/* ------------------------------------------------------------------ the first read */

static void
adm_fleet_on_sync(void *arg, const struct fl_result *res, const char *error)
{
    struct adm_fleet *f = arg;
    const struct fl_kv *state = NULL;

    f->syncing = false;
    if (res == NULL) {
        /* The client retries on other endpoints itself; this is after its deadline. */
        static const struct timeval second = {1, 0};

        XF_LOG(XF_LOG_WARN, "admin", "event=fleet_sync_failed error=\"%s\" note=\"retrying\"",
               error);
        evtimer_add(f->ev_retry, &second);
        return;
    }
    free(f->members);
    f->members = NULL;
    f->n_members = 0;
    for (size_t i = 0; i < res->n_kvs; i++) {
        const struct fl_kv *kv = &res->kvs[i];

        if (kv->key_len == strlen(f->key_state) && memcmp(kv->key, f->key_state, kv->key_len) == 0)
            state = kv;
        else if (kv->key_len > f->key_members_len &&
                 memcmp(kv->key, f->key_members, f->key_members_len) == 0)
            adm_fleet_member_update(f, kv->key, kv->key_len, kv->value, kv->value_len);
    }
    f->synced = true;
    if (state != NULL && state->mod_revision != f->rev) {
        adm_fleet_adopt_theirs(f, state->value, state->value_len, state->mod_revision);
        if (f->local_only) /* a rollback made without etcd stands over what came meanwhile */
            adm_state_rollback(f->st, "fleet: rollback made while etcd was unreachable");
    } else if (state == NULL) {
        f->rev = 0; /* etcd has none: this instance's state becomes the fleet's */
        free(f->mine);
        f->mine = NULL;
    }
    if (f->watch == NULL) {
        static const struct fl_watch_cbs cbs = {adm_fleet_on_events, adm_fleet_on_compacted};

        f->watch = fl_watch_new(f->etcd, f->conf->prefix, strlen(f->conf->prefix), FL_PREFIX,
                                res->revision + 1, &cbs, f);
    } else {
        fl_watch_restart(f->watch, res->revision + 1);
    }
    adm_fleet_register(f);
    /* A local change (etcd had none, or a rollback made without it) goes to etcd now. */
    adm_fleet_changed(f->st);
}

static void
adm_fleet_on_retry(evutil_socket_t fd, short what, void *arg)
{
    XF_UNUSED(fd);
    XF_UNUSED(what);
    adm_fleet_sync(arg);
}

static void
adm_fleet_sync(struct adm_fleet *f)
{
    if (f->syncing || evtimer_pending(f->ev_retry, NULL))
        return;
    f->syncing = true;
    if (fl_etcd_get(f->etcd, f->conf->prefix, strlen(f->conf->prefix), FL_PREFIX, adm_fleet_on_sync,
                    f) == -1)
        f->syncing = false;
}

/* ------------------------------------------------------------------ commits */

static void
adm_fleet_on_commit(void *arg, const struct fl_result *res, const char *error)
{
    struct adm_fleet *f = arg;
    /* A write that fails undoes every change made here since the state etcd had: those made
     * while it was in flight too (they stood on it). */
    uint64_t upto = f->commit_upto, all = f->gen;
    char msg[ADM_FLEET_ERROR], who[128];

    f->committing = false;
    if (res == NULL) {
        /* etcd did not answer: the change is undone (the state etcd had goes back in force),
         * unless it is the rollback local_fallback accepts. */
        snprintf(msg, sizeof(msg),
                 "etcd did not take the change (%s): it is undone; the fleet's state stays in "
                 "force",
                 error);
        XF_LOG(XF_LOG_WARN, "admin", "event=fleet_commit_failed error=\"%s\"", error);
        if (f->local_only) {
            adm_fleet_outcome(f, all, NULL);
            return;
        }
        free(f->pending);
        f->pending = NULL;
        adm_fleet_undo(f);
        adm_fleet_outcome(f, all, msg);
        return;
    }
    if (res->succeeded) {
        f->rev = res->revision;
        snprintf(f->by, sizeof(f->by), "%s", f->conf->name);
        f->by_ms = adm_fleet_wall_ms(f);
        f->local_only = false;
        /* What was committed is the text of generation `upto`; a later change is compared with
         * it and committed next. */
        free(f->mine);
        f->mine = f->pending;
        f->pending = NULL;
        XF_LOG(XF_LOG_INFO, "admin", "event=fleet_state_written revision=%lld", (long long)f->rev);
        if (f->st->seed_untaken && adm_fleet_seed(f) == bal_seed_hash(f->st->cfg->split.seed))
            f->st->seed_untaken = false; /* the reload's new seed is the fleet's */
        adm_fleet_outcome(f, upto, NULL);
        adm_fleet_register(f);
        adm_fleet_changed(f->st); /* changes made while this one was in flight */
        return;
    }
    /* Another instance wrote first: its state wins, this change is undone. */
    free(f->pending);
    f->pending = NULL;
    if (res->n_kvs == 1) {
        const struct fl_kv *kv = &res->kvs[0];
        char by[64];
        int64_t by_ms;
        const char *text;
        size_t text_len;

        if (adm_fleet_split(kv->value, kv->value_len, by, sizeof(by), &by_ms, &text, &text_len) ==
            0)
            adm_fleet_who(by, by_ms, who, sizeof(who));
        else
            snprintf(who, sizeof(who), "another instance");
        adm_fleet_adopt(f, kv->value, kv->value_len, kv->mod_revision);
    } else {
        snprintf(who, sizeof(who), "another instance (it deleted the state)");
        adm_fleet_sync(f);
    }
    if (f->local_only) {
        /* A rollback made without etcd stands over whatever came meanwhile: it is made again. */
        XF_LOG(XF_LOG_WARN, "admin",
               "event=fleet_local_rollback_reapplied note=\"changed by %s while etcd was "
               "unreachable\"",
               who);
        adm_state_rollback(f->st, "fleet local_fallback");
        adm_fleet_outcome(f, all, NULL);
        adm_fleet_changed(f->st);
        return;
    }
    snprintf(msg, sizeof(msg), "changed by %s, retry", who);
    adm_fleet_outcome(f, all, msg);
}

/* Out of memory before the write could go: the changes waiting are undone and told so (a
 * reply must not wait for an answer that will never come). */
static void
adm_fleet_cannot_write(struct adm_fleet *f)
{
    XF_LOG(XF_LOG_ERR, "admin", "event=fleet_write_failed reason=out_of_memory");
    if (f->gen > f->done_gen) {
        adm_fleet_undo(f);
        adm_fleet_outcome(f, f->gen, "out of memory writing to etcd: the change is undone");
    }
}

void
adm_fleet_changed(struct adm_state *st)
{
    struct adm_fleet *f = st->fleet;
    struct fl_put put;
    size_t len, vlen;
    char *text, *value;

    if (f == NULL || f->committing)
        return;
    if (!f->synced || !f->up) {
        /* etcd went away after the command was let through: undone, unless it is the rollback
         * local_fallback accepts (written once etcd is back). */
        if (f->gen > f->done_gen) {
            if (f->local_only) {
                adm_fleet_register(f);
                adm_fleet_outcome(f, f->gen, NULL);
            } else {
                adm_fleet_undo(f);
                adm_fleet_outcome(f, f->gen,
                                  "etcd became unreachable: the change is undone; the fleet's "
                                  "state stays in force");
            }
        }
        return;
    }
    text = adm_fleet_text(f, &len);
    if (text == NULL) {
        adm_fleet_cannot_write(f);
        return;
    }
    if (f->mine != NULL && strcmp(text, f->mine) == 0 && f->rev != 0) {
        free(text);
        if (f->gen > f->done_gen)
            adm_fleet_outcome(f, f->gen, NULL); /* nothing left to write */
        return;
    }
    value = adm_fleet_value(f, text, len, &vlen);
    if (value == NULL) {
        free(text);
        adm_fleet_cannot_write(f);
        return;
    }
    put = (struct fl_put){f->key_state, strlen(f->key_state), value, vlen, 0};
    if (f->gen == f->done_gen)
        f->gen++; /* an automatic change (a ramp's end, the guard): nobody waits for it */
    f->commit_upto = f->gen;
    if (fl_etcd_cas(f->etcd, f->rev, &put, 1, adm_fleet_on_commit, f) == -1) {
        free(value);
        free(text);
        adm_fleet_cannot_write(f);
        return;
    }
    free(value);
    free(f->pending);
    f->pending = text;
    f->committing = true;
}

/* ------------------------------------------------------------------ refusals */

const char *
adm_fleet_refuse(struct adm_state *st, bool rollback)
{
    struct adm_fleet *f = st->fleet;
    static char why[320];
    char t[32];

    if (f == NULL || (f->up && f->synced))
        return NULL;
    if (rollback && f->conf->local_fallback) {
        f->local_only = true;
        return NULL;
    }
    adm_fleet_sync(f); /* etcd may be back: the next try finds out */
    if (!f->synced && f->up)
        return "fleet mode: the fleet's state is being read from etcd; retry in a moment";
    snprintf(why, sizeof(why),
             "fleet mode: etcd is unreachable since %s (%s): changes are refused until it is "
             "back%s",
             adm_time_text((time_t)(f->down_ms / 1000), t, sizeof(t)), f->down_why,
             f->conf->local_fallback ? "; rollback is accepted here (local_fallback)"
                                     : "; fleet.local_fallback: true would accept rollback here");
    return why;
}

bool
adm_fleet_writable(const struct adm_state *st)
{
    return st->fleet == NULL || (st->fleet->up && st->fleet->synced);
}

/* A command that changes the state is about to run: the generation its reply waits for. */
uint64_t
adm_fleet_begin(struct adm_state *st)
{
    struct adm_fleet *f = st->fleet;

    if (f == NULL)
        return 0;
    return ++f->gen;
}

/* ------------------------------------------------------------------ life */

static void
adm_fleet_on_conn(void *arg, const char *what, bool up, const char *endpoint, const char *why)
{
    struct adm_fleet *f = arg;

    if (strcmp(what, "kv") != 0) {
        /* The watch is back before any request went: ask, so that changes are let through as
         * soon as etcd answers. */
        if (up && !f->up)
            adm_fleet_sync(f);
        return;
    }
    if (up == f->up)
        return;
    f->up = up;
    if (up) {
        f->down_ms = 0;
        XF_LOG(XF_LOG_INFO, "admin", "event=fleet_etcd_up endpoint=%s", endpoint);
        f->synced = false;
        adm_fleet_sync(f); /* catch up, then write what changed here meanwhile */
        return;
    }
    f->down_ms = adm_fleet_wall_ms(f);
    snprintf(f->down_why, sizeof(f->down_why), "%s: %s", endpoint, why != NULL ? why : "-");
    XF_LOG(XF_LOG_WARN, "admin",
           "event=fleet_etcd_down endpoint=%s error=\"%s\" note=\"routing goes on with the last "
           "state; changes are refused until etcd is back\"",
           endpoint, why != NULL ? why : "-");
}

static char *
adm_fleet_key(const char *prefix, const char *rest, const char *name)
{
    size_t n = strlen(prefix) + strlen(rest) + (name != NULL ? strlen(name) : 0) + 1;
    char *k = malloc(n);

    if (k != NULL)
        snprintf(k, n, "%s%s%s", prefix, rest, name != NULL ? name : "");
    return k;
}

int
adm_fleet_start(struct adm_state *st, struct event_base *base, struct xf_err *err)
{
    const struct cfg_fleet *conf = &st->cfg->fleet;
    struct fl_etcd_opts opts = {0};
    struct adm_fleet *f;

    if (!conf->configured)
        return 0;
    f = calloc(1, sizeof(*f));
    if (f == NULL) {
        xf_err_set(err, "fleet: out of memory");
        return -1;
    }
    f->st = st;
    f->conf = conf;
    f->up = true; /* until the client says otherwise */
    f->key_state = adm_fleet_key(conf->prefix, "state", NULL);
    f->key_members = adm_fleet_key(conf->prefix, "members/", NULL);
    f->key_self = adm_fleet_key(conf->prefix, "members/", conf->name);
    if (f->key_state == NULL || f->key_members == NULL || f->key_self == NULL) {
        xf_err_set(err, "fleet: out of memory");
        goto fail;
    }
    f->key_members_len = strlen(f->key_members);
    f->ev_retry = evtimer_new(base, adm_fleet_on_retry, f);
    f->ev_register = evtimer_new(base, adm_fleet_on_register, f);
    if (f->ev_retry == NULL || f->ev_register == NULL) {
        xf_err_set(err, "fleet: out of memory");
        goto fail;
    }
    opts.timeout_ms = conf->timeout_ms;
    opts.conn_cb = adm_fleet_on_conn;
    opts.conn_arg = f;
    f->etcd = fl_etcd_new(base, (const char *const *)conf->etcd, conf->n_etcd, &opts, err);
    if (f->etcd == NULL)
        goto fail;
    f->lease = fl_lease_new(f->etcd, XF_MAX(conf->lease_ms / 1000, 2u), adm_fleet_on_lease, f);
    if (f->lease == NULL) {
        xf_err_set(err, "fleet: out of memory");
        goto fail;
    }
    st->fleet = f;
    adm_state_epoch(st);
    adm_fleet_sync(f);
    XF_LOG(XF_LOG_INFO, "admin", "event=fleet_start name=%s prefix=%s etcd=%s", conf->name,
           conf->prefix, conf->etcd[0]);
    return 0;
fail:
    st->fleet = f;
    adm_fleet_stop(st);
    return -1;
}

/* fl_result_fn of the revoke at stop. */
static void
adm_fleet_on_left(void *arg, const struct fl_result *res, const char *error)
{
    struct adm_fleet *f = arg;

    if (res == NULL)
        XF_LOG(XF_LOG_WARN, "admin",
               "event=fleet_leave_failed error=\"%s\" note=\"the member key goes when its lease "
               "runs out\"",
               error != NULL ? error : "-");
    f->leaving = false;
    if (f->st->left != NULL)
        f->st->left(f->st->left_arg);
}

void
adm_fleet_leave(struct adm_state *st)
{
    struct adm_fleet *f = st->fleet;
    int64_t id;

    if (f == NULL || f->lease == NULL)
        return;
    XF_LOG(XF_LOG_INFO, "admin",
           "event=fleet_leave name=%s note=\"stopping: the member key goes with the lease\"",
           f->conf->name);
    evtimer_del(f->ev_register);
    id = fl_lease_id(f->lease);
    fl_lease_free(f->lease, false);
    f->lease = NULL; /* adm_fleet_register_now writes nothing without one */
    if (id != 0 && fl_etcd_lease_revoke(f->etcd, id, adm_fleet_on_left, f) == 0)
        f->leaving = true;
}

bool
adm_fleet_leaving(const struct adm_state *st)
{
    return st->fleet != NULL && st->fleet->leaving;
}

void
adm_fleet_stop(struct adm_state *st)
{
    struct adm_fleet *f = st->fleet;

    if (f == NULL)
        return;
    if (f->ev_retry != NULL)
        event_free(f->ev_retry);
    if (f->ev_register != NULL)
        event_free(f->ev_register);
    fl_watch_free(f->watch);
    fl_lease_free(f->lease, true);
    fl_etcd_free(f->etcd);
    free(f->key_state);
    free(f->key_members);
    free(f->key_self);
    free(f->mine);
    free(f->pending);
    free(f->members);
    free(f);
    st->fleet = NULL;
}

/* ------------------------------------------------------------------ /metrics */

void
adm_fleet_metrics(struct adm_state *st, struct evbuffer *b)
{
    struct adm_fleet *f = st->fleet;
    char epoch[17];
    unsigned in_step = 0;

    if (f == NULL)
        return;
    adm_fleet_epoch_now(f, epoch);
    for (size_t i = 0; i < f->n_members; i++)
        in_step += f->members[i].revision >= f->rev && strcmp(f->members[i].epoch, epoch) == 0;
    adm_http_family(b, "fleet_info", "gauge",
                    "Fleet mode: this instance's name and routing epoch (equal epochs route every "
                    "client alike).");
    evbuffer_add_printf(b, "crossfade_fleet_info{name=\"%s\",epoch=\"%s\"} 1\n", f->conf->name,
                        epoch);
    adm_http_family(b, "fleet_state_revision", "gauge",
                    "The etcd revision of the shared state this instance applied (0: none yet).");
    evbuffer_add_printf(b, "crossfade_fleet_state_revision %lld\n", (long long)f->rev);
    adm_http_family(b, "fleet_etcd_up", "gauge", "1 while etcd answers this instance.");
    evbuffer_add_printf(b, "crossfade_fleet_etcd_up %d\n", f->up && f->synced);
    adm_http_family(b, "fleet_members", "gauge",
                    "Instances listed under the prefix, and those in step with this one.");
    evbuffer_add_printf(b, "crossfade_fleet_members{state=\"listed\"} %zu\n", f->n_members);
    evbuffer_add_printf(b, "crossfade_fleet_members{state=\"in_step\"} %u\n", in_step);
}

/* ------------------------------------------------------------------ show fleet */

/* "seed HASH (split.seed here)" or "seed HASH (the fleet's: split.seed here differs, HASH)". */
static void
adm_fleet_seed_line(const struct adm_fleet *f, struct adm_reply *r)
{
    struct bal_snapshot *s = bal_router_acquire(f->st->router);
    uint64_t mine = bal_seed_hash(f->st->cfg->split.seed);

    if (s->seed_hash == mine)
        adm_reply_line(r, "seed %016" PRIx64 " (split.seed here)", s->seed_hash);
    else
        adm_reply_line(r,
                       "seed %016" PRIx64 " (the fleet's: split.seed here differs, %016" PRIx64
                       "; a reload that changes it writes it for the fleet)",
                       s->seed_hash, mine);
    bal_snapshot_unref(s);
}

enum adm_result
adm_cmd_show_fleet(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                   struct adm_reply *r)
{
    struct adm_fleet *f = st->fleet;
    char t[32], epoch[17], who[128];

    XF_UNUSED(peer);
    XF_UNUSED(a);
    if (f == NULL) {
        adm_reply_line(r, "fleet off (this instance's state is its own: docs/fleet.md)");
        return ADM_OK;
    }
    adm_fleet_epoch_now(f, epoch);
    adm_reply_line(r, "fleet %s as %s", f->conf->prefix, f->conf->name);
    if (f->up)
        adm_reply_line(r, "etcd up %s", fl_etcd_endpoint(f->etcd));
    else
        adm_reply_line(r, "etcd unreachable since %s: %s",
                       adm_time_text((time_t)(f->down_ms / 1000), t, sizeof(t)), f->down_why);
    if (!f->synced)
        adm_reply_line(r, "state not read from etcd yet%s",
                       f->rev != 0 ? "" : " (routing by the state file or the config)");
    else if (f->rev == 0)
        adm_reply_line(r, "state none in etcd yet (this instance's is written with the next "
                          "change)");
    else
        adm_reply_line(r, "state revision %lld by %s", (long long)f->rev,
                       adm_fleet_who(f->by, f->by_ms, who, sizeof(who)));
    if (f->local_only)
        adm_reply_line(r, "local a rollback made without etcd waits to be written");
    if (f->committing)
        adm_reply_line(r, "writing a change to etcd");
    adm_reply_line(r, "epoch %s", epoch);
    adm_fleet_seed_line(f, r);
    for (size_t i = 0; i < f->n_members; i++) {
        const struct adm_fleet_member *m = &f->members[i];
        const char *verdict = "in step";

        if (m->revision < f->rev)
            verdict = "lagging";
        else if (strcmp(m->epoch, epoch) != 0)
            verdict = "routes differently";
        adm_reply_line(r, "member %s revision %lld epoch %s pid %ld %s: %s", m->name,
                       (long long)m->revision, m->epoch, m->pid, m->note, verdict);
    }
    return ADM_OK;
}
