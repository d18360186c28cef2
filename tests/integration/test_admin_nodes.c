/* tests/integration/test_admin_nodes.c -- the node commands on a running crossfade: drain (new
 * requests avoid the node, its idle pooled connection closes), add, del, show nodes, and node
 * changes restored from the state file after a restart. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/integration/harness.h"

TestSuite(admin_nodes, .init = h_setup, .fini = h_teardown);

/* The X-Upstream of GET / on connection c. */
static const char *
upstream_of(struct h_conn *c)
{
    struct h_msg m;
    const char *name;

    cr_assert(eq(int, h_get(c, "/", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    name = h_header(&m, "X-Upstream");
    cr_assert(ne(ptr, (void *)name, NULL), "no X-Upstream header");
    return name;
}

/* Counts of `n` requests on c answered by `a` and by `b`. */
static void
count_upstreams(struct h_conn *c, unsigned n, const char *a, const char *b, unsigned *na,
                unsigned *nb)
{
    *na = *nb = 0;
    for (unsigned i = 0; i < n; i++) {
        const char *u = upstream_of(c);

        if (strcmp(u, a) == 0)
            (*na)++;
        else if (strcmp(u, b) == 0)
            (*nb)++;
        else
            cr_assert(eq(str, (char *)u, (char *)a), "unexpected upstream %s", u);
    }
}

#define FAKE_REPLY "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Upstream: fake\r\n\r\nok"

Test(admin_nodes, a_drained_node_gets_no_new_request_and_its_idle_conn_closes,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f = h_fake_start1(FAKE_REPLY, H_FAKE_KEEP);
    struct h_upstream *x2 = h_upstream_start("x2", NULL);
    struct h_proxy *p = h_proxy_start(
        &(struct h_proxy_opts){.x = {{h_fake_port(f)}, {x2->port}}, .balance_x = "round_robin"});
    struct h_conn *c = h_connect(p->port);
    int fd = h_admin_connect(p);
    unsigned nf, nx;
    char *nodes;

    count_upstreams(c, 4, "fake", "x2", &nf, &nx);
    cr_assert(eq(u32, nf, 2u));
    cr_assert(eq(u32, h_fake_conns(f), (size_t)1), "one pooled connection to the fake");
    cr_assert(eq(int, h_fake_peer_closed(f, 0), false));
    nodes = h_admin_cmd(fd, "show nodes");
    cr_assert(
        ne(ptr, strstr(nodes, h_fmt("x 127.0.0.1:%d 1 up 0 1 - 0 -\n", h_fake_port(f))), NULL),
        "%s", nodes);
    cr_assert(eq(str, h_admin_cmd(fd, h_fmt("drain node x/127.0.0.1:%d", h_fake_port(f))),
                 h_fmt("ok: node x/127.0.0.1:%d draining (was up)\n", h_fake_port(f))));
    count_upstreams(c, 10, "fake", "x2", &nf, &nx);
    cr_assert(eq(u32, nf, 0u), "the drained node got %u requests", nf);
    cr_assert(h_fake_wait_peer_closed(f, 0, 3000), "the idle pooled connection stayed open");
    nodes = h_admin_cmd(fd, "show nodes");
    cr_assert(ne(ptr,
                 strstr(nodes, h_fmt("x 127.0.0.1:%d 1 draining 0 0 - 0 draining by the operator\n",
                                     h_fake_port(f))),
                 NULL),
              "%s", nodes);
    cr_assert(eq(str, h_admin_cmd(fd, h_fmt("enable node x/127.0.0.1:%d", h_fake_port(f))),
                 h_fmt("ok: node x/127.0.0.1:%d up (was draining)\n", h_fake_port(f))));
    count_upstreams(c, 4, "fake", "x2", &nf, &nx);
    cr_assert(eq(u32, nf, 2u), "the enabled node is back in the schedule");
    h_close(c);
    h_proxy_finish(p);
}

Test(admin_nodes, drain_closes_idle_conns_at_once_when_show_nodes_runs, .timeout = H_TEST_TIMEOUT)
{
    struct h_fake *f = h_fake_start1(FAKE_REPLY, H_FAKE_KEEP);
    struct h_upstream *x2 = h_upstream_start("x2", NULL);
    struct h_proxy *p = h_proxy_start(
        &(struct h_proxy_opts){.x = {{h_fake_port(f)}, {x2->port}}, .balance_x = "round_robin"});
    struct h_conn *c = h_connect(p->port);
    int fd = h_admin_connect(p);
    unsigned nf, nx;

    count_upstreams(c, 2, "fake", "x2", &nf, &nx);
    cr_assert(eq(u32, nf, 1u));
    h_admin_cmd(fd, h_fmt("drain node x/127.0.0.1:%d", h_fake_port(f)));
    h_admin_cmd(fd, "show nodes");
    cr_assert(h_fake_wait_peer_closed(f, 0, 3000), "the idle pooled connection stayed open");
    h_close(c);
    h_proxy_finish(p);
}

Test(admin_nodes, an_added_node_receives_traffic, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *x2 = h_upstream_start("x2", NULL);
    struct h_proxy *p =
        h_proxy_start(&(struct h_proxy_opts){.x = {{x1->port}}, .balance_x = "round_robin"});
    struct h_conn *c = h_connect(p->port);
    int fd = h_admin_connect(p);
    unsigned n1, n2;

    count_upstreams(c, 4, "x1", "x2", &n1, &n2);
    cr_assert(eq(u32, n2, 0u));
    cr_assert(eq(str, h_admin_cmd(fd, h_fmt("add node x %s weight 3", x2->addr)),
                 h_fmt("ok: added node x/%s weight 3\n", x2->addr)));
    count_upstreams(c, 40, "x1", "x2", &n1, &n2);
    cr_assert(eq(u32, n1, 10u));
    cr_assert(eq(u32, n2, 30u));
    cr_assert(eq(str, h_admin_cmd(fd, h_fmt("add node y %s", x2->addr)),
                 h_fmt("error: %s is already a node of x\n", x2->addr)));
    h_close(c);
    h_proxy_finish(p);
}

Test(admin_nodes, a_deleted_node_gets_no_more_requests, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *x2 = h_upstream_start("x2", NULL);
    struct h_proxy *p = h_proxy_start(
        &(struct h_proxy_opts){.x = {{x1->port}, {x2->port}}, .balance_x = "round_robin"});
    struct h_conn *c = h_connect(p->port);
    int fd = h_admin_connect(p);
    unsigned n1, n2;
    char *nodes;

    count_upstreams(c, 4, "x1", "x2", &n1, &n2);
    cr_assert(eq(u32, n2, 2u));
    cr_assert(eq(str, h_admin_cmd(fd, h_fmt("del node x/%s", x2->addr)),
                 h_fmt("ok: deleted node x/%s\n", x2->addr)));
    count_upstreams(c, 10, "x1", "x2", &n1, &n2);
    cr_assert(eq(u32, n2, 0u));
    nodes = h_admin_cmd(fd, "show nodes");
    cr_assert(eq(ptr, strstr(nodes, x2->addr), NULL), "%s", nodes);
    cr_assert(eq(str, h_admin_cmd(fd, h_fmt("del node x/%s", x1->addr)),
                 h_fmt("error: x/%s is the last node of x: its requests would fail; \"del node "
                       "x/%s force\" removes it anyway\n",
                       x1->addr, x1->addr)));
    cr_assert(eq(str, h_admin_cmd(fd, h_fmt("drain node x/%s", x2->addr)),
                 h_fmt("error: no node x/%s; show nodes lists them\n", x2->addr)));
    h_close(c);
    h_proxy_finish(p);
}

/* The `active` column (requests in flight) of node cl/addr in show nodes. */
static long
active_of(int fd, const char *cl, const char *addr)
{
    const char *line = h_admin_node_line(fd, cl, addr);

    cr_assert(ne(ptr, (void *)line, NULL), "no node %s/%s", cl, addr);
    return strtol(h_word(line, H_NODE_STATE + 1), NULL, 10); /* active follows state */
}

Test(admin_nodes, a_removed_nodes_id_waits_for_its_requests_and_nodes_can_come_and_go,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *x2 = h_upstream_start("x2", NULL),
                      *x3 = h_upstream_start("x3", NULL);
    struct h_proxy *p =
        h_proxy_start(&(struct h_proxy_opts){.x = {{x1->port}}, .balance_x = "round_robin"});
    struct h_conn *slow = h_connect(p->port), *c = h_connect(p->port);
    int fd = h_admin_connect(p);
    struct h_msg m;

    /* A request in flight to x2 when x2 is removed. */
    h_admin_cmd(fd, h_fmt("add node x %s", x2->addr));
    h_admin_cmd(fd, h_fmt("drain node x/%s", x1->addr));
    cr_assert(eq(int, h_send_str(slow, "GET /delay/1500 HTTP/1.1\r\nHost: t\r\n\r\n"), 0));
    cr_assert(h_upstream_wait_requests(x2, 1, 3000));
    h_admin_cmd(fd, h_fmt("enable node x/%s", x1->addr));
    cr_assert(eq(str, h_admin_cmd(fd, h_fmt("del node x/%s", x2->addr)),
                 h_fmt("ok: deleted node x/%s\n", x2->addr)));
    /* A node added meanwhile must not inherit it: its own count of requests in flight is 0. */
    h_admin_cmd(fd, h_fmt("add node x %s", x3->addr));
    cr_assert(eq(long, active_of(fd, "x", x3->addr), 0L));
    cr_assert(eq(int, h_read_response(slow, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, (char *)h_header(&m, "X-Upstream"), "x2"));
    /* Nodes that come and go many times, each taking requests while present: every request is
     * answered by the node it went to, and none is lost. */
    for (unsigned k = 0; k < 100; k++) {
        struct h_upstream *u = k % 2 ? x3 : x2, *gone = k % 2 ? x2 : x3;
        unsigned got = 0;

        cr_assert(eq(str, h_admin_cmd(fd, h_fmt("del node x/%s", gone->addr)),
                     h_fmt("ok: deleted node x/%s\n", gone->addr)));
        cr_assert(eq(str, h_admin_cmd(fd, h_fmt("add node x %s", u->addr)),
                     h_fmt("ok: added node x/%s weight 1\n", u->addr)));
        for (unsigned i = 0; i < 2; i++) {
            const char *name = upstream_of(c);

            cr_assert(strcmp(name, "x1") == 0 || strcmp(name, u->name) == 0, "%s answered", name);
            got += strcmp(name, u->name) == 0;
        }
        cr_assert(eq(u32, got, 1u), "round robin over x1 and %s", u->name);
        cr_assert(eq(long, active_of(fd, "x", u->addr), 0L));
    }
    h_close(slow);
    h_close(c);
    h_proxy_finish(p);
}

Test(admin_nodes, show_nodes_gives_one_line_per_node, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *y1 = h_upstream_start("y1", NULL);
    struct h_proxy *p = h_proxy_start(
        &(struct h_proxy_opts){.x = {{x1->port, 4}}, .y = {{y1->port}}, .weight = "0"});
    struct h_conn *c = h_connect(p->port);
    int fd = h_admin_connect(p);

    cr_assert(eq(str, (char *)upstream_of(c), "x1"));
    cr_assert(eq(str, h_admin_cmd(fd, "show nodes"),
                 h_fmt("cluster address weight state active idle check ejections note\n"
                       "x %s 4 up 0 1 - 0 -\n"
                       "y %s 1 up 0 0 - 0 -\n",
                       x1->addr, y1->addr)));
    h_close(c);
    h_proxy_finish(p);
}

Test(admin_nodes, node_changes_survive_a_restart, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL), *x2 = h_upstream_start("x2", NULL);
    struct h_upstream *y1 = h_upstream_start("y1", NULL), *y2 = h_upstream_start("y2", NULL);
    const char *state = h_path("crossfade.state");
    struct h_proxy_opts o = {.x = {{x1->port}, {x2->port}},
                             .y = {{y1->port}},
                             .balance_x = "round_robin",
                             .extra_yaml = h_fmt("state_file: \"%s\"\n", state)};
    struct h_proxy *p = h_proxy_start(&o);
    int fd = h_admin_connect(p);
    char *before, *text;
    struct h_conn *c;
    unsigned n1, n2;

    h_admin_cmd(fd, h_fmt("add node y %s weight 2", y2->addr));
    h_admin_cmd(fd, h_fmt("set node x/%s weight 3", x1->addr));
    h_admin_cmd(fd, h_fmt("drain node x/%s", x2->addr));
    before = h_admin_cmd(fd, "show nodes");
    h_proxy_finish(p);
    text = h_read_file(state, NULL);
    cr_assert(ne(ptr, text, NULL), "no state file at %s", state);
    cr_assert(ne(ptr,
                 strstr(text, h_fmt("\nnode weight x/%s 3\nnode state x/%s draining\nnode add y "
                                    "%s 2\n",
                                    x1->addr, x2->addr, y2->addr)),
                 NULL),
              "%s", text);

    p = h_proxy_start(&o);
    fd = h_admin_connect(p);
    cr_assert(eq(str, h_admin_cmd(fd, "show nodes"), before));
    c = h_connect(p->port);
    count_upstreams(c, 6, "x1", "x2", &n1, &n2);
    cr_assert(eq(u32, n2, 0u), "the drained node took requests after the restart");
    h_admin_cmd(fd, h_fmt("del node y/%s", y2->addr));
    h_close(c);
    h_proxy_finish(p);
    text = h_read_file(state, NULL);
    cr_assert(eq(ptr, strstr(text, "node add"), NULL), "%s", text);
}
