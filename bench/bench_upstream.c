/* bench/bench_upstream.c -- xf-upstream's main: command line, listeners, worker loops, signals. */
#include "bench/bench_upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#define BENCH_UP_BACKLOG 4096

static void
bench_up_usage(FILE *f)
{
    fputs("usage: xf-upstream --listen ADDR:PORT [--listen ...] [--name NAME] [options]\n"
          "  --listen ADDR:PORT  127.0.0.1:9001, [::1]:9001, localhost:0 (port 0: any free)\n"
          "  --name NAME         stamped on every answer (default \"upstream\")\n"
          "  --delay MS          latency added before each response\n"
          "  --error-rate P      percent (0..100) of requests answered 500 \"NAME error\"\n"
          "  --close-rate P      percent of requests whose connection is closed unanswered\n"
          "  --body-bytes N      default answers carry N pattern bytes instead of \"NAME\\n\"\n"
          "  --idle-close MS     close connections that waited MS for a request\n"
          "  --threads N         event loops sharing the ports with SO_REUSEPORT (default 1)\n"
          "  --quiet             log errors only\n"
          "  --help\n"
          "paths: /echo /count /bytes/N /chunked/N /nolength/N /status/CODE /delay/MS /close\n"
          "       /headers /slowbody/MS /_counters; anything else gets the default answer\n"
          "       (see docs/xf-upstream.md)\n",
          f);
}

/* Parses "HOST:PORT" or "[V6]:PORT" into `l`; returns 0 or -1 with the reason in `err`. */
static int
bench_up_parse_listen(const char *arg, struct bench_up_listen *l, struct xf_err *err)
{
    const char *why = NULL;
    unsigned alen = 0;
    const char *orig = arg;
    uint64_t num;
    char host[256];
    const char *port, *colon;
    size_t hlen;

    if (arg[0] == '[') {
        const char *end = strchr(arg, ']');
        if (end == NULL || end[1] != ':') {
            xf_err_set(err, "--listen %s: expected [ADDR]:PORT", arg);
            return -1;
        }
        hlen = (size_t)(end - arg - 1);
        port = end + 2;
        arg++;
    } else {
        if ((colon = strrchr(arg, ':')) == NULL) {
            xf_err_set(err, "--listen %s: expected ADDR:PORT", arg);
            return -1;
        }
        hlen = (size_t)(colon - arg);
        port = colon + 1;
    }
    if (hlen >= sizeof(host)) {
        xf_err_set(err, "--listen: address too long");
        return -1;
    }
    /* getaddrinfo takes 99999 and wraps it: check the port here. */
    if (bench_up_parse_u64(port, strlen(port), 65535, &num) == -1) {
        xf_err_set(err, "--listen %s: expected a port from 0 to 65535 after ':'", orig);
        return -1;
    }
    memcpy(host, arg, hlen);
    host[hlen] = '\0';
    if (hlen == 0 || strcmp(host, "*") == 0)
        strcpy(host, "0.0.0.0");
    if (xf_resolve(host, port, 1, &l->addr, &alen, &why) == -1) {
        xf_err_set(err, "--listen %s:%s: %s", host, port, why);
        return -1;
    }
    l->addr_len = alen;
    return 0;
}

/* Writes the printable form of a socket address: "1.2.3.4:80" or "[::1]:80". */
static void
bench_up_addr_text(const struct sockaddr_storage *ss, char *out, size_t size)
{
    char ip[INET6_ADDRSTRLEN] = "?";

    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        snprintf(out, size, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        snprintf(out, size, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
    }
}

static int
bench_up_parse_num(const char *opt, const char *s, uint64_t max, uint64_t *out, struct xf_err *err)
{
    if (bench_up_parse_u64(s, strlen(s), max, out) == -1) {
        xf_err_set(err, "%s: expected an integer from 0 to %llu, got \"%s\"", opt,
                   (unsigned long long)max, s);
        return -1;
    }
    return 0;
}

static int
bench_up_parse_pct(const char *opt, const char *s, uint32_t *ppm, struct xf_err *err)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !isfinite(v) || v < 0 || v > 100) {
        xf_err_set(err, "%s: expected a percentage from 0 to 100, got \"%s\"", opt, s);
        return -1;
    }
    *ppm = (uint32_t)lround(v * (BENCH_UP_PPM / 100));
    return 0;
}

