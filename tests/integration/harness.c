/* tests/integration/harness.c -- real binaries and fake upstreams on loopback, for the tests. */
#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <criterion/new/assert.h>
#include <xxhash.h>
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

#include "common/xf.h"

#define H_MAX_PROCS       32
#define H_MAX_HEAD        (1u << 20)   /* a response head larger than this is an error */
#define H_MAX_BODY_BUFFER (256u << 20) /* a buffered body larger than this needs a sink */
#define H_FAKE_MAX_CONNS  64
#define H_LOG_TAIL        (32u << 10) /* how much of each log a failed test prints */

extern char **environ;

/* A harness-owned allocation: every block is freed at teardown. */
struct h_block {
    struct h_block *next;
    struct h_block *prev;
    max_align_t data[];
};

/* One test's state. Criterion runs each test in its own process, so this is per test. */
static struct {
    char dir[PATH_MAX];
    bool own_dir; /* created here, not under the runner's XF_IT_DIR: removed at teardown */
    struct h_block *blocks;
    struct h_proc *procs[H_MAX_PROCS];
    size_t n_procs;
    struct h_conn *conns;
    struct h_fake *fakes;
    unsigned n_runs;
} h_state;

static void h_fake_stop(struct h_fake *f);

/* ------------------------------------------------------------------ memory */

void *
h_alloc(size_t n)
{
    struct h_block *b = calloc(1, sizeof(*b) + n + 1);

    cr_assert(ne(ptr, b, NULL), "out of memory (%zu bytes)", n);
    b->next = h_state.blocks;
    if (b->next != NULL)
        b->next->prev = b;
    h_state.blocks = b;
    return b->data;
}

void *
h_realloc(void *p, size_t n)
{
    struct h_block *b, *nb;

    if (p == NULL)
        return h_alloc(n);
    b = (struct h_block *)((char *)p - offsetof(struct h_block, data));
    nb = realloc(b, sizeof(*b) + n + 1);
    cr_assert(ne(ptr, nb, NULL), "out of memory (%zu bytes)", n);
    if (nb->prev != NULL)
        nb->prev->next = nb;
    else
        h_state.blocks = nb;
    if (nb->next != NULL)
        nb->next->prev = nb;
    return nb->data;
}

static void
h_free_all(void)
{
    while (h_state.blocks != NULL) {
        struct h_block *b = h_state.blocks;

        h_state.blocks = b->next;
        free(b);
    }
}

static char *
h_vfmt(const char *fmt, va_list ap)
{
    va_list ap2;
    int n;
    char *s;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    cr_assert(ge(int, n, 0), "bad format");
    s = h_alloc((size_t)n + 1);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

char *
h_fmt(const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    s = h_vfmt(fmt, ap);
    va_end(ap);
    return s;
}

const char *
h_memcasemem(const char *hay, size_t hay_len, const char *needle)
{
    size_t n = strlen(needle);

    if (n == 0)
        return hay;
    for (size_t i = 0; i + n <= hay_len; i++)
        if (strncasecmp(hay + i, needle, n) == 0)
            return hay + i;
    return NULL;
}

uint64_t
h_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void
h_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

uint64_t
h_big_bytes(void)
{
    const char *s = getenv("XF_TEST_BIG_MB");
    unsigned long long mb = 1024;

    if (s != NULL && *s != '\0')
        mb = strtoull(s, NULL, 10);
    if (mb == 0)
        mb = 1;
    return (uint64_t)mb << 20;
}

/* 26 * 2560 bytes of the pattern starting at 'a': any phase and 64 KiB after it fit in. */
static char h_pattern_table[26 * 2560];

static void
h_pattern_init(void)
{
    if (h_pattern_table[0] == 'a')
        return;
    for (size_t i = 0; i < sizeof(h_pattern_table); i++)
        h_pattern_table[i] = (char)('a' + i % 26);
}

void
h_pattern_fill(char *buf, size_t len, uint64_t offset)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)('a' + (offset + i) % 26);
}

long long
h_pattern_check(const char *data, size_t len, uint64_t offset)
{
    size_t done = 0;

    h_pattern_init();
    while (done < len) {
        size_t phase = (size_t)((offset + done) % 26);
        size_t n = XF_MIN(len - done, sizeof(h_pattern_table) - 26);

        if (memcmp(data + done, h_pattern_table + phase, n) != 0) {
            for (size_t i = 0; i < n; i++)
                if (data[done + i] != h_pattern_table[phase + i])
                    return (long long)(done + i);
        }
        done += n;
    }
    return -1;
}

int
h_count_parse(const char *body, uint64_t *bytes, uint64_t *xxh64)
{
    unsigned long long b, x;
    int end = 0;

    if (body == NULL || sscanf(body, "bytes=%llu xxh64=%llx%n", &b, &x, &end) != 2 ||
        strcmp(body + end, "\n") != 0)
        return -1;
    *bytes = b;
    *xxh64 = x;
    return 0;
}

/* ------------------------------------------------------------------ directories and files */

/* The scratch directory of one test: a short hash of its name under the run's directory. */
static void
h_test_dir_name(const char *base, const char *suite, const char *test, char *out, size_t out_len)
{
    char key[512];
    int n = snprintf(key, sizeof(key), "%s::%s", suite, test);

    snprintf(out, out_len, "%s/%016llx", base,
             (unsigned long long)XXH64(key, (size_t)XF_MIN((size_t)n, sizeof(key) - 1), 0));
}

const char *
h_dir(void)
{
    const char *base = getenv("XF_IT_DIR");

    if (h_state.dir[0] != '\0')
        return h_state.dir;
    if (base != NULL && *base != '\0') {
        h_test_dir_name(base, criterion_current_test->category, criterion_current_test->name,
                        h_state.dir, sizeof(h_state.dir));
        if (mkdir(h_state.dir, 0700) == -1 && errno != EEXIST)
            cr_fatal("mkdir %s: %s", h_state.dir, strerror(errno));
    } else {
        snprintf(h_state.dir, sizeof(h_state.dir), "/tmp/xf-it-XXXXXX");
        if (mkdtemp(h_state.dir) == NULL)
            cr_fatal("mkdtemp: %s", strerror(errno));
        h_state.own_dir = true;
    }
    return h_state.dir;
}

const char *
h_path(const char *name)
{
    return h_fmt("%s/%s", h_dir(), name);
}

const char *
h_write_file(const char *name, const char *fmt, ...)
{
    const char *path = h_path(name);
    va_list ap;
    char *text;
    FILE *f;

    va_start(ap, fmt);
    text = h_vfmt(fmt, ap);
    va_end(ap);
    f = fopen(path, "we");
    cr_assert(ne(ptr, f, NULL), "fopen %s: %s", path, strerror(errno));
    fputs(text, f);
    cr_assert(eq(int, fclose(f), 0), "writing %s: %s", path, strerror(errno));
    return path;
}

char *
h_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "re");
    char *buf = NULL;
    size_t n = 0, cap = 0, got;

    if (len != NULL)
        *len = 0;
    if (f == NULL)
        return NULL;
    do {
        if (cap - n < 4096) {
            cap = cap * 2 + 8192;
            buf = h_realloc(buf, cap);
        }
        got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
    } while (got > 0);
    fclose(f);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

static int
h_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    XF_UNUSED(st);
    XF_UNUSED(flag);
    XF_UNUSED(ftw);
    remove(path);
    return 0;
}

static void
h_rm_rf(const char *path)
{
    nftw(path, h_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ------------------------------------------------------------------ runner hooks */

/*
 * These run in Criterion's runner process, not in the tests: the runner makes one directory for
 * the run, each test process makes its own under it, and after each test the runner prints that
 * directory's logs when the test failed (a timed-out or crashed test never reaches its .fini), then
 * removes it. XF_KEEP_TEST_DIRS=1 keeps everything.
 */
static char h_run_dir[PATH_MAX];

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    XF_UNUSED(set);
#ifdef __SANITIZE_ADDRESS__
    /*
     * The runner's own allocations from here to POST_ALL are not leak-checked: Criterion 2.4.1
     * (its BoxFort) loses a 48-byte timeout request when a test with a .timeout ends, which would
     * fail the sanitizer run after every test passed. The tests run in processes of their own,
     * whose leaks are still reported.
     */
    __lsan_disable();
#endif
    snprintf(h_run_dir, sizeof(h_run_dir), "/tmp/xf-it-XXXXXX");
    if (mkdtemp(h_run_dir) == NULL) {
        h_run_dir[0] = '\0';
        return;
    }
    setenv("XF_IT_DIR", h_run_dir, 1);
}

static void
h_dump_tail(const char *path)
{
    FILE *f = fopen(path, "re");
    long size;
    char buf[4096];
    size_t n;

    if (f == NULL)
        return;
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    if (size > (long)H_LOG_TAIL)
        fseek(f, size - (long)H_LOG_TAIL, SEEK_SET);
    else
        fseek(f, 0, SEEK_SET);
    fprintf(stderr, "---- %s (%ld bytes%s) ----\n", path, size,
            size > (long)H_LOG_TAIL ? ", the end" : "");
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        fwrite(buf, 1, n, stderr);
    fprintf(stderr, "---- end of %s ----\n", path);
    fclose(f);
}

static int
h_dump_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    size_t n = strlen(path);

    XF_UNUSED(ftw);
    if (flag == FTW_F && S_ISREG(st->st_mode) && n > 4 && strcmp(path + n - 4, ".log") == 0)
        h_dump_tail(path);
    return 0;
}

static void
h_runner_after_test(struct criterion_test_stats *stats)
{
    char dir[PATH_MAX + 32];
    struct stat st;
    bool failed;

    if (h_run_dir[0] == '\0' || stats == NULL || stats->test == NULL)
        return;
    h_test_dir_name(h_run_dir, stats->test->category, stats->test->name, dir, sizeof(dir));
    if (stat(dir, &st) == -1)
        return;
    failed = stats->test_status == CR_STATUS_FAILED || stats->crashed || stats->timed_out ||
             stats->failed_asserts > 0;
    if (failed) {
        fprintf(stderr, "==== logs of %s::%s (%s) ====\n", stats->test->category, stats->test->name,
                dir);
        nftw(dir, h_dump_entry, 16, FTW_PHYS);
    }
    if (getenv("XF_KEEP_TEST_DIRS") == NULL)
        h_rm_rf(dir);
}

ReportHook(POST_FINI)(struct criterion_test_stats *stats)
{
    h_runner_after_test(stats);
}

ReportHook(TEST_CRASH)(struct criterion_test_stats *stats)
{
    h_runner_after_test(stats);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    XF_UNUSED(stats);
    if (h_run_dir[0] != '\0' && getenv("XF_KEEP_TEST_DIRS") == NULL)
        h_rm_rf(h_run_dir);
#ifdef __SANITIZE_ADDRESS__
    __lsan_enable();
#endif
}

