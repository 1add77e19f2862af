"""SGDRegressor: epoch time and time-to-tolerance vs scikit-learn and the NumPy reference.

Run (from the worktree root):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m pytest bench/bench_sgd.py \
        --benchmark-only --benchmark-group-by=group --benchmark-columns=min,median,max,rounds

Problems: dense 100000 x 100 (float64, y = X w + 1 + noise) and CSR 100000 x 10000 with 1e6
stored N(0, 1) entries, plus a held-out test set of 20000 rows. Groups:

- ``sgd-epoch-{dense,csr}``: one epoch (``max_iter=1, tol=None``) of scikit-learn's
  SGDRegressor (per-sample SGD, its only mode), fastseq with batch_size 1 / 32 / 256, and the
  NumPy reference epoch (``fastseq.reference.sgd``) at batch_size 32 / 256.
- ``sgd-tol-{dense,csr}``: ``fit`` with the stopping rule both libraries share (tol=1e-3 on the
  epoch objective, n_iter_no_change=5), invscaling schedule (power_t=0.25). eta0 follows the
  linear-scaling rule (0.01 x batch_size, capped for stability on dense data; 0.01 is
  scikit-learn's default for batch_size 1).

Before timing, every fastseq epoch is checked against the reference epoch on the same
permutation, and batch_size=1 without shuffling against scikit-learn's updates (dense). The table
printed at the end reports median time, epochs, test R^2 and the relative normal-equation
residual ||A^T (A theta - y)|| / ||A^T y|| (A = [X, 1]) so accuracy is comparable.

Metadata (bench/README.md, ``fastseq._cli.bench.record``): one benchmark per impl per group, so the
groups are split by batch size: ``sgd-epoch-{kind} bs=1`` (fastseq vs scikit-learn),
``bs=32``/``bs=256`` (fastseq vs the NumPy reference); ``sgd-tol-{kind} bs=...`` (fastseq at that
batch size vs scikit-learn's per-sample SGD, timed in each group). ``agreement``: fastseq epochs
against the reference epoch (coefficients) and, bs=1, scikit-learn's (on CSR without intercept:
scikit-learn damps the sparse intercept update); time-to-tolerance fits have no exact counterpart,
so there it is the held-out prediction error max|y_pred - y_test| / max|y_test| (asserted
<= PRED_TOL).
Quick mode (``fastseq bench --quick``) uses 20000 + 5000 rows and CSR 1000 features.
"""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDRegressor as SkSGDRegressor
from sklearn.metrics import r2_score

from fastseq import SGDRegressor
from fastseq._cli.bench import check_agreement, pick, record, relative_difference
from fastseq.reference.sgd import sgd_epoch_reference

N_TRAIN, N_TEST = pick(full=[(100_000, 20_000)], quick=[(20_000, 5_000)])[0]
DENSE_FEATURES, SPARSE_FEATURES, SPARSE_NNZ = pick(full=[(100, 10_000, 1_000_000)],
                                                   quick=[(100, 1_000, 200_000)])[0]
COEF_TOL = 1e-8   # relative coefficient difference implied by the assert_allclose checks below
PRED_TOL = 0.5    # held-out prediction error (relative to max|y_test|) where no exact counterpart
ETA0 = {"dense": {1: 0.01, 32: 0.1, 256: 0.5}, "csr": {1: 0.01, 32: 0.3, 256: 2.0}}
COMMAND = ("env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m pytest bench/bench_sgd.py "
           "--benchmark-only --benchmark-group-by=group --benchmark-columns=min,median,max,rounds")
RESULTS = []


def _make(kind):
    rng = np.random.default_rng(0)
    n = N_TRAIN + N_TEST
    if kind == "dense":
        X = rng.standard_normal((n, DENSE_FEATURES))
        w = rng.standard_normal(DENSE_FEATURES)
    else:
        # SPARSE_NNZ / N_TRAIN = 10 entries per row at uniform random columns, built directly in
        # CSR (scipy.sparse.random would draw from all n * p cells: gigabytes of indices).
        per_row = SPARSE_NNZ // N_TRAIN
        indptr = np.arange(0, n * per_row + 1, per_row)
        indices = rng.integers(0, SPARSE_FEATURES, n * per_row)
        X = sp.csr_matrix((rng.standard_normal(n * per_row), indices, indptr),
                          shape=(n, SPARSE_FEATURES))
        X.sum_duplicates()  # rare repeated columns in a row: merged, sorted indices
        w = rng.standard_normal(SPARSE_FEATURES)
    y = np.asarray(X @ w) + 1.0 + 0.5 * rng.standard_normal(n)
    return X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:]


@pytest.fixture(scope="module", params=["dense", "csr"])
def problem(request):
    X, y, X_test, y_test = _make(request.param)
    return request.param, X, y, X_test, y_test


