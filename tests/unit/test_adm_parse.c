/* tests/unit/test_adm_parse.c -- the admin protocol's pure parsers: line framing, words, weights,
 * quoting and the keys of `which`. */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "admin/adm.h"

/* ------------------------------------------------------------------ line framing */

TestSuite(adm_frame);

/* Frames `data` as if it all arrived at once; writes the lines found, joined by '|', into out
 * ("!" for a too-long line). */
static void
frame_all(const char *data, size_t len, bool eof, char *out, size_t size)
{
    struct adm_framer fr = {0};
    size_t o = 0, items = 0;

    out[0] = '\0';
    for (int guard = 0; guard < 100000; guard++) {
        size_t line_len, consumed;
        enum adm_frame f = adm_frame_next(&fr, data, len, eof, &line_len, &consumed);

        cr_assert(le(sz, consumed, len));
        if (f == ADM_FRAME_LINE)
            o += (size_t)snprintf(out + o, size - o, "%s%.*s", items++ > 0 ? "|" : "",
                                  (int)line_len, data);
        else if (f == ADM_FRAME_TOO_LONG)
            o += (size_t)snprintf(out + o, size - o, "%s!", items++ > 0 ? "|" : "");
        data += consumed;
        len -= consumed;
        if (f == ADM_FRAME_MORE && consumed == 0)
            return;
    }
    cr_fail("the framer made no progress");
}

Test(adm_frame, lf_and_crlf_both_end_a_line)
{
    char out[256];

    frame_all("show weight\nset weight 5\r\nrollback\n", 36, false, out, sizeof(out));
    cr_assert(eq(str, out, "show weight|set weight 5|rollback"));
}

Test(adm_frame, a_partial_line_waits_for_more_bytes)
{
    struct adm_framer fr = {0};
    size_t line_len, consumed;

    cr_assert(
        eq(int, adm_frame_next(&fr, "show wei", 8, false, &line_len, &consumed), ADM_FRAME_MORE));
    cr_assert(eq(sz, consumed, (size_t)0));
}

Test(adm_frame, at_end_of_input_a_last_line_without_lf_still_counts)
{
    char out[256];

    frame_all("show weight\npromote", 19, true, out, sizeof(out));
    cr_assert(eq(str, out, "show weight|promote"));
}

Test(adm_frame, empty_lines_come_out_as_empty_lines)
{
    char out[256];

    frame_all("\n\r\nhelp\n", 8, false, out, sizeof(out));
    cr_assert(eq(str, out, "||help"));
}

Test(adm_frame, a_line_of_exactly_the_limit_passes)
{
    static char buf[ADM_LINE_MAX + 8];
    struct adm_framer fr = {0};
    size_t line_len, consumed;

    memset(buf, 'a', ADM_LINE_MAX);
    memcpy(buf + ADM_LINE_MAX, "\r\n", 2);
    cr_assert(eq(int, adm_frame_next(&fr, buf, ADM_LINE_MAX + 2, false, &line_len, &consumed),
                 ADM_FRAME_LINE));
    cr_assert(eq(sz, line_len, (size_t)ADM_LINE_MAX));
    cr_assert(eq(sz, consumed, (size_t)ADM_LINE_MAX + 2));
    buf[ADM_LINE_MAX] = '\n';
    cr_assert(eq(int, adm_frame_next(&fr, buf, ADM_LINE_MAX + 1, false, &line_len, &consumed),
                 ADM_FRAME_LINE));
    cr_assert(eq(sz, line_len, (size_t)ADM_LINE_MAX));
}

Test(adm_frame, one_byte_over_is_too_long_and_the_next_line_works)
{
    static char buf[ADM_LINE_MAX + 32];
    char out[64];

    memset(buf, 'a', ADM_LINE_MAX + 1);
    memcpy(buf + ADM_LINE_MAX + 1, "\nhelp\n", 6);
    frame_all(buf, ADM_LINE_MAX + 7, false, out, sizeof(out));
    cr_assert(eq(str, out, "!|help"));
}

Test(adm_frame, a_huge_line_is_reported_once_and_skipped)
{
    size_t big = 10 * ADM_LINE_MAX;
    char *buf = malloc(big + 16);
    char out[64];

    memset(buf, 'z', big);
    memcpy(buf + big, "\nshow weight\n", 13);
    frame_all(buf, big + 13, false, out, sizeof(out));
    cr_assert(eq(str, out, "!|show weight"));
    free(buf);
}

