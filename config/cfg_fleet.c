/* config/cfg_fleet.c -- the fleet section: the etcd cluster that holds the rollout state shared
 * by several crossfade instances, and this instance's name there. */
#include "config/cfg_int.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum cfg_fleet_key {
    CFG_FLEET_ETCD = 0,
    CFG_FLEET_PREFIX,
    CFG_FLEET_NAME,
    CFG_FLEET_LOCAL_FALLBACK,
    CFG_FLEET_TIMEOUT,
    CFG_FLEET_LEASE,
    CFG_FLEET_EPOCH_HEADER,
    CFG_FLEET_COUNT,
};
static const char *const cfg_fleet_keys[CFG_FLEET_COUNT] = {
    [CFG_FLEET_ETCD] = "etcd",
    [CFG_FLEET_PREFIX] = "prefix",
    [CFG_FLEET_NAME] = "name",
    [CFG_FLEET_LOCAL_FALLBACK] = "local_fallback",
    [CFG_FLEET_TIMEOUT] = "timeout",
    [CFG_FLEET_LEASE] = "lease",
    [CFG_FLEET_EPOCH_HEADER] = "epoch_header",
};

#define CFG_FLEET_PREFIX_MAX 200
#define CFG_FLEET_NAME_MAX   63

int
cfg_fleet_endpoint_parse(const char *text, char *out, size_t size, struct xf_err *err)
{
    char host[256];
    unsigned port;

    if (strncmp(text, "https://", 8) == 0) {
        xf_err_set(err, "https is not supported yet: crossfade talks to etcd's JSON gateway over "
                        "plain http (docs/fleet.md)");
        return -1;
    }
    if (xf_http_url_parse(text, 2379, host, sizeof(host), &port, err) == -1)
        return -1;
    if (snprintf(out, size, strchr(host, ':') != NULL ? "http://[%s]:%u" : "http://%s:%u", host,
                 port) >= (int)size) {
        xf_err_set(err, "the endpoint is too long");
        return -1;
    }
    return 0;
}

/* fleet.etcd: one endpoint or a sequence of them, each once. */
static int
cfg_fleet_walk_etcd(const struct cfg_ctx *ctx, const yaml_node_t *node, struct cfg_fleet *f)
{
    static const char what[] = "an etcd endpoint such as http://10.0.0.5:2379";
    char item_path[CFG_PATH_MAX], shown[CFG_SHOW_SIZE];
    bool one = node->type == YAML_SCALAR_NODE;
    size_t n = one ? 1 : (node->type == YAML_SEQUENCE_NODE ? cfg_seq_len(node) : 0);

    if (n == 0 || n > CFG_FLEET_ENDPOINTS_MAX)
        return cfg_fail(ctx, node, "fleet.etcd",
                        "expected %s, or a sequence of 1 to %d of them, got %s", what,
                        CFG_FLEET_ENDPOINTS_MAX, cfg_got(node, shown));
    f->etcd = calloc(n, sizeof(*f->etcd));
    if (f->etcd == NULL)
        return cfg_oom(ctx);
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *item = one ? node : cfg_node(ctx, node->data.sequence.items.start[i]);
        char norm[CFG_FLEET_ENDPOINT_MAX];
        struct xf_err why = {{0}};
        const char *text;

        if (one)
            snprintf(item_path, sizeof(item_path), "fleet.etcd");
        else
            cfg_path_index(item_path, "fleet.etcd", i);
        text = cfg_scalar(ctx, item, item_path, what);
        if (text == NULL)
            return -1;
        if (cfg_fleet_endpoint_parse(text, norm, sizeof(norm), &why) == -1)
            return cfg_fail(ctx, item, item_path, "%s, got %s", why.msg, cfg_show_str(shown, text));
        for (size_t j = 0; j < i; j++)
            if (strcmp(f->etcd[j], norm) == 0)
                return cfg_fail(ctx, item, item_path,
                                "expected each endpoint once, got %s again (as fleet.etcd[%zu])",
                                cfg_show_str(shown, text), j);
        f->etcd[i] = strdup(norm);
        if (f->etcd[i] == NULL)
            return cfg_oom(ctx);
        f->n_etcd = i + 1;
    }
    return 0;
}

/* fleet.prefix: printable, no spaces; a "/" is added when it does not end in one. */
static int
cfg_fleet_walk_prefix(const struct cfg_ctx *ctx, const yaml_node_t *node, struct cfg_fleet *f)
{
    static const char what[] = "a key prefix such as /crossfade/kong-prod/";
    char shown[CFG_SHOW_SIZE];
    const char *text = cfg_scalar(ctx, node, "fleet.prefix", what);
    size_t len;

    if (text == NULL)
        return -1;
    len = strlen(text);
    if (len == 0 || len > CFG_FLEET_PREFIX_MAX)
        return cfg_fail(ctx, node, "fleet.prefix", "expected %s (1 to %d bytes), got %s", what,
                        CFG_FLEET_PREFIX_MAX, cfg_show_str(shown, text));
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)text[i] <= 0x20 || (unsigned char)text[i] >= 0x7f)
            return cfg_fail(ctx, node, "fleet.prefix",
                            "expected %s, printable with no spaces, got %s", what,
                            cfg_show_str(shown, text));
    free(f->prefix);
    f->prefix = malloc(len + 2);
    if (f->prefix == NULL)
        return cfg_oom(ctx);
    memcpy(f->prefix, text, len);
    if (text[len - 1] != '/')
        f->prefix[len++] = '/';
    f->prefix[len] = '\0';
    return 0;
}

