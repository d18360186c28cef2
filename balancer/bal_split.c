/* balancer/bal_split.c -- the x/y decision: the key's bucket against the weight, pins, tester
 * overrides, then the node. No allocation, no system call, no lock (docs/splitting.md). */
#include "balancer/bal.h"

#include <string.h>

#include <xxhash.h>

uint64_t
bal_seed_hash(const char *seed)
{
    return XXH3_64bits(seed, strlen(seed));
}

uint32_t
bal_bucket(const char *key, size_t len, uint64_t seed_hash)
{
    return (uint32_t)(XXH3_64bits_withSeed(key, len, seed_hash) % BAL_BUCKETS);
}

unsigned
bal_flip_weight(uint32_t bucket)
{
    return bucket + 1;
}

const char *
bal_reason_name(enum bal_reason reason)
{
    switch (reason) {
    case BAL_REASON_WEIGHT:
        return "weight";
    case BAL_REASON_OVERRIDE:
        return "override";
    case BAL_REASON_PIN:
        return "pin";
    }
    return "unknown";
}

/* "x" or "y" (case-insensitive, surrounding blanks ignored) into *side; -1 for anything else. */
static int
bal_override_value(const char *v, size_t len, enum cfg_cluster_id *side)
{
    while (len > 0 && (v[0] == ' ' || v[0] == '\t')) {
        v++;
        len--;
    }
    while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    if (len != 1)
        return -1;
    if (v[0] == 'x' || v[0] == 'X')
        *side = CFG_CLUSTER_X;
    else if (v[0] == 'y' || v[0] == 'Y')
        *side = CFG_CLUSTER_Y;
    else
        return -1;
    return 0;
}

/*
 * The side a tester override asks for: the override header when its value is valid, else the
 * override cookie; honoured only from override_from (every client with override_any). Returns what
 * became of it: HONOURED with *side set, else NONE, INVALID (a value other than x or y, none valid)
 * or NOT_ALLOWED (side untouched).
 */
static enum bal_override_use
bal_override(const struct cfg_split *split, const struct bal_request *req,
             enum cfg_cluster_id *side)
{
    enum bal_override_use use = BAL_OVERRIDE_NONE;
    enum cfg_cluster_id want;
    const char *v;
    size_t len;
    struct bal_addr client;
    bool found = false;

    if (split->override_header != NULL &&
        bal_header_value(req, split->override_header, &v, &len) == 0) {
        found = bal_override_value(v, len, &want) == 0;
        use = BAL_OVERRIDE_INVALID;
    }
    if (!found && split->override_cookie != NULL &&
        bal_cookie_value(req, split->override_cookie, &v, &len) == 0) {
        found = bal_override_value(v, len, &want) == 0;
        use = BAL_OVERRIDE_INVALID;
    }
    if (!found)
        return use;
    if (!split->override_any) {
        bal_client_addr(split, req, &client);
        if (split->n_override_from == 0 ||
            !bal_addr_in(&client, split->override_from, split->n_override_from))
            return BAL_OVERRIDE_NOT_ALLOWED;
    }
    *side = want;
    return BAL_OVERRIDE_HONOURED;
}

/* The node of the side chosen in out->cluster for a key (khash kept for a retry), failing over
 * when that side has none and allows it. */
static int
bal_pick_node(const struct bal_snapshot *snap, const char *key, size_t len, struct bal_state *st,
              struct bal_choice *out)
{
    enum cfg_cluster_id side = out->cluster;

    out->assigned = side;
    out->failover = false;
    /* The key's node hash, kept for a retry; only hash balance reads it. */
    out->khash = snap->clusters[CFG_CLUSTER_X].balance == CFG_BALANCE_HASH ||
                         snap->clusters[CFG_CLUSTER_Y].balance == CFG_BALANCE_HASH
                     ? bal_node_key_hash(key, len, snap->seed_hash)
                     : 0;
    out->node = bal_node_pick_hashed(&snap->clusters[side], side, out->khash, st, NULL, 0);
    if (out->node == NULL && snap->clusters[side].failover) {
        enum cfg_cluster_id other = side == CFG_CLUSTER_X ? CFG_CLUSTER_Y : CFG_CLUSTER_X;

        out->node = bal_node_pick_hashed(&snap->clusters[other], other, out->khash, st, NULL, 0);
        if (out->node != NULL) {
            out->cluster = other;
            out->failover = true;
        }
    }
    return out->node != NULL ? 0 : -1;
}

