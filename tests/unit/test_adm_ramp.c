/* tests/unit/test_adm_ramp.c -- ramps: the schedule (pure), then the ramp commands through
 * adm_exec on a real router with a clock the test moves, and what cancels a ramp. */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "admin/adm.h"

/* ------------------------------------------------------------------ the schedule */

static struct adm_ramp
plan_ok(unsigned from, unsigned to, unsigned step, uint64_t duration_ms)
{
    struct adm_ramp r;
    struct xf_err err = {{0}};

    cr_assert(eq(int, adm_ramp_plan(&r, from, to, step, duration_ms, 1000, &err), 0), "%s",
              err.msg);
    return r;
}

static const char *
plan_error(unsigned from, unsigned to, unsigned step, uint64_t duration_ms)
{
    static struct xf_err err;
    struct adm_ramp r;

    memset(&err, 0, sizeof(err));
    cr_assert(eq(int, adm_ramp_plan(&r, from, to, step, duration_ms, 1000, &err), -1));
    return err.msg;
}

Test(adm_ramp_plan, even_steps_at_an_even_pace_the_last_one_at_the_end)
{
    struct adm_ramp r = plan_ok(1000, 5000, 500, 600000); /* 10 -> 50 over 10m step 5 */

    cr_assert(eq(uint, r.n_steps, 8u));
    cr_assert(eq(uint, r.done, 0u));
    for (unsigned k = 0; k <= 8; k++) {
        cr_assert(eq(uint, adm_ramp_weight_at(&r, k), 1000 + 500 * k));
        cr_assert(eq(i64, adm_ramp_due(&r, k), (int64_t)(1000 + 75000 * k)));
    }
}

Test(adm_ramp_plan, a_distance_not_a_multiple_of_the_step_ends_with_a_short_step)
{
    struct adm_ramp r = plan_ok(0, 2500, 1000, 3000);

    cr_assert(eq(uint, r.n_steps, 3u));
    cr_assert(eq(uint, adm_ramp_weight_at(&r, 1), 1000u));
    cr_assert(eq(uint, adm_ramp_weight_at(&r, 2), 2000u));
    cr_assert(eq(uint, adm_ramp_weight_at(&r, 3), 2500u));
    cr_assert(eq(uint, adm_ramp_weight_at(&r, 9), 2500u));
}

Test(adm_ramp_plan, goes_down_as_well_as_up)
{
    struct adm_ramp r = plan_ok(5000, 0, 2000, 30000);

    cr_assert(eq(uint, r.n_steps, 3u));
    cr_assert(eq(uint, adm_ramp_weight_at(&r, 1), 3000u));
    cr_assert(eq(uint, adm_ramp_weight_at(&r, 2), 1000u));
    cr_assert(eq(uint, adm_ramp_weight_at(&r, 3), 0u));
}

Test(adm_ramp_plan, the_default_step_is_1_point_larger_to_keep_steps_1s_apart)
{
    struct adm_ramp r = plan_ok(0, 5000, 0, 600000); /* 50 steps, 12 s apart */

    cr_assert(eq(uint, r.step_bp, 100u));
    cr_assert(eq(uint, r.n_steps, 50u));
    r = plan_ok(0, 2000, 0, 2000); /* 20 steps in 2 s would be too fast: 2 steps of 10 */
    cr_assert(eq(uint, r.step_bp, 1000u));
    cr_assert(eq(uint, r.n_steps, 2u));
    r = plan_ok(0, 10000, 0, 500); /* under a second: one step at the end */
    cr_assert(eq(uint, r.n_steps, 1u));
    cr_assert(eq(uint, r.step_bp, 10000u));
    r = plan_ok(1000, 1050, 0, 600000); /* half a point: one step of the whole distance */
    cr_assert(eq(uint, r.step_bp, 50u));
    cr_assert(eq(uint, r.n_steps, 1u));
}

