/* tests/fuzz/fuzz_adm.c -- the admin protocol without a socket: the input is what a client sends,
 * framed into lines by adm_frame_next as the server does, each line run by adm_exec against an
 * admin state built from a fixed config (as tests/unit/adm_fixture.h builds it). Every run starts
 * from a fresh state, on a clock that moves one second per line, so that it is reproducible.
 * Properties: no crash or leak; every reply is framed as docs/admin.md says (one closing empty
 * line, none inside, "error: " exactly when the command failed). */
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "admin/adm.h"

static const char fz_adm_yaml[] = "listen:\n"
                                  "  - address: \"127.0.0.1:8000\"\n"
                                  "admin:\n"
                                  "  socket: \"/tmp/xf-fuzz/admin.sock\"\n"
                                  "split:\n"
                                  "  weight: 25\n"
                                  "  key: [\"header:X-Consumer-ID\", \"cookie:session\", \"ip\"]\n"
                                  "  seed: \"fuzz\"\n"
                                  "clusters:\n"
                                  "  x:\n"
                                  "    nodes: [\"10.0.0.1:8000\", \"10.0.0.2:8000\"]\n"
                                  "  y:\n"
                                  "    balance: round_robin\n"
                                  "    nodes: [\"10.0.1.1:8000\"]\n"
                                  "guard:\n"
                                  "  window: 30s\n"
                                  "  action: step_down\n";

#define FZ_ADM_LINES 64 /* lines run per input at most: a run stays short */

static uint64_t fz_adm_mono;
static const struct adm_peer fz_adm_peer = {.uid = 1000, .pid = 4242, .id = 1};

static uint64_t
fz_adm_clock(void)
{
    return fz_adm_mono;
}

static int64_t
fz_adm_wall(void)
{
    return 1764470400000 + (int64_t)fz_adm_mono;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    xf_log_min = XF_LOG_ERR + 1; /* each change logs */
    return 0;
}

/* Checks the reply of one command (the bytes of `out`, drained). */
static void
fz_adm_check_reply(struct evbuffer *out, enum adm_result res)
{
    size_t n = evbuffer_get_length(out);
    char *reply = (char *)evbuffer_pullup(out, -1);

    if (res == ADM_SILENT) {
        FZ_CHECK(n == 0, "a silent command wrote %zu bytes", n);
        return;
    }
    if (res == ADM_WATCH || res == ADM_PENDING || res == ADM_TAKEOVER || res == ADM_MORE)
        goto done;
    FZ_CHECK(n >= 3, "reply of %zu bytes", n);
    FZ_CHECK(memcmp(reply + n - 2, "\n\n", 2) == 0, "no closing empty line: %.*s", (int)n, reply);
    FZ_CHECK(reply[0] != '\n', "the reply starts with an empty line");
    for (size_t i = 0; i + 3 < n; i++)
        FZ_CHECK(!(reply[i] == '\n' && reply[i + 1] == '\n'), "an empty line inside: %.*s", (int)n,
                 reply);
    FZ_CHECK((res == ADM_ERROR) == (strncmp(reply, "error: ", 7) == 0), "result %d for %.*s", res,
             (int)n, reply);
done:
    evbuffer_drain(out, n);
}

/* Runs one line; a long reply is taken to its end as the server would. */
static void
fz_adm_line(struct adm_state *st, const char *line, size_t len, struct evbuffer *out)
{
    enum adm_result res = adm_exec(st, &fz_adm_peer, line, len, out);

    if (res == ADM_MORE) {
        struct adm_stream *s = st->stream;
        struct adm_reply r = {st->reply, false};

        st->stream = NULL;
        FZ_CHECK(s != NULL, "ADM_MORE without a stream");
        do {
            evbuffer_drain(st->reply, evbuffer_get_length(st->reply));
            res = s->next(st, s, &r);
            evbuffer_add_buffer(out, st->reply);
        } while (res == ADM_MORE);
        s->free(s);
    }
    fz_adm_check_reply(out, res);
    fz_adm_mono += 1000;
    adm_ramp_tick(st);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct xf_err err = {{0}};
    struct cfg *cfg = cfg_parse(fz_adm_yaml, sizeof(fz_adm_yaml) - 1, "fuzz.yaml", &err);
    struct bal_snapshot *snap;
    struct bal_router router;
    struct adm_state st;
    struct adm_framer fr = {0};
    struct evbuffer *out = evbuffer_new();
    char *in = malloc(size > 0 ? size : 1);
    size_t off = 0, lines = 0;

    FZ_CHECK(cfg != NULL && out != NULL && in != NULL, "set-up: %s", err.msg);
    memcpy(in, data, size);
    snap = bal_snapshot_new(cfg, NULL, 1, &err);
    FZ_CHECK(snap != NULL, "snapshot: %s", err.msg);
    bal_router_init(&router, snap);
    FZ_CHECK(adm_state_init(&st, cfg, &router, NULL, &err) == 0, "admin state: %s", err.msg);
    fz_adm_mono = 100000;
    st.mono_ms = fz_adm_clock;
    st.wall_ms = fz_adm_wall;

    while (lines < FZ_ADM_LINES) {
        size_t line_len = 0, used = 0;
        enum adm_frame f = adm_frame_next(&fr, in + off, size - off, true, &line_len, &used);

        FZ_CHECK(used <= size - off, "the framer took %zu of %zu bytes", used, size - off);
        if (f == ADM_FRAME_LINE) {
            FZ_CHECK(line_len <= used && line_len <= ADM_LINE_MAX, "line %zu of %zu", line_len,
                     used);
            fz_adm_line(&st, in + off, line_len, out);
            lines++;
        } else if (f == ADM_FRAME_TOO_LONG) {
            lines++;
        } else if (used == 0) {
            break;
        }
        off += used;
    }

    adm_state_fini(&st);
    bal_router_fini(&router);
    cfg_free(cfg);
    evbuffer_free(out);
    free(in);
    return 0;
}
