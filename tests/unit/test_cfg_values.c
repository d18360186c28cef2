/* tests/unit/test_cfg_values.c -- the public value parsers: durations, addresses, networks. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "config/cfg.h"

/* Parses `text` and asserts it gives `want_ms`. */
static void
expect_duration(const char *text, unsigned want_ms)
{
    struct xf_err err = {{0}};
    unsigned ms = 12345;

    cr_assert(eq(int, cfg_duration_parse(text, &ms, &err), 0), "\"%s\" rejected: %s", text,
              err.msg);
    cr_assert(eq(uint, ms, want_ms), "\"%s\"", text);
}

/* Asserts that `text` is rejected, leaves the output alone and explains with `fragment`. */
static void
expect_bad_duration(const char *text, const char *fragment)
{
    struct xf_err err = {{0}};
    unsigned ms = 12345;

    cr_assert(eq(int, cfg_duration_parse(text, &ms, &err), -1), "\"%s\" accepted as %u", text, ms);
    cr_assert(eq(uint, ms, 12345));
    cr_assert(not(eq(ptr, strstr(err.msg, fragment), NULL)), "\"%s\": message \"%s\" lacks \"%s\"",
              text, err.msg, fragment);
}

Test(cfg_duration, reads_each_unit)
{
    expect_duration("500ms", 500);
    expect_duration("3s", 3000);
    expect_duration("1m", 60000);
    expect_duration("1h", 3600000);
}

Test(cfg_duration, reads_a_bare_number_as_seconds)
{
    expect_duration("10", 10000);
    expect_duration("0", 0);
}

Test(cfg_duration, adds_up_combined_units)
{
    expect_duration("1m30s", 90000);
    expect_duration("1h2m3s4ms", 3723004);
    expect_duration("2s500ms", 2500);
    expect_duration("24h", 86400000);
}

Test(cfg_duration, tells_minutes_from_milliseconds)
{
    expect_duration("5m", 300000);
    expect_duration("5ms", 5);
    expect_duration("1m5ms", 60005);
}

Test(cfg_duration, rejects_an_unknown_unit_with_examples)
{
    expect_bad_duration("3x", "expected a duration such as 500ms, 3s, 1m, 1h or 1m30s, got \"3x\"");
    expect_bad_duration("3sec", "got \"3sec\"");
    expect_bad_duration("3S", "got \"3S\"");
}

Test(cfg_duration, rejects_text_that_is_not_a_number_and_unit)
{
    expect_bad_duration("", "got \"\"");
    expect_bad_duration("s", "got \"s\"");
    expect_bad_duration("-1s", "got \"-1s\"");
    expect_bad_duration("1.5s", "got \"1.5s\"");
    expect_bad_duration(" 3s", "got \" 3s\"");
    expect_bad_duration("3s ", "got \"3s \"");
}

Test(cfg_duration, rejects_a_bare_number_after_a_unit)
{
    expect_bad_duration("1m30", "got \"1m30\"");
}

Test(cfg_duration, rejects_units_out_of_order_or_repeated)
{
    expect_bad_duration("30s1m", "got \"30s1m\"");
    expect_bad_duration("1s1s", "got \"1s1s\"");
    expect_bad_duration("5ms1s", "got \"5ms1s\"");
}

Test(cfg_duration, rejects_what_does_not_fit_in_milliseconds)
{
    expect_duration("4294967295ms", 4294967295u);
    expect_bad_duration("4294967296ms", "expected a duration of at most 4294967295ms");
    expect_bad_duration("1194h", "at most");
    expect_bad_duration("99999999999999999999", "at most");
    expect_bad_duration("1193h3m", "at most");
}

Test(cfg_duration, accepts_a_null_error_buffer)
{
    unsigned ms = 0;

    cr_assert(eq(int, cfg_duration_parse("3x", &ms, NULL), -1));
    cr_assert(eq(int, cfg_duration_parse("3s", &ms, NULL), 0));
    cr_assert(eq(uint, ms, 3000));
}

/* Parses `text`, asserts success and returns the address by value. */
static struct cfg_addr
addr_ok(const char *text)
{
    struct xf_err err = {{0}};
    struct cfg_addr a;

    cr_assert(eq(int, cfg_addr_parse(text, &a, &err), 0), "\"%s\" rejected: %s", text, err.msg);
    cr_assert(eq(str, a.text, (char *)text));
    return a;
}

/* Asserts that `text` is rejected with a message holding `fragment`. */
static void
expect_bad_addr(const char *text, const char *fragment)
{
    struct xf_err err = {{0}};
    struct cfg_addr a;

    cr_assert(eq(int, cfg_addr_parse(text, &a, &err), -1), "\"%s\" accepted", text);
    cr_assert(not(eq(ptr, strstr(err.msg, fragment), NULL)), "\"%s\": message \"%s\" lacks \"%s\"",
              text, err.msg, fragment);
}