/* Whether `s` may name an instance: 1 to 63 of letters, digits, '.', '-' and '_'. */
static bool
cfg_fleet_name_ok(const char *s)
{
    size_t len = strlen(s);

    return len > 0 && len <= CFG_FLEET_NAME_MAX &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") == len;
}

/* fleet.name, or the host name. */
static int
cfg_fleet_walk_name(const struct cfg_ctx *ctx, const yaml_node_t *fleet, const yaml_node_t *node,
                    struct cfg_fleet *f)
{
    static const char what[] = "an instance name of 1 to 63 letters, digits, '.', '-' or '_'";
    char shown[CFG_SHOW_SIZE], host[256];
    const char *text;

    if (node == NULL) {
        if (gethostname(host, sizeof(host)) == -1)
            host[0] = '\0';
        host[sizeof(host) - 1] = '\0';
        if (!cfg_fleet_name_ok(host))
            return cfg_fail(ctx, fleet, "fleet.name",
                            "the host name %s cannot name this instance: set fleet.name to %s",
                            cfg_show_str(shown, host), what);
        return cfg_set_string(ctx, &f->name, host);
    }
    text = cfg_scalar(ctx, node, "fleet.name", what);
    if (text == NULL)
        return -1;
    if (!cfg_fleet_name_ok(text))
        return cfg_fail(ctx, node, "fleet.name", "expected %s, got %s", what,
                        cfg_show_str(shown, text));
    return cfg_set_string(ctx, &f->name, text);
}

int
cfg_walk_fleet(const struct cfg_ctx *ctx, const yaml_node_t *node)
{
    struct cfg_fleet *f = &ctx->cfg->fleet;
    yaml_node_t *v[CFG_FLEET_COUNT];
    char shown[CFG_SHOW_SIZE];

    if (node == NULL)
        return 0;
    if (cfg_map_lookup(ctx, node, "fleet", cfg_fleet_keys, CFG_FLEET_COUNT, v) == -1)
        return -1;
    f->configured = true;
    if (v[CFG_FLEET_ETCD] == NULL)
        return cfg_fail(ctx, node, "fleet.etcd",
                        "missing: fleet needs the etcd endpoints, such as etcd: "
                        "[\"http://10.0.0.5:2379\"]");
    if (cfg_fleet_walk_etcd(ctx, v[CFG_FLEET_ETCD], f) == -1)
        return -1;
    if (v[CFG_FLEET_PREFIX] != NULL) {
        if (cfg_fleet_walk_prefix(ctx, v[CFG_FLEET_PREFIX], f) == -1)
            return -1;
    } else if (cfg_set_string(ctx, &f->prefix, CFG_FLEET_DEFAULT_PREFIX) == -1) {
        return -1;
    }
    if (cfg_fleet_walk_name(ctx, node, v[CFG_FLEET_NAME], f) == -1)
        return -1;
    if (v[CFG_FLEET_LOCAL_FALLBACK] != NULL &&
        cfg_get_bool(ctx, v[CFG_FLEET_LOCAL_FALLBACK], "fleet.local_fallback",
                     &f->local_fallback) == -1)
        return -1;
    if (v[CFG_FLEET_TIMEOUT] != NULL &&
        cfg_get_timeout(ctx, v[CFG_FLEET_TIMEOUT], "fleet.timeout", &f->timeout_ms) == -1)
        return -1;
    if (v[CFG_FLEET_LEASE] != NULL) {
        if (cfg_get_timeout(ctx, v[CFG_FLEET_LEASE], "fleet.lease", &f->lease_ms) == -1)
            return -1;
        if (f->lease_ms < 2000 || f->lease_ms > 600000)
            return cfg_fail(
                ctx, v[CFG_FLEET_LEASE], "fleet.lease",
                "expected a duration from 2s to 10m, got %s",
                cfg_show_str(shown, (const char *)v[CFG_FLEET_LEASE]->data.scalar.value));
    }
    if (v[CFG_FLEET_EPOCH_HEADER] != NULL &&
        cfg_get_name_or_off(ctx, v[CFG_FLEET_EPOCH_HEADER], "fleet.epoch_header", true,
                            &f->epoch_header) == -1)
        return -1;
    return 0;
}

void
cfg_fleet_free(struct cfg_fleet *f)
{
    for (size_t i = 0; i < f->n_etcd; i++)
        free(f->etcd[i]);
    free(f->etcd);
    free(f->prefix);
    free(f->name);
    free(f->epoch_header);
    memset(f, 0, sizeof(*f));
}
