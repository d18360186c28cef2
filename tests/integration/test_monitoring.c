/* tests/integration/test_monitoring.c -- watching y against x (issue 14): admin.http's /metrics,
 * /api/stats, /healthz and status page, the guard, test traffic and preview weight. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/integration/harness.h"

TestSuite(monitoring, .init = h_setup, .fini = h_teardown);

#define MON_PROMTOOL "/usr/bin/promtool"
#define MON_PYTHON   "/usr/bin/python3"
#define MON_CHROMIUM "/usr/bin/chromium"

/* The split key of every test: xfbench's --key-header X-User sends a random one per request. */
#define MON_KEYS        "  key: [\"header:X-User\"]\n"
#define MON_TEST_HEADER "test_traffic: {header: X-Crossfade-Test}\n"
/* A short window: each second the guard judges the last five. */
#define MON_GUARD(min) "guard: {window: 5s, min_requests: " min "}\n"
/* The error rule alone (the latency rules cannot fire first on a stall of the machine), and
 * enough requests that 10 % of 500s is beyond doubt at the first verdict that counts. */
#define MON_GUARD_ERRORS "guard: {window: 5s, min_requests: 200, max_latency_ratio: 100}\n"
#define MON_ERRORS_MIN   200
/* No passive ejection: a y that answers 500s stays in service, for the guard to judge. */
#define MON_NO_EJECTION "    outlier: {failures: 0}\n"

/* One crossfade with admin.http, its upstreams "x1" and "y1", and an admin connection. */
struct mon {
    struct h_proxy *p;
    struct h_upstream *x, *y; /* NULL for twins (mon_start_twins) */
    int http;                 /* admin.http's port */
    int fd;                   /* the admin socket */
    unsigned n_loads;
};

/* crossfade with x on 127.0.0.1:xport and y on yport. */
static struct mon *
mon_start_ports(int xport, int yport, const char *weight, const char *extra_yaml)
{
    struct mon *m = h_alloc(sizeof(*m));

    m->http = h_free_port();
    m->p = h_proxy_start(&(struct h_proxy_opts){.x = {{xport}},
                                                .y = {{yport}},
                                                .weight = weight,
                                                .split_extra = MON_KEYS,
                                                .admin_http_port = m->http,
                                                .x_extra = MON_NO_EJECTION,
                                                .y_extra = MON_NO_EJECTION,
                                                .extra_yaml = extra_yaml});
    m->fd = h_admin_connect(m->p);
    return m;
}

static struct mon *
mon_start(const struct h_upstream_opts *xo, const struct h_upstream_opts *yo, const char *weight,
          const char *extra_yaml)
{
    struct h_upstream *x = h_upstream_start("x1", xo);
    struct h_upstream *y = h_upstream_start("y1", yo);
    struct mon *m = mon_start_ports(x->port, y->port, weight, extra_yaml);

    m->x = x;
    m->y = y;
    return m;
}

/*
 * x and y served by one xf-upstream process ("xy") listening on two ports, answering after
 * `delay_ms`: a y that is x. A stall of the machine (a busy CI host) delays both sides alike, so
 * any difference the guard sees is its own doing.
 */
static struct mon *
mon_start_twins(unsigned delay_ms, const char *weight, const char *extra_yaml)
{
    int xport = h_free_port(), yport = h_free_port();
    struct h_proc *u;
    uint64_t deadline = h_now_ms() + 10000;

    u = h_spawn("xf-upstream",
                (char *[]){(char *)h_bin("xf-upstream"), "--listen",
                           (char *)h_fmt("127.0.0.1:%d", xport), "--listen",
                           (char *)h_fmt("127.0.0.1:%d", yport), "--name", "xy", "--delay",
                           (char *)h_fmt("%u", delay_ms), "--quiet", NULL},
                h_path("upstream-xy.log"), NULL);
    while (h_try_connect(xport, 500) != 0 || h_try_connect(yport, 500) != 0) {
        cr_assert(h_proc_alive(u), "xf-upstream xy exited: %s",
                  h_read_file(h_path("upstream-xy.log"), NULL));
        cr_assert(lt(u64, h_now_ms(), deadline), "xf-upstream xy did not listen");
        h_sleep_ms(10);
    }
    return mon_start_ports(xport, yport, weight, extra_yaml);
}

/* ------------------------------------------------------------------ admin.http */

/*
 * Sends "METHOD target HTTP/1.1" with `headers` (more header lines, may be NULL) and `body` (may
 * be NULL) to admin.http on a new connection and reads the response into *r (no body for HEAD).
 * Returns its status.
 */
static int
mon_http(int port, const char *method, const char *target, const char *headers, const char *body,
         struct h_msg *r)
{
    struct h_conn *c = h_connect(port);

    cr_assert(eq(int,
                 h_sendf(c, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n%s", method, target,
                         headers != NULL ? headers : "", body != NULL ? body : ""),
                 0));
    cr_assert(eq(int,
                 h_read_response_ex(c, r, strcmp(method, "HEAD") == 0 ? H_NO_BODY : 0,
                                    H_IO_TIMEOUT_MS, NULL, NULL),
                 0),
              "%s %s on admin.http: %s", method, target, r->error);
    h_close(c);
    return r->status;
}

/* GET target on admin.http: asserts a 200 and returns the body. */
static char *
mon_get(const struct mon *m, const char *target)
{
    struct h_msg r;

    cr_assert(eq(int, mon_http(m->http, "GET", target, NULL, NULL, &r), 200), "GET %s: %d\n%s",
              target, r.status, r.body);
    return r.body;
}

/* The value of the sample `series` (name and labels as crossfade writes them) in an exposition,
 * or -1 when no line holds it. */
