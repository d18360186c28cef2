/*
 * admin/adm_http.c -- the read-only HTTP listener (admin.http): /metrics in Prometheus' text
 * format, /api/stats as JSON, /healthz, and the status page at /. Nothing here changes state:
 * only GET and HEAD are served (docs/monitoring.md).
 */
#include "admin/adm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

/* The status page (admin/status.html, built into the binary by the Makefile). */
extern const unsigned char adm_status_page[];
extern const size_t adm_status_page_len;

#define ADM_HTTP_TIMEOUT_S   10   /* a client that sends or reads nothing for this long is closed */
#define ADM_HTTP_HEADERS_MAX 8192 /* bytes of a request's head */
#define ADM_HTTP_EVENTS      20   /* the latest events /api/stats lists */

static const char *const adm_http_fail_kinds[XF_FAIL_COUNT] = {
    [XF_FAIL_CONNECT] = "connect",  [XF_FAIL_TIMEOUT] = "timeout", [XF_FAIL_RESET] = "reset",
    [XF_FAIL_INVALID] = "protocol", [XF_FAIL_NO_NODE] = "no_node", [XF_FAIL_QUEUE] = "queue",
};
static const char *const adm_http_json_fail[XF_FAIL_COUNT] = {
    [XF_FAIL_CONNECT] = "connect", [XF_FAIL_TIMEOUT] = "timeout", [XF_FAIL_RESET] = "reset",
    [XF_FAIL_INVALID] = "invalid", [XF_FAIL_NO_NODE] = "no_node", [XF_FAIL_QUEUE] = "queue",
};

/* ------------------------------------------------------------------ text helpers */

void
adm_json_event(struct evbuffer *b, const struct adm_event *e)
{
    char who[64];

    if (e->uid < 0)
        snprintf(who, sizeof(who), "crossfade");
    else
        snprintf(who, sizeof(who), "uid=%ld pid=%ld", e->uid, e->pid);
    evbuffer_add_printf(b, "{\"seq\":%llu,\"time_ms\":%lld,\"who\":", (unsigned long long)e->seq,
                        (long long)e->time_ms);
    adm_json_str(b, who);
    evbuffer_add_printf(b, ",\"command\":");
    adm_json_str(b, e->command);
    evbuffer_add_printf(b, ",\"what\":");
    adm_json_str(b, e->what);
    evbuffer_add_printf(b, ",\"from\":");
    adm_json_str(b, e->old_value);
    evbuffer_add_printf(b, ",\"to\":");
    adm_json_str(b, e->new_value);
    evbuffer_add(b, "}", 1);
}

void
adm_json_str(struct evbuffer *b, const char *s)
{
    evbuffer_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            evbuffer_add_printf(b, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f || *p == '<' || *p == '>' || *p == '&')
            evbuffer_add_printf(b, "\\u%04x", *p);
        else
            evbuffer_add(b, p, 1);
    }
    evbuffer_add(b, "\"", 1);
}

/* Appends s as a Prometheus label value (quoted; backslash, quote and newline escaped). */
static void
adm_http_label(struct evbuffer *b, const char *s)
{
    evbuffer_add(b, "\"", 1);
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            evbuffer_add_printf(b, "\\%c", *p);
        else if (*p == '\n')
            evbuffer_add(b, "\\n", 2);
        else
            evbuffer_add(b, p, 1);
    }
    evbuffer_add(b, "\"", 1);
}

void
adm_http_family(struct evbuffer *b, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(b, "# HELP crossfade_%s %s\n# TYPE crossfade_%s %s\n", name, help, name,
                        type);
}

/* A fixed-bucket histogram: name{labels,le=...} cumulative, then _sum (seconds) and _count. */
static void
adm_http_histogram(struct evbuffer *b, const char *name, const char *labels,
                   const struct xf_fixhist *h)
{
    uint64_t cum = 0;

    for (unsigned i = 0; i <= XF_FIX_BUCKETS; i++) {
        cum += h->b[i];
        if (i < XF_FIX_BUCKETS)
            evbuffer_add_printf(b, "crossfade_%s_bucket{%s,le=\"%g\"} %llu\n", name, labels,
                                (double)xf_fix_le_us[i] / 1e6, (unsigned long long)cum);
        else
            evbuffer_add_printf(b, "crossfade_%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels,
                                (unsigned long long)cum);
    }
    evbuffer_add_printf(b, "crossfade_%s_sum{%s} %.6f\n", name, labels, (double)h->sum_us / 1e6);
    evbuffer_add_printf(b, "crossfade_%s_count{%s} %llu\n", name, labels, (unsigned long long)cum);
}

/* ------------------------------------------------------------------ what is read */

