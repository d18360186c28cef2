/* tests/integration/tls_helpers.c -- the TLS half of the harness: certificates made by the openssl
 * tool, crossfade with a TLS listener, and a TLS client on OpenSSL's C API. */
#include "tests/integration/tls_helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <openssl/err.h>
#include <openssl/x509.h>

/* The sessions the tests kept to resume (SSL_get1_session), freed at teardown. */
static SSL_SESSION *ht_sessions[16];
static size_t ht_n_sessions;

void
ht_teardown(void)
{
    for (size_t i = 0; i < ht_n_sessions; i++)
        SSL_SESSION_free(ht_sessions[i]);
    ht_n_sessions = 0;
    h_teardown();
}

/* ------------------------------------------------------------------ files and tools */

const char *
ht_replace_once(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);

    cr_assert(ne(ptr, (void *)at, NULL), "\"%s\" is not in:\n%s", from, text);
    return h_fmt("%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
}

const char *
ht_tool(const char *name)
{
    const char *path = getenv("PATH");

    if (path == NULL)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path != '\0') {
        size_t n = strcspn(path, ":");
        const char *full = h_fmt("%.*s/%s", (int)n, n > 0 ? path : ".", name);

        if (access(full, X_OK) == 0)
            return full;
        path += n + (path[n] == ':' ? 1 : 0);
    }
    return NULL;
}

const char *
ht_pem(const char *name)
{
    return h_path(h_fmt("%s.pem", name));
}

const char *
ht_key(const char *name)
{
    return h_path(h_fmt("%s.key", name));
}

void
ht_certs_make(const char *list)
{
    static const char preamble[] =
        "set -e\n"
        "printf '[req]\\ndistinguished_name = dn\\n[dn]\\n[ca]\\n"
        "basicConstraints = critical,CA:TRUE\\nkeyUsage = critical,keyCertSign,cRLSign\\n"
        "subjectKeyIdentifier = hash\\n' > req.cnf\n"
        "ec='-newkey ec -pkeyopt ec_paramgen_curve:P-256'\n"
        "srv='basicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth'\n"
        "cli='basicConstraints = CA:FALSE\nextendedKeyUsage = clientAuth'\n"
        "ca() {\n"
        "    \"$OPENSSL\" req -x509 $ec -nodes -days 30 -config req.cnf -extensions ca \\\n"
        "        -subj \"/CN=$2\" -keyout \"$1.key\" -out \"$1.pem\"\n"
        "}\n"
        "leaf() {\n"
        "    \"$OPENSSL\" req -new $4 -nodes -config req.cnf -subj \"$3\" \\\n"
        "        -keyout \"$1.key\" -out \"$1.csr\"\n"
        "    printf '%s\\n' \"$5\" > \"$1.ext\"\n"
        "    \"$OPENSSL\" x509 -req -in \"$1.csr\" -CA \"$2.pem\" -CAkey \"$2.key\" \\\n"
        "        -set_serial \"$6\" -days 30 -extfile \"$1.ext\" -out \"$1.pem\"\n"
        "}\n";
    const char *openssl = ht_tool("openssl");
    const char *cmd;
    char *err = NULL;
    int code;

    cr_assert(ne(ptr, (void *)openssl, NULL), "the openssl tool is not in PATH (package openssl)");
    cmd = h_fmt("cd '%s' && OPENSSL='%s' && %s%s", h_dir(), openssl, preamble, list);
    code = h_run((char *[]){"/bin/sh", "-c", (char *)cmd, NULL}, 20000, NULL, &err);
    cr_assert(eq(int, code, 0), "making the certificates failed (%d):\n%s", code,
              err != NULL ? err : "");
}

/* ------------------------------------------------------------------ crossfade with TLS */

struct ht_cert
ht_made(const char *name)
{
    return (struct ht_cert){ht_pem(name), ht_key(name)};
}

const char *
ht_config_write(const char *file, const struct ht_listen *t, int tls_port, int plain_port,
                const struct h_proxy_opts *o)
{
    const char *text = h_read_file(h_proxy_write_config(file, o, plain_port), NULL);
    const char *listen;

    cr_assert(ne(ptr, (void *)text, NULL), "cannot read back the config written for the test");
    listen = h_fmt("listen:\n"
                   "  - address: \"127.0.0.1:%d\"\n"
                   "    tls:\n"
                   "      certificates:\n",
                   tls_port);
    for (size_t i = 0; i < 4 && t->certs[i].cert != NULL; i++)
        listen = h_fmt("%s        - cert: \"%s\"\n"
                       "          key: \"%s\"\n",
                       listen, t->certs[i].cert, t->certs[i].key);
    if (t->protocols != NULL)
        listen = h_fmt("%s      protocols: %s\n", listen, t->protocols);
    if (t->client_ca != NULL)
        listen = h_fmt("%s      client_ca: \"%s\"\n", listen, t->client_ca);
    if (t->verify_client != NULL)
        listen = h_fmt("%s      verify_client: %s\n", listen, t->verify_client);
    text = ht_replace_once(text, "listen:\n", listen);
    if (t->handshake_ms != 0)
        text = ht_replace_once(text, "shutdown: 5s",
                               h_fmt("shutdown: 5s, tls_handshake: %ums", t->handshake_ms));
    return h_write_file(file, "%s", text);
}

