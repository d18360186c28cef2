/* admin/adm_node.c -- the node commands: show, add, set weight, drain, enable, delete; and the
 * node changes the state file keeps against the config. */
#include "admin/adm.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The cluster named by a span ("x" or "y"); 0, or -1. */
static int
adm_node_cluster(struct adm_span s, enum cfg_cluster_id *c)
{
    if (adm_span_is(s, "x"))
        *c = CFG_CLUSTER_X;
    else if (adm_span_is(s, "y"))
        *c = CFG_CLUSTER_Y;
    else
        return -1;
    return 0;
}

/* A node weight: digits only, 0..ADM_NODE_WEIGHT_MAX; 0, or -1. */
static int
adm_node_weight(struct adm_span s, unsigned *w)
{
    unsigned v = 0;

    if (s.len == 0 || s.len > 4)
        return -1;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s.ptr[i] - '0');
    }
    if (v > ADM_NODE_WEIGHT_MAX)
        return -1;
    *w = v;
    return 0;
}

/* The index of the node of cluster c whose address is `addr`; 0, or -1. */
static int
adm_node_index(const struct bal_snapshot *s, enum cfg_cluster_id c, const char *addr, size_t *i)
{
    const struct bal_cluster *cl = &s->clusters[c];

    for (size_t k = 0; k < cl->n_nodes; k++)
        if (strcmp(cl->nodes[k].addr.text, addr) == 0) {
            *i = k;
            return 0;
        }
    return -1;
}

/*
 * Parses CLUSTER/ADDRESS into c and addr (NUL-terminated, size 128); returns 0, or -1 with the
 * error reply written.
 */
static int
adm_node_ref(struct adm_span s, enum cfg_cluster_id *c, char *addr, size_t size,
             struct adm_reply *r)
{
    const char *slash = memchr(s.ptr, '/', s.len);
    char q[ADM_QUOTE_TEXT];
    struct adm_span cl;
    size_t alen;

    adm_quote(s.ptr, s.len, q, sizeof(q));
    if (slash == NULL) {
        adm_reply_error(r, "expected CLUSTER/ADDRESS (x/10.0.0.1:8000), got %s", q);
        return -1;
    }
    cl.ptr = s.ptr;
    cl.len = (size_t)(slash - s.ptr);
    if (adm_node_cluster(cl, c) == -1) {
        adm_reply_error(r, "unknown cluster %.*s in %s; expected x or y", (int)cl.len, cl.ptr, q);
        return -1;
    }
    alen = s.len - cl.len - 1;
    if (alen == 0 || alen >= size) {
        adm_reply_error(r, "expected CLUSTER/ADDRESS (x/10.0.0.1:8000), got %s", q);
        return -1;
    }
    memcpy(addr, slash + 1, alen);
    addr[alen] = '\0';
    return 0;
}

/* The active and idle columns of node `id`: numbers from node_info, or "-" "-". */
static void
adm_node_pool_columns(struct adm_state *st, uint32_t id, char *active, char *idle, size_t size)
{
    unsigned a = 0, i = 0, t = 0;

    if (st->node_info != NULL && st->node_info(st->node_info_arg, id, &a, &i, &t) == 0) {
        snprintf(active, size, "%u", a);
        snprintf(idle, size, "%u", i);
    } else {
        snprintf(active, size, "-");
        snprintf(idle, size, "-");
    }
}

