/* tests/unit/test_cfg_fleet.c -- the fleet section: etcd endpoints, prefix, name, and its errors.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "config/cfg.h"

#define BASE                                                                                       \
    "listen:\n  - address: \"127.0.0.1:8000\"\n"                                                   \
    "clusters:\n"                                                                                  \
    "  x:\n"                                                                                       \
    "    nodes: [\"10.0.0.1:8000\"]\n"                                                             \
    "  y:\n"                                                                                       \
    "    nodes: [\"10.0.1.1:8000\"]\n" /* lines 1-7: fleet starts on line 8 */

static struct cfg *
test_cfg_fleet_parse(const char *yaml)
{
    struct xf_err err = {{0}};
    struct cfg *cfg = cfg_parse(yaml, strlen(yaml), "t.yaml", &err);

    cr_assert(not(eq(ptr, cfg, NULL)), "%s", err.msg);
    return cfg;
}

/* Asserts that `yaml` is rejected with exactly `message`. */
static void
test_cfg_fleet_rejects(const char *yaml, const char *message)
{
    struct xf_err err = {{0}};
    struct cfg *cfg = cfg_parse(yaml, strlen(yaml), "t.yaml", &err);
    bool rejected = cfg == NULL;

    cfg_free(cfg);
    cr_assert(rejected, "accepted:\n%s", yaml);
    cr_assert(eq(str, err.msg, (char *)message));
}

Test(cfg_fleet, is_off_without_the_section)
{
    struct cfg *cfg = test_cfg_fleet_parse(BASE);

    cr_assert(not(cfg->fleet.configured));
    cr_assert(eq(sz, cfg->fleet.n_etcd, 0));
    cfg_free(cfg);
}

Test(cfg_fleet, reads_every_setting_in_its_normal_form)
{
    struct cfg *cfg = test_cfg_fleet_parse(
        BASE
        "fleet:\n"
        "  etcd: [\"http://10.0.0.5:2379\", \"http://etcd-2.example\", \"http://[::1]:23790/\"]\n"
        "  prefix: /crossfade/kong-prod\n"
        "  name: edge-1\n"
        "  local_fallback: true\n"
        "  timeout: 500ms\n"
        "  lease: 5s\n");

    cr_assert(cfg->fleet.configured);
    cr_assert(eq(sz, cfg->fleet.n_etcd, 3));
    cr_assert(eq(str, cfg->fleet.etcd[0], "http://10.0.0.5:2379"));
    cr_assert(eq(str, cfg->fleet.etcd[1], "http://etcd-2.example:2379"), "the default port");
    cr_assert(eq(str, cfg->fleet.etcd[2], "http://[::1]:23790"));
    cr_assert(eq(str, cfg->fleet.prefix, "/crossfade/kong-prod/"), "a '/' ends the prefix");
    cr_assert(eq(str, cfg->fleet.name, "edge-1"));
    cr_assert(cfg->fleet.local_fallback);
    cr_assert(eq(uint, cfg->fleet.timeout_ms, 500));
    cr_assert(eq(uint, cfg->fleet.lease_ms, 5000));
    cfg_free(cfg);
}

Test(cfg_fleet, defaults_to_the_host_name_and_the_crossfade_prefix)
{
    struct cfg *cfg = test_cfg_fleet_parse(BASE "fleet:\n  etcd: http://127.0.0.1:2379\n");
    char host[256];

    cr_assert(eq(int, gethostname(host, sizeof(host)), 0));
    cr_assert(eq(sz, cfg->fleet.n_etcd, 1));
    cr_assert(eq(str, cfg->fleet.prefix, "/crossfade/"));
    cr_assert(eq(str, cfg->fleet.name, host));
    cr_assert(not(cfg->fleet.local_fallback));
    cr_assert(eq(uint, cfg->fleet.timeout_ms, 2000));
    cr_assert(eq(uint, cfg->fleet.lease_ms, 10000));
    cfg_free(cfg);
}

Test(cfg_fleet, needs_the_endpoints)
{
    test_cfg_fleet_rejects(BASE "fleet:\n  name: edge-1\n",
                           "t.yaml:9:3: fleet.etcd: missing: fleet needs the etcd endpoints, such "
                           "as etcd: [\"http://10.0.0.5:2379\"]");
    test_cfg_fleet_rejects(BASE "fleet:\n  etcd: []\n",
                           "t.yaml:9:9: fleet.etcd: expected an etcd endpoint such as "
                           "http://10.0.0.5:2379, or a sequence of 1 to 16 of them, got an empty "
                           "sequence");
}

