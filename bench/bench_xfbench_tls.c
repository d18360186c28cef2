/* bench/bench_xfbench_tls.c -- xfbench's https: the client context, each connection's SSL, the
 * certificate check before the load. */
#include "bench/bench_xfbench.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

SSL_CTX *
bench_xfb_tls_ctx_new(const struct bench_xfb_opts *o, struct xf_err *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL) {
        xf_err_set(err, "cannot create the TLS context");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* A server that closes without close_notify (after Connection: close) ends the stream. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_NO_RENEGOTIATION);
    /* A retried SSL_write may point into another place of the body; partial writes are counted
     * like short sends. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* One read(2) per response rather than one per record header and one per record: what is
     * read ahead is held by OpenSSL, which the reader looks at (SSL_has_pending) before it
     * waits for the socket again. */
    SSL_CTX_set_read_ahead(ctx, 1);
    /*
     * No client cache: each worker keeps the session of its last connection itself
     * (bench_xfb_tls_keep_session). With SSL_SESS_CACHE_CLIENT (which the new-session callback
     * needs) OpenSSL marks a TLS 1.3 session not resumable once a handshake used it, so a session
     * shared by a worker's connections would alternate resumed and full handshakes.
     */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (o->insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return ctx;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (o->ca_file == NULL) {
        if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            xf_err_set(err, "cannot use the system's CA store");
            goto fail;
        }
        return ctx;
    }
    {
        FILE *f = fopen(o->ca_file, "r");
        if (f == NULL) {
            xf_err_set(err, "--ca %s: %s", o->ca_file, strerror(errno));
            goto fail;
        }
        fclose(f);
    }
    if (SSL_CTX_load_verify_file(ctx, o->ca_file) != 1) {
        xf_err_set(err, "--ca %s: no CA certificate could be read from it (expected PEM)",
                   o->ca_file);
        goto fail;
    }
    return ctx;
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

SSL *
bench_xfb_tls_new(SSL_CTX *ctx, const struct bench_xfb_opts *o, int fd, SSL_SESSION *sess)
{
    SSL *ssl = SSL_new(ctx);

    if (ssl == NULL)
        goto fail;
    if (SSL_set_fd(ssl, fd) != 1)
        goto fail;
    SSL_set_connect_state(ssl);
    /* RFC 6066 3: no SNI for an address. */
    if (!o->tls_name_is_ip && SSL_set_tlsext_host_name(ssl, o->tls_name) != 1)
        goto fail;
    if (!o->insecure) {
        if (o->tls_name_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), o->tls_name) != 1
                              : SSL_set1_host(ssl, o->tls_name) != 1)
            goto fail;
    }
    if (sess != NULL && SSL_set_session(ssl, sess) != 1)
        goto fail;
    return ssl;
fail:
    ERR_clear_error();
    SSL_free(ssl);
    return NULL;
}

void
bench_xfb_tls_keep_session(struct bench_xfb_worker *w, SSL *ssl)
{
    SSL_SESSION *sess;

    if (!SSL_is_init_finished(ssl) || (sess = SSL_get_session(ssl)) == NULL || sess == w->sess)
        return;
    /* A TLS 1.3 session is only worth offering with a ticket (they come after the handshake). */
    if (!SSL_SESSION_is_resumable(sess) ||
        (SSL_SESSION_get_protocol_version(sess) == TLS1_3_VERSION && !SSL_SESSION_has_ticket(sess)))
        return;
    SSL_SESSION_up_ref(sess);
    SSL_SESSION_free(w->sess);
    w->sess = sess;
}

enum bench_xfb_err
bench_xfb_tls_reason(SSL *ssl, int rc, const struct bench_xfb_opts *o, char *buf, size_t size)
{
    int e = SSL_get_error(ssl, rc), saved = errno;
    unsigned long code = ERR_peek_last_error();
    long v = SSL_get_verify_result(ssl);
    enum bench_xfb_err kind = BENCH_XFB_ERR_TLS;

    if (!o->insecure && v != X509_V_OK) {
        /* Set only when verification ran and failed: hostname mismatch included. */
        snprintf(buf, size, "certificate verify failed: %s", X509_verify_cert_error_string(v));
        kind = BENCH_XFB_ERR_TLS_VERIFY;
    } else if (e == SSL_ERROR_SSL && code != 0) {
        const char *why = ERR_reason_error_string(code);
        snprintf(buf, size, "%s", why != NULL ? why : "TLS error");
    } else if (e == SSL_ERROR_SYSCALL && saved != 0) {
        snprintf(buf, size, "%s", strerror(saved));
        kind = SSL_is_init_finished(ssl) ? BENCH_XFB_ERR_RESET : BENCH_XFB_ERR_TLS;
    } else if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN) {
        snprintf(buf, size, "the server closed the connection");
        kind = SSL_is_init_finished(ssl) ? BENCH_XFB_ERR_RESET : BENCH_XFB_ERR_TLS;
    } else {
        snprintf(buf, size, "TLS error %d", e);
    }
    ERR_clear_error();
    return kind;
}

