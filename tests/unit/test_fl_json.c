/* tests/unit/test_fl_json.c -- fleet's strict JSON reader: what it accepts, how it reads values,
 * and that hostile documents are refused with a reason and never read out of bounds. */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "fleet/fl_int.h"

/*
 * Parses a copy of the `len` bytes at s in a heap buffer of exactly that size, so that ASan
 * catches a read one byte past the end (a string literal's NUL would hide it).
 */
static int
parse(struct fl_json *doc, const char *s, size_t len, struct xf_err *err)
{
    static char *copy;

    free(copy);
    copy = malloc(len > 0 ? len : 1);
    cr_assert(ne(ptr, copy, NULL));
    memcpy(copy, s, len);
    return fl_json_parse(doc, copy, len, err);
}

#define PARSE(doc, lit, err) parse(doc, lit, sizeof(lit) - 1, err)

/* Asserts that `lit` is refused, with a message that names `why`. */
static void
refused(const char *s, size_t len, const char *why)
{
    struct fl_json doc;
    struct xf_err err = {{0}};

    cr_assert(eq(int, parse(&doc, s, len, &err), -1), "accepted %.*s", (int)len, s);
    cr_assert(ne(ptr, strstr(err.msg, why), NULL), "for %.*s: \"%s\" does not say \"%s\"", (int)len,
              s, err.msg, why);
    cr_assert(eq(ptr, doc.toks, NULL));
    fl_json_fini(&doc);
}

#define REFUSED(lit, why) refused(lit, sizeof(lit) - 1, why)

static char *
str_of(const struct fl_json *doc, uint32_t i, size_t *len)
{
    char *s = fl_json_strdup(doc, i, len);

    cr_assert(ne(ptr, s, NULL));
    return s;
}

Test(fl_json, reads_an_etcd_range_answer)
{
    static const char body[] =
        "{\"header\":{\"cluster_id\":\"15118495548433857066\",\"revision\":\"2\","
        "\"raft_term\":\"2\"},\"kvs\":[{\"key\":\"Zm9v\",\"create_revision\":\"2\","
        "\"mod_revision\":\"2\",\"version\":\"1\",\"value\":\"YmFy\"}],\"count\":\"1\"}";
    struct fl_json doc;
    uint32_t kvs, kv;
    int64_t v = 0;
    char *key;

    cr_assert(eq(int, PARSE(&doc, body, NULL), 0));
    cr_assert(eq(int, fl_json_type(&doc, 0), FL_JSON_OBJECT));
    cr_assert(eq(u32, fl_json_count(&doc, 0), 3));
    cr_assert(eq(
        int,
        fl_json_int(&doc, fl_json_member(&doc, fl_json_member(&doc, 0, "header"), "revision"), &v),
        0));
    cr_assert(eq(i64, v, 2));
    kvs = fl_json_member(&doc, 0, "kvs");
    cr_assert(eq(int, fl_json_type(&doc, kvs), FL_JSON_ARRAY));
    cr_assert(eq(u32, fl_json_count(&doc, kvs), 1));
    kv = fl_json_child(&doc, kvs);
    cr_assert(eq(u32, fl_json_sibling(&doc, kvs, kv), FL_JSON_NONE));
    key = str_of(&doc, fl_json_member(&doc, kv, "key"), NULL);
    cr_assert(eq(str, key, "Zm9v"));
    free(key);
    cr_assert(eq(int, fl_json_int(&doc, fl_json_member(&doc, 0, "count"), &v), 0));
    cr_assert(eq(i64, v, 1));
    /* The cluster ID is above INT64_MAX: refused as an integer, still there as a string. */
    cr_assert(
        eq(int,
           fl_json_int(&doc, fl_json_member(&doc, fl_json_member(&doc, 0, "header"), "cluster_id"),
                       &v),
           -1));
    cr_assert(eq(u32, fl_json_member(&doc, 0, "nope"), FL_JSON_NONE));
    cr_assert(eq(int, fl_json_type(&doc, FL_JSON_NONE), FL_JSON_MISSING));
    fl_json_fini(&doc);
}

