/* proxy/px_buf.c -- growable byte buffers that hold no memory while empty. */
#include "proxy/px.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

#define PX_BUF_MIN   16384u /* the first block of an output: a head and some body */
#define PX_BUF_SMALL 1024u  /* the first block of a partial request head, as nginx's */

/*
 * First blocks of PX_BUF_MIN bytes: a keep-alive request takes one for the head it sends the node
 * and one for the response head it sends the client, and gives both back within microseconds.
 * Each thread keeps its own free ones (no lock), the most recently used on top.
 *
 * They are carved from page-aligned regions of their own, outside malloc's heap, so that the
 * memory of a burst comes back: in the heap, each freed block would sit between small blocks that
 * outlive it (libevent's entry for each descriptor number), and malloc_trim could only give back
 * the whole pages inside it. px_buf_trim gives back all but the few on top with madvise; the
 * regions stay mapped (their address space is the peak's) and a block given back is faulted in
 * again when next used. Under the sanitizers blocks come from malloc, so that they see each one.
 */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define PX_BUF_MALLOC_BLOCKS 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PX_BUF_MALLOC_BLOCKS 1
#endif

#define PX_BUF_REGION 64u /* blocks per region: 1 MiB */

struct px_blocks {
    char **free; /* owned: the free blocks; [0, cold) given back to the kernel, the rest hot */
    size_t n;    /* free blocks */
    size_t cold; /* of which given back (the bottom ones) */
    size_t low;  /* the fewest free since px_buf_trim_unused last ran */
    size_t cap;  /* room in `free`: at least the blocks this thread carved */
    char *carve; /* the next block of the current region */
    size_t carve_left;
    size_t carved; /* blocks in this thread's regions */
};
static __thread struct px_blocks px_blk;

/* Room for `want` blocks in this thread's free list. */
static int
px_blocks_room(struct px_blocks *k, size_t want)
{
    char **f;

    if (k->cap >= want)
        return 0;
    want = XF_MAX(want, k->cap + PX_BUF_REGION);
    f = realloc(k->free, want * sizeof(*f));
    if (f == NULL)
        return -1;
    k->free = f;
    k->cap = want;
    return 0;
}

static char *
px_buf_block_get(void)
{
    struct px_blocks *k = &px_blk;

    if (k->n > 0) {
        char *p = k->free[--k->n];

        if (k->n < k->cold)
            k->cold = k->n;
        if (k->n < k->low)
            k->low = k->n;
        return p;
    }
#ifdef PX_BUF_MALLOC_BLOCKS
    return malloc(PX_BUF_MIN);
#else
    if (k->carve_left == 0) {
        void *r = mmap(NULL, (size_t)PX_BUF_REGION * PX_BUF_MIN, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

        if (r == MAP_FAILED)
            return NULL;
        /* Room for every block this thread carved, taken now so that putting back its own
         * blocks never fails. */
        if (px_blocks_room(k, k->carved + PX_BUF_REGION) == -1) {
            munmap(r, (size_t)PX_BUF_REGION * PX_BUF_MIN);
            return NULL;
        }
        k->carve = r;
        k->carve_left = PX_BUF_REGION;
        k->carved += PX_BUF_REGION;
    }
    k->carve_left--;
    k->carve += PX_BUF_MIN;
    return k->carve - PX_BUF_MIN;
#endif
}

/* A first block comes back to this thread's free list (another thread's blocks too). */
static void
px_buf_block_put(char *p)
{
    struct px_blocks *k = &px_blk;

    if (p == NULL)
        return;
    if (px_blocks_room(k, k->n + 1) == -1) {
#ifdef PX_BUF_MALLOC_BLOCKS
        free(p);
#else
        madvise(p, PX_BUF_MIN, MADV_DONTNEED); /* its address space stays lost, not its memory */
#endif
        return;
    }
    k->free[k->n++] = p;
}

void
px_buf_trim(size_t keep)
{
    struct px_blocks *k = &px_blk;

    if (k->n <= k->cold + keep)
        return;
#ifdef PX_BUF_MALLOC_BLOCKS
    /* malloc'd blocks: freed, the list closing over them (the cold part stays empty). */
    for (size_t i = k->cold; i < k->n - keep; i++)
        free(k->free[i]);
    memmove(k->free + k->cold, k->free + (k->n - keep), keep * sizeof(*k->free));
    k->n = k->cold + keep;
#else
    for (size_t i = k->cold; i < k->n - keep; i++)
        madvise(k->free[i], PX_BUF_MIN, MADV_DONTNEED);
    k->cold = k->n - keep;
#endif
}

/*
 * The blocks that stayed free since the last call were not needed in that time: all of them but
 * `keep` go back to the kernel. Run once a second, this returns what a past peak of concurrent
 * requests left on the list even when no connection closes (keep-alive clients going idle).
 */
void
px_buf_trim_unused(size_t keep)
{
    struct px_blocks *k = &px_blk;
    size_t hot = k->n - k->cold;
    size_t unused = k->low > k->cold ? k->low - k->cold : 0;

    if (hot > keep && unused > 0)
        px_buf_trim(hot - XF_MIN(unused, hot - keep));
    k->low = k->n;
}

/* The thread ends: its free blocks' memory goes back, and its list (the regions' address space
 * stays: a block another thread still holds comes back to that thread's list). */
void
px_buf_cache_drain(void)
{
    px_buf_trim(0);
    free(px_blk.free);
    px_blk = (struct px_blocks){0};
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
        b->block = true;
    } else if (b->start > 0 || b->block) {
        p = malloc(cap);
        if (p == NULL)
            goto fail;
        memcpy(p, b->data + b->start, len);
        if (b->block)
            px_buf_block_put(b->data);
        else
            free(b->data);
        b->block = false;
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
    if (b->block)
        px_buf_block_put(b->data);
    else
        free(b->data);
    b->data = NULL;
    b->start = b->end = b->cap = 0;
    b->failed = false;
    b->block = false;
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
