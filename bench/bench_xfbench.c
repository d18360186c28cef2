/* bench/bench_xfbench.c -- xfbench's main: command line, the run's threads, live lines, reports. */
#include "bench/bench_xfbench.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <event2/event.h>
#include <openssl/ssl.h>

static void
bench_xfb_usage(FILE *f)
{
    fputs("usage: xfbench [options] URL      (http://HOST[:PORT]/PATH or https://...)\n"
          "load:\n"
          "  -t, --threads N         event loops (default 2)\n"
          "  -c, --connections N     keep-alive connections, shared by the threads (default 10)\n"
          "  -d, --duration D        how long: 10s, 1m, 500ms (default 10s)\n"
          "  -n, --requests N        stop after N requests (and at -d, when given)\n"
          "  -R, --rate R            open loop: R requests/s in all, latency from each request's\n"
          "                          scheduled time (default: closed loop, as fast as answered)\n"
          "  --keys N                N distinct split keys (default 10000; 0: none)\n"
          "  --zipf S                keys drawn by a Zipf law of exponent S (default uniform)\n"
          "  --key-header NAME       the key's header (default X-Consumer-ID)\n"
          "  --key-cookie NAME       send the key as cookie NAME instead\n"
          "  -m, --method M          request method (default GET)\n"
          "  -H, --header 'N: V'     extra request header (repeatable)\n"
          "  --body-size N           request body of N bytes\n"
          "  --timeout D             a response not complete after D fails (default 2s)\n"
          "  --seed N                random seed of the key draws (default 1)\n"
          "https:\n"
          "  --ca FILE               verify the server against the CAs of FILE (PEM; default:\n"
          "                          the system's CA store)\n"
          "  --insecure              do not verify the server's certificate\n"
          "split and rollout:\n"
          "  --route-header NAME     crossfade's split.expose header (default X-Crossfade-Route)\n"
          "  -s, --socket PATH       crossfade's admin socket: the weight (each change at its\n"
          "                          time, by watch), and --rollout\n"
          "  --rollout SCRIPT        \"10s set weight 10; 20s ramp 50 over 20s; 45s rollback\"\n"
          "  --check                 exit 1 if a request or a command failed, or the y share\n"
          "                          strayed from the weights in force\n"
          "  --tolerance PP          allowed gap between y share and weight (default 5)\n"
          "  --settle D              how long after a change responses may still follow the\n"
          "                          weight before it (default 250ms)\n"
          "  --check-min N           responses a stretch needs to be judged (default 100)\n"
          "  --weight P              the weight in force, for --check without -s\n"
          "output:\n"
          "  --json FILE             the whole run, per-second timeline included\n"
          "  --html FILE             one self-contained page with the charts\n"
          "  -q, --quiet             no live line each second (the summary stays)\n"
          "  -h, --help, -v, --version\n"
          "see docs/xfbench.md\n",
          f);
}

/* --- the command line --- */

static int
bench_xfb_opt_u64(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out,
                  struct xf_err *err)
{
    uint64_t v;

