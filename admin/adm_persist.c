/* admin/adm_persist.c -- the state file: its text, reading it, writing it atomically, and the
 * thread that writes it so that the event loop never waits for the disk. */
#include "admin/adm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#define ADM_STATE_FILE_MAX (64u * 1024 * 1024) /* 10,000 pins of 1 KiB escaped fit */

/* ------------------------------------------------------------------ the text */

/* Writes a pinned key as one word: bytes up to 0x20, 0x7f and the backslash as \xNN. */
static void
adm_persist_key(struct evbuffer *out, const char *key, size_t len)
{
    size_t start = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];

        if (c > 0x20 && c != 0x7f && c != '\\')
            continue;
        evbuffer_add(out, key + start, i - start);
        evbuffer_add_printf(out, "\\x%02x", c);
        start = i + 1;
    }
    evbuffer_add(out, key + start, len - start);
}

static const char *
adm_persist_id(long id, char *buf, size_t size)
{
    if (id < 0)
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%ld", id);
    return buf;
}

/* The ramp's STATE word: running, paused (`ramp pause`) or paused_capacity (crossfade held a
 * step y could not take). */
static const char *
adm_persist_ramp_state(const struct adm_ramp *r)
{
    if (r->state != ADM_RAMP_PAUSED)
        return "running";
    return r->capacity_paused ? "paused_capacity" : "paused";
}

/* Writes one word of an event: adm_persist_key's escapes, "-" for an empty one. */
static void
adm_persist_word(struct evbuffer *out, const char *s)
{
    if (*s == '\0')
        evbuffer_add(out, "-", 1);
    else
        adm_persist_key(out, s, strlen(s));
}

static int
adm_persist_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char *
adm_layout(const struct cfg *cfg, char *buf, size_t size)
{
    struct evbuffer *text = evbuffer_new();
    size_t len;

    buf[0] = '\0';
    if (text == NULL)
        goto oom;
    for (int c = 0; c < CFG_CLUSTER_COUNT; c++) {
        const struct cfg_cluster *cl = &cfg->clusters[c];
        const char **addrs = calloc(cl->n_nodes ? cl->n_nodes : 1, sizeof(*addrs));

        if (addrs == NULL)
            goto oom;
        for (size_t i = 0; i < cl->n_nodes; i++)
            addrs[i] = cl->nodes[i].addr.text;
        qsort(addrs, cl->n_nodes, sizeof(*addrs), adm_persist_cmp);
        evbuffer_add_printf(text, "%s%s=", c > 0 ? " " : "",
                            cfg_cluster_name((enum cfg_cluster_id)c));
        for (size_t i = 0; i < cl->n_nodes; i++)
            evbuffer_add_printf(text, "%s%s", i > 0 ? "," : "", addrs[i]);
        free(addrs);
    }
    len = evbuffer_get_length(text);
    if (len < size) {
        evbuffer_remove(text, buf, len);
        buf[len] = '\0';
    } else {
        /* Too long to keep whole: its start, and a hash of all of it, which still tells any
         * change. */
        const char *all = (const char *)evbuffer_pullup(text, -1);
        unsigned long long h = all != NULL ? (unsigned long long)XXH3_64bits(all, len) : 0;

        if (size < 24 || all == NULL)
            goto oom;
        memcpy(buf, all, size - 19);
        snprintf(buf + size - 19, 19, "~%016llx", h);
    }
    evbuffer_free(text);
    return buf;
oom:
    if (text != NULL)
        evbuffer_free(text);
    snprintf(buf, size, "?"); /* compares unequal to any real layout */
    return buf;
}

