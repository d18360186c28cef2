/* tests/integration/test_reload.c -- configuration reload on SIGHUP and on the admin socket's
 * `reload`: a valid file is applied without dropping a connection or a request and keeps the
 * runtime state; an invalid file, or a change that cannot be made live, changes nothing. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/harness.h"

TestSuite(reload, .init = h_setup, .fini = h_teardown);

#define SPLIT "  key: [\"header:X-Key\"]\n" /* split.key: the tests route by X-Key */

/* ------------------------------------------------------------------ the config file */

/* `text` with the first `from` replaced by `to` (harness-owned); asserts that `from` is there. */
static const char *
replace_once(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);

    cr_assert(ne(ptr, (void *)at, NULL), "\"%s\" is not in the config:\n%s", from, text);
    return h_fmt("%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
}

/*
 * The harness's config for `o` on p's port, as text (harness-owned), with a second proxy
 * listener on 127.0.0.1:more_port unless more_port is 0. The admin socket, the access log and
 * every other path stay those p started with, so only what `o` changes differs. `o` should name
 * y's nodes: without them the harness writes a fresh unused port, which is a node change.
 */
static const char *
config_text(const struct h_proxy *p, const struct h_proxy_opts *o, int more_port)
{
    const char *text = h_read_file(h_proxy_write_config("draft.yaml", o, p->port), NULL);

    cr_assert(ne(ptr, (void *)text, NULL), "cannot read back the config written for the test");
    if (more_port != 0)
        text = replace_once(text, "listen:\n",
                            h_fmt("listen:\n  - address: \"127.0.0.1:%d\"\n", more_port));
    return text;
}

/*
 * Puts `text` in place of the config file crossfade was started with (-c p->cfg_path), which
 * SIGHUP and `reload` read again. Written aside and renamed over it, as a careful deployment
 * does: crossfade never sees half a file.
 */
static void
install_config(const struct h_proxy *p, const char *text)
{
    const char *tmp = h_write_file("next.yaml", "%s", text);

    cr_assert(eq(int, rename(tmp, p->cfg_path), 0), "rename %s to %s: %s", tmp, p->cfg_path,
              strerror(errno));
}

/*
 * What `crossfade -t` says of the file now at p->cfg_path, which must be invalid: its first line
 * of error ("FILE:LINE:COL: what"), harness-owned. *where gets its "FILE:LINE:COL:" part. Asserts
 * that -t rejects the file and that the line starts with the path, a line and a column.
 */
static const char *
check_mode_error(const struct h_proxy *p, const char **where)
{
    char *err = NULL;
    int code = h_run((char *[]){(char *)h_bin("crossfade"), "-t", "-c", (char *)p->cfg_path, NULL},
                     10000, NULL, &err);
    size_t n = strlen(p->cfg_path);
    const char *line, *q;

    cr_assert(eq(int, code, 2), "crossfade -t exited %d on the invalid file:\n%s", code,
              err != NULL ? err : "");
    cr_assert(ne(ptr, err, NULL));
    line = h_fmt("%.*s", (int)strcspn(err, "\n"), err);
    cr_assert(strncmp(line, p->cfg_path, n) == 0 && line[n] == ':',
              "crossfade -t does not start with the file's path: %s", line);
    q = line + n + 1;
    for (int part = 0; part < 2; part++) {
        cr_assert(ne(int, isdigit((unsigned char)*q), 0), "no FILE:LINE:COL in: %s", line);
        while (isdigit((unsigned char)*q))
            q++;
        cr_assert(eq(int, *q, ':'), "no FILE:LINE:COL in: %s", line);
        q++;
    }
    *where = h_fmt("%.*s", (int)(q - line), line);
    return line;
}

/* ------------------------------------------------------------------ replies and log lines */

/* The first line of an admin reply, without its LF (harness-owned). */
static const char *
first_line(const char *reply)
{
    return h_fmt("%.*s", (int)strcspn(reply, "\n"), reply);
}

