/* tests/integration/test_tunnel_moves.c -- tunnels that leave their side (docs/tunnels.md, "When
 * the split changes"): a rollback, a drain or a removed node, and tunnels.follow_weight close
 * them at tunnels.close_rate, a WebSocket with a close frame 1001 between two of the node's
 * frames; pins keep theirs, and an undone change spares those not closed yet. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/integration/harness.h"
#include "tests/integration/tunnel_helpers.h"

TestSuite(tunnel_moves, .init = h_setup, .fini = h_teardown);

#define MOVES_TIMEOUT 60 /* seconds: each test starts Python processes and waits for closings */
#define MANY_MAX      64

/* Whether s starts with prefix. */
static bool
starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ------------------------------------------------------------------ many WebSocket clients */

/* One connection of tests/integration/ws_many.py, from its "conn ..." line. */
struct many_conn {
    char first[32];  /* the node that greeted it ("y1") */
    int code;        /* the close code the server sent, -1 when the server did not close it */
    long long at_ms; /* when it closed, on h_now_ms's clock; -1 */
    char again[32];  /* the node that greeted its reconnection, "-" when none */
    bool still_open; /* open when released, and closed by the client */
    bool echo;       /* a message sent when released came back */
};

struct many {
    struct h_proc *proc;
    size_t n;
    struct many_conn c[MANY_MAX];
};

/* What the client printed so far ("" when nothing). */
static const char *
many_out(const struct many *m)
{
    const char *out = h_read_file(m->proc->log_path, NULL);

    return out != NULL ? out : "";
}

/* How many lines of the client's output start with `prefix`. */
static size_t
many_lines(const struct many *m, const char *prefix)
{
    const char *out = many_out(m);
    size_t n = 0;

    for (const char *l = out; *l != '\0';) {
        const char *nl = strchr(l, '\n');

        if (starts(l, prefix))
            n++;
        if (nl == NULL)
            break;
        l = nl + 1;
    }
    return n;
}

/* Waits until at least `want` lines start with `prefix`; fails showing the output when not. */
static void
many_await(const struct many *m, const char *prefix, size_t want, int timeout_ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;

    while (many_lines(m, prefix) < want && h_now_ms() < deadline && h_proc_alive(m->proc))
        h_sleep_ms(10);
    cr_assert(ge(sz, many_lines(m, prefix), want), "%s: fewer than %zu lines \"%s\" in:\n%s",
              m->proc->name, want, prefix, many_out(m));
}

/*
 * Starts ws_many.py on crossfade's `path` with `n` connections (keys: a comma-separated list of
 * n values for X-Key, or NULL for none) and more arguments; returns once every connection read
 * its greeting.
 */
static struct many *
many_start(const struct h_proxy *p, const char *name, const char *path, size_t n, const char *keys,
           const char *const more[])
{
    struct many *m = h_alloc(sizeof(*m));
    const char *argv[16];
    size_t k = 0;

    cr_assert(le(sz, n, (size_t)MANY_MAX));
    ws_need_python();
    m->n = n;
    if (keys != NULL) {
        argv[k++] = "--keys";
        argv[k++] = keys;
    } else {
        argv[k++] = "--count";
        argv[k++] = h_fmt("%zu", n);
    }
    for (size_t i = 0; more != NULL && more[i] != NULL; i++)
        argv[k++] = more[i];
    argv[k] = NULL;
    m->proc = ws_script_start("ws_many.py", name, h_fmt("ws-many-%s.log", name),
                              h_fmt("ws://127.0.0.1:%d%s", p->port, path), argv);
    many_await(m, "ready", 1, 20000);
    cr_assert(eq(sz, many_lines(m, "open "), n), "%s", many_out(m));
    return m;
}

/* Waits for the client to end (asserts it went well) and reads its "conn" lines. */
static void
many_finish(struct many *m)
{
    int code = h_proc_wait(m->proc, 30000);
    const char *out = many_out(m);
    size_t seen = 0;

    cr_assert(eq(int, code, 0), "%s exited %d:\n%s", m->proc->name, code, out);
    for (const char *l = out; *l != '\0';) {
        const char *nl = strchr(l, '\n');
        unsigned i;
        int still, echo;
        struct many_conn c;

        if (sscanf(l, "conn %u first=%31s code=%d at_ms=%lld again=%31s still_open=%d echo=%d", &i,
                   c.first, &c.code, &c.at_ms, c.again, &still, &echo) == 7) {
            cr_assert(lt(uint, i, (unsigned)m->n), "%s", out);
            c.still_open = still != 0;
            c.echo = echo != 0;
            m->c[i] = c;
            seen++;
        }
        if (nl == NULL)
            break;
        l = nl + 1;
    }
    cr_assert(eq(sz, seen, m->n), "%s: %zu conn lines of %zu:\n%s", m->proc->name, seen, m->n, out);
}

