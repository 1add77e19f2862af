"""The training engine shared by fastseq's stochastic estimators (MLPs, recurrent networks,
``SGDRegressor``).

What lives here (Python orchestration only; every numerical loop is compiled in ``_mlp_fast.pyx``
and ``_sgd_fast.pyx``):

- ``FlatLayout``: all parameter tensors of a network packed in ONE contiguous buffer (weights
  first, then biases, so L2 decay applies to a prefix), with per-tensor views; gradients and
  optimizer state (SGD velocity, Adam moments) are buffers of the same layout, so an optimizer
  step is a single fused C loop over the whole network.
- ``OptimizerState``: those moment buffers and the Adam step count, with the fused step and the
  reset after divergence.
- ``ConvergenceMonitor``: the history and stopping state of one model (loss curve, validation
  scores, best loss/score, no-improvement count, epochs, samples seen, current rate), kept on the
  estimator between warm-started fits and ``partial_fit`` calls; the estimator's attributes are
  written from it once per run.
- ``EpochLoop``: scikit-learn's stochastic-solver epoch logic around an ``epoch`` callable — the
  ``tol``/``n_iter_no_change`` stopping rule, early stopping on a validation score (restoring the
  best weights when given them), the per-epoch schedule and the 'adaptive' rate, verbose lines,
  ``ConvergenceWarning`` — with the estimator-specific pieces (divergence policy, verbose format,
  objective, schedule) passed in as small objects or callables.
"""
import time
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions

from fastseq.neural_network import _mlp_fast as _nn

# Parameters every estimator trained by this engine shares, with scikit-learn MLP meanings.
TRAINING_PARAMETER_CONSTRAINTS = {
    "solver": [StrOptions({"sgd", "adam"})],
    "alpha": [Interval(Real, 0, None, closed="left")],
    "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
    "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
    "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
    "power_t": [Interval(Real, 0, None, closed="left")],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "shuffle": ["boolean"],
    "random_state": ["random_state"],
    "tol": [Interval(Real, 0, None, closed="left")],
    "verbose": ["verbose"],
    "warm_start": ["boolean"],
    "momentum": [Interval(Real, 0, 1, closed="both")],
    "nesterovs_momentum": ["boolean"],
    "early_stopping": ["boolean"],
    "beta_1": [Interval(Real, 0, 1, closed="left")],
    "beta_2": [Interval(Real, 0, 1, closed="left")],
    "epsilon": [Interval(Real, 0, None, closed="neither")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "max_grad_norm": [None, Interval(Real, 0, None, closed="neither")],
}


class DivergenceWarning(ConvergenceWarning):
    """Training produced a non-finite loss, gradient or weight and was stopped.

    The estimator keeps the (finite) weights of the epoch with the lowest training loss (with
    early stopping: the best validation epoch; the initial weights if no epoch completed);
    lower ``learning_rate_init`` or set ``max_grad_norm``.
    """


class FlatLayout:
    """Offsets of named parameter tensors inside one flat buffer.

    ``weight_shapes`` are packed first (they receive L2 decay: ``n_weights`` is the length of that
    prefix), then ``bias_shapes``. Views returned by :meth:`views` share memory with the buffer.
    """

    def __init__(self, weight_shapes, bias_shapes):
        self.weight_shapes = [tuple(int(d) for d in s) for s in weight_shapes]
        self.bias_shapes = [tuple(int(d) for d in s) for s in bias_shapes]
        sizes = [int(np.prod(s)) for s in self.weight_shapes + self.bias_shapes]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp)
        self.n_params = int(self.offsets[-1])
        self.n_weights = int(self.offsets[len(self.weight_shapes)])

    @property
    def weight_offsets(self):
        return np.ascontiguousarray(self.offsets[: len(self.weight_shapes)])

    @property
    def bias_offsets(self):
        k = len(self.weight_shapes)
        return np.ascontiguousarray(self.offsets[k : k + len(self.bias_shapes)])

    def views(self, buf):
        """(weights, biases): lists of views into ``buf``."""
        shapes = self.weight_shapes + self.bias_shapes
        out = [buf[self.offsets[i] : self.offsets[i + 1]].reshape(s) for i, s in enumerate(shapes)]
        k = len(self.weight_shapes)
        return out[:k], out[k:]

    def pack(self, weights, biases, dtype):
        """A new flat buffer holding copies of ``weights`` and ``biases`` (shapes checked)."""
        buf = np.empty(self.n_params, dtype=dtype)
        ws, bs = self.views(buf)
        if len(weights) != len(ws) or len(biases) != len(bs):
            raise ValueError(
                f"expected {len(ws)} weight matrices and {len(bs)} bias vectors, got "
                f"{len(weights)} and {len(biases)}")
        for dst, src, what in [(d, s, "coefs_") for d, s in zip(ws, weights)] + [
                (d, s, "intercepts_") for d, s in zip(bs, biases)]:
            src = np.asarray(src)
            if src.shape != dst.shape:
                raise ValueError(
                    f"{what} entry has shape {src.shape}, the architecture needs {dst.shape}")
            if not np.isfinite(src).all():
                raise ValueError(f"{what} contains NaN or infinity")
            dst[...] = src
        return buf


