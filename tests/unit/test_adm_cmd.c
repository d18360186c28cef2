/* tests/unit/test_adm_cmd.c -- the admin commands run through adm_exec on a real config and
 * router, without sockets: replies, errors and hints, published weights, the audit trail. */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "admin/adm.h"

#include "tests/unit/adm_fixture.h"

TestSuite(adm_cmd, .init = fx_setup, .fini = fx_teardown);

static unsigned
current_weight(void)
{
    struct bal_snapshot *s = bal_router_acquire(&fx_router);
    unsigned bp = s->weight_bp;

    bal_snapshot_unref(s);
    return bp;
}

/* ------------------------------------------------------------------ weights */

Test(adm_cmd, show_weight_gives_the_share_of_x_and_of_y)
{
    cr_assert(eq(str, (char *)run_ok("show weight"), "x 75.00\ny 25.00"));
}

Test(adm_cmd, set_weight_publishes_before_it_replies)
{
    uint64_t v = bal_router_version(&fx_router);

    cr_assert(eq(str, (char *)run_ok("set weight 12.5"), "ok: weight y 12.50 (was 25.00)"));
    cr_assert(eq(uint, current_weight(), 1250u));
    cr_assert(gt(u64, bal_router_version(&fx_router), v), "the router did not publish");
    cr_assert(eq(str, (char *)run_ok("show weight"), "x 87.50\ny 12.50"));
}

Test(adm_cmd, setting_the_weight_it_already_has_changes_nothing)
{
    uint64_t v = bal_router_version(&fx_router);

    cr_assert(eq(str, (char *)run_ok("set weight 25"), "ok: weight y 25.00 (unchanged)"));
    cr_assert(eq(u64, bal_router_version(&fx_router), v));
    cr_assert(eq(sz, fx_st.events.n, (size_t)1), "only the start is in the trail");
}

Test(adm_cmd, a_bad_weight_is_refused_and_the_weight_stays)
{
    static const char *const bad[] = {"12.345", "abc", "-1", "101", "1e2", "50%"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char line[64], want[200];

        snprintf(line, sizeof(line), "set weight %s", bad[i]);
        snprintf(want, sizeof(want),
                 "error: weight must be a number from 0 to 100 with at most two decimals, got "
                 "\"%s\"",
                 bad[i]);
        cr_assert(eq(str, (char *)run_error(line), want));
    }
    cr_assert(eq(uint, current_weight(), 2500u));
}

Test(adm_cmd, set_weight_with_0_or_2_values_gets_its_usage)
{
    cr_assert(
        eq(str, (char *)run_error("set weight"), "error: usage: set weight P [at TIME] [force]"));
    cr_assert(eq(str, (char *)run_error("set weight 1 2"),
                 "error: usage: set weight P [at TIME] [force]"));
    cr_assert(eq(str, (char *)run_error("set weight 1 force 2"),
                 "error: usage: set weight P [at TIME] [force]"));
}

Test(adm_cmd, rollback_sends_all_to_x_and_names_the_old_weight)
{
    cr_assert(eq(str, (char *)run_ok("rollback"), "ok: rolled back: weight y 0.00 (was 25.00)"));
    cr_assert(eq(uint, current_weight(), 0u));
}

/* y has half of x's weight in the fixture: it can take 50 %, so promote needs force. */
Test(adm_cmd, promote_sends_everyone_to_y)
{
    cr_assert(eq(
        str, (char *)run_ok("promote force"),
        "ok: promoted: weight y 100.00 (was 25.00)\n"
        "note: forced: y can take at most 50.00% of clients now (capacity: healthy weight 1 of y "
        "against 2 of x); 100.00% would overload it"));
    cr_assert(eq(uint, current_weight(), 10000u));
    cr_assert(eq(str, (char *)run_error("promote now"), "error: usage: promote [force]"));
}

Test(adm_cmd, command_words_ignore_case_and_extra_blanks)
{
    cr_assert(eq(str, (char *)run_ok("  SHOW   Weight\t"), "x 75.00\ny 25.00"));
}

