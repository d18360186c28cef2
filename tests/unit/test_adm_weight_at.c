/* tests/unit/test_adm_weight_at.c -- `set weight P at TIME` (one step at that moment: a fleet
 * switches at one instant) and the fleet's text of the state. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "admin/adm.h"
#include "tests/unit/adm_fixture.h"

TestSuite(adm_weight_at, .init = fx_setup, .fini = fx_teardown);

Test(adm_weight_at, switches_at_the_time_given_relative_or_absolute)
{
    char line[96];
    time_t t;
    struct tm tm;

    fx_use_clock();
    cr_assert(eq(str, (char *)run("set weight 45 at +10s", NULL),
                 "ok: weight y 45.00 (now 25.00) at 2025-11-30T02:41:50Z, in 10s"));
    fx_at(9999);
    cr_assert(eq(uint, fx_weight(), 2500u), "not before its time");
    fx_at(10000);
    cr_assert(eq(uint, fx_weight(), 4500u));
    /* Absolute, to the millisecond: 30.5 s after the fixture's start. */
    t = (time_t)(fx_wall() / 1000) + 30;
    gmtime_r(&t, &tm);
    strftime(line, sizeof(line), "set weight 0 at %Y-%m-%dT%H:%M:%S.5Z", &tm);
    cr_assert(eq(int, strncmp(run(line, NULL), "ok: weight y 0.00 (now 45.00) at", 32), 0), "%s",
              fx_reply);
    fx_at(10000 + 30499);
    cr_assert(eq(uint, fx_weight(), 4500u));
    fx_at(10000 + 30500);
    cr_assert(eq(uint, fx_weight(), 0u));
}

Test(adm_weight_at, refuses_a_time_it_cannot_keep)
{
    fx_use_clock();
    cr_assert(eq(int,
                 strncmp(run("set weight 60 at 2020-01-01T00:00:00Z", NULL),
                         "error: TIME must be from 1 second to 24 hours from now", 54),
                 0),
              "%s", fx_reply);
    cr_assert(eq(int,
                 strncmp(run("set weight 60 at noon", NULL),
                         "error: TIME must be UTC as 2026-12-06T22:30:00Z", 47),
                 0),
              "%s", fx_reply);
    cr_assert(
        eq(int, strncmp(run("set weight 25 at +1m", NULL), "error: the weight is 25.00", 26), 0),
        "%s", fx_reply);
    cr_assert(eq(int,
                 strncmp(run("set weight 60 at", NULL), "error: usage: set weight P [at TIME]", 36),
                 0),
              "%s", fx_reply);
    cr_assert(eq(uint, fx_weight(), 2500u));
}

/* ---- the fleet's text of the state: what instances share ---- */

/* A running ramp is shared as its schedule: its steps do not change the text (no write per step),
 * and the text is the same however often it is made. */
Test(adm_weight_at, a_running_ramps_steps_do_not_change_the_fleets_text)
{
    size_t l1, l2, l3;
    char *t1, *t2, *t3;

    fx_use_clock();
    run_ok("ramp 45 over 20s step 5");
    t1 = adm_state_text_for(&fx_st, ADM_TEXT_FLEET, &l1);
    fx_at(12000);
    cr_assert(eq(uint, fx_weight(), 3500u), "steps were taken");
    t2 = adm_state_text_for(&fx_st, ADM_TEXT_FLEET, &l2);
    cr_assert(eq(str, t2, t1));
    cr_assert(eq(ptr, strstr(t1, "\nevent "), NULL), "the audit trail is not shared");
    fx_at(20000);
    t3 = adm_state_text_for(&fx_st, ADM_TEXT_FLEET, &l3);
    cr_assert(not(eq(str, t3, t1)), "the ramp's end is a change");
    cr_assert(not(eq(ptr, strstr(t3, "\nweight 45.00\n"), NULL)), "%s", t3);
    free(t1);
    free(t2);
    free(t3);
}
