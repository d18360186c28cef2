/* tests/integration/tcp_helpers.c -- the tcp-mode half of the harness: crossfade with more
 * listeners, clients bound to any loopback source, the access log's lines, a TLS client that
 * says hello in pieces, openssl s_server nodes, PROXY v2 headers, and a node played by a thread. */
#include "tests/integration/tcp_helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tests/integration/tls_helpers.h"
#include "tests/integration/tunnel_helpers.h"

/* ------------------------------------------------------------------ clients from any source */

/* The connections tm_connect_from opened (the harness does not know them): closed at teardown. */
#define TM_MAX_CONNS 128
static struct h_conn *tm_conns[TM_MAX_CONNS];
static size_t tm_n_conns;

/* The recorder (tm_rec_start): a node played by a thread of the test. */
#define TM_REC_BYTES 256
static struct {
    int lfd, port;
    bool started;
    volatile bool stop;
    pthread_t thread;
    pthread_mutex_t mu;
    size_t n;                               /* connections accepted */
    char first[TM_REC_CONNS][TM_REC_BYTES]; /* the first bytes of each, up to its head's end */
    size_t len[TM_REC_CONNS];
} tm_rec = {.lfd = -1, .mu = PTHREAD_MUTEX_INITIALIZER};

void
tm_teardown(void)
{
    for (size_t i = 0; i < tm_n_conns; i++)
        h_close(tm_conns[i]);
    tm_n_conns = 0;
    if (tm_rec.started) {
        tm_rec.stop = true;
        pthread_join(tm_rec.thread, NULL);
        close(tm_rec.lfd);
        tm_rec.started = false;
    }
    ht_teardown();
}

/* A connection to 127.0.0.1:port from the address `src` (bound before the connect), as h_connect
 * makes them: non-blocking, TCP_NODELAY. Asserts that it connects. */
struct h_conn *
tm_connect_from(const char *src, int port)
{
    struct h_conn *c = h_alloc(sizeof(*c));
    struct sockaddr_in from = {.sin_family = AF_INET}, to = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1, err = 0;
    socklen_t len = sizeof(err);
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};

    cr_assert(ne(int, fd, -1), "socket: %s", strerror(errno));
    cr_assert(lt(sz, tm_n_conns, (size_t)TM_MAX_CONNS), "too many connections in one test");
    c->fd = fd;
    tm_conns[tm_n_conns++] = c;
    cr_assert(eq(int, inet_pton(AF_INET, src, &from.sin_addr), 1), "not an address: %s", src);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons((uint16_t)port);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    cr_assert(eq(int, bind(fd, (struct sockaddr *)&from, sizeof(from)), 0), "bind %s: %s", src,
              strerror(errno));
    if (connect(fd, (struct sockaddr *)&to, sizeof(to)) == -1) {
        cr_assert(eq(int, errno, EINPROGRESS), "connect from %s to port %d: %s", src, port,
                  strerror(errno));
        cr_assert(eq(int, poll(&pfd, 1, 5000), 1), "connect from %s to port %d: no answer", src,
                  port);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        cr_assert(eq(int, err, 0), "connect from %s to port %d: %s", src, port, strerror(err));
    }
    return c;
}

/* "127.0.0.N". */
const char *
tm_src(int n)
{
    return h_fmt("127.0.0.%d", n);
}

/* Whether the peer closed c (EOF or reset) with nothing pending, within timeout_ms. */
bool
tm_closed_empty(struct h_conn *c, int timeout_ms)
{
    return h_conn_wait(c, timeout_ms) == H_CLOSED && h_pending(c) == 0;
}

/* ------------------------------------------------------------------ more listeners */

/* Whether crossfade's log says it listens on 127.0.0.1:port. */
static bool
tm_listening(const struct h_proxy *p, int port)
{
    return h_log_count(p->proc->log_path, h_fmt("event=listening address=127.0.0.1:%d ", port)) > 0;
}

/*
 * The harness's config for `o` with the listeners `listeners` (the keys of each mapping after
 * its address: "mode: tcp, key: sni"; NULL-terminated) first, each on ports[i], and the
 * harness's http listener on http_port last; timeouts.tcp_hello when tcp_hello_ms is not 0.
 */
