/* tests/unit/test_cfg_tls.c -- a listener's tls settings and the top-level tls section: what is
 * read, the defaults, and a "FILE:LINE:COL: key.path: ..." message for each mistake. The files
 * they name are read by proxy/px_tls.c (tests/integration/test_tls.c). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "config/cfg.h"
#include "proxy/px.h"

#define CLUSTERS                                                                                   \
    "clusters:\n"                                                                                  \
    "  x:\n"                                                                                       \
    "    nodes: [\"10.0.0.1:8000\"]\n"                                                             \
    "  y:\n"                                                                                       \
    "    nodes: [\"10.0.1.1:8000\"]\n"

/* A TLS listener on lines 1-6; `more` adds keys under tls: (6 spaces of indent). */
#define TLS_LISTEN(more)                                                                           \
    "listen:\n"                                                                                    \
    "  - address: \"127.0.0.1:8443\"\n"                                                            \
    "    tls:\n"                                                                                   \
    "      certificates:\n"                                                                        \
    "        - {cert: /etc/xf/api.pem, key: /etc/xf/api.key}\n"                                    \
    "        - {cert: /etc/xf/b.pem, key: /etc/xf/b.key, names: [b.test, \"*.b.test\"]}\n" more

static struct cfg *
parse_ok(const char *yaml)
{
    struct xf_err err = {{0}};
    struct cfg *cfg = cfg_parse(yaml, strlen(yaml), "t.yaml", &err);

    cr_assert(not(eq(ptr, cfg, NULL)), "rejected: %s\n%s", err.msg, yaml);
    return cfg;
}

static void
expect_error(const char *yaml, const char *prefix, const char *fragment)
{
    struct xf_err err = {{0}};
    struct cfg *cfg = cfg_parse(yaml, strlen(yaml), "t.yaml", &err);
    bool rejected = cfg == NULL;

    cfg_free(cfg);
    cr_assert(rejected, "accepted:\n%s", yaml);
    cr_assert(eq(int, strncmp(err.msg, prefix, strlen(prefix)), 0),
              "message: %s\nwanted the prefix: %s", err.msg, prefix);
    cr_assert(not(eq(ptr, strstr(err.msg, fragment), NULL)), "message: %s\nwanted: %s", err.msg,
              fragment);
}

Test(cfg_tls, reads_certificates_in_order_with_where_each_file_is_named)
{
    struct cfg *cfg = parse_ok(TLS_LISTEN("") CLUSTERS);
    const struct cfg_tls_listen *t = cfg->listeners[0].tls;

    cr_assert(not(eq(ptr, (void *)t, NULL)));
    cr_assert(eq(sz, t->n_certs, 2));
    cr_assert(eq(str, t->certs[0].cert.path, "/etc/xf/api.pem"));
    cr_assert(eq(str, t->certs[0].key.path, "/etc/xf/api.key"));
    cr_assert(
        eq(str, (char *)t->certs[0].key.at, "t.yaml:5:40: listen[0].tls.certificates[0].key"));
    cr_assert(
        eq(str, (char *)t->certs[1].cert.at, "t.yaml:6:18: listen[0].tls.certificates[1].cert"));
    cr_assert(eq(sz, t->certs[0].n_names, 0), "no names: the certificate's own");
    cr_assert(eq(sz, t->certs[1].n_names, 2));
    cr_assert(eq(str, t->certs[1].names[1], "*.b.test"));
    cfg_free(cfg);
}

Test(cfg_tls, defaults_to_both_protocols_no_client_certificates_and_a_10s_handshake)
{
    struct cfg *cfg = parse_ok(TLS_LISTEN("  - \"127.0.0.1:8000\"\n") CLUSTERS);
    const struct cfg_tls_listen *t = cfg->listeners[0].tls;

    cr_assert(eq(uint, t->protocols, CFG_TLS_V12 | CFG_TLS_V13));
    cr_assert(eq(int, (int)t->verify_client, (int)CFG_TLS_VERIFY_OFF));
    cr_assert(eq(ptr, t->ciphers, NULL));
    cr_assert(eq(ptr, t->client_ca.path, NULL));
    cr_assert(eq(ptr, cfg->listeners[1].tls, NULL), "a plain listener has no tls");
    cr_assert(eq(uint, cfg->timeouts.tls_handshake_ms, 10000));
    cr_assert(eq(uint, cfg->tls_ticket_rotation_ms, 3600000));
    cfg_free(cfg);
}

