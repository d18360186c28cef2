/* tests/unit/test_px_l4.c -- what a connection says before its payload: PROXY protocol v1 and v2
 * headers read and written, and the server name of real TLS ClientHellos made by OpenSSL. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "proxy/px.h"

/* --- helpers --- */

static const unsigned char sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                      0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* The text of an AF_INET or AF_INET6 sockaddr's address, written in buf. */
static const char *
addr_of(const struct sockaddr_storage *ss, char buf[INET6_ADDRSTRLEN])
{
    const void *a = ss->ss_family == AF_INET
                        ? (const void *)&((const struct sockaddr_in *)(const void *)ss)->sin_addr
                        : (const void *)&((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr;

    cr_assert(ne(ptr, (void *)inet_ntop(ss->ss_family, a, buf, INET6_ADDRSTRLEN), NULL));
    return buf;
}

static unsigned
port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)(const void *)ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)(const void *)ss)->sin6_port);
}

/* Asserts that out holds family, src:sport and dst:dport. */
static void
assert_addrs(const struct px_pp *out, int family, const char *src, unsigned sport, const char *dst,
             unsigned dport)
{
    char b[INET6_ADDRSTRLEN];

    cr_assert(out->have_addr);
    cr_assert(eq(int, out->src.ss_family, family));
    cr_assert(eq(int, out->dst.ss_family, family));
    cr_assert(eq(str, (char *)addr_of(&out->src, b), (char *)src));
    cr_assert(eq(str, (char *)addr_of(&out->dst, b), (char *)dst));
    cr_assert(eq(uint, port_of(&out->src), sport));
    cr_assert(eq(uint, port_of(&out->dst), dport));
}

static struct sockaddr_storage
sa(const char *addr, unsigned port)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(addr, ':') == NULL) {
        struct sockaddr_in *in4 = (struct sockaddr_in *)(void *)&ss;

        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        cr_assert(eq(int, inet_pton(AF_INET, addr, &in4->sin_addr), 1), "%s", addr);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)&ss;

        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        cr_assert(eq(int, inet_pton(AF_INET6, addr, &in6->sin6_addr), 1), "%s", addr);
    }
    return ss;
}

/* Asserts that every proper prefix of buf (1 to n - 1 bytes) asks for more. */
static void
assert_pp_prefixes_more(const void *buf, size_t n)
{
    struct px_pp out;

    for (size_t i = 1; i < n; i++)
        cr_assert(eq(int, px_pp_parse(buf, i, &out), PX_PP_MORE), "prefix of %zu/%zu bytes: %s", i,
                  n, out.why ? out.why : "");
}

static void
assert_pp_bad(const void *buf, size_t n, const char *what)
{
    struct px_pp out;

    cr_assert(eq(int, px_pp_parse(buf, n, &out), PX_PP_BAD), "%s", what);
    cr_assert(ne(ptr, (void *)out.why, NULL), "%s", what);
}

static void
assert_pp1_bad(const char *line)
{
    assert_pp_bad(line, strlen(line), line);
}

/* A v2 header: signature, version/command, family, then len bytes of body. */
static size_t
pp2(unsigned char *out, unsigned char ver_cmd, unsigned char fam, const void *body, size_t len)
{
    memcpy(out, sig, sizeof(sig));
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (unsigned char)(len >> 8);
    out[15] = (unsigned char)len;
    if (len > 0)
        memcpy(out + 16, body, len);
    return 16 + len;
}

/* 192.0.2.1:56324 -> 198.51.100.7:443 */
static const unsigned char v4_body[12] = {192, 0, 2, 1, 198, 51, 100, 7, 0xdc, 0x04, 0x01, 0xbb};
/* [2001:db8::1]:1 -> [2001:db8::2]:65535 */
static const unsigned char v6_body[36] = {
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x20, 0x01,
    0x0d, 0xb8, 0,    0,    0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1, 0xff, 0xff};

/* --- PROXY v1 --- */

Test(pp, reads_a_tcp4_line_and_counts_only_its_bytes)
{
    const char line[] = "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n";
    const char buf[] = "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\nGET / HTTP/1.1\r\n\r\n";
    struct px_pp out;

    cr_assert(eq(int, px_pp_parse(buf, sizeof(buf) - 1, &out), PX_PP_DONE), "%s", out.why);
    cr_assert(eq(sz, out.len, sizeof(line) - 1));
    assert_addrs(&out, AF_INET, "192.0.2.1", 56324, "198.51.100.7", 443);
    /* exactly the line, nothing after it */
    cr_assert(eq(int, px_pp_parse(line, sizeof(line) - 1, &out), PX_PP_DONE));
    cr_assert(eq(sz, out.len, sizeof(line) - 1));
}

Test(pp, reads_a_tcp6_line)
{
    const char line[] = "PROXY TCP6 2001:db8::1 ::ffff:10.0.0.2 0 65535\r\n";
    const char buf[] = "PROXY TCP6 2001:db8::1 ::ffff:10.0.0.2 0 65535\r\n\x16\x03\x01";
    struct px_pp out;

    cr_assert(eq(int, px_pp_parse(buf, sizeof(buf) - 1, &out), PX_PP_DONE), "%s", out.why);
    cr_assert(eq(sz, out.len, sizeof(line) - 1));
    assert_addrs(&out, AF_INET6, "2001:db8::1", 0, "::ffff:10.0.0.2", 65535);
}

