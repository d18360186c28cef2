/* tests/unit/test_fl_base64.c -- fleet's base64: RFC 4648 vectors, round trips of any bytes, and
 * every malformed text refused. */
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "fleet/fl_int.h"

static const char *
enc(const char *s, size_t len)
{
    static char buf[256];
    size_t n = fl_b64_encode(buf, s, len);

    cr_assert(eq(sz, n, FL_B64_ENC_LEN(len)));
    buf[n] = '\0';
    return buf;
}

/* Decodes a heap copy of exactly `len` characters (ASan sees a read past the end). */
static int
dec(const char *s, size_t len, char *out, size_t *out_len)
{
    char *copy = malloc(len > 0 ? len : 1);
    int rc;

    memcpy(copy, s, len);
    rc = fl_b64_decode(out, out_len, copy, len);
    free(copy);
    return rc;
}

Test(fl_base64, encodes_the_rfc_4648_vectors)
{
    cr_assert(eq(str, (char *)enc("", 0), ""));
    cr_assert(eq(str, (char *)enc("f", 1), "Zg=="));
    cr_assert(eq(str, (char *)enc("fo", 2), "Zm8="));
    cr_assert(eq(str, (char *)enc("foo", 3), "Zm9v"));
    cr_assert(eq(str, (char *)enc("foob", 4), "Zm9vYg=="));
    cr_assert(eq(str, (char *)enc("fooba", 5), "Zm9vYmE="));
    cr_assert(eq(str, (char *)enc("foobar", 6), "Zm9vYmFy"));
    cr_assert(eq(str, (char *)enc("\xfb\xff\xbf", 3), "+/+/"), "the standard alphabet, not URL's");
}

Test(fl_base64, decodes_the_rfc_4648_vectors)
{
    static const char *const text[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                       "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    char out[16];
    size_t n;

    for (size_t k = 0; k < XF_ARRAY_LEN(text); k++) {
        cr_assert(eq(int, dec(text[k], strlen(text[k]), out, &n), 0), "%s", text[k]);
        cr_assert(eq(sz, n, k));
        cr_assert(eq(int, memcmp(out, "foobar", n), 0));
    }
}

Test(fl_base64, round_trips_every_byte_value_at_every_length)
{
    unsigned char in[300], out[300];
    char text[FL_B64_ENC_LEN(300)];

    for (size_t k = 0; k < sizeof(in); k++)
        in[k] = (unsigned char)(k * 7 + 3);
    for (size_t len = 0; len <= sizeof(in); len++) {
        size_t n = fl_b64_encode(text, in, len), got = 0;

        cr_assert(le(sz, FL_B64_DEC_MAX(n), sizeof(out) + 2));
        cr_assert(eq(int, fl_b64_decode(out, &got, text, n), 0), "length %zu", len);
        cr_assert(eq(sz, got, len));
        cr_assert(eq(int, memcmp(in, out, len), 0));
    }
}

Test(fl_base64, refuses_malformed_text)
{
    static const char *const bad[] = {
        "Zg",       /* no padding */
        "Zg=",      /* short padding */
        "Zm9",      /* length not a multiple of 4 */
        "Z===",     /* three pad characters */
        "====",     /* only padding */
        "Zg==Zg==", /* padding in the middle */
        "Zm=v",     /* a pad character before data */
        "Zm9v\n",   /* whitespace */
        "Zm 9",     /* space */
        "Zm9-",     /* URL alphabet */
        "Zm9_",     /* URL alphabet */
        "Zh==",     /* non-zero bits under the padding */
        "Zm9=",     /* likewise, one pad character */
        "Zm8\x80",  /* a byte above ASCII */
    };
    char out[16];
    size_t n;

    for (size_t k = 0; k < XF_ARRAY_LEN(bad); k++)
        cr_assert(eq(int, dec(bad[k], strlen(bad[k]), out, &n), -1), "accepted %s", bad[k]);
    cr_assert(eq(int, dec("Zm\0v", 4, out, &n), -1), "a NUL byte");
}
