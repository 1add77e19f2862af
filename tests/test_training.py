"""The training engine (``fastseq.neural_network._training``) on its own: the monitor's stopping
rules, early stopping, the adaptive rate and divergence, driven by scripted epochs whose outcome
is worked out by hand; the optimizer state against scikit-learn's own optimizers; partial_fit
continuity against scikit-learn's MLP and the schedule's step count."""
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer

from fastseq import MLPRegressor, SGDRegressor
from fastseq._lib.epoch_loop import AdaptiveRate, ConvergenceMonitor, EpochLoop
from fastseq.neural_network import DivergenceWarning
from fastseq.neural_network._training import (
    NETWORK_ATTRIBUTES,
    KeepLowestLossWeights,
    NetworkReport,
    OptimizerState,
    network_epoch_loop,
)


class Scripted:
    """An epoch that sets every weight to the epoch's number (1-based) and returns the next
    loss of a script; a ``None`` in the script is a diverged epoch. Records the rates."""

    def __init__(self, params, losses):
        self.params, self.losses, self.rates = params, list(losses), []

    def __call__(self, lr):
        self.rates.append(lr)
        loss = self.losses[len(self.rates) - 1]
        if loss is None:
            return False, None
        self.params[...] = len(self.rates)
        return True, loss


def _loop(monitor, epoch, params, *, tol, patience, validation=None, adaptive=None,
          samples_per_epoch=10):
    return EpochLoop(monitor, epoch, tol=tol, patience=patience,
                     samples_per_epoch=samples_per_epoch, params=params, validation=validation,
                     adaptive=adaptive, divergence=KeepLowestLossWeights(params),
                     report=NetworkReport(False, tol, patience))


# ---- the loss rule ----------------------------------------------------------------------------
def test_loss_rule_stops_after_patience_epochs_without_a_tol_improvement():
    # tol 0.1, patience 3, worked by hand (improvement = loss <= best - tol):
    # 1.0 (best inf: improves) | 0.5 (<= 0.9: improves) | 0.45 (> 0.4: 1) | 0.46 (2) |
    # 0.449 (3: stop). Later epochs must not run.
    params = np.zeros(3)
    epoch = Scripted(params, [1.0, 0.5, 0.45, 0.46, 0.449, 0.1, 0.1])
    monitor = ConvergenceMonitor(early_stopping=False, learning_rate=0.1)
    est = SimpleNamespace()
    diverged = _loop(monitor, epoch, params, tol=0.1, patience=3).run(
        100, restart_count=True, publish_to=est, attributes=NETWORK_ATTRIBUTES)
    assert not diverged
    assert monitor.n_iter == 5 and len(epoch.rates) == 5
    assert monitor.loss_curve == [1.0, 0.5, 0.45, 0.46, 0.449]
    assert monitor.best_loss == 0.449 and monitor.no_improvement_count == 3
    assert monitor.n_samples_seen == 50
    # attributes are published from the history
    assert est.loss_curve_ == monitor.loss_curve
    assert (est.loss_, est.best_loss_, est.n_iter_, est.t_) == (0.449, 0.449, 5, 50)
    assert est.validation_scores_ is None and est.best_validation_score_ is None
    assert np.all(params == 5)  # no early stopping: the last weights are kept


@pytest.mark.parametrize("learning_rate", ["constant", "adaptive"])
def test_network_rule_replays_sklearn_mlp_stopping(learning_rate):
    # scikit-learn's MLP on a problem it stops early on; replaying its loss curve through our
    # loop with the same parameters must stop at the same epoch with the same bookkeeping and,
    # for 'adaptive', the same final learning rate.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 3))
    y = X @ [1.0, -1.0, 0.5]
    sk = SkMLPRegressor(hidden_layer_sizes=(4,), solver="sgd", learning_rate=learning_rate,
                        learning_rate_init=0.05, tol=1e-3, n_iter_no_change=3, max_iter=300,
                        random_state=0).fit(X, y)
    assert sk.n_iter_ < 300  # it met the rule
    params = np.zeros(2)
    est = SimpleNamespace(solver="sgd", learning_rate=learning_rate, learning_rate_init=0.05,
                          power_t=0.5, max_iter=300, tol=1e-3, n_iter_no_change=3, verbose=False)
    monitor = ConvergenceMonitor(early_stopping=False, learning_rate=0.05)
    epoch = Scripted(params, list(sk.loss_curve_) + [0.0] * 10)
    network_epoch_loop(est, monitor, params, epoch, 60, None, incremental=False)
    assert est.n_iter_ == sk.n_iter_ and est.loss_curve_ == list(sk.loss_curve_)
    assert est.best_loss_ == sk.best_loss_ and est.t_ == sk.t_
    assert est._no_improvement_count == sk._no_improvement_count
    assert monitor.learning_rate == sk._optimizer.learning_rate


