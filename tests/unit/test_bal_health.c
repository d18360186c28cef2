/* tests/unit/test_bal_health.c -- node health in the balancer: down and ejected nodes take no
 * request, failover to the other cluster, retries on other nodes (bal_repick), the capacity y
 * has left, what `show nodes` says, and the health and limits snapshots carry. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "balancer/bal.h"

#define N_KEYS 4000u

/* A config parsed from YAML and the snapshot built from it (both owned). */
struct fx {
    struct cfg *cfg;
    struct bal_snapshot *s;
};

/* Loads a config keyed by the X-Client header, `weight` percent to y, with these clusters. */
static void
fx_load(struct fx *f, unsigned weight, const char *clusters)
{
    char yaml[4096];
    struct xf_err err = {{0}};
    int n = snprintf(yaml, sizeof(yaml),
                     "listen:\n  - address: \"127.0.0.1:8000\"\n"
                     "split:\n  weight: %u\n  key: \"header:X-Client\"\n  seed: \"unit\"\n"
                     "  override_from: any\n"
                     "clusters:\n%s",
                     weight, clusters);

    cr_assert(lt(int, n, (int)sizeof(yaml)));
    f->cfg = cfg_parse(yaml, (size_t)n, "t.yaml", &err);
    cr_assert(ne(ptr, f->cfg, NULL), "%s", err.msg);
    f->s = bal_snapshot_new(f->cfg, NULL, 1, &err);
    cr_assert(ne(ptr, f->s, NULL), "%s", err.msg);
}

static void
fx_free(struct fx *f)
{
    bal_snapshot_unref(f->s);
    cfg_free(f->cfg);
}

/* Replaces f->s by a copy with node i of cluster c in `state` (-1: unchanged) and `health`
 * (-1: unchanged), schedules rebuilt. */
static void
fx_change(struct fx *f, enum cfg_cluster_id c, size_t i, int state, int health)
{
    struct xf_err err = {{0}};
    struct bal_snapshot *copy = bal_snapshot_copy(f->s, f->s->version + 1);

    cr_assert(ne(ptr, copy, NULL));
    cr_assert(lt(sz, i, copy->clusters[c].n_nodes));
    if (state != -1)
        copy->clusters[c].nodes[i].state = (enum bal_node_state)state;
    if (health != -1)
        copy->clusters[c].nodes[i].health = (enum bal_health)health;
    cr_assert(eq(int, bal_snapshot_rebuild(copy, &err), 0), "%s", err.msg);
    bal_snapshot_unref(f->s);
    f->s = copy;
}

static void
fx_health(struct fx *f, enum cfg_cluster_id c, size_t i, enum bal_health health)
{
    fx_change(f, c, i, -1, (int)health);
}

static void
fx_state(struct fx *f, enum cfg_cluster_id c, size_t i, enum bal_node_state state)
{
    fx_change(f, c, i, (int)state, -1);
}

static uint32_t
fx_id(const struct fx *f, enum cfg_cluster_id c, size_t i)
{
    return f->s->clusters[c].nodes[i].id;
}

/* A request "X-Client: client-<key>", with "X-Crossfade-Target: <target>" unless it is NULL. */
struct req {
    char val[32];
    struct xf_hdr h[2];
    struct bal_request r;
};

static const struct bal_request *
req_of(struct req *q, unsigned key, const char *target)
{
    int n = snprintf(q->val, sizeof(q->val), "client-%u", key);

    q->h[0] = (struct xf_hdr){
        .name = "X-Client", .name_len = 8, .value = q->val, .value_len = (uint32_t)n};
    q->h[1] = (struct xf_hdr){.name = "X-Crossfade-Target",
                              .name_len = 18,
                              .value = target,
                              .value_len = target != NULL ? (uint32_t)strlen(target) : 0};
    q->r = (struct bal_request){
        .hdrs = q->h, .n_hdrs = target != NULL ? 2 : 1, .target = "/", .target_len = 1};
    return &q->r;
}

static int
pick(const struct bal_snapshot *s, unsigned key, const char *target, struct bal_state *st,
     struct bal_choice *ch)
{
    struct req q;

    memset(ch, 0xa5, sizeof(*ch)); /* no field may be left as it was */
    return bal_pick(s, req_of(&q, key, target), st, ch);
}

static const char *const balance_names[] = {"hash", "round_robin", "least_conn"};

/* x: four nodes of weights 1, 2, 1, 1 with the given balance; y: one node. */
static void
fx_four(struct fx *f, unsigned weight, const char *balance)
{
    char clusters[512];

    snprintf(clusters, sizeof(clusters),
             "  x:\n    balance: %s\n    nodes: [\"10.0.0.1:80\", {address: \"10.0.0.2:80\", "
             "weight: 2}, \"10.0.0.3:80\", \"10.0.0.4:80\"]\n"
             "  y:\n    nodes: [\"10.0.1.1:80\"]\n",
             balance);
    fx_load(f, weight, clusters);
}

/* --- bal_node_takes and bal_pick inside one cluster --- */

Test(bal_health, a_down_or_ejected_node_takes_no_request)
{
    struct bal_node n = {.weight = 1};

    cr_assert(bal_node_takes(&n));
    n.health = BAL_HEALTH_DOWN;
    cr_assert(not(bal_node_takes(&n)));
    n.health = BAL_HEALTH_EJECTED;
    cr_assert(not(bal_node_takes(&n)));
    n.health = BAL_HEALTH_UP;
    n.state = BAL_NODE_DRAINING;
    cr_assert(not(bal_node_takes(&n)));
    n.state = BAL_NODE_UP;
    n.weight = 0;
    cr_assert(not(bal_node_takes(&n)));
}