/* ------------------------------------------------------------------ set-up and tear-down */

void
h_setup(void)
{
    /* A write to a socket the proxy closed must fail with EPIPE, not kill the test. */
    signal(SIGPIPE, SIG_IGN);
    memset(&h_state, 0, sizeof(h_state));
    /* A process that a test's crossfade starts (`reexec`) outlives its parent: it comes to the
     * test process, which can wait for it and stops it at teardown. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
}

/* Kills and reaps every child of the test process still there: the orphans that came to it as
 * a subreaper and were never registered (h_adopt). */
static void
h_reap_orphans(void)
{
    for (int round = 0; round < 3; round++) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        bool found = false;

        if (d == NULL)
            return;
        while ((e = readdir(d)) != NULL) {
            char path[64], buf[512], *rp;
            long pid = strtol(e->d_name, NULL, 10), ppid;
            FILE *f;

            if (pid <= 0)
                continue;
            snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
            f = fopen(path, "re");
            if (f == NULL)
                continue;
            rp = fgets(buf, sizeof(buf), f) != NULL ? strrchr(buf, ')') : NULL;
            fclose(f);
            /* "pid (comm) state ppid ...": comm may hold anything but not after its last ')'. */
            if (rp == NULL || sscanf(rp + 1, " %*c %ld", &ppid) != 1 || ppid != (long)getpid())
                continue;
            found = true;
            kill((pid_t)pid, SIGKILL);
            waitpid((pid_t)pid, NULL, 0);
        }
        closedir(d);
        if (!found)
            return;
    }
}

struct h_proc *
h_adopt(const char *name, pid_t pid, const char *log_path)
{
    struct h_proc *p = h_alloc(sizeof(*p));

    cr_assert(lt(sz, h_state.n_procs, (size_t)H_MAX_PROCS), "too many processes in one test");
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->log_path, sizeof(p->log_path), "%s", log_path);
    p->pid = pid;
    h_state.procs[h_state.n_procs++] = p;
    return p;
}

/* Admin socket connections the test opened (h_admin_connect), closed at teardown. */
static int h_admin_fds[32];
static size_t h_admin_n_fds;

void
h_teardown(void)
{
    for (struct h_conn *c = h_state.conns; c != NULL; c = c->next)
        h_close(c);
    for (size_t i = 0; i < h_admin_n_fds; i++)
        close(h_admin_fds[i]);
    h_admin_n_fds = 0;
    for (size_t i = 0; i < h_state.n_procs; i++) {
        struct h_proc *p = h_state.procs[i];

        if (!p->reaped && p->pid > 0) {
            kill(p->pid, SIGKILL);
            h_proc_wait(p, 5000);
        }
    }
    while (h_state.fakes != NULL)
        h_fake_stop(h_state.fakes);
    h_reap_orphans();
    if (h_state.own_dir && getenv("XF_KEEP_TEST_DIRS") == NULL)
        h_rm_rf(h_state.dir);
    h_free_all();
    memset(&h_state, 0, sizeof(h_state));
}

/* ------------------------------------------------------------------ processes */

const char *
h_bin(const char *name)
{
    const char *bin = getenv("XF_BIN");

    if (bin == NULL || *bin == '\0')
        bin = "bin";
    return h_fmt("%s/%s", bin, name);
}

/* The environment of a child: ours with `extra` ("KEY=VALUE") replacing same-named entries. */
static char **
h_child_env(char *const extra[])
{
    size_t n = 0, n_extra = 0, k = 0;
    char **env;

    while (environ[n] != NULL)
        n++;
    while (extra != NULL && extra[n_extra] != NULL)
        n_extra++;
    env = h_alloc((n + n_extra + 1) * sizeof(*env));
    for (size_t i = 0; i < n; i++) {
        bool replaced = false;

        for (size_t j = 0; j < n_extra; j++) {
            size_t key = strcspn(extra[j], "=");

            if (strncmp(environ[i], extra[j], key + 1) == 0)
                replaced = true;
        }
        if (!replaced)
            env[k++] = environ[i];
    }
    for (size_t j = 0; j < n_extra; j++)
        env[k++] = extra[j];
    env[k] = NULL;
    return env;
}

/* h_spawn, with stdout and stderr apart, and RLIMIT_NOFILE set to `nofile` unless 0. */
static struct h_proc *
h_spawn_io(const char *name, char *const argv[], const char *out_path, const char *err_path,
           char *const env_extra[], unsigned nofile)
{
    struct h_proc *p = h_alloc(sizeof(*p));
    char **env = h_child_env(env_extra);
    pid_t parent = getpid();
    int devnull, out_fd, err_fd;

    cr_assert(lt(sz, h_state.n_procs, (size_t)H_MAX_PROCS), "too many processes in one test");
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->log_path, sizeof(p->log_path), "%s", err_path);
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    out_fd = open(out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    err_fd = strcmp(out_path, err_path) == 0
                 ? dup(out_fd)
                 : open(err_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    cr_assert(devnull >= 0 && out_fd >= 0 && err_fd >= 0, "open %s: %s", out_path, strerror(errno));
    p->pid = fork();
    if (p->pid == 0) {
        struct sigaction sa;
        sigset_t none;

        /* Die with the test process, even when a timeout kills it before its .fini. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent)
            _exit(127);
        /* Signals ignored here (SIGPIPE) would stay ignored across exec: give back defaults. */
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; sig++)
            sigaction(sig, &sa, NULL);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (dup2(devnull, 0) == -1 || dup2(out_fd, 1) == -1 || dup2(err_fd, 2) == -1)
            _exit(127);
        /* Neither Criterion's pipes nor the fake upstreams' sockets may leak into the child. */
        close_range(3, ~0u, 0);
        if (nofile != 0) {
            struct rlimit rl = {.rlim_cur = nofile, .rlim_max = nofile};

            if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
                _exit(127);
        }
        execve(argv[0], argv, env);
        _exit(127);
    }
    close(devnull);
    close(out_fd);
    close(err_fd);
    cr_assert(gt(int, p->pid, 0), "fork: %s", strerror(errno));
    h_state.procs[h_state.n_procs++] = p;
    return p;
}

struct h_proc *
h_spawn(const char *name, char *const argv[], const char *log_path, char *const env_extra[])
{
    return h_spawn_io(name, argv, log_path, log_path, env_extra, 0);
}

int
h_proc_wait(struct h_proc *p, int timeout_ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);

    if (p->reaped)
        return p->code;
    for (;;) {
        int st;
        pid_t r = waitpid(p->pid, &st, WNOHANG);

        if (r == p->pid) {
            p->reaped = true;
            p->code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            return p->code;
        }
        if (r == -1 && errno != EINTR) {
            p->reaped = true;
            p->code = -1;
            return -1;
        }
        if (h_now_ms() >= deadline)
            return -1;
        h_sleep_ms(5);
    }
}

int
h_proc_stop(struct h_proc *p, int sig, int timeout_ms)
{
    int code;

    if (p->reaped)
        return p->code;
    kill(p->pid, sig);
    code = h_proc_wait(p, timeout_ms);
    if (code == -1 && !p->reaped) {
        kill(p->pid, SIGKILL);
        h_proc_wait(p, 5000);
        return -1;
    }
    return code;
}

bool
h_proc_alive(struct h_proc *p)
{
    return h_proc_wait(p, 0) == -1 && !p->reaped;
}

int
h_run(char *const argv[], int timeout_ms, char **out, char **err)
{
    unsigned n = ++h_state.n_runs;
    const char *out_path = h_path(h_fmt("run%u.stdout.log", n));
    const char *err_path = h_path(h_fmt("run%u.stderr.log", n));
    struct h_proc *p = h_spawn_io(argv[0], argv, out_path, err_path, NULL, 0);
    int code = h_proc_wait(p, timeout_ms);

    if (code == -1 && !p->reaped) {
        kill(p->pid, SIGKILL);
        h_proc_wait(p, 5000);
        code = -1;
    }
    if (out != NULL)
        *out = h_read_file(out_path, NULL);
    if (err != NULL)
        *err = h_read_file(err_path, NULL);
    return code;
}

long
h_rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "re");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    fclose(f);
    return kib;
}

long long
h_cpu_ms(pid_t pid)
{
    char path[64], buf[1024];
    unsigned long long utime, stime;
    const char *p;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return -1;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and parentheses: count from the last ')'. After
     * it come state (3) ... utime (14) and stime (15). */
    p = strrchr(buf, ')');
    if (p == NULL || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                            &stime) != 2)
        return -1;
    return (long long)((utime + stime) * 1000u / (unsigned long long)sysconf(_SC_CLK_TCK));
}

/* ------------------------------------------------------------------ ports */

static struct sockaddr_in
h_loopback(int port)
{
    struct sockaddr_in sa;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sa;
}

/* Binds 127.0.0.1:0 and listens; returns the fd and the port in *port. */
static int
h_listen_any(int *port)
{
    struct sockaddr_in sa = h_loopback(0);
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    cr_assert(ge(int, fd, 0), "socket: %s", strerror(errno));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 || listen(fd, 128) == -1 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) == -1)
        cr_fatal("bind/listen on 127.0.0.1:0: %s", strerror(errno));
    *port = ntohs(sa.sin_port);
    return fd;
}

int
h_free_port(void)
{
    int port;
    int fd = h_listen_any(&port);

    close(fd);
    return port;
}

