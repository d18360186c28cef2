/* tests/unit/test_fl_ops.c -- fleet's etcd client without sockets: endpoints, prefix ranges, the
 * JSON it sends and how it reads etcd 3.4's answers (recorded from a real member). */
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "fleet/fl_int.h"

static void
endpoint_ok(const char *url, const char *host, const char *port, const char *canon)
{
    struct fl_endpoint ep;
    struct xf_err err = {{0}};

    cr_assert(eq(int, fl_endpoint_parse(&ep, url, &err), 0), "%s: %s", url, err.msg);
    cr_assert(eq(str, ep.host, (char *)host));
    cr_assert(eq(str, ep.port, (char *)port));
    cr_assert(eq(str, ep.url, (char *)canon));
}

static void
endpoint_bad(const char *url, const char *why)
{
    struct fl_endpoint ep;
    struct xf_err err = {{0}};

    cr_assert(eq(int, fl_endpoint_parse(&ep, url, &err), -1), "accepted %s", url);
    cr_assert(ne(ptr, strstr(err.msg, why), NULL), "%s: \"%s\" does not say \"%s\"", url, err.msg,
              why);
}

Test(fl_endpoint, reads_host_and_port)
{
    endpoint_ok("http://127.0.0.1:2379", "127.0.0.1", "2379", "http://127.0.0.1:2379");
    endpoint_ok("http://etcd-0.fleet:2379/", "etcd-0.fleet", "2379", "http://etcd-0.fleet:2379");
    endpoint_ok("http://[::1]:23790", "::1", "23790", "http://[::1]:23790");
}

Test(fl_endpoint, refuses_what_it_cannot_use_and_says_why)
{
    endpoint_bad("https://127.0.0.1:2379", "https is not supported");
    endpoint_bad("127.0.0.1:2379", "expected http://host:port");
    endpoint_bad("http://127.0.0.1", "no port");
    endpoint_bad("http://:2379", "no host");
    endpoint_bad("http://127.0.0.1:0", "from 1 to 65535");
    endpoint_bad("http://127.0.0.1:65536", "from 1 to 65535");
    endpoint_bad("http://127.0.0.1:23x9", "from 1 to 65535");
    endpoint_bad("http://127.0.0.1:2379/v3", "no path");
    endpoint_bad("http://127.0.0.1:", "from 1 to 65535");
    endpoint_bad("http://[::1:2379", "closing ']'");
    endpoint_bad("http://[::1]", "no port");
    endpoint_bad("http://[::1]x:2379", "':port'");
    endpoint_bad("http://user@host:2379", "letters, digits");
    endpoint_bad("http://ho st:2379", "letters, digits");
}

Test(fl_prefix, the_range_end_is_the_prefix_with_its_last_byte_plus_one)
{
    char out[8];

    cr_assert(eq(sz, fl_prefix_end("/fl/", 4, out), 4));
    cr_assert(eq(int, memcmp(out, "/fl0", 4), 0));
    cr_assert(eq(sz, fl_prefix_end("a\xff\xff", 3, out), 1), "trailing 0xff bytes are dropped");
    cr_assert(eq(int, out[0], 'b'));
    cr_assert(eq(sz, fl_prefix_end("\xff\xff", 2, out), 1), "no byte to increment: \\0");
    cr_assert(eq(int, out[0], 0));
    cr_assert(eq(sz, fl_prefix_end("", 0, out), 1));
    cr_assert(eq(int, out[0], 0));
}

Test(fl_ops, writes_a_cas_transaction_as_the_gateway_expects)
{
    struct fl_put puts[2] = {{"k", 1, "v", 1, 0}, {"o", 1, "w", 1, 42}};
    struct fl_buf b = {0};
    struct fl_json doc;

    fl_buf_cas(&b, 7, puts, 2);
    cr_assert(not(b.oom));
    cr_assert(eq(str, b.p,
                 "{\"compare\":[{\"key\":\"aw==\",\"target\":\"MOD\",\"result\":\"EQUAL\","
                 "\"mod_revision\":\"7\"}],\"success\":[{\"request_put\":{\"key\":\"aw==\","
                 "\"value\":\"dg==\"}},{\"request_put\":{\"key\":\"bw==\",\"value\":\"dw==\","
                 "\"lease\":\"42\"}}],\"failure\":[{\"request_range\":{\"key\":\"aw==\"}}]}"));
    cr_assert(eq(int, fl_json_parse(&doc, b.p, b.len, NULL), 0), "it is JSON");
    fl_json_fini(&doc);
    fl_buf_fini(&b);
}

