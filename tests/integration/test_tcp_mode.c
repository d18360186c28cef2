/* tests/integration/test_tcp_mode.c -- tcp-mode listeners (listen[].mode: tcp) and the PROXY
 * protocol through bin/crossfade: the split of a relay keyed on the client's address or on the
 * server name of its TLS ClientHello, the relay's bytes both ways, rollback and retries, PROXY
 * headers read from trusted balancers and written to nodes, and the config errors of the keys.
 *
 * The listeners under test are added before the harness's own http listener (which stays the
 * last, on p->port): listen[0], listen[1]... are the test's. Clients that must come from another
 * source bind their socket to 127.0.0.N before they connect. TLS nodes are `openssl s_server
 * -www` with a certificate whose CN names the side (x-node, y-node); a relay's side is read from
 * that CN, from the node's X-Upstream, and from the access log's cluster column. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/integration/harness.h"
#include "tests/integration/tcp_helpers.h"
#include "tests/integration/tls_helpers.h"
#include "tests/integration/tunnel_helpers.h"

TestSuite(tcp_mode, .init = h_setup, .fini = tm_teardown);

/* ------------------------------------------------------------------ 1. the ip key */

Test(tcp_mode, an_ip_keyed_relay_goes_to_the_node_an_http_request_from_that_source_goes_to,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_upstream *y1 = h_upstream_start("y1", NULL);
    struct tm_proxy *t =
        tm_start(&(struct h_proxy_opts){.x = {{x1->port}}, .y = {{y1->port}}, .weight = "50"},
                 (const char *const[]){"mode: tcp", NULL}, 0);
    unsigned on_x = 0, on_y = 0;

    for (int i = 2; i <= 21; i++) {
        const char *src = tm_src(i);
        struct h_conn *c = tm_connect_from(src, t->port[0]);
        const char *via_tcp, *via_http;

        cr_assert(eq(int, h_send_str(c, TM_GET("/")), 0));
        via_tcp = tm_upstream(tm_read_200(c, h_fmt("GET / from %s through the tcp listener", src)));
        h_close(c);
        c = tm_connect_from(src, t->p->port);
        cr_assert(eq(int, h_send_str(c, TM_GET("/")), 0));
        via_http =
            tm_upstream(tm_read_200(c, h_fmt("GET / from %s through the http listener", src)));
        h_close(c);
        cr_assert(eq(str, (char *)via_tcp, (char *)via_http),
                  "%s: the tcp listener relayed to %s, the http listener sent the request to %s",
                  src, via_tcp, via_http);
        cr_assert(eq(chr, via_tcp[0], tm_which(t->adm, h_fmt("ip=%s", src))),
                  "%s went to %s, not to the side `which ip=%s` says", src, via_tcp, src);
        if (strcmp(via_tcp, "x1") == 0)
            on_x++;
        else if (strcmp(via_tcp, "y1") == 0)
            on_y++;
    }
    /* Weight 50 over 20 sources: both sides, or the comparison proved nothing. */
    cr_assert(gt(uint, on_x, 0u), "no source went to x");
    cr_assert(gt(uint, on_y, 0u), "no source went to y");
    h_assert_stat(t->adm, "tcp", "connections", 20);
    h_assert_stat(t->adm, "tcp", "no_sni", 0);
    {
        const char *json = h_admin_cmd(t->adm, "show stats json");

        cr_assert(ne(ptr,
                     strstr(json, "\"tcp\":{\"connections\":20,\"no_sni\":0,\"proxy_refused\":0}"),
                     NULL),
                  "%s", json);
    }
    /* One line per relay once it closed, from its source, on its side, with no status. */
    tm_alog_await_count(t->p, "\"TCP ip\"", 20);
    for (int i = 2; i <= 21; i++) {
        const char *needle =
            h_fmt(" %s %c ", tm_src(i), tm_which(t->adm, h_fmt("ip=%s", tm_src(i))));

        cr_assert(eq(sz, h_log_count(t->p->access_log, h_fmt("%s127.0.0.1:", needle)), (size_t)2),
                  "the access log does not have two lines (one per listener) with \"%s\":\n%s",
                  needle, h_read_file(t->p->access_log, NULL));
    }
    cr_assert(eq(str, (char *)tm_alog(t->p, "\"TCP ip\"").status, "-"));
    h_proxy_finish(t->p);
}

/* ------------------------------------------------------------------ 2. the relay's bytes */

/* `len` bytes of every value 0..255, in an order no parser would keep: byte i of a fixed
 * pseudo-random sequence. */
static char *
tm_binary(size_t len)
{
    char *b = h_alloc(len);
    uint32_t s = 12345;

    for (size_t i = 0; i < len; i++) {
        s = s * 1103515245u + 12345u;
        b[i] = (char)(s >> 16);
    }
    return b;
}

Test(tcp_mode, a_relay_passes_bytes_unchanged_both_ways, .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct tm_proxy *t = tm_start(&(struct h_proxy_opts){.x = {{x1->port}}},
                                  (const char *const[]){"mode: tcp", NULL}, 0);
    const size_t up = 700000, down = 3000000;
    /* A head crossfade would rewrite if it read it: odd spacing and case, no X-Forwarded-For. */
    const char *head = h_fmt("POST /echo HTTP/1.1\r\nhOST:   " H_HOST "  \r\nX-Odd:a\t b\r\n"
                             "Content-Length: %zu\r\n\r\n",
                             up);
    char *body = tm_binary(up);
    struct h_conn *c = h_connect(t->port[0]);
    unsigned long long sent = 0, received = 0;
    struct h_msg *m;
    struct tm_alog a;

    /* Up: the node echoes the head it received and the body. */
    cr_assert(eq(int, h_send_str(c, head), 0));
    cr_assert(eq(int, h_send(c, body, up), 0));
    sent += strlen(head) + up;
    m = tm_read_200(c, "POST /echo");
    received += m->head_len + m->body_len;
    cr_assert(eq(str, (char *)tm_upstream(m), "x1"));
    cr_assert(eq(sz, m->body_len, strlen(head) + up), "the echo has %zu bytes", m->body_len);
    cr_assert(eq(int, memcmp(m->body, head, strlen(head)), 0),
              "the node received another head than the client sent:\n%.*s", (int)strlen(head),
              m->body);
    cr_assert(eq(int, memcmp(m->body + strlen(head), body, up), 0),
              "the body reached the node changed");
    /* Down, on the same connection: a body of the known pattern. */
    cr_assert(eq(int, h_send_str(c, TM_GET("/bytes/3000000")), 0));
    sent += strlen(TM_GET("/bytes/3000000"));
    m = tm_read_200(c, "GET /bytes/3000000");
    received += m->head_len + m->body_len;
    cr_assert(eq(sz, m->body_len, down));
    cr_assert(eq(i64, (int64_t)h_pattern_check(m->body, m->body_len, 0), -1LL),
              "the body came back changed");
    h_close(c);

    /* The http listener, which reads HTTP, does add X-Forwarded-For: the check above can fail. */
    c = h_connect(t->p->port);
    cr_assert(eq(int, h_send_str(c, TM_GET("/echo")), 0));
    m = tm_read_200(c, "GET /echo through the http listener");
    cr_assert(ne(ptr, (void *)h_memcasemem(m->body, m->body_len, "X-Forwarded-For:"), NULL), "%s",
              m->body);
    h_close(c);

    /* The relay's line counts every byte each way. */
    a = tm_alog(t->p, "\"TCP ip\"");
    cr_assert(eq(str, (char *)a.cluster, "x"), "%s", a.line);
    cr_assert(eq(str, (char *)a.node, x1->addr), "%s", a.line);
    cr_assert(eq(u64, a.in, sent), "%s: the client sent %llu bytes", a.line, sent);
    cr_assert(eq(u64, a.out, received), "%s: the client received %llu bytes", a.line, received);
    h_proxy_finish(t->p);
}

Test(tcp_mode, a_keep_alive_connection_stays_on_one_node_for_all_its_requests,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_upstream *x2 = h_upstream_start("x2", NULL);
    struct tm_proxy *t =
        tm_start(&(struct h_proxy_opts){.x = {{x1->port}, {x2->port}}, .balance_x = "round_robin"},
                 (const char *const[]){"mode: tcp", NULL}, 0);
    struct h_conn *c = h_connect(t->p->port);
    const char *first = NULL, *seen;
    bool both = false;
    uint64_t conns[2][2], reqs[2][2];
    struct h_upstream *node;

    /* Through the http listener, round_robin takes turns per request... */
    for (int i = 0; i < 4; i++) {
        cr_assert(eq(int, h_send_str(c, TM_GET("/")), 0));
        seen = tm_upstream(tm_read_200(c, "GET / through the http listener"));
        if (first == NULL)
            first = seen;
        both = both || strcmp(seen, first) != 0;
    }
    cr_assert(both, "round_robin sent four requests to %s alone: the test proves nothing", first);
    h_close(c);

    /* ... a relay is one connection to one node, whatever it carries: three requests one after
     * another, then three in one write. */
    h_upstream_counters(x1, &conns[0][0], &reqs[0][0]);
    h_upstream_counters(x2, &conns[1][0], &reqs[1][0]);
    c = h_connect(t->port[0]);
    first = NULL;
    for (int i = 0; i < 3; i++) {
        cr_assert(eq(int, h_send_str(c, TM_GET("/")), 0));
        seen = tm_upstream(tm_read_200(c, h_fmt("request %d on the relay", i + 1)));
        if (first == NULL)
            first = seen;
        cr_assert(eq(str, (char *)seen, (char *)first),
                  "request %d on the relay reached %s, the "
                  "first %s",
                  i + 1, seen, first);
    }
    cr_assert(eq(int, h_send_str(c, TM_GET("/a") TM_GET("/b") TM_GET("/c")), 0));
    for (int i = 0; i < 3; i++) {
        seen = tm_upstream(tm_read_200(c, h_fmt("pipelined request %d on the relay", i + 1)));
        cr_assert(eq(str, (char *)seen, (char *)first),
                  "pipelined request %d on the relay reached %s, the first %s", i + 1, seen, first);
    }
    h_close(c);
    h_await_stat(t->adm, "x tunnels", "open", 0);
    h_upstream_counters(x1, &conns[0][1], &reqs[0][1]);
    h_upstream_counters(x2, &conns[1][1], &reqs[1][1]);
    node = strcmp(first, "x1") == 0 ? x1 : x2;
    {
        int k = node == x1 ? 0 : 1;

        cr_assert(eq(u64, conns[k][1] - conns[k][0], 1),
                  "%s accepted %llu connections for the relay", node->name,
                  (unsigned long long)(conns[k][1] - conns[k][0]));
        cr_assert(eq(u64, reqs[k][1] - reqs[k][0], 6), "%s received %llu requests", node->name,
                  (unsigned long long)(reqs[k][1] - reqs[k][0]));
        cr_assert(eq(u64, reqs[1 - k][1] - reqs[1 - k][0], 0), "the other node received requests");
    }
    h_assert_stat(t->adm, "x tunnels", "total", 1);
    h_proxy_finish(t->p);
}

