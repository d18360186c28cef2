/* admin/adm_stats.c -- show stats [json]: the per-cluster traffic counters the proxy keeps. */
#include "admin/adm.h"

#include <stdio.h>
#include <string.h>

static const char *const adm_stats_fail_names[XF_FAIL_COUNT] = {
    [XF_FAIL_CONNECT] = "connect", [XF_FAIL_TIMEOUT] = "timeout", [XF_FAIL_RESET] = "reset",
    [XF_FAIL_INVALID] = "invalid", [XF_FAIL_NO_NODE] = "no_node", [XF_FAIL_QUEUE] = "queue",
};

/* The latency percentiles p50, p90, p99 of the last minute: *n responses, us[3]. */
static void
adm_stats_latency(const struct adm_state *st, const struct xf_cluster_stats *cs, uint64_t *n,
                  uint64_t us[3])
{
    static const double q[3] = {0.5, 0.9, 0.99};

    *n = xf_stats_percentiles(cs, st->mono_ms() / 1000, q, 3, us);
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
        adm_stats_latency(st, cs, &n, us);
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
    char buf[4096]; /* two clusters of 27 counters of up to 20 digits, and their names */
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
        adm_stats_latency(st, cs, &lat_n, us);
        ADM_JSON("},\"latency_1m\":{\"responses\":%llu,\"p50_us\":%llu,\"p90_us\":%llu,"
                 "\"p99_us\":%llu}",
                 (unsigned long long)lat_n, (unsigned long long)us[0], (unsigned long long)us[1],
                 (unsigned long long)us[2]);
        ADM_JSON(",\"failovers\":%llu,\"retries\":%llu,\"health\":{\"down\":%llu,\"up\":%llu,"
                 "\"ejected\":%llu},\"queue\":{\"waiting\":%llu,\"timeouts\":%llu,\"full\":%llu},"
                 "\"tunnels\":{\"open\":%llu,\"total\":%llu}}",
                 (unsigned long long)cs->failovers, (unsigned long long)cs->retries,
                 (unsigned long long)cs->health_down, (unsigned long long)cs->health_up,
                 (unsigned long long)cs->ejections, (unsigned long long)cs->queue_waiting,
                 (unsigned long long)cs->queue_timeouts, (unsigned long long)cs->queue_full,
                 (unsigned long long)cs->tunnels, (unsigned long long)cs->tunnels_total);
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