@pytest.fixture(scope="module", autouse=True)
def print_table(request):
    yield
    if not RESULTS:
        return
    # Teardown output is captured by pytest: suspend capturing to print the table.
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n".join(_table_lines()), flush=True)


def _table_lines():
    import threadpoolctl

    blas = [f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads)"
            for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
    header = (f"{'group':15s} {'case':26s} {'eta0':>6s} {'median s':>9s} {'epochs':>6s} "
              f"{'s/epoch':>8s} {'vs sklearn':>10s} {'test R2':>9s} {'NE resid':>9s}")
    lines = ["", f"SGDRegressor benchmark   command: {COMMAND}", f"BLAS: {', '.join(blas)}",
             header, "-" * len(header)]
    by_group = {}
    for row in RESULTS:
        by_group.setdefault(row["group"], []).append(row)
    for group, rows in by_group.items():
        sk = [r["median"] for r in rows if r["case"].startswith("sklearn")]
        for r in rows:
            ratio = f"{sk[0] / r['median']:.2f}x" if sk else ""
            lines.append(
                f"{group:15s} {r['case']:26s} {r['eta0']:>6} {r['median']:9.4f} "
                f"{r['epochs']:>6} {r['median'] / r['epochs']:8.4f} {ratio:>10s} "
                f"{r['r2']:9.5f} {r['ne']:9.2e}")
    lines.append("(vs sklearn = sklearn median / this median, >1 = faster than sklearn; "
                 "NE resid = ||A^T(A theta - y)|| / ||A^T y||, A = [X, 1])")
    return lines


def _normal_equation_residual(X, y, coef, intercept):
    r = np.asarray(X @ coef).ravel() + intercept - y
    num = np.r_[np.asarray(X.T @ r).ravel(), r.sum()]
    den = np.r_[np.asarray(X.T @ y).ravel(), y.sum()]
    return float(np.linalg.norm(num) / np.linalg.norm(den))


def _prediction_agreement(coef, intercept, X_test, y_test):
    """max|y_pred - y_test| / max|y_test| on held-out rows, asserted <= PRED_TOL."""
    pred = np.asarray(X_test @ np.ravel(coef)).ravel() + float(np.ravel(intercept)[0])
    return check_agreement(pred, y_test, PRED_TOL, what="held-out predictions")


def _record(benchmark, group, case, eta0, epochs, coef, intercept, X, y, X_test, y_test,
            impl, meta_case, agreement=None, tolerance=None):
    coef = np.ravel(coef)
    intercept = float(np.ravel(intercept)[0])
    r2 = r2_score(y_test, np.asarray(X_test @ coef).ravel() + intercept)
    ne = _normal_equation_residual(X, y, coef, intercept)
    record(benchmark, impl=impl, case=meta_case, dtype="float64", n=X.shape[0], p=X.shape[1],
           iterations=epochs, residual=ne, agreement=agreement, tolerance=tolerance)
    benchmark.extra_info.update(epochs=epochs, test_r2=r2, normal_equation_residual=ne)
    RESULTS.append(dict(group=group, case=case, eta0=eta0, epochs=epochs,
                        median=benchmark.stats.stats.median, r2=r2, ne=ne))
    return r2


def _epoch_estimator(lib, batch_size, eta0, **kw):
    params = dict(max_iter=1, tol=None, random_state=0, eta0=eta0, **kw)
    if lib == "sklearn":
        return SkSGDRegressor(**params)
    return SGDRegressor(batch_size=batch_size, **params)


def _fit_quiet(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter=1 on purpose
        return est.fit(X, y)


# ---- one epoch -------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["sklearn bs=1", "fastseq bs=1", "fastseq bs=32",
                                  "fastseq bs=256"])
def test_epoch(benchmark, problem, case):
    kind, X, y, X_test, y_test = problem
    lib, bs = case.split(" bs=")
    batch_size = int(bs)
    benchmark.group = f"sgd-epoch-{kind} bs={batch_size}"
    eta0 = ETA0[kind][batch_size]
    agreement = None
    if lib == "fastseq":
        agreement = _check_against_reference(kind, X, y, batch_size, eta0)
    if batch_size == 1:  # sklearn's updates, checked for fastseq
        sk_agreement = _check_against_sklearn(X, y, fit_intercept=kind == "dense")
        agreement = sk_agreement if lib == "sklearn" else max(agreement, sk_agreement)
    est = _epoch_estimator(lib, batch_size, eta0)
    tolerance = COEF_TOL
    benchmark.pedantic(_fit_quiet, args=(est, X, y), rounds=3, iterations=1, warmup_rounds=0)
    r2 = _record(benchmark, benchmark.group, case, eta0, 1, est.coef_, est.intercept_, X, y,
                 X_test, y_test, impl=lib,
                 meta_case=f"SGDRegressor epoch bs={batch_size} ({kind})", agreement=agreement,
                 tolerance=tolerance)
    assert np.isfinite(r2)


