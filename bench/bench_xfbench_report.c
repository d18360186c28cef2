/* bench/bench_xfbench_report.c -- xfbench's reports: live line, summary, --json, --html (SVG). */
#include "bench/bench_xfbench.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* "0.52ms", "12.3ms", "1.25s" */
static const char *
bench_xfb_ms_text(uint64_t ns, char *buf, size_t size)
{
    double ms = (double)ns / 1e6;

    if (ms < 10)
        snprintf(buf, size, "%.2fms", ms);
    else if (ms < 1000)
        snprintf(buf, size, "%.1fms", ms);
    else
        snprintf(buf, size, "%.2fs", ms / 1000);
    return buf;
}

static double
bench_xfb_rps(const struct bench_xfb_sec *s)
{
    return s->span_s > 0 ? (double)s->c.responses / s->span_s : 0;
}

void
bench_xfb_live_line(const struct bench_xfb_opts *o, size_t sec, const struct bench_xfb_sec *s,
                    uint64_t done, char *buf, size_t size)
{
    char p50[16], p99[16], where[64], share[48] = "y -", wt[8];
    uint64_t errors = bench_xfb_counts_errors(&s->c);

    if (o->duration_ms > 0)
        snprintf(where, sizeof(where), "[%3zus/%llus]", sec + 1,
                 (unsigned long long)((o->duration_ms + 999) / 1000));
    else
        snprintf(where, sizeof(where), "[%3zus %llu/%llu]", sec + 1, (unsigned long long)done,
                 (unsigned long long)o->requests);
    if (s->c.routed > 0)
        snprintf(share, sizeof(share), "y %5.1f%%", (double)s->c.on_y * 100 / (double)s->c.routed);
    if (s->weight_bp >= 0) {
        size_t n = strlen(share);
        snprintf(share + n, sizeof(share) - n, " (weight %s)",
                 bench_xfb_weight_text((unsigned)s->weight_bp, wt));
    }
    snprintf(buf, size, "%s %8.0f req/s  p50 %8s  p99 %8s  errors %llu  %s", where,
             bench_xfb_rps(s), bench_xfb_ms_text(s->p50_ns, p50, sizeof(p50)),
             bench_xfb_ms_text(s->p99_ns, p99, sizeof(p99)), (unsigned long long)errors, share);
    if (o->tls) {
        size_t n = strlen(buf);
        if (n < size)
            snprintf(buf + n, size - n, "  handshakes %.0f/s (%.0f%% resumed)",
                     s->span_s > 0 ? (double)s->c.handshakes / s->span_s : 0,
                     s->c.handshakes > 0 ? (double)s->c.resumed * 100 / (double)s->c.handshakes
                                         : 0.0);
    }
}

/* The "what was run" part shared by the reports. */
static void
bench_xfb_mode_text(const struct bench_xfb_opts *o, char *buf, size_t size)
{
    char rate[48] = "closed loop";

    if (o->rate_milli > 0)
        snprintf(rate, sizeof(rate), "open loop at %.3g req/s", (double)o->rate_milli / 1000);
    snprintf(buf, size, "%u thread%s, %u connection%s, %s", o->threads, o->threads == 1 ? "" : "s",
             o->conns, o->conns == 1 ? "" : "s", rate);
}

static void
bench_xfb_keys_text(const struct bench_xfb_opts *o, char *buf, size_t size)
{
    if (o->keys.n == 0)
        snprintf(buf, size, "none (requests carry no split key)");
    else if (o->keys.zipf)
        snprintf(buf, size, "%llu, Zipf s=%g, in %s %s", (unsigned long long)o->keys.n, o->zipf_s,
                 o->key_cookie != NULL ? "cookie" : "header",
                 o->key_cookie != NULL ? o->key_cookie : o->key_header);
    else
        snprintf(buf, size, "%llu, uniform, in %s %s", (unsigned long long)o->keys.n,
                 o->key_cookie != NULL ? "cookie" : "header",
                 o->key_cookie != NULL ? o->key_cookie : o->key_header);
}

/* Per-cluster totals from the route table: the cluster is the value's first word. */
struct bench_xfb_cluster {
    char name[32];
    uint64_t count;
};

static size_t
bench_xfb_clusters(const struct bench_xfb_result *r, struct bench_xfb_cluster *out, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < r->nroutes; i++) {
        const char *name = r->routes[i].name;
        size_t len = strcspn(name, " ");
        size_t j;

        if (len >= sizeof(out[0].name))
            len = sizeof(out[0].name) - 1;
        for (j = 0; j < n; j++) {
            if (strlen(out[j].name) == len && memcmp(out[j].name, name, len) == 0)
                break;
        }
        if (j == n) {
            if (n == max)
                continue;
            memcpy(out[n].name, name, len);
            out[n].name[len] = '\0';
            out[n].count = 0;
            n++;
        }
        out[j].count += r->routes[i].count;
    }
    return n;
}

static double
bench_xfb_pct(uint64_t part, uint64_t whole)
{
    return whole > 0 ? (double)part * 100 / (double)whole : 0;
}

