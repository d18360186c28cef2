/* common/xf_log.c -- the error buffer and the stderr logger. */
#include "common/xf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum xf_log_level xf_log_min = XF_LOG_INFO;

static const char *const xf_log_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void
xf_err_set(struct xf_err *err, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
}

void
xf_log_write(enum xf_log_level level, const char *module, const char *fmt, ...)
{
    char line[1024];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    int n, m;
    int saved_errno = errno;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof(line),
                 "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                 xf_log_names[level], module);
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += XF_MIN(m, (int)(sizeof(line) - (size_t)n - 2));
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) == -1) {
        /* Nowhere left to report it. */
    }
    errno = saved_errno;
}

int
xf_log_level_parse(const char *name, enum xf_log_level *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};

    for (size_t i = 0; i < XF_ARRAY_LEN(names); i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (enum xf_log_level)i;
            return 0;
        }
    }
    return -1;
}
