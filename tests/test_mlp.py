"""MLPClassifier / MLPRegressor: hand-worked gradients, finite differences, scikit-learn as an
independent implementation of the same training algorithm, estimator contract, bad input."""
import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state

from fastseq import MLPClassifier, MLPRegressor
from fastseq.neural_network import DivergenceWarning
from fastseq.reference.testing import central_differences

quiet = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _clf_data(n=120, classes=3, features=6, seed=0):
    return make_classification(n_samples=n, n_features=features, n_informative=4,
                               n_redundant=0, n_classes=classes, random_state=seed)


def _set_weights(est, coefs, intercepts):
    """The documented way to train from given weights: assign, then fit with warm_start."""
    est.set_params(warm_start=True)
    est.coefs_ = [np.array(c, dtype=float) for c in coefs]
    est.intercepts_ = [np.array(b, dtype=float) for b in intercepts]
    return est


# ---- the textbook 1-1-1 network --------------------------------------------------------------
def test_one_one_one_network_closed_form_gradients_and_one_sgd_step():
    x, y = 0.7, 1.0
    w1, b1, w2, b2 = 0.3, -0.2, -0.8, 0.1
    eta = 0.5
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    a1 = sig(w1 * x + b1)
    a2 = sig(w2 * a1 + b2)
    dw2, db2 = (a2 - y) * a1, a2 - y
    dw1 = (a2 - y) * w2 * a1 * (1 - a1) * x
    db1 = (a2 - y) * w2 * a1 * (1 - a1)

    clf = MLPClassifier(hidden_layer_sizes=(1,), activation="logistic", solver="sgd",
                        momentum=0.0, alpha=0.0, learning_rate_init=eta, batch_size=1,
                        max_iter=1, shuffle=False)
    _set_weights(clf, [[[w1]], [[w2]]], [[b1], [b2]])
    X, labels = np.array([[x]]), np.array([1])
    # one sample of class 1 and, to make a binary problem, classes from partial_fit
    loss, gw, gb = clf._loss_grad(X, np.array([[y]]))
    np.testing.assert_allclose(loss, -np.log(a2), rtol=1e-14)
    np.testing.assert_allclose([gw[0][0, 0], gb[0][0], gw[1][0, 0], gb[1][0]],
                               [dw1, db1, dw2, db2], rtol=1e-14)
    clf.partial_fit(X, labels, classes=[0, 1])
    np.testing.assert_allclose(
        [clf.coefs_[0][0, 0], clf.intercepts_[0][0], clf.coefs_[1][0, 0], clf.intercepts_[1][0]],
        [w1 - eta * dw1, b1 - eta * db1, w2 - eta * dw2, b2 - eta * db2], rtol=1e-14)
    np.testing.assert_allclose(clf.loss_curve_, [-np.log(a2)], rtol=1e-14)


# ---- whole-network gradients vs central finite differences ---------------------------------
CONFIGS = [
    ("clf-binary", (5,), "logistic"),
    ("clf-multiclass", (4, 3), "tanh"),
    ("clf-multilabel", (6,), "relu"),
    ("reg-single", (), "identity"),
    ("reg-multi", (3, 4), "tanh"),
]


def _fd_problem(kind, rng):
    X = rng.normal(size=(7, 3))
    if kind == "clf-binary":
        return MLPClassifier, X, (rng.random((7, 1)) < 0.5).astype(float), np.array([0, 1])
    if kind == "clf-multiclass":
        return MLPClassifier, X, np.eye(3)[rng.integers(0, 3, 7)], np.array([0, 1, 2])
    if kind == "clf-multilabel":
        return MLPClassifier, X, (rng.random((7, 2)) < 0.5).astype(float), np.eye(2)
    if kind == "reg-single":
        return MLPRegressor, X, rng.normal(size=(7, 1)), None
    return MLPRegressor, X, rng.normal(size=(7, 2)), None