static const char *
tm_config(const struct h_proxy_opts *o, int http_port, const char *const listeners[],
          const int ports[], unsigned tcp_hello_ms)
{
    const char *text = h_read_file(h_proxy_write_config("crossfade.yaml", o, http_port), NULL);
    const char *lines = "listen:\n";

    cr_assert(ne(ptr, (void *)text, NULL), "cannot read back the config written for the test");
    for (size_t i = 0; listeners[i] != NULL; i++)
        lines = h_fmt("%s  - {address: \"127.0.0.1:%d\", %s}\n", lines, ports[i], listeners[i]);
    text = ht_replace_once(text, "listen:\n", lines);
    if (tcp_hello_ms != 0)
        text = ht_replace_once(text, "timeouts: {",
                               h_fmt("timeouts: {tcp_hello: %ums, ", tcp_hello_ms));
    return h_write_file("crossfade.yaml", "%s", text);
}

/*
 * Starts crossfade with the config of tm_config and waits until every listener listens and it
 * serves. Nothing connects to the test's listeners on the way (a connection to a tcp listener
 * would be relayed and counted): crossfade's log says when they listen.
 */
struct tm_proxy *
tm_start(const struct h_proxy_opts *o, const char *const listeners[], unsigned tcp_hello_ms)
{
    struct tm_proxy *t = h_alloc(sizeof(*t));
    struct h_proxy *p = h_alloc(sizeof(*p));
    const char *log = h_path("crossfade.log");
    size_t n = 0;

    while (listeners[n] != NULL)
        n++;
    cr_assert(le(sz, n, (size_t)4), "at most 4 listeners");
    p->access_log = h_path("access.log");
    p->admin_socket = h_path("admin.sock");
    p->shutdown_ms = o->shutdown_ms != 0 ? o->shutdown_ms : 5000;
    for (int attempt = 0; attempt < 3; attempt++) {
        uint64_t deadline = h_now_ms() + 10000;
        bool all = false;
        char *argv[4];
        size_t len;
        char *text;

        p->port = h_free_port();
        for (size_t i = 0; i < n; i++) {
            bool taken;

            do {
                t->port[i] = h_free_port();
                taken = t->port[i] == p->port;
                for (size_t j = 0; j < i; j++)
                    taken = taken || t->port[j] == t->port[i];
            } while (taken);
        }
        p->cfg_path = tm_config(o, p->port, listeners, t->port, tcp_hello_ms);
        argv[0] = (char *)h_bin("crossfade");
        argv[1] = "-c";
        argv[2] = (char *)p->cfg_path;
        argv[3] = NULL;
        p->proc = h_spawn("crossfade", argv, log, NULL);
        while (!all && h_proc_alive(p->proc) && h_now_ms() < deadline) {
            all = tm_listening(p, p->port);
            for (size_t i = 0; i < n; i++)
                all = all && tm_listening(p, t->port[i]);
            if (!all)
                h_sleep_ms(10);
        }
        if (all && h_proc_alive(p->proc)) {
            h_proxy_wait_serving(p);
            t->p = p;
            t->adm = h_admin_connect(p);
            return t;
        }
        /* Another process took one of the ports meanwhile: try others. */
        text = h_read_file(log, &len);
        if (h_proc_alive(p->proc) || text == NULL || h_memcasemem(text, len, "in use") == NULL)
            break;
    }
    h_proc_stop(p->proc, SIGKILL, 5000);
    cr_fatal("crossfade did not start with the test's listeners; its log:\n%s",
             h_read_file(log, NULL));
}

/* The side `which KEY` gives on the admin socket: 'x' or 'y'. */
char
tm_which(int adm, const char *key)
{
    const char *reply = h_admin_cmd(adm, h_fmt("which %s", key));
    const char *side = strstr(reply, "\nside ");

    cr_assert(ne(ptr, (void *)side, NULL), "which %s:\n%s", key, reply);
    cr_assert(side[6] == 'x' || side[6] == 'y', "which %s:\n%s", key, reply);
    return side[6];
}

/* ------------------------------------------------------------------ the access log */

/* The first access log line that holds `needle` ("\"TCP ip\"", " 10.9.8.7 "), waited for:
 * <time> <ip> <cluster> <node> "<request>" <status> <in> <out> <up ms> <total ms>. */
