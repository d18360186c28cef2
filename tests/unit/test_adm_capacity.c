/* tests/unit/test_adm_capacity.c -- the capacity check of set weight, promote and ramp: what y
 * can take against x, refusals and their numbers, force, and a ramp that pauses at capacity. */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "admin/adm.h"

#include "tests/unit/adm_fixture.h"

/*
 * The fixture: x has two nodes of weight 1, y one node of weight 1, weight 25. So y can take
 * 100 x 1 / 2 = 50 % of the clients.
 */
static void
fx_capacity_setup(void)
{
    fx_setup();
    fx_use_clock();
}

TestSuite(adm_capacity, .init = fx_capacity_setup, .fini = fx_teardown);

static unsigned
capacity(void)
{
    struct bal_snapshot *s = bal_router_acquire(&fx_router);
    unsigned bp = bal_capacity_bp(s);

    bal_snapshot_unref(s);
    return bp;
}

Test(adm_capacity, raising_the_weight_over_capacity_is_refused)
{
    uint64_t v = bal_router_version(&fx_router);
    size_t events = fx_st.events.n;

    cr_assert(eq(uint, capacity(), 5000u));
    cr_assert(eq(
        str, (char *)run_error("set weight 50.01"),
        "error: y can take at most 50.00% of clients now (capacity: healthy weight 1 of y against "
        "2 of x); 50.01% would overload it; add \"force\" to do it anyway"));
    cr_assert(eq(uint, fx_weight(), 2500u), "a refused weight changes nothing");
    cr_assert(eq(u64, bal_router_version(&fx_router), v), "nothing was published");
    cr_assert(eq(sz, fx_st.events.n, events), "a refusal is not an event");
    cr_assert(eq(str, (char *)run_ok("set weight 50"), "ok: weight y 50.00 (was 25.00)"),
              "up to the capacity is allowed");
}

Test(adm_capacity, force_goes_past_capacity_and_is_in_the_trail)
{
    cr_assert(eq(
        str, (char *)run_ok("set weight 80 force"),
        "ok: weight y 80.00 (was 25.00)\n"
        "note: forced: y can take at most 50.00% of clients now (capacity: healthy weight 1 of y "
        "against 2 of x); 80.00% would overload it"));
    cr_assert(eq(uint, fx_weight(), 8000u));
    cr_assert(ne(ptr,
                 strstr(run_ok("show events"),
                        "uid=1000 pid=4242 \"set weight 80 force\" weight 25.00 -> 80.00"),
                 NULL),
              "%s", fx_reply);
    /* force where it is not needed: no note. */
    cr_assert(eq(str, (char *)run_ok("SET WEIGHT 40 FORCE"), "ok: weight y 40.00 (was 80.00)"));
}

Test(adm_capacity, lowering_is_never_refused_even_over_capacity)
{
    run_ok("set weight 90 force");
    fx_set_health(CFG_CLUSTER_Y, "10.0.1.1:8000", BAL_HEALTH_DOWN);
    cr_assert(eq(uint, capacity(), 0u));
    cr_assert(eq(str, (char *)run_ok("set weight 70"), "ok: weight y 70.00 (was 90.00)"));
    cr_assert(eq(str, (char *)run_ok("set weight 70"), "ok: weight y 70.00 (unchanged)"));
    cr_assert(eq(
        str, (char *)run_error("set weight 70.01"),
        "error: y can take at most 0.00% of clients now (capacity: healthy weight 0 of y against 2 "
        "of x; missing: y/10.0.1.1:8000 down); 70.01% would overload it; add \"force\" to do it "
        "anyway"));
    cr_assert(
        eq(int, strncmp(run_ok("ramp 10 over 1m"), "ok: ramping y from 70.00 to 10.00", 33), 0),
        "%s", fx_reply);
    fx_at(60000);
    cr_assert(eq(uint, fx_weight(), 1000u), "a ramp down is never paused");
    cr_assert(eq(str, (char *)run_ok("rollback"), "ok: rolled back: weight y 0.00 (was 10.00)"));
}

/* Capacity = 100 x (y's weight that takes requests) / (x's weight in service, whatever its
 * health), at most 100. */
