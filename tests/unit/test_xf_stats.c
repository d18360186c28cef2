/* tests/unit/test_xf_stats.c -- the latency histograms, the seconds the control thread takes from
 * the workers, and the preview's buckets and keys. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdlib.h>
#include <string.h>

#include "common/xf_stats.h"

Test(xf_stats, buckets_are_monotone_and_within_a_32nd_of_the_value)
{
    unsigned prev = 0;

    for (uint64_t us = 0; us < 50000000; us += 1 + us / 300) {
        unsigned b = xf_lat_bucket(us);
        uint64_t low = xf_lat_bucket_low(b), mid = xf_lat_bucket_mid(b);
        uint64_t d = mid > us ? mid - us : us - mid;

        cr_assert(ge(uint, b, prev), "bucket of %llu went down", (unsigned long long)us);
        cr_assert(le(u64, low, us), "low %llu above %llu", (unsigned long long)low,
                  (unsigned long long)us);
        cr_assert(lt(u64, us, xf_lat_bucket_low(b + 1)), "%llu past its bucket",
                  (unsigned long long)us);
        cr_assert(le(u64, us - low, us / 32 + 1), "bucket of %llu starts at %llu",
                  (unsigned long long)us, (unsigned long long)low);
        /* HDR-like: the middle is within about 1.6 % of anything in the bucket. */
        cr_assert(le(u64, d, us / 60 + 1), "middle %llu far from %llu", (unsigned long long)mid,
                  (unsigned long long)us);
        prev = b;
    }
    cr_assert(eq(uint, xf_lat_bucket(UINT64_MAX), XF_LAT_BUCKETS - 1));
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Two workers' seconds, taken by the control thread, give the percentiles of all their values. */
Test(xf_stats, percentiles_of_harvested_seconds_match_a_sorted_reference)
{
    static struct xf_stats w[2];
    static struct xf_mon m;
    static struct xf_win win;
    static uint64_t ref[20000];
    const struct xf_stats *ws[2] = {&w[0], &w[1]};
    const double q[] = {0.5, 0.9, 0.99};
    uint64_t out[3];

    srand(7);
    for (size_t i = 0; i < 20000; i++) {
        ref[i] = 100 + (uint64_t)(rand() % 50000);
        xf_stats_second(&w[i % 2].cluster[1], 1000 + i % 5, i % 10 == 0, ref[i]);
    }
    xf_mon_harvest(&m, ws, 2, 1005, 2500, 0);
    xf_mon_window(&m, 1, 1005, 30, &win);
    cr_assert(eq(u64, win.requests, 20000));
    cr_assert(eq(u64, win.errors, 2000));
    qsort(ref, 20000, sizeof(ref[0]), cmp_u64);
    cr_assert(eq(u64, xf_win_percentiles(&win, q, 3, out), 20000));
    for (int k = 0; k < 3; k++) {
        uint64_t want = ref[(size_t)(q[k] * 20000) - 1];
        uint64_t d = out[k] > want ? out[k] - want : want - out[k];

        cr_assert(le(u64, d, want / 30), "p%g %llu far from %llu", q[k] * 100,
                  (unsigned long long)out[k], (unsigned long long)want);
    }
    /* x had nothing. */
    xf_mon_window(&m, 0, 1005, 30, &win);
    cr_assert(eq(u64, win.requests, 0));
    cr_assert(eq(u64, xf_win_percentiles(&win, q, 1, out), 0));
    cr_assert(eq(u64, out[0], 0));
}

Test(xf_stats, a_window_holds_only_its_seconds_and_a_second_is_taken_once)
{
    static struct xf_stats w;
    static struct xf_mon m;
    static struct xf_win win;
    const struct xf_stats *ws[1] = {&w};

    xf_stats_second(&w.cluster[0], 100, false, 5000);
    xf_stats_second(&w.cluster[0], 101, true, UINT64_MAX); /* cut: counted, no latency */
    xf_mon_harvest(&m, ws, 1, 102, 0, 0);
    xf_mon_harvest(&m, ws, 1, 102, 0, 0); /* again: nothing new */
    xf_mon_window(&m, 0, 102, 2, &win);
    cr_assert(eq(u64, win.requests, 2));
    cr_assert(eq(u64, win.errors, 1));
    cr_assert(eq(u64, win.n, 1));
    /* The window of the last second only. */
    xf_mon_window(&m, 0, 102, 1, &win);
    cr_assert(eq(u64, win.requests, 1));
    cr_assert(eq(u64, win.n, 0));
    /* The current second is not taken before it is over. */
    xf_stats_second(&w.cluster[0], 102, false, 70);
    xf_mon_harvest(&m, ws, 1, 102, 0, 0);
    xf_mon_window(&m, 0, 103, 1, &win);
    cr_assert(eq(u64, win.requests, 0));
    xf_mon_harvest(&m, ws, 1, 103, 0, 0);
    xf_mon_window(&m, 0, 103, 1, &win);
    cr_assert(eq(u64, win.requests, 1));
    /* A worker's slot reused XF_SEC_SLOTS seconds later starts empty. */
    xf_stats_second(&w.cluster[0], 100 + XF_SEC_SLOTS, false, 70);
    cr_assert(eq(u32, w.cluster[0].sec[100 % XF_SEC_SLOTS].requests, 1));
}