Test(cfg_fleet, refuses_endpoints_it_cannot_talk_to)
{
    test_cfg_fleet_rejects(BASE "fleet:\n  etcd: [\"https://10.0.0.5:2379\"]\n",
                           "t.yaml:9:10: fleet.etcd[0]: https is not supported yet: crossfade "
                           "talks to etcd's JSON gateway over plain http (docs/fleet.md), got "
                           "\"https://10.0.0.5:2379\"");
    test_cfg_fleet_rejects(BASE "fleet:\n  etcd: [\"10.0.0.5:2379\"]\n",
                           "t.yaml:9:10: fleet.etcd[0]: expected http://host:port, got "
                           "\"10.0.0.5:2379\"");
    test_cfg_fleet_rejects(BASE "fleet:\n  etcd: [\"http://10.0.0.5:70000\"]\n",
                           "t.yaml:9:10: fleet.etcd[0]: the port must be a number from 1 to 65535, "
                           "got \"http://10.0.0.5:70000\"");
    test_cfg_fleet_rejects(BASE "fleet:\n  etcd: [\"http://10.0.0.5:2379/v3\"]\n",
                           "t.yaml:9:10: fleet.etcd[0]: the port must be a number from 1 to 65535, "
                           "with no path after it, got \"http://10.0.0.5:2379/v3\"");
    test_cfg_fleet_rejects(BASE "fleet:\n  etcd: [\"http://user@10.0.0.5\"]\n",
                           "t.yaml:9:10: fleet.etcd[0]: the host may hold letters, digits, '.', "
                           "'-', '_' (no user, path or query), got \"http://user@10.0.0.5\"");
    test_cfg_fleet_rejects(
        BASE "fleet:\n  etcd: [\"http://10.0.0.5\", \"http://10.0.0.5:2379\"]\n",
        "t.yaml:9:29: fleet.etcd[1]: expected each endpoint once, got \"http://10.0.0.5:2379\" "
        "again (as fleet.etcd[0])");
}

Test(cfg_fleet, refuses_a_bad_name_prefix_or_lease)
{
    test_cfg_fleet_rejects(BASE "fleet:\n  etcd: http://e:1\n  name: \"edge 1\"\n",
                           "t.yaml:10:9: fleet.name: expected an instance name of 1 to 63 "
                           "letters, digits, '.', '-' or '_', got \"edge 1\"");
    test_cfg_fleet_rejects(BASE "fleet:\n  etcd: http://e:1\n  prefix: \"/a b/\"\n",
                           "t.yaml:10:11: fleet.prefix: expected a key prefix such as "
                           "/crossfade/kong-prod/, printable with no spaces, got \"/a b/\"");
    test_cfg_fleet_rejects(BASE "fleet:\n  etcd: http://e:1\n  lease: 1s\n",
                           "t.yaml:10:10: fleet.lease: expected a duration from 2s to 10m, got "
                           "\"1s\"");
    test_cfg_fleet_rejects(BASE "fleet:\n  etcd: http://e:1\n  local_fallback: maybe\n",
                           "t.yaml:10:19: fleet.local_fallback: expected true or false, got "
                           "\"maybe\"");
}

/* The fleet connection is made at start-up: a reload that changes it is refused, and says so. */
Test(cfg_fleet, a_reload_that_changes_it_is_refused)
{
    struct cfg *a = test_cfg_fleet_parse(BASE "fleet:\n  etcd: http://e:1\n  name: edge-1\n");
    struct cfg *b = test_cfg_fleet_parse(BASE "fleet:\n  etcd: http://e:1\n  name: edge-2\n");
    struct cfg *c = test_cfg_fleet_parse(BASE "fleet:\n  etcd: http://e:1\n  name: edge-1\n");
    struct cfg_diff d;

    cr_assert(eq(int, cfg_diff(a, b, &d), -1));
    cr_assert(not(eq(ptr, strstr(d.refused, "fleet changed"), NULL)), "%s", d.refused);
    cr_assert(eq(int, cfg_diff(a, c, &d), 0), "%s", d.refused);
    cfg_free(a);
    cfg_free(b);
    cfg_free(c);
}
