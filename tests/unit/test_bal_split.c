/* tests/unit/test_bal_split.c -- the x/y split: share of keys by weight, monotone ramps, the same
 * decisions in another process, the test vectors of docs/splitting.md, and the tester overrides. */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "balancer/bal.h"

#define MAX_NODES 16
#define MAX_KEYS  8
#define MAX_NETS  8

/* A config built by hand (nothing in it is owned: the struct holds every string and array). */
struct fx {
    struct cfg cfg;
    struct cfg_node nodes[CFG_CLUSTER_COUNT][MAX_NODES];
    struct cfg_split_key keys[MAX_KEYS];
    char names[MAX_KEYS][64];
    struct cfg_cidr trusted[MAX_NETS], from[MAX_NETS];
    char seed[64], override_header[64], override_cookie[64];
};

static struct fx *
fx_new(const char *seed, unsigned weight_bp)
{
    struct fx *f = calloc(1, sizeof(*f));

    cr_assert(ne(ptr, f, NULL));
    snprintf(f->seed, sizeof(f->seed), "%s", seed);
    f->cfg.split.seed = f->seed;
    f->cfg.split.weight_bp = weight_bp;
    f->cfg.split.keys = f->keys;
    f->cfg.split.trusted_proxies = f->trusted;
    f->cfg.split.override_from = f->from;
    f->cfg.split.override_any = true; /* a test that lists networks in `from` turns it off */
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++)
        f->cfg.clusters[c].nodes = f->nodes[c];
    return f;
}

static void
fx_node(struct fx *f, enum cfg_cluster_id c, const char *addr, unsigned weight)
{
    size_t i = f->cfg.clusters[c].n_nodes++;

    cr_assert(lt(sz, i, (size_t)MAX_NODES));
    snprintf(f->nodes[c][i].addr.text, sizeof(f->nodes[c][i].addr.text), "%s", addr);
    f->nodes[c][i].weight = weight;
}

static void
fx_key(struct fx *f, enum cfg_key_kind kind, const char *name)
{
    size_t i = f->cfg.split.n_keys++;

    cr_assert(lt(sz, i, (size_t)MAX_KEYS));
    f->keys[i].kind = kind;
    if (name != NULL) {
        snprintf(f->names[i], sizeof(f->names[i]), "%s", name);
        f->keys[i].name = f->names[i];
    }
}

static void
fx_net(struct cfg_cidr *nets, size_t *n, const char *text)
{
    struct xf_err err = {{0}};

    cr_assert(lt(sz, *n, (size_t)MAX_NETS));
    cr_assert(eq(int, cfg_cidr_parse(text, &nets[(*n)++], &err), 0), "%s: %s", text, err.msg);
}

/* Two nodes in x and y each unless the test added its own; keyed by ip unless it chose keys. */
static struct bal_snapshot *
fx_snap(struct fx *f)
{
    struct xf_err err = {{0}};
    struct bal_snapshot *s;

    if (f->cfg.split.n_keys == 0)
        fx_key(f, CFG_KEY_IP, NULL);
    if (f->cfg.clusters[CFG_CLUSTER_X].n_nodes == 0) {
        fx_node(f, CFG_CLUSTER_X, "10.0.1.1:8080", 1);
        fx_node(f, CFG_CLUSTER_X, "10.0.1.2:8080", 1);
    }
    if (f->cfg.clusters[CFG_CLUSTER_Y].n_nodes == 0) {
        fx_node(f, CFG_CLUSTER_Y, "10.0.2.1:8080", 1);
        fx_node(f, CFG_CLUSTER_Y, "10.0.2.2:8080", 1);
    }
    s = bal_snapshot_new(&f->cfg, NULL, 1, &err);
    cr_assert(ne(ptr, s, NULL), "%s", err.msg);
    return s;
}

/* A request whose only header is "X-Client: client-<i>" (the key of most tests), from 192.0.2.1. */
struct keyreq {
    char val[64];
    struct xf_hdr h;
    struct bal_request req;
};

static void
keyreq_set(struct keyreq *k, unsigned i)
{
    int n = snprintf(k->val, sizeof(k->val), "client-%u", i);

    k->h = (struct xf_hdr){
        .name = "X-Client", .name_len = 8, .value = k->val, .value_len = (uint32_t)n};
    k->req = (struct bal_request){.hdrs = &k->h, .n_hdrs = 1, .target = "/", .target_len = 1};
    k->req.peer.family = AF_INET;
    inet_pton(AF_INET, "192.0.2.1", k->req.peer.bytes);
}

/* A request from `peer` with "Name: value" lines (kept in a static buffer). */
static struct bal_request *
req_of(const char *peer, const char *headers)
{
    static char text[4096];
    static struct xf_hdr h[16];
    static struct bal_request req;
    char *p = text;

    memset(&req, 0, sizeof(req));
    req.hdrs = h;
    req.target = "/";
    req.target_len = 1;
    if (inet_pton(AF_INET, peer, req.peer.bytes) == 1)
        req.peer.family = AF_INET;
    else if (inet_pton(AF_INET6, peer, req.peer.bytes) == 1)
        req.peer.family = AF_INET6;
    snprintf(text, sizeof(text), "%s", headers);
    while (*p != '\0') {
        char *nl = strchr(p, '\n'), *colon = strchr(p, ':');
        char *end = nl != NULL ? nl : p + strlen(p);

        h[req.n_hdrs] = (struct xf_hdr){.name = p,
                                        .name_len = (uint32_t)(colon - p),
                                        .value = colon + 1,
                                        .value_len = (uint32_t)(end - colon - 1)};
        req.n_hdrs++;
        p = nl != NULL ? nl + 1 : end;
    }
    return &req;
}

