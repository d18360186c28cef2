/* tests/integration/test_fleet_etcd.c -- fleet's etcd client against real etcd members on loopback
 * (one, or a cluster of three), driven from the test's own event loop: reads and writes, cas,
 * watches across a lost member and a compaction, leases, every endpoint down and back. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "fleet/fl.h"
#include "fleet/fl_int.h" /* the JSON reader, for answers the client does not ask for */
#include "tests/integration/etcd_helpers.h"
#include "tests/integration/harness.h"

TestSuite(fleet_etcd, .init = h_setup, .fini = h_teardown);

#define T_TIMEOUT 90    /* seconds: the .timeout of these tests */
#define T_WAIT_MS 20000 /* the longest wait for one outcome */
#define T_MAX_KVS 64
#define T_MAX_EVS 256

/* ------------------------------------------------------------------ the event loop */

static struct event_base *t_base;
static struct event *t_tick;

static void
t_on_tick(evutil_socket_t fd, short what, void *arg)
{
    XF_UNUSED(fd);
    XF_UNUSED(what);
    XF_UNUSED(arg);
}

static void
t_loop_init(void)
{
    struct timeval tv = {0, 10000};

    if (getenv("XF_FL_DEBUG") != NULL)
        xf_log_min = XF_LOG_DEBUG;
    t_base = event_base_new();
    cr_assert(ne(ptr, t_base, NULL));
    /* A tick, so that each turn of the loop returns within 10 ms and a wait can end. */
    t_tick = event_new(t_base, -1, EV_PERSIST, t_on_tick, NULL);
    event_add(t_tick, &tv);
}

static void
t_loop_fini(void)
{
    event_free(t_tick);
    event_base_free(t_base);
}

/* Runs the loop until `cond` holds or ms passed; the condition is the caller's to assert. */
#define T_RUN_UNTIL(cond, ms)                                                                      \
    do {                                                                                           \
        uint64_t t_end_ = h_now_ms() + (ms);                                                       \
        while (!(cond) && h_now_ms() < t_end_)                                                     \
            event_base_loop(t_base, EVLOOP_ONCE);                                                  \
    } while (0)

static void
t_run_for(unsigned ms)
{
    T_RUN_UNTIL(false, ms);
}

/* ------------------------------------------------------------------ what the callbacks saw */

struct t_kv {
    char key[64];
    char value[64];
    size_t key_len, value_len;
    int64_t create_revision, mod_revision, version, lease;
};

struct t_call {
    bool done;
    bool calls_after; /* called a second time */
    char error[512];  /* "" when it succeeded */
    int64_t revision, count, deleted, lease, ttl;
    bool succeeded, more;
    size_t n_kvs;
    struct t_kv kvs[T_MAX_KVS];
};

static void
t_kv_copy(struct t_kv *out, const struct fl_kv *kv)
{
    cr_assert(lt(sz, kv->key_len, sizeof(out->key)));
    cr_assert(lt(sz, kv->value_len, sizeof(out->value)));
    memcpy(out->key, kv->key, kv->key_len + 1);
    memcpy(out->value, kv->value, kv->value_len + 1);
    out->key_len = kv->key_len;
    out->value_len = kv->value_len;
    out->create_revision = kv->create_revision;
    out->mod_revision = kv->mod_revision;
    out->version = kv->version;
    out->lease = kv->lease;
}

static void
t_on_result(void *arg, const struct fl_result *res, const char *error)
{
    struct t_call *c = arg;

    if (c->done)
        c->calls_after = true;
    c->done = true;
    if (res == NULL) {
        cr_assert(ne(ptr, (void *)error, NULL));
        snprintf(c->error, sizeof(c->error), "%s", *error != '\0' ? error : "(empty error)");
        return;
    }
    cr_assert(eq(ptr, (void *)error, NULL));
    c->revision = res->revision;
    c->count = res->count;
    c->deleted = res->deleted;
    c->lease = res->lease;
    c->ttl = res->ttl;
    c->succeeded = res->succeeded;
    c->more = res->more;
    cr_assert(le(sz, res->n_kvs, (size_t)T_MAX_KVS));
    c->n_kvs = res->n_kvs;
    for (size_t k = 0; k < res->n_kvs; k++)
        t_kv_copy(&c->kvs[k], &res->kvs[k]);
}

static struct t_call *
t_call_new(void)
{
    return h_alloc(sizeof(struct t_call));
}

/* Waits for the call's outcome; asserts it came, and that it succeeded when `must_succeed`. */
static struct t_call *
t_wait(struct t_call *c, bool must_succeed)
{
    T_RUN_UNTIL(c->done, T_WAIT_MS);
    cr_assert(c->done, "no answer within %d ms", T_WAIT_MS);
    if (must_succeed)
        cr_assert(eq(str, c->error, ""), "the request failed: %s", c->error);
    return c;
}

static struct t_call *
t_put(struct fl_etcd *e, const char *key, const char *value, int64_t lease)
{
    struct t_call *c = t_call_new();

    cr_assert(
        eq(int, fl_etcd_put(e, key, strlen(key), value, strlen(value), lease, t_on_result, c), 0));
    return t_wait(c, true);
}