Test(pp, accepts_unknown_without_addresses)
{
    const char *lines[] = {
        "PROXY UNKNOWN\r\n",
        /* the spec's worst case: 107 bytes, what follows UNKNOWN is ignored */
        "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:"
        "ffff 65535 65535\r\n",
    };
    struct px_pp out;

    cr_assert(eq(sz, strlen(lines[1]), (size_t)PX_PP1_MAX));
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        char buf[256];
        size_t n = strlen(lines[i]);

        memcpy(buf, lines[i], n);
        memcpy(buf + n, "payload", 7);
        cr_assert(eq(int, px_pp_parse(buf, n + 7, &out), PX_PP_DONE), "%s", lines[i]);
        cr_assert(eq(sz, out.len, n));
        cr_assert_not(out.have_addr);
        assert_pp_prefixes_more(lines[i], n);
    }
}

Test(pp, asks_for_more_for_every_prefix_of_a_v1_line)
{
    const char *lines[] = {
        "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n",
        "PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n",
        "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
        "65535 65535\r\n",
    };
    struct px_pp out;

    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        size_t n = strlen(lines[i]);

        assert_pp_prefixes_more(lines[i], n);
        cr_assert(eq(int, px_pp_parse(lines[i], n, &out), PX_PP_DONE), "%s", lines[i]);
        cr_assert(eq(sz, out.len, n));
    }
    cr_assert(eq(int, px_pp_parse("", 0, &out), PX_PP_MORE));
}

Test(pp, refuses_malformed_v1_lines)
{
    const char *bad[] = {
        /* line ends */
        "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\n",
        "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\rX\n",
        /* double and trailing spaces */
        "PROXY TCP4  192.0.2.1 198.51.100.7 56324 443\r\n",
        "PROXY  TCP4 192.0.2.1 198.51.100.7 56324 443\r\n",
        "PROXY TCP4 192.0.2.1  198.51.100.7 56324\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.7  443\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.7 56324  443\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443 \r\n",
        /* addresses */
        "PROXY TCP4 192.0.2.256 198.51.100.7 56324 443\r\n",
        "PROXY TCP4 192.0.2 198.51.100.7 56324 443\r\n",
        "PROXY TCP4 2001:db8::1 198.51.100.7 56324 443\r\n",
        "PROXY TCP6 192.0.2.1 2001:db8::2 56324 443\r\n",
        "PROXY TCP6 2001:db8::g 2001:db8::2 56324 443\r\n",
        /* ports */
        "PROXY TCP4 192.0.2.1 198.51.100.7 65536 443\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.7 56324 99999\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.7 056324 443\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.7 08 443\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.7 +80 443\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.7 -1 443\r\n",
        /* field counts and protocols */
        "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443 1\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.7 56324\r\n",
        "PROXY TCP5 192.0.2.1 198.51.100.7 56324 443\r\n",
        "PROXY tcp4 192.0.2.1 198.51.100.7 56324 443\r\n",
        "PROXY UDP4 192.0.2.1 198.51.100.7 56324 443\r\n",
        "PROXY UNKNOWNX\r\n",
        "PROXY \r\n",
        "PROXY\r\n",
        "PROXY \n",
        /* not PROXY at all */
        "proxy TCP4 192.0.2.1 198.51.100.7 56324 443\r\n",
        "GET / HTTP/1.1\r\n",
        "GET / HTTP/1.1",
        "PROXZ",
        "\x16\x03\x01\x02\x00\x01",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_pp1_bad(bad[i]);
}

Test(pp, refuses_a_v1_line_longer_than_107_bytes)
{
    char buf[200];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "PROXY UNKNOWN %0*d", 93, 0);
    struct px_pp out;

    cr_assert(eq(sz, n, (size_t)PX_PP1_MAX));
    /* 106 bytes without LF: a CRLF may still end it */
    cr_assert(eq(int, px_pp_parse(buf, PX_PP1_MAX - 1, &out), PX_PP_MORE));
    /* 107 bytes without LF: it can no longer be a v1 line */
    assert_pp_bad(buf, PX_PP1_MAX, "107 bytes without LF");
    /* the LF in byte 108: too late */
    memcpy(buf + PX_PP1_MAX, "\r\n", 2);
    assert_pp_bad(buf, PX_PP1_MAX + 2, "a 109-byte UNKNOWN line");
}

/* --- PROXY v2 --- */

Test(pp, reads_a_v2_tcp4_header)
{
    unsigned char buf[64];
    size_t n = pp2(buf, 0x21, 0x11, v4_body, sizeof(v4_body));
    struct px_pp out;

    memcpy(buf + n, "GET /", 5);
    cr_assert(eq(int, px_pp_parse(buf, n + 5, &out), PX_PP_DONE), "%s", out.why);
    cr_assert(eq(sz, out.len, (size_t)28));
    assert_addrs(&out, AF_INET, "192.0.2.1", 56324, "198.51.100.7", 443);
    assert_pp_prefixes_more(buf, n);
}

