/* tests/fuzz/fuzz_tls.c -- a TLS listener's handshake on any client bytes: the server context
 * px_tls_listen_new builds from a config's listen[].tls (cfg_tls.c), with its certificate choice
 * by SNI (px_tls_servername_cb) and its session-ticket key callback (px_tls_ticket_cb), driven
 * over memory BIOs as px_tls_handshake drives a client's socket: the bytes arrive in chunks the
 * input chooses, the handshake is tried after each. The certificates are made at start in a
 * temporary directory (three groups: the default, a.fuzz.test with *.wild.fuzz.test, and
 * c.fuzz.test by config on a *.fuzz.test certificate), the ticket secret and the clock are fixed
 * so that a ticket in a seed decrypts in every run.
 *
 * Properties: no crash or leak; once the server answered a ClientHello, the certificate it holds
 * is the one the client's name selects (exact names first, then one-label wildcards, else the
 * default: the harness's own reading of docs/tls.md), and crossfade's own ClientHello reader
 * (px_sni_parse, which a tcp listener routes by) reads the same name OpenSSL did.
 *
 * FZ_TLS_SEEDS=DIR writes seeds instead (real ClientHellos of OpenSSL's client against this
 * context: with and without SNI, ALPN h2 and http/1.1, TLS 1.2 and 1.3, resuming a ticket). */
#include "tests/fuzz/fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "config/cfg.h"
#include "proxy/px_conn.h"

#define FZ_TLS_NOW_S 1764547200 /* 2025-12-01T00:00:00Z: the epoch of the tickets' keys */

static char fz_tls_dir[64];
static struct cfg *fz_tls_cfg;
static SSL_CTX *fz_tls_ctx;
static bool fz_tls_frozen;

/* The ticket keys' period comes from time(): a fixed one while a run goes. */
time_t __real_time(time_t *t);
time_t __wrap_time(time_t *t);

time_t
__wrap_time(time_t *t)
{
    time_t now = fz_tls_frozen ? (time_t)FZ_TLS_NOW_S : __real_time(NULL);

    if (t != NULL)
        *t = now;
    return now;
}

/* The certificates: file stem, common name, subject alternative names, key type. */
static const struct fz_tls_cert {
    const char *stem, *cn, *san;
    bool rsa;
} fz_tls_certs[] = {
    {"default-ec", "default.fuzz", "DNS:default.fuzz", false},
    {"default-rsa", "default.fuzz", "DNS:default.fuzz", true},
    {"named", "named.fuzz", "DNS:a.fuzz.test,DNS:*.wild.fuzz.test", false},
    {"wild", "wild.fuzz", "DNS:*.fuzz.test", false},
};

static void
fz_tls_write_cert(const struct fz_tls_cert *c)
{
    EVP_PKEY *key = c->rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    X509_NAME *name;
    char path[128];
    FILE *f;

    FZ_CHECK(key != NULL && x != NULL, "key generation");
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -86400);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 3650);
    X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)c->cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, c->san);
    FZ_CHECK(ext != NULL && X509_add_ext(x, ext, -1) == 1, "SAN %s", c->san);
    X509_EXTENSION_free(ext);
    FZ_CHECK(X509_sign(x, key, EVP_sha256()) > 0, "signing %s", c->stem);
    snprintf(path, sizeof(path), "%s/%s.pem", fz_tls_dir, c->stem);
    f = fopen(path, "w");
    FZ_CHECK(f != NULL && PEM_write_X509(f, x) == 1 && fclose(f) == 0, "writing %s", path);
    snprintf(path, sizeof(path), "%s/%s.key", fz_tls_dir, c->stem);
    f = fopen(path, "w");
    FZ_CHECK(f != NULL && PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1 &&
                 fclose(f) == 0,
             "writing %s", path);
    X509_free(x);
    EVP_PKEY_free(key);
}

