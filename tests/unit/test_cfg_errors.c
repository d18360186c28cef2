/* tests/unit/test_cfg_errors.c -- every invalid file gets one "FILE:LINE:COL: key.path: ..."
 * message. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "config/cfg.h"

/* A valid file in two parts, so that a test can append a section (from line 8) or replace one. */
#define LISTEN "listen:\n  - address: \"127.0.0.1:8000\"\n" /* lines 1-2 */
#define CLUSTERS                                                                                   \
    "clusters:\n"                                                                                  \
    "  x:\n"                                                                                       \
    "    nodes: [\"10.0.0.1:8000\"]\n"                                                             \
    "  y:\n"                                                                                       \
    "    nodes: [\"10.0.1.1:8000\"]\n" /* lines 3-7 */
#define BASE LISTEN CLUSTERS

/*
 * Asserts that `yaml` (as "t.yaml") is rejected with a message that starts with `prefix` (the
 * position and key path) and contains `fragment`.
 */
static void
expect_error(const char *yaml, const char *prefix, const char *fragment)
{
    struct xf_err err = {{0}};
    struct cfg *cfg = cfg_parse(yaml, strlen(yaml), "t.yaml", &err);
    bool rejected = cfg == NULL;

    cfg_free(cfg);
    cr_assert(rejected, "accepted:\n%s", yaml);
    cr_assert(eq(int, strncmp(err.msg, prefix, strlen(prefix)), 0),
              "message: %s\nwanted the prefix: %s", err.msg, prefix);
    cr_assert(not(eq(ptr, strstr(err.msg, fragment), NULL)), "message: %s\nwanted: %s", err.msg,
              fragment);
}

/* Asserts that `yaml` is rejected with exactly `message`. */
static void
expect_message(const char *yaml, const char *message)
{
    struct xf_err err = {{0}};
    struct cfg *cfg = cfg_parse(yaml, strlen(yaml), "t.yaml", &err);
    bool rejected = cfg == NULL;

    cfg_free(cfg);
    cr_assert(rejected, "accepted:\n%s", yaml);
    cr_assert(eq(str, err.msg, (char *)message));
}

Test(cfg_base, is_valid_so_that_each_error_test_tests_one_thing)
{
    struct xf_err err = {{0}};
    struct cfg *cfg = cfg_parse(BASE, strlen(BASE), "t.yaml", &err);

    cr_assert(not(eq(ptr, cfg, NULL)), "%s", err.msg);
    cfg_free(cfg);
}

/* ---- YAML syntax ---------------------------------------------------------------------------- */

Test(cfg_syntax, reports_an_unclosed_flow_sequence_with_libyaml_context)
{
    expect_message("listen: [a\n",
                   "t.yaml:2:1: invalid YAML: did not find expected ',' or ']' (while parsing a "
                   "flow sequence at line 1, column 9)");
}

Test(cfg_syntax, reports_a_key_indented_out_of_its_mapping)
{
    expect_error(LISTEN " bad: 1\n", "t.yaml:3:2: invalid YAML: ", "did not find expected key");
}

Test(cfg_syntax, reports_a_tab_used_for_indentation)
{
    expect_error("listen:\n\t- a\n", "t.yaml:2:", "invalid YAML: found character that cannot");
}

Test(cfg_syntax, reports_an_undefined_alias)
{
    expect_message(BASE "split:\n  seed: *nope\n",
                   "t.yaml:9:9: invalid YAML: found undefined alias");
}

Test(cfg_syntax, reports_a_control_character_at_its_byte)
{
    expect_message(BASE "log_level: \"\x01\"\n",
                   "t.yaml:8:13: invalid YAML: control characters are not allowed (byte 0x01)");
}

Test(cfg_syntax, reports_invalid_utf8_at_its_byte)
{
    expect_message(BASE "split:\n  seed: \xff\n",
                   "t.yaml:9:9: invalid YAML: invalid leading UTF-8 octet (byte 0xff)");
}

Test(cfg_syntax, refuses_a_second_document)
{
    expect_message(BASE "---\nlog_level: debug\n",
                   "t.yaml:9:1: expected one YAML document, got a second one");
}

Test(cfg_syntax, reports_a_syntax_error_in_a_second_document)
{
    expect_error(BASE "---\nlog_level: [\n",
                 "t.yaml:10:1: invalid YAML: ", "did not find expected node content");
}

/* ---- Empty files ---------------------------------------------------------------------------- */

Test(cfg_empty, rejects_an_empty_file)
{
    expect_message("", "t.yaml:1:1: expected a mapping of settings (listen, clusters, ...), got "
                       "an empty file");
}

Test(cfg_empty, rejects_a_file_of_comments)
{
    expect_message("# nothing here yet\n\n   \n",
                   "t.yaml:1:1: expected a mapping of settings (listen, clusters, ...), got an "
                   "empty file");
}

Test(cfg_empty, rejects_a_null_text)
{
    struct xf_err err = {{0}};

    cr_assert(eq(ptr, cfg_parse(NULL, 0, "t.yaml", &err), NULL));
    cr_assert(not(eq(ptr, strstr(err.msg, "t.yaml:1:1: "), NULL)), "%s", err.msg);
}

/* ---- Keys ----------------------------------------------------------------------------------- */

Test(cfg_keys, names_the_closest_key_for_a_typo)
{
    expect_message(BASE "timeout:\n  connect: 3s\n",
                   "t.yaml:8:1: unknown key \"timeout\", did you mean \"timeouts\"?");
}

Test(cfg_keys, lists_the_valid_keys_when_nothing_is_close)
{
    expect_message(
        BASE "frobnicate: 1\n",
        "t.yaml:8:1: unknown key \"frobnicate\", expected one of: listen, admin, split, "
        "clusters, timeouts, limits, retries, access_log, access_log_format, access_log_sample, "
        "log_level, state_file, workers, tls, tunnels, guard, test_traffic, fleet");
}

Test(cfg_keys, hints_up_to_two_edits_away)
{
    expect_message(BASE "timeuots:\n  connect: 3s\n",
                   "t.yaml:8:1: unknown key \"timeuots\", did you mean \"timeouts\"?");
}

Test(cfg_keys, gives_no_hint_three_edits_away)
{
    expect_message(
        BASE "loglvl: info\n",
        "t.yaml:8:1: unknown key \"loglvl\", expected one of: listen, admin, split, "
        "clusters, timeouts, limits, retries, access_log, access_log_format, access_log_sample, "
        "log_level, state_file, workers, tls, tunnels, guard, test_traffic, fleet");
}

Test(cfg_keys, gives_no_hint_for_a_short_word_that_is_mostly_different)
{
    expect_error(BASE "ad: 1\n", "t.yaml:8:1: ", "unknown key \"ad\", expected one of: ");
}

Test(cfg_keys, hints_only_when_at_most_half_the_letters_differ)
{
    expect_error(BASE "split:\n  key: [id]\n",
                 "t.yaml:9:9: split.key[0]: ", "got \"id\" (did you mean \"ip\"?)");
    expect_message(BASE "split:\n  k: ip\n",
                   "t.yaml:9:3: split: unknown key \"k\", expected one of: weight, key, seed, "
                   "trusted_proxies, override_header, override_cookie, override_from, expose");
}

Test(cfg_keys, names_the_closest_key_inside_a_section)
{
    expect_message(BASE "timeouts:\n  conect: 3s\n",
                   "t.yaml:9:3: timeouts: unknown key \"conect\", did you mean \"connect\"?");
}

Test(cfg_keys, reports_an_unknown_key_in_a_node)
{
    expect_message(LISTEN "clusters:\n"
                          "  x:\n"
                          "    nodes: [{address: \"10.0.0.1:8000\", wieght: 2}]\n"
                          "  y:\n"
                          "    nodes: [\"10.0.1.1:8000\"]\n",
                   "t.yaml:5:40: clusters.x.nodes[0]: unknown key \"wieght\", did you mean "
                   "\"weight\"?");
}

Test(cfg_keys, lists_the_keys_of_a_node_when_nothing_is_close)
{
    expect_error(LISTEN "clusters:\n"
                        "  x:\n"
                        "    nodes: [{address: \"10.0.0.1:8000\", colour: red}]\n"
                        "  y:\n"
                        "    nodes: [\"10.0.1.1:8000\"]\n",
                 "t.yaml:5:40: clusters.x.nodes[0]: ",
                 "unknown key \"colour\", expected one of: address, weight, max_connections, "
                 "max_pending");
}