Test(bal_health, no_balance_ever_picks_a_down_or_ejected_node)
{
    for (size_t b = 0; b < 3; b++) {
        struct fx f;
        uint32_t active[8] = {0};
        struct bal_state st = {.active = active};
        unsigned counts[4] = {0};

        fx_four(&f, 0, balance_names[b]);
        fx_health(&f, CFG_CLUSTER_X, 1, BAL_HEALTH_DOWN);
        fx_health(&f, CFG_CLUSTER_X, 2, BAL_HEALTH_EJECTED);
        /* The unhealthy nodes are idle: least_conn would prefer them if it looked at them. */
        active[fx_id(&f, CFG_CLUSTER_X, 0)] = 5;
        active[fx_id(&f, CFG_CLUSTER_X, 3)] = 5;
        for (unsigned k = 0; k < N_KEYS; k++) {
            struct bal_choice ch;

            cr_assert(eq(int, pick(f.s, k, NULL, &st, &ch), 0), "%s", balance_names[b]);
            cr_assert(eq(int, (int)ch.cluster, (int)CFG_CLUSTER_X));
            cr_assert(not(ch.failover));
            counts[ch.node - f.s->clusters[CFG_CLUSTER_X].nodes]++;
        }
        cr_assert(eq(u32, counts[1], 0u), "%s picked the down node", balance_names[b]);
        cr_assert(eq(u32, counts[2], 0u), "%s picked the ejected node", balance_names[b]);
        cr_assert(gt(u32, counts[0], 0u), "%s", balance_names[b]);
        cr_assert(gt(u32, counts[3], 0u), "%s", balance_names[b]);
        fx_free(&f);
    }
}

static void
hash_moves_only_the_keys_of(enum bal_health health)
{
    struct fx f;
    struct bal_snapshot *before;
    struct bal_state st = {0};
    unsigned had = 0;
    uint32_t sick;

    fx_four(&f, 0, "hash");
    before = bal_snapshot_ref(f.s);
    fx_health(&f, CFG_CLUSTER_X, 1, health);
    sick = fx_id(&f, CFG_CLUSTER_X, 1);
    for (unsigned k = 0; k < N_KEYS; k++) {
        struct bal_choice a, b;

        cr_assert(eq(int, pick(before, k, NULL, &st, &a), 0));
        cr_assert(eq(int, pick(f.s, k, NULL, &st, &b), 0));
        cr_assert(ne(u32, b.node->id, sick), "key %u went to the unhealthy node", k);
        if (a.node->id == sick)
            had++;
        else
            cr_assert(eq(u32, a.node->id, b.node->id), "key %u moved from node %u to %u", k,
                      a.node->id, b.node->id);
    }
    /* Weight 2 of 5: the node had about 40 % of the keys (tolerance 3 points). */
    cr_assert(le(dbl, fabs(100.0 * had / N_KEYS - 40.0), 3.0), "the node had %u keys", had);
    bal_snapshot_unref(before);
    fx_free(&f);
}

Test(bal_health, hash_moves_only_the_keys_of_a_down_node)
{
    hash_moves_only_the_keys_of(BAL_HEALTH_DOWN);
}

Test(bal_health, hash_moves_only_the_keys_of_an_ejected_node)
{
    hash_moves_only_the_keys_of(BAL_HEALTH_EJECTED);
}

Test(bal_health, a_node_back_up_gets_back_the_same_keys)
{
    struct fx f;
    struct bal_snapshot *before;
    struct bal_state st = {0};

    fx_four(&f, 0, "hash");
    before = bal_snapshot_ref(f.s);
    fx_health(&f, CFG_CLUSTER_X, 1, BAL_HEALTH_DOWN);
    fx_health(&f, CFG_CLUSTER_X, 1, BAL_HEALTH_UP);
    for (unsigned k = 0; k < N_KEYS; k++) {
        struct bal_choice a, b;

        cr_assert(eq(int, pick(before, k, NULL, &st, &a), 0));
        cr_assert(eq(int, pick(f.s, k, NULL, &st, &b), 0));
        cr_assert(eq(u32, a.node->id, b.node->id), "key %u", k);
    }
    bal_snapshot_unref(before);
    fx_free(&f);
}

Test(bal_health, round_robin_shares_among_the_healthy_nodes)
{
    struct fx f;
    struct bal_state st = {0};
    unsigned counts[4] = {0};

    fx_four(&f, 0, "round_robin");
    fx_health(&f, CFG_CLUSTER_X, 1, BAL_HEALTH_DOWN);
    cr_assert(eq(sz, f.s->clusters[CFG_CLUSTER_X].n_schedule, (size_t)3));
    for (unsigned k = 0; k < 300; k++) {
        struct bal_choice ch;

        cr_assert(eq(int, pick(f.s, 7, NULL, &st, &ch), 0));
        counts[ch.node - f.s->clusters[CFG_CLUSTER_X].nodes]++;
    }
    cr_assert(eq(u32, counts[1], 0u));
    cr_assert(eq(u32, counts[0], 100u));
    cr_assert(eq(u32, counts[2], 100u));
    cr_assert(eq(u32, counts[3], 100u));
    fx_free(&f);
}

/* --- failover in bal_pick --- */

#define X2_Y4                                                                                      \
    "  x:\n    balance: %s\n    nodes: [\"10.0.0.1:80\", \"10.0.0.2:80\"]\n"                       \
    "  y:\n    nodes: [\"10.0.1.1:80\", \"10.0.1.2:80\", \"10.0.1.3:80\", "                        \
    "{address: \"10.0.1.4:80\", weight: 0}]\n"