void
adm_persist_format(const struct adm_persist *p, struct evbuffer *out)
{
    char w[3][ADM_WEIGHT_TEXT], uid[24], pid[24];
    const struct adm_ramp *r = &p->ramp;

    evbuffer_add_printf(out,
                        "# crossfade state file: rewritten on every change made through the admin "
                        "socket,\n"
                        "# read at start-up where it overrides split.weight unless the clusters'\n"
                        "# nodes in the configuration changed (docs/admin.md).\n"
                        "version %d\n"
                        "layout %s\n"
                        "weight %s\n",
                        ADM_STATE_VERSION, p->layout, adm_weight_text(p->weight_bp, w[0]));
    if (p->freeze)
        evbuffer_add_printf(out, "freeze on %lld\n", (long long)p->freeze_since);
    else
        evbuffer_add_printf(out, "freeze off\n");
    if (r->state != ADM_RAMP_NONE)
        evbuffer_add_printf(out, "ramp %s %s %s %s %lld %llu %u %lld %s %s %s\n",
                            adm_persist_ramp_state(r), adm_weight_text(r->from_bp, w[0]),
                            adm_weight_text(r->to_bp, w[1]), adm_weight_text(r->step_bp, w[2]),
                            (long long)r->start_ms, (unsigned long long)r->duration_ms, r->done,
                            (long long)(r->state == ADM_RAMP_PAUSED ? r->paused_ms : 0),
                            adm_persist_id(r->uid, uid, sizeof(uid)),
                            adm_persist_id(r->pid, pid, sizeof(pid)),
                            r->command[0] != '\0' ? r->command : "-");
    if (p->have_seed)
        evbuffer_add_printf(out, "seed %016" PRIx64 "\n", p->seed_hash);
    /* The guard: on or off, tripped or armed, and whether the ramp waits for it. */
    evbuffer_add_printf(out, "guard %s %s%s\n", p->guard_on ? "on" : "off",
                        p->guard_tripped ? "tripped" : "armed",
                        r->state != ADM_RAMP_NONE && r->guarded ? " guarded_ramp" : "");
    for (size_t i = 0; i < bal_pins_count(p->pins); i++) {
        const char *key;
        size_t len;
        enum cfg_cluster_id side = bal_pins_get(p->pins, i, &key, &len);

        evbuffer_add(out, "pin ", 4);
        adm_persist_key(out, key, len);
        evbuffer_add_printf(out, " %s\n", cfg_cluster_name(side));
    }
    for (size_t i = 0; i < p->n_nodes; i++) {
        const struct adm_node_op *op = &p->nodes[i];
        const char *c = cfg_cluster_name(op->cluster);

        switch (op->kind) {
        case ADM_NODE_OP_ADD:
            evbuffer_add_printf(out, "node add %s %s %u\n", c, op->addr, op->weight);
            break;
        case ADM_NODE_OP_DEL:
            evbuffer_add_printf(out, "node del %s/%s\n", c, op->addr);
            break;
        case ADM_NODE_OP_WEIGHT:
            evbuffer_add_printf(out, "node weight %s/%s %u\n", c, op->addr, op->weight);
            break;
        case ADM_NODE_OP_STATE:
            evbuffer_add_printf(out, "node state %s/%s %s\n", c, op->addr,
                                bal_node_state_name(op->state));
            break;
        }
    }
    for (size_t i = 0; i < p->n_events; i++) {
        const struct adm_event *e = &p->events[i];

        evbuffer_add_printf(out, "event %llu %lld %s %s ", (unsigned long long)e->seq,
                            (long long)e->time_ms, adm_persist_id(e->uid, uid, sizeof(uid)),
                            adm_persist_id(e->pid, pid, sizeof(pid)));
        adm_persist_word(out, e->what);
        evbuffer_add(out, " ", 1);
        adm_persist_word(out, e->old_value);
        evbuffer_add(out, " ", 1);
        adm_persist_word(out, e->new_value);
        evbuffer_add_printf(out, " %s\n", e->command[0] != '\0' ? e->command : "-");
    }
}

void
adm_persist_fini(struct adm_persist *p)
{
    bal_pins_unref(p->pins);
    free(p->nodes);
    free(p->events);
    memset(p, 0, sizeof(*p));
}

/* The parser's position, for messages "NAME:LINE: ...". */
struct adm_persist_ctx {
    const char *name;
    size_t line;
    struct xf_err *err;
    bool have_version, have_weight, have_freeze, have_ramp, have_layout;
    int64_t version;
};

static int adm_persist_fail(struct adm_persist_ctx *c, const char *fmt, ...) XF_PRINTF(2, 3);

static int
adm_persist_fail(struct adm_persist_ctx *c, const char *fmt, ...)
{
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    xf_err_set(c->err, "%s:%zu: %s", c->name, c->line, msg);
    return -1;
}

