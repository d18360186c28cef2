/* tests/unit/test_adm_reload.c -- `reload` on the admin side: its reply, whether the proxy
 * answers at once or once its workers applied the new configuration, and what the admin state
 * keeps of a reload (the config it reads, the audit trail). */
#include "adm_fixture.h"

TestSuite(adm_reload, .init = fx_setup, .fini = fx_teardown);

/* What the fake proxy does when `reload` asks it. */
static struct {
    bool at_once; /* answer during the call */
    bool ok;
    const char *text;
    adm_reload_done_fn done; /* kept to answer later */
    void *job;
    int calls;
} fake;

static void
fake_reload(void *arg, adm_reload_done_fn done, void *job)
{
    cr_assert(eq(ptr, arg, &fake));
    fake.calls++;
    if (fake.at_once) {
        done(job, fake.ok, fake.text);
        return;
    }
    fake.done = done;
    fake.job = job;
}

/* What the admin server receives for a pending command (adm_server_job_done). */
static struct {
    void *job;
    char reply[512];
    int calls;
} got;

static void
got_job_done(void *arg, void *job, struct evbuffer *reply)
{
    size_t n = evbuffer_get_length(reply);

    XF_UNUSED(arg);
    got.job = job;
    cr_assert(lt(sz, n, sizeof(got.reply)));
    evbuffer_remove(reply, got.reply, n);
    got.reply[n] = '\0';
    got.calls++;
}

static void
use_fake(bool at_once, bool ok, const char *text)
{
    memset(&fake, 0, sizeof(fake));
    memset(&got, 0, sizeof(got));
    fake.at_once = at_once;
    fake.ok = ok;
    fake.text = text;
    fx_st.reload = fake_reload;
    fx_st.reload_arg = &fake;
    fx_st.job_done = got_job_done;
}

Test(adm_reload, without_a_proxy_to_reload_it_says_so)
{
    cr_assert(
        eq(str, (char *)run_error("reload"), "error: reload is not available in this process"));
}

Test(adm_reload, a_failure_found_at_once_is_the_reply_with_its_file_line_and_column)
{
    use_fake(true, false, "t.yaml:3:7: clusters.x.nodes: expected a list, got \"a\"");
    cr_assert(eq(str, (char *)run_error("reload"),
                 "error: t.yaml:3:7: clusters.x.nodes: expected a list, got \"a\""));
    cr_assert(eq(int, fake.calls, 1));
    cr_assert(eq(int, got.calls, 0), "a reply given at once is not a pending one");
}

Test(adm_reload, a_success_told_at_once_is_an_ok_with_what_changed)
{
    use_fake(true, true, "listeners +1 -0; x nodes +0 -0; y nodes +0 -0");
    cr_assert(
        eq(str, (char *)run_ok("reload"), "ok: listeners +1 -0; x nodes +0 -0; y nodes +0 -0"));
}

Test(adm_reload, the_reply_waits_until_the_proxy_says_every_worker_applied_it)
{
    enum adm_result res;

    use_fake(false, true, NULL);
    cr_assert(eq(int, adm_exec(&fx_st, &fx_peer, "reload", 6, fx_out), ADM_PENDING));
    cr_assert(eq(sz, evbuffer_get_length(fx_out), (size_t)0), "nothing is answered yet");
    cr_assert(eq(ptr, fx_st.pending, fake.job), "the server is told which job to wait for");
    fx_st.pending = NULL;
    cr_assert(eq(int, got.calls, 0));
    fake.done(fake.job, true, "listeners +0 -0; x nodes +1 -0; y nodes +0 -0; timeouts changed");
    cr_assert(eq(int, got.calls, 1));
    cr_assert(eq(ptr, got.job, fake.job));
    cr_assert(eq(str, got.reply,
                 "ok: listeners +0 -0; x nodes +1 -0; y nodes +0 -0; timeouts changed\n\n"));
    /* The next command runs as usual. */
    run("show weight", &res);
    cr_assert(eq(int, res, ADM_OK));
}

