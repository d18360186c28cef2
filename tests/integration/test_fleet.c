/* tests/integration/test_fleet.c -- fleet mode: three crossfade instances sharing one rollout
 * through a real etcd cluster on loopback (docs/fleet.md). */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/fl_int.h" /* base64, to write etcd keys by hand */
#include "tests/integration/etcd_helpers.h"
#include "tests/integration/harness.h"

TestSuite(fleet, .init = h_setup, .fini = h_teardown);

#define F_TIMEOUT  90   /* seconds: each test's .timeout */
#define F_APPLY_MS 3000 /* a change in force everywhere within this (the benchmark measures it) */
#define F_N        3

struct f_fleet {
    const char *top;     /* more top-level lines of each instance's config; NULL: none */
    const char *y_extra; /* more lines under clusters.y; NULL: none */
    struct h_upstream *x, *y;
    struct h_proxy *p[F_N];
    int admin[F_N];
    const char *names[F_N];
    const char *seeds[F_N]; /* each instance's split.seed; NULL: the default */
};

/* The fleet section and state file of instance `name`, with `more` fleet lines. */
static const char *
f_yaml(const char *name, const char *more)
{
    return h_fmt("state_file: \"%s\"\n"
                 "fleet:\n"
                 "  etcd: %s\n"
                 "  prefix: /crossfade/it/\n"
                 "  name: %s\n"
                 "  timeout: 5s\n"
                 "  lease: 3s\n"
                 "%s",
                 h_path(h_fmt("%s.state", name)), h_etcd_endpoints_yaml(), name,
                 more != NULL ? more : "");
}

/* Instance i's options (its config but the port). */
static struct h_proxy_opts
f_opts(const struct f_fleet *f, size_t i, const char *more)
{
    return (struct h_proxy_opts){
        .x = {{f->x->port}},
        .y = {{f->y->port}},
        .name = f->names[i],
        .split_extra = h_fmt("  key: [\"header:X-Key\"]\n%s",
                             f->seeds[i] != NULL ? h_fmt("  seed: \"%s\"\n", f->seeds[i]) : ""),
        .y_extra = f->y_extra,
        .extra_yaml = h_fmt("%s%s", f_yaml(f->names[i], more), f->top != NULL ? f->top : "")};
}

static struct h_proxy *
f_start_one(struct f_fleet *f, size_t i, const char *more)
{
    struct h_proxy_opts o = f_opts(f, i, more);

    return h_proxy_start(&o);
}

/* Instance i's config file written again from f (as an operator edits it), for a reload. */
static void
f_rewrite(const struct f_fleet *f, size_t i)
{
    struct h_proxy_opts o = f_opts(f, i, NULL);
    const char *next = h_proxy_write_config(h_fmt("%s-next.yaml", f->names[i]), &o, f->p[i]->port);

    cr_assert(eq(int, rename(next, f->p[i]->cfg_path), 0), "rename: %s", strerror(errno));
}

/* Waits until instance i has read the fleet's state (its first read of etcd is done). */
static void
f_wait_synced(const struct f_fleet *f, size_t i)
{
    uint64_t end = h_now_ms() + 10000;

    while (strstr(h_admin_cmd(f->admin[i], "show fleet"), "state not read") != NULL) {
        cr_assert(lt(u64, h_now_ms(), end), "%s did not read the fleet's state", f->names[i]);
        h_sleep_ms(20);
    }
}

/* "state revision N" of instance i's `show fleet`, or "". */
static const char *
f_revision(const struct f_fleet *f, size_t i)
{
    const char *r = strstr(h_admin_cmd(f->admin[i], "show fleet"), "\nstate revision ");

    return r != NULL ? h_fmt("%.*s", (int)(strcspn(r + 16, " ") + 16), r + 1) : "";
}

/* Waits until the fleet has a state in etcd and every instance applied the same revision (the
 * instances started at once race to write the first one; the losers take the winner's). */
static void
f_wait_same_revision(const struct f_fleet *f)
{
    uint64_t end = h_now_ms() + 10000;

    for (;;) {
        const char *a = f_revision(f, 0), *b = f_revision(f, 1), *c = f_revision(f, 2);

        if (*a != '\0' && strcmp(a, b) == 0 && strcmp(b, c) == 0)
            return;
        cr_assert(lt(u64, h_now_ms(), end), "revisions: \"%s\" \"%s\" \"%s\"", a, b, c);
        h_sleep_ms(20);
    }
}

/* etcd (n members) and three instances edge-a, edge-b, edge-c in front of nodes x1 and y1 (y1
 * started with `yo`, NULL: the defaults); `top` and `y_extra` go into each config. */