class OptimizerState:
    """SGD velocity or Adam moments of one flat parameter buffer, and the Adam step count.

    The moment buffers share the parameters' ``FlatLayout`` (same length and dtype), so a step is
    one call of the fused kernels ``_mlp_fast.sgd_step`` / ``adam_step`` over the whole network;
    the compiled MLP epoch (``_mlp_fast.train_epoch``) updates the same buffers in place and
    hands back the step count. The hyperparameters are read from the estimator by
    :meth:`configure` on every fit / partial_fit call (``set_params`` between ``partial_fit``
    calls takes effect, the moments carry over), as scikit-learn's solvers do.
    """

    def __init__(self, params):
        # SGD keeps its velocity in ``first_moment``; the second buffer is only read by Adam but
        # the compiled epoch takes both whichever solver runs.
        self.first_moment = np.zeros_like(params)
        self.second_moment = np.zeros_like(params)
        self.step_count = 0
        self.solver = "adam"
        self.momentum, self.nesterov = 0.9, True
        self.beta_1, self.beta_2, self.epsilon = 0.9, 0.999, 1e-8

    def matches(self, params):
        """Whether these buffers can continue training ``params`` (same length and dtype)."""
        return (self.first_moment.shape == params.shape
                and self.first_moment.dtype == params.dtype)

    def configure(self, est):
        """Take the solver and its hyperparameters from ``est`` (scikit-learn MLP names)."""
        self.solver = est.solver
        self.momentum, self.nesterov = est.momentum, est.nesterovs_momentum
        self.beta_1, self.beta_2, self.epsilon = est.beta_1, est.beta_2, est.epsilon
        return self

    def step(self, params, grads, n_decay, gscale, decay, lr):
        """One fused update of ``params`` in place; returns the kernel's status (0 = finite).

        ``gscale`` multiplies the gradient (clipping), ``decay`` is the L2 coefficient applied to
        the first ``n_decay`` entries (the weights of the layout).
        """
        if self.solver == "sgd":
            return _nn.sgd_step(params, self.first_moment, grads, n_decay, gscale, decay, lr,
                                self.momentum, self.nesterov)
        self.step_count += 1
        return _nn.adam_step(params, self.first_moment, self.second_moment, grads, n_decay,
                             gscale, decay, lr, self.beta_1, self.beta_2, self.epsilon,
                             self.step_count)

    def reset(self):
        """Forget the moments and the step count (after a step that produced non-finite
        values: the moments have seen it)."""
        self.first_moment[...] = 0
        self.second_moment[...] = 0
        self.step_count = 0