/* "k0,k1,...": n keys. */
static const char *
keys_list(const char *const keys[], size_t n)
{
    const char *list = "";

    for (size_t i = 0; i < n; i++)
        list = h_fmt("%s%s%s", list, i > 0 ? "," : "", keys[i]);
    return list;
}

/* ------------------------------------------------------------------ admin */

/* Polls `show tunnels` until its total line is `want`; fails showing the reply when not. */
static void
await_total(int fd, const char *want)
{
    uint64_t deadline = h_now_ms() + H_IO_TIMEOUT_MS;

    while (strcmp(tunnels_total(fd), want) != 0 && h_now_ms() < deadline)
        h_sleep_ms(10);
    cr_assert(eq(str, (char *)tunnels_total(fd), (char *)want), "show tunnels:\n%s",
              h_admin_cmd(fd, "show tunnels"));
}

/* The worker threads crossfade runs (`show version`). */
static unsigned
workers_of(int fd)
{
    const char *v = h_admin_cmd(fd, "show version");
    const char *w = strstr(v, "\nworkers ");
    unsigned n = 0;

    cr_assert(ne(ptr, (void *)w, NULL), "no workers in show version:\n%s", v);
    cr_assert(eq(int, sscanf(w, "\nworkers %u", &n), 1), "%s", v);
    return n;
}

/* Whether `which header:X-Key=KEY` sends the key to x now. */
static bool
key_on_x(int fd, const char *key)
{
    const char *reply = h_admin_cmd(fd, h_fmt("which header:X-Key=%s", key));

    cr_assert(ne(ptr, (void *)strstr(reply, "\nside "), NULL), "which %s:\n%s", key, reply);
    return strstr(reply, "\nside x") != NULL;
}

static int
cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;

    return (x > y) - (x < y);
}

#define SPLIT_X_KEY "  key: [\"header:X-Key\"]\n"

/* ------------------------------------------------------------------ rollback */

#define RATE_N    40 /* WebSocket clients on y */
#define RATE_RATE 20 /* tunnels.close_rate: RATE_N take about 2 s */

/*
 * 40 WebSocket tunnels on y, then a rollback with tunnels.close_rate 20: the reply announces
 * them, each client gets a close 1001, the closings spread over about 2 s (never more than the
 * rate allows in a second, give or take the noise of a loaded machine), each client's reconnection
 * lands on x, and y has no tunnel left.
 */