/* Sends `reload` and asserts that its first line is `want`: the summary of what changed. */
static void
reload_ok(int adm, const char *want)
{
    char *reply = h_admin_cmd(adm, "reload");

    cr_assert(eq(str, (char *)first_line(reply), (char *)want), "reload answered:\n%s", reply);
}

/* Sends `reload` and returns its reply after asserting that it is an error (first line starts
 * with "error: "). */
static const char *
reload_error(int adm)
{
    char *reply = h_admin_cmd(adm, "reload");

    cr_assert(eq(int, strncmp(reply, "error: ", 7), 0),
              "reload of a file that must be refused "
              "answered:\n%s",
              reply);
    return reply;
}

/* Whether `line` holds the word `field` ("result=ok"): after a space or at the start, before a
 * space or at the end, so "event=reload" does not match "event=reload_started". */
static bool
has_field(const char *line, const char *field)
{
    size_t n = strlen(field);

    for (const char *at = strstr(line, field); at != NULL; at = strstr(at + 1, field))
        if ((at == line || at[-1] == ' ') && (at[n] == '\0' || at[n] == ' ' || at[n] == '\n'))
            return true;
    return false;
}

/* Whether a log line is the outcome of a reload: event=reload with result=ok, failed or refused
 * (a line the reload may log on the way, without a result, is not counted). */
static bool
is_reload_outcome(const char *line)
{
    return has_field(line, "event=reload") &&
           (has_field(line, "result=ok") || has_field(line, "result=failed") ||
            has_field(line, "result=refused"));
}

/* The nth (from 1) reload outcome line of crossfade's log, without its LF (harness-owned), or
 * NULL when fewer than n are there. Reads with getline, not harness memory: it is polled. */
static const char *
reload_outcome(const struct h_proxy *p, size_t nth)
{
    FILE *f = fopen(p->proc->log_path, "re");
    const char *found = NULL;
    char *line = NULL;
    size_t cap = 0, seen = 0;
    ssize_t n;

    if (f == NULL)
        return NULL;
    while (found == NULL && (n = getline(&line, &cap, f)) != -1)
        if (is_reload_outcome(line) && ++seen == nth)
            found = h_fmt("%.*s", (int)(n > 0 && line[n - 1] == '\n' ? n - 1 : n), line);
    free(line);
    fclose(f);
    return found;
}

/*
 * Sends SIGHUP and waits (at most H_IO_TIMEOUT_MS) for the log line that says how that reload
 * ended, the nth of the test; asserts that it came and that its result is `result` ("ok" or
 * "failed"). Returns the line.
 */
static const char *
sighup(const struct h_proxy *p, size_t nth, const char *result)
{
    uint64_t deadline = h_now_ms() + H_IO_TIMEOUT_MS;
    const char *line;

    cr_assert(eq(int, kill(p->proc->pid, SIGHUP), 0), "kill: %s", strerror(errno));
    while ((line = reload_outcome(p, nth)) == NULL) {
        cr_assert(h_proc_alive(p->proc), "crossfade died after SIGHUP (code %d)", p->proc->code);
        if (h_now_ms() >= deadline)
            cr_fatal("no reload outcome line #%zu (event=reload result=...) in crossfade's log %d "
                     "ms after SIGHUP",
                     nth, H_IO_TIMEOUT_MS);
        h_sleep_ms(20);
    }
    cr_assert(has_field(line, h_fmt("result=%s", result)), "SIGHUP: expected result=%s, got: %s",
              result, line);
    return line;
}

/* ------------------------------------------------------------------ traffic */

/* Polls connects to port until one is refused (true) or timeout_ms passed (false). */
static bool
wait_refused(int port, int timeout_ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;

    while (h_try_connect(port, 200) != ECONNREFUSED) {
        if (h_now_ms() >= deadline)
            return false;
        h_sleep_ms(20);
    }
    return true;
}

/* The requests u received so far (xf-upstream's own count). */
static uint64_t
requests_of(struct h_upstream *u)
{
    uint64_t conns, reqs;

    h_upstream_counters(u, &conns, &reqs);
    return reqs;
}

