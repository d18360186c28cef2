/*
 * admin/adm_report.c -- the rollout report: the upgrade as a list of segments, one per weight in
 * force, each with x against y (requests, errors, p50/p99) and the guard's verdicts, beside the
 * audit trail (`report [json]`; `xfctl report --html FILE` draws it).
 */
#include "admin/adm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Closes the current segment into the ring (its percentiles worked out once). */
static void
adm_report_close(struct adm_report *rp)
{
    static const double q[2] = {0.5, 0.99};
    struct adm_segment *s = &rp->cur;

    if (s->seconds == 0)
        return;
    for (int c = 0; c < 2; c++) {
        uint64_t p[2];

        xf_win_percentiles(&rp->lat[c], q, 2, p);
        s->p50_us[c] = p[0];
        s->p99_us[c] = p[1];
    }
    rp->seg[(rp->first + rp->n) % ADM_REPORT_SEGMENTS] = *s;
    if (rp->n < ADM_REPORT_SEGMENTS)
        rp->n++;
    else
        rp->first = (rp->first + 1) % ADM_REPORT_SEGMENTS;
    memset(s, 0, sizeof(*s));
    memset(rp->lat, 0, sizeof(rp->lat));
}

void
adm_report_tick(struct adm_state *st)
{
    struct adm_report *rp = st->report;
    const struct xf_mon *m;

    if (rp == NULL || st->monitor.mon == NULL)
        return;
    m = st->monitor.mon(st->monitor.arg);
    if (rp->last == 0 && m->last > XF_MON_SECONDS)
        rp->last = m->last - XF_MON_SECONDS; /* the first time: all the history holds */
    for (uint64_t sec = rp->last + 1; sec <= m->last; sec++) {
        const struct xf_mon_sec *ms = &m->sec[sec % XF_MON_SECONDS];
        struct adm_segment *s = &rp->cur;

        /* Seconds before the admin started (the proxy counts from a moment earlier) are not
         * part of the upgrade it reports. */
        if (ms->second != sec || ms->wall_ms + 1000 < (int64_t)st->started * 1000)
            continue;
        if (s->seconds > 0 && ms->weight_bp != s->weight_bp)
            adm_report_close(rp);
        if (s->seconds == 0) {
            s->start_ms = ms->wall_ms;
            s->weight_bp = ms->weight_bp;
        }
        s->end_ms = ms->wall_ms + 1000;
        s->seconds++;
        for (int c = 0; c < 2; c++) {
            s->requests[c] += ms->requests[c];
            s->errors[c] += ms->errors[c];
            for (unsigned b = 0; b < XF_LAT_BUCKETS; b++) {
                rp->lat[c].lat[b] += ms->lat[c][b];
                rp->lat[c].n += ms->lat[c][b];
            }
        }
        s->verdicts[st->guard.verdict]++;
    }
    if (m->last > rp->last)
        rp->last = m->last;
}

/* Segment i (0: the oldest kept; n: the current one). */
static const struct adm_segment *
adm_report_get(struct adm_report *rp, size_t i, struct adm_segment *tmp)
{
    static const double q[2] = {0.5, 0.99};

    if (i < rp->n)
        return &rp->seg[(rp->first + i) % ADM_REPORT_SEGMENTS];
    *tmp = rp->cur;
    for (int c = 0; c < 2; c++) {
        uint64_t p[2];

        xf_win_percentiles(&rp->lat[c], q, 2, p);
        tmp->p50_us[c] = p[0];
        tmp->p99_us[c] = p[1];
    }
    return tmp;
}

