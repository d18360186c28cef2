/* config/cfg_load.c -- reads the YAML file with libyaml's document API into one struct cfg. */
#include "config/cfg_int.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <yaml.h>

#include "common/xf.h"

#define CFG_FILE_MAX        (4u << 20) /* a configuration file larger than this is a mistake */
#define CFG_TIMEOUT_MAX_MS  (24u * 3600u * 1000u)
#define CFG_SOCKET_PATH_MAX (sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1)

#define CFG_DEFAULT_ADMIN_SOCKET "/run/crossfade/admin.sock"
#define CFG_DEFAULT_SEED         "crossfade"
#define CFG_DEFAULT_ACCESS_LOG   "-"
#define CFG_DEFAULT_OVERRIDE_HDR "X-Crossfade-Target"
#define CFG_STATE_PATH_MAX       1024
#define CFG_RETRIES_MAX          10

/*
 * The schema: one key list per mapping, indexed by an enum so that a walker reads
 * `v[CFG_SPLIT_SEED]` rather than searching the mapping again.
 */
enum cfg_root_key {
    CFG_ROOT_LISTEN = 0,
    CFG_ROOT_ADMIN,
    CFG_ROOT_SPLIT,
    CFG_ROOT_CLUSTERS,
    CFG_ROOT_TIMEOUTS,
    CFG_ROOT_LIMITS,
    CFG_ROOT_RETRIES,
    CFG_ROOT_ACCESS_LOG,
    CFG_ROOT_ACCESS_LOG_FORMAT,
    CFG_ROOT_ACCESS_LOG_SAMPLE,
    CFG_ROOT_LOG_LEVEL,
    CFG_ROOT_STATE_FILE,
    CFG_ROOT_WORKERS,
    CFG_ROOT_TLS,
    CFG_ROOT_TUNNELS,
    CFG_ROOT_GUARD,
    CFG_ROOT_TEST_TRAFFIC,
    CFG_ROOT_FLEET,
    CFG_ROOT_COUNT,
};
static const char *const cfg_root_keys[CFG_ROOT_COUNT] = {
    "listen",
    "admin",
    "split",
    "clusters",
    "timeouts",
    "limits",
    "retries",
    "access_log",
    "access_log_format",
    "access_log_sample",
    "log_level",
    "state_file",
    "workers",
    "tls",
    "tunnels",
    "guard",
    "test_traffic",
    "fleet",
};
static const char *const cfg_alog_formats[] = {"text", "json"}; /* by enum cfg_alog_format */

enum cfg_listen_key {
    CFG_LISTEN_ADDRESS = 0,
    CFG_LISTEN_ROLE,
    CFG_LISTEN_NODE_PORT,
    CFG_LISTEN_TLS,
    CFG_LISTEN_MODE,
    CFG_LISTEN_KEY,
    CFG_LISTEN_PROXY_PROTOCOL,
    CFG_LISTEN_COUNT,
};
static const char *const cfg_listen_keys[CFG_LISTEN_COUNT] = {
    "address", "role", "node_port", "tls", "mode", "key", "proxy_protocol"};
static const char *const cfg_role_names[] = {"proxy", "admin_api"}; /* by enum cfg_role */
static const char *const cfg_mode_names[] = {"http", "tcp"};        /* by enum cfg_mode */
static const char *const cfg_l4_key_names[] = {"ip", "sni"};        /* by enum cfg_l4_key */

enum cfg_admin_key {
    CFG_ADMIN_SOCKET = 0,
    CFG_ADMIN_GROUP,
    CFG_ADMIN_HTTP,
    CFG_ADMIN_COUNT,
};
static const char *const cfg_admin_keys[CFG_ADMIN_COUNT] = {"socket", "group", "http"};

enum cfg_split_field {
    CFG_SPLIT_WEIGHT = 0,
    CFG_SPLIT_KEY,
    CFG_SPLIT_SEED,
    CFG_SPLIT_TRUSTED_PROXIES,
    CFG_SPLIT_OVERRIDE_HEADER,
    CFG_SPLIT_OVERRIDE_COOKIE,
    CFG_SPLIT_OVERRIDE_FROM,
    CFG_SPLIT_EXPOSE,
    CFG_SPLIT_COUNT,
};
static const char *const cfg_split_keys[CFG_SPLIT_COUNT] = {
    "weight",          "key",           "seed",   "trusted_proxies", "override_header",
    "override_cookie", "override_from", "expose",
};

enum cfg_timeout_key {
    CFG_TIMEOUT_CONNECT = 0,
    CFG_TIMEOUT_CLIENT_HEADER,
    CFG_TIMEOUT_CLIENT_IDLE,
    CFG_TIMEOUT_UPSTREAM_RESPONSE,
    CFG_TIMEOUT_UPSTREAM_IDLE,
    CFG_TIMEOUT_SHUTDOWN,
    CFG_TIMEOUT_QUEUE,
    CFG_TIMEOUT_TLS_HANDSHAKE,
    CFG_TIMEOUT_TUNNEL_IDLE,
    CFG_TIMEOUT_TCP_HELLO,
    CFG_TIMEOUT_CLIENT_REQUEST,
    CFG_TIMEOUT_COUNT,
};
static const char *const cfg_timeout_keys[CFG_TIMEOUT_COUNT] = {
    "connect", "client_header", "client_idle", "upstream_response", "upstream_idle",  "shutdown",
    "queue",   "tls_handshake", "tunnel_idle", "tcp_hello",         "client_request",
};

enum cfg_limit_key {
    CFG_LIMIT_MAX_CONNECTIONS = 0,
    CFG_LIMIT_MAX_REQUEST_LINE_BYTES,
    CFG_LIMIT_MAX_HEADER_BYTES,
    CFG_LIMIT_MAX_HEADERS,
    CFG_LIMIT_MAX_BODY_BYTES,
    CFG_LIMIT_MAX_REQUESTS_PER_CONNECTION,
    CFG_LIMIT_REQUEST_BUFFER_BYTES,
    CFG_LIMIT_COUNT,
};
static const char *const cfg_limit_keys[CFG_LIMIT_COUNT] = {
    "max_connections", "max_request_line_bytes",      "max_header_bytes",     "max_headers",
    "max_body_bytes",  "max_requests_per_connection", "request_buffer_bytes",
};
static const struct cfg_limit_range {
    uint64_t min, max;
} cfg_limit_ranges[CFG_LIMIT_COUNT] = {
    {1, 1000000},    {256, 1048576},  {1024, 1048576}, {1, 10000},
    {0, UINT64_MAX}, {0, UINT32_MAX}, {0, 16777216},
};

/* The split key kinds by enum cfg_key_kind, and what follows the colon (NULL: nothing may). */
static const char *const cfg_key_kind_names[] = {
    [CFG_KEY_HEADER] = "header", [CFG_KEY_COOKIE] = "cookie",   [CFG_KEY_QUERY] = "query",
    [CFG_KEY_IP] = "ip",         [CFG_KEY_JWT_SUB] = "jwt_sub", [CFG_KEY_BASIC_USER] = "basic_user",
    [CFG_KEY_RANDOM] = "random", [CFG_KEY_CERT] = "cert",
};
static const char *const cfg_key_kind_args[XF_ARRAY_LEN(cfg_key_kind_names)] = {
    [CFG_KEY_HEADER] = "a header name",
    [CFG_KEY_COOKIE] = "a cookie name",
    [CFG_KEY_QUERY] = "a query parameter name",
    [CFG_KEY_JWT_SUB] = "a header name",
    [CFG_KEY_CERT] = "subject, san or fingerprint",
};

const char *
cfg_key_kind_name(enum cfg_key_kind kind)
{
    if ((size_t)kind < XF_ARRAY_LEN(cfg_key_kind_names) && cfg_key_kind_names[kind] != NULL)
        return cfg_key_kind_names[kind];
    return "unknown";
}

#define CFG_KEY_KINDS_TEXT                                                                         \
    "header:NAME, cookie:NAME, query:NAME, ip, jwt_sub:HEADER, basic_user, random or "             \
    "cert:subject|san|fingerprint"

/* ---- Messages ------------------------------------------------------------------------------ */

/* The quoted excerpt of a value for a message (xf_quote). */
const char *
cfg_show(char *buf, const char *s, size_t len)
{
    return xf_quote(buf, s, len);
}

const char *
cfg_show_str(char *buf, const char *s)
{
    return cfg_show(buf, s, strlen(s));
}

/*
 * The candidate closest to `word` by edit distance, or NULL when none is close enough to be a
 * likely typo: at most two edits, and at most half the candidate's letters ("id" for "ip", but
 * not "z" for "x").
 */
static const char *
cfg_closest(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX;

    for (size_t i = 0; i < n; i++) {
        size_t d = xf_edit_distance(word, cands[i]);

        if (d < best_d) {
            best = cands[i];
            best_d = d;
        }
    }
    if (best == NULL || best_d > 2 || 2 * best_d > strlen(best))
        return NULL;
    return best;
}

/* Writes ` (did you mean "x"?)` into buf when a candidate is close to `word`, else "". */
const char *
cfg_hint(char *buf, size_t size, const char *word, const char *const *cands, size_t n)
{
    const char *best = cfg_closest(word, cands, n);

    if (best == NULL)
        buf[0] = '\0';
    else
        snprintf(buf, size, " (did you mean \"%s\"?)", best);
    return buf;
}

/*
 * Sets "NAME:LINE:COL: path: message" (1-based line and column of `at`; no "path: " when path is
 * empty) and returns -1, so that callers can `return cfg_fail(...)`.
 */
int
cfg_fail(const struct cfg_ctx *ctx, const yaml_node_t *at, const char *path, const char *fmt, ...)
{
    char msg[sizeof(((struct xf_err *)NULL)->msg)];
    va_list ap;

    if (ctx->err == NULL)
        return -1;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    xf_err_set(ctx->err, "%s:%zu:%zu: %s%s%s", ctx->name, at->start_mark.line + 1,
               at->start_mark.column + 1, path, path[0] != '\0' ? ": " : "", msg);
    return -1;
}

