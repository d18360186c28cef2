/* tests/unit/test_bal_reload.c -- bal_snapshot_reload: the snapshot a configuration reload puts
 * in force keeps the running state (weight, freeze, pins, what the operator did to nodes, ids,
 * health) and takes the rest from the new file. */
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "balancer/bal.h"

static struct cfg *
parse(const char *yaml)
{
    struct xf_err err = {{0}};
    struct cfg *cfg = cfg_parse(yaml, strlen(yaml), "t.yaml", &err);

    cr_assert(ne(ptr, cfg, NULL), "%s", err.msg);
    return cfg;
}

static const char old_yaml[] =
    "listen: [{address: \"127.0.0.1:8000\"}]\n"
    "split: {weight: 10, seed: one}\n"
    "clusters:\n"
    "  x:\n"
    "    nodes: [\"10.0.0.1:80\", {address: \"10.0.0.2:80\", weight: 3}]\n"
    "  y:\n"
    "    health: {path: /status}\n"
    "    nodes: [\"10.0.1.1:80\", \"10.0.1.2:80\"]\n";

static struct cfg *old_cfg;
static struct bal_snapshot *cur;

static void
setup(void)
{
    struct xf_err err = {{0}};

    old_cfg = parse(old_yaml);
    cur = bal_snapshot_new(old_cfg, NULL, 1, &err);
    cr_assert(ne(ptr, cur, NULL), "%s", err.msg);
}

static void
teardown(void)
{
    bal_snapshot_unref(cur);
    cfg_free(old_cfg);
}

TestSuite(bal_reload, .init = setup, .fini = teardown);

/* Replaces `cur` by a copy changed by the test (what the admin or the health checks publish). */
static struct bal_snapshot *
edit(void)
{
    struct bal_snapshot *c = bal_snapshot_copy(cur, cur->version + 1);

    cr_assert(ne(ptr, c, NULL));
    bal_snapshot_unref(cur);
    cur = c;
    return c;
}

static struct bal_node *
node(struct bal_snapshot *s, const char *addr)
{
    enum cfg_cluster_id c;
    size_t i;

    if (bal_snapshot_find(s, addr, &c, &i) == -1)
        return NULL;
    return &s->clusters[c].nodes[i];
}

static struct bal_snapshot *
reload(const char *yaml, struct cfg **cfg_out, bal_id_busy_fn busy)
{
    struct xf_err err = {{0}};
    struct cfg *cfg = parse(yaml);
    struct bal_snapshot *next = bal_snapshot_reload(cur, old_cfg, cfg, busy, NULL, 9, &err);

    cr_assert(ne(ptr, next, NULL), "%s", err.msg);
    cr_assert(eq(ptr, (void *)next->cfg, cfg), "the snapshot holds the new config");
    cr_assert(eq(ptr, (void *)next->split, &cfg->split));
    *cfg_out = cfg;
    return next;
}

Test(bal_reload, the_weight_freeze_and_pins_in_force_are_kept_not_the_file_s_weight)
{
    static const char yaml[] =
        "listen: [{address: \"127.0.0.1:8000\"}]\n"
        "split: {weight: 80, seed: two}\n"
        "clusters:\n"
        "  x: {nodes: [\"10.0.0.1:80\", {address: \"10.0.0.2:80\", weight: 3}]}\n"
        "  y: {health: {path: /status}, nodes: [\"10.0.1.1:80\", \"10.0.1.2:80\"]}\n";
    struct bal_snapshot *s = edit(), *next;
    struct cfg *cfg;

    s->weight_bp = 2500;
    s->freeze = true;
    s->freeze_since = 1234;
    s->pins = bal_pins_new();
    cr_assert(ne(ptr, s->pins, NULL));
    next = reload(yaml, &cfg, NULL);
    cr_assert(eq(u32, next->weight_bp, 2500));
    cr_assert(next->freeze);
    cr_assert(eq(i64, next->freeze_since, 1234));
    cr_assert(eq(ptr, next->pins, s->pins), "the pin table is shared, not lost");
    cr_assert(ne(u64, next->seed_hash, cur->seed_hash), "the split's rules are the new file's");
    cr_assert(eq(u64, next->version, 9));
    bal_snapshot_unref(next);
    cfg_free(cfg);
}

