/* admin/adm_reload.c -- `reload`: the proxy re-reads its configuration; the admin side answers
 * once every worker applied it, and keeps the new configuration for its commands and the state
 * file. `reexec`: the proxy starts its binary again to take over (a binary upgrade); the answer
 * comes once the new process took over, or failed. */
#include "admin/adm.h"

#include <stdlib.h>
#include <string.h>

/* A `reload` or a `reexec` waiting for its outcome. */
struct adm_reload_job {
    struct adm_state *st; /* borrowed */
    bool in_exec;         /* the proxy is still inside the call adm_cmd_reload made */
    bool finished, ok;    /* the outcome came during that call */
    uint64_t gen;         /* the state file text holding the reload: the reply waits for it */
    char text[1024];
};

/* adm_reload_done_fn: the outcome, kept for adm_cmd_reload when it came during its call, else
 * sent to the client that waits (adm_server_job_done). */
static void
adm_reload_done(void *arg, bool ok, const char *text)
{
    struct adm_reload_job *job = arg;
    struct adm_state *st = job->st;
    struct adm_reply r = {st->reply, false};

    if (job->in_exec) {
        job->finished = true;
        job->ok = ok;
        snprintf(job->text, sizeof(job->text), "%s", text);
        return;
    }
    evbuffer_drain(st->reply, evbuffer_get_length(st->reply));
    if (ok)
        adm_reply_line(&r, "ok: %s", text);
    else
        adm_reply_error(&r, "%s", text);
    evbuffer_add(st->reply, "\n", 1); /* the reply's end */
    st->exec_gen = job->gen;
    if (st->job_done != NULL)
        st->job_done(st->job_done_arg, job, st->reply);
    free(job);
}

/* Runs fn(arg, adm_reload_done, job): the reply now when the outcome came during the call, else
 * ADM_PENDING (it comes through st->job_done once every worker has it, and the state file). */
static enum adm_result
adm_job_run(struct adm_state *st, adm_reload_fn fn, void *arg, struct adm_reply *r)
{
    struct adm_reload_job *job = calloc(1, sizeof(*job));

    if (job == NULL)
        return adm_reply_error(r, "out of memory");
    job->st = st;
    job->in_exec = true;
    st->exec_gen = 0;
    fn(arg, adm_reload_done, job);
    job->in_exec = false;
    if (job->finished) {
        enum adm_result res = ADM_OK;

        if (job->ok)
            adm_reply_line(r, "ok: %s", job->text);
        else
            res = adm_reply_error(r, "%s", job->text);
        free(job);
        return res;
    }
    job->gen = st->exec_gen;
    st->pending = job;
    return ADM_PENDING;
}

enum adm_result
adm_cmd_reload(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
               struct adm_reply *r)
{
    enum adm_result res;

    if (st->reload == NULL)
        return adm_reply_error(r, "reload is not available in this process");
    st->reload_peer = peer;
    adm_command_text(a, st->reload_cmd, sizeof(st->reload_cmd));
    res = adm_job_run(st, st->reload, st->reload_arg, r);
    st->reload_peer = NULL;
    return res;
}

enum adm_result
adm_cmd_tls_reload(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                   struct adm_reply *r)
{
    XF_UNUSED(peer);
    XF_UNUSED(a);
    if (st->tls_reload == NULL)
        return adm_reply_error(r, "tls reload is not available in this process");
    return adm_job_run(st, st->tls_reload, st->tls_arg, r);
}

/* adm_line_fn for show tls: one reply line. */
static void
adm_tls_line(void *ctx, const char *text)
{
    adm_reply_line(ctx, "%s", text);
}

enum adm_result
adm_cmd_show_tls(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                 struct adm_reply *r)
{
    XF_UNUSED(peer);
    XF_UNUSED(a);
    if (st->tls_show == NULL)
        return adm_reply_error(r, "show tls is not available in this process");
    adm_reply_line(r, "listener cert names not_after days_left");
    st->tls_show(st->tls_arg, adm_tls_line, r);
    return ADM_OK;
}

enum adm_result
adm_cmd_reexec(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
               struct adm_reply *r)
{
    XF_UNUSED(peer);
    XF_UNUSED(a);
    if (st->reexec == NULL || st->listen_fds == NULL)
        return adm_reply_error(r, "reexec is not available in this process");
    if (st->status != NULL && strcmp(st->status(st->status_arg), "serving") != 0)
        return adm_reply_error(r, "this crossfade is %s: try again once it serves",
                               st->status(st->status_arg));
    if (st->listen_fds(st->takeover_arg, NULL, 0) == SIZE_MAX)
        return adm_reply_error(r, "a reload is under way: try again once it has finished");
    return adm_job_run(st, st->reexec, st->reexec_arg, r);
}

/*
 * Fleet mode: the seed in force is the fleet's, whatever split.seed says (docs/fleet.md). A
 * reload that leaves split.seed as it was keeps it; one that changes it (or repeats a change
 * that was not taken) puts the new seed in force here and writes it for the whole fleet -- or,
 * while etcd cannot take it, keeps the fleet's and says so in the reply (`text`, `size` bytes)
 * and the log.
 */
static void
adm_reload_seed(struct adm_state *st, const struct cfg *cfg, struct bal_snapshot *next, char *text,
                size_t size)
{
    struct bal_snapshot *cur;
    size_t used = strlen(text);

    if (st->fleet == NULL)
        return;
    cur = bal_router_acquire(st->router);
    if (strcmp(st->cfg->split.seed, cfg->split.seed) == 0 && !st->seed_untaken) {
        next->seed_hash = cur->seed_hash;
    } else if (next->seed_hash == cur->seed_hash) {
        st->seed_untaken = false; /* already the fleet's */
    } else if (!adm_fleet_writable(st)) {
        next->seed_hash = cur->seed_hash;
        st->seed_untaken = true;
        snprintf(text + used, size - used,
                 "; the new split.seed is NOT in force: etcd cannot take it now (unreachable, or "
                 "its state not read yet), the fleet's seed stays (reload again once etcd is "
                 "back)");
        XF_LOG(XF_LOG_WARN, "admin",
               "event=fleet_seed_not_changed reason=\"etcd unreachable or not read yet\" "
               "note=\"the fleet's seed stays in force; reload again once etcd is back\"");
    } else {
        /* In force here now; kept as untaken until etcd took it (adm_fleet_on_commit), so that
         * a write lost to another instance or to a timeout is tried again by the next reload. */
        st->seed_untaken = true;
        snprintf(text + used, size - used,
                 "; the new split.seed goes to the whole fleet (clients move between x and y on "
                 "every instance; show fleet tells when it is in force)");
    }
    bal_snapshot_unref(cur);
}

void
adm_state_reload(struct adm_state *st, const struct cfg *cfg, struct bal_snapshot *next, char *text,
                 size_t size)
{
    const struct adm_peer *p = st->reload_peer;

    adm_reload_seed(st, cfg, next, text, size);
    st->cfg = cfg;
    adm_guard_reconfigure(st);
    adm_publish(st, next);
    st->reloads++;
    st->reloaded = time(NULL);
    adm_events_add(&st->events, p != NULL ? p->uid : -1, p != NULL ? p->pid : -1,
                   p != NULL ? st->reload_cmd : "SIGHUP", "config", "-", text);
    adm_state_changed(st);
}
