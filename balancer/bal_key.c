/* balancer/bal_key.c -- the split key of a request: header, cookie, query, ip, jwt_sub, basic_user
 * or random, read in place or decoded into a fixed buffer (no allocation, no system call). */
#include "balancer/bal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

/* xorshift64's state when bal_state.rng is 0 (any non-zero value would do). */
#define BAL_RNG_SEED 0x2545f4914f6cdd1dull

static bool
bal_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Shrinks [*p, *p + *len) to exclude leading and trailing spaces and tabs. */
static void
bal_trim(const char **p, size_t *len)
{
    while (*len > 0 && bal_ows(**p)) {
        (*p)++;
        (*len)--;
    }
    while (*len > 0 && bal_ows((*p)[*len - 1]))
        (*len)--;
}

static unsigned char
bal_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* ASCII case-insensitive equality of two spans. */
static bool
bal_ieq(const char *a, size_t a_len, const char *b, size_t b_len)
{
    if (a_len != b_len)
        return false;
    for (size_t i = 0; i < a_len; i++)
        if (bal_lower((unsigned char)a[i]) != bal_lower((unsigned char)b[i]))
            return false;
    return true;
}

/* True when the span starts with `word` (case-insensitive) followed by at least one space or tab;
 * *rest is then what follows the blanks. */
static bool
bal_scheme(const char *v, size_t len, const char *word, const char **rest, size_t *rest_len)
{
    size_t n = strlen(word), i;

    if (len <= n || !bal_ieq(v, n, word, n) || !bal_ows(v[n]))
        return false;
    for (i = n; i < len && bal_ows(v[i]); i++)
        ;
    *rest = v + i;
    *rest_len = len - i;
    return true;
}

/* --- request readers --- */

int
bal_header_value(const struct bal_request *req, const char *name, const char **val, size_t *len)
{
    size_t name_len = strlen(name);

    for (size_t i = 0; i < req->n_hdrs; i++) {
        const struct xf_hdr *h = &req->hdrs[i];

        if (bal_ieq(h->name, h->name_len, name, name_len)) {
            *val = h->value;
            *len = h->value_len;
            bal_trim(val, len);
            return 0;
        }
    }
    return -1;
}

int
bal_cookie_value(const struct bal_request *req, const char *name, const char **val, size_t *len)
{
    size_t name_len = strlen(name);

    for (size_t i = 0; i < req->n_hdrs; i++) {
        const struct xf_hdr *h = &req->hdrs[i];
        size_t pos = 0;

        if (!bal_ieq(h->name, h->name_len, "cookie", 6))
            continue;
        while (pos < h->value_len) {
            const char *pair = h->value + pos, *eq;
            size_t pair_len = 0, n_len, v_len;

            while (pos + pair_len < h->value_len && pair[pair_len] != ';')
                pair_len++;
            pos += pair_len + 1;
            bal_trim(&pair, &pair_len);
            eq = memchr(pair, '=', pair_len);
            if (eq == NULL)
                continue;
            n_len = (size_t)(eq - pair);
            while (n_len > 0 && bal_ows(pair[n_len - 1]))
                n_len--;
            if (n_len != name_len || memcmp(pair, name, name_len) != 0)
                continue;
            *val = eq + 1;
            v_len = pair_len - (size_t)(eq + 1 - pair);
            bal_trim(val, &v_len);
            if (v_len >= 2 && (*val)[0] == '"' && (*val)[v_len - 1] == '"') {
                (*val)++;
                v_len -= 2;
            }
            *len = v_len;
            return 0;
        }
    }
    return -1;
}