    if (bench_xfb_fixed_parse(s, strlen(s), 0, max, &v) == -1 || v < min) {
        xf_err_set(err, "%s: expected an integer from %llu to %llu, got \"%s\"", opt,
                   (unsigned long long)min, (unsigned long long)max, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int
bench_xfb_opt_duration(const char *opt, const char *s, uint64_t *ms, struct xf_err *err)
{
    if (bench_xfb_duration_parse(s, strlen(s), BENCH_XFB_DURATION_MAX, ms) == -1) {
        xf_err_set(err,
                   "%s: expected a duration such as 10s, 1.5s, 500ms or 2m (at most 7 days), "
                   "got \"%s\"",
                   opt, s);
        return -1;
    }
    return 0;
}

/* An HTTP token (RFC 9110): a method or a header name. */
static int
bench_xfb_is_token(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", ch) != NULL)
            return 0;
    }
    return 1;
}

static int
bench_xfb_check_header(const char *h, struct xf_err *err)
{
    const char *colon = strchr(h, ':');

    if (colon == NULL || !bench_xfb_is_token(h, (size_t)(colon - h)) || strpbrk(h, "\r\n")) {
        xf_err_set(err, "-H: expected 'Name: value' on one line, got \"%s\"", h);
        return -1;
    }
    return 0;
}

/*
 * Parses http://HOST[:PORT][/PATH] or https://... (port 80 or 443 by default); resolves HOST
 * ("localhost" is the loopback address). For https, o->tls_name is the host as written (without
 * brackets), which the certificate must hold.
 */
static int
bench_xfb_parse_url(struct bench_xfb_opts *o, struct xf_err *err)
{
    const char *u = o->url, *auth, *end, *host, *port;
    char hostbuf[256], portbuf[8];
    const char *why = NULL;
    unsigned alen = 0;
    size_t hlen;

    if (strncasecmp(u, "http://", 7) == 0) {
        auth = u + 7;
        port = "80";
    } else if (strncasecmp(u, "https://", 8) == 0) {
        auth = u + 8;
        port = "443";
        o->tls = 1;
    } else {
        xf_err_set(err, "URL %s: expected http://HOST[:PORT]/PATH or https://HOST[:PORT]/PATH", u);
        return -1;
    }
    end = auth + strcspn(auth, "/?#");
    if (end == auth || (size_t)(end - auth) >= sizeof(o->host) || memchr(auth, '@', end - auth)) {
        xf_err_set(err, "URL %s: bad host", u);
        return -1;
    }
    memcpy(o->host, auth, (size_t)(end - auth));
    o->host[end - auth] = '\0';
    if (*end == '#' || strlen(end) + 2 > sizeof(o->path) || strpbrk(end, " \r\n\t")) {
        xf_err_set(err, "URL %s: bad path", u);
        return -1;
    }
    snprintf(o->path, sizeof(o->path), "%s%s", *end == '/' ? "" : "/", end);
    host = o->host;
    if (host[0] == '[') {
        const char *rb = strchr(host, ']');
        if (rb == NULL || (rb[1] != '\0' && rb[1] != ':')) {
            xf_err_set(err, "URL %s: bad IPv6 address", u);
            return -1;
        }
        hlen = (size_t)(rb - host - 1);
        memcpy(hostbuf, host + 1, hlen);
        if (rb[1] == ':')
            port = rb + 2;
    } else {
        const char *colon = strchr(host, ':');
        hlen = colon != NULL ? (size_t)(colon - host) : strlen(host);
        memcpy(hostbuf, host, hlen);
        if (colon != NULL)
            port = colon + 1;
    }
    hostbuf[hlen] = '\0';
    if (hlen == 0) {
        xf_err_set(err, "URL %s: bad host", u);
        return -1;
    }
    if (o->tls) {
        unsigned char a6[sizeof(struct in6_addr)];
        memcpy(o->tls_name, hostbuf, hlen + 1);
        o->tls_name_is_ip =
            inet_pton(AF_INET, hostbuf, a6) == 1 || inet_pton(AF_INET6, hostbuf, a6) == 1;
    }
    {
        uint64_t pv;
        if (bench_xfb_fixed_parse(port, strlen(port), 0, 65535, &pv) == -1 || pv == 0) {
            xf_err_set(err, "URL %s: bad port \"%s\"", u, port);
            return -1;
        }
        snprintf(portbuf, sizeof(portbuf), "%u", (unsigned)pv & 0xffffu);
    }
    /* RFC 6761 6.3, as crossfade's config does: whatever /etc/hosts says (or lacks). */
    if (strcasecmp(hostbuf, "localhost") == 0)
        strcpy(hostbuf, "127.0.0.1");
    if (xf_resolve(hostbuf, portbuf, 0, &o->addr, &alen, &why) == -1) {
        xf_err_set(err, "URL %s: %s: %s", u, hostbuf, why);
        return -1;
    }
    o->addr_len = alen;
    return 0;
}

/* Checks what only makes sense once every option is known. */
static int
bench_xfb_opts_finish(struct bench_xfb_opts *o, int have_d, struct xf_err *err)
{
    if (o->conns < o->threads) {
        xf_err_set(err, "-c %u: at least one connection per thread (-t %u)", o->conns, o->threads);
        return -1;
    }
    if (!have_d && o->requests > 0)
        o->duration_ms = 0;
    if (o->duration_ms == 0 && o->requests == 0) {
        xf_err_set(err, "-d: the run needs a duration above 0 or -n");
        return -1;
    }
    if (o->keys.n == 0 && o->zipf_s > 0) {
        xf_err_set(err, "--zipf needs keys (--keys N with N > 0)");
        return -1;
    }
    if (o->zipf_s > 0) {
        o->keys.zipf = 1;
        if (bench_xfb_zipf_init(&o->keys.z, o->keys.n, o->zipf_s) == -1) {
            xf_err_set(err, "--zipf %g: expected an exponent above 0", o->zipf_s);
            return -1;
        }
    }
    if (o->key_header != NULL && o->key_cookie != NULL) {
        xf_err_set(err, "--key-header and --key-cookie: choose one");
        return -1;
    }
    if (o->key_header == NULL)
        o->key_header = "X-Consumer-ID";
    if (o->rollout_text != NULL && o->admin_socket == NULL) {
        xf_err_set(err, "--rollout needs the admin socket: -s PATH");
        return -1;
    }
    if (o->weight_bp >= 0 && o->admin_socket != NULL) {
        xf_err_set(err, "--weight is for runs without -s (with -s the admin socket tells it)");
        return -1;
    }
    if (o->rollout_text != NULL) {
        if (bench_xfb_script_parse(o->rollout_text, &o->script, err) == -1)
            return -1;
        for (size_t i = 0; o->duration_ms > 0 && i < o->script.n; i++) {
            if (o->script.steps[i].at_ms >= o->duration_ms) {
                xf_err_set(
                    err, "rollout step %zu: at %.3gs, not before the end of the run (-d %.3gs)",
                    i + 1, (double)o->script.steps[i].at_ms / 1000, (double)o->duration_ms / 1000);
                return -1;
            }
        }
    }
    if (strlen(o->route_header) >= 64 ||
        !bench_xfb_is_token(o->route_header, strlen(o->route_header))) {
        xf_err_set(err, "--route-header: expected a header name, got \"%s\"", o->route_header);
        return -1;
    }
    if (o->ca_file != NULL && o->insecure) {
        xf_err_set(err, "--ca and --insecure: choose one");
        return -1;
    }
    if (bench_xfb_parse_url(o, err) == -1)
        return -1;
    if (!o->tls && (o->ca_file != NULL || o->insecure)) {
        xf_err_set(err, "%s is for https URLs, got %s", o->insecure ? "--insecure" : "--ca",
                   o->url);
        return -1;
    }
    return 0;
}

enum bench_xfb_opt {
    BENCH_XFB_OPT_KEYS = 256,
    BENCH_XFB_OPT_ZIPF,
    BENCH_XFB_OPT_KEY_HEADER,
    BENCH_XFB_OPT_KEY_COOKIE,
    BENCH_XFB_OPT_BODY_SIZE,
    BENCH_XFB_OPT_TIMEOUT,
    BENCH_XFB_OPT_SEED,
    BENCH_XFB_OPT_ROUTE_HEADER,
    BENCH_XFB_OPT_ROLLOUT,
    BENCH_XFB_OPT_CHECK,
    BENCH_XFB_OPT_TOLERANCE,
    BENCH_XFB_OPT_SETTLE,
    BENCH_XFB_OPT_CHECK_MIN,
    BENCH_XFB_OPT_WEIGHT,
    BENCH_XFB_OPT_JSON,
    BENCH_XFB_OPT_HTML,
    BENCH_XFB_OPT_CA,
    BENCH_XFB_OPT_INSECURE,
};

static const struct option bench_xfb_longopts[] = {
    {"threads", required_argument, NULL, 't'},
    {"connections", required_argument, NULL, 'c'},
    {"duration", required_argument, NULL, 'd'},
    {"requests", required_argument, NULL, 'n'},
    {"rate", required_argument, NULL, 'R'},
    {"keys", required_argument, NULL, BENCH_XFB_OPT_KEYS},
    {"zipf", required_argument, NULL, BENCH_XFB_OPT_ZIPF},
    {"key-header", required_argument, NULL, BENCH_XFB_OPT_KEY_HEADER},
    {"key-cookie", required_argument, NULL, BENCH_XFB_OPT_KEY_COOKIE},
    {"method", required_argument, NULL, 'm'},
    {"header", required_argument, NULL, 'H'},
    {"body-size", required_argument, NULL, BENCH_XFB_OPT_BODY_SIZE},
    {"timeout", required_argument, NULL, BENCH_XFB_OPT_TIMEOUT},
    {"seed", required_argument, NULL, BENCH_XFB_OPT_SEED},
    {"ca", required_argument, NULL, BENCH_XFB_OPT_CA},
    {"insecure", no_argument, NULL, BENCH_XFB_OPT_INSECURE},
    {"route-header", required_argument, NULL, BENCH_XFB_OPT_ROUTE_HEADER},
    {"socket", required_argument, NULL, 's'},
    {"rollout", required_argument, NULL, BENCH_XFB_OPT_ROLLOUT},
    {"check", no_argument, NULL, BENCH_XFB_OPT_CHECK},
    {"tolerance", required_argument, NULL, BENCH_XFB_OPT_TOLERANCE},
    {"settle", required_argument, NULL, BENCH_XFB_OPT_SETTLE},
    {"check-min", required_argument, NULL, BENCH_XFB_OPT_CHECK_MIN},
    {"weight", required_argument, NULL, BENCH_XFB_OPT_WEIGHT},
    {"json", required_argument, NULL, BENCH_XFB_OPT_JSON},
    {"html", required_argument, NULL, BENCH_XFB_OPT_HTML},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'v'},
    {NULL, 0, NULL, 0},
};

static void
bench_xfb_opts_defaults(struct bench_xfb_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->threads = 2;
    o->conns = 10;
    o->duration_ms = 10000;
    o->keys.n = 10000;
    o->method = "GET";
    o->timeout_ms = 2000;
    o->route_header = "X-Crossfade-Route";
    o->tolerance_bp = 500;
    /* With each change's time known (watch), responses follow it within their latency. */
    o->settle_ms = 250;
    o->check_min = 100;
    o->weight_bp = -1;
    o->seed = 1;
}

/* The options that shape the load. Returns 0, -1 with err, or 1 when `opt` is not one of them. */
static int
bench_xfb_opt_load(struct bench_xfb_opts *o, int opt, const char *arg, struct xf_err *err)
{
    uint64_t v;

    switch (opt) {
    case 't':
        if (bench_xfb_opt_u64("-t", arg, 1, BENCH_XFB_THREADS_MAX, &v, err) == -1)
            return -1;
        o->threads = (unsigned)v;
        return 0;
    case 'c':
        if (bench_xfb_opt_u64("-c", arg, 1, BENCH_XFB_CONNS_MAX, &v, err) == -1)
            return -1;
        o->conns = (unsigned)v;
        return 0;
    case 'd':
        return bench_xfb_opt_duration("-d", arg, &o->duration_ms, err);
    case 'n':
        return bench_xfb_opt_u64("-n", arg, 1, UINT64_C(1) << 40, &o->requests, err);
    case 'R':
        if (bench_xfb_fixed_parse(arg, strlen(arg), 3, (uint64_t)BENCH_XFB_RATE_MAX * 1000,
                                  &o->rate_milli) == -1 ||
            o->rate_milli == 0) {
            xf_err_set(err, "--rate: expected requests/s above 0 and at most %d, got \"%s\"",
                       BENCH_XFB_RATE_MAX, arg);
            return -1;
        }
        return 0;
    case BENCH_XFB_OPT_KEYS:
        return bench_xfb_opt_u64("--keys", arg, 0, BENCH_XFB_KEYS_MAX, &o->keys.n, err);
    case BENCH_XFB_OPT_ZIPF: {
        char *end;
        errno = 0;
        o->zipf_s = strtod(arg, &end);
        if (*end != '\0' || end == arg || errno != 0 || !(o->zipf_s > 0) || o->zipf_s > 10) {
            xf_err_set(err, "--zipf: expected an exponent above 0 and at most 10, got \"%s\"", arg);
            return -1;
        }
        return 0;
    }
    case BENCH_XFB_OPT_KEY_HEADER:
    case BENCH_XFB_OPT_KEY_COOKIE: {
        int hdr = opt == BENCH_XFB_OPT_KEY_HEADER;
        if (!bench_xfb_is_token(arg, strlen(arg)) || strlen(arg) > 128) {
            xf_err_set(err, "%s: expected a %s name, got \"%s\"",
                       hdr ? "--key-header" : "--key-cookie", hdr ? "header" : "cookie", arg);
            return -1;
        }
        *(hdr ? &o->key_header : &o->key_cookie) = arg;
        return 0;
    }
    case 'm':
        if (!bench_xfb_is_token(arg, strlen(arg)) || strlen(arg) > 32) {
            xf_err_set(err, "-m: expected a method such as GET or POST, got \"%s\"", arg);
            return -1;
        }
        o->method = arg;
        return 0;
    case 'H':
        if (o->nheaders == BENCH_XFB_HEADERS_MAX) {
            xf_err_set(err, "-H: at most %d headers", BENCH_XFB_HEADERS_MAX);
            return -1;
        }
        if (bench_xfb_check_header(arg, err) == -1)
            return -1;
        o->headers[o->nheaders++] = arg;
        return 0;
    case BENCH_XFB_OPT_BODY_SIZE:
        return bench_xfb_opt_u64("--body-size", arg, 0, BENCH_XFB_BODY_MAX, &o->body_size, err);
    case BENCH_XFB_OPT_TIMEOUT:
        if (bench_xfb_opt_duration("--timeout", arg, &o->timeout_ms, err) == -1)
            return -1;
        if (o->timeout_ms == 0) {
            xf_err_set(err, "--timeout: expected more than 0");
            return -1;
        }
        return 0;
    case BENCH_XFB_OPT_SEED:
        return bench_xfb_opt_u64("--seed", arg, 0, UINT64_MAX, &o->seed, err);
    case BENCH_XFB_OPT_CA:
        o->ca_file = arg;
        return 0;
    case BENCH_XFB_OPT_INSECURE:
        o->insecure = 1;
        return 0;
    default:
        return 1;
    }
}

/* The options of the split, the rollout and the output. Same returns as bench_xfb_opt_load. */
static int
bench_xfb_opt_split(struct bench_xfb_opts *o, int opt, const char *arg, struct xf_err *err)
{
    uint64_t v;
    unsigned bp;

    switch (opt) {
    case BENCH_XFB_OPT_ROUTE_HEADER:
        o->route_header = arg;
        return 0;
    case 's':
        o->admin_socket = arg;
        return 0;
    case BENCH_XFB_OPT_ROLLOUT:
        o->rollout_text = arg;
        return 0;
    case BENCH_XFB_OPT_CHECK:
        o->check = 1;
        return 0;
    case BENCH_XFB_OPT_TOLERANCE:
        if (bench_xfb_fixed_parse(arg, strlen(arg), 2, 10000, &v) == -1) {
            xf_err_set(err, "--tolerance: expected percentage points from 0 to 100, got \"%s\"",
                       arg);
            return -1;
        }
        o->tolerance_bp = (unsigned)v;
        return 0;
    case BENCH_XFB_OPT_SETTLE:
        return bench_xfb_opt_duration("--settle", arg, &o->settle_ms, err);
    case BENCH_XFB_OPT_CHECK_MIN:
        return bench_xfb_opt_u64("--check-min", arg, 0, UINT64_MAX, &o->check_min, err);
    case BENCH_XFB_OPT_WEIGHT:
        if (bench_xfb_weight_parse(arg, strlen(arg), &bp) == -1) {
            xf_err_set(err, "--weight: expected 0 to 100 with at most two decimals, got \"%s\"",
                       arg);
            return -1;
        }
        o->weight_bp = (int)bp;
        return 0;
    case BENCH_XFB_OPT_JSON:
        o->json_path = arg;
        return 0;
    case BENCH_XFB_OPT_HTML:
        o->html_path = arg;
        return 0;
    case 'q':
        o->quiet = 1;
        return 0;
    default:
        return 1;
    }
}

/* Returns 0, 1 after --help, 2 after --version, -1 with the reason in err. */
static int
bench_xfb_opts_parse(struct bench_xfb_opts *o, int argc, char **argv, struct xf_err *err)
{
    int opt, have_d = 0;

    bench_xfb_opts_defaults(o);
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "t:c:d:n:R:m:H:s:qhv", bench_xfb_longopts, NULL)) != -1) {
        int rc;

        if (opt == 'h')
            return 1;
        if (opt == 'v') {
            printf("xfbench %s\n", XF_VERSION);
            return 2;
        }
        have_d |= opt == 'd';
        rc = bench_xfb_opt_load(o, opt, optarg, err);
        if (rc == 1)
            rc = bench_xfb_opt_split(o, opt, optarg, err);
        if (rc == 1) {
            xf_err_set(err, "unknown or incomplete option \"%s\"", argv[optind - 1]);
            return -1;
        }
        if (rc == -1)
            return -1;
    }
    if (optind != argc - 1) {
        xf_err_set(err, optind >= argc ? "the URL is missing" : "one URL only, got \"%s\" too",
                   optind < argc - 1 ? argv[optind + 1] : "");
        return -1;
    }
    o->url = argv[optind];
    return bench_xfb_opts_finish(o, have_d, err);
}

