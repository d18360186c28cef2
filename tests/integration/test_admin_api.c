/* tests/integration/test_admin_api.c -- listeners with role admin_api: x only. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <string.h>

#include "tests/integration/harness.h"

TestSuite(admin_api, .init = h_setup, .fini = h_teardown);

Test(admin_api, an_admin_api_listener_sends_everything_to_x_at_weight_100,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *x = h_upstream_start("x1", NULL);
    struct h_upstream *y = h_upstream_start("y1", NULL);
    int api = h_free_port();
    struct h_proxy *p =
        h_proxy_start(&(struct h_proxy_opts){.x = {{x->port}},
                                             .y = {{y->port}},
                                             .weight = "100",
                                             .admin_api_port = api,
                                             .split_extra = "  key: [\"header:X-Key\"]\n"});
    struct h_conn *split = h_connect(p->port);
    struct h_conn *admin = h_connect(api);

    for (int i = 0; i < 20; i++) {
        struct h_msg m;

        cr_assert(eq(int, h_sendf(split, "GET / HTTP/1.1\r\nHost: h\r\nX-Key: k%d\r\n\r\n", i), 0));
        cr_assert(eq(int, h_read_response(split, &m), 0), "%s", m.error);
        cr_assert(eq(str, (char *)h_header(&m, "X-Upstream"), "y1"), "the split listener");
        cr_assert(eq(int,
                     h_sendf(admin,
                             "POST /services HTTP/1.1\r\nHost: h\r\nX-Key: k%d\r\n"
                             "Content-Length: 2\r\n\r\n{}",
                             i),
                     0));
        cr_assert(eq(int, h_read_response(admin, &m), 0), "%s", m.error);
        cr_assert(eq(int, m.status, 200));
        cr_assert(eq(str, (char *)h_header(&m, "X-Upstream"), "x1"),
                  "an admin_api request went to %s", h_header(&m, "X-Upstream"));
    }
    h_proxy_finish(p);
}