Test(tcp_mode, a_client_that_shuts_down_its_sending_still_gets_the_whole_response,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct tm_proxy *t = tm_start(&(struct h_proxy_opts){.x = {{x1->port}}},
                                  (const char *const[]){"mode: tcp", NULL}, 0);
    static const char get[] = "GET /bytes/200000 HTTP/1.1\r\nHost: " H_HOST "\r\n"
                              "Connection: close\r\n\r\n";
    static const char post[] = "POST /echo HTTP/1.1\r\nHost: " H_HOST "\r\nContent-Length: 5\r\n"
                               "Connection: close\r\n\r\nhello";
    struct h_conn *c = h_connect(t->port[0]);
    const char *body;
    char *all;
    size_t len;

    /* A download: the request, then the client's FIN at once. */
    cr_assert(eq(int, h_send_str(c, get), 0));
    cr_assert(eq(int, shutdown(c->fd, SHUT_WR), 0));
    cr_assert(eq(int, h_read_until_close(c, &all, &len, H_IO_TIMEOUT_MS), 0),
              "the relay did not close after the response");
    body = strstr(all, "\r\n\r\n");
    cr_assert(ne(ptr, (void *)body, NULL), "no response head: %.60s", all);
    body += 4;
    cr_assert(eq(int, strncmp(all, "HTTP/1.1 200 ", 13), 0), "%.60s", all);
    cr_assert(ne(ptr, (void *)h_memcasemem(all, (size_t)(body - all), "Content-Length: 200000\r\n"),
                 NULL),
              "%.*s", (int)(body - all), all);
    cr_assert(eq(sz, len - (size_t)(body - all), (size_t)200000), "the client got %zu body bytes",
              len - (size_t)(body - all));
    cr_assert(eq(i64, (int64_t)h_pattern_check(body, 200000, 0), -1LL));
    h_close(c);

    /* An upload: the node's echo comes after the client's FIN. */
    c = h_connect(t->port[0]);
    cr_assert(eq(int, h_send_str(c, post), 0));
    cr_assert(eq(int, shutdown(c->fd, SHUT_WR), 0));
    cr_assert(eq(int, h_read_until_close(c, &all, &len, H_IO_TIMEOUT_MS), 0),
              "the relay did not close after the response");
    cr_assert(ge(sz, len, strlen(post)));
    cr_assert(eq(int, memcmp(all + len - strlen(post), post, strlen(post)), 0),
              "the echo does not end with the request:\n%s", all);
    h_close(c);

    tm_alog_await_count(t->p, "\"TCP ip\"", 2);
    h_await_stat(t->adm, "x tunnels", "open", 0);
    h_assert_stat(t->adm, "x tunnels", "total", 2);
    h_proxy_finish(t->p);
}

/* ------------------------------------------------------------------ 3. rollback and counters */

Test(tcp_mode, rollback_closes_the_relays_on_y_and_leaves_those_on_x_and_the_pinned_ones,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_upstream *y1 = h_upstream_start("y1", NULL);
    struct tm_proxy *t =
        tm_start(&(struct h_proxy_opts){.x = {{x1->port}},
                                        .y = {{y1->port}},
                                        .weight = "50",
                                        .extra_yaml = "tunnels: {close_rate: 100}\n"},
                 (const char *const[]){"mode: tcp", NULL}, 0);
    struct h_conn *c[20];
    char side[20];
    long long n_x = 0, n_y = 0;
    int pinned = -1;
    const char *reply;

    for (int i = 0; i < 20; i++) {
        c[i] = tm_connect_from(tm_src(i + 2), t->port[0]);
        cr_assert(eq(int, h_send_str(c[i], TM_GET("/")), 0));
        side[i] = tm_upstream(tm_read_200(c[i], h_fmt("GET / from %s", tm_src(i + 2))))[0];
        cr_assert(side[i] == 'x' || side[i] == 'y', "%s: no X-Upstream", tm_src(i + 2));
        if (side[i] == 'x')
            n_x++;
        else
            n_y++;
    }
    cr_assert(ge(i64, n_x, 1LL), "no relay on x: the test proves nothing");
    cr_assert(ge(i64, n_y, 2LL), "fewer than two relays on y: the test proves nothing");
    h_assert_stat(t->adm, "tcp", "connections", 20);
    h_assert_stat(t->adm, "x tunnels", "open", n_x);
    h_assert_stat(t->adm, "y tunnels", "open", n_y);
    h_assert_stat(t->adm, "x tunnels", "total", n_x);
    h_assert_stat(t->adm, "y tunnels", "total", n_y);
    h_assert_stat(t->adm, "x active", NULL, n_x);

    /* One client on y is pinned there: a rollback spares it. */
    for (int i = 0; i < 20 && pinned == -1; i++)
        if (side[i] == 'y')
            pinned = i;
    reply = h_admin_cmd(t->adm, h_fmt("pin ip=%s y", tm_src(pinned + 2)));
    cr_assert(eq(int, strncmp(reply, "ok", 2), 0), "%s", reply);

    reply = h_admin_cmd(t->adm, "rollback");
    cr_assert(eq(int, strncmp(reply, "ok: rolled back", 15), 0), "%s", reply);
    /* The note counts y's relays open before the rollback, the pinned one included (it says that
     * a pinned client's stays). */
    cr_assert(ne(ptr, strstr(reply, h_fmt("note: %lld tunnels on y close", n_y)), NULL),
              "the rollback does not announce y's %lld relays:\n%s", n_y, reply);
    for (int i = 0; i < 20; i++) {
        if (side[i] != 'y' || i == pinned)
            continue;
        cr_assert(tm_closed_empty(c[i], H_IO_TIMEOUT_MS),
                  "the relay of %s on y was not closed after the rollback", tm_src(i + 2));
    }
    h_await_stat(t->adm, "y tunnels", "open", 1);
    h_assert_stat(t->adm, "x tunnels", "open", n_x);
    /* Those on x, and the pinned one, still carry requests to their node. */
    for (int i = 0; i < 20; i++) {
        if (side[i] == 'y' && i != pinned)
            continue;
        cr_assert(eq(int, h_send_str(c[i], TM_GET("/again")), 0));
        cr_assert(eq(chr,
                     tm_upstream(tm_read_200(
                         c[i], h_fmt("GET /again from %s after the rollback", tm_src(i + 2))))[0],
                     side[i]),
                  "%s changed sides", tm_src(i + 2));
    }
    /* A new connection from a source that was on y now goes to x. */
    for (int i = 0; i < 20; i++) {
        struct h_conn *again;

        if (side[i] != 'y' || i == pinned)
            continue;
        again = tm_connect_from(tm_src(i + 2), t->port[0]);
        cr_assert(eq(int, h_send_str(again, TM_GET("/")), 0));
        cr_assert(
            eq(str, (char *)tm_upstream(tm_read_200(again, "GET / after the rollback")), "x1"));
        h_close(again);
        break;
    }
    h_assert_stat(t->adm, "tcp", "connections", 21);
    for (int i = 0; i < 20; i++)
        h_close(c[i]);
    h_proxy_finish(t->p);
}

Test(tcp_mode, with_follow_weight_a_weight_change_closes_the_relays_whose_address_moved,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_upstream *y1 = h_upstream_start("y1", NULL);
    struct tm_proxy *t = tm_start(
        &(struct h_proxy_opts){.x = {{x1->port}},
                               .y = {{y1->port}},
                               .weight = "100",
                               .extra_yaml = "tunnels: {follow_weight: true, close_rate: 1000}\n"},
        (const char *const[]){"mode: tcp", NULL}, 0);
    struct h_conn *c[20];
    char side[20];
    long long stay = 0, go = 0;

    for (int i = 0; i < 20; i++) {
        c[i] = tm_connect_from(tm_src(i + 2), t->port[0]);
        cr_assert(eq(int, h_send_str(c[i], TM_GET("/")), 0));
        cr_assert(eq(str, (char *)tm_upstream(tm_read_200(c[i], "GET / at weight 100")), "y1"));
    }
    h_await_stat(t->adm, "y tunnels", "open", 20);
    cr_assert(eq(int, strncmp(h_admin_cmd(t->adm, "set weight 50"), "ok", 2), 0));
    for (int i = 0; i < 20; i++) {
        side[i] = tm_which(t->adm, h_fmt("ip=%s", tm_src(i + 2)));
        if (side[i] == 'x')
            go++;
        else
            stay++;
    }
    cr_assert(go > 0 && stay > 0, "%lld addresses moved, %lld stayed: the test proves nothing", go,
              stay);
    for (int i = 0; i < 20; i++)
        if (side[i] == 'x')
            cr_assert(tm_closed_empty(c[i], H_IO_TIMEOUT_MS),
                      "the relay of %s stayed on y after its address moved to x", tm_src(i + 2));
    h_await_stat(t->adm, "y tunnels", "open", stay);
    for (int i = 0; i < 20; i++) {
        if (side[i] != 'y')
            continue;
        cr_assert(eq(int, h_send_str(c[i], TM_GET("/again")), 0));
        cr_assert(eq(str, (char *)tm_upstream(tm_read_200(c[i], "GET /again at weight 50")), "y1"),
                  "%s", tm_src(i + 2));
        h_close(c[i]);
    }
    h_proxy_finish(t->p);
}

/* ------------------------------------------------------------------ 4. retries */