static double
mon_metric(const char *text, const char *series)
{
    size_t n = strlen(series);

    for (const char *line = text; line != NULL && *line != '\0';) {
        if (strncmp(line, series, n) == 0 && line[n] == ' ')
            return strtod(line + n + 1, NULL);
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    return -1.0;
}

static void
mon_expect_metric(const char *text, const char *series, double want)
{
    double got = mon_metric(text, series);

    cr_assert(got == want, "%s is %g (-1: absent), want %g", series, got, want);
}

/* A sample of /metrics now. */
static double
mon_now_metric(const struct mon *m, const char *series)
{
    return mon_metric(mon_get(m, "/metrics"), series);
}

/* The guard's verdicts so far, whatever they were. */
static double
mon_verdicts(const struct mon *m)
{
    const char *text = mon_get(m, "/metrics");

    return mon_metric(text, "crossfade_guard_verdicts_total{verdict=\"inconclusive\"}") +
           mon_metric(text, "crossfade_guard_verdicts_total{verdict=\"pass\"}") +
           mon_metric(text, "crossfade_guard_verdicts_total{verdict=\"fail\"}");
}

/* Waits until the guard has given `n` more verdicts than `since` (each one drives a held ramp
 * too): a second each. */
static void
mon_await_verdicts(const struct mon *m, double since, unsigned n)
{
    uint64_t deadline = h_now_ms() + 1500u * n + 2000u;

    while (mon_verdicts(m) < since + n) {
        cr_assert(lt(u64, h_now_ms(), deadline), "the guard gave no %u verdicts in %u ms", n,
                  1500u * n + 2000u);
        h_sleep_ms(50);
    }
}

/*
 * Parses `json` with Python's json module (the test fails when it is not JSON) and evaluates each
 * expression (NULL-terminated; `d` is the document): their values as JSON, one line each.
 */
static char *
mon_json(const char *json, ...)
{
    static const char script[] = "import json, sys\n"
                                 "d = json.load(open(sys.argv[1]))\n"
                                 "for e in sys.argv[2:]:\n"
                                 "    print(json.dumps(eval(e), sort_keys=True))\n";
    char *argv[32] = {MON_PYTHON, "-c", (char *)script,
                      (char *)h_write_file("stats.json", "%s", json)};
    size_t n = 4;
    const char *e;
    char *out, *err;
    va_list ap;
    int code;

    if (access(MON_PYTHON, X_OK) != 0)
        cr_skip_test(MON_PYTHON " is not installed: /api/stats cannot be parsed");
    va_start(ap, json);
    while ((e = va_arg(ap, const char *)) != NULL && n < 31)
        argv[n++] = (char *)e;
    va_end(ap);
    argv[n] = NULL;
    code = h_run(argv, 10000, &out, &err);
    cr_assert(eq(int, code, 0), "python3 could not read /api/stats as JSON:\n%s\n%s", err, json);
    return out;
}

/* ------------------------------------------------------------------ the admin socket */

/* y's weight in `show weight` ("25.00"). */
static const char *
mon_weight(const struct mon *m)
{
    const char *reply = h_admin_cmd(m->fd, "show weight");
    const char *y = strstr(reply, "\ny ");

    cr_assert(ne(ptr, (void *)y, NULL), "show weight: %s", reply);
    return h_fmt("%.*s", (int)strcspn(y + 3, "\n"), y + 3);
}

/* What `guard show` says now. */
struct mon_guard_view {
    const char *text;    /* the whole reply */
    const char *verdict; /* off, inconclusive, pass, fail */
    bool on, tripped;
    long long req[2], err[2]; /* x and y over the guard's last window */
};

/* The value of ` key=` in `text` up to a space or LF, or "". */
static const char *
mon_word_after(const char *text, const char *key)
{
    const char *at = strstr(text, key);

    if (at == NULL)
        return "";
    at += strlen(key);
    return h_fmt("%.*s", (int)strcspn(at, " \n"), at);
}

static void
mon_guard_read(const struct mon *m, struct mon_guard_view *g)
{
    const char *text = h_admin_cmd(m->fd, "guard show");

    cr_assert(eq(int, strncmp(text, "guard o", 7), 0), "guard show: %s", text);
    g->text = text;
    g->on = strncmp(text, "guard on ", 9) == 0;
    g->verdict = mon_word_after(text, " verdict=");
    g->tripped = strcmp(mon_word_after(text, " tripped="), "yes") == 0;
    for (int side = 0; side < 2; side++) {
        const char *line = strstr(text, side == 0 ? "\nx requests=" : "\ny requests=");

        cr_assert(ne(ptr, (void *)line, NULL), "guard show: %s", text);
        g->req[side] = atoll(mon_word_after(line, " requests="));
        g->err[side] = atoll(mon_word_after(line, " errors="));
    }
}

/* The line of `show events` that holds both needles, or NULL. */
static const char *
mon_event(const struct mon *m, const char *a, const char *b)
{
    const char *reply = h_admin_cmd(m->fd, "show events");

    for (const char *line = reply; *line != '\0';) {
        size_t len = strcspn(line, "\n");
        const char *copy = h_fmt("%.*s", (int)len, line);

        if (strstr(copy, a) != NULL && strstr(copy, b) != NULL)
            return copy;
        line += len + (line[len] == '\n');
    }
    return NULL;
}

/* Waits until y's weight is `want` (true) or timeout_ms passed (false). */
static bool
mon_wait_weight(const struct mon *m, const char *want, int timeout_ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;

    while (strcmp(mon_weight(m), want) != 0) {
        if (h_now_ms() >= deadline)
            return false;
        h_sleep_ms(20);
    }
    return true;
}

/* ------------------------------------------------------------------ traffic */

/*
 * Starts bin/xfbench against the proxy: an open loop at `rate` requests/s for `duration`, then
 * more arguments (NULL-terminated), then the URL with `path`. Without "--keys 0" among them,
 * each request carries a random split key in X-User.
 */
static struct h_proc *
mon_load(struct mon *m, const char *rate, const char *duration, const char *path, ...)
{
    char *argv[40] = {(char *)h_bin("xfbench"), "-q",        "-R", (char *)rate,   "-d",
                      (char *)duration,         "--timeout", "5s", "--key-header", "X-User"};
    size_t n = 10;
    const char *a;
    va_list ap;

    va_start(ap, path);
    while ((a = va_arg(ap, const char *)) != NULL && n < 38)
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n++] = h_fmt("http://127.0.0.1:%d%s", m->p->port, path);
    argv[n] = NULL;
    return h_spawn("xfbench", argv, h_path(h_fmt("xfbench%u.log", ++m->n_loads)), NULL);
}

/* Sends GET / with X-User: key (and more header lines) on a new connection; asserts a 200 (or
 * with `status` not NULL, returns it there) and returns the node that answered. */
static const char *
mon_send(int port, const char *key, const char *headers, int *status)
{
    struct h_conn *c = h_connect(port);
    struct h_msg r;
    const char *node;

    cr_assert(eq(int,
                 h_sendf(c, "GET / HTTP/1.1\r\nHost: " H_HOST "\r\nX-User: %s\r\n%s\r\n", key,
                         headers != NULL ? headers : ""),
                 0));
    cr_assert(eq(int, h_read_response(c, &r), 0), "%s", r.error);
    if (status != NULL)
        *status = r.status;
    else
        cr_assert(eq(int, r.status, 200), "key %s: status %d", key, r.status);
    node = h_header(&r, "X-Upstream");
    cr_assert(ne(ptr, (void *)node, NULL));
    h_close(c);
    return h_fmt("%s", node);
}

/* Sends `n` requests overridden to `side` (X-Crossfade-Target) on one connection. */
static void
mon_send_to(int port, const char *side, unsigned n)
{
    struct h_conn *c = h_connect(port);

    for (unsigned i = 0; i < n; i++) {
        struct h_msg r;

        cr_assert(
            eq(int,
               h_sendf(c, "GET / HTTP/1.1\r\nHost: " H_HOST "\r\nX-Crossfade-Target: %s\r\n\r\n",
                       side),
               0));
        cr_assert(eq(int, h_read_response(c, &r), 0), "%s", r.error);
        cr_assert(eq(int, r.status, 200));
        cr_assert(eq(str, (char *)h_header(&r, "X-Upstream"), h_fmt("%s1", side)));
    }
    h_close(c);
}

/* ------------------------------------------------------------------ /metrics */

