/* tests/integration/test_rollout_ops.c -- the rollout's operations as an operator meets them: new
 * nodes pending until their checks pass, a start-up that waits for the first verdicts, capacity
 * refusals naming the missing node, slow start, the state file's cluster layout, watch and
 * xfctl -w, the HTTP/2 preface, and tester overrides that are ignored. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/integration/harness.h"

TestSuite(rollout_ops, .init = h_setup, .fini = h_teardown);

#define RO_WAIT_MS 5000 /* the longest wait for a change that takes a few check intervals */
#define RO_KEY     "  key: [\"header:X-Key\"]\n"
/* The words of a show nodes line before its note. */
#define RO_NOTE_WORD 8
/* A time of watch: UTC to the millisecond. */
#define RO_TIME_RE "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z"

/* ------------------------------------------------------------------ helpers */

/* Starts bin/xf-upstream NAME on host:port (any loopback address), its output in LOG_NAME of the
 * scratch directory, and waits for its "listening on" line: the process, or NULL when it exited
 * first (the port was taken). */
static struct h_proc *
ro_upstream_log(const char *host, int port, const char *name, const char *log_name)
{
    const char *log = h_path(log_name);
    const char *listen = h_fmt("%s:%d", host, port);
    char *argv[] = {
        (char *)h_bin("xf-upstream"), "--listen", (char *)listen, "--name", (char *)name, NULL};
    struct h_proc *p = h_spawn(name, argv, log, NULL);
    uint64_t until = h_now_ms() + 10000;

    while (!h_log_wait(log, h_fmt("xf-upstream %s listening on", name), 50)) {
        if (!h_proc_alive(p))
            return NULL;
        cr_assert(lt(u64, h_now_ms(), until), "xf-upstream %s did not listen on %s", name, listen);
    }
    return p;
}

/* The same, logging to upstream-NAME.log. */
static struct h_proc *
ro_upstream_at(const char *host, int port, const char *name)
{
    return ro_upstream_log(host, port, name, h_fmt("upstream-%s.log", name));
}

/* An xf-upstream on host at a free port (tried up to 3 times); *port gets the port. */
static struct h_proc *
ro_upstream_on(const char *host, const char *name, int *port)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        struct h_proc *p;

        *port = h_free_port();
        p = ro_upstream_log(host, *port, name, h_fmt("upstream-%s-%d.log", name, attempt));
        if (p != NULL)
            return p;
    }
    cr_fatal("xf-upstream %s could not listen on %s", name, host);
    return NULL;
}

/* Sends GET target with X-Key: key (NULL: none) and more header lines (may be ""); returns the
 * response, asserting that one came. */
static struct h_msg *
ro_get(struct h_conn *c, const char *target, const char *key, const char *more)
{
    struct h_msg *m = h_alloc(sizeof(*m));

    cr_assert(eq(int,
                 h_sendf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n%s%s%s%s\r\n", target, H_HOST,
                         key != NULL ? "X-Key: " : "", key != NULL ? key : "",
                         key != NULL ? "\r\n" : "", more),
                 0));
    cr_assert(eq(int, h_read_response(c, m), 0), "%s", m->error);
    return m;
}

/* The X-Upstream of a 200 response to GET / with X-Key: key (asserts the 200). */
static const char *
ro_served_by(struct h_conn *c, const char *key)
{
    struct h_msg *m = ro_get(c, "/", key, "");
    const char *u = h_header(m, "X-Upstream");

    cr_assert(eq(int, m->status, 200), "status %d for key %s: %s", m->status, key, m->body);
    cr_assert(ne(ptr, (void *)u, NULL), "no X-Upstream in the response for key %s", key);
    return u;
}

/* The note of a show nodes line: what follows its first 8 words ("" when there is none). */
static const char *
ro_note(const char *line)
{
    const char *p = line;

    if (p == NULL)
        return "";
    for (int i = 0; i < RO_NOTE_WORD; i++) {
        p = strchr(p, ' ');
        if (p == NULL)
            return "";
        p++;
    }
    return p;
}

/* The node's line of show nodes; asserts that it is there. */
static const char *
ro_node_line(int adm, const char *cluster, const char *addr)
{
    const char *line = h_admin_node_line(adm, cluster, addr);

    cr_assert(ne(ptr, (void *)line, NULL), "no node %s %s in show nodes:\n%s", cluster, addr,
              h_admin_cmd(adm, "show nodes"));
    return line;
}

static void
ro_wait_node(int adm, const char *cluster, const char *addr, const char *state, int timeout_ms)
{
    cr_assert(h_admin_wait_node(adm, cluster, addr, H_NODE_STATE, state, timeout_ms),
              "node %s/%s is not %s within %d ms; show nodes:\n%s", cluster, addr, state,
              timeout_ms, h_admin_cmd(adm, "show nodes"));
}

