/* tests/integration/test_signals.c -- graceful stop on SIGTERM and SIGINT; SIGPIPE is harmless;
 * SIGHUP is ignored, SIGUSR1 reopens the access log, a fatal signal removes the admin socket. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/integration/harness.h"

TestSuite(signals, .init = h_setup, .fini = h_teardown);

/*
 * With a request in flight (the node answers after 2 s), `sig` closes the listener at once,
 * the request still completes, and crossfade exits 0.
 */
static void
check_graceful_stop(int sig)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}});
    struct h_conn *c = h_connect(p->port);
    uint64_t deadline;
    struct h_msg m;
    int refused = 0, code;

    h_sendf(c, "GET /delay/2000 HTTP/1.1\r\nHost: %s\r\n\r\n", H_HOST);
    cr_assert(h_upstream_wait_requests(u, 1, H_IO_TIMEOUT_MS),
              "the request did not reach the node");
    kill(p->proc->pid, sig);
    deadline = h_now_ms() + 1500;
    while (h_now_ms() < deadline && (refused = h_try_connect(p->port, 200)) != ECONNREFUSED)
        h_sleep_ms(20);
    cr_assert(eq(int, refused, ECONNREFUSED),
              "new connections were still accepted 1.5 s after signal %d (%s)", sig,
              strerror(refused));
    cr_assert(h_proc_alive(p->proc), "crossfade did not wait for the request in flight");
    cr_assert(eq(int, h_read_response(c, &m), 0), "the request in flight failed: %s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, m.body, "u1\n"));
    code = h_proc_wait(p->proc, (int)p->shutdown_ms + 5000);
    cr_assert(eq(int, code, 0), "crossfade exited with %d after signal %d", code, sig);
}

Test(signals, sigterm_finishes_the_request_in_flight_refuses_new_connections_and_exits_0,
     .timeout = H_TEST_TIMEOUT)
{
    check_graceful_stop(SIGTERM);
}

Test(signals, sigint_finishes_the_request_in_flight_refuses_new_connections_and_exits_0,
     .timeout = H_TEST_TIMEOUT)
{
    check_graceful_stop(SIGINT);
}

