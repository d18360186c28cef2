/* admin/adm_split.c -- the split commands: show and set the weight, rollback, promote, which;
 * publishing a changed snapshot. */
#include "admin/adm.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

void
adm_command_text(const struct adm_args *a, char *buf, size_t size)
{
    /* Escaped, without quotes: it goes between quotes in logs, show events and watch lines. A
     * line that does not fit ends in "..." and never in half an escape. */
    if (size < 4) {
        if (size > 0)
            buf[0] = '\0';
        return;
    }
    if (adm_escape(a->line.ptr, a->line.len, buf, size) < a->line.len) {
        adm_escape(a->line.ptr, a->line.len, buf, size - 3);
        strcat(buf, "...");
    }
}

struct bal_snapshot *
adm_snapshot_begin(struct adm_state *st)
{
    struct bal_snapshot *cur = bal_router_acquire(st->router);
    struct bal_snapshot *next = bal_snapshot_copy(cur, cur->version + 1);

    bal_snapshot_unref(cur);
    if (next == NULL)
        XF_LOG(XF_LOG_ERR, "admin", "event=change_failed reason=out_of_memory");
    return next;
}

void
adm_publish(struct adm_state *st, struct bal_snapshot *next)
{
    if (st->cfg->fleet.configured)
        adm_fleet_epoch(st, next, next->epoch); /* for fleet.epoch_header */
    bal_router_publish(st->router, next);
    if (st->published != NULL)
        st->published(st->published_arg);
    st->dirty = true; /* saved once the command (or the ramp's tick) is done: adm_state_changed */
}

int
adm_weight_apply(struct adm_state *st, long uid, long pid, const char *cmd, unsigned bp,
                 unsigned *old_bp)
{
    struct bal_snapshot *cur = bal_router_acquire(st->router), *next;
    char from[ADM_WEIGHT_TEXT], to[ADM_WEIGHT_TEXT];

    *old_bp = cur->weight_bp;
    bal_snapshot_unref(cur);
    if (*old_bp == bp)
        return 0;
    next = adm_snapshot_begin(st);
    if (next == NULL)
        return -1;
    next->weight_bp = bp;
    adm_publish(st, next);
    adm_weight_text(*old_bp, from);
    adm_weight_text(bp, to);
    adm_events_add(&st->events, uid, pid, cmd, "weight", from, to);
    XF_LOG(XF_LOG_INFO, "admin", "event=weight_changed from=%s to=%s uid=%ld pid=%ld cmd=\"%s\"",
           from, to, uid, pid, cmd);
    return 0;
}

int
adm_weight_publish(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                   unsigned bp, unsigned *old_bp)
{
    char cmd[96];

    adm_command_text(a, cmd, sizeof(cmd));
    return adm_weight_apply(st, peer->uid, peer->pid, cmd, bp, old_bp);
}

enum adm_result
adm_cmd_show_weight(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                    struct adm_reply *r)
{
    struct bal_snapshot *snap = bal_router_acquire(st->router);
    char w[ADM_WEIGHT_TEXT];

    XF_UNUSED(peer);
    XF_UNUSED(a);
    adm_reply_line(r, "x %s", adm_weight_text(BAL_BUCKETS - snap->weight_bp, w));
    adm_reply_line(r, "y %s", adm_weight_text(snap->weight_bp, w));
    bal_snapshot_unref(snap);
    return ADM_OK;
}

int
adm_capacity_check(struct adm_state *st, const struct bal_snapshot *s, unsigned bp,
                   unsigned *cap_bp, char *why, size_t size)
{
    const struct bal_cluster *x = &s->clusters[CFG_CLUSTER_X], *y = &s->clusters[CFG_CLUSTER_Y];
    unsigned long wx = 0, wy = bal_cluster_usable_weight(y);
    unsigned cap = bal_capacity_bp(s);
    char c[ADM_WEIGHT_TEXT], p[ADM_WEIGHT_TEXT], missing[ADM_WHY_SIZE] = "";
    size_t o = 0;

    if (cap_bp != NULL)
        *cap_bp = cap;
    if (bp <= cap || bp <= s->weight_bp)
        return 0;
    /* bal_capacity_bp's denominator: x's nodes in service, whatever their health. */
    for (size_t i = 0; i < x->n_nodes; i++)
        if (x->nodes[i].state == BAL_NODE_UP)
            wx += x->nodes[i].weight;
    /* The nodes of y that count for nothing now, and why: what the operator needs to act on. */
    for (size_t i = 0; i < y->n_nodes && o < sizeof(missing); i++) {
        const struct bal_node *n = &y->nodes[i];
        char note[ADM_NODE_NOTE];
        int k;

        if (bal_node_takes(n))
            continue;
        adm_node_note(st, n, note, sizeof(note));
        k = snprintf(missing + o, sizeof(missing) - o, "%sy/%s %s", o == 0 ? "; missing: " : ", ",
                     n->addr.text, note[0] != '\0' ? note : bal_node_status_name(n));
        if (k > 0)
            o = XF_MIN(o + (size_t)k, sizeof(missing) - 1);
    }
    snprintf(why, size,
             "y can take at most %s%% of clients now (capacity: healthy weight %lu of y against "
             "%lu of x%s); %s%% would overload it",
             adm_weight_text(cap, c), wy, wx, missing, adm_weight_text(bp, p));
    return -1;
}