static int
bench_up_set_name(struct bench_up_cfg *cfg, const char *name, struct xf_err *err)
{
    size_t n = strlen(name);

    if (n == 0 || n > BENCH_UP_NAME_MAX) {
        xf_err_set(err, "--name: expected 1 to %d characters", BENCH_UP_NAME_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch <= 0x20 || ch >= 0x7f) {
            xf_err_set(err, "--name: only printable ASCII without spaces, got \"%s\"", name);
            return -1;
        }
    }
    memcpy(cfg->name, name, n + 1);
    cfg->name_len = n;
    return 0;
}

static void
bench_up_cfg_fini(struct bench_up_cfg *cfg)
{
    XF_FREE(cfg->listen);
    cfg->nlisten = 0;
}

/*
 * Builds the configuration from argv. Returns 0, 1 when --help was printed, or -1 with the reason
 * in `err`. The caller owns cfg and calls bench_up_cfg_fini in every case.
 */
static int
bench_up_cfg_parse(struct bench_up_cfg *cfg, int argc, char **argv, struct xf_err *err)
{
    enum {
        OPT_LISTEN = 256,
        OPT_NAME,
        OPT_DELAY,
        OPT_ERROR_RATE,
        OPT_CLOSE_RATE,
        OPT_BODY_BYTES,
        OPT_IDLE_CLOSE,
        OPT_THREADS,
        OPT_QUIET,
    };
    static const struct option opts[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"name", required_argument, NULL, OPT_NAME},
        {"delay", required_argument, NULL, OPT_DELAY},
        {"error-rate", required_argument, NULL, OPT_ERROR_RATE},
        {"close-rate", required_argument, NULL, OPT_CLOSE_RATE},
        {"body-bytes", required_argument, NULL, OPT_BODY_BYTES},
        {"idle-close", required_argument, NULL, OPT_IDLE_CLOSE},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"quiet", no_argument, NULL, OPT_QUIET},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint64_t v;
    int opt;

    memset(cfg, 0, sizeof(*cfg));
    cfg->threads = 1;
    bench_up_set_name(cfg, "upstream", NULL);
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case OPT_LISTEN: {
            struct bench_up_listen *l = realloc(cfg->listen, (cfg->nlisten + 1) * sizeof(*l));
            if (l == NULL) {
                xf_err_set(err, "out of memory");
                return -1;
            }
            cfg->listen = l;
            memset(&l[cfg->nlisten], 0, sizeof(*l));
            if (bench_up_parse_listen(optarg, &l[cfg->nlisten], err) == -1)
                return -1;
            cfg->nlisten++;
            break;
        }
        case OPT_NAME:
            if (bench_up_set_name(cfg, optarg, err) == -1)
                return -1;
            break;
        case OPT_DELAY:
            if (bench_up_parse_num("--delay", optarg, BENCH_UP_MS_MAX, &cfg->delay_ms, err) == -1)
                return -1;
            break;
        case OPT_ERROR_RATE:
            if (bench_up_parse_pct("--error-rate", optarg, &cfg->error_ppm, err) == -1)
                return -1;
            break;
        case OPT_CLOSE_RATE:
            if (bench_up_parse_pct("--close-rate", optarg, &cfg->close_ppm, err) == -1)
                return -1;
            break;
        case OPT_BODY_BYTES:
            if (bench_up_parse_num("--body-bytes", optarg, BENCH_UP_N_MAX, &cfg->body_bytes, err) ==
                -1)
                return -1;
            cfg->has_body_bytes = 1;
            break;
        case OPT_IDLE_CLOSE:
            if (bench_up_parse_num("--idle-close", optarg, BENCH_UP_MS_MAX, &cfg->idle_close_ms,
                                   err) == -1)
                return -1;
            break;
        case OPT_THREADS:
            if (bench_up_parse_num("--threads", optarg, BENCH_UP_THREADS_MAX, &v, err) == -1)
                return -1;
            if (v == 0) {
                xf_err_set(err, "--threads: expected 1 to %d", BENCH_UP_THREADS_MAX);
                return -1;
            }
            cfg->threads = (unsigned)v;
            break;
        case OPT_QUIET:
            cfg->quiet = 1;
            break;
        case 'h':
            return 1;
        default:
            xf_err_set(err, "unknown or incomplete option \"%s\"", argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        xf_err_set(err, "unexpected argument \"%s\"", argv[optind]);
        return -1;
    }
    if (cfg->nlisten == 0) {
        xf_err_set(err, "--listen ADDR:PORT is required");
        return -1;
    }
    cfg->name_line_len =
        (size_t)snprintf(cfg->name_line, sizeof(cfg->name_line), "%s\n", cfg->name);
    cfg->error_line_len =
        (size_t)snprintf(cfg->error_line, sizeof(cfg->error_line), "%s error\n", cfg->name);
    cfg->bad_line_len =
        (size_t)snprintf(cfg->bad_line, sizeof(cfg->bad_line), "%s bad request\n", cfg->name);
    return 0;
}