Test(signals, a_client_resetting_mid_download_does_not_stop_the_proxy, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}});
    struct h_conn *c = h_connect(p->port);
    int adm = h_admin_connect(p);
    struct h_msg m;

    h_sendf(c, "GET /bytes/1073741824 HTTP/1.1\r\nHost: %s\r\n\r\n", H_HOST);
    cr_assert(eq(int, h_read_head(c, &m, H_IO_TIMEOUT_MS), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(int, h_conn_wait(c, H_IO_TIMEOUT_MS), H_DATA), "no body came");
    h_abort(c); /* the proxy's next writes get ECONNRESET, then EPIPE (SIGPIPE unless ignored) */
    /* Once the proxy has closed the connection, it has been through those writes. */
    h_await_stat(adm, "client_connections", NULL, 0);
    cr_assert(h_proc_alive(p->proc), "crossfade died when a client went away mid-body");
    cr_assert(eq(int, h_get(h_connect(p->port), "/", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, m.body, "u1\n"));
    h_proxy_finish(p);
}

Test(signals, sighup_with_an_unchanged_file_reloads_nothing_and_the_proxy_keeps_serving,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}});
    struct h_conn *c = h_connect(p->port);
    struct h_msg m;

    cr_assert(eq(int, h_get(c, "/before", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(int, kill(p->proc->pid, SIGHUP), 0));
    cr_assert(
        h_log_wait(p->proc->log_path, "event=reload result=ok config=" /* the path, then */, 5000),
        "no \"event=reload result=ok\" in crossfade's log (alive: %d)", h_proc_alive(p->proc));
    cr_assert(eq(sz,
                 h_log_count(p->proc->log_path,
                             "changes=\"listeners +0 -0; x nodes +0 -0; y nodes +0 -0\""),
                 (size_t)1),
              "the same file changes nothing");
    cr_assert(h_proc_alive(p->proc), "crossfade died of SIGHUP (code %d)", p->proc->code);
    /* The connection open before the signal and a new one are both served. */
    cr_assert(eq(int, h_get(c, "/after", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, m.body, "u1\n"));
    cr_assert(eq(int, h_get(h_connect(p->port), "/after/new", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, m.body, "u1\n"));
    cr_assert(eq(sz, h_log_count(p->proc->log_path, "event=signal signal=TERM"), (size_t)0),
              "SIGHUP began a shutdown");
    h_proxy_finish(p);
}

Test(signals, sigusr1_reopens_the_access_log_so_a_renamed_file_keeps_the_old_lines,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}});
    const char *rotated = h_path("access.log.1");
    struct h_conn *c = h_connect(p->port);
    char *old_log, *new_log;
    struct h_msg m;

    cr_assert(eq(int, h_get(c, "/log/before", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    /* What logrotate does: rename, then tell the process. The line above may still be in the
     * buffer: it belongs to the old file all the same. */
    cr_assert(eq(int, rename(p->access_log, rotated), 0), "rename %s: %s", p->access_log,
              strerror(errno));
    cr_assert(eq(int, kill(p->proc->pid, SIGUSR1), 0));
    cr_assert(h_log_wait(p->proc->log_path, "event=reopened", 5000),
              "no \"event=reopened\" in crossfade's log (alive: %d)", h_proc_alive(p->proc));
    cr_assert(h_proc_alive(p->proc), "crossfade died of SIGUSR1 (code %d)", p->proc->code);
    cr_assert(eq(int, access(p->access_log, F_OK), 0), "no new file at %s after the reopen",
              p->access_log);
    cr_assert(eq(int, h_get(c, "/log/after", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    h_proxy_finish(p); /* the log is buffered: all of it is written by the time crossfade exits */
    old_log = h_read_file(rotated, NULL);
    new_log = h_read_file(p->access_log, NULL);
    cr_assert(ne(ptr, old_log, NULL), "the renamed file %s is gone", rotated);
    cr_assert(ne(ptr, new_log, NULL), "no access log at %s", p->access_log);
    cr_expect(ne(ptr, strstr(old_log, "/log/before"), NULL),
              "the line written before the signal is not in the renamed file:\n%s", old_log);
    cr_expect(eq(ptr, strstr(old_log, "/log/after"), NULL),
              "the line written after the signal went to the renamed file:\n%s", old_log);
    cr_expect(ne(ptr, strstr(new_log, "/log/after"), NULL),
              "the line written after the signal is not in the new file:\n%s", new_log);
    cr_expect(eq(ptr, strstr(new_log, "/log/before"), NULL),
              "the line written before the signal is in the new file:\n%s", new_log);
}

/*
 * `sig` (whose default action ends the process) kills crossfade by that signal, and the admin
 * socket file it created is gone: a socket left behind would make the next start believe another
 * crossfade is running, or an operator's command hang on nobody.
 */
static void
check_fatal_signal_removes_the_admin_socket(int sig)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}});
    struct h_msg m;
    int fd = h_admin_connect(p), code;

    cr_assert(eq(str, h_admin_cmd(fd, "show weight"), "x 100.00\ny 0.00\n"));
    cr_assert(eq(int, h_get(h_connect(p->port), "/", &m), 0), "%s", m.error);
    cr_assert(eq(int, access(p->admin_socket, F_OK), 0), "no admin socket at %s", p->admin_socket);
    cr_assert(eq(int, kill(p->proc->pid, sig), 0));
    code = h_proc_wait(p->proc, 10000);
    cr_assert(eq(int, code, 128 + sig), "crossfade ended with %d after signal %d (expected %d)",
              code, sig, 128 + sig);
    errno = 0;
    cr_assert(ne(int, access(p->admin_socket, F_OK), 0),
              "the admin socket %s is still there after signal %d", p->admin_socket, sig);
    cr_assert(eq(int, errno, ENOENT), "access %s: %s", p->admin_socket, strerror(errno));
}

Test(signals, sigquit_kills_crossfade_and_removes_the_admin_socket, .timeout = H_TEST_TIMEOUT)
{
    check_fatal_signal_removes_the_admin_socket(SIGQUIT);
}

Test(signals, sigabrt_kills_crossfade_and_removes_the_admin_socket, .timeout = H_TEST_TIMEOUT)
{
    check_fatal_signal_removes_the_admin_socket(SIGABRT);
}

Test(signals, sigusr2_kills_crossfade_and_removes_the_admin_socket, .timeout = H_TEST_TIMEOUT)
{
    check_fatal_signal_removes_the_admin_socket(SIGUSR2);
}

/* Reads one datagram from fd within timeout_ms into buf (NUL-terminated); its length or -1. */
static ssize_t
recv_notify(int fd, char *buf, size_t cap, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    ssize_t n;

    if (poll(&pfd, 1, timeout_ms) != 1)
        return -1;
    n = recv(fd, buf, cap - 1, 0);
    if (n >= 0)
        buf[n] = '\0';
    return n;
}

/* A datagram socket bound at path, as systemd's NOTIFY_SOCKET. */
static int
notify_listen(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    cr_assert(ne(int, fd, -1));
    cr_assert(lt(sz, strlen(path), sizeof(sun.sun_path)));
    memcpy(sun.sun_path, path, strlen(path) + 1);
    cr_assert(eq(int, bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0), "bind %s: %s", path,
              strerror(errno));
    return fd;
}

Test(signals, a_notify_socket_hears_ready_once_serving_reloading_around_a_reload_and_stopping,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    const char *path = h_path("notify.sock");
    struct h_proxy *p;
    char buf[512];
    int fd = notify_listen(path);
    /* As systemd runs a Type=notify unit: READY=1 once the listeners accept. */
    p = h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}, .notify_socket = path});
    cr_assert(gt(sz, (size_t)recv_notify(fd, buf, sizeof(buf), H_IO_TIMEOUT_MS), 0),
              "no notification after start-up");
    cr_assert(ne(ptr, strstr(buf, "READY=1"), NULL), "first notification: %s", buf);
    /* systemctl reload: RELOADING=1 (with the monotonic time systemd 253+ asks for), then
     * READY=1 once every worker has the file. */
    kill(p->proc->pid, SIGHUP);
    cr_assert(gt(sz, (size_t)recv_notify(fd, buf, sizeof(buf), H_IO_TIMEOUT_MS), 0),
              "no notification after SIGHUP");
    cr_assert(ne(ptr, strstr(buf, "RELOADING=1\nMONOTONIC_USEC="), NULL), "at SIGHUP: %s", buf);
    cr_assert(gt(sz, (size_t)recv_notify(fd, buf, sizeof(buf), H_IO_TIMEOUT_MS), 0),
              "no notification after the reload");
    cr_assert(ne(ptr, strstr(buf, "READY=1"), NULL), "after the reload: %s", buf);
    kill(p->proc->pid, SIGTERM);
    cr_assert(gt(sz, (size_t)recv_notify(fd, buf, sizeof(buf), H_IO_TIMEOUT_MS), 0),
              "no notification after SIGTERM");
    cr_assert(ne(ptr, strstr(buf, "STOPPING=1"), NULL), "notification after SIGTERM: %s", buf);
    cr_assert(eq(int, h_proc_wait(p->proc, 10000), 0));
    close(fd);
}