Test(tcp_mode, a_relay_whose_node_refuses_goes_to_the_next_node_of_the_same_side,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_upstream *y1 = h_upstream_start("y1", NULL);
    int dead = h_free_port();
    const char *dead_addr = h_fmt("127.0.0.1:%d", dead);
    struct tm_proxy *t = tm_start(
        &(struct h_proxy_opts){.x = {{x1->port}}, .y = {{dead}, {y1->port}}, .weight = "100"},
        (const char *const[]){"mode: tcp", NULL}, 0);
    unsigned on_dead = 0;

    /* The sources whose hash picks the dead node first, by `which`, before any traffic. */
    for (int i = 2; i <= 21; i++) {
        const char *reply = h_admin_cmd(t->adm, h_fmt("which ip=%s", tm_src(i)));

        if (strstr(reply, h_fmt("\nnode %s\n", dead_addr)) != NULL)
            on_dead++;
    }
    cr_assert(ge(uint, on_dead, 2u), "fewer than two of 20 sources hash to the dead node");
    for (int i = 2; i <= 21; i++) {
        struct h_conn *c = tm_connect_from(tm_src(i), t->port[0]);

        cr_assert(eq(int, h_send_str(c, TM_GET("/")), 0));
        cr_assert(
            eq(str, (char *)tm_upstream(tm_read_200(c, h_fmt("GET / from %s", tm_src(i)))), "y1"),
            "%s was not relayed to the live y node", tm_src(i));
        h_close(c);
    }
    cr_assert(ge(i64, h_admin_stat(t->adm, "y retries", NULL), 2LL),
              "show stats counts fewer than two retries on y:\n%s",
              h_admin_cmd(t->adm, "show stats"));
    h_assert_stat(t->adm, "tcp", "connections", 20);
    h_await_stat(t->adm, "y tunnels", "total", 20);
    h_assert_stat(t->adm, "x tunnels", "total", 0);
    tm_alog_await_count(t->p, h_fmt("y %s \"TCP ip\" - ", y1->addr), 20);
    h_proxy_finish(t->p);
}

Test(tcp_mode, a_relay_keyed_on_a_name_goes_to_the_next_node_with_the_client_hello_it_read,
     .timeout = H_TEST_TIMEOUT)
{
    struct tm_tls_node *x, *y;
    int dead = h_free_port();
    struct tm_proxy *t;
    const char *names[3];
    unsigned n = 0;

    tm_tls_nodes(&x, &y);
    t = tm_start(
        &(struct h_proxy_opts){.x = {{x->port}}, .y = {{dead}, {y->port}}, .weight = "100"},
        (const char *const[]){"mode: tcp, key: sni", NULL}, 0);
    /* Names whose hash picks the dead node first. */
    for (unsigned k = 0; k < 500 && n < 3; k++) {
        const char *name = h_fmt("retry-%u.example.test", k);

        if (strstr(h_admin_cmd(t->adm, h_fmt("which %s", name)),
                   h_fmt("\nnode 127.0.0.1:%d\n", dead)) != NULL)
            names[n++] = name;
    }
    cr_assert(eq(uint, n, 3u), "fewer than three names hash to the dead node");
    /* The handshake completes with the live node: the ClientHello crossfade read to find the name
     * went there whole. */
    for (unsigned k = 0; k < 3; k++)
        cr_assert(eq(str, (char *)tm_tls_node_for(t->port[0], names[k]), "y-node"), "%s", names[k]);
    /* One retry each (the dead node is not ejected before its fifth failure). */
    h_assert_stat(t->adm, "y retries", NULL, 3);
    for (unsigned k = 0; k < 3; k++)
        tm_alog_await_count(t->p, h_fmt("y %s \"TCP sni=%s\" - ", y->addr, names[k]), 1);
    h_proxy_finish(t->p);
}

/* ------------------------------------------------------------------ 5. the sni key */

/* "name-N.example.test": the first `want` names from `from` on that `which` puts on `side`. */
static const char **
tm_names_on(int adm, char side, unsigned want, unsigned *from)
{
    const char **names = h_alloc(want * sizeof(*names));

    for (unsigned k = 0; k < want; (*from)++) {
        const char *name = h_fmt("name-%u.example.test", *from);

        cr_assert(lt(uint, *from, 2000u), "no %u names on %c", want, side);
        if (tm_which(adm, name) == side)
            names[k++] = name;
    }
    return names;
}

/* A copy of `s` with its letters upper-cased at every other position. */
static const char *
tm_mixed_case(const char *s, unsigned phase)
{
    char *m = h_fmt("%s", s);

    for (size_t i = 0; m[i] != '\0'; i++)
        if ((i + phase) % 2 == 0 && m[i] >= 'a' && m[i] <= 'z')
            m[i] = (char)(m[i] - 32);
    return m;
}

/* The sni listener with TLS nodes behind: x-node and y-node at weight 50; timeouts.tcp_hello
 * when tcp_hello_ms is not 0. */
static struct tm_proxy *
tm_sni_proxy(struct tm_tls_node **x, struct tm_tls_node **y, unsigned tcp_hello_ms)
{
    tm_tls_nodes(x, y);
    return tm_start(
        &(struct h_proxy_opts){.x = {{(*x)->port}}, .y = {{(*y)->port}}, .weight = "50"},
        (const char *const[]){"mode: tcp, key: sni", NULL}, tcp_hello_ms);
}

Test(tcp_mode, an_sni_keyed_relay_goes_to_the_side_of_its_server_name_and_follows_pins,
     .timeout = H_TEST_TIMEOUT)
{
    struct tm_tls_node *x, *y;
    struct tm_proxy *t = tm_sni_proxy(&x, &y, 0);
    unsigned from = 0;
    const char **on_x = tm_names_on(t->adm, 'x', 3, &from);
    const char **on_y = tm_names_on(t->adm, 'y', 3, &from);
    const char *mixed = NULL, *lower = NULL, *reply;
    char ip_side = tm_which(t->adm, "ip=127.0.0.1");
    size_t lines = 0;

    /* Each name on its side, every time (the same connection's address for all of them). */
    for (unsigned k = 0; k < 3; k++) {
        for (int again = 0; again < 2; again++) {
            cr_assert(eq(str, (char *)tm_tls_node_for(t->port[0], on_x[k]), "x-node"),
                      "%s went to the wrong side", on_x[k]);
            cr_assert(eq(str, (char *)tm_tls_node_for(t->port[0], on_y[k]), "y-node"),
                      "%s went to the wrong side", on_y[k]);
            lines += 2;
        }
        tm_alog_await_count(t->p, h_fmt("x %s \"TCP sni=%s\" - ", x->addr, on_x[k]), 2);
        tm_alog_await_count(t->p, h_fmt("y %s \"TCP sni=%s\" - ", y->addr, on_y[k]), 2);
    }

    /* A pin moves a name that the weight sends to x. */
    reply = h_admin_cmd(t->adm, h_fmt("pin %s y", on_x[0]));
    cr_assert(eq(str, (char *)reply, (char *)h_fmt("ok: pinned \"%s\" to y\n", on_x[0])));
    cr_assert(eq(str, (char *)tm_tls_node_for(t->port[0], on_x[0]), "y-node"),
              "the pinned name %s did not go to y", on_x[0]);
    tm_alog_await_count(t->p, h_fmt("y %s \"TCP sni=%s\" - ", y->addr, on_x[0]), 1);
    lines++;

    /* A name in mixed case is keyed lower-case: pick one whose mixed-case bytes would hash to the
     * other side. */
    for (unsigned k = 0; k < 200 && mixed == NULL; k++) {
        const char *name = h_fmt("case-%u.example.test", k);
        char side = tm_which(t->adm, name);

        for (unsigned phase = 0; phase < 2 && mixed == NULL; phase++) {
            const char *m = tm_mixed_case(name, phase);

            if (tm_which(t->adm, m) != side) {
                mixed = m;
                lower = name;
            }
        }
    }
    cr_assert(ne(ptr, (void *)mixed, NULL), "no mixed-case name hashes apart from its lower case");
    cr_assert(eq(str, (char *)tm_tls_node_for(t->port[0], mixed),
                 (char *)(tm_which(t->adm, lower) == 'x' ? "x-node" : "y-node")),
              "%s did not go to the side of %s", mixed, lower);
    tm_alog_await_count(t->p,
                        h_fmt(" %c 127.0.0.1:%d \"TCP sni=%s\" - ", tm_which(t->adm, lower),
                              tm_which(t->adm, lower) == 'x' ? x->port : y->port, lower),
                        1);
    cr_assert(eq(sz, h_log_count(t->p->access_log, mixed), (size_t)0),
              "the access log shows the name as the client wrote it:\n%s",
              h_read_file(t->p->access_log, NULL));
    lines++;

    /* A ClientHello without a server name: keyed on the address, counted. */
    cr_assert(eq(str, (char *)tm_tls_node_for(t->port[0], NULL),
                 (char *)(ip_side == 'x' ? "x-node" : "y-node")),
              "a ClientHello without a name did not go to the side of its address (%c)", ip_side);
    tm_alog_await_count(
        t->p, h_fmt(" %c 127.0.0.1:%d \"TCP ip\" - ", ip_side, ip_side == 'x' ? x->port : y->port),
        1);
    lines++;
    h_assert_stat(t->adm, "tcp", "no_sni", 1);
    h_assert_stat(t->adm, "tcp", "connections", (long long)lines);
    h_proxy_finish(t->p);
}

