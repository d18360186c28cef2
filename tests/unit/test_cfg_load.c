/* tests/unit/test_cfg_load.c -- valid files map onto struct cfg; defaults; reading from disk. */
#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "config/cfg.h"

#define LISTEN "listen:\n  - address: \"127.0.0.1:8000\"\n"
#define CLUSTERS                                                                                   \
    "clusters:\n"                                                                                  \
    "  x:\n"                                                                                       \
    "    nodes: [\"10.0.0.1:8000\"]\n"                                                             \
    "  y:\n"                                                                                       \
    "    nodes: [\"10.0.1.1:8000\"]\n"
#define BASE LISTEN CLUSTERS

/* Parses `yaml` as "t.yaml" and asserts that it is accepted. The caller frees the result. */
static struct cfg *
parse_ok(const char *yaml)
{
    struct xf_err err = {{0}};
    struct cfg *cfg = cfg_parse(yaml, strlen(yaml), "t.yaml", &err);

    cr_assert(not(eq(ptr, cfg, NULL)), "rejected: %s\n%s", err.msg, yaml);
    return cfg;
}

/* Asserts that `a` holds IPv4 `ip` and `port`, and kept `text` as written. */
static void
assert_ipv4(const struct cfg_addr *a, const char *text, const char *ip, unsigned port)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->sa;
    struct in_addr want;

    cr_assert(eq(int, inet_pton(AF_INET, ip, &want), 1));
    cr_assert(eq(str, (char *)a->text, (char *)text));
    cr_assert(eq(int, sin->sin_family, AF_INET), "%s", text);
    cr_assert(eq(u32, sin->sin_addr.s_addr, want.s_addr), "%s", text);
    cr_assert(eq(u16, ntohs(sin->sin_port), port), "%s", text);
    cr_assert(eq(uint, a->sa_len, (unsigned)sizeof(*sin)), "%s", text);
}

/* A file that sets every key to something other than its default. */
static const char full_yaml[] =
    "listen:\n"
    "  - address: \"127.0.0.1:8000\"\n"
    "  - address: \"[::1]:8443\"\n"
    "    role: admin_api\n"
    "  - address: \"127.0.0.2:9000\"\n"
    "    role: proxy\n"
    "admin:\n"
    "  socket: \"/tmp/xf-test/admin.sock\"\n"
    "split:\n"
    "  weight: 12.5\n"
    "  key: [\"header:X-Consumer-ID\", \"cookie:Session\", \"query:user\", ip,\n"
    "        \"jwt_sub:Authorization\", basic_user, random]\n"
    "  seed: \"upgrade-2026-11\"\n"
    "  trusted_proxies: [\"10.0.0.0/8\", \"192.168.1.5\", \"2001:db8::/32\", \"::1/128\"]\n"
    "  override_header: \"X-Test-Side\"\n"
    "  override_cookie: \"crossfade_target\"\n"
    "  override_from: [\"127.0.0.0/8\", \"::1\"]\n"
    "  expose: \"X-Crossfade-Route\"\n"
    "clusters:\n"
    "  x:\n"
    "    nodes: [\"10.0.0.1:8000\",\n"
    "            {address: \"10.0.0.2:8000\", weight: 2, max_connections: 50}]\n"
    "    balance: round_robin\n"
    "    failover: true\n"
    "    max_connections: 200\n"
    "    max_pending: 0\n"
    "    health: {path: \"/healthz?deep=1\", host: \"status.local\", port: 8100,\n"
    "             interval: 5s, timeout: 1500ms, rise: 1, fall: 10, expect: \"204\"}\n"
    "    outlier: {failures: 0, ejection: 30s, max_ejection: 1h}\n"
    "  y:\n"
    "    balance: least_conn\n"
    "    failover: no\n"
    "    max_pending: 20\n"
    "    health:\n"
    "      path: /ping\n"
    "      expect: 200-299\n"
    "    nodes:\n"
    "      - \"10.0.1.1:8000\"\n"
    "      - address: \"10.0.1.2:8001\"\n"
    "        weight: 0\n"
    "        max_pending: 5\n"
    "      - address: \"10.0.1.3:8002\"\n"
    "        weight: 1000\n"
    "        max_connections: 7\n"
    "    outlier:\n"
    "      failures: 1000\n"
    "timeouts: {connect: 1500ms, client_header: 5s, client_idle: 2m, upstream_response: 1m30s,\n"
    "           upstream_idle: 45, shutdown: 1h, queue: 250ms}\n"
    "limits: {max_connections: 1000, max_request_line_bytes: 4096, max_header_bytes: 32768,\n"
    "         max_headers: 50, max_body_bytes: 10485760}\n"
    "retries: 0\n"
    "access_log: \"/var/log/crossfade/access.log\"\n"
    "log_level: debug\n";

Test(cfg_full, maps_listeners_and_their_roles)
{
    struct cfg *cfg = parse_ok(full_yaml);
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&cfg->listeners[1].addr.sa;

    cr_assert(eq(sz, cfg->n_listeners, 3));
    assert_ipv4(&cfg->listeners[0].addr, "127.0.0.1:8000", "127.0.0.1", 8000);
    cr_assert(eq(int, cfg->listeners[0].role, CFG_ROLE_PROXY));
    cr_assert(eq(str, cfg->listeners[1].addr.text, "[::1]:8443"));
    cr_assert(eq(int, sin6->sin6_family, AF_INET6));
    cr_assert(eq(u16, ntohs(sin6->sin6_port), 8443));
    cr_assert(eq(int, IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr) != 0, 1));
    cr_assert(eq(uint, cfg->listeners[1].addr.sa_len, (unsigned)sizeof(*sin6)));
    cr_assert(eq(int, cfg->listeners[1].role, CFG_ROLE_ADMIN_API));
    assert_ipv4(&cfg->listeners[2].addr, "127.0.0.2:9000", "127.0.0.2", 9000);
    cr_assert(eq(int, cfg->listeners[2].role, CFG_ROLE_PROXY));
    cfg_free(cfg);
}

Test(cfg_full, maps_admin_split_and_logging)
{
    struct cfg *cfg = parse_ok(full_yaml);

    cr_assert(eq(str, cfg->path, "t.yaml"));
    cr_assert(eq(str, cfg->admin_socket, "/tmp/xf-test/admin.sock"));
    cr_assert(eq(uint, cfg->split.weight_bp, 1250));
    cr_assert(eq(str, cfg->split.seed, "upgrade-2026-11"));
    cr_assert(eq(str, cfg->access_log, "/var/log/crossfade/access.log"));
    cr_assert(eq(int, cfg->log_level, XF_LOG_DEBUG));
    cfg_free(cfg);
}

