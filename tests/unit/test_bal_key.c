/* tests/unit/test_bal_key.c -- the split key of a request: every source, its byte rules, the
 * client address behind trusted proxies, the order of split.key and the fallback. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "balancer/bal.h"

#define MAX_KEYS 8
#define MAX_NETS 8
#define MAX_HDRS 32

/* A split section built by hand: names and networks live in the struct, nothing is owned. */
struct split_fx {
    struct cfg_split split;
    struct cfg_split_key keys[MAX_KEYS];
    char names[MAX_KEYS][64];
    struct cfg_cidr trusted[MAX_NETS];
};

static void
fx_key(struct split_fx *f, enum cfg_key_kind kind, const char *name)
{
    size_t i = f->split.n_keys++;

    cr_assert(lt(sz, i, (size_t)MAX_KEYS));
    f->keys[i].kind = kind;
    f->keys[i].name = NULL;
    if (name != NULL) {
        snprintf(f->names[i], sizeof(f->names[i]), "%s", name);
        f->keys[i].name = f->names[i];
    }
    f->split.keys = f->keys;
}

static void
fx_trust(struct split_fx *f, const char *cidr)
{
    struct xf_err err = {{0}};
    size_t i = f->split.n_trusted_proxies++;

    cr_assert(lt(sz, i, (size_t)MAX_NETS));
    cr_assert(eq(int, cfg_cidr_parse(cidr, &f->trusted[i], &err), 0), "%s: %s", cidr, err.msg);
    f->split.trusted_proxies = f->trusted;
}

/* A request: the peer as text (NULL: unknown), a target, and "Name: value" lines. */
struct rq {
    char text[16384];
    struct xf_hdr h[MAX_HDRS];
    struct bal_request req;
};

static void
rq_init(struct rq *r, const char *peer, const char *target, const char *headers)
{
    char *p = r->text;

    memset(&r->req, 0, sizeof(r->req));
    if (peer != NULL && inet_pton(AF_INET, peer, r->req.peer.bytes) == 1)
        r->req.peer.family = AF_INET;
    else if (peer != NULL && inet_pton(AF_INET6, peer, r->req.peer.bytes) == 1)
        r->req.peer.family = AF_INET6;
    else
        cr_assert(eq(ptr, (void *)peer, NULL), "bad peer %s", peer);
    r->req.target = target;
    r->req.target_len = target != NULL ? strlen(target) : 0;
    r->req.hdrs = r->h;
    cr_assert(lt(sz, strlen(headers), sizeof(r->text)));
    strcpy(r->text, headers);
    while (*p != '\0') {
        char *nl = strchr(p, '\n'), *colon = strchr(p, ':');
        char *end = nl != NULL ? nl : p + strlen(p);

        cr_assert(ne(ptr, colon, NULL));
        cr_assert(lt(sz, r->req.n_hdrs, (size_t)MAX_HDRS));
        r->h[r->req.n_hdrs].name = p;
        r->h[r->req.n_hdrs].name_len = (uint32_t)(colon - p);
        r->h[r->req.n_hdrs].value = colon + 1;
        r->h[r->req.n_hdrs].value_len = (uint32_t)(end - colon - 1);
        r->req.n_hdrs++;
        p = nl != NULL ? nl + 1 : end;
    }
}

static struct bal_key key; /* 8 KiB: kept off the stack */

/* Finds the key of the request and asserts its bytes (NUL-free) and the index of its source. */
static void
expect_key(const struct split_fx *f, const struct rq *r, const char *want, int want_index)
{
    int index = bal_key_find(&f->split, &r->req, NULL, &key);

    cr_assert(eq(int, index, want_index), "key index %d, expected %d (key \"%.*s\")", index,
              want_index, (int)key.len, key.ptr);
    cr_assert(eq(int, key.index, index));
    cr_assert(eq(sz, key.len, strlen(want)), "key \"%.*s\", expected \"%s\"", (int)key.len, key.ptr,
              want);
    cr_assert(eq(int, memcmp(key.ptr, want, key.len), 0), "key \"%.*s\", expected \"%s\"",
              (int)key.len, key.ptr, want);
}

