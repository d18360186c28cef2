/* tests/unit/test_adm_node.c -- the node commands through adm_exec without sockets: show, add,
 * set weight, drain, enable, del; their errors; the node lines of the state file. */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "admin/adm.h"

#include "tests/unit/adm_fixture.h"

TestSuite(adm_node, .init = fx_setup, .fini = fx_teardown);

/* The node of x or y at addr in the current snapshot, copied; asserts it exists. */
static struct bal_node
node_of(enum cfg_cluster_id c, const char *addr)
{
    struct bal_snapshot *s = bal_router_acquire(&fx_router);
    struct bal_node n = {0};
    bool found = false;

    for (size_t i = 0; i < s->clusters[c].n_nodes; i++)
        if (strcmp(s->clusters[c].nodes[i].addr.text, addr) == 0) {
            n = s->clusters[c].nodes[i];
            found = true;
        }
    bal_snapshot_unref(s);
    cr_assert(found, "no node %s", addr);
    return n;
}

static int
fx_info(void *arg, uint32_t id, unsigned *active, unsigned *idle, unsigned *tunnels)
{
    XF_UNUSED(arg);
    *active = id;
    *idle = 2 * id;
    *tunnels = 3 * id;
    return 0;
}

Test(adm_node, show_nodes_lists_every_node_with_its_state)
{
    cr_assert(eq(str, (char *)run_ok("show nodes"),
                 "cluster address weight state active idle check ejections note\n"
                 "x 10.0.0.1:8000 1 up - - - - -\n"
                 "x 10.0.0.2:8000 1 up - - - - -\n"
                 "y 10.0.1.1:8000 1 up - - - - -"));
    fx_st.node_info = fx_info;
    cr_assert(eq(str, (char *)run_ok("show nodes"),
                 "cluster address weight state active idle check ejections note\n"
                 "x 10.0.0.1:8000 1 up 0 0 - - -\n"
                 "x 10.0.0.2:8000 1 up 1 2 - - -\n"
                 "y 10.0.1.1:8000 1 up 2 4 - - -"));
}

Test(adm_node, show_tunnels_counts_each_nodes_tunnels_and_each_clusters_total)
{
    cr_assert(eq(str, (char *)run_ok("show tunnels"),
                 "cluster address tunnels\n"
                 "x 10.0.0.1:8000 0\n"
                 "x 10.0.0.2:8000 0\n"
                 "y 10.0.1.1:8000 0\n"
                 "total x=0 y=0"));
    fx_st.node_info = fx_info;
    cr_assert(eq(str, (char *)run_ok("show tunnels"),
                 "cluster address tunnels\n"
                 "x 10.0.0.1:8000 0\n"
                 "x 10.0.0.2:8000 3\n"
                 "y 10.0.1.1:8000 6\n"
                 "total x=3 y=6"));
    /* A node added at run time is listed with the others. */
    run_ok("add node y 10.0.1.2:8000");
    cr_assert(eq(str, (char *)run_ok("show tunnels"),
                 "cluster address tunnels\n"
                 "x 10.0.0.1:8000 0\n"
                 "x 10.0.0.2:8000 3\n"
                 "y 10.0.1.1:8000 6\n"
                 "y 10.0.1.2:8000 9\n"
                 "total x=3 y=15"));
}

/* What the health checks know, by node id: id 0 was never checked, id 1 failed with a 503 and
 * was ejected 3 times, id 2 passed; any other id is unknown. */
static int
fx_health(void *arg, uint32_t id, struct adm_node_health *out)
{
    static const char *const words[] = {"-", "fail:503", "ok:200"};

    cr_assert(eq(ptr, arg, (void *)&fx_st), "the callback gets its own argument back");
    if (id >= XF_ARRAY_LEN(words))
        return -1;
    snprintf(out->check, sizeof(out->check), "%s", words[id]);
    out->ejections = id == 1 ? 3 : 0;
    if (id == 1)
        snprintf(out->note, sizeof(out->note), "ejected until 14:03:12Z (5 failures in a row)");
    return 0;
}

/* A callback that knows no node at all. */
static int
fx_health_none(void *arg, uint32_t id, struct adm_node_health *out)
{
    XF_UNUSED(arg);
    XF_UNUSED(id);
    snprintf(out->check, sizeof(out->check), "garbage");
    snprintf(out->note, sizeof(out->note), "garbage");
    out->ejections = 99;
    return -1;
}