Test(pp, reads_a_v2_tcp6_header)
{
    unsigned char buf[64];
    size_t n = pp2(buf, 0x21, 0x21, v6_body, sizeof(v6_body));
    struct px_pp out;

    memcpy(buf + n, "\x16\x03\x01", 3);
    cr_assert(eq(int, px_pp_parse(buf, n + 3, &out), PX_PP_DONE), "%s", out.why);
    cr_assert(eq(sz, out.len, (size_t)52));
    assert_addrs(&out, AF_INET6, "2001:db8::1", 1, "2001:db8::2", 65535);
    assert_pp_prefixes_more(buf, n);
}

Test(pp, reads_a_v2_local_header_without_addresses)
{
    unsigned char buf[64];
    size_t n = pp2(buf, 0x20, 0x00, NULL, 0);
    struct px_pp out;

    cr_assert(eq(int, px_pp_parse(buf, n, &out), PX_PP_DONE), "%s", out.why);
    cr_assert(eq(sz, out.len, (size_t)16));
    cr_assert_not(out.have_addr);
    /* LOCAL with addresses: the receiver must ignore them */
    n = pp2(buf, 0x20, 0x11, v4_body, sizeof(v4_body));
    cr_assert(eq(int, px_pp_parse(buf, n, &out), PX_PP_DONE), "%s", out.why);
    cr_assert(eq(sz, out.len, (size_t)28));
    cr_assert_not(out.have_addr);
    assert_pp_prefixes_more(buf, n);
}

Test(pp, reads_v2_unspec_and_other_families_without_addresses)
{
    unsigned char buf[300], body[216];
    size_t n = pp2(buf, 0x21, 0x00, NULL, 0);
    struct px_pp out;

    cr_assert(eq(int, px_pp_parse(buf, n, &out), PX_PP_DONE), "%s", out.why);
    cr_assert(eq(sz, out.len, (size_t)16));
    cr_assert_not(out.have_addr);
    /* UDP over IPv4, and a UNIX stream (216 bytes of paths) */
    n = pp2(buf, 0x21, 0x12, v4_body, sizeof(v4_body));
    cr_assert(eq(int, px_pp_parse(buf, n, &out), PX_PP_DONE), "%s", out.why);
    cr_assert(eq(sz, out.len, (size_t)28));
    cr_assert_not(out.have_addr);
    memset(body, 'a', sizeof(body));
    n = pp2(buf, 0x21, 0x31, body, sizeof(body));
    cr_assert(eq(int, px_pp_parse(buf, n, &out), PX_PP_DONE), "%s", out.why);
    cr_assert(eq(sz, out.len, (size_t)232));
    cr_assert_not(out.have_addr);
}

Test(pp, counts_v2_tlvs_after_the_addresses_in_len)
{
    unsigned char body[64], buf[128];
    /* PP2_TYPE_AUTHORITY "example.com", then PP2_TYPE_NOOP of 3 bytes */
    const unsigned char tlvs[] = {0x02, 0x00, 0x0b, 'e', 'x',  'a', 'm', 'p', 'l', 'e',
                                  '.',  'c',  'o',  'm', 0x04, 0,   3,   0,   0,   0};
    struct px_pp out;
    size_t n;

    memcpy(body, v4_body, sizeof(v4_body));
    memcpy(body + sizeof(v4_body), tlvs, sizeof(tlvs));
    n = pp2(buf, 0x21, 0x11, body, sizeof(v4_body) + sizeof(tlvs));
    memcpy(buf + n, "GET", 3);
    cr_assert(eq(int, px_pp_parse(buf, n + 3, &out), PX_PP_DONE), "%s", out.why);
    cr_assert(eq(sz, out.len, (size_t)(16 + 12 + sizeof(tlvs))));
    assert_addrs(&out, AF_INET, "192.0.2.1", 56324, "198.51.100.7", 443);
    /* the TLVs are part of the header: without all of them, more is needed */
    assert_pp_prefixes_more(buf, n);
}

Test(pp, refuses_a_v2_header_of_another_version_or_command)
{
    const unsigned char ver_cmd[] = {0x11, 0x31, 0x01, 0xf1, 0x22, 0x2f};
    unsigned char buf[64];

    for (size_t i = 0; i < sizeof(ver_cmd); i++) {
        size_t n = pp2(buf, ver_cmd[i], 0x11, v4_body, sizeof(v4_body));

        assert_pp_bad(buf, n, "version or command");
        /* known as soon as the 16-byte header is there */
        assert_pp_bad(buf, 16, "version or command, header only");
    }
}