Test(bal_health_failover, y_fails_over_to_x_when_no_y_node_can_take_it)
{
    for (size_t b = 0; b < 3; b++) {
        struct fx f;
        char clusters[512];
        struct bal_state st = {0};
        struct bal_choice ch;

        snprintf(clusters, sizeof(clusters), X2_Y4, balance_names[b]);
        fx_load(&f, 100, clusters);
        cr_assert(not(f.s->clusters[CFG_CLUSTER_X].failover), "x's default is false");
        cr_assert(f.s->clusters[CFG_CLUSTER_Y].failover, "y's default is true");
        cr_assert(eq(int, pick(f.s, 1, NULL, &st, &ch), 0));
        cr_assert(eq(int, (int)ch.cluster, (int)CFG_CLUSTER_Y));
        cr_assert(not(ch.failover));
        /* Down, ejected, draining, and weight 0 already: y has nothing left. */
        fx_health(&f, CFG_CLUSTER_Y, 0, BAL_HEALTH_DOWN);
        fx_health(&f, CFG_CLUSTER_Y, 1, BAL_HEALTH_EJECTED);
        fx_state(&f, CFG_CLUSTER_Y, 2, BAL_NODE_DRAINING);
        for (unsigned k = 0; k < 200; k++) {
            cr_assert(eq(int, pick(f.s, k, NULL, &st, &ch), 0), "x balance %s", balance_names[b]);
            cr_assert(eq(int, (int)ch.cluster, (int)CFG_CLUSTER_X));
            cr_assert(eq(int, (int)ch.assigned, (int)CFG_CLUSTER_Y));
            cr_assert(ch.failover);
            cr_assert(eq(int, (int)ch.reason, (int)BAL_REASON_WEIGHT));
            cr_assert(ne(ptr, (void *)ch.node, NULL));
            cr_assert(eq(int, (int)ch.node->cluster, (int)CFG_CLUSTER_X));
        }
        fx_free(&f);
    }
}

Test(bal_health_failover, x_does_not_fail_over_by_default)
{
    struct fx f;
    char clusters[512];
    struct bal_state st = {0};
    struct bal_choice ch;

    snprintf(clusters, sizeof(clusters), X2_Y4, "hash");
    fx_load(&f, 0, clusters);
    fx_health(&f, CFG_CLUSTER_X, 0, BAL_HEALTH_DOWN);
    fx_health(&f, CFG_CLUSTER_X, 1, BAL_HEALTH_EJECTED);
    for (unsigned k = 0; k < 200; k++) {
        cr_assert(eq(int, pick(f.s, k, NULL, &st, &ch), -1));
        cr_assert(eq(ptr, (void *)ch.node, NULL));
    }
    fx_free(&f);
}

Test(bal_health_failover, x_fails_over_to_y_when_its_failover_is_on)
{
    struct fx f;
    struct bal_state st = {0};
    struct bal_choice ch;

    fx_load(&f, 0,
            "  x:\n    failover: true\n    nodes: [\"10.0.0.1:80\", \"10.0.0.2:80\"]\n"
            "  y:\n    balance: round_robin\n    nodes: [\"10.0.1.1:80\"]\n");
    fx_health(&f, CFG_CLUSTER_X, 0, BAL_HEALTH_DOWN);
    fx_state(&f, CFG_CLUSTER_X, 1, BAL_NODE_DISABLED);
    for (unsigned k = 0; k < 200; k++) {
        cr_assert(eq(int, pick(f.s, k, NULL, &st, &ch), 0));
        cr_assert(eq(int, (int)ch.cluster, (int)CFG_CLUSTER_Y));
        cr_assert(eq(int, (int)ch.assigned, (int)CFG_CLUSTER_X));
        cr_assert(ch.failover);
        cr_assert(eq(u32, ch.node->id, fx_id(&f, CFG_CLUSTER_Y, 0)));
    }
    fx_free(&f);
}

Test(bal_health_failover, y_with_failover_off_gets_no_node)
{
    struct fx f;
    struct bal_state st = {0};
    struct bal_choice ch;

    fx_load(&f, 100,
            "  x:\n    nodes: [\"10.0.0.1:80\"]\n"
            "  y:\n    failover: false\n    nodes: [\"10.0.1.1:80\", \"10.0.1.2:80\"]\n");
    fx_health(&f, CFG_CLUSTER_Y, 0, BAL_HEALTH_EJECTED);
    fx_health(&f, CFG_CLUSTER_Y, 1, BAL_HEALTH_DOWN);
    for (unsigned k = 0; k < 200; k++) {
        cr_assert(eq(int, pick(f.s, k, NULL, &st, &ch), -1));
        cr_assert(eq(ptr, (void *)ch.node, NULL));
    }
    fx_free(&f);
}

Test(bal_health_failover, no_failover_when_the_other_side_is_dead_too)
{
    struct fx f;
    struct bal_state st = {0};
    struct bal_choice ch;

    fx_load(&f, 50,
            "  x:\n    failover: true\n    nodes: [\"10.0.0.1:80\"]\n"
            "  y:\n    nodes: [\"10.0.1.1:80\"]\n");
    fx_health(&f, CFG_CLUSTER_X, 0, BAL_HEALTH_DOWN);
    fx_health(&f, CFG_CLUSTER_Y, 0, BAL_HEALTH_EJECTED);
    for (unsigned k = 0; k < 200; k++) {
        cr_assert(eq(int, pick(f.s, k, NULL, &st, &ch), -1));
        cr_assert(eq(ptr, (void *)ch.node, NULL));
    }
    fx_free(&f);
}

Test(bal_health_failover, an_override_to_a_dead_side_fails_over_too)
{
    struct fx f, off;
    struct bal_state st = {0};
    struct bal_choice ch;

    fx_load(&f, 0, "  x:\n    nodes: [\"10.0.0.1:80\"]\n  y:\n    nodes: [\"10.0.1.1:80\"]\n");
    fx_health(&f, CFG_CLUSTER_Y, 0, BAL_HEALTH_DOWN);
    for (unsigned k = 0; k < 100; k++) {
        cr_assert(eq(int, pick(f.s, k, "y", &st, &ch), 0));
        cr_assert(eq(int, (int)ch.reason, (int)BAL_REASON_OVERRIDE));
        cr_assert(eq(int, (int)ch.cluster, (int)CFG_CLUSTER_X));
        cr_assert(eq(int, (int)ch.assigned, (int)CFG_CLUSTER_Y));
        cr_assert(ch.failover);
        cr_assert(eq(u32, ch.node->id, fx_id(&f, CFG_CLUSTER_X, 0)));
    }
    fx_load(&off, 0,
            "  x:\n    nodes: [\"10.0.0.1:80\"]\n"
            "  y:\n    failover: false\n    nodes: [\"10.0.1.1:80\"]\n");
    fx_health(&off, CFG_CLUSTER_Y, 0, BAL_HEALTH_DOWN);
    cr_assert(eq(int, pick(off.s, 1, "y", &st, &ch), -1));
    cr_assert(eq(ptr, (void *)ch.node, NULL));
    fx_free(&off);
    fx_free(&f);
}