static struct t_call *
t_get(struct fl_etcd *e, const char *key, unsigned flags)
{
    struct t_call *c = t_call_new();

    cr_assert(eq(int, fl_etcd_get(e, key, strlen(key), flags, t_on_result, c), 0));
    return t_wait(c, true);
}

static struct t_call *
t_cas(struct fl_etcd *e, const char *key, const char *value, int64_t rev, const char *key2,
      const char *value2)
{
    struct fl_put puts[2] = {
        {key, strlen(key), value, strlen(value), 0},
        {key2, key2 != NULL ? strlen(key2) : 0, value2, value2 != NULL ? strlen(value2) : 0, 0},
    };
    struct t_call *c = t_call_new();

    cr_assert(eq(int, fl_etcd_cas(e, rev, puts, key2 != NULL ? 2 : 1, t_on_result, c), 0));
    return t_wait(c, true);
}

/* The connection changes the client reported. */
struct t_conn_log {
    size_t n;
    struct {
        char what[8];
        bool up;
        char endpoint[48];
        char why[200];
    } ch[128];
};

static void
t_on_conn(void *arg, const char *what, bool up, const char *endpoint, const char *why)
{
    struct t_conn_log *log = arg;

    cr_assert(eq(int, up, why == NULL), "a reason exactly when down");
    if (log->n == XF_ARRAY_LEN(log->ch))
        return;
    snprintf(log->ch[log->n].what, sizeof(log->ch[0].what), "%s", what);
    log->ch[log->n].up = up;
    snprintf(log->ch[log->n].endpoint, sizeof(log->ch[0].endpoint), "%s", endpoint);
    snprintf(log->ch[log->n].why, sizeof(log->ch[0].why), "%s", why != NULL ? why : "");
    log->n++;
}

/* The last change reported for `what`, or NULL. */
static int
t_conn_last(const struct t_conn_log *log, const char *what, bool *up, const char **endpoint)
{
    for (size_t k = log->n; k > 0; k--)
        if (strcmp(log->ch[k - 1].what, what) == 0) {
            *up = log->ch[k - 1].up;
            *endpoint = log->ch[k - 1].endpoint;
            return 1;
        }
    return 0;
}

static bool
t_conn_is(const struct t_conn_log *log, const char *what, bool up)
{
    const char *ep;
    bool u;

    return t_conn_last(log, what, &u, &ep) && u == up;
}

static struct fl_etcd *
t_client(const struct h_etcd_member *const *members, size_t n, unsigned timeout_ms,
         struct t_conn_log *log)
{
    const char *eps[3];
    struct fl_etcd_opts opts = {.timeout_ms = timeout_ms,
                                .backoff_min_ms = 50,
                                .backoff_max_ms = 400,
                                .conn_cb = log != NULL ? t_on_conn : NULL,
                                .conn_arg = log};
    struct xf_err err = {{0}};
    struct fl_etcd *e;

    for (size_t k = 0; k < n; k++)
        eps[k] = members[k]->url;
    e = fl_etcd_new(t_base, eps, n, &opts, &err);
    cr_assert(ne(ptr, e, NULL), "fl_etcd_new: %s", err.msg);
    return e;
}

/* A client of every member started. */
static struct fl_etcd *
t_client_all(unsigned timeout_ms, struct t_conn_log *log)
{
    const struct h_etcd_member *ms[3] = {&h_etcd[0], &h_etcd[1], &h_etcd[2]};

    return t_client(ms, h_etcd_n, timeout_ms, log);
}

/* Waits until the cluster takes writes (a leader was elected). */
static void
t_wait_writable(struct fl_etcd *e)
{
    uint64_t end = h_now_ms() + T_WAIT_MS;

    for (;;) {
        struct t_call *c = t_call_new();

        cr_assert(eq(int, fl_etcd_put(e, "/probe", 6, "1", 1, 0, t_on_result, c), 0));
        t_wait(c, false);
        if (c->error[0] == '\0')
            return;
        cr_assert(lt(u64, h_now_ms(), end), "etcd takes no writes: %s", c->error);
        t_run_for(100);
    }
}

/* ------------------------------------------------------------------ watches */

struct t_events {
    size_t n;
    size_t batches;
    struct {
        enum fl_event_type type;
        struct t_kv kv;
    } ev[T_MAX_EVS];
    int64_t compacted; /* the compact revision the watch reported, 0: none */
    int64_t last_batch_revision;
};

static void
t_on_events(void *arg, const struct fl_event *evs, size_t n, int64_t revision)
{
    struct t_events *te = arg;

    cr_assert(gt(sz, n, (size_t)0), "an empty batch");
    te->batches++;
    te->last_batch_revision = revision;
    for (size_t k = 0; k < n; k++) {
        cr_assert(lt(sz, te->n, (size_t)T_MAX_EVS));
        cr_assert(le(i64, evs[k].kv.mod_revision, revision), "an event after its batch revision");
        te->ev[te->n].type = evs[k].type;
        t_kv_copy(&te->ev[te->n].kv, &evs[k].kv);
        te->n++;
    }
}