static void
rollback_closes_at_the_rate(const char *workers_yaml, unsigned workers)
{
    struct ws_node *x1 = ws_node_start("x1");
    struct ws_node *y1 = ws_node_start("y1");
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{x1->port}},
        .y = {{y1->port}},
        .weight = "100",
        .extra_yaml = h_fmt("tunnels: {close_rate: %d}\n%s", RATE_RATE, workers_yaml)});
    int fd = h_admin_connect(p);
    struct many *m;
    long long at[RATE_N], span, rollback_ms;
    size_t most = 0;
    char *reply;

    cr_assert(eq(uint, workers_of(fd), workers));
    m = many_start(p, "rate", "/rate", RATE_N, NULL, (const char *[]){"--reconnect", NULL});
    await_total(fd, h_fmt("total x=0 y=%d", RATE_N));

    rollback_ms = (long long)h_now_ms();
    reply = h_admin_cmd(fd, "rollback");
    /* An expectation: when the count is off, the closings are still checked. */
    cr_expect(eq(str, reply,
                 (char *)h_fmt("ok: rolled back: weight y 0.00 (was 100.00)\n"
                               "note: %d tunnels on y close over about 2s (tunnels.close_rate %d "
                               "per second; a pinned client's stays), WebSocket ones with a close "
                               "frame 1001\n",
                               RATE_N, RATE_RATE)));
    many_finish(m);
    for (size_t i = 0; i < RATE_N; i++) {
        const struct many_conn *c = &m->c[i];

        cr_assert(eq(str, (char *)c->first, "y1"), "connection %zu opened on %s", i, c->first);
        cr_assert(eq(int, c->code, 1001), "connection %zu closed with %d:\n%s", i, c->code,
                  many_out(m));
        cr_assert(ge(i64, c->at_ms, rollback_ms), "connection %zu closed before the rollback", i);
        cr_assert(eq(str, (char *)c->again, "x1"),
                  "connection %zu reconnected to %s after the rollback", i, c->again);
        at[i] = c->at_ms;
    }
    qsort(at, RATE_N, sizeof(at[0]), cmp_ll);
    for (size_t i = 0, j = 0; i < RATE_N; i++) {
        while (j < RATE_N && at[j] < at[i] + 1000)
            j++;
        if (j - i > most)
            most = j - i;
    }
    span = at[RATE_N - 1] - at[0];
    cr_log_info("%u worker(s): %d closings from +%lld ms to +%lld ms after the rollback; at most "
                "%zu in a second",
                workers, RATE_N, at[0] - rollback_ms, at[RATE_N - 1] - rollback_ms, most);
    /* The first go at once; 40 at 20 per second take (40 - 1) / 20 = 1.95 s (with two workers,
     * each at 10 per second, the one holding more of them takes longer). */
    cr_assert(le(i64, at[0] - rollback_ms, 1000LL), "the first closing came %lld ms after",
              at[0] - rollback_ms);
    cr_assert(ge(i64, span, 1200LL), "%d closings within %lld ms: not at %d per second", RATE_N,
              span, RATE_RATE);
    cr_assert(le(i64, span, 3500LL), "%d closings over %lld ms: slower than %d per second", RATE_N,
              span, RATE_RATE);
    /* A second holds 20 closings, plus a tick's burst (a tick closes what 50 to 150 ms of the
     * rate allowed: up to 3) and the noise of the clients' clocks on a loaded machine; without
     * the rate, all 40 go within a second. */
    cr_assert(le(sz, most, (size_t)27), "%zu closings within one second at close_rate %d", most,
              RATE_RATE);

    await_total(fd, "total x=0 y=0");
    h_assert_stat(fd, "y tunnels", "total", RATE_N);
    h_assert_stat(fd, "x tunnels", "total", RATE_N);
    h_proxy_finish(p);
}

Test(tunnel_moves, a_rollback_closes_y_tunnels_at_close_rate_and_clients_reconnect_to_x,
     .timeout = MOVES_TIMEOUT)
{
    rollback_closes_at_the_rate("workers: 1\n", 1);
}

Test(tunnel_moves, with_two_workers_a_rollback_closes_y_tunnels_at_close_rate_in_all,
     .timeout = MOVES_TIMEOUT)
{
    rollback_closes_at_the_rate("workers: 2\n", 2);
}

Test(tunnel_moves, a_pinned_key_keeps_its_tunnel_on_rollback, .timeout = MOVES_TIMEOUT)
{
    struct ws_node *x1 = ws_node_start("x1");
    struct ws_node *y1 = ws_node_start("y1");
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{x1->port}}, .y = {{y1->port}}, .weight = "100", .split_extra = SPLIT_X_KEY});
    int fd = h_admin_connect(p);
    const char *release = h_path("release");
    struct many *m;
    char *reply;

    cr_assert(eq(str, h_admin_cmd(fd, "pin tester y"), "ok: pinned \"tester\" to y\n"));
    m = many_start(p, "pinned", "/pinned", 2, "tester,someone",
                   (const char *[]){"--reconnect", "--release", release, NULL});
    await_total(fd, "total x=0 y=2");
    reply = h_admin_cmd(fd, "rollback");
    cr_assert(starts(reply, "ok: rolled back: weight y 0.00 (was 100.00)\nnote: "), "%s", reply);
    /* The unpinned client goes (at close_rate 200, at once), and comes back on x. */
    many_await(m, "again ", 1, H_IO_TIMEOUT_MS);
    await_total(fd, "total x=0 y=1");
    /* The pinned one stays: had it been doomed too, the next tick (150 ms at most) closed it. */
    h_sleep_ms(1000);
    cr_assert(eq(sz, many_lines(m, "closed "), (size_t)1), "%s", many_out(m));
    cr_assert(eq(i64, tunnels_of(fd, "y", y1->addr), 1LL));
    h_write_file("release", "now\n");
    many_finish(m);
    cr_assert(eq(str, (char *)m->c[0].first, "y1"));
    cr_assert(eq(int, m->c[0].code, -1), "the pinned key's tunnel was closed with %d",
              m->c[0].code);
    cr_assert(m->c[0].still_open && m->c[0].echo, "the pinned key's tunnel no longer echoes:\n%s",
              many_out(m));
    cr_assert(eq(str, (char *)m->c[1].first, "y1"));
    cr_assert(eq(int, m->c[1].code, 1001), "%s", many_out(m));
    cr_assert(eq(str, (char *)m->c[1].again, "x1"), "%s", many_out(m));
    await_total(fd, "total x=0 y=0");
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ weight changes */