Test(cfg_full, maps_every_split_key_kind_in_order)
{
    struct cfg *cfg = parse_ok(full_yaml);
    const struct cfg_split_key *k = cfg->split.keys;

    cr_assert(eq(sz, cfg->split.n_keys, 7));
    cr_assert(eq(int, k[0].kind, CFG_KEY_HEADER));
    cr_assert(eq(str, k[0].name, "x-consumer-id"), "header names are kept in lower case");
    cr_assert(eq(int, k[1].kind, CFG_KEY_COOKIE));
    cr_assert(eq(str, k[1].name, "Session"), "cookie names are case-sensitive");
    cr_assert(eq(int, k[2].kind, CFG_KEY_QUERY));
    cr_assert(eq(str, k[2].name, "user"));
    cr_assert(eq(int, k[3].kind, CFG_KEY_IP));
    cr_assert(eq(ptr, k[3].name, NULL));
    cr_assert(eq(int, k[4].kind, CFG_KEY_JWT_SUB));
    cr_assert(eq(str, k[4].name, "authorization"));
    cr_assert(eq(int, k[5].kind, CFG_KEY_BASIC_USER));
    cr_assert(eq(ptr, k[5].name, NULL));
    cr_assert(eq(int, k[6].kind, CFG_KEY_RANDOM));
    cr_assert(eq(ptr, k[6].name, NULL));
    cfg_free(cfg);
}

Test(cfg_full, maps_both_clusters_and_node_weights)
{
    struct cfg *cfg = parse_ok(full_yaml);
    const struct cfg_cluster *x = &cfg->clusters[CFG_CLUSTER_X];
    const struct cfg_cluster *y = &cfg->clusters[CFG_CLUSTER_Y];

    cr_assert(eq(sz, x->n_nodes, 2));
    assert_ipv4(&x->nodes[0].addr, "10.0.0.1:8000", "10.0.0.1", 8000);
    cr_assert(eq(uint, x->nodes[0].weight, 1));
    assert_ipv4(&x->nodes[1].addr, "10.0.0.2:8000", "10.0.0.2", 8000);
    cr_assert(eq(uint, x->nodes[1].weight, 2));
    cr_assert(eq(sz, y->n_nodes, 3));
    assert_ipv4(&y->nodes[0].addr, "10.0.1.1:8000", "10.0.1.1", 8000);
    cr_assert(eq(uint, y->nodes[0].weight, 1));
    assert_ipv4(&y->nodes[1].addr, "10.0.1.2:8001", "10.0.1.2", 8001);
    cr_assert(eq(uint, y->nodes[1].weight, 0));
    assert_ipv4(&y->nodes[2].addr, "10.0.1.3:8002", "10.0.1.3", 8002);
    cr_assert(eq(uint, y->nodes[2].weight, 1000));
    cfg_free(cfg);
}

/* Asserts that `c` is the network `text` of `family` and `prefix`, with the 16 bytes `want`. */
static void
assert_cidr(const struct cfg_cidr *c, const char *text, int family, unsigned prefix,
            const uint8_t want[16])
{
    cr_assert(eq(str, (char *)c->text, (char *)text));
    cr_assert(eq(int, c->family, family), "%s", text);
    cr_assert(eq(uint, c->prefix, prefix), "%s", text);
    for (size_t i = 0; i < 16; i++)
        cr_assert(eq(u8, c->addr[i], want[i]), "%s: byte %zu", text, i);
}

Test(cfg_full, maps_trusted_proxies_to_networks_in_order)
{
    static const uint8_t ten[16] = {10}, host[16] = {192, 168, 1, 5};
    static const uint8_t doc[16] = {0x20, 0x01, 0x0d, 0xb8}, loop[16] = {[15] = 1};
    struct cfg *cfg = parse_ok(full_yaml);
    const struct cfg_cidr *t = cfg->split.trusted_proxies;

    cr_assert(eq(sz, cfg->split.n_trusted_proxies, 4));
    assert_cidr(&t[0], "10.0.0.0/8", AF_INET, 8, ten);
    assert_cidr(&t[1], "192.168.1.5", AF_INET, 32, host);
    assert_cidr(&t[2], "2001:db8::/32", AF_INET6, 32, doc);
    assert_cidr(&t[3], "::1/128", AF_INET6, 128, loop);
    cfg_free(cfg);
}

Test(cfg_full, maps_the_tester_override_and_expose_as_written)
{
    static const uint8_t lo[16] = {127}, loop[16] = {[15] = 1};
    struct cfg *cfg = parse_ok(full_yaml);
    const struct cfg_split *split = &cfg->split;

    cr_assert(eq(str, split->override_header, "X-Test-Side"));
    cr_assert(eq(str, split->override_cookie, "crossfade_target"));
    cr_assert(eq(sz, split->n_override_from, 2));
    assert_cidr(&split->override_from[0], "127.0.0.0/8", AF_INET, 8, lo);
    assert_cidr(&split->override_from[1], "::1", AF_INET6, 128, loop);
    cr_assert(eq(str, split->expose, "X-Crossfade-Route"));
    cfg_free(cfg);
}

Test(cfg_full, maps_the_balance_of_each_cluster)
{
    struct cfg *cfg = parse_ok(full_yaml);

    cr_assert(eq(int, cfg->clusters[CFG_CLUSTER_X].balance, CFG_BALANCE_ROUND_ROBIN));
    cr_assert(eq(int, cfg->clusters[CFG_CLUSTER_Y].balance, CFG_BALANCE_LEAST_CONN));
    cfg_free(cfg);
}

Test(cfg_full, maps_timeouts_in_milliseconds)
{
    struct cfg *cfg = parse_ok(full_yaml);

    cr_assert(eq(uint, cfg->timeouts.connect_ms, 1500));
    cr_assert(eq(uint, cfg->timeouts.client_header_ms, 5000));
    cr_assert(eq(uint, cfg->timeouts.client_idle_ms, 120000));
    cr_assert(eq(uint, cfg->timeouts.upstream_response_ms, 90000));
    cr_assert(eq(uint, cfg->timeouts.upstream_idle_ms, 45000));
    cr_assert(eq(uint, cfg->timeouts.shutdown_ms, 3600000));
    cr_assert(eq(uint, cfg->timeouts.queue_ms, 250));
    cfg_free(cfg);
}

Test(cfg_full, maps_node_limits_over_the_cluster_values)
{
    struct cfg *cfg = parse_ok(full_yaml);
    const struct cfg_cluster *x = &cfg->clusters[CFG_CLUSTER_X];
    const struct cfg_cluster *y = &cfg->clusters[CFG_CLUSTER_Y];

    cr_assert(eq(uint, x->max_connections, 200));
    cr_assert(eq(uint, x->max_pending, 0));
    cr_assert(eq(uint, x->nodes[0].max_connections, 200), "given after the nodes, still theirs");
    cr_assert(eq(uint, x->nodes[0].max_pending, 0));
    cr_assert(eq(uint, x->nodes[1].max_connections, 50));
    cr_assert(eq(uint, x->nodes[1].max_pending, 0));
    cr_assert(eq(uint, y->max_connections, 0));
    cr_assert(eq(uint, y->max_pending, 20));
    cr_assert(eq(uint, y->nodes[0].max_connections, 0));
    cr_assert(eq(uint, y->nodes[0].max_pending, 20));
    cr_assert(eq(uint, y->nodes[1].max_connections, 0));
    cr_assert(eq(uint, y->nodes[1].max_pending, 5));
    cr_assert(eq(uint, y->nodes[2].max_connections, 7));
    cr_assert(eq(uint, y->nodes[2].max_pending, 20));
    cfg_free(cfg);
}