int
bal_query_value(const struct bal_request *req, const char *name, const char **val, size_t *len)
{
    const char *q = req->target != NULL ? memchr(req->target, '?', req->target_len) : NULL;
    const char *end, *hash;
    size_t name_len = strlen(name);

    if (q == NULL)
        return -1;
    q++;
    end = req->target + req->target_len;
    hash = memchr(q, '#', (size_t)(end - q));
    if (hash != NULL)
        end = hash;
    for (;;) {
        const char *p = q, *eq;

        while (q < end && *q != '&' && *q != ';')
            q++;
        eq = memchr(p, '=', (size_t)(q - p));
        if ((size_t)((eq != NULL ? eq : q) - p) == name_len && memcmp(p, name, name_len) == 0) {
            *val = eq != NULL ? eq + 1 : q;
            *len = (size_t)(q - *val);
            return 0;
        }
        if (q == end)
            return -1;
        q++;
    }
}

/* --- addresses --- */

/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d) becomes the IPv4 address. */
static void
bal_addr_unmap(struct bal_addr *a)
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (a->family == AF_INET6 && memcmp(a->bytes, prefix, sizeof(prefix)) == 0) {
        a->family = AF_INET;
        memmove(a->bytes, a->bytes + 12, 4);
        memset(a->bytes + 4, 0, 12);
    }
}

/* True when [s, s + len) is ":" followed by a port number (1 to 5 digits, at most 65535). */
static bool
bal_port(const char *s, size_t len)
{
    unsigned port = 0;

    if (len < 2 || len > 6 || s[0] != ':')
        return false;
    for (size_t i = 1; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        port = port * 10 + (unsigned)(s[i] - '0');
    }
    return port <= 65535;
}

int
bal_addr_parse(const char *s, size_t len, struct bal_addr *out)
{
    char text[BAL_ADDR_TEXT + 1];
    const char *colon;
    struct bal_addr a = {0};

    bal_trim(&s, &len);
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        size_t after;

        if (close == NULL)
            return -1;
        after = len - (size_t)(close + 1 - s);
        if (after != 0 && !bal_port(close + 1, after))
            return -1;
        s++;
        len = (size_t)(close - s);
        if (len == 0 || len >= sizeof(text))
            return -1;
        memcpy(text, s, len);
        text[len] = '\0';
        if (inet_pton(AF_INET6, text, a.bytes) != 1)
            return -1;
        a.family = AF_INET6;
    } else {
        colon = memchr(s, ':', len);
        /* One colon after a dotted quad is a port; more colons make an IPv6 address. */
        if (colon != NULL && memchr(colon + 1, ':', len - (size_t)(colon + 1 - s)) == NULL) {
            if (!bal_port(colon, len - (size_t)(colon - s)))
                return -1;
            len = (size_t)(colon - s);
        }
        if (len == 0 || len >= sizeof(text))
            return -1;
        memcpy(text, s, len);
        text[len] = '\0';
        if (inet_pton(AF_INET, text, a.bytes) == 1)
            a.family = AF_INET;
        else if (colon != NULL && inet_pton(AF_INET6, text, a.bytes) == 1)
            a.family = AF_INET6;
        else
            return -1;
    }
    bal_addr_unmap(&a);
    *out = a;
    return 0;
}

bool
bal_addr_in(const struct bal_addr *a, const struct cfg_cidr *nets, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct cfg_cidr *c = &nets[i];
        unsigned whole = c->prefix / 8u, rest = c->prefix % 8u;

        if (c->family != a->family || c->family == 0)
            continue;
        if (memcmp(a->bytes, c->addr, whole) != 0)
            continue;
        if (rest != 0) {
            uint8_t mask = (uint8_t)(0xffu << (8 - rest));
            if ((a->bytes[whole] & mask) != (c->addr[whole] & mask))
                continue;
        }
        return true;
    }
    return false;
}

/* Dotted decimal without leading zeros, byte for byte what inet_ntop writes, without its
 * sprintf (a third of the cost of a whole decision). buf holds at least 16 bytes. */