Test(tcp_mode, a_client_hello_in_small_pieces_or_records_routes_by_its_name_unless_it_stalls,
     .timeout = H_TEST_TIMEOUT)
{
    static const size_t pieces[] = {1, 2, 3, 5, 8, 13, 21, 4, 1, 0};
    struct tm_tls_node *x, *y;
    struct tm_proxy *t = tm_sni_proxy(&x, &y, 1000);
    char ip_side = tm_which(t->adm, "ip=127.0.0.1");
    char other = ip_side == 'x' ? 'y' : 'x';
    const char *other_cn = other == 'x' ? "x-node" : "y-node";
    unsigned from = 0;
    const char **names = tm_names_on(t->adm, other, 4, &from);
    static const size_t stall[] = {100, 65536, 0};

    /* Names on the side the address would not choose: a fall-back to the ip key shows. */
    cr_assert(
        eq(str,
           (char *)tm_tls_node_of(
               t->port[0], &(struct tm_hello){.sni = names[0], .pieces = pieces, .pause_ms = 5}),
           (char *)other_cn),
        "a ClientHello sent in pieces did not route by its name %s", names[0]);
    cr_assert(eq(str,
                 (char *)tm_tls_node_of(t->port[0],
                                        &(struct tm_hello){.sni = names[1], .two_records = true}),
                 (char *)other_cn),
              "a ClientHello in two records did not route by its name %s", names[1]);
    cr_assert(eq(str,
                 (char *)tm_tls_node_of(t->port[0], &(struct tm_hello){.sni = names[2],
                                                                       .pieces = pieces,
                                                                       .pause_ms = 5,
                                                                       .two_records = true}),
                 (char *)other_cn),
              "a ClientHello in two records sent in pieces did not route by its name %s", names[2]);
    for (int k = 0; k < 3; k++)
        tm_alog_await_count(t->p,
                            h_fmt(" %c 127.0.0.1:%d \"TCP sni=%s\" - ", other,
                                  other == 'x' ? x->port : y->port, names[k]),
                            1);
    h_assert_stat(t->adm, "tcp", "no_sni", 0);
    h_assert_stat(t->adm, "tcp", "connections", 3);
    /* Cut by a pause longer than timeouts.tcp_hello (1s): relayed by the address with the bytes
     * read so far, and the rest follows (the handshake completes). */
    cr_assert(
        eq(str,
           (char *)tm_tls_node_of(
               t->port[0], &(struct tm_hello){.sni = names[3], .pieces = stall, .pause_ms = 1500}),
           (char *)(ip_side == 'x' ? "x-node" : "y-node")),
        "a ClientHello that stalled past tcp_hello did not go to the side of the address");
    tm_alog_await_count(
        t->p, h_fmt(" %c 127.0.0.1:%d \"TCP ip\" - ", ip_side, ip_side == 'x' ? x->port : y->port),
        1);
    h_assert_stat(t->adm, "tcp", "no_sni", 1);
    h_proxy_finish(t->p);
}

Test(tcp_mode, a_large_client_hello_routes_by_its_name_and_one_past_the_cap_goes_through_whole,
     .timeout = H_TEST_TIMEOUT)
{
    struct tm_tls_node *x, *y;
    struct tm_proxy *t = tm_sni_proxy(&x, &y, 0);
    char ip_side = tm_which(t->adm, "ip=127.0.0.1");
    char other = ip_side == 'x' ? 'y' : 'x';
    unsigned from = 0;
    const char **names = tm_names_on(t->adm, other, 2, &from);
    struct tm_tls r;
    struct tm_alog a;

    /* About 8 KB: one record, more than one read. The relay's line counts the bytes the client
     * sent (the ClientHello read before the relay included) and received. */
    r = tm_tls_through(t->port[0], &(struct tm_hello){.sni = names[0], .alpn_bytes = 8000});
    cr_assert(eq(str, (char *)r.cn, (char *)(other == 'x' ? "x-node" : "y-node")),
              "an 8 KB ClientHello did not route by its name %s", names[0]);
    a = tm_alog(t->p, h_fmt("\"TCP sni=%s\"", names[0]));
    cr_assert(eq(chr, a.cluster[0], other), "%s", a.line);
    cr_assert(eq(u64, a.in, r.sent), "%s: the client sent %llu bytes", a.line, r.sent);
    cr_assert(eq(u64, a.out, r.received), "%s: the client received %llu bytes", a.line, r.received);
    /* About 24 KB, past the 16 KB crossfade reads at most: keyed on the address, and every byte
     * read meanwhile reaches the node with the rest (its handshake completes). */
    r = tm_tls_through(t->port[0], &(struct tm_hello){.sni = names[1], .alpn_bytes = 24000});
    cr_assert(eq(str, (char *)r.cn, (char *)(ip_side == 'x' ? "x-node" : "y-node")),
              "a 24 KB ClientHello was not relayed whole to the side of its address");
    a = tm_alog(t->p, "\"TCP ip\"");
    cr_assert(eq(chr, a.cluster[0], ip_side), "%s", a.line);
    cr_assert(eq(u64, a.in, r.sent), "%s: the client sent %llu bytes", a.line, r.sent);
    cr_assert(eq(u64, a.out, r.received), "%s: the client received %llu bytes", a.line, r.received);
    h_assert_stat(t->adm, "tcp", "no_sni", 1);
    h_assert_stat(t->adm, "tcp", "connections", 2);
    h_proxy_finish(t->p);
}

Test(tcp_mode, an_sni_listener_behind_a_balancer_reads_the_proxy_header_then_the_name,
     .timeout = H_TEST_TIMEOUT)
{
    struct tm_tls_node *x, *y;
    struct tm_proxy *t;
    const char *src = NULL, *pre, **names, *all;
    char ip_side, src_side;
    unsigned from = 0;
    struct h_conn *c;
    struct tm_alog a;
    size_t len;
    char *got;

    tm_tls_nodes(&x, &y);
    t = tm_start(&(struct h_proxy_opts){.x = {{x->port}},
                                        .y = {{y->port}},
                                        .weight = "50",
                                        .split_extra = "  trusted_proxies: [\"127.0.0.1\"]\n"},
                 (const char *const[]){"mode: tcp, key: sni, proxy_protocol: true", NULL}, 1000);
    /* A client address the balancer names on the other side than its own (127.0.0.1). */
    ip_side = tm_which(t->adm, "ip=127.0.0.1");
    for (int k = 1; k < 200 && src == NULL; k++)
        if (tm_which(t->adm, h_fmt("ip=10.0.0.%d", k)) != ip_side)
            src = h_fmt("10.0.0.%d", k);
    cr_assert(ne(ptr, (void *)src, NULL));
    src_side = tm_which(t->adm, h_fmt("ip=%s", src));
    pre = h_fmt("PROXY TCP4 %s 10.0.0.250 5555 443\r\n", src);

    /* The header and the ClientHello in one write: the name decides, the client is src. */
    names = tm_names_on(t->adm, ip_side, 1, &from);
    cr_assert(
        eq(str,
           (char *)tm_tls_node_of(
               t->port[0], &(struct tm_hello){.sni = names[0], .pre = pre, .pre_len = strlen(pre)}),
           (char *)(ip_side == 'x' ? "x-node" : "y-node")),
        "a ClientHello after a PROXY header did not route by its name %s", names[0]);
    a = tm_alog(t->p, h_fmt("\"TCP sni=%s\"", names[0]));
    cr_assert(eq(str, (char *)a.ip, (char *)src), "%s", a.line);
    cr_assert(eq(chr, a.cluster[0], ip_side), "%s", a.line);

    /* The header and plain text: keyed on the address of the header, not of the socket. */
    c = h_connect(t->port[0]);
    all = h_fmt("%s%s", pre, TM_GET("/"));
    cr_assert(eq(int, h_send_str(c, all), 0));
    (void)h_read_until_close(c, &got, &len, H_IO_TIMEOUT_MS); /* the TLS node refuses it */
    h_close(c);
    a = tm_alog(t->p, "\"TCP ip\"");
    cr_assert(eq(str, (char *)a.ip, (char *)src), "%s", a.line);
    cr_assert(eq(chr, a.cluster[0], src_side),
              "the relay went to the side of the socket's address: %s", a.line);

    /* No header: refused, as on an http listener. */
    c = h_connect(t->port[0]);
    cr_assert(eq(int, h_send_str(c, TM_GET("/")), 0));
    cr_assert(tm_closed_empty(c, H_IO_TIMEOUT_MS), "a connection without a header was not closed");
    h_await_stat(t->adm, "tcp", "proxy_refused", 1);
    h_assert_stat(t->adm, "tcp", "no_sni", 1);
    h_assert_stat(t->adm, "tcp", "connections", 3);
    h_proxy_finish(t->p);
}

Test(tcp_mode, on_an_sni_listener_plain_text_and_silence_are_relayed_by_the_address,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_upstream *y1 = h_upstream_start("y1", NULL);
    struct tm_proxy *t =
        tm_start(&(struct h_proxy_opts){.x = {{x1->port}}, .y = {{y1->port}}, .weight = "50"},
                 (const char *const[]){"mode: tcp, key: sni", NULL}, 1000);
    unsigned on_x = 0, on_y = 0;
    struct h_conn *c;
    const char *want;
    uint64_t since;

    /* Plain HTTP: relayed as it came, to the node of the address. */
    for (int i = 2; i <= 13; i++) {
        const char *src = tm_src(i);
        const char *via_sni;

        c = tm_connect_from(src, t->port[0]);
        cr_assert(eq(int, h_send_str(c, TM_GET("/")), 0));
        via_sni = tm_upstream(tm_read_200(c, h_fmt("plain GET / from %s", src)));
        h_close(c);
        c = tm_connect_from(src, t->p->port);
        cr_assert(eq(int, h_send_str(c, TM_GET("/")), 0));
        cr_assert(eq(str, (char *)via_sni,
                     (char *)tm_upstream(tm_read_200(c, "GET / through the http listener"))),
                  "plain text from %s did not go where the address goes", src);
        h_close(c);
        if (via_sni[0] == 'x')
            on_x++;
        else
            on_y++;
    }
    cr_assert(gt(uint, on_x, 0u), "no source went to x");
    cr_assert(gt(uint, on_y, 0u), "no source went to y");
    h_await_stat(t->adm, "tcp", "no_sni", 12);
    tm_alog_await_count(t->p, "\"TCP ip\" - ", 12);

    /* Silence: nothing is relayed before timeouts.tcp_hello (1s), then the address decides. */
    since = h_now_ms();
    c = tm_connect_from(tm_src(20), t->port[0]);
    h_admin_sync(t->adm);
    if (h_now_ms() - since < 800) {
        h_assert_stat(t->adm, "tcp", "no_sni", 12);
        h_assert_stat(t->adm, "x tunnels", "open", 0);
        h_assert_stat(t->adm, "y tunnels", "open", 0);
    }
    h_await_stat(t->adm, "tcp", "no_sni", 13);
    /* Not much before the second (libevent's cached clock may make it fire a few ms early). */
    cr_assert(ge(u64, h_now_ms() - since, 900), "the silent client was relayed before tcp_hello");
    want = tm_which(t->adm, h_fmt("ip=%s", tm_src(20))) == 'x' ? "x1" : "y1";
    h_await_stat(t->adm, want[0] == 'x' ? "x tunnels" : "y tunnels", "open", 1);
    cr_assert(eq(int, h_send_str(c, TM_GET("/late")), 0));
    cr_assert(
        eq(str, (char *)tm_upstream(tm_read_200(c, "GET /late after the silence")), (char *)want));
    h_close(c);
    h_assert_stat(t->adm, "tcp", "connections", 13);
    h_proxy_finish(t->p);
}

