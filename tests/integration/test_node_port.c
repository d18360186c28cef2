/* tests/integration/test_node_port.c -- listen[].node_port: a listener whose requests go to each
 * node's host at another port (the gateways' Admin API next to their traffic port). */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <string.h>

#include "tests/integration/harness.h"

TestSuite(node_port, .init = h_setup, .fini = h_teardown);

/* A fake node's keep-alive answer that names it in X-Upstream and in the body ("A\n"). */
static const char *
np_reply(const char *name)
{
    return h_fmt("HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nX-Upstream: %s\r\n\r\n%s\n",
                 strlen(name) + 1, name, name);
}

/* crossfade with one x node at 127.0.0.1:traffic_port, its proxy listener, and an admin_api
 * listener at *api_port whose node_port is admin_port. */
static struct h_proxy *
np_proxy(int traffic_port, int admin_port, int *api_port)
{
    *api_port = h_free_port();
    return h_proxy_start(&(struct h_proxy_opts){
        .x = {{traffic_port}},
        .admin_api_port = *api_port,
        .admin_api_extra = h_fmt("node_port: %d", admin_port),
    });
}

/* The line of `text` that holds `needle` (harness-owned, without its LF), or "". */
static const char *
np_line_of(const char *text, const char *needle)
{
    const char *hit = text != NULL ? strstr(text, needle) : NULL;
    const char *start;

    if (hit == NULL)
        return "";
    for (start = hit; start > text && start[-1] != '\n'; start--)
        ;
    return h_fmt("%.*s", (int)strcspn(start, "\n"), start);
}

Test(node_port, a_node_port_listener_sends_requests_to_the_nodes_host_at_that_port,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *traffic = h_upstream_start("traffic", NULL);
    struct h_upstream *admin = h_upstream_start("admin", NULL);
    int api;
    struct h_proxy *p = np_proxy(traffic->port, admin->port, &api);
    const char *line;
    struct h_msg m;
    char *log;

    for (int i = 0; i < 3; i++) {
        cr_assert(eq(int, h_get(h_connect(p->port), "/via/proxy", &m), 0), "%s", m.error);
        cr_assert(eq(int, m.status, 200));
        cr_assert(eq(str, m.body, "traffic\n"), "the proxy listener reached %s", m.body);
        cr_assert(eq(int, h_get(h_connect(api), "/via/api", &m), 0), "%s", m.error);
        cr_assert(eq(int, m.status, 200));
        cr_assert(eq(str, m.body, "admin\n"), "the node_port listener reached %s", m.body);
    }
    h_proxy_finish(p); /* the access log is complete once crossfade exited */
    log = h_read_file(p->access_log, NULL);
    cr_assert(ne(ptr, log, NULL), "no access log at %s", p->access_log);
    line = np_line_of(log, "/via/api");
    cr_assert(ne(ptr, strstr(line, h_fmt(" %s ", admin->addr)), NULL),
              "the access log line of a node_port request does not name %s: %s", admin->addr, line);
    cr_assert(eq(ptr, strstr(line, traffic->addr), NULL), "%s", line);
    line = np_line_of(log, "/via/proxy");
    cr_assert(ne(ptr, strstr(line, h_fmt(" %s ", traffic->addr)), NULL),
              "the access log line of a proxy request does not name %s: %s", traffic->addr, line);
}

Test(node_port, the_freeze_locks_writes_on_a_node_port_listener_and_lets_reads_reach_the_node_port,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *a = h_fake_start1(np_reply("A"), H_FAKE_KEEP);
    struct h_fake *b = h_fake_start1(np_reply("B"), H_FAKE_KEEP);
    int api;
    struct h_proxy *p = np_proxy(h_fake_port(a), h_fake_port(b), &api);
    int fd = h_admin_connect(p);
    struct h_conn *c = h_connect(api);
    const char *reply;
    struct h_msg m;
    char *got;

    reply = h_admin_cmd(fd, "freeze on");
    cr_assert(eq(int, strncmp(reply, "ok: freeze on", 13), 0), "%s", reply);
    cr_assert(eq(
        int, h_sendf(c, "POST /services HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}"), 0));
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 423), "a write during the freeze got %d", m.status);
    cr_assert(eq(int, h_get(h_connect(api), "/services", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200), "a read during the freeze got %d", m.status);
    cr_assert(eq(str, (char *)h_header(&m, "X-Upstream"), "B"), "the read reached %s",
              h_header(&m, "X-Upstream"));
    /* The read went out after the write: had the write been sent, it would be there first. */
    cr_assert(eq(sz, h_fake_requests_all(b), (size_t)1), "%zu requests reached the node_port",
              h_fake_requests_all(b));
    got = h_fake_received(b, 0, NULL);
    cr_assert(eq(int, strncmp(got, "GET /services ", 14), 0),
              "the node_port received, before the read:\n%s", got);
    cr_assert(eq(sz, h_fake_conns(a), (size_t)0), "the node's traffic port got a connection");
    h_proxy_finish(p);
}