@pytest.mark.parametrize("kind,hidden,act", CONFIGS)
@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_gradients_match_central_finite_differences(rng, kind, hidden, act, alpha):
    Est, X, Y, _ = _fd_problem(kind, rng)
    est = Est(hidden_layer_sizes=hidden, activation=act, alpha=alpha)
    if Est is MLPClassifier:
        est._softmax = kind == "clf-multiclass"
    widths = [X.shape[1], *hidden, Y.shape[1]]
    est.coefs_ = [rng.normal(size=(a, b)) for a, b in zip(widths[:-1], widths[1:])]
    est.intercepts_ = [rng.normal(size=b) for b in widths[1:]]
    _, gw, gb = est._loss_grad(X, Y)
    for params, grads in [(est.coefs_, gw), (est.intercepts_, gb)]:
        for P, G in zip(params, grads):
            fd = central_differences(lambda: est._loss_grad(X, Y)[0], P, eps=1e-6)
            np.testing.assert_allclose(G, fd, rtol=1e-6, atol=1e-8)


# ---- scikit-learn as an independent implementation of the same algorithm ---------------------
def _sklearn_from_weights(est, X, y, coefs, intercepts):
    """scikit-learn MLP trained from the given initial weights (fit once to create its state,
    then overwrite the weights and reset the bookkeeping; warm_start keeps them)."""
    est.set_params(warm_start=True, max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    est.coefs_ = [c.copy() for c in coefs]
    est.intercepts_ = [b.copy() for b in intercepts]
    est.loss_curve_, est.t_, est.best_loss_, est._no_improvement_count = [], 0, np.inf, 0
    return est


@quiet
@pytest.mark.parametrize("solver,shuffle,kw", [
    ("sgd", False, dict(momentum=0.0)),
    ("sgd", False, dict(momentum=0.9, nesterovs_momentum=True, alpha=1e-2)),
    ("sgd", True, dict(momentum=0.5, nesterovs_momentum=False, learning_rate="invscaling")),
    ("adam", True, dict(alpha=1e-3)),
])
@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_loss_curve_matches_sklearn_from_identical_weights(rng, solver, shuffle, kw, task):
    X, y = _clf_data(n=150, classes=2 if task == "binary" else 4)
    out = 1 if task == "binary" else 4
    widths = [X.shape[1], 9, 5, out]
    coefs = [rng.uniform(-0.5, 0.5, (a, b)) for a, b in zip(widths[:-1], widths[1:])]
    intercepts = [rng.uniform(-0.5, 0.5, b) for b in widths[1:]]
    common = dict(hidden_layer_sizes=(9, 5), activation="tanh", solver=solver, shuffle=shuffle,
                  batch_size=32, learning_rate_init=0.05, max_iter=5, tol=0.0,
                  n_iter_no_change=100, **kw)
    sk = _sklearn_from_weights(SkMLPClassifier(random_state=3, **common), X, y, coefs, intercepts)
    ours = _set_weights(MLPClassifier(random_state=3, **common), coefs, intercepts)
    # both draw their shuffles from a fresh RandomState(3) in fit
    sk.set_params(max_iter=5)
    sk.fit(X, y)
    ours.fit(X, y)
    np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-10, atol=1e-12)
    for a, b in zip(ours.coefs_ + ours.intercepts_, sk.coefs_ + sk.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)


@quiet
@pytest.mark.parametrize("kw", [dict(), dict(early_stopping=True, n_iter_no_change=3)])
def test_same_random_state_same_result_as_sklearn(kw):
    # same Glorot draws, shuffles and validation split as scikit-learn for one random_state
    X, y = _clf_data(n=200, classes=3)
    common = dict(hidden_layer_sizes=(16, 8), max_iter=15, random_state=0, **kw)
    ours = MLPClassifier(**common).fit(X, y)
    sk = SkMLPClassifier(**common).fit(X, y)
    np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-10)
    assert ours.validation_scores_ == sk.validation_scores_
    for a, b in zip(ours.coefs_, sk.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@quiet
def test_regressor_matches_sklearn_single_output():
    X, y = make_regression(n_samples=150, n_features=5, noise=0.1, random_state=0)
    y = y / y.std()
    common = dict(hidden_layer_sizes=(12,), solver="sgd", learning_rate="adaptive",
                  learning_rate_init=0.01, max_iter=12, random_state=1)
    ours = MLPRegressor(**common).fit(X, y)
    sk = SkMLPRegressor(**common).fit(X, y)
    np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(ours.predict(X), sk.predict(X), rtol=1e-9, atol=1e-12)


# ---- training behaviour ------------------------------------------------------------------------
@quiet
@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_float32_training_keeps_dtype(Est):
    X, y = _clf_data()
    X32 = X.astype(np.float32)
    est = Est(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X32, y)
    assert all(c.dtype == np.float32 for c in est.coefs_ + est.intercepts_)
    est64 = Est(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X, y)
    np.testing.assert_allclose(est.loss_curve_, est64.loss_curve_, rtol=1e-4)


@quiet
def test_bit_for_bit_reproducible_with_random_state():
    X, y = _clf_data(n=300)
    a = MLPClassifier(hidden_layer_sizes=(20, 10), max_iter=8, random_state=7).fit(X, y)
    b = MLPClassifier(hidden_layer_sizes=(20, 10), max_iter=8, random_state=7).fit(X, y)
    assert a.loss_curve_ == b.loss_curve_
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert np.array_equal(p, q)
    c = MLPClassifier(hidden_layer_sizes=(20, 10), max_iter=8, random_state=8).fit(X, y)
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])


