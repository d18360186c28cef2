/* admin/adm_takeover.c -- binary upgrade over the admin socket: the old process hands its
 * listening sockets (SCM_RIGHTS) and its state to the new one (crossfade --takeover), which
 * serves on the same sockets, so no connection is refused; the old one then finishes its own.
 *
 * The exchange, on one admin connection:
 *   new: "takeover\n"
 *   old: "ok: takeover pid PID fds N state BYTES[ secret HEX]\n", then
 *        ceil(N / ADM_TAKEOVER_FDS_PER_MSG) bytes ".", each carrying that many sockets, then the
 *        state (BYTES, as the state file holds it). The secret is the TLS ticket secret: the new
 *        process resumes the sessions the old one's clients hold. The admin socket is the
 *        process's own (mode 0600 by default), and whoever may take its listening sockets may
 *        have it. State changes are refused from then on.
 *   new: "takeover done\n" once it is ready to accept (or closes the connection: it failed)
 *   old: "ok: ...\n\n", stops accepting and finishes; the new one moves its admin socket over
 *        the old one's.
 */
#include "admin/adm.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/* Sockets per message: below the kernel's SCM_MAX_FD (253). */
#define ADM_TAKEOVER_FDS_PER_MSG 250u
/* How long the new process waits for each answer of the old one. */
#define ADM_TAKEOVER_IO_MS 10000

/* ------------------------------------------------------------------ the old process */

enum adm_result
adm_cmd_takeover(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                 struct adm_reply *r)
{
    if (a->n == 2) {
        if (!adm_span_is(a->v[1], "done"))
            return adm_reply_error(r, "usage: takeover [done]");
        if (!st->handover || st->handed || peer->id != st->handover_client)
            return adm_reply_error(r, "no takeover is under way on this connection");
        /* Told to stop meanwhile (SIGTERM): the sockets close with this process. */
        if (st->status != NULL && strcmp(st->status(st->status_arg), "serving") != 0)
            return adm_reply_error(r, "this crossfade is %s: the takeover is off",
                                   st->status(st->status_arg));
        st->handed = true;
        xf_fatal_forget(); /* a crash from now on must not remove the new process's socket */
        XF_LOG(XF_LOG_INFO, "admin",
               "event=takeover_done new_pid=%ld note=\"this process stops accepting and "
               "finishes its connections\"",
               st->handover_pid);
        adm_reply_line(r, "ok: pid %ld stops accepting and finishes its connections",
                       (long)getpid());
        if (st->handed_over != NULL)
            st->handed_over(st->takeover_arg, st->handover_pid);
        return ADM_OK;
    }
    if (st->listen_fds == NULL)
        return adm_reply_error(r, "takeover is not available in this process");
    if (st->handover)
        return adm_reply_error(r, "a takeover by pid %ld is under way already", st->handover_pid);
    if (st->listen_fds(st->takeover_arg, NULL, 0) == SIZE_MAX)
        return adm_reply_error(r, "a reload is under way: try again once it has finished");
    if (st->status != NULL && strcmp(st->status(st->status_arg), "serving") != 0)
        return adm_reply_error(r, "this crossfade is %s: nothing to take over",
                               st->status(st->status_arg));
    return ADM_TAKEOVER;
}

/* Sends all of buf on a socket the client waits on (a few bytes: the buffer is empty). */
static int
adm_takeover_sendmsg(int fd, const char *buf, size_t len, const int *fds, size_t n_fds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * ADM_TAKEOVER_FDS_PER_MSG)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n;

    if (n_fds > 0) {
        struct cmsghdr *cm;

        memset(&ctl, 0, sizeof(ctl));
        msg.msg_control = ctl.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
        cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
    }
    do
        n = sendmsg(fd, &msg, MSG_NOSIGNAL);
    while (n == -1 && errno == EINTR);
    return n == (ssize_t)len ? 0 : -1;
}

int
adm_takeover_send(struct adm_state *st, const struct adm_peer *peer, int fd, struct evbuffer *out,
                  struct xf_err *err)
{
    size_t cap = 64, n, len = 0;
    int *fds = NULL;
    char *text = NULL, head[128 + 2 * ADM_TAKEOVER_SECRET_MAX];
    unsigned char secret[ADM_TAKEOVER_SECRET_MAX];
    size_t secret_len = 0;
    int hl;

