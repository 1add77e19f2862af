"""Compiled epoch of mini-batch SGD on the squared loss (driver for fastseq.SGDRegressor).

One call runs one epoch over the samples in the order of a permutation drawn in Python. For each
mini-batch B (|B| = m) of rows, with W = scale * V (k, p), intercept b (k,), weights s_i:

    r_i   = W x_i + b - y_i                     residuals (BLAS gemv/gemm or the CSR kernel)
    loss += sum_i 0.5 s_i ||r_i||^2            on-the-fly training loss (before the update)
    eta   = schedule(t)                          constant | optimal | invscaling (see _eta)
    W    <- (1 - eta alpha) W - (eta / m) sum_i s_i r_i x_i^T       (L2 penalty 0.5 alpha ||W||^2)
    b    <- b - (eta / m) sum_i s_i r_i
    t    <- t + 1        (t counts updates, starting at 1 like sklearn's t_)

The L2 shrinkage only multiplies `scale` (O(1)); the gradient step is applied to V divided by the
new scale, so a sparse step touches only the batch's nonzero columns. With averaging (ASGD) the
running mean of W over the updates after `average_start` samples is kept in avg_W, avg_b.

Everything runs without the GIL; workspaces are allocated once per call. The caller (Python)
validates shapes, dtypes and finiteness and owns the copies it may need to restore on divergence.
"""
from libc.math cimport pow, sqrt, isfinite
from libc.stdint cimport int32_t
from cython cimport floating

from fastseq._lib._blas cimport _axpy, _dot, _gemv, _gemm_rm, _scal
from fastseq._lib._kernels cimport (
    FS_OK, FS_ERR_NONFINITE, fs_all_finite, fs_sgd_residual, fs_sgd_csr_residual,
    fs_sgd_csr_update, fs_sgd_intercept, fs_sgd_average, fs_sgd_gather, fs_sgd_rows_contiguous,
    fs_sgd_prefetch_dense, fs_sgd_prefetch_csr)

import numpy as np

# Learning-rate schedules understood by the kernel ('adaptive' is 'constant' driven from Python).
cdef enum:
    _CONSTANT = 0
    _OPTIMAL = 1
    _INVSCALING = 2

SCHEDULE_CONSTANT = _CONSTANT
SCHEDULE_OPTIMAL = _OPTIMAL
SCHEDULE_INVSCALING = _INVSCALING

# Below this the scaled representation W = scale * V is folded back (V *= scale, scale = 1) so
# that V cannot overflow; the same threshold sklearn uses.
cdef double _MIN_SCALE = 1e-9


cdef struct Schedule:
    int kind
    double eta0          # constant / invscaling base rate (the current rate for 'adaptive')
    double power_t       # invscaling exponent
    double alpha         # L2 strength (also sets the 'optimal' rate)
    double optimal_init  # t0 of the 'optimal' schedule: eta(t=1) = 1 / (alpha * optimal_init)
    bint l2
    bint fit_intercept
    Py_ssize_t average_start  # 0: no averaging; else average once this many samples were seen


cdef struct State:
    double t             # update counter, starts at 1
    Py_ssize_t n_seen    # samples seen (drives the averaging start, like sklearn's t_ - 1)
    Py_ssize_t n_avg     # number of updates averaged so far
    double loss          # sum over the epoch of 0.5 * s_i * ||r_i||^2 (before each update)
    double first_loss    # mean loss of the first batch: the loss at the starting weights


cdef inline double _eta(const Schedule *s, double t) noexcept nogil:
    # sklearn's schedules, t = number of the update about to be made (1-based):
    #   constant: eta0;  optimal: 1 / (alpha (t0 + t - 1));  invscaling: eta0 / t^power_t
    if s.kind == _OPTIMAL:
        return 1.0 / (s.alpha * (s.optimal_init + t - 1.0))
    if s.kind == _INVSCALING:
        # pow() is ~80 ns, as much as a whole sparse step: the common exponents use sqrt
        if s.power_t == 0.25:
            return s.eta0 / sqrt(sqrt(t))
        if s.power_t == 0.5:
            return s.eta0 / sqrt(t)
        return s.eta0 / pow(t, s.power_t)
    return s.eta0


cdef inline void _all_finite_into(Py_ssize_t n, const floating *x, int *ok) noexcept nogil:
    ok[0] = ok[0] and fs_all_finite(n, x)