/* Starts bin/xfbench on p: 2 threads, 8 keep-alive connections, keys consumer-1..2000 in X-Key,
 * for up to 60 s (the test ends it with SIGINT); its JSON report goes to run.json. */
static struct h_proc *
load_start(const struct h_proxy *p)
{
    char *argv[] = {(char *)h_bin("xfbench"),
                    "-q",
                    "-t",
                    "2",
                    "-c",
                    "8",
                    "-d",
                    "60s",
                    "--keys",
                    "2000",
                    "--key-header",
                    "X-Key",
                    "--timeout",
                    "5s",
                    "--json",
                    (char *)h_path("run.json"),
                    (char *)h_fmt("http://127.0.0.1:%d/", p->port),
                    NULL};

    return h_spawn("xfbench", argv, h_path("xfbench.log"), NULL);
}

/* The number after "KEY": at its first place in xfbench's JSON (the totals come first). */
static double
json_total(const char *json, const char *key)
{
    const char *k = h_fmt("\"%s\":", key), *at = strstr(json, k);

    cr_assert(ne(ptr, (void *)at, NULL), "no %s in xfbench's JSON:\n%s", k, json);
    return strtod(at + strlen(k), NULL);
}

/* ------------------------------------------------------------------ the tests */

/*
 * The reload under load: with workers: 2, eight keep-alive connections send GETs through
 * crossfade with weight 100 to y while a first SIGHUP adds y2 and a second one removes y1.
 * Not one request may fail; y2 must take its share of y once added (two nodes of weight 1, keys
 * hashed: about half); y1 must take no new request once removed.
 */
Test(reload, sighup_under_keep_alive_load_adds_then_removes_a_y_node_without_a_failed_request,
     .timeout = 90)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *y1 = h_upstream_start("y1", NULL),
                      *y2 = h_upstream_start("y2", NULL);
    struct h_proxy_opts o = {.x = {{x1->port}},
                             .y = {{y1->port}},
                             .weight = "100",
                             .split_extra = SPLIT,
                             .extra_yaml = "workers: 2\n"};
    struct h_proxy *p = h_proxy_start(&o);
    struct h_proc *bench = load_start(p);
    uint64_t y1_at, y2_at, y1_now, y2_now, deadline;
    const char *line;
    double share;
    char *json;
    int code;

    cr_assert(h_upstream_wait_requests(y1, 200, H_IO_TIMEOUT_MS), "the load did not reach y1");

    /* 1. Add y2. */
    o.y[1].port = y2->port;
    install_config(p, config_text(p, &o, 0));
    line = sighup(p, 1, "ok");
    cr_assert(ne(ptr, strstr(line, "listeners +0 -0; x nodes +0 -0; y nodes +1 -0"), NULL),
              "the reload's log line does not give its summary: %s", line);
    /* y2's share of what y receives from now on, over 1000 requests at least: the 2000 keys
     * hash about evenly over two nodes of weight 1; 30 % to 70 % leaves room for the hash. */
    y1_at = requests_of(y1);
    y2_at = requests_of(y2);
    deadline = h_now_ms() + H_IO_TIMEOUT_MS;
    do {
        if (h_now_ms() >= deadline)
            cr_fatal("y received fewer than 1000 requests in %d ms after the reload",
                     H_IO_TIMEOUT_MS);
        h_sleep_ms(20);
        y1_now = requests_of(y1);
        y2_now = requests_of(y2);
    } while ((y1_now - y1_at) + (y2_now - y2_at) < 1000);
    share = (double)(y2_now - y2_at) / (double)((y1_now - y1_at) + (y2_now - y2_at));
    cr_assert(ge(dbl, share, 0.3), "the added node got %.1f%% of y's requests (y1 %llu, y2 %llu)",
              share * 100, (unsigned long long)(y1_now - y1_at),
              (unsigned long long)(y2_now - y2_at));
    cr_assert(le(dbl, share, 0.7), "the added node got %.1f%% of y's requests (y1 %llu, y2 %llu)",
              share * 100, (unsigned long long)(y1_now - y1_at),
              (unsigned long long)(y2_now - y2_at));

    /* 2. Remove y1. */
    o.y[0].port = y2->port;
    o.y[1].port = 0;
    install_config(p, config_text(p, &o, 0));
    line = sighup(p, 2, "ok");
    cr_assert(ne(ptr, strstr(line, "listeners +0 -0; x nodes +0 -0; y nodes +0 -1"), NULL),
              "the reload's log line does not give its summary: %s", line);
    /* Once the reload is logged, y1 may still get the requests that were on their way (at most
     * one per connection; twice that for the moment each worker takes the new configuration),
     * then nothing while y2 takes 1000 more. */
    y1_at = requests_of(y1);
    y2_at = requests_of(y2);
    cr_assert(h_upstream_wait_requests(y2, y2_at + 1000, H_IO_TIMEOUT_MS),
              "y2 did not take the load after y1 was removed");
    y1_now = requests_of(y1);
    cr_assert(le(u64, y1_now - y1_at, (uint64_t)16),
              "the removed node y1 received %llu requests after its reload was logged",
              (unsigned long long)(y1_now - y1_at));

    /* The load ran across both reloads: it is still running now, and no request failed. */
    cr_assert(h_proc_alive(bench), "xfbench ended before the reloads were over");
    code = h_proc_stop(bench, SIGINT, 10000);
    cr_assert(eq(int, code, 0), "xfbench exited %d after SIGINT: see xfbench.log", code);
    json = h_read_file(h_path("run.json"), NULL);
    cr_assert(ne(ptr, json, NULL), "xfbench wrote no JSON report");
    cr_assert(gt(dbl, json_total(json, "responses"), 2000.0), "too few responses:\n%s", json);
    cr_assert(eq(dbl, json_total(json, "errors"), 0.0), "requests failed during the reloads:\n%s",
              json);
    cr_assert(eq(sz, h_log_count(p->proc->log_path, "result=failed"), (size_t)0),
              "a reload failed: %s", h_log_line(p->proc->log_path, "result=failed"));
    h_proxy_finish(p);
}