Test(adm_capacity, the_capacity_follows_the_formula)
{
    run_ok("add node y 10.0.1.2:8000 weight 3");
    cr_assert(eq(uint, capacity(), 10000u), "4 against 2: at most 100 %");
    fx_set_health(CFG_CLUSTER_Y, "10.0.1.2:8000", BAL_HEALTH_EJECTED);
    cr_assert(eq(uint, capacity(), 5000u), "an ejected node of y does not count");
    run_ok("set node y/10.0.1.2:8000 weight 0");
    fx_set_health(CFG_CLUSTER_Y, "10.0.1.2:8000", BAL_HEALTH_UP);
    cr_assert(eq(uint, capacity(), 5000u), "nor does one of weight 0");
    run_ok("set node y/10.0.1.2:8000 weight 1");
    run_ok("drain node y/10.0.1.2:8000");
    cr_assert(eq(uint, capacity(), 5000u), "nor a drained one");
    fx_set_health(CFG_CLUSTER_X, "10.0.0.1:8000", BAL_HEALTH_DOWN);
    cr_assert(eq(uint, capacity(), 5000u), "a node of x counts whatever its health");
    run_ok("set node x/10.0.0.2:8000 weight 2");
    cr_assert(eq(uint, capacity(), 3333u), "1 against 3");
    cr_assert(eq(str, (char *)run_error("set weight 33.34"),
                 "error: y can take at most 33.33% of clients now (capacity: healthy weight 1 of y "
                 "against 3 of x; missing: y/10.0.1.2:8000 draining by the operator); 33.34% would "
                 "overload it; add \"force\" to do it anyway"));
    run_ok("drain node x/10.0.0.2:8000");
    cr_assert(eq(uint, capacity(), 10000u), "x's drained node does not count: 1 against 1");
    run_ok("drain node x/10.0.0.1:8000");
    cr_assert(eq(uint, capacity(), 10000u), "no weight of x in service: no limit");
    cr_assert(eq(str, (char *)run_ok("promote"), "ok: promoted: weight y 100.00 (was 25.00)"));
}

Test(adm_capacity, promote_is_refused_over_capacity_unless_forced)
{
    cr_assert(eq(
        str, (char *)run_error("promote"),
        "error: y can take at most 50.00% of clients now (capacity: healthy weight 1 of y against "
        "2 of x); 100.00% would overload it; add \"force\" to do it anyway"));
    cr_assert(eq(uint, fx_weight(), 2500u));
    cr_assert(eq(str, (char *)run_error("promote please"), "error: usage: promote [force]"));
    cr_assert(eq(int,
                 strncmp(run_ok("promote force"),
                         "ok: promoted: weight y 100.00 (was 25.00)\n"
                         "note: forced: ",
                         55),
                 0),
              "%s", fx_reply);
    cr_assert(
        ne(ptr, strstr(run_ok("show events"), "\"promote force\" weight 25.00 -> 100.00"), NULL),
        "%s", fx_reply);
    cr_assert(eq(str, (char *)run_ok("promote"), "ok: promoted: weight y 100.00 (unchanged)"),
              "not a raise: nothing to refuse");
}

Test(adm_capacity, a_refused_weight_leaves_a_ramp_running)
{
    run_ok("ramp 40 over 4s step 5");
    cr_assert(
        eq(int, strncmp(run_error("set weight 60"), "error: y can take at most 50.00%", 32), 0),
        "%s", fx_reply);
    cr_assert(eq(int, fx_st.ramp.state, ADM_RAMP_RUNNING));
    fx_at(4000);
    cr_assert(eq(uint, fx_weight(), 4000u));
}

Test(adm_capacity, a_ramp_over_capacity_is_refused_unless_forced)
{
    cr_assert(eq(
        str, (char *)run_error("ramp 60 over 10s"),
        "error: y can take at most 50.00% of clients now (capacity: healthy weight 1 of y against "
        "2 of x); 60.00% would overload it; add \"force\" to do it anyway"));
    cr_assert(eq(int, fx_st.ramp.state, ADM_RAMP_NONE));
    cr_assert(
        eq(str, (char *)run_error("ramp 60 over 10s please"),
           "error: usage: ramp TO over DURATION [step P] [guarded] [force] (or ramp pause, ramp "
           "resume, ramp cancel)"));
    cr_assert(
        eq(str, (char *)run_error("ramp 60 over 10s force step 5"),
           "error: usage: ramp TO over DURATION [step P] [guarded] [force] (or ramp pause, ramp "
           "resume, ramp cancel)"));
    /* The plan's own errors come first. */
    cr_assert(eq(str, (char *)run_error("ramp 60 over 0s"),
                 "error: the duration must be more than 0 (such as 30s, 10m or 1h)"));
    cr_assert(eq(
        str, (char *)run_ok("ramp 60 over 10s step 5 force"),
        "ok: ramping y from 25.00 to 60.00 over 10s: 7 steps of 5.00, one every 1s428ms\n"
        "note: forced: y can take at most 50.00% of clients now (capacity: healthy weight 1 of y "
        "against 2 of x); 60.00% would overload it"));
    cr_assert(fx_st.ramp.force);
    fx_at(10000);
    cr_assert(eq(uint, fx_weight(), 6000u), "a forced ramp's steps are not checked");
    cr_assert(eq(int, fx_st.ramp.state, ADM_RAMP_NONE));
}

