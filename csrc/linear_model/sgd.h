/* Fused elementwise pieces of one mini-batch SGD step on the squared loss.
 *
 * The driver (src/fastseq/linear_model/_sgd_fast.pyx) does the matrix products with BLAS; these kernels do the
 * O(m k) and O(nnz k) work around them. Notation for one mini-batch:
 *   rows[0..m)      indices of the batch samples (a slice of the epoch's permutation)
 *   X (n, p)        dense row-major, or CSR (indptr int64-like ptrdiff_t, indices int32, data)
 *   Y (n, k)        targets, row-major;  sw (n,) sample weights
 *   W = scale * V   coefficients (k, p) row-major, kept as a scaled vector so that the L2
 *                   shrinkage W <- (1 - eta alpha) W is O(1) (Bottou's trick, as in sklearn)
 *   b (k,)          intercepts
 *   R (m, k)        residuals, row-major
 * Losses are accumulated in double for both precisions.
 */
#ifndef FS_SGD_H
#define FS_SGD_H

#include <stddef.h>
#include <stdint.h>

/* On entry R[i, j] = (X[rows[i]] @ W.T)[j].
 * On exit R[i, j] = sw_i * (R[i, j] + b[j] - Y[rows[i], j]), the per-sample gradient factor of
 * 0.5 * sw_i * ||r_i||^2. Returns the weighted batch loss sum_i 0.5 * sw_i * ||r_i||^2. */
double fs_sgd_residual_d(ptrdiff_t m, ptrdiff_t k, const ptrdiff_t *rows, const double *Y,
                         const double *sw, const double *b, double *R);
double fs_sgd_residual_f(ptrdiff_t m, ptrdiff_t k, const ptrdiff_t *rows, const float *Y,
                         const float *sw, const float *b, float *R);

/* Sparse residual: R[i, j] = scale * sum_q data[q] V[j, indices[q]] over the stored entries q of
 * row rows[i], then the same finishing as fs_sgd_residual_* (returns the weighted batch loss). */
double fs_sgd_csr_residual_d(ptrdiff_t m, ptrdiff_t k, ptrdiff_t p, const ptrdiff_t *rows,
                             const ptrdiff_t *indptr, const int32_t *indices, const double *data,
                             const double *V, double scale, const double *Y, const double *sw,
                             const double *b, double *R);
double fs_sgd_csr_residual_f(ptrdiff_t m, ptrdiff_t k, ptrdiff_t p, const ptrdiff_t *rows,
                             const ptrdiff_t *indptr, const int32_t *indices, const float *data,
                             const float *V, float scale, const float *Y, const float *sw,
                             const float *b, float *R);

/* Sparse gradient step: V[j, indices[q]] += coef * R[i, j] * data[q] for every stored entry q of
 * every batch row i, i.e. V += coef * R.T @ X[rows]  in O(nnz(batch) * k). */
void fs_sgd_csr_update_d(ptrdiff_t m, ptrdiff_t k, ptrdiff_t p, const ptrdiff_t *rows,
                         const ptrdiff_t *indptr, const int32_t *indices, const double *data,
                         const double *R, double coef, double *V);
void fs_sgd_csr_update_f(ptrdiff_t m, ptrdiff_t k, ptrdiff_t p, const ptrdiff_t *rows,
                         const ptrdiff_t *indptr, const int32_t *indices, const float *data,
                         const float *R, float coef, float *V);

/* Intercept step: b[j] += coef * sum_i R[i, j]. */
void fs_sgd_intercept_d(ptrdiff_t m, ptrdiff_t k, const double *R, double coef, double *b);
void fs_sgd_intercept_f(ptrdiff_t m, ptrdiff_t k, const float *R, float coef, float *b);

/* Running mean for ASGD: avg[i] += mu * (scale * V[i] - avg[i]), mu = 1 / (number averaged). */
void fs_sgd_average_d(ptrdiff_t len, const double *V, double scale, double mu, double *avg);
void fs_sgd_average_f(ptrdiff_t len, const float *V, float scale, float mu, float *avg);

/* Gather batch rows of a dense row-major X (n, p): Xb[i, :] = X[rows[i], :]. */
void fs_sgd_gather_d(ptrdiff_t m, ptrdiff_t p, const ptrdiff_t *rows, const double *X, double *Xb);
void fs_sgd_gather_f(ptrdiff_t m, ptrdiff_t p, const ptrdiff_t *rows, const float *X, float *Xb);

/* 1 if rows[i] == rows[0] + i for all i < m (the batch is a contiguous block of X: no gather). */
int fs_sgd_rows_contiguous(ptrdiff_t m, const ptrdiff_t *rows);

/* Prefetch hints for upcoming mini-batches. A shuffled epoch reads rows of X (and of Y, sw) in
 * random order, so each new row is a cache miss: issuing the loads one batch ahead hides them.
 * Dense: rows `next` (m_next of them) of X with `row_bytes` bytes each, and their Y / sw entries.
 * CSR: two stages, since a row's address needs indptr[row] first: indptr entries of the batch
 * after next (`after`), data/indices of the next batch (`next`, whose indptr was prefetched one
 * step earlier). No-ops on compilers without __builtin_prefetch. */
void fs_sgd_prefetch_dense(ptrdiff_t m_next, const ptrdiff_t *next, const char *X,
                           size_t row_bytes, const char *Y, size_t y_row_bytes, const char *sw,
                           size_t sw_bytes);
void fs_sgd_prefetch_csr(ptrdiff_t m_next, const ptrdiff_t *next, ptrdiff_t m_after,
                         const ptrdiff_t *after, const ptrdiff_t *indptr, const int32_t *indices,
                         const char *data, size_t data_bytes, const char *Y, size_t y_row_bytes,
                         const char *sw, size_t sw_bytes);

/* 1 if every x[i] is finite. */
int fs_all_finite_d(ptrdiff_t len, const double *x);
int fs_all_finite_f(ptrdiff_t len, const float *x);

#endif /* FS_SGD_H */
