/* Least-squares block kernels (layer 1): weighted column sums and the "pack" of a row block.
 *
 * The least-squares drivers (src/fastseq/linear_model/_lstsq_fast.pyx) never form a centered copy of the whole
 * design matrix. They stream X in row blocks; each block is packed into a small float64
 * column-major workspace B (nrows x (p + k)):
 *
 *     B[i, j]     = sqrt(w_i) * (X[i, j] - xmean[j])      j < p      (design, centered)
 *     B[i, p + c] = sqrt(w_i) * (Y[i, c] - ymean[c])      c < k      (targets, centered)
 *
 * so that one SYRK of B gives the augmented Gram [[Xc'WXc, Xc'WYc], [., Yc'WYc]] and one
 * triangular-pentagonal QR step (tpqrt) of [R; B] updates the augmented R factor. Centering each
 * block by the (two-pass) mean before any product is what keeps the Gram accurate when the column
 * means are large compared to the spread (X'X - n mu mu' would cancel catastrophically).
 * float32 inputs are widened to float64 here: all accumulation is float64.
 */
#ifndef FS_LSTSQ_H
#define FS_LSTSQ_H

#include <stddef.h>

/* acc[j] += sum_i w[i] * x[i*ldx + j] for i < nrows, j < p (w == NULL: unit weights). */
void fs_lsq_wcolsum_d(const double *x, ptrdiff_t ldx, ptrdiff_t nrows, ptrdiff_t p,
                           const double *w, double *acc);
void fs_lsq_wcolsum_f(const float *x, ptrdiff_t ldx, ptrdiff_t nrows, ptrdiff_t p,
                           const double *w, double *acc);

/* Pack rows [0, nrows) of row-major x (ld ldx) and y (ld ldy, float64) into the column-major
 * float64 block out (leading dimension ldo >= nrows), as in the header comment.
 * xmean / ymean may be NULL (no centering), sqrtw may be NULL (unit weights), k may be 0
 * (y unused). Returns FS_OK or FS_ERR_ARGUMENT. */
int fs_lsq_pack_d(const double *x, ptrdiff_t ldx, const double *y, ptrdiff_t ldy,
                       ptrdiff_t nrows, ptrdiff_t p, ptrdiff_t k,
                       const double *xmean, const double *ymean, const double *sqrtw,
                       double *out, ptrdiff_t ldo);
int fs_lsq_pack_f(const float *x, ptrdiff_t ldx, const double *y, ptrdiff_t ldy,
                       ptrdiff_t nrows, ptrdiff_t p, ptrdiff_t k,
                       const double *xmean, const double *ymean, const double *sqrtw,
                       double *out, ptrdiff_t ldo);

#endif /* FS_LSTSQ_H */
