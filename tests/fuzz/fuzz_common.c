/* tests/fuzz/fuzz_common.c -- helpers every harness links: failed checks, input splitting, and a
 * getaddrinfo that never asks DNS. */
#include "tests/fuzz/fuzz.h"

#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
fz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "\n==== fuzz property violated at %s:%d: %s\n", file, line, cond);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

size_t
fz_split(const uint8_t *data, size_t size, const uint8_t **payload, size_t *payload_len,
         size_t ends[FZ_MAX_CHUNKS])
{
    size_t cuts = size > 0 ? data[0] & 7u : 0, n = 0, at = 0, len;

    if (size < 1 + cuts)
        cuts = size > 0 ? size - 1 : 0;
    *payload = size > 0 ? data + 1 + cuts : data;
    len = size > 0 ? size - 1 - cuts : 0;
    *payload_len = len;
    for (size_t i = 0; i < cuts; i++) {
        /* Each cut lands in what is left after the previous one, so that chunks stay ordered. */
        size_t step = (len - at) * data[1 + i] / 256u;

        if (step == 0)
            continue;
        at += step;
        ends[n++] = at;
    }
    if (n == 0 || ends[n - 1] != len)
        ends[n++] = len;
    return n;
}

/*
 * The configuration and the admin commands resolve host names with getaddrinfo: random names
 * would ask the network for seconds each, and answers change. Linked with
 * -Wl,--wrap=getaddrinfo, every call comes here: numeric addresses and "localhost" only.
 */
int __real_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);

int
__wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                   struct addrinfo **res)
{
    struct addrinfo h = {0};

    if (hints != NULL)
        h = *hints;
    h.ai_flags |= AI_NUMERICHOST;
    if (node != NULL && strcmp(node, "localhost") == 0)
        node = "127.0.0.1";
    return __real_getaddrinfo(node, service, &h, res);
}
