/* fleet/fl_json.c -- a strict JSON reader: one pass checks the whole document and keeps a flat
 * array of tokens; strings and integers are decoded on demand. */
#include "fleet/fl_int.h"

#include <string.h>

/* The parser's cursor; everything borrowed from fl_json_parse. */
struct fl_json_p {
    struct fl_json *doc;
    const unsigned char *s;
    size_t len;
    size_t pos;
    struct xf_err *err;
};

static int
fl_json_fail(struct fl_json_p *p, const char *what)
{
    if (p->pos < p->len && p->s[p->pos] >= 0x20 && p->s[p->pos] < 0x7f)
        xf_err_set(p->err, "JSON byte %zu ('%c'): %s", p->pos, p->s[p->pos], what);
    else if (p->pos < p->len)
        xf_err_set(p->err, "JSON byte %zu (0x%02x): %s", p->pos, p->s[p->pos], what);
    else
        xf_err_set(p->err, "JSON byte %zu (end of input): %s", p->pos, what);
    return -1;
}

/* Appends a token; returns its index, or -1 when memory ran out. */
static int64_t
fl_json_tok_new(struct fl_json_p *p, enum fl_json_type type, size_t start)
{
    struct fl_json *d = p->doc;
    struct fl_json_tok *t;

    if (d->n_toks == d->cap) {
        uint32_t cap = d->cap == 0 ? 32 : d->cap * 2;
        struct fl_json_tok *toks;

        if (d->cap > UINT32_MAX / 4)
            return fl_json_fail(p, "too many values");
        toks = realloc(d->toks, (size_t)cap * sizeof(*toks));
        if (toks == NULL)
            return fl_json_fail(p, "out of memory");
        d->toks = toks;
        d->cap = cap;
    }
    t = &d->toks[d->n_toks];
    memset(t, 0, sizeof(*t));
    t->type = (uint8_t)type;
    t->start = (uint32_t)start;
    return d->n_toks++;
}

/* Closes token i: its length ends at p->pos, its subtree at the last token made. */
static void
fl_json_tok_end(struct fl_json_p *p, int64_t i, size_t end)
{
    struct fl_json_tok *t = &p->doc->toks[i];

    t->len = (uint32_t)(end - t->start);
    t->next = p->doc->n_toks;
}

static void
fl_json_ws(struct fl_json_p *p)
{
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];

        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        p->pos++;
    }
}

/* The length of the well-formed UTF-8 sequence at s (at most n bytes), or 0 (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t
fl_json_utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xbf;
    size_t need;

    if (c >= 0xc2 && c <= 0xdf)
        need = 2;
    else if (c >= 0xe0 && c <= 0xef)
        need = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        need = 4;
    else
        return 0;
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    if (n < need || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t k = 2; k < need; k++)
        if (s[k] < 0x80 || s[k] > 0xbf)
            return 0;
    return need;
}

static int
fl_json_hex4(const unsigned char *s, unsigned *out)
{
    unsigned v = 0;

    for (int k = 0; k < 4; k++) {
        unsigned char c = s[k];

        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Checks a \u escape at p->pos (on the backslash) and what it needs after it (the low half of a
 * surrogate pair); moves past them. */
static int
fl_json_uescape(struct fl_json_p *p)
{
    unsigned hi, lo;

    if (p->len - p->pos < 6 || fl_json_hex4(p->s + p->pos + 2, &hi) == -1)
        return fl_json_fail(p, "\\u needs four hexadecimal digits");
    if (hi >= 0xdc00 && hi <= 0xdfff)
        return fl_json_fail(p, "a low surrogate without the high one before it");
    if (hi >= 0xd800 && hi <= 0xdbff) {
        if (p->len - p->pos < 12 || p->s[p->pos + 6] != '\\' || p->s[p->pos + 7] != 'u' ||
            fl_json_hex4(p->s + p->pos + 8, &lo) == -1 || lo < 0xdc00 || lo > 0xdfff)
            return fl_json_fail(p, "a high surrogate not followed by a low one");
        p->pos += 6;
    }
    p->pos += 6;
    return 0;
}