static void
bench_xfb_text_share(const struct bench_xfb_result *r, FILE *f)
{
    struct bench_xfb_cluster cl[BENCH_XFB_ROUTES_MAX];
    size_t ncl = bench_xfb_clusters(r, cl, XF_ARRAY_LEN(cl));
    uint64_t routed = r->totals.routed;

    if (routed == 0) {
        fprintf(f, "  share:     no response carried %s\n", r->o->route_header);
        return;
    }
    fprintf(f, "  share:    ");
    for (size_t i = 0; i < ncl; i++)
        fprintf(f, " %s %.2f%% (%llu)", cl[i].name, bench_xfb_pct(cl[i].count, routed),
                (unsigned long long)cl[i].count);
    fprintf(f, "  of %llu routed responses\n", (unsigned long long)routed);
    for (size_t i = 0; i < r->nroutes; i++)
        fprintf(f, "             %-32s %6.2f%%  %llu\n", r->routes[i].name,
                bench_xfb_pct(r->routes[i].count, routed), (unsigned long long)r->routes[i].count);
    if (r->routes_other > 0)
        fprintf(f, "             %-32s %6.2f%%  %llu\n", "(other values)",
                bench_xfb_pct(r->routes_other, routed), (unsigned long long)r->routes_other);
}

/* Where the weight came from, when it matters: with -s, or a history that ended early. */
static void
bench_xfb_text_weights(const struct bench_xfb_result *r, FILE *f)
{
    if (r->wsrc == BENCH_XFB_WSRC_WATCH && !r->weights_lost)
        fprintf(f, "  weights:   from watch, each change at its time (%zu change%s)\n", r->nchanges,
                r->nchanges == 1 ? "" : "s");
    else if (r->wsrc == BENCH_XFB_WSRC_WATCH)
        fprintf(f, "  weights:   from watch until %.2fs, then show weight once a second: %s\n",
                (double)r->weights_lost_us / 1e6, r->weights_note);
    else if (r->wsrc == BENCH_XFB_WSRC_POLL)
        fprintf(f,
                "  weights:   from show weight once a second, each change known within about "
                "a second: %s\n",
                r->weights_note);
}

static void
bench_xfb_text_check(const struct bench_xfb_result *r, FILE *f)
{
    size_t judged = r->njudged;

    if (!r->checked)
        return;
    if (r->passed) {
        if (r->initial_bp < 0)
            fprintf(f, "  check:     passed: no failed request (y share not judged: the weight is "
                       "unknown without -s or --weight)\n");
        else
            fprintf(f,
                    "  check:     passed: no failed request; y share within %.2f pp of the weight "
                    "in %zu window%s\n",
                    (double)r->o->tolerance_bp / 100, judged, judged == 1 ? "" : "s");
    } else {
        fprintf(f, "  check:     FAILED\n");
        for (size_t i = 0; i < r->nfails; i++)
            fprintf(f, "             - %s\n", r->fails[i]);
    }
    if (r->weights_lost)
        fprintf(f, "             nothing judged after %.2fs: %s\n",
                (double)r->weights_lost_us / 1e6, r->weights_note);
    for (size_t i = 0; i < r->nwindows; i++) {
        const struct bench_xfb_window *w = &r->windows[i];
        char span[48], expect[48] = "     -";
        snprintf(span, sizeof(span), "%.1fs-%.1fs", w->from_s, w->to_s);
        if (!w->unknown && w->hi_bp - w->lo_bp < 0.5)
            snprintf(expect, sizeof(expect), "%6.2f", w->expect_bp / 100);
        else if (!w->unknown)
            snprintf(expect, sizeof(expect), "%6.2f (%.2f-%.2f)", w->expect_bp / 100,
                     w->lo_bp / 100, w->hi_bp / 100);
        fprintf(f, "             %-14s weight %s  y %6.2f%% of %llu  %s\n", span, expect,
                bench_xfb_pct(w->on_y, w->routed), (unsigned long long)w->routed,
                w->unknown   ? "not judged (weight not known)"
                : !w->judged ? "not judged (too few responses)"
                : w->ok      ? "ok"
                             : "OFF");
    }
    if (r->windows_more > 0)
        fprintf(f, "             (%zu more windows judged, not listed)\n", r->windows_more);
}

/* How the server's certificate is checked: "certificate of NAME verified against --ca FILE". */
static void
bench_xfb_verify_text(const struct bench_xfb_opts *o, char *buf, size_t size)
{
    if (o->insecure)
        snprintf(buf, size, "certificate not verified (--insecure)");
    else
        snprintf(buf, size, "certificate of %s verified against %s%s", o->tls_name,
                 o->ca_file != NULL ? "--ca " : "the system's CA store",
                 o->ca_file != NULL ? o->ca_file : "");
}

