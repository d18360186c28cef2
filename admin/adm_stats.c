/* admin/adm_stats.c -- show stats [json]: the per-cluster traffic counters the proxy keeps. */
#include "admin/adm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const adm_stats_fail_names[XF_FAIL_COUNT] = {
    [XF_FAIL_CONNECT] = "connect", [XF_FAIL_TIMEOUT] = "timeout", [XF_FAIL_RESET] = "reset",
    [XF_FAIL_INVALID] = "invalid", [XF_FAIL_NO_NODE] = "no_node", [XF_FAIL_QUEUE] = "queue",
};

/* The latency percentiles p50, p90, p99 of the last minute: *n responses, us[3]. */
static void
adm_stats_latency(struct adm_state *st, int c, uint64_t *n, uint64_t us[3])
{
    static const double q[3] = {0.5, 0.9, 0.99};
    struct xf_win *w = malloc(sizeof(*w));

    *n = 0;
    memset(us, 0, 3 * sizeof(us[0]));
    if (w == NULL)
        return;
    adm_window(st, c, 60, w);
    *n = xf_win_percentiles(w, q, 3, us);
    free(w);
}

/* Microseconds as "850us", "1.25ms" or "2.50s". */
static const char *
adm_stats_us(uint64_t us, char *buf, size_t size)
{
    if (us < 1000)
        snprintf(buf, size, "%lluus", (unsigned long long)us);
    else if (us < 1000000)
        snprintf(buf, size, "%llu.%02llums", (unsigned long long)(us / 1000),
                 (unsigned long long)(us % 1000 / 10));
    else
        snprintf(buf, size, "%llu.%02llus", (unsigned long long)(us / 1000000),
                 (unsigned long long)(us % 1000000 / 10000));
    return buf;
}

/* "x failures connect=1 timeout=0 ...": every kind of enum xf_fail, in its order. */
static void
adm_stats_failures(const struct xf_cluster_stats *cs, const char *name, struct adm_reply *r)
{
    char line[256];
    size_t o = 0;

    line[0] = '\0';
    for (int f = 0; f < XF_FAIL_COUNT; f++) {
        int n = snprintf(line + o, sizeof(line) - o, " %s=%llu", adm_stats_fail_names[f],
                         (unsigned long long)cs->failures[f]);

        if (n > 0)
            o = XF_MIN(o + (size_t)n, sizeof(line) - 1);
    }
    adm_reply_line(r, "%s failures%s", name, line);
}

static void
adm_stats_text(struct adm_state *st, const struct xf_stats *s, struct adm_reply *r)
{
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++) {
        const struct xf_cluster_stats *cs = &s->cluster[c];
        const char *name = cfg_cluster_name((enum cfg_cluster_id)c);
        uint64_t n, us[3];
        char p[3][32];

        adm_reply_line(r, "%s requests %llu", name, (unsigned long long)cs->requests);
        adm_reply_line(r, "%s active %llu", name, (unsigned long long)cs->active);
        adm_reply_line(r, "%s responses 1xx=%llu 2xx=%llu 3xx=%llu 4xx=%llu 5xx=%llu", name,
                       (unsigned long long)cs->responses[1], (unsigned long long)cs->responses[2],
                       (unsigned long long)cs->responses[3], (unsigned long long)cs->responses[4],
                       (unsigned long long)cs->responses[5]);
        adm_stats_failures(cs, name, r);
        adm_stats_latency(st, c, &n, us);
        if (n == 0)
            adm_reply_line(r, "%s latency_1m p50=- p90=- p99=- responses=0", name);
        else
            adm_reply_line(r, "%s latency_1m p50=%s p90=%s p99=%s responses=%llu", name,
                           adm_stats_us(us[0], p[0], sizeof(p[0])),
                           adm_stats_us(us[1], p[1], sizeof(p[1])),
                           adm_stats_us(us[2], p[2], sizeof(p[2])), (unsigned long long)n);
        adm_reply_line(r, "%s failovers %llu", name, (unsigned long long)cs->failovers);
        adm_reply_line(r, "%s retries %llu", name, (unsigned long long)cs->retries);
        adm_reply_line(r, "%s health down=%llu up=%llu ejected=%llu", name,
                       (unsigned long long)cs->health_down, (unsigned long long)cs->health_up,
                       (unsigned long long)cs->ejections);
        adm_reply_line(r, "%s queue waiting=%llu timeouts=%llu full=%llu", name,
                       (unsigned long long)cs->queue_waiting,
                       (unsigned long long)cs->queue_timeouts, (unsigned long long)cs->queue_full);
        adm_reply_line(r, "%s tunnels open=%llu total=%llu", name, (unsigned long long)cs->tunnels,
                       (unsigned long long)cs->tunnels_total);
        adm_reply_line(r, "%s bytes in=%llu out=%llu", name, (unsigned long long)cs->bytes_in,
                       (unsigned long long)cs->bytes_out);
        adm_reply_line(r, "%s test requests=%llu errors=%llu", name,
                       (unsigned long long)cs->test_requests, (unsigned long long)cs->test_errors);
    }
    adm_reply_line(r, "client_connections %llu", (unsigned long long)s->client_connections);
    adm_reply_line(r, "override_ignored invalid=%llu not_allowed=%llu",
                   (unsigned long long)s->override_invalid,
                   (unsigned long long)s->override_not_allowed);
    adm_reply_line(r, "tls_handshakes completed=%llu resumed=%llu failed=%llu",
                   (unsigned long long)s->tls_handshakes, (unsigned long long)s->tls_resumed,
                   (unsigned long long)s->tls_failed);
    adm_reply_line(r, "tls_node_handshakes completed=%llu resumed=%llu failed=%llu",
                   (unsigned long long)s->tls_node_handshakes,
                   (unsigned long long)s->tls_node_resumed, (unsigned long long)s->tls_node_failed);
    adm_reply_line(r, "tcp connections=%llu no_sni=%llu proxy_refused=%llu",
                   (unsigned long long)s->tcp_connections, (unsigned long long)s->tcp_no_sni,
                   (unsigned long long)s->proxy_refused);
}

