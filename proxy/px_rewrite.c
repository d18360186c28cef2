/* proxy/px_rewrite.c -- the heads the proxy forwards: checked, then written with its own framing.
 */
#include "proxy/px.h"

#include <string.h>
#include <strings.h>

/* Appends a NUL-terminated string. */
static int
px_add(struct px_buf *b, const char *s)
{
    return px_buf_append(b, s, strlen(s));
}

/* Appends a number in decimal (no printf on the hot path). */
static int
px_add_u64(struct px_buf *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return px_buf_append(b, tmp + i, sizeof(tmp) - i);
}

/* Appends "Name: value\r\n". */
static int
px_add_field(struct px_buf *b, const char *name, size_t name_len, const char *value,
             size_t value_len)
{
    char *dst = px_buf_reserve(b, name_len + value_len + 4);

    if (dst == NULL)
        return -1;
    memcpy(dst, name, name_len);
    dst += name_len;
    *dst++ = ':';
    *dst++ = ' ';
    memcpy(dst, value, value_len);
    dst += value_len;
    *dst++ = '\r';
    *dst++ = '\n';
    b->end += name_len + value_len + 4u;
    return 0;
}

/* Appends "Content-Length: N\r\n". */
static int
px_add_length(struct px_buf *b, uint64_t len)
{
    px_buf_append(b, "Content-Length: ", 16);
    px_add_u64(b, len);
    return px_buf_append(b, "\r\n", 2);
}

/* Appends "HTTP/1.1 CODE REASON\r\n". */
static int
px_add_status_line(struct px_buf *b, int status, const char *reason, size_t reason_len)
{
    char code[4] = {(char)('0' + status / 100), (char)('0' + status / 10 % 10),
                    (char)('0' + status % 10), ' '};

    px_buf_append(b, "HTTP/1.1 ", 9);
    px_buf_append(b, code, 4);
    px_buf_append(b, reason, reason_len);
    return px_buf_append(b, "\r\n", 2);
}

/* Headers the request forwarding looks at, gathered in one pass over the table. */
struct px_req_view {
    const struct xf_hdr *host[2];
    const struct xf_hdr *conn[16];
    const struct xf_hdr *te[8];
    const struct xf_hdr *cl[8];
    const struct xf_hdr *upgrade[4];
    size_t n_host, n_conn, n_te, n_cl, n_upgrade;
    bool expect_100;
};

static void
px_req_view_build(const struct xf_hdr *hdrs, size_t n, struct px_req_view *v)
{
    memset(v, 0, sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        const struct xf_hdr *h = &hdrs[i];
        const char *nm = h->name;
        size_t len = h->name_len;

#define PX_COLLECT(arr, cnt)                                                                       \
    do {                                                                                           \
        if (v->cnt < XF_ARRAY_LEN(v->arr))                                                         \
            v->arr[v->cnt] = h;                                                                    \
        v->cnt++;                                                                                  \
    } while (0)
        if (xf_span_ieq(nm, len, "host"))
            PX_COLLECT(host, n_host);
        else if (xf_span_ieq(nm, len, "connection"))
            PX_COLLECT(conn, n_conn);
        else if (xf_span_ieq(nm, len, "transfer-encoding"))
            PX_COLLECT(te, n_te);
        else if (xf_span_ieq(nm, len, "content-length"))
            PX_COLLECT(cl, n_cl);
        else if (xf_span_ieq(nm, len, "expect"))
            v->expect_100 = px_http_list_has(h->value, h->value_len, "100-continue");
        else if (xf_span_ieq(nm, len, "upgrade"))
            PX_COLLECT(upgrade, n_upgrade);
#undef PX_COLLECT
    }
}