#define N_KEYS 100000u

/* --- share --- */

Test(bal_split, the_share_of_distinct_keys_on_y_matches_the_weight_within_0_3_points)
{
    static const unsigned weights[] = {0, 1, 100, 1000, 3333, 5000, 9999, 10000};
    struct fx *f = fx_new("crossfade", 0);
    struct bal_snapshot *base;
    struct bal_state st = {0};
    struct keyreq k;

    fx_key(f, CFG_KEY_HEADER, "x-client");
    base = fx_snap(f);
    for (size_t w = 0; w < sizeof(weights) / sizeof(weights[0]); w++) {
        struct bal_snapshot *s = bal_snapshot_with_weight(base, weights[w], 2 + w);
        unsigned on_y = 0;
        double share;

        for (unsigned i = 0; i < N_KEYS; i++) {
            struct bal_choice ch;

            keyreq_set(&k, i);
            cr_assert(eq(int, bal_pick(s, &k.req, &st, &ch), 0));
            cr_assert(eq(int, ch.key_index, 0));
            cr_assert(eq(int, (int)ch.reason, (int)BAL_REASON_WEIGHT));
            cr_assert(eq(int, (int)ch.cluster, ch.bucket < weights[w] ? 1 : 0));
            cr_assert(eq(int, (int)ch.node->cluster, (int)ch.cluster));
            on_y += ch.cluster == CFG_CLUSTER_Y;
        }
        share = 100.0 * on_y / N_KEYS;
        cr_assert(le(dbl, fabs(share - weights[w] / 100.0), 0.3),
                  "weight %.2f %%: %.3f %% of the keys on y", weights[w] / 100.0, share);
        if (weights[w] == 0)
            cr_assert(eq(uint, on_y, 0u), "weight 0 sent %u keys to y", on_y);
        if (weights[w] == BAL_BUCKETS)
            cr_assert(eq(uint, on_y, N_KEYS), "weight 100 left %u keys on x", N_KEYS - on_y);
        bal_snapshot_unref(s);
    }
    bal_snapshot_unref(base);
    free(f);
}

Test(bal_split, a_random_key_also_respects_weights_0_and_100)
{
    struct fx *f = fx_new("crossfade", 0);
    struct bal_snapshot *s0, *s100;
    struct bal_state st = {.rng = 12345};
    struct keyreq k;

    fx_key(f, CFG_KEY_RANDOM, NULL);
    s0 = fx_snap(f);
    s100 = bal_snapshot_with_weight(s0, BAL_BUCKETS, 2);
    keyreq_set(&k, 0);
    for (unsigned i = 0; i < 10000; i++) {
        struct bal_choice a, b;

        cr_assert(eq(int, bal_pick(s0, &k.req, &st, &a), 0));
        cr_assert(eq(int, bal_pick(s100, &k.req, &st, &b), 0));
        cr_assert(eq(int, (int)a.cluster, (int)CFG_CLUSTER_X));
        cr_assert(eq(int, (int)b.cluster, (int)CFG_CLUSTER_Y));
    }
    bal_snapshot_unref(s0);
    bal_snapshot_unref(s100);
    free(f);
}

/* --- monotony --- */

/*
 * Up from 0 to 100 % in steps of 0.5 point, then down again: a key that reached y never returns to
 * x on the way up, and on the way down each weight sends exactly the keys it sent on the way up.
 * Round-robin clusters keep the node choice out of the way (it does not affect the side).
 */
Test(bal_split, a_ramp_never_sends_a_key_back_and_returning_to_a_weight_restores_its_keys)
{
    enum { STEPS = 201 };
    struct fx *f = fx_new("ramp-seed", 0);
    struct bal_snapshot *base;
    struct bal_state st = {0};
    struct keyreq k;
    uint8_t *flip = calloc(N_KEYS, 1); /* first step on y; STEPS when never */

    cr_assert(ne(ptr, flip, NULL));
    memset(flip, STEPS, N_KEYS);
    fx_key(f, CFG_KEY_HEADER, "x-client");
    base = fx_snap(f);
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++)
        base->clusters[c].balance = CFG_BALANCE_ROUND_ROBIN;
    for (int step = 0; step < 2 * STEPS; step++) {
        int i = step < STEPS ? step : 2 * STEPS - 1 - step; /* 0..200 then 200..0 */
        struct bal_snapshot *s = bal_snapshot_with_weight(base, (unsigned)i * 50, 2);

        for (unsigned n = 0; n < N_KEYS; n++) {
            struct bal_choice ch;
            bool on_y;

            keyreq_set(&k, n);
            bal_pick(s, &k.req, &st, &ch);
            on_y = ch.cluster == CFG_CLUSTER_Y;
            if (step < STEPS) {
                if (on_y && flip[n] == STEPS)
                    flip[n] = (uint8_t)i;
                else if (!on_y && flip[n] != STEPS)
                    cr_fail("key %u went back to x at %.1f %% (on y since %.1f %%)", n, i / 2.0,
                            flip[n] / 2.0);
                /* The step is the first multiple of 0.5 % at or above the key's flip weight. */
                if (on_y && flip[n] == i)
                    cr_assert(le(uint, bal_flip_weight(ch.bucket), (unsigned)i * 50));
            } else if (on_y != (i >= flip[n])) {
                cr_fail("key %u is on %s at %.1f %% going down, not as going up", n,
                        on_y ? "y" : "x", i / 2.0);
            }
        }
        bal_snapshot_unref(s);
    }
    for (unsigned n = 0; n < N_KEYS; n++)
        cr_assert(lt(uint, (unsigned)flip[n], (unsigned)STEPS), "key %u never reached y", n);
    bal_snapshot_unref(base);
    free(flip);
    free(f);
}