/* base64url without padding, as JWTs carry it. */
static void
b64url(const char *in, size_t len, char *out, size_t cap)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;

    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | (unsigned char)in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            cr_assert(lt(sz, o + 1, cap));
            out[o++] = abc[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = abc[(acc << (6 - bits)) & 63];
    out[o] = '\0';
}

/* "Authorization: Bearer <header>.<payload>.sig" for a JSON payload. */
static const char *
bearer(const char *json)
{
    static char buf[14000];
    static char payload[13000];

    b64url(json, strlen(json), payload, sizeof(payload));
    snprintf(buf, sizeof(buf), "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.%s.c2lnbmF0dXJl",
             payload);
    return buf;
}

/* --- header --- */

Test(bal_key_header, a_header_name_matches_in_any_case_and_its_value_is_trimmed)
{
    struct split_fx f = {0};
    struct rq r;

    fx_key(&f, CFG_KEY_HEADER, "x-consumer-id");
    rq_init(&r, "192.0.2.1", "/", "Host: a\nX-CONSUMER-ID:   alice \t\nx-consumer-id: bob");
    expect_key(&f, &r, "alice", 0);
    rq_init(&r, "192.0.2.1", "/", "x-Consumer-Id:carol");
    expect_key(&f, &r, "carol", 0);
}

Test(bal_key_header, a_configured_name_in_capitals_still_matches)
{
    struct split_fx f = {0};
    struct rq r;

    fx_key(&f, CFG_KEY_HEADER, "X-Consumer-ID");
    rq_init(&r, "192.0.2.1", "/", "x-consumer-id: dave");
    expect_key(&f, &r, "dave", 0);
}

Test(bal_key_header, an_empty_header_counts_as_absent)
{
    struct split_fx f = {0};
    struct rq r;

    fx_key(&f, CFG_KEY_HEADER, "x-consumer-id");
    rq_init(&r, "192.0.2.1", "/", "X-Consumer-Id:   ");
    expect_key(&f, &r, "192.0.2.1", -1);
}

/* --- cookie --- */

Test(bal_key_cookie, a_cookie_is_found_among_several_in_one_header)
{
    struct split_fx f = {0};
    struct rq r;

    fx_key(&f, CFG_KEY_COOKIE, "sid");
    rq_init(&r, "192.0.2.1", "/", "Cookie: a=1; sid=s-42; b=2");
    expect_key(&f, &r, "s-42", 0);
    rq_init(&r, "192.0.2.1", "/", "Cookie:sid=first;sid=second");
    expect_key(&f, &r, "first", 0);
    rq_init(&r, "192.0.2.1", "/", "Cookie: a=1;b=2 ; sid = spaced ");
    expect_key(&f, &r, "spaced", 0);
}

Test(bal_key_cookie, a_cookie_is_found_in_a_later_cookie_header)
{
    struct split_fx f = {0};
    struct rq r;

    fx_key(&f, CFG_KEY_COOKIE, "sid");
    rq_init(&r, "192.0.2.1", "/", "Cookie: a=1; b=2\nHost: h\ncookie: c=3\nCOOKIE: sid=late; d=4");
    expect_key(&f, &r, "late", 0);
}

Test(bal_key_cookie, the_cookie_name_matches_exactly)
{
    struct split_fx f = {0};
    struct rq r;

    fx_key(&f, CFG_KEY_COOKIE, "sid");
    rq_init(&r, "192.0.2.1", "/", "Cookie: SID=upper; sid2=longer; xsid=prefixed; sid; =x");
    expect_key(&f, &r, "192.0.2.1", -1);
    rq_init(&r, "192.0.2.1", "/", "Cookie: SID=upper; sid=exact");
    expect_key(&f, &r, "exact", 0);
}

Test(bal_key_cookie, a_quoted_value_loses_its_quotes_and_an_empty_one_is_absent)
{
    struct split_fx f = {0};
    struct rq r;

    fx_key(&f, CFG_KEY_COOKIE, "sid");
    rq_init(&r, "192.0.2.1", "/", "Cookie: sid=\"quoted value\"");
    expect_key(&f, &r, "quoted value", 0);
    rq_init(&r, "192.0.2.1", "/", "Cookie: sid=\"\"; other=1");
    expect_key(&f, &r, "192.0.2.1", -1);
    rq_init(&r, "192.0.2.1", "/", "Cookie: sid=; sid=later");
    expect_key(&f, &r, "192.0.2.1", -1);
    rq_init(&r, "192.0.2.1", "/", "Cookie: sid=\"");
    expect_key(&f, &r, "\"", 0);
}

