/* tests/unit/test_bench_gen.c -- xfbench's rate schedule, split keys and Zipf draws. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "bench/bench_xfbench.h"

TestSuite(bench_gen);

Test(bench_gen, requests_at_1000_per_s_are_due_every_millisecond)
{
    struct bench_xfb_rate r = {.start_ns = 5000, .rate_milli = 1000 * 1000};

    for (uint64_t i = 0; i < 10000; i++)
        cr_assert(eq(u64, bench_xfb_rate_due(&r, i), 5000 + i * 1000000u));
}

Test(bench_gen, any_rate_fits_exactly_r_requests_in_each_second)
{
    static const uint64_t rates_milli[] = {500, 3000, 7000, 1000000, 33333333, 999999999};

    for (size_t k = 0; k < sizeof(rates_milli) / sizeof(rates_milli[0]); k++) {
        struct bench_xfb_rate r = {.start_ns = 0, .rate_milli = rates_milli[k]};
        uint64_t prev = 0, in_first_10s = 0, backwards = 0;

        for (uint64_t i = 0;; i++) {
            uint64_t due = bench_xfb_rate_due(&r, i);
            backwards += due < prev;
            prev = due;
            if (due >= UINT64_C(10000000000))
                break;
            in_first_10s++;
        }
        cr_assert(eq(u64, backwards, 0), "rate %.3f/s: not monotone",
                  (double)rates_milli[k] / 1000);
        /* R requests/s: in 10 s, 10 R of them (rounded up: request 0 is due at 0). */
        cr_assert(eq(u64, in_first_10s, (rates_milli[k] * 10 + 999) / 1000),
                  "rate %.3f/s: %llu in 10 s", (double)rates_milli[k] / 1000,
                  (unsigned long long)in_first_10s);
    }
}

Test(bench_gen, connections_share_the_schedule_without_gaps_or_overlaps)
{
    /* Connection k of C sends numbers k, k + C, ...: together they are 0, 1, 2, ... once each. */
    struct bench_xfb_rate r = {.start_ns = 0, .rate_milli = 250 * 1000};
    const uint64_t conns = 7, per = 100;
    unsigned char *seen = calloc(conns * per, 1);

    cr_assert(ne(ptr, seen, NULL));
    for (uint64_t k = 0; k < conns; k++) {
        for (uint64_t j = 0; j < per; j++) {
            uint64_t i = k + j * conns;
            cr_assert(eq(u64, bench_xfb_rate_due(&r, i), i * 4000000u));
            seen[i]++;
        }
    }
    for (uint64_t i = 0; i < conns * per; i++)
        cr_assert(eq(int, seen[i], 1));
    free(seen);
}

Test(bench_gen, uniform_keys_cover_1_to_n_evenly)
{
    struct bench_xfb_keys k = {.n = 100};
    struct bench_xfb_rng rng;
    uint64_t count[101] = {0};
    const uint64_t draws = 1000000;

    bench_xfb_rng_seed(&rng, 7);
    for (uint64_t i = 0; i < draws; i++) {
        uint64_t id = bench_xfb_keys_draw(&k, &rng);
        cr_assert(ge(u64, id, 1));
        cr_assert(le(u64, id, 100));
        count[id]++;
    }
    /* 10,000 expected per key; the standard deviation is about 100: 5 % is 5 sigma. */
    for (int id = 1; id <= 100; id++)
        cr_assert(epsilon_eq(dbl, (double)count[id], 10000.0, 500.0), "key %d drawn %llu times", id,
                  (unsigned long long)count[id]);
}

