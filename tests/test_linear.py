"""fastseq.LinearRegression (its kernels, fastseq.linear_model._lstsq_fast and
csrc/linear_model/lstsq.c, are tested in tests/kernels/test_lstsq_kernels.py).

Independent yardsticks: NumPy (block kernels), scipy.linalg (QR, lstsq, cho_solve, pinv),
sklearn (Ridge, r2_score), and designs with known exact coefficients.
"""
import pickle
import warnings

import numpy as np
import pytest
import scipy.linalg as sl
import scipy.sparse as sp
from scipy.linalg import LinAlgWarning
from scipy.sparse.linalg import aslinearoperator
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression as SkLinearRegression
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import fastseq.linear_model._lstsq as linear_mod
from fastseq import LinearRegression
from fastseq.reference.linear import lstsq_qr_scaled

SOLVERS = ["auto", "cholesky", "qr", "cgls"]
DIRECT = ["auto", "cholesky", "qr"]


def _problem(rng, n=200, p=6, k=None, mean=0.0, noise=0.1, dtype=np.float64):
    X = (rng.standard_normal((n, p)) + mean).astype(dtype)
    beta = rng.standard_normal(p if k is None else (p, k))
    y = X.astype(np.float64) @ beta + 1.5 + noise * rng.standard_normal(
        n if k is None else (n, k))
    return X, y


def _tol(solver, dtype=np.float64):
    # CGLS stops at tol=1e-10 relative normal residual; direct solvers are at working precision
    return 1e-7 if solver == "cgls" else 1e-10


# =================================================================== accuracy: known answers
def _exact_y(X, beta, intercept):
    # y from extended precision so the data's own rounding (0.5 ulp) is the only perturbation
    return (X.astype(np.longdouble) @ beta.astype(np.longdouble) + intercept).astype(np.float64)


def _designs():
    rng = np.random.default_rng(12345)
    out = {}
    t = np.linspace(0.0, 10.0, 200)
    out["vandermonde10_0_10"] = np.vander(t, 11, increasing=True)[:, 1:]
    out["vandermonde12_0_10"] = np.vander(t, 13, increasing=True)[:, 1:]
    t = np.linspace(1.0, 100.0, 300)
    out["vandermonde8_1_100"] = np.vander(t, 9, increasing=True)[:, 1:]
    x1 = rng.standard_normal(400)
    out["nearly_collinear"] = np.c_[x1, x1 + 1e-7 * rng.standard_normal(400),
                                    rng.standard_normal((400, 3))]
    out["scales_1e-6_1e6"] = (rng.standard_normal((300, 6)) + 5.0) * np.logspace(-6, 6, 6)
    out["mean_1e6"] = rng.standard_normal((300, 5)) + 1e6
    return out


DESIGNS = _designs()
# Designs where sklearn's LinearRegression / numpy.linalg.lstsq with default cut-offs (rcond =
# eps * max(n, p) on the UNSCALED singular values) truncate the small-scale directions and so lose
# every digit of some coefficients (componentwise relative error ~1): the bar to beat.
SKLEARN_LOSES_ALL = {"vandermonde10_0_10", "vandermonde12_0_10", "vandermonde8_1_100",
                     "scales_1e-6_1e6"}
NUMPY_LOSES_ALL = {"vandermonde8_1_100"}  # lstsq on [1, X] (no centering, no scaling)