/* The same as one JSON object on one line. */
static void
adm_stats_json(struct adm_state *st, const struct xf_stats *s, struct adm_reply *r)
{
    char buf[6144]; /* two clusters of 31 counters of up to 20 digits, and their names */
    size_t o = 0;
    int n;

#define ADM_JSON(...)                                                                              \
    do {                                                                                           \
        n = snprintf(buf + o, sizeof(buf) - o, __VA_ARGS__);                                       \
        if (n > 0)                                                                                 \
            o = XF_MIN(o + (size_t)n, sizeof(buf) - 1);                                            \
    } while (0)
    ADM_JSON("{\"clusters\":{");
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++) {
        const struct xf_cluster_stats *cs = &s->cluster[c];
        uint64_t lat_n, us[3];

        ADM_JSON("%s\"%s\":{\"requests\":%llu,\"active\":%llu,\"responses\":{", c > 0 ? "," : "",
                 cfg_cluster_name((enum cfg_cluster_id)c), (unsigned long long)cs->requests,
                 (unsigned long long)cs->active);
        for (int k = 1; k <= 5; k++)
            ADM_JSON("%s\"%dxx\":%llu", k > 1 ? "," : "", k, (unsigned long long)cs->responses[k]);
        ADM_JSON("},\"failures\":{");
        for (int f = 0; f < XF_FAIL_COUNT; f++)
            ADM_JSON("%s\"%s\":%llu", f > 0 ? "," : "", adm_stats_fail_names[f],
                     (unsigned long long)cs->failures[f]);
        adm_stats_latency(st, c, &lat_n, us);
        ADM_JSON("},\"latency_1m\":{\"responses\":%llu,\"p50_us\":%llu,\"p90_us\":%llu,"
                 "\"p99_us\":%llu}",
                 (unsigned long long)lat_n, (unsigned long long)us[0], (unsigned long long)us[1],
                 (unsigned long long)us[2]);
        ADM_JSON(",\"failovers\":%llu,\"retries\":%llu,\"health\":{\"down\":%llu,\"up\":%llu,"
                 "\"ejected\":%llu},\"queue\":{\"waiting\":%llu,\"timeouts\":%llu,\"full\":%llu},"
                 "\"tunnels\":{\"open\":%llu,\"total\":%llu},\"bytes\":{\"in\":%llu,\"out\":%llu},"
                 "\"test\":{\"requests\":%llu,\"errors\":%llu}}",
                 (unsigned long long)cs->failovers, (unsigned long long)cs->retries,
                 (unsigned long long)cs->health_down, (unsigned long long)cs->health_up,
                 (unsigned long long)cs->ejections, (unsigned long long)cs->queue_waiting,
                 (unsigned long long)cs->queue_timeouts, (unsigned long long)cs->queue_full,
                 (unsigned long long)cs->tunnels, (unsigned long long)cs->tunnels_total,
                 (unsigned long long)cs->bytes_in, (unsigned long long)cs->bytes_out,
                 (unsigned long long)cs->test_requests, (unsigned long long)cs->test_errors);
    }
    ADM_JSON("},\"client_connections\":%llu,\"override_ignored\":{\"invalid\":%llu,"
             "\"not_allowed\":%llu},\"tls_handshakes\":{\"completed\":%llu,\"resumed\":%llu,"
             "\"failed\":%llu},\"tls_node_handshakes\":{\"completed\":%llu,\"resumed\":%llu,"
             "\"failed\":%llu},\"tcp\":{\"connections\":%llu,\"no_sni\":%llu,"
             "\"proxy_refused\":%llu}}",
             (unsigned long long)s->client_connections, (unsigned long long)s->override_invalid,
             (unsigned long long)s->override_not_allowed, (unsigned long long)s->tls_handshakes,
             (unsigned long long)s->tls_resumed, (unsigned long long)s->tls_failed,
             (unsigned long long)s->tls_node_handshakes, (unsigned long long)s->tls_node_resumed,
             (unsigned long long)s->tls_node_failed, (unsigned long long)s->tcp_connections,
             (unsigned long long)s->tcp_no_sni, (unsigned long long)s->proxy_refused);