/* A non-blocking connect bounded by timeout_ms: the fd, or -1 with errno. */
static int
h_connect_fd(int port, int timeout_ms)
{
    struct sockaddr_in sa = h_loopback(port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    socklen_t len = sizeof(int);
    int one = 1, err = 0, r;

    if (fd == -1)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
        return fd;
    if (errno != EINPROGRESS)
        goto fail;
    r = poll(&pfd, 1, timeout_ms);
    if (r == 0)
        errno = ETIMEDOUT;
    if (r <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
        goto fail;
    if (err == 0)
        return fd;
    errno = err;
fail:
    err = errno;
    close(fd);
    errno = err;
    return -1;
}

int
h_try_connect(int port, int timeout_ms)
{
    int fd = h_connect_fd(port, timeout_ms);

    if (fd == -1)
        return errno;
    close(fd);
    return 0;
}

/* Keeps `fd` open until the end of the test: it is closed with the test's connections. */
static void
h_keep_fd(int fd)
{
    struct h_conn *c = h_alloc(sizeof(*c));

    c->fd = fd;
    c->next = h_state.conns;
    h_state.conns = c;
}

int
h_blackhole_start(void)
{
    struct sockaddr_in sa = h_loopback(0);
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct pollfd pfd[4];
    int port, err;

    cr_assert(ge(int, fd, 0), "socket: %s", strerror(errno));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 || listen(fd, 0) == -1 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) == -1)
        cr_fatal("bind/listen on 127.0.0.1:0: %s", strerror(errno));
    port = ntohs(sa.sin_port);
    h_keep_fd(fd);
    /* Connections that complete and are never accepted fill the queue; the kernel then drops
     * further SYNs, and their connects wait. */
    for (int i = 0; i < 4; i++) {
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        cr_assert(ge(int, c, 0), "socket: %s", strerror(errno));
        if (connect(c, (struct sockaddr *)&sa, sizeof(sa)) == -1 && errno != EINPROGRESS)
            cr_fatal("connect to 127.0.0.1:%d: %s", port, strerror(errno));
        h_keep_fd(c);
        pfd[i] = (struct pollfd){.fd = c, .events = POLLOUT};
    }
    /* The queue is full once one of them completed (backlog 0 holds one). */
    cr_assert(gt(int, poll(pfd, 4, H_IO_TIMEOUT_MS), 0),
              "none of 4 connects to a listener completed within %d ms", H_IO_TIMEOUT_MS);
    err = h_try_connect(port, 300);
    cr_assert(eq(int, err, ETIMEDOUT),
              "a connect to a full listen queue did not time out (%s): the test needs a kernel "
              "that drops SYNs then",
              err == 0 ? "it was accepted" : strerror(err));
    return port;
}

/* Whether a line of /proc/net/tcp is a loopback socket with those ports (0: any); its state and
 * receive queue in *state and *rx. */
static bool
h_tcp_line(const char *line, int local_port, int remote_port, int *state, unsigned long *rx)
{
    unsigned laddr, lport, raddr, rport, st;
    unsigned long tx;

    if (sscanf(line, " %*u: %8X:%4X %8X:%4X %2X %8lX:%8lX", &laddr, &lport, &raddr, &rport, &st,
               &tx, rx) != 7)
        return false;
    *state = (int)st;
    /* The addresses are printed as the 32 bits in memory, that is in network order. */
    return laddr == htonl(INADDR_LOOPBACK) && raddr == htonl(INADDR_LOOPBACK) &&
           (local_port == 0 || (int)lport == local_port) &&
           (remote_port == 0 || (int)rport == remote_port);
}

/* Whether /proc/net/tcp has a matching socket in `state` (0: any) with rx_min bytes to read. */
static bool
h_tcp_scan(int local_port, int remote_port, int state, unsigned long rx_min)
{
    FILE *f = fopen("/proc/net/tcp", "re");
    char line[512];
    bool found = false;

    cr_assert(ne(ptr, f, NULL), "/proc/net/tcp: %s", strerror(errno));
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        unsigned long rx = 0;
        int st;

        found = h_tcp_line(line, local_port, remote_port, &st, &rx) &&
                (state == 0 || st == state) && rx >= rx_min;
    }
    fclose(f);
    return found;
}

bool
h_tcp_wait(int local_port, int remote_port, int state, unsigned long rx_min, int timeout_ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;

    while (!h_tcp_scan(local_port, remote_port, state, rx_min)) {
        if (h_now_ms() >= deadline)
            return false;
        h_sleep_ms(5);
    }
    return true;
}

/* Waits until the process accepts on `port` (0), or exits or takes too long (-1). */
static int
h_wait_ready(struct h_proc *p, int port, int timeout_ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;

    while (h_now_ms() < deadline) {
        if (!h_proc_alive(p))
            return -1;
        if (h_try_connect(port, 500) == 0)
            return 0;
        h_sleep_ms(10);
    }
    return -1;
}

/* After a failed start: whether the log says the port was taken (then try another port). */
static bool
h_port_was_taken(struct h_proc *p)
{
    size_t len;
    char *log = h_read_file(p->log_path, &len);

    return !h_proc_alive(p) && log != NULL && h_memcasemem(log, len, "in use") != NULL;
}

static const char *
h_log_tail(const char *path)
{
    size_t len;
    char *log = h_read_file(path, &len);

    if (log == NULL)
        return "(no log)";
    return len > 2000 ? log + len - 2000 : log;
}

/* ------------------------------------------------------------------ xf-upstream */

/* A hint for failure messages when a binary is missing. */
static const char *
h_bin_note(const char *path)
{
    return access(path, X_OK) == 0 ? path : h_fmt("%s is missing: run make", path);
}

struct h_upstream *
h_upstream_start(const char *name, const struct h_upstream_opts *opts)
{
    struct h_upstream *u = h_alloc(sizeof(*u));
    const char *log = h_path(h_fmt("upstream-%s.log", name));
    struct h_upstream_opts none = {0};

    if (opts == NULL)
        opts = &none;
    snprintf(u->name, sizeof(u->name), "%s", name);
    for (int attempt = 0; attempt < 3; attempt++) {
        char *argv[20];
        int k = 0;

        u->port = opts->port != 0 ? opts->port : h_free_port();
        snprintf(u->addr, sizeof(u->addr), "127.0.0.1:%d", u->port);
        argv[k++] = (char *)h_bin("xf-upstream");
        argv[k++] = "--listen";
        argv[k++] = u->addr;
        argv[k++] = "--name";
        argv[k++] = u->name;
        if (opts->delay_ms > 0) {
            argv[k++] = "--delay";
            argv[k++] = h_fmt("%u", opts->delay_ms);
        }
        if (opts->error_rate > 0) {
            argv[k++] = "--error-rate";
            argv[k++] = h_fmt("%g", opts->error_rate);
        }
        if (opts->close_rate > 0) {
            argv[k++] = "--close-rate";
            argv[k++] = h_fmt("%g", opts->close_rate);
        }
        if (opts->body_bytes > 0) {
            argv[k++] = "--body-bytes";
            argv[k++] = h_fmt("%llu", (unsigned long long)opts->body_bytes);
        }
        if (opts->idle_close_ms > 0) {
            argv[k++] = "--idle-close";
            argv[k++] = h_fmt("%u", opts->idle_close_ms);
        }
        argv[k] = NULL;
        u->proc = h_spawn(h_fmt("xf-upstream %s", name), argv, log, NULL);
        if (h_wait_ready(u->proc, u->port, 10000) == 0)
            return u;
        if (opts->port != 0 || !h_port_was_taken(u->proc))
            break;
    }
    kill(u->proc->pid, SIGKILL);
    cr_fatal("xf-upstream %s did not start listening on %s (%s); its log ends with:\n%s", name,
             u->addr, h_bin_note(h_bin("xf-upstream")), h_log_tail(log));
}

void
h_upstream_kill(struct h_upstream *u)
{
    int code = h_proc_stop(u->proc, SIGKILL, 5000);

    cr_assert(eq(int, code, 128 + SIGKILL), "xf-upstream %s ended with %d, not by SIGKILL", u->name,
              code);
}

void
h_upstream_counters(struct h_upstream *u, uint64_t *connections, uint64_t *requests)
{
    unsigned long long conns, reqs;
    struct h_msg m;

    if (u->counters == NULL)
        u->counters = h_connect(u->port);
    cr_assert(eq(int, h_get(u->counters, "/_counters", &m), 0), "xf-upstream %s /_counters: %s",
              u->name, m.error);
    cr_assert(eq(int, sscanf(m.body, "connections=%llu requests=%llu", &conns, &reqs), 2),
              "xf-upstream %s /_counters answered %d \"%s\"", u->name, m.status, m.body);
    *connections = conns;
    *requests = reqs;
}

bool
h_upstream_wait_requests(struct h_upstream *u, uint64_t n, int timeout_ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;

    for (;;) {
        uint64_t conns, reqs;

        h_upstream_counters(u, &conns, &reqs);
        if (reqs >= n)
            return true;
        if (h_now_ms() >= deadline)
            return false;
        h_sleep_ms(5);
    }
}

/* ------------------------------------------------------------------ crossfade */

/* A duration as the config writes it: "3s" or "250ms". */
static const char *
h_duration(unsigned ms)
{
    return ms % 1000 == 0 ? h_fmt("%us", ms / 1000) : h_fmt("%ums", ms);
}

/* A YAML flow sequence of nodes: ["127.0.0.1:P1", {address: "127.0.0.1:P2", weight: 2}]. */
static const char *
h_nodes_yaml(const struct h_node *nodes)
{
    const char *s = "[";

    for (size_t i = 0; i < H_MAX_NODES && nodes[i].port != 0; i++) {
        const char *sep = i > 0 ? ", " : "";
        const char *host = nodes[i].host != NULL ? nodes[i].host : "127.0.0.1";

        if (nodes[i].extra != NULL)
            s = h_fmt("%s%s{address: \"%s:%d\"%s, %s}", s, sep, host, nodes[i].port,
                      nodes[i].weight > 0 ? h_fmt(", weight: %u", nodes[i].weight) : "",
                      nodes[i].extra);
        else if (nodes[i].weight > 0)
            s = h_fmt("%s%s{address: \"%s:%d\", weight: %u}", s, sep, host, nodes[i].port,
                      nodes[i].weight);
        else
            s = h_fmt("%s%s\"%s:%d\"", s, sep, host, nodes[i].port);
    }
    return h_fmt("%s]", s);
}

static unsigned
h_or(unsigned v, unsigned def)
{
    return v != 0 ? v : def;
}

/*
 * The test's own top-level lines, and `workers: N` from $XF_TEST_WORKERS when it names no worker
 * count itself: the whole suite can run with more workers than the machine has cores (every
 * test must hold with any number).
 */
static const char *
h_extra_yaml(const struct h_proxy_opts *o)
{
    const char *extra = o->extra_yaml != NULL ? o->extra_yaml : "";
    const char *n = getenv("XF_TEST_WORKERS");

    if (n == NULL || *n == '\0' || strstr(extra, "workers:") != NULL)
        return extra;
    return h_fmt("%sworkers: %s\n", extra, n);
}