def test_early_stopping_restores_best_weights():
    X, y = _clf_data(n=300, classes=3, seed=1)
    est = MLPClassifier(hidden_layer_sizes=(32,), early_stopping=True, validation_fraction=0.3,
                        n_iter_no_change=4, learning_rate_init=0.05, max_iter=200,
                        random_state=0).fit(X, y)
    scores = est.validation_scores_
    assert est.best_validation_score_ == max(scores)
    assert scores[-1] < max(scores)  # the last epoch is worse: restoring matters
    # recreate the validation split: the same RandomState draws the Glorot weights, then splits
    rs = check_random_state(0)
    for a, b in [(6, 32), (32, 3)]:
        bound = np.sqrt(6.0 / (a + b))
        rs.uniform(-bound, bound, (a, b))
        rs.uniform(-bound, bound, b)
    Y = est._label_binarizer.transform(y)
    _, X_val, _, Y_val = train_test_split(X, Y, random_state=rs, test_size=0.3)
    y_val = est._label_binarizer.inverse_transform(Y_val)
    assert est.score(X_val, y_val) == est.best_validation_score_ > scores[-1]


@quiet
def test_partial_fit_epochs_equal_fit():
    X, y = _clf_data(n=100)
    full = MLPClassifier(hidden_layer_sizes=(7,), max_iter=3, shuffle=False, random_state=0,
                         tol=0.0).fit(X, y)
    inc = MLPClassifier(hidden_layer_sizes=(7,), shuffle=False, random_state=0)
    for _ in range(3):
        inc.partial_fit(X, y, classes=np.unique(y))
    np.testing.assert_allclose(inc.loss_curve_, full.loss_curve_, rtol=1e-12)
    for a, b in zip(inc.coefs_, full.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_gradient_clipping_bounds_the_step():
    X, y = _clf_data(n=40)
    lr, max_norm = 0.1, 1e-3
    est = MLPRegressor(hidden_layer_sizes=(5,), solver="sgd", momentum=0.0, alpha=0.0,
                       batch_size=40, learning_rate_init=lr, max_grad_norm=max_norm,
                       random_state=0)
    est.partial_fit(X, y.astype(float))
    before = np.concatenate([p.ravel() for p in est.coefs_ + est.intercepts_]).copy()
    _, gw, gb = est._loss_grad(X, y.reshape(-1, 1).astype(float))
    gnorm = np.linalg.norm(np.concatenate([g.ravel() for g in gw + gb]))
    assert gnorm > 10 * max_norm
    est.partial_fit(X, y.astype(float))
    after = np.concatenate([p.ravel() for p in est.coefs_ + est.intercepts_])
    np.testing.assert_allclose(np.linalg.norm(after - before), lr * max_norm, rtol=1e-9)


def test_divergence_warns_and_keeps_finite_weights():
    X, y = make_regression(n_samples=100, n_features=5, random_state=0)
    est = MLPRegressor(hidden_layer_sizes=(50,), solver="sgd", learning_rate_init=1e6,
                       max_iter=50, random_state=0)
    with pytest.warns(DivergenceWarning, match="diverged"):
        est.fit(X, y * 1e3)
    assert all(np.isfinite(p).all() for p in est.coefs_ + est.intercepts_)
    assert np.isfinite(est.predict(X)).all()
    assert est.n_iter_ < 50


def test_convergence_warning_when_max_iter_reached():
    X, y = _clf_data()
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)