/* What the health checks know of node `id`; check "-", no ejections and no note without them. */
static void
adm_node_health(struct adm_state *st, uint32_t id, struct adm_node_health *out)
{
    memset(out, 0, sizeof(*out));
    if (st->health_info == NULL || st->health_info(st->health_info_arg, id, out) == -1) {
        memset(out, 0, sizeof(*out)); /* what a callback left before it said no is not kept */
        snprintf(out->check, sizeof(out->check), "-");
        out->ejections = UINT_MAX;
        return;
    }
    out->check[sizeof(out->check) - 1] = '\0';
    out->note[sizeof(out->note) - 1] = '\0';
    if (out->check[0] == '\0')
        snprintf(out->check, sizeof(out->check), "-");
    /* One word, so that columns stay columns: blanks and control bytes become '?'. */
    for (char *p = out->check; *p != '\0'; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            *p = '?';
}

void
adm_node_note(struct adm_state *st, const struct bal_node *n, char *buf, size_t size)
{
    struct adm_node_health h;

    if (n->state != BAL_NODE_UP) {
        snprintf(buf, size, "%s by the operator", bal_node_state_name(n->state));
        return;
    }
    if (n->weight == 0) {
        snprintf(buf, size, "weight 0");
        return;
    }
    adm_node_health(st, n->id, &h);
    if (h.note[0] != '\0')
        snprintf(buf, size, "%s", h.note);
    else if (!bal_node_takes(n))
        snprintf(buf, size, "%s", bal_node_status_name(n));
    else
        buf[0] = '\0';
}

enum adm_result
adm_cmd_show_nodes(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                   struct adm_reply *r)
{
    struct bal_snapshot *snap = bal_router_acquire(st->router);

    XF_UNUSED(peer);
    XF_UNUSED(a);
    adm_reply_line(r, "cluster address weight state active idle check ejections note");
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++) {
        const struct bal_cluster *cl = &snap->clusters[c];

        for (size_t i = 0; i < cl->n_nodes; i++) {
            const struct bal_node *n = &cl->nodes[i];
            char active[16], idle[16], ejections[16], note[ADM_NODE_NOTE];
            struct adm_node_health h;

            adm_node_pool_columns(st, n->id, active, idle, sizeof(active));
            adm_node_health(st, n->id, &h);
            if (h.ejections == UINT_MAX)
                snprintf(ejections, sizeof(ejections), "-");
            else
                snprintf(ejections, sizeof(ejections), "%u", h.ejections);
            adm_node_note(st, n, note, sizeof(note));
            adm_reply_line(r, "%s %s %u %s %s %s %s %s %s", cfg_cluster_name(n->cluster),
                           n->addr.text, n->weight, bal_node_status_name(n), active, idle, h.check,
                           ejections, note[0] != '\0' ? note : "-");
        }
    }
    bal_snapshot_unref(snap);
    return ADM_OK;
}

enum adm_result
adm_cmd_show_tunnels(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                     struct adm_reply *r)
{
    struct bal_snapshot *snap = bal_router_acquire(st->router);
    unsigned total[CFG_CLUSTER_COUNT] = {0};

    XF_UNUSED(peer);
    XF_UNUSED(a);
    adm_reply_line(r, "cluster address tunnels");
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++) {
        const struct bal_cluster *cl = &snap->clusters[c];

        for (size_t i = 0; i < cl->n_nodes; i++) {
            const struct bal_node *n = &cl->nodes[i];
            unsigned active = 0, idle = 0, tunnels = 0;

            if (st->node_info != NULL)
                st->node_info(st->node_info_arg, n->id, &active, &idle, &tunnels);
            total[c] += tunnels;
            adm_reply_line(r, "%s %s %u", cfg_cluster_name(n->cluster), n->addr.text, tunnels);
        }
    }
    /* The totals count the tunnels of removed nodes too, still open while they close. */
    if (st->stats != NULL) {
        struct xf_stats *sum = calloc(1, sizeof(*sum));

        if (sum != NULL) {
            st->stats(st->stats_arg, sum);
            for (int c = 0; c < CFG_CLUSTER_COUNT; c++)
                total[c] = (unsigned)XF_MAX((uint64_t)total[c], sum->cluster[c].tunnels);
            free(sum);
        }
    }
    adm_reply_line(r, "total x=%u y=%u", total[CFG_CLUSTER_X], total[CFG_CLUSTER_Y]);
    bal_snapshot_unref(snap);
    return ADM_OK;
}

/* Publishes `next` (taken), records the change of node c/addr as made by `cmd` (the text of
 * the command line `a` when NULL), logs it. */
