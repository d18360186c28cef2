/* tests/unit/test_cfg_l4.c -- tcp-mode listeners, PROXY protocol in and out, timeouts.tcp_hello:
 * what the loader maps, and what it refuses (with FILE:LINE:COL and the key path). */
#include <stdbool.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "config/cfg.h"

#define CLUSTERS                                                                                   \
    "clusters:\n"                                                                                  \
    "  x:\n"                                                                                       \
    "    nodes: [\"10.0.0.1:8000\"]\n"                                                             \
    "  y:\n"                                                                                       \
    "    nodes: [\"10.0.1.1:8000\"]\n"

static struct cfg *
parse(const char *yaml, struct xf_err *err)
{
    return cfg_parse(yaml, strlen(yaml), "t.yaml", err);
}

static struct cfg *
parse_ok(const char *yaml)
{
    struct xf_err err = {{0}};
    struct cfg *cfg = parse(yaml, &err);

    cr_assert(not(eq(ptr, cfg, NULL)), "rejected: %s\n%s", err.msg, yaml);
    return cfg;
}

/* Asserts that yaml is refused with exactly `message`. */
static void
expect_message(const char *yaml, const char *message)
{
    struct xf_err err = {{0}};
    struct cfg *cfg = parse(yaml, &err);
    bool rejected = cfg == NULL;

    cfg_free(cfg);
    cr_assert(rejected, "accepted:\n%s", yaml);
    cr_assert(eq(str, err.msg, (char *)message));
}

Test(cfg_l4, a_listener_is_http_keyed_on_ip_without_proxy_protocol_by_default)
{
    struct cfg *cfg = parse_ok("listen: [\"127.0.0.1:8000\"]\n" CLUSTERS);

    cr_assert(eq(int, cfg->listeners[0].mode, CFG_MODE_HTTP));
    cr_assert(eq(int, cfg->listeners[0].key, CFG_L4_KEY_IP));
    cr_assert(not(cfg->listeners[0].proxy_protocol));
    cr_assert(eq(uint, cfg->clusters[CFG_CLUSTER_X].proxy_protocol, 0u));
    cr_assert(eq(uint, cfg->clusters[CFG_CLUSTER_Y].proxy_protocol, 0u));
    cr_assert(eq(uint, cfg->timeouts.tcp_hello_ms, 5000u));
    cfg_free(cfg);
}

Test(cfg_l4, maps_a_tcp_listener_its_key_proxy_protocol_and_the_hello_timeout)
{
    struct cfg *cfg =
        parse_ok("listen:\n"
                 "  - \"127.0.0.1:8000\"\n"
                 "  - {address: \"127.0.0.1:8443\", mode: tcp, key: sni, node_port: 9443}\n"
                 "  - {address: \"127.0.0.1:8444\", mode: tcp, proxy_protocol: true}\n"
                 "split: {trusted_proxies: [\"10.0.0.0/8\"]}\n"
                 "timeouts: {tcp_hello: 1500ms}\n" CLUSTERS "    proxy_protocol: v2\n");

    cr_assert(eq(int, cfg->listeners[1].mode, CFG_MODE_TCP));
    cr_assert(eq(int, cfg->listeners[1].key, CFG_L4_KEY_SNI));
    cr_assert(eq(u16, cfg->listeners[1].node_port, 9443));
    cr_assert(not(cfg->listeners[1].proxy_protocol));
    cr_assert(eq(int, cfg->listeners[2].mode, CFG_MODE_TCP));
    cr_assert(eq(int, cfg->listeners[2].key, CFG_L4_KEY_IP));
    cr_assert(cfg->listeners[2].proxy_protocol);
    cr_assert(eq(uint, cfg->timeouts.tcp_hello_ms, 1500u));
    cr_assert(eq(uint, cfg->clusters[CFG_CLUSTER_X].proxy_protocol, 0u));
    cr_assert(eq(uint, cfg->clusters[CFG_CLUSTER_Y].proxy_protocol, 2u));
    cfg_free(cfg);
}

Test(cfg_l4, maps_proxy_protocol_v1_and_off_on_clusters)
{
    struct cfg *cfg = parse_ok("listen: [\"127.0.0.1:8000\"]\n"
                               "clusters:\n"
                               "  x: {nodes: [\"10.0.0.1:8000\"], proxy_protocol: v1}\n"
                               "  y: {nodes: [\"10.0.1.1:8000\"], proxy_protocol: \"off\"}\n");

    cr_assert(eq(uint, cfg->clusters[CFG_CLUSTER_X].proxy_protocol, 1u));
    cr_assert(eq(uint, cfg->clusters[CFG_CLUSTER_Y].proxy_protocol, 0u));
    cfg_free(cfg);
}

