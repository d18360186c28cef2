/* tests/integration/test_admin_state.c -- ramps, pins, the freeze and the state file of a
 * running crossfade, through its admin socket and with live requests. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/integration/harness.h"

TestSuite(admin_ramp, .init = h_setup, .fini = h_teardown);
TestSuite(admin_pin, .init = h_setup, .fini = h_teardown);
TestSuite(admin_freeze, .init = h_setup, .fini = h_teardown);
TestSuite(admin_state, .init = h_setup, .fini = h_teardown);

/* The node named by X-Upstream for GET / with X-Key: key (and more header lines, may be ""). */
static const char *
node_for(struct h_conn *c, const char *key, const char *more)
{
    struct h_msg m;
    const char *name;

    cr_assert(eq(int,
                 h_sendf(c, "GET / HTTP/1.1\r\nHost: %s\r\nX-Key: %s\r\n%s\r\n", H_HOST, key, more),
                 0));
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    name = h_header(&m, "X-Upstream");
    cr_assert(ne(ptr, (void *)name, NULL), "no X-Upstream header");
    return name;
}

static struct h_upstream *up_x, *up_y;

/* A proxy keyed on X-Key with x1 in x and y1 in y, at `weight`, with more top-level YAML. */
static struct h_proxy *
start_xy(const char *weight, const char *extra_yaml)
{
    if (up_x == NULL) {
        up_x = h_upstream_start("x1", NULL);
        up_y = h_upstream_start("y1", NULL);
    }
    return h_proxy_start(&(struct h_proxy_opts){.x = {{up_x->port}},
                                                .y = {{up_y->port}},
                                                .weight = weight,
                                                .split_extra = "  key: [\"header:X-Key\"]\n",
                                                .extra_yaml = extra_yaml});
}

/* The flip weight `which` gives a key, in hundredths. */
static unsigned
flip_of(int fd, const char *key)
{
    char *reply = h_admin_cmd(fd, h_fmt("which header:X-Key=%s", key));
    const char *flip = strstr(reply, "\nflip ");
    unsigned whole, frac;

    cr_assert(ne(ptr, (void *)flip, NULL), "%s", reply);
    cr_assert(eq(int, sscanf(flip, "\nflip %u.%u", &whole, &frac), 2));
    return whole * 100 + frac;
}

/* A key whose flip weight is in (lo, hi]: on y from hi on, on x below lo + 0.01. */
static const char *
key_flipping_in(int fd, unsigned lo, unsigned hi)
{
    for (int i = 0; i < 2000; i++) {
        const char *key = h_fmt("k%d", i);
        unsigned f = flip_of(fd, key);

        if (f > lo && f <= hi)
            return key;
    }
    cr_assert(false, "no key flips between %u and %u", lo, hi);
    return NULL;
}

/* Polls show weight until y is `want` ("10.00"); returns when it was first seen (ms). */
static uint64_t
wait_weight(int fd, const char *want, unsigned timeout_ms)
{
    uint64_t until = h_now_ms() + timeout_ms;
    char *line = h_fmt("y %s\n", want);

    for (;;) {
        char *reply = h_admin_cmd(fd, "show weight");

        if (strstr(reply, line) != NULL)
            return h_now_ms();
        cr_assert(lt(u64, h_now_ms(), until), "weight y %s never came; last: %s", want, reply);
        h_sleep_ms(10);
    }
}

/* The y weight now, as text ("10.00"). */
static const char *
weight_now(int fd)
{
    char *reply = h_admin_cmd(fd, "show weight");
    char *y = strstr(reply, "\ny ");

    cr_assert(ne(ptr, y, NULL), "%s", reply);
    y[strlen(y) - 1] = '\0';
    return y + 3;
}

/* ------------------------------------------------------------------ ramps */

