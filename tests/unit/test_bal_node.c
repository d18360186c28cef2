/* tests/unit/test_bal_node.c -- the node inside a cluster: weighted rendezvous hashing (shares,
 * independence from the split, disruption when nodes come and go), round robin, least_conn. */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "balancer/bal.h"

#define MAX_NODES 16

/* A config built by hand (nothing in it is owned: the struct holds every string and array). */
struct fx {
    struct cfg cfg;
    struct cfg_node nodes[CFG_CLUSTER_COUNT][MAX_NODES];
    struct cfg_split_key keys[2];
    char key_name[16];
};

static struct fx *
fx_new(unsigned weight_bp, enum cfg_key_kind kind)
{
    struct fx *f = calloc(1, sizeof(*f));

    cr_assert(ne(ptr, f, NULL));
    f->cfg.split.seed = "crossfade";
    f->cfg.split.weight_bp = weight_bp;
    f->cfg.split.keys = f->keys;
    f->cfg.split.n_keys = 1;
    f->keys[0].kind = kind;
    if (kind == CFG_KEY_HEADER) {
        snprintf(f->key_name, sizeof(f->key_name), "x-client");
        f->keys[0].name = f->key_name;
    }
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

static struct bal_snapshot *
fx_snap(struct fx *f, const struct bal_snapshot *prev)
{
    struct xf_err err = {{0}};
    struct bal_snapshot *s = bal_snapshot_new(&f->cfg, prev, 1, &err);

    cr_assert(ne(ptr, s, NULL), "%s", err.msg);
    return s;
}

/* A request whose only header is "X-Client: client-<i>". */
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

/* The index of `node` in its cluster of `s`. */
static size_t
node_index(const struct bal_snapshot *s, const struct bal_node *node)
{
    const struct bal_cluster *cl = &s->clusters[node->cluster];

    cr_assert(ge(ptr, (void *)node, (void *)cl->nodes));
    cr_assert(lt(ptr, (void *)node, (void *)(cl->nodes + cl->n_nodes)));
    return (size_t)(node - cl->nodes);
}

/* Asserts that counts[i] / total is weight_i / sum within `tol` percentage points. */
static void
expect_shares(const char *what, const unsigned *counts, const struct bal_cluster *cl,
              unsigned total, double tol)
{
    unsigned sum = 0;

    for (size_t i = 0; i < cl->n_nodes; i++)
        sum += cl->nodes[i].weight;
    for (size_t i = 0; i < cl->n_nodes; i++) {
        double got = 100.0 * counts[i] / total, want = 100.0 * cl->nodes[i].weight / sum;

        cr_assert(le(dbl, fabs(got - want), tol), "%s: node %s has %.3f %% (weight %u: %.3f %%)",
                  what, cl->nodes[i].addr.text, got, cl->nodes[i].weight, want);
    }
}

#define N_KEYS 100000u

Test(bal_node, nodes_share_their_cluster_by_weight_independently_of_the_split)
{
    struct fx *f = fx_new(1000, CFG_KEY_HEADER);
    struct bal_snapshot *s;
    struct bal_state st = {0};
    struct keyreq k;
    unsigned y_all[4] = {0}, y_low[4] = {0}, y_high[4] = {0}, x_all[3] = {0};
    unsigned n_y = 0, n_low = 0, n_high = 0, n_x = 0;

    fx_node(f, CFG_CLUSTER_X, "10.0.1.1:8080", 5);
    fx_node(f, CFG_CLUSTER_X, "10.0.1.2:8080", 3);
    fx_node(f, CFG_CLUSTER_X, "10.0.1.3:8080", 2);
    for (unsigned i = 0; i < 4; i++) {
        char addr[32];

        snprintf(addr, sizeof(addr), "10.0.2.%u:8080", i + 1);
        fx_node(f, CFG_CLUSTER_Y, addr, i + 1);
    }
    s = fx_snap(f, NULL);
    /* Keys until y has had 100,000 of them (about a million keys: x gets 900,000). */
    for (unsigned i = 0; n_y < N_KEYS; i++) {
        struct bal_choice ch;
        size_t n;

        keyreq_set(&k, i);
        cr_assert(eq(int, bal_pick(s, &k.req, &st, &ch), 0));
        n = node_index(s, ch.node);
        if (ch.cluster == CFG_CLUSTER_X) {
            x_all[n]++;
            n_x++;
            continue;
        }
        y_all[n]++;
        n_y++;
        /* Half of y's buckets each: the node must not follow the bucket. */
        if (ch.bucket < 500) {
            y_low[n]++;
            n_low++;
        } else {
            y_high[n]++;
            n_high++;
        }
    }
    expect_shares("y", y_all, &s->clusters[CFG_CLUSTER_Y], n_y, 1.0);
    expect_shares("y, buckets 0-499", y_low, &s->clusters[CFG_CLUSTER_Y], n_low, 1.0);
    expect_shares("y, buckets 500-999", y_high, &s->clusters[CFG_CLUSTER_Y], n_high, 1.0);
    expect_shares("x", x_all, &s->clusters[CFG_CLUSTER_X], n_x, 1.0);
    bal_snapshot_unref(s);
    free(f);
}

/* The node address each of N_KEYS keys gets in cluster x of `s` (weight 0: all on x). */
static void
nodes_of_keys(const struct bal_snapshot *s, const char **out)
{
    for (unsigned i = 0; i < N_KEYS; i++) {
        char key[32];
        struct bal_choice ch;
        int n = snprintf(key, sizeof(key), "client-%u", i);

        cr_assert(eq(int, bal_which(s, key, (size_t)n, &ch), 0));
        cr_assert(eq(int, (int)ch.cluster, (int)CFG_CLUSTER_X));
        out[i] = ch.node->addr.text;
    }
}

/* Counts the keys whose node changed from `a` to `b`, asserting each went to `only_to` (when not
 * NULL) or came from `only_from` (when not NULL). */
static unsigned
moved_keys(const char **a, const char **b, const char *only_to, const char *only_from)
{
    unsigned moved = 0;

    for (unsigned i = 0; i < N_KEYS; i++) {
        if (strcmp(a[i], b[i]) == 0)
            continue;
        moved++;
        if (only_to != NULL)
            cr_assert(eq(str, (char *)b[i], (char *)only_to), "key %u moved from %s to %s", i, a[i],
                      b[i]);
        if (only_from != NULL)
            cr_assert(eq(str, (char *)a[i], (char *)only_from), "key %u moved from %s to %s", i,
                      a[i], b[i]);
    }
    return moved;
}

Test(bal_node, adding_a_node_moves_only_its_share_of_keys_and_only_to_it)
{
    static const char *before[N_KEYS], *after[N_KEYS], *removed[N_KEYS];
    struct fx *f = fx_new(0, CFG_KEY_HEADER);
    struct bal_snapshot *s4, *s5, *s4b;
    unsigned moved;

    for (unsigned i = 0; i < 4; i++) {
        char addr[32];

        snprintf(addr, sizeof(addr), "10.0.1.%u:8080", i + 1);
        fx_node(f, CFG_CLUSTER_X, addr, 1);
    }
    fx_node(f, CFG_CLUSTER_Y, "10.0.2.1:8080", 1);
    s4 = fx_snap(f, NULL);
    nodes_of_keys(s4, before);
    /* The new node goes in the middle of the list: the order of the nodes does not matter. */
    f->nodes[CFG_CLUSTER_X][4] = f->nodes[CFG_CLUSTER_X][2];
    snprintf(f->nodes[CFG_CLUSTER_X][2].addr.text, sizeof(f->nodes[0][0].addr.text),
             "10.0.1.99:8080");
    f->cfg.clusters[CFG_CLUSTER_X].n_nodes = 5;
    s5 = fx_snap(f, s4);
    nodes_of_keys(s5, after);
    moved = moved_keys(before, after, "10.0.1.99:8080", NULL);
    cr_assert(le(dbl, fabs(100.0 * moved / N_KEYS - 100.0 / 5), 1.5),
              "adding a fifth node moved %.3f %% of the keys (expected 20 %% +- 1.5)",
              100.0 * moved / N_KEYS);

    /* Removing one of the five moves exactly the keys it had. */
    f->nodes[CFG_CLUSTER_X][0] = f->nodes[CFG_CLUSTER_X][4];
    f->cfg.clusters[CFG_CLUSTER_X].n_nodes = 4;
    s4b = fx_snap(f, s5);
    nodes_of_keys(s4b, removed);
    moved = moved_keys(after, removed, NULL, "10.0.1.1:8080");
    for (unsigned i = 0; i < N_KEYS; i++)
        cr_assert(
            eq(int, strcmp(after[i], "10.0.1.1:8080") == 0, strcmp(after[i], removed[i]) != 0));
    cr_assert(le(dbl, fabs(100.0 * moved / N_KEYS - 100.0 / 5), 1.5));
    bal_snapshot_unref(s4);
    bal_snapshot_unref(s5);
    bal_snapshot_unref(s4b);
    free(f);
}

Test(bal_node, a_heavier_new_node_takes_its_weighted_share_and_a_weight_of_zero_drains_a_node)
{
    static const char *before[N_KEYS], *after[N_KEYS], *drained[N_KEYS];
    struct fx *f = fx_new(0, CFG_KEY_HEADER);
    struct bal_snapshot *a, *b, *c;
    unsigned moved;

    fx_node(f, CFG_CLUSTER_X, "gw-1:80", 1);
    fx_node(f, CFG_CLUSTER_X, "gw-2:80", 1);
    fx_node(f, CFG_CLUSTER_X, "gw-3:80", 1);
    fx_node(f, CFG_CLUSTER_Y, "gw-y:80", 1);
    a = fx_snap(f, NULL);
    nodes_of_keys(a, before);
    fx_node(f, CFG_CLUSTER_X, "gw-4:80", 2);
    b = fx_snap(f, a);
    nodes_of_keys(b, after);
    moved = moved_keys(before, after, "gw-4:80", NULL);
    cr_assert(le(dbl, fabs(100.0 * moved / N_KEYS - 40.0), 1.5),
              "a node of weight 2 joining 1,1,1 took %.3f %% (expected 40 %%)",
              100.0 * moved / N_KEYS);
    f->nodes[CFG_CLUSTER_X][1].weight = 0;
    c = fx_snap(f, b);
    nodes_of_keys(c, drained);
    moved = moved_keys(after, drained, NULL, "gw-2:80");
    cr_assert(le(dbl, fabs(100.0 * moved / N_KEYS - 20.0), 1.5));
    for (unsigned i = 0; i < N_KEYS; i++)
        cr_assert(ne(str, (char *)drained[i], "gw-2:80"));
    bal_snapshot_unref(a);
    bal_snapshot_unref(b);
    bal_snapshot_unref(c);
    free(f);
}

Test(bal_node, a_node_of_weight_zero_is_never_chosen_by_any_balance)
{
    struct fx *f = fx_new(0, CFG_KEY_HEADER);
    struct bal_snapshot *s;
    struct bal_state st = {0};
    struct keyreq k;
    uint32_t active[8] = {0};

    fx_node(f, CFG_CLUSTER_X, "10.0.1.1:8080", 1);
    fx_node(f, CFG_CLUSTER_X, "10.0.1.2:8080", 0);
    fx_node(f, CFG_CLUSTER_X, "10.0.1.3:8080", 1);
    fx_node(f, CFG_CLUSTER_Y, "10.0.2.1:8080", 1);
    s = fx_snap(f, NULL);
    active[s->clusters[CFG_CLUSTER_X].nodes[0].id] = 5; /* the idle node 2 must still lose */
    active[s->clusters[CFG_CLUSTER_X].nodes[2].id] = 5;
    st.active = active;
    for (int b = 0; b <= CFG_BALANCE_LEAST_CONN; b++) {
        s->clusters[CFG_CLUSTER_X].balance = (enum cfg_balance)b;
        for (unsigned i = 0; i < 10000; i++) {
            struct bal_choice ch;

            keyreq_set(&k, i);
            cr_assert(eq(int, bal_pick(s, &k.req, &st, &ch), 0));
            cr_assert(ne(str, (char *)ch.node->addr.text, "10.0.1.2:8080"), "balance %d", b);
        }
    }
    bal_snapshot_unref(s);
    free(f);
}

Test(bal_node, the_same_key_keeps_its_node_under_hash)
{
    struct fx *f = fx_new(5000, CFG_KEY_HEADER);
    struct bal_snapshot *s;
    struct bal_state st = {0};
    struct keyreq k;

    for (unsigned i = 0; i < 6; i++) {
        char addr[32];

        snprintf(addr, sizeof(addr), "10.0.%u.%u:8080", i % 2 + 1, i);
        fx_node(f, (enum cfg_cluster_id)(i % 2), addr, 1);
    }
    s = fx_snap(f, NULL);
    for (unsigned i = 0; i < 1000; i++) {
        struct bal_choice a, b;

        keyreq_set(&k, i);
        bal_pick(s, &k.req, &st, &a);
        bal_pick(s, &k.req, &st, &b);
        cr_assert(eq(ptr, (void *)a.node, (void *)b.node));
    }
    bal_snapshot_unref(s);
    free(f);
}

Test(bal_node, a_random_key_spreads_requests_over_nodes_by_weight)
{
    struct fx *f = fx_new(0, CFG_KEY_RANDOM);
    struct bal_snapshot *s;
    struct bal_state st = {.rng = 42};
    struct keyreq k;
    unsigned counts[3] = {0};

    fx_node(f, CFG_CLUSTER_X, "10.0.1.1:8080", 1);
    fx_node(f, CFG_CLUSTER_X, "10.0.1.2:8080", 2);
    fx_node(f, CFG_CLUSTER_X, "10.0.1.3:8080", 7);
    fx_node(f, CFG_CLUSTER_Y, "10.0.2.1:8080", 1);
    s = fx_snap(f, NULL);
    keyreq_set(&k, 0); /* the same request every time: only the random key varies */
    for (unsigned i = 0; i < N_KEYS; i++) {
        struct bal_choice ch;

        cr_assert(eq(int, bal_pick(s, &k.req, &st, &ch), 0));
        counts[node_index(s, ch.node)]++;
    }
    expect_shares("x, random key", counts, &s->clusters[CFG_CLUSTER_X], N_KEYS, 1.0);
    bal_snapshot_unref(s);
    free(f);
}

/* --- round robin --- */

Test(bal_node_rr, round_robin_follows_the_smooth_weighted_schedule_whatever_the_key)
{
    struct fx *f = fx_new(0, CFG_KEY_HEADER);
    struct bal_snapshot *s;
    struct bal_state st = {0};
    struct keyreq k;
    char seq[15] = {0};

    fx_node(f, CFG_CLUSTER_X, "a:80", 5);
    fx_node(f, CFG_CLUSTER_X, "b:80", 1);
    fx_node(f, CFG_CLUSTER_X, "c:80", 1);
    fx_node(f, CFG_CLUSTER_Y, "y:80", 1);
    f->cfg.clusters[CFG_CLUSTER_X].balance = CFG_BALANCE_ROUND_ROBIN;
    s = fx_snap(f, NULL);
    keyreq_set(&k, 7); /* one key: round robin ignores it */
    for (int i = 0; i < 14; i++) {
        struct bal_choice ch;

        cr_assert(eq(int, bal_pick(s, &k.req, &st, &ch), 0));
        seq[i] = ch.node->addr.text[0];
    }
    cr_assert(eq(str, seq, "aabacaaaabacaa"));
    cr_assert(eq(u64, st.rr[CFG_CLUSTER_X], (uint64_t)14));
    cr_assert(eq(u64, st.rr[CFG_CLUSTER_Y], (uint64_t)0));
    bal_snapshot_unref(s);
    free(f);
}

/* --- least_conn --- */

/* The node names least_conn picks in cluster x for `n` requests with these active counts. */
static void
least_picks(struct bal_snapshot *s, struct bal_state *st, int n, char *out)
{
    struct keyreq k;

    keyreq_set(&k, 1);
    for (int i = 0; i < n; i++) {
        struct bal_choice ch;

        cr_assert(eq(int, bal_pick(s, &k.req, st, &ch), 0));
        out[i] = ch.node->addr.text[0];
    }
    out[n] = '\0';
}

Test(bal_node_least, least_conn_picks_the_fewest_active_requests_per_unit_of_weight)
{
    struct fx *f = fx_new(0, CFG_KEY_HEADER);
    struct bal_snapshot *s;
    uint32_t active[8] = {0};
    struct bal_state st = {.active = active};
    char picks[8];

    fx_node(f, CFG_CLUSTER_X, "a:80", 1);
    fx_node(f, CFG_CLUSTER_X, "b:80", 1);
    fx_node(f, CFG_CLUSTER_X, "c:80", 4);
    fx_node(f, CFG_CLUSTER_Y, "y:80", 1);
    f->cfg.clusters[CFG_CLUSTER_X].balance = CFG_BALANCE_LEAST_CONN;
    s = fx_snap(f, NULL);
    active[s->clusters[CFG_CLUSTER_X].nodes[0].id] = 3;
    active[s->clusters[CFG_CLUSTER_X].nodes[1].id] = 1;
    active[s->clusters[CFG_CLUSTER_X].nodes[2].id] = 8; /* 8 / 4 = 2 per unit of weight */
    least_picks(s, &st, 3, picks);
    cr_assert(eq(str, picks, "bbb"));
    active[s->clusters[CFG_CLUSTER_X].nodes[1].id] = 3;
    least_picks(s, &st, 3, picks);
    cr_assert(eq(str, picks, "ccc"));
    bal_snapshot_unref(s);
    free(f);
}

Test(bal_node_least, least_conn_shares_ties_by_the_round_robin_schedule)
{
    struct fx *f = fx_new(0, CFG_KEY_HEADER);
    struct bal_snapshot *s;
    uint32_t active[8] = {0};
    struct bal_state st = {.active = active};
    char picks[16];

    fx_node(f, CFG_CLUSTER_X, "a:80", 2);
    fx_node(f, CFG_CLUSTER_X, "b:80", 1);
    fx_node(f, CFG_CLUSTER_X, "c:80", 1);
    fx_node(f, CFG_CLUSTER_Y, "y:80", 1);
    f->cfg.clusters[CFG_CLUSTER_X].balance = CFG_BALANCE_LEAST_CONN;
    s = fx_snap(f, NULL);
    /* Idle: every node ties, so the schedule decides (weights 2:1:1). */
    least_picks(s, &st, 8, picks);
    cr_assert(eq(str, picks, "abcaabca"));
    /* Without an active table the same. */
    st.active = NULL;
    least_picks(s, &st, 4, picks);
    cr_assert(eq(str, picks, "abca"));
    /* a busy (2 per unit of weight), b and c tie at 1: both get requests, a none. */
    st.active = active;
    active[s->clusters[CFG_CLUSTER_X].nodes[0].id] = 4;
    active[s->clusters[CFG_CLUSTER_X].nodes[1].id] = 1;
    active[s->clusters[CFG_CLUSTER_X].nodes[2].id] = 1;
    least_picks(s, &st, 8, picks);
    for (int i = 0; i < 8; i++)
        cr_assert(ne(chr, picks[i], 'a'), "%s", picks);
    cr_assert(eq(int, (int)(strchr(picks, 'b') != NULL) + (strchr(picks, 'c') != NULL), 2), "%s",
              picks);
    bal_snapshot_unref(s);
    free(f);
}

/* --- the HRW function itself --- */

Test(bal_node, rendezvous_hashing_depends_on_the_node_identity_not_its_place)
{
    struct bal_node nodes[3] = {
        {.id = 0, .weight = 1, .hash = 0x1111},
        {.id = 1, .weight = 1, .hash = 0x2222},
        {.id = 2, .weight = 1, .hash = 0x3333},
    };
    struct bal_node rev[3] = {nodes[2], nodes[1], nodes[0]};
    struct bal_cluster a = {.nodes = nodes, .n_nodes = 3}, b = {.nodes = rev, .n_nodes = 3};
    struct bal_cluster none = {.nodes = nodes, .n_nodes = 0};

    for (uint64_t kh = 0; kh < 10000; kh++)
        cr_assert(eq(u64, bal_node_hrw(&a, kh * 0x9e3779b97f4a7c15ull)->hash,
                     bal_node_hrw(&b, kh * 0x9e3779b97f4a7c15ull)->hash));
    cr_assert(eq(ptr, (void *)bal_node_hrw(&none, 1), NULL));
    cr_assert(ne(u64, bal_node_key_hash("k", 1, 7), bal_node_key_hash("k", 1, 8)));
}
