/* tests/integration/test_split.c -- the x/y split through bin/crossfade: share, stickiness,
 * overrides. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <stdio.h>
#include <string.h>

#include <xxhash.h>

#include "balancer/bal.h"
#include "tests/integration/harness.h"

TestSuite(split, .init = h_setup, .fini = h_teardown);

#define SEED "it-seed"
#define SPLIT_KEYS                                                                                 \
    "  seed: \"" SEED "\"\n"                                                                       \
    "  key: [\"header:X-Key\", \"cookie:sid\", \"ip\"]\n"                                          \
    "  expose: X-Crossfade-Route\n"

/* Sends GET / with the given extra header lines; returns the answering node's name. */
static const char *
side_of(struct h_conn *c, const char *extra, char *route, size_t route_len)
{
    struct h_msg m;
    const char *name, *r;

    cr_assert(eq(int, h_sendf(c, "GET / HTTP/1.1\r\nHost: " H_HOST "\r\n%s\r\n", extra), 0));
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200), "status %d for %s", m.status, extra);
    name = h_header(&m, "X-Upstream");
    cr_assert(ne(ptr, (void *)name, NULL));
    r = h_header(&m, "X-Crossfade-Route");
    cr_assert(ne(ptr, (void *)r, NULL), "no X-Crossfade-Route header");
    if (route != NULL)
        snprintf(route, route_len, "%s", r);
    return name;
}

static uint64_t
seed_hash(void)
{
    return XXH3_64bits(SEED, strlen(SEED));
}

Test(split, each_of_10000_keys_goes_to_the_side_its_bucket_names, .timeout = 120)
{
    struct h_upstream *x = h_upstream_start("x1", NULL);
    struct h_upstream *y = h_upstream_start("y1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{x->port}},
                                                             .y = {{y->port}},
                                                             .weight = "30",
                                                             .split_extra = SPLIT_KEYS,
                                                             .log_level = "warn"});
    struct h_conn *c = h_connect(p->port);
    unsigned on_y = 0, wrong = 0;
    const int n = 10000;

    for (int i = 0; i < n; i++) {
        char key[32], hdr[64];
        int len = snprintf(key, sizeof(key), "client-%d", i);
        bool want_y = bal_bucket(key, (size_t)len, seed_hash()) < 3000;
        const char *name;

        snprintf(hdr, sizeof(hdr), "X-Key: %s\r\n", key);
        name = side_of(c, hdr, NULL, 0);
        on_y += strcmp(name, "y1") == 0;
        wrong += (strcmp(name, "y1") == 0) != want_y;
    }
    cr_assert(eq(uint, wrong, 0), "%u of %d keys went to the other side than their bucket says",
              wrong, n);
    /* 30 % of 10,000 distinct keys, within 1.5 percentage points. */
    cr_assert(ge(uint, on_y, 2850u), "only %u of %d keys on y at weight 30", on_y, n);
    cr_assert(le(uint, on_y, 3150u), "%u of %d keys on y at weight 30", on_y, n);
    h_proxy_finish(p);
}

Test(split, a_client_stays_on_its_side_and_node_across_connections, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_upstream *x2 = h_upstream_start("x2", NULL);
    struct h_upstream *y1 = h_upstream_start("y1", NULL);
    struct h_upstream *y2 = h_upstream_start("y2", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{x1->port}, {x2->port}},
                                                             .y = {{y1->port}, {y2->port}},
                                                             .weight = "50",
                                                             .split_extra = SPLIT_KEYS});

    for (int k = 0; k < 20; k++) {
        char hdr[64], first[128] = "", route[128];
        snprintf(hdr, sizeof(hdr), "X-Key: sticky-%d\r\n", k);
        for (int i = 0; i < 5; i++) {
            struct h_conn *c = h_connect(p->port);
            side_of(c, hdr, route, sizeof(route));
            if (i == 0)
                snprintf(first, sizeof(first), "%s", route);
            cr_assert(eq(str, route, first), "key %d moved from %s to %s on connection %d", k,
                      first, route, i);
            h_close(c);
        }
    }
    h_proxy_finish(p);
}

