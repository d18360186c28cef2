/* tests/unit/test_bal_pins.c -- the pin table: adding, changing and removing pins in copies,
 * lookups, its bounds, and that a published table never changes. */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "balancer/bal.h"

/* The side of `key` in p, or -1 when it is not pinned. */
static int
side_of(const struct bal_pins *p, const char *key)
{
    enum cfg_cluster_id side;

    if (bal_pins_find(p, key, strlen(key), &side) == -1)
        return -1;
    return (int)side;
}

static void
pin(struct bal_pins *p, const char *key, enum cfg_cluster_id side, int want_old)
{
    struct xf_err err = {{0}};
    int old;

    cr_assert(eq(int, bal_pins_set(p, key, strlen(key), side, &old, &err), 0), "%s", err.msg);
    cr_assert(eq(int, old, want_old), "key %s", key);
}

Test(bal_pins, an_empty_or_missing_table_pins_nothing)
{
    struct bal_pins *p = bal_pins_new();

    cr_assert(ne(ptr, p, NULL));
    cr_assert(eq(int, side_of(p, "alice"), -1));
    cr_assert(eq(int, side_of(NULL, "alice"), -1));
    cr_assert(eq(sz, bal_pins_count(p), (size_t)0));
    cr_assert(eq(sz, bal_pins_count(NULL), (size_t)0));
    bal_pins_unref(p);
    bal_pins_unref(NULL);
}

Test(bal_pins, a_pinned_key_is_found_with_its_side_and_others_are_not)
{
    struct bal_pins *p = bal_pins_new();

    pin(p, "alice", CFG_CLUSTER_Y, -1);
    pin(p, "10.1.2.3", CFG_CLUSTER_X, -1);
    cr_assert(eq(int, side_of(p, "alice"), CFG_CLUSTER_Y));
    cr_assert(eq(int, side_of(p, "10.1.2.3"), CFG_CLUSTER_X));
    cr_assert(eq(int, side_of(p, "Alice"), -1), "keys are compared byte for byte");
    cr_assert(eq(int, side_of(p, "alic"), -1));
    cr_assert(eq(int, side_of(p, "alicee"), -1));
    cr_assert(eq(sz, bal_pins_count(p), (size_t)2));
    bal_pins_unref(p);
}

Test(bal_pins, pinning_a_key_again_changes_its_side_and_says_the_old_one)
{
    struct bal_pins *p = bal_pins_new();

    pin(p, "alice", CFG_CLUSTER_Y, -1);
    pin(p, "alice", CFG_CLUSTER_X, CFG_CLUSTER_Y);
    pin(p, "alice", CFG_CLUSTER_X, CFG_CLUSTER_X);
    cr_assert(eq(int, side_of(p, "alice"), CFG_CLUSTER_X));
    cr_assert(eq(sz, bal_pins_count(p), (size_t)1));
    bal_pins_unref(p);
}

Test(bal_pins, keys_may_hold_any_bytes_and_are_listed_in_the_order_they_came)
{
    static const char k1[] = {'a', '\0', 'b'}, k2[] = {'a', '\0', 'c'};
    struct bal_pins *p = bal_pins_new();
    enum cfg_cluster_id side;
    const char *key;
    size_t len;
    int old;

    cr_assert(eq(int, bal_pins_set(p, k1, 3, CFG_CLUSTER_Y, &old, NULL), 0));
    cr_assert(eq(int, bal_pins_set(p, k2, 3, CFG_CLUSTER_X, &old, NULL), 0));
    pin(p, "John Smith \xc3\xa9", CFG_CLUSTER_Y, -1);
    cr_assert(eq(int, bal_pins_find(p, k2, 3, &side), 0));
    cr_assert(eq(int, side, CFG_CLUSTER_X));
    cr_assert(eq(int, bal_pins_find(p, k1, 2, &side), -1));
    cr_assert(eq(int, bal_pins_get(p, 0, &key, &len), CFG_CLUSTER_Y));
    cr_assert(eq(sz, len, (size_t)3));
    cr_assert(eq(int, memcmp(key, k1, 3), 0));
    cr_assert(eq(int, bal_pins_get(p, 2, &key, &len), CFG_CLUSTER_Y));
    cr_assert(eq(int, memcmp(key, "John Smith \xc3\xa9", len), 0));
    bal_pins_unref(p);
}

Test(bal_pins, keys_of_0_or_over_1024_bytes_are_refused)
{
    struct bal_pins *p = bal_pins_new();
    char big[BAL_PIN_KEY_MAX + 1];
    struct xf_err err = {{0}};
    int old;

    memset(big, 'k', sizeof(big));
    cr_assert(eq(int, bal_pins_set(p, big, 0, CFG_CLUSTER_Y, &old, &err), -1));
    cr_assert(eq(int, bal_pins_set(p, big, sizeof(big), CFG_CLUSTER_Y, &old, &err), -1));
    cr_assert(eq(str, err.msg, "a pinned key is 1 to 1024 bytes, got 1025"));
    cr_assert(eq(int, bal_pins_set(p, big, BAL_PIN_KEY_MAX, CFG_CLUSTER_Y, &old, &err), 0));
    cr_assert(eq(sz, bal_pins_count(p), (size_t)1));
    bal_pins_unref(p);
}