Test(adm_frame, a_long_line_in_pieces_is_skipped_across_calls)
{
    static char piece[ADM_FRAME_WINDOW];
    struct adm_framer fr = {0};
    size_t line_len, consumed;

    memset(piece, 'q', sizeof(piece));
    cr_assert(eq(int, adm_frame_next(&fr, piece, sizeof(piece), false, &line_len, &consumed),
                 ADM_FRAME_TOO_LONG));
    cr_assert(eq(sz, consumed, sizeof(piece)));
    /* The next piece belongs to the same line: dropped without a second error. */
    cr_assert(
        eq(int, adm_frame_next(&fr, piece, 100, false, &line_len, &consumed), ADM_FRAME_MORE));
    cr_assert(eq(sz, consumed, (size_t)100));
    cr_assert(
        eq(int, adm_frame_next(&fr, "qq\nhelp\n", 8, false, &line_len, &consumed), ADM_FRAME_MORE));
    cr_assert(eq(sz, consumed, (size_t)3));
    cr_assert(
        eq(int, adm_frame_next(&fr, "help\n", 5, false, &line_len, &consumed), ADM_FRAME_LINE));
    cr_assert(eq(sz, line_len, (size_t)4));
}

/* ------------------------------------------------------------------ words */

TestSuite(adm_args);

Test(adm_args, words_are_split_on_spaces_and_tabs)
{
    const char *line = "  set\tweight   25 ";
    struct adm_args a;

    cr_assert(eq(int, adm_args_split(line, strlen(line), &a), 0));
    cr_assert(eq(sz, a.n, (size_t)3));
    cr_assert(adm_span_is(a.v[0], "set"));
    cr_assert(adm_span_is(a.v[1], "weight"));
    cr_assert(adm_span_is(a.v[2], "25"));
}

Test(adm_args, a_blank_line_has_no_words)
{
    struct adm_args a;

    cr_assert(eq(int, adm_args_split(" \t ", 3, &a), 0));
    cr_assert(eq(sz, a.n, (size_t)0));
}

Test(adm_args, more_than_the_maximum_of_words_is_refused)
{
    char line[256] = "";
    struct adm_args a;

    for (int i = 0; i <= ADM_MAX_ARGS; i++)
        strcat(line, "w ");
    cr_assert(eq(int, adm_args_split(line, strlen(line), &a), -1));
}

Test(adm_args, the_rest_of_the_line_keeps_inner_blanks)
{
    const char *line = "which  header:X-Name=a  b c  ";
    struct adm_args a;
    struct adm_span rest;

    cr_assert(eq(int, adm_args_split(line, strlen(line), &a), 0));
    rest = adm_args_rest(&a, 1);
    cr_assert(eq(int, (int)rest.len, (int)strlen("header:X-Name=a  b c")));
    cr_assert(eq(int, memcmp(rest.ptr, "header:X-Name=a  b c", rest.len), 0));
    cr_assert(eq(sz, adm_args_rest(&a, 9).len, (size_t)0));
}

Test(adm_args, words_compare_without_regard_to_ascii_case)
{
    struct adm_span s = {"SHOW", 4};

    cr_assert(adm_span_is(s, "show"));
    cr_assert(not(adm_span_is(s, "sho")));
    cr_assert(not(adm_span_is(s, "shows")));
}

Test(adm_args, control_bytes_are_found_and_tabs_and_utf8_pass)
{
    cr_assert(eq(long, adm_line_bad_byte("show\tweight", 11), -1L));
    cr_assert(eq(long, adm_line_bad_byte("which caf\xc3\xa9", 11), -1L));
    cr_assert(eq(long, adm_line_bad_byte("show\0weight", 11), 4L));
    cr_assert(eq(long, adm_line_bad_byte("\x1b[A", 3), 0L));
    cr_assert(eq(long, adm_line_bad_byte("del\x7f", 4), 3L));
    cr_assert(eq(long, adm_line_bad_byte("a\rb", 3), 1L));
}

/* ------------------------------------------------------------------ weights */

TestSuite(adm_weight);

static unsigned
weight_ok(const char *s)
{
    unsigned bp = 99999;

    cr_assert(eq(int, adm_weight_parse(s, strlen(s), &bp), 0), "\"%s\" was refused", s);
    return bp;
}

Test(adm_weight, percents_with_up_to_two_decimals_are_read)
{
    cr_assert(eq(uint, weight_ok("0"), 0u));
    cr_assert(eq(uint, weight_ok("25"), 2500u));
    cr_assert(eq(uint, weight_ok("12.5"), 1250u));
    cr_assert(eq(uint, weight_ok("12.05"), 1205u));
    cr_assert(eq(uint, weight_ok("0.01"), 1u));
    cr_assert(eq(uint, weight_ok("99.99"), 9999u));
    cr_assert(eq(uint, weight_ok("100"), 10000u));
    cr_assert(eq(uint, weight_ok("100.00"), 10000u));
    cr_assert(eq(uint, weight_ok("007"), 700u));
}

Test(adm_weight, anything_but_a_number_from_0_to_100_is_refused)
{
    static const char *const bad[] = {"",     "12.345", "abc", "-1",  "+1",   "101",   "100.01",
                                      "1000", "1e2",    ".5",  "5.",  " 5",   "5 ",    "0x10",
                                      "5%",   "nan",    "1,5", "5..", "0005", "12.3.4"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        unsigned bp = 1234;

        cr_assert(eq(int, adm_weight_parse(bad[i], strlen(bad[i]), &bp), -1), "\"%s\" was taken",
                  bad[i]);
        cr_assert(eq(uint, bp, 1234u), "\"%s\" changed the output", bad[i]);
    }
}

