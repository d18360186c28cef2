/* proxy/px_reexec.c -- `reexec`: a binary upgrade this process starts itself.
 *
 * The new process is the binary installed at this one's path (as it was when this one started:
 * the file may have been replaced since), run with `-c FILE --takeover --status-fd 3`. It is this
 * process's child, so it runs in the same cgroup: under systemd it belongs to the service, and the
 * MAINPID= this process sends when it hands over is accepted. It takes the sockets and the state
 * over the admin socket (adm_takeover.c) exactly as a --takeover started by hand; why it failed,
 * if it did, comes back on fd 3 (a pipe), for the reply.
 */
#include "proxy/px.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "admin/adm.h"

extern char **environ;

/* From the start to the handover's beginning (`takeover`): the configuration read and the
 * listeners bound. The handover has its own deadline in the old process (adm_server.c). */
#define PX_REEXEC_BEGIN_MS 45000
/* While the handover is under way at that deadline: look again after this long. */
#define PX_REEXEC_AGAIN_MS 5000
/* The fd the new process writes its failure to. */
#define PX_REEXEC_STATUS_FD 3

static const char px_reexec_deleted[] = " (deleted)";

int
px_reexec_init(struct px_ctl *ctl, struct xf_err *err)
{
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
    size_t dl = sizeof(px_reexec_deleted) - 1;

    ctl->reexec_fd = -1;
    if (n <= 0) {
        /* No /proc: everything else works; `reexec` says it cannot. */
        XF_LOG(XF_LOG_WARN, "proxy", "event=reexec_unavailable reason=\"/proc/self/exe: %s\"",
               strerror(errno));
        return 0;
    }
    path[n] = '\0';
    /* Replaced between exec and here: the path is still where the binary is installed. */
    if ((size_t)n > dl && strcmp(path + n - dl, px_reexec_deleted) == 0)
        path[n - dl] = '\0';
    ctl->exe = strdup(path);
    if (ctl->exe == NULL) {
        xf_err_set(err, "out of memory");
        return -1;
    }
    return 0;
}

/* The outcome goes to the waiting `reexec` from the loop, never from inside an admin command
 * (the handover ends inside `takeover done`'s). */
static void px_reexec_finish(struct px_ctl *ctl, bool ok, const char *fmt, ...) XF_PRINTF(3, 4);

static void
px_reexec_finish(struct px_ctl *ctl, bool ok, const char *fmt, ...)
{
    va_list ap;

    if (ctl->reexec_done == NULL || ctl->reexec_finished)
        return;
    ctl->reexec_finished = true;
    va_start(ap, fmt);
    vsnprintf(ctl->reexec_text, sizeof(ctl->reexec_text), fmt, ap);
    va_end(ap);
    ctl->reexec_ok = ok;
    if (ctl->reexec_fd != -1) {
        close(ctl->reexec_fd);
        ctl->reexec_fd = -1;
    }
    if (ctl->ev_reexec != NULL)
        event_del(ctl->ev_reexec);
    XF_LOG(ok ? XF_LOG_INFO : XF_LOG_ERR, "proxy", "event=reexec result=%s pid=%ld detail=\"%s\"",
           ok ? "ok" : "failed", ctl->reexec_pid, ctl->reexec_text);
    event_active(ctl->ev_reexec_reply, EV_TIMEOUT, 1);
}

static void
px_reexec_on_reply(evutil_socket_t fd, short what, void *arg)
{
    struct px_ctl *ctl = arg;
    void (*done)(void *, bool, const char *) = ctl->reexec_done;

    XF_UNUSED(fd);
    XF_UNUSED(what);
    if (done == NULL)
        return;
    ctl->reexec_done = NULL;
    done(ctl->reexec_done_arg, ctl->reexec_ok, ctl->reexec_text);
}

/* The new process has not begun the handover in time: stopped (it has accepted nothing). While
 * a handover to it is under way, the handover's own deadline decides. */
