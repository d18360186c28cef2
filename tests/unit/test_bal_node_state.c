/* tests/unit/test_bal_node_state.c -- node states and node changes in a snapshot: a draining or
 * disabled node takes no new key while the other nodes keep theirs (rendezvous hashing), the
 * round-robin schedule and least_conn skip it, added nodes take fresh ids. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "balancer/bal.h"

#define N_KEYS 20000u

struct fx {
    struct cfg cfg;
    struct cfg_node nodes[CFG_CLUSTER_COUNT][4];
};

/* x: three nodes of weights 1, 2, 1 with the given balance; y: one node. */
static struct bal_snapshot *
fx_snap(struct fx *f, enum cfg_balance balance)
{
    static const char *addrs[] = {"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"};
    struct xf_err err = {{0}};
    struct bal_snapshot *s;

    memset(f, 0, sizeof(*f));
    f->cfg.split.seed = "unit";
    for (size_t i = 0; i < 3; i++) {
        snprintf(f->nodes[0][i].addr.text, sizeof(f->nodes[0][i].addr.text), "%s", addrs[i]);
        f->nodes[0][i].weight = i == 1 ? 2 : 1;
    }
    snprintf(f->nodes[1][0].addr.text, sizeof(f->nodes[1][0].addr.text), "10.0.1.1:80");
    f->nodes[1][0].weight = 1;
    f->cfg.clusters[0].nodes = f->nodes[0];
    f->cfg.clusters[0].n_nodes = 3;
    f->cfg.clusters[0].balance = balance;
    f->cfg.clusters[1].nodes = f->nodes[1];
    f->cfg.clusters[1].n_nodes = 1;
    s = bal_snapshot_new(&f->cfg, NULL, 1, &err);
    cr_assert(ne(ptr, s, NULL), "%s", err.msg);
    return s;
}

/* A copy of `s` with node i of x in `state`, schedules rebuilt. */
static struct bal_snapshot *
with_state(const struct bal_snapshot *s, size_t i, enum bal_node_state state)
{
    struct xf_err err = {{0}};
    struct bal_snapshot *c = bal_snapshot_copy(s, s->version + 1);

    cr_assert(ne(ptr, c, NULL));
    c->clusters[0].nodes[i].state = state;
    cr_assert(eq(int, bal_snapshot_rebuild(c, &err), 0), "%s", err.msg);
    return c;
}

static const struct bal_node *
hrw(const struct bal_snapshot *s, unsigned k)
{
    char key[32];
    int n = snprintf(key, sizeof(key), "client-%u", k);

    return bal_node_hrw(&s->clusters[0], bal_node_key_hash(key, (size_t)n, s->seed_hash));
}

static void
drained_node_loses_only_its_own_keys(enum bal_node_state state)
{
    struct fx f;
    struct bal_snapshot *s = fx_snap(&f, CFG_BALANCE_HASH), *d = with_state(s, 1, state);
    unsigned moved = 0, had = 0;

    for (unsigned k = 0; k < N_KEYS; k++) {
        const struct bal_node *before = hrw(s, k), *after = hrw(d, k);

        cr_assert(ne(ptr, (void *)after, NULL));
        cr_assert(ne(u32, after->id, d->clusters[0].nodes[1].id), "key %u went to the node", k);
        if (before->id == s->clusters[0].nodes[1].id)
            had++;
        else if (before->id != after->id)
            moved++;
    }
    cr_assert(eq(u32, moved, 0u), "%u keys of other nodes moved", moved);
    /* Weight 2 of 4: about half of the keys were the node's (tolerance 2 points). */
    cr_assert(le(dbl, fabs(100.0 * had / N_KEYS - 50.0), 2.0), "the node had %u keys", had);
    bal_snapshot_unref(d);
    bal_snapshot_unref(s);
}