static int
fl_json_string(struct fl_json_p *p)
{
    int64_t i = fl_json_tok_new(p, FL_JSON_STRING, p->pos + 1);

    if (i == -1)
        return -1;
    p->pos++;
    for (;;) {
        unsigned char c;
        size_t n;

        if (p->pos >= p->len)
            return fl_json_fail(p, "unterminated string");
        c = p->s[p->pos];
        if (c == '"')
            break;
        if (c < 0x20)
            return fl_json_fail(p, "control byte in a string");
        if (c == '\\') {
            p->doc->toks[i].n = 1;
            if (p->pos + 1 >= p->len)
                return fl_json_fail(p, "unterminated escape");
            c = p->s[p->pos + 1];
            if (c == 'u') {
                if (fl_json_uescape(p) == -1)
                    return -1;
                continue;
            }
            if (strchr("\"\\/bfnrt", c) == NULL || c == '\0') {
                p->pos++;
                return fl_json_fail(p, "invalid escape");
            }
            p->pos += 2;
            continue;
        }
        if (c < 0x80) {
            p->pos++;
            continue;
        }
        n = fl_json_utf8_len(p->s + p->pos, p->len - p->pos);
        if (n == 0)
            return fl_json_fail(p, "invalid UTF-8 in a string");
        p->pos += n;
    }
    fl_json_tok_end(p, i, p->pos);
    p->pos++;
    return 0;
}

static int
fl_json_digits(struct fl_json_p *p)
{
    size_t from = p->pos;

    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
        p->pos++;
    return p->pos > from ? 0 : fl_json_fail(p, "expected a digit");
}

static int
fl_json_number(struct fl_json_p *p)
{
    int64_t i = fl_json_tok_new(p, FL_JSON_NUMBER, p->pos);

    if (i == -1)
        return -1;
    if (p->s[p->pos] == '-')
        p->pos++;
    if (p->pos < p->len && p->s[p->pos] == '0') {
        p->pos++;
        if (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            return fl_json_fail(p, "a number with a leading zero");
    } else if (fl_json_digits(p) == -1) {
        return -1;
    }
    if (p->pos < p->len && p->s[p->pos] == '.') {
        p->pos++;
        if (fl_json_digits(p) == -1)
            return -1;
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
            p->pos++;
        if (fl_json_digits(p) == -1)
            return -1;
    }
    fl_json_tok_end(p, i, p->pos);
    return 0;
}

static int
fl_json_literal(struct fl_json_p *p, const char *word, enum fl_json_type type)
{
    size_t n = strlen(word);
    int64_t i;

    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return fl_json_fail(p, "expected a value");
    i = fl_json_tok_new(p, type, p->pos);
    if (i == -1)
        return -1;
    p->pos += n;
    fl_json_tok_end(p, i, p->pos);
    return 0;
}

static int fl_json_value(struct fl_json_p *p, unsigned depth);

/* An array or an object, p->pos on its opening bracket. */
static int
fl_json_container(struct fl_json_p *p, unsigned depth, bool object)
{
    const char close = object ? '}' : ']';
    int64_t i;
    uint32_t n = 0;

    if (depth >= FL_JSON_MAX_DEPTH)
        return fl_json_fail(p, "nested too deep (more than 64 levels)");
    i = fl_json_tok_new(p, object ? FL_JSON_OBJECT : FL_JSON_ARRAY, p->pos);
    if (i == -1)
        return -1;
    p->pos++;
    fl_json_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        fl_json_tok_end(p, i, p->pos);
        return 0;
    }
    for (;;) {
        if (object) {
            fl_json_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != '"')
                return fl_json_fail(p, "expected a member name (a string)");
            if (fl_json_string(p) == -1)
                return -1;
            fl_json_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':')
                return fl_json_fail(p, "expected ':' after a member name");
            p->pos++;
        }
        if (fl_json_value(p, depth + 1) == -1)
            return -1;
        n++;
        fl_json_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == close)
            break;
        return fl_json_fail(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    p->pos++;
    p->doc->toks[i].n = n;
    fl_json_tok_end(p, i, p->pos);
    return 0;
}