/* Everything one response reports, read once. */
struct adm_http_view {
    struct xf_stats *sum;      /* owned */
    struct bal_snapshot *snap; /* a reference */
    struct xf_node_stats *ns;  /* owned: by node id, snap->max_id of them */
    bool *ns_known;            /* owned */
};

static int
adm_http_view_read(struct adm_state *st, struct adm_http_view *v)
{
    memset(v, 0, sizeof(*v));
    v->snap = bal_router_acquire(st->router);
    v->sum = calloc(1, sizeof(*v->sum));
    v->ns = calloc(v->snap->max_id + 1u, sizeof(*v->ns));
    v->ns_known = calloc(v->snap->max_id + 1u, sizeof(*v->ns_known));
    if (v->sum == NULL || v->ns == NULL || v->ns_known == NULL)
        return -1;
    if (st->stats != NULL)
        st->stats(st->stats_arg, v->sum);
    for (uint32_t id = 0; st->monitor.node_stats != NULL && id < v->snap->max_id; id++)
        v->ns_known[id] = st->monitor.node_stats(st->monitor.arg, id, &v->ns[id]) == 0;
    return 0;
}

static void
adm_http_view_free(struct adm_http_view *v)
{
    free(v->sum);
    free(v->ns);
    free(v->ns_known);
    if (v->snap != NULL)
        bal_snapshot_unref(v->snap);
}

/* The ramp's share done, 0..1. */
static double
adm_http_ramp_progress(const struct adm_ramp *r)
{
    return r->n_steps > 0 ? (double)r->done / (double)r->n_steps : 0.0;
}

/* ------------------------------------------------------------------ /metrics */

static void
adm_http_metrics_cluster(struct evbuffer *b, const struct xf_stats *s)
{
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } plain[] = {
#define ADM_CS(field) offsetof(struct xf_cluster_stats, field)
        {"requests_total", "counter", "Requests routed to the cluster (a failover counts in both).",
         ADM_CS(requests)},
        {"retries_total", "counter", "Attempts retried on another node after failing on one.",
         ADM_CS(retries)},
        {"failovers_total", "counter",
         "Requests the split sent here that the other cluster served.", ADM_CS(failovers)},
        {"received_bytes_total", "counter", "Request bytes received from clients.",
         ADM_CS(bytes_in)},
        {"sent_bytes_total", "counter", "Response bytes sent to clients.", ADM_CS(bytes_out)},
        {"active_requests", "gauge", "Requests in flight.", ADM_CS(active)},
        {"tunnels_open", "gauge", "Tunnels (WebSocket, TCP) open.", ADM_CS(tunnels)},
        {"tunnels_total", "counter", "Tunnels opened.", ADM_CS(tunnels_total)},
        {"test_requests_total", "counter", "Test traffic (test_traffic), also in requests_total.",
         ADM_CS(test_requests)},
        {"test_errors_total", "counter", "Test traffic answered with a 5xx or failed.",
         ADM_CS(test_errors)},
        {"queue_waiting_requests", "gauge", "Requests waiting for a node connection.",
         ADM_CS(queue_waiting)},
        {"health_down_total", "counter", "Nodes taken down by health checks.", ADM_CS(health_down)},
        {"ejections_total", "counter", "Nodes ejected by passive detection.", ADM_CS(ejections)},
#undef ADM_CS
    };

    for (size_t k = 0; k < XF_ARRAY_LEN(plain); k++) {
        adm_http_family(b, plain[k].name, plain[k].type, plain[k].help);
        for (int c = 0; c < CFG_CLUSTER_COUNT; c++) {
            const char *cs = (const char *)&s->cluster[c];

            evbuffer_add_printf(b, "crossfade_%s{cluster=\"%s\"} %llu\n", plain[k].name,
                                cfg_cluster_name((enum cfg_cluster_id)c),
                                (unsigned long long)*(const uint64_t *)(cs + plain[k].off));
        }
    }
    adm_http_family(b, "responses_total", "counter",
                    "Responses to clients by status class (the proxy's own errors included).");
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++)
        for (int k = 1; k <= 5; k++)
            evbuffer_add_printf(b,
                                "crossfade_responses_total{cluster=\"%s\",code_class=\"%dxx\"} "
                                "%llu\n",
                                cfg_cluster_name((enum cfg_cluster_id)c), k,
                                (unsigned long long)s->cluster[c].responses[k]);
    adm_http_family(b, "errors_total", "counter",
                    "Requests the proxy failed on the node's side, by kind.");
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++)
        for (int f = 0; f < XF_FAIL_COUNT; f++)
            evbuffer_add_printf(b, "crossfade_errors_total{cluster=\"%s\",kind=\"%s\"} %llu\n",
                                cfg_cluster_name((enum cfg_cluster_id)c), adm_http_fail_kinds[f],
                                (unsigned long long)s->cluster[c].failures[f]);
    for (int k = 0; k < 2; k++) {
        static const char *const names[2] = {"request_duration_seconds", "first_byte_seconds"};
        static const char *const helps[2] = {
            "Time from the request's first byte to the whole response.",
            "Time from the request's first byte to the node's response head."};

        adm_http_family(b, names[k], "histogram", helps[k]);
        for (int c = 0; c < CFG_CLUSTER_COUNT; c++) {
            char labels[32];

            snprintf(labels, sizeof(labels), "cluster=\"%s\"",
                     cfg_cluster_name((enum cfg_cluster_id)c));
            adm_http_histogram(b, names[k], labels,
                               k == 0 ? &s->cluster[c].total : &s->cluster[c].ttfb);
        }
    }
}

