/* config/cfg_value.c -- the text parsers other modules share: durations, addresses, networks. */
#include "config/cfg.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/xf.h"

#define CFG_VALUE_SHOW_SIZE XF_QUOTE_SIZE

/* The units of a duration, largest first: each appears at most once, in this order. */
static const struct cfg_duration_unit {
    const char *name;
    unsigned ms;
    int rank;
} cfg_duration_units[] = {
    {"h", 3600000u, 0},
    {"ms", 1u, 3}, /* before "m", which would otherwise swallow its first letter */
    {"m", 60000u, 1},
    {"s", 1000u, 2},
};

/* The quoted excerpt of a value for a message (xf_quote). */
static const char *
cfg_value_show(char *buf, const char *text)
{
    return xf_quote(buf, text, strlen(text));
}

int
cfg_duration_parse(const char *text, unsigned *out_ms, struct xf_err *err)
{
    char shown[CFG_VALUE_SHOW_SIZE];
    const char *p = text;
    uint64_t total = 0;
    int last_rank = -1;

    if (*p == '\0')
        goto bad;
    while (*p != '\0') {
        const char *digits = p;
        uint64_t n = 0;
        size_t u;

        while (*p >= '0' && *p <= '9') {
            n = n * 10 + (uint64_t)(*p - '0');
            if (n > UINT_MAX)
                goto too_large;
            p++;
        }
        if (p == digits)
            goto bad;
        if (*p == '\0' && digits == text) {
            /* A bare number is seconds, but only alone: "1m30" is more likely a typo. */
            total = n * 1000u;
            break;
        }
        for (u = 0; u < XF_ARRAY_LEN(cfg_duration_units); u++) {
            size_t ulen = strlen(cfg_duration_units[u].name);

            if (strncmp(p, cfg_duration_units[u].name, ulen) == 0) {
                p += ulen;
                break;
            }
        }
        if (u == XF_ARRAY_LEN(cfg_duration_units) || cfg_duration_units[u].rank <= last_rank)
            goto bad;
        last_rank = cfg_duration_units[u].rank;
        total += n * cfg_duration_units[u].ms;
        if (total > UINT_MAX)
            goto too_large;
    }
    if (total > UINT_MAX)
        goto too_large;
    *out_ms = (unsigned)total;
    return 0;

bad:
    xf_err_set(err, "expected a duration such as 500ms, 3s, 1m, 1h or 1m30s, got %s",
               cfg_value_show(shown, text));
    return -1;
too_large:
    xf_err_set(err, "expected a duration of at most %ums (about 49 days), got %s", UINT_MAX,
               cfg_value_show(shown, text));
    return -1;
}

/* Parses a decimal port 1..65535, digits only. Returns 0 or -1. */
static int
cfg_port_parse(const char *text, unsigned *out)
{
    unsigned port = 0;

    if (*text == '\0')
        return -1;
    for (; *text != '\0'; text++) {
        if (*text < '0' || *text > '9')
            return -1;
        port = port * 10 + (unsigned)(*text - '0');
        if (port > 65535)
            return -1;
    }
    if (port == 0)
        return -1;
    *out = port;
    return 0;
}

/* True when `host` has only the characters of a host name: letters, digits, '.', '-' and '_'. */
static bool
cfg_host_name_ok(const char *host)
{
    for (; *host != '\0'; host++) {
        unsigned char c = (unsigned char)*host;

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            return false;
    }
    return true;
}

/*
 * Resolves `host` with getaddrinfo (numeric only when `family` is AF_INET6: the text was in
 * brackets) and copies the first answer, with `port`, into `out`. Returns 0, or -1 with the reason
 * in `why` (static text).
 */
