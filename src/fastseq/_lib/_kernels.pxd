# The C kernels of csrc/ for the Cython drivers: every header's declarations, and one fused inline
# wrapper per C function family (`fs_<family>` over `fs_<family>_f` / `_d`, and the CSR index
# width `_i32_` / `_i64_` where the C has both), so a driver written over `floating` (and
# `index_t`) calls one name and Cython picks the C function at compile time.
# Each wrapper carries the math it computes; the headers have the full contracts.
# C enums are declared here and cimported by the drivers, never retyped as integers.
from libc.stddef cimport ptrdiff_t
from libc.stdint cimport int32_t, int64_t
from cython cimport floating

ctypedef fused index_t:
    int32_t
    int64_t


# ---- csrc/lib/fastseq.h: status codes --------------------------------------------------------
cdef extern from "lib/fastseq.h" nogil:
    enum fs_status:
        FS_OK
        FS_ERR_NONFINITE
        FS_ERR_SINGULAR
        FS_ERR_ARGUMENT
        FS_ERR_NOMEM
        FS_ERR_NOT_CONVERGED
    const char *fs_status_message(int status)


# ---- csrc/lib/dispatch.h: instruction-set levels ---------------------------------------------
cdef extern from "lib/dispatch.h" nogil:
    enum fs_isa:
        FS_ISA_BEST
        FS_ISA_PORTABLE
        FS_ISA_AVX2
        FS_ISA_AVX512


# ---- csrc/linear_model/lstsq.h ---------------------------------------------------------------
cdef extern from "linear_model/lstsq.h" nogil:
    void fs_lsq_wcolsum_d(const double *x, ptrdiff_t ldx, ptrdiff_t nrows, ptrdiff_t p,
                          const double *w, double *acc)
    void fs_lsq_wcolsum_f(const float *x, ptrdiff_t ldx, ptrdiff_t nrows, ptrdiff_t p,
                          const double *w, double *acc)
    int fs_lsq_pack_d(const double *x, ptrdiff_t ldx, const double *y, ptrdiff_t ldy,
                      ptrdiff_t nrows, ptrdiff_t p, ptrdiff_t k, const double *xmean,
                      const double *ymean, const double *sqrtw, double *out, ptrdiff_t ldo)
    int fs_lsq_pack_f(const float *x, ptrdiff_t ldx, const double *y, ptrdiff_t ldy,
                      ptrdiff_t nrows, ptrdiff_t p, ptrdiff_t k, const double *xmean,
                      const double *ymean, const double *sqrtw, double *out, ptrdiff_t ldo)


cdef inline void fs_lsq_wcolsum(const floating *x, ptrdiff_t ldx, ptrdiff_t nrows, ptrdiff_t p,
                                const double *w, double *acc) noexcept nogil:
    """acc[j] += sum_i w[i] x[i, j]  (float64 accumulation; w NULL: unit weights)."""
    if floating is float:
        fs_lsq_wcolsum_f(x, ldx, nrows, p, w, acc)
    else:
        fs_lsq_wcolsum_d(x, ldx, nrows, p, w, acc)


cdef inline int fs_lsq_pack(const floating *x, ptrdiff_t ldx, const double *y, ptrdiff_t ldy,
                            ptrdiff_t nrows, ptrdiff_t p, ptrdiff_t k, const double *xmean,
                            const double *ymean, const double *sqrtw, double *out,
                            ptrdiff_t ldo) noexcept nogil:
    """out (column-major, ld ldo) = sqrt(w)[:, None] * [x - xmean, y - ymean]; status."""
    if floating is float:
        return fs_lsq_pack_f(x, ldx, y, ldy, nrows, p, k, xmean, ymean, sqrtw, out, ldo)
    else:
        return fs_lsq_pack_d(x, ldx, y, ldy, nrows, p, k, xmean, ymean, sqrtw, out, ldo)