Test(cfg_full, maps_every_health_key)
{
    struct cfg *cfg = parse_ok(full_yaml);
    const struct cfg_health *x = &cfg->clusters[CFG_CLUSTER_X].health;
    const struct cfg_health *y = &cfg->clusters[CFG_CLUSTER_Y].health;

    cr_assert(eq(int, x->enabled, true));
    cr_assert(eq(str, x->path, "/healthz?deep=1"));
    cr_assert(eq(str, x->host, "status.local"));
    cr_assert(eq(u16, x->port, 8100));
    cr_assert(eq(uint, x->interval_ms, 5000));
    cr_assert(eq(uint, x->timeout_ms, 1500));
    cr_assert(eq(uint, x->rise, 1));
    cr_assert(eq(uint, x->fall, 10));
    cr_assert(eq(uint, x->expect_min, 204));
    cr_assert(eq(uint, x->expect_max, 204));
    cr_assert(eq(int, y->enabled, true));
    cr_assert(eq(str, y->path, "/ping"));
    cr_assert(eq(ptr, y->host, NULL));
    cr_assert(eq(u16, y->port, 0));
    cr_assert(eq(uint, y->interval_ms, 2000));
    cr_assert(eq(uint, y->timeout_ms, 1000));
    cr_assert(eq(uint, y->rise, 2));
    cr_assert(eq(uint, y->fall, 3));
    cr_assert(eq(uint, y->expect_min, 200));
    cr_assert(eq(uint, y->expect_max, 299));
    cfg_free(cfg);
}

Test(cfg_full, maps_failover_outlier_detection_and_retries)
{
    struct cfg *cfg = parse_ok(full_yaml);
    const struct cfg_cluster *x = &cfg->clusters[CFG_CLUSTER_X];
    const struct cfg_cluster *y = &cfg->clusters[CFG_CLUSTER_Y];

    cr_assert(eq(int, x->failover, true));
    cr_assert(eq(int, y->failover, false));
    cr_assert(eq(uint, x->outlier.failures, 0));
    cr_assert(eq(uint, x->outlier.ejection_ms, 30000));
    cr_assert(eq(uint, x->outlier.max_ejection_ms, 3600000));
    cr_assert(eq(uint, y->outlier.failures, 1000));
    cr_assert(eq(uint, y->outlier.ejection_ms, 10000));
    cr_assert(eq(uint, y->outlier.max_ejection_ms, 300000));
    cr_assert(eq(uint, cfg->retries, 0));
    cfg_free(cfg);
}

Test(cfg_full, maps_limits)
{
    struct cfg *cfg = parse_ok(full_yaml);

    cr_assert(eq(uint, cfg->limits.max_connections, 1000));
    cr_assert(eq(uint, cfg->limits.max_request_line_bytes, 4096));
    cr_assert(eq(uint, cfg->limits.max_header_bytes, 32768));
    cr_assert(eq(uint, cfg->limits.max_headers, 50));
    cr_assert(eq(u64, cfg->limits.max_body_bytes, 10485760));
    cfg_free(cfg);
}

Test(cfg_defaults, fill_every_key_left_out)
{
    struct cfg *cfg = parse_ok(BASE);

    cr_assert(eq(str, cfg->admin_socket, "/run/crossfade/admin.sock"));
    cr_assert(eq(uint, cfg->split.weight_bp, 0));
    cr_assert(eq(sz, cfg->split.n_keys, 1));
    cr_assert(eq(int, cfg->split.keys[0].kind, CFG_KEY_IP));
    cr_assert(eq(ptr, cfg->split.keys[0].name, NULL));
    cr_assert(eq(str, cfg->split.seed, "crossfade"));
    cr_assert(eq(sz, cfg->split.n_trusted_proxies, 0));
    cr_assert(eq(ptr, cfg->split.trusted_proxies, NULL));
    cr_assert(eq(str, cfg->split.override_header, "X-Crossfade-Target"));
    cr_assert(eq(ptr, cfg->split.override_cookie, NULL));
    /* Overrides from this machine only until the testers' networks are named. */
    cr_assert(eq(sz, cfg->split.n_override_from, 2));
    cr_assert(eq(str, cfg->split.override_from[0].text, "127.0.0.0/8"));
    cr_assert(eq(uint, cfg->split.override_from[0].prefix, 8));
    cr_assert(eq(str, cfg->split.override_from[1].text, "::1"));
    cr_assert(eq(uint, cfg->split.override_from[1].prefix, 128));
    cr_assert(not(cfg->split.override_any));
    cr_assert(eq(ptr, cfg->split.expose, NULL));
    cr_assert(eq(int, cfg->clusters[CFG_CLUSTER_X].balance, CFG_BALANCE_HASH));
    cr_assert(eq(int, cfg->clusters[CFG_CLUSTER_Y].balance, CFG_BALANCE_HASH));
    cr_assert(eq(uint, cfg->timeouts.connect_ms, 3000));
    cr_assert(eq(uint, cfg->timeouts.client_header_ms, 10000));
    cr_assert(eq(uint, cfg->timeouts.client_idle_ms, 60000));
    cr_assert(eq(uint, cfg->timeouts.upstream_response_ms, 60000));
    cr_assert(eq(uint, cfg->timeouts.upstream_idle_ms, 30000));
    cr_assert(eq(uint, cfg->timeouts.shutdown_ms, 10000));
    cr_assert(eq(uint, cfg->timeouts.queue_ms, 5000));
    cr_assert(eq(uint, cfg->timeouts.tunnel_idle_ms, 3600000));
    cr_assert(eq(uint, cfg->timeouts.client_request_ms, 0), "client_request is off by default");
    cr_assert(eq(uint, cfg->limits.max_requests_per_connection, 0));
    cr_assert(eq(uint, cfg->limits.request_buffer_bytes, 16384), "bodies up to 16 KiB buffered");
    cr_assert(eq(uint, cfg->tunnels.close_rate, 200));
    cr_assert(not(cfg->tunnels.follow_weight));
    cr_assert(eq(uint, cfg->retries, 2));
    cr_assert(eq(uint, cfg->limits.max_connections, 20000));
    cr_assert(eq(uint, cfg->limits.max_request_line_bytes, 8192));
    cr_assert(eq(uint, cfg->limits.max_header_bytes, 16384));
    cr_assert(eq(uint, cfg->limits.max_headers, 100));
    cr_assert(eq(u64, cfg->limits.max_body_bytes, 0));
    cr_assert(eq(str, cfg->access_log, "-"));
    cr_assert(eq(int, cfg->log_level, XF_LOG_INFO));
    cr_assert(eq(ptr, cfg->state_file, NULL));
    cfg_free(cfg);
}

