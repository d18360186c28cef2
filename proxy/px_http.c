/* proxy/px_http.c -- checks on raw header bytes and header semantics the parser does not enforce.
 */
#include "proxy/px.h"

#include <string.h>

/* RFC 9110 5.6.2 tchar. */
static bool
px_http_tchar(unsigned char c)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";

    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr(extra, c) != NULL;
}

bool
px_http_token_ok(const char *v, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!px_http_tchar((unsigned char)v[i]))
            return false;
    return true;
}

bool
px_http_value_ok(const char *v, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

bool
px_http_is_fold(const char *at)
{
    const char *q = at - 1;

    while (*q == ' ' || *q == '\t')
        q--;
    return *q == '\n' || *q == '\r';
}

bool
px_http_host_ok(const char *v, size_t len)
{
    size_t i = 0, host_end;

    if (len == 0)
        return false;
    if (v[0] == '[') {
        /* IP-literal: hex digits, colons and dots (IPv4-mapped tails) up to ']'. */
        for (i = 1; i < len && v[i] != ']'; i++) {
            unsigned char c = (unsigned char)v[i];
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                  c == ':' || c == '.'))
                return false;
        }
        if (i >= len || i == 1)
            return false;
        host_end = i + 1;
    } else {
        /* reg-name: unreserved / pct-encoded / sub-delims, no '@', '/', '?', '#' or space. */
        for (i = 0; i < len && v[i] != ':'; i++) {
            unsigned char c = (unsigned char)v[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr("-._~%!$&'()*+,;=", c) != NULL) ||
                c == '\0')
                return false;
        }
        if (i == 0)
            return false;
        host_end = i;
    }
    if (host_end == len)
        return true;
    if (v[host_end] != ':')
        return false;
    /* An empty port is allowed by RFC 3986; digits only otherwise, at most 5. */
    if (len - host_end - 1 > 5)
        return false;
    for (i = host_end + 1; i < len; i++)
        if (v[i] < '0' || v[i] > '9')
            return false;
    return true;
}

bool
px_http_is_hop(const char *name, size_t len)
{
    static const char *const hop[] = {
        "connection", "keep-alive", "proxy-connection",  "te",
        "trailer",    "upgrade",    "transfer-encoding", "content-length"};

    for (size_t i = 0; i < XF_ARRAY_LEN(hop); i++)
        if (xf_span_ieq(name, len, hop[i]))
            return true;
    return false;
}

bool
px_http_list_each(const char *v, size_t len, bool (*fn)(void *arg, const char *tok, size_t n),
                  void *arg)
{
    size_t i = 0;

    while (i < len) {
        size_t s, e;
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        s = i;
        while (i < len && v[i] != ',')
            i++;
        e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e > s && fn(arg, v + s, e - s))
            return true;
    }
    return false;
}

struct px_http_token {
    const char *p;
    size_t n;
};

/* px_http_list_each: whether an element is the token (ignoring case). */
static bool
px_http_token_is(void *arg, const char *tok, size_t n)
{
    const struct px_http_token *t = arg;

    return n == t->n && strncasecmp(tok, t->p, n) == 0;
}

bool
px_http_list_has_n(const char *v, size_t len, const char *token, size_t tlen)
{
    struct px_http_token t = {token, tlen};

    return tlen > 0 && px_http_list_each(v, len, px_http_token_is, &t);
}

bool
px_http_list_has(const char *v, size_t len, const char *token)
{
    return px_http_list_has_n(v, len, token, strlen(token));
}

bool
px_http_conn_names(const struct xf_hdr *const conn_hdrs[], size_t n_conn, const char *name,
                   size_t len)
{
    for (size_t i = 0; i < n_conn; i++)
        if (px_http_list_has_n(conn_hdrs[i]->value, conn_hdrs[i]->value_len, name, len))
            return true;
    return false;
}

enum px_te
px_http_te_classify(const struct xf_hdr *te[], size_t n)
{
    size_t codings = 0, chunked_at = 0, n_chunked = 0;

    for (size_t h = 0; h < n; h++) {
        const char *v = te[h]->value;
        size_t len = te[h]->value_len, i = 0;

        while (i < len) {
            size_t s, e;
            while (i < len && (v[i] == ' ' || v[i] == '\t'))
                i++;
            s = i;
            while (i < len && v[i] != ',')
                i++;
            e = i;
            while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
                e--;
            if (e == s)
                return PX_TE_BAD; /* empty element: "chunked," or ", chunked" */
            /* A coding may carry parameters (";q=..."): the name is what counts. */
            size_t name_end = s;
            while (name_end < e && v[name_end] != ';' && v[name_end] != ' ')
                name_end++;
            if (!px_http_token_ok(v + s, name_end - s))
                return PX_TE_BAD;
            codings++;
            if (xf_span_ieq(v + s, name_end - s, "chunked")) {
                /* chunked defines no parameter (RFC 9112 7), and llhttp does not take
                 * "chunked;x=1" for chunked: refused, so the two can never frame one message
                 * differently. */
                if (name_end != e)
                    return PX_TE_BAD;
                n_chunked++;
                chunked_at = codings;
            }
            if (i < len)
                i++; /* the comma */
            if (i == len && v[len - 1] == ',')
                return PX_TE_BAD;
        }
    }
    if (codings == 0)
        return n == 0 ? PX_TE_NONE : PX_TE_BAD;
    if (n_chunked != 1 || chunked_at != codings)
        return PX_TE_BAD;
    return codings == 1 ? PX_TE_CHUNKED : PX_TE_UNKNOWN;
}

int
px_http_cl_parse(const struct xf_hdr *cl[], size_t n, uint64_t *out)
{
    bool have = false;
    uint64_t first = 0;

    for (size_t h = 0; h < n; h++) {
        const char *v = cl[h]->value;
        size_t len = cl[h]->value_len, i = 0;

        /* RFC 9110 8.6 lets a list of identical values through ("5, 5"). */
        while (i <= len) {
            uint64_t val = 0;
            size_t digits = 0;
            while (i < len && (v[i] == ' ' || v[i] == '\t'))
                i++;
            while (i < len && v[i] >= '0' && v[i] <= '9') {
                if (val > (UINT64_MAX - 9) / 10)
                    return -1;
                val = val * 10 + (uint64_t)(v[i] - '0');
                digits++;
                i++;
            }
            while (i < len && (v[i] == ' ' || v[i] == '\t'))
                i++;
            if (digits == 0 || digits > 19)
                return -1;
            if (have && val != first)
                return -1;
            have = true;
            first = val;
            if (i == len)
                break;
            if (v[i] != ',')
                return -1;
            i++;
        }
    }
    if (!have)
        return -1;
    *out = first;
    return 0;
}

const char *
px_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 423:
        return "Locked";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

int
px_hdr_open(struct xf_hdr *tab, size_t cap, size_t n, const char *at, size_t len)
{
    struct xf_hdr *hd;

    if (n >= cap)
        return -1;
    hd = &tab[n];
    hd->name = at;
    hd->name_len = (uint32_t)len;
    hd->value = at + len;
    hd->value_len = 0;
    return 0;
}