/* --- query --- */

Test(bal_key_query, the_first_matching_parameter_gives_its_raw_value)
{
    struct split_fx f = {0};
    struct rq r;

    fx_key(&f, CFG_KEY_QUERY, "tenant");
    rq_init(&r, "192.0.2.1", "/a?x=1&tenant=acme%20corp&tenant=other", "");
    expect_key(&f, &r, "acme%20corp", 0);
    rq_init(&r, "192.0.2.1", "/a?x=1;tenant=semi", "");
    expect_key(&f, &r, "semi", 0);
    rq_init(&r, "192.0.2.1", "/a?tenant=a=b#tenant=frag", "");
    expect_key(&f, &r, "a=b", 0);
    rq_init(&r, "192.0.2.1", "http://gw.example/a?tenant=abs", "");
    expect_key(&f, &r, "abs", 0);
}

Test(bal_key_query, no_match_or_an_empty_value_falls_back_to_the_client_address)
{
    struct split_fx f = {0};
    struct rq r;

    fx_key(&f, CFG_KEY_QUERY, "tenant");
    rq_init(&r, "192.0.2.1", "/a/tenant=no-query", "");
    expect_key(&f, &r, "192.0.2.1", -1);
    rq_init(&r, "192.0.2.1", "/a?Tenant=case&tenants=longer&xtenant=prefix&tenant", "");
    expect_key(&f, &r, "192.0.2.1", -1);
    rq_init(&r, "192.0.2.1", "/a?tenant=&tenant=second", "");
    expect_key(&f, &r, "192.0.2.1", -1);
    rq_init(&r, "192.0.2.1", "/a?x=1#tenant=fragment", "");
    expect_key(&f, &r, "192.0.2.1", -1);
    rq_init(&r, "192.0.2.1", "/a?", "");
    expect_key(&f, &r, "192.0.2.1", -1);
}

/* --- ip and X-Forwarded-For --- */

Test(bal_key_ip, an_untrusted_peer_is_the_client_whatever_x_forwarded_for_says)
{
    struct split_fx f = {0};
    struct rq r;

    fx_key(&f, CFG_KEY_IP, NULL);
    fx_trust(&f, "10.0.0.0/8");
    rq_init(&r, "192.0.2.1", "/", "X-Forwarded-For: 198.51.100.7");
    expect_key(&f, &r, "192.0.2.1", 0);
}

Test(bal_key_ip, without_trusted_proxies_x_forwarded_for_is_ignored)
{
    struct split_fx f = {0};
    struct rq r;

    fx_key(&f, CFG_KEY_IP, NULL);
    rq_init(&r, "10.0.0.1", "/", "X-Forwarded-For: 198.51.100.7");
    expect_key(&f, &r, "10.0.0.1", 0);
}

Test(bal_key_ip, a_trusted_peer_gives_the_right_most_untrusted_forwarded_address)
{
    struct split_fx f = {0};
    struct rq r;

    fx_key(&f, CFG_KEY_IP, NULL);
    fx_trust(&f, "10.0.0.0/8");
    fx_trust(&f, "172.16.0.0/12");
    rq_init(&r, "10.0.0.1", "/", "X-Forwarded-For: 203.0.113.9, 198.51.100.7, 172.16.5.5");
    expect_key(&f, &r, "198.51.100.7", 0);
    /* Several headers read as one list, the last header last. */
    rq_init(&r, "10.0.0.1", "/",
            "X-Forwarded-For: 203.0.113.9\nHost: h\nx-forwarded-for: 198.51.100.8, 10.1.1.1\n"
            "X-FORWARDED-FOR: 10.2.2.2");
    expect_key(&f, &r, "198.51.100.8", 0);
    /* A header whose addresses are all trusted passes the walk to the header before it. */
    rq_init(&r, "10.0.0.1", "/",
            "X-Forwarded-For: 203.0.113.10\nX-Forwarded-For: 10.3.3.3,  , 172.20.0.1,");
    expect_key(&f, &r, "203.0.113.10", 0);
}