cdef inline floating _shrink(const Schedule *s, double eta, floating scale, Py_ssize_t kp,
                             floating *V) noexcept nogil:
    # L2 shrinkage W <- (1 - eta alpha) W as scale <- scale (1 - eta alpha). A factor <= 0 (eta
    # alpha >= 1) would flip or zero the weights: like sklearn, clamp it to 0 (W = 0).
    cdef double decay
    if not s.l2:
        return scale
    decay = 1.0 - eta * s.alpha
    if decay <= 0.0:
        # V = 0 * V
        _scal(<int>kp, <floating>0.0, V, 1)
        return 1
    scale = <floating>(scale * decay)
    if scale < _MIN_SCALE:
        # V = scale * V  (fold the scale back before V can overflow)
        _scal(<int>kp, scale, V, 1)
        return 1
    return scale


cdef inline void _after_step(const Schedule *s, State *st, double eta, Py_ssize_t m,
                             Py_ssize_t k, Py_ssize_t p, const floating *R, floating scale,
                             const floating *V, floating *b, floating *avg_W,
                             floating *avg_b) noexcept nogil:
    # b -= (eta / m) * R.sum(axis=0)       (R already carries the sample weights)
    cdef floating step = <floating>(-eta / m)
    if s.fit_intercept:
        fs_sgd_intercept(m, k, R, step, b)
    st.t += 1.0
    st.n_seen += m
    if s.average_start > 0 and st.n_seen >= s.average_start:
        # running means: avg_W += (W - avg_W) / n_avg,  avg_b += (b - avg_b) / n_avg
        st.n_avg += 1
        fs_sgd_average(k * p, V, scale, <floating>(1.0 / st.n_avg), avg_W)
        fs_sgd_average(k, b, 1, <floating>(1.0 / st.n_avg), avg_b)


cdef inline int _finish(Py_ssize_t kp, Py_ssize_t k, floating scale, floating *V,
                        const floating *b, int status) noexcept nogil:
    # W = scale * V: hand back the plain coefficients, then check them.
    cdef int ok = 1
    if scale != 1:
        _scal(<int>kp, scale, V, 1)
    _all_finite_into(kp, V, &ok)
    _all_finite_into(k, b, &ok)
    if status == FS_OK and not ok:
        status = FS_ERR_NONFINITE
    return status


cdef int _check_epoch_args(Py_ssize_t n_rows, Py_ssize_t p, Py_ssize_t k, Py_ssize_t y_rows,
                           Py_ssize_t sw_rows, const Py_ssize_t[::1] perm, Py_ssize_t w_rows,
                           Py_ssize_t w_cols, Py_ssize_t b_len, Py_ssize_t avg_rows,
                           Py_ssize_t avg_cols, Py_ssize_t avg_b_len, Py_ssize_t batch_size,
                           Py_ssize_t average_start) except -1:
    # The kernels trust every shape and index: a mismatch here would be an out-of-bounds write,
    # so this private entry point checks them (O(n) for the permutation, small next to an epoch).
    cdef Py_ssize_t i, bad = 0
    if y_rows != n_rows or sw_rows != n_rows:
        raise ValueError(f"X has {n_rows} rows but Y has {y_rows} and sample_weight {sw_rows}")
    if w_rows != k or w_cols != p or b_len != k:
        raise ValueError(f"coef must be ({k}, {p}) and intercept ({k},), got ({w_rows}, "
                         f"{w_cols}) and ({b_len},)")
    if average_start > 0 and (avg_rows != k or avg_cols != p or avg_b_len != k):
        raise ValueError(f"averaging needs avg_coef ({k}, {p}) and avg_intercept ({k},)")
    if batch_size < 1 or p < 1 or k < 1 or n_rows < 1:
        raise ValueError("batch_size, n_features, n_outputs and n_samples must be >= 1")
    with nogil:
        for i in range(perm.shape[0]):
            if perm[i] < 0 or perm[i] >= n_rows:
                bad = 1
                break
    if bad:
        raise ValueError(f"perm must hold row indices in [0, {n_rows})")
    return 0


def _make_schedule(int kind, double eta0, double power_t, double alpha, double optimal_init,
                   bint l2, bint fit_intercept, Py_ssize_t average_start):
    cdef Schedule s
    s.kind = kind
    s.eta0 = eta0
    s.power_t = power_t
    s.alpha = alpha
    s.optimal_init = optimal_init
    s.l2 = l2
    s.fit_intercept = fit_intercept
    s.average_start = average_start
    return s