static struct f_fleet *
f_start_seeded(size_t members, const char *more, const struct h_upstream_opts *yo, const char *top,
               const char *y_extra, const char *const seeds[F_N])
{
    struct f_fleet *f = h_alloc(sizeof(*f));

    h_etcd_start(members);
    f->top = top;
    f->y_extra = y_extra;
    f->x = h_upstream_start("x1", NULL);
    f->y = h_upstream_start("y1", yo);
    f->names[0] = "edge-a";
    f->names[1] = "edge-b";
    f->names[2] = "edge-c";
    for (size_t i = 0; seeds != NULL && i < F_N; i++)
        f->seeds[i] = seeds[i];
    for (size_t i = 0; i < F_N; i++) {
        f->p[i] = f_start_one(f, i, more);
        f->admin[i] = h_admin_connect(f->p[i]);
    }
    for (size_t i = 0; i < F_N; i++)
        f_wait_synced(f, i);
    f_wait_same_revision(f);
    return f;
}

static struct f_fleet *
f_start_with(size_t members, const char *more, const struct h_upstream_opts *yo, const char *top,
             const char *y_extra)
{
    return f_start_seeded(members, more, yo, top, y_extra, NULL);
}

static struct f_fleet *
f_start(size_t members, const char *more)
{
    return f_start_with(members, more, NULL, NULL, NULL);
}

/* "y 12.50" of instance i's `show weight`. */
static const char *
f_weight(const struct f_fleet *f, size_t i)
{
    const char *w = strstr(h_admin_cmd(f->admin[i], "show weight"), "y ");

    return w != NULL ? h_fmt("%.*s", (int)strcspn(w, "\n"), w) : "?";
}

/* Polls every instance's weight until each says `want` ("y 0.00"), or asserts after ms. */
static void
f_wait_weight(const struct f_fleet *f, const char *want, unsigned ms)
{
    uint64_t end = h_now_ms() + ms;

    for (size_t i = 0; i < F_N; i++) {
        while (strcmp(f_weight(f, i), want) != 0) {
            cr_assert(lt(u64, h_now_ms(), end), "%s has %s, not %s, after %u ms", f->names[i],
                      f_weight(f, i), want, ms);
            h_sleep_ms(20);
        }
    }
}

/* Polls until the three instances have the same weight; returns it. */
static const char *
f_wait_agree(const struct f_fleet *f, unsigned ms)
{
    uint64_t end = h_now_ms() + ms;

    for (;;) {
        const char *a = f_weight(f, 0), *b = f_weight(f, 1), *c = f_weight(f, 2);

        if (strcmp(a, b) == 0 && strcmp(b, c) == 0)
            return a;
        cr_assert(lt(u64, h_now_ms(), end), "no agreement after %u ms: %s, %s, %s", ms, a, b, c);
        h_sleep_ms(20);
    }
}

/* Waits until instance i's `show fleet` has a line starting with `line`. */
static void
f_wait_fleet(const struct f_fleet *f, size_t i, const char *line, unsigned ms)
{
    uint64_t end = h_now_ms() + ms;

    for (;;) {
        const char *r = h_admin_cmd(f->admin[i], "show fleet");

        if (strncmp(r, line, strlen(line)) == 0 || strstr(r, h_fmt("\n%s", line)) != NULL)
            return;
        cr_assert(lt(u64, h_now_ms(), end), "%s's show fleet has no \"%s\" after %u ms:\n%s",
                  f->names[i], line, ms, r);
        h_sleep_ms(50);
    }
}

/* The node that answers key `key` through instance i ("x1" or "y1"). */
static const char *
f_side(const struct f_fleet *f, size_t i, const char *key)
{
    struct h_conn *c = h_connect(f->p[i]->port);
    struct h_msg m;
    const char *name;

    cr_assert(
        eq(int, h_sendf(c, "GET / HTTP/1.1\r\nHost: " H_HOST "\r\nX-Key: %s\r\n\r\n", key), 0));
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    name = h_header(&m, "X-Upstream");
    cr_assert(ne(ptr, (void *)name, NULL));
    name = h_fmt("%s", name);
    h_close(c);
    return name;
}