static void
t_on_compacted(void *arg, int64_t compact_revision)
{
    struct t_events *te = arg;

    te->compacted = compact_revision;
}

static const struct fl_watch_cbs t_watch_cbs = {.events = t_on_events, .compacted = t_on_compacted};

/* Asserts that event k is (type, key, value). */
static void
t_assert_event(const struct t_events *te, size_t k, enum fl_event_type type, const char *key,
               const char *value)
{
    cr_assert(lt(sz, k, te->n), "only %zu events", te->n);
    cr_assert(eq(int, te->ev[k].type, type), "event %zu's type", k);
    cr_assert(eq(str, (char *)te->ev[k].kv.key, (char *)key), "event %zu's key", k);
    cr_assert(eq(str, (char *)te->ev[k].kv.value, (char *)value), "event %zu's value", k);
}

/* ------------------------------------------------------------------ the tests */

Test(fleet_etcd, puts_and_gets_one_key_and_a_prefix, .timeout = T_TIMEOUT)
{
    static const char bin_key[] = "/fl/bin\0\xff\x01";
    struct fl_etcd *e;
    struct t_call *c, *g;

    h_etcd_start(1);
    t_loop_init();
    e = t_client_all(5000, NULL);
    t_wait_writable(e);

    c = t_put(e, "/fl/a", "1", 0);
    cr_assert(gt(i64, c->revision, 1));
    t_put(e, "/fl/b", "two", 0);
    t_put(e, "/fm", "outside", 0); /* "/fl/" + 1 would be "/fl0": "/fm" sorts after it */
    t_put(e, "/fl", "the prefix without its slash", 0);

    g = t_get(e, "/fl/a", 0);
    cr_assert(eq(sz, g->n_kvs, 1));
    cr_assert(eq(str, g->kvs[0].key, "/fl/a"));
    cr_assert(eq(str, g->kvs[0].value, "1"));
    cr_assert(eq(i64, g->kvs[0].mod_revision, c->revision), "mod_revision is the put's revision");
    cr_assert(eq(i64, g->kvs[0].create_revision, c->revision));
    cr_assert(eq(i64, g->kvs[0].version, 1));
    cr_assert(ge(i64, g->revision, c->revision));

    c = t_put(e, "/fl/a", "3", 0);
    g = t_get(e, "/fl/a", 0);
    cr_assert(eq(str, g->kvs[0].value, "3"));
    cr_assert(eq(i64, g->kvs[0].version, 2));
    cr_assert(eq(i64, g->kvs[0].mod_revision, c->revision));

    g = t_get(e, "/fl/", FL_PREFIX);
    cr_assert(eq(sz, g->n_kvs, 2), "the prefix holds /fl/a and /fl/b only");
    cr_assert(eq(int, (int)g->count, 2));
    cr_assert(eq(str, g->kvs[0].key, "/fl/a"));
    cr_assert(eq(str, g->kvs[1].key, "/fl/b"));
    cr_assert(eq(str, g->kvs[1].value, "two"));

    g = t_get(e, "/nothing/here", 0);
    cr_assert(eq(sz, g->n_kvs, 0));
    cr_assert(gt(i64, g->revision, 0), "an empty answer still carries the revision");

    /* Keys and values are bytes: NUL and 0xff travel as they are. */
    c = t_call_new();
    cr_assert(
        eq(int, fl_etcd_put(e, bin_key, sizeof(bin_key) - 1, "v\0w", 3, 0, t_on_result, c), 0));
    t_wait(c, true);
    c = t_call_new();
    cr_assert(eq(int, fl_etcd_get(e, bin_key, sizeof(bin_key) - 1, 0, t_on_result, c), 0));
    t_wait(c, true);
    cr_assert(eq(sz, c->n_kvs, 1));
    cr_assert(eq(sz, c->kvs[0].key_len, sizeof(bin_key) - 1));
    cr_assert(eq(int, memcmp(c->kvs[0].key, bin_key, sizeof(bin_key) - 1), 0));
    cr_assert(eq(sz, c->kvs[0].value_len, 3));
    cr_assert(eq(int, memcmp(c->kvs[0].value, "v\0w", 3), 0));

    /* Delete one key, then a prefix. */
    c = t_call_new();
    cr_assert(eq(int, fl_etcd_del(e, "/fl/a", 5, 0, t_on_result, c), 0));
    cr_assert(eq(i64, t_wait(c, true)->deleted, 1));
    c = t_call_new();
    cr_assert(eq(int, fl_etcd_del(e, "/fl/", 4, FL_PREFIX, t_on_result, c), 0));
    cr_assert(eq(i64, t_wait(c, true)->deleted, 2), "/fl/b and the binary key");
    cr_assert(eq(sz, t_get(e, "/fm", 0)->n_kvs, 1), "outside the prefix: kept");
    cr_assert(eq(sz, t_get(e, "/fl", 0)->n_kvs, 1), "the prefix itself without '/': kept");
    fl_etcd_free(e);
    t_loop_fini();
}

