/* tests/integration/test_operations.c -- how crossfade behaves when operations go wrong: out of
 * descriptors, a dead node, a listen address already taken at start-up. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/integration/harness.h"

TestSuite(operations, .init = h_setup, .fini = h_teardown);

/* The descriptor limit of crossfade in the EMFILE test: it starts with about a dozen open (the
 * standard three, epoll, libevent's pipes, the listener, the admin socket and its spare, the
 * access log; a few more under the sanitizers), so the clients below take the rest. */
#define OPS_NOFILE  48
#define OPS_CLIENTS 80 /* more than OPS_NOFILE: some stay in the listen queue */

/* The number after "key=" in `line`, or -1. */
static long long
ops_field(const char *line, const char *key)
{
    const char *p = line != NULL ? strstr(line, h_fmt(" %s=", key)) : NULL;

    if (p == NULL)
        return -1;
    return strtoll(p + strlen(key) + 2, NULL, 10);
}

/* The line of `text` that holds `needle` (harness-owned, without its LF), or "". */
static const char *
ops_line_of(const char *text, const char *needle)
{
    const char *hit = text != NULL ? strstr(text, needle) : NULL;
    const char *start;

    if (hit == NULL)
        return "";
    for (start = hit; start > text && start[-1] != '\n'; start--)
        ;
    return h_fmt("%.*s", (int)strcspn(start, "\n"), start);
}