static int
fl_json_value(struct fl_json_p *p, unsigned depth)
{
    fl_json_ws(p);
    if (p->pos >= p->len)
        return fl_json_fail(p, "expected a value");
    switch (p->s[p->pos]) {
    case '{':
        return fl_json_container(p, depth, true);
    case '[':
        return fl_json_container(p, depth, false);
    case '"':
        return fl_json_string(p);
    case 't':
        return fl_json_literal(p, "true", FL_JSON_TRUE);
    case 'f':
        return fl_json_literal(p, "false", FL_JSON_FALSE);
    case 'n':
        return fl_json_literal(p, "null", FL_JSON_NULL);
    default:
        if (p->s[p->pos] == '-' || (p->s[p->pos] >= '0' && p->s[p->pos] <= '9'))
            return fl_json_number(p);
        return fl_json_fail(p, "expected a value");
    }
}

int
fl_json_parse(struct fl_json *doc, const char *text, size_t len, struct xf_err *err)
{
    struct fl_json_p p = {.doc = doc, .s = (const unsigned char *)text, .len = len, .err = err};

    memset(doc, 0, sizeof(*doc));
    doc->text = text;
    doc->len = len;
    if (len > FL_JSON_MAX_LEN) {
        xf_err_set(err, "JSON document of %zu bytes is too large", len);
        return -1;
    }
    if (fl_json_value(&p, 0) == -1)
        goto fail;
    fl_json_ws(&p);
    if (p.pos != len) {
        fl_json_fail(&p, "bytes after the end of the document");
        goto fail;
    }
    return 0;
fail:
    fl_json_fini(doc);
    return -1;
}

void
fl_json_fini(struct fl_json *doc)
{
    XF_FREE(doc->toks);
    doc->n_toks = 0;
    doc->cap = 0;
}

static const struct fl_json_tok *
fl_json_tok(const struct fl_json *doc, uint32_t i)
{
    return i < doc->n_toks ? &doc->toks[i] : NULL;
}

enum fl_json_type
fl_json_type(const struct fl_json *doc, uint32_t i)
{
    const struct fl_json_tok *t = fl_json_tok(doc, i);

    return t != NULL ? (enum fl_json_type)t->type : FL_JSON_MISSING;
}

uint32_t
fl_json_count(const struct fl_json *doc, uint32_t i)
{
    const struct fl_json_tok *t = fl_json_tok(doc, i);

    return t != NULL && (t->type == FL_JSON_ARRAY || t->type == FL_JSON_OBJECT) ? t->n : 0;
}

uint32_t
fl_json_child(const struct fl_json *doc, uint32_t parent)
{
    return fl_json_count(doc, parent) > 0 ? parent + 1 : FL_JSON_NONE;
}

uint32_t
fl_json_sibling(const struct fl_json *doc, uint32_t parent, uint32_t child)
{
    const struct fl_json_tok *p = fl_json_tok(doc, parent), *c = fl_json_tok(doc, child);

    if (p == NULL || c == NULL || child <= parent || child >= p->next)
        return FL_JSON_NONE;
    return c->next < p->next ? c->next : FL_JSON_NONE;
}

uint32_t
fl_json_member(const struct fl_json *doc, uint32_t i, const char *name)
{
    size_t len = strlen(name);

    if (fl_json_type(doc, i) != FL_JSON_OBJECT)
        return FL_JSON_NONE;
    for (uint32_t k = fl_json_child(doc, i); k != FL_JSON_NONE;) {
        uint32_t v = fl_json_sibling(doc, i, k);

        if (fl_json_str_eq(doc, k, name, len))
            return v;
        k = fl_json_sibling(doc, i, v);
    }
    return FL_JSON_NONE;
}