static bool
ro_starts_with(const char *s, const char *prefix)
{
    return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool
ro_ends_with(const char *s, const char *suffix)
{
    size_t n = s != NULL ? strlen(s) : 0, k = strlen(suffix);

    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Whether `s` matches the POSIX extended regular expression `re`. */
static bool
ro_matches(const char *s, const char *re)
{
    regex_t rx;
    int rc;

    cr_assert(eq(int, regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0), "bad pattern %s", re);
    rc = regexec(&rx, s, 0, NULL, 0);
    regfree(&rx);
    return rc == 0;
}

/* Escapes the dots of an address for a pattern. */
static const char *
ro_re_addr(const char *addr)
{
    const char *out = "";

    for (const char *p = addr; *p != '\0'; p++)
        out = *p == '.' ? h_fmt("%s\\.", out) : h_fmt("%s%c", out, *p);
    return out;
}

/* The line of `text` that holds `needle` (harness-owned, without its LF), or NULL. */
static const char *
ro_line_of(const char *text, const char *needle)
{
    const char *hit = text != NULL ? strstr(text, needle) : NULL;
    const char *start;

    if (hit == NULL)
        return NULL;
    if (*needle == '\n')
        hit++; /* the needle starts the line */
    for (start = hit; start > text && start[-1] != '\n'; start--)
        ;
    return h_fmt("%.*s", (int)strcspn(start, "\n"), start);
}

/* A struct h_proxy for a crossfade the test spawned itself with the harness's file names. */
static struct h_proxy *
ro_proxy_spawn(const struct h_proxy_opts *o)
{
    struct h_proxy *p = h_alloc(sizeof(*p));
    char *argv[4];

    p->port = h_free_port();
    p->cfg_path = h_proxy_write_config("crossfade.yaml", o, p->port);
    p->access_log = h_path("access.log");
    p->admin_socket = h_path("admin.sock");
    p->shutdown_ms = o->shutdown_ms != 0 ? o->shutdown_ms : 5000;
    argv[0] = (char *)h_bin("crossfade");
    argv[1] = "-c";
    argv[2] = (char *)p->cfg_path;
    argv[3] = NULL;
    p->proc = h_spawn("crossfade", argv, h_path("crossfade.log"), NULL);
    return p;
}

/* Waits until the spawned crossfade's port takes TCP connections (its listener is bound: the
 * kernel completes the handshake even before crossfade accepts). */
static void
ro_wait_port(struct h_proxy *p)
{
    uint64_t until = h_now_ms() + 10000;

    while (h_try_connect(p->port, 100) != 0) {
        cr_assert(h_proc_alive(p->proc), "crossfade exited at start-up: %s",
                  h_read_file(p->proc->log_path, NULL));
        cr_assert(lt(u64, h_now_ms(), until), "crossfade never listened on %d", p->port);
        h_sleep_ms(2);
    }
}

/* Connects to the admin socket as soon as it exists (polled every 2 ms). */
static int
ro_admin_asap(const struct h_proxy *p)
{
    uint64_t until = h_now_ms() + 10000;

    while (access(p->admin_socket, F_OK) != 0) {
        cr_assert(lt(u64, h_now_ms(), until), "no admin socket %s", p->admin_socket);
        h_sleep_ms(2);
    }
    return h_admin_connect(p);
}

/* The status word of show version ("starting", "serving"...), or "" without a status line. */
static const char *
ro_status(int adm)
{
    const char *line = ro_line_of(h_admin_cmd(adm, "show version"), "\nstatus ");

    if (line == NULL)
        return "";
    return h_word(line, 1);
}

/* --- lines of a watch stream, read from a raw admin connection --- */

struct ro_stream {
    int fd;
    char buf[65536];
    size_t len;
    size_t empty_lines; /* empty lines seen: a watch stream has none */
};

/* The next whole line (without its LF, harness-owned), or NULL when none came within
 * timeout_ms. Asserts that the connection stays open. */
static const char *
ro_stream_line(struct ro_stream *s, int timeout_ms)
{
    uint64_t until = h_now_ms() + (uint64_t)timeout_ms;

    for (;;) {
        char *lf = memchr(s->buf, '\n', s->len);
        struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
        uint64_t now = h_now_ms();
        ssize_t n;

        if (lf != NULL) {
            size_t k = (size_t)(lf - s->buf);
            const char *line = h_fmt("%.*s", (int)k, s->buf);

            memmove(s->buf, lf + 1, s->len - k - 1);
            s->len -= k + 1;
            if (k == 0)
                s->empty_lines++;
            return line;
        }
        if (now >= until)
            return NULL;
        if (poll(&pfd, 1, (int)(until - now)) != 1)
            continue;
        cr_assert(lt(sz, s->len, sizeof(s->buf)), "a watch line over 64 KiB");
        n = recv(s->fd, s->buf + s->len, sizeof(s->buf) - s->len, 0);
        cr_assert(gt(long, (long)n, 0L), "the watch connection closed (%s)",
                  n == 0 ? "EOF" : strerror(errno));
        s->len += (size_t)n;
    }
}

/* Reads lines until one holds `needle`; every line before it must be an event line ("#").
 * Returns that line. */
static const char *
ro_stream_until(struct ro_stream *s, const char *needle, int timeout_ms)
{
    uint64_t until = h_now_ms() + (uint64_t)timeout_ms;

    for (;;) {
        uint64_t now = h_now_ms();
        const char *line = ro_stream_line(s, now < until ? (int)(until - now) : 0);

        cr_assert(ne(ptr, (void *)line, NULL), "no watch line with \"%s\" within %d ms", needle,
                  timeout_ms);
        cr_assert(eq(sz, s->empty_lines, (size_t)0), "the watch stream sent an empty line");
        cr_assert(ro_starts_with(line, "#"),
                  "a watch line that is no event (a reply to what the watcher sent?): \"%s\"",
                  line);
        if (strstr(line, needle) != NULL)
            return line;
    }
}

/* ------------------------------------------------------------------ 1. new nodes are pending */

/*
 * An unready Kong: x checks its nodes on health port H. Node A's 127.0.0.1:H answers; the node
 * added at run time, 127.0.0.2:PB, serves traffic but nothing answers on 127.0.0.2:H yet. It must
 * take no request (round_robin would give it every second one) until its checks pass.
 */
Test(rollout_ops, a_node_added_at_run_time_takes_no_request_until_it_passes_rise_checks,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *a = h_upstream_start("A", NULL);
    struct h_upstream *ha = h_upstream_start("hA", NULL); /* A's health port H */
    int h = ha->port, pb, pc;
    struct h_proc *b = ro_upstream_on("127.0.0.2", "B", &pb);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{a->port}},
        .balance_x = "round_robin",
        .split_extra = RO_KEY,
        .x_extra = h_fmt("    health: {path: /status/200, port: %d, interval: 200ms, timeout: "
                         "150ms, rise: 2, fall: 3}\n",
                         h)});
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    const char *addr_b = h_fmt("127.0.0.2:%d", pb), *addr_c, *line, *state;
    char *reply;
    unsigned on_b = 0;

    (void)b;
    /* A came into service at start-up: pending -> up counts nothing. */
    ro_wait_node(adm, "x", a->addr, "up", RO_WAIT_MS);
    h_assert_stat(adm, "x health", "down", 0);
    h_assert_stat(adm, "x health", "up", 0);

    reply = h_admin_cmd(adm, h_fmt("add node x %s", addr_b));
    cr_assert(eq(str, reply,
                 h_fmt("ok: added node x/%s weight 1; it takes requests once it passes 2 health "
                       "checks (show nodes)\n",
                       addr_b)));
    line = ro_node_line(adm, "x", addr_b);
    state = h_word(line, H_NODE_STATE);
    cr_assert(strcmp(state, "pending") == 0 || strcmp(state, "down") == 0, "%s", line);
    cr_assert(ro_starts_with(ro_note(line),
                             strcmp(state, "pending") == 0 ? "pending first checks" : "down since"),
              "%s", line);

    /* 50 keys: round robin would send every second request to B if it took any. */
    for (int i = 0; i < 50; i++)
        cr_assert(eq(str, (char *)ro_served_by(c, h_fmt("k%d", i)), "A"),
                  "request %d reached the pending node", i);

    /* Its fall (3) failed checks make it down: counted, still no request. */
    ro_wait_node(adm, "x", addr_b, "down", RO_WAIT_MS);
    line = ro_node_line(adm, "x", addr_b);
    cr_assert(ro_starts_with(ro_note(line), "down since "), "%s", line);
    cr_assert(eq(str, (char *)h_word(line, H_NODE_CHECK), "fail:refused"), "%s", line);
    h_assert_stat(adm, "x health", "down", 1);
    h_assert_stat(adm, "x health", "up", 0);
    for (int i = 50; i < 70; i++)
        cr_assert(eq(str, (char *)ro_served_by(c, h_fmt("k%d", i)), "A"),
                  "request %d reached the down node", i);

    /* Its health port comes up: two passes later it is up and takes its turn. */
    cr_assert(ne(ptr, (void *)ro_upstream_at("127.0.0.2", h, "hB"), NULL), "127.0.0.2:%d is taken",
              h);
    ro_wait_node(adm, "x", addr_b, "up", RO_WAIT_MS);
    cr_assert(eq(str, (char *)ro_note(ro_node_line(adm, "x", addr_b)), "-"));
    h_assert_stat(adm, "x health", "down", 1);
    h_assert_stat(adm, "x health", "up", 1);
    /* Round robin between two nodes of weight 1 alternates: 10 of 20, give or take one. */
    for (int i = 0; i < 20; i++)
        on_b += strcmp(ro_served_by(c, h_fmt("k%d", 100 + i)), "B") == 0;
    cr_assert(ge(u32, on_b, 9u), "B served %u of 20 requests once up", on_b);
    cr_assert(le(u32, on_b, 11u), "B served %u of 20 requests once up", on_b);

    /* A node whose checks pass at once goes pending -> up: counted nowhere. */
    cr_assert(ne(ptr, (void *)ro_upstream_at("127.0.0.3", h, "hC"), NULL), "127.0.0.3:%d is taken",
              h);
    (void)ro_upstream_on("127.0.0.3", "C", &pc);
    addr_c = h_fmt("127.0.0.3:%d", pc);
    reply = h_admin_cmd(adm, h_fmt("add node x %s", addr_c));
    cr_assert(ro_starts_with(reply, "ok: added node x/"), "%s", reply);
    ro_wait_node(adm, "x", addr_c, "up", RO_WAIT_MS);
    h_assert_stat(adm, "x health", "down", 1);
    h_assert_stat(adm, "x health", "up", 1);
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ 2. start-up */

