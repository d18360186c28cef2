/* proxy/px_main.c -- bin/crossfade: command line, configuration, and wiring the modules together.
 */
#include "proxy/px.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/adm.h"

#define PX_DEFAULT_CONFIG       "/etc/crossfade/crossfade.yaml"
#define PX_DEFAULT_ADMIN_SOCKET "/run/crossfade/admin.sock"

static void
px_main_usage(FILE *f)
{
    fprintf(f, "usage: crossfade [-t] [-c FILE] [--takeover [--status-fd FD]]\n"
               "\n"
               "Splits live HTTP traffic between two clusters of gateways, x and y, during an\n"
               "upgrade, and rolls back at once.\n"
               "\n"
               "  -c, --config FILE  configuration file (default " PX_DEFAULT_CONFIG ")\n"
               "  -t, --test         check the configuration file and exit: 0 if valid, 2 if not\n"
               "      --takeover     binary upgrade: take the listening sockets and the state of\n"
               "                     the crossfade answering on admin.socket, serve, then have it\n"
               "                     finish and exit (exit 1, the old one untouched, on failure)\n"
               "      --status-fd FD with --takeover: also write why it failed to FD (how\n"
               "                     `xfctl reexec` learns it; closed once it took over)\n"
               "  -h, --help         show this help and exit\n"
               "  -V, --version      show the version and exit\n"
               "\n"
               "Runs in the foreground and logs to stderr. SIGTERM or SIGINT stops accepting,\n"
               "lets requests in flight finish (up to timeouts.shutdown) and exits 0. SIGHUP\n"
               "re-reads the configuration file and applies it without dropping a connection\n"
               "(an invalid file changes nothing); SIGUSR1 reopens the access log.\n");
}

/* --status-fd: where a takeover's failure is also written; -1: nowhere. */
static int px_main_status_fd = -1;

/* A takeover failed: why, on stderr and on the status fd (the reply of the `reexec` that
 * started this process). */
static void XF_PRINTF(1, 2) px_main_takeover_failed(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "crossfade: --takeover: %s\n", msg);
    if (px_main_status_fd != -1 && n > 0) {
        size_t len = XF_MIN((size_t)n, sizeof(msg) - 1);
        ssize_t w;

        do
            w = write(px_main_status_fd, msg, len);
        while (w == -1 && errno == EINTR);
    }
}

/* What an admin command's publish reaches: the workers and the health checks. */
struct px_main_wired {
    struct px_ctl *ctl;
    struct px_health *health;
};

/* After an admin command published a snapshot: every worker takes it, and the health checks look
 * at it at once (a node added gets its first probes now, not at the next sync). */
static void
px_main_published(void *arg)
{
    struct px_main_wired *wired = arg;

    px_ctl_refresh(wired->ctl);
    if (wired->health != NULL)
        px_health_refresh(wired->health);
}

/* A process taking over (--takeover), once its checks gave their first verdicts. */
struct px_main_takeover {
    struct px_ctl *ctl;
    struct adm_server *adm;
    struct adm_takeover *tk;
};
static struct px_main_takeover takeover_ctx;

/*
 * Ready to serve: the old process is told to stop accepting (`takeover done`), then this one
 * accepts on the same sockets -- connections arriving meanwhile wait in their queues -- and its
 * admin socket replaces the old one's. If the old process does not agree, this one stops without
 * having served anything and the old one goes on.
 */
static void
px_main_took_over(void *arg)
{
    struct px_main_takeover *t = arg;
    struct xf_err err = {{0}};

    if (adm_takeover_done(t->tk, &err) == -1) {
        XF_LOG(XF_LOG_ERR, "main",
               "event=takeover_failed error=\"%s\" note=\"exiting; the old "
               "process goes on serving\"",
               err.msg);
        px_main_takeover_failed("%s; the old process goes on serving", err.msg);
        t->ctl->exit_code = 1;
        px_ctl_stop_now(t->ctl);
        return;
    }
    px_ctl_start(t->ctl);
    if (adm_server_claim(t->adm, &err) == -1)
        XF_LOG(XF_LOG_ERR, "main", "event=admin_socket_claim_failed error=\"%s\"", err.msg);
    XF_LOG(XF_LOG_INFO, "main", "event=takeover_complete old_pid=%ld", t->tk->old_pid);
    if (px_main_status_fd != -1) {
        close(px_main_status_fd);
        px_main_status_fd = -1;
    }
}

/* adm_reload_fn: `reload` on the admin socket reloads as SIGHUP does, and answers when done. */
static void
px_main_reload(void *arg, adm_reload_done_fn done, void *job)
{
    px_ctl_reload(arg, done, job);
}