struct tm_alog
tm_alog(const struct h_proxy *p, const char *needle)
{
    struct tm_alog a = {0};
    char ip[64], cluster[8], node[64], status[16];
    const char *at;

    cr_assert(h_log_wait(p->access_log, needle, H_IO_TIMEOUT_MS), "no access log line with %s:\n%s",
              needle, h_read_file(p->access_log, NULL));
    a.line = h_log_line(p->access_log, needle);
    cr_assert(eq(int, sscanf(a.line, "%*s %63s %7s %63s", ip, cluster, node), 3), "%s", a.line);
    a.ip = h_fmt("%s", ip);
    a.cluster = h_fmt("%s", cluster);
    a.node = h_fmt("%s", node);
    at = strchr(a.line, '"');
    at = at != NULL ? strchr(at + 1, '"') : NULL;
    cr_assert(ne(ptr, (void *)at, NULL), "no quoted request: %s", a.line);
    cr_assert(eq(int, sscanf(at + 1, " %15s %llu %llu", status, &a.in, &a.out), 3), "%s", a.line);
    a.status = h_fmt("%s", status);
    return a;
}

/* Waits until the access log has `n` lines holding `needle`; fails showing it when not. */
void
tm_alog_await_count(const struct h_proxy *p, const char *needle, size_t n)
{
    uint64_t deadline = h_now_ms() + H_IO_TIMEOUT_MS;

    while (h_log_count(p->access_log, needle) != n && h_now_ms() < deadline)
        h_sleep_ms(20);
    cr_assert(eq(sz, h_log_count(p->access_log, needle), n),
              "the access log does not have %zu lines with %s:\n%s", n, needle,
              h_read_file(p->access_log, NULL));
}

/* ------------------------------------------------------------------ HTTP through a relay */

/* Reads one response on c; asserts a 200 and returns it. */
struct h_msg *
tm_read_200(struct h_conn *c, const char *what)
{
    struct h_msg *m = h_alloc(sizeof(*m));

    cr_assert(eq(int, h_read_response(c, m), 0), "%s: no response: %s", what, m->error);
    cr_assert(eq(int, m->status, 200), "%s: got %d:\n%.*s", what, m->status, (int)m->head_len,
              m->head);
    return m;
}

/* The X-Upstream of a response ("" when it has none). */
const char *
tm_upstream(const struct h_msg *m)
{
    const char *u = h_header(m, "X-Upstream");

    return u != NULL ? u : "";
}

/* ------------------------------------------------------------------ TLS nodes and client */

/* Starts openssl s_server -www with the certificate NAME on a free port. */
static struct tm_tls_node *
tm_tls_node_start(const char *name)
{
    struct tm_tls_node *n = h_alloc(sizeof(*n));
    const char *openssl = ht_tool("openssl");

    cr_assert(ne(ptr, (void *)openssl, NULL), "the openssl tool is not in PATH (package openssl)");
    for (int attempt = 0; attempt < 3; attempt++) {
        uint64_t deadline = h_now_ms() + 10000;
        char *argv[] = {(char *)openssl,
                        "s_server",
                        "-accept",
                        NULL,
                        "-cert",
                        (char *)ht_pem(name),
                        "-key",
                        (char *)ht_key(name),
                        "-www",
                        "-quiet",
                        NULL};

        n->port = h_free_port();
        argv[3] = (char *)h_fmt("127.0.0.1:%d", n->port);
        n->proc =
            h_spawn(h_fmt("s_server-%s", name), argv, h_path(h_fmt("s_server-%s.log", name)), NULL);
        while (h_proc_alive(n->proc) && h_now_ms() < deadline) {
            if (h_try_connect(n->port, 500) == 0) {
                n->addr = h_fmt("127.0.0.1:%d", n->port);
                return n;
            }
            h_sleep_ms(20);
        }
        h_proc_stop(n->proc, SIGKILL, 5000);
    }
    cr_fatal("openssl s_server %s did not listen:\n%s", name, h_read_file(n->proc->log_path, NULL));
}

/* Makes the nodes' certificates and starts them. */
void
tm_tls_nodes(struct tm_tls_node **x, struct tm_tls_node **y)
{
    ht_certs_make("ca ca 'Test CA'\n"
                  "leaf xnode ca /CN=x-node \"$ec\" \"$srv\" 1\n"
                  "leaf ynode ca /CN=y-node \"$ec\" \"$srv\" 2\n");
    *x = tm_tls_node_start("xnode");
    *y = tm_tls_node_start("ynode");
}

