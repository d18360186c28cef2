/* tests/unit/test_adm_pin.c -- pin, unpin, show pins and freeze through adm_exec on a real
 * router: what is published, the replies, the errors, the audit trail. */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "admin/adm.h"

static const char fx_yaml[] = "listen:\n"
                              "  - address: \"127.0.0.1:8000\"\n"
                              "  - address: \"127.0.0.1:8001\"\n"
                              "    role: admin_api\n"
                              "admin:\n"
                              "  socket: \"/tmp/xf-unit/admin.sock\"\n"
                              "split:\n"
                              "  weight: 0\n"
                              "  key: [\"header:X-Consumer-ID\", \"ip\"]\n"
                              "  seed: \"unit\"\n"
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

static int64_t
fx_wall(void)
{
    return 1764470400000; /* 2025-11-30T02:40:00Z */
}

static void
fx_init(const char *yaml)
{
    struct xf_err err = {{0}};
    struct bal_snapshot *snap;

    xf_log_min = XF_LOG_WARN;
    fx_cfg = cfg_parse(yaml, strlen(yaml), "t.yaml", &err);
    cr_assert(ne(ptr, fx_cfg, NULL), "%s", err.msg);
    snap = bal_snapshot_new(fx_cfg, NULL, 1, &err);
    cr_assert(ne(ptr, snap, NULL), "%s", err.msg);
    bal_router_init(&fx_router, snap);
    cr_assert(eq(int, adm_state_init(&fx_st, fx_cfg, &fx_router, NULL, &err), 0), "%s", err.msg);
    fx_st.wall_ms = fx_wall;
    fx_out = evbuffer_new();
}