/* --- the same decisions elsewhere --- */

/* Builds everything from scratch and folds 100,000 decisions (side, bucket, node) into one hash. */
static uint64_t
decisions_digest(void)
{
    struct fx *f = fx_new("crossfade", 3333);
    struct bal_snapshot *s;
    struct bal_state st = {0};
    struct keyreq k;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    fx_key(f, CFG_KEY_HEADER, "x-client");
    fx_node(f, CFG_CLUSTER_X, "10.0.1.1:8080", 3);
    fx_node(f, CFG_CLUSTER_X, "10.0.1.2:8080", 1);
    fx_node(f, CFG_CLUSTER_X, "[2001:db8::1]:80", 2);
    fx_node(f, CFG_CLUSTER_Y, "gw-y-1.internal:443", 1);
    fx_node(f, CFG_CLUSTER_Y, "gw-y-2.internal:443", 1);
    fx_node(f, CFG_CLUSTER_Y, "gw-y-3.internal:443", 5);
    s = fx_snap(f);
    for (unsigned i = 0; i < N_KEYS; i++) {
        struct bal_choice ch;
        char line[160];
        int n;

        keyreq_set(&k, i);
        bal_pick(s, &k.req, &st, &ch);
        n = snprintf(line, sizeof(line), "%d %u %s\n", (int)ch.cluster, (unsigned)ch.bucket,
                     ch.node != NULL ? ch.node->addr.text : "-");
        for (int j = 0; j < n; j++)
            h = (h ^ (unsigned char)line[j]) * 1099511628211ull;
    }
    bal_snapshot_unref(s);
    free(f);
    return h;
}

Test(bal_split, another_process_with_the_same_seed_makes_the_same_decisions)
{
    int fds[2], status = 0;
    pid_t pid;
    uint64_t mine, theirs = 0;

    cr_assert(eq(int, pipe(fds), 0));
    pid = fork();
    cr_assert(ne(int, pid, -1));
    if (pid == 0) {
        uint64_t d = decisions_digest();

        close(fds[0]);
        _exit(write(fds[1], &d, sizeof(d)) == (ssize_t)sizeof(d) ? 0 : 1);
    }
    close(fds[1]);
    mine = decisions_digest();
    cr_assert(eq(sz, (size_t)read(fds[0], &theirs, sizeof(theirs)), sizeof(theirs)));
    close(fds[0]);
    cr_assert(eq(int, waitpid(pid, &status, 0), pid));
    cr_assert(eq(int, WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0), "the child failed");
    cr_assert(eq(u64, mine, theirs), "parent %016llx, child %016llx", (unsigned long long)mine,
              (unsigned long long)theirs);
}

/* --- test vectors (the table of docs/splitting.md) --- */

static const struct vector {
    const char *seed, *key;
    uint32_t bucket;
    char side10, side50, side90;
} vectors[] = {
    {"crossfade", "", 1927, 'x', 'y', 'y'},
    {"crossfade", "alice", 2018, 'x', 'y', 'y'},
    {"crossfade", "bob", 2409, 'x', 'y', 'y'},
    {"crossfade", "192.0.2.1", 6076, 'x', 'x', 'y'},
    {"crossfade", "2001:db8::1", 906, 'y', 'y', 'y'},
    {"crossfade", "user-42", 4781, 'x', 'y', 'y'},
    {"crossfade", "0f8fad5b-d9cb-469f-a165-70867728950e", 7908, 'x', 'x', 'y'},
    {"upgrade-2024", "", 9771, 'x', 'x', 'x'},
    {"upgrade-2024", "alice", 8596, 'x', 'x', 'y'},
    {"upgrade-2024", "bob", 5463, 'x', 'x', 'y'},
    {"upgrade-2024", "192.0.2.1", 9248, 'x', 'x', 'x'},
    {"upgrade-2024", "2001:db8::1", 3911, 'x', 'y', 'y'},
    {"upgrade-2024", "user-42", 3382, 'x', 'y', 'y'},
    {"upgrade-2024", "0f8fad5b-d9cb-469f-a165-70867728950e", 2522, 'x', 'y', 'y'},
};

Test(bal_split, the_test_vectors_of_the_documentation_hold)
{
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const struct vector *v = &vectors[i];
        const char sides[3] = {v->side10, v->side50, v->side90};
        static const unsigned weights[3] = {1000, 5000, 9000};
        struct fx *f = fx_new(v->seed, 0);
        struct bal_snapshot *base = fx_snap(f);

        cr_assert(eq(u32, bal_bucket(v->key, strlen(v->key), base->seed_hash), v->bucket),
                  "seed \"%s\", key \"%s\"", v->seed, v->key);
        for (int w = 0; w < 3; w++) {
            struct bal_snapshot *s = bal_snapshot_with_weight(base, weights[w], 2);
            struct bal_choice ch;

            cr_assert(eq(int, bal_which(s, v->key, strlen(v->key), &ch), 0));
            cr_assert(eq(u32, ch.bucket, v->bucket));
            cr_assert(eq(chr, cfg_cluster_name(ch.cluster)[0], sides[w]),
                      "seed \"%s\", key \"%s\", weight %u %%", v->seed, v->key, weights[w] / 100);
            bal_snapshot_unref(s);
        }
        bal_snapshot_unref(base);
        free(f);
    }
}

