/* tests/integration/test_tls.c -- TLS termination on a listener: the certificate chosen by SNI,
 * TLS 1.2 and 1.3, session resumption and its counters, X-Forwarded-Proto, client certificates,
 * bytes that are not TLS, stalled handshakes, certificate files that are wrong or expired, real
 * clients (curl, Python), and certificates renewed by a reload. The certificates are made in the
 * test's scratch directory by the openssl command-line tool; the test's own client is OpenSSL's C
 * API, which can force a version, offer a session and show the server's certificate. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tests/integration/harness.h"
#include "tests/integration/tls_helpers.h"

TestSuite(tls, .init = h_setup, .fini = ht_teardown);

/* ------------------------------------------------------------------ files and tools */

/*
 * The test's certificates, made in its scratch directory by one shell running the openssl tool
 * (one process, whatever their number). ECDSA P-256, valid 30 days, except legacy (RSA 2048):
 *   ca          the CA of the servers' certificates ("Test CA")
 *   api         CN api.test, SAN DNS:api.test, DNS:*.api.test
 *   renewed     CN renewed.api.test, the same SANs as api: api's next certificate
 *   legacy      CN legacy.test, SAN DNS:legacy.test (RSA)
 *   fallback    CN fallback.test, SAN DNS:fallback.test
 *   clientca    the CA of the clients' certificates ("Client CA"), and client (CN client-1)
 *   foreignca   another CA ("Foreign CA"), and foreign (CN intruder)
 */
static void
certs_make(void)
{
    ht_certs_make("ca ca 'Test CA'\n"
                  "leaf api ca /CN=api.test \"$ec\" \\\n"
                  "    \"$srv\nsubjectAltName = DNS:api.test,DNS:*.api.test\" 1\n"
                  "leaf renewed ca /CN=renewed.api.test \"$ec\" \\\n"
                  "    \"$srv\nsubjectAltName = DNS:api.test,DNS:*.api.test\" 2\n"
                  "leaf legacy ca /CN=legacy.test '-newkey rsa:2048' \\\n"
                  "    \"$srv\nsubjectAltName = DNS:legacy.test\" 3\n"
                  "leaf fallback ca /CN=fallback.test \"$ec\" \\\n"
                  "    \"$srv\nsubjectAltName = DNS:fallback.test\" 4\n"
                  "ca clientca 'Client CA'\n"
                  "leaf client clientca /CN=client-1 \"$ec\" \"$cli\" 5\n"
                  "ca foreignca 'Foreign CA'\n"
                  "leaf foreign foreignca /CN=intruder \"$ec\" \"$cli\" 6\n");
}

/* A self-signed ECDSA certificate for `cn` whose validity ended yesterday (NAME.pem, NAME.key),
 * made with the C API: the openssl tool of OpenSSL 3.0 cannot date one in the past. */
static void
cert_make_expired(const char *name, const char *cn)
{
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *subject;
    FILE *f;

    cr_assert(pkey != NULL && x != NULL, "cannot make a key or a certificate");
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    cr_assert(ne(ptr, (void *)X509_gmtime_adj(X509_getm_notBefore(x), -2 * 86400L), NULL));
    cr_assert(ne(ptr, (void *)X509_gmtime_adj(X509_getm_notAfter(x), -86400L), NULL));
    cr_assert(eq(int, X509_set_pubkey(x, pkey), 1));
    subject = X509_get_subject_name(x);
    cr_assert(eq(int,
                 X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, (const unsigned char *)cn,
                                            -1, -1, 0),
                 1));
    cr_assert(eq(int, X509_set_issuer_name(x, subject), 1));
    cr_assert(gt(int, X509_sign(x, pkey, EVP_sha256()), 0), "X509_sign failed");
    f = fopen(ht_pem(name), "w");
    cr_assert(ne(ptr, f, NULL), "%s: %s", ht_pem(name), strerror(errno));
    cr_assert(eq(int, PEM_write_X509(f, x), 1));
    fclose(f);
    f = fopen(ht_key(name), "w");
    cr_assert(ne(ptr, f, NULL), "%s: %s", ht_key(name), strerror(errno));
    cr_assert(eq(int, PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL), 1));
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(pkey);
}

/* Puts a copy of file `from` at `to`, written aside and renamed over it, as a deployment does. */
static void
install_file(const char *from, const char *to)
{
    char *text = h_read_file(from, NULL);
    const char *tmp;

    cr_assert(ne(ptr, text, NULL), "cannot read %s", from);
    tmp = h_write_file("install.tmp", "%s", text);
    cr_assert(eq(int, rename(tmp, to), 0), "rename %s to %s: %s", tmp, to, strerror(errno));
}

/* ------------------------------------------------------------------ crossfade with TLS */

/* The harness's config with the TLS listener `t` and a plain one; cluster x is the node on x_port
 * (which takes every request). */
static const struct h_proxy_opts *
x_only(int x_port)
{
    struct h_proxy_opts *o = h_alloc(sizeof(*o));

    o->x[0].port = x_port;
    o->extra_yaml = "tls: {ticket_rotation: 1h}\n";
    return o;
}

/* Starts x1 (cluster x's node, which takes every request) and crossfade with the TLS listener `t`
 * and a plain one (ht_proxy_start). */
static struct ht_proxy *
tls_start(const struct ht_listen *t)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);

    return ht_proxy_start("crossfade", t, x_only(x1->port));
}

/* ------------------------------------------------------------------ the test's TLS client */

