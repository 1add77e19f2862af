# The one door to BLAS and LAPACK: fused float32/float64 wrappers over SciPy's
# scipy.linalg.cython_blas / cython_lapack (Fortran, column-major, 32-bit ints).
#
# Conventions for callers
# - Arguments are passed by value (the Fortran pointer dance happens here).
# - All fastseq arrays are C-contiguous (row-major). A row-major (m, n) array with leading
#   dimension ld is, to column-major BLAS, the (n, m) transpose. `_gemm_rm` does the operand swap
#   once, so drivers can write row-major products directly:
#       C(m,n) = alpha * op(A) @ op(B) + beta * C        (all row-major)
#   is the column-major call  C^T = op(B)^T @ op(A)^T,  i.e. dgemm(tb, ta, n, m, k, B, A, C).
# - Above every call site, write the NumPy it computes, e.g.  # gates += h_prev @ W_hh.T
# - BLAS ints are 32-bit: callers check that every dimension and leading dimension fits
#   (see fastseq._lib.validation.check_blas_dims) before entering nogil code.
from cython cimport floating
from scipy.linalg.cython_blas cimport (
    sgemm, dgemm, sgemv, dgemv, saxpy, daxpy, sdot, ddot, snrm2, dnrm2, sscal, dscal,
    scopy, dcopy, ssyrk, dsyrk, strsm, dtrsm, strsv, dtrsv, sger, dger)
from scipy.linalg.cython_lapack cimport (
    spotrf, dpotrf, spotrs, dpotrs, spocon, dpocon, sgeqrf, dgeqrf, sormqr, dormqr,
    strtrs, dtrtrs, strcon, dtrcon, sgeqp3, dgeqp3, stpqrt, dtpqrt)


# ---- BLAS level 1 ----------------------------------------------------------------------------
cdef inline floating _dot(int n, const floating *x, int incx,
                          const floating *y, int incy) noexcept nogil:
    if floating is float:
        return sdot(&n, <float*>x, &incx, <float*>y, &incy)
    else:
        return ddot(&n, <double*>x, &incx, <double*>y, &incy)

cdef inline floating _nrm2(int n, const floating *x, int incx) noexcept nogil:
    if floating is float:
        return snrm2(&n, <float*>x, &incx)
    else:
        return dnrm2(&n, <double*>x, &incx)

cdef inline void _axpy(int n, floating alpha, const floating *x, int incx,
                       floating *y, int incy) noexcept nogil:
    # y += alpha * x
    if floating is float:
        saxpy(&n, &alpha, <float*>x, &incx, y, &incy)
    else:
        daxpy(&n, &alpha, <double*>x, &incx, y, &incy)

cdef inline void _scal(int n, floating alpha, floating *x, int incx) noexcept nogil:
    if floating is float:
        sscal(&n, &alpha, x, &incx)
    else:
        dscal(&n, &alpha, x, &incx)

cdef inline void _copy(int n, const floating *x, int incx, floating *y, int incy) noexcept nogil:
    if floating is float:
        scopy(&n, <float*>x, &incx, y, &incy)
    else:
        dcopy(&n, <double*>x, &incx, y, &incy)


# ---- BLAS level 2 / 3, column-major (Fortran) semantics -------------------------------------
cdef inline void _gemv(char trans, int m, int n, floating alpha, const floating *a, int lda,
                       const floating *x, int incx, floating beta,
                       floating *y, int incy) noexcept nogil:
    if floating is float:
        sgemv(&trans, &m, &n, &alpha, <float*>a, &lda, <float*>x, &incx, &beta, y, &incy)
    else:
        dgemv(&trans, &m, &n, &alpha, <double*>a, &lda, <double*>x, &incx, &beta, y, &incy)

cdef inline void _ger(int m, int n, floating alpha, const floating *x, int incx,
                      const floating *y, int incy, floating *a, int lda) noexcept nogil:
    if floating is float:
        sger(&m, &n, &alpha, <float*>x, &incx, <float*>y, &incy, a, &lda)
    else:
        dger(&m, &n, &alpha, <double*>x, &incx, <double*>y, &incy, a, &lda)

cdef inline void _gemm(char transa, char transb, int m, int n, int k, floating alpha,
                       const floating *a, int lda, const floating *b, int ldb,
                       floating beta, floating *c, int ldc) noexcept nogil:
    if floating is float:
        sgemm(&transa, &transb, &m, &n, &k, &alpha, <float*>a, &lda, <float*>b, &ldb,
              &beta, c, &ldc)
    else:
        dgemm(&transa, &transb, &m, &n, &k, &alpha, <double*>a, &lda, <double*>b, &ldb,
              &beta, c, &ldc)

cdef inline void _syrk(char uplo, char trans, int n, int k, floating alpha,
                       const floating *a, int lda, floating beta,
                       floating *c, int ldc) noexcept nogil:
    if floating is float:
        ssyrk(&uplo, &trans, &n, &k, &alpha, <float*>a, &lda, &beta, c, &ldc)
    else:
        dsyrk(&uplo, &trans, &n, &k, &alpha, <double*>a, &lda, &beta, c, &ldc)

cdef inline void _trsm(char side, char uplo, char transa, char diag, int m, int n,
                       floating alpha, const floating *a, int lda,
                       floating *b, int ldb) noexcept nogil:
    if floating is float:
        strsm(&side, &uplo, &transa, &diag, &m, &n, &alpha, <float*>a, &lda, b, &ldb)
    else:
        dtrsm(&side, &uplo, &transa, &diag, &m, &n, &alpha, <double*>a, &lda, b, &ldb)