/* Waits until fd is ready for `events` or the deadline (monotonic ns) passes: 0, or -1. */
static int
bench_xfb_tls_wait(int fd, short events, uint64_t deadline)
{
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = events};
        uint64_t now = bench_xfb_now_ns();
        int n;

        if (now >= deadline)
            return -1;
        n = poll(&pfd, 1, (int)((deadline - now + 999999) / 1000000));
        if (n > 0)
            return 0;
        if (n == -1 && errno != EINTR)
            return -1;
    }
}

/* Connects fd to the URL's address within the deadline: 0, or -1 with err. */
static int
bench_xfb_tls_probe_connect(const struct bench_xfb_opts *o, int fd, uint64_t deadline,
                            struct xf_err *err)
{
    int soerr = 0;
    socklen_t len = sizeof(soerr);

    if (connect(fd, (const struct sockaddr *)&o->addr, o->addr_len) == 0)
        return 0;
    if (errno != EINPROGRESS) {
        xf_err_set(err, "connect: %s", strerror(errno));
        return -1;
    }
    if (bench_xfb_tls_wait(fd, POLLOUT, deadline) == -1) {
        xf_err_set(err, "connect: timed out");
        return -1;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1 || soerr != 0) {
        xf_err_set(err, "connect: %s", strerror(soerr != 0 ? soerr : errno));
        return -1;
    }
    return 0;
}

/*
 * Closes the probe's TLS cleanly: close_notify, then what the server still sends (TLS 1.3 tickets,
 * its own close) is read until it closes, for at most a second. Closing at once could reset the
 * connection while the server writes its tickets: a failed handshake in its counts.
 */
static void
bench_xfb_tls_probe_close(SSL *ssl, int fd, uint64_t deadline)
{
    char buf[4096];

    SSL_shutdown(ssl);
    deadline = XF_MIN(deadline, bench_xfb_now_ns() + UINT64_C(1000000000));
    for (;;) {
        int n = SSL_read(ssl, buf, sizeof(buf));
        if (n > 0)
            continue;
        if (SSL_get_error(ssl, n) != SSL_ERROR_WANT_READ ||
            bench_xfb_tls_wait(fd, POLLIN, deadline) == -1)
            break;
    }
    ERR_clear_error();
}

/* What to do about a certificate that failed verification with `v`. */
static const char *
bench_xfb_tls_hint(const struct bench_xfb_opts *o, long v)
{
    if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH)
        return "the certificate does not hold the URL's host; --insecure does not verify";
    if (o->ca_file != NULL)
        return "is the certificate signed by a CA of --ca? --insecure does not verify";
    return "give the server's CA with --ca FILE, or --insecure not to verify";
}

int
bench_xfb_tls_probe(struct bench_xfb_run *run, struct xf_err *err)
{
    const struct bench_xfb_opts *o = run->o;
    uint64_t deadline = bench_xfb_now_ns() + o->timeout_ms * 1000000u;
    SSL *ssl = NULL;
    int fd, rc = 1;

    fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        xf_err_set(err, "socket: %s", strerror(errno));
        return 1;
    }
    if (bench_xfb_tls_probe_connect(o, fd, deadline, err) == -1)
        goto out;
    if ((ssl = bench_xfb_tls_new(run->ssl_ctx, o, fd, NULL)) == NULL) {
        xf_err_set(err, "out of memory");
        goto out;
    }
    for (;;) {
        int n = SSL_do_handshake(ssl), e;
        char why[256];

        if (n == 1)
            break;
        e = SSL_get_error(ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (bench_xfb_tls_wait(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline) ==
                -1) {
                xf_err_set(err, "TLS handshake: not complete within --timeout");
                goto out;
            }
            continue;
        }
        if (bench_xfb_tls_reason(ssl, n, o, why, sizeof(why)) != BENCH_XFB_ERR_TLS_VERIFY) {
            xf_err_set(err, "TLS handshake failed: %s", why);
            atomic_store(&run->tls_warned, 1); /* said once: the run need not say it again */
            goto out;
        }
        rc = -1;
        xf_err_set(err, "%s (%s)", why, bench_xfb_tls_hint(o, SSL_get_verify_result(ssl)));
        goto out;
    }
    run->tls_version = SSL_get_version(ssl);
    run->tls_cipher = SSL_get_cipher_name(ssl);
    bench_xfb_tls_probe_close(ssl, fd, deadline);
    rc = 0;
out:
    SSL_free(ssl);
    close(fd);
    return rc;
}
