/* proxy/px_tls.c -- TLS on the client side: the listeners' contexts (certificates chosen by SNI,
 * checked when read), session tickets whose keys rotate without shared state, and the reads and
 * writes of the data path through SSL_read/SSL_write on the connection's own socket. */
#include "proxy/px_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* --- session tickets --- */

/*
 * Ticket keys are derived, not stored: the key of rotation period e is HMAC(master, e), so every
 * worker computes the same keys without sharing or locking anything, a key lives one period for
 * new tickets and one more for resumption, and nothing is ever written to disk. The master secret
 * is drawn at start and lives only in memory: a binary upgrade hands it to the new process over
 * the admin socket, with the listening sockets.
 */
static unsigned char px_tls_master[32];
static unsigned px_tls_rotation_s = 3600; /* written before the workers start, and by reloads */
static int px_tls_sni_index = -1;         /* SSL_CTX ex_data: the listener's SNI table */

struct px_tls_tkey {
    uint64_t epoch;
    bool set;
    unsigned char name[16], aes[32], hmac[32];
};
static _Thread_local struct px_tls_tkey px_tls_tkeys[2]; /* this thread's last derivations */
/* Fetched once: EVP_aes_256_cbc() would make OpenSSL 3 look the cipher up by name, under a lock,
 * for each ticket (two per full handshake). */
static EVP_CIPHER *px_tls_tcipher;

static int
px_tls_derive(uint64_t epoch, const char *label, unsigned char *out, size_t len)
{
    unsigned char msg[32], mac[EVP_MAX_MD_SIZE];
    size_t mac_len = 0, label_len = strlen(label);

    for (int i = 0; i < 8; i++)
        msg[i] = (unsigned char)(epoch >> (8 * i));
    memcpy(msg + 8, label, XF_MIN(label_len, sizeof(msg) - 8));
    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, px_tls_master, sizeof(px_tls_master), msg,
                  8 + XF_MIN(label_len, sizeof(msg) - 8), mac, sizeof(mac), &mac_len) == NULL ||
        mac_len < len)
        return -1;
    memcpy(out, mac, len);
    return 0;
}

static const struct px_tls_tkey *
px_tls_tkey(uint64_t epoch)
{
    struct px_tls_tkey *k = &px_tls_tkeys[epoch & 1];

    if (k->set && k->epoch == epoch)
        return k;
    k->set = false;
    if (px_tls_derive(epoch, "crossfade name", k->name, sizeof(k->name)) == -1 ||
        px_tls_derive(epoch, "crossfade aes", k->aes, sizeof(k->aes)) == -1 ||
        px_tls_derive(epoch, "crossfade hmac", k->hmac, sizeof(k->hmac)) == -1)
        return NULL;
    k->epoch = epoch;
    k->set = true;
    return k;
}

static int
px_tls_tkey_use(const struct px_tls_tkey *k, EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx,
                const unsigned char *iv, int enc)
{
    OSSL_PARAM params[3];

    params[0] =
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, sizeof(k->hmac));
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    if (EVP_CipherInit_ex(cctx, px_tls_tcipher, NULL, k->aes, iv, enc) != 1 ||
        EVP_MAC_CTX_set_params(hctx, params) != 1)
        return -1;
    return 0;
}

/* OpenSSL's ticket key callback: 1 (done), 2 (renew: decrypted with last period's key, or TLS
 * 1.3), 0 (not ours or too old: a full handshake), -1 (error). */
static int
px_tls_ticket_cb(SSL *ssl, unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *cctx,
                 EVP_MAC_CTX *hctx, int enc)
{
    uint64_t epoch = (uint64_t)time(NULL) / __atomic_load_n(&px_tls_rotation_s, __ATOMIC_RELAXED);
    const struct px_tls_tkey *k;

    if (enc) {
        k = px_tls_tkey(epoch);
        if (k == NULL || RAND_bytes(iv, 16) != 1)
            return -1;
        memcpy(name, k->name, sizeof(k->name));
        return px_tls_tkey_use(k, cctx, hctx, iv, 1) == -1 ? -1 : 1;
    }
    for (uint64_t back = 0; back < 2 && back <= epoch; back++) {
        k = px_tls_tkey(epoch - back);
        if (k == NULL)
            return -1;
        if (memcmp(name, k->name, sizeof(k->name)) == 0)
            /* 2 also for TLS 1.3: OpenSSL then sends the resumed client a new ticket, without
             * which its next connection (a TLS 1.3 session resumes once) would be a full one. */
            return px_tls_tkey_use(k, cctx, hctx, iv, 0) == -1      ? -1
                   : back == 0 && SSL_version(ssl) < TLS1_3_VERSION ? 1
                                                                    : 2;
    }
    return 0;
}

/* --- names --- */

/* RFC 6125 6.4.3: `pattern` (a certificate's name, "*." only as the whole first label) matches
 * `host`, ignoring case; the wildcard stands for exactly one label. */
bool
px_tls_name_match(const char *pattern, const char *host)
{
    const char *dot;

    if (pattern[0] != '*' || pattern[1] != '.')
        return strcasecmp(pattern, host) == 0;
    dot = strchr(host, '.');
    return dot != NULL && dot != host && strcasecmp(pattern + 1, dot) == 0;
}

/* The SNI table of a listener, kept as ex_data of its default context. */
struct px_tls_sni {
    size_t n;
    struct px_tls_sni_entry {
        char *name;   /* owned, lower case; "*.example.com" for a wildcard */
        SSL_CTX *ctx; /* a counted reference; NULL: the default context itself */
    } * e;
    /* What was loaded, for `show tls` and the expiry warnings: one per certificate entry. */
    size_t n_info;
    struct px_tls_info {
        char *path;       /* owned: the certificate file */
        char *names;      /* owned: the names it serves, comma-separated */
        time_t not_after; /* when it expires */
    } * info;
};