Test(pp, refuses_a_v2_header_longer_than_the_limit)
{
    static unsigned char buf[PX_PP2_MAX + 16];
    unsigned char body[PX_PP2_MAX];
    struct px_pp out;
    size_t n;

    memcpy(body, v4_body, sizeof(v4_body));
    memset(body + 12, 0, sizeof(body) - 12);
    /* 1024 bytes after the 16: the limit */
    n = pp2(buf, 0x21, 0x11, body, PX_PP2_MAX - 16);
    cr_assert(eq(sz, n, (size_t)PX_PP2_MAX));
    cr_assert(eq(int, px_pp_parse(buf, 16, &out), PX_PP_MORE));
    cr_assert(eq(int, px_pp_parse(buf, n, &out), PX_PP_DONE), "%s", out.why);
    cr_assert(eq(sz, out.len, (size_t)PX_PP2_MAX));
    /* one more: refused from its 16-byte header, without waiting for the rest */
    n = pp2(buf, 0x21, 0x11, body, PX_PP2_MAX - 15);
    assert_pp_bad(buf, 16, "1025 bytes announced");
    assert_pp_bad(buf, n, "1025 bytes given");
    buf[14] = 0xff;
    buf[15] = 0xff;
    assert_pp_bad(buf, 16, "65535 bytes announced");
}

Test(pp, refuses_a_v2_header_too_short_for_its_addresses)
{
    unsigned char buf[64];
    size_t n = pp2(buf, 0x21, 0x11, v4_body, 11);

    assert_pp_bad(buf, n, "TCP4 with 11 bytes");
    n = pp2(buf, 0x21, 0x21, v6_body, 35);
    assert_pp_bad(buf, n, "TCP6 with 35 bytes");
    n = pp2(buf, 0x21, 0x21, v4_body, 12);
    assert_pp_bad(buf, n, "TCP6 with the 12 bytes of TCP4");
}

Test(pp, refuses_bytes_that_are_not_a_v2_signature)
{
    unsigned char buf[64];
    size_t n = pp2(buf, 0x21, 0x11, v4_body, sizeof(v4_body));

    for (size_t i = 0; i < sizeof(sig); i++) {
        buf[i] ^= 0x20;
        assert_pp_bad(buf, n, "a signature byte changed");
        /* as soon as the changed byte is there */
        assert_pp_bad(buf, i + 1, "a signature prefix changed");
        buf[i] ^= 0x20;
    }
    assert_pp_bad("\r\nGET / HTTP/1.1\r\n", 18, "CRLF then a request");
}

/* --- px_pp_build --- */

static void
assert_round_trip(const char *buf, size_t n, int family, const char *src, unsigned sport,
                  const char *dst, unsigned dport)
{
    struct px_pp out;

    cr_assert(eq(int, px_pp_parse(buf, n, &out), PX_PP_DONE), "%s", out.why);
    cr_assert(eq(sz, out.len, n));
    assert_addrs(&out, family, src, sport, dst, dport);
}

Test(pp, builds_v1_lines_for_ipv4_and_ipv6)
{
    struct sockaddr_storage s4 = sa("192.0.2.1", 56324), d4 = sa("198.51.100.7", 443);
    struct sockaddr_storage s6 = sa("2001:db8::1", 1), d6 = sa("2001:db8::2", 65535);
    char buf[PX_PP1_MAX + 1];
    size_t n;

    n = px_pp_build(1, &s4, &d4, buf, sizeof(buf));
    cr_assert(eq(sz, n, strlen("PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n")));
    cr_assert(eq(int, memcmp(buf, "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n", n), 0));
    assert_round_trip(buf, n, AF_INET, "192.0.2.1", 56324, "198.51.100.7", 443);

    n = px_pp_build(1, &s6, &d6, buf, sizeof(buf));
    cr_assert(eq(sz, n, strlen("PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n")));
    cr_assert(eq(int, memcmp(buf, "PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n", n), 0));
    assert_round_trip(buf, n, AF_INET6, "2001:db8::1", 1, "2001:db8::2", 65535);
}

Test(pp, builds_the_longest_v1_line_in_108_bytes)
{
    const char *full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    struct sockaddr_storage s = sa(full, 65535), d = sa(full, 65535);
    char buf[108];
    size_t n = px_pp_build(1, &s, &d, buf, sizeof(buf));

    cr_assert(eq(sz, n, (size_t)104));
    assert_round_trip(buf, n, AF_INET6, full, 65535, full, 65535);
}

Test(pp, builds_v2_headers_for_ipv4_and_ipv6)
{
    struct sockaddr_storage s4 = sa("192.0.2.1", 56324), d4 = sa("198.51.100.7", 443);
    struct sockaddr_storage s6 = sa("2001:db8::1", 1), d6 = sa("2001:db8::2", 65535);
    unsigned char want[64];
    char buf[108];
    size_t n, wn;

    n = px_pp_build(2, &s4, &d4, buf, sizeof(buf));
    wn = pp2(want, 0x21, 0x11, v4_body, sizeof(v4_body));
    cr_assert(eq(sz, n, wn));
    cr_assert(eq(int, memcmp(buf, want, n), 0));
    assert_round_trip(buf, n, AF_INET, "192.0.2.1", 56324, "198.51.100.7", 443);

    n = px_pp_build(2, &s6, &d6, buf, sizeof(buf));
    wn = pp2(want, 0x21, 0x21, v6_body, sizeof(v6_body));
    cr_assert(eq(sz, n, wn));
    cr_assert(eq(int, memcmp(buf, want, n), 0));
    assert_round_trip(buf, n, AF_INET6, "2001:db8::1", 1, "2001:db8::2", 65535);
}