/* ------------------------------------------------------------------ 6. PROXY in */

/* The crossfade of the PROXY-in tests: listen[0] takes PROXY headers from 127.0.0.1, the
 * harness's listener (p->port) does not; x1 answers everything. */
static struct tm_proxy *
tm_pp_in_proxy(struct h_upstream *x1)
{
    return tm_start(&(struct h_proxy_opts){.x = {{x1->port}},
                                           .split_extra = "  trusted_proxies: [\"127.0.0.1\"]\n",
                                           .client_header_ms = 1000},
                    (const char *const[]){"proxy_protocol: true", NULL}, 0);
}

/* GET `target` (/echo/...) on c after `pre` (pre_len bytes, sent in two writes cut at `cut`);
 * returns the request head the node received. */
static struct h_msg *
tm_echo_after(struct h_conn *c, const void *pre, size_t pre_len, size_t cut, const char *target)
{
    struct h_msg *seen = h_alloc(sizeof(*seen));
    const char *req = h_fmt("GET %s HTTP/1.1\r\nHost: " H_HOST "\r\n\r\n", target);
    struct h_msg *m;

    if (pre_len > 0) {
        cr_assert(eq(int, h_send(c, pre, cut), 0));
        h_sleep_ms(50);
        cr_assert(eq(int, h_send(c, (const char *)pre + cut, pre_len - cut), 0));
    }
    cr_assert(eq(int, h_send_str(c, req), 0));
    m = tm_read_200(c, target);
    cr_assert(eq(int, h_parse_request_head(m->body, m->body_len, seen), 0),
              "the echoed head does not parse: %s", seen->error);
    return seen;
}

Test(tcp_mode, a_proxy_header_from_a_trusted_balancer_gives_the_client_its_address,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct tm_proxy *t = tm_pp_in_proxy(x1);
    const char *v1 = h_fmt("PROXY TCP4 10.9.8.7 127.0.0.1 5555 %d\r\n", t->port[0]);
    const char *v1_6 = h_fmt("PROXY TCP6 2001:db8::7 ::1 5555 %d\r\n", t->port[0]);
    unsigned char v2[28], local[28];
    struct h_conn *c;
    struct h_msg *seen;

    /* v1, then a second request on the same connection: the header spoke for both. */
    c = h_connect(t->port[0]);
    seen = tm_echo_after(c, v1, strlen(v1), 10, "/echo/v1");
    cr_assert(eq(str, (char *)h_header(seen, "X-Forwarded-For"), "10.9.8.7"), "%s", seen->head);
    seen = tm_echo_after(c, NULL, 0, 0, "/echo/v1-again");
    cr_assert(eq(str, (char *)h_header(seen, "X-Forwarded-For"), "10.9.8.7"), "%s", seen->head);
    h_close(c);
    cr_assert(eq(str, (char *)tm_alog(t->p, "\"GET /echo/v1 HTTP/1.1\"").ip, "10.9.8.7"));
    cr_assert(eq(str, (char *)tm_alog(t->p, "\"GET /echo/v1-again HTTP/1.1\"").ip, "10.9.8.7"));

    /* v1 with IPv6 addresses. */
    c = h_connect(t->port[0]);
    seen = tm_echo_after(c, v1_6, strlen(v1_6), 3, "/echo/v1-6");
    cr_assert(eq(str, (char *)h_header(seen, "X-Forwarded-For"), "2001:db8::7"), "%s", seen->head);
    h_close(c);
    cr_assert(eq(str, (char *)tm_alog(t->p, "\"GET /echo/v1-6 HTTP/1.1\"").ip, "2001:db8::7"));

    /* v2, its binary header in two writes cut inside the signature. */
    c = h_connect(t->port[0]);
    seen = tm_echo_after(c, v2, tm_pp2(v2, "10.1.2.3", "127.0.0.1", 4444, (uint16_t)t->port[0]), 7,
                         "/echo/v2");
    cr_assert(eq(str, (char *)h_header(seen, "X-Forwarded-For"), "10.1.2.3"), "%s", seen->head);
    h_close(c);
    cr_assert(eq(str, (char *)tm_alog(t->p, "\"GET /echo/v2 HTTP/1.1\"").ip, "10.1.2.3"));

    /* v2 with TLVs after the addresses (an authority, a no-op), as cloud balancers send. */
    {
        static const unsigned char tlvs[] = {0x02, 0x00, 0x0b, 'e', 'x',  'a',  'm',  'p', 'l', 'e',
                                             '.',  'c',  'o',  'm', 0x04, 0x00, 0x03, 0,   0,   0};
        unsigned char with[28 + sizeof(tlvs)];

        tm_pp2(with, "10.4.5.6", "127.0.0.1", 4444, (uint16_t)t->port[0]);
        with[15] = (unsigned char)(12 + sizeof(tlvs));
        memcpy(with + 28, tlvs, sizeof(tlvs));
        c = h_connect(t->port[0]);
        seen = tm_echo_after(c, with, sizeof(with), 30, "/echo/v2-tlv");
        cr_assert(eq(str, (char *)h_header(seen, "X-Forwarded-For"), "10.4.5.6"), "%s", seen->head);
        h_close(c);
    }

    /* A balancer's own connection (v1 UNKNOWN, v2 LOCAL): served with the connection's address. */
    c = h_connect(t->port[0]);
    seen = tm_echo_after(c, "PROXY UNKNOWN\r\n", 15, 15, "/echo/unknown");
    cr_assert(eq(str, (char *)h_header(seen, "X-Forwarded-For"), "127.0.0.1"), "%s", seen->head);
    h_close(c);
    tm_pp2(local, "0.0.0.0", "0.0.0.0", 0, 0);
    local[12] = 0x20; /* version 2, LOCAL */
    local[13] = 0x00;
    local[15] = 0;
    c = h_connect(t->port[0]);
    seen = tm_echo_after(c, local, 16, 16, "/echo/local");
    cr_assert(eq(str, (char *)h_header(seen, "X-Forwarded-For"), "127.0.0.1"), "%s", seen->head);
    h_close(c);
    h_assert_stat(t->adm, "tcp", "proxy_refused", 0);
    h_proxy_finish(t->p);
}

Test(tcp_mode, a_tls_listener_behind_a_balancer_reads_the_proxy_header_then_the_handshake,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct tm_proxy *t;
    const char *v1 = "PROXY TCP4 10.9.8.7 127.0.0.1 5555 443\r\n";
    unsigned char v2[28];
    struct h_conn *c;
    struct tm_tls r;

    ht_certs_make("ca ca 'Test CA'\nleaf srv ca /CN=" H_HOST " \"$ec\" \"$srv\" 1\n");
    t = tm_start(&(struct h_proxy_opts){.x = {{x1->port}},
                                        .split_extra = "  trusted_proxies: [\"127.0.0.1\"]\n"},
                 (const char *const[]){h_fmt("proxy_protocol: true, tls: {certificates: [{cert: "
                                             "\"%s\", key: \"%s\"}]}",
                                             ht_pem("srv"), ht_key("srv")),
                                       NULL},
                 0);

    /* The header and the ClientHello in one write. */
    c = h_connect(t->port[0]);
    r = tm_tls_on(c, &(struct tm_hello){.sni = H_HOST, .pre = v1, .pre_len = strlen(v1)});
    cr_assert(eq(ptr, (void *)r.error, NULL), "%s", r.error);
    cr_assert(eq(str, (char *)r.cn, H_HOST));
    cr_assert(eq(int, strncmp(r.reply, "HTTP/1.1 200 ", 13), 0), "%.200s", r.reply);
    cr_assert(
        ne(ptr, (void *)h_memcasemem(r.reply, strlen(r.reply), "\r\nX-Upstream: x1\r\n"), NULL),
        "%.200s", r.reply);
    h_close(c);
    tm_alog_await_count(t->p, " 10.9.8.7 x ", 1);

    /* A v2 header in a write of its own, then the handshake. */
    c = h_connect(t->port[0]);
    cr_assert(eq(int, h_send(c, v2, tm_pp2(v2, "10.1.2.3", "127.0.0.1", 4444, 443)), 0));
    h_sleep_ms(50);
    r = tm_tls_on(c, &(struct tm_hello){.sni = H_HOST});
    cr_assert(eq(ptr, (void *)r.error, NULL), "%s", r.error);
    cr_assert(eq(int, strncmp(r.reply, "HTTP/1.1 200 ", 13), 0), "%.200s", r.reply);
    h_close(c);
    tm_alog_await_count(t->p, " 10.1.2.3 x ", 1);
    h_assert_stat(t->adm, "tls_handshakes", "completed", 2);
    h_assert_stat(t->adm, "tcp", "proxy_refused", 0);
    h_proxy_finish(t->p);
}