Test(bal_reload, a_node_new_in_the_file_gets_a_fresh_id_and_waits_for_its_checks)
{
    static const char yaml[] =
        "listen: [{address: \"127.0.0.1:8000\"}]\n"
        "split: {weight: 10, seed: one}\n"
        "clusters:\n"
        "  x: {nodes: [\"10.0.0.1:80\", {address: \"10.0.0.2:80\", weight: 3}]}\n"
        "  y:\n"
        "    health: {path: /status}\n"
        "    nodes: [\"10.0.1.1:80\", \"10.0.1.2:80\", \"10.0.1.3:80\"]\n";
    struct bal_snapshot *s = edit(), *next;
    struct bal_node *n;
    struct cfg *cfg;

    /* The running nodes passed their checks; the new one has not been checked. */
    node(s, "10.0.1.1:80")->health = BAL_HEALTH_UP;
    node(s, "10.0.1.2:80")->health = BAL_HEALTH_UP;
    next = reload(yaml, &cfg, NULL);
    cr_assert(eq(sz, next->clusters[CFG_CLUSTER_Y].n_nodes, 3));
    n = node(next, "10.0.1.3:80");
    cr_assert(ne(ptr, n, NULL));
    cr_assert(eq(u32, n->id, 4), "ids 0..3 are the running nodes'");
    cr_assert(eq(int, n->health, BAL_HEALTH_PENDING));
    cr_assert(eq(u32, next->max_id, 5));
    cr_assert(eq(int, node(next, "10.0.1.1:80")->health, BAL_HEALTH_UP), "running nodes stay up");
    cr_assert(eq(u32, node(next, "10.0.1.1:80")->id, node(cur, "10.0.1.1:80")->id));
    bal_snapshot_unref(next);
    cfg_free(cfg);
}

static bool
busy_one(void *arg, uint32_t id)
{
    (void)arg;
    return id == 1;
}

Test(bal_reload, a_node_gone_from_the_file_leaves_and_its_id_is_reused_only_once_free)
{
    static const char drop_x2[] =
        "listen: [{address: \"127.0.0.1:8000\"}]\n"
        "split: {weight: 10, seed: one}\n"
        "clusters:\n"
        "  x: {nodes: [\"10.0.0.1:80\"]}\n"
        "  y: {health: {path: /status}, nodes: [\"10.0.1.1:80\", \"10.0.1.2:80\"]}\n";
    static const char swap_x2[] =
        "listen: [{address: \"127.0.0.1:8000\"}]\n"
        "split: {weight: 10, seed: one}\n"
        "clusters:\n"
        "  x: {nodes: [\"10.0.0.1:80\", \"10.0.0.9:80\"]}\n"
        "  y: {health: {path: /status}, nodes: [\"10.0.1.1:80\", \"10.0.1.2:80\"]}\n";
    struct bal_snapshot *next;
    struct cfg *cfg;

    cr_assert(eq(u32, node(cur, "10.0.0.2:80")->id, 1));
    next = reload(drop_x2, &cfg, NULL);
    cr_assert(eq(sz, next->clusters[CFG_CLUSTER_X].n_nodes, 1));
    cr_assert(eq(ptr, node(next, "10.0.0.2:80"), NULL));
    bal_snapshot_unref(next);
    cfg_free(cfg);
    /* Removing one node and adding another at once: the removed node's id is still in use by its
     * requests in flight (it is in the running snapshot), so the new node gets another. */
    next = reload(swap_x2, &cfg, NULL);
    cr_assert(ne(u32, node(next, "10.0.0.9:80")->id, 1));
    bal_snapshot_unref(next);
    cfg_free(cfg);
    /* Once the node is gone from the running snapshot, its id is free unless still busy. */
    {
        struct xf_err err = {{0}};
        struct cfg *dropped = parse(drop_x2), *swapped = parse(swap_x2);
        struct bal_snapshot *running =
            bal_snapshot_reload(cur, old_cfg, dropped, NULL, NULL, 2, &err);
        struct bal_snapshot *busy, *free_again;

        cr_assert(ne(ptr, running, NULL), "%s", err.msg);
        busy = bal_snapshot_reload(running, dropped, swapped, busy_one, NULL, 3, &err);
        free_again = bal_snapshot_reload(running, dropped, swapped, NULL, NULL, 3, &err);
        cr_assert(ne(ptr, busy, NULL));
        cr_assert(ne(ptr, free_again, NULL));
        cr_assert(ne(u32, node(busy, "10.0.0.9:80")->id, 1), "id 1 still holds requests");
        cr_assert(eq(u32, node(free_again, "10.0.0.9:80")->id, 1), "id 1 is free again");
        bal_snapshot_unref(free_again);
        bal_snapshot_unref(busy);
        bal_snapshot_unref(running);
        cfg_free(swapped);
        cfg_free(dropped);
    }
}

