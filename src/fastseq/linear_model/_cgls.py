"""Conjugate-gradient least squares (CGLS): validation and result type; the iteration is compiled.

Public entry point: :func:`fastseq.ops.cgls` (this module's :func:`cgls`). The private
:func:`_cgls_solve` is the same solver returning the raw per-column arrays, for
``fastseq.LinearRegression(solver="cgls")``.
"""
from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator
from sklearn.exceptions import ConvergenceWarning

from fastseq._lib.validation import (
    check_blas_dims,
    check_csr_structure,
    check_float_array,
    check_positive,
)
from fastseq.linear_model import _cgls_fast as _cgls

__all__ = ["CGLSResult", "cgls"]

_ISTOP_MESSAGES = {
    0: "x = x0 (or 0) is already a solution (b = 0 or A^T b = 0)",
    1: "Ax - b is small enough, given atol, btol",
    2: "the least-squares solution is good enough, given atol",
    3: "cond(Abar) seems to be greater than conlim",
    4: "Ax - b is small enough for this machine",
    5: "the least-squares solution is good enough for this machine",
    6: "cond(Abar) seems to be too large for this machine",
    7: "the iteration limit has been reached",
}


@dataclass(frozen=True)
class CGLSResult:
    """Result of :func:`fastseq.ops.cgls` (field names and ``istop`` codes as
    ``scipy.sparse.linalg.lsqr``).

    For a 1-D ``b`` every field except ``x`` and ``normal_residual_history`` is a scalar; for a
    2-D ``b`` of k columns each is an array of length k (one independent recurrence per column).

    Attributes
    ----------
    x : ndarray, shape (p,) or (p, k)
        The solution, in the dtype of ``A``.
    istop : int or ndarray of int
        Why the iteration stopped: 0 x0 (or 0) is already a solution; 1 ``Ax - b`` is small
        enough (``||r|| <= btol ||b|| + atol ||A|| ||x||``); 2 least-squares solution within
        atol (``||A^T r|| <= atol ||A|| ||r||``); 3 the condition estimate exceeds ``conlim``;
        4/5/6 as 1/2/3 but at machine precision; 7 ``max_iter`` reached.
    n_iter : int or ndarray of int
        Iterations (one fused pass over ``A`` each, plus periodic residual passes).
    r1norm : float or ndarray
        ``||b - A x||`` (weighted, centred), recomputed exactly at the end.
    r2norm : float or ndarray
        ``sqrt(r1norm**2 + damp**2 ||x||**2)``.
    anorm, acond, arnorm, xnorm : float or ndarray
        The quantities of the stopping rules, for the operator CGLS iterates on: with
        ``precondition=True`` that is ``Abar D`` (``Abar = [A; damp I]``, ``D`` the column scaling),
        so ``arnorm = ||D (A^T r - damp^2 x)||`` and ``xnorm = ||D^{-1} x||``; with
        ``precondition=False`` they mean exactly what lsqr's do. ``anorm`` and ``acond`` are
        LSQR's running estimates of ``||Abar||_F`` and ``cond(Abar)`` (see Notes of ``cgls``).
    normal_residual_history : ndarray, shape (n_iter + 1,) or (n_iter + 1, k)
        ``arnorm`` after each iteration (row 0: the start); NaN after a column stopped. Only the
        first 10000 iterations are recorded.
    """

    x: np.ndarray
    istop: object
    n_iter: object
    r1norm: object
    r2norm: object
    anorm: object
    acond: object
    arnorm: object
    xnorm: object
    normal_residual_history: np.ndarray

    @property
    def message(self):
        """Text of ``istop`` (a list for multi-target results)."""
        if np.ndim(self.istop) == 0:
            return _ISTOP_MESSAGES[int(self.istop)]
        return [_ISTOP_MESSAGES[int(i)] for i in self.istop]


