# Least-squares drivers (layer 2) for fastseq.LinearRegression.
#
# The design X (row-major, float32 or float64) is only ever read in row blocks. Each block is
# packed by csrc/linear_model/lstsq.c into a float64 column-major workspace
# B = sqrt(W) [X - xmean, Y - ymean] (nb x m, m = p + k) and then consumed by one BLAS-3 call:
#   * Gram path:  G += B' B                (dsyrk)   -> augmented Gram [[Xc'WXc, Xc'WYc], [., .]]
#   * QR path:    R <- qr([R; B]).R         (dgeqrf on a stacked workspace) -> augmented R factor
#                                                       [[R, Q'y], [0, rho]]
#   * refinement: g += Xc' W (yc - Xc beta) (2 dgemm)
# Workspaces are allocated once per call; everything numerical runs without the GIL.
# All arithmetic is float64, whatever the input dtype (float32 blocks are widened while packed):
# the normal equations square the condition number, so a float32 Gram would lose the answer.
from cython cimport floating
from libc.math cimport sqrt, fabs

from fastseq._lib._blas cimport (_syrk, _gemm, _potrf, _potrs, _pocon, _geqrf, _geqp3, _ormqr,
                                 _trtrs, _trcon, _tpqrt)
from fastseq._lib._kernels cimport FS_OK, fs_lsq_pack, fs_lsq_wcolsum

import numpy as np

# Inner block size of the triangular-pentagonal QR (columns per Householder panel).
DEF TPQRT_IB = 32


cdef inline const double *_ptr1(const double[::1] a) noexcept:
    return NULL if a is None else &a[0]