Test(adm_ramp_plan, refuses_what_cannot_be_a_ramp)
{
    cr_assert(eq(str, (char *)plan_error(2000, 2000, 0, 60000),
                 "the weight is already 20.00; nothing to ramp"));
    cr_assert(eq(str, (char *)plan_error(0, 2000, 0, 0),
                 "the duration must be more than 0 (such as 30s, 10m or 1h)"));
    cr_assert(eq(str, (char *)plan_error(1000, 2000, 1500, 60000),
                 "the step (15.00) is larger than the distance from 10.00 to 20.00 (10.00)"));
    cr_assert(eq(str, (char *)plan_error(0, 10000, 1, 60000),
                 "10000 steps of 0.01 over 1m would come every 6ms; steps must be at least 100ms "
                 "apart (take a larger step or a longer duration)"));
}

Test(adm_ramp_plan, steps_due_counts_each_step_whose_time_has_come)
{
    struct adm_ramp r = plan_ok(0, 2000, 1000, 2000); /* steps at 2000 and 3000 */

    cr_assert(eq(uint, adm_ramp_steps_due(&r, 1000), 0u));
    cr_assert(eq(uint, adm_ramp_steps_due(&r, 1999), 0u));
    cr_assert(eq(uint, adm_ramp_steps_due(&r, 2000), 1u));
    cr_assert(eq(uint, adm_ramp_steps_due(&r, 2999), 1u));
    cr_assert(eq(uint, adm_ramp_steps_due(&r, 3000), 2u));
    cr_assert(eq(uint, adm_ramp_steps_due(&r, 999999), 2u));
    r.done = 1;
    cr_assert(eq(uint, adm_ramp_steps_due(&r, 0), 1u), "never fewer than done");
}

Test(adm_ramp_plan, rebasing_moves_the_schedule_to_another_clock)
{
    struct adm_ramp r = plan_ok(0, 2000, 1000, 2000);

    r.state = ADM_RAMP_PAUSED;
    r.paused_ms = 1500;
    adm_ramp_rebase(&r, 1500, 1764470400000);
    cr_assert(eq(i64, r.start_ms, (int64_t)1764470399500));
    cr_assert(eq(i64, r.paused_ms, (int64_t)1764470400000));
    cr_assert(eq(i64, adm_ramp_due(&r, 1), (int64_t)1764470400500));
}

/* ------------------------------------------------------------------ the commands */

static const char fx_yaml[] = "listen:\n"
                              "  - address: \"127.0.0.1:8000\"\n"
                              "admin:\n"
                              "  socket: \"/tmp/xf-unit/admin.sock\"\n"
                              "split:\n"
                              "  weight: 0\n"
                              "clusters:\n"
                              "  x:\n"
                              "    nodes: [\"10.0.0.1:8000\"]\n"
                              "  y:\n"
                              "    nodes: [\"10.0.1.1:8000\"]\n";

static struct cfg *fx_cfg;
static struct bal_router fx_router;
static struct adm_state fx_st;
static struct evbuffer *fx_out;
static char *fx_reply;
static uint64_t fx_mono;
static const struct adm_peer fx_peer = {.uid = 1000, .pid = 4242, .id = 1};
static const struct adm_peer fx_other = {.uid = 1001, .pid = 5151, .id = 2};

static uint64_t
fx_clock(void)
{
    return fx_mono;
}

static int64_t
fx_wall(void)
{
    return 1764470400000 + (int64_t)fx_mono;
}

static void
fx_setup(void)
{
    struct xf_err err = {{0}};
    struct bal_snapshot *snap;

    xf_log_min = XF_LOG_WARN;
    fx_cfg = cfg_parse(fx_yaml, strlen(fx_yaml), "t.yaml", &err);
    cr_assert(ne(ptr, fx_cfg, NULL), "%s", err.msg);
    snap = bal_snapshot_new(fx_cfg, NULL, 1, &err);
    cr_assert(ne(ptr, snap, NULL), "%s", err.msg);
    bal_router_init(&fx_router, snap);
    cr_assert(eq(int, adm_state_init(&fx_st, fx_cfg, &fx_router, NULL, &err), 0), "%s", err.msg);
    fx_mono = 100000;
    fx_st.mono_ms = fx_clock;
    fx_st.wall_ms = fx_wall;
    fx_out = evbuffer_new();
}