/* https: what was agreed, handshakes per second and the share resumed, the first failure. */
static void
bench_xfb_text_tls(const struct bench_xfb_result *r, FILE *f)
{
    const struct bench_xfb_counts *t = &r->totals;
    char verify[512];

    if (!r->o->tls)
        return;
    bench_xfb_verify_text(r->o, verify, sizeof(verify));
    if (r->tls_version != NULL)
        fprintf(f, "  tls:       %s %s, %s\n", r->tls_version, r->tls_cipher, verify);
    else
        fprintf(f, "  tls:       no handshake completed (%s)\n", verify);
    fprintf(f, "             %llu handshakes, %.1f/s, %llu resumed (%.2f%%)\n",
            (unsigned long long)t->handshakes,
            r->elapsed_s > 0 ? (double)t->handshakes / r->elapsed_s : 0,
            (unsigned long long)t->resumed, bench_xfb_pct(t->resumed, t->handshakes));
    if (r->tls_error[0] != '\0')
        fprintf(f, "             first failure %s\n", r->tls_error);
}

int
bench_xfb_report_text(const struct bench_xfb_result *r, FILE *f)
{
    const struct bench_xfb_opts *o = r->o;
    const struct bench_xfb_hist *h = r->hist;
    char mode[128], keys[160], a[16], b[16], c[16], d[16], e[16], m[16];
    uint64_t errors = bench_xfb_counts_errors(&r->totals);

    bench_xfb_mode_text(o, mode, sizeof(mode));
    bench_xfb_keys_text(o, keys, sizeof(keys));
    fprintf(f, "xfbench %s %s: %.2fs, %s%s\n", o->method, o->url, r->elapsed_s, mode,
            r->interrupted ? " (interrupted)" : "");
    fprintf(f, "  keys:      %s\n", keys);
    fprintf(f, "  requests:  %llu responses, %.1f/s, %.2f MiB received, %llu connects\n",
            (unsigned long long)r->totals.responses,
            r->elapsed_s > 0 ? (double)r->totals.responses / r->elapsed_s : 0,
            (double)r->totals.bytes / (1024.0 * 1024.0), (unsigned long long)r->connects);
    bench_xfb_text_tls(r, f);
    fprintf(f, "  latency:   p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s)%s\n",
            bench_xfb_ms_text(bench_xfb_hist_quantile(h, 0.5), a, sizeof(a)),
            bench_xfb_ms_text(bench_xfb_hist_quantile(h, 0.9), b, sizeof(b)),
            bench_xfb_ms_text(bench_xfb_hist_quantile(h, 0.99), c, sizeof(c)),
            bench_xfb_ms_text(bench_xfb_hist_quantile(h, 0.999), d, sizeof(d)),
            bench_xfb_ms_text(h->count > 0 ? h->max : 0, e, sizeof(e)),
            bench_xfb_ms_text(bench_xfb_hist_mean(h), m, sizeof(m)),
            o->rate_milli > 0 ? ", from each request's scheduled time" : "");
    fprintf(f, "  errors:    %llu", (unsigned long long)errors);
    for (size_t i = 0; errors > 0 && i < bench_xfb_err_kinds(o); i++)
        fprintf(f, "%s%s %llu", i == 0 ? " -- " : ", ", bench_xfb_err_names[i],
                (unsigned long long)r->totals.err[i]);
    fputc('\n', f);
    bench_xfb_text_share(r, f);
    for (size_t i = 0; i < r->nevents; i++) {
        const struct bench_xfb_event *ev = &r->events[i];
        fprintf(f, "  %s %7.2fs  %-22s -> %s\n", i == 0 ? "rollout:" : "        ",
                (double)ev->at_us / 1e6, ev->command, ev->reply[0] != '\0' ? ev->reply : "(none)");
    }
    if (r->events_dropped > 0)
        fprintf(f, "             (%llu more events not kept)\n",
                (unsigned long long)r->events_dropped);
    bench_xfb_text_weights(r, f);
    bench_xfb_text_check(r, f);
    return ferror(f) ? -1 : 0;
}

/* --- JSON --- */

static void
bench_xfb_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static double
bench_xfb_json_ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static void
bench_xfb_json_options(const struct bench_xfb_result *r, FILE *f)
{
    const struct bench_xfb_opts *o = r->o;

    fprintf(f,
            "  \"options\": {\"threads\": %u, \"connections\": %u, \"duration_s\": %.3f, "
            "\"requests\": %llu, \"rate\": %.3f, ",
            o->threads, o->conns, (double)o->duration_ms / 1000, (unsigned long long)o->requests,
            (double)o->rate_milli / 1000);
    fprintf(f, "\"keys\": %llu, \"zipf\": %g, ", (unsigned long long)o->keys.n,
            o->keys.zipf ? o->zipf_s : 0.0);
    fputs("\"key_header\": ", f);
    if (o->key_cookie == NULL && o->keys.n > 0)
        bench_xfb_json_str(f, o->key_header);
    else
        fputs("null", f);
    fputs(", \"key_cookie\": ", f);
    if (o->key_cookie != NULL)
        bench_xfb_json_str(f, o->key_cookie);
    else
        fputs("null", f);
    fputs(", \"method\": ", f);
    bench_xfb_json_str(f, o->method);
    fprintf(f, ", \"body_size\": %llu, \"timeout_ms\": %llu, \"route_header\": ",
            (unsigned long long)o->body_size, (unsigned long long)o->timeout_ms);
    bench_xfb_json_str(f, o->route_header);
    fputs(", \"rollout\": ", f);
    if (o->rollout_text != NULL)
        bench_xfb_json_str(f, o->rollout_text);
    else
        fputs("null", f);
    fprintf(f, ", \"check\": %s, \"tolerance_pp\": %.2f, \"settle_s\": %.3f},\n",
            o->check ? "true" : "false", (double)o->tolerance_bp / 100,
            (double)o->settle_ms / 1000);
}

