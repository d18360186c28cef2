/* tests/integration/test_catalogue_framing.c -- the catalogue's framing cases: CL.TE, TE.CL and
 * TE.TE obfuscations, Content-Length forms, and chunk sizes (RFC 9112 6, 7; docs/security.md). */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "tests/integration/catalogue_helpers.h"

TestSuite(catalogue_framing, .init = h_setup, .fini = h_teardown);

/* A request refused before any node: `status`, Connection: close, nothing at the node. */
#define REFUSED(name, bytes, st, why_)                                                             \
    Test(catalogue_framing, name, .timeout = H_TEST_TIMEOUT)                                       \
    {                                                                                              \
        cat_req_run(                                                                               \
            &(struct cat_req){CAT_BYTES(bytes), .status = st, .why = why_, .closed = true});       \
    }

/* A request forwarded: 200 from the node, the connection goes on, the node gets `fwd`. */
#define FORWARDED(name, bytes, fwd)                                                                \
    Test(catalogue_framing, name, .timeout = H_TEST_TIMEOUT)                                       \
    {                                                                                              \
        cat_req_run(&(struct cat_req){CAT_BYTES(bytes), .status = 200, .node = fwd});              \
    }

/*
 * A chunked body that goes wrong. Buffered (the default: limits.request_buffer_bytes), nothing of
 * it reaches the node; the client gets 400 and a close. Streamed (a buffer of 0, or a body that
 * outgrew it), the node gets the head and the chunks before the fault (`good`, as crossfade
 * re-frames them), never a last chunk, and its connection is closed; the client gets the same.
 * The node stays silent: an answer of its own would end the exchange before the fault arrives.
 */
#define CHUNK_CUT(name, good_in, good_out, bad)                                                    \
    Test(catalogue_framing, name, .timeout = H_TEST_TIMEOUT)                                       \
    {                                                                                              \
        cat_req_run(&(struct cat_req){CAT_BYTES(CAT_POST CAT_TE "\r\n" good_in bad),               \
                                      .status = 400, .closed = true});                             \
        cat_req_run(&(struct cat_req){CAT_BYTES(CAT_POST CAT_TE "\r\n" good_in), .rest = bad,      \
                                      .status = 400, .closed = true,                               \
                                      .node = CAT_FWD_POST(CAT_TE) good_out, .node_closed = true,  \
                                      .silent = true, .request_buffer = "0"});                     \
    }

#define TE_ONLY CAT_FWD_POST(CAT_TE)

/* ------------------------------------------------ Transfer-Encoding obfuscations (TE.TE) */