int
cfg_oom(const struct cfg_ctx *ctx)
{
    xf_err_set(ctx->err, "%s: out of memory", ctx->name);
    return -1;
}

/* "parent.key", or "key" at the top level. Returns buf. */
const char *
cfg_path_key(char *buf, const char *parent, const char *key)
{
    if (snprintf(buf, CFG_PATH_MAX, "%s%s%s", parent, parent[0] != '\0' ? "." : "", key) < 0)
        buf[0] = '\0';
    return buf;
}

/* "parent[i]". Returns buf. */
const char *
cfg_path_index(char *buf, const char *parent, size_t i)
{
    if (snprintf(buf, CFG_PATH_MAX, "%s[%zu]", parent, i) < 0)
        buf[0] = '\0';
    return buf;
}

/* ---- YAML nodes ---------------------------------------------------------------------------- */

yaml_node_t *
cfg_node(const struct cfg_ctx *ctx, int id)
{
    return yaml_document_get_node(ctx->doc, id);
}

static bool
cfg_is_plain(const yaml_node_t *node)
{
    return node->type == YAML_SCALAR_NODE && node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

/* A plain scalar spelled as YAML's null: nothing at all, "~" or "null". */
static bool
cfg_is_null(const yaml_node_t *node)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};

    if (!cfg_is_plain(node))
        return false;
    for (size_t i = 0; i < XF_ARRAY_LEN(nulls); i++) {
        if (strcmp((const char *)node->data.scalar.value, nulls[i]) == 0)
            return true;
    }
    return false;
}

/* True when `node` is a scalar whose whole text is `lit`. */
bool
cfg_scalar_is(const yaml_node_t *node, const char *lit)
{
    return node->type == YAML_SCALAR_NODE && node->data.scalar.length == strlen(lit) &&
           memcmp(node->data.scalar.value, lit, node->data.scalar.length) == 0;
}

size_t
cfg_seq_len(const yaml_node_t *node)
{
    return (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
}

/* What `node` is, for the "got ..." half of a message; scalars are quoted into buf. */
const char *
cfg_got(const yaml_node_t *node, char *buf)
{
    switch (node->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return cfg_seq_len(node) == 0 ? "an empty sequence" : "a sequence";
    case YAML_SCALAR_NODE:
        if (cfg_is_null(node))
            return node->data.scalar.length == 0 ? "nothing" : "null";
        return cfg_show(buf, (const char *)node->data.scalar.value, node->data.scalar.length);
    default:
        return "nothing";
    }
}

/*
 * Returns the text of `node` when it is a scalar that is not null and holds no NUL byte; otherwise
 * NULL after the message "path: expected <what>, got ...".
 */
const char *
cfg_scalar(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path, const char *what)
{
    char shown[CFG_SHOW_SIZE];
    const char *text;

    if (node->type != YAML_SCALAR_NODE || cfg_is_null(node)) {
        cfg_fail(ctx, node, path, "expected %s, got %s", what, cfg_got(node, shown));
        return NULL;
    }
    text = (const char *)node->data.scalar.value;
    if (strlen(text) != node->data.scalar.length) {
        cfg_fail(ctx, node, path, "expected %s, got text with a NUL byte", what);
        return NULL;
    }
    return text;
}

/* The message for a key that the schema does not know, with a hint or the list of valid keys. */
static int
cfg_unknown_key(const struct cfg_ctx *ctx, const yaml_node_t *key, const char *path,
                const char *const *keys, size_t n_keys)
{
    char shown[CFG_SHOW_SIZE], list[256];
    const char *name = (const char *)key->data.scalar.value;
    const char *best = cfg_closest(name, keys, n_keys);
    size_t used = 0;

    cfg_show(shown, name, key->data.scalar.length);
    if (best != NULL)
        return cfg_fail(ctx, key, path, "unknown key %s, did you mean \"%s\"?", shown, best);
    list[0] = '\0';
    for (size_t i = 0; i < n_keys && used < sizeof(list); i++) {
        int n = snprintf(list + used, sizeof(list) - used, "%s%s", i > 0 ? ", " : "", keys[i]);

        if (n < 0)
            break;
        used += (size_t)n;
    }
    return cfg_fail(ctx, key, path, "unknown key %s, expected one of: %s", shown, list);
}

/*
 * Checks that `map` is a mapping whose keys are distinct scalars among `keys`, and stores the value
 * node of each key in `values` (NULL when absent). Returns 0, or -1 with a message.
 */
int
cfg_map_lookup(const struct cfg_ctx *ctx, const yaml_node_t *map, const char *path,
               const char *const *keys, size_t n_keys, yaml_node_t **values)
{
    char shown[CFG_SHOW_SIZE];
    const yaml_node_pair_t *pair;

    for (size_t i = 0; i < n_keys; i++)
        values[i] = NULL;
    if (map->type != YAML_MAPPING_NODE)
        return cfg_fail(ctx, map, path, "expected a mapping, got %s", cfg_got(map, shown));
    for (pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
        const yaml_node_t *key = cfg_node(ctx, pair->key);
        size_t i;

        if (key->type != YAML_SCALAR_NODE)
            return cfg_fail(ctx, key, path, "expected a key name, got %s", cfg_got(key, shown));
        for (i = 0; i < n_keys && !cfg_scalar_is(key, keys[i]); i++)
            continue;
        if (i == n_keys)
            return cfg_unknown_key(ctx, key, path, keys, n_keys);
        if (values[i] != NULL) {
            const yaml_node_pair_t *first = map->data.mapping.pairs.start;

            while (!cfg_scalar_is(cfg_node(ctx, first->key), keys[i]))
                first++;
            return cfg_fail(ctx, key, path,
                            "expected each key once, got a second \"%s\" (the first is at line "
                            "%zu, column %zu)",
                            keys[i], cfg_node(ctx, first->key)->start_mark.line + 1,
                            cfg_node(ctx, first->key)->start_mark.column + 1);
        }
        values[i] = cfg_node(ctx, pair->value);
    }
    return 0;
}

/* ---- Typed values -------------------------------------------------------------------------- */

/* True when `text` is one of the `n` words, ignoring case. */
static bool
cfg_is_word(const char *text, const char *const *words, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (xf_span_ieq(text, strlen(text), words[i]))
            return true;
    }
    return false;
}

/*
 * True when the scalar `node` (text `text`) turns a setting off: YAML's off, false or no, unquoted
 * and in any case, or the string "off", quoted or not.
 */
static bool
cfg_is_off(const yaml_node_t *node, const char *text)
{
    static const char *const no[] = {"off", "false", "no"};

    return strcmp(text, "off") == 0 || (cfg_is_plain(node) && cfg_is_word(text, no, 3));
}

/* True for an unquoted on, true or yes: "switch it on" rather than a name or a path, so refused. */
static bool
cfg_is_on(const yaml_node_t *node, const char *text)
{
    static const char *const yes[] = {"on", "true", "yes"};

    return cfg_is_plain(node) && cfg_is_word(text, yes, 3);
}

/* Parses decimal digits (no sign, no space) into `out`. Returns 0, or -1 on anything else. */
static int
cfg_u64_parse(const char *text, uint64_t *out)
{
    uint64_t n = 0;

    if (*text == '\0')
        return -1;
    for (; *text != '\0'; text++) {
        unsigned d = (unsigned)(*text - '0');

        if (d > 9 || n > (UINT64_MAX - d) / 10)
            return -1;
        n = n * 10 + d;
    }
    *out = n;
    return 0;
}

/* Reads an integer from `min` to `max` into `out`. Returns 0 or -1 with a message. */
static int
cfg_get_u64(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path, uint64_t min,
            uint64_t max, uint64_t *out)
{
    char what[96], shown[CFG_SHOW_SIZE];
    const char *text;
    uint64_t n;

    if (max == UINT64_MAX)
        snprintf(what, sizeof(what), "an integer of %" PRIu64 " or more", min);
    else
        snprintf(what, sizeof(what), "an integer from %" PRIu64 " to %" PRIu64, min, max);
    text = cfg_scalar(ctx, node, path, what);
    if (text == NULL)
        return -1;
    if (cfg_u64_parse(text, &n) == -1 || n < min || n > max)
        return cfg_fail(ctx, node, path, "expected %s, got %s", what, cfg_show_str(shown, text));
    *out = n;
    return 0;
}

int
cfg_get_unsigned(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path, unsigned min,
                 unsigned max, unsigned *out)
{
    uint64_t n;

    if (cfg_get_u64(ctx, node, path, min, max, &n) == -1)
        return -1;
    *out = (unsigned)n;
    return 0;
}

/* Replaces the owned string at `dst` with a copy of `text`. Returns 0 or -1 (out of memory). */
int
cfg_set_string(const struct cfg_ctx *ctx, char **dst, const char *text)
{
    char *copy = strdup(text);

    if (copy == NULL)
        return cfg_oom(ctx);
    free(*dst);
    *dst = copy;
    return 0;
}

/* Reads a non-empty string of at most `max` bytes into the owned string at `dst`. */
static int
cfg_get_string(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
               const char *what, size_t max, char **dst)
{
    char shown[CFG_SHOW_SIZE];
    const char *text = cfg_scalar(ctx, node, path, what);

    if (text == NULL)
        return -1;
    if (text[0] == '\0' || strlen(text) > max)
        return cfg_fail(ctx, node, path, "expected %s, got %s", what, cfg_show_str(shown, text));
    return cfg_set_string(ctx, dst, text);
}

int
cfg_get_addr(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
             struct cfg_addr *out)
{
    struct xf_err why;
    const char *text = cfg_scalar(ctx, node, path, "an address such as 10.0.0.1:8000");

    if (text == NULL)
        return -1;
    if (cfg_addr_parse(text, out, &why) == -1)
        return cfg_fail(ctx, node, path, "%s", why.msg);
    return 0;
}

/* True when both name the same socket: family, address, port (and IPv6 scope). */
bool
cfg_addr_same(const struct cfg_addr *a, const struct cfg_addr *b)
{
    if (a->sa.ss_family != b->sa.ss_family)
        return false;
    if (a->sa.ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)&a->sa;
        const struct sockaddr_in *y = (const struct sockaddr_in *)&b->sa;

        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa.ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)&a->sa;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)&b->sa;

        return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}