def test_sgd_patience_counts_n_iter_no_change_epochs():
    # SGDRegressor's rule stops once the count REACHES n_iter_no_change (the networks' once it
    # exceeds it): with a constant loss and tol=0.1 the first epoch improves (from inf), so
    # n_iter_no_change=4 stops after 1 + 4 epochs. (With tol=0 an equal loss improves.)
    params = np.zeros(1)
    for patience, expected in [(4, 5), (4 + 1, 6)]:
        monitor = ConvergenceMonitor(early_stopping=False, learning_rate=0.1)
        _loop(monitor, Scripted(params, [2.0] * 20), params, tol=0.1,
              patience=patience).run(20, restart_count=True)
        assert monitor.n_iter == expected


# ---- early stopping ---------------------------------------------------------------------------
def test_early_stopping_restores_the_best_validation_epoch():
    # scores per epoch, tol 0.01, patience 3 (improvement = score >= best + tol):
    # 0.1 improves, 0.5 improves (best, epoch 2), 0.505 (< 0.51: 1, but a new best: epoch 3),
    # 0.45 (2), 0.3 (3: stop). The weights of epoch 3 (strictly highest score) come back.
    params = np.zeros(4)
    scores = iter([0.1, 0.5, 0.505, 0.45, 0.3, 0.9])
    monitor = ConvergenceMonitor(early_stopping=True, learning_rate=0.1)
    epoch = Scripted(params, [5.0, 4.0, 3.0, 2.0, 1.0, 0.5])
    est = SimpleNamespace()
    _loop(monitor, epoch, params, tol=0.01, patience=3, validation=lambda: next(scores)).run(
        50, restart_count=True, publish_to=est, attributes=NETWORK_ATTRIBUTES)
    assert est.n_iter_ == 5 and est.validation_scores_ == [0.1, 0.5, 0.505, 0.45, 0.3]
    assert est.best_validation_score_ == 0.505 and est.best_loss_ is None
    assert np.all(params == 3)


def test_early_stopping_without_an_improving_epoch_keeps_the_starting_weights():
    params = np.full(2, -1.0)
    monitor = ConvergenceMonitor(early_stopping=True)
    monitor.learning_rate = 0.1
    monitor.best_validation_score = 0.8  # from an earlier (warm-started) run
    _loop(monitor, Scripted(params, [1.0] * 5), params, tol=0.0, patience=2,
          validation=lambda: 0.5).run(5, restart_count=True)
    assert monitor.n_iter == 2 and np.all(params == -1.0)


# ---- the adaptive rate ------------------------------------------------------------------------
def test_adaptive_rate_divides_by_five_until_below_threshold():
    # constant loss, tol 0.1, patience 2: epoch 1 improves (from inf), every 2 further epochs meet
    # the rule: 1e-4 -> 2e-5 -> 4e-6 -> 8e-7, and 8e-7 <= 1e-6 stops instead of dividing.
    params = np.zeros(1)
    epoch = Scripted(params, [1.0] * 50)
    monitor = ConvergenceMonitor(early_stopping=False, learning_rate=1e-4)
    _loop(monitor, epoch, params, tol=0.1, patience=2, adaptive=AdaptiveRate()).run(
        50, restart_count=True)
    expected = [1e-4] * 3 + [1e-4 / 5] * 2 + [1e-4 / 5 / 5] * 2 + [1e-4 / 5 / 5 / 5] * 2
    assert epoch.rates == expected and monitor.n_iter == 9
    assert monitor.learning_rate == expected[-1]