static void
pin(struct bal_snapshot *s, const char *key, enum cfg_cluster_id side)
{
    struct xf_err err = {{0}};
    int old;

    if (s->pins == NULL)
        s->pins = bal_pins_new();
    cr_assert(ne(ptr, s->pins, NULL));
    cr_assert(eq(int, bal_pins_set(s->pins, key, strlen(key), side, &old, &err), 0), "%s", err.msg);
}

Test(bal_health_failover, a_key_pinned_to_a_dead_side_fails_over_too)
{
    struct fx f, off;
    struct bal_state st = {0};
    struct bal_choice ch;

    fx_load(&f, 0, "  x:\n    nodes: [\"10.0.0.1:80\"]\n  y:\n    nodes: [\"10.0.1.1:80\"]\n");
    fx_health(&f, CFG_CLUSTER_Y, 0, BAL_HEALTH_EJECTED);
    pin(f.s, "client-7", CFG_CLUSTER_Y);
    cr_assert(eq(int, pick(f.s, 7, NULL, &st, &ch), 0));
    cr_assert(eq(int, (int)ch.reason, (int)BAL_REASON_PIN));
    cr_assert(eq(int, (int)ch.cluster, (int)CFG_CLUSTER_X));
    cr_assert(eq(int, (int)ch.assigned, (int)CFG_CLUSTER_Y));
    cr_assert(ch.failover);
    cr_assert(eq(u32, ch.node->id, fx_id(&f, CFG_CLUSTER_X, 0)));
    /* A key pinned to x with every x node down stays without a node (x's failover is off). */
    fx_load(&off, 100, "  x:\n    nodes: [\"10.0.0.1:80\"]\n  y:\n    nodes: [\"10.0.1.1:80\"]\n");
    fx_health(&off, CFG_CLUSTER_X, 0, BAL_HEALTH_DOWN);
    pin(off.s, "client-7", CFG_CLUSTER_X);
    cr_assert(eq(int, pick(off.s, 7, NULL, &st, &ch), -1));
    cr_assert(eq(ptr, (void *)ch.node, NULL));
    cr_assert(eq(int, pick(off.s, 8, NULL, &st, &ch), 0), "an unpinned key still goes to y");
    cr_assert(eq(int, (int)ch.cluster, (int)CFG_CLUSTER_Y));
    cr_assert(not(ch.failover));
    fx_free(&off);
    fx_free(&f);
}

/* --- bal_repick --- */

#define X4_Y2                                                                                      \
    "  x:\n    balance: %s\n    nodes: [\"10.0.0.1:80\", \"10.0.0.2:80\", \"10.0.0.3:80\", "       \
    "\"10.0.0.4:80\"]\n"                                                                           \
    "  y:\n    nodes: [\"10.0.1.1:80\", \"10.0.1.2:80\"]\n"

static void
fx_x4(struct fx *f, unsigned weight, const char *balance)
{
    char clusters[512];

    snprintf(clusters, sizeof(clusters), X4_Y2, balance);
    fx_load(f, weight, clusters);
}

static bool
was_tried(uint32_t id, const uint32_t *tried, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (tried[i] == id)
            return true;
    return false;
}

Test(bal_health_repick, hash_repick_gives_the_key_a_stable_runner_up)
{
    struct fx f;
    struct bal_snapshot *without[4];
    struct bal_state st = {0};
    unsigned seconds[4] = {0};

    fx_x4(&f, 0, "hash");
    /* The runner-up of a key is where it would go were its first node gone. */
    for (size_t i = 0; i < 4; i++) {
        struct xf_err err = {{0}};

        without[i] = bal_snapshot_copy(f.s, 2);
        cr_assert(ne(ptr, without[i], NULL));
        without[i]->clusters[CFG_CLUSTER_X].nodes[i].health = BAL_HEALTH_DOWN;
        cr_assert(eq(int, bal_snapshot_rebuild(without[i], &err), 0));
    }
    for (unsigned k = 0; k < N_KEYS; k++) {
        struct bal_choice ch, again;
        uint32_t tried[1];
        size_t first;
        const struct bal_node *want;

        cr_assert(eq(int, pick(f.s, k, NULL, &st, &ch), 0));
        first = (size_t)(ch.node - f.s->clusters[CFG_CLUSTER_X].nodes);
        tried[0] = ch.node->id;
        again = ch;
        cr_assert(eq(int, bal_repick(f.s, &st, tried, 1, &ch), 0));
        cr_assert(ne(u32, ch.node->id, tried[0]), "key %u", k);
        cr_assert(eq(int, (int)ch.cluster, (int)CFG_CLUSTER_X));
        cr_assert(not(ch.failover));
        want = bal_node_hrw(&without[first]->clusters[CFG_CLUSTER_X], ch.khash);
        cr_assert(eq(u32, ch.node->id, want->id), "key %u: not its runner-up", k);
        cr_assert(eq(int, bal_repick(f.s, &st, tried, 1, &again), 0));
        cr_assert(eq(u32, again.node->id, ch.node->id), "key %u: a second repick differs", k);
        seconds[ch.node - f.s->clusters[CFG_CLUSTER_X].nodes]++;
    }
    /* Each node is the runner-up of about a quarter of the keys (tolerance 3 points). */
    for (size_t i = 0; i < 4; i++)
        cr_assert(le(dbl, fabs(100.0 * seconds[i] / N_KEYS - 25.0), 3.0), "node %zu: %u", i,
                  seconds[i]);
    for (size_t i = 0; i < 4; i++)
        bal_snapshot_unref(without[i]);
    fx_free(&f);
}

