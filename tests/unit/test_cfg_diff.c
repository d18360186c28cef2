/* tests/unit/test_cfg_diff.c -- what a reload would change between two configurations, and the
 * changes it must refuse. */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "config/cfg.h"

#define CLUSTERS(X, Y)                                                                             \
    "clusters:\n"                                                                                  \
    "  x:\n"                                                                                       \
    "    nodes: " X "\n"                                                                           \
    "  y:\n"                                                                                       \
    "    nodes: " Y "\n"
#define ONE_LISTENER "listen:\n  - address: \"127.0.0.1:8000\"\n"
#define BASE         ONE_LISTENER CLUSTERS("[\"10.0.0.1:8000\"]", "[\"10.0.1.1:8000\"]")

static struct cfg *
parse(const char *yaml)
{
    struct xf_err err = {{0}};
    struct cfg *cfg = cfg_parse(yaml, strlen(yaml), "t.yaml", &err);

    cr_assert(ne(ptr, cfg, NULL), "rejected: %s\n%s", err.msg, yaml);
    return cfg;
}

/* The diff's text from `a` to `b`; asserts it is not refused. */
static const char *
diff_text(const char *a, const char *b)
{
    static char buf[512];
    struct cfg *old = parse(a), *new = parse(b);
    struct cfg_diff d;

    cr_assert(eq(int, cfg_diff(old, new, &d), 0), "refused: %s", d.refused);
    cr_assert(eq(str, d.refused, ""));
    cfg_diff_text(&d, buf, sizeof(buf));
    cfg_free(old);
    cfg_free(new);
    return buf;
}

/* The reason `a` to `b` is refused. */
static const char *
refused(const char *a, const char *b)
{
    static char buf[256];
    struct cfg *old = parse(a), *new = parse(b);
    struct cfg_diff d;

    cr_assert(eq(int, cfg_diff(old, new, &d), -1), "not refused");
    memcpy(buf, d.refused, sizeof(buf));
    cfg_free(old);
    cfg_free(new);
    return buf;
}

Test(cfg_diff, the_same_file_changes_nothing)
{
    cr_assert(
        eq(str, (char *)diff_text(BASE, BASE), "listeners +0 -0; x nodes +0 -0; y nodes +0 -0"));
}

Test(cfg_diff, counts_listeners_and_nodes_added_and_removed_by_address)
{
    const char *after = "listen:\n"
                        "  - address: \"127.0.0.1:8000\"\n"
                        "  - {address: \"127.0.0.1:8001\", role: admin_api}\n" CLUSTERS(
                            "[\"10.0.0.1:8000\", \"10.0.0.2:8000\"]", "[\"10.0.1.2:8000\"]");

    cr_assert(
        eq(str, (char *)diff_text(BASE, after), "listeners +1 -0; x nodes +1 -0; y nodes +1 -1"));
    cr_assert(
        eq(str, (char *)diff_text(after, BASE), "listeners +0 -1; x nodes +0 -1; y nodes +1 -1"));
}

Test(cfg_diff, nodes_are_matched_by_what_they_resolve_to_and_their_order_does_not_matter)
{
    const char *a =
        ONE_LISTENER CLUSTERS("[\"10.0.0.1:8000\", \"10.0.0.2:8000\"]", "[\"10.0.1.1:8000\"]");
    const char *b =
        ONE_LISTENER CLUSTERS("[\"10.0.0.2:8000\", \"10.0.0.1:08000\"]", "[\"10.0.1.1:8000\"]");

    cr_assert(eq(str, (char *)diff_text(a, b), "listeners +0 -0; x nodes +0 -0; y nodes +0 -0"));
}

Test(cfg_diff, a_listener_whose_role_or_node_port_changed_is_replaced)
{
    const char *b = "listen:\n  - {address: \"127.0.0.1:8000\", node_port: 8001}\n" CLUSTERS(
        "[\"10.0.0.1:8000\"]", "[\"10.0.1.1:8000\"]");

    cr_assert(eq(str, (char *)diff_text(BASE, b), "listeners +1 -1; x nodes +0 -0; y nodes +0 -0"));
}

