/* common/xf_fatal.c -- a process killed by a signal removes the socket file it created. */
#include "common/xf.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * The signals whose default action ends the process and that nothing else handles: SIGTERM,
 * SIGINT, SIGHUP and SIGUSR1 belong to the event loop. SIGKILL cannot be caught: a socket file
 * left by it is replaced at the next start (only when nobody answers on it).
 */
static const int xf_fatal_signals[] = {
    SIGQUIT, SIGILL,    SIGTRAP, SIGABRT, SIGBUS,  SIGFPE,  SIGSEGV, SIGUSR2,   SIGALRM,
    SIGPROF, SIGVTALRM, SIGSYS,  SIGXCPU, SIGXFSZ, SIGPOLL, SIGPWR,  SIGSTKFLT,
};

/* Written before the handlers can run and read only by them: plain storage is enough. */
static char xf_fatal_path[256];
static volatile sig_atomic_t xf_fatal_armed;
static dev_t xf_fatal_dev;
static ino_t xf_fatal_ino;
static struct sigaction xf_fatal_old[XF_ARRAY_LEN(xf_fatal_signals)];

static void
xf_fatal_handler(int sig)
{
    struct stat st;

    /* Only async-signal-safe calls here: lstat, unlink, sigaction, raise. */
    if (xf_fatal_armed && lstat(xf_fatal_path, &st) == 0 && st.st_dev == xf_fatal_dev &&
        st.st_ino == xf_fatal_ino)
        unlink(xf_fatal_path);
    xf_fatal_armed = 0;
    for (size_t i = 0; i < XF_ARRAY_LEN(xf_fatal_signals); i++) {
        if (xf_fatal_signals[i] != sig)
            continue;
        /* The handler that was there before (the default, or a sanitizer's) takes over: a fault
         * happens again when this returns, a raised signal is delivered once this returns. */
        sigaction(sig, &xf_fatal_old[i], NULL);
        if (sig != SIGSEGV && sig != SIGBUS && sig != SIGILL && sig != SIGFPE)
            raise(sig);
        return;
    }
}

/* exit() called from anywhere else than main's normal path (a library's fatal error): the file
 * goes too. The normal path removes it itself and unregisters it first. */
static void
xf_fatal_at_exit(void)
{
    struct stat st;

    if (xf_fatal_armed && lstat(xf_fatal_path, &st) == 0 && st.st_dev == xf_fatal_dev &&
        st.st_ino == xf_fatal_ino)
        unlink(xf_fatal_path);
    xf_fatal_armed = 0;
}

void
xf_fatal_install(void)
{
    struct sigaction sa;

    atexit(xf_fatal_at_exit);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = xf_fatal_handler;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < XF_ARRAY_LEN(xf_fatal_signals); i++) {
        struct sigaction cur;

        /* A signal ignored by whoever started us (nohup, a shell's trap) stays ignored. */
        if (sigaction(xf_fatal_signals[i], NULL, &cur) == 0 && cur.sa_handler == SIG_IGN)
            continue;
        sigaction(xf_fatal_signals[i], &sa, &xf_fatal_old[i]);
    }
}

void
xf_fatal_unlink_on_exit(const char *path, unsigned long dev, unsigned long ino)
{
    xf_fatal_armed = 0;
    if (strlen(path) >= sizeof(xf_fatal_path))
        return;
    memcpy(xf_fatal_path, path, strlen(path) + 1);
    xf_fatal_dev = (dev_t)dev;
    xf_fatal_ino = (ino_t)ino;
    xf_fatal_armed = 1;
}

void
xf_fatal_forget(void)
{
    xf_fatal_armed = 0;
}