static void
fx_teardown(void)
{
    free(fx_reply);
    fx_reply = NULL;
    evbuffer_free(fx_out);
    adm_state_fini(&fx_st);
    bal_router_fini(&fx_router);
    cfg_free(fx_cfg);
}

TestSuite(adm_ramp, .init = fx_setup, .fini = fx_teardown);

/* Runs a line as `peer` and returns its reply without the closing empty line. */
static const char *
run_as(const struct adm_peer *peer, const char *line, enum adm_result *res)
{
    size_t n;

    *res = adm_exec(&fx_st, peer, line, strlen(line), fx_out);
    n = evbuffer_get_length(fx_out);
    free(fx_reply);
    fx_reply = calloc(1, n + 1);
    evbuffer_remove(fx_out, fx_reply, n);
    cr_assert(ge(sz, n, (size_t)3));
    fx_reply[n - 2] = '\0';
    cr_assert(eq(ptr, strstr(fx_reply, "\n\n"), NULL), "an empty line inside the reply");
    return fx_reply;
}

static const char *
run_ok(const char *line)
{
    enum adm_result res;
    const char *reply = run_as(&fx_peer, line, &res);

    cr_assert(eq(int, res, ADM_OK), "\"%s\" failed: %s", line, reply);
    return reply;
}

static const char *
run_error(const char *line)
{
    enum adm_result res;
    const char *reply = run_as(&fx_peer, line, &res);

    cr_assert(eq(int, res, ADM_ERROR), "\"%s\" did not fail: %s", line, reply);
    return reply;
}

static unsigned
weight(void)
{
    struct bal_snapshot *s = bal_router_acquire(&fx_router);
    unsigned bp = s->weight_bp;

    bal_snapshot_unref(s);
    return bp;
}

/* Moves the clock to `ms` after the start of the test and lets the ramp catch up. */
static void
at(uint64_t ms)
{
    fx_mono = 100000 + ms;
    adm_ramp_tick(&fx_st);
}

Test(adm_ramp, a_ramp_publishes_each_step_when_it_is_due_and_ends_at_its_target)
{
    cr_assert(eq(str, (char *)run_ok("ramp 20 over 2s step 10"),
                 "ok: ramping y from 0.00 to 20.00 over 2s: 2 steps of 10.00, one every 1s"));
    cr_assert(eq(uint, weight(), 0u), "nothing moves before the first step is due");
    at(999);
    cr_assert(eq(uint, weight(), 0u));
    at(1000);
    cr_assert(eq(uint, weight(), 1000u));
    at(1999);
    cr_assert(eq(uint, weight(), 1000u));
    at(2000);
    cr_assert(eq(uint, weight(), 2000u));
    cr_assert(eq(int, fx_st.ramp.state, ADM_RAMP_NONE), "the ramp ended");
    cr_assert(eq(str, (char *)run_ok("show ramp"), "no ramp"));
    at(9000);
    cr_assert(eq(uint, weight(), 2000u));
}

Test(adm_ramp, a_late_tick_jumps_to_the_step_due_now)
{
    run_ok("ramp 40 over 4s step 10");
    at(3500);
    cr_assert(eq(uint, weight(), 3000u));
    cr_assert(eq(uint, fx_st.ramp.done, 3u));
}

Test(adm_ramp, each_step_is_an_event_in_the_name_of_who_started_the_ramp)
{
    enum adm_result res;
    const char *events;

    run_ok("ramp 20 over 2s step 10");
    run_as(&fx_other, "show weight", &res);
    at(1000);
    at(2000);
    events = run_ok("show events");
    cr_assert(ne(ptr,
                 strstr(events, "uid=1000 pid=4242 \"ramp 20 over 2s step 10\" ramp - -> to "
                                "20.00 over 2s step 10.00\n"),
                 NULL),
              "%s", events);
    cr_assert(ne(ptr,
                 strstr(events, "uid=1000 pid=4242 \"ramp 20 over 2s step 10\" weight 0.00 -> "
                                "10.00\n"),
                 NULL),
              "%s", events);
    cr_assert(ne(ptr,
                 strstr(events, "uid=1000 pid=4242 \"ramp 20 over 2s step 10\" weight 10.00 -> "
                                "20.00\n"),
                 NULL),
              "%s", events);
    cr_assert(
        ne(ptr, strstr(events, "\"ramp 20 over 2s step 10\" ramp running to 20.00 -> done"), NULL),
        "%s", events);
}