static int
cfg_addr_resolve(const char *host, int family, unsigned port, struct cfg_addr *out,
                 const char **why)
{
    struct addrinfo hints, *res = NULL;
    char service[8];
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (family == AF_INET6 ? AI_NUMERICHOST : 0);
    snprintf(service, sizeof(service), "%u", port);
    /* RFC 6761 6.3: "localhost" is the loopback address, whatever /etc/hosts says (or lacks). */
    if (strcasecmp(host, "localhost") == 0) {
        host = "127.0.0.1";
        hints.ai_flags |= AI_NUMERICHOST;
    }
    rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        *why = gai_strerror(rc);
        return -1;
    }
    if (res->ai_addrlen > sizeof(out->sa) ||
        (res->ai_family != AF_INET && res->ai_family != AF_INET6)) {
        *why = "no IPv4 or IPv6 address";
        freeaddrinfo(res);
        return -1;
    }
    memcpy(&out->sa, res->ai_addr, res->ai_addrlen);
    out->sa_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/*
 * Splits "host:port" or "[v6]:port" (`shown` is the text quoted for messages) into `host` (at least
 * strlen(text) + 1 bytes), `port`, and the family the host is written in: AF_INET6 in brackets,
 * AF_INET for digits and dots, AF_UNSPEC for a name. Returns 0, or -1 with a message.
 */
static int
cfg_addr_split(const char *text, const char *shown, char *host, unsigned *port, int *family,
               struct xf_err *err)
{
    const char *host_start = text, *host_end, *port_text;

    if (text[0] == '[') {
        host_start = text + 1;
        host_end = strchr(host_start, ']');
        if (host_end == NULL) {
            xf_err_set(err, "expected ']' to close the IPv6 address, as in [::1]:8000, got %s",
                       shown);
            return -1;
        }
        if (host_end[1] != ':') {
            xf_err_set(err, "expected ':' and a port after ']', as in [::1]:8000, got %s", shown);
            return -1;
        }
        port_text = host_end + 2;
        *family = AF_INET6;
    } else {
        host_end = strrchr(text, ':');
        if (host_end == NULL) {
            xf_err_set(err, "expected host:port, as in 10.0.0.1:8000, got %s (no port)", shown);
            return -1;
        }
        if (memchr(text, ':', (size_t)(host_end - text)) != NULL) {
            xf_err_set(err, "expected an IPv6 address in brackets, as in [::1]:8000, got %s",
                       shown);
            return -1;
        }
        port_text = host_end + 1;
        /* Digits and dots only: meant as IPv4, so never handed to the resolver. */
        *family = strspn(text, "0123456789.") == (size_t)(host_end - text) ? AF_INET : AF_UNSPEC;
    }
    if (host_end == host_start) {
        xf_err_set(err, "expected a host before the port, as in 10.0.0.1:8000, got %s", shown);
        return -1;
    }
    if (cfg_port_parse(port_text, port) == -1) {
        xf_err_set(err, "expected a port from 1 to 65535, got %s", shown);
        return -1;
    }
    memcpy(host, host_start, (size_t)(host_end - host_start));
    host[host_end - host_start] = '\0';
    return 0;
}

bool
cfg_addr_is_name(const char *text)
{
    char host[sizeof(((struct cfg_addr *)0)->text)];
    unsigned port;
    int family;

    if (strlen(text) >= sizeof(host) || cfg_addr_split(text, "", host, &port, &family, NULL) == -1)
        return false;
    return family == AF_UNSPEC;
}

int
cfg_addr_parse(const char *text, struct cfg_addr *out, struct xf_err *err)
{
    char shown[CFG_VALUE_SHOW_SIZE];
    char host[sizeof(out->text)];
    const char *why = "";
    size_t len = strlen(text);
    unsigned port;
    int family;

    memset(out, 0, sizeof(*out));
    cfg_value_show(shown, text);
    if (len >= sizeof(out->text)) {
        xf_err_set(err, "expected an address of at most %zu characters, got %s",
                   sizeof(out->text) - 1, shown);
        return -1;
    }
    if (cfg_addr_split(text, shown, host, &port, &family, err) == -1)
        return -1;
    if (family == AF_INET) {
        /* inet_pton rather than getaddrinfo, which takes inet_aton's "127.1" and "0x7f.0.0.1". */
        struct sockaddr_in *sin = (struct sockaddr_in *)&out->sa;

        if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
            xf_err_set(err, "expected an IPv4 address such as 10.0.0.1, got %s", shown);
            return -1;
        }
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        out->sa_len = sizeof(*sin);
    } else if (family == AF_INET6) {
        if (cfg_addr_resolve(host, AF_INET6, port, out, &why) == -1) {
            xf_err_set(err, "expected an IPv6 address such as [::1]:8000, got %s", shown);
            return -1;
        }
    } else {
        if (!cfg_host_name_ok(host)) {
            xf_err_set(err, "expected a host name, an IPv4 address or an [IPv6] address, got %s",
                       shown);
            return -1;
        }
        if (cfg_addr_resolve(host, AF_UNSPEC, port, out, &why) == -1) {
            xf_err_set(err, "expected a host name that resolves, got %s (%s)", shown, why);
            return -1;
        }
    }
    memcpy(out->text, text, len + 1);
    return 0;
}

