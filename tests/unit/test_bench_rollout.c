/* tests/unit/test_bench_rollout.c -- xfbench's rollout scripts: durations, steps, errors, ramps. */
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "bench/bench_xfbench.h"

TestSuite(bench_rollout);

static uint64_t
ms_of(const char *s)
{
    uint64_t ms = 0;

    cr_assert(eq(int, bench_xfb_duration_parse(s, strlen(s), BENCH_XFB_DURATION_MAX, &ms), 0),
              "\"%s\" was refused", s);
    return ms;
}

Test(bench_rollout, durations_take_ms_s_m_h_decimals_and_bare_seconds)
{
    cr_assert(eq(u64, ms_of("500ms"), 500));
    cr_assert(eq(u64, ms_of("10s"), 10000));
    cr_assert(eq(u64, ms_of("1.5s"), 1500));
    cr_assert(eq(u64, ms_of("0.25s"), 250));
    cr_assert(eq(u64, ms_of("2m"), 120000));
    cr_assert(eq(u64, ms_of("1h"), 3600000));
    cr_assert(eq(u64, ms_of("10"), 10000));
    cr_assert(eq(u64, ms_of("0s"), 0));
}

Test(bench_rollout, bad_durations_are_refused)
{
    static const char *const bad[] = {"10x", "",        "s",   "1.",   ".5s",
                                      "-1s", "1.2345s", "1 s", "1e3s", "99999999999999999999s",
                                      "8d"};
    uint64_t ms;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert(eq(int,
                     bench_xfb_duration_parse(bad[i], strlen(bad[i]), BENCH_XFB_DURATION_MAX, &ms),
                     -1),
                  "\"%s\" was accepted", bad[i]);
    cr_assert(eq(int, bench_xfb_duration_parse("2s", 2, 1000, &ms), -1), "over the maximum");
}

Test(bench_rollout, weights_take_two_decimals_from_0_to_100)
{
    unsigned bp;
    char buf[8];

    cr_assert(eq(int, bench_xfb_weight_parse("12.5", 4, &bp), 0));
    cr_assert(eq(uint, bp, 1250));
    cr_assert(eq(int, bench_xfb_weight_parse("100", 3, &bp), 0));
    cr_assert(eq(uint, bp, 10000));
    cr_assert(eq(int, bench_xfb_weight_parse("0.01", 4, &bp), 0));
    cr_assert(eq(uint, bp, 1));
    cr_assert(eq(int, bench_xfb_weight_parse("100.01", 6, &bp), -1));
    cr_assert(eq(int, bench_xfb_weight_parse("12.345", 6, &bp), -1));
    cr_assert(eq(int, bench_xfb_weight_parse("-1", 2, &bp), -1));
    cr_assert(eq(int, bench_xfb_weight_parse("5%", 2, &bp), -1));
    cr_assert(eq(str, bench_xfb_weight_text(1250, buf), "12.50"));
    cr_assert(eq(str, bench_xfb_weight_text(0, buf), "0.00"));
}

Test(bench_rollout, the_issue_example_parses_into_three_steps)
{
    struct bench_xfb_script s;
    struct xf_err err = {{0}};

    cr_assert(eq(int,
                 bench_xfb_script_parse("10s set weight 10; 20s ramp 50 over 20s; 45s rollback", &s,
                                        &err),
                 0),
              "%s", err.msg);
    cr_assert(eq(sz, s.n, 3));
    cr_assert(eq(u64, s.steps[0].at_ms, 10000));
    cr_assert(eq(int, s.steps[0].kind, BENCH_XFB_STEP_SET));
    cr_assert(eq(uint, s.steps[0].weight_bp, 1000));
    cr_assert(eq(str, s.steps[0].line, "set weight 10"));
    cr_assert(eq(u64, s.steps[1].at_ms, 20000));
    cr_assert(eq(int, s.steps[1].kind, BENCH_XFB_STEP_RAMP));
    cr_assert(eq(uint, s.steps[1].weight_bp, 5000));
    cr_assert(eq(u64, s.steps[1].over_ms, 20000));
    cr_assert(eq(uint, s.steps[1].step_bp, 0));
    cr_assert(eq(str, s.steps[1].text, "ramp 50 over 20s"));
    cr_assert(eq(u64, s.steps[2].at_ms, 45000));
    cr_assert(eq(int, s.steps[2].kind, BENCH_XFB_STEP_ROLLBACK));
    cr_assert(eq(str, s.steps[2].line, "rollback"));
    bench_xfb_script_fini(&s);
}