Test(bal_pins, holds_10000_keys_finds_each_and_refuses_one_more)
{
    struct bal_pins *p = bal_pins_new();
    struct xf_err err = {{0}};
    char key[32];
    int old;

    for (int i = 0; i < BAL_PINS_MAX; i++) {
        snprintf(key, sizeof(key), "consumer-%d", i);
        pin(p, key, i % 3 == 0 ? CFG_CLUSTER_Y : CFG_CLUSTER_X, -1);
    }
    for (int i = 0; i < BAL_PINS_MAX; i++) {
        snprintf(key, sizeof(key), "consumer-%d", i);
        cr_assert(eq(int, side_of(p, key), i % 3 == 0 ? CFG_CLUSTER_Y : CFG_CLUSTER_X), "%s", key);
    }
    for (int i = BAL_PINS_MAX; i < BAL_PINS_MAX + 1000; i++) {
        snprintf(key, sizeof(key), "consumer-%d", i);
        cr_assert(eq(int, side_of(p, key), -1), "%s", key);
    }
    cr_assert(eq(int, bal_pins_set(p, "one-more", 8, CFG_CLUSTER_Y, &old, &err), -1));
    cr_assert(eq(str, err.msg, "the pin table is full (10000 pins); unpin some first"));
    /* A key already there may still change side. */
    pin(p, "consumer-1", CFG_CLUSTER_Y, CFG_CLUSTER_X);
    bal_pins_unref(p);
}

Test(bal_pins, a_copy_changes_without_touching_the_table_it_came_from)
{
    struct bal_pins *a = bal_pins_new(), *b, *c;

    pin(a, "alice", CFG_CLUSTER_Y, -1);
    pin(a, "bob", CFG_CLUSTER_X, -1);
    pin(a, "carol", CFG_CLUSTER_Y, -1);
    b = bal_pins_copy(a, NULL, 0);
    pin(b, "alice", CFG_CLUSTER_X, CFG_CLUSTER_Y);
    pin(b, "dave", CFG_CLUSTER_Y, -1);
    c = bal_pins_copy(b, "bob", 3); /* unpin bob */
    cr_assert(eq(int, side_of(a, "alice"), CFG_CLUSTER_Y));
    cr_assert(eq(int, side_of(a, "dave"), -1));
    cr_assert(eq(int, side_of(b, "alice"), CFG_CLUSTER_X));
    cr_assert(eq(int, side_of(b, "bob"), CFG_CLUSTER_X));
    cr_assert(eq(int, side_of(c, "bob"), -1));
    cr_assert(eq(int, side_of(c, "carol"), CFG_CLUSTER_Y));
    cr_assert(eq(int, side_of(c, "dave"), CFG_CLUSTER_Y));
    cr_assert(eq(sz, bal_pins_count(a), (size_t)3));
    cr_assert(eq(sz, bal_pins_count(b), (size_t)4));
    cr_assert(eq(sz, bal_pins_count(c), (size_t)3));
    bal_pins_unref(a);
    bal_pins_unref(b);
    bal_pins_unref(c);
}

Test(bal_pins, a_copy_of_nothing_is_empty_and_references_are_counted)
{
    struct bal_pins *p = bal_pins_copy(NULL, NULL, 0);

    cr_assert(ne(ptr, p, NULL));
    pin(p, "alice", CFG_CLUSTER_Y, -1);
    cr_assert(eq(ptr, bal_pins_ref(p), p));
    bal_pins_unref(p);
    cr_assert(eq(int, side_of(p, "alice"), CFG_CLUSTER_Y), "one reference is left");
    bal_pins_unref(p);
    cr_assert(eq(ptr, bal_pins_ref(NULL), NULL));
}

Test(bal_pins, a_snapshot_copy_shares_the_pins_and_frees_them_with_the_last)
{
    static const char yaml[] = "listen:\n  - address: \"127.0.0.1:8000\"\n"
                               "clusters:\n  x:\n    nodes: [\"10.0.0.1:8000\"]\n"
                               "  y:\n    nodes: [\"10.0.1.1:8000\"]\n";
    struct xf_err err = {{0}};
    struct cfg *cfg = cfg_parse(yaml, strlen(yaml), "t.yaml", &err);
    struct bal_snapshot *s1, *s2;

    cr_assert(ne(ptr, cfg, NULL), "%s", err.msg);
    s1 = bal_snapshot_new(cfg, NULL, 1, &err);
    cr_assert(eq(ptr, s1->pins, NULL));
    s1->pins = bal_pins_new();
    pin(s1->pins, "alice", CFG_CLUSTER_Y, -1);
    s1->freeze = true;
    s1->freeze_since = 1764470400;
    s2 = bal_snapshot_copy(s1, 2);
    cr_assert(eq(ptr, s2->pins, s1->pins));
    cr_assert(eq(u64, s2->version, (uint64_t)2));
    cr_assert(s2->freeze);
    cr_assert(eq(i64, s2->freeze_since, (int64_t)1764470400));
    bal_snapshot_unref(s1);
    cr_assert(eq(int, side_of(s2->pins, "alice"), CFG_CLUSTER_Y));
    bal_snapshot_unref(s2); /* the sanitizer run catches a leak or a double free here */
    cfg_free(cfg);
}
