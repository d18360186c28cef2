/* tests/integration/test_catalogue_lines.c -- the catalogue's line cases: bare LF and CR, obs-fold,
 * the request line and the forms of its target, and Host (RFC 9112 2.2, 3, 5.2; RFC 9110 7.2;
 * docs/security.md). */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "tests/integration/catalogue_helpers.h"

TestSuite(catalogue_lines, .init = h_setup, .fini = h_teardown);

/* A request refused before any node: `status`, Connection: close, nothing at the node. */
#define REFUSED(name, bytes, st, why_)                                                             \
    Test(catalogue_lines, name, .timeout = H_TEST_TIMEOUT)                                         \
    {                                                                                              \
        cat_req_run(                                                                               \
            &(struct cat_req){CAT_BYTES(bytes), .status = st, .why = why_, .closed = true});       \
    }

/* A request forwarded: 200 from the node, the connection goes on, the node gets `fwd`. */
#define FORWARDED(name, bytes, fwd)                                                                \
    Test(catalogue_lines, name, .timeout = H_TEST_TIMEOUT)                                         \
    {                                                                                              \
        cat_req_run(&(struct cat_req){CAT_BYTES(bytes), .status = 200, .node = fwd});              \
    }

/* ------------------------------------------------ bare LF and bare CR (RFC 9112 2.2) */

REFUSED(bare_lf_line_endings_throughout_are_refused, "GET / HTTP/1.1\nHost: " H_HOST "\n\n", 400,
        NULL)
REFUSED(a_header_line_ended_by_a_bare_lf_is_refused, CAT_GET "X-A: 1\n\r\n", 400, NULL)
/* RFC 9112 2.2 lets a recipient take a lone LF for a line end; llhttp does so only for the
 * empty line that ends the head. The node gets CRLF either way: the head is written anew. */
FORWARDED(a_head_ended_by_a_bare_lf_is_forwarded_with_crlf, CAT_GET "\n", CAT_FWD_GET(""))
REFUSED(a_request_line_ended_by_a_bare_cr_is_refused, "GET / HTTP/1.1\rHost: " H_HOST "\r\n\r\n",
        400, NULL)
REFUSED(a_header_line_ended_by_a_bare_cr_is_refused, CAT_GET "X-A: 1\rX-B: 2\r\n\r\n", 400, NULL)
REFUSED(a_head_ended_by_cr_cr_lf_is_refused, CAT_GET "\r\r\n", 400, NULL)
/* RFC 9112 2.2: a server SHOULD ignore at least one empty line before the request line. */
FORWARDED(an_empty_line_before_the_request_line_is_ignored, "\r\n" CAT_GET "\r\n", CAT_FWD_GET(""))

/* ------------------------------------------------ obs-fold (RFC 9112 5.2) */

REFUSED(a_space_led_line_right_after_the_request_line_is_refused,
        "GET / HTTP/1.1\r\n Host: " H_HOST "\r\n\r\n", 400, NULL)
REFUSED(an_obs_fold_in_content_length_is_refused, CAT_POST "Content-Length: 0\r\n 5\r\n\r\n", 400,
        NULL)
REFUSED(an_obs_fold_in_host_is_refused, "GET / HTTP/1.1\r\nHost: " H_HOST "\r\n .evil\r\n\r\n", 400,
        NULL)
REFUSED(an_obs_fold_in_connection_is_refused, CAT_GET "Connection: keep-alive,\r\n\tX-A\r\n\r\n",
        400, "obs-fold")

/* ------------------------------------------------ the request line (RFC 9112 3) */

/* RFC 9112 3 lets a recipient split the request line on runs of whitespace; the node gets it
 * with single spaces. */
FORWARDED(two_spaces_after_the_method_are_taken_as_one,
          "GET  / HTTP/1.1\r\nHost: " H_HOST "\r\n\r\n", CAT_FWD_GET(""))
REFUSED(a_tab_between_target_and_version_is_refused, "GET /\tHTTP/1.1\r\nHost: " H_HOST "\r\n\r\n",
        400, NULL)
REFUSED(a_space_after_the_version_is_refused, "GET / HTTP/1.1 \r\nHost: " H_HOST "\r\n\r\n", 400,
        NULL)
REFUSED(a_nul_in_the_target_is_refused, "GET /a\0b HTTP/1.1\r\nHost: " H_HOST "\r\n\r\n", 400, NULL)
REFUSED(a_nul_in_the_method_is_refused, "G\0ET / HTTP/1.1\r\nHost: " H_HOST "\r\n\r\n", 400, NULL)
REFUSED(an_8_bit_byte_in_the_target_is_refused,
        "GET /a\xff"
        "b HTTP/1.1\r\nHost: " H_HOST "\r\n\r\n",
        400, NULL)