Test(bench_rollout, newlines_blank_steps_case_and_admin_pass_through_are_accepted)
{
    struct bench_xfb_script s;
    struct xf_err err = {{0}};

    cr_assert(eq(int,
                 bench_xfb_script_parse("  1.5s SET Weight 0.5 ;\n\n 2s promote;; 3s admin show "
                                        "events\n4s ramp 20 over 1m step 2.5;",
                                        &s, &err),
                 0),
              "%s", err.msg);
    cr_assert(eq(sz, s.n, 4));
    cr_assert(eq(u64, s.steps[0].at_ms, 1500));
    cr_assert(eq(uint, s.steps[0].weight_bp, 50));
    cr_assert(eq(int, s.steps[1].kind, BENCH_XFB_STEP_PROMOTE));
    cr_assert(eq(int, s.steps[2].kind, BENCH_XFB_STEP_ADMIN));
    cr_assert(eq(str, s.steps[2].line, "show events"));
    cr_assert(eq(uint, s.steps[3].step_bp, 250));
    cr_assert(eq(u64, s.steps[3].over_ms, 60000));
    bench_xfb_script_fini(&s);
}

Test(bench_rollout, the_grammar_is_the_admin_sockets_force_and_any_command_included)
{
    struct bench_xfb_script s;
    struct xf_err err = {{0}};

    cr_assert(eq(int,
                 bench_xfb_script_parse("1s set weight 50 force; 2s promote force; 3s ramp 80 over "
                                        "10s step 5 force; 4s ramp pause; 5s drain node "
                                        "y/10.0.0.1:8000; 6s freeze on; 7s admin set weight 200",
                                        &s, &err),
                 0),
              "%s", err.msg);
    cr_assert(eq(sz, s.n, 7));
    cr_assert(eq(int, s.steps[0].kind, BENCH_XFB_STEP_SET));
    cr_assert(eq(uint, s.steps[0].weight_bp, 5000));
    cr_assert(s.steps[0].force);
    cr_assert(eq(str, s.steps[0].line, "set weight 50 force"));
    cr_assert(eq(int, s.steps[1].kind, BENCH_XFB_STEP_PROMOTE));
    cr_assert(eq(str, s.steps[1].line, "promote force"));
    cr_assert(eq(int, s.steps[2].kind, BENCH_XFB_STEP_RAMP));
    cr_assert(eq(uint, s.steps[2].weight_bp, 8000));
    cr_assert(eq(uint, s.steps[2].step_bp, 500));
    cr_assert(s.steps[2].force);
    for (size_t i = 3; i < 7; i++)
        cr_assert(eq(int, s.steps[i].kind, BENCH_XFB_STEP_ADMIN), "step %zu", i + 1);
    cr_assert(eq(str, s.steps[3].line, "ramp pause"));
    cr_assert(eq(str, s.steps[4].line, "drain node y/10.0.0.1:8000"));
    cr_assert(eq(str, s.steps[5].line, "freeze on"));
    /* admin COMMAND is sent as written, a value the server will refuse included. */
    cr_assert(eq(str, s.steps[6].line, "set weight 200"));
    cr_assert(not(s.steps[6].force));
    bench_xfb_script_fini(&s);
}

