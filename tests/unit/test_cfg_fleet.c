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
        "  lease: 5s\n"
        "  epoch_header: X-Crossfade-Epoch\n");

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
    cr_assert(eq(str, cfg->fleet.epoch_header, "X-Crossfade-Epoch"));
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
    cr_assert(eq(ptr, cfg->fleet.epoch_header, NULL), "no epoch header unless asked");
    cfg_free(cfg);
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

/* The epoch header is a response's, like split.expose: a reload turns it on or off. */
Test(cfg_fleet, a_reload_may_turn_the_epoch_header_on_or_off)
{
    struct cfg *a = test_cfg_fleet_parse(BASE "fleet:\n  etcd: http://e:1\n");
    struct cfg *b =
        test_cfg_fleet_parse(BASE "fleet:\n  etcd: http://e:1\n  epoch_header: X-Epoch\n");
    struct cfg *c = test_cfg_fleet_parse(BASE "fleet:\n  etcd: http://e:1\n  epoch_header: off\n");
    struct cfg_diff d;

    char text[256];

    cr_assert(eq(int, cfg_diff(a, b, &d), 0), "%s", d.refused);
    cfg_diff_text(&d, text, sizeof(text));
    cr_assert(not(eq(ptr, strstr(text, "fleet.epoch_header changed"), NULL)), "%s", text);
    cr_assert(eq(int, cfg_diff(b, c, &d), 0), "%s", d.refused);
    cr_assert(eq(ptr, c->fleet.epoch_header, NULL));
    cr_assert(eq(int, cfg_diff(a, c, &d), 0), "%s", d.refused);
    cfg_diff_text(&d, text, sizeof(text));
    cr_assert(eq(ptr, strstr(text, "epoch_header"), NULL), "off both times: %s", text);
    cfg_free(a);
    cfg_free(b);
    cfg_free(c);
}