Test(fl_json, walks_siblings_across_nested_values)
{
    struct fl_json doc;
    uint32_t c, n = 0;
    int64_t v;

    cr_assert(
        eq(int, PARSE(&doc, " [ 1 , {\"a\":[2,[3]]} , [] , \"x\" , null,true,false ] ", NULL), 0));
    cr_assert(eq(u32, fl_json_count(&doc, 0), 7));
    for (c = fl_json_child(&doc, 0); c != FL_JSON_NONE; c = fl_json_sibling(&doc, 0, c))
        n++;
    cr_assert(eq(u32, n, 7), "the walk skips each subtree whole");
    c = fl_json_sibling(&doc, 0, fl_json_child(&doc, 0));
    cr_assert(eq(int, fl_json_type(&doc, c), FL_JSON_OBJECT));
    c = fl_json_sibling(&doc, 0, c);
    cr_assert(eq(int, fl_json_type(&doc, c), FL_JSON_ARRAY));
    cr_assert(eq(u32, fl_json_child(&doc, c), FL_JSON_NONE), "an empty array has no child");
    cr_assert(eq(int, fl_json_int(&doc, fl_json_child(&doc, 0), &v), 0));
    cr_assert(eq(i64, v, 1));
    fl_json_fini(&doc);
}

Test(fl_json, finds_the_first_of_duplicate_members_and_compares_escaped_names)
{
    struct fl_json doc;
    int64_t v = 0;

    cr_assert(eq(int, PARSE(&doc, "{\"k\\u0065y\":1,\"key\":2}", NULL), 0));
    cr_assert(eq(int, fl_json_int(&doc, fl_json_member(&doc, 0, "key"), &v), 0));
    cr_assert(eq(i64, v, 1));
    fl_json_fini(&doc);
}

Test(fl_json, decodes_escapes_and_surrogate_pairs_to_utf8)
{
    struct fl_json doc;
    size_t len;
    char *s;

    cr_assert(eq(
        int,
        PARSE(&doc, "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\u20AC\\ud83d\\ude00\\u0000z\"", NULL),
        0));
    s = str_of(&doc, 0, &len);
    cr_assert(eq(sz, len, 23));
    cr_assert(
        eq(int, memcmp(s, "a\"b\\c/d\b\f\n\r\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\0z", 23), 0));
    cr_assert(eq(int, s[len], 0), "NUL-terminated after its length");
    cr_assert(fl_json_str_eq(&doc, 0, s, len));
    free(s);
    fl_json_fini(&doc);
}

