/* tests/integration/test_admin.c -- the admin socket of a running crossfade, and bin/xfctl. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/integration/harness.h"

/* Admin connections the test opened, closed at teardown. */
static int adm_fds[80];
static size_t adm_n_fds;

static void
adm_teardown(void)
{
    for (size_t i = 0; i < adm_n_fds; i++)
        if (adm_fds[i] != -1)
            close(adm_fds[i]);
    adm_n_fds = 0;
    h_teardown();
}

TestSuite(admin, .init = h_setup, .fini = adm_teardown);

/* Connects to the admin socket: the descriptor, or -1 with errno. */
static int
adm_try_connect(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    cr_assert(ne(int, fd, -1));
    cr_assert(lt(sz, strlen(path), sizeof(sun.sun_path)));
    memcpy(sun.sun_path, path, strlen(path) + 1);
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
        int e = errno;

        close(fd);
        errno = e;
        return -1;
    }
    cr_assert(lt(sz, adm_n_fds, sizeof(adm_fds) / sizeof(adm_fds[0])));
    adm_fds[adm_n_fds++] = fd;
    return fd;
}

/* Connects to the proxy's admin socket. h_proxy_start returns once the proxy's port accepts; the
 * admin socket is created a moment later, so a refusal is retried for a while. */
static int
adm_connect(const struct h_proxy *p)
{
    uint64_t until = h_now_ms() + 5000;
    int fd;

    while ((fd = adm_try_connect(p->admin_socket)) == -1 &&
           (errno == ENOENT || errno == ECONNREFUSED) && h_now_ms() < until)
        h_sleep_ms(10);
    cr_assert(ne(int, fd, -1), "cannot connect to %s: %s", p->admin_socket, strerror(errno));
    return fd;
}

static void
adm_send(int fd, const void *data, size_t len)
{
    const char *s = data;

    while (len > 0) {
        ssize_t n = send(fd, s, len, MSG_NOSIGNAL);

        cr_assert(gt(long, (long)n, 0L), "send to the admin socket: %s", strerror(errno));
        s += n;
        len -= (size_t)n;
    }
}

/* Reads up to timeout_ms for bytes; appends them to *buf. Returns bytes read, 0 on EOF, -1 on
 * timeout. */
static long
adm_read_some(int fd, char **buf, size_t *len, size_t *cap, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    ssize_t n;

    if (poll(&pfd, 1, timeout_ms) != 1)
        return -1;
    if (*cap - *len < 4096) {
        *cap = *cap * 2 + 8192;
        *buf = h_realloc(*buf, *cap);
    }
    n = recv(fd, *buf + *len, *cap - *len - 1, 0);
    if (n <= 0)
        return 0;
    *len += (size_t)n;
    (*buf)[*len] = '\0';
    return n;
}

/* Reads one reply (up to its closing empty line) and returns it without that line. */
static char *
adm_reply(int fd)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;

    for (;;) {
        char *end = buf != NULL ? strstr(buf, "\n\n") : NULL;

        if (end != NULL) {
            cr_assert(eq(ptr, end + 2, buf + len), "bytes after one reply: \"%s\"", end + 2);
            end[1] = '\0';
            return buf;
        }
        cr_assert(gt(long, adm_read_some(fd, &buf, &len, &cap, H_IO_TIMEOUT_MS), 0L),
                  "no complete reply; got \"%s\"", buf != NULL ? buf : "");
    }
}

/* Sends one command and returns its reply (each line ends with LF; the empty line removed). */
static char *
adm_cmd(int fd, const char *line)
{
    adm_send(fd, line, strlen(line));
    adm_send(fd, "\n", 1);
    return adm_reply(fd);
}

/* Sends one command on a new connection and returns the reply, or the refusal that comes first
 * (and then the close) while the server has 64 clients; the connection is closed. */