/*
 * Reads the optional last word "force" of a command that has `n_words` words without it: 0 with
 * *force, or -1 when the line has another word there or more words.
 */
static int
adm_split_force(const struct adm_args *a, size_t n_words, bool *force)
{
    *force = false;
    if (a->n == n_words)
        return 0;
    if (a->n != n_words + 1 || !adm_span_is(a->v[n_words], "force"))
        return -1;
    *force = true;
    return 0;
}

/*
 * The TIME of `set weight P at TIME`: UTC as 2026-12-06T22:30:00Z (seconds may have a fraction),
 * or +DURATION from now_ms (the wall clock, ms). 0 with *out in wall-clock ms, or -1.
 */
static int
adm_split_time(struct adm_span s, int64_t now_ms, int64_t *out)
{
    char text[40], *end;
    struct tm tm = {0};
    unsigned ms = 0, rel;
    time_t t;

    if (s.len == 0 || s.len >= sizeof(text))
        return -1;
    if (s.ptr[0] == '+') {
        if (adm_duration_parse(s.ptr + 1, s.len - 1, &rel, NULL) == -1)
            return -1;
        *out = now_ms + rel;
        return 0;
    }
    memcpy(text, s.ptr, s.len);
    text[s.len] = '\0';
    end = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
    if (end == NULL)
        return -1;
    if (*end == '.') {
        unsigned scale = 100;

        for (end++; *end >= '0' && *end <= '9'; end++, scale /= 10)
            ms += (unsigned)(*end - '0') * scale;
    }
    if (strcmp(end, "Z") != 0 || (t = timegm(&tm)) == (time_t)-1)
        return -1;
    *out = (int64_t)t * 1000 + ms;
    return 0;
}

/* y's tunnels (WebSocket) open now: counted before a rollback is published, since the workers
 * begin closing them at once. */
static uint64_t
adm_split_y_tunnels(struct adm_state *st)
{
    struct xf_stats *sum;
    uint64_t n;

    if (st->stats == NULL || (sum = calloc(1, sizeof(*sum))) == NULL)
        return 0;
    st->stats(st->stats_arg, sum);
    n = sum->cluster[CFG_CLUSTER_Y].tunnels;
    free(sum);
    return n;
}

/* After a rollback: how many of y's n tunnels close, and over how long. */
static void
adm_split_tunnels_note(struct adm_state *st, struct adm_reply *r, uint64_t n)
{
    unsigned rate = st->cfg->tunnels.close_rate;

    if (n > 0)
        adm_reply_line(r,
                       "note: %llu tunnels on y close over about %llus (tunnels.close_rate %u per "
                       "second; a pinned client's stays), WebSocket ones with a close frame 1001",
                       (unsigned long long)n, (unsigned long long)((n + rate - 1) / rate), rate);
}

/*
 * Sets the weight and answers "ok: <verb>weight y NEW (was OLD)". Raising it past what y can take
 * now (adm_capacity_check) is refused unless `force`; a forced one gets a note. A ramp in
 * progress is cancelled first (the operator takes the weight in hand), and the reply says so.
 */
static enum adm_result
adm_split_set(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
              struct adm_reply *r, unsigned bp, bool force, const char *verb)
{
    char from[ADM_WEIGHT_TEXT], to[ADM_WEIGHT_TEXT], ramp_to[ADM_WEIGHT_TEXT], cmd[96];
    char cancelled[64] = "", why[ADM_WHY_SIZE] = "", logged[256], cap_text[ADM_WEIGHT_TEXT];
    struct bal_snapshot *snap = bal_router_acquire(st->router);
    unsigned old, target, cap, cur;
    uint64_t y_tunnels;
    bool over = adm_capacity_check(st, snap, bp, &cap, why, sizeof(why)) == -1;

