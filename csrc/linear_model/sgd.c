/* Fused elementwise pieces of one mini-batch SGD step; see sgd.h for the notation. */
#include <math.h>
#include <string.h>

#include "linear_model/sgd.h"

#define T double
#define SFX(name) name##_d
#include "linear_model/sgd_impl.h"
#define T float
#define SFX(name) name##_f
#include "linear_model/sgd_impl.h"

/* fs_all_finite_d/_f (declared in sgd.h) are defined once, in recurrent.c: same contract. */

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
