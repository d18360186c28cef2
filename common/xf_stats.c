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

    if (XF_STAT_GET(cs->lat_slot_second[slot]) != now_s) {
        /* A reader may see the slot half cleared for a moment: each value it sees is whole. */
        for (unsigned b = 0; b < XF_LAT_BUCKETS; b++)
            __atomic_store_n(&cs->lat[slot][b], 0, __ATOMIC_RELAXED);
        __atomic_store_n(&cs->lat_slot_second[slot], now_s, __ATOMIC_RELAXED);
    }
    XF_STAT_INC(cs->lat[slot][xf_lat_bucket(us)]);
}

static void
xf_stats_merge_cluster(struct xf_cluster_stats *d, const struct xf_cluster_stats *s)
{
    d->requests += XF_STAT_GET(s->requests);
    for (size_t i = 0; i < 6; i++)
        d->responses[i] += XF_STAT_GET(s->responses[i]);
    for (size_t i = 0; i < XF_FAIL_COUNT; i++)
        d->failures[i] += XF_STAT_GET(s->failures[i]);
    d->active += XF_STAT_GET(s->active);
    d->failovers += XF_STAT_GET(s->failovers);
    d->retries += XF_STAT_GET(s->retries);
    d->health_down += XF_STAT_GET(s->health_down);
    d->health_up += XF_STAT_GET(s->health_up);
    d->ejections += XF_STAT_GET(s->ejections);
    d->queue_waiting += XF_STAT_GET(s->queue_waiting);
    d->queue_timeouts += XF_STAT_GET(s->queue_timeouts);
    d->queue_full += XF_STAT_GET(s->queue_full);
    d->tunnels += XF_STAT_GET(s->tunnels);
    d->tunnels_total += XF_STAT_GET(s->tunnels_total);
    for (unsigned slot = 0; slot < XF_LAT_SLOTS; slot++) {
        uint64_t sec = XF_STAT_GET(s->lat_slot_second[slot]);

        if (sec == 0 || sec < d->lat_slot_second[slot])
            continue;
        if (sec > d->lat_slot_second[slot]) {
            memset(d->lat[slot], 0, sizeof(d->lat[slot]));
            d->lat_slot_second[slot] = sec;
        }
        for (unsigned b = 0; b < XF_LAT_BUCKETS; b++)
            d->lat[slot][b] += XF_STAT_GET(s->lat[slot][b]);
    }
}

void
xf_stats_merge(struct xf_stats *dst, const struct xf_stats *src)
{
    for (size_t c = 0; c < 2; c++)
        xf_stats_merge_cluster(&dst->cluster[c], &src->cluster[c]);
    dst->client_connections += XF_STAT_GET(src->client_connections);
    dst->override_invalid += XF_STAT_GET(src->override_invalid);
    dst->override_not_allowed += XF_STAT_GET(src->override_not_allowed);
    dst->tls_handshakes += XF_STAT_GET(src->tls_handshakes);
    dst->tls_resumed += XF_STAT_GET(src->tls_resumed);
    dst->tls_failed += XF_STAT_GET(src->tls_failed);
    dst->tls_node_handshakes += XF_STAT_GET(src->tls_node_handshakes);
    dst->tls_node_resumed += XF_STAT_GET(src->tls_node_resumed);
    dst->tls_node_failed += XF_STAT_GET(src->tls_node_failed);
    dst->tcp_connections += XF_STAT_GET(src->tcp_connections);
    dst->tcp_no_sni += XF_STAT_GET(src->tcp_no_sni);
    dst->proxy_refused += XF_STAT_GET(src->proxy_refused);
    if (dst->started_s == 0)
        dst->started_s = XF_STAT_GET(src->started_s);
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