const char *
h_proxy_write_config(const char *file, const struct h_proxy_opts *o, int port)
{
    struct h_node no_y[H_MAX_NODES] = {{.port = 0}};

    cr_assert(ne(int, o->x[0].port, 0), "cluster x needs a node");
    if (o->y[0].port == 0)
        no_y[0].port = h_free_port(); /* nothing listens there: traffic sent to y would fail */
    return h_write_file(
        file,
        "listen:\n"
        "  - address: \"127.0.0.1:%d\"\n"
        "%s"
        "admin:\n"
        "  socket: \"%s\"\n"
        "%s"
        "split:\n"
        "  weight: %s\n"
        "%s"
        "clusters:\n"
        "  x:\n"
        "    balance: %s\n"
        "%s"
        "    nodes: %s\n"
        "  y:\n"
        "    balance: %s\n"
        "%s"
        "    nodes: %s\n"
        "timeouts: {connect: %s, client_header: %s, client_idle: %s, upstream_response: %s, "
        "upstream_idle: %s, shutdown: %s%s%s%s}\n"
        "limits: {max_connections: %u, max_request_line_bytes: %u, max_header_bytes: %u, "
        "max_headers: %u, max_body_bytes: %llu%s%s}\n"
        "access_log: \"%s\"\n"
        "log_level: %s\n"
        "%s",
        port,
        o->admin_api_port != 0 ? h_fmt("  - {address: \"127.0.0.1:%d\", role: admin_api%s%s}\n",
                                       o->admin_api_port, o->admin_api_extra != NULL ? ", " : "",
                                       o->admin_api_extra != NULL ? o->admin_api_extra : "")
                               : "",
        h_path(o->name != NULL ? h_fmt("%s.sock", o->name) : "admin.sock"),
        o->admin_http_port != 0 ? h_fmt("  http: \"127.0.0.1:%d\"\n", o->admin_http_port) : "",
        o->weight != NULL ? o->weight : "0", o->split_extra != NULL ? o->split_extra : "",
        o->balance_x != NULL ? o->balance_x : "hash", o->x_extra != NULL ? o->x_extra : "",
        h_nodes_yaml(o->x), o->balance_y != NULL ? o->balance_y : "hash",
        o->y_extra != NULL ? o->y_extra : "", h_nodes_yaml(o->y[0].port != 0 ? o->y : no_y),
        h_duration(h_or(o->connect_ms, 3000)), h_duration(h_or(o->client_header_ms, 10000)),
        h_duration(h_or(o->client_idle_ms, 60000)),
        h_duration(h_or(o->upstream_response_ms, 60000)),
        h_duration(h_or(o->upstream_idle_ms, 30000)), h_duration(h_or(o->shutdown_ms, 5000)),
        o->queue_ms != 0 ? h_fmt(", queue: %s", h_duration(o->queue_ms)) : "",
        o->tunnel_idle_ms != 0 ? h_fmt(", tunnel_idle: %s", h_duration(o->tunnel_idle_ms)) : "",
        o->client_request_ms != 0 ? h_fmt(", client_request: %s", h_duration(o->client_request_ms))
                                  : "",
        h_or(o->max_connections, 20000), h_or(o->max_request_line_bytes, 8192),
        h_or(o->max_header_bytes, 16384), h_or(o->max_headers, 100),
        (unsigned long long)o->max_body_bytes,
        o->max_requests_per_connection != 0
            ? h_fmt(", max_requests_per_connection: %u", o->max_requests_per_connection)
            : "",
        o->request_buffer != NULL ? h_fmt(", request_buffer_bytes: %s", o->request_buffer) : "",
        h_path(o->name != NULL ? h_fmt("%s-access.log", o->name) : "access.log"),
        o->log_level != NULL ? o->log_level : "info", h_extra_yaml(o));
}

static bool h_proxy_alive_after_listen(const struct h_proxy *p);

struct h_proxy *
h_proxy_start(const struct h_proxy_opts *o)
{
    struct h_proxy *p = h_alloc(sizeof(*p));
    const char *log = h_path(o->name != NULL ? h_fmt("%s.log", o->name) : "crossfade.log");
    char *env[5] = {NULL, NULL, NULL, NULL, NULL};
    const char *asan = getenv("ASAN_OPTIONS");
    size_t n_env = 0;

    if (o->small_quarantine || o->fake_dns != NULL) {
        const char *opts = asan != NULL ? asan : "";

        if (o->small_quarantine)
            opts = h_fmt("%s%squarantine_size_mb=8", opts, *opts != '\0' ? ":" : "");
        /* A preloaded library comes before the ASan runtime: ASan must not refuse that. */
        if (o->fake_dns != NULL)
            opts = h_fmt("%s%sverify_asan_link_order=0", opts, *opts != '\0' ? ":" : "");
        env[n_env++] = h_fmt("ASAN_OPTIONS=%s", opts);
    }
    if (o->fake_dns != NULL) {
        const char *lib = getenv("XF_FAKE_DNS_LIB");

        cr_assert(lib != NULL && *lib != '\0',
                  "XF_FAKE_DNS_LIB (the path of libfakedns.so) is not set: make sets it");
        env[n_env++] = h_fmt("LD_PRELOAD=%s", lib);
        env[n_env++] = h_fmt("XF_FAKE_DNS=%s", o->fake_dns);
    }
    if (o->notify_socket != NULL)
        env[n_env++] = h_fmt("NOTIFY_SOCKET=%s", o->notify_socket);
    p->access_log = h_path(o->name != NULL ? h_fmt("%s-access.log", o->name) : "access.log");
    p->admin_socket = h_path(o->name != NULL ? h_fmt("%s.sock", o->name) : "admin.sock");
    p->shutdown_ms = h_or(o->shutdown_ms, 5000);
    for (int attempt = 0; attempt < 3; attempt++) {
        char *argv[4];

        p->port = h_free_port();
        p->cfg_path = h_proxy_write_config(
            o->name != NULL ? h_fmt("%s.yaml", o->name) : "crossfade.yaml", o, p->port);
        argv[0] = (char *)(o->binary != NULL ? o->binary : h_bin("crossfade"));
        argv[1] = "-c";
        argv[2] = (char *)p->cfg_path;
        argv[3] = NULL;
        p->proc =
            h_spawn_io(o->name != NULL ? o->name : "crossfade", argv, log, log, env, o->nofile);
        /* Listeners open one after another: wait for the last one too. Then for the end of
         * start-up (the first health checks), after which crossfade accepts. */
        if (h_wait_ready(p->proc, p->port, 10000) == 0 &&
            (o->admin_api_port == 0 || h_wait_ready(p->proc, o->admin_api_port, 10000) == 0) &&
            (o->admin_http_port == 0 || h_wait_ready(p->proc, o->admin_http_port, 10000) == 0) &&
            h_proxy_alive_after_listen(p)) {
            h_proxy_wait_serving(p);
            return p;
        }
        if (!h_port_was_taken(p->proc))
            break;
    }
    kill(p->proc->pid, SIGKILL);
    cr_fatal("crossfade did not start listening on 127.0.0.1:%d (%s); its log ends with:\n%s",
             p->port, h_bin_note(h_bin("crossfade")), h_log_tail(log));
}

static void h_admin_cmd_buf(int fd, const char *line, char *buf, size_t cap);

/*
 * What answered on the port may be another test's process that took it between h_free_port and
 * crossfade's bind: then crossfade exits ("Address already in use"). Whether crossfade is still
 * there once its admin socket answers, or it has exited (false: the caller tries another port).
 */
static bool
h_proxy_alive_after_listen(const struct h_proxy *p)
{
    uint64_t until = h_now_ms() + 15000;

    while (access(p->admin_socket, F_OK) != 0 && h_now_ms() < until) {
        if (!h_proc_alive(p->proc))
            return false;
        h_sleep_ms(10);
    }
    return h_proc_alive(p->proc);
}

void
h_proxy_wait_serving(const struct h_proxy *p)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    uint64_t until = h_now_ms() + 15000;
    char buf[4096];
    int fd;

    /* A connection of its own, closed here: it must not take one of the tests' admin slots. */
    cr_assert(lt(sz, strlen(p->admin_socket), sizeof(sun.sun_path)));
    memcpy(sun.sun_path, p->admin_socket, strlen(p->admin_socket) + 1);
    for (;;) {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert(ne(int, fd, -1));
        if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
            break;
        close(fd);
        if (!h_proc_alive(p->proc))
            cr_fatal("crossfade exited before its admin socket answered; its log ends with:\n%s",
                     h_log_tail(p->proc->log_path));
        if (h_now_ms() >= until)
            cr_fatal("cannot connect to %s: %s", p->admin_socket, strerror(errno));
        h_sleep_ms(10);
    }
    for (;;) {
        h_admin_cmd_buf(fd, "show version", buf, sizeof(buf));
        if (strstr(buf, "\nstatus starting\n") == NULL) {
            close(fd);
            return;
        }
        if (h_now_ms() >= until)
            cr_fatal("crossfade was still starting 15 s after it listened; its log ends with:\n%s",
                     h_log_tail(p->proc->log_path));
        h_sleep_ms(10);
    }
}

int
h_proxy_stop(struct h_proxy *p)
{
    return h_proc_stop(p->proc, SIGTERM, (int)p->shutdown_ms + 5000);
}

void
h_proxy_finish_open(struct h_proxy *p)
{
    int code = h_proxy_stop(p);

    cr_assert(eq(int, code, 0),
              "crossfade exited with %d after SIGTERM (-1: still running %u ms later; >128: "
              "killed by signal code-128; non-zero under ASan: a leak or a memory error)",
              code, p->shutdown_ms + 5000);
}

void
h_proxy_finish(struct h_proxy *p)
{
    for (struct h_conn *c = h_state.conns; c != NULL; c = c->next)
        if (c->port == p->port)
            h_close(c);
    h_proxy_finish_open(p);
}

/* ------------------------------------------------------------------ HTTP messages */

static void
h_msg_reset(struct h_msg *m)
{
    memset(m, 0, sizeof(*m));
}

static void h_msg_error(struct h_msg *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
h_msg_error(struct h_msg *m, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(m->error, sizeof(m->error), fmt, ap);
    va_end(ap);
}

/* Up to 60 bytes of `s`, printable. */
static const char *
h_escape(const char *s, size_t len)
{
    char *out = h_alloc(4 * 60 + 4);
    size_t k = 0;

    for (size_t i = 0; i < len && i < 60; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch == '\r')
            k += (size_t)sprintf(out + k, "\\r");
        else if (ch == '\n')
            k += (size_t)sprintf(out + k, "\\n");
        else if (isprint(ch))
            out[k++] = (char)ch;
        else
            k += (size_t)sprintf(out + k, "\\x%02x", ch);
    }
    if (len > 60)
        k += (size_t)sprintf(out + k, "...");
    out[k] = '\0';
    return out;
}

/* Parses the header lines of a head (after the start line); `p` and `end` bound them, the final
 * empty line excluded. */