/*
 * Listeners on `reload`: an added one accepts and serves once the reply came; a removed one
 * refuses new connections, while a keep-alive connection opened on it before still gets its
 * next request answered.
 */
Test(reload, reload_opens_an_added_listener_and_a_removed_one_lets_its_open_connection_finish,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *y1 = h_upstream_start("y1", NULL);
    struct h_proxy_opts o = {.x = {{x1->port}}, .y = {{y1->port}}};
    struct h_proxy *p = h_proxy_start(&o);
    int adm = h_admin_connect(p), more = h_free_port();
    struct h_conn *main_conn = h_connect(p->port), *kept;
    int err;

    cr_assert(eq(str, (char *)h_served_by(main_conn, NULL), "x1"));
    cr_assert(eq(int, h_try_connect(more, 1000), ECONNREFUSED), "port %d is taken already", more);

    install_config(p, config_text(p, &o, more));
    reload_ok(adm, "ok: listeners +1 -0; x nodes +0 -0; y nodes +0 -0");
    err = h_try_connect(more, 1000);
    cr_assert(eq(int, err, 0),
              "the added listener 127.0.0.1:%d does not accept after the reply "
              "(%s)",
              more, strerror(err));
    kept = h_connect(more);
    cr_assert(eq(str, (char *)h_served_by(kept, NULL), "x1"), "the added listener does not proxy");
    /* The connection open on the first listener did not notice. */
    cr_assert(eq(str, (char *)h_served_by(main_conn, NULL), "x1"));

    /* Remove it again, with `kept` open and idle on it. */
    install_config(p, config_text(p, &o, 0));
    reload_ok(adm, "ok: listeners +0 -1; x nodes +0 -0; y nodes +0 -0");
    cr_assert(wait_refused(more, 5000),
              "the removed listener 127.0.0.1:%d still accepts 5 s after the reload", more);
    cr_assert(eq(str, (char *)h_served_by(kept, NULL), "x1"),
              "the keep-alive connection on the removed listener was not served");
    cr_assert(eq(str, (char *)h_served_by(main_conn, NULL), "x1"));
    cr_assert(eq(str, (char *)h_served_by(h_connect(p->port), NULL), "x1"));
    h_proxy_finish(p);
}