/* A callback whose word would break the columns (a blank, a control byte) or is empty. */
static int
fx_health_bad(void *arg, uint32_t id, struct adm_node_health *out)
{
    XF_UNUSED(arg);
    snprintf(out->check, sizeof(out->check), "%s", id == 0 ? "fail: x\t" : "");
    out->ejections = 0;
    return 0;
}

Test(adm_node, show_nodes_has_the_last_check_the_ejections_and_a_note)
{
    fx_st.health_info = fx_health;
    fx_st.health_info_arg = &fx_st;
    cr_assert(eq(str, (char *)run_ok("show nodes"),
                 "cluster address weight state active idle check ejections note\n"
                 "x 10.0.0.1:8000 1 up - - - 0 -\n"
                 "x 10.0.0.2:8000 1 up - - fail:503 3 ejected until 14:03:12Z (5 failures in a "
                 "row)\n"
                 "y 10.0.1.1:8000 1 up - - ok:200 0 -"));
    /* A node added at run time has an id the callback does not know yet. */
    run_ok("add node y 10.0.1.2:8000");
    cr_assert(ne(ptr, strstr(run_ok("show nodes"), "\ny 10.0.1.2:8000 1 up - - - - -"), NULL), "%s",
              fx_reply);
    fx_st.health_info = fx_health_none;
    cr_assert(ne(ptr, strstr(run_ok("show nodes"), "\nx 10.0.0.2:8000 1 up - - - - -\n"), NULL),
              "%s", fx_reply);
    fx_st.health_info = fx_health_bad;
    cr_assert(
        ne(ptr, strstr(run_ok("show nodes"), "\nx 10.0.0.1:8000 1 up - - fail:?x? 0 -\n"), NULL),
        "%s", fx_reply);
    cr_assert(ne(ptr, strstr(fx_reply, "\nx 10.0.0.2:8000 1 up - - - 0 -\n"), NULL), "%s",
              fx_reply);
}

Test(adm_node, show_nodes_state_is_the_operators_then_the_health)
{
    fx_set_health(CFG_CLUSTER_X, "10.0.0.1:8000", BAL_HEALTH_DOWN);
    fx_set_health(CFG_CLUSTER_Y, "10.0.1.1:8000", BAL_HEALTH_EJECTED);
    fx_set_health(CFG_CLUSTER_X, "10.0.0.2:8000", BAL_HEALTH_PENDING);
    cr_assert(eq(str, (char *)run_ok("show nodes"),
                 "cluster address weight state active idle check ejections note\n"
                 "x 10.0.0.1:8000 1 down - - - - down\n"
                 "x 10.0.0.2:8000 1 pending - - - - pending\n"
                 "y 10.0.1.1:8000 1 ejected - - - - ejected"));
    /* An operator's state shows over the health: draining says more than down. */
    run_ok("drain node x/10.0.0.1:8000");
    cr_assert(ne(ptr,
                 strstr(run_ok("show nodes"),
                        "\nx 10.0.0.1:8000 1 draining - - - - draining by the operator\n"),
                 NULL),
              "%s", fx_reply);
    run_ok("set node y/10.0.1.1:8000 weight 0");
    cr_assert(
        ne(ptr, strstr(run_ok("show nodes"), "\ny 10.0.1.1:8000 0 ejected - - - - weight 0"), NULL),
        "%s", fx_reply);
}

/* drain, enable and del speak of the operator's state whatever the health, and the state file
 * never holds a health: the checks find it again after a restart. */