Test(cfg_keys, names_the_closest_key_for_the_split_settings)
{
    expect_message(BASE "split:\n  overide_header: X-A\n",
                   "t.yaml:9:3: split: unknown key \"overide_header\", did you mean "
                   "\"override_header\"?");
    expect_message(BASE "split:\n  trusted_proxie: [\"10.0.0.0/8\"]\n",
                   "t.yaml:9:3: split: unknown key \"trusted_proxie\", did you mean "
                   "\"trusted_proxies\"?");
    expect_message(BASE "split:\n  exposed: X-A\n",
                   "t.yaml:9:3: split: unknown key \"exposed\", did you mean \"expose\"?");
}

Test(cfg_keys, names_the_closest_key_of_a_cluster)
{
    expect_message(LISTEN "clusters:\n"
                          "  x:\n"
                          "    nodes: [\"10.0.0.1:8000\"]\n"
                          "    balanse: hash\n"
                          "  y:\n"
                          "    nodes: [\"10.0.1.1:8000\"]\n",
                   "t.yaml:6:5: clusters.x: unknown key \"balanse\", did you mean \"balance\"?");
    expect_message(LISTEN "clusters:\n"
                          "  x:\n"
                          "    nodes: [\"10.0.0.1:8000\"]\n"
                          "  y:\n"
                          "    nodes: [\"10.0.1.1:8000\"]\n"
                          "    algorithm: hash\n",
                   "t.yaml:8:5: clusters.y: unknown key \"algorithm\", expected one of: nodes, "
                   "balance, failover, max_connections, max_pending, health, outlier, slow_start, "
                   "resolve_interval, tls, proxy_protocol, max_idle");
}

Test(cfg_keys, refuses_a_duplicate_key_at_the_top)
{
    expect_message(
        BASE "log_level: info\nlog_level: debug\n",
        "t.yaml:9:1: expected each key once, got a second \"log_level\" (the first is at "
        "line 8, column 1)");
}

Test(cfg_keys, refuses_a_duplicate_key_inside_a_section)
{
    expect_message(BASE "split:\n  weight: 1\n  seed: a\n  weight: 2\n",
                   "t.yaml:11:3: split: expected each key once, got a second \"weight\" (the first "
                   "is at line 9, column 3)");
}

Test(cfg_keys, refuses_a_duplicate_cluster)
{
    expect_error(BASE "  x:\n    nodes: [\"10.0.2.1:8000\"]\n", "t.yaml:8:3: clusters: ",
                 "expected each key once, got a second \"x\" (the first is at line 4, column 3)");
}

Test(cfg_keys, refuses_a_key_that_is_not_a_name)
{
    expect_message(BASE "? [a]\n: 1\n", "t.yaml:8:3: expected a key name, got a sequence");
}

/* ---- Types ---------------------------------------------------------------------------------- */

Test(cfg_types, wants_a_mapping_at_the_top)
{
    expect_message("- listen\n", "t.yaml:1:1: expected a mapping of settings (listen, clusters, "
                                 "...), got a sequence");
    expect_message("hello\n", "t.yaml:1:1: expected a mapping of settings (listen, clusters, ...), "
                              "got \"hello\"");
}

Test(cfg_types, wants_a_mapping_for_a_section)
{
    expect_message(BASE "timeouts: [3s]\n",
                   "t.yaml:8:11: timeouts: expected a mapping, got a sequence");
    expect_message(BASE "admin: \"/tmp/a.sock\"\n",
                   "t.yaml:8:8: admin: expected a mapping, got \"/tmp/a.sock\"");
}

Test(cfg_types, wants_a_sequence_for_listen)
{
    expect_message("listen: {address: \"127.0.0.1:8000\"}\n" CLUSTERS,
                   "t.yaml:1:9: listen: expected a sequence of at least one listen address, got a "
                   "mapping");
}

Test(cfg_types, wants_a_scalar_for_a_value)
{
    expect_message(BASE "split:\n  weight: {a: 1}\n",
                   "t.yaml:9:11: split.weight: expected a percentage from 0 to 100 with at most "
                   "two decimals, got a mapping");
    expect_message(BASE "log_level: [info]\n",
                   "t.yaml:8:12: log_level: expected debug, info, warn or error, got a sequence");
}

Test(cfg_types, says_nothing_was_given_for_an_empty_value)
{
    expect_error(BASE "split:\n  seed:\n",
                 "t.yaml:9:", "split.seed: expected a non-empty string, got nothing");
    expect_error(BASE "timeouts:\n", "t.yaml:", "timeouts: expected a mapping, got nothing");
}

Test(cfg_types, says_null_for_an_explicit_null)
{
    expect_message(BASE "split:\n  seed: ~\n",
                   "t.yaml:9:9: split.seed: expected a non-empty string, got null");
    expect_message(BASE "log_level: null\n",
                   "t.yaml:8:12: log_level: expected debug, info, warn or error, got null");
}

Test(cfg_types, refuses_a_nul_byte_in_a_value)
{
    expect_message(BASE "split:\n  seed: \"a\\0b\"\n",
                   "t.yaml:9:9: split.seed: expected a non-empty string, got text with a NUL byte");
}