    for (;;) {
        int *more = realloc(fds, cap * sizeof(*fds));

        if (more == NULL)
            goto oom;
        fds = more;
        n = st->listen_fds(st->takeover_arg, fds, cap);
        if (n <= cap)
            break;
        cap = n;
    }
    /* What was handed to the writer is on disk before the new process writes the file. */
    if (st->saver != NULL)
        adm_saver_flush(st->saver);
    text = adm_state_text(st, &len);
    if (text == NULL)
        goto oom;
    hl = snprintf(head, sizeof(head), "ok: takeover pid %ld fds %zu state %zu", (long)getpid(), n,
                  len);
    if (st->secret != NULL)
        secret_len = XF_MIN(st->secret(st->secret_arg, secret, sizeof(secret)), sizeof(secret));
    if (secret_len > 0) {
        hl += snprintf(head + hl, sizeof(head) - (size_t)hl, " secret ");
        for (size_t i = 0; i < secret_len; i++)
            hl += snprintf(head + hl, sizeof(head) - (size_t)hl, "%02x", secret[i]);
        OPENSSL_cleanse(secret, sizeof(secret));
    }
    head[hl++] = '\n';
    hl = adm_takeover_sendmsg(fd, head, (size_t)hl, NULL, 0);
    OPENSSL_cleanse(head, sizeof(head));
    if (hl == -1)
        goto send_failed;
    for (size_t i = 0; i < n; i += ADM_TAKEOVER_FDS_PER_MSG)
        if (adm_takeover_sendmsg(fd, ".", 1, fds + i, XF_MIN(n - i, ADM_TAKEOVER_FDS_PER_MSG)) ==
            -1)
            goto send_failed;
    if (evbuffer_add(out, text, len) == -1)
        goto oom;
    /* From now on this process's state is the new one's: it changes no more here. */
    st->handover = true;
    st->handed = false;
    st->handover_client = peer->id;
    st->handover_pid = peer->pid;
    if (st->ramp_timer != NULL)
        event_del(st->ramp_timer);
    XF_LOG(XF_LOG_INFO, "admin",
           "event=takeover_begin new_pid=%ld sockets=%zu state_bytes=%zu note=\"state changes are "
           "refused until it takes over, or gives up\"",
           peer->pid, n, len);
    free(fds);
    free(text);
    return 0;
send_failed:
    xf_err_set(err, "sending the sockets: %s", strerror(errno));
    free(fds);
    free(text);
    return -1;
oom:
    xf_err_set(err, "out of memory");
    free(fds);
    free(text);
    return -1;
}

void
adm_takeover_abandon(struct adm_state *st, const char *why)
{
    if (!st->handover || st->handed)
        return;
    st->handover = false;
    XF_LOG(XF_LOG_WARN, "admin",
           "event=takeover_abandoned new_pid=%ld reason=%s note=\"this process goes on serving; "
           "state changes are accepted again\"",
           st->handover_pid, why);
    adm_ramp_tick(st); /* a ramp catches up with its schedule and its timer runs again */
}

/* ------------------------------------------------------------------ the new process */

/* Reads what the old process sent so far into t->... : bytes into *buf, sockets into t->fds.
 * Returns the bytes read (0 at the end of the connection), or -1 with errno. */
static ssize_t
adm_takeover_recv(struct adm_takeover *t, char *buf, size_t cap, size_t *fd_cap)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * 253)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = buf, .iov_len = cap};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = ctl.buf,
                         .msg_controllen = sizeof(ctl.buf)};
    ssize_t n;

    do
        n = recvmsg(t->fd, &msg, MSG_CMSG_CLOEXEC);
    while (n == -1 && errno == EINTR);
    if (n == -1)
        return -1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
        size_t k;

        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        if (t->n_fds + k > *fd_cap) {
            size_t want = XF_MAX(*fd_cap * 2, t->n_fds + k);
            int *more = realloc(t->fds, want * sizeof(*more));

            if (more == NULL) {
                /* Not kept: closed, so that nothing leaks; the takeover fails below. */
                for (size_t i = 0; i < k; i++)
                    close(((int *)CMSG_DATA(cm))[i]);
                errno = ENOMEM;
                return -1;
            }
            t->fds = more;
            *fd_cap = want;
        }
        memcpy(t->fds + t->n_fds, CMSG_DATA(cm), k * sizeof(int));
        t->n_fds += k;
    }
    if (msg.msg_flags & MSG_CTRUNC) {
        errno = EPROTO;
        return -1;
    }
    return n;
}

/* The optional " secret HEX" of the head line (len bytes) into t->secret: 0, or -1 when it is
 * there but not an even number of hexadecimal digits that fits. */