static size_t
bal_ipv4_text(const uint8_t *b, char *buf)
{
    size_t n = 0;

    for (int i = 0; i < 4; i++) {
        unsigned v = b[i];

        if (i > 0)
            buf[n++] = '.';
        if (v >= 100)
            buf[n++] = (char)('0' + v / 100);
        if (v >= 10)
            buf[n++] = (char)('0' + v / 10 % 10);
        buf[n++] = (char)('0' + v % 10);
    }
    buf[n] = '\0';
    return n;
}

size_t
bal_addr_text(const struct bal_addr *a, char *buf, size_t size)
{
    if (size == 0)
        return 0;
    buf[0] = '\0';
    if (a->family == AF_INET && size >= 16)
        return bal_ipv4_text(a->bytes, buf);
    if (a->family != AF_INET6 || inet_ntop(AF_INET6, a->bytes, buf, (socklen_t)size) == NULL)
        return 0;
    return strlen(buf);
}

/* Walks one X-Forwarded-For value from its end. Returns true when the walk is over: `*cur` is then
 * the answer. On false, `*cur` holds the last (trusted) address read and the walk goes on. */
static bool
bal_xff_walk(const struct cfg_split *split, const char *v, size_t len, struct bal_addr *cur)
{
    size_t end = len;

    for (;;) {
        size_t start = end;
        struct bal_addr a;
        const char *elem;
        size_t elem_len;

        while (start > 0 && v[start - 1] != ',')
            start--;
        elem = v + start;
        elem_len = end - start;
        bal_trim(&elem, &elem_len);
        if (elem_len > 0) {
            if (bal_addr_parse(elem, elem_len, &a) == -1)
                return true; /* unparsable: stop at the last good one */
            *cur = a;
            if (!bal_addr_in(cur, split->trusted_proxies, split->n_trusted_proxies))
                return true;
        }
        if (start == 0)
            return false;
        end = start - 1;
    }
}

void
bal_client_addr(const struct cfg_split *split, const struct bal_request *req, struct bal_addr *out)
{
    *out = req->peer;
    bal_addr_unmap(out);
    if (split->n_trusted_proxies == 0 ||
        !bal_addr_in(out, split->trusted_proxies, split->n_trusted_proxies))
        return;
    for (size_t i = req->n_hdrs; i-- > 0;) {
        const struct xf_hdr *h = &req->hdrs[i];

        if (bal_ieq(h->name, h->name_len, "x-forwarded-for", 15) &&
            bal_xff_walk(split, h->value, h->value_len, out))
            return;
    }
}

/* --- base64 and the JWT payload --- */

/*
 * base64 digits by byte: the 6-bit value; + and / carry 0x40 (standard alphabet only), - and _
 * carry 0x80 (url alphabet only); 255 for anything else.
 */
static const uint8_t bal_b64_digits[256] = {
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 126, 255, 190, 255, 127, 52,  53,  54,  55,  56,  57,  58,  59,  60,
    61,  255, 255, 255, 255, 255, 255, 255, 0,   1,   2,   3,   4,   5,   6,   7,   8,   9,   10,
    11,  12,  13,  14,  15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25,  255, 255, 255, 255,
    191, 255, 26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,  41,  42,
    43,  44,  45,  46,  47,  48,  49,  50,  51,  255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255,
};

/* The 6-bit value of a base64 character (url: - and _, else + and /), or -1. */
static int
bal_b64_value(unsigned char c, bool url)
{
    unsigned v = bal_b64_digits[c];

    if (v < 64)
        return (int)v;
    if (v == 255 || (v & (url ? 0x40u : 0x80u)) != 0)
        return -1;
    return (int)(v & 63u);
}

/*
 * Decodes base64 (the url alphabet or the standard one) into out[0..cap). One or two '=' at the end
 * are accepted, not required; bits left over are ignored. Returns the decoded length, or -1 when
 * the text is malformed or would not fit.
 */