def _errors(coef, beta, d):
    """(normwise error in equilibrated coordinates, max componentwise relative error)."""
    return (np.linalg.norm(d * (coef - beta)) / np.linalg.norm(d * beta),
            np.max(np.abs(coef - beta) / np.abs(beta)))


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_default_solver_matches_scaled_householder_qr(name):
    X = DESIGNS[name]
    rng = np.random.default_rng(7)
    beta = rng.uniform(1.0, 2.0, X.shape[1])
    y = _exact_y(X, beta, 7.0)
    d = np.linalg.norm(X - X.mean(0), axis=0)
    ref_coef, _ = lstsq_qr_scaled(X, y)
    ref = _errors(ref_coef, beta, d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LinAlgWarning)  # the explicit solvers may warn here
        for solver in ("auto", "qr"):
            reg = LinearRegression(solver=solver).fit(X, y)
            got = _errors(reg.coef_, beta, d)
            # within one decimal digit of Householder QR with column scaling (both metrics)
            assert got[0] <= 10 * ref[0] + 1e-15, (solver, got, ref)
            assert got[1] <= 10 * ref[1] + 1e-15, (solver, got, ref)
    sk = _errors(SkLinearRegression().fit(X, y).coef_, beta, d)
    A = np.c_[np.ones(len(X)), X]
    npl = _errors(np.linalg.lstsq(A, y, rcond=None)[0][1:], beta, d)
    auto = _errors(LinearRegression().fit(X, y).coef_, beta, d)
    # never worse than sklearn / numpy (componentwise), and far better where they give up
    assert auto[1] <= 1.01 * min(sk[1], npl[1]) + 1e-15
    if name in SKLEARN_LOSES_ALL:
        assert sk[1] > 0.5 and auto[1] < 0.05
    if name in NUMPY_LOSES_ALL:
        assert npl[1] > 0.5 and auto[1] < 0.05


def test_auto_refinement_beats_plain_cholesky():
    # cond(X) ~ 4e5 after equilibration: the normal equations alone lose 2 log10(cond) digits;
    # auto refines (or falls back) and recovers QR's accuracy.
    X = DESIGNS["vandermonde8_1_100"]
    beta = np.linspace(1.0, 2.0, X.shape[1])
    y = _exact_y(X, beta, 7.0)
    d = np.linalg.norm(X - X.mean(0), axis=0)
    plain = _errors(LinearRegression(solver="cholesky").fit(X, y).coef_, beta, d)[0]
    auto = LinearRegression().fit(X, y)
    assert auto.solver_ in ("cholesky", "qr")
    if auto.solver_ == "cholesky":
        assert auto.n_refine_ >= 1
    assert _errors(auto.coef_, beta, d)[0] < 1e-3 * plain


def test_auto_falls_back_to_qr_when_refinement_cannot_converge():
    X = DESIGNS["vandermonde12_0_10"]  # cond ~ 4e8: cond^2 * eps > 1
    y = _exact_y(X, np.ones(X.shape[1]), 1.0)
    reg = LinearRegression().fit(X, y)
    assert reg.solver_ == "qr" and reg.rank_ == X.shape[1]
    assert reg.condition_number_ > 1e7
    with pytest.warns(LinAlgWarning, match="falling back"):
        assert LinearRegression(solver="cholesky").fit(X, y).solver_ == "qr"


def test_large_means_do_not_cancel():
    # columns with mean 1e8 and spread 1: X'X - n mu mu' would lose all 16 digits
    rng = np.random.default_rng(3)
    X = rng.standard_normal((500, 4)) + 1e8
    beta = np.array([1.0, -2.0, 0.5, 3.0])
    y = (X - 1e8) @ beta + 2.0
    for solver in DIRECT:
        reg = LinearRegression(solver=solver).fit(X, y)
        np.testing.assert_allclose(reg.coef_, beta, rtol=1e-6)
    pf = LinearRegression()
    for i in range(0, 500, 128):
        pf.partial_fit(X[i:i + 128], y[i:i + 128])
    np.testing.assert_allclose(pf.coef_, beta, rtol=1e-6)