/* Whether a header is dropped when forwarding: hop-by-hop, ours to set, or named by Connection. */
static bool
px_req_drop(const struct xf_hdr *h, const struct px_req_view *v, bool http10)
{
    const char *nm = h->name;
    size_t len = h->name_len;

    if (px_http_is_hop(nm, len) || xf_span_ieq(nm, len, "x-forwarded-for") ||
        xf_span_ieq(nm, len, "x-forwarded-proto") || xf_span_ieq(nm, len, "x-forwarded-host") ||
        xf_span_ieq(nm, len, "host"))
        return true;
    if (http10 && xf_span_ieq(nm, len, "expect"))
        return true; /* RFC 9110 10.1.1: a 1.0 request's 100-continue is ignored */
    return v->n_conn > 0 &&
           px_http_conn_names(v->conn, XF_MIN(v->n_conn, XF_ARRAY_LEN(v->conn)), nm, len);
}

/* Splits an absolute-form target into authority and path; returns -1 when it is not one. */
static int
px_req_absolute(const char *url, size_t len, const char **auth, size_t *auth_len, const char **path,
                size_t *path_len)
{
    size_t skip;

    if (len > 7 && strncasecmp(url, "http://", 7) == 0)
        skip = 7;
    else if (len > 8 && strncasecmp(url, "https://", 8) == 0)
        skip = 8;
    else
        return -1;
    *auth = url + skip;
    *path = memchr(*auth, '/', len - skip);
    if (*path == NULL) {
        *auth_len = len - skip;
        *path = "/";
        *path_len = 1;
    } else {
        *auth_len = (size_t)(*path - *auth);
        *path_len = (size_t)(url + len - *path);
    }
    return 0;
}

/* Calls fn(arg, token, len) on each protocol of the Upgrade fields hdrs[0..n) (RFC 9110 7.8)
 * until fn returns true; returns whether one did. */
static bool
px_upgrade_each(const struct xf_hdr *const hdrs[], size_t n,
                bool (*fn)(void *arg, const char *tok, size_t len), void *arg)
{
    for (size_t k = 0; k < n; k++)
        if (px_http_list_each(hdrs[k]->value, hdrs[k]->value_len, fn, arg))
            return true;
    return false;
}

/* px_upgrade_each: appends a protocol other than h2c to the offer (res->upgrade), comma-joined;
 * true (stop) when it does not fit. */
static bool
px_upgrade_offer_add(void *arg, const char *tok, size_t len)
{
    struct px_req_out *res = arg;
    size_t sep = res->upgrade_len > 0 ? 2 : 0;

    /* h2c would turn the connection into HTTP/2 in clear text, which crossfade does not relay
     * as HTTP: it is taken out of the offer, never tunnelled (RFC 9113 dropped it too). */
    if (len == 3 && strncasecmp(tok, "h2c", 3) == 0)
        return false;
    if (res->upgrade_len + sep + len >= sizeof(res->upgrade))
        return true;
    memcpy(res->upgrade + res->upgrade_len, ", ", sep);
    memcpy(res->upgrade + res->upgrade_len + sep, tok, len);
    res->upgrade_len += sep + len;
    res->upgrade[res->upgrade_len] = '\0';
    return false;
}