static void
adm_node_publish_as(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                    const char *cmd_text, struct bal_snapshot *next, enum cfg_cluster_id c,
                    const char *addr, const char *from, const char *to)
{
    char cmd[96], what[160], logged[256];

    if (cmd_text != NULL)
        snprintf(cmd, sizeof(cmd), "%s", cmd_text);
    else
        adm_command_text(a, cmd, sizeof(cmd));
    snprintf(what, sizeof(what), "node %s/%s", cfg_cluster_name(c), addr);
    adm_publish(st, next);
    adm_events_add(&st->events, peer->uid, peer->pid, cmd, what, from, to);
    XF_LOG(XF_LOG_INFO, "admin",
           "event=node_changed node=%s/%s from=\"%s\" to=\"%s\" uid=%ld pid=%ld cmd=\"%s\"",
           cfg_cluster_name(c), addr, from, to, peer->uid, peer->pid,
           adm_log_text(cmd, logged, sizeof(logged)));
}

static void
adm_node_publish(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                 struct bal_snapshot *next, enum cfg_cluster_id c, const char *addr,
                 const char *from, const char *to)
{
    adm_node_publish_as(st, peer, a, NULL, next, c, addr, from, to);
}

static enum adm_result
adm_node_unknown(struct adm_reply *r, enum cfg_cluster_id c, const char *addr)
{
    return adm_reply_error(r, "no node %s/%s; show nodes lists them", cfg_cluster_name(c), addr);
}

/* Adds node `addr` to cluster c with `weight` and answers; the command was parsed (and the
 * address resolved) already. */
static enum adm_result
adm_node_add(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
             const char *cmd, enum cfg_cluster_id c, const struct cfg_addr *addr, unsigned weight,
             struct adm_reply *r)
{
    struct xf_err err = {{0}};
    struct bal_snapshot *next;
    enum cfg_cluster_id other;
    char to[48];
    size_t i;

    next = adm_snapshot_begin(st);
    if (next == NULL)
        return adm_reply_error(r, "out of memory; nothing changed");
    if (bal_snapshot_find(next, addr->text, &other, &i) == 0) {
        bal_snapshot_unref(next);
        return adm_reply_error(r, "%s is already a node of %s", addr->text,
                               cfg_cluster_name(other));
    }
    if (bal_snapshot_add_node(next, c, addr, weight,
                              bal_snapshot_free_id(next, st->id_busy, st->id_busy_arg),
                              &err) == -1) {
        bal_snapshot_unref(next);
        return adm_reply_error(r, "%s; nothing changed", err.msg);
    }
    snprintf(to, sizeof(to), "weight %u up", weight);
    adm_node_publish_as(st, peer, a, cmd, next, c, addr->text, "-", to);
    if (st->cfg->clusters[c].health.enabled)
        adm_reply_line(r,
                       "ok: added node %s/%s weight %u; it takes requests once it passes %u "
                       "health checks (show nodes)",
                       cfg_cluster_name(c), addr->text, weight, st->cfg->clusters[c].health.rise);
    else
        adm_reply_line(r, "ok: added node %s/%s weight %u", cfg_cluster_name(c), addr->text,
                       weight);
    return ADM_OK;
}

/* An `add node` whose host name is being resolved off the loop (adm_node_on_resolved). */
struct adm_add_job {
    struct adm_state *st; /* borrowed */
    struct adm_peer peer;
    enum cfg_cluster_id cluster;
    unsigned weight;
    char text[128]; /* the address as typed */
    char cmd[96];   /* the command, as the audit trail keeps it */
};

/* cfg_resolved_fn of an `add node`: adds the node, or answers why not, to the client that waits. */
static void
adm_node_on_resolved(void *arg, const struct cfg_addr *addr, const char *error)
{
    struct adm_add_job *job = arg;
    struct adm_state *st = job->st;
    struct adm_reply r = {st->reply, false};
    char q[ADM_QUOTE_TEXT];

    evbuffer_drain(st->reply, evbuffer_get_length(st->reply));
    st->exec_gen = 0;
    if (addr == NULL)
        adm_reply_error(&r, "bad address %s: %s",
                        adm_quote(job->text, strlen(job->text), q, sizeof(q)), error);
    else
        adm_node_add(st, &job->peer, NULL, job->cmd, job->cluster, addr, job->weight, &r);
    adm_state_changed(st);
    evbuffer_add(st->reply, "\n", 1); /* the reply's end */
    if (st->job_done != NULL)
        st->job_done(st->job_done_arg, job, st->reply);
    free(job);
}