/* One line per node of the snapshot: "crossfade_NAME{cluster="x",node="ADDR"EXTRA} VALUE". */
static void
adm_http_node_lines(struct evbuffer *b, const struct adm_http_view *v, const char *name,
                    uint64_t (*value)(const struct xf_node_stats *ns, const void *arg),
                    const void *arg, const char *extra)
{
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++) {
        const struct bal_cluster *cl = &v->snap->clusters[c];

        for (size_t i = 0; i < cl->n_nodes; i++) {
            const struct bal_node *n = &cl->nodes[i];
            static const struct xf_node_stats zero;
            const struct xf_node_stats *ns = v->ns_known[n->id] ? &v->ns[n->id] : &zero;

            evbuffer_add_printf(b, "crossfade_%s{cluster=\"%s\",node=", name,
                                cfg_cluster_name((enum cfg_cluster_id)c));
            adm_http_label(b, n->addr.text);
            evbuffer_add_printf(b, "%s} %llu\n", extra, (unsigned long long)value(ns, arg));
        }
    }
}

static uint64_t
adm_http_ns_field(const struct xf_node_stats *ns, const void *arg)
{
    return *(const uint64_t *)((const char *)ns + *(const size_t *)arg);
}

static void
adm_http_metrics_nodes(struct adm_state *st, struct evbuffer *b, const struct adm_http_view *v)
{
    static const struct {
        const char *name, *help;
        size_t off;
    } plain[] = {
#define ADM_NS(field) offsetof(struct xf_node_stats, field)
        {"node_requests_total", "Attempts sent to the node (a retry counts on each node tried).",
         ADM_NS(requests)},
        {"node_retries_total", "Attempts that failed on the node and were retried elsewhere.",
         ADM_NS(retries)},
        {"node_received_bytes_total", "Request bytes of the requests the node served.",
         ADM_NS(bytes_in)},
        {"node_sent_bytes_total", "Response bytes of the requests the node served.",
         ADM_NS(bytes_out)},
#undef ADM_NS
    };

    for (size_t k = 0; k < XF_ARRAY_LEN(plain); k++) {
        adm_http_family(b, plain[k].name, "counter", plain[k].help);
        adm_http_node_lines(b, v, plain[k].name, adm_http_ns_field, &plain[k].off, "");
    }
    adm_http_family(b, "node_responses_total", "counter",
                    "The node's own responses by status class.");
    for (int k = 1; k <= 5; k++) {
        char extra[32];
        size_t off = offsetof(struct xf_node_stats, responses) + (size_t)k * sizeof(uint64_t);

        snprintf(extra, sizeof(extra), ",code_class=\"%dxx\"", k);
        adm_http_node_lines(b, v, "node_responses_total", adm_http_ns_field, &off, extra);
    }
    adm_http_family(b, "node_errors_total", "counter",
                    "Requests that failed on the node, by kind.");
    for (int f = 0; f < XF_FAIL_COUNT; f++) {
        char extra[32];
        size_t off = offsetof(struct xf_node_stats, failures) + (size_t)f * sizeof(uint64_t);

        snprintf(extra, sizeof(extra), ",kind=\"%s\"", adm_http_fail_kinds[f]);
        adm_http_node_lines(b, v, "node_errors_total", adm_http_ns_field, &off, extra);
    }
    /* Each family's lines together, as the text format wants them. */
    for (int k = 0; k < 4; k++) {
        static const char *const names[4] = {"node_up", "node_active_requests",
                                             "node_idle_connections", "node_tunnels_open"};
        static const char *const helps[4] = {
            "1 when the node takes new requests (in service and healthy), else 0.",
            "Requests in flight on the node.", "Idle pooled connections to the node.",
            "Tunnels (WebSocket, TCP) open to the node."};

        adm_http_family(b, names[k], "gauge", helps[k]);
        for (int c = 0; c < CFG_CLUSTER_COUNT; c++) {
            const struct bal_cluster *cl = &v->snap->clusters[c];

            for (size_t i = 0; i < cl->n_nodes; i++) {
                const struct bal_node *n = &cl->nodes[i];
                unsigned val[4] = {bal_node_takes(n) ? 1u : 0u, 0, 0, 0};

                if (k > 0 && st->node_info != NULL)
                    st->node_info(st->node_info_arg, n->id, &val[1], &val[2], &val[3]);
                evbuffer_add_printf(b, "crossfade_%s{cluster=\"%s\",node=", names[k],
                                    cfg_cluster_name((enum cfg_cluster_id)c));
                adm_http_label(b, n->addr.text);
                evbuffer_add_printf(b, "} %u\n", val[k]);
            }
        }
    }
    adm_http_family(b, "node_request_duration_seconds", "histogram",
                    "Time to the whole response, of the node's own responses.");
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++) {
        const struct bal_cluster *cl = &v->snap->clusters[c];

        for (size_t i = 0; i < cl->n_nodes; i++) {
            const struct bal_node *n = &cl->nodes[i];
            struct evbuffer *lb = evbuffer_new();
            static const struct xf_node_stats zero;
            char labels[256];
            size_t len;

            if (lb == NULL)
                continue;
            evbuffer_add_printf(lb,
                                "cluster=\"%s\",node=", cfg_cluster_name((enum cfg_cluster_id)c));
            adm_http_label(lb, n->addr.text);
            len = XF_MIN(evbuffer_get_length(lb), sizeof(labels) - 1);
            evbuffer_remove(lb, labels, len);
            labels[len] = '\0';
            evbuffer_free(lb);
            adm_http_histogram(b, "node_request_duration_seconds", labels,
                               v->ns_known[n->id] ? &v->ns[n->id].total : &zero.total);
        }
    }
}

