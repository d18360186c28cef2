/* tests/unit/test_adm_state.c -- the state file: its text (round trip, every error with its
 * line), atomic writes and their failures, the writer thread, and start-up from the file
 * (restored, missing, corrupt) with every kind of change written back. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "admin/adm.h"

/* ------------------------------------------------------------------ a scratch directory */

static char fx_dir[64];

static const char *
fx_path(const char *name)
{
    static char buf[4][400];
    static int i;

    i = (i + 1) % 4;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s", fx_dir, name);
    return buf[i];
}

static void
fx_write(const char *name, const char *text)
{
    FILE *f = fopen(fx_path(name), "w");

    cr_assert(ne(ptr, f, NULL), "%s: %s", fx_path(name), strerror(errno));
    fputs(text, f);
    fclose(f);
}

/* The content of a file (owned by the caller), or NULL. */
static char *
fx_read(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long n;

    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    buf = calloc(1, (size_t)n + 1);
    cr_assert(eq(sz, fread(buf, 1, (size_t)n, f), (size_t)n));
    fclose(f);
    return buf;
}

/* How many entries the scratch directory holds (temporary files left behind show here). */
static int
fx_entries(void)
{
    DIR *d = opendir(fx_dir);
    struct dirent *e;
    int n = 0;

    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void
fx_dir_make(void)
{
    xf_log_min = XF_LOG_ERR + 1; /* the failures the tests cause on purpose would be noise */
    snprintf(fx_dir, sizeof(fx_dir), "/tmp/xf-unit-state-XXXXXX");
    cr_assert(ne(ptr, mkdtemp(fx_dir), NULL));
}

static void
fx_dir_remove(void)
{
    DIR *d = opendir(fx_dir);
    struct dirent *e;

    if (d == NULL)
        return;
    chmod(fx_dir, 0700);
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (unlink(fx_path(e->d_name)) == -1) {
            char sub[400];

            snprintf(sub, sizeof(sub), "%s", fx_path(e->d_name));
            rmdir(sub);
        }
    }
    closedir(d);
    rmdir(fx_dir);
}

/* ------------------------------------------------------------------ the text */

TestSuite(adm_persist, .init = fx_dir_make, .fini = fx_dir_remove);

static struct adm_persist
sample(void)
{
    struct adm_persist p = {.weight_bp = 2500, .freeze = true, .freeze_since = 1764470400};
    static const char odd[] = {'J', 'o', ' ', '\\', 'x', '\x01', '\xc3', '\xa9'};
    int old;

    p.ramp = (struct adm_ramp){.state = ADM_RAMP_PAUSED,
                               .from_bp = 1000,
                               .to_bp = 5000,
                               .step_bp = 500,
                               .n_steps = 8,
                               .done = 3,
                               .duration_ms = 600000,
                               .start_ms = 1764470400123,
                               .paused_ms = 1764470500000,
                               .uid = 1000,
                               .pid = 4242};
    snprintf(p.ramp.command, sizeof(p.ramp.command), "ramp 50 over 10m step 5");
    p.pins = bal_pins_new();
    bal_pins_set(p.pins, "alice", 5, CFG_CLUSTER_Y, &old, NULL);
    bal_pins_set(p.pins, "10.1.2.3", 8, CFG_CLUSTER_X, &old, NULL);
    bal_pins_set(p.pins, odd, sizeof(odd), CFG_CLUSTER_Y, &old, NULL);
    snprintf(p.layout, sizeof(p.layout), "x=10.0.0.1:8000,10.0.0.2:8000 y=10.0.1.1:8000");
    p.events = calloc(2, sizeof(*p.events));
    p.n_events = 2;
    p.events[0] = (struct adm_event){.seq = 7, .time_ms = 1764470400123, .uid = 1000, .pid = 42};
    snprintf(p.events[0].command, sizeof(p.events[0].command), "set weight 25");
    snprintf(p.events[0].what, sizeof(p.events[0].what), "weight");
    snprintf(p.events[0].old_value, sizeof(p.events[0].old_value), "0.00");
    snprintf(p.events[0].new_value, sizeof(p.events[0].new_value), "25.00");
    p.events[1] = (struct adm_event){.seq = 9, .time_ms = 1764470500000, .uid = -1, .pid = -1};
    snprintf(p.events[1].command, sizeof(p.events[1].command), "del node x/10.0.0.3:8000 force");
    snprintf(p.events[1].what, sizeof(p.events[1].what), "node x/10.0.0.3:8000");
    snprintf(p.events[1].old_value, sizeof(p.events[1].old_value), "weight 1 up");
    snprintf(p.events[1].new_value, sizeof(p.events[1].new_value), "%s", "");
    return p;
}

static char *
format(const struct adm_persist *p)
{
    struct evbuffer *b = evbuffer_new();
    size_t n;
    char *text;

    adm_persist_format(p, b);
    n = evbuffer_get_length(b);
    text = calloc(1, n + 1);
    evbuffer_remove(b, text, n);
    evbuffer_free(b);
    return text;
}