/* ------------------------------------------------------------------ errors and hints */

Test(adm_cmd, a_misspelt_command_gets_the_closest_one_as_a_hint)
{
    cr_assert(eq(str, (char *)run_error("show wieght"),
                 "error: unknown command \"show wieght\"; did you mean \"show weight\"?"));
    cr_assert(eq(str, (char *)run_error("rolback"),
                 "error: unknown command \"rolback\"; did you mean \"rollback\"?"));
    cr_assert(eq(str, (char *)run_error("set wieght 5"),
                 "error: unknown command \"set wieght 5\"; did you mean \"set weight P [at TIME] "
                 "[force]\"?"));
}

Test(adm_cmd, a_word_like_no_command_points_to_help)
{
    cr_assert(eq(str, (char *)run_error("foo"),
                 "error: unknown command \"foo\"; \"help\" lists the commands"));
}

Test(adm_cmd, a_group_word_alone_lists_the_commands_of_the_group)
{
    const char *reply = run_error("show");

    cr_assert(ne(ptr, strstr(reply, "\"show weight\""), NULL), "%s", reply);
    cr_assert(ne(ptr, strstr(reply, "\"show events\""), NULL), "%s", reply);
    cr_assert(eq(ptr, strstr(reply, "\"rollback\""), NULL), "%s", reply);
}

Test(adm_cmd, arguments_to_a_command_that_takes_none_get_its_usage)
{
    cr_assert(eq(str, (char *)run_error("rollback now"), "error: usage: rollback"));
}

Test(adm_cmd, json_is_refused_by_commands_that_have_no_json_form)
{
    cr_assert(
        eq(str, (char *)run_error("show weight json"), "error: \"show weight\" has no JSON form"));
}

Test(adm_cmd, a_control_byte_is_refused_and_nothing_runs)
{
    cr_assert(eq(str, (char *)run_len("rollback\0", 9, NULL),
                 "error: the line holds the control byte 0x00 at byte 9; commands are text"));
    cr_assert(eq(uint, current_weight(), 2500u));
}

Test(adm_cmd, binary_garbage_gets_an_error_reply_whatever_its_bytes)
{
    char line[512];
    unsigned seed = 7;

    for (int round = 0; round < 200; round++) {
        size_t len = (size_t)(round * 7 % 500) + 1;
        enum adm_result res;

        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            line[i] = (char)(seed >> 16);
        }
        if (adm_line_bad_byte(line, len) < 0)
            continue;
        run_len(line, len, &res);
        cr_assert(eq(int, res, ADM_ERROR));
    }
    cr_assert(eq(uint, current_weight(), 2500u));
}

Test(adm_cmd, a_blank_line_gets_no_reply)
{
    enum adm_result res;

    run(" \t ", &res);
    cr_assert(eq(int, res, ADM_SILENT));
}

Test(adm_cmd, too_many_words_are_refused)
{
    cr_assert(eq(str, (char *)run_error("a b c d e f g h i j k l m n o p q"),
                 "error: too many words (more than 16)"));
}

Test(adm_cmd, quit_answers_and_asks_for_the_connection_to_close)
{
    enum adm_result res;

    cr_assert(eq(str, (char *)run("quit", &res), "ok: bye"));
    cr_assert(eq(int, res, ADM_CLOSE));
}

/* ------------------------------------------------------------------ help, show */

Test(adm_cmd, help_lists_every_command_with_its_usage)
{
    size_t n;
    const struct adm_cmd *cmds = adm_cmd_table(&n);
    const char *reply = run_ok("help");
    size_t lines = 1;

    for (const char *p = reply; *p != '\0'; p++)
        lines += *p == '\n';
    cr_assert(eq(sz, lines, n));
    for (size_t i = 0; i < n; i++) {
        char want[128];

        snprintf(want, sizeof(want), "%s ", cmds[i].usage);
        cr_assert(ne(ptr, strstr(reply, want), NULL), "help does not list %s", cmds[i].usage);
        cr_assert(ne(sz, strlen(cmds[i].help), (size_t)0));
    }
}