# ---- csrc/linear_model/sgd.h -----------------------------------------------------------------
cdef extern from "linear_model/sgd.h" nogil:
    double fs_sgd_residual_d(Py_ssize_t m, Py_ssize_t k, const Py_ssize_t *rows, const double *Y,
                             const double *sw, const double *b, double *R)
    double fs_sgd_residual_f(Py_ssize_t m, Py_ssize_t k, const Py_ssize_t *rows, const float *Y,
                             const float *sw, const float *b, float *R)
    double fs_sgd_csr_residual_d(Py_ssize_t m, Py_ssize_t k, Py_ssize_t p, const Py_ssize_t *rows,
                                 const Py_ssize_t *indptr, const int32_t *indices,
                                 const double *data, const double *V, double scale,
                                 const double *Y, const double *sw, const double *b, double *R)
    double fs_sgd_csr_residual_f(Py_ssize_t m, Py_ssize_t k, Py_ssize_t p, const Py_ssize_t *rows,
                                 const Py_ssize_t *indptr, const int32_t *indices,
                                 const float *data, const float *V, float scale,
                                 const float *Y, const float *sw, const float *b, float *R)
    void fs_sgd_csr_update_d(Py_ssize_t m, Py_ssize_t k, Py_ssize_t p, const Py_ssize_t *rows,
                             const Py_ssize_t *indptr, const int32_t *indices, const double *data,
                             const double *R, double coef, double *V)
    void fs_sgd_csr_update_f(Py_ssize_t m, Py_ssize_t k, Py_ssize_t p, const Py_ssize_t *rows,
                             const Py_ssize_t *indptr, const int32_t *indices, const float *data,
                             const float *R, float coef, float *V)
    void fs_sgd_intercept_d(Py_ssize_t m, Py_ssize_t k, const double *R, double coef, double *b)
    void fs_sgd_intercept_f(Py_ssize_t m, Py_ssize_t k, const float *R, float coef, float *b)
    void fs_sgd_average_d(Py_ssize_t n, const double *V, double scale, double mu, double *avg)
    void fs_sgd_average_f(Py_ssize_t n, const float *V, float scale, float mu, float *avg)
    void fs_sgd_gather_d(Py_ssize_t m, Py_ssize_t p, const Py_ssize_t *rows, const double *X,
                         double *Xb)
    void fs_sgd_gather_f(Py_ssize_t m, Py_ssize_t p, const Py_ssize_t *rows, const float *X,
                         float *Xb)
    int fs_sgd_rows_contiguous(Py_ssize_t m, const Py_ssize_t *rows)
    void fs_sgd_prefetch_dense(Py_ssize_t m_next, const Py_ssize_t *next, const char *X,
                               size_t row_bytes, const char *Y, size_t y_row_bytes,
                               const char *sw, size_t sw_bytes)
    void fs_sgd_prefetch_csr(Py_ssize_t m_next, const Py_ssize_t *next, Py_ssize_t m_after,
                             const Py_ssize_t *after, const Py_ssize_t *indptr,
                             const int32_t *indices, const char *data, size_t data_bytes,
                             const char *Y, size_t y_row_bytes, const char *sw, size_t sw_bytes)
    # fs_all_finite_f/_d: declared with recurrent/recurrent.h below (one definition, recurrent.c)


cdef inline double fs_sgd_residual(Py_ssize_t m, Py_ssize_t k, const Py_ssize_t *rows,
                                   const floating *Y, const floating *sw, const floating *b,
                                   floating *R) noexcept nogil:
    """R[i] = sw[rows[i]] (R[i] + b - Y[rows[i]]); returns sum_i 0.5 sw_i ||r_i||^2."""
    if floating is float:
        return fs_sgd_residual_f(m, k, rows, Y, sw, b, R)
    else:
        return fs_sgd_residual_d(m, k, rows, Y, sw, b, R)


cdef inline double fs_sgd_csr_residual(Py_ssize_t m, Py_ssize_t k, Py_ssize_t p,
                                       const Py_ssize_t *rows, const Py_ssize_t *indptr,
                                       const int32_t *indices, const floating *data,
                                       const floating *V, floating scale, const floating *Y,
                                       const floating *sw, const floating *b,
                                       floating *R) noexcept nogil:
    """R = scale X[rows] V^T (CSR X), then finished as fs_sgd_residual; returns the loss."""
    if floating is float:
        return fs_sgd_csr_residual_f(m, k, p, rows, indptr, indices, data, V, scale, Y, sw, b, R)
    else:
        return fs_sgd_csr_residual_d(m, k, p, rows, indptr, indices, data, V, scale, Y, sw, b, R)


cdef inline void fs_sgd_csr_update(Py_ssize_t m, Py_ssize_t k, Py_ssize_t p,
                                   const Py_ssize_t *rows, const Py_ssize_t *indptr,
                                   const int32_t *indices, const floating *data,
                                   const floating *R, floating coef, floating *V) noexcept nogil:
    """V += coef R^T X[rows]  (CSR X, O(nnz(batch) k))."""
    if floating is float:
        fs_sgd_csr_update_f(m, k, p, rows, indptr, indices, data, R, coef, V)
    else:
        fs_sgd_csr_update_d(m, k, p, rows, indptr, indices, data, R, coef, V)


cdef inline void fs_sgd_intercept(Py_ssize_t m, Py_ssize_t k, const floating *R, floating coef,
                                  floating *b) noexcept nogil:
    """b += coef R.sum(axis=0)."""
    if floating is float:
        fs_sgd_intercept_f(m, k, R, coef, b)
    else:
        fs_sgd_intercept_d(m, k, R, coef, b)


