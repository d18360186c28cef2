/* tests/unit/test_px_http.c -- the header checks and rewriting rules of the data path. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <string.h>

#include "proxy/px.h"

static struct xf_hdr
hdr(const char *name, const char *value)
{
    struct xf_hdr h = {.name = name,
                       .value = value,
                       .name_len = (uint32_t)strlen(name),
                       .value_len = (uint32_t)strlen(value)};
    return h;
}

Test(px_http_value, accepts_visible_text_spaces_and_tabs)
{
    const char v[] = "text/html; q=0.9,\t\x80\xff utf-8";
    cr_assert(px_http_value_ok(v, sizeof(v) - 1));
}

Test(px_http_value, refuses_cr_lf_nul_del_and_other_controls)
{
    const char *bad[] = {"a\rb", "a\nb", "a\x01z", "a\x7fz", "a\x1b[0m"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_not(px_http_value_ok(bad[i], strlen(bad[i])), "accepted %zu", i);
    cr_assert_not(px_http_value_ok("a\0b", 3));
}

Test(px_http_fold, detects_a_value_on_a_continuation_line)
{
    const char folded[] = "X: a\r\n b";
    const char tab_folded[] = "X:\r\n\tchunked";
    const char plain[] = "X:   b";
    cr_assert(px_http_is_fold(strchr(folded, 'b')));
    cr_assert(px_http_is_fold(strchr(tab_folded, 'c')));
    cr_assert_not(px_http_is_fold(strchr(plain, 'b')));
}

Test(px_http_token, accepts_tchars_only)
{
    cr_assert(px_http_token_ok("X-Consumer-ID", 13));
    cr_assert(px_http_token_ok("a!#$%&'*+-.^_`|~9", 17));
    cr_assert_not(px_http_token_ok("", 0));
    cr_assert_not(px_http_token_ok("X A", 3));
    cr_assert_not(px_http_token_ok("X:A", 3));
    cr_assert_not(px_http_token_ok("X\"", 2));
}

Test(px_http_host, accepts_names_addresses_and_ports)
{
    const char *good[] = {"example.com", "example.com:8080", "10.0.0.1", "10.0.0.1:80",
                          "[::1]",       "[::1]:8000",       "a-b_c~d",  "host:"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        cr_assert(px_http_host_ok(good[i], strlen(good[i])), "refused %s", good[i]);
}

Test(px_http_host, refuses_spaces_paths_userinfo_and_bad_ports)
{
    const char *bad[] = {"",     "a b", "host/path", "user@host", "host:80a", "host:123456",
                         "[::1", "[]",  ":80",       "[::g]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_not(px_http_host_ok(bad[i], strlen(bad[i])), "accepted \"%s\"", bad[i]);
}

Test(px_http_hop, names_every_hop_by_hop_and_framing_header_in_any_case)
{
    const char *hop[] = {"Connection", "KEEP-ALIVE", "proxy-connection",  "TE",
                         "Trailer",    "Upgrade",    "Transfer-Encoding", "content-length"};
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        cr_assert(px_http_is_hop(hop[i], strlen(hop[i])), "%s", hop[i]);
    cr_assert_not(px_http_is_hop("Trailers", 8));
    cr_assert_not(px_http_is_hop("X-Upgrade", 9));
    cr_assert_not(px_http_is_hop("Host", 4));
}

Test(px_http_list, finds_tokens_in_comma_lists_case_insensitively)
{
    cr_assert(px_http_list_has("keep-alive, Close", 17, "close"));
    cr_assert(px_http_list_has(" ,close ,", 9, "close"));
    cr_assert_not(px_http_list_has("closed", 6, "close"));
    cr_assert_not(px_http_list_has("", 0, "close"));
}

Test(px_http_list, connection_names_the_headers_to_drop)
{
    struct xf_hdr c1 = hdr("Connection", "X-Hop, keep-alive");
    struct xf_hdr c2 = hdr("Connection", "x-other");
    const struct xf_hdr *conn[] = {&c1, &c2};
    cr_assert(px_http_conn_names(conn, 2, "x-hop", 5));
    cr_assert(px_http_conn_names(conn, 2, "X-Other", 7));
    cr_assert_not(px_http_conn_names(conn, 2, "X-Hopper", 8));
}

static enum px_te
te_of(const char *a, const char *b)
{
    struct xf_hdr h1 = hdr("Transfer-Encoding", a), h2 = hdr("Transfer-Encoding", b ? b : "");
    const struct xf_hdr *te[] = {&h1, &h2};
    return px_http_te_classify(te, b ? 2 : 1);
}

Test(px_http_te, chunked_alone_is_chunked_in_any_case)
{
    cr_assert(eq(int, te_of("chunked", NULL), PX_TE_CHUNKED));
    cr_assert(eq(int, te_of("Chunked", NULL), PX_TE_CHUNKED));
    cr_assert(eq(int, te_of(" chunked ", NULL), PX_TE_CHUNKED));
}

Test(px_http_te, chunked_not_last_or_twice_or_malformed_is_bad)
{
    cr_assert(eq(int, te_of("chunked, gzip", NULL), PX_TE_BAD));
    cr_assert(eq(int, te_of("chunked, chunked", NULL), PX_TE_BAD));
    cr_assert(eq(int, te_of("chunked", "chunked"), PX_TE_BAD));
    cr_assert(eq(int, te_of("gzip", NULL), PX_TE_BAD));
    cr_assert(eq(int, te_of("chunked,", NULL), PX_TE_BAD));
    cr_assert(eq(int, te_of("", NULL), PX_TE_BAD));
    cr_assert(eq(int, te_of("ch unked", NULL), PX_TE_BAD));
}

Test(px_http_te, chunked_with_a_parameter_is_bad)
{
    cr_assert(eq(int, te_of("chunked;x=1", NULL), PX_TE_BAD));
    cr_assert(eq(int, te_of("chunked ;x=1", NULL), PX_TE_BAD));
    cr_assert(eq(int, te_of("gzip, chunked;q=1", NULL), PX_TE_BAD));
    cr_assert(eq(int, te_of("gzip;q=1, chunked", NULL), PX_TE_UNKNOWN));
}

Test(px_http_te, other_codings_before_chunked_are_unknown)
{
    cr_assert(eq(int, te_of("gzip, chunked", NULL), PX_TE_UNKNOWN));
    cr_assert(eq(int, te_of("gzip", "chunked"), PX_TE_UNKNOWN));
}

static int
cl_of(const char *a, const char *b, uint64_t *out)
{
    struct xf_hdr h1 = hdr("Content-Length", a), h2 = hdr("Content-Length", b ? b : "");
    const struct xf_hdr *cl[] = {&h1, &h2};
    return px_http_cl_parse(cl, b ? 2 : 1, out);
}

Test(px_http_cl, parses_digits_and_identical_repeats)
{
    uint64_t v = 1;
    cr_assert(eq(int, cl_of("0", NULL, &v), 0));
    cr_assert(eq(u64, v, 0));
    cr_assert(eq(int, cl_of("1073741824", NULL, &v), 0));
    cr_assert(eq(u64, v, 1073741824u));
    cr_assert(eq(int, cl_of("5, 5", NULL, &v), 0));
    cr_assert(eq(u64, v, 5));
    cr_assert(eq(int, cl_of("5", "5", &v), 0));
}

Test(px_http_cl, refuses_differing_signed_empty_and_huge_values)
{
    uint64_t v;
    cr_assert(eq(int, cl_of("5", "6", &v), -1));
    cr_assert(eq(int, cl_of("5, 6", NULL, &v), -1));
    cr_assert(eq(int, cl_of("-1", NULL, &v), -1));
    cr_assert(eq(int, cl_of("+1", NULL, &v), -1));
    cr_assert(eq(int, cl_of("", NULL, &v), -1));
    cr_assert(eq(int, cl_of("0x10", NULL, &v), -1));
    cr_assert(eq(int, cl_of("99999999999999999999", NULL, &v), -1));
    cr_assert(eq(int, cl_of("5,", NULL, &v), -1));
}

Test(px_http_reason, names_the_statuses_the_proxy_sends)
{
    cr_assert(eq(str, (char *)px_http_reason(502), "Bad Gateway"));
    cr_assert(eq(str, (char *)px_http_reason(431), "Request Header Fields Too Large"));
    cr_assert(eq(str, (char *)px_http_reason(505), "HTTP Version Not Supported"));
}