@pytest.mark.parametrize("batch_size", [32, 256])
def test_epoch_numpy_reference(benchmark, problem, batch_size):
    kind, X, y, X_test, y_test = problem
    benchmark.group = f"sgd-epoch-{kind} bs={batch_size}"
    eta0 = ETA0[kind][batch_size]
    perm = np.random.default_rng(0).permutation(X.shape[0])
    Y, sw = y[:, None], np.ones(X.shape[0])
    p = X.shape[1]

    def run():
        return sgd_epoch_reference(X, Y, sw, perm, np.zeros((1, p)), np.zeros(1),
                                   batch_size=batch_size, learning_rate="invscaling", eta0=eta0,
                                   power_t=0.25, alpha=1e-4)

    out = benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    _record(benchmark, benchmark.group, f"numpy reference bs={batch_size}", eta0, 1,
            out["coef"], out["intercept"], X, y, X_test, y_test, impl="reference",
            meta_case=f"SGDRegressor epoch bs={batch_size} ({kind})")


def _check_against_reference(kind, X, y, batch_size, eta0):
    """The compiled epoch equals the reference epoch (same permutation) on the first 20000 rows.
    Returns the relative coefficient difference (recorded as agreement)."""
    rows = slice(0, 20_000)
    Xs, ys = X[rows], y[rows]
    est = SGDRegressor(batch_size=batch_size, eta0=eta0, shuffle=False)
    est.partial_fit(Xs, ys)
    p = X.shape[1]
    ref = sgd_epoch_reference(Xs, ys[:, None], np.ones(len(ys)), np.arange(len(ys)),
                              np.zeros((1, p)), np.zeros(1), batch_size=batch_size,
                              learning_rate="invscaling", eta0=eta0, power_t=0.25, alpha=1e-4)
    np.testing.assert_allclose(est.coef_, ref["coef"][0], rtol=1e-9, atol=1e-11)
    return check_agreement(est.coef_, ref["coef"][0], COEF_TOL, what="epoch coefficients")


def _check_against_sklearn(X, y, fit_intercept=True):
    """batch_size=1 without shuffling makes sklearn's updates (first 20000 rows). On CSR without
    the intercept: sklearn damps the intercept update on sparse input (intercept_decay 0.01).
    Returns the relative coefficient difference (recorded as agreement)."""
    Xs, ys = X[:20_000], y[:20_000]
    kw = dict(max_iter=1, tol=None, shuffle=False, fit_intercept=fit_intercept)
    ours = _fit_quiet(SGDRegressor(batch_size=1, **kw), Xs, ys)
    theirs = _fit_quiet(SkSGDRegressor(**kw), Xs, ys)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=1e-9, atol=1e-12)
    return relative_difference(ours.coef_, theirs.coef_)


# ---- time to tolerance -----------------------------------------------------------------------
# one group per fastseq batch size, each with scikit-learn's per-sample SGD (its only mode)
@pytest.mark.parametrize("impl", ["fastseq", "sklearn"])
@pytest.mark.parametrize("batch_size", [1, 32, 256])
def test_time_to_tol(benchmark, problem, batch_size, impl):
    kind, X, y, X_test, y_test = problem
    benchmark.group = f"sgd-tol-{kind} bs={batch_size}"
    case = f"{impl} bs={1 if impl == 'sklearn' else batch_size}"
    eta0 = ETA0[kind][1 if impl == "sklearn" else batch_size]
    params = dict(tol=1e-3, n_iter_no_change=5, max_iter=1000, random_state=0, eta0=eta0)
    est = (SkSGDRegressor(**params) if impl == "sklearn"
           else SGDRegressor(batch_size=batch_size, **params))
    benchmark.pedantic(est.fit, args=(X, y), rounds=2 if kind == "dense" else 1, iterations=1,
                       warmup_rounds=0)
    # agreement of the fitted model (the timed fit's; a fit to tolerance has no exact counterpart)
    agreement = _prediction_agreement(est.coef_, est.intercept_, X_test, y_test)
    r2 = _record(benchmark, benchmark.group, case, eta0, est.n_iter_, est.coef_,
                 est.intercept_, X, y, X_test, y_test, impl=impl,
                 meta_case=f"SGDRegressor.fit tol=1e-3 bs={batch_size} ({kind})",
                 agreement=agreement, tolerance=PRED_TOL)
    assert r2 > 0.9, f"{case} did not fit ({r2=})"  # the methods reached a comparable model