static void
fz_tls_cleanup(void)
{
    char path[128];

    for (size_t i = 0; i < sizeof(fz_tls_certs) / sizeof(fz_tls_certs[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s.pem", fz_tls_dir, fz_tls_certs[i].stem);
        unlink(path);
        snprintf(path, sizeof(path), "%s/%s.key", fz_tls_dir, fz_tls_certs[i].stem);
        unlink(path);
    }
    rmdir(fz_tls_dir);
}

static void fz_tls_seeds(const char *dir);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const unsigned char secret[32] = "crossfade fuzz ticket secret...";
    struct xf_err err = {{0}};
    char yaml[2048];
    int n;

    (void)argc;
    (void)argv;
    xf_log_min = XF_LOG_ERR + 1;
    snprintf(fz_tls_dir, sizeof(fz_tls_dir), "/tmp/xf-fuzz-tls.XXXXXX");
    FZ_CHECK(mkdtemp(fz_tls_dir) != NULL, "mkdtemp");
    atexit(fz_tls_cleanup);
    for (size_t i = 0; i < sizeof(fz_tls_certs) / sizeof(fz_tls_certs[0]); i++)
        fz_tls_write_cert(&fz_tls_certs[i]);
    n = snprintf(yaml, sizeof(yaml),
                 "listen:\n"
                 "  - address: \"127.0.0.1:8443\"\n"
                 "    tls:\n"
                 "      certificates:\n"
                 "        - {cert: %s/default-ec.pem, key: %s/default-ec.key}\n"
                 "        - {cert: %s/default-rsa.pem, key: %s/default-rsa.key}\n"
                 "        - {cert: %s/named.pem, key: %s/named.key}\n"
                 "        - {cert: %s/wild.pem, key: %s/wild.key, names: [c.fuzz.test]}\n"
                 "tls: {ticket_rotation: 24h}\n"
                 "clusters:\n"
                 "  x: {nodes: [\"127.0.0.1:1\"]}\n"
                 "  y: {nodes: [\"127.0.0.1:2\"]}\n",
                 fz_tls_dir, fz_tls_dir, fz_tls_dir, fz_tls_dir, fz_tls_dir, fz_tls_dir, fz_tls_dir,
                 fz_tls_dir);
    fz_tls_cfg = cfg_parse(yaml, (size_t)n, "fuzz.yaml", &err);
    FZ_CHECK(fz_tls_cfg != NULL && fz_tls_cfg->listeners[0].tls != NULL, "config: %s", err.msg);
    FZ_CHECK(px_tls_ticket_secret_set(secret, sizeof(secret), &err) == 0, "%s", err.msg);
    px_tls_set_rotation(fz_tls_cfg->tls_ticket_rotation_ms);
    fz_tls_ctx =
        px_tls_listen_new(fz_tls_cfg->listeners[0].tls, fz_tls_cfg->tls_ticket_rotation_ms, &err);
    FZ_CHECK(fz_tls_ctx != NULL, "listener context: %s", err.msg);
    if (getenv("FZ_TLS_SEEDS") != NULL) {
        fz_tls_seeds(getenv("FZ_TLS_SEEDS"));
        exit(0);
    }
    return 0;
}

/* The certificate a name selects, by its common name: exact names first, then a wildcard that
 * stands for exactly the first label, else the default (docs/tls.md). */
static const char *
fz_tls_expected_cn(const char *host)
{
    static const struct {
        const char *name, *cn;
    } names[] = {{"default.fuzz", "default.fuzz"},
                 {"a.fuzz.test", "named.fuzz"},
                 {"c.fuzz.test", "wild.fuzz"}};
    const char *dot;

    if (host == NULL)
        return "default.fuzz";
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(host, names[i].name) == 0)
            return names[i].cn;
    dot = strchr(host, '.');
    if (dot != NULL && dot != host && strcasecmp(dot, ".wild.fuzz.test") == 0)
        return "named.fuzz";
    return "default.fuzz";
}

/* Whether the server wrote a ServerHello (or a HelloRetryRequest): it read a ClientHello, chose
 * its certificate and answered. */
static bool
fz_tls_answered(BIO *wbio)
{
    char *out;
    long len = BIO_get_mem_data(wbio, &out);

    return len >= 6 && out[0] == 0x16 && out[5] == 0x02;
}