def _as_operand(A):
    """Return (kind, operand, dtype): a C-contiguous float ndarray, a CSR matrix with float data
    and one index dtype, or a LinearOperator."""
    if isinstance(A, LinearOperator):
        if len(A.shape) != 2:
            raise ValueError(f"A must be 2-D, got a LinearOperator of shape {A.shape}")
        dtype = np.float32 if np.dtype(A.dtype) == np.float32 else np.float64
        return "operator", A, dtype
    if sp.issparse(A):
        if A.ndim != 2:
            raise ValueError(f"A must be 2-D, got a sparse array of shape {A.shape}")
        kind = np.dtype(A.dtype).kind
        if kind == "c":
            raise TypeError(f"A has complex dtype {A.dtype}; fastseq needs real float32/float64")
        if kind not in "fiub":
            raise TypeError(f"A has dtype {A.dtype}; fastseq needs numeric data")
        # Only CSR is read by the kernels. CSC (and COO, ...) is converted once: a copy of A
        # (memory ~ nnz), because A^T (A p) cannot be formed in one pass over columns.
        csr = A.tocsr() if A.format != "csr" else A
        if csr.dtype not in (np.float32, np.float64):
            csr = csr.astype(np.float64)
        indptr, indices = csr.indptr, csr.indices
        if indptr.dtype != indices.dtype or indices.dtype not in (np.int32, np.int64):
            indptr = indptr.astype(np.int64)
            indices = indices.astype(np.int64)
        data, indices, indptr = (np.ascontiguousarray(a) for a in (csr.data, indices, indptr))
        csr = sp.csr_matrix((data, indices, indptr), shape=csr.shape, copy=False)
        # the fused kernels scatter into T[indices]: an out-of-range index is a heap write
        check_csr_structure(csr)
        return "csr", csr, csr.dtype.type
    arr = check_float_array(A, "A", ndim=2, finite=False)
    return "dense", arr, arr.dtype.type


def _check_vector(v, name, length, *, nonnegative=False):
    arr = check_float_array(v, name, ndim=1, dtype=np.float64)
    if arr.shape[0] != length:
        raise ValueError(f"{name} has length {arr.shape[0]}, expected {length}")
    if nonnegative and (arr < 0).any():
        raise ValueError(f"{name} must be non-negative")
    return arr


