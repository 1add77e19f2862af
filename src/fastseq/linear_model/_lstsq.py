"""Least squares and ridge regression: :class:`LinearRegression` (closed form, CGLS, streaming).

The numerical work lives in ``fastseq.linear_model._lstsq_fast`` (Cython drivers over BLAS/LAPACK)
and ``csrc/linear_model/lstsq.c`` (block packing: weighted centering of a row block). This module
validates, chooses the solver and assembles the result.
"""
from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from scipy.linalg import LinAlgWarning, eigh
from scipy.sparse.linalg import LinearOperator
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from fastseq._lib.validation import check_blas_dims
from fastseq.linear_model import _lstsq_fast as _lstsq

__all__ = ["LinearRegression"]

_EPS = np.finfo(np.float64).eps
# Row blocks are sized by doubles of packed workspace: the Gram/QR block is large enough for
# SYRK/TPQRT to run at BLAS-3 speed; the refinement block stays in L2 while two GEMMs use it.
_GRAM_BLOCK_DOUBLES = 1 << 21
_REFINE_BLOCK_DOUBLES = 1 << 16
_SUM_BLOCK = 4096
# Iterative refinement of the Cholesky solution converges at rate ~ c * eps * cond(S G S); below
# this reciprocal condition number of the equilibrated Gram matrix "auto" goes straight to QR.
_RCOND_REFINE_MIN = 1e-13
_MAX_REFINE = 10
# At or above this rcond (cond(S G S) <= 100) the plain Cholesky solution (relative error
# ~ cond(G) eps <= 100 eps) is within one digit of QR's (~ sqrt(cond(G)) eps = 10 eps):
# refinement cannot gain a digit, so "auto" skips its passes over X.
_RCOND_NO_REFINE = 1e-2
# Relative cost of one flop of a memory-bound CGLS iteration (BLAS-2) vs one flop of the
# BLAS-3 direct solve (SYRK + POTRF): used by "auto" to price the CGLS attempt.
_BLAS2_PENALTY = 8.0
# Fraction of the direct solver's predicted cost that "auto" is willing to spend on CGLS first.
_CGLS_BUDGET_FRACTION = 0.4
_CGLS_MIN_BUDGET = 40