/*
 * `reload` of invalid files -- a YAML syntax error, an unknown key, a value out of range --
 * answers "error: " with the message of `crossfade -t` (FILE:LINE:COL: ...) and changes nothing:
 * `show config` is the same, the listener the unknown-key file adds does not open, and the
 * connection open before and new ones are served.
 */
Test(reload, reload_of_an_invalid_file_answers_file_line_column_and_changes_nothing,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *y1 = h_upstream_start("y1", NULL);
    struct h_proxy_opts o = {.x = {{x1->port}}, .y = {{y1->port}}};
    struct h_proxy *p = h_proxy_start(&o);
    int adm = h_admin_connect(p), more = h_free_port();
    struct h_conn *c = h_connect(p->port);
    char *config_before = h_admin_cmd(adm, "show config");
    struct h_proxy_opts unknown = o, out_of_range = o;
    const char *bad[3];

    cr_assert(eq(str, (char *)h_served_by(c, NULL), "x1"));
    /* An unclosed flow sequence; a key that does not exist (with a listener that must not open);
     * a node weight past 1000. */
    bad[0] = replace_once(config_text(p, &o, 0), "clusters:\n", "oops: [1, 2\nclusters:\n");
    unknown.extra_yaml = "frobnicate: 1\n";
    bad[1] = config_text(p, &unknown, more);
    out_of_range.y[0].weight = 5000;
    bad[2] = config_text(p, &out_of_range, 0);
    for (int i = 0; i < 3; i++) {
        const char *where, *message, *reply;

        install_config(p, bad[i]);
        message = check_mode_error(p, &where);
        reply = reload_error(adm);
        cr_assert(ne(ptr, strstr(reply, where), NULL), "file %d: the reply does not name %s:\n%s",
                  i, where, reply);
        cr_assert(ne(ptr, strstr(reply, message), NULL),
                  "file %d: the reply does not give crossfade -t's message \"%s\":\n%s", i, message,
                  reply);
        cr_assert(eq(str, h_admin_cmd(adm, "show config"), config_before),
                  "file %d: show config changed after a refused reload", i);
        cr_assert(eq(int, h_try_connect(more, 1000), ECONNREFUSED),
                  "file %d: a listener of the invalid file opened", i);
        cr_assert(eq(str, (char *)h_served_by(c, NULL), "x1"), "file %d", i);
        cr_assert(eq(str, (char *)h_served_by(h_connect(p->port), NULL), "x1"), "file %d", i);
    }
    cr_assert(h_proc_alive(p->proc));
    h_proxy_finish(p);
}

/*
 * SIGHUP with an invalid file logs event=reload result=failed with FILE:LINE:COL, and crossfade
 * goes on serving the old configuration; once the file is fixed, the next SIGHUP applies it.
 */