cdef inline void _trsv(char uplo, char trans, char diag, int n, const floating *a, int lda,
                       floating *x, int incx) noexcept nogil:
    if floating is float:
        strsv(&uplo, &trans, &diag, &n, <float*>a, &lda, x, &incx)
    else:
        dtrsv(&uplo, &trans, &diag, &n, <double*>a, &lda, x, &incx)


# ---- row-major GEMM ------------------------------------------------------------------------
cdef inline void _gemm_rm(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                          const floating *a, int lda, const floating *b, int ldb,
                          floating beta, floating *c, int ldc) noexcept nogil:
    # Row-major  C(m, n) = alpha * op(A)(m, k) @ op(B)(k, n) + beta * C,
    # lda/ldb/ldc are row strides in elements. Column-major view: C^T = op(B)^T op(A)^T.
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    _gemm(tb, ta, n, m, k, alpha, b, ldb, a, lda, beta, c, ldc)


# ---- LAPACK (column-major; `info` is returned) -----------------------------------------------
cdef inline int _potrf(char uplo, int n, floating *a, int lda) noexcept nogil:
    cdef int info = 0
    if floating is float:
        spotrf(&uplo, &n, a, &lda, &info)
    else:
        dpotrf(&uplo, &n, a, &lda, &info)
    return info

cdef inline int _potrs(char uplo, int n, int nrhs, const floating *a, int lda,
                       floating *b, int ldb) noexcept nogil:
    cdef int info = 0
    if floating is float:
        spotrs(&uplo, &n, &nrhs, <float*>a, &lda, b, &ldb, &info)
    else:
        dpotrs(&uplo, &n, &nrhs, <double*>a, &lda, b, &ldb, &info)
    return info

cdef inline int _pocon(char uplo, int n, const floating *a, int lda, floating anorm,
                       floating *rcond, floating *work, int *iwork) noexcept nogil:
    # work: 3n, iwork: n
    cdef int info = 0
    if floating is float:
        spocon(&uplo, &n, <float*>a, &lda, &anorm, rcond, work, iwork, &info)
    else:
        dpocon(&uplo, &n, <double*>a, &lda, &anorm, rcond, work, iwork, &info)
    return info

cdef inline int _geqrf(int m, int n, floating *a, int lda, floating *tau,
                       floating *work, int lwork) noexcept nogil:
    # lwork = -1: workspace query, optimal size written to work[0]
    cdef int info = 0
    if floating is float:
        sgeqrf(&m, &n, a, &lda, tau, work, &lwork, &info)
    else:
        dgeqrf(&m, &n, a, &lda, tau, work, &lwork, &info)
    return info

cdef inline int _geqp3(int m, int n, floating *a, int lda, int *jpvt, floating *tau,
                       floating *work, int lwork) noexcept nogil:
    cdef int info = 0
    if floating is float:
        sgeqp3(&m, &n, a, &lda, jpvt, tau, work, &lwork, &info)
    else:
        dgeqp3(&m, &n, a, &lda, jpvt, tau, work, &lwork, &info)
    return info

cdef inline int _ormqr(char side, char trans, int m, int n, int k, const floating *a, int lda,
                       const floating *tau, floating *c, int ldc,
                       floating *work, int lwork) noexcept nogil:
    cdef int info = 0
    if floating is float:
        sormqr(&side, &trans, &m, &n, &k, <float*>a, &lda, <float*>tau, c, &ldc,
               work, &lwork, &info)
    else:
        dormqr(&side, &trans, &m, &n, &k, <double*>a, &lda, <double*>tau, c, &ldc,
               work, &lwork, &info)
    return info

cdef inline int _trtrs(char uplo, char trans, char diag, int n, int nrhs, const floating *a,
                       int lda, floating *b, int ldb) noexcept nogil:
    cdef int info = 0
    if floating is float:
        strtrs(&uplo, &trans, &diag, &n, &nrhs, <float*>a, &lda, b, &ldb, &info)
    else:
        dtrtrs(&uplo, &trans, &diag, &n, &nrhs, <double*>a, &lda, b, &ldb, &info)
    return info

cdef inline int _trcon(char norm, char uplo, char diag, int n, const floating *a, int lda,
                       floating *rcond, floating *work, int *iwork) noexcept nogil:
    # work: 3n, iwork: n
    cdef int info = 0
    if floating is float:
        strcon(&norm, &uplo, &diag, &n, <float*>a, &lda, rcond, work, iwork, &info)
    else:
        dtrcon(&norm, &uplo, &diag, &n, <double*>a, &lda, rcond, work, iwork, &info)
    return info

cdef inline int _tpqrt(int m, int n, int l, int nb, floating *a, int lda, floating *b, int ldb,
                       floating *t, int ldt, floating *work) noexcept nogil:
    # QR of the stacked [A; B] with A (n, n) upper triangular, B (m, n) (pentagonal with l rows
    # trapezoidal; l = 0: B full): A <- R. t: (ldt >= nb, n), work: nb * n.
    cdef int info = 0
    if floating is float:
        stpqrt(&m, &n, &l, &nb, a, &lda, b, &ldb, t, &ldt, work, &info)
    else:
        dtpqrt(&m, &n, &l, &nb, a, &lda, b, &ldb, t, &ldt, work, &info)
    return info
