/* tests/integration/test_access_log.c -- one buffered access log line per request, text or json,
 * sampled, rotated. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
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

/* ------------------------------------------------------------------ access_log_format: json */

/*
 * Runs tests/integration/alog_check.py (python3, a JSON parser other than crossfade's writer) on
 * `files` (NULL-terminated): asserts that every line of each is a valid json line with the
 * documented fields in order, and returns how many lines they hold together.
 */
static size_t
json_lines(const char *const *files)
{
    const char *src = getenv("XF_SRC");
    char *argv[8] = {(char *)h_fmt("%s/tests/integration/alog_check.py",
                                   src != NULL && *src != '\0' ? src : ".")};
    char *out = NULL, *err = NULL;
    size_t n = 1, lines = 0;
    int code;

    for (; *files != NULL; files++) {
        cr_assert(lt(sz, n, sizeof(argv) / sizeof(argv[0]) - 1));
        argv[n++] = (char *)*files;
    }
    argv[n] = NULL;
    code = h_run(argv, 20000, &out, &err);
    cr_assert(eq(int, code, 0), "alog_check.py exited %d:\n%s%s", code, out != NULL ? out : "",
              err != NULL ? err : "");
    cr_assert(eq(int, sscanf(out, "lines=%zu", &lines), 1), "alog_check.py said: %s", out);
    return lines;
}

/* The raw text of a json line's number field `name` (up to the next , or }), harness-owned. */
static const char *
json_number(const char *line, const char *name)
{
    const char *at = strstr(line, h_fmt("\"%s\":", name));

    cr_assert(ne(ptr, (void *)at, NULL), "no \"%s\" in: %s", name, line);
    at += strlen(name) + 3;
    return h_fmt("%.*s", (int)strcspn(at, ",}"), at);
}

/* The json line whose path starts with `path` (harness-owned); asserts there is one. */
static const char *
json_line_of(const struct h_proxy *p, const char *path)
{
    const char *line = h_log_line(p->access_log, h_fmt("\"path\":\"%s", path));

    cr_assert(ne(ptr, (void *)line, NULL), "no json line for %s in:\n%s", path,
              h_read_file(p->access_log, NULL));
    return line;
}

/* Sends GET target with more header lines (each ending in CRLF) and reads the response. */
static int
get_with(struct h_conn *c, const char *target, const char *headers, struct h_msg *m)
{
    if (h_sendf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", target, H_HOST, headers) == -1) {
        snprintf(m->error, sizeof(m->error), "send: %s", strerror(errno));
        return -1;
    }
    return h_read_response(c, m);
}

/* The worker threads crossfade started (its log says so at start-up). */
static unsigned
workers_of(const struct h_proxy *p)
{
    const char *line = h_log_line(p->proc->log_path, "event=workers_started");
    const char *at = line != NULL ? strstr(line, " workers=") : NULL;

    cr_assert(ne(ptr, (void *)at, NULL), "no event=workers_started in crossfade's log:\n%s",
              h_read_file(p->proc->log_path, NULL));
    return (unsigned)strtoul(at + strlen(" workers="), NULL, 10);
}

#define JSON_PATH_MAX 2048 /* docs/config.md: a longer path is cut there */

/*
 * Known requests give known values: the path as received (a quote, a backslash and a %-escape
 * escaped, not decoded), the status, where the split sent it and who served it, the key rule that
 * decided, a bucket in range, test false; a path longer than the cut is cut at exactly 2048
 * bytes. The parser refuses a raw byte from 0x80 in a target (400, before any transaction), so
 * that escape is the unit test's (tests/unit/test_xf_json.c).
 */