/*
 * Under systemd, `reexec` moves the service to the new process: the old one says
 * MAINPID=<new pid> (systemd accepts it: the new process is its child, in the unit's cgroup)
 * and no STOPPING=1, as the service goes on; the new one says READY=1, and STOPPING=1 when it is
 * stopped in turn.
 */
Test(signals, reexec_tells_the_notify_socket_the_new_main_pid_and_not_stopping,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    const char *path = h_path("notify.sock"), *reply, *heard = "";
    struct h_proxy *p;
    struct h_proc *next;
    char buf[512];
    int fd = notify_listen(path), adm;
    long pid;
    p = h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}, .notify_socket = path});
    cr_assert(gt(sz, (size_t)recv_notify(fd, buf, sizeof(buf), H_IO_TIMEOUT_MS), 0));
    cr_assert(ne(ptr, strstr(buf, "READY=1"), NULL), "first notification: %s", buf);

    adm = h_admin_connect(p);
    h_admin_send(adm, "reexec");
    reply = h_admin_reply(adm, 30000);
    cr_assert(eq(int, strncmp(reply, "ok: pid ", 8), 0), "reexec answered: %s", reply);
    pid = strtol(reply + 8, NULL, 10);
    cr_assert(eq(int, h_proc_wait(p->proc, (int)p->shutdown_ms + 5000), 0));
    next = h_adopt("reexec", (pid_t)pid, p->proc->log_path);
    /* Everything said until the old process exited, by both processes. */
    while (recv_notify(fd, buf, sizeof(buf), 200) > 0)
        heard = h_fmt("%s%s\n--\n", heard, buf);
    cr_assert(ne(ptr, strstr(heard, h_fmt("MAINPID=%ld\n", pid)), NULL),
              "no MAINPID=%ld among:\n%s", pid, heard);
    cr_assert(ne(ptr, strstr(heard, "READY=1"), NULL), "the new process said no READY=1:\n%s",
              heard);
    cr_assert(eq(ptr, strstr(heard, "STOPPING=1"), NULL), "STOPPING=1 across a reexec:\n%s", heard);
    kill(next->pid, SIGTERM);
    cr_assert(gt(sz, (size_t)recv_notify(fd, buf, sizeof(buf), H_IO_TIMEOUT_MS), 0),
              "no notification after SIGTERM to the new process");
    cr_assert(ne(ptr, strstr(buf, "STOPPING=1"), NULL), "after SIGTERM: %s", buf);
    cr_assert(eq(int, h_proc_wait(next, 10000), 0));
    close(fd);
}
