/* tests/unit/test_xf_stats.c -- the latency window of the traffic counters. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdlib.h>
#include <string.h>

#include "common/xf_stats.h"

Test(xf_stats, buckets_are_monotone_and_within_an_eighth_of_the_value)
{
    unsigned prev = 0;

    for (uint64_t us = 0; us < 5000000; us += 1 + us / 50) {
        unsigned b = xf_lat_bucket(us);
        uint64_t low = xf_lat_bucket_low(b);
        cr_assert(ge(uint, b, prev), "bucket of %llu went down", (unsigned long long)us);
        cr_assert(le(u64, low, us), "low %llu above %llu", (unsigned long long)low,
                  (unsigned long long)us);
        cr_assert(le(u64, us - low, us / 8 + 1), "bucket of %llu starts at %llu",
                  (unsigned long long)us, (unsigned long long)low);
        prev = b;
    }
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

Test(xf_stats, percentiles_match_a_sorted_reference_within_the_bucket_width)
{
    static struct xf_cluster_stats cs;
    static uint64_t ref[20000];
    const double q[] = {0.5, 0.9, 0.99};
    uint64_t out[3];

    srand(7);
    for (size_t i = 0; i < 20000; i++) {
        ref[i] = 100 + (uint64_t)(rand() % 50000);
        xf_stats_latency(&cs, ref[i], 1000 + i % 30);
    }
    qsort(ref, 20000, sizeof(ref[0]), cmp_u64);
    cr_assert(eq(u64, xf_stats_percentiles(&cs, 1030, q, 3, out), 20000));
    for (int k = 0; k < 3; k++) {
        uint64_t want = ref[(size_t)(q[k] * 20000) - 1];
        cr_assert(le(u64, out[k], want), "p%g %llu above %llu", q[k] * 100,
                  (unsigned long long)out[k], (unsigned long long)want);
        cr_assert(ge(u64, out[k], want - want / 8 - 1), "p%g %llu far below %llu", q[k] * 100,
                  (unsigned long long)out[k], (unsigned long long)want);
    }
}

Test(xf_stats, the_window_forgets_responses_older_than_a_minute)
{
    static struct xf_cluster_stats cs;
    const double q[] = {0.5};
    uint64_t out[1];

    xf_stats_latency(&cs, 5000, 100);
    cr_assert(eq(u64, xf_stats_percentiles(&cs, 159, q, 1, out), 1));
    cr_assert(eq(u64, xf_stats_percentiles(&cs, 160, q, 1, out), 0));
    cr_assert(eq(u64, out[0], 0));
    /* A slot reused a minute later starts empty. */
    xf_stats_latency(&cs, 70, 160);
    cr_assert(eq(u64, xf_stats_percentiles(&cs, 160, q, 1, out), 1));
    cr_assert(le(u64, out[0], 70));
}
