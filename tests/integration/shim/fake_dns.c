/* tests/integration/shim/fake_dns.c -- an LD_PRELOAD getaddrinfo for the tests: host names listed
 * in the file $XF_FAKE_DNS ("NAME ADDRESS DELAY_MS" per line, read at each lookup) resolve to
 * ADDRESS after DELAY_MS, as a slow or changing DNS would; other names go to the real resolver. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

typedef int (*real_gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

/* Looks `name` up in the file: 0 with the address text and the delay, or -1. */
static int
fake_dns_find(const char *name, char *addr, size_t size, unsigned *delay_ms)
{
    const char *path = getenv("XF_FAKE_DNS");
    char line[512], n[256], a[64];
    FILE *f;
    int rc = -1;

    if (path == NULL || (f = fopen(path, "r")) == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned d = 0;

        if (sscanf(line, "%255s %63s %u", n, a, &d) >= 2 && strcmp(n, name) == 0) {
            snprintf(addr, size, "%s", a);
            *delay_ms = d;
            rc = 0;
            break;
        }
    }
    fclose(f);
    return rc;
}

int
getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
            struct addrinfo **res)
{
    static real_gai_fn real;
    char addr[64];
    unsigned delay_ms = 0;
    struct addrinfo *ai;
    struct sockaddr_in *sin;

    if (real == NULL)
        real = (real_gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    if (node == NULL || fake_dns_find(node, addr, sizeof(addr), &delay_ms) == -1)
        return real(node, service, hints, res);
    if (delay_ms > 0) {
        struct timespec ts = {delay_ms / 1000, (long)(delay_ms % 1000) * 1000000L};

        nanosleep(&ts, NULL);
    }
    if (strcmp(addr, "fail") == 0)
        return EAI_NONAME;
    /* One block, as glibc's freeaddrinfo frees it: the entry, then its address. */
    ai = calloc(1, sizeof(*ai) + sizeof(*sin));
    if (ai == NULL)
        return EAI_MEMORY;
    sin = (struct sockaddr_in *)(ai + 1);
    sin->sin_family = AF_INET;
    sin->sin_port = htons((unsigned short)(service != NULL ? atoi(service) : 0));
    if (inet_pton(AF_INET, addr, &sin->sin_addr) != 1) {
        free(ai);
        return EAI_NONAME;
    }
    ai->ai_family = AF_INET;
    ai->ai_socktype = SOCK_STREAM;
    ai->ai_protocol = IPPROTO_TCP;
    ai->ai_addrlen = sizeof(*sin);
    ai->ai_addr = (struct sockaddr *)sin;
    *res = ai;
    return 0;
}