/* The CN of the certificate a client sending `sni` (NULL: none) gets; asserts it is served. */
static const char *
cn_for(int port, const char *sni)
{
    struct ht_result r =
        ht_served(port, &(struct ht_opts){.sni = sni}, h_fmt("SNI %s", sni ? sni : "(none)"));

    cr_assert(ne(ptr, (void *)r.cn, NULL), "SNI %s: the certificate has no CN", sni);
    cr_assert(eq(str, (char *)r.body, "x1\n"), "SNI %s: the body is not x1's", sni);
    return r.cn;
}

/* A ClientHello as OpenSSL's client sends it (with SNI api.test); *len gets its length. */
static const unsigned char *
client_hello(size_t *len)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = ctx != NULL ? SSL_new(ctx) : NULL;
    BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
    unsigned char *copy;
    char *data;
    long n;

    cr_assert(ssl != NULL && in != NULL && out != NULL);
    SSL_set_bio(ssl, in, out);
    cr_assert(eq(int, SSL_set_tlsext_host_name(ssl, "api.test"), 1));
    cr_assert(eq(int, SSL_connect(ssl), -1));
    n = BIO_get_mem_data(out, &data);
    cr_assert(gt(long, n, 100L), "no ClientHello was written");
    copy = h_alloc((size_t)n);
    memcpy(copy, data, (size_t)n);
    *len = (size_t)n;
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return copy;
}

/* ------------------------------------------------------------------ raw connections, counters */

/*
 * Waits up to timeout_ms for the peer to close c (EOF or reset); the bytes that came before go
 * to *got (harness-owned, NUL-terminated) and *got_len. True when it closed.
 */
static bool
closed_within(struct h_conn *c, int timeout_ms, const char **got, size_t *got_len)
{
    uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
    char *all = h_alloc(1);
    size_t len = 0;
    bool closed = false;

    for (;;) {
        uint64_t now = h_now_ms();
        enum h_wait w = h_conn_wait(c, now < deadline ? (int)(deadline - now) : 0);

        if (w == H_DATA) {
            size_t n = h_pending(c);

            all = h_realloc(all, len + n + 1);
            memcpy(all + len, c->buf + c->off, n);
            len += n;
            all[len] = '\0';
            c->off = c->len;
            continue;
        }
        closed = w == H_CLOSED;
        break;
    }
    *got = all;
    *got_len = len;
    return closed;
}

/* Whether `data` holds the bytes of an HTTP response (a status line anywhere). */
static bool
has_http(const char *data, size_t len)
{
    return memmem(data, len, "HTTP/", 5) != NULL;
}

struct tls_counts {
    long long completed, resumed, failed;
};

/* The `tls_handshakes completed=N resumed=N failed=N` line of `xfctl -s SOCK show stats`. */
static struct tls_counts
xfctl_counts(const struct ht_proxy *tp, const char **line_out)
{
    char *out = NULL, *err = NULL;
    int code = h_run((char *[]){(char *)h_bin("xfctl"), "-s", (char *)tp->p->admin_socket, "show",
                                "stats", NULL},
                     10000, &out, &err);
    struct tls_counts n = {-1, -1, -1};
    const char *line;

    cr_assert(eq(int, code, 0), "xfctl show stats exited %d: %s", code, err != NULL ? err : "");
    cr_assert(ne(ptr, out, NULL));
    line = strstr(out, "\ntls_handshakes ");
    cr_assert(ne(ptr, (void *)line, NULL), "no tls_handshakes line in show stats:\n%s", out);
    line = h_fmt("%.*s", (int)strcspn(line + 1, "\n"), line + 1);
    cr_assert(eq(int,
                 sscanf(line, "tls_handshakes completed=%lld resumed=%lld failed=%lld",
                        &n.completed, &n.resumed, &n.failed),
                 3),
              "the line is not tls_handshakes completed=N resumed=N failed=N: %s", line);
    if (line_out != NULL)
        *line_out = line;
    return n;
}

/* Waits until show stats counts `want` failed client handshakes; fails the test if they do not
 * come within H_IO_TIMEOUT_MS. */
static void
await_failed(const struct ht_proxy *tp, long long want)
{
    cr_assert(h_admin_wait_stat(tp->adm, "tls_handshakes", "failed", want, H_IO_TIMEOUT_MS),
              "show stats does not count %lld failed handshakes:\n%s", want,
              h_admin_cmd(tp->adm, "show stats"));
}

/* Waits until `n` lines of the file hold `needle` (true), or timeout_ms passed (false). */
static bool
log_wait_count(const char *path, const char *needle, size_t n, int timeout_ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;

    while (h_log_count(path, needle) < n) {
        if (h_now_ms() >= deadline)
            return false;
        h_sleep_ms(10);
    }
    return h_log_count(path, needle) == n;
}

/* The first line of crossfade's stderr or stdout for a config error, for the messages. */
static const char *
first_line(const char *text)
{
    if (text == NULL)
        return "";
    return h_fmt("%.*s", (int)strcspn(text, "\n"), text);
}

/* "FILE:LINE:COL: " of the first `needle` in the config file: the line and the column (from 1)
 * where it starts (harness-owned). */
static const char *
position_of(const char *cfg_path, const char *needle)
{
    const char *text = h_read_file(cfg_path, NULL), *at, *line_start;
    int line = 1;

    cr_assert(ne(ptr, (void *)text, NULL));
    at = strstr(text, needle);
    cr_assert(ne(ptr, (void *)at, NULL), "%s is not in %s", needle, cfg_path);
    line_start = text;
    for (const char *q = text; q < at; q++)
        if (*q == '\n') {
            line++;
            line_start = q + 1;
        }
    return h_fmt("%s:%d:%d: ", cfg_path, line, (int)(at - line_start) + 1);
}