static int
h_parse_headers(const char *p, const char *end, struct h_msg *m)
{
    size_t lines = 0;

    for (const char *q = p; q < end; q++)
        if (*q == '\n')
            lines++;
    m->headers = h_alloc((lines + 1) * sizeof(*m->headers));
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *colon, *v, *ve;

        if (eol == NULL || eol == p || eol[-1] != '\r') {
            h_msg_error(m, "header line not ended by CRLF: \"%s\"", h_escape(p, (size_t)(end - p)));
            return -1;
        }
        if (*p == ' ' || *p == '\t') {
            h_msg_error(m, "obs-fold line: \"%s\"", h_escape(p, (size_t)(eol - p)));
            return -1;
        }
        colon = memchr(p, ':', (size_t)(eol - p));
        if (colon == NULL || colon == p) {
            h_msg_error(m, "malformed header line: \"%s\"", h_escape(p, (size_t)(eol - p)));
            return -1;
        }
        for (v = colon + 1; v < eol - 1 && (*v == ' ' || *v == '\t'); v++)
            ;
        for (ve = eol - 1; ve > v && (ve[-1] == ' ' || ve[-1] == '\t'); ve--)
            ;
        m->headers[m->n_headers].name = h_fmt("%.*s", (int)(colon - p), p);
        m->headers[m->n_headers].value = h_fmt("%.*s", (int)(ve - v), v);
        m->n_headers++;
        p = eol + 1;
    }
    return 0;
}

/* "HTTP/1.1" at p: sets the version and returns 0. */
static int
h_parse_version(const char *p, size_t len, struct h_msg *m)
{
    if (len != 8 || memcmp(p, "HTTP/", 5) != 0 || !isdigit((unsigned char)p[5]) || p[6] != '.' ||
        !isdigit((unsigned char)p[7]))
        return -1;
    m->version_major = p[5] - '0';
    m->version_minor = p[7] - '0';
    return 0;
}

/* Parses a response head of `len` bytes ending in CRLFCRLF. */
static int
h_parse_response_head(const char *data, size_t len, struct h_msg *m)
{
    const char *eol = memchr(data, '\n', len);
    const char *end = data + len - 2;

    m->head = h_fmt("%.*s", (int)len, data);
    m->head_len = len;
    if (eol == NULL || eol - data < 12 || eol[-1] != '\r' || h_parse_version(data, 8, m) == -1 ||
        data[8] != ' ' || !isdigit((unsigned char)data[9]) || !isdigit((unsigned char)data[10]) ||
        !isdigit((unsigned char)data[11]) || (eol - data > 13 && data[12] != ' ')) {
        h_msg_error(m, "malformed status line: \"%s\"", h_escape(data, len));
        return -1;
    }
    m->status = (data[9] - '0') * 100 + (data[10] - '0') * 10 + (data[11] - '0');
    return h_parse_headers(eol + 1, end, m);
}

int
h_parse_request_head(const char *data, size_t len, struct h_msg *m)
{
    const char *end = memmem(data, len, "\r\n\r\n", 4);
    const char *eol, *sp1, *sp2;

    h_msg_reset(m);
    if (end == NULL) {
        h_msg_error(m, "no end of head in \"%s\"", h_escape(data, len));
        return -1;
    }
    m->head_len = (size_t)(end - data) + 4;
    m->head = h_fmt("%.*s", (int)m->head_len, data);
    m->body_len = len - m->head_len;
    m->body = h_alloc(m->body_len);
    memcpy(m->body, data + m->head_len, m->body_len);
    eol = memchr(data, '\n', m->head_len);
    sp1 = memchr(data, ' ', (size_t)(eol - data));
    sp2 = sp1 != NULL ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (eol[-1] != '\r' || sp1 == NULL || sp2 == NULL ||
        h_parse_version(sp2 + 1, (size_t)(eol - 1 - sp2 - 1), m) == -1) {
        h_msg_error(m, "malformed request line: \"%s\"", h_escape(data, (size_t)(eol - data)));
        return -1;
    }
    m->method = h_fmt("%.*s", (int)(sp1 - data), data);
    m->target = h_fmt("%.*s", (int)(sp2 - sp1 - 1), sp1 + 1);
    return h_parse_headers(eol + 1, end + 2, m);
}

const char *
h_header(const struct h_msg *m, const char *name)
{
    for (size_t i = 0; i < m->n_headers; i++)
        if (strcasecmp(m->headers[i].name, name) == 0)
            return m->headers[i].value;
    return NULL;
}

size_t
h_header_count(const struct h_msg *m, const char *name)
{
    size_t n = 0;

    for (size_t i = 0; i < m->n_headers; i++)
        if (strcasecmp(m->headers[i].name, name) == 0)
            n++;
    return n;
}

bool
h_header_has_token(const struct h_msg *m, const char *name, const char *token)
{
    size_t tlen = strlen(token);

    for (size_t i = 0; i < m->n_headers; i++) {
        const char *v = m->headers[i].value;

        if (strcasecmp(m->headers[i].name, name) != 0)
            continue;
        while (*v != '\0') {
            size_t n;

            while (*v == ' ' || *v == '\t' || *v == ',')
                v++;
            n = strcspn(v, ",");
            while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                n--;
            if (n == tlen && strncasecmp(v, token, n) == 0)
                return true;
            v += strcspn(v, ",");
        }
    }
    return false;
}

/* ------------------------------------------------------------------ client connections */

struct h_conn *
h_connect(int port)
{
    struct h_conn *c = h_alloc(sizeof(*c));

    c->fd = h_connect_fd(port, 5000);
    cr_assert(ge(int, c->fd, 0), "connect to 127.0.0.1:%d: %s", port, strerror(errno));
    c->port = port;
    c->next = h_state.conns;
    h_state.conns = c;
    return c;
}

void
h_close(struct h_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

void
h_abort(struct h_conn *c)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};

    if (c->fd >= 0)
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    h_close(c);
}

int
h_send(struct h_conn *c, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);

        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
            int r = poll(&pfd, 1, H_IO_TIMEOUT_MS);

            if (r == 0) {
                errno = ETIMEDOUT;
                return -1;
            }
            if (r == -1 && errno != EINTR)
                return -1;
            continue;
        }
        return -1;
    }
    return 0;
}

int
h_send_str(struct h_conn *c, const char *s)
{
    return h_send(c, s, strlen(s));
}

int
h_sendf(struct h_conn *c, const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    s = h_vfmt(fmt, ap);
    va_end(ap);
    return h_send_str(c, s);
}

int
h_send_pieces(struct h_conn *c, const void *data, size_t len, size_t piece, unsigned pause_ms)
{
    const char *p = data;

    while (len > 0) {
        size_t n = XF_MIN(len, piece);

        if (h_send(c, p, n) == -1)
            return -1;
        p += n;
        len -= n;
        if (len > 0)
            h_sleep_ms(pause_ms); /* the pace is what the caller tests */
    }
    return 0;
}

size_t
h_pending(const struct h_conn *c)
{
    return c->len - c->off;
}

int
h_conn_port(const struct h_conn *c)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);

    cr_assert(eq(int, getsockname(c->fd, (struct sockaddr *)&sa, &len), 0), "getsockname: %s",
              strerror(errno));
    return ntohs(sa.sin_port);
}

/*
 * Reads what is there (waiting up to timeout_ms for the first byte) into the buffer: the number of
 * bytes, 0 at EOF, or -1 with errno (ETIMEDOUT, ECONNRESET...).
 */