Test(cfg_defaults, give_a_listener_the_proxy_role_and_a_node_weight_1)
{
    struct cfg *cfg = parse_ok(BASE);

    cr_assert(eq(sz, cfg->n_listeners, 1));
    cr_assert(eq(int, cfg->listeners[0].role, CFG_ROLE_PROXY));
    cr_assert(eq(sz, cfg->clusters[CFG_CLUSTER_X].n_nodes, 1));
    cr_assert(eq(uint, cfg->clusters[CFG_CLUSTER_X].nodes[0].weight, 1));
    cr_assert(eq(uint, cfg->clusters[CFG_CLUSTER_Y].nodes[0].weight, 1));
    cfg_free(cfg);
}

Test(cfg_defaults, leave_checks_off_and_fill_the_cluster_settings)
{
    struct cfg *cfg = parse_ok(BASE);

    for (int id = CFG_CLUSTER_X; id < CFG_CLUSTER_COUNT; id++) {
        const struct cfg_cluster *c = &cfg->clusters[id];

        cr_assert(eq(int, c->failover, id == CFG_CLUSTER_Y), "failover only from y to x");
        cr_assert(eq(uint, c->max_connections, 0));
        cr_assert(eq(uint, c->max_pending, 100));
        cr_assert(eq(uint, c->nodes[0].max_connections, 0));
        cr_assert(eq(uint, c->nodes[0].max_pending, 100));
        cr_assert(eq(int, c->health.enabled, false));
        cr_assert(eq(ptr, c->health.path, NULL));
        cr_assert(eq(ptr, c->health.host, NULL));
        cr_assert(eq(u16, c->health.port, 0));
        cr_assert(eq(uint, c->health.interval_ms, 2000));
        cr_assert(eq(uint, c->health.timeout_ms, 1000));
        cr_assert(eq(uint, c->health.rise, 2));
        cr_assert(eq(uint, c->health.fall, 3));
        cr_assert(eq(uint, c->health.expect_min, 200));
        cr_assert(eq(uint, c->health.expect_max, 399));
        cr_assert(eq(uint, c->outlier.failures, 5));
        cr_assert(eq(uint, c->outlier.ejection_ms, 10000));
        cr_assert(eq(uint, c->outlier.max_ejection_ms, 300000));
    }
    cfg_free(cfg);
}

Test(cfg_defaults, keep_the_rest_when_a_section_sets_one_key)
{
    struct cfg *cfg = parse_ok(BASE "timeouts:\n  connect: 1s\nlimits:\n  max_headers: 10\n"
                                    "split:\n  weight: 50\n");

    cr_assert(eq(uint, cfg->timeouts.connect_ms, 1000));
    cr_assert(eq(uint, cfg->timeouts.client_idle_ms, 60000));
    cr_assert(eq(uint, cfg->limits.max_headers, 10));
    cr_assert(eq(uint, cfg->limits.max_header_bytes, 16384));
    cr_assert(eq(uint, cfg->split.weight_bp, 5000));
    cr_assert(eq(sz, cfg->split.n_keys, 1));
    cr_assert(eq(str, cfg->split.seed, "crossfade"));
    cfg_free(cfg);
}

Test(cfg_split_weight, reads_percent_into_hundredths)
{
    static const struct {
        const char *text;
        unsigned bp;
    } cases[] = {
        {"0", 0},        {"100", 10000},    {"12.5", 1250}, {"33.33", 3333}, {"0.01", 1},
        {"99.99", 9999}, {"100.00", 10000}, {"\"7\"", 700}, {"007", 700},    {"1.0", 100},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char yaml[512];
        struct cfg *cfg;

        snprintf(yaml, sizeof(yaml), BASE "split:\n  weight: %s\n", cases[i].text);
        cfg = parse_ok(yaml);
        cr_assert(eq(uint, cfg->split.weight_bp, cases[i].bp), "weight: %s", cases[i].text);
        cfg_free(cfg);
    }
}

Test(cfg_split_key, takes_a_single_key_without_a_sequence)
{
    struct cfg *cfg = parse_ok(BASE "split:\n  key: \"cookie:sid\"\n");

    cr_assert(eq(sz, cfg->split.n_keys, 1));
    cr_assert(eq(int, cfg->split.keys[0].kind, CFG_KEY_COOKIE));
    cr_assert(eq(str, cfg->split.keys[0].name, "sid"));
    cfg_free(cfg);
}

Test(cfg_split_key, accepts_every_token_character_in_a_header_name)
{
    struct cfg *cfg = parse_ok(BASE "split:\n  key: [\"header:!#$%&'*+-.^_`|~09AZaz\"]\n");

    cr_assert(eq(str, cfg->split.keys[0].name, "!#$%&'*+-.^_`|~09azaz"));
    cfg_free(cfg);
}

Test(cfg_split_networks, take_a_single_network_without_a_sequence)
{
    struct cfg *cfg = parse_ok(BASE "split:\n  trusted_proxies: 10.0.0.0/8\n"
                                    "  override_from: \"fd00::/8\"\n");

    cr_assert(eq(sz, cfg->split.n_trusted_proxies, 1));
    cr_assert(eq(str, cfg->split.trusted_proxies[0].text, "10.0.0.0/8"));
    cr_assert(eq(sz, cfg->split.n_override_from, 1));
    cr_assert(eq(int, cfg->split.override_from[0].family, AF_INET6));
    cr_assert(eq(uint, cfg->split.override_from[0].prefix, 8));
    cfg_free(cfg);
}

Test(cfg_split_networks, take_an_empty_sequence_as_an_empty_list)
{
    struct cfg *cfg = parse_ok(BASE "split:\n  trusted_proxies: []\n  override_from: []\n");

    cr_assert(eq(sz, cfg->split.n_trusted_proxies, 0));
    cr_assert(eq(ptr, cfg->split.trusted_proxies, NULL));
    cr_assert(eq(sz, cfg->split.n_override_from, 0));
    cr_assert(eq(ptr, cfg->split.override_from, NULL));
    cr_assert(not(cfg->split.override_any), "[] is no client, not every client");
    cfg_free(cfg);
}

Test(cfg_split_networks, override_from_any_says_every_client)
{
    struct cfg *cfg = parse_ok(BASE "split:\n  override_from: any\n");

    cr_assert(cfg->split.override_any);
    cr_assert(eq(sz, cfg->split.n_override_from, 0));
    cfg_free(cfg);
}

Test(cfg_split_networks, follow_an_alias_to_the_same_list)
{
    struct cfg *cfg = parse_ok(BASE "split:\n  trusted_proxies: &lb [\"10.0.0.0/8\", \"::1\"]\n"
                                    "  override_from: *lb\n");

    cr_assert(eq(sz, cfg->split.n_trusted_proxies, 2));
    cr_assert(eq(sz, cfg->split.n_override_from, 2));
    cr_assert(not(eq(ptr, cfg->split.trusted_proxies, cfg->split.override_from)),
              "each list owns its array");
    cr_assert(eq(str, cfg->split.override_from[1].text, "::1"));
    cfg_free(cfg);
}