Test(cfg_addr, resolves_an_ipv4_literal)
{
    struct cfg_addr a = addr_ok("10.1.2.3:8080");
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&a.sa;

    cr_assert(eq(int, sin->sin_family, AF_INET));
    cr_assert(eq(u16, ntohs(sin->sin_port), 8080));
    cr_assert(eq(u32, ntohl(sin->sin_addr.s_addr), 0x0a010203u));
    cr_assert(eq(uint, a.sa_len, (unsigned)sizeof(struct sockaddr_in)));
}

Test(cfg_addr, resolves_an_ipv6_literal_in_brackets)
{
    struct cfg_addr a = addr_ok("[::1]:8000");
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a.sa;

    cr_assert(eq(int, sin6->sin6_family, AF_INET6));
    cr_assert(eq(u16, ntohs(sin6->sin6_port), 8000));
    cr_assert(eq(int, IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr) != 0, 1));
    cr_assert(eq(uint, a.sa_len, (unsigned)sizeof(struct sockaddr_in6)));
}

Test(cfg_addr, resolves_a_full_ipv6_literal)
{
    struct cfg_addr a = addr_ok("[2001:db8::10]:443");
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a.sa;
    struct in6_addr want;

    cr_assert(eq(int, inet_pton(AF_INET6, "2001:db8::10", &want), 1));
    cr_assert(eq(int, sin6->sin6_family, AF_INET6));
    cr_assert(eq(u16, ntohs(sin6->sin6_port), 443));
    cr_assert(eq(int, memcmp(&sin6->sin6_addr, &want, sizeof(want)), 0));
}

Test(cfg_addr, resolves_localhost_to_a_loopback_address)
{
    struct cfg_addr a = addr_ok("localhost:8000");

    if (a.sa.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&a.sa;

        cr_assert(eq(u32, ntohl(sin->sin_addr.s_addr) >> 24, 127u));
        cr_assert(eq(u16, ntohs(sin->sin_port), 8000));
        cr_assert(eq(uint, a.sa_len, (unsigned)sizeof(struct sockaddr_in)));
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a.sa;

        cr_assert(eq(int, a.sa.ss_family, AF_INET6));
        cr_assert(eq(int, IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr) != 0, 1));
        cr_assert(eq(u16, ntohs(sin6->sin6_port), 8000));
        cr_assert(eq(uint, a.sa_len, (unsigned)sizeof(struct sockaddr_in6)));
    }
}

Test(cfg_addr, accepts_the_extreme_ports)
{
    struct cfg_addr a = addr_ok("127.0.0.1:65535");

    cr_assert(eq(u16, ntohs(((const struct sockaddr_in *)&a.sa)->sin_port), 65535));
    a = addr_ok("127.0.0.1:1");
    cr_assert(eq(u16, ntohs(((const struct sockaddr_in *)&a.sa)->sin_port), 1));
}

Test(cfg_addr, rejects_an_address_without_a_port)
{
    expect_bad_addr("10.0.0.1",
                    "expected host:port, as in 10.0.0.1:8000, got \"10.0.0.1\" (no port)");
    expect_bad_addr("10.0.0.1:", "expected a port from 1 to 65535, got \"10.0.0.1:\"");
    expect_bad_addr("[::1]", "expected ':' and a port after ']'");
}

Test(cfg_addr, rejects_a_port_out_of_range)
{
    expect_bad_addr("10.0.0.1:0", "expected a port from 1 to 65535, got \"10.0.0.1:0\"");
    expect_bad_addr("10.0.0.1:65536", "expected a port from 1 to 65535");
    expect_bad_addr("10.0.0.1:99999999999", "expected a port from 1 to 65535");
    expect_bad_addr("10.0.0.1:http", "expected a port from 1 to 65535");
    expect_bad_addr("10.0.0.1:-1", "expected a port from 1 to 65535");
    expect_bad_addr("[::1]:0", "expected a port from 1 to 65535");
}

Test(cfg_addr, rejects_a_malformed_ipv4_address)
{
    expect_bad_addr("999.1.1.1:80",
                    "expected an IPv4 address such as 10.0.0.1, got \"999.1.1.1:80\"");
    expect_bad_addr("10.0.0:80", "expected an IPv4 address");
    expect_bad_addr("127.1:80", "expected an IPv4 address");
    expect_bad_addr("1.2.3.4.5:80", "expected an IPv4 address");
}

Test(cfg_addr, rejects_a_malformed_ipv6_address)
{
    expect_bad_addr("[::1:8000", "expected ']' to close the IPv6 address");
    expect_bad_addr("[::g]:80", "expected an IPv6 address such as [::1]:8000, got \"[::g]:80\"");
    expect_bad_addr("[10.0.0.1]:80", "expected an IPv6 address");
    expect_bad_addr("::1:8000", "expected an IPv6 address in brackets");
}

