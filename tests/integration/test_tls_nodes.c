/* tests/integration/test_tls_nodes.c -- TLS to the nodes (clusters.*.tls): verification by CA and
 * by name or IP address, a node that fails the handshake (a 502, another node, never plain text),
 * pooling and session resumption with their counters, health checks over TLS; and two things of
 * the client side that concern whole requests: cert:subject as the split key, and renegotiation.
 *
 * There is no TLS-speaking test upstream: a TLS node is a second crossfade (a "gateway", whose
 * files are named after it: gw.yaml, gw.log, gw.sock) with a TLS listener whose certificate the
 * test's CA signed for gw.test and 127.0.0.1, forwarding plain to an xf-upstream called gw1. The
 * crossfade under test (the harness's files) sends cluster y to the gateway's TLS port. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tests/integration/harness.h"
#include "tests/integration/tls_helpers.h"

TestSuite(tls_nodes, .init = h_setup, .fini = ht_teardown);

/* Health checks that reach a verdict in a few seconds, with room for a TLS handshake through a
 * second crossfade under the sanitizers. */
#define CHECKS  "interval: 500ms, timeout: 500ms, rise: 2, fall: 3"
#define WAIT_MS 10000 /* the longest wait for a state the checks reach in a few intervals */

/*
 * The test's certificates (ECDSA P-256):
 *   ca          the CA of the gateways' certificates ("Test CA")
 *   gw          CN gw.test, SAN DNS:gw.test, IP:127.0.0.1, signed by ca
 *   gwname      CN gw.test, SAN DNS:gw.test only (no IP entry), signed by ca
 *   otherca     a CA that signed none of them ("Other CA")
 *   clientca    the CA of the clients' certificates ("Client CA"), and alice
 *               (O=Acme,CN=alice) and bob (O=Acme,CN=bob)
 */
static void
certs_make(void)
{
    ht_certs_make("ca ca 'Test CA'\n"
                  "leaf gw ca /CN=gw.test \"$ec\" \\\n"
                  "    \"$srv\nsubjectAltName = DNS:gw.test,IP:127.0.0.1\" 1\n"
                  "leaf gwname ca /CN=gw.test \"$ec\" \"$srv\nsubjectAltName = DNS:gw.test\" 2\n"
                  "ca otherca 'Other CA'\n"
                  "ca clientca 'Client CA'\n"
                  "leaf alice clientca /CN=alice/O=Acme \"$ec\" \"$cli\" 3\n"
                  "leaf bob clientca /CN=bob/O=Acme \"$ec\" \"$cli\" 4\n");
}

/* ------------------------------------------------------------------ the gateway */

struct gw {
    struct ht_proxy *tp;   /* the gateway crossfade; tp->tls_port is the node of the test */
    struct h_upstream *up; /* its only node, which answers every request */
    const char *addr;      /* "127.0.0.1:TLS_PORT": the node as the test's crossfade names it */
};

/*
 * Starts xf-upstream `up_name` and a gateway crossfade `name` in front of it, whose TLS listener
 * presents certificate `cert` (made by certs_make).
 */
static struct gw *
gw_start(const char *name, const char *up_name, const char *cert)
{
    struct gw *g = h_alloc(sizeof(*g));

    g->up = h_upstream_start(up_name, NULL);
    g->tp = ht_proxy_start(name, &(struct ht_listen){.certs = {ht_made(cert)}},
                           &(struct h_proxy_opts){.x = {{g->up->port}}});
    g->addr = h_fmt("127.0.0.1:%d", g->tp->tls_port);
    return g;
}

/* ------------------------------------------------------------------ the crossfade under test */

/*
 * The options of the crossfade under test: cluster x is a new xf-upstream x1, cluster y the node
 * on y_port with `tls` as y's tls mapping ("{ca: \"...\", sni: gw.test}"). Weight 100 sends every
 * request to y, and failover: false keeps a request y failed from going to x: a 502 or a 503 is
 * y's. `more`: more lines under clusters.y, each indented four spaces; NULL: none.
 */
static struct h_proxy_opts *
front_opts(int y_port, const char *tls, const char *more)
{
    struct h_proxy_opts *o = h_alloc(sizeof(*o));

    o->x[0].port = h_upstream_start("x1", NULL)->port;
    o->y[0].port = y_port;
    o->weight = "100";
    o->y_extra = h_fmt("    failover: false\n    tls: %s\n%s", tls, more != NULL ? more : "");
    return o;
}