/* The resolver thread finished lookups: their callbacks run here, on the loop's thread. */
static void
px_main_on_resolved(evutil_socket_t fd, short what, void *arg)
{
    XF_UNUSED(fd);
    XF_UNUSED(what);
    cfg_resolver_collect(arg);
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"test", no_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {"takeover", no_argument, NULL, 'T'},
                                         {"status-fd", required_argument, NULL, 'S'},
                                         {NULL, 0, NULL, 0}};
    const char *path = PX_DEFAULT_CONFIG;
    struct bal_snapshot *snap = NULL;
    struct bal_router router;
    bool routed = false;
    struct px_ctl *ctl = NULL;
    struct adm_server *adm = NULL;
    struct px_health *health = NULL;
    struct px_main_wired wired = {0};
    struct cfg_resolver *resolver = NULL;
    struct event *ev_resolved = NULL;
    struct cfg *cfg = NULL;
    struct xf_err err = {{0}};
    bool test = false, takeover = false;
    struct adm_takeover *tk = NULL;
    int opt, rc = 1;

    px_evmem_init();
    while ((opt = getopt_long(argc, argv, "c:thV", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 't':
            test = true;
            break;
        case 'T':
            takeover = true;
            break;
        case 'S': {
            char *end;
            long fd;

            errno = 0;
            fd = strtol(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || fd < 0 || fd > INT32_MAX ||
                fcntl((int)fd, F_GETFD) == -1) {
                fprintf(stderr, "crossfade: --status-fd: \"%s\" is not an open file descriptor\n",
                        optarg);
                return 2;
            }
            px_main_status_fd = (int)fd;
            /* Not for what this process starts (its own reexec). */
            (void)fcntl(px_main_status_fd, F_SETFD, FD_CLOEXEC);
            break;
        }
        case 'h':
            px_main_usage(stdout);
            return 0;
        case 'V':
            printf("crossfade %s (libevent %s, llhttp %d.%d.%d)\n", XF_VERSION, event_get_version(),
                   LLHTTP_VERSION_MAJOR, LLHTTP_VERSION_MINOR, LLHTTP_VERSION_PATCH);
            return 0;
        default:
            px_main_usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "crossfade: unexpected argument \"%s\"\n", argv[optind]);
        px_main_usage(stderr);
        return 2;
    }
    if (px_main_status_fd != -1 && !takeover) {
        fprintf(stderr, "crossfade: --status-fd goes with --takeover\n");
        return 2;
    }
    cfg = cfg_load(path, &err);
    if (cfg == NULL) {
        if (takeover)
            px_main_takeover_failed("%s", err.msg);
        else
            fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    if (test) {
        SSL_CTX **tls = NULL;

        /* The files the configuration names are part of it: certificates and keys are read. */
        if (px_tls_set_new(cfg, &tls, &err) == -1) {
            fprintf(stderr, "%s\n", err.msg);
            cfg_free(cfg);
            return 2;
        }
        px_tls_set_free(tls, cfg->n_listeners);
        fprintf(stderr, "crossfade: configuration file %s is valid\n", path);
        cfg_free(cfg);
        return 0;
    }
    xf_log_min = cfg->log_level;
    xf_fatal_install();
    if (takeover) {
        /* First of all: with nothing to take over, nothing else is started. */
        tk = adm_takeover_begin(cfg->admin_socket, &err);
        if (tk == NULL) {
            px_main_takeover_failed("%s", err.msg);
            cfg_free(cfg);
            return 1;
        }
        XF_LOG(XF_LOG_INFO, "main", "event=takeover_begin old_pid=%ld sockets=%zu", tk->old_pid,
               tk->n_fds);
        /* Before any worker derives a ticket key: the old one's clients resume here. */
        if (tk->secret_len > 0 && px_tls_ticket_secret_set(tk->secret, tk->secret_len, &err) == -1)
            goto fail;
    }
    snap = bal_snapshot_new(cfg, NULL, 1, &err);
    if (snap == NULL)
        goto fail;
    bal_router_init(&router, snap);
    routed = true;
    ctl = px_ctl_new(cfg, &router, &err);
    if (ctl == NULL ||
        px_ctl_listen(ctl, tk != NULL ? tk->fds : NULL, tk != NULL ? tk->n_fds : 0, &err) == -1)
        goto fail;
    /* Host names met at run time (add node, re-resolving) are looked up by a thread: a slow
     * resolver must never stall the loop that carries the traffic. */
    resolver = cfg_resolver_new(&err);
    if (resolver == NULL)
        goto fail;
    ev_resolved = event_new(ctl->base, cfg_resolver_fd(resolver), EV_READ | EV_PERSIST,
                            px_main_on_resolved, resolver);
    if (ev_resolved == NULL || event_add(ev_resolved, NULL) == -1) {
        xf_err_set(&err, "out of memory");
        goto fail;
    }
    adm = adm_server_new_takeover(ctl->base, cfg, &router, tk, &err);
    if (adm == NULL && tk != NULL)
        goto fail; /* the admin socket is how the old process is told: required */
    if (adm == NULL) {
        /*
         * A socket the configuration names (or a state file, which needs it) is required. The
         * implicit default is shared by every instance on the machine: when it is taken (or /run
         * is not writable), this instance runs without one rather than not at all.
         */
        if (strcmp(cfg->admin_socket, PX_DEFAULT_ADMIN_SOCKET) != 0 || cfg->state_file != NULL)
            goto fail;
        XF_LOG(XF_LOG_WARN, "main", "event=admin_disabled reason=\"%s\" hint=\"set admin.socket\"",
               err.msg);
    }
    /* After the admin socket: the state file may have added nodes to probe. */
    health = px_health_new(ctl->base, cfg, &router, ctl->stats, &err);
    if (health == NULL)
        goto fail;
    px_health_set_notify(health, px_ctl_refresh, ctl);
    px_health_set_resolver(health, resolver);
    px_health_set_tls(health, ctl->node_tls);
    wired.ctl = ctl;
    wired.health = health;
    px_ctl_wire(ctl, adm, health);
    if (adm != NULL) {
        adm_server_set_stats(adm, px_ctl_stats, ctl);
        adm_server_set_monitor(adm, &(struct adm_monitor){.mon = px_ctl_mon,
                                                          .preview = px_ctl_preview,
                                                          .node_stats = px_ctl_node_stats,
                                                          .arg = ctl});
        adm_server_set_node_info(adm, px_ctl_node_info, ctl);
        adm_server_set_id_busy(adm, px_ctl_id_busy, ctl);
        adm_server_set_applied(adm, px_ctl_applied, ctl);
        adm_server_set_health_info(adm, px_health_info, health);
        adm_server_set_published(adm, px_main_published, &wired);
        px_health_set_events(health, adm_server_node_event, adm);
        adm_server_set_status(adm, px_ctl_status, ctl);
        adm_server_set_workers(adm, ctl->n_workers);
        adm_server_set_resolver(adm, resolver);
        adm_server_set_reload(adm, px_main_reload, ctl);
        adm_server_set_takeover(adm, px_ctl_listen_fds, px_ctl_handed_over, ctl);
        adm_server_set_takeover_secret(adm, px_tls_ticket_secret, NULL);
        adm_server_set_reexec(adm, px_ctl_reexec, ctl);
        adm_server_set_tls(adm, px_ctl_tls_reload, px_ctl_tls_show, ctl);
    }
    /* What the state file and the health checks published so far is taken before any request. */
    px_ctl_refresh(ctl);
    if (px_ctl_spawn(ctl, &err) == -1)
        goto fail;
    /* The listeners accept once the checks gave their first verdicts (connections wait in the
     * kernel's queue meanwhile), so no client meets a node nobody checked. */
    if (tk != NULL) {
        takeover_ctx.ctl = ctl;
        takeover_ctx.adm = adm;
        takeover_ctx.tk = tk;
        px_health_start(health, px_main_took_over, &takeover_ctx);
    } else {
        px_health_start(health, px_ctl_start, ctl);
    }
    XF_LOG(XF_LOG_INFO, "main", "event=started version=%s config=%s x_nodes=%zu y_nodes=%zu",
           XF_VERSION, path, cfg->clusters[CFG_CLUSTER_X].n_nodes,
           cfg->clusters[CFG_CLUSTER_Y].n_nodes);
    if (cfg->split.override_any &&
        (cfg->split.override_header != NULL || cfg->split.override_cookie != NULL))
        XF_LOG(XF_LOG_WARN, "main",
               "event=override_from_any note=\"every client can choose its side with %s, even "
               "after a rollback: list the testers' networks in split.override_from\"",
               cfg->split.override_header != NULL ? cfg->split.override_header
                                                  : cfg->split.override_cookie);
    rc = px_ctl_run(ctl);
    goto out;
fail:
    XF_LOG(XF_LOG_ERR, "main", "event=start_failed error=\"%s\"", err.msg);
    if (tk != NULL)
        px_main_takeover_failed("%s (pid %ld goes on serving)", err.msg, tk->old_pid);
    rc = 1;
out:
    /* The connection to the old process closes here: if it had not been told `takeover done`,
     * it goes on as before. */
    adm_takeover_free(tk);
    /* Workers only ever talk to the control thread's loop, which no longer runs: what they
     * report to may go before them (px_ctl_free stops and joins any still running). */
    if (ev_resolved != NULL)
        event_free(ev_resolved);
    /* Before its users: lookups still queued get their callback (with an error) while the admin
     * socket and the health checks that asked are still there. */
    cfg_resolver_free(resolver);
    adm_server_free(adm);
    px_health_free(health);
    px_ctl_free(ctl);
    px_buf_cache_drain();
    if (routed)
        bal_router_fini(&router);
    cfg_free(cfg);
    return rc;
}