Test(cfg_types, escapes_and_cuts_what_it_quotes)
{
    expect_error(BASE "log_level: \"a\\tb\"\n", "t.yaml:8:12: log_level: ", "got \"a\\x09b\"");
    expect_error(BASE
                 "log_level: "
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
                 "t.yaml:8:12: log_level: ",
                 "got \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"...");
}

/* ---- listen --------------------------------------------------------------------------------- */

Test(cfg_listen, is_required)
{
    expect_message(CLUSTERS, "t.yaml:1:1: listen: expected a sequence of at least one listen "
                             "address, got nothing");
}

Test(cfg_listen, needs_at_least_one_address)
{
    expect_message("listen: []\n" CLUSTERS,
                   "t.yaml:1:9: listen: expected a sequence of at least one listen address, got an "
                   "empty sequence");
}

Test(cfg_listen, needs_an_address_in_each_entry)
{
    expect_message("listen:\n  - role: proxy\n" CLUSTERS,
                   "t.yaml:2:5: listen[0].address: expected an address such as 127.0.0.1:8000, got "
                   "nothing");
}

Test(cfg_listen, refuses_an_address_without_a_port)
{
    expect_message("listen:\n  - address: \"127.0.0.1\"\n" CLUSTERS,
                   "t.yaml:2:14: listen[0].address: expected host:port, as in 10.0.0.1:8000, got "
                   "\"127.0.0.1\" (no port)");
}

Test(cfg_listen, refuses_port_zero_and_ports_above_65535)
{
    expect_message("listen: [\"127.0.0.1:0\"]\n" CLUSTERS,
                   "t.yaml:1:10: listen[0]: expected a port from 1 to 65535, got \"127.0.0.1:0\"");
    expect_message("listen:\n  - address: \"127.0.0.1:65536\"\n" CLUSTERS,
                   "t.yaml:2:14: listen[0].address: expected a port from 1 to 65535, got "
                   "\"127.0.0.1:65536\"");
}

Test(cfg_listen, refuses_an_unclosed_bracket)
{
    expect_error("listen:\n  - address: \"[::1:8000\"\n" CLUSTERS,
                 "t.yaml:2:14: listen[0].address: ", "expected ']' to close the IPv6 address");
}

Test(cfg_listen, refuses_an_empty_host)
{
    expect_error("listen:\n  - address: \":8000\"\n" CLUSTERS, "t.yaml:2:14: listen[0].address: ",
                 "expected a host before the port, as in 10.0.0.1:8000, got \":8000\"");
}

Test(cfg_listen, refuses_the_same_address_twice)
{
    expect_message(
        "listen: [\"127.0.0.1:8000\", \"127.0.0.2:8000\", \"127.0.0.1:8000\"]\n" CLUSTERS,
        "t.yaml:1:46: listen[2]: expected each listen address once, got "
        "\"127.0.0.1:8000\" again (as listen[0])");
}

Test(cfg_listen, compares_addresses_not_spellings)
{
    expect_error("listen:\n  - address: \"[::1]:8000\"\n  - address: \"[0:0::1]:8000\"\n" CLUSTERS,
                 "t.yaml:3:14: listen[1].address: ",
                 "expected each listen address once, got \"[0:0::1]:8000\" again (as listen[0])");
}

Test(cfg_listen, refuses_an_unknown_role_with_a_hint)
{
    expect_message(LISTEN "    role: admin-api\n" CLUSTERS,
                   "t.yaml:3:11: listen[0].role: expected proxy or admin_api, got \"admin-api\" "
                   "(did you mean \"admin_api\"?)");
    expect_message(LISTEN "    role: frontend\n" CLUSTERS,
                   "t.yaml:3:11: listen[0].role: expected proxy or admin_api, got \"frontend\"");
}

Test(cfg_listen, refuses_a_sequence_as_an_entry)
{
    expect_message("listen: [[\"127.0.0.1:8000\"]]\n" CLUSTERS,
                   "t.yaml:1:10: listen[0]: expected an address or a mapping with address, got a "
                   "sequence");
}

/* ---- clusters ------------------------------------------------------------------------------- */

Test(cfg_clusters, are_required)
{
    expect_message(LISTEN, "t.yaml:1:1: clusters: expected a mapping with clusters x and y, got "
                           "nothing");
}

Test(cfg_clusters, need_both_x_and_y)
{
    expect_message(LISTEN "clusters:\n  x:\n    nodes: [\"10.0.0.1:8000\"]\n",
                   "t.yaml:4:3: clusters.y: expected a cluster with nodes (both x and y are "
                   "required), got nothing");
    expect_message(LISTEN "clusters:\n  y:\n    nodes: [\"10.0.0.1:8000\"]\n",
                   "t.yaml:4:3: clusters.x: expected a cluster with nodes (both x and y are "
                   "required), got nothing");
}

Test(cfg_clusters, are_named_x_and_y_only)
{
    expect_message(LISTEN "clusters:\n"
                          "  x:\n"
                          "    nodes: [\"10.0.0.1:8000\"]\n"
                          "  z:\n"
                          "    nodes: [\"10.0.1.1:8000\"]\n",
                   "t.yaml:6:3: clusters: expected cluster x or y, got \"z\"");
}

Test(cfg_clusters, need_at_least_one_node)
{
    expect_message(LISTEN "clusters:\n  x:\n    nodes: [\"10.0.0.1:8000\"]\n  y:\n    nodes: []\n",
                   "t.yaml:7:12: clusters.y.nodes: expected a sequence of at least one node "
                   "address, got an empty sequence");
    expect_message(LISTEN "clusters:\n  x:\n    nodes: [\"10.0.0.1:8000\"]\n  y: {}\n",
                   "t.yaml:6:6: clusters.y.nodes: expected a sequence of at least one node "
                   "address, got nothing");
}

Test(cfg_clusters, want_a_sequence_of_nodes)
{
    expect_message(LISTEN "clusters:\n  x:\n    nodes: \"10.0.0.1:8000\"\n  y:\n    nodes: []\n",
                   "t.yaml:5:12: clusters.x.nodes: expected a sequence of at least one node "
                   "address, got \"10.0.0.1:8000\"");
}

Test(cfg_clusters, refuse_the_same_node_twice_in_a_cluster)
{
    expect_message(LISTEN "clusters:\n"
                          "  x:\n"
                          "    nodes: [\"10.0.0.1:8000\", \"10.0.0.1:8000\"]\n"
                          "  y:\n"
                          "    nodes: [\"10.0.1.1:8000\"]\n",
                   "t.yaml:5:30: clusters.x.nodes[1]: expected each node once, got "
                   "\"10.0.0.1:8000\" again (as clusters.x.nodes[0])");
}

Test(cfg_clusters, refuse_the_same_node_in_x_and_y)
{
    expect_message(LISTEN "clusters:\n"
                          "  x:\n"
                          "    nodes: [\"10.0.0.1:8000\", \"10.0.0.2:8000\"]\n"
                          "  y:\n"
                          "    nodes:\n"
                          "      - address: \"10.0.0.2:8000\"\n",
                   "t.yaml:8:18: clusters.y.nodes[0].address: expected a node in one cluster only, "
                   "got \"10.0.0.2:8000\", which is also clusters.x.nodes[1]");
}

Test(cfg_clusters, report_a_bad_node_weight_with_its_full_path)
{
    expect_message(LISTEN "clusters:\n"
                          "  x:\n"
                          "    nodes: [\"10.0.0.1:8000\"]\n"
                          "  y:\n"
                          "    nodes:\n"
                          "      - \"10.0.1.1:8000\"\n"
                          "      - \"10.0.1.2:8000\"\n"
                          "      - address: \"10.0.1.3:8000\"\n"
                          "        weight: ten\n",
                   "t.yaml:11:17: clusters.y.nodes[2].weight: expected an integer from 0 to 1000, "
                   "got \"ten\"");
}

Test(cfg_clusters, keep_node_weights_from_0_to_1000)
{
    static const char *const bad[] = {"1001", "-1", "2.5", "1e3", "\"\"", "0x10"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char yaml[512];

        snprintf(yaml, sizeof(yaml),
                 LISTEN "clusters:\n  x:\n    nodes: [{address: \"10.0.0.1:8000\", weight: %s}]\n"
                        "  y:\n    nodes: [\"10.0.1.1:8000\"]\n",
                 bad[i]);
        expect_error(yaml, "t.yaml:5:48: clusters.x.nodes[0].weight: ",
                     "expected an integer from 0 to 1000, got ");
    }
}

Test(cfg_clusters, need_an_address_in_a_node_mapping)
{
    expect_message(LISTEN "clusters:\n  x:\n    nodes: [{weight: 2}]\n  y:\n"
                          "    nodes: [\"10.0.1.1:8000\"]\n",
                   "t.yaml:5:13: clusters.x.nodes[0].address: expected an address such as "
                   "10.0.0.1:8000, got nothing");
}

Test(cfg_clusters, refuse_a_malformed_ipv4_node)
{
    expect_message(LISTEN "clusters:\n  x:\n    nodes: [\"999.1.1.1:8000\"]\n  y:\n"
                          "    nodes: [\"10.0.1.1:8000\"]\n",
                   "t.yaml:5:13: clusters.x.nodes[0]: expected an IPv4 address such as 10.0.0.1, "
                   "got \"999.1.1.1:8000\"");
}

Test(cfg_clusters, refuse_an_unknown_balance_with_a_hint)
{
    expect_message(LISTEN "clusters:\n"
                          "  x:\n"
                          "    nodes: [\"10.0.0.1:8000\"]\n"
                          "    balance: round-robin\n"
                          "  y:\n"
                          "    nodes: [\"10.0.1.1:8000\"]\n",
                   "t.yaml:6:14: clusters.x.balance: expected hash, round_robin or least_conn, got "
                   "\"round-robin\" (did you mean \"round_robin\"?)");
    expect_message(LISTEN "clusters:\n"
                          "  x:\n"
                          "    nodes: [\"10.0.0.1:8000\"]\n"
                          "  y:\n"
                          "    balance: leastconn\n"
                          "    nodes: [\"10.0.1.1:8000\"]\n",
                   "t.yaml:7:14: clusters.y.balance: expected hash, round_robin or least_conn, got "
                   "\"leastconn\" (did you mean \"least_conn\"?)");
    expect_message(LISTEN "clusters:\n"
                          "  x:\n"
                          "    nodes: [\"10.0.0.1:8000\"]\n"
                          "    balance: random\n"
                          "  y:\n"
                          "    nodes: [\"10.0.1.1:8000\"]\n",
                   "t.yaml:6:14: clusters.x.balance: expected hash, round_robin or least_conn, got "
                   "\"random\"");
}

Test(cfg_clusters, want_one_word_for_balance)
{
    expect_message(LISTEN "clusters:\n"
                          "  x:\n"
                          "    nodes: [\"10.0.0.1:8000\"]\n"
                          "    balance: [hash]\n"
                          "  y:\n"
                          "    nodes: [\"10.0.1.1:8000\"]\n",
                   "t.yaml:6:14: clusters.x.balance: expected hash, round_robin or least_conn, got "
                   "a sequence");
    expect_message(LISTEN "clusters:\n"
                          "  x:\n"
                          "    nodes: [\"10.0.0.1:8000\"]\n"
                          "    balance:\n"
                          "  y:\n"
                          "    nodes: [\"10.0.1.1:8000\"]\n",
                   "t.yaml:6:13: clusters.x.balance: expected hash, round_robin or least_conn, got "
                   "nothing");
    expect_error(LISTEN "clusters:\n"
                        "  x:\n"
                        "    nodes: [\"10.0.0.1:8000\"]\n"
                        "    balance: Hash\n"
                        "  y:\n"
                        "    nodes: [\"10.0.1.1:8000\"]\n",
                 "t.yaml:6:14: clusters.x.balance: ", "got \"Hash\" (did you mean \"hash\"?)");
}

Test(cfg_clusters, report_a_bad_node_limit_with_its_full_path)
{
    expect_message(LISTEN "clusters:\n"
                          "  x:\n"
                          "    nodes:\n"
                          "      - \"10.0.0.1:8000\"\n"
                          "      - address: \"10.0.0.2:8000\"\n"
                          "        max_connections: 1000001\n"
                          "  y:\n"
                          "    nodes: [\"10.0.1.1:8000\"]\n",
                   "t.yaml:8:26: clusters.x.nodes[1].max_connections: expected an integer from 0 "
                   "to 1000000, got \"1000001\"");
    expect_message(LISTEN "clusters:\n"
                          "  x:\n"
                          "    nodes: [\"10.0.0.1:8000\"]\n"
                          "  y:\n"
                          "    nodes: [{address: \"10.0.1.1:8000\", max_pending: -1}]\n",
                   "t.yaml:7:53: clusters.y.nodes[0].max_pending: expected an integer from 0 to "
                   "1000000, got \"-1\"");
}

Test(cfg_clusters, keep_node_limits_from_0_to_a_million)
{
    expect_message(BASE "    max_pending: 1000001\n",
                   "t.yaml:8:18: clusters.y.max_pending: expected an integer from 0 to 1000000, "
                   "got \"1000001\"");
    expect_message(BASE "    max_connections: ten\n",
                   "t.yaml:8:22: clusters.y.max_connections: expected an integer from 0 to "
                   "1000000, got \"ten\"");
    /* Read before the nodes, yet still reported when the nodes come first in the file. */
    expect_error(LISTEN "clusters:\n"
                        "  x:\n"
                        "    nodes: [\"10.0.0.1:8000\"]\n"
                        "    max_connections: -5\n"
                        "  y:\n"
                        "    nodes: [\"10.0.1.1:8000\"]\n",
                 "t.yaml:6:22: clusters.x.max_connections: ", "got \"-5\"");
}

Test(cfg_clusters, name_the_closest_key_for_a_limit_typo)
{
    expect_message(BASE "    max_conections: 10\n",
                   "t.yaml:8:5: clusters.y: unknown key \"max_conections\", did you mean "
                   "\"max_connections\"?");
    expect_message(LISTEN "clusters:\n"
                          "  x:\n"
                          "    nodes: [{address: \"10.0.0.1:8000\", max_pendng: 1}]\n"
                          "  y:\n"
                          "    nodes: [\"10.0.1.1:8000\"]\n",
                   "t.yaml:5:40: clusters.x.nodes[0]: unknown key \"max_pendng\", did you mean "
                   "\"max_pending\"?");
}

Test(cfg_clusters, want_true_or_false_for_failover)
{
    expect_message(BASE "    failover: maybe\n",
                   "t.yaml:8:15: clusters.y.failover: expected true or false, got \"maybe\"");
    expect_message(BASE "    failover: 1\n",
                   "t.yaml:8:15: clusters.y.failover: expected true or false, got \"1\"");
    expect_message(BASE "    failover:\n",
                   "t.yaml:8:14: clusters.y.failover: expected true or false, got nothing");
}

/* ---- health --------------------------------------------------------------------------------- */

/* Asserts that clusters.y.health.<key>: <value> (line 9) is refused with `fragment`. */
static void
expect_health_error(const char *key, const char *value, const char *fragment)
{
    char yaml[2048], prefix[128];

    snprintf(yaml, sizeof(yaml), BASE "    health:\n      %s: %s\n", key, value);
    snprintf(prefix, sizeof(prefix), "t.yaml:9:%zu: clusters.y.health.%s: ", strlen(key) + 9, key);
    expect_error(yaml, prefix, fragment);
}

Test(cfg_health, keeps_rise_and_fall_from_1_to_100)
{
    expect_message(BASE "    health:\n      rise: 0\n",
                   "t.yaml:9:13: clusters.y.health.rise: expected an integer from 1 to 100, got "
                   "\"0\"");
    expect_health_error("rise", "101", "expected an integer from 1 to 100, got \"101\"");
    expect_health_error("fall", "0", "expected an integer from 1 to 100, got \"0\"");
    expect_health_error("fall", "many", "expected an integer from 1 to 100, got \"many\"");
}

Test(cfg_health, wants_a_status_or_a_range_for_expect)
{
    static const char *const bad[] = {"600",  "abc",  "99",  "200-600",     "200-",     "-200",
                                      "2000", "\"\"", "2xx", "200-300-400", "200 - 300"};

    expect_message(BASE "    health:\n      expect: \"600\"\n",
                   "t.yaml:9:15: clusters.y.health.expect: expected a status such as 200 or a "
                   "range such as 200-399, from 100 to 599, got \"600\"");
    expect_message(BASE "    health:\n      expect: abc\n",
                   "t.yaml:9:15: clusters.y.health.expect: expected a status such as 200 or a "
                   "range such as 200-399, from 100 to 599, got \"abc\"");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_health_error("expect", bad[i],
                            "expected a status such as 200 or a range such as 200-399, from 100 "
                            "to 599, got ");
}

Test(cfg_health, wants_the_lower_status_first_in_expect)
{
    expect_message(BASE "    health:\n      expect: 300-200\n",
                   "t.yaml:9:15: clusters.y.health.expect: expected the lower status first, as in "
                   "200-300, got \"300-200\"");
}

Test(cfg_health, keeps_the_timeout_within_the_interval)
{
    expect_message(BASE "    health:\n      interval: 2s\n      timeout: 5s\n",
                   "t.yaml:10:16: clusters.y.health.timeout: expected at most interval (2s), got "
                   "5s");
    expect_message(BASE "    health:\n      timeout: 3s\n",
                   "t.yaml:9:16: clusters.y.health.timeout: expected at most interval (2s), got "
                   "3s");
    expect_message(BASE "    health:\n      interval: 500ms\n",
                   "t.yaml:9:17: clusters.y.health.interval: expected at least timeout (1s), got "
                   "500ms");
    expect_message(BASE "    health:\n      interval: 90\n      timeout: 90500ms\n",
                   "t.yaml:10:16: clusters.y.health.timeout: expected at most interval (1m30s), "
                   "got 1m30s500ms");
}

Test(cfg_health, wants_durations_from_1ms_to_24h)
{
    expect_health_error("interval", "0", "expected a duration from 1ms to 24h, got \"0\"");
    expect_health_error("timeout", "0ms", "expected a duration from 1ms to 24h, got \"0ms\"");
    expect_health_error("interval", "2x",
                        "expected a duration such as 500ms, 3s, 1m, 1h or 1m30s, got \"2x\"");
}

Test(cfg_health, names_the_closest_key_for_a_typo)
{
    expect_message(BASE "    health:\n      intervall: 5s\n",
                   "t.yaml:9:7: clusters.y.health: unknown key \"intervall\", did you mean "
                   "\"interval\"?");
    expect_message(BASE "    health:\n      colour: red\n",
                   "t.yaml:9:7: clusters.y.health: unknown key \"colour\", expected one of: path, "
                   "host, port, interval, timeout, rise, fall, expect");
    expect_message(BASE "    helth: {}\n",
                   "t.yaml:8:5: clusters.y: unknown key \"helth\", did you mean \"health\"?");
}

Test(cfg_health, wants_a_mapping)
{
    expect_message(BASE "    health:\n",
                   "t.yaml:8:12: clusters.y.health: expected a mapping, got nothing");
    expect_message(BASE "    health: true\n",
                   "t.yaml:8:13: clusters.y.health: expected a mapping, got \"true\"");
}

Test(cfg_health, wants_a_path_from_the_root_without_spaces)
{
    char value[1100];

    expect_message(BASE "    health:\n      path: status\n",
                   "t.yaml:9:13: clusters.y.health.path: expected a path such as /status, starting "
                   "with \"/\", got \"status\"");
    expect_health_error("path", "\"/a b\"",
                        "expected printable ASCII without spaces, got \"/a b\"");
    expect_health_error("path", "\"/a\\tb\"", "expected printable ASCII without spaces, got ");
    expect_health_error("path", "\"/caf\\u00e9\"", "expected printable ASCII without spaces, got ");
    expect_health_error("path", "/status#top",
                        "expected a path such as /status, without a fragment ('#'), got "
                        "\"/status#top\"");
    expect_health_error("path", "\"\"", "expected a path such as /status, got \"\"");
    memset(value, 'a', sizeof(value));
    value[0] = '/';
    value[1025] = '\0';
    expect_health_error("path", value, "expected at most 1024 bytes, got 1025");
}

Test(cfg_health, wants_a_host_without_spaces_of_at_most_255_bytes)
{
    char value[300];

    expect_message(BASE "    health:\n      host: \"status local\"\n",
                   "t.yaml:9:13: clusters.y.health.host: expected printable ASCII without spaces, "
                   "got \"status local\"");
    expect_health_error("host", "\"\"", "expected a host such as status.local, got \"\"");
    expect_health_error("host", "[a]", "expected a host such as status.local, got a sequence");
    memset(value, 'h', sizeof(value));
    value[256] = '\0';
    expect_health_error("host", value, "expected at most 255 bytes, got 256");
}

Test(cfg_health, keeps_the_port_from_1_to_65535)
{
    expect_message(BASE "    health:\n      port: 0\n",
                   "t.yaml:9:13: clusters.y.health.port: expected an integer from 1 to 65535, got "
                   "\"0\"");
    expect_health_error("port", "65536", "expected an integer from 1 to 65535, got \"65536\"");
}

/* ---- outlier -------------------------------------------------------------------------------- */

Test(cfg_outlier, keeps_failures_from_0_to_1000)
{
    expect_message(BASE "    outlier:\n      failures: 1001\n",
                   "t.yaml:9:17: clusters.y.outlier.failures: expected an integer from 0 to 1000, "
                   "got \"1001\"");
    expect_error(BASE "    outlier: {failures: -1}\n",
                 "t.yaml:8:25: clusters.y.outlier.failures: ", "got \"-1\"");
}

Test(cfg_outlier, keeps_max_ejection_at_least_the_ejection)
{
    expect_message(BASE "    outlier:\n      ejection: 1m\n      max_ejection: 30s\n",
                   "t.yaml:10:21: clusters.y.outlier.max_ejection: expected at least ejection "
                   "(1m), got 30s");
    expect_message(BASE "    outlier:\n      ejection: 10m\n",
                   "t.yaml:9:17: clusters.y.outlier.ejection: expected at most max_ejection (5m), "
                   "got 10m");
    expect_message(BASE "    outlier:\n      max_ejection: 1s\n",
                   "t.yaml:9:21: clusters.y.outlier.max_ejection: expected at least ejection "
                   "(10s), got 1s");
}

Test(cfg_outlier, wants_durations_from_1ms_to_24h)
{
    expect_message(BASE "    outlier:\n      ejection: 0\n",
                   "t.yaml:9:17: clusters.y.outlier.ejection: expected a duration from 1ms to 24h, "
                   "got \"0\"");
    expect_error(BASE "    outlier:\n      max_ejection: 25h\n",
                 "t.yaml:9:21: clusters.y.outlier.max_ejection: ",
                 "expected a duration from 1ms to 24h, got \"25h\"");
}

Test(cfg_outlier, names_the_closest_key_for_a_typo)
{
    expect_message(BASE "    outlier:\n      max_ejections: 1m\n",
                   "t.yaml:9:7: clusters.y.outlier: unknown key \"max_ejections\", did you mean "
                   "\"max_ejection\"?");
    expect_message(BASE "    outlier: []\n",
                   "t.yaml:8:14: clusters.y.outlier: expected a mapping, got an empty sequence");
}

/* ---- split ---------------------------------------------------------------------------------- */

Test(cfg_split, keeps_the_weight_from_0_to_100_with_two_decimals)
{
    static const char *const bad[] = {"12.345", "abc", "-5",  "100.01", "101",
                                      "5.",     ".5",  "1e1", "50%",    "\"\""};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char yaml[512];

        snprintf(yaml, sizeof(yaml), BASE "split:\n  weight: %s\n", bad[i]);
        expect_error(yaml, "t.yaml:9:11: split.weight: ",
                     "expected a percentage from 0 to 100 with at most two decimals, got ");
    }
    expect_message(BASE "split:\n  weight: 12.345\n",
                   "t.yaml:9:11: split.weight: expected a percentage from 0 to 100 with at most "
                   "two decimals, got \"12.345\"");
}

