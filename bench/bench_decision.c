/* bench/bench_decision.c -- nanoseconds per routing decision (bal_pick), per key source. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "balancer/bal.h"

#define BENCH_NODES  4
#define BENCH_ROUNDS 5

/* A JWT whose payload is {"iss":"https://idp.example","sub":"user-8d1c2f","aud":"api",...}. */
static const char bench_jwt[] =
    "Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlIiwic3ViIjoidXNlci04ZDFjMmYiLCJhdWQiOiJhcGkiLCJpYXQiOjE3"
    "MDAwMDAwMDAsImV4cCI6MTcwMDAwMzYwMCwic2NvcGUiOiJyZWFkIHdyaXRlIn0."
    "c2lnbmF0dXJlLW5vdC1jaGVja2Vk";

#define BENCH_HDR(n, v)                                                                            \
    {                                                                                              \
        .name = n, .value = v, .name_len = sizeof(n) - 1, .value_len = sizeof(v) - 1               \
    }

static const struct xf_hdr bench_hdrs[] = {
    BENCH_HDR("Host", "api.example.com"),
    BENCH_HDR("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"),
    BENCH_HDR("Accept", "application/json"),
    BENCH_HDR("Accept-Encoding", "gzip, deflate, br"),
    BENCH_HDR("Authorization", bench_jwt),
    BENCH_HDR("Cookie", "theme=dark; _ga=GA1.2.123456789.1700000000; sid=s-4f9a61c2; lang=en"),
    BENCH_HDR("X-Forwarded-For", "203.0.113.50, 10.1.2.3"),
    BENCH_HDR("X-Consumer-Id", "consumer-17"),
    BENCH_HDR("X-Request-Id", "4bf92f3577b34da6a3ce929d0e0e4736"),
};

struct bench_case {
    const char *name;
    enum cfg_key_kind kind;
    const char *arg;
    enum cfg_balance balance;
    bool trusted; /* trust 10.0.0.0/8, so the ip key walks X-Forwarded-For */
};

static const struct bench_case bench_cases[] = {
    {"header:x-consumer-id", CFG_KEY_HEADER, "x-consumer-id", CFG_BALANCE_HASH, false},
    {"cookie:sid", CFG_KEY_COOKIE, "sid", CFG_BALANCE_HASH, false},
    {"ip (peer)", CFG_KEY_IP, NULL, CFG_BALANCE_HASH, false},
    {"ip (behind a trusted proxy)", CFG_KEY_IP, NULL, CFG_BALANCE_HASH, true},
    {"jwt_sub:authorization", CFG_KEY_JWT_SUB, "authorization", CFG_BALANCE_HASH, false},
    {"query:tenant", CFG_KEY_QUERY, "tenant", CFG_BALANCE_HASH, false},
    {"random", CFG_KEY_RANDOM, NULL, CFG_BALANCE_HASH, false},
    {"header, round_robin", CFG_KEY_HEADER, "x-consumer-id", CFG_BALANCE_ROUND_ROBIN, false},
    {"header, least_conn", CFG_KEY_HEADER, "x-consumer-id", CFG_BALANCE_LEAST_CONN, false},
};

static double
bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* The key between quotes, bytes outside printable ASCII as \xNN; "(fallback!)" when the request
 * was keyed by its client address, which would mean the case does not measure its source. */
static void
bench_print_key(const struct bal_key *k)
{
    putchar('"');
    for (size_t i = 0; i < k->len; i++) {
        unsigned char c = (unsigned char)k->ptr[i];

        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            putchar(c);
        else
            printf("\\x%02x", c);
    }
    printf("\"%s", k->index >= 0 ? "" : " (fallback!)");
}