Test(adm_cmd, every_command_in_the_table_is_found_by_its_own_name)
{
    size_t n;
    const struct adm_cmd *cmds = adm_cmd_table(&n);

    for (size_t i = 0; i < n; i++) {
        struct adm_args a;

        cr_assert(eq(int, adm_args_split(cmds[i].usage, strlen(cmds[i].usage), &a), 0));
        cr_assert(eq(ptr, (void *)adm_cmd_find(&a), (void *)&cmds[i]), "%s", cmds[i].usage);
    }
}

Test(adm_cmd, show_config_gives_the_main_settings_one_per_line)
{
    const char *reply;

    run_ok("set weight 30");
    reply = run_ok("show config");
    cr_assert(ne(ptr, strstr(reply, "\nlisten 127.0.0.1:8000 proxy\n"), NULL), "%s", reply);
    cr_assert(ne(ptr, strstr(reply, "\nadmin.socket /tmp/xf-unit/admin.sock\n"), NULL), "%s",
              reply);
    cr_assert(ne(ptr, strstr(reply, "\nsplit.weight 25.00 (now 30.00)\n"), NULL), "%s", reply);
    cr_assert(ne(ptr, strstr(reply, "\nclusters.y.balance round_robin\n"), NULL), "%s", reply);
    cr_assert(ne(ptr, strstr(reply, "\nclusters.x.node 10.0.0.2:8000 weight 1\n"), NULL), "%s",
              reply);
    cr_assert(ne(ptr, strstr(reply, "\ntimeouts.connect 3s\n"), NULL), "%s", reply);
    cr_assert(ne(ptr, strstr(reply, "\ntimeouts.client_idle 1m\n"), NULL), "%s", reply);
}

/* Not compared with XF_VERSION: objects built at different commits may carry different ones. */
Test(adm_cmd, show_version_names_crossfade_its_pid_and_snapshot)
{
    const char *reply = run_ok("show version");

    cr_assert(eq(int, strncmp(reply, "crossfade ", 10), 0), "%s", reply);
    cr_assert(ne(ptr, strstr(reply, "\npid "), NULL), "%s", reply);
    cr_assert(ne(ptr, strstr(reply, "\nsnapshot 1"), NULL), "%s", reply);
}

/* ------------------------------------------------------------------ the audit trail */

Test(adm_cmd, show_events_lists_each_change_with_uid)
{
    const char *reply;

    run_ok("set weight 5");
    run_ok("rollback");
    reply = run_ok("show events");
    cr_assert(ne(ptr, strstr(reply, "\"start\" weight - -> 25.00\n"), NULL), "%s", reply);
    cr_assert(
        ne(ptr, strstr(reply, "uid=1000 pid=4242 \"set weight 5\" weight 25.00 -> 5.00\n"), NULL),
        "%s", reply);
    cr_assert(ne(ptr, strstr(reply, "uid=1000 pid=4242 \"rollback\" weight 5.00 -> 0.00"), NULL),
              "%s", reply);
    cr_assert(eq(int, strncmp(reply, "#1 ", 3), 0), "%s", reply);
}

Test(adm_cmd, the_trail_keeps_the_latest_events_in_order)
{
    struct adm_events *ev = calloc(1, sizeof(*ev));

    for (int i = 0; i < ADM_EVENTS_MAX + 44; i++) {
        char v[16];

        snprintf(v, sizeof(v), "%d", i);
        adm_events_add(ev, 0, 1, "cmd", "weight", "-", v);
    }
    cr_assert(eq(sz, ev->n, (size_t)ADM_EVENTS_MAX));
    cr_assert(eq(u64, adm_events_get(ev, 0)->seq, (uint64_t)45));
    cr_assert(eq(str, (char *)adm_events_get(ev, 0)->new_value, "44"));
    cr_assert(eq(u64, adm_events_get(ev, ADM_EVENTS_MAX - 1)->seq, (uint64_t)ADM_EVENTS_MAX + 44));
    cr_assert(eq(ptr, (void *)adm_events_get(ev, ADM_EVENTS_MAX), NULL));
    free(ev);
}

