/* bench/bench_xfbench_hist.c -- xfbench's latency histogram: log-linear buckets, bounded error. */
#include "bench/bench_xfbench.h"

#include <math.h>
#include <string.h>

void
bench_xfb_hist_reset(struct bench_xfb_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

size_t
bench_xfb_hist_index(uint64_t v)
{
    unsigned msb;

    if (v < BENCH_XFB_HIST_LINEAR)
        return (size_t)v;
    msb = 63u - (unsigned)__builtin_clzll(v);
    if (msb >= BENCH_XFB_HIST_TOP_BITS)
        return BENCH_XFB_HIST_BUCKETS - 1;
    return BENCH_XFB_HIST_LINEAR +
           (size_t)(msb - BENCH_XFB_HIST_SUB_BITS - 1) * BENCH_XFB_HIST_SUB +
           (size_t)((v >> (msb - BENCH_XFB_HIST_SUB_BITS)) - BENCH_XFB_HIST_SUB);
}

uint64_t
bench_xfb_hist_low(size_t i)
{
    size_t g, sub;

    if (i < BENCH_XFB_HIST_LINEAR)
        return i;
    g = (i - BENCH_XFB_HIST_LINEAR) / BENCH_XFB_HIST_SUB;
    sub = (i - BENCH_XFB_HIST_LINEAR) % BENCH_XFB_HIST_SUB;
    return (uint64_t)(BENCH_XFB_HIST_SUB + sub) << (g + 1);
}

uint64_t
bench_xfb_hist_high(size_t i)
{
    if (i < BENCH_XFB_HIST_LINEAR)
        return i;
    if (i == BENCH_XFB_HIST_BUCKETS - 1)
        return UINT64_MAX;
    return bench_xfb_hist_low(i + 1) - 1;
}

void
bench_xfb_hist_merge(struct bench_xfb_hist *dst, const struct bench_xfb_hist *src)
{
    if (src->count == 0)
        return;
    for (size_t i = 0; i < BENCH_XFB_HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
    dst->count += src->count;
    dst->sum += src->sum;
    dst->min = XF_MIN(dst->min, src->min);
    dst->max = XF_MAX(dst->max, src->max);
}

uint64_t
bench_xfb_hist_quantile(const struct bench_xfb_hist *h, double q)
{
    uint64_t rank, seen = 0;

    if (h->count == 0)
        return 0;
    if (!(q > 0))
        return h->min;
    rank = q >= 1 ? h->count : (uint64_t)ceil(q * (double)h->count);
    if (rank == 0)
        rank = 1;
    for (size_t i = 0; i < BENCH_XFB_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t lo = bench_xfb_hist_low(i), hi = bench_xfb_hist_high(i);
            uint64_t mid = hi == UINT64_MAX ? h->max : lo + (hi - lo) / 2;
            if (mid < h->min)
                mid = h->min;
            if (mid > h->max)
                mid = h->max;
            return mid;
        }
    }
    return h->max;
}

uint64_t
bench_xfb_hist_mean(const struct bench_xfb_hist *h)
{
    return h->count == 0 ? 0 : h->sum / h->count;
}