cdef inline void fs_sgd_average(Py_ssize_t n, const floating *V, floating scale, floating mu,
                                floating *avg) noexcept nogil:
    """avg += mu (scale V - avg)  (ASGD running mean)."""
    if floating is float:
        fs_sgd_average_f(n, V, scale, mu, avg)
    else:
        fs_sgd_average_d(n, V, scale, mu, avg)


cdef inline void fs_sgd_gather(Py_ssize_t m, Py_ssize_t p, const Py_ssize_t *rows,
                               const floating *X, floating *Xb) noexcept nogil:
    """Xb = X[rows]  (dense row-major rows)."""
    if floating is float:
        fs_sgd_gather_f(m, p, rows, X, Xb)
    else:
        fs_sgd_gather_d(m, p, rows, X, Xb)


# ---- csrc/linear_model/cgls.h ----------------------------------------------------------------
cdef extern from "linear_model/cgls.h" nogil:
    int fs_cgls_max_threads()
    int fs_cgls_dense_normal_d(Py_ssize_t n, Py_ssize_t p, Py_ssize_t k, const double *X,
                               Py_ssize_t ldx, const double *V, const double *c, const double *B,
                               Py_ssize_t ldb, const double *w, double *T, double *sumsq,
                               double *usum, int nthreads, double *work)
    int fs_cgls_dense_normal_f(Py_ssize_t n, Py_ssize_t p, Py_ssize_t k, const float *X,
                               Py_ssize_t ldx, const double *V, const double *c, const double *B,
                               Py_ssize_t ldb, const double *w, double *T, double *sumsq,
                               double *usum, int nthreads, double *work)
    int fs_cgls_dense_colstats_d(Py_ssize_t n, Py_ssize_t p, const double *X, Py_ssize_t ldx,
                                 const double *w, double *colsumsq, double *colsum)
    int fs_cgls_dense_colstats_f(Py_ssize_t n, Py_ssize_t p, const float *X, Py_ssize_t ldx,
                                 const double *w, double *colsumsq, double *colsum)
    int fs_cgls_csr_normal_i32_d(Py_ssize_t n, Py_ssize_t p, Py_ssize_t k, const double *data,
                                 const int32_t *indices, const int32_t *indptr, const double *V,
                                 const double *c, const double *B, Py_ssize_t ldb,
                                 const double *w, double *T, double *sumsq, double *usum,
                                 int nthreads, double *work)
    int fs_cgls_csr_normal_i64_d(Py_ssize_t n, Py_ssize_t p, Py_ssize_t k, const double *data,
                                 const int64_t *indices, const int64_t *indptr, const double *V,
                                 const double *c, const double *B, Py_ssize_t ldb,
                                 const double *w, double *T, double *sumsq, double *usum,
                                 int nthreads, double *work)
    int fs_cgls_csr_normal_i32_f(Py_ssize_t n, Py_ssize_t p, Py_ssize_t k, const float *data,
                                 const int32_t *indices, const int32_t *indptr, const double *V,
                                 const double *c, const double *B, Py_ssize_t ldb,
                                 const double *w, double *T, double *sumsq, double *usum,
                                 int nthreads, double *work)
    int fs_cgls_csr_normal_i64_f(Py_ssize_t n, Py_ssize_t p, Py_ssize_t k, const float *data,
                                 const int64_t *indices, const int64_t *indptr, const double *V,
                                 const double *c, const double *B, Py_ssize_t ldb,
                                 const double *w, double *T, double *sumsq, double *usum,
                                 int nthreads, double *work)
    int fs_cgls_csr_colstats_i32_d(Py_ssize_t n, Py_ssize_t p, const double *data,
                                   const int32_t *indices, const int32_t *indptr,
                                   const double *w, double *colsumsq, double *colsum)
    int fs_cgls_csr_colstats_i64_d(Py_ssize_t n, Py_ssize_t p, const double *data,
                                   const int64_t *indices, const int64_t *indptr,
                                   const double *w, double *colsumsq, double *colsum)
    int fs_cgls_csr_colstats_i32_f(Py_ssize_t n, Py_ssize_t p, const float *data,
                                   const int32_t *indices, const int32_t *indptr,
                                   const double *w, double *colsumsq, double *colsum)
    int fs_cgls_csr_colstats_i64_f(Py_ssize_t n, Py_ssize_t p, const float *data,
                                   const int64_t *indices, const int64_t *indptr,
                                   const double *w, double *colsumsq, double *colsum)