Test(adm_ramp, pause_holds_the_weight_and_resume_keeps_the_pace)
{
    const char *show;

    run_ok("ramp 30 over 3s step 10");
    at(1000);
    cr_assert(eq(str, (char *)run_ok("ramp pause"),
                 "ok: ramp paused at weight y 10.00 (step 1 of 3); \"ramp resume\" goes on"));
    at(60000);
    cr_assert(eq(uint, weight(), 1000u), "a paused ramp does not move");
    show = run_ok("show ramp");
    cr_assert(ne(ptr, strstr(show, "ramp paused\n"), NULL), "%s", show);
    cr_assert(ne(ptr, strstr(show, "\nnext 20.00 1.0s after \"ramp resume\"\n"), NULL), "%s", show);
    cr_assert(eq(str, (char *)run_ok("ramp resume"),
                 "ok: ramp resumed at weight y 10.00; next step to 20.00 in 1.0s"));
    at(60999);
    cr_assert(eq(uint, weight(), 1000u));
    at(61000);
    cr_assert(eq(uint, weight(), 2000u));
    at(62000);
    cr_assert(eq(uint, weight(), 3000u));
}

Test(adm_ramp, pause_resume_and_cancel_say_when_they_do_not_apply)
{
    cr_assert(eq(str, (char *)run_error("ramp pause"),
                 "error: no ramp is in progress (\"ramp TO over DURATION\" starts one)"));
    cr_assert(eq(str, (char *)run_error("ramp resume"),
                 "error: no ramp is in progress (\"ramp TO over DURATION\" starts one)"));
    cr_assert(eq(str, (char *)run_error("ramp cancel"),
                 "error: no ramp is in progress (\"ramp TO over DURATION\" starts one)"));
    run_ok("ramp 30 over 3s step 10");
    cr_assert(eq(str, (char *)run_error("ramp resume"), "error: the ramp is not paused"));
    run_ok("ramp pause");
    cr_assert(eq(str, (char *)run_error("ramp pause"),
                 "error: the ramp is already paused (\"ramp resume\" goes on)"));
    cr_assert(eq(str, (char *)run_error("ramp 50 over 1m"),
                 "error: a ramp to 30.00 is already paused (step 0 of 3); \"ramp cancel\" it "
                 "first"));
}

Test(adm_ramp, cancel_leaves_the_weight_where_the_ramp_had_it)
{
    run_ok("ramp 30 over 3s step 10");
    at(1000);
    cr_assert(eq(str, (char *)run_ok("ramp cancel"),
                 "ok: ramp cancelled at weight y 10.00 (it was going to 30.00)"));
    at(5000);
    cr_assert(eq(uint, weight(), 1000u));
    cr_assert(ne(ptr,
                 strstr(run_ok("show events"),
                        "\"ramp cancel\" ramp running to 30.00 -> cancelled at 10.00"),
                 NULL));
}

Test(adm_ramp, rollback_cancels_a_ramp_and_says_so)
{
    run_ok("ramp 50 over 5s step 10");
    at(2000);
    cr_assert(eq(str, (char *)run_ok("rollback"),
                 "ok: rolled back: weight y 0.00 (was 20.00); cancelled the ramp to 50.00"));
    at(10000);
    cr_assert(eq(uint, weight(), 0u), "no step comes after the rollback");
    cr_assert(eq(str, (char *)run_ok("rollback"), "ok: rolled back: weight y 0.00 (unchanged)"));
}

