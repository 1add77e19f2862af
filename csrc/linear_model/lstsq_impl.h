/* Type-generic bodies of the least-squares block kernels (math in lstsq.h), included by lstsq.c
 * once per input type with T (float/double) and SFX(name) = name ## _f / _d. Not a public header;
 * it #undefs its parameters at its end. */

void SFX(fs_lsq_wcolsum)(const T *x, ptrdiff_t ldx, ptrdiff_t nrows, ptrdiff_t p, const double *w,
                         double *acc)
{
    for (ptrdiff_t i = 0; i < nrows; ++i) {
        const T *row = x + i * ldx;
        const double wi = w ? w[i] : 1.0;
        if (wi == 0.0) continue;
        for (ptrdiff_t j = 0; j < p; ++j) acc[j] += wi * (double)row[j];
    }
}

int SFX(fs_lsq_pack)(const T *x, ptrdiff_t ldx, const double *y, ptrdiff_t ldy,
                     ptrdiff_t nrows, ptrdiff_t p, ptrdiff_t k,
                     const double *xmean, const double *ymean, const double *sqrtw,
                     double *out, ptrdiff_t ldo)
{
    if (nrows < 0 || p < 0 || k < 0 || ldo < nrows || ldx < p || (k > 0 && ldy < k))
        return FS_ERR_ARGUMENT;
    for (ptrdiff_t i0 = 0; i0 < nrows; i0 += LSQ_TILE) {
        const ptrdiff_t i1 = (i0 + LSQ_TILE < nrows) ? i0 + LSQ_TILE : nrows;
        for (ptrdiff_t j = 0; j < p; ++j) {
            const double m = xmean ? xmean[j] : 0.0;
            double *col = out + j * ldo;
            for (ptrdiff_t i = i0; i < i1; ++i) {
                const double v = (double)x[i * ldx + j] - m;
                col[i] = sqrtw ? sqrtw[i] * v : v;
            }
        }
        for (ptrdiff_t c = 0; c < k; ++c) {
            const double m = ymean ? ymean[c] : 0.0;
            double *col = out + (p + c) * ldo;
            for (ptrdiff_t i = i0; i < i1; ++i) {
                const double v = y[i * ldy + c] - m;
                col[i] = sqrtw ? sqrtw[i] * v : v;
            }
        }
    }
    return FS_OK;
}

#undef T
#undef SFX