Test(cfg_addr, rejects_an_empty_host)
{
    expect_bad_addr(":8000", "expected a host before the port, as in 10.0.0.1:8000, got \":8000\"");
    expect_bad_addr("[]:8000", "expected a host before the port");
    expect_bad_addr("", "(no port)");
}

Test(cfg_addr, rejects_a_host_name_with_forbidden_characters)
{
    expect_bad_addr("bad host:80", "expected a host name, an IPv4 address or an [IPv6] address");
    expect_bad_addr("a/b:80", "expected a host name");
}

Test(cfg_addr, rejects_a_host_name_that_does_not_resolve)
{
    /* .invalid never resolves (RFC 6761), so no name server is needed to fail. */
    expect_bad_addr("nowhere.invalid:80",
                    "expected a host name that resolves, got \"nowhere.invalid:80\"");
}

Test(cfg_addr, rejects_text_too_long_to_keep)
{
    char text[200];

    memset(text, 'a', sizeof(text));
    memcpy(text + sizeof(text) - 4, ":80", 4);
    expect_bad_addr(text, "expected an address of at most 127 characters");
}

Test(cfg_addr, escapes_control_characters_in_the_message)
{
    expect_bad_addr("10.0.0.1\n", "got \"10.0.0.1\\x0a\"");
}

Test(cfg_addr, accepts_a_null_error_buffer)
{
    struct cfg_addr a;

    cr_assert(eq(int, cfg_addr_parse("10.0.0.1", &a, NULL), -1));
    cr_assert(eq(int, cfg_addr_parse("10.0.0.1:1", &a, NULL), 0));
}

/* Parses `text`, asserts success, the family, the prefix and the text kept, and returns it. */
static struct cfg_cidr
cidr_ok(const char *text, int family, unsigned prefix)
{
    struct xf_err err = {{0}};
    struct cfg_cidr c;

    cr_assert(eq(int, cfg_cidr_parse(text, &c, &err), 0), "\"%s\" rejected: %s", text, err.msg);
    cr_assert(eq(int, c.family, family), "\"%s\"", text);
    cr_assert(eq(uint, c.prefix, prefix), "\"%s\"", text);
    cr_assert(eq(str, c.text, (char *)text));
    return c;
}

/* Parses `text` and asserts that it holds exactly the 16 bytes `want` (and the rest of cidr_ok). */
static void
expect_cidr_bytes(const char *text, int family, unsigned prefix, const uint8_t want[16])
{
    struct cfg_cidr c = cidr_ok(text, family, prefix);

    for (size_t i = 0; i < 16; i++)
        cr_assert(eq(u8, c.addr[i], want[i]), "\"%s\": byte %zu", text, i);
}

/* Asserts that `text` is rejected with a message holding `fragment`, leaving the output alone. */
static void
expect_bad_cidr(const char *text, const char *fragment)
{
    struct xf_err err = {{0}};
    struct cfg_cidr c, before;

    memset(&c, 0x5a, sizeof(c));
    before = c;
    cr_assert(eq(int, cfg_cidr_parse(text, &c, &err), -1), "\"%s\" accepted", text);
    cr_assert(eq(int, memcmp(&c, &before, sizeof(c)), 0), "\"%s\": output changed", text);
    cr_assert(not(eq(ptr, strstr(err.msg, fragment), NULL)), "\"%s\": message \"%s\" lacks \"%s\"",
              text, err.msg, fragment);
}

Test(cfg_cidr, reads_an_ipv4_network_into_the_first_four_bytes)
{
    static const uint8_t want[16] = {10, 0, 0, 0};

    expect_cidr_bytes("10.0.0.0/8", AF_INET, 8, want);
}

Test(cfg_cidr, reads_a_bare_ipv4_address_as_a_slash_32)
{
    static const uint8_t want[16] = {192, 168, 1, 5};

    expect_cidr_bytes("192.168.1.5", AF_INET, 32, want);
}

Test(cfg_cidr, reads_an_ipv6_network_in_network_byte_order)
{
    static const uint8_t want[16] = {0x20, 0x01, 0x0d, 0xb8};
    static const uint8_t want_ula[16] = {0xfd, 0x12, 0x34, 0x56, 0x78, 0x9a, 0x00, 0x01};

    expect_cidr_bytes("2001:db8::/32", AF_INET6, 32, want);
    expect_cidr_bytes("fd12:3456:789a:1::/64", AF_INET6, 64, want_ula);
}