Test(adm_persist, the_text_has_one_line_per_setting)
{
    struct adm_persist p = sample();
    char *text = format(&p);

    cr_assert(eq(str, text,
                 "# crossfade state file: rewritten on every change made through the admin "
                 "socket,\n"
                 "# read at start-up where it overrides split.weight unless the clusters'\n"
                 "# nodes in the configuration changed (docs/admin.md).\n"
                 "version 2\n"
                 "layout x=10.0.0.1:8000,10.0.0.2:8000 y=10.0.1.1:8000\n"
                 "weight 25.00\n"
                 "freeze on 1764470400\n"
                 "ramp paused 10.00 50.00 5.00 1764470400123 600000 3 1764470500000 1000 4242 "
                 "ramp 50 over 10m step 5\n"
                 "guard off armed\n"
                 "pin alice y\n"
                 "pin 10.1.2.3 x\n"
                 "pin Jo\\x20\\x5cx\\x01\xc3\xa9 y\n"
                 "event 7 1764470400123 1000 42 weight 0.00 25.00 set weight 25\n"
                 "event 9 1764470500000 - - node\\x20x/10.0.0.3:8000 weight\\x201\\x20up - del "
                 "node x/10.0.0.3:8000 force\n"));
    free(text);
    adm_persist_fini(&p);
}

Test(adm_persist, what_is_written_reads_back_the_same)
{
    struct adm_persist p = sample(), q;
    struct xf_err err = {{0}};
    char *text = format(&p);
    const char *k1, *k2;
    size_t l1, l2;

    cr_assert(eq(int, adm_persist_parse(text, strlen(text), "state", &q, &err), 0), "%s", err.msg);
    cr_assert(eq(uint, q.weight_bp, p.weight_bp));
    cr_assert(q.freeze);
    cr_assert(eq(i64, q.freeze_since, p.freeze_since));
    cr_assert(eq(int, q.ramp.state, ADM_RAMP_PAUSED));
    cr_assert(eq(uint, q.ramp.from_bp, 1000u));
    cr_assert(eq(uint, q.ramp.to_bp, 5000u));
    cr_assert(eq(uint, q.ramp.step_bp, 500u));
    cr_assert(eq(uint, q.ramp.n_steps, 8u));
    cr_assert(eq(uint, q.ramp.done, 3u));
    cr_assert(eq(u64, q.ramp.duration_ms, (uint64_t)600000));
    cr_assert(eq(i64, q.ramp.start_ms, p.ramp.start_ms));
    cr_assert(eq(i64, q.ramp.paused_ms, p.ramp.paused_ms));
    cr_assert(eq(long, q.ramp.uid, 1000L));
    cr_assert(eq(long, q.ramp.pid, 4242L));
    cr_assert(eq(str, q.ramp.command, "ramp 50 over 10m step 5"));
    cr_assert(eq(sz, bal_pins_count(q.pins), (size_t)3));
    for (size_t i = 0; i < 3; i++) {
        cr_assert(eq(int, bal_pins_get(q.pins, i, &k1, &l1), bal_pins_get(p.pins, i, &k2, &l2)));
        cr_assert(eq(sz, l1, l2));
        cr_assert(eq(int, memcmp(k1, k2, l1), 0));
    }
    cr_assert(eq(str, q.layout, p.layout));
    cr_assert(eq(sz, q.n_events, (size_t)2));
    for (size_t i = 0; i < 2; i++) {
        cr_assert(eq(u64, q.events[i].seq, p.events[i].seq));
        cr_assert(eq(i64, q.events[i].time_ms, p.events[i].time_ms));
        cr_assert(eq(long, q.events[i].uid, p.events[i].uid));
        cr_assert(eq(long, q.events[i].pid, p.events[i].pid));
        cr_assert(eq(str, q.events[i].command, p.events[i].command));
        cr_assert(eq(str, q.events[i].what, p.events[i].what));
        cr_assert(eq(str, q.events[i].old_value, p.events[i].old_value));
    }
    cr_assert(eq(str, q.events[0].new_value, "25.00"));
    cr_assert(eq(str, q.events[1].new_value, "-"), "an empty value is written and read as -");
    free(text);
    adm_persist_fini(&p);
    adm_persist_fini(&q);
}

Test(adm_persist, the_least_a_file_holds_is_its_version_and_the_weight)
{
    static const char text[] = "version 1\r\nweight 0\n\n# a comment\n";
    struct adm_persist q;
    struct xf_err err = {{0}};

    cr_assert(eq(int, adm_persist_parse(text, strlen(text), "state", &q, &err), 0), "%s", err.msg);
    cr_assert(eq(uint, q.weight_bp, 0u));
    cr_assert(not(q.freeze));
    cr_assert(eq(int, q.ramp.state, ADM_RAMP_NONE));
    cr_assert(eq(ptr, q.pins, NULL));
    adm_persist_fini(&q);
}