static void
fz_tls_check_sni(SSL *ssl, const uint8_t *hello, size_t len)
{
    const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    X509 *x = SSL_get_certificate(ssl);
    char cn[256] = "", want[PX_SNI_MAX + 2];
    struct px_sni sni;
    enum px_sni_rc rc;
    size_t hl;
    bool plain = true;

    FZ_CHECK(x != NULL, "an answered ClientHello without a certificate");
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
    FZ_CHECK(strcmp(cn, fz_tls_expected_cn(host)) == 0,
             "the name \"%s\" got the certificate of %s, not %s", host ? host : "(none)", cn,
             fz_tls_expected_cn(host));
    /* crossfade's reader sees the same name: lower case, without a root dot. */
    memset(&sni, 0, sizeof(sni));
    rc = px_sni_parse(hello, len, &sni);
    if (rc == PX_SNI_FOUND)
        FZ_CHECK(host != NULL && strlen(host) <= PX_SNI_MAX + 1,
                 "px_sni_parse read \"%s\", OpenSSL no name", sni.name);
    if (host == NULL)
        return;
    hl = strlen(host);
    if (hl > 0 && host[hl - 1] == '.')
        hl--;
    for (size_t i = 0; i < hl; i++)
        plain = plain && (host[i] == '.' || host[i] == '-' || host[i] == '_' ||
                          (host[i] >= '0' && host[i] <= '9') ||
                          (host[i] >= 'a' && host[i] <= 'z') || (host[i] >= 'A' && host[i] <= 'Z'));
    if (!plain || hl == 0 || hl > PX_SNI_MAX)
        return; /* a name px_sni_parse refuses to route by: its choice, not a disagreement */
    for (size_t i = 0; i < hl; i++)
        want[i] = (char)(host[i] >= 'A' && host[i] <= 'Z' ? host[i] + 32 : host[i]);
    want[hl] = '\0';
    /* px_sni_parse may be stricter than OpenSSL where the client broke a MUST NOT: a hello
     * larger than it reads, an empty handshake record (RFC 8446 5.1, RFC 5246 6.2.1), which
     * OpenSSL skips. Such a client is keyed on its address (px_tcp.c). */
    FZ_CHECK(rc == PX_SNI_FOUND || (rc == PX_SNI_NONE && sni.why != NULL &&
                                    (strstr(sni.why, "larger than the limit") != NULL ||
                                     strcmp(sni.why, "a TLS record of an invalid length") == 0)),
             "OpenSSL read the name \"%s\", px_sni_parse %s (%s)", host,
             rc == PX_SNI_MORE ? "asks for more" : "none", sni.why ? sni.why : "");
    if (rc == PX_SNI_FOUND)
        FZ_CHECK(strcmp(sni.name, want) == 0, "OpenSSL read the name \"%s\", px_sni_parse \"%s\"",
                 host, sni.name);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *payload;
    size_t len, ends[FZ_MAX_CHUNKS], n = fz_split(data, size, &payload, &len, ends), at = 0;
    SSL *ssl = SSL_new(fz_tls_ctx);
    BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
    bool done = false, failed = false;

    FZ_CHECK(ssl != NULL && rbio != NULL && wbio != NULL, "out of memory");
    BIO_set_mem_eof_return(rbio, -1); /* no more bytes yet: want read, as on a socket */
    SSL_set_bio(ssl, rbio, wbio);
    SSL_set_accept_state(ssl);
    fz_tls_frozen = true;
    for (size_t k = 0; k < n && !failed; k++) {
        if (ends[k] > at)
            BIO_write(rbio, payload + at, (int)(ends[k] - at));
        at = ends[k];
        ERR_clear_error();
        if (!done) {
            int r = SSL_do_handshake(ssl);

            if (r == 1)
                done = true;
            else if (SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ &&
                     SSL_get_error(ssl, r) != SSL_ERROR_WANT_WRITE)
                failed = true;
        }
        if (done) {
            /* What a client sends once it is through: read as px_tls_recv reads it. */
            char buf[4096];
            bool ww = false;

            while (px_tls_recv(ssl, buf, sizeof(buf), &ww) > 0)
                ;
        }
    }
    /* A TLS 1.2 session resumed keeps the name it was made for (OpenSSL's SSL_get_servername
     * then says that one, whatever the ClientHello says): nothing to compare. */
    if (fz_tls_answered(wbio) && !SSL_session_reused(ssl))
        fz_tls_check_sni(ssl, payload, len);
    fz_tls_frozen = false;
    SSL_free(ssl);
    ERR_clear_error();
    return 0;
}

/* --- seeds --- */

/* Moves what one side wrote to the other; returns the bytes moved. */
static size_t
fz_tls_pump(SSL *from, SSL *to)
{
    char buf[16384];
    size_t moved = 0;
    int k;

    while ((k = BIO_read(SSL_get_wbio(from), buf, sizeof(buf))) > 0) {
        BIO_write(SSL_get_rbio(to), buf, k);
        moved += (size_t)k;
    }
    return moved;
}