enum adm_result
adm_cmd_add_node(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                 struct adm_reply *r)
{
    struct xf_err err = {{0}};
    struct cfg_addr addr;
    enum cfg_cluster_id c;
    char q[ADM_QUOTE_TEXT], text[128];
    unsigned weight = 1;

    if (adm_node_cluster(a->v[2], &c) == -1)
        return adm_reply_error(r, "unknown cluster %s; expected x or y",
                               adm_quote(a->v[2].ptr, a->v[2].len, q, sizeof(q)));
    if (a->n == 5 || (a->n == 6 && !adm_span_is(a->v[4], "weight")))
        return adm_reply_error(r, "usage: add node CLUSTER ADDRESS [weight W]");
    if (a->n == 6 && adm_node_weight(a->v[5], &weight) == -1)
        return adm_reply_error(r, "weight must be an integer from 0 to %d, got %s",
                               ADM_NODE_WEIGHT_MAX,
                               adm_quote(a->v[5].ptr, a->v[5].len, q, sizeof(q)));
    if (a->v[3].len >= sizeof(text))
        return adm_reply_error(r, "bad address %s: too long",
                               adm_quote(a->v[3].ptr, a->v[3].len, q, sizeof(q)));
    memcpy(text, a->v[3].ptr, a->v[3].len);
    text[a->v[3].len] = '\0';
    if (st->resolver != NULL && cfg_addr_is_name(text)) {
        /* A host name: getaddrinfo may take seconds, which the proxy's loop must not wait. The
         * reply comes when the resolver thread answers (st->job_done). */
        struct adm_add_job *job = calloc(1, sizeof(*job));

        if (job == NULL)
            return adm_reply_error(r, "out of memory; nothing changed");
        job->st = st;
        job->peer = *peer;
        job->cluster = c;
        job->weight = weight;
        memcpy(job->text, text, sizeof(text));
        adm_command_text(a, job->cmd, sizeof(job->cmd));
        if (cfg_resolver_submit(st->resolver, text, adm_node_on_resolved, job) == -1) {
            free(job);
            return adm_reply_error(r, "too many host names being resolved; try again");
        }
        st->pending = job;
        return ADM_PENDING;
    }
    if (cfg_addr_parse(text, &addr, &err) == -1)
        return adm_reply_error(r, "bad address %s: %s",
                               adm_quote(a->v[3].ptr, a->v[3].len, q, sizeof(q)), err.msg);
    return adm_node_add(st, peer, a, NULL, c, &addr, weight, r);
}

/*
 * Finds the node named by a->v[2] in a fresh copy of the current snapshot: returns the copy with
 * *c, *i and addr set, or NULL with the error reply written.
 */
static struct bal_snapshot *
adm_node_begin(struct adm_state *st, const struct adm_args *a, struct adm_reply *r,
               enum cfg_cluster_id *c, size_t *i, char *addr, size_t size)
{
    struct bal_snapshot *next;

    if (adm_node_ref(a->v[2], c, addr, size, r) == -1)
        return NULL;
    next = adm_snapshot_begin(st);
    if (next == NULL) {
        adm_reply_error(r, "out of memory; nothing changed");
        return NULL;
    }
    if (adm_node_index(next, *c, addr, i) == -1) {
        bal_snapshot_unref(next);
        adm_node_unknown(r, *c, addr);
        return NULL;
    }
    return next;
}