@quiet
def test_verbose_prints_one_line_per_epoch(capsys):
    X, y = _clf_data()
    MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, verbose=True, early_stopping=True,
                  n_iter_no_change=50, random_state=0).fit(X, y)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("Epoch")]
    assert len(lines) == 3
    assert all("loss = " in ln and "validation score = " in ln and "time = " in ln
               for ln in lines)


@quiet
def test_tasks_and_output_shapes():
    X, y = _clf_data(n=90, classes=3)
    clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0)
    assert clf.fit(X, y).predict_proba(X).shape == (90, 3)
    assert clf.out_activation_ == "softmax"
    np.testing.assert_allclose(clf.predict_proba(X).sum(axis=1), 1.0)
    yb = np.where(y == 1, "yes", "no")
    assert clf.fit(X, yb).predict_proba(X).shape == (90, 2)
    assert set(clf.predict(X)) <= {"yes", "no"} and clf.out_activation_ == "logistic"
    Y = np.c_[y == 0, y == 1, y == 2].astype(int)
    assert clf.fit(X, Y).predict(X).shape == (90, 3) and clf.n_outputs_ == 3
    reg = MLPRegressor(hidden_layer_sizes=(5,), max_iter=5, random_state=0)
    assert reg.fit(X, np.c_[y, -y]).predict(X).shape == (90, 2)
    assert reg.fit(X, y).predict(X).shape == (90,)
    assert MLPRegressor(hidden_layer_sizes=(), max_iter=5).fit(X, y).n_layers_ == 2


# ---- scikit-learn ecosystem -----------------------------------------------------------------
@quiet
def test_clone_pipeline_gridsearch_cross_val():
    X, y = _clf_data(n=150)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(8,), max_iter=30,
                                                         random_state=0))
    assert cross_val_score(pipe, X, y, cv=3).shape == (3,)
    grid = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-1]}, cv=2).fit(X, y)
    assert grid.best_params_["mlpclassifier__alpha"] in (1e-4, 1e-1)
    c = clone(pipe[-1])
    assert not hasattr(c, "coefs_") and c.get_params() == pipe[-1].get_params()


@quiet
@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_pickle_round_trip(Est):
    X, y = _clf_data()
    est = Est(hidden_layer_sizes=(6,), max_iter=5, random_state=0).fit(X, y)
    again = pickle.loads(pickle.dumps(est))
    assert np.array_equal(again.predict(X), est.predict(X))
    again.partial_fit(X, y)  # continues training after unpickling


# ---- bad input --------------------------------------------------------------------------------
@quiet
@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_bad_input_is_rejected_and_inputs_untouched(Est):
    X, y = _clf_data(n=40)
    X0, y0 = X.copy(), y.copy()
    est = Est(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    with pytest.raises(NotFittedError):
        est.predict(X)
    for bad in (np.where(np.arange(X.size).reshape(X.shape) == 3, np.nan, X),
                np.where(np.arange(X.size).reshape(X.shape) == 3, np.inf, X)):
        with pytest.raises(ValueError, match="NaN|infinity"):
            est.fit(bad, y)
    with pytest.raises(ValueError, match="2D|1D|dimension"):
        est.fit(X[:, 0], y)
    with pytest.raises(ValueError, match="dim 3|3D|dimension"):
        est.fit(X[:, :, None], y)
    with pytest.raises(ValueError, match="0 sample|empty"):
        est.fit(X[:0], y[:0])
    with pytest.raises(ValueError, match="inconsistent|samples"):
        est.fit(X, y[:-1])
    with pytest.raises(ValueError, match="dim 3|3D|dimension|shape"):
        est.fit(X, np.zeros((40, 2, 2)))
    with pytest.raises(ValueError, match="Complex"):
        est.fit(X + 1j, y)
    est.fit(X, y)
    with pytest.raises(ValueError, match="features"):
        est.predict(X[:, :-1])
    if Est is MLPRegressor:
        with pytest.raises(ValueError, match="NaN|infinity"):
            est.fit(X, np.where(np.arange(40) == 2, np.nan, y))
    assert np.array_equal(X, X0) and np.array_equal(y, y0)


def test_classifier_target_errors():
    X, y = _clf_data(n=40)
    with pytest.raises(ValueError, match="Unknown label type|continuous"):
        MLPClassifier().fit(X, X[:, 0])
    clf = MLPClassifier(hidden_layer_sizes=(3,))
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match=r"labels \[7\] that are not in classes_"):
        clf.partial_fit(X, np.where(y == 0, 7, y))