/*
 * x's nodes are checked every second with rise 2; node S takes 400 ms to answer, so the first
 * verdicts come no sooner than about 1 s after start. A request sent the moment the port takes a
 * TCP connection waits in the kernel's queue and gets a 200 from a node: a crossfade that
 * accepted before its nodes passed their checks would find none in service (503).
 */
Test(rollout_ops, a_request_sent_as_soon_as_the_port_listens_waits_for_the_first_verdicts,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *a = h_upstream_start("A", NULL);
    struct h_upstream *s = h_upstream_start("S", &(struct h_upstream_opts){.delay_ms = 400});
    struct h_proxy *p = ro_proxy_spawn(&(struct h_proxy_opts){
        .x = {{a->port}, {s->port}},
        .x_extra = "    health: {path: /status/200, interval: 1s, rise: 2}\n"});
    struct h_conn *c;
    struct h_msg m;
    const char *first, *node;
    int adm;

    ro_wait_port(p);
    c = h_connect(p->port);
    cr_assert(eq(int, h_sendf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", H_HOST), 0));

    adm = ro_admin_asap(p);
    first = ro_status(adm);
    cr_assert(eq(str, (char *)first, "starting"),
              "show version right after the port listened: status \"%s\"", first);

    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    node = h_header(&m, "X-Upstream");
    cr_assert(eq(int, m.status, 200), "the first request got %d (%s)", m.status, m.body);
    cr_assert(node != NULL && (strcmp(node, "A") == 0 || strcmp(node, "S") == 0));
    cr_assert(h_log_wait(p->proc->log_path, "event=ready reason=first_verdicts", 1000),
              "no event=ready reason=first_verdicts in the log");
    cr_assert(eq(str, (char *)ro_status(adm), "serving"));
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ 3. capacity */

/*
 * x has weight 2, y two nodes of weight 1: y1 ready, and a node where nothing listens, pending
 * (fall 100 keeps it so). y can take 50 %; the refusals must name the pending node.
 */
Test(rollout_ops, capacity_refusals_name_the_pending_node_y_is_missing, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_upstream *y1 = h_upstream_start("y1", NULL);
    int dead = h_free_port();
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{x1->port, 2}},
        .y = {{y1->port}, {dead}},
        .y_extra = "    health: {path: /status/200, interval: 1s, timeout: 500ms, rise: 2, "
                   "fall: 100}\n"});
    int adm = h_admin_connect(p);
    const char *dead_addr = h_fmt("127.0.0.1:%d", dead);
    const char *missing = h_fmt("missing: y/%s pending first checks", dead_addr);
    const char *cmds[] = {"set weight 100", "set weight 60", "promote", "ramp 100 over 10s",
                          "ramp 60 over 10s step 5"};
    const char *line = ro_node_line(adm, "y", dead_addr);

    cr_assert(eq(str, (char *)h_word(line, H_NODE_STATE), "pending"), "%s", line);
    cr_assert(ro_starts_with(ro_note(line), "pending first checks: 0 of 2 passed, last fail:"),
              "%s", line);
    ro_wait_node(adm, "y", y1->addr, "up", RO_WAIT_MS);
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        char *reply = h_admin_cmd(adm, cmds[i]);

        cr_assert(ro_starts_with(reply, "error: y can take at most 50.00% of clients now"),
                  "%s: %s", cmds[i], reply);
        cr_assert(ne(ptr, strstr(reply, missing), NULL), "%s: the refusal does not say \"%s\": %s",
                  cmds[i], missing, reply);
    }
    cr_assert(eq(str, h_admin_cmd(adm, "show weight"), "x 100.00\ny 0.00\n"));
    cr_assert(eq(str, h_admin_cmd(adm, "show ramp"), "no ramp\n"));
    /* What y can take is taken. */
    cr_assert(eq(str, h_admin_cmd(adm, "set weight 50"), "ok: weight y 50.00 (was 0.00)\n"));
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ 4. slow start */