Test(adm_cmd, typed_quotes_and_backslashes_are_escaped)
{
    const char *reply = run_error("nosuch \"quoted\" \\ word");

    cr_assert(eq(str, (char *)reply,
                 "error: unknown command \"nosuch \\\"quoted\\\" \\\\ word\"; \"help\" lists the "
                 "commands"));
}

/* ------------------------------------------------------------------ which */

Test(adm_cmd, which_gives_side_node_bucket_and_flip)
{
    struct bal_snapshot *snap = bal_router_acquire(&fx_router);
    struct bal_choice ch;
    char want[512], w[ADM_WEIGHT_TEXT];
    const char *reply;

    bal_which(snap, "abc", 3, &ch);
    reply = run_ok("which header:X-Consumer-ID=abc");
    snprintf(want, sizeof(want), "key \"abc\"\nside %s\n", cfg_cluster_name(ch.cluster));
    cr_assert(eq(int, strncmp(reply, want, strlen(want)), 0), "%s\nwanted:\n%s", reply, want);
    snprintf(want, sizeof(want), "\nbucket %u\nweight 25.00\nflip %s", (unsigned)ch.bucket,
             adm_weight_text(ch.bucket + 1, w));
    cr_assert(ne(ptr, strstr(reply, want), NULL), "%s\nwanted:\n%s", reply, want);
    cr_assert(eq(ptr, strstr(reply, "note:"), NULL), "%s", reply);
    bal_snapshot_unref(snap);
}

Test(adm_cmd, which_flips_a_key_to_y_at_its_flip_weight)
{
    struct bal_snapshot *snap = bal_router_acquire(&fx_router);
    struct bal_choice ch;
    char line[64], w[ADM_WEIGHT_TEXT];

    bal_which(snap, "client-7", 8, &ch);
    bal_snapshot_unref(snap);
    snprintf(line, sizeof(line), "set weight %s", adm_weight_text(ch.bucket, w));
    run_ok(line);
    cr_assert(ne(ptr, strstr(run_ok("which client-7"), "\nside x\n"), NULL), "%s", fx_reply);
    snprintf(line, sizeof(line), "set weight %s", adm_weight_text(ch.bucket + 1, w));
    run_ok(line);
    cr_assert(ne(ptr, strstr(run_ok("which client-7"), "\nside y\n"), NULL), "%s", fx_reply);
    /* y is round_robin: the key does not choose the node there. */
    cr_assert(ne(ptr, strstr(fx_reply, "\nnode - (round_robin"), NULL), "%s", fx_reply);
}

Test(adm_cmd, which_puts_any_key_on_x_at_0_and_on_y_at_100)
{
    run_ok("rollback");
    cr_assert(ne(ptr, strstr(run_ok("which cookie:session=zz"), "\nside x\nnode 10.0.0."), NULL),
              "%s", fx_reply);
    run_ok("promote force");
    cr_assert(ne(ptr, strstr(run_ok("which cookie:session=zz"), "\nside y\n"), NULL), "%s",
              fx_reply);
}

Test(adm_cmd, which_ip_hashes_the_address_as_the_balancer_writes_it)
{
    char a[512];

    snprintf(a, sizeof(a), "%s", run_ok("which ip=::ffff:10.1.2.3"));
    cr_assert(eq(int, strncmp(a, "key \"10.1.2.3\"\n", 15), 0), "%s", a);
    cr_assert(eq(str, (char *)run_ok("which ip=10.1.2.3"), a));
    cr_assert(
        eq(str, (char *)run_error("which ip=10.1.2"), "error: \"10.1.2\" is not an IP address"));
}

Test(adm_cmd, which_says_so_when_the_config_does_not_read_that_key)
{
    const char *reply = run_ok("which query:user=7");

    cr_assert(ne(ptr,
                 strstr(reply, "\nnote: split.key does not read query:user (it reads "
                               "header:x-consumer-id, cookie:session, ip)"),
                 NULL),
              "%s", reply);
}

