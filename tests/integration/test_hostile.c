/* tests/integration/test_hostile.c -- odd but legal input, hostile input and hostile conditions:
 * empty header values, obs-fold, many X-Forwarded-For lines, broken responses, kill -9, a state
 * file that cannot be written or holds absurd times, a full admin socket, slow and changing DNS,
 * a long show pins, and thousands of slow clients. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/integration/harness.h"

TestSuite(hostile, .init = h_setup, .fini = h_teardown);

/* ------------------------------------------------------------------ helpers */

/* A proxy whose cluster x is the fake upstream f. */
static struct h_proxy *
proxy_to_fake(struct h_fake *f)
{
    return h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(f)}}});
}

/* Sends `raw` on a new connection to `port` and reads the response into *m. */
static void
exchange(int port, const char *raw, struct h_msg *m)
{
    struct h_conn *c = h_connect(port);

    cr_assert(eq(int, h_send_str(c, raw), 0));
    cr_assert(eq(int, h_read_response(c, m), 0), "no whole response to %s: %s", raw, m->error);
}

/* The request head the fake received first on connection i, parsed. */
static void
fake_seen(struct h_fake *f, size_t i, struct h_msg *seen)
{
    size_t len;
    char *raw = h_fake_received(f, i, &len);

    cr_assert(eq(int, h_parse_request_head(raw, len, seen), 0),
              "what the node received does not parse (%s):\n%s", seen->error, raw);
}

/* Connects to a unix socket (the admin socket) without the harness's bookkeeping: the tests
 * below hold more connections than h_admin_connect keeps. -1 when the connect fails. */