Test(fleet, a_rollback_typed_on_one_instance_is_in_force_on_all, .timeout = F_TIMEOUT)
{
    struct f_fleet *f = f_start(3, NULL);
    char *r;

    r = h_admin_cmd(f->admin[0], "set weight 100");
    cr_assert(eq(int, strncmp(r, "ok: weight y 100.00", 19), 0), "%s", r);
    f_wait_weight(f, "y 100.00", F_APPLY_MS);
    for (size_t i = 0; i < F_N; i++)
        cr_assert(eq(str, (char *)f_side(f, i, "client-1"), "y1"), "%s", f->names[i]);
    r = h_admin_cmd(f->admin[1], "rollback");
    cr_assert(eq(int, strncmp(r, "ok: rolled back: weight y 0.00", 30), 0), "%s", r);
    f_wait_weight(f, "y 0.00", F_APPLY_MS);
    for (size_t i = 0; i < F_N; i++)
        cr_assert(eq(str, (char *)f_side(f, i, "client-1"), "x1"), "%s", f->names[i]);
    /* Each instance says who wrote it, and every member is in step. */
    for (size_t i = 0; i < F_N; i++) {
        f_wait_fleet(f, i, "state revision", F_APPLY_MS);
        r = h_admin_cmd(f->admin[i], "show fleet");
        cr_assert(not(eq(ptr, strstr(r, "by edge-b at"), NULL)), "%s", r);
        cr_assert(not(eq(ptr, strstr(r, "member edge-a"), NULL)), "%s", r);
        cr_assert(not(eq(ptr, strstr(r, "member edge-c"), NULL)), "%s", r);
    }
    /* The audit trail of another instance names where the change came from. */
    r = h_admin_cmd(f->admin[2], "show events");
    cr_assert(not(eq(ptr, strstr(r, "fleet: edge-b at"), NULL)), "%s", r);
    /* An instance that stops leaves the members at once (its lease revoked), not when its lease
     * (3 s here, kept alive every second) would have run out. */
    h_proxy_finish(f->p[2]);
    for (uint64_t end = h_now_ms() + 1500;
         strstr(h_admin_cmd(f->admin[0], "show fleet"), "member edge-c") != NULL; h_sleep_ms(20))
        cr_assert(lt(u64, h_now_ms(), end), "edge-c still listed 1.5 s after it stopped");
}

/* Two operators at once on two instances: one write wins, the other is told and undone. */
Test(fleet, two_concurrent_changes_one_wins_and_the_other_is_told, .timeout = F_TIMEOUT)
{
    struct f_fleet *f = f_start(1, NULL);
    unsigned lost = 0;

    for (int round = 0; round < 5; round++) {
        const char *a = h_fmt("set weight %d", 10 + round), *b = h_fmt("set weight %d", 50 + round);
        char *ra, *rb;
        const char *won;

        h_admin_send(f->admin[0], a);
        h_admin_send(f->admin[1], b);
        ra = h_admin_reply(f->admin[0], 10000);
        rb = h_admin_reply(f->admin[1], 10000);
        cr_assert(strncmp(ra, "ok:", 3) == 0 || strncmp(rb, "ok:", 3) == 0, "neither took: %s / %s",
                  ra, rb);
        if (strncmp(ra, "error:", 6) == 0) {
            cr_assert(not(eq(ptr, strstr(ra, "changed by edge-b at"), NULL)), "%s", ra);
            cr_assert(not(eq(ptr, strstr(ra, "retry"), NULL)), "%s", ra);
            lost++;
        }
        if (strncmp(rb, "error:", 6) == 0) {
            cr_assert(not(eq(ptr, strstr(rb, "changed by edge-a at"), NULL)), "%s", rb);
            lost++;
        }
        /* Whatever the order, every instance ends on the same weight: the last written. */
        won = f_wait_agree(f, F_APPLY_MS);
        cr_assert(strcmp(won, h_fmt("y %d.00", 10 + round)) == 0 ||
                      strcmp(won, h_fmt("y %d.00", 50 + round)) == 0,
                  "weight %s", won);
    }
    /* Five rounds of two writes sent together: not every one can have been alone. A round where
     * both took is one where the second read the first's revision: both replies are ok then. */
    cr_log_info("%u of 10 writes lost a race", lost);
}

/* A ramp is a schedule: every instance takes each step from its own clock, with no write per
 * step, and they agree at every moment. */
Test(fleet, a_ramp_runs_on_every_instance_on_the_same_schedule, .timeout = F_TIMEOUT)
{
    struct f_fleet *f = f_start(1, NULL);
    const char *r = h_admin_cmd(f->admin[2], "ramp 40 over 4s step 10");
    size_t writes = 0;

    cr_assert(eq(int, strncmp(r, "ok: ramping y from 0.00 to 40.00", 32), 0), "%s", r);
    f_wait_fleet(f, 0, "state revision", F_APPLY_MS);
    /* Sampled four times a step: the three differ at most around a step's instant. */
    for (int k = 0; k < 16; k++) {
        const char *w[F_N];

        for (size_t i = 0; i < F_N; i++)
            w[i] = f_weight(f, i);
        if (strcmp(w[0], w[1]) != 0 || strcmp(w[1], w[2]) != 0) {
            /* Read across a step (a second apart): read again, the step is taken everywhere
             * now and the next one is far. */
            h_sleep_ms(60);
            for (size_t i = 0; i < F_N; i++)
                w[i] = f_weight(f, i);
        }
        cr_assert(eq(str, (char *)w[0], (char *)w[1]), "edge-a %s, edge-b %s", w[0], w[1]);
        cr_assert(eq(str, (char *)w[1], (char *)w[2]), "edge-b %s, edge-c %s", w[1], w[2]);
        h_sleep_ms(250);
    }
    f_wait_weight(f, "y 40.00", 3000);
    h_sleep_ms(500);
    /* The steps were not written: the ramp's start and its end were (the end by one instance,
     * or by more when they finish at the same moment and all but one lose the race). */
    for (size_t i = 0; i < F_N; i++)
        writes += h_log_count(h_path(h_fmt("%s.log", f->names[i])), "event=fleet_state_written");
    cr_assert(ge(sz, writes, 2), "the ramp's start and end");
    cr_assert(le(sz, writes, 4), "%zu writes for a ramp of 4 steps", writes);
}