Test(adm_cmd, which_takes_the_rest_of_the_line_as_the_value)
{
    cr_assert(
        eq(int, strncmp(run_ok("which header:X-Consumer-ID=a b  c"), "key \"a b  c\"\n", 13), 0),
        "%s", fx_reply);
}

Test(adm_cmd, which_without_a_key_answers_with_its_usage)
{
    cr_assert(eq(str, (char *)run_error("which"), "error: usage: which KEY"));
    cr_assert(
        eq(int, strncmp(run_error("which header:X-Consumer-ID"), "error: expected header:", 23), 0),
        "%s", fx_reply);
}

/* y fails over to x by default (clusters.y.failover), x does not: a key whose side has no node
 * that takes requests goes to the other side, and `which` says so. */
Test(adm_cmd, which_says_when_a_key_fails_over_to_the_other_side)
{
    const char *reply;

    run_ok("promote force");
    fx_set_health(CFG_CLUSTER_Y, "10.0.1.1:8000", BAL_HEALTH_DOWN);
    reply = run_ok("which header:X-Consumer-ID=abc");
    cr_assert(ne(ptr, strstr(reply, "\nside x (failover from y)\nnode 10.0.0."), NULL), "%s",
              reply);
    run_ok("pin abc y");
    cr_assert(ne(ptr,
                 strstr(run_ok("which abc"),
                        "\nside x (failover from y; pinned to y; by the weight: y)\n"),
                 NULL),
              "%s", fx_reply);
    fx_set_health(CFG_CLUSTER_Y, "10.0.1.1:8000", BAL_HEALTH_UP);
    cr_assert(ne(ptr, strstr(run_ok("which abc"), "\nside y (pinned; by the weight: y)\n"), NULL),
              "%s", fx_reply);
}

Test(adm_cmd, which_without_failover_says_no_node_takes_the_key)
{
    run_ok("rollback");
    fx_set_health(CFG_CLUSTER_X, "10.0.0.1:8000", BAL_HEALTH_DOWN);
    fx_set_health(CFG_CLUSTER_X, "10.0.0.2:8000", BAL_HEALTH_EJECTED);
    cr_assert(ne(ptr,
                 strstr(run_ok("which abc"), "\nside x\nnode none (no node of x takes requests: "
                                             "up, healthy, weight above 0)\n"),
                 NULL),
              "%s", fx_reply);
}

/* ------------------------------------------------------------------ show config */

TestSuite(adm_config, .fini = fx_teardown); /* each test loads its own config */

Test(adm_config, show_config_has_the_defaults_of_the_new_keys)
{
    const char *reply;

    fx_setup();
    reply = run_ok("show config");
    cr_assert(ne(ptr,
                 strstr(reply, "\nclusters.x.balance hash\n"
                               "clusters.x.failover false\n"
                               "clusters.x.max_connections 0\n"
                               "clusters.x.max_pending 100\n"
                               "clusters.x.max_idle auto\n"
                               "clusters.x.health off\n"
                               "clusters.x.outlier.failures 5\n"
                               "clusters.x.outlier.ejection 10s\n"
                               "clusters.x.outlier.max_ejection 5m\n"
                               "clusters.x.slow_start off\n"
                               "clusters.x.resolve_interval off\n"
                               "clusters.x.node 10.0.0.1:8000 weight 1\n"),
                 NULL),
              "%s", reply);
    cr_assert(ne(ptr, strstr(reply, "\nclusters.y.failover true\n"), NULL), "%s", reply);
    cr_assert(ne(ptr, strstr(reply, "\ntimeouts.queue 5s\n"), NULL), "%s", reply);
    cr_assert(ne(ptr, strstr(reply, "\nretries 2\n"), NULL), "%s", reply);
}

/* show config for fx_yaml with `extra` added to its split section. */
static const char *
show_config_with_split(const char *extra)
{
    char yaml[2048];
    const char *at = strstr(fx_yaml, "split:\n");

    cr_assert(ne(ptr, (void *)at, NULL));
    snprintf(yaml, sizeof(yaml), "%.*s%s%s", (int)(at - fx_yaml + 7), fx_yaml, extra, at + 7);
    fx_setup_yaml(yaml);
    return run_ok("show config");
}

