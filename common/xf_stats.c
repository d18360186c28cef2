/* common/xf_stats.c -- the latency histograms of the traffic counters, and the seconds the
 * control thread keeps of them. */
#include "common/xf_stats.h"
#include "common/xf.h"

#include <stdlib.h>
#include <string.h>

const uint64_t xf_fix_le_us[XF_FIX_BUCKETS] = {
    1000,   2500,   5000,    10000,   25000,   50000,    100000,
    250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

unsigned
xf_lat_bucket(uint64_t us)
{
    unsigned msb, sub, b;

    if (us < XF_LAT_SUB)
        return (unsigned)us;
    msb = 63u - (unsigned)__builtin_clzll(us);
    sub = (unsigned)(us >> (msb - XF_LAT_SUB_BITS)) & (XF_LAT_SUB - 1u);
    b = (msb - XF_LAT_SUB_BITS + 1u) * XF_LAT_SUB + sub;
    return b < XF_LAT_BUCKETS ? b : XF_LAT_BUCKETS - 1u;
}

uint64_t
xf_lat_bucket_low(unsigned bucket)
{
    unsigned msb, sub;

    if (bucket < XF_LAT_SUB)
        return bucket;
    msb = bucket / XF_LAT_SUB + XF_LAT_SUB_BITS - 1u;
    sub = bucket % XF_LAT_SUB;
    return ((uint64_t)(XF_LAT_SUB + sub)) << (msb - XF_LAT_SUB_BITS);
}

uint64_t
xf_lat_bucket_mid(unsigned bucket)
{
    uint64_t low = xf_lat_bucket_low(bucket);

    if (bucket < XF_LAT_SUB)
        return low;
    return low + (xf_lat_bucket_low(bucket + 1u) - low) / 2u;
}

void
xf_fixhist_add(struct xf_fixhist *h, uint64_t us)
{
    unsigned i = 0;

    while (i < XF_FIX_BUCKETS && us > xf_fix_le_us[i])
        i++;
    XF_STAT_INC(h->b[i]);
    XF_STAT_ADD(h->sum_us, us);
}

void
xf_fixhist_merge(struct xf_fixhist *dst, const struct xf_fixhist *src)
{
    for (unsigned i = 0; i <= XF_FIX_BUCKETS; i++)
        dst->b[i] += XF_STAT_GET(src->b[i]);
    dst->sum_us += XF_STAT_GET(src->sum_us);
}

void
xf_stats_second(struct xf_cluster_stats *cs, uint64_t now_s, bool error, uint64_t us)
{
    struct xf_sec *s = &cs->sec[now_s % XF_SEC_SLOTS];

    if (XF_STAT_GET(s->second) != now_s) {
        /* The reader takes a slot only once its second is over and before it comes round again
         * (XF_SEC_SLOTS seconds later): it never sees one being cleared. */
        __atomic_store_n(&s->requests, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&s->errors, 0, __ATOMIC_RELAXED);
        for (unsigned b = 0; b < XF_LAT_BUCKETS; b++)
            __atomic_store_n(&s->lat[b], 0, __ATOMIC_RELAXED);
        __atomic_store_n(&s->second, now_s, __ATOMIC_RELEASE);
    }
    XF_STAT_INC(s->requests);
    if (error)
        XF_STAT_INC(s->errors);
    if (us != UINT64_MAX)
        XF_STAT_INC(s->lat[xf_lat_bucket(us)]);
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
    d->bytes_in += XF_STAT_GET(s->bytes_in);
    d->bytes_out += XF_STAT_GET(s->bytes_out);
    d->test_requests += XF_STAT_GET(s->test_requests);
    d->test_errors += XF_STAT_GET(s->test_errors);
    xf_fixhist_merge(&d->ttfb, &s->ttfb);
    xf_fixhist_merge(&d->total, &s->total);
}

void
xf_node_stats_merge(struct xf_node_stats *d, const struct xf_node_stats *s)
{
    d->requests += XF_STAT_GET(s->requests);
    for (size_t i = 0; i < 6; i++)
        d->responses[i] += XF_STAT_GET(s->responses[i]);
    for (size_t i = 0; i < XF_FAIL_COUNT; i++)
        d->failures[i] += XF_STAT_GET(s->failures[i]);
    d->retries += XF_STAT_GET(s->retries);
    d->bytes_in += XF_STAT_GET(s->bytes_in);
    d->bytes_out += XF_STAT_GET(s->bytes_out);
    xf_fixhist_merge(&d->ttfb, &s->ttfb);
    xf_fixhist_merge(&d->total, &s->total);
}

void
xf_node_stats_clear(struct xf_node_stats *ns)
{
    uint64_t *v = (uint64_t *)ns;

    for (size_t i = 0; i < sizeof(*ns) / sizeof(uint64_t); i++)
        __atomic_store_n(&v[i], 0, __ATOMIC_RELAXED);
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

/* The percentiles of a histogram of nb buckets holding `total` values. */
static void
xf_hist_percentiles(const void *hist, bool wide, uint64_t total, const double *q, size_t n,
                    uint64_t *out_us)
{
    uint64_t seen = 0;
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        out_us[i] = 0;
    if (total == 0)
        return;
    for (unsigned b = 0; b < XF_LAT_BUCKETS && k < n; b++) {
        seen += wide ? ((const uint64_t *)hist)[b] : ((const uint32_t *)hist)[b];
        while (k < n && (double)seen >= q[k] * (double)total) {
            out_us[k] = xf_lat_bucket_mid(b);
            k++;
        }
    }
}

uint64_t
xf_win_percentiles(const struct xf_win *w, const double *q, size_t n, uint64_t *out_us)
{
    xf_hist_percentiles(w->lat, true, w->n, q, n, out_us);
    return w->n;
}

void
xf_mon_harvest(struct xf_mon *m, const struct xf_stats *const *workers, size_t n, uint64_t now_s,
               unsigned weight_bp, int64_t wall_ms)
{
    static const double q[2] = {0.5, 0.99};
    uint64_t first = now_s > XF_SEC_SLOTS ? now_s - XF_SEC_SLOTS : 1;

    if (m->last + 1 > first)
        first = m->last + 1;
    for (uint64_t sec = first; sec < now_s; sec++) {
        struct xf_mon_sec *ms = &m->sec[sec % XF_MON_SECONDS];

        memset(ms, 0, sizeof(*ms));
        ms->second = sec;
        ms->wall_ms = wall_ms - (int64_t)(now_s - sec) * 1000;
        ms->weight_bp = weight_bp;
        for (int c = 0; c < 2; c++) {
            uint64_t total = 0, p[2];

            for (size_t i = 0; i < n; i++) {
                const struct xf_sec *s = &workers[i]->cluster[c].sec[sec % XF_SEC_SLOTS];

                if (__atomic_load_n(&s->second, __ATOMIC_ACQUIRE) != sec)
                    continue;
                ms->requests[c] += XF_STAT_GET(s->requests);
                ms->errors[c] += XF_STAT_GET(s->errors);
                for (unsigned b = 0; b < XF_LAT_BUCKETS; b++) {
                    uint32_t v = XF_STAT_GET(s->lat[b]);

                    ms->lat[c][b] += v;
                    total += v;
                }
            }
            xf_hist_percentiles(ms->lat[c], false, total, q, 2, p);
            ms->p50_us[c] = (uint32_t)(p[0] > UINT32_MAX ? UINT32_MAX : p[0]);
            ms->p99_us[c] = (uint32_t)(p[1] > UINT32_MAX ? UINT32_MAX : p[1]);
        }
    }
    if (now_s > 0 && now_s - 1 > m->last)
        m->last = now_s - 1;
}

void
xf_mon_window(const struct xf_mon *m, int c, uint64_t now_s, unsigned seconds, struct xf_win *out)
{
    memset(out, 0, sizeof(*out));
    if (seconds > XF_MON_SECONDS)
        seconds = XF_MON_SECONDS;
    for (uint64_t sec = now_s > seconds ? now_s - seconds : 1; sec < now_s; sec++) {
        const struct xf_mon_sec *ms = &m->sec[sec % XF_MON_SECONDS];

        if (ms->second != sec)
            continue;
        out->requests += ms->requests[c];
        out->errors += ms->errors[c];
        for (unsigned b = 0; b < XF_LAT_BUCKETS; b++) {
            out->lat[b] += ms->lat[c][b];
            out->n += ms->lat[c][b];
        }
    }
}

void
xf_preview_count(struct xf_preview *p, uint64_t kid, uint32_t bucket, uint64_t now_s)
{
    uint64_t epoch = now_s / XF_PREVIEW_SLOT_S + 1;
    unsigned slot = (unsigned)(epoch % XF_PREVIEW_SLOTS), oldest = 0, at;
    uint32_t oldest_s = UINT32_MAX;

    if (XF_STAT_GET(p->slot_epoch[slot]) != epoch) {
        for (unsigned b = 0; b < XF_PREVIEW_BUCKETS; b++)
            __atomic_store_n(&p->req[slot][b], 0, __ATOMIC_RELAXED);
        __atomic_store_n(&p->slot_epoch[slot], epoch, __ATOMIC_RELEASE);
    }
    XF_STAT_INC(p->req[slot][bucket % XF_PREVIEW_BUCKETS]);
    if (kid == 0)
        kid = 1; /* 0 marks an empty place */
    /* Open addressing over a short probe: the key's place, else an empty or the stalest one. */
    for (unsigned i = 0; i < XF_PREVIEW_PROBE; i++) {
        at = (unsigned)((kid + i) & (XF_PREVIEW_KEYS - 1u));
        if (XF_STAT_GET(p->key[at]) == kid || XF_STAT_GET(p->key[at]) == 0) {
            oldest = at;
            oldest_s = 0;
            break;
        }
        if (XF_STAT_GET(p->key_s[at]) < oldest_s) {
            oldest_s = XF_STAT_GET(p->key_s[at]);
            oldest = at;
        }
    }
    if (oldest_s != 0 && now_s - oldest_s < XF_PREVIEW_WINDOW_S) {
        XF_STAT_INC(p->keys_lost);
        return;
    }
    __atomic_store_n(&p->key_bucket[oldest], (uint16_t)(bucket % XF_PREVIEW_BUCKETS),
                     __ATOMIC_RELAXED);
    __atomic_store_n(&p->key_s[oldest], (uint32_t)now_s, __ATOMIC_RELAXED);
    __atomic_store_n(&p->key[oldest], kid, __ATOMIC_RELAXED);
}

/* Whether bucket b changes side between the two weights (a bucket is y's below the weight). */
static bool
xf_preview_moves(unsigned b, unsigned lo, unsigned hi)
{
    return b >= lo && b < hi;
}

int
xf_preview_sum(const struct xf_preview *const *p, size_t n, uint64_t now_s, unsigned from_bp,
               unsigned to_bp, struct xf_preview_sum *out)
{
    unsigned lo = XF_MIN(from_bp, to_bp), hi = XF_MAX(from_bp, to_bp);
    uint64_t epoch = now_s / XF_PREVIEW_SLOT_S + 1;
    size_t cap = 1, mask;
    uint64_t *seen;

    memset(out, 0, sizeof(*out));
    /* The window: the slots of the last XF_PREVIEW_SLOTS epochs, the current one partly. */
    out->window_s =
        (unsigned)((XF_PREVIEW_SLOTS - 1) * XF_PREVIEW_SLOT_S + now_s % XF_PREVIEW_SLOT_S);
    if (now_s < out->window_s)
        out->window_s = (unsigned)now_s;
    while (cap < n * XF_PREVIEW_KEYS * 2)
        cap <<= 1;
    mask = cap - 1;
    seen = calloc(cap, sizeof(*seen));
    if (seen == NULL)
        return -1;
    for (size_t w = 0; w < n; w++) {
        for (unsigned s = 0; s < XF_PREVIEW_SLOTS; s++) {
            uint64_t e = __atomic_load_n(&p[w]->slot_epoch[s], __ATOMIC_ACQUIRE);

            if (e == 0 || e > epoch || epoch - e >= XF_PREVIEW_SLOTS)
                continue;
            for (unsigned b = 0; b < XF_PREVIEW_BUCKETS; b++) {
                uint64_t v = XF_STAT_GET(p[w]->req[s][b]);

                out->requests += v;
                if (xf_preview_moves(b, lo, hi))
                    out->requests_moved += v;
            }
        }
        out->keys_lost += XF_STAT_GET(p[w]->keys_lost);
        for (unsigned i = 0; i < XF_PREVIEW_KEYS; i++) {
            uint64_t kid = XF_STAT_GET(p[w]->key[i]);
            uint32_t last = XF_STAT_GET(p[w]->key_s[i]);
            size_t at;

            if (kid == 0 || now_s - last >= out->window_s + 1u)
                continue;
            /* The same key seen by several workers counts once. */
            for (at = kid & mask; seen[at] != 0 && seen[at] != kid; at = (at + 1) & mask)
                ;
            if (seen[at] == kid)
                continue;
            seen[at] = kid;
            out->keys++;
            if (xf_preview_moves(XF_STAT_GET(p[w]->key_bucket[i]), lo, hi))
                out->keys_moved++;
        }
    }
    free(seen);
    return 0;
}
