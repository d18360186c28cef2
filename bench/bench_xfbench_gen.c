/* bench/bench_xfbench_gen.c -- xfbench's random numbers, split keys (uniform, Zipf), rate schedule.
 */
#include "bench/bench_xfbench.h"

#include <math.h>
#include <string.h>

const char *const bench_xfb_err_names[BENCH_XFB_ERR_COUNT] = {
    "connect", "timeout", "reset", "protocol", "status_4xx", "status_5xx", "tls", "tls_verify",
};

size_t
bench_xfb_err_kinds(const struct bench_xfb_opts *o)
{
    return o->tls ? BENCH_XFB_ERR_COUNT : BENCH_XFB_ERR_TLS;
}

void
bench_xfb_rng_seed(struct bench_xfb_rng *r, uint64_t seed)
{
    r->s = seed;
}

/* splitmix64: one add and a mix per number; plenty for picking keys. */
uint64_t
bench_xfb_rng_next(struct bench_xfb_rng *r)
{
    uint64_t z = (r->s += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

double
bench_xfb_rng_unit(struct bench_xfb_rng *r)
{
    return (double)(bench_xfb_rng_next(r) >> 11) * 0x1.0p-53;
}

static double
bench_xfb_zipf_helper1(double x)
{
    return fabs(x) > 1e-8 ? log1p(x) / x : 1 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x));
}

static double
bench_xfb_zipf_helper2(double x)
{
    return fabs(x) > 1e-8 ? expm1(x) / x : 1 + x * 0.5 * (1 + x * (1.0 / 3.0) * (1 + 0.25 * x));
}

/* H(x), the integral of h(x) = x^-s, shifted so that it is continuous at s = 1. */
static double
bench_xfb_zipf_hint(const struct bench_xfb_zipf *z, double x)
{
    double lx = log(x);

    return bench_xfb_zipf_helper2((1 - z->s) * lx) * lx;
}

static double
bench_xfb_zipf_h(const struct bench_xfb_zipf *z, double x)
{
    return exp(-z->s * log(x));
}

static double
bench_xfb_zipf_hint_inv(const struct bench_xfb_zipf *z, double x)
{
    double t = x * (1 - z->s);

    if (t < -1)
        t = -1;
    return exp(bench_xfb_zipf_helper1(t) * x);
}

int
bench_xfb_zipf_init(struct bench_xfb_zipf *z, uint64_t n, double s)
{
    if (n == 0 || !(s > 0) || !isfinite(s))
        return -1;
    z->s = s;
    z->n = n;
    z->h_x1 = bench_xfb_zipf_hint(z, 1.5) - 1;
    z->h_n = bench_xfb_zipf_hint(z, (double)n + 0.5);
    z->cut = 2 - bench_xfb_zipf_hint_inv(z, bench_xfb_zipf_hint(z, 2.5) - bench_xfb_zipf_h(z, 2));
    return 0;
}

uint64_t
bench_xfb_zipf_draw(const struct bench_xfb_zipf *z, struct bench_xfb_rng *r)
{
    /* Rejections are rare (the hat hugs the distribution: the unit test's 2 million draws take
     * a few ms); the loop is bounded all the same, and the last candidate is then taken. */
    uint64_t k = 1;

    for (int round = 0; round < 64; round++) {
        double u = z->h_n + bench_xfb_rng_unit(r) * (z->h_x1 - z->h_n);
        double x = bench_xfb_zipf_hint_inv(z, u);
        double kd = floor(x + 0.5);

        if (kd < 1)
            kd = 1;
        else if (kd > (double)z->n)
            kd = (double)z->n;
        k = (uint64_t)kd;
        if (kd - x <= z->cut || u >= bench_xfb_zipf_hint(z, kd + 0.5) - bench_xfb_zipf_h(z, kd))
            return k;
    }
    return k;
}

uint64_t
bench_xfb_keys_draw(const struct bench_xfb_keys *k, struct bench_xfb_rng *r)
{
    if (k->zipf)
        return bench_xfb_zipf_draw(&k->z, r);
    /* Lemire's multiply-shift: uniform over 1..n without a division. */
    return 1 + (uint64_t)(((unsigned __int128)bench_xfb_rng_next(r) * k->n) >> 64);
}

size_t
bench_xfb_key_format(uint64_t id, char *out)
{
    char digits[24];
    size_t n = 0, plen = sizeof(BENCH_XFB_KEY_PREFIX) - 1;

    do {
        digits[n++] = (char)('0' + id % 10);
        id /= 10;
    } while (id > 0);
    memcpy(out, BENCH_XFB_KEY_PREFIX, plen);
    for (size_t i = 0; i < n; i++)
        out[plen + i] = digits[n - 1 - i];
    return plen + n;
}

uint64_t
bench_xfb_rate_due(const struct bench_xfb_rate *r, uint64_t i)
{
    return r->start_ns + (uint64_t)((unsigned __int128)i * UINT64_C(1000000000000) / r->rate_milli);
}

void
bench_xfb_counts_add(struct bench_xfb_counts *dst, const struct bench_xfb_counts *src)
{
    dst->responses += src->responses;
    for (size_t i = 0; i < BENCH_XFB_ERR_COUNT; i++)
        dst->err[i] += src->err[i];
    dst->routed += src->routed;
    for (size_t i = 0; i < 10; i++)
        dst->routed_tenth[i] += src->routed_tenth[i];
    dst->on_y += src->on_y;
    dst->bytes += src->bytes;
    dst->handshakes += src->handshakes;
    dst->resumed += src->resumed;
}

uint64_t
bench_xfb_counts_errors(const struct bench_xfb_counts *c)
{
    uint64_t n = 0;

    for (size_t i = 0; i < BENCH_XFB_ERR_COUNT; i++)
        n += c->err[i];
    return n;
}
