/* fleet/fl_ops.c -- what the etcd client sends (JSON for etcd's v3 gateway, keys and values in
 * base64, int64 as strings) and how it reads the answers. */
#include "fleet/fl_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- building ------------------------------------------------------------------------------ */

static bool
fl_buf_reserve(struct fl_buf *b, size_t more)
{
    size_t cap;
    char *p;

    if (b->oom)
        return false;
    if (b->cap - b->len > more)
        return true;
    cap = b->cap == 0 ? 256 : b->cap;
    while (cap - b->len <= more) {
        if (cap > SIZE_MAX / 2) {
            b->oom = true;
            return false;
        }
        cap *= 2;
    }
    p = realloc(b->p, cap);
    if (p == NULL) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void
fl_buf_add(struct fl_buf *b, const void *s, size_t len)
{
    if (!fl_buf_reserve(b, len))
        return;
    memcpy(b->p + b->len, s, len);
    b->len += len;
    b->p[b->len] = '\0';
}

void
fl_buf_str(struct fl_buf *b, const char *s)
{
    fl_buf_add(b, s, strlen(s));
}

void
fl_buf_printf(struct fl_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !fl_buf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void
fl_buf_b64_member(struct fl_buf *b, const char *name, const char *s, size_t len)
{
    fl_buf_printf(b, "\"%s\":\"", name);
    if (fl_buf_reserve(b, FL_B64_ENC_LEN(len) + 1))
        b->len += fl_b64_encode(b->p + b->len, s, len);
    fl_buf_str(b, "\"");
}

void
fl_buf_fini(struct fl_buf *b)
{
    XF_FREE(b->p);
    b->len = 0;
    b->cap = 0;
    b->oom = false;
}

size_t
fl_prefix_end(const char *key, size_t len, char *out)
{
    for (size_t k = len; k > 0; k--) {
        unsigned char c = (unsigned char)key[k - 1];

        if (c != 0xff) {
            memcpy(out, key, k - 1);
            out[k - 1] = (char)(c + 1);
            return k;
        }
    }
    out[0] = '\0';
    return 1;
}

void
fl_buf_range(struct fl_buf *b, const char *key, size_t len, unsigned flags)
{
    if (flags & FL_PREFIX) {
        char *end = malloc(len + 1);
        size_t n;

        if (end == NULL) {
            b->oom = true;
            return;
        }
        /* An empty prefix is every key: key "\0", range_end "\0". */
        if (len == 0)
            fl_buf_b64_member(b, "key", "", 1);
        else
            fl_buf_b64_member(b, "key", key, len);
        n = fl_prefix_end(key, len, end);
        fl_buf_str(b, ",");
        fl_buf_b64_member(b, "range_end", end, n);
        free(end);
        return;
    }
    fl_buf_b64_member(b, "key", key, len);
}

const char *
fl_op_path(enum fl_op op)
{
    switch (op) {
    case FL_OP_GET:
        return "/v3/kv/range";
    case FL_OP_PUT:
        return "/v3/kv/put";
    case FL_OP_DEL:
        return "/v3/kv/deleterange";
    case FL_OP_CAS:
        return "/v3/kv/txn";
    case FL_OP_GRANT:
        return "/v3/lease/grant";
    case FL_OP_KEEPALIVE:
        return "/v3/lease/keepalive";
    case FL_OP_REVOKE:
        return "/v3/lease/revoke";
    }
    return "/";
}

bool
fl_op_idempotent(enum fl_op op)
{
    return op == FL_OP_GET || op == FL_OP_KEEPALIVE;
}

void
fl_buf_put(struct fl_buf *b, const struct fl_put *put)
{
    fl_buf_str(b, "{");
    fl_buf_b64_member(b, "key", put->key, put->key_len);
    fl_buf_str(b, ",");
    fl_buf_b64_member(b, "value", put->value, put->value_len);
    if (put->lease != 0)
        fl_buf_printf(b, ",\"lease\":\"%" PRId64 "\"", put->lease);
    fl_buf_str(b, "}");
}

void
fl_buf_cas(struct fl_buf *b, int64_t mod_revision, const struct fl_put *puts, size_t n)
{
    /* An absent key compares as mod_revision 0, so R = 0 reads "must not exist". target and
     * result are the protobuf enums by name (MOD, EQUAL); the gateway takes either form. */
    fl_buf_str(b, "{\"compare\":[{");
    fl_buf_b64_member(b, "key", puts[0].key, puts[0].key_len);
    fl_buf_printf(b, ",\"target\":\"MOD\",\"result\":\"EQUAL\",\"mod_revision\":\"%" PRId64 "\"}]",
                  mod_revision);
    fl_buf_str(b, ",\"success\":[");
    for (size_t k = 0; k < n; k++) {
        fl_buf_str(b, k == 0 ? "{\"request_put\":" : ",{\"request_put\":");
        fl_buf_put(b, &puts[k]);
        fl_buf_str(b, "}");
    }
    fl_buf_str(b, "],\"failure\":[{\"request_range\":{");
    fl_buf_b64_member(b, "key", puts[0].key, puts[0].key_len);
    fl_buf_str(b, "}}]}");
}

/* ---- reading ------------------------------------------------------------------------------- */

/* An int64 member of object i; absent is 0 (the gateway leaves out zero values). */
static int
fl_member_int(const struct fl_json *doc, uint32_t i, const char *name, int64_t *out,
              struct xf_err *err)
{
    uint32_t v = fl_json_member(doc, i, name);

    *out = 0;
    if (v == FL_JSON_NONE)
        return 0;
    if (fl_json_int(doc, v, out) == -1) {
        xf_err_set(err, "etcd's answer: \"%s\" is not an integer", name);
        return -1;
    }
    return 0;
}

/* The base64 string member `name` of object i, decoded into a new NUL-terminated buffer; absent
 * is "". NULL with err when it is not base64 or memory ran out. */
static char *
fl_member_b64(const struct fl_json *doc, uint32_t i, const char *name, size_t *len,
              struct xf_err *err)
{
    uint32_t v = fl_json_member(doc, i, name);
    size_t n = 0;
    char *s;

    if (v == FL_JSON_NONE)
        s = calloc(1, 1);
    else
        s = fl_json_strdup(doc, v, &n);
    if (s == NULL) {
        xf_err_set(err, "etcd's answer: \"%s\" is %s", name,
                   fl_json_type(doc, v) == FL_JSON_STRING ? "too large" : "not a string");
        return NULL;
    }
    if (n > 0 && fl_b64_decode(s, &n, s, n) == -1) {
        xf_err_set(err, "etcd's answer: \"%s\" is not base64", name);
        free(s);
        return NULL;
    }
    s[n] = '\0';
    *len = n;
    return s;
}

int
fl_kv_parse(const struct fl_json *doc, uint32_t i, struct fl_kv *kv, struct xf_err *err)
{
    memset(kv, 0, sizeof(*kv));
    if (fl_json_type(doc, i) != FL_JSON_OBJECT) {
        xf_err_set(err, "etcd's answer: a key-value is not an object");
        return -1;
    }
    kv->key = fl_member_b64(doc, i, "key", &kv->key_len, err);
    if (kv->key == NULL)
        goto fail;
    kv->value = fl_member_b64(doc, i, "value", &kv->value_len, err);
    if (kv->value == NULL)
        goto fail;
    if (fl_member_int(doc, i, "create_revision", &kv->create_revision, err) == -1 ||
        fl_member_int(doc, i, "mod_revision", &kv->mod_revision, err) == -1 ||
        fl_member_int(doc, i, "version", &kv->version, err) == -1 ||
        fl_member_int(doc, i, "lease", &kv->lease, err) == -1)
        goto fail;
    return 0;
fail:
    fl_kv_fini(kv);
    return -1;
}

void
fl_kv_fini(struct fl_kv *kv)
{
    free((char *)kv->key);
    free((char *)kv->value);
    memset(kv, 0, sizeof(*kv));
}

int
fl_kvs_parse(const struct fl_json *doc, uint32_t i, struct fl_kv **out, size_t *n,
             struct xf_err *err)
{
    uint32_t count = fl_json_count(doc, i);
    struct fl_kv *kvs;
    size_t k = 0;

    *out = NULL;
    *n = 0;
    if (i == FL_JSON_NONE)
        return 0;
    if (fl_json_type(doc, i) != FL_JSON_ARRAY) {
        xf_err_set(err, "etcd's answer: \"kvs\" is not an array");
        return -1;
    }
    if (count == 0)
        return 0;
    kvs = calloc(count, sizeof(*kvs));
    if (kvs == NULL) {
        xf_err_set(err, "out of memory");
        return -1;
    }
    for (uint32_t c = fl_json_child(doc, i); c != FL_JSON_NONE; c = fl_json_sibling(doc, i, c)) {
        if (fl_kv_parse(doc, c, &kvs[k], err) == -1) {
            fl_kvs_free(kvs, k);
            return -1;
        }
        k++;
    }
    *out = kvs;
    *n = k;
    return 0;
}

void
fl_kvs_free(struct fl_kv *kvs, size_t n)
{
    for (size_t k = 0; k < n; k++)
        fl_kv_fini(&kvs[k]);
    free(kvs);
}

/* A transaction's answer: succeeded, or the key as it is read by the failure branch. */
static int
fl_result_cas(const struct fl_json *doc, struct fl_result *res, struct xf_err *err)
{
    uint32_t v = fl_json_member(doc, 0, "succeeded"), rs, range;
    struct fl_kv *kvs;

    if (v != FL_JSON_NONE && fl_json_bool(doc, v, &res->succeeded) == -1) {
        xf_err_set(err, "etcd's answer: \"succeeded\" is not a boolean");
        return -1;
    }
    if (res->succeeded)
        return 0;
    rs = fl_json_member(doc, 0, "responses");
    range = fl_json_member(doc, fl_json_child(doc, rs), "response_range");
    if (fl_json_type(doc, rs) != FL_JSON_ARRAY || fl_json_count(doc, rs) != 1 ||
        fl_json_type(doc, range) != FL_JSON_OBJECT) {
        xf_err_set(err, "etcd's answer: a failed transaction without its read");
        return -1;
    }
    if (fl_kvs_parse(doc, fl_json_member(doc, range, "kvs"), &kvs, &res->n_kvs, err) == -1)
        return -1;
    res->kvs = kvs;
    return 0;
}

int
fl_result_parse(enum fl_op op, const char *body, size_t len, struct fl_result *res,
                struct xf_err *err)
{
    struct fl_json doc;
    uint32_t root = 0, v;
    struct fl_kv *kvs;
    int rc = -1;

    memset(res, 0, sizeof(*res));
    if (fl_json_parse(&doc, body, len, err) == -1)
        return -1;
    if (fl_json_type(&doc, 0) != FL_JSON_OBJECT) {
        xf_err_set(err, "etcd's answer is not a JSON object");
        goto done;
    }
    if (op == FL_OP_KEEPALIVE) {
        /* A stream of one message: {"result":{...}} or {"error":{...}}. */
        v = fl_json_member(&doc, 0, "error");
        if (v != FL_JSON_NONE) {
            char *msg = fl_json_strdup(&doc, fl_json_member(&doc, v, "message"), NULL);

            xf_err_set(err, "%s", msg != NULL ? msg : "etcd's keep-alive stream failed");
            free(msg);
            goto done;
        }
        root = fl_json_member(&doc, 0, "result");
        if (fl_json_type(&doc, root) != FL_JSON_OBJECT) {
            xf_err_set(err, "etcd's keep-alive answer has no result");
            goto done;
        }
    }
    if (fl_member_int(&doc, fl_json_member(&doc, root, "header"), "revision", &res->revision,
                      err) == -1)
        goto done;
    switch (op) {
    case FL_OP_GET:
        if (fl_kvs_parse(&doc, fl_json_member(&doc, root, "kvs"), &kvs, &res->n_kvs, err) == -1)
            goto done;
        res->kvs = kvs;
        v = fl_json_member(&doc, root, "more");
        if (fl_member_int(&doc, root, "count", &res->count, err) == -1)
            goto done;
        if (v != FL_JSON_NONE && fl_json_bool(&doc, v, &res->more) == -1) {
            xf_err_set(err, "etcd's answer: \"more\" is not a boolean");
            goto done;
        }
        break;
    case FL_OP_DEL:
        if (fl_member_int(&doc, root, "deleted", &res->deleted, err) == -1)
            goto done;
        break;
    case FL_OP_CAS:
        if (fl_result_cas(&doc, res, err) == -1)
            goto done;
        break;
    case FL_OP_GRANT:
    case FL_OP_KEEPALIVE:
        v = fl_json_member(&doc, root, "error");
        if (fl_json_type(&doc, v) == FL_JSON_STRING && !fl_json_str_eq(&doc, v, "", 0)) {
            char *msg = fl_json_strdup(&doc, v, NULL);

            xf_err_set(err, "%s", msg != NULL ? msg : "out of memory");
            free(msg);
            goto done;
        }
        if (fl_member_int(&doc, root, "ID", &res->lease, err) == -1 ||
            fl_member_int(&doc, root, "TTL", &res->ttl, err) == -1)
            goto done;
        break;
    case FL_OP_PUT:
    case FL_OP_REVOKE:
        break;
    }
    rc = 0;
done:
    if (rc == -1)
        fl_result_fini(res);
    fl_json_fini(&doc);
    return rc;
}

void
fl_result_fini(struct fl_result *res)
{
    fl_kvs_free((struct fl_kv *)res->kvs, res->n_kvs);
    res->kvs = NULL;
    res->n_kvs = 0;
}

void
fl_error_text(int status, const char *body, size_t len, char *out, size_t size)
{
    struct fl_json doc;
    char *msg = NULL;

    if (fl_json_parse(&doc, body, len, NULL) == 0) {
        msg = fl_json_strdup(&doc, fl_json_member(&doc, 0, "message"), NULL);
        if (msg == NULL || *msg == '\0') {
            free(msg);
            msg = fl_json_strdup(&doc, fl_json_member(&doc, 0, "error"), NULL);
        }
        fl_json_fini(&doc);
    }
    if (msg != NULL && *msg != '\0') {
        char q[XF_QUOTE_SIZE];

        /* etcd's text, on one line: quoted only when it holds what a log line should not. */
        if (strcspn(msg, "\r\n\"\\") == strlen(msg))
            snprintf(out, size, "%s (HTTP %d)", msg, status);
        else
            snprintf(out, size, "%s (HTTP %d)", xf_quote(q, msg, strlen(msg)), status);
    } else {
        snprintf(out, size, "HTTP %d from etcd", status);
    }
    free(msg);
}
