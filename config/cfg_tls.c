/* config/cfg_tls.c -- the TLS settings: a listener's `tls:` and the top-level `tls:` section. The
 * files they name are read and checked by proxy/px_tls.c, which points at the line kept here. */
#include "config/cfg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum cfg_tls_key {
    CFG_TLS_CERTIFICATES = 0,
    CFG_TLS_PROTOCOLS,
    CFG_TLS_CIPHERS,
    CFG_TLS_CIPHERSUITES,
    CFG_TLS_CLIENT_CA,
    CFG_TLS_VERIFY_CLIENT,
    CFG_TLS_COUNT,
};
static const char *const cfg_tls_keys[CFG_TLS_COUNT] = {
    "certificates", "protocols", "ciphers", "ciphersuites", "client_ca", "verify_client",
};

enum cfg_cert_key {
    CFG_CERT_CERT = 0,
    CFG_CERT_KEY,
    CFG_CERT_NAMES,
    CFG_CERT_COUNT,
};
static const char *const cfg_cert_keys[CFG_CERT_COUNT] = {"cert", "key", "names"};

static const char *const cfg_verify_names[] = {"off", "optional", "required"}; /* by enum */

enum cfg_tls_root_key {
    CFG_TLS_ROOT_TICKET_ROTATION = 0,
    CFG_TLS_ROOT_COUNT,
};
static const char *const cfg_tls_root_keys[CFG_TLS_ROOT_COUNT] = {"ticket_rotation"};

/* "FILE:LINE:COL: path" for node into at (CFG_AT_MAX bytes): a message's prefix for later. */
static void
cfg_tls_at(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path, char *at)
{
    snprintf(at, CFG_AT_MAX, "%s:%zu:%zu: %s", ctx->name, node->start_mark.line + 1,
             node->start_mark.column + 1, path);
}

/* A file name: a non-empty scalar, kept with where it was written. */
static int
cfg_tls_file(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
             struct cfg_file *f)
{
    const char *text = cfg_scalar(ctx, node, path, "a file name");

    if (text == NULL)
        return -1;
    if (text[0] == '\0')
        return cfg_fail(ctx, node, path, "expected a file name, got an empty string");
    cfg_tls_at(ctx, node, path, f->at);
    return cfg_set_string(ctx, &f->path, text);
}

/* names: a sequence of host names, `*.` allowed as the first label. */
static int
cfg_tls_names(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
              struct cfg_tls_cert *c)
{
    char sub[CFG_PATH_MAX], shown[CFG_SHOW_SIZE];
    size_t n;

    if (node->type != YAML_SEQUENCE_NODE || cfg_seq_len(node) == 0)
        return cfg_fail(ctx, node, path, "expected a sequence of host names, got %s",
                        cfg_got(node, shown));
    n = cfg_seq_len(node);
    c->names = calloc(n, sizeof(*c->names));
    if (c->names == NULL)
        return cfg_oom(ctx);
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *item = cfg_node(ctx, node->data.sequence.items.start[i]);
        const char *text;
        size_t len;

        cfg_path_index(sub, path, i);
        text = cfg_scalar(ctx, item, sub, "a host name");
        if (text == NULL)
            return -1;
        len = strlen(text);
        if (len == 0 || len > 253 || strchr(text + (text[0] == '*' ? 1 : 0), '*') != NULL ||
            (text[0] == '*' && text[1] != '.') ||
            strspn(text, "abcdefghijklmnopqrstuvwxyz"
                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                         "0123456789-.*") != len)
            return cfg_fail(ctx, item, sub,
                            "expected a host name such as api.example.com or *.example.com, "
                            "got %s",
                            cfg_show_str(shown, text));
        c->n_names = i + 1;
        if (cfg_set_string(ctx, &c->names[i], text) == -1)
            return -1;
    }
    return 0;
}

static int
cfg_tls_cert_walk(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
                  struct cfg_tls_cert *c)
{
    char sub[CFG_PATH_MAX], shown[CFG_SHOW_SIZE];
    yaml_node_t *v[CFG_CERT_COUNT];

