/* admin/adm_pin.c -- pins (per-key overrides of the weight) and the upgrade freeze. */
#include "admin/adm.h"

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ pins */

/*
 * The key of `pin KEY x|y` or `unpin KEY`: words first..last of the line, as typed, in the
 * syntax of `which` (KIND:NAME=VALUE, ip=ADDRESS, basic_user=USER or a bare value). Writes the
 * bytes the balancer derives into *key (into buf for an address); writes a note when the config
 * does not read that kind of key. Returns 0, or an error reply.
 */
static int
adm_pin_key(struct adm_state *st, const struct adm_args *a, size_t first, size_t last, char *buf,
            const char **key, size_t *len, char *note, size_t note_size, struct adm_reply *r)
{
    struct adm_span s = {a->v[first].ptr,
                         (size_t)(a->v[last].ptr + a->v[last].len - a->v[first].ptr)};
    struct xf_err err = {{0}};
    struct adm_key k;
    char keys[512];

    note[0] = '\0';
    if (adm_key_parse(s.ptr, s.len, &k, &err) == -1 ||
        adm_key_bytes(&k, buf, key, len, &err) == -1) {
        adm_reply_error(r, "%s", err.msg);
        return -1;
    }
    if (*len > BAL_PIN_KEY_MAX) {
        adm_reply_error(r, "a pinned key is at most %d bytes, this one has %zu", BAL_PIN_KEY_MAX,
                        *len);
        return -1;
    }
    if (!k.bare && !adm_split_reads(&st->cfg->split, &k, keys, sizeof(keys)))
        snprintf(note, note_size,
                 "note: split.key does not read %s%s%.*s (it reads %s): only the value counts",
                 adm_key_kind_name(k.kind), k.name.len > 0 ? ":" : "", (int)XF_MIN(k.name.len, 64),
                 k.name.ptr, keys);
    return 0;
}

/* Publishes a copy of the current snapshot with `pins` (taken). */
static int
adm_pin_publish(struct adm_state *st, struct bal_pins *pins)
{
    struct bal_snapshot *next = adm_snapshot_begin(st);

    if (next == NULL) {
        bal_pins_unref(pins);
        return -1;
    }
    bal_pins_unref(next->pins);
    next->pins = pins;
    adm_publish(st, next);
    return 0;
}

static void
adm_pin_record(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
               const char *key, size_t len, const char *from, const char *to)
{
    char cmd[96], q[ADM_QUOTE_TEXT];

    adm_command_text(a, cmd, sizeof(cmd));
    adm_events_add(&st->events, peer->uid, peer->pid, cmd, "pin", from, to);
    XF_LOG(XF_LOG_INFO, "admin", "event=pin_changed key=%s from=%s to=%s uid=%ld pid=%ld",
           adm_quote(key, len, q, sizeof(q)), from, to, peer->uid, peer->pid);
}

enum adm_result
adm_cmd_pin(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
            struct adm_reply *r)
{
    char buf[BAL_ADDR_TEXT], note[700], q[ADM_QUOTE_TEXT];
    struct adm_span word = a->v[a->n - 1];
    struct xf_err err = {{0}};
    enum cfg_cluster_id side;
    struct bal_snapshot *cur;
    struct bal_pins *pins;
    const char *key;
    size_t len;
    int old;

    if (a->n < 3)
        return adm_reply_error(r, "usage: pin KEY x|y");
    if (adm_span_is(word, "x"))
        side = CFG_CLUSTER_X;
    else if (adm_span_is(word, "y"))
        side = CFG_CLUSTER_Y;
    else
        return adm_reply_error(r, "expected x or y as the last word (usage: pin KEY x|y), got %s",
                               adm_quote(word.ptr, word.len, q, sizeof(q)));
    if (adm_pin_key(st, a, 1, a->n - 2, buf, &key, &len, note, sizeof(note), r) == -1)
        return ADM_ERROR;
    cur = bal_router_acquire(st->router);
    pins = bal_pins_copy(cur->pins, NULL, 0);
    bal_snapshot_unref(cur);
    if (pins == NULL)
        return adm_reply_error(r, "out of memory; nothing pinned");
    if (bal_pins_set(pins, key, len, side, &old, &err) == -1) {
        bal_pins_unref(pins);
        return adm_reply_error(r, "%s", err.msg);
    }
    adm_quote(key, len, q, sizeof(q));
    if (old == (int)side) {
        bal_pins_unref(pins);
        adm_reply_line(r, "ok: %s is pinned to %s (unchanged)", q, cfg_cluster_name(side));
    } else {
        if (adm_pin_publish(st, pins) == -1)
            return adm_reply_error(r, "out of memory; nothing pinned");
        adm_pin_record(st, peer, a, key, len,
                       old == -1 ? "-" : cfg_cluster_name((enum cfg_cluster_id)old),
                       cfg_cluster_name(side));
        if (old == -1)
            adm_reply_line(r, "ok: pinned %s to %s", q, cfg_cluster_name(side));
        else
            adm_reply_line(r, "ok: pinned %s to %s (was %s)", q, cfg_cluster_name(side),
                           cfg_cluster_name((enum cfg_cluster_id)old));
    }
    if (note[0] != '\0')
        adm_reply_line(r, "%s", note);
    return ADM_OK;
}