Test(bal_key_ip, when_every_forwarded_address_is_trusted_the_left_most_is_the_client)
{
    struct split_fx f = {0};
    struct rq r;

    fx_key(&f, CFG_KEY_IP, NULL);
    fx_trust(&f, "10.0.0.0/8");
    rq_init(&r, "10.0.0.1", "/", "X-Forwarded-For: 10.9.9.9, 10.8.8.8\nX-Forwarded-For: 10.7.7.7");
    expect_key(&f, &r, "10.9.9.9", 0);
    rq_init(&r, "10.0.0.1", "/", "Host: no-xff");
    expect_key(&f, &r, "10.0.0.1", 0);
}

Test(bal_key_ip, an_unparsable_element_stops_the_walk_at_the_last_address_read)
{
    struct split_fx f = {0};
    struct rq r;

    fx_key(&f, CFG_KEY_IP, NULL);
    fx_trust(&f, "10.0.0.0/8");
    rq_init(&r, "10.0.0.1", "/", "X-Forwarded-For: 203.0.113.9, unknown, 10.4.4.4");
    expect_key(&f, &r, "10.4.4.4", 0);
    rq_init(&r, "10.0.0.1", "/", "X-Forwarded-For: 203.0.113.9, 300.1.1.1");
    expect_key(&f, &r, "10.0.0.1", 0);
    rq_init(&r, "10.0.0.1", "/", "X-Forwarded-For: 203.0.113.9, 10.5.5.5:99999");
    expect_key(&f, &r, "10.0.0.1", 0);
}

Test(bal_key_ip, ipv6_addresses_are_written_in_canonical_form_and_ports_are_dropped)
{
    struct split_fx f = {0};
    struct rq r;

    fx_key(&f, CFG_KEY_IP, NULL);
    fx_trust(&f, "::1/128");
    fx_trust(&f, "2001:db8:ffff::/48");
    rq_init(&r, "::1", "/", "X-Forwarded-For: 2001:DB8:0:0:0:0:0:1, 2001:db8:ffff::7");
    expect_key(&f, &r, "2001:db8::1", 0);
    rq_init(&r, "::1", "/", "X-Forwarded-For: [2001:db8::2]:443");
    expect_key(&f, &r, "2001:db8::2", 0);
    rq_init(&r, "::1", "/", "X-Forwarded-For: [2001:db8::3]");
    expect_key(&f, &r, "2001:db8::3", 0);
    rq_init(&r, "::1", "/", "X-Forwarded-For: 192.0.2.44:4711");
    expect_key(&f, &r, "192.0.2.44", 0);
    rq_init(&r, "2001:db8:1:0::5", "/", "X-Forwarded-For: 192.0.2.45");
    expect_key(&f, &r, "2001:db8:1::5", 0);
}

Test(bal_key_ip, an_ipv4_mapped_peer_is_read_as_ipv4)
{
    struct split_fx f = {0};
    struct rq r;

    fx_key(&f, CFG_KEY_IP, NULL);
    fx_trust(&f, "127.0.0.0/8");
    rq_init(&r, "::ffff:192.0.2.9", "/", "X-Forwarded-For: 198.51.100.1");
    expect_key(&f, &r, "192.0.2.9", 0);
    rq_init(&r, "::ffff:127.0.0.1", "/", "X-Forwarded-For: ::ffff:198.51.100.2");
    expect_key(&f, &r, "198.51.100.2", 0);
}

Test(bal_key_ip, networks_match_on_their_prefix_bits_only)
{
    struct split_fx f = {0};
    struct bal_addr a;

    fx_trust(&f, "192.0.2.128/25");
    fx_trust(&f, "2001:db8::/33");
    cr_assert(eq(int, bal_addr_parse("192.0.2.200", 11, &a), 0));
    cr_assert(bal_addr_in(&a, f.trusted, f.split.n_trusted_proxies));
    cr_assert(eq(int, bal_addr_parse("192.0.2.127", 11, &a), 0));
    cr_assert(not(bal_addr_in(&a, f.trusted, f.split.n_trusted_proxies)));
    cr_assert(eq(int, bal_addr_parse("2001:db8:7fff::1", 16, &a), 0));
    cr_assert(bal_addr_in(&a, f.trusted, f.split.n_trusted_proxies));
    cr_assert(eq(int, bal_addr_parse("2001:db8:8000::1", 16, &a), 0));
    cr_assert(not(bal_addr_in(&a, f.trusted, f.split.n_trusted_proxies)));
    cr_assert(eq(int, bal_addr_parse(" [::1", 5, &a), -1));
    cr_assert(eq(int, bal_addr_parse("1.2.3.4:", 8, &a), -1));
    cr_assert(eq(int, bal_addr_parse("", 0, &a), -1));
}