    cfg_tls_at(ctx, node, path, c->at);
    if (node->type != YAML_MAPPING_NODE)
        return cfg_fail(ctx, node, path, "expected a mapping with cert and key, got %s",
                        cfg_got(node, shown));
    if (cfg_map_lookup(ctx, node, path, cfg_cert_keys, CFG_CERT_COUNT, v) == -1)
        return -1;
    if (v[CFG_CERT_CERT] == NULL)
        return cfg_fail(ctx, node, cfg_path_key(sub, path, "cert"),
                        "expected the certificate chain's file (PEM), got nothing");
    if (v[CFG_CERT_KEY] == NULL)
        return cfg_fail(ctx, node, cfg_path_key(sub, path, "key"),
                        "expected the private key's file (PEM), got nothing");
    if (cfg_tls_file(ctx, v[CFG_CERT_CERT], cfg_path_key(sub, path, "cert"), &c->cert) == -1 ||
        cfg_tls_file(ctx, v[CFG_CERT_KEY], cfg_path_key(sub, path, "key"), &c->key) == -1)
        return -1;
    if (v[CFG_CERT_NAMES] != NULL &&
        cfg_tls_names(ctx, v[CFG_CERT_NAMES], cfg_path_key(sub, path, "names"), c) == -1)
        return -1;
    return 0;
}

/* protocols: a sequence of TLSv1.2 and TLSv1.3 (older versions are not offered). */
static int
cfg_tls_protocols(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
                  unsigned *out)
{
    static const char what[] = "a sequence of TLSv1.2 and TLSv1.3";
    char sub[CFG_PATH_MAX], shown[CFG_SHOW_SIZE];
    unsigned set = 0;

    if (node->type != YAML_SEQUENCE_NODE || cfg_seq_len(node) == 0)
        return cfg_fail(ctx, node, path, "expected %s, got %s", what, cfg_got(node, shown));
    for (size_t i = 0; i < cfg_seq_len(node); i++) {
        const yaml_node_t *item = cfg_node(ctx, node->data.sequence.items.start[i]);
        const char *text =
            cfg_scalar(ctx, item, cfg_path_index(sub, path, i), "TLSv1.2 or TLSv1.3");

        if (text == NULL)
            return -1;
        if (strcmp(text, "TLSv1.2") == 0)
            set |= CFG_TLS_V12;
        else if (strcmp(text, "TLSv1.3") == 0)
            set |= CFG_TLS_V13;
        else if (strcmp(text, "TLSv1") == 0 || strcmp(text, "TLSv1.1") == 0 ||
                 strcmp(text, "SSLv3") == 0)
            return cfg_fail(ctx, item, sub,
                            "%s is not offered (it is broken or deprecated, RFC 8996): expected "
                            "TLSv1.2 or TLSv1.3",
                            text);
        else
            return cfg_fail(ctx, item, sub, "expected TLSv1.2 or TLSv1.3, got %s",
                            cfg_show_str(shown, text));
    }
    *out = set;
    return 0;
}

static int
cfg_tls_string(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path, char **dst,
               char *at)
{
    const char *text = cfg_scalar(ctx, node, path, "an OpenSSL cipher string");

    if (text == NULL)
        return -1;
    if (text[0] == '\0')
        return cfg_fail(ctx, node, path, "expected an OpenSSL cipher string, got an empty string");
    cfg_tls_at(ctx, node, path, at);
    return cfg_set_string(ctx, dst, text);
}

static int
cfg_tls_verify(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
               enum cfg_tls_verify *out)
{
    char shown[CFG_SHOW_SIZE], hint[64];
    const char *text = cfg_scalar(ctx, node, path, "off, optional or required");

    if (text == NULL)
        return -1;
    for (size_t i = 0; i < XF_ARRAY_LEN(cfg_verify_names); i++)
        if (strcmp(text, cfg_verify_names[i]) == 0) {
            *out = (enum cfg_tls_verify)i;
            return 0;
        }
    return cfg_fail(
        ctx, node, path, "expected off, optional or required, got %s%s", cfg_show_str(shown, text),
        cfg_hint(hint, sizeof(hint), text, cfg_verify_names, XF_ARRAY_LEN(cfg_verify_names)));
}

static int
cfg_tls_certificates(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
                     struct cfg_tls_listen *t)
{
    char sub[CFG_PATH_MAX], shown[CFG_SHOW_SIZE];
    size_t n;