/* ------------------------------------------------------------------ SNI and versions */

/*
 * Three certificates: fallback.test (the first: the default), api.test with *.api.test, and
 * legacy.test (RSA). Each name gets its certificate; case does not matter; the wildcard covers
 * one label; a name no certificate holds, and no name, get the first.
 */
Test(tls, sni_picks_each_certificate_and_an_unknown_name_or_none_gets_the_first,
     .timeout = H_TEST_TIMEOUT)
{
    struct ht_proxy *tp;
    int port;

    certs_make();
    tp = tls_start(
        &(struct ht_listen){.certs = {ht_made("fallback"), ht_made("api"), ht_made("legacy")}});
    port = tp->tls_port;
    cr_assert(eq(str, (char *)cn_for(port, "api.test"), "api.test"));
    cr_assert(eq(str, (char *)cn_for(port, "legacy.test"), "legacy.test"));
    cr_assert(eq(str, (char *)cn_for(port, "fallback.test"), "fallback.test"));
    cr_assert(eq(str, (char *)cn_for(port, "API.Test"), "api.test"), "names compare without case");
    cr_assert(eq(str, (char *)cn_for(port, "v2.api.test"), "api.test"),
              "the wildcard *.api.test does not serve v2.api.test");
    cr_assert(eq(str, (char *)cn_for(port, "a.b.api.test"), "fallback.test"),
              "the wildcard *.api.test served two labels");
    cr_assert(eq(str, (char *)cn_for(port, "unknown.test"), "fallback.test"),
              "a name no certificate holds did not get the first certificate");
    cr_assert(eq(str, (char *)cn_for(port, NULL), "fallback.test"),
              "a client without SNI did not get the first certificate");
    h_proxy_finish(tp->p);
}

/* The same with the ECDSA certificate for api.test first: it is then the default, and legacy.test
 * (RSA) is served by name only. */
Test(tls, sni_with_api_first_serves_legacy_by_name_and_api_otherwise, .timeout = H_TEST_TIMEOUT)
{
    struct ht_proxy *tp;

    certs_make();
    tp = tls_start(&(struct ht_listen){.certs = {ht_made("api"), ht_made("legacy")}});
    cr_assert(eq(str, (char *)cn_for(tp->tls_port, "legacy.test"), "legacy.test"));
    cr_assert(eq(str, (char *)cn_for(tp->tls_port, "api.test"), "api.test"));
    cr_assert(eq(str, (char *)cn_for(tp->tls_port, "other.example"), "api.test"));
    cr_assert(eq(str, (char *)cn_for(tp->tls_port, NULL), "api.test"));
    h_proxy_finish(tp->p);
}

Test(tls, tls_1_2_and_tls_1_3_each_complete_and_are_served, .timeout = H_TEST_TIMEOUT)
{
    struct ht_proxy *tp;
    struct ht_result r;

    certs_make();
    tp = tls_start(&(struct ht_listen){.certs = {ht_made("api")}});
    r = ht_served(tp->tls_port,
                  &(struct ht_opts){.sni = "api.test",
                                    .min_version = TLS1_2_VERSION,
                                    .max_version = TLS1_2_VERSION},
                  "TLS 1.2");
    cr_assert(eq(int, r.version, TLS1_2_VERSION));
    cr_assert(eq(str, (char *)r.body, "x1\n"));
    r = ht_served(tp->tls_port,
                  &(struct ht_opts){.sni = "api.test",
                                    .min_version = TLS1_3_VERSION,
                                    .max_version = TLS1_3_VERSION},
                  "TLS 1.3");
    cr_assert(eq(int, r.version, TLS1_3_VERSION));
    cr_assert(eq(str, (char *)r.body, "x1\n"));
    h_proxy_finish(tp->p);
}

Test(tls, protocols_tls_1_3_only_refuses_a_tls_1_2_client_at_the_handshake,
     .timeout = H_TEST_TIMEOUT)
{
    struct ht_proxy *tp;
    struct ht_result r;

    certs_make();
    tp = tls_start(&(struct ht_listen){.certs = {ht_made("api")}, .protocols = "[TLSv1.3]"});
    r = ht_get(tp->tls_port, &(struct ht_opts){.sni = "api.test",
                                               .min_version = TLS1_2_VERSION,
                                               .max_version = TLS1_2_VERSION});
    cr_assert(not(r.handshake),
              "a TLS 1.2 client completed a handshake with [TLSv1.3] (version %x)",
              (unsigned)r.version);
    cr_assert(eq(int, r.status, 0));
    await_failed(tp, 1);
    cr_assert(h_log_wait(tp->p->proc->log_path, "event=tls_handshake_failed", H_IO_TIMEOUT_MS),
              "the refused handshake was not logged");
    /* A TLS 1.3 client still is served. */
    r = ht_served(tp->tls_port, &(struct ht_opts){.sni = "api.test"}, "TLS 1.3");
    cr_assert(eq(int, r.version, TLS1_3_VERSION));
    h_proxy_finish(tp->p);
}

/* ------------------------------------------------------------------ resumption */

/*
 * Each way to resume -- TLS 1.3 (tickets), TLS 1.2 with a ticket, TLS 1.2 from the server's
 * session cache (the client refuses tickets) -- resumes the session of the connection before,
 * twice in a row; `xfctl show stats` counts 9 completed handshakes of which 6 resumed, and one
 * failed (bytes that are not TLS).
 */