static void
px_tls_sni_free(struct px_tls_sni *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->e[i].name);
        SSL_CTX_free(t->e[i].ctx);
    }
    for (size_t i = 0; i < t->n_info; i++) {
        free(t->info[i].path);
        free(t->info[i].names);
    }
    free(t->info);
    free(t->e);
    free(t);
}

static void
px_tls_sni_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    XF_UNUSED(parent);
    XF_UNUSED(ad);
    XF_UNUSED(idx);
    XF_UNUSED(argl);
    XF_UNUSED(argp);
    px_tls_sni_free(ptr);
}

/* The client's server name picks the certificate: an exact name first, then a wildcard; none
 * (or no name sent) keeps the default. */
static int
px_tls_servername_cb(SSL *ssl, int *alert, void *arg)
{
    const struct px_tls_sni *t = arg;
    const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

    XF_UNUSED(alert);
    if (host == NULL || t == NULL)
        return SSL_TLSEXT_ERR_OK;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < t->n; i++) {
            bool wild = t->e[i].name[0] == '*';

            if (wild != (pass == 1) || !px_tls_name_match(t->e[i].name, host))
                continue;
            if (t->e[i].ctx != NULL && SSL_set_SSL_CTX(ssl, t->e[i].ctx) == NULL)
                return SSL_TLSEXT_ERR_ALERT_FATAL;
            return SSL_TLSEXT_ERR_OK;
        }
    return SSL_TLSEXT_ERR_OK;
}

/* --- contexts --- */

/* OpenSSL's reason for the last failure, for a message. */
static const char *
px_tls_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

    return r != NULL ? r : "unknown error";
}

/* Whether path can be opened for reading; sets err ("AT: cannot read PATH: why") if not. */
static int
px_tls_readable(const struct cfg_file *f, struct xf_err *err)
{
    FILE *fp = fopen(f->path, "r");

    if (fp == NULL) {
        xf_err_set(err, "%s: cannot read %s: %s", f->at, f->path, strerror(errno));
        return -1;
    }
    fclose(fp);
    return 0;
}

/* verify_client optional: a certificate that does not verify is not fatal; the connection goes
 * on without it (px_tls_peer_ok says whether there is a verified one). */
static int
px_tls_verify_optional(int ok, X509_STORE_CTX *store)
{
    XF_UNUSED(ok);
    XF_UNUSED(store);
    return 1;
}

/* Everything but the certificates: protocols, ciphers, tickets, the session cache, client
 * certificates. The same for each context of a listener (SNI switches the certificate only). */
static SSL_CTX *
px_tls_ctx_base(const struct cfg_tls_listen *t, unsigned rotation_s, struct xf_err *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (ctx == NULL) {
        xf_err_set(err, "%s: cannot create a TLS context: %s", t->at, px_tls_reason());
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx,
                                  (t->protocols & CFG_TLS_V12) ? TLS1_2_VERSION : TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx,
                                  (t->protocols & CFG_TLS_V13) ? TLS1_3_VERSION : TLS1_2_VERSION);
    /* Renegotiation is refused (a client-driven CPU sink, and a way to change identity on an open
     * connection); a client's EOF without close_notify reads as an ordinary close. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* Writes come from a px_buf that may move between tries; buffers are given back while a
     * connection is idle; a read takes what the socket holds, not one record header at a time. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    if (t->ciphers != NULL && SSL_CTX_set_cipher_list(ctx, t->ciphers) != 1) {
        xf_err_set(err, "%s: no TLS 1.2 cipher matches \"%s\" (OpenSSL's cipher list syntax)",
                   t->ciphers_at, t->ciphers);
        goto fail;
    }
    if (t->ciphersuites != NULL && SSL_CTX_set_ciphersuites(ctx, t->ciphersuites) != 1) {
        xf_err_set(err,
                   "%s: \"%s\" is not a list of TLS 1.3 suites such as "
                   "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256",
                   t->ciphersuites_at, t->ciphersuites);
        goto fail;
    }
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"crossfade", 9);
    /* The cache's clean-up runs on the control thread once a minute (px_tls_flush), not inside a
     * worker's handshake every 255 connections, where OpenSSL would walk the whole cache. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_AUTO_CLEAR);
    SSL_CTX_set_timeout(ctx, (long)rotation_s);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, px_tls_ticket_cb);
    if (t->client_ca.path != NULL) {
        STACK_OF(X509_NAME) * names;

        if (px_tls_readable(&t->client_ca, err) == -1)
            goto fail;
        names = SSL_load_client_CA_file(t->client_ca.path);
        if (names == NULL || SSL_CTX_load_verify_locations(ctx, t->client_ca.path, NULL) != 1) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            xf_err_set(err, "%s: %s holds no usable CA certificate (PEM): %s", t->client_ca.at,
                       t->client_ca.path, px_tls_reason());
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
    }
    if (t->verify_client != CFG_TLS_VERIFY_OFF)
        SSL_CTX_set_verify(
            ctx,
            SSL_VERIFY_PEER |
                (t->verify_client == CFG_TLS_VERIFY_REQUIRED ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
            t->verify_client == CFG_TLS_VERIFY_OPTIONAL ? px_tls_verify_optional : NULL);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* The DNS names a certificate holds: its subject alternative names, else its common name. */
static int
px_tls_cert_names(X509 *x, char ***out, size_t *n_out)
{
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int n = sans != NULL ? sk_GENERAL_NAME_num(sans) : 0;
    char **names = calloc((size_t)n + 1, sizeof(*names));
    size_t k = 0;

    if (names == NULL)
        goto fail;
    for (int i = 0; i < n; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        const unsigned char *s;
        int len;

        if (g->type != GEN_DNS)
            continue;
        s = ASN1_STRING_get0_data(g->d.dNSName);
        len = ASN1_STRING_length(g->d.dNSName);
        if (len <= 0 || memchr(s, '\0', (size_t)len) != NULL)
            continue;
        names[k] = strndup((const char *)s, (size_t)len);
        if (names[k] == NULL)
            goto fail;
        k++;
    }
    if (k == 0) {
        char cn[256];
        int len =
            X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));

        if (len > 0 && (size_t)len == strlen(cn)) {
            names[k] = strdup(cn);
            if (names[k] == NULL)
                goto fail;
            k++;
        }
    }
    GENERAL_NAMES_free(sans);
    *out = names;
    *n_out = k;
    return 0;