/* Parses the prefix length after the '/': one to three digits, at most `max`. Returns 0 or -1. */
static int
cfg_prefix_parse(const char *text, unsigned max, unsigned *out)
{
    unsigned n = 0;
    size_t i;

    for (i = 0; text[i] >= '0' && text[i] <= '9'; i++) {
        n = n * 10 + (unsigned)(text[i] - '0');
        if (i == 3 || n > max)
            return -1;
    }
    if (i == 0 || text[i] != '\0')
        return -1;
    *out = n;
    return 0;
}

/* Clears every bit of the 16-byte `addr` after the first `prefix` bits. */
static void
cfg_cidr_mask(uint8_t *addr, unsigned prefix)
{
    for (unsigned i = 0; i < 16; i++) {
        if (prefix >= 8 * (i + 1))
            continue;
        addr[i] &= prefix > 8 * i ? (uint8_t)(0xff00u >> (prefix - 8 * i)) : 0;
    }
}

int
cfg_cidr_parse(const char *text, struct cfg_cidr *out, struct xf_err *err)
{
    char shown[CFG_VALUE_SHOW_SIZE], host[sizeof(out->text)], fixed[INET6_ADDRSTRLEN];
    struct cfg_cidr c;
    uint8_t net[sizeof(c.addr)];
    const char *slash = strchr(text, '/');
    size_t len = strlen(text), host_len = slash != NULL ? (size_t)(slash - text) : len;
    unsigned max, prefix;

    memset(&c, 0, sizeof(c));
    cfg_value_show(shown, text);
    if (len >= sizeof(c.text)) {
        xf_err_set(err, "expected a network of at most %zu characters, got %s", sizeof(c.text) - 1,
                   shown);
        return -1;
    }
    memcpy(host, text, host_len);
    host[host_len] = '\0';
    /* The family is the one the text is written in: no DNS, no IPv4 written as IPv6 or back. */
    c.family = memchr(host, ':', host_len) != NULL ? AF_INET6 : AF_INET;
    max = c.family == AF_INET6 ? 128 : 32;
    if (inet_pton(c.family, host, c.addr) != 1) {
        xf_err_set(err,
                   "expected an IPv4 or IPv6 network such as 10.0.0.0/8 or 2001:db8::/32, got %s",
                   shown);
        return -1;
    }
    prefix = max;
    if (slash != NULL && cfg_prefix_parse(slash + 1, max, &prefix) == -1) {
        xf_err_set(err, "expected a prefix length from 0 to %u after the '/', got %s", max, shown);
        return -1;
    }
    memcpy(net, c.addr, sizeof(net));
    cfg_cidr_mask(net, prefix);
    if (memcmp(net, c.addr, sizeof(net)) != 0) {
        /* "10.0.0.1/8" is most likely 10.0.0.0/8, but it might be 10.0.0.1/32: ask, never guess. */
        if (inet_ntop(c.family, net, fixed, sizeof(fixed)) == NULL)
            fixed[0] = '\0';
        xf_err_set(err,
                   "expected a network address, got %s (host bits set; did you mean \"%s/%u\"?)",
                   shown, fixed, prefix);
        return -1;
    }
    c.prefix = (uint8_t)prefix;
    memcpy(c.text, text, len + 1);
    *out = c;
    return 0;
}