/* The side of a key by its bucket against the weight, a pin beating the weight. */
static enum cfg_cluster_id
bal_pick_side(const struct bal_snapshot *snap, const char *key, size_t len, struct bal_choice *out)
{
    enum cfg_cluster_id side;

    /* The key's hash is its identity for `preview weight` (distinct keys); its bucket follows. */
    out->kid = XXH3_64bits_withSeed(key, len, snap->seed_hash);
    out->bucket = (uint32_t)(out->kid % BAL_BUCKETS);
    side = out->bucket < snap->weight_bp ? CFG_CLUSTER_Y : CFG_CLUSTER_X;
    out->reason = BAL_REASON_WEIGHT;
    if (snap->pins != NULL && bal_pins_find(snap->pins, key, len, &side) == 0)
        out->reason = BAL_REASON_PIN;
    out->override = BAL_OVERRIDE_NONE;
    return side;
}

int
bal_pick(const struct bal_snapshot *snap, const struct bal_request *req, struct bal_state *st,
         struct bal_choice *out)
{
    struct bal_key key; /* not zeroed: only the bytes written by the key readers are read */
    enum cfg_cluster_id side;

    out->key_index = bal_key_find(snap->split, req, st, &key);
    side = bal_pick_side(snap, key.ptr, key.len, out);
    /* An honoured override (a tester's own request) beats the weight and the pins. */
    if (snap->split->override_header != NULL || snap->split->override_cookie != NULL) {
        out->override = bal_override(snap->split, req, &side);
        if (out->override == BAL_OVERRIDE_HONOURED)
            out->reason = BAL_REASON_OVERRIDE;
    }
    out->cluster = side;
    return bal_pick_node(snap, key.ptr, key.len, st, out);
}

int
bal_pick_key(const struct bal_snapshot *snap, const char *key, size_t len, struct bal_state *st,
             struct bal_choice *out)
{
    out->key_index = -1;
    out->cluster = bal_pick_side(snap, key, len, out);
    return bal_pick_node(snap, key, len, st, out);
}

int
bal_repick(const struct bal_snapshot *snap, struct bal_state *st, const uint32_t *tried,
           size_t n_tried, struct bal_choice *ch)
{
    enum cfg_cluster_id c = ch->cluster;
    enum cfg_cluster_id other = c == CFG_CLUSTER_X ? CFG_CLUSTER_Y : CFG_CLUSTER_X;

    ch->node = bal_node_pick_hashed(&snap->clusters[c], c, ch->khash, st, tried, n_tried);
    if (ch->node != NULL)
        return 0;
    /* Only away from the cluster the split chose, and only when that cluster allows it. */
    if (c != ch->assigned || !snap->clusters[c].failover)
        return -1;
    ch->node = bal_node_pick_hashed(&snap->clusters[other], other, ch->khash, st, tried, n_tried);
    if (ch->node == NULL)
        return -1;
    ch->cluster = other;
    ch->failover = true;
    return 0;
}

int
bal_which(const struct bal_snapshot *snap, const char *key, size_t len, struct bal_choice *out)
{
    const struct bal_cluster *cl;

    memset(out, 0, sizeof(*out));
    out->bucket = bal_bucket(key, len, snap->seed_hash);
    out->cluster = out->bucket < snap->weight_bp ? CFG_CLUSTER_Y : CFG_CLUSTER_X;
    out->reason = BAL_REASON_WEIGHT;
    if (bal_pins_find(snap->pins, key, len, &out->cluster) == 0)
        out->reason = BAL_REASON_PIN;
    out->key_index = -1;
    out->assigned = out->cluster;
    out->khash = bal_node_key_hash(key, len, snap->seed_hash);
    cl = &snap->clusters[out->cluster];
    if (bal_cluster_usable_weight(cl) == 0 && cl->failover &&
        bal_cluster_usable_weight(&snap->clusters[1 - out->cluster]) > 0) {
        out->cluster = out->cluster == CFG_CLUSTER_X ? CFG_CLUSTER_Y : CFG_CLUSTER_X;
        out->failover = true;
        cl = &snap->clusters[out->cluster];
    }
    if (cl->balance != CFG_BALANCE_HASH)
        return cl->n_schedule > 0 ? 0 : -1;
    out->node = bal_node_hrw(cl, out->khash);
    return out->node != NULL ? 0 : -1;
}