Test(cfg_split, names_the_key_kinds_for_an_unknown_one)
{
    expect_message(BASE "split:\n  key: [\"hedaer:X-A\"]\n",
                   "t.yaml:9:9: split.key[0]: expected one of header:NAME, cookie:NAME, "
                   "query:NAME, ip, jwt_sub:HEADER, basic_user, random or "
                   "cert:subject|san|fingerprint, got \"hedaer:X-A\" (did you mean \"header\"?)");
    expect_error(BASE "split:\n  key: [ip, \"session:x\"]\n",
                 "t.yaml:9:13: split.key[1]: ", "cert:subject|san|fingerprint, got \"session:x\"");
}

Test(cfg_split, wants_a_name_after_header)
{
    expect_message(BASE "split:\n  key: [\"header:\"]\n",
                   "t.yaml:9:9: split.key[0]: expected a header name after \"header:\", got "
                   "\"header:\"");
    expect_message(BASE "split:\n  key: header\n",
                   "t.yaml:9:8: split.key: expected a header name after \"header:\", got "
                   "\"header\"");
    expect_error(BASE "split:\n  key: [\"jwt_sub:\"]\n",
                 "t.yaml:9:9: split.key[0]: ", "expected a header name after \"jwt_sub:\"");
    expect_error(BASE "split:\n  key: [\"cookie:\"]\n",
                 "t.yaml:9:9: split.key[0]: ", "expected a cookie name after \"cookie:\"");
    expect_error(BASE "split:\n  key: [\"query:\"]\n",
                 "t.yaml:9:9: split.key[0]: ", "expected a query parameter name after \"query:\"");
}