#define FW_N 12 /* keys k0..k11 */

static const char *const fw_keys[FW_N] = {"k0", "k1", "k2", "k3", "k4",  "k5",
                                          "k6", "k7", "k8", "k9", "k10", "k11"};

Test(tunnel_moves, a_weight_change_leaves_tunnels_on_their_side_by_default,
     .timeout = MOVES_TIMEOUT)
{
    struct ws_node *x1 = ws_node_start("x1");
    struct ws_node *y1 = ws_node_start("y1");
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{x1->port}}, .y = {{y1->port}}, .weight = "100", .split_extra = SPLIT_X_KEY});
    int fd = h_admin_connect(p);
    struct many *m;
    size_t moved = 0;

    m = many_start(p, "stay", "/stay", FW_N, keys_list(fw_keys, FW_N),
                   (const char *[]){"--reconnect", NULL});
    await_total(fd, h_fmt("total x=0 y=%d", FW_N));
    cr_assert(eq(str, h_admin_cmd(fd, "set weight 50"), "ok: weight y 50.00 (was 100.00)\n"));
    for (size_t i = 0; i < FW_N; i++)
        moved += key_on_x(fd, fw_keys[i]);
    cr_assert(gt(sz, moved, (size_t)0), "weight 50 moved none of the keys to x: choose others");
    /* tunnels.follow_weight is off: every tunnel stays (at close_rate 200, a doomed one would have
     * gone within a tick). */
    h_sleep_ms(1500);
    cr_assert(eq(sz, many_lines(m, "closed "), (size_t)0), "%s", many_out(m));
    cr_assert(eq(str, (char *)tunnels_total(fd), (char *)h_fmt("total x=0 y=%d", FW_N)));
    /* The same tunnels do leave on a rollback: the wait above could have seen them go. */
    cr_assert(starts(h_admin_cmd(fd, "rollback"), "ok: rolled back:"));
    many_finish(m);
    for (size_t i = 0; i < FW_N; i++) {
        cr_assert(eq(int, m->c[i].code, 1001), "key %s: %d", fw_keys[i], m->c[i].code);
        cr_assert(eq(str, (char *)m->c[i].again, "x1"), "key %s", fw_keys[i]);
    }
    await_total(fd, "total x=0 y=0");
    h_proxy_finish(p);
}

