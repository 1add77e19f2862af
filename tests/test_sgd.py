"""fastseq.SGDRegressor and its compiled epoch (fastseq.linear_model._sgd_fast).

Independent references: the NumPy epoch in fastseq.reference.sgd (kernel level, to rounding),
scikit-learn's SGDRegressor (batch_size=1, same updates), scipy.linalg.lstsq and sklearn's Ridge
(the fixed point), and the estimator's own invariances (dense vs CSR, multi-output vs per-output).
"""
import pickle

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import Ridge
from sklearn.linear_model import SGDRegressor as SkSGDRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fastseq import SGDRegressor
from fastseq.reference.sgd import sgd_epoch_reference
from fastseq.reference.testing import make_linear_problem

SCHEDULES = ["constant", "optimal", "invscaling"]
# Tolerance of the estimator's epochs against the reference, relative to the size of the
# coefficients (the same numbers as the kernel's, tests/kernels/test_sgd_kernels.py).
RTOL = {np.float64: 1e-11, np.float32: 2e-5}


# ---- the estimator reproduces the reference epochs -------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("learning_rate", SCHEDULES)
def test_partial_fit_sequence_matches_reference(rng, dtype, sparse, learning_rate):
    X, y = make_linear_problem(rng, dtype=dtype, density=0.5 if sparse else None)
    y = y[:, 0]
    Xin = sp.csr_matrix(X) if sparse else X
    n, p = X.shape
    sw = rng.uniform(0.5, 1.5, n)
    # 'optimal' starts at eta = alpha**-0.25: a larger alpha keeps it stable on unscaled X
    alpha = 0.5 if learning_rate == "optimal" else 0.01
    params = dict(learning_rate=learning_rate, eta0=0.03, power_t=0.4, alpha=alpha)
    reg = SGDRegressor(batch_size=7, shuffle=False, **params)
    state = dict(coef=np.zeros((1, p), dtype), intercept=np.zeros(1, dtype), t=1.0)
    for _ in range(3):
        reg.partial_fit(Xin, y, sample_weight=sw)
        state = sgd_epoch_reference(Xin, y[:, None].astype(dtype), sw.astype(dtype),
                                    np.arange(n), state["coef"], state["intercept"],
                                    batch_size=7, t=state["t"], **params)
    assert reg.coef_.shape == (p,) and reg.coef_.dtype == dtype
    assert reg.t_ == state["t"] == 1 + 3 * np.ceil(n / 7)
    rtol = RTOL[dtype]
    np.testing.assert_allclose(reg.coef_, state["coef"][0], rtol=rtol, atol=rtol)
    np.testing.assert_allclose(reg.intercept_, state["intercept"], rtol=rtol, atol=rtol)
    np.testing.assert_allclose(reg.loss_curve_[-1], state["loss"] / n, rtol=10 * rtol)
    # fit with the same number of epochs and no stopping makes the very same updates
    fitted = SGDRegressor(batch_size=7, shuffle=False, max_iter=3, tol=None, **params)
    fitted.fit(Xin, y, sample_weight=sw)
    np.testing.assert_array_equal(fitted.coef_, reg.coef_)
    assert fitted.t_ == reg.t_ and fitted.n_iter_ == 3


def test_warm_start_continues_from_previous_coefficients(rng):
    X, y = make_linear_problem(rng)
    y = y[:, 0]
    params = dict(batch_size=5, shuffle=False, max_iter=1, tol=None, learning_rate="invscaling")
    reg = SGDRegressor(warm_start=True, **params).fit(X, y)
    coef, intercept = reg.coef_.copy(), reg.intercept_.copy()
    reg.fit(X, y)
    want = sgd_epoch_reference(X, y[:, None], np.ones(len(y)), np.arange(len(y)), coef[None],
                               intercept, batch_size=5, learning_rate="invscaling", eta0=0.01,
                               power_t=0.25, alpha=1e-4, t=1.0)  # t_ restarts, like sklearn
    np.testing.assert_allclose(reg.coef_, want["coef"][0], rtol=1e-12)
    cold = SGDRegressor(**params).fit(X, y)
    cold.fit(X, y)
    np.testing.assert_array_equal(cold.coef_, coef)  # no warm start: refit from zero