Test(adm_node, node_commands_and_the_state_file_keep_the_operators_state)
{
    struct adm_persist p = {0};
    struct bal_snapshot *s;
    struct evbuffer *out = evbuffer_new();
    char *text;

    fx_set_health(CFG_CLUSTER_X, "10.0.0.1:8000", BAL_HEALTH_DOWN);
    fx_set_health(CFG_CLUSTER_X, "10.0.0.2:8000", BAL_HEALTH_EJECTED);
    cr_assert(eq(str, (char *)run_ok("drain node x/10.0.0.1:8000"),
                 "ok: node x/10.0.0.1:8000 draining (was up)"));
    cr_assert(eq(str, (char *)run_ok("enable node x/10.0.0.1:8000"),
                 "ok: node x/10.0.0.1:8000 up (was draining)"));
    cr_assert(eq(str, (char *)run_ok("enable node x/10.0.0.2:8000"),
                 "ok: node x/10.0.0.2:8000 up (unchanged)"));
    cr_assert(eq(int, node_of(CFG_CLUSTER_X, "10.0.0.1:8000").health, BAL_HEALTH_DOWN),
              "a node command keeps the health it found");
    run_ok("drain node x/10.0.0.2:8000");
    s = bal_router_acquire(&fx_router);
    cr_assert(eq(int, adm_node_diff(fx_cfg, s, &p.nodes, &p.n_nodes), 0));
    p.weight_bp = s->weight_bp;
    adm_persist_format(&p, out);
    text = calloc(1, evbuffer_get_length(out) + 1);
    evbuffer_remove(out, text, evbuffer_get_length(out));
    cr_assert(ne(ptr, strstr(text, "\nnode state x/10.0.0.2:8000 draining\n"), NULL), "%s", text);
    cr_assert(eq(ptr, strstr(text, "down"), NULL), "%s", text);
    cr_assert(eq(ptr, strstr(text, "ejected"), NULL), "%s", text);
    cr_assert(eq(ptr, strstr(text, "10.0.0.1"), NULL), "%s", text);
    cr_assert(
        eq(str, (char *)run_ok("del node x/10.0.0.2:8000"), "ok: deleted node x/10.0.0.2:8000"));
    cr_assert(
        ne(ptr, strstr(run_ok("show events"), "node x/10.0.0.2:8000 weight 1 draining -> -"), NULL),
        "%s", fx_reply);
    free(text);
    free(p.nodes);
    evbuffer_free(out);
    bal_snapshot_unref(s);
}

Test(adm_node, drain_publishes_the_state_and_records_the_event)
{
    uint64_t v = bal_router_version(&fx_router);
    const struct adm_event *e;

    cr_assert(eq(str, (char *)run_ok("drain node x/10.0.0.1:8000"),
                 "ok: node x/10.0.0.1:8000 draining (was up)"));
    cr_assert(gt(u64, bal_router_version(&fx_router), v));
    cr_assert(eq(int, (int)node_of(CFG_CLUSTER_X, "10.0.0.1:8000").state, BAL_NODE_DRAINING));
    e = adm_events_get(&fx_st.events, fx_st.events.n - 1);
    cr_assert(eq(str, (char *)e->what, "node x/10.0.0.1:8000"));
    cr_assert(eq(str, (char *)e->old_value, "up"));
    cr_assert(eq(str, (char *)e->new_value, "draining"));
    cr_assert(eq(str, (char *)run_ok("drain node x/10.0.0.1:8000"),
                 "ok: node x/10.0.0.1:8000 draining (unchanged)"));
    cr_assert(eq(str, (char *)run_ok("enable node x/10.0.0.1:8000"),
                 "ok: node x/10.0.0.1:8000 up (was draining)"));
    cr_assert(eq(int, (int)node_of(CFG_CLUSTER_X, "10.0.0.1:8000").state, BAL_NODE_UP));
}

Test(adm_node, add_node_takes_a_new_id_and_refuses_duplicates)
{
    struct bal_node n;

    cr_assert(eq(str, (char *)run_ok("add node y 10.0.1.9:8000 weight 3"),
                 "ok: added node y/10.0.1.9:8000 weight 3"));
    n = node_of(CFG_CLUSTER_Y, "10.0.1.9:8000");
    cr_assert(eq(u32, n.id, 3u));
    cr_assert(eq(uint, n.weight, 3u));
    cr_assert(eq(str, (char *)run_error("add node x 10.0.1.9:8000"),
                 "error: 10.0.1.9:8000 is already a node of y"));
    cr_assert(eq(str, (char *)run_error("add node y 10.0.0.1:8000"),
                 "error: 10.0.0.1:8000 is already a node of x"));
    cr_assert(eq(str, (char *)run_ok("add node x 10.0.0.7:8000"),
                 "ok: added node x/10.0.0.7:8000 weight 1"));
}

/* What the proxy holds, for the test below: one id, or none (UINT32_MAX). */
static uint32_t held_id = UINT32_MAX;

static bool
held_id_busy(void *arg, uint32_t id)
{
    (void)arg;
    return id == held_id;
}

