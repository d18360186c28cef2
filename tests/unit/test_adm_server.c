/* tests/unit/test_adm_server.c -- adm_server_new on a scratch directory: the socket's mode and
 * group (admin.group), and the state file read before the socket exists. */
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "admin/adm.h"

static char fx_dir[64];

static void
fx_setup(void)
{
    xf_log_min = XF_LOG_ERR + 1;
    snprintf(fx_dir, sizeof(fx_dir), "/tmp/xf-unit-srv-XXXXXX");
    cr_assert(ne(ptr, mkdtemp(fx_dir), NULL));
}

static void
fx_teardown(void)
{
    char path[128];

    snprintf(path, sizeof(path), "%s/state", fx_dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/run/admin.sock", fx_dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/run", fx_dir);
    rmdir(path);
    rmdir(fx_dir);
}

TestSuite(adm_server, .init = fx_setup, .fini = fx_teardown);

/* Starts a server on <dir>/run/admin.sock with `more` lines in the config; asserts it starts. */
static void
with_server(const char *admin_extra, const char *top_extra,
            void (*check)(struct adm_server *, struct bal_router *, const char *sock))
{
    struct event_base *base = event_base_new();
    struct xf_err err = {{0}};
    struct bal_router router;
    struct adm_server *s;
    struct cfg *cfg;
    char yaml[1024], sock[128];

    snprintf(sock, sizeof(sock), "%s/run/admin.sock", fx_dir);
    snprintf(yaml, sizeof(yaml),
             "listen: [\"127.0.0.1:8000\"]\n"
             "admin:\n  socket: \"%s\"\n%s"
             "split: {weight: 10}\n"
             "clusters:\n  x: {nodes: [\"10.0.0.1:8000\"]}\n  y: {nodes: [\"10.0.1.1:8000\"]}\n%s",
             sock, admin_extra, top_extra);
    cfg = cfg_parse(yaml, strlen(yaml), "t.yaml", &err);
    cr_assert(ne(ptr, cfg, NULL), "%s", err.msg);
    bal_router_init(&router, bal_snapshot_new(cfg, NULL, 1, &err));
    s = adm_server_new(base, cfg, &router, &err);
    cr_assert(ne(ptr, s, NULL), "%s", err.msg);
    check(s, &router, sock);
    adm_server_free(s);
    bal_router_fini(&router);
    cfg_free(cfg);
    event_base_free(base);
}

static void
check_private(struct adm_server *s, struct bal_router *r, const char *sock)
{
    struct stat st;

    XF_UNUSED(s);
    XF_UNUSED(r);
    cr_assert(eq(int, stat(sock, &st), 0));
    cr_assert(eq(uint, (unsigned)(st.st_mode & 07777), 0600u));
    *strrchr((char *)sock, '/') = '\0';
    cr_assert(eq(int, stat(sock, &st), 0));
    cr_assert(eq(uint, (unsigned)(st.st_mode & 07777), 0700u), "the directory it created");
}

Test(adm_server, the_socket_is_the_users_alone_by_default)
{
    with_server("", "", check_private);
}

static void
check_group(struct adm_server *s, struct bal_router *r, const char *sock)
{
    struct stat st;

    XF_UNUSED(s);
    XF_UNUSED(r);
    cr_assert(eq(int, stat(sock, &st), 0));
    cr_assert(eq(uint, (unsigned)(st.st_mode & 07777), 0660u));
    cr_assert(eq(uint, (unsigned)st.st_gid, (unsigned)getgid()));
    *strrchr((char *)sock, '/') = '\0';
    cr_assert(eq(int, stat(sock, &st), 0));
    cr_assert(eq(uint, (unsigned)(st.st_mode & 07777), 0750u), "the directory it created");
    cr_assert(eq(uint, (unsigned)st.st_gid, (unsigned)getgid()));
}

Test(adm_server, admin_group_lets_one_group_in)
{
    struct group *g = getgrgid(getgid());
    char extra[128];

    cr_assert(ne(ptr, g, NULL));
    snprintf(extra, sizeof(extra), "  group: \"%s\"\n", g->gr_name);
    with_server(extra, "", check_group);
}

static void
check_state(struct adm_server *s, struct bal_router *r, const char *sock)
{
    struct bal_snapshot *snap = bal_router_acquire(r);

    XF_UNUSED(s);
    XF_UNUSED(sock);
    cr_assert(eq(uint, snap->weight_bp, 3300u), "the state file's weight, not the config's");
    cr_assert(snap->freeze);
    bal_snapshot_unref(snap);
}

Test(adm_server, the_state_file_is_in_force_once_the_server_exists)
{
    char path[128], top[160];
    FILE *f;

    snprintf(path, sizeof(path), "%s/state", fx_dir);
    f = fopen(path, "w");
    fputs("version 1\nweight 33\nfreeze on 1764470400\n", f);
    fclose(f);
    snprintf(top, sizeof(top), "state_file: \"%s\"\n", path);
    with_server("", top, check_state);
}
