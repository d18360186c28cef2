/* tests/unit/test_bench_watch.c -- xfbench's reading of the admin socket's watch stream: times, the
 * first line, event lines good and malformed. */
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "bench/bench_xfbench.h"

TestSuite(bench_watch);

static int64_t
utc(const char *s)
{
    int64_t ms = -1;

    cr_assert(eq(int, bench_xfb_utc_ms_parse(s, strlen(s), &ms), 0), "\"%s\" was refused", s);
    return ms;
}

Test(bench_watch, times_are_utc_with_milliseconds)
{
    cr_assert(eq(i64, utc("1970-01-01T00:00:00.000Z"), 0));
    cr_assert(eq(i64, utc("1970-01-01T00:00:01.001Z"), 1001));
    /* Reference values from Python's calendar.timegm. */
    cr_assert(eq(i64, utc("2026-12-04T16:28:53.123Z"), INT64_C(1796401733123)));
    cr_assert(eq(i64, utc("2024-02-29T23:59:59.999Z"), INT64_C(1709251199999)));
    cr_assert(eq(i64, utc("2000-02-29T00:00:00.000Z") + 86400000, utc("2000-03-01T00:00:00.000Z")));
    cr_assert(eq(i64, utc("2026-12-31T23:59:59.999Z") + 1, utc("2027-01-01T00:00:00.000Z")));
}

Test(bench_watch, wrong_times_are_refused)
{
    static const char *const bad[] = {
        "2026-12-04T16:28:53Z",          /* no milliseconds */
        "2026-12-04T16:28:53.12Z",       /* two digits */
        "2026-12-04T16:28:53.1234Z",     /* four */
        "2026-12-04T16:28:53.123",       /* no Z */
        "2026-12-04T16:28:53.123+01:00", /* not UTC */
        "2026-12-04 16:28:53.123Z",      /* a space for the T */
        "2026-13-04T16:28:53.123Z",      /* month 13 */
        "2026-00-04T16:28:53.123Z",
        "2026-04-31T16:28:53.123Z", /* April has 30 days */
        "2026-02-29T16:28:53.123Z", /* not a leap year */
        "2100-02-29T16:28:53.123Z", /* nor is 2100 */
        "2026-12-04T24:00:00.000Z",
        "2026-12-04T16:60:53.123Z",
        "2026-12-04T16:28:60.123Z", /* the server never writes a leap second */
        "1969-12-31T23:59:59.999Z",
        "2026-12-O4T16:28:53.123Z", /* a letter O */
        "",
    };
    int64_t ms;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert(eq(int, bench_xfb_utc_ms_parse(bad[i], strlen(bad[i]), &ms), -1),
                  "\"%s\" was accepted", bad[i]);
}

Test(bench_watch, the_first_line_gives_the_moment_and_the_weight)
{
    static const char ok[] = "ok: watching at 2026-12-04T16:28:53.123Z weight y 25.00";
    static const char more[] = "ok: watching at 2026-12-04T16:28:53.123Z weight y 0.00 (seq 7)";
    static const char *const bad[] = {
        "error: unknown command \"watch\"",
        "ok: watching at 2026-12-04T16:28:53Z weight y 25.00",
        "ok: watching at 2026-12-04T16:28:53.123Z weight y 250.00",
        "ok: watching at 2026-12-04T16:28:53.123Z weight x 25.00",
        "ok: watching at 2026-12-04T16:28:53.123Z weight y",
        "ok: watching at 2026-12-04T16:28:53.123Z",
        "ok: weight y 25.00 (was 0.00)",
    };
    int64_t at;
    unsigned bp;

    cr_assert(eq(int, bench_xfb_watch_hello(ok, strlen(ok), &at, &bp), 0));
    cr_assert(eq(i64, at, INT64_C(1796401733123)));
    cr_assert(eq(uint, bp, 2500));
    cr_assert(eq(int, bench_xfb_watch_hello(more, strlen(more), &at, &bp), 0),
              "a later server may add words");
    cr_assert(eq(uint, bp, 0));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert(eq(int, bench_xfb_watch_hello(bad[i], strlen(bad[i]), &at, &bp), -1),
                  "\"%s\" was accepted", bad[i]);
}

/* Parses a line that must parse. */
static struct bench_xfb_watch_line *
parse_ok(const char *line)
{
    static struct bench_xfb_watch_line wl;
    struct xf_err err = {{0}};

    cr_assert(eq(int, bench_xfb_watch_parse(line, strlen(line), &wl, &err), 0), "%s: %s", line,
              err.msg);
    return &wl;
}

/* A span of the line as a string (a ring of four, enough for one assertion). */
static char *
span(const char *p, size_t len)
{
    static char buf[4][256];
    static int n;
    char *b = buf[n++ % 4];

    snprintf(b, sizeof(buf[0]), "%.*s", (int)len, p);
    return b;
}