static int
adm_takeover_secret(struct adm_takeover *t, const char *line, size_t len)
{
    const char *at = memmem(line, len, " secret ", 8), *end = line + len;

    if (at == NULL)
        return 0; /* an older crossfade: its clients make full handshakes once */
    at += 8;
    if ((size_t)(end - at) % 2 != 0 || (size_t)(end - at) / 2 > sizeof(t->secret))
        return -1;
    for (t->secret_len = 0; at < end; at += 2) {
        int hi = OPENSSL_hexchar2int((unsigned char)at[0]);
        int lo = OPENSSL_hexchar2int((unsigned char)at[1]);

        if (hi < 0 || lo < 0)
            return -1;
        t->secret[t->secret_len++] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

struct adm_takeover *
adm_takeover_begin(const char *path, struct xf_err *err)
{
    struct adm_takeover *t = calloc(1, sizeof(*t));
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct timeval tv = {ADM_TAKEOVER_IO_MS / 1000, 0};
    size_t fd_cap = 0, len = 0, cap = 4096, want_fds = 0, state_len = 0, dots = 0;
    char *buf = malloc(cap), *nl = NULL;
    long pid = 0;

    if (t == NULL || buf == NULL) {
        free(t);
        free(buf);
        xf_err_set(err, "out of memory");
        return NULL;
    }
    t->fd = -1;
    if (strlen(path) >= sizeof(sun.sun_path)) {
        xf_err_set(err, "admin.socket %s: the path is too long", path);
        goto fail;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    t->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (t->fd == -1 || setsockopt(t->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1 ||
        setsockopt(t->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == -1) {
        xf_err_set(err, "socket: %s", strerror(errno));
        goto fail;
    }
    if (connect(t->fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
        xf_err_set(err,
                   "no crossfade answers on the admin socket %s (%s): there is nothing to take "
                   "over; start without --takeover",
                   path, strerror(errno));
        goto fail;
    }
    if (send(t->fd, "takeover\n", 9, MSG_NOSIGNAL) != 9) {
        xf_err_set(err, "admin socket %s: send: %s", path, strerror(errno));
        goto fail;
    }
    for (;;) {
        ssize_t n;

        if (nl == NULL && (nl = memchr(buf, '\n', len)) != NULL) {
            size_t head = (size_t)(nl - buf) + 1;

            if (strncmp(buf, "ok: takeover ", 13) != 0) {
                /* An error reply: "error: ...". */
                xf_err_set(err, "the running crossfade refused: %.*s", (int)(head - 1), buf);
                goto fail;
            }
            if (sscanf(buf, "ok: takeover pid %ld fds %zu state %zu", &pid, &want_fds,
                       &state_len) != 3) {
                xf_err_set(err, "the running crossfade answered %.*s", (int)(head - 1), buf);
                goto fail;
            }
            if (adm_takeover_secret(t, buf, head - 1) == -1) {
                xf_err_set(err, "the running crossfade sent a secret that is not hexadecimal");
                goto fail;
            }
            dots = (want_fds + ADM_TAKEOVER_FDS_PER_MSG - 1) / ADM_TAKEOVER_FDS_PER_MSG;
            OPENSSL_cleanse(buf, head);
            memmove(buf, buf + head, len - head);
            len -= head;
        }
        if (nl != NULL && len >= dots + state_len && t->n_fds >= want_fds)
            break;
        if (len == cap) {
            char *more = realloc(buf, cap * 2);

            if (more == NULL) {
                xf_err_set(err, "out of memory");
                goto fail;
            }
            buf = more;
            cap *= 2;
        }
        n = adm_takeover_recv(t, buf + len, cap - len, &fd_cap);
        if (n <= 0) {
            xf_err_set(err, "admin socket %s: %s", path,
                       n == 0 ? "the running crossfade closed the connection" : strerror(errno));
            goto fail;
        }
        len += (size_t)n;
    }
    for (size_t i = 0; i < dots; i++)
        if (buf[i] != '.') {
            xf_err_set(err, "the running crossfade's answer is not the one expected");
            goto fail;
        }
    if (t->n_fds != want_fds || len != dots + state_len) {
        xf_err_set(err, "the running crossfade sent %zu sockets and %zu bytes, not %zu and %zu",
                   t->n_fds, len - XF_MIN(len, dots), want_fds, state_len);
        goto fail;
    }
    t->state = malloc(state_len + 1);
    if (t->state == NULL) {
        xf_err_set(err, "out of memory");
        goto fail;
    }
    memcpy(t->state, buf + dots, state_len);
    t->state[state_len] = '\0';
    t->state_len = state_len;
    t->old_pid = pid;
    free(buf);
    return t;
fail:
    free(buf);
    adm_takeover_free(t);
    return NULL;
}

int
adm_takeover_done(struct adm_takeover *t, struct xf_err *err)
{
    char buf[512];
    size_t len = 0;

    if (send(t->fd, "takeover done\n", 14, MSG_NOSIGNAL) != 14) {
        xf_err_set(err, "telling pid %ld to stop: %s", t->old_pid, strerror(errno));
        return -1;
    }
    while (len < sizeof(buf) - 1 && (len < 2 || memcmp(buf + len - 2, "\n\n", 2) != 0)) {
        ssize_t n = recv(t->fd, buf + len, sizeof(buf) - 1 - len, 0);

        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0) {
            xf_err_set(err, "pid %ld did not answer: %s", t->old_pid,
                       n == 0 ? "it closed the connection" : strerror(errno));
            return -1;
        }
        len += (size_t)n;
    }
    buf[len] = '\0';
    if (strncmp(buf, "ok", 2) != 0) {
        buf[strcspn(buf, "\n")] = '\0';
        xf_err_set(err, "pid %ld answered %s", t->old_pid, buf);
        return -1;
    }
    return 0;
}

void
adm_takeover_free(struct adm_takeover *t)
{
    if (t == NULL)
        return;
    if (t->fd != -1)
        close(t->fd);
    for (size_t i = 0; i < t->n_fds; i++)
        if (t->fds[i] != -1)
            close(t->fds[i]);
    free(t->fds);
    free(t->state);
    OPENSSL_cleanse(t->secret, sizeof(t->secret));
    free(t);
}