static const char *parse_error(const char *text);

/* The guard's line: on or off, tripped or armed, and a guarded ramp (after the ramp's line). */
Test(adm_persist, the_guard_line_keeps_a_trip_and_a_guarded_ramp)
{
    static const char text[] =
        "version 2\nlayout x=a y=b\nweight 20\nfreeze off\n"
        "ramp running 10.00 50.00 5.00 1764470400123 600000 2 0 1000 42 ramp 50 over 10m guarded\n"
        "guard on tripped guarded_ramp\n";
    struct adm_persist q;
    struct xf_err err = {{0}};

    cr_assert(eq(int, adm_persist_parse(text, strlen(text), "state", &q, &err), 0), "%s", err.msg);
    cr_assert(q.have_guard);
    cr_assert(q.guard_on);
    cr_assert(q.guard_tripped);
    cr_assert(q.ramp.guarded);
    adm_persist_fini(&q);
    cr_assert(eq(str, (char *)parse_error("version 2\nweight 20\nguard maybe armed\n"),
                 "/var/lib/xf/state:3: expected \"guard on|off armed|tripped [guarded_ramp]\""));
    cr_assert(eq(str, (char *)parse_error("version 2\nweight 20\nguard on armed\nguard on armed\n"),
                 "/var/lib/xf/state:4: a second guard line"));
}

/* Parses `text` and returns its error. */
static const char *
parse_error(const char *text)
{
    static struct xf_err err;
    struct adm_persist q;

    memset(&err, 0, sizeof(err));
    cr_assert(eq(int, adm_persist_parse(text, strlen(text), "/var/lib/xf/state", &q, &err), -1),
              "accepted: %s", text);
    cr_assert(eq(ptr, q.pins, NULL));
    return err.msg;
}

Test(adm_persist, a_corrupt_file_is_reported_with_its_line_and_what_is_wrong)
{
    cr_assert(eq(str, (char *)parse_error(""), "/var/lib/xf/state:1: an empty file"));
    cr_assert(eq(str, (char *)parse_error("weight 20\n"),
                 "/var/lib/xf/state:1: expected \"version 2\" first, got \"weight 20\""));
    cr_assert(eq(str, (char *)parse_error("version 3\nweight 20\n"),
                 "/var/lib/xf/state:1: version 3 is not one this crossfade reads (1 or 2)"));
    cr_assert(eq(str, (char *)parse_error("version 2\nweight 20\n"),
                 "/var/lib/xf/state:3: no layout line"));
    cr_assert(eq(str, (char *)parse_error("version 2\nlayout x=a\nweight 20\n"),
                 "/var/lib/xf/state:2: expected \"layout x=ADDRESS,... y=ADDRESS,...\""));
    cr_assert(eq(str, (char *)parse_error("version 1\nlayout x=a y=b\nweight 20\n"),
                 "/var/lib/xf/state:2: unknown line \"layout x=a y=b\" (expected layout, weight, "
                 "freeze, ramp, guard, pin, node, seed or event)"));
    cr_assert(eq(str,
                 (char *)parse_error("version 2\nlayout x=a y=b\nweight 20\n"
                                     "event 2 1764470400000 - - weight 0.00 1.00 set weight 1\n"
                                     "event 2 1764470400000 - - weight 1.00 2.00 set weight 2\n"),
                 "/var/lib/xf/state:5: event: expected the events in the order of their numbers"));
    cr_assert(eq(str,
                 (char *)parse_error("version 2\nlayout x=a y=b\nweight 20\n"
                                     "event 2 x - - weight 0.00 1.00 set weight 1\n"),
                 "/var/lib/xf/state:4: event: expected its time in ms since 1970, from 2000 to "
                 "2100"));
    cr_assert(eq(str,
                 (char *)parse_error("version 2\nlayout x=a y=b\nweight 20\nfreeze on "
                                     "9223372036854775\n"),
                 "/var/lib/xf/state:4: freeze: expected a time from 2000 to 2100, got "
                 "9223372036854775"));
    cr_assert(eq(str,
                 (char *)parse_error("version 2\nlayout x=a y=b\nweight 20\nevent 2 0 - - w\n"),
                 "/var/lib/xf/state:4: event: expected SEQ TIME_MS UID PID WHAT OLD NEW COMMAND, "
                 "got 5 words"));
    cr_assert(eq(str, (char *)parse_error("version 1\n"), "/var/lib/xf/state:2: no weight line"));
    cr_assert(eq(str, (char *)parse_error("# c\nversion 1\nweight 2O\n"),
                 "/var/lib/xf/state:3: weight: expected a weight from 0 to 100 with at most two "
                 "decimals, got \"2O\""));
    cr_assert(eq(str, (char *)parse_error("version 1\nweight 20\nweight 30\n"),
                 "/var/lib/xf/state:3: a second weight line"));
    cr_assert(eq(str, (char *)parse_error("version 1\nweight 20\nwieght 30\n"),
                 "/var/lib/xf/state:3: unknown line \"wieght 30\" (expected layout, weight, "
                 "freeze, ramp, guard, pin, node, seed or event)"));
    cr_assert(eq(str, (char *)parse_error("version 1\nweight 20"),
                 "/var/lib/xf/state:2: the last line has no end (was the file cut?)"));
    cr_assert(eq(str, (char *)parse_error("version 1\nweight 20\nfreeze on\n"),
                 "/var/lib/xf/state:3: expected \"freeze off\" or \"freeze on SINCE\" (SINCE in "
                 "seconds since 1970)"));
    cr_assert(eq(str, (char *)parse_error("version 1\nweight 20\npin alice z\n"),
                 "/var/lib/xf/state:3: pin: expected x or y as the side"));
    cr_assert(eq(str, (char *)parse_error("version 1\nweight 20\npin alice y\npin alice x\n"),
                 "/var/lib/xf/state:4: pin: the key \"alice\" is pinned twice"));
    cr_assert(eq(str, (char *)parse_error("version 1\nweight 20\npin a\\x4 y\n"),
                 "/var/lib/xf/state:3: pin: expected a key of 1 to 1024 bytes, \\xNN escapes for "
                 "blanks, control bytes and the backslash"));
    cr_assert(eq(str, (char *)parse_error("version 1\nweight 20\n\x01\n"),
                 "/var/lib/xf/state:3: the control byte 0x01 at byte 1"));
    cr_assert(eq(
        str, (char *)parse_error("version 2\nlayout x=a y=b\nweight 20\nseed 0123456789abcdeg\n"),
        "/var/lib/xf/state:4: expected \"seed HASH\" (16 hex digits)"));
    cr_assert(eq(str, (char *)parse_error("version 2\nlayout x=a y=b\nweight 20\nseed 0123\n"),
                 "/var/lib/xf/state:4: expected \"seed HASH\" (16 hex digits)"));
    cr_assert(eq(str,
                 (char *)parse_error("version 2\nlayout x=a y=b\nweight 20\nseed 0123456789abcdef\n"
                                     "seed 0123456789abcdef\n"),
                 "/var/lib/xf/state:5: a second seed line"));
}