/* --- jwt_sub --- */

Test(bal_key_jwt, the_sub_claim_of_a_bearer_token_is_the_key)
{
    struct split_fx f = {0};
    struct rq r;

    fx_key(&f, CFG_KEY_JWT_SUB, "authorization");
    rq_init(&r, "192.0.2.1", "/", bearer("{\"iss\":\"idp\",\"sub\":\"user-1234\",\"exp\":1}"));
    expect_key(&f, &r, "user-1234", 0);
    rq_init(&r, "192.0.2.1", "/",
            "authorization:   bEaReR \t eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.");
    expect_key(&f, &r, "x", 0);
}

Test(bal_key_jwt, only_a_top_level_sub_counts_and_escapes_are_decoded)
{
    struct split_fx f = {0};
    struct rq r;

    fx_key(&f, CFG_KEY_JWT_SUB, "authorization");
    rq_init(&r, "192.0.2.1", "/",
            bearer(" { \"ctx\" : {\"sub\":\"inner\",\"l\":[1,{\"sub\":2},\"]}\"]} , \"n\":-1.5e3,"
                   "\"t\":true,\"s\\\"ub\":\"no\", \"sub\" : \"outer\" }"));
    expect_key(&f, &r, "outer", 0);
    rq_init(&r, "192.0.2.1", "/",
            bearer("{\"\\u0073ub\":\"caf\\u00e9 \\\"q\\\" \\ud83d\\ude00\"}"));
    expect_key(&f, &r, "caf\xc3\xa9 \"q\" \xf0\x9f\x98\x80", 0);
    rq_init(&r, "192.0.2.1", "/", bearer("{\"sub\":\"first\",\"sub\":\"second\"}"));
    expect_key(&f, &r, "first", 0);
}

Test(bal_key_jwt, a_malformed_token_leaves_the_key_absent)
{
    static const char *const bad[] = {
        "Authorization: Bearer eyJhbGciOiJub25lIn0.eyJzdWIi*iJ4In0.sig",  /* not base64url */
        "Authorization: Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0+.sig", /* standard alphabet */
        "Authorization: Bearer eyJhbGciOiJub25lIn0.e.sig",                /* 1 char mod 4 */
        "Authorization: Bearer eyJhbGciOiJub25lIn0..sig",                 /* empty payload */
        "Authorization: Bearer eyJzdWIiOiJ4In0",                          /* one part */
        "Authorization: Bearer a.eyJzdWIiOiJ4In0",                        /* two parts */
        "Authorization: Bearer a.eyJzdWIiOiJ4In0.b.c",                    /* four parts */
        "Authorization: Basic eyJzdWIiOiJ4In0",                           /* not bearer */
        "Authorization: Bearer",                                          /* no token */
        "Authorization: Bearereyx.eyJzdWIiOiJ4In0.sig",                   /* no blank */
    };
    struct split_fx f = {0};
    struct rq r;

    fx_key(&f, CFG_KEY_JWT_SUB, "authorization");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rq_init(&r, "192.0.2.1", "/", bad[i]);
        expect_key(&f, &r, "192.0.2.1", -1);
    }
}

Test(bal_key_jwt, a_payload_without_a_string_sub_leaves_the_key_absent)
{
    static const char *const payloads[] = {
        "{\"iss\":\"idp\"}",
        "{\"sub\":42}",
        "{\"sub\":null}",
        "{\"sub\":[\"a\"]}",
        "{\"sub\":\"\"}",
        "{\"sub\":\"a\\qb\"}",
        "{\"sub\":\"\\ude00\"}",
        "{\"sub\":\"unterminated}",
        "[\"sub\",\"x\"]",
        "{\"a\":{\"sub\":\"x\"}",
        "{\"a\":1 \"sub\":\"x\"}",
        "not json",
        "",
    };
    struct split_fx f = {0};
    struct rq r;

    fx_key(&f, CFG_KEY_JWT_SUB, "authorization");
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        rq_init(&r, "192.0.2.1", "/", bearer(payloads[i]));
        expect_key(&f, &r, "192.0.2.1", -1);
    }
}

