/* admin/adm_parse.c -- pure parsing for the admin protocol: lines, words, weights, split keys. */
#include "admin/adm.h"

#include <stdio.h>
#include <string.h>

enum adm_frame
adm_frame_next(struct adm_framer *fr, const char *data, size_t len, bool eof, size_t *line_len,
               size_t *consumed)
{
    size_t window = XF_MIN(len, (size_t)ADM_FRAME_WINDOW);
    const char *lf = memchr(data, '\n', window);
    size_t n;

    *line_len = 0;
    *consumed = 0;
    if (fr->skipping) {
        if (lf == NULL) {
            *consumed = window; /* all of it belongs to the long line */
            return ADM_FRAME_MORE;
        }
        fr->skipping = false;
        *consumed = (size_t)(lf - data) + 1;
        return ADM_FRAME_MORE;
    }
    if (lf == NULL) {
        if (window == ADM_FRAME_WINDOW) {
            /* More than ADM_LINE_MAX bytes and a CR, and still no LF: too long whatever follows. */
            fr->skipping = !eof || len > window;
            *consumed = window;
            return ADM_FRAME_TOO_LONG;
        }
        if (!eof || len == 0)
            return ADM_FRAME_MORE;
        n = len; /* the last line, without LF */
        *consumed = len;
    } else {
        n = (size_t)(lf - data);
        *consumed = n + 1;
    }
    if (n > 0 && data[n - 1] == '\r')
        n--;
    if (n > ADM_LINE_MAX)
        return ADM_FRAME_TOO_LONG;
    *line_len = n;
    return ADM_FRAME_LINE;
}

long
adm_line_bad_byte(const char *line, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];

        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return (long)i;
    }
    return -1;
}

static bool
adm_is_blank(char c)
{
    return c == ' ' || c == '\t';
}

int
adm_args_split(const char *line, size_t len, struct adm_args *a)
{
    size_t i = 0;

    a->n = 0;
    a->line.ptr = line;
    a->line.len = len;
    for (;;) {
        size_t start;

        while (i < len && adm_is_blank(line[i]))
            i++;
        if (i == len)
            return 0;
        if (a->n == ADM_MAX_ARGS)
            return -1;
        start = i;
        while (i < len && !adm_is_blank(line[i]))
            i++;
        a->v[a->n].ptr = line + start;
        a->v[a->n].len = i - start;
        a->n++;
    }
}

struct adm_span
adm_args_rest(const struct adm_args *a, size_t i)
{
    struct adm_span s = {a->line.ptr + a->line.len, 0};
    const char *end = a->line.ptr + a->line.len;

    if (i >= a->n)
        return s;
    s.ptr = a->v[i].ptr;
    s.len = (size_t)(end - s.ptr);
    while (s.len > 0 && adm_is_blank(s.ptr[s.len - 1]))
        s.len--;
    return s;
}

bool
adm_span_is(struct adm_span s, const char *word)
{
    return strlen(word) == s.len && xf_span_ieq(s.ptr, s.len, word);
}

int
adm_weight_parse(const char *s, size_t len, unsigned *bp)
{
    unsigned whole = 0, frac = 0;
    size_t i = 0, digits = 0;

    while (i < len && s[i] >= '0' && s[i] <= '9' && digits < 4) {
        whole = whole * 10 + (unsigned)(s[i] - '0');
        i++;
        digits++;
    }
    if (digits == 0 || digits > 3)
        return -1;
    if (i < len && s[i] == '.') {
        size_t f = 0;

        i++;
        while (i < len && s[i] >= '0' && s[i] <= '9' && f < 3) {
            frac = frac * 10 + (unsigned)(s[i] - '0');
            i++;
            f++;
        }
        if (f == 0 || f > 2)
            return -1;
        if (f == 1)
            frac *= 10;
    }
    if (i != len || whole * 100 + frac > BAL_BUCKETS)
        return -1;
    *bp = whole * 100 + frac;
    return 0;
}

const char *
adm_weight_text(unsigned bp, char *buf)
{
    snprintf(buf, ADM_WEIGHT_TEXT, "%u.%02u", XF_MIN(bp, BAL_BUCKETS) / 100,
             XF_MIN(bp, BAL_BUCKETS) % 100);
    return buf;
}