/*
 * slow_start 3s, round_robin, no checks: node B added next to A starts at 5 % of its weight and
 * grows in 20 steps. Phase 1: the requests of the first 600 ms (at most 200) -- B's share then is
 * at most 4/24 (17 %), asserted under 25 %. Then show nodes must say it takes half of its weight
 * before the slow start ends (it grows). Phase 2: once event=slow_start_done is logged, 200
 * requests split evenly, asserted within 40..60 % (round robin alternates: 50 % exactly).
 */
Test(rollout_ops, slow_start_gives_an_added_node_a_small_share_that_grows_to_its_weight,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *a = h_upstream_start("A", NULL);
    struct h_upstream *b = h_upstream_start("B", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{a->port}}, .balance_x = "round_robin", .x_extra = "    slow_start: 3s\n"});
    const char *log = p->proc->log_path;
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    const char *line, *note;
    unsigned sent = 0, on_b = 0;
    uint64_t t0;

    cr_assert(eq(str, h_admin_cmd(adm, h_fmt("add node x %s", b->addr)),
                 h_fmt("ok: added node x/%s weight 1\n", b->addr)));
    t0 = h_now_ms();
    while (sent < 200 && h_now_ms() - t0 < 600) {
        on_b += strcmp(ro_served_by(c, NULL), "B") == 0;
        sent++;
    }
    line = ro_node_line(adm, "x", b->addr);
    note = ro_note(line);
    cr_assert(ge(u32, sent, 20u), "only %u requests in 600 ms", sent);
    cr_assert(lt(u32, on_b * 100, sent * 25), "B served %u of the first %u requests (>= 25 %%)",
              on_b, sent);
    cr_assert(ro_starts_with(note, "slow start: ") && strstr(note, "% of its weight") != NULL, "%s",
              line);
    cr_assert(
        h_log_wait(log, h_fmt("event=slow_start cluster=x node=%s for_ms=3000", b->addr), 1000));
    /* It grows: the note passes 50 % before the slow start ends (5 % steps every 150 ms). */
    for (unsigned pct = 0; pct < 50;) {
        line = ro_node_line(adm, "x", b->addr);
        note = ro_note(line);
        cr_assert(eq(int, sscanf(note, "slow start: %u%% of its weight", &pct), 1),
                  "the slow start ended before B took half of its weight: %s", line);
        cr_assert(lt(u64, h_now_ms() - t0, (uint64_t)8000), "%s", line);
        h_sleep_ms(50);
    }

    cr_assert(h_log_wait(log, h_fmt("event=slow_start_done cluster=x node=%s", b->addr), 8000),
              "no event=slow_start_done within 8 s of a 3 s slow start");
    cr_assert(ge(u64, h_now_ms() - t0, (uint64_t)2500), "slow start over after %llu ms",
              (unsigned long long)(h_now_ms() - t0));
    cr_assert(eq(str, (char *)ro_note(ro_node_line(adm, "x", b->addr)), "-"));
    on_b = 0;
    for (int i = 0; i < 200; i++)
        on_b += strcmp(ro_served_by(c, NULL), "B") == 0;
    cr_assert(ge(u32, on_b, 80u), "B served %u of 200 requests after its slow start", on_b);
    cr_assert(le(u32, on_b, 120u), "B served %u of 200 requests after its slow start", on_b);
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ 5. the state file */