/* Sends what OpenSSL wrote to wb on c: in pieces of the sizes `pieces` (a 0-ended list, taken
 * round) with pause_ms between them when pieces is not NULL, else at once; counts them in *sent. */
static int
tm_flush(struct h_conn *c, BIO *wb, const size_t *pieces, unsigned pause_ms,
         unsigned long long *sent)
{
    char *data;
    long n = BIO_get_mem_data(wb, &data);
    size_t off = 0, k = 0;

    while (off < (size_t)n) {
        size_t len = (size_t)n - off;

        if (pieces != NULL) {
            len = len < pieces[k] ? len : pieces[k];
            k = pieces[k + 1] != 0 ? k + 1 : 0;
        }
        if (h_send(c, data + off, len) == -1)
            return -1;
        off += len;
        *sent += len;
        if (pieces != NULL && off < (size_t)n)
            h_sleep_ms(pause_ms);
    }
    (void)BIO_reset(wb);
    return 0;
}

/* Reads what the server sent on c into rb (counted in *received): the bytes read, 0 at EOF, -1
 * on error or timeout. */
static int
tm_feed(struct h_conn *c, BIO *rb, unsigned long long *received)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    char buf[16384];
    ssize_t n;

    if (poll(&pfd, 1, H_IO_TIMEOUT_MS) != 1)
        return -1;
    n = recv(c->fd, buf, sizeof(buf), 0);
    if (n <= 0)
        return n == 0 ? 0 : -1;
    BIO_write(rb, buf, (int)n);
    *received += (unsigned long long)n;
    return (int)n;
}

/* Puts the first record of the flight in wb (the ClientHello) in two TLS records, cut in the
 * middle of the handshake message. */
static void
tm_two_records(BIO *wb)
{
    char *data;
    long n = BIO_get_mem_data(wb, &data);
    size_t len, half;
    unsigned char *out;

    cr_assert(ge(long, n, 10L));
    cr_assert(eq(int, (unsigned char)data[0], 0x16), "OpenSSL's first record is not a handshake");
    len = (size_t)(unsigned char)data[3] << 8 | (unsigned char)data[4];
    cr_assert(eq(sz, len + 5, (size_t)n), "OpenSSL wrote more than one record first");
    half = len / 2;
    out = h_alloc(len + 10);
    memcpy(out, data, 3);
    out[3] = (unsigned char)(half >> 8);
    out[4] = (unsigned char)half;
    memcpy(out + 5, data + 5, half);
    memcpy(out + 5 + half, data, 3);
    out[8 + half] = (unsigned char)((len - half) >> 8);
    out[9 + half] = (unsigned char)(len - half);
    memcpy(out + 10 + half, data + 5 + half, len - half);
    (void)BIO_reset(wb);
    BIO_write(wb, out, (int)(len + 10));
}

/* An ALPN list of about `bytes` bytes: protocols "p000..." of 200 bytes each. */
static void
tm_alpn(SSL *ssl, size_t bytes)
{
    size_t n = (bytes + 200) / 201, len = n * 201;
    unsigned char *list = h_alloc(len);

    for (size_t i = 0; i < n; i++) {
        unsigned char *p = list + i * 201;

        p[0] = 200;
        memset(p + 1, 'a' + (int)(i % 26), 200);
        p[1] = 'p';
        for (size_t d = 0, v = i; d < 5; d++, v /= 10)
            p[6 - d] = (unsigned char)('0' + v % 10);
    }
    cr_assert(eq(int, SSL_set_alpn_protos(ssl, list, (unsigned)len), 0), "SSL_set_alpn_protos");
}

/* Puts `pre` before what waits in wb. */
static void
tm_prepend(BIO *wb, const void *pre, size_t pre_len)
{
    char *data;
    long n = BIO_get_mem_data(wb, &data);
    char *all = h_alloc(pre_len + (size_t)n);

    memcpy(all, pre, pre_len);
    memcpy(all + pre_len, data, (size_t)n);
    (void)BIO_reset(wb);
    BIO_write(wb, all, (int)(pre_len + (size_t)n));
}

/*
 * A TLS client on c that says hello as `o` says; then GET / and the answer read until the node
 * closes. Never asserts on what the other end does.
 */