Test(cfg_diff, names_a_node_whose_weight_or_limits_changed_and_every_part_that_did)
{
    const char *b = ONE_LISTENER CLUSTERS("[{address: \"10.0.0.1:8000\", weight: 3}]",
                                          "[\"10.0.1.1:8000\"]") "    failover: false\n"
                                                                 "timeouts: {connect: 1s}\n"
                                                                 "limits: {max_headers: 50}\n"
                                                                 "retries: 1\n"
                                                                 "split: {seed: other}\n"
                                                                 "access_log: off\n"
                                                                 "log_level: warn\n";

    cr_assert(eq(str, (char *)diff_text(BASE, b),
                 "listeners +0 -0; x nodes +0 -0 ~1; y nodes +0 -0; cluster y changed; split "
                 "changed; timeouts changed; limits changed; retries changed; access_log changed; "
                 "log_level changed"));
}

/* The workers apply them at a reload as they do a new path (proxy/px_reload.c). */
Test(cfg_diff, counts_a_new_access_log_format_or_sample_as_an_access_log_change)
{
    static const char *const changed[] = {
        BASE "access_log_format: json\n",
        BASE "access_log_sample: 0.5\n",
        BASE "access_log_sample: 1%\n",
    };

    for (size_t i = 0; i < sizeof(changed) / sizeof(changed[0]); i++)
        cr_assert(eq(str, (char *)diff_text(BASE, changed[i]),
                     "listeners +0 -0; x nodes +0 -0; y nodes +0 -0; access_log changed"),
                  "%s", changed[i]);
    cr_assert(eq(str,
                 (char *)diff_text(BASE, BASE "access_log_format: text\naccess_log_sample: 1\n"),
                 "listeners +0 -0; x nodes +0 -0; y nodes +0 -0"),
              "the defaults written out change nothing");
    cr_assert(
        eq(str, (char *)diff_text(BASE "access_log_sample: 1%\n", BASE "access_log_sample: 0.01\n"),
           "listeners +0 -0; x nodes +0 -0; y nodes +0 -0"),
        "the same share written another way changes nothing");
}

Test(cfg_diff, the_weight_in_the_file_is_not_applied_and_says_so)
{
    cr_assert(eq(str, (char *)diff_text(BASE, BASE "split: {weight: 30}\n"),
                 "listeners +0 -0; x nodes +0 -0; y nodes +0 -0; split.weight in the file not "
                 "applied (the weight in force is kept)"));
}

Test(cfg_diff, refuses_what_cannot_change_while_crossfade_runs)
{
    cr_assert(eq(str, (char *)refused(BASE, BASE "workers: 3\n"),
                 "workers changed: the worker threads are started once; restart to apply it"));
    cr_assert(eq(str, (char *)refused(BASE, BASE "admin: {socket: /tmp/other.sock}\n"),
                 "admin.socket changed (/run/crossfade/admin.sock -> /tmp/other.sock): the admin "
                 "socket cannot move while crossfade runs; restart, or start the new one with "
                 "--takeover"));
    cr_assert(eq(str, (char *)refused(BASE, BASE "state_file: /tmp/state\n"),
                 "state_file changed: the state file is read at start-up; restart to move it"));
}

Test(cfg_diff, the_text_is_cut_to_the_buffer_and_stays_terminated)
{
    struct cfg *a = parse(BASE), *b = parse(BASE "retries: 1\n");
    struct cfg_diff d;
    char small[12];
    size_t n;

    cr_assert(eq(int, cfg_diff(a, b, &d), 0));
    n = cfg_diff_text(&d, small, sizeof(small));
    cr_assert(eq(sz, n, strlen(small)));
    cr_assert(eq(str, small, "listeners +"));
    cfg_free(a);
    cfg_free(b);
}
