/* tests/integration/test_routing.c -- which node answers: per-request routing over cluster x. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <string.h>

#include "tests/integration/harness.h"

TestSuite(routing, .init = h_setup, .fini = h_teardown);

/* Sends GET / on `c` and returns the name of the node that answered (X-Upstream). */
static const char *
who_answers(struct h_conn *c, int i)
{
    struct h_msg m;
    const char *name;

    cr_assert(eq(int, h_get(c, "/", &m), 0), "request %d: %s", i, m.error);
    cr_assert(eq(int, m.status, 200), "request %d: status %d", i, m.status);
    name = h_header(&m, "X-Upstream");
    cr_assert(ne(ptr, (void *)name, NULL), "request %d: no X-Upstream header", i);
    cr_assert(eq(str, m.body, h_fmt("%s\n", name)), "request %d: the body is not the node's name",
              i);
    return name;
}

Test(routing, consecutive_requests_on_one_client_connection_alternate_between_two_round_robin_nodes,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *a = h_upstream_start("a", NULL);
    struct h_upstream *b = h_upstream_start("b", NULL);
    struct h_proxy *p = h_proxy_start(
        &(struct h_proxy_opts){.x = {{a->port}, {b->port}}, .balance_x = "round_robin"});
    struct h_conn *c = h_connect(p->port);
    const char *prev = NULL;
    size_t n_a = 0, n_b = 0;

    for (int i = 0; i < 8; i++) {
        const char *name = who_answers(c, i);

        if (prev != NULL)
            cr_assert(ne(str, (char *)name, (char *)prev),
                      "requests %d and %d on one connection both went to %s", i - 1, i, name);
        n_a += strcmp(name, "a") == 0;
        n_b += strcmp(name, "b") == 0;
        prev = name;
    }
    cr_assert(eq(sz, n_a, (size_t)4));
    cr_assert(eq(sz, n_b, (size_t)4));
    h_proxy_finish(p);
}

Test(routing, every_request_goes_to_cluster_x_while_the_split_weight_is_zero,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *a = h_upstream_start("x1", NULL);
    struct h_upstream *y = h_upstream_start("y1", NULL);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{a->port}}, .y = {{y->port}}});

    /* A new connection each time: later issues split by client, never by connection order. */
    for (int i = 0; i < 10; i++)
        cr_assert(eq(str, (char *)who_answers(h_connect(p->port), i), "x1"));
    h_proxy_finish(p);
}

/* Smooth or not, any weighted round-robin gives a node of weight 2 two of every three requests;
 * the tolerance of one request allows a cycle that does not start where the test starts. */
Test(routing, round_robin_gives_a_node_of_weight_two_twice_the_requests_of_weight_one,
     .timeout = H_TEST_TIMEOUT)
{
    struct h_upstream *a = h_upstream_start("a", NULL);
    struct h_upstream *b = h_upstream_start("b", NULL);
    struct h_proxy *p = h_proxy_start(
        &(struct h_proxy_opts){.x = {{a->port}, {b->port, 2}}, .balance_x = "round_robin"});
    struct h_conn *c = h_connect(p->port);
    int n_a = 0, n_b = 0;

    for (int i = 0; i < 30; i++) {
        const char *name = who_answers(c, i);

        n_a += strcmp(name, "a") == 0;
        n_b += strcmp(name, "b") == 0;
    }
    cr_assert(eq(int, n_a + n_b, 30));
    cr_assert(ge(int, n_b, 19), "the node of weight 2 got %d of 30 requests (expected 20 +- 1)",
              n_b);
    cr_assert(le(int, n_b, 21), "the node of weight 2 got %d of 30 requests (expected 20 +- 1)",
              n_b);
    h_proxy_finish(p);
}