Test(cfg_split_override, is_off_for_yaml_false_off_or_the_string_off)
{
    static const char *const offs[] = {"off", "false", "OFF", "False", "no", "\"off\""};

    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        char yaml[512];
        struct cfg *cfg;

        snprintf(yaml, sizeof(yaml),
                 BASE "split:\n  override_header: %s\n  override_cookie: %s\n  expose: %s\n",
                 offs[i], offs[i], offs[i]);
        cfg = parse_ok(yaml);
        cr_assert(eq(ptr, cfg->split.override_header, NULL), "override_header: %s", offs[i]);
        cr_assert(eq(ptr, cfg->split.override_cookie, NULL), "override_cookie: %s", offs[i]);
        cr_assert(eq(ptr, cfg->split.expose, NULL), "expose: %s", offs[i]);
        cfg_free(cfg);
    }
}

Test(cfg_split_override, keeps_a_quoted_false_as_a_name)
{
    struct cfg *cfg = parse_ok(BASE "split:\n  override_cookie: \"false\"\n  expose: 'no'\n");

    cr_assert(eq(str, cfg->split.override_cookie, "false"));
    cr_assert(eq(str, cfg->split.expose, "no"));
    cr_assert(eq(str, cfg->split.override_header, "X-Crossfade-Target"));
    cfg_free(cfg);
}

Test(cfg_split_override, keeps_names_as_written_with_every_token_character)
{
    struct cfg *cfg = parse_ok(BASE "split:\n  override_header: \"x-MY-side\"\n"
                                    "  override_cookie: \"!#$%&'*+-.^_`|~09AZaz\"\n"
                                    "  expose: X-Route\n");

    cr_assert(eq(str, cfg->split.override_header, "x-MY-side"));
    cr_assert(eq(str, cfg->split.override_cookie, "!#$%&'*+-.^_`|~09AZaz"));
    cr_assert(eq(str, cfg->split.expose, "X-Route"));
    cfg_free(cfg);
}

Test(cfg_balance, reads_each_name)
{
    static const char *const names[] = {"hash", "round_robin", "least_conn"};
    static const enum cfg_balance want[] = {CFG_BALANCE_HASH, CFG_BALANCE_ROUND_ROBIN,
                                            CFG_BALANCE_LEAST_CONN};

    for (size_t i = 0; i < 3; i++) {
        char yaml[512];
        struct cfg *cfg;

        snprintf(yaml, sizeof(yaml),
                 LISTEN "clusters:\n  x:\n    nodes: [\"10.0.0.1:8000\"]\n    balance: %s\n"
                        "  y:\n    nodes: [\"10.0.1.1:8000\"]\n    balance: \"%s\"\n",
                 names[i], names[i]);
        cfg = parse_ok(yaml);
        cr_assert(eq(int, cfg->clusters[CFG_CLUSTER_X].balance, want[i]), "balance: %s", names[i]);
        cr_assert(eq(int, cfg->clusters[CFG_CLUSTER_Y].balance, want[i]), "balance: %s", names[i]);
        cfg_free(cfg);
    }
}

Test(cfg_node_limits, inherit_the_cluster_values_in_either_key_order)
{
    struct cfg *cfg = parse_ok(LISTEN "clusters:\n"
                                      "  x:\n"
                                      "    nodes: [\"10.0.0.1:8000\", \"10.0.0.2:8000\"]\n"
                                      "    max_connections: 64\n"
                                      "    max_pending: 8\n"
                                      "  y:\n"
                                      "    max_pending: 0\n"
                                      "    max_connections: 32\n"
                                      "    nodes: [\"10.0.1.1:8000\"]\n");

    for (size_t i = 0; i < 2; i++) {
        cr_assert(eq(uint, cfg->clusters[CFG_CLUSTER_X].nodes[i].max_connections, 64));
        cr_assert(eq(uint, cfg->clusters[CFG_CLUSTER_X].nodes[i].max_pending, 8));
    }
    cr_assert(eq(uint, cfg->clusters[CFG_CLUSTER_Y].nodes[0].max_connections, 32));
    cr_assert(eq(uint, cfg->clusters[CFG_CLUSTER_Y].nodes[0].max_pending, 0));
    cfg_free(cfg);
}

Test(cfg_node_limits, let_a_node_override_each_value_even_with_0)
{
    struct cfg *cfg = parse_ok(LISTEN "clusters:\n"
                                      "  x:\n"
                                      "    nodes:\n"
                                      "      - {address: \"10.0.0.1:8000\", max_connections: 0}\n"
                                      "      - {address: \"10.0.0.2:8000\", max_pending: 1000000}\n"
                                      "      - address: \"10.0.0.3:8000\"\n"
                                      "        max_connections: 1000000\n"
                                      "        max_pending: 0\n"
                                      "    max_connections: 10\n"
                                      "    max_pending: 5\n"
                                      "  y:\n"
                                      "    nodes: [\"10.0.1.1:8000\"]\n");
    const struct cfg_node *n = cfg->clusters[CFG_CLUSTER_X].nodes;

    cr_assert(eq(uint, n[0].max_connections, 0), "0 is no limit, not \"the cluster's\"");
    cr_assert(eq(uint, n[0].max_pending, 5));
    cr_assert(eq(uint, n[1].max_connections, 10));
    cr_assert(eq(uint, n[1].max_pending, 1000000));
    cr_assert(eq(uint, n[2].max_connections, 1000000));
    cr_assert(eq(uint, n[2].max_pending, 0));
    cfg_free(cfg);
}

Test(cfg_failover, reads_true_and_false_in_every_spelling)
{
    static const char *const on[] = {"true", "True", "YES", "on", "\"true\""};
    static const char *const off[] = {"false", "FALSE", "no", "Off", "'off'"};

    for (size_t i = 0; i < sizeof(on) / sizeof(on[0]); i++) {
        char yaml[512];
        struct cfg *cfg;

        snprintf(yaml, sizeof(yaml),
                 LISTEN "clusters:\n  x:\n    nodes: [\"10.0.0.1:8000\"]\n    failover: %s\n"
                        "  y:\n    nodes: [\"10.0.1.1:8000\"]\n    failover: %s\n",
                 on[i], off[i]);
        cfg = parse_ok(yaml);
        cr_assert(eq(int, cfg->clusters[CFG_CLUSTER_X].failover, true), "failover: %s", on[i]);
        cr_assert(eq(int, cfg->clusters[CFG_CLUSTER_Y].failover, false), "failover: %s", off[i]);
        cfg_free(cfg);
    }
}