Test(bal_split, the_flip_weight_is_the_first_weight_that_sends_the_key_to_y)
{
    struct fx *f = fx_new("crossfade", 0);
    struct bal_snapshot *base = fx_snap(f);
    struct bal_choice ch;

    cr_assert(eq(int, bal_which(base, "alice", 5, &ch), 0));
    cr_assert(eq(uint, bal_flip_weight(ch.bucket), 2019u));
    for (unsigned w = 2017; w <= 2020; w++) {
        struct bal_snapshot *s = bal_snapshot_with_weight(base, w, 2);

        bal_which(s, "alice", 5, &ch);
        cr_assert(eq(int, (int)ch.cluster, w >= 2019 ? 1 : 0), "weight %u", w);
        cr_assert(eq(int, (int)ch.reason, (int)BAL_REASON_WEIGHT));
        cr_assert(eq(int, ch.key_index, -1));
        cr_assert(ne(ptr, (void *)ch.node, NULL));
        bal_snapshot_unref(s);
    }
    cr_assert(eq(uint, bal_flip_weight(0), 1u));
    cr_assert(eq(uint, bal_flip_weight(9999), 10000u));
    bal_snapshot_unref(base);
    free(f);
}

Test(bal_split, bal_which_names_the_node_a_request_with_that_key_gets)
{
    struct fx *f = fx_new("crossfade", 5000);
    struct bal_snapshot *s;
    struct bal_state st = {0};
    struct keyreq k;

    fx_key(f, CFG_KEY_HEADER, "x-client");
    s = fx_snap(f);
    for (unsigned i = 0; i < 1000; i++) {
        struct bal_choice a, b;

        keyreq_set(&k, i);
        cr_assert(eq(int, bal_pick(s, &k.req, &st, &a), 0));
        cr_assert(eq(int, bal_which(s, k.val, strlen(k.val), &b), 0));
        cr_assert(eq(int, (int)a.cluster, (int)b.cluster));
        cr_assert(eq(ptr, (void *)a.node, (void *)b.node));
        cr_assert(eq(u32, a.bucket, b.bucket));
    }
    bal_snapshot_unref(s);
    free(f);
}

Test(bal_split, reasons_have_names)
{
    cr_assert(eq(str, (char *)bal_reason_name(BAL_REASON_WEIGHT), "weight"));
    cr_assert(eq(str, (char *)bal_reason_name(BAL_REASON_OVERRIDE), "override"));
    cr_assert(eq(str, (char *)bal_reason_name(BAL_REASON_PIN), "pin"));
}

/* --- no node --- */

Test(bal_split, a_cluster_without_a_weighted_node_gives_no_node)
{
    struct fx *f = fx_new("crossfade", BAL_BUCKETS);
    struct bal_snapshot *s;
    struct bal_state st = {0};
    struct bal_choice ch;

    fx_node(f, CFG_CLUSTER_X, "10.0.1.1:8080", 1);
    fx_node(f, CFG_CLUSTER_Y, "10.0.2.1:8080", 0);
    fx_node(f, CFG_CLUSTER_Y, "10.0.2.2:8080", 0);
    s = fx_snap(f);
    for (int b = 0; b < CFG_BALANCE_LEAST_CONN + 1; b++) {
        s->clusters[CFG_CLUSTER_Y].balance = (enum cfg_balance)b;
        cr_assert(eq(int, bal_pick(s, req_of("192.0.2.1", ""), &st, &ch), -1));
        cr_assert(eq(int, (int)ch.cluster, (int)CFG_CLUSTER_Y));
        cr_assert(eq(ptr, (void *)ch.node, NULL));
        cr_assert(eq(int, bal_which(s, "k", 1, &ch), -1));
        cr_assert(eq(ptr, (void *)ch.node, NULL));
    }
    bal_snapshot_unref(s);
    free(f);
}

/* --- overrides --- */

/* The cluster bal_pick chooses for a request from `peer` with `headers`; asserts the reason. */
static enum cfg_cluster_id
side_of(struct bal_snapshot *s, const char *peer, const char *headers, enum bal_reason want)
{
    struct bal_state st = {0};
    struct bal_choice ch;

    cr_assert(eq(int, bal_pick(s, req_of(peer, headers), &st, &ch), 0));
    cr_assert(eq(int, (int)ch.reason, (int)want), "%s from %s: reason %s", headers, peer,
              bal_reason_name(ch.reason));
    cr_assert(eq(int, (int)ch.node->cluster, (int)ch.cluster));
    return ch.cluster;
}

