/* common/xf_judge.h -- the statistics the guard judges y against x with (pure functions). */
#ifndef XF_JUDGE_H
#define XF_JUDGE_H

#include <stddef.h>
#include <stdint.h>

/* The upper tail of the standard normal distribution: P(Z > z). */
double xf_norm_sf(double z);

/*
 * Two-proportion z-test, one-sided: is y's rate (ey of ny) above x's (ex of nx)? Pooled
 * standard error. Returns the p-value (1 when either side has no trial, or when the rates are
 * both 0 or both 1: nothing to tell).
 */
double xf_two_prop_p(uint64_t ex, uint64_t nx, uint64_t ey, uint64_t ny);

/*
 * Mann-Whitney U test over two histograms on the same ordered buckets (values in one bucket are
 * ties: mid-ranks, the variance corrected for ties), one-sided: are y's values larger than x's?
 * Returns the p-value of the normal approximation (1 when a side is empty or every value ties),
 * and in *auc the probability that a value of y exceeds one of x, ties counting half (0.5: alike).
 */
double xf_mann_whitney_p(const uint64_t *hx, const uint64_t *hy, size_t nb, double *auc);

#endif