Test(adm_ramp, set_weight_and_promote_cancel_a_ramp_too)
{
    run_ok("ramp 50 over 5s step 10");
    at(1000);
    cr_assert(eq(str, (char *)run_ok("set weight 10"),
                 "ok: weight y 10.00 (unchanged); cancelled the ramp to 50.00"));
    at(10000);
    cr_assert(eq(uint, weight(), 1000u));
    run_ok("ramp 0 over 10s");
    run_ok("ramp pause");
    cr_assert(eq(str, (char *)run_ok("promote"),
                 "ok: promoted: weight y 100.00 (was 10.00); cancelled the ramp to 0.00"));
    cr_assert(eq(int, fx_st.ramp.state, ADM_RAMP_NONE));
}

Test(adm_ramp, show_ramp_gives_progress_and_the_next_step)
{
    const char *show;

    cr_assert(eq(str, (char *)run_ok("show ramp"), "no ramp"));
    run_ok("ramp 40 over 4s step 10");
    at(1500);
    show = run_ok("show ramp");
    cr_assert(eq(str, (char *)show,
                 "ramp running\n"
                 "from 0.00\n"
                 "to 40.00\n"
                 "step 10.00\n"
                 "weight 10.00\n"
                 "progress 1/4 steps, 25%\n"
                 "next 20.00 in 0.5s at 2025-11-30T02:41:42Z\n"
                 "ends in 2.5s at 2025-11-30T02:41:44Z\n"
                 "duration 4s\n"
                 "by uid=1000 \"ramp 40 over 4s step 10\""));
}

Test(adm_ramp, bad_arguments_get_a_clear_error_and_start_nothing)
{
    cr_assert(eq(str, (char *)run_error("ramp 150 over 10m"),
                 "error: the target must be a weight from 0 to 100 with at most two decimals (or "
                 "pause, resume, cancel), got \"150\""));
    cr_assert(eq(str, (char *)run_error("ramp 50 in 10m"),
                 "error: expected \"over\" after the target, got \"in\""));
    cr_assert(eq(str, (char *)run_error("ramp 50 over 0s"),
                 "error: the duration must be more than 0 (such as 30s, 10m or 1h)"));
    cr_assert(eq(str, (char *)run_error("ramp 50 over soon"),
                 "error: duration: expected a duration such as 500ms, 3s, 1m, 1h or 1m30s, got "
                 "\"soon\""));
    cr_assert(eq(str, (char *)run_error("ramp 50 over 10m step 0"),
                 "error: the step must be a number of points from 0.01 to 100 with at most two "
                 "decimals, got \"0\""));
    cr_assert(eq(str, (char *)run_error("ramp 50 over 10m step -5"),
                 "error: the step must be a number of points from 0.01 to 100 with at most two "
                 "decimals, got \"-5\""));
    cr_assert(eq(str, (char *)run_error("ramp 50 over 10m step 60"),
                 "error: the step (60.00) is larger than the distance from 0.00 to 50.00 "
                 "(50.00)"));
    cr_assert(eq(str, (char *)run_error("ramp 50 over 10m by 5"),
                 "error: expected \"step\" after the duration, got \"by\""));
    cr_assert(eq(str, (char *)run_error("ramp 0 over 10m"),
                 "error: the weight is already 0.00; nothing to ramp"));
    cr_assert(
        eq(str, (char *)run_error("ramp 50 over"),
           "error: usage: ramp TO over DURATION [step P] [guarded] [force] (or ramp pause, ramp "
           "resume, "
           "ramp cancel)"));
    cr_assert(eq(str, (char *)run_error("ramp"),
                 "error: usage: ramp TO over DURATION [step P] [guarded] [force]"));
    cr_assert(eq(int, fx_st.ramp.state, ADM_RAMP_NONE));
}

Test(adm_ramp, ramp_words_ignore_case)
{
    cr_assert(eq(str, (char *)run_ok("RAMP 1 OVER 1s STEP 1"),
                 "ok: ramping y from 0.00 to 1.00 over 1s: 1 step of 1.00, one every 1s"));
    cr_assert(eq(str, (char *)run_ok("Ramp Cancel"),
                 "ok: ramp cancelled at weight y 0.00 (it was going to 1.00)"));
}