/* Whether crossfade's log says it listens on 127.0.0.1:port. */
static bool
ht_logged_listening(const struct h_proxy *p, int port)
{
    return h_log_count(p->proc->log_path, h_fmt("event=listening address=127.0.0.1:%d ", port)) > 0;
}

/* The config of ht_config_write for crossfade `name`, with its own admin socket and access log
 * unless it is "crossfade". */
static const char *
ht_config_for(const char *name, const struct h_proxy *p, const struct ht_listen *t, int tls_port,
              const struct h_proxy_opts *o)
{
    const char *file = h_fmt("%s.yaml", name);
    const char *cfg = ht_config_write(file, t, tls_port, p->port, o);
    const char *text;

    if (strcmp(name, "crossfade") == 0)
        return cfg;
    text = h_read_file(cfg, NULL);
    cr_assert(ne(ptr, (void *)text, NULL), "cannot read back %s", cfg);
    text = ht_replace_once(text, h_fmt("\"%s\"", h_path("admin.sock")),
                           h_fmt("\"%s\"", p->admin_socket));
    text = ht_replace_once(text, h_fmt("\"%s\"", h_path("access.log")),
                           h_fmt("\"%s\"", p->access_log));
    return h_write_file(file, "%s", text);
}

struct ht_proxy *
ht_proxy_start(const char *name, const struct ht_listen *t, const struct h_proxy_opts *o)
{
    bool own = strcmp(name, "crossfade") != 0;
    struct ht_proxy *tp = h_alloc(sizeof(*tp));
    struct h_proxy *p = h_alloc(sizeof(*p));
    const char *log = h_path(h_fmt("%s.log", name));
    char *text;
    size_t len;

    p->access_log = own ? h_path(h_fmt("%s-access.log", name)) : h_path("access.log");
    p->admin_socket = own ? h_path(h_fmt("%s.sock", name)) : h_path("admin.sock");
    p->shutdown_ms = o->shutdown_ms != 0 ? o->shutdown_ms : 5000;
    for (int attempt = 0; attempt < 3; attempt++) {
        uint64_t deadline = h_now_ms() + 10000;
        char *argv[4];

        p->port = h_free_port();
        do
            tp->tls_port = h_free_port();
        while (tp->tls_port == p->port);
        p->cfg_path = ht_config_for(name, p, t, tp->tls_port, o);
        argv[0] = (char *)h_bin("crossfade");
        argv[1] = "-c";
        argv[2] = (char *)p->cfg_path;
        argv[3] = NULL;
        p->proc = h_spawn(name, argv, log, NULL);
        while (h_proc_alive(p->proc) && h_now_ms() < deadline &&
               !(ht_logged_listening(p, tp->tls_port) && ht_logged_listening(p, p->port)))
            h_sleep_ms(10);
        if (h_proc_alive(p->proc) && ht_logged_listening(p, tp->tls_port) &&
            ht_logged_listening(p, p->port)) {
            h_proxy_wait_serving(p);
            tp->p = p;
            tp->adm = h_admin_connect(p);
            return tp;
        }
        /* Another process took one of the ports meanwhile: try others. */
        text = h_read_file(log, &len);
        if (h_proc_alive(p->proc) || text == NULL || h_memcasemem(text, len, "in use") == NULL)
            break;
    }
    h_proc_stop(p->proc, SIGKILL, 5000);
    cr_fatal("%s did not start with its TLS listener on 127.0.0.1:%d; its log:\n%s", name,
             tp->tls_port, h_read_file(log, NULL));
}

/* ------------------------------------------------------------------ the test's TLS client */

const char *
ht_why(SSL *ssl, int r)
{
    int err = SSL_get_error(ssl, r);
    unsigned long e = ERR_peek_last_error();

    if (e != 0)
        return h_fmt("%s", ERR_reason_error_string(e) != NULL ? ERR_reason_error_string(e)
                                                              : "unknown OpenSSL error");
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ||
        (err == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK)))
        return "timed out (5 s without a byte)";
    if (err == SSL_ERROR_SYSCALL && errno != 0)
        return h_fmt("%s", strerror(errno));
    return "the server closed the connection";
}

int
ht_connect_tcp(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {.tv_sec = 5};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    cr_assert(ge(int, fd, 0), "socket: %s", strerror(errno));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    cr_assert(eq(int, connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0),
              "connect to 127.0.0.1:%d: %s", port, strerror(errno));
    return fd;
}