int
main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 10000000L;
    const char *only = argc > 2 ? argv[2] : NULL; /* run the cases whose name contains this */
    struct cfg cfg;
    struct cfg_node nodes[CFG_CLUSTER_COUNT][BENCH_NODES];
    struct cfg_split_key key;
    struct cfg_cidr trusted;
    char name[64];
    static struct bal_key found;
    uint32_t active[2 * BENCH_NODES] = {3, 1, 4, 1, 5, 9, 2, 6};
    struct bal_request req = {.hdrs = bench_hdrs,
                              .n_hdrs = sizeof(bench_hdrs) / sizeof(bench_hdrs[0]),
                              .target = "/v1/orders?page=2&tenant=acme",
                              .target_len = sizeof("/v1/orders?page=2&tenant=acme") - 1};

    if (n < BENCH_ROUNDS) {
        fprintf(stderr, "usage: %s [decisions per case [case name part]]\n", argv[0]);
        return 2;
    }
    req.peer.family = AF_INET;
    inet_pton(AF_INET, "10.9.8.7", req.peer.bytes);
    if (cfg_cidr_parse("10.0.0.0/8", &trusted, NULL) == -1)
        return 1;
    memset(&cfg, 0, sizeof(cfg));
    memset(nodes, 0, sizeof(nodes));
    cfg.split.weight_bp = 5000;
    cfg.split.seed = "crossfade";
    cfg.split.keys = &key;
    cfg.split.n_keys = 1;
    cfg.split.override_header = "X-Crossfade-Target"; /* on, as by default: its lookup is timed */
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++) {
        cfg.clusters[c].nodes = nodes[c];
        cfg.clusters[c].n_nodes = BENCH_NODES;
        for (int i = 0; i < BENCH_NODES; i++) {
            snprintf(nodes[c][i].addr.text, sizeof(nodes[c][i].addr.text), "10.0.%d.%d:8080", c + 1,
                     i + 1);
            nodes[c][i].weight = (unsigned)(i + 1);
        }
    }
    printf("bal_pick: %ld decisions per case, %d nodes in x and in y (weights 1-4), weight 50 %%,"
           " %zu request headers\n",
           n, BENCH_NODES, req.n_hdrs);
    printf("  %-28s %7s %7s   %s\n", "key source", "best", "mean", "key found (ns per decision)");
    for (size_t k = 0; k < sizeof(bench_cases) / sizeof(bench_cases[0]); k++) {
        const struct bench_case *bc = &bench_cases[k];
        struct bal_state st = {.rng = 1, .active = active};
        struct bal_snapshot *snap;
        struct xf_err err;
        uint64_t sum = 0, on_y = 0;
        double total, best;

        if (only != NULL && strstr(bc->name, only) == NULL)
            continue;
        key.kind = bc->kind;
        key.name = NULL;
        if (bc->arg != NULL) {
            snprintf(name, sizeof(name), "%s", bc->arg);
            key.name = name;
        }
        cfg.split.trusted_proxies = bc->trusted ? &trusted : NULL;
        cfg.split.n_trusted_proxies = bc->trusted ? 1 : 0;
        for (int c = 0; c < CFG_CLUSTER_COUNT; c++)
            cfg.clusters[c].balance = bc->balance;
        snap = bal_snapshot_new(&cfg, NULL, 1, &err);
        if (snap == NULL) {
            fprintf(stderr, "bench_decision: %s\n", err.msg);
            return 1;
        }
        /* N decisions in BENCH_ROUNDS rounds: the mean of all, and the best round, which is the
         * figure least disturbed by whatever else the machine runs. */
        total = 0;
        best = 0;
        for (int r = 0; r < BENCH_ROUNDS; r++) {
            double t0 = bench_now_ns(), dt;

            for (long i = 0; i < n / BENCH_ROUNDS; i++) {
                struct bal_choice ch;

                if (bal_pick(snap, &req, &st, &ch) == 0)
                    sum += ch.node->id + ch.bucket;
                on_y += ch.cluster == CFG_CLUSTER_Y;
            }
            dt = bench_now_ns() - t0;
            total += dt;
            if (r == 0 || dt < best)
                best = dt;
        }
        /* The key found, to show that the case measures what it says (not the fallback). */
        bal_key_find(snap->split, &req, &st, &found);
        printf("  %-28s %7.1f %7.1f   ", bc->name, best / (double)(n / BENCH_ROUNDS),
               total / (double)(n / BENCH_ROUNDS * BENCH_ROUNDS));
        bench_print_key(&found);
        printf("  (%.1f %% on y, checksum %llu)\n",
               100.0 * (double)on_y / (double)(n / BENCH_ROUNDS * BENCH_ROUNDS),
               (unsigned long long)sum);
        bal_snapshot_unref(snap);
    }
    return 0;
}
