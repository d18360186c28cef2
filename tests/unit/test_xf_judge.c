/* tests/unit/test_xf_judge.c -- the guard's statistics against values worked out by hand. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <string.h>

#include "common/xf_judge.h"

Test(xf_judge, the_normal_tail_has_its_textbook_values)
{
    cr_assert(lt(dbl, fabs(xf_norm_sf(0.0) - 0.5), 1e-12));
    cr_assert(lt(dbl, fabs(xf_norm_sf(1.959964) - 0.025), 1e-6));
    cr_assert(lt(dbl, fabs(xf_norm_sf(2.326348) - 0.01), 1e-6));
}

/* 10 % errors on y against 1 % on x over 1000 each: z = (0.1 - 0.01) / sqrt(p(1-p)(2/1000)) with
 * p = 0.055: z = 8.86, far beyond any confidence. */
Test(xf_judge, a_clear_rise_of_the_error_rate_is_significant)
{
    double p = xf_two_prop_p(10, 1000, 100, 1000);

    cr_assert(lt(dbl, p, 1e-10), "p = %g", p);
}

/* 3 of 100 against 2 of 100: z = 0.01 / sqrt(0.025 * 0.975 * 0.02) = 0.4528, p = 0.3253. */
Test(xf_judge, a_small_difference_over_few_requests_is_not)
{
    double p = xf_two_prop_p(2, 100, 3, 100);

    cr_assert(lt(dbl, fabs(p - 0.3253), 1e-3), "p = %g", p);
    /* One-sided: y better than x is no evidence against y. */
    cr_assert(gt(dbl, xf_two_prop_p(3, 100, 2, 100), 0.5));
    /* Nothing to tell: no trial, or no error on either side. */
    cr_assert(eq(dbl, xf_two_prop_p(0, 0, 5, 10), 1.0));
    cr_assert(eq(dbl, xf_two_prop_p(0, 100, 0, 100), 1.0));
}

/*
 * x = {1, 2}, y = {3, 4} in buckets 1..4: y above x every time, U = 4, auc = 1. With n = 4:
 * mean 2, variance 2*2*5/12 = 5/3; z = (4 - 2 - 0.5) / 1.291 = 1.162, p = 0.1226.
 */
Test(xf_judge, mann_whitney_matches_a_hand_computation)
{
    uint64_t hx[5] = {0, 1, 1, 0, 0}, hy[5] = {0, 0, 0, 1, 1};
    double auc, p = xf_mann_whitney_p(hx, hy, 5, &auc);

    cr_assert(eq(dbl, auc, 1.0));
    cr_assert(lt(dbl, fabs(p - 0.1226), 1e-3), "p = %g", p);
}

/* Ties: the same histogram on both sides is no difference at all. */
Test(xf_judge, alike_histograms_are_not_different)
{
    uint64_t h[8] = {0, 50, 200, 500, 200, 50, 0, 0};
    double auc, p = xf_mann_whitney_p(h, h, 8, &auc);

    cr_assert(lt(dbl, fabs(auc - 0.5), 1e-12));
    cr_assert(gt(dbl, p, 0.4));
}

/* y shifted up by two buckets over 1000 values each: overwhelming. */
Test(xf_judge, a_shifted_histogram_is_significantly_slower)
{
    uint64_t hx[10] = {0}, hy[10] = {0};
    double auc, p;

    hx[2] = 250;
    hx[3] = 500;
    hx[4] = 250;
    hy[4] = 250;
    hy[5] = 500;
    hy[6] = 250;
    p = xf_mann_whitney_p(hx, hy, 10, &auc);
    cr_assert(gt(dbl, auc, 0.95));
    cr_assert(lt(dbl, p, 1e-10));
    /* ... and the other way round is not evidence that y is slower. */
    cr_assert(gt(dbl, xf_mann_whitney_p(hy, hx, 10, &auc), 0.99));
    /* An empty side tells nothing. */
    memset(hy, 0, sizeof(hy));
    cr_assert(eq(dbl, xf_mann_whitney_p(hx, hy, 10, &auc), 1.0));
}