static int
unix_connect(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd;

    cr_assert(lt(sz, strlen(path), sizeof(sun.sun_path)));
    memcpy(sun.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(ne(int, fd, -1), "socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends every byte, each wait for room bounded by H_IO_TIMEOUT_MS. */
static void
send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        ssize_t n;

        cr_assert(eq(int, poll(&pfd, 1, H_IO_TIMEOUT_MS), 1), "no room to send for %d ms",
                  H_IO_TIMEOUT_MS);
        n = send(fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n == -1 && (errno == EAGAIN || errno == EINTR))
            continue;
        cr_assert(gt(long, (long)n, 0L), "send: %s", strerror(errno));
        data += n;
        len -= (size_t)n;
    }
}

/* What an admin connection received: replies end with an empty line ("\n\n"). */
struct adm_reader {
    int fd;
    char *buf; /* harness memory, NUL-terminated */
    size_t len, cap;
    size_t scanned; /* bytes searched for reply ends so far */
    size_t replies; /* reply ends found */
    bool closed;
};

/* Receives once (waiting up to timeout_ms): whether bytes came or the peer closed. */
static bool
adm_recv(struct adm_reader *r, int timeout_ms)
{
    struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
    ssize_t n;

    if (poll(&pfd, 1, timeout_ms) != 1)
        return false;
    if (r->cap - r->len < 65536 + 1) {
        r->cap = r->cap * 2 + 65536 * 2;
        r->buf = h_realloc(r->buf, r->cap);
    }
    n = recv(r->fd, r->buf + r->len, r->cap - r->len - 1, 0);
    if (n <= 0) {
        r->closed = true;
        return true;
    }
    r->len += (size_t)n;
    r->buf[r->len] = '\0';
    for (; r->scanned + 1 < r->len; r->scanned++)
        if (r->buf[r->scanned] == '\n' && r->buf[r->scanned + 1] == '\n') {
            r->replies++;
            r->scanned++;
        }
    return true;
}

/* Reads until `n` replies ended in all (asserts that they do within timeout_ms). */
static void
adm_wait_replies(struct adm_reader *r, size_t n, int timeout_ms)
{
    uint64_t until = h_now_ms() + (uint64_t)timeout_ms;

    while (r->replies < n) {
        uint64_t now = h_now_ms();

        cr_assert(lt(u64, now, until), "%zu admin replies of %zu after %d ms", r->replies, n,
                  timeout_ms);
        cr_assert(not(r->closed), "the admin socket closed after %zu replies of %zu", r->replies,
                  n);
        adm_recv(r, (int)(until - now));
    }
}

/* The state file config line for `path`. */
static const char *
state_yaml(const char *path)
{
    return h_fmt("state_file: \"%s\"\n", path);
}

/* ------------------------------------------------------------------ empty header values */

Test(hostile, empty_request_header_values_reach_the_node_present_and_empty,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f = h_fake_start1("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", H_FAKE_KEEP);
    struct h_proxy *p = proxy_to_fake(f);
    struct h_msg m, seen;

    /* RFC 9110 5.5: field-value = *field-content, so the empty value is a value. */
    exchange(p->port,
             "GET /empty HTTP/1.1\r\nHost: " H_HOST "\r\nX-Empty:\r\nX-Empty2: \r\n"
             "X-After: kept\r\n\r\n",
             &m);
    cr_assert(eq(int, m.status, 200), "a request with empty header values got %d: %s", m.status,
              m.body);
    fake_seen(f, 0, &seen);
    cr_assert(eq(sz, h_header_count(&seen, "X-Empty"), (size_t)1), "%s", seen.head);
    cr_assert(eq(str, (char *)h_header(&seen, "X-Empty"), ""), "%s", seen.head);
    cr_assert(eq(sz, h_header_count(&seen, "X-Empty2"), (size_t)1), "%s", seen.head);
    cr_assert(eq(str, (char *)h_header(&seen, "X-Empty2"), ""), "%s", seen.head);
    cr_assert(eq(str, (char *)h_header(&seen, "X-After"), "kept"), "%s", seen.head);
    h_proxy_finish(p);
}

Test(hostile, an_empty_response_header_value_is_forwarded_and_the_node_is_not_counted_failing,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f = h_fake_start1(
        "HTTP/1.1 200 OK\r\nX-Empty:\r\nX-Empty2: \r\nContent-Length: 2\r\n\r\nok", H_FAKE_KEEP);
    struct h_proxy *p = proxy_to_fake(f);
    const char *addr = h_fmt("127.0.0.1:%d", h_fake_port(f));
    struct h_conn *c = h_connect(p->port);
    int fd = h_admin_connect(p);
    const char *line;
    struct h_msg m;

    for (int i = 0; i < 2; i++) {
        cr_assert(eq(int, h_get(c, "/", &m), 0), "response %d: %s", i + 1, m.error);
        cr_assert(eq(int, m.status, 200), "a response with an empty header value got %d: %s",
                  m.status, m.body);
        cr_assert(eq(str, m.body, "ok"));
        cr_assert(eq(sz, h_header_count(&m, "X-Empty"), (size_t)1), "%s", m.head);
        cr_assert(eq(str, (char *)h_header(&m, "X-Empty"), ""), "%s", m.head);
        cr_assert(eq(str, (char *)h_header(&m, "X-Empty2"), ""), "%s", m.head);
    }
    /* Both requests reached the node: it was not taken out after the first. */
    cr_assert(eq(sz, h_fake_requests_all(f), (size_t)2));
    h_assert_stat(fd, "x failures", "invalid", 0);
    h_assert_stat(fd, "x responses", "2xx", 2);
    h_assert_stat(fd, "x responses", "5xx", 0);
    line = h_admin_node_line(fd, "x", addr);
    cr_assert(ne(ptr, (void *)line, NULL), "no node x %s in show nodes", addr);
    cr_assert(eq(str, (char *)h_word(line, H_NODE_STATE), "up"), "%s", line);
    cr_assert(eq(str, (char *)h_word(line, H_NODE_EJECTIONS), "0"), "%s", line);
    cr_assert(eq(sz, h_log_count(p->proc->log_path, "event=bad_response"), (size_t)0),
              "an empty header value was logged as a bad response");
    h_proxy_finish(p);
}

Test(hostile, obs_fold_is_still_400_in_a_request_and_502_in_a_response, .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f = h_fake_start1(
        "HTTP/1.1 200 OK\r\nX-Folded: one\r\n two\r\nContent-Length: 2\r\n\r\nok", H_FAKE_KEEP);
    struct h_proxy *p = proxy_to_fake(f);
    struct h_msg m;

    exchange(p->port, "GET / HTTP/1.1\r\nHost: " H_HOST "\r\nX-Folded: one\r\n two\r\n\r\n", &m);
    cr_assert(eq(int, m.status, 400), "a folded request header got %d: %s", m.status, m.body);
    exchange(p->port, "GET / HTTP/1.1\r\nHost: " H_HOST "\r\nX-Folded: one\r\n\ttwo\r\n\r\n", &m);
    cr_assert(eq(int, m.status, 400), "a header folded with a tab got %d: %s", m.status, m.body);
    /* Neither request went on: the only ones that reached the node come next. */
    cr_assert(eq(sz, h_fake_requests_all(f), (size_t)0));

    exchange(p->port, "GET / HTTP/1.1\r\nHost: " H_HOST "\r\n\r\n", &m);
    cr_assert(eq(int, m.status, 502), "a folded response header got %d: %s", m.status, m.body);
    cr_assert(ne(ptr, strstr(m.body, "obs-fold"), NULL), "the 502 does not say why: %s", m.body);
    cr_assert(eq(sz, h_fake_requests_all(f), (size_t)1));
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ X-Forwarded-For */

Test(hostile, ten_x_forwarded_for_lines_reach_the_node_as_one_list_with_the_client_last,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f = h_fake_start1("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", H_FAKE_KEEP);
    struct h_proxy *p = proxy_to_fake(f);
    const char *req = "GET /xff HTTP/1.1\r\nHost: " H_HOST "\r\n";
    const char *want = "";
    struct h_msg m, seen;

    for (int i = 1; i <= 10; i++) {
        req = h_fmt("%sX-Forwarded-For: 203.0.113.%d\r\n", req, i);
        want = h_fmt("%s203.0.113.%d, ", want, i);
    }
    want = h_fmt("%s127.0.0.1", want);
    exchange(p->port, h_fmt("%s\r\n", req), &m);
    cr_assert(eq(int, m.status, 200), "%d: %s", m.status, m.body);
    fake_seen(f, 0, &seen);
    cr_assert(eq(sz, h_header_count(&seen, "X-Forwarded-For"), (size_t)1), "%s", seen.head);
    cr_assert(eq(str, (char *)h_header(&seen, "X-Forwarded-For"), (char *)want), "%s", seen.head);
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ broken responses */

Test(hostile, a_malformed_chunked_body_before_any_byte_went_out_gets_a_whole_502,
     .timeout = H_TEST_TIMEOUT)
{
    /* Connection i gets reply i: a bad first chunk size, then a bad size after a good chunk. */
    struct h_fake_reply replies[] = {
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0, H_FAKE_KEEP},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n", 0,
         H_FAKE_KEEP},
    };
    struct h_fake *f = h_fake_start(replies, 2);
    struct h_proxy *p = proxy_to_fake(f);

    for (int i = 0; i < 2; i++) {
        struct h_conn *c = h_connect(p->port);
        struct h_msg m;

        cr_assert(eq(int, h_get(c, "/", &m), 0),
                  "reply %d: no whole response (a reset or a cut one?): %s", i + 1, m.error);
        cr_assert(eq(int, m.status, 502), "reply %d: %d (%s)", i + 1, m.status, m.body);
        cr_assert(eq(ptr, strstr(m.body, "hello"), NULL), "part of the bad body went out: %s",
                  m.body);
        cr_assert(eq(sz, h_fake_conns(f), (size_t)(i + 1)));
    }
    h_proxy_finish(p);
}

Test(hostile, a_control_byte_in_the_reason_phrase_gets_502_like_one_in_a_header_value,
     .timeout = H_TEST_TIMEOUT)
{
    static const char nul[] = "HTTP/1.1 200 O\0K\r\nContent-Length: 2\r\n\r\nok";
    static const char soh[] = "HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\nok";
    static const char hdr[] = "HTTP/1.1 200 OK\r\nX-Bad: a\x01z\r\nContent-Length: 2\r\n\r\nok";
    struct h_fake_reply replies[] = {
        {nul, sizeof(nul) - 1, H_FAKE_KEEP},
        {soh, sizeof(soh) - 1, H_FAKE_KEEP},
        {hdr, sizeof(hdr) - 1, H_FAKE_KEEP},
        {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0, H_FAKE_KEEP},
    };
    struct h_fake *f = h_fake_start(replies, 4);
    struct h_proxy *p = proxy_to_fake(f);
    const char *what[] = {"NUL in the reason phrase", "0x01 in the reason phrase",
                          "0x01 in a header value", "a clean response"};
    int want[] = {502, 502, 502, 200};
    /* The 502's text says which check refused the response (in a header value, llhttp's own
     * check comes first: "invalid response from the node"). */
    const char *why[] = {"502 Bad Gateway: control character in the response's reason phrase\n",
                         "502 Bad Gateway: control character in the response's reason phrase\n",
                         NULL, "ok"};

    for (int i = 0; i < 4; i++) {
        struct h_conn *c = h_connect(p->port);
        struct h_msg m;

        cr_assert(eq(int, h_get(c, "/", &m), 0), "%s: %s", what[i], m.error);
        cr_assert(eq(int, m.status, want[i]), "%s: %d (%s)", what[i], m.status, m.body);
        if (why[i] != NULL)
            cr_assert(eq(str, m.body, (char *)why[i]), "%s", what[i]);
        cr_assert(eq(ptr, memchr(m.head, '\x01', m.head_len), NULL), "%s reached the client",
                  what[i]);
        cr_assert(eq(sz, h_fake_conns(f), (size_t)(i + 1)));
    }
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ the state file */

/* The state tests' upstreams: x1 in x, y1 and y2 in y. */
struct state_rig {
    struct h_upstream *x1, *y1, *y2;
    struct h_proxy_opts o;
};

static void
state_rig_init(struct state_rig *r, const char *state)
{
    r->x1 = h_upstream_start("x1", NULL);
    r->y1 = h_upstream_start("y1", NULL);
    r->y2 = h_upstream_start("y2", NULL);
    r->o = (struct h_proxy_opts){.x = {{r->x1->port}},
                                 .y = {{r->y1->port}, {r->y2->port}},
                                 .weight = "5",
                                 .extra_yaml = state_yaml(state)};
}

Test(hostile, an_acknowledged_weight_or_drain_survives_kill_9, .timeout = H_TEST_TIMEOUT)
{
    struct state_rig r;
    struct h_proxy *p;
    const char *y2;
    int fd;

    state_rig_init(&r, h_path("crossfade.state"));
    y2 = h_fmt("127.0.0.1:%d", r.y2->port);
    p = h_proxy_start(&r.o);
    for (int cycle = 0; cycle < 4; cycle++) {
        unsigned weight = 37 + (unsigned)cycle * 3; /* 37, 40, 43, 46: a new value each time */
        const char *ok = h_fmt("ok: weight y %u.00 (was ", weight);
        bool drain = cycle % 2 == 0;
        char *reply;
        int code;

        fd = h_admin_connect(p);
        reply = h_admin_cmd(fd, h_fmt("set weight %u", weight));
        cr_assert(eq(int, strncmp(reply, ok, strlen(ok)), 0), "cycle %d: %s", cycle, reply);
        cr_assert(eq(ptr, strstr(reply, "note:"), NULL), "cycle %d: %s", cycle, reply);
        reply = h_admin_cmd(fd, h_fmt("%s node y/%s", drain ? "drain" : "enable", y2));
        cr_assert(eq(str, reply,
                     h_fmt("ok: node y/%s %s (was %s)\n", y2, drain ? "draining" : "up",
                           drain ? "up" : "draining")),
                  "cycle %d", cycle);
        /* No goodbye: the acknowledgement must already be on disk. */
        code = h_proc_stop(p->proc, SIGKILL, 5000);
        cr_assert(eq(int, code, 128 + SIGKILL), "cycle %d: crossfade ended with %d", cycle, code);

        p = h_proxy_start(&r.o);
        fd = h_admin_connect(p);
        cr_assert(eq(str, h_admin_cmd(fd, "show weight"),
                     h_fmt("x %u.00\ny %u.00\n", 100 - weight, weight)),
                  "cycle %d: the weight acknowledged before kill -9 was lost", cycle);
        cr_assert(h_admin_wait_node(fd, "y", y2, H_NODE_STATE, drain ? "draining" : "up", 1000),
                  "cycle %d: the node's state acknowledged before kill -9 was lost: %s", cycle,
                  h_admin_node_line(fd, "y", y2));
        reply = h_admin_cmd(fd, "show state");
        cr_assert(ne(ptr, strstr(reply, "\nat_start loaded\n"), NULL), "cycle %d: %s", cycle,
                  reply);
    }
    h_proxy_finish(p);
}

/*
 * The reply of a change the state file could not keep: the ok line, then the note. crossfade
 * logged the failed write (its `failures`-th) before the reply went.
 */
static void
assert_unsaved(struct h_proxy *p, size_t failures, const char *reply, const char *ok_line,
               const char *state)
{
    const char *note = "note: in force, but not written to the state file (";
    const char *tail = "): a restart would lose it\n";
    size_t n = strlen(reply), ok = strlen(ok_line);

    cr_assert(eq(int, strncmp(reply, ok_line, ok), 0), "%s", reply);
    cr_assert(eq(sz, h_log_count(p->proc->log_path, "event=state_file_write_failed"), failures),
              "the write did not fail as expected (reply: %s)", reply);
    cr_assert(eq(int, strncmp(reply + ok, note, strlen(note)), 0),
              "the state file could not be written (event=state_file_write_failed: %s), yet the "
              "reply has no note: %s",
              h_log_line(p->proc->log_path, "event=state_file_write_failed"), reply);
    cr_assert(ge(sz, n, ok + strlen(note) + strlen(tail)), "%s", reply);
    cr_assert(eq(str, (char *)reply + n - strlen(tail), (char *)tail), "%s", reply);
    cr_assert(ne(ptr, (void *)strstr(reply + ok, state), NULL),
              "the note does not name the file: %s", reply);
    cr_assert(eq(ptr, (void *)strchr(reply + ok, '\n'), (void *)(reply + n - 1)),
              "one note line: %s", reply);
}

Test(hostile, a_change_the_state_file_cannot_keep_is_in_force_and_its_reply_says_so,
     .timeout = H_TEST_TIMEOUT)
{
    const char *dir = h_path("state-dir");
    const char *state = h_path("state-dir/crossfade.state");
    struct state_rig r;
    struct h_proxy *p;
    const char *text;
    char *reply;
    int fd;

    cr_assert(eq(int, mkdir(dir, 0700), 0), "mkdir %s: %s", dir, strerror(errno));
    state_rig_init(&r, state);
    p = h_proxy_start(&r.o);
    fd = h_admin_connect(p);
    cr_assert(eq(str, h_admin_cmd(fd, "set weight 20"), "ok: weight y 20.00 (was 5.00)\n"));
    cr_assert(ne(ptr, h_read_file(state, NULL), NULL), "no state file at %s", state);

    /* The directory goes away. */
    cr_assert(eq(int, unlink(state), 0), "unlink %s: %s", state, strerror(errno));
    cr_assert(eq(int, rmdir(dir), 0), "rmdir %s: %s", dir, strerror(errno));
    reply = h_admin_cmd(fd, "set weight 37");
    assert_unsaved(p, 1, reply, "ok: weight y 37.00 (was 20.00)\n", state);
    cr_assert(eq(str, h_admin_cmd(fd, "show weight"), "x 63.00\ny 37.00\n"), "not in force");
    reply = h_admin_cmd(fd, "pin tester-1 y");
    assert_unsaved(p, 2, reply, "ok: pinned \"tester-1\" to y\n", state);
    cr_assert(eq(str, h_admin_cmd(fd, "show pins"), "pin tester-1 y\n"), "not in force");

    /* A file where the directory was. */
    h_write_file("state-dir", "not a directory\n");
    reply = h_admin_cmd(fd, "set weight 38");
    assert_unsaved(p, 3, reply, "ok: weight y 38.00 (was 37.00)\n", state);
    cr_assert(eq(str, h_admin_cmd(fd, "show weight"), "x 62.00\ny 38.00\n"), "not in force");

    /* The directory is back: the next change is written, and says nothing more. */
    cr_assert(eq(int, unlink(dir), 0));
    cr_assert(eq(int, mkdir(dir, 0700), 0));
    cr_assert(eq(str, h_admin_cmd(fd, "set weight 39"), "ok: weight y 39.00 (was 38.00)\n"));
    text = h_read_file(state, NULL);
    cr_assert(ne(ptr, (void *)text, NULL), "no state file at %s", state);
    cr_assert(ne(ptr, strstr(text, "\nweight 39.00\n"), NULL), "%s", text);
    cr_assert(ne(ptr, strstr(text, "\npin tester-1 y\n"), NULL), "%s", text);
    h_proxy_finish(p);
}

Test(hostile, a_state_file_with_absurd_times_is_reported_with_its_line_and_the_config_used,
     .timeout = H_TEST_TIMEOUT)
{
    /* Valid but for the ramp's start: 9223372036854775000 ms is near INT64_MAX. */
    const char *text = "version 1\n"
                       "weight 25.00\n"
                       "ramp running 0.00 30.00 10.00 9223372036854775000 4500 0 0 1000 1234 "
                       "ramp 30 over 4500ms step 10\n";
    const char *state = h_write_file("crossfade.state", "%s", text);
    const char *why =
        h_fmt("%s:3: ramp: expected the start in ms since 1970, from 2000 to 2100", state);
    struct state_rig r;
    struct h_proxy *p;
    const char *line;
    char *show;
    int fd;

    state_rig_init(&r, state);
    p = h_proxy_start(&r.o);
    fd = h_admin_connect(p);
    /* crossfade starts from the config, says which file and line, and leaves the file alone. */
    cr_assert(eq(str, h_admin_cmd(fd, "show weight"), "x 95.00\ny 5.00\n"));
    cr_assert(eq(str, h_admin_cmd(fd, "show ramp"), "no ramp\n"));
    show = h_admin_cmd(fd, "show state");
    cr_assert(ne(ptr,
                 strstr(show, h_fmt("\nat_start unusable: started from the config: %s\n", why)),
                 NULL),
              "%s", show);
    line = h_log_line(p->proc->log_path, "event=state_file_unusable");
    cr_assert(ne(ptr, (void *)line, NULL), "no event=state_file_unusable in the log");
    cr_assert(ne(ptr, strstr(line, h_fmt("path=%s error=\"%s\"", state, why)), NULL), "%s", line);
    cr_assert(ne(ptr, strstr(line, " ERROR admin: "), NULL), "%s", line);
    cr_assert(eq(str, h_read_file(state, NULL), (char *)text), "the file was changed");
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ the admin socket full */

#define ADMIN_SLOTS 64 /* ADM_MAX_CLIENTS */

/*
 * Opens the ADMIN_SLOTS connections crossfade serves at once and runs a command on each, so that
 * each one is known to hold a slot. The first is the harness's, which also makes sure that
 * crossfade saw the close of the connection h_proxy_start used (it would hold a slot else).
 */
static void
fill_admin_slots(struct h_proxy *p, int fds[ADMIN_SLOTS])
{
    fds[0] = h_admin_connect(p);
    h_admin_sync(fds[0]);
    for (int i = 1; i < ADMIN_SLOTS; i++) {
        fds[i] = unix_connect(p->admin_socket);
        cr_assert(ne(int, fds[i], -1), "admin connection %d: %s", i + 1, strerror(errno));
    }
    for (int i = 0; i < ADMIN_SLOTS; i++)
        cr_assert(eq(str, h_admin_cmd(fds[i], "show weight"), "x 70.00\ny 30.00\n"),
                  "admin connection %d", i + 1);
}

/* Closes the connections fill_admin_slots opened (fds[0] is the harness's): the SIGTERM that
 * follows comes while crossfade is still seeing them go. */
static void
close_admin_slots(int fds[ADMIN_SLOTS])
{
    for (int i = 1; i < ADMIN_SLOTS; i++)
        close(fds[i]);
}

/* Under the sanitizers, h_proxy_finish fails on any leak: libevent runs 32 deferred callbacks per
 * turn, and the bufferevents of clients whose hang-up was still queued when the loop stopped
 * were never released. */
Test(hostile, admin_clients_that_hang_up_just_before_sigterm_leave_nothing_behind,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("x1", NULL);

    for (int round = 0; round < 3; round++) {
        struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}, .weight = "30"});
        int fds[ADMIN_SLOTS];

        fill_admin_slots(p, fds);
        close_admin_slots(fds);
        h_proxy_finish(p);
    }
}