def test_bad_params_and_weights():
    X, y = _clf_data(n=40)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        MLPClassifier(hidden_layer_sizes=(3, 0)).fit(X, y)
    with pytest.raises(ValueError, match="learning_rate_init"):
        MLPClassifier(learning_rate_init=-1.0).fit(X, y)
    with pytest.raises(ValueError, match="max_grad_norm"):
        MLPClassifier(max_grad_norm=0.0).fit(X, y)
    est = _set_weights(MLPClassifier(hidden_layer_sizes=(3,)), [np.zeros((5, 3)),
                                                                   np.zeros((3, 3))],
                       [np.zeros(3), np.zeros(3)])
    with pytest.raises(ValueError, match=r"shape \(5, 3\), the architecture needs \(6, 3\)"):
        est.fit(X, y)


@quiet
@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("first,second", [(False, True), (True, False)])
def test_warm_start_switching_early_stopping(Est, first, second):
    # the stopping-rule bookkeeping of the first fit must not break a warm-started second fit
    # that uses the other rule (it used to raise TypeError / AttributeError on None)
    X, y = _clf_data(n=80)
    est = Est(hidden_layer_sizes=(4,), max_iter=3, early_stopping=first, random_state=0)
    est.fit(X, y)
    est.set_params(warm_start=True, early_stopping=second)
    est.fit(X, y)
    assert len(est.loss_curve_) == 6
    if second:
        assert len(est.validation_scores_) >= 3
        assert est.best_validation_score_ == max(est.validation_scores_)
    else:
        assert est.best_loss_ == min(est.loss_curve_[3:])


@quiet
@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_partial_fit_with_early_stopping_flag(Est):
    # partial_fit never holds out data: it uses the training-loss rule even when
    # early_stopping=True (it used to compare against best_loss_=None)
    X, y = _clf_data(n=60)
    est = Est(hidden_layer_sizes=(4,), early_stopping=True, random_state=0)
    kw = dict(classes=np.unique(y)) if Est is MLPClassifier else {}
    est.partial_fit(X, y, **kw)
    est.partial_fit(X, y)
    assert len(est.loss_curve_) == 2 and est.best_loss_ == min(est.loss_curve_)


@quiet
def test_gemm_row_blocking_matches_sklearn(monkeypatch):
    # Where OpenBLAS has its small-matrix GEMM path the layer products are split into row blocks
    # (weight gradients accumulated over blocks): the training must still be scikit-learn's.
    from fastseq._lib import blas_runtime as nn
    X, y = _clf_data(n=400, features=40)
    kw = dict(hidden_layer_sizes=(128, 64), max_iter=3, random_state=0, tol=0.0)
    sk = SkMLPClassifier(**kw).fit(X, y)
    for budget in (nn.SMALL_GEMM_MNK, 0):  # 40*128*200 and 128*64*200 exceed 100**3: blocked
        monkeypatch.setattr(nn, "gemm_block_mnk", lambda budget=budget: budget)
        ours = MLPClassifier(**kw).fit(X, y)
        np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-10)
        for a, b in zip(ours.coefs_ + ours.intercepts_, sk.coefs_ + sk.intercepts_):
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


def test_gemm_row_blocking_only_for_single_threaded_skylakex_openblas(monkeypatch):
    from fastseq._lib import blas_runtime as nn

    class FakeOpenBLAS:
        def __init__(self, architecture, threads):
            self.architecture, self.threads = architecture, threads

        def get_num_threads(self):
            return self.threads

    for lib, want in [(FakeOpenBLAS("SkylakeX", 1), nn.SMALL_GEMM_MNK),
                      (FakeOpenBLAS("SkylakeX", 4), 0), (FakeOpenBLAS("Haswell", 1), 0),
                      (FakeOpenBLAS(None, 1), 0), (None, 0)]:
        monkeypatch.setattr(nn, "scipy_openblas", lambda lib=lib: lib)
        assert nn.gemm_block_mnk() == want
