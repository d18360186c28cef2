/* tests/integration/test_command_line.c -- crossfade's options and its config file. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/harness.h"

TestSuite(command_line, .init = h_setup, .fini = h_teardown);

/* A valid config with its listen port in *port. */
static const char *
good_config(const char *file, int *port)
{
    *port = h_free_port();
    return h_proxy_write_config(file, &(struct h_proxy_opts){.x = {{h_free_port()}}}, *port);
}

/* The good config with the key "timeouts" misspelt "timeout"; *line is the line of that key. */
static const char *
bad_config(int *port, int *line)
{
    const char *good = h_read_file(good_config("good.yaml", port), NULL);
    const char *at = strstr(good, "\ntimeouts:");

    cr_assert(ne(ptr, (void *)at, NULL));
    *line = 2;
    for (const char *p = good; p < at; p++)
        *line += *p == '\n';
    return h_write_file("bad.yaml", "%.*stimeout:%s", (int)(at + 1 - good), good,
                        at + 1 + strlen("timeouts:"));
}

Test(command_line, check_mode_accepts_a_good_config_and_exits_0, .timeout = H_TEST_TIMEOUT)
{
    int port;
    const char *cfg = good_config("good.yaml", &port);
    char *out, *err;
    int code = h_run((char *[]){(char *)h_bin("crossfade"), "-t", "-c", (char *)cfg, NULL}, 10000,
                     &out, &err);

    cr_assert(eq(int, code, 0), "crossfade -t exited %d: %s", code, err);
}

Test(command_line, check_mode_names_file_line_column_and_the_right_key_for_an_unknown_key,
     .timeout = H_TEST_TIMEOUT)
{
    int port, line;
    const char *cfg = bad_config(&port, &line);
    char *out, *err;
    int code = h_run((char *[]){(char *)h_bin("crossfade"), "-t", "-c", (char *)cfg, NULL}, 10000,
                     &out, &err);
    const char *where = h_fmt("bad.yaml:%d:1:", line);

    cr_assert(eq(int, code, 2), "crossfade -t on a bad config exited %d", code);
    cr_assert(ne(ptr, strstr(err, where), NULL), "stderr does not name %s:\n%s", where, err);
    cr_assert(ne(ptr, strstr(err, "timeouts"), NULL), "stderr does not suggest timeouts:\n%s", err);
}

Test(command_line, a_bad_config_starts_nothing_and_exits_2, .timeout = H_TEST_TIMEOUT)
{
    int port, line;
    const char *cfg = bad_config(&port, &line);
    char *err;
    int code =
        h_run((char *[]){(char *)h_bin("crossfade"), "-c", (char *)cfg, NULL}, 10000, NULL, &err);

    cr_assert(eq(int, code, 2), "crossfade -c on a bad config exited %d:\n%s", code, err);
    cr_assert(eq(int, h_try_connect(port, 1000), ECONNREFUSED), "its listen port accepts");
    cr_assert(ne(int, access(h_path("admin.sock"), F_OK), 0), "the admin socket was created");
    cr_assert(ne(int, access(h_path("access.log"), F_OK), 0), "the access log was created");
}

Test(command_line, version_prints_a_version_and_exits_0, .timeout = H_TEST_TIMEOUT)
{
    char *out, *err;
    int code = h_run((char *[]){(char *)h_bin("crossfade"), "--version", NULL}, 10000, &out, &err);

    cr_assert(eq(int, code, 0), "crossfade --version exited %d: %s", code, err);
    cr_assert(gt(sz, strlen(out), (size_t)0), "crossfade --version printed nothing on stdout");
}

Test(command_line, help_describes_the_options_and_exits_0, .timeout = H_TEST_TIMEOUT)
{
    char *out, *err;
    int code = h_run((char *[]){(char *)h_bin("crossfade"), "--help", NULL}, 10000, &out, &err);

    cr_assert(eq(int, code, 0), "crossfade --help exited %d: %s", code, err);
    cr_assert(ne(ptr, strstr(h_fmt("%s%s", out, err), "-c"), NULL),
              "the help does not mention -c:\n%s%s", out, err);
}