static ssize_t
h_fill(struct h_conn *c, int timeout_ms)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    ssize_t n;
    int r;

    if (c->fd < 0) {
        errno = EBADF;
        return -1;
    }
    if (c->off == c->len)
        c->off = c->len = 0;
    if (c->cap - c->len < 65536 && c->off > 0) {
        memmove(c->buf, c->buf + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    if (c->cap - c->len < 65536) {
        c->cap = c->cap * 2 + 262144;
        c->buf = h_realloc(c->buf, c->cap);
    }
    do
        r = poll(&pfd, 1, timeout_ms);
    while (r == -1 && errno == EINTR);
    if (r == 0) {
        errno = ETIMEDOUT;
        return -1;
    }
    if (r == -1)
        return -1;
    do
        n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    while (n == -1 && errno == EINTR);
    if (n > 0)
        c->len += (size_t)n;
    return n;
}

enum h_wait
h_conn_wait(struct h_conn *c, int timeout_ms)
{
    ssize_t n;

    if (h_pending(c) > 0)
        return H_DATA;
    n = h_fill(c, timeout_ms);
    if (n > 0)
        return H_DATA;
    if (n == 0 || errno == ECONNRESET || errno == EPIPE || errno == EBADF)
        return H_CLOSED;
    return H_OPEN;
}

/* Why a read failed, for messages. */
static const char *
h_fill_error(ssize_t n)
{
    if (n == 0)
        return "the connection was closed";
    if (errno == ETIMEDOUT)
        return "timed out waiting for bytes";
    return strerror(errno);
}

int
h_read_head(struct h_conn *c, struct h_msg *m, int timeout_ms)
{
    size_t scanned = 0;

    h_msg_reset(m);
    for (;;) {
        const char *data = c->buf + c->off;
        size_t avail = h_pending(c);
        const char *end;
        ssize_t n;

        if (avail >= 4) {
            size_t from = scanned > 3 ? scanned - 3 : 0;

            end = memmem(data + from, avail - from, "\r\n\r\n", 4);
            if (end != NULL) {
                size_t len = (size_t)(end - data) + 4;

                c->off += len;
                return h_parse_response_head(data, len, m);
            }
            scanned = avail;
        }
        if (avail > H_MAX_HEAD) {
            h_msg_error(m, "no end of head in %u bytes", H_MAX_HEAD);
            return -1;
        }
        n = h_fill(c, timeout_ms);
        if (n <= 0) {
            h_msg_error(m, "reading a response head: %s after %zu bytes (\"%s\")", h_fill_error(n),
                        avail, h_escape(data, avail));
            return -1;
        }
    }
}

struct h_buffer_sink {
    struct h_msg *m;
    size_t cap;
};

static int
h_buffer_sink(void *ctx, const char *data, size_t len)
{
    struct h_buffer_sink *b = ctx;

    if (b->m->body_len + len > H_MAX_BODY_BUFFER)
        return -1;
    if (b->m->body_len + len + 1 > b->cap) {
        b->cap = (b->m->body_len + len + 1) * 2;
        b->m->body = h_realloc(b->m->body, b->cap);
    }
    memcpy(b->m->body + b->m->body_len, data, len);
    b->m->body_len += len;
    b->m->body[b->m->body_len] = '\0';
    return 0;
}

/* Hands `len` bytes to the sink (the count goes to m->body_len when the sink is not ours). */
static int
h_deliver(struct h_msg *m, h_sink_fn sink, void *ctx, bool buffered, const char *data, size_t len)
{
    if (sink(ctx, data, len) == -1) {
        h_msg_error(m, "the body sink refused the data at byte %zu", m->body_len);
        return -1;
    }
    if (!buffered)
        m->body_len += len;
    return 0;
}

/* Reads exactly `len` body bytes. */
static int
h_read_exact(struct h_conn *c, struct h_msg *m, uint64_t len, int timeout_ms, h_sink_fn sink,
             void *ctx, bool buffered)
{
    uint64_t left = len;

    while (left > 0) {
        size_t take = (size_t)XF_MIN((uint64_t)h_pending(c), left);
        ssize_t n;

        if (take > 0) {
            if (h_deliver(m, sink, ctx, buffered, c->buf + c->off, take) == -1)
                return -1;
            c->off += take;
            left -= take;
            continue;
        }
        n = h_fill(c, timeout_ms);
        if (n <= 0) {
            h_msg_error(m, "reading the body: %s after %llu of %llu bytes", h_fill_error(n),
                        (unsigned long long)(len - left), (unsigned long long)len);
            return -1;
        }
    }
    return 0;
}

/* Reads one CRLF-terminated line (at most 8 KiB) into a harness-owned string without the CRLF. */
static int
h_read_line(struct h_conn *c, struct h_msg *m, int timeout_ms, char **line)
{
    for (;;) {
        const char *data = c->buf + c->off;
        const char *nl = memchr(data, '\n', h_pending(c));
        ssize_t n;

        if (nl != NULL) {
            size_t len = (size_t)(nl - data);

            if (len == 0 || data[len - 1] != '\r') {
                h_msg_error(m, "chunked body: line not ended by CRLF: \"%s\"",
                            h_escape(data, len + 1));
                return -1;
            }
            *line = h_fmt("%.*s", (int)(len - 1), data);
            c->off += len + 1;
            return 0;
        }
        if (h_pending(c) > 8192) {
            h_msg_error(m, "chunked body: line longer than 8 KiB");
            return -1;
        }
        n = h_fill(c, timeout_ms);
        if (n <= 0) {
            h_msg_error(m, "reading a chunked body: %s", h_fill_error(n));
            return -1;
        }
    }
}

static int
h_read_chunked(struct h_conn *c, struct h_msg *m, int timeout_ms, h_sink_fn sink, void *ctx,
               bool buffered)
{
    for (;;) {
        char *line, *end;
        unsigned long long size;

        if (h_read_line(c, m, timeout_ms, &line) == -1)
            return -1;
        if (!isxdigit((unsigned char)line[0])) {
            h_msg_error(m, "chunked body: bad chunk size line \"%s\"",
                        h_escape(line, strlen(line)));
            return -1;
        }
        errno = 0;
        size = strtoull(line, &end, 16);
        if (errno != 0 || (*end != '\0' && *end != ';' && *end != ' ' && *end != '\t')) {
            h_msg_error(m, "chunked body: bad chunk size line \"%s\"",
                        h_escape(line, strlen(line)));
            return -1;
        }
        if (size == 0)
            break;
        if (h_read_exact(c, m, size, timeout_ms, sink, ctx, buffered) == -1 ||
            h_read_line(c, m, timeout_ms, &line) == -1)
            return -1;
        if (line[0] != '\0') {
            h_msg_error(m, "chunked body: chunk data longer than its size");
            return -1;
        }
    }
    for (;;) { /* trailer section */
        char *line;

        if (h_read_line(c, m, timeout_ms, &line) == -1)
            return -1;
        if (line[0] == '\0')
            return 0;
    }
}

static int
h_read_to_close(struct h_conn *c, struct h_msg *m, int timeout_ms, h_sink_fn sink, void *ctx,
                bool buffered)
{
    for (;;) {
        ssize_t n;

        if (h_pending(c) > 0) {
            if (h_deliver(m, sink, ctx, buffered, c->buf + c->off, h_pending(c)) == -1)
                return -1;
            c->off = c->len;
        }
        n = h_fill(c, timeout_ms);
        if (n == 0) {
            m->close_delimited = true;
            return 0;
        }
        if (n < 0) {
            h_msg_error(m, "reading a body delimited by close: %s after %zu bytes", h_fill_error(n),
                        m->body_len);
            return -1;
        }
    }
}

int
h_read_body(struct h_conn *c, struct h_msg *m, unsigned flags, int timeout_ms, h_sink_fn sink,
            void *ctx)
{
    struct h_buffer_sink buf = {.m = m, .cap = 0};
    bool buffered = sink == NULL;
    const char *cl = h_header(m, "Content-Length");
    const char *te = h_header(m, "Transfer-Encoding");

    if (buffered) {
        sink = h_buffer_sink;
        ctx = &buf;
    }
    m->body = h_alloc(1);
    m->body_len = 0;
    if ((flags & H_NO_BODY) || (m->status >= 100 && m->status < 200) || m->status == 204 ||
        m->status == 304)
        return 0;
    if (te != NULL) {
        if (h_header_count(m, "Transfer-Encoding") != 1 || strcasecmp(te, "chunked") != 0) {
            h_msg_error(m, "unexpected Transfer-Encoding in a response: \"%s\"", te);
            return -1;
        }
        m->chunked = true;
        return h_read_chunked(c, m, timeout_ms, sink, ctx, buffered);
    }
    if (cl != NULL) {
        char *end;
        unsigned long long len;

        errno = 0;
        len = strtoull(cl, &end, 10);
        if (errno != 0 || *end != '\0' || !isdigit((unsigned char)cl[0]) ||
            h_header_count(m, "Content-Length") != 1) {
            h_msg_error(m, "bad Content-Length in a response: \"%s\"", cl);
            return -1;
        }
        return h_read_exact(c, m, len, timeout_ms, sink, ctx, buffered);
    }
    return h_read_to_close(c, m, timeout_ms, sink, ctx, buffered);
}

int
h_read_response_ex(struct h_conn *c, struct h_msg *m, unsigned flags, int timeout_ms,
                   h_sink_fn sink, void *ctx)
{
    if (h_read_head(c, m, timeout_ms) == -1)
        return -1;
    return h_read_body(c, m, flags, timeout_ms, sink, ctx);
}

int
h_read_response(struct h_conn *c, struct h_msg *m)
{
    return h_read_response_ex(c, m, 0, H_IO_TIMEOUT_MS, NULL, NULL);
}

int
h_read_until_close(struct h_conn *c, char **out, size_t *len, int timeout_ms)
{
    struct h_msg m;
    int r;

    h_msg_reset(&m);
    r = h_read_to_close(c, &m, timeout_ms, h_buffer_sink, &(struct h_buffer_sink){.m = &m}, true);
    *out = m.body != NULL ? m.body : h_alloc(1);
    if (len != NULL)
        *len = m.body_len;
    return r;
}

int
h_get(struct h_conn *c, const char *target, struct h_msg *m)
{
    if (h_sendf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, H_HOST) == -1) {
        h_msg_reset(m);
        h_msg_error(m, "sending GET %s: %s", target, strerror(errno));
        return -1;
    }
    return h_read_response(c, m);
}

const char *
h_served_by(struct h_conn *c, const char *key)
{
    struct h_msg *m = h_alloc(sizeof(*m));

    cr_assert(eq(int,
                 h_sendf(c, "GET / HTTP/1.1\r\nHost: %s\r\n%s\r\n", H_HOST,
                         key != NULL ? h_fmt("X-Key: %s\r\n", key) : ""),
                 0),
              "send: %s", strerror(errno));
    cr_assert(eq(int, h_read_response(c, m), 0), "no response: %s", m->error);
    cr_assert(eq(int, m->status, 200), "status %d: %s", m->status, m->body != NULL ? m->body : "");
    cr_assert(ne(ptr, (void *)h_header(m, "X-Upstream"), NULL), "no X-Upstream header");
    return h_header(m, "X-Upstream");
}

/* ------------------------------------------------------------------ the fake upstream */

/* One accepted connection. Touched by the fake's thread under the mutex. */
struct h_fake_conn {
    int fd;   /* -1 once closed */
    char *rx; /* every byte received (malloc'd: the thread cannot use h_alloc) */
    size_t rx_len, rx_cap;
    size_t parsed;    /* where the next request starts in rx */
    size_t settled;   /* rx_len at the end of the fake's last round (h_fake_tally reads up to it) */
    size_t requests;  /* complete requests received */
    bool peer_closed; /* read EOF or a reset */
    bool write_shut;  /* the fake closed its side (it still reads) */
    const struct h_fake_reply *reply;
};

struct h_fake {
    int listen_fd;
    int port;
    int wake[2]; /* a byte on wake[1] stops the thread */
    pthread_t thread;
    pthread_mutex_t mu;
    struct h_fake_reply *replies; /* owned copies */
    size_t n_replies;
    struct h_fake_conn conns[H_FAKE_MAX_CONNS];
    size_t n_conns;
    size_t total_bytes;
    size_t sentinels;    /* sent to it by h_fake_expect_only_sentinels (the test's thread only) */
    struct h_fake *next; /* the harness's list */
};

/* The Content-Length a request head announces (0 when none). */
static uint64_t
h_fake_content_length(const char *head, size_t len)
{
    const char *h = h_memcasemem(head, len, "\r\ncontent-length:");

    return h != NULL ? strtoull(h + 17, NULL, 10) : 0;
}

/* Answers every complete request in the buffer; the mutex is held. */
static void
h_fake_serve(struct h_fake_conn *fc)
{
    while (fc->fd >= 0 && !fc->write_shut) {
        const char *start = fc->rx + fc->parsed;
        size_t avail = fc->rx_len - fc->parsed;
        const char *end = avail >= 4 ? memmem(start, avail, "\r\n\r\n", 4) : NULL;
        size_t head_len;
        uint64_t body;
        const struct h_fake_reply *r = fc->reply;

        if (end == NULL)
            return;
        head_len = (size_t)(end - start) + 4;
        body = h_fake_content_length(start, head_len);
        if (avail - head_len < body)
            return;
        fc->parsed += head_len + body;
        fc->requests++;
        if (r->action == H_FAKE_SILENT)
            continue;
        if (r->action == H_FAKE_CLOSE_SECOND && fc->requests > 1) {
            shutdown(fc->fd, SHUT_WR);
            fc->write_shut = true;
            continue;
        }
        if (r->action != H_FAKE_CLOSE_NOW)
            (void)!send(fc->fd, r->bytes, r->len, MSG_NOSIGNAL);
        if (r->action == H_FAKE_CLOSE || r->action == H_FAKE_CLOSE_NOW) {
            /* FIN after the reply; go on reading to see what the proxy does. */
            shutdown(fc->fd, SHUT_WR);
            fc->write_shut = true;
        }
    }
}

static void
h_fake_accept(struct h_fake *f)
{
    int fd = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    struct h_fake_conn *fc;

    if (fd == -1)
        return;
    pthread_mutex_lock(&f->mu);
    if (f->n_conns == H_FAKE_MAX_CONNS) {
        pthread_mutex_unlock(&f->mu);
        close(fd);
        return;
    }
    fc = &f->conns[f->n_conns];
    fc->fd = fd;
    fc->reply = &f->replies[XF_MIN(f->n_conns, f->n_replies - 1)];
    f->n_conns++;
    pthread_mutex_unlock(&f->mu);
}