Test(adm_capacity, a_forced_ramp_goes_on_when_y_loses_nodes)
{
    run_ok("ramp 45 over 4s step 5 force");
    fx_at(1000);
    fx_set_health(CFG_CLUSTER_Y, "10.0.1.1:8000", BAL_HEALTH_DOWN);
    fx_at(4000);
    cr_assert(eq(uint, fx_weight(), 4500u));
    cr_assert(eq(int, fx_st.ramp.state, ADM_RAMP_NONE));
}

/*
 * y has two nodes of weight 1 against x's 2: capacity 100 %. A ramp from 25 to 75 in steps of 5
 * (10 steps, one a second) loses one of y's nodes after 2 s: capacity 50 %. The steps up to 50
 * are taken, the one to 55 pauses the ramp.
 */
static void
ramp_until_held(void)
{
    run_ok("add node y 10.0.1.2:8000");
    run_ok("ramp 75 over 10s step 5");
    fx_at(2000);
    cr_assert(eq(uint, fx_weight(), 3500u));
    fx_set_health(CFG_CLUSTER_Y, "10.0.1.2:8000", BAL_HEALTH_DOWN);
    fx_at(10000); /* late: every step is due; those y can take are taken */
    cr_assert(eq(uint, fx_weight(), 5000u));
    cr_assert(eq(int, fx_st.ramp.state, ADM_RAMP_PAUSED));
    cr_assert(fx_st.ramp.capacity_paused);
    cr_assert(eq(uint, fx_st.ramp.done, 5u));
}

Test(adm_capacity, a_ramp_step_over_capacity_pauses_the_ramp)
{
    const char *show;

    ramp_until_held();
    fx_at(20000);
    cr_assert(eq(uint, fx_weight(), 5000u), "a paused ramp takes no step");
    show = run_ok("show ramp");
    cr_assert(
        eq(int,
           strncmp(show,
                   "ramp paused\n"
                   "reason capacity: y can take at most 50.00% of clients now "
                   "(capacity: healthy weight 1 of y against 2 of x; missing: y/10.0.1.2:8000 "
                   "down); 55.00% would overload it\n"
                   "from 25.00\n",
                   strlen("ramp paused\nreason capacity: y can take at most 50.00% of "
                          "clients now (capacity: healthy weight 1 of y against 2 of x; missing: "
                          "y/10.0.1.2:8000 down); 55.00% would overload it\nfrom 25.00\n")),
           0),
        "%s", show);
    cr_assert(ne(ptr, strstr(show, "\nweight 50.00\nprogress 5/10 steps, 50%\nnext 55.00 "), NULL),
              "%s", show);
    cr_assert(ne(ptr,
                 strstr(run_ok("show events"),
                        "uid=1000 pid=4242 \"ramp 75 over 10s step 5\" ramp running to 75.00 -> "
                        "paused to 75.00 at capacity 50.00; missing: y/10.0.1.2:8000 down"),
                 NULL),
              "%s", fx_reply);
    cr_assert(eq(str, (char *)run_error("ramp pause"),
                 "error: the ramp is already paused (\"ramp resume\" goes on)"));
}

Test(adm_capacity, resume_waits_until_y_can_take_the_next_step)
{
    ramp_until_held();
    cr_assert(eq(
        str, (char *)run_error("ramp resume"),
        "error: y can take at most 50.00% of clients now (capacity: healthy weight 1 of y against "
        "2 of x; missing: y/10.0.1.2:8000 down); 55.00% would overload it; the ramp stays paused "
        "(\"ramp cancel\" and a new ramp with \"force\" go on anyway)"));
    cr_assert(eq(int, fx_st.ramp.state, ADM_RAMP_PAUSED));
    fx_set_health(CFG_CLUSTER_Y, "10.0.1.2:8000", BAL_HEALTH_UP);
    cr_assert(ne(ptr,
                 strstr(run_ok("show ramp"),
                        "\nreason capacity: the step to 55.00% was over what y could take; it can "
                        "take 100.00% now (\"ramp resume\" goes on)\n"),
                 NULL),
              "%s", fx_reply);
    /* The held step was due when the ramp paused: it comes with the resume. */
    cr_assert(eq(str, (char *)run_ok("ramp resume"),
                 "ok: ramp resumed at weight y 50.00; next step to 55.00 in 0.0s"));
    cr_assert(eq(uint, fx_weight(), 5500u));
    cr_assert(not(fx_st.ramp.capacity_paused));
    fx_at(10500);
    cr_assert(eq(uint, fx_weight(), 5500u), "the steps after it keep their pace");
    fx_at(11000);
    cr_assert(eq(uint, fx_weight(), 6000u));
    fx_at(15000);
    cr_assert(eq(uint, fx_weight(), 7500u));
    cr_assert(eq(int, fx_st.ramp.state, ADM_RAMP_NONE));
}