Test(cfg_split, wants_header_names_made_of_token_characters)
{
    expect_message(BASE "split:\n  key: [\"header:X Consumer\"]\n",
                   "t.yaml:9:9: split.key[0]: expected a header name made of letters, digits and "
                   "!#$%&'*+-.^_`|~, got \"header:X Consumer\"");
    expect_error(BASE "split:\n  key: [\"jwt_sub:Auth(x)\"]\n",
                 "t.yaml:9:9: split.key[0]: ", "expected a header name made of");
    expect_error(BASE "split:\n  key: [\"cookie:a;b\"]\n",
                 "t.yaml:9:9: split.key[0]: ", "expected a cookie name made of");
    expect_error(BASE "split:\n  key: [\"header:X:Y\"]\n",
                 "t.yaml:9:9: split.key[0]: ", "expected a header name made of");
}

Test(cfg_split, wants_query_names_without_separators)
{
    expect_error(BASE "split:\n  key: [\"query:a=b\"]\n", "t.yaml:9:9: split.key[0]: ",
                 "expected a query parameter name without spaces, '&', '=' or '#', got "
                 "\"query:a=b\"");
}

Test(cfg_split, refuses_a_name_after_a_kind_that_takes_none)
{
    expect_message(BASE "split:\n  key: [\"ip:x\"]\n",
                   "t.yaml:9:9: split.key[0]: expected \"ip\" with nothing after it, got \"ip:x\"");
    expect_error(BASE "split:\n  key: [\"random:1\"]\n",
                 "t.yaml:9:9: split.key[0]: ", "expected \"random\" with nothing after it");
}

Test(cfg_split, refuses_the_same_key_twice)
{
    expect_message(BASE "split:\n  key: [ip, \"header:X-A\", ip]\n",
                   "t.yaml:9:27: split.key[2]: expected each key once, got \"ip\" again (as "
                   "split.key[0])");
    expect_error(BASE "split:\n  key: [\"header:X-A\", \"header:x-a\"]\n",
                 "t.yaml:9:23: split.key[1]: ", "expected each key once");
}

Test(cfg_split, needs_at_least_one_key)
{
    expect_message(BASE "split:\n  key: []\n",
                   "t.yaml:9:8: split.key: expected a sequence of at least one key such as ip or "
                   "header:X-Consumer-ID, got an empty sequence");
}

Test(cfg_split, needs_a_non_empty_seed)
{
    expect_message(BASE "split:\n  seed: \"\"\n",
                   "t.yaml:9:9: split.seed: expected a non-empty string, got \"\"");
}

/* ---- split: networks, the tester override, expose ------------------------------------------ */

Test(cfg_split_networks, name_the_bad_entry_of_trusted_proxies_by_its_index)
{
    expect_message(BASE "split:\n  trusted_proxies: [\"10.0.0.0/8\", \"10.0.0.1/8\"]\n",
                   "t.yaml:9:35: split.trusted_proxies[1]: expected a network address, got "
                   "\"10.0.0.1/8\" (host bits set; did you mean \"10.0.0.0/8\"?)");
    expect_message(BASE "split:\n"
                        "  trusted_proxies:\n"
                        "    - \"10.0.0.0/8\"\n"
                        "    - \"::1/128\"\n"
                        "    - \"2001:db8::1/32\"\n",
                   "t.yaml:12:7: split.trusted_proxies[2]: expected a network address, got "
                   "\"2001:db8::1/32\" (host bits set; did you mean \"2001:db8::/32\"?)");
}

Test(cfg_split_networks, name_the_bad_entry_of_override_from_by_its_index)
{
    expect_message(BASE "split:\n  override_from: [\"127.0.0.0/8\", \"::1\", \"localhost\"]\n",
                   "t.yaml:9:41: split.override_from[2]: expected an IPv4 or IPv6 network such as "
                   "10.0.0.0/8 or 2001:db8::/32, got \"localhost\"");
}