Test(adm_node, a_removed_nodes_id_goes_to_the_next_node_once_the_proxy_let_go_of_it)
{
    char cmd[64];

    fx_st.id_busy = held_id_busy;
    cr_assert(eq(str, (char *)run_ok("add node y 10.0.1.9:8000"),
                 "ok: added node y/10.0.1.9:8000 weight 1"));
    cr_assert(eq(u32, node_of(CFG_CLUSTER_Y, "10.0.1.9:8000").id, 3u));
    run_ok("del node y/10.0.1.9:8000");
    held_id = 3; /* requests to it still in flight */
    run_ok("add node y 10.0.1.10:8000");
    cr_assert(eq(u32, node_of(CFG_CLUSTER_Y, "10.0.1.10:8000").id, 4u));
    held_id = UINT32_MAX;
    run_ok("add node x 10.0.0.9:8000");
    cr_assert(eq(u32, node_of(CFG_CLUSTER_X, "10.0.0.9:8000").id, 3u));
    /* However many come and go, the ids stay as few as the nodes present at once. */
    for (unsigned k = 0; k < 2000; k++) {
        snprintf(cmd, sizeof(cmd), "add node y 10.2.%u.%u:8000", k / 200, k % 200);
        run_ok(cmd);
        snprintf(cmd, sizeof(cmd), "del node y/10.2.%u.%u:8000", k / 200, k % 200);
        run_ok(cmd);
    }
    {
        struct bal_snapshot *snap = bal_router_acquire(&fx_router);
        uint32_t max_id = snap->max_id;

        bal_snapshot_unref(snap);
        cr_assert(le(u32, max_id, 6u), "ids grew to %u", max_id);
    }
}

Test(adm_node, set_node_weight_changes_it_within_0_to_1000)
{
    cr_assert(eq(str, (char *)run_ok("set node x/10.0.0.2:8000 weight 7"),
                 "ok: node x/10.0.0.2:8000 weight 7 (was 1)"));
    cr_assert(eq(uint, node_of(CFG_CLUSTER_X, "10.0.0.2:8000").weight, 7u));
    cr_assert(eq(str, (char *)run_error("set node x/10.0.0.2:8000 weight 1001"),
                 "error: weight must be an integer from 0 to 1000, got \"1001\""));
    cr_assert(eq(str, (char *)run_error("set node x/10.0.0.2:8000 weight -1"),
                 "error: weight must be an integer from 0 to 1000, got \"-1\""));
    cr_assert(eq(str, (char *)run_error("set node x/10.0.0.2:8000 size 3"),
                 "error: usage: set node CLUSTER/ADDRESS weight W"));
    cr_assert(eq(uint, node_of(CFG_CLUSTER_X, "10.0.0.2:8000").weight, 7u));
}

Test(adm_node, del_node_removes_it_but_not_the_last_of_a_cluster_without_force)
{
    cr_assert(
        eq(str, (char *)run_ok("del node x/10.0.0.2:8000"), "ok: deleted node x/10.0.0.2:8000"));
    cr_assert(eq(str, (char *)run_error("del node x/10.0.0.1:8000"),
                 "error: x/10.0.0.1:8000 is the last node of x: its requests would fail; "
                 "\"del node x/10.0.0.1:8000 force\" removes it anyway"));
    cr_assert(eq(str, (char *)run_ok("del node x/10.0.0.1:8000 force"),
                 "ok: deleted node x/10.0.0.1:8000"));
    cr_assert(eq(str, (char *)run_ok("show nodes"),
                 "cluster address weight state active idle check ejections note\n"
                 "y 10.0.1.1:8000 1 up - - - - -"));
}