def weighted_column_sums(const floating[:, ::1] X, const double[::1] w, Py_ssize_t block):
    """sum_i w_i X[i, :] in float64, summed block by block (each block's partial sum is added to
    the total, which bounds the rounding error by ~eps * (block + n / block) instead of eps * n)."""
    cdef Py_ssize_t n = X.shape[0], p = X.shape[1], r0, nr, bi, j
    cdef double[::1] total = np.zeros(p)
    cdef double[::1] part = np.empty(p)
    cdef const double *wp = _ptr1(w)
    with nogil:
        for bi in range((n + block - 1) // block):
            r0 = bi * block
            nr = min(block, n - r0)
            for j in range(p):
                part[j] = 0.0
            fs_lsq_wcolsum(&X[r0, 0], p, nr, p, NULL if wp == NULL else wp + r0, &part[0])
            for j in range(p):
                total[j] += part[j]
    return np.asarray(total)


def pack_block(const floating[:, ::1] X, const double[:, ::1] Y, const double[::1] xmean,
               const double[::1] ymean, const double[::1] sqrtw):
    """The packed block B (n, p + k), Fortran order (test hook for the C kernel)."""
    cdef Py_ssize_t n = X.shape[0], p = X.shape[1], k = Y.shape[1]
    cdef double[::1, :] out = np.empty((n, p + k), order="F")
    cdef int status
    cdef const double *xm = _ptr1(xmean)
    cdef const double *ym = _ptr1(ymean)
    cdef const double *sw = _ptr1(sqrtw)
    with nogil:
        status = fs_lsq_pack(&X[0, 0], p, &Y[0, 0], k, n, p, k, xm, ym, sw, &out[0, 0], n)
    if status != FS_OK:
        raise ValueError("pack_block: bad arguments")
    return np.asarray(out)


def augmented_gram(const floating[:, ::1] X, const double[:, ::1] Y, const double[::1] xmean,
                   const double[::1] ymean, const double[::1] sqrtw, double[::1, :] G,
                   Py_ssize_t block):
    """G (m, m), m = p + k, upper triangle += B'B over all row blocks of sqrt(W)[X - xm, Y - ym].
    """
    cdef Py_ssize_t n = X.shape[0], p = X.shape[1], k = Y.shape[1], m = p + k, r0, nr, bi
    cdef Py_ssize_t nb = max(1, min(block, n))
    cdef double[::1, :] B = np.empty((nb, m), order="F")
    cdef const double *xm = _ptr1(xmean)
    cdef const double *ym = _ptr1(ymean)
    cdef const double *sw = _ptr1(sqrtw)
    if G.shape[0] != m or G.shape[1] != m or Y.shape[0] != n:
        raise ValueError("augmented_gram: shape mismatch")
    with nogil:
        for bi in range((n + nb - 1) // nb):
            r0 = bi * nb
            nr = min(nb, n - r0)
            fs_lsq_pack(&X[r0, 0], p, &Y[r0, 0], k, nr, p, k, xm, ym,
                        NULL if sw == NULL else sw + r0, &B[0, 0], nb)
            # G += B.T @ B   (upper triangle)
            _syrk(c'U', c'T', <int>m, <int>nr, 1.0, &B[0, 0], <int>nb, 1.0, &G[0, 0], <int>m)


def augmented_r_update(const floating[:, ::1] X, const double[:, ::1] Y,
                       const double[::1] xmean, const double[::1] ymean,
                       const double[::1] sqrtw, double[::1, :] R, Py_ssize_t block):
    """R (m, m) upper triangular <- R factor of [R; B_1; B_2; ...] (Householder), the B_i being
    the packed row blocks. Q is never stored: Q'y lives in the last k columns of R.

    One column-major workspace W = [R; B_i] ((m + nb) x m) per call: each block is packed under
    the current R and W is factored by dgeqrf (blocked Householder, trailing updates by dlarfb =
    GEMM, i.e. BLAS-3; SciPy's reference dtpqrt is far slower). The structured zeros below R
    cost 2 m^2 (2m/3) extra flops per block vs 2 m^2 nb useful ones: <= 17% for nb >= 4m. The
    new R is the upper triangle of W[:m]; the Householder vectors left below it are zeroed."""
    cdef Py_ssize_t n = X.shape[0], p = X.shape[1], k = Y.shape[1], m = p + k, r0, nr, bi, i, j
    cdef Py_ssize_t nb = max(1, min(block, n))
    cdef Py_ssize_t ldw = m + nb
    cdef int info = 0, lwork
    cdef double wq = 0.0
    cdef double[::1, :] W = np.zeros((ldw, m), order="F")
    cdef double[::1] tau = np.empty(m)
    cdef double[::1] work
    cdef const double *xm = _ptr1(xmean)
    cdef const double *ym = _ptr1(ymean)
    cdef const double *sw = _ptr1(sqrtw)
    if R.shape[0] != m or R.shape[1] != m or Y.shape[0] != n:
        raise ValueError("augmented_r_update: shape mismatch")
    if n == 0:
        return
    # workspace query (lwork = -1) once, for the largest stacked height
    info = _geqrf(<int>ldw, <int>m, &W[0, 0], <int>ldw, &tau[0], &wq, -1)
    if info != 0:
        raise RuntimeError(f"dgeqrf workspace query failed (info={info})")
    lwork = max(<int>wq, <int>m, 1)
    work = np.empty(lwork)
    with nogil:
        # W[:m] = np.triu(R)
        for j in range(m):
            for i in range(j + 1):
                W[i, j] = R[i, j]
        for bi in range((n + nb - 1) // nb):
            r0 = bi * nb
            nr = min(nb, n - r0)
            # W[m:m + nr] = packed block (leading dimension ldw)
            fs_lsq_pack(&X[r0, 0], p, &Y[r0, 0], k, nr, p, k, xm, ym,
                        NULL if sw == NULL else sw + r0, &W[m, 0], ldw)
            # W[:m + nr] = np.linalg.qr(W[:m + nr]) in LAPACK's compact form (R on/above diag)
            info = _geqrf(<int>(m + nr), <int>m, &W[0, 0], <int>ldw, &tau[0], &work[0], lwork)
            if info != 0:
                break
            # W[:m] = np.triu(W[:m])   (drop the Householder vectors below R)
            for j in range(m):
                for i in range(j + 1, m):
                    W[i, j] = 0.0
        if info == 0:
            # R = np.triu(W[:m])
            for j in range(m):
                for i in range(j + 1):
                    R[i, j] = W[i, j]
    if info != 0:
        raise RuntimeError(f"dgeqrf failed (info={info})")


def r_update_rows(double[::1, :] R, double[::1, :] B):
    """R <- R factor of [R; B] for a small dense block B (extra rows: ridge sqrt(alpha) I, the
    sqrt(n_a n_b / n) (mean_b - mean_a) merge row of streaming updates). B is overwritten."""
    cdef int m = <int>R.shape[0], nr = <int>B.shape[0], info
    cdef int ib = min(TPQRT_IB, m)
    cdef double[::1, :] T = np.empty((ib, m), order="F")
    cdef double[::1] work = np.empty(ib * m)
    if B.shape[1] != m or nr == 0:
        raise ValueError("r_update_rows: shape mismatch")
    with nogil:
        # R = np.linalg.qr(np.vstack([R, B]), mode="r")
        info = _tpqrt(nr, m, 0, ib, &R[0, 0], m, &B[0, 0], nr, &T[0, 0], ib, &work[0])
    if info != 0:
        raise RuntimeError(f"dtpqrt failed (info={info})")


def refine_gradient(const floating[:, ::1] X, const double[:, ::1] Y, const double[::1] xmean,
                    const double[::1] ymean, const double[::1] sqrtw,
                    const double[::1, :] beta, Py_ssize_t block):
    """g = Xc' W (Yc - Xc beta) (p, k), Xc / Yc centered by xmean / ymean, in row blocks: the
    true (semi-normal equations) residual gradient used by iterative refinement. One read of X;
    each block is packed once and used by two GEMMs while it is in cache."""
    cdef Py_ssize_t n = X.shape[0], p = X.shape[1], k = Y.shape[1], m = p + k, r0, nr, bi
    cdef Py_ssize_t nb = max(1, min(block, n))
    cdef double[::1, :] B = np.empty((nb, m), order="F")
    cdef double[::1, :] g = np.zeros((p, k), order="F")
    cdef const double *xm = _ptr1(xmean)
    cdef const double *ym = _ptr1(ymean)
    cdef const double *sw = _ptr1(sqrtw)
    if beta.shape[0] != p or beta.shape[1] != k:
        raise ValueError("refine_gradient: shape mismatch")
    with nogil:
        for bi in range((n + nb - 1) // nb):
            r0 = bi * nb
            nr = min(nb, n - r0)
            fs_lsq_pack(&X[r0, 0], p, &Y[r0, 0], k, nr, p, k, xm, ym,
                        NULL if sw == NULL else sw + r0, &B[0, 0], nb)
            # B[:, p:] = yc - Xc @ beta      (the weighted residual block)
            _gemm(c'N', c'N', <int>nr, <int>k, <int>p, -1.0, &B[0, 0], <int>nb,
                  &beta[0, 0], <int>p, 1.0, &B[0, p], <int>nb)
            # g += Xc.T @ residual
            _gemm(c'T', c'N', <int>p, <int>k, <int>nr, 1.0, &B[0, 0], <int>nb,
                  &B[0, p], <int>nb, 1.0, &g[0, 0], <int>p)
    return np.asarray(g)


def cholesky_factor(const double[::1, :] G, Py_ssize_t p, double alpha):
    """Equilibrated Cholesky of the normal matrix A = G[:p, :p] + alpha I (upper triangle used).

    With s_j = 1 / sqrt(A_jj) (1 where A_jj == 0), factor S A S = U'U (dpotrf) and estimate its
    reciprocal 1-norm condition number (dpocon). Returns (U, s, rcond, info); info > 0: not
    positive definite (rcond is then 0)."""
    cdef double[::1, :] U = np.empty((p, p), order="F")
    cdef double[::1] s = np.empty(p)
    cdef double[::1] work = np.empty(3 * p)
    cdef int[::1] iwork = np.empty(p, dtype=np.intc)
    cdef double anorm = 0.0, colsum, rcond = 0.0, d
    cdef Py_ssize_t i, j
    cdef int info
    if G.shape[0] < p or G.shape[1] < p:
        raise ValueError("cholesky_factor: G too small")
    with nogil:
        for j in range(p):
            d = G[j, j] + alpha
            s[j] = 1.0 / sqrt(d) if d > 0.0 else 1.0
        for j in range(p):
            for i in range(j + 1):
                U[i, j] = s[i] * G[i, j] * s[j]
            U[j, j] = U[j, j] + alpha * s[j] * s[j]
        # 1-norm of the symmetric S A S from its upper triangle
        for j in range(p):
            colsum = 0.0
            for i in range(j + 1):
                colsum += fabs(U[i, j])
            for i in range(j + 1, p):
                colsum += fabs(U[j, i])
            anorm = max(anorm, colsum)
        # U = np.linalg.cholesky(S A S).T
        info = _potrf(c'U', <int>p, &U[0, 0], <int>p)
        if info == 0:
            info = _pocon(c'U', <int>p, &U[0, 0], <int>p, anorm, &rcond, &work[0], &iwork[0])
    return np.asarray(U), np.asarray(s), rcond, info


def cholesky_solve(const double[::1, :] U, const double[::1] s, double[::1, :] rhs):
    """rhs <- A^{-1} rhs with A = S^{-1} U'U S^{-1} from cholesky_factor (k right-hand sides)."""
    cdef Py_ssize_t p = U.shape[0], k = rhs.shape[1], i, c
    cdef int info
    with nogil:
        for c in range(k):
            for i in range(p):
                rhs[i, c] *= s[i]
        # rhs = scipy.linalg.cho_solve((U, False), rhs)
        info = _potrs(c'U', <int>p, <int>k, &U[0, 0], <int>p, &rhs[0, 0], <int>p)
        for c in range(k):
            for i in range(p):
                rhs[i, c] *= s[i]
    if info != 0:
        raise RuntimeError(f"dpotrs failed (info={info})")


cdef _check_augmented_r(const double[::1, :] R, Py_ssize_t p):
    if R.shape[0] != R.shape[1] or not 0 < p <= R.shape[0]:
        raise ValueError(f"augmented R must be square (m, m) with 0 < p <= m, got shape "
                         f"({R.shape[0]}, {R.shape[1]}) and p={p}")


cdef void _equilibrate_split(const double[::1, :] R, Py_ssize_t p, double[::1, :] A,
                             double[::1, :] rhs, double[::1] d) noexcept nogil:
    # Split the augmented R (m, m) = [[R11, R12], [0, rho]] into the column-equilibrated
    # A = R11 D^{-1} (upper triangle), d_j = ||R11[:, j]|| (1 for a zero column; the weighted
    # norm of centered column j), and rhs = R12 (p, m - p).
    cdef Py_ssize_t m = R.shape[0], i, j
    cdef double nrm
    for j in range(p):
        nrm = 0.0
        for i in range(j + 1):
            nrm += R[i, j] * R[i, j]
        nrm = sqrt(nrm)
        d[j] = nrm if nrm > 0.0 else 1.0
        for i in range(j + 1):
            A[i, j] = R[i, j] / d[j]
    for j in range(m - p):
        for i in range(p):
            rhs[i, j] = R[i, p + j]


def triangular_solve(const double[::1, :] R, Py_ssize_t p):
    """Full-rank solve from the augmented R (m, m): beta = R11^{-1} R12 (p, k).

    Columns are equilibrated first (d_j = ||R11[:, j]|| = weighted norm of centered column j):
    A = R11 D^{-1}; rcond = dtrcon estimate of A's reciprocal 1-norm condition number. Returns
    (beta, rcond, d, info); info > 0: exactly singular A."""
    _check_augmented_r(R, p)  # before the (p, m - p) workspaces are sized
    cdef Py_ssize_t m = R.shape[0], k = m - p, i, j
    cdef double[::1, :] A = np.zeros((p, p), order="F")
    cdef double[::1, :] z = np.empty((p, k), order="F")
    cdef double[::1] d = np.empty(p)
    cdef double[::1] work = np.empty(3 * p)
    cdef int[::1] iwork = np.empty(p, dtype=np.intc)
    cdef double rcond = 0.0
    cdef int info = 0
    with nogil:
        _equilibrate_split(R, p, A, z, d)
        info = _trcon(c'1', c'U', c'N', <int>p, &A[0, 0], <int>p, &rcond, &work[0], &iwork[0])
        if info == 0 and rcond > 0.0:
            # z = scipy.linalg.solve_triangular(A, z)
            info = _trtrs(c'U', c'N', c'N', <int>p, <int>k, &A[0, 0], <int>p, &z[0, 0], <int>p)
            for j in range(k):
                for i in range(p):
                    z[i, j] /= d[i]
        elif info == 0:
            info = 1
    return np.asarray(z), rcond, np.asarray(d), info


def min_norm_solve(const double[::1, :] R, Py_ssize_t p, double rank_tol):
    """Minimum-norm solution of min ||R11 beta - R12|| for a numerically rank-deficient R11.

    1. Equilibrate A = R11 D^{-1} and pivot: A P = Q2 T (dgeqp3); the numerical rank r is the
       number of |T_ii| > rank_tol * |T_00|. c1 = (Q2' R12)[:r].
    2. The truncated problem is M beta = c1 with M = T[:r] P' D (r, p). Its minimum-norm solution
       (in the caller's coordinates, so it equals pinv on the rank-r approximation) comes from the
       QR of M' = D P T[:r]' = Q3 T3 (dgeqrf): beta = Q3 [T3^{-T} c1; 0].
    Returns (beta (p, k), rank)."""
    _check_augmented_r(R, p)
    cdef Py_ssize_t m = R.shape[0], k = m - p, i, j, jj, r = 0
    cdef double[::1, :] A = np.zeros((p, p), order="F")
    cdef double[::1, :] c = np.empty((p, k), order="F")
    cdef double[::1, :] Mt = np.zeros((p, p), order="F")
    cdef double[::1] d = np.empty(p)
    cdef double[::1] tau = np.empty(p)
    cdef double[::1] tau3 = np.empty(p)
    cdef int[::1] jpvt = np.zeros(p, dtype=np.intc)
    cdef double t00, wq = 0.0
    cdef int info = 0, lwork
    cdef double[::1] work
    # workspace query (geqp3 needs the most)
    _geqp3(<int>p, <int>p, &A[0, 0], <int>p, &jpvt[0], &tau[0], &wq, -1)
    lwork = max(<int>wq, 3 * <int>p + 1, <int>(k * 64 + 64), 64 * <int>p)
    work = np.empty(lwork)
    with nogil:
        _equilibrate_split(R, p, A, c, d)
        # A[:, perm] = Q2 @ T
        info = _geqp3(<int>p, <int>p, &A[0, 0], <int>p, &jpvt[0], &tau[0], &work[0], lwork)
    if info != 0:
        raise RuntimeError(f"dgeqp3 failed (info={info})")
    with nogil:
        t00 = fabs(A[0, 0])
        for i in range(p):
            if fabs(A[i, i]) > rank_tol * t00 and t00 > 0.0:
                r += 1
            else:
                break
    if r == 0:
        return np.zeros((p, k), order="F"), 0
    with nogil:
        # c = Q2.T @ R12
        info = _ormqr(c'L', c'T', <int>p, <int>k, <int>p, &A[0, 0], <int>p, &tau[0],
                      &c[0, 0], <int>p, &work[0], lwork)
        # Mt[perm[i], :r] = d[perm[i]] * T[:r, i]
        for i in range(p):
            j = jpvt[i] - 1
            for jj in range(min(i + 1, r)):
                Mt[j, jj] = d[j] * A[jj, i]
        # Mt = Q3 @ T3
        info = info or _geqrf(<int>p, <int>r, &Mt[0, 0], <int>p, &tau3[0], &work[0], lwork)
        # c[:r] = solve_triangular(T3, c[:r], trans="T")
        info = info or _trtrs(c'U', c'T', c'N', <int>r, <int>k, &Mt[0, 0], <int>p,
                              &c[0, 0], <int>p)
        for j in range(k):
            for i in range(r, p):
                c[i, j] = 0.0
        # beta = Q3 @ c
        info = info or _ormqr(c'L', c'N', <int>p, <int>k, <int>r, &Mt[0, 0], <int>p, &tau3[0],
                              &c[0, 0], <int>p, &work[0], lwork)
    if info != 0:
        raise RuntimeError(f"minimum-norm solve failed (LAPACK info={info})")
    return np.asarray(c), int(r)
