/* proxy/px_buf.c -- growable byte buffers that hold no memory while empty. */
#include "proxy/px.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define PX_BUF_MIN   16384u /* the first block of an output: a head and some body */
#define PX_BUF_SMALL 1024u  /* the first block of a partial request head, as nginx's */

/*
 * A few first blocks of PX_BUF_MIN bytes kept per thread: a keep-alive request takes one for the
 * head it sends the node and one for the response head it sends the client, and gives both back
 * within microseconds. glibc serves blocks this large outside its per-thread cache, so keeping
 * them here saves two malloc/free pairs per request and keeps the same hot memory in use. Each
 * worker thread has its own (no lock); px_buf_cache_drain empties it when the thread ends.
 */
#define PX_BUF_CACHE 8u
static __thread char *px_buf_cache[PX_BUF_CACHE];
static __thread unsigned px_buf_cached;

static char *
px_buf_block_get(void)
{
    if (px_buf_cached > 0)
        return px_buf_cache[--px_buf_cached];
    return malloc(PX_BUF_MIN);
}

/* Frees a block of `cap` bytes, or keeps it for the next buffer when it is a first block. */
static void
px_buf_block_put(char *p, size_t cap)
{
    if (cap == PX_BUF_MIN && p != NULL && px_buf_cached < PX_BUF_CACHE)
        px_buf_cache[px_buf_cached++] = p;
    else
        free(p);
}

void
px_buf_cache_drain(void)
{
    while (px_buf_cached > 0)
        free(px_buf_cache[--px_buf_cached]);
}

/* px_buf_reserve with the size of the first block: a buffer grows from `first` bytes, doubling. */
static char *
px_buf_grow(struct px_buf *b, size_t n, size_t first)
{
    size_t len = px_buf_len(b);
    size_t need, cap;
    char *p;

    if (b->failed)
        return NULL;
    if (b->cap - b->end >= n)
        return b->data + b->end;
    if (b->start > 0 && b->cap - len >= n) {
        memmove(b->data, b->data + b->start, len);
        b->start = 0;
        b->end = len;
        return b->data + b->end;
    }
    need = len + n;
    if (need < len)
        goto fail; /* n so large that the size wraps */
    cap = b->cap ? b->cap : first;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            goto fail;
        cap *= 2;
    }
    if (b->cap == 0 && cap == PX_BUF_MIN) {
        p = px_buf_block_get();
        if (p == NULL)
            goto fail;
    } else if (b->start > 0) {
        p = malloc(cap);
        if (p == NULL)
            goto fail;
        memcpy(p, b->data + b->start, len);
        px_buf_block_put(b->data, b->cap);
    } else {
        p = realloc(b->data, cap);
        if (p == NULL)
            goto fail;
    }
    b->data = p;
    b->start = 0;
    b->end = len;
    b->cap = cap;
    return b->data + b->end;
fail:
    b->failed = true;
    return NULL;
}

char *
px_buf_reserve(struct px_buf *b, size_t n)
{
    return px_buf_grow(b, n, PX_BUF_MIN);
}

char *
px_buf_reserve_small(struct px_buf *b, size_t n)
{
    return px_buf_grow(b, n, PX_BUF_SMALL);
}

int
px_buf_append_small(struct px_buf *b, const void *p, size_t n)
{
    char *dst;

    if (n == 0)
        return 0;
    dst = px_buf_grow(b, n, PX_BUF_SMALL);
    if (dst == NULL)
        return -1;
    memcpy(dst, p, n);
    b->end += n;
    return 0;
}

int
px_buf_append(struct px_buf *b, const void *p, size_t n)
{
    char *dst;

    if (n == 0)
        return 0;
    dst = px_buf_reserve(b, n);
    if (dst == NULL)
        return -1;
    memcpy(dst, p, n);
    b->end += n;
    return 0;
}

int
px_buf_printf(struct px_buf *b, const char *fmt, ...)
{
    va_list ap;
    char *dst;
    int n;

    dst = px_buf_reserve(b, 256);
    if (dst == NULL)
        return -1;
    va_start(ap, fmt);
    n = vsnprintf(dst, b->cap - b->end, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return -1;
    }
    if ((size_t)n >= b->cap - b->end) {
        dst = px_buf_reserve(b, (size_t)n + 1);
        if (dst == NULL)
            return -1;
        va_start(ap, fmt);
        vsnprintf(dst, b->cap - b->end, fmt, ap);
        va_end(ap);
    }
    b->end += (size_t)n;
    return 0;
}

void
px_buf_consume(struct px_buf *b, size_t n)
{
    b->start += n;
    if (b->start >= b->end)
        b->start = b->end = 0;
}

void
px_buf_truncate(struct px_buf *b, size_t n)
{
    if (n < px_buf_len(b))
        b->end = b->start + n;
    if (b->start == b->end)
        b->start = b->end = 0;
}

int
px_buf_dup(struct px_buf *b, const void *p, size_t n)
{
    px_buf_free(b);
    if (n == 0)
        return 0;
    b->data = malloc(n);
    if (b->data == NULL) {
        b->failed = true;
        return -1;
    }
    memcpy(b->data, p, n);
    b->end = b->cap = n;
    return 0;
}

int
px_buf_move(struct px_buf *dst, struct px_buf *src)
{
    int rc = 0;

    if (src->failed && !dst->failed) {
        px_buf_free(src);
        dst->failed = true;
        return -1;
    }
    if (px_buf_len(dst) == 0 && !dst->failed) {
        px_buf_free(dst);
        *dst = *src;
        memset(src, 0, sizeof(*src));
        return 0;
    }
    if (px_buf_len(src) > 0)
        rc = px_buf_append(dst, px_buf_head(src), px_buf_len(src));
    px_buf_free(src);
    return rc;
}

void
px_buf_free(struct px_buf *b)
{
    px_buf_block_put(b->data, b->cap);
    b->data = NULL;
    b->start = b->end = b->cap = 0;
    b->failed = false;
}

enum px_rc
px_buf_send(struct px_buf *b, int fd, uint64_t *sent)
{
    if (b->failed) {
        errno = ENOMEM;
        return PX_CLOSE;
    }
    while (px_buf_len(b) > 0) {
        ssize_t n = send(fd, px_buf_head(b), px_buf_len(b), MSG_NOSIGNAL);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return PX_AGAIN;
            return PX_CLOSE;
        }
        if (sent != NULL)
            *sent += (uint64_t)n;
        px_buf_consume(b, (size_t)n);
    }
    return PX_OK;
}