Test(adm_persist, a_seed_line_reads_back_as_the_hash_it_names)
{
    static const char text[] = "version 2\nlayout x=a y=b\nweight 20\nseed 00f0e1d2c3b4a596\n";
    struct adm_persist q;
    struct xf_err err = {{0}};
    struct evbuffer *out = evbuffer_new();

    cr_assert(eq(int, adm_persist_parse(text, strlen(text), "state", &q, &err), 0), "%s", err.msg);
    cr_assert(q.have_seed);
    cr_assert(eq(u64, q.seed_hash, 0x00f0e1d2c3b4a596ull));
    adm_persist_format(&q, out);
    cr_assert(evbuffer_search(out, "\nseed 00f0e1d2c3b4a596\n", 23, NULL).pos != -1);
    evbuffer_free(out);
    adm_persist_fini(&q);
    cr_assert(eq(int, adm_persist_parse(text, strlen(text) - 22, "state", &q, &err), 0), "%s",
              err.msg);
    cr_assert(not(q.have_seed), "a state without a seed line leaves the seed in force alone");
    adm_persist_fini(&q);
}

Test(adm_persist, a_ramp_line_is_checked_field_by_field)
{
    static const char head[] = "version 1\nweight 20\n";
    static const struct {
        const char *line, *error;
    } cases[] = {
        {"ramp running 10 50 5 1764470400000 600000 3 0 - -\n",
         "ramp: expected STATE FROM TO STEP START_MS DURATION_MS DONE PAUSED_MS UID PID COMMAND, "
         "got 10 words"},
        {"ramp going 10 50 5 1764470400000 600000 3 0 - - ramp\n",
         "ramp: expected running, paused or paused_capacity as its state"},
        {"ramp running 10 50 0 1764470400000 600000 3 0 - - ramp\n",
         "ramp: expected from and to apart and a step from 0.01 to their distance"},
        {"ramp running 10 50 50 1764470400000 600000 3 0 - - ramp\n",
         "ramp: expected from and to apart and a step from 0.01 to their distance"},
        {"ramp running 10 50 5 x 600000 3 0 - - ramp\n",
         "ramp: expected the start in ms since 1970, from 2000 to 2100"},
        {"ramp running 10 50 5 9223372036854775000 600000 3 0 - - ramp\n",
         "ramp: expected the start in ms since 1970, from 2000 to 2100"},
        {"ramp running 10 50 5 1764470400000 600000 3 1764470400000 - - ramp\n",
         "ramp: expected the pause time in ms since 1970, from 2000 to 2100, for a paused ramp, "
         "and 0 for a running one"},
        {"ramp running 10 50 5 1764470400000 0 3 0 - - ramp\n",
         "ramp: expected a duration in ms from 1 to 4294967295"},
        {"ramp running 10 50 5 1764470400000 600000 8 0 - - ramp\n",
         "ramp: expected the steps done, from 0 to 7"},
        {"ramp running 10 50 5 1764470400000 600000 3 0 me - ramp\n",
         "ramp: expected a uid and a pid (digits, or - for none)"},
        {"ramp running 10 50 5 1764470400000 600000 3 0 - - ramp\nramp running 10 50 5 "
         "1764470400000 600000 3 0 - - r\n",
         "a second ramp line"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[512], want[512];

        snprintf(text, sizeof(text), "%s%s", head, cases[i].line);
        snprintf(want, sizeof(want), "/var/lib/xf/state:%d: %s",
                 strchr(cases[i].line, '\n')[1] != '\0' ? 4 : 3, cases[i].error);
        cr_assert(eq(str, (char *)parse_error(text), want));
    }
}

Test(adm_persist, a_missing_file_is_not_an_error_and_an_unreadable_one_is)
{
    struct adm_persist q;
    struct xf_err err = {{0}};

    cr_assert(eq(int, adm_persist_load(fx_path("none"), &q, &err), ADM_LOAD_MISSING));
    cr_assert(eq(int, adm_persist_load(fx_dir, &q, &err), ADM_LOAD_BAD));
    cr_assert(ne(ptr, strstr(err.msg, "cannot read: Is a directory"), NULL), "%s", err.msg);
    fx_write("state", "version 1\nweight 12.5\n");
    cr_assert(eq(int, adm_persist_load(fx_path("state"), &q, &err), ADM_LOAD_OK), "%s", err.msg);
    cr_assert(eq(uint, q.weight_bp, 1250u));
    adm_persist_fini(&q);
}

Test(adm_persist, a_write_replaces_the_file_and_leaves_no_temporary_file)
{
    struct xf_err err = {{0}};
    char *text;

    fx_write("state", "old\n");
    cr_assert(eq(int, adm_persist_write(fx_path("state"), "version 1\nweight 5\n", 20, &err), 0),
              "%s", err.msg);
    text = fx_read(fx_path("state"));
    cr_assert(eq(str, text, "version 1\nweight 5\n"));
    free(text);
    cr_assert(eq(int, fx_entries(), 1));
}

Test(adm_persist, a_write_into_a_missing_directory_fails_and_says_where)
{
    struct xf_err err = {{0}};
    char want[512];

    cr_assert(eq(int, adm_persist_write(fx_path("no/state"), "x\n", 2, &err), -1));
    snprintf(want, sizeof(want),
             "state_file %s/no/state: cannot create a temporary file in %s/no: No such file or "
             "directory",
             fx_dir, fx_dir);
    cr_assert(eq(str, err.msg, want));
}

Test(adm_persist, a_write_into_an_unwritable_directory_fails_and_keeps_the_old_file)
{
    struct xf_err err = {{0}};
    char *text;

    if (geteuid() == 0)
        cr_skip_test("root writes into a directory of mode 0500");
    fx_write("state", "version 1\nweight 5\n");
    cr_assert(eq(int, chmod(fx_dir, 0500), 0));
    cr_assert(eq(int, adm_persist_write(fx_path("state"), "version 1\nweight 7\n", 20, &err), -1));
    cr_assert(ne(ptr, strstr(err.msg, "Permission denied"), NULL), "%s", err.msg);
    chmod(fx_dir, 0700);
    text = fx_read(fx_path("state"));
    cr_assert(eq(str, text, "version 1\nweight 5\n"));
    free(text);
}

Test(adm_persist, the_writer_writes_the_latest_text_and_reports_failures)
{
    struct adm_saver *s = adm_saver_new(fx_path("state"), false, NULL);
    struct adm_saver *bad = adm_saver_new(fx_path("none/state"), false, NULL);
    struct adm_saver_status st;
    char *text;

    for (int i = 0; i < 100; i++) {
        char line[32];

        snprintf(line, sizeof(line), "version 1\nweight %d\n", i);
        adm_saver_submit(s, strdup(line), strlen(line));
    }
    adm_saver_flush(s);
    adm_saver_status(s, &st);
    cr_assert(eq(u64, st.submitted, (uint64_t)100));
    cr_assert(eq(u64, st.written, (uint64_t)100));
    cr_assert(gt(i64, st.ok_wall_ms, (int64_t)0));
    cr_assert(eq(i64, st.error_wall_ms, (int64_t)0));
    text = fx_read(fx_path("state"));
    cr_assert(eq(str, text, "version 1\nweight 99\n"));
    free(text);
    adm_saver_submit(bad, strdup("x\n"), 2);
    adm_saver_flush(bad);
    adm_saver_status(bad, &st);
    cr_assert(gt(i64, st.error_wall_ms, (int64_t)0));
    cr_assert(ne(ptr, strstr(st.error, "cannot create a temporary file"), NULL), "%s", st.error);
    adm_saver_free(s);
    adm_saver_free(bad);
    adm_saver_free(NULL);
}

Test(adm_persist, a_text_still_pending_is_written_when_the_writer_stops)
{
    struct adm_saver *s = adm_saver_new(fx_path("state"), false, NULL);
    char *text;

    adm_saver_submit(s, strdup("version 1\nweight 1\n"), 20);
    adm_saver_free(s);
    text = fx_read(fx_path("state"));
    cr_assert(eq(str, text, "version 1\nweight 1\n"));
    free(text);
}

Test(adm_persist, an_unusable_file_is_kept_aside_before_the_first_write)
{
    struct adm_saver *s;
    char *text;

    fx_write("state", "garbage\n");
    s = adm_saver_new(fx_path("state"), true, NULL);
    adm_saver_submit(s, strdup("version 1\nweight 1\n"), 20);
    adm_saver_flush(s);
    text = fx_read(fx_path("state.corrupt"));
    cr_assert(eq(str, text, "garbage\n"));
    free(text);
    text = fx_read(fx_path("state"));
    cr_assert(eq(str, text, "version 1\nweight 1\n"));
    free(text);
    adm_saver_submit(s, strdup("version 1\nweight 2\n"), 20);
    adm_saver_flush(s);
    text = fx_read(fx_path("state.corrupt"));
    cr_assert(eq(str, text, "garbage\n"), "only the first write keeps it aside");
    free(text);
    adm_saver_free(s);
}

/* ------------------------------------------------------------------ start-up and changes */

static struct cfg *fx_cfg;
static struct bal_router fx_router;
static struct adm_state fx_st;
static struct evbuffer *fx_out;
static char *fx_reply;
static bool fx_started;

static void
fx_fini(void)
{
    if (fx_started) {
        free(fx_reply);
        fx_reply = NULL;
        evbuffer_free(fx_out);
        adm_state_fini(&fx_st);
        bal_router_fini(&fx_router);
        cfg_free(fx_cfg);
        fx_started = false;
    }
    fx_dir_remove();
}

TestSuite(adm_state, .init = fx_dir_make, .fini = fx_fini);

/* Starts the admin state on a config with weight 10 and state_file <dir>/state. */
static void
fx_start(void)
{
    struct xf_err err = {{0}};
    struct bal_snapshot *snap;
    char yaml[1024];

    snprintf(yaml, sizeof(yaml),
             "listen:\n  - address: \"127.0.0.1:8000\"\n"
             "split:\n  weight: 10\n"
             "clusters:\n  x:\n    nodes: [\"10.0.0.1:8000\"]\n"
             "  y:\n    nodes: [\"10.0.1.1:8000\"]\n"
             "state_file: \"%s\"\n",
             fx_path("state"));
    fx_cfg = cfg_parse(yaml, strlen(yaml), "t.yaml", &err);
    cr_assert(ne(ptr, fx_cfg, NULL), "%s", err.msg);
    snap = bal_snapshot_new(fx_cfg, NULL, 1, &err);
    bal_router_init(&fx_router, snap);
    cr_assert(eq(int, adm_state_init(&fx_st, fx_cfg, &fx_router, NULL, &err), 0), "%s", err.msg);
    fx_out = evbuffer_new();
    fx_started = true;
}

static const char *
run_ok(const char *line)
{
    enum adm_result res =
        adm_exec(&fx_st, &(struct adm_peer){1000, 4242, 1}, line, strlen(line), fx_out);
    size_t n = evbuffer_get_length(fx_out);

    free(fx_reply);
    fx_reply = calloc(1, n + 1);
    evbuffer_remove(fx_out, fx_reply, n);
    fx_reply[n - 2] = '\0';
    cr_assert(eq(int, res, ADM_OK), "\"%s\": %s", line, fx_reply);
    return fx_reply;
}

/* The state file as the writer left it once every change so far is written. */
static char *
saved(void)
{
    static char *last;

    adm_saver_flush(fx_st.saver);
    free(last);
    last = fx_read(fx_path("state"));
    cr_assert(ne(ptr, last, NULL), "no state file");
    return last;
}

static struct bal_snapshot *
current(void)
{
    return bal_router_acquire(&fx_router);
}

Test(adm_state, no_file_starts_from_the_config_and_is_written_at_the_first_change)
{
    fx_start();
    cr_assert(eq(int, fx_st.loaded, ADM_LOAD_MISSING));
    cr_assert(eq(int, access(fx_path("state"), F_OK), -1), "nothing written before a change");
    run_ok("set weight 30");
    cr_assert(ne(ptr,
                 strstr(saved(), "\nversion 2\nlayout x=10.0.0.1:8000 y=10.0.1.1:8000\n"
                                 "weight 30.00\nfreeze off\n"),
                 NULL),
              "%s", saved());
    /* The audit trail goes with it, the change's event included. */
    cr_assert(ne(ptr, strstr(saved(), " 1000 4242 weight 10.00 30.00 set weight 30\n"), NULL), "%s",
              saved());
}

Test(adm_state, every_kind_of_change_is_written)
{
    char *text;

    fx_start();
    run_ok("pin alice y");
    cr_assert(ne(ptr, strstr(saved(), "\npin alice y\n"), NULL), "%s", saved());
    run_ok("freeze on");
    cr_assert(ne(ptr, strstr(saved(), "\nfreeze on "), NULL), "%s", saved());
    run_ok("ramp 50 over 10m step 5");
    text = saved();
    cr_assert(ne(ptr, strstr(text, "\nramp running 10.00 50.00 5.00 "), NULL), "%s", text);
    cr_assert(ne(ptr, strstr(text, " 600000 0 0 1000 4242 ramp 50 over 10m step 5\n"), NULL), "%s",
              text);
    run_ok("ramp pause");
    cr_assert(ne(ptr, strstr(saved(), "\nramp paused 10.00 50.00 5.00 "), NULL), "%s", saved());
    run_ok("ramp resume");
    cr_assert(ne(ptr, strstr(saved(), "\nramp running "), NULL), "%s", saved());
    run_ok("rollback");
    text = saved();
    cr_assert(eq(ptr, strstr(text, "\nramp "), NULL), "%s", text);
    cr_assert(ne(ptr, strstr(text, "\nweight 0.00\n"), NULL), "%s", text);
    run_ok("unpin alice");
    run_ok("freeze off");
    text = saved();
    cr_assert(eq(ptr, strstr(text, "\npin "), NULL), "%s", text);
    cr_assert(ne(ptr, strstr(text, "\nfreeze off\n"), NULL), "%s", text);
    cr_assert(eq(int, fx_entries(), 1), "no temporary file is left");
}

Test(adm_state, a_saved_state_comes_back_at_start_and_overrides_the_config)
{
    struct bal_snapshot *s;
    enum cfg_cluster_id side;
    const char *events;

    fx_write("state", "version 1\nweight 25.00\nfreeze on 1764470400\n"
                      "ramp paused 25.00 45.00 10.00 1764470400000 4000 0 1764470401000 1000 4242 "
                      "ramp 45 over 4s step 10\n"
                      "pin alice y\npin bob x\n");
    fx_start();
    cr_assert(eq(int, fx_st.loaded, ADM_LOAD_OK));
    s = current();
    cr_assert(eq(uint, s->weight_bp, 2500u));
    cr_assert(s->freeze);
    cr_assert(eq(i64, s->freeze_since, (int64_t)1764470400));
    cr_assert(eq(int, bal_pins_find(s->pins, "alice", 5, &side), 0));
    cr_assert(eq(int, side, CFG_CLUSTER_Y));
    bal_snapshot_unref(s);
    cr_assert(eq(int, fx_st.ramp.state, ADM_RAMP_PAUSED));
    cr_assert(eq(long, fx_st.ramp.uid, 1000L));
    events = run_ok("show events");
    cr_assert(ne(ptr, strstr(events, "uid=- pid=- \"start\" weight - -> 10.00\n"), NULL), "%s",
              events);
    cr_assert(ne(ptr, strstr(events, "uid=- pid=- \"state file\" weight 10.00 -> 25.00\n"), NULL),
              "%s", events);
    cr_assert(ne(ptr, strstr(events, "\"state file\" pins 0 -> 2\n"), NULL), "%s", events);
    cr_assert(ne(ptr, strstr(events, "\"state file\" ramp - -> paused to 45.00"), NULL), "%s",
              events);
    cr_assert(ne(ptr, strstr(run_ok("show config"), "\nsplit.weight 10.00 (now 25.00)\n"), NULL));
}

Test(adm_state, a_ramp_whose_steps_came_due_while_down_catches_up_at_start)
{
    char text[512];
    struct timespec ts;
    int64_t now_ms;
    const char *events;

    clock_gettime(CLOCK_REALTIME, &ts);
    now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    /* Started 2.4 s ago over 4 s in steps of 10 from 0: two steps are due, two to come. */
    snprintf(text, sizeof(text),
             "version 1\nweight 0.00\nfreeze off\n"
             "ramp running 0.00 40.00 10.00 %lld 4000 0 0 1000 4242 ramp 40 over 4s step 10\n",
             (long long)(now_ms - 2400));
    fx_write("state", text);
    fx_start();
    cr_assert(eq(int, fx_st.ramp.state, ADM_RAMP_RUNNING));
    cr_assert(eq(uint, fx_st.ramp.done, 2u));
    cr_assert(eq(str, (char *)run_ok("show weight"), "x 80.00\ny 20.00"));
    events = run_ok("show events");
    cr_assert(ne(ptr,
                 strstr(events, "uid=1000 pid=4242 \"ramp 40 over 4s step 10\" weight 0.00 -> "
                                "20.00"),
                 NULL),
              "%s", events);
    /* A ramp that ended while crossfade was down ends at start. */
    fx_fini();
    fx_dir_make();
    snprintf(text, sizeof(text),
             "version 1\nweight 0.00\nfreeze off\n"
             "ramp running 0.00 40.00 10.00 %lld 4000 1 0 1000 4242 ramp 40 over 4s step 10\n",
             (long long)(now_ms - 60000));
    fx_write("state", text);
    fx_start();
    cr_assert(eq(int, fx_st.ramp.state, ADM_RAMP_NONE));
    cr_assert(eq(str, (char *)run_ok("show weight"), "x 60.00\ny 40.00"));
    cr_assert(eq(ptr, strstr(saved(), "\nramp "), NULL), "%s", saved());
}

Test(adm_state, a_corrupt_file_is_left_alone_and_the_config_is_used)
{
    char *text;

    fx_write("state", "version 1\nweight 25.00\nfreeze maybe\n");
    fx_start();
    cr_assert(eq(int, fx_st.loaded, ADM_LOAD_BAD));
    cr_assert(eq(str, (char *)run_ok("show weight"), "x 90.00\ny 10.00"));
    text = fx_read(fx_path("state"));
    cr_assert(eq(str, text, "version 1\nweight 25.00\nfreeze maybe\n"));
    free(text);
    cr_assert(ne(ptr, strstr(run_ok("show state"), ":3: expected \"freeze off\" or"), NULL), "%s",
              fx_reply);
    /* The next change keeps the corrupt file as state.corrupt before writing. */
    run_ok("set weight 12");
    cr_assert(ne(ptr, strstr(saved(), "\nweight 12.00\n"), NULL));
    text = fx_read(fx_path("state.corrupt"));
    cr_assert(eq(str, text, "version 1\nweight 25.00\nfreeze maybe\n"));
    free(text);
}

Test(adm_state, show_state_says_what_start_found_and_when_it_last_wrote)
{
    char want[512];
    const char *reply;

    fx_start();
    reply = run_ok("show state");
    snprintf(want, sizeof(want),
             "state_file %s\nat_start missing: started from the config\nchanges 0, written 0\n"
             "saved never",
             fx_path("state"));
    cr_assert(eq(str, (char *)reply, want));
    run_ok("set weight 1");
    adm_saver_flush(fx_st.saver);
    reply = run_ok("show state");
    cr_assert(ne(ptr, strstr(reply, "\nchanges 1, written 1\nsaved 20"), NULL), "%s", reply);
}

/* The layout a state file records: sorted per cluster, so the order in the file does not count;
 * swapped clusters differ; a layout too long for the line keeps a hash that tells any change. */
Test(adm_persist, the_layout_names_each_clusters_nodes_in_order)
{
    static const char a[] = "listen: [\"127.0.0.1:8000\"]\n"
                            "clusters:\n"
                            "  x: {nodes: [\"10.0.0.2:8000\", \"10.0.0.1:8000\"]}\n"
                            "  y: {nodes: [\"10.0.1.1:8000\"]}\n";
    static const char b[] = "listen: [\"127.0.0.1:8000\"]\n"
                            "clusters:\n"
                            "  x: {nodes: [\"10.0.1.1:8000\"]}\n"
                            "  y: {nodes: [\"10.0.0.1:8000\", \"10.0.0.2:8000\"]}\n";
    struct xf_err err = {{0}};
    struct cfg *ca = cfg_parse(a, strlen(a), "a.yaml", &err), *cb;
    char la[ADM_LAYOUT_MAX], lb[ADM_LAYOUT_MAX], small[32], small2[32];

    cr_assert(ne(ptr, ca, NULL), "%s", err.msg);
    cb = cfg_parse(b, strlen(b), "b.yaml", &err);
    cr_assert(ne(ptr, cb, NULL), "%s", err.msg);
    cr_assert(eq(str, (char *)adm_layout(ca, la, sizeof(la)),
                 "x=10.0.0.1:8000,10.0.0.2:8000 y=10.0.1.1:8000"));
    cr_assert(eq(str, (char *)adm_layout(cb, lb, sizeof(lb)),
                 "x=10.0.1.1:8000 y=10.0.0.1:8000,10.0.0.2:8000"));
    /* Cut to a small buffer: the start, then ~ and 16 hex digits of the whole; two layouts that
     * share the start still differ. */
    adm_layout(ca, small, sizeof(small));
    cr_assert(eq(sz, strlen(small), sizeof(small) - 2));
    cr_assert(eq(int, strncmp(small, "x=10.0.0.1:80", 13), 0), "%s", small);
    cr_assert(eq(chr, small[sizeof(small) - 19], '~'), "%s", small);
    ca->clusters[CFG_CLUSTER_Y].nodes[0].addr.text[7] = '9'; /* 10.0.1.9:8000 */
    adm_layout(ca, small2, sizeof(small2));
    cr_assert(ne(str, small, small2));
    cfg_free(ca);
    cfg_free(cb);
}