static void
bench_xfb_json_share(const struct bench_xfb_result *r, FILE *f)
{
    struct bench_xfb_cluster cl[BENCH_XFB_ROUTES_MAX];
    size_t ncl = bench_xfb_clusters(r, cl, XF_ARRAY_LEN(cl));
    uint64_t routed = r->totals.routed;

    fprintf(f, "  \"share\": {\"routed\": %llu, \"y\": %.4f, \"clusters\": {",
            (unsigned long long)routed, routed > 0 ? (double)r->totals.on_y / (double)routed : 0.0);
    for (size_t i = 0; i < ncl; i++) {
        fprintf(f, "%s", i > 0 ? ", " : "");
        bench_xfb_json_str(f, cl[i].name);
        fprintf(f, ": {\"responses\": %llu, \"share\": %.4f}", (unsigned long long)cl[i].count,
                bench_xfb_pct(cl[i].count, routed) / 100);
    }
    fputs("}, \"nodes\": [", f);
    for (size_t i = 0; i < r->nroutes; i++) {
        const char *name = r->routes[i].name, *sp = strchr(name, ' ');
        fprintf(f, "%s\n    {\"route\": ", i > 0 ? "," : "");
        bench_xfb_json_str(f, name);
        fprintf(f, ", \"cluster\": \"%.*s\", \"node\": ", (int)strcspn(name, " \"\\"), name);
        bench_xfb_json_str(f, sp != NULL ? sp + 1 : "");
        fprintf(f, ", \"responses\": %llu, \"share\": %.4f}",
                (unsigned long long)r->routes[i].count,
                bench_xfb_pct(r->routes[i].count, routed) / 100);
    }
    fprintf(f, "%s], \"other\": %llu},\n", r->nroutes > 0 ? "\n  " : "",
            (unsigned long long)r->routes_other);
}

static void
bench_xfb_json_weight(FILE *f, const char *name, int bp, const char *after)
{
    if (bp < 0)
        fprintf(f, "\"%s\": null%s", name, after);
    else
        fprintf(f, "\"%s\": %.2f%s", name, (double)bp / 100, after);
}

static void
bench_xfb_json_events(const struct bench_xfb_result *r, FILE *f)
{
    fputs("  \"rollout\": [", f);
    for (size_t i = 0; i < r->nevents; i++) {
        const struct bench_xfb_event *e = &r->events[i];
        fprintf(f, "%s\n    {\"at_s\": %.3f, ", i > 0 ? "," : "", (double)e->at_us / 1e6);
        if (e->reply_us > 0)
            fprintf(f, "\"reply_s\": %.3f, ", (double)e->reply_us / 1e6);
        else
            fputs("\"reply_s\": null, ", f);
        fprintf(f, "\"step\": %u, \"command\": ", e->step);
        bench_xfb_json_str(f, e->command);
        fputs(", \"reply\": ", f);
        bench_xfb_json_str(f, e->reply);
        fprintf(f, ", \"ok\": %s, ", e->ok ? "true" : "false");
        bench_xfb_json_weight(f, "weight", e->weight_bp, "}");
    }
    fprintf(f, "%s],\n  \"rollout_dropped\": %llu,\n", r->nevents > 0 ? "\n  " : "",
            (unsigned long long)r->events_dropped);
}

static void
bench_xfb_json_check(const struct bench_xfb_result *r, FILE *f)
{
    if (!r->checked) {
        fputs("  \"check\": null,\n", f);
        return;
    }
    fprintf(f, "  \"check\": {\"passed\": %s, \"failures\": [", r->passed ? "true" : "false");
    for (size_t i = 0; i < r->nfails; i++) {
        fputs(i > 0 ? ", " : "", f);
        bench_xfb_json_str(f, r->fails[i]);
    }
    fprintf(f, "], \"judged\": %zu, \"windows_not_listed\": %zu, \"windows\": [", r->njudged,
            r->windows_more);
    for (size_t i = 0; i < r->nwindows; i++) {
        const struct bench_xfb_window *w = &r->windows[i];
        fprintf(f, "%s\n    {\"from_s\": %.3f, \"to_s\": %.3f, ", i > 0 ? "," : "", w->from_s,
                w->to_s);
        if (w->unknown)
            fputs("\"weight\": null, \"weight_min\": null, \"weight_max\": null, ", f);
        else
            fprintf(f, "\"weight\": %.2f, \"weight_min\": %.2f, \"weight_max\": %.2f, ",
                    w->expect_bp / 100, w->lo_bp / 100, w->hi_bp / 100);
        fprintf(f, "\"routed\": %llu, \"y\": %.4f, \"judged\": %s, \"ok\": %s, ",
                (unsigned long long)w->routed,
                w->routed > 0 ? (double)w->on_y / (double)w->routed : 0.0,
                w->judged ? "true" : "false", w->ok ? "true" : "false");
        if (w->judged)
            fprintf(f, "\"off_pp\": %.2f, \"reason\": null}", w->off_bp / 100);
        else
            fprintf(f, "\"off_pp\": null, \"reason\": \"%s\"}",
                    w->unknown ? "weight_unknown" : "too_few_responses");
    }
    fprintf(f, "%s]},\n", r->nwindows > 0 ? "\n  " : "");
}

