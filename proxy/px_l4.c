/* proxy/px_l4.c -- what a connection says before its payload: a PROXY protocol header (read from
 * an L4 balancer, written to nodes), and the server name of a TLS ClientHello (read, not
 * terminated, by a tcp-mode listener keyed on sni). Pure functions over bytes: no I/O. */
#include "proxy/px.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* --- PROXY protocol (haproxy.org's proxy-protocol.txt, versions 1 and 2) --- */

static const unsigned char px_pp2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                             0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* "PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n": one address and one port of a v1 line. */
static int
px_pp1_addr(const char *s, size_t len, int family, struct sockaddr_storage *ss, const char *port,
            size_t port_len)
{
    char a[INET6_ADDRSTRLEN + 1];
    unsigned p = 0;

    if (len == 0 || len >= sizeof(a) || port_len == 0 || port_len > 5 ||
        (port_len > 1 && port[0] == '0'))
        return -1;
    for (size_t i = 0; i < port_len; i++) {
        if (port[i] < '0' || port[i] > '9')
            return -1;
        p = p * 10 + (unsigned)(port[i] - '0');
    }
    if (p > 65535)
        return -1;
    memcpy(a, s, len);
    a[len] = '\0';
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *in4 = (struct sockaddr_in *)(void *)ss;

        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)p);
        return inet_pton(AF_INET, a, &in4->sin_addr) == 1 ? 0 : -1;
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)ss;

    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)p);
    return inet_pton(AF_INET6, a, &in6->sin6_addr) == 1 ? 0 : -1;
}

static enum px_pp_rc
px_pp1_parse(const char *p, size_t n, struct px_pp *out)
{
    const char *end = memchr(p, '\n', XF_MIN(n, (size_t)PX_PP1_MAX));
    const char *f[6];
    size_t fl[6], nf = 0;
    const char *q;
    int family;

    if (end == NULL) {
        if (n >= PX_PP1_MAX) {
            out->why = "a PROXY v1 line longer than 107 bytes";
            return PX_PP_BAD;
        }
        return PX_PP_MORE;
    }
    if (end == p || end[-1] != '\r') {
        out->why = "a PROXY v1 line not ended by CRLF";
        return PX_PP_BAD;
    }
    out->len = (size_t)(end - p) + 1;
    /* Fields separated by single spaces, after "PROXY ", up to the CR. */
    q = p + 6;
    while (nf < 6) {
        const char *sp = memchr(q, ' ', (size_t)(end - 1 - q));
        const char *e = sp != NULL ? sp : end - 1;

        f[nf] = q;
        fl[nf++] = (size_t)(e - q);
        if (sp == NULL)
            break;
        q = sp + 1;
    }
    if (nf >= 1 && fl[0] == 7 && memcmp(f[0], "UNKNOWN", 7) == 0) {
        out->have_addr = false; /* anything may follow UNKNOWN: it is ignored */
        return PX_PP_DONE;
    }
    if (nf != 5 || fl[0] != 4 || fl[1] == 0 || fl[2] == 0 ||
        (memcmp(f[0], "TCP4", 4) != 0 && memcmp(f[0], "TCP6", 4) != 0)) {
        out->why = "a malformed PROXY v1 line (expected PROXY TCP4|TCP6|UNKNOWN SRC DST SPORT "
                   "DPORT)";
        return PX_PP_BAD;
    }
    family = f[0][3] == '4' ? AF_INET : AF_INET6;
    if (px_pp1_addr(f[1], fl[1], family, &out->src, f[3], fl[3]) == -1 ||
        px_pp1_addr(f[2], fl[2], family, &out->dst, f[4], fl[4]) == -1) {
        out->why = "a PROXY v1 line with an invalid address or port";
        return PX_PP_BAD;
    }
    out->have_addr = true;
    return PX_PP_DONE;
}

static enum px_pp_rc
px_pp2_parse(const unsigned char *p, size_t n, struct px_pp *out)
{
    size_t len;

    if (n < 16)
        return PX_PP_MORE;
    if ((p[12] & 0xf0u) != 0x20u || (p[12] & 0x0fu) > 1u) {
        out->why = "a PROXY v2 header with an unknown version or command";
        return PX_PP_BAD;
    }
    len = (size_t)p[14] << 8 | p[15];
    if (len > PX_PP2_MAX - 16) {
        out->why = "a PROXY v2 header longer than the limit";
        return PX_PP_BAD;
    }
    if (n < 16 + len)
        return PX_PP_MORE;
    out->len = 16 + len;
    out->have_addr = false;
    if ((p[12] & 0x0fu) == 0)
        return PX_PP_DONE; /* LOCAL: the balancer's own connection (a health check) */
    if (p[13] == 0x11) {   /* TCP over IPv4 */
        struct sockaddr_in *s = (struct sockaddr_in *)(void *)&out->src,
                           *d = (struct sockaddr_in *)(void *)&out->dst;

        if (len < 12)
            goto short_addr;
        memset(&out->src, 0, sizeof(out->src));
        memset(&out->dst, 0, sizeof(out->dst));
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, p + 16, 4);
        memcpy(&d->sin_addr, p + 20, 4);
        memcpy(&s->sin_port, p + 24, 2);
        memcpy(&d->sin_port, p + 26, 2);
        out->have_addr = true;
    } else if (p[13] == 0x21) { /* TCP over IPv6 */
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)(void *)&out->src,
                            *d = (struct sockaddr_in6 *)(void *)&out->dst;

        if (len < 36)
            goto short_addr;
        memset(&out->src, 0, sizeof(out->src));
        memset(&out->dst, 0, sizeof(out->dst));
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, p + 16, 16);
        memcpy(&d->sin6_addr, p + 32, 16);
        memcpy(&s->sin6_port, p + 48, 2);
        memcpy(&d->sin6_port, p + 50, 2);
        out->have_addr = true;
    }
    /* Any other family (UNSPEC, UDP, UNIX): the connection's own addresses stand. */
    return PX_PP_DONE;