Test(fl_json, keeps_raw_utf8_in_strings)
{
    struct fl_json doc;
    char *s;

    cr_assert(eq(int, PARSE(&doc, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"", NULL), 0));
    s = str_of(&doc, 0, NULL);
    cr_assert(eq(str, s, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
    free(s);
    fl_json_fini(&doc);
}

Test(fl_json, reads_integers_from_numbers_and_from_strings_as_etcd_sends_int64)
{
    struct fl_json doc;
    int64_t v = 0;

    cr_assert(eq(int,
                 PARSE(&doc,
                       "[\"9223372036854775807\",-9223372036854775808,0,\"-1\",1.5,1e3,"
                       "\"9223372036854775808\",-9223372036854775809,\"01\",\"\",\"1 \","
                       "\"\\u0031\",\"-\",true,99999999999999999999999999999999]",
                       NULL),
                 0));
    {
        static const struct {
            int rc;
            int64_t v;
        } want[] = {
            {0, INT64_MAX}, {0, INT64_MIN}, {0, 0},  {0, -1}, {-1, 0}, {-1, 0}, {-1, 0}, {-1, 0},
            {-1, 0},        {-1, 0},        {-1, 0}, {-1, 0}, {-1, 0}, {-1, 0}, {-1, 0},
        };
        uint32_t c = fl_json_child(&doc, 0);

        for (size_t k = 0; k < XF_ARRAY_LEN(want); k++, c = fl_json_sibling(&doc, 0, c)) {
            v = 12345;
            cr_assert(eq(int, fl_json_int(&doc, c, &v), want[k].rc), "element %zu", k);
            cr_assert(eq(i64, v, want[k].rc == 0 ? want[k].v : 12345), "element %zu", k);
        }
        cr_assert(eq(u32, c, FL_JSON_NONE));
    }
    fl_json_fini(&doc);
}

Test(fl_json, reads_booleans_and_nothing_else_as_one)
{
    struct fl_json doc;
    bool b = false;

    cr_assert(eq(int, PARSE(&doc, "{\"t\":true,\"f\":false,\"s\":\"true\",\"n\":null}", NULL), 0));
    cr_assert(eq(int, fl_json_bool(&doc, fl_json_member(&doc, 0, "t"), &b), 0));
    cr_assert(b);
    cr_assert(eq(int, fl_json_bool(&doc, fl_json_member(&doc, 0, "f"), &b), 0));
    cr_assert(not(b));
    cr_assert(eq(int, fl_json_bool(&doc, fl_json_member(&doc, 0, "s"), &b), -1));
    cr_assert(eq(int, fl_json_bool(&doc, fl_json_member(&doc, 0, "n"), &b), -1));
    cr_assert(eq(int, fl_json_type(&doc, fl_json_member(&doc, 0, "n")), FL_JSON_NULL));
    cr_assert(eq(ptr, fl_json_strdup(&doc, fl_json_member(&doc, 0, "t"), NULL), NULL));
    fl_json_fini(&doc);
}

Test(fl_json, accepts_any_value_at_the_top_and_surrounding_whitespace)
{
    static const char *const ok[] = {"0",    "-0",   "-0.5e-3",     "1E+9",
                                     "\"\"", "null", " \t\r\n[]\n", "{}"};

    for (size_t k = 0; k < XF_ARRAY_LEN(ok); k++) {
        struct fl_json doc;

        cr_assert(eq(int, parse(&doc, ok[k], strlen(ok[k]), NULL), 0), "%s", ok[k]);
        fl_json_fini(&doc);
    }
}

Test(fl_json, refuses_truncated_documents_at_every_length)
{
    static const char doc_text[] =
        "{\"a\":[1,-2.5e3,\"x\\u00e9\\ud83d\\ude00\",true,false,null,{\"b\":{}}],\"c\":\"\"}";
    struct fl_json doc;

    cr_assert(eq(int, PARSE(&doc, doc_text, NULL), 0));
    fl_json_fini(&doc);
    for (size_t len = 0; len < sizeof(doc_text) - 1; len++)
        cr_assert(eq(int, parse(&doc, doc_text, len, NULL), -1), "accepted the first %zu bytes",
                  len);
}

Test(fl_json, refuses_bad_grammar_with_a_reason)
{
    REFUSED("", "expected a value");
    REFUSED("   ", "expected a value");
    REFUSED("[1,]", "expected a value");
    REFUSED("{\"a\":1,}", "expected a member name");
    REFUSED("{\"a\" 1}", "expected ':'");
    REFUSED("{a:1}", "expected a member name");
    REFUSED("[1 2]", "expected ',' or ']'");
    REFUSED("{\"a\":1 \"b\":2}", "expected ',' or '}'");
    REFUSED("[1]]", "bytes after the end");
    REFUSED("{} {}", "bytes after the end");
    REFUSED("tru", "expected a value");
    REFUSED("nul", "expected a value");
    REFUSED("True", "expected a value");
    REFUSED("'a'", "expected a value");
    REFUSED("[01]", "leading zero");
    REFUSED("-", "expected a digit");
    REFUSED("1.", "expected a digit");
    REFUSED("1e", "expected a digit");
    REFUSED(".5", "expected a value");
    REFUSED("+1", "expected a value");
    REFUSED("[NaN]", "expected a value");
    REFUSED("\xef\xbb\xbf{}", "expected a value");
}

Test(fl_json, refuses_bad_strings)
{
    REFUSED("\"abc", "unterminated string");
    REFUSED("\"abc\\", "unterminated escape");
    REFUSED("\"\\x\"", "invalid escape");
    REFUSED("\"\\u12\"", "four hexadecimal digits");
    REFUSED("\"\\u12g4\"", "four hexadecimal digits");
    REFUSED("\"\\ud83d\"", "high surrogate not followed by a low one");
    REFUSED("\"\\ud83d\\u0041\"", "high surrogate not followed by a low one");
    REFUSED("\"\\ud83d\\ud83d\"", "high surrogate not followed by a low one");
    REFUSED("\"\\ude00\"", "low surrogate");
    REFUSED("\"a\tb\"", "control byte");
    REFUSED("\"a\nb\"", "control byte");
    REFUSED("\"\xc3\"", "invalid UTF-8");
    REFUSED("\"\xc0\xaf\"", "invalid UTF-8");         /* overlong '/' */
    REFUSED("\"\xe0\x80\xaf\"", "invalid UTF-8");     /* overlong, 3 bytes */
    REFUSED("\"\xed\xa0\x80\"", "invalid UTF-8");     /* a surrogate in UTF-8 */
    REFUSED("\"\xf4\x90\x80\x80\"", "invalid UTF-8"); /* above U+10FFFF */
    REFUSED("\"\xff\"", "invalid UTF-8");
    REFUSED("\"\x80\"", "invalid UTF-8");
}

Test(fl_json, refuses_nul_bytes_anywhere)
{
    refused("\"a\0b\"", 5, "control byte");
    refused("[1,\0]", 5, "expected a value");
    refused("{}\0", 3, "bytes after the end");
    refused("\0", 1, "expected a value");
}

Test(fl_json, bounds_nesting_depth)
{
    char deep[2 * FL_JSON_MAX_DEPTH + 2];
    struct fl_json doc;

    memset(deep, '[', FL_JSON_MAX_DEPTH);
    memset(deep + FL_JSON_MAX_DEPTH, ']', FL_JSON_MAX_DEPTH);
    cr_assert(eq(int, parse(&doc, deep, 2 * FL_JSON_MAX_DEPTH, NULL), 0), "64 levels are fine");
    fl_json_fini(&doc);
    memset(deep, '[', FL_JSON_MAX_DEPTH + 1);
    memset(deep + FL_JSON_MAX_DEPTH + 1, ']', FL_JSON_MAX_DEPTH + 1);
    refused(deep, 2 * FL_JSON_MAX_DEPTH + 2, "nested too deep");
}

Test(fl_json, refuses_a_hundred_thousand_open_brackets_without_recursing_into_them)
{
    size_t n = 100000;
    char *s = malloc(n);

    memset(s, '{', n);
    refused(s, n, "expected a member name"); /* '{' then '{' is not a name */
    memset(s, '[', n);
    refused(s, n, "nested too deep");
    free(s);
}

Test(fl_json, reads_huge_numbers_as_numbers_but_not_as_integers)
{
    char big[4096 + 3];
    struct fl_json doc;
    int64_t v;

    memset(big + 1, '9', 4096);
    big[0] = '[';
    big[4097] = ']';
    cr_assert(eq(int, parse(&doc, big, 4098, NULL), 0));
    cr_assert(eq(int, fl_json_type(&doc, 1), FL_JSON_NUMBER));
    cr_assert(eq(int, fl_json_int(&doc, 1, &v), -1));
    fl_json_fini(&doc);
}

Test(fl_json, handles_many_tokens)
{
    size_t n = 200000;
    char *s = malloc(2 * n + 1);
    struct fl_json doc;

    s[0] = '[';
    for (size_t k = 0; k < n; k++) {
        s[1 + 2 * k] = '0';
        s[2 + 2 * k] = k + 1 < n ? ',' : ']';
    }
    cr_assert(eq(int, parse(&doc, s, 2 * n + 1, NULL), 0));
    cr_assert(eq(u32, fl_json_count(&doc, 0), (uint32_t)n));
    cr_assert(eq(u32, doc.n_toks, (uint32_t)n + 1));
    fl_json_fini(&doc);
    free(s);
}