int
px_rewrite_request(const struct px_req_in *in, struct px_buf *out, struct px_req_out *res,
                   const char **why)
{
    const struct xf_hdr *hdrs = in->hdrs;
    struct px_req_view v;
    const char *target = in->url, *host = NULL;
    size_t target_len = in->url_len, host_len = 0;
    const char *auth, *path;
    size_t auth_len, path_len;
    uint64_t cl = 0;
    enum px_te te;
    bool http10 = in->minor == 0;

    memset(res, 0, sizeof(*res));
    px_req_view_build(hdrs, in->n_hdrs, &v);
    if (in->method == HTTP_CONNECT)
        return *why = "CONNECT is not supported", 501;
    if (in->url_len == 0)
        return *why = "empty request target", 400;
    /* No form of request-target has a fragment (RFC 9112 3.2): nodes would disagree on where
     * the path ends, so it is refused rather than forwarded or cut. */
    if (memchr(in->url, '#', in->url_len) != NULL)
        return *why = "fragment in the request target", 400;
    for (size_t i = 0; i < in->n_hdrs; i++)
        if (!px_http_token_ok(hdrs[i].name, hdrs[i].name_len))
            return *why = "invalid header name", 400;
    if (v.n_host > 1)
        return *why = "more than one Host header", 400;
    if (v.n_host == 1) {
        host = v.host[0]->value;
        host_len = v.host[0]->value_len;
        if (!px_http_host_ok(host, host_len))
            return *why = "invalid Host header", 400;
    } else if (!http10) {
        return *why = "HTTP/1.1 request without Host", 400;
    }
    if (target[0] == '/') {
        /* origin-form */
    } else if (px_req_absolute(target, target_len, &auth, &auth_len, &path, &path_len) == 0) {
        if (!px_http_host_ok(auth, auth_len))
            return *why = "invalid authority in the request target", 400;
        host = auth; /* RFC 9112 3.2.2: the target's authority replaces Host */
        host_len = auth_len;
        target = path;
        target_len = path_len;
    } else if (!(target_len == 1 && target[0] == '*' && in->method == HTTP_OPTIONS)) {
        return *why = "invalid request target", 400;
    }
    te = px_http_te_classify(v.te, XF_MIN(v.n_te, XF_ARRAY_LEN(v.te)));
    if (v.n_te > XF_ARRAY_LEN(v.te) || v.n_cl > XF_ARRAY_LEN(v.cl))
        return *why = "too many framing headers", 400;
    if (v.n_conn > XF_ARRAY_LEN(v.conn))
        return *why = "too many Connection header fields", 400;
    if (te != PX_TE_NONE && http10)
        return *why = "Transfer-Encoding in an HTTP/1.0 request", 400;
    if (te != PX_TE_NONE && v.n_cl > 0)
        return *why = "both Content-Length and Transfer-Encoding", 400;
    if (te == PX_TE_BAD)
        return *why = "invalid Transfer-Encoding (the last coding must be chunked)", 400;
    if (te == PX_TE_UNKNOWN)
        return *why = "unsupported transfer coding", 501;
    /* llhttp frames the body; where it does not read chunked ("chunked<HTAB>" in llhttp 8.1),
     * forwarding the message as chunked would give the node another body than ours. */
    if (te == PX_TE_CHUNKED && in->parser_te_other)
        return *why = "invalid Transfer-Encoding (whitespace the parser does not take)", 400;
    if (v.n_cl > 0 && px_http_cl_parse(v.cl, v.n_cl, &cl) == -1)
        return *why = "invalid or conflicting Content-Length", 400;
    if (in->max_body > 0 && cl > in->max_body)
        return *why = "request body larger than the limit", 413;
    res->chunked = te == PX_TE_CHUNKED;
    res->has_length = v.n_cl > 0;
    res->content_length = cl;
    res->expect_100 = v.expect_100 && !http10;

    /* The request line: always HTTP/1.1 towards the node, so the connection can be kept. */
    if (px_add(out, llhttp_method_name((llhttp_method_t)in->method)) == -1 ||
        px_buf_append(out, " ", 1) == -1 || px_buf_append(out, target, target_len) == -1 ||
        px_buf_append(out, " HTTP/1.1\r\n", 11) == -1)
        goto oom;
    if (host != NULL)
        px_add_field(out, "Host", 4, host, host_len);
    else
        px_add_field(out, "Host", 4, in->fallback_host, strlen(in->fallback_host));
    for (size_t i = 0; i < in->n_hdrs; i++) {
        const struct xf_hdr *hd = &hdrs[i];
        if (px_req_drop(hd, &v, http10))
            continue;
        if (px_add_field(out, hd->name, hd->name_len, hd->value, hd->value_len) == -1)
            goto oom;
    }
    /* Every X-Forwarded-For line, in order, joined, then the client: a gateway that trusts the
     * right-most hop must find the real client there however many lines came (the head limit
     * bounds them). Empty ones add nothing. */
    px_buf_append(out, "X-Forwarded-For: ", 17);
    for (size_t i = 0; i < in->n_hdrs; i++) {
        const struct xf_hdr *hd = &hdrs[i];

        if (hd->value_len == 0 || !xf_span_ieq(hd->name, hd->name_len, "x-forwarded-for"))
            continue;
        px_buf_append(out, hd->value, hd->value_len);
        px_buf_append(out, ", ", 2);
    }
    px_add(out, in->client_ip);
    px_buf_append(out, "\r\n", 2);
    px_add_field(out, "X-Forwarded-Proto", 17, in->proto, strlen(in->proto));
    if (host != NULL)
        px_add_field(out, "X-Forwarded-Host", 16, host, host_len);
    /* A client that says it is done is done with the node connection too (it is not reused). */
    for (size_t i = 0; i < XF_MIN(v.n_conn, XF_ARRAY_LEN(v.conn)); i++)
        if (px_http_list_has(v.conn[i]->value, v.conn[i]->value_len, "close"))
            res->close = true;
    /* An upgrade (WebSocket): from an HTTP/1.1 request without a body whose Connection names
     * it; the node's 101 then turns the connection into a tunnel (px_tunnel.c). Otherwise the
     * Upgrade fields are dropped as hop-by-hop and the request is plain HTTP. */
    if (v.n_upgrade > 0 && v.n_upgrade <= XF_ARRAY_LEN(v.upgrade) && !http10 && te == PX_TE_NONE &&
        cl == 0 && in->method != HTTP_HEAD &&
        px_http_conn_names(v.conn, XF_MIN(v.n_conn, XF_ARRAY_LEN(v.conn)), "upgrade", 7) &&
        (px_upgrade_each(v.upgrade, v.n_upgrade, px_upgrade_offer_add, res) ||
         res->upgrade_len == 0))
        res->upgrade_len = 0; /* nothing left to offer (h2c only), or too long an offer */
    if (res->close && res->upgrade_len > 0)
        px_buf_append(out, "Connection: close, upgrade\r\n", 28);
    else if (res->close)
        px_buf_append(out, "Connection: close\r\n", 19);
    else if (res->upgrade_len > 0)
        px_buf_append(out, "Connection: upgrade\r\n", 21);
    if (res->upgrade_len > 0)
        px_add_field(out, "Upgrade", 7, res->upgrade, res->upgrade_len);
    if (res->chunked)
        px_buf_append(out, "Transfer-Encoding: chunked\r\n", 28);
    else if (v.n_cl > 0)
        px_add_length(out, cl);
    if (px_buf_append(out, "\r\n", 2) == -1)
        goto oom;
    return 0;
oom:
    return *why = "out of memory", 500;
}