def _rows(n_doubles, m, n, min_rows=16):
    """Rows per block: ~n_doubles of packed workspace, at least min_rows, at most n."""
    return int(max(1, min(n, max(min_rows, n_doubles // max(m, 1)))))


# A SYRK / TPQRT block update reads and writes the whole (m, m) Gram / R: with nb rows it does
# ~nb m^2 flops for 16 m^2 bytes of traffic, so nb >= ~2048 keeps it compute-bound for any p
# (workspace 2048 x m doubles: 160 MB at p = 10000, 8 MB at p = 500).
_MIN_BLAS3_ROWS = 2048

# The streamed QR factors the stacked (m + nb) x m workspace [R; block] with dgeqrf: its
# 2 m^2 (nb + 2m/3) flops exceed the useful 2 m^2 nb by 2m / (3 nb) (the zeros below R), so
# nb >= 6m keeps that overhead <= 11%. Taller blocks also mean fewer, longer BLAS-2 calls in
# dgeqrf's panel factorizations: with 2 OpenBLAS threads on a loaded 2-core machine each call's
# thread synchronisation dominates (40000 x 500: nb = 6m 28-30 s, nb = 32m 10-12 s, 1 thread
# 0.7-0.9 s for both), so aim at 32m. Memory cap: 2^23 doubles (64 MB) of workspace, but never
# fewer than 2m rows (overhead 33%) while that fits in 2^25 doubles (256 MB).
_QR_TARGET_RATIO = 32
_QR_BLOCK_DOUBLES = 1 << 23
_QR_BLOCK_DOUBLES_MAX = 1 << 25


def _qr_rows(m, n):
    """Rows per block of the streamed stacked-workspace QR (see above), at most n."""
    nb = max(min(_QR_TARGET_RATIO * m, _QR_BLOCK_DOUBLES // m),
             min(2 * m, _QR_BLOCK_DOUBLES_MAX // m), 16)
    return int(max(1, min(n, nb)))


class LinearRegression(RegressorMixin, BaseEstimator):
    r"""Ordinary least squares / ridge regression with accurate closed-form and iterative solvers.

    Minimises ``sum_i w_i ||y_i - x_i @ coef_.T - intercept_||^2 + alpha ||coef_||^2``
    (``w`` = ``sample_weight``; the intercept is never penalised). Dense designs are streamed in
    row blocks: no centered or weighted copy of ``X`` is ever made.

    Parameters
    ----------
    fit_intercept : bool, default=True
        Fit an intercept. Done by centering with the (weighted) column means, computed in a first
        pass over ``X`` and subtracted block by block (never ``X'X - n mu mu'``, which cancels
        catastrophically when the means are large); for sparse ``X`` the centering is implicit.
    alpha : float >= 0, default=0.0
        Ridge penalty (``alpha`` of :class:`sklearn.linear_model.Ridge`; ``damp = sqrt(alpha)``
        in CGLS terms). QR handles it by appending the rows ``sqrt(alpha) I``.
    solver : {"auto", "cholesky", "qr", "cgls"}, default="auto"
        - ``"cholesky"``: augmented Gram matrix ``[Xc y]' W [Xc y]`` by blocked SYRK (float64),
          symmetric column equilibration, Cholesky (``potrf``), condition estimate (``pocon``).
          Plain normal equations: relative error ~ ``cond(X)**2 * eps``. If the Gram matrix is
          not numerically positive definite it falls back to ``"qr"`` with a ``LinAlgWarning``.
        - ``"qr"``: Householder QR streamed over row blocks (``R <- qr([R; block])`` with
          ``geqrf``, blocked Householder = BLAS-3, on the stacked workspace ``[R; block]`` of
          up to 32 ``p`` rows per block (64 MB cap, at least ~6 ``p`` rows for ``p`` up to
          ~1200), so the zeros below ``R`` cost <= ~11% extra flops there; the target
          columns ride along so ``Q'y`` is the last columns of ``R`` and ``Q`` is never
          stored), column equilibration, ``trcon`` condition estimate, ``trtrs``.
          Error ~ ``cond(X) * eps``. A numerically rank-deficient design (equilibrated
          ``rcond < eps * max(n, p)``) gets the minimum-norm solution of the truncated problem via
          column-pivoted QR (``geqp3``) + complete orthogonal decomposition (the ``pinv``
          answer of the rank-``r`` approximation); ``rank_`` reports the rank (no warning, as
          numpy/scipy ``lstsq``: underdetermined designs and repeated rows are legitimate).
        - ``"cgls"``: :func:`fastseq.ops.cgls` (Jacobi preconditioned, ``atol = btol = tol``);
          the only choice for sparse ``X`` and :class:`~scipy.sparse.linalg.LinearOperator`.
          Wide designs (``n_samples < n_features``) run unpreconditioned: CGLS from ``x0 = 0``
          then stays in ``range(Xc')`` and converges to the minimum-norm solution (of the
          implicitly centered design when ``fit_intercept``), like ``numpy.linalg.lstsq``; with
          the column scaling ``D`` it would converge to the minimum-``||D^-1 x||`` one instead.
          Rank-deficient *tall* designs keep the preconditioner, so their CGLS answer is the
          minimum-``||D^-1 x||`` solution (``"qr"`` gives the minimum-norm one).
        - ``"auto"``: sparse / LinearOperator ``X`` -> ``"cgls"``. Dense ``X``: the CGLS budget
          is 40% of the predicted direct cost ``n p^2 + p^3 / 3`` divided by the cost of one CGLS
          iteration, priced as ``8 * 4 n p`` flops (its two memory-bound passes run ~8x slower
          per flop than BLAS-3, measured here); if that budget is at least 40 iterations (e.g.
          20000 x 10000: 145; 200000 x 500: 6, so direct), CGLS runs first and its result is
          kept only if it converged within the budget (a failed attempt costs at most ~1.4x the
          direct solve, which then runs from scratch). Otherwise (or after that) Cholesky of
          the equilibrated Gram matrix followed by iterative refinement with the true residual
          ``Xc'W(yc - Xc b)`` (one fused pass over ``X`` per step, two GEMMs per block) until
          the correction is below ``eps * cond(X)``; this gives QR accuracy at
          normal-equation speed. Refinement is skipped (``n_refine_ = 0``) when the ``pocon``
          estimate of the equilibrated Gram matrix's condition number is at most 100: the normal
          equations' relative error ~ ``cond(G) eps`` is then within one digit of QR's
          ``~ sqrt(cond(G)) eps`` (100 eps vs 10 eps), so refinement cannot gain a digit.
          When ``rcond`` of the equilibrated Gram matrix is
          below ``1e-13`` (cond(X) > ~3e6), Cholesky fails, or refinement stops contracting, it
          falls back to ``"qr"`` (no wasted work beyond the Gram matrix and the passes made).
    tol : float > 0, default=1e-10
        Stopping tolerance of the iterative solver (``atol = btol = tol`` of CGLS; at least
        ``10 * eps(float32)`` for float32 ``X``, whose products CGLS runs in float32). The direct
        solvers ignore it: they always work in float64 and refinement runs to working precision.
    max_iter : int >= 1 or None, default=None
        Iteration limit of CGLS (None: ``max(100, 2 * n_features)``; in ``"auto"`` the CGLS
        budget is the smaller of this and the cost-based budget).

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,) or (n_targets, n_features)
        Coefficients, in the dtype of ``X`` (float32 or float64). All accumulation is float64:
        float32 blocks are widened while packed, the solve is float64 and the result is cast.
    intercept_ : float or ndarray of shape (n_targets,)
        0.0 when ``fit_intercept=False``.
    solver_ : str
        The solver that produced ``coef_`` ("cholesky", "qr" or "cgls"; "cholesky" includes the
        refinement steps when they ran).
    n_iter_ : int or None
        CGLS iterations (max over targets); None for the direct solvers.
    n_refine_ : int
        Iterative refinement passes over ``X`` made by ``"auto"`` (0 otherwise).
    rank_ : int
        Numerical rank of the (centered, weighted, equilibrated) design: ``n_features`` unless the
        QR path detected rank deficiency; None for CGLS.
    condition_number_ : float or None
        Estimated 1-norm condition number of the centered, weighted, column-equilibrated design
        (from ``trcon`` of R, or ``sqrt`` of ``pocon`` of the Gram matrix); None for CGLS.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` has string feature names.

    Notes
    -----
    ``partial_fit`` is exact streaming: after any sequence of ``partial_fit`` calls on row blocks,
    ``coef_`` equals a single ``fit`` on all rows (to rounding), with memory ``O((p + k)^2)``
    independent of the number of rows. With ``solver="qr"`` the state is the augmented R factor,
    updated as ``R <- qr([R; sqrt(n_a n_b / n) (mean_b - mean_a); block - mean_b])`` (the Chan
    et al. pairwise update written for R), so accuracy is QR's. With ``"auto"`` / ``"cholesky"``
    the state is the centered co-moment matrix, merged as
    ``M = M_a + M_b + (n_a n_b / n) delta delta'`` (exact; each block is centered at its own mean
    first) and solved by Cholesky. Refinement needs the rows, which are gone, so the streamed
    Gram solution has the normal equations' ``cond(X)**2 * eps`` error (a ``LinAlgWarning`` is
    issued when that leaves fewer than ~4 digits; use ``solver="qr"`` then). ``"cgls"`` cannot
    stream. ``fit`` discards any ``partial_fit`` state. Sparse ``partial_fit`` keeps only the
    dense ``(p + k)^2`` co-moment state (block Gram ``X_b' W X_b`` from sparse products, centered
    in the block as ``S - W_b mu mu'``: for sparse data with large column means this within-block
    step loses digits).

    Examples
    --------
    >>> import numpy as np
    >>> from fastseq import LinearRegression
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((100, 3))
    >>> y = X @ np.array([1.0, -2.0, 0.5]) + 3.0
    >>> reg = LinearRegression().fit(X, y)
    >>> np.round(reg.coef_, 6).tolist(), round(float(reg.intercept_), 6), reg.solver_
    ([1.0, -2.0, 0.5], 3.0, 'cholesky')
    """

    _parameter_constraints: dict = {
        "fit_intercept": ["boolean"],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "solver": [StrOptions({"auto", "cholesky", "qr", "cgls"})],
        "tol": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(self, *, fit_intercept=True, alpha=0.0, solver="auto", tol=1e-10,
                 max_iter=None):
        self.fit_intercept = fit_intercept
        self.alpha = alpha
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.target_tags.multi_output = True
        return tags

    # ------------------------------------------------------------------------------- validation
    def _validate_xy(self, X, y, sample_weight, *, reset):
        if isinstance(X, LinearOperator):
            return self._validate_operator(X, y, sample_weight, reset=reset)
        X, y = validate_data(self, X, y, reset=reset, accept_sparse=["csr", "csc"],
                             dtype=[np.float64, np.float32], multi_output=True, y_numeric=True)
        y_ndim = y.ndim
        Y, w = _targets_and_weights(y, sample_weight, X)
        if not sp.issparse(X):
            X = np.ascontiguousarray(X)
        check_blas_dims(n_samples=X.shape[0], n_features_plus_targets=X.shape[1] + Y.shape[1],
                        gram_elements=(X.shape[1] + Y.shape[1]) ** 2)
        return X, Y, y_ndim, w

    def _validate_operator(self, X, y, sample_weight, *, reset):
        n, p = X.shape
        if reset:
            self.n_features_in_ = p
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        elif p != self.n_features_in_:
            raise ValueError(f"X has {p} features, but LinearRegression is expecting "
                             f"{self.n_features_in_} features as input")
        y = np.asarray(y)
        if y.dtype.kind not in "fiub":
            raise TypeError(f"y has dtype {y.dtype}; LinearRegression needs real numeric targets")
        if y.ndim not in (1, 2) or y.shape[0] != n or y.size == 0:
            raise ValueError(f"y must be 1-D or 2-D with {n} rows (the operator's shape {X.shape}),"
                             f" got shape {y.shape}")
        Y, w = _targets_and_weights(y, sample_weight, np.empty((n, 0)))
        return X, Y, y.ndim, w

    # --------------------------------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the linear model.

        Parameters
        ----------
        X : {array-like, sparse matrix (CSR/CSC), LinearOperator} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; equivalent to repeating rows (integer weights).

        Returns
        -------
        self : LinearRegression
        """
        X, Y, y_ndim, w = self._validate_xy(X, y, sample_weight, reset=True)
        self.__dict__.pop("_stream", None)
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
        operator = isinstance(X, LinearOperator) or sp.issparse(X)
        n, p = X.shape
        self.n_iter_ = None
        self.n_refine_ = 0
        self.rank_ = None
        self.condition_number_ = None

        # weighted means (two-pass centering)
        if w is None:
            wsum = float(n)
        else:
            wsum = float(w.sum())
        xmean = ymean = None
        if self.fit_intercept:
            ymean = _lstsq.weighted_column_sums(Y, w, _SUM_BLOCK) / wsum
            if operator:
                xmean = _operator_column_means(X, w, wsum)
            else:
                xmean = _lstsq.weighted_column_sums(X, w, _SUM_BLOCK) / wsum

        solver = self.solver
        if operator and solver == "cholesky" and sp.issparse(X):
            # sparse normal equations: only the (p + k)^2 Gram is dense (see Notes)
            M = _sparse_comoment(X, Y, w, xmean, ymean, wsum)
            n_eff = n if w is None else int(np.count_nonzero(w))
            beta = self._solve_normal_state(M, p, n_eff)
            self._set_coef(beta, xmean, ymean, y_ndim, dtype)
            return self
        if operator:
            if solver not in ("auto", "cgls"):
                raise ValueError(f"solver={solver!r} needs a dense X: sparse matrices are solved "
                                 "with solver='cgls' / 'auto' (or 'cholesky' via the sparse Gram "
                                 "matrix), LinearOperators with 'cgls' / 'auto'")
            solver = "cgls"
        beta = None
        if solver == "auto":
            budget = self._auto_cgls_budget(n, p)
            if budget is not None:
                beta = self._solve_cgls(X, Y, w, xmean, ymean, max_iter=budget,
                                        accept_partial=False)
            if beta is None:
                beta = self._solve_cholesky(X, Y, w, xmean, ymean, refine=True)
            if beta is None:
                beta = self._solve_qr(X, Y, w, xmean, ymean)
        elif solver == "cholesky":
            beta = self._solve_cholesky(X, Y, w, xmean, ymean, refine=False)
            if beta is None:
                warnings.warn(
                    "LinearRegression(solver='cholesky'): the equilibrated Gram matrix is not "
                    "numerically positive definite (singular or cond(X) > ~1e8); falling back to "
                    "solver='qr'", LinAlgWarning, stacklevel=2)
                beta = self._solve_qr(X, Y, w, xmean, ymean)
        elif solver == "qr":
            beta = self._solve_qr(X, Y, w, xmean, ymean)
        else:
            max_iter = self.max_iter if self.max_iter is not None else max(100, 2 * p)
            beta = self._solve_cgls(X, Y, w, xmean, ymean, max_iter=max_iter,
                                    accept_partial=True)
        self._set_coef(beta, xmean, ymean, y_ndim, dtype)
        return self

    def _auto_cgls_budget(self, n, p):
        """Iteration budget for the CGLS attempt of solver='auto', or None to go direct."""
        direct = n * p * p + p**3 / 3.0
        per_iter = _BLAS2_PENALTY * 4.0 * n * p
        budget = int(_CGLS_BUDGET_FRACTION * direct / per_iter)
        if self.max_iter is not None:
            budget = min(budget, self.max_iter)
        if budget < _CGLS_MIN_BUDGET:
            return None
        return budget

    def _set_coef(self, beta, xmean, ymean, y_ndim, dtype):
        beta = np.asarray(beta, dtype=np.float64)  # (p, k)
        if self.fit_intercept:
            intercept = ymean - xmean @ beta
        else:
            intercept = np.zeros(beta.shape[1])
        if y_ndim == 1:
            self.coef_ = beta[:, 0].astype(dtype)
            self.intercept_ = float(intercept[0]) if self.fit_intercept else 0.0
        else:
            self.coef_ = np.ascontiguousarray(beta.T).astype(dtype)
            self.intercept_ = intercept.astype(dtype)

    # ----------------------------------------------------------------------------------- solvers
    def _solve_cholesky(self, X, Y, w, xmean, ymean, *, refine):
        """Normal equations; returns beta (p, k) or None when the Gram matrix is unusable."""
        n, p = X.shape
        k = Y.shape[1]
        m = p + k
        sqrtw = None if w is None else np.sqrt(w)
        G = np.zeros((m, m), order="F")
        _lstsq.augmented_gram(X, Y, xmean, ymean, sqrtw, G,
                              _rows(_GRAM_BLOCK_DOUBLES, m, n, _MIN_BLAS3_ROWS))
        beta, chol = self._cholesky_from_gram(G, p, n, refine_possible=refine)
        if beta is None or not refine:
            return beta
        U, s, rcond = chol
        if rcond < _RCOND_REFINE_MIN:
            return None
        if rcond >= _RCOND_NO_REFINE:
            return beta
        # Iterative refinement: beta += (G + alpha I)^{-1} (Xc'W(yc - Xc beta) - alpha beta).
        # Converges at rate ~ c eps cond(S G S); stop once the correction is below what QR could
        # resolve (eps * cond(X), cond(X) ~ sqrt(1/rcond)), or when it stops contracting.
        block = _rows(_REFINE_BLOCK_DOUBLES, m, n)
        floor = _EPS * max(4.0, np.sqrt(1.0 / rcond))
        history = []
        for it in range(_MAX_REFINE):
            g = _lstsq.refine_gradient(X, Y, xmean, ymean, sqrtw, beta, block)
            if self.alpha:
                g -= self.alpha * beta
            _lstsq.cholesky_solve(U, s, g)
            beta += g
            self.n_refine_ = it + 1
            rel = float(np.max(np.linalg.norm(g, axis=0)
                               / np.maximum(np.linalg.norm(beta, axis=0), np.finfo(float).tiny)))
            history.append(rel)
            if rel <= floor:
                return beta
            if len(history) >= 2 and rel > 0.5 * history[-2]:
                # stagnation: fine if we got there by contracting (noise floor of the residual
                # gradient, same order as QR's own error), a failure otherwise
                return beta if (len(history) >= 3 and history[1] <= 0.5 * history[0]) else None
        return None

    def _cholesky_from_gram(self, G, p, n, *, refine_possible):
        U, s, rcond, info = _lstsq.cholesky_factor(G, p, float(self.alpha))
        if info != 0 or (not refine_possible and rcond < 2 * _EPS):
            return None, None
        beta = np.array(G[:p, p:], order="F")  # a copy: G may be the streaming state
        _lstsq.cholesky_solve(U, s, beta)
        self.solver_ = "cholesky"
        self.rank_ = p
        self.condition_number_ = float(np.sqrt(1.0 / rcond))
        return beta, (U, s, rcond)

    def _solve_qr(self, X, Y, w, xmean, ymean):
        n, p = X.shape
        m = p + Y.shape[1]
        sqrtw = None if w is None else np.sqrt(w)
        R = np.zeros((m, m), order="F")
        _lstsq.augmented_r_update(X, Y, xmean, ymean, sqrtw, R,
                                  _qr_rows(m, n))
        self.n_refine_ = 0
        n_eff = n if w is None else int(np.count_nonzero(w))
        return self._solve_from_r(R, p, n_eff)

    def _solve_from_r(self, R, p, n):
        m = R.shape[0]
        if self.alpha > 0:
            # ridge: R <- qr([R; sqrt(alpha) I, 0]).R
            R = np.asfortranarray(R.copy())
            ridge = np.zeros((p, m), order="F")
            ridge[np.arange(p), np.arange(p)] = np.sqrt(self.alpha)
            _lstsq.r_update_rows(R, ridge)
        beta, rcond, _, info = _lstsq.triangular_solve(R, p)
        rank_tol = _EPS * max(n, p)
        self.solver_ = "qr"
        self.rank_ = p
        self.condition_number_ = float(1.0 / rcond) if rcond > 0 else np.inf
        if info != 0 or rcond < rank_tol:
            beta, rank = _lstsq.min_norm_solve(R, p, rank_tol)
            self.rank_ = rank
            # Like numpy/scipy lstsq (and sklearn), a rank-deficient design gets the
            # minimum-norm solution silently; rank_ < n_features_in_ reports it.
        return beta

    def _solve_cgls(self, X, Y, w, xmean, ymean, *, max_iter, accept_partial):
        try:
            from fastseq.linear_model._cgls import _cgls_solve
        except ImportError as err:  # pragma: no cover - the cgls module is merged separately
            if not accept_partial:
                return None
            raise ImportError(
                "solver='cgls' needs fastseq.linear_model._cgls (fastseq.ops.cgls)") from err
        B = Y if ymean is None else Y - ymean
        # Wide X (n < p): no Jacobi scaling. From x0 = 0, CGLS iterates lie in range(Xc'), so the
        # limit is the minimum-norm solution; scaled by D it would be the min ||D^-1 x|| one.
        # CGLS runs its products in X's dtype: a float32 X cannot meet a tolerance below ~10 eps32
        tol = max(self.tol, 10 * float(np.finfo(X.dtype).eps))
        raw, _, _ = _cgls_solve(
            X, B, damp=float(np.sqrt(self.alpha)), atol=tol, btol=tol, conlim=1e8,
            max_iter=max_iter, precondition=X.shape[0] >= X.shape[1], sample_weight=w,
            column_offset=xmean)
        istop = np.asarray(raw["istop"])
        n_iter = int(np.max(raw["n_iter"]))
        if not accept_partial and not np.isin(istop, (0, 1, 2, 4, 5)).all():
            self.n_iter_ = None
            return None
        if accept_partial and (istop == 7).any():
            warnings.warn(f"CGLS did not converge within {n_iter} iterations; increase max_iter "
                          "or tol", ConvergenceWarning, stacklevel=3)
        if accept_partial and np.isin(istop, (3, 6)).any():
            # S3: cond(X D) passed conlim = 1e8; CG stopped short of the solution, never silently
            warnings.warn(f"CGLS stopped after {n_iter} iterations because the condition "
                          "estimate of the (equilibrated) design exceeded 1e8; the coefficients "
                          "may be inaccurate: use solver='qr' (or 'auto'), or alpha > 0",
                          ConvergenceWarning, stacklevel=3)
        self.solver_ = "cgls"
        self.n_iter_ = n_iter
        self.rank_ = None
        self.condition_number_ = None
        return np.asarray(raw["x"], dtype=np.float64).reshape(X.shape[1], -1)

    # -------------------------------------------------------------------------------- streaming
    def partial_fit(self, X, y, sample_weight=None):
        """Add a block of rows; afterwards ``coef_`` is the fit on all rows seen so far.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : LinearRegression
        """
        # Parameters are validated on every call (sklearn's _fit_context skips partial_fit once
        # fitted), because alpha is applied afresh at each solve of the streamed state.
        self._validate_params()
        first = "_stream" not in self.__dict__
        if first:
            if self.solver == "cgls":
                raise ValueError("partial_fit is not available with solver='cgls' (CGLS needs all "
                                 "rows at once); use solver='auto', 'cholesky' or 'qr'")
        if isinstance(X, LinearOperator):
            raise TypeError("partial_fit needs an array or sparse matrix, not a LinearOperator")
        X, Y, y_ndim, w = self._validate_xy(X, y, sample_weight, reset=first)
        n, p = X.shape
        k = Y.shape[1]
        m = p + k
        if first:
            self._stream = {
                "kind": "r" if self.solver == "qr" else "comoment",
                "wsum": 0.0, "n": 0, "xmean": np.zeros(p), "ymean": np.zeros(k),
                "state": np.zeros((m, m), order="F"), "k": k, "y_ndim": y_ndim,
                "dtype": X.dtype,
            }
        st = self._stream
        if k != st["k"] or y_ndim != st["y_ndim"]:
            raise ValueError(f"y has {k} target(s) (ndim {y_ndim}) but earlier partial_fit calls "
                             f"had {st['k']} (ndim {st['y_ndim']})")
        wb = float(n) if w is None else float(w.sum())
        if self.fit_intercept:
            if sp.issparse(X):
                xm_b = _operator_column_means(X, w, wb)
            else:
                xm_b = _lstsq.weighted_column_sums(X, w, _SUM_BLOCK) / wb
            ym_b = _lstsq.weighted_column_sums(Y, w, _SUM_BLOCK) / wb
        else:
            xm_b = ym_b = None
        wa = st["wsum"]
        wtot = wa + wb
        S = st["state"]
        if st["kind"] == "r" and sp.issparse(X):
            raise ValueError("partial_fit with solver='qr' needs dense X (the R update is dense);"
                             " use solver='auto' for sparse streaming")
        if self.fit_intercept and wa > 0:
            delta = np.concatenate([xm_b - st["xmean"], ym_b - st["ymean"]])
            c = wa * wb / wtot
        else:
            delta = None
        sqrtw = None if w is None else np.sqrt(w)
        if st["kind"] == "r":
            if delta is not None:
                # the Chan et al. merge term as one extra row of the stacked QR
                _lstsq.r_update_rows(S, np.asfortranarray(np.sqrt(c) * delta[None, :]))
            _lstsq.augmented_r_update(X, Y, xm_b, ym_b, sqrtw, S,
                                      _qr_rows(m, n))
        else:
            if sp.issparse(X):
                Mb = _sparse_comoment(X, Y, w, xm_b, ym_b, wb)
            else:
                Mb = np.zeros((m, m), order="F")
                _lstsq.augmented_gram(X, Y, xm_b, ym_b, sqrtw, Mb,
                                      _rows(_GRAM_BLOCK_DOUBLES, m, n, _MIN_BLAS3_ROWS))
            if delta is not None:
                Mb += c * np.outer(delta, delta)
            S += Mb
        if self.fit_intercept:
            st["xmean"] = st["xmean"] + (wb / wtot) * (xm_b - st["xmean"])
            st["ymean"] = st["ymean"] + (wb / wtot) * (ym_b - st["ymean"])
        st["wsum"] = wtot
        st["n"] += n if w is None else int(np.count_nonzero(w))
        self._solve_stream()
        return self

    def _solve_stream(self):
        st = self._stream
        p = st["xmean"].shape[0]
        S = st["state"]
        self.n_iter_ = None
        self.n_refine_ = 0
        if st["kind"] == "r":
            beta = self._solve_from_r(S, p, st["n"])
        else:
            beta = self._solve_normal_state(S, p, st["n"])
        xmean = st["xmean"] if self.fit_intercept else None
        ymean = st["ymean"] if self.fit_intercept else None
        self._set_coef(beta, xmean, ymean, st["y_ndim"], st["dtype"])

    def _solve_normal_state(self, M, p, n):
        """Cholesky solve of a Gram / co-moment state whose rows are gone (no refinement)."""
        beta, chol = self._cholesky_from_gram(M, p, n, refine_possible=False)
        if beta is not None and chol[2] < 1e-8:
            warnings.warn(
                "LinearRegression: normal equations without the rows (streamed or sparse) are ill "
                f"conditioned (rcond {chol[2]:.1e} of the equilibrated Gram matrix); expect an "
                "error ~cond(X)^2 * eps; use solver='qr' (dense) for QR accuracy",
                LinAlgWarning, stacklevel=3)
        if beta is None:
            beta = _pinv_normal_solve(M, p, float(self.alpha), n)
            warnings.warn(
                "LinearRegression: the Gram matrix (streamed or sparse) is singular or too ill "
                "conditioned for Cholesky; returning the minimum-norm solution of the normal "
                "equations (use solver='qr' on dense data for accuracy)", LinAlgWarning,
                stacklevel=3)
            self.solver_ = "cholesky"
            self.rank_ = None
            self.condition_number_ = None
        return beta

    # -------------------------------------------------------------------------------- predict
    def predict(self, X):
        """Predict ``X @ coef_.T + intercept_``.

        Parameters
        ----------
        X : {array-like, sparse matrix, LinearOperator} of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_targets)
        """
        check_is_fitted(self, "coef_")
        if isinstance(X, LinearOperator):
            if X.shape[1] != self.n_features_in_:
                raise ValueError(f"X has {X.shape[1]} features, but LinearRegression is "
                                 f"expecting {self.n_features_in_} features as input")
            out = X @ np.asarray(self.coef_.T, dtype=np.float64)
        else:
            X = validate_data(self, X, reset=False, accept_sparse=["csr", "csc", "coo"],
                              dtype=[np.float64, np.float32])
            out = X @ self.coef_.T
        return np.asarray(out) + self.intercept_


def _targets_and_weights(y, sample_weight, X):
    """y as a C-contiguous float64 (n, k) block and the checked weights (or None); X only
    supplies the row count (any object with a shape) to _check_sample_weight."""
    if y.dtype.kind not in "fiub":
        raise TypeError(f"y has dtype {y.dtype}; LinearRegression needs real numeric targets")
    Y = np.ascontiguousarray(y.reshape(len(y), -1), dtype=np.float64)
    if not np.isfinite(Y).all():
        raise ValueError("y contains NaN or infinity")
    w = None
    if sample_weight is not None:
        w = np.ascontiguousarray(_check_sample_weight(
            sample_weight, X, dtype=np.float64, ensure_non_negative=True))
        if not w.any():
            raise ValueError("sample_weight is zero for every sample; nothing to fit")
    return Y, w


def _operator_column_means(X, w, wsum):
    """Weighted column means of a sparse matrix or LinearOperator: (w' X) / sum(w)."""
    n = X.shape[0]
    wv = np.ones(n) if w is None else w
    if sp.issparse(X):
        return np.asarray(X.T @ wv, dtype=np.float64).ravel() / wsum
    means = np.asarray(X.rmatvec(wv), dtype=np.float64).ravel() / wsum
    if not np.isfinite(means).all():
        # the operator's entries are only seen through its products
        raise ValueError("X (a LinearOperator) returned NaN or infinity from rmatvec (column "
                         "means for the intercept)")
    return means


def _sparse_comoment(X, Y, w, xmean, ymean, wsum):
    """Centered augmented co-moment of one sparse block, dense (m, m); only p x p is densified.

    S = X' W X from sparse products, centered as S - W mu mu' (see the class Notes)."""
    Xw = X if w is None else sp.diags(w) @ X
    p = X.shape[1]
    k = Y.shape[1]
    M = np.empty((p + k, p + k), order="F")
    M[:p, :p] = (X.T @ Xw).toarray()
    Yw = Y if w is None else w[:, None] * Y
    M[:p, p:] = np.asarray(Xw.T @ Y)
    if xmean is not None:
        M[:p, :p] -= wsum * np.outer(xmean, xmean)
        M[:p, p:] -= wsum * np.outer(xmean, ymean)
        Yc = Y - ymean
        M[p:, p:] = (Yc * (1.0 if w is None else w[:, None])).T @ Yc
    else:
        M[p:, p:] = Yw.T @ Y
    M[p:, :p] = M[:p, p:].T
    return M


def _pinv_normal_solve(S, p, alpha, n):
    """Minimum-norm solution of (M11 + alpha I) b = M12 by a symmetric eigendecomposition of the
    equilibrated matrix (last resort of streamed Gram solves)."""
    M = np.triu(S[:p, :p]) + np.triu(S[:p, :p], 1).T + alpha * np.eye(p)
    d = np.sqrt(np.diag(M))
    d[d == 0] = 1.0
    A = M / d[:, None] / d[None, :]
    vals, vecs = eigh(A)
    keep = vals > _EPS * max(n, p) * max(vals.max(), 0.0)
    rhs = S[:p, p:] / d[:, None]
    z = vecs[:, keep] @ ((vecs[:, keep].T @ rhs) / vals[keep, None])
    return z / d[:, None]