static void
adm_report_text(struct adm_state *st, struct adm_reply *r)
{
    struct adm_report *rp = st->report;
    struct adm_segment tmp;
    char t[2][40], w[ADM_WEIGHT_TEXT], e[2][16], share[16], line[ADM_EVENT_VALUE * 3];

    adm_reply_line(r, "report since %s (%zu segments, one per weight in force; x | y)",
                   xf_wall_text((int64_t)st->started * 1000, false, t[0], sizeof(t[0])),
                   rp->n + (rp->cur.seconds > 0));
    for (size_t i = 0; i <= rp->n; i++) {
        const struct adm_segment *s = adm_report_get(rp, i, &tmp);

        if (i == rp->n && s->seconds == 0)
            break;
        adm_reply_line(
            r,
            "segment %s..%s weight %s requests %llu | %llu (y share %s) errors %s | %s p50 %lluus "
            "| %lluus p99 %lluus | %lluus guard pass=%llu inconclusive=%llu fail=%llu",
            xf_wall_text(s->start_ms, false, t[0], sizeof(t[0])),
            xf_wall_text(s->end_ms, false, t[1], sizeof(t[1])), adm_weight_text(s->weight_bp, w),
            (unsigned long long)s->requests[0], (unsigned long long)s->requests[1],
            adm_share_text(s->requests[1], s->requests[0] + s->requests[1], share, sizeof(share)),
            adm_share_text(s->errors[0], s->requests[0], e[0], sizeof(e[0])),
            adm_share_text(s->errors[1], s->requests[1], e[1], sizeof(e[1])),
            (unsigned long long)s->p50_us[0], (unsigned long long)s->p50_us[1],
            (unsigned long long)s->p99_us[0], (unsigned long long)s->p99_us[1],
            (unsigned long long)s->verdicts[ADM_VERDICT_PASS],
            (unsigned long long)s->verdicts[ADM_VERDICT_INCONCLUSIVE],
            (unsigned long long)s->verdicts[ADM_VERDICT_FAIL]);
    }
    for (size_t i = 0; i < st->events.n; i++)
        adm_reply_line(r, "event %s",
                       adm_event_line(adm_events_get(&st->events, i), false, line, sizeof(line)));
}

static void
adm_report_json(struct adm_state *st, struct adm_reply *r)
{
    struct adm_report *rp = st->report;
    struct evbuffer *b = evbuffer_new();
    struct adm_segment tmp;
    size_t len;
    char *text;

    if (b == NULL) {
        adm_reply_error(r, "out of memory");
        return;
    }
    evbuffer_add_printf(b, "{\"version\":\"%s\",\"started_ms\":%lld,\"now_ms\":%lld,\"segments\":[",
                        XF_VERSION, (long long)st->started * 1000, (long long)xf_wall_ms());
    for (size_t i = 0; i <= rp->n; i++) {
        const struct adm_segment *s = adm_report_get(rp, i, &tmp);

        if (i == rp->n && s->seconds == 0)
            break;
        evbuffer_add_printf(b, "%s{\"start_ms\":%lld,\"end_ms\":%lld,\"weight\":%.2f", i ? "," : "",
                            (long long)s->start_ms, (long long)s->end_ms, s->weight_bp / 100.0);
        for (int c = 0; c < 2; c++)
            evbuffer_add_printf(b,
                                ",\"%s\":{\"requests\":%llu,\"errors\":%llu,\"p50_us\":%llu,"
                                "\"p99_us\":%llu}",
                                c == 0 ? "x" : "y", (unsigned long long)s->requests[c],
                                (unsigned long long)s->errors[c], (unsigned long long)s->p50_us[c],
                                (unsigned long long)s->p99_us[c]);
        evbuffer_add_printf(b, ",\"guard\":{\"pass\":%llu,\"inconclusive\":%llu,\"fail\":%llu}}",
                            (unsigned long long)s->verdicts[ADM_VERDICT_PASS],
                            (unsigned long long)s->verdicts[ADM_VERDICT_INCONCLUSIVE],
                            (unsigned long long)s->verdicts[ADM_VERDICT_FAIL]);
    }
    evbuffer_add_printf(b, "],\"events\":[");
    for (size_t i = 0; i < st->events.n; i++) {
        if (i > 0)
            evbuffer_add(b, ",", 1);
        adm_json_event(b, adm_events_get(&st->events, i));
    }
    evbuffer_add_printf(b, "]}");
    len = evbuffer_get_length(b);
    text = malloc(len + 1);
    if (text == NULL) {
        evbuffer_free(b);
        adm_reply_error(r, "out of memory");
        return;
    }
    evbuffer_remove(b, text, len);
    text[len] = '\0';
    evbuffer_free(b);
    adm_reply_line(r, "%s", text);
    free(text);
}

enum adm_result
adm_cmd_report(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
               struct adm_reply *r)
{
    XF_UNUSED(peer);
    if (a->n > 2 || (a->n == 2 && !adm_span_is(a->v[1], "json")))
        return adm_reply_error(r, "usage: report [json]");
    if (st->report == NULL || st->monitor.mon == NULL)
        return adm_reply_error(r, "no traffic counters: this crossfade does not count yet");
    adm_report_tick(st);
    if (a->n == 2) {
        adm_report_json(st, r);
        return ADM_OK;
    }
    adm_report_text(st, r);
    return ADM_OK;
}
