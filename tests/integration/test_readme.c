/* tests/integration/test_readme.c -- the README's one-minute tour, run exactly as written. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/harness.h"

/* The tour's shell runs in a process group of its own: everything it started (upstreams,
 * crossfade, xfbench) is killed with it at teardown, whatever became of the test. */
static pid_t readme_pgid;

static void
readme_fini(void)
{
    if (readme_pgid > 0) {
        kill(-readme_pgid, SIGKILL);
        while (waitpid(-readme_pgid, NULL, WNOHANG) > 0)
            ;
        readme_pgid = 0;
    }
    h_teardown();
}

TestSuite(readme, .init = h_setup, .fini = readme_fini);

/* The top of the source tree: $XF_SRC (the Makefile sets it), else the current directory. */
static const char *
readme_src(void)
{
    const char *src = getenv("XF_SRC");

    return src != NULL && *src != '\0' ? src : ".";
}

/* The shell block under `heading` in README.md (harness-owned). */
static const char *
readme_block(const char *heading)
{
    char *text = h_read_file(h_fmt("%s/README.md", readme_src()), NULL);
    const char *at, *start, *end;

    cr_assert(ne(ptr, text, NULL), "cannot read %s/README.md", readme_src());
    at = strstr(text, heading);
    cr_assert(ne(ptr, (void *)at, NULL), "README.md has no \"%s\"", heading);
    start = strstr(at, "```sh\n");
    cr_assert(ne(ptr, (void *)start, NULL), "no ```sh block under \"%s\"", heading);
    start += 6;
    end = strstr(start, "```");
    cr_assert(ne(ptr, (void *)end, NULL), "the block under \"%s\" does not end", heading);
    return h_fmt("%.*s", (int)(end - start), start);
}

/* Whether $XF_BIN is the plain build's bin/ of the tree, the one the tour's commands run. */
static bool
readme_runs_these_binaries(void)
{
    const char *bin = getenv("XF_BIN");
    char want[PATH_MAX], got[PATH_MAX];

    if (bin == NULL || *bin == '\0')
        return true; /* the harness then runs bin/ too */
    return realpath(h_fmt("%s/bin", readme_src()), want) != NULL && realpath(bin, got) != NULL &&
           strcmp(want, got) == 0;
}

Test(readme, the_one_minute_tour_runs_as_written, .timeout = 120)
{
    static const int ports[] = {8000, 9101, 9102, 9201, 9202};
    const char *script, *log;
    uint64_t deadline = h_now_ms() + 100000;
    int status = 0, fd;
    bool ok;
    pid_t pid;

    /* The tour runs `make` and bin/ as a reader would, whatever XF_BIN says: against the
     * sanitizer builds it would run the plain binaries again, for 10 s, proving nothing more. */
    if (!readme_runs_these_binaries())
        cr_skip_test("the tour runs bin/, not XF_BIN (%s): the plain run covers it",
                     getenv("XF_BIN"));
    script = h_write_file("tour.sh", "%s", readme_block("## A one-minute tour"));
    log = h_path("tour.log");
    /* The tour uses fixed ports: a demo or another tour running now would take them. */
    for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++)
        cr_assert(ne(int, h_try_connect(ports[i], 200), 0),
                  "port %d is taken: the tour cannot run now (is a demo running?)", ports[i]);
    fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert(ne(int, fd, -1), "%s: %s", log, strerror(errno));
    pid = fork();
    cr_assert(ne(int, pid, -1));
    if (pid == 0) {
        setpgid(0, 0);
        if (chdir(readme_src()) == -1)
            _exit(126);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        /* The tour's make must not talk to the jobserver of the make that runs the tests. */
        unsetenv("MAKEFLAGS");
        unsetenv("MFLAGS");
        unsetenv("MAKELEVEL");
        execl("/bin/bash", "bash", "-e", "-x", script, (char *)NULL);
        _exit(127);
    }
    close(fd);
    setpgid(pid, pid);
    readme_pgid = pid;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        cr_assert(lt(u64, h_now_ms(), deadline), "the tour still runs after 100 s; it printed:\n%s",
                  h_read_file(log, NULL));
        h_sleep_ms(50); /* a poll of the shell's exit, not a wait for something else */
    }
    ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    cr_assert(ok, "the tour failed (bash -e, status %d); it printed:\n%s", status,
              h_read_file(log, NULL));
    /* It did what it says: the check passed and the audit trail holds the rollout. */
    cr_assert(ne(ptr, strstr(h_read_file(log, NULL), "check:     passed"), NULL),
              "xfbench's check did not pass:\n%s", h_read_file(log, NULL));
    cr_assert(
        ne(ptr, strstr(h_read_file(log, NULL), "\"set weight 50\" weight 0.00 -> 50.00"), NULL),
        "show events lacks the rollout:\n%s", h_read_file(log, NULL));
    /* Its last lines stopped everything it started: the ports are free again. */
    for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
        uint64_t until = h_now_ms() + 5000;

        while (h_try_connect(ports[i], 200) == 0 && h_now_ms() < until)
            h_sleep_ms(20); /* the processes exit right after the signal */
        cr_assert(ne(int, h_try_connect(ports[i], 200), 0),
                  "port %d still answers after the tour's kill lines", ports[i]);
    }
}