enum adm_result
adm_cmd_set_node(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                 struct adm_reply *r)
{
    struct xf_err err = {{0}};
    struct bal_snapshot *next;
    enum cfg_cluster_id c;
    char addr[128], q[ADM_QUOTE_TEXT], from[48], to[48];
    unsigned weight, old;
    size_t i;

    if (!adm_span_is(a->v[3], "weight"))
        return adm_reply_error(r, "usage: set node CLUSTER/ADDRESS weight W");
    if (adm_node_weight(a->v[4], &weight) == -1)
        return adm_reply_error(r, "weight must be an integer from 0 to %d, got %s",
                               ADM_NODE_WEIGHT_MAX,
                               adm_quote(a->v[4].ptr, a->v[4].len, q, sizeof(q)));
    next = adm_node_begin(st, a, r, &c, &i, addr, sizeof(addr));
    if (next == NULL)
        return ADM_ERROR;
    old = next->clusters[c].nodes[i].weight;
    if (old == weight) {
        bal_snapshot_unref(next);
        adm_reply_line(r, "ok: node %s/%s weight %u (unchanged)", cfg_cluster_name(c), addr,
                       weight);
        return ADM_OK;
    }
    next->clusters[c].nodes[i].weight = weight;
    if (bal_snapshot_rebuild(next, &err) == -1) {
        bal_snapshot_unref(next);
        return adm_reply_error(r, "%s; nothing changed", err.msg);
    }
    snprintf(from, sizeof(from), "weight %u", old);
    snprintf(to, sizeof(to), "weight %u", weight);
    adm_node_publish(st, peer, a, next, c, addr, from, to);
    adm_reply_line(r, "ok: node %s/%s weight %u (was %u)", cfg_cluster_name(c), addr, weight, old);
    return ADM_OK;
}

/* Moves a node to `state`; answers "ok: node x/A draining (was up)". */
static enum adm_result
adm_node_set_state(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                   struct adm_reply *r, enum bal_node_state state)
{
    struct xf_err err = {{0}};
    struct bal_snapshot *next;
    enum cfg_cluster_id c;
    enum bal_node_state old;
    char addr[128];
    size_t i;

    next = adm_node_begin(st, a, r, &c, &i, addr, sizeof(addr));
    if (next == NULL)
        return ADM_ERROR;
    old = next->clusters[c].nodes[i].state;
    if (old == state) {
        bal_snapshot_unref(next);
        adm_reply_line(r, "ok: node %s/%s %s (unchanged)", cfg_cluster_name(c), addr,
                       bal_node_state_name(state));
        return ADM_OK;
    }
    next->clusters[c].nodes[i].state = state;
    if (bal_snapshot_rebuild(next, &err) == -1) {
        bal_snapshot_unref(next);
        return adm_reply_error(r, "%s; nothing changed", err.msg);
    }
    adm_node_publish(st, peer, a, next, c, addr, bal_node_state_name(old),
                     bal_node_state_name(state));
    adm_reply_line(r, "ok: node %s/%s %s (was %s)", cfg_cluster_name(c), addr,
                   bal_node_state_name(state), bal_node_state_name(old));
    return ADM_OK;
}

enum adm_result
adm_cmd_drain_node(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                   struct adm_reply *r)
{
    return adm_node_set_state(st, peer, a, r, BAL_NODE_DRAINING);
}

enum adm_result
adm_cmd_enable_node(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                    struct adm_reply *r)
{
    return adm_node_set_state(st, peer, a, r, BAL_NODE_UP);
}

