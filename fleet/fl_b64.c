/* fleet/fl_b64.c -- base64 (RFC 4648, standard alphabet, padded): etcd's JSON gateway carries
 * every key and value this way. */
#include "fleet/fl_int.h"

static const char fl_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t
fl_b64_encode(char *dst, const void *src, size_t len)
{
    const unsigned char *s = src;
    size_t n = 0, k = 0;

    for (; len - k >= 3; k += 3) {
        uint32_t v = (uint32_t)s[k] << 16 | (uint32_t)s[k + 1] << 8 | s[k + 2];

        dst[n++] = fl_b64_alphabet[v >> 18];
        dst[n++] = fl_b64_alphabet[(v >> 12) & 63];
        dst[n++] = fl_b64_alphabet[(v >> 6) & 63];
        dst[n++] = fl_b64_alphabet[v & 63];
    }
    if (len - k == 1) {
        dst[n++] = fl_b64_alphabet[s[k] >> 2];
        dst[n++] = fl_b64_alphabet[(s[k] & 3) << 4];
        dst[n++] = '=';
        dst[n++] = '=';
    } else if (len - k == 2) {
        uint32_t v = (uint32_t)s[k] << 8 | s[k + 1];

        dst[n++] = fl_b64_alphabet[v >> 10];
        dst[n++] = fl_b64_alphabet[(v >> 4) & 63];
        dst[n++] = fl_b64_alphabet[(v & 15) << 2];
        dst[n++] = '=';
    }
    return n;
}

/* The 6-bit value of a base64 character, or -1. */
static int
fl_b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int
fl_b64_decode(void *dst, size_t *out_len, const char *src, size_t len)
{
    const unsigned char *s = (const unsigned char *)src;
    unsigned char *d = dst;
    size_t n = 0;

    if (len % 4 != 0)
        return -1;
    for (size_t k = 0; k < len; k += 4) {
        bool last = k + 4 == len;
        int pad = last && s[k + 3] == '=' ? (s[k + 2] == '=' ? 2 : 1) : 0;
        int v[4] = {0, 0, 0, 0};
        uint32_t w;

        for (int j = 0; j < 4 - pad; j++) {
            v[j] = fl_b64_value(s[k + j]);
            if (v[j] == -1)
                return -1;
        }
        w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        /* The bits under the padding must be zero: one text per value. */
        if ((pad == 1 && (w & 0xff) != 0) || (pad == 2 && (w & 0xffff) != 0))
            return -1;
        d[n++] = (unsigned char)(w >> 16);
        if (pad < 2)
            d[n++] = (unsigned char)(w >> 8);
        if (pad < 1)
            d[n++] = (unsigned char)w;
    }
    *out_len = n;
    return 0;
}