Test(fleet_etcd, cas_succeeds_on_the_expected_revision_and_reports_the_current_value_otherwise,
     .timeout = T_TIMEOUT)
{
    struct fl_etcd *e;
    struct t_call *c, *g;
    int64_t rev;

    h_etcd_start(1);
    t_loop_init();
    e = t_client_all(5000, NULL);
    t_wait_writable(e);

    /* R = 0: the key must not exist. */
    c = t_cas(e, "/cas/k", "first", 0, NULL, NULL);
    cr_assert(c->succeeded);
    rev = c->revision;
    g = t_get(e, "/cas/k", 0);
    cr_assert(eq(str, g->kvs[0].value, "first"));
    cr_assert(eq(i64, g->kvs[0].mod_revision, rev));

    c = t_cas(e, "/cas/k", "again", 0, NULL, NULL);
    cr_assert(not(c->succeeded), "the key exists now");
    cr_assert(eq(sz, c->n_kvs, 1), "a conflict returns the key as it is");
    cr_assert(eq(str, c->kvs[0].value, "first"));
    cr_assert(eq(i64, c->kvs[0].mod_revision, rev));
    cr_assert(eq(i64, c->revision, rev), "nothing was written");

    /* The right revision: the key and another one in the same transaction. */
    c = t_cas(e, "/cas/k", "second", rev, "/cas/other", "also");
    cr_assert(c->succeeded);
    cr_assert(eq(i64, c->revision, rev + 1), "one transaction, one revision");
    g = t_get(e, "/cas/", FL_PREFIX);
    cr_assert(eq(sz, g->n_kvs, 2));
    cr_assert(eq(str, g->kvs[0].value, "second"));
    cr_assert(eq(i64, g->kvs[0].mod_revision, rev + 1));
    cr_assert(eq(str, g->kvs[1].value, "also"));
    cr_assert(eq(i64, g->kvs[1].mod_revision, rev + 1));

    /* A stale revision fails, and puts nothing. */
    c = t_cas(e, "/cas/k", "third", rev, "/cas/other", "not this");
    cr_assert(not(c->succeeded));
    cr_assert(eq(str, c->kvs[0].value, "second"));
    cr_assert(eq(i64, c->kvs[0].mod_revision, rev + 1));
    cr_assert(eq(str, t_get(e, "/cas/other", 0)->kvs[0].value, "also"));

    /* A deleted key conflicts with no current value. */
    c = t_call_new();
    cr_assert(eq(int, fl_etcd_del(e, "/cas/k", 6, 0, t_on_result, c), 0));
    t_wait(c, true);
    c = t_cas(e, "/cas/k", "x", rev + 1, NULL, NULL);
    cr_assert(not(c->succeeded));
    cr_assert(eq(sz, c->n_kvs, 0));
    cr_assert(t_cas(e, "/cas/k", "x", 0, NULL, NULL)->succeeded, "gone again: R = 0 holds");
    fl_etcd_free(e);
    t_loop_fini();
}

