/* bench/bench_xfbench_watch.c -- the admin socket's watch stream: its lines parsed, no I/O. */
#include "bench/bench_xfbench.h"

#include <string.h>

/* Exactly `n` decimal digits at s; returns 0 with *out, or -1. */
static int
bench_xfb_watch_digits(const char *s, size_t n, unsigned *out)
{
    unsigned v = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Days from 1970-01-01 to y-m-d, y from 1970 (H. Hinnant's days_from_civil, for y >= 0). */
static int64_t
bench_xfb_watch_days(unsigned y, unsigned m, unsigned d)
{
    unsigned yy = m <= 2 ? y - 1 : y;
    unsigned era = yy / 400, yoe = yy - era * 400;
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return (int64_t)era * 146097 + (int64_t)doe - 719468;
}

int
bench_xfb_utc_ms_parse(const char *s, size_t len, int64_t *ms)
{
    static const unsigned mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    unsigned y, mo, d, h, mi, sec, milli;

    /* 2026-12-04T16:28:53.123Z: every position fixed, as the server writes it. */
    if (len != 24 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
        s[19] != '.' || s[23] != 'Z')
        return -1;
    if (bench_xfb_watch_digits(s, 4, &y) == -1 || bench_xfb_watch_digits(s + 5, 2, &mo) == -1 ||
        bench_xfb_watch_digits(s + 8, 2, &d) == -1 || bench_xfb_watch_digits(s + 11, 2, &h) == -1 ||
        bench_xfb_watch_digits(s + 14, 2, &mi) == -1 ||
        bench_xfb_watch_digits(s + 17, 2, &sec) == -1 ||
        bench_xfb_watch_digits(s + 20, 3, &milli) == -1)
        return -1;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 ||
        sec > 59)
        return -1;
    if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
        return -1;
    *ms =
        ((bench_xfb_watch_days(y, mo, d) * 24 + h) * 60 + mi) * 60000 + (int64_t)sec * 1000 + milli;
    return 0;
}

/* "-" (-1) or 1 to 18 digits. Returns 0 with *v, or -1. */
static int
bench_xfb_watch_id(const char *s, size_t len, int64_t *v)
{
    uint64_t n = 0;

    if (len == 1 && s[0] == '-') {
        *v = -1;
        return 0;
    }
    if (len == 0 || len > 18)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        n = n * 10 + (uint64_t)(s[i] - '0');
    }
    *v = (int64_t)n;
    return 0;
}

/* The next word at *p (up to a space or `end`); moves *p past the space. NULL at the end. */
static const char *
bench_xfb_watch_word(const char **p, const char *end, size_t *len)
{
    const char *w = *p, *sp;

    if (w >= end)
        return NULL;
    sp = memchr(w, ' ', (size_t)(end - w));
    *len = (size_t)((sp != NULL ? sp : end) - w);
    *p = sp != NULL ? sp + 1 : end;
    return w;
}

int
bench_xfb_watch_hello(const char *line, size_t len, int64_t *at_ms, unsigned *bp)
{
    static const char pre[] = "ok: watching at ", mid[] = " weight y ";
    const char *p = line + sizeof(pre) - 1, *end = line + len, *w;
    size_t wlen;

    if (len < sizeof(pre) - 1 + 24 + sizeof(mid) - 1 || memcmp(line, pre, sizeof(pre) - 1) != 0)
        return -1;
    if (bench_xfb_utc_ms_parse(p, 24, at_ms) == -1)
        return -1;
    p += 24;
    if (memcmp(p, mid, sizeof(mid) - 1) != 0)
        return -1;
    p += sizeof(mid) - 1;
    /* More words may follow the weight: a later server may say more. */
    w = bench_xfb_watch_word(&p, end, &wlen);
    if (w == NULL || bench_xfb_weight_parse(w, wlen, bp) == -1)
        return -1;
    return 0;
}

/*
 * The quoted command at *p: "..." with \" \\ and \xNN escapes, unescaped into out (cut to fit).
 * Moves *p past the closing quote. Returns 0, or -1 with why.
 */