Test(bench_watch, a_weight_change_is_read_whole)
{
    struct bench_xfb_watch_line *wl = parse_ok("#7 2026-12-04T16:28:54.002Z uid=1000 pid=4242 "
                                               "\"ramp 60 over 6s step 10\" weight 0.00 -> 10.00");

    cr_assert(eq(i64, wl->seq, 7));
    cr_assert(eq(i64, wl->at_ms, INT64_C(1796401734002)));
    cr_assert(eq(i64, wl->uid, 1000));
    cr_assert(eq(i64, wl->pid, 4242));
    cr_assert(eq(str, wl->command, "ramp 60 over 6s step 10"));
    cr_assert(eq(int, wl->is_weight, 1));
    cr_assert(eq(int, wl->old_bp, 0));
    cr_assert(eq(uint, wl->new_bp, 1000));
    /* The first weight of a run has no old value. */
    wl = parse_ok("#1 2026-12-04T16:28:54.002Z uid=- pid=- \"start\" weight - -> 12.50");
    cr_assert(eq(int, wl->old_bp, -1));
    cr_assert(eq(uint, wl->new_bp, 1250));
}

Test(bench_watch, other_events_keep_their_values_spaces_and_all)
{
    struct bench_xfb_watch_line *wl =
        parse_ok("#8 2026-12-04T16:28:54.002Z uid=1000 pid=4242 \"ramp 60 over 6s step 10\" ramp "
                 "running to 60.00 -> done");

    cr_assert(eq(int, wl->is_weight, 0));
    cr_assert(eq(str, span(wl->what, wl->what_len), "ramp"));
    cr_assert(eq(str, span(wl->old_v, wl->old_len), "running to 60.00"));
    cr_assert(eq(str, span(wl->new_v, wl->new_len), "done"));
    wl = parse_ok("#- 2026-12-04T16:28:55.100Z uid=- pid=- \"health\" node y/127.0.0.1:9202 up -> "
                  "down (3 checks failed, last fail:503)");
    cr_assert(eq(i64, wl->seq, -1));
    cr_assert(eq(i64, wl->uid, -1));
    cr_assert(eq(i64, wl->pid, -1));
    cr_assert(eq(str, wl->command, "health"));
    cr_assert(eq(str, span(wl->what, wl->what_len), "node"));
    cr_assert(eq(str, span(wl->old_v, wl->old_len), "y/127.0.0.1:9202 up"));
    cr_assert(eq(str, span(wl->new_v, wl->new_len), "down (3 checks failed, last fail:503)"));
}

Test(bench_watch, a_command_with_escaped_quotes_and_the_word_weight_is_not_a_weight_change)
{
    /* The command itself reads like a weight change: only WHAT after the closing quote counts. */
    struct bench_xfb_watch_line *wl =
        parse_ok("#9 2026-12-04T16:28:56.000Z uid=1000 pid=1 \"pin \\\"x\\\" weight 1.00 -> "
                 "2.00\\\\\" pin - -> y");

    cr_assert(eq(str, wl->command, "pin \"x\" weight 1.00 -> 2.00\\"));
    cr_assert(eq(int, wl->is_weight, 0));
    cr_assert(eq(str, span(wl->what, wl->what_len), "pin"));
    cr_assert(eq(str, span(wl->old_v, wl->old_len), "-"));
    cr_assert(eq(str, span(wl->new_v, wl->new_len), "y"));
    /* And the other way round: a weight change whose command says "pin". */
    wl = parse_ok("#10 2026-12-04T16:28:56.000Z uid=1000 pid=1 \"say \\\"pin - -> y\\\"\" weight "
                  "10.00 -> 20.00");
    cr_assert(eq(int, wl->is_weight, 1));
    cr_assert(eq(uint, wl->new_bp, 2000));
}

Test(bench_watch, control_bytes_in_a_command_come_back_from_hex)
{
    struct bench_xfb_watch_line *wl = parse_ok(
        "#11 2026-12-04T16:28:56.000Z uid=0 pid=0 \"a\\x09b\\x1Fc\\x00d\" freeze off -> on");

    cr_assert(eq(str, wl->command,
                 "a\tb\x1f"
                 "c?d"),
              "a NUL would cut the text: kept as ?");
}

Test(bench_watch, a_long_command_is_cut_to_fit_and_the_line_still_read)
{
    char line[2048], cmd[1200];
    struct bench_xfb_watch_line *wl;

    memset(cmd, 'a', sizeof(cmd) - 1);
    cmd[sizeof(cmd) - 1] = '\0';
    snprintf(line, sizeof(line),
             "#12 2026-12-04T16:28:56.000Z uid=0 pid=0 \"%s\" weight 1.00 -> 2.00", cmd);
    wl = parse_ok(line);
    cr_assert(eq(sz, strlen(wl->command), BENCH_XFB_LINE_MAX - 1));
    cr_assert(eq(uint, wl->new_bp, 200));
}