Test(tunnel_moves, with_follow_weight_a_change_closes_only_the_tunnels_whose_key_moved,
     .timeout = MOVES_TIMEOUT)
{
    struct ws_node *x1 = ws_node_start("x1");
    struct ws_node *y1 = ws_node_start("y1");
    struct h_proxy *p =
        h_proxy_start(&(struct h_proxy_opts){.x = {{x1->port}},
                                             .y = {{y1->port}},
                                             .weight = "100",
                                             .split_extra = SPLIT_X_KEY,
                                             .extra_yaml = "tunnels: {follow_weight: true}\n"});
    int fd = h_admin_connect(p);
    const char *release = h_path("release");
    struct many *m;
    bool on_x[FW_N];
    size_t moved = 0, pinned = FW_N;

    m = many_start(p, "follow", "/follow", FW_N, keys_list(fw_keys, FW_N),
                   (const char *[]){"--reconnect", "--release", release, NULL});
    await_total(fd, h_fmt("total x=0 y=%d", FW_N));
    cr_assert(eq(str, h_admin_cmd(fd, "set weight 50"), "ok: weight y 50.00 (was 100.00)\n"));
    for (size_t i = 0; i < FW_N; i++) {
        on_x[i] = key_on_x(fd, fw_keys[i]);
        moved += on_x[i];
        if (!on_x[i] && pinned == FW_N)
            pinned = i;
    }
    cr_assert(gt(sz, moved, (size_t)0), "weight 50 moved none of the keys: choose others");
    cr_assert(lt(sz, pinned, (size_t)FW_N), "weight 50 moved all the keys: choose others");
    /* Those whose key went to x close (close_rate 200: at once) and come back on x. */
    many_await(m, "again ", moved, H_IO_TIMEOUT_MS);
    await_total(fd, h_fmt("total x=0 y=%zu", FW_N - moved));
    /* The others stay: a doomed one would have gone within a tick. */
    h_sleep_ms(1000);
    cr_assert(eq(sz, many_lines(m, "closed "), moved), "%s", many_out(m));
    /* A pin is a change too: the key pinned to x leaves y. */
    cr_assert(eq(str, h_admin_cmd(fd, h_fmt("pin %s x", fw_keys[pinned])),
                 (char *)h_fmt("ok: pinned \"%s\" to x\n", fw_keys[pinned])));
    many_await(m, "again ", moved + 1, H_IO_TIMEOUT_MS);
    await_total(fd, h_fmt("total x=0 y=%zu", FW_N - moved - 1));
    h_write_file("release", "now\n");
    many_finish(m);
    for (size_t i = 0; i < FW_N; i++) {
        const struct many_conn *c = &m->c[i];

        cr_assert(eq(str, (char *)c->first, "y1"), "key %s", fw_keys[i]);
        if (on_x[i] || i == pinned) {
            cr_assert(eq(int, c->code, 1001), "key %s (now on x) closed with %d:\n%s", fw_keys[i],
                      c->code, many_out(m));
            cr_assert(eq(str, (char *)c->again, "x1"), "key %s", fw_keys[i]);
        } else {
            cr_assert(eq(int, c->code, -1), "key %s (still on y) was closed with %d", fw_keys[i],
                      c->code);
            cr_assert(c->still_open && c->echo, "key %s's tunnel no longer echoes:\n%s", fw_keys[i],
                      many_out(m));
        }
    }
    await_total(fd, "total x=0 y=0");
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ drain and del */

#define DR_PER_NODE 3

Test(tunnel_moves, drain_and_del_node_close_the_node_s_tunnels_and_clients_move_on,
     .timeout = MOVES_TIMEOUT)
{
    struct ws_node *x1 = ws_node_start("x1");
    struct ws_node *y1 = ws_node_start("y1");
    struct ws_node *y2 = ws_node_start("y2");
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{x1->port}},
                                                             .y = {{y1->port}, {y2->port}},
                                                             .weight = "100",
                                                             .split_extra = SPLIT_X_KEY});
    int fd = h_admin_connect(p);
    const char *keys[2 * DR_PER_NODE];
    struct many *m;

    /* Keys 0..2 go to y1, 3..5 to y2 (hash balance). */
    for (unsigned i = 0; i < DR_PER_NODE; i++) {
        keys[i] = h_admin_key_for_node(fd, "header:X-Key", y1->addr, i);
        keys[DR_PER_NODE + i] = h_admin_key_for_node(fd, "header:X-Key", y2->addr, i);
        cr_assert(ne(ptr, (void *)keys[i], NULL));
        cr_assert(ne(ptr, (void *)keys[DR_PER_NODE + i], NULL));
    }
    m = many_start(p, "drain", "/drain", 2 * DR_PER_NODE, keys_list(keys, 2 * DR_PER_NODE),
                   (const char *[]){"--reconnect", NULL});
    await_tunnels(fd, "y", y1->addr, DR_PER_NODE);
    await_tunnels(fd, "y", y2->addr, DR_PER_NODE);

    /* Draining y1 closes its tunnels, and only those: their clients come back on y2. */
    cr_assert(eq(str, h_admin_cmd(fd, h_fmt("drain node y/%s", y1->addr)),
                 (char *)h_fmt("ok: node y/%s draining (was up)\n", y1->addr)));
    many_await(m, "again ", DR_PER_NODE, H_IO_TIMEOUT_MS);
    await_tunnels(fd, "y", y1->addr, 0);
    h_sleep_ms(1000); /* a doomed tunnel of y2 would have gone within a tick */
    cr_assert(eq(sz, many_lines(m, "closed "), (size_t)DR_PER_NODE), "%s", many_out(m));
    cr_assert(eq(i64, tunnels_of(fd, "y", y2->addr), (long long)DR_PER_NODE));

    /* Removing y2 closes the rest: y has no node left that takes requests, and fails over to x. */
    cr_assert(eq(str, h_admin_cmd(fd, h_fmt("del node y/%s", y2->addr)),
                 (char *)h_fmt("ok: deleted node y/%s\n", y2->addr)));
    many_finish(m);
    for (size_t i = 0; i < 2 * DR_PER_NODE; i++) {
        const struct many_conn *c = &m->c[i];
        bool on_y1 = i < DR_PER_NODE;

        cr_assert(eq(str, (char *)c->first, on_y1 ? "y1" : "y2"), "key %s", keys[i]);
        cr_assert(eq(int, c->code, 1001), "key %s closed with %d:\n%s", keys[i], c->code,
                  many_out(m));
        cr_assert(eq(str, (char *)c->again, on_y1 ? "y2" : "x1"), "key %s reconnected to %s:\n%s",
                  keys[i], c->again, many_out(m));
    }
    await_total(fd, "total x=0 y=0");
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ undo */