static void
fx_setup(void)
{
    fx_init(fx_yaml);
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

TestSuite(adm_pin, .init = fx_setup, .fini = fx_teardown);
TestSuite(adm_freeze, .init = fx_setup, .fini = fx_teardown);
TestSuite(adm_freeze_alone, .fini = fx_teardown); /* each test loads its own config */

static const char *
run(const char *line, enum adm_result want)
{
    enum adm_result res =
        adm_exec(&fx_st, &(struct adm_peer){1000, 4242, 1}, line, strlen(line), fx_out);
    size_t n = evbuffer_get_length(fx_out);

    free(fx_reply);
    fx_reply = calloc(1, n + 1);
    evbuffer_remove(fx_out, fx_reply, n);
    cr_assert(ge(sz, n, (size_t)3));
    fx_reply[n - 2] = '\0';
    cr_assert(eq(ptr, strstr(fx_reply, "\n\n"), NULL), "an empty line inside the reply");
    cr_assert(eq(int, res, want), "\"%s\": %s", line, fx_reply);
    return fx_reply;
}

static const char *
run_ok(const char *line)
{
    return run(line, ADM_OK);
}

static const char *
run_error(const char *line)
{
    return run(line, ADM_ERROR);
}

/* The side the current snapshot gives a request with X-Consumer-ID: key (from 192.0.2.1). */
static enum cfg_cluster_id
side_for(const char *key, enum bal_reason *reason)
{
    struct xf_hdr h = {
        .name = "X-Consumer-ID", .name_len = 13, .value = key, .value_len = (uint32_t)strlen(key)};
    struct bal_request req = {.hdrs = &h, .n_hdrs = 1, .target = "/", .target_len = 1};
    struct bal_snapshot *s = bal_router_acquire(&fx_router);
    struct bal_state st = {0};
    struct bal_choice ch;

    req.peer.family = AF_INET;
    cr_assert(eq(int, bal_pick(s, &req, &st, &ch), 0));
    bal_snapshot_unref(s);
    if (reason != NULL)
        *reason = ch.reason;
    return ch.cluster;
}

static struct bal_snapshot *
current(void)
{
    return bal_router_acquire(&fx_router);
}

/* ------------------------------------------------------------------ pins */

Test(adm_pin, a_pin_is_in_force_when_the_reply_comes)
{
    enum bal_reason why;

    cr_assert(eq(int, side_for("alice", NULL), CFG_CLUSTER_X));
    cr_assert(eq(str, (char *)run_ok("pin alice y"), "ok: pinned \"alice\" to y"));
    cr_assert(eq(int, side_for("alice", &why), CFG_CLUSTER_Y));
    cr_assert(eq(int, (int)why, (int)BAL_REASON_PIN));
    cr_assert(eq(int, side_for("bob", &why), CFG_CLUSTER_X));
    cr_assert(eq(int, (int)why, (int)BAL_REASON_WEIGHT));
    run_ok("promote");
    run_ok("pin bob x");
    cr_assert(eq(int, side_for("bob", NULL), CFG_CLUSTER_X), "a pin beats weight 100 too");
    cr_assert(eq(int, side_for("alice", NULL), CFG_CLUSTER_Y));
}

Test(adm_pin, pinning_again_says_what_changed)
{
    run_ok("pin alice y");
    cr_assert(eq(str, (char *)run_ok("pin alice x"), "ok: pinned \"alice\" to x (was y)"));
    cr_assert(eq(str, (char *)run_ok("pin alice X"), "ok: \"alice\" is pinned to x (unchanged)"));
    cr_assert(eq(int, side_for("alice", NULL), CFG_CLUSTER_X));
}

Test(adm_pin, unpin_lets_the_key_follow_the_weight_again)
{
    run_ok("pin alice y");
    cr_assert(eq(str, (char *)run_ok("unpin alice"), "ok: unpinned \"alice\" (was y)"));
    cr_assert(eq(int, side_for("alice", NULL), CFG_CLUSTER_X));
    cr_assert(eq(str, (char *)run_error("unpin alice"),
                 "error: \"alice\" is not pinned (\"show pins\" lists the pins)"));
}

Test(adm_pin, a_key_may_be_written_as_which_takes_it_and_may_hold_spaces)
{
    struct bal_snapshot *s;
    enum cfg_cluster_id side;

    cr_assert(
        eq(str, (char *)run_ok("pin header:X-Consumer-ID=carol y"), "ok: pinned \"carol\" to y"));
    cr_assert(eq(str, (char *)run_ok("pin ip=::ffff:10.1.2.3 y"), "ok: pinned \"10.1.2.3\" to y"));
    cr_assert(eq(str, (char *)run_ok("pin John  Smith y"), "ok: pinned \"John  Smith\" to y"));
    s = current();
    cr_assert(eq(int, bal_pins_find(s->pins, "carol", 5, &side), 0));
    cr_assert(eq(int, bal_pins_find(s->pins, "10.1.2.3", 8, &side), 0));
    cr_assert(eq(int, bal_pins_find(s->pins, "John  Smith", 11, &side), 0));
    bal_snapshot_unref(s);
    cr_assert(eq(int, side_for("John  Smith", NULL), CFG_CLUSTER_Y));
}

Test(adm_pin, a_key_the_config_does_not_read_gets_a_note)
{
    cr_assert(eq(str, (char *)run_ok("pin cookie:session=abc y"),
                 "ok: pinned \"abc\" to y\n"
                 "note: split.key does not read cookie:session (it reads header:x-consumer-id, "
                 "ip): only the value counts"));
}

Test(adm_pin, bad_pins_get_a_clear_error_and_change_nothing)
{
    char line[1200];
    struct bal_snapshot *s;

    cr_assert(eq(str, (char *)run_error("pin alice"), "error: usage: pin KEY x|y"));
    cr_assert(eq(str, (char *)run_error("pin alice z"),
                 "error: expected x or y as the last word (usage: pin KEY x|y), got \"z\""));
    cr_assert(
        eq(str, (char *)run_error("pin ip=10.1.2 y"), "error: \"10.1.2\" is not an IP address"));
    cr_assert(
        eq(int, strncmp(run_error("pin header:= y"), "error: expected header:NAME=VALUE", 33), 0));
    memset(line, 'k', sizeof(line));
    memcpy(line, "pin ", 4);
    memcpy(line + 1029, " y", 3);
    cr_assert(eq(str, (char *)run_error(line),
                 "error: a pinned key is at most 1024 bytes, this one has 1025"));
    cr_assert(eq(str, (char *)run_error("unpin"), "error: usage: unpin KEY"));
    s = current();
    cr_assert(eq(sz, bal_pins_count(s->pins), (size_t)0));
    cr_assert(eq(u64, s->version, (uint64_t)1), "nothing was published");
    bal_snapshot_unref(s);
}

Test(adm_pin, show_pins_lists_them_sorted_as_commands)
{
    cr_assert(eq(str, (char *)run_ok("show pins"), "no pins"));
    run_ok("pin zed x");
    run_ok("pin alice y");
    run_ok("pin 10.1.2.3 y");
    cr_assert(eq(str, (char *)run_ok("show pins"), "pin 10.1.2.3 y\npin alice y\npin zed x"));
}

Test(adm_pin, pins_are_events_with_the_uid)
{
    const char *events;

    run_ok("pin alice y");
    run_ok("pin alice x");
    run_ok("unpin alice");
    events = run_ok("show events");
    cr_assert(ne(ptr, strstr(events, "uid=1000 pid=4242 \"pin alice y\" pin - -> y\n"), NULL), "%s",
              events);
    cr_assert(ne(ptr, strstr(events, "uid=1000 pid=4242 \"pin alice x\" pin y -> x\n"), NULL), "%s",
              events);
    cr_assert(ne(ptr, strstr(events, "uid=1000 pid=4242 \"unpin alice\" pin x -> -"), NULL), "%s",
              events);
}

Test(adm_pin, which_says_when_a_key_is_pinned)
{
    const char *reply;

    run_ok("pin alice y");
    reply = run_ok("which alice");
    cr_assert(ne(ptr, strstr(reply, "\nside y (pinned; by the weight: x)\n"), NULL), "%s", reply);
}

Test(adm_pin, a_pin_survives_weight_changes_and_ramps)
{
    run_ok("pin alice y");
    run_ok("set weight 50");
    run_ok("rollback");
    run_ok("ramp 10 over 1m");
    cr_assert(eq(int, side_for("alice", NULL), CFG_CLUSTER_Y));
}

/* ------------------------------------------------------------------ freeze */

Test(adm_freeze, on_off_and_show)
{
    struct bal_snapshot *s;

    cr_assert(eq(str, (char *)run_ok("freeze show"), "freeze off"));
    cr_assert(eq(str, (char *)run_ok("freeze on"),
                 "ok: freeze on since 2025-11-30T02:40:00Z: writes through admin_api listeners "
                 "get 423 Locked"));
    s = current();
    cr_assert(s->freeze);
    cr_assert(eq(i64, s->freeze_since, (int64_t)1764470400));
    bal_snapshot_unref(s);
    cr_assert(
        eq(str, (char *)run_ok("freeze show"), "freeze on since 2025-11-30T02:40:00Z (0.0s ago)"));
    cr_assert(eq(str, (char *)run_ok("freeze on"),
                 "ok: freeze on since 2025-11-30T02:40:00Z (unchanged)"));
    cr_assert(eq(str, (char *)run_ok("FREEZE OFF"),
                 "ok: freeze off (was on since 2025-11-30T02:40:00Z)"));
    s = current();
    cr_assert(not(s->freeze));
    bal_snapshot_unref(s);
    cr_assert(eq(str, (char *)run_ok("freeze off"), "ok: freeze off (unchanged)"));
}

Test(adm_freeze, the_freeze_keeps_the_weight_and_pins_and_a_weight_change_keeps_it)
{
    struct bal_snapshot *s;

    run_ok("set weight 30");
    run_ok("pin alice y");
    run_ok("freeze on");
    run_ok("set weight 40");
    s = current();
    cr_assert(s->freeze);
    cr_assert(eq(uint, s->weight_bp, 4000u));
    cr_assert(eq(sz, bal_pins_count(s->pins), (size_t)1));
    bal_snapshot_unref(s);
}

Test(adm_freeze, changes_are_events_and_bad_words_are_refused)
{
    const char *events;

    cr_assert(eq(str, (char *)run_error("freeze maybe"),
                 "error: expected on, off or show, got \"maybe\""));
    cr_assert(eq(str, (char *)run_error("freeze"), "error: usage: freeze on|off|show"));
    run_ok("freeze on");
    run_ok("freeze off");
    events = run_ok("show events");
    cr_assert(ne(ptr,
                 strstr(events, "uid=1000 pid=4242 \"freeze on\" freeze off -> on since "
                                "2025-11-30T02:40:00Z\n"),
                 NULL),
              "%s", events);
    cr_assert(ne(ptr,
                 strstr(events, "uid=1000 pid=4242 \"freeze off\" freeze on since "
                                "2025-11-30T02:40:00Z -> off"),
                 NULL),
              "%s", events);
}

Test(adm_freeze_alone, without_an_admin_api_listener_the_reply_says_it_blocks_nothing)
{
    static const char yaml[] = "listen:\n  - address: \"127.0.0.1:8000\"\n"
                               "clusters:\n  x:\n    nodes: [\"10.0.0.1:8000\"]\n"
                               "  y:\n    nodes: [\"10.0.1.1:8000\"]\n";

    fx_init(yaml);
    cr_assert(eq(str, (char *)run_ok("freeze on"),
                 "ok: freeze on since 2025-11-30T02:40:00Z: writes through admin_api listeners "
                 "get 423 Locked\n"
                 "note: no listener has role admin_api, so the freeze blocks nothing"));
}

/* show pins with many long keys is written a part at a time (ADM_MORE, st->stream): no part is
 * much more than ADM_STREAM_CHUNK, and the parts put together are every pin, sorted. */
Test(adm_pin, a_long_show_pins_comes_in_parts_sorted_and_whole)
{
    char line[300], key[220];
    struct evbuffer *all = evbuffer_new();
    struct adm_reply r;
    enum adm_result res;
    size_t parts = 1, len;
    char *text;

    memset(key, 'k', 200);
    key[200] = '\0';
    for (int i = 599; i >= 0; i--) {
        snprintf(line, sizeof(line), "pin %04d%s y", i, key);
        run_ok(line);
    }
    res = adm_exec(&fx_st, &(struct adm_peer){1000, 4242, 1}, "show pins", 9, all);
    cr_assert(eq(int, res, ADM_MORE), "600 pins of 204 bytes were written at once");
    cr_assert(ne(ptr, fx_st.stream, NULL));
    cr_assert(le(sz, evbuffer_get_length(all), (size_t)ADM_STREAM_CHUNK + 512));
    r.buf = fx_st.reply;
    r.failed = false;
    do {
        evbuffer_drain(fx_st.reply, evbuffer_get_length(fx_st.reply));
        res = fx_st.stream->next(&fx_st, fx_st.stream, &r);
        cr_assert(le(sz, evbuffer_get_length(fx_st.reply), (size_t)ADM_STREAM_CHUNK + 512));
        evbuffer_add_buffer(all, fx_st.reply);
        parts++;
    } while (res == ADM_MORE);
    cr_assert(eq(int, res, ADM_OK));
    fx_st.stream->free(fx_st.stream);
    fx_st.stream = NULL;
    cr_assert(ge(sz, parts, (size_t)4), "%zu parts", parts);
    len = evbuffer_get_length(all);
    text = calloc(1, len + 1);
    evbuffer_remove(all, text, len);
    cr_assert(eq(sz, len, (size_t)600 * strlen("pin 0000") + 600 * (200 + 3)));
    for (int i = 0; i < 600; i++) {
        char want[300];

        snprintf(want, sizeof(want), "pin %04d%s y\n", i, key);
        cr_assert(eq(int, strncmp(text + (size_t)i * strlen(want), want, strlen(want)), 0),
                  "pin %d is not where the order puts it", i);
    }
    free(text);
    evbuffer_free(all);
}