/*
 * Opens a listening socket on `l`. With `shared`, SO_REUSEPORT lets the other workers bind the
 * same port. Returns the socket or -1 with the reason in `err`.
 */
static int
bench_up_listen_open(const struct bench_up_listen *l, int shared, struct xf_err *err)
{
    int fd, one = 1;

    fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        xf_err_set(err, "socket: %s", strerror(errno));
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        (shared && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1) ||
        (l->addr.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)) {
        xf_err_set(err, "setsockopt: %s", strerror(errno));
        goto fail;
    }
    if (bind(fd, (const struct sockaddr *)&l->addr, l->addr_len) == -1) {
        xf_err_set(err, "bind %s: %s", l->text, strerror(errno));
        goto fail;
    }
    if (listen(fd, BENCH_UP_BACKLOG) == -1) {
        xf_err_set(err, "listen %s: %s", l->text, strerror(errno));
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return -1;
}

static void
bench_up_wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bench_up_worker *w = arg;
    uint64_t v;

    XF_UNUSED(what);
    if (read(fd, &v, sizeof(v)) == -1) {
        /* The loop stops either way. */
    }
    event_base_loopbreak(w->base);
}

/* SIGTERM or SIGINT, on worker 0: stop every loop; main frees everything after the joins. */
static void
bench_up_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct bench_up_worker *w = arg;
    uint64_t one = 1;

    XF_UNUSED(sig);
    XF_UNUSED(what);
    for (unsigned i = 1; i < w->cfg->threads; i++) {
        if (write(w->peers[i].wake_fd, &one, sizeof(one)) == -1) {
            /* An eventfd write only fails on overflow, which one write cannot reach. */
        }
    }
    event_base_loopbreak(w->base);
}

static void
bench_up_worker_fini(struct bench_up_worker *w)
{
    while (w->conns != NULL)
        bench_up_conn_free(w->conns);
    for (size_t i = 0; w->lev != NULL && i < w->cfg->nlisten; i++) {
        if (w->lev[i] != NULL)
            event_free(w->lev[i]);
    }
    for (size_t i = 0; w->lfd != NULL && i < w->cfg->nlisten; i++) {
        if (w->lfd[i] != -1)
            close(w->lfd[i]);
    }
    XF_FREE(w->lev);
    XF_FREE(w->lfd);
    for (size_t i = 0; i < XF_ARRAY_LEN(w->sig); i++) {
        if (w->sig[i] != NULL)
            event_free(w->sig[i]);
        w->sig[i] = NULL;
    }
    if (w->wake != NULL)
        event_free(w->wake);
    w->wake = NULL;
    if (w->wake_fd != -1)
        close(w->wake_fd);
    w->wake_fd = -1;
    if (w->accept_resume != NULL)
        event_free(w->accept_resume);
    w->accept_resume = NULL;
    if (w->base != NULL)
        event_base_free(w->base);
    w->base = NULL;
    XF_FREE(w->in_mem);
    XF_FREE(w->out_mem);
    XF_FREE(w->pattern);
}