/* Where the weight came from, and its history. */
static void
bench_xfb_json_weights(const struct bench_xfb_result *r, FILE *f)
{
    fputs("  \"weights\": {\"source\": ", f);
    if (r->wsrc == BENCH_XFB_WSRC_NONE)
        fputs("null", f);
    else
        fprintf(f, "\"%s\"", bench_xfb_wsrc_names[r->wsrc]);
    if (r->weights_lost)
        fprintf(f, ", \"lost_s\": %.3f", (double)r->weights_lost_us / 1e6);
    else
        fputs(", \"lost_s\": null", f);
    fputs(", \"note\": ", f);
    if (r->weights_note[0] != '\0')
        bench_xfb_json_str(f, r->weights_note);
    else
        fputs("null", f);
    fputs(", \"changes\": [", f);
    for (size_t i = 0; i < r->nchanges; i++)
        fprintf(f, "%s\n    {\"at_s\": %.6f, \"lead_s\": %.6f, \"weight\": %.2f}", i > 0 ? "," : "",
                (double)r->changes[i].at_us / 1e6, (double)r->changes[i].lead_us / 1e6,
                (double)r->changes[i].weight_bp / 100);
    fprintf(f, "%s]},\n", r->nchanges > 0 ? "\n  " : "");
}

static void
bench_xfb_json_timeline(const struct bench_xfb_result *r, FILE *f)
{
    fputs("  \"timeline\": [", f);
    for (size_t i = 0; i < r->nsec; i++) {
        const struct bench_xfb_sec *s = &r->secs[i];
        fprintf(f,
                "%s\n    {\"second\": %zu, \"span_s\": %.3f, \"responses\": %llu, \"rps\": %.1f, "
                "\"errors\": %llu, ",
                i > 0 ? "," : "", i, s->span_s, (unsigned long long)s->c.responses,
                bench_xfb_rps(s), (unsigned long long)bench_xfb_counts_errors(&s->c));
        fputs("\"errors_by_kind\": {", f);
        for (size_t k = 0; k < bench_xfb_err_kinds(r->o); k++)
            fprintf(f, "%s\"%s\": %llu", k > 0 ? ", " : "", bench_xfb_err_names[k],
                    (unsigned long long)s->c.err[k]);
        fprintf(f, "}, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f, \"routed\": %llu, ",
                bench_xfb_json_ms(s->p50_ns), bench_xfb_json_ms(s->p99_ns),
                bench_xfb_json_ms(s->max_ns), (unsigned long long)s->c.routed);
        if (s->c.routed > 0)
            fprintf(f, "\"y_share\": %.4f, ", (double)s->c.on_y / (double)s->c.routed);
        else
            fputs("\"y_share\": null, ", f);
        if (r->o->tls)
            fprintf(f, "\"handshakes\": %llu, \"resumed\": %llu, ",
                    (unsigned long long)s->c.handshakes, (unsigned long long)s->c.resumed);
        bench_xfb_json_weight(f, "weight", s->weight_bp, ", ");
        if (s->weight_bp >= 0 && s->mean_bp >= 0)
            fprintf(f, "\"weight_mean\": %.2f}", s->mean_bp / 100);
        else
            fputs("\"weight_mean\": null}", f);
    }
    fprintf(f, "%s]\n", r->nsec > 0 ? "\n  " : "");
}

/* A string or null. */
static void
bench_xfb_json_str_or_null(FILE *f, const char *s)
{
    if (s != NULL)
        bench_xfb_json_str(f, s);
    else
        fputs("null", f);
}

/* https: "tls" with what was agreed, how the certificate was checked, the handshakes; null for
 * http. */
