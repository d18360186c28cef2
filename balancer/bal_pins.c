/* balancer/bal_pins.c -- per-key pins: a bounded open-addressing table shared by snapshots. */
#include "balancer/bal.h"

#include <stdio.h>
#include <string.h>

#include <xxhash.h>

/* One pin; entries stay in the order they were added (show pins, the state file). */
struct bal_pin {
    uint64_t hash; /* XXH3_64bits of the key */
    uint32_t off;  /* of the key in keys */
    uint32_t len;  /* of the key */
    uint8_t side;  /* enum cfg_cluster_id */
};

/*
 * The entries, their keys in one block, and an index of 2^k slots (at least twice the entries,
 * so a probe ends soon) holding entry number + 1, 0 for an empty slot; linear probing.
 */
struct bal_pins {
    atomic_uint refs;
    struct bal_pin *entries; /* owned */
    size_t n, cap;           /* entries used, allocated */
    char *keys;              /* owned */
    size_t keys_len, keys_cap;
    uint32_t *slots; /* owned */
    size_t mask;     /* slots - 1 */
};

#define BAL_PINS_MIN_SLOTS 16u

struct bal_pins *
bal_pins_new(void)
{
    struct bal_pins *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    atomic_init(&p->refs, 1);
    p->slots = calloc(BAL_PINS_MIN_SLOTS, sizeof(*p->slots));
    if (p->slots == NULL) {
        free(p);
        return NULL;
    }
    p->mask = BAL_PINS_MIN_SLOTS - 1;
    return p;
}

struct bal_pins *
bal_pins_ref(struct bal_pins *p)
{
    if (p != NULL)
        atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    return p;
}

void
bal_pins_unref(struct bal_pins *p)
{
    if (p == NULL || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(p->entries);
    free(p->keys);
    free(p->slots);
    free(p);
}

size_t
bal_pins_count(const struct bal_pins *p)
{
    return p != NULL ? p->n : 0;
}

enum cfg_cluster_id
bal_pins_get(const struct bal_pins *p, size_t i, const char **key, size_t *len)
{
    const struct bal_pin *e = &p->entries[i];

    *key = p->keys + e->off;
    *len = e->len;
    return (enum cfg_cluster_id)e->side;
}

/* The slot holding the entry of this key, or the empty slot where it would go. */
static size_t
bal_pins_slot(const struct bal_pins *p, const char *key, size_t len, uint64_t hash)
{
    size_t i = (size_t)hash & p->mask;

    for (;;) {
        uint32_t s = p->slots[i];
        const struct bal_pin *e;

        if (s == 0)
            return i;
        e = &p->entries[s - 1];
        if (e->hash == hash && e->len == len && memcmp(p->keys + e->off, key, len) == 0)
            return i;
        i = (i + 1) & p->mask;
    }
}

int
bal_pins_find(const struct bal_pins *p, const char *key, size_t len, enum cfg_cluster_id *side)
{
    uint32_t s;

    if (p == NULL || p->n == 0)
        return -1;
    s = p->slots[bal_pins_slot(p, key, len, XXH3_64bits(key, len))];
    if (s == 0)
        return -1;
    *side = (enum cfg_cluster_id)p->entries[s - 1].side;
    return 0;
}

/* Rebuilds the index with at least twice as many slots as `n_for` entries. */
static int
bal_pins_reindex(struct bal_pins *p, size_t n_for)
{
    size_t size = BAL_PINS_MIN_SLOTS;
    uint32_t *slots;

    while (size < 2 * n_for)
        size *= 2;
    slots = calloc(size, sizeof(*slots));
    if (slots == NULL)
        return -1;
    free(p->slots);
    p->slots = slots;
    p->mask = size - 1;
    for (size_t i = 0; i < p->n; i++) {
        size_t j = (size_t)p->entries[i].hash & p->mask;

        while (p->slots[j] != 0)
            j = (j + 1) & p->mask;
        p->slots[j] = (uint32_t)(i + 1);
    }
    return 0;
}

/* Makes room for one more entry of `len` key bytes. */
static int
bal_pins_reserve(struct bal_pins *p, size_t len)
{
    if (p->n == p->cap) {
        size_t cap = p->cap == 0 ? 16 : XF_MIN(p->cap * 2, (size_t)BAL_PINS_MAX);
        struct bal_pin *e = realloc(p->entries, cap * sizeof(*e));

        if (e == NULL)
            return -1;
        p->entries = e;
        p->cap = cap;
    }
    if (p->keys_cap - p->keys_len < len) {
        size_t cap = XF_MAX(p->keys_cap * 2, p->keys_len + len + 256);
        char *k = realloc(p->keys, cap);

        if (k == NULL)
            return -1;
        p->keys = k;
        p->keys_cap = cap;
    }
    if (2 * (p->n + 1) > p->mask + 1)
        return bal_pins_reindex(p, p->n + 1);
    return 0;
}

int
bal_pins_set(struct bal_pins *p, const char *key, size_t len, enum cfg_cluster_id side,
             int *old_side, struct xf_err *err)
{
    uint64_t hash = XXH3_64bits(key, len);
    size_t slot;
    struct bal_pin *e;

    *old_side = -1;
    if (len == 0 || len > BAL_PIN_KEY_MAX) {
        xf_err_set(err, "a pinned key is 1 to %d bytes, got %zu", BAL_PIN_KEY_MAX, len);
        return -1;
    }
    slot = bal_pins_slot(p, key, len, hash);
    if (p->slots[slot] != 0) {
        e = &p->entries[p->slots[slot] - 1];
        *old_side = e->side;
        e->side = (uint8_t)side;
        return 0;
    }
    if (p->n >= BAL_PINS_MAX) {
        xf_err_set(err, "the pin table is full (%d pins); unpin some first", BAL_PINS_MAX);
        return -1;
    }
    if (bal_pins_reserve(p, len) == -1) {
        xf_err_set(err, "out of memory adding a pin");
        return -1;
    }
    e = &p->entries[p->n];
    e->hash = hash;
    e->off = (uint32_t)p->keys_len;
    e->len = (uint32_t)len;
    e->side = (uint8_t)side;
    memcpy(p->keys + p->keys_len, key, len);
    p->keys_len += len;
    p->n++;
    /* The index may have been rebuilt for the new size: find the key's empty slot again. */
    p->slots[bal_pins_slot(p, key, len, hash)] = (uint32_t)p->n;
    return 0;
}

struct bal_pins *
bal_pins_copy(const struct bal_pins *src, const char *skip, size_t skip_len)
{
    struct bal_pins *p = bal_pins_new();

    if (p == NULL)
        return NULL;
    for (size_t i = 0; i < bal_pins_count(src); i++) {
        const struct bal_pin *e = &src->entries[i];
        int old;

        if (skip != NULL && e->len == skip_len && memcmp(src->keys + e->off, skip, skip_len) == 0)
            continue;
        if (bal_pins_set(p, src->keys + e->off, e->len, (enum cfg_cluster_id)e->side, &old, NULL) ==
            -1) {
            bal_pins_unref(p);
            return NULL;
        }
    }
    return p;
}