Test(bal_override, the_override_header_forces_the_side_at_any_weight)
{
    struct fx *f = fx_new("crossfade", 0);
    struct bal_snapshot *s0, *s100;

    snprintf(f->override_header, sizeof(f->override_header), "X-Crossfade-Target");
    f->cfg.split.override_header = f->override_header;
    s0 = fx_snap(f);
    s100 = bal_snapshot_with_weight(s0, BAL_BUCKETS, 2);
    cr_assert(eq(int, side_of(s0, "192.0.2.1", "X-Crossfade-Target: y", BAL_REASON_OVERRIDE),
                 CFG_CLUSTER_Y));
    cr_assert(eq(int, side_of(s0, "192.0.2.1", "x-crossfade-target:  Y \t", BAL_REASON_OVERRIDE),
                 CFG_CLUSTER_Y));
    cr_assert(eq(int, side_of(s100, "192.0.2.1", "X-CROSSFADE-TARGET: x", BAL_REASON_OVERRIDE),
                 CFG_CLUSTER_X));
    cr_assert(eq(int, side_of(s100, "192.0.2.1", "X-Crossfade-Target:X", BAL_REASON_OVERRIDE),
                 CFG_CLUSTER_X));
    cr_assert(eq(int, side_of(s0, "192.0.2.1", "X-Crossfade-Target: x", BAL_REASON_OVERRIDE),
                 CFG_CLUSTER_X));
    bal_snapshot_unref(s0);
    bal_snapshot_unref(s100);
    free(f);
}

Test(bal_override, an_invalid_override_value_is_ignored)
{
    static const char *const bad[] = {
        "X-Crossfade-Target: z",     "X-Crossfade-Target: yy",  "X-Crossfade-Target: ",
        "X-Crossfade-Target: \"y\"", "X-Crossfade-Target: y x", "X-Crossfade-Targets: y",
    };
    struct fx *f = fx_new("crossfade", 0);
    struct bal_snapshot *s;

    snprintf(f->override_header, sizeof(f->override_header), "X-Crossfade-Target");
    f->cfg.split.override_header = f->override_header;
    s = fx_snap(f);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert(eq(int, side_of(s, "192.0.2.1", bad[i], BAL_REASON_WEIGHT), CFG_CLUSTER_X));
    /* Only the first override header counts. */
    cr_assert(eq(
        int,
        side_of(s, "192.0.2.1", "X-Crossfade-Target: no\nX-Crossfade-Target: y", BAL_REASON_WEIGHT),
        CFG_CLUSTER_X));
    bal_snapshot_unref(s);
    free(f);
}

Test(bal_override, no_override_applies_when_it_is_switched_off)
{
    struct fx *f = fx_new("crossfade", 0);
    struct bal_snapshot *s = fx_snap(f); /* override_header and override_cookie NULL */

    cr_assert(eq(int,
                 side_of(s, "192.0.2.1", "X-Crossfade-Target: y\nCookie: X-Crossfade-Target=y",
                         BAL_REASON_WEIGHT),
                 CFG_CLUSTER_X));
    bal_snapshot_unref(s);
    free(f);
}

Test(bal_override, the_override_cookie_forces_the_side_too)
{
    struct fx *f = fx_new("crossfade", 0);
    struct bal_snapshot *s;

    snprintf(f->override_cookie, sizeof(f->override_cookie), "xf_target");
    f->cfg.split.override_cookie = f->override_cookie;
    s = fx_snap(f);
    cr_assert(eq(int, side_of(s, "192.0.2.1", "Cookie: a=1; xf_target=y", BAL_REASON_OVERRIDE),
                 CFG_CLUSTER_Y));
    cr_assert(eq(
        int, side_of(s, "192.0.2.1", "Cookie: a=1\nCookie: xf_target=\"Y\"", BAL_REASON_OVERRIDE),
        CFG_CLUSTER_Y));
    cr_assert(
        eq(int, side_of(s, "192.0.2.1", "Cookie: XF_TARGET=y", BAL_REASON_WEIGHT), CFG_CLUSTER_X));
    cr_assert(eq(int, side_of(s, "192.0.2.1", "Cookie: xf_target=maybe", BAL_REASON_WEIGHT),
                 CFG_CLUSTER_X));
    /* The header is off here: a header of that name means nothing. */
    cr_assert(eq(int, side_of(s, "192.0.2.1", "X-Crossfade-Target: y", BAL_REASON_WEIGHT),
                 CFG_CLUSTER_X));
    bal_snapshot_unref(s);
    free(f);
}

Test(bal_override, a_valid_header_wins_over_the_cookie_and_an_invalid_one_lets_it_speak)
{
    struct fx *f = fx_new("crossfade", 5000);
    struct bal_snapshot *s;

    snprintf(f->override_header, sizeof(f->override_header), "X-Crossfade-Target");
    f->cfg.split.override_header = f->override_header;
    snprintf(f->override_cookie, sizeof(f->override_cookie), "xf_target");
    f->cfg.split.override_cookie = f->override_cookie;
    s = fx_snap(f);
    cr_assert(eq(
        int,
        side_of(s, "192.0.2.1", "X-Crossfade-Target: x\nCookie: xf_target=y", BAL_REASON_OVERRIDE),
        CFG_CLUSTER_X));
    cr_assert(eq(
        int,
        side_of(s, "192.0.2.1", "X-Crossfade-Target: y\nCookie: xf_target=x", BAL_REASON_OVERRIDE),
        CFG_CLUSTER_Y));
    cr_assert(eq(
        int,
        side_of(s, "192.0.2.1", "X-Crossfade-Target: ?\nCookie: xf_target=y", BAL_REASON_OVERRIDE),
        CFG_CLUSTER_Y));
    bal_snapshot_unref(s);
    free(f);
}