Test(pp, builds_tcp4_for_an_ipv4_mapped_ipv6_source)
{
    struct sockaddr_storage s = sa("::ffff:192.0.2.1", 56324), d = sa("198.51.100.7", 443);
    struct sockaddr_storage d6 = sa("::ffff:198.51.100.7", 443);
    char buf[108];
    size_t n;

    n = px_pp_build(1, &s, &d, buf, sizeof(buf));
    cr_assert(eq(sz, n, strlen("PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n")));
    cr_assert(eq(int, memcmp(buf, "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n", n), 0));
    n = px_pp_build(2, &s, &d, buf, sizeof(buf));
    cr_assert(eq(sz, n, (size_t)28));
    cr_assert(eq(int, (unsigned char)buf[13], 0x11));
    assert_round_trip(buf, n, AF_INET, "192.0.2.1", 56324, "198.51.100.7", 443);
    /* both mapped */
    n = px_pp_build(1, &s, &d6, buf, sizeof(buf));
    cr_assert(eq(int, memcmp(buf, "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n", n), 0));
}

Test(pp, builds_unknown_for_mismatched_families)
{
    struct sockaddr_storage s4 = sa("192.0.2.1", 56324), d6 = sa("2001:db8::2", 443);
    struct sockaddr_storage un;
    const unsigned char want[16] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51,
                                    0x55, 0x49, 0x54, 0x0a, 0x21, 0x00, 0x00, 0x00};
    char buf[108];
    struct px_pp out;
    size_t n;

    memset(&un, 0, sizeof(un));
    un.ss_family = AF_UNIX;
    const struct sockaddr_storage *pairs[][2] = {{&s4, &d6}, {&d6, &s4}, {&un, &s4}, {&s4, &un}};
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        n = px_pp_build(1, pairs[i][0], pairs[i][1], buf, sizeof(buf));
        cr_assert(eq(sz, n, strlen("PROXY UNKNOWN\r\n")), "pair %zu", i);
        cr_assert(eq(int, memcmp(buf, "PROXY UNKNOWN\r\n", n), 0), "pair %zu", i);
        cr_assert(eq(int, px_pp_parse(buf, n, &out), PX_PP_DONE));
        cr_assert_not(out.have_addr);

        n = px_pp_build(2, pairs[i][0], pairs[i][1], buf, sizeof(buf));
        cr_assert(eq(sz, n, (size_t)16), "pair %zu", i);
        cr_assert(eq(int, memcmp(buf, want, 16), 0), "pair %zu", i);
        cr_assert(eq(int, px_pp_parse(buf, n, &out), PX_PP_DONE));
        cr_assert(eq(sz, out.len, (size_t)16));
        cr_assert_not(out.have_addr);
    }
}

Test(pp, builds_nothing_when_cap_is_too_small)
{
    struct sockaddr_storage s4 = sa("192.0.2.1", 56324), d4 = sa("198.51.100.7", 443);
    struct sockaddr_storage s6 = sa("2001:db8::1", 1), d6 = sa("2001:db8::2", 65535);
    const size_t v1 = strlen("PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n");
    char buf[108];

    cr_assert(eq(sz, px_pp_build(1, &s4, &d4, buf, 0), (size_t)0));
    cr_assert(eq(sz, px_pp_build(1, &s4, &d4, buf, 10), (size_t)0));
    cr_assert(eq(sz, px_pp_build(1, &s4, &d4, buf, v1 - 1), (size_t)0));
    cr_assert(eq(sz, px_pp_build(1, &s4, &d4, buf, v1 + 1), v1));
    cr_assert(eq(sz, px_pp_build(1, &s4, &d6, buf, 5), (size_t)0));
    cr_assert(eq(sz, px_pp_build(2, &s4, &d4, buf, 27), (size_t)0));
    cr_assert(eq(sz, px_pp_build(2, &s4, &d4, buf, 28), (size_t)28));
    cr_assert(eq(sz, px_pp_build(2, &s6, &d6, buf, 51), (size_t)0));
    cr_assert(eq(sz, px_pp_build(2, &s6, &d6, buf, 52), (size_t)52));
    cr_assert(eq(sz, px_pp_build(2, &s4, &d6, buf, 15), (size_t)0));
    cr_assert(eq(sz, px_pp_build(2, &s4, &d6, buf, 16), (size_t)16));
}

/* --- the server name of a ClientHello --- */

/* A real ClientHello from OpenSSL: the bytes it writes before waiting for the server.
 * `version` pins TLS 1.2 or 1.3; `name` may be NULL (no server_name). Returns its length. */