fail:
    GENERAL_NAMES_free(sans);
    for (size_t i = 0; i < k; i++)
        free(names[i]);
    free(names);
    return -1;
}

static void
px_tls_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* "a, b, c" (cut to fit) into buf. */
static const char *
px_tls_names_text(char *buf, size_t size, char *const *names, size_t n)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < n && used < size; i++) {
        int w = snprintf(buf + used, size - used, "%s%s", i > 0 ? ", " : "", names[i]);

        if (w < 0)
            break;
        used += (size_t)w;
    }
    return n == 0 ? "no name" : buf;
}

/* One context per set of names: an RSA and an ECDSA certificate for the same names share it, and
 * OpenSSL picks the one the client can use. */
struct px_tls_group {
    SSL_CTX *ctx; /* owned */
    char **names; /* owned: the SNI names it serves */
    size_t n_names;
    unsigned key_types; /* 1 << EVP_PKEY base id class: one certificate per type */
};

static bool
px_tls_same_names(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++) {
        size_t j = 0;

        while (j < nb && strcasecmp(a[i], b[j]) != 0)
            j++;
        if (j == nb)
            return false;
    }
    return true;
}

/* An ASN1 time as seconds since the epoch (0 when unreadable). */
static time_t
px_tls_time(const ASN1_TIME *t)
{
    struct tm tm;

    if (ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return timegm(&tm);
}

/* "a,b,c" (owned by the caller), or "-" for none; NULL when out of memory. */
static char *
px_tls_names_join(char *const *names, size_t n)
{
    size_t len = 2;
    char *s;

    for (size_t i = 0; i < n; i++)
        len += strlen(names[i]) + 1;
    s = malloc(len);
    if (s == NULL)
        return NULL;
    strcpy(s, n == 0 ? "-" : "");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            strcat(s, ",");
        strcat(s, names[i]);
    }
    return s;
}

/* The days from now to `t` (negative once past). */
static int
px_tls_days_left(const ASN1_TIME *t)
{
    int days = 0, secs = 0;

    if (ASN1_TIME_diff(&days, &secs, NULL, t) != 1)
        return 0;
    return days;
}

/* Reads one certificate entry: its first certificate (names, dates, key type) for the checks. */
static X509 *
px_tls_read_x509(const struct cfg_file *f, struct xf_err *err)
{
    BIO *bio;
    X509 *x;

    if (px_tls_readable(f, err) == -1)
        return NULL;
    bio = BIO_new_file(f->path, "r");
    x = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (x == NULL)
        xf_err_set(err, "%s: %s holds no PEM certificate: %s", f->at, f->path, px_tls_reason());
    return x;
}

/* The names an entry serves: those written in the file, each covered by the certificate, else
 * the certificate's own. */
static int
px_tls_entry_names(const struct cfg_tls_cert *c, char **own, size_t n_own, char ***out,
                   size_t *n_out, struct xf_err *err)
{
    char list[256];
    size_t covered = 0;
    char **names;

    if (c->n_names == 0) {
        names = calloc(n_own + 1, sizeof(*names));
        if (names == NULL)
            goto oom;
        for (size_t i = 0; i < n_own; i++) {
            names[i] = strdup(own[i]);
            if (names[i] == NULL) {
                px_tls_names_free(names, i);
                goto oom;
            }
        }
        *out = names;
        *n_out = n_own;
        return 0;
    }
    names = calloc(c->n_names, sizeof(*names));
    if (names == NULL)
        goto oom;
    for (size_t i = 0; i < c->n_names; i++) {
        bool ok = false;

        for (size_t k = 0; k < n_own && !ok; k++)
            ok = strcasecmp(own[k], c->names[i]) == 0 || px_tls_name_match(own[k], c->names[i]);
        if (ok)
            covered++;
        else
            XF_LOG(XF_LOG_WARN, "tls",
                   "event=certificate_name_not_covered name=%s cert=%s holds=\"%s\" note=\"clients "
                   "asking for this name will not trust the certificate\"",
                   c->names[i], c->cert.path, px_tls_names_text(list, sizeof(list), own, n_own));
        names[i] = strdup(c->names[i]);
        if (names[i] == NULL) {
            px_tls_names_free(names, i);
            goto oom;
        }
    }
    if (covered == 0) {
        px_tls_names_free(names, c->n_names);
        xf_err_set(err, "%s: the certificate in %s covers none of the names given (it holds: %s)",
                   c->at, c->cert.path, px_tls_names_text(list, sizeof(list), own, n_own));
        return -1;
    }
    *out = names;
    *n_out = c->n_names;
    return 0;
oom:
    xf_err_set(err, "%s: out of memory", c->at);
    return -1;
}