/* Reads a timeout: a duration from 1ms to 24h. */
int
cfg_get_timeout(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
                unsigned *out_ms)
{
    char shown[CFG_SHOW_SIZE];
    struct xf_err why;
    const char *text = cfg_scalar(ctx, node, path, "a duration such as 500ms, 3s, 1m or 1h");
    unsigned ms;

    if (text == NULL)
        return -1;
    if (cfg_duration_parse(text, &ms, &why) == -1)
        return cfg_fail(ctx, node, path, "%s", why.msg);
    if (ms == 0 || ms > CFG_TIMEOUT_MAX_MS)
        return cfg_fail(ctx, node, path, "expected a duration from 1ms to 24h, got %s",
                        cfg_show_str(shown, text));
    *out_ms = ms;
    return 0;
}

/*
 * Reads a switch: true, yes or on, or false, no or off, in any case, quoted or not (there is no
 * name it could be confused with, unlike access_log's "false").
 */
int
cfg_get_bool(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    char shown[CFG_SHOW_SIZE];
    const char *text = cfg_scalar(ctx, node, path, "true or false");

    if (text == NULL)
        return -1;
    if (cfg_is_word(text, yes, XF_ARRAY_LEN(yes)))
        *out = true;
    else if (cfg_is_word(text, no, XF_ARRAY_LEN(no)))
        *out = false;
    else
        return cfg_fail(ctx, node, path, "expected true or false, got %s",
                        cfg_show_str(shown, text));
    return 0;
}

int
cfg_get_choice(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
               const char *const *names, size_t n, const char *what, unsigned *out)
{
    char shown[CFG_SHOW_SIZE], hint[64];
    const char *text = cfg_scalar(ctx, node, path, what);

    if (text == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(text, names[i]) == 0) {
            *out = (unsigned)i;
            return 0;
        }
    }
    return cfg_fail(ctx, node, path, "expected %s, got %s%s", what, cfg_show_str(shown, text),
                    cfg_hint(hint, sizeof(hint), text, names, n));
}

/* Parses a percentage 0..100 with at most two decimals into hundredths ("12.5" -> 1250). */
static int
cfg_percent_parse(const char *text, unsigned *out_bp)
{
    unsigned whole = 0, frac = 0, n_frac = 0;
    const char *p = text;

    for (; *p >= '0' && *p <= '9'; p++) {
        whole = whole * 10 + (unsigned)(*p - '0');
        if (whole > 100)
            return -1;
    }
    if (p == text)
        return -1;
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++) {
            if (++n_frac > 2)
                return -1;
            frac = frac * 10 + (unsigned)(*p - '0');
        }
        if (n_frac == 0)
            return -1;
        if (n_frac == 1)
            frac *= 10;
    }
    if (*p != '\0' || whole * 100 + frac > 10000)
        return -1;
    *out_bp = whole * 100 + frac;
    return 0;
}

/* ---- Sections ------------------------------------------------------------------------------ */

static int
cfg_walk_listener(const struct cfg_ctx *ctx, const yaml_node_t *item, size_t i)
{
    struct cfg_listener *l = &ctx->cfg->listeners[i];
    char path[CFG_PATH_MAX], addr_path[CFG_PATH_MAX], sub[CFG_PATH_MAX];
    char shown[CFG_SHOW_SIZE];
    yaml_node_t *v[CFG_LISTEN_COUNT] = {NULL};
    const yaml_node_t *addr_node = item;
    unsigned choice = 0;

    cfg_path_index(path, "listen", i);
    memcpy(addr_path, path, sizeof(path));
    if (item->type == YAML_SEQUENCE_NODE)
        return cfg_fail(ctx, item, path, "expected an address or a mapping with address, got %s",
                        cfg_got(item, shown));
    if (item->type == YAML_MAPPING_NODE) {
        if (cfg_map_lookup(ctx, item, path, cfg_listen_keys, CFG_LISTEN_COUNT, v) == -1)
            return -1;
        cfg_path_key(addr_path, path, "address");
        if (v[CFG_LISTEN_ADDRESS] == NULL)
            return cfg_fail(ctx, item, addr_path,
                            "expected an address such as 127.0.0.1:8000, got nothing");
        addr_node = v[CFG_LISTEN_ADDRESS];
    }
    if (cfg_get_addr(ctx, addr_node, addr_path, &l->addr) == -1)
        return -1;
    for (size_t j = 0; j < i; j++) {
        if (cfg_addr_same(&l->addr, &ctx->cfg->listeners[j].addr))
            return cfg_fail(ctx, addr_node, addr_path,
                            "expected each listen address once, got %s again (as listen[%zu])",
                            cfg_show_str(shown, l->addr.text), j);
    }
    if (item->type != YAML_MAPPING_NODE)
        return 0;
    if (v[CFG_LISTEN_TLS] != NULL &&
        cfg_walk_listener_tls(ctx, v[CFG_LISTEN_TLS], cfg_path_key(sub, path, "tls"), l) == -1)
        return -1;
    if (v[CFG_LISTEN_NODE_PORT] != NULL) {
        unsigned port;

        if (cfg_get_unsigned(ctx, v[CFG_LISTEN_NODE_PORT], cfg_path_key(sub, path, "node_port"), 1,
                             65535, &port) == -1)
            return -1;
        l->node_port = (uint16_t)port;
    }
    if (v[CFG_LISTEN_ROLE] != NULL &&
        cfg_get_choice(ctx, v[CFG_LISTEN_ROLE], cfg_path_key(sub, path, "role"), cfg_role_names,
                       XF_ARRAY_LEN(cfg_role_names), "proxy or admin_api", &choice) == -1)
        return -1;
    l->role = (enum cfg_role)choice;
    choice = 0;
    if (v[CFG_LISTEN_MODE] != NULL &&
        cfg_get_choice(ctx, v[CFG_LISTEN_MODE], cfg_path_key(sub, path, "mode"), cfg_mode_names,
                       XF_ARRAY_LEN(cfg_mode_names), "http or tcp", &choice) == -1)
        return -1;
    l->mode = (enum cfg_mode)choice;
    choice = 0;
    if (v[CFG_LISTEN_KEY] != NULL &&
        cfg_get_choice(ctx, v[CFG_LISTEN_KEY], cfg_path_key(sub, path, "key"), cfg_l4_key_names,
                       XF_ARRAY_LEN(cfg_l4_key_names), "ip or sni", &choice) == -1)
        return -1;
    l->key = (enum cfg_l4_key)choice;
    if (v[CFG_LISTEN_PROXY_PROTOCOL] != NULL &&
        cfg_get_bool(ctx, v[CFG_LISTEN_PROXY_PROTOCOL], cfg_path_key(sub, path, "proxy_protocol"),
                     &l->proxy_protocol) == -1)
        return -1;
    if (l->mode == CFG_MODE_TCP) {
        /* The bytes go through as they come: nothing here reads HTTP or speaks TLS. */
        if (v[CFG_LISTEN_TLS] != NULL)
            return cfg_fail(ctx, v[CFG_LISTEN_TLS], cfg_path_key(sub, path, "tls"),
                            "expected no tls on a tcp-mode listener, which passes TLS through to "
                            "the nodes (use mode: http to terminate it here)");
        if (l->role == CFG_ROLE_ADMIN_API)
            return cfg_fail(ctx, v[CFG_LISTEN_ROLE], cfg_path_key(sub, path, "role"),
                            "expected proxy on a tcp-mode listener: the freeze of an admin_api "
                            "listener reads HTTP methods");
    } else if (v[CFG_LISTEN_KEY] != NULL) {
        return cfg_fail(ctx, v[CFG_LISTEN_KEY], cfg_path_key(sub, path, "key"),
                        "expected key only with mode: tcp (an http listener uses split.key)");
    }
    return 0;
}

static int
cfg_walk_listen(const struct cfg_ctx *ctx, const yaml_node_t *root, const yaml_node_t *node)
{
    static const char what[] = "a sequence of at least one listen address";
    struct cfg *cfg = ctx->cfg;
    char shown[CFG_SHOW_SIZE];
    size_t n;

    if (node == NULL)
        return cfg_fail(ctx, root, "listen", "expected %s, got nothing", what);
    if (node->type != YAML_SEQUENCE_NODE || cfg_seq_len(node) == 0)
        return cfg_fail(ctx, node, "listen", "expected %s, got %s", what, cfg_got(node, shown));
    n = cfg_seq_len(node);
    cfg->listeners = calloc(n, sizeof(*cfg->listeners));
    if (cfg->listeners == NULL)
        return cfg_oom(ctx);
    for (size_t i = 0; i < n; i++) {
        cfg->n_listeners = i + 1;
        if (cfg_walk_listener(ctx, cfg_node(ctx, node->data.sequence.items.start[i]), i) == -1)
            return -1;
    }
    return 0;
}

/*
 * admin.group: a group name, or a number taken as a group id as it is. A name is looked up here
 * (like a host name in an address), so that a typo stops the start with its line and column.
 */
static int
cfg_walk_admin_group(const struct cfg_ctx *ctx, const yaml_node_t *node)
{
    static const char what[] = "the name or the number of a group";
    char shown[CFG_SHOW_SIZE], buf[4096];
    struct group gr, *found = NULL;
    const char *text = cfg_scalar(ctx, node, "admin.group", what);
    uint64_t id;
    int rc;

    if (text == NULL)
        return -1;
    if (text[0] == '\0' || strlen(text) > 64)
        return cfg_fail(ctx, node, "admin.group", "expected %s, got %s", what,
                        cfg_show_str(shown, text));
    if (cfg_u64_parse(text, &id) == 0) {
        if (id >= (gid_t)-1)
            return cfg_fail(ctx, node, "admin.group", "expected a group id below %u, got %s",
                            (unsigned)(gid_t)-1, cfg_show_str(shown, text));
        ctx->cfg->admin_gid = (gid_t)id;
    } else {
        rc = getgrnam_r(text, &gr, buf, sizeof(buf), &found);
        if (found == NULL)
            return cfg_fail(ctx, node, "admin.group", "expected %s, got %s (%s)", what,
                            cfg_show_str(shown, text), rc == 0 ? "no such group" : strerror(rc));
        ctx->cfg->admin_gid = gr.gr_gid;
    }
    return cfg_set_string(ctx, &ctx->cfg->admin_group, text);
}