static size_t
client_hello(int version, const char *name, unsigned char *out, size_t cap)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl;
    BIO *rb, *wb;
    int rc, n;

    cr_assert(ne(ptr, ctx, NULL));
    cr_assert(eq(int, SSL_CTX_set_min_proto_version(ctx, version), 1));
    cr_assert(eq(int, SSL_CTX_set_max_proto_version(ctx, version), 1));
    ssl = SSL_new(ctx);
    cr_assert(ne(ptr, ssl, NULL));
    rb = BIO_new(BIO_s_mem());
    wb = BIO_new(BIO_s_mem());
    cr_assert(ne(ptr, rb, NULL));
    cr_assert(ne(ptr, wb, NULL));
    SSL_set_bio(ssl, rb, wb); /* takes both */
    if (name != NULL) {
        char copy[300];

        cr_assert(lt(sz, strlen(name), sizeof(copy)));
        strcpy(copy, name);
        cr_assert(eq(int, (int)SSL_set_tlsext_host_name(ssl, copy), 1), "%s", name);
    }
    rc = SSL_connect(ssl);
    cr_assert(eq(int, rc, -1));
    cr_assert(eq(int, SSL_get_error(ssl, rc), SSL_ERROR_WANT_READ));
    n = BIO_read(wb, out, (int)cap);
    cr_assert(gt(int, n, 0));
    cr_assert(eq(sz, (size_t)BIO_ctrl_pending(wb), (size_t)0), "the whole hello was read");
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    /* one handshake record holding one ClientHello */
    cr_assert(ge(int, n, 9));
    cr_assert(eq(int, out[0], 0x16));
    cr_assert(eq(int, out[5], 0x01));
    cr_assert(eq(sz, (size_t)(out[3] << 8 | out[4]) + 5, (size_t)n));
    return (size_t)n;
}

/* The handshake bytes of a one-record hello, re-framed in records of at most `chunk` bytes;
 * the first record holds `first` bytes (0: chunk). Returns the new length. */
static size_t
reframe(const unsigned char *rec, size_t first, size_t chunk, unsigned char *out, size_t cap)
{
    size_t hs_len = (size_t)(rec[3] << 8 | rec[4]), o = 0;
    const unsigned char *hs = rec + 5;

    for (size_t i = 0; i < hs_len;) {
        size_t k = i == 0 && first > 0 ? first : chunk;

        if (k > hs_len - i)
            k = hs_len - i;
        cr_assert(le(sz, o + 5 + k, cap));
        out[o] = 0x16;
        out[o + 1] = rec[1];
        out[o + 2] = rec[2];
        out[o + 3] = (unsigned char)(k >> 8);
        out[o + 4] = (unsigned char)k;
        memcpy(out + o + 5, hs + i, k);
        o += 5 + k;
        i += k;
    }
    return o;
}

/* The offset in a one-record hello of its extensions' 2-byte length. */
static size_t
ext_len_at(const unsigned char *rec)
{
    size_t o = 5 + 4 + 2 + 32;

    o += 1 + rec[o];                             /* session id */
    o += 2 + (size_t)(rec[o] << 8 | rec[o + 1]); /* cipher suites */
    o += 1 + rec[o];                             /* compression methods */
    return o;
}

/* Appends a padding extension (RFC 7685) so that the one-record hello's handshake message is
 * `mlen` bytes after its 4-byte header, the record growing with it (no limit checked). */
static size_t
pad_hello(unsigned char *rec, size_t n, size_t mlen)
{
    size_t old = (size_t)(rec[6] << 16 | rec[7] << 8 | rec[8]);
    size_t at = ext_len_at(rec), exts = (size_t)(rec[at] << 8 | rec[at + 1]);
    size_t grow = mlen - old, pad = grow - 4;

    cr_assert(eq(sz, at + 2 + exts, n), "the extensions end the hello");
    cr_assert(ge(sz, mlen, old + 4));
    rec[n] = 0x00;
    rec[n + 1] = 0x15;
    rec[n + 2] = (unsigned char)(pad >> 8);
    rec[n + 3] = (unsigned char)pad;
    memset(rec + n + 4, 0, pad);
    exts += grow;
    rec[at] = (unsigned char)(exts >> 8);
    rec[at + 1] = (unsigned char)exts;
    rec[6] = (unsigned char)(mlen >> 16);
    rec[7] = (unsigned char)(mlen >> 8);
    rec[8] = (unsigned char)mlen;
    rec[3] = (unsigned char)((mlen + 4) >> 8);
    rec[4] = (unsigned char)(mlen + 4);
    return n + grow;
}

static void
assert_sni_found(const void *buf, size_t n, const char *want)
{
    struct px_sni out;

    cr_assert(eq(int, px_sni_parse(buf, n, &out), PX_SNI_FOUND), "%s", out.why ? out.why : "");
    cr_assert(eq(str, out.name, (char *)want));
    cr_assert(eq(sz, out.len, strlen(want)));
}

static void
assert_sni_none(const void *buf, size_t n, const char *what)
{
    struct px_sni out;

    cr_assert(eq(int, px_sni_parse(buf, n, &out), PX_SNI_NONE), "%s", what);
    cr_assert(ne(ptr, (void *)out.why, NULL), "%s", what);
}

static void
assert_sni_prefixes_more(const void *buf, size_t n)
{
    struct px_sni out;

    for (size_t i = 1; i < n; i++)
        cr_assert(eq(int, px_sni_parse(buf, i, &out), PX_SNI_MORE), "prefix of %zu/%zu bytes: %s",
                  i, n, out.why ? out.why : "");
}