/* Sends "GET target" (Connection: close) on ssl and reads until the server closes; fills r. */
static void
ht_exchange(SSL *ssl, const struct ht_opts *o, struct ht_result *r)
{
    const char *req =
        h_fmt("GET %s HTTP/1.1\r\nHost: api.test\r\n%sConnection: close\r\n\r\n",
              o->target != NULL ? o->target : "/", o->more_head != NULL ? o->more_head : "");
    char *resp = h_alloc(1), buf[16384];
    size_t len = 0;
    const char *end, *cl;
    int n;

    ERR_clear_error();
    n = SSL_write(ssl, req, (int)strlen(req));
    if (n <= 0) {
        r->error = h_fmt("sending the request: %s", ht_why(ssl, n));
        return;
    }
    for (;;) {
        ERR_clear_error();
        errno = 0;
        n = SSL_read(ssl, buf, sizeof(buf));
        if (n <= 0)
            break;
        resp = h_realloc(resp, len + (size_t)n + 1);
        memcpy(resp + len, buf, (size_t)n);
        len += (size_t)n;
        resp[len] = '\0';
    }
    /* The end: close_notify, or a close (SSL_OP_IGNORE_UNEXPECTED_EOF). Else an alert, a reset
     * or the time out. */
    if (SSL_get_error(ssl, n) != SSL_ERROR_ZERO_RETURN)
        r->error = h_fmt("reading the response: %s", ht_why(ssl, n));
    if (sscanf(resp, "HTTP/1.%*d %d", &r->status) != 1)
        r->status = 0;
    end = strstr(resp, "\r\n\r\n");
    r->body = end != NULL ? end + 4 : "";
    r->body_len = end != NULL ? len - (size_t)(end + 4 - resp) : 0;
    /* A close is taken as the end: the body must then be as long as the head said. */
    cl = end != NULL ? h_memcasemem(resp, (size_t)(end - resp), "\r\nContent-Length:") : NULL;
    if (cl != NULL && r->error == NULL && strtoull(cl + 17, NULL, 10) != r->body_len)
        r->error = h_fmt("the response ended after %zu bytes of its body (Content-Length:%.*s)",
                         r->body_len, (int)strcspn(cl + 17, "\r"), cl + 17);
    if (r->status == 0 && r->error == NULL)
        r->error = h_fmt("no HTTP response (%zu bytes received)", len);
}

SSL_CTX *
ht_client_ctx(const struct ht_opts *o)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    cr_assert(ne(ptr, ctx, NULL));
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    /* A close without close_notify after the response ends it, as for curl. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (o->min_version != 0)
        cr_assert(eq(int, SSL_CTX_set_min_proto_version(ctx, o->min_version), 1));
    if (o->max_version != 0)
        cr_assert(eq(int, SSL_CTX_set_max_proto_version(ctx, o->max_version), 1));
    if (o->no_tickets)
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    if (o->cert != NULL) {
        cr_assert(eq(int, SSL_CTX_use_certificate_chain_file(ctx, o->cert), 1), "%s", o->cert);
        cr_assert(eq(int, SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM), 1), "%s",
                  o->key);
    }
    return ctx;
}

struct ht_result
ht_get(int port, const struct ht_opts *o)
{
    struct ht_result r = {.body = ""};
    SSL_CTX *ctx = ht_client_ctx(o);
    const STACK_OF(X509_NAME) * asked;
    X509 *peer;
    SSL *ssl;
    int fd, n;

    ssl = SSL_new(ctx);
    cr_assert(ne(ptr, ssl, NULL));
    fd = ht_connect_tcp(port);
    cr_assert(eq(int, SSL_set_fd(ssl, fd), 1));
    if (o->sni != NULL)
        cr_assert(eq(int, SSL_set_tlsext_host_name(ssl, o->sni), 1));
    if (o->session != NULL)
        cr_assert(eq(int, SSL_set_session(ssl, o->session), 1));
    ERR_clear_error();
    errno = 0;
    n = SSL_connect(ssl);
    if (n == 1) {
        r.handshake = true;
        r.version = SSL_version(ssl);
        r.reused = SSL_session_reused(ssl) == 1;
        asked = SSL_get_client_CA_list(ssl);
        r.cert_requested = asked != NULL && sk_X509_NAME_num(asked) > 0;
        peer = SSL_get0_peer_certificate(ssl);
        if (peer != NULL) {
            char cn[256];

            if (X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn,
                                          sizeof(cn)) > 0)
                r.cn = h_fmt("%s", cn);
        }
        ht_exchange(ssl, o, &r);
        /* After the response: a TLS 1.3 server sends its tickets after the handshake. */
        r.session = SSL_get1_session(ssl);
        if (r.session != NULL) {
            cr_assert(lt(sz, ht_n_sessions, sizeof(ht_sessions) / sizeof(ht_sessions[0])));
            ht_sessions[ht_n_sessions++] = r.session;
        }
        /* Sent before the free, so that OpenSSL keeps the session resumable. */
        ERR_clear_error();
        SSL_shutdown(ssl);
    } else {
        r.error = h_fmt("handshake: %s", ht_why(ssl, n));
    }
    ERR_clear_error();
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    return r;
}

struct ht_result
ht_served(int port, const struct ht_opts *o, const char *what)
{
    struct ht_result r = ht_get(port, o);

    cr_assert(r.handshake, "%s: the handshake failed: %s", what, r.error);
    cr_assert(eq(ptr, (void *)r.error, NULL), "%s: %s", what, r.error);
    cr_assert(eq(int, r.status, 200), "%s: status %d", what, r.status);
    return r;
}