/* Loads entry c into group g's context: the chain, the key, and the check that they match. */
static int
px_tls_group_load(struct px_tls_group *g, const struct cfg_tls_cert *c, struct xf_err *err)
{
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(g->ctx, c->cert.path) != 1) {
        xf_err_set(err, "%s: %s is not a PEM certificate chain: %s", c->cert.at, c->cert.path,
                   px_tls_reason());
        return -1;
    }
    if (px_tls_readable(&c->key, err) == -1)
        return -1;
    if (SSL_CTX_use_PrivateKey_file(g->ctx, c->key.path, SSL_FILETYPE_PEM) != 1) {
        unsigned long e = ERR_peek_last_error();

        if (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH ||
            ERR_GET_REASON(e) == X509_R_KEY_TYPE_MISMATCH)
            xf_err_set(err, "%s: the key in %s does not match the certificate in %s", c->key.at,
                       c->key.path, c->cert.path);
        else
            xf_err_set(err, "%s: %s is not a PEM private key: %s", c->key.at, c->key.path,
                       px_tls_reason());
        return -1;
    }
    if (SSL_CTX_check_private_key(g->ctx) != 1) {
        xf_err_set(err, "%s: the key in %s does not match the certificate in %s", c->key.at,
                   c->key.path, c->cert.path);
        return -1;
    }
    return 0;
}

/* Warns about a certificate past its dates or within 14 days of its end (it still serves). */
static void
px_tls_check_dates(const struct cfg_tls_cert *c, X509 *x)
{
    int left = px_tls_days_left(X509_get0_notAfter(x));

    if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
        XF_LOG(XF_LOG_WARN, "tls",
               "event=certificate_expired cert=%s days_ago=%d note=\"clients will refuse it: "
               "renew it, then xfctl tls reload\"",
               c->cert.path, -left);
    else if (left < PX_TLS_EXPIRY_WARN_DAYS)
        XF_LOG(XF_LOG_WARN, "tls", "event=certificate_expires_soon cert=%s days_left=%d",
               c->cert.path, left);
    if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0)
        XF_LOG(XF_LOG_WARN, "tls",
               "event=certificate_not_yet_valid cert=%s note=\"clients will refuse it until its "
               "start date\"",
               c->cert.path);
}

static void
px_tls_groups_free(struct px_tls_group *g, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        SSL_CTX_free(g[i].ctx);
        px_tls_names_free(g[i].names, g[i].n_names);
    }
    free(g);
}

/* The SNI table over the groups; entries of group 0 (the default) stay on the default context. */
static struct px_tls_sni *
px_tls_sni_new(struct px_tls_group *g, size_t n)
{
    struct px_tls_sni *t = calloc(1, sizeof(*t));
    size_t total = 0;

    if (t == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        total += g[i].n_names;
    t->e = calloc(total + 1, sizeof(*t->e));
    if (t->e == NULL) {
        free(t);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < g[i].n_names; k++) {
            struct px_tls_sni_entry *e = &t->e[t->n];

            e->name = strdup(g[i].names[k]);
            if (e->name == NULL) {
                px_tls_sni_free(t);
                return NULL;
            }
            for (char *p = e->name; *p != '\0'; p++)
                if (*p >= 'A' && *p <= 'Z')
                    *p = (char)(*p - 'A' + 'a');
            if (i > 0 && SSL_CTX_up_ref(g[i].ctx) == 1)
                e->ctx = g[i].ctx;
            t->n++;
        }
    return t;
}

SSL_CTX *
px_tls_listen_new(const struct cfg_tls_listen *t, unsigned rotation_ms, struct xf_err *err)
{
    unsigned rotation_s = XF_MAX(rotation_ms / 1000u, 1u);
    struct px_tls_group *g = calloc(t->n_certs, sizeof(*g));
    struct px_tls_info *info = calloc(t->n_certs, sizeof(*info));
    struct px_tls_sni *sni = NULL;
    size_t n = 0;
    SSL_CTX *def = NULL;

    if (g == NULL || info == NULL) {
        free(g);
        free(info);
        xf_err_set(err, "%s: out of memory", t->at);
        return NULL;
    }
    for (size_t i = 0; i < t->n_certs; i++) {
        const struct cfg_tls_cert *c = &t->certs[i];
        X509 *x = px_tls_read_x509(&c->cert, err);
        char **own = NULL, **names = NULL;
        size_t n_own = 0, n_names = 0, k;
        unsigned type;

        if (x == NULL)
            goto fail;
        type = 1u << (EVP_PKEY_get_base_id(X509_get0_pubkey(x)) & 31);
        px_tls_check_dates(c, x);
        info[i].not_after = px_tls_time(X509_get0_notAfter(x));
        info[i].path = strdup(c->cert.path);
        if (px_tls_cert_names(x, &own, &n_own) == -1) {
            X509_free(x);
            xf_err_set(err, "%s: out of memory", c->at);
            goto fail;
        }
        X509_free(x);
        if (px_tls_entry_names(c, own, n_own, &names, &n_names, err) == -1) {
            px_tls_names_free(own, n_own);
            goto fail;
        }
        px_tls_names_free(own, n_own);
        info[i].names = px_tls_names_join(names, n_names);
        if (info[i].path == NULL || info[i].names == NULL) {
            px_tls_names_free(names, n_names);
            xf_err_set(err, "%s: out of memory", c->at);
            goto fail;
        }
        if (n_names == 0 && i > 0) {
            px_tls_names_free(names, n_names);
            xf_err_set(err,
                       "%s: the certificate in %s holds no DNS name (no subject alternative "
                       "name, no common name): only the first certificate, the default, may",
                       c->at, c->cert.path);
            goto fail;
        }
        for (k = 0; k < n; k++)
            if (px_tls_same_names(g[k].names, g[k].n_names, names, n_names))
                break;
        if (k < n) {
            px_tls_names_free(names, n_names);
            if (g[k].key_types & type) {
                xf_err_set(err,
                           "%s: a certificate of the same key type for the same names comes "
                           "earlier: one would hide the other",
                           c->at);
                goto fail;
            }
        } else {
            g[n].names = names;
            g[n].n_names = n_names;
            g[n].ctx = px_tls_ctx_base(t, rotation_s, err);
            n++;
            if (g[k].ctx == NULL)
                goto fail;
        }
        g[k].key_types |= type;
        if (px_tls_group_load(&g[k], c, err) == -1)
            goto fail;
    }
    sni = px_tls_sni_new(g, n);
    if (sni != NULL) {
        sni->info = info;
        sni->n_info = t->n_certs;
        info = NULL;
    }
    if (sni == NULL || SSL_CTX_set_ex_data(g[0].ctx, px_tls_sni_index, sni) != 1) {
        px_tls_sni_free(sni);
        xf_err_set(err, "%s: out of memory", t->at);
        goto fail;
    }
    SSL_CTX_set_tlsext_servername_callback(g[0].ctx, px_tls_servername_cb);
    SSL_CTX_set_tlsext_servername_arg(g[0].ctx, sni);
    def = g[0].ctx;
    g[0].ctx = NULL; /* the caller's; the table holds the others */
fail:
    px_tls_groups_free(g, n);
    for (size_t i = 0; info != NULL && i < t->n_certs; i++) {
        free(info[i].path);
        free(info[i].names);
    }
    free(info);
    return def;
}

int
px_tls_init(struct xf_err *err)
{
    if (px_tls_tcipher != NULL)
        return 0;
    if (px_tls_sni_index == -1)
        px_tls_sni_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, px_tls_sni_ex_free);
    if (px_tls_sni_index == -1 || RAND_bytes(px_tls_master, sizeof(px_tls_master)) != 1 ||
        (px_tls_tcipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL)) == NULL) {
        xf_err_set(err, "cannot set up TLS: %s", px_tls_reason());
        return -1;
    }
    return 0;
}