/* Parses a bad script and returns the message. */
static const char *
error_of(const char *script)
{
    static struct xf_err err;
    struct bench_xfb_script s;

    memset(&err, 0, sizeof(err));
    cr_assert(eq(int, bench_xfb_script_parse(script, &s, &err), -1), "\"%s\" was accepted", script);
    cr_assert(eq(ptr, s.steps, NULL));
    return err.msg;
}

#define ASSERT_ERROR(script, text)                                                                 \
    do {                                                                                           \
        const char *msg_ = error_of(script);                                                       \
        cr_assert(ne(ptr, (void *)strstr(msg_, text), NULL), "script \"%s\": got \"%s\"", script,  \
                  msg_);                                                                           \
    } while (0)

Test(bench_rollout, bad_offsets_and_unknown_commands_name_the_step)
{
    ASSERT_ERROR("10x set weight 5", "rollout step 1: bad offset \"10x\"");
    ASSERT_ERROR("1s rollback; soon promote", "rollout step 2: bad offset \"soon\"");
    /* The admin socket's own words, as xfctl would get them. */
    ASSERT_ERROR("10s sett weight 5", "rollout step 1: unknown command \"sett weight 5\"; did you "
                                      "mean \"set weight P [at TIME] [force]\"?");
    ASSERT_ERROR("10s admin shwo nodes", "rollout step 1: unknown command \"shwo nodes\"");
    ASSERT_ERROR("10s", "rollout step 1: \"10s\" has no command");
    ASSERT_ERROR("5s rollback; 2s promote", "rollout step 2: offset \"2s\" comes before step 1's");
    ASSERT_ERROR("", "rollout: the script has no step");
    ASSERT_ERROR(" ; ;\n", "rollout: the script has no step");
}

Test(bench_rollout, bad_arguments_say_what_is_allowed)
{
    ASSERT_ERROR("1s set weight 150", "rollout step 1: set weight: expected a number from 0 to "
                                      "100 with at most two decimals, got \"150\"");
    ASSERT_ERROR("1s set weight", "rollout step 1: usage: set weight P [at TIME] [force]");
    ASSERT_ERROR("1s set weight 5 now", "rollout step 1: usage: set weight P [force]");
    ASSERT_ERROR("1s ramp 50 over", "rollout step 1: usage: ramp P over DURATION [step P] [force]");
    ASSERT_ERROR("1s ramp 50 in 10s", "rollout step 1: usage: ramp P over DURATION [step P]");
    ASSERT_ERROR("1s ramp 50 over 0s", "rollout step 1: ramp: bad duration \"0s\"");
    ASSERT_ERROR("1s ramp 500 over 10s", "rollout step 1: ramp: expected a weight");
    ASSERT_ERROR("1s ramp 50 over 10s step 0", "rollout step 1: ramp: bad step \"0\"");
    ASSERT_ERROR("1s rollback now", "rollout step 1: usage: rollback");
    ASSERT_ERROR("1s promote now please", "rollout step 1: usage: promote [force]");
    ASSERT_ERROR("1s admin", "rollout step 1: usage: admin COMMAND");
    ASSERT_ERROR("1s set weight\x01 5", "rollout step 1: control byte 0x01");
}

Test(bench_rollout, more_than_256_steps_are_refused)
{
    char *script = malloc(256 * 16 + 32);
    size_t o = 0;

    cr_assert(ne(ptr, script, NULL));
    for (int i = 0; i <= 256; i++)
        o += (size_t)sprintf(script + o, "%ds rollback;", i);
    ASSERT_ERROR(script, "rollout: more than 256 steps");
    free(script);
}

Test(bench_rollout, a_ramp_sends_one_change_a_second_up_to_the_target)
{
    struct bench_xfb_change ch[BENCH_XFB_RAMP_MAX];
    size_t n = bench_xfb_ramp_plan(1000, 5000, 20000, 0, ch, BENCH_XFB_RAMP_MAX);

    cr_assert(eq(sz, n, 20));
    for (size_t i = 0; i < n; i++) {
        cr_assert(eq(u64, ch[i].at_us, (i + 1) * 1000000u));
        cr_assert(eq(uint, ch[i].weight_bp, 1000 + 200 * (unsigned)(i + 1)));
    }
}

