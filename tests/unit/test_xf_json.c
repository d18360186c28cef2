/* tests/unit/test_xf_json.c -- xf_json_escape: any bytes make the inside of a valid JSON string. */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "common/xf.h"

/* xf_json_escape of the `len` bytes at s, NUL-terminated in a static buffer. */
static const char *
escaped(const char *s, size_t len)
{
    static char buf[XF_JSON_ESCAPED_MAX(256) + 1];
    size_t n;

    cr_assert(le(sz, len, (size_t)256));
    memset(buf, 'Z', sizeof(buf));
    n = xf_json_escape(buf, s, len);
    cr_assert(le(sz, n, XF_JSON_ESCAPED_MAX(len)), "wrote %zu bytes for %zu", n, len);
    buf[n] = '\0';
    return buf;
}

#define ESCAPED(lit) escaped(lit, sizeof(lit) - 1)

Test(xf_json_escape, leaves_printable_ascii_as_it_is)
{
    cr_assert(eq(str, (char *)ESCAPED("/a%20b?q=1&r=/x#y"), "/a%20b?q=1&r=/x#y"));
    cr_assert(eq(str, (char *)ESCAPED(""), ""));
    cr_assert(eq(str, (char *)ESCAPED(" ~'<>{}"), " ~'<>{}"));
}

Test(xf_json_escape, puts_a_backslash_before_quotes_and_backslashes)
{
    cr_assert(eq(str, (char *)ESCAPED("/q\"x\\y"), "/q\\\"x\\\\y"));
    cr_assert(eq(str, (char *)ESCAPED("\"\""), "\\\"\\\""));
}

Test(xf_json_escape, writes_control_bytes_and_del_as_u00xx)
{
    cr_assert(eq(str, (char *)ESCAPED("a\nb\tc\r\x01\x1f\x7f"),
                 "a\\u000ab\\u0009c\\u000d\\u0001\\u001f\\u007f"));
    cr_assert(eq(str, (char *)escaped("a\0b", 3), "a\\u0000b"), "a NUL is a byte like any other");
}

/* Clients' bytes need not be UTF-8: each one stands for itself, so the line stays valid JSON. */
Test(xf_json_escape, writes_each_byte_from_0x80_as_u00xx)
{
    cr_assert(eq(str, (char *)ESCAPED("/caf\xc3\xa9"), "/caf\\u00c3\\u00a9"));
    cr_assert(eq(str, (char *)ESCAPED("\x80\xff\xe9"), "\\u0080\\u00ff\\u00e9"));
}

Test(xf_json_escape, never_writes_more_than_its_bound_even_when_every_byte_grows)
{
    char all[256];
    const char *out, *bad;

    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    out = escaped(all, sizeof(all));
    /* 32 control bytes, DEL and 128 high bytes take 6; the quote and the backslash 2. */
    cr_assert(eq(sz, strlen(out), (size_t)((32 + 1 + 128) * 6 + 2 * 2 + (256 - 32 - 1 - 128 - 2))));
    /* One assertion, not one per byte: Criterion keeps each assertion's record. */
    for (bad = out; *bad != '\0' && *bad >= 0x20 && *bad < 0x7f; bad++)
        ;
    cr_assert(eq(chr, *bad, '\0'), "byte 0x%02x at %td is not printable ASCII", (unsigned char)*bad,
              bad - out);
}