def test_average_exposes_running_mean(rng):
    X, y = make_linear_problem(rng, n=40)
    y = y[:, 0]
    reg = SGDRegressor(average=10, batch_size=4, shuffle=False, max_iter=1, tol=None)
    reg.fit(X, y)
    p = X.shape[1]
    want = sgd_epoch_reference(X, y[:, None], np.ones(40), np.arange(40), np.zeros((1, p)),
                               np.zeros(1), batch_size=4, learning_rate="invscaling", eta0=0.01,
                               power_t=0.25, alpha=1e-4, average=10, avg_coef=np.zeros((1, p)),
                               avg_intercept=np.zeros(1))
    np.testing.assert_allclose(reg.coef_, want["avg_coef"][0], rtol=1e-12)
    np.testing.assert_allclose(reg.intercept_, want["avg_intercept"], rtol=1e-12)
    assert not np.allclose(reg.coef_, want["coef"][0])


# ---- convergence to the least-squares / ridge solution -----------------------------------------
def test_full_batch_converges_to_ridge(rng):
    # batch_size >= n is gradient descent on (1/n) sum 0.5 s_i r_i^2 + 0.5 alpha ||w||^2, whose
    # minimiser is Ridge(alpha = n * alpha) with the same sample weights.
    n = 300
    X, y = make_linear_problem(rng, n=n, p=6, noise=0.5)
    y = y[:, 0]
    sw = rng.uniform(0.5, 2.0, n)
    alpha = 0.05
    reg = SGDRegressor(batch_size=n, learning_rate="constant", eta0=0.3, alpha=alpha,
                       max_iter=3000, tol=1e-14, n_iter_no_change=3).fit(X, y, sample_weight=sw)
    ridge = Ridge(alpha=n * alpha).fit(X, y, sample_weight=sw)
    np.testing.assert_allclose(reg.coef_, ridge.coef_, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(reg.intercept_, [ridge.intercept_], rtol=1e-7)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_minibatch_converges_to_lstsq(rng, sparse):
    # Consistent system (y = X w + b exactly): constant-step SGD converges linearly to the
    # least-squares solution, which scipy.linalg.lstsq gives independently.
    n, p = 400, 5
    X = rng.standard_normal((n, p))
    if sparse:
        X[rng.random((n, p)) > 0.6] = 0.0
    y = X @ rng.standard_normal(p) - 1.5
    reg = SGDRegressor(penalty=None, learning_rate="constant", eta0=0.1, batch_size=8,
                       max_iter=500, tol=1e-16, random_state=0)
    reg.fit(sp.csr_matrix(X) if sparse else X, y)
    solution = scipy.linalg.lstsq(np.column_stack([X, np.ones(n)]), y)[0]
    np.testing.assert_allclose(reg.coef_, solution[:p], atol=1e-8)
    np.testing.assert_allclose(reg.intercept_, solution[p:], atol=1e-8)


def test_averaged_minibatch_approaches_lstsq_with_noise(rng):
    n, p = 2000, 5
    X = rng.standard_normal((n, p))
    y = X @ rng.standard_normal(p) + 0.3 * rng.standard_normal(n)
    reg = SGDRegressor(penalty=None, learning_rate="constant", eta0=0.05, batch_size=16,
                       average=True, max_iter=20, tol=None, random_state=0).fit(X, y)
    solution = scipy.linalg.lstsq(np.column_stack([X, np.ones(n)]), y)[0]
    # normal-equation residual of the SGD solution, relative to that of zero
    A = np.column_stack([X, np.ones(n)])
    residual = A.T @ (A @ np.r_[reg.coef_, reg.intercept_] - y)
    assert np.linalg.norm(residual) < 2e-2 * np.linalg.norm(A.T @ y)
    np.testing.assert_allclose(reg.coef_, solution[:p], atol=2e-2)


# ---- scikit-learn's SGDRegressor ---------------------------------------------------------------
@pytest.mark.parametrize("average", [False, True, 10])
@pytest.mark.parametrize("learning_rate", ["constant", "optimal", "invscaling"])
def test_batch_size_one_matches_sklearn_updates(rng, learning_rate, average):
    # Without shuffling, batch_size=1 makes exactly sklearn's per-sample updates (dense input),
    # including ASGD (sklearn's lazy averaging formula vs our running mean).
    X, y = make_linear_problem(rng, n=80, p=4)
    y = y[:, 0]
    # alpha: a stable 'optimal' rate (a diverging run would hit sklearn's residual clipping)
    params = dict(learning_rate=learning_rate, eta0=0.01, power_t=0.25, alpha=0.5,
                  shuffle=False, max_iter=3, tol=None, average=average)
    ours = SGDRegressor(batch_size=1, **params).fit(X, y)
    theirs = SkSGDRegressor(**params).fit(X, y)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_, rtol=1e-10, atol=1e-12)
    assert ours.t_ == theirs.t_


