/* balancer/bal_node.c -- the node inside the chosen cluster: weighted rendezvous hashing, smooth
 * weighted round robin, least connections. O(nodes), no allocation. */
#include "balancer/bal.h"

#include <math.h>

#include <xxhash.h>

/* splitmix64's finaliser: spreads the bits of a ^ b before it becomes a uniform draw. */
static uint64_t
bal_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t
bal_node_key_hash(const char *key, size_t len, uint64_t seed_hash)
{
    return XXH3_64bits_withSeed(key, len, seed_hash ^ BAL_NODE_SEED_XOR);
}

/* Whether `id` is one of the n ids of `skip`. */
static bool
bal_node_skipped(uint32_t id, const uint32_t *skip, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (skip[i] == id)
            return true;
    return false;
}

/*
 * Each node draws u in (0, 1) from the key and its own identity; the score weight / -ln(u) is an
 * exponential race whose winner is node i with probability weight_i / sum of weights (Schindelhauer
 * and Schomaker; the "weighted rendezvous hashing" of Resch). A node's draw does not depend on
 * the other nodes, so adding one only takes keys to it and removing one only moves its own keys;
 * skipping the winner gives the runner-up, the key's second choice, for a retry.
 */
static const struct bal_node *
bal_node_hrw_skip(const struct bal_cluster *cl, uint64_t khash, const uint32_t *skip, size_t n_skip)
{
    const struct bal_node *best = NULL;
    double best_score = 0;

    for (size_t i = 0; i < cl->n_nodes; i++) {
        const struct bal_node *n = &cl->nodes[i];
        double u, score;

        if (!bal_node_takes(n) || (n_skip > 0 && bal_node_skipped(n->id, skip, n_skip)))
            continue;
        /* 53 random bits, centred in their interval: u is never 0 nor 1. */
        u = ((double)(bal_mix64(khash ^ n->hash) >> 11) + 0.5) / 9007199254740992.0;
        score = (double)bal_node_eff_weight(n) / -log(u);
        if (best == NULL || score > best_score || (score == best_score && n->id < best->id)) {
            best = n;
            best_score = score;
        }
    }
    return best;
}

const struct bal_node *
bal_node_hrw(const struct bal_cluster *cl, uint64_t khash)
{
    return bal_node_hrw_skip(cl, khash, NULL, 0);
}

/* The next node of the smooth weighted round-robin schedule not skipped (cursor advanced); NULL
 * when the schedule is empty or holds only skipped nodes. */
static const struct bal_node *
bal_node_rr(const struct bal_cluster *cl, uint64_t *cursor, const uint32_t *skip, size_t n_skip)
{
    for (size_t k = 0; k < cl->n_schedule; k++) {
        const struct bal_node *n = &cl->nodes[cl->schedule[(*cursor)++ % cl->n_schedule]];

        if (n_skip == 0 || !bal_node_skipped(n->id, skip, n_skip))
            return n;
    }
    return NULL;
}

/*
 * The node with the fewest active requests per unit of weight (a / w compared as a1 x w2 < a2 x w1,
 * exactly). The scan starts at the round-robin schedule's next node and keeps the first minimum,
 * so ties (an idle cluster above all) are shared as round robin shares them.
 */
static const struct bal_node *
bal_node_least(const struct bal_cluster *cl, uint64_t *cursor, const uint32_t *active,
               const uint32_t *skip, size_t n_skip)
{
    const struct bal_node *best = NULL;
    uint64_t best_active = 0;
    size_t start;

    if (cl->n_schedule == 0)
        return NULL;
    start = cl->schedule[(*cursor)++ % cl->n_schedule];
    for (size_t k = 0; k < cl->n_nodes; k++) {
        const struct bal_node *n = &cl->nodes[(start + k) % cl->n_nodes];
        uint64_t a = active != NULL ? active[n->id] : 0;

        if (!bal_node_takes(n) || (n_skip > 0 && bal_node_skipped(n->id, skip, n_skip)))
            continue;
        if (best == NULL || a * bal_node_eff_weight(best) < best_active * bal_node_eff_weight(n)) {
            best = n;
            best_active = a;
        }
    }
    return best;
}

const struct bal_node *
bal_node_pick_hashed(const struct bal_cluster *cl, enum cfg_cluster_id c, uint64_t khash,
                     struct bal_state *st, const uint32_t *skip, size_t n_skip)
{
    switch (cl->balance) {
    case CFG_BALANCE_ROUND_ROBIN:
        return bal_node_rr(cl, &st->rr[c], skip, n_skip);
    case CFG_BALANCE_LEAST_CONN:
        return bal_node_least(cl, &st->rr[c], st->active, skip, n_skip);
    case CFG_BALANCE_HASH:
        break;
    }
    return bal_node_hrw_skip(cl, khash, skip, n_skip);
}

const struct bal_node *
bal_node_pick(const struct bal_cluster *cl, enum cfg_cluster_id c, const char *key, size_t len,
              uint64_t seed_hash, struct bal_state *st)
{
    uint64_t khash = cl->balance == CFG_BALANCE_HASH ? bal_node_key_hash(key, len, seed_hash) : 0;

    return bal_node_pick_hashed(cl, c, khash, st, NULL, 0);
}