Test(admin_ramp, a_ramp_moves_keys_to_y_in_its_steps_and_on_its_schedule, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = start_xy("0", NULL);
    struct h_conn *c = h_connect(p->port);
    int fd = h_admin_connect(p);
    const char *first = key_flipping_in(fd, 0, 1000);     /* on y from 10 % */
    const char *second = key_flipping_in(fd, 1000, 2000); /* on y from 20 % */
    const char *never = key_flipping_in(fd, 2000, 10000); /* stays on x */
    uint64_t t0, t1, t2;

    t0 = h_now_ms();
    cr_assert(eq(str, h_admin_cmd(fd, "ramp 20 over 2s step 10"),
                 "ok: ramping y from 0.00 to 20.00 over 2s: 2 steps of 10.00, one every 1s\n"));
    cr_assert(eq(str, (char *)node_for(c, first, ""), "x1"), "nothing moves at once");
    t1 = wait_weight(fd, "10.00", 10000);
    cr_assert(eq(str, (char *)node_for(c, first, ""), "y1"));
    cr_assert(eq(str, (char *)node_for(c, second, ""), "x1"));
    cr_assert(eq(str, (char *)node_for(c, never, ""), "x1"));
    cr_assert(eq(str, (char *)weight_now(fd), "10.00"), "the checks ran within the first step");
    t2 = wait_weight(fd, "20.00", 10000);
    cr_assert(eq(str, (char *)node_for(c, first, ""), "y1"));
    cr_assert(eq(str, (char *)node_for(c, second, ""), "y1"));
    cr_assert(eq(str, (char *)node_for(c, never, ""), "x1"));
    /* The schedule: no step before its time (a late one would be the machine's load). */
    cr_assert(ge(u64, t1 - t0, (uint64_t)1000), "step 1 came after %llu ms",
              (unsigned long long)(t1 - t0));
    cr_assert(ge(u64, t2 - t0, (uint64_t)2000), "step 2 came after %llu ms",
              (unsigned long long)(t2 - t0));
    cr_assert(eq(str, h_admin_cmd(fd, "show ramp"), "no ramp\n"));
    /* Nothing to wait for: a step's interval must pass, in which a ramp that went on past its
     * target would have moved. */
    h_sleep_ms(1100);
    cr_assert(eq(str, (char *)weight_now(fd), "20.00"), "the ramp ended at its target");
    cr_assert(ne(ptr,
                 strstr(h_admin_cmd(fd, "show events"), h_fmt("uid=%u pid=", (unsigned)getuid())),
                 NULL));
    h_proxy_finish(p);
}

Test(admin_ramp, pause_holds_the_weight_resume_goes_on_and_cancel_stops, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = start_xy("0", NULL);
    int fd = h_admin_connect(p);
    char *show;

    h_admin_cmd(fd, "ramp 30 over 3s step 10");
    wait_weight(fd, "10.00", 10000);
    cr_assert(eq(str, h_admin_cmd(fd, "ramp pause"),
                 "ok: ramp paused at weight y 10.00 (step 1 of 3); \"ramp resume\" goes on\n"));
    h_sleep_ms(2500); /* the time of two more steps must pass: a paused ramp takes none */
    cr_assert(eq(str, (char *)weight_now(fd), "10.00"), "a paused ramp moved");
    show = h_admin_cmd(fd, "show ramp");
    cr_assert(ne(ptr, strstr(show, "ramp paused\n"), NULL), "%s", show);
    cr_assert(ne(ptr, strstr(show, "\nprogress 1/3 steps, 33%\n"), NULL), "%s", show);
    cr_assert(eq(int,
                 strncmp(h_admin_cmd(fd, "ramp resume"),
                         "ok: ramp resumed at weight y 10.00; "
                         "next step to 20.00 in ",
                         56),
                 0));
    wait_weight(fd, "20.00", 10000);
    cr_assert(eq(str, h_admin_cmd(fd, "ramp cancel"),
                 "ok: ramp cancelled at weight y 20.00 (it was going to 30.00)\n"));
    h_sleep_ms(1500); /* past the step the ramp would have taken: it must pass */
    cr_assert(eq(str, (char *)weight_now(fd), "20.00"), "a cancelled ramp moved");
    cr_assert(eq(str, h_admin_cmd(fd, "ramp cancel"),
                 "error: no ramp is in progress (\"ramp TO over DURATION\" starts one)\n"));
    h_proxy_finish(p);
}

Test(admin_ramp, rollback_cancels_a_ramp_and_the_next_requests_go_to_x, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = start_xy("0", NULL);
    struct h_conn *c = h_connect(p->port);
    int fd = h_admin_connect(p);

    cr_assert(eq(int, strncmp(h_admin_cmd(fd, "ramp 100 over 2s step 50"), "ok: ", 4), 0));
    wait_weight(fd, "50.00", 10000);
    cr_assert(eq(str, h_admin_cmd(fd, "rollback"),
                 "ok: rolled back: weight y 0.00 (was 50.00); cancelled the ramp to 100.00\n"));
    for (int i = 0; i < 30; i++)
        cr_assert(eq(str, (char *)node_for(c, h_fmt("client-%d", i), ""), "x1"));
    h_sleep_ms(1500); /* past the step the ramp would have taken: it must pass */
    cr_assert(eq(str, (char *)weight_now(fd), "0.00"));
    for (int i = 0; i < 30; i++)
        cr_assert(eq(str, (char *)node_for(c, h_fmt("client-%d", i), ""), "x1"));
    h_proxy_finish(p);
}