Test(access_log, json_lines_parse_and_hold_the_fields_of_known_requests, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p =
        h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}},
                                             .split_extra = "  key: [\"header:X-User\"]\n",
                                             .extra_yaml = "access_log_format: json\n"});
    struct h_conn *c = h_connect(p->port);
    char *long_target = h_alloc(JSON_PATH_MAX + 501);
    const char *line, *path;
    long bucket;
    struct h_msg m;

    long_target[0] = '/';
    memset(long_target + 1, 'l', JSON_PATH_MAX + 499);
    cr_assert(eq(int, h_get(c, "/json/a%20b?q=\"x\"\\y", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(int, get_with(c, "/status/503", "X-User: alice\r\n", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 503));
    cr_assert(eq(int, h_get(c, long_target, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    h_proxy_finish(p); /* the log is buffered: all of it is written by the time crossfade exits */
    cr_assert(eq(sz, json_lines((const char *[]){p->access_log, NULL}), (size_t)3));

    line = json_line_of(p, "/json/");
    cr_expect(ne(ptr, strstr(line, "{\"time\":\"20"), NULL), "%s", line);
    cr_expect(ne(ptr,
                 strstr(line, "\"client\":\"127.0.0.1\",\"method\":\"GET\","
                              "\"path\":\"/json/a%20b?q=\\\"x\\\"\\\\y\",\"status\":200,"),
                 NULL),
              "%s", line);
    cr_expect(ne(ptr,
                 strstr(line, h_fmt("\"cluster\":\"x\",\"assigned\":\"x\",\"node\":\"%s\","
                                    "\"attempts\":1,\"key\":\"ip\",\"reason\":\"weight\",",
                                    u->addr)),
                 NULL),
              "%s", line);
    cr_expect(eq(ptr, strstr(line, "\"ttfb_ms\":null"), NULL), "a served request has a ttfb: %s",
              line);
    bucket = strtol(json_number(line, "bucket"), NULL, 10);
    cr_expect(ge(long, bucket, 0L), "bucket %ld: %s", bucket, line);
    cr_expect(le(long, bucket, 9999L), "bucket %ld: %s", bucket, line);
    cr_expect(ne(ptr, strstr(line, ",\"test\":false}"), NULL), "test false, last: %s", line);

    line = json_line_of(p, "/status/503");
    cr_expect(ne(ptr, strstr(line, "\"status\":503,"), NULL), "%s", line);
    cr_expect(ne(ptr, strstr(line, "\"key\":\"header:x-user\","), NULL), "%s", line);

    line = json_line_of(p, "/llll");
    path = strstr(line, "\"path\":\"") + strlen("\"path\":\"");
    cr_expect(eq(sz, strcspn(path, "\""), (size_t)JSON_PATH_MAX), "the path is not cut at %d: %s",
              JSON_PATH_MAX, line);
    cr_expect(eq(int, strncmp(path, long_target, JSON_PATH_MAX), 0), "%s", line);
}

#define ROT_N 30 /* requests on each side of the rotation */

/*
 * What logrotate does (rename, then SIGUSR1) keeps the json format, and loses nothing: the
 * renamed file has every line from before and only those, the new one every line from after,
 * both valid json lines. Each request on a new connection, so that every worker writes some.
 */
Test(access_log, json_lines_survive_a_rotation_with_sigusr1_and_none_is_lost,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p = h_proxy_start(
        &(struct h_proxy_opts){.x = {{u->port}}, .extra_yaml = "access_log_format: json\n"});
    const char *rotated = h_path("access.log.1");
    unsigned workers = workers_of(p);
    uint64_t deadline;
    struct h_msg m;

    for (int i = 0; i < ROT_N; i++) {
        struct h_conn *c = h_connect(p->port);

        cr_assert(eq(int, h_get(c, h_fmt("/rot/before/%d", i), &m), 0), "%s", m.error);
        cr_assert(eq(int, m.status, 200));
        h_close(c);
    }
    cr_assert(eq(int, rename(p->access_log, rotated), 0), "rename %s: %s", p->access_log,
              strerror(errno));
    cr_assert(eq(int, kill(p->proc->pid, SIGUSR1), 0));
    /* Every worker reopens on its own: the requests after wait for all of them. */
    deadline = h_now_ms() + 5000;
    while (h_log_count(p->proc->log_path, "event=reopened") < workers && h_now_ms() < deadline)
        h_sleep_ms(20);
    cr_assert(eq(sz, h_log_count(p->proc->log_path, "event=reopened"), (size_t)workers),
              "%u workers, crossfade's log:\n%s", workers, h_read_file(p->proc->log_path, NULL));
    for (int i = 0; i < ROT_N; i++) {
        struct h_conn *c = h_connect(p->port);

        cr_assert(eq(int, h_get(c, h_fmt("/rot/after/%d", i), &m), 0), "%s", m.error);
        cr_assert(eq(int, m.status, 200));
        h_close(c);
    }
    h_proxy_finish(p);
    cr_assert(eq(sz, json_lines((const char *[]){rotated, NULL}), (size_t)ROT_N));
    cr_assert(eq(sz, json_lines((const char *[]){p->access_log, NULL}), (size_t)ROT_N));
    cr_expect(eq(sz, h_log_count(rotated, "\"path\":\"/rot/before/"), (size_t)ROT_N), "%s",
              h_read_file(rotated, NULL));
    cr_expect(eq(sz, h_log_count(p->access_log, "\"path\":\"/rot/after/"), (size_t)ROT_N), "%s",
              h_read_file(p->access_log, NULL));
}

#define SAMPLE_ALL   420 /* requests: every 21st gets a 503 from the node, 20 in all */
#define SAMPLE_EVERY 21
/* Lines kept of the 400 good ones at access_log_sample: 0.1: binomial, mean 40, sd 6; the bounds
 * are 5 sd away (a false failure about once in a million runs). */
#define SAMPLE_OK_MIN 10
#define SAMPLE_OK_MAX 90

/*
 * access_log_sample: 0.1 keeps about a tenth of the good requests, and every 5xx whatever the
 * draw. The errors are spread out (one in 21) so that no run of 5xx ejects the node, and the
 * requests over four connections so that several workers draw.
 */
Test(access_log, a_sample_keeps_about_its_share_of_good_requests_and_every_error,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{u->port}}, .extra_yaml = "access_log_format: json\naccess_log_sample: 0.1\n"});
    struct h_conn *c[4];
    size_t ok, errors, lines;
    struct h_msg m;

    for (int k = 0; k < 4; k++)
        c[k] = h_connect(p->port);
    for (int i = 0; i < SAMPLE_ALL; i++) {
        bool error = i % SAMPLE_EVERY == SAMPLE_EVERY - 1;

        cr_assert(
            eq(int, h_get(c[i % 4], error ? "/status/503" : h_fmt("/sample/ok/%d", i), &m), 0),
            "%s", m.error);
        cr_assert(eq(int, m.status, error ? 503 : 200));
    }
    h_proxy_finish(p);
    lines = json_lines((const char *[]){p->access_log, NULL});
    errors = h_log_count(p->access_log, "\"status\":503,");
    ok = h_log_count(p->access_log, "\"path\":\"/sample/ok/");
    cr_expect(eq(sz, errors, (size_t)(SAMPLE_ALL / SAMPLE_EVERY)), "every 5xx is logged");
    cr_expect(ge(sz, ok, (size_t)SAMPLE_OK_MIN), "%zu good requests logged of %d at 0.1", ok,
              SAMPLE_ALL - SAMPLE_ALL / SAMPLE_EVERY);
    cr_expect(le(sz, ok, (size_t)SAMPLE_OK_MAX), "%zu good requests logged of %d at 0.1", ok,
              SAMPLE_ALL - SAMPLE_ALL / SAMPLE_EVERY);
    cr_expect(eq(sz, lines, ok + errors), "no other line");
}

/* A reload that changes only the format applies it to the next request; lines before stay text. */
Test(access_log, a_reload_to_json_writes_the_next_requests_as_json, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy_opts o = {.x = {{u->port}}, .y = {{h_free_port()}}};
    struct h_proxy *p = h_proxy_start(&o);
    struct h_conn *c = h_connect(p->port);
    const char *next, *line;
    struct h_msg m;

    cr_assert(eq(int, h_get(c, "/reload/text", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    o.extra_yaml = "access_log_format: json\n";
    next = h_proxy_write_config("next.yaml", &o, p->port);
    cr_assert(eq(int, rename(next, p->cfg_path), 0), "rename: %s", strerror(errno));
    cr_assert(eq(int, kill(p->proc->pid, SIGHUP), 0));
    /* Logged once every worker has taken the new config. */
    cr_assert(h_log_wait(p->proc->log_path, "access_log changed", H_IO_TIMEOUT_MS),
              "no reload with access_log changed in crossfade's log:\n%s",
              h_read_file(p->proc->log_path, NULL));
    line = h_log_line(p->proc->log_path, "access_log changed");
    cr_assert(ne(ptr, strstr(line, "event=reload result=ok"), NULL), "%s", line);
    cr_assert(eq(int, h_get(c, "/reload/json", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    h_proxy_finish(p);
    cr_expect(eq(sz, h_log_count(p->access_log, "\"GET /reload/text HTTP/1.1\" 200 "), (size_t)1),
              "%s", h_read_file(p->access_log, NULL));
    line = json_line_of(p, "/reload/json");
    cr_expect(eq(int, strncmp(line, "{\"time\":\"", 9), 0), "%s", line);
    cr_expect(eq(sz, count_lines(h_read_file(p->access_log, NULL)), (size_t)2), "%s",
              h_read_file(p->access_log, NULL));
}

/* A bad value stops crossfade -t with the file, line and column of the value, and the key. */
Test(access_log, a_bad_format_or_sample_is_refused_with_file_line_and_column,
     .timeout = H_TEST_TIMEOUT)
{
    static const struct {
        const char *yaml, *message;
    } bad[] = {
        {"access_log_format: xml\n", "access_log_format: expected text or json, got \"xml\""},
        {"access_log_sample: 2\n", "access_log_sample: expected a share above 0 and at most 1, "
                                   "as a fraction (0.01) or a percentage (1%), got \"2\""},
        {"access_log_sample: 0%\n", "access_log_sample: expected a share above 0 and at most 1"},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *cfg = h_proxy_write_config(
            "bad.yaml", &(struct h_proxy_opts){.x = {{h_free_port()}}, .extra_yaml = bad[i].yaml},
            h_free_port());
        const char *text = h_read_file(cfg, NULL);
        const char *at = strstr(text, bad[i].yaml);
        char *err = NULL;
        int line = 1, code;

        cr_assert(ne(ptr, (void *)at, NULL));
        for (const char *q = text; q < at; q++)
            line += *q == '\n';
        code = h_run((char *[]){(char *)h_bin("crossfade"), "-t", "-c", (char *)cfg, NULL}, 10000,
                     NULL, &err);
        cr_assert(eq(int, code, 2), "crossfade -t exited %d for %s", code, bad[i].yaml);
        cr_expect(ne(ptr, strstr(err, h_fmt("bad.yaml:%d:20: %s", line, bad[i].message)), NULL),
                  "wanted bad.yaml:%d:20: %s\ngot: %s", line, bad[i].message, err);
    }
}