/* --- the request template --- */

/* Appends to a bounded buffer; returns -1 when it does not fit. */
static int bench_xfb_cat(char *buf, size_t cap, size_t *len, const char *fmt, ...) XF_PRINTF(4, 5);

static int
bench_xfb_cat(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap - *len)
        return -1;
    *len += (size_t)n;
    return 0;
}

static int
bench_xfb_user_has(const struct bench_xfb_opts *o, const char *name)
{
    for (size_t i = 0; i < o->nheaders; i++) {
        if (xf_span_ieq(o->headers[i], strcspn(o->headers[i], ":"), name))
            return 1;
    }
    return 0;
}

/*
 * Builds the request head around the key: prefix is everything up to the key's value, suffix from
 * after it through the empty line. Without keys the prefix is the whole head.
 */
static int
bench_xfb_template(struct bench_xfb_run *run, struct xf_err *err)
{
    const struct bench_xfb_opts *o = run->o;
    char *pre = malloc(BENCH_XFB_HEAD_MAX), *suf = malloc(BENCH_XFB_HEAD_MAX);
    size_t pl = 0, sl = 0;
    int bad = 0;

    run->prefix = pre;
    run->suffix = suf;
    if (pre == NULL || suf == NULL) {
        xf_err_set(err, "out of memory");
        return -1;
    }
    bad |= bench_xfb_cat(pre, BENCH_XFB_HEAD_MAX, &pl, "%s %s HTTP/1.1\r\n", o->method, o->path);
    if (!bench_xfb_user_has(o, "host"))
        bad |= bench_xfb_cat(pre, BENCH_XFB_HEAD_MAX, &pl, "Host: %s\r\n", o->host);
    for (size_t i = 0; i < o->nheaders; i++)
        bad |= bench_xfb_cat(pre, BENCH_XFB_HEAD_MAX, &pl, "%s\r\n", o->headers[i]);
    if (o->body_size > 0 || strcmp(o->method, "POST") == 0 || strcmp(o->method, "PUT") == 0)
        bad |= bench_xfb_cat(pre, BENCH_XFB_HEAD_MAX, &pl, "Content-Length: %llu\r\n",
                             (unsigned long long)o->body_size);
    if (o->keys.n > 0) {
        if (o->key_cookie != NULL)
            bad |= bench_xfb_cat(pre, BENCH_XFB_HEAD_MAX, &pl, "Cookie: %s=", o->key_cookie);
        else
            bad |= bench_xfb_cat(pre, BENCH_XFB_HEAD_MAX, &pl, "%s: ", o->key_header);
        bad |= bench_xfb_cat(suf, BENCH_XFB_HEAD_MAX, &sl, "\r\n\r\n");
    } else {
        bad |= bench_xfb_cat(pre, BENCH_XFB_HEAD_MAX, &pl, "\r\n");
    }
    if (bad || pl + 32 + sl > BENCH_XFB_HEAD_MAX) {
        xf_err_set(err, "the request head is over %d bytes", BENCH_XFB_HEAD_MAX);
        return -1;
    }
    run->prefix_len = pl;
    run->suffix_len = sl;
    run->head_cap = pl + 32 + sl;
    if (o->body_size > 0) {
        if ((run->body = malloc((size_t)o->body_size)) == NULL) {
            xf_err_set(err, "out of memory");
            return -1;
        }
        memset(run->body, 'x', (size_t)o->body_size);
    }
    run->route_name_len = strlen(o->route_header);
    for (size_t i = 0; i < run->route_name_len; i++) {
        char ch = o->route_header[i];
        run->route_name[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
    }
    run->route_name[run->route_name_len] = '\0';
    return 0;
}

/* --- the main thread's loop: live lines, the end of the run --- */

struct bench_xfb_main {
    struct bench_xfb_run *run;
    struct bench_xfb_ctl *ctl; /* borrowed; NULL without -s */
    struct event_base *base;
    struct event *tick, *sig[2];
    size_t printed; /* seconds printed so far */
    uint64_t done;  /* responses and errors so far (for -n) */
    int interrupted;
};

/* Fills in the weight of each closed second and prints the new ones. */
static void
bench_xfb_main_print(struct bench_xfb_main *m)
{
    struct bench_xfb_agg *a = &m->run->agg;

    pthread_mutex_lock(&a->mu);
    for (; m->printed < a->nsec; m->printed++) {
        struct bench_xfb_sec *s = &a->secs[m->printed];
        char line[256];
        s->weight_bp = m->run->o->weight_bp;
        if (m->ctl != NULL) {
            size_t nch;
            const struct bench_xfb_change *ch = bench_xfb_ctl_changes(m->ctl, &nch);
            s->weight_bp = bench_xfb_weight_at(bench_xfb_ctl_initial(m->ctl), ch, nch,
                                               (uint64_t)(m->printed + 1) * 1000000u);
        }
        m->done += s->c.responses + bench_xfb_counts_errors(&s->c);
        if (!m->run->o->quiet) {
            bench_xfb_live_line(m->run->o, m->printed, s, m->done, line, sizeof(line));
            fprintf(stderr, "%s\n", line);
        }
    }
    pthread_mutex_unlock(&a->mu);
}

static void
bench_xfb_main_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bench_xfb_main *m = arg;
    struct bench_xfb_run *run = m->run;
    uint64_t now = bench_xfb_now_ns();

    XF_UNUSED(fd);
    XF_UNUSED(what);
    if (bench_xfb_agg_close(&run->agg, (int64_t)((now - run->start_ns) / 1000000000u), 0) > 0)
        bench_xfb_main_print(m);
    if (atomic_load(&run->finished) == run->o->threads || (run->end_ns != 0 && now >= run->end_ns))
        event_base_loopbreak(m->base);
}