/* One client connection: its first flight written to DIR/NAME (after a \x00: no cut), then the
 * handshake completed; returns its session (a ticket to resume) when `keep`. */
static SSL_SESSION *
fz_tls_seed(const char *dir, const char *name, int max_version, const char *sni,
            const unsigned char *alpn, unsigned alpn_len, SSL_SESSION *resume, bool keep)
{
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL *c, *s = SSL_new(fz_tls_ctx);
    SSL_SESSION *sess = NULL;
    char path[512], *hello;
    long hl;
    FILE *f;

    SSL_CTX_set_max_proto_version(cctx, max_version);
    c = SSL_new(cctx);
    SSL_set_bio(c, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_bio(s, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    BIO_set_mem_eof_return(SSL_get_rbio(c), -1);
    BIO_set_mem_eof_return(SSL_get_rbio(s), -1);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    if (sni != NULL)
        SSL_set_tlsext_host_name(c, sni);
    if (alpn != NULL)
        SSL_set_alpn_protos(c, alpn, alpn_len);
    if (resume != NULL)
        FZ_CHECK(SSL_set_session(c, resume) == 1, "SSL_set_session");
    SSL_do_handshake(c);
    hl = BIO_get_mem_data(SSL_get_wbio(c), &hello);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    FZ_CHECK(f != NULL && fputc(0, f) == 0 && fwrite(hello, 1, (size_t)hl, f) == (size_t)hl &&
                 fclose(f) == 0,
             "writing %s", path);
    for (int turn = 0; turn < 16; turn++) {
        char buf[256];

        SSL_do_handshake(c);
        fz_tls_pump(c, s);
        SSL_do_handshake(s);
        fz_tls_pump(s, c);
        SSL_read(c, buf, sizeof(buf)); /* TLS 1.3 tickets come after the handshake */
    }
    FZ_CHECK(SSL_is_init_finished(c) && SSL_is_init_finished(s), "seed %s: no handshake", name);
    FZ_CHECK(resume == NULL || SSL_session_reused(s), "seed %s: the ticket was refused", name);
    if (keep)
        sess = SSL_get1_session(c);
    SSL_set_shutdown(c, SSL_SENT_SHUTDOWN); /* a session freed without it is not resumable */
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);
    return sess;
}

static void
fz_tls_seeds(const char *dir)
{
    static const unsigned char h2[] = "\x02h2\x08http/1.1", h1[] = "\x08http/1.1";
    SSL_SESSION *t12, *t13;

    fz_tls_frozen = true;
    fz_tls_seed(dir, "tls13_no_sni", TLS1_3_VERSION, NULL, NULL, 0, NULL, false);
    fz_tls_seed(dir, "tls13_sni_named_alpn_h2", TLS1_3_VERSION, "a.fuzz.test", h2, sizeof(h2) - 1,
                NULL, false);
    fz_tls_seed(dir, "tls13_sni_wildcard", TLS1_3_VERSION, "X.Wild.Fuzz.Test", NULL, 0, NULL,
                false);
    fz_tls_seed(dir, "tls13_sni_by_config", TLS1_3_VERSION, "c.fuzz.test", h1, sizeof(h1) - 1, NULL,
                false);
    fz_tls_seed(dir, "tls12_sni_alpn_http11", TLS1_2_VERSION, "a.fuzz.test", h1, sizeof(h1) - 1,
                NULL, false);
    fz_tls_seed(dir, "tls12_sni_unknown", TLS1_2_VERSION, "unknown.example", NULL, 0, NULL, false);
    t12 = fz_tls_seed(dir, "tls12_first", TLS1_2_VERSION, "a.fuzz.test", NULL, 0, NULL, true);
    fz_tls_seed(dir, "tls12_ticket", TLS1_2_VERSION, "a.fuzz.test", NULL, 0, t12, false);
    t13 = fz_tls_seed(dir, "tls13_first", TLS1_3_VERSION, "default.fuzz", h2, sizeof(h2) - 1, NULL,
                      true);
    fz_tls_seed(dir, "tls13_ticket", TLS1_3_VERSION, "default.fuzz", h2, sizeof(h2) - 1, t13,
                false);
    SSL_SESSION_free(t12);
    SSL_SESSION_free(t13);
    fz_tls_frozen = false;
}