Test(fl_ops, reads_a_range_answer_with_zero_fields_left_out)
{
    static const char body[] =
        "{\"header\":{\"revision\":\"9\"},\"kvs\":[{\"key\":\"Zm9v\",\"create_revision\":\"2\","
        "\"mod_revision\":\"8\",\"version\":\"3\",\"value\":\"YmFy\",\"lease\":\"77\"},"
        "{\"key\":\"Zm9vMg==\",\"create_revision\":\"4\",\"mod_revision\":\"4\",\"version\":\"1\"}]"
        ","
        "\"more\":true,\"count\":\"5\"}";
    struct fl_result res;
    struct xf_err err = {{0}};

    cr_assert(eq(int, fl_result_parse(FL_OP_GET, body, sizeof(body) - 1, &res, &err), 0), "%s",
              err.msg);
    cr_assert(eq(i64, res.revision, 9));
    cr_assert(eq(sz, res.n_kvs, 2));
    cr_assert(eq(str, (char *)res.kvs[0].key, "foo"));
    cr_assert(eq(str, (char *)res.kvs[0].value, "bar"));
    cr_assert(eq(i64, res.kvs[0].lease, 77));
    cr_assert(eq(i64, res.kvs[0].mod_revision, 8));
    cr_assert(eq(str, (char *)res.kvs[1].value, ""), "an empty value is left out");
    cr_assert(eq(sz, res.kvs[1].value_len, 0));
    cr_assert(res.more);
    cr_assert(eq(i64, res.count, 5));
    fl_result_fini(&res);
}

Test(fl_ops, reads_a_failed_cas_and_a_deleted_count)
{
    static const char txn[] =
        "{\"header\":{\"revision\":\"2\"},\"responses\":[{\"response_range\":{\"header\":"
        "{\"revision\":\"2\"},\"kvs\":[{\"key\":\"Zm9v\",\"create_revision\":\"2\","
        "\"mod_revision\":\"2\",\"version\":\"1\",\"value\":\"YmFy\"}],\"count\":\"1\"}}]}";
    static const char del[] = "{\"header\":{\"revision\":\"5\"},\"deleted\":\"3\"}";
    struct fl_result res;

    cr_assert(eq(int, fl_result_parse(FL_OP_CAS, txn, sizeof(txn) - 1, &res, NULL), 0));
    cr_assert(not(res.succeeded), "\"succeeded\" is left out when false");
    cr_assert(eq(sz, res.n_kvs, 1));
    cr_assert(eq(str, (char *)res.kvs[0].value, "bar"));
    fl_result_fini(&res);
    cr_assert(eq(int, fl_result_parse(FL_OP_DEL, del, sizeof(del) - 1, &res, NULL), 0));
    cr_assert(eq(i64, res.deleted, 3));
    fl_result_fini(&res);
}

Test(fl_ops, reads_a_keepalive_stream_and_a_lost_lease_as_ttl_zero)
{
    static const char alive[] =
        "{\"result\":{\"header\":{\"revision\":\"3\"},\"ID\":\"4111120487455628298\",\"TTL\":"
        "\"5\"}}\n";
    static const char gone[] = "{\"result\":{\"header\":{\"revision\":\"3\"},\"ID\":\"1234\"}}\n";
    static const char err_msg[] =
        "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: no leader\"}}\n";
    struct fl_result res;
    struct xf_err err = {{0}};

    cr_assert(eq(int, fl_result_parse(FL_OP_KEEPALIVE, alive, sizeof(alive) - 1, &res, NULL), 0));
    cr_assert(eq(i64, res.lease, 4111120487455628298));
    cr_assert(eq(i64, res.ttl, 5));
    cr_assert(eq(int, fl_result_parse(FL_OP_KEEPALIVE, gone, sizeof(gone) - 1, &res, NULL), 0));
    cr_assert(eq(i64, res.ttl, 0), "TTL left out: the lease is gone");
    cr_assert(
        eq(int, fl_result_parse(FL_OP_KEEPALIVE, err_msg, sizeof(err_msg) - 1, &res, &err), -1));
    cr_assert(eq(str, err.msg, "etcdserver: no leader"));
}

Test(fl_ops, refuses_answers_that_are_not_what_etcd_sends)
{
    static const char *const bad[] = {
        "[]",
        "{\"header\":{\"revision\":\"x\"}}",
        "{\"kvs\":{}}",
        "{\"kvs\":[{\"key\":\"!!\"}]}",
        "{\"kvs\":[{\"key\":\"Zm9v\",\"version\":1.5}]}",
        "{\"kvs\":[\"Zm9v\"]}",
        "{\"more\":\"yes\"}",
        "{\"header\":{}",
    };
    struct fl_result res;
    struct xf_err err;

    for (size_t k = 0; k < XF_ARRAY_LEN(bad); k++) {
        err.msg[0] = '\0';
        cr_assert(eq(int, fl_result_parse(FL_OP_GET, bad[k], strlen(bad[k]), &res, &err), -1),
                  "accepted %s", bad[k]);
        cr_assert(ne(str, err.msg, ""), "no reason for %s", bad[k]);
    }
}

Test(fl_ops, takes_etcds_message_for_an_error_answer)
{
    static const char body[] = "{\"error\":\"etcdserver: requested lease not found\",\"message\":"
                               "\"etcdserver: requested lease not found\",\"code\":5}";
    char out[200];

    fl_error_text(404, body, sizeof(body) - 1, out, sizeof(out));
    cr_assert(eq(str, out, "etcdserver: requested lease not found (HTTP 404)"));
    fl_error_text(502, "<html>", 6, out, sizeof(out));
    cr_assert(eq(str, out, "HTTP 502 from etcd"));
}