Test(bal_reload, what_the_operator_did_to_nodes_is_kept)
{
    static const char yaml[] =
        "listen: [{address: \"127.0.0.1:8000\"}]\n"
        "split: {weight: 10, seed: one}\n"
        "clusters:\n"
        "  x: {nodes: [{address: \"10.0.0.1:80\", weight: 5}, "
        "{address: \"10.0.0.2:80\", weight: 7}]}\n"
        "  y: {health: {path: /status}, nodes: [\"10.0.1.1:80\", \"10.0.1.2:80\"]}\n";
    struct bal_snapshot *s = edit(), *next;
    struct xf_err err = {{0}};
    struct cfg_addr added = {0};
    struct cfg *cfg;
    enum cfg_cluster_id c;
    size_t i;

    /* Drained 10.0.0.1, reweighted 10.0.0.2 (3 -> 4), deleted 10.0.1.2, added 10.0.1.7. */
    node(s, "10.0.0.1:80")->state = BAL_NODE_DRAINING;
    node(s, "10.0.0.2:80")->weight = 4;
    cr_assert(eq(int, bal_snapshot_find(s, "10.0.1.2:80", &c, &i), 0));
    cr_assert(eq(int, bal_snapshot_del_node(s, c, i, &err), 0), "%s", err.msg);
    cr_assert(eq(int, cfg_addr_parse("10.0.1.7:80", &added, &err), 0), "%s", err.msg);
    cr_assert(eq(int, bal_snapshot_add_node(s, CFG_CLUSTER_Y, &added, 2, 8, &err), 0), "%s",
              err.msg);
    next = reload(yaml, &cfg, NULL);
    cr_assert(eq(int, node(next, "10.0.0.1:80")->state, BAL_NODE_DRAINING));
    cr_assert(eq(u32, node(next, "10.0.0.1:80")->weight, 5), "no override: the file's weight");
    cr_assert(eq(u32, node(next, "10.0.0.2:80")->weight, 4), "the operator's weight stays");
    cr_assert(eq(ptr, node(next, "10.0.1.2:80"), NULL), "deleted stays deleted");
    cr_assert(ne(ptr, node(next, "10.0.1.7:80"), NULL), "added stays");
    cr_assert(eq(u32, node(next, "10.0.1.7:80")->id, 8));
    cr_assert(eq(u32, node(next, "10.0.1.7:80")->weight, 2));
    bal_snapshot_unref(next);
    cfg_free(cfg);
}

Test(bal_reload, checks_turned_off_put_down_nodes_back_but_not_ejected_ones)
{
    static const char yaml[] =
        "listen: [{address: \"127.0.0.1:8000\"}]\n"
        "split: {weight: 10, seed: one}\n"
        "clusters:\n"
        "  x: {nodes: [\"10.0.0.1:80\", {address: \"10.0.0.2:80\", weight: 3}]}\n"
        "  y:\n"
        "    balance: least_conn\n"
        "    failover: false\n"
        "    nodes: [\"10.0.1.1:80\", \"10.0.1.2:80\", \"10.0.1.3:80\"]\n";
    struct bal_snapshot *s = edit(), *next;
    struct cfg *cfg;

    node(s, "10.0.1.1:80")->health = BAL_HEALTH_DOWN;
    node(s, "10.0.1.2:80")->health = BAL_HEALTH_EJECTED;
    next = reload(yaml, &cfg, NULL);
    cr_assert(eq(int, node(next, "10.0.1.1:80")->health, BAL_HEALTH_UP));
    cr_assert(eq(int, node(next, "10.0.1.2:80")->health, BAL_HEALTH_EJECTED));
    cr_assert(eq(int, node(next, "10.0.1.3:80")->health, BAL_HEALTH_UP), "no checks to wait for");
    cr_assert(not(next->clusters[CFG_CLUSTER_Y].checked));
    cr_assert(eq(int, next->clusters[CFG_CLUSTER_Y].balance, CFG_BALANCE_LEAST_CONN));
    cr_assert(not(next->clusters[CFG_CLUSTER_Y].failover));
    cr_assert(eq(sz, next->clusters[CFG_CLUSTER_Y].n_schedule, 2), "two nodes take requests");
    bal_snapshot_unref(next);
    cfg_free(cfg);
}

Test(bal_reload, the_config_lives_as_long_as_a_snapshot_holds_it)
{
    struct bal_snapshot *next;
    struct cfg *cfg;

    next = reload(old_yaml, &cfg, NULL);
    cr_assert(eq(u32, cfg->refs, 2));
    cfg_free(cfg);
    cr_assert(eq(u32, cfg->refs, 1), "the snapshot's hold is left");
    cr_assert(eq(str, next->split->seed, "one"), "still readable");
    bal_snapshot_unref(next); /* frees the config too: ASan would tell a leak or a double free */
}