Test(reload, sighup_with_an_invalid_file_logs_the_error_and_keeps_serving_then_a_fixed_file_applies,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *y1 = h_upstream_start("y1", NULL),
                      *y2 = h_upstream_start("y2", NULL);
    struct h_proxy_opts o = {.x = {{x1->port}}, .y = {{y1->port}}};
    struct h_proxy *p = h_proxy_start(&o);
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    char *config_before = h_admin_cmd(adm, "show config");
    struct h_proxy_opts bad = o, fixed = o;
    const char *where, *line;

    cr_assert(eq(str, (char *)h_served_by(c, NULL), "x1"));
    bad.extra_yaml = "frobnicate: 1\n";
    bad.y[1].port = y2->port;
    install_config(p, config_text(p, &bad, 0));
    check_mode_error(p, &where);
    line = sighup(p, 1, "failed");
    cr_assert(ne(ptr, strstr(line, where), NULL), "the log line does not name %s: %s", where, line);
    cr_assert(h_proc_alive(p->proc), "crossfade died of a reload that failed");
    cr_assert(eq(str, h_admin_cmd(adm, "show config"), config_before),
              "show config changed after a failed reload");
    cr_assert(eq(ptr, (void *)h_admin_node_line(adm, "y", y2->addr), NULL),
              "a node of the invalid file was added");
    cr_assert(eq(str, (char *)h_served_by(c, NULL), "x1"));
    cr_assert(eq(str, (char *)h_served_by(h_connect(p->port), NULL), "x1"));

    /* The same change without the unknown key. */
    fixed.y[1].port = y2->port;
    install_config(p, config_text(p, &fixed, 0));
    line = sighup(p, 2, "ok");
    cr_assert(ne(ptr, strstr(line, "listeners +0 -0; x nodes +0 -0; y nodes +1 -0"), NULL),
              "the reload's log line does not give its summary: %s", line);
    cr_assert(ne(ptr, (void *)h_admin_node_line(adm, "y", y2->addr), NULL),
              "the fixed file's node is not in show nodes:\n%s", h_admin_cmd(adm, "show nodes"));
    cr_assert(eq(str, (char *)h_served_by(c, NULL), "x1"));
    h_proxy_finish(p);
}

/*
 * Changes that cannot be made while crossfade runs -- the number of workers, the state file --
 * are refused with a reason that names the key, and nothing of the file is applied: neither its
 * added listener nor its added node, nor the state file.
 */
Test(reload, reload_changing_workers_or_the_state_file_is_refused_naming_the_key,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *y1 = h_upstream_start("y1", NULL),
                      *y2 = h_upstream_start("y2", NULL);
    struct h_proxy_opts o = {.x = {{x1->port}}, .y = {{y1->port}}, .extra_yaml = "workers: 2\n"};
    struct h_proxy *p = h_proxy_start(&o);
    int adm = h_admin_connect(p), more = h_free_port();
    struct h_conn *c = h_connect(p->port);
    char *config_before = h_admin_cmd(adm, "show config");
    const char *state = h_path("crossfade.state");
    const char *const extra[2] = {"workers: 3\n", h_fmt("workers: 2\nstate_file: \"%s\"\n", state)};
    const char *const key[2] = {"workers", "state_file"};

    cr_assert(ne(ptr, strstr(h_admin_cmd(adm, "show version"), "\nworkers 2\n"), NULL));
    for (int i = 0; i < 2; i++) {
        struct h_proxy_opts next = o;
        const char *reply;

        next.extra_yaml = extra[i];
        next.y[1].port = y2->port;
        install_config(p, config_text(p, &next, more));
        reply = reload_error(adm);
        cr_assert(ne(ptr, strstr(reply, key[i]), NULL), "the refusal does not name %s:\n%s", key[i],
                  reply);
        cr_assert(eq(str, h_admin_cmd(adm, "show config"), config_before),
                  "show config changed after a refused reload (%s)", key[i]);
        cr_assert(ne(ptr, strstr(h_admin_cmd(adm, "show version"), "\nworkers 2\n"), NULL));
        cr_assert(eq(int, h_try_connect(more, 1000), ECONNREFUSED),
                  "the listener of the refused file opened (%s)", key[i]);
        cr_assert(eq(ptr, (void *)h_admin_node_line(adm, "y", y2->addr), NULL),
                  "the node of the refused file was added (%s)", key[i]);
        cr_assert(eq(str, (char *)h_served_by(c, NULL), "x1"));
    }
    cr_assert(ne(int, access(state, F_OK), 0), "the refused state file %s was created", state);
    h_proxy_finish(p);
}