size_t
px_tls_ticket_secret(void *arg, unsigned char *out, size_t cap)
{
    (void)arg;
    if (cap < sizeof(px_tls_master))
        return 0;
    memcpy(out, px_tls_master, sizeof(px_tls_master));
    return sizeof(px_tls_master);
}

int
px_tls_ticket_secret_set(const unsigned char *secret, size_t len, struct xf_err *err)
{
    if (px_tls_init(err) == -1)
        return -1;
    if (len != sizeof(px_tls_master)) {
        xf_err_set(err, "the ticket secret has %zu bytes, not %zu", len, sizeof(px_tls_master));
        return -1;
    }
    memcpy(px_tls_master, secret, len);
    return 0;
}

void
px_tls_set_rotation(unsigned rotation_ms)
{
    __atomic_store_n(&px_tls_rotation_s, XF_MAX(rotation_ms / 1000u, 1u), __ATOMIC_RELAXED);
}

void
px_tls_set_free(SSL_CTX **set, size_t n)
{
    for (size_t i = 0; set != NULL && i < n; i++)
        SSL_CTX_free(set[i]);
    free(set);
}

int
px_tls_set_new(const struct cfg *cfg, SSL_CTX ***out, struct xf_err *err)
{
    SSL_CTX **set;

    *out = NULL;
    if (px_tls_init(err) == -1)
        return -1;
    set = calloc(cfg->n_listeners, sizeof(*set));
    if (set == NULL) {
        xf_err_set(err, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        if (cfg->listeners[i].tls == NULL)
            continue;
        set[i] = px_tls_listen_new(cfg->listeners[i].tls, cfg->tls_ticket_rotation_ms, err);
        if (set[i] == NULL) {
            px_tls_set_free(set, i);
            return -1;
        }
    }
    *out = set;
    return 0;
}

/* --- the data path --- */

ssize_t
px_tls_recv(SSL *ssl, void *buf, size_t len, bool *want_write)
{
    int n;

    ERR_clear_error();
    n = SSL_read(ssl, buf, (int)XF_MIN(len, (size_t)INT_MAX));
    if (n > 0)
        return n;
    switch (SSL_get_error(ssl, n)) {
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_WANT_WRITE:
        *want_write = true;
        /* fall through */
    case SSL_ERROR_WANT_READ:
        errno = EAGAIN;
        return -1;
    default:
        errno = ECONNRESET;
        return -1;
    }
}

enum px_rc
px_tls_send(SSL *ssl, struct px_buf *b, uint64_t *sent)
{
    if (b->failed) {
        errno = ENOMEM;
        return PX_CLOSE;
    }
    while (px_buf_len(b) > 0) {
        int n;

        ERR_clear_error();
        n = SSL_write(ssl, px_buf_head(b), (int)XF_MIN(px_buf_len(b), (size_t)INT_MAX));
        if (n <= 0) {
            /* WANT_READ would mean a renegotiation, which is refused: the connection ends. */
            return SSL_get_error(ssl, n) == SSL_ERROR_WANT_WRITE ? PX_AGAIN : PX_CLOSE;
        }
        if (sent != NULL)
            *sent += (uint64_t)n;
        px_buf_consume(b, (size_t)n);
    }
    return PX_OK;
}

/* --- a client's connection --- */

/* A failed handshake: logged, rate-limited (px_ratelog_allow). */
static void
px_tls_log_failure(struct px_client *c, const char *why)
{
    if (px_ratelog_allow(&c->w->tls_log, "tls", "tls_handshake_failed", c->w->index))
        XF_LOG(XF_LOG_WARN, "tls", "event=tls_handshake_failed client=%s listener=%s reason=\"%s\"",
               c->ip, c->l->conf.addr.text, why);
}

/* The first DNS, email or URI subject alternative name of x into buf; its length, 0: none. */
static size_t
px_tls_first_san(X509 *x, char *buf, size_t size)
{
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    size_t len = 0;

    for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans) && len == 0; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        const ASN1_IA5STRING *s = g->type == GEN_DNS     ? g->d.dNSName
                                  : g->type == GEN_EMAIL ? g->d.rfc822Name
                                  : g->type == GEN_URI   ? g->d.uniformResourceIdentifier
                                                         : NULL;
        int n = s != NULL ? ASN1_STRING_length(s) : 0;

        if (n > 0 && (size_t)n < size &&
            memchr(ASN1_STRING_get0_data(s), '\0', (size_t)n) == NULL) {
            memcpy(buf, ASN1_STRING_get0_data(s), (size_t)n);
            len = (size_t)n;
        }
    }
    GENERAL_NAMES_free(sans);
    buf[len] = '\0';
    return len;
}