short_addr:
    out->why = "a PROXY v2 header too short for its addresses";
    return PX_PP_BAD;
}

enum px_pp_rc
px_pp_parse(const void *buf, size_t n, struct px_pp *out)
{
    const unsigned char *p = buf;

    out->len = 0;
    out->have_addr = false;
    out->why = NULL;
    if (n == 0)
        return PX_PP_MORE;
    if (p[0] == 'P') {
        if (memcmp(p, "PROXY ", XF_MIN(n, (size_t)6)) != 0)
            goto not_proxy;
        return n < 6 ? PX_PP_MORE : px_pp1_parse(buf, n, out);
    }
    if (memcmp(p, px_pp2_sig, XF_MIN(n, sizeof(px_pp2_sig))) != 0)
        goto not_proxy;
    return px_pp2_parse(p, n, out);
not_proxy:
    out->why = "no PROXY protocol header where one was expected";
    return PX_PP_BAD;
}

/* The address and port of an AF_INET or AF_INET6 sockaddr, an IPv4-mapped IPv6 one as IPv4. */
static int
px_pp_norm(const struct sockaddr_storage *ss, int *family, unsigned char addr[16], uint16_t *port)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)(const void *)ss;

        *family = AF_INET;
        memcpy(addr, &in4->sin_addr, 4);
        *port = in4->sin_port;
        return 0;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)ss;

        *port = in6->sin6_port;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            *family = AF_INET;
            memcpy(addr, in6->sin6_addr.s6_addr + 12, 4);
        } else {
            *family = AF_INET6;
            memcpy(addr, &in6->sin6_addr, 16);
        }
        return 0;
    }
    return -1;
}

size_t
px_pp_build(int version, const struct sockaddr_storage *src, const struct sockaddr_storage *dst,
            char *buf, size_t cap)
{
    unsigned char sa[16], da[16];
    uint16_t sp, dp;
    int sf, df;
    bool known =
        px_pp_norm(src, &sf, sa, &sp) == 0 && px_pp_norm(dst, &df, da, &dp) == 0 && sf == df;

    if (version == 1) {
        char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
        int n;

        if (!known)
            n = snprintf(buf, cap, "PROXY UNKNOWN\r\n");
        else
            n = snprintf(buf, cap, "PROXY %s %s %s %u %u\r\n", sf == AF_INET ? "TCP4" : "TCP6",
                         inet_ntop(sf, sa, s, sizeof(s)), inet_ntop(df, da, d, sizeof(d)),
                         ntohs(sp), ntohs(dp));
        return n > 0 && (size_t)n < cap ? (size_t)n : 0;
    }
    size_t alen = !known ? 0 : sf == AF_INET ? 12 : 36, al = alen == 12 ? 4 : 16;
    unsigned char *p = (unsigned char *)buf;

    if (cap < 16 + alen)
        return 0;
    memcpy(p, px_pp2_sig, sizeof(px_pp2_sig));
    p[12] = 0x21; /* version 2, PROXY */
    p[13] = !known ? 0x00 : sf == AF_INET ? 0x11 : 0x21;
    p[14] = (unsigned char)(alen >> 8);
    p[15] = (unsigned char)alen;
    if (known) {
        memcpy(p + 16, sa, al);
        memcpy(p + 16 + al, da, al);
        memcpy(p + 16 + 2 * al, &sp, 2);
        memcpy(p + 18 + 2 * al, &dp, 2);
    }
    return 16 + alen;
}

/* --- the server name of a TLS ClientHello (RFC 8446 4.1.2, RFC 6066 3) --- */

/* Reads a big-endian integer of `size` bytes at *p (advanced), within end; -1 when short. */
static int
px_sni_get(const unsigned char **p, const unsigned char *end, size_t size, size_t *v)
{
    if ((size_t)(end - *p) < size)
        return -1;
    *v = 0;
    for (size_t i = 0; i < size; i++)
        *v = *v << 8 | (*p)[i];
    *p += size;
    return 0;
}