class ConvergenceMonitor:
    """History and stopping state of one model's stochastic training.

    Kept on the estimator between ``fit(warm_start=True)`` / ``partial_fit`` calls; the
    estimator's attributes (``loss_curve_``, ``best_loss_``, ...) are written from it by
    :meth:`publish` at the end of every run. ``None`` in ``best_loss`` /
    ``validation_scores`` / ``best_validation_score`` marks the rule the monitor was created
    for not using it (scikit-learn's convention); :meth:`begin` gives a rule its starting values
    when a later run switches rule.

    The stopping rule (scikit-learn's): an epoch improves when its objective drops by at least
    ``tol`` below the best so far (with a validation set: its score rises by at least ``tol``
    above the best so far); ``patience`` (a parameter of :class:`EpochLoop`) consecutive epochs
    without improvement meet the rule.
    """

    def __init__(self, *, early_stopping, learning_rate=None):
        self.loss_curve = []
        self.validation_scores = [] if early_stopping else None
        self.best_validation_score = -np.inf if early_stopping else None
        self.best_loss = None if early_stopping else np.inf
        self.no_improvement_count = 0
        self.n_iter = 0
        self.n_samples_seen = 0
        self.learning_rate = learning_rate

    def begin(self, early):
        """Starting values of the rule a run uses (``early``: the validation-score rule)."""
        if early:
            if self.validation_scores is None:
                self.validation_scores = []
            if self.best_validation_score is None:
                self.best_validation_score = -np.inf
        elif self.best_loss is None:
            self.best_loss = np.inf

    def restart_validation(self):
        """Drop the validation history (a new validation split makes old scores meaningless)."""
        self.validation_scores, self.best_validation_score = [], -np.inf

    def record_epoch(self, loss, n_samples):
        """A completed epoch: its mean training loss and the samples it trained on."""
        self.n_iter += 1
        self.n_samples_seen += n_samples
        self.loss_curve.append(loss)

    def record_objective(self, objective, tol):
        """Training-objective rule; updates the count and ``best_loss``."""
        if objective > self.best_loss - tol:
            self.no_improvement_count += 1
        else:
            self.no_improvement_count = 0
        self.best_loss = min(self.best_loss, objective)

    def record_score(self, score, tol):
        """Validation-score rule; returns whether ``score`` is a new best (strictly)."""
        self.validation_scores.append(score)
        if score < self.best_validation_score + tol:
            self.no_improvement_count += 1
        else:
            self.no_improvement_count = 0
        if score > self.best_validation_score:
            self.best_validation_score = score
            return True
        return False

    def publish(self, est, attributes):
        """Write the named estimator attributes from this history.

        The lists are the monitor's own, not copies: a stream of many ``partial_fit`` calls
        would otherwise copy the whole history on every call (read them, don't modify them).
        """
        values = {
            "loss_": self.loss_curve[-1] if self.loss_curve else np.nan,
            "loss_curve_": self.loss_curve,
            "best_loss_": self.best_loss,
            "validation_scores_": self.validation_scores,
            "best_validation_score_": self.best_validation_score,
            "n_iter_": self.n_iter,
            "t_": self.n_samples_seen,
            "_no_improvement_count": self.no_improvement_count,
        }
        for name in attributes:
            setattr(est, name, values[name])


# What a network estimator exposes (scikit-learn's MLP attributes).
NETWORK_ATTRIBUTES = ("loss_", "loss_curve_", "best_loss_", "validation_scores_",
                      "best_validation_score_", "n_iter_", "t_", "_no_improvement_count")


class AdaptiveRate:
    """The 'adaptive' schedule's reaction to a met stopping rule: divide the rate by
    ``factor`` and keep training, unless it is already at or below ``min_rate``."""

    def __init__(self, factor=5.0, min_rate=1e-6):
        self.factor, self.min_rate = factor, min_rate

    def lower(self, lr):
        """The next rate, or None to stop."""
        return lr / self.factor if lr > self.min_rate else None


class NetworkReport:
    """scikit-learn MLP's verbose lines."""

    def __init__(self, verbose, tol, n_iter_no_change):
        self.verbose, self.tol, self.n_iter_no_change = verbose, tol, n_iter_no_change

    def epoch(self, monitor, loss, early, tic, lr):
        if self.verbose:
            val = (f", validation score = {monitor.validation_scores[-1]:.6f}" if early else "")
            print(f"Epoch {monitor.n_iter}, loss = {loss:.8f}{val}, "
                  f"time = {time.perf_counter() - tic:.3f}s")

    def _no_change(self, early):
        what = "Validation score" if early else "Training loss"
        return (f"{what} did not improve more than tol={self.tol:f} for "
                f"{self.n_iter_no_change} consecutive epochs.")

    def rate_lowered(self, monitor, early, lr):
        if self.verbose:
            print(self._no_change(early) + f" Setting learning rate to {lr:f}")

    def stopped(self, monitor, early):
        if self.verbose:
            print(self._no_change(early) + " Stopping.")