Test(cfg_health, fills_every_default_for_an_empty_mapping)
{
    struct cfg *cfg = parse_ok(BASE "    health: {}\n");
    const struct cfg_health *h = &cfg->clusters[CFG_CLUSTER_Y].health;

    cr_assert(eq(int, h->enabled, true));
    cr_assert(eq(str, h->path, "/status"));
    cr_assert(eq(ptr, h->host, NULL));
    cr_assert(eq(u16, h->port, 0));
    cr_assert(eq(uint, h->interval_ms, 2000));
    cr_assert(eq(uint, h->timeout_ms, 1000));
    cr_assert(eq(uint, h->rise, 2));
    cr_assert(eq(uint, h->fall, 3));
    cr_assert(eq(uint, h->expect_min, 200));
    cr_assert(eq(uint, h->expect_max, 399));
    cr_assert(eq(int, cfg->clusters[CFG_CLUSTER_X].health.enabled, false));
    cr_assert(eq(ptr, cfg->clusters[CFG_CLUSTER_X].health.path, NULL));
    cfg_free(cfg);
}

Test(cfg_health, reads_expect_as_a_status_or_a_range)
{
    static const struct {
        const char *text;
        unsigned lo, hi;
    } cases[] = {
        {"200", 200, 200},     {"\"503\"", 503, 503},     {"100-599", 100, 599},
        {"301-302", 301, 302}, {"\"204-204\"", 204, 204}, {"599", 599, 599},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char yaml[512];
        struct cfg *cfg;

        snprintf(yaml, sizeof(yaml), BASE "    health:\n      expect: %s\n", cases[i].text);
        cfg = parse_ok(yaml);
        cr_assert(eq(uint, cfg->clusters[CFG_CLUSTER_Y].health.expect_min, cases[i].lo), "%s",
                  cases[i].text);
        cr_assert(eq(uint, cfg->clusters[CFG_CLUSTER_Y].health.expect_max, cases[i].hi), "%s",
                  cases[i].text);
        cfg_free(cfg);
    }
}

Test(cfg_health, accepts_each_key_at_its_bounds)
{
    struct cfg *cfg = parse_ok(BASE "    health:\n"
                                    "      path: \"/a/b?x=1&y=%20\"\n"
                                    "      host: \"[::1]:8100\"\n"
                                    "      port: 65535\n"
                                    "      interval: 3s\n"
                                    "      timeout: 3000ms\n"
                                    "      rise: 100\n"
                                    "      fall: 1\n");
    const struct cfg_health *h = &cfg->clusters[CFG_CLUSTER_Y].health;

    cr_assert(eq(str, h->path, "/a/b?x=1&y=%20"));
    cr_assert(eq(str, h->host, "[::1]:8100"));
    cr_assert(eq(u16, h->port, 65535));
    cr_assert(eq(uint, h->interval_ms, 3000), "a timeout equal to the interval is allowed");
    cr_assert(eq(uint, h->timeout_ms, 3000));
    cr_assert(eq(uint, h->rise, 100));
    cr_assert(eq(uint, h->fall, 1));
    cfg_free(cfg);
    cfg = parse_ok(BASE "    health: {path: /, port: 1, rise: 1, fall: 100}\n");
    h = &cfg->clusters[CFG_CLUSTER_Y].health;
    cr_assert(eq(str, h->path, "/"));
    cr_assert(eq(u16, h->port, 1));
    cr_assert(eq(uint, h->rise, 1));
    cr_assert(eq(uint, h->fall, 100));
    cfg_free(cfg);
}

Test(cfg_outlier, keeps_the_defaults_of_the_keys_left_out)
{
    struct cfg *cfg = parse_ok(BASE "    outlier:\n      failures: 3\n");
    const struct cfg_outlier *o = &cfg->clusters[CFG_CLUSTER_Y].outlier;

    cr_assert(eq(uint, o->failures, 3));
    cr_assert(eq(uint, o->ejection_ms, 10000));
    cr_assert(eq(uint, o->max_ejection_ms, 300000));
    cfg_free(cfg);
    cfg = parse_ok(BASE "    outlier: {ejection: 1m, max_ejection: 60s}\n");
    o = &cfg->clusters[CFG_CLUSTER_Y].outlier;
    cr_assert(eq(uint, o->failures, 5));
    cr_assert(eq(uint, o->ejection_ms, 60000), "max_ejection may equal the ejection");
    cr_assert(eq(uint, o->max_ejection_ms, 60000));
    cfg_free(cfg);
}

Test(cfg_retries, accepts_0_to_10)
{
    struct cfg *cfg = parse_ok(BASE "retries: 0\n");

    cr_assert(eq(uint, cfg->retries, 0));
    cfg_free(cfg);
    cfg = parse_ok(BASE "retries: 10\n");
    cr_assert(eq(uint, cfg->retries, 10));
    cfg_free(cfg);
}

Test(cfg_workers, is_auto_by_default_and_takes_auto_or_1_to_64)
{
    struct cfg *cfg = parse_ok(BASE);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    cr_assert(eq(uint, cfg->workers, 0), "auto when not set");
    cr_assert(eq(uint, cfg_workers(cfg), (unsigned)(cpus > 64 ? 64 : cpus < 1 ? 1 : cpus)));
    cfg_free(cfg);
    cfg = parse_ok(BASE "workers: auto\n");
    cr_assert(eq(uint, cfg->workers, 0));
    cfg_free(cfg);
    cfg = parse_ok(BASE "workers: 1\n");
    cr_assert(eq(uint, cfg_workers(cfg), 1));
    cfg_free(cfg);
    cfg = parse_ok(BASE "workers: 64\n");
    cr_assert(eq(uint, cfg_workers(cfg), 64));
    cfg_free(cfg);
}

Test(cfg_access_log, is_off_for_yaml_false_off_or_the_string_off)
{
    static const char *const offs[] = {"off", "false", "OFF", "False", "no", "\"off\""};

    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        char yaml[512];
        struct cfg *cfg;

        snprintf(yaml, sizeof(yaml), BASE "access_log: %s\n", offs[i]);
        cfg = parse_ok(yaml);
        cr_assert(eq(ptr, cfg->access_log, NULL), "access_log: %s", offs[i]);
        cfg_free(cfg);
    }
}

Test(cfg_access_log, keeps_a_quoted_false_as_a_path_and_dash_as_stdout)
{
    struct cfg *cfg = parse_ok(BASE "access_log: \"false\"\n");

    cr_assert(eq(str, cfg->access_log, "false"));
    cfg_free(cfg);
    cfg = parse_ok(BASE "access_log: \"-\"\n");
    cr_assert(eq(str, cfg->access_log, "-"));
    cfg_free(cfg);
    cfg = parse_ok(BASE "access_log: logs/access.log\n");
    cr_assert(eq(str, cfg->access_log, "logs/access.log"));
    cfg_free(cfg);
}

Test(cfg_access_log, is_text_and_whole_by_default)
{
    struct cfg *cfg = parse_ok(BASE);

    cr_assert(eq(int, cfg->access_log_format, CFG_ALOG_TEXT));
    cr_assert(eq(dbl, cfg->access_log_sample, 1.0));
    cfg_free(cfg);
}

Test(cfg_access_log, takes_the_json_format)
{
    struct cfg *cfg = parse_ok(BASE "access_log_format: json\n");

    cr_assert(eq(int, cfg->access_log_format, CFG_ALOG_JSON));
    cfg_free(cfg);
    cfg = parse_ok(BASE "access_log_format: text\n");
    cr_assert(eq(int, cfg->access_log_format, CFG_ALOG_TEXT));
    cfg_free(cfg);
}