/* Skips a vector with a length prefix of `size` bytes; -1 when it runs past end. */
static int
px_sni_skip(const unsigned char **p, const unsigned char *end, size_t size)
{
    size_t len;

    if (px_sni_get(p, end, size, &len) == -1 || (size_t)(end - *p) < len)
        return -1;
    *p += len;
    return 0;
}

/* The server_name extension's first host_name, checked and lower-cased into out. */
static enum px_sni_rc
px_sni_name(const unsigned char *p, const unsigned char *end, struct px_sni *out)
{
    size_t list, type, len;

    if (px_sni_get(&p, end, 2, &list) == -1 || (size_t)(end - p) < list)
        goto bad;
    end = p + list;
    while (p < end) {
        if (px_sni_get(&p, end, 1, &type) == -1 || px_sni_get(&p, end, 2, &len) == -1 ||
            (size_t)(end - p) < len)
            goto bad;
        if (type != 0) {
            p += len;
            continue;
        }
        if (len > 0 && p[len - 1] == '.')
            len--; /* a fully qualified name's root: the same name */
        if (len == 0 || len > PX_SNI_MAX)
            goto bad;
        for (size_t i = 0; i < len; i++) {
            unsigned char ch = p[i];

            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_'))
                goto bad;
            out->name[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
        }
        out->name[len] = '\0';
        out->len = len;
        return PX_SNI_FOUND;
    }
    out->why = "a ClientHello without a host name in its server_name";
    return PX_SNI_NONE;
bad:
    out->why = "a ClientHello with a malformed server_name";
    return PX_SNI_NONE;
}

/* A complete ClientHello body (after its 4-byte handshake header). */
static enum px_sni_rc
px_sni_hello(const unsigned char *p, const unsigned char *end, struct px_sni *out)
{
    size_t exts, type, len;

    /* legacy_version, random, session id, cipher suites, compression methods */
    if ((size_t)(end - p) < 34)
        goto bad;
    p += 34;
    if (px_sni_skip(&p, end, 1) == -1 || px_sni_skip(&p, end, 2) == -1 ||
        px_sni_skip(&p, end, 1) == -1)
        goto bad;
    if (p == end) {
        out->why = "a ClientHello without extensions (no server name)";
        return PX_SNI_NONE;
    }
    if (px_sni_get(&p, end, 2, &exts) == -1 || (size_t)(end - p) < exts)
        goto bad;
    end = p + exts;
    while (p < end) {
        if (px_sni_get(&p, end, 2, &type) == -1 || px_sni_get(&p, end, 2, &len) == -1 ||
            (size_t)(end - p) < len)
            goto bad;
        if (type == 0)
            return px_sni_name(p, p + len, out);
        p += len;
    }
    out->why = "a ClientHello without a server_name extension";
    return PX_SNI_NONE;
bad:
    out->why = "a malformed ClientHello";
    return PX_SNI_NONE;
}

enum px_sni_rc
px_sni_parse(const void *buf, size_t n, struct px_sni *out)
{
    const unsigned char *p = buf, *end = p + n;
    unsigned char hs[PX_HELLO_MAX];
    size_t have = 0;

    out->len = 0;
    out->name[0] = '\0';
    out->why = NULL;
    /* The handshake message may span records: their payloads are put end to end. */
    while (p < end) {
        size_t rlen;

        if (p[0] != 0x16) {
            out->why = have == 0 ? "not TLS (no handshake record first)"
                                 : "a ClientHello cut by another record";
            return PX_SNI_NONE;
        }
        if ((size_t)(end - p) >= 2 && p[1] != 0x03) {
            out->why = "not TLS (no handshake record first)";
            return PX_SNI_NONE;
        }
        if ((size_t)(end - p) < 5)
            break; /* a record header not complete yet */
        rlen = (size_t)p[3] << 8 | p[4];
        if (rlen == 0 || rlen > 16384) {
            out->why = "a TLS record of an invalid length";
            return PX_SNI_NONE;
        }
        if ((size_t)(end - p) < 5 + rlen)
            break; /* a record not complete yet */
        if (have + rlen > sizeof(hs)) {
            out->why = "a ClientHello larger than the limit";
            return PX_SNI_NONE;
        }
        memcpy(hs + have, p + 5, rlen);
        have += rlen;
        p += 5 + rlen;
        if (have >= 4) {
            size_t mlen = (size_t)hs[1] << 16 | (size_t)hs[2] << 8 | hs[3];

            if (hs[0] != 0x01) {
                out->why = "not a ClientHello";
                return PX_SNI_NONE;
            }
            if (4 + mlen > sizeof(hs)) {
                out->why = "a ClientHello larger than the limit";
                return PX_SNI_NONE;
            }
            if (have >= 4 + mlen)
                return px_sni_hello(hs + 4, hs + 4 + mlen, out);
        }
    }
    if (n >= PX_HELLO_MAX) {
        out->why = "a ClientHello larger than the limit";
        return PX_SNI_NONE;
    }
    return PX_SNI_MORE;
}