Test(adm_reload, a_later_failure_is_an_error_reply)
{
    use_fake(false, false, NULL);
    cr_assert(eq(int, adm_exec(&fx_st, &fx_peer, "reload", 6, fx_out), ADM_PENDING));
    fx_st.pending = NULL;
    fake.done(fake.job, false, "out of memory preparing the reload");
    cr_assert(eq(str, got.reply, "error: out of memory preparing the reload\n\n"));
}

Test(adm_reload, reload_takes_no_argument)
{
    use_fake(true, true, "x");
    run_error("reload now");
    cr_assert(eq(int, fake.calls, 0));
}

static const char fx_yaml_reloaded[] =
    "listen:\n"
    "  - address: \"127.0.0.1:8000\"\n"
    "admin:\n"
    "  socket: \"/tmp/xf-unit/admin.sock\"\n"
    "split:\n"
    "  weight: 25\n"
    "  key: [\"header:X-Consumer-ID\", \"cookie:session\", \"ip\"]\n"
    "  seed: \"unit\"\n"
    "clusters:\n"
    "  x:\n"
    "    nodes: [\"10.0.0.1:8000\", \"10.0.0.2:8000\"]\n"
    "  y:\n"
    "    balance: round_robin\n"
    "    nodes: [\"10.0.1.1:8000\", \"10.0.1.2:8000\"]\n";

/* The admin side of a reload the proxy applied, as `reload` from fx_peer or as SIGHUP. */
static struct cfg *
apply_reload(bool from_command)
{
    struct xf_err err = {{0}};
    struct cfg *cfg = cfg_parse(fx_yaml_reloaded, strlen(fx_yaml_reloaded), "t2.yaml", &err);
    struct bal_snapshot *cur, *next;
    char text[128] = "listeners +0 -0; x nodes +0 -0; y nodes +1 -0";

    cr_assert(ne(ptr, cfg, NULL), "%s", err.msg);
    cur = bal_router_acquire(&fx_router);
    next = bal_snapshot_reload(cur, fx_cfg, cfg, NULL, NULL, cur->version + 1, &err);
    bal_snapshot_unref(cur);
    cr_assert(ne(ptr, next, NULL), "%s", err.msg);
    if (from_command) {
        fx_st.reload_peer = &fx_peer;
        snprintf(fx_st.reload_cmd, sizeof(fx_st.reload_cmd), "reload");
    }
    adm_state_reload(&fx_st, cfg, next, text, sizeof(text));
    fx_st.reload_peer = NULL;
    return cfg;
}

Test(adm_reload, after_a_reload_commands_read_the_new_config_and_route_its_nodes)
{
    struct cfg *cfg;

    run_ok("set weight 40");
    cfg = apply_reload(true);
    cr_assert(eq(ptr, (void *)fx_st.cfg, cfg));
    cr_assert(ne(ptr, strstr(run_ok("show nodes"), "y 10.0.1.2:8000 1 up"), NULL), "%s", fx_reply);
    cr_assert(ne(ptr, strstr(run_ok("show config"), "10.0.1.2:8000"), NULL), "%s", fx_reply);
    cr_assert(eq(str, (char *)run_ok("show weight"), "x 60.00\ny 40.00"),
              "the weight in force stays");
    cr_assert(ne(ptr, strstr(run_ok("show version"), "config t2.yaml\nreloads 1, last "), NULL),
              "%s", fx_reply);
    fx_st.cfg = fx_cfg; /* the fixture frees its own; the reloaded one goes here */
    cfg_free(cfg);
}

Test(adm_reload, the_audit_trail_names_who_reloaded_and_what_changed)
{
    struct cfg *cfg = apply_reload(true);
    const char *events = run_ok("show events");

    cr_assert(ne(ptr,
                 strstr(events, "uid=1000 pid=4242 \"reload\" config - -> listeners +0 -0; "
                                "x nodes +0 -0; y nodes +1 -0"),
                 NULL),
              "%s", events);
    fx_st.cfg = fx_cfg;
    cfg_free(cfg);
    cfg = apply_reload(false);
    events = run_ok("show events");
    cr_assert(ne(ptr, strstr(events, "uid=- pid=- \"SIGHUP\" config"), NULL), "%s", events);
    fx_st.cfg = fx_cfg;
    cfg_free(cfg);
}