    if (node->type != YAML_SEQUENCE_NODE || cfg_seq_len(node) == 0)
        return cfg_fail(ctx, node, path,
                        "expected a sequence of {cert: FILE, key: FILE}, the first the default, "
                        "got %s",
                        cfg_got(node, shown));
    n = cfg_seq_len(node);
    t->certs = calloc(n, sizeof(*t->certs));
    if (t->certs == NULL)
        return cfg_oom(ctx);
    for (size_t i = 0; i < n; i++) {
        t->n_certs = i + 1;
        if (cfg_tls_cert_walk(ctx, cfg_node(ctx, node->data.sequence.items.start[i]),
                              cfg_path_index(sub, path, i), &t->certs[i]) == -1)
            return -1;
    }
    return 0;
}

int
cfg_walk_listener_tls(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
                      struct cfg_listener *l)
{
    char sub[CFG_PATH_MAX], shown[CFG_SHOW_SIZE];
    yaml_node_t *v[CFG_TLS_COUNT];
    struct cfg_tls_listen *t;

    if (node->type != YAML_MAPPING_NODE)
        return cfg_fail(ctx, node, path, "expected a mapping with certificates, got %s",
                        cfg_got(node, shown));
    if (cfg_map_lookup(ctx, node, path, cfg_tls_keys, CFG_TLS_COUNT, v) == -1)
        return -1;
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return cfg_oom(ctx);
    l->tls = t;
    t->protocols = CFG_TLS_V12 | CFG_TLS_V13;
    cfg_tls_at(ctx, node, path, t->at);
    if (v[CFG_TLS_CERTIFICATES] == NULL)
        return cfg_fail(ctx, node, cfg_path_key(sub, path, "certificates"),
                        "expected at least one {cert: FILE, key: FILE}, got nothing");
    if (cfg_tls_certificates(ctx, v[CFG_TLS_CERTIFICATES], cfg_path_key(sub, path, "certificates"),
                             t) == -1)
        return -1;
    if (v[CFG_TLS_PROTOCOLS] != NULL &&
        cfg_tls_protocols(ctx, v[CFG_TLS_PROTOCOLS], cfg_path_key(sub, path, "protocols"),
                          &t->protocols) == -1)
        return -1;
    if (v[CFG_TLS_CIPHERS] != NULL &&
        cfg_tls_string(ctx, v[CFG_TLS_CIPHERS], cfg_path_key(sub, path, "ciphers"), &t->ciphers,
                       t->ciphers_at) == -1)
        return -1;
    if (v[CFG_TLS_CIPHERSUITES] != NULL &&
        cfg_tls_string(ctx, v[CFG_TLS_CIPHERSUITES], cfg_path_key(sub, path, "ciphersuites"),
                       &t->ciphersuites, t->ciphersuites_at) == -1)
        return -1;
    if (v[CFG_TLS_CLIENT_CA] != NULL &&
        cfg_tls_file(ctx, v[CFG_TLS_CLIENT_CA], cfg_path_key(sub, path, "client_ca"),
                     &t->client_ca) == -1)
        return -1;
    if (v[CFG_TLS_VERIFY_CLIENT] != NULL) {
        cfg_path_key(sub, path, "verify_client");
        if (cfg_tls_verify(ctx, v[CFG_TLS_VERIFY_CLIENT], sub, &t->verify_client) == -1)
            return -1;
        if (t->verify_client != CFG_TLS_VERIFY_OFF && t->client_ca.path == NULL)
            return cfg_fail(ctx, v[CFG_TLS_VERIFY_CLIENT], sub,
                            "%s needs client_ca: the CAs that sign the clients' certificates",
                            cfg_verify_names[t->verify_client]);
    }
    return 0;
}

int
cfg_walk_tls(const struct cfg_ctx *ctx, const yaml_node_t *node)
{
    yaml_node_t *v[CFG_TLS_ROOT_COUNT];

    if (node == NULL)
        return 0;
    if (cfg_map_lookup(ctx, node, "tls", cfg_tls_root_keys, CFG_TLS_ROOT_COUNT, v) == -1)
        return -1;
    if (v[CFG_TLS_ROOT_TICKET_ROTATION] != NULL &&
        cfg_get_timeout(ctx, v[CFG_TLS_ROOT_TICKET_ROTATION], "tls.ticket_rotation",
                        &ctx->cfg->tls_ticket_rotation_ms) == -1)
        return -1;
    if (ctx->cfg->tls_ticket_rotation_ms < 60000u)
        return cfg_fail(ctx, v[CFG_TLS_ROOT_TICKET_ROTATION], "tls.ticket_rotation",
                        "expected a duration from 1m to 24h: a ticket key lives this long");
    return 0;
}