Test(adm_config, show_config_says_who_may_choose_a_side_and_warns_when_everyone_can)
{
    const char *reply = show_config_with_split("");

    cr_assert(ne(ptr, strstr(reply, "\nsplit.override_from 127.0.0.0/8 ::1\n"), NULL), "%s", reply);
    cr_assert(eq(ptr, strstr(reply, "WARNING"), NULL), "%s", reply);
    fx_teardown();
    reply = show_config_with_split("  override_from: any\n");
    cr_assert(ne(ptr,
                 strstr(reply, "\nsplit.override_from any\n"
                               "note: WARNING: every client, the public included, can choose its "
                               "side (X-Crossfade-Target: y), even after a rollback; list the "
                               "testers' networks in split.override_from\n"),
                 NULL),
              "%s", reply);
    fx_teardown();
    reply = show_config_with_split("  override_from: []\n");
    cr_assert(ne(ptr,
                 strstr(reply, "\nsplit.override_from -\n"
                               "note: no client may choose its side: overrides are ignored\n"),
                 NULL),
              "%s", reply);
    fx_teardown();
    reply = show_config_with_split("  override_from: any\n  override_header: off\n");
    cr_assert(ne(ptr,
                 strstr(reply, "\nsplit.override_from -\n"
                               "note: the override header and cookie are off: no client chooses "
                               "its side\n"),
                 NULL),
              "%s", reply);
}

Test(adm_config, show_config_gives_health_outlier_and_node_limits_as_set)
{
    static const char yaml[] = "listen:\n"
                               "  - address: \"127.0.0.1:8000\"\n"
                               "retries: 0\n"
                               "timeouts:\n"
                               "  queue: 250ms\n"
                               "clusters:\n"
                               "  x:\n"
                               "    failover: true\n"
                               "    max_connections: 8\n"
                               "    max_pending: 4\n"
                               "    nodes:\n"
                               "      - \"10.0.0.1:8000\"\n"
                               "      - {address: \"10.0.0.2:8000\", weight: 2, max_pending: 9}\n"
                               "    health:\n"
                               "      path: /healthz\n"
                               "      port: 9000\n"
                               "      interval: 5s\n"
                               "      timeout: 500ms\n"
                               "      rise: 1\n"
                               "      fall: 2\n"
                               "      expect: 204\n"
                               "    outlier:\n"
                               "      failures: 0\n"
                               "  y:\n"
                               "    failover: false\n"
                               "    nodes: [\"10.0.1.1:8000\"]\n"
                               "    health:\n"
                               "      host: status.local\n";
    const char *reply;

    fx_setup_yaml(yaml);
    reply = run_ok("show config");
    cr_assert(ne(ptr,
                 strstr(reply, "\nclusters.x.failover true\n"
                               "clusters.x.max_connections 8\n"
                               "clusters.x.max_pending 4\n"
                               "clusters.x.max_idle auto\n"
                               "clusters.x.health.path /healthz\n"
                               "clusters.x.health.host -\n"
                               "clusters.x.health.port 9000\n"
                               "clusters.x.health.interval 5s\n"
                               "clusters.x.health.timeout 500ms\n"
                               "clusters.x.health.rise 1\n"
                               "clusters.x.health.fall 2\n"
                               "clusters.x.health.expect 204\n"
                               "clusters.x.outlier off\n"
                               "clusters.x.slow_start off\n"
                               "clusters.x.resolve_interval off\n"
                               "clusters.x.node 10.0.0.1:8000 weight 1\n"
                               "clusters.x.node 10.0.0.2:8000 weight 2 max_pending 9\n"),
                 NULL),
              "%s", reply);
    cr_assert(ne(ptr,
                 strstr(reply, "\nclusters.y.failover false\n"
                               "clusters.y.max_connections 0\n"
                               "clusters.y.max_pending 100\n"
                               "clusters.y.max_idle auto\n"
                               "clusters.y.health.path /status\n"
                               "clusters.y.health.host status.local\n"
                               "clusters.y.health.port -\n"
                               "clusters.y.health.interval 2s\n"
                               "clusters.y.health.timeout 1s\n"
                               "clusters.y.health.rise 2\n"
                               "clusters.y.health.fall 3\n"
                               "clusters.y.health.expect 200-399\n"),
                 NULL),
              "%s", reply);
    cr_assert(ne(ptr, strstr(reply, "\ntimeouts.queue 250ms\n"), NULL), "%s", reply);
    cr_assert(ne(ptr, strstr(reply, "\nretries 0\n"), NULL), "%s", reply);
}