Test(monitoring, metrics_count_known_traffic_exactly_and_pass_promtool, .timeout = H_TEST_TIMEOUT)
{
    struct mon *m = mon_start(NULL, NULL, "25", NULL);
    const char *x = h_fmt("127.0.0.1:%d", m->x->port), *y = h_fmt("127.0.0.1:%d", m->y->port);
    const char *text, *file;
    char *out, *err;
    int code;

    mon_send_to(m->p->port, "x", 20);
    mon_send_to(m->p->port, "y", 10);
    /* A transaction is counted as it ends, a moment after its response went out. */
    h_await_stat(m->fd, "x responses", "2xx", 20);
    h_await_stat(m->fd, "y responses", "2xx", 10);
    text = mon_get(m, "/metrics");
    mon_expect_metric(text, "crossfade_requests_total{cluster=\"x\"}", 20);
    mon_expect_metric(text, "crossfade_requests_total{cluster=\"y\"}", 10);
    mon_expect_metric(text, "crossfade_responses_total{cluster=\"x\",code_class=\"2xx\"}", 20);
    mon_expect_metric(text, "crossfade_responses_total{cluster=\"y\",code_class=\"2xx\"}", 10);
    mon_expect_metric(text, "crossfade_responses_total{cluster=\"x\",code_class=\"5xx\"}", 0);
    mon_expect_metric(text, "crossfade_errors_total{cluster=\"x\",kind=\"connect\"}", 0);
    mon_expect_metric(text, "crossfade_request_duration_seconds_count{cluster=\"x\"}", 20);
    mon_expect_metric(text, "crossfade_request_duration_seconds_bucket{cluster=\"x\",le=\"+Inf\"}",
                      20);
    mon_expect_metric(text, "crossfade_first_byte_seconds_count{cluster=\"y\"}", 10);
    mon_expect_metric(text, h_fmt("crossfade_node_requests_total{cluster=\"x\",node=\"%s\"}", x),
                      20);
    mon_expect_metric(text, h_fmt("crossfade_node_requests_total{cluster=\"y\",node=\"%s\"}", y),
                      10);
    mon_expect_metric(
        text,
        h_fmt("crossfade_node_responses_total{cluster=\"x\",node=\"%s\",code_class=\"2xx\"}", x),
        20);
    mon_expect_metric(text, h_fmt("crossfade_node_up{cluster=\"y\",node=\"%s\"}", y), 1);
    mon_expect_metric(text, "crossfade_weight_ratio{cluster=\"y\"}", 0.25);
    mon_expect_metric(text, "crossfade_weight_ratio{cluster=\"x\"}", 0.75);
    mon_expect_metric(text, "crossfade_test_requests_total{cluster=\"x\"}", 0);
    mon_expect_metric(text, "crossfade_config_generation", 1);
    mon_expect_metric(text, "crossfade_guard_enabled", 0);
    mon_expect_metric(text, "crossfade_guard_tripped", 0);
    mon_expect_metric(text, "crossfade_guard_state{state=\"off\"}", 1);
    cr_assert(ne(ptr, strstr(text, "\ncrossfade_build_info{version=\""), NULL), "%s", text);
    if (access(MON_PROMTOOL, X_OK) != 0)
        cr_skip_test(MON_PROMTOOL " is not installed (Debian's prometheus package): the counts "
                                  "are right, the format was not checked");
    file = h_write_file("metrics.txt", "%s", text);
    code = h_run((char *[]){"/bin/sh", "-c", "exec " MON_PROMTOOL " check metrics < \"$1\"", "sh",
                            (char *)file, NULL},
                 20000, &out, &err);
    cr_assert(eq(int, code, 0), "promtool check metrics exited %d:\n%s%s", code, out, err);
    h_proxy_finish(m->p);
}

/* Whether a sample called `name` belongs to the family `family` (a histogram's samples carry
 * _bucket, _sum and _count). */
static bool
mon_in_family(const char *name, const char *family)
{
    size_t n = strlen(family);

    return strncmp(name, family, n) == 0 &&
           (name[n] == '\0' || strcmp(name + n, "_bucket") == 0 || strcmp(name + n, "_sum") == 0 ||
            strcmp(name + n, "_count") == 0);
}

Test(monitoring, each_metric_family_is_one_group_after_its_help_and_type, .timeout = H_TEST_TIMEOUT)
{
    struct mon *m = mon_start(NULL, NULL, "25", NULL);
    const char *text = mon_get(m, "/metrics");
    const char *current = "";
    char *seen = h_alloc(strlen(text) + 2);

    /* The text format: "All lines for a given metric must be provided as one single group, with
     * the optional HELP and TYPE lines first". promtool 2.42 lets interleaved families through;
     * the format does not, and stricter parsers (OpenMetrics') refuse them. */
    seen[0] = '\n';
    for (const char *line = text; *line != '\0';) {
        size_t len = strcspn(line, "\n");
        const char *name;

        if (strncmp(line, "# TYPE ", 7) == 0) {
            name = h_fmt("%.*s", (int)strcspn(line + 7, " "), line + 7);
            cr_assert(eq(ptr, strstr(seen, h_fmt("\n%s\n", name)), NULL), "%s: a second TYPE line",
                      name);
            strcat(seen, h_fmt("%s\n", name));
            current = name;
        } else if (line[0] != '#' && len > 0) {
            name = h_fmt("%.*s", (int)strcspn(line, "{ "), line);
            cr_assert(mon_in_family(name, current),
                      "the sample \"%.*s\" is not in the group of its family: it comes after "
                      "\"# TYPE %s\"",
                      (int)len, line, current);
        }
        line += len + (line[len] == '\n');
    }
    h_proxy_finish(m->p);
}

/* ------------------------------------------------------------------ /api/stats, /healthz, / */

Test(monitoring, api_stats_is_json_with_the_weight_and_known_counts, .timeout = H_TEST_TIMEOUT)
{
    struct mon *m = mon_start(NULL, NULL, "10", NULL);
    const char *want;
    char *got;

    mon_send_to(m->p->port, "x", 20);
    mon_send_to(m->p->port, "y", 10);
    h_await_stat(m->fd, "x responses", "2xx", 20);
    h_await_stat(m->fd, "y responses", "2xx", 10);
    cr_assert(eq(str, h_admin_cmd(m->fd, "set weight 25"), "ok: weight y 25.00 (was 10.00)\n"));
    /* A key with a quote and a backslash: the events' strings must stay valid JSON. */
    cr_assert(eq(str, h_admin_cmd(m->fd, "pin header:X-User=a\"b\\c y"),
                 "ok: pinned \"a\\\"b\\\\c\" to y\n"));
    got =
        mon_json(mon_get(m, "/api/stats"), "d['status']", "d['generation']", "d['weight']",
                 "d['ramp']", "[d['guard'][k] for k in ('configured', 'enabled', 'state')]",
                 "[d['clusters'][c]['requests'] for c in 'xy']",
                 "[d['clusters'][c]['responses']['2xx'] for c in 'xy']",
                 "[d['clusters'][c]['test_requests'] for c in 'xy']",
                 "[[n['cluster'], n['address'], n['requests'], n['responses']['2xx']] for n in "
                 "d['nodes']]",
                 "len(set(len(a) for a in [d['history']['weight'], d['history']['x']['requests'], "
                 "d['history']['y']['p99_us']]))",
                 "[e['command'] for e in d['events']][:2]", "d['events'][-1]['what']", NULL);
    want = h_fmt("\"serving\"\n1\n25.0\nnull\n[false, false, \"off\"]\n[20, 10]\n[20, 10]\n[0, 0]\n"
                 "[[\"x\", \"127.0.0.1:%d\", 20, 20], [\"y\", \"127.0.0.1:%d\", 10, 10]]\n1\n"
                 "[\"start\", \"set weight 25\"]\n\"pin\"\n",
                 m->x->port, m->y->port);
    cr_assert(eq(str, got, (char *)want));
    h_proxy_finish(m->p);
}

Test(monitoring, healthz_answers_200_serving, .timeout = H_TEST_TIMEOUT)
{
    struct mon *m = mon_start(NULL, NULL, "0", NULL);
    struct h_msg r;

    cr_assert(eq(int, mon_http(m->http, "GET", "/healthz", NULL, NULL, &r), 200));
    cr_assert(eq(str, r.body, "serving\n"));
    cr_assert(ne(ptr, (void *)strstr(h_header(&r, "Content-Type"), "text/plain"), NULL));
    h_proxy_finish(m->p);
}

Test(monitoring, the_status_page_is_one_html_document_without_external_assets,
     .timeout = H_TEST_TIMEOUT)
{
    struct mon *m = mon_start(NULL, NULL, "0", NULL);
    struct h_msg r;

    cr_assert(eq(int, mon_http(m->http, "GET", "/", NULL, NULL, &r), 200));
    cr_assert(ne(ptr, (void *)strstr(h_header(&r, "Content-Type"), "text/html"), NULL), "%s",
              h_header(&r, "Content-Type"));
    cr_assert(ne(ptr, (void *)h_memcasemem(r.body, r.body_len, "<html"), NULL), "%s", r.body);
    /* It works with no network access: nothing is loaded from elsewhere. */
    cr_assert(eq(ptr, (void *)h_memcasemem(r.body, r.body_len, "src=\"http"), NULL), "%s", r.body);
    cr_assert(eq(ptr, (void *)h_memcasemem(r.body, r.body_len, "href=\"http"), NULL), "%s", r.body);
    cr_assert(eq(ptr, (void *)h_memcasemem(r.body, r.body_len, "src=\"//"), NULL), "%s", r.body);
    h_proxy_finish(m->p);
}

