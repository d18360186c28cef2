/* tests/integration/etcd_helpers.c -- real etcd members on loopback for the fleet tests. */
#include "tests/integration/etcd_helpers.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct h_etcd_member h_etcd[H_ETCD_MAX];
size_t h_etcd_n;

/* The etcd binary ($XF_ETCD, else the first `etcd` on PATH), or NULL. */
static const char *
h_etcd_bin(void)
{
    const char *env = getenv("XF_ETCD"), *path = getenv("PATH");

    if (env != NULL && *env != '\0')
        return access(env, X_OK) == 0 ? env : NULL;
    while (path != NULL && *path != '\0') {
        const char *colon = strchr(path, ':');
        size_t n = colon != NULL ? (size_t)(colon - path) : strlen(path);
        const char *cand = h_fmt("%.*s/etcd", (int)n, path);

        if (n > 0 && access(cand, X_OK) == 0)
            return cand;
        path = colon != NULL ? colon + 1 : NULL;
    }
    return NULL;
}

/* Waits until m answers on its client port. */
static void
h_etcd_wait(const struct h_etcd_member *m)
{
    uint64_t end = h_now_ms() + H_ETCD_WAIT_MS;

    while (h_try_connect(m->client_port, 200) != 0) {
        cr_assert(h_proc_alive(m->proc), "etcd %s exited (its log is printed)", m->name);
        cr_assert(lt(u64, h_now_ms(), end), "etcd %s does not listen", m->name);
        h_sleep_ms(50);
    }
}

void
h_etcd_spawn(struct h_etcd_member *m)
{
    m->proc = h_spawn(m->name, m->argv, h_path(h_fmt("%s.log", m->name)), NULL);
}

void
h_etcd_restart(struct h_etcd_member *m)
{
    h_etcd_spawn(m);
    h_etcd_wait(m);
}

void
h_etcd_start(size_t n)
{
    const char *bin = h_etcd_bin();
    char *initial = "";

    if (bin == NULL)
        cr_skip_test("etcd is not installed (make deps installs Debian's etcd-server; or set "
                     "XF_ETCD to the binary)");
    h_etcd_n = n;
    for (size_t k = 0; k < n; k++) {
        struct h_etcd_member *m = &h_etcd[k];

        memset(m, 0, sizeof(*m));
        snprintf(m->name, sizeof(m->name), "m%d", (int)k);
        m->client_port = h_free_port();
        m->peer_port = h_free_port();
        snprintf(m->url, sizeof(m->url), "http://127.0.0.1:%d", m->client_port);
        initial = h_fmt("%s%sm%zu=http://127.0.0.1:%d", initial, k > 0 ? "," : "", k, m->peer_port);
    }
    for (size_t k = 0; k < n; k++) {
        struct h_etcd_member *m = &h_etcd[k];
        const char *peer = h_fmt("http://127.0.0.1:%d", m->peer_port);
        char *argv[] = {
            (char *)bin,
            "--name",
            m->name,
            "--data-dir",
            (char *)h_path(h_fmt("%s.etcd", m->name)),
            "--listen-client-urls",
            m->url,
            "--advertise-client-urls",
            m->url,
            "--listen-peer-urls",
            (char *)peer,
            "--initial-advertise-peer-urls",
            (char *)peer,
            "--initial-cluster",
            initial,
            "--initial-cluster-state",
            "new",
            "--initial-cluster-token",
            (char *)h_fmt("xf-%d", (int)getpid()),
            /* Loopback: quick elections (losing the leader costs about a second), yet slow enough
             * that a member starved of CPU (sanitizer builds, three tests at once on two cores)
             * keeps its leader. */
            "--heartbeat-interval",
            "100",
            "--election-timeout",
            "1000",
            "--logger",
            "zap",
            "--log-outputs",
            "stderr",
            NULL,
        };

        m->argv = h_alloc(sizeof(argv));
        memcpy(m->argv, argv, sizeof(argv));
        h_etcd_spawn(m);
    }
    for (size_t k = 0; k < n; k++)
        h_etcd_wait(&h_etcd[k]);
}

void
h_etcd_kill(struct h_etcd_member *m)
{
    h_proc_stop(m->proc, SIGKILL, 5000);
}

/* POSTs `body` to `path` on m over a raw connection (for what the client has no call for);
 * returns the 200's body (harness-owned). */
const char *
h_etcd_post(const struct h_etcd_member *m, const char *path, const char *body)
{
    struct h_conn *c = h_connect(m->client_port);
    struct h_msg msg;

    cr_assert(eq(int,
                 h_sendf(c, "POST %s HTTP/1.1\r\nHost: etcd\r\nContent-Length: %zu\r\n\r\n%s", path,
                         strlen(body), body),
                 0));
    cr_assert(eq(int, h_read_response(c, &msg), 0), "no answer to %s", path);
    cr_assert(eq(int, msg.status, 200), "%s refused: %s", path, msg.body);
    h_close(c);
    return msg.body;
}

/* The quoted value after "name": in a JSON text (etcd's ids are strings), or "". */
static const char *
h_etcd_json_str(const char *body, const char *name)
{
    const char *p = strstr(body, h_fmt("\"%s\":\"", name));

    if (p == NULL)
        return "";
    p += strlen(name) + 4;
    return h_fmt("%.*s", (int)strcspn(p, "\""), p);
}

/* Whether m is the leader now (its status names itself). The ids are compared as text: they are
 * unsigned 64-bit numbers, half of them past what an int64 holds. */
bool
h_etcd_is_leader(const struct h_etcd_member *m)
{
    const char *body = h_etcd_post(m, "/v3/maintenance/status", "{}");
    const char *self = h_etcd_json_str(body, "member_id");

    return *self != '\0' && strcmp(self, h_etcd_json_str(body, "leader")) == 0;
}

size_t
h_etcd_leader(void)
{
    uint64_t end = h_now_ms() + H_ETCD_WAIT_MS;

    for (;;) {
        for (size_t k = 0; k < h_etcd_n; k++)
            if (h_proc_alive(h_etcd[k].proc) && h_try_connect(h_etcd[k].client_port, 200) == 0 &&
                h_etcd_is_leader(&h_etcd[k]))
                return k;
        cr_assert(lt(u64, h_now_ms(), end), "no etcd leader elected");
        h_sleep_ms(50);
    }
}

const char *
h_etcd_endpoints_yaml(void)
{
    const char *s = "[";

    for (size_t k = 0; k < h_etcd_n; k++)
        s = h_fmt("%s%s\"%s\"", s, k > 0 ? ", " : "", h_etcd[k].url);
    return h_fmt("%s]", s);
}