Test(bal_node_state, a_draining_node_gets_no_new_key_and_no_other_key_moves)
{
    drained_node_loses_only_its_own_keys(BAL_NODE_DRAINING);
}

Test(bal_node_state, a_disabled_node_gets_no_new_key_and_no_other_key_moves)
{
    drained_node_loses_only_its_own_keys(BAL_NODE_DISABLED);
}

Test(bal_node_state, enabling_a_drained_node_gives_it_back_the_same_keys)
{
    struct fx f;
    struct bal_snapshot *s = fx_snap(&f, CFG_BALANCE_HASH);
    struct bal_snapshot *d = with_state(s, 1, BAL_NODE_DRAINING);
    struct bal_snapshot *e = with_state(d, 1, BAL_NODE_UP);

    for (unsigned k = 0; k < N_KEYS; k++)
        cr_assert(eq(u32, hrw(s, k)->id, hrw(e, k)->id), "key %u", k);
    bal_snapshot_unref(e);
    bal_snapshot_unref(d);
    bal_snapshot_unref(s);
}

Test(bal_node_state, the_round_robin_schedule_leaves_out_a_drained_node)
{
    struct fx f;
    struct bal_snapshot *s = fx_snap(&f, CFG_BALANCE_ROUND_ROBIN);
    struct bal_snapshot *d = with_state(s, 1, BAL_NODE_DRAINING);
    struct bal_state st = {0};
    unsigned counts[3] = {0};

    cr_assert(eq(sz, s->clusters[0].n_schedule, (size_t)4));
    cr_assert(eq(sz, d->clusters[0].n_schedule, (size_t)2));
    for (unsigned k = 0; k < 100; k++) {
        const struct bal_node *n =
            bal_node_pick(&d->clusters[0], CFG_CLUSTER_X, "k", 1, d->seed_hash, &st);

        cr_assert(ne(ptr, (void *)n, NULL));
        counts[n - d->clusters[0].nodes]++;
    }
    cr_assert(eq(u32, counts[1], 0u));
    cr_assert(eq(u32, counts[0], 50u));
    cr_assert(eq(u32, counts[2], 50u));
    bal_snapshot_unref(d);
    bal_snapshot_unref(s);
}

Test(bal_node_state, least_conn_skips_a_drained_node_even_when_it_is_idle)
{
    struct fx f;
    struct bal_snapshot *s = fx_snap(&f, CFG_BALANCE_LEAST_CONN);
    struct bal_snapshot *d = with_state(s, 0, BAL_NODE_DISABLED);
    uint32_t active[8] = {0};
    struct bal_state st = {.active = active};

    active[d->clusters[0].nodes[1].id] = 5;
    active[d->clusters[0].nodes[2].id] = 5;
    for (unsigned k = 0; k < 20; k++) {
        const struct bal_node *n =
            bal_node_pick(&d->clusters[0], CFG_CLUSTER_X, "k", 1, d->seed_hash, &st);

        cr_assert(ne(ptr, (void *)n, NULL));
        cr_assert(ne(u32, n->id, d->clusters[0].nodes[0].id));
    }
    bal_snapshot_unref(d);
    bal_snapshot_unref(s);
}

Test(bal_node_state, a_cluster_with_every_node_drained_has_no_node)
{
    struct fx f;
    struct bal_snapshot *s = fx_snap(&f, CFG_BALANCE_ROUND_ROBIN);
    struct bal_snapshot *c = bal_snapshot_copy(s, 2);
    struct xf_err err = {{0}};
    struct bal_state st = {0};

    for (size_t i = 0; i < 3; i++)
        c->clusters[0].nodes[i].state = BAL_NODE_DRAINING;
    cr_assert(eq(int, bal_snapshot_rebuild(c, &err), 0));
    cr_assert(eq(sz, c->clusters[0].n_schedule, (size_t)0));
    cr_assert(eq(ptr, (void *)bal_node_pick(&c->clusters[0], CFG_CLUSTER_X, "k", 1, 0, &st), NULL));
    bal_snapshot_unref(c);
    bal_snapshot_unref(s);
}