enum adm_result
adm_cmd_del_node(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                 struct adm_reply *r)
{
    struct xf_err err = {{0}};
    struct bal_snapshot *next;
    enum cfg_cluster_id c;
    const struct bal_node *n;
    char addr[128], from[48];
    bool force = false;
    size_t i;

    if (a->n == 4) {
        if (!adm_span_is(a->v[3], "force"))
            return adm_reply_error(r, "usage: del node CLUSTER/ADDRESS [force]");
        force = true;
    }
    next = adm_node_begin(st, a, r, &c, &i, addr, sizeof(addr));
    if (next == NULL)
        return ADM_ERROR;
    if (next->clusters[c].n_nodes == 1 && !force) {
        bal_snapshot_unref(next);
        return adm_reply_error(r,
                               "%s/%s is the last node of %s: its requests would fail; "
                               "\"del node %s/%s force\" removes it anyway",
                               cfg_cluster_name(c), addr, cfg_cluster_name(c), cfg_cluster_name(c),
                               addr);
    }
    n = &next->clusters[c].nodes[i];
    snprintf(from, sizeof(from), "weight %u %s", n->weight, bal_node_state_name(n->state));
    if (bal_snapshot_del_node(next, c, i, &err) == -1) {
        bal_snapshot_unref(next);
        return adm_reply_error(r, "%s; nothing changed", err.msg);
    }
    adm_node_publish(st, peer, a, next, c, addr, from, "-");
    adm_reply_line(r, "ok: deleted node %s/%s", cfg_cluster_name(c), addr);
    return ADM_OK;
}

/* ------------------------------------------------------------------ the state file */

/* Appends one op to a growing array; 0, or -1 when out of memory. */
static int
adm_node_op_push(struct adm_node_op **ops, size_t *n, size_t *cap, const struct adm_node_op *op)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        struct adm_node_op *p = realloc(*ops, ncap * sizeof(*p));

        if (p == NULL)
            return -1;
        *ops = p;
        *cap = ncap;
    }
    (*ops)[(*n)++] = *op;
    return 0;
}

/* The config's node of cluster c at `addr`, or NULL. */
static const struct cfg_node *
adm_node_cfg(const struct cfg *cfg, enum cfg_cluster_id c, const char *addr)
{
    for (size_t i = 0; i < cfg->clusters[c].n_nodes; i++)
        if (strcmp(cfg->clusters[c].nodes[i].addr.text, addr) == 0)
            return &cfg->clusters[c].nodes[i];
    return NULL;
}

int
adm_node_diff(const struct cfg *cfg, const struct bal_snapshot *s, struct adm_node_op **ops,
              size_t *n)
{
    size_t cap = 0, k;

    *ops = NULL;
    *n = 0;
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++)
        for (size_t i = 0; i < cfg->clusters[c].n_nodes; i++) {
            const char *addr = cfg->clusters[c].nodes[i].addr.text;
            struct adm_node_op op = {.kind = ADM_NODE_OP_DEL, .cluster = c};

            if (adm_node_index(s, c, addr, &k) == 0)
                continue;
            snprintf(op.addr, sizeof(op.addr), "%s", addr);
            if (adm_node_op_push(ops, n, &cap, &op) == -1)
                goto fail;
        }
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++)
        for (size_t i = 0; i < s->clusters[c].n_nodes; i++) {
            const struct bal_node *bn = &s->clusters[c].nodes[i];
            const struct cfg_node *cn = adm_node_cfg(cfg, c, bn->addr.text);
            struct adm_node_op op = {.cluster = c, .weight = bn->weight, .state = bn->state};

            snprintf(op.addr, sizeof(op.addr), "%s", bn->addr.text);
            op.kind = cn == NULL ? ADM_NODE_OP_ADD : ADM_NODE_OP_WEIGHT;
            if ((cn == NULL || cn->weight != bn->weight) &&
                adm_node_op_push(ops, n, &cap, &op) == -1)
                goto fail;
            op.kind = ADM_NODE_OP_STATE;
            if (bn->state != BAL_NODE_UP && adm_node_op_push(ops, n, &cap, &op) == -1)
                goto fail;
        }
    return 0;
fail:
    XF_FREE(*ops);
    *n = 0;
    return -1;
}