def test_shuffled_quality_matches_sklearn(rng):
    n, p = 3000, 10
    X = rng.standard_normal((n, p))
    w = rng.standard_normal(p)
    y = X @ w + 0.5 * rng.standard_normal(n)
    X_test = rng.standard_normal((500, p))
    y_test = X_test @ w
    scores = []
    for seed in range(3):
        params = dict(max_iter=5, tol=None, random_state=seed)
        ours = SGDRegressor(batch_size=1, **params).fit(X, y)
        theirs = SkSGDRegressor(**params).fit(X, y)
        scores.append((ours.score(X_test, y_test), theirs.score(X_test, y_test)))
        assert np.linalg.norm(ours.coef_ - theirs.coef_) < 0.05 * np.linalg.norm(w)
    ours_r2, theirs_r2 = np.mean(scores, axis=0)
    assert ours_r2 > 0.99 and abs(ours_r2 - theirs_r2) < 5e-3


# ---- estimator behaviour -----------------------------------------------------------------------
def test_dense_and_csr_agree(rng):
    X, y = make_linear_problem(rng, n=120, p=9, density=0.3)
    params = dict(batch_size=6, max_iter=4, tol=None, random_state=3, average=5)
    dense = SGDRegressor(**params).fit(X, y[:, 0])
    sparse = SGDRegressor(**params).fit(sp.csr_matrix(X), y[:, 0])
    np.testing.assert_allclose(sparse.coef_, dense.coef_, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(sparse.predict(sp.csr_matrix(X)), dense.predict(X), rtol=1e-12)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_multi_output_equals_separate_fits(rng, sparse):
    X, Y = make_linear_problem(rng, n=90, k=3, density=0.5 if sparse else None)
    Xin = sp.csr_matrix(X) if sparse else X
    params = dict(batch_size=4, max_iter=3, tol=None, random_state=0)
    multi = SGDRegressor(**params).fit(Xin, Y)
    assert multi.coef_.shape == (3, X.shape[1]) and multi.intercept_.shape == (3,)
    assert multi.predict(Xin).shape == (90, 3)
    for j in range(3):
        single = SGDRegressor(**params).fit(Xin, Y[:, j])
        np.testing.assert_allclose(multi.coef_[j], single.coef_, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(multi.intercept_[j], single.intercept_[0], rtol=1e-12)


def test_float32_kept(rng):
    X, y = make_linear_problem(rng, dtype=np.float32)
    reg = SGDRegressor(max_iter=5, tol=None, random_state=0).fit(X, y[:, 0])
    assert reg.coef_.dtype == np.float32 and reg.intercept_.dtype == np.float32
    assert reg.predict(X).dtype == np.float32
    reg64 = SGDRegressor(max_iter=5, tol=None, random_state=0).fit(X.astype(np.float64), y[:, 0])
    np.testing.assert_allclose(reg.coef_, reg64.coef_, rtol=1e-4, atol=1e-5)


def test_reproducible_bit_for_bit(rng):
    X, y = make_linear_problem(rng, n=500, p=8)
    params = dict(max_iter=5, tol=None, early_stopping=True, n_iter_no_change=100)
    a = SGDRegressor(random_state=7, **params).fit(X, y[:, 0])
    b = SGDRegressor(random_state=7, **params).fit(X, y[:, 0])
    c = SGDRegressor(random_state=8, **params).fit(X, y[:, 0])
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert a.validation_scores_ == b.validation_scores_
    assert not np.array_equal(a.coef_, c.coef_)


def test_stops_on_tol_and_warns_at_max_iter(rng):
    X, y = make_linear_problem(rng, n=200)
    reg = SGDRegressor(learning_rate="constant", eta0=0.05, random_state=0).fit(X, y[:, 0])
    assert 6 <= reg.n_iter_ < 1000 and len(reg.loss_curve_) == reg.n_iter_
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        SGDRegressor(max_iter=2).fit(X, y[:, 0])


def test_early_stopping(rng):
    X, y = make_linear_problem(rng, n=400, noise=1.0)
    reg = SGDRegressor(early_stopping=True, validation_fraction=0.2, n_iter_no_change=3,
                       learning_rate="constant", eta0=0.05, tol=1e-4, random_state=0)
    reg.fit(X, y[:, 0])
    scores = reg.validation_scores_
    assert len(scores) == reg.n_iter_ < 1000
    best_before = max(scores[:-3])
    assert all(s < best_before + 1e-4 for s in scores[-3:])  # the stopping rule held
    assert reg.t_ == 1 + reg.n_iter_ * np.ceil(320 / 32)  # trained on 80% of the samples
    with pytest.raises(ValueError, match="validation"):
        SGDRegressor(early_stopping=True, validation_fraction=0.1).fit(X[:3], y[:3, 0])


def test_adaptive_rate_decreases_and_stops(rng):
    X, y = make_linear_problem(rng, n=300, noise=1.0)
    reg = SGDRegressor(learning_rate="adaptive", eta0=0.1, n_iter_no_change=2,
                       random_state=0).fit(X, y[:, 0])
    # eta0 / 5^j must drop below 1e-6 before stopping: at least 8 reductions x 2 epochs
    assert 16 <= reg.n_iter_ < 1000
    const = SGDRegressor(learning_rate="constant", eta0=0.1, n_iter_no_change=2,
                         random_state=0).fit(X, y[:, 0])
    assert const.n_iter_ < reg.n_iter_


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_divergence_is_reported_and_coefficients_stay_finite(rng, dtype, sparse):
    X, y = make_linear_problem(rng, n=200, dtype=dtype)
    X = X * 100
    Xin = sp.csr_matrix(X) if sparse else X
    reg = SGDRegressor(learning_rate="constant", eta0=10.0, random_state=0)
    with pytest.raises(ValueError, match=r"diverged.*eta0=10\.0.*smaller eta0"):
        reg.fit(Xin, y[:, 0])
    assert np.isfinite(reg.coef_).all() and np.isfinite(reg.intercept_).all()
    # a good epoch, then a diverging partial_fit: the last good coefficients survive
    reg = SGDRegressor(learning_rate="constant", eta0=1e-6, shuffle=False)
    reg.partial_fit(Xin, y[:, 0])
    good = reg.coef_.copy()
    reg.set_params(eta0=10.0)
    with pytest.raises(ValueError, match="diverged"):
        reg.partial_fit(Xin, y[:, 0])
    np.testing.assert_array_equal(reg.coef_, good)


def test_partial_fit_checks(rng):
    X, y = make_linear_problem(rng)
    reg = SGDRegressor().partial_fit(X, y[:, 0])
    assert reg.n_iter_ == 1 and reg.n_features_in_ == X.shape[1]
    with pytest.raises(ValueError, match="features"):
        reg.partial_fit(X[:, :3], y[:, 0])
    with pytest.raises(ValueError, match="outputs"):
        reg.partial_fit(X, np.column_stack([y, y]))
    with pytest.raises(ValueError, match="2-D"):  # coef_ would turn from (p,) into (1, p)
        reg.partial_fit(X, y[:, :1])
    assert reg.coef_.shape == (X.shape[1],) and reg.predict(X).shape == (X.shape[0],)
    # later batches are converted to the dtype of the first
    reg.partial_fit(X.astype(np.float32), y[:, 0])
    assert reg.coef_.dtype == np.float64
    # parameters changed between calls are validated too (sklearn's _fit_context skips
    # partial_fit once fitted; a negative eta0 / alpha was used silently)
    for bad in (dict(eta0=-0.5), dict(alpha=-1.0)):
        changed = SGDRegressor().partial_fit(X, y[:, 0]).set_params(**bad)
        with pytest.raises(ValueError, match=next(iter(bad))):
            changed.partial_fit(X, y[:, 0])


@pytest.mark.parametrize("bad,match", [
    (dict(loss="huber"), "loss"),
    (dict(penalty="l1"), "penalty"),
    (dict(learning_rate="pa1"), "learning_rate"),
    (dict(batch_size=0), "batch_size"),
    (dict(eta0=0.0), "eta0"),
    (dict(alpha=-1.0), "alpha"),
    (dict(max_iter=0), "max_iter"),
    (dict(validation_fraction=1.0), "validation_fraction"),
    (dict(learning_rate="optimal", alpha=0.0), "alpha must be > 0"),
])
def test_bad_parameters(rng, bad, match):
    X, y = make_linear_problem(rng)
    with pytest.raises(ValueError, match=match):
        SGDRegressor(**bad).fit(X, y[:, 0])


def test_bad_input(rng):
    X, y = make_linear_problem(rng)
    y = y[:, 0]
    reg = SGDRegressor(max_iter=2, tol=None)
    with pytest.raises(NotFittedError):
        reg.predict(X)
    bad_x = X.copy()
    bad_x[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        reg.fit(bad_x, y)
    bad_y = y.copy()
    bad_y[0] = np.inf
    with pytest.raises(ValueError, match="infinity|finite"):
        reg.fit(X, bad_y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        reg.fit(X, y[:-1])
    with pytest.raises(ValueError, match="0 sample"):
        reg.fit(X[:0], y[:0])
    with pytest.raises(ValueError, match="2D|2-D|dim"):
        reg.fit(X[:, :, None], y)
    with pytest.raises(ValueError, match="sample_weight|negative"):
        reg.fit(X, y, sample_weight=-np.ones_like(y))
    with pytest.raises(ValueError, match="sample_weight|shape"):
        reg.fit(X, y, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="float32"):
        reg.fit(X.astype(np.float32), np.full_like(y, 1e300))
    reg.fit(X, y)
    with pytest.raises(ValueError, match="features"):
        reg.predict(X[:, :-1])


def test_inputs_not_modified(rng):
    X, y = make_linear_problem(rng)
    y = y[:, 0]
    sw = rng.uniform(0.5, 1.5, len(y))
    Xs = sp.csr_matrix(X)
    copies = [X.copy(), y.copy(), sw.copy(), Xs.data.copy()]
    SGDRegressor(max_iter=3, tol=None, average=True).fit(X, y, sample_weight=sw)
    SGDRegressor(max_iter=3, tol=None).fit(Xs, y, sample_weight=sw).partial_fit(Xs, y)
    for before, after in zip(copies, [X, y, sw, Xs.data]):
        np.testing.assert_array_equal(before, after)


def test_pickle_clone_pipeline(rng):
    X, y = make_linear_problem(rng, n=300)
    X = 50 * X + 7  # badly scaled: the pipeline's scaler makes SGD work
    y = y[:, 0]
    reg = SGDRegressor(max_iter=20, tol=None, random_state=0).fit(X / 50, y)
    restored = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(restored.predict(X / 50), reg.predict(X / 50))
    restored.partial_fit(X / 50, y)  # training state survives pickling
    assert restored.t_ > reg.t_
    fresh = clone(reg)
    assert not hasattr(fresh, "coef_") and fresh.get_params() == reg.get_params()
    pipe = make_pipeline(StandardScaler(), SGDRegressor(learning_rate="constant", eta0=0.01,
                                                        random_state=0))
    pipe.fit(X, y)
    assert pipe.score(X, y) > 0.95


def test_verbose_prints_epochs(rng, capsys):
    X, y = make_linear_problem(rng)
    SGDRegressor(max_iter=2, tol=None, verbose=1).fit(X, y[:, 0])
    out = capsys.readouterr().out
    assert out.count("-- Epoch") == 2 and "Avg. loss" in out


def test_malformed_csr_and_switching_average(rng):
    X, y = make_linear_problem(rng, n=20, p=4)
    Xs = sp.csr_matrix(X)
    Xs.indices[3] = 7  # a column beyond n_features
    with pytest.raises(ValueError, match="malformed CSR"):
        SGDRegressor().fit(Xs, y[:, 0])
    reg = SGDRegressor().partial_fit(X, y[:, 0])
    reg.set_params(average=True).partial_fit(X, y[:, 0])  # workspace re-allocated, no overflow
    assert reg.coef_.shape == (4,) and np.isfinite(reg.coef_).all()


def test_docstring_example():
    import doctest

    import fastseq.linear_model._sgd

    result = doctest.testmod(fastseq.linear_model._sgd, verbose=False)
    assert result.attempted > 0 and result.failed == 0