Test(bal_health_repick, hash_repick_never_returns_a_tried_node)
{
    struct fx f;
    struct bal_state st = {0};

    fx_x4(&f, 0, "hash");
    for (unsigned k = 0; k < 500; k++) {
        struct bal_choice ch;
        uint32_t tried[4];
        size_t n = 0;

        cr_assert(eq(int, pick(f.s, k, NULL, &st, &ch), 0));
        tried[n++] = ch.node->id;
        while (n < 4) {
            cr_assert(eq(int, bal_repick(f.s, &st, tried, n, &ch), 0), "key %u", k);
            cr_assert(not(was_tried(ch.node->id, tried, n)), "key %u got a tried node", k);
            cr_assert(eq(int, (int)ch.node->cluster, (int)CFG_CLUSTER_X));
            tried[n++] = ch.node->id;
        }
        cr_assert(eq(int, bal_repick(f.s, &st, tried, n, &ch), -1), "key %u", k);
        cr_assert(eq(ptr, (void *)ch.node, NULL));
    }
    fx_free(&f);
}

Test(bal_health_repick, round_robin_repick_skips_the_tried_nodes)
{
    struct fx f;
    struct bal_state st = {0};
    struct bal_choice ch;
    uint32_t tried[2];
    unsigned counts[4] = {0};

    fx_x4(&f, 0, "round_robin");
    cr_assert(eq(int, pick(f.s, 1, NULL, &st, &ch), 0));
    tried[0] = fx_id(&f, CFG_CLUSTER_X, 0);
    tried[1] = fx_id(&f, CFG_CLUSTER_X, 1);
    for (unsigned k = 0; k < 40; k++) {
        cr_assert(eq(int, bal_repick(f.s, &st, tried, 2, &ch), 0));
        counts[ch.node - f.s->clusters[CFG_CLUSTER_X].nodes]++;
    }
    cr_assert(eq(u32, counts[0] + counts[1], 0u));
    cr_assert(eq(u32, counts[2], 20u), "the others share as round robin does");
    cr_assert(eq(u32, counts[3], 20u));
    fx_free(&f);
}

Test(bal_health_repick, least_conn_repick_skips_an_idle_tried_node)
{
    struct fx f;
    uint32_t active[8] = {0};
    struct bal_state st = {.active = active};
    struct bal_choice ch;
    uint32_t tried[1];

    fx_x4(&f, 0, "least_conn");
    active[fx_id(&f, CFG_CLUSTER_X, 1)] = 4;
    active[fx_id(&f, CFG_CLUSTER_X, 2)] = 2;
    active[fx_id(&f, CFG_CLUSTER_X, 3)] = 3;
    cr_assert(eq(int, pick(f.s, 1, NULL, &st, &ch), 0));
    cr_assert(eq(u32, ch.node->id, fx_id(&f, CFG_CLUSTER_X, 0)), "the idle node first");
    tried[0] = ch.node->id;
    for (unsigned k = 0; k < 20; k++) {
        cr_assert(eq(int, bal_repick(f.s, &st, tried, 1, &ch), 0));
        cr_assert(eq(u32, ch.node->id, fx_id(&f, CFG_CLUSTER_X, 2)));
    }
    fx_free(&f);
}

Test(bal_health_repick, repick_fails_over_once_every_node_was_tried)
{
    struct fx f;
    struct bal_state st = {0};
    struct bal_choice ch;
    uint32_t tried[4];

    fx_x4(&f, 100, "hash");
    cr_assert(eq(int, pick(f.s, 3, NULL, &st, &ch), 0));
    cr_assert(eq(int, (int)ch.cluster, (int)CFG_CLUSTER_Y));
    tried[0] = ch.node->id;
    cr_assert(eq(int, bal_repick(f.s, &st, tried, 1, &ch), 0));
    cr_assert(eq(int, (int)ch.cluster, (int)CFG_CLUSTER_Y), "y has a node left");
    cr_assert(not(ch.failover));
    tried[1] = ch.node->id;
    cr_assert(eq(int, bal_repick(f.s, &st, tried, 2, &ch), 0));
    cr_assert(eq(int, (int)ch.cluster, (int)CFG_CLUSTER_X));
    cr_assert(eq(int, (int)ch.assigned, (int)CFG_CLUSTER_Y));
    cr_assert(ch.failover);
    cr_assert(eq(int, (int)ch.node->cluster, (int)CFG_CLUSTER_X));
    tried[2] = ch.node->id;
    cr_assert(eq(int, bal_repick(f.s, &st, tried, 3, &ch), 0));
    cr_assert(eq(int, (int)ch.cluster, (int)CFG_CLUSTER_X));
    cr_assert(not(was_tried(ch.node->id, tried, 3)));
    fx_free(&f);
}

Test(bal_health_repick, repick_never_fails_over_a_second_time)
{
    struct fx f;
    struct bal_snapshot *healthy;
    struct bal_state st = {0};
    struct bal_choice ch;
    uint32_t tried[2];

    /* Both clusters may fail over; y's nodes are down when the request comes. */
    fx_load(&f, 100,
            "  x:\n    failover: true\n    nodes: [\"10.0.0.1:80\", \"10.0.0.2:80\"]\n"
            "  y:\n    nodes: [\"10.0.1.1:80\"]\n");
    healthy = bal_snapshot_ref(f.s);
    fx_health(&f, CFG_CLUSTER_Y, 0, BAL_HEALTH_DOWN);
    cr_assert(eq(int, pick(f.s, 5, NULL, &st, &ch), 0));
    cr_assert(eq(int, (int)ch.cluster, (int)CFG_CLUSTER_X));
    cr_assert(ch.failover);
    tried[0] = ch.node->id;
    cr_assert(eq(int, bal_repick(f.s, &st, tried, 1, &ch), 0));
    cr_assert(eq(int, (int)ch.cluster, (int)CFG_CLUSTER_X));
    tried[1] = ch.node->id;
    cr_assert(eq(int, bal_repick(f.s, &st, tried, 2, &ch), -1));
    cr_assert(eq(ptr, (void *)ch.node, NULL));
    /* Even when y is back by the retry and x's failover is on: x is not where the split sent it. */
    ch.node = NULL;
    cr_assert(eq(int, bal_repick(healthy, &st, tried, 2, &ch), -1));
    cr_assert(eq(ptr, (void *)ch.node, NULL));
    cr_assert(eq(int, (int)ch.cluster, (int)CFG_CLUSTER_X));
    bal_snapshot_unref(healthy);
    fx_free(&f);
}