enum adm_result
adm_cmd_unpin(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
              struct adm_reply *r)
{
    char buf[BAL_ADDR_TEXT], note[700], q[ADM_QUOTE_TEXT];
    enum cfg_cluster_id old;
    struct bal_snapshot *cur;
    struct bal_pins *pins = NULL;
    const char *key;
    size_t len;
    bool pinned;

    if (adm_pin_key(st, a, 1, a->n - 1, buf, &key, &len, note, sizeof(note), r) == -1)
        return ADM_ERROR;
    adm_quote(key, len, q, sizeof(q));
    cur = bal_router_acquire(st->router);
    pinned = bal_pins_find(cur->pins, key, len, &old) == 0;
    if (pinned)
        pins = bal_pins_copy(cur->pins, key, len);
    bal_snapshot_unref(cur);
    if (!pinned)
        return adm_reply_error(r, "%s is not pinned (\"show pins\" lists the pins)", q);
    if (pins == NULL || adm_pin_publish(st, pins) == -1)
        return adm_reply_error(r, "out of memory; the pin stays");
    adm_pin_record(st, peer, a, key, len, cfg_cluster_name(old), "-");
    adm_reply_line(r, "ok: unpinned %s (was %s)", q, cfg_cluster_name(old));
    return ADM_OK;
}

/* Bytewise order of two pins' keys (indexes into the table `arg`), for show pins. */
static int
adm_pin_cmp(const void *x, const void *y, void *arg)
{
    const struct bal_pins *pins = arg;
    const char *ka, *kb;
    size_t la, lb;
    int c;

    bal_pins_get(pins, *(const size_t *)x, &ka, &la);
    bal_pins_get(pins, *(const size_t *)y, &kb, &lb);
    c = memcmp(ka, kb, XF_MIN(la, lb));
    if (c != 0)
        return c;
    return la < lb ? -1 : la > lb;
}

/* `show pins` written a part at a time: 10,000 pins of long keys are megabytes, more than a
 * reply may hold at once (ADM_OUT_MAX). The snapshot (and so the pin table) is held meanwhile. */
struct adm_pins_stream {
    struct adm_stream base;
    struct bal_snapshot *snap; /* owned reference */
    size_t *order;             /* owned: the pins' indexes, sorted by key */
    size_t n, next;
};

static enum adm_result
adm_pins_stream_next(struct adm_state *st, struct adm_stream *base, struct adm_reply *r)
{
    struct adm_pins_stream *ps = (struct adm_pins_stream *)base;

    XF_UNUSED(st);
    /* Each line is the command that makes the pin: copy it to pin again elsewhere. */
    while (ps->next < ps->n && evbuffer_get_length(r->buf) < ADM_STREAM_CHUNK) {
        const char *key;
        size_t len;
        enum cfg_cluster_id side = bal_pins_get(ps->snap->pins, ps->order[ps->next++], &key, &len);

        adm_reply_line(r, "pin %.*s %s", (int)len, key, cfg_cluster_name(side));
    }
    return ps->next < ps->n ? ADM_MORE : ADM_OK;
}

static void
adm_pins_stream_free(struct adm_stream *base)
{
    struct adm_pins_stream *ps = (struct adm_pins_stream *)base;

    bal_snapshot_unref(ps->snap);
    free(ps->order);
    free(ps);
}

enum adm_result
adm_cmd_show_pins(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
                  struct adm_reply *r)
{
    struct bal_snapshot *snap = bal_router_acquire(st->router);
    size_t n = bal_pins_count(snap->pins);
    struct adm_pins_stream *ps;
    enum adm_result res;