/* The nodes are listed as they are now: added ones with a note, deleted ones gone, a changed
 * weight with the config's, an operator's state. */
Test(adm_config, show_config_lists_the_nodes_as_they_are_now)
{
    static const char yaml[] =
        "listen:\n"
        "  - address: \"127.0.0.1:8000\"\n"
        "  - {address: \"127.0.0.1:8001\", role: admin_api, node_port: 9001}\n"
        "clusters:\n"
        "  x:\n"
        "    nodes: [\"10.0.0.1:8000\", \"10.0.0.2:8000\"]\n"
        "    slow_start: 30s\n"
        "  y:\n"
        "    nodes: [\"10.0.1.1:8000\"]\n";
    const char *reply;

    fx_setup_yaml(yaml);
    run_ok("add node x 10.0.0.3:8000 weight 2");
    run_ok("del node x/10.0.0.2:8000");
    run_ok("set node x/10.0.0.1:8000 weight 5");
    run_ok("drain node x/10.0.0.1:8000");
    reply = run_ok("show config");
    cr_assert(ne(ptr, strstr(reply, "\nlisten 127.0.0.1:8001 admin_api node_port 9001\n"), NULL),
              "%s", reply);
    cr_assert(
        ne(ptr,
           strstr(reply, "\nclusters.x.slow_start 30s\n"
                         "clusters.x.resolve_interval off\n"
                         "clusters.x.node 10.0.0.1:8000 weight 5 draining (config: weight 1)\n"
                         "clusters.x.node 10.0.0.3:8000 weight 2 (added at run time)\n"
                         "clusters.y.balance "),
           NULL),
        "%s", reply);
    cr_assert(eq(ptr, strstr(reply, "10.0.0.2:8000"), NULL), "a deleted node is listed: %s", reply);
}

/* The monitoring keys: off by default (above), and as the file set them. */
Test(adm_config, show_config_gives_the_guard_test_traffic_and_access_log_format)
{
    static const char yaml[] = "listen:\n"
                               "  - address: \"127.0.0.1:8000\"\n"
                               "clusters:\n"
                               "  x: {nodes: [\"10.0.0.1:8000\"]}\n"
                               "  y: {nodes: [\"10.0.1.1:8000\"]}\n"
                               "access_log_format: json\n"
                               "access_log_sample: 1%\n"
                               "test_traffic: {header: X-Test, sources: [10.9.0.0/16]}\n"
                               "guard: {window: 1m, min_requests: 50, max_error_rate_delta: 2.5%,\n"
                               "        max_latency_ratio: 2, min_latency_delta: 20ms,\n"
                               "        confidence: 95%, action: step_down, step_down: 10}\n";
    const char *reply;

    fx_setup();
    reply = run_ok("show config");
    cr_assert(ne(ptr, strstr(reply, "\nadmin.http off\n"), NULL), "%s", reply);
    cr_assert(ne(ptr, strstr(reply, "\naccess_log_format text\naccess_log_sample 1\n"), NULL), "%s",
              reply);
    cr_assert(
        ne(ptr, strstr(reply, "\ntest_traffic.header -\ntest_traffic.sources -\nguard off"), NULL),
        "%s", reply);
    fx_teardown();
    fx_setup_yaml(yaml);
    reply = run_ok("show config");
    cr_assert(ne(ptr, strstr(reply, "\naccess_log_format json\naccess_log_sample 0.01\n"), NULL),
              "%s", reply);
    cr_assert(ne(ptr,
                 strstr(reply, "\ntest_traffic.header X-Test\n"
                               "test_traffic.sources 10.9.0.0/16\n"
                               "guard.window 1m\n"
                               "guard.min_requests 50\n"
                               "guard.max_error_rate_delta 2.50%\n"
                               "guard.max_latency_ratio 2\n"
                               "guard.min_latency_delta 20ms\n"
                               "guard.confidence 95%\n"
                               "guard.action step_down\n"
                               "guard.step_down 10.00%"),
                 NULL),
              "%s", reply);
}