/*
 * SIGHUP with admin.socket moved is refused: the log says result=failed naming admin.socket,
 * the socket stays where it was (the open admin connection and a new one work), and nothing is
 * created at the new path.
 */
Test(reload, sighup_moving_the_admin_socket_is_refused_and_the_socket_stays,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *y1 = h_upstream_start("y1", NULL);
    struct h_proxy_opts o = {.x = {{x1->port}}, .y = {{y1->port}}};
    struct h_proxy *p = h_proxy_start(&o);
    int adm = h_admin_connect(p);
    char *config_before = h_admin_cmd(adm, "show config");
    const char *moved = h_path("moved.sock"), *line;

    install_config(p, replace_once(config_text(p, &o, 0), p->admin_socket, moved));
    line = sighup(p, 1, "failed");
    cr_assert(ne(ptr, strstr(line, "admin.socket"), NULL),
              "the log line does not name "
              "admin.socket: %s",
              line);
    cr_assert(eq(str, h_admin_cmd(adm, "show config"), config_before));
    cr_assert(eq(str, h_admin_cmd(h_admin_connect(p), "show config"), config_before),
              "a new connection to the admin socket does not work after the refused reload");
    cr_assert(ne(int, access(moved, F_OK), 0), "a socket was created at %s", moved);
    cr_assert(eq(str, (char *)h_served_by(h_connect(p->port), NULL), "x1"));
    h_proxy_finish(p);
}

/*
 * What the operator set at run time survives a reload that applies: the weight (the file still
 * says 0), a pin, the freeze, a drained node and a node added through the socket; and the
 * reload did apply (its node is there).
 */
Test(reload, reload_keeps_the_weight_pins_freeze_and_node_changes_made_at_run_time,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *x2 = h_upstream_start("x2", NULL),
                      *x3 = h_upstream_start("x3", NULL), *y1 = h_upstream_start("y1", NULL),
                      *y2 = h_upstream_start("y2", NULL);
    struct h_proxy_opts o = {
        .x = {{x1->port}, {x2->port}}, .y = {{y1->port}}, .weight = "0", .split_extra = SPLIT};
    struct h_proxy *p = h_proxy_start(&o);
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    const char *y_node, *reply;

    /* y can take 50 % (one y node against two x nodes): 30 is within it. */
    cr_assert(eq(str, h_admin_cmd(adm, "set weight 30"), "ok: weight y 30.00 (was 0.00)\n"));
    cr_assert(eq(str, h_admin_cmd(adm, "pin tester-7 y"), "ok: pinned \"tester-7\" to y\n"));
    reply = h_admin_cmd(adm, "freeze on");
    cr_assert(eq(int, strncmp(reply, "ok: freeze on", 13), 0), "freeze on: %s", reply);
    cr_assert(eq(str, h_admin_cmd(adm, h_fmt("drain node x/%s", x2->addr)),
                 h_fmt("ok: node x/%s draining (was up)\n", x2->addr)));
    cr_assert(eq(str, h_admin_cmd(adm, h_fmt("add node x %s weight 2", x3->addr)),
                 h_fmt("ok: added node x/%s weight 2\n", x3->addr)));

    o.y[1].port = y2->port;
    install_config(p, config_text(p, &o, 0));
    reload_ok(adm, "ok: listeners +0 -0; x nodes +0 -0; y nodes +1 -0");

    cr_assert(ne(ptr, (void *)h_admin_node_line(adm, "y", y2->addr), NULL),
              "the reload did not add y2:\n%s", h_admin_cmd(adm, "show nodes"));
    cr_assert(eq(str, h_admin_cmd(adm, "show weight"), "x 70.00\ny 30.00\n"),
              "the weight set at run time was not kept");
    reply = h_admin_cmd(adm, "show pins");
    cr_assert(ne(ptr, strstr(reply, "pin tester-7 y\n"), NULL), "the pin was lost:\n%s", reply);
    reply = h_admin_cmd(adm, "freeze show");
    cr_assert(eq(int, strncmp(reply, "freeze on", 9), 0), "the freeze was lost: %s", reply);
    cr_assert(
        eq(str, (char *)h_word(h_admin_node_line(adm, "x", x2->addr), H_NODE_STATE), "draining"),
        "the drained node is no longer draining:\n%s", h_admin_cmd(adm, "show nodes"));
    cr_assert(ne(ptr, (void *)h_admin_node_line(adm, "x", x3->addr), NULL),
              "the node added at run time is gone:\n%s", h_admin_cmd(adm, "show nodes"));
    /* And the pin still routes: tester-7 goes to y, to one of its two nodes. */
    y_node = h_served_by(c, "tester-7");
    cr_assert(strcmp(y_node, "y1") == 0 || strcmp(y_node, "y2") == 0, "the pinned key went to %s",
              y_node);
    h_proxy_finish(p);
}