Test(cfg_l4, refuses_an_unknown_mode_with_the_choices)
{
    expect_message("listen:\n  - {address: \"127.0.0.1:8000\", mode: udp}\n" CLUSTERS,
                   "t.yaml:2:39: listen[0].mode: expected http or tcp, got \"udp\"");
}

Test(cfg_l4, suggests_the_closest_key_kind)
{
    expect_message(
        "listen:\n  - {address: \"127.0.0.1:8000\", mode: tcp, key: snii}\n" CLUSTERS,
        "t.yaml:2:49: listen[0].key: expected ip or sni, got \"snii\" (did you mean \"sni\"?)");
}

Test(cfg_l4, refuses_a_key_on_an_http_listener)
{
    expect_message("listen:\n  - {address: \"127.0.0.1:8000\", key: sni}\n" CLUSTERS,
                   "t.yaml:2:38: listen[0].key: expected key only with mode: tcp (an http "
                   "listener uses split.key)");
}

Test(cfg_l4, refuses_tls_on_a_tcp_listener)
{
    expect_message(
        "listen:\n"
        "  - address: \"127.0.0.1:8443\"\n"
        "    mode: tcp\n"
        "    tls: {certificates: [{cert: /nonexistent.pem, key: /nonexistent.key}]}\n" CLUSTERS,
        "t.yaml:4:10: listen[0].tls: expected no tls on a tcp-mode listener, which "
        "passes TLS through to the nodes (use mode: http to terminate it here)");
}

Test(cfg_l4, refuses_an_admin_api_role_on_a_tcp_listener)
{
    expect_message(
        "listen:\n  - {address: \"127.0.0.1:8000\", mode: tcp, role: admin_api}\n" CLUSTERS,
        "t.yaml:2:50: listen[0].role: expected proxy on a tcp-mode listener: the "
        "freeze of an admin_api listener reads HTTP methods");
}

Test(cfg_l4, refuses_proxy_protocol_without_trusted_proxies)
{
    expect_message("listen:\n"
                   "  - \"127.0.0.1:8000\"\n"
                   "  - {address: \"127.0.0.1:8001\", proxy_protocol: true}\n" CLUSTERS,
                   "t.yaml:3:49: listen[1].proxy_protocol: expected split.trusted_proxies to name "
                   "the balancers that send the PROXY header: it is accepted from them only, and "
                   "none are listed");
}

Test(cfg_l4, refuses_a_proxy_protocol_version_it_does_not_speak)
{
    expect_message("listen: [\"127.0.0.1:8000\"]\n"
                   "clusters:\n"
                   "  x: {nodes: [\"10.0.0.1:8000\"], proxy_protocol: v3}\n"
                   "  y: {nodes: [\"10.0.1.1:8000\"]}\n",
                   "t.yaml:3:49: clusters.x.proxy_protocol: expected v1, v2 or off, got \"v3\" "
                   "(did you mean \"v1\"?)");
}

Test(cfg_l4, a_changed_mode_replaces_the_listener_in_a_reload)
{
    struct cfg *a = parse_ok("listen: [\"127.0.0.1:8000\"]\n" CLUSTERS);
    struct cfg *b = parse_ok("listen: [{address: \"127.0.0.1:8000\", mode: tcp}]\n" CLUSTERS);
    struct cfg_diff d;

    cr_assert(eq(int, cfg_diff(a, b, &d), 0), "%s", d.refused);
    cr_assert(eq(uint, d.listeners_added, 1u));
    cr_assert(eq(uint, d.listeners_removed, 1u));
    cfg_free(a);
    cfg_free(b);
}

Test(cfg_l4, refuses_proxy_protocol_on_a_tls_cluster)
{
    struct xf_err err = {{0}};
    const char *yaml = "listen: [\"127.0.0.1:8000\"]\n"
                       "clusters:\n"
                       "  x: {nodes: [\"10.0.0.1:8000\"]}\n"
                       "  y: {nodes: [\"10.0.1.1:8000\"], tls: {verify: false}, proxy_protocol: "
                       "v1}\n";
    struct cfg *cfg = parse(yaml, &err);

    cr_assert(eq(ptr, cfg, NULL), "accepted:\n%s", yaml);
    cr_assert(eq(int, strncmp(err.msg, "t.yaml:4:", 9), 0), "%s", err.msg);
    cr_assert(ne(ptr,
                 strstr(err.msg, "clusters.y.proxy_protocol: expected off on a cluster with tls"),
                 NULL),
              "%s", err.msg);
}