/* A busy callback for the tests: ids below *(uint32_t *)arg are held. */
static bool
fx_ids_below_busy(void *arg, uint32_t id)
{
    return id < *(const uint32_t *)arg;
}

Test(bal_node_state, an_added_node_takes_a_new_id_and_a_deleted_one_is_reused_once_free)
{
    struct fx f;
    struct bal_snapshot *s = fx_snap(&f, CFG_BALANCE_ROUND_ROBIN);
    struct bal_snapshot *c = bal_snapshot_copy(s, 2);
    struct xf_err err = {{0}};
    struct cfg_addr a = {0};
    enum cfg_cluster_id cl;
    uint32_t held = 5;
    size_t i;

    cr_assert(eq(u32, s->max_id, 4u));
    snprintf(a.text, sizeof(a.text), "10.0.0.9:80");
    cr_assert(eq(u32, bal_snapshot_free_id(c, NULL, NULL), 4u)); /* 0..3 are the config's */
    cr_assert(eq(int, bal_snapshot_add_node(c, CFG_CLUSTER_X, &a, 3, 4, &err), 0));
    cr_assert(eq(u32, c->max_id, 5u));
    cr_assert(eq(int, bal_snapshot_find(c, "10.0.0.9:80", &cl, &i), 0));
    cr_assert(eq(int, (int)cl, (int)CFG_CLUSTER_X));
    cr_assert(eq(u32, c->clusters[0].nodes[i].id, 4u));
    cr_assert(eq(sz, c->clusters[0].n_schedule, (size_t)7));
    cr_assert(eq(int, bal_snapshot_del_node(c, CFG_CLUSTER_X, i, &err), 0));
    cr_assert(eq(int, bal_snapshot_find(c, "10.0.0.9:80", &cl, &i), -1));
    cr_assert(eq(sz, c->clusters[0].n_schedule, (size_t)4));
    /* Still held (requests in flight to the removed node): a new id. */
    cr_assert(eq(u32, bal_snapshot_free_id(c, fx_ids_below_busy, &held), 5u));
    /* Free again: the same id. */
    cr_assert(eq(u32, bal_snapshot_free_id(c, NULL, NULL), 4u));
    cr_assert(eq(int, bal_snapshot_add_node(c, CFG_CLUSTER_Y, &a, 1, 4, &err), 0));
    cr_assert(eq(u32, c->clusters[1].nodes[1].id, 4u));
    cr_assert(eq(u32, c->max_id, 5u));
    bal_snapshot_unref(c);
    bal_snapshot_unref(s);
}

Test(bal_node_state, nodes_added_and_removed_many_times_keep_the_ids_few)
{
    struct fx f;
    struct bal_snapshot *s = fx_snap(&f, CFG_BALANCE_ROUND_ROBIN);
    struct bal_snapshot *c = bal_snapshot_copy(s, 2);
    struct xf_err err = {{0}};
    struct cfg_addr a = {0};
    enum cfg_cluster_id cl;
    size_t i;

    for (unsigned k = 0; k < 20000; k++) {
        snprintf(a.text, sizeof(a.text), "10.1.%u.%u:80", (k / 250) % 250, k % 250);
        cr_assert(eq(int,
                     bal_snapshot_add_node(c, CFG_CLUSTER_Y, &a, 1,
                                           bal_snapshot_free_id(c, NULL, NULL), &err),
                     0));
        cr_assert(eq(int, bal_snapshot_find(c, a.text, &cl, &i), 0));
        cr_assert(eq(int, bal_snapshot_del_node(c, cl, i, &err), 0));
    }
    cr_assert(eq(u32, c->max_id, 5u), "ids grew to %u", c->max_id);
    bal_snapshot_unref(c);
    bal_snapshot_unref(s);
}