void
cfg_tls_listen_free(struct cfg_tls_listen *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n_certs; i++) {
        struct cfg_tls_cert *c = &t->certs[i];

        free(c->cert.path);
        free(c->key.path);
        for (size_t k = 0; k < c->n_names; k++)
            free(c->names[k]);
        free(c->names);
    }
    free(t->certs);
    free(t->ciphers);
    free(t->ciphersuites);
    free(t->client_ca.path);
    free(t);
}

enum cfg_tls_node_key {
    CFG_TLS_NODE_VERIFY = 0,
    CFG_TLS_NODE_CA,
    CFG_TLS_NODE_SNI,
    CFG_TLS_NODE_CERT,
    CFG_TLS_NODE_KEY,
    CFG_TLS_NODE_COUNT,
};
static const char *const cfg_tls_node_keys[CFG_TLS_NODE_COUNT] = {"verify", "ca", "sni", "cert",
                                                                  "key"};

int
cfg_walk_cluster_tls(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
                     struct cfg_cluster *c)
{
    char sub[CFG_PATH_MAX], shown[CFG_SHOW_SIZE];
    yaml_node_t *v[CFG_TLS_NODE_COUNT];
    struct cfg_tls_node *t;
    bool on = true;

    if (node->type == YAML_SCALAR_NODE) {
        /* tls: true (the defaults), or false (plain, as without the key). */
        if (cfg_get_bool(ctx, node, path, &on) == -1)
            return -1;
        if (!on)
            return 0;
    } else if (node->type != YAML_MAPPING_NODE) {
        return cfg_fail(ctx, node, path,
                        "expected true, or a mapping of verify, ca, sni, cert "
                        "and key, got %s",
                        cfg_got(node, shown));
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return cfg_oom(ctx);
    c->tls = t;
    t->verify = true;
    cfg_tls_at(ctx, node, path, t->at);
    if (node->type == YAML_SCALAR_NODE)
        return 0;
    if (cfg_map_lookup(ctx, node, path, cfg_tls_node_keys, CFG_TLS_NODE_COUNT, v) == -1)
        return -1;
    if (v[CFG_TLS_NODE_VERIFY] != NULL &&
        cfg_get_bool(ctx, v[CFG_TLS_NODE_VERIFY], cfg_path_key(sub, path, "verify"), &t->verify) ==
            -1)
        return -1;
    if (v[CFG_TLS_NODE_CA] != NULL &&
        cfg_tls_file(ctx, v[CFG_TLS_NODE_CA], cfg_path_key(sub, path, "ca"), &t->ca) == -1)
        return -1;
    if (v[CFG_TLS_NODE_SNI] != NULL) {
        const char *text =
            cfg_scalar(ctx, v[CFG_TLS_NODE_SNI], cfg_path_key(sub, path, "sni"), "a host name");

        if (text == NULL)
            return -1;
        if (text[0] == '\0' || strlen(text) > 253 ||
            text[strspn(text, "abcdefghijklmnopqrstuvwxyz"
                              "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              "0123456789-.")] != '\0')
            return cfg_fail(ctx, v[CFG_TLS_NODE_SNI], sub,
                            "expected a host name such as gw.internal, got %s",
                            cfg_show_str(shown, text));
        if (cfg_set_string(ctx, &t->sni, text) == -1)
            return -1;
    }
    if (v[CFG_TLS_NODE_CERT] != NULL &&
        cfg_tls_file(ctx, v[CFG_TLS_NODE_CERT], cfg_path_key(sub, path, "cert"), &t->cert) == -1)
        return -1;
    if (v[CFG_TLS_NODE_KEY] != NULL &&
        cfg_tls_file(ctx, v[CFG_TLS_NODE_KEY], cfg_path_key(sub, path, "key"), &t->key) == -1)
        return -1;
    if ((t->cert.path == NULL) != (t->key.path == NULL))
        return cfg_fail(ctx, node, cfg_path_key(sub, path, t->cert.path == NULL ? "cert" : "key"),
                        "expected both cert and key for a client certificate, got only %s",
                        t->cert.path == NULL ? "key" : "cert");
    return 0;
}

void
cfg_tls_node_free(struct cfg_tls_node *t)
{
    if (t == NULL)
        return;
    free(t->ca.path);
    free(t->sni);
    free(t->cert.path);
    free(t->key.path);
    free(t);
}