class KeepLowestLossWeights:
    """Network divergence policy: warn, and fall back to the weights of the epoch with the
    lowest training loss of the run (the epoch itself already restored its starting weights;
    a slow blow-up passes through huge but finite ones, hence not simply the last epoch's).
    With early stopping the loop restores the best validation epoch instead."""

    def __init__(self, params):
        self.params = params
        self.lowest_loss, self.lowest_params = np.inf, None

    def epoch_done(self, loss, early):
        if early or not loss < self.lowest_loss:
            return
        self.lowest_loss = loss
        if self.lowest_params is None:
            self.lowest_params = self.params.copy()
        else:
            self.lowest_params[...] = self.params

    def diverged(self, monitor, early, detail):
        if self.lowest_params is not None and not early:
            self.params[...] = self.lowest_params
        warnings.warn(
            f"Training diverged in epoch {monitor.n_iter + 1}: a non-finite loss, gradient or "
            "weight appeared. Training stopped and kept the weights of the epoch with the "
            "lowest training loss (the initial weights if none completed). Lower "
            "learning_rate_init, or set max_grad_norm to clip gradients.", DivergenceWarning)


class EpochLoop:
    """The epoch loop of every stochastic estimator: run epochs, keep the monitor's history,
    apply the stopping rule and the rate policy, handle divergence, publish the attributes.

    Parameters
    ----------
    monitor : ConvergenceMonitor
        History and rule state; updated in place.
    run_epoch : callable ``lr -> (ok, value)``
        Trains one epoch at rate ``lr``; ``(True, mean_loss)``, or ``(False, detail)`` when the
        epoch diverged, after restoring its starting weights (``detail`` goes to the policy).
    tol, patience : float, int
        The stopping rule (see :class:`ConvergenceMonitor`); ``patience=None`` disables it (no
        best tracking either).
    samples_per_epoch : int
        Added to ``monitor.n_samples_seen`` per completed epoch.
    params : ndarray or None
        The flat weights; with ``validation`` the best validation epoch's copy is restored.
    validation : callable or None
        ``() -> score`` of the current weights on held-out data: switches to the score rule.
    objective : callable or None
        ``mean_loss -> value`` compared by the loss rule (default: the loss itself).
    schedule : callable or None
        ``monitor -> lr`` after every epoch (e.g. 'invscaling'); None keeps the rate.
    adaptive : AdaptiveRate or None
        What a met rule does to the rate; None: a met rule stops.
    divergence : object
        ``diverged(monitor, early, detail)``, called when an epoch diverged (warn and keep
        going to the end of the run, or raise), and optionally ``epoch_done(loss, early)``
        after every completed epoch (e.g. to remember the weights to fall back to).
    report : object
        ``epoch(monitor, loss, early, tic, lr)``, ``rate_lowered(monitor, early, lr)`` and
        ``stopped(monitor, early)``: the verbose output.
    max_iter_warning : str or None
        ConvergenceWarning issued when a non-incremental run uses all its epochs without
        meeting the rule.
    """

    def __init__(self, monitor, run_epoch, *, tol, patience, samples_per_epoch=0, params=None,
                 validation=None, objective=None, schedule=None, adaptive=None,
                 divergence, report, max_iter_warning=None):
        self.monitor = monitor
        self.run_epoch = run_epoch
        self.tol, self.patience = tol, patience
        self.samples_per_epoch = samples_per_epoch
        self.params = params
        self.validation = validation
        self.objective = objective
        self.schedule = schedule
        self.adaptive = adaptive
        self.divergence = divergence
        self.report = report
        self.max_iter_warning = max_iter_warning

    def run(self, max_epochs, *, restart_count, publish_to=None, attributes=()):
        """Run up to ``max_epochs`` epochs; returns True if training diverged.

        ``restart_count``: count ``n_iter`` from 0 (a fit) instead of continuing it. The named
        ``attributes`` of ``publish_to`` are written once, when the run ends (also when it
        ends by an exception, so the attributes always describe the weights the model has).
        """
        try:
            return self._run(max_epochs, restart_count)
        finally:
            if publish_to is not None:
                self.monitor.publish(publish_to, attributes)

    def _run(self, max_epochs, restart_count):
        monitor = self.monitor
        early = self.validation is not None
        rule = self.patience is not None
        if rule:
            monitor.begin(early)
        # with a validation set and weights to restore, the best validation epoch's weights
        # (they start as the run's starting weights)
        restore_best = early and self.params is not None
        best_params = self.params.copy() if restore_best else None
        if restart_count:
            monitor.n_iter = 0
        on_epoch = getattr(self.divergence, "epoch_done", None)
        diverged = False
        for _ in range(max_epochs):
            tic = time.perf_counter()
            lr = monitor.learning_rate
            ok, value = self.run_epoch(lr)
            if not ok:
                diverged = True
                self.divergence.diverged(monitor, early, value)
                break
            loss = value
            monitor.record_epoch(loss, self.samples_per_epoch)
            if on_epoch is not None:
                on_epoch(loss, early)
            if rule and early:
                if monitor.record_score(float(self.validation()), self.tol) and restore_best:
                    best_params[...] = self.params
            elif rule:
                monitor.record_objective(
                    loss if self.objective is None else self.objective(loss), self.tol)
            self.report.epoch(monitor, loss, early, tic, lr)
            if self.schedule is not None:
                monitor.learning_rate = self.schedule(monitor)
            if rule and monitor.no_improvement_count >= self.patience:
                lowered = None if self.adaptive is None else self.adaptive.lower(
                    monitor.learning_rate)
                if lowered is not None:
                    monitor.learning_rate = lowered
                    monitor.no_improvement_count = 0
                    self.report.rate_lowered(monitor, early, lowered)
                else:
                    self.report.stopped(monitor, early)
                    break
            if self.max_iter_warning is not None and monitor.n_iter == max_epochs:
                warnings.warn(self.max_iter_warning, ConvergenceWarning)
        if restore_best and np.isfinite(monitor.best_validation_score):
            self.params[...] = best_params
        return diverged