static void
bench_xfb_main_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct bench_xfb_main *m = arg;

    XF_UNUSED(sig);
    XF_UNUSED(what);
    m->interrupted = 1;
    atomic_store(&m->run->stop, 1);
    event_base_loopbreak(m->base);
}

/* Starts the workers with SIGINT and SIGTERM blocked: the main thread takes them. */
static int
bench_xfb_workers_start(struct bench_xfb_run *run, struct xf_err *err)
{
    sigset_t block, old;
    int rc = 0;

    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    for (unsigned i = 0; i < run->o->threads; i++) {
        int e =
            pthread_create(&run->workers[i].thread, NULL, bench_xfb_worker_main, &run->workers[i]);
        if (e != 0) {
            xf_err_set(err, "pthread_create: %s", strerror(e));
            rc = -1;
            break;
        }
        run->workers[i].started = 1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* Sorts routes by count, largest first (insertion: at most 64). */
static void
bench_xfb_routes_sort(struct bench_xfb_route *r, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        struct bench_xfb_route t = r[i];
        size_t j = i;
        while (j > 0 && (r[j - 1].count < t.count ||
                         (r[j - 1].count == t.count && strcmp(r[j - 1].name, t.name) > 0))) {
            r[j] = r[j - 1];
            j--;
        }
        r[j] = t;
    }
}

/* Sums the workers' totals into the result (after the joins). */
static void
bench_xfb_collect(struct bench_xfb_run *run, struct bench_xfb_result *r,
                  struct bench_xfb_route *routes)
{
    for (unsigned i = 0; i < run->o->threads; i++) {
        struct bench_xfb_worker *w = &run->workers[i];
        bench_xfb_counts_add(&r->totals, &w->total);
        bench_xfb_hist_merge(r->hist, w->total_h);
        r->connects += w->connects;
        r->routes_other += w->routes_other;
        if (r->tls_version == NULL && w->tls_version != NULL) {
            r->tls_version = w->tls_version;
            r->tls_cipher = w->tls_cipher;
        }
        if (r->tls_error[0] == '\0' && w->tls_error[0] != '\0')
            snprintf(r->tls_error, sizeof(r->tls_error), "%s", w->tls_error);
        for (size_t k = 0; k < w->nroutes; k++) {
            size_t j;
            for (j = 0; j < r->nroutes; j++) {
                if (strcmp(routes[j].name, w->routes[k].name) == 0)
                    break;
            }
            if (j == r->nroutes) {
                if (r->nroutes == BENCH_XFB_ROUTES_MAX) {
                    r->routes_other += w->routes[k].count;
                    continue;
                }
                routes[r->nroutes++] = w->routes[k];
            } else {
                routes[j].count += w->routes[k].count;
            }
        }
    }
    if (r->tls_version == NULL) {
        r->tls_version = run->tls_version;
        r->tls_cipher = run->tls_cipher;
    }
    bench_xfb_routes_sort(routes, r->nroutes);
    r->routes = routes;
}

static int
bench_xfb_write_report(const char *path, const struct bench_xfb_result *r,
                       int (*fn)(const struct bench_xfb_result *, FILE *))
{
    FILE *f = fopen(path, "w");
    int rc;

    if (f == NULL) {
        fprintf(stderr, "xfbench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    rc = fn(r, f);
    if (fclose(f) != 0 || rc == -1) {
        fprintf(stderr, "xfbench: %s: write failed\n", path);
        return -1;
    }
    return 0;
}

static void
bench_xfb_raise_nofile(unsigned conns)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)conns + 64;

    if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur < want)
        fprintf(stderr, "xfbench: warning: the open file limit (%llu) is below -c %u + 64\n",
                (unsigned long long)rl.rlim_cur, conns);
}