Test(cfg_cidr, reads_a_bare_ipv6_address_as_a_slash_128)
{
    static const uint8_t want[16] = {[15] = 1};

    expect_cidr_bytes("::1", AF_INET6, 128, want);
    expect_cidr_bytes("::1/128", AF_INET6, 128, want);
}

Test(cfg_cidr, accepts_the_prefixes_at_their_bounds)
{
    static const uint8_t zero[16] = {0};
    static const uint8_t host4[16] = {10, 1, 2, 3};
    static const uint8_t host6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};

    expect_cidr_bytes("0.0.0.0/0", AF_INET, 0, zero);
    expect_cidr_bytes("::/0", AF_INET6, 0, zero);
    expect_cidr_bytes("10.1.2.3/32", AF_INET, 32, host4);
    expect_cidr_bytes("2001:db8::1/128", AF_INET6, 128, host6);
}

Test(cfg_cidr, accepts_prefixes_that_end_inside_a_byte)
{
    static const uint8_t want4[16] = {10, 128};
    static const uint8_t want7[16] = {10};
    static const uint8_t want6[16] = {0xfe, 0x80};

    expect_cidr_bytes("10.128.0.0/9", AF_INET, 9, want4);
    expect_cidr_bytes("10.0.0.0/7", AF_INET, 7, want7);
    expect_cidr_bytes("fe80::/10", AF_INET6, 10, want6);
}

Test(cfg_cidr, keeps_an_ipv4_mapped_address_as_ipv6)
{
    static const uint8_t want[16] = {[10] = 0xff, [11] = 0xff, [12] = 10};

    expect_cidr_bytes("::ffff:10.0.0.0/104", AF_INET6, 104, want);
}

Test(cfg_cidr, refuses_host_bits_and_names_the_network)
{
    expect_bad_cidr("10.0.0.1/8", "expected a network address, got \"10.0.0.1/8\" (host bits "
                                  "set; did you mean \"10.0.0.0/8\"?)");
    expect_bad_cidr("10.0.0.0/6",
                    "got \"10.0.0.0/6\" (host bits set; did you mean \"8.0.0.0/6\"?)");
    expect_bad_cidr("10.255.0.0/9", "(host bits set; did you mean \"10.128.0.0/9\"?)");
    expect_bad_cidr("2001:db8::1/32", "expected a network address, got \"2001:db8::1/32\" (host "
                                      "bits set; did you mean \"2001:db8::/32\"?)");
    expect_bad_cidr("::1/0", "(host bits set; did you mean \"::/0\"?)");
}

Test(cfg_cidr, refuses_a_prefix_out_of_range_or_malformed)
{
    static const char *const bad[] = {
        "10.0.0.0/-1",  "10.0.0.0/+8",   "10.0.0.0/8 ", "10.0.0.0/x",
        "10.0.0.0/8/8", "10.0.0.0/0008", "::/1000",     "10.0.0.0/99999999999999999999"};

    expect_bad_cidr("10.0.0.0/33",
                    "expected a prefix length from 0 to 32 after the '/', got \"10.0.0.0/33\"");
    expect_bad_cidr("::/129",
                    "expected a prefix length from 0 to 128 after the '/', got \"::/129\"");
    expect_bad_cidr("10.0.0.0/", "expected a prefix length from 0 to 32 after the '/'");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_bad_cidr(bad[i], "expected a prefix length from 0 to ");
}

Test(cfg_cidr, refuses_what_is_not_an_address_without_asking_dns)
{
    static const char *const bad[] = {
        "",
        "10.0.0",
        "127.1",
        "999.0.0.0/8",
        "::g",
        "[::1]",
        "10.0.0.0 /8",
        " 10.0.0.0/8",
        "fe80::1%eth0",
        "/8",
        "10.0.0.0.0/8",
        "1:2:3:4:5:6:7:8:9",
        "0x0a.0.0.0/8",
    };

    expect_bad_cidr("localhost", "expected an IPv4 or IPv6 network such as 10.0.0.0/8 or "
                                 "2001:db8::/32, got \"localhost\"");
    expect_bad_cidr("10.0.0.0\n", "got \"10.0.0.0\\x0a\"");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_bad_cidr(bad[i], "expected an IPv4 or IPv6 network such as 10.0.0.0/8 or "
                                "2001:db8::/32, got \"");
}

Test(cfg_cidr, refuses_text_too_long_to_keep)
{
    char text[80];

    memset(text, '1', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    expect_bad_cidr(text, "expected a network of at most 63 characters, got \"1111");
}

Test(cfg_cidr, accepts_a_null_error_buffer)
{
    struct cfg_cidr c;

    cr_assert(eq(int, cfg_cidr_parse("10.0.0.1/8", &c, NULL), -1));
    cr_assert(eq(int, cfg_cidr_parse("10.0.0.0/8", &c, NULL), 0));
    cr_assert(eq(uint, c.prefix, 8));
}
