"""The epoch loop shared by every stochastic estimator (MLPs, recurrent networks,
``SGDRegressor``): scikit-learn's stochastic-solver bookkeeping as two objects.

- ``ConvergenceMonitor``: the history and stopping state of one model (loss curve, validation
  scores, best loss/score, no-improvement count, epochs, samples seen, current rate), kept on the
  estimator between warm-started fits and ``partial_fit`` calls; the estimator's attributes are
  written from it once per run.
- ``EpochLoop``: the epoch logic around an ``epoch`` callable -- the ``tol``/``n_iter_no_change``
  stopping rule, early stopping on a validation score (restoring the best weights when given
  them), the per-epoch schedule and the 'adaptive' rate (``AdaptiveRate``), verbose lines,
  ``ConvergenceWarning`` -- with the estimator-specific pieces (divergence policy, verbose
  format, objective, schedule) passed in as small objects or callables.
"""
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning


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


class AdaptiveRate:
    """The 'adaptive' schedule's reaction to a met stopping rule: divide the rate by
    ``factor`` and keep training, unless it is already at or below ``min_rate``."""

    def __init__(self, factor=5.0, min_rate=1e-6):
        self.factor, self.min_rate = factor, min_rate

    def lower(self, lr):
        """The next rate, or None to stop."""
        return lr / self.factor if lr > self.min_rate else None


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
