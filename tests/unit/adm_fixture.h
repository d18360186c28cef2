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

static uint64_t fx_mono; /* the ramps' clock once fx_use_clock() installed it */

/* Sets up the fixture on a config of its own (a test of a suite without .init calls it). */
static __attribute__((unused)) void
fx_setup_yaml(const char *yaml)
{
    struct xf_err err = {{0}};
    struct bal_snapshot *snap;

    xf_log_min = XF_LOG_ERR; /* each change logs at info, a capacity decision at warn */
    fx_cfg = cfg_parse(yaml, strlen(yaml), "t.yaml", &err);
    cr_assert(ne(ptr, fx_cfg, NULL), "%s", err.msg);
    snap = bal_snapshot_new(fx_cfg, NULL, 1, &err);
    cr_assert(ne(ptr, snap, NULL), "%s", err.msg);
    bal_router_init(&fx_router, snap);
    cr_assert(eq(int, adm_state_init(&fx_st, fx_cfg, &fx_router, NULL, &err), 0), "%s", err.msg);
    fx_out = evbuffer_new();
}

static __attribute__((unused)) void
fx_setup(void)
{
    fx_setup_yaml(fx_yaml);
}

static uint64_t
fx_clock(void)
{
    return fx_mono;
}

static int64_t
fx_wall(void)
{
    return 1764470400000 + (int64_t)fx_mono;
}

/* Makes the ramps run on a clock the test moves with fx_at() (it starts at 100 s). */
static __attribute__((unused)) void
fx_use_clock(void)
{
    fx_mono = 100000;
    fx_st.mono_ms = fx_clock;
    fx_st.wall_ms = fx_wall;
}

/* Moves the clock to `ms` after fx_use_clock() and lets a ramp catch up. */
static __attribute__((unused)) void
fx_at(uint64_t ms)
{
    fx_mono = 100000 + ms;
    adm_ramp_tick(&fx_st);
}

/*
 * Publishes a copy of the current snapshot in which node c/addr has the health `h`, as the
 * proxy's health checks and passive detection do (the admin loop publishes nothing in between).
 */
static __attribute__((unused)) void
fx_set_health(enum cfg_cluster_id c, const char *addr, enum bal_health h)
{
    struct bal_snapshot *cur = bal_router_acquire(&fx_router);
    struct bal_snapshot *next = bal_snapshot_copy(cur, cur->version + 1);
    struct xf_err err = {{0}};
    bool found = false;

    bal_snapshot_unref(cur);
    cr_assert(ne(ptr, next, NULL));
    for (size_t i = 0; i < next->clusters[c].n_nodes; i++)
        if (strcmp(next->clusters[c].nodes[i].addr.text, addr) == 0) {
            next->clusters[c].nodes[i].health = h;
            found = true;
        }
    cr_assert(found, "no node %s/%s", cfg_cluster_name(c), addr);
    cr_assert(eq(int, bal_snapshot_rebuild(next, &err), 0), "%s", err.msg);
    bal_router_publish(&fx_router, next);
}

/* The weight in force, in hundredths. */
static __attribute__((unused)) unsigned
fx_weight(void)
{
    struct bal_snapshot *s = bal_router_acquire(&fx_router);
    unsigned bp = s->weight_bp;

    bal_snapshot_unref(s);
    return bp;
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
