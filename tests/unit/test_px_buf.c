/* tests/unit/test_px_buf.c -- the data path's byte buffers. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/px.h"

Test(px_buf, holds_no_memory_until_used_and_after_free)
{
    struct px_buf b = {0};
    cr_assert(eq(ptr, b.data, NULL));
    cr_assert(eq(int, px_buf_append(&b, "abc", 3), 0));
    cr_assert(eq(sz, px_buf_len(&b), 3));
    px_buf_free(&b);
    cr_assert(eq(ptr, b.data, NULL));
    cr_assert(eq(sz, px_buf_len(&b), 0));
}

Test(px_buf, keeps_order_across_consume_and_growth)
{
    struct px_buf b = {0};
    char chunk[1000];
    size_t total = 0;

    for (int i = 0; i < 100; i++) {
        memset(chunk, 'a' + i % 26, sizeof(chunk));
        px_buf_append(&b, chunk, sizeof(chunk));
        total += sizeof(chunk);
        if (i % 3 == 0) {
            px_buf_consume(&b, 500);
            total -= 500;
        }
    }
    cr_assert(eq(sz, px_buf_len(&b), total));
    /* 34 consumes of 500 bytes took the first 17 chunks: the head is chunk 17's letter. */
    cr_assert(eq(chr, px_buf_head(&b)[0], 'a' + 17 % 26));
    px_buf_free(&b);
}

Test(px_buf, printf_grows_past_its_first_reservation)
{
    struct px_buf b = {0};
    /* Longer than the first block (16 KiB): the second vsnprintf, into a larger block, runs. */
    static char big[40000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cr_assert(eq(int, px_buf_printf(&b, "<%s>", big), 0));
    cr_assert(eq(sz, px_buf_len(&b), sizeof(big) + 1));
    cr_assert(eq(chr, px_buf_head(&b)[0], '<'));
    cr_assert(eq(chr, px_buf_head(&b)[20000], 'x'));
    cr_assert(eq(chr, px_buf_head(&b)[px_buf_len(&b) - 1], '>'));
    cr_assert(gt(sz, b.cap, (size_t)16384), "the buffer never grew past its first block");
    px_buf_free(&b);
}

/* Fills n bytes with the pattern 'a' + (offset + i) % 26. */
static void
fill(char *p, size_t n, size_t offset)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (char)('a' + (offset + i) % 26);
}

/* Whether the buffer holds the pattern from `offset` on. */
static bool
holds_pattern(const struct px_buf *b, size_t offset)
{
    for (size_t i = 0; i < px_buf_len(b); i++)
        if (px_buf_head(b)[i] != (char)('a' + (offset + i) % 26))
            return false;
    return true;
}

Test(px_buf, compacts_in_place_when_the_consumed_front_makes_room)
{
    struct px_buf b = {0};
    static char p[16384];
    char *data;

    fill(p, sizeof(p), 0);
    cr_assert(eq(int, px_buf_append(&b, p, 16000), 0));
    cr_assert(eq(sz, b.cap, (size_t)16384));
    data = b.data;
    px_buf_consume(&b, 8000);
    /* 384 bytes free at the end, 8384 in all: the bytes move to the front, no new block. */
    fill(p, 5000, 16000);
    cr_assert(eq(int, px_buf_append(&b, p, 5000), 0));
    cr_assert(eq(ptr, b.data, data), "a new block was taken instead of moving the bytes");
    cr_assert(eq(sz, b.start, (size_t)0));
    cr_assert(eq(sz, px_buf_len(&b), (size_t)13000));
    cr_assert(holds_pattern(&b, 8000));
    px_buf_free(&b);
}

Test(px_buf, grows_into_a_new_block_when_the_front_was_consumed)
{
    struct px_buf b = {0};
    static char p[16384];

    fill(p, sizeof(p), 0);
    cr_assert(eq(int, px_buf_append(&b, p, sizeof(p)), 0));
    px_buf_consume(&b, 1);
    /* Full but for the consumed byte: 2 more bytes need a larger block, the rest copied over. */
    fill(p, 2, 16384);
    cr_assert(eq(int, px_buf_append(&b, p, 2), 0));
    cr_assert(eq(sz, b.cap, (size_t)32768));
    cr_assert(eq(sz, b.start, (size_t)0));
    cr_assert(eq(sz, px_buf_len(&b), (size_t)16385));
    cr_assert(holds_pattern(&b, 1));
    px_buf_free(&b);
}

