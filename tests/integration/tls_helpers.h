/* tests/integration/tls_helpers.h -- the TLS half of the harness: certificates made by the openssl
 * tool, crossfade with a TLS listener, and a TLS client on OpenSSL's C API. */
#ifndef TLS_HELPERS_H
#define TLS_HELPERS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "tests/integration/harness.h"

/*
 * A suite that uses the TLS client is declared with `.init = h_setup, .fini = ht_teardown`:
 * ht_teardown frees the sessions the client kept, then calls h_teardown. Strings and results the
 * functions below return are harness-owned (they live until the end of the test), as in
 * harness.h.
 */
void ht_teardown(void);

/* --- files and tools --- */

/* The path of a program in $PATH, or NULL: h_run executes a path, not a name. */
const char *ht_tool(const char *name);
/* `text` with the first `from` replaced by `to`; asserts that `from` is there. */
const char *ht_replace_once(const char *text, const char *from, const char *to);

/*
 * Makes certificates in the test's scratch directory with one shell running the openssl tool
 * (one process, whatever their number). `list` is shell lines calling two functions:
 *   ca NAME 'COMMON NAME'                      a self-signed CA (NAME.pem, NAME.key)
 *   leaf NAME CA SUBJECT KEYOPTS EXT SERIAL    a certificate for SUBJECT ("/CN=a/O=b") signed by
 *                                              CA, with the extensions EXT (lines of openssl.cnf)
 * with these variables: $ec (an ECDSA P-256 key), $srv and $cli (the extensions of a server and of
 * a client certificate). Every certificate is valid 30 days. Asserts that it works.
 */
void ht_certs_make(const char *list);
/* The certificate NAME.pem and the key NAME.key that ht_certs_make made. */
const char *ht_pem(const char *name);
const char *ht_key(const char *name);

/* --- crossfade with a TLS listener --- */

struct ht_cert {
    const char *cert, *key; /* paths */
};

/* The certificate NAME.pem with its key NAME.key. */
struct ht_cert ht_made(const char *name);

/* A TLS listener; anything left 0 is not written (crossfade's default). */
struct ht_listen {
    struct ht_cert certs[4]; /* the first is the default; a NULL cert ends the list */
    const char *protocols;   /* written as is: "[TLSv1.3]" */
    const char *client_ca;   /* a path */
    const char *verify_client;
    unsigned handshake_ms; /* timeouts.tls_handshake */
};

/*
 * The harness's config for `o` (h_proxy_write_config, its plain listener on plain_port) with the
 * TLS listener `t` on tls_port as listen[0], written to `file`. The certificates are written in
 * block style, one key a line, so that a line and a column name each file.
 */
const char *ht_config_write(const char *file, const struct ht_listen *t, int tls_port,
                            int plain_port, const struct h_proxy_opts *o);

struct ht_proxy {
    struct h_proxy *p; /* p->port: the plain listener; stopped by h_proxy_finish */
    int tls_port;
    int adm; /* an admin connection */
};

/*
 * Starts a crossfade called `name` with the config of ht_config_write and waits until both of its
 * listeners listen and it serves. "crossfade" has the harness's files (crossfade.yaml,
 * crossfade.log, admin.sock, access.log); another name has its own (NAME.yaml, NAME.log,
 * NAME.sock, NAME-access.log), so that two can run in one test. Nothing connects to the TLS port
 * on the way: the TLS counters of `show stats` start at 0.
 */
struct ht_proxy *ht_proxy_start(const char *name, const struct ht_listen *t,
                                const struct h_proxy_opts *o);

/* --- the test's TLS client --- */

struct ht_opts {
    const char *sni;       /* the server name sent; NULL: none */
    int min_version;       /* TLS1_2_VERSION, TLS1_3_VERSION; 0: OpenSSL's default */
    int max_version;       /* likewise */
    const char *cert;      /* a client certificate (and `key`); NULL: none */
    const char *key;       /* the client certificate's key */
    SSL_SESSION *session;  /* offered for resumption; NULL: none */
    bool no_tickets;       /* SSL_OP_NO_TICKET: a TLS 1.2 session resumes from the server's cache */
    const char *target;    /* of the GET; NULL: "/" */
    const char *more_head; /* more header lines ("X-A: b\r\n"); NULL: none */
};

struct ht_result {
    bool handshake;       /* SSL_connect completed */
    const char *error;    /* why the exchange stopped short of a response; NULL when it did not */
    int version;          /* the version agreed (TLS1_2_VERSION...) */
    const char *cn;       /* the common name of the certificate the server presented */
    bool reused;          /* the session offered was resumed */
    bool cert_requested;  /* the server asked for a client certificate (sent its CA names) */
    int status;           /* the HTTP status of the response; 0: none */
    const char *body;     /* the response's body ("" when none) */
    size_t body_len;      /* its length */
    SSL_SESSION *session; /* the session to resume next (freed at teardown); NULL: none */
};

/* A TCP connection to 127.0.0.1:port whose reads and writes give up after 5 s (asserts). */
int ht_connect_tcp(int port);
/* Why the last OpenSSL call on ssl, which returned r, failed. */
const char *ht_why(SSL *ssl, int r);
/* A client context as ht_get makes it: no verification, a close ends a response, the versions
 * and the client certificate of `o`. The caller frees it. */
SSL_CTX *ht_client_ctx(const struct ht_opts *o);
/*
 * One connection to 127.0.0.1:port: the TLS handshake as `o` says, then (when it completed) GET
 * o->target with Connection: close, and the response read until the server closes. Never
 * asserts on what the server does: the result says it, the caller judges.
 */
struct ht_result ht_get(int port, const struct ht_opts *o);
/* ht_get that must be served: asserts a handshake and a whole 200, and returns the result. */
struct ht_result ht_served(int port, const struct ht_opts *o, const char *what);

#endif