struct tm_tls
tm_tls_on(struct h_conn *c, const struct tm_hello *o)
{
    struct tm_tls r = {0};
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = ctx != NULL ? SSL_new(ctx) : NULL;
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    static const char get[] = "GET / HTTP/1.0\r\n\r\n";
    size_t cap = 65536, got = 0;
    char *reply = h_alloc(cap + 1);
    bool first = true;
    const X509 *peer;
    char cn[256];

    cr_assert(ssl != NULL && rb != NULL && wb != NULL, "OpenSSL: out of memory");
    ERR_clear_error();
    SSL_set_bio(ssl, rb, wb);
    SSL_set_connect_state(ssl);
    if (o->sni != NULL)
        SSL_set_tlsext_host_name(ssl, o->sni);
    if (o->alpn_bytes > 0)
        tm_alpn(ssl, o->alpn_bytes);
    for (;;) {
        int rc = SSL_do_handshake(ssl);

        if (first && o->two_records)
            tm_two_records(wb);
        if (first && o->pre_len > 0)
            tm_prepend(wb, o->pre, o->pre_len);
        if (tm_flush(c, wb, first ? o->pieces : NULL, o->pause_ms, &r.sent) == -1) {
            r.error = h_fmt("send: %s", strerror(errno));
            goto out;
        }
        first = false;
        if (rc == 1)
            break;
        if (SSL_get_error(ssl, rc) != SSL_ERROR_WANT_READ) {
            r.error = h_fmt("handshake: %s", ht_why(ssl, rc));
            goto out;
        }
        if (tm_feed(c, rb, &r.received) <= 0) {
            r.error = "the connection closed or went silent during the handshake";
            goto out;
        }
    }
    peer = SSL_get0_peer_certificate(ssl);
    if (peer != NULL &&
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof(cn)) > 0)
        r.cn = h_fmt("%s", cn);
    if (SSL_write(ssl, get, (int)strlen(get)) != (int)strlen(get) ||
        tm_flush(c, wb, NULL, 0, &r.sent) == -1) {
        r.error = "could not send the request";
        goto out;
    }
    for (;;) {
        int n = SSL_read(ssl, reply + got, (int)(cap - got));

        if (n > 0) {
            got += (size_t)n;
            if (got == cap)
                break;
            continue;
        }
        if (SSL_get_error(ssl, n) != SSL_ERROR_WANT_READ)
            break; /* the node's close_notify, or its close */
        (void)tm_flush(c, wb, NULL, 0, &r.sent);
        if (tm_feed(c, rb, &r.received) <= 0)
            break;
    }
    reply[got] = '\0';
    r.reply = reply;
    if (got == 0)
        r.error = "no answer to GET /";
out:
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return r;
}

struct tm_tls
tm_tls_through(int port, const struct tm_hello *o)
{
    struct h_conn *c = h_connect(port);
    struct tm_tls r = tm_tls_on(c, o);

    cr_assert(eq(ptr, (void *)r.error, NULL), "TLS with server name %s: %s", o->sni, r.error);
    cr_assert(eq(int, strncmp(r.reply, "HTTP/1.0 200 ", 13), 0),
              "TLS with server name %s: the node answered:\n%.200s", o->sni, r.reply);
    cr_assert(ne(ptr, (void *)r.cn, NULL), "TLS with server name %s: no certificate CN", o->sni);
    h_close(c);
    return r;
}

const char *
tm_tls_node_of(int port, const struct tm_hello *o)
{
    return tm_tls_through(port, o).cn;
}

/* tm_tls_node_of with a plain ClientHello for `sni`. */
const char *
tm_tls_node_for(int port, const char *sni)
{
    return tm_tls_node_of(port, &(struct tm_hello){.sni = sni});
}

/* ------------------------------------------------------------------ PROXY, nodes played */

/* A PROXY v2 header (command PROXY) for TCP over IPv4, or over IPv6 when the addresses have a
 * colon, in out (28 or 52 bytes); returns its length. */
size_t
tm_pp2(unsigned char *out, const char *src, const char *dst, uint16_t sport, uint16_t dport)
{
    static const unsigned char sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                          0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
    bool v6 = strchr(src, ':') != NULL;
    size_t al = v6 ? 16 : 4;
    uint16_t sp = htons(sport), dp = htons(dport);

    memcpy(out, sig, 12);
    out[12] = 0x21;
    out[13] = v6 ? 0x21 : 0x11;
    out[14] = 0;
    out[15] = (unsigned char)(2 * al + 4);
    cr_assert(eq(int, inet_pton(v6 ? AF_INET6 : AF_INET, src, out + 16), 1));
    cr_assert(eq(int, inet_pton(v6 ? AF_INET6 : AF_INET, dst, out + 16 + al), 1));
    memcpy(out + 16 + 2 * al, &sp, 2);
    memcpy(out + 18 + 2 * al, &dp, 2);
    return 16 + 2 * al + 4;
}