size_t
adm_escape(const char *s, size_t len, char *buf, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, i;

    if (size == 0)
        return 0;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        size_t need = c == '"' || c == '\\' ? 2 : c < 0x20 || c >= 0x7f ? 4 : 1;

        if (o + need >= size)
            break; /* never half an escape */
        if (need == 2) {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (need == 4) {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o] = '\0';
    return i;
}

const char *
adm_quote(const char *s, size_t len, char *buf, size_t size)
{
    size_t shown = XF_MIN(len, (size_t)64), took, o;

    if (size < 8) {
        if (size > 0)
            buf[0] = '\0';
        return buf;
    }
    buf[0] = '"';
    took = adm_escape(s, shown, buf + 1, size - 6);
    o = 1 + strlen(buf + 1);
    buf[o++] = '"';
    if (len > took) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

static const char *const adm_key_kinds[] = {
    [CFG_KEY_HEADER] = "header", [CFG_KEY_COOKIE] = "cookie",   [CFG_KEY_QUERY] = "query",
    [CFG_KEY_IP] = "ip",         [CFG_KEY_JWT_SUB] = "jwt_sub", [CFG_KEY_BASIC_USER] = "basic_user",
    [CFG_KEY_RANDOM] = "random", [CFG_KEY_CERT] = "cert",
};

const char *
adm_key_kind_name(enum cfg_key_kind kind)
{
    if ((size_t)kind < XF_ARRAY_LEN(adm_key_kinds) && adm_key_kinds[kind] != NULL)
        return adm_key_kinds[kind];
    return "unknown";
}

/* Whether s starts with the literal p (exactly, case included). */
static bool
adm_starts(const char *s, size_t len, const char *p)
{
    size_t n = strlen(p);

    return len >= n && memcmp(s, p, n) == 0;
}

int
adm_key_parse(const char *s, size_t len, struct adm_key *out, struct xf_err *err)
{
    static const enum cfg_key_kind named[] = {CFG_KEY_HEADER, CFG_KEY_COOKIE, CFG_KEY_QUERY,
                                              CFG_KEY_JWT_SUB};
    static const enum cfg_key_kind valued[] = {CFG_KEY_IP, CFG_KEY_BASIC_USER};
    char q[ADM_QUOTE_TEXT];

    memset(out, 0, sizeof(*out));
    out->bare = true;
    out->value.ptr = s;
    out->value.len = len;
    for (size_t i = 0; i < XF_ARRAY_LEN(named); i++) {
        const char *kind = adm_key_kind_name(named[i]);
        size_t k = strlen(kind);
        const char *eq;

        if (!adm_starts(s, len, kind) || len == k || s[k] != ':')
            continue;
        eq = memchr(s + k + 1, '=', len - k - 1);
        if (eq == NULL || eq == s + k + 1) {
            xf_err_set(err, "expected %s:NAME=VALUE, got %s", kind,
                       adm_quote(s, len, q, sizeof(q)));
            return -1;
        }
        out->bare = false;
        out->kind = named[i];
        out->name.ptr = s + k + 1;
        out->name.len = (size_t)(eq - out->name.ptr);
        out->value.ptr = eq + 1;
        out->value.len = len - (size_t)(eq + 1 - s);
        break;
    }
    for (size_t i = 0; out->bare && i < XF_ARRAY_LEN(valued); i++) {
        const char *kind = adm_key_kind_name(valued[i]);
        size_t k = strlen(kind);

        if (!adm_starts(s, len, kind) || len == k || s[k] != '=')
            continue;
        out->bare = false;
        out->kind = valued[i];
        out->value.ptr = s + k + 1;
        out->value.len = len - k - 1;
    }
    if (out->value.len == 0) {
        xf_err_set(err, "the key's value is empty (an empty key counts as absent); expected "
                        "KIND:NAME=VALUE, ip=ADDRESS, basic_user=USER or a bare value");
        return -1;
    }
    return 0;
}

int
adm_key_bytes(const struct adm_key *k, char *buf, const char **key, size_t *len, struct xf_err *err)
{
    struct bal_addr addr;
    char q[ADM_QUOTE_TEXT];

    *key = k->value.ptr;
    *len = k->value.len;
    if (k->bare || k->kind != CFG_KEY_IP)
        return 0;
    /* The ip key hashes the address as the balancer writes it: canonical text. */
    if (bal_addr_parse(k->value.ptr, k->value.len, &addr) == -1) {
        xf_err_set(err, "%s is not an IP address",
                   adm_quote(k->value.ptr, k->value.len, q, sizeof(q)));
        return -1;
    }
    *len = bal_addr_text(&addr, buf, BAL_ADDR_TEXT);
    *key = buf;
    return 0;
}

int
adm_duration_parse(const char *s, size_t len, unsigned *ms, struct xf_err *err)
{
    char text[64], q[ADM_QUOTE_TEXT];
    struct xf_err e = {{0}};

    if (len >= sizeof(text)) {
        xf_err_set(err, "expected a duration such as 500ms, 30s, 10m, 1h or 1h30m, got %s",
                   adm_quote(s, len, q, sizeof(q)));
        return -1;
    }
    memcpy(text, s, len);
    text[len] = '\0';
    if (cfg_duration_parse(text, ms, &e) == -1) {
        xf_err_set(err, "%s", e.msg);
        return -1;
    }
    return 0;
}

const char *
adm_duration_text(uint64_t ms, char *buf, size_t size)
{
    uint64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, rest = ms % 1000;
    size_t o = 0;
    int n;

    buf[0] = '\0';
    if (h > 0 && (n = snprintf(buf + o, size - o, "%lluh", (unsigned long long)h)) > 0)
        o = XF_MIN(o + (size_t)n, size - 1);
    if (m > 0 && (n = snprintf(buf + o, size - o, "%llum", (unsigned long long)m)) > 0)
        o = XF_MIN(o + (size_t)n, size - 1);
    if (s > 0 && (n = snprintf(buf + o, size - o, "%llus", (unsigned long long)s)) > 0)
        o = XF_MIN(o + (size_t)n, size - 1);
    if (rest > 0 || ms == 0)
        snprintf(buf + o, size - o, "%llums", (unsigned long long)rest);
    return buf;
}

const char *
adm_duration_about(uint64_t ms, char *buf, size_t size)
{
    if (ms < 10000) {
        snprintf(buf, size, "%llu.%llus", (unsigned long long)(ms / 1000),
                 (unsigned long long)(ms % 1000 / 100));
        return buf;
    }
    return adm_duration_text((ms + 500) / 1000 * 1000, buf, size);
}

const char *
adm_time_text(time_t t, char *buf, size_t size)
{
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, size, "%lld", (long long)t);
    return buf;
}

const char *
adm_log_text(const char *s, char *buf, size_t size)
{
    size_t o = 0;

    for (; *s != '\0' && o + 2 < size; s++) {
        if (*s == '"' || *s == '\\')
            buf[o++] = '\\';
        buf[o++] = *s;
    }
    buf[o] = '\0';
    return buf;
}