/* y's tls mapping with CA file `ca` (made by certs_make) and, when not NULL, sni. */
static const char *
tls_map(const char *ca, const char *sni)
{
    if (sni == NULL)
        return h_fmt("{ca: \"%s\"}", ht_pem(ca));
    return h_fmt("{ca: \"%s\", sni: %s}", ht_pem(ca), sni);
}

/* GET `target` through crossfade on `port` on a new connection (extra header lines `head`, or
 * NULL); asserts that a response came and returns it. */
static struct h_msg *
get(int port, const char *target, const char *head)
{
    struct h_conn *c = h_connect(port);
    struct h_msg *m = h_alloc(sizeof(*m));

    cr_assert(eq(int,
                 h_sendf(c, "GET %s HTTP/1.1\r\nHost: " H_HOST "\r\n%s\r\n", target,
                         head != NULL ? head : ""),
                 0),
              "send: %s", strerror(errno));
    cr_assert(eq(int, h_read_response(c, m), 0), "GET %s: no response: %s", target, m->error);
    h_close(c);
    return m;
}

/* The X-Upstream of a response ("" when it has none). */
static const char *
upstream(const struct h_msg *m)
{
    const char *u = h_header(m, "X-Upstream");

    return u != NULL ? u : "";
}

/* ------------------------------------------------------------------ counters and logs */

struct counts {
    long long completed, resumed, failed;
};

/* The `PREFIX completed=N resumed=N failed=N` line of show stats on adm: "tls_node_handshakes"
 * (crossfade's handshakes with its nodes) or "tls_handshakes" (with its clients). *line_out, when
 * not NULL, gets the line for messages. */
static struct counts
counts(int adm, const char *prefix, const char **line_out)
{
    const char *stats = h_admin_cmd(adm, "show stats");
    const char *line = strstr(stats, h_fmt("\n%s ", prefix));
    struct counts n = {-1, -1, -1};

    cr_assert(ne(ptr, (void *)line, NULL), "no %s line in show stats:\n%s", prefix, stats);
    line = h_fmt("%.*s", (int)strcspn(line + 1, "\n"), line + 1);
    cr_assert(eq(int,
                 sscanf(line + strlen(prefix), " completed=%lld resumed=%lld failed=%lld",
                        &n.completed, &n.resumed, &n.failed),
                 3),
              "the line is not %s completed=N resumed=N failed=N: %s", prefix, line);
    if (line_out != NULL)
        *line_out = line;
    return n;
}

/* Asserts the exact `PREFIX completed=.. resumed=.. failed=..` line of show stats on adm. */
static void
assert_counts(int adm, const char *prefix, long long completed, long long resumed, long long failed)
{
    const char *line;
    struct counts n = counts(adm, prefix, &line);

    cr_assert(n.completed == completed && n.resumed == resumed && n.failed == failed,
              "show stats says \"%s\", expected %s completed=%lld resumed=%lld failed=%lld", line,
              prefix, completed, resumed, failed);
}

/* Waits until the gateway counts at least `want` failed client handshakes: the test's crossfade
 * spoke TLS to it and gave up (its alert after its verification failed). */
static void
await_gw_failed(const struct gw *g, long long want)
{
    uint64_t deadline = h_now_ms() + H_IO_TIMEOUT_MS;
    const char *line;

    while (counts(g->tp->adm, "tls_handshakes", &line).failed < want) {
        cr_assert(lt(u64, h_now_ms(), deadline),
                  "the gateway does not count %lld failed handshakes: %s", want, line);
        h_sleep_ms(10);
    }
}

/* Asserts that `up` received no request (xf-upstream's own count). */
static void
assert_no_request(struct h_upstream *up)
{
    uint64_t conns, reqs;

    h_upstream_counters(up, &conns, &reqs);
    cr_assert(eq(u64, reqs, 0), "%s received %llu requests", up->name, (unsigned long long)reqs);
}

/* Asserts that crossfade's log gets a line holding `needle` (the node's fault, logged once). */
static void
assert_logged(const struct h_proxy *p, const char *needle)
{
    cr_assert(h_log_wait(p->proc->log_path, needle, H_IO_TIMEOUT_MS),
              "no line holding\n  %s\nin crossfade's log:\n%s", needle,
              h_read_file(p->proc->log_path, NULL));
}

