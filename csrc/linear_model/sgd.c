/* Fused elementwise pieces of one mini-batch SGD step; see sgd.h for the notation. */
#include <math.h>
#include <string.h>

#include "linear_model/sgd.h"

/* One body per precision: FS_T is the element type, FS_SFX the name suffix. */
#define FS_SGD_DEFINE(FS_T, FS_SFX)                                                              \
    double fs_sgd_residual_##FS_SFX(ptrdiff_t m, ptrdiff_t k, const ptrdiff_t *rows,            \
                                    const FS_T *Y, const FS_T *sw, const FS_T *b, FS_T *R)       \
    {                                                                                            \
        double loss = 0.0;                                                                       \
        for (ptrdiff_t i = 0; i < m; ++i) {                                                      \
            const FS_T *y = Y + rows[i] * k;                                                     \
            const FS_T w = sw[rows[i]];                                                          \
            FS_T *r = R + i * k;                                                                 \
            double sq = 0.0;                                                                     \
            for (ptrdiff_t j = 0; j < k; ++j) {                                                  \
                const FS_T rij = r[j] + b[j] - y[j]; /* prediction - target */                   \
                sq += (double)rij * (double)rij;                                                 \
                r[j] = w * rij;                      /* d(0.5 w r^2)/d(prediction) */            \
            }                                                                                    \
            loss += 0.5 * (double)w * sq;                                                        \
        }                                                                                        \
        return loss;                                                                             \
    }                                                                                            \
                                                                                                 \
    double fs_sgd_csr_residual_##FS_SFX(ptrdiff_t m, ptrdiff_t k, ptrdiff_t p,                  \
                                        const ptrdiff_t *rows, const ptrdiff_t *indptr,          \
                                        const int32_t *indices, const FS_T *data,                \
                                        const FS_T *V, FS_T scale, const FS_T *Y,                \
                                        const FS_T *sw, const FS_T *b, FS_T *R)                  \
    {                                                                                            \
        for (ptrdiff_t i = 0; i < m; ++i) {                                                      \
            FS_T *r = R + i * k;                                                                 \
            const ptrdiff_t lo = indptr[rows[i]], hi = indptr[rows[i] + 1];                      \
            for (ptrdiff_t j = 0; j < k; ++j) {                                                  \
                const FS_T *v = V + j * p;                                                       \
                FS_T acc = 0;                                                                    \
                for (ptrdiff_t q = lo; q < hi; ++q) {                                            \
                    acc += data[q] * v[indices[q]];                                              \
                }                                                                                \
                r[j] = scale * acc;                                                              \
            }                                                                                    \
        }                                                                                        \
        return fs_sgd_residual_##FS_SFX(m, k, rows, Y, sw, b, R);                                \
    }                                                                                            \
                                                                                                 \
    void fs_sgd_csr_update_##FS_SFX(ptrdiff_t m, ptrdiff_t k, ptrdiff_t p,                      \
                                    const ptrdiff_t *rows, const ptrdiff_t *indptr,              \
                                    const int32_t *indices, const FS_T *data, const FS_T *R,     \
                                    FS_T coef, FS_T *V)                                          \
    {                                                                                            \
        for (ptrdiff_t i = 0; i < m; ++i) {                                                      \
            const ptrdiff_t lo = indptr[rows[i]], hi = indptr[rows[i] + 1];                      \
            for (ptrdiff_t j = 0; j < k; ++j) {                                                  \
                const FS_T c = coef * R[i * k + j];                                              \
                FS_T *v = V + j * p;                                                             \
                for (ptrdiff_t q = lo; q < hi; ++q) {                                            \
                    v[indices[q]] += c * data[q];                                                \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    void fs_sgd_intercept_##FS_SFX(ptrdiff_t m, ptrdiff_t k, const FS_T *R, FS_T coef, FS_T *b) \
    {                                                                                            \
        for (ptrdiff_t j = 0; j < k; ++j) {                                                      \
            FS_T s = 0;                                                                          \
            for (ptrdiff_t i = 0; i < m; ++i) {                                                  \
                s += R[i * k + j];                                                               \
            }                                                                                    \
            b[j] += coef * s;                                                                    \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    void fs_sgd_average_##FS_SFX(ptrdiff_t len, const FS_T *V, FS_T scale, FS_T mu, FS_T *avg)  \
    {                                                                                            \
        for (ptrdiff_t i = 0; i < len; ++i) {                                                    \
            avg[i] += mu * (scale * V[i] - avg[i]);                                              \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    void fs_sgd_gather_##FS_SFX(ptrdiff_t m, ptrdiff_t p, const ptrdiff_t *rows, const FS_T *X, \
                                FS_T *Xb)                                                        \
    {                                                                                            \
        for (ptrdiff_t i = 0; i < m; ++i) {                                                      \
            memcpy(Xb + i * p, X + rows[i] * p, (size_t)p * sizeof(FS_T));                       \
        }                                                                                        \
    }

/* fs_all_finite_d/_f (declared in sgd.h) are defined once, in recurrent.c: same contract. */
FS_SGD_DEFINE(double, d)
FS_SGD_DEFINE(float, f)

int fs_sgd_rows_contiguous(ptrdiff_t m, const ptrdiff_t *rows)
{
    for (ptrdiff_t i = 1; i < m; ++i) {
        if (rows[i] != rows[0] + i) {
            return 0;
        }
    }
    return 1;
}

#if defined(__GNUC__) || defined(__clang__)
#define FS_PREFETCH(addr) __builtin_prefetch((const void *)(addr), 0, 3)
#else
#define FS_PREFETCH(addr) ((void)(addr))
#endif
#define FS_CACHE_LINE 64

void fs_sgd_prefetch_dense(ptrdiff_t m_next, const ptrdiff_t *next, const char *X,
                           size_t row_bytes, const char *Y, size_t y_row_bytes, const char *sw,
                           size_t sw_bytes)
{
    for (ptrdiff_t i = 0; i < m_next; ++i) {
        const char *row = X + (size_t)next[i] * row_bytes;
        for (size_t off = 0; off < row_bytes; off += FS_CACHE_LINE) {
            FS_PREFETCH(row + off);
        }
        FS_PREFETCH(Y + (size_t)next[i] * y_row_bytes);
        FS_PREFETCH(sw + (size_t)next[i] * sw_bytes);
    }
}

void fs_sgd_prefetch_csr(ptrdiff_t m_next, const ptrdiff_t *next, ptrdiff_t m_after,
                         const ptrdiff_t *after, const ptrdiff_t *indptr, const int32_t *indices,
                         const char *data, size_t data_bytes, const char *Y, size_t y_row_bytes,
                         const char *sw, size_t sw_bytes)
{
    for (ptrdiff_t i = 0; i < m_after; ++i) {
        FS_PREFETCH(indptr + after[i]);
    }
    for (ptrdiff_t i = 0; i < m_next; ++i) {
        const ptrdiff_t lo = indptr[next[i]], hi = indptr[next[i] + 1];
        if (hi > lo) {
            /* the first line of the row; longer rows stream after it */
            FS_PREFETCH(data + (size_t)lo * data_bytes);
            FS_PREFETCH(indices + lo);
        }
        FS_PREFETCH(Y + (size_t)next[i] * y_row_bytes);
        FS_PREFETCH(sw + (size_t)next[i] * sw_bytes);
    }
}