Test(cfg_split_networks, take_any_only_as_the_whole_value_of_override_from)
{
    /* In a list, or quoted, it would read as a network: refused, not widened to everyone. */
    expect_message(BASE "split:\n  override_from: [\"10.0.0.0/8\", any]\n",
                   "t.yaml:9:33: split.override_from[1]: expected an IPv4 or IPv6 network such as "
                   "10.0.0.0/8 or 2001:db8::/32, got \"any\"");
    expect_message(BASE "split:\n  trusted_proxies: any\n",
                   "t.yaml:9:20: split.trusted_proxies: expected an IPv4 or IPv6 network such as "
                   "10.0.0.0/8 or 2001:db8::/32, got \"any\"");
}

Test(cfg_split_networks, refuse_a_prefix_out_of_range)
{
    expect_message(BASE "split:\n  trusted_proxies: [\"10.0.0.0/33\"]\n",
                   "t.yaml:9:21: split.trusted_proxies[0]: expected a prefix length from 0 to 32 "
                   "after the '/', got \"10.0.0.0/33\"");
    expect_message(BASE "split:\n  override_from: [\"::/129\"]\n",
                   "t.yaml:9:19: split.override_from[0]: expected a prefix length from 0 to 128 "
                   "after the '/', got \"::/129\"");
}

Test(cfg_split_networks, name_a_single_network_by_the_key_alone)
{
    expect_message(BASE "split:\n  trusted_proxies: 10.0.0.1/8\n",
                   "t.yaml:9:20: split.trusted_proxies: expected a network address, got "
                   "\"10.0.0.1/8\" (host bits set; did you mean \"10.0.0.0/8\"?)");
}

Test(cfg_split_networks, refuse_a_mapping_or_nothing)
{
    expect_message(BASE "split:\n  trusted_proxies: {net: \"10.0.0.0/8\"}\n",
                   "t.yaml:9:20: split.trusted_proxies: expected a network such as 10.0.0.0/8, "
                   "192.168.1.5 or ::1, or a sequence of them, got a mapping");
    expect_message(BASE "split:\n  override_from:\n",
                   "t.yaml:9:17: split.override_from: expected a network such as 10.0.0.0/8, "
                   "192.168.1.5 or ::1, or a sequence of them, got nothing");
    expect_message(BASE "split:\n  override_from: ~\n",
                   "t.yaml:9:18: split.override_from: expected a network such as 10.0.0.0/8, "
                   "192.168.1.5 or ::1, or a sequence of them, got null");
}

Test(cfg_split_networks, refuse_an_entry_that_is_not_a_scalar)
{
    expect_message(BASE "split:\n  trusted_proxies: [\"10.0.0.0/8\", [\"::1\"]]\n",
                   "t.yaml:9:35: split.trusted_proxies[1]: expected a network such as 10.0.0.0/8, "
                   "192.168.1.5 or ::1, got a sequence");
    expect_message(BASE "split:\n  trusted_proxies: [\"10.0.0.0/8\", ~]\n",
                   "t.yaml:9:35: split.trusted_proxies[1]: expected a network such as 10.0.0.0/8, "
                   "192.168.1.5 or ::1, got null");
}

Test(cfg_split_networks, refuse_the_same_network_twice)
{
    expect_message(BASE "split:\n  trusted_proxies: [\"10.0.0.0/8\", \"::1\", \"10.0.0.0/8\"]\n",
                   "t.yaml:9:42: split.trusted_proxies[2]: expected each network once, got "
                   "\"10.0.0.0/8\" again (as split.trusted_proxies[0])");
    expect_error(
        BASE "split:\n  override_from: [\"::1\", \"0:0::1/128\"]\n",
        "t.yaml:9:26: split.override_from[1]: ",
        "expected each network once, got \"0:0::1/128\" again (as split.override_from[0])");
}

Test(cfg_split_override, wants_a_header_name_made_of_token_characters)
{
    expect_message(BASE "split:\n  override_header: \"X Crossfade\"\n",
                   "t.yaml:9:20: split.override_header: expected a header name made of letters, "
                   "digits and !#$%&'*+-.^_`|~, got \"X Crossfade\"");
    expect_error(BASE "split:\n  override_header: \"X-Target:\"\n",
                 "t.yaml:9:20: split.override_header: ", "expected a header name made of");
    expect_error(BASE "split:\n  expose: \"X-Route\\n\"\n", "t.yaml:9:11: split.expose: ",
                 "expected a header name made of letters, digits and !#$%&'*+-.^_`|~, got "
                 "\"X-Route\\x0a\"");
}

Test(cfg_split_override, wants_a_cookie_name_made_of_token_characters)
{
    expect_message(BASE "split:\n  override_cookie: \"a;b\"\n",
                   "t.yaml:9:20: split.override_cookie: expected a cookie name made of letters, "
                   "digits and !#$%&'*+-.^_`|~, got \"a;b\"");
    expect_error(BASE "split:\n  override_cookie: \"a=b\"\n",
                 "t.yaml:9:20: split.override_cookie: ", "expected a cookie name made of");
}

Test(cfg_split_override, refuses_true_an_empty_name_and_nothing)
{
    expect_message(BASE "split:\n  override_header: true\n",
                   "t.yaml:9:20: split.override_header: expected a header name or off, got "
                   "\"true\"");
    expect_message(BASE "split:\n  override_cookie: yes\n",
                   "t.yaml:9:20: split.override_cookie: expected a cookie name or off, got "
                   "\"yes\"");
    expect_message(BASE "split:\n  expose: \"\"\n",
                   "t.yaml:9:11: split.expose: expected a header name or off, got \"\"");
    expect_message(BASE "split:\n  expose:\n",
                   "t.yaml:9:10: split.expose: expected a header name or off, got nothing");
    expect_message(BASE "split:\n  override_header: [X-A]\n",
                   "t.yaml:9:20: split.override_header: expected a header name or off, got a "
                   "sequence");
}

Test(cfg_split_override, refuses_a_header_that_http_reserves)
{
    static const char *const reserved[] = {
        "Connection", "content-length", "Host",    "Keep-Alive",        "proxy-connection",
        "TE",         "Trailer",        "UPGRADE", "Transfer-Encoding",
    };

    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        char yaml[512], fragment[64];

        snprintf(fragment, sizeof(fragment), "got \"%s\"", reserved[i]);
        snprintf(yaml, sizeof(yaml), BASE "split:\n  expose: %s\n", reserved[i]);
        expect_error(yaml, "t.yaml:9:11: split.expose: ",
                     "expected a header name other than Connection, Content-Length, Host, "
                     "Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding or Upgrade, ");
        expect_error(yaml, "t.yaml:9:11: split.expose: ", fragment);
        snprintf(yaml, sizeof(yaml), BASE "split:\n  override_header: %s\n", reserved[i]);
        expect_error(yaml, "t.yaml:9:20: split.override_header: ", fragment);
    }
}

/* ---- timeouts ------------------------------------------------------------------------------- */

Test(cfg_timeouts, refuse_a_bad_duration_with_examples)
{
    expect_message(BASE "timeouts:\n  connect: 3x\n",
                   "t.yaml:9:12: timeouts.connect: expected a duration such as 500ms, 3s, 1m, 1h "
                   "or 1m30s, got \"3x\"");
}

Test(cfg_timeouts, must_be_above_zero_and_at_most_a_day)
{
    static const char *const names[] = {
        "connect",  "client_header", "client_idle", "upstream_response", "upstream_idle",
        "shutdown", "queue",         "tunnel_idle", "client_request"};
    static const char *const bad[] = {"0", "0s", "0ms", "25h", "24h1ms"};

    for (size_t n = 0; n < sizeof(names) / sizeof(names[0]); n++) {
        for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
            char yaml[512], prefix[128], fragment[128];

            snprintf(yaml, sizeof(yaml), BASE "timeouts:\n  %s: %s\n", names[n], bad[b]);
            snprintf(prefix, sizeof(prefix), "t.yaml:9:%zu: timeouts.%s: ", strlen(names[n]) + 5,
                     names[n]);
            snprintf(fragment, sizeof(fragment), "expected a duration from 1ms to 24h, got \"%s\"",
                     bad[b]);
            expect_error(yaml, prefix, fragment);
        }
    }
}

/* client_request alone may be off; the limit per connection is a count, 0 for none. */
Test(cfg_timeouts, client_request_is_a_duration_or_off_and_requests_per_connection_a_count)
{
    static const char yaml[] = BASE "timeouts: {client_request: 2m}\n"
                                    "limits: {max_requests_per_connection: 1000}\n";
    struct xf_err err = {{0}};
    struct cfg *cfg = cfg_parse(yaml, strlen(yaml), "t.yaml", &err);

    cr_assert(ne(ptr, cfg, NULL), "%s", err.msg);
    cr_assert(eq(uint, cfg->timeouts.client_request_ms, 120000));
    cr_assert(eq(uint, cfg->limits.max_requests_per_connection, 1000));
    cfg_free(cfg);
    cfg = cfg_parse(BASE "timeouts: {client_request: off}\n",
                    strlen(BASE "timeouts: {client_request: off}\n"), "t.yaml", &err);
    cr_assert(ne(ptr, cfg, NULL), "%s", err.msg);
    cr_assert(eq(uint, cfg->timeouts.client_request_ms, 0));
    cfg_free(cfg);
    expect_message(BASE "limits:\n  max_requests_per_connection: -1\n",
                   "t.yaml:9:32: limits.max_requests_per_connection: expected an integer from 0 "
                   "to 4294967295, got \"-1\"");
}