Test(bal_override, override_from_restricts_overrides_to_its_networks)
{
    struct fx *f = fx_new("crossfade", 0);
    struct bal_snapshot *s;

    snprintf(f->override_header, sizeof(f->override_header), "X-Crossfade-Target");
    f->cfg.split.override_header = f->override_header;
    f->cfg.split.override_any = false;
    fx_net(f->from, &f->cfg.split.n_override_from, "198.51.100.0/24");
    fx_net(f->from, &f->cfg.split.n_override_from, "2001:db8:7::/48");
    fx_net(f->trusted, &f->cfg.split.n_trusted_proxies, "10.0.0.0/8");
    s = fx_snap(f);
    cr_assert(eq(int, side_of(s, "198.51.100.20", "X-Crossfade-Target: y", BAL_REASON_OVERRIDE),
                 CFG_CLUSTER_Y));
    cr_assert(eq(int, side_of(s, "2001:db8:7::9", "X-Crossfade-Target: y", BAL_REASON_OVERRIDE),
                 CFG_CLUSTER_Y));
    cr_assert(eq(int, side_of(s, "192.0.2.1", "X-Crossfade-Target: y", BAL_REASON_WEIGHT),
                 CFG_CLUSTER_X));
    /* Behind a trusted proxy the forwarded client address is the one checked. */
    cr_assert(eq(int,
                 side_of(s, "10.0.0.1", "X-Forwarded-For: 198.51.100.21\nX-Crossfade-Target: y",
                         BAL_REASON_OVERRIDE),
                 CFG_CLUSTER_Y));
    cr_assert(eq(int,
                 side_of(s, "10.0.0.1", "X-Forwarded-For: 192.0.2.7\nX-Crossfade-Target: y",
                         BAL_REASON_WEIGHT),
                 CFG_CLUSTER_X));
    /* ... and a forged X-Forwarded-For from an untrusted peer does not help. */
    cr_assert(eq(int,
                 side_of(s, "192.0.2.1", "X-Forwarded-For: 198.51.100.22\nX-Crossfade-Target: y",
                         BAL_REASON_WEIGHT),
                 CFG_CLUSTER_X));
    bal_snapshot_unref(s);
    free(f);
}

Test(bal_override, an_override_keeps_the_key_for_the_node_and_the_bucket)
{
    struct fx *f = fx_new("crossfade", 0);
    struct bal_snapshot *s;
    struct bal_state st = {0};
    struct bal_choice a, b;

    snprintf(f->override_header, sizeof(f->override_header), "X-Crossfade-Target");
    f->cfg.split.override_header = f->override_header;
    fx_key(f, CFG_KEY_HEADER, "x-client");
    s = fx_snap(f);
    cr_assert(
        eq(int, bal_pick(s, req_of("192.0.2.1", "X-Client: alice\nX-Crossfade-Target: y"), &st, &a),
           0));
    cr_assert(eq(int, a.key_index, 0));
    cr_assert(eq(u32, a.bucket, 2018u));
    s->weight_bp = BAL_BUCKETS; /* the same key by weight alone */
    cr_assert(eq(int, bal_pick(s, req_of("192.0.2.1", "X-Client: alice"), &st, &b), 0));
    cr_assert(eq(ptr, (void *)a.node, (void *)b.node));
    bal_snapshot_unref(s);
    free(f);
}

/* The node table of docs/splitting.md: x = 10.0.1.1:8080 (weight 1), 10.0.1.2:8080 (2),
 * 10.0.1.3:8080 (3); y = gw-y-1:443, gw-y-2:443 (1 each); seed crossfade, weight 25 %. */
Test(bal_split, the_node_vectors_of_the_documentation_hold)
{
    static const struct {
        const char *key;
        uint32_t bucket;
        const char *node;
    } rows[] = {
        {"alice", 2018, "gw-y-1:443"},        {"bob", 2409, "gw-y-1:443"},
        {"192.0.2.1", 6076, "10.0.1.1:8080"}, {"2001:db8::1", 906, "gw-y-1:443"},
        {"user-42", 4781, "10.0.1.3:8080"},   {"carol", 9458, "10.0.1.3:8080"},
        {"dave", 7977, "10.0.1.2:8080"},      {"erin", 2233, "gw-y-2:443"},
    };
    struct fx *f = fx_new("crossfade", 2500);
    struct bal_snapshot *s;

    fx_node(f, CFG_CLUSTER_X, "10.0.1.1:8080", 1);
    fx_node(f, CFG_CLUSTER_X, "10.0.1.2:8080", 2);
    fx_node(f, CFG_CLUSTER_X, "10.0.1.3:8080", 3);
    fx_node(f, CFG_CLUSTER_Y, "gw-y-1:443", 1);
    fx_node(f, CFG_CLUSTER_Y, "gw-y-2:443", 1);
    s = fx_snap(f);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct bal_choice ch;

        cr_assert(eq(int, bal_which(s, rows[i].key, strlen(rows[i].key), &ch), 0));
        cr_assert(eq(u32, ch.bucket, rows[i].bucket), "key \"%s\"", rows[i].key);
        cr_assert(eq(str, (char *)ch.node->addr.text, (char *)rows[i].node), "key \"%s\"",
                  rows[i].key);
    }
    bal_snapshot_unref(s);
    free(f);
}

/* --- pins --- */

/* Pins `key` to `side` in the snapshot's own table (a test's snapshot is not published). */
static void
fx_pin(struct bal_snapshot *s, const char *key, enum cfg_cluster_id side)
{
    int old;

    if (s->pins == NULL)
        s->pins = bal_pins_new();
    cr_assert(eq(int, bal_pins_set(s->pins, key, strlen(key), side, &old, NULL), 0));
}

