/* config/cfg_resolver.c -- host names resolved off the event loop: a thread runs cfg_addr_parse
 * (getaddrinfo may take seconds) and an eventfd tells the loop when results are in. */
#include "config/cfg.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <unistd.h>

/* Lookups queued at once; more are refused (the caller says so). */
#define CFG_RESOLVER_MAX 1024

struct cfg_lookup {
    char text[sizeof(((struct cfg_addr *)0)->text)]; /* host:port as written */
    cfg_resolved_fn fn;
    void *arg;
    bool cancelled;
    int rc;
    struct cfg_addr addr;
    struct xf_err err;
    TAILQ_ENTRY(cfg_lookup) link;
};

TAILQ_HEAD(cfg_lookups, cfg_lookup);

struct cfg_resolver {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct cfg_lookups todo;    /* owned: waiting for the thread */
    struct cfg_lookups done;    /* owned: resolved, waiting for cfg_resolver_collect */
    struct cfg_lookup *running; /* the one the thread works on (owned by it meanwhile) */
    size_t n;                   /* lookups in todo, running and done */
    bool stop;
    int efd; /* owned: readable when done is not empty */
};

static void *
cfg_resolver_main(void *arg)
{
    struct cfg_resolver *r = arg;

    pthread_mutex_lock(&r->lock);
    for (;;) {
        struct cfg_lookup *l;
        uint64_t one = 1;

        while (TAILQ_EMPTY(&r->todo) && !r->stop)
            pthread_cond_wait(&r->wake, &r->lock);
        if (r->stop)
            break;
        l = TAILQ_FIRST(&r->todo);
        TAILQ_REMOVE(&r->todo, l, link);
        r->running = l;
        pthread_mutex_unlock(&r->lock);
        l->rc = cfg_addr_parse(l->text, &l->addr, &l->err);
        pthread_mutex_lock(&r->lock);
        r->running = NULL;
        TAILQ_INSERT_TAIL(&r->done, l, link);
        (void)!write(r->efd, &one, sizeof(one));
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

struct cfg_resolver *
cfg_resolver_new(struct xf_err *err)
{
    struct cfg_resolver *r = calloc(1, sizeof(*r));
    sigset_t all, old;
    int rc;

    if (r == NULL) {
        xf_err_set(err, "out of memory");
        return NULL;
    }
    TAILQ_INIT(&r->todo);
    TAILQ_INIT(&r->done);
    r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->efd == -1) {
        xf_err_set(err, "resolver: eventfd: %s", strerror(errno));
        free(r);
        return NULL;
    }
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->wake, NULL);
    /* Signals stay with the event loop's thread. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&r->thread, NULL, cfg_resolver_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        xf_err_set(err, "resolver: cannot start its thread: %s", strerror(rc));
        pthread_cond_destroy(&r->wake);
        pthread_mutex_destroy(&r->lock);
        close(r->efd);
        free(r);
        return NULL;
    }
    return r;
}

int
cfg_resolver_fd(const struct cfg_resolver *r)
{
    return r->efd;
}

int
cfg_resolver_submit(struct cfg_resolver *r, const char *text, cfg_resolved_fn fn, void *arg)
{
    struct cfg_lookup *l;

    if (strlen(text) >= sizeof(l->text))
        return -1;
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return -1;
    memcpy(l->text, text, strlen(text) + 1);
    l->fn = fn;
    l->arg = arg;
    pthread_mutex_lock(&r->lock);
    if (r->n >= CFG_RESOLVER_MAX) {
        pthread_mutex_unlock(&r->lock);
        free(l);
        return -1;
    }
    r->n++;
    TAILQ_INSERT_TAIL(&r->todo, l, link);
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
    return 0;
}

void
cfg_resolver_collect(struct cfg_resolver *r)
{
    struct cfg_lookups done = TAILQ_HEAD_INITIALIZER(done);
    struct cfg_lookup *l;
    uint64_t count;

    (void)!read(r->efd, &count, sizeof(count));
    pthread_mutex_lock(&r->lock);
    TAILQ_CONCAT(&done, &r->done, link);
    pthread_mutex_unlock(&r->lock);
    /* The callbacks run without the lock: they may submit again. */
    while ((l = TAILQ_FIRST(&done)) != NULL) {
        TAILQ_REMOVE(&done, l, link);
        if (!l->cancelled)
            l->fn(l->arg, l->rc == 0 ? &l->addr : NULL, l->rc == 0 ? NULL : l->err.msg);
        pthread_mutex_lock(&r->lock);
        r->n--;
        pthread_mutex_unlock(&r->lock);
        free(l);
    }
}

/* Marks the lookups of `arg` in a list as cancelled. */
static void
cfg_resolver_cancel_in(struct cfg_lookups *list, void *arg)
{
    struct cfg_lookup *l;

    TAILQ_FOREACH(l, list, link)
    {
        if (l->arg == arg)
            l->cancelled = true;
    }
}

void
cfg_resolver_cancel(struct cfg_resolver *r, void *arg)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->lock);
    cfg_resolver_cancel_in(&r->todo, arg);
    cfg_resolver_cancel_in(&r->done, arg);
    if (r->running != NULL && r->running->arg == arg)
        r->running->cancelled = true;
    pthread_mutex_unlock(&r->lock);
}

void
cfg_resolver_free(struct cfg_resolver *r)
{
    struct cfg_lookup *l;

    if (r == NULL)
        return;
    pthread_mutex_lock(&r->lock);
    r->stop = true;
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
    /* A lookup under way finishes first: getaddrinfo cannot be interrupted. */
    pthread_join(r->thread, NULL);
    /* What is left gets its callback, so that whoever asked can free what it keeps for it: the
     * finished lookups their result, the others an error. */
    TAILQ_FOREACH(l, &r->todo, link)
    {
        l->rc = -1;
        xf_err_set(&l->err, "not resolved: crossfade is stopping");
    }
    TAILQ_CONCAT(&r->done, &r->todo, link);
    while ((l = TAILQ_FIRST(&r->done)) != NULL) {
        TAILQ_REMOVE(&r->done, l, link);
        if (!l->cancelled)
            l->fn(l->arg, l->rc == 0 ? &l->addr : NULL, l->rc == 0 ? NULL : l->err.msg);
        free(l);
    }
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->lock);
    close(r->efd);
    free(r);
}