Test(fleet_etcd, a_watch_sees_puts_and_deletes_in_order, .timeout = T_TIMEOUT)
{
    struct t_conn_log *log = h_alloc(sizeof(*log));
    struct t_events *te = h_alloc(sizeof(*te)), *old = h_alloc(sizeof(*old));
    struct fl_watch *w, *w_old;
    struct fl_etcd *e;
    struct t_call *first, *c;

    h_etcd_start(1);
    t_loop_init();
    e = t_client_all(5000, log);
    t_wait_writable(e);
    first = t_put(e, "/w/before", "b", 0);
    t_put(e, "/x/not-watched", "x", 0);

    w = fl_watch_new(e, "/w/", 3, FL_PREFIX, 0, &t_watch_cbs, te);
    cr_assert(ne(ptr, w, NULL));
    T_RUN_UNTIL(t_conn_is(log, "watch", true), T_WAIT_MS);
    cr_assert(t_conn_is(log, "watch", true), "the watch never came up");
    cr_assert(gt(i64, fl_watch_next_revision(w), first->revision),
              "a watch from now resumes after the revision it was created at");

    t_put(e, "/w/a", "1", 0);
    t_put(e, "/x/not-watched", "y", 0);
    t_put(e, "/w/b", "2", 0);
    c = t_call_new();
    cr_assert(eq(int, fl_etcd_del(e, "/w/a", 4, 0, t_on_result, c), 0));
    t_wait(c, true);
    t_cas(e, "/w/c", "3", 0, "/w/d", "4"); /* two events of one revision */
    c = t_call_new();
    cr_assert(eq(int, fl_etcd_del(e, "/w/", 3, FL_PREFIX, t_on_result, c), 0));
    t_wait(c, true);
    T_RUN_UNTIL(te->n >= 9, T_WAIT_MS);
    t_run_for(200); /* nothing more may come */
    cr_assert(eq(sz, te->n, 9));
    t_assert_event(te, 0, FL_EVENT_PUT, "/w/a", "1");
    t_assert_event(te, 1, FL_EVENT_PUT, "/w/b", "2");
    t_assert_event(te, 2, FL_EVENT_DELETE, "/w/a", "");
    t_assert_event(te, 3, FL_EVENT_PUT, "/w/c", "3");
    t_assert_event(te, 4, FL_EVENT_PUT, "/w/d", "4");
    cr_assert(eq(i64, te->ev[3].kv.mod_revision, te->ev[4].kv.mod_revision));
    /* The prefix delete: /w/b, /w/before (put before the watch), /w/c and /w/d in key order,
     * one revision. */
    t_assert_event(te, 5, FL_EVENT_DELETE, "/w/b", "");
    t_assert_event(te, 6, FL_EVENT_DELETE, "/w/before", "");
    t_assert_event(te, 7, FL_EVENT_DELETE, "/w/c", "");
    t_assert_event(te, 8, FL_EVENT_DELETE, "/w/d", "");
    cr_assert(eq(i64, te->ev[5].kv.mod_revision, te->ev[8].kv.mod_revision));
    for (size_t k = 1; k < te->n; k++)
        cr_assert(ge(i64, te->ev[k].kv.mod_revision, te->ev[k - 1].kv.mod_revision));
    cr_assert(eq(i64, te->ev[1].kv.version, 1));
    cr_assert(eq(i64, fl_watch_next_revision(w), te->ev[8].kv.mod_revision + 1));

    /* From a past revision: the history is replayed, /w/before first. */
    w_old = fl_watch_new(e, "/w/", 3, FL_PREFIX, first->revision, &t_watch_cbs, old);
    T_RUN_UNTIL(old->n >= 10, T_WAIT_MS);
    t_run_for(200);
    cr_assert(eq(sz, old->n, 10));
    t_assert_event(old, 0, FL_EVENT_PUT, "/w/before", "b");
    t_assert_event(old, 1, FL_EVENT_PUT, "/w/a", "1");
    t_assert_event(old, 9, FL_EVENT_DELETE, "/w/d", "");
    fl_watch_free(w_old);
    fl_watch_free(w);
    fl_etcd_free(e);
    t_loop_fini();
}

/* Compacts the store up to `rev` (etcd compacts by itself in production). */
static void
t_compact(const struct h_etcd_member *m, int64_t rev)
{
    h_etcd_post(m, "/v3/kv/compaction",
                h_fmt("{\"revision\":\"%" PRId64 "\",\"physical\":true}", rev));
}

/*
 * Creates `key` = value (cas, R = 0), trying again until it is known to exist with that value:
 * a write that fails while a leader is elected may still have been applied, and a plain put
 * tried again would make a second event.
 */
static void
t_create_surely(struct fl_etcd *e, const char *key, const char *value)
{
    struct fl_put put = {key, strlen(key), value, strlen(value), 0};
    uint64_t end = h_now_ms() + T_WAIT_MS;

    for (;;) {
        struct t_call *c = t_call_new();

        cr_assert(eq(int, fl_etcd_cas(e, 0, &put, 1, t_on_result, c), 0));
        t_wait(c, false);
        if (c->error[0] == '\0' && c->succeeded)
            return;
        if (c->error[0] == '\0') {
            cr_assert(eq(sz, c->n_kvs, 1));
            cr_assert(eq(str, c->kvs[0].value, (char *)value), "%s exists with another value", key);
            return; /* the failed try had been applied */
        }
        cr_assert(lt(u64, h_now_ms(), end), "cannot write %s: %s", key, c->error);
        t_run_for(100);
    }
}

Test(fleet_etcd, a_watch_from_a_compacted_revision_tells_the_owner_which_reads_and_restarts,
     .timeout = T_TIMEOUT)
{
    struct t_events *te = h_alloc(sizeof(*te));
    struct fl_watch *w;
    struct fl_etcd *e;
    struct t_call *a, *g;

    h_etcd_start(1);
    t_loop_init();
    e = t_client_all(5000, NULL);
    t_wait_writable(e);
    a = t_put(e, "/c/a", "1", 0);
    t_put(e, "/c/a", "2", 0);
    t_put(e, "/c/b", "3", 0);
    t_compact(&h_etcd[0], a->revision + 2);

    w = fl_watch_new(e, "/c/", 3, FL_PREFIX, a->revision, &t_watch_cbs, te);
    T_RUN_UNTIL(te->compacted != 0, T_WAIT_MS);
    cr_assert(eq(i64, te->compacted, a->revision + 2));
    cr_assert(eq(sz, te->n, 0), "no event before the compacted revision");

    /* What an owner does: read the prefix, resume after that read. */
    g = t_get(e, "/c/", FL_PREFIX);
    cr_assert(eq(sz, g->n_kvs, 2));
    cr_assert(eq(int, fl_watch_restart(w, g->revision + 1), 0));
    t_put(e, "/c/b", "4", 0);
    T_RUN_UNTIL(te->n >= 1, T_WAIT_MS);
    t_run_for(200);
    cr_assert(eq(sz, te->n, 1), "only what came after the read");
    t_assert_event(te, 0, FL_EVENT_PUT, "/c/b", "4");
    fl_watch_free(w);
    fl_etcd_free(e);
    t_loop_fini();
}