Test(bal_pin, a_pinned_key_goes_to_its_side_at_any_weight)
{
    struct fx *f = fx_new("crossfade", 0);
    struct bal_snapshot *s;

    fx_key(f, CFG_KEY_HEADER, "x-client");
    s = fx_snap(f);
    fx_pin(s, "alice", CFG_CLUSTER_Y);
    fx_pin(s, "bob", CFG_CLUSTER_X);
    for (unsigned w = 0; w <= BAL_BUCKETS; w += 2500) {
        s->weight_bp = w;
        cr_assert(
            eq(int, side_of(s, "192.0.2.1", "X-Client: alice", BAL_REASON_PIN), CFG_CLUSTER_Y),
            "weight %u", w);
        cr_assert(eq(int, side_of(s, "192.0.2.1", "X-Client: bob", BAL_REASON_PIN), CFG_CLUSTER_X),
                  "weight %u", w);
    }
    /* Others follow the weight. */
    s->weight_bp = 0;
    cr_assert(
        eq(int, side_of(s, "192.0.2.1", "X-Client: carol", BAL_REASON_WEIGHT), CFG_CLUSTER_X));
    s->weight_bp = BAL_BUCKETS;
    cr_assert(
        eq(int, side_of(s, "192.0.2.1", "X-Client: carol", BAL_REASON_WEIGHT), CFG_CLUSTER_Y));
    bal_snapshot_unref(s);
    free(f);
}

Test(bal_pin, a_pin_matches_the_derived_key_whatever_header_carried_it)
{
    struct fx *f = fx_new("crossfade", 0);
    struct bal_snapshot *s;

    fx_key(f, CFG_KEY_HEADER, "x-client");
    fx_key(f, CFG_KEY_IP, NULL);
    s = fx_snap(f);
    fx_pin(s, "alice", CFG_CLUSTER_Y);
    fx_pin(s, "198.51.100.7", CFG_CLUSTER_Y);
    /* Header values lose their surrounding blanks before they are a key. */
    cr_assert(
        eq(int, side_of(s, "192.0.2.1", "x-CLIENT: \talice ", BAL_REASON_PIN), CFG_CLUSTER_Y));
    /* Without the header, the client address is the key. */
    cr_assert(eq(int, side_of(s, "198.51.100.7", "Other: alice", BAL_REASON_PIN), CFG_CLUSTER_Y));
    cr_assert(
        eq(int, side_of(s, "198.51.100.8", "Other: alice", BAL_REASON_WEIGHT), CFG_CLUSTER_X));
    bal_snapshot_unref(s);
    free(f);
}

Test(bal_pin, an_override_header_beats_a_pin)
{
    struct fx *f = fx_new("crossfade", 0);
    struct bal_snapshot *s;

    snprintf(f->override_header, sizeof(f->override_header), "X-Crossfade-Target");
    f->cfg.split.override_header = f->override_header;
    fx_key(f, CFG_KEY_HEADER, "x-client");
    s = fx_snap(f);
    fx_pin(s, "alice", CFG_CLUSTER_Y);
    cr_assert(eq(
        int, side_of(s, "192.0.2.1", "X-Client: alice\nX-Crossfade-Target: x", BAL_REASON_OVERRIDE),
        CFG_CLUSTER_X));
    /* An invalid override value is ignored: the pin speaks. */
    cr_assert(eq(int,
                 side_of(s, "192.0.2.1", "X-Client: alice\nX-Crossfade-Target: z", BAL_REASON_PIN),
                 CFG_CLUSTER_Y));
    bal_snapshot_unref(s);
    free(f);
}

Test(bal_pin, a_pin_keeps_the_bucket_and_the_node_of_the_key)
{
    struct fx *f = fx_new("crossfade", BAL_BUCKETS);
    struct bal_snapshot *s;
    struct bal_state st = {0};
    struct bal_choice a, b;

    fx_key(f, CFG_KEY_HEADER, "x-client");
    s = fx_snap(f);
    cr_assert(eq(int, bal_pick(s, req_of("192.0.2.1", "X-Client: alice"), &st, &a), 0));
    fx_pin(s, "alice", CFG_CLUSTER_Y);
    s->weight_bp = 0;
    cr_assert(eq(int, bal_pick(s, req_of("192.0.2.1", "X-Client: alice"), &st, &b), 0));
    cr_assert(eq(int, (int)b.reason, (int)BAL_REASON_PIN));
    cr_assert(eq(u32, b.bucket, a.bucket));
    cr_assert(eq(u32, b.bucket, 2018u));
    cr_assert(eq(ptr, (void *)b.node, (void *)a.node));
    cr_assert(eq(int, b.key_index, 0));
    bal_snapshot_unref(s);
    free(f);
}

Test(bal_pin, bal_which_reports_the_pin)
{
    struct fx *f = fx_new("crossfade", 0);
    struct bal_snapshot *s = fx_snap(f);
    struct bal_choice ch;

    fx_pin(s, "alice", CFG_CLUSTER_Y);
    cr_assert(eq(int, bal_which(s, "alice", 5, &ch), 0));
    cr_assert(eq(int, (int)ch.cluster, (int)CFG_CLUSTER_Y));
    cr_assert(eq(int, (int)ch.reason, (int)BAL_REASON_PIN));
    cr_assert(eq(int, (int)ch.node->cluster, (int)CFG_CLUSTER_Y));
    cr_assert(eq(int, bal_which(s, "bob", 3, &ch), 0));
    cr_assert(eq(int, (int)ch.reason, (int)BAL_REASON_WEIGHT));
    cr_assert(eq(int, (int)ch.cluster, (int)CFG_CLUSTER_X));
    bal_snapshot_unref(s);
    free(f);
}