static char *
adm_try_cmd(const struct h_proxy *p, const char *line)
{
    int fd = adm_connect(p);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    char *end = NULL;

    /* A refused connection may be closed already: a failed send is not the point. */
    (void)!send(fd, line, strlen(line), MSG_NOSIGNAL);
    (void)!send(fd, "\n", 1, MSG_NOSIGNAL);
    while (end == NULL && adm_read_some(fd, &buf, &len, &cap, H_IO_TIMEOUT_MS) > 0)
        end = strstr(buf, "\n\n");
    cr_assert(ne(ptr, end, NULL), "no reply to \"%s\"; got \"%s\"", line, buf != NULL ? buf : "");
    end[1] = '\0';
    close(fd);
    adm_fds[--adm_n_fds] = -1;
    return buf;
}

/* The node named by X-Upstream for GET / with X-Key: key on an open client connection. */
static const char *
node_for(struct h_conn *c, const char *key)
{
    struct h_msg m;
    const char *name;

    cr_assert(
        eq(int, h_sendf(c, "GET / HTTP/1.1\r\nHost: %s\r\nX-Key: %s\r\n\r\n", H_HOST, key), 0));
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    name = h_header(&m, "X-Upstream");
    cr_assert(ne(ptr, (void *)name, NULL), "no X-Upstream header");
    return name;
}

/*
 * A proxy keyed on X-Key with one node "x1" in x and one "y1" in y, at weight `weight`, whose
 * admin socket answers: one connection says quit and is closed by the server (so it no longer
 * counts against the client limit) before this returns.
 */
static struct h_proxy *
start_xy(const char *weight)
{
    struct h_upstream *x = h_upstream_start("x1", NULL);
    struct h_upstream *y = h_upstream_start("y1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{x->port}},
        .y = {{y->port}},
        .weight = weight,
        .split_extra = "  key: [\"header:X-Key\"]\n  expose: X-Crossfade-Route\n"});
    int fd = adm_connect(p);
    char *buf = NULL;
    size_t len = 0, cap = 0;

    cr_assert(eq(str, adm_cmd(fd, "quit"), "ok: bye\n"));
    cr_assert(eq(long, adm_read_some(fd, &buf, &len, &cap, H_IO_TIMEOUT_MS), 0L),
              "the server did not close after quit");
    close(fd);
    adm_fds[--adm_n_fds] = -1;
    return p;
}