Test(bal_health_repick, repick_without_failover_gets_no_node)
{
    struct fx f;
    struct bal_state st = {0};
    struct bal_choice ch;
    uint32_t tried[4];

    fx_x4(&f, 0, "round_robin");
    cr_assert(eq(int, pick(f.s, 2, NULL, &st, &ch), 0));
    for (size_t i = 0; i < 4; i++)
        tried[i] = fx_id(&f, CFG_CLUSTER_X, i);
    cr_assert(eq(int, bal_repick(f.s, &st, tried, 4, &ch), -1));
    cr_assert(eq(ptr, (void *)ch.node, NULL));
    cr_assert(eq(int, (int)ch.cluster, (int)CFG_CLUSTER_X));
    cr_assert(not(ch.failover));
    fx_free(&f);
}

/* --- bal_capacity_bp --- */

Test(bal_health_capacity, y_weight_1_against_x_weights_1_and_1_is_half)
{
    struct fx f;

    fx_load(&f, 0,
            "  x:\n    nodes: [\"10.0.0.1:80\", \"10.0.0.2:80\"]\n"
            "  y:\n    nodes: [\"10.0.1.1:80\"]\n");
    cr_assert(eq(uint, bal_capacity_bp(f.s), 5000u));
    fx_free(&f);
}

Test(bal_health_capacity, a_down_y_node_counts_for_nothing)
{
    struct fx f;

    fx_load(&f, 0,
            "  x:\n    nodes: [\"10.0.0.1:80\", \"10.0.0.2:80\"]\n"
            "  y:\n    nodes: [{address: \"10.0.1.1:80\", weight: 2}, \"10.0.1.2:80\"]\n");
    cr_assert(eq(uint, bal_capacity_bp(f.s), 10000u));
    fx_health(&f, CFG_CLUSTER_Y, 0, BAL_HEALTH_DOWN);
    cr_assert(eq(uint, bal_capacity_bp(f.s), 5000u));
    fx_free(&f);
}

Test(bal_health_capacity, unusable_y_nodes_count_for_nothing)
{
    struct fx f;

    fx_load(&f, 0,
            "  x:\n    nodes: [\"10.0.0.1:80\", \"10.0.0.2:80\", \"10.0.0.3:80\", "
            "\"10.0.0.4:80\"]\n"
            "  y:\n    nodes: [\"10.0.1.1:80\", \"10.0.1.2:80\", \"10.0.1.3:80\", "
            "\"10.0.1.4:80\", {address: \"10.0.1.5:80\", weight: 0}]\n");
    cr_assert(eq(uint, bal_capacity_bp(f.s), 10000u));
    fx_health(&f, CFG_CLUSTER_Y, 1, BAL_HEALTH_EJECTED);
    cr_assert(eq(uint, bal_capacity_bp(f.s), 7500u));
    fx_state(&f, CFG_CLUSTER_Y, 2, BAL_NODE_DRAINING);
    cr_assert(eq(uint, bal_capacity_bp(f.s), 5000u));
    fx_state(&f, CFG_CLUSTER_Y, 3, BAL_NODE_DISABLED);
    cr_assert(eq(uint, bal_capacity_bp(f.s), 2500u));
    fx_health(&f, CFG_CLUSTER_Y, 0, BAL_HEALTH_DOWN);
    cr_assert(eq(uint, bal_capacity_bp(f.s), 0u));
    fx_free(&f);
}

Test(bal_health_capacity, an_x_node_down_by_health_still_counts)
{
    struct fx f;

    fx_load(&f, 0,
            "  x:\n    nodes: [\"10.0.0.1:80\", \"10.0.0.2:80\"]\n"
            "  y:\n    nodes: [\"10.0.1.1:80\"]\n");
    fx_health(&f, CFG_CLUSTER_X, 0, BAL_HEALTH_DOWN);
    cr_assert(eq(uint, bal_capacity_bp(f.s), 5000u));
    fx_health(&f, CFG_CLUSTER_X, 1, BAL_HEALTH_EJECTED);
    cr_assert(eq(uint, bal_capacity_bp(f.s), 5000u));
    fx_free(&f);
}

Test(bal_health_capacity, x_nodes_out_of_service_do_not_count)
{
    struct fx f;

    fx_load(&f, 0,
            "  x:\n    nodes: [\"10.0.0.1:80\", \"10.0.0.2:80\", \"10.0.0.3:80\"]\n"
            "  y:\n    nodes: [\"10.0.1.1:80\"]\n");
    cr_assert(eq(uint, bal_capacity_bp(f.s), 3333u));
    fx_state(&f, CFG_CLUSTER_X, 1, BAL_NODE_DISABLED);
    cr_assert(eq(uint, bal_capacity_bp(f.s), 5000u));
    fx_state(&f, CFG_CLUSTER_X, 2, BAL_NODE_DRAINING);
    cr_assert(eq(uint, bal_capacity_bp(f.s), 10000u));
    fx_free(&f);
}

Test(bal_health_capacity, capacity_is_capped_and_full_without_x_weight)
{
    struct fx f, g;

    fx_load(&f, 0,
            "  x:\n    nodes: [\"10.0.0.1:80\"]\n"
            "  y:\n    nodes: [{address: \"10.0.1.1:80\", weight: 3}]\n");
    cr_assert(eq(uint, bal_capacity_bp(f.s), 10000u), "at most 10000");
    fx_state(&f, CFG_CLUSTER_X, 0, BAL_NODE_DISABLED);
    cr_assert(eq(uint, bal_capacity_bp(f.s), 10000u), "no x weight in service");
    fx_load(&g, 0,
            "  x:\n    nodes: [{address: \"10.0.0.1:80\", weight: 0}]\n"
            "  y:\n    nodes: [\"10.0.1.1:80\"]\n");
    cr_assert(eq(uint, bal_capacity_bp(g.s), 10000u), "x of weight 0");
    fx_free(&g);
    fx_free(&f);
}