static void
bench_xfb_json_tls(const struct bench_xfb_result *r, FILE *f)
{
    const struct bench_xfb_opts *o = r->o;
    const struct bench_xfb_counts *t = &r->totals;

    if (!o->tls) {
        fputs("  \"tls\": null,\n", f);
        return;
    }
    fputs("  \"tls\": {\"version\": ", f);
    bench_xfb_json_str_or_null(f, r->tls_version);
    fputs(", \"cipher\": ", f);
    bench_xfb_json_str_or_null(f, r->tls_cipher);
    fprintf(f, ", \"verify\": \"%s\", \"ca\": ",
            o->insecure          ? "none"
            : o->ca_file != NULL ? "ca"
                                 : "system");
    bench_xfb_json_str_or_null(f, o->ca_file);
    fputs(", \"name\": ", f);
    bench_xfb_json_str(f, o->tls_name);
    fprintf(f,
            ", \"handshakes\": %llu, \"handshakes_per_s\": %.1f, \"resumed\": %llu, "
            "\"resumed_share\": %.4f, \"first_error\": ",
            (unsigned long long)t->handshakes,
            r->elapsed_s > 0 ? (double)t->handshakes / r->elapsed_s : 0.0,
            (unsigned long long)t->resumed, bench_xfb_pct(t->resumed, t->handshakes) / 100);
    bench_xfb_json_str_or_null(f, r->tls_error[0] != '\0' ? r->tls_error : NULL);
    fputs("},\n", f);
}

int
bench_xfb_report_json(const struct bench_xfb_result *r, FILE *f)
{
    const struct bench_xfb_hist *h = r->hist;

    fputs("{\n  \"xfbench\": ", f);
    bench_xfb_json_str(f, XF_VERSION);
    fputs(",\n  \"url\": ", f);
    bench_xfb_json_str(f, r->o->url);
    fputs(",\n  \"started\": ", f);
    bench_xfb_json_str(f, r->started);
    fprintf(f, ",\n  \"elapsed_s\": %.3f,\n  \"interrupted\": %s,\n", r->elapsed_s,
            r->interrupted ? "true" : "false");
    bench_xfb_json_options(r, f);
    fprintf(f,
            "  \"totals\": {\"responses\": %llu, \"rps\": %.1f, \"errors\": %llu, \"bytes\": %llu, "
            "\"connects\": %llu},\n",
            (unsigned long long)r->totals.responses,
            r->elapsed_s > 0 ? (double)r->totals.responses / r->elapsed_s : 0.0,
            (unsigned long long)bench_xfb_counts_errors(&r->totals),
            (unsigned long long)r->totals.bytes, (unsigned long long)r->connects);
    fprintf(f,
            "  \"latency_ms\": {\"min\": %.3f, \"mean\": %.3f, \"p50\": %.3f, \"p90\": %.3f, "
            "\"p99\": %.3f, \"p99.9\": %.3f, \"max\": %.3f},\n",
            bench_xfb_json_ms(h->count > 0 ? h->min : 0), bench_xfb_json_ms(bench_xfb_hist_mean(h)),
            bench_xfb_json_ms(bench_xfb_hist_quantile(h, 0.5)),
            bench_xfb_json_ms(bench_xfb_hist_quantile(h, 0.9)),
            bench_xfb_json_ms(bench_xfb_hist_quantile(h, 0.99)),
            bench_xfb_json_ms(bench_xfb_hist_quantile(h, 0.999)),
            bench_xfb_json_ms(h->count > 0 ? h->max : 0));
    bench_xfb_json_tls(r, f);
    fputs("  \"errors\": {", f);
    for (size_t k = 0; k < bench_xfb_err_kinds(r->o); k++)
        fprintf(f, "%s\"%s\": %llu", k > 0 ? ", " : "", bench_xfb_err_names[k],
                (unsigned long long)r->totals.err[k]);
    fputs("},\n", f);
    bench_xfb_json_share(r, f);
    fputs("  ", f);
    bench_xfb_json_weight(f, "weight_initial", r->initial_bp, ", ");
    bench_xfb_json_weight(f, "weight_final", r->final_bp, ",\n");
    bench_xfb_json_events(r, f);
    bench_xfb_json_weights(r, f);
    bench_xfb_json_check(r, f);
    bench_xfb_json_timeline(r, f);
    fputs("}\n", f);
    return ferror(f) ? -1 : 0;
}

/* --- HTML --- */