    cur = snap->weight_bp;
    bal_snapshot_unref(snap);
    if (bp > cur && adm_guard_refuses_up(st, r))
        return ADM_ERROR;
    if (over && !force)
        return adm_reply_error(r, "%s; add \"force\" to do it anyway", why);
    adm_command_text(a, cmd, sizeof(cmd));
    if (adm_ramp_stop(st, peer->uid, peer->pid, cmd, &target))
        snprintf(cancelled, sizeof(cancelled), "; cancelled the ramp to %s",
                 adm_weight_text(target, ramp_to));
    y_tunnels = bp == 0 ? adm_split_y_tunnels(st) : 0;
    if (adm_weight_apply(st, peer->uid, peer->pid, cmd, bp, &old) == -1) {
        st->dirty = true;
        return adm_reply_error(r, "out of memory; the weight is unchanged%s", cancelled);
    }
    if (old == bp && cancelled[0] != '\0')
        st->dirty = true; /* no new snapshot, but the ramp is gone from the file */
    adm_weight_text(old, from);
    adm_weight_text(bp, to);
    if (old == bp)
        adm_reply_line(r, "ok: %sweight y %s (unchanged)%s", verb, to, cancelled);
    else
        adm_reply_line(r, "ok: %sweight y %s (was %s)%s", verb, to, from, cancelled);
    if (bp == 0 && old != 0)
        adm_split_tunnels_note(st, r, y_tunnels);
    if (over) {
        XF_LOG(XF_LOG_WARN, "admin",
               "event=capacity_forced weight=%s capacity=%s uid=%ld pid=%ld cmd=\"%s\"", to,
               adm_weight_text(cap, cap_text), peer->uid, peer->pid,
               adm_log_text(cmd, logged, sizeof(logged)));
        adm_reply_line(r, "note: forced: %s", why);
    }
    return ADM_OK;
}

enum adm_result
adm_cmd_set_weight(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                   struct adm_reply *r)
{
    struct adm_span p = a->v[2];
    char q[ADM_QUOTE_TEXT];
    unsigned bp;
    bool force;

    bool at = a->n >= 5 && adm_span_is(a->v[3], "at");

    if (adm_split_force(a, at ? 5 : 3, &force) == -1)
        return adm_reply_error(r, "usage: set weight P [at TIME] [force]");
    if (adm_weight_parse(p.ptr, p.len, &bp) == -1)
        return adm_reply_error(r,
                               "weight must be a number from 0 to 100 with at most two decimals, "
                               "got %s",
                               adm_quote(p.ptr, p.len, q, sizeof(q)));
    if (at) {
        struct adm_ramp_args ra = {.to_bp = bp, .force = force, .at = true};
        int64_t when, wait;

        if (adm_split_time(a->v[4], st->wall_ms(), &when) == -1)
            return adm_reply_error(r,
                                   "TIME must be UTC as 2026-12-06T22:30:00Z, or +DURATION such "
                                   "as +30s, got %s",
                                   adm_quote(a->v[4].ptr, a->v[4].len, q, sizeof(q)));
        wait = when - st->wall_ms();
        if (wait < 1000 || wait > 24 * 3600 * 1000)
            return adm_reply_error(r,
                                   "TIME must be from 1 second to 24 hours from now (it is %+.1f "
                                   "s away)",
                                   (double)wait / 1000);
        ra.duration_ms = (unsigned)wait;
        return adm_ramp_start(st, peer, a, r, &ra);
    }
    return adm_split_set(st, peer, a, r, bp, force, "");
}

enum adm_result
adm_cmd_rollback(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                 struct adm_reply *r)
{
    return adm_split_set(st, peer, a, r, 0, false, "rolled back: ");
}

enum adm_result
adm_cmd_promote(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                struct adm_reply *r)
{
    bool force;

    if (adm_split_force(a, 1, &force) == -1)
        return adm_reply_error(r, "usage: promote [force]");
    return adm_split_set(st, peer, a, r, BAL_BUCKETS, force, "promoted: ");
}