/* x1 in x, y1 in y (swapped: y1 in x, x1 in y), keyed on X-Key, with a state file. */
static struct h_proxy *
ro_start_with_state(struct h_upstream *x1, struct h_upstream *y1, bool swapped)
{
    return h_proxy_start(
        &(struct h_proxy_opts){.x = {{swapped ? y1->port : x1->port}},
                               .y = {{swapped ? x1->port : y1->port}},
                               .weight = "0",
                               .split_extra = RO_KEY,
                               .extra_yaml = h_fmt("state_file: \"%s\"\n", h_path("state"))});
}

/* First run: set weight 40 and pin alice y, written to the state file, then stopped. */
static void
ro_first_run(struct h_upstream *x1, struct h_upstream *y1)
{
    struct h_proxy *p = ro_start_with_state(x1, y1, false);
    int adm = h_admin_connect(p);

    cr_assert(eq(str, h_admin_cmd(adm, "set weight 40"), "ok: weight y 40.00 (was 0.00)\n"));
    cr_assert(eq(str, h_admin_cmd(adm, "pin alice y"), "ok: pinned \"alice\" to y\n"));
    h_proxy_finish(p);
    cr_assert(h_log_wait(h_path("state"), "pin alice y", 0), "%s",
              h_read_file(h_path("state"), NULL));
}

/* Asserts that each line of show events is numbered, one more than the line before. */
static void
ro_assert_numbered(const char *events)
{
    long prev = 0;

    for (const char *l = events; *l != '\0'; l = strchr(l, '\n') + 1) {
        long n;

        cr_assert(eq(int, sscanf(l, "#%ld ", &n), 1), "an event without a number: %s", l);
        cr_assert(prev == 0 || n == prev + 1, "event #%ld after #%ld:\n%s", n, prev, events);
        prev = n;
    }
}