static int
cfg_walk_admin(const struct cfg_ctx *ctx, const yaml_node_t *node)
{
    char what[64];
    yaml_node_t *v[CFG_ADMIN_COUNT];

    if (node == NULL)
        return 0;
    if (cfg_map_lookup(ctx, node, "admin", cfg_admin_keys, CFG_ADMIN_COUNT, v) == -1)
        return -1;
    if (v[CFG_ADMIN_GROUP] != NULL && cfg_walk_admin_group(ctx, v[CFG_ADMIN_GROUP]) == -1)
        return -1;
    /* A list or a mapping falls through to cfg_get_addr, which refuses it by line and key. */
    if (v[CFG_ADMIN_HTTP] != NULL &&
        !(v[CFG_ADMIN_HTTP]->type == YAML_SCALAR_NODE &&
          cfg_is_off(v[CFG_ADMIN_HTTP], (const char *)v[CFG_ADMIN_HTTP]->data.scalar.value))) {
        ctx->cfg->admin_http = calloc(1, sizeof(*ctx->cfg->admin_http));
        if (ctx->cfg->admin_http == NULL)
            return cfg_oom(ctx);
        if (cfg_get_addr(ctx, v[CFG_ADMIN_HTTP], "admin.http", ctx->cfg->admin_http) == -1)
            return -1;
    }
    if (v[CFG_ADMIN_SOCKET] == NULL)
        return 0;
    snprintf(what, sizeof(what), "a socket path of 1 to %zu bytes", CFG_SOCKET_PATH_MAX);
    return cfg_get_string(ctx, v[CFG_ADMIN_SOCKET], "admin.socket", what, CFG_SOCKET_PATH_MAX,
                          &ctx->cfg->admin_socket);
}

/* True for the characters of an HTTP token (RFC 9110 tchar): header and cookie names. */
static bool
cfg_is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* True for the characters a query parameter name may hold: no space, control, '&', '=', '#'. */
static bool
cfg_is_query_char(unsigned char c)
{
    return c > 0x20 && c != 0x7f && c != '&' && c != '=' && c != '#';
}

/* Checks the name after "kind:" character by character; returns 0 or -1 with a message. */
static int
cfg_check_key_name(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
                   enum cfg_key_kind kind, const char *name, const char *shown)
{
    if (kind == CFG_KEY_CERT) {
        bool asked = false;

        if (strcmp(name, "subject") != 0 && strcmp(name, "san") != 0 &&
            strcmp(name, "fingerprint") != 0)
            return cfg_fail(ctx, node, path,
                            "expected cert:subject, cert:san or cert:fingerprint, got %s", shown);
        for (size_t i = 0; i < ctx->cfg->n_listeners; i++)
            asked |= ctx->cfg->listeners[i].tls != NULL &&
                     ctx->cfg->listeners[i].tls->verify_client != CFG_TLS_VERIFY_OFF;
        if (!asked)
            return cfg_fail(ctx, node, path,
                            "%s needs a listener that asks for client certificates "
                            "(tls.verify_client: optional or required)",
                            shown);
        return 0;
    }
    for (const char *p = name; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;

        if (kind == CFG_KEY_QUERY && !cfg_is_query_char(c))
            return cfg_fail(ctx, node, path,
                            "expected a query parameter name without spaces, '&', '=' or '#', "
                            "got %s",
                            shown);
        if (kind != CFG_KEY_QUERY && !cfg_is_tchar(c))
            return cfg_fail(ctx, node, path,
                            "expected %s made of letters, digits and !#$%%&'*+-.^_`|~, got %s",
                            cfg_key_kind_args[kind], shown);
    }
    return 0;
}

/*
 * Parses one split key ("header:X-Consumer-ID", "ip", ...) into `out`, which takes an owned copy
 * of the name; header names are stored in lower case, cookie and query names as written.
 */
static int
cfg_parse_split_key(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
                    struct cfg_split_key *out)
{
    char shown[CFG_SHOW_SIZE], kind[32], hint[64];
    const char *text, *colon, *arg;
    size_t kind_len, k;

    text = cfg_scalar(ctx, node, path, "a key such as ip or header:X-Consumer-ID");
    if (text == NULL)
        return -1;
    cfg_show_str(shown, text);
    colon = strchr(text, ':');
    kind_len = colon != NULL ? (size_t)(colon - text) : strlen(text);
    for (k = 0; k < XF_ARRAY_LEN(cfg_key_kind_names); k++) {
        if (strlen(cfg_key_kind_names[k]) == kind_len &&
            memcmp(cfg_key_kind_names[k], text, kind_len) == 0)
            break;
    }
    if (k == XF_ARRAY_LEN(cfg_key_kind_names)) {
        snprintf(kind, sizeof(kind), "%.*s", (int)XF_MIN(kind_len, sizeof(kind) - 1), text);
        return cfg_fail(ctx, node, path, "expected one of " CFG_KEY_KINDS_TEXT ", got %s%s", shown,
                        cfg_hint(hint, sizeof(hint), kind, cfg_key_kind_names,
                                 XF_ARRAY_LEN(cfg_key_kind_names)));
    }
    out->kind = (enum cfg_key_kind)k;
    arg = cfg_key_kind_args[k];
    if (arg == NULL) {
        if (colon != NULL)
            return cfg_fail(ctx, node, path, "expected \"%s\" with nothing after it, got %s",
                            cfg_key_kind_names[k], shown);
        return 0;
    }
    if (colon == NULL || colon[1] == '\0')
        return cfg_fail(ctx, node, path, "expected %s after \"%s:\", got %s", arg,
                        cfg_key_kind_names[k], shown);
    if (cfg_check_key_name(ctx, node, path, out->kind, colon + 1, shown) == -1)
        return -1;
    out->name = strdup(colon + 1);
    if (out->name == NULL)
        return cfg_oom(ctx);
    if (out->kind == CFG_KEY_HEADER || out->kind == CFG_KEY_JWT_SUB) {
        /* Field names are case-insensitive; lower case lets the proxy compare with xf_span_ieq. */
        for (char *p = out->name; *p != '\0'; p++) {
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        }
    }
    return 0;
}

static void
cfg_split_keys_free(struct cfg_split *split)
{
    for (size_t i = 0; i < split->n_keys; i++)
        free(split->keys[i].name);
    XF_FREE(split->keys);
    split->n_keys = 0;
}

/* split.key: one key or a sequence of them, tried in order; replaces the default ["ip"]. */
static int
cfg_walk_split_keys(const struct cfg_ctx *ctx, const yaml_node_t *node)
{
    struct cfg_split *split = &ctx->cfg->split;
    char path[CFG_PATH_MAX], shown[CFG_SHOW_SIZE];
    bool one = node->type == YAML_SCALAR_NODE;
    size_t n = one ? 1 : 0;

    if (node->type == YAML_SEQUENCE_NODE)
        n = cfg_seq_len(node);
    if (n == 0)
        return cfg_fail(ctx, node, "split.key",
                        "expected a sequence of at least one key such as ip or "
                        "header:X-Consumer-ID, got %s",
                        cfg_got(node, shown));
    cfg_split_keys_free(split);
    split->keys = calloc(n, sizeof(*split->keys));
    if (split->keys == NULL)
        return cfg_oom(ctx);
    split->n_keys = n;
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *item = one ? node : cfg_node(ctx, node->data.sequence.items.start[i]);
        struct cfg_split_key *key = &split->keys[i];

        if (one)
            snprintf(path, sizeof(path), "split.key");
        else
            cfg_path_index(path, "split.key", i);
        if (cfg_parse_split_key(ctx, item, path, key) == -1)
            return -1;
        for (size_t j = 0; j < i; j++) {
            const struct cfg_split_key *prev = &split->keys[j];

            if (prev->kind == key->kind &&
                (key->name == NULL || strcmp(prev->name, key->name) == 0))
                return cfg_fail(ctx, item, path,
                                "expected each key once, got %s again (as split.key[%zu])",
                                cfg_show_str(shown, (const char *)item->data.scalar.value), j);
        }
    }
    return 0;
}

/* True when both are the same network, however they were written. */
static bool
cfg_cidr_same(const struct cfg_cidr *a, const struct cfg_cidr *b)
{
    return a->family == b->family && a->prefix == b->prefix &&
           memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

/*
 * split.trusted_proxies and split.override_from: one network or a sequence of them, each once; an
 * empty sequence is an empty list. Replaces the owned array at `out` and its length `n_out`.
 */
static int
cfg_get_cidrs(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
              struct cfg_cidr **out, size_t *n_out)
{
    static const char what[] = "a network such as 10.0.0.0/8, 192.168.1.5 or ::1";
    char item_path[CFG_PATH_MAX], shown[CFG_SHOW_SIZE];
    bool one = node->type == YAML_SCALAR_NODE;
    size_t n = one ? 1 : 0;

    if (node->type == YAML_MAPPING_NODE || cfg_is_null(node))
        return cfg_fail(ctx, node, path, "expected %s, or a sequence of them, got %s", what,
                        cfg_got(node, shown));
    if (node->type == YAML_SEQUENCE_NODE)
        n = cfg_seq_len(node);
    XF_FREE(*out);
    *n_out = 0;
    if (n == 0)
        return 0;
    *out = calloc(n, sizeof(**out));
    if (*out == NULL)
        return cfg_oom(ctx);
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *item = one ? node : cfg_node(ctx, node->data.sequence.items.start[i]);
        struct cfg_cidr *net = &(*out)[i];
        struct xf_err why;
        const char *text;

        if (one)
            snprintf(item_path, sizeof(item_path), "%s", path);
        else
            cfg_path_index(item_path, path, i);
        text = cfg_scalar(ctx, item, item_path, what);
        if (text == NULL)
            return -1;
        if (cfg_cidr_parse(text, net, &why) == -1)
            return cfg_fail(ctx, item, item_path, "%s", why.msg);
        *n_out = i + 1;
        for (size_t j = 0; j < i; j++) {
            if (cfg_cidr_same(net, &(*out)[j]))
                return cfg_fail(ctx, item, item_path,
                                "expected each network once, got %s again (as %s[%zu])",
                                cfg_show_str(shown, text), path, j);
        }
    }
    return 0;
}