static int
bench_xfb_watch_command(const char **p, const char *end, char *out, size_t size, const char **why)
{
    const char *s = *p;
    size_t o = 0;

    if (s >= end || *s != '"') {
        *why = "the command is not in double quotes";
        return -1;
    }
    for (s++; s < end && *s != '"'; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '\\') {
            if (s + 1 >= end) {
                *why = "the command ends inside an escape";
                return -1;
            }
            if (s[1] == '"' || s[1] == '\\') {
                ch = (unsigned char)s[1];
                s++;
            } else if (s[1] == 'x' && s + 3 < end) {
                unsigned v = 0;
                for (int i = 2; i < 4; i++) {
                    char c = s[i];
                    unsigned dv = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                                  : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                                  : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                                         : 16;
                    if (dv == 16) {
                        *why = "a bad \\x escape in the command";
                        return -1;
                    }
                    v = v * 16 + dv;
                }
                ch = v == 0 ? '?' : (unsigned char)v; /* a NUL would cut the text short */
                s += 3;
            } else {
                *why = "an unknown escape in the command";
                return -1;
            }
        } else if (ch < 0x20) {
            *why = "a control byte in the command";
            return -1;
        }
        if (o + 1 < size)
            out[o++] = (char)ch;
    }
    out[o] = '\0';
    if (s >= end) {
        *why = "the command's closing quote is missing";
        return -1;
    }
    *p = s + 1;
    return 0;
}

/* A weight as watch writes it ("25.00"), or "-" (-1) when `dash` allows it. */
static int
bench_xfb_watch_weight(const char *s, size_t len, int dash, int *bp)
{
    unsigned v;

    if (dash && len == 1 && s[0] == '-') {
        *bp = -1;
        return 0;
    }
    if (bench_xfb_weight_parse(s, len, &v) == -1)
        return -1;
    *bp = (int)v;
    return 0;
}

/* The part after the command: WHAT OLD -> NEW. */
static int
bench_xfb_watch_change(const char *p, const char *end, struct bench_xfb_watch_line *out,
                       const char **why)
{
    static const char arrow[] = " -> ";
    const char *a = NULL;
    int nbp;

    out->what = bench_xfb_watch_word(&p, end, &out->what_len);
    if (out->what == NULL || out->what_len == 0) {
        *why = "no WHAT after the command";
        return -1;
    }
    /* OLD may be empty: search from the space that ends WHAT. */
    for (const char *q = out->what + out->what_len; q + 4 <= end; q++) {
        if (memcmp(q, arrow, 4) == 0) {
            a = q;
            break;
        }
    }
    if (a == NULL) {
        *why = "no \" -> \" between the old and the new value";
        return -1;
    }
    out->old_v = p <= a ? p : a;
    out->old_len = (size_t)(a - out->old_v);
    out->new_v = a + 4;
    out->new_len = (size_t)(end - out->new_v);
    out->is_weight = out->what_len == 6 && memcmp(out->what, "weight", 6) == 0;
    if (!out->is_weight)
        return 0;
    if (bench_xfb_watch_weight(out->old_v, out->old_len, 1, &out->old_bp) == -1 ||
        bench_xfb_watch_weight(out->new_v, out->new_len, 0, &nbp) == -1) {
        *why = "a weight change whose values are not weights (0 to 100, two decimals)";
        return -1;
    }
    out->new_bp = (unsigned)nbp;
    return 0;
}

int
bench_xfb_watch_parse(const char *line, size_t len, struct bench_xfb_watch_line *out,
                      struct xf_err *err)
{
    const char *p = line, *end = line + len, *w, *why = NULL;
    size_t wlen;

    memset(out, 0, sizeof(*out));
    out->old_bp = -1;
    if (len > 0 && line[len - 1] == '\r')
        end--;
    if (p >= end || *p != '#') {
        why = "it does not start with #";
        goto fail;
    }
    p++;
    w = bench_xfb_watch_word(&p, end, &wlen);
    if (w == NULL || bench_xfb_watch_id(w, wlen, &out->seq) == -1) {
        why = "bad sequence number";
        goto fail;
    }
    w = bench_xfb_watch_word(&p, end, &wlen);
    if (w == NULL || bench_xfb_utc_ms_parse(w, wlen, &out->at_ms) == -1) {
        why = "bad time (expected UTC with milliseconds, 2026-12-04T16:28:53.123Z)";
        goto fail;
    }
    w = bench_xfb_watch_word(&p, end, &wlen);
    if (w == NULL || wlen < 4 || memcmp(w, "uid=", 4) != 0 ||
        bench_xfb_watch_id(w + 4, wlen - 4, &out->uid) == -1) {
        why = "bad uid=";
        goto fail;
    }
    w = bench_xfb_watch_word(&p, end, &wlen);
    if (w == NULL || wlen < 4 || memcmp(w, "pid=", 4) != 0 ||
        bench_xfb_watch_id(w + 4, wlen - 4, &out->pid) == -1) {
        why = "bad pid=";
        goto fail;
    }
    if (bench_xfb_watch_command(&p, end, out->command, sizeof(out->command), &why) == -1)
        goto fail;
    if (p >= end || *p != ' ') {
        why = "no space after the command";
        goto fail;
    }
    if (bench_xfb_watch_change(p + 1, end, out, &why) == -1)
        goto fail;
    return 0;
fail:
    xf_err_set(err, "%s", why);
    return -1;
}