/* limits.request_buffer_bytes: 0 (every body streams) to 16 MiB. */
Test(cfg_timeouts, request_buffer_bytes_is_a_size_up_to_16_mib)
{
    static const char yaml[] = BASE "limits: {request_buffer_bytes: 0}\n";
    struct xf_err err = {{0}};
    struct cfg *cfg = cfg_parse(yaml, strlen(yaml), "t.yaml", &err);

    cr_assert(ne(ptr, cfg, NULL), "%s", err.msg);
    cr_assert(eq(uint, cfg->limits.request_buffer_bytes, 0));
    cfg_free(cfg);
    expect_message(BASE "limits:\n  request_buffer_bytes: 16777217\n",
                   "t.yaml:9:25: limits.request_buffer_bytes: expected an integer from 0 to "
                   "16777216, got \"16777217\"");
    expect_message(BASE "limits:\n  request_buffer_bytes: 16k\n",
                   "t.yaml:9:25: limits.request_buffer_bytes: expected an integer from 0 to "
                   "16777216, got \"16k\"");
}

/* clusters.*.max_idle: auto (the default), or a count, 0 keeping none. */
Test(cfg_clusters, max_idle_is_auto_or_a_count)
{
    static const char yaml[] = LISTEN "clusters:\n"
                                      "  x: {nodes: [\"10.0.0.1:8000\"], max_idle: 0}\n"
                                      "  y: {nodes: [\"10.0.1.1:8000\"], max_idle: 64}\n";
    struct xf_err err = {{0}};
    struct cfg *cfg = cfg_parse(BASE, strlen(BASE), "t.yaml", &err);

    cr_assert(ne(ptr, cfg, NULL), "%s", err.msg);
    cr_assert(eq(uint, cfg->clusters[CFG_CLUSTER_X].max_idle, CFG_MAX_IDLE_AUTO));
    cfg_free(cfg);
    cfg = cfg_parse(yaml, strlen(yaml), "t.yaml", &err);
    cr_assert(ne(ptr, cfg, NULL), "%s", err.msg);
    cr_assert(eq(uint, cfg->clusters[CFG_CLUSTER_X].max_idle, 0));
    cr_assert(eq(uint, cfg->clusters[CFG_CLUSTER_Y].max_idle, 64));
    cfg_free(cfg);
    expect_error(LISTEN "clusters:\n"
                        "  x: {nodes: [\"10.0.0.1:8000\"], max_idle: many}\n"
                        "  y: {nodes: [\"10.0.1.1:8000\"]}\n",
                 "t.yaml:4:43: clusters.x.max_idle: ",
                 "expected auto or a number of connections from 0 to 1000000, got \"many\"");
}

/* ---- tunnels -------------------------------------------------------------------------------- */

Test(cfg_tunnels, reads_close_rate_and_follow_weight)
{
    static const char yaml[] = BASE "tunnels: {close_rate: 500, follow_weight: true}\n";
    struct xf_err err = {{0}};
    struct cfg *cfg = cfg_parse(yaml, strlen(yaml), "t.yaml", &err);

    cr_assert(not(eq(ptr, cfg, NULL)), "%s", err.msg);
    cr_assert(eq(uint, cfg->tunnels.close_rate, 500));
    cr_assert(cfg->tunnels.follow_weight);
    cfg_free(cfg);
}

Test(cfg_tunnels, close_rate_is_a_count_per_second_and_follow_weight_a_boolean)
{
    expect_error(BASE "tunnels:\n  close_rate: 0\n", "t.yaml:9:15: tunnels.close_rate: ",
                 "expected an integer from 1 to 100000, got \"0\"");
    expect_error(BASE "tunnels:\n  close_rate: 100001\n",
                 "t.yaml:9:15: tunnels.close_rate: ", "got \"100001\"");
    expect_error(BASE "tunnels:\n  close_rate: fast\n",
                 "t.yaml:9:15: tunnels.close_rate: ", "got \"fast\"");
    expect_error(BASE "tunnels:\n  follow_weight: sometimes\n",
                 "t.yaml:9:18: tunnels.follow_weight: ", "sometimes");
    expect_error(BASE "tunnels:\n  close_rates: 5\n", "t.yaml:9:3: tunnels: ", "close_rate");
}

/* ---- limits --------------------------------------------------------------------------------- */

/* Asserts that limits.<name>: <value> is refused with "expected <range>". */
static void
expect_limit_error(const char *name, const char *value, const char *range)
{
    char yaml[512], prefix[128], fragment[160];

    snprintf(yaml, sizeof(yaml), BASE "limits:\n  %s: %s\n", name, value);
    snprintf(prefix, sizeof(prefix), "t.yaml:9:%zu: limits.%s: ", strlen(name) + 5, name);
    snprintf(fragment, sizeof(fragment), "expected %s, got \"%s\"", range, value);
    expect_error(yaml, prefix, fragment);
}

Test(cfg_limits, keep_max_connections_from_1_to_a_million)
{
    expect_limit_error("max_connections", "0", "an integer from 1 to 1000000");
    expect_limit_error("max_connections", "1000001", "an integer from 1 to 1000000");
}

Test(cfg_limits, keep_max_request_line_bytes_from_256_to_1m)
{
    expect_limit_error("max_request_line_bytes", "255", "an integer from 256 to 1048576");
    expect_limit_error("max_request_line_bytes", "1048577", "an integer from 256 to 1048576");
}

Test(cfg_limits, keep_max_header_bytes_from_1024_to_1m)
{
    expect_limit_error("max_header_bytes", "1023", "an integer from 1024 to 1048576");
    expect_limit_error("max_header_bytes", "1048577", "an integer from 1024 to 1048576");
}

Test(cfg_limits, keep_max_headers_from_1_to_10000)
{
    expect_limit_error("max_headers", "0", "an integer from 1 to 10000");
    expect_limit_error("max_headers", "10001", "an integer from 1 to 10000");
}

Test(cfg_limits, keep_max_body_bytes_non_negative)
{
    expect_limit_error("max_body_bytes", "-1", "an integer of 0 or more");
    expect_limit_error("max_body_bytes", "1MB", "an integer of 0 or more");
    expect_limit_error("max_body_bytes", "18446744073709551616", "an integer of 0 or more");
}

Test(cfg_limits, keep_the_request_line_within_the_head)
{
    expect_message(BASE "limits:\n  max_request_line_bytes: 4096\n  max_header_bytes: 2048\n",
                   "t.yaml:9:27: limits.max_request_line_bytes: expected at most max_header_bytes "
                   "(2048), got 4096");
    expect_message(BASE "limits:\n  max_header_bytes: 4096\n",
                   "t.yaml:9:21: limits.max_header_bytes: expected at least "
                   "max_request_line_bytes (8192), got 4096");
}

/* ---- retries ------------------------------------------------------------------------------ */

Test(cfg_retries, keep_retries_from_0_to_10)
{
    expect_message(BASE "retries: 11\n",
                   "t.yaml:8:10: retries: expected an integer from 0 to 10, got \"11\"");
    expect_message(BASE "retries: -1\n",
                   "t.yaml:8:10: retries: expected an integer from 0 to 10, got \"-1\"");
    expect_message(BASE "retries: [2]\n",
                   "t.yaml:8:10: retries: expected an integer from 0 to 10, got a sequence");
}

/* ---- the rest ------------------------------------------------------------------------------- */

Test(cfg_workers, refuses_0_more_than_64_and_words_other_than_auto)
{
    expect_message(BASE "workers: 0\n",
                   "t.yaml:8:10: workers: expected an integer from 1 to 64, got \"0\"");
    expect_message(BASE "workers: 65\n",
                   "t.yaml:8:10: workers: expected an integer from 1 to 64, got \"65\"");
    expect_message(BASE "workers: all\n",
                   "t.yaml:8:10: workers: expected auto or a number from 1 to 64, got \"all\"");
    expect_message(BASE "workers: -2\n",
                   "t.yaml:8:10: workers: expected auto or a number from 1 to 64, got \"-2\"");
}

Test(cfg_log_level, refuses_an_unknown_level)
{
    expect_message(BASE "log_level: verbose\n",
                   "t.yaml:8:12: log_level: expected debug, info, warn or error, got \"verbose\"");
    expect_message(
        BASE "log_level: infoo\n",
        "t.yaml:8:12: log_level: expected debug, info, warn or error, got \"infoo\" (did "
        "you mean \"info\"?)");
}