static void
bench_xfb_html_esc(FILE *f, const char *s)
{
    for (; *s != '\0'; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

/* A round axis maximum (1, 2 or 5 times a power of ten) at or above v. */
static double
bench_xfb_nice(double v)
{
    double p;

    if (!(v > 0))
        return 1;
    p = pow(10, floor(log10(v)));
    if (v <= p)
        return p;
    if (v <= 2 * p)
        return 2 * p;
    if (v <= 5 * p)
        return 5 * p;
    return 10 * p;
}

#define BENCH_XFB_SVG_W  960
#define BENCH_XFB_SVG_H  220
#define BENCH_XFB_SVG_L  64
#define BENCH_XFB_SVG_R  16
#define BENCH_XFB_SVG_T  26
#define BENCH_XFB_SVG_B  30
#define BENCH_XFB_PLOT_W (BENCH_XFB_SVG_W - BENCH_XFB_SVG_L - BENCH_XFB_SVG_R)
#define BENCH_XFB_PLOT_H (BENCH_XFB_SVG_H - BENCH_XFB_SVG_T - BENCH_XFB_SVG_B)

/* One chart over the run's seconds. `v` holds one value per second (NAN: none); `w` (may be NULL)
 * a second series drawn as steps (the weight). */
struct bench_xfb_chart {
    const char *title;
    const char *unit;
    const double *v;
    const double *w;
    double ymax; /* 0: from the data */
};

static void
bench_xfb_html_chart(const struct bench_xfb_result *r, const struct bench_xfb_chart *c, FILE *f)
{
    double total = r->elapsed_s > 0 ? r->elapsed_s : 1, ymax = c->ymax, xstep;
    int open = 0;

    if (ymax <= 0) {
        for (size_t i = 0; i < r->nsec; i++)
            if (!isnan(c->v[i]) && c->v[i] > ymax)
                ymax = c->v[i];
        ymax = bench_xfb_nice(ymax * 1.05);
    }
#define BENCH_XFB_X(t) (BENCH_XFB_SVG_L + (t) / total * BENCH_XFB_PLOT_W)
#define BENCH_XFB_Y(y) (BENCH_XFB_SVG_T + BENCH_XFB_PLOT_H - (y) / ymax * BENCH_XFB_PLOT_H)
    fprintf(f,
            "<svg width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" role=\"img\">\n<text x=\"%d\" y=\"16\" class=\"t\">",
            BENCH_XFB_SVG_W, BENCH_XFB_SVG_H, BENCH_XFB_SVG_W, BENCH_XFB_SVG_H, BENCH_XFB_SVG_L);
    bench_xfb_html_esc(f, c->title);
    fprintf(f, "</text>\n<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" class=\"plot\"/>\n",
            BENCH_XFB_SVG_L, BENCH_XFB_SVG_T, BENCH_XFB_PLOT_W, BENCH_XFB_PLOT_H);
    for (int i = 0; i <= 4; i++) {
        double y = ymax * i / 4;
        fprintf(f,
                "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                "<text x=\"%d\" y=\"%.1f\" class=\"yl\">%g%s</text>\n",
                BENCH_XFB_SVG_L, BENCH_XFB_SVG_L + BENCH_XFB_PLOT_W, BENCH_XFB_Y(y), BENCH_XFB_Y(y),
                BENCH_XFB_SVG_L - 6, BENCH_XFB_Y(y) + 4, y, c->unit);
    }
    xstep = bench_xfb_nice(total / 10);
    for (double t = 0; t <= total + 1e-9; t += xstep)
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" class=\"xl\">%gs</text>\n", BENCH_XFB_X(t),
                BENCH_XFB_SVG_H - 10, t);
    if (c->w != NULL && r->initial_bp >= 0) {
        /* The history itself: each change where it happened, not where a second ended. */
        fprintf(f, "<path class=\"weight\" d=\"M%.1f %.1f", BENCH_XFB_X(0.0),
                BENCH_XFB_Y((double)r->initial_bp / 100));
        for (size_t i = 0; i < r->nchanges && (double)r->changes[i].at_us / 1e6 < total; i++)
            fprintf(f, "H%.1fV%.1f", BENCH_XFB_X((double)r->changes[i].at_us / 1e6),
                    BENCH_XFB_Y((double)r->changes[i].weight_bp / 100));
        fprintf(f, "H%.1f\"/>\n", BENCH_XFB_X(total));
    } else if (c->w != NULL) {
        fputs("<path class=\"weight\" d=\"", f);
        for (size_t i = 0; i < r->nsec; i++) {
            if (isnan(c->w[i])) {
                open = 0;
                continue;
            }
            if (open)
                fprintf(f, "V%.1f", BENCH_XFB_Y(c->w[i]));
            else
                fprintf(f, "M%.1f %.1f", BENCH_XFB_X((double)i), BENCH_XFB_Y(c->w[i]));
            fprintf(f, "H%.1f", BENCH_XFB_X((double)i + r->secs[i].span_s));
            open = 1;
        }
        fputs("\"/>\n", f);
    }
    fputs("<path class=\"series\" d=\"", f);
    open = 0;
    for (size_t i = 0; i < r->nsec; i++) {
        if (isnan(c->v[i])) {
            open = 0;
            continue;
        }
        fprintf(f, "%c%.1f %.1f", open ? 'L' : 'M', BENCH_XFB_X((double)i + r->secs[i].span_s / 2),
                BENCH_XFB_Y(c->v[i]));
        open = 1;
    }
    fputs("\"/>\n", f);
    for (size_t i = 0; i < r->nevents; i++) {
        const struct bench_xfb_event *e = &r->events[i];
        double x = BENCH_XFB_X((double)e->at_us / 1e6);

        if (e->minor)
            continue; /* a ramp's commands: the ramp's own line marks it */
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" class=\"ev%s\"><title>", x, x,
                BENCH_XFB_SVG_T, BENCH_XFB_SVG_T + BENCH_XFB_PLOT_H, e->ok ? "" : " bad");
        bench_xfb_html_esc(f, e->command);
        fprintf(f, "</title></line><text x=\"%.1f\" y=\"%d\" class=\"evl\">%zu</text>\n", x + 2,
                BENCH_XFB_SVG_T + 10, i + 1);
    }
    fputs("</svg>\n", f);
#undef BENCH_XFB_X
#undef BENCH_XFB_Y
}