/* Without etcd, routing goes on with the last state, and changes are refused with a reason. */
Test(fleet, without_etcd_changes_are_refused_and_traffic_goes_on, .timeout = F_TIMEOUT)
{
    struct f_fleet *f = f_start(1, NULL);
    char *r;

    r = h_admin_cmd(f->admin[0], "set weight 100");
    f_wait_weight(f, "y 100.00", F_APPLY_MS);
    h_etcd_kill(&h_etcd[0]);
    f_wait_fleet(f, 1, "etcd unreachable since", 10000);
    r = h_admin_cmd(f->admin[1], "set weight 30");
    cr_assert(eq(int, strncmp(r, "error: fleet mode: etcd is unreachable since", 44), 0), "%s", r);
    r = h_admin_cmd(f->admin[1], "rollback");
    cr_assert(not(eq(ptr, strstr(r, "fleet.local_fallback: true would accept rollback"), NULL)),
              "%s", r);
    for (size_t i = 0; i < F_N; i++)
        cr_assert(eq(str, (char *)f_side(f, i, "client-1"), "y1"), "%s", f->names[i]);
    f_wait_weight(f, "y 100.00", 100);
    /* etcd back: changes go through again, everywhere. */
    h_etcd_restart(&h_etcd[0]);
    f_wait_fleet(f, 1, "etcd up", 15000);
    f_wait_synced(f, 1);
    r = h_admin_cmd(f->admin[1], "set weight 30");
    cr_assert(eq(int, strncmp(r, "ok: weight y 30.00", 18), 0), "%s", r);
    f_wait_weight(f, "y 30.00", F_APPLY_MS);
}

/* fleet.local_fallback: rollback is accepted without etcd (rollback must always be possible), and
 * the fleet gets it once etcd is back. */
Test(fleet, local_fallback_accepts_rollback_and_writes_it_when_etcd_is_back, .timeout = F_TIMEOUT)
{
    struct f_fleet *f = f_start(1, "  local_fallback: true\n");
    char *r;

    r = h_admin_cmd(f->admin[0], "set weight 100");
    f_wait_weight(f, "y 100.00", F_APPLY_MS);
    h_etcd_kill(&h_etcd[0]);
    f_wait_fleet(f, 2, "etcd unreachable since", 10000);
    r = h_admin_cmd(f->admin[2], "set weight 50");
    cr_assert(eq(int, strncmp(r, "error: fleet mode: etcd is unreachable", 38), 0), "%s", r);
    r = h_admin_cmd(f->admin[2], "rollback");
    cr_assert(eq(int, strncmp(r, "ok: rolled back: weight y 0.00", 30), 0), "%s", r);
    cr_assert(eq(str, (char *)f_weight(f, 2), "y 0.00"));
    cr_assert(eq(str, (char *)f_side(f, 2, "client-1"), "x1"));
    cr_assert(eq(str, (char *)f_weight(f, 0), "y 100.00"), "the others cannot know yet");
    h_etcd_restart(&h_etcd[0]);
    f_wait_weight(f, "y 0.00", 15000);
    for (size_t i = 0; i < F_N; i++)
        cr_assert(eq(str, (char *)f_side(f, i, "client-1"), "x1"), "%s", f->names[i]);
}

/* An instance that starts while etcd is down routes by its state file, then catches up. */
Test(fleet, an_instance_started_while_etcd_is_down_catches_up, .timeout = F_TIMEOUT)
{
    struct f_fleet *f = f_start(1, NULL);
    char *r;

    r = h_admin_cmd(f->admin[0], "set weight 20");
    f_wait_weight(f, "y 20.00", F_APPLY_MS);
    /* edge-c stops with 20 in its state file; etcd goes; edge-c starts again. */
    h_proxy_finish(f->p[2]);
    h_etcd_kill(&h_etcd[0]);
    f->p[2] = f_start_one(f, 2, NULL);
    f->admin[2] = h_admin_connect(f->p[2]);
    cr_assert(eq(str, (char *)f_weight(f, 2), "y 20.00"), "from its state file");
    /* Meanwhile the fleet moves on (etcd back: edge-a writes 60), and edge-c follows. */
    h_etcd_restart(&h_etcd[0]);
    f_wait_fleet(f, 0, "etcd up", 15000);
    f_wait_synced(f, 0);
    r = h_admin_cmd(f->admin[0], "set weight 60");
    cr_assert(eq(int, strncmp(r, "ok: weight y 60.00", 18), 0), "%s", r);
    f_wait_weight(f, "y 60.00", 15000);
}

