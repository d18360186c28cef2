/* tests/unit/test_cfg_monitor.c -- admin.http, guard and test_traffic: what the loader maps, its
 * defaults, and what it refuses (with FILE:LINE:COL and the key path). */
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "config/cfg.h"

#define BASE                                                                                       \
    "listen:\n"                                                                                    \
    "  - address: \"127.0.0.1:8000\"\n"                                                            \
    "clusters:\n"                                                                                  \
    "  x:\n"                                                                                       \
    "    nodes: [\"10.0.0.1:8000\"]\n"                                                             \
    "  y:\n"                                                                                       \
    "    nodes: [\"10.0.1.1:8000\"]\n"

static struct cfg *
parse(const char *yaml, struct xf_err *err)
{
    return cfg_parse(yaml, strlen(yaml), "t.yaml", err);
}

Test(cfg_monitor, every_guard_key_lands_in_its_field)
{
    static const char yaml[] = BASE "admin:\n  http: \"127.0.0.1:9900\"\n"
                                    "guard:\n"
                                    "  window: 45s\n"
                                    "  min_requests: 300\n"
                                    "  max_error_rate_delta: 2.5%\n"
                                    "  max_latency_ratio: 1.25\n"
                                    "  min_latency_delta: 5ms\n"
                                    "  confidence: 95%\n"
                                    "  action: step_down\n"
                                    "  step_down: 10\n"
                                    "test_traffic:\n"
                                    "  header: X-Crossfade-Test\n"
                                    "  sources: [\"10.9.0.0/24\", \"::1\"]\n";
    struct xf_err err = {{0}};
    struct cfg *cfg = parse(yaml, &err);

    cr_assert(ne(ptr, cfg, NULL), "%s", err.msg);
    cr_assert(ne(ptr, cfg->admin_http, NULL));
    cr_assert(eq(str, cfg->admin_http->text, "127.0.0.1:9900"));
    cr_assert(cfg->guard.configured);
    cr_assert(eq(uint, cfg->guard.window_s, 45));
    cr_assert(eq(uint, cfg->guard.min_requests, 300));
    cr_assert(eq(uint, cfg->guard.max_error_delta_bp, 250));
    cr_assert(eq(dbl, cfg->guard.max_latency_ratio, 1.25));
    cr_assert(eq(uint, cfg->guard.min_latency_delta_us, 5000));
    cr_assert(eq(dbl, cfg->guard.confidence, 0.95));
    cr_assert(eq(int, cfg->guard.action, CFG_GUARD_STEP_DOWN));
    cr_assert(eq(uint, cfg->guard.step_down_bp, 1000));
    cr_assert(eq(str, cfg->test_traffic.header, "X-Crossfade-Test"));
    cr_assert(eq(sz, cfg->test_traffic.n_sources, 2));
    cfg_free(cfg);
}

Test(cfg_monitor, an_empty_guard_has_the_documented_defaults_and_none_is_off)
{
    struct xf_err err = {{0}};
    struct cfg *cfg = parse(BASE "guard: {}\n", &err);

    cr_assert(ne(ptr, cfg, NULL), "%s", err.msg);
    cr_assert(cfg->guard.configured);
    cr_assert(eq(uint, cfg->guard.window_s, 30));
    cr_assert(eq(uint, cfg->guard.min_requests, 200));
    cr_assert(eq(uint, cfg->guard.max_error_delta_bp, 100));
    cr_assert(eq(dbl, cfg->guard.max_latency_ratio, 1.5));
    cr_assert(eq(uint, cfg->guard.min_latency_delta_us, 1000));
    cr_assert(eq(dbl, cfg->guard.confidence, 0.99));
    cr_assert(eq(int, cfg->guard.action, CFG_GUARD_ROLLBACK));
    cr_assert(eq(ptr, cfg->admin_http, NULL));
    cfg_free(cfg);
    cfg = parse(BASE, &err);
    cr_assert(ne(ptr, cfg, NULL), "%s", err.msg);
    cr_assert(not(cfg->guard.configured));
    cr_assert(eq(ptr, cfg->test_traffic.header, NULL));
    cfg_free(cfg);
}

static void
expect_error(const char *yaml, const char *message)
{
    struct xf_err err = {{0}};
    struct cfg *cfg = parse(yaml, &err);

    cr_assert(eq(ptr, cfg, NULL), "accepted:\n%s", yaml);
    cr_assert(eq(str, err.msg, (char *)message));
}

Test(cfg_monitor, bad_values_are_refused_by_line_column_and_key)
{
    expect_error(BASE "guard:\n  window: 2s\n",
                 "t.yaml:9:11: guard.window: expected whole seconds from 5s to 5m, got 2000ms");
    expect_error(BASE "guard:\n  action: explode\n",
                 "t.yaml:9:11: guard.action: expected rollback, pause or step_down, got "
                 "\"explode\"");
    expect_error(BASE "guard:\n  confidence: 100%\n",
                 "t.yaml:9:15: guard.confidence: expected a percentage from 50.00% to 99.99% with "
                 "at most two decimals, got \"100%\"");
    expect_error(BASE "guard:\n  max_latency_ratio: fast\n",
                 "t.yaml:9:22: guard.max_latency_ratio: expected a number from 1 to 1000, got "
                 "\"fast\"");
    expect_error(BASE "admin:\n  http: [\"127.0.0.1:9900\"]\n",
                 "t.yaml:9:9: admin.http: expected an address such as 10.0.0.1:8000, got a "
                 "sequence");
}