static long
bal_b64_decode(const char *in, size_t len, bool url, char *out, size_t cap)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t n = 0, i = 0;
    int v[4];

    for (int pad = 0; pad < 2 && len > 0 && in[len - 1] == '='; pad++)
        len--;
    if (len % 4 == 1 || len / 4 * 3 + (len % 4 != 0 ? len % 4 - 1 : 0) > cap)
        return -1;
    /* Four characters make three bytes; the tail of 2 or 3 characters makes 1 or 2. */
    for (; i + 4 <= len; i += 4) {
        unsigned a = bal_b64_digits[p[i]], b = bal_b64_digits[p[i + 1]];
        unsigned c = bal_b64_digits[p[i + 2]], d = bal_b64_digits[p[i + 3]];
        uint32_t w;

        if ((a | b | c | d) >= 64) { /* a character of 62 or 63, or not base64 */
            if ((v[0] = bal_b64_value(p[i], url)) < 0 ||
                (v[1] = bal_b64_value(p[i + 1], url)) < 0 ||
                (v[2] = bal_b64_value(p[i + 2], url)) < 0 ||
                (v[3] = bal_b64_value(p[i + 3], url)) < 0)
                return -1;
            a = (unsigned)v[0];
            b = (unsigned)v[1];
            c = (unsigned)v[2];
            d = (unsigned)v[3];
        }
        w = (uint32_t)(a << 18 | b << 12 | c << 6 | d);
        out[n++] = (char)(w >> 16);
        out[n++] = (char)(w >> 8);
        out[n++] = (char)w;
    }
    for (; i < len; i += 4) {
        size_t m = XF_MIN(len - i, 4);

        v[2] = v[3] = 0;
        for (size_t j = 0; j < m; j++)
            if ((v[j] = bal_b64_value(p[i + j], url)) < 0)
                return -1;
        out[n++] = (char)((v[0] << 2) | (v[1] >> 4));
        if (m > 2)
            out[n++] = (char)(((v[1] & 15) << 4) | (v[2] >> 2));
        if (m > 3)
            out[n++] = (char)(((v[2] & 3) << 6) | v[3]);
    }
    return (long)n;
}