#define UNDO_N    20
#define UNDO_RATE 5

Test(tunnel_moves, an_undone_rollback_spares_the_tunnels_not_closed_yet, .timeout = MOVES_TIMEOUT)
{
    struct ws_node *x1 = ws_node_start("x1");
    struct ws_node *y1 = ws_node_start("y1");
    struct h_proxy *p = h_proxy_start(
        &(struct h_proxy_opts){.x = {{x1->port}},
                               .y = {{y1->port}},
                               .weight = "100",
                               .extra_yaml = h_fmt("tunnels: {close_rate: %d}\n", UNDO_RATE)});
    int fd = h_admin_connect(p);
    const char *release = h_path("release");
    unsigned workers = workers_of(fd);
    struct many *m;
    long long t0, t1, left, bound;
    size_t closed = 0;

    m = many_start(p, "undo", "/undo", UNDO_N, NULL, (const char *[]){"--release", release, NULL});
    await_total(fd, h_fmt("total x=0 y=%d", UNDO_N));
    t0 = (long long)h_now_ms();
    cr_assert(starts(h_admin_cmd(fd, "rollback"), "ok: rolled back:"));
    h_sleep_ms(500);
    cr_assert(eq(str, h_admin_cmd(fd, "set weight 100"), "ok: weight y 100.00 (was 0.00)\n"));
    t1 = (long long)h_now_ms();
    /* Each worker closed one at once and then its share of 5 per second until the undo. */
    bound = (long long)workers + (UNDO_RATE * (t1 - t0) + 999) / 1000;
    h_sleep_ms(300); /* the close handshakes begun before the undo end */
    left = tunnels_of(fd, "y", y1->addr);
    cr_log_info("undo %lld ms after the rollback (%u workers): %lld of %d tunnels left", t1 - t0,
                workers, left, UNDO_N);
    cr_assert(lt(i64, left, (long long)UNDO_N), "the rollback closed nothing before the undo");
    cr_assert(ge(i64, left, UNDO_N - bound),
              "%lld tunnels closed in %lld ms at close_rate %d (%u workers): at most %lld",
              UNDO_N - left, t1 - t0, UNDO_RATE, workers, bound);
    /* The others stay: at 5 per second, 2 s would have closed 10 more. */
    h_sleep_ms(2000);
    cr_assert(eq(i64, tunnels_of(fd, "y", y1->addr), left),
              "tunnels still closing 2 s after the undo");
    h_write_file("release", "now\n");
    many_finish(m);
    for (size_t i = 0; i < UNDO_N; i++) {
        const struct many_conn *c = &m->c[i];

        if (c->code == -1) {
            cr_assert(c->still_open && c->echo, "connection %zu no longer echoes:\n%s", i,
                      many_out(m));
            continue;
        }
        closed++;
        cr_assert(eq(int, c->code, 1001), "connection %zu closed with %d", i, c->code);
        cr_assert(le(i64, c->at_ms, t1 + 300), "connection %zu closed %lld ms after the undo", i,
                  c->at_ms - t1);
    }
    cr_assert(eq(sz, closed, (size_t)(UNDO_N - left)), "%s", many_out(m));
    h_proxy_finish(p);
}