int
adm_node_apply(struct bal_snapshot *s, const struct adm_node_op *ops, size_t n)
{
    struct xf_err err = {{0}};
    int applied = 0;

    for (size_t k = 0; k < n; k++) {
        const struct adm_node_op *op = &ops[k];
        const char *cl = cfg_cluster_name(op->cluster);
        enum cfg_cluster_id other;
        struct cfg_addr addr;
        size_t i;
        bool found = adm_node_index(s, op->cluster, op->addr, &i) == 0;

        switch (op->kind) {
        case ADM_NODE_OP_ADD:
            if (bal_snapshot_find(s, op->addr, &other, &i) == 0) {
                XF_LOG(XF_LOG_WARN, "admin",
                       "event=state_node_skipped change=add node=%s/%s reason=\"already a node "
                       "of %s\"",
                       cl, op->addr, cfg_cluster_name(other));
                continue;
            }
            if (cfg_addr_parse(op->addr, &addr, &err) == -1) {
                XF_LOG(XF_LOG_WARN, "admin",
                       "event=state_node_skipped change=add node=%s/%s reason=\"bad address\"", cl,
                       op->addr);
                continue;
            }
            /* At start-up: nothing holds an id yet. */
            if (bal_snapshot_add_node(s, op->cluster, &addr, op->weight,
                                      bal_snapshot_free_id(s, NULL, NULL), &err) == -1)
                return -1;
            break;
        case ADM_NODE_OP_DEL:
        case ADM_NODE_OP_WEIGHT:
        case ADM_NODE_OP_STATE:
            if (!found) {
                XF_LOG(XF_LOG_WARN, "admin",
                       "event=state_node_skipped node=%s/%s reason=\"not in the config\"", cl,
                       op->addr);
                continue;
            }
            if (op->kind == ADM_NODE_OP_DEL) {
                if (bal_snapshot_del_node(s, op->cluster, i, &err) == -1)
                    return -1;
            } else if (op->kind == ADM_NODE_OP_WEIGHT) {
                s->clusters[op->cluster].nodes[i].weight = op->weight;
            } else {
                s->clusters[op->cluster].nodes[i].state = op->state;
            }
            break;
        }
        applied++;
    }
    if (bal_snapshot_rebuild(s, &err) == -1)
        return -1;
    return applied;
}

int
adm_node_apply_to(struct adm_state *st, struct bal_snapshot *next, const struct adm_node_op *ops,
                  size_t n)
{
    struct xf_err err = {{0}};
    struct bal_snapshot *want = bal_snapshot_new(st->cfg, next, 0, &err);
    int changes = 0;

    /* What the nodes should be: the config's with the changes applied, ids aside. */
    if (want == NULL || adm_node_apply(want, ops, n) == -1) {
        bal_snapshot_unref(want);
        return -1;
    }
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++) {
        size_t k;

        /* Gone from the wanted set: deleted (from the end, so that indices hold). */
        for (size_t i = next->clusters[c].n_nodes; i-- > 0;) {
            if (adm_node_index(want, c, next->clusters[c].nodes[i].addr.text, &k) == 0)
                continue;
            if (bal_snapshot_del_node(next, c, i, &err) == -1)
                goto fail;
            changes++;
        }
        for (size_t i = 0; i < want->clusters[c].n_nodes; i++) {
            const struct bal_node *wn = &want->clusters[c].nodes[i];
            struct bal_node *nn;

            if (adm_node_index(next, c, wn->addr.text, &k) == -1) {
                enum cfg_cluster_id other;
                size_t j;

                /* Moved from the other cluster: leaves it first. */
                if (bal_snapshot_find(next, wn->addr.text, &other, &j) == 0 &&
                    bal_snapshot_del_node(next, other, j, &err) == -1)
                    goto fail;
                if (bal_snapshot_add_node(next, c, &wn->addr, wn->weight,
                                          bal_snapshot_free_id(next, st->id_busy, st->id_busy_arg),
                                          &err) == -1)
                    goto fail;
                k = next->clusters[c].n_nodes - 1;
                changes++;
            }
            nn = &next->clusters[c].nodes[k];
            if (nn->weight != wn->weight || nn->state != wn->state) {
                nn->weight = wn->weight;
                nn->state = wn->state;
                changes++;
            }
        }
    }
    bal_snapshot_unref(want);
    if (changes > 0 && bal_snapshot_rebuild(next, &err) == -1)
        return -1;
    return changes;
fail:
    bal_snapshot_unref(want);
    return -1;
}
