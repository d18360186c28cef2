/* tests/integration/tcp_helpers.h -- the tcp-mode half of the harness: crossfade with more
 * listeners, clients bound to any loopback source, the access log's lines, a TLS client that
 * says hello in pieces, openssl s_server nodes, PROXY v2 headers, and a node played by a thread. */
#ifndef TCP_HELPERS_H
#define TCP_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tests/integration/harness.h"

/*
 * A suite that uses these is declared with `.init = h_setup, .fini = tm_teardown`: tm_teardown
 * closes the connections tm_connect_from opened and stops the recorder thread, then calls
 * ht_teardown (the TLS helpers' teardown, which calls h_teardown). What the functions return is
 * harness-owned (it lives until the end of the test), as in harness.h.
 */
void tm_teardown(void);

/* GET target with the harness's Host, keep-alive (target: a string literal). */
#define TM_GET(target) "GET " target " HTTP/1.1\r\nHost: " H_HOST "\r\n\r\n"
/* A fixed response a node the test plays answers with. */
#define TM_OK "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"

/* --- clients --- */

/* A connection to 127.0.0.1:port from the address `src` (bound before the connect), as h_connect
 * makes them: non-blocking, TCP_NODELAY. Asserts that it connects. */
struct h_conn *tm_connect_from(const char *src, int port);
/* "127.0.0.N". */
const char *tm_src(int n);
/* Whether the peer closed c (EOF or reset) with nothing pending, within timeout_ms. */
bool tm_closed_empty(struct h_conn *c, int timeout_ms);
/* Reads one response on c; asserts a 200 and returns it. */
struct h_msg *tm_read_200(struct h_conn *c, const char *what);
/* The X-Upstream of a response ("" when it has none). */
const char *tm_upstream(const struct h_msg *m);

/* --- crossfade with more listeners --- */

struct tm_proxy {
    struct h_proxy *p; /* p->port: the harness's http listener, the last of the list */
    int port[4];       /* listen[i]: the test's listeners */
    int adm;           /* an admin connection */
};

/*
 * Starts crossfade on the harness's config for `o` with the listeners `listeners` (the keys of
 * each mapping after its address: "mode: tcp, key: sni"; at most 4, NULL-terminated) first, on
 * free ports, and the harness's http listener last; timeouts.tcp_hello when tcp_hello_ms is not
 * 0. Waits until every listener listens and crossfade serves. Nothing connects to the test's
 * listeners on the way (a connection to a tcp listener would be relayed and counted): crossfade's
 * log says when they listen.
 */
struct tm_proxy *tm_start(const struct h_proxy_opts *o, const char *const listeners[],
                          unsigned tcp_hello_ms);
/* The side `which KEY` gives on the admin socket: 'x' or 'y'. */
char tm_which(int adm, const char *key);

/* --- the access log --- */

struct tm_alog {
    const char *line;
    const char *ip, *cluster, *node, *status;
    unsigned long long in, out;
};

/* The first access log line that holds `needle` ("\"TCP ip\"", " 10.9.8.7 "), waited for:
 * <time> <ip> <cluster> <node> "<request>" <status> <in> <out> <up ms> <total ms>. */
struct tm_alog tm_alog(const struct h_proxy *p, const char *needle);
/* Waits until the access log has `n` lines holding `needle`; fails showing it when not. */
void tm_alog_await_count(const struct h_proxy *p, const char *needle, size_t n);

/* --- TLS nodes and the test's TLS client --- */

/* A TLS node: openssl s_server -www presenting the certificate NAME (CN x-node or y-node). */
struct tm_tls_node {
    struct h_proc *proc;
    int port;
    const char *addr;
};

/* Makes the certificates xnode (CN x-node) and ynode (CN y-node) and starts a node with each. */
void tm_tls_nodes(struct tm_tls_node **x, struct tm_tls_node **y);

/* How the test's TLS client says hello. */
struct tm_hello {
    const char *sni; /* the server name; NULL: no server_name extension */
    /* The ClientHello's writes: pieces of these sizes (a 0-ended list, taken round) with
     * pause_ms between them; NULL: one write. */
    const size_t *pieces;
    unsigned pause_ms;
    bool two_records;  /* the ClientHello in two TLS records, cut in its middle */
    const void *pre;   /* bytes sent first, in the ClientHello's first write (a PROXY header) */
    size_t pre_len;    /* their length */
    size_t alpn_bytes; /* about this many bytes of ALPN protocols: a large ClientHello */
};

struct tm_tls {
    const char *error; /* why the exchange stopped short; NULL when the node answered */
    const char *cn;    /* the CN of the node's certificate */
    const char *reply; /* the beginning of the answer to GET / */
    unsigned long long sent, received; /* the bytes the client sent and received on its socket */
};

/* A TLS client on c that says hello as `o` says; then "GET / HTTP/1.0" and the answer read until
 * the server closes. Never asserts on what the other end does. */
struct tm_tls tm_tls_on(struct h_conn *c, const struct tm_hello *o);
/* A TLS exchange said as `o` says through the listener on `port` from 127.0.0.1 that must go
 * through to an s_server node (a handshake, a 200 to GET /): its result. */
struct tm_tls tm_tls_through(int port, const struct tm_hello *o);
/* tm_tls_through: the CN of the node that answered. */
const char *tm_tls_node_of(int port, const struct tm_hello *o);
/* tm_tls_node_of with a plain ClientHello for `sni`. */
const char *tm_tls_node_for(int port, const char *sni);

/* --- PROXY headers and nodes the test plays --- */

/* A PROXY v2 header (command PROXY) for TCP over IPv4, or over IPv6 when the addresses have a
 * colon, in out (28 or 52 bytes); returns its length. */
size_t tm_pp2(unsigned char *out, const char *src, const char *dst, uint16_t sport, uint16_t dport);
/* Whether `b` (len bytes) starts with a PROXY header of either version. */
bool tm_is_pp(const char *b, size_t len);
/* Asserts that the node received `want` (len bytes) next on fd. */
void tm_node_expect(int fd, const void *want, size_t len, const char *what);

#define TM_REC_CONNS 16 /* the connections whose first bytes the recorder keeps */
/* Starts the recorder: a node played by a thread of the test (for a node that must answer while
 * crossfade starts, its health checks), which answers every connection with a fixed 200 and
 * records the first bytes of each. Returns its port. One per test. */
int tm_rec_start(void);
/* Waits until the recorder accepted `n` connections; returns a copy of the first bytes of
 * connection i (at most 256, to the end of its head) and their length in *len. */
const char *tm_rec_first(size_t n, size_t i, size_t *len);

#endif