static void
adm_http_metrics(struct adm_state *st, struct evbuffer *b, const struct adm_http_view *v)
{
    const struct adm_guard *g = &st->guard;
    const struct xf_stats *s = v->sum;

    adm_http_family(b, "build_info", "gauge", "The running crossfade's version (always 1).");
    evbuffer_add_printf(b, "crossfade_build_info{version=\"%s\"} 1\n", XF_VERSION);
    adm_http_family(b, "start_time_seconds", "gauge", "When the process started, Unix time.");
    evbuffer_add_printf(b, "crossfade_start_time_seconds %lld\n", (long long)st->started);
    adm_http_family(b, "config_generation", "gauge",
                    "The configuration in force: 1 at start, one more per reload.");
    evbuffer_add_printf(b, "crossfade_config_generation %u\n", st->reloads + 1);
    adm_http_family(b, "weight_ratio", "gauge",
                    "The share of clients the split sends to each "
                    "cluster (y's is the weight), 0 to 1.");
    evbuffer_add_printf(b, "crossfade_weight_ratio{cluster=\"x\"} %.4f\n",
                        (double)(BAL_BUCKETS - v->snap->weight_bp) / BAL_BUCKETS);
    evbuffer_add_printf(b, "crossfade_weight_ratio{cluster=\"y\"} %.4f\n",
                        (double)v->snap->weight_bp / BAL_BUCKETS);
    adm_http_family(b, "frozen", "gauge", "1 while the upgrade freeze is on.");
    evbuffer_add_printf(b, "crossfade_frozen %d\n", v->snap->freeze ? 1 : 0);
    adm_http_family(b, "ramp_running", "gauge",
                    "1 while a ramp moves the weight (0 when none or paused).");
    evbuffer_add_printf(b, "crossfade_ramp_running %d\n", st->ramp.state == ADM_RAMP_RUNNING);
    adm_http_family(b, "ramp_progress_ratio", "gauge",
                    "The ramp's steps taken over all (0: none).");
    evbuffer_add_printf(b, "crossfade_ramp_progress_ratio %.4f\n",
                        st->ramp.state != ADM_RAMP_NONE ? adm_http_ramp_progress(&st->ramp) : 0.0);
    adm_http_family(b, "ramp_target_ratio", "gauge", "The weight the ramp goes to, 0 to 1.");
    evbuffer_add_printf(b, "crossfade_ramp_target_ratio %.4f\n",
                        st->ramp.state != ADM_RAMP_NONE ? (double)st->ramp.to_bp / BAL_BUCKETS
                                                        : (double)v->snap->weight_bp / BAL_BUCKETS);
    adm_http_family(b, "guard_enabled", "gauge", "1 while the guard judges y against x.");
    evbuffer_add_printf(b, "crossfade_guard_enabled %d\n", adm_guard_is_on(st));
    adm_http_family(b, "guard_tripped", "gauge", "1 after the guard acted, until guard reset.");
    evbuffer_add_printf(b, "crossfade_guard_tripped %d\n", g->tripped);
    adm_http_family(b, "guard_state", "gauge", "The guard's latest verdict (1 for the current).");
    for (int k = 0; k < ADM_VERDICT_COUNT; k++)
        evbuffer_add_printf(b, "crossfade_guard_state{state=\"%s\"} %d\n",
                            adm_verdict_name((enum adm_verdict)k), (int)g->verdict == k);
    adm_http_family(b, "guard_verdicts_total", "counter", "Verdicts since the start, by kind.");
    for (int k = ADM_VERDICT_INCONCLUSIVE; k < ADM_VERDICT_COUNT; k++)
        evbuffer_add_printf(b, "crossfade_guard_verdicts_total{verdict=\"%s\"} %llu\n",
                            adm_verdict_name((enum adm_verdict)k),
                            (unsigned long long)g->verdicts[k]);
    adm_http_family(b, "guard_trips_total", "counter", "Times the guard acted on a failure.");
    evbuffer_add_printf(b, "crossfade_guard_trips_total %llu\n", (unsigned long long)g->trips);
    adm_fleet_metrics(st, b);
    adm_http_metrics_cluster(b, s);
    adm_http_metrics_nodes(st, b, v);
    adm_http_family(b, "client_connections", "gauge", "Client connections open.");
    evbuffer_add_printf(b, "crossfade_client_connections %llu\n",
                        (unsigned long long)s->client_connections);
    adm_http_family(b, "tls_handshakes_total", "counter",
                    "Clients' TLS handshakes by outcome (resumed ones also count as completed).");
    evbuffer_add_printf(b,
                        "crossfade_tls_handshakes_total{result=\"completed\"} %llu\n"
                        "crossfade_tls_handshakes_total{result=\"resumed\"} %llu\n"
                        "crossfade_tls_handshakes_total{result=\"failed\"} %llu\n",
                        (unsigned long long)s->tls_handshakes, (unsigned long long)s->tls_resumed,
                        (unsigned long long)s->tls_failed);
    adm_http_family(b, "overrides_ignored_total", "counter",
                    "Tester overrides ignored, by reason.");
    evbuffer_add_printf(b,
                        "crossfade_overrides_ignored_total{reason=\"invalid\"} %llu\n"
                        "crossfade_overrides_ignored_total{reason=\"not_allowed\"} %llu\n",
                        (unsigned long long)s->override_invalid,
                        (unsigned long long)s->override_not_allowed);
}