/* Asserts that the proxy still routes a request. */
static void
assert_proxy_serves(struct h_proxy *p)
{
    struct h_msg m;

    cr_assert(eq(int, h_get(h_connect(p->port), "/", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
}

Test(admin, the_socket_is_mode_0600_and_owned_by_the_proxy_user, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = start_xy("0");
    struct stat st;

    cr_assert(eq(int, lstat(p->admin_socket, &st), 0), "%s: %s", p->admin_socket, strerror(errno));
    cr_assert(eq(int, (int)(st.st_mode & S_IFMT), (int)S_IFSOCK), "%s is not a socket",
              p->admin_socket);
    cr_assert(eq(int, (int)(st.st_mode & 07777), 0600), "mode %o", (unsigned)st.st_mode & 07777);
    cr_assert(eq(uint, (unsigned)st.st_uid, (unsigned)getuid()));
    h_proxy_finish(p);
    cr_assert(ne(int, access(p->admin_socket, F_OK), 0), "the socket file is left after exit");
}

Test(admin, show_weight_and_set_weight_round_trip, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = start_xy("25");
    int fd = adm_connect(p);

    cr_assert(eq(str, adm_cmd(fd, "show weight"), "x 75.00\ny 25.00\n"));
    cr_assert(eq(str, adm_cmd(fd, "set weight 12.5"), "ok: weight y 12.50 (was 25.00)\n"));
    cr_assert(eq(str, adm_cmd(fd, "show weight"), "x 87.50\ny 12.50\n"));
    /* Another client sees the same state; CRLF works too. */
    fd = adm_connect(p);
    adm_send(fd, "show weight\r\n", 13);
    cr_assert(eq(str, adm_reply(fd), "x 87.50\ny 12.50\n"));
    h_proxy_finish(p);
}

Test(admin, set_weight_applies_to_an_open_clients_next_request, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = start_xy("0");
    struct h_conn *c = h_connect(p->port);
    int fd = adm_connect(p);
    static const char *const keys[] = {"alice", "bob", "carol", "dave", "erin"};

    for (size_t i = 0; i < 5; i++)
        cr_assert(eq(str, (char *)node_for(c, keys[i]), "x1"), "weight 0, key %s", keys[i]);
    for (int round = 0; round < 3; round++) {
        cr_assert(eq(str, adm_cmd(fd, "set weight 100"), "ok: weight y 100.00 (was 0.00)\n"));
        for (size_t i = 0; i < 5; i++)
            cr_assert(eq(str, (char *)node_for(c, keys[i]), "y1"), "weight 100, key %s", keys[i]);
        cr_assert(eq(str, adm_cmd(fd, "set weight 0"), "ok: weight y 0.00 (was 100.00)\n"));
        for (size_t i = 0; i < 5; i++)
            cr_assert(eq(str, (char *)node_for(c, keys[i]), "x1"), "weight 0, key %s", keys[i]);
    }
    h_proxy_finish(p);
}

Test(admin, rollback_names_the_weight_it_rolled_back_from, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = start_xy("37.5");
    struct h_conn *c = h_connect(p->port);
    int fd = adm_connect(p);

    cr_assert(eq(str, adm_cmd(fd, "rollback"), "ok: rolled back: weight y 0.00 (was 37.50)\n"));
    for (int i = 0; i < 20; i++)
        cr_assert(eq(str, (char *)node_for(c, h_fmt("client-%d", i)), "x1"));
    cr_assert(eq(str, adm_cmd(fd, "promote"), "ok: promoted: weight y 100.00 (was 0.00)\n"));
    cr_assert(eq(str, (char *)node_for(c, "client-1"), "y1"));
    h_proxy_finish(p);
}

Test(admin, which_agrees_with_where_requests_go, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = start_xy("50");
    struct h_conn *c = h_connect(p->port);
    int fd = adm_connect(p);

    for (int i = 0; i < 20; i++) {
        const char *key = h_fmt("k%d", i);
        char *reply = adm_cmd(fd, h_fmt("which header:X-Key=%s", key));
        const char *node = node_for(c, key);

        cr_assert(ne(ptr, strstr(reply, h_fmt("\nside %c\n", node[0])), NULL),
                  "key %s went to %s; which said:\n%s", key, node, reply);
    }
    h_proxy_finish(p);
}

Test(admin, bad_input_gets_an_error_and_the_proxy_keeps_serving, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = start_xy("0");
    int fd = adm_connect(p);
    char *big = h_alloc(20000);
    static const char garbage[] = "\x00\xff\x01\x02binary\x1b[2J\x7f";
    char *reply;

    memset(big, 'A', 19999);
    big[19999] = '\n';
    adm_send(fd, big, 20000);
    cr_assert(eq(str, adm_reply(fd),
                 "error: line too long (over 4096 bytes); the rest of it is skipped\n"));
    adm_send(fd, garbage, sizeof(garbage) - 1);
    adm_send(fd, "\n", 1);
    reply = adm_reply(fd);
    cr_assert(eq(int, strncmp(reply, "error: ", 7), 0), "%s", reply);
    cr_assert(eq(str, adm_cmd(fd, "show wieght"),
                 "error: unknown command \"show wieght\"; did you mean \"show weight\"?\n"));
    cr_assert(eq(str, adm_cmd(fd, "set weight 12.345"),
                 "error: weight must be a number from 0 to 100 with at most two decimals, got "
                 "\"12.345\"\n"));
    cr_assert(eq(str, adm_cmd(fd, "set weight -1"),
                 "error: weight must be a number from 0 to 100 with at most two decimals, got "
                 "\"-1\"\n"));
    /* The same connection still works, nothing changed, and the proxy serves. */
    cr_assert(eq(str, adm_cmd(fd, "show weight"), "x 100.00\ny 0.00\n"));
    assert_proxy_serves(p);
    h_proxy_finish(p);
}

Test(admin, commands_in_one_write_are_answered_in_order, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = start_xy("0");
    int fd = adm_connect(p);
    static const char cmds[] = "set weight 10\n\nshow weight\r\nrollback\nnope\n";
    char *buf = NULL;
    size_t len = 0, cap = 0;
    const char *want = "ok: weight y 10.00 (was 0.00)\n\n"
                       "x 90.00\ny 10.00\n\n"
                       "ok: rolled back: weight y 0.00 (was 10.00)\n\n"
                       "error: unknown command \"nope\"; \"help\" lists the commands\n\n";

    adm_send(fd, cmds, sizeof(cmds) - 1);
    while (len < strlen(want))
        cr_assert(gt(long, adm_read_some(fd, &buf, &len, &cap, H_IO_TIMEOUT_MS), 0L), "got %s",
                  buf != NULL ? buf : "");
    cr_assert(eq(str, buf, (char *)want));
    h_proxy_finish(p);
}

Test(admin, a_half_closed_client_still_gets_its_replies, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = start_xy("0");
    int fd = adm_connect(p);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    long n;

    /* What `echo ... | socat - UNIX-CONNECT:...` does; the last line has no LF. */
    adm_send(fd, "show weight\nset weight 3", 24);
    cr_assert(eq(int, shutdown(fd, SHUT_WR), 0));
    while ((n = adm_read_some(fd, &buf, &len, &cap, H_IO_TIMEOUT_MS)) > 0)
        ;
    cr_assert(eq(long, n, 0L), "the server did not close after answering");
    cr_assert(eq(str, buf, "x 100.00\ny 0.00\n\nok: weight y 3.00 (was 0.00)\n\n"));
    h_proxy_finish(p);
}

Test(admin, abrupt_disconnects_leave_the_server_working, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = start_xy("0");

    for (int i = 0; i < 20; i++) {
        int fd = adm_connect(p);
        struct linger lg = {1, 0};

        adm_send(fd, "show wei", 8);
        if (i % 2 == 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(fd);
        adm_fds[adm_n_fds - 1] = -1;
    }
    cr_assert(eq(str, adm_cmd(adm_connect(p), "show weight"), "x 100.00\ny 0.00\n"));
    assert_proxy_serves(p);
    h_proxy_finish(p);
}

Test(admin, a_flooding_client_that_never_reads_disturbs_no_one, .timeout = 60)
{
    struct h_proxy *p = start_xy("0");
    int flood = adm_connect(p), other;
    size_t sent = 0, total = 10000 * 5;
    uint64_t until = h_now_ms() + 10000;

    /* 10,000 "help" (each reply about 800 bytes), sent without reading a byte. */
    cr_assert(eq(int, fcntl(flood, F_SETFL, O_NONBLOCK), 0));
    while (sent < total && h_now_ms() < until) {
        char chunk[5 * 100];
        size_t n = 0;
        ssize_t k;

        while (n < sizeof(chunk) && sent + n < total) {
            memcpy(chunk + n, "help\n", 5);
            n += 5;
        }
        k = send(flood, chunk, n, MSG_NOSIGNAL);
        if (k > 0) {
            sent += (size_t)k;
        } else {
            /* Room in the socket: the server reads on while it holds less than 64 KiB. */
            struct pollfd pfd = {.fd = flood, .events = POLLOUT};
            uint64_t now = h_now_ms();

            if (now < until)
                (void)poll(&pfd, 1, (int)(until - now));
        }
    }
    /* Other admin clients and the proxy go on as usual. */
    other = adm_connect(p);
    for (int i = 0; i < 20; i++) {
        cr_assert(eq(str, adm_cmd(other, "set weight 100"), "ok: weight y 100.00 (was 0.00)\n"));
        cr_assert(
            eq(str, adm_cmd(other, "rollback"), "ok: rolled back: weight y 0.00 (was 100.00)\n"));
    }
    cr_assert(eq(str, adm_cmd(adm_connect(p), "show weight"), "x 100.00\ny 0.00\n"));
    assert_proxy_serves(p);
    /* The flooder is dropped once it has read nothing for the write timeout (10 s). */
    cr_assert(h_log_wait(h_path("crossfade.log"), "event=client_dropped", 25000),
              "the flooder was not dropped");
    cr_assert(eq(str, adm_cmd(other, "show weight"), "x 100.00\ny 0.00\n"));
    h_proxy_finish(p);
}

Test(admin, past_64_clients_a_new_one_is_told_and_closed, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = start_xy("0");
    int fds[64], extra;
    char *buf = NULL, *reply;
    size_t len = 0, cap = 0;
    uint64_t until;

    for (int i = 0; i < 64; i++) {
        fds[i] = adm_connect(p);
        cr_assert(eq(str, adm_cmd(fds[i], "show weight"), "x 100.00\ny 0.00\n"));
    }
    extra = adm_connect(p);
    while (adm_read_some(extra, &buf, &len, &cap, H_IO_TIMEOUT_MS) > 0)
        ;
    cr_assert(ne(ptr, buf, NULL), "no answer to the 65th client");
    cr_assert(eq(str, buf, "error: too many admin connections (64); try again later\n\n"));
    close(fds[0]);
    adm_fds[0] = -1;
    /* The slot is free once the server has read the close: until then a newcomer is refused. */
    until = h_now_ms() + H_IO_TIMEOUT_MS;
    while (strcmp(reply = adm_try_cmd(p, "show weight"), "x 100.00\ny 0.00\n") != 0) {
        cr_assert(eq(int, strncmp(reply, "error: too many admin connections", 33), 0), "%s", reply);
        cr_assert(lt(u64, h_now_ms(), until), "no slot came free after a client closed");
        h_sleep_ms(10);
    }
    h_proxy_finish(p);
}

Test(admin, show_events_records_changes_with_the_peer_uid, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = start_xy("0");
    int fd = adm_connect(p);
    char *events;

    adm_cmd(fd, "set weight 5");
    adm_cmd(fd, "rollback");
    events = adm_cmd(fd, "show events");
    cr_assert(ne(ptr, strstr(events, h_fmt("uid=%u pid=", (unsigned)getuid())), NULL), "%s",
              events);
    cr_assert(ne(ptr, strstr(events, "\"set weight 5\" weight 0.00 -> 5.00\n"), NULL), "%s",
              events);
    cr_assert(ne(ptr, strstr(events, "\"rollback\" weight 5.00 -> 0.00\n"), NULL), "%s", events);
    cr_assert(ne(ptr,
                 strstr(h_read_file(h_path("crossfade.log"), NULL),
                        "event=weight_changed from=0.00 to=5.00"),
                 NULL));
    h_proxy_finish(p);
}

Test(admin, a_stale_socket_file_is_replaced_at_start, .timeout = H_TEST_TIMEOUT)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct h_proxy *p;

    /* A socket file nobody listens on, as a crashed crossfade leaves it. */
    memcpy(sun.sun_path, h_path("admin.sock"), strlen(h_path("admin.sock")) + 1);
    cr_assert(eq(int, bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0), "%s", strerror(errno));
    close(fd);
    p = start_xy("0");
    cr_assert(eq(str, adm_cmd(adm_connect(p), "show weight"), "x 100.00\ny 0.00\n"));
    h_proxy_finish(p);
}

/* Runs crossfade on a config whose listen port is free and whose admin socket is `p`'s, and
 * returns its stderr; it must exit 1. */
static char *
second_start_fails(void)
{
    const char *cfg = h_proxy_write_config(
        "second.yaml", &(struct h_proxy_opts){.x = {{h_free_port()}}}, h_free_port());
    char *err;
    int code =
        h_run((char *[]){(char *)h_bin("crossfade"), "-c", (char *)cfg, NULL}, 10000, NULL, &err);

    cr_assert(eq(int, code, 1), "crossfade exited %d:\n%s", code, err);
    return err;
}

Test(admin, a_second_crossfade_on_the_same_socket_fails_to_start, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = start_xy("0");
    char *err = second_start_fails();

    cr_assert(ne(ptr, strstr(err, "another process answers"), NULL), "%s", err);
    cr_assert(ne(ptr, strstr(err, p->admin_socket), NULL), "%s", err);
    /* The first one still has its socket. */
    cr_assert(eq(str, adm_cmd(adm_connect(p), "show weight"), "x 100.00\ny 0.00\n"));
    h_proxy_finish(p);
}

Test(admin, a_file_that_is_not_a_socket_is_never_removed, .timeout = H_TEST_TIMEOUT)
{
    const char *path = h_write_file("admin.sock", "precious\n");
    char *err = second_start_fails();

    cr_assert(ne(ptr, strstr(err, "is not a socket"), NULL), "%s", err);
    cr_assert(eq(str, h_read_file(path, NULL), "precious\n"));
}

/* ------------------------------------------------------------------ xfctl */

static int
xfctl(const char *sock, char **out, char **err, const char *cmd1, const char *cmd2,
      const char *cmd3)
{
    char *argv[] = {(char *)h_bin("xfctl"), "-s",         (char *)sock, (char *)cmd1,
                    (char *)cmd2,           (char *)cmd3, NULL};

    return h_run(argv, 10000, out, err);
}

Test(admin, xfctl_exits_0_on_success_and_prints_the_reply, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = start_xy("25");
    char *out, *err;

    cr_assert(eq(int, xfctl(p->admin_socket, &out, &err, "show", "weight", NULL), 0), "%s", err);
    cr_assert(eq(str, out, "x 75.00\ny 25.00\n"));
    cr_assert(eq(int, xfctl(p->admin_socket, &out, &err, "set", "weight", "40"), 0), "%s", err);
    cr_assert(eq(str, out, "ok: weight y 40.00 (was 25.00)\n"));
    h_proxy_finish(p);
}

Test(admin, xfctl_exits_1_on_an_error_reply, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = start_xy("0");
    char *out, *err;

    /* "-1" after the command is an argument, not an option of xfctl. */
    cr_assert(eq(int, xfctl(p->admin_socket, &out, &err, "set", "weight", "-1"), 1));
    cr_assert(eq(int, strncmp(err, "error: weight must be", 21), 0), "%s", err);
    cr_assert(eq(str, out, ""));
    cr_assert(eq(int, xfctl(p->admin_socket, &out, &err, "shwo", "weight", NULL), 1));
    h_proxy_finish(p);
}

Test(admin, xfctl_exits_2_naming_the_socket_when_it_cannot_connect, .timeout = H_TEST_TIMEOUT)
{
    const char *sock = h_path("nobody.sock");
    char *out, *err;

    cr_assert(eq(int, xfctl(sock, &out, &err, "show", "weight", NULL), 2));
    cr_assert(ne(ptr, strstr(err, sock), NULL), "%s", err);
    cr_assert(ne(ptr, strstr(err, strerror(ENOENT)), NULL), "%s", err);
}

Test(admin, xfctl_finds_the_socket_in_crossfade_socket, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p = start_xy("0");
    char *out, *err;

    setenv("CROSSFADE_SOCKET", p->admin_socket, 1);
    cr_assert(
        eq(int, h_run((char *[]){(char *)h_bin("xfctl"), "rollback", NULL}, 10000, &out, &err), 0),
        "%s", err);
    cr_assert(eq(str, out, "ok: rolled back: weight y 0.00 (unchanged)\n"));
    unsetenv("CROSSFADE_SOCKET");
    h_proxy_finish(p);
}