/*
 * Header names whose meaning HTTP fixes for the framing, the target or one hop of a message: none
 * can be a tester's switch, and a second one added to every response (`expose`) would change how
 * the response is read.
 */
static const char *const cfg_reserved_headers[] = {
    "connection", "content-length",    "host",    "keep-alive", "proxy-connection", "te",
    "trailer",    "transfer-encoding", "upgrade",
};

/*
 * split.override_header, split.override_cookie and split.expose: a header name (`header`) or a
 * cookie name kept as written, or off (see cfg_is_off), which leaves NULL at `dst`.
 */
int
cfg_get_name_or_off(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
                    bool header, char **dst)
{
    const char *what = header ? "a header name" : "a cookie name";
    char shown[CFG_SHOW_SIZE];
    const char *text =
        cfg_scalar(ctx, node, path, header ? "a header name or off" : "a cookie name or off");

    if (text == NULL)
        return -1;
    if (cfg_is_off(node, text)) {
        XF_FREE(*dst);
        return 0;
    }
    cfg_show_str(shown, text);
    /* A plain `true` would otherwise name a header "true": more likely a misunderstanding. */
    if (text[0] == '\0' || cfg_is_on(node, text))
        return cfg_fail(ctx, node, path, "expected %s or off, got %s", what, shown);
    for (const char *p = text; *p != '\0'; p++) {
        if (!cfg_is_tchar((unsigned char)*p))
            return cfg_fail(ctx, node, path,
                            "expected %s made of letters, digits and !#$%%&'*+-.^_`|~, got %s",
                            what, shown);
    }
    if (header && cfg_is_word(text, cfg_reserved_headers, XF_ARRAY_LEN(cfg_reserved_headers)))
        return cfg_fail(ctx, node, path,
                        "expected a header name other than Connection, Content-Length, Host, "
                        "Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding or "
                        "Upgrade, got %s",
                        shown);
    return cfg_set_string(ctx, dst, text);
}

static int
cfg_walk_split(const struct cfg_ctx *ctx, const yaml_node_t *node)
{
    struct cfg_split *split = &ctx->cfg->split;
    static const char pct[] = "a percentage from 0 to 100 with at most two decimals";
    char shown[CFG_SHOW_SIZE];
    yaml_node_t *v[CFG_SPLIT_COUNT];
    const char *text;

    if (node == NULL)
        return 0;
    if (cfg_map_lookup(ctx, node, "split", cfg_split_keys, CFG_SPLIT_COUNT, v) == -1)
        return -1;
    if (v[CFG_SPLIT_WEIGHT] != NULL) {
        text = cfg_scalar(ctx, v[CFG_SPLIT_WEIGHT], "split.weight", pct);
        if (text == NULL)
            return -1;
        if (cfg_percent_parse(text, &split->weight_bp) == -1)
            return cfg_fail(ctx, v[CFG_SPLIT_WEIGHT], "split.weight", "expected %s, got %s", pct,
                            cfg_show_str(shown, text));
    }
    if (v[CFG_SPLIT_KEY] != NULL && cfg_walk_split_keys(ctx, v[CFG_SPLIT_KEY]) == -1)
        return -1;
    if (v[CFG_SPLIT_SEED] != NULL &&
        cfg_get_string(ctx, v[CFG_SPLIT_SEED], "split.seed", "a non-empty string", SIZE_MAX,
                       &split->seed) == -1)
        return -1;
    if (v[CFG_SPLIT_TRUSTED_PROXIES] != NULL &&
        cfg_get_cidrs(ctx, v[CFG_SPLIT_TRUSTED_PROXIES], "split.trusted_proxies",
                      &split->trusted_proxies, &split->n_trusted_proxies) == -1)
        return -1;
    if (v[CFG_SPLIT_OVERRIDE_HEADER] != NULL &&
        cfg_get_name_or_off(ctx, v[CFG_SPLIT_OVERRIDE_HEADER], "split.override_header", true,
                            &split->override_header) == -1)
        return -1;
    if (v[CFG_SPLIT_OVERRIDE_COOKIE] != NULL &&
        cfg_get_name_or_off(ctx, v[CFG_SPLIT_OVERRIDE_COOKIE], "split.override_cookie", false,
                            &split->override_cookie) == -1)
        return -1;
    if (v[CFG_SPLIT_OVERRIDE_FROM] != NULL) {
        const yaml_node_t *from = v[CFG_SPLIT_OVERRIDE_FROM];

        /* `any` says in so many words that the public may choose its side. */
        split->override_any = from->type == YAML_SCALAR_NODE && cfg_is_plain(from) &&
                              strcmp((const char *)from->data.scalar.value, "any") == 0;
        if (split->override_any) {
            XF_FREE(split->override_from);
            split->n_override_from = 0;
        } else if (cfg_get_cidrs(ctx, from, "split.override_from", &split->override_from,
                                 &split->n_override_from) == -1) {
            return -1;
        }
    }
    if (v[CFG_SPLIT_EXPOSE] != NULL &&
        cfg_get_name_or_off(ctx, v[CFG_SPLIT_EXPOSE], "split.expose", true, &split->expose) == -1)
        return -1;
    return 0;
}

static int
cfg_walk_timeouts(const struct cfg_ctx *ctx, const yaml_node_t *node)
{
    struct cfg_timeouts *t = &ctx->cfg->timeouts;
    unsigned *const dst[CFG_TIMEOUT_COUNT] = {
        &t->connect_ms,       &t->client_header_ms, &t->client_idle_ms,    &t->upstream_response_ms,
        &t->upstream_idle_ms, &t->shutdown_ms,      &t->queue_ms,          &t->tls_handshake_ms,
        &t->tunnel_idle_ms,   &t->tcp_hello_ms,     &t->client_request_ms,
    };
    char path[CFG_PATH_MAX];
    yaml_node_t *v[CFG_TIMEOUT_COUNT];

    if (node == NULL)
        return 0;
    if (cfg_map_lookup(ctx, node, "timeouts", cfg_timeout_keys, CFG_TIMEOUT_COUNT, v) == -1)
        return -1;
    for (size_t i = 0; i < CFG_TIMEOUT_COUNT; i++) {
        if (v[i] == NULL)
            continue;
        cfg_path_key(path, "timeouts", cfg_timeout_keys[i]);
        /* client_request alone may be off (its default): a large upload has no natural bound. */
        if (i == CFG_TIMEOUT_CLIENT_REQUEST && v[i]->type == YAML_SCALAR_NODE &&
            cfg_is_off(v[i], (const char *)v[i]->data.scalar.value))
            *dst[i] = 0;
        else if (cfg_get_timeout(ctx, v[i], path, dst[i]) == -1)
            return -1;
    }
    return 0;
}

enum cfg_tunnels_key {
    CFG_TUNNELS_CLOSE_RATE = 0,
    CFG_TUNNELS_FOLLOW_WEIGHT,
    CFG_TUNNELS_COUNT,
};
static const char *const cfg_tunnels_keys[CFG_TUNNELS_COUNT] = {"close_rate", "follow_weight"};

/* tunnels: {close_rate, follow_weight}: how tunnels leave a side they no longer belong to. */
static int
cfg_walk_tunnels(const struct cfg_ctx *ctx, const yaml_node_t *node)
{
    yaml_node_t *v[CFG_TUNNELS_COUNT];

    if (node == NULL)
        return 0;
    if (cfg_map_lookup(ctx, node, "tunnels", cfg_tunnels_keys, CFG_TUNNELS_COUNT, v) == -1)
        return -1;
    if (v[CFG_TUNNELS_CLOSE_RATE] != NULL &&
        cfg_get_unsigned(ctx, v[CFG_TUNNELS_CLOSE_RATE], "tunnels.close_rate", 1, 100000,
                         &ctx->cfg->tunnels.close_rate) == -1)
        return -1;
    if (v[CFG_TUNNELS_FOLLOW_WEIGHT] != NULL &&
        cfg_get_bool(ctx, v[CFG_TUNNELS_FOLLOW_WEIGHT], "tunnels.follow_weight",
                     &ctx->cfg->tunnels.follow_weight) == -1)
        return -1;
    return 0;
}

enum cfg_guard_key {
    CFG_GUARD_WINDOW = 0,
    CFG_GUARD_MIN_REQUESTS,
    CFG_GUARD_MAX_ERROR,
    CFG_GUARD_MAX_LATENCY,
    CFG_GUARD_MIN_LATENCY_DELTA,
    CFG_GUARD_CONFIDENCE,
    CFG_GUARD_ACTION,
    CFG_GUARD_KEY_STEP_DOWN,
    CFG_GUARD_COUNT,
};
static const char *const cfg_guard_keys[CFG_GUARD_COUNT] = {
    [CFG_GUARD_WINDOW] = "window",
    [CFG_GUARD_MIN_REQUESTS] = "min_requests",
    [CFG_GUARD_MAX_ERROR] = "max_error_rate_delta",
    [CFG_GUARD_MAX_LATENCY] = "max_latency_ratio",
    [CFG_GUARD_MIN_LATENCY_DELTA] = "min_latency_delta",
    [CFG_GUARD_CONFIDENCE] = "confidence",
    [CFG_GUARD_ACTION] = "action",
    [CFG_GUARD_KEY_STEP_DOWN] = "step_down",
};
static const char *const cfg_guard_actions[] = {"rollback", "pause", "step_down"};