/* The etcd leader killed in the middle of a ramp: the ramp stays on schedule on every instance
 * and no request fails. */
Test(fleet, losing_the_etcd_leader_mid_ramp_keeps_the_schedule_and_the_traffic,
     .timeout = F_TIMEOUT)
{
    struct f_fleet *f = f_start(3, NULL);
    const char *r = h_admin_cmd(f->admin[0], "ramp 30 over 3s step 10");
    uint64_t end;
    unsigned served = 0;

    cr_assert(eq(int, strncmp(r, "ok: ramping", 11), 0), "%s", r);
    f_wait_fleet(f, 2, "state revision", F_APPLY_MS);
    h_etcd_kill(&h_etcd[h_etcd_leader()]);
    end = h_now_ms() + 4000;
    while (h_now_ms() < end) {
        for (size_t i = 0; i < F_N; i++) {
            const char *side = f_side(f, i, h_fmt("client-%u", served));

            cr_assert(strcmp(side, "x1") == 0 || strcmp(side, "y1") == 0);
            served++;
        }
        h_sleep_ms(20);
    }
    f_wait_weight(f, "y 30.00", 1000);
    cr_log_info("%u requests served while the leader was lost", served);
}

/* `set weight P at TIME` switches the whole fleet at one instant: each instance takes the step by
 * its own clock, so they switch within a few milliseconds of each other, not one after another. */
Test(fleet, set_weight_at_a_time_switches_every_instance_at_that_instant, .timeout = F_TIMEOUT)
{
    struct f_fleet *f = f_start(1, NULL);
    const char *r = h_admin_cmd(f->admin[1], "set weight 100 at +2s");
    uint64_t first = 0, last = 0, end = h_now_ms() + 6000;
    bool switched[F_N] = {false, false, false};
    size_t n = 0;

    cr_assert(eq(int, strncmp(r, "ok: weight y 100.00 (now 0.00) at", 33), 0), "%s", r);
    f_wait_fleet(f, 0, "state revision", F_APPLY_MS);
    cr_assert(eq(str, (char *)f_weight(f, 0), "y 0.00"), "not before its time");
    while (n < F_N) {
        cr_assert(lt(u64, h_now_ms(), end), "%zu of 3 switched", n);
        for (size_t i = 0; i < F_N; i++) {
            if (switched[i] || strcmp(f_weight(f, i), "y 100.00") != 0)
                continue;
            switched[i] = true;
            last = h_now_ms();
            if (n++ == 0)
                first = last;
        }
        h_sleep_ms(5);
    }
    /* Polled one after another: what separates them is the polling, a few ms; a write relayed
     * from one to the next would show as the watch's delay at least. Bounded loosely for slow
     * (sanitizer) builds. */
    cr_assert(le(u64, last - first, 250), "switched over %llu ms",
              (unsigned long long)(last - first));
}

/* base64 of a C string (harness-owned). */
/* The line of instance i's `show fleet` that starts with `word` ("seed "), without its end. */
static const char *
f_fleet_line(const struct f_fleet *f, size_t i, const char *word)
{
    const char *r = strstr(h_admin_cmd(f->admin[i], "show fleet"), h_fmt("\n%s", word));

    cr_assert(ne(ptr, (void *)r, NULL), "%s: no %s line", f->names[i], word);
    return h_fmt("%.*s", (int)strcspn(r + 1, "\n"), r + 1);
}

/* The 16 hex digits of the seed instance i routes by. */
static const char *
f_seed(const struct f_fleet *f, size_t i)
{
    return h_fmt("%.16s", f_fleet_line(f, i, "seed ") + 5);
}

/* Waits until every instance routes by the same seed; returns it. */
static const char *
f_wait_same_seed(const struct f_fleet *f, unsigned ms)
{
    uint64_t end = h_now_ms() + ms;

    for (;;) {
        const char *a = f_seed(f, 0), *b = f_seed(f, 1), *c = f_seed(f, 2);

        if (strcmp(a, b) == 0 && strcmp(b, c) == 0)
            return a;
        cr_assert(lt(u64, h_now_ms(), end), "seeds after %u ms: %s %s %s", ms, a, b, c);
        h_sleep_ms(20);
    }
}

