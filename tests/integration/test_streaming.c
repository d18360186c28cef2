/* tests/integration/test_streaming.c -- bodies stream through in both directions, memory stays
 * flat. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <string.h>

#define XXH_STATIC_LINKING_ONLY /* XXH64_state_t on the stack */
#include <xxhash.h>

#include "tests/integration/harness.h"

TestSuite(streaming, .init = h_setup, .fini = h_teardown);

/*
 * crossfade's resident memory may grow by less than this while a body of any size passes: socket
 * buffers and a few read buffers, never the body. The big transfers move XF_TEST_BIG_MB MiB
 * (default 1024); the chunked and close-delimited ones a quarter of it.
 */
#define RSS_GROWTH_MAX_KIB (32L * 1024)
#define PIECE              (26u * 40330u) /* ~1 MiB, a whole number of pattern periods */
#define SAMPLE_EVERY       (UINT64_C(64) << 20)

struct rss_watch {
    pid_t pid;
    long base_kib;
    long peak_kib;
};

static void
rss_start(struct rss_watch *w, struct h_proxy *p)
{
    w->pid = p->proc->pid;
    w->base_kib = h_rss_kib(w->pid);
    w->peak_kib = w->base_kib;
    cr_assert(gt(long, w->base_kib, 0L), "no VmRSS for crossfade");
}

static void
rss_sample(struct rss_watch *w)
{
    long kib = h_rss_kib(w->pid);

    if (kib > w->peak_kib)
        w->peak_kib = kib;
}

static void
rss_assert_flat(const struct rss_watch *w, uint64_t moved)
{
    cr_assert(lt(long, w->peak_kib - w->base_kib, RSS_GROWTH_MAX_KIB),
              "crossfade grew from %ld KiB to %ld KiB while %llu MiB passed (limit +%ld KiB)",
              w->base_kib, w->peak_kib, (unsigned long long)(moved >> 20), RSS_GROWTH_MAX_KIB);
}

/* A proxy in front of one xf-upstream, with one request done so pools and buffers exist. */
static struct h_proxy *
warm_proxy(struct h_conn **c)
{
    struct h_upstream *u = h_upstream_start("u1", NULL);
    struct h_proxy *p =
        h_proxy_start(&(struct h_proxy_opts){.x = {{u->port}}, .small_quarantine = true});
    struct h_msg m;

    *c = h_connect(p->port);
    cr_assert(eq(int, h_get(*c, "/", &m), 0), "%s", m.error);
    cr_assert(eq(int, m.status, 200));
    return p;
}

static int
send_chunk(struct h_conn *c, const char *data, size_t len)
{
    if (h_sendf(c, "%zx\r\n", len) == -1 || h_send(c, data, len) == -1)
        return -1;
    return h_send_str(c, "\r\n");
}

/* Uploads `total` pattern bytes to /count, chunked or with a Content-Length, and checks what the
 * node counted. */
static void
upload(bool chunked, uint64_t total)
{
    struct h_conn *c;
    struct h_proxy *p = warm_proxy(&c);
    char *buf = h_alloc(PIECE);
    XXH64_state_t st;
    struct rss_watch w;
    struct h_msg m;
    uint64_t sent = 0, bytes, hash;

    h_pattern_fill(buf, PIECE, 0);
    XXH64_reset(&st, 0);
    rss_start(&w, p);
    if (chunked)
        h_sendf(c, "POST /count HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n",
                H_HOST);
    else
        h_sendf(c, "POST /count HTTP/1.1\r\nHost: %s\r\nContent-Length: %llu\r\n\r\n", H_HOST,
                (unsigned long long)total);
    while (sent < total) {
        size_t n = (size_t)(total - sent < PIECE ? total - sent : PIECE);
        int r;

        if (chunked) {
            /* Two chunks of unequal sizes per piece. */
            size_t first = n > 12345 ? 12345 : n;

            r = send_chunk(c, buf, first);
            if (r == 0 && n > first)
                r = send_chunk(c, buf + first, n - first);
        } else {
            r = h_send(c, buf, n);
        }
        cr_assert(eq(int, r, 0), "the upload stalled or failed after %llu bytes",
                  (unsigned long long)sent);
        XXH64_update(&st, buf, n);
        sent += n;
        if (sent % SAMPLE_EVERY < n)
            rss_sample(&w);
    }
    if (chunked)
        h_send_str(c, "0\r\n\r\n");
    cr_assert(eq(int, h_read_response(c, &m), 0), "%s", m.error);
    rss_sample(&w);
    cr_assert(eq(int, m.status, 200));
    cr_assert(eq(int, h_count_parse(m.body, &bytes, &hash), 0), "not a /count answer: %s", m.body);
    cr_assert(eq(u64, bytes, total), "the node counted %llu of %llu bytes",
              (unsigned long long)bytes, (unsigned long long)total);
    cr_assert(eq(u64, hash, (uint64_t)XXH64_digest(&st)), "the node got other bytes than sent");
    rss_assert_flat(&w, total);
    h_proxy_finish(p);
}