/*
 * The identity of a verified client certificate (once per connection, at the handshake): its
 * subject (RFC 2253), first SAN and SHA-256 fingerprint, for the split's cert: keys. A client
 * without one, or with one that did not verify (verify_client optional), has none.
 */
static void
px_tls_client_identity(struct px_client *c)
{
    X509 *x = SSL_get0_peer_certificate(c->ssl);
    char subj[1024], san[512], fp[2 * EVP_MAX_MD_SIZE + 1];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    size_t lens[BAL_CERT_COUNT], total = 0;
    const char *parts[BAL_CERT_COUNT] = {subj, san, fp};
    BIO *mem;
    int n;

    if (x == NULL || SSL_get_verify_result(c->ssl) != X509_V_OK)
        return;
    subj[0] = '\0';
    mem = BIO_new(BIO_s_mem());
    if (mem != NULL && X509_NAME_print_ex(mem, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0) {
        n = BIO_read(mem, subj, sizeof(subj) - 1);
        subj[n > 0 ? n : 0] = '\0';
    }
    BIO_free(mem);
    lens[BAL_CERT_SUBJECT] = strlen(subj);
    lens[BAL_CERT_SAN] = px_tls_first_san(x, san, sizeof(san));
    fp[0] = '\0';
    if (X509_digest(x, EVP_sha256(), md, &md_len) == 1)
        for (unsigned i = 0; i < md_len; i++)
            snprintf(fp + 2 * i, 3, "%02x", md[i]);
    lens[BAL_CERT_FINGERPRINT] = strlen(fp);
    for (int i = 0; i < BAL_CERT_COUNT; i++)
        total += lens[i] + 1;
    c->tls_id = malloc(total);
    if (c->tls_id == NULL)
        return;
    total = 0;
    for (int i = 0; i < BAL_CERT_COUNT; i++) {
        memcpy(c->tls_id + total, parts[i], lens[i] + 1);
        c->tls_id_off[i] = (uint16_t)total;
        c->tls_id_len[i] = (uint16_t)lens[i];
        total += lens[i] + 1;
    }
}

int
px_tls_client_start(struct px_client *c, SSL_CTX *ctx)
{
    c->ssl = SSL_new(ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
        return -1;
    SSL_set_accept_state(c->ssl);
    c->tls_hs = true;
    c->tls_hs_end_ms = xf_now_ms() + c->w->cfg->timeouts.tls_handshake_ms;
    return 0;
}

/* Arms ev for what is left of the handshake's time. */
static void
px_tls_hs_wait(struct px_client *c, struct event *ev)
{
    struct timeval tv = px_tv_until(c->tls_hs_end_ms);

    event_add(ev, &tv);
}

enum px_rc
px_tls_handshake(struct px_client *c)
{
    unsigned long e;
    int r, err;

    ERR_clear_error();
    r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->tls_hs = false;
        if (c->wev_on) {
            event_del(&c->wev);
            c->wev_on = false;
        }
        XF_STAT_INC(c->w->stats->tls_handshakes);
        if (SSL_session_reused(c->ssl))
            XF_STAT_INC(c->w->stats->tls_resumed);
        if (c->l->conf.tls != NULL && c->l->conf.tls->verify_client != CFG_TLS_VERIFY_OFF)
            px_tls_client_identity(c);
        return PX_OK;
    }
    err = SSL_get_error(c->ssl, r);
    if (err == SSL_ERROR_WANT_READ) {
        if (c->wev_on) {
            event_del(&c->wev);
            c->wev_on = false;
        }
        px_tls_hs_wait(c, &c->rev);
        return PX_AGAIN;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
        px_tls_hs_wait(c, &c->wev);
        c->wev_on = true;
        return PX_AGAIN;
    }
    XF_STAT_INC(c->w->stats->tls_failed);
    e = ERR_peek_last_error();
    if (err == SSL_ERROR_SYSCALL || e == 0)
        px_tls_log_failure(c, errno != 0 ? strerror(errno) : "the client closed the connection");
    else
        px_tls_log_failure(c, px_tls_reason());
    return PX_CLOSE;
}

void
px_tls_handshake_timeout(struct px_client *c)
{
    XF_STAT_INC(c->w->stats->tls_failed);
    px_tls_log_failure(c, "the handshake did not complete within timeouts.tls_handshake");
}

void
px_tls_client_close(struct px_client *c)
{
    if (c->ssl == NULL)
        return;
    /* close_notify on a connection that ends in order and whose client is still there; a cut one
     * (abort) ends with a reset. */
    if (!c->tls_hs && !c->abort && !c->tls_shut && !c->eof) {
        ERR_clear_error();
        SSL_shutdown(c->ssl);
    }
    /* A client that closes without close_notify (most do) keeps its session resumable. */
    if (!c->tls_hs && !c->abort)
        SSL_set_shutdown(c->ssl, SSL_get_shutdown(c->ssl) | SSL_SENT_SHUTDOWN);
    SSL_free(c->ssl);
    c->ssl = NULL;
    XF_FREE(c->tls_id);
}

void
px_tls_client_shut(struct px_client *c)
{
    if (c->ssl == NULL || c->tls_hs || c->tls_shut)
        return;
    ERR_clear_error();
    SSL_shutdown(c->ssl);
    c->tls_shut = true;
}

bool
px_tls_pending(const struct px_client *c)
{
    return c->ssl != NULL && !c->tls_hs && SSL_has_pending(c->ssl);
}

/* --- the nodes' side --- */

void
px_tls_node_sessions_free(struct px_pool_target *pt)
{
    for (uint8_t i = 0; i < pt->n_tls_sess; i++)
        SSL_SESSION_free(pt->tls_sess[i]);
    pt->n_tls_sess = 0;
}

/* A session a node gave (TLS 1.3 sends it after the handshake): kept in the pool's target to
 * resume the next connections there, the oldest dropped when there is no room. */
static int
px_tls_node_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    struct px_upstream *u = SSL_get_app_data(ssl);
    struct px_pool_target *pt;

    if (u == NULL || u->target >= u->pool->n_targets || !SSL_SESSION_is_resumable(sess))
        return 0;
    pt = &u->pool->t[u->target];
    if (pt->tls_sess_gen != u->tls_gen)
        px_tls_node_sessions_free(pt);
    if (pt->n_tls_sess == PX_TLS_NODE_SESSIONS) {
        SSL_SESSION_free(pt->tls_sess[0]);
        memmove(pt->tls_sess, pt->tls_sess + 1, sizeof(pt->tls_sess[0]) * (pt->n_tls_sess - 1u));
        pt->n_tls_sess--;
    }
    pt->tls_sess[pt->n_tls_sess++] = sess; /* the reference is ours */
    pt->tls_sess_gen = u->tls_gen;
    return 1;
}