cdef inline int fs_cgls_dense_normal(Py_ssize_t n, Py_ssize_t p, Py_ssize_t k, const floating *X,
                                     Py_ssize_t ldx, const double *V, const double *c,
                                     const double *B, Py_ssize_t ldb, const double *w, double *T,
                                     double *sumsq, double *usum, int nthreads,
                                     double *work) noexcept nogil:
    """E = X V - 1 c^T (+ B), U = diag(w) E:  T = X^T U, sumsq = sum_i w_i E_i^2, usum = sum U."""
    if floating is float:
        return fs_cgls_dense_normal_f(n, p, k, X, ldx, V, c, B, ldb, w, T, sumsq, usum, nthreads,
                                      work)
    else:
        return fs_cgls_dense_normal_d(n, p, k, X, ldx, V, c, B, ldb, w, T, sumsq, usum, nthreads,
                                      work)


cdef inline int fs_cgls_csr_normal(Py_ssize_t n, Py_ssize_t p, Py_ssize_t k,
                                   const floating *data, const index_t *indices,
                                   const index_t *indptr, const double *V, const double *c,
                                   const double *B, Py_ssize_t ldb, const double *w, double *T,
                                   double *sumsq, double *usum, int nthreads,
                                   double *work) noexcept nogil:
    """fs_cgls_dense_normal for a CSR X (one pass over its rows)."""
    if floating is float:
        if index_t is int32_t:
            return fs_cgls_csr_normal_i32_f(n, p, k, data, indices, indptr, V, c, B, ldb, w, T,
                                            sumsq, usum, nthreads, work)
        else:
            return fs_cgls_csr_normal_i64_f(n, p, k, data, indices, indptr, V, c, B, ldb, w, T,
                                            sumsq, usum, nthreads, work)
    else:
        if index_t is int32_t:
            return fs_cgls_csr_normal_i32_d(n, p, k, data, indices, indptr, V, c, B, ldb, w, T,
                                            sumsq, usum, nthreads, work)
        else:
            return fs_cgls_csr_normal_i64_d(n, p, k, data, indices, indptr, V, c, B, ldb, w, T,
                                            sumsq, usum, nthreads, work)


cdef inline int fs_cgls_dense_colstats(Py_ssize_t n, Py_ssize_t p, const floating *X,
                                       Py_ssize_t ldx, const double *w, double *colsumsq,
                                       double *colsum) noexcept nogil:
    """colsumsq[j] = sum_i w_i X_ij^2,  colsum[j] = sum_i w_i X_ij  (float64)."""
    if floating is float:
        return fs_cgls_dense_colstats_f(n, p, X, ldx, w, colsumsq, colsum)
    else:
        return fs_cgls_dense_colstats_d(n, p, X, ldx, w, colsumsq, colsum)


cdef inline int fs_cgls_csr_colstats(Py_ssize_t n, Py_ssize_t p, const floating *data,
                                     const index_t *indices, const index_t *indptr,
                                     const double *w, double *colsumsq,
                                     double *colsum) noexcept nogil:
    """fs_cgls_dense_colstats for a CSR X."""
    if floating is float:
        if index_t is int32_t:
            return fs_cgls_csr_colstats_i32_f(n, p, data, indices, indptr, w, colsumsq, colsum)
        else:
            return fs_cgls_csr_colstats_i64_f(n, p, data, indices, indptr, w, colsumsq, colsum)
    else:
        if index_t is int32_t:
            return fs_cgls_csr_colstats_i32_d(n, p, data, indices, indptr, w, colsumsq, colsum)
        else:
            return fs_cgls_csr_colstats_i64_d(n, p, data, indices, indptr, w, colsumsq, colsum)