Test(tcp_mode, a_connection_without_a_valid_proxy_header_from_a_trusted_balancer_is_closed,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct tm_proxy *t = tm_pp_in_proxy(x1);
    const char *v1 = h_fmt("PROXY TCP4 10.9.8.7 127.0.0.1 5555 %d\r\n", t->port[0]);
    static const char req[] = TM_GET("/echo/refused");
    unsigned char v2[28];
    uint64_t conns, before, after;
    struct {
        const char *what, *src;
        const void *pre;
        size_t pre_len;
    } cases[] = {
        {"no header", "127.0.0.1", "", 0},
        {"a malformed v1 header", "127.0.0.1", "PROXY TCP4 10.9.8.7\r\n", 21},
        {"a v2 header of version 3", "127.0.0.1", v2, 28},
        {"a valid header from an untrusted source", "127.0.0.5", v1, strlen(v1)},
    };
    struct h_conn *c;

    tm_pp2(v2, "10.1.2.3", "127.0.0.1", 4444, (uint16_t)t->port[0]);
    v2[12] = 0x31;
    h_upstream_counters(x1, &conns, &before);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        c = tm_connect_from(cases[i].src, t->port[0]);
        if (cases[i].pre_len > 0)
            cr_assert(eq(int, h_send(c, cases[i].pre, cases[i].pre_len), 0));
        (void)h_send_str(c, req); /* the connection may be gone already */
        cr_assert(tm_closed_empty(c, H_IO_TIMEOUT_MS),
                  "%s: the connection was not closed "
                  "without an answer (%zu bytes came)",
                  cases[i].what, h_pending(c));
        h_close(c);
        h_await_stat(t->adm, "tcp", "proxy_refused", (long long)i + 1);
    }
    /* A header that never completes: closed after timeouts.client_header (1s). */
    c = h_connect(t->port[0]);
    cr_assert(eq(int, h_send_str(c, "PROXY TCP4 10.9"), 0));
    cr_assert(tm_closed_empty(c, H_IO_TIMEOUT_MS), "an incomplete header was not closed");
    h_await_stat(t->adm, "tcp", "proxy_refused", 5);

    /* Nothing reached the node: a request through the other listener is the only one. */
    c = h_connect(t->p->port);
    cr_assert(eq(int, h_send_str(c, TM_GET("/sentinel")), 0));
    tm_read_200(c, "GET /sentinel");
    h_upstream_counters(x1, &conns, &after);
    cr_assert(eq(u64, after - before, 1), "the node received %llu requests, not only the sentinel",
              (unsigned long long)(after - before));
    cr_assert(eq(sz, h_log_count(t->p->access_log, "/echo/refused"), (size_t)0),
              "a refused request was logged as served:\n%s", h_read_file(t->p->access_log, NULL));
    cr_assert(h_log_wait(t->p->proc->log_path, "event=proxy_header_refused client=127.0.0.5 ",
                         H_IO_TIMEOUT_MS),
              "no refusal logged for the untrusted source:\n%s",
              h_read_file(t->p->proc->log_path, NULL));
    cr_assert(eq(sz, h_log_count(t->p->proc->log_path, "event=proxy_header_refused "), (size_t)5),
              "not one line per refusal:\n%s", h_read_file(t->p->proc->log_path, NULL));
    h_assert_stat(t->adm, "tcp", "connections", 0);
    h_proxy_finish(t->p);
}

/* ------------------------------------------------------------------ 7. PROXY out */

/* The crossfade of the PROXY-out tests: x (raw node nx) sends v1, y (raw node ny) v2; weight 0;
 * listen[0] is a tcp listener; `listener_extra` more keys of it, `split_extra` as in
 * h_proxy_opts. */
static struct tm_proxy *
tm_pp_out_proxy(struct raw_node *nx, struct raw_node *ny, const char *listener_extra,
                const char *listener2, const char *split_extra)
{
    return tm_start(&(struct h_proxy_opts){.x = {{nx->port}},
                                           .y = {{ny->port}},
                                           .x_extra = "    proxy_protocol: v1\n",
                                           .y_extra = "    proxy_protocol: v2\n",
                                           .split_extra = split_extra},
                    (const char *const[]){h_fmt("mode: tcp%s", listener_extra), listener2, NULL},
                    0);
}

Test(tcp_mode, a_cluster_with_proxy_protocol_sends_the_header_first_on_each_http_connection,
     .timeout = H_TEST_TIMEOUT)
{
    struct raw_node *nx = raw_node_start(), *ny = raw_node_start();
    struct tm_proxy *t = tm_pp_out_proxy(nx, ny, "", NULL, NULL);
    struct h_conn *c = tm_connect_from("127.0.0.7", t->p->port);
    int port = h_conn_port(c);
    const char *line = h_fmt("PROXY TCP4 127.0.0.7 127.0.0.1 %d %d\r\n", port, t->p->port);
    unsigned char v2[28];
    const char *head;
    int fd, fd2;

    /* x: v1, then the request. */
    cr_assert(eq(int, h_send_str(c, TM_GET("/pp1")), 0));
    fd = raw_accept(nx);
    tm_node_expect(fd, line, strlen(line), "HTTP mode, v1");
    head = raw_read_head(fd, NULL, NULL);
    cr_assert(eq(int, strncmp(head, "GET /pp1 HTTP/1.1\r\n", 19), 0), "%s", head);
    raw_send(fd, TM_OK, strlen(TM_OK));
    cr_assert(eq(str, tm_read_200(c, "GET /pp1")->body, "ok\n"));
    /* The node's connection speaks for this client alone: the next request opens another, with
     * its own header. */
    cr_assert(eq(int, h_send_str(c, TM_GET("/pp1-again")), 0));
    fd2 = raw_accept(nx);
    tm_node_expect(fd2, line, strlen(line), "HTTP mode, v1, second request");
    head = raw_read_head(fd2, NULL, NULL);
    cr_assert(eq(int, strncmp(head, "GET /pp1-again HTTP/1.1\r\n", 25), 0), "%s", head);
    raw_send(fd2, TM_OK, strlen(TM_OK));
    tm_read_200(c, "GET /pp1-again");
    cr_assert(raw_wait_eof(fd, H_IO_TIMEOUT_MS), "the first node connection was kept");
    close(fd);
    close(fd2);
    h_close(c);

    /* y: v2 with the same addresses in binary. */
    cr_assert(eq(int, strncmp(h_admin_cmd(t->adm, "set weight 100"), "ok", 2), 0));
    c = tm_connect_from("127.0.0.7", t->p->port);
    port = h_conn_port(c);
    tm_pp2(v2, "127.0.0.7", "127.0.0.1", (uint16_t)port, (uint16_t)t->p->port);
    cr_assert(eq(int, h_send_str(c, TM_GET("/pp2")), 0));
    fd = raw_accept(ny);
    tm_node_expect(fd, v2, sizeof(v2), "HTTP mode, v2");
    head = raw_read_head(fd, NULL, NULL);
    cr_assert(eq(int, strncmp(head, "GET /pp2 HTTP/1.1\r\n", 19), 0), "%s", head);
    raw_send(fd, TM_OK, strlen(TM_OK));
    cr_assert(eq(str, tm_read_200(c, "GET /pp2")->body, "ok\n"));
    close(fd);
    h_proxy_finish(t->p);
}

Test(tcp_mode, a_cluster_with_proxy_protocol_sends_the_header_first_on_each_relay,
     .timeout = H_TEST_TIMEOUT)
{
    struct raw_node *nx = raw_node_start(), *ny = raw_node_start();
    struct tm_proxy *t = tm_pp_out_proxy(nx, ny, "", NULL, NULL);
    struct h_conn *c = tm_connect_from("127.0.0.7", t->port[0]);
    const char *line =
        h_fmt("PROXY TCP4 127.0.0.7 127.0.0.1 %d %d\r\n", h_conn_port(c), t->port[0]);
    unsigned char v2[28];
    int fd;

    /* x: v1, then exactly the client's bytes, which need not be HTTP; and back. */
    cr_assert(eq(int, h_send_str(c, "ping\r\n"), 0));
    fd = raw_accept(nx);
    tm_node_expect(fd, h_fmt("%sping\r\n", line), strlen(line) + 6, "tcp mode, v1");
    raw_send(fd, "pong", 4);
    conn_expect(c, "pong", 4);
    h_close(c);
    cr_assert(raw_wait_eof(fd, H_IO_TIMEOUT_MS), "the node's side stayed open");
    close(fd);

    /* y: v2. */
    cr_assert(eq(int, strncmp(h_admin_cmd(t->adm, "set weight 100"), "ok", 2), 0));
    c = tm_connect_from("127.0.0.8", t->port[0]);
    tm_pp2(v2, "127.0.0.8", "127.0.0.1", (uint16_t)h_conn_port(c), (uint16_t)t->port[0]);
    cr_assert(eq(int, h_send_str(c, "ping\r\n"), 0));
    fd = raw_accept(ny);
    tm_node_expect(fd, v2, sizeof(v2), "tcp mode, v2");
    tm_node_expect(fd, "ping\r\n", 6, "tcp mode, v2: the client's bytes");
    raw_send(fd, "pong", 4);
    conn_expect(c, "pong", 4);
    h_close(c);
    close(fd);
    h_assert_stat(t->adm, "tcp", "connections", 2);
    h_proxy_finish(t->p);
}