Test(node_port, keep_alive_on_a_node_port_listener_stays_on_the_node_port_pool,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *a = h_fake_start1(np_reply("A"), H_FAKE_KEEP);
    struct h_fake *b = h_fake_start1(np_reply("B"), H_FAKE_KEEP);
    int api;
    struct h_proxy *p = np_proxy(h_fake_port(a), h_fake_port(b), &api);
    struct h_conn *proxy_client = h_connect(p->port);
    struct h_conn *api_client = h_connect(api);
    struct h_msg m;

    /* A connection to the traffic port is left idle in the node's pool... */
    cr_assert(eq(int, h_get(proxy_client, "/one", &m), 0), "%s", m.error);
    cr_assert(eq(str, (char *)h_header(&m, "X-Upstream"), "A"));
    cr_assert(h_fake_wait_requests(a, 1, 2000));
    /* ...and is not the one two requests on one admin_api connection take. */
    for (int i = 0; i < 2; i++) {
        cr_assert(eq(int, h_get(api_client, "/api", &m), 0), "request %d: %s", i, m.error);
        cr_assert(eq(int, m.status, 200));
        cr_assert(eq(str, (char *)h_header(&m, "X-Upstream"), "B"), "request %d reached %s", i,
                  h_header(&m, "X-Upstream"));
    }
    cr_assert(eq(sz, h_fake_requests_all(b), (size_t)2), "%zu requests reached the node_port",
              h_fake_requests_all(b));
    cr_assert(eq(sz, h_fake_conns(b), (size_t)1),
              "the node_port's connection was not kept alive: %zu connections", h_fake_conns(b));
    cr_assert(eq(sz, h_fake_requests_all(a), (size_t)1), "%zu requests reached the traffic port",
              h_fake_requests_all(a));
    /* The traffic port's idle connection is still there for the proxy listener. */
    cr_assert(eq(int, h_get(proxy_client, "/two", &m), 0), "%s", m.error);
    cr_assert(eq(str, (char *)h_header(&m, "X-Upstream"), "A"));
    cr_assert(eq(sz, h_fake_conns(a), (size_t)1), "%zu connections to the traffic port",
              h_fake_conns(a));
    cr_assert(eq(sz, h_fake_requests(a, 0), (size_t)2));
    h_proxy_finish(p);
}

Test(node_port, show_nodes_lists_the_node_once_whatever_port_its_requests_use,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *traffic = h_upstream_start("traffic", NULL);
    struct h_upstream *admin = h_upstream_start("admin", NULL);
    int api;
    struct h_proxy *p = np_proxy(traffic->port, admin->port, &api);
    int fd = h_admin_connect(p);
    size_t x_lines = 0;
    const char *nodes;
    struct h_msg m;

    /* Both of the node's addresses have been used (and have idle connections). */
    cr_assert(eq(int, h_get(h_connect(p->port), "/", &m), 0), "%s", m.error);
    cr_assert(eq(str, m.body, "traffic\n"));
    cr_assert(eq(int, h_get(h_connect(api), "/", &m), 0), "%s", m.error);
    cr_assert(eq(str, m.body, "admin\n"));
    nodes = h_admin_cmd(fd, "show nodes");
    for (const char *l = nodes; *l != '\0'; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] != '\0'))
        x_lines += strncmp(l, "x ", 2) == 0;
    cr_assert(eq(sz, x_lines, (size_t)1), "x has one node; show nodes:\n%s", nodes);
    cr_assert(ne(ptr, (void *)h_admin_node_line(fd, "x", traffic->addr), NULL),
              "show nodes does not list %s:\n%s", traffic->addr, nodes);
    cr_assert(eq(ptr, strstr(nodes, admin->addr), NULL),
              "show nodes lists the node_port address as a node:\n%s", nodes);
    h_proxy_finish(p);
}

/* `crossfade -t` on the usual config with listen[1].node_port set to `value`: its exit code, and
 * stderr in *err; *where is "FILE:LINE:COL:" of the value. */
static int
np_check_node_port(const char *value, char **err, const char **where)
{
    const char *cfg = h_proxy_write_config(
        "crossfade.yaml",
        &(struct h_proxy_opts){.x = {{h_free_port()}},
                               .admin_api_port = h_free_port(),
                               .admin_api_extra = h_fmt("node_port: %s", value)},
        h_free_port());
    const char *text = h_read_file(cfg, NULL);
    const char *at = strstr(text, "node_port: ");
    const char *bol = at;
    int line = 1;

    cr_assert(ne(ptr, (void *)at, NULL));
    for (const char *q = text; q < at; q++)
        line += *q == '\n';
    while (bol > text && bol[-1] != '\n')
        bol--;
    *where = h_fmt("%s:%d:%d:", cfg, line, (int)(at - bol) + (int)strlen("node_port: ") + 1);
    return h_run((char *[]){(char *)h_bin("crossfade"), "-t", "-c", (char *)cfg, NULL}, 10000, NULL,
                 err);
}

Test(node_port, a_node_port_out_of_1_to_65535_is_a_config_error_with_file_line_and_column,
     .timeout = H_TEST_TIMEOUT)
{
    static const char *const bad[] = {"0", "70000"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *where, *want;
        char *err;
        int code = np_check_node_port(bad[i], &err, &where);

        cr_assert(eq(int, code, 2), "crossfade -t with node_port %s exited %d:\n%s", bad[i], code,
                  err);
        want = h_fmt("%s listen[1].node_port: expected ", where);
        cr_assert(eq(int, strncmp(err, want, strlen(want)), 0),
                  "node_port %s: stderr does not begin with \"%s\":\n%s", bad[i], want, err);
        cr_assert(ne(ptr, strstr(err, h_fmt("got \"%s\"", bad[i])), NULL),
                  "the message does not show the value %s:\n%s", bad[i], err);
    }
    /* The ends of the range are valid. */
    for (size_t i = 0; i < 2; i++) {
        const char *where;
        char *err;
        int code = np_check_node_port(i == 0 ? "1" : "65535", &err, &where);

        cr_assert(eq(int, code, 0), "crossfade -t with node_port %s exited %d:\n%s",
                  i == 0 ? "1" : "65535", code, err);
    }
}