Test(adm_node, bad_clusters_addresses_and_unknown_nodes_are_named)
{
    uint64_t v = bal_router_version(&fx_router);
    const char *reply;

    cr_assert(eq(str, (char *)run_error("drain node x/10.0.0.9:8000"),
                 "error: no node x/10.0.0.9:8000; show nodes lists them"));
    cr_assert(eq(str, (char *)run_error("drain node y/10.0.0.1:8000"),
                 "error: no node y/10.0.0.1:8000; show nodes lists them"));
    cr_assert(eq(str, (char *)run_error("enable node z/10.0.0.1:8000"),
                 "error: unknown cluster z in \"z/10.0.0.1:8000\"; expected x or y"));
    cr_assert(eq(str, (char *)run_error("del node 10.0.0.1:8000"),
                 "error: expected CLUSTER/ADDRESS (x/10.0.0.1:8000), got \"10.0.0.1:8000\""));
    cr_assert(eq(str, (char *)run_error("add node z 10.0.0.5:8000"),
                 "error: unknown cluster \"z\"; expected x or y"));
    reply = run_error("add node x not-an-address");
    cr_assert(eq(str, (char *)reply,
                 "error: bad address \"not-an-address\": expected host:port, as in "
                 "10.0.0.1:8000, got \"not-an-address\" (no port)"));
    cr_assert(eq(str, (char *)run_error("add node x 10.0.0.5:8000 weight"),
                 "error: usage: add node CLUSTER ADDRESS [weight W]"));
    cr_assert(eq(str, (char *)run_error("add node x 10.0.0.5:8000 weight ten"),
                 "error: weight must be an integer from 0 to 1000, got \"ten\""));
    cr_assert(eq(str, (char *)run_error("drain node"), "error: usage: drain node CLUSTER/ADDRESS"));
    cr_assert(eq(u64, bal_router_version(&fx_router), v), "an error published a snapshot");
}

Test(adm_node, node_changes_round_trip_through_the_state_file_text)
{
    struct bal_snapshot *s, *fresh;
    struct adm_persist p = {0}, back;
    struct xf_err err = {{0}};
    struct evbuffer *buf = evbuffer_new();
    char *text;
    size_t len;

    run_ok("add node y 10.0.1.9:8000 weight 2");
    run_ok("set node x/10.0.0.1:8000 weight 3");
    run_ok("drain node x/10.0.0.1:8000");
    run_ok("del node x/10.0.0.2:8000");
    s = bal_router_acquire(&fx_router);
    p.weight_bp = s->weight_bp;
    adm_layout(fx_cfg, p.layout, sizeof(p.layout));
    cr_assert(eq(int, adm_node_diff(fx_cfg, s, &p.nodes, &p.n_nodes), 0));
    adm_persist_format(&p, buf);
    len = evbuffer_get_length(buf);
    text = calloc(1, len + 1);
    evbuffer_remove(buf, text, len);
    cr_assert(ne(ptr,
                 strstr(text, "node del x/10.0.0.2:8000\n"
                              "node weight x/10.0.0.1:8000 3\n"
                              "node state x/10.0.0.1:8000 draining\n"
                              "node add y 10.0.1.9:8000 2\n"),
                 NULL),
              "%s", text);
    cr_assert(eq(int, adm_persist_parse(text, len, "state", &back, &err), 0), "%s", err.msg);
    cr_assert(eq(sz, back.n_nodes, (size_t)4));
    fresh = bal_snapshot_new(fx_cfg, NULL, 1, &err);
    cr_assert(eq(int, adm_node_apply(fresh, back.nodes, back.n_nodes), 4));
    cr_assert(eq(sz, fresh->clusters[0].n_nodes, (size_t)1));
    cr_assert(eq(uint, fresh->clusters[0].nodes[0].weight, 3u));
    cr_assert(eq(int, (int)fresh->clusters[0].nodes[0].state, BAL_NODE_DRAINING));
    cr_assert(eq(sz, fresh->clusters[1].n_nodes, (size_t)2));
    cr_assert(eq(str, fresh->clusters[1].nodes[1].addr.text, "10.0.1.9:8000"));
    cr_assert(eq(sz, fresh->clusters[0].n_schedule, (size_t)0), "a draining node is scheduled");
    bal_snapshot_unref(fresh);
    bal_snapshot_unref(s);
    adm_persist_fini(&back);
    free(p.nodes);
    free(text);
    evbuffer_free(buf);
}

Test(adm_node, a_bad_node_line_makes_the_state_file_unusable)
{
    static const char *const bad[] = {
        "version 1\nweight 0\nnode add z 10.0.0.1:80 1\n",
        "version 1\nweight 0\nnode weight x/10.0.0.1:80 1001\n",
        "version 1\nweight 0\nnode state x/10.0.0.1:80 sleepy\n",
        "version 1\nweight 0\nnode del 10.0.0.1:80\n",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct adm_persist p;
        struct xf_err err = {{0}};

        cr_assert(eq(int, adm_persist_parse(bad[i], strlen(bad[i]), "st", &p, &err), -1), "%s",
                  bad[i]);
        cr_assert(eq(int, strncmp(err.msg, "st:3: node", 10), 0), "%s", err.msg);
    }
}