Test(sni, finds_the_name_of_a_tls12_client_hello_lower_cased)
{
    unsigned char h[4096];
    size_t n = client_hello(TLS1_2_VERSION, "Www.Example.COM", h, sizeof(h));

    assert_sni_found(h, n, "www.example.com");
    /* what follows the hello does not matter: another handshake record, a change_cipher_spec,
     * early data */
    memcpy(h + n, "\x16\x03\x03\x00\x01\x00", 6);
    assert_sni_found(h, n + 6, "www.example.com");
    memcpy(h + n, "\x14\x03\x03\x00\x01\x01", 6);
    assert_sni_found(h, n + 6, "www.example.com");
    memcpy(h + n, "\x17\x03\x03\x00\x05hello", 10);
    assert_sni_found(h, n + 10, "www.example.com");
}

Test(sni, finds_the_name_of_a_tls13_client_hello_lower_cased)
{
    unsigned char h[4096];
    size_t n = client_hello(TLS1_3_VERSION, "API-2.Shop_x.example", h, sizeof(h));

    assert_sni_found(h, n, "api-2.shop_x.example");
}

Test(sni, says_none_for_a_client_hello_without_server_name)
{
    const int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    unsigned char h[4096];

    for (size_t i = 0; i < 2; i++) {
        size_t n = client_hello(versions[i], NULL, h, sizeof(h));

        assert_sni_none(h, n, "no server_name");
    }
}

Test(sni, asks_for_more_for_every_prefix_of_a_client_hello)
{
    const int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    unsigned char h[4096];

    for (size_t i = 0; i < 2; i++) {
        size_t n = client_hello(versions[i], "example.com", h, sizeof(h));

        assert_sni_prefixes_more(h, n);
        assert_sni_found(h, n, "example.com");
    }
}

Test(sni, finds_the_name_of_a_hello_split_across_records)
{
    unsigned char h[4096], r[8192];
    size_t n = client_hello(TLS1_3_VERSION, "split.example", h, sizeof(h));
    size_t payload = n - 5;
    /* halves; a cut inside the 4-byte handshake header; one byte then the rest; 7-byte records */
    const size_t firsts[] = {payload / 2, 2, 1, 7};
    const size_t chunks[] = {payload, payload, payload, 7};

    for (size_t i = 0; i < sizeof(firsts) / sizeof(firsts[0]); i++) {
        size_t rn = reframe(h, firsts[i], chunks[i], r, sizeof(r));

        cr_assert(gt(sz, rn, n), "more than one record");
        assert_sni_found(r, rn, "split.example");
        assert_sni_prefixes_more(r, rn);
    }
}

Test(sni, says_none_for_a_hello_cut_by_another_record)
{
    unsigned char h[4096], r[8192];
    size_t n = client_hello(TLS1_2_VERSION, "example.com", h, sizeof(h));
    size_t rn = reframe(h, (n - 5) / 2, n, r, sizeof(r));
    size_t first = 5 + (n - 5) / 2;

    /* an application data record where the second half should be */
    r[first] = 0x17;
    assert_sni_none(r, rn, "a record of another type");
    r[first] = 0x16;
    assert_sni_found(r, rn, "example.com");
}

