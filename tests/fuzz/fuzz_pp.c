/* tests/fuzz/fuzz_pp.c -- the PROXY protocol header reader (px_pp_parse) on any first bytes of a
 * connection. Properties: no crash or read past the bytes; a header found fits in them; every
 * shorter prefix of a header found asks for more (a header split over reads is not refused); an
 * address read is written back by px_pp_build and read again the same (UNKNOWN when an
 * IPv4-mapped address stands beside a native IPv6 one, as px.h says). */
#include "tests/fuzz/fuzz.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/px.h"

/* The family, address and port of a sockaddr read from a header, an IPv4-mapped IPv6 address as
 * IPv4 (as px_pp_build writes it). */
static int
fz_pp_norm(const struct sockaddr_storage *ss, unsigned char addr[16], uint16_t *port)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in4 = (const void *)ss;

        memset(addr, 0, 16);
        memcpy(addr, &in4->sin_addr, 4);
        *port = in4->sin_port;
        return AF_INET;
    }
    const struct sockaddr_in6 *in6 = (const void *)ss;

    *port = in6->sin6_port;
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
        memset(addr, 0, 16);
        memcpy(addr, in6->sin6_addr.s6_addr + 12, 4);
        return AF_INET;
    }
    memcpy(addr, &in6->sin6_addr, 16);
    return AF_INET6;
}

/* Whether two sockaddrs stand for the same address and port. */
static int
fz_pp_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    unsigned char x[16], y[16];
    uint16_t xp, yp;

    return fz_pp_norm(a, x, &xp) == fz_pp_norm(b, y, &yp) && xp == yp && memcmp(x, y, 16) == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *buf = malloc(size > 0 ? size : 1);
    struct px_pp out, again;
    enum px_pp_rc rc;

    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    memset(&out, 0, sizeof(out));
    rc = px_pp_parse(buf, size, &out);
    FZ_CHECK(rc == PX_PP_MORE || rc == PX_PP_DONE || rc == PX_PP_BAD, "result %d", rc);
    if (rc == PX_PP_BAD)
        FZ_CHECK(out.why != NULL, "a refusal without a reason");
    if (rc == PX_PP_DONE) {
        FZ_CHECK(out.len > 0 && out.len <= size && out.len <= PX_PP2_MAX, "length %zu of %zu",
                 out.len, size);
        for (size_t k = 0; k < out.len; k++) {
            memset(&again, 0, sizeof(again));
            FZ_CHECK(px_pp_parse(buf, k, &again) == PX_PP_MORE,
                     "the first %zu bytes of a %zu-byte header are not read as a beginning (%s)", k,
                     out.len, again.why ? again.why : "done");
        }
        if (out.have_addr) {
            char hdr[PX_PP2_MAX];
            unsigned char a[16];
            uint16_t port;
            /* An IPv4-mapped address beside a native IPv6 one is written as UNKNOWN (px.h). */
            bool mixed = fz_pp_norm(&out.src, a, &port) != fz_pp_norm(&out.dst, a, &port);

            for (int v = 1; v <= 2; v++) {
                size_t n = px_pp_build(v, &out.src, &out.dst, hdr, sizeof(hdr));

                FZ_CHECK(n > 0, "v%d header not built", v);
                memset(&again, 0, sizeof(again));
                FZ_CHECK(px_pp_parse(hdr, n, &again) == PX_PP_DONE, "v%d rebuilt: %s", v,
                         again.why ? again.why : "more");
                FZ_CHECK(again.len == n, "v%d: %zu bytes written, %zu read", v, n, again.len);
                if (mixed)
                    FZ_CHECK(!again.have_addr, "v%d: mixed families written with addresses", v);
                else
                    FZ_CHECK(again.have_addr && fz_pp_same(&again.src, &out.src) &&
                                 fz_pp_same(&again.dst, &out.dst),
                             "v%d header written then read gives other addresses", v);
            }
        }
    }
    free(buf);
    return 0;
}