def _cgls_solve(A, b, *, damp=0.0, x0=None, atol=1e-8, btol=1e-8, conlim=1e8, max_iter=None,
                precondition=True, sample_weight=None, column_offset=None, recompute_every=50,
                n_threads=None, dense_kernel="blas"):
    """Validate, then run the compiled CGLS; return ``(raw, one_d, dtype)``.

    ``raw`` is a dict of per-column arrays: ``x`` (p, k) float64, ``istop``, ``n_iter``,
    ``r1norm``, ``r2norm``, ``anorm``, ``acond``, ``arnorm``, ``xnorm`` (k,), ``history``
    (n_iter + 1, k). ``one_d`` says whether ``b`` was 1-D; ``dtype`` is the dtype of ``x`` to
    return. No warning is emitted here (the caller decides).

    Private extras (for ``fastseq.LinearRegression``; also accepted by :func:`cgls`):

    sample_weight : (n,) array of non-negative weights, or None
        Solve ``min sum_i w_i (b_i - a_i x)^2 + damp^2 ||x||^2``: rows are scaled by ``sqrt(w_i)``
        implicitly inside the kernels (A is never copied).
    column_offset : (p,) array, or None
        Solve with ``A_c = A - 1 mu^T`` (``mu`` = column_offset) without forming it:
        ``A_c p = A p - 1 (mu^T p)`` and ``A_c^T r = A^T r - mu (1^T r)``. With ``mu`` the
        (weighted) column means this is the centred problem of a fitted intercept, and a sparse A
        stays sparse. The intercept is then ``(weighted mean of b) - mu^T x`` (caller's job).
        Pass ``b`` centred as well (``b - weighted mean``): with ``mu`` the weighted means,
        ``A_c^T W 1 = 0`` so x is the same, but ``r1norm`` and the S1/S2 tests then measure the
        residual of the model with intercept instead of one inflated by the mean of b.
    recompute_every : int
        Period of the true-residual pass (residual replacement); 0 disables the periodic pass
        (it still happens before any column is declared converged).
    n_threads : int or None
        OpenMP threads of the fused C kernels (None: the OpenMP default). The dense BLAS path
        follows the BLAS thread count (threadpoolctl).
    dense_kernel : {"blas", "fused_c"}
        Dense pass implementation: row blocks through GEMV/GEMM (default, faster here) or the
        fused C loop of csrc/linear_model/cgls.c (benchmarks and tests).
    """
    kind, op_A, dtype = _as_operand(A)
    n, p = (int(s) for s in op_A.shape)
    if n == 0 or p == 0:
        raise ValueError(f"A is empty (shape {(n, p)})")
    if kind == "dense":
        check_blas_dims(n_rows=n, n_cols=p)
    b_arr = check_float_array(b, "b", ndim=(1, 2), dtype=np.float64)
    if b_arr.shape[0] != n:
        raise ValueError(f"b has {b_arr.shape[0]} rows but A has {n} rows (shape {(n, p)})")
    one_d = b_arr.ndim == 1
    B = np.ascontiguousarray(b_arr.reshape(n, -1))
    k = B.shape[1]
    if x0 is None:
        X0 = np.zeros((p, k))
    else:
        x0_arr = check_float_array(x0, "x0", ndim=(1, 2), dtype=np.float64)
        want = (p,) if one_d else (p, k)
        if x0_arr.shape != want:
            raise ValueError(f"x0 has shape {x0_arr.shape}, expected {want} (like x)")
        X0 = x0_arr.reshape(p, k)
    check_positive(damp, "damp", strict=False)
    check_positive(atol, "atol")
    check_positive(btol, "btol")
    if isinstance(conlim, bool) or not isinstance(conlim, numbers.Real) or not conlim > 0:
        raise ValueError(f"conlim must be a real number > 0 (np.inf disables the test), "
                         f"got {conlim!r}")
    if max_iter is None:
        max_iter = 2 * p  # lsqr's default
    check_positive(max_iter, "max_iter", integer=True)
    check_positive(recompute_every, "recompute_every", strict=False, integer=True)
    check_positive(n_threads, "n_threads", integer=True, allow_none=True)
    if not isinstance(precondition, (bool, np.bool_)):
        raise TypeError(f"precondition must be True or False, got {precondition!r}")
    w = None if sample_weight is None else _check_vector(sample_weight, "sample_weight", n,
                                                         nonnegative=True)
    mu = None if column_offset is None else _check_vector(column_offset, "column_offset", p)

    op = _cgls.NormalOperator(op_A, B, sample_weight=w, column_offset=mu, n_threads=n_threads,
                              dense_kernel=dense_kernel)
    d = np.ones(p)
    if kind != "operator":
        # One pass: weighted column sums of squares and sums; they also detect NaN/inf in A
        # without a temporary of A's size.
        colsumsq, colsum = op.column_stats()
        if not (np.isfinite(colsumsq).all() and np.isfinite(colsum).all()):
            raise ValueError("A contains NaN or infinity (or values whose square overflows)")
        if precondition:
            wsum = float(n) if w is None else float(w.sum())
            scale = colsumsq.copy()
            centred = colsumsq
            if mu is not None:
                # ||a_j - mu_j||_W^2 = sum w a^2 - 2 mu sum w a + mu^2 sum w
                centred = np.maximum(colsumsq - 2.0 * mu * colsum + mu * mu * wsum, 0.0)
                scale = colsumsq + mu * mu * wsum
            # Jacobi on N = A_c^T W A_c + damp^2 I. A column that is zero (or, after centring,
            # zero to rounding) has N_jj = 0 with damp = 0: it keeps its x0 value (d_j = 0).
            numerically_zero = centred <= 1e-12 * scale
            centred = np.where(numerically_zero, 0.0, centred)
            diag = centred + float(damp) ** 2
            d = np.zeros(p)
            np.divide(1.0, np.sqrt(diag), out=d, where=diag > 0)
    history_len = int(min(max_iter, 10000))
    raw = _cgls.cgls_iterate(op, X0, d, float(damp), float(atol), float(btol), float(conlim),
                             int(max_iter), int(recompute_every), history_len)
    return raw, one_d, dtype