/* ------------------------------------------------------------------ /api/stats */

static void
adm_http_json_counts(struct evbuffer *b, const uint64_t *responses)
{
    evbuffer_add_printf(b, "{\"1xx\":%llu,\"2xx\":%llu,\"3xx\":%llu,\"4xx\":%llu,\"5xx\":%llu}",
                        (unsigned long long)responses[1], (unsigned long long)responses[2],
                        (unsigned long long)responses[3], (unsigned long long)responses[4],
                        (unsigned long long)responses[5]);
}

static void
adm_http_json_side(struct evbuffer *b, const struct adm_guard_side *s)
{
    evbuffer_add_printf(b,
                        "{\"requests\":%llu,\"errors\":%llu,\"error_rate\":%.3f,\"p50_us\":%llu,"
                        "\"p99_us\":%llu}",
                        (unsigned long long)s->requests, (unsigned long long)s->errors,
                        s->requests ? 100.0 * (double)s->errors / (double)s->requests : 0.0,
                        (unsigned long long)s->p50_us, (unsigned long long)s->p99_us);
}

static void
adm_http_json_clusters(struct adm_state *st, struct evbuffer *b, const struct xf_stats *s)
{
    static const double q[3] = {0.5, 0.9, 0.99};

    evbuffer_add_printf(b, "\"clusters\":{");
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++) {
        const struct xf_cluster_stats *cs = &s->cluster[c];
        struct xf_win *w = malloc(sizeof(*w));
        uint64_t us[3] = {0, 0, 0}, n = 0;

        if (w != NULL) {
            adm_window(st, c, 60, w);
            n = xf_win_percentiles(w, q, 3, us);
            free(w);
        }
        evbuffer_add_printf(b,
                            "%s\"%s\":{\"requests\":%llu,\"active\":%llu,\"test_requests\":%llu,"
                            "\"responses\":",
                            c > 0 ? "," : "", cfg_cluster_name((enum cfg_cluster_id)c),
                            (unsigned long long)cs->requests, (unsigned long long)cs->active,
                            (unsigned long long)cs->test_requests);
        adm_http_json_counts(b, cs->responses);
        evbuffer_add_printf(b, ",\"failures\":{");
        for (int f = 0; f < XF_FAIL_COUNT; f++)
            evbuffer_add_printf(b, "%s\"%s\":%llu", f > 0 ? "," : "", adm_http_json_fail[f],
                                (unsigned long long)cs->failures[f]);
        evbuffer_add_printf(b,
                            "},\"failovers\":%llu,\"retries\":%llu,\"bytes_in\":%llu,"
                            "\"bytes_out\":%llu,\"tunnels\":{\"open\":%llu,\"total\":%llu},"
                            "\"latency_1m\":{\"responses\":%llu,\"p50_us\":%llu,\"p90_us\":%llu,"
                            "\"p99_us\":%llu}}",
                            (unsigned long long)cs->failovers, (unsigned long long)cs->retries,
                            (unsigned long long)cs->bytes_in, (unsigned long long)cs->bytes_out,
                            (unsigned long long)cs->tunnels, (unsigned long long)cs->tunnels_total,
                            (unsigned long long)n, (unsigned long long)us[0],
                            (unsigned long long)us[1], (unsigned long long)us[2]);
    }
    evbuffer_add_printf(b, "},");
}