/* ------------------------------------------------------------------ raw tunnels */

Test(tunnel_moves, a_tunnel_that_is_not_a_websocket_is_closed_without_a_close_frame,
     .timeout = MOVES_TIMEOUT)
{
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct raw_node *n = raw_node_start();
    struct h_proxy *p =
        h_proxy_start(&(struct h_proxy_opts){.x = {{x1->port}},
                                             .y = {{n->port}},
                                             .weight = "100",
                                             .extra_yaml = "tunnels: {close_rate: 200}\n"});
    int fd = h_admin_connect(p);
    struct h_conn *c = h_connect(p->port);
    const char *seen, *rest;
    size_t rest_len;
    struct h_msg m;
    char buf[8];
    uint64_t t0;
    enum h_wait w;
    int node;

    cr_assert(eq(int,
                 h_send_str(c, "GET /foo HTTP/1.1\r\nHost: " H_HOST
                               "\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n"),
                 0));
    node = raw_accept(n);
    seen = raw_read_head(node, &rest, &rest_len);
    cr_assert(ne(ptr, (void *)h_memcasemem(seen, strlen(seen), "\r\nUpgrade: foo\r\n"), NULL), "%s",
              seen);
    raw_send(node,
             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\n",
             strlen("HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: "
                    "Upgrade\r\n\r\n"));
    cr_assert(eq(int, h_read_head(c, &m, H_IO_TIMEOUT_MS), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 101), "%.*s", (int)m.head_len, m.head);
    cr_assert(eq(str, (char *)h_header(&m, "Upgrade"), "foo"), "%.*s", (int)m.head_len, m.head);
    /* A tunnel: bytes both ways. */
    cr_assert(eq(int, h_send_str(c, "ping"), 0));
    cr_assert(eq(sz, raw_recv(node, buf, 4, H_IO_TIMEOUT_MS), (size_t)4));
    raw_send(node, "pong", 4);
    conn_expect(c, "pong", 4);
    await_total(fd, "total x=0 y=1");

    t0 = h_now_ms();
    cr_assert(starts(h_admin_cmd(fd, "rollback"), "ok: rolled back:"));
    /* Closed at once (close_rate 200), both ways, and no WebSocket close frame first. */
    w = h_conn_wait(c, 1000);
    cr_assert(eq(int, w, H_CLOSED), "%s after the rollback (%zu bytes, the first 0x%02x)",
              w == H_DATA ? "bytes came" : "the tunnel was still open 1 s", h_pending(c),
              h_pending(c) > 0 ? (unsigned char)c->buf[c->off] : 0u);
    cr_log_info("the client saw the end %llu ms after the rollback",
                (unsigned long long)(h_now_ms() - t0));
    cr_assert(raw_wait_eof(node, 1000), "the node's connection stayed open");
    await_total(fd, "total x=0 y=0");
    close(node);
    close(n->lfd);
    h_proxy_finish(p);
}

#define FR_LEN 1000 /* the payload of the node's frame */