# ============================================================== cross-checks on random data
@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("k", [None, 3])
def test_matches_scipy_lstsq(rng, solver, fit_intercept, k):
    X, y = _problem(rng, k=k, mean=2.0)
    reg = LinearRegression(solver=solver, fit_intercept=fit_intercept).fit(X, y)
    A = np.c_[np.ones(len(X)), X] if fit_intercept else X
    sol = sl.lstsq(A, y)[0]
    coef = sol[1:] if fit_intercept else sol
    assert reg.coef_.shape == ((X.shape[1],) if k is None else (k, X.shape[1]))
    np.testing.assert_allclose(reg.coef_, coef.T, rtol=_tol(solver), atol=_tol(solver))
    if fit_intercept:
        np.testing.assert_allclose(reg.intercept_, sol[0], rtol=_tol(solver), atol=_tol(solver))
    else:
        assert np.all(reg.intercept_ == 0.0)
    expected_solver = {"auto": "cholesky"}.get(solver, solver)
    assert reg.solver_ == expected_solver
    assert (reg.n_iter_ is None) == (solver != "cgls")
    assert reg.n_features_in_ == X.shape[1]
    np.testing.assert_allclose(reg.predict(X), A @ sol, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(reg.score(X, y), r2_score(y, A @ sol), rtol=1e-10)


@pytest.mark.parametrize("solver", SOLVERS)
def test_ridge_matches_sklearn_and_augmented_system(rng, solver):
    X, y = _problem(rng, k=2, mean=1.0)
    w = rng.uniform(0.2, 3.0, len(X))
    reg = LinearRegression(solver=solver, alpha=2.5).fit(X, y, sample_weight=w)
    sk = Ridge(alpha=2.5, solver="cholesky").fit(X, y, sample_weight=w)
    np.testing.assert_allclose(reg.coef_, sk.coef_, rtol=_tol(solver), atol=_tol(solver))
    np.testing.assert_allclose(reg.intercept_, sk.intercept_, rtol=_tol(solver),
                               atol=_tol(solver))
    # augmented system [sqrt(w) Xc; sqrt(alpha) I] b = [sqrt(w) yc; 0], no intercept
    reg0 = LinearRegression(solver=solver, alpha=2.5, fit_intercept=False).fit(X, y)
    aug = sl.lstsq(np.vstack([X, np.sqrt(2.5) * np.eye(X.shape[1])]),
                   np.vstack([y, np.zeros((X.shape[1], 2))]))[0]
    np.testing.assert_allclose(reg0.coef_, aug.T, rtol=_tol(solver), atol=_tol(solver))


@pytest.mark.parametrize("solver", SOLVERS)
def test_sample_weight_equals_repeated_rows(rng, solver):
    X, y = _problem(rng, n=60, p=4)
    w = rng.integers(0, 4, len(X)).astype(float)
    a = LinearRegression(solver=solver).fit(X, y, sample_weight=w)
    b = LinearRegression(solver=solver).fit(np.repeat(X, w.astype(int), 0),
                                            np.repeat(y, w.astype(int)))
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=_tol(solver), atol=_tol(solver))
    np.testing.assert_allclose(a.intercept_, b.intercept_, rtol=_tol(solver), atol=_tol(solver))


@pytest.mark.parametrize("solver", DIRECT)
def test_float32_is_solved_in_float64(rng, solver):
    X, y = _problem(rng, n=300, p=8, mean=3.0, dtype=np.float32)
    reg = LinearRegression(solver=solver).fit(X, y)
    assert reg.coef_.dtype == np.float32
    # the float32 data are solved exactly as their float64 values would be; only the final
    # cast rounds
    ref, icpt = lstsq_qr_scaled(X.astype(np.float64), y)
    np.testing.assert_allclose(reg.coef_, ref.astype(np.float32), rtol=2e-7, atol=1e-7)
    np.testing.assert_allclose(reg.intercept_, icpt, rtol=1e-6)
    Y = np.c_[y, -y]
    reg2 = LinearRegression(solver=solver).fit(X, Y)
    assert reg2.coef_.dtype == np.float32 and reg2.intercept_.dtype == np.float32