/* A decimal integer, optionally negative, that fits in int64_t. */
static int
adm_persist_i64(struct adm_span s, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    uint64_t v = 0;

    if (s.len > 0 && s.ptr[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i == s.len || s.len - i > 19)
        return -1;
    for (; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s.ptr[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return -1;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

/* The times a state file may hold, in ms since 1970: from 2000 to 2100. Anything else is a
 * damaged file, not a date (a start near INT64_MAX would print as year -292275055). */
#define ADM_PERSIST_TIME_MIN_MS INT64_C(946684800000)
#define ADM_PERSIST_TIME_MAX_MS INT64_C(4102444800000)

static bool
adm_persist_time_ok(int64_t ms)
{
    return ms >= ADM_PERSIST_TIME_MIN_MS && ms < ADM_PERSIST_TIME_MAX_MS;
}

/* A uid or pid: digits, or "-" for none. */
static int
adm_persist_id_parse(struct adm_span s, long *out)
{
    int64_t v;

    if (s.len == 1 && s.ptr[0] == '-') {
        *out = -1;
        return 0;
    }
    if (adm_persist_i64(s, &v) == -1 || v < 0 || v > LONG_MAX)
        return -1;
    *out = (long)v;
    return 0;
}

static int
adm_persist_weight(struct adm_persist_ctx *c, const char *what, struct adm_span s, unsigned *bp)
{
    char q[ADM_QUOTE_TEXT];

    if (adm_weight_parse(s.ptr, s.len, bp) == -1)
        return adm_persist_fail(c,
                                "%s: expected a weight from 0 to 100 with at most two decimals, "
                                "got %s",
                                what, adm_quote(s.ptr, s.len, q, sizeof(q)));
    return 0;
}

static int
adm_persist_line_weight(struct adm_persist_ctx *c, const struct adm_args *a, struct adm_persist *p)
{
    if (c->have_weight)
        return adm_persist_fail(c, "a second weight line");
    if (a->n != 2)
        return adm_persist_fail(c, "expected \"weight P\"");
    c->have_weight = true;
    return adm_persist_weight(c, "weight", a->v[1], &p->weight_bp);
}

static int
adm_persist_line_freeze(struct adm_persist_ctx *c, const struct adm_args *a, struct adm_persist *p)
{
    if (c->have_freeze)
        return adm_persist_fail(c, "a second freeze line");
    c->have_freeze = true;
    if (a->n == 2 && adm_span_is(a->v[1], "off"))
        return 0;
    if (a->n != 3 || !adm_span_is(a->v[1], "on") ||
        adm_persist_i64(a->v[2], &p->freeze_since) == -1 || p->freeze_since < 0)
        return adm_persist_fail(c, "expected \"freeze off\" or \"freeze on SINCE\" (SINCE in "
                                   "seconds since 1970)");
    if (p->freeze_since > INT64_MAX / 1000 || !adm_persist_time_ok(p->freeze_since * 1000))
        return adm_persist_fail(c, "freeze: expected a time from 2000 to 2100, got %lld",
                                (long long)p->freeze_since);
    p->freeze = true;
    return 0;
}

/* Whether a ramp's command ends in the word "force": it was started past y's capacity, and its
 * steps skip the check (the file keeps the command, not the flag). */
static bool
adm_persist_forced(struct adm_span cmd)
{
    struct adm_span last = cmd;

    for (size_t i = cmd.len; i > 0; i--)
        if (cmd.ptr[i - 1] == ' ') {
            last.ptr = cmd.ptr + i;
            last.len = cmd.len - i;
            break;
        }
    return last.len < cmd.len && adm_span_is(last, "force");
}

/*
 * ramp STATE FROM TO STEP START_MS DURATION_MS DONE PAUSED_MS UID PID COMMAND...
 * The plan is checked as `ramp` checks it, but for the pace: the file says what was accepted.
 */
static int
adm_persist_line_ramp(struct adm_persist_ctx *c, const struct adm_args *a, struct adm_persist *p)
{
    struct adm_ramp *r = &p->ramp;
    struct adm_span cmd;
    int64_t v, done;
    unsigned dist;

    if (c->have_ramp)
        return adm_persist_fail(c, "a second ramp line");
    c->have_ramp = true;
    if (a->n < 12)
        return adm_persist_fail(c,
                                "ramp: expected STATE FROM TO STEP START_MS DURATION_MS DONE "
                                "PAUSED_MS UID PID COMMAND, got %zu words",
                                a->n - 1);
    if (adm_span_is(a->v[1], "running")) {
        r->state = ADM_RAMP_RUNNING;
    } else if (adm_span_is(a->v[1], "paused")) {
        r->state = ADM_RAMP_PAUSED;
    } else if (adm_span_is(a->v[1], "paused_capacity")) {
        r->state = ADM_RAMP_PAUSED;
        r->capacity_paused = true;
    } else {
        return adm_persist_fail(c, "ramp: expected running, paused or paused_capacity as its "
                                   "state");
    }
    if (adm_persist_weight(c, "ramp: from", a->v[2], &r->from_bp) == -1 ||
        adm_persist_weight(c, "ramp: to", a->v[3], &r->to_bp) == -1 ||
        adm_persist_weight(c, "ramp: step", a->v[4], &r->step_bp) == -1)
        return -1;
    dist = r->from_bp < r->to_bp ? r->to_bp - r->from_bp : r->from_bp - r->to_bp;
    if (dist == 0 || r->step_bp == 0 || r->step_bp > dist)
        return adm_persist_fail(c, "ramp: expected from and to apart and a step from 0.01 to "
                                   "their distance");
    r->n_steps = (dist + r->step_bp - 1) / r->step_bp;
    if (adm_persist_i64(a->v[5], &r->start_ms) == -1 || !adm_persist_time_ok(r->start_ms))
        return adm_persist_fail(c, "ramp: expected the start in ms since 1970, from 2000 to 2100");
    if (adm_persist_i64(a->v[6], &v) == -1 || v <= 0 || v > UINT_MAX)
        return adm_persist_fail(c, "ramp: expected a duration in ms from 1 to %u", UINT_MAX);
    r->duration_ms = (uint64_t)v;
    if (adm_persist_i64(a->v[7], &done) == -1 || done < 0 || done >= r->n_steps)
        return adm_persist_fail(c, "ramp: expected the steps done, from 0 to %u", r->n_steps - 1);
    r->done = (unsigned)done;
    if (adm_persist_i64(a->v[8], &r->paused_ms) == -1 ||
        (r->paused_ms != 0 && !adm_persist_time_ok(r->paused_ms)) ||
        (r->state == ADM_RAMP_PAUSED) != (r->paused_ms != 0))
        return adm_persist_fail(c, "ramp: expected the pause time in ms since 1970, from 2000 to "
                                   "2100, for a paused ramp, and 0 for a running one");
    if (adm_persist_id_parse(a->v[9], &r->uid) == -1 ||
        adm_persist_id_parse(a->v[10], &r->pid) == -1)
        return adm_persist_fail(c, "ramp: expected a uid and a pid (digits, or - for none)");
    cmd = adm_args_rest(a, 11);
    snprintf(r->command, sizeof(r->command), "%.*s", (int)XF_MIN(cmd.len, sizeof(r->command) - 1),
             cmd.ptr);
    r->force = adm_persist_forced(cmd);
    return 0;
}

static int
adm_persist_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes a word written by adm_persist_key into buf (cap bytes). */
static int
adm_persist_unescape(struct adm_span s, char *buf, size_t cap, size_t *len)
{
    size_t o = 0;

    for (size_t i = 0; i < s.len; i++) {
        int hi, lo;

        if (o == cap)
            return -1;
        if (s.ptr[i] != '\\') {
            buf[o++] = s.ptr[i];
            continue;
        }
        if (s.len - i < 4 || s.ptr[i + 1] != 'x' || (hi = adm_persist_hex(s.ptr[i + 2])) < 0 ||
            (lo = adm_persist_hex(s.ptr[i + 3])) < 0)
            return -1;
        buf[o++] = (char)(hi << 4 | lo);
        i += 3;
    }
    *len = o;
    return o > 0 ? 0 : -1;
}

/* Decodes a pinned key (see adm_persist_key) into buf (BAL_PIN_KEY_MAX bytes). */
static int
adm_persist_unkey(struct adm_span s, char *buf, size_t *len)
{
    return adm_persist_unescape(s, buf, BAL_PIN_KEY_MAX, len);
}

/* A word of an event into a NUL-terminated field of `size` bytes (cut to fit). */
static int
adm_persist_event_word(struct adm_span s, char *field, size_t size)
{
    char buf[ADM_EVENT_LINE];
    size_t len;

    if (adm_persist_unescape(s, buf, sizeof(buf), &len) == -1)
        return -1;
    len = XF_MIN(len, size - 1);
    memcpy(field, buf, len);
    field[len] = '\0';
    return 0;
}

/* event SEQ TIME_MS UID PID WHAT OLD NEW COMMAND... (the audit trail, oldest first) */
static int
adm_persist_line_event(struct adm_persist_ctx *c, const struct adm_args *a, struct adm_persist *p)
{
    struct adm_event e;
    struct adm_span cmd;
    int64_t v;

    memset(&e, 0, sizeof(e));
    if (a->n < 9)
        return adm_persist_fail(c,
                                "event: expected SEQ TIME_MS UID PID WHAT OLD NEW COMMAND, got "
                                "%zu words",
                                a->n - 1);
    if (adm_persist_i64(a->v[1], &v) == -1 || v <= 0)
        return adm_persist_fail(c, "event: expected its number, from 1");
    e.seq = (uint64_t)v;
    if (adm_persist_i64(a->v[2], &e.time_ms) == -1 || !adm_persist_time_ok(e.time_ms))
        return adm_persist_fail(c, "event: expected its time in ms since 1970, from 2000 to 2100");
    if (adm_persist_id_parse(a->v[3], &e.uid) == -1 || adm_persist_id_parse(a->v[4], &e.pid) == -1)
        return adm_persist_fail(c, "event: expected a uid and a pid (digits, or - for none)");
    if (adm_persist_event_word(a->v[5], e.what, sizeof(e.what)) == -1 ||
        adm_persist_event_word(a->v[6], e.old_value, sizeof(e.old_value)) == -1 ||
        adm_persist_event_word(a->v[7], e.new_value, sizeof(e.new_value)) == -1)
        return adm_persist_fail(c, "event: expected WHAT, OLD and NEW as words with \\xNN escapes");
    if (p->n_events > 0 && e.seq <= p->events[p->n_events - 1].seq)
        return adm_persist_fail(c, "event: expected the events in the order of their numbers");
    cmd = adm_args_rest(a, 8);
    snprintf(e.command, sizeof(e.command), "%.*s", (int)XF_MIN(cmd.len, sizeof(e.command) - 1),
             cmd.ptr);
    if (p->events == NULL && (p->events = calloc(ADM_EVENTS_MAX, sizeof(*p->events))) == NULL)
        return adm_persist_fail(c, "out of memory");
    if (p->n_events == ADM_EVENTS_MAX) {
        /* More than the trail keeps (written by hand?): the oldest go. */
        memmove(p->events, p->events + 1, (ADM_EVENTS_MAX - 1) * sizeof(*p->events));
        p->n_events--;
    }
    p->events[p->n_events++] = e;
    return 0;
}

/* layout x=A,B y=C: the cluster layout the file was written for. */
static int
adm_persist_line_layout(struct adm_persist_ctx *c, const struct adm_args *a, struct adm_persist *p)
{
    struct adm_span rest = adm_args_rest(a, 1);

    if (c->have_layout)
        return adm_persist_fail(c, "a second layout line");
    c->have_layout = true;
    if (a->n != 3 || a->v[1].len < 2 || memcmp(a->v[1].ptr, "x=", 2) != 0 || a->v[2].len < 2 ||
        memcmp(a->v[2].ptr, "y=", 2) != 0 || rest.len >= sizeof(p->layout))
        return adm_persist_fail(c, "expected \"layout x=ADDRESS,... y=ADDRESS,...\"");
    memcpy(p->layout, rest.ptr, rest.len);
    p->layout[rest.len] = '\0';
    return 0;
}

static int
adm_persist_line_pin(struct adm_persist_ctx *c, const struct adm_args *a, struct adm_persist *p)
{
    char key[BAL_PIN_KEY_MAX], q[ADM_QUOTE_TEXT];
    struct xf_err err = {{0}};
    enum cfg_cluster_id side;
    size_t len;
    int old;

    if (a->n != 3)
        return adm_persist_fail(c, "expected \"pin KEY SIDE\"");
    if (adm_persist_unkey(a->v[1], key, &len) == -1)
        return adm_persist_fail(c,
                                "pin: expected a key of 1 to %d bytes, \\xNN escapes for "
                                "blanks, control bytes and the backslash",
                                BAL_PIN_KEY_MAX);
    if (adm_span_is(a->v[2], "x"))
        side = CFG_CLUSTER_X;
    else if (adm_span_is(a->v[2], "y"))
        side = CFG_CLUSTER_Y;
    else
        return adm_persist_fail(c, "pin: expected x or y as the side");
    if (p->pins == NULL && (p->pins = bal_pins_new()) == NULL)
        return adm_persist_fail(c, "out of memory");
    if (bal_pins_set(p->pins, key, len, side, &old, &err) == -1)
        return adm_persist_fail(c, "pin: %s", err.msg);
    if (old != -1)
        return adm_persist_fail(c, "pin: the key %s is pinned twice",
                                adm_quote(key, len, q, sizeof(q)));
    return 0;
}

/* A node weight of the file: 0..ADM_NODE_WEIGHT_MAX. */
static int
adm_persist_node_weight(struct adm_span s, unsigned *w)
{
    int64_t v;

    if (adm_persist_i64(s, &v) == -1 || v < 0 || v > ADM_NODE_WEIGHT_MAX)
        return -1;
    *w = (unsigned)v;
    return 0;
}

/* CLUSTER ADDRESS (add) or CLUSTER/ADDRESS (the others) into op. */
static int
adm_persist_node_name(struct adm_span cl, struct adm_span addr, struct adm_node_op *op)
{
    if (adm_span_is(cl, "x"))
        op->cluster = CFG_CLUSTER_X;
    else if (adm_span_is(cl, "y"))
        op->cluster = CFG_CLUSTER_Y;
    else
        return -1;
    if (addr.len == 0 || addr.len >= sizeof(op->addr))
        return -1;
    memcpy(op->addr, addr.ptr, addr.len);
    op->addr[addr.len] = '\0';
    return 0;
}

/* node add C ADDR W | node del C/ADDR | node weight C/ADDR W | node state C/ADDR STATE */
static int
adm_persist_line_node(struct adm_persist_ctx *c, const struct adm_args *a, struct adm_persist *p)
{
    struct adm_node_op op;
    struct adm_node_op *ops;
    const char *slash;
    size_t need;

    memset(&op, 0, sizeof(op));
    if (a->n == 5 && adm_span_is(a->v[1], "add")) {
        op.kind = ADM_NODE_OP_ADD;
        if (adm_persist_node_name(a->v[2], a->v[3], &op) == -1 ||
            adm_persist_node_weight(a->v[4], &op.weight) == -1)
            return adm_persist_fail(c, "node add: expected CLUSTER ADDRESS WEIGHT");
    } else if (a->n >= 3 && a->n <= 4) {
        struct adm_span ref = a->v[2], cl, addr;

        if (adm_span_is(a->v[1], "del") && a->n == 3)
            op.kind = ADM_NODE_OP_DEL;
        else if (adm_span_is(a->v[1], "weight") && a->n == 4)
            op.kind = ADM_NODE_OP_WEIGHT;
        else if (adm_span_is(a->v[1], "state") && a->n == 4)
            op.kind = ADM_NODE_OP_STATE;
        else
            return adm_persist_fail(c, "expected \"node add|del|weight|state ...\"");
        slash = memchr(ref.ptr, '/', ref.len);
        if (slash == NULL)
            return adm_persist_fail(c, "node: expected CLUSTER/ADDRESS");
        cl.ptr = ref.ptr;
        cl.len = (size_t)(slash - ref.ptr);
        addr.ptr = slash + 1;
        addr.len = ref.len - cl.len - 1;
        if (adm_persist_node_name(cl, addr, &op) == -1)
            return adm_persist_fail(c, "node: expected CLUSTER/ADDRESS");
        if (op.kind == ADM_NODE_OP_WEIGHT && adm_persist_node_weight(a->v[3], &op.weight) == -1)
            return adm_persist_fail(c, "node weight: expected a weight from 0 to %d",
                                    ADM_NODE_WEIGHT_MAX);
        if (op.kind == ADM_NODE_OP_STATE) {
            if (adm_span_is(a->v[3], "up"))
                op.state = BAL_NODE_UP;
            else if (adm_span_is(a->v[3], "draining"))
                op.state = BAL_NODE_DRAINING;
            else if (adm_span_is(a->v[3], "disabled"))
                op.state = BAL_NODE_DISABLED;
            else
                return adm_persist_fail(c, "node state: expected up, draining or disabled");
        }
    } else {
        return adm_persist_fail(c, "expected \"node add|del|weight|state ...\"");
    }
    need = p->n_nodes + 1;
    ops = realloc(p->nodes, need * sizeof(*ops));
    if (ops == NULL)
        return adm_persist_fail(c, "out of memory");
    p->nodes = ops;
    p->nodes[p->n_nodes++] = op;
    return 0;
}

/* "guard on|off armed|tripped [guarded_ramp]" (the ramp line comes first when there is one). */
static int
adm_persist_line_guard(struct adm_persist_ctx *c, const struct adm_args *a, struct adm_persist *p)
{
    if (p->have_guard)
        return adm_persist_fail(c, "a second guard line");
    if ((a->n != 3 && a->n != 4) || !(adm_span_is(a->v[1], "on") || adm_span_is(a->v[1], "off")) ||
        !(adm_span_is(a->v[2], "armed") || adm_span_is(a->v[2], "tripped")) ||
        (a->n == 4 && !adm_span_is(a->v[3], "guarded_ramp")))
        return adm_persist_fail(c, "expected \"guard on|off armed|tripped [guarded_ramp]\"");
    p->have_guard = true;
    p->guard_on = adm_span_is(a->v[1], "on");
    p->guard_tripped = adm_span_is(a->v[2], "tripped");
    p->ramp.guarded = a->n == 4 && p->ramp.state != ADM_RAMP_NONE;
    return 0;
}

/* "seed HEX": the hash of the fleet's split.seed, 16 hex digits. */
static int
adm_persist_line_seed(struct adm_persist_ctx *c, const struct adm_args *a, struct adm_persist *p)
{
    uint64_t v = 0;

    if (p->have_seed)
        return adm_persist_fail(c, "a second seed line");
    if (a->n != 2 || a->v[1].len != 16)
        return adm_persist_fail(c, "expected \"seed HASH\" (16 hex digits)");
    for (size_t i = 0; i < 16; i++) {
        int d = adm_persist_hex(a->v[1].ptr[i]);

        if (d == -1)
            return adm_persist_fail(c, "expected \"seed HASH\" (16 hex digits)");
        v = v << 4 | (uint64_t)d;
    }
    p->have_seed = true;
    p->seed_hash = v;
    return 0;
}

/* One line that is neither blank nor a comment. */
static int
adm_persist_line(struct adm_persist_ctx *c, const char *line, size_t len, struct adm_persist *p)
{
    char q[ADM_QUOTE_TEXT];
    struct adm_args a;
    long bad = adm_line_bad_byte(line, len);

    if (bad >= 0)
        return adm_persist_fail(c, "the control byte 0x%02x at byte %ld", (unsigned char)line[bad],
                                bad + 1);
    /* Words are split by hand past ADM_MAX_ARGS: only a ramp's or an event's command may have
     * more. */
    if (adm_args_split(line, len, &a) == -1 && !(len > 5 && memcmp(line, "ramp ", 5) == 0) &&
        !(len > 6 && memcmp(line, "event ", 6) == 0))
        return adm_persist_fail(c, "too many words");
    if (a.n == 0)
        return 0;
    if (!c->have_version) {
        int64_t v;

        if (!adm_span_is(a.v[0], "version") || a.n != 2 || adm_persist_i64(a.v[1], &v) == -1)
            return adm_persist_fail(c, "expected \"version %d\" first, got %s", ADM_STATE_VERSION,
                                    adm_quote(line, len, q, sizeof(q)));
        if (v != 1 && v != ADM_STATE_VERSION)
            return adm_persist_fail(c, "version %lld is not one this crossfade reads (1 or %d)",
                                    (long long)v, ADM_STATE_VERSION);
        c->have_version = true;
        c->version = v;
        return 0;
    }
    if (c->version >= 2 && adm_span_is(a.v[0], "layout"))
        return adm_persist_line_layout(c, &a, p);
    if (c->version >= 2 && adm_span_is(a.v[0], "event"))
        return adm_persist_line_event(c, &a, p);
    if (adm_span_is(a.v[0], "weight"))
        return adm_persist_line_weight(c, &a, p);
    if (adm_span_is(a.v[0], "freeze"))
        return adm_persist_line_freeze(c, &a, p);
    if (adm_span_is(a.v[0], "ramp"))
        return adm_persist_line_ramp(c, &a, p);
    if (adm_span_is(a.v[0], "pin"))
        return adm_persist_line_pin(c, &a, p);
    if (adm_span_is(a.v[0], "guard"))
        return adm_persist_line_guard(c, &a, p);
    if (adm_span_is(a.v[0], "node"))
        return adm_persist_line_node(c, &a, p);
    if (c->version >= 2 && adm_span_is(a.v[0], "seed"))
        return adm_persist_line_seed(c, &a, p);
    return adm_persist_fail(c,
                            "unknown line %s (expected layout, weight, freeze, ramp, guard, pin, "
                            "node, seed or event)",
                            adm_quote(line, len, q, sizeof(q)));
}

int
adm_persist_parse(const char *text, size_t len, const char *name, struct adm_persist *out,
                  struct xf_err *err)
{
    struct adm_persist_ctx c = {.name = name, .err = err};
    size_t pos = 0;

    memset(out, 0, sizeof(*out));
    while (pos < len) {
        const char *line = text + pos, *lf = memchr(line, '\n', len - pos);
        size_t n = lf != NULL ? (size_t)(lf - line) : len - pos;

        c.line++;
        pos += n + (lf != NULL ? 1 : 0);
        if (n > 0 && line[n - 1] == '\r')
            n--;
        if (lf == NULL) {
            /* Every line the writer writes ends with LF: a last one without is a cut file. */
            adm_persist_fail(&c, "the last line has no end (was the file cut?)");
            goto fail;
        }
        if (n > 0 && line[0] == '#')
            continue;
        if (adm_persist_line(&c, line, n, out) == -1)
            goto fail;
    }
    if (!c.have_version || !c.have_weight || (c.version >= 2 && !c.have_layout)) {
        c.line++;
        adm_persist_fail(&c, "%s",
                         !c.have_version  ? "an empty file"
                         : !c.have_weight ? "no weight line"
                                          : "no layout line");
        goto fail;
    }
    return 0;
fail:
    adm_persist_fini(out);
    return -1;
}

/* ------------------------------------------------------------------ files */

enum adm_load
adm_persist_load(const char *path, struct adm_persist *out, struct xf_err *err)
{
    char *text = NULL;
    size_t len = 0, cap = 0;
    enum adm_load rc = ADM_LOAD_BAD;
    int fd;

    memset(out, 0, sizeof(*out));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        if (errno == ENOENT)
            return ADM_LOAD_MISSING;
        xf_err_set(err, "%s: cannot open: %s", path, strerror(errno));
        return ADM_LOAD_BAD;
    }
    for (;;) {
        ssize_t n;

        if (len == cap) {
            char *grown;

            if (cap >= ADM_STATE_FILE_MAX) {
                xf_err_set(err, "%s: larger than %u bytes", path, ADM_STATE_FILE_MAX);
                goto out;
            }
            cap = cap == 0 ? 4096 : XF_MIN(cap * 2, (size_t)ADM_STATE_FILE_MAX);
            grown = realloc(text, cap);
            if (grown == NULL) {
                xf_err_set(err, "%s: out of memory", path);
                goto out;
            }
            text = grown;
        }
        n = read(fd, text + len, cap - len);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1) {
            xf_err_set(err, "%s: cannot read: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (adm_persist_parse(text, len, path, out, err) == 0)
        rc = ADM_LOAD_OK;
out:
    close(fd);
    free(text);
    return rc;
}

/* The directory of `path` into buf ("." for a bare name). */
static const char *
adm_persist_dir(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL)
        snprintf(buf, size, ".");
    else if (slash == path)
        snprintf(buf, size, "/");
    else
        snprintf(buf, size, "%.*s", (int)(slash - path), path);
    return buf;
}

int
adm_persist_write(const char *path, const char *text, size_t len, struct xf_err *err)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    size_t done = 0;
    int fd, dfd;

    adm_persist_dir(path, dir, sizeof(dir));
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= sizeof(tmp)) {
        xf_err_set(err, "state_file %s: the path is too long", path);
        return -1;
    }
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd == -1) {
        xf_err_set(err, "state_file %s: cannot create a temporary file in %s: %s", path, dir,
                   strerror(errno));
        return -1;
    }
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);

        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1) {
            xf_err_set(err, "state_file %s: cannot write %s: %s", path, tmp, strerror(errno));
            goto fail;
        }
        done += (size_t)n;
    }
    if (fsync(fd) == -1) {
        xf_err_set(err, "state_file %s: cannot fsync %s: %s", path, tmp, strerror(errno));
        goto fail;
    }
    if (close(fd) == -1) {
        fd = -1;
        xf_err_set(err, "state_file %s: cannot close %s: %s", path, tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) == -1) {
        xf_err_set(err, "state_file %s: cannot rename %s over it: %s", path, tmp, strerror(errno));
        goto fail;
    }
    /* The rename itself lasts only once the directory is on disk. */
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd == -1 || fsync(dfd) == -1) {
        xf_err_set(err, "state_file %s: written, but cannot fsync its directory %s: %s", path, dir,
                   strerror(errno));
        if (dfd != -1)
            close(dfd);
        return -1;
    }
    close(dfd);
    return 0;