# ---- csrc/neural_network/mlp.h ---------------------------------------------------------------
cdef extern from "neural_network/mlp.h" nogil:
    enum fs_nn_activation:
        FS_ACT_IDENTITY
        FS_ACT_LOGISTIC
        FS_ACT_TANH
        FS_ACT_RELU
    enum fs_nn_loss:
        FS_LOSS_SQUARED
        FS_LOSS_BINARY_XENT
        FS_LOSS_SOFTMAX_XENT
    enum fs_nn_solver:
        FS_SOLVER_SGD
        FS_SOLVER_ADAM
    void fs_nn_bias_act_d(Py_ssize_t n, Py_ssize_t m, double *z, const double *b, int act)
    void fs_nn_bias_act_f(Py_ssize_t n, Py_ssize_t m, float *z, const float *b, int act)
    void fs_nn_act_backward_d(Py_ssize_t n, Py_ssize_t m, double *delta, const double *a, int act)
    void fs_nn_act_backward_f(Py_ssize_t n, Py_ssize_t m, float *delta, const float *a, int act)
    void fs_nn_colsum_d(Py_ssize_t n, Py_ssize_t m, const double *x, double *out)
    void fs_nn_colsum_f(Py_ssize_t n, Py_ssize_t m, const float *x, float *out)
    void fs_nn_act_backward_colsum_d(Py_ssize_t n, Py_ssize_t m, double *delta, const double *a,
                                     int act, double *bias_grad)
    void fs_nn_act_backward_colsum_f(Py_ssize_t n, Py_ssize_t m, float *delta, const float *a,
                                     int act, float *bias_grad)
    void fs_nn_gather_rows_d(Py_ssize_t n, const Py_ssize_t *idx, const double *src,
                             Py_ssize_t width, double *dst, const Py_ssize_t *next_idx,
                             Py_ssize_t n_next)
    void fs_nn_gather_rows_f(Py_ssize_t n, const Py_ssize_t *idx, const float *src,
                             Py_ssize_t width, float *dst, const Py_ssize_t *next_idx,
                             Py_ssize_t n_next)
    int fs_nn_loss_grad_d(int loss, Py_ssize_t n, Py_ssize_t m, const double *z, const double *y,
                          double *delta, double scale, double *loss_sum, double *bias_grad)
    int fs_nn_loss_grad_f(int loss, Py_ssize_t n, Py_ssize_t m, const float *z, const float *y,
                          float *delta, float scale, double *loss_sum, float *bias_grad)
    void fs_nn_output_d(int loss, Py_ssize_t n, Py_ssize_t m, double *z)
    void fs_nn_output_f(int loss, Py_ssize_t n, Py_ssize_t m, float *z)
    int fs_nn_sgd_step_d(Py_ssize_t n, Py_ssize_t n_decay, double *w, double *velocity,
                         const double *g, double gscale, double decay, double lr,
                         double momentum, int nesterov, double *w_sq)
    int fs_nn_sgd_step_f(Py_ssize_t n, Py_ssize_t n_decay, float *w, float *velocity,
                         const float *g, float gscale, float decay, float lr,
                         float momentum, int nesterov, float *w_sq)
    int fs_nn_adam_step_d(Py_ssize_t n, Py_ssize_t n_decay, double *w, double *m1, double *m2,
                          const double *g, double gscale, double decay, double lr_t,
                          double beta1, double beta2, double eps, double *w_sq)
    int fs_nn_adam_step_f(Py_ssize_t n, Py_ssize_t n_decay, float *w, float *m1, float *m2,
                          const float *g, float gscale, float decay, float lr_t,
                          float beta1, float beta2, float eps, float *w_sq)


cdef inline void fs_nn_bias_act(Py_ssize_t n, Py_ssize_t m, floating *z, const floating *b,
                                int act) noexcept nogil:
    """z = act(z + b)  in place (act: enum fs_nn_activation)."""
    if floating is float:
        fs_nn_bias_act_f(n, m, z, b, act)
    else:
        fs_nn_bias_act_d(n, m, z, b, act)


cdef inline void fs_nn_act_backward(Py_ssize_t n, Py_ssize_t m, floating *delta,
                                    const floating *a, int act) noexcept nogil:
    """delta *= act'(z), written with the activation's output a = act(z)."""
    if floating is float:
        fs_nn_act_backward_f(n, m, delta, a, act)
    else:
        fs_nn_act_backward_d(n, m, delta, a, act)


cdef inline void fs_nn_colsum(Py_ssize_t n, Py_ssize_t m, const floating *x,
                              floating *out) noexcept nogil:
    """out = x.sum(axis=0)  (row by row)."""
    if floating is float:
        fs_nn_colsum_f(n, m, x, out)
    else:
        fs_nn_colsum_d(n, m, x, out)


cdef inline void fs_nn_act_backward_colsum(Py_ssize_t n, Py_ssize_t m, floating *delta,
                                           const floating *a, int act,
                                           floating *bias_grad) noexcept nogil:
    """delta *= act'(z);  bias_grad = delta.sum(axis=0)  (one pass)."""
    if floating is float:
        fs_nn_act_backward_colsum_f(n, m, delta, a, act, bias_grad)
    else:
        fs_nn_act_backward_colsum_d(n, m, delta, a, act, bias_grad)


cdef inline void fs_nn_gather_rows(Py_ssize_t n, const Py_ssize_t *idx, const floating *src,
                                   Py_ssize_t width, floating *dst, const Py_ssize_t *next_idx,
                                   Py_ssize_t n_next) noexcept nogil:
    """dst = src[idx]  (and prefetch the rows src[next_idx])."""
    if floating is float:
        fs_nn_gather_rows_f(n, idx, src, width, dst, next_idx, n_next)
    else:
        fs_nn_gather_rows_d(n, idx, src, width, dst, next_idx, n_next)