static const char *
f_b64(const char *s)
{
    char *out = h_alloc(strlen(s) * 4 / 3 + 8);

    out[fl_b64_encode(out, s, strlen(s))] = '\0';
    return out;
}

/* What someone writes into etcd by hand: a state crossfade cannot read is not applied (each
 * instance keeps its state and says why) and the next change replaces it; a state deleted is
 * written again from the instances' own. */
Test(fleet, a_state_written_or_deleted_by_hand_is_survived, .timeout = F_TIMEOUT)
{
    struct f_fleet *f = f_start(1, NULL);
    const char *key = f_b64("/crossfade/it/state");
    char *r;

    r = h_admin_cmd(f->admin[0], "set weight 40");
    f_wait_weight(f, "y 40.00", F_APPLY_MS);
    h_etcd_post(&h_etcd[0], "/v3/kv/put",
                h_fmt("{\"key\":\"%s\",\"value\":\"%s\"}", key, f_b64("by hand\nweight 100\n")));
    h_sleep_ms(300);
    for (size_t i = 0; i < F_N; i++)
        cr_assert(
            ge(sz,
               h_log_count(h_path(h_fmt("%s.log", f->names[i])), "event=fleet_state_unreadable"),
               1),
            "%s did not say it could not read it", f->names[i]);
    f_wait_weight(f, "y 40.00", 100);
    r = h_admin_cmd(f->admin[1], "set weight 20");
    cr_assert(eq(int, strncmp(r, "ok: weight y 20.00", 18), 0), "%s", r);
    f_wait_weight(f, "y 20.00", F_APPLY_MS);
    /* Deleted: written again, and changes go on. */
    h_etcd_post(&h_etcd[0], "/v3/kv/deleterange", h_fmt("{\"key\":\"%s\"}", key));
    f_wait_same_revision(f);
    f_wait_weight(f, "y 20.00", 100);
    r = h_admin_cmd(f->admin[2], "rollback");
    cr_assert(eq(int, strncmp(r, "ok: rolled back", 15), 0), "%s", r);
    f_wait_weight(f, "y 0.00", F_APPLY_MS);
    /* A readable state without the seed: applied, then written again with the seed in force. */
    h_etcd_post(&h_etcd[0], "/v3/kv/put",
                h_fmt("{\"key\":\"%s\",\"value\":\"%s\"}", key,
                      f_b64("by hand 1796600000000\nversion 2\nlayout x=a y=b\nweight 35.00\n")));
    f_wait_weight(f, "y 35.00", F_APPLY_MS);
    for (size_t i = 0; i < F_N; i++)
        for (uint64_t end = h_now_ms() + F_APPLY_MS;
             strstr(f_fleet_line(f, i, "state "), "by hand") != NULL; h_sleep_ms(20))
            cr_assert(lt(u64, h_now_ms(), end), "%s: not written again with the seed", f->names[i]);
    f_wait_same_seed(f, F_APPLY_MS);
    f_wait_weight(f, "y 35.00", 100);
}

/* The guard of one instance trips on y's errors (only that instance carries traffic): its rollback
 * and its trip are the fleet's, and an upward change is refused on every instance. */
Test(fleet, a_guard_trip_on_one_instance_rolls_the_whole_fleet_back, .timeout = F_TIMEOUT)
{
    struct f_fleet *f = f_start_with(
        1, NULL, &(struct h_upstream_opts){.error_rate = 10},
        "guard: {window: 5s, min_requests: 200, max_latency_ratio: 100}\n",
        "    outlier: {failures: 0}\n" /* y's 500s stay in service, for the guard to judge */);
    char *argv[] = {(char *)h_bin("xfbench"),
                    "-q",
                    "-R",
                    "300",
                    "-d",
                    "10s",
                    "--timeout",
                    "5s",
                    "--key-header",
                    "X-Key",
                    (char *)h_fmt("http://127.0.0.1:%d/", f->p[0]->port),
                    NULL};
    struct h_proc *load;
    char *r;

    r = h_admin_cmd(f->admin[1], "set weight 50");
    cr_assert(eq(int, strncmp(r, "ok: weight y 50.00", 18), 0), "%s", r);
    f_wait_weight(f, "y 50.00", F_APPLY_MS);
    load = h_spawn("xfbench", argv, h_path("xfbench.log"), NULL);
    f_wait_weight(f, "y 0.00", 15000);
    cr_assert(ge(sz, h_log_count(h_path("edge-a.log"), "event=guard_tripped"), 1),
              "edge-a's guard, which saw the traffic, tripped");
    for (size_t i = 1; i < F_N; i++) {
        r = h_admin_cmd(f->admin[i], "set weight 10");
        cr_assert(eq(int, strncmp(r, "error: the guard tripped", 24), 0), "%s: %s", f->names[i], r);
    }
    cr_assert(ne(int, h_proc_stop(load, SIGINT, 5000), -1));
    /* guard reset on any instance lets the fleet go up again. */
    r = h_admin_cmd(f->admin[2], "guard reset");
    cr_assert(eq(int, strncmp(r, "ok: guard reset", 15), 0), "%s", r);
    f_wait_same_revision(f);
    r = h_admin_cmd(f->admin[1], "set weight 10");
    cr_assert(eq(int, strncmp(r, "ok: weight y 10.00", 18), 0), "%s", r);
    f_wait_weight(f, "y 10.00", F_APPLY_MS);
}