Test(adm_config, show_config_gives_the_fleet_section_in_its_normal_form)
{
    static const char yaml[] = "listen:\n"
                               "  - address: \"127.0.0.1:8000\"\n"
                               "clusters:\n"
                               "  x: {nodes: [\"10.0.0.1:8000\"]}\n"
                               "  y: {nodes: [\"10.0.1.1:8000\"]}\n"
                               "fleet:\n"
                               "  etcd: [\"http://10.0.0.5\", \"http://[::1]:23790/\"]\n"
                               "  prefix: /crossfade/kong-prod\n"
                               "  name: edge-1\n"
                               "  local_fallback: on\n";
    const char *reply;

    fx_setup();
    reply = run_ok("show config");
    cr_assert(ne(ptr, strstr(reply, "\nfleet off"), NULL), "%s", reply);
    fx_teardown();
    fx_setup_yaml(yaml);
    reply = run_ok("show config");
    cr_assert(ne(ptr,
                 strstr(reply, "\nfleet.etcd[0] http://10.0.0.5:2379\n"
                               "fleet.etcd[1] http://[::1]:23790\n"
                               "fleet.prefix /crossfade/kong-prod/\n"
                               "fleet.name edge-1\n"
                               "fleet.local_fallback true\n"
                               "fleet.timeout 2s fleet.lease 10s\n"
                               "fleet.epoch_header -"),
                 NULL),
              "%s", reply);
}

/* adm_cmd_check's verdict on a line and its reason ("" when it passes). */
static int
check_line(const char *line, char *why, size_t size)
{
    why[0] = '\0';
    return adm_cmd_check(line, strlen(line), why, size);
}

Test(adm_cmd, a_line_is_checked_without_running_it_as_the_socket_would_answer)
{
    char why[256];

    cr_assert(eq(int, check_line("promote force", why, sizeof(why)), 0), "%s", why);
    cr_assert(eq(int, check_line("SET weight 50 force", why, sizeof(why)), 0), "%s", why);
    cr_assert(eq(int, check_line("show stats json", why, sizeof(why)), 0), "%s", why);
    cr_assert(eq(int, check_line("ramp pause", why, sizeof(why)), 0), "%s", why);
    cr_assert(eq(int, check_line("sett weight 5", why, sizeof(why)), -1));
    cr_assert(
        eq(str, why,
           "unknown command \"sett weight 5\"; did you mean \"set weight P [at TIME] [force]\"?"));
    cr_assert(eq(int, check_line("set weight", why, sizeof(why)), -1));
    cr_assert(eq(str, why, "usage: set weight P [at TIME] [force]"));
    cr_assert(eq(int, check_line("show weight json", why, sizeof(why)), -1));
    cr_assert(eq(str, why, "\"show weight\" has no JSON form"));
    cr_assert(eq(int, check_line("  ", why, sizeof(why)), -1));
    cr_assert(eq(str, why, "no command"));
    cr_assert(eq(int, check_line("rollback\x01", why, sizeof(why)), -1));
    cr_assert(eq(str, why, "the line holds the control byte 0x01 at byte 9; commands are text"));
    /* A reason longer than the room is cut, never overrun. */
    cr_assert(eq(int, check_line("sett weight 5", why, 8), -1));
    cr_assert(eq(str, why, "unknown"));
    /* Nothing ran: the weight is the config's. */
    cr_assert(eq(str, (char *)run_ok("show weight"), "x 75.00\ny 25.00"));
}
