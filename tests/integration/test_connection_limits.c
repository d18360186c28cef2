/* tests/integration/test_connection_limits.c -- limits.max_connections holds extra clients back. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <string.h>

#include "tests/integration/harness.h"

TestSuite(connection_limits, .init = h_setup, .fini = h_teardown);

static void
get_ok(struct h_conn *c, const char *who)
{
    struct h_msg m;

    cr_assert(eq(int, h_get(c, "/", &m), 0), "%s: %s", who, m.error);
    cr_assert(eq(int, m.status, 200), "%s: status %d", who, m.status);
}

Test(connection_limits, a_client_over_max_connections_is_served_only_once_another_closes,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p =
        h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}, .max_connections = 2});
    struct h_conn *c1 = h_connect(p->port);
    struct h_conn *c2 = h_connect(p->port);
    struct h_conn *c3;
    struct h_msg m;

    get_ok(c1, "client 1");
    get_ok(c2, "client 2");
    c3 = h_connect(p->port); /* may sit in the kernel's backlog: connect() still succeeds */
    h_sendf(c3, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", H_HOST);
    cr_assert(eq(int, h_conn_wait(c3, 1000), H_OPEN),
              "a third client was answered or closed while two were connected (limit 2)");
    h_close(c1);
    cr_assert(eq(int, h_read_response(c3, &m), 0), "the third client was not served: %s", m.error);
    cr_assert(eq(int, m.status, 200));
    get_ok(c2, "client 2 again");
    h_proxy_finish(p);
}
