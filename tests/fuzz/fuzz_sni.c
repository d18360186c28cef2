/* tests/fuzz/fuzz_sni.c -- the ClientHello reader (px_sni_parse) on any first bytes of a
 * connection. Properties: no crash or read past the bytes; a name found is lower-case text of at
 * most 253 bytes; a name found in all the bytes is never refused on a prefix of them (a
 * ClientHello split over reads), and a prefix that finds one finds the same. */
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "proxy/px.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *buf = malloc(size > 0 ? size : 1);
    struct px_sni out, pre;
    enum px_sni_rc rc;

    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    memset(&out, 0, sizeof(out));
    rc = px_sni_parse(buf, size, &out);
    FZ_CHECK(rc == PX_SNI_MORE || rc == PX_SNI_FOUND || rc == PX_SNI_NONE, "result %d", rc);
    if (rc == PX_SNI_NONE)
        FZ_CHECK(out.why != NULL, "no name and no reason");
    if (rc == PX_SNI_FOUND) {
        FZ_CHECK(out.len > 0 && out.len <= PX_SNI_MAX && strlen(out.name) == out.len,
                 "name of %zu bytes, text of %zu", out.len, strnlen(out.name, sizeof(out.name)));
        for (size_t i = 0; i < out.len; i++)
            FZ_CHECK(!(out.name[i] >= 'A' && out.name[i] <= 'Z'), "upper case in \"%s\"", out.name);
        /* Prefixes: each length up to 64, then a few spread over the rest (the reader is called
         * with what has arrived so far). */
        for (size_t k = 0; k < size; k = k < 64 ? k + 1 : k + 1 + size / 16) {
            enum px_sni_rc prc;

            memset(&pre, 0, sizeof(pre));
            prc = px_sni_parse(buf, k, &pre);
            FZ_CHECK(prc != PX_SNI_NONE, "the first %zu of %zu bytes refused (%s), all found %s", k,
                     size, pre.why ? pre.why : "", out.name);
            if (prc == PX_SNI_FOUND)
                FZ_CHECK(strcmp(pre.name, out.name) == 0, "%zu bytes give %s, all give %s", k,
                         pre.name, out.name);
        }
    }
    free(buf);
    return 0;
}