/* A percentage with an optional % sign ("1%", "0.5", "12.5%") into hundredths; 0 or -1. */
static int
cfg_get_percent(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
                unsigned min_bp, unsigned max_bp, unsigned *out_bp)
{
    char shown[CFG_SHOW_SIZE], num[32];
    const char *text = cfg_scalar(ctx, node, path, "a percentage such as 1% or 0.5%");
    size_t len;

    if (text == NULL)
        return -1;
    len = strlen(text);
    if (len > 0 && text[len - 1] == '%')
        len--;
    if (len == 0 || len >= sizeof(num))
        return cfg_fail(ctx, node, path, "expected a percentage such as 1%% or 0.5%%, got %s",
                        cfg_show_str(shown, text));
    memcpy(num, text, len);
    num[len] = '\0';
    if (cfg_percent_parse(num, out_bp) == -1 || *out_bp < min_bp || *out_bp > max_bp)
        return cfg_fail(ctx, node, path,
                        "expected a percentage from %u.%02u%% to %u.%02u%% with at most two "
                        "decimals, got %s",
                        min_bp / 100, min_bp % 100, max_bp / 100, max_bp % 100,
                        cfg_show_str(shown, text));
    return 0;
}

/* A decimal number in [min, max] ("1.5", "2"); 0 or -1. */
static int
cfg_get_ratio(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path, double min,
              double max, double *out)
{
    char shown[CFG_SHOW_SIZE];
    const char *text = cfg_scalar(ctx, node, path, "a number such as 1.5");
    char *end = NULL;
    double d;

    if (text == NULL)
        return -1;
    errno = 0;
    d = text[0] >= '0' && text[0] <= '9' ? strtod(text, &end) : -1.0;
    if (end == NULL || *end != '\0' || errno != 0 || !(d >= min && d <= max))
        return cfg_fail(ctx, node, path, "expected a number from %g to %g, got %s", min, max,
                        cfg_show_str(shown, text));
    *out = d;
    return 0;
}

/* guard: the thresholds y is judged by against x, and what happens when it fails them. */
static int
cfg_walk_guard(const struct cfg_ctx *ctx, const yaml_node_t *node)
{
    struct cfg_guard *g = &ctx->cfg->guard;
    yaml_node_t *v[CFG_GUARD_COUNT];
    unsigned ms, action, conf_bp;

    if (node == NULL)
        return 0;
    if (cfg_map_lookup(ctx, node, "guard", cfg_guard_keys, CFG_GUARD_COUNT, v) == -1)
        return -1;
    g->configured = true;
    if (v[CFG_GUARD_WINDOW] != NULL) {
        if (cfg_get_timeout(ctx, v[CFG_GUARD_WINDOW], "guard.window", &ms) == -1)
            return -1;
        if (ms < 5000 || ms > 300000 || ms % 1000 != 0)
            return cfg_fail(ctx, v[CFG_GUARD_WINDOW], "guard.window",
                            "expected whole seconds from 5s to 5m, got %ums", ms);
        g->window_s = ms / 1000;
    }
    if (v[CFG_GUARD_MIN_REQUESTS] != NULL &&
        cfg_get_unsigned(ctx, v[CFG_GUARD_MIN_REQUESTS], "guard.min_requests", 10, 10000000,
                         &g->min_requests) == -1)
        return -1;
    if (v[CFG_GUARD_MAX_ERROR] != NULL &&
        cfg_get_percent(ctx, v[CFG_GUARD_MAX_ERROR], "guard.max_error_rate_delta", 1, 10000,
                        &g->max_error_delta_bp) == -1)
        return -1;
    if (v[CFG_GUARD_MAX_LATENCY] != NULL &&
        cfg_get_ratio(ctx, v[CFG_GUARD_MAX_LATENCY], "guard.max_latency_ratio", 1.0, 1000.0,
                      &g->max_latency_ratio) == -1)
        return -1;
    if (v[CFG_GUARD_MIN_LATENCY_DELTA] != NULL) {
        if (cfg_get_timeout(ctx, v[CFG_GUARD_MIN_LATENCY_DELTA], "guard.min_latency_delta", &ms) ==
            -1)
            return -1;
        g->min_latency_delta_us = ms * 1000u;
    }
    if (v[CFG_GUARD_CONFIDENCE] != NULL) {
        if (cfg_get_percent(ctx, v[CFG_GUARD_CONFIDENCE], "guard.confidence", 5000, 9999,
                            &conf_bp) == -1)
            return -1;
        g->confidence = conf_bp / 10000.0;
    }
    if (v[CFG_GUARD_ACTION] != NULL) {
        if (cfg_get_choice(ctx, v[CFG_GUARD_ACTION], "guard.action", cfg_guard_actions,
                           XF_ARRAY_LEN(cfg_guard_actions), "rollback, pause or step_down",
                           &action) == -1)
            return -1;
        g->action = (enum cfg_guard_action)action;
    }
    if (v[CFG_GUARD_KEY_STEP_DOWN] != NULL &&
        cfg_get_percent(ctx, v[CFG_GUARD_KEY_STEP_DOWN], "guard.step_down", 1, 10000,
                        &g->step_down_bp) == -1)
        return -1;
    return 0;
}

enum cfg_test_key {
    CFG_TEST_HEADER = 0,
    CFG_TEST_SOURCES,
    CFG_TEST_COUNT,
};
static const char *const cfg_test_keys[CFG_TEST_COUNT] = {"header", "sources"};

/* test_traffic: {header, sources}: what marks a request as a test. */
static int
cfg_walk_test_traffic(const struct cfg_ctx *ctx, const yaml_node_t *node)
{
    struct cfg_test_traffic *tt = &ctx->cfg->test_traffic;
    yaml_node_t *v[CFG_TEST_COUNT];

    if (node == NULL)
        return 0;
    if (cfg_map_lookup(ctx, node, "test_traffic", cfg_test_keys, CFG_TEST_COUNT, v) == -1)
        return -1;
    if (v[CFG_TEST_HEADER] != NULL &&
        cfg_get_name_or_off(ctx, v[CFG_TEST_HEADER], "test_traffic.header", true, &tt->header) ==
            -1)
        return -1;
    if (v[CFG_TEST_SOURCES] != NULL &&
        cfg_get_cidrs(ctx, v[CFG_TEST_SOURCES], "test_traffic.sources", &tt->sources,
                      &tt->n_sources) == -1)
        return -1;
    return 0;
}

static int
cfg_walk_limits(const struct cfg_ctx *ctx, const yaml_node_t *node)
{
    struct cfg_limits *l = &ctx->cfg->limits;
    unsigned *const dst[CFG_LIMIT_COUNT] = {
        &l->max_connections,
        &l->max_request_line_bytes,
        &l->max_header_bytes,
        &l->max_headers,
        NULL, /* max_body_bytes is 64-bit */
        &l->max_requests_per_connection,
        &l->request_buffer_bytes,
    };
    char path[CFG_PATH_MAX];
    yaml_node_t *v[CFG_LIMIT_COUNT];

    if (node == NULL)
        return 0;
    if (cfg_map_lookup(ctx, node, "limits", cfg_limit_keys, CFG_LIMIT_COUNT, v) == -1)
        return -1;
    for (size_t i = 0; i < CFG_LIMIT_COUNT; i++) {
        const struct cfg_limit_range *r = &cfg_limit_ranges[i];

        if (v[i] == NULL)
            continue;
        cfg_path_key(path, "limits", cfg_limit_keys[i]);
        if (dst[i] == NULL) {
            if (cfg_get_u64(ctx, v[i], path, r->min, r->max, &l->max_body_bytes) == -1)
                return -1;
        } else if (cfg_get_unsigned(ctx, v[i], path, (unsigned)r->min, (unsigned)r->max, dst[i]) ==
                   -1) {
            return -1;
        }
    }
    /* The request line is part of the head, so it cannot be allowed more room than the head. */
    if (l->max_request_line_bytes <= l->max_header_bytes)
        return 0;
    if (v[CFG_LIMIT_MAX_REQUEST_LINE_BYTES] != NULL)
        return cfg_fail(ctx, v[CFG_LIMIT_MAX_REQUEST_LINE_BYTES], "limits.max_request_line_bytes",
                        "expected at most max_header_bytes (%u), got %u", l->max_header_bytes,
                        l->max_request_line_bytes);
    return cfg_fail(ctx, v[CFG_LIMIT_MAX_HEADER_BYTES], "limits.max_header_bytes",
                    "expected at least max_request_line_bytes (%u), got %u",
                    l->max_request_line_bytes, l->max_header_bytes);
}

/* access_log: a path, "-" for stdout, or off (YAML false/off/no, or the string "off"). */
static int
cfg_walk_access_log(const struct cfg_ctx *ctx, const yaml_node_t *node)
{
    static const char what[] = "a path, \"-\" for stdout, or off";
    char shown[CFG_SHOW_SIZE];
    const char *text;

    if (node == NULL)
        return 0;
    text = cfg_scalar(ctx, node, "access_log", what);
    if (text == NULL)
        return -1;
    if (cfg_is_off(node, text)) {
        XF_FREE(ctx->cfg->access_log);
        return 0;
    }
    /* A plain `true` would otherwise name a file "true": more likely a misunderstanding. */
    if (text[0] == '\0' || cfg_is_on(node, text))
        return cfg_fail(ctx, node, "access_log", "expected %s, got %s", what,
                        cfg_show_str(shown, text));
    return cfg_set_string(ctx, &ctx->cfg->access_log, text);
}

/* access_log_format: text (the default) or json. */
static int
cfg_walk_access_log_format(const struct cfg_ctx *ctx, const yaml_node_t *node)
{
    unsigned format;

    if (node == NULL)
        return 0;
    if (cfg_get_choice(ctx, node, "access_log_format", cfg_alog_formats,
                       XF_ARRAY_LEN(cfg_alog_formats), "text or json", &format) == -1)
        return -1;
    ctx->cfg->access_log_format = (enum cfg_alog_format)format;
    return 0;
}

/*
 * access_log_sample: the share of requests logged, as a fraction ("0.01") or a percentage ("1%"),
 * above 0 and at most 1. Plain decimals only: "1e-3" or a hex float is more likely a slip than a
 * rate anyone means, and the message can then show both forms that work.
 */
