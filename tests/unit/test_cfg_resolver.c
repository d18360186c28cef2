/* tests/unit/test_cfg_resolver.c -- host names resolved by a thread, results collected on the
 * caller's side through an eventfd. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "config/cfg.h"

struct fx_result {
    int calls;
    bool ok;
    char text[128];
    char error[256];
};

static void
fx_done(void *arg, const struct cfg_addr *addr, const char *error)
{
    struct fx_result *r = arg;

    r->calls++;
    r->ok = addr != NULL;
    if (addr != NULL)
        snprintf(r->text, sizeof(r->text), "%s", addr->text);
    else
        snprintf(r->error, sizeof(r->error), "%s", error);
}

/* Waits for the resolver's fd and collects until `n` results came, within 10 s. */
static void
fx_collect(struct cfg_resolver *r, const struct fx_result *res, size_t n_res, int want)
{
    for (int round = 0; round < 200; round++) {
        struct pollfd pfd = {.fd = cfg_resolver_fd(r), .events = POLLIN};
        int calls = 0;

        for (size_t i = 0; i < n_res; i++)
            calls += res[i].calls;
        if (calls >= want)
            return;
        if (poll(&pfd, 1, 50) == 1)
            cfg_resolver_collect(r);
    }
    cr_assert(false, "fewer than %d results within 10 s", want);
}

Test(cfg_resolver, resolves_names_and_reports_failures_through_its_fd)
{
    struct xf_err err = {{0}};
    struct cfg_resolver *r = cfg_resolver_new(&err);
    struct fx_result res[3] = {{0}};

    cr_assert(ne(ptr, r, NULL), "%s", err.msg);
    cr_assert(eq(int, cfg_resolver_submit(r, "localhost:8000", fx_done, &res[0]), 0));
    cr_assert(eq(int, cfg_resolver_submit(r, "127.0.0.1:9000", fx_done, &res[1]), 0));
    cr_assert(eq(int, cfg_resolver_submit(r, "localhost", fx_done, &res[2]), 0));
    fx_collect(r, res, 3, 3);
    cr_assert(res[0].ok && res[1].ok, "%s / %s", res[0].error, res[1].error);
    cr_assert(eq(str, res[0].text, "localhost:8000"));
    cr_assert(eq(int, res[0].calls, 1));
    cr_assert(not(res[2].ok), "an address without a port resolved");
    cr_assert(ne(ptr, strstr(res[2].error, "no port"), NULL), "%s", res[2].error);
    cfg_resolver_free(r);
}

Test(cfg_resolver, a_cancelled_lookup_calls_nobody_and_free_answers_what_is_left)
{
    struct xf_err err = {{0}};
    struct cfg_resolver *r = cfg_resolver_new(&err);
    struct fx_result res[2] = {{0}};

    cr_assert(ne(ptr, r, NULL), "%s", err.msg);
    cr_assert(eq(int, cfg_resolver_submit(r, "localhost:1", fx_done, &res[0]), 0));
    cr_assert(eq(int, cfg_resolver_submit(r, "localhost:2", fx_done, &res[1]), 0));
    cfg_resolver_cancel(r, &res[0]);
    /* Not collected: free gives the one left its callback, the cancelled one none. */
    cfg_resolver_free(r);
    cr_assert(eq(int, res[0].calls, 0));
    cr_assert(eq(int, res[1].calls, 1));
}

Test(cfg_resolver, tells_a_name_from_an_address)
{
    cr_assert(cfg_addr_is_name("gw.example.com:8000"));
    cr_assert(cfg_addr_is_name("localhost:8000"));
    cr_assert(not(cfg_addr_is_name("10.0.0.1:8000")));
    cr_assert(not(cfg_addr_is_name("[::1]:8000")));
    cr_assert(not(cfg_addr_is_name("gw.example.com")), "no port: no address at all");
}
