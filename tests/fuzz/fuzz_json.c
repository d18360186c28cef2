/* tests/fuzz/fuzz_json.c -- fleet's JSON reader (fl_json_parse) and what reads etcd's answers with
 * it, on any bytes. Properties: no crash, leak or read past the bytes; an accepted document's
 * tokens nest properly (each subtree inside its parent, children counted right); a decoded
 * string is never longer than its raw bytes and compares equal to itself; a string that decodes
 * as base64 encodes back to the same text (one text per value); the answer readers (fl_result_parse
 * for every operation) accept or refuse without harm. */
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "fleet/fl_int.h"

static void
fz_json_strings(const struct fl_json *doc, uint32_t i)
{
    const struct fl_json_tok *t = &doc->toks[i];
    size_t len = 0, n = 0;
    char *s = fl_json_strdup(doc, i, &len);
    char *bin, *again;
    int64_t v;

    FZ_CHECK(s != NULL, "strdup of token %u failed", i);
    FZ_CHECK(len <= t->len, "token %u decodes to %zu bytes from %u", i, len, t->len);
    FZ_CHECK(s[len] == '\0', "token %u is not NUL-terminated", i);
    FZ_CHECK(fl_json_str_eq(doc, i, s, len), "token %u differs from its own decoding", i);
    fl_json_int(doc, i, &v);
    bin = malloc(FL_B64_DEC_MAX(len) + 1);
    again = malloc(len + 1);
    if (bin != NULL && again != NULL && fl_b64_decode(bin, &n, s, len) == 0) {
        FZ_CHECK(fl_b64_encode(again, bin, n) == len && memcmp(again, s, len) == 0,
                 "token %u: base64 does not encode back to the same text", i);
    }
    free(bin);
    free(again);
    free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size > 0 ? size : 1);
    struct fl_result res;
    struct fl_json doc;

    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    if (fl_json_parse(&doc, buf, size, NULL) == 0) {
        FZ_CHECK(doc.n_toks > 0 && doc.toks[0].next == doc.n_toks, "the root spans %u of %u",
                 doc.toks[0].next, doc.n_toks);
        for (uint32_t i = 0; i < doc.n_toks; i++) {
            const struct fl_json_tok *t = &doc.toks[i];
            uint32_t n = 0;

            FZ_CHECK(t->next > i && t->next <= doc.n_toks, "token %u ends at %u", i, t->next);
            FZ_CHECK((size_t)t->start + t->len <= size, "token %u runs past the input", i);
            if (t->type == FL_JSON_STRING)
                fz_json_strings(&doc, i);
            if (t->type != FL_JSON_ARRAY && t->type != FL_JSON_OBJECT)
                continue;
            for (uint32_t c = fl_json_child(&doc, i); c != FL_JSON_NONE;
                 c = fl_json_sibling(&doc, i, c)) {
                FZ_CHECK(doc.toks[c].next <= t->next, "child %u leaves parent %u", c, i);
                n++;
            }
            FZ_CHECK(n == (t->type == FL_JSON_OBJECT ? 2 * t->n : t->n), "token %u: %u children", i,
                     n);
            if (t->type == FL_JSON_OBJECT)
                fl_json_member(&doc, i, "kvs");
        }
        fl_json_fini(&doc);
    }
    for (int op = FL_OP_GET; op <= FL_OP_REVOKE; op++)
        if (fl_result_parse((enum fl_op)op, buf, size, &res, NULL) == 0)
            fl_result_fini(&res);
    free(buf);
    return 0;
}