    XF_UNUSED(peer);
    XF_UNUSED(a);
    if (n == 0) {
        bal_snapshot_unref(snap);
        adm_reply_line(r, "no pins");
        return ADM_OK;
    }
    ps = calloc(1, sizeof(*ps));
    if (ps == NULL || (ps->order = calloc(n, sizeof(*ps->order))) == NULL) {
        free(ps);
        bal_snapshot_unref(snap);
        return adm_reply_error(r, "out of memory");
    }
    ps->base.next = adm_pins_stream_next;
    ps->base.free = adm_pins_stream_free;
    ps->snap = snap;
    ps->n = n;
    for (size_t i = 0; i < n; i++)
        ps->order[i] = i;
    qsort_r(ps->order, n, sizeof(*ps->order), adm_pin_cmp, snap->pins);
    res = adm_pins_stream_next(st, &ps->base, r);
    if (res == ADM_MORE)
        st->stream = &ps->base; /* the server asks for the rest as the client reads */
    else
        adm_pins_stream_free(&ps->base);
    return res;
}

/* ------------------------------------------------------------------ the freeze */

/* Whether any listener has role admin_api (else the freeze blocks nothing). */
static bool
adm_freeze_applies(const struct cfg *cfg)
{
    for (size_t i = 0; i < cfg->n_listeners; i++)
        if (cfg->listeners[i].role == CFG_ROLE_ADMIN_API)
            return true;
    return false;
}

static int
adm_freeze_publish(struct adm_state *st, bool on, int64_t since)
{
    struct bal_snapshot *next = adm_snapshot_begin(st);

    if (next == NULL)
        return -1;
    next->freeze = on;
    next->freeze_since = on ? since : 0;
    adm_publish(st, next);
    return 0;
}

/* freeze on / freeze off from state `was` (on since `since`); `now` in wall-clock seconds. */
static enum adm_result
adm_freeze_set(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
               struct adm_reply *r, bool on, bool was, int64_t since, int64_t now)
{
    char t[32], from[64], to[64], cmd[96];

    adm_time_text((time_t)since, t, sizeof(t));
    if (on == was) {
        if (on)
            adm_reply_line(r, "ok: freeze on since %s (unchanged)", t);
        else
            adm_reply_line(r, "ok: freeze off (unchanged)");
        return ADM_OK;
    }
    if (adm_freeze_publish(st, on, now) == -1)
        return adm_reply_error(r, "out of memory; the freeze is unchanged");
    snprintf(from, sizeof(from), was ? "on since %s" : "off", t);
    adm_time_text((time_t)now, t, sizeof(t));
    snprintf(to, sizeof(to), on ? "on since %s" : "off", t);
    adm_command_text(a, cmd, sizeof(cmd));
    adm_events_add(&st->events, peer->uid, peer->pid, cmd, "freeze", from, to);
    XF_LOG(XF_LOG_INFO, "admin", "event=freeze_changed from=\"%s\" to=\"%s\" uid=%ld pid=%ld", from,
           to, peer->uid, peer->pid);
    if (on)
        adm_reply_line(
            r, "ok: freeze on since %s: writes through admin_api listeners get 423 Locked", t);
    else
        adm_reply_line(r, "ok: freeze off (was %s)", from);
    return ADM_OK;
}

enum adm_result
adm_cmd_freeze(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
               struct adm_reply *r)
{
    struct adm_span word = a->v[1];
    struct bal_snapshot *cur = bal_router_acquire(st->router);
    bool was = cur->freeze, on = adm_span_is(word, "on");
    int64_t since = cur->freeze_since, now = st->wall_ms() / 1000;
    char t[32], d[32], q[ADM_QUOTE_TEXT];

    bal_snapshot_unref(cur);
    if (adm_span_is(word, "show")) {
        on = was;
        if (was)
            adm_reply_line(
                r, "freeze on since %s (%s ago)", adm_time_text((time_t)since, t, sizeof(t)),
                adm_duration_about((uint64_t)XF_MAX(now - since, (int64_t)0) * 1000, d, sizeof(d)));
        else
            adm_reply_line(r, "freeze off");
    } else if (on || adm_span_is(word, "off")) {
        if (adm_freeze_set(st, peer, a, r, on, was, since, now) == ADM_ERROR)
            return ADM_ERROR;
    } else {
        return adm_reply_error(r, "expected on, off or show, got %s",
                               adm_quote(word.ptr, word.len, q, sizeof(q)));
    }
    if (on && !adm_freeze_applies(st->cfg))
        adm_reply_line(r, "note: no listener has role admin_api, so the freeze blocks nothing");
    return ADM_OK;
}
