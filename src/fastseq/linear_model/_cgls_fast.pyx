# Cython driver of fastseq.ops.cgls: the preconditioned CGLS iteration, k right-hand sides at once.
#
# Math (per right-hand side; the k columns run independent recurrences that share one product):
#   minimise f(x) = ||W^{1/2}(b - A_c x)||^2 + damp^2 ||x||^2,   A_c = A - 1 mu^T
#   i.e. CG on the normal equations  N x = A_c^T W b,  N = A_c^T W A_c + damp^2 I,
#   preconditioned by M^{-1} = D^2, D = diag(d) (Jacobi on N: d_j = 1/sqrt(N_jj), 0 for a column
#   with N_jj = 0, which then keeps its starting value).
#
#   s = A_c^T W (b - A_c x) - damp^2 x   (normal residual),  z = D^2 s,  gamma = s.z,  p = z
#   loop:  [t, ||A_c p||_W^2] = fused pass over A  (t = A_c^T W A_c p; see csrc/linear_model/cgls.h)
#          delta = ||A_c p||_W^2 + damp^2 ||p||^2,  alpha = gamma / delta
#          x += alpha p;  s -= alpha (t + damp^2 p);  f -= alpha gamma
#          z = D^2 s;  gamma' = s.z;  beta = gamma'/gamma;  p = z + beta p
# Every `recompute_every` iterations, and before any column is declared converged, the true
# s = A_c^T W (b - A_c x) - damp^2 x and f are recomputed by the same fused pass with V = -x and
# B = b (residual replacement), so the recurrences cannot drift away from the answer.
#
# Stopping rules = scipy.sparse.linalg.lsqr's, evaluated on the operator CG actually iterates on
# (Abar D, Abar = [W^{1/2} A_c; damp I]), with LSQR's running estimates rebuilt from the CG
# coefficients through the Lanczos tridiagonal T_k = B_k^T B_k of that operator:
#   anorm^2 = trace(T_k) = sum_i (1/alpha_i + beta_{i-1}/alpha_{i-1})   (= LSQR's ||B_k||_F^2)
#   ddnorm  = trace(T_k^{-1}) = sum_i ||D^{-1} p_i||^2 / delta_i        (= LSQR's sum ||d_k||^2)
#   acond   = anorm sqrt(ddnorm),  arnorm = ||D s|| = sqrt(gamma),  xnorm = ||D^{-1} x||,
#   rnorm   = sqrt(f) (= r2norm).  In exact arithmetic CGLS and LSQR produce the same iterates
#   and these are the same numbers, so both stop at the same iteration.
from libc.math cimport sqrt, isfinite
from libc.stdint cimport int32_t, int64_t

import numpy as np

from cython cimport floating

from fastseq._lib._blas cimport _gemm_rm, _gemv
from fastseq._lib._kernels cimport (
    FS_OK, fs_status_message, index_t, fs_cgls_max_threads, fs_cgls_dense_normal,
    fs_cgls_csr_normal, fs_cgls_dense_colstats, fs_cgls_csr_colstats)


# The layout of A (the element and index types are NormalOperator.single / .index64).
cdef enum:
    OP_DENSE = 0
    OP_CSR = 1
    OP_PY = 2

cdef double _EPS = np.finfo(np.float64).eps


def max_threads():
    """Threads the compiled kernels may use (1 when built without OpenMP)."""
    return fs_cgls_max_threads()