static void
adm_http_json_nodes(struct adm_state *st, struct evbuffer *b, const struct adm_http_view *v)
{
    bool first = true;

    evbuffer_add_printf(b, "\"nodes\":[");
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++) {
        const struct bal_cluster *cl = &v->snap->clusters[c];

        for (size_t i = 0; i < cl->n_nodes; i++) {
            const struct bal_node *n = &cl->nodes[i];
            static const struct xf_node_stats zero;
            const struct xf_node_stats *ns = v->ns_known[n->id] ? &v->ns[n->id] : &zero;
            unsigned active = 0, idle = 0, tunnels = 0;
            struct adm_node_health h = {.check = "-"};

            if (st->node_info != NULL)
                st->node_info(st->node_info_arg, n->id, &active, &idle, &tunnels);
            if (st->health_info != NULL)
                st->health_info(st->health_info_arg, n->id, &h);
            evbuffer_add_printf(b, "%s{\"cluster\":\"%s\",\"address\":", first ? "" : ",",
                                cfg_cluster_name((enum cfg_cluster_id)c));
            adm_json_str(b, n->addr.text);
            evbuffer_add_printf(b,
                                ",\"state\":\"%s\",\"weight\":%u,\"active\":%u,\"idle\":%u,"
                                "\"check\":",
                                bal_node_status_name(n), n->weight, active, idle);
            adm_json_str(b, h.check);
            evbuffer_add_printf(
                b, ",\"requests\":%llu,\"responses\":", (unsigned long long)ns->requests);
            adm_http_json_counts(b, ns->responses);
            evbuffer_add_printf(b, ",\"retries\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu}",
                                (unsigned long long)ns->retries, (unsigned long long)ns->bytes_in,
                                (unsigned long long)ns->bytes_out);
            first = false;
        }
    }
    evbuffer_add_printf(b, "],");
}

/* The last XF_MON_SECONDS seconds, oldest first, one point each. */
static void
adm_http_json_history(struct adm_state *st, struct evbuffer *b)
{
    const struct xf_mon *m = st->monitor.mon != NULL ? st->monitor.mon(st->monitor.arg) : NULL;
    uint64_t end = m != NULL ? m->last : 0,
             first = end >= XF_MON_SECONDS ? end - XF_MON_SECONDS + 1 : 1;
    int64_t end_ms = 0;
    static const char *const series[4] = {"requests", "errors", "p50_us", "p99_us"};

    if (m != NULL && end > 0 && m->sec[end % XF_MON_SECONDS].second == end)
        end_ms = m->sec[end % XF_MON_SECONDS].wall_ms;
    evbuffer_add_printf(b, "\"history\":{\"end_ms\":%lld,\"weight\":[", (long long)end_ms);
    for (uint64_t sec = first; m != NULL && sec <= end; sec++) {
        const struct xf_mon_sec *ms = &m->sec[sec % XF_MON_SECONDS];

        evbuffer_add_printf(b, "%s%.2f", sec > first ? "," : "",
                            ms->second == sec ? ms->weight_bp / 100.0 : 0.0);
    }
    evbuffer_add_printf(b, "]");
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++) {
        evbuffer_add_printf(b, ",\"%s\":{", cfg_cluster_name((enum cfg_cluster_id)c));
        for (int k = 0; k < 4; k++) {
            evbuffer_add_printf(b, "%s\"%s\":[", k > 0 ? "," : "", series[k]);
            for (uint64_t sec = first; m != NULL && sec <= end; sec++) {
                const struct xf_mon_sec *ms = &m->sec[sec % XF_MON_SECONDS];
                uint32_t val = 0;

                if (ms->second == sec)
                    val = k == 0   ? ms->requests[c]
                          : k == 1 ? ms->errors[c]
                          : k == 2 ? ms->p50_us[c]
                                   : ms->p99_us[c];
                evbuffer_add_printf(b, "%s%u", sec > first ? "," : "", val);
            }
            evbuffer_add_printf(b, "]");
        }
        evbuffer_add_printf(b, "}");
    }
    evbuffer_add_printf(b, "},");
}