bool
adm_split_reads(const struct cfg_split *split, const struct adm_key *k, char *keys, size_t size)
{
    bool found = false;
    size_t o = 0;

    keys[0] = '\0';
    for (size_t i = 0; i < split->n_keys; i++) {
        const struct cfg_split_key *sk = &split->keys[i];
        int n;

        if (sk->kind == k->kind) {
            if (sk->name == NULL)
                found = true;
            else if (strlen(sk->name) == k->name.len &&
                     (sk->kind == CFG_KEY_HEADER || sk->kind == CFG_KEY_JWT_SUB
                          ? strncasecmp(sk->name, k->name.ptr, k->name.len) == 0
                          : memcmp(sk->name, k->name.ptr, k->name.len) == 0))
                found = true;
        }
        n = snprintf(keys + o, size - o, "%s%s%s%s", i > 0 ? ", " : "", adm_key_kind_name(sk->kind),
                     sk->name != NULL ? ":" : "", sk->name != NULL ? sk->name : "");
        if (n > 0)
            o = XF_MIN(o + (size_t)n, size - 1);
    }
    return found;
}

/*
 * The side line of `which`: the side, then what put the key there when it is not the weight alone,
 * in parentheses: "y (failover from x)", "x (pinned; by the weight: y)", "x (failover from y;
 * pinned to y; by the weight: x)". Returns buf.
 */
static const char *
adm_which_side(const struct bal_snapshot *snap, const struct bal_choice *ch, char *buf, size_t size)
{
    const char *assigned = cfg_cluster_name(ch->assigned);
    const char *by_weight = ch->bucket < snap->weight_bp ? "y" : "x";

    if (ch->failover && ch->reason == BAL_REASON_PIN)
        snprintf(buf, size, "%s (failover from %s; pinned to %s; by the weight: %s)",
                 cfg_cluster_name(ch->cluster), assigned, assigned, by_weight);
    else if (ch->failover)
        snprintf(buf, size, "%s (failover from %s)", cfg_cluster_name(ch->cluster), assigned);
    else if (ch->reason == BAL_REASON_PIN)
        snprintf(buf, size, "%s (pinned; by the weight: %s)", cfg_cluster_name(ch->cluster),
                 by_weight);
    else
        snprintf(buf, size, "%s", cfg_cluster_name(ch->cluster));
    return buf;
}

enum adm_result
adm_cmd_which(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
              struct adm_reply *r)
{
    struct adm_span rest = adm_args_rest(a, 1);
    char q[ADM_QUOTE_TEXT], ip[BAL_ADDR_TEXT], w[ADM_WEIGHT_TEXT], keys[512], side[96];
    struct bal_snapshot *snap;
    struct bal_choice ch;
    struct xf_err err = {{0}};
    struct adm_key k;
    const struct bal_cluster *cl;
    const char *key;
    size_t key_len;
    int rc;

    XF_UNUSED(peer);
    if (adm_key_parse(rest.ptr, rest.len, &k, &err) == -1)
        return adm_reply_error(r, "%s", err.msg);
    if (adm_key_bytes(&k, ip, &key, &key_len, &err) == -1)
        return adm_reply_error(r, "%s", err.msg);
    snap = bal_router_acquire(st->router);
    rc = bal_which(snap, key, key_len, &ch);
    cl = &snap->clusters[ch.cluster];
    adm_reply_line(r, "key %s", adm_quote(key, key_len, q, sizeof(q)));
    adm_reply_line(r, "side %s", adm_which_side(snap, &ch, side, sizeof(side)));
    if (ch.node != NULL)
        adm_reply_line(r, "node %s", ch.node->addr.text);
    else if (rc == 0)
        adm_reply_line(r, "node - (%s: chosen per request, not by the key)",
                       cl->balance == CFG_BALANCE_ROUND_ROBIN ? "round_robin" : "least_conn");
    else
        adm_reply_line(r, "node none (no node of %s takes requests: up, healthy, weight above 0)",
                       cfg_cluster_name(ch.cluster));
    adm_reply_line(r, "bucket %u", (unsigned)ch.bucket);
    adm_reply_line(r, "weight %s", adm_weight_text(snap->weight_bp, w));
    adm_reply_line(r, "flip %s", adm_weight_text(bal_flip_weight(ch.bucket), w));
    if (!k.bare && !adm_split_reads(snap->split, &k, keys, sizeof(keys)))
        adm_reply_line(r, "note: split.key does not read %s%s%.*s (it reads %s)",
                       adm_key_kind_name(k.kind), k.name.len > 0 ? ":" : "", (int)k.name.len,
                       k.name.ptr, keys);
    bal_snapshot_unref(snap);
    return ADM_OK;
}