Test(px_buf, a_failed_reservation_is_sticky_and_nothing_is_sent)
{
    struct px_buf b = {0};
    int sv[2];
    char got[16];

    cr_assert(eq(int, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0));
    cr_assert(eq(int, px_buf_append(&b, "GET / HTTP/1.1\r\n", 16), 0));
    /* More than any allocator gives: the reservation fails and the buffer with it. */
    cr_assert(eq(ptr, px_buf_reserve(&b, SIZE_MAX / 2), NULL));
    cr_assert(b.failed);
    /* A small append after the failure is refused: no gap in the middle of a head. */
    cr_assert(eq(int, px_buf_append(&b, "Host: a\r\n\r\n", 11), -1));
    cr_assert(eq(int, px_buf_printf(&b, "%d", 42), -1));
    cr_assert(eq(sz, px_buf_len(&b), (size_t)16));
    errno = 0;
    cr_assert(eq(int, px_buf_send(&b, sv[0], NULL), PX_CLOSE));
    cr_assert(eq(int, errno, ENOMEM));
    cr_assert(eq(long, (long)recv(sv[1], got, sizeof(got), 0), -1L), "bytes of a failed buffer "
                                                                     "were sent");
    px_buf_free(&b);
    cr_assert(not(b.failed), "px_buf_free leaves a usable buffer");
    cr_assert(eq(int, px_buf_append(&b, "ok", 2), 0));
    cr_assert(eq(int, px_buf_send(&b, sv[0], NULL), PX_OK));
    px_buf_free(&b);
    close(sv[0]);
    close(sv[1]);
}

Test(px_buf, moving_a_failed_buffer_fails_the_destination)
{
    struct px_buf src = {0}, dst = {0};

    cr_assert(eq(int, px_buf_append(&src, "abc", 3), 0));
    cr_assert(eq(ptr, px_buf_reserve(&src, SIZE_MAX / 2), NULL));
    cr_assert(eq(int, px_buf_move(&dst, &src), -1));
    cr_assert(dst.failed);
    cr_assert(not(src.failed));
    cr_assert(eq(sz, px_buf_len(&src), (size_t)0));
    px_buf_free(&dst);
}

Test(px_buf, send_reports_would_block_and_keeps_the_rest)
{
    int sv[2];
    struct px_buf b = {0};
    static char chunk[1 << 20];
    uint64_t sent = 0;

    cr_assert(eq(int, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0));
    px_buf_append(&b, chunk, sizeof(chunk));
    cr_assert(eq(int, px_buf_send(&b, sv[0], &sent), PX_AGAIN));
    cr_assert(gt(u64, sent, 0));
    cr_assert(eq(sz, px_buf_len(&b), sizeof(chunk) - sent));
    close(sv[1]);
    while (px_buf_send(&b, sv[0], &sent) == PX_AGAIN)
        ;
    cr_assert(eq(int, px_buf_send(&b, sv[0], &sent), px_buf_len(&b) ? PX_CLOSE : PX_OK));
    close(sv[0]);
    px_buf_free(&b);
}

Test(px_buf, a_first_block_given_back_is_taken_by_the_next_buffer_of_the_thread)
{
    struct px_buf a = {0}, b = {0};
    char *first;

    px_buf_cache_drain();
    cr_assert(eq(int, px_buf_append(&a, "head", 4), 0));
    cr_assert(eq(sz, a.cap, (size_t)16384));
    first = a.data;
    px_buf_free(&a);
    cr_assert(eq(ptr, a.data, NULL));
    /* The next output buffer reuses the block: no malloc/free pair per request. */
    cr_assert(eq(int, px_buf_append(&b, "next", 4), 0));
    cr_assert(eq(ptr, b.data, first));
    cr_assert(eq(int, memcmp(px_buf_head(&b), "next", 4), 0));
    px_buf_free(&b);
    px_buf_cache_drain();
}

/* After a burst, px_buf_trim keeps the `keep` blocks used last and gives the others' memory back
 * to the kernel: a block given back reads as zeros when next taken (the pages were dropped), a
 * block kept still holds what it held. Under the sanitizers blocks are malloc'd and the trimmed
 * ones freed instead, so only the kept ones are checked there. */
