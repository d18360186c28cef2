/* tests/unit/test_px_buf.c -- the data path's byte buffers. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
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
    char big[5000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cr_assert(eq(int, px_buf_printf(&b, "<%s>", big), 0));
    cr_assert(eq(sz, px_buf_len(&b), sizeof(big) + 1));
    cr_assert(eq(chr, px_buf_head(&b)[px_buf_len(&b) - 1], '>'));
    px_buf_free(&b);
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