Test(sni, says_none_for_bytes_that_are_not_tls)
{
    const char *bad[] = {
        "GET / HTTP/1.1\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n",
        "\x16\x01",
        "\x16\x02\x01\x00\x05",
        "\x15\x03\x01\x00\x02\x02\x28", /* an alert */
        "\x17\x03\x03\x00\x01\x00",     /* application data */
        "G",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_sni_none(bad[i], strlen(bad[i]), bad[i]);
}

Test(sni, asks_for_more_after_a_lone_handshake_byte)
{
    struct px_sni out;

    cr_assert(eq(int, px_sni_parse("\x16", 1, &out), PX_SNI_MORE));
    cr_assert(eq(int, px_sni_parse("\x16\x03", 2, &out), PX_SNI_MORE));
    cr_assert(eq(int, px_sni_parse("\x16\x03\x01\x02", 4, &out), PX_SNI_MORE));
    cr_assert(eq(int, px_sni_parse("", 0, &out), PX_SNI_MORE));
}

Test(sni, says_none_for_a_handshake_that_is_not_a_client_hello)
{
    unsigned char h[4096], r[8192];
    size_t n = client_hello(TLS1_2_VERSION, "example.com", h, sizeof(h));

    h[5] = 0x02; /* server_hello */
    assert_sni_none(h, n, "a ServerHello");
    /* known from the first record holding the four handshake header bytes */
    reframe(h, 4, n, r, sizeof(r));
    assert_sni_none(r, 9, "a ServerHello's header");
}

Test(sni, finds_a_name_with_a_trailing_dot_without_it)
{
    unsigned char h[4096];
    size_t n = client_hello(TLS1_3_VERSION, "Example.com.", h, sizeof(h));

    cr_assert(ne(ptr, memmem(h, n, "Example.com.", 12), NULL), "OpenSSL kept the dot");
    assert_sni_found(h, n, "example.com");
}

Test(sni, says_none_for_a_name_with_a_bad_byte)
{
    const unsigned char bad[] = {' ', '/', ':', '@', '*', 0x00, 0x7f, 0x80, 0xc3, '\n'};
    unsigned char h[4096];
    size_t n = client_hello(TLS1_3_VERSION, "bad-byte.example", h, sizeof(h));
    unsigned char *at = memmem(h, n, "bad-byte.example", 16);

    cr_assert(ne(ptr, at, NULL));
    assert_sni_found(h, n, "bad-byte.example");
    for (size_t i = 0; i < sizeof(bad); i++) {
        at[3] = bad[i];
        assert_sni_none(h, n, "a bad byte");
    }
    at[3] = '-';
    assert_sni_found(h, n, "bad-byte.example");
}

Test(sni, finds_a_253_byte_name_and_refuses_a_longer_one)
{
    char name[300];
    unsigned char h[4096];
    size_t n;

    memset(name, 'a', sizeof(name));
    name[253] = '\0';
    n = client_hello(TLS1_3_VERSION, name, h, sizeof(h));
    assert_sni_found(h, n, name);
    name[253] = '.';
    name[254] = '\0';
    n = client_hello(TLS1_3_VERSION, name, h, sizeof(h));
    name[253] = '\0';
    assert_sni_found(h, n, name);
    name[253] = 'a';
    name[254] = '\0';
    n = client_hello(TLS1_3_VERSION, name, h, sizeof(h));
    assert_sni_none(h, n, "a 254-byte name");
}

Test(sni, says_none_for_a_record_of_an_invalid_length)
{
    unsigned char h[4096];
    size_t n = client_hello(TLS1_2_VERSION, "example.com", h, sizeof(h));

    h[3] = 0x40;
    h[4] = 0x01; /* 16385 */
    assert_sni_none(h, n, "a record of 16385 bytes");
    assert_sni_none(h, 5, "a record header of 16385 bytes");
    h[3] = 0xff;
    h[4] = 0xff;
    assert_sni_none(h, 5, "a record header of 65535 bytes");
    h[3] = 0x00;
    h[4] = 0x00;
    assert_sni_none(h, n, "an empty record");
}

Test(sni, says_none_for_a_client_hello_larger_than_the_limit)
{
    /* a record of the 4-byte handshake header only: 0x5000 bytes announced */
    const unsigned char big[] = {0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x50, 0x00};
    const unsigned char huge[] = {0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0xff, 0xff, 0xff};

    assert_sni_none(big, sizeof(big), "a ClientHello of 20480 bytes announced");
    assert_sni_none(huge, sizeof(huge), "a ClientHello of 16 MB announced");
}

Test(sni, finds_the_name_of_a_hello_of_exactly_the_limit)
{
    static unsigned char h[PX_HELLO_MAX + 64], r[PX_HELLO_MAX + 64];
    size_t n = client_hello(TLS1_3_VERSION, "big.example", h, sizeof(h));
    size_t rn;

    /* one record of 16384 bytes: the largest there is */
    n = pad_hello(h, n, 16384 - 4);
    cr_assert(eq(sz, n, (size_t)PX_HELLO_MAX));
    assert_sni_found(h, n, "big.example");
    assert_sni_prefixes_more(h, n);
    /* one byte more of message: two records, more bytes than are read */
    n = client_hello(TLS1_3_VERSION, "big.example", h, sizeof(h));
    n = pad_hello(h, n, 16384 - 3);
    rn = reframe(h, 16000, 16000, r, sizeof(r));
    cr_assert(gt(sz, rn, (size_t)PX_HELLO_MAX));
    assert_sni_none(r, PX_HELLO_MAX, "the first 16389 bytes of a hello of 16395");
    /* a message announced longer than the bytes read: refused from its first record */
    n = client_hello(TLS1_3_VERSION, "big.example", h, sizeof(h));
    n = pad_hello(h, n, PX_HELLO_MAX - 4 + 1);
    rn = reframe(h, 16000, 16000, r, sizeof(r));
    assert_sni_none(r, 5 + 16000, "a ClientHello of 16386 bytes");
}

Test(sni, says_none_with_why_for_a_hello_in_tiny_records_past_the_limit)
{
    /* 16000 bytes announced, sent one byte a record: the limit on bytes read comes first */
    static unsigned char r[PX_HELLO_MAX + 16];
    const unsigned char first[] = {0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x3e, 0x80};
    size_t o = sizeof(first);
    struct px_sni out;

    memcpy(r, first, o);
    while (o < PX_HELLO_MAX) {
        memcpy(r + o, "\x16\x03\x01\x00\x01\x00", 6);
        o += 6;
    }
    cr_assert(eq(sz, o, (size_t)PX_HELLO_MAX));
    cr_assert(eq(int, px_sni_parse(r, o - 1, &out), PX_SNI_MORE));
    assert_sni_none(r, o, "16389 bytes of whole records");
    /* and with the next record's header begun */
    memcpy(r + o, "\x16\x03\x01", 3);
    assert_sni_none(r, o + 3, "16389 bytes then a partial record header");
}
