/* tests/fuzz/fuzz_state.c -- the state file (admin/adm_persist.c) on any bytes: the parser, then
 * the start-up that applies what it read (adm_state_init_from with the bytes as the state handed
 * over: adm_persist_parse, then what adm_state_load does with a file of the right layout, without
 * the disk). Properties: no crash, leak or read past the bytes; a refusal has one message naming
 * the line; a text the parser accepts is written back (adm_persist_format) as a text it accepts,
 * with the same settings, and reading and writing that is a fixed point; the state crossfade holds
 * after applying it is written as a file it reads back, with the same weight and pins. Every run
 * reads the same clock (clock_gettime is wrapped), so that a ramp's catch-up depends on the input
 * alone. */
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "admin/adm.h"

/* The config of fuzz_adm.c, less the socket: guard configured, so that guard lines apply. */
static const char fz_state_yaml[] = "listen:\n"
                                    "  - address: \"127.0.0.1:8000\"\n"
                                    "split:\n"
                                    "  weight: 25\n"
                                    "  key: [\"header:X-Consumer-ID\", \"ip\"]\n"
                                    "  seed: \"fuzz\"\n"
                                    "clusters:\n"
                                    "  x:\n"
                                    "    nodes: [\"10.0.0.1:8000\", \"10.0.0.2:8000\"]\n"
                                    "  y:\n"
                                    "    nodes: [\"10.0.1.1:8000\"]\n"
                                    "guard:\n"
                                    "  window: 30s\n"
                                    "  action: step_down\n";

static struct cfg *fz_state_cfg;
static bool fz_state_frozen; /* while a run goes: the clocks read the fixed time below */

/* 2025-12-01T00:00:00Z: ramps and freezes of the seeds are in the past, some steps due. */
#define FZ_STATE_NOW_S 1764547200

int __real_clock_gettime(clockid_t id, struct timespec *ts);
int __wrap_clock_gettime(clockid_t id, struct timespec *ts);

int
__wrap_clock_gettime(clockid_t id, struct timespec *ts)
{
    if (!fz_state_frozen)
        return __real_clock_gettime(id, ts);
    ts->tv_sec = id == CLOCK_REALTIME ? FZ_STATE_NOW_S : 100000;
    ts->tv_nsec = 0;
    return 0;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct xf_err err = {{0}};

    (void)argc;
    (void)argv;
    xf_log_min = XF_LOG_ERR + 1; /* each restored setting logs */
    fz_state_cfg = cfg_parse(fz_state_yaml, sizeof(fz_state_yaml) - 1, "fuzz.yaml", &err);
    FZ_CHECK(fz_state_cfg != NULL, "config: %s", err.msg);
    return 0;
}

/* The text of p (owned by the caller, NUL-terminated; *len without the NUL). */
static char *
fz_state_format(const struct adm_persist *p, size_t *len)
{
    struct evbuffer *b = evbuffer_new();
    char *text;

    FZ_CHECK(b != NULL, "out of memory");
    adm_persist_format(p, b);
    *len = evbuffer_get_length(b);
    text = malloc(*len + 1);
    FZ_CHECK(text != NULL, "out of memory");
    evbuffer_remove(b, text, *len);
    text[*len] = '\0';
    evbuffer_free(b);
    return text;
}

/* The parser on its own: a refusal says where; what it accepts is written back readable, with
 * the same settings, and what that reads back as is written the same from then on. (Not the
 * first text itself: a command cut to its field's size may end in a blank, which the reader
 * trims.) */
static void
fz_state_round_trip(const char *text, size_t size)
{
    struct adm_persist p, q, r;
    struct xf_err err = {{0}};
    char *t1, *t2, *t3;
    size_t l1, l2, l3;

    if (adm_persist_parse(text, size, "state", &p, &err) == -1) {
        FZ_CHECK(strncmp(err.msg, "state:", 6) == 0, "a refusal without its line: %s", err.msg);
        FZ_CHECK(p.pins == NULL && p.nodes == NULL && p.events == NULL, "a refusal kept data");
        return;
    }
    /* A version 1 file has no layout; crossfade writes the config's (adm_state_text). */
    if (p.layout[0] == '\0')
        adm_layout(fz_state_cfg, p.layout, sizeof(p.layout));
    t1 = fz_state_format(&p, &l1);
    FZ_CHECK(adm_persist_parse(t1, l1, "written", &q, &err) == 0,
             "a state read is written as a file crossfade refuses: %s\n%s", err.msg, t1);
    FZ_CHECK(q.weight_bp == p.weight_bp && q.freeze == p.freeze && q.n_nodes == p.n_nodes &&
                 q.n_events == p.n_events && q.ramp.state == p.ramp.state &&
                 bal_pins_count(q.pins) == bal_pins_count(p.pins),
             "a state read back differs from the one written:\n%s", t1);
    t2 = fz_state_format(&q, &l2);
    FZ_CHECK(adm_persist_parse(t2, l2, "written", &r, &err) == 0, "%s\n%s", err.msg, t2);
    t3 = fz_state_format(&r, &l3);
    FZ_CHECK(l2 == l3 && memcmp(t2, t3, l2) == 0, "written again, another text:\n%s----\n%s", t2,
             t3);
    free(t1);
    free(t2);
    free(t3);
    adm_persist_fini(&p);
    adm_persist_fini(&q);
    adm_persist_fini(&r);
}

/* Start-up with the bytes as the state: applied (weight, freeze, pins, node changes, ramp,
 * guard, events), then what crossfade would write next must read back. */
static void
fz_state_apply(const char *text, size_t size)
{
    struct xf_err err = {{0}};
    struct bal_snapshot *snap = bal_snapshot_new(fz_state_cfg, NULL, 1, &err), *now;
    struct bal_router router;
    struct adm_state st;
    struct adm_persist p;
    char *saved;
    size_t len;

    FZ_CHECK(snap != NULL, "snapshot: %s", err.msg);
    bal_router_init(&router, snap);
    if (adm_state_init_from(&st, fz_state_cfg, &router, NULL, text, size, 4242, &err) == -1) {
        FZ_CHECK(err.msg[0] != '\0', "a refused state without a message");
        bal_router_fini(&router);
        return;
    }
    saved = adm_state_text(&st, &len);
    FZ_CHECK(saved != NULL, "out of memory");
    FZ_CHECK(adm_persist_parse(saved, len, "saved", &p, &err) == 0,
             "the state applied is saved as a file crossfade refuses: %s\n%s", err.msg, saved);
    now = bal_router_acquire(&router);
    FZ_CHECK(p.weight_bp == now->weight_bp && bal_pins_count(p.pins) == bal_pins_count(now->pins),
             "saved weight %u and %zu pins, in force %u and %zu", p.weight_bp,
             bal_pins_count(p.pins), now->weight_bp, bal_pins_count(now->pins));
    bal_snapshot_unref(now);
    adm_persist_fini(&p);
    free(saved);
    adm_state_fini(&st);
    bal_router_fini(&router);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly `size` bytes, no NUL after it: ASan sees any read past the text. */
    char *text = malloc(size > 0 ? size : 1);

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    fz_state_frozen = true;
    fz_state_round_trip(text, size);
    fz_state_apply(text, size);
    fz_state_frozen = false;
    free(text);
    return 0;
}