cdef inline int fs_nn_loss_grad(int loss, Py_ssize_t n, Py_ssize_t m, const floating *z,
                                const floating *y, floating *delta, floating scale,
                                double *loss_sum, floating *bias_grad=NULL) noexcept nogil:
    """delta = scale (out(z) - y), loss_sum += loss(out(z), y)  [, bias_grad = delta.sum(0)]."""
    if floating is float:
        return fs_nn_loss_grad_f(loss, n, m, z, y, delta, scale, loss_sum, bias_grad)
    else:
        return fs_nn_loss_grad_d(loss, n, m, z, y, delta, scale, loss_sum, bias_grad)


cdef inline void fs_nn_output(int loss, Py_ssize_t n, Py_ssize_t m, floating *z) noexcept nogil:
    """z = out(z): the output nonlinearity of the loss (identity, sigmoid or softmax)."""
    if floating is float:
        fs_nn_output_f(loss, n, m, z)
    else:
        fs_nn_output_d(loss, n, m, z)


cdef inline int fs_nn_sgd_step(Py_ssize_t n, Py_ssize_t n_decay, floating *w, floating *velocity,
                               const floating *g, floating gscale, floating decay, floating lr,
                               floating momentum, int nesterov,
                               floating *w_sq=NULL) noexcept nogil:
    """v = momentum v - lr (gscale g + decay w[:n_decay]); w += v (Nesterov: momentum v - lr g')."""
    if floating is float:
        return fs_nn_sgd_step_f(n, n_decay, w, velocity, g, gscale, decay, lr, momentum,
                                nesterov, w_sq)
    else:
        return fs_nn_sgd_step_d(n, n_decay, w, velocity, g, gscale, decay, lr, momentum,
                                nesterov, w_sq)


cdef inline int fs_nn_adam_step(Py_ssize_t n, Py_ssize_t n_decay, floating *w, floating *m1,
                                floating *m2, const floating *g, floating gscale, floating decay,
                                floating lr_t, floating beta1, floating beta2, floating eps,
                                floating *w_sq=NULL) noexcept nogil:
    """m1, m2 = Adam moments of g' = gscale g + decay w; w -= lr_t m1 / (sqrt(m2) + eps)."""
    if floating is float:
        return fs_nn_adam_step_f(n, n_decay, w, m1, m2, g, gscale, decay, lr_t, beta1, beta2,
                                 eps, w_sq)
    else:
        return fs_nn_adam_step_d(n, n_decay, w, m1, m2, g, gscale, decay, lr_t, beta1, beta2,
                                 eps, w_sq)


# ---- csrc/recurrent/recurrent.h --------------------------------------------------------------
cdef extern from "recurrent/recurrent.h" nogil:
    void fs_rnn_forward_step_f(ptrdiff_t n, ptrdiff_t H, float *z, const float *bias, int relu,
                               float *h_out, float *y_t, ptrdiff_t y_stride,
                               const ptrdiff_t *perm)
    void fs_rnn_forward_step_d(ptrdiff_t n, ptrdiff_t H, double *z, const double *bias,
                               int relu, double *h_out, double *y_t, ptrdiff_t y_stride,
                               const ptrdiff_t *perm)
    void fs_rnn_backward_step_f(ptrdiff_t n, ptrdiff_t H, const float *h, int relu,
                                const float *dy_t, ptrdiff_t dy_stride, const ptrdiff_t *perm,
                                const float *dh_next, float *dz)
    void fs_rnn_backward_step_d(ptrdiff_t n, ptrdiff_t H, const double *h, int relu,
                                const double *dy_t, ptrdiff_t dy_stride, const ptrdiff_t *perm,
                                const double *dh_next, double *dz)
    void fs_column_sums_f(ptrdiff_t n, ptrdiff_t m, const float *a, float *out)
    void fs_column_sums_d(ptrdiff_t n, ptrdiff_t m, const double *a, double *out)
    void fs_scatter_rows(ptrdiff_t r0, ptrdiff_t r1, size_t row_bytes, const void *src,
                         void *dst, ptrdiff_t dst_stride_bytes, const ptrdiff_t *perm)
    int fs_all_finite_f(ptrdiff_t n, const float *a)
    int fs_all_finite_d(ptrdiff_t n, const double *a)
    void fs_lstm_forward_seq_f(ptrdiff_t T, ptrdiff_t D, ptrdiff_t H,
                               const ptrdiff_t *batch_sizes, float *gates, const float *bias,
                               const float *w_packed, const float *c_init, float *cells,
                               const float *x, float *xh, float *y, const ptrdiff_t *perm,
                               float *h_n, float *c_n, int isa, int max_threads)
    void fs_lstm_forward_seq_d(ptrdiff_t T, ptrdiff_t D, ptrdiff_t H,
                               const ptrdiff_t *batch_sizes, double *gates, const double *bias,
                               const double *w_packed, const double *c_init, double *cells,
                               const double *x, double *xh, double *y, const ptrdiff_t *perm,
                               double *h_n, double *c_n, int isa, int max_threads)
    void fs_lstm_backward_seq_f(ptrdiff_t T, ptrdiff_t t0, ptrdiff_t t1, ptrdiff_t H,
                                ptrdiff_t D, const ptrdiff_t *batch_sizes, const float *gates,
                                const float *cells, const float *c_init, const float *dy,
                                const ptrdiff_t *perm, const float *w_packed, float *dh,
                                float *dc, float *dgates, float *dx, const float *xh,
                                float *xh_packed, int isa, int max_threads)
    void fs_lstm_backward_seq_d(ptrdiff_t T, ptrdiff_t t0, ptrdiff_t t1, ptrdiff_t H,
                                ptrdiff_t D, const ptrdiff_t *batch_sizes, const double *gates,
                                const double *cells, const double *c_init, const double *dy,
                                const ptrdiff_t *perm, const double *w_packed, double *dh,
                                double *dc, double *dgates, double *dx, const double *xh,
                                double *xh_packed, int isa, int max_threads)
    void fs_lstm_weight_grads_f(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t D, const float *dgates,
                                const float *xh_packed, float *dw, float *dbias, int isa,
                                int max_threads)
    void fs_lstm_weight_grads_d(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t D, const double *dgates,
                                const double *xh_packed, double *dw, double *dbias, int isa,
                                int max_threads)