fail:
    if (fd != -1)
        close(fd);
    unlink(tmp);
    return -1;
}

/* ------------------------------------------------------------------ the writer thread */

struct adm_saver {
    int efd; /* owned: an eventfd the writer signals after each write (adm_saver_event_fd) */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* a text came, or stop */
    pthread_cond_t done; /* a write ended */
    char *path;          /* owned */
    bool keep_bad;       /* rename the file found to PATH.corrupt before the first write */
    char *pending;       /* owned: the latest text not written yet; NULL when none */
    size_t pending_len;
    bool stop;
    struct adm_saver_status st;
};

static int64_t
adm_saver_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Renames an unusable file aside once, so that the first write does not destroy it. */
static void
adm_saver_keep_bad(struct adm_saver *s)
{
    char aside[PATH_MAX];

    s->keep_bad = false;
    snprintf(aside, sizeof(aside), "%s.corrupt", s->path);
    if (rename(s->path, aside) == 0)
        XF_LOG(XF_LOG_WARN, "admin", "event=state_file_kept path=%s as=%s", s->path, aside);
    else if (errno != ENOENT)
        XF_LOG(XF_LOG_ERR, "admin", "event=state_file_keep_failed path=%s as=%s error=\"%s\"",
               s->path, aside, strerror(errno));
}