/* Which of 40 clients instance i sends to y ("0110..."). */
static const char *
f_sides(const struct f_fleet *f, size_t i)
{
    char *out = h_alloc(41);

    for (int k = 0; k < 40; k++)
        out[k] = strcmp(f_side(f, i, h_fmt("client-%d", k)), "y1") == 0 ? '1' : '0';
    return out;
}

/* The seed is the fleet's: instances whose split.seed differ route every client alike by the one
 * in etcd; a reload that changes split.seed on one instance writes it for all (and, without etcd,
 * is refused for the seed and says so); an instance restarted without etcd keeps the fleet's. */
Test(fleet, the_fleets_seed_wins_over_each_instances_split_seed, .timeout = F_TIMEOUT)
{
    static const char *const seeds[F_N] = {"seed-a", "seed-b", "seed-c"};
    struct f_fleet *f = f_start_seeded(1, NULL, NULL, NULL, NULL, seeds);
    const char *seed, *before, *after, *epoch;
    unsigned differ = 0;
    char *r;

    seed = f_wait_same_seed(f, F_APPLY_MS);
    for (size_t i = 0; i < F_N; i++)
        differ +=
            strstr(f_fleet_line(f, i, "seed "), "the fleet's: split.seed here differs") != NULL;
    cr_assert(eq(uint, differ, 2u), "one instance wrote its seed, the two others took it");
    r = h_admin_cmd(f->admin[0], "set weight 50");
    cr_assert(eq(int, strncmp(r, "ok: weight y 50.00", 18), 0), "%s", r);
    f_wait_weight(f, "y 50.00", F_APPLY_MS);
    epoch = f_fleet_line(f, 0, "epoch ");
    for (size_t i = 1; i < F_N; i++)
        cr_assert(eq(str, (char *)f_fleet_line(f, i, "epoch "), (char *)epoch), "%s", f->names[i]);
    before = f_sides(f, 0);
    for (size_t i = 1; i < F_N; i++)
        cr_assert(eq(str, (char *)f_sides(f, i), (char *)before), "%s", f->names[i]);

    /* A new split.seed on edge-b, reloaded: the whole fleet routes by it. */
    f->seeds[1] = "seed-new";
    f_rewrite(f, 1);
    r = h_admin_cmd(f->admin[1], "reload");
    cr_assert(not(eq(ptr, strstr(r, "the new split.seed goes to the whole fleet"), NULL)), "%s", r);
    for (uint64_t end = h_now_ms() + F_APPLY_MS; strcmp(f_wait_same_seed(f, F_APPLY_MS), seed) == 0;
         h_sleep_ms(20))
        cr_assert(lt(u64, h_now_ms(), end), "the fleet still routes by %s", seed);
    seed = f_seed(f, 0);
    cr_assert(not(eq(ptr, strstr(f_fleet_line(f, 1, "seed "), "(split.seed here)"), NULL)));
    cr_assert(eq(sz, h_log_count(h_path("edge-b.log"), "event=reload_split_changed"), 1),
              "clients moved: the log says so");
    after = f_sides(f, 0);
    cr_assert(not(eq(str, (char *)after, (char *)before)), "the new seed moved clients");
    for (size_t i = 1; i < F_N; i++)
        cr_assert(eq(str, (char *)f_sides(f, i), (char *)after), "%s", f->names[i]);

    /* Without etcd a new seed is not taken: the fleet's stays, and the reply says so. */
    h_etcd_kill(&h_etcd[0]);
    f_wait_fleet(f, 0, "etcd unreachable since", 10000);
    f->seeds[0] = "seed-lonely";
    f_rewrite(f, 0);
    r = h_admin_cmd(f->admin[0], "reload");
    cr_assert(not(eq(ptr, strstr(r, "the new split.seed is NOT in force"), NULL)), "%s", r);
    cr_assert(eq(str, (char *)f_seed(f, 0), (char *)seed));
    cr_assert(eq(str, (char *)f_sides(f, 0), (char *)after));
    cr_assert(eq(sz, h_log_count(h_path("edge-a.log"), "event=reload_split_changed"), 0),
              "no client moved: no warning");

    /* edge-c restarted while etcd is down: its state file holds the fleet's seed. */
    h_proxy_finish(f->p[2]);
    f->p[2] = f_start_one(f, 2, NULL);
    f->admin[2] = h_admin_connect(f->p[2]);
    cr_assert(eq(str, (char *)f_seed(f, 2), (char *)seed));
    cr_assert(eq(str, (char *)f_sides(f, 2), (char *)after));

    /* etcd back: the same file reloaded again is taken this time, by the whole fleet. */
    h_etcd_restart(&h_etcd[0]);
    f_wait_fleet(f, 0, "etcd up", 15000);
    f_wait_synced(f, 0);
    r = h_admin_cmd(f->admin[0], "reload");
    cr_assert(not(eq(ptr, strstr(r, "the new split.seed goes to the whole fleet"), NULL)), "%s", r);
    for (uint64_t end = h_now_ms() + 15000; strcmp(f_wait_same_seed(f, 15000), seed) == 0;
         h_sleep_ms(20))
        cr_assert(lt(u64, h_now_ms(), end), "the fleet still routes by %s", seed);
    cr_assert(not(eq(ptr, strstr(f_fleet_line(f, 0, "seed "), "(split.seed here)"), NULL)));
    cr_assert(eq(sz, h_log_count(h_path("edge-a.log"), "event=reload_split_changed"), 1),
              "the same file taken the second time moved clients: the log says so");
}

