/* common/xf_util.c -- time and string helpers, the descriptor lock and the service manager's
 * notification, with no dependency beyond libc. */
#include "common/xf.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

uint64_t
xf_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t
xf_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int64_t
xf_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *
xf_wall_text(int64_t ms, int with_ms, char *buf, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(buf, size, "?");
        return buf;
    }
    if (with_ms)
        snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    else
        snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return buf;
}

size_t
xf_edit_distance(const char *a, const char *b)
{
    size_t la = XF_MIN(strlen(a), (size_t)64), lb = XF_MIN(strlen(b), (size_t)64);
    size_t row[65];

    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = XF_MIN(row[j] + 1, row[j - 1] + 1);
            row[j] = XF_MIN(best, diag + cost);
            diag = up;
        }
    }
    return row[lb];
}

int
xf_span_ieq(const char *s, size_t len, const char *lit)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (lit[i] == '\0')
            return 0;
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        if (c != (unsigned char)lit[i])
            return 0;
    }
    return lit[i] == '\0';
}

const char *
xf_quote(char *buf, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t cut = len, n = 0;

    if (cut > XF_QUOTE_MAX) {
        cut = XF_QUOTE_MAX;
        while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
            cut--;
    }
    buf[n++] = '"';
    for (size_t i = 0; i < cut; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\') {
            buf[n++] = '\\';
            buf[n++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            buf[n++] = '\\';
            buf[n++] = 'x';
            buf[n++] = hex[c >> 4];
            buf[n++] = hex[c & 0xf];
        } else {
            buf[n++] = (char)c;
        }
    }
    buf[n++] = '"';
    if (cut < len) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

size_t
xf_json_escape(char *dst, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\') {
            dst[n++] = '\\';
            dst[n++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            memcpy(dst + n, "\\u00", 4);
            dst[n + 4] = hex[c >> 4];
            dst[n + 5] = hex[c & 0xf];
            n += 6;
        } else {
            dst[n++] = (char)c;
        }
    }
    return n;
}

int
xf_resolve(const char *host, const char *port, int passive, struct sockaddr_storage *out,
           unsigned *out_len, const char **why)
{
    struct addrinfo hints, *res = NULL;
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        *why = gai_strerror(rc);
        return -1;
    }
    if (res->ai_addrlen > sizeof(*out)) {
        *why = "address too long";
        freeaddrinfo(res);
        return -1;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *out_len = (unsigned)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int xf_fd_scarce;
static pthread_mutex_t xf_fd_mutex = PTHREAD_MUTEX_INITIALIZER;

void
xf_fd_lock(void)
{
    pthread_mutex_lock(&xf_fd_mutex);
}

void
xf_fd_unlock(void)
{
    pthread_mutex_unlock(&xf_fd_mutex);
}

int
xf_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    size_t len;
    socklen_t sl;
    int fd, rc;

    if (path == NULL || path[0] == '\0')
        return 0;
    len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sun.sun_path)) {
        XF_LOG(XF_LOG_WARN, "main", "event=notify_failed socket=\"%s\" error=\"not a socket path\"",
               path);
        return -1;
    }
    memcpy(sun.sun_path, path, len);
    if (path[0] == '@')
        sun.sun_path[0] = '\0'; /* the abstract namespace */
    sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -1;
    rc = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun, sl) == -1 ? -1 : 0;
    if (rc == -1)
        XF_LOG(XF_LOG_WARN, "main", "event=notify_failed socket=\"%s\" error=\"%s\"", path,
               strerror(errno));
    close(fd);
    return rc;
}

int
xf_notify_reloading(void)
{
    struct timespec ts;
    char msg[96];

    /* systemd (253 and later, Type=notify-reload) wants the monotonic time with RELOADING=1. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000u);
    return xf_notify(msg);
}

int
xf_http_url_parse(const char *url, unsigned default_port, char *host, size_t host_size,
                  unsigned *port, struct xf_err *err)
{
    const char *h, *end, *colon;
    size_t host_len, port_len;
    unsigned long n;
    char *stop;

    if (strncmp(url, "https://", 8) == 0) {
        xf_err_set(err, "https is not supported (plain http only)");
        return -1;
    }
    if (strncmp(url, "http://", 7) != 0) {
        xf_err_set(err, "expected http://host:port");
        return -1;
    }
    h = url + 7;
    end = h + strlen(h);
    if (end > h && end[-1] == '/')
        end--;
    if (*h == '[') {
        const char *close = memchr(h, ']', (size_t)(end - h));

        if (close == NULL || close == h + 1) {
            xf_err_set(err, "an IPv6 address needs its closing ']'");
            return -1;
        }
        host_len = (size_t)(close - h - 1);
        h++;
        colon = close + 1 < end ? close + 1 : NULL;
        if (colon != NULL && *colon != ':') {
            xf_err_set(err, "expected ':port' after the address");
            return -1;
        }
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
        host_len = (size_t)((colon != NULL ? colon : end) - h);
        if (host_len == 0) {
            xf_err_set(err, "no host");
            return -1;
        }
        for (size_t i = 0; i < host_len; i++)
            if (!((h[i] >= 'a' && h[i] <= 'z') || (h[i] >= 'A' && h[i] <= 'Z') ||
                  (h[i] >= '0' && h[i] <= '9') || h[i] == '.' || h[i] == '-' || h[i] == '_')) {
                xf_err_set(err, "the host may hold letters, digits, '.', '-', '_' (no user, path "
                                "or query)");
                return -1;
            }
    }
    if (host_len >= host_size) {
        xf_err_set(err, "the host is too long");
        return -1;
    }
    memcpy(host, h, host_len);
    host[host_len] = '\0';
    if (colon == NULL) {
        if (default_port == 0) {
            xf_err_set(err, "no port");
            return -1;
        }
        *port = default_port;
        return 0;
    }
    port_len = (size_t)(end - colon - 1);
    errno = 0;
    n = strtoul(colon + 1, &stop, 10);
    if (port_len == 0 || port_len > 5 || stop != end || colon[1] < '0' || colon[1] > '9' ||
        n == 0 || n > 65535) {
        xf_err_set(err, "the port must be a number from 1 to 65535%s",
                   memchr(colon + 1, '/', port_len) != NULL ? ", with no path after it" : "");
        return -1;
    }
    *port = (unsigned)n;
    return 0;
}