static void
adm_http_json_events(struct adm_state *st, struct evbuffer *b)
{
    size_t n = st->events.n, from = n > ADM_HTTP_EVENTS ? n - ADM_HTTP_EVENTS : 0;

    evbuffer_add_printf(b, "\"events\":[");
    for (size_t i = from; i < n; i++) {
        if (i > from)
            evbuffer_add(b, ",", 1);
        adm_json_event(b, adm_events_get(&st->events, i));
    }
    evbuffer_add_printf(b, "],");
}

static void
adm_http_api_stats(struct adm_state *st, struct evbuffer *b, const struct adm_http_view *v)
{
    const struct cfg_guard *gc = &st->cfg->guard;
    const struct adm_guard *g = &st->guard;
    const struct adm_ramp *r = &st->ramp;
    const char *status = st->status != NULL ? st->status(st->status_arg) : "serving";

    evbuffer_add_printf(b,
                        "{\"version\":\"%s\",\"status\":\"%s\",\"generation\":%u,"
                        "\"uptime_s\":%llu,\"now_ms\":%lld,\"weight\":%.2f,\"frozen\":%s,"
                        "\"ramp\":",
                        XF_VERSION, status, st->reloads + 1,
                        (unsigned long long)((xf_now_ms() - st->started_ms) / 1000u),
                        (long long)xf_wall_ms(), v->snap->weight_bp / 100.0,
                        v->snap->freeze ? "true" : "false");
    if (r->state == ADM_RAMP_NONE) {
        evbuffer_add_printf(b, "null,");
    } else {
        const char *state = r->state == ADM_RAMP_PAUSED ? "paused"
                            : r->guard_held_ms != 0     ? "held"
                                                        : "running";
        int64_t next = 0;

        if (r->state == ADM_RAMP_RUNNING && r->guard_held_ms == 0 && r->done < r->n_steps)
            next = xf_wall_ms() + (adm_ramp_due(r, r->done + 1) - (int64_t)st->mono_ms());
        evbuffer_add_printf(b,
                            "{\"state\":\"%s\",\"from\":%.2f,\"to\":%.2f,\"step\":%.2f,"
                            "\"done\":%u,\"steps\":%u,\"next_at_ms\":%lld,\"progress\":%.4f,"
                            "\"guarded\":%s},",
                            state, r->from_bp / 100.0, r->to_bp / 100.0, r->step_bp / 100.0,
                            r->done, r->n_steps, (long long)next, adm_http_ramp_progress(r),
                            r->guarded ? "true" : "false");
    }
    evbuffer_add_printf(b,
                        "\"guard\":{\"enabled\":%s,\"configured\":%s,\"state\":\"%s\","
                        "\"tripped\":%s,\"reason\":",
                        adm_guard_is_on(st) ? "true" : "false", gc->configured ? "true" : "false",
                        g->tripped ? "tripped" : adm_verdict_name(g->verdict),
                        g->tripped ? "true" : "false");
    adm_json_str(b, g->tripped ? g->trip : g->reason);
    evbuffer_add_printf(b,
                        ",\"verdict\":\"%s\",\"window_s\":%u,\"min_requests\":%u,"
                        "\"max_error_rate_delta\":%.2f,\"max_latency_ratio\":%.2f,"
                        "\"min_latency_delta_us\":%u,\"confidence\":%.4f,\"action\":\"%s\","
                        "\"x\":",
                        adm_verdict_name(g->verdict), gc->window_s, gc->min_requests,
                        gc->max_error_delta_bp / 100.0, gc->max_latency_ratio,
                        gc->min_latency_delta_us, gc->confidence,
                        gc->action == CFG_GUARD_ROLLBACK ? "rollback"
                        : gc->action == CFG_GUARD_PAUSE  ? "pause"
                                                         : "step_down");
    adm_http_json_side(b, &g->x);
    evbuffer_add_printf(b, ",\"y\":");
    adm_http_json_side(b, &g->y);
    evbuffer_add_printf(b, "},");
    adm_http_json_clusters(st, b, v->sum);
    adm_http_json_nodes(st, b, v);
    adm_http_json_history(st, b);
    adm_http_json_events(st, b);
    evbuffer_add_printf(b, "\"client_connections\":%llu}\n",
                        (unsigned long long)v->sum->client_connections);
}