/* Reads exactly `len` bytes at the node (asserts they come) and returns them. */
static const char *
tm_node_take(int fd, size_t len, const char *what)
{
    char *buf = h_alloc(len + 1);
    size_t got = raw_recv(fd, buf, len, H_IO_TIMEOUT_MS);

    cr_assert(eq(sz, got, len), "%s: the node got %zu of %zu bytes: \"%.*s\"", what, got, len,
              (int)got, buf);
    return buf;
}

/* Asserts that the node received `want` (len bytes) first on fd. */
void
tm_node_expect(int fd, const void *want, size_t len, const char *what)
{
    const char *got = tm_node_take(fd, len, what);

    cr_assert(eq(int, memcmp(got, want, len), 0), "%s: the node got \"%.*s\", not \"%.*s\"", what,
              (int)len, got, (int)len, (const char *)want);
}

/* The recorder's loop: accept, read until the end of a head (at most TM_REC_BYTES kept, 2 s),
 * answer, close. */
static void *
tm_rec_main(void *arg)
{
    static const char ok[] =
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";

    (void)arg;
    while (!tm_rec.stop) {
        struct pollfd pfd = {.fd = tm_rec.lfd, .events = POLLIN};
        char buf[4096];
        size_t got = 0;
        int fd;

        if (poll(&pfd, 1, 50) != 1)
            continue;
        fd = accept4(tm_rec.lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd == -1)
            continue;
        while (got < sizeof(buf) && (got < 4 || memmem(buf, got, "\r\n\r\n", 4) == NULL)) {
            struct pollfd in = {.fd = fd, .events = POLLIN};
            ssize_t r;

            if (poll(&in, 1, 2000) != 1)
                break;
            r = recv(fd, buf + got, sizeof(buf) - got, 0);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        pthread_mutex_lock(&tm_rec.mu);
        if (tm_rec.n < TM_REC_CONNS) {
            tm_rec.len[tm_rec.n] = got < TM_REC_BYTES ? got : TM_REC_BYTES;
            memcpy(tm_rec.first[tm_rec.n], buf, tm_rec.len[tm_rec.n]);
        }
        tm_rec.n++;
        pthread_mutex_unlock(&tm_rec.mu);
        (void)send(fd, ok, sizeof(ok) - 1, MSG_NOSIGNAL);
        close(fd);
    }
    return NULL;
}

/* Starts the recorder on a free loopback port; returns the port. */
int
tm_rec_start(void)
{
    struct raw_node *n = raw_node_start();

    tm_rec.lfd = n->lfd;
    tm_rec.port = n->port;
    cr_assert(eq(int, pthread_create(&tm_rec.thread, NULL, tm_rec_main, NULL), 0));
    tm_rec.started = true;
    return n->port;
}

/* Waits until the recorder accepted `n` connections; returns a copy of the first bytes of
 * connection i (harness-owned) and their length in *len. */
const char *
tm_rec_first(size_t n, size_t i, size_t *len)
{
    uint64_t deadline = h_now_ms() + H_IO_TIMEOUT_MS;
    char *copy = h_alloc(TM_REC_BYTES + 1);
    size_t have;

    for (;;) {
        pthread_mutex_lock(&tm_rec.mu);
        have = tm_rec.n;
        if (have >= n) {
            *len = tm_rec.len[i];
            memcpy(copy, tm_rec.first[i], *len);
        }
        pthread_mutex_unlock(&tm_rec.mu);
        if (have >= n)
            return copy;
        cr_assert(lt(u64, h_now_ms(), deadline), "the node saw %zu connections, not %zu", have, n);
        h_sleep_ms(10);
    }
}

/* Whether `b` (len bytes) starts with a PROXY header of either version. */
bool
tm_is_pp(const char *b, size_t len)
{
    static const char sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

    return (len >= 6 && memcmp(b, "PROXY ", 6) == 0) || (len >= 12 && memcmp(b, sig, 12) == 0);
}