/* Builds the workers; returns 0 or -1 with err. Connections and -n go round the threads. */
static int
bench_xfb_workers_init(struct bench_xfb_run *run, struct xf_err *err)
{
    const struct bench_xfb_opts *o = run->o;
    size_t first = 0;

    if ((run->workers = calloc(o->threads, sizeof(*run->workers))) == NULL) {
        xf_err_set(err, "out of memory");
        return -1;
    }
    for (unsigned i = 0; i < o->threads; i++) {
        size_t n = o->conns / o->threads + (i < o->conns % o->threads);
        uint64_t quota = o->requests / o->threads + (i < o->requests % o->threads);
        if (bench_xfb_worker_init(&run->workers[i], run, i, first, n, quota, err) == -1)
            return -1;
        first += n;
    }
    return 0;
}

/* Runs the load; the workers are built. Returns 0, or -1 with err (then nothing was run). */
static int
bench_xfb_main_loop(struct bench_xfb_main *m, struct xf_err *err)
{
    struct bench_xfb_run *run = m->run;
    struct timeval tick = {.tv_sec = 0, .tv_usec = BENCH_XFB_TICK_MS * 1000};
    static const int sigs[2] = {SIGINT, SIGTERM};
    int rc = 0;

    m->base = event_base_new();
    if (m->base == NULL) {
        xf_err_set(err, "event_base_new failed");
        return -1;
    }
    m->tick = event_new(m->base, -1, EV_PERSIST, bench_xfb_main_tick_cb, m);
    for (size_t i = 0; i < 2; i++) {
        m->sig[i] = evsignal_new(m->base, sigs[i], bench_xfb_main_signal_cb, m);
        if (m->sig[i] == NULL || event_add(m->sig[i], NULL) == -1)
            rc = -1;
    }
    if (m->tick == NULL || rc == -1) {
        xf_err_set(err, "cannot set up the main loop");
        return -1;
    }
    run->start_ns = bench_xfb_now_ns();
    run->rate.start_ns = run->start_ns;
    run->rate.rate_milli = run->o->rate_milli;
    run->end_ns = run->o->duration_ms > 0 ? run->start_ns + run->o->duration_ms * 1000000u : 0;
    if (m->ctl != NULL && bench_xfb_ctl_start(m->ctl, m->base, run->start_ns) == -1) {
        xf_err_set(err, "cannot set up the admin socket's events");
        return -1;
    }
    event_add(m->tick, &tick);
    if (bench_xfb_workers_start(run, err) == -1) {
        atomic_store(&run->stop, 1);
        rc = -1;
    } else {
        event_base_dispatch(m->base);
    }
    atomic_store(&run->stop, 1);
    for (unsigned i = 0; i < run->o->threads; i++) {
        if (run->workers[i].started)
            pthread_join(run->workers[i].thread, NULL);
    }
    event_del(m->tick);
    if (m->ctl != NULL)
        bench_xfb_ctl_stop(m->ctl);
    return rc;
}