/* ------------------------------------------------------------------ the server */

struct adm_http {
    struct evhttp *http;  /* owned */
    struct adm_state *st; /* borrowed */
};

static void
adm_http_send(struct evhttp_request *req, int code, const char *reason, const char *type,
              struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);

    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        /* The length GET would have, and no body: evhttp would send it (a keep-alive client
         * would read it as the start of the next response). */
        char len[24];

        snprintf(len, sizeof(len), "%zu", evbuffer_get_length(body));
        evhttp_add_header(h, "Content-Length", len);
        evbuffer_drain(body, evbuffer_get_length(body));
    }
    evhttp_send_reply(req, code, reason, body);
}

static void
adm_http_on_request(struct evhttp_request *req, void *arg)
{
    struct adm_http *h = arg;
    struct adm_state *st = h->st;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    struct evbuffer *body = evbuffer_new();
    struct adm_http_view v;

    if (body == NULL) {
        evhttp_send_error(req, 503, "Out of memory");
        return;
    }
    if (path == NULL || path[0] == '\0')
        path = "/";
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
        evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        evbuffer_add_printf(body, "read-only: GET or HEAD; changes go through the admin socket\n");
        adm_http_send(req, 405, "Method Not Allowed", "text/plain; charset=utf-8", body);
        evbuffer_free(body);
        return;
    }
    if (strcmp(path, "/healthz") == 0) {
        const char *status = st->status != NULL ? st->status(st->status_arg) : "serving";
        bool ok = strcmp(status, "serving") == 0;

        evbuffer_add_printf(body, "%s\n", status);
        adm_http_send(req, ok ? 200 : 503, ok ? "OK" : "Service Unavailable",
                      "text/plain; charset=utf-8", body);
    } else if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0) {
        evbuffer_add(body, adm_status_page, adm_status_page_len);
        adm_http_send(req, 200, "OK", "text/html; charset=utf-8", body);
    } else if (strcmp(path, "/metrics") == 0 || strcmp(path, "/api/stats") == 0) {
        if (adm_http_view_read(st, &v) == -1) {
            adm_http_view_free(&v);
            evbuffer_free(body);
            evhttp_send_error(req, 503, "Out of memory");
            return;
        }
        if (path[1] == 'm') {
            adm_http_metrics(st, body, &v);
            adm_http_send(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body);
        } else {
            adm_http_api_stats(st, body, &v);
            adm_http_send(req, 200, "OK", "application/json", body);
        }
        adm_http_view_free(&v);
    } else {
        evbuffer_add_printf(body, "not found: try /, /metrics, /api/stats or /healthz\n");
        adm_http_send(req, 404, "Not Found", "text/plain; charset=utf-8", body);
    }
    evbuffer_free(body);
}

struct adm_http *
adm_http_new(struct event_base *base, struct adm_state *st, const struct cfg_addr *addr,
             struct xf_err *err)
{
    struct adm_http *h = calloc(1, sizeof(*h));
    int fd = -1, one = 1;

    if (h == NULL) {
        xf_err_set(err, "admin.http: out of memory");
        return NULL;
    }
    h->st = st;
    fd = socket(addr->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    /* SO_REUSEPORT: a process taking over (--takeover) binds it while the old one still serves. */
    if (fd == -1 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1 ||
        bind(fd, (const struct sockaddr *)&addr->sa, addr->sa_len) == -1 || listen(fd, 64) == -1) {
        xf_err_set(err, "admin.http: cannot listen on %s: %s", addr->text, strerror(errno));
        goto fail;
    }
    h->http = evhttp_new(base);
    if (h->http == NULL || evhttp_accept_socket(h->http, fd) == -1) {
        xf_err_set(err, "admin.http: cannot serve %s", addr->text);
        goto fail;
    }
    fd = -1; /* evhttp's now */
    evhttp_set_timeout(h->http, ADM_HTTP_TIMEOUT_S);
    evhttp_set_max_headers_size(h->http, ADM_HTTP_HEADERS_MAX);
    evhttp_set_max_body_size(h->http, 0);
    /* Read-only: every method reaches the handler, which answers 405 to all but GET and HEAD
     * (evhttp's own refusal would be a 501). */
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH |
                                            EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT);
    evhttp_set_gencb(h->http, adm_http_on_request, h);
    XF_LOG(XF_LOG_INFO, "admin", "event=http_listening address=%s", addr->text);
    return h;
fail:
    if (fd != -1)
        close(fd);
    adm_http_free(h);
    return NULL;
}

void
adm_http_free(struct adm_http *h)
{
    if (h == NULL)
        return;
    if (h->http != NULL)
        evhttp_free(h->http);
    free(h);
}