Test(rollout_ops, a_restart_with_the_same_nodes_brings_back_the_weight_and_the_audit_trail,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_upstream *y1 = h_upstream_start("y1", NULL);
    struct h_proxy *p;
    const char *set_line, *start_line;
    char *events;
    long n_set, n_start;
    int adm;

    ro_first_run(x1, y1);
    p = ro_start_with_state(x1, y1, false);
    adm = h_admin_connect(p);
    cr_assert(eq(str, h_admin_cmd(adm, "show weight"), "x 60.00\ny 40.00\n"));
    cr_assert(eq(str, h_admin_cmd(adm, "show pins"), "pin alice y\n"));
    cr_assert(
        ro_starts_with(ro_line_of(h_admin_cmd(adm, "show state"), "at_start "), "at_start loaded"));
    events = h_admin_cmd(adm, "show events");
    ro_assert_numbered(events);
    set_line = ro_line_of(events, "\"set weight 40\" weight 0.00 -> 40.00");
    cr_assert(ne(ptr, (void *)set_line, NULL), "the event of the first run is gone:\n%s", events);
    cr_assert(eq(int, sscanf(set_line, "#%ld ", &n_set), 1));
    /* The start of this run comes after the events the file held. */
    start_line = ro_line_of(strstr(events, set_line), "uid=- pid=- \"start\" ");
    cr_assert(ne(ptr, (void *)start_line, NULL), "no \"start\" event after \"%s\":\n%s", set_line,
              events);
    cr_assert(eq(int, sscanf(start_line, "#%ld ", &n_start), 1));
    cr_assert(gt(long, n_start, n_set), "%s", events);
    /* And the pin routes alice to y. */
    cr_assert(eq(str, (char *)ro_served_by(h_connect(p->port), "alice"), "y1"));
    h_proxy_finish(p);
}

Test(rollout_ops, a_restart_with_the_clusters_swapped_sets_the_state_file_aside,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_upstream *y1 = h_upstream_start("y1", NULL);
    const char *state = h_path("state"), *stale = h_fmt("%s.stale", state);
    const char *old_layout = h_fmt("layout x=%s y=%s\n", x1->addr, y1->addr);
    const char *new_layout = h_fmt("layout x=%s y=%s\n", y1->addr, x1->addr);
    struct h_proxy *p;
    char *old, *aside, *events, *show_state, *fresh;
    int adm;

    ro_first_run(x1, y1);
    old = h_read_file(state, NULL);
    cr_assert(ne(ptr, strstr(old, old_layout), NULL), "%s", old);
    cr_assert(ne(ptr, strstr(old, "\nweight 40.00\n"), NULL), "%s", old);

    p = ro_start_with_state(x1, y1, true);
    adm = h_admin_connect(p);
    cr_assert(eq(str, h_admin_cmd(adm, "show weight"), "x 100.00\ny 0.00\n"));
    cr_assert(eq(str, h_admin_cmd(adm, "show pins"), "no pins\n"));
    /* alice was pinned to y = x1; now every key goes to x, which is y1. */
    cr_assert(eq(str, (char *)ro_served_by(h_connect(p->port), "alice"), "y1"));
    aside = h_read_file(stale, NULL);
    cr_assert(ne(ptr, aside, NULL), "no %s", stale);
    cr_assert(eq(str, aside, old), "%s is not the old state file", stale);
    show_state = h_admin_cmd(adm, "show state");
    cr_assert(ne(ptr, strstr(show_state, "\nat_start stale"), NULL), "%s", show_state);
    cr_assert(h_log_wait(p->proc->log_path, "event=state_file_stale", 1000));
    events = h_admin_cmd(adm, "show events");
    cr_assert(ne(ptr,
                 (void *)ro_line_of(events, h_fmt("uid=- pid=- \"state file\" layout x=%s y=%s -> "
                                                  "set aside as %s",
                                                  x1->addr, y1->addr, stale)),
                 NULL),
              "no layout event:\n%s", events);
    /* The next change writes a state file for the new layout. */
    cr_assert(eq(str, h_admin_cmd(adm, "set weight 5"), "ok: weight y 5.00 (was 0.00)\n"));
    cr_assert(h_log_wait(state, "weight 5.00", 5000), "the state file was not rewritten");
    cr_assert(h_log_wait(state, new_layout, 0), "%s", h_read_file(state, NULL));
    fresh = h_read_file(state, NULL);
    cr_assert(eq(ptr, strstr(fresh, "\npin "), NULL), "the pins came back: %s", fresh);
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ 6. watch and xfctl */

/*
 * A watcher gets its first line, then a line per change made on another connection and per
 * health transition, and nothing else: what it sends after watch gets no reply, and the stream
 * has no empty line.
 */
Test(rollout_ops, watch_streams_weight_changes_and_health_transitions_one_line_each,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_upstream *x2 = h_upstream_start("x2", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{x1->port}, {x2->port}},
        .x_extra = "    health: {path: /status/200, interval: 200ms, timeout: 100ms, rise: 2, "
                   "fall: 3}\n"});
    int adm = h_admin_connect(p);
    struct ro_stream *w = h_alloc(sizeof(*w));
    const char *line, *re;

    w->fd = h_admin_connect(p);
    /* "show weight" in the same write as watch, and more after it: never answered. */
    cr_assert(eq(long, (long)send(w->fd, "watch\nshow weight\n", 18, MSG_NOSIGNAL), 18L));
    line = ro_stream_line(w, 5000);
    cr_assert(ne(ptr, (void *)line, NULL), "no first line after watch");
    cr_assert(ro_matches(line, "^ok: watching at " RO_TIME_RE " weight y 0\\.00$"), "%s", line);
    cr_assert(eq(long, (long)send(w->fd, "help\nset weight 30\n\n", 20, MSG_NOSIGNAL), 20L));

    cr_assert(eq(str, h_admin_cmd(adm, "set weight 25"), "ok: weight y 25.00 (was 0.00)\n"));
    line = ro_stream_until(w, "\"set weight 25\"", 5000);
    re = h_fmt("^#[0-9]+ " RO_TIME_RE " uid=%u pid=%d \"set weight 25\" weight 0\\.00 -> "
               "25\\.00$",
               (unsigned)getuid(), (int)getpid());
    cr_assert(ro_matches(line, re), "\"%s\" is not %s", line, re);

    h_upstream_kill(x2);
    line = ro_stream_until(w, "\"health\"", 5000);
    re = h_fmt("^#- " RO_TIME_RE " uid=- pid=- \"health\" node x/%s up -> down \\(.+\\)$",
               ro_re_addr(x2->addr));
    cr_assert(ro_matches(line, re), "\"%s\" is not %s", line, re);
    /* The watcher's own "set weight 30" was dropped. */
    cr_assert(eq(str, h_admin_cmd(adm, "show weight"), "x 75.00\ny 25.00\n"));
    cr_assert(eq(sz, w->len, (size_t)0), "more bytes on the watch: %.*s", (int)w->len, w->buf);
    h_proxy_finish(p);
}