def network_epoch_loop(est, monitor, params, run_epoch, n_train, validation, incremental):
    """Run the loop with the networks' policies (scikit-learn MLP semantics) and publish.

    ``est`` supplies the sklearn-named parameters; ``validation`` is None or a callable scoring
    the current weights on the held-out data; ``incremental`` (``partial_fit``): one epoch,
    ``n_iter_`` continues, no max_iter warning. Returns True if training diverged.
    """
    schedule = None
    adaptive = None
    if est.solver == "sgd" and est.learning_rate == "invscaling":
        lr_init, power_t = est.learning_rate_init, est.power_t

        def schedule(m):
            # lr = lr_init / (samples seen + 1) ** power_t, after every epoch
            return lr_init / (m.n_samples_seen + 1) ** power_t
    elif est.solver == "sgd" and est.learning_rate == "adaptive":
        adaptive = AdaptiveRate()
    max_epochs = 1 if incremental else est.max_iter
    loop = EpochLoop(
        monitor, run_epoch, tol=est.tol,
        # scikit-learn's MLP stops when the count EXCEEDS n_iter_no_change
        patience=est.n_iter_no_change + 1, samples_per_epoch=n_train, params=params,
        validation=validation, schedule=schedule, adaptive=adaptive,
        divergence=KeepLowestLossWeights(params),
        report=NetworkReport(est.verbose, est.tol, est.n_iter_no_change),
        max_iter_warning=None if incremental else (
            f"Stochastic Optimizer: Maximum iterations ({est.max_iter}) reached and the "
            "optimization hasn't converged yet."))
    return loop.run(max_epochs, restart_count=not incremental, publish_to=est,
                    attributes=NETWORK_ATTRIBUTES)