cdef inline int fs_all_finite(ptrdiff_t n, const floating *a) noexcept nogil:
    """1 if every a[i] is finite, else 0."""
    if floating is float:
        return fs_all_finite_f(n, a)
    else:
        return fs_all_finite_d(n, a)


cdef inline void fs_rnn_forward_step(ptrdiff_t n, ptrdiff_t H, floating *z, const floating *bias,
                                     int relu, floating *h_out, floating *y_t, ptrdiff_t y_stride,
                                     const ptrdiff_t *perm) noexcept nogil:
    """h = act(z + bias) into z and h_out;  y_t[perm[r]] = h[r]  (act: relu or tanh)."""
    if floating is float:
        fs_rnn_forward_step_f(n, H, z, bias, relu, h_out, y_t, y_stride, perm)
    else:
        fs_rnn_forward_step_d(n, H, z, bias, relu, h_out, y_t, y_stride, perm)


cdef inline void fs_rnn_backward_step(ptrdiff_t n, ptrdiff_t H, const floating *h, int relu,
                                      const floating *dy_t, ptrdiff_t dy_stride,
                                      const ptrdiff_t *perm, const floating *dh_next,
                                      floating *dz) noexcept nogil:
    """dz = (dh_next + dy_t[perm]) * act'(h)."""
    if floating is float:
        fs_rnn_backward_step_f(n, H, h, relu, dy_t, dy_stride, perm, dh_next, dz)
    else:
        fs_rnn_backward_step_d(n, H, h, relu, dy_t, dy_stride, perm, dh_next, dz)


cdef inline void fs_column_sums(ptrdiff_t n, ptrdiff_t m, const floating *a,
                                floating *out) noexcept nogil:
    """out = a.sum(axis=0)."""
    if floating is float:
        fs_column_sums_f(n, m, a, out)
    else:
        fs_column_sums_d(n, m, a, out)


cdef inline void fs_lstm_forward_seq(ptrdiff_t T, ptrdiff_t D, ptrdiff_t H,
                                     const ptrdiff_t *batch_sizes, floating *gates,
                                     const floating *bias, const floating *w_packed,
                                     const floating *c_init, floating *cells, const floating *x,
                                     floating *xh, floating *y, const ptrdiff_t *perm,
                                     floating *h_n, floating *c_n, int isa,
                                     int max_threads) noexcept nogil:
    """LSTM forward, T steps: z = [x_t | h] [w_ih | w_hh]^T + bias; c = f c + i g; h = o tanh c."""
    if floating is float:
        fs_lstm_forward_seq_f(T, D, H, batch_sizes, gates, bias, w_packed, c_init, cells, x, xh,
                              y, perm, h_n, c_n, isa, max_threads)
    else:
        fs_lstm_forward_seq_d(T, D, H, batch_sizes, gates, bias, w_packed, c_init, cells, x, xh,
                              y, perm, h_n, c_n, isa, max_threads)