REFUSED(te_with_a_space_before_the_colon_is_refused,
        CAT_POST "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400, NULL)
REFUSED(te_with_a_tab_before_the_colon_is_refused,
        CAT_POST "Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n", 400, NULL)
REFUSED(te_on_a_line_that_starts_with_a_space_is_an_obs_fold_and_refused,
        CAT_POST " Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "obs-fold")
REFUSED(te_name_broken_by_a_line_fold_is_refused,
        CAT_POST "Transfer-Encoding\r\n : chunked\r\n\r\n0\r\n\r\n", 400, NULL)
REFUSED(te_value_after_a_vertical_tab_is_refused,
        CAT_POST "Transfer-Encoding: \x0b"
                 "chunked\r\n\r\n0\r\n\r\n",
        400, NULL)
REFUSED(te_value_before_a_form_feed_is_refused,
        CAT_POST "Transfer-Encoding: chunked\x0c\r\n\r\n0\r\n\r\n", 400, NULL)
REFUSED(te_value_with_a_nul_is_refused, CAT_POST "Transfer-Encoding: chunked\0\r\n\r\n0\r\n\r\n",
        400, NULL)
REFUSED(te_value_with_a_nul_inside_the_word_is_refused,
        CAT_POST "Transfer-Encoding: chun\0ked\r\n\r\n0\r\n\r\n", 400, NULL)
FORWARDED(te_value_with_trailing_spaces_is_chunked,
          CAT_POST "Transfer-Encoding: chunked  \r\n\r\n3\r\nabc\r\n0\r\n\r\n",
          TE_ONLY "3\r\nabc\r\n0\r\n\r\n")
/* RFC 9110 5.5 would trim the tab; llhttp 8.1 does not read chunked there: refused so the two
 * parsers never frame one body differently. */
REFUSED(te_value_with_a_trailing_tab_is_refused_before_any_node,
        CAT_POST "Transfer-Encoding: chunked\t\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400,
        "invalid Transfer-Encoding")
FORWARDED(te_value_after_a_tab_is_chunked,
          CAT_POST "Transfer-Encoding:\tchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
          TE_ONLY "3\r\nabc\r\n0\r\n\r\n")
FORWARDED(te_name_and_value_in_other_cases_are_chunked,
          CAT_POST "tRANSFER-eNCODING: CHUNKED\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
          TE_ONLY "3\r\nabc\r\n0\r\n\r\n")
REFUSED(te_chunked_in_two_field_lines_is_refused, CAT_POST CAT_TE CAT_TE "\r\n0\r\n\r\n", 400, NULL)
REFUSED(te_gzip_then_chunked_in_two_field_lines_is_not_implemented,
        CAT_POST "Transfer-Encoding: gzip\r\n" CAT_TE "\r\n0\r\n\r\n", 501,
        "unsupported transfer coding")
REFUSED(te_chunked_then_identity_in_two_field_lines_is_refused,
        CAT_POST CAT_TE "Transfer-Encoding: identity\r\n\r\n0\r\n\r\n", 400, NULL)
REFUSED(te_identity_alone_is_refused, CAT_POST "Transfer-Encoding: identity\r\n\r\n", 400,
        "Transfer-Encoding")
REFUSED(te_identity_before_chunked_is_not_implemented,
        CAT_POST "Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n", 501,
        "unsupported transfer coding")
REFUSED(te_chunked_with_a_parameter_is_refused_before_any_node,
        CAT_POST "Transfer-Encoding: chunked;foo=bar\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400,
        "invalid Transfer-Encoding")
REFUSED(te_xchunked_is_refused, CAT_POST "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400,
        "Transfer-Encoding")
REFUSED(te_quoted_chunked_is_refused, CAT_POST "Transfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n",
        400, "Transfer-Encoding")
REFUSED(te_list_with_a_trailing_comma_is_refused,
        CAT_POST "Transfer-Encoding: chunked, \r\n\r\n0\r\n\r\n", 400, NULL)
REFUSED(te_list_with_a_leading_comma_is_refused,
        CAT_POST "Transfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n", 400, "Transfer-Encoding")
REFUSED(te_empty_is_refused, CAT_POST "Transfer-Encoding:\r\n\r\n", 400, "Transfer-Encoding")

/* An underscore makes another field name (RFC 9110 5.1): forwarded as such, never framing. */
FORWARDED(te_with_an_underscore_is_an_ordinary_field_not_framing,
          CAT_POST "Transfer_Encoding: chunked\r\n\r\n",
          CAT_FWD("POST / HTTP/1.1", H_HOST, "Transfer_Encoding: chunked\r\n", ""))

/* ------------------------------------------------ CL.TE and TE.CL */

REFUSED(te_before_content_length_is_refused, CAT_POST CAT_TE "Content-Length: 3\r\n\r\n0\r\n\r\n",
        400, NULL)
REFUSED(content_length_with_an_obfuscated_te_is_refused,
        CAT_POST "Content-Length: 3\r\nTransfer-Encoding: \tchunked\r\n\r\n0\r\n\r\n", 400, NULL)
REFUSED(content_length_with_a_te_list_is_refused,
        CAT_POST "Content-Length: 6\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\nG", 400,
        NULL)

/* ------------------------------------------------ Content-Length forms */

REFUSED(content_length_with_a_plus_sign_is_refused, CAT_POST "Content-Length: +3\r\n\r\nabc", 400,
        NULL)
REFUSED(content_length_negative_is_refused, CAT_POST "Content-Length: -1\r\n\r\n", 400, NULL)
REFUSED(content_length_in_hex_is_refused, CAT_POST "Content-Length: 0x3\r\n\r\nabc", 400, NULL)
REFUSED(content_length_with_a_space_inside_is_refused, CAT_POST "Content-Length: 1 2\r\n\r\nabc",
        400, NULL)
REFUSED(content_length_empty_is_refused, CAT_POST "Content-Length:\r\n\r\n", 400, NULL)
REFUSED(content_length_past_64_bits_is_refused,
        CAT_POST "Content-Length: 99999999999999999999\r\n\r\n", 400, NULL)
REFUSED(content_length_as_a_list_of_equal_values_is_refused,
        CAT_POST "Content-Length: 3, 3\r\n\r\nabc", 400, NULL)
REFUSED(content_length_twice_with_equal_values_is_refused,
        CAT_POST "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400, NULL)
FORWARDED(content_length_with_leading_zeros_is_forwarded_as_its_value,
          CAT_POST "Content-Length: 003\r\n\r\nabc", CAT_FWD_POST("Content-Length: 3\r\n") "abc")

/* ------------------------------------------------ chunk sizes and chunk lines */

FORWARDED(chunk_size_with_leading_zeros_is_forwarded_re_framed,
          CAT_POST CAT_TE "\r\n0003\r\nabc\r\n0\r\n\r\n", TE_ONLY "3\r\nabc\r\n0\r\n\r\n")
FORWARDED(chunk_size_in_upper_case_hex_is_forwarded_re_framed,
          CAT_POST CAT_TE "\r\nA\r\n0123456789\r\n0\r\n\r\n",
          TE_ONLY "a\r\n0123456789\r\n0\r\n\r\n")
FORWARDED(chunk_extensions_are_dropped, CAT_POST CAT_TE "\r\n3;ext=1\r\nabc\r\n0;last\r\n\r\n",
          TE_ONLY "3\r\nabc\r\n0\r\n\r\n")
FORWARDED(trailer_fields_are_dropped, CAT_POST CAT_TE "\r\n3\r\nabc\r\n0\r\nX-Trailer: a\r\n\r\n",
          TE_ONLY "3\r\nabc\r\n0\r\n\r\n")
CHUNK_CUT(chunk_size_past_64_bits_cuts_the_request, "3\r\nabc\r\n", "3\r\nabc\r\n",
          "10000000000000003\r\nabc\r\n0\r\n\r\n")
CHUNK_CUT(chunk_extension_with_a_quoted_string_cuts_the_request, "", "",
          "3;a=\"b\\\"c\"\r\nabc\r\n0\r\n\r\n")
CHUNK_CUT(chunk_size_ended_by_a_bare_lf_cuts_the_request, "", "", "3\nabc\r\n0\r\n\r\n")
CHUNK_CUT(chunk_size_ended_by_a_bare_cr_cuts_the_request, "", "", "3\rabc\r\n0\r\n\r\n")
CHUNK_CUT(chunk_data_ended_by_a_bare_lf_cuts_the_request, "", "", "3\r\nabc\n0\r\n\r\n")
CHUNK_CUT(chunk_size_followed_by_a_space_cuts_the_request, "", "", "3 \r\nabc\r\n0\r\n\r\n")
CHUNK_CUT(chunk_size_negative_cuts_the_request, "", "", "-3\r\nabc\r\n0\r\n\r\n")
CHUNK_CUT(chunk_size_with_0x_cuts_the_request, "", "", "0x3\r\nabc\r\n0\r\n\r\n")
CHUNK_CUT(chunk_data_longer_than_its_size_cuts_the_request, "3\r\nabc\r\n", "3\r\nabc\r\n",
          "2\r\nabX\r\n0\r\n\r\n")
/* TE.0: a request line where the trailer section goes never completes the body. */
CHUNK_CUT(a_request_line_in_the_trailer_section_cuts_the_request, "3\r\nabc\r\n", "3\r\nabc\r\n",
          "0\r\nGET /smuggled HTTP/1.1\r\nHost: " H_HOST "\r\n\r\n")