def test_adaptive_rate_object():
    rate = AdaptiveRate(factor=5.0, min_rate=1e-6)
    assert rate.lower(1.0) == 0.2 and rate.lower(1e-6) is None and rate.lower(5e-7) is None


# ---- divergence -------------------------------------------------------------------------------
def test_divergence_keeps_the_lowest_loss_weights_and_warns():
    params = np.zeros(3)
    epoch = Scripted(params, [3.0, 1.0, 2.0, None, 0.5])
    monitor = ConvergenceMonitor(early_stopping=False, learning_rate=0.1)
    est = SimpleNamespace()
    with pytest.warns(DivergenceWarning, match="diverged in epoch 4"):
        diverged = _loop(monitor, epoch, params, tol=0.0, patience=100).run(
            10, restart_count=True, publish_to=est, attributes=NETWORK_ATTRIBUTES)
    assert diverged and est.n_iter_ == 3 and est.loss_curve_ == [3.0, 1.0, 2.0]
    assert np.all(params == 2)  # epoch 2 had the lowest loss


def test_divergence_policy_that_raises_still_publishes_the_history():
    class Raise:
        def diverged(self, monitor, early, detail):
            raise ValueError(f"diverged in epoch {monitor.n_iter + 1}: {detail}")

    calls = iter([(True, 4.0), (True, 3.0), (False, "boom")])
    monitor = ConvergenceMonitor(early_stopping=False, learning_rate=0.1)
    est = SimpleNamespace()
    loop = EpochLoop(monitor, lambda lr: next(calls), tol=0.0, patience=None,
                     divergence=Raise(), report=NetworkReport(False, 0.0, 1))
    with pytest.raises(ValueError, match="diverged in epoch 3: boom"):
        loop.run(10, restart_count=True, publish_to=est, attributes=("loss_curve_", "n_iter_"))
    assert est.loss_curve_ == [4.0, 3.0] and est.n_iter_ == 2


def test_max_iter_warning_only_when_the_rule_was_not_met():
    params = np.zeros(1)
    for losses, warns in [([3.0, 2.0, 1.0], True), ([1.0, 1.0, 1.0], False)]:
        monitor = ConvergenceMonitor(early_stopping=False, learning_rate=0.1)
        loop = _loop(monitor, Scripted(params, losses), params, tol=0.1, patience=2)
        loop.max_iter_warning = "max_iter reached"
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            loop.run(3, restart_count=True)
        assert [str(w.message) for w in record] == (["max_iter reached"] if warns else [])
        assert all(w.category is ConvergenceWarning for w in record)


def test_sgd_regressor_divergence_restores_and_raises(rng):
    X = rng.normal(size=(80, 3)) * 10
    y = X @ [1.0, 2.0, 3.0]
    reg = SGDRegressor(learning_rate="constant", eta0=5.0, random_state=0)
    with pytest.raises(ValueError, match=r"diverged in epoch 1: .*eta0=5.0"):
        reg.fit(X, y)
    # the starting weights of the diverged epoch (zeros), nothing recorded
    assert np.all(reg.coef_ == 0) and reg.loss_curve_ == [] and reg.n_iter_ == 0


# ---- optimizer state --------------------------------------------------------------------------
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_optimizer_state_steps_like_sklearn_and_reset_forgets(rng, solver):
    shapes = [(3, 2), (2,)]
    sizes = [int(np.prod(s)) for s in shapes]
    params = rng.normal(size=sum(sizes))
    grads = [rng.normal(size=sum(sizes)) for _ in range(3)]
    hyper = SimpleNamespace(solver=solver, momentum=0.8, nesterovs_momentum=True, beta_1=0.9,
                            beta_2=0.99, epsilon=1e-8)
    state = OptimizerState(params).configure(hyper)
    ours = params.copy()
    theirs = [p.copy() for p in np.split(params, np.cumsum(sizes)[:-1])]
    if solver == "sgd":
        sk = SGDOptimizer(theirs, learning_rate_init=0.05, momentum=0.8, nesterov=True)
    else:
        sk = AdamOptimizer(theirs, learning_rate_init=0.05, beta_1=0.9, beta_2=0.99,
                           epsilon=1e-8)
    for g in grads:
        assert state.step(ours, g, 0, 1.0, 0.0, 0.05) == 0
        sk.update_params(theirs, np.split(g, np.cumsum(sizes)[:-1]))
    np.testing.assert_allclose(ours, np.concatenate([p.ravel() for p in theirs]), rtol=1e-12)
    assert state.step_count == (3 if solver == "adam" else 0)

    # after reset, a step is exactly the first step of a fresh state
    state.reset()
    assert state.step_count == 0 and not state.first_moment.any()
    assert not state.second_moment.any()
    fresh = OptimizerState(params).configure(hyper)
    a, b = ours.copy(), ours.copy()
    state.step(a, grads[0], 0, 1.0, 0.0, 0.05)
    fresh.step(b, grads[0], 0, 1.0, 0.0, 0.05)
    assert np.array_equal(a, b)