Test(tcp_mode, with_proxy_headers_in_and_out_the_node_gets_the_address_the_balancer_sent,
     .timeout = H_TEST_TIMEOUT)
{
    struct raw_node *nx = raw_node_start(), *ny = raw_node_start();
    struct tm_proxy *t = tm_pp_out_proxy(nx, ny, ", proxy_protocol: true", "proxy_protocol: true",
                                         "  trusted_proxies: [\"127.0.0.1\"]\n");
    static const char in1[] = "PROXY TCP4 10.9.8.7 10.0.0.1 5555 443\r\n";
    unsigned char in2[28], in6[52];
    struct h_conn *c;
    const char *head;
    int fd;

    /* HTTP mode (listen[1]), x: the v1 line the balancer sent, as it sent it. */
    c = h_connect(t->port[1]);
    cr_assert(eq(int, h_sendf(c, "%s%s", in1, TM_GET("/in-out")), 0));
    fd = raw_accept(nx);
    tm_node_expect(fd, in1, strlen(in1), "HTTP mode, in v1, out v1");
    head = raw_read_head(fd, NULL, NULL);
    cr_assert(eq(int, strncmp(head, "GET /in-out HTTP/1.1\r\n", 22), 0), "%s", head);
    cr_assert(ne(ptr, (void *)h_memcasemem(head, strlen(head), "\r\nX-Forwarded-For: 10.9.8.7\r\n"),
                 NULL),
              "%s", head);
    raw_send(fd, TM_OK, strlen(TM_OK));
    tm_read_200(c, "GET /in-out");
    close(fd);
    h_close(c);

    /* tcp mode (listen[0]), x: a v2 header in, the v1 line of its addresses out. */
    c = h_connect(t->port[0]);
    cr_assert(eq(int, h_send(c, in2, tm_pp2(in2, "10.1.2.3", "10.0.0.2", 4444, 8443)), 0));
    cr_assert(eq(int, h_send_str(c, "ping\r\n"), 0));
    fd = raw_accept(nx);
    head = "PROXY TCP4 10.1.2.3 10.0.0.2 4444 8443\r\nping\r\n";
    tm_node_expect(fd, head, strlen(head), "tcp mode, in v2, out v1");
    raw_send(fd, "pong", 4);
    conn_expect(c, "pong", 4);
    h_close(c);
    close(fd);
    cr_assert(eq(str, (char *)tm_alog(t->p, "\"TCP ip\"").ip, "10.1.2.3"));

    /* tcp mode, x: IPv6 addresses in v2, the TCP6 line out. */
    c = h_connect(t->port[0]);
    cr_assert(eq(int, h_send(c, in6, tm_pp2(in6, "2001:db8::1", "2001:db8::2", 4444, 443)), 0));
    cr_assert(eq(int, h_send_str(c, "ping\r\n"), 0));
    fd = raw_accept(nx);
    head = "PROXY TCP6 2001:db8::1 2001:db8::2 4444 443\r\nping\r\n";
    tm_node_expect(fd, head, strlen(head), "tcp mode, in v2 IPv6, out v1");
    h_close(c);
    close(fd);

    /* tcp mode, x: UNKNOWN in (the balancer's own connection): its own addresses out. */
    c = h_connect(t->port[0]);
    cr_assert(eq(int, h_send_str(c, "PROXY UNKNOWN\r\nping\r\n"), 0));
    fd = raw_accept(nx);
    head = h_fmt("PROXY TCP4 127.0.0.1 127.0.0.1 %d %d\r\nping\r\n", h_conn_port(c), t->port[0]);
    tm_node_expect(fd, head, strlen(head), "tcp mode, in UNKNOWN, out v1");
    h_close(c);
    close(fd);

    /* tcp mode, y: the v1 line in, v2 out; in IPv4 then in IPv6. */
    cr_assert(eq(int, strncmp(h_admin_cmd(t->adm, "set weight 100"), "ok", 2), 0));
    c = h_connect(t->port[0]);
    cr_assert(eq(int, h_sendf(c, "%sping\r\n", in1), 0));
    fd = raw_accept(ny);
    tm_node_expect(fd, in2, tm_pp2(in2, "10.9.8.7", "10.0.0.1", 5555, 443),
                   "tcp mode, in v1, out v2");
    tm_node_expect(fd, "ping\r\n", 6, "tcp mode, in v1, out v2: the client's bytes");
    raw_send(fd, "pong", 4);
    conn_expect(c, "pong", 4);
    h_close(c);
    close(fd);
    c = h_connect(t->port[0]);
    cr_assert(eq(int, h_send_str(c, "PROXY TCP6 2001:db8::7 2001:db8::8 5555 443\r\nping\r\n"), 0));
    fd = raw_accept(ny);
    tm_node_expect(fd, in6, tm_pp2(in6, "2001:db8::7", "2001:db8::8", 5555, 443),
                   "tcp mode, in v1 IPv6, out v2");
    tm_node_expect(fd, "ping\r\n", 6, "tcp mode, in v1 IPv6, out v2: the client's bytes");
    h_close(c);
    close(fd);
    h_assert_stat(t->adm, "tcp", "proxy_refused", 0);
    h_proxy_finish(t->p);
}

Test(tcp_mode, a_relay_or_a_request_retried_on_another_node_sends_that_node_one_proxy_header,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct raw_node *ny = raw_node_start();
    int dead = h_free_port();
    struct tm_proxy *t = tm_start(&(struct h_proxy_opts){.x = {{x1->port}},
                                                         .y = {{dead}, {ny->port}},
                                                         .weight = "100",
                                                         .y_extra = "    proxy_protocol: v1\n"},
                                  (const char *const[]){"mode: tcp", NULL}, 0);
    const char *src[2] = {NULL, NULL}, *line, *head;
    struct h_conn *c;
    int fd;

    /* Two sources whose hash picks the dead node first. */
    for (int i = 2, k = 0; i < 60 && k < 2; i++)
        if (strstr(h_admin_cmd(t->adm, h_fmt("which ip=%s", tm_src(i))),
                   h_fmt("\nnode 127.0.0.1:%d\n", dead)) != NULL)
            src[k++] = tm_src(i);
    cr_assert(ne(ptr, (void *)src[1], NULL), "fewer than two sources hash to the dead node");

    /* A relay. */
    c = tm_connect_from(src[0], t->port[0]);
    line = h_fmt("PROXY TCP4 %s 127.0.0.1 %d %d\r\n", src[0], h_conn_port(c), t->port[0]);
    cr_assert(eq(int, h_send_str(c, "ping\r\n"), 0));
    fd = raw_accept(ny);
    tm_node_expect(fd, h_fmt("%sping\r\n", line), strlen(line) + 6, "a retried relay");
    raw_send(fd, "pong", 4);
    conn_expect(c, "pong", 4);
    h_close(c);
    cr_assert(raw_wait_eof(fd, H_IO_TIMEOUT_MS),
              "the node got more bytes, or its side stayed open");
    close(fd);
    h_await_stat(t->adm, "y retries", NULL, 1);

    /* An HTTP request. */
    c = tm_connect_from(src[1], t->p->port);
    line = h_fmt("PROXY TCP4 %s 127.0.0.1 %d %d\r\n", src[1], h_conn_port(c), t->p->port);
    cr_assert(eq(int, h_send_str(c, TM_GET("/retried")), 0));
    fd = raw_accept(ny);
    tm_node_expect(fd, line, strlen(line), "a retried request");
    head = raw_read_head(fd, NULL, NULL);
    cr_assert(eq(int, strncmp(head, "GET /retried HTTP/1.1\r\n", 23), 0), "%s", head);
    raw_send(fd, TM_OK, strlen(TM_OK));
    tm_read_200(c, "GET /retried");
    h_close(c);
    close(fd);
    h_assert_stat(t->adm, "y retries", NULL, 2);
    h_proxy_finish(t->p);
}

/* ------------------------------------------------------------------ drains, leavers, node_port */

Test(tcp_mode, a_drained_node_closes_its_relays_and_a_side_left_without_nodes_closes_new_ones,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_upstream *y1 = h_upstream_start("y1", NULL);
    struct h_upstream *y2 = h_upstream_start("y2", NULL);
    struct tm_proxy *t = tm_start(&(struct h_proxy_opts){.x = {{x1->port}},
                                                         .y = {{y1->port}, {y2->port}},
                                                         .weight = "100",
                                                         .y_extra = "    failover: false\n"},
                                  (const char *const[]){"mode: tcp", NULL}, 0);
    struct h_conn *c[12], *n;
    const char *on[12];
    int n1 = 0, n2 = 0, moved = -1;
    const char *reply;
    struct tm_alog a;

    for (int i = 0; i < 12; i++) {
        c[i] = tm_connect_from(tm_src(i + 2), t->port[0]);
        cr_assert(eq(int, h_send_str(c[i], TM_GET("/")), 0));
        on[i] = tm_upstream(tm_read_200(c[i], h_fmt("GET / from %s", tm_src(i + 2))));
        n1 += strcmp(on[i], "y1") == 0;
        n2 += strcmp(on[i], "y2") == 0;
    }
    cr_assert(n1 > 0 && n2 > 0 && n1 + n2 == 12, "y1 has %d relays, y2 %d", n1, n2);

    /* Drained: y1's relays close, y2's go on, and a client of y1 comes back to y2. */
    reply = h_admin_cmd(t->adm, h_fmt("drain node y/%s", y1->addr));
    cr_assert(eq(int, strncmp(reply, "ok", 2), 0), "%s", reply);
    for (int i = 0; i < 12; i++) {
        if (strcmp(on[i], "y1") != 0)
            continue;
        cr_assert(tm_closed_empty(c[i], H_IO_TIMEOUT_MS),
                  "the relay of %s on the drained node stayed open", tm_src(i + 2));
        if (moved == -1)
            moved = i;
    }
    h_await_stat(t->adm, "y tunnels", "open", n2);
    n = tm_connect_from(tm_src(moved + 2), t->port[0]);
    cr_assert(eq(int, h_send_str(n, TM_GET("/")), 0));
    cr_assert(eq(str, (char *)tm_upstream(tm_read_200(n, "GET / after the drain")), "y2"));
    h_close(n);

    /* A reload keeps the relays open. */
    reply = h_admin_cmd(t->adm, "reload");
    cr_assert(eq(int, strncmp(reply, "ok", 2), 0), "%s", reply);
    for (int i = 0; i < 12; i++) {
        if (strcmp(on[i], "y2") != 0)
            continue;
        cr_assert(eq(int, h_send_str(c[i], TM_GET("/after-reload")), 0));
        cr_assert(eq(str, (char *)tm_upstream(tm_read_200(c[i], "GET /after-reload")), "y2"));
    }

    /* y2 drained too: y has no node, and does not fail over; a new relay is closed at once. */
    reply = h_admin_cmd(t->adm, h_fmt("drain node y/%s", y2->addr));
    cr_assert(eq(int, strncmp(reply, "ok", 2), 0), "%s", reply);
    h_await_stat(t->adm, "y tunnels", "open", 0);
    n = tm_connect_from(tm_src(30), t->port[0]);
    (void)h_send_str(n, TM_GET("/nowhere"));
    cr_assert(tm_closed_empty(n, H_IO_TIMEOUT_MS), "a relay with no node was not closed");
    h_close(n);
    cr_assert(
        h_log_wait(t->p->proc->log_path, "event=tcp_no_node client=127.0.0.30 ", H_IO_TIMEOUT_MS),
        "%s", h_read_file(t->p->proc->log_path, NULL));
    a = tm_alog(t->p, " 127.0.0.30 ");
    cr_assert(eq(str, (char *)a.status, "503"), "%s", a.line);
    cr_assert(eq(str, (char *)a.node, "-"), "%s", a.line);
    h_await_stat(t->adm, "y active", NULL, 0);

    /* Enabled again: relays go through. */
    reply = h_admin_cmd(t->adm, h_fmt("enable node y/%s", y1->addr));
    cr_assert(eq(int, strncmp(reply, "ok", 2), 0), "%s", reply);
    n = tm_connect_from(tm_src(moved + 2), t->port[0]);
    cr_assert(eq(int, h_send_str(n, TM_GET("/")), 0));
    cr_assert(eq(str, (char *)tm_upstream(tm_read_200(n, "GET / after enable")), "y1"));
    h_close(n);
    for (int i = 0; i < 12; i++)
        h_close(c[i]);
    h_await_stat(t->adm, "y tunnels", "open", 0);
    h_await_stat(t->adm, "y active", NULL, 0);
    h_proxy_finish(t->p);
}

