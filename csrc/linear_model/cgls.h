/* CGLS kernels: the fused normal-equation product of conjugate-gradient least squares.
 *
 * One call computes, in ONE pass over the matrix X (n x p, dense row-major or CSR), for a block
 * of k vectors V (p x k, row-major, float64):
 *
 *     E = X V - 1 c^T (+ B)            (n x k; E is never stored, only a row / row block of it)
 *     U = diag(w) E                    (w: sample weights, NULL = all ones)
 *     T = X^T U                        (p x k, float64, overwritten)
 *     sumsq[l] = sum_i w_i E_il^2      (float64)
 *     usum[l]  = sum_i U_il            (float64; the driver uses it for the column offset)
 *
 * With V = p (a search direction) and no B this is T = A^T W A p, sumsq = ||A p||_W^2; with
 * V = -x, c = -mu^T x and B = b it is the true residual pass T = A^T W (b - A x),
 * sumsq = ||b - A x||_W^2. The column offset mu (intercept centering, A_c = X - 1 mu^T) enters only
 * through c = mu^T V here and T -= mu usum^T in the driver, so X is never centred or copied.
 *
 * Row i is read once: e_i = x_i . V is formed and then T += x_i^T u_i while x_i is still in cache.
 * Matrix data is float or double; every accumulation is in double. `nthreads` > 1 (OpenMP)
 * splits the rows; each extra thread accumulates into its own p x k slice of `work`
 * ((nthreads - 1) * p * k doubles), reduced into T at the end. Without OpenMP it runs serially.
 * All functions return FS_OK or FS_ERR_ARGUMENT.
 */
#ifndef FS_CGLS_H
#define FS_CGLS_H

#include <stddef.h>
#include <stdint.h>

#include "lib/fastseq.h"

/* Number of threads the kernels may use (1 without OpenMP). */
int fs_cgls_max_threads(void);

int fs_cgls_dense_normal_d(ptrdiff_t n, ptrdiff_t p, ptrdiff_t k, const double *X, ptrdiff_t ldx,
                           const double *V, const double *c, const double *B, ptrdiff_t ldb,
                           const double *w, double *T, double *sumsq, double *usum, int nthreads,
                           double *work);
int fs_cgls_dense_normal_f(ptrdiff_t n, ptrdiff_t p, ptrdiff_t k, const float *X, ptrdiff_t ldx,
                           const double *V, const double *c, const double *B, ptrdiff_t ldb,
                           const double *w, double *T, double *sumsq, double *usum, int nthreads,
                           double *work);
int fs_cgls_dense_colstats_d(ptrdiff_t n, ptrdiff_t p, const double *X, ptrdiff_t ldx,
                             const double *w, double *colsumsq, double *colsum);
int fs_cgls_dense_colstats_f(ptrdiff_t n, ptrdiff_t p, const float *X, ptrdiff_t ldx,
                             const double *w, double *colsumsq, double *colsum);

/* CSR: indptr (n + 1), indices / data (nnz); column indices must lie in [0, p). Index arrays
 * int32 (_i32_*) or int64 (_i64_*), as scipy.sparse stores them. */
int fs_cgls_csr_normal_i32_d(ptrdiff_t n, ptrdiff_t p, ptrdiff_t k, const double *data,
                             const int32_t *indices, const int32_t *indptr, const double *V,
                             const double *c, const double *B, ptrdiff_t ldb, const double *w,
                             double *T, double *sumsq, double *usum, int nthreads, double *work);
int fs_cgls_csr_colstats_i32_d(ptrdiff_t n, ptrdiff_t p, const double *data,
                               const int32_t *indices, const int32_t *indptr, const double *w,
                               double *colsumsq, double *colsum);
int fs_cgls_csr_normal_i64_d(ptrdiff_t n, ptrdiff_t p, ptrdiff_t k, const double *data,
                             const int64_t *indices, const int64_t *indptr, const double *V,
                             const double *c, const double *B, ptrdiff_t ldb, const double *w,
                             double *T, double *sumsq, double *usum, int nthreads, double *work);
int fs_cgls_csr_colstats_i64_d(ptrdiff_t n, ptrdiff_t p, const double *data,
                               const int64_t *indices, const int64_t *indptr, const double *w,
                               double *colsumsq, double *colsum);
int fs_cgls_csr_normal_i32_f(ptrdiff_t n, ptrdiff_t p, ptrdiff_t k, const float *data,
                             const int32_t *indices, const int32_t *indptr, const double *V,
                             const double *c, const double *B, ptrdiff_t ldb, const double *w,
                             double *T, double *sumsq, double *usum, int nthreads, double *work);
int fs_cgls_csr_colstats_i32_f(ptrdiff_t n, ptrdiff_t p, const float *data, const int32_t *indices,
                               const int32_t *indptr, const double *w, double *colsumsq,
                               double *colsum);
int fs_cgls_csr_normal_i64_f(ptrdiff_t n, ptrdiff_t p, ptrdiff_t k, const float *data,
                             const int64_t *indices, const int64_t *indptr, const double *V,
                             const double *c, const double *B, ptrdiff_t ldb, const double *w,
                             double *T, double *sumsq, double *usum, int nthreads, double *work);
int fs_cgls_csr_colstats_i64_f(ptrdiff_t n, ptrdiff_t p, const float *data, const int64_t *indices,
                               const int64_t *indptr, const double *w, double *colsumsq,
                               double *colsum);

#endif /* FS_CGLS_H */