# ==================================================================================== sparse
@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("solver", ["auto", "cgls", "cholesky"])
def test_sparse_matches_dense(rng, fmt, solver):
    Xd = rng.standard_normal((300, 8)) * (rng.random((300, 8)) < 0.3) + 0.0
    Xd[:, 0] += 4.0  # a column with a large mean: the intercept needs real centering
    y = Xd @ rng.standard_normal(8) + 2.0 + 0.01 * rng.standard_normal(300)
    w = rng.uniform(0.5, 2.0, 300)
    Xs = sp.csr_matrix(Xd) if fmt == "csr" else sp.csc_matrix(Xd)
    ref = lstsq_qr_scaled(Xd, y, sample_weight=w, alpha=0.1)
    reg = LinearRegression(solver=solver, alpha=0.1).fit(Xs, y, sample_weight=w)
    assert reg.solver_ == ("cholesky" if solver == "cholesky" else "cgls")
    np.testing.assert_allclose(reg.coef_, ref[0], rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(reg.intercept_, ref[1], rtol=1e-7)
    np.testing.assert_allclose(reg.predict(Xs), reg.predict(Xd), rtol=1e-12)
    with pytest.raises(ValueError, match="dense"):
        LinearRegression(solver="qr").fit(Xs, y)


def test_linear_operator_input(rng):
    X, y = _problem(rng, n=120, p=5, mean=1.0)
    op = aslinearoperator(X)
    reg = LinearRegression().fit(op, y)
    ref = lstsq_qr_scaled(X, y)
    assert reg.solver_ == "cgls" and reg.n_iter_ >= 1
    np.testing.assert_allclose(reg.coef_, ref[0], rtol=1e-7)
    np.testing.assert_allclose(reg.intercept_, ref[1], rtol=1e-7)
    np.testing.assert_allclose(reg.predict(op), reg.predict(X), rtol=1e-12)
    with pytest.raises(ValueError, match="dense"):
        LinearRegression(solver="cholesky").fit(op, y)


# ============================================================================== auto + CGLS
def test_auto_budget_rule():
    reg = LinearRegression()
    assert reg._auto_cgls_budget(200_000, 500) is None  # direct is cheap relative to BLAS-2
    budget = reg._auto_cgls_budget(20_000, 10_000)
    assert 100 <= budget <= 200
    assert LinearRegression(max_iter=50)._auto_cgls_budget(20_000, 10_000) == 50


def test_auto_tries_cgls_then_falls_back(rng, monkeypatch):
    # Make BLAS-2 look cheap so that auto prices a CGLS attempt on a small problem.
    monkeypatch.setattr(linear_mod, "_BLAS2_PENALTY", 1e-3)
    X, y = _problem(rng, n=400, p=10)
    reg = LinearRegression().fit(X, y)
    assert reg.solver_ == "cgls" and reg.n_iter_ >= 1
    np.testing.assert_allclose(reg.coef_, lstsq_qr_scaled(X, y)[0], rtol=1e-7)
    # an ill-conditioned design cannot converge in the budget: auto goes direct, no warning
    monkeypatch.setattr(linear_mod, "_CGLS_MIN_BUDGET", 2)
    Xi = DESIGNS["vandermonde10_0_10"]
    yi = _exact_y(Xi, np.ones(10), 1.0)
    reg = LinearRegression(max_iter=3).fit(Xi, yi)
    assert reg.solver_ in ("cholesky", "qr") and reg.n_iter_ is None


def test_cgls_not_converged_warns(rng):
    from sklearn.exceptions import ConvergenceWarning
    X = DESIGNS["vandermonde10_0_10"]
    y = _exact_y(X, np.ones(10), 1.0)
    with pytest.warns(ConvergenceWarning):
        LinearRegression(solver="cgls", max_iter=2).fit(X, y)


def test_cgls_condition_limit_stop_warns(rng):
    # degree-16 polynomial columns: cond of the equilibrated design > 1e8, so CGLS stops on
    # LSQR's rule S3 (istop 3) long before max_iter; that is not convergence either
    from sklearn.exceptions import ConvergenceWarning
    X = np.vander(np.linspace(0, 1, 300), 16)
    y = X @ np.ones(16) + 0.1 * rng.standard_normal(300)
    with pytest.warns(ConvergenceWarning, match="condition"):
        reg = LinearRegression(solver="cgls", max_iter=5000).fit(X, y)
    assert reg.n_iter_ < 5000


# ================================================================================ streaming
@pytest.mark.parametrize("solver", DIRECT)
@pytest.mark.parametrize("splits", [[300], [1, 299], [50, 50, 200], [7] * 42 + [6]])
def test_partial_fit_equals_fit(rng, solver, splits):
    X, y = _problem(rng, n=300, p=5, k=2, mean=5.0)
    w = rng.uniform(0.0, 2.0, 300)
    full = LinearRegression(solver=solver, alpha=0.3).fit(X, y, sample_weight=w)
    pf = LinearRegression(solver=solver, alpha=0.3)
    start = 0
    for size in splits:
        pf.partial_fit(X[start:start + size], y[start:start + size],
                       sample_weight=w[start:start + size])
        start += size
    np.testing.assert_allclose(pf.coef_, full.coef_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(pf.intercept_, full.intercept_, rtol=1e-10)
    # memory independent of n: the state is (p + k)^2
    assert pf._stream["state"].shape == (7, 7)


def test_partial_fit_qr_keeps_qr_accuracy():
    X = DESIGNS["vandermonde10_0_10"]
    beta = np.linspace(1.0, 2.0, 10)
    y = _exact_y(X, beta, 7.0)
    d = np.linalg.norm(X - X.mean(0), axis=0)
    ref = _errors(lstsq_qr_scaled(X, y)[0], beta, d)[0]
    pf = LinearRegression(solver="qr")
    for i in range(0, len(X), 33):
        pf.partial_fit(X[i:i + 33], y[i:i + 33])
    assert _errors(pf.coef_, beta, d)[0] <= 10 * ref
    # the co-moment stream cannot refine: it warns about the accuracy it has
    with pytest.warns(LinAlgWarning):
        LinearRegression().partial_fit(X, y)


def test_partial_fit_sparse_and_float32(rng):
    Xd, y = _problem(rng, n=200, p=4, mean=1.0)
    full = LinearRegression().fit(Xd, y)
    pf = LinearRegression()
    for i in range(0, 200, 64):
        pf.partial_fit(sp.csr_matrix(Xd[i:i + 64]), y[i:i + 64])
    np.testing.assert_allclose(pf.coef_, full.coef_, rtol=1e-9)
    pf32 = LinearRegression(solver="qr")
    X32 = Xd.astype(np.float32)
    for i in range(0, 200, 64):
        pf32.partial_fit(X32[i:i + 64], y[i:i + 64])
    assert pf32.coef_.dtype == np.float32
    np.testing.assert_allclose(pf32.coef_, LinearRegression().fit(X32, y).coef_, rtol=1e-6)


def test_partial_fit_errors(rng):
    X, y = _problem(rng, n=50, p=4)
    pf = LinearRegression().partial_fit(X, y)
    with pytest.raises(ValueError, match="features"):
        pf.partial_fit(X[:, :3], y)
    with pytest.raises(ValueError, match="target"):
        pf.partial_fit(X, np.c_[y, y])
    # parameters changed between calls are validated too (a negative alpha was used silently)
    for solver in ("auto", "qr"):
        changed = LinearRegression(solver=solver).partial_fit(X, y)
        changed.set_params(alpha=-1.0)
        with pytest.raises(ValueError, match="alpha"):
            changed.partial_fit(X, y)
    with pytest.raises(ValueError, match="cgls"):
        LinearRegression(solver="cgls").partial_fit(X, y)
    # fit discards the stream; partial_fit then starts over
    pf.fit(X, y)
    pf.partial_fit(X[:10], y[:10])
    np.testing.assert_allclose(pf.coef_, LinearRegression().fit(X[:10], y[:10]).coef_,
                               rtol=1e-8)


# ============================================================================ rank deficiency
@pytest.mark.parametrize("solver", ["auto", "qr"])
def test_rank_deficient_gives_minimum_norm(rng, solver):
    Z = rng.standard_normal((80, 3))
    X = np.c_[Z, Z[:, 0] - Z[:, 1], 2.0 * Z[:, 2]]
    y = Z @ np.array([1.0, 2.0, -1.0]) + 0.1 * rng.standard_normal(80) + 4.0
    reg = LinearRegression(solver=solver).fit(X, y)
    assert reg.solver_ == "qr" and reg.rank_ == 3
    Xc, yc = X - X.mean(0), y - y.mean()
    np.testing.assert_allclose(reg.coef_, np.linalg.pinv(Xc, rcond=1e-10) @ yc, rtol=1e-9)
    np.testing.assert_allclose(reg.predict(X), SkLinearRegression().fit(X, y).predict(X),
                               rtol=1e-9)


def test_underdetermined_and_constant_columns(rng):
    X = rng.standard_normal((5, 12))
    y = rng.standard_normal(5)
    reg = LinearRegression().fit(X, y)
    assert reg.rank_ == 4
    np.testing.assert_allclose(reg.predict(X), y, atol=1e-10)  # interpolates
    Xc = X - X.mean(0)
    np.testing.assert_allclose(reg.coef_, np.linalg.pinv(Xc) @ (y - y.mean()), rtol=1e-9)
    Xk = np.c_[rng.standard_normal((30, 2)), np.full(30, 3.0)]
    yk = Xk[:, 0] - Xk[:, 1] + 1.0
    r = LinearRegression().fit(Xk, yk)
    np.testing.assert_allclose(r.coef_, [1.0, -1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(r.intercept_, 1.0)


# ================================================================================ bad input
@pytest.mark.parametrize("params,match", [
    ({"alpha": -1.0}, "alpha"), ({"tol": 0.0}, "tol"), ({"tol": -1e-3}, "tol"),
    ({"solver": "svd"}, "solver"), ({"max_iter": 0}, "max_iter"),
    ({"fit_intercept": "yes"}, "fit_intercept"),
])
def test_bad_parameters(rng, params, match):
    X, y = _problem(rng, n=20, p=2)
    with pytest.raises(ValueError, match=match):
        LinearRegression(**params).fit(X, y)
    with pytest.raises(ValueError, match=match):
        LinearRegression(**params).partial_fit(X, y)


def test_bad_data(rng):
    X, y = _problem(rng, n=20, p=3)
    reg = LinearRegression()
    for bad in (np.nan, np.inf):
        Xb = X.copy()
        Xb[3, 1] = bad
        with pytest.raises(ValueError, match="NaN|inf"):
            reg.fit(Xb, y)
        yb = y.copy()
        yb[0] = bad
        with pytest.raises(ValueError, match="NaN|inf"):
            reg.fit(X, yb)
        # a LinearOperator's output is only seen through its products: the error names X
        bad_op = aslinearoperator(Xb)
        for intercept in (True, False):
            with pytest.raises(ValueError, match="LinearOperator.* NaN"), \
                    np.errstate(invalid="ignore"):  # inf * 0 inside the operator's own product
                LinearRegression(fit_intercept=intercept).fit(bad_op, y)
    with pytest.raises(ValueError, match="2D|2-D|dimension"):
        reg.fit(X[:, 0], y)
    with pytest.raises(ValueError):
        reg.fit(X[None], y)
    with pytest.raises(ValueError):
        reg.fit(X, y[:, None, None])
    with pytest.raises(ValueError, match="sample"):
        reg.fit(X[:0], y[:0])
    with pytest.raises(ValueError, match="feature"):
        reg.fit(X[:, :0], y)
    with pytest.raises(ValueError, match="inconsistent|samples"):
        reg.fit(X, y[:-1])
    with pytest.raises((TypeError, ValueError), match="omplex"):
        reg.fit(X.astype(complex), y)
    with pytest.raises((TypeError, ValueError)):
        reg.fit(np.array([["a", "b", "c"]] * 20, dtype=object), y)
    with pytest.raises(ValueError, match="(?i)negative"):
        reg.fit(X, y, sample_weight=-np.ones(20))
    with pytest.raises(ValueError, match="zero"):
        reg.fit(X, y, sample_weight=np.zeros(20))
    with pytest.raises(ValueError, match="sample_weight|shape"):
        reg.fit(X, y, sample_weight=np.ones(19))
    with pytest.raises(NotFittedError):
        LinearRegression().predict(X)
    reg.fit(X, y)
    with pytest.raises(ValueError, match="features"):
        reg.predict(X[:, :2])


@pytest.mark.parametrize("solver", SOLVERS)
def test_inputs_not_modified(rng, solver):
    X, y = _problem(rng, n=50, p=3, k=2, mean=10.0)
    w = rng.uniform(0.5, 1.5, 50)
    for Xin in (X, X.astype(np.float32), np.asfortranarray(X)):
        copies = Xin.copy(), y.copy(), w.copy()
        LinearRegression(solver=solver, alpha=0.1).fit(Xin, y, sample_weight=w)
        if solver != "cgls":
            LinearRegression(solver=solver).partial_fit(Xin, y, sample_weight=w)
        for a, b in zip((Xin, y, w), copies):
            np.testing.assert_array_equal(a, b)


# ======================================================================== sklearn integration
def test_pickle_clone_pipeline_gridsearch(rng):
    X, y = _problem(rng, n=120, p=4)
    reg = LinearRegression(alpha=0.5).fit(X, y)
    back = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(back.predict(X), reg.predict(X))
    c = clone(reg)
    assert c.get_params() == reg.get_params() and not hasattr(c, "coef_")
    pipe = make_pipeline(StandardScaler(), LinearRegression()).fit(X, y)
    sk_pipe = make_pipeline(StandardScaler(), SkLinearRegression()).fit(X, y)
    np.testing.assert_allclose(pipe.predict(X), sk_pipe.predict(X), rtol=1e-10)
    gs = GridSearchCV(LinearRegression(), {"alpha": [0.0, 1.0, 100.0]}, cv=3).fit(X, y)
    sk_gs = GridSearchCV(Ridge(solver="cholesky"), {"alpha": [1e-12, 1.0, 100.0]}, cv=3).fit(X, y)
    np.testing.assert_allclose(gs.cv_results_["mean_test_score"],
                               sk_gs.cv_results_["mean_test_score"], rtol=1e-8)


def test_strided_and_list_inputs(rng):
    X, y = _problem(rng, n=40, p=3, k=2)
    w_big = rng.uniform(0.5, 1.5, 80)
    w = w_big[::2]  # non-contiguous view
    a = LinearRegression().fit(X, y, sample_weight=w)
    b = LinearRegression().fit(X, y, sample_weight=w.copy())
    np.testing.assert_array_equal(a.coef_, b.coef_)
    c = LinearRegression().fit(X.tolist(), y.tolist(), sample_weight=list(w))
    np.testing.assert_allclose(c.coef_, a.coef_, rtol=1e-14)
    Xs = np.asfortranarray(np.repeat(X, 2, axis=1))[:, ::2]  # strided, F-ordered
    d = LinearRegression().fit(Xs, y, sample_weight=w)
    np.testing.assert_allclose(d.coef_, a.coef_, rtol=1e-13)


@pytest.mark.parametrize("solver", ["cgls", "auto"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_wide_design_gets_minimum_norm_solution(solver, fit_intercept):
    # n < p: infinitely many exact fits. CGLS without column scaling stays in range(Xc') and
    # must reach numpy's minimum-norm answer (of the centered design with an intercept); with
    # Jacobi scaling (columns on different scales here) it would land ~10% away.
    rng = np.random.default_rng(3)
    X = rng.standard_normal((200, 2000)) * rng.uniform(0.1, 10.0, 2000)
    y = rng.standard_normal(200)
    Xc, yc = (X - X.mean(0), y - y.mean()) if fit_intercept else (X, y)
    ref = np.linalg.lstsq(Xc, yc, rcond=None)[0]
    reg = LinearRegression(solver=solver, fit_intercept=fit_intercept).fit(X, y)
    assert reg.solver_ == "cgls"
    np.testing.assert_allclose(reg.coef_, ref, rtol=0, atol=1e-6 * np.linalg.norm(ref))
    if fit_intercept:
        assert abs(reg.intercept_ - (y.mean() - X.mean(0) @ ref)) < 1e-6 * np.linalg.norm(ref)


def test_auto_skips_refinement_on_well_conditioned_design():
    # cond(S G S) <= 100: plain Cholesky is within one digit of QR, so no pass is spent refining;
    # the answer still matches QR (scipy lstsq on the centered design) to ~100 eps.
    rng = np.random.default_rng(4)
    X = rng.standard_normal((3000, 20))
    y = X @ rng.standard_normal(20) + 0.01 * rng.standard_normal(3000)
    reg = LinearRegression().fit(X, y)
    assert reg.solver_ == "cholesky" and reg.n_refine_ == 0
    assert reg.condition_number_ ** 2 <= 100
    ref = sl.lstsq(X - X.mean(0), y - y.mean())[0]
    np.testing.assert_allclose(reg.coef_, ref, rtol=0, atol=1e-12 * np.linalg.norm(ref))