Test(bal_key_jwt, a_payload_too_large_for_the_buffer_is_absent)
{
    static char json[BAL_KEY_BUF + 64];
    struct split_fx f = {0};
    struct rq r;
    int n = snprintf(json, sizeof(json), "{\"sub\":\"big\",\"pad\":\"");

    memset(json + n, 'a', BAL_KEY_BUF - (size_t)n - 2);
    strcpy(json + BAL_KEY_BUF - 2, "\"}");
    cr_assert(eq(sz, strlen(json), (size_t)BAL_KEY_BUF));
    fx_key(&f, CFG_KEY_JWT_SUB, "authorization");
    rq_init(&r, "192.0.2.1", "/", bearer(json));
    expect_key(&f, &r, "big", 0);
    strcpy(json + BAL_KEY_BUF - 2, "a\"}");
    rq_init(&r, "192.0.2.1", "/", bearer(json));
    expect_key(&f, &r, "192.0.2.1", -1);
}

Test(bal_key_jwt, the_token_is_read_from_the_configured_header)
{
    struct split_fx f = {0};
    struct rq r;

    fx_key(&f, CFG_KEY_JWT_SUB, "x-id-token");
    rq_init(&r, "192.0.2.1", "/",
            "Authorization: Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.\n"
            "X-Id-Token: Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJpZCJ9.");
    expect_key(&f, &r, "id", 0);
}

/* --- basic_user --- */

Test(bal_key_basic, the_user_of_basic_credentials_is_the_key)
{
    struct split_fx f = {0};
    struct rq r;

    fx_key(&f, CFG_KEY_BASIC_USER, NULL);
    rq_init(&r, "192.0.2.1", "/", "Authorization: Basic YWxpY2U6c2VjcmV0"); /* alice:secret */
    expect_key(&f, &r, "alice", 0);
    rq_init(&r, "192.0.2.1", "/", "authorization: basic Ym9iOnA6dzo="); /* bob:p:w: */
    expect_key(&f, &r, "bob", 0);
    rq_init(&r, "192.0.2.1", "/", "Authorization: BASIC Y2Fyb2w6"); /* carol: */
    expect_key(&f, &r, "carol", 0);
}

Test(bal_key_basic, credentials_without_a_user_are_absent)
{
    static const char *const bad[] = {
        "Authorization: Basic YWxpY2U=",            /* alice: no colon */
        "Authorization: Basic OnNlY3JldA==",        /* :secret: empty user */
        "Authorization: Basic YWxp*2U6cw==",        /* not base64 */
        "Authorization: Basic YWxpY2U6c2VjcmV0===", /* three pads */
        "Authorization: Bearer YWxpY2U6c2VjcmV0",
        "Authorization: Basic",
    };
    struct split_fx f = {0};
    struct rq r;

    fx_key(&f, CFG_KEY_BASIC_USER, NULL);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rq_init(&r, "192.0.2.1", "/", bad[i]);
        expect_key(&f, &r, "192.0.2.1", -1);
    }
}

/* --- random, order, fallback --- */

Test(bal_key_random, a_random_key_changes_on_every_request_and_advances_the_state)
{
    struct split_fx f = {0};
    struct bal_state st = {0};
    struct rq r;
    char first[8];
    uint64_t rng;

    fx_key(&f, CFG_KEY_RANDOM, NULL);
    rq_init(&r, "192.0.2.1", "/", "");
    cr_assert(eq(int, bal_key_find(&f.split, &r.req, &st, &key), 0));
    cr_assert(eq(sz, key.len, (size_t)8));
    memcpy(first, key.ptr, 8);
    rng = st.rng;
    cr_assert(ne(u64, rng, (uint64_t)0));
    cr_assert(eq(int, bal_key_find(&f.split, &r.req, &st, &key), 0));
    cr_assert(ne(int, memcmp(first, key.ptr, 8), 0));
    cr_assert(ne(u64, st.rng, rng));
}

