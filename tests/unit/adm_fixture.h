/* tests/unit/adm_fixture.h -- the admin commands' test fixture: a real config, router and
 * admin state without sockets, and helpers that run a command and check its reply's framing.
 * Included by one test file per topic (each gets its own copy of this state). */
#ifndef ADM_FIXTURE_H
#define ADM_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "admin/adm.h"

static const char fx_yaml[] = "listen:\n"
                              "  - address: \"127.0.0.1:8000\"\n"
                              "admin:\n"
                              "  socket: \"/tmp/xf-unit/admin.sock\"\n"
                              "split:\n"
                              "  weight: 25\n"
                              "  key: [\"header:X-Consumer-ID\", \"cookie:session\", \"ip\"]\n"
                              "  seed: \"unit\"\n"
                              "clusters:\n"
                              "  x:\n"
                              "    nodes: [\"10.0.0.1:8000\", \"10.0.0.2:8000\"]\n"
                              "  y:\n"
                              "    balance: round_robin\n"
                              "    nodes: [\"10.0.1.1:8000\"]\n";

static struct cfg *fx_cfg;
static struct bal_router fx_router;
static struct adm_state fx_st;
static struct evbuffer *fx_out;
static char *fx_reply; /* the last reply, owned */
static const struct adm_peer fx_peer = {.uid = 1000, .pid = 4242, .id = 1};

static __attribute__((unused)) void
fx_setup(void)
{
    struct xf_err err = {{0}};
    struct bal_snapshot *snap;

    xf_log_min = XF_LOG_WARN; /* each change logs at info */
    fx_cfg = cfg_parse(fx_yaml, strlen(fx_yaml), "t.yaml", &err);
    cr_assert(ne(ptr, fx_cfg, NULL), "%s", err.msg);
    snap = bal_snapshot_new(fx_cfg, NULL, 1, &err);
    cr_assert(ne(ptr, snap, NULL), "%s", err.msg);
    bal_router_init(&fx_router, snap);
    cr_assert(eq(int, adm_state_init(&fx_st, fx_cfg, &fx_router, NULL, &err), 0), "%s", err.msg);
    fx_out = evbuffer_new();
}

static __attribute__((unused)) void
fx_teardown(void)
{
    free(fx_reply);
    fx_reply = NULL;
    evbuffer_free(fx_out);
    adm_state_fini(&fx_st);
    bal_router_fini(&fx_router);
    cfg_free(fx_cfg);
}

/*
 * Runs `line` and returns the reply without its closing empty line, after checking the framing:
 * every reply ends with exactly one empty line and holds no other.
 */
static __attribute__((unused)) const char *
run_len(const char *line, size_t len, enum adm_result *res_out)
{
    enum adm_result res = adm_exec(&fx_st, &fx_peer, line, len, fx_out);
    size_t n = evbuffer_get_length(fx_out);

    free(fx_reply);
    fx_reply = calloc(1, n + 1);
    evbuffer_remove(fx_out, fx_reply, n);
    if (res_out != NULL)
        *res_out = res;
    if (res == ADM_SILENT) {
        cr_assert(eq(sz, n, (size_t)0), "a silent command wrote %zu bytes", n);
        return fx_reply;
    }
    cr_assert(ge(sz, n, (size_t)3), "reply too short: \"%s\"", fx_reply);
    cr_assert(eq(int, memcmp(fx_reply + n - 2, "\n\n", 2), 0), "no closing empty line");
    fx_reply[n - 2] = '\0';
    cr_assert(eq(ptr, strstr(fx_reply, "\n\n"), NULL), "an empty line inside the reply");
    cr_assert(ne(int, fx_reply[0], '\n'), "the reply starts with an empty line");
    cr_assert(eq(int, res == ADM_ERROR, strncmp(fx_reply, "error: ", 7) == 0),
              "result %d for reply \"%s\"", res, fx_reply);
    return fx_reply;
}

static __attribute__((unused)) const char *
run(const char *line, enum adm_result *res)
{
    return run_len(line, strlen(line), res);
}

static __attribute__((unused)) const char *
run_ok(const char *line)
{
    enum adm_result res;
    const char *reply = run(line, &res);

    cr_assert(eq(int, res, ADM_OK), "\"%s\" failed: %s", line, reply);
    return reply;
}

static __attribute__((unused)) const char *
run_error(const char *line)
{
    enum adm_result res;
    const char *reply = run(line, &res);

    cr_assert(eq(int, res, ADM_ERROR), "\"%s\" did not fail: %s", line, reply);
    return reply;
}

#endif