Test(px_buf, trim_keeps_the_last_blocks_and_gives_the_others_back)
{
    struct px_buf b[6] = {{0}};
    char *data[6];

    px_buf_cache_drain();
    for (int i = 0; i < 6; i++) {
        cr_assert(eq(int, px_buf_append(&b[i], "burst", 5), 0));
        data[i] = b[i].data;
    }
    for (int i = 0; i < 6; i++)
        px_buf_free(&b[i]); /* b[5]'s block is on top */
    px_buf_trim(2);
    for (int i = 5; i >= 0; i--) {
        cr_assert(eq(int, px_buf_append(&b[i], "x", 1), 0));
        if (i >= 4) {
            cr_assert(eq(ptr, b[i].data, data[i]), "a kept block was not reused first");
            cr_assert(eq(int, memcmp(b[i].data + 1, "urst", 4), 0), "a kept block was dropped");
        }
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
        else {
            static const char zeros[4] = {0};

            cr_assert(eq(ptr, b[i].data, data[i]));
            cr_assert(eq(int, memcmp(b[i].data + 1, zeros, 4), 0),
                      "block %d still holds its bytes: not given back", i);
        }
#endif
    }
    for (int i = 0; i < 6; i++)
        px_buf_free(&b[i]);
    px_buf_cache_drain();
}

/* Whether the block at p was given back to the kernel: its bytes after the first read as zeros
 * (it is taken again with "x" appended; it held "burst"). Always false under the sanitizers,
 * whose blocks are malloc'd and freed instead. */
static bool
test_px_buf_dropped(const char *p)
{
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    static const char zeros[4] = {0};

    return memcmp(p + 1, zeros, 4) == 0;
#else
    XF_UNUSED(p);
    return false;
#endif
}

/* px_buf_trim_unused (once a second) gives back only the blocks no buffer took since its last
 * run, and never the `keep` used last: a peak's surplus goes back while traffic goes on. */
Test(px_buf, trim_unused_gives_back_only_the_blocks_not_taken_since_the_last_run)
{
    struct px_buf b[6] = {{0}};
    char *data[6];

    px_buf_cache_drain();
    for (int i = 0; i < 6; i++) {
        cr_assert(eq(int, px_buf_append(&b[i], "burst", 5), 0));
        data[i] = b[i].data;
    }
    for (int i = 0; i < 6; i++)
        px_buf_free(&b[i]); /* b[5]'s block on top, b[0]'s at the bottom */
    px_buf_trim_unused(1);  /* the first run only starts the count: all six were just used */
    /* In this second, four blocks are taken at once (b[5]..b[2]'s), then given back. */
    for (int i = 5; i >= 2; i--)
        cr_assert(eq(int, px_buf_append(&b[i], "burst", 5), 0));
    for (int i = 2; i <= 5; i++)
        px_buf_free(&b[i]);
    px_buf_trim_unused(1); /* b[0] and b[1]'s blocks were not needed: given back */
    for (int i = 5; i >= 0; i--) {
        cr_assert(eq(int, px_buf_append(&b[i], "x", 1), 0));
        if (i >= 2) {
            cr_assert(eq(ptr, b[i].data, data[i]), "block %d, used this second, not kept", i);
            cr_assert(not(test_px_buf_dropped(b[i].data)), "block %d, used this second, dropped",
                      i);
        }
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
        else {
            /* Under the sanitizers the given-back blocks are freed: new ones come instead. */
            cr_assert(eq(ptr, b[i].data, data[i]));
            cr_assert(test_px_buf_dropped(b[i].data), "block %d, unused, still resident", i);
        }
#endif
    }
    for (int i = 0; i < 6; i++)
        px_buf_free(&b[i]);
    /* A run after a quiet second gives back all but `keep`. */
    px_buf_trim_unused(1);
    px_buf_trim_unused(1);
    for (int i = 0; i < 6; i++)
        cr_assert(eq(int, px_buf_append(&b[i], "x", 1), 0));
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    /* b[0] took the top block, kept: it still holds "xurst" (b[5]'s "burst", then "x"). */
    cr_assert(eq(int, memcmp(b[0].data, "xurst", 5), 0));
    for (int i = 1; i < 6; i++)
        cr_assert(eq(int, b[i].data[1], 0), "block %d was kept", i);
#endif
    for (int i = 0; i < 6; i++)
        px_buf_free(&b[i]);
    px_buf_cache_drain();
}
