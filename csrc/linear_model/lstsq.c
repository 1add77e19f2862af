#include "linear_model/lstsq.h"
#include "lib/fastseq.h"

/* Rows handled per tile of the packing transpose: a tile reads TILE rows of x (each row's cache
 * lines are reused across consecutive j) and writes TILE contiguous doubles per output column. */
#define LSQ_TILE 16

#define DEFINE_WCOLSUM(NAME, T)                                                              \
void NAME(const T *x, ptrdiff_t ldx, ptrdiff_t nrows, ptrdiff_t p, const double *w,          \
          double *acc)                                                                       \
{                                                                                            \
    for (ptrdiff_t i = 0; i < nrows; ++i) {                                                  \
        const T *row = x + i * ldx;                                                          \
        const double wi = w ? w[i] : 1.0;                                                    \
        if (wi == 0.0) continue;                                                             \
        for (ptrdiff_t j = 0; j < p; ++j) acc[j] += wi * (double)row[j];                     \
    }                                                                                        \
}

DEFINE_WCOLSUM(fs_lsq_wcolsum_d, double)
DEFINE_WCOLSUM(fs_lsq_wcolsum_f, float)

#define DEFINE_PACK(NAME, T)                                                                 \
int NAME(const T *x, ptrdiff_t ldx, const double *y, ptrdiff_t ldy,                          \
         ptrdiff_t nrows, ptrdiff_t p, ptrdiff_t k,                                          \
         const double *xmean, const double *ymean, const double *sqrtw,                     \
         double *out, ptrdiff_t ldo)                                                         \
{                                                                                            \
    if (nrows < 0 || p < 0 || k < 0 || ldo < nrows || ldx < p || (k > 0 && ldy < k))         \
        return FS_ERR_ARGUMENT;                                                         \
    for (ptrdiff_t i0 = 0; i0 < nrows; i0 += LSQ_TILE) {                                     \
        const ptrdiff_t i1 = (i0 + LSQ_TILE < nrows) ? i0 + LSQ_TILE : nrows;                \
        for (ptrdiff_t j = 0; j < p; ++j) {                                                  \
            const double m = xmean ? xmean[j] : 0.0;                                         \
            double *col = out + j * ldo;                                                     \
            for (ptrdiff_t i = i0; i < i1; ++i) {                                            \
                const double v = (double)x[i * ldx + j] - m;                                 \
                col[i] = sqrtw ? sqrtw[i] * v : v;                                           \
            }                                                                                \
        }                                                                                    \
        for (ptrdiff_t c = 0; c < k; ++c) {                                                  \
            const double m = ymean ? ymean[c] : 0.0;                                         \
            double *col = out + (p + c) * ldo;                                               \
            for (ptrdiff_t i = i0; i < i1; ++i) {                                            \
                const double v = y[i * ldy + c] - m;                                         \
                col[i] = sqrtw ? sqrtw[i] * v : v;                                           \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    return FS_OK;                                                                       \
}

DEFINE_PACK(fs_lsq_pack_d, double)
DEFINE_PACK(fs_lsq_pack_f, float)
