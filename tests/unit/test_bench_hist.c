/* tests/unit/test_bench_hist.c -- xfbench's latency histogram: buckets, percentiles, merging. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "bench/bench_xfbench.h"

/* The stated bound on a percentile's relative error. */
#define ERROR_BOUND 0.01

static struct bench_xfb_hist *
hist_new(void)
{
    struct bench_xfb_hist *h = malloc(sizeof(*h));

    cr_assert(ne(ptr, h, NULL));
    bench_xfb_hist_reset(h);
    return h;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* n values log-uniform between 50 ns and 20 s, like latencies of every order of magnitude. */
static uint64_t *
random_values(size_t n, uint64_t seed)
{
    uint64_t *v = malloc(n * sizeof(*v));
    struct bench_xfb_rng rng;

    cr_assert(ne(ptr, v, NULL));
    bench_xfb_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++)
        v[i] = (uint64_t)exp(log(50.0) + bench_xfb_rng_unit(&rng) * (log(20e9) - log(50.0)));
    return v;
}

TestSuite(bench_hist);

Test(bench_hist, percentiles_are_within_1_percent_of_a_sorted_reference)
{
    static const double qs[] = {0.0001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999, 1.0};
    const size_t n = 200000;

    for (uint64_t seed = 1; seed <= 5; seed++) {
        struct bench_xfb_hist *h = hist_new();
        uint64_t *v = random_values(n, seed);

        for (size_t i = 0; i < n; i++)
            bench_xfb_hist_record(h, v[i]);
        qsort(v, n, sizeof(*v), cmp_u64);
        for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
            size_t rank = (size_t)ceil(qs[k] * (double)n);
            uint64_t want = v[rank - 1], got = bench_xfb_hist_quantile(h, qs[k]);
            double err = fabs((double)got - (double)want) / (double)want;
            cr_assert(le(dbl, err, ERROR_BOUND),
                      "seed %llu q %g: histogram %llu, sorted reference %llu (error %.4f)",
                      (unsigned long long)seed, qs[k], (unsigned long long)got,
                      (unsigned long long)want, err);
        }
        cr_assert(eq(u64, h->min, v[0]));
        cr_assert(eq(u64, h->max, v[n - 1]));
        cr_assert(eq(u64, h->count, n));
        free(v);
        free(h);
    }
}

Test(bench_hist, a_few_values_give_their_exact_percentiles_when_small)
{
    struct bench_xfb_hist *h = hist_new();

    for (uint64_t v = 1; v <= 100; v++)
        bench_xfb_hist_record(h, v);
    cr_assert(eq(u64, bench_xfb_hist_quantile(h, 0.5), 50));
    cr_assert(eq(u64, bench_xfb_hist_quantile(h, 0.99), 99));
    cr_assert(eq(u64, bench_xfb_hist_quantile(h, 1.0), 100));
    cr_assert(eq(u64, bench_xfb_hist_mean(h), 50));
    free(h);
}

Test(bench_hist, buckets_tile_the_range_and_are_at_most_1_128th_wide)
{
    for (size_t i = 0; i + 1 < BENCH_XFB_HIST_BUCKETS; i++) {
        uint64_t lo = bench_xfb_hist_low(i), hi = bench_xfb_hist_high(i);

        cr_assert(le(u64, lo, hi), "bucket %zu", i);
        cr_assert(eq(u64, bench_xfb_hist_low(i + 1), hi + 1), "gap after bucket %zu", i);
        cr_assert(eq(sz, bench_xfb_hist_index(lo), i));
        cr_assert(eq(sz, bench_xfb_hist_index(hi), i));
        if (i < BENCH_XFB_HIST_LINEAR)
            cr_assert(eq(u64, lo, hi), "bucket %zu is not exact", i);
        else
            cr_assert(le(dbl, (double)(hi - lo + 1) / (double)lo, 1.0 / 128 + 1e-12),
                      "bucket %zu [%llu, %llu] too wide", i, (unsigned long long)lo,
                      (unsigned long long)hi);
    }
}

Test(bench_hist, values_beyond_the_top_land_in_the_last_bucket_and_keep_their_max)
{
    struct bench_xfb_hist *h = hist_new();
    uint64_t huge = UINT64_C(1) << 50;

    bench_xfb_hist_record(h, 1000);
    bench_xfb_hist_record(h, huge);
    cr_assert(eq(sz, bench_xfb_hist_index(huge), BENCH_XFB_HIST_BUCKETS - 1));
    cr_assert(eq(u64, bench_xfb_hist_quantile(h, 1.0), huge));
    cr_assert(eq(u64, h->max, huge));
    free(h);
}

Test(bench_hist, an_empty_histogram_reports_zero)
{
    struct bench_xfb_hist *h = hist_new();

    cr_assert(eq(u64, bench_xfb_hist_quantile(h, 0.5), 0));
    cr_assert(eq(u64, bench_xfb_hist_quantile(h, 0.99), 0));
    cr_assert(eq(u64, bench_xfb_hist_mean(h), 0));
    free(h);
}

Test(bench_hist, merging_two_halves_equals_recording_everything_in_one)
{
    const size_t n = 50000;
    uint64_t *v = random_values(n, 42);
    struct bench_xfb_hist *a = hist_new(), *b = hist_new(), *all = hist_new();

    for (size_t i = 0; i < n; i++) {
        bench_xfb_hist_record(i % 2 ? a : b, v[i]);
        bench_xfb_hist_record(all, v[i]);
    }
    bench_xfb_hist_merge(a, b);
    cr_assert(eq(int, memcmp(a, all, sizeof(*a)), 0));
    free(v);
    free(a);
    free(b);
    free(all);
}