/*
 * Opens worker w's listening sockets. Worker 0 binds the addresses as given and writes the bound
 * ones (real port, text) back into cfg->listen, so the other workers join the same ports.
 */
static int
bench_up_worker_listen(struct bench_up_worker *w, struct bench_up_cfg *cfg, struct xf_err *err)
{
    int shared = cfg->threads > 1;

    for (size_t i = 0; i < cfg->nlisten; i++) {
        struct bench_up_listen *l = &cfg->listen[i];
        if (w->id == 0)
            bench_up_addr_text(&l->addr, l->text, sizeof(l->text));
        if ((w->lfd[i] = bench_up_listen_open(l, shared, err)) == -1)
            return -1;
        if (w->id == 0) {
            l->addr_len = sizeof(l->addr);
            if (getsockname(w->lfd[i], (struct sockaddr *)&l->addr, &l->addr_len) == -1) {
                xf_err_set(err, "getsockname: %s", strerror(errno));
                return -1;
            }
            bench_up_addr_text(&l->addr, l->text, sizeof(l->text));
        }
        w->lev[i] = event_new(w->base, w->lfd[i], EV_READ | EV_PERSIST, bench_up_accept_cb, w);
        if (w->lev[i] == NULL || event_add(w->lev[i], NULL) == -1) {
            xf_err_set(err, "cannot watch the listening socket");
            return -1;
        }
    }
    w->accept_resume = evtimer_new(w->base, bench_up_accept_resume_cb, w);
    if (w->accept_resume == NULL) {
        xf_err_set(err, "evtimer_new failed");
        return -1;
    }
    return 0;
}

/* Worker 0 watches SIGTERM and SIGINT; the others an eventfd that worker 0 writes to stop them. */
static int
bench_up_worker_stop_events(struct bench_up_worker *w, struct xf_err *err)
{
    static const int sigs[2] = {SIGTERM, SIGINT};

    if (w->id == 0) {
        for (size_t i = 0; i < XF_ARRAY_LEN(sigs); i++) {
            w->sig[i] = evsignal_new(w->base, sigs[i], bench_up_signal_cb, w);
            if (w->sig[i] == NULL || event_add(w->sig[i], NULL) == -1) {
                xf_err_set(err, "cannot watch signals");
                return -1;
            }
        }
        return 0;
    }
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake_fd == -1) {
        xf_err_set(err, "eventfd: %s", strerror(errno));
        return -1;
    }
    w->wake = event_new(w->base, w->wake_fd, EV_READ, bench_up_wake_cb, w);
    if (w->wake == NULL || event_add(w->wake, NULL) == -1) {
        xf_err_set(err, "cannot watch the wake-up descriptor");
        return -1;
    }
    return 0;
}

/*
 * Sets up worker `id`: its loop (used by one thread only, so without locks), scratch buffers,
 * listening sockets and stop events. Returns 0 or -1 with the reason in `err`;
 * bench_up_worker_fini cleans up either way.
 */
static int
bench_up_worker_init(struct bench_up_worker *w, struct bench_up_cfg *cfg,
                     struct bench_up_worker *peers, unsigned id, struct xf_err *err)
{
    struct event_config *ec;