/* Draws `draws` Zipf ranks over n with exponent s; checks ranks 1..10 against k^-s / H(n, s). */
static void
check_zipf(uint64_t n, double s, uint64_t draws, double rel_tol)
{
    struct bench_xfb_keys k = {.n = n, .zipf = 1};
    struct bench_xfb_rng rng;
    uint64_t count[11] = {0};
    double h = 0;

    cr_assert(eq(int, bench_xfb_zipf_init(&k.z, n, s), 0));
    bench_xfb_rng_seed(&rng, 99);
    for (uint64_t i = 1; i <= n; i++)
        h += pow((double)i, -s);
    for (uint64_t i = 0; i < draws; i++) {
        uint64_t id = bench_xfb_keys_draw(&k, &rng);
        cr_assert(ge(u64, id, 1));
        cr_assert(le(u64, id, n));
        if (id <= 10)
            count[id]++;
    }
    for (uint64_t id = 1; id <= 10 && id <= n; id++) {
        double want = pow((double)id, -s) / h * (double)draws;
        cr_assert(epsilon_eq(dbl, (double)count[id], want, want * rel_tol),
                  "n %llu s %g: rank %llu drawn %llu times, expected %.0f", (unsigned long long)n,
                  s, (unsigned long long)id, (unsigned long long)count[id], want);
    }
    /* Ranks are ordered: each of the first ten is drawn more often than the next. */
    for (uint64_t id = 1; id < 10 && id < n; id++)
        cr_assert(gt(u64, count[id], count[id + 1]));
}

Test(bench_gen, zipf_draws_follow_k_to_the_minus_s)
{
    check_zipf(1000, 1.0, 2000000, 0.03);
    check_zipf(1000, 0.5, 2000000, 0.05);
    check_zipf(100, 2.0, 2000000, 0.03);
    check_zipf(100000, 1.2, 2000000, 0.03);
}

Test(bench_gen, zipf_handles_one_key_and_a_billion)
{
    struct bench_xfb_zipf z;
    struct bench_xfb_rng rng;
    uint64_t top = 0, max = 0;
    const uint64_t draws = 200000;

    bench_xfb_rng_seed(&rng, 3);
    cr_assert(eq(int, bench_xfb_zipf_init(&z, 1, 1.0), 0));
    for (int i = 0; i < 1000; i++)
        cr_assert(eq(u64, bench_xfb_zipf_draw(&z, &rng), 1));
    cr_assert(eq(int, bench_xfb_zipf_init(&z, 1000000000, 1.0), 0));
    for (uint64_t i = 0; i < draws; i++) {
        uint64_t id = bench_xfb_zipf_draw(&z, &rng);
        cr_assert(le(u64, id, 1000000000));
        top += id == 1;
        max = id > max ? id : max;
    }
    /* P(1) = 1 / H(1e9) = 1 / 21.30 (H(n) ~ ln n + 0.5772). */
    cr_assert(epsilon_eq(dbl, (double)top / (double)draws, 1 / (log(1e9) + 0.5772), 0.003));
    cr_assert(gt(u64, max, 1000000), "the tail is never reached");
    cr_assert(eq(int, bench_xfb_zipf_init(&z, 10, 0.0), -1));
    cr_assert(eq(int, bench_xfb_zipf_init(&z, 0, 1.0), -1));
}

Test(bench_gen, keys_are_written_as_consumer_and_the_id)
{
    char buf[40];
    size_t n;

    n = bench_xfb_key_format(0, buf);
    cr_assert(eq(int, memcmp(buf, "consumer-0", n), 0));
    cr_assert(eq(sz, n, 10));
    n = bench_xfb_key_format(1234567, buf);
    cr_assert(eq(sz, n, 16));
    cr_assert(eq(int, memcmp(buf, "consumer-1234567", n), 0));
    n = bench_xfb_key_format(UINT64_MAX, buf);
    cr_assert(eq(sz, n, 29));
    cr_assert(eq(int, memcmp(buf, "consumer-18446744073709551615", n), 0));
}

Test(bench_gen, unit_draws_stay_in_0_1)
{
    struct bench_xfb_rng rng;
    double sum = 0;

    bench_xfb_rng_seed(&rng, 0);
    for (int i = 0; i < 100000; i++) {
        double u = bench_xfb_rng_unit(&rng);
        cr_assert(ge(dbl, u, 0.0));
        cr_assert(lt(dbl, u, 1.0));
        sum += u;
    }
    cr_assert(epsilon_eq(dbl, sum / 100000, 0.5, 0.01));
}