Test(cfg_access_log, takes_a_sample_as_a_fraction_or_a_percentage)
{
    static const struct {
        const char *text;
        double want;
    } cases[] = {
        {"0.01", 0.01},   {"1", 1.0},         {"1.0", 1.0},        {"0.5", 0.5},
        {"1%", 0.01},     {"100%", 1.0},      {"0.5%", 0.005},     {"12.5%", 0.125},
        {"\"1%\"", 0.01}, {"0.0001", 0.0001}, {"0.001%", 0.00001},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char yaml[512];
        struct cfg *cfg;

        snprintf(yaml, sizeof(yaml), BASE "access_log_sample: %s\n", cases[i].text);
        cfg = parse_ok(yaml);
        cr_assert(ieee_ulp_eq(dbl, cfg->access_log_sample, cases[i].want, 4),
                  "access_log_sample: %s gave %g", cases[i].text, cfg->access_log_sample);
        cfg_free(cfg);
    }
}

Test(cfg_admin, takes_a_group_by_name_or_by_number)
{
    struct group *g = getgrgid(getgid());
    char yaml[512];
    struct cfg *cfg;

    cr_assert(ne(ptr, g, NULL));
    snprintf(yaml, sizeof(yaml), BASE "admin:\n  group: \"%s\"\n", g->gr_name);
    cfg = parse_ok(yaml);
    cr_assert(eq(str, cfg->admin_group, g->gr_name));
    cr_assert(eq(uint, (unsigned)cfg->admin_gid, (unsigned)getgid()));
    cfg_free(cfg);
    cfg = parse_ok(BASE "admin:\n  group: 4321\n");
    cr_assert(eq(str, cfg->admin_group, "4321"));
    cr_assert(eq(uint, (unsigned)cfg->admin_gid, 4321u));
    cfg_free(cfg);
    cfg = parse_ok(BASE);
    cr_assert(eq(ptr, cfg->admin_group, NULL));
    cfg_free(cfg);
}

Test(cfg_state_file, keeps_the_path_as_written)
{
    struct cfg *cfg = parse_ok(BASE "state_file: \"/var/lib/crossfade/state\"\n");

    cr_assert(eq(str, cfg->state_file, "/var/lib/crossfade/state"));
    cfg_free(cfg);
    cfg = parse_ok(BASE "state_file: state/crossfade.state\n");
    cr_assert(eq(str, cfg->state_file, "state/crossfade.state"));
    cfg_free(cfg);
}

Test(cfg_state_file, is_off_for_yaml_false_off_or_the_string_off)
{
    static const char *const offs[] = {"off", "false", "no", "\"off\""};

    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        char yaml[512];
        struct cfg *cfg;

        snprintf(yaml, sizeof(yaml), BASE "state_file: %s\n", offs[i]);
        cfg = parse_ok(yaml);
        cr_assert(eq(ptr, cfg->state_file, NULL), "state_file: %s", offs[i]);
        cfg_free(cfg);
    }
}

Test(cfg_log_level, reads_each_level)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    static const enum xf_log_level levels[] = {XF_LOG_DEBUG, XF_LOG_INFO, XF_LOG_WARN, XF_LOG_ERR};

    for (size_t i = 0; i < 4; i++) {
        char yaml[512];
        struct cfg *cfg;

        snprintf(yaml, sizeof(yaml), BASE "log_level: %s\n", names[i]);
        cfg = parse_ok(yaml);
        cr_assert(eq(int, cfg->log_level, levels[i]), "log_level: %s", names[i]);
        cfg_free(cfg);
    }
}

Test(cfg_shapes, take_a_listen_address_without_a_mapping)
{
    struct cfg *cfg = parse_ok("listen: [\"127.0.0.1:8000\", \"localhost:8001\"]\n" CLUSTERS);

    cr_assert(eq(sz, cfg->n_listeners, 2));
    assert_ipv4(&cfg->listeners[0].addr, "127.0.0.1:8000", "127.0.0.1", 8000);
    cr_assert(eq(str, cfg->listeners[1].addr.text, "localhost:8001"));
    cr_assert(eq(int, cfg->listeners[1].role, CFG_ROLE_PROXY));
    cfg_free(cfg);
}

Test(cfg_shapes, follow_anchors_and_aliases)
{
    struct cfg *cfg = parse_ok(LISTEN "timeouts: {connect: &t 7s, shutdown: *t}\n" CLUSTERS);

    cr_assert(eq(uint, cfg->timeouts.connect_ms, 7000));
    cr_assert(eq(uint, cfg->timeouts.shutdown_ms, 7000));
    cfg_free(cfg);
}

Test(cfg_shapes, accept_keys_in_any_order_and_an_explicit_document)
{
    struct cfg *cfg = parse_ok("---\nlog_level: warn\n" CLUSTERS LISTEN "...\n");

    cr_assert(eq(int, cfg->log_level, XF_LOG_WARN));
    cr_assert(eq(sz, cfg->n_listeners, 1));
    cfg_free(cfg);
}

Test(cfg_shapes, accept_the_limits_at_their_bounds)
{
    struct cfg *cfg =
        parse_ok(BASE "limits: {max_connections: 1000000, max_request_line_bytes: 256,"
                      " max_header_bytes: 1024, max_headers: 10000,"
                      " max_body_bytes: 18446744073709551615}\n");

    cr_assert(eq(uint, cfg->limits.max_connections, 1000000));
    cr_assert(eq(uint, cfg->limits.max_request_line_bytes, 256));
    cr_assert(eq(uint, cfg->limits.max_header_bytes, 1024));
    cr_assert(eq(uint, cfg->limits.max_headers, 10000));
    cr_assert(eq(u64, cfg->limits.max_body_bytes, UINT64_MAX));
    cfg_free(cfg);
    cfg = parse_ok(BASE "limits: {max_connections: 1, max_request_line_bytes: 1048576,"
                        " max_header_bytes: 1048576, max_headers: 1}\ntimeouts: {connect: 24h}\n");
    cr_assert(eq(uint, cfg->limits.max_request_line_bytes, 1048576));
    cr_assert(eq(uint, cfg->timeouts.connect_ms, 86400000));
    cfg_free(cfg);
}

/* ---- Files ---------------------------------------------------------------------------------- */

/* Writes `text` to a new temporary file and stores its path in `path` (PATH_MAX bytes). */
static void
write_temp(char *path, const char *text)
{
    FILE *f;
    int fd;

    strcpy(path, "/tmp/xf-cfg-test-XXXXXX");
    fd = mkstemp(path);
    cr_assert(not(eq(int, fd, -1)));
    f = fdopen(fd, "w");
    cr_assert(not(eq(ptr, f, NULL)));
    cr_assert(eq(sz, fwrite(text, 1, strlen(text), f), strlen(text)));
    cr_assert(eq(int, fclose(f), 0));
}

