/* common/xf_stats.c -- the latency histogram of the per-cluster counters. */
#include "common/xf_stats.h"

#include <string.h>

unsigned
xf_lat_bucket(uint64_t us)
{
    unsigned msb, sub;

    if (us < XF_LAT_SUB)
        return (unsigned)us;
    msb = 63u - (unsigned)__builtin_clzll(us);
    sub = (unsigned)(us >> (msb - 3u)) & (XF_LAT_SUB - 1u);
    if ((msb - 2u) * XF_LAT_SUB + sub >= XF_LAT_BUCKETS)
        return XF_LAT_BUCKETS - 1u;
    return (msb - 2u) * XF_LAT_SUB + sub;
}

uint64_t
xf_lat_bucket_low(unsigned bucket)
{
    unsigned msb, sub;

    if (bucket < XF_LAT_SUB)
        return bucket;
    msb = bucket / XF_LAT_SUB + 2u;
    sub = bucket % XF_LAT_SUB;
    return ((uint64_t)(XF_LAT_SUB + sub)) << (msb - 3u);
}

void
xf_stats_latency(struct xf_cluster_stats *cs, uint64_t us, uint64_t now_s)
{
    unsigned slot = (unsigned)(now_s % XF_LAT_SLOTS);

    if (cs->lat_slot_second[slot] != now_s) {
        memset(cs->lat[slot], 0, sizeof(cs->lat[slot]));
        cs->lat_slot_second[slot] = now_s;
    }
    cs->lat[slot][xf_lat_bucket(us)]++;
}

uint64_t
xf_stats_percentiles(const struct xf_cluster_stats *cs, uint64_t now_s, const double *q, size_t n,
                     uint64_t *out_us)
{
    uint64_t merged[XF_LAT_BUCKETS] = {0}, total = 0, seen = 0;
    size_t k = 0;

    for (unsigned s = 0; s < XF_LAT_SLOTS; s++) {
        uint64_t sec = cs->lat_slot_second[s];
        if (sec == 0 || sec > now_s || now_s - sec >= XF_LAT_SLOTS)
            continue;
        for (unsigned b = 0; b < XF_LAT_BUCKETS; b++) {
            merged[b] += cs->lat[s][b];
            total += cs->lat[s][b];
        }
    }
    for (size_t i = 0; i < n; i++)
        out_us[i] = 0;
    if (total == 0)
        return 0;
    for (unsigned b = 0; b < XF_LAT_BUCKETS && k < n; b++) {
        seen += merged[b];
        while (k < n && (double)seen >= q[k] * (double)total) {
            out_us[k] = xf_lat_bucket_low(b);
            k++;
        }
    }
    return total;
}