Test(bench_watch, malformed_lines_are_refused_with_the_reason)
{
    static const struct {
        const char *line;
        const char *why;
    } bad[] = {
        {"", "it does not start with #"},
        {" #7 2026-12-04T16:28:54.002Z uid=1 pid=2 \"set weight 10\" weight 0.00 -> 10.00",
         "it does not start with #"},
        {"ok: watching at 2026-12-04T16:28:53.123Z weight y 25.00", "it does not start with #"},
        {"#7a 2026-12-04T16:28:54.002Z uid=1 pid=2 \"set weight 10\" weight 0.00 -> 10.00",
         "bad sequence number"},
        {"# 2026-12-04T16:28:54.002Z uid=1 pid=2 \"set weight 10\" weight 0.00 -> 10.00",
         "bad sequence number"},
        {"#7 2026-12-04T16:28:54Z uid=1 pid=2 \"set weight 10\" weight 0.00 -> 10.00", "bad time"},
        {"#7 2026-12-04 16:28:54.002 uid=1 pid=2 \"set weight 10\" weight 0.00 -> 10.00",
         "bad time"},
        {"#7 2026-12-04T16:28:54.002Z 1000 pid=2 \"set weight 10\" weight 0.00 -> 10.00",
         "bad uid="},
        {"#7 2026-12-04T16:28:54.002Z uid=1 pid=x \"set weight 10\" weight 0.00 -> 10.00",
         "bad pid="},
        {"#7 2026-12-04T16:28:54.002Z uid=1 pid=2 set weight 10 weight 0.00 -> 10.00",
         "the command is not in double quotes"},
        {"#7 2026-12-04T16:28:54.002Z uid=1 pid=2 \"set weight 10 weight 0.00 -> 10.00",
         "the command's closing quote is missing"},
        {"#7 2026-12-04T16:28:54.002Z uid=1 pid=2 \"set \\\"weight\\\" weight 0.00 -> 10.00",
         "the command's closing quote is missing"},
        {"#7 2026-12-04T16:28:54.002Z uid=1 pid=2 \"set\\q\" weight 0.00 -> 10.00",
         "an unknown escape in the command"},
        {"#7 2026-12-04T16:28:54.002Z uid=1 pid=2 \"set\\xZ1\" weight 0.00 -> 10.00",
         "a bad \\x escape in the command"},
        {"#7 2026-12-04T16:28:54.002Z uid=1 pid=2 \"set\tweight\" weight 0.00 -> 10.00",
         "a control byte in the command"},
        {"#7 2026-12-04T16:28:54.002Z uid=1 pid=2 \"set weight 10\"weight 0.00 -> 10.00",
         "no space after the command"},
        {"#7 2026-12-04T16:28:54.002Z uid=1 pid=2 \"set weight 10\" weight 0.00 10.00",
         "no \" -> \""},
        {"#7 2026-12-04T16:28:54.002Z uid=1 pid=2 \"set weight 10\" weight 0.00 => 10.00",
         "no \" -> \""},
        {"#7 2026-12-04T16:28:54.002Z uid=1 pid=2 \"set weight 10\" weight 0.00 ->", "no \" -> \""},
        {"#7 2026-12-04T16:28:54.002Z uid=1 pid=2 \"ramp 60 over 6s\" ramp running", "no \" -> \""},
        {"#7 2026-12-04T16:28:54.002Z uid=1 pid=2 \"set weight 10\" weight 0.00 -> 101.00",
         "values are not weights"},
        {"#7 2026-12-04T16:28:54.002Z uid=1 pid=2 \"set weight 10\" weight 0.00 -> 10.00 (was)",
         "values are not weights"},
        {"#7 2026-12-04T16:28:54.002Z uid=1 pid=2 \"set weight 10\" weight - -> -",
         "values are not weights"},
        {"#7 2026-12-04T16:28:54.002Z uid=1 pid=2 \"set weight 10\"  weight 0.00 -> 10.00",
         "no WHAT after the command"},
        {"#7 2026-12-04T16:28:54.002Z uid=1 pid=2 \"set weight 10\"", "no space after the command"},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct bench_xfb_watch_line wl;
        struct xf_err err = {{0}};

        cr_assert(eq(int, bench_xfb_watch_parse(bad[i].line, strlen(bad[i].line), &wl, &err), -1),
                  "case %zu was accepted: %s", i, bad[i].line);
        cr_assert(ne(ptr, strstr(err.msg, bad[i].why), NULL), "case %zu: \"%s\", not \"%s\"", i,
                  err.msg, bad[i].why);
    }
}

Test(bench_watch, a_carriage_return_before_the_line_feed_is_tolerated)
{
    struct bench_xfb_watch_line *wl =
        parse_ok("#7 2026-12-04T16:28:54.002Z uid=1 pid=2 \"rollback\" weight 10.00 -> 0.00\r");

    cr_assert(eq(uint, wl->new_bp, 0));
    cr_assert(eq(int, wl->old_bp, 1000));
}