Test(cfg_tls, reads_protocols_ciphers_client_certificates_and_the_ticket_rotation)
{
    struct cfg *cfg = parse_ok(TLS_LISTEN("      protocols: [TLSv1.3]\n"
                                          "      ciphers: \"ECDHE+AESGCM\"\n"
                                          "      ciphersuites: \"TLS_AES_128_GCM_SHA256\"\n"
                                          "      client_ca: /etc/xf/clients.pem\n"
                                          "      verify_client: required\n") CLUSTERS
                               "timeouts: {tls_handshake: 2s}\n"
                               "tls: {ticket_rotation: 30m}\n");
    const struct cfg_tls_listen *t = cfg->listeners[0].tls;

    cr_assert(eq(uint, t->protocols, CFG_TLS_V13));
    cr_assert(eq(str, t->ciphers, "ECDHE+AESGCM"));
    cr_assert(eq(str, t->ciphersuites, "TLS_AES_128_GCM_SHA256"));
    cr_assert(eq(str, t->client_ca.path, "/etc/xf/clients.pem"));
    cr_assert(eq(int, (int)t->verify_client, (int)CFG_TLS_VERIFY_REQUIRED));
    cr_assert(eq(uint, cfg->timeouts.tls_handshake_ms, 2000));
    cr_assert(eq(uint, cfg->tls_ticket_rotation_ms, 1800000));
    cfg_free(cfg);
}

Test(cfg_tls, refuses_each_mistake_with_its_line_and_key)
{
    expect_error("listen:\n  - address: \"127.0.0.1:8443\"\n    tls: {}\n" CLUSTERS,
                 "t.yaml:3:10: listen[0].tls.certificates:", "got nothing");
    expect_error("listen:\n  - address: \"127.0.0.1:8443\"\n    tls:\n      certificates:\n"
                 "        - {cert: /a.pem}\n" CLUSTERS,
                 "t.yaml:5:11: listen[0].tls.certificates[0].key:", "got nothing");
    expect_error(TLS_LISTEN("      protocols: [TLSv1.1]\n") CLUSTERS,
                 "t.yaml:7:19: listen[0].tls.protocols[0]:", "TLSv1.1 is not offered");
    expect_error(TLS_LISTEN("      protocols: [SSLv2]\n") CLUSTERS,
                 "t.yaml:7:19: listen[0].tls.protocols[0]:", "expected TLSv1.2 or TLSv1.3");
    expect_error(TLS_LISTEN("      verify_client: require\n") CLUSTERS,
                 "t.yaml:7:22: listen[0].tls.verify_client:", "did you mean \"required\"");
    expect_error(TLS_LISTEN("      verify_client: optional\n") CLUSTERS,
                 "t.yaml:7:22: listen[0].tls.verify_client:", "needs client_ca");
    expect_error(TLS_LISTEN("      certs: []\n") CLUSTERS,
                 "t.yaml:7:7: listen[0].tls:", "unknown key");
    expect_error("listen:\n  - address: \"127.0.0.1:8443\"\n    tls:\n      certificates:\n"
                 "        - {cert: /a.pem, key: /a.key, names: [\"a.*.test\"]}\n" CLUSTERS,
                 "t.yaml:5:47: listen[0].tls.certificates[0].names[0]:", "a host name");
    expect_error(TLS_LISTEN("") CLUSTERS "tls: {ticket_rotation: 10s}\n",
                 "t.yaml:12:24: tls.ticket_rotation:", "from 1m to 24h");
    expect_error(TLS_LISTEN("") CLUSTERS "timeouts: {tls_handshake: 0s}\n",
                 "t.yaml:12:27: timeouts.tls_handshake:", "");
}

Test(cfg_tls, names_match_as_rfc_6125_says)
{
    cr_assert(px_tls_name_match("api.test", "API.test"), "case is ignored");
    cr_assert(px_tls_name_match("*.api.test", "eu.api.test"));
    cr_assert(not(px_tls_name_match("*.api.test", "api.test")), "the wildcard is one label");
    cr_assert(not(px_tls_name_match("*.api.test", "a.eu.api.test")), "and only one");
    cr_assert(not(px_tls_name_match("*.api.test", ".api.test")), "an empty label is none");
    cr_assert(not(px_tls_name_match("api.test", "api.test.evil")));
}

Test(cfg_tls, a_cert_split_key_reads_the_client_certificate_of_a_listener_that_asks_for_one)
{
    struct cfg *cfg = parse_ok(TLS_LISTEN("      client_ca: /etc/xf/clients.pem\n"
                                          "      verify_client: optional\n") CLUSTERS
                               "split: {key: [\"cert:subject\", \"cert:fingerprint\", ip]}\n");

    cr_assert(eq(int, (int)cfg->split.keys[0].kind, (int)CFG_KEY_CERT));
    cr_assert(eq(str, cfg->split.keys[0].name, "subject"));
    cr_assert(eq(str, cfg->split.keys[1].name, "fingerprint"));
    cfg_free(cfg);
    expect_error(TLS_LISTEN("") CLUSTERS "split: {key: \"cert:san\"}\n",
                 "t.yaml:12:14: split.key:", "needs a listener that asks for client certificates");
    expect_error(TLS_LISTEN("      client_ca: /etc/xf/clients.pem\n"
                            "      verify_client: required\n") CLUSTERS
                 "split: {key: \"cert:issuer\"}\n",
                 "t.yaml:14:14: split.key:", "expected cert:subject, cert:san or cert:fingerprint");
}