/* Everything after the load: the timeline closed, the result built, judged and reported. */
static int
bench_xfb_finish(struct bench_xfb_main *m)
{
    struct bench_xfb_run *run = m->run;
    const struct bench_xfb_opts *o = run->o;
    struct bench_xfb_result *r = calloc(1, sizeof(*r));
    struct bench_xfb_route *routes = calloc(BENCH_XFB_ROUTES_MAX, sizeof(*routes));
    struct bench_xfb_hist *hist = malloc(sizeof(*hist));
    const struct bench_xfb_change *changes = NULL;
    size_t nchanges = 0;
    uint64_t end = 0;
    int rc = 1;

    if (r == NULL || routes == NULL || hist == NULL) {
        fprintf(stderr, "xfbench: out of memory\n");
        goto out;
    }
    for (unsigned i = 0; i < o->threads; i++)
        end = XF_MAX(end, run->workers[i].finish_ns);
    if (run->end_ns != 0 && end > run->end_ns)
        end = run->end_ns;
    r->o = o;
    r->elapsed_s = end > run->start_ns ? (double)(end - run->start_ns) / 1e9 : 0;
    bench_xfb_agg_close(&run->agg, (int64_t)ceil(r->elapsed_s - 1e-6), 1);
    bench_xfb_main_print(m);
    r->secs = run->agg.secs;
    r->nsec = run->agg.nsec;
    if (r->nsec > 0) {
        double last = r->elapsed_s - (double)(r->nsec - 1);
        r->secs[r->nsec - 1].span_s = last > 0 && last < 1 ? last : 1;
    }
    r->initial_bp = m->ctl != NULL ? bench_xfb_ctl_initial(m->ctl) : o->weight_bp;
    r->final_bp = m->ctl != NULL ? bench_xfb_ctl_weight(m->ctl) : o->weight_bp;
    r->wsrc = o->weight_bp >= 0 ? BENCH_XFB_WSRC_OPTION : BENCH_XFB_WSRC_NONE;
    if (m->ctl != NULL) {
        r->events =
            (struct bench_xfb_event *)bench_xfb_ctl_events(m->ctl, &r->nevents, &r->events_dropped);
        changes = bench_xfb_ctl_changes(m->ctl, &nchanges);
        bench_xfb_ctl_weights(m->ctl, r);
    }
    r->changes = changes;
    r->nchanges = nchanges;
    /* The weight of each second from the history, now that every reply and event is in. */
    bench_xfb_weights_fill(r, changes, nchanges);
    r->interrupted = m->interrupted;
    bench_xfb_hist_reset(hist);
    r->hist = hist;
    bench_xfb_collect(run, r, routes);
    {
        time_t t = time(NULL) - (time_t)r->elapsed_s;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(r->started, sizeof(r->started), "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    if (o->check)
        bench_xfb_check(r, changes, nchanges);
    bench_xfb_report_text(r, stdout);
    fflush(stdout);
    rc = r->checked && !r->passed ? 1 : 0;
    if (o->json_path != NULL &&
        bench_xfb_write_report(o->json_path, r, bench_xfb_report_json) == -1)
        rc = 1;
    if (o->html_path != NULL &&
        bench_xfb_write_report(o->html_path, r, bench_xfb_report_html) == -1)
        rc = 1;
out:
    free(r);
    free(routes);
    free(hist);
    return rc;
}

/*
 * https, before the load: a certificate that fails verification stops the run (-1, said on
 * stderr), since every handshake of the run would fail the same way. A probe that cannot tell (no
 * connection, a handshake failing otherwise) only warns: the run counts those failures.
 */
static int
bench_xfb_main_probe(struct bench_xfb_run *run)
{
    struct xf_err err = {{0}};
    int rc = bench_xfb_tls_probe(run, &err);

    if (rc == -1) {
        fprintf(stderr, "xfbench: %s: %s\n", run->o->url, err.msg);
        return -1;
    }
    if (rc == 1)
        fprintf(stderr, "xfbench: warning: %s: %s; the run goes on and counts the failures\n",
                run->o->url, err.msg);
    return 0;
}

static void
bench_xfb_main_fini(struct bench_xfb_main *m)
{
    if (m->tick != NULL)
        event_free(m->tick);
    for (size_t i = 0; i < 2; i++) {
        if (m->sig[i] != NULL)
            event_free(m->sig[i]);
    }
    if (m->base != NULL)
        event_base_free(m->base);
}

int
main(int argc, char **argv)
{
    struct bench_xfb_opts opts;
    struct bench_xfb_run run;
    struct bench_xfb_main m;
    struct xf_err err = {{0}};
    int rc;

    memset(&run, 0, sizeof(run));
    memset(&m, 0, sizeof(m));
    rc = bench_xfb_opts_parse(&opts, argc, argv, &err);
    if (rc == 1 || rc == 2) {
        if (rc == 1)
            bench_xfb_usage(stdout);
        bench_xfb_script_fini(&opts.script);
        return 0;
    }
    if (rc == -1) {
        fprintf(stderr, "xfbench: %s\n", err.msg);
        fprintf(stderr, "try xfbench --help\n");
        bench_xfb_script_fini(&opts.script);
        return 2;
    }
    xf_log_min = XF_LOG_WARN;
    signal(SIGPIPE, SIG_IGN);
    bench_xfb_raise_nofile(opts.conns);
    rc = 1;
    run.o = &opts;
    m.run = &run;
    if (bench_xfb_agg_init(&run.agg, opts.threads) == -1) {
        fprintf(stderr, "xfbench: out of memory\n");
        goto out;
    }
    if (opts.tls && (run.ssl_ctx = bench_xfb_tls_ctx_new(&opts, &err)) == NULL) {
        fprintf(stderr, "xfbench: %s\n", err.msg);
        rc = 2;
        goto out;
    }
    if (bench_xfb_template(&run, &err) == -1 || bench_xfb_workers_init(&run, &err) == -1)
        goto fail;
    if (opts.tls && bench_xfb_main_probe(&run) == -1)
        goto out;
    if (opts.admin_socket != NULL && (m.ctl = bench_xfb_ctl_new(&opts, &err)) == NULL)
        goto fail;
    if (bench_xfb_main_loop(&m, &err) == -1)
        goto fail;
    rc = bench_xfb_finish(&m);
    goto out;
fail:
    fprintf(stderr, "xfbench: %s\n", err.msg);
out:
    bench_xfb_ctl_free(m.ctl);
    for (unsigned i = 0; run.workers != NULL && i < opts.threads; i++)
        bench_xfb_worker_fini(&run.workers[i]);
    free(run.workers);
    bench_xfb_main_fini(&m);
    if (run.agg.flushed != NULL)
        bench_xfb_agg_fini(&run.agg);
    free(run.prefix);
    free(run.suffix);
    free(run.body);
    SSL_CTX_free(run.ssl_ctx);
    bench_xfb_script_fini(&opts.script);
    libevent_global_shutdown();
    return rc;
}