/* Writes the header fields the client may see: no hop-by-hop, no framing, none Connection names. */
static int
px_resp_copy_headers(struct px_buf *out, const struct xf_hdr *hdrs, size_t n,
                     const struct xf_hdr *const conn[], size_t n_conn)
{
    for (size_t i = 0; i < n; i++) {
        const struct xf_hdr *hd = &hdrs[i];
        if (px_http_is_hop(hd->name, hd->name_len) ||
            (n_conn > 0 && px_http_conn_names(conn, n_conn, hd->name, hd->name_len)))
            continue;
        if (px_add_field(out, hd->name, hd->name_len, hd->value, hd->value_len) == -1)
            return -1;
    }
    return 0;
}

/* px_upgrade_each: true (stop) when a protocol of the 101 is not in the client's offer (arg). */
static bool
px_upgrade_not_offered(void *arg, const char *tok, size_t len)
{
    return !px_http_list_has_n(arg, strlen(arg), tok, len);
}

/* px_upgrade_each: stops at the first protocol. */
static bool
px_upgrade_any(void *arg, const char *tok, size_t len)
{
    XF_UNUSED(arg);
    XF_UNUSED(tok);
    XF_UNUSED(len);
    return true;
}

/* The headers crossfade adds to a node's response: split.expose and fleet.epoch_header. */
static void
px_resp_add_own(const struct px_resp_in *in, struct px_buf *out)
{
    if (in->expose_name != NULL)
        px_add_field(out, in->expose_name, strlen(in->expose_name), in->expose_value,
                     strlen(in->expose_value));
    if (in->epoch_name != NULL)
        px_add_field(out, in->epoch_name, strlen(in->epoch_name), in->epoch_value,
                     strlen(in->epoch_value));
}