/* The line crossfade logs when a request's handshake with node `addr` fails with `reason`. */
static const char *
fault_line(const char *addr, const char *reason)
{
    return h_fmt("node=%s event=tls_handshake_failed reason=\"%s\"", addr, reason);
}

/* ------------------------------------------------------------------ verification passes */

/*
 * The node's certificate is signed by `ca` and names gw.test (sni): the request goes through the
 * gateway over TLS (it stamps X-Forwarded-Proto https), one handshake is counted on each side,
 * and a second request reuses the pooled connection without another handshake.
 */
Test(tls_nodes, a_node_whose_certificate_verifies_serves_over_tls_and_stays_pooled,
     .timeout = H_TEST_TIMEOUT)
{
    struct gw *g;
    struct h_proxy *p;
    struct h_msg m, seen;
    struct h_conn *c;
    int adm;

    certs_make();
    g = gw_start("gw", "gw1", "gw");
    p = h_proxy_start(front_opts(g->tp->tls_port, tls_map("ca", "gw.test"), NULL));
    adm = h_admin_connect(p);
    assert_counts(adm, "tls_node_handshakes", 0, 0, 0);

    c = h_connect(p->port);
    cr_assert(eq(int, h_get(c, "/echo", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200), "status %d: %s", m.status, m.body);
    cr_assert(eq(str, (char *)upstream(&m), "gw1"), "answered by \"%s\"", upstream(&m));
    cr_assert(eq(int, h_parse_request_head(m.body, m.body_len, &seen), 0),
              "gw1's echo does not parse (%s):\n%s", seen.error, m.body);
    /* The gateway took the request on its TLS listener: it says https to gw1. */
    cr_assert(eq(str, (char *)h_header(&seen, "X-Forwarded-Proto"), "https"), "%s", seen.head);
    assert_counts(adm, "tls_node_handshakes", 1, 0, 0);
    assert_counts(g->tp->adm, "tls_handshakes", 1, 0, 0);

    /* Once the connection is back in y's pool, the next request takes it: no new handshake. */
    cr_assert(h_admin_wait_node(adm, "y", g->addr, H_NODE_IDLE, "1", H_IO_TIMEOUT_MS),
              "the connection to the node is not pooled: %s", h_admin_node_line(adm, "y", g->addr));
    cr_assert(eq(int, h_get(c, "/", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(str, m.body, "gw1\n"));
    assert_counts(adm, "tls_node_handshakes", 1, 0, 0);
    assert_counts(g->tp->adm, "tls_handshakes", 1, 0, 0);
    cr_assert(h_upstream_wait_requests(g->up, 2, H_IO_TIMEOUT_MS));
    h_proxy_finish(p);
    h_proxy_finish(g->tp->p);
}

/*
 * Without sni, a node given by IP address is checked against the certificate's IP entries: y's
 * gateway has IP:127.0.0.1 and serves; x's gateway (gwname) has only DNS:gw.test and is refused
 * ("IP address mismatch"). X-Crossfade-Target picks the cluster.
 */
Test(tls_nodes, without_sni_a_node_given_by_address_is_checked_against_the_ip_entries,
     .timeout = H_TEST_TIMEOUT)
{
    struct gw *g, *gn;
    struct h_proxy_opts *o;
    struct h_proxy *p;
    struct h_msg *m;
    int adm;

    certs_make();
    g = gw_start("gw", "gw1", "gw");
    gn = gw_start("gwname", "gwname1", "gwname");
    o = front_opts(g->tp->tls_port, tls_map("ca", NULL), NULL);
    o->x[0].port = gn->tp->tls_port;
    o->x_extra = h_fmt("    tls: %s\n", tls_map("ca", NULL));
    p = h_proxy_start(o);
    adm = h_admin_connect(p);

    m = get(p->port, "/", "X-Crossfade-Target: y\r\n");
    cr_assert(eq(int, m->status, 200), "status %d: %s", m->status, m->body);
    cr_assert(eq(str, (char *)upstream(m), "gw1"));
    m = get(p->port, "/", "X-Crossfade-Target: x\r\n");
    cr_assert(eq(int, m->status, 502), "a certificate without the node's IP: status %d from \"%s\"",
              m->status, upstream(m));
    assert_logged(p, fault_line(gn->addr, "certificate verify failed: IP address mismatch"));
    assert_counts(adm, "tls_node_handshakes", 1, 0, 1);
    await_gw_failed(gn, 1);
    assert_counts(gn->tp->adm, "tls_handshakes", 0, 0, 1);
    assert_no_request(gn->up);
    h_proxy_finish(p);
    h_proxy_finish(g->tp->p);
    h_proxy_finish(gn->tp->p);
}

/* ------------------------------------------------------------------ resumption */

/*
 * One worker, whose idle connections to the nodes close after 100 ms; `n` requests, each once the
 * gateway saw the connection of the one before close: each makes a new connection. Asserts
 * that every one was served and that both sides counted n handshakes, none failed, and the same
 * number resumed; returns that number.
 */
static long long
reconnect(struct gw *g, struct h_proxy **pp, int n)
{
    struct h_proxy_opts *o = front_opts(g->tp->tls_port, tls_map("ca", "gw.test"), NULL);
    struct counts front, back;
    const char *front_line, *back_line;
    struct h_proxy *p;
    int adm;

    o->extra_yaml = "workers: 1\n"; /* sessions are kept per worker */
    o->upstream_idle_ms = 100;
    p = h_proxy_start(o);
    adm = h_admin_connect(p);
    for (int i = 0; i < n; i++) {
        struct h_msg *m = get(p->port, "/", NULL);

        cr_assert(eq(int, m->status, 200), "request %d: status %d: %s", i + 1, m->status, m->body);
        cr_assert(eq(str, m->body, "gw1\n"));
        cr_assert(h_admin_wait_stat(g->tp->adm, "client_connections", NULL, 0, H_IO_TIMEOUT_MS),
                  "request %d: the connection to the gateway was not closed: %s", i + 1,
                  h_admin_cmd(adm, "show nodes"));
    }
    front = counts(adm, "tls_node_handshakes", &front_line);
    back = counts(g->tp->adm, "tls_handshakes", &back_line);
    cr_assert(front.completed == n && front.failed == 0,
              "%d requests, each on a new connection: crossfade says \"%s\"", n, front_line);
    cr_assert(back.completed == n && back.failed == 0, "%d connections: the gateway says \"%s\"", n,
              back_line);
    cr_assert(eq(i64, front.resumed, back.resumed),
              "crossfade and the gateway disagree on the resumed handshakes: \"%s\", \"%s\"",
              front_line, back_line);
    *pp = p;
    return front.resumed;
}

/* A new connection to a node offers the session the node gave before: the gateway resumes it
 * (both sides count it). */
Test(tls_nodes, a_new_connection_to_a_node_resumes_the_session_it_gave, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p;
    struct gw *g;
    long long resumed;

    certs_make();
    g = gw_start("gw", "gw1", "gw");
    resumed = reconnect(g, &p, 4);
    cr_assert(ge(i64, resumed, 1), "none of 3 reconnections to the node resumed its session");
    h_proxy_finish(p);
    h_proxy_finish(g->tp->p);
}

/*
 * docs/tls.md: "A new connection offers the last session the node gave (per node, per worker), so
 * most reconnections skip the public-key work". With one worker, every reconnection should
 * resume.
 *
 * A resumed TLS 1.3 session is not resumed again (RFC 8446 C.4; OpenSSL marks it used): this
 * holds only because crossfade keeps both tickets a node sends after a full handshake, offers
 * each once, and a crossfade listener sends a new ticket on every resumed TLS 1.3 connection.
 */
Test(tls_nodes, every_reconnection_to_a_node_resumes_its_session, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p;
    struct gw *g;
    long long resumed;

    certs_make();
    g = gw_start("gw", "gw1", "gw");
    resumed = reconnect(g, &p, 5);
    cr_assert(eq(i64, resumed, 4), "%lld of 4 reconnections to the node resumed its session",
              resumed);
    h_proxy_finish(p);
    h_proxy_finish(g->tp->p);
}

/* ------------------------------------------------------------------ verification fails */

/*
 * y's TLS settings are `tls` (tls_map), which the gateway's certificate fails: a 502, never the
 * node's answer; the log names the node and OpenSSL's `reason`; both sides count the failed
 * handshake, and nothing reaches gw1.
 */
static void
assert_verification_fails(const char *tls, const char *reason)
{
    struct h_proxy *p;
    struct h_msg *m;
    struct gw *g;
    int adm;

    certs_make();
    g = gw_start("gw", "gw1", "gw");
    p = h_proxy_start(front_opts(g->tp->tls_port, tls, NULL));
    adm = h_admin_connect(p);
    m = get(p->port, "/", NULL);
    cr_assert(eq(int, m->status, 502), "status %d from \"%s\"", m->status, upstream(m));
    assert_counts(adm, "tls_node_handshakes", 0, 0, 1);
    assert_logged(p, fault_line(g->addr, reason));
    /* The handshake reached the gateway, which saw it fail; nothing reached gw1. */
    await_gw_failed(g, 1);
    assert_counts(g->tp->adm, "tls_handshakes", 0, 0, 1);
    assert_no_request(g->up);
    h_proxy_finish(p);
    h_proxy_finish(g->tp->p);
}

/* y's ca is a CA that did not sign the node's certificate. */
Test(tls_nodes, a_node_certificate_from_another_ca_gets_a_502_logged_with_the_reason,
     .timeout = H_TEST_TIMEOUT)
{
    assert_verification_fails(tls_map("otherca", "gw.test"),
                              "certificate verify failed: unable to get local issuer certificate");
}

/* sni other.test, a name the node's certificate does not hold: "hostname mismatch". */
Test(tls_nodes, a_node_certificate_for_another_name_gets_a_502_logged_as_hostname_mismatch,
     .timeout = H_TEST_TIMEOUT)
{
    assert_verification_fails(tls_map("ca", "other.test"),
                              "certificate verify failed: hostname mismatch");
}

/*
 * A node that speaks plain HTTP in a TLS cluster: crossfade connects, sends its ClientHello, reads
 * what is not TLS and gives up ("wrong version number"): a 502, and the node never receives a
 * request in plain text.
 */
Test(tls_nodes, a_plain_http_node_in_a_tls_cluster_gets_no_plain_request_and_a_502,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *plain;
    uint64_t conns0, reqs0, conns1, reqs1;
    const char *addr;
    struct h_proxy *p;
    struct h_msg *m;
    int adm;

    certs_make();
    plain = h_upstream_start("plain", NULL);
    addr = plain->addr;
    p = h_proxy_start(front_opts(plain->port, tls_map("ca", "gw.test"), NULL));
    adm = h_admin_connect(p);
    h_upstream_counters(plain, &conns0, &reqs0);
    m = get(p->port, "/", NULL);
    cr_assert(eq(int, m->status, 502), "status %d from \"%s\"", m->status, upstream(m));
    assert_counts(adm, "tls_node_handshakes", 0, 0, 1);
    assert_logged(p, fault_line(addr, "wrong version number"));
    h_upstream_counters(plain, &conns1, &reqs1);
    cr_assert(eq(u64, conns1, conns0 + 1), "crossfade made %llu connections to the node, not 1",
              (unsigned long long)(conns1 - conns0));
    cr_assert(eq(u64, reqs1, 0), "the plain node received %llu requests",
              (unsigned long long)reqs1);
    h_proxy_finish(p);
}

/*
 * y has two nodes: one that speaks plain HTTP and the gateway. A request whose key the plain node
 * takes fails its handshake there and is retried on the gateway (retries, as for a refused
 * connection): a 200 from gw1, one handshake failed and one completed.
 */
Test(tls_nodes, a_request_whose_node_fails_the_handshake_is_retried_on_another_node,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *plain;
    struct h_proxy_opts *o;
    struct h_proxy *p;
    const char *k;
    struct gw *g;
    int adm;

    certs_make();
    g = gw_start("gw", "gw1", "gw");
    plain = h_upstream_start("plain", NULL);
    o = front_opts(plain->port, tls_map("ca", "gw.test"), NULL);
    o->y[1].port = g->tp->tls_port;
    o->split_extra = "  key: \"header:X-Key\"\n";
    p = h_proxy_start(o);
    adm = h_admin_connect(p);
    k = h_admin_key_for_node(adm, "header:X-Key", plain->addr, 0);
    cr_assert(ne(ptr, (void *)k, NULL), "no key goes to the plain node");
    cr_assert(eq(str, (char *)h_served_by(h_connect(p->port), k), "gw1"));
    assert_counts(adm, "tls_node_handshakes", 1, 0, 1);
    assert_logged(p, fault_line(plain->addr, "wrong version number"));
    assert_no_request(plain);
    h_proxy_finish(p);
    h_proxy_finish(g->tp->p);
}

/* ------------------------------------------------------------------ health checks */

/* The checks of a TLS cluster go over TLS with the same verification: they pass (ok:200), the
 * node comes up and serves, and the gateway counts their handshakes, none failed. */
Test(tls_nodes, health_checks_of_a_tls_cluster_go_over_tls_and_pass, .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p;
    struct h_msg *m;
    const char *line;
    struct counts n;
    struct gw *g;
    int adm;

    certs_make();
    g = gw_start("gw", "gw1", "gw");
    p = h_proxy_start(front_opts(g->tp->tls_port, tls_map("ca", "gw.test"),
                                 "    health: {path: /status, " CHECKS "}\n"));
    adm = h_admin_connect(p);
    cr_assert(h_admin_wait_node(adm, "y", g->addr, H_NODE_STATE, "up", WAIT_MS),
              "the node is not up: %s", h_admin_node_line(adm, "y", g->addr));
    line = h_admin_node_line(adm, "y", g->addr);
    cr_assert(eq(str, (char *)h_word(line, H_NODE_CHECK), "ok:200"), "%s", line);
    /* rise 2: at least two checks, each a TLS connection of its own. */
    n = counts(g->tp->adm, "tls_handshakes", &line);
    cr_assert(n.completed >= 2 && n.failed == 0, "the gateway says \"%s\"", line);
    m = get(p->port, "/", NULL);
    cr_assert(eq(int, m->status, 200), "status %d: %s", m->status, m->body);
    cr_assert(eq(str, (char *)upstream(m), "gw1"));
    h_proxy_finish(p);
    h_proxy_finish(g->tp->p);
}

/* With a CA that did not sign the node's certificate the checks fail with fail:tls, the node is
 * down (after fall checks) and takes no request: a 503. */
Test(tls_nodes, a_health_check_whose_handshake_fails_reads_fail_tls_and_the_node_goes_down,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_proxy *p;
    struct h_msg *m;
    const char *line;
    struct gw *g;
    int adm;

    certs_make();
    g = gw_start("gw", "gw1", "gw");
    p = h_proxy_start(front_opts(g->tp->tls_port, tls_map("otherca", "gw.test"),
                                 "    health: {path: /status, " CHECKS "}\n"));
    adm = h_admin_connect(p);
    cr_assert(h_admin_wait_node(adm, "y", g->addr, H_NODE_STATE, "down", WAIT_MS),
              "the node is not down: %s", h_admin_node_line(adm, "y", g->addr));
    line = h_admin_node_line(adm, "y", g->addr);
    cr_assert(eq(str, (char *)h_word(line, H_NODE_CHECK), "fail:tls"), "%s", line);
    await_gw_failed(g, 3);
    m = get(p->port, "/", NULL);
    cr_assert(eq(int, m->status, 503), "status %d from \"%s\"", m->status, upstream(m));
    assert_no_request(g->up);
    h_proxy_finish(p);
    h_proxy_finish(g->tp->p);
}

/* ------------------------------------------------------------------ the client's side */

/*
 * split.key cert:subject on a listener with verify_client required, weight 0: alice
 * (O=Acme,CN=alice as RFC 2253 writes her subject) goes to x like everyone; once her subject is
 * pinned to y she goes to y on every connection, and bob, whose subject differs only in CN, stays
 * on x.
 */
Test(tls_nodes, cert_subject_as_the_split_key_follows_a_pin_of_the_subject,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x1, *y1;
    struct ht_proxy *tp;
    struct ht_opts alice, bob;
    struct ht_result r;
    const char *reply;

    certs_make();
    x1 = h_upstream_start("x1", NULL);
    y1 = h_upstream_start("y1", NULL);
    tp = ht_proxy_start("crossfade",
                        &(struct ht_listen){.certs = {ht_made("gw")},
                                            .client_ca = ht_pem("clientca"),
                                            .verify_client = "required"},
                        &(struct h_proxy_opts){.x = {{x1->port}},
                                               .y = {{y1->port}},
                                               .weight = "0",
                                               .split_extra = "  key: \"cert:subject\"\n"});
    alice = (struct ht_opts){.sni = "gw.test", .cert = ht_pem("alice"), .key = ht_key("alice")};
    bob = (struct ht_opts){.sni = "gw.test", .cert = ht_pem("bob"), .key = ht_key("bob")};

    r = ht_served(tp->tls_port, &alice, "alice before the pin");
    cr_assert(eq(str, (char *)r.body, "x1\n"), "weight 0 sent alice to %s", r.body);
    reply = h_admin_cmd(tp->adm, "pin O=Acme,CN=alice y");
    cr_assert(eq(str, (char *)reply, "ok: pinned \"O=Acme,CN=alice\" to y\n"), "pin: %s", reply);
    for (int i = 0; i < 3; i++) {
        r = ht_served(tp->tls_port, &alice, "alice once pinned");
        cr_assert(eq(str, (char *)r.body, "y1\n"), "connection %d: pinned alice went to %s", i + 1,
                  r.body);
        r = ht_served(tp->tls_port, &bob, "bob");
        cr_assert(eq(str, (char *)r.body, "x1\n"), "connection %d: bob went to %s", i + 1, r.body);
    }
    h_proxy_finish(tp->p);
}

/* Reads one response (head and Content-Length body) on ssl; true when a whole 200 came. */
static bool
read_200(SSL *ssl)
{
    char buf[4096];
    size_t len = 0;
    const char *end, *cl;

    for (;;) {
        int n;

        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
        cl = end != NULL ? h_memcasemem(buf, (size_t)(end - buf), "\r\nContent-Length:") : NULL;
        if (cl != NULL && (size_t)(end + 4 - buf) + strtoull(cl + 17, NULL, 10) <= len)
            return strncmp(buf, "HTTP/1.1 200 ", 13) == 0;
        if (len == sizeof(buf) - 1)
            return false;
        ERR_clear_error();
        n = SSL_read(ssl, buf + len, (int)(sizeof(buf) - 1 - len));
        if (n <= 0)
            return false;
        len += (size_t)n;
    }
}

/*
 * A TLS 1.2 client that asks for a renegotiation after a request on its connection is refused:
 * its handshake fails with OpenSSL's "no renegotiation" (the reason of the server's
 * no_renegotiation alert), and crossfade goes on serving new connections.
 */
Test(tls_nodes, a_tls_1_2_renegotiation_is_refused_and_crossfade_goes_on_serving,
     .timeout = H_TEST_TIMEOUT)
{
    struct ht_opts o = {.min_version = TLS1_2_VERSION, .max_version = TLS1_2_VERSION};
    static const char req[] = "GET / HTTP/1.1\r\nHost: gw.test\r\n\r\n";
    struct h_upstream *x1;
    struct ht_proxy *tp;
    struct ht_result r;
    const char *why;
    SSL_CTX *ctx;
    SSL *ssl;
    int fd, n;

    certs_make();
    x1 = h_upstream_start("x1", NULL);
    tp = ht_proxy_start("crossfade", &(struct ht_listen){.certs = {ht_made("gw")}},
                        &(struct h_proxy_opts){.x = {{x1->port}}});
    ctx = ht_client_ctx(&o);
    ssl = SSL_new(ctx);
    cr_assert(ne(ptr, ssl, NULL));
    fd = ht_connect_tcp(tp->tls_port);
    cr_assert(eq(int, SSL_set_fd(ssl, fd), 1));
    ERR_clear_error();
    n = SSL_connect(ssl);
    cr_assert(eq(int, n, 1), "handshake: %s", ht_why(ssl, n));
    cr_assert(eq(int, SSL_version(ssl), TLS1_2_VERSION));
    cr_assert(eq(int, SSL_write(ssl, req, (int)strlen(req)), (int)strlen(req)));
    cr_assert(read_200(ssl), "no 200 before the renegotiation");

    cr_assert(eq(int, SSL_renegotiate(ssl), 1), "the client cannot ask for a renegotiation");
    ERR_clear_error();
    errno = 0;
    n = SSL_do_handshake(ssl);
    why = ht_why(ssl, n);
    cr_assert(ne(int, n, 1), "crossfade renegotiated");
    cr_assert(eq(str, (char *)why, "no renegotiation"),
              "the renegotiation ended with \"%s\", not crossfade's no_renegotiation alert", why);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);

    r = ht_served(tp->tls_port, &(struct ht_opts){.sni = "gw.test"}, "a new connection");
    cr_assert(eq(str, (char *)r.body, "x1\n"));
    cr_assert(h_proc_alive(tp->p->proc));
    h_proxy_finish(tp->p);
}