Test(rollout_ops, xfctl_watch_prints_the_stream, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{x1->port}}});
    int adm = h_admin_connect(p);
    const char *out = h_path("xfctl-watch.out");
    char *argv[] = {(char *)h_bin("xfctl"), "-s", (char *)p->admin_socket, "watch", NULL};
    struct h_proc *xc = h_spawn("xfctl", argv, out, NULL);
    const char *first, *line, *re;

    cr_assert(h_log_wait(out, "ok: watching at ", 5000), "xfctl watch printed: %s",
              h_read_file(out, NULL));
    first = h_log_line(out, "ok: watching at ");
    cr_assert(ro_matches(first, "^ok: watching at " RO_TIME_RE " weight y 0\\.00$"), "%s", first);
    cr_assert(eq(str, h_admin_cmd(adm, "set weight 25"), "ok: weight y 25.00 (was 0.00)\n"));
    cr_assert(h_log_wait(out, "\"set weight 25\"", 5000), "xfctl watch printed: %s",
              h_read_file(out, NULL));
    line = h_log_line(out, "\"set weight 25\"");
    re = h_fmt("^#[0-9]+ " RO_TIME_RE " uid=%u pid=%d \"set weight 25\" weight 0\\.00 -> "
               "25\\.00$",
               (unsigned)getuid(), (int)getpid());
    cr_assert(ro_matches(line, re), "\"%s\" is not %s", line, re);
    cr_assert(h_proc_alive(xc), "xfctl watch exited");
    h_proc_stop(xc, SIGTERM, 2000);
    cr_assert(eq(sz, h_log_count(out, ""), (size_t)2), "xfctl watch printed more:\n%s",
              h_read_file(out, NULL));
    h_proxy_finish(p);
}

/*
 * xfctl -w waits for crossfade to answer and finish starting: started before crossfade serves
 * (its node S answers checks in 1 s, so start-up lasts about 2.25 s), it answers once it serves.
 * Against a socket that never appears it gives up after -w seconds with exit status 2.
 */
Test(rollout_ops, xfctl_wait_waits_for_the_start_and_gives_up_with_2, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *s = h_upstream_start("S", &(struct h_upstream_opts){.delay_ms = 1000});
    struct h_proxy *p = ro_proxy_spawn(&(struct h_proxy_opts){
        .x = {{s->port}},
        .x_extra = "    health: {path: /status/200, interval: 2s, timeout: 1500ms, rise: 2}\n"});
    char *wait_argv[] = {
        (char *)h_bin("xfctl"), "-s", (char *)p->admin_socket, "-w", "10", "show", "weight", NULL};
    char *none_argv[] = {
        (char *)h_bin("xfctl"), "-s", "/nonexistent", "-w", "1", "show", "weight", NULL};
    char *out = NULL, *err = NULL;
    uint64_t t0;
    int code;

    code = h_run(wait_argv, 15000, &out, &err);
    cr_assert(eq(int, code, 0), "xfctl -w 10 exited %d: %s%s", code, out, err);
    cr_assert(eq(str, out, "x 100.00\ny 0.00\n"));
    /* It answered only once crossfade served. */
    cr_assert(h_log_wait(p->proc->log_path, "event=ready reason=first_verdicts", 0),
              "xfctl -w answered before crossfade was ready:\n%s",
              h_read_file(p->proc->log_path, NULL));
    h_proxy_finish(p);

    t0 = h_now_ms();
    code = h_run(none_argv, 10000, &out, &err);
    cr_assert(eq(int, code, 2), "xfctl -s /nonexistent -w 1 exited %d: %s%s", code, out, err);
    cr_assert(ge(u64, h_now_ms() - t0, (uint64_t)900), "gave up after %llu ms, before -w 1",
              (unsigned long long)(h_now_ms() - t0));
    cr_assert(ne(ptr, strstr(err, "/nonexistent"), NULL), "%s", err);
}