static int
cfg_walk_access_log_sample(const struct cfg_ctx *ctx, const yaml_node_t *node)
{
    static const char what[] =
        "a share above 0 and at most 1, as a fraction (0.01) or a percentage (1%)";
    char shown[CFG_SHOW_SIZE], num[32];
    const char *text;
    size_t len, digits;
    bool pct;
    double d;

    if (node == NULL)
        return 0;
    text = cfg_scalar(ctx, node, "access_log_sample", what);
    if (text == NULL)
        return -1;
    len = strlen(text);
    pct = len > 0 && text[len - 1] == '%';
    if (pct)
        len--;
    digits = strspn(text, "0123456789");
    if (len == 0 || len >= sizeof(num) || digits == 0 ||
        !(digits == len || (text[digits] == '.' && digits + 1 < len &&
                            strspn(text + digits + 1, "0123456789") == len - digits - 1)))
        return cfg_fail(ctx, node, "access_log_sample", "expected %s, got %s", what,
                        cfg_show_str(shown, text));
    memcpy(num, text, len);
    num[len] = '\0';
    d = strtod(num, NULL);
    if (pct)
        d /= 100.0;
    if (!(d > 0.0 && d <= 1.0))
        return cfg_fail(ctx, node, "access_log_sample", "expected %s, got %s", what,
                        cfg_show_str(shown, text));
    ctx->cfg->access_log_sample = d;
    return 0;
}

static int
cfg_walk_log_level(const struct cfg_ctx *ctx, const yaml_node_t *node)
{
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    char shown[CFG_SHOW_SIZE], hint[64];
    const char *text;

    if (node == NULL)
        return 0;
    text = cfg_scalar(ctx, node, "log_level", "debug, info, warn or error");
    if (text == NULL)
        return -1;
    if (xf_log_level_parse(text, &ctx->cfg->log_level) == -1)
        return cfg_fail(ctx, node, "log_level", "expected debug, info, warn or error, got %s%s",
                        cfg_show_str(shown, text),
                        cfg_hint(hint, sizeof(hint), text, levels, XF_ARRAY_LEN(levels)));
    return 0;
}

/*
 * state_file: the path of the file where the admin socket keeps its changes, or off (the
 * default). The file itself is read by the admin module at start-up, not here: a missing or
 * corrupt one must not stop crossfade from starting.
 */
static int
cfg_walk_state_file(const struct cfg_ctx *ctx, const yaml_node_t *node)
{
    static const char what[] = "a file path, or off";
    char shown[CFG_SHOW_SIZE];
    const char *text;
    size_t len;

    if (node == NULL)
        return 0;
    text = cfg_scalar(ctx, node, "state_file", what);
    if (text == NULL)
        return -1;
    if (cfg_is_off(node, text))
        return 0;
    len = strlen(text);
    /* A directory or a true would be a misunderstanding; the temporary file adds a suffix. */
    if (len == 0 || cfg_is_on(node, text) || text[len - 1] == '/')
        return cfg_fail(ctx, node, "state_file", "expected %s, got %s", what,
                        cfg_show_str(shown, text));
    if (len > CFG_STATE_PATH_MAX)
        return cfg_fail(ctx, node, "state_file", "expected a path of at most %d bytes, got %zu",
                        CFG_STATE_PATH_MAX, len);
    return cfg_set_string(ctx, &ctx->cfg->state_file, text);
}

/* workers: auto (0: the number of online CPUs, decided at start-up) or 1..CFG_WORKERS_MAX. */
static int
cfg_walk_workers(const struct cfg_ctx *ctx, const yaml_node_t *node)
{
    char shown[CFG_SHOW_SIZE];
    const char *text;

    if (node == NULL)
        return 0;
    text = cfg_scalar(ctx, node, "workers", "auto or a number of threads");
    if (text == NULL)
        return -1;
    if (strcmp(text, "auto") == 0) {
        ctx->cfg->workers = 0;
        return 0;
    }
    if (text[0] < '0' || text[0] > '9')
        return cfg_fail(ctx, node, "workers", "expected auto or a number from 1 to %d, got %s",
                        CFG_WORKERS_MAX, cfg_show_str(shown, text));
    return cfg_get_unsigned(ctx, node, "workers", 1, CFG_WORKERS_MAX, &ctx->cfg->workers);
}

/* Walks the top-level mapping, one section after the other in the order of the schema. */
/* A listener that takes PROXY headers takes them from split.trusted_proxies only: with none
 * listed it could take no connection. Checked once both are read (`listen`: the sequence). */
static int
cfg_check_proxy_protocol(const struct cfg_ctx *ctx, const yaml_node_t *listen)
{
    char path[CFG_PATH_MAX], sub[CFG_PATH_MAX];

    if (ctx->cfg->split.n_trusted_proxies > 0)
        return 0;
    for (size_t i = 0; i < ctx->cfg->n_listeners; i++) {
        const yaml_node_t *item = cfg_node(ctx, listen->data.sequence.items.start[i]);

        if (!ctx->cfg->listeners[i].proxy_protocol)
            continue;
        for (const yaml_node_pair_t *pair = item->data.mapping.pairs.start;
             pair < item->data.mapping.pairs.top; pair++)
            if (cfg_scalar_is(cfg_node(ctx, pair->key), "proxy_protocol"))
                return cfg_fail(
                    ctx, cfg_node(ctx, pair->value),
                    cfg_path_key(sub, cfg_path_index(path, "listen", i), "proxy_protocol"),
                    "expected split.trusted_proxies to name the balancers that send "
                    "the PROXY header: it is accepted from them only, and none are "
                    "listed");
    }
    return 0;
}

static int
cfg_walk_root(const struct cfg_ctx *ctx, const yaml_node_t *root)
{
    char shown[CFG_SHOW_SIZE];
    yaml_node_t *v[CFG_ROOT_COUNT];

    if (root->type != YAML_MAPPING_NODE)
        return cfg_fail(ctx, root, "",
                        "expected a mapping of settings (listen, clusters, ...), got %s",
                        cfg_got(root, shown));
    if (cfg_map_lookup(ctx, root, "", cfg_root_keys, CFG_ROOT_COUNT, v) == -1 ||
        cfg_walk_listen(ctx, root, v[CFG_ROOT_LISTEN]) == -1 ||
        cfg_walk_admin(ctx, v[CFG_ROOT_ADMIN]) == -1 ||
        cfg_walk_split(ctx, v[CFG_ROOT_SPLIT]) == -1 ||
        cfg_check_proxy_protocol(ctx, v[CFG_ROOT_LISTEN]) == -1 ||
        cfg_walk_clusters(ctx, root, v[CFG_ROOT_CLUSTERS]) == -1 ||
        cfg_walk_timeouts(ctx, v[CFG_ROOT_TIMEOUTS]) == -1 ||
        cfg_walk_limits(ctx, v[CFG_ROOT_LIMITS]) == -1 ||
        (v[CFG_ROOT_RETRIES] != NULL &&
         cfg_get_unsigned(ctx, v[CFG_ROOT_RETRIES], "retries", 0, CFG_RETRIES_MAX,
                          &ctx->cfg->retries) == -1) ||
        cfg_walk_access_log(ctx, v[CFG_ROOT_ACCESS_LOG]) == -1 ||
        cfg_walk_access_log_format(ctx, v[CFG_ROOT_ACCESS_LOG_FORMAT]) == -1 ||
        cfg_walk_access_log_sample(ctx, v[CFG_ROOT_ACCESS_LOG_SAMPLE]) == -1 ||
        cfg_walk_log_level(ctx, v[CFG_ROOT_LOG_LEVEL]) == -1 ||
        cfg_walk_state_file(ctx, v[CFG_ROOT_STATE_FILE]) == -1 ||
        cfg_walk_workers(ctx, v[CFG_ROOT_WORKERS]) == -1 ||
        cfg_walk_tls(ctx, v[CFG_ROOT_TLS]) == -1 ||
        cfg_walk_tunnels(ctx, v[CFG_ROOT_TUNNELS]) == -1 ||
        cfg_walk_guard(ctx, v[CFG_ROOT_GUARD]) == -1 ||
        cfg_walk_test_traffic(ctx, v[CFG_ROOT_TEST_TRAFFIC]) == -1 ||
        cfg_walk_fleet(ctx, v[CFG_ROOT_FLEET]) == -1)
        return -1;
    return 0;
}

/* ---- Files, documents and the struct ------------------------------------------------------- */

