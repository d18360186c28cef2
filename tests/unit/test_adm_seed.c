/* tests/unit/test_adm_seed.c -- fleet mode's seed: the state the fleet shares carries the hash of
 * the seed in force, and an instance applies the fleet's over its own split.seed; standalone,
 * split.seed rules. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "admin/adm.h"
#include "tests/unit/adm_fixture.h"

static const char fx_yaml_fleet[] = "listen:\n"
                                    "  - address: \"127.0.0.1:8000\"\n"
                                    "admin:\n"
                                    "  socket: \"/tmp/xf-unit/admin.sock\"\n"
                                    "split:\n"
                                    "  weight: 25\n"
                                    "  key: [\"header:X-Consumer-ID\"]\n"
                                    "  seed: \"unit\"\n"
                                    "fleet:\n"
                                    "  etcd: [\"http://127.0.0.1:1\"]\n"
                                    "  name: \"edge-1\"\n"
                                    "clusters:\n"
                                    "  x:\n"
                                    "    nodes: [\"10.0.0.1:8000\", \"10.0.0.2:8000\"]\n"
                                    "  y:\n"
                                    "    nodes: [\"10.0.1.1:8000\"]\n";

static void
fx_setup_fleet(void)
{
    fx_setup_yaml(fx_yaml_fleet);
}

static uint64_t
fx_seed_in_force(void)
{
    struct bal_snapshot *s = bal_router_acquire(&fx_router);
    uint64_t h = s->seed_hash;

    bal_snapshot_unref(s);
    return h;
}

/* The fleet's text of this instance's state with its seed line set to `seed` (a hash). */
static char *
fleet_text_with_seed(uint64_t seed)
{
    size_t len;
    char *text = adm_state_text_for(&fx_st, ADM_TEXT_FLEET, &len), *line, *out;
    char want[40];

    cr_assert(ne(ptr, text, NULL));
    line = strstr(text, "\nseed ");
    cr_assert(ne(ptr, line, NULL), "no seed line in %s", text);
    snprintf(want, sizeof(want), "\nseed %016" PRIx64 "\n", seed);
    out = malloc(len + 1);
    cr_assert(ne(ptr, out, NULL));
    memcpy(out, text, (size_t)(line - text));
    strcpy(out + (line - text), want);
    strcat(out, line + strlen(want));
    free(text);
    return out;
}

TestSuite(adm_seed);

Test(adm_seed, the_fleets_text_carries_the_hash_of_the_seed_in_force, .init = fx_setup_fleet,
     .fini = fx_teardown)
{
    size_t len;
    char *text = adm_state_text_for(&fx_st, ADM_TEXT_FLEET, &len), want[40];

    snprintf(want, sizeof(want), "\nseed %016" PRIx64 "\n", bal_seed_hash("unit"));
    cr_assert(ne(ptr, strstr(text, want), NULL), "%s", text);
    cr_assert(eq(ptr, strstr(text, "unit"), NULL), "the seed's text itself is not shared: %s",
              text);
    free(text);
    text = adm_state_text(&fx_st, &len);
    cr_assert(ne(ptr, strstr(text, want), NULL),
              "the state file keeps it for a start without etcd");
    free(text);
}

Test(adm_seed, standalone_the_state_has_no_seed_and_split_seed_rules, .init = fx_setup,
     .fini = fx_teardown)
{
    size_t len;
    char *text = adm_state_text_for(&fx_st, ADM_TEXT_FLEET, &len);
    static const char other[] = "version 2\n"
                                "layout x=10.0.0.1:8000,10.0.0.2:8000 y=10.0.1.1:8000\n"
                                "weight 30.00\n"
                                "seed 0123456789abcdef\n";

    cr_assert(eq(ptr, strstr(text, "\nseed "), NULL), "%s", text);
    free(text);
    cr_assert(eq(int, adm_state_apply_text(&fx_st, other, strlen(other), "test"), 0));
    cr_assert(eq(uint, fx_weight(), 3000u));
    cr_assert(eq(u64, fx_seed_in_force(), bal_seed_hash("unit")));
}

Test(adm_seed, an_instance_routes_by_the_fleets_seed_over_its_own, .init = fx_setup_fleet,
     .fini = fx_teardown)
{
    uint64_t fleet = bal_seed_hash("the-fleets-seed");
    char *text = fleet_text_with_seed(fleet), *mine;
    struct bal_snapshot *s;
    struct bal_choice ch;
    unsigned moved = 0;
    size_t len;

    cr_assert(eq(int, adm_state_apply_text(&fx_st, text, strlen(text), "fleet: edge-2"), 0));
    cr_assert(eq(u64, fx_seed_in_force(), fleet));
    /* Clients are placed by the fleet's seed: the same buckets as an instance configured with it.
     */
    s = bal_router_acquire(&fx_router);
    for (int i = 0; i < 200; i++) {
        char key[16];
        int n = snprintf(key, sizeof(key), "c%d", i);

        bal_which(s, key, (size_t)n, &ch);
        cr_assert(eq(u32, ch.bucket, bal_bucket(key, (size_t)n, fleet)));
        moved += ch.bucket != bal_bucket(key, (size_t)n, bal_seed_hash("unit"));
    }
    bal_snapshot_unref(s);
    cr_assert(gt(uint, moved, 150u), "the seed changed the buckets");
    cr_assert(not(eq(ptr, strstr(run("show events", NULL), "seed"), NULL)), "%s", fx_reply);
    /* What this instance writes next carries the fleet's seed, not its own. */
    mine = adm_state_text_for(&fx_st, ADM_TEXT_FLEET, &len);
    cr_assert(eq(str, mine, text));
    free(mine);
    free(text);
}