static void
px_reexec_on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct px_ctl *ctl = arg;
    struct timeval again = {PX_REEXEC_AGAIN_MS / 1000, 0};

    XF_UNUSED(fd);
    XF_UNUSED(what);
    if (ctl->reexec_pid == 0 || ctl->reexec_finished)
        return;
    if (ctl->adm != NULL && adm_server_handover_pid(ctl->adm) == ctl->reexec_pid) {
        event_add(ctl->ev_reexec, &again);
        return;
    }
    kill((pid_t)ctl->reexec_pid, SIGKILL);
    px_reexec_finish(ctl, false,
                     "the new process (pid %ld) did not begin the takeover within %d s: stopped; "
                     "this process goes on serving",
                     ctl->reexec_pid, PX_REEXEC_BEGIN_MS / 1000);
}

/* Sets up the child's side: fd 3 the pipe, nothing else inherited but 0-2, default signals. */
static int
px_reexec_spawn(struct px_ctl *ctl, int wfd, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, dfl;
    char fdtext[16];
    int rc;
    char *argv[] = {ctl->exe, "-c", ctl->cfg->path, "--takeover", "--status-fd", fdtext, NULL};

    snprintf(fdtext, sizeof(fdtext), "%d", PX_REEXEC_STATUS_FD);
    sigemptyset(&none);
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGPIPE);
    sigaddset(&dfl, SIGCHLD);
    sigaddset(&dfl, SIGHUP);
    sigaddset(&dfl, SIGTERM);
    sigaddset(&dfl, SIGINT);
    sigaddset(&dfl, SIGUSR1);
    if ((rc = posix_spawn_file_actions_init(&fa)) != 0)
        return rc;
    if ((rc = posix_spawnattr_init(&attr)) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return rc;
    }
    rc = posix_spawn_file_actions_adddup2(&fa, wfd, PX_REEXEC_STATUS_FD);
    if (rc == 0)
        rc = posix_spawn_file_actions_addclosefrom_np(&fa, PX_REEXEC_STATUS_FD + 1);
    if (rc == 0)
        rc = posix_spawnattr_setsigmask(&attr, &none);
    if (rc == 0)
        rc = posix_spawnattr_setsigdefault(&attr, &dfl);
    if (rc == 0)
        rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (rc == 0)
        rc = posix_spawn(pid, ctl->exe, &fa, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

void
px_ctl_reexec(void *arg, void (*done)(void *arg, bool ok, const char *text), void *done_arg)
{
    struct px_ctl *ctl = arg;
    struct timeval begin = {PX_REEXEC_BEGIN_MS / 1000, 0};
    char why[PATH_MAX + 128];
    int p[2], rc;
    pid_t pid;

    if (ctl->reexec_done != NULL) {
        snprintf(why, sizeof(why), "a reexec is under way already (pid %ld)", ctl->reexec_pid);
        goto refuse;
    }
    if (ctl->draining || ctl->handed) {
        snprintf(why, sizeof(why), "this crossfade is stopping");
        goto refuse;
    }
    if (ctl->exe == NULL) {
        snprintf(why, sizeof(why),
                 "this crossfade could not tell its binary's path at start "
                 "(no /proc/self/exe): start crossfade --takeover by hand");
        goto refuse;
    }
    if (access(ctl->exe, X_OK) == -1) {
        snprintf(why, sizeof(why), "cannot run %s: %s; this process goes on serving", ctl->exe,
                 strerror(errno));
        goto refuse;
    }
    if (ctl->ev_reexec == NULL) {
        ctl->ev_reexec = evtimer_new(ctl->base, px_reexec_on_deadline, ctl);
        ctl->ev_reexec_reply = event_new(ctl->base, -1, 0, px_reexec_on_reply, ctl);
        if (ctl->ev_reexec == NULL || ctl->ev_reexec_reply == NULL) {
            snprintf(why, sizeof(why), "out of memory");
            goto refuse;
        }
    }
    if (pipe2(p, O_CLOEXEC) == -1) {
        snprintf(why, sizeof(why), "cannot start %s: pipe: %s", ctl->exe, strerror(errno));
        goto refuse;
    }
    rc = px_reexec_spawn(ctl, p[1], &pid);
    close(p[1]);
    if (rc != 0) {
        close(p[0]);
        snprintf(why, sizeof(why), "cannot start %s: %s; this process goes on serving", ctl->exe,
                 strerror(rc));
        goto refuse;
    }
    (void)fcntl(p[0], F_SETFL, O_NONBLOCK);
    if (ctl->reexec_fd != -1)
        close(ctl->reexec_fd);
    ctl->reexec_fd = p[0];
    ctl->reexec_pid = pid;
    ctl->reexec_done = done;
    ctl->reexec_done_arg = done_arg;
    ctl->reexec_finished = false;
    event_add(ctl->ev_reexec, &begin);
    XF_LOG(XF_LOG_INFO, "proxy", "event=reexec_started pid=%ld exe=\"%s\" config=\"%s\"", (long)pid,
           ctl->exe, ctl->cfg->path);
    return;
refuse:
    XF_LOG(XF_LOG_WARN, "proxy", "event=reexec result=refused reason=\"%s\"", why);
    if (done != NULL)
        done(done_arg, false, why);
}

/* What the new process wrote on its status pipe before it exited: its last line. */
static void
px_reexec_read_why(struct px_ctl *ctl, char *buf, size_t cap)
{
    size_t len = 0;
    ssize_t n;
    char *nl;

    buf[0] = '\0';
    if (ctl->reexec_fd == -1)
        return;
    while (len + 1 < cap && (n = read(ctl->reexec_fd, buf + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        buf[--len] = '\0';
    nl = strrchr(buf, '\n');
    if (nl != NULL)
        memmove(buf, nl + 1, strlen(nl + 1) + 1);
}

void
px_reexec_reap(struct px_ctl *ctl)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        char why[600], how[64];

        if (pid != (pid_t)ctl->reexec_pid)
            continue;
        if (WIFEXITED(status))
            snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
            snprintf(how, sizeof(how), "was killed by signal %d (%s)", WTERMSIG(status),
                     strsignal(WTERMSIG(status)));
        else
            continue;
        if (ctl->reexec_finished) {
            /* It had taken over (or was stopped at its deadline): this process only finishes. */
            if (ctl->handed)
                XF_LOG(XF_LOG_ERR, "proxy",
                       "event=reexec_child_exited pid=%ld how=\"%s\" note=\"the process that took "
                       "over has ended\"",
                       (long)pid, how);
            ctl->reexec_pid = 0;
            continue;
        }
        px_reexec_read_why(ctl, why, sizeof(why));
        px_reexec_finish(ctl, false,
                         "the new process (pid %ld, %s) %s%s%s; this process goes on serving",
                         (long)pid, ctl->exe, how, why[0] != '\0' ? ": " : "", why);
        ctl->reexec_pid = 0;
    }
}

void
px_reexec_handed(struct px_ctl *ctl, long new_pid)
{
    if (ctl->reexec_done == NULL || new_pid != ctl->reexec_pid)
        return;
    px_reexec_finish(ctl, true,
                     "pid %ld (%s) took over; pid %ld finishes its connections and exits", new_pid,
                     ctl->exe, (long)getpid());
}

void
px_reexec_stopping(struct px_ctl *ctl, const char *why)
{
    /* It has accepted nothing yet (`takeover done` is refused from now on): stopped with us. */
    if (ctl->reexec_pid != 0 && ctl->reexec_done != NULL && !ctl->reexec_finished)
        kill((pid_t)ctl->reexec_pid, SIGKILL);
    px_reexec_finish(ctl, false, "%s: the new process (pid %ld) cannot take over", why,
                     ctl->reexec_pid);
}

void
px_reexec_settle(struct px_ctl *ctl)
{
    /* The loop has ended: the outcome it had no turn left to give is given now. */
    px_reexec_stopping(ctl, "this crossfade stopped");
    px_reexec_on_reply(-1, 0, ctl);
}

void
px_reexec_fini(struct px_ctl *ctl)
{
    if (ctl->ev_reexec != NULL)
        event_free(ctl->ev_reexec);
    if (ctl->ev_reexec_reply != NULL)
        event_free(ctl->ev_reexec_reply);
    if (ctl->reexec_fd != -1)
        close(ctl->reexec_fd);
    free(ctl->exe);
}