Test(bench_rollout, a_ramp_with_a_step_size_and_a_ramp_down)
{
    struct bench_xfb_change ch[BENCH_XFB_RAMP_MAX];
    size_t n = bench_xfb_ramp_plan(0, 5000, 20000, 1000, ch, BENCH_XFB_RAMP_MAX);

    cr_assert(eq(sz, n, 5));
    cr_assert(eq(u64, ch[0].at_us, 4000000));
    cr_assert(eq(uint, ch[0].weight_bp, 1000));
    cr_assert(eq(uint, ch[4].weight_bp, 5000));
    cr_assert(eq(u64, ch[4].at_us, 20000000));
    /* Down from 50 to 0 over 3 s: 33.33, 16.67, 0. */
    n = bench_xfb_ramp_plan(5000, 0, 3000, 0, ch, BENCH_XFB_RAMP_MAX);
    cr_assert(eq(sz, n, 3));
    cr_assert(eq(uint, ch[0].weight_bp, 3333));
    cr_assert(eq(uint, ch[1].weight_bp, 1667));
    cr_assert(eq(uint, ch[2].weight_bp, 0));
    /* Nothing to move: one command with the target. */
    cr_assert(eq(sz, bench_xfb_ramp_plan(2000, 2000, 10000, 0, ch, BENCH_XFB_RAMP_MAX), 1));
    cr_assert(eq(uint, ch[0].weight_bp, 2000));
}

Test(bench_rollout, a_ramp_is_bounded_in_rate_and_count)
{
    struct bench_xfb_change ch[BENCH_XFB_RAMP_MAX];

    /* Steps of 0.01 over 1 s would be 10,000 changes: at most one per 100 ms. */
    cr_assert(eq(sz, bench_xfb_ramp_plan(0, 10000, 1000, 1, ch, BENCH_XFB_RAMP_MAX), 10));
    cr_assert(eq(uint, ch[9].weight_bp, 10000));
    /* A day-long ramp is capped at BENCH_XFB_RAMP_MAX changes. */
    cr_assert(eq(sz, bench_xfb_ramp_plan(0, 10000, 86400000, 0, ch, BENCH_XFB_RAMP_MAX),
                 (size_t)BENCH_XFB_RAMP_MAX));
    cr_assert(eq(u64, ch[BENCH_XFB_RAMP_MAX - 1].at_us, UINT64_C(86400000000)));
    /* Never smaller changes than 0.01. */
    cr_assert(eq(sz, bench_xfb_ramp_plan(0, 3, 60000, 0, ch, BENCH_XFB_RAMP_MAX), 3));
}

Test(bench_rollout, weights_are_read_from_the_admin_replies)
{
    unsigned bp = 0;

    cr_assert(eq(int, bench_xfb_reply_weight("ok: weight y 25.00 (was 0.00)\n", &bp), 0));
    cr_assert(eq(uint, bp, 2500));
    cr_assert(
        eq(int, bench_xfb_reply_weight("ok: rolled back: weight y 0.00 (was 25.00)\n", &bp), 0));
    cr_assert(eq(uint, bp, 0));
    cr_assert(
        eq(int, bench_xfb_reply_weight("ok: promoted: weight y 100.00 (unchanged)\n", &bp), 0));
    cr_assert(eq(uint, bp, 10000));
    cr_assert(eq(int, bench_xfb_reply_weight("x 75.00\ny 25.00\n", &bp), 0));
    cr_assert(eq(uint, bp, 2500));
    cr_assert(eq(int, bench_xfb_reply_weight("error: weight y 5 is wrong\n", &bp), -1));
    cr_assert(eq(int, bench_xfb_reply_weight("ok: nothing\n", &bp), -1));
}