Test(hostile, with_every_admin_slot_young_a_new_connection_is_told_why_it_is_closed,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("x1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}, .weight = "30"});
    struct adm_reader r = {.fd = -1};
    int fds[ADMIN_SLOTS];

    fill_admin_slots(p, fds);
    /* Every one of them answered a moment ago: none has been idle ADM_EVICT_IDLE_MS (2 s). */
    r.fd = unix_connect(p->admin_socket);
    cr_assert(ne(int, r.fd, -1), "connect: %s", strerror(errno));
    while (!r.closed)
        cr_assert(adm_recv(&r, H_IO_TIMEOUT_MS), "no reply and no close on the 65th connection");
    cr_assert(eq(str, r.buf != NULL ? r.buf : (char *)"",
                 "error: too many admin connections (64); try again later\n\n"),
              "the 65th connection got this");
    close(r.fd);
    /* Nobody was evicted for it. */
    for (int i = 0; i < ADMIN_SLOTS; i++)
        cr_assert(eq(str, h_admin_cmd(fds[i], "show weight"), "x 70.00\ny 30.00\n"),
                  "admin connection %d", i + 1);
    cr_assert(h_log_wait(p->proc->log_path, "event=client_refused reason=too_many_clients", 1000));
    close_admin_slots(fds);
    h_proxy_finish(p);
}

Test(hostile, xfctl_rollback_gets_through_64_idle_admin_connections, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("x1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}, .weight = "30"});
    char *argv[] = {(char *)h_bin("xfctl"), "-s", (char *)p->admin_socket, "rollback", NULL};
    const char *goodbye = "error: closed to make room for a new admin connection (64 open; this "
                          "one idle for ";
    int fds[ADMIN_SLOTS], evicted = -1, code, fd;
    char *out = NULL, *err = NULL;
    uint64_t t0;

    fill_admin_slots(p, fds);
    t0 = h_now_ms();
    code = h_run(argv, 10000, &out, &err);
    cr_assert(eq(int, code, 0), "xfctl rollback exited %d after %llu ms; stdout: %s; stderr: %s",
              code, (unsigned long long)(h_now_ms() - t0), out, err);
    cr_assert(eq(str, out, "ok: rolled back: weight y 0.00 (was 30.00)\n"), "stderr: %s", err);
    /* The one idle the longest made room, and was told so before its close. */
    for (int i = 0; i < ADMIN_SLOTS; i++) {
        struct adm_reader r = {.fd = fds[i]};

        if (!adm_recv(&r, 0))
            continue;
        cr_assert(eq(int, evicted, -1), "connections %d and %d were both closed", evicted + 1,
                  i + 1);
        evicted = i;
        while (!r.closed)
            cr_assert(adm_recv(&r, H_IO_TIMEOUT_MS), "connection %d: a goodbye but no close",
                      i + 1);
        cr_assert(ne(ptr, r.buf, NULL), "connection %d was closed without a word", i + 1);
        cr_assert(eq(int, strncmp(r.buf, goodbye, strlen(goodbye)), 0), "connection %d got: %s",
                  i + 1, r.buf);
        cr_assert(ne(ptr, strstr(r.buf, "s)\n\n"), NULL), "connection %d got: %s", i + 1, r.buf);
    }
    cr_assert(eq(int, evicted, 0), "the connection idle the longest (1) was not the one closed");
    cr_assert(h_log_wait(p->proc->log_path, "reason=evicted", 1000));
    /* The rollback is in force (a slot is free again: xfctl left). */
    fd = h_admin_connect(p);
    cr_assert(eq(str, h_admin_cmd(fd, "show weight"), "x 100.00\ny 0.00\n"));
    close_admin_slots(fds);
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ DNS off the event loop */

#define DNS_DELAY_MS 3000

Test(hostile, add_node_with_a_slow_host_name_keeps_the_proxy_answering, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_upstream *y1 = h_upstream_start("y1", NULL);
    struct h_upstream *y2 = h_upstream_start("y2", NULL);
    const char *dns =
        h_write_file("dns", "gw-slow.test 127.0.0.1 %d\ngw-bad.test fail 0\n", DNS_DELAY_MS);
    struct h_proxy *p = h_proxy_start(
        &(struct h_proxy_opts){.x = {{x1->port}}, .y = {{y1->port}}, .fake_dns = dns});
    const char *node = h_fmt("gw-slow.test:%d", y2->port);
    struct adm_reader r = {.fd = h_admin_connect(p)};
    unsigned answered_meanwhile = 0;
    uint64_t t0, worst = 0;
    const char *add = h_fmt("add node y %s\n", node);
    char *reply;

    t0 = h_now_ms();
    send_all(r.fd, add, strlen(add));
    /* While the name resolves (DNS_DELAY_MS), the proxy answers: one request every 200 ms. */
    while (!adm_recv(&r, 200)) {
        struct h_conn *c = h_connect(p->port);
        uint64_t t1 = h_now_ms(), took;
        struct h_msg m;

        cr_assert(lt(u64, t1 - t0, (uint64_t)(DNS_DELAY_MS + H_IO_TIMEOUT_MS)),
                  "no reply to add node");
        cr_assert(eq(int, h_get(c, "/", &m), 0), "%s", m.error);
        took = h_now_ms() - t1;
        cr_assert(eq(int, m.status, 200));
        cr_assert(eq(str, (char *)h_header(&m, "X-Upstream"), "x1"));
        /* A sanity bound against a loop frozen by getaddrinfo (which takes 3 s), not a
         * benchmark. */
        cr_assert(lt(u64, took, (uint64_t)1000),
                  "a request took %llu ms while add node resolved a name",
                  (unsigned long long)took);
        worst = took > worst ? took : worst;
        h_close(c);
        answered_meanwhile++;
    }
    adm_wait_replies(&r, 1, H_IO_TIMEOUT_MS);
    cr_assert(ge(u64, h_now_ms() - t0, (uint64_t)(DNS_DELAY_MS - 100)),
              "add node answered before the lookup could end: %s", r.buf);
    cr_assert(ge(int, (int)answered_meanwhile, 5),
              "only %u requests were answered while the name resolved", answered_meanwhile);
    cr_assert(eq(str, r.buf, h_fmt("ok: added node y/%s weight 1\n\n", node)));
    cr_assert(ne(ptr, (void *)h_admin_node_line(r.fd, "y", node), NULL), "%s",
              h_admin_cmd(r.fd, "show nodes"));

    reply = h_admin_cmd(r.fd, h_fmt("add node y gw-bad.test:%d", y2->port));
    cr_assert(eq(int,
                 strncmp(reply, h_fmt("error: bad address \"gw-bad.test:%d\": ", y2->port),
                         strlen(h_fmt("error: bad address \"gw-bad.test:%d\": ", y2->port))),
                 0),
              "%s", reply);
    cr_assert(
        eq(ptr, (void *)h_admin_node_line(r.fd, "y", h_fmt("gw-bad.test:%d", y2->port)), NULL));
    cr_log_info("%u requests answered while add node resolved (the slowest in %llu ms)",
                answered_meanwhile, (unsigned long long)worst);
    h_proxy_finish(p);
}

/* Replaces the fake DNS file at once (a lookup never sees it half written). */
static void
dns_set(const char *dns, const char *text)
{
    const char *tmp = h_write_file("dns.tmp", "%s", text);

    cr_assert(eq(int, rename(tmp, dns), 0), "rename %s: %s", tmp, strerror(errno));
}

/* The X-Upstream of GET / on a new connection. */
static const char *
upstream_of_get(int port)
{
    struct h_conn *c = h_connect(port);
    const char *name;
    struct h_msg m;

    cr_assert(eq(int, h_get(c, "/", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200), "%d: %s", m.status, m.body);
    name = h_header(&m, "X-Upstream");
    cr_assert(ne(ptr, (void *)name, NULL), "no X-Upstream");
    h_close(c);
    return name;
}

Test(hostile, resolve_interval_moves_traffic_to_the_new_address_of_a_node,
     .timeout = H_TEST_TIMEOUT)
{
    /* Two upstreams on the same port, one on 127.0.0.1 and one on 127.0.0.2: the host name of
     * the node is all that tells them apart. */
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_upstream *a = h_upstream_start("a1", NULL);
    const char *b_log = h_path("b1.log");
    char *b_argv[] = {(char *)h_bin("xf-upstream"),
                      "--listen",
                      (char *)h_fmt("127.0.0.2:%d", a->port),
                      "--name",
                      "b1",
                      NULL};
    const char *dns = h_write_file("dns", "gw-move.test 127.0.0.1 0\n");
    const char *node = h_fmt("gw-move.test:%d", a->port);
    struct h_proxy *p;
    const char *line;
    uint64_t until;

    h_spawn("xf-upstream b1", b_argv, b_log, NULL);
    cr_assert(h_log_wait(b_log, "listening on 127.0.0.2:", 10000), "b1 did not start: %s",
              h_read_file(b_log, NULL));
    p = h_proxy_start(&(struct h_proxy_opts){.x = {{x1->port}},
                                             .y = {{a->port, .host = "gw-move.test"}},
                                             .y_extra = "    resolve_interval: 1s\n",
                                             .weight = "100",
                                             .fake_dns = dns});
    for (int i = 0; i < 3; i++)
        cr_assert(eq(str, (char *)upstream_of_get(p->port), "a1"));

    dns_set(dns, "gw-move.test 127.0.0.2 0\n");
    cr_assert(h_log_wait(p->proc->log_path, "event=node_address_changed", 5000),
              "no event=node_address_changed 5 s after the name's address changed");
    line = h_log_line(p->proc->log_path, "event=node_address_changed");
    cr_assert(
        ne(ptr, strstr(line, h_fmt("cluster=y node=%s from=127.0.0.1 to=127.0.0.2", node)), NULL),
        "%s", line);
    /* The new snapshot is published just after the line is logged. */
    until = h_now_ms() + 5000;
    while (strcmp(upstream_of_get(p->port), "b1") != 0)
        cr_assert(lt(u64, h_now_ms(), until), "traffic stayed on 127.0.0.1");
    for (int i = 0; i < 5; i++)
        cr_assert(eq(str, (char *)upstream_of_get(p->port), "b1"), "traffic went back");
    /* The node kept its name: the operator still knows it as it was configured. */
    cr_assert(ne(ptr, (void *)h_admin_node_line(h_admin_connect(p), "y", node), NULL));
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ a long show pins */

#define PINS      10000 /* BAL_PINS_MAX */
#define PIN_KEY   210   /* bytes of each key: PINS of them are more than ADM_OUT_MAX (256 KiB) */
#define PINS_CMDS 100   /* the last ones, pinned by commands sent in one write */

/* Key i: its number, zero-padded, so that the keys sort in their order, then filler. */
static void
pin_key(char *key, int i)
{
    int n = snprintf(key, PIN_KEY + 1, "%05d-", i);

    for (int k = n; k < PIN_KEY; k++)
        key[k] = (char)('a' + (i + k) % 26);
    key[PIN_KEY] = '\0';
}

/*
 * The pins come from the state file, but for the last PINS_CMDS, pinned by commands: each `pin`
 * copies the pin table, which makes 10,000 commands take seconds (minutes under ASan), while the
 * file is read in one pass. show pins is the same either way.
 */
Test(hostile, show_pins_returns_ten_thousand_long_pins_in_full, .timeout = H_TEST_TIMEOUT)
{
    if (getenv("XF_TSAN") != NULL)
        cr_skip_test("ThreadSanitizer makes 10,000 pin copies too slow for the test's time");
    size_t cap = (size_t)PINS * (PIN_KEY + 16) + 64, len = 0;
    char *text = h_alloc(cap), key[PIN_KEY + 1];
    struct h_upstream *u = h_upstream_start("x1", NULL);
    const char *state = h_path("crossfade.state");
    struct adm_reader r;
    struct h_proxy *p;
    const char *line;
    size_t n_lines = 0;

    len += (size_t)snprintf(text, cap, "version 1\nweight 0.00\n");
    for (int i = 0; i < PINS - PINS_CMDS; i++) {
        pin_key(key, i);
        len += (size_t)snprintf(text + len, cap - len, "pin %s y\n", key);
    }
    h_write_file("crossfade.state", "%s", text);
    p = h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}, .extra_yaml = state_yaml(state)});
    r = (struct adm_reader){.fd = h_admin_connect(p)};
    cr_assert(ne(ptr, strstr(h_admin_cmd(r.fd, "show state"), "\nat_start loaded\n"), NULL));

    len = 0;
    for (int i = PINS - PINS_CMDS; i < PINS; i++) {
        pin_key(key, i);
        len += (size_t)snprintf(text + len, cap - len, "pin %s y\n", key);
    }
    send_all(r.fd, text, len);
    adm_wait_replies(&r, PINS_CMDS, H_IO_TIMEOUT_MS);
    cr_assert(eq(ptr, strstr(r.buf, "error:"), NULL), "a pin was refused: %.300s",
              strstr(r.buf, "error:"));
    cr_assert(eq(str, h_admin_cmd(r.fd, "pin one-too-many y"),
                 "error: the pin table is full (10000 pins); unpin some first\n"));

    r.len = r.scanned = r.replies = 0;
    send_all(r.fd, "show pins\n", 10);
    adm_wait_replies(&r, 1, H_IO_TIMEOUT_MS);
    cr_assert(eq(sz, r.scanned, r.len), "bytes after the reply of show pins");
    cr_assert(gt(sz, r.len, (size_t)(256 * 1024)), "the reply (%zu bytes) is not past the cap",
              r.len);
    line = r.buf;
    for (int i = 0; i < PINS; i++) {
        const char *eol = strchr(line, '\n');
        const char *want;

        cr_assert(ne(ptr, (void *)eol, NULL), "the reply ends after %zu lines", n_lines);
        pin_key(key, i);
        want = h_fmt("pin %s y", key);
        cr_assert(eq(int, (int)(eol - line), (int)strlen(want)), "line %d: %.*s", i + 1,
                  (int)(eol - line), line);
        cr_assert(eq(int, memcmp(line, want, strlen(want)), 0), "line %d: %.*s", i + 1,
                  (int)(eol - line), line);
        n_lines++;
        line = eol + 1;
    }
    cr_assert(eq(str, (char *)line, "\n"), "more after the last pin: %.300s", line);
    cr_assert(eq(sz, n_lines, (size_t)PINS));
    /* The connection goes on after the long reply. */
    cr_assert(eq(str, h_admin_cmd(r.fd, "show weight"), "x 100.00\ny 0.00\n"));
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ slow clients' memory */

#define SLOW_CLIENTS     2000
#define SLOW_MAX_KIB_PER 4 /* on average; it was about 13 before heads started in 1 KiB */

/* Raises the soft RLIMIT_NOFILE of the test to at least `want` (asserts that it can). */
static void
nofile_at_least(rlim_t want)
{
    struct rlimit rl;

    cr_assert(eq(int, getrlimit(RLIMIT_NOFILE, &rl), 0));
    if (rl.rlim_cur >= want)
        return;
    cr_assert(ge(u64, (uint64_t)rl.rlim_max, (uint64_t)want),
              "RLIMIT_NOFILE's hard limit %llu is below the %llu descriptors this test needs",
              (unsigned long long)rl.rlim_max, (unsigned long long)want);
    rl.rlim_cur = want;
    cr_assert(eq(int, setrlimit(RLIMIT_NOFILE, &rl), 0), "setrlimit: %s", strerror(errno));
}

Test(hostile, a_partial_request_head_costs_less_than_4_kib_per_connection,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u;
    struct h_proxy *p;
    struct h_conn **conns = h_alloc(SLOW_CLIENTS * sizeof(*conns));
    char filler[201];
    const char *head;
    long before, after;
    struct h_conn *warm;
    struct h_msg m;
    int fd;

    if (h_under_sanitizer())
        cr_skip_test("RSS says nothing of live memory under the sanitizers' allocator");
    nofile_at_least(SLOW_CLIENTS + 256);
    u = h_upstream_start("x1", NULL);
    /* The descriptors and the connection limit allow them all; the header timeout lets them
     * wait for the whole test. */
    p = h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}},
                                             .max_connections = SLOW_CLIENTS + 100,
                                             .client_header_ms = 120000,
                                             .nofile = SLOW_CLIENTS + 256});
    fd = h_admin_connect(p);
    memset(filler, 'a', sizeof(filler) - 1);
    filler[sizeof(filler) - 1] = '\0';
    head = h_fmt("GET / HTTP/1.1\r\nHost: a\r\nX-A: %s\r\n", filler);

    /* Served once first: the buffers of a request are there before the count starts. */
    warm = h_connect(p->port);
    cr_assert(eq(int, h_get(warm, "/", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    h_close(warm);
    h_await_stat(fd, "client_connections", NULL, 0);
    before = h_rss_kib(p->proc->pid);
    cr_assert(gt(long, before, 0L), "no VmRSS for crossfade");

    for (int i = 0; i < SLOW_CLIENTS; i++) {
        conns[i] = h_connect(p->port);
        cr_assert(eq(int, h_send_str(conns[i], head), 0), "client %d: %s", i + 1, strerror(errno));
    }
    h_await_stat(fd, "client_connections", NULL, SLOW_CLIENTS);
    h_admin_sync(fd); /* every head sent before is read: they were ready before the sync */
    after = h_rss_kib(p->proc->pid);
    cr_log_info("%d partial heads: RSS %ld -> %ld KiB (%.2f KiB each)", SLOW_CLIENTS, before, after,
                (double)(after - before) / SLOW_CLIENTS);
    cr_assert(lt(long, after - before, (long)SLOW_CLIENTS * SLOW_MAX_KIB_PER),
              "%d connections holding a partial head raised RSS from %ld to %ld KiB: %.2f KiB "
              "each (limit %d)",
              SLOW_CLIENTS, before, after, (double)(after - before) / SLOW_CLIENTS,
              SLOW_MAX_KIB_PER);
    /* They are all still waiting, none answered. */
    for (int i = 0; i < SLOW_CLIENTS; i += 199)
        cr_assert(eq(int, h_conn_wait(conns[i], 0), H_OPEN), "client %d got an answer", i + 1);
    for (int i = 0; i < SLOW_CLIENTS; i++)
        h_close(conns[i]);
    h_await_stat(fd, "client_connections", NULL, 0);
    h_proxy_finish(p);
}