Test(adm_capacity, an_operators_pause_says_so_in_show_ramp)
{
    run_ok("ramp 40 over 3s step 5");
    run_ok("ramp pause");
    cr_assert(eq(int,
                 strncmp(run_ok("show ramp"), "ramp paused\nreason operator: \"ramp pause\"\n", 41),
                 0),
              "%s", fx_reply);
}

/* The state file keeps a pause at capacity as its own state, and force in the command. */
Test(adm_capacity, the_state_file_keeps_the_pause_reason_and_force)
{
    struct adm_persist p = {.weight_bp = 5000}, q;
    struct evbuffer *out = evbuffer_new();
    struct xf_err err = {{0}};
    char *text;
    size_t len;

    ramp_until_held();
    p.ramp = fx_st.ramp;
    /* On the wall clock, as adm_state_save writes it: the fixture's clock starts near 0. */
    adm_ramp_rebase(&p.ramp, (int64_t)fx_st.mono_ms(), INT64_C(1764470400000));
    adm_layout(fx_cfg, p.layout, sizeof(p.layout));
    adm_persist_format(&p, out);
    len = evbuffer_get_length(out);
    text = calloc(1, len + 1);
    evbuffer_remove(out, text, len);
    cr_assert(ne(ptr, strstr(text, "\nramp paused_capacity 25.00 75.00 5.00 "), NULL), "%s", text);
    cr_assert(eq(int, adm_persist_parse(text, len, "state", &q, &err), 0), "%s", err.msg);
    cr_assert(eq(int, q.ramp.state, ADM_RAMP_PAUSED));
    cr_assert(q.ramp.capacity_paused);
    cr_assert(not(q.ramp.force));
    adm_persist_fini(&q);
    free(text);

    p.ramp.state = ADM_RAMP_RUNNING;
    p.ramp.capacity_paused = false;
    snprintf(p.ramp.command, sizeof(p.ramp.command), "ramp 75 over 10s step 5 force");
    adm_persist_format(&p, out);
    len = evbuffer_get_length(out);
    text = calloc(1, len + 1);
    evbuffer_remove(out, text, len);
    cr_assert(ne(ptr, strstr(text, "\nramp running 25.00 75.00 5.00 "), NULL), "%s", text);
    cr_assert(eq(int, adm_persist_parse(text, len, "state", &q, &err), 0), "%s", err.msg);
    cr_assert(q.ramp.force, "a command ending in force");
    cr_assert(not(q.ramp.capacity_paused));
    adm_persist_fini(&q);
    free(text);
    evbuffer_free(out);
}

/* What the health checks say of a missing node (adm_health_info_fn's note). */
static int
fx_note(void *arg, uint32_t id, struct adm_node_health *out)
{
    XF_UNUSED(arg);
    XF_UNUSED(id);
    snprintf(out->check, sizeof(out->check), "-");
    snprintf(out->note, sizeof(out->note), "ejected until 14:03:12Z (5 failures in a row)");
    return 0;
}

Test(adm_capacity, a_refusal_names_the_nodes_y_is_missing_and_why)
{
    run_ok("add node y 10.0.1.2:8000");
    run_ok("add node y 10.0.1.3:8000 weight 0");
    fx_set_health(CFG_CLUSTER_Y, "10.0.1.2:8000", BAL_HEALTH_EJECTED);
    fx_st.health_info = fx_note;
    cr_assert(eq(str, (char *)run_error("set weight 60"),
                 "error: y can take at most 50.00% of clients now (capacity: healthy weight 1 of y "
                 "against 2 of x; missing: y/10.0.1.2:8000 ejected until 14:03:12Z (5 failures in "
                 "a row), y/10.0.1.3:8000 weight 0); 60.00% would overload it; add \"force\" to "
                 "do it anyway"));
}