Test(operations, out_of_descriptors_pauses_accepting_logs_once_keeps_the_admin_socket_and_resumes,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p =
        h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}, .nofile = OPS_NOFILE});
    const char *log = p->proc->log_path;
    struct h_conn *clients[OPS_CLIENTS];
    long long cpu0, cpu1, busy_ms;
    uint64_t t0, t1;
    const char *line;
    struct h_msg m;
    char *reply;
    int fd;

    /* Served before the descriptors run out. */
    cr_assert(eq(int, h_get(h_connect(p->port), "/", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    /* The kernel completes these connections whether crossfade accepts them or not; each one it
     * accepts holds a descriptor, until none is left. */
    for (size_t i = 0; i < OPS_CLIENTS; i++)
        clients[i] = h_connect(p->port);
    cr_assert(h_log_wait(log, "event=accept_paused", 5000),
              "no \"event=accept_paused\" with %d clients and RLIMIT_NOFILE %d", OPS_CLIENTS,
              OPS_NOFILE);
    /* A second out of descriptors: retries every 100 ms fail again, none is logged, and the
     * process does not spin on the listener that stays readable. */
    cpu0 = h_cpu_ms(p->proc->pid);
    t0 = h_now_ms();
    h_sleep_ms(1000); /* the second must pass: nothing to wait for, a busy loop to catch */
    cpu1 = h_cpu_ms(p->proc->pid);
    t1 = h_now_ms();
    cr_assert(ge(i64, cpu0, 0LL), "cannot read /proc/%d/stat", (int)p->proc->pid);
    cr_assert(ge(i64, cpu1, 0LL), "cannot read /proc/%d/stat", (int)p->proc->pid);
    busy_ms = cpu1 - cpu0;
    /* A sanity bound against a busy loop (which takes a whole CPU), not a benchmark. */
    cr_assert(lt(i64, busy_ms * 4, (long long)(t1 - t0)),
              "crossfade used %lld ms of CPU in %llu ms while out of descriptors: it spins",
              busy_ms, (unsigned long long)(t1 - t0));
    cr_assert(eq(sz, h_log_count(log, "event=accept_paused"), (size_t)1),
              "%zu \"event=accept_paused\" lines in one episode (expected one)",
              h_log_count(log, "event=accept_paused"));
    cr_assert(eq(sz, h_log_count(log, "event=accept_failed"), (size_t)0),
              "the proxy's failed accepts are logged one by one");
    cr_assert(eq(sz, h_log_count(log, "event=accept_resumed"), (size_t)0),
              "accepting resumed while every descriptor was taken");
    cr_assert(h_proc_alive(p->proc));

    /* The operator can still ask what is going on: the admin socket keeps a spare descriptor. */
    fd = h_admin_connect(p);
    reply = h_admin_cmd(fd, "show weight");
    cr_assert(eq(str, reply, "x 100.00\ny 0.00\n"), "show weight while out of descriptors: %s",
              reply);
    cr_expect(h_log_wait(log, "event=accept_with_spare", 1000),
              "the admin connection was not taken with the spare descriptor (was any missing?)");

    /* Descriptors come back: accepting resumes, the queued connections are taken (and found
     * closed), and a new client is served. */
    for (size_t i = 0; i < OPS_CLIENTS; i++)
        h_close(clients[i]);
    cr_assert(eq(int, h_get(h_connect(p->port), "/after", &m), 0),
              "no answer once the clients closed: %s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, m.body, "u1\n"));
    cr_assert(h_log_wait(log, "event=accept_resumed", 5000), "no \"event=accept_resumed\"");
    line = h_log_line(log, "event=accept_resumed");
    /* The episode lasted the second above, and its retries failed without a line each. */
    cr_expect(ge(i64, ops_field(line, "paused_ms"), 900LL), "%s", line);
    cr_expect(ge(i64, ops_field(line, "failed_accepts"), 2LL), "%s", line);
    /* (Taking the queued connections may run out again for a moment before their closes are
     * read: a second, short episode with its own pair of lines is fine.) */
    h_proxy_finish(p);
}

Test(operations, a_dead_node_is_logged_once_per_run_and_summed_up_when_it_answers,
     .timeout = H_TEST_TIMEOUT)
{
    enum { N = 50 };
    int port = h_free_port(); /* nothing listens there yet */
    /* No retry and no ejection: every request tries the dead node, and each one is a fault. */
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{port}}, .x_extra = "    outlier: {failures: 0}\n", .extra_yaml = "retries: 0\n"});
    const char *log = p->proc->log_path;
    const char *addr = h_fmt("127.0.0.1:%d", port);
    const char *line;
    struct h_msg m;

    for (int i = 0; i < N; i++) {
        struct h_conn *c = h_connect(p->port);

        cr_assert(eq(int, h_get(c, "/", &m), 0), "request %d: %s", i, m.error);
        cr_assert(eq(int, m.status, 502), "request %d to a dead node got %d", i, m.status);
        h_close(c);
    }
    cr_assert(eq(sz, h_log_count(log, "event=connect_failed"), (size_t)1),
              "%zu \"event=connect_failed\" lines for %d requests to one dead node (expected one)",
              h_log_count(log, "event=connect_failed"), N);
    line = h_log_line(log, "event=connect_failed");
    cr_assert(ne(ptr, strstr(line, h_fmt("node=%s ", addr)), NULL), "%s", line);
    cr_assert(eq(sz, h_log_count(log, "event=node_faults_end"), (size_t)0),
              "the run ended while the node was still dead");

    /* The node comes to life: its next answer ends the run with a count. */
    h_upstream_start("x1", &(struct h_upstream_opts){.port = port});
    cr_assert(eq(int, h_get(h_connect(p->port), "/", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, m.body, "x1\n"));
    cr_assert(h_log_wait(log, "event=node_faults_end", 5000), "no \"event=node_faults_end\"");
    line = h_log_line(log, "event=node_faults_end");
    cr_expect(ne(ptr, strstr(line, h_fmt("node=%s ", addr)), NULL), "%s", line);
    cr_expect(ne(ptr, strstr(line, h_fmt(" faults=%d ", N)), NULL), "not faults=%d: %s", N, line);
    cr_expect(ne(ptr, strstr(line, " reason=answered"), NULL), "%s", line);
    /* The summary names the last fault by its event's name alone, one flat key=value line. */
    cr_expect(ne(ptr, strstr(line, " last_fault=connect_failed"), NULL), "%s", line);
    cr_expect(eq(ptr, strchr(line, '"'), NULL), "a quoted value in the summary: %s", line);
    cr_assert(eq(sz, h_log_count(log, "event=connect_failed"), (size_t)1),
              "a fault logged after the first");
    h_proxy_finish(p);
}

Test(operations, a_listen_address_taken_at_start_up_exits_1_naming_it_without_libevent_warnings,
     .timeout = H_TEST_TIMEOUT)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int taken_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int port = h_free_port(), taken, code;
    const char *cfg, *addr, *line;
    char *out, *err;

    cr_assert(ge(int, taken_fd, 0), "socket: %s", strerror(errno));
    cr_assert(eq(int, bind(taken_fd, (struct sockaddr *)&sa, sizeof(sa)), 0), "bind: %s",
              strerror(errno));
    cr_assert(eq(int, listen(taken_fd, 8), 0));
    cr_assert(eq(int, getsockname(taken_fd, (struct sockaddr *)&sa, &len), 0));
    taken = ntohs(sa.sin_port);
    addr = h_fmt("127.0.0.1:%d", taken);
    /* The first listener opens, the second (listen[1]) finds its port taken. */
    cfg = h_proxy_write_config(
        "crossfade.yaml", &(struct h_proxy_opts){.x = {{h_free_port()}}, .admin_api_port = taken},
        port);
    code =
        h_run((char *[]){(char *)h_bin("crossfade"), "-c", (char *)cfg, NULL}, 10000, &out, &err);
    close(taken_fd);
    cr_assert(eq(int, code, 1), "crossfade exited %d with listen[1] taken:\n%s", code, err);
    cr_assert(ne(ptr, strstr(err, "event=start_failed"), NULL), "no event=start_failed:\n%s", err);
    line = ops_line_of(err, "event=start_failed");
    cr_assert(ne(ptr, strstr(line, addr), NULL), "event=start_failed does not name %s:\n%s", addr,
              err);
    cr_assert(eq(ptr, strstr(err, "event has no event_base set"), NULL),
              "libevent complained about an event never set up:\n%s", err);
    cr_assert(eq(ptr, strstr(err, "[warn]"), NULL), "a libevent warning:\n%s", err);
    cr_assert(eq(ptr, strstr(err, "[err]"), NULL), "a libevent error:\n%s", err);
    cr_assert(ne(int, access(h_path("admin.sock"), F_OK), 0), "the admin socket was left behind");
}