Test(tunnel_moves, the_close_frame_waits_for_the_end_of_the_node_s_frame, .timeout = MOVES_TIMEOUT)
{
    static const unsigned char head[4] = {0x82, 0x7e, FR_LEN >> 8, FR_LEN & 0xff};
    static const unsigned char going_away[4] = {0x88, 0x02, 0x03, 0xe9};
    /* The client's answer: a masked close 1001 (mask 0). */
    static const unsigned char answer[8] = {0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe9};
    struct h_upstream *x1 = h_upstream_start("x1", NULL);
    struct raw_node *n = raw_node_start();
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){
        .x = {{x1->port}}, .y = {{n->port}}, .weight = "100", .small_quarantine = true});
    int fd = h_admin_connect(p);
    struct raw_tunnel t = raw_tunnel_open(p, n, WS_REQUEST("/frames"), "", "");
    char payload[FR_LEN], next[2 + FR_LEN / 2 + 3], buf[sizeof(answer)];

    h_pattern_fill(payload, sizeof(payload), 0);
    /* The node sends a frame's head and half of its payload. */
    raw_send(t.node, head, sizeof(head));
    raw_send(t.node, payload, FR_LEN / 2);
    conn_expect(t.c, (const char *)head, sizeof(head));
    conn_expect(t.c, payload, FR_LEN / 2);
    await_total(fd, "total x=0 y=1");

    cr_assert(starts(h_admin_cmd(fd, "rollback"), "ok: rolled back:"));
    /* In the middle of a frame: no close frame yet. */
    cr_assert(eq(int, h_conn_wait(t.c, 300), H_OPEN),
              "the client got %zu bytes (the first 0x%02x) in the middle of the node's frame",
              h_pending(t.c), h_pending(t.c) > 0 ? (unsigned char)t.c->buf[t.c->off] : 0u);
    /* The rest of the frame and the start of the next, in one write. */
    memcpy(next, payload + FR_LEN / 2, FR_LEN / 2);
    memcpy(next + FR_LEN / 2, "\x81\x05hel", 5);
    raw_send(t.node, next, FR_LEN / 2 + 5);
    /* The whole frame, then crossfade's close frame, then nothing of the next frame: the end. */
    conn_expect(t.c, payload + FR_LEN / 2, FR_LEN / 2);
    conn_expect(t.c, (const char *)going_away, sizeof(going_away));
    cr_assert(conn_eof(t.c, H_IO_TIMEOUT_MS), "%zu more bytes after the close frame (0x%02x)",
              h_pending(t.c), h_pending(t.c) > 0 ? (unsigned char)t.c->buf[t.c->off] : 0u);
    /* The client's answer still reaches the node; then the client closes, and so does the
     * tunnel. */
    cr_assert(eq(int, h_send(t.c, answer, sizeof(answer)), 0));
    cr_assert(eq(sz, raw_recv(t.node, buf, sizeof(answer), H_IO_TIMEOUT_MS), sizeof(answer)),
              "the client's close frame did not reach the node");
    cr_assert(eq(int, memcmp(buf, answer, sizeof(answer)), 0));
    h_close(t.c);
    cr_assert(raw_wait_eof(t.node, H_IO_TIMEOUT_MS), "the client's close did not reach the node");
    await_total(fd, "total x=0 y=0");
    close(t.node);
    close(n->lfd);
    h_proxy_finish(p);
}

/*
 * Stopping (SIGTERM; a takeover stops the old process the same way) does not keep tunnels to the
 * deadline and cut them there: each is closed in order well before timeouts.shutdown (4 s here),
 * a WebSocket with a close frame 1001 -- while crossfade still runs -- and once the client
 * answers, nothing is left and crossfade exits 0 before the deadline.
 */
Test(tunnel_moves, stopping_closes_tunnels_in_order_before_the_deadline, .timeout = MOVES_TIMEOUT)
{
    static const unsigned char going_away[4] = {0x88, 0x02, 0x03, 0xe9};
    static const unsigned char answer[8] = {0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe9};
    struct raw_node *n = raw_node_start();
    struct h_proxy *p =
        h_proxy_start(&(struct h_proxy_opts){.x = {{n->port}}, .shutdown_ms = 4000});
    struct raw_tunnel t = raw_tunnel_open(p, n, WS_REQUEST("/stopping"), "", "");
    uint64_t t0;
    char buf[sizeof(answer)];
    int code;

    t0 = h_now_ms();
    cr_assert(eq(int, kill(p->proc->pid, SIGTERM), 0));
    conn_expect(t.c, (const char *)going_away, sizeof(going_away));
    cr_log_info("the close frame came %llu ms after SIGTERM",
                (unsigned long long)(h_now_ms() - t0));
    cr_assert(h_proc_alive(p->proc), "crossfade exited before the tunnel was closed in order");
    cr_assert(lt(u64, h_now_ms() - t0, (uint64_t)3500),
              "the close frame came only %llu ms after SIGTERM (timeouts.shutdown 4 s)",
              (unsigned long long)(h_now_ms() - t0));
    /* The client's close answer reaches the node, then the client closes: the tunnel ends. */
    cr_assert(eq(int, h_send(t.c, (const char *)answer, sizeof(answer)), 0));
    cr_assert(eq(sz, raw_recv(t.node, buf, sizeof(answer), H_IO_TIMEOUT_MS), sizeof(answer)));
    h_close(t.c);
    code = h_proc_wait(p->proc, 3000);
    cr_assert(eq(int, code, 0), "crossfade did not exit 0 once its tunnel was closed (%d)", code);
    cr_assert(lt(u64, h_now_ms() - t0, (uint64_t)4000), "crossfade waited for the deadline");
    close(t.node);
    close(n->lfd);
}