Test(fleet_etcd, a_watch_resumes_without_gap_or_repeat_after_its_member_is_killed,
     .timeout = T_TIMEOUT)
{
    struct t_conn_log *log = h_alloc(sizeof(*log));
    struct t_events *te = h_alloc(sizeof(*te));
    const struct h_etcd_member *order[3], *others[2];
    struct fl_etcd *watcher, *writer, *probe;
    const struct h_etcd_member *victim = NULL;
    struct fl_watch *w;
    const char *ep;
    bool up, saw_down = false;
    size_t k, n = 0, leader;

    h_etcd_start(3);
    t_loop_init();
    probe = t_client_all(5000, NULL);
    t_wait_writable(probe);
    fl_etcd_free(probe);
    /* The member the watch streams from is the leader: losing it also costs an election, the
     * harder case. The writer never uses it, so that no write of the test is lost with it. */
    leader = h_etcd_leader();
    for (k = 0; k < 3; k++)
        if (k == leader)
            victim = &h_etcd[k];
        else
            others[n++] = &h_etcd[k];
    cr_assert(eq(sz, n, 2));
    order[0] = victim;
    order[1] = others[0];
    order[2] = others[1];
    watcher = t_client(order, 3, 3000, log);
    /* Longer than etcd's own wait for a proposal lost with its leader (5 s + 2 elections). */
    writer = t_client(others, 2, 8000, NULL);
    w = fl_watch_new(watcher, "/r/", 3, FL_PREFIX, 0, &t_watch_cbs, te);
    T_RUN_UNTIL(t_conn_is(log, "watch", true), T_WAIT_MS);
    cr_assert(t_conn_last(log, "watch", &up, &ep) && up);
    cr_assert(eq(str, (char *)ep, (char *)victim->url), "the watch streams from the leader");

    for (k = 0; k < 10; k++)
        t_create_surely(writer, h_fmt("/r/%02zu", k), h_fmt("v%zu", k));
    T_RUN_UNTIL(te->n >= 10, T_WAIT_MS);
    cr_assert(eq(sz, te->n, 10));

    h_etcd_kill((struct h_etcd_member *)victim);
    /* Writes go on while the watch is away (and the survivors elect a leader). */
    for (; k < 30; k++)
        t_create_surely(writer, h_fmt("/r/%02zu", k), h_fmt("v%zu", k));
    T_RUN_UNTIL(te->n >= 30, T_WAIT_MS);
    t_run_for(300);
    cr_assert(eq(sz, te->n, 30), "every event once");
    for (k = 0; k < 30; k++) {
        t_assert_event(te, k, FL_EVENT_PUT, h_fmt("/r/%02zu", k), h_fmt("v%zu", k));
        if (k > 0)
            cr_assert(gt(i64, te->ev[k].kv.mod_revision, te->ev[k - 1].kv.mod_revision));
    }
    /* It reported the loss, and came back on a surviving member. */
    cr_assert(t_conn_last(log, "watch", &up, &ep) && up);
    cr_assert(ne(str, (char *)ep, (char *)victim->url));
    for (size_t i = 0; i < log->n; i++)
        if (strcmp(log->ch[i].what, "watch") == 0 && !log->ch[i].up &&
            strcmp(log->ch[i].endpoint, victim->url) == 0)
            saw_down = true;
    cr_assert(saw_down, "the loss of the leader's stream was reported");
    fl_watch_free(w);
    fl_etcd_free(watcher);
    fl_etcd_free(writer);
    t_loop_fini();
}

struct t_lease_log {
    size_t granted, lost;
    int64_t id, lost_id;
    char why[256];
};

static void
t_on_lease(void *arg, enum fl_lease_state state, int64_t id, const char *why)
{
    struct t_lease_log *ll = arg;

    if (state == FL_LEASE_GRANTED) {
        cr_assert(gt(i64, id, 0));
        ll->granted++;
        ll->id = id;
    } else {
        cr_assert(ne(ptr, (void *)why, NULL));
        ll->lost++;
        ll->lost_id = id;
        snprintf(ll->why, sizeof(ll->why), "%s", why);
    }
}