def cgls(A, b, *, damp=0.0, x0=None, atol=1e-8, btol=1e-8, conlim=1e8, max_iter=None,
         precondition=True, sample_weight=None, column_offset=None, recompute_every=50,
         n_threads=None):
    r"""Solve ``min ||A x - b||^2 + damp^2 ||x||^2`` by preconditioned conjugate-gradient least
    squares.

    CGLS is conjugate gradients on the normal equations ``(A^T A + damp^2 I) x = A^T b`` written
    so that ``A^T A`` is never formed. Each iteration makes ONE fused pass over ``A`` (compiled,
    GIL released): every row (or row block) of ``A`` is multiplied by the search direction and
    immediately scattered back into ``A^T (A p)`` while it is in cache, so ``A`` crosses memory
    once per iteration instead of twice as in LSQR (``A v`` then ``A^T u``). Mathematically
    the iterates are LSQR's (same Krylov subspaces), and the stopping rules are LSQR's.

    Parameters
    ----------
    A : ndarray, scipy.sparse matrix/array or scipy.sparse.linalg.LinearOperator, shape (n, p)
        float32 data stays float32 (all scalars and vectors of the iteration are float64);
        integer data is converted to float64. CSR is used as is (int32 or int64 indices); every
        other sparse format is converted to CSR once (a copy, memory ~ nnz). A non-C-contiguous
        ndarray is copied to C order. A LinearOperator is called through ``matmat``/``rmatmat``
        with the GIL held.
    b : ndarray, shape (n,) or (n, k)
        Right-hand side(s). With k columns, k independent CG recurrences share every pass over
        ``A`` (a block product), and each column stops on its own.
    damp : float >= 0
        Ridge damping (``damp**2`` multiplies ``||x||^2``; ``alpha`` of sklearn's Ridge is
        ``damp**2``).
    x0 : ndarray, shape like x, optional
        Warm start. The damping applies to ``x`` itself, not to ``x - x0``.
    atol, btol : float > 0
        Stopping tolerances with LSQR's meaning (rules S1 and S2):
        stop with istop=1 when ``||r|| <= btol ||b|| + atol ||Abar|| ||x||``, with istop=2 when
        ``||Abar^T r|| <= atol ||Abar|| ||r||`` (``r`` the damped residual, ``r2norm``).
    conlim : float > 0
        Stop with istop=3 when the estimate of ``cond(Abar)`` exceeds it (rule S3); ``np.inf``
        disables the test.
    max_iter : int, optional
        Iteration limit (default ``2 * p``, lsqr's). istop=7 when reached.
    precondition : bool, default True
        Jacobi preconditioning: CG on the column-scaled problem ``A D``,
        ``D_jj = 1 / sqrt(||a_j||^2 + damp^2)`` (weighted and centred when sample_weight /
        column_offset are given). All-zero columns (damp=0) get ``D_jj = 0`` and keep their
        ``x0`` value (0 by default: the minimum-norm choice). Column norms are not available
        from a LinearOperator: it is solved unpreconditioned.
    sample_weight : ndarray, shape (n,), optional
        Non-negative weights: minimise ``sum_i w_i (b_i - a_i x)^2 + damp^2 ||x||^2``
        (rows scaled by ``sqrt(w_i)`` inside the kernels, no copy of ``A``).
    column_offset : ndarray, shape (p,), optional
        Solve with ``A - 1 mu^T`` in place of ``A`` without forming it (intercept centring
        that keeps sparse ``A`` sparse).
    recompute_every : int >= 0, default 50
        Period of the true-residual pass ``s = A^T (b - A x) - damp^2 x`` (residual replacement,
        so the recurrences do not drift); it is also done before a column is declared converged.
    n_threads : int, optional
        Threads of the compiled kernels (default: OpenMP's default).

    Returns
    -------
    CGLSResult
        ``x``, ``istop``, ``n_iter``, ``r1norm``, ``r2norm``, ``anorm``, ``acond``, ``arnorm``,
        ``xnorm``, ``normal_residual_history`` (see :class:`CGLSResult`).

    Warns
    -----
    sklearn.exceptions.ConvergenceWarning
        When any column stops on the iteration limit (istop 7) or on the condition limit
        (istop 3 or 6).

    Notes
    -----
    LSQR's running estimates are rebuilt from the CG coefficients ``alpha_i, beta_i`` through the
    Lanczos tridiagonal ``T_k`` of the (scaled, damped) normal operator, which equals LSQR's
    ``B_k^T B_k``: ``anorm^2 = trace(T_k) = sum_i (1/alpha_i + beta_{i-1}/alpha_{i-1})`` (LSQR's
    ``||B_k||_F^2``, a lower estimate of ``||Abar||_F^2``) and
    ``acond = anorm * sqrt(trace(T_k^{-1}))`` with ``trace(T_k^{-1}) =
    sum_i ||D^{-1} p_i||^2 / (p_i^T N p_i)``. In exact arithmetic CGLS, LSQR and these numbers
    coincide, so with ``precondition=False`` CGLS stops where ``scipy.sparse.linalg.lsqr`` does.

    For a rank-deficient ``A`` (e.g. more columns than rows) started from ``x0 = 0``, the
    unpreconditioned iterates converge to the minimum-norm least-squares solution (as lsqr's);
    with ``precondition=True`` CG runs on ``A D``, so the limit is the least-squares solution of
    minimum ``||D^{-1} x||`` instead. Pass ``precondition=False`` when the minimum-norm solution
    is wanted.

    Examples
    --------
    >>> import numpy as np
    >>> from fastseq.ops import cgls
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((200, 5))
    >>> x_true = np.arange(1.0, 6.0)
    >>> res = cgls(A, A @ x_true)
    >>> res.istop, bool(np.allclose(res.x, x_true))
    (1, True)
    """
    raw, one_d, dtype = _cgls_solve(
        A, b, damp=damp, x0=x0, atol=atol, btol=btol, conlim=conlim, max_iter=max_iter,
        precondition=precondition, sample_weight=sample_weight, column_offset=column_offset,
        recompute_every=recompute_every, n_threads=n_threads)
    istop = raw["istop"]
    if (istop == 7).any():
        warnings.warn(
            f"CGLS did not converge within max_iter={raw['n_iter'].max()} iterations "
            f"({int((istop == 7).sum())} of {istop.size} right-hand side(s)); increase max_iter "
            "or loosen atol/btol", ConvergenceWarning, stacklevel=2)
    if np.isin(istop, (3, 6)).any():
        warnings.warn(
            "CGLS stopped because the condition estimate of A exceeded conlim "
            f"({int(np.isin(istop, (3, 6)).sum())} right-hand side(s)); the solution may be "
            "inaccurate: raise conlim, add damping, or rescale A", ConvergenceWarning,
            stacklevel=2)
    x = raw["x"].astype(dtype, copy=False)

    def pick(v):
        return v[0].item() if one_d else v

    return CGLSResult(
        x=x[:, 0].copy() if one_d else x,
        istop=pick(raw["istop"]), n_iter=pick(raw["n_iter"]), r1norm=pick(raw["r1norm"]),
        r2norm=pick(raw["r2norm"]), anorm=pick(raw["anorm"]), acond=pick(raw["acond"]),
        arnorm=pick(raw["arnorm"]), xnorm=pick(raw["xnorm"]),
        normal_residual_history=raw["history"][:, 0].copy() if one_d else raw["history"])