/*
 * A 101 (Switching Protocols): only for a request that offered an upgrade, and only to protocols
 * it offered (RFC 9110 15.2.2, 7.8); the client gets the head with Connection and Upgrade of the
 * proxy's own, and the connection becomes a tunnel.
 */
static int
px_rewrite_switch(const struct px_resp_in *in, struct px_buf *out, struct px_resp_out *res,
                  const char **why, const struct xf_hdr *const conn[], size_t n_conn,
                  const struct xf_hdr *const up[], size_t n_up)
{
    if (in->upgrade_offer == NULL)
        return *why = "the node switched protocols without being asked", -1;
    if (n_up == 0)
        return *why = "the node switched protocols without naming one (no Upgrade)", -1;
    if (px_upgrade_each(up, n_up, px_upgrade_not_offered, (void *)in->upgrade_offer))
        return *why = "the node switched to a protocol the client did not offer", -1;
    if (!px_upgrade_each(up, n_up, px_upgrade_any, NULL))
        return *why = "the node switched protocols without naming one (an empty Upgrade)", -1;
    px_add_status_line(out, 101, in->reason, in->reason_len);
    if (px_resp_copy_headers(out, in->hdrs, in->n_hdrs, conn, n_conn) == -1)
        return *why = "out of memory", -1;
    px_resp_add_own(in, out);
    px_buf_append(out, "Connection: upgrade\r\nUpgrade: ", 30);
    for (size_t i = 0; i < n_up; i++) {
        if (i > 0)
            px_buf_append(out, ", ", 2);
        px_buf_append(out, up[i]->value, up[i]->value_len);
    }
    if (px_buf_append(out, "\r\n\r\n", 4) == -1)
        return *why = "out of memory", -1;
    res->upgrade = true;
    res->no_body = true;
    for (size_t i = 0; i < n_up; i++)
        if (px_http_list_has(up[i]->value, up[i]->value_len, "websocket"))
            res->websocket = true;
    return 0;
}