    memset(w, 0, sizeof(*w));
    w->cfg = cfg;
    w->peers = peers;
    w->id = id;
    w->wake_fd = -1;
    w->in_mem = malloc(BENCH_UP_IN_CAP);
    w->out_mem = malloc(BENCH_UP_OUT_CAP);
    w->pattern = malloc(BENCH_UP_PATTERN_LEN);
    w->lfd = malloc(cfg->nlisten * sizeof(*w->lfd));
    w->lev = calloc(cfg->nlisten, sizeof(*w->lev));
    if (w->in_mem == NULL || w->out_mem == NULL || w->pattern == NULL || w->lfd == NULL ||
        w->lev == NULL) {
        xf_err_set(err, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < cfg->nlisten; i++)
        w->lfd[i] = -1;
    bench_up_pattern_fill(w->pattern, BENCH_UP_PATTERN_LEN);
    if ((ec = event_config_new()) == NULL) {
        xf_err_set(err, "event_config_new failed");
        return -1;
    }
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    w->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (w->base == NULL) {
        xf_err_set(err, "event_base_new failed");
        return -1;
    }
    if (bench_up_worker_listen(w, cfg, err) == -1)
        return -1;
    return bench_up_worker_stop_events(w, err);
}

static void *
bench_up_worker_main(void *arg)
{
    struct bench_up_worker *w = arg;

    event_base_dispatch(w->base);
    return NULL;
}

/* Starts workers 1..N-1 with SIGTERM and SIGINT blocked, so worker 0 (main) receives them. */
static int
bench_up_workers_start(struct bench_up_worker *workers, unsigned n, struct xf_err *err)
{
    sigset_t block, old;
    int rc = 0;

    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    for (unsigned i = 1; i < n; i++) {
        int e = pthread_create(&workers[i].thread, NULL, bench_up_worker_main, &workers[i]);
        if (e != 0) {
            xf_err_set(err, "pthread_create: %s", strerror(e));
            rc = -1;
            break;
        }
        workers[i].started = 1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int
main(int argc, char **argv)
{
    struct bench_up_cfg cfg;
    struct bench_up_worker *workers = NULL;
    struct xf_err err = {{0}};
    uint64_t requests = 0, accepted = 0;
    unsigned n = 0;
    int rc;

    rc = bench_up_cfg_parse(&cfg, argc, argv, &err);
    if (rc == 1) {
        bench_up_usage(stdout);
        bench_up_cfg_fini(&cfg);
        return 0;
    }
    if (rc == -1) {
        fprintf(stderr, "xf-upstream: %s\n", err.msg);
        bench_up_usage(stderr);
        bench_up_cfg_fini(&cfg);
        return 2;
    }
    xf_log_min = cfg.quiet ? XF_LOG_ERR : XF_LOG_INFO;
    signal(SIGPIPE, SIG_IGN);
    rc = 1;
    if ((workers = calloc(cfg.threads, sizeof(*workers))) == NULL) {
        fprintf(stderr, "xf-upstream: out of memory\n");
        goto out;
    }
    for (n = 0; n < cfg.threads; n++) {
        if (bench_up_worker_init(&workers[n], &cfg, workers, n, &err) == -1) {
            n++;
            fprintf(stderr, "xf-upstream: %s\n", err.msg);
            goto out;
        }
    }
    for (size_t i = 0; i < cfg.nlisten; i++)
        fprintf(stderr, "xf-upstream %s listening on %s\n", cfg.name, cfg.listen[i].text);
    if (bench_up_workers_start(workers, n, &err) == -1) {
        fprintf(stderr, "xf-upstream: %s\n", err.msg);
        bench_up_signal_cb(SIGTERM, 0, &workers[0]);
        goto out;
    }
    rc = 0;
    event_base_dispatch(workers[0].base);
out:
    for (unsigned i = 0; i < n; i++) {
        if (workers[i].started)
            pthread_join(workers[i].thread, NULL);
    }
    for (unsigned i = 0; i < n; i++) {
        requests += workers[i].requests;
        accepted += workers[i].accepted;
        bench_up_worker_fini(&workers[i]);
    }
    if (rc == 0)
        XF_LOG(XF_LOG_INFO, "bench", "xf-upstream %s stopped: connections=%llu requests=%llu",
               cfg.name, (unsigned long long)accepted, (unsigned long long)requests);
    free(workers);
    bench_up_cfg_fini(&cfg);
    libevent_global_shutdown();
    return rc;
}
