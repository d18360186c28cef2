/* tests/integration/test_access_log.c -- one buffered access log line per request. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <string.h>

#include "tests/integration/harness.h"

TestSuite(access_log, .init = h_setup, .fini = h_teardown);

/* The line of `log` that holds `needle` (a harness-owned copy), or NULL. */
static char *
log_line_with(const char *log, const char *needle)
{
    const char *hit = strstr(log, needle);
    const char *start, *end;

    if (hit == NULL)
        return NULL;
    for (start = hit; start > log && start[-1] != '\n'; start--)
        ;
    end = strchr(hit, '\n');
    return h_fmt("%.*s", (int)(end != NULL ? end - start : (long)strlen(start)), start);
}

static size_t
count_lines(const char *log)
{
    size_t n = 0;

    for (const char *p = log; *p != '\0'; p++)
        n += *p == '\n';
    return n;
}

Test(access_log, each_request_writes_one_line_with_cluster_node_method_target_and_status,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}});
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;
    char *log, *line;

    cr_assert(eq(int, h_get(c, "/log/alpha", &m), 0), "%s", m.error);
    cr_assert(eq(int, h_get(c, "/log/beta", &m), 0), "%s", m.error);
    cr_assert(eq(int, h_get(c, "/status/404", &m), 0), "%s", m.error);
    h_proxy_finish(p); /* the log is buffered: all of it is written by the time crossfade exits */
    log = h_read_file(p->access_log, NULL);
    cr_assert(ne(ptr, log, NULL), "no access log at %s", p->access_log);
    cr_assert(eq(sz, count_lines(log), (size_t)3), "3 requests, access log:\n%s", log);
    line = log_line_with(log, "/log/alpha");
    cr_assert(ne(ptr, line, NULL), "no line for /log/alpha in:\n%s", log);
    cr_expect(ne(ptr, strstr(line, " x "), NULL), "no cluster \" x \" in: %s", line);
    cr_expect(ne(ptr, strstr(line, u->addr), NULL), "no node %s in: %s", u->addr, line);
    cr_expect(ne(ptr, strstr(line, "GET"), NULL), "no method in: %s", line);
    cr_expect(ne(ptr, strstr(line, "200"), NULL), "no status in: %s", line);
    line = log_line_with(log, "/status/404");
    cr_assert(ne(ptr, line, NULL), "no line for /status/404 in:\n%s", log);
    cr_expect(ne(ptr, strstr(line, "404"), NULL), "no status 404 in: %s", line);
}

Test(access_log, lines_reach_the_file_within_a_few_seconds_while_running, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}});
    struct h_msg m;

    cr_assert(eq(int, h_get(h_connect(p->port), "/log/soon", &m), 0), "%s", m.error);
    cr_assert(h_log_wait(p->access_log, "/log/soon", 3000),
              "the line was not flushed within 3 s (buffered for ~1 s at most)");
    h_proxy_finish(p);
}