/* Methods are case-sensitive (RFC 9110 9.1): "get" is no GET; llhttp knows no such method. */
REFUSED(a_lower_case_method_is_refused, "get / HTTP/1.1\r\nHost: " H_HOST "\r\n\r\n", 400, NULL)
REFUSED(a_lower_case_http_version_is_refused, "GET / http/1.1\r\nHost: " H_HOST "\r\n\r\n", 400,
        NULL)

/* ------------------------------------------------ target forms (RFC 9112 3.2) */

/* RFC 9112 3.2.2: the authority of an absolute-form target replaces Host. */
FORWARDED(absolute_form_with_a_conflicting_host_goes_on_with_the_targets_authority,
          "GET http://other.test/x?q HTTP/1.1\r\nHost: " H_HOST "\r\n\r\n",
          CAT_FWD("GET /x?q HTTP/1.1", "other.test", "", ""))
FORWARDED(absolute_form_https_goes_on_in_origin_form,
          "GET https://other.test:8443/x HTTP/1.1\r\nHost: " H_HOST "\r\n\r\n",
          CAT_FWD("GET /x HTTP/1.1", "other.test:8443", "", ""))
REFUSED(absolute_form_with_userinfo_is_refused,
        "GET http://user@other.test/x HTTP/1.1\r\nHost: other.test\r\n\r\n", 400, "authority")
REFUSED(absolute_form_with_another_scheme_is_refused,
        "GET ftp://other.test/x HTTP/1.1\r\nHost: " H_HOST "\r\n\r\n", 400, NULL)
REFUSED(authority_form_outside_connect_is_refused,
        "GET " H_HOST ":443 HTTP/1.1\r\nHost: " H_HOST "\r\n\r\n", 400, NULL)
REFUSED(asterisk_form_outside_options_is_refused, "GET * HTTP/1.1\r\nHost: " H_HOST "\r\n\r\n", 400,
        "invalid request target")
FORWARDED(asterisk_form_of_options_is_forwarded, "OPTIONS * HTTP/1.1\r\nHost: " H_HOST "\r\n\r\n",
          CAT_FWD("OPTIONS * HTTP/1.1", H_HOST, "", ""))
REFUSED(a_fragment_in_the_target_is_refused, "GET /a#frag HTTP/1.1\r\nHost: " H_HOST "\r\n\r\n",
        400, "fragment")
REFUSED(a_fragment_after_a_query_is_refused,
        "GET /a?q#/../admin HTTP/1.1\r\nHost: " H_HOST "\r\n\r\n", 400, "fragment")
REFUSED(a_fragment_in_an_absolute_form_target_is_refused,
        "GET http://other.test/a#b HTTP/1.1\r\nHost: other.test\r\n\r\n", 400, "fragment")

/* ------------------------------------------------ Host (RFC 9110 7.2, RFC 9112 3.2) */

REFUSED(an_empty_host_is_refused, "GET / HTTP/1.1\r\nHost:\r\n\r\n", 400, "Host")
REFUSED(a_host_with_userinfo_is_refused, "GET / HTTP/1.1\r\nHost: user@" H_HOST "\r\n\r\n", 400,
        "Host")
REFUSED(a_host_with_an_8_bit_byte_is_refused, "GET / HTTP/1.1\r\nHost: caf\xe9.test\r\n\r\n", 400,
        "Host")
REFUSED(a_host_with_a_six_digit_port_is_refused, "GET / HTTP/1.1\r\nHost: a.test:123456\r\n\r\n",
        400, "Host")
REFUSED(two_equal_host_lines_are_refused, CAT_GET "Host: " H_HOST "\r\n\r\n", 400, "Host")
FORWARDED(an_ipv6_literal_host_is_forwarded, "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
          CAT_FWD("GET / HTTP/1.1", "[::1]:8080", "", ""))

/* ------------------------------------------------ bytes in field names and values */

/* obs-text is allowed in a field value (RFC 9110 5.5) and forwarded untouched. */
FORWARDED(an_8_bit_byte_in_a_field_value_is_forwarded, CAT_GET "X-Name: caf\xe9\r\n\r\n",
          CAT_FWD_GET("X-Name: caf\xe9\r\n"))
REFUSED(an_8_bit_byte_in_a_field_name_is_refused, CAT_GET "X-Caf\xe9: 1\r\n\r\n", 400, NULL)
REFUSED(a_del_byte_in_a_field_value_is_refused,
        CAT_GET "X-A: a\x7f"
                "b\r\n\r\n",
        400, NULL)