Test(cfg_file, loads_a_file_and_keeps_its_path)
{
    char path[64];
    struct xf_err err = {{0}};
    struct cfg *cfg;

    write_temp(path, BASE "log_level: error\n");
    cfg = cfg_load(path, &err);
    unlink(path);
    cr_assert(not(eq(ptr, cfg, NULL)), "%s", err.msg);
    cr_assert(eq(str, cfg->path, path));
    cr_assert(eq(int, cfg->log_level, XF_LOG_ERR));
    cfg_free(cfg);
}

Test(cfg_file, names_the_file_in_its_messages)
{
    char path[64], want[128];
    struct xf_err err = {{0}};

    write_temp(path, BASE "log_level: loud\n");
    cr_assert(eq(ptr, cfg_load(path, &err), NULL));
    unlink(path);
    snprintf(want, sizeof(want), "%s:8:12: log_level: expected debug, info, warn or error", path);
    cr_assert(eq(int, strncmp(err.msg, want, strlen(want)), 0), "%s", err.msg);
}

Test(cfg_file, reports_an_empty_file_by_its_path)
{
    char path[64], want[128];
    struct xf_err err = {{0}};

    write_temp(path, "");
    cr_assert(eq(ptr, cfg_load(path, &err), NULL));
    unlink(path);
    snprintf(want, sizeof(want), "%s:1:1: expected a mapping of settings", path);
    cr_assert(eq(int, strncmp(err.msg, want, strlen(want)), 0), "%s", err.msg);
    cr_assert(not(eq(ptr, strstr(err.msg, "got an empty file"), NULL)), "%s", err.msg);
}

Test(cfg_file, reports_a_missing_file_with_strerror)
{
    struct xf_err err = {{0}};

    cr_assert(eq(ptr, cfg_load("/nonexistent/crossfade.yaml", &err), NULL));
    cr_assert(
        eq(str, err.msg, "/nonexistent/crossfade.yaml: cannot open: No such file or directory"));
}

Test(cfg_file, reports_a_directory_with_strerror)
{
    struct xf_err err = {{0}};

    cr_assert(eq(ptr, cfg_load("/tmp", &err), NULL));
    cr_assert(eq(str, err.msg, "/tmp: cannot read: Is a directory"));
}

Test(cfg_file, loads_the_documented_example)
{
    struct xf_err err = {{0}};
    /* The tests run from the top of the tree (make unit). */
    struct cfg *cfg = cfg_load("config/example.yaml", &err);

    cr_assert(not(eq(ptr, cfg, NULL)), "%s", err.msg);
    cr_assert(eq(sz, cfg->n_listeners, 3));
    cr_assert(eq(int, cfg->listeners[2].role, CFG_ROLE_ADMIN_API));
    cr_assert(eq(uint, cfg->split.weight_bp, 1250));
    cr_assert(eq(sz, cfg->split.n_keys, 3));
    cr_assert(eq(sz, cfg->clusters[CFG_CLUSTER_X].n_nodes, 2));
    cr_assert(eq(sz, cfg->clusters[CFG_CLUSTER_Y].n_nodes, 3));
    cr_assert(eq(uint, cfg->clusters[CFG_CLUSTER_Y].nodes[1].weight, 0));
    cr_assert(eq(uint, cfg->clusters[CFG_CLUSTER_Y].nodes[2].max_connections, 200));
    cr_assert(eq(uint, cfg->clusters[CFG_CLUSTER_Y].nodes[2].max_pending, 50));
    cr_assert(cfg->clusters[CFG_CLUSTER_X].health.enabled);
    cr_assert(eq(uint, cfg->clusters[CFG_CLUSTER_X].health.port, 8100));
    cr_assert(eq(str, cfg->clusters[CFG_CLUSTER_Y].health.path, "/status/ready"));
    cr_assert(not(cfg->clusters[CFG_CLUSTER_X].failover));
    cr_assert(cfg->clusters[CFG_CLUSTER_Y].failover);
    cr_assert(eq(uint, cfg->retries, 2));
    cr_assert(eq(sz, cfg->split.n_trusted_proxies, 3));
    cr_assert(eq(str, cfg->split.trusted_proxies[2].text, "::1/128"));
    cr_assert(eq(str, cfg->split.override_header, "X-Crossfade-Target"));
    cr_assert(eq(str, cfg->split.override_cookie, "crossfade_target"));
    cr_assert(eq(sz, cfg->split.n_override_from, 2));
    cr_assert(eq(str, cfg->split.expose, "X-Crossfade-Route"));
    cr_assert(eq(int, cfg->clusters[CFG_CLUSTER_X].balance, CFG_BALANCE_HASH));
    cr_assert(eq(int, cfg->clusters[CFG_CLUSTER_Y].balance, CFG_BALANCE_LEAST_CONN));
    cr_assert(not(eq(ptr, cfg->admin_http, NULL)));
    cr_assert(eq(int, cfg->access_log_format, CFG_ALOG_TEXT));
    cr_assert(eq(dbl, cfg->access_log_sample, 1.0));
    cr_assert(eq(str, cfg->test_traffic.header, "X-Crossfade-Test"));
    cr_assert(eq(sz, cfg->test_traffic.n_sources, 1));
    cr_assert(cfg->guard.configured);
    cr_assert(eq(uint, cfg->guard.window_s, 30));
    cr_assert(eq(uint, cfg->guard.min_requests, 200));
    cr_assert(eq(uint, cfg->guard.max_error_delta_bp, 100));
    cr_assert(eq(int, cfg->guard.action, CFG_GUARD_ROLLBACK));
    cr_assert(eq(uint, cfg->guard.step_down_bp, 500));
    cfg_free(cfg);
}

/* ---- The rest of the API -------------------------------------------------------------------- */

Test(cfg_api, frees_null_as_a_no_op)
{
    cfg_free(NULL);
}

Test(cfg_api, names_the_clusters)
{
    cr_assert(eq(str, (char *)cfg_cluster_name(CFG_CLUSTER_X), "x"));
    cr_assert(eq(str, (char *)cfg_cluster_name(CFG_CLUSTER_Y), "y"));
}

Test(cfg_api, uses_the_name_it_is_given_as_the_path)
{
    struct xf_err err = {{0}};
    struct cfg *cfg = cfg_parse(BASE, strlen(BASE), "inline.yaml", &err);

    cr_assert(not(eq(ptr, cfg, NULL)), "%s", err.msg);
    cr_assert(eq(str, cfg->path, "inline.yaml"));
    cfg_free(cfg);
}

Test(cfg_api, reads_only_len_bytes_of_the_text)
{
    static const char text[] = BASE "log_level: not-a-level\n";
    struct xf_err err = {{0}};
    struct cfg *cfg = cfg_parse(text, strlen(BASE), "t.yaml", &err);

    cr_assert(not(eq(ptr, cfg, NULL)), "%s", err.msg);
    cr_assert(eq(int, cfg->log_level, XF_LOG_INFO));
    cfg_free(cfg);
}