/* The routing epoch of the snapshot that routed a request through instance i, from its
 * fleet.epoch_header. */
static const char *
f_epoch_header(const struct f_fleet *f, size_t i)
{
    struct h_conn *c = h_connect(f->p[i]->port);
    struct h_msg m;
    const char *v;

    cr_assert(eq(int, h_sendf(c, "GET / HTTP/1.1\r\nHost: " H_HOST "\r\nX-Key: k\r\n\r\n"), 0));
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    v = h_header(&m, "X-Crossfade-Epoch");
    cr_assert(ne(ptr, (void *)v, NULL), "%s: no X-Crossfade-Epoch", f->names[i]);
    v = h_fmt("%s", v);
    h_close(c);
    return v;
}

/* Waits until every instance's responses carry the epoch its `show fleet` gives, the same on
 * all; returns it. */
static const char *
f_wait_epoch_header(const struct f_fleet *f, unsigned ms)
{
    uint64_t end = h_now_ms() + ms;

    for (;;) {
        const char *e[F_N];
        bool same = true;

        for (size_t i = 0; i < F_N; i++) {
            e[i] = f_epoch_header(f, i);
            same = same && strcmp(e[i], e[0]) == 0 &&
                   strcmp(h_fmt("epoch %s", e[i]), f_fleet_line(f, i, "epoch ")) == 0;
        }
        if (same)
            return e[0];
        cr_assert(lt(u64, h_now_ms(), end), "epochs after %u ms: %s %s %s", ms, e[0], e[1], e[2]);
        h_sleep_ms(20);
    }
}

/* fleet.epoch_header: every response says which routing it was routed by, so that an operator
 * can prove from the outside that all instances route alike; a change gives a new epoch, and a
 * ramp keeps one all along its schedule. */
Test(fleet, responses_carry_the_routing_epoch_the_instances_share, .timeout = F_TIMEOUT)
{
    struct f_fleet *f = f_start(1, "  epoch_header: X-Crossfade-Epoch\n");
    const char *first, *ramping;
    char *r;

    first = f_wait_epoch_header(f, F_APPLY_MS);
    cr_assert(eq(sz, strlen(first), 16), "%s", first);
    r = h_admin_cmd(f->admin[2], "set weight 30");
    cr_assert(eq(int, strncmp(r, "ok: weight y 30.00", 18), 0), "%s", r);
    f_wait_weight(f, "y 30.00", F_APPLY_MS);
    cr_assert(not(eq(str, (char *)f_wait_epoch_header(f, F_APPLY_MS), (char *)first)));
    r = h_admin_cmd(f->admin[0], "ramp 60 over 4s step 10");
    cr_assert(eq(int, strncmp(r, "ok:", 3), 0), "%s", r);
    ramping = f_wait_epoch_header(f, F_APPLY_MS);
    f_wait_agree(f, F_APPLY_MS);
    h_sleep_ms(1500); /* steps taken on every instance: the epoch stays */
    cr_assert(not(eq(str, (char *)f_weight(f, 0), "y 30.00")), "the ramp stepped");
    cr_assert(eq(str, (char *)f_wait_epoch_header(f, F_APPLY_MS), (char *)ramping));
    f_wait_weight(f, "y 60.00", 8000);
    cr_assert(not(eq(str, (char *)f_wait_epoch_header(f, F_APPLY_MS), (char *)ramping)),
              "the ramp's end is a new epoch");
}