Test(bal_key_order, the_first_present_key_of_the_list_wins)
{
    struct split_fx f = {0};
    struct rq r;

    fx_key(&f, CFG_KEY_COOKIE, "sid");
    fx_key(&f, CFG_KEY_HEADER, "x-user");
    fx_key(&f, CFG_KEY_QUERY, "u");
    rq_init(&r, "192.0.2.1", "/?u=query", "X-User: header\nCookie: sid=cookie");
    expect_key(&f, &r, "cookie", 0);
    rq_init(&r, "192.0.2.1", "/?u=query", "X-User: header\nCookie: other=1");
    expect_key(&f, &r, "header", 1);
    rq_init(&r, "192.0.2.1", "/?u=query", "X-Userx: h");
    expect_key(&f, &r, "query", 2);
    rq_init(&r, "192.0.2.1", "/?v=query", "");
    expect_key(&f, &r, "192.0.2.1", -1);
}

Test(bal_key_order, a_missing_key_falls_back_to_the_client_address_behind_trusted_proxies)
{
    struct split_fx f = {0};
    struct rq r;

    fx_key(&f, CFG_KEY_HEADER, "x-user");
    fx_trust(&f, "10.0.0.0/8");
    rq_init(&r, "10.0.0.1", "/", "X-Forwarded-For: 198.51.100.3");
    expect_key(&f, &r, "198.51.100.3", -1);
    rq_init(&r, NULL, "/", "Host: a");
    expect_key(&f, &r, "", -1);
}

Test(bal_key_order, an_ip_key_of_an_unknown_peer_is_absent)
{
    struct split_fx f = {0};
    struct rq r;

    fx_key(&f, CFG_KEY_IP, NULL);
    fx_key(&f, CFG_KEY_HEADER, "x-user");
    rq_init(&r, NULL, "/", "X-User: u");
    expect_key(&f, &r, "u", 1);
}

Test(bal_key_ip, ipv4_text_is_byte_for_byte_what_inet_ntop_writes)
{
    struct bal_addr a = {.family = AF_INET};
    char mine[BAL_ADDR_TEXT], theirs[INET6_ADDRSTRLEN];
    uint64_t x = 88172645463325252ull;

    for (unsigned i = 0; i < 256 * 4 + 100000; i++) {
        if (i < 256 * 4) {
            memset(a.bytes, (int)(i * 37 % 256), 4);
            a.bytes[i / 256] = (uint8_t)(i % 256);
        } else {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            memcpy(a.bytes, &x, 4);
        }
        cr_assert(ne(ptr, (void *)inet_ntop(AF_INET, a.bytes, theirs, sizeof(theirs)), NULL));
        cr_assert(eq(sz, bal_addr_text(&a, mine, sizeof(mine)), strlen(theirs)));
        cr_assert(eq(str, mine, theirs));
    }
}

Test(bal_key_cert, each_cert_key_reads_its_field_and_a_client_without_one_falls_through)
{
    struct split_fx f = {0};
    struct rq r;

    fx_key(&f, CFG_KEY_CERT, "san");
    fx_key(&f, CFG_KEY_CERT, "subject");
    rq_init(&r, "192.0.2.1", "/", "");
    r.req.cert[BAL_CERT_SUBJECT] = "O=Acme,CN=alice";
    r.req.cert_len[BAL_CERT_SUBJECT] = strlen("O=Acme,CN=alice");
    r.req.cert[BAL_CERT_FINGERPRINT] = "3a56dc01";
    r.req.cert_len[BAL_CERT_FINGERPRINT] = 8;
    expect_key(&f, &r, "O=Acme,CN=alice", 1); /* no SAN: the next key */
    r.req.cert[BAL_CERT_SAN] = "alice@acme.test";
    r.req.cert_len[BAL_CERT_SAN] = strlen("alice@acme.test");
    expect_key(&f, &r, "alice@acme.test", 0);
    fx_key(&f, CFG_KEY_CERT, "fingerprint");
    f.keys[0] = f.keys[2];
    expect_key(&f, &r, "3a56dc01", 0);
    rq_init(&r, "192.0.2.1", "/", ""); /* no certificate at all: the client address */
    expect_key(&f, &r, "192.0.2.1", -1);
}