/* --- what `show nodes` says --- */

Test(bal_health_status, status_is_the_operator_state_then_the_health)
{
    static const struct {
        enum bal_node_state state;
        enum bal_health health;
        const char *want;
    } cases[] = {
        {BAL_NODE_UP, BAL_HEALTH_UP, "up"},
        {BAL_NODE_UP, BAL_HEALTH_DOWN, "down"},
        {BAL_NODE_UP, BAL_HEALTH_EJECTED, "ejected"},
        {BAL_NODE_DRAINING, BAL_HEALTH_UP, "draining"},
        {BAL_NODE_DRAINING, BAL_HEALTH_DOWN, "draining"},
        {BAL_NODE_DRAINING, BAL_HEALTH_EJECTED, "draining"},
        {BAL_NODE_DISABLED, BAL_HEALTH_UP, "disabled"},
        {BAL_NODE_DISABLED, BAL_HEALTH_DOWN, "disabled"},
        {BAL_NODE_DISABLED, BAL_HEALTH_EJECTED, "disabled"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct bal_node n = {.weight = 1, .state = cases[i].state, .health = cases[i].health};

        cr_assert(eq(str, (char *)bal_node_status_name(&n), (char *)cases[i].want), "case %zu", i);
    }
    cr_assert(eq(str, (char *)bal_node_state_name(BAL_NODE_UP), "up"));
    cr_assert(eq(str, (char *)bal_node_state_name(BAL_NODE_DRAINING), "draining"));
    cr_assert(eq(str, (char *)bal_node_state_name(BAL_NODE_DISABLED), "disabled"));
}

/* --- bal_which --- */

static int
which(const struct bal_snapshot *s, unsigned key, struct bal_choice *ch)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "client-%u", key);

    memset(ch, 0xa5, sizeof(*ch));
    return bal_which(s, buf, (size_t)n, ch);
}

Test(bal_health_which, which_reports_a_failover_from_a_dead_side)
{
    struct fx f;
    struct bal_state st = {0};

    fx_x4(&f, 100, "hash");
    fx_health(&f, CFG_CLUSTER_Y, 0, BAL_HEALTH_DOWN);
    fx_health(&f, CFG_CLUSTER_Y, 1, BAL_HEALTH_EJECTED);
    for (unsigned k = 0; k < 500; k++) {
        struct bal_choice w, p;

        cr_assert(eq(int, which(f.s, k, &w), 0));
        cr_assert(eq(int, (int)w.cluster, (int)CFG_CLUSTER_X));
        cr_assert(eq(int, (int)w.assigned, (int)CFG_CLUSTER_Y));
        cr_assert(w.failover);
        cr_assert(eq(int, (int)w.reason, (int)BAL_REASON_WEIGHT));
        cr_assert(ne(ptr, (void *)w.node, NULL));
        cr_assert(eq(int, pick(f.s, k, NULL, &st, &p), 0));
        cr_assert(eq(u32, w.node->id, p.node->id), "key %u: which and pick disagree", k);
    }
    fx_free(&f);
}

Test(bal_health_which, which_fails_over_to_a_round_robin_side)
{
    struct fx f;
    struct bal_choice ch;

    fx_x4(&f, 100, "round_robin");
    fx_health(&f, CFG_CLUSTER_Y, 0, BAL_HEALTH_DOWN);
    fx_state(&f, CFG_CLUSTER_Y, 1, BAL_NODE_DISABLED);
    cr_assert(eq(int, which(f.s, 9, &ch), 0));
    cr_assert(eq(int, (int)ch.cluster, (int)CFG_CLUSTER_X));
    cr_assert(eq(int, (int)ch.assigned, (int)CFG_CLUSTER_Y));
    cr_assert(ch.failover);
    cr_assert(eq(ptr, (void *)ch.node, NULL), "the key does not choose a round-robin node");
    fx_free(&f);
}

Test(bal_health_which, which_reports_no_node_when_failover_is_off)
{
    struct fx f;
    struct bal_choice ch;

    fx_load(&f, 100,
            "  x:\n    nodes: [\"10.0.0.1:80\"]\n"
            "  y:\n    failover: false\n    nodes: [\"10.0.1.1:80\"]\n");
    fx_health(&f, CFG_CLUSTER_Y, 0, BAL_HEALTH_DOWN);
    cr_assert(eq(int, which(f.s, 4, &ch), -1));
    cr_assert(eq(ptr, (void *)ch.node, NULL));
    cr_assert(eq(int, (int)ch.cluster, (int)CFG_CLUSTER_Y));
    cr_assert(eq(int, (int)ch.assigned, (int)CFG_CLUSTER_Y));
    cr_assert(not(ch.failover));
    fx_free(&f);
}

Test(bal_health_which, which_stays_on_a_side_with_a_healthy_node)
{
    struct fx f;

    fx_x4(&f, 100, "hash");
    fx_health(&f, CFG_CLUSTER_Y, 0, BAL_HEALTH_DOWN);
    for (unsigned k = 0; k < 200; k++) {
        struct bal_choice ch;

        cr_assert(eq(int, which(f.s, k, &ch), 0));
        cr_assert(eq(int, (int)ch.cluster, (int)CFG_CLUSTER_Y));
        cr_assert(not(ch.failover));
        cr_assert(eq(u32, ch.node->id, fx_id(&f, CFG_CLUSTER_Y, 1)));
    }
    fx_free(&f);
}

/* --- what snapshots carry --- */

#define LIMITS                                                                                     \
    "  x:\n    failover: true\n    max_connections: 7\n    max_pending: 9\n"                       \
    "    nodes: [\"10.0.0.1:80\", {address: \"10.0.0.2:80\", max_connections: 3, "                 \
    "max_pending: 4}]\n"                                                                           \
    "  y:\n    failover: false\n    nodes: [\"10.0.1.1:80\", \"10.0.1.2:80\"]\n"