/* Writes the UTF-8 form of code point c at out; returns the bytes written. */
static size_t
fl_json_put_utf8(unsigned char *out, unsigned c)
{
    if (c < 0x80) {
        out[0] = (unsigned char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (unsigned char)(0xc0 | (c >> 6));
        out[1] = (unsigned char)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (unsigned char)(0xe0 | (c >> 12));
        out[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
        out[2] = (unsigned char)(0x80 | (c & 0x3f));
        return 3;
    }
    out[0] = (unsigned char)(0xf0 | (c >> 18));
    out[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3f));
    out[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
    out[3] = (unsigned char)(0x80 | (c & 0x3f));
    return 4;
}

/*
 * Decodes the raw string bytes s[0..len) (checked by the parser) into out, which has room for
 * len bytes: no escape decodes to more bytes than it takes. Returns the bytes written.
 */
static size_t
fl_json_unescape(unsigned char *out, const unsigned char *s, size_t len)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    size_t n = 0;

    for (size_t k = 0; k < len;) {
        unsigned hi, lo;

        if (s[k] != '\\') {
            out[n++] = s[k++];
            continue;
        }
        if (s[k + 1] != 'u') {
            out[n++] = (unsigned char)to[strchr(from, s[k + 1]) - from];
            k += 2;
            continue;
        }
        fl_json_hex4(s + k + 2, &hi);
        k += 6;
        if (hi >= 0xd800 && hi <= 0xdbff) {
            fl_json_hex4(s + k + 2, &lo);
            k += 6;
            hi = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
        }
        n += fl_json_put_utf8(out + n, hi);
    }
    return n;
}

char *
fl_json_strdup(const struct fl_json *doc, uint32_t i, size_t *len)
{
    const struct fl_json_tok *t = fl_json_tok(doc, i);
    const unsigned char *s;
    unsigned char *out;
    size_t n;

    if (t == NULL || t->type != FL_JSON_STRING)
        return NULL;
    s = (const unsigned char *)doc->text + t->start;
    out = malloc((size_t)t->len + 1);
    if (out == NULL)
        return NULL;
    if (t->n == 0) {
        memcpy(out, s, t->len);
        n = t->len;
    } else {
        n = fl_json_unescape(out, s, t->len);
    }
    out[n] = '\0';
    if (len != NULL)
        *len = n;
    return (char *)out;
}

bool
fl_json_str_eq(const struct fl_json *doc, uint32_t i, const char *s, size_t len)
{
    const struct fl_json_tok *t = fl_json_tok(doc, i);
    bool eq;
    char *d;
    size_t n;

    if (t == NULL || t->type != FL_JSON_STRING)
        return false;
    if (t->n == 0)
        return t->len == len && memcmp(doc->text + t->start, s, len) == 0;
    if (len > t->len)
        return false;
    d = fl_json_strdup(doc, i, &n);
    eq = d != NULL && n == len && memcmp(d, s, len) == 0;
    free(d);
    return eq;
}

/* Parses -?(0|[1-9][0-9]*) exactly filling s[0..len) into an int64. */
static int
fl_json_int_text(const char *s, size_t len, int64_t *out)
{
    bool neg = len > 0 && s[0] == '-';
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    size_t k = neg ? 1 : 0;

    if (k == len || (s[k] == '0' && len - k > 1))
        return -1;
    for (; k < len; k++) {
        unsigned d;

        if (s[k] < '0' || s[k] > '9')
            return -1;
        d = (unsigned)(s[k] - '0');
        if (v > (limit - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

int
fl_json_int(const struct fl_json *doc, uint32_t i, int64_t *out)
{
    const struct fl_json_tok *t = fl_json_tok(doc, i);

    if (t == NULL || (t->type != FL_JSON_NUMBER && t->type != FL_JSON_STRING))
        return -1;
    if (t->type == FL_JSON_STRING && t->n != 0)
        return -1;
    return fl_json_int_text(doc->text + t->start, t->len, out);
}

int
fl_json_bool(const struct fl_json *doc, uint32_t i, bool *out)
{
    enum fl_json_type type = fl_json_type(doc, i);

    if (type != FL_JSON_TRUE && type != FL_JSON_FALSE)
        return -1;
    *out = type == FL_JSON_TRUE;
    return 0;
}