Test(tcp_mode, clients_that_leave_before_their_relay_starts_leave_nothing_behind,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    int hole = h_blackhole_start();
    struct tm_proxy *t =
        tm_start(&(struct h_proxy_opts){.x = {{x1->port}},
                                        .y = {{hole}},
                                        .y_extra = "    failover: false\n",
                                        .connect_ms = 500},
                 (const char *const[]){"mode: tcp", "mode: tcp, key: sni", NULL}, 1000);
    static const char partial[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    struct h_conn *c;
    long long n = 0;

    for (int i = 0; i < 4; i++) {
        /* ip: gone before the node's connection is up, by a FIN or a reset. */
        c = h_connect(t->port[0]);
        if (i % 2 == 0)
            h_close(c);
        else
            h_abort(c);
        /* sni: gone before the ClientHello, or in its middle. */
        c = h_connect(t->port[1]);
        if (i >= 2)
            cr_assert(eq(int, h_send(c, partial, sizeof(partial) - 1), 0));
        if (i % 2 == 0)
            h_close(c);
        else
            h_abort(c);
        n += 2;
    }
    /* A relay to a node that never answers the connect, whose client leaves meanwhile. */
    cr_assert(eq(int, strncmp(h_admin_cmd(t->adm, "set weight 100 force"), "ok", 2), 0));
    c = h_connect(t->port[0]);
    n++;
    h_close(c);
    cr_assert(eq(int, strncmp(h_admin_cmd(t->adm, "set weight 0"), "ok", 2), 0));

    h_await_stat(t->adm, "tcp", "connections", n);
    h_await_stat(t->adm, "x active", NULL, 0);
    h_await_stat(t->adm, "y active", NULL, 0);
    h_await_stat(t->adm, "x tunnels", "open", 0);
    h_assert_stat(t->adm, "y tunnels", "open", 0);
    /* And relays still work on both listeners. */
    c = h_connect(t->port[0]);
    cr_assert(eq(int, h_send_str(c, TM_GET("/")), 0));
    cr_assert(eq(str, (char *)tm_upstream(tm_read_200(c, "GET / on the ip listener")), "x1"));
    h_close(c);
    c = h_connect(t->port[1]);
    cr_assert(eq(int, h_send_str(c, TM_GET("/")), 0));
    cr_assert(eq(str, (char *)tm_upstream(tm_read_200(c, "GET / on the sni listener")), "x1"));
    h_close(c);
    h_await_stat(t->adm, "x tunnels", "open", 0);
    h_proxy_finish(t->p);
}

Test(tcp_mode, a_tcp_listener_with_node_port_relays_to_the_nodes_host_at_that_port,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct h_upstream *alt = h_upstream_start("alt", NULL);
    struct tm_proxy *t =
        tm_start(&(struct h_proxy_opts){.x = {{x1->port}}},
                 (const char *const[]){h_fmt("mode: tcp, node_port: %d", alt->port), NULL}, 0);
    struct h_conn *c = h_connect(t->port[0]);
    struct tm_alog a;

    cr_assert(eq(int, h_send_str(c, TM_GET("/")), 0));
    cr_assert(
        eq(str, (char *)tm_upstream(tm_read_200(c, "GET / on the node_port listener")), "alt"));
    h_close(c);
    c = h_connect(t->p->port);
    cr_assert(eq(int, h_send_str(c, TM_GET("/")), 0));
    cr_assert(eq(str, (char *)tm_upstream(tm_read_200(c, "GET / on the http listener")), "x1"));
    h_close(c);
    a = tm_alog(t->p, "\"TCP ip\"");
    cr_assert(eq(str, (char *)a.node, alt->addr), "%s", a.line);
    h_proxy_finish(t->p);
}

/* ------------------------------------------------------------------ health checks */

Test(tcp_mode, health_checks_of_a_cluster_with_proxy_protocol_send_the_header_too,
     .timeout = H_TEST_TIMEOUT)
{
    int port = tm_rec_start();
    struct tm_proxy *t = tm_start(
        &(struct h_proxy_opts){.x = {{port}},
                               .x_extra =
                                   "    proxy_protocol: v1\n"
                                   "    health: {interval: 200ms, timeout: 200ms, rise: 1}\n"},
        (const char *const[]){"mode: tcp", NULL}, 0);
    struct h_conn *c;
    const char *first;
    size_t len;

    /* The first connection is a check: a node that takes PROXY headers wants one there too, or it
     * fails the check (HAProxy sends it on checks when the server has send-proxy). */
    first = tm_rec_first(1, 0, &len);
    cr_expect(tm_is_pp(first, len),
              "a health check of a cluster with proxy_protocol v1 began without a PROXY header: "
              "\"%.*s\"",
              (int)len, first);
    /* Traffic does send it (the recorder sees it: the check above is not blind). */
    c = h_connect(t->p->port);
    cr_assert(eq(int, h_send_str(c, TM_GET("/traffic")), 0));
    tm_read_200(c, "GET /traffic");
    h_close(c);
    for (size_t i = 1;; i++) {
        first = tm_rec_first(i + 1, i, &len);
        if (len >= 6 && memcmp(first, "PROXY ", 6) == 0 &&
            memmem(first, len, "GET /traffic ", 13) != NULL)
            break;
        cr_assert(lt(sz, i, (size_t)TM_REC_CONNS - 1), "no connection carried the request");
    }
    h_proxy_finish(t->p);
}

/* ------------------------------------------------------------------ 8. config errors */

/*
 * Starts crossfade on the harness's config for `o` with `listener` (block lines of one more
 * listener, "  - address: ...\n    mode: tcp\n") as listen[0] when not NULL; asserts that it
 * refuses to start (exit 2, the port never listens) with a message on stderr that begins with
 * FILE:LINE:COLUMN: of the text after `at` (the first place `at` is in the file) and `path: `,
 * and holds each of `more` (NULL-terminated, may be NULL).
 */
static void
tm_refused(const struct h_proxy_opts *o, const char *listener, const char *at, const char *path,
           const char *const more[])
{
    int port = h_free_port();
    const char *cfg = h_proxy_write_config("crossfade.yaml", o, port);
    const char *text = h_read_file(cfg, NULL);
    const char *hit, *bol, *where;
    int line = 1, code;
    char *err = NULL;

    if (listener != NULL)
        text = ht_replace_once(text, "listen:\n", h_fmt("listen:\n%s", listener));
    cfg = h_write_file("crossfade.yaml", "%s", text);
    hit = strstr(text, at);
    cr_assert(ne(ptr, (void *)hit, NULL), "\"%s\" is not in the config", at);
    for (const char *q = text; q < hit; q++)
        line += *q == '\n';
    for (bol = hit; bol > text && bol[-1] != '\n'; bol--)
        ;
    where = h_fmt("%s:%d:%d: %s: ", cfg, line, (int)(hit - bol) + (int)strlen(at) + 1, path);
    code =
        h_run((char *[]){(char *)h_bin("crossfade"), "-c", (char *)cfg, NULL}, 10000, NULL, &err);
    cr_assert(eq(int, code, 2), "crossfade started on a config with %s (exit %d):\n%s\n%s", at,
              code, text, err != NULL ? err : "");
    cr_assert(eq(int, strncmp(err, where, strlen(where)), 0),
              "stderr does not begin with \"%s\":\n%s", where, err);
    for (size_t i = 0; more != NULL && more[i] != NULL; i++)
        cr_assert(ne(ptr, strstr(err, more[i]), NULL), "the message does not say \"%s\":\n%s",
                  more[i], err);
    cr_assert(eq(int, h_try_connect(port, 1000), ECONNREFUSED), "its listen port accepts");
}

Test(tcp_mode, the_keys_of_tcp_mode_and_proxy_protocol_refuse_what_cannot_work,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy_opts o = {.x = {{h_free_port()}}};
    const char *a = h_fmt("  - address: \"127.0.0.1:%d\"\n", h_free_port());

    ht_certs_make("ca ca 'Test CA'\nleaf srv ca /CN=srv \"$ec\" \"$srv\" 1\n");
    tm_refused(&o, h_fmt("%s    key: sni\n", a), "key: ", "listen[0].key",
               (const char *const[]){"mode: tcp", NULL});
    tm_refused(&o, h_fmt("%s    mode: tcp\n    key: mac\n", a), "key: ", "listen[0].key",
               (const char *const[]){"got \"mac\"", "ip or sni", NULL});
    tm_refused(&o,
               h_fmt("%s    mode: tcp\n    tls: {certificates: [{cert: \"%s\", key: \"%s\"}]}\n", a,
                     ht_pem("srv"), ht_key("srv")),
               "tls: ", "listen[0].tls", NULL);
    tm_refused(&o, h_fmt("%s    mode: tcp\n    role: admin_api\n", a), "role: ", "listen[0].role",
               NULL);
    tm_refused(&o, h_fmt("%s    mode: udp\n", a), "mode: ", "listen[0].mode",
               (const char *const[]){"got \"udp\"", "tcp", NULL});
    tm_refused(&o, h_fmt("%s    proxy_protocol: true\n", a),
               "proxy_protocol: ", "listen[0].proxy_protocol",
               (const char *const[]){"trusted_proxies", NULL});
    o.x_extra = "    proxy_protocol: v3\n";
    tm_refused(&o, NULL, "proxy_protocol: ", "clusters.x.proxy_protocol",
               (const char *const[]){"got \"v3\"", "v1", "v2", NULL});
}