Test(xf_stats, fixed_buckets_count_each_time_once_at_its_upper_bound)
{
    struct xf_fixhist h = {0};

    xf_fixhist_add(&h, 1000);     /* le 1ms */
    xf_fixhist_add(&h, 1001);     /* le 2.5ms */
    xf_fixhist_add(&h, 20000000); /* +Inf */
    cr_assert(eq(u64, h.b[0], 1));
    cr_assert(eq(u64, h.b[1], 1));
    cr_assert(eq(u64, h.b[XF_FIX_BUCKETS], 1));
    cr_assert(eq(u64, h.sum_us, 20002001));
}

/* Keys are counted once whichever worker saw them; requests by bucket; only moving buckets. */
Test(xf_stats, preview_counts_distinct_keys_and_requests_of_the_moving_buckets)
{
    struct xf_preview *p[2] = {calloc(1, sizeof(struct xf_preview)),
                               calloc(1, sizeof(struct xf_preview))};
    struct xf_preview_sum sum;
    const struct xf_preview *cp[2];

    cr_assert(ne(ptr, p[0], NULL));
    cr_assert(ne(ptr, p[1], NULL));
    cp[0] = p[0];
    cp[1] = p[1];
    /* A heavy key in bucket 1500 (90 requests, seen by both workers), 10 light keys in 8000. */
    for (int i = 0; i < 90; i++)
        xf_preview_count(p[i % 2], 777, 1500, 1000);
    for (uint64_t k = 0; k < 10; k++)
        xf_preview_count(p[0], 1000 + k, 8000, 1001);
    cr_assert(eq(int, xf_preview_sum(cp, 2, 1002, 1000, 2000, &sum), 0));
    cr_assert(eq(u64, sum.requests, 100));
    cr_assert(eq(u64, sum.requests_moved, 90));
    cr_assert(eq(u64, sum.keys, 11));
    cr_assert(eq(u64, sum.keys_moved, 1));
    /* Down to 0: bucket 1500 stays on x's side of [0, 1000)? No: [0, 1000) moves only. */
    cr_assert(eq(int, xf_preview_sum(cp, 2, 1002, 1000, 0, &sum), 0));
    cr_assert(eq(u64, sum.requests_moved, 0));
    cr_assert(eq(u64, sum.keys_moved, 0));
    cr_assert(eq(int, xf_preview_sum(cp, 2, 1002, 1000, 9000, &sum), 0));
    cr_assert(eq(u64, sum.requests_moved, 100));
    cr_assert(eq(u64, sum.keys_moved, 11));
    /* Five minutes later they are forgotten. */
    cr_assert(eq(int, xf_preview_sum(cp, 2, 1001 + XF_PREVIEW_WINDOW_S + 31, 1000, 9000, &sum), 0));
    cr_assert(eq(u64, sum.requests, 0));
    cr_assert(eq(u64, sum.keys, 0));
    free(p[0]);
    free(p[1]);
}

Test(xf_stats, node_counters_merge_and_clear)
{
    struct xf_node_stats a = {0}, b = {0};

    a.requests = 3;
    a.responses[2] = 2;
    a.failures[XF_FAIL_TIMEOUT] = 1;
    a.bytes_out = 10;
    xf_fixhist_add(&a.total, 3000);
    xf_node_stats_merge(&b, &a);
    xf_node_stats_merge(&b, &a);
    cr_assert(eq(u64, b.requests, 6));
    cr_assert(eq(u64, b.responses[2], 4));
    cr_assert(eq(u64, b.failures[XF_FAIL_TIMEOUT], 2));
    cr_assert(eq(u64, b.bytes_out, 20));
    cr_assert(eq(u64, b.total.b[2], 2));
    xf_node_stats_clear(&b);
    cr_assert(eq(u64, b.requests, 0));
    cr_assert(eq(u64, b.total.sum_us, 0));
}
