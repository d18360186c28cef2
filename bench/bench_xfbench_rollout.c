/* bench/bench_xfbench_rollout.c -- rollout scripts: durations, weights, the step parser, ramps. */
#include "bench/bench_xfbench.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "admin/adm.h"

int
bench_xfb_fixed_parse(const char *s, size_t len, unsigned decimals, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;
    unsigned frac = 0;

    if (len == 0 || s[0] < '0' || s[0] > '9')
        return -1;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        if (v > (max - (uint64_t)(s[i] - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (i < len && s[i] == '.') {
        i++;
        if (i == len)
            return -1;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            if (++frac > decimals)
                return -1;
            if (v > (max - (uint64_t)(s[i] - '0')) / 10)
                return -1;
            v = v * 10 + (uint64_t)(s[i] - '0');
        }
    }
    if (i != len)
        return -1;
    for (; frac < decimals; frac++) {
        if (v > max / 10)
            return -1;
        v *= 10;
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

int
bench_xfb_duration_parse(const char *s, size_t len, uint64_t max_ms, uint64_t *ms)
{
    static const struct {
        const char *name;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    uint64_t unit = 1000, milli;
    size_t n = len;

    while (n > 0 && (s[n - 1] < '0' || s[n - 1] > '9'))
        n--;
    if (n < len) {
        size_t ulen = len - n;
        unit = 0;
        for (size_t i = 0; i < XF_ARRAY_LEN(units); i++) {
            if (strlen(units[i].name) == ulen && strncasecmp(s + n, units[i].name, ulen) == 0)
                unit = units[i].ms;
        }
        if (unit == 0)
            return -1;
    }
    /* Thousandths of the unit; 10^15 keeps milli * unit within 64 bits for every unit. */
    if (bench_xfb_fixed_parse(s, n, 3, UINT64_C(1000000000000000) / unit, &milli) == -1)
        return -1;
    milli = milli * unit / 1000;
    if (milli > max_ms)
        return -1;
    *ms = milli;
    return 0;
}

int
bench_xfb_weight_parse(const char *s, size_t len, unsigned *bp)
{
    uint64_t v;

    if (bench_xfb_fixed_parse(s, len, 2, 10000, &v) == -1)
        return -1;
    *bp = (unsigned)v;
    return 0;
}

char *
bench_xfb_weight_text(unsigned bp, char buf[8])
{
    snprintf(buf, 8, "%u.%02u", XF_MIN(bp, 10000u) / 100, XF_MIN(bp, 10000u) % 100);
    return buf;
}

/* A step split into words (spans into the step's text). */
struct bench_xfb_words {
    const char *p[16];
    size_t len[16];
    size_t n;
};

static int
bench_xfb_split_words(const char *s, size_t len, struct bench_xfb_words *w)
{
    size_t i = 0;

    w->n = 0;
    while (i < len) {
        size_t start;
        while (i < len && (s[i] == ' ' || s[i] == '\t'))
            i++;
        if (i == len)
            break;
        if (w->n == XF_ARRAY_LEN(w->p))
            return -1;
        start = i;
        while (i < len && s[i] != ' ' && s[i] != '\t')
            i++;
        w->p[w->n] = s + start;
        w->len[w->n] = i - start;
        w->n++;
    }
    return 0;
}

static int
bench_xfb_word_is(const struct bench_xfb_words *w, size_t i, const char *lit)
{
    return i < w->n && xf_span_ieq(w->p[i], w->len[i], lit);
}

/* Whether the step's words from `from` on end with "force" (only there); *n gets their number
 * without it. */
static bool
bench_xfb_force(const struct bench_xfb_words *w, size_t *n)
{
    *n = w->n;
    if (w->n > 2 && bench_xfb_word_is(w, w->n - 1, "force")) {
        (*n)--;
        return true;
    }
    return false;
}

/*
 * The step's command words (from words[1]) into `st`; returns 0, or -1 with the reason in err.
 * The commands are the admin socket's, as xfctl sends them, checked by the admin socket's own
 * parser (adm_cmd_check); set weight, promote, rollback and ramp are read too, for the report,
 * and ramp is run by xfbench itself.
 */
static int
bench_xfb_step_command(const struct bench_xfb_words *w, const char *cmd, size_t cmd_len,
                       struct bench_xfb_step *st, size_t no, struct xf_err *err)
{
    char why[256];
    uint64_t v;
    size_t n;
    bool force = bench_xfb_force(w, &n);

    if (bench_xfb_word_is(w, 1, "admin")) {
        const char *rest = w->n > 2 ? w->p[2] : NULL;
        if (rest == NULL) {
            xf_err_set(err, "rollout step %zu: usage: admin COMMAND", no);
            return -1;
        }
        cmd = rest;
        cmd_len = (size_t)(w->p[w->n - 1] + w->len[w->n - 1] - rest);
    }
    /* Ramp's other commands (ramp pause ...) are the admin socket's: sent as they are. */
    if (bench_xfb_word_is(w, 1, "ramp") && !bench_xfb_word_is(w, 2, "pause") &&
        !bench_xfb_word_is(w, 2, "resume") && !bench_xfb_word_is(w, 2, "cancel")) {
        if ((n != 5 && n != 7) || !bench_xfb_word_is(w, 3, "over") ||
            (n == 7 && !bench_xfb_word_is(w, 5, "step"))) {
            xf_err_set(err, "rollout step %zu: usage: ramp P over DURATION [step P] [force]", no);
            return -1;
        }
        if (bench_xfb_weight_parse(w->p[2], w->len[2], &st->weight_bp) == -1) {
            xf_err_set(err,
                       "rollout step %zu: ramp: expected a weight from 0 to 100 with at most two "
                       "decimals, got \"%.*s\"",
                       no, (int)w->len[2], w->p[2]);
            return -1;
        }
        if (bench_xfb_duration_parse(w->p[4], w->len[4], BENCH_XFB_DURATION_MAX, &st->over_ms) ==
                -1 ||
            st->over_ms == 0) {
            xf_err_set(err,
                       "rollout step %zu: ramp: bad duration \"%.*s\" after \"over\"; expected "
                       "more than 0, like 20s or 5m",
                       no, (int)w->len[4], w->p[4]);
            return -1;
        }
        if (n == 7 && (bench_xfb_fixed_parse(w->p[6], w->len[6], 2, 10000, &v) == -1 || v == 0)) {
            xf_err_set(err,
                       "rollout step %zu: ramp: bad step \"%.*s\"; expected percentage points "
                       "from 0.01 to 100",
                       no, (int)w->len[6], w->p[6]);
            return -1;
        }
        st->step_bp = n == 7 ? (unsigned)v : 0;
        st->force = force;
        st->kind = BENCH_XFB_STEP_RAMP;
        return 0;
    }
    if (adm_cmd_check(cmd, cmd_len, why, sizeof(why)) == -1) {
        xf_err_set(err, "rollout step %zu: %s", no, why);
        return -1;
    }
    snprintf(st->line, sizeof(st->line), "%.*s", (int)cmd_len, cmd);
    st->kind = BENCH_XFB_STEP_ADMIN;
    if (bench_xfb_word_is(w, 1, "set") && bench_xfb_word_is(w, 2, "weight")) {
        if (n != 4) {
            xf_err_set(err, "rollout step %zu: usage: set weight P [force]", no);
            return -1;
        }
        if (bench_xfb_weight_parse(w->p[3], w->len[3], &st->weight_bp) == -1) {
            xf_err_set(err,
                       "rollout step %zu: set weight: expected a number from 0 to 100 with at "
                       "most two decimals, got \"%.*s\"",
                       no, (int)w->len[3], w->p[3]);
            return -1;
        }
        st->kind = BENCH_XFB_STEP_SET;
    } else if (bench_xfb_word_is(w, 1, "rollback") && w->n == 2) {
        st->kind = BENCH_XFB_STEP_ROLLBACK;
    } else if (bench_xfb_word_is(w, 1, "promote")) {
        st->kind = BENCH_XFB_STEP_PROMOTE;
    }
    st->force = force && st->kind != BENCH_XFB_STEP_ADMIN;
    return 0;
}

/* Parses one step's text (trimmed, not empty). */
static int
bench_xfb_step_parse(const char *s, size_t len, struct bench_xfb_step *st, size_t no,
                     const struct bench_xfb_step *prev, struct xf_err *err)
{
    struct bench_xfb_words w;
    const char *cmd;

    memset(st, 0, sizeof(*st));
    if (len >= BENCH_XFB_LINE_MAX) {
        xf_err_set(err, "rollout step %zu: longer than %d characters", no, BENCH_XFB_LINE_MAX - 1);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            xf_err_set(err, "rollout step %zu: control byte 0x%02x at character %zu", no, ch,
                       i + 1);
            return -1;
        }
    }
    if (bench_xfb_split_words(s, len, &w) == -1) {
        xf_err_set(err, "rollout step %zu: too many words (more than 16)", no);
        return -1;
    }
    if (bench_xfb_duration_parse(w.p[0], w.len[0], BENCH_XFB_DURATION_MAX, &st->at_ms) == -1) {
        xf_err_set(err,
                   "rollout step %zu: bad offset \"%.*s\"; expected a time from the start such as "
                   "10s, 1.5s, 500ms or 2m",
                   no, (int)w.len[0], w.p[0]);
        return -1;
    }
    if (w.n < 2) {
        xf_err_set(err, "rollout step %zu: \"%.*s\" has no command", no, (int)w.len[0], w.p[0]);
        return -1;
    }
    if (prev != NULL && st->at_ms < prev->at_ms) {
        xf_err_set(err,
                   "rollout step %zu: offset \"%.*s\" comes before step %zu's; steps must be in "
                   "time order",
                   no, (int)w.len[0], w.p[0], no - 1);
        return -1;
    }
    cmd = w.p[1];
    snprintf(st->text, sizeof(st->text), "%.*s", (int)(s + len - cmd), cmd);
    return bench_xfb_step_command(&w, cmd, (size_t)(s + len - cmd), st, no, err);
}

int
bench_xfb_script_parse(const char *text, struct bench_xfb_script *out, struct xf_err *err)
{
    struct bench_xfb_step *steps = NULL;
    size_t n = 0;
    const char *p = text;

    memset(out, 0, sizeof(*out));
    for (;;) {
        size_t len = strcspn(p, ";\n");
        const char *s = p, *e = p + len;

        while (s < e && (*s == ' ' || *s == '\t' || *s == '\r'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
            e--;
        if (e > s) {
            if (n == BENCH_XFB_STEPS_MAX) {
                xf_err_set(err, "rollout: more than %d steps", BENCH_XFB_STEPS_MAX);
                goto fail;
            }
            if (steps == NULL && (steps = calloc(BENCH_XFB_STEPS_MAX, sizeof(*steps))) == NULL) {
                xf_err_set(err, "rollout: out of memory");
                goto fail;
            }
            if (bench_xfb_step_parse(s, (size_t)(e - s), &steps[n], n + 1,
                                     n > 0 ? &steps[n - 1] : NULL, err) == -1)
                goto fail;
            n++;
        }
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    if (n == 0) {
        xf_err_set(err, "rollout: the script has no step; expected e.g. \"10s set weight 10; 30s "
                        "rollback\"");
        goto fail;
    }
    out->steps = steps;
    out->n = n;
    return 0;
fail:
    free(steps);
    return -1;
}

void
bench_xfb_script_fini(struct bench_xfb_script *s)
{
    XF_FREE(s->steps);
    s->n = 0;
}

size_t
bench_xfb_ramp_plan(unsigned from_bp, unsigned to_bp, uint64_t over_ms, unsigned step_bp,
                    struct bench_xfb_change *out, size_t max)
{
    uint64_t n, diff = from_bp > to_bp ? from_bp - to_bp : to_bp - from_bp;
    uint64_t floor_n = over_ms / 100 > 0 ? over_ms / 100 : 1; /* at most one change per 100 ms */

    if (max == 0)
        return 0;
    if (diff == 0)
        n = 1;
    else if (step_bp > 0)
        n = (diff + step_bp - 1) / step_bp;
    else
        n = over_ms / 1000 > 0 ? over_ms / 1000 : 1;
    n = XF_MIN(n, floor_n);
    n = XF_MIN(n, (uint64_t)XF_MIN(max, (size_t)BENCH_XFB_RAMP_MAX));
    if (n > diff && diff > 0)
        n = diff; /* no change smaller than 0.01 */
    for (uint64_t i = 1; i <= n; i++) {
        double d = ((double)to_bp - (double)from_bp) * (double)i / (double)n;
        out[i - 1].at_us = over_ms * 1000 * i / n;
        out[i - 1].weight_bp = (unsigned)((long)from_bp + lround(d));
    }
    out[n - 1].weight_bp = to_bp;
    return (size_t)n;
}

/* Parses the weight at the start of s (up to a space or the end). */
static int
bench_xfb_reply_number(const char *s, unsigned *bp)
{
    size_t n = strcspn(s, " \t\r\n/()");

    return bench_xfb_weight_parse(s, n, bp);
}

int
bench_xfb_reply_weight(const char *reply, unsigned *bp)
{
    const char *p = strstr(reply, "weight y ");

    if (strncmp(reply, "error:", 6) == 0)
        return -1;
    if (p != NULL)
        return bench_xfb_reply_number(p + strlen("weight y "), bp);
    for (p = reply; p != NULL; p = strchr(p, '\n')) {
        if (*p == '\n')
            p++;
        if (strncmp(p, "y ", 2) == 0)
            return bench_xfb_reply_number(p + 2, bp);
    }
    return -1;
}