Test(tls, sessions_resume_with_tls_1_3_and_tls_1_2_and_show_stats_counts_them,
     .timeout = H_TEST_TIMEOUT)
{
    static const struct {
        const char *what;
        int version;
        bool no_tickets;
    } ways[3] = {{"TLS 1.3", TLS1_3_VERSION, false},
                 {"TLS 1.2 with a ticket", TLS1_2_VERSION, false},
                 {"TLS 1.2 from the session cache", TLS1_2_VERSION, true}};
    struct ht_proxy *tp;
    struct tls_counts n;
    const char *line, *got;
    struct h_conn *c;
    size_t got_len;

    certs_make();
    tp = tls_start(&(struct ht_listen){.certs = {ht_made("api")}});
    n = xfctl_counts(tp, &line);
    cr_assert(eq(str, (char *)line, "tls_handshakes completed=0 resumed=0 failed=0"));
    for (int i = 0; i < 3; i++) {
        struct ht_opts o = {.sni = "api.test",
                            .min_version = ways[i].version,
                            .max_version = ways[i].version,
                            .no_tickets = ways[i].no_tickets};
        struct ht_result first = ht_served(tp->tls_port, &o, ways[i].what), second, third;

        cr_assert(not(first.reused), "%s: the first connection resumed a session", ways[i].what);
        cr_assert(ne(ptr, first.session, NULL), "%s: no session to resume", ways[i].what);
        cr_assert(eq(int, SSL_SESSION_is_resumable(first.session), 1),
                  "%s: the server gave no session that can be resumed", ways[i].what);
        o.session = first.session;
        second = ht_served(tp->tls_port, &o, ways[i].what);
        cr_assert(second.reused, "%s: the second connection did not resume the session",
                  ways[i].what);
        cr_assert(eq(int, second.version, ways[i].version));
        /* A client that resumes each time from the session it holds last: a TLS 1.3 session
         * resumes once, so the resumed connection must have brought a new ticket. */
        o.session = second.session;
        third = ht_served(tp->tls_port, &o, ways[i].what);
        cr_assert(third.reused, "%s: the third connection did not resume the second's session",
                  ways[i].what);
        n = xfctl_counts(tp, &line);
        cr_assert(eq(i64, n.completed, 3 * (i + 1)), "after %s: %s", ways[i].what, line);
        cr_assert(eq(i64, n.resumed, 2 * (i + 1)), "after %s: %s", ways[i].what, line);
    }
    /* One failed handshake: bytes that are not TLS. */
    c = h_connect(tp->tls_port);
    cr_assert(eq(int, h_send_str(c, "hello, this is not TLS\r\n\r\n"), 0));
    cr_assert(closed_within(c, 5000, &got, &got_len), "the connection was not closed");
    await_failed(tp, 1);
    xfctl_counts(tp, &line);
    cr_assert(eq(str, (char *)line, "tls_handshakes completed=9 resumed=6 failed=1"));
    h_proxy_finish(tp->p);
}

/* ------------------------------------------------------------------ forwarding */

