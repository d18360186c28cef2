/* tests/unit/test_cfg_values.c -- the public value parsers: cfg_duration_parse, cfg_addr_parse. */
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