static void
h_fake_read(struct h_fake *f, struct h_fake_conn *fc)
{
    char buf[65536];
    ssize_t n = recv(fc->fd, buf, sizeof(buf), 0);

    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return;
    pthread_mutex_lock(&f->mu);
    if (n > 0) {
        if (fc->rx_len + (size_t)n + 1 > fc->rx_cap) {
            size_t cap = (fc->rx_len + (size_t)n + 1) * 2;
            char *rx = realloc(fc->rx, cap);

            if (rx == NULL)
                abort();
            fc->rx = rx;
            fc->rx_cap = cap;
        }
        memcpy(fc->rx + fc->rx_len, buf, (size_t)n);
        fc->rx_len += (size_t)n;
        fc->rx[fc->rx_len] = '\0';
        f->total_bytes += (size_t)n;
        h_fake_serve(fc);
    } else {
        fc->peer_closed = true;
        close(fc->fd);
        fc->fd = -1;
    }
    pthread_mutex_unlock(&f->mu);
}

static void *
h_fake_main(void *arg)
{
    struct h_fake *f = arg;

    for (;;) {
        struct pollfd pfd[H_FAKE_MAX_CONNS + 2];
        struct h_fake_conn *who[H_FAKE_MAX_CONNS + 2];
        nfds_t n = 0;

        pfd[n++] = (struct pollfd){.fd = f->wake[0], .events = POLLIN};
        pfd[n++] = (struct pollfd){.fd = f->listen_fd, .events = POLLIN};
        pthread_mutex_lock(&f->mu);
        for (size_t i = 0; i < f->n_conns; i++) {
            if (f->conns[i].fd < 0)
                continue;
            who[n] = &f->conns[i];
            pfd[n++] = (struct pollfd){.fd = f->conns[i].fd, .events = POLLIN};
        }
        pthread_mutex_unlock(&f->mu);
        if (poll(pfd, n, -1) == -1) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pfd[0].revents != 0)
            break;
        if (pfd[1].revents & POLLIN)
            h_fake_accept(f);
        for (nfds_t i = 2; i < n; i++)
            if (pfd[i].revents != 0)
                h_fake_read(f, who[i]);
        /* Every connection that was ready is read: the sentinel counts may look now. */
        pthread_mutex_lock(&f->mu);
        for (size_t i = 0; i < f->n_conns; i++)
            f->conns[i].settled = f->conns[i].rx_len;
        pthread_mutex_unlock(&f->mu);
    }
    return NULL;
}

struct h_fake *
h_fake_start(const struct h_fake_reply *replies, size_t n_replies)
{
    struct h_fake *f = calloc(1, sizeof(*f));

    cr_assert(ne(ptr, f, NULL));
    cr_assert(gt(sz, n_replies, (size_t)0), "a fake upstream needs a reply");
    f->replies = calloc(n_replies, sizeof(*f->replies));
    cr_assert(ne(ptr, f->replies, NULL));
    for (size_t i = 0; i < n_replies; i++) {
        size_t len = replies[i].bytes == NULL ? 0
                     : replies[i].len > 0     ? replies[i].len
                                              : strlen(replies[i].bytes);
        char *bytes = malloc(len + 1);

        cr_assert(ne(ptr, bytes, NULL));
        if (len > 0)
            memcpy(bytes, replies[i].bytes, len);
        f->replies[i] =
            (struct h_fake_reply){.bytes = bytes, .len = len, .action = replies[i].action};
    }
    f->n_replies = n_replies;
    pthread_mutex_init(&f->mu, NULL);
    f->listen_fd = h_listen_any(&f->port);
    cr_assert(eq(int, pipe2(f->wake, O_CLOEXEC), 0), "pipe2: %s", strerror(errno));
    f->next = h_state.fakes;
    h_state.fakes = f;
    cr_assert(eq(int, pthread_create(&f->thread, NULL, h_fake_main, f), 0), "pthread_create");
    return f;
}

struct h_fake *
h_fake_start1(const char *reply, enum h_fake_action action)
{
    struct h_fake_reply r = {.bytes = reply, .len = 0, .action = action};

    return h_fake_start(&r, 1);
}

static void
h_fake_stop(struct h_fake *f)
{
    struct h_fake **pp = &h_state.fakes;

    while (*pp != f)
        pp = &(*pp)->next;
    *pp = f->next;
    (void)!write(f->wake[1], "x", 1);
    pthread_join(f->thread, NULL);
    for (size_t i = 0; i < f->n_conns; i++) {
        if (f->conns[i].fd >= 0)
            close(f->conns[i].fd);
        free(f->conns[i].rx);
    }
    for (size_t i = 0; i < f->n_replies; i++)
        free((char *)f->replies[i].bytes);
    free(f->replies);
    close(f->listen_fd);
    close(f->wake[0]);
    close(f->wake[1]);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

int
h_fake_port(const struct h_fake *f)
{
    return f->port;
}

size_t
h_fake_conns(struct h_fake *f)
{
    size_t n;

    pthread_mutex_lock(&f->mu);
    n = f->n_conns;
    pthread_mutex_unlock(&f->mu);
    return n;
}

size_t
h_fake_bytes(struct h_fake *f)
{
    size_t n;

    pthread_mutex_lock(&f->mu);
    n = f->total_bytes;
    pthread_mutex_unlock(&f->mu);
    return n;
}

size_t
h_fake_requests(struct h_fake *f, size_t i)
{
    size_t n = 0;

    pthread_mutex_lock(&f->mu);
    if (i < f->n_conns)
        n = f->conns[i].requests;
    pthread_mutex_unlock(&f->mu);
    return n;
}

char *
h_fake_received(struct h_fake *f, size_t i, size_t *len)
{
    char *copy;
    size_t n = 0;

    pthread_mutex_lock(&f->mu);
    if (i < f->n_conns)
        n = f->conns[i].rx_len;
    copy = h_alloc(n);
    if (n > 0)
        memcpy(copy, f->conns[i].rx, n);
    pthread_mutex_unlock(&f->mu);
    if (len != NULL)
        *len = n;
    return copy;
}

bool
h_fake_peer_closed(struct h_fake *f, size_t i)
{
    bool closed = false;

    pthread_mutex_lock(&f->mu);
    if (i < f->n_conns)
        closed = f->conns[i].peer_closed;
    pthread_mutex_unlock(&f->mu);
    return closed;
}

static size_t
h_fake_total_requests(struct h_fake *f)
{
    size_t n = 0;

    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->n_conns; i++)
        n += f->conns[i].requests;
    pthread_mutex_unlock(&f->mu);
    return n;
}

size_t
h_fake_requests_all(struct h_fake *f)
{
    return h_fake_total_requests(f);
}

bool
h_fake_wait_requests(struct h_fake *f, size_t n, int timeout_ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;

    while (h_fake_total_requests(f) < n) {
        if (h_now_ms() >= deadline)
            return false;
        h_sleep_ms(5);
    }
    return true;
}

bool
h_fake_wait_peer_closed(struct h_fake *f, size_t i, int timeout_ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;

    while (!h_fake_peer_closed(f, i)) {
        if (h_now_ms() >= deadline)
            return false;
        h_sleep_ms(5);
    }
    return true;
}

/* ------------------------------------------------------------------ sentinels */

/* What a fake received up to its last round: requests that are sentinels, that are not, and the
 * bytes of an unfinished request at the end of a connection. */
struct h_fake_tally {
    size_t sentinels, others, stray;
};

static struct h_fake_tally
h_fake_tally(struct h_fake *f)
{
    struct h_fake_tally t = {0, 0, 0};
    size_t line = strlen(H_SENTINEL_LINE);

    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->n_conns; i++) {
        const char *rx = f->conns[i].rx;
        size_t at = 0, end = f->conns[i].settled;

        while (at < end) {
            const char *head_end = memmem(rx + at, end - at, "\r\n\r\n", 4);
            size_t next;

            if (head_end == NULL)
                break;
            next = (size_t)(head_end - rx) + 4;
            next += h_fake_content_length(rx + at, next - at);
            if (next > end)
                break;
            if (next - at >= line && memcmp(rx + at, H_SENTINEL_LINE, line) == 0)
                t.sentinels++;
            else
                t.others++;
            at = next;
        }
        t.stray += end - at;
    }
    pthread_mutex_unlock(&f->mu);
    return t;
}

size_t
h_fake_sentinels(struct h_fake *f)
{
    return h_fake_tally(f).sentinels;
}

size_t
h_fake_non_sentinels(struct h_fake *f)
{
    return h_fake_tally(f).others;
}

bool
h_fake_wait_sentinels(struct h_fake *f, size_t n, int timeout_ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;

    while (h_fake_sentinels(f) < n) {
        if (h_now_ms() >= deadline)
            return false;
        h_sleep_ms(5);
    }
    return true;
}

int
h_send_sentinel(int port, const char *headers)
{
    struct h_conn *c = h_connect(port);
    struct h_msg m;

    cr_assert(eq(int,
                 h_sendf(c, "%sHost: %s\r\n%s\r\n", H_SENTINEL_LINE, H_HOST,
                         headers != NULL ? headers : ""),
                 0),
              "sending the sentinel: %s", strerror(errno));
    cr_assert(eq(int, h_read_response(c, &m), 0), "no response to the sentinel: %s", m.error);
    h_close(c);
    return m.status;
}

/* Everything f received, connection by connection, for a failure message. */
static const char *
h_fake_dump(struct h_fake *f)
{
    const char *all = "";
    size_t n = h_fake_conns(f);

    for (size_t i = 0; i < n; i++)
        all = h_fmt("%s[connection %zu] \"%s\"\n", all, i, h_fake_received(f, i, NULL));
    return n > 0 ? all : "(no connection)\n";
}

void
h_fake_expect_only_sentinels(struct h_fake *f, int port, const char *headers)
{
    struct h_fake_tally t;
    int status;

    f->sentinels++;
    status = h_send_sentinel(port, headers);
    cr_assert(h_fake_wait_sentinels(f, f->sentinels, H_IO_TIMEOUT_MS),
              "sentinel %zu (answered %d) did not reach the node on port %d; it got:\n%s",
              f->sentinels, status, f->port, h_fake_dump(f));
    t = h_fake_tally(f);
    cr_assert(eq(sz, t.others, (size_t)0),
              "the node on port %d got %zu request(s) besides the sentinels:\n%s", f->port,
              t.others, h_fake_dump(f));
    cr_assert(eq(sz, t.stray, (size_t)0),
              "the node on port %d got %zu stray byte(s) besides the sentinels:\n%s", f->port,
              t.stray, h_fake_dump(f));
    cr_assert(eq(sz, t.sentinels, f->sentinels), "the node on port %d got %zu sentinels, not %zu",
              f->port, t.sentinels, f->sentinels);
}