Test(monitoring, unknown_paths_get_404, .timeout = H_TEST_TIMEOUT)
{
    struct mon *m = mon_start(NULL, NULL, "0", NULL);
    struct h_msg r;

    cr_assert(eq(int, mon_http(m->http, "GET", "/nope", NULL, NULL, &r), 404));
    cr_assert(eq(int, mon_http(m->http, "GET", "/metrics/../healthz", NULL, NULL, &r), 404));
    cr_assert(eq(int, mon_http(m->http, "GET", "/api/stats/x", NULL, NULL, &r), 404));
    cr_assert(eq(int, mon_http(m->http, "GET", "/metricsx", NULL, NULL, &r), 404));
    cr_assert(eq(int, mon_http(m->http, "GET", "/healthz", NULL, NULL, &r), 200));
    h_proxy_finish(m->p);
}

Test(monitoring, head_gets_the_head_alone, .timeout = H_TEST_TIMEOUT)
{
    static const char *const paths[] = {"/healthz", "/metrics", "/api/stats", "/"};
    struct mon *m = mon_start(NULL, NULL, "0", NULL);

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct h_conn *c = h_connect(m->http);
        struct h_msg r;

        /* HEAD, then GET on the same connection: a body sent after the HEAD's head would be
         * read as the start of the next response. */
        cr_assert(eq(int,
                     h_sendf(c,
                             "HEAD %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                             "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                             paths[i]),
                     0));
        cr_assert(eq(int, h_read_response_ex(c, &r, H_NO_BODY, H_IO_TIMEOUT_MS, NULL, NULL), 0),
                  "HEAD %s: %s", paths[i], r.error);
        cr_assert(eq(int, r.status, 200), "HEAD %s", paths[i]);
        cr_assert(eq(int, h_read_response(c, &r), 0),
                  "HEAD %s: the next response cannot be read (%s): the HEAD's answer carried a "
                  "body?",
                  paths[i], r.error);
        cr_assert(eq(int, r.status, 200), "HEAD %s", paths[i]);
        cr_assert(eq(str, r.body, "serving\n"), "HEAD %s", paths[i]);
        h_close(c);
    }
    h_proxy_finish(m->p);
}

Test(monitoring, methods_other_than_get_and_head_get_405_with_allow, .timeout = H_TEST_TIMEOUT)
{
    static const char *const methods[] = {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    struct mon *m = mon_start(NULL, NULL, "0", NULL);
    unsigned wrong = 0;

    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        struct h_msg r;
        int status = mon_http(m->http, methods[i], "/metrics", "Content-Length: 0\r\n", NULL, &r);
        const char *allow = h_header(&r, "Allow");

        /* RFC 9110 15.5.6: the method is known, the resource does not allow it; and a 405
         * names what is allowed. */
        if (status != 405 || allow == NULL || strstr(allow, "GET") == NULL) {
            cr_log_error("%s /metrics: status %d, Allow: %s", methods[i], status,
                         allow != NULL ? allow : "(none)");
            wrong++;
        }
    }
    cr_assert(eq(uint, wrong, 0u), "%u of 5 methods were not answered 405 with Allow", wrong);
    h_proxy_finish(m->p);
}

Test(monitoring, writes_to_admin_http_change_nothing, .timeout = H_TEST_TIMEOUT)
{
    struct mon *m = mon_start(NULL, NULL, "25", MON_GUARD("100"));
    const char *events = h_admin_cmd(m->fd, "show events");
    struct mon_guard_view g;
    struct h_msg r;
    int status;

    status = mon_http(m->http, "POST", "/api/stats",
                      "Content-Type: application/json\r\nContent-Length: 14\r\n",
                      "{\"weight\": 90}", &r);
    cr_assert(ge(int, status, 400), "POST /api/stats: %d", status);
    status = mon_http(m->http, "PUT", "/api/stats", "Content-Length: 2\r\n", "90", &r);
    cr_assert(ge(int, status, 400), "PUT /api/stats: %d", status);
    status = mon_http(m->http, "POST", "/metrics", "Content-Length: 0\r\n", NULL, &r);
    cr_assert(ge(int, status, 400), "POST /metrics: %d", status);
    status = mon_http(m->http, "GET", "/api/stats?weight=90&guard=off", NULL, NULL, &r);
    cr_assert(eq(int, status, 200));
    cr_assert(eq(str, (char *)mon_weight(m), "25.00"));
    cr_assert(eq(str, h_admin_cmd(m->fd, "show events"), (char *)events));
    mon_guard_read(m, &g);
    cr_assert(g.on && !g.tripped, "%s", g.text);
    mon_expect_metric(mon_get(m, "/metrics"), "crossfade_config_generation", 1);
    h_proxy_finish(m->p);
}