Test(bal_health_snapshot, a_copy_keeps_health_limits_and_failover)
{
    struct fx f;
    struct bal_snapshot *c;

    fx_load(&f, 0, LIMITS);
    cr_assert(eq(uint, f.s->clusters[CFG_CLUSTER_X].nodes[0].max_conns, 7u));
    cr_assert(eq(uint, f.s->clusters[CFG_CLUSTER_X].nodes[0].max_pending, 9u));
    cr_assert(eq(uint, f.s->clusters[CFG_CLUSTER_X].nodes[1].max_conns, 3u));
    cr_assert(eq(uint, f.s->clusters[CFG_CLUSTER_X].nodes[1].max_pending, 4u));
    fx_health(&f, CFG_CLUSTER_X, 1, BAL_HEALTH_DOWN);
    fx_health(&f, CFG_CLUSTER_Y, 0, BAL_HEALTH_EJECTED);
    c = bal_snapshot_copy(f.s, 42);
    cr_assert(ne(ptr, c, NULL));
    for (int k = 0; k < CFG_CLUSTER_COUNT; k++) {
        const struct bal_cluster *a = &f.s->clusters[k], *b = &c->clusters[k];

        cr_assert(eq(int, (int)b->failover, (int)a->failover), "cluster %d", k);
        cr_assert(eq(uint, b->max_conns, a->max_conns), "cluster %d", k);
        cr_assert(eq(uint, b->max_pending, a->max_pending), "cluster %d", k);
        cr_assert(eq(sz, b->n_nodes, a->n_nodes));
        for (size_t i = 0; i < a->n_nodes; i++) {
            cr_assert(eq(int, (int)b->nodes[i].health, (int)a->nodes[i].health));
            cr_assert(eq(uint, b->nodes[i].max_conns, a->nodes[i].max_conns));
            cr_assert(eq(uint, b->nodes[i].max_pending, a->nodes[i].max_pending));
        }
    }
    /* The values themselves, so that a copy and its source wrong the same way fail too. */
    cr_assert(c->clusters[CFG_CLUSTER_X].failover);
    cr_assert(not(c->clusters[CFG_CLUSTER_Y].failover));
    cr_assert(eq(uint, c->clusters[CFG_CLUSTER_X].max_conns, 7u));
    cr_assert(eq(uint, c->clusters[CFG_CLUSTER_X].max_pending, 9u));
    cr_assert(eq(uint, c->clusters[CFG_CLUSTER_Y].max_conns, 0u));
    cr_assert(eq(uint, c->clusters[CFG_CLUSTER_Y].max_pending, 100u));
    cr_assert(eq(int, (int)c->clusters[CFG_CLUSTER_X].nodes[0].health, (int)BAL_HEALTH_UP));
    cr_assert(eq(int, (int)c->clusters[CFG_CLUSTER_X].nodes[1].health, (int)BAL_HEALTH_DOWN));
    cr_assert(eq(int, (int)c->clusters[CFG_CLUSTER_Y].nodes[0].health, (int)BAL_HEALTH_EJECTED));
    cr_assert(eq(uint, c->clusters[CFG_CLUSTER_X].nodes[1].max_conns, 3u));
    cr_assert(eq(uint, c->clusters[CFG_CLUSTER_X].nodes[1].max_pending, 4u));
    bal_snapshot_unref(c);
    fx_free(&f);
}

Test(bal_health_snapshot, an_added_node_takes_the_cluster_limits_and_is_up)
{
    struct fx f;
    struct xf_err err = {{0}};
    struct cfg_addr a = {0}, b = {0};
    struct bal_state st = {0};
    struct bal_choice ch;
    const struct bal_node *n;

    fx_load(&f, 100, LIMITS);
    fx_health(&f, CFG_CLUSTER_Y, 0, BAL_HEALTH_DOWN);
    fx_health(&f, CFG_CLUSTER_Y, 1, BAL_HEALTH_EJECTED);
    snprintf(a.text, sizeof(a.text), "10.0.0.9:80");
    cr_assert(eq(int,
                 bal_snapshot_add_node(f.s, CFG_CLUSTER_X, &a, 1,
                                       bal_snapshot_free_id(f.s, NULL, NULL), &err),
                 0),
              "%s", err.msg);
    n = &f.s->clusters[CFG_CLUSTER_X].nodes[2];
    cr_assert(eq(str, (char *)n->addr.text, "10.0.0.9:80"));
    cr_assert(eq(uint, n->max_conns, 7u), "the cluster's, not the sibling's 3");
    cr_assert(eq(uint, n->max_pending, 9u));
    cr_assert(eq(int, (int)n->health, (int)BAL_HEALTH_UP));
    cr_assert(eq(int, (int)n->state, (int)BAL_NODE_UP));
    snprintf(b.text, sizeof(b.text), "10.0.1.9:80");
    cr_assert(eq(int,
                 bal_snapshot_add_node(f.s, CFG_CLUSTER_Y, &b, 1,
                                       bal_snapshot_free_id(f.s, NULL, NULL), &err),
                 0),
              "%s", err.msg);
    n = &f.s->clusters[CFG_CLUSTER_Y].nodes[2];
    cr_assert(eq(uint, n->max_conns, 0u));
    cr_assert(eq(uint, n->max_pending, 100u));
    cr_assert(eq(int, (int)n->health, (int)BAL_HEALTH_UP));
    cr_assert(bal_node_takes(n));
    /* Among y's unhealthy nodes the new one takes every request. */
    for (unsigned k = 0; k < 100; k++) {
        cr_assert(eq(int, pick(f.s, k, NULL, &st, &ch), 0));
        cr_assert(eq(int, (int)ch.cluster, (int)CFG_CLUSTER_Y));
        cr_assert(not(ch.failover));
        cr_assert(eq(u32, ch.node->id, n->id));
    }
    fx_free(&f);
}