/* ------------------------------------------------------------------ the admin socket */

int
h_admin_connect(const struct h_proxy *p)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    uint64_t until = h_now_ms() + 5000;
    int fd;

    cr_assert(lt(sz, strlen(p->admin_socket), sizeof(sun.sun_path)));
    memcpy(sun.sun_path, p->admin_socket, strlen(p->admin_socket) + 1);
    for (;;) {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert(ne(int, fd, -1));
        if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
            break;
        close(fd);
        cr_assert(lt(u64, h_now_ms(), until), "cannot connect to %s: %s", p->admin_socket,
                  strerror(errno));
        h_sleep_ms(10);
    }
    cr_assert(lt(sz, h_admin_n_fds, sizeof(h_admin_fds) / sizeof(h_admin_fds[0])));
    h_admin_fds[h_admin_n_fds++] = fd;
    return fd;
}

void
h_admin_send(int fd, const char *line)
{
    cr_assert(eq(long, (long)send(fd, line, strlen(line), MSG_NOSIGNAL), (long)strlen(line)));
    cr_assert(eq(long, (long)send(fd, "\n", 1, MSG_NOSIGNAL), 1L));
}

char *
h_admin_reply(int fd, int timeout_ms)
{
    char *buf = h_alloc(65536);
    size_t len = 0;
    uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;

    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        char *end = strstr(buf, "\n\n");
        uint64_t now = h_now_ms();
        ssize_t n;

        if (end != NULL) {
            end[1] = '\0';
            return buf;
        }
        cr_assert(lt(sz, len, (size_t)65535), "reply too long: %s", buf);
        cr_assert(eq(int, poll(&pfd, 1, now < deadline ? (int)(deadline - now) : 0), 1),
                  "no whole reply within %d ms; so far: %s", timeout_ms, buf);
        n = recv(fd, buf + len, 65535 - len, 0);
        cr_assert(gt(long, (long)n, 0L), "the admin socket closed before the reply ended: %s", buf);
        len += (size_t)n;
        buf[len] = '\0';
    }
}

char *
h_admin_cmd(int fd, const char *line)
{
    h_admin_send(fd, line);
    return h_admin_reply(fd, H_IO_TIMEOUT_MS);
}

/*
 * One admin command whose reply goes to a caller buffer (without the closing empty line): the
 * polling helpers below run many commands and would otherwise hold 64 KiB of harness memory each.
 */
static void
h_admin_cmd_buf(int fd, const char *line, char *buf, size_t cap)
{
    size_t len = 0;

    buf[0] = '\0';
    cr_assert(eq(long, (long)send(fd, line, strlen(line), MSG_NOSIGNAL), (long)strlen(line)));
    cr_assert(eq(long, (long)send(fd, "\n", 1, MSG_NOSIGNAL), 1L));
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        char *end = strstr(buf, "\n\n");
        ssize_t n;

        if (end != NULL) {
            end[1] = '\0';
            return;
        }
        cr_assert(lt(sz, len, cap - 1), "reply to \"%s\" too long", line);
        cr_assert(eq(int, poll(&pfd, 1, H_IO_TIMEOUT_MS), 1), "no reply to \"%s\"", line);
        n = recv(fd, buf + len, cap - 1 - len, 0);
        cr_assert(gt(long, (long)n, 0L), "the admin socket closed during \"%s\"", line);
        len += (size_t)n;
        buf[len] = '\0';
    }
}

/* The line of `reply` that starts with `start` (a whole word or more), copied; NULL when absent. */
static const char *
h_line_starting(const char *reply, const char *start)
{
    size_t n = strlen(start);

    for (const char *l = reply; *l != '\0';) {
        const char *eol = strchr(l, '\n');
        size_t len = eol != NULL ? (size_t)(eol - l) : strlen(l);

        if (len >= n && memcmp(l, start, n) == 0 && (len == n || l[n] == ' '))
            return h_fmt("%.*s", (int)len, l);
        if (eol == NULL)
            break;
        l = eol + 1;
    }
    return NULL;
}

const char *
h_admin_node_line(int fd, const char *cluster, const char *addr)
{
    static char buf[65536];

    h_admin_cmd_buf(fd, "show nodes", buf, sizeof(buf));
    return h_line_starting(buf, h_fmt("%s %s", cluster, addr));
}

const char *
h_word(const char *line, unsigned i)
{
    const char *p = line;

    if (line == NULL)
        return "";
    for (;;) {
        size_t len;

        while (*p == ' ')
            p++;
        len = strcspn(p, " \n");
        if (len == 0)
            return "";
        if (i-- == 0)
            return h_fmt("%.*s", (int)len, p);
        p += len;
    }
}

bool
h_admin_wait_node(int fd, const char *cluster, const char *addr, unsigned word, const char *value,
                  int timeout_ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;

    for (;;) {
        const char *line = h_admin_node_line(fd, cluster, addr);

        if (strcmp(h_word(line, word), value) == 0)
            return true;
        if (h_now_ms() >= deadline)
            return false;
        h_sleep_ms(50);
    }
}

long long
h_admin_stat(int fd, const char *prefix, const char *name)
{
    static char buf[65536];
    const char *line, *p;

    h_admin_cmd_buf(fd, "show stats", buf, sizeof(buf));
    line = h_line_starting(buf, prefix);
    if (line == NULL)
        return -1;
    p = line + strlen(prefix);
    if (name != NULL) {
        const char *key = h_fmt(" %s=", name);

        p = strstr(p, key);
        if (p == NULL)
            return -1;
        p += strlen(key);
    }
    while (*p == ' ')
        p++;
    if (!isdigit((unsigned char)*p))
        return -1;
    return strtoll(p, NULL, 10);
}

long long
h_admin_stat_json(int fd, const char *cluster, const char *object, const char *key)
{
    static char buf[65536];
    const char *start, *end, *p, *k;

    h_admin_cmd_buf(fd, "show stats json", buf, sizeof(buf));
    start = strstr(buf, h_fmt("\"%s\":{", cluster));
    if (start == NULL)
        return -1;
    /* x's object ends where y's begins; y's runs to the end. */
    end = strcmp(cluster, "x") == 0 ? strstr(start, "\"y\":{") : NULL;
    if (end == NULL)
        end = start + strlen(start);
    p = start;
    if (object != NULL) {
        k = h_fmt("\"%s\":{", object);
        p = memmem(p, (size_t)(end - p), k, strlen(k));
        if (p == NULL)
            return -1;
    }
    k = h_fmt("\"%s\":", key);
    p = memmem(p, (size_t)(end - p), k, strlen(k));
    if (p == NULL || !isdigit((unsigned char)p[strlen(k)]))
        return -1;
    return strtoll(p + strlen(k), NULL, 10);
}

const char *
h_admin_key_for_node(int fd, const char *kind, const char *addr, unsigned nth)
{
    static char buf[4096];
    const char *want = h_fmt("\nnode %s\n", addr);

    for (unsigned i = 0; i < 2000; i++) {
        char value[16];

        snprintf(value, sizeof(value), "k%u", i);
        h_admin_cmd_buf(fd, h_fmt("which %s=%s", kind, value), buf, sizeof(buf));
        if (strstr(buf, want) != NULL && nth-- == 0)
            return h_fmt("%s", value);
    }
    return NULL;
}

/* ------------------------------------------------------------------ logs */

bool
h_log_wait(const char *path, const char *needle, int timeout_ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;

    for (;;) {
        FILE *f = fopen(path, "re");
        bool found = false;

        if (f != NULL) {
            char *line = NULL;
            size_t cap = 0;

            while (!found && getline(&line, &cap, f) != -1)
                found = strstr(line, needle) != NULL;
            free(line);
            fclose(f);
        }
        if (found)
            return true;
        if (h_now_ms() >= deadline)
            return false;
        h_sleep_ms(20);
    }
}

size_t
h_log_count(const char *path, const char *needle)
{
    FILE *f = fopen(path, "re");
    char *line = NULL;
    size_t cap = 0, n = 0;

    if (f == NULL)
        return 0;
    while (getline(&line, &cap, f) != -1)
        n += strstr(line, needle) != NULL;
    free(line);
    fclose(f);
    return n;
}

const char *
h_log_line(const char *path, const char *needle)
{
    FILE *f = fopen(path, "re");
    const char *found = NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;

    if (f == NULL)
        return NULL;
    while (found == NULL && (n = getline(&line, &cap, f)) != -1)
        if (strstr(line, needle) != NULL)
            found = h_fmt("%.*s", (int)(n > 0 && line[n - 1] == '\n' ? n - 1 : n), line);
    free(line);
    fclose(f);
    return found;
}

bool
h_admin_wait_stat(int fd, const char *prefix, const char *name, long long want, int timeout_ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;

    while (h_admin_stat(fd, prefix, name) != want) {
        if (h_now_ms() >= deadline)
            return false;
        h_sleep_ms(10);
    }
    return true;
}

void
h_await_stat(int fd, const char *prefix, const char *name, long long want)
{
    cr_assert(h_admin_wait_stat(fd, prefix, name, want, H_IO_TIMEOUT_MS),
              "show stats \"%s\" %s did not become %lld within %d ms (-1: absent):\n%s", prefix,
              name != NULL ? name : "", want, H_IO_TIMEOUT_MS, h_admin_cmd(fd, "show stats"));
}

void
h_admin_sync(int fd)
{
    static char buf[4096];

    /* The first reply may come in the very turn that also handles the events ready before the
     * call; the second command is read in a later turn, after all of them. */
    for (int i = 0; i < 2; i++) {
        h_admin_cmd_buf(fd, "show version", buf, sizeof(buf));
        cr_assert(ne(ptr, strstr(buf, "\npid "), NULL), "show version: %s", buf);
    }
}

void
h_assert_stat(int fd, const char *prefix, const char *name, long long want)
{
    long long got = h_admin_stat(fd, prefix, name);

    cr_assert(eq(i64, got, want), "show stats \"%s\" %s: %lld, expected %lld (-1: absent):\n%s",
              prefix, name != NULL ? name : "", got, want, h_admin_cmd(fd, "show stats"));
}

void
h_assert_stat_json(int fd, const char *cluster, const char *object, const char *key, long long want)
{
    long long got = h_admin_stat_json(fd, cluster, object, key);

    cr_assert(eq(i64, got, want), "show stats json %s %s %s: %lld, expected %lld (-1: absent):\n%s",
              cluster, object != NULL ? object : "", key, got, want,
              h_admin_cmd(fd, "show stats json"));
}

bool
h_under_sanitizer(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return true;
#endif
#endif
    const char *bin = getenv("XF_BIN");

    return bin != NULL && (strstr(bin, "/san/") != NULL || strstr(bin, "/tsan/") != NULL);
}