static SSL_CTX *
px_tls_node_ctx(const struct cfg_tls_node *t, struct xf_err *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL) {
        xf_err_set(err, "%s: cannot create a TLS context: %s", t->at, px_tls_reason());
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, px_tls_node_session_cb);
    if (t->verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (t->ca.path != NULL) {
            if (px_tls_readable(&t->ca, err) == -1)
                goto fail;
            if (SSL_CTX_load_verify_locations(ctx, t->ca.path, NULL) != 1) {
                xf_err_set(err, "%s: %s holds no usable CA certificate (PEM): %s", t->ca.at,
                           t->ca.path, px_tls_reason());
                goto fail;
            }
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            xf_err_set(err, "%s: cannot load the system's CA certificates: %s", t->at,
                       px_tls_reason());
            goto fail;
        }
    }
    if (t->cert.path != NULL) {
        struct px_tls_group g = {.ctx = ctx};
        struct cfg_tls_cert c = {.cert = t->cert, .key = t->key};

        snprintf(c.at, sizeof(c.at), "%s", t->at);
        if (px_tls_readable(&t->cert, err) == -1 || px_tls_group_load(&g, &c, err) == -1)
            goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

int
px_tls_nodes_new(const struct cfg *cfg, SSL_CTX *out[CFG_CLUSTER_COUNT], struct xf_err *err)
{
    if (px_tls_init(err) == -1)
        return -1;
    for (int i = 0; i < CFG_CLUSTER_COUNT; i++) {
        out[i] = NULL;
        if (cfg->clusters[i].tls == NULL)
            continue;
        out[i] = px_tls_node_ctx(cfg->clusters[i].tls, err);
        if (out[i] == NULL) {
            px_tls_nodes_free(out);
            return -1;
        }
    }
    return 0;
}

void
px_tls_nodes_free(SSL_CTX *set[CFG_CLUSTER_COUNT])
{
    for (int i = 0; i < CFG_CLUSTER_COUNT; i++) {
        SSL_CTX_free(set[i]);
        set[i] = NULL;
    }
}

void
px_tls_nodes_move(SSL_CTX *dst[CFG_CLUSTER_COUNT], SSL_CTX *src[CFG_CLUSTER_COUNT])
{
    for (int i = 0; i < CFG_CLUSTER_COUNT; i++) {
        SSL_CTX_free(dst[i]);
        dst[i] = src[i];
        src[i] = NULL;
    }
}

void
px_tls_nodes_copy(SSL_CTX *dst[CFG_CLUSTER_COUNT], SSL_CTX *const src[CFG_CLUSTER_COUNT])
{
    for (int i = 0; i < CFG_CLUSTER_COUNT; i++) {
        SSL_CTX_free(dst[i]);
        dst[i] = src[i] != NULL && SSL_CTX_up_ref(src[i]) == 1 ? src[i] : NULL;
    }
}

/* The host part of "host:port", "[v6]:port" into buf; whether it is an IP address. */
static bool
px_tls_host_of(const char *text, char *buf, size_t size)
{
    const char *end = strrchr(text, ':');
    size_t len = end != NULL ? (size_t)(end - text) : strlen(text);
    unsigned char tmp[16];

    if (len >= 2 && text[0] == '[' && text[len - 1] == ']') {
        text++;
        len -= 2;
    }
    len = XF_MIN(len, size - 1);
    memcpy(buf, text, len);
    buf[len] = '\0';
    return inet_pton(AF_INET, buf, tmp) == 1 || inet_pton(AF_INET6, buf, tmp) == 1;
}

SSL *
px_tls_node_ssl(SSL_CTX *ctx, const char *sni, const char *addr_text)
{
    SSL *ssl = SSL_new(ctx);
    char host[256];
    bool ip = false;

    if (ssl == NULL)
        return NULL;
    SSL_set_connect_state(ssl);
    if (sni != NULL)
        snprintf(host, sizeof(host), "%s", sni);
    else
        ip = px_tls_host_of(addr_text, host, sizeof(host));
    /* The name checked is the one sent; an address is checked against the certificate's IP
     * entries and not sent (RFC 6066 3: SNI carries host names only). */
    if (ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1
           : SSL_set_tlsext_host_name(ssl, host) != 1 || SSL_set1_host(ssl, host) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

int
px_tls_upstream_start(struct px_upstream *u, SSL_CTX *ctx, const char *sni)
{
    struct px_pool_target *pt = &u->pool->t[u->target];

    u->ssl = px_tls_node_ssl(ctx, sni, pt->addr.text);
    if (u->ssl == NULL || SSL_set_fd(u->ssl, u->fd) != 1)
        return -1;
    SSL_set_app_data(u->ssl, u);
    u->tls_gen = u->w->node_tls_gen;
    if (pt->tls_sess_gen != u->tls_gen)
        px_tls_node_sessions_free(pt);
    if (pt->n_tls_sess > 0) {
        SSL_SESSION *sess = pt->tls_sess[pt->n_tls_sess - 1];

        SSL_set_session(u->ssl, sess);
        /* A TLS 1.3 session resumes once; a TLS 1.2 one stays for the next connections. */
        if (SSL_SESSION_get_protocol_version(sess) >= TLS1_3_VERSION) {
            SSL_SESSION_free(sess);
            pt->n_tls_sess--;
        }
    }
    u->tls_hs = true;
    return 0;
}

enum px_rc
px_tls_upstream_handshake(struct px_upstream *u, char *why, size_t size)
{
    long vr;
    int r, err;

    ERR_clear_error();
    r = SSL_do_handshake(u->ssl);
    if (r == 1) {
        u->tls_hs = false;
        XF_STAT_INC(u->w->stats->tls_node_handshakes);
        if (SSL_session_reused(u->ssl))
            XF_STAT_INC(u->w->stats->tls_node_resumed);
        return PX_OK;
    }
    err = SSL_get_error(u->ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        u->tls_want_write = err == SSL_ERROR_WANT_WRITE;
        return PX_AGAIN;
    }
    XF_STAT_INC(u->w->stats->tls_node_failed);
    vr = SSL_get_verify_result(u->ssl);
    if (vr != X509_V_OK)
        snprintf(why, size, "certificate verify failed: %s", X509_verify_cert_error_string(vr));
    else if (err == SSL_ERROR_SYSCALL || ERR_peek_last_error() == 0)
        snprintf(why, size, "%s", errno != 0 ? strerror(errno) : "the node closed the connection");
    else
        snprintf(why, size, "%s", px_tls_reason());
    return PX_CLOSE;
}

bool
px_tls_upstream_idle_read(struct px_upstream *u)
{
    char b;
    int n;

    /* Only post-handshake messages (TLS 1.3 session tickets) may come while idle: SSL_read
     * takes them and asks for more. Anything else ends the connection. */
    ERR_clear_error();
    n = SSL_read(u->ssl, &b, 1);
    return n <= 0 && SSL_get_error(u->ssl, n) == SSL_ERROR_WANT_READ;
}

void
px_tls_upstream_close(struct px_upstream *u, bool clean)
{
    if (u->ssl == NULL)
        return;
    if (clean && !u->tls_hs) {
        ERR_clear_error();
        SSL_shutdown(u->ssl);
    }
    /* OpenSSL forgets (marks not resumable) the session of a connection freed without a
     * close_notify sent; a node closing first after its response is normal, and its session is
     * kept to resume the next connection. */
    if (!u->tls_hs)
        SSL_set_shutdown(u->ssl, SSL_get_shutdown(u->ssl) | SSL_SENT_SHUTDOWN);
    SSL_set_app_data(u->ssl, NULL);
    SSL_free(u->ssl);
    u->ssl = NULL;
}

/* --- what is loaded --- */

void
px_tls_show(SSL_CTX *ctx, const char *listener, void (*line)(void *arg, const char *text),
            void *arg)
{
    const struct px_tls_sni *t = ctx != NULL ? SSL_CTX_get_ex_data(ctx, px_tls_sni_index) : NULL;
    time_t now = time(NULL);

    for (size_t i = 0; t != NULL && i < t->n_info; i++) {
        const struct px_tls_info *in = &t->info[i];
        char when[32] = "-", text[1024];
        struct tm tm;

        if (in->not_after != 0 && gmtime_r(&in->not_after, &tm) != NULL)
            strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        snprintf(text, sizeof(text), "%s %s %s %s %lld", listener, in->path, in->names, when,
                 (long long)((in->not_after - now) / 86400));
        line(arg, text);
    }
}

void
px_tls_flush(SSL_CTX *ctx)
{
    if (ctx != NULL)
        SSL_CTX_flush_sessions(ctx, (long)time(NULL));
}

void
px_tls_warn_expiry(SSL_CTX *ctx)
{
    const struct px_tls_sni *t = ctx != NULL ? SSL_CTX_get_ex_data(ctx, px_tls_sni_index) : NULL;
    time_t now = time(NULL);

    for (size_t i = 0; t != NULL && i < t->n_info; i++) {
        long long left = (long long)(t->info[i].not_after - now) / 86400;

        if (t->info[i].not_after < now)
            XF_LOG(XF_LOG_WARN, "tls",
                   "event=certificate_expired cert=%s days_ago=%lld note=\"clients will refuse "
                   "it: renew it, then xfctl tls reload\"",
                   t->info[i].path, -left);
        else if (left < PX_TLS_EXPIRY_WARN_DAYS)
            XF_LOG(XF_LOG_WARN, "tls", "event=certificate_expires_soon cert=%s days_left=%lld",
                   t->info[i].path, left);
    }
}