struct download {
    struct rss_watch w;
    uint64_t offset;
    long long bad; /* stream offset of the first byte off the pattern, or -1 */
    bool paused;
};

static int
download_sink(void *ctx, const char *data, size_t len)
{
    struct download *d = ctx;
    long long bad = h_pattern_check(data, len, d->offset);

    if (bad >= 0 && d->bad < 0)
        d->bad = (long long)d->offset + bad;
    d->offset += len;
    if (!d->paused && d->offset >= (UINT64_C(16) << 20)) {
        /* Stop reading a while: a proxy that does not push back buffers the body meanwhile. */
        d->paused = true;
        h_sleep_ms(500); /* the client's pause is the behaviour under test */
        rss_sample(&d->w);
    }
    if (d->offset % SAMPLE_EVERY < len)
        rss_sample(&d->w);
    return 0;
}

/* Downloads `total` bytes from `route` (/bytes, /chunked or /nolength) and checks the pattern. */
static void
download(const char *route, uint64_t total, struct h_msg *m)
{
    struct h_conn *c;
    struct h_proxy *p = warm_proxy(&c);
    struct download d = {.bad = -1};

    rss_start(&d.w, p);
    h_sendf(c, "GET %s/%llu HTTP/1.1\r\nHost: %s\r\n\r\n", route, (unsigned long long)total,
            H_HOST);
    cr_assert(eq(int, h_read_response_ex(c, m, 0, H_IO_TIMEOUT_MS, download_sink, &d), 0), "%s",
              m->error);
    rss_sample(&d.w);
    cr_assert(eq(int, m->status, 200));
    cr_assert(eq(u64, (uint64_t)m->body_len, total));
    cr_assert(eq(i64, d.bad, -1LL), "byte %lld of the body is off the pattern", d.bad);
    rss_assert_flat(&d.w, total);
    h_proxy_finish(p);
}

Test(streaming, a_big_upload_with_content_length_streams_to_the_node_in_flat_memory,
     .timeout = H_BIG_TIMEOUT)
{
    upload(false, h_big_bytes());
}

Test(streaming, a_chunked_upload_streams_to_the_node_in_flat_memory, .timeout = H_BIG_TIMEOUT)
{
    upload(true, h_big_bytes() / 4);
}

Test(streaming, a_big_download_with_content_length_streams_to_the_client_in_flat_memory,
     .timeout = H_BIG_TIMEOUT)
{
    struct h_msg m;

    download("/bytes", h_big_bytes(), &m);
    cr_assert(eq(str, (char *)h_header(&m, "Content-Length"),
                 h_fmt("%llu", (unsigned long long)h_big_bytes())));
}

Test(streaming, a_chunked_download_is_forwarded_chunked_in_flat_memory, .timeout = H_BIG_TIMEOUT)
{
    struct h_msg m;

    download("/chunked", h_big_bytes() / 4, &m);
    cr_assert(m.chunked, "the chunked response did not reach the client chunked:\n%s", m.head);
}

Test(streaming, a_download_delimited_by_close_streams_to_the_client_in_flat_memory,
     .timeout = H_BIG_TIMEOUT)
{
    struct h_msg m;

    download("/nolength", h_big_bytes() / 4, &m);
}