/* What became of the override a request carried, as bal_pick reports it. */
static enum bal_override_use
override_of(struct bal_snapshot *s, const char *peer, const char *headers)
{
    struct bal_state st = {0};
    struct bal_choice ch;

    bal_pick(s, req_of(peer, headers), &st, &ch);
    return ch.override;
}

/* An ignored override is told apart from none, so the proxy can count it and log it. */
Test(bal_override, an_empty_override_from_honours_no_client)
{
    struct fx *f = fx_new("crossfade", 0);
    struct bal_snapshot *s;

    snprintf(f->override_header, sizeof(f->override_header), "X-Crossfade-Target");
    f->cfg.split.override_header = f->override_header;
    f->cfg.split.override_any = false; /* override_from: [] */
    s = fx_snap(f);
    cr_assert(
        eq(int, override_of(s, "127.0.0.1", "X-Crossfade-Target: y"), BAL_OVERRIDE_NOT_ALLOWED));
    cr_assert(eq(int, override_of(s, "::1", "X-Crossfade-Target: y"), BAL_OVERRIDE_NOT_ALLOWED));
    bal_snapshot_unref(s);
    free(f);
}

Test(bal_override, bal_pick_says_what_became_of_an_override)
{
    struct fx *f = fx_new("crossfade", 0);
    struct bal_snapshot *s;

    snprintf(f->override_header, sizeof(f->override_header), "X-Crossfade-Target");
    f->cfg.split.override_header = f->override_header;
    snprintf(f->override_cookie, sizeof(f->override_cookie), "xf_target");
    f->cfg.split.override_cookie = f->override_cookie;
    f->cfg.split.override_any = false;
    fx_net(f->from, &f->cfg.split.n_override_from, "198.51.100.0/24");
    s = fx_snap(f);
    cr_assert(eq(int, override_of(s, "198.51.100.7", "Accept: */*"), BAL_OVERRIDE_NONE));
    cr_assert(
        eq(int, override_of(s, "198.51.100.7", "X-Crossfade-Target: y"), BAL_OVERRIDE_HONOURED));
    cr_assert(
        eq(int, override_of(s, "198.51.100.7", "X-Crossfade-Target: z"), BAL_OVERRIDE_INVALID));
    cr_assert(
        eq(int, override_of(s, "198.51.100.7", "Cookie: xf_target=maybe"), BAL_OVERRIDE_INVALID));
    /* A valid cookie makes up for an invalid header: the override is followed. */
    cr_assert(eq(int, override_of(s, "198.51.100.7", "X-Crossfade-Target: z\nCookie: xf_target=y"),
                 BAL_OVERRIDE_HONOURED));
    cr_assert(
        eq(int, override_of(s, "192.0.2.1", "X-Crossfade-Target: y"), BAL_OVERRIDE_NOT_ALLOWED));
    /* From outside override_from, an invalid value is still invalid first. */
    cr_assert(eq(int, override_of(s, "192.0.2.1", "X-Crossfade-Target: q"), BAL_OVERRIDE_INVALID));
    bal_snapshot_unref(s);
    free(f);
}

/* --- bal_pick_key: a tcp-mode connection's key given as bytes --- */

/* Keyed on its address, a connection goes where an HTTP request from that address with no other
 * key goes: the same bucket, side and node, at every weight; and a pin on the address holds. */
Test(bal_pick_key, lands_an_address_where_an_http_request_from_it_lands)
{
    struct fx *f = fx_new("crossfade", 5000);
    struct bal_snapshot *s;
    unsigned on_y = 0;

    fx_key(f, CFG_KEY_HEADER, "x-client"); /* absent from every request: the address decides */
    s = fx_snap(f);
    for (unsigned i = 1; i <= 200; i++) {
        char peer[32];
        struct bal_choice a, b;

        snprintf(peer, sizeof(peer), "10.%u.%u.7", i / 100, i % 100);
        cr_assert(eq(int, bal_pick(s, req_of(peer, ""), NULL, &a), 0));
        cr_assert(eq(int, bal_pick_key(s, peer, strlen(peer), NULL, &b), 0));
        cr_assert(eq(u32, a.bucket, b.bucket), "%s", peer);
        cr_assert(eq(int, a.cluster, b.cluster), "%s", peer);
        cr_assert(eq(ptr, (void *)a.node, (void *)b.node), "%s", peer);
        cr_assert(eq(int, b.key_index, -1));
        on_y += b.cluster == CFG_CLUSTER_Y;
    }
    cr_assert(gt(uint, on_y, 60u), "%u of 200 to y at 50%%", on_y);
    cr_assert(lt(uint, on_y, 140u), "%u of 200 to y at 50%%", on_y);
    fx_pin(s, "10.0.1.7", CFG_CLUSTER_Y);
    s->weight_bp = 0;
    {
        struct bal_choice c;

        cr_assert(eq(int, bal_pick_key(s, "10.0.1.7", 8, NULL, &c), 0));
        cr_assert(eq(int, c.cluster, CFG_CLUSTER_Y));
        cr_assert(eq(int, c.reason, BAL_REASON_PIN));
        cr_assert(eq(int, bal_pick_key(s, "10.0.2.7", 8, NULL, &c), 0));
        cr_assert(eq(int, c.cluster, CFG_CLUSTER_X));
    }
    bal_snapshot_unref(s);
    free(f);
}