def epoch_dense(const floating[:, ::1] X, const floating[:, ::1] Y, const floating[::1] sw,
                const Py_ssize_t[::1] perm, floating[:, ::1] W, floating[::1] b,
                floating[:, ::1] avg_W, floating[::1] avg_b, Py_ssize_t batch_size,
                dict schedule, double t, Py_ssize_t n_seen, Py_ssize_t n_avg):
    """One epoch of mini-batch SGD on dense X (n, p); W (k, p), b (k,) updated in place.

    Returns ``(status, t, n_seen, n_avg, loss_sum, first_batch_mean_loss)``; status is a
    csrc/lib/fastseq.h code (FS_ERR_NONFINITE on divergence: W, b are then unusable, the caller
    restores them).
    """
    cdef Schedule s = schedule
    cdef State st
    cdef Py_ssize_t n = perm.shape[0], p = X.shape[1], k = Y.shape[1]
    cdef Py_ssize_t start, m, kp = k * p
    cdef int status = FS_OK
    cdef double eta
    cdef floating scale = 1
    cdef const floating *xb
    cdef const Py_ssize_t *rows
    dtype = np.float32 if floating is float else np.float64
    cdef floating[:, ::1] Xb = np.empty((batch_size, p), dtype=dtype)  # gathered batch rows
    _check_epoch_args(X.shape[0], p, k, Y.shape[0], sw.shape[0], perm, W.shape[0], W.shape[1],
                      b.shape[0], avg_W.shape[0], avg_W.shape[1], avg_b.shape[0], batch_size,
                      s.average_start)
    cdef floating[:, ::1] R = np.empty((batch_size, k), dtype=dtype)   # batch residuals
    st.t = t
    st.n_seen = n_seen
    st.n_avg = n_avg
    st.loss = 0.0
    st.first_loss = 0.0
    with nogil:
        start = 0
        while start < n:
            m = min(batch_size, n - start)
            rows = &perm[start]
            start += m
            if start < n:
                fs_sgd_prefetch_dense(min(batch_size, n - start), &perm[start],
                                      <const char *>&X[0, 0], p * sizeof(floating),
                                      <const char *>&Y[0, 0], k * sizeof(floating),
                                      <const char *>&sw[0], sizeof(floating))
            if fs_sgd_rows_contiguous(m, rows):
                xb = &X[rows[0], 0]
            else:
                # Xb = X[rows]
                fs_sgd_gather(m, p, rows, &X[0, 0], &Xb[0, 0])
                xb = &Xb[0, 0]
            if k == 1 and m == 1:
                # R[0, 0] = scale * x @ V[0]    (dot: less call overhead than gemv for classic SGD)
                R[0, 0] = scale * _dot(<int>p, xb, 1, &W[0, 0], 1)
            elif k == 1:
                # R[:, 0] = scale * Xb @ V[0]      (Xb row-major (m, p) = column-major (p, m))
                _gemv(c'T', <int>p, <int>m, scale, xb, <int>p, &W[0, 0], 1,
                      <floating>0.0, &R[0, 0], 1)
            else:
                # R = scale * Xb @ V.T
                _gemm_rm(False, True, <int>m, <int>k, <int>p, scale, xb, <int>p, &W[0, 0],
                         <int>p, <floating>0.0, &R[0, 0], <int>k)
            # R = sw[rows, None] * (R + b - Y[rows]);  loss += 0.5 * sum(sw * ||r||^2)
            st.loss += fs_sgd_residual(m, k, rows, &Y[0, 0], &sw[0], &b[0], &R[0, 0])
            if not isfinite(st.loss):
                status = FS_ERR_NONFINITE
                break
            if start == m:
                st.first_loss = st.loss / m
            eta = _eta(&s, st.t)
            scale = _shrink(&s, eta, scale, kp, &W[0, 0])
            if k == 1 and m == 1:
                # V[0] -= (eta / scale) * R[0, 0] * x
                _axpy(<int>p, <floating>(-eta / scale) * R[0, 0], xb, 1, &W[0, 0], 1)
            elif k == 1:
                # V[0] -= (eta / (m scale)) * R[:, 0] @ Xb
                _gemv(c'N', <int>p, <int>m, <floating>(-eta / (m * scale)), xb, <int>p,
                      &R[0, 0], 1, <floating>1.0, &W[0, 0], 1)
            else:
                # V -= (eta / (m scale)) * R.T @ Xb
                _gemm_rm(True, False, <int>k, <int>p, <int>m, <floating>(-eta / (m * scale)),
                         &R[0, 0], <int>k, xb, <int>p, <floating>1.0, &W[0, 0], <int>p)
            _after_step(&s, &st, eta, m, k, p, &R[0, 0], scale, &W[0, 0], &b[0],
                        &avg_W[0, 0], &avg_b[0])
        status = _finish(kp, k, scale, &W[0, 0], &b[0], status)
    return status, st.t, st.n_seen, st.n_avg, st.loss, st.first_loss