/* A cfg holding every default and no listener or cluster yet; NULL when out of memory. */
static struct cfg *
cfg_new_defaults(const char *name)
{
    struct cfg *cfg = calloc(1, sizeof(*cfg));

    if (cfg == NULL)
        return NULL;
    cfg->refs = 1;
    cfg->path = strdup(name);
    cfg->admin_socket = strdup(CFG_DEFAULT_ADMIN_SOCKET);
    cfg->split.seed = strdup(CFG_DEFAULT_SEED);
    cfg->split.keys = calloc(1, sizeof(*cfg->split.keys));
    cfg->split.override_header = strdup(CFG_DEFAULT_OVERRIDE_HDR);
    cfg->access_log = strdup(CFG_DEFAULT_ACCESS_LOG);
    if (cfg->path == NULL || cfg->admin_socket == NULL || cfg->split.seed == NULL ||
        cfg->split.keys == NULL || cfg->split.override_header == NULL || cfg->access_log == NULL) {
        cfg_free(cfg);
        return NULL;
    }
    cfg->split.n_keys = 1;
    cfg->access_log_sample = 1.0;
    cfg->guard.window_s = 30;
    cfg->guard.min_requests = 200;
    cfg->guard.max_error_delta_bp = 100;
    cfg->guard.max_latency_ratio = 1.5;
    cfg->guard.min_latency_delta_us = 1000;
    cfg->guard.confidence = 0.99;
    cfg->guard.action = CFG_GUARD_ROLLBACK;
    cfg->guard.step_down_bp = 500;
    cfg->fleet.timeout_ms = 2000;
    cfg->fleet.lease_ms = 10000;
    cfg->split.keys[0].kind = CFG_KEY_IP;
    /* Tester overrides from this machine only, until the operator names the testers' networks. */
    cfg->split.override_from = calloc(2, sizeof(*cfg->split.override_from));
    if (cfg->split.override_from == NULL ||
        cfg_cidr_parse("127.0.0.0/8", &cfg->split.override_from[0], NULL) == -1 ||
        cfg_cidr_parse("::1", &cfg->split.override_from[1], NULL) == -1) {
        cfg_free(cfg);
        return NULL;
    }
    cfg->split.n_override_from = 2;
    cfg->timeouts = (struct cfg_timeouts){
        .connect_ms = 3000,
        .client_header_ms = 10000,
        .client_idle_ms = 60000,
        .upstream_response_ms = 60000,
        .upstream_idle_ms = 30000,
        .shutdown_ms = 10000,
        .queue_ms = 5000,
        .tls_handshake_ms = 10000,
        .tunnel_idle_ms = 3600u * 1000u,
        .tcp_hello_ms = 5000,
    };
    cfg->tls_ticket_rotation_ms = 3600u * 1000u;
    cfg->tunnels.close_rate = 200;
    cfg->limits = (struct cfg_limits){
        .max_connections = 20000,
        .max_request_line_bytes = 8192,
        .max_header_bytes = 16384,
        .request_buffer_bytes = CFG_DEFAULT_REQUEST_BUFFER,
        .max_headers = 100,
        .max_body_bytes = 0,
    };
    cfg->retries = 2;
    /* health.path stays NULL until a health key turns the checks on (cfg_walk_health). */
    for (int id = CFG_CLUSTER_X; id < CFG_CLUSTER_COUNT; id++)
        cfg->clusters[id] = (struct cfg_cluster){
            .health = {.interval_ms = 2000,
                       .timeout_ms = 1000,
                       .rise = 2,
                       .fall = 3,
                       .expect_min = 200,
                       .expect_max = 399},
            .outlier = {.failures = 5, .ejection_ms = 10000, .max_ejection_ms = 300000},
            /* y is the new side: when it has no healthy node, x still serves its clients. */
            .failover = id == CFG_CLUSTER_Y,
            .max_connections = 0,
            .max_pending = 100,
            .max_idle = CFG_MAX_IDLE_AUTO,
        };
    cfg->log_level = XF_LOG_INFO;
    return cfg;
}

/* Turns libyaml's error into "NAME:LINE:COL: invalid YAML: problem (context at L:C)". */
static void
cfg_yaml_error(const char *name, const yaml_parser_t *parser, const char *text, size_t len,
               struct xf_err *err)
{
    const char *problem = parser->problem != NULL ? parser->problem : "unknown error";
    size_t line = 1, col = 1;

    switch (parser->error) {
    case YAML_MEMORY_ERROR:
        xf_err_set(err, "%s: out of memory while reading YAML", name);
        break;
    case YAML_READER_ERROR:
        /* The reader reports a byte offset (bad UTF-8, control characters) but no mark. */
        for (size_t i = 0; i < parser->problem_offset && i < len; i++) {
            col++;
            if (text[i] == '\n') {
                line++;
                col = 1;
            }
        }
        if (parser->problem_value != -1)
            xf_err_set(err, "%s:%zu:%zu: invalid YAML: %s (byte 0x%02x)", name, line, col, problem,
                       (unsigned)parser->problem_value);
        else
            xf_err_set(err, "%s:%zu:%zu: invalid YAML: %s", name, line, col, problem);
        break;
    default:
        if (parser->context != NULL)
            xf_err_set(err, "%s:%zu:%zu: invalid YAML: %s (%s at line %zu, column %zu)", name,
                       parser->problem_mark.line + 1, parser->problem_mark.column + 1, problem,
                       parser->context, parser->context_mark.line + 1,
                       parser->context_mark.column + 1);
        else
            xf_err_set(err, "%s:%zu:%zu: invalid YAML: %s", name, parser->problem_mark.line + 1,
                       parser->problem_mark.column + 1, problem);
        break;
    }
}

/*
 * Loads the one document of the stream into `doc` (which the caller deletes after a success).
 * A second document is an error: it would be ignored, and whatever it says lost.
 */
static int
cfg_load_document(const char *name, yaml_parser_t *parser, const char *text, size_t len,
                  yaml_document_t *doc, struct xf_err *err)
{
    yaml_document_t extra;
    const yaml_node_t *extra_root;

    if (!yaml_parser_load(parser, doc)) {
        cfg_yaml_error(name, parser, text, len, err);
        return -1;
    }
    if (yaml_document_get_root_node(doc) == NULL) {
        yaml_document_delete(doc);
        xf_err_set(err,
                   "%s:1:1: expected a mapping of settings (listen, clusters, ...), got an "
                   "empty file",
                   name);
        return -1;
    }
    if (!yaml_parser_load(parser, &extra)) {
        yaml_document_delete(doc);
        cfg_yaml_error(name, parser, text, len, err);
        return -1;
    }
    extra_root = yaml_document_get_root_node(&extra);
    if (extra_root != NULL) {
        xf_err_set(err, "%s:%zu:%zu: expected one YAML document, got a second one", name,
                   extra_root->start_mark.line + 1, extra_root->start_mark.column + 1);
        yaml_document_delete(&extra);
        yaml_document_delete(doc);
        return -1;
    }
    yaml_document_delete(&extra);
    return 0;
}

struct cfg *
cfg_parse(const char *text, size_t len, const char *name, struct xf_err *err)
{
    struct cfg_ctx ctx = {.name = name != NULL ? name : "<config>", .err = err};
    struct cfg *cfg = NULL;
    yaml_parser_t parser;
    yaml_document_t doc;
    bool have_parser = false, have_doc = false;

    if (text == NULL) {
        /* libyaml asserts on a NULL input, even an empty one. */
        text = "";
        len = 0;
    }

    if (!yaml_parser_initialize(&parser)) {
        cfg_oom(&ctx);
        goto fail;
    }
    have_parser = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (cfg_load_document(ctx.name, &parser, text, len, &doc, err) == -1)
        goto fail;
    have_doc = true;
    cfg = cfg_new_defaults(ctx.name);
    if (cfg == NULL) {
        cfg_oom(&ctx);
        goto fail;
    }
    ctx.doc = &doc;
    ctx.cfg = cfg;
    if (cfg_walk_root(&ctx, yaml_document_get_root_node(&doc)) == -1)
        goto fail;
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return cfg;

fail:
    cfg_free(cfg);
    if (have_doc)
        yaml_document_delete(&doc);
    if (have_parser)
        yaml_parser_delete(&parser);
    return NULL;
}

/* Reads the whole file at `path` into an owned buffer. Returns 0, or -1 with a message. */
static int
cfg_read_file(const char *path, char **out, size_t *out_len, struct xf_err *err)
{
    char *buf = NULL, *grown;
    size_t len = 0, cap = 0;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        xf_err_set(err, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    for (;;) {
        ssize_t n;

        if (len == cap) {
            if (cap > CFG_FILE_MAX) {
                xf_err_set(err, "%s: expected a file of at most %u bytes, got a larger one", path,
                           CFG_FILE_MAX);
                goto fail;
            }
            cap = cap == 0 ? 4096 : XF_MIN(cap * 2, (size_t)CFG_FILE_MAX + 1);
            grown = realloc(buf, cap);
            if (grown == NULL) {
                xf_err_set(err, "%s: out of memory", path);
                goto fail;
            }
            buf = grown;
        }
        n = read(fd, buf + len, cap - len);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1) {
            xf_err_set(err, "%s: cannot read: %s", path, strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    *out = buf;
    *out_len = len;
    return 0;

fail:
    if (fd != -1)
        close(fd);
    free(buf);
    return -1;
}

struct cfg *
cfg_load(const char *path, struct xf_err *err)
{
    char *text = NULL;
    size_t len = 0;
    struct cfg *cfg;

    if (cfg_read_file(path, &text, &len, err) == -1)
        return NULL;
    cfg = cfg_parse(text, len, path, err);
    free(text);
    return cfg;
}

unsigned
cfg_workers(const struct cfg *cfg)
{
    long n;

    if (cfg->workers != 0)
        return cfg->workers;
    n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        return 1;
    return n > CFG_WORKERS_MAX ? CFG_WORKERS_MAX : (unsigned)n;
}

const struct cfg *
cfg_ref(const struct cfg *cfg)
{
    struct cfg *c = (struct cfg *)cfg; /* the count only */

    if (c != NULL && __atomic_load_n(&c->refs, __ATOMIC_RELAXED) != 0)
        __atomic_fetch_add(&c->refs, 1, __ATOMIC_RELAXED);
    return cfg;
}

void
cfg_free(const struct cfg *cfg_const)
{
    struct cfg *cfg = (struct cfg *)cfg_const; /* the last holder owns it */

    if (cfg == NULL || __atomic_load_n(&cfg->refs, __ATOMIC_RELAXED) == 0 ||
        __atomic_fetch_sub(&cfg->refs, 1, __ATOMIC_ACQ_REL) != 1)
        return;
    free(cfg->path);
    for (size_t i = 0; i < cfg->n_listeners; i++)
        cfg_tls_listen_free(cfg->listeners[i].tls);
    free(cfg->listeners);
    free(cfg->admin_socket);
    free(cfg->admin_group);
    free(cfg->admin_http);
    free(cfg->test_traffic.header);
    free(cfg->test_traffic.sources);
    cfg_split_keys_free(&cfg->split);
    free(cfg->split.seed);
    free(cfg->split.trusted_proxies);
    free(cfg->split.override_header);
    free(cfg->split.override_cookie);
    free(cfg->split.override_from);
    free(cfg->split.expose);
    for (size_t i = 0; i < CFG_CLUSTER_COUNT; i++) {
        free(cfg->clusters[i].nodes);
        free(cfg->clusters[i].health.path);
        free(cfg->clusters[i].health.host);
        cfg_tls_node_free(cfg->clusters[i].tls);
    }
    free(cfg->access_log);
    free(cfg->state_file);
    cfg_fleet_free(&cfg->fleet);
    free(cfg);
}