static const char *
bal_json_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* Four hex digits at p (p + 4 <= end checked by the caller); -1 when one is not hex. */
static long
bal_hex4(const char *p)
{
    long v = 0;

    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Writes code point `cp` as UTF-8 at w; returns the bytes written. */
static size_t
bal_utf8_put(char *w, uint32_t cp)
{
    if (cp < 0x80) {
        w[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        w[0] = (char)(0xc0 | (cp >> 6));
        w[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        w[0] = (char)(0xe0 | (cp >> 12));
        w[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        w[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    w[0] = (char)(0xf0 | (cp >> 18));
    w[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    w[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    w[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* One escape after the backslash at *pp (\uXXXX with its surrogate pair); writes the bytes at *wp
 * (never past *pp: an escape is longer than what it stands for). Returns 0 or -1. */
static int
bal_json_escape(char **pp, const char *end, char **wp)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    char *p = *pp + 1;
    const char *e;
    long cp, lo;

    if (p >= end)
        return -1;
    if (*p != 'u') {
        e = memchr(from, *p, sizeof(from) - 1);
        if (e == NULL)
            return -1;
        *(*wp)++ = to[e - from];
        *pp = p + 1;
        return 0;
    }
    if (end - p < 5 || (cp = bal_hex4(p + 1)) < 0)
        return -1;
    p += 5;
    if (cp >= 0xdc00 && cp <= 0xdfff)
        return -1; /* a lone low surrogate */
    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || (lo = bal_hex4(p + 2)) < 0 ||
            lo < 0xdc00 || lo > 0xdfff)
            return -1;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        p += 6;
    }
    *wp += bal_utf8_put(*wp, (uint32_t)cp);
    *pp = p;
    return 0;
}

/*
 * Reads the JSON string whose opening quote is at *pp, unescaping it in place. On success *pp is
 * past the closing quote and [*s, *s + *n) holds the bytes. Returns 0, or -1 when malformed.
 */
static int
bal_json_string(char **pp, const char *end, char **s, size_t *n)
{
    char *p = *pp + 1, *w = p;

    *s = p;
    while (p < end && *p != '"') {
        if ((unsigned char)*p < 0x20)
            return -1;
        if (*p == '\\') {
            if (bal_json_escape(&p, end, &w) == -1)
                return -1;
        } else {
            *w++ = *p++;
        }
    }
    if (p >= end)
        return -1;
    *n = (size_t)(w - *s);
    *pp = p + 1;
    return 0;
}

/* Skips one JSON value at *pp (objects and arrays by their brackets, strings by their escapes).
 * Checks no more than that. Returns 0, or -1 when the payload ends first. */
static int
bal_json_skip(char **pp, const char *end)
{
    char *p = *pp;
    size_t depth = 0;

    do {
        if (p >= end)
            return -1;
        if (*p == '"') {
            for (p++; p < end && *p != '"'; p++)
                if (*p == '\\')
                    p++;
            if (p >= end)
                return -1;
            p++;
        } else if (*p == '{' || *p == '[') {
            depth++;
            p++;
        } else if (*p == '}' || *p == ']') {
            if (depth == 0)
                return -1;
            depth--;
            p++;
        } else if (depth > 0) {
            p++;
        } else {
            /* a number, true, false or null at the top of the value */
            while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' &&
                   *p != '\n' && *p != '\r')
                p++;
            if (p == *pp)
                return -1;
        }
    } while (depth > 0);
    *pp = p;
    return 0;
}

/*
 * Finds the first top-level "sub" member of the JSON object in [p, end) (unescaped in place).
 * Returns 0 with the span of its string value, or -1 when there is none, it is not a string, or
 * the JSON before it is malformed.
 */
static int
bal_json_sub(char *p, const char *end, char **s, size_t *n)
{
    p = (char *)bal_json_ws(p, end);
    if (p >= end || *p != '{')
        return -1;
    p = (char *)bal_json_ws(p + 1, end);
    while (p < end && *p == '"') {
        char *name;
        size_t name_len;

        if (bal_json_string(&p, end, &name, &name_len) == -1)
            return -1;
        p = (char *)bal_json_ws(p, end);
        if (p >= end || *p != ':')
            return -1;
        p = (char *)bal_json_ws(p + 1, end);
        if (name_len == 3 && memcmp(name, "sub", 3) == 0)
            return p < end && *p == '"' ? bal_json_string(&p, end, s, n) : -1;
        if (bal_json_skip(&p, end) == -1)
            return -1;
        p = (char *)bal_json_ws(p, end);
        if (p >= end || *p != ',')
            return -1;
        p = (char *)bal_json_ws(p + 1, end);
    }
    return -1;
}

/* jwt_sub:HEADER: "Bearer <header>.<payload>.<signature>" -> the payload's sub, into k->buf. */
static int
bal_key_jwt_sub(const struct bal_request *req, const char *header, struct bal_key *k)
{
    const char *v, *tok, *dot1, *dot2;
    size_t len, tok_len;
    char *sub;
    size_t sub_len;
    long n;

    if (bal_header_value(req, header, &v, &len) == -1 ||
        !bal_scheme(v, len, "bearer", &tok, &tok_len))
        return -1;
    dot1 = memchr(tok, '.', tok_len);
    if (dot1 == NULL)
        return -1;
    dot2 = memchr(dot1 + 1, '.', tok_len - (size_t)(dot1 + 1 - tok));
    if (dot2 == NULL || dot2 == dot1 + 1 ||
        memchr(dot2 + 1, '.', tok_len - (size_t)(dot2 + 1 - tok)) != NULL)
        return -1;
    n = bal_b64_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), true, k->buf, sizeof(k->buf));
    if (n < 0 || bal_json_sub(k->buf, k->buf + n, &sub, &sub_len) == -1)
        return -1;
    k->ptr = sub;
    k->len = sub_len;
    return 0;
}

/* basic_user: "Basic base64(user:password)" -> user, into k->buf. */
static int
bal_key_basic_user(const struct bal_request *req, struct bal_key *k)
{
    const char *v, *tok, *colon;
    size_t len, tok_len;
    long n;

    if (bal_header_value(req, "authorization", &v, &len) == -1 ||
        !bal_scheme(v, len, "basic", &tok, &tok_len))
        return -1;
    n = bal_b64_decode(tok, tok_len, false, k->buf, sizeof(k->buf));
    if (n < 0)
        return -1;
    colon = memchr(k->buf, ':', (size_t)n);
    if (colon == NULL)
        return -1;
    k->ptr = k->buf;
    k->len = (size_t)(colon - k->buf);
    return 0;
}

/* The client address as text into k->buf; -1 when it is unknown. */
static int
bal_key_ip(const struct cfg_split *split, const struct bal_request *req, struct bal_key *k)
{
    struct bal_addr a;

    bal_client_addr(split, req, &a);
    k->ptr = k->buf;
    k->len = bal_addr_text(&a, k->buf, sizeof(k->buf));
    return k->len > 0 ? 0 : -1;
}

/* random: the next xorshift64 output as 8 little-endian bytes. */
static void
bal_key_random(struct bal_state *st, struct bal_key *k)
{
    uint64_t x = st != NULL && st->rng != 0 ? st->rng : BAL_RNG_SEED;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    if (st != NULL)
        st->rng = x;
    for (int i = 0; i < 8; i++)
        k->buf[i] = (char)(x >> (8 * i));
    k->ptr = k->buf;
    k->len = 8;
}

/* One key source; 0 with k->ptr/len set, or -1 when absent (or empty). */
static int
bal_key_read(const struct cfg_split *split, const struct cfg_split_key *key,
             const struct bal_request *req, struct bal_state *st, struct bal_key *k)
{
    int rc = -1;

    switch (key->kind) {
    case CFG_KEY_HEADER:
        rc = bal_header_value(req, key->name, &k->ptr, &k->len);
        break;
    case CFG_KEY_COOKIE:
        rc = bal_cookie_value(req, key->name, &k->ptr, &k->len);
        break;
    case CFG_KEY_QUERY:
        rc = bal_query_value(req, key->name, &k->ptr, &k->len);
        break;
    case CFG_KEY_IP:
        rc = bal_key_ip(split, req, k);
        break;
    case CFG_KEY_JWT_SUB:
        rc = bal_key_jwt_sub(req, key->name, k);
        break;
    case CFG_KEY_BASIC_USER:
        rc = bal_key_basic_user(req, k);
        break;
    case CFG_KEY_RANDOM:
        bal_key_random(st, k);
        rc = 0;
        break;
    case CFG_KEY_CERT: {
        /* "subject", "san" or "fingerprint" (checked at load). */
        enum bal_cert_field f = key->name[1] == 'u'   ? BAL_CERT_SUBJECT
                                : key->name[1] == 'a' ? BAL_CERT_SAN
                                                      : BAL_CERT_FINGERPRINT;
        if (req->cert[f] != NULL) {
            k->ptr = req->cert[f];
            k->len = req->cert_len[f];
            rc = 0;
        }
        break;
    }
    }
    return rc == 0 && k->len > 0 ? 0 : -1;
}

int
bal_key_find(const struct cfg_split *split, const struct bal_request *req, struct bal_state *st,
             struct bal_key *out)
{
    for (size_t i = 0; i < split->n_keys; i++) {
        if (bal_key_read(split, &split->keys[i], req, st, out) == 0) {
            out->index = (int)i;
            return out->index;
        }
    }
    /* No key: the client address, or the empty key when even that is unknown. */
    bal_key_ip(split, req, out);
    out->index = -1;
    return -1;
}
