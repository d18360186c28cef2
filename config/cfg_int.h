/* config/cfg_int.h -- internal to config/, not part of the module's API: the walk's helpers. */
#ifndef CFG_INT_H
#define CFG_INT_H

#include "config/cfg.h"

#include <stdbool.h>
#include <stddef.h>

#include <yaml.h>

#include "common/xf.h"

/*
 * cfg_load.c walks the document and owns these helpers; cfg_cluster.c reads the clusters section
 * with them. Each is described where it is defined, in cfg_load.c.
 */

#define CFG_PATH_MAX  96            /* "clusters.x.nodes[12].address" and the like */
#define CFG_SHOW_SIZE XF_QUOTE_SIZE /* the buffer of a quoted value in a message */

/* What the walk needs at every level; everything is borrowed from cfg_parse. */
struct cfg_ctx {
    const char *name;     /* borrowed: the file name printed in messages */
    yaml_document_t *doc; /* borrowed: the loaded document */
    struct cfg *cfg;      /* borrowed: the struct being filled */
    struct xf_err *err;   /* borrowed, may be NULL */
};

/* ---- Messages ------------------------------------------------------------------------------ */

const char *cfg_show(char *buf, const char *s, size_t len);
const char *cfg_show_str(char *buf, const char *s);
const char *cfg_hint(char *buf, size_t size, const char *word, const char *const *cands, size_t n);
int cfg_fail(const struct cfg_ctx *ctx, const yaml_node_t *at, const char *path, const char *fmt,
             ...) XF_PRINTF(4, 5);
int cfg_oom(const struct cfg_ctx *ctx);
const char *cfg_path_key(char *buf, const char *parent, const char *key);
const char *cfg_path_index(char *buf, const char *parent, size_t i);

/* ---- YAML nodes ---------------------------------------------------------------------------- */

yaml_node_t *cfg_node(const struct cfg_ctx *ctx, int id);
bool cfg_scalar_is(const yaml_node_t *node, const char *lit);
size_t cfg_seq_len(const yaml_node_t *node);
const char *cfg_got(const yaml_node_t *node, char *buf);
const char *cfg_scalar(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
                       const char *what);
int cfg_map_lookup(const struct cfg_ctx *ctx, const yaml_node_t *map, const char *path,
                   const char *const *keys, size_t n_keys, yaml_node_t **values);

/* ---- Typed values -------------------------------------------------------------------------- */

int cfg_get_unsigned(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
                     unsigned min, unsigned max, unsigned *out);
int cfg_set_string(const struct cfg_ctx *ctx, char **dst, const char *text);
int cfg_get_addr(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
                 struct cfg_addr *out);
bool cfg_addr_same(const struct cfg_addr *a, const struct cfg_addr *b);
int cfg_get_timeout(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
                    unsigned *out_ms);
int cfg_get_bool(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path, bool *out);
/* One of n words (`what` lists them for the error, with a did-you-mean hint): its index in *out. */
int cfg_get_choice(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
                   const char *const *names, size_t n, const char *what, unsigned *out);

/* ---- Sections (cfg_cluster.c) -------------------------------------------------------------- */

/*
 * clusters: x and y, both required, each with its nodes (`root` locates the message when the
 * section is missing). Fills ctx->cfg->clusters; returns 0, or -1 with a message.
 */
int cfg_walk_clusters(const struct cfg_ctx *ctx, const yaml_node_t *root, const yaml_node_t *node);

/* ---- TLS (cfg_tls.c) ----------------------------------------------------------------------- */

/* listen[i].tls at `path`: fills l->tls (owned by the cfg even on failure). 0, or -1. */
int cfg_walk_listener_tls(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
                          struct cfg_listener *l);
/* The top-level tls section (ticket_rotation); node may be NULL. 0, or -1 with a message. */
int cfg_walk_tls(const struct cfg_ctx *ctx, const yaml_node_t *node);
void cfg_tls_listen_free(struct cfg_tls_listen *t);
/* clusters.NAME.tls at `path`: a mapping, or true for the defaults. Fills c->tls (owned by the
 * cfg even on failure). 0, or -1 with a message. */
int cfg_walk_cluster_tls(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
                         struct cfg_cluster *c);
void cfg_tls_node_free(struct cfg_tls_node *t);

/* ---- Fleet (cfg_fleet.c) --------------------------------------------------------------------- */

/* The fleet section (node may be NULL: not in fleet mode). 0, or -1 with a message. */
/* A header name (`header`) or a cookie name kept as written, or off (NULL at `dst`); names that
 * HTTP fixes for framing or one hop are refused for headers. */
int cfg_get_name_or_off(const struct cfg_ctx *ctx, const yaml_node_t *node, const char *path,
                        bool header, char **dst);
int cfg_walk_fleet(const struct cfg_ctx *ctx, const yaml_node_t *node);
/* Frees what the fleet section owns and clears it. */
void cfg_fleet_free(struct cfg_fleet *f);

#endif