Test(admin_ramp, bad_ramps_are_refused_with_a_clear_error, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = start_xy("0", NULL);
    int fd = h_admin_connect(p);

    cr_assert(eq(str, h_admin_cmd(fd, "ramp 101 over 1m"),
                 "error: the target must be a weight from 0 to 100 with at most two decimals (or "
                 "pause, resume, cancel), got \"101\"\n"));
    cr_assert(eq(str, h_admin_cmd(fd, "ramp 50 over 0"),
                 "error: the duration must be more than 0 (such as 30s, 10m or 1h)\n"));
    cr_assert(eq(str, h_admin_cmd(fd, "ramp 50 over 1m step 80"),
                 "error: the step (80.00) is larger than the distance from 0.00 to 50.00 "
                 "(50.00)\n"));
    cr_assert(eq(str, h_admin_cmd(fd, "show ramp"), "no ramp\n"));
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ pins */

Test(admin_pin, pins_beat_the_weight_in_live_traffic, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = start_xy("0", NULL);
    struct h_conn *c = h_connect(p->port);
    int fd = h_admin_connect(p);

    cr_assert(eq(str, h_admin_cmd(fd, "pin tester-1 y"), "ok: pinned \"tester-1\" to y\n"));
    cr_assert(eq(str, (char *)node_for(c, "tester-1", ""), "y1"));
    for (int i = 0; i < 20; i++)
        cr_assert(eq(str, (char *)node_for(c, h_fmt("client-%d", i), ""), "x1"));
    cr_assert(eq(str, h_admin_cmd(fd, "promote"), "ok: promoted: weight y 100.00 (was 0.00)\n"));
    cr_assert(eq(str, h_admin_cmd(fd, "pin fragile-customer x"),
                 "ok: pinned \"fragile-customer\" to x\n"));
    cr_assert(eq(str, (char *)node_for(c, "fragile-customer", ""), "x1"));
    cr_assert(eq(str, (char *)node_for(c, "tester-1", ""), "y1"));
    for (int i = 0; i < 20; i++)
        cr_assert(eq(str, (char *)node_for(c, h_fmt("client-%d", i), ""), "y1"));
    /* A tester's override header still wins over a pin. */
    cr_assert(eq(str, (char *)node_for(c, "fragile-customer", "X-Crossfade-Target: y\r\n"), "y1"));
    cr_assert(eq(str, h_admin_cmd(fd, "show pins"), "pin fragile-customer x\npin tester-1 y\n"));
    cr_assert(eq(str, h_admin_cmd(fd, "unpin fragile-customer"),
                 "ok: unpinned \"fragile-customer\" (was x)\n"));
    cr_assert(eq(str, (char *)node_for(c, "fragile-customer", ""), "y1"));
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ the freeze */

Test(admin_freeze, freeze_on_off_and_show, .timeout = H_TEST_TIMEOUT)
{
    int api = h_free_port();
    struct h_upstream *x = h_upstream_start("x1", NULL);
    struct h_proxy *p =
        h_proxy_start(&(struct h_proxy_opts){.x = {{x->port}}, .admin_api_port = api});
    int fd = h_admin_connect(p);
    struct h_conn *c = h_connect(api);
    struct h_msg m;
    char *reply;

    cr_assert(eq(str, h_admin_cmd(fd, "freeze show"), "freeze off\n"));
    reply = h_admin_cmd(fd, "freeze on");
    cr_assert(eq(int, strncmp(reply, "ok: freeze on since 20", 22), 0), "%s", reply);
    cr_assert(
        ne(ptr, strstr(reply, "Z: writes through admin_api listeners get 423 Locked\n"), NULL),
        "%s", reply);
    reply = h_admin_cmd(fd, "freeze show");
    cr_assert(eq(int, strncmp(reply, "freeze on since 20", 18), 0), "%s", reply);
    cr_assert(ne(ptr, strstr(reply, "Z ("), NULL), "%s", reply);
    /* What the freeze is for: writes through the admin_api listener are locked, reads pass. */
    cr_assert(eq(
        int, h_sendf(c, "POST /services HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}"), 0));
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 423));
    cr_assert(eq(int, h_get(h_connect(api), "/services", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    reply = h_admin_cmd(fd, "freeze off");
    cr_assert(eq(int, strncmp(reply, "ok: freeze off (was on since 20", 31), 0), "%s", reply);
    c = h_connect(api);
    cr_assert(eq(
        int, h_sendf(c, "POST /services HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}"), 0));
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, h_admin_cmd(fd, "freeze maybe"),
                 "error: expected on, off or show, got \"maybe\"\n"));
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ the state file */

Test(admin_state, weight_pins_and_freeze_survive_a_restart, .timeout = H_TEST_TIMEOUT)
{
    const char *state = h_path("crossfade.state");
    const char *yaml = h_fmt("state_file: \"%s\"\n", state);
    struct h_proxy *p = start_xy("5", yaml);
    int fd = h_admin_connect(p);
    char *freeze, *text;
    struct h_conn *c;

    cr_assert(eq(str, h_admin_cmd(fd, "set weight 25"), "ok: weight y 25.00 (was 5.00)\n"));
    h_admin_cmd(fd, "pin alice y");
    h_admin_cmd(fd, "pin bob x");
    h_admin_cmd(fd, "freeze on");
    freeze = h_admin_cmd(fd, "freeze show");
    h_proxy_finish(p);
    text = h_read_file(state, NULL);
    cr_assert(ne(ptr, text, NULL), "no state file at %s", state);
    cr_assert(ne(ptr, strstr(text, "\nweight 25.00\nfreeze on "), NULL), "%s", text);
    cr_assert(ne(ptr, strstr(text, "\npin alice y\npin bob x\n"), NULL), "%s", text);

    p = start_xy("5", yaml);
    fd = h_admin_connect(p);
    cr_assert(eq(str, h_admin_cmd(fd, "show weight"), "x 75.00\ny 25.00\n"));
    cr_assert(eq(str, h_admin_cmd(fd, "show pins"), "pin alice y\npin bob x\n"));
    /* "freeze on since 2026-11-30T07:20:03Z" (36 bytes): the "(Ns ago)" after it may differ. */
    cr_assert(eq(int, strncmp(h_admin_cmd(fd, "freeze show"), freeze, 36), 0), "the same since");
    cr_assert(ne(ptr,
                 strstr(h_admin_cmd(fd, "show events"), "\"state file\" weight 5.00 -> 25.00\n"),
                 NULL));
    c = h_connect(p->port);
    cr_assert(eq(str, (char *)node_for(c, "alice", ""), "y1"));
    h_proxy_finish(p);
}

Test(admin_state, a_ramp_resumes_its_schedule_after_a_restart, .timeout = H_TEST_TIMEOUT)
{
    const char *yaml = h_fmt("state_file: \"%s\"\n", h_path("crossfade.state"));
    struct h_proxy *p = start_xy("0", yaml);
    int fd = h_admin_connect(p);
    uint64_t t0, t3;
    char *show;

    t0 = h_now_ms();
    h_admin_cmd(fd, "ramp 30 over 4500ms step 10");
    wait_weight(fd, "10.00", 10000);
    h_proxy_finish(p);
    p = start_xy("0", yaml);
    fd = h_admin_connect(p);
    show = h_admin_cmd(fd, "show ramp");
    cr_assert(ne(ptr, strstr(show, "ramp running\n"), NULL), "%s", show);
    cr_assert(ne(ptr, strstr(show, "\nby uid="), NULL), "%s", show);
    t3 = wait_weight(fd, "30.00", 15000);
    cr_assert(ge(u64, t3 - t0, (uint64_t)4500), "the last step came %llu ms after the start",
              (unsigned long long)(t3 - t0));
    cr_assert(eq(str, h_admin_cmd(fd, "show ramp"), "no ramp\n"));
    cr_assert(ne(ptr,
                 strstr(h_admin_cmd(fd, "show events"),
                        "\"ramp 30 over 4500ms step 10\" ramp running to 30.00 -> done"),
                 NULL));
    h_proxy_finish(p);
}

Test(admin_state, a_corrupt_state_file_is_reported_and_kept_and_the_config_used,
     .timeout = H_TEST_TIMEOUT)
{
    const char *state =
        h_write_file("crossfade.state", "version 1\nweight 25.00\nfreeze perhaps\n");
    struct h_proxy *p = start_xy("5", h_fmt("state_file: \"%s\"\n", state));
    int fd = h_admin_connect(p);
    char *log;

    cr_assert(eq(str, h_admin_cmd(fd, "show weight"), "x 95.00\ny 5.00\n"));
    log = h_read_file(h_path("crossfade.log"), NULL);
    cr_assert(ne(ptr, strstr(log, "event=state_file_unusable"), NULL), "%s", log);
    cr_assert(ne(ptr, strstr(log, h_fmt("%s:3: expected \\\"freeze off\\\"", state)), NULL), "%s",
              log);
    cr_assert(eq(str, h_read_file(state, NULL), "version 1\nweight 25.00\nfreeze perhaps\n"));
    h_proxy_finish(p);
    cr_assert(eq(str, h_read_file(state, NULL), "version 1\nweight 25.00\nfreeze perhaps\n"),
              "a corrupt file is left as it is while nothing changes");
}
