/* common/xf_judge.c -- a two-proportion z-test and a Mann-Whitney rank test over histograms. */
#include "common/xf_judge.h"

#include <math.h>

double
xf_norm_sf(double z)
{
    return 0.5 * erfc(z / sqrt(2.0));
}

double
xf_two_prop_p(uint64_t ex, uint64_t nx, uint64_t ey, uint64_t ny)
{
    double px, py, p, se;

    if (nx == 0 || ny == 0)
        return 1.0;
    px = (double)ex / (double)nx;
    py = (double)ey / (double)ny;
    p = (double)(ex + ey) / (double)(nx + ny);
    se = sqrt(p * (1.0 - p) * (1.0 / (double)nx + 1.0 / (double)ny));
    if (se == 0.0)
        return 1.0;
    return xf_norm_sf((py - px) / se);
}

double
xf_mann_whitney_p(const uint64_t *hx, const uint64_t *hy, size_t nb, double *auc)
{
    double nx = 0, ny = 0, u = 0, below_x = 0, ties = 0, n, mean, var;

    for (size_t b = 0; b < nb; b++) {
        nx += (double)hx[b];
        ny += (double)hy[b];
    }
    *auc = 0.5;
    if (nx == 0 || ny == 0)
        return 1.0;
    /* U of y: for each value of y, the values of x below it, and half of those tied with it. */
    for (size_t b = 0; b < nb; b++) {
        double t = (double)hx[b] + (double)hy[b];

        u += (double)hy[b] * (below_x + 0.5 * (double)hx[b]);
        below_x += (double)hx[b];
        ties += t * t * t - t;
    }
    n = nx + ny;
    *auc = u / (nx * ny);
    mean = nx * ny / 2.0;
    var = nx * ny / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if (var <= 0.0)
        return 1.0;
    /* Continuity correction of one half toward the mean. */
    return xf_norm_sf((u - mean - 0.5) / sqrt(var));
}