def epoch_csr(const floating[::1] data, const int32_t[::1] indices, const Py_ssize_t[::1] indptr,
              Py_ssize_t n_features, const floating[:, ::1] Y, const floating[::1] sw,
              const Py_ssize_t[::1] perm, floating[:, ::1] W, floating[::1] b,
              floating[:, ::1] avg_W, floating[::1] avg_b, Py_ssize_t batch_size,
              dict schedule, double t, Py_ssize_t n_seen, Py_ssize_t n_avg):
    """One epoch of mini-batch SGD on CSR X (data, indices, indptr); same contract as
    `epoch_dense`. Each step costs O(nnz(batch) k) plus O(k p) only when the scale is folded."""
    cdef Schedule s = schedule
    cdef State st
    cdef Py_ssize_t n = perm.shape[0], p = n_features, k = Y.shape[1]
    cdef Py_ssize_t start, m, next_m, kp = k * p
    cdef int status = FS_OK
    cdef double eta
    cdef floating scale = 1
    cdef const Py_ssize_t *rows
    # data may be empty (an all-zero matrix): never take &data[0] then.
    cdef const floating *data_ptr = &data[0] if data.shape[0] > 0 else NULL
    cdef const int32_t *indices_ptr = &indices[0] if indices.shape[0] > 0 else NULL
    dtype = np.float32 if floating is float else np.float64
    _check_epoch_args(indptr.shape[0] - 1, p, k, Y.shape[0], sw.shape[0], perm, W.shape[0],
                      W.shape[1], b.shape[0], avg_W.shape[0], avg_W.shape[1], avg_b.shape[0],
                      batch_size, s.average_start)
    # CSR structure: the caller checked 0 <= indices < n_features and a monotone indptr once
    if indices.shape[0] != data.shape[0] or indptr[0] != 0 or \
            indptr[indptr.shape[0] - 1] != data.shape[0]:
        raise ValueError("malformed CSR matrix: indptr, indices and data disagree")
    cdef floating[:, ::1] R = np.empty((batch_size, k), dtype=dtype)   # batch residuals
    st.t = t
    st.n_seen = n_seen
    st.n_avg = n_avg
    st.loss = 0.0
    st.first_loss = 0.0
    with nogil:
        start = 0
        while start < n:
            m = min(batch_size, n - start)
            rows = &perm[start]
            start += m
            if start < n:
                next_m = min(batch_size, n - start)
                fs_sgd_prefetch_csr(next_m, &perm[start],
                                    min(batch_size, n - start - next_m),
                                    &perm[0] + start + next_m,
                                    &indptr[0], indices_ptr, <const char *>data_ptr,
                                    sizeof(floating), <const char *>&Y[0, 0],
                                    k * sizeof(floating), <const char *>&sw[0], sizeof(floating))
            # R = sw[rows, None] * (scale * X[rows] @ V.T + b - Y[rows]);  loss += 0.5 sw ||r||^2
            st.loss += fs_sgd_csr_residual(m, k, p, rows, &indptr[0], indices_ptr, data_ptr,
                                           &W[0, 0], scale, &Y[0, 0], &sw[0], &b[0], &R[0, 0])
            if not isfinite(st.loss):
                status = FS_ERR_NONFINITE
                break
            if start == m:
                st.first_loss = st.loss / m
            eta = _eta(&s, st.t)
            scale = _shrink(&s, eta, scale, kp, &W[0, 0])
            # V -= (eta / (m scale)) * R.T @ X[rows]
            fs_sgd_csr_update(m, k, p, rows, &indptr[0], indices_ptr, data_ptr, &R[0, 0],
                              <floating>(-eta / (m * scale)), &W[0, 0])
            _after_step(&s, &st, eta, m, k, p, &R[0, 0], scale, &W[0, 0], &b[0],
                        &avg_W[0, 0], &avg_b[0])
        status = _finish(kp, k, scale, &W[0, 0], &b[0], status)
    return status, st.t, st.n_seen, st.n_avg, st.loss, st.first_loss