Test(fleet_etcd, a_kept_lease_keeps_its_key_and_revoking_it_removes_the_key, .timeout = T_TIMEOUT)
{
    struct t_lease_log *ll = h_alloc(sizeof(*ll));
    struct fl_lease *l;
    struct fl_etcd *e;
    struct t_call *g;
    uint64_t end;

    h_etcd_start(1);
    t_loop_init();
    e = t_client_all(5000, NULL);
    t_wait_writable(e);
    l = fl_lease_new(e, 2, t_on_lease, ll);
    cr_assert(ne(ptr, l, NULL));
    T_RUN_UNTIL(ll->granted == 1, T_WAIT_MS);
    cr_assert(eq(sz, ll->granted, 1));
    cr_assert(eq(i64, fl_lease_id(l), ll->id));
    t_put(e, "/l/alive", "1", ll->id);
    cr_assert(eq(i64, t_get(e, "/l/alive", 0)->kvs[0].lease, ll->id));

    /* Three TTLs: without keep-alives the key would be gone. */
    t_run_for(6000);
    g = t_get(e, "/l/alive", 0);
    cr_assert(eq(sz, g->n_kvs, 1), "the key outlived three TTLs");
    cr_assert(eq(sz, ll->lost, 0));
    cr_assert(eq(sz, ll->granted, 1));

    fl_lease_free(l, true);
    end = h_now_ms() + T_WAIT_MS;
    do {
        t_run_for(50);
        g = t_get(e, "/l/alive", 0);
    } while (g->n_kvs != 0 && h_now_ms() < end);
    cr_assert(eq(sz, g->n_kvs, 0), "revoking the lease removed its key");
    fl_etcd_free(e);
    t_loop_fini();
}

Test(fleet_etcd, a_lease_revoked_behind_its_back_is_reported_lost_and_granted_again,
     .timeout = T_TIMEOUT)
{
    struct t_lease_log *ll = h_alloc(sizeof(*ll));
    struct fl_lease *l;
    struct fl_etcd *e;
    struct t_call *c;
    int64_t first;

    h_etcd_start(1);
    t_loop_init();
    e = t_client_all(5000, NULL);
    t_wait_writable(e);
    l = fl_lease_new(e, 3, t_on_lease, ll);
    T_RUN_UNTIL(ll->granted == 1, T_WAIT_MS);
    cr_assert(eq(sz, ll->granted, 1));
    first = ll->id;

    c = t_call_new();
    cr_assert(eq(int, fl_etcd_lease_revoke(e, first, t_on_result, c), 0));
    t_wait(c, true);
    /* The next keep-alive (within ttl/3 = 1 s) hears that it is gone. */
    T_RUN_UNTIL(ll->granted == 2, T_WAIT_MS);
    cr_assert(eq(sz, ll->lost, 1));
    cr_assert(eq(i64, ll->lost_id, first));
    cr_assert(ne(ptr, strstr(ll->why, "no longer exists"), NULL), "%s", ll->why);
    cr_assert(eq(sz, ll->granted, 2));
    cr_assert(ne(i64, ll->id, first));
    cr_assert(eq(i64, fl_lease_id(l), ll->id));

    /* The plain calls: a keep-alive of a revoked lease answers ttl 0; revoking it again fails
     * with etcd's reason. */
    c = t_call_new();
    cr_assert(eq(int, fl_etcd_lease_keepalive(e, first, t_on_result, c), 0));
    cr_assert(eq(i64, t_wait(c, true)->ttl, 0));
    c = t_call_new();
    cr_assert(eq(int, fl_etcd_lease_revoke(e, first, t_on_result, c), 0));
    t_wait(c, false);
    cr_assert(ne(ptr, strstr(c->error, "lease not found"), NULL), "%s", c->error);
    c = t_call_new();
    cr_assert(eq(int, fl_etcd_lease_keepalive(e, ll->id, t_on_result, c), 0));
    cr_assert(eq(i64, t_wait(c, true)->ttl, 3));
    fl_lease_free(l, false);
    fl_etcd_free(e);
    t_loop_fini();
}

Test(fleet_etcd, with_every_endpoint_down_requests_fail_in_time_then_recover, .timeout = T_TIMEOUT)
{
    struct t_conn_log *log = h_alloc(sizeof(*log));
    struct h_etcd_member dead = {0};
    const struct h_etcd_member *ms[2] = {&dead, &h_etcd[0]};
    struct fl_etcd *e;
    struct t_call *c;
    uint64_t start;
    const char *ep;
    bool up;

    h_etcd_start(1);
    t_loop_init();
    /* The first endpoint refuses connections: the client moves to the second. */
    snprintf(dead.url, sizeof(dead.url), "http://127.0.0.1:%d", h_free_port());
    e = t_client(ms, 2, 1000, log);
    t_wait_writable(e);
    cr_assert(ge(sz, log->n, (size_t)2));
    cr_assert(eq(str, log->ch[0].endpoint, dead.url));
    cr_assert(not(log->ch[0].up));
    cr_assert(t_conn_last(log, "kv", &up, &ep) && up);
    cr_assert(eq(str, (char *)ep, h_etcd[0].url));

    h_etcd_kill(&h_etcd[0]);
    start = h_now_ms();
    c = t_call_new();
    cr_assert(eq(int, fl_etcd_get(e, "/k", 2, 0, t_on_result, c), 0));
    t_wait(c, false);
    cr_assert(ne(str, c->error, ""), "a read with no member up fails");
    cr_assert(lt(u64, h_now_ms() - start, (uint64_t)3000), "within its 1 s deadline (and slack)");
    cr_assert(ne(ptr, strstr(c->error, "1000 ms"), NULL), "%s", c->error);
    c = t_call_new();
    cr_assert(eq(int, fl_etcd_put(e, "/k", 2, "v", 1, 0, t_on_result, c), 0));
    t_wait(c, false);
    cr_assert(ne(str, c->error, ""), "so does a write");
    cr_assert(t_conn_is(log, "kv", false), "the loss was reported");
    cr_assert(not(c->calls_after));

    /* The member comes back with its data: requests succeed again. */
    h_etcd_spawn(&h_etcd[0]);
    start = h_now_ms();
    t_wait_writable(e);
    cr_assert(t_conn_is(log, "kv", true));
    cr_assert(eq(sz, t_get(e, "/probe", 0)->n_kvs, 1), "the data survived the restart");
    XF_UNUSED(start);
    fl_etcd_free(e);
    t_loop_fini();
}