def test_optimizer_state_matches_layout():
    state = OptimizerState(np.zeros(5))
    assert state.matches(np.ones(5)) and not state.matches(np.ones(6))
    assert not state.matches(np.ones(5, dtype=np.float32))


# ---- partial_fit continuity -------------------------------------------------------------------
def test_incremental_runs_continue_the_history_and_rate():
    # three one-epoch runs = one three-epoch run, for the history, the counters and the
    # adaptive rate (patience 1: the rate drops after each non-improving epoch)
    params = np.zeros(1)
    losses = [1.0, 1.0, 1.0]
    whole = ConvergenceMonitor(early_stopping=False, learning_rate=0.5)
    _loop(whole, Scripted(params, losses), params, tol=0.1, patience=1,
          adaptive=AdaptiveRate()).run(3, restart_count=True)
    pieces = ConvergenceMonitor(early_stopping=False, learning_rate=0.5)
    for loss in losses:
        _loop(pieces, Scripted(params, [loss]), params, tol=0.1, patience=1,
              adaptive=AdaptiveRate()).run(1, restart_count=False)
    for name in ["loss_curve", "n_iter", "n_samples_seen", "best_loss", "no_improvement_count",
                 "learning_rate"]:
        assert getattr(pieces, name) == getattr(whole, name), name
    assert whole.learning_rate == 0.5 / 5 / 5


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_mlp_partial_fit_sequence_matches_sklearn(solver):
    # same initial draws (random_state), no shuffling: each partial_fit is one epoch that
    # continues the optimizer state; scikit-learn's MLP is the oracle
    rng = np.random.RandomState(1)
    X = rng.normal(size=(90, 4))
    y = np.tanh(X @ [1.0, -0.5, 0.3, 0.0])
    kw = {"hidden_layer_sizes": (5,), "solver": solver, "learning_rate_init": 0.01,
          "shuffle": False, "random_state": 0, "batch_size": 30}
    ours, theirs = MLPRegressor(**kw), SkMLPRegressor(**kw)
    for start in [0, 30, 60, 0]:
        ours.partial_fit(X[start:start + 30], y[start:start + 30])
        theirs.partial_fit(X[start:start + 30], y[start:start + 30])
    # n_iter_ accumulates over partial_fit calls here (scikit-learn 1.9's MLP reports 1 per call)
    assert ours.n_iter_ == 4 and ours.t_ == theirs.t_ == 120
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    assert ours.best_loss_ == min(ours.loss_curve_)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_sgd_partial_fit_continues_the_schedule_clock(rng):
    # t_ counts weight updates + 1 across calls: ceil(n_i / batch_size) per call
    X = rng.normal(size=(50, 3))
    y = X @ [1.0, 0.0, -1.0]
    reg = SGDRegressor(batch_size=8, random_state=0)
    for n in [50, 17, 8]:
        reg.partial_fit(X[:n], y[:n])
    assert reg.t_ == 1 + 7 + 3 + 1 and reg.n_iter_ == 1 and len(reg.loss_curve_) == 3
    reg.fit(X, y)  # fit restarts the clock and the history
    assert reg.t_ == 1 + 7 * reg.n_iter_ and len(reg.loss_curve_) == reg.n_iter_