#undef ADM_JSON
    adm_reply_line(r, "%s", buf);
}

enum adm_result
adm_cmd_show_stats(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                   struct adm_reply *r)
{
    struct xf_stats *sum;

    XF_UNUSED(peer);
    if (st->stats == NULL)
        return adm_reply_error(r, "no traffic counters: this crossfade does not count yet");
    if (!(a->n == 2 || (a->n == 3 && adm_span_is(a->v[2], "json"))))
        return adm_reply_error(r, "usage: show stats [json]");
    /* The workers' counters summed: too large for the stack (a latency window per cluster). */
    sum = calloc(1, sizeof(*sum));
    if (sum == NULL)
        return adm_reply_error(r, "out of memory");
    st->stats(st->stats_arg, sum);
    if (a->n == 3)
        adm_stats_json(st, sum, r);
    else
        adm_stats_text(st, sum, r);
    free(sum);
    return ADM_OK;
}

const char *
adm_share_text(uint64_t n, uint64_t all, char *buf, size_t size)
{
    if (all == 0)
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%.2f%%", 100.0 * (double)n / (double)all);
    return buf;
}

enum adm_result
adm_cmd_preview_weight(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                       struct adm_reply *r)
{
    struct adm_span p = a->v[2];
    struct xf_preview_sum sum;
    struct bal_snapshot *snap;
    char q[ADM_QUOTE_TEXT], w[2][ADM_WEIGHT_TEXT], sh[2][16];
    unsigned to_bp, cur;
    const char *way;

    XF_UNUSED(peer);
    if (adm_weight_parse(p.ptr, p.len, &to_bp) == -1)
        return adm_reply_error(r,
                               "weight must be a number from 0 to 100 with at most two decimals, "
                               "got %s",
                               adm_quote(p.ptr, p.len, q, sizeof(q)));
    if (st->monitor.preview == NULL)
        return adm_reply_error(r, "no traffic counters: this crossfade does not count yet");
    snap = bal_router_acquire(st->router);
    cur = snap->weight_bp;
    bal_snapshot_unref(snap);
    if (st->monitor.preview(st->monitor.arg, cur, to_bp, &sum) == -1)
        return adm_reply_error(r, "out of memory");
    /* No older than the process. */
    sum.window_s =
        (unsigned)XF_MIN((uint64_t)sum.window_s, (st->mono_ms() - st->started_ms) / 1000u + 1u);
    way = to_bp > cur ? "x to y" : "y to x";
    adm_weight_text(cur, w[0]);
    adm_weight_text(to_bp, w[1]);
    if (to_bp == cur)
        adm_reply_line(r, "weight y %s is the weight in force: nothing would move", w[0]);
    else
        adm_reply_line(r, "weight y %s -> %s moves buckets [%u, %u) from %s", w[0], w[1],
                       XF_MIN(cur, to_bp), XF_MAX(cur, to_bp), way);
    adm_reply_line(r, "keys %llu of %llu would move (%s)", (unsigned long long)sum.keys_moved,
                   (unsigned long long)sum.keys,
                   adm_share_text(sum.keys_moved, sum.keys, sh[0], 16));
    adm_reply_line(r, "requests %llu of %llu would move (%s)",
                   (unsigned long long)sum.requests_moved, (unsigned long long)sum.requests,
                   adm_share_text(sum.requests_moved, sum.requests, sh[1], 16));
    adm_reply_line(r,
                   "window %us (requests split by the weight: pinned, overridden and test "
                   "traffic left out)",
                   sum.window_s);
    if (sum.keys_lost > 0)
        adm_reply_line(r,
                       "note: %llu keys were not kept (more distinct keys than the table holds): "
                       "the key share is an estimate",
                       (unsigned long long)sum.keys_lost);
    return ADM_OK;
}