int
px_rewrite_response(const struct px_resp_in *in, struct px_buf *out, struct px_resp_out *res,
                    const char **why)
{
    const struct xf_hdr *hdrs = in->hdrs;
    const struct xf_hdr *conn[16], *te[8], *cl[8], *up[4];
    size_t n_conn = 0, n_te = 0, n_cl = 0, n_up = 0;
    int status = in->status;
    uint64_t len = 0;
    enum px_te tek;

    memset(res, 0, sizeof(*res));
    if (in->http_major != 1)
        return *why = "the response is not HTTP/1.x", -1;
    if (status < 100 || status > 599)
        return *why = "invalid response status", -1;
    for (size_t i = 0; i < in->n_hdrs; i++) {
        const struct xf_hdr *hd = &hdrs[i];
        if (!px_http_token_ok(hd->name, hd->name_len))
            return *why = "invalid header name in the response", -1;
        if (xf_span_ieq(hd->name, hd->name_len, "connection")) {
            if (n_conn == XF_ARRAY_LEN(conn))
                return *why = "too many Connection fields in the response", -1;
            conn[n_conn++] = hd;
        } else if (xf_span_ieq(hd->name, hd->name_len, "transfer-encoding")) {
            if (n_te == XF_ARRAY_LEN(te))
                return *why = "too many Transfer-Encoding fields", -1;
            te[n_te++] = hd;
        } else if (xf_span_ieq(hd->name, hd->name_len, "content-length")) {
            if (n_cl == XF_ARRAY_LEN(cl))
                return *why = "too many Content-Length fields", -1;
            cl[n_cl++] = hd;
        } else if (xf_span_ieq(hd->name, hd->name_len, "upgrade")) {
            if (n_up == XF_ARRAY_LEN(up))
                return *why = "too many Upgrade fields in the response", -1;
            up[n_up++] = hd;
        }
    }
    if (status == 101)
        return px_rewrite_switch(in, out, res, why, conn, n_conn, up, n_up);
    if (status < 200) {
        /* Interim: forwarded to HTTP/1.1 clients only, then the final response follows. */
        res->interim = true;
        res->no_body = true;
        if (in->client_minor >= 1) {
            px_add_status_line(out, status, in->reason, in->reason_len);
            if (px_resp_copy_headers(out, hdrs, in->n_hdrs, conn, n_conn) == -1 ||
                px_buf_append(out, "\r\n", 2) == -1)
                return *why = "out of memory", -1;
        }
        return 0;
    }
    tek = px_http_te_classify(te, n_te);
    if (tek != PX_TE_NONE && tek != PX_TE_CHUNKED)
        return *why = "invalid Transfer-Encoding in the response", -1;
    /* As for requests: llhttp would read the body until close and hand the client the raw
     * chunk framing as its content. */
    if (tek == PX_TE_CHUNKED && in->parser_te_other)
        return *why = "invalid Transfer-Encoding in the response", -1;
    if (tek != PX_TE_NONE && n_cl > 0)
        return *why = "both Content-Length and Transfer-Encoding in the response", -1;
    if (n_cl > 0 && px_http_cl_parse(cl, n_cl, &len) == -1)
        return *why = "invalid Content-Length in the response", -1;

    res->no_body = in->req_method == HTTP_HEAD || status == 204 || status == 304;
    /* Framing where none may be: bytes may follow that are not a response; don't reuse. */
    res->suspect = (status == 204 && (n_cl > 0 || n_te > 0)) || (status == 304 && n_te > 0);
    /*
     * A node that wrongly sends a body after a HEAD response would have those bytes read as the
     * answer to the next request on the connection: after HEAD, the connection is not reused.
     */
    if (in->req_method == HTTP_HEAD)
        res->suspect = true;
    res->ka = in->client_ka;
    px_add_status_line(out, status, in->reason, in->reason_len);
    if (px_resp_copy_headers(out, hdrs, in->n_hdrs, conn, n_conn) == -1)
        return *why = "out of memory", -1;
    px_resp_add_own(in, out);
    if (res->no_body) {
        /* Metadata of the representation is kept where it is allowed (RFC 9110 8.6, 6.4.1). */
        if (n_cl > 0 && status != 204)
            px_add_length(out, len);
        else if (tek == PX_TE_CHUNKED && in->req_method == HTTP_HEAD && in->client_minor >= 1)
            px_buf_append(out, "Transfer-Encoding: chunked\r\n", 28);
    } else if (n_cl > 0) {
        px_add_length(out, len);
    } else if (in->client_minor >= 1) {
        /* Chunked, or delimited by close: chunked towards an HTTP/1.1 client keeps it open. */
        px_buf_append(out, "Transfer-Encoding: chunked\r\n", 28);
        res->chunked_out = true;
    } else {
        res->close_out = true;
        res->ka = false;
    }
    if (!res->ka)
        px_buf_append(out, "Connection: close\r\n", 19);
    else if (in->client_minor == 0)
        px_buf_append(out, "Connection: keep-alive\r\n", 24);
    if (px_buf_append(out, "\r\n", 2) == -1)
        return *why = "out of memory", -1;
    return 0;
}