Test(tls, x_forwarded_proto_is_https_from_the_tls_listener_and_http_from_the_plain_one,
     .timeout = H_TEST_TIMEOUT)
{
    struct ht_proxy *tp;
    struct ht_result r;
    struct h_msg seen, m;

    certs_make();
    tp = tls_start(&(struct ht_listen){.certs = {ht_made("api")}});
    /* The client claims http: crossfade replaces it. */
    r = ht_served(tp->tls_port,
                  &(struct ht_opts){.sni = "api.test",
                                    .target = "/echo",
                                    .more_head = "X-Forwarded-Proto: http\r\n"},
                  "GET /echo over TLS");
    cr_assert(eq(int, h_parse_request_head(r.body, r.body_len, &seen), 0),
              "x1's echo does not parse (%s):\n%s", seen.error, r.body);
    cr_assert(eq(sz, h_header_count(&seen, "X-Forwarded-Proto"), (size_t)1), "%s", seen.head);
    cr_assert(eq(str, (char *)h_header(&seen, "X-Forwarded-Proto"), "https"), "%s", seen.head);

    cr_assert(eq(int, h_get(h_connect(tp->p->port), "/echo", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(int, h_parse_request_head(m.body, m.body_len, &seen), 0), "%s", seen.error);
    cr_assert(eq(sz, h_header_count(&seen, "X-Forwarded-Proto"), (size_t)1), "%s", seen.head);
    cr_assert(eq(str, (char *)h_header(&seen, "X-Forwarded-Proto"), "http"), "%s", seen.head);
    h_proxy_finish(tp->p);
}

/* ------------------------------------------------------------------ client certificates */

/*
 * verify_client: required, with TLS 1.2 and TLS 1.3: a client without a certificate and one
 * whose certificate another CA signed are refused (no response; counted and logged as failed
 * handshakes); one signed by client_ca is served.
 */
Test(tls, verify_client_required_serves_only_a_certificate_signed_by_client_ca,
     .timeout = H_TEST_TIMEOUT)
{
    static const int versions[2] = {TLS1_2_VERSION, TLS1_3_VERSION};
    struct ht_proxy *tp;

    certs_make();
    tp = tls_start(&(struct ht_listen){
        .certs = {ht_made("api")}, .client_ca = ht_pem("clientca"), .verify_client = "required"});
    for (int i = 0; i < 2; i++) {
        const char *v = versions[i] == TLS1_2_VERSION ? "TLS 1.2" : "TLS 1.3";
        struct ht_opts o = {
            .sni = "api.test", .min_version = versions[i], .max_version = versions[i]};
        struct ht_result r;

        r = ht_get(tp->tls_port, &o);
        cr_assert(eq(int, r.status, 0), "%s: a client without a certificate was served", v);
        cr_assert(ne(ptr, (void *)r.error, NULL));
        await_failed(tp, 2 * i + 1);

        o.cert = ht_pem("foreign");
        o.key = ht_key("foreign");
        r = ht_get(tp->tls_port, &o);
        cr_assert(eq(int, r.status, 0),
                  "%s: a client with a certificate from another CA was served", v);
        await_failed(tp, 2 * i + 2);

        o.cert = ht_pem("client");
        o.key = ht_key("client");
        r = ht_served(tp->tls_port, &o, h_fmt("%s with a certificate of client_ca", v));
        cr_assert(r.cert_requested, "%s: the server did not ask for a certificate", v);
        cr_assert(eq(str, (char *)r.body, "x1\n"));
    }
    cr_assert(
        h_log_wait(tp->p->proc->log_path, "peer did not return a certificate", H_IO_TIMEOUT_MS),
        "the refusal of a client without a certificate was not logged with its reason");
    cr_assert(h_log_wait(tp->p->proc->log_path, "certificate verify failed", H_IO_TIMEOUT_MS),
              "the refusal of a certificate of another CA was not logged with its reason");
    cr_assert(eq(i64, xfctl_counts(tp, NULL).completed, 2));
    h_proxy_finish(tp->p);
}

/* verify_client: optional asks for a certificate and serves every client: none, one of
 * client_ca, one of another CA. */
Test(tls, verify_client_optional_serves_clients_without_a_certificate_or_with_a_foreign_one,
     .timeout = H_TEST_TIMEOUT)
{
    struct ht_proxy *tp;
    struct ht_result r;
    struct tls_counts n;

    certs_make();
    tp = tls_start(&(struct ht_listen){
        .certs = {ht_made("api")}, .client_ca = ht_pem("clientca"), .verify_client = "optional"});
    r = ht_served(tp->tls_port, &(struct ht_opts){.sni = "api.test"}, "no certificate");
    cr_assert(r.cert_requested, "verify_client optional did not ask for a certificate");
    cr_assert(eq(str, (char *)r.body, "x1\n"));
    r = ht_served(
        tp->tls_port,
        &(struct ht_opts){.sni = "api.test", .cert = ht_pem("foreign"), .key = ht_key("foreign")},
        "a certificate of another CA");
    cr_assert(eq(str, (char *)r.body, "x1\n"));
    r = ht_served(
        tp->tls_port,
        &(struct ht_opts){.sni = "api.test", .cert = ht_pem("client"), .key = ht_key("client")},
        "a certificate of client_ca");
    cr_assert(eq(str, (char *)r.body, "x1\n"));
    r = ht_served(tp->tls_port,
                  &(struct ht_opts){.sni = "api.test",
                                    .min_version = TLS1_2_VERSION,
                                    .max_version = TLS1_2_VERSION,
                                    .cert = ht_pem("foreign"),
                                    .key = ht_key("foreign")},
                  "TLS 1.2, a certificate of another CA");
    cr_assert(eq(str, (char *)r.body, "x1\n"));
    n = xfctl_counts(tp, NULL);
    cr_assert(eq(i64, n.completed, 4), "four clients were served: %lld completed handshakes",
              n.completed);
    cr_assert(eq(i64, n.failed, 0), "%lld failed handshakes with verify_client optional", n.failed);
    h_proxy_finish(tp->p);
}

/* ------------------------------------------------------------------ bytes that are not TLS */

/*
 * Plain HTTP, then garbage, sent to the TLS port: each connection is closed without a byte of
 * HTTP (a TLS alert at most), each counts as a failed handshake, and crossfade goes on serving
 * TLS.
 */
Test(tls, plain_http_or_garbage_to_the_tls_port_is_closed_without_a_response,
     .timeout = H_TEST_TIMEOUT)
{
    struct ht_proxy *tp;
    unsigned char garbage[512];
    const char *got;
    size_t got_len;
    struct h_conn *c;
    uint32_t seed = 12345;

    certs_make();
    tp = tls_start(&(struct ht_listen){.certs = {ht_made("api")}});

    c = h_connect(tp->tls_port);
    cr_assert(eq(int, h_send_str(c, "GET / HTTP/1.1\r\nHost: api.test\r\n\r\n"), 0));
    cr_assert(closed_within(c, 5000, &got, &got_len),
              "a plain HTTP request to the TLS port was not closed within 5 s");
    cr_assert(not(has_http(got, got_len)), "an HTTP response came on the TLS port:\n%s", got);
    cr_assert(got_len == 0 || (unsigned char)got[0] == 0x15,
              "%zu bytes that are not a TLS alert came back", got_len);
    await_failed(tp, 1);
    cr_assert(h_log_wait(tp->p->proc->log_path, "reason=\"http request\"", H_IO_TIMEOUT_MS),
              "the failure is not logged with OpenSSL's reason \"http request\"");
    cr_assert(eq(str, (char *)cn_for(tp->tls_port, "api.test"), "api.test"),
              "crossfade does not serve TLS after a plain HTTP request");

    /* Pseudo-random bytes, the same every run; the first is no TLS record type. */
    for (size_t i = 0; i < sizeof(garbage); i++) {
        seed = seed * 1103515245u + 12345u;
        garbage[i] = (unsigned char)(seed >> 16);
    }
    garbage[0] = 0x9c;
    c = h_connect(tp->tls_port);
    cr_assert(eq(int, h_send(c, garbage, sizeof(garbage)), 0));
    cr_assert(closed_within(c, 5000, &got, &got_len),
              "garbage sent to the TLS port was not closed within 5 s");
    cr_assert(not(has_http(got, got_len)), "an HTTP response came on the TLS port");
    cr_assert(got_len == 0 || (unsigned char)got[0] == 0x15,
              "%zu bytes that are not a TLS alert came back", got_len);
    await_failed(tp, 2);
    cr_assert(eq(str, (char *)cn_for(tp->tls_port, "api.test"), "api.test"),
              "crossfade does not serve TLS after garbage");
    cr_assert(h_proc_alive(tp->p->proc));
    h_proxy_finish(tp->p);
}

/* ------------------------------------------------------------------ stalled handshakes */

/*
 * timeouts.tls_handshake 1s: a connection that sends nothing, one that sends half a ClientHello,
 * and one that trickles a ClientHello one byte every 100 ms (it would need half a minute) are
 * each closed within a few seconds, logged with the timeout as reason and counted as failed.
 */
Test(tls, a_stalled_or_trickling_handshake_is_closed_after_timeouts_tls_handshake,
     .timeout = H_TEST_TIMEOUT)
{
    struct ht_proxy *tp;
    const unsigned char *hello;
    size_t hello_len, sent = 0, got_len;
    const char *got;
    struct h_conn *c, *silent, *half;
    bool closed = false;
    uint64_t deadline;

    certs_make();
    tp = tls_start(&(struct ht_listen){.certs = {ht_made("api")}, .handshake_ms = 1000});
    hello = client_hello(&hello_len);

    /* Three clients at once, each on its own timer: one sends nothing, one half a ClientHello,
     * one trickles it a byte at a time. */
    silent = h_connect(tp->tls_port);
    half = h_connect(tp->tls_port);
    cr_assert(eq(int, h_send(half, hello, hello_len / 2), 0));
    c = h_connect(tp->tls_port);
    deadline = h_now_ms() + 8000;
    while (!closed && sent < hello_len && h_now_ms() < deadline) {
        if (h_send(c, hello + sent, 1) == -1) {
            closed = true; /* the reset of a closed connection */
            break;
        }
        sent++;
        closed = closed_within(c, 100, &got, &got_len);
    }
    cr_assert(closed,
              "a client trickling its ClientHello (%zu of %zu bytes sent) is still connected "
              "after 8 s (tls_handshake: 1s)",
              sent, hello_len);
    cr_assert(lt(sz, sent, hello_len), "the whole ClientHello went through");
    cr_assert(closed_within(silent, 6000, &got, &got_len),
              "a connection that sent nothing is still open 6 s later (tls_handshake: 1s)");
    cr_assert(not(has_http(got, got_len)));
    cr_assert(closed_within(half, 6000, &got, &got_len),
              "a connection that sent half a ClientHello is still open 6 s later");
    await_failed(tp, 3);
    cr_assert(log_wait_count(tp->p->proc->log_path,
                             "did not complete within timeouts.tls_handshake", 3, H_IO_TIMEOUT_MS),
              "the three closures are not logged as handshake timeouts (%zu are)",
              h_log_count(tp->p->proc->log_path, "did not complete within timeouts.tls_handshake"));
    cr_assert(eq(str, (char *)cn_for(tp->tls_port, "api.test"), "api.test"));
    h_proxy_finish(tp->p);
}

/* ------------------------------------------------------------------ bad certificate files */

/*
 * Wrong files in listen[0].tls.certificates: `crossfade -t` exits 2 with FILE:LINE:COL (the
 * position of the value) and the key's path, and `crossfade -c` exits non-zero without opening
 * a listener.
 */
Test(tls, a_missing_mismatched_or_non_pem_file_fails_the_check_and_the_start_naming_its_key,
     .timeout = H_TEST_TIMEOUT)
{
    struct {
        struct ht_listen t;
        const char *bad_file; /* the value the error points at */
        const char *key_path; /* the config key the error names */
        const char *message;  /* part of the message */
    } cases[5];
    const char *missing = h_path("missing.key");
    const char *notpem;
    struct h_upstream *x1;

    certs_make();
    notpem = h_write_file("notpem.pem", "this is not a certificate\n");
    x1 = h_upstream_start("x1", NULL);
    cases[0].t = (struct ht_listen){.certs = {{ht_pem("api"), missing}}};
    cases[0].bad_file = missing;
    cases[0].key_path = "listen[0].tls.certificates[0].key";
    cases[0].message = h_fmt("cannot read %s", missing);
    /* Another ECDSA key: the values differ. */
    cases[1].t = (struct ht_listen){.certs = {{ht_pem("api"), ht_key("renewed")}}};
    cases[1].bad_file = ht_key("renewed");
    cases[1].key_path = "listen[0].tls.certificates[0].key";
    cases[1].message = h_fmt("the key in %s does not match the certificate in %s",
                             ht_key("renewed"), ht_pem("api"));
    /* An RSA key for an ECDSA certificate: the types differ. */
    cases[2].t = (struct ht_listen){.certs = {{ht_pem("api"), ht_key("legacy")}}};
    cases[2].bad_file = ht_key("legacy");
    cases[2].key_path = "listen[0].tls.certificates[0].key";
    cases[2].message = h_fmt("the key in %s does not match the certificate in %s", ht_key("legacy"),
                             ht_pem("api"));
    cases[3].t = (struct ht_listen){.certs = {{notpem, ht_key("api")}}};
    cases[3].bad_file = notpem;
    cases[3].key_path = "listen[0].tls.certificates[0].cert";
    cases[3].message = h_fmt("%s holds no PEM certificate", notpem);
    /* The second entry: its index is named. */
    cases[4].t =
        (struct ht_listen){.certs = {ht_made("api"), {ht_pem("legacy"), ht_key("fallback")}}};
    cases[4].bad_file = ht_key("fallback");
    cases[4].key_path = "listen[0].tls.certificates[1].key";
    cases[4].message = h_fmt("the key in %s does not match", ht_key("fallback"));

    for (int i = 0; i < 5; i++) {
        const char *cfg = ht_config_write(h_fmt("bad%d.yaml", i), &cases[i].t, h_free_port(),
                                          h_free_port(), x_only(x1->port));
        const char *want = h_fmt("%s%s: ", position_of(cfg, h_fmt("\"%s\"", cases[i].bad_file)),
                                 cases[i].key_path);
        const char *log = h_path(h_fmt("start%d.log", i));
        char *err = NULL, *started_log;
        const char *line;
        struct h_proc *proc;
        int code;

        code = h_run((char *[]){(char *)h_bin("crossfade"), "-t", "-c", (char *)cfg, NULL}, 10000,
                     NULL, &err);
        line = first_line(err);
        cr_assert(eq(int, code, 2), "case %d: crossfade -t exited %d: %s", i, code, line);
        cr_assert(eq(int, strncmp(line, want, strlen(want)), 0),
                  "case %d: crossfade -t does not start with \"%s\":\n%s", i, want, line);
        cr_assert(ne(ptr, strstr(line, cases[i].message), NULL),
                  "case %d: crossfade -t does not say \"%s\":\n%s", i, cases[i].message, line);

        proc = h_spawn("crossfade", (char *[]){(char *)h_bin("crossfade"), "-c", (char *)cfg, NULL},
                       log, NULL);
        code = h_proc_wait(proc, 10000);
        started_log = h_read_file(log, NULL);
        cr_assert(ne(int, code, -1), "case %d: crossfade started with the bad file:\n%s", i,
                  started_log != NULL ? started_log : "");
        cr_assert(ne(int, code, 0), "case %d: crossfade exited 0 with the bad file", i);
        cr_assert(ne(ptr, started_log, NULL));
        cr_assert(ne(ptr, strstr(started_log, cases[i].message), NULL),
                  "case %d: the log does not say \"%s\":\n%s", i, cases[i].message, started_log);
        cr_assert(eq(ptr, strstr(started_log, "event=listening"), NULL),
                  "case %d: crossfade opened a listener before it failed:\n%s", i, started_log);
    }
}

/* An expired certificate is loaded and served (the clients judge it), and logged. */
Test(tls, an_expired_certificate_is_served_and_logged_as_certificate_expired,
     .timeout = H_TEST_TIMEOUT)
{
    struct ht_proxy *tp;
    const char *line;

    cert_make_expired("expired", "expired.test");
    tp = tls_start(&(struct ht_listen){.certs = {ht_made("expired")}});
    cr_assert(eq(str, (char *)cn_for(tp->tls_port, "expired.test"), "expired.test"));
    cr_assert(h_log_wait(tp->p->proc->log_path, "event=certificate_expired", H_IO_TIMEOUT_MS),
              "no event=certificate_expired in crossfade's log");
    line = h_log_line(tp->p->proc->log_path, "event=certificate_expired");
    cr_assert(ne(ptr, strstr(line, ht_pem("expired")), NULL), "the line does not name the file: %s",
              line);
    h_proxy_finish(tp->p);
}

/* ------------------------------------------------------------------ real clients */

/* curl, and Python's ssl module when python3 is there, verify the certificate against the CA
 * for the name api.test and get x1's answer. */
Test(tls, curl_and_python_verify_the_certificate_and_get_the_answer, .timeout = H_TEST_TIMEOUT)
{
    static const char python[] =
        "import socket, ssl, sys\n"
        "ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
        "with socket.create_connection(('127.0.0.1', int(sys.argv[2])), timeout=10) as s:\n"
        "    with ctx.wrap_socket(s, server_hostname='api.test') as t:\n"
        "        t.sendall(b'GET / HTTP/1.1\\r\\nHost: api.test\\r\\nConnection: "
        "close\\r\\n\\r\\n')\n"
        "        data = b''\n"
        "        while True:\n"
        "            b = t.recv(65536)\n"
        "            if not b:\n"
        "                break\n"
        "            data += b\n"
        "sys.stdout.write(data.decode())\n";
    const char *curl = ht_tool("curl"), *py = ht_tool("python3");
    struct ht_proxy *tp;
    char *out = NULL, *err = NULL;
    int code;

    cr_assert(ne(ptr, (void *)curl, NULL), "curl is not in PATH (package curl)");
    certs_make();
    tp = tls_start(&(struct ht_listen){.certs = {ht_made("api"), ht_made("legacy")}});
    code =
        h_run((char *[]){(char *)curl, "-sS", "--max-time", "10", "--cacert", (char *)ht_pem("ca"),
                         "--resolve", (char *)h_fmt("api.test:%d:127.0.0.1", tp->tls_port),
                         (char *)h_fmt("https://api.test:%d/", tp->tls_port), NULL},
              15000, &out, &err);
    cr_assert(eq(int, code, 0), "curl exited %d: %s", code, err != NULL ? err : "");
    cr_assert(eq(str, out, "x1\n"), "curl got: %s", out);
    /* The name of the second certificate verifies as well. */
    code =
        h_run((char *[]){(char *)curl, "-sS", "--max-time", "10", "--cacert", (char *)ht_pem("ca"),
                         "--resolve", (char *)h_fmt("legacy.test:%d:127.0.0.1", tp->tls_port),
                         (char *)h_fmt("https://legacy.test:%d/", tp->tls_port), NULL},
              15000, &out, &err);
    cr_assert(eq(int, code, 0), "curl to legacy.test exited %d: %s", code, err != NULL ? err : "");
    cr_assert(eq(str, out, "x1\n"), "curl got: %s", out);

    if (py == NULL) {
        cr_log_info("python3 is not in PATH: its part of the test was skipped");
    } else {
        code = h_run((char *[]){(char *)py, "-c", (char *)python, (char *)ht_pem("ca"),
                                (char *)h_fmt("%d", tp->tls_port), NULL},
                     15000, &out, &err);
        cr_assert(eq(int, code, 0), "python3 exited %d: %s", code, err != NULL ? err : "");
        cr_assert(eq(int, strncmp(out, "HTTP/1.1 200 ", 13), 0), "python3 got:\n%s", out);
        cr_assert(ne(ptr, strstr(out, "\r\n\r\nx1\n"), NULL), "python3 got:\n%s", out);
    }
    h_proxy_finish(tp->p);
}

/* ------------------------------------------------------------------ reload */

/* Runs `xfctl -s SOCK WORDS...` and returns its stdout and stderr together (harness-owned);
 * *code gets its exit code. */
static const char *
xfctl(const struct ht_proxy *tp, const char *w1, const char *w2, int *code)
{
    char *out = NULL, *err = NULL;

    *code = h_run((char *[]){(char *)h_bin("xfctl"), "-s", (char *)tp->p->admin_socket, (char *)w1,
                             (char *)w2, NULL},
                  15000, &out, &err);
    return h_fmt("%s%s", out != NULL ? out : "", err != NULL ? err : "");
}

/*
 * The listener's first certificate is served.pem/served.key. Renewed in place, `reload` serves
 * the new one; a key that does not match makes `reload` and `tls reload` answer an error naming
 * the key file, and the certificate in force keeps serving; SIGHUP after a good pair is put back
 * serves that one.
 */
Test(tls, reload_serves_a_renewed_certificate_and_refuses_a_key_that_does_not_match,
     .timeout = H_TEST_TIMEOUT)
{
    const char *served_pem, *served_key, *reply;
    struct ht_proxy *tp;
    uint64_t deadline;
    int code;

    certs_make();
    served_pem = h_path("served.pem");
    served_key = h_path("served.key");
    install_file(ht_pem("api"), served_pem);
    install_file(ht_key("api"), served_key);
    tp = tls_start(&(struct ht_listen){.certs = {{served_pem, served_key}, ht_made("legacy")}});
    cr_assert(eq(str, (char *)cn_for(tp->tls_port, "api.test"), "api.test"));

    install_file(ht_pem("renewed"), served_pem);
    install_file(ht_key("renewed"), served_key);
    reply = xfctl(tp, "reload", NULL, &code);
    cr_assert(eq(int, code, 0), "xfctl reload exited %d: %s", code, reply);
    cr_assert(eq(int, strncmp(reply, "ok: ", 4), 0), "reload answered: %s", reply);
    cr_assert(ne(ptr, strstr(reply, "certificates read again"), NULL), "reload answered: %s",
              reply);
    cr_assert(eq(str, (char *)cn_for(tp->tls_port, "api.test"), "renewed.api.test"),
              "after the reload, a new connection does not get the renewed certificate");
    cr_assert(eq(str, (char *)cn_for(tp->tls_port, "legacy.test"), "legacy.test"));

    /* A key of another certificate where the renewed key was. */
    install_file(ht_key("api"), served_key);
    reply = xfctl(tp, "reload", NULL, &code);
    cr_assert(eq(int, strncmp(reply, "error:", 6), 0), "reload with a wrong key answered: %s",
              reply);
    cr_assert(ne(int, code, 0), "xfctl exited 0 on an error reply");
    cr_assert(ne(ptr, strstr(reply, served_key), NULL), "the reply does not name %s: %s",
              served_key, reply);
    cr_assert(ne(ptr, strstr(reply, "does not match"), NULL), "reply: %s", reply);
    reply = xfctl(tp, "tls", "reload", &code);
    cr_assert(eq(int, strncmp(reply, "error:", 6), 0), "tls reload with a wrong key answered: %s",
              reply);
    cr_assert(ne(ptr, strstr(reply, "listen[0].tls.certificates[0].key"), NULL),
              "the reply does not name the key: %s", reply);
    cr_assert(ne(ptr, strstr(reply, served_key), NULL), "the reply does not name %s: %s",
              served_key, reply);
    cr_assert(eq(str, (char *)cn_for(tp->tls_port, "api.test"), "renewed.api.test"),
              "after the refused reloads, the certificate in force no longer serves");

    /* A good pair again, applied by SIGHUP: new connections get it once the reload is done. */
    install_file(ht_pem("api"), served_pem);
    cr_assert(eq(int, kill(tp->p->proc->pid, SIGHUP), 0), "kill: %s", strerror(errno));
    deadline = h_now_ms() + H_IO_TIMEOUT_MS;
    while (strcmp(cn_for(tp->tls_port, "api.test"), "api.test") != 0) {
        cr_assert(lt(u64, h_now_ms(), deadline),
                  "%d ms after SIGHUP, new connections still get renewed.api.test",
                  H_IO_TIMEOUT_MS);
        h_sleep_ms(20);
    }
    cr_assert(h_proc_alive(tp->p->proc));
    h_proxy_finish(tp->p);
}