static void *
adm_saver_main(void *arg)
{
    struct adm_saver *s = arg;

    pthread_mutex_lock(&s->lock);
    for (;;) {
        struct xf_err err = {{0}};
        uint64_t gen;
        char *text;
        size_t len;
        int rc;

        while (s->pending == NULL && !s->stop)
            pthread_cond_wait(&s->wake, &s->lock);
        if (s->pending == NULL)
            break; /* stop, with nothing left to write */
        text = s->pending;
        len = s->pending_len;
        gen = s->st.submitted;
        s->pending = NULL;
        pthread_mutex_unlock(&s->lock);
        if (s->keep_bad)
            adm_saver_keep_bad(s);
        rc = adm_persist_write(s->path, text, len, &err);
        free(text);
        if (rc == -1) {
            char logged[sizeof(err.msg) * 2];

            XF_LOG(XF_LOG_ERR, "admin", "event=state_file_write_failed error=\"%s\"",
                   adm_log_text(err.msg, logged, sizeof(logged)));
        }
        pthread_mutex_lock(&s->lock);
        s->st.written = gen;
        if (rc == 0) {
            s->st.ok_wall_ms = adm_saver_wall_ms();
            s->st.error_wall_ms = 0;
            s->st.error[0] = '\0';
        } else {
            s->st.error_wall_ms = adm_saver_wall_ms();
            snprintf(s->st.error, sizeof(s->st.error), "%s", err.msg);
        }
        pthread_cond_broadcast(&s->done);
        if (s->efd != -1) {
            uint64_t one = 1;

            /* Wakes the event loop: replies that waited for this write can go. */
            (void)!write(s->efd, &one, sizeof(one));
        }
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

struct adm_saver *
adm_saver_new(const char *path, bool keep_bad, struct xf_err *err)
{
    struct adm_saver *s = calloc(1, sizeof(*s));
    sigset_t all, old;
    int rc;

    if (s == NULL || (s->path = strdup(path)) == NULL) {
        free(s);
        xf_err_set(err, "admin: out of memory");
        return NULL;
    }
    s->keep_bad = keep_bad;
    s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->efd == -1) {
        xf_err_set(err, "state_file %s: eventfd: %s", path, strerror(errno));
        free(s->path);
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    pthread_cond_init(&s->done, NULL);
    /* Signals stay with the event loop's thread. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&s->thread, NULL, adm_saver_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        xf_err_set(err, "state_file %s: cannot start its writer thread: %s", path, strerror(rc));
        pthread_cond_destroy(&s->done);
        pthread_cond_destroy(&s->wake);
        pthread_mutex_destroy(&s->lock);
        close(s->efd);
        free(s->path);
        free(s);
        return NULL;
    }
    return s;
}

int
adm_saver_event_fd(const struct adm_saver *s)
{
    return s->efd;
}

uint64_t
adm_saver_submit(struct adm_saver *s, char *text, size_t len)
{
    uint64_t gen;

    pthread_mutex_lock(&s->lock);
    free(s->pending); /* an older text nobody wrote yet: this one replaces it */
    s->pending = text;
    s->pending_len = len;
    gen = ++s->st.submitted;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    return gen;
}

void
adm_saver_flush(struct adm_saver *s)
{
    pthread_mutex_lock(&s->lock);
    while (s->st.written < s->st.submitted)
        pthread_cond_wait(&s->done, &s->lock);
    pthread_mutex_unlock(&s->lock);
}

void
adm_saver_status(struct adm_saver *s, struct adm_saver_status *out)
{
    pthread_mutex_lock(&s->lock);
    *out = s->st;
    pthread_mutex_unlock(&s->lock);
}

void
adm_saver_free(struct adm_saver *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    close(s->efd);
    free(s->pending);
    pthread_cond_destroy(&s->done);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    free(s->path);
    free(s);
}