Test(split, the_cookie_is_the_key_when_the_header_is_missing, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x = h_upstream_start("x1", NULL);
    struct h_upstream *y = h_upstream_start("y1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{x->port}}, .y = {{y->port}}, .weight = "50", .split_extra = SPLIT_KEYS});
    struct h_conn *c = h_connect(p->port);

    for (int i = 0; i < 200; i++) {
        char key[32], hdr[96];
        int len = snprintf(key, sizeof(key), "s%d", i);
        bool want_y = bal_bucket(key, (size_t)len, seed_hash()) < 5000;

        snprintf(hdr, sizeof(hdr), "Cookie: theme=dark; sid=%s; lang=en\r\n", key);
        cr_assert(eq(int, strcmp(side_of(c, hdr, NULL, 0), "y1") == 0, want_y),
                  "cookie sid=%s went to the wrong side", key);
    }
    h_proxy_finish(p);
}

Test(split, the_route_header_names_the_cluster_and_the_node, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x = h_upstream_start("x1", NULL);
    struct h_upstream *y = h_upstream_start("y1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{x->port}}, .y = {{y->port}}, .weight = "100", .split_extra = SPLIT_KEYS});
    struct h_conn *c = h_connect(p->port);
    char route[128];

    cr_assert(eq(str, (char *)side_of(c, "X-Key: k\r\n", route, sizeof(route)), "y1"));
    cr_assert(eq(str, route, h_fmt("y 127.0.0.1:%d", y->port)));
    h_proxy_finish(p);
}

Test(split, the_override_header_sends_a_tester_to_y_at_weight_zero, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x = h_upstream_start("x1", NULL);
    struct h_upstream *y = h_upstream_start("y1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{x->port}}, .y = {{y->port}}, .weight = "0", .split_extra = SPLIT_KEYS});
    struct h_conn *c = h_connect(p->port);

    cr_assert(eq(str, (char *)side_of(c, "X-Key: t\r\n", NULL, 0), "x1"));
    cr_assert(eq(str, (char *)side_of(c, "X-Key: t\r\nX-Crossfade-Target: y\r\n", NULL, 0), "y1"));
    cr_assert(eq(str, (char *)side_of(c, "X-Key: t\r\nX-Crossfade-Target: Y \r\n", NULL, 0), "y1"));
    /* An invalid value is ignored: normal routing. */
    cr_assert(eq(str, (char *)side_of(c, "X-Key: t\r\nX-Crossfade-Target: z\r\n", NULL, 0), "x1"));
    h_proxy_finish(p);
}

Test(split, overrides_from_outside_override_from_are_ignored, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x = h_upstream_start("x1", NULL);
    struct h_upstream *y = h_upstream_start("y1", NULL);
    struct h_proxy *p = h_proxy_start(
        &(struct h_proxy_opts){.x = {{x->port}},
                               .y = {{y->port}},
                               .weight = "0",
                               .split_extra = SPLIT_KEYS "  override_from: [\"10.0.0.0/8\"]\n"});
    struct h_conn *c = h_connect(p->port);

    cr_assert(eq(str, (char *)side_of(c, "X-Crossfade-Target: y\r\n", NULL, 0), "x1"),
              "an override from 127.0.0.1 was honoured though only 10.0.0.0/8 may override");
    h_proxy_finish(p);
}

Test(split, by_default_only_this_machine_may_override_and_any_is_warned_about,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x = h_upstream_start("x1", NULL);
    struct h_upstream *y = h_upstream_start("y1", NULL);
    /* 127.0.0.1 is a trusted proxy: X-Forwarded-For then names a client from elsewhere. */
    struct h_proxy *p = h_proxy_start(
        &(struct h_proxy_opts){.x = {{x->port}},
                               .y = {{y->port}},
                               .weight = "0",
                               .split_extra = SPLIT_KEYS "  trusted_proxies: [\"127.0.0.1\"]\n"});
    struct h_conn *c = h_connect(p->port);
    char *log;

    cr_assert(eq(str, (char *)side_of(c, "X-Crossfade-Target: y\r\n", NULL, 0), "y1"),
              "an override from this machine was ignored");
    cr_assert(
        eq(str,
           (char *)side_of(c, "X-Forwarded-For: 203.0.113.9\r\nX-Crossfade-Target: y\r\n", NULL, 0),
           "x1"),
        "an override from the public (203.0.113.9) was honoured by default");
    h_close(c);
    h_proxy_finish(p);
    p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{x->port}},
        .y = {{y->port}},
        .weight = "0",
        .split_extra = SPLIT_KEYS "  trusted_proxies: [\"127.0.0.1\"]\n  override_from: any\n"});
    c = h_connect(p->port);
    cr_assert(
        eq(str,
           (char *)side_of(c, "X-Forwarded-For: 203.0.113.9\r\nX-Crossfade-Target: y\r\n", NULL, 0),
           "y1"));
    log = h_read_file(p->proc->log_path, NULL);
    cr_assert(ne(ptr,
                 strstr(log, "WARN main: event=override_from_any note=\"every client can "
                             "choose its side with X-Crossfade-Target"),
                 NULL),
              "%s", log);
    h_proxy_finish(p);
}

Test(split, overrides_can_be_switched_off, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x = h_upstream_start("x1", NULL);
    struct h_upstream *y = h_upstream_start("y1", NULL);
    struct h_proxy *p =
        h_proxy_start(&(struct h_proxy_opts){.x = {{x->port}},
                                             .y = {{y->port}},
                                             .weight = "0",
                                             .split_extra = SPLIT_KEYS "  override_header: off\n"});
    struct h_conn *c = h_connect(p->port);

    cr_assert(eq(str, (char *)side_of(c, "X-Crossfade-Target: y\r\n", NULL, 0), "x1"));
    h_proxy_finish(p);
}

Test(split, weight_100_sends_every_key_to_y, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x = h_upstream_start("x1", NULL);
    struct h_upstream *y = h_upstream_start("y1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{x->port}}, .y = {{y->port}}, .weight = "100", .split_extra = SPLIT_KEYS});
    struct h_conn *c = h_connect(p->port);

    for (int i = 0; i < 300; i++)
        cr_assert(eq(str, (char *)side_of(c, h_fmt("X-Key: all-%d\r\n", i), NULL, 0), "y1"));
    h_proxy_finish(p);
}