cdef inline void fs_lstm_backward_seq(ptrdiff_t T, ptrdiff_t t0, ptrdiff_t t1, ptrdiff_t H,
                                      ptrdiff_t D, const ptrdiff_t *batch_sizes,
                                      const floating *gates, const floating *cells,
                                      const floating *c_init, const floating *dy,
                                      const ptrdiff_t *perm, const floating *w_packed,
                                      floating *dh, floating *dc, floating *dgates, floating *dx,
                                      const floating *xh, floating *xh_packed, int isa,
                                      int max_threads) noexcept nogil:
    """LSTM backprop through steps [t0, t1): dgates, dx, and [dh, dc] carried to step t0 - 1."""
    if floating is float:
        fs_lstm_backward_seq_f(T, t0, t1, H, D, batch_sizes, gates, cells, c_init, dy, perm,
                               w_packed, dh, dc, dgates, dx, xh, xh_packed, isa, max_threads)
    else:
        fs_lstm_backward_seq_d(T, t0, t1, H, D, batch_sizes, gates, cells, c_init, dy, perm,
                               w_packed, dh, dc, dgates, dx, xh, xh_packed, isa, max_threads)


cdef inline void fs_lstm_weight_grads(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t D,
                                      const floating *dgates, const floating *xh_packed,
                                      floating *dw, floating *dbias, int isa,
                                      int max_threads) noexcept nogil:
    """dw += dgates^T xh,  dbias += dgates.sum(axis=0)."""
    if floating is float:
        fs_lstm_weight_grads_f(rows, H, D, dgates, xh_packed, dw, dbias, isa, max_threads)
    else:
        fs_lstm_weight_grads_d(rows, H, D, dgates, xh_packed, dw, dbias, isa, max_threads)


# ---- csrc/lib/packed.h -----------------------------------------------------------------------
cdef extern from "lib/packed.h" nogil:
    enum:
        FS_TILE_MR
        FS_TILE_NR_F
        FS_TILE_NR_D
    ctypedef void (*fs_tile_fn_f)(int mr, int nc, ptrdiff_t K, const float *A, ptrdiff_t lda,
                                  const float *panel, float *C)
    ctypedef void (*fs_tile_fn_d)(int mr, int nc, ptrdiff_t K, const double *A, ptrdiff_t lda,
                                  const double *panel, double *C)
    fs_tile_fn_f fs_tile_kernel_f(int isa)
    fs_tile_fn_d fs_tile_kernel_d(int isa)
    fs_tile_fn_f fs_tile_t_kernel_f(int isa)
    fs_tile_fn_d fs_tile_t_kernel_d(int isa)
    int fs_tile_isa(int isa)
    ptrdiff_t fs_packed_size(ptrdiff_t K, ptrdiff_t N, ptrdiff_t nr)
    void fs_pack_rows_f(ptrdiff_t K, ptrdiff_t N, const float *b, ptrdiff_t ldb, float *Bp)
    void fs_pack_rows_d(ptrdiff_t K, ptrdiff_t N, const double *b, ptrdiff_t ldb, double *Bp)
    void fs_pack_lstm_gates_f(ptrdiff_t H, ptrdiff_t K, const float *w, float *Bp)
    void fs_pack_lstm_gates_d(ptrdiff_t H, ptrdiff_t K, const double *w, double *Bp)


cdef inline ptrdiff_t fs_tile_nr(floating dtype_of) noexcept nogil:
    """The panel width NR of the packed layout for this precision (64 floats / 32 doubles)."""
    if floating is float:
        return FS_TILE_NR_F
    else:
        return FS_TILE_NR_D


cdef inline void fs_pack_rows(ptrdiff_t K, ptrdiff_t N, const floating *b, ptrdiff_t ldb,
                              floating *Bp) noexcept nogil:
    """Bp = b (K x N, row stride ldb) in NR-column panels: Bp[(p K + k) NR + c] = b[k, p NR + c]."""
    if floating is float:
        fs_pack_rows_f(K, N, b, ldb, Bp)
    else:
        fs_pack_rows_d(K, N, b, ldb, Bp)


cdef inline void fs_pack_lstm_gates(ptrdiff_t H, ptrdiff_t K, const floating *w,
                                    floating *Bp) noexcept nogil:
    """Bp = w^T (w: 4H x K) in panels holding the four gates of NR / 4 units side by side."""
    if floating is float:
        fs_pack_lstm_gates_f(H, K, w, Bp)
    else:
        fs_pack_lstm_gates_d(H, K, w, Bp)


cdef inline void fs_tile(int isa, bint trans_a, int mr, int nc, ptrdiff_t K, const floating *A,
                         ptrdiff_t lda, const floating *panel, floating *C) noexcept nogil:
    """C[r, c] = sum_k A[r, k] panel[k, c]  (A^T's if trans_a), r < mr, c < nc, one tile."""
    if floating is float:
        (fs_tile_t_kernel_f(isa) if trans_a else fs_tile_kernel_f(isa))(mr, nc, K, A, lda,
                                                                        panel, C)
    else:
        (fs_tile_t_kernel_d(isa) if trans_a else fs_tile_kernel_d(isa))(mr, nc, K, A, lda,
                                                                        panel, C)
