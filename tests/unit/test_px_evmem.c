/* tests/unit/test_px_evmem.c -- libevent's per-descriptor entries kept out of malloc's heap. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <malloc.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "proxy/px.h"

#define TEST_PX_EVMEM_PAIRS 200

static __attribute__((unused)) void
test_px_evmem_on_event(evutil_socket_t fd, short what, void *arg)
{
    XF_UNUSED(fd);
    XF_UNUSED(what);
    XF_UNUSED(arg);
}

/*
 * Each descriptor number libevent first sees takes an entry that lives as long as the event base;
 * in the heap those entries pin the pages of a burst's connections (px_evmem.c). After
 * px_evmem_init, adding events on 400 new descriptors grows malloc's heap by libevent's array of
 * pointers alone (8 bytes a descriptor, doubling), not by an entry each (a 32-byte chunk). Each
 * Criterion test runs in a process of its own, so libevent has allocated nothing before.
 */
Test(px_evmem, libevent_entries_for_new_descriptors_do_not_grow_the_heap)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    cr_skip("under the sanitizers libevent allocates with malloc (px_evmem.c)");
#else
    static struct event evs[2 * TEST_PX_EVMEM_PAIRS];
    int fds[2 * TEST_PX_EVMEM_PAIRS];
    struct event_base *base;
    size_t before, grown;

    px_evmem_init();
    base = event_base_new();
    cr_assert(not(eq(ptr, base, NULL)));
    for (int i = 0; i < TEST_PX_EVMEM_PAIRS; i++)
        cr_assert(eq(int, socketpair(AF_UNIX, SOCK_STREAM, 0, fds + 2 * i), 0));
    before = mallinfo2().uordblks;
    for (int i = 0; i < 2 * TEST_PX_EVMEM_PAIRS; i++) {
        event_assign(&evs[i], base, fds[i], EV_READ, test_px_evmem_on_event, NULL);
        cr_assert(eq(int, event_add(&evs[i], NULL), 0));
    }
    grown = mallinfo2().uordblks - before;
    cr_assert(lt(sz, grown / (2 * TEST_PX_EVMEM_PAIRS), (size_t)24),
              "the heap grew %zu bytes for %d descriptors", grown, 2 * TEST_PX_EVMEM_PAIRS);
    /* The events still work: one fires. */
    cr_assert(eq(int, (int)write(fds[1], "x", 1), 1));
    cr_assert(eq(int, event_base_loop(base, EVLOOP_ONCE), 0));
    cr_assert(not(event_pending(&evs[0], EV_READ, NULL)), "the readable one did not fire");
    for (int i = 0; i < 2 * TEST_PX_EVMEM_PAIRS; i++) {
        event_del(&evs[i]);
        close(fds[i]);
    }
    event_base_free(base);
#endif
}