Test(adm_weight, a_weight_is_written_with_two_decimals)
{
    char buf[ADM_WEIGHT_TEXT];

    cr_assert(eq(str, (char *)adm_weight_text(0, buf), "0.00"));
    cr_assert(eq(str, (char *)adm_weight_text(1250, buf), "12.50"));
    cr_assert(eq(str, (char *)adm_weight_text(7, buf), "0.07"));
    cr_assert(eq(str, (char *)adm_weight_text(10000, buf), "100.00"));
}

Test(adm_weight, every_weight_written_reads_back_the_same)
{
    char buf[ADM_WEIGHT_TEXT];

    for (unsigned bp = 0; bp <= 10000; bp++)
        cr_assert(eq(uint, weight_ok(adm_weight_text(bp, buf)), bp));
}

/* ------------------------------------------------------------------ quoting */

TestSuite(adm_quote);

Test(adm_quote, quotes_backslashes_and_control_bytes_are_escaped)
{
    char buf[ADM_QUOTE_TEXT];

    cr_assert(eq(str, (char *)adm_quote("a\"b\\c\n\0", 7, buf, sizeof(buf)),
                 "\"a\\\"b\\\\c\\x0a\\x00\""));
}

Test(adm_quote, long_input_is_cut_after_64_bytes_with_an_ellipsis)
{
    char in[200], buf[ADM_QUOTE_TEXT];

    memset(in, 'x', sizeof(in));
    adm_quote(in, sizeof(in), buf, sizeof(buf));
    cr_assert(eq(sz, strlen(buf), (size_t)(64 + 2 + 3)));
    cr_assert(eq(str, buf + 64 + 2, "..."));
}

Test(adm_quote, the_worst_input_still_fits_the_buffer)
{
    char in[64], buf[ADM_QUOTE_TEXT];

    memset(in, 0x01, sizeof(in));
    adm_quote(in, sizeof(in), buf, sizeof(buf));
    cr_assert(eq(sz, strlen(buf), (size_t)(64 * 4 + 2)));
}

/* ------------------------------------------------------------------ which KEY */

TestSuite(adm_key);

static struct adm_key
key_ok(const char *s)
{
    struct xf_err err = {{0}};
    struct adm_key k;

    cr_assert(eq(int, adm_key_parse(s, strlen(s), &k, &err), 0), "\"%s\": %s", s, err.msg);
    return k;
}

static bool
span_eq(struct adm_span sp, const char *s)
{
    return sp.len == strlen(s) && memcmp(sp.ptr, s, sp.len) == 0;
}

Test(adm_key, a_header_key_gives_its_name_and_value)
{
    struct adm_key k = key_ok("header:X-Consumer-ID=abc");

    cr_assert(not(k.bare));
    cr_assert(eq(int, k.kind, CFG_KEY_HEADER));
    cr_assert(span_eq(k.name, "X-Consumer-ID"));
    cr_assert(span_eq(k.value, "abc"));
}

Test(adm_key, the_value_is_everything_after_the_first_equals_sign)
{
    struct adm_key k = key_ok("cookie:session=a=b c");

    cr_assert(eq(int, k.kind, CFG_KEY_COOKIE));
    cr_assert(span_eq(k.name, "session"));
    cr_assert(span_eq(k.value, "a=b c"));
}

Test(adm_key, query_jwt_sub_ip_and_basic_user_are_read)
{
    cr_assert(eq(int, key_ok("query:user=7").kind, CFG_KEY_QUERY));
    cr_assert(eq(int, key_ok("jwt_sub:Authorization=alice").kind, CFG_KEY_JWT_SUB));
    cr_assert(eq(int, key_ok("ip=10.1.2.3").kind, CFG_KEY_IP));
    cr_assert(span_eq(key_ok("ip=10.1.2.3").value, "10.1.2.3"));
    cr_assert(eq(int, key_ok("basic_user=bob").kind, CFG_KEY_BASIC_USER));
}

Test(adm_key, anything_else_is_a_bare_value)
{
    struct adm_key k = key_ok("abc");

    cr_assert(k.bare);
    cr_assert(span_eq(k.value, "abc"));
    cr_assert(key_ok("10.1.2.3").bare);
    cr_assert(key_ok("Header:X=1").bare, "kinds are lower case, as in the config");
    cr_assert(key_ok("ipv6=::1").bare);
}

Test(adm_key, a_kind_without_name_or_value_is_refused)
{
    static const char *const bad[] = {
        "header:X-Key", "header:=abc", "cookie:", "header:X=", "ip=", ""};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct xf_err err = {{0}};
        struct adm_key k;

        cr_assert(eq(int, adm_key_parse(bad[i], strlen(bad[i]), &k, &err), -1), "\"%s\" taken",
                  bad[i]);
        cr_assert(ne(sz, strlen(err.msg), (size_t)0), "\"%s\": no message", bad[i]);
    }
}