Test(monitoring, garbage_gets_400_or_a_close_and_admin_http_goes_on, .timeout = H_TEST_TIMEOUT)
{
    static const char *const garbage[] = {
        "GARBAGE\r\n\r\n",
        "\x01\x02\x03\xff\xfe\r\n\r\n",
        "GET\r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
        NULL, /* a request line of 20,000 bytes */
    };
    struct mon *m = mon_start(NULL, NULL, "0", NULL);
    char *big = h_alloc(20001);
    struct h_conn *c;
    struct h_msg r;

    memset(big, 'a', 20000);
    memcpy(big, "GET /", 5);
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        const char *bytes = garbage[i] != NULL ? garbage[i] : big;
        char *out;
        size_t len;

        c = h_connect(m->http);
        (void)h_send(c, bytes, strlen(bytes));
        /* A 4xx answer and a close, or a close (a reset counts): never a wait for more. */
        cr_assert(eq(int, h_read_until_close(c, &out, &len, 3000), 0),
                  "request %zu: neither answered nor closed in 3 s", i);
        if (len > 0)
            cr_assert(eq(int, strncmp(out, "HTTP/1.1 4", 10), 0), "request %zu got: %.200s", i,
                      out);
        h_close(c);
        cr_assert(h_proc_alive(m->p->proc), "crossfade died of request %zu", i);
    }
    /* Cut short, then gone. */
    c = h_connect(m->http);
    cr_assert(eq(int, h_send_str(c, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"), 0));
    h_abort(c);
    cr_assert(eq(int, mon_http(m->http, "GET", "/healthz", NULL, NULL, &r), 200));
    cr_assert(h_proc_alive(m->p->proc));
    mon_send_to(m->p->port, "x", 1);
    h_proxy_finish(m->p);
}

/* ------------------------------------------------------------------ the guard */

/* The upstream options of a y (or x) that answers after `delay_ms`, with `error_rate` % 500s. */
#define MON_UP(d, e) (&(struct h_upstream_opts){.delay_ms = (d), .error_rate = (e)})

/* Asserts that upward weight changes are refused, naming the trip. */
static void
mon_expect_refused_up(const struct mon *m, const char *reason)
{
    static const char *const commands[] = {"set weight 40", "ramp 50 over 10s", "promote force"};

    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        const char *reply = h_admin_cmd(m->fd, commands[i]);
        const char *want = h_fmt("error: the guard tripped (guard: %s", reason);

        cr_assert(eq(int, strncmp(reply, want, strlen(want)), 0), "%s: %s", commands[i], reply);
        cr_assert(ne(ptr, strstr(reply, "); \"guard reset\" first\n"), NULL), "%s: %s", commands[i],
                  reply);
    }
}

Test(monitoring, guard_trips_on_a_y_that_answers_ten_percent_500s, .timeout = H_TEST_TIMEOUT)
{
    struct mon *m = mon_start(NULL, MON_UP(0, 10), "50", MON_GUARD_ERRORS);
    struct h_proc *load = mon_load(m, "300", "8s", "/", NULL);
    uint64_t deadline = h_now_ms() + 10000;
    double measurable = -1.0, tripped;
    struct mon_guard_view g;
    const char *text;

    /* The breach is measurable from the first verdict over a window that holds min_requests on
     * each side; the guard must act on it or the next one ("within 2 s"). */
    for (;;) {
        double n;

        mon_guard_read(m, &g);
        n = mon_verdicts(m);
        if (measurable < 0 && g.req[0] >= MON_ERRORS_MIN && g.req[1] >= MON_ERRORS_MIN)
            measurable = n;
        if (g.tripped) {
            tripped = n;
            break;
        }
        cr_assert(lt(u64, h_now_ms(), deadline), "no trip within 10 s of y's 10%% errors:\n%s",
                  g.text);
        h_sleep_ms(20);
    }
    cr_assert(ge(dbl, measurable, 0.0), "tripped before its window held %d requests a side:\n%s",
              MON_ERRORS_MIN, g.text);
    cr_assert(le(dbl, tripped - measurable, 2.0),
              "the guard tripped %g verdicts after the breach was measurable",
              tripped - measurable);
    cr_assert(eq(str, (char *)mon_weight(m), "0.00"), "tripped, not rolled back:\n%s", g.text);
    cr_assert(
        ne(ptr,
           (void *)mon_event(m, "\"guard\" guard armed -> guard: y error rate ", ": rolled back"),
           NULL),
        "%s", h_admin_cmd(m->fd, "show events"));
    cr_assert(ne(ptr, (void *)mon_event(m, "\"guard\" weight 50.00 -> 0.00", ""), NULL), "%s",
              h_admin_cmd(m->fd, "show events"));
    cr_assert(ne(ptr,
                 (void *)h_log_line(m->p->proc->log_path, "event=guard_tripped action=rollback"),
                 NULL));
    text = mon_get(m, "/metrics");
    mon_expect_metric(text, "crossfade_guard_tripped", 1);
    mon_expect_metric(text, "crossfade_guard_trips_total", 1);
    mon_expect_metric(text, "crossfade_weight_ratio{cluster=\"y\"}", 0);
    mon_expect_refused_up(m, "y error rate ");
    cr_assert(eq(str, (char *)mon_weight(m), "0.00"));
    cr_assert(ne(int, h_proc_stop(load, SIGINT, 5000), -1));
    cr_assert(eq(str, h_admin_cmd(m->fd, "guard reset"),
                 "ok: guard reset: the weight may go up again\n"));
    cr_assert(eq(str, h_admin_cmd(m->fd, "set weight 10"), "ok: weight y 10.00 (was 0.00)\n"));
    h_proxy_finish(m->p);
}

Test(monitoring, after_guard_reset_the_guard_does_not_act_again_on_the_requests_it_acted_on,
     .timeout = H_TEST_TIMEOUT)
{
    struct mon *m = mon_start(NULL, MON_UP(0, 10), "50", MON_GUARD_ERRORS);
    struct h_proc *load = mon_load(m, "300", "6s", "/", NULL);
    struct mon_guard_view g;

    cr_assert(mon_wait_weight(m, "0.00", 8000), "no trip on y's 10%% errors:\n%s",
              h_admin_cmd(m->fd, "guard show"));
    cr_assert(ne(int, h_proc_stop(load, SIGINT, 5000), -1));
    /* The operator looked, fixed or accepted it, and lets a few clients back to y. */
    cr_assert(eq(str, h_admin_cmd(m->fd, "guard reset"),
                 "ok: guard reset: the weight may go up again\n"));
    cr_assert(eq(str, h_admin_cmd(m->fd, "set weight 10"), "ok: weight y 10.00 (was 0.00)\n"));
    mon_await_verdicts(m, mon_verdicts(m), 2);
    mon_guard_read(m, &g);
    /* No request reached y since: nothing new to judge, so nothing to act on. */
    cr_assert(eq(str, (char *)mon_weight(m), "10.00"),
              "the guard rolled back again on the requests of before its reset:\n%s\n%s", g.text,
              h_admin_cmd(m->fd, "show events"));
    cr_assert(not(g.tripped), "%s", g.text);
    h_proxy_finish(m->p);
}

Test(monitoring, guard_step_down_lowers_the_weight_by_its_step, .timeout = H_TEST_TIMEOUT)
{
    struct mon *m =
        mon_start(NULL, MON_UP(0, 10), "50",
                  "guard: {window: 5s, min_requests: 200, max_latency_ratio: 100, action: "
                  "step_down, step_down: 20%}\n");

    mon_load(m, "300", "8s", "/", NULL);
    cr_assert(mon_wait_weight(m, "30.00", 10000), "no step down on y's 10%% errors:\n%s",
              h_admin_cmd(m->fd, "guard show"));
    cr_assert(
        ne(ptr, (void *)mon_event(m, "guard: y error rate ", ": stepped down to 30.00"), NULL),
        "%s", h_admin_cmd(m->fd, "show events"));
    /* Once: the next failing verdicts do not step it down again before a reset. */
    mon_await_verdicts(m, mon_verdicts(m), 2);
    cr_assert(eq(str, (char *)mon_weight(m), "30.00"));
    mon_expect_refused_up(m, "y error rate ");
    h_proxy_finish(m->p);
}

Test(monitoring, guard_off_judges_nothing_and_guard_on_judges_again, .timeout = H_TEST_TIMEOUT)
{
    struct mon *m = mon_start(NULL, MON_UP(0, 10), "50", MON_GUARD_ERRORS);
    uint64_t deadline = h_now_ms() + 8000;
    struct mon_guard_view g;
    const char *reply;

    cr_assert(eq(str, h_admin_cmd(m->fd, "guard off"),
                 "ok: guard off: nothing is judged, nothing acts\n"));
    reply = h_admin_cmd(m->fd, "ramp 60 over 10s guarded");
    cr_assert(eq(int, strncmp(reply, "error: a guarded ramp needs the guard", 37), 0), "%s", reply);
    mon_load(m, "300", "8s", "/", NULL);
    /* Twice what would have tripped it, on each side, within the window. */
    while (h_admin_stat(m->fd, "y responses", "5xx") < 20 ||
           h_admin_stat(m->fd, "y requests", NULL) < 2 * MON_ERRORS_MIN ||
           h_admin_stat(m->fd, "x requests", NULL) < 2 * MON_ERRORS_MIN) {
        cr_assert(lt(u64, h_now_ms(), deadline), "the load did not come");
        h_sleep_ms(50);
    }
    mon_guard_read(m, &g);
    cr_assert(not(g.on), "%s", g.text);
    cr_assert(eq(str, (char *)g.verdict, "off"), "%s", g.text);
    cr_assert(not(g.tripped), "%s", g.text);
    cr_assert(eq(str, (char *)mon_weight(m), "50.00"));
    cr_assert(eq(str, h_admin_cmd(m->fd, "guard on"),
                 "ok: guard on: y is judged against x each second\n"));
    cr_assert(mon_wait_weight(m, "0.00", 4000), "guard on did not trip on the window:\n%s",
              h_admin_cmd(m->fd, "guard show"));
    h_proxy_finish(m->p);
}

/* A slow request in flight keeps crossfade draining after SIGTERM. */
Test(monitoring, healthz_answers_503_stopping_while_crossfade_drains, .timeout = H_TEST_TIMEOUT)
{
    struct mon *m = mon_start(NULL, NULL, "0", NULL);
    struct h_conn *slow = h_connect(m->p->port);
    uint64_t deadline;
    struct h_msg r;

    cr_assert(eq(int, h_send_str(slow, "GET /delay/3000 HTTP/1.1\r\nHost: " H_HOST "\r\n\r\n"), 0));
    cr_assert(h_upstream_wait_requests(m->x, 1, H_IO_TIMEOUT_MS));
    cr_assert(eq(int, kill(m->p->proc->pid, SIGTERM), 0));
    deadline = h_now_ms() + 2000;
    while (mon_http(m->http, "GET", "/healthz", NULL, NULL, &r) != 503) {
        cr_assert(lt(u64, h_now_ms(), deadline), "/healthz still says %d %s after SIGTERM",
                  r.status, r.body);
        h_sleep_ms(20);
    }
    cr_assert(eq(str, r.body, "stopping\n"));
    cr_assert(eq(int, h_read_response(slow, &r), 0), "%s", r.error);
    cr_assert(eq(int, r.status, 200), "the request in flight was not served whole");
    cr_assert(eq(int, h_proc_wait(m->p->proc, 10000), 0), "crossfade did not exit 0");
}

Test(monitoring, guard_trips_on_a_twice_slower_y, .timeout = H_TEST_TIMEOUT)
{
    struct mon *m = mon_start(MON_UP(5, 0), MON_UP(12, 0), "50", MON_GUARD("100"));
    const char *event;

    mon_load(m, "300", "8s", "/", NULL);
    cr_assert(mon_wait_weight(m, "0.00", 10000), "no trip on a y 2.4 times slower:\n%s",
              h_admin_cmd(m->fd, "guard show"));
    event = mon_event(m, "\"guard\" guard armed -> guard: y ", ": rolled back");
    cr_assert(ne(ptr, (void *)event, NULL), "%s", h_admin_cmd(m->fd, "show events"));
    cr_assert(strstr(event, "guard: y p99 ") != NULL || strstr(event, "guard: y median ") != NULL,
              "the trip does not name the latency: %s", event);
    mon_expect_refused_up(m, "y ");
    h_proxy_finish(m->p);
}

Test(monitoring, guard_does_not_trip_on_a_healthy_y, .timeout = H_TEST_TIMEOUT)
{
    struct mon *m = mon_start_twins(5, "50", MON_GUARD("100"));
    struct h_proc *load = mon_load(m, "200", "6s", "/", NULL);
    struct mon_guard_view g;
    const char *text;

    cr_assert(ne(int, h_proc_wait(load, 15000), -1), "xfbench did not end");
    text = mon_get(m, "/metrics");
    /* It judged, and said pass: the test reached the branch it names. */
    cr_assert(ge(dbl, mon_metric(text, "crossfade_guard_verdicts_total{verdict=\"pass\"}"), 3.0),
              "%s", text);
    mon_expect_metric(text, "crossfade_guard_verdicts_total{verdict=\"fail\"}", 0);
    mon_expect_metric(text, "crossfade_guard_trips_total", 0);
    mon_guard_read(m, &g);
    cr_assert(not(g.tripped), "%s", g.text);
    cr_assert(eq(str, (char *)mon_weight(m), "50.00"));
    h_proxy_finish(m->p);
}

Test(monitoring, guard_is_inconclusive_below_min_requests_and_does_not_act,
     .timeout = H_TEST_TIMEOUT)
{
    struct mon *m = mon_start(NULL, MON_UP(0, 50), "50", MON_GUARD("100"));
    uint64_t deadline = h_now_ms() + 6000;
    long long on[2] = {0, 0};
    struct mon_guard_view g;

    for (int i = 0; i < 40; i++) {
        int status;

        on[strcmp(mon_send(m->p->port, h_fmt("few-%d", i), NULL, &status), "y1") == 0]++;
    }
    cr_assert(gt(i64, on[0], (int64_t)0));
    cr_assert(gt(i64, on[1], (int64_t)0));
    /* Once the second of those requests is over, the guard's window holds them all. */
    do {
        cr_assert(lt(u64, h_now_ms(), deadline),
                  "the guard never saw the %lld + %lld requests:\n%s", on[0], on[1],
                  h_admin_cmd(m->fd, "guard show"));
        h_sleep_ms(50);
        mon_guard_read(m, &g);
    } while (g.req[0] != on[0] || g.req[1] != on[1]);
    cr_assert(gt(i64, g.err[1], (int64_t)0), "y answered no 500 of %lld: %s", on[1], g.text);
    cr_assert(eq(str, (char *)g.verdict, "inconclusive"), "%s", g.text);
    cr_assert(ne(ptr,
                 strstr(g.text, h_fmt("\nreason too few requests over 5s: y %lld, x %lld "
                                      "(min_requests 100)\n",
                                      on[1], on[0])),
                 NULL),
              "%s", g.text);
    cr_assert(not(g.tripped), "%s", g.text);
    cr_assert(eq(str, (char *)mon_weight(m), "50.00"));
    h_proxy_finish(m->p);
}

Test(monitoring, guard_leaves_test_traffic_out, .timeout = H_TEST_TIMEOUT)
{
    struct mon *m = mon_start_twins(
        5, "50",
        /* Errors are the point: the latency rules are left out. */
        "guard: {window: 5s, min_requests: 100, max_latency_ratio: 100}\n" MON_TEST_HEADER);
    struct h_proc *load = mon_load(m, "200", "7s", "/", NULL);
    /* Test traffic sent to y alone, every request of it answered 500. */
    struct h_proc *tests = mon_load(m, "150", "7s", "/status/500", "--keys", "0", "-H",
                                    "X-Crossfade-Test: 1", "-H", "X-Crossfade-Target: y", NULL);
    uint64_t deadline = h_now_ms() + 10000;
    struct mon_guard_view g;
    const char *text;
    double tested;

    /* A pass over a window full of y's failed test requests. */
    for (;;) {
        mon_guard_read(m, &g);
        cr_assert(not(g.tripped), "the guard tripped on test traffic:\n%s", g.text);
        tested = mon_now_metric(m, "crossfade_test_requests_total{cluster=\"y\"}");
        if (strcmp(g.verdict, "pass") == 0 && tested >= 600)
            break;
        cr_assert(lt(u64, h_now_ms(), deadline), "no pass after %g failed test requests on y:\n%s",
                  tested, g.text);
        h_sleep_ms(100);
    }
    cr_assert(eq(i64, g.err[1], (int64_t)0), "%s", g.text);
    cr_assert(ne(int, h_proc_wait(load, 10000), -1), "xfbench did not end");
    cr_assert(ne(int, h_proc_wait(tests, 10000), -1), "xfbench did not end");
    mon_guard_read(m, &g);
    cr_assert(not(g.tripped), "%s", g.text);
    cr_assert(eq(str, (char *)mon_weight(m), "50.00"));
    text = mon_get(m, "/metrics");
    tested = mon_metric(text, "crossfade_test_requests_total{cluster=\"y\"}");
    cr_assert(ge(dbl, tested, 600.0), "%s", text);
    mon_expect_metric(text, "crossfade_test_errors_total{cluster=\"y\"}", tested);
    mon_expect_metric(text, "crossfade_test_requests_total{cluster=\"x\"}", 0);
    mon_expect_metric(text, "crossfade_guard_trips_total", 0);
    h_assert_stat(m->fd, "y test", "requests", (long long)tested);
    h_assert_stat(m->fd, "y test", "errors", (long long)tested);
    h_proxy_finish(m->p);
}

/* Connects to 127.0.0.1:port from the loopback address `from` (127.0.0.2...). */
static struct h_conn *
mon_connect_from(const char *from, int port)
{
    struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
    struct h_conn *c = h_alloc(sizeof(*c));

    cr_assert(eq(int, inet_pton(AF_INET, from, &src.sin_addr), 1));
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    dst.sin_port = htons((uint16_t)port);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(ge(int, c->fd, 0));
    cr_assert(eq(int, bind(c->fd, (struct sockaddr *)&src, sizeof(src)), 0), "bind %s: %s", from,
              strerror(errno));
    cr_assert(eq(int, connect(c->fd, (struct sockaddr *)&dst, sizeof(dst)), 0), "connect: %s",
              strerror(errno));
    return c;
}

Test(monitoring, requests_from_a_test_source_network_are_counted_apart, .timeout = H_TEST_TIMEOUT)
{
    struct mon *m = mon_start(NULL, NULL, "0", "test_traffic: {sources: [\"127.0.0.2/32\"]}\n");
    struct h_conn *c = mon_connect_from("127.0.0.2", m->p->port);
    const char *text;

    for (int i = 0; i < 4; i++) {
        struct h_msg r;

        cr_assert(eq(int,
                     h_send_str(c, "GET / HTTP/1.1\r\nHost: " H_HOST "\r\n"
                                   "X-Crossfade-Target: y\r\n\r\n"),
                     0));
        cr_assert(eq(int, h_read_response(c, &r), 0), "%s", r.error);
        cr_assert(eq(str, (char *)h_header(&r, "X-Upstream"), "y1"), "routed as usual");
    }
    h_close(c);
    mon_send_to(m->p->port, "y", 3);
    h_await_stat(m->fd, "y responses", "2xx", 7);
    text = mon_get(m, "/metrics");
    mon_expect_metric(text, "crossfade_requests_total{cluster=\"y\"}", 7);
    mon_expect_metric(text, "crossfade_test_requests_total{cluster=\"y\"}", 4);
    mon_expect_metric(text, "crossfade_test_errors_total{cluster=\"y\"}", 0);
    mon_expect_metric(text, "crossfade_test_requests_total{cluster=\"x\"}", 0);
    h_assert_stat(m->fd, "y test", "requests", 4);
    h_proxy_finish(m->p);
}

/* ------------------------------------------------------------------ guarded ramps */

Test(monitoring, a_guarded_ramp_holds_while_the_verdict_is_inconclusive, .timeout = H_TEST_TIMEOUT)
{
    struct mon *m = mon_start(NULL, NULL, "10", MON_GUARD("100"));
    uint64_t deadline = h_now_ms() + 5000;
    const char *held;

    cr_assert(
        eq(str, h_admin_cmd(m->fd, "ramp 50 over 6s step 10 guarded"),
           "ok: ramping y from 10.00 to 50.00 over 6s: 4 steps of 10.00, one every 1s500ms\n"));
    /* The first step is due after 1.5 s; with no traffic the guard cannot say pass. */
    while (strstr(mon_get(m, "/api/stats"), "\"ramp\":{\"state\":\"held\"") == NULL) {
        cr_assert(lt(u64, h_now_ms(), deadline), "the ramp was not held within 5 s:\n%s",
                  mon_get(m, "/api/stats"));
        h_sleep_ms(50);
    }
    /* Each verdict gives the held step another chance. */
    mon_await_verdicts(m, mon_verdicts(m), 3);
    cr_assert(eq(str, (char *)mon_weight(m), "10.00"));
    cr_assert(eq(str,
                 mon_json(mon_get(m, "/api/stats"), "d['ramp']['state']", "d['ramp']['done']",
                          "d['weight']", "d['guard']['verdict']", NULL),
                 "\"held\"\n0\n10.0\n\"inconclusive\"\n"));
    held = h_log_line(m->p->proc->log_path, "event=ramp_held step=1/4");
    cr_assert(ne(ptr, (void *)held, NULL), "no event=ramp_held in the log");
    cr_assert(ne(ptr, strstr(held, "reason=\"too few requests"), NULL), "%s", held);
    mon_expect_metric(mon_get(m, "/metrics"), "crossfade_ramp_progress_ratio", 0);
    h_proxy_finish(m->p);
}

Test(monitoring, a_guarded_ramp_steps_after_a_pass_over_a_whole_window, .timeout = H_TEST_TIMEOUT)
{
    struct mon *m = mon_start_twins(5, "10", MON_GUARD("50"));
    uint64_t start;
    const char *reply;

    mon_load(m, "300", "10s", "/", NULL);
    start = h_now_ms();
    reply = h_admin_cmd(m->fd, "ramp 20 over 1s step 10 guarded");
    cr_assert(eq(int, strncmp(reply, "ok: ramping y from 10.00 to 20.00 over 1s", 41), 0), "%s",
              reply);
    cr_assert(mon_wait_weight(m, "20.00", 12000), "the guarded step never came:\n%s",
              h_admin_cmd(m->fd, "guard show"));
    /* Not before a whole window (5 s) judged at the weight before it. */
    cr_assert(ge(u64, h_now_ms() - start, 4900u), "the step came %llu ms after the ramp",
              (unsigned long long)(h_now_ms() - start));
    mon_expect_metric(mon_get(m, "/metrics"), "crossfade_guard_trips_total", 0);
    h_proxy_finish(m->p);
}

/* ------------------------------------------------------------------ preview weight */

/* The split bucket of X-User: key, as `which` gives it. */
static long
mon_bucket(const struct mon *m, const char *key)
{
    const char *reply = h_admin_cmd(m->fd, h_fmt("which header:X-User=%s", key));
    const char *b = strstr(reply, "\nbucket ");

    cr_assert(ne(ptr, (void *)b, NULL), "which: %s", reply);
    return strtol(b + 8, NULL, 10);
}

Test(monitoring, preview_weight_counts_a_known_mix_of_keys_and_requests, .timeout = H_TEST_TIMEOUT)
{
    struct mon *m = mon_start(NULL, NULL, "10", MON_TEST_HEADER);
    /* At weight 10 buckets [0, 1000) are y's; at 30, [1000, 3000) move from x to y. */
    const char *moving[7], *staying[3], *y_low = NULL, *y_high = NULL;
    size_t n_moving = 0, n_staying = 0;
    char *reply;

    for (int i = 0; i < 3000 && (n_moving < 7 || n_staying < 3 || y_low == NULL || y_high == NULL);
         i++) {
        const char *key = h_fmt("user-%d", i);
        long b = mon_bucket(m, key);

        if (b >= 1000 && b < 3000 && n_moving < 7)
            moving[n_moving++] = key;
        else if (b >= 3000 && n_staying < 3)
            staying[n_staying++] = key;
        else if (b < 500 && y_low == NULL)
            y_low = key;
        else if (b >= 500 && b < 1000 && y_high == NULL)
            y_high = key;
    }
    cr_assert(n_moving == 7 && n_staying == 3 && y_low != NULL && y_high != NULL);
    /* A heavy key, each request on its own connection (so on any worker), and light ones. */
    for (int i = 0; i < 40; i++)
        cr_assert(eq(str, (char *)mon_send(m->p->port, moving[0], NULL, NULL), "x1"));
    for (int i = 1; i <= 3; i++)
        cr_assert(eq(str, (char *)mon_send(m->p->port, moving[i], NULL, NULL), "x1"));
    for (int i = 0; i < 3; i++)
        cr_assert(eq(str, (char *)mon_send(m->p->port, staying[i], NULL, NULL), "x1"));
    cr_assert(eq(str, (char *)mon_send(m->p->port, y_low, NULL, NULL), "y1"));
    cr_assert(eq(str, (char *)mon_send(m->p->port, y_high, NULL, NULL), "y1"));
    /* Requests the weight did not decide: pinned, overridden, test traffic. */
    reply = h_admin_cmd(m->fd, h_fmt("pin header:X-User=%s y", moving[4]));
    cr_assert(eq(int, strncmp(reply, "ok: pinned", 10), 0), "%s", reply);
    for (int i = 0; i < 5; i++) {
        cr_assert(eq(str, (char *)mon_send(m->p->port, moving[4], NULL, NULL), "y1"));
        cr_assert(eq(
            str, (char *)mon_send(m->p->port, moving[5], "X-Crossfade-Target: y\r\n", NULL), "y1"));
        cr_assert(eq(str, (char *)mon_send(m->p->port, moving[6], "X-Crossfade-Test: 1\r\n", NULL),
                     "x1"));
    }
    /* 4 of the 9 keys and 43 of the 48 requests the weight decided are in [1000, 3000). */
    reply = h_admin_cmd(m->fd, "preview weight 30");
    cr_assert(eq(int,
                 strncmp(reply,
                         "weight y 10.00 -> 30.00 moves buckets [1000, 3000) from x to y\n"
                         "keys 4 of 9 would move (44.44%)\n"
                         "requests 43 of 48 would move (89.58%)\n"
                         "window ",
                         strlen("weight y 10.00 -> 30.00 moves buckets [1000, 3000) from x to y\n"
                                "keys 4 of 9 would move (44.44%)\n"
                                "requests 43 of 48 would move (89.58%)\n"
                                "window ")),
                 0),
              "%s", reply);
    /* Down: only [500, 1000) moves back to x. */
    reply = h_admin_cmd(m->fd, "preview weight 5");
    cr_assert(eq(int,
                 strncmp(reply,
                         "weight y 10.00 -> 5.00 moves buckets [500, 1000) from y to x\n"
                         "keys 1 of 9 would move (11.11%)\n"
                         "requests 1 of 48 would move (2.08%)\n",
                         strlen("weight y 10.00 -> 5.00 moves buckets [500, 1000) from y to x\n"
                                "keys 1 of 9 would move (11.11%)\n"
                                "requests 1 of 48 would move (2.08%)\n")),
                 0),
              "%s", reply);
    h_proxy_finish(m->p);
}

/* ------------------------------------------------------------------ the status page */

/* The text of the element with id="id" in `dom` up to its first closing tag, tags inside it
 * left out; NULL when there is no such element. */
static const char *
mon_element_text(const char *dom, const char *id)
{
    const char *at = strstr(dom, h_fmt("id=\"%s\"", id));
    char *text;
    size_t n = 0;

    if (at == NULL)
        return NULL;
    at = strchr(at, '>');
    if (at == NULL)
        return NULL;
    text = h_alloc(strlen(at) + 1);
    for (at++; *at != '\0' && strncmp(at, "</", 2) != 0; at++) {
        if (*at == '<') {
            at = strchr(at, '>');
            if (at == NULL)
                break;
            continue;
        }
        text[n++] = *at;
    }
    return text;
}

Test(monitoring, the_status_page_shows_the_weight_and_both_clusters_in_chromium,
     .timeout = H_TEST_TIMEOUT)
{
    struct mon *m;
    const char *weight;
    char *dom, *err;
    int code;

    if (access(MON_CHROMIUM, X_OK) != 0)
        cr_skip_test(MON_CHROMIUM " is not installed (Debian's chromium): the page was not loaded");
    m = mon_start(NULL, NULL, "25", NULL);
    mon_send_to(m->p->port, "x", 3);
    mon_send_to(m->p->port, "y", 2);
    /* Its own profile and HOME in the scratch directory; the page's script runs for 5 s of
     * virtual time, enough to fetch /api/stats and draw. */
    code = h_run((char *[]){"/usr/bin/env", (char *)h_fmt("HOME=%s", h_dir()), MON_CHROMIUM,
                            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                            "--disable-extensions",
                            (char *)h_fmt("--user-data-dir=%s", h_path("chromium")),
                            "--virtual-time-budget=5000", "--dump-dom",
                            (char *)h_fmt("http://127.0.0.1:%d/", m->http), NULL},
                 20000, &dom, &err);
    cr_assert(eq(int, code, 0), "chromium exited %d:\n%s", code, err);
    weight = mon_element_text(dom, "weight");
    cr_assert(ne(ptr, (void *)weight, NULL), "no id=\"weight\" in the page:\n%s", dom);
    cr_assert(ne(ptr, strstr(weight, "25.00"), NULL), "the weight shows \"%s\", not 25.00:\n%s",
              weight, dom);
    cr_assert(ne(ptr, strstr(dom, "id=\"cluster-x\""), NULL), "no id=\"cluster-x\":\n%s", dom);
    cr_assert(ne(ptr, strstr(dom, "id=\"cluster-y\""), NULL), "no id=\"cluster-y\":\n%s", dom);
    h_proxy_finish(m->p);
}

/* ------------------------------------------------------------------ the config */

/* Runs crossfade -t on the harness's config with `extra` top-level lines, after replacing
 * `from` with `to` when from is not NULL; returns the exit code and stderr in *err, and in
 * *line the line number of `to` (or of extra's first line). */
static int
mon_check_config(const char *extra, const char *from, const char *to, int *line, char **err)
{
    const char *cfg = h_read_file(
        h_proxy_write_config("bad.yaml",
                             &(struct h_proxy_opts){
                                 .x = {{h_free_port()}}, .admin_http_port = 1, .extra_yaml = extra},
                             h_free_port()),
        NULL);
    const char *at = from != NULL ? strstr(cfg, from) : strstr(cfg, extra);
    const char *path;

    cr_assert(ne(ptr, (void *)at, NULL));
    *line = 1;
    for (const char *p = cfg; p < at; p++)
        *line += *p == '\n';
    if (from != NULL)
        path = h_write_file("bad.yaml", "%.*s%s%s", (int)(at - cfg), cfg, to, at + strlen(from));
    else
        path = h_path("bad.yaml");
    return h_run((char *[]){(char *)h_bin("crossfade"), "-t", "-c", (char *)path, NULL}, 10000,
                 NULL, err);
}

Test(monitoring, guard_and_test_traffic_errors_name_file_line_column_and_key,
     .timeout = H_TEST_TIMEOUT)
{
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        {"guard: {window: 2s}\n", "17: guard.window: expected whole seconds from 5s to 5m"},
        {"guard: {window: 5500ms}\n", "17: guard.window: expected whole seconds from 5s to 5m"},
        {"guard: {min_requests: 5}\n", "23: guard.min_requests: expected an integer from 10"},
        {"guard: {action: explode}\n",
         "17: guard.action: expected rollback, pause or step_down, got \"explode\""},
        {"guard: {max_latency_ratio: 0.5}\n", "28: guard.max_latency_ratio: expected a number"},
        {"guard: {wndow: 5s}\n", "9: guard: unknown key \"wndow\", did you mean \"window\"?"},
        {"test_traffic: {sources: [\"nonsense\"]}\n",
         "26: test_traffic.sources[0]: expected an IPv4 or IPv6 network"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *err;
        int line, code = mon_check_config(cases[i].yaml, NULL, NULL, &line, &err);
        const char *want = h_fmt("bad.yaml:%d:%s", line, cases[i].want);

        cr_assert(eq(int, code, 2), "%s: crossfade -t exited %d", cases[i].yaml, code);
        cr_assert(ne(ptr, strstr(err, want), NULL), "%s: stderr does not say %s:\n%s",
                  cases[i].yaml, want, err);
    }
}

Test(monitoring, an_admin_http_that_is_not_an_address_is_refused_by_line_and_key,
     .timeout = H_TEST_TIMEOUT)
{
    char *err;
    int line,
        code = mon_check_config(NULL, "http: \"127.0.0.1:1\"", "http: \"nonsense\"", &line, &err);
    const char *want = h_fmt("bad.yaml:%d:9: admin.http: expected host:port", line);

    cr_assert(eq(int, code, 2), "crossfade -t exited %d", code);
    cr_assert(ne(ptr, strstr(err, want), NULL), "stderr does not say %s:\n%s", want, err);
}

Test(monitoring, an_admin_http_that_is_a_list_or_a_mapping_is_refused, .timeout = H_TEST_TIMEOUT)
{
    static const char *const values[] = {"http: [\"127.0.0.1:9900\"]", "http: {port: 9900}"};

    for (size_t i = 0; i < 2; i++) {
        char *err;
        int line, code = mon_check_config(NULL, "http: \"127.0.0.1:1\"", values[i], &line, &err);
        const char *want = h_fmt("bad.yaml:%d:9: admin.http: ", line);

        /* Silently accepted, it would start no listener while the operator expects one. */
        cr_assert(eq(int, code, 2), "%s: crossfade -t exited %d", values[i], code);
        cr_assert(ne(ptr, strstr(err, want), NULL), "%s: stderr does not say %s:\n%s", values[i],
                  want, err);
    }
}