static void
bench_xfb_html_head(const struct bench_xfb_result *r, FILE *f)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>xfbench ", f);
    bench_xfb_html_esc(f, r->o->url);
    fputs(
        "</title>\n<style>\n"
        "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}\n"
        "pre{background:#f6f6f6;padding:12px;overflow:auto;font-size:12px}\n"
        "table{border-collapse:collapse;font-size:13px}td,th{padding:2px 10px;text-align:left;"
        "border-bottom:1px solid #ddd}\n"
        "svg{display:block;margin:12px 0}.t{font-weight:bold;font-size:13px}\n"
        ".plot{fill:#fff;stroke:#999}.grid{stroke:#eee}.yl{font-size:11px;text-anchor:end}\n"
        ".xl{font-size:11px;text-anchor:middle}.series{fill:none;stroke:#1f5fbf;stroke-width:1.6}\n"
        ".weight{fill:none;stroke:#e08a00;stroke-width:1.4;stroke-dasharray:5 3}\n"
        ".ev{stroke:#444;stroke-dasharray:3 3}.ev.bad{stroke:#c00}.evl{font-size:11px;fill:#444}\n"
        ".ok{color:#070}.fail{color:#c00;font-weight:bold}\n"
        "</style></head><body>\n<h1>xfbench</h1>\n",
        f);
}

int
bench_xfb_report_html(const struct bench_xfb_result *r, FILE *f)
{
    double *rps = NULL, *p99 = NULL, *y = NULL, *w = NULL, *hs = NULL;
    size_t n = r->nsec > 0 ? r->nsec : 1;
    int rc = -1;
    char *summary = NULL;
    size_t summary_len = 0;
    FILE *mem;

    rps = malloc(n * sizeof(double));
    p99 = malloc(n * sizeof(double));
    y = malloc(n * sizeof(double));
    w = malloc(n * sizeof(double));
    hs = malloc(n * sizeof(double));
    if (rps == NULL || p99 == NULL || y == NULL || w == NULL || hs == NULL)
        goto out;
    for (size_t i = 0; i < r->nsec; i++) {
        const struct bench_xfb_sec *s = &r->secs[i];
        rps[i] = bench_xfb_rps(s);
        p99[i] = s->c.responses > 0 ? (double)s->p99_ns / 1e6 : NAN;
        y[i] = s->c.routed > 0 ? (double)s->c.on_y * 100 / (double)s->c.routed : NAN;
        w[i] = s->weight_bp >= 0 ? (double)s->weight_bp / 100 : NAN;
        hs[i] = s->span_s > 0 ? (double)s->c.handshakes / s->span_s : 0;
    }
    bench_xfb_html_head(r, f);
    fputs("<p>", f);
    if (r->checked)
        fprintf(f, "<span class=\"%s\">check %s</span> &middot; ", r->passed ? "ok" : "fail",
                r->passed ? "passed" : "FAILED");
    fprintf(f,
            "started %s UTC &middot; the dashed orange line is the weight in force; numbered "
            "lines are the rollout's commands.</p>\n",
            r->started);
    bench_xfb_html_chart(r, &(struct bench_xfb_chart){"requests/s", "", rps, NULL, 0}, f);
    bench_xfb_html_chart(r, &(struct bench_xfb_chart){"p99 latency", "ms", p99, NULL, 0}, f);
    bench_xfb_html_chart(r, &(struct bench_xfb_chart){"share on y", "%", y, w, 100}, f);
    if (r->o->tls)
        bench_xfb_html_chart(r, &(struct bench_xfb_chart){"TLS handshakes/s", "", hs, NULL, 0}, f);
    if (r->nevents > 0) {
        fputs("<h2>Rollout</h2>\n<table><tr><th>#</th><th>sent</th><th>command</th><th>reply</th>"
              "</tr>\n",
              f);
        for (size_t i = 0; i < r->nevents; i++) {
            const struct bench_xfb_event *e = &r->events[i];
            fprintf(f, "<tr><td>%zu</td><td>%.2fs</td><td>", i + 1, (double)e->at_us / 1e6);
            bench_xfb_html_esc(f, e->command);
            fprintf(f, "</td><td class=\"%s\">", e->ok ? "" : "fail");
            bench_xfb_html_esc(f, e->reply[0] != '\0' ? e->reply : "(no reply)");
            fputs("</td></tr>\n", f);
        }
        fputs("</table>\n", f);
    }
    /* The text summary, as the terminal showed it. */
    if ((mem = open_memstream(&summary, &summary_len)) == NULL)
        goto out;
    bench_xfb_report_text(r, mem);
    fclose(mem);
    fputs("<h2>Summary</h2>\n<pre>", f);
    bench_xfb_html_esc(f, summary);
    fputs("</pre>\n</body></html>\n", f);
    rc = ferror(f) ? -1 : 0;
out:
    free(summary);
    free(rps);
    free(p99);
    free(y);
    free(w);
    free(hs);
    return rc;
}