/*
 * A reload that changes a timeout says so ("; timeouts changed") and applies it: a request the
 * node answers in 1 s passes with upstream_response 60s, and gets 504 once it is 300ms.
 */
Test(reload, reload_with_new_timeouts_says_timeouts_changed_and_applies_them,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *y1 = h_upstream_start("y1", NULL);
    struct h_proxy_opts o = {.x = {{x1->port}}, .y = {{y1->port}}};
    struct h_proxy *p = h_proxy_start(&o);
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    cr_assert(eq(int, h_get(c, "/delay/1000", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200), "before the reload: status %d", m.status);

    o.upstream_response_ms = 300;
    install_config(p, config_text(p, &o, 0));
    reload_ok(adm, "ok: listeners +0 -0; x nodes +0 -0; y nodes +0 -0; timeouts changed");
    cr_assert(eq(int, h_get(h_connect(p->port), "/delay/1000", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 504), "after the reload to upstream_response 300ms: status %d",
              m.status);
    cr_assert(eq(int, h_get(h_connect(p->port), "/", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    h_proxy_finish(p);
}

/*
 * A request in flight on a node that a reload removes finishes on that node: the reply does
 * not cut it, its response comes from the removed node, and the same key goes to the remaining
 * node afterwards.
 */
Test(reload, a_request_in_flight_on_a_node_removed_by_reload_finishes_there,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *y1 = h_upstream_start("y1", NULL),
                      *y2 = h_upstream_start("y2", NULL);
    struct h_proxy_opts o = {
        .x = {{x1->port}}, .y = {{y1->port}, {y2->port}}, .weight = "100", .split_extra = SPLIT};
    struct h_proxy *p = h_proxy_start(&o);
    int adm = h_admin_connect(p);
    const char *key = h_admin_key_for_node(adm, "header:X-Key", y1->addr, 0);
    struct h_conn *slow = h_connect(p->port);
    struct h_msg m;

    cr_assert(ne(ptr, (void *)key, NULL), "no key of the first 2000 goes to y1");
    cr_assert(
        eq(int,
           h_sendf(slow, "GET /delay/1500 HTTP/1.1\r\nHost: %s\r\nX-Key: %s\r\n\r\n", H_HOST, key),
           0));
    cr_assert(h_upstream_wait_requests(y1, 1, H_IO_TIMEOUT_MS), "the request did not reach y1");

    o.y[0].port = y2->port;
    o.y[1].port = 0;
    install_config(p, config_text(p, &o, 0));
    reload_ok(adm, "ok: listeners +0 -0; x nodes +0 -0; y nodes +0 -1");
    cr_assert(eq(int, h_read_response(slow, &m), 0), "the request in flight failed: %s", m.error);
    cr_assert(eq(int, m.status, 200), "the request in flight: status %d", m.status);
    cr_assert(eq(str, (char *)h_header(&m, "X-Upstream"), "y1"),
              "the request in flight was answered by %s", h_header(&m, "X-Upstream"));
    cr_assert(eq(str, (char *)h_served_by(h_connect(p->port), key), "y2"),
              "after the reload the key still goes to the removed node");
    h_proxy_finish(p);
}