/* ------------------------------------------------------------------ 7. the HTTP/2 preface */

Test(rollout_ops, the_http2_preface_gets_505_and_reaches_no_node, .timeout = H_TEST_TIMEOUT)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    struct h_fake *f = h_fake_start1(
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Upstream: fake\r\n\r\nok\n", H_FAKE_KEEP);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(f)}}});
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;
    char *got;

    cr_assert(eq(int, h_send(c, preface, sizeof(preface) - 1), 0));
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 505), "%s", m.head);
    cr_assert(eq(int, m.version_major, 1));
    cr_assert(eq(int, m.version_minor, 1));
    cr_assert(h_header_has_token(&m, "Connection", "close"), "%s", m.head);
    cr_assert(ne(ptr, strstr(m.body, "HTTP/2"), NULL), "%s", m.body);
    cr_assert(ne(ptr, strstr(m.body, "HTTP/1.1"), NULL), "%s", m.body);
    cr_assert(eq(int, h_conn_wait(c, 2000), H_CLOSED), "the connection stays open after the 505");

    /* A valid request after it is the first and only one the node gets. */
    cr_assert(eq(str,
                 (char *)h_header(ro_get(h_connect(p->port), "/after", NULL, ""), "X-Upstream"),
                 "fake"));
    cr_assert(h_fake_wait_requests(f, 1, 2000));
    cr_assert(eq(sz, h_fake_requests_all(f), (size_t)1));
    cr_assert(eq(sz, h_fake_conns(f), (size_t)1));
    got = h_fake_received(f, 0, NULL);
    cr_assert(ro_starts_with(got, "GET /after HTTP/1.1\r\n"), "the node received: %s", got);
    cr_assert(eq(ptr, strstr(got, "PRI"), NULL), "the node received: %s", got);
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ 8. ignored overrides */

/* Waits for the access log line of `target` and returns it. */
static const char *
ro_alog_line(const struct h_proxy *p, const char *target)
{
    const char *needle = h_fmt(" \"GET %s HTTP/1.1\" ", target);

    cr_assert(h_log_wait(p->access_log, needle, 5000), "no access log line for %s:\n%s", target,
              h_read_file(p->access_log, NULL));
    return h_log_line(p->access_log, needle);
}

Test(rollout_ops, an_override_with_another_value_than_x_or_y_is_ignored_counted_and_logged,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_upstream *y1 = h_upstream_start("y1", NULL);
    struct h_proxy *p = h_proxy_start(
        &(struct h_proxy_opts){.x = {{x1->port}}, .y = {{y1->port}}, .split_extra = RO_KEY});
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    struct h_msg *m;
    const char *line;
    char *stats;

    m = ro_get(c, "/invalid", "k1", "X-Crossfade-Target: z\r\n");
    cr_assert(eq(int, m->status, 200));
    cr_assert(eq(str, (char *)h_header(m, "X-Upstream"), "x1"));
    /* The override header itself works: y is honoured and not counted. */
    m = ro_get(c, "/honoured", "k1", "X-Crossfade-Target: y\r\n");
    cr_assert(eq(str, (char *)h_header(m, "X-Upstream"), "y1"));

    line = ro_alog_line(p, "/invalid");
    cr_assert(ro_ends_with(line, " override=invalid"), "%s", line);
    line = ro_alog_line(p, "/honoured");
    cr_assert(eq(ptr, (void *)strstr(line, "override="), NULL), "%s", line);
    stats = h_admin_cmd(adm, "show stats");
    cr_assert(ne(ptr, strstr(stats, "\noverride_ignored invalid=1 not_allowed=0\n"), NULL), "%s",
              stats);
    h_proxy_finish(p);
}

Test(rollout_ops, an_override_from_outside_override_from_is_ignored_counted_and_logged,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_upstream *y1 = h_upstream_start("y1", NULL);
    struct h_proxy *p = h_proxy_start(
        &(struct h_proxy_opts){.x = {{x1->port}},
                               .y = {{y1->port}},
                               .split_extra = RO_KEY "  override_from: [\"10.9.9.0/24\"]\n"});
    int adm = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    struct h_msg *m;
    const char *line;
    char *stats;

    m = ro_get(c, "/not-allowed", "k1", "X-Crossfade-Target: y\r\n");
    cr_assert(eq(int, m->status, 200));
    cr_assert(eq(str, (char *)h_header(m, "X-Upstream"), "x1"));
    line = ro_alog_line(p, "/not-allowed");
    cr_assert(ro_ends_with(line, " override=not_allowed"), "%s", line);
    stats = h_admin_cmd(adm, "show stats");
    cr_assert(ne(ptr, strstr(stats, "\noverride_ignored invalid=0 not_allowed=1\n"), NULL), "%s",
              stats);
    h_proxy_finish(p);
}