cdef class NormalOperator:
    """The weighted, column-offset operator A_c = W^{1/2}(A - 1 mu^T) of one CGLS solve.

    ``normal(V)`` returns T = A_c^T W (A_c V [+ B]) and ||A_c V [+ B]||_W^2 per column through one
    fused pass (dense row-major or CSR, any float dtype, int32/int64 indices) or, for a
    ``scipy.sparse.linalg.LinearOperator``, through its matmat/rmatmat with the GIL held.
    The arrays are validated by the Python layer (fastseq.linear_model._cgls) and only referenced
    here.
    """
    cdef int kind
    cdef bint single               # float32 data (else float64)
    cdef bint index64              # CSR with int64 indices (else int32)
    cdef readonly Py_ssize_t n, p, k
    cdef Py_ssize_t ldx
    cdef const void *data
    cdef const void *indices
    cdef const void *indptr
    cdef const double *w
    cdef const double *mu
    cdef const double *B
    cdef int nthreads
    cdef double[::1] work
    cdef bint dense_blas
    cdef Py_ssize_t block_rows
    cdef double[::1] ws_d          # dense BLAS path workspaces (float64 data): E block
    cdef float[::1] ws_s           # (float32 data): V copy, E block, T block
    cdef object _keep, _A_py, _w_arr, _mu_arr, _B_arr
    cdef readonly Py_ssize_t n_passes   # fused passes over A so far (diagnostics, benchmarks)

    def __init__(self, A, B, sample_weight=None, column_offset=None, n_threads=None,
                 dense_kernel="blas", block_bytes=262144):
        cdef const double[:, ::1] Bv = B
        cdef const double[::1] wv
        cdef const double[::1] muv
        self.n = B.shape[0]
        self.k = B.shape[1]
        self._B_arr = B
        self.B = &Bv[0, 0]
        self.w = NULL
        self.mu = NULL
        if sample_weight is not None:
            wv = sample_weight
            self._w_arr = sample_weight
            self.w = &wv[0]
        self._set_matrix(A)
        if column_offset is not None:
            muv = column_offset
            self._mu_arr = column_offset
            self.mu = &muv[0]
        nthreads = fs_cgls_max_threads() if n_threads is None else int(n_threads)
        # Threading a small pass costs more than it saves (an OpenMP fork/join is ~us when cores
        # are idle but a scheduler quantum when they are shared): below ~2e6 stored entries, 1.
        entries = self.n * self.p if self.kind == OP_DENSE else (
            0 if self.kind == OP_PY else A.nnz)
        if self.kind == OP_PY or entries < 2_000_000:
            nthreads = 1
        self.nthreads = max(1, nthreads)
        # Per-thread slices of T and per-thread scalars (see csrc/linear_model/cgls.h): allocated
        # once per call.
        self.work = np.empty((self.nthreads - 1) * self.p * self.k + self.nthreads * 3 * self.k,
                             dtype=np.float64)
        # Dense pass: "blas" (row blocks of ~block_bytes through GEMV/GEMM, block re-read from
        # L2; measured faster than the C loop on this target, see bench/bench_cgls.py) or
        # "fused_c" (csrc/linear_model/cgls.c, 4-row fused loop, OpenMP over rows).
        if dense_kernel not in ("blas", "fused_c"):
            raise ValueError(f"dense_kernel must be 'blas' or 'fused_c', got {dense_kernel!r}")
        self.dense_blas = dense_kernel == "blas" and self.kind == OP_DENSE
        self.block_rows = max(4, min(1024, block_bytes // (self.p * A.dtype.itemsize))) \
            if self.dense_blas else 0
        self.block_rows = min(self.block_rows, max(self.n, 1))
        if self.dense_blas and not self.single:
            self.ws_d = np.empty(self.block_rows * self.k, dtype=np.float64)
        elif self.dense_blas:
            self.ws_s = np.empty(2 * self.p * self.k + self.block_rows * self.k,
                                 dtype=np.float32)

    cdef _set_matrix(self, A):
        cdef const double[:, ::1] Xd
        cdef const float[:, ::1] Xs
        cdef const double[::1] dd
        cdef const float[::1] ds
        cdef const int32_t[::1] i32
        cdef const int32_t[::1] p32
        cdef const int64_t[::1] i64
        cdef const int64_t[::1] p64
        if isinstance(A, np.ndarray):
            self.p = A.shape[1]
            self.ldx = A.shape[1]
            self.kind = OP_DENSE
            if A.dtype == np.float64:
                Xd = A
                self.data = &Xd[0, 0]
            else:
                Xs = A
                self.data = &Xs[0, 0]
                self.single = True
            self._keep = A
        elif hasattr(A, "indptr"):  # CSR, canonical index dtype, validated by the caller
            self.p = A.shape[1]
            self._keep = A
            if A.indices.dtype == np.int32:
                i32 = A.indices
                p32 = A.indptr
                self.indices = &i32[0] if A.nnz else NULL
                self.indptr = &p32[0]
                self.index64 = False
            else:
                i64 = A.indices
                p64 = A.indptr
                self.indices = &i64[0] if A.nnz else NULL
                self.indptr = &p64[0]
                self.index64 = True
            self.kind = OP_CSR
            if A.dtype == np.float64:
                dd = A.data
                self.data = &dd[0] if A.nnz else NULL
            else:
                ds = A.data
                self.data = &ds[0] if A.nnz else NULL
                self.single = True
        else:
            self.p = A.shape[1]
            self._A_py = A
            self.kind = OP_PY

    def column_stats(self):
        """(sum_i w_i a_ij^2, sum_i w_i a_ij) for every column j, in float64 (one pass)."""
        colsumsq = np.zeros(self.p)
        colsum = np.zeros(self.p)
        cdef double[::1] css = colsumsq
        cdef double[::1] cs = colsum
        cdef int st = FS_OK
        if self.kind == OP_PY:
            raise TypeError("column statistics need an explicit matrix, not a LinearOperator")
        with nogil:
            st = _c_pass(self, True, 0, NULL, NULL, False, &css[0], &cs[0], NULL)
        if st != FS_OK:
            raise RuntimeError(fs_status_message(st).decode())
        return colsumsq, colsum

    def normal_product(self, V, bint with_b=False):
        """Test/benchmark hook: (T, sumsq, usum) of the fused pass for V (p x ka float64);
        with_b needs ka == k (the residual pass)."""
        Varr = np.ascontiguousarray(V, dtype=np.float64).reshape(self.p, -1)
        cdef Py_ssize_t ka = Varr.shape[1]
        if with_b and ka != self.k:
            raise ValueError("the residual pass needs V with k columns")
        if ka > self.k:
            raise ValueError("V has more columns than the operator's workspace")
        cdef double[:, ::1] Vv = Varr
        Tarr = np.zeros((self.p, ka))
        cdef double[:, ::1] Tv = Tarr
        cdef double[::1] c = np.zeros(ka), ss = np.zeros(ka), us = np.zeros(ka)
        self.normal(ka, &Vv[0, 0], with_b, &c[0], &Tv[0, 0], &ss[0], &us[0])
        return Tarr, np.asarray(ss), np.asarray(us)

    cdef int normal(self, Py_ssize_t ka, const double *V, bint with_b, double *c, double *T,
                    double *sumsq, double *usum) except -1 nogil:
        """T = A_c^T W (A_c V [+ B]),  sumsq = ||A_c V [+ B]||_W^2 per column (V, T: p x ka)."""
        cdef Py_ssize_t j, l
        cdef int st = FS_OK
        cdef const double *Bp = self.B if with_b else NULL
        self.n_passes += 1
        # c = mu^T V  (A_c V = A V - 1 c^T)
        for l in range(ka):
            c[l] = 0.0
        if self.mu != NULL:
            for j in range(self.p):
                for l in range(ka):
                    c[l] += self.mu[j] * V[j * ka + l]
        if self.kind == OP_PY:
            with gil:
                self._normal_py(ka, V, with_b, c, T, sumsq, usum)
        elif self.dense_blas and not self.single:
            _dense_blas_pass(<const double*>self.data, self.n, self.p, ka, self.block_rows,
                             V, c, Bp, self.k, self.w, T, sumsq, usum, <double*>NULL,
                             &self.ws_d[0], <double*>NULL)
        elif self.dense_blas and not with_b:
            # float32 data: directions through float32 BLAS (a relative perturbation ~1e-7 of
            # the operator, which CG tolerates); the residual pass below goes through the C loop,
            # which accumulates in float64, so the true residual is not limited by float32 sums.
            _dense_blas_pass(<const float*>self.data, self.n, self.p, ka, self.block_rows,
                             V, c, Bp, self.k, self.w, T, sumsq, usum, &self.ws_s[0],
                             &self.ws_s[2 * self.p * self.k], &self.ws_s[self.p * self.k])
        else:
            st = _c_pass(self, False, ka, V, c, with_b, T, sumsq, usum)
        if st != FS_OK:
            with gil:
                raise RuntimeError(fs_status_message(st).decode())
        # A_c^T u = A^T u - mu (1^T u)
        if self.mu != NULL:
            for j in range(self.p):
                for l in range(ka):
                    T[j * ka + l] -= self.mu[j] * usum[l]
        return 0

    cdef _normal_py(self, Py_ssize_t ka, const double *V, bint with_b, double *c, double *T,
                    double *sumsq, double *usum):
        # LinearOperator path: E = A V - 1 c^T [+ B]; U = w E; T = A^T U (Python matmat/rmatmat).
        cdef Py_ssize_t j, l
        cdef double[:, ::1] Tv
        Vn = np.empty((self.p, ka))
        cdef double[:, ::1] Vv = Vn
        for j in range(self.p):
            for l in range(ka):
                Vv[j, l] = V[j * ka + l]
        cvec = np.array([c[l] for l in range(ka)])
        E = np.asarray(self._A_py.matmat(Vn), dtype=np.float64).reshape(self.n, ka) - cvec
        if with_b:
            E = E + self._B_arr
        U = E * self._w_arr[:, None] if self._w_arr is not None else E
        Tn = np.ascontiguousarray(
            np.asarray(self._A_py.rmatmat(U), dtype=np.float64).reshape(self.p, ka))
        if not np.isfinite(Tn).all():
            raise ValueError("the LinearOperator returned NaN or infinity")
        Tv = Tn
        ssq = np.einsum("il,il->l", U, E)
        us = U.sum(axis=0)
        for l in range(ka):
            sumsq[l] = ssq[l]
            usum[l] = us[l]
            for j in range(self.p):
                T[j * ka + l] = Tv[j, l]


cdef int _c_pass(NormalOperator op, bint colstats, Py_ssize_t ka, const double *V,
                 const double *c, bint with_b, double *T, double *sumsq,
                 double *usum) noexcept nogil:
    # One pass of the C kernels over A (dense or CSR): the fused normal product T, sumsq, usum
    # for V (p x ka), or with `colstats` the column statistics into T (sum w a^2), sumsq (sum w a).
    # A's element and index types pick the instantiation of _typed_pass (dense A: int32 unused).
    if op.single:
        if op.index64:
            return _typed_pass(op, <const float *>op.data, <const int64_t *>op.indices,
                               colstats, ka, V, c, with_b, T, sumsq, usum)
        return _typed_pass(op, <const float *>op.data, <const int32_t *>op.indices,
                           colstats, ka, V, c, with_b, T, sumsq, usum)
    if op.index64:
        return _typed_pass(op, <const double *>op.data, <const int64_t *>op.indices,
                           colstats, ka, V, c, with_b, T, sumsq, usum)
    return _typed_pass(op, <const double *>op.data, <const int32_t *>op.indices,
                       colstats, ka, V, c, with_b, T, sumsq, usum)


cdef int _typed_pass(NormalOperator op, const floating *data, const index_t *indices,
                     bint colstats, Py_ssize_t ka, const double *V, const double *c,
                     bint with_b, double *T, double *sumsq, double *usum) noexcept nogil:
    cdef const index_t *indptr = <const index_t *>op.indptr
    cdef const double *B = op.B if with_b else NULL
    if colstats and op.kind == OP_DENSE:
        return fs_cgls_dense_colstats(op.n, op.p, data, op.ldx, op.w, T, sumsq)
    if colstats:
        return fs_cgls_csr_colstats(op.n, op.p, data, indices, indptr, op.w, T, sumsq)
    if op.kind == OP_DENSE:
        return fs_cgls_dense_normal(op.n, op.p, ka, data, op.ldx, V, c, B, op.k, op.w, T, sumsq,
                                    usum, op.nthreads, &op.work[0])
    return fs_cgls_csr_normal(op.n, op.p, ka, data, indices, indptr, V, c, B, op.k, op.w, T,
                              sumsq, usum, op.nthreads, &op.work[0])


cdef void _dense_blas_pass(const floating *X, Py_ssize_t n, Py_ssize_t p, Py_ssize_t ka,
                           Py_ssize_t nb, const double *V, const double *c, const double *B,
                           Py_ssize_t ldb, const double *w, double *T, double *sumsq,
                           double *usum, floating *Vf, floating *Eb, floating *Tb) noexcept nogil:
    # One pass over X (row-major n x p) by blocks of nb rows, each block used twice while in L2:
    #   E_b = X_b V - 1 c^T (+ B_b);  U_b = diag(w_b) E_b;  T += X_b^T U_b
    # float64 data accumulates T in place (beta = 1); float32 data forms T_b = X_b^T U_b in
    # float32 per block and adds it to the float64 T, so the sum over blocks is in float64.
    cdef Py_ssize_t i0 = 0, i, l, j, nbi
    cdef Py_ssize_t pk = p * ka
    cdef char trans = b'T'
    cdef char notrans = b'N'
    cdef const floating *Vp
    cdef double e, u
    for l in range(ka):
        sumsq[l] = 0.0
        usum[l] = 0.0
    for j in range(pk):
        T[j] = 0.0
    if floating is float:
        for j in range(pk):
            Vf[j] = <float>V[j]
        Vp = Vf
    else:
        Vp = V
    while i0 < n:
        nbi = min(nb, n - i0)
        if ka == 1:
            # e_b = X[i0:i0+nbi] @ v      (row-major block = column-major p x nbi, transposed)
            _gemv(trans, <int>p, <int>nbi, <floating>1.0, X + i0 * p, <int>p, Vp, 1,
                  <floating>0.0, Eb, 1)
        else:
            # E_b = X[i0:i0+nbi] @ V
            _gemm_rm(False, False, <int>nbi, <int>ka, <int>p, <floating>1.0, X + i0 * p, <int>p,
                     Vp, <int>ka, <floating>0.0, Eb, <int>ka)
        for i in range(nbi):
            for l in range(ka):
                e = <double>Eb[i * ka + l] - c[l]
                if B != NULL:
                    e = e + B[(i0 + i) * ldb + l]
                u = w[i0 + i] * e if w != NULL else e
                sumsq[l] += u * e
                usum[l] += u
                Eb[i * ka + l] = <floating>u
        if floating is double:
            if ka == 1:
                # T += X[i0:i0+nbi].T @ u_b
                _gemv(notrans, <int>p, <int>nbi, 1.0, X + i0 * p, <int>p, Eb, 1, 1.0, T, 1)
            else:
                # T += X[i0:i0+nbi].T @ U_b
                _gemm_rm(True, False, <int>p, <int>ka, <int>nbi, 1.0, X + i0 * p, <int>p,
                         Eb, <int>ka, 1.0, T, <int>ka)
        else:
            if ka == 1:
                # T_b = X[i0:i0+nbi].T @ u_b
                _gemv(notrans, <int>p, <int>nbi, <float>1.0, X + i0 * p, <int>p, Eb, 1,
                      <float>0.0, Tb, 1)
            else:
                # T_b = X[i0:i0+nbi].T @ U_b
                _gemm_rm(True, False, <int>p, <int>ka, <int>nbi, <float>1.0, X + i0 * p,
                         <int>p, Eb, <int>ka, <float>0.0, Tb, <int>ka)
            for j in range(pk):
                T[j] += Tb[j]
        i0 += nbi


def cgls_iterate(NormalOperator op, X0, d, double damp, double atol, double btol,
                 double conlim, Py_ssize_t max_iter, Py_ssize_t recompute_every,
                 Py_ssize_t history_len, double replace_drift=1e-3):
    """Run preconditioned CGLS on ``op`` from X0 (p x k float64; copied) with column scales d.

    Returns a dict of per-column arrays: x (p x k), istop, n_iter, r1norm, r2norm, anorm, acond,
    arnorm, xnorm (k each) and history ((history_len + 1) x k normal-residual estimates, NaN
    after a column stopped). ``bnorm`` is ||W^{1/2} b|| per column, computed here.
    """
    cdef Py_ssize_t p = op.p, k = op.k
    cdef Py_ssize_t j, l, a, ka, itn = 0
    x_arr = np.array(X0, dtype=np.float64, order="C", copy=True)
    d_arr = np.ascontiguousarray(d, dtype=np.float64)
    cdef double[:, ::1] x = x_arr
    cdef const double[::1] dv = d_arr
    cdef double[:, ::1] s = np.zeros((p, k))
    cdef double[:, ::1] St = np.zeros((p, k))    # true s of the residual pass
    cdef double[::1] f_ref = np.zeros(k)
    cdef double[:, ::1] P = np.zeros((p, k))
    cdef double[::1] Vact = np.zeros(p * k)     # active columns of P, gathered (p x ka)
    cdef double[::1] Tact = np.zeros(p * k)
    cdef double[::1] cbuf = np.zeros(k)
    cdef double[::1] sumsq = np.zeros(k)
    cdef double[::1] usum = np.zeros(k)
    cdef Py_ssize_t[::1] cols = np.zeros(k, dtype=np.intp)
    # per-column state
    istop_arr = np.zeros(k, dtype=np.intp)
    itn_arr = np.zeros(k, dtype=np.intp)
    out = {name: np.zeros(k) for name in
           ("r1norm", "r2norm", "anorm", "acond", "arnorm", "xnorm")}
    cdef Py_ssize_t[::1] istop = istop_arr
    cdef Py_ssize_t[::1] niter = itn_arr
    cdef double[::1] r1o = out["r1norm"], r2o = out["r2norm"], ano = out["anorm"]
    cdef double[::1] aco = out["acond"], aro = out["arnorm"], xno = out["xnorm"]
    cdef double[::1] gamma = np.zeros(k), f = np.zeros(k), bnorm = np.zeros(k)
    cdef double[::1] alpha_prev = np.zeros(k), beta_prev = np.zeros(k)
    cdef double[::1] anorm2 = np.zeros(k), ddnorm = np.zeros(k)
    cdef double[::1] gamma_new = np.zeros(k)
    cdef unsigned char[::1] active = np.ones(k, dtype=np.uint8)
    cdef unsigned char[::1] tentative = np.zeros(k, dtype=np.uint8)
    hist_arr = np.full((history_len + 1, k), np.nan)
    cdef double[:, ::1] hist = hist_arr
    cdef double damp2 = damp * damp
    cdef double ctol = 1.0 / conlim if conlim > 0 else 0.0
    cdef double alpha, beta, delta, pp2, pps, xx, xs, g, tdiag, drift
    cdef int cand, n_active, need_recompute, periodic
    cdef Py_ssize_t hist_i
    cdef Py_ssize_t[::1] last_confirm = np.full(k, -1, dtype=np.intp)
    cdef Py_ssize_t[::1] confirm_gap = np.ones(k, dtype=np.intp)

    # ||W^{1/2} b|| per column
    Barr = op._B_arr
    # (einsum: no n x k temporary)
    bn = np.sqrt(np.einsum("il,il->l", Barr, Barr) if op._w_arr is None else
                 np.einsum("i,il,il->l", op._w_arr, Barr, Barr))
    for l in range(k):
        bnorm[l] = bn[l]

    with nogil:
        # ---- start: true residual pass, s = A_c^T W (b - A_c x) - damp^2 x, f = r2norm^2
        _residual_pass(op, x, s, Vact, cbuf, Tact, sumsq, usum, f, damp2, p, k)
        for l in range(k):
            g = 0.0
            for j in range(p):
                P[j, l] = dv[j] * dv[j] * s[j, l]           # p = z = D^2 s
                g += s[j, l] * P[j, l]
            gamma[l] = g
            xx = 0.0
            xs = 0.0
            for j in range(p):
                xx += x[j, l] * x[j, l]
                if dv[j] > 0.0:
                    xs += (x[j, l] / dv[j]) * (x[j, l] / dv[j])
            f_ref[l] = f[l]
            r2o[l] = sqrt(f[l])
            r1o[l] = sqrt(max(f[l] - damp2 * xx, 0.0))
            aro[l] = sqrt(g)
            xno[l] = sqrt(xs)
            hist[0, l] = sqrt(g)
            # x is already a solution: b = 0, r = 0 or A^T r = 0 (LSQR's istop = 0)
            if bnorm[l] == 0.0 or f[l] == 0.0 or g == 0.0:
                active[l] = 0
                istop[l] = 0
                if bnorm[l] == 0.0:
                    for j in range(p):
                        x[j, l] = 0.0
                    r1o[l] = 0.0
                    r2o[l] = 0.0
                    xno[l] = 0.0
                    aro[l] = 0.0

        while True:
            n_active = 0
            for l in range(k):
                if active[l]:
                    cols[n_active] = l
                    n_active += 1
            if n_active == 0:
                break
            ka = n_active
            # gather the active search directions: Vact = P[:, cols]
            for j in range(p):
                for a in range(ka):
                    Vact[j * ka + a] = P[j, cols[a]]
            # Tact = A_c^T W A_c P[:, cols],  sumsq = ||A_c p||_W^2   (one fused pass over A)
            op.normal(ka, &Vact[0], False, &cbuf[0], &Tact[0], &sumsq[0], &usum[0])
            itn += 1
            need_recompute = 0
            for a in range(ka):
                l = cols[a]
                pp2 = 0.0
                pps = 0.0
                for j in range(p):
                    pp2 += P[j, l] * P[j, l]
                    if dv[j] > 0.0:
                        pps += (P[j, l] / dv[j]) * (P[j, l] / dv[j])
                delta = sumsq[a] + damp2 * pp2
                tentative[l] = 0
                niter[l] = itn
                if not (delta > 0.0) or not (gamma[l] > 0.0):
                    # breakdown: p in the numerical null space of N (cond(N) beyond precision)
                    tentative[l] = 3
                    need_recompute = 1
                    gamma_new[l] = gamma[l]
                    continue
                alpha = gamma[l] / delta
                if not isfinite(alpha):
                    with gil:
                        raise FloatingPointError("CGLS step length overflowed (alpha not finite)")
                # x += alpha p;  s -= alpha (A_c^T W A_c p + damp^2 p);  f -= alpha gamma
                for j in range(p):
                    x[j, l] += alpha * P[j, l]
                    s[j, l] -= alpha * (Tact[j * ka + a] + damp2 * P[j, l])
                f[l] -= alpha * gamma[l]
                # Lanczos tridiagonal of D N D from the CG coefficients
                tdiag = 1.0 / alpha
                if alpha_prev[l] > 0.0:
                    tdiag += beta_prev[l] / alpha_prev[l]
                anorm2[l] += tdiag
                ddnorm[l] += pps / delta
                alpha_prev[l] = alpha
                g = 0.0
                for j in range(p):
                    g += dv[j] * dv[j] * s[j, l] * s[j, l]
                gamma_new[l] = g
                cand = _lsqr_tests(l, x, dv, p, sqrt(max(f[l], 0.0)), sqrt(max(g, 0.0)),
                                   anorm2[l], ddnorm[l], bnorm[l], atol, btol, ctol,
                                   itn >= max_iter, &xno[l])
                if cand != 0:
                    tentative[l] = cand
                    need_recompute = 1
                elif f[l] < 1e-6 * f_ref[l]:
                    # f = f_ref - sum(alpha gamma) has lost ~6 of its digits to cancellation
                    # (absolute error ~ eps f_ref): refresh it before trusting S1/S2 on it.
                    tentative[l] = 9
                    need_recompute = 1
            periodic = recompute_every > 0 and itn % recompute_every == 0
            if need_recompute and not periodic:
                # confirmations of S1/S2 that keep failing (stagnation at the accuracy floor)
                # are throttled; refreshes, breakdowns and the final limits are not.
                need_recompute = 0
                for a in range(ka):
                    l = cols[a]
                    if tentative[l] == 3 or tentative[l] == 6 or tentative[l] == 7 \
                            or tentative[l] == 9:
                        need_recompute = 1
                    elif tentative[l] != 0 and itn - last_confirm[l] >= confirm_gap[l]:
                        need_recompute = 1
            if periodic or need_recompute:
                # true s and f for every column (one fused pass with V = -x, B = b)
                _residual_pass(op, x, St, Vact, cbuf, Tact, sumsq, usum, f, damp2, p, k)
                for a in range(ka):
                    l = cols[a]
                    f_ref[l] = f[l]
                    g = 0.0
                    drift = 0.0
                    for j in range(p):
                        g += dv[j] * dv[j] * St[j, l] * St[j, l]
                        drift += dv[j] * dv[j] * (St[j, l] - s[j, l]) * (St[j, l] - s[j, l])
                    if tentative[l] != 0 and tentative[l] != 9:
                        last_confirm[l] = itn
                        cand = _lsqr_tests(l, x, dv, p, sqrt(max(f[l], 0.0)), sqrt(g),
                                           anorm2[l], ddnorm[l], bnorm[l], atol, btol, ctol,
                                           itn >= max_iter, &xno[l])
                        if tentative[l] == 3 and cand == 0:
                            cand = 3          # breakdown stands: cannot continue
                        if cand != 0:
                            istop[l] = cand
                            active[l] = 0
                        else:
                            confirm_gap[l] = min(2 * confirm_gap[l], max(recompute_every, 1))
                    # Residual replacement s <- true s when the recurrence has drifted (or the
                    # column stops, so its final numbers are the true ones). Replacing on every
                    # pass would perturb the conjugacy of p more than the drift costs.
                    if not active[l] or drift > replace_drift * replace_drift * g:
                        for j in range(p):
                            s[j, l] = St[j, l]
                        gamma_new[l] = g
            # finish the iteration for the columns still running
            for a in range(ka):
                l = cols[a]
                hist_i = itn if itn <= history_len else -1
                if hist_i >= 0:
                    hist[hist_i, l] = sqrt(max(gamma_new[l], 0.0))
                if not active[l]:
                    _final_stats(l, x, f, gamma_new, anorm2, ddnorm, damp2, dv, p,
                                 r1o, r2o, ano, aco, aro)
                    continue
                # p = z + beta p,  z = D^2 s,  beta = gamma'/gamma
                beta = gamma_new[l] / gamma[l]
                for j in range(p):
                    P[j, l] = dv[j] * dv[j] * s[j, l] + beta * P[j, l]
                gamma[l] = gamma_new[l]
                beta_prev[l] = beta

    hist_len_used = min(itn, history_len) + 1
    out.update(x=x_arr, istop=istop_arr, n_iter=itn_arr, n_passes=op.n_passes,
               history=hist_arr[:hist_len_used].copy())
    return out


cdef void _final_stats(Py_ssize_t l, double[:, ::1] x, double[::1] f, double[::1] gamma_new,
                       double[::1] anorm2, double[::1] ddnorm, double damp2,
                       const double[::1] dv, Py_ssize_t p, double[::1] r1o, double[::1] r2o,
                       double[::1] ano, double[::1] aco, double[::1] aro) noexcept nogil:
    cdef Py_ssize_t j
    cdef double xx = 0.0
    for j in range(p):
        xx += x[j, l] * x[j, l]
    r2o[l] = sqrt(max(f[l], 0.0))
    r1o[l] = sqrt(max(f[l] - damp2 * xx, 0.0))
    ano[l] = sqrt(anorm2[l])
    aco[l] = sqrt(anorm2[l]) * sqrt(ddnorm[l])
    aro[l] = sqrt(max(gamma_new[l], 0.0))


cdef int _lsqr_tests(Py_ssize_t l, double[:, ::1] x, const double[::1] dv, Py_ssize_t p,
                     double rnorm, double arnorm, double anorm2, double ddnorm, double bnorm,
                     double atol, double btol, double ctol, bint at_limit,
                     double *xnorm_out) noexcept nogil:
    # scipy.sparse.linalg.lsqr's stopping rules, same order (later rules take precedence).
    cdef Py_ssize_t j
    cdef double xs = 0.0, anorm = sqrt(anorm2), acond = anorm * sqrt(ddnorm)
    cdef double xnorm, test1, test2, test3, t1, rtol
    cdef int istop = 0
    for j in range(p):
        if dv[j] > 0.0:
            xs += (x[j, l] / dv[j]) * (x[j, l] / dv[j])
    xnorm = sqrt(xs)
    xnorm_out[0] = xnorm
    test1 = rnorm / bnorm
    test2 = arnorm / (anorm * rnorm + _EPS)
    test3 = 1.0 / (acond + _EPS)
    t1 = test1 / (1.0 + anorm * xnorm / bnorm)
    rtol = btol + atol * anorm * xnorm / bnorm
    if at_limit:
        istop = 7
    if 1.0 + test3 <= 1.0:
        istop = 6
    if 1.0 + test2 <= 1.0:
        istop = 5
    if 1.0 + t1 <= 1.0:
        istop = 4
    if test3 <= ctol:
        istop = 3
    if test2 <= atol:
        istop = 2
    if test1 <= rtol:
        istop = 1
    return istop


cdef int _residual_pass(NormalOperator op, double[:, ::1] x, double[:, ::1] s, double[::1] Vneg,
                        double[::1] cbuf, double[::1] T, double[::1] sumsq, double[::1] usum,
                        double[::1] f, double damp2, Py_ssize_t p, Py_ssize_t k) except -1 nogil:
    # s = A_c^T W (b - A_c x) - damp^2 x,  f = ||b - A_c x||_W^2 + damp^2 ||x||^2
    # (the fused pass with V = -x and B = b: E = A_c(-x) + b is the residual).
    # Vneg and T are the (p x k) direction-pass buffers, free between direction passes.
    cdef Py_ssize_t j, l
    cdef double xx
    for j in range(p):
        for l in range(k):
            Vneg[j * k + l] = -x[j, l]
    op.normal(k, &Vneg[0], True, &cbuf[0], &T[0], &sumsq[0], &usum[0])
    for l in range(k):
        xx = 0.0
        for j in range(p):
            s[j, l] = T[j * k + l] - damp2 * x[j, l]
            xx += x[j, l] * x[j, l]
        f[l] = sumsq[l] + damp2 * xx
    return 0
