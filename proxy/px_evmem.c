/* proxy/px_evmem.c -- libevent's small allocations, kept out of malloc's heap. */
#include "proxy/px.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <event2/event.h>

/*
 * libevent allocates a 16-byte entry for each descriptor number the first time an event is added
 * for it, and frees it only with the event base. In malloc's heap those entries land between the
 * connections of a burst (px_client, px_upstream, px_txn), and once the connections are gone every
 * page still holds one: malloc_trim cannot give the page back, and what a burst took stays
 * resident. Here libevent's allocations of at most PX_EVMEM_SLOT bytes take slots of a region of
 * their own instead, so that the heap pages a burst used hold nothing once it is over.
 *
 * The region is address space reserved once (MAP_NORESERVE: a page costs memory once touched),
 * carved in order, freed slots reused first. When it is full, allocations go to malloc again. A
 * lock guards it: libevent allocates from every thread, but rarely (not per request).
 */
#define PX_EVMEM_SLOT  32u
#define PX_EVMEM_SPACE ((size_t)64 << 20) /* 2 Mi slots: 8 workers x 250,000 descriptors */

/* Under the sanitizers, malloc for everything: they check each allocation. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define PX_EVMEM_OFF 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PX_EVMEM_OFF 1
#endif

#ifndef PX_EVMEM_OFF
struct px_evmem_slot {
    struct px_evmem_slot *next; /* while free */
};

static struct {
    pthread_mutex_t lock;
    char *base; /* the region; NULL: not in use */
    size_t carved;
    struct px_evmem_slot *free;
} px_evmem = {.lock = PTHREAD_MUTEX_INITIALIZER};

static bool
px_evmem_owns(const void *p)
{
    return px_evmem.base != NULL && (const char *)p >= px_evmem.base &&
           (const char *)p < px_evmem.base + PX_EVMEM_SPACE;
}

/* A slot, or NULL when the region is full. */
static void *
px_evmem_slot_get(void)
{
    void *p = NULL;

    pthread_mutex_lock(&px_evmem.lock);
    if (px_evmem.free != NULL) {
        p = px_evmem.free;
        px_evmem.free = px_evmem.free->next;
    } else if (px_evmem.carved < PX_EVMEM_SPACE) {
        p = px_evmem.base + px_evmem.carved;
        px_evmem.carved += PX_EVMEM_SLOT;
    }
    pthread_mutex_unlock(&px_evmem.lock);
    return p;
}

static void *
px_evmem_malloc(size_t n)
{
    void *p;

    if (n <= PX_EVMEM_SLOT && (p = px_evmem_slot_get()) != NULL)
        return p;
    return malloc(n);
}

static void
px_evmem_free(void *p)
{
    struct px_evmem_slot *s = p;

    if (!px_evmem_owns(p)) {
        free(p);
        return;
    }
    pthread_mutex_lock(&px_evmem.lock);
    s->next = px_evmem.free;
    px_evmem.free = s;
    pthread_mutex_unlock(&px_evmem.lock);
}

static void *
px_evmem_realloc(void *p, size_t n)
{
    void *q;

    if (p == NULL)
        return px_evmem_malloc(n);
    if (!px_evmem_owns(p))
        return realloc(p, n);
    if (n <= PX_EVMEM_SLOT)
        return p;
    q = malloc(n);
    if (q == NULL)
        return NULL;
    memcpy(q, p, PX_EVMEM_SLOT);
    px_evmem_free(p);
    return q;
}

#endif

void
px_evmem_init(void)
{
#ifndef PX_EVMEM_OFF
    void *r = mmap(NULL, PX_EVMEM_SPACE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

    if (r == MAP_FAILED)
        return; /* libevent keeps malloc */
    px_evmem.base = r;
    event_set_mem_functions(px_evmem_malloc, px_evmem_realloc, px_evmem_free);
#endif
}