Test(cfg_access_log, refuses_true_and_an_empty_path)
{
    expect_message(BASE "access_log: true\n",
                   "t.yaml:8:13: access_log: expected a path, \"-\" for stdout, or off, got "
                   "\"true\"");
    expect_message(BASE "access_log: \"\"\n",
                   "t.yaml:8:13: access_log: expected a path, \"-\" for stdout, or off, got \"\"");
    expect_message(BASE "access_log:\n",
                   "t.yaml:8:12: access_log: expected a path, \"-\" for stdout, or off, got "
                   "nothing");
}

Test(cfg_access_log, refuses_a_format_other_than_text_or_json_and_suggests_the_closest)
{
    expect_message(BASE "access_log_format: jsn\n",
                   "t.yaml:8:20: access_log_format: expected text or json, got \"jsn\" (did you "
                   "mean \"json\"?)");
    expect_message(BASE "access_log_format: JSON\n",
                   "t.yaml:8:20: access_log_format: expected text or json, got \"JSON\"");
    expect_error(BASE "access_log_format: [json]\n",
                 "t.yaml:8:20: access_log_format: ", "got a sequence");
}

/* Each value here is a slip an operator could make; the message shows both forms that work. */
Test(cfg_access_log, refuses_a_sample_outside_0_to_1_or_not_a_plain_decimal)
{
    static const char *const bad[] = {"0",  "0%", "0.0",  "1.5",    "101%", "-0.1", "abc",
                                      ".5", "1.", "1e-3", "0x1p-3", "1%%",  "\"\"", "1 %"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char yaml[256], want[512];

        snprintf(yaml, sizeof(yaml), BASE "access_log_sample: %s\n", bad[i]);
        snprintf(want, sizeof(want),
                 "t.yaml:8:20: access_log_sample: expected a share above 0 and at most 1, as a "
                 "fraction (0.01) or a percentage (1%%), got \"%s\"",
                 strcmp(bad[i], "\"\"") == 0 ? "" : bad[i]);
        expect_message(yaml, want);
    }
}

Test(cfg_admin, refuses_a_group_that_does_not_exist)
{
    expect_message(BASE "admin:\n  group: no-such-group-xf\n",
                   "t.yaml:9:10: admin.group: expected the name or the number of a group, got "
                   "\"no-such-group-xf\" (no such group)");
    expect_message(BASE "admin:\n  group: \"\"\n",
                   "t.yaml:9:10: admin.group: expected the name or the number of a group, got "
                   "\"\"");
}

Test(cfg_state_file, refuses_true_an_empty_path_a_directory_and_a_mapping)
{
    expect_message(BASE "state_file: true\n",
                   "t.yaml:8:13: state_file: expected a file path, or off, got \"true\"");
    expect_message(BASE "state_file: \"\"\n",
                   "t.yaml:8:13: state_file: expected a file path, or off, got \"\"");
    expect_message(BASE "state_file: /var/lib/crossfade/\n",
                   "t.yaml:8:13: state_file: expected a file path, or off, got "
                   "\"/var/lib/crossfade/\"");
    expect_error(BASE "state_file: {path: x}\n",
                 "t.yaml:8:13: state_file: ", "expected a file path, or off, got a mapping");
}

Test(cfg_state_file, refuses_a_path_over_1024_bytes)
{
    char yaml[2048], path[1100];

    memset(path, 'a', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    snprintf(yaml, sizeof(yaml), BASE "state_file: \"%s\"\n", path);
    expect_message(yaml,
                   "t.yaml:8:13: state_file: expected a path of at most 1024 bytes, got 1099");
}

Test(cfg_admin, keeps_the_socket_path_within_sun_path)
{
    char yaml[1024], path[200];

    memset(path, 'a', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    snprintf(yaml, sizeof(yaml), BASE "admin:\n  socket: \"%s\"\n", path);
    expect_error(yaml, "t.yaml:9:11: admin.socket: ",
                 "expected a socket path of 1 to 107 bytes, got \"/aaaa");
    expect_message(BASE "admin:\n  socket: \"\"\n",
                   "t.yaml:9:11: admin.socket: expected a socket path of 1 to 107 bytes, got \"\"");
}

Test(cfg_errors, leave_the_buffer_alone_when_it_is_null)
{
    static const char yaml[] = BASE "log_level: loud\n";

    cr_assert(eq(ptr, cfg_parse(yaml, strlen(yaml), "t.yaml", NULL), NULL));
}

/* ---- fleet ---- */

Test(cfg_fleet_errors, needs_the_endpoints)
{
    expect_message(BASE "fleet:\n  name: edge-1\n",
                   "t.yaml:9:3: fleet.etcd: missing: fleet needs the etcd endpoints, such "
                   "as etcd: [\"http://10.0.0.5:2379\"]");
    expect_message(BASE "fleet:\n  etcd: []\n",
                   "t.yaml:9:9: fleet.etcd: expected an etcd endpoint such as "
                   "http://10.0.0.5:2379, or a sequence of 1 to 16 of them, got an empty "
                   "sequence");
}

Test(cfg_fleet_errors, refuses_endpoints_it_cannot_talk_to)
{
    expect_message(BASE "fleet:\n  etcd: [\"https://10.0.0.5:2379\"]\n",
                   "t.yaml:9:10: fleet.etcd[0]: https is not supported yet: crossfade "
                   "talks to etcd's JSON gateway over plain http (docs/fleet.md), got "
                   "\"https://10.0.0.5:2379\"");
    expect_message(BASE "fleet:\n  etcd: [\"10.0.0.5:2379\"]\n",
                   "t.yaml:9:10: fleet.etcd[0]: expected http://host:port, got "
                   "\"10.0.0.5:2379\"");
    expect_message(BASE "fleet:\n  etcd: [\"http://10.0.0.5:70000\"]\n",
                   "t.yaml:9:10: fleet.etcd[0]: the port must be a number from 1 to 65535, "
                   "got \"http://10.0.0.5:70000\"");
    expect_message(BASE "fleet:\n  etcd: [\"http://10.0.0.5:2379/v3\"]\n",
                   "t.yaml:9:10: fleet.etcd[0]: the port must be a number from 1 to 65535, "
                   "with no path after it, got \"http://10.0.0.5:2379/v3\"");
    expect_message(BASE "fleet:\n  etcd: [\"http://user@10.0.0.5\"]\n",
                   "t.yaml:9:10: fleet.etcd[0]: the host may hold letters, digits, '.', "
                   "'-', '_' (no user, path or query), got \"http://user@10.0.0.5\"");
    expect_message(
        BASE "fleet:\n  etcd: [\"http://10.0.0.5\", \"http://10.0.0.5:2379\"]\n",
        "t.yaml:9:29: fleet.etcd[1]: expected each endpoint once, got \"http://10.0.0.5:2379\" "
        "again (as fleet.etcd[0])");
}

Test(cfg_fleet_errors, refuses_a_bad_name_prefix_or_lease)
{
    expect_message(BASE "fleet:\n  etcd: http://e:1\n  name: \"edge 1\"\n",
                   "t.yaml:10:9: fleet.name: expected an instance name of 1 to 63 "
                   "letters, digits, '.', '-' or '_', got \"edge 1\"");
    expect_message(BASE "fleet:\n  etcd: http://e:1\n  prefix: \"/a b/\"\n",
                   "t.yaml:10:11: fleet.prefix: expected a key prefix such as "
                   "/crossfade/kong-prod/, printable with no spaces, got \"/a b/\"");
    expect_message(BASE "fleet:\n  etcd: http://e:1\n  lease: 1s\n",
                   "t.yaml:10:10: fleet.lease: expected a duration from 2s to 10m, got "
                   "\"1s\"");
    expect_message(BASE "fleet:\n  etcd: http://e:1\n  local_fallback: maybe\n",
                   "t.yaml:10:19: fleet.local_fallback: expected true or false, got "
                   "\"maybe\"");
    expect_message(BASE "fleet:\n  etcd: http://e:1\n  epoch_header: Content-Length\n",
                   "t.yaml:10:17: fleet.epoch_header: expected a header name other than "
                   "Connection, Content-Length, Host, Keep-Alive, Proxy-Connection, TE, Trailer, "
                   "Transfer-Encoding or Upgrade, got \"Content-Length\"");
    expect_message(BASE "fleet:\n  etcd: http://e:1\n  epoch_header: \"X Epoch\"\n",
                   "t.yaml:10:17: fleet.epoch_header: expected a header name made of letters, "
                   "digits and !#$%&'*+-.^_`|~, got \"X Epoch\"");
}