/* ------------------------------------------------------------------ life cycle */

static bool t_any_called;

static void
t_on_result_flag(void *arg, const struct fl_result *res, const char *error)
{
    XF_UNUSED(arg);
    XF_UNUSED(res);
    XF_UNUSED(error);
    t_any_called = true;
}

static void
t_on_events_flag(void *arg, const struct fl_event *evs, size_t n, int64_t revision)
{
    XF_UNUSED(arg);
    XF_UNUSED(evs);
    XF_UNUSED(n);
    XF_UNUSED(revision);
    t_any_called = true;
}

static void
t_on_lease_flag(void *arg, enum fl_lease_state state, int64_t id, const char *why)
{
    XF_UNUSED(arg);
    XF_UNUSED(state);
    XF_UNUSED(id);
    XF_UNUSED(why);
    t_any_called = true;
}

Test(fleet_etcd, freeing_the_client_with_everything_in_flight_calls_nothing_after,
     .timeout = T_TIMEOUT)
{
    static const struct fl_watch_cbs cbs = {.events = t_on_events_flag};
    struct fl_etcd *e;

    h_etcd_start(1);
    t_loop_init();
    e = t_client_all(5000, NULL);
    t_wait_writable(e);
    for (int k = 0; k < 20; k++)
        cr_assert(eq(int, fl_etcd_put(e, "/f/k", 4, "v", 1, 0, t_on_result_flag, NULL), 0));
    cr_assert(ne(ptr, fl_watch_new(e, "/f/", 3, FL_PREFIX, 1, &cbs, NULL), NULL));
    cr_assert(ne(ptr, fl_lease_new(e, 5, t_on_lease_flag, NULL), NULL));
    /* Some requests are on the wire, the watch is connecting. */
    t_run_for(5);
    t_any_called = false;
    fl_etcd_free(e);
    t_run_for(300);
    cr_assert(not(t_any_called), "a callback ran after fl_etcd_free");
    t_loop_fini();
}

struct t_self_free {
    struct fl_etcd *e;
    int calls;
};

static void
t_on_result_free(void *arg, const struct fl_result *res, const char *error)
{
    struct t_self_free *sf = arg;

    XF_UNUSED(res);
    XF_UNUSED(error);
    sf->calls++;
    fl_etcd_free(sf->e);
}

static void
t_on_events_free(void *arg, const struct fl_event *evs, size_t n, int64_t revision)
{
    struct t_self_free *sf = arg;

    XF_UNUSED(evs);
    XF_UNUSED(n);
    XF_UNUSED(revision);
    sf->calls++;
    fl_etcd_free(sf->e);
}

Test(fleet_etcd, a_callback_may_free_the_client, .timeout = T_TIMEOUT)
{
    static const struct fl_watch_cbs cbs = {.events = t_on_events_free};
    struct t_self_free *sf = h_alloc(sizeof(*sf));
    struct fl_etcd *e;

    h_etcd_start(1);
    t_loop_init();

    /* From a request's callback, with more requests queued behind it. */
    sf->e = e = t_client_all(5000, NULL);
    for (int k = 0; k < 5; k++)
        cr_assert(eq(int, fl_etcd_put(e, "/s/k", 4, "v", 1, 0, t_on_result_free, sf), 0));
    T_RUN_UNTIL(sf->calls > 0, T_WAIT_MS);
    t_run_for(200);
    cr_assert(eq(int, sf->calls, 1));

    /* From a watch's callback, mid-stream. */
    sf->calls = 0;
    sf->e = e = t_client_all(5000, NULL);
    t_wait_writable(e);
    t_put(e, "/s/a", "1", 0);
    t_put(e, "/s/b", "2", 0);
    cr_assert(ne(ptr, fl_watch_new(e, "/s/", 3, FL_PREFIX, 1, &cbs, sf), NULL));
    T_RUN_UNTIL(sf->calls > 0, T_WAIT_MS);
    t_run_for(200);
    cr_assert(eq(int, sf->calls, 1));
    t_loop_fini();
}
