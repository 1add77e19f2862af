"""Mini-batch stochastic gradient descent for linear least squares: `SGDRegressor`.

The epoch (mini-batch residuals and gradient steps through BLAS or the CSR kernel, the L2
shrinkage, the learning-rate schedule, ASGD averaging) runs in compiled code without the GIL
(`fastseq.linear_model._sgd_fast`); this module validates, draws the permutation of each epoch, and
runs the epochs on the training engine shared with the networks
(`fastseq._lib.epoch_loop.EpochLoop`: stopping on `tol`, early stopping on a validation
split, the 'adaptive' rate), with its own divergence policy and verbose lines.
"""
import time
import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.model_selection import ShuffleSplit
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from fastseq._lib import _status
from fastseq._lib.epoch_loop import AdaptiveRate, ConvergenceMonitor, EpochLoop
from fastseq._lib.validation import check_blas_dims, check_csr_structure
from fastseq.linear_model import _sgd_fast as _sgd

__all__ = ["SGDRegressor"]

_SCHEDULES = {
    "constant": _sgd.SCHEDULE_CONSTANT,
    "adaptive": _sgd.SCHEDULE_CONSTANT,  # the current rate is driven from here, per epoch
    "optimal": _sgd.SCHEDULE_OPTIMAL,
    "invscaling": _sgd.SCHEDULE_INVSCALING,
}
# An epoch whose mean training loss exceeds this multiple of the reference loss (the larger of
# the zero model's loss and the loss at the weights this fit/partial_fit call started from) is
# treated as divergence: a convergent SGD run overshoots by a few orders of magnitude at most.
_EXPLOSION_FACTOR = 1e8
# 'adaptive': divide the rate by 5 after n_iter_no_change epochs without improvement, stop once
# it would go below this (sklearn's rule).
_ADAPTIVE_MIN_ETA = 1e-6


class _StepCounters:
    """The compiled epoch's counters: ``t`` (weight updates + 1, the schedule's clock, exposed
    as ``t_``), ``n_seen`` (samples seen: averaging starts from it) and ``n_avg`` (iterates in
    the running mean). They continue across partial_fit calls; fit restarts them."""

    def __init__(self):
        self.t, self.n_seen, self.n_avg = 1.0, 0, 0


class _DivergencePolicy:
    """SGDRegressor's divergence rule for one fit / partial_fit call.

    An epoch diverged when the kernel reports a non-finite value, or when its mean loss exceeds
    ``_EXPLOSION_FACTOR`` times the reference loss: the larger of the zero model's loss and the
    first batch's loss of the call (fixed by the call's first epoch). The epoch restores its
    starting weights; :meth:`diverged` publishes them and raises a ValueError naming the rate.
    """

    def __init__(self, est, Y, sample_weight):
        self.est = est
        # loss of the zero model, 0.5 mean(s ||y||^2)
        self.zero_model_loss = 0.5 * float(np.mean(
            sample_weight.astype(np.float64) * np.sum(Y.astype(np.float64) ** 2, axis=1)))
        self.reference = None

    def check(self, status, mean_loss, first_loss):
        """The epoch's status with the explosion test applied (-1: exploded)."""
        if status == 0:
            if self.reference is None:
                self.reference = max(self.zero_model_loss, first_loss,
                                     float(np.finfo(self.est._coef_dtype).tiny))
            if mean_loss > _EXPLOSION_FACTOR * self.reference:
                status = -1
        return status

    def diverged(self, monitor, early, detail):
        est = self.est
        status, mean_loss = detail
        est._publish()
        if status == -1:
            reason = (f"the mean training loss exploded to {mean_loss:.3g} (from "
                      f"{self.reference:.3g})")
        elif status == _status.ERR_NONFINITE:
            reason = "the loss or coefficients became non-finite"
        else:
            reason = _status.status_message(int(status))
        rate = ("eta = 1 / (alpha (t0 + t))" if est.learning_rate == "optimal"
                else f"eta0={est.eta0}")
        raise ValueError(
            f"SGDRegressor diverged in epoch {monitor.n_iter + 1}: {reason} with learning_rate="
            f"'{est.learning_rate}' ({rate}), batch_size={est.batch_size}. The coefficients "
            f"were restored to their last finite values (start of that epoch). Use a smaller "
            f"eta0 and/or scale the features (e.g. StandardScaler).")


class _Report:
    """SGDRegressor's verbose lines (times from ``start_time``; None: from the print)."""

    def __init__(self, est, start_time=None):
        self.est, self.start_time = est, start_time

    def _elapsed(self):
        now = time.perf_counter()
        return now - (now if self.start_time is None else self.start_time)

    def epoch(self, monitor, loss, early, tic, eta):
        est = self.est
        if est.verbose:
            coef, intercept = est._current_coef()
            print(f"-- Epoch {monitor.n_iter}: Norm: {np.linalg.norm(coef):.4g}, Bias: "
                  f"{np.array2string(intercept, precision=4)}, T: {int(est._counters.t) - 1}, "
                  f"eta: {eta:.3g}, Avg. loss: {loss:.6g}, time: {self._elapsed():.2f} s")

    def rate_lowered(self, monitor, early, eta):
        pass

    def stopped(self, monitor, early):
        if self.est.verbose:
            print(f"Convergence after {monitor.n_iter} epochs took {self._elapsed():.2f} seconds")


def _optimal_t0(alpha):
    """t0 of sklearn's 'optimal' schedule for the squared loss (Bottou's heuristic): the
    typical weight typw = sqrt(1 / sqrt(alpha)) gives eta0 = typw and t0 = 1 / (eta0 alpha)."""
    return 1.0 / (float(np.sqrt(1.0 / np.sqrt(alpha))) * alpha)


class SGDRegressor(RegressorMixin, BaseEstimator):
    """Linear least squares fitted by mini-batch stochastic gradient descent.

    Minimises ``(1/n) sum_i 0.5 s_i ||W x_i + b - y_i||^2 + 0.5 alpha ||W||^2`` (``s_i`` the
    sample weights) with mini-batch SGD: each step uses the mean gradient of ``batch_size``
    samples. With ``batch_size=1`` the updates are scikit-learn's ``SGDRegressor`` updates
    (squared error, L2). The epoch runs in compiled code (BLAS on the batch rows for dense input,
    a sparse kernel for CSR input) with the GIL released. Multi-output ``y`` is supported.

    Parameters
    ----------
    loss : {"squared_error"}, default="squared_error"
        Only the squared error is implemented.
    penalty : {"l2"} or None, default="l2"
        ``"l2"`` adds ``0.5 * alpha * ||W||^2`` (not the intercept). ``"l1"``/``"elasticnet"``
        are not implemented.
    alpha : float, default=1e-4
        Strength of the L2 penalty; also sets the ``"optimal"`` learning rate.
    fit_intercept : bool, default=True
        Whether to learn an intercept.
    max_iter : int, default=1000
        Maximum number of epochs (passes over the training data) in `fit`.
    tol : float or None, default=1e-3
        Training stops after ``n_iter_no_change`` consecutive epochs in which the objective
        (mean training loss over the epoch + penalty) did not drop by at least ``tol`` (or, with
        ``early_stopping``, the validation R^2 did not rise by at least ``tol``). None: run
        ``max_iter`` epochs.
    shuffle : bool, default=True
        Whether to shuffle the samples before each epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffling and the validation split. Fixed -> bit-identical fits on one machine.
    learning_rate : {"constant", "optimal", "invscaling", "adaptive"}, default="invscaling"
        ``eta`` at update ``t`` (counting mini-batch steps from 1): ``eta0`` ("constant"),
        ``1 / (alpha (t0 + t - 1))`` with sklearn's heuristic ``t0`` ("optimal"),
        ``eta0 / t**power_t`` ("invscaling"), or ``eta0`` divided by 5 each time the stopping
        criterion is met, stopping below 1e-6 ("adaptive").
    eta0 : float, default=0.01
        Initial learning rate (all schedules but "optimal").
    power_t : float, default=0.25
        Exponent of the "invscaling" schedule.
    batch_size : int, default=32
        Samples per gradient step (the mean gradient of the batch is used). 1 is classic SGD.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data and stop when its R^2 stops
        improving. Only used by `fit`.
    validation_fraction : float, default=0.1
        Fraction of the training data held out for early stopping.
    n_iter_no_change : int, default=5
        Number of epochs without improvement before stopping (or, for "adaptive", before the
        learning rate is divided by 5).
    warm_start : bool, default=False
        Start `fit` from the previous solution (the schedule's ``t_`` restarts at 1, as in
        scikit-learn).
    average : bool or int, default=False
        Averaged SGD: ``coef_`` is the running mean of the iterates once ``average`` samples
        (True: 1) have been seen. Costs O(n_outputs * n_features) per step, also on sparse input.
    verbose : int, default=0
        Print one line per epoch.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,) or (n_outputs, n_features)
        Coefficients (2-D when ``y`` is 2-D), in the dtype of the training data.
    intercept_ : ndarray of shape (1,) or (n_outputs,)
        Intercepts.
    n_iter_ : int
        Number of epochs run by the last `fit` (1 for `partial_fit`).
    t_ : float
        Number of weight updates (mini-batch steps) performed, plus 1.
    loss_curve_ : list of float
        Mean training loss ``0.5 s_i ||r_i||^2`` of each epoch (evaluated on the fly, before each
        step), over all `fit`/`partial_fit` epochs since the last cold start.
    validation_scores_ : list of float or None
        Validation R^2 per epoch when ``early_stopping``, else None.
    n_features_in_ : int
        Number of features seen during fit.

    See Also
    --------
    sklearn.linear_model.SGDRegressor : per-sample SGD (batch_size=1) with more losses/penalties.

    Notes
    -----
    Differences from scikit-learn: mini-batches (``t_`` counts batch steps, not samples);
    float32 input is trained in float32; multi-output ``y``; no clipping of the residual at 1e12
    and no 0.01 intercept decay for sparse input; divergence (a non-finite loss or coefficient,
    or an epoch's mean loss above 1e8 times the larger of the zero model's loss and the loss at
    the starting weights) raises a ``ValueError`` naming the learning rate and restores the
    coefficients of the end of the previous epoch instead of returning NaN or garbage. The
    stopping objective adds the penalty at the end of each epoch rather than after every sample.

    Examples
    --------
    >>> import numpy as np
    >>> from fastseq import SGDRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((500, 3))
    >>> y = X @ np.array([1.0, -2.0, 0.5]) + 3.0
    >>> reg = SGDRegressor(learning_rate="constant", eta0=0.05, alpha=0.0, tol=1e-8,
    ...                    random_state=0).fit(X, y)
    >>> np.round(reg.coef_, 2), np.round(reg.intercept_, 2)
    (array([ 1. , -2. ,  0.5]), array([3.]))
    """

    _parameter_constraints: dict = {
        "loss": [StrOptions({"squared_error"})],
        "penalty": [StrOptions({"l2"}), None],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "fit_intercept": ["boolean"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, None, None, closed="neither"), None],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "learning_rate": [StrOptions({"constant", "optimal", "invscaling", "adaptive"})],
        "eta0": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "warm_start": ["boolean"],
        "average": [Interval(Integral, 0, None, closed="left"), "boolean"],
        "verbose": ["verbose"],
    }

    def __init__(self, loss="squared_error", *, penalty="l2", alpha=1e-4, fit_intercept=True,
                 max_iter=1000, tol=1e-3, shuffle=True, random_state=None,
                 learning_rate="invscaling", eta0=0.01, power_t=0.25, batch_size=32,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=5,
                 warm_start=False, average=False, verbose=0):
        self.loss = loss
        self.penalty = penalty
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.shuffle = shuffle
        self.random_state = random_state
        self.learning_rate = learning_rate
        self.eta0 = eta0
        self.power_t = power_t
        self.batch_size = batch_size
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.warm_start = warm_start
        self.average = average
        self.verbose = verbose

    # ---- public API --------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model with mini-batch SGD for up to ``max_iter`` epochs.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; float32 stays float32, CSR is used without densifying.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights of the samples' losses.

        Returns
        -------
        self : SGDRegressor
            The fitted estimator.
        """
        warm = self.warm_start and hasattr(self, "coef_")
        X, Y, sample_weight, self._y_ndim = self._validate_fit_data(X, y, sample_weight,
                                                                    reset=not warm)
        if warm and self._coef_dtype != X.dtype:
            self._cast_state(X.dtype)
        if not warm or self._n_outputs != Y.shape[1]:
            self._init_state(X.shape[1], Y.shape[1], X.dtype)
        self._check_learning_rate()
        # The schedule restarts with every fit (warm or not), as in sklearn; averaging and the
        # history too.
        self._counters = _StepCounters()
        self._reset_average()
        self._monitor = ConvergenceMonitor(early_stopping=self.early_stopping,
                                           learning_rate=float(self.eta0))

        X_train, Y_train, w_train, X_val, Y_val, w_val = self._validation_split(
            X, Y, sample_weight)
        divergence = _DivergencePolicy(self, Y_train, w_train)
        rng = check_random_state(self.random_state)
        # One seed per fit (drawn after the split) keeps fits reproducible bit for bit.
        shuffle_rng = np.random.default_rng(rng.randint(np.iinfo(np.int32).max))
        loop = EpochLoop(
            self._monitor,
            lambda eta: self._run_epoch(X_train, Y_train, w_train, shuffle_rng, eta, divergence),
            tol=-np.inf if self.tol is None else float(self.tol),
            patience=self.n_iter_no_change,
            validation=((lambda: self._validation_score(X_val, Y_val, w_val))
                        if self.early_stopping else None),
            # the rule compares the objective: mean loss + penalty at the epoch's end weights
            objective=lambda mean_loss: mean_loss + self._penalty_value(),
            adaptive=(AdaptiveRate(5.0, _ADAPTIVE_MIN_ETA)
                      if self.learning_rate == "adaptive" else None),
            divergence=divergence, report=_Report(self, time.perf_counter()))
        loop.run(self.max_iter, restart_count=True, publish_to=self,
                 attributes=("loss_curve_", "validation_scores_", "n_iter_"))
        self._publish()
        if self.tol is not None and self.n_iter_ == self.max_iter:
            warnings.warn(
                f"SGDRegressor reached max_iter={self.max_iter} epochs before the stopping "
                f"criterion (tol={self.tol}) was met; consider increasing max_iter or eta0.",
                ConvergenceWarning)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Run one epoch of mini-batch SGD over the given samples.

        The schedule (``t_``) continues across calls; no stopping criterion or early stopping.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data (converted to the dtype of ``coef_`` after the first call).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets; the number of outputs must not change between calls.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights of the samples' losses.

        Returns
        -------
        self : SGDRegressor
            The updated estimator.
        """
        # _fit_context skips parameter validation once fitted; eta0 / alpha / ... are used
        # afresh by every call, so check them every time (cheap).
        self._validate_params()
        first = not hasattr(self, "coef_")
        X, Y, sample_weight, y_ndim = self._validate_fit_data(X, y, sample_weight, reset=first)
        if first:
            self._init_state(X.shape[1], Y.shape[1], X.dtype)
            self._counters = _StepCounters()
            self._reset_average()
            self._monitor = ConvergenceMonitor(early_stopping=False)
        elif Y.shape[1] != self._n_outputs:
            raise ValueError(f"y has {Y.shape[1]} outputs but this SGDRegressor was fitted with "
                             f"{self._n_outputs}; partial_fit cannot change the output count")
        elif y_ndim != self._y_ndim:
            # coef_ is 1-D for a 1-D y and 2-D otherwise: a flip between calls would change
            # the shape of coef_ and of predict's output mid-stream
            raise ValueError(f"y is {y_ndim}-D but earlier calls had {self._y_ndim}-D y; "
                             "partial_fit cannot change the shape of y")
        self._y_ndim = y_ndim
        self._check_learning_rate()
        divergence = _DivergencePolicy(self, Y, sample_weight)
        rng = check_random_state(self.random_state)
        shuffle_rng = np.random.default_rng(rng.randint(np.iinfo(np.int32).max))
        # one epoch at eta0, no stopping rule; the loss curve continues
        self._monitor.learning_rate = float(self.eta0)
        loop = EpochLoop(
            self._monitor,
            lambda eta: self._run_epoch(X, Y, sample_weight, shuffle_rng, eta, divergence),
            tol=None, patience=None, divergence=divergence, report=_Report(self))
        # n_iter_ is this call's epoch count, set only once the epoch succeeded
        loop.run(1, restart_count=True, publish_to=self,
                 attributes=("loss_curve_", "validation_scores_"))
        self.n_iter_ = 1
        self._publish()
        return self

    def predict(self, X):
        """Predict ``X @ coef_.T + intercept_``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            Predictions, in the dtype of ``coef_``.
        """
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", dtype=[np.float64, np.float32],
                          reset=False)
        coef = np.atleast_2d(self.coef_)
        X = X.astype(coef.dtype, copy=False)
        # y = X @ coef.T + intercept
        prediction = np.asarray(X @ coef.T) + self.intercept_
        return prediction.ravel() if self.coef_.ndim == 1 else prediction

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.target_tags.multi_output = True
        tags.transformer_tags = None
        return tags

    # ---- internals ---------------------------------------------------------------------------
    def _validate_fit_data(self, X, y, sample_weight, *, reset):
        dtype = [np.float64, np.float32] if reset else getattr(self, "_coef_dtype", None)
        X, y = validate_data(self, X, y, reset=reset, accept_sparse="csr",
                             dtype=dtype or [np.float64, np.float32], order="C",
                             multi_output=True, y_numeric=True)
        n_samples, n_features = X.shape
        with np.errstate(over="ignore"):  # float64 y beyond float32 range: reported below
            Y = np.ascontiguousarray(y.reshape(n_samples, -1) if y.ndim == 2 else y[:, None],
                                     dtype=X.dtype)
        if Y.shape[1] == 0:
            raise ValueError("y has 0 outputs; expected (n_samples,) or (n_samples, n_outputs)")
        if not np.isfinite(Y).all():
            # float64 y can overflow when cast to float32
            raise ValueError(f"y contains values that are not finite in {X.dtype.name}")
        check_blas_dims(n_features=n_features, n_outputs=Y.shape[1],
                        batch_x_features=min(self.batch_size, n_samples) * n_features,
                        outputs_x_features=Y.shape[1] * n_features)
        if sp.issparse(X):
            check_csr_structure(X)
        sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype,
                                             ensure_non_negative=True)
        sample_weight = np.ascontiguousarray(sample_weight)
        if not np.isfinite(sample_weight).all():
            raise ValueError("sample_weight contains NaN or infinity")
        return X, Y, sample_weight, y.ndim

    def _check_learning_rate(self):
        if self.learning_rate == "optimal" and self.alpha == 0:
            raise ValueError("alpha must be > 0 with learning_rate='optimal' (eta = 1 / (alpha "
                             "(t0 + t))); use another learning_rate or a positive alpha")

    def _init_state(self, n_features, n_outputs, dtype):
        self._n_outputs = n_outputs
        self._coef_dtype = np.dtype(dtype)
        self._standard_coef = np.zeros((n_outputs, n_features), dtype=dtype)
        self._standard_intercept = np.zeros(n_outputs, dtype=dtype)

    def _cast_state(self, dtype):
        self._coef_dtype = np.dtype(dtype)
        self._standard_coef = np.ascontiguousarray(self._standard_coef, dtype=dtype)
        self._standard_intercept = np.ascontiguousarray(self._standard_intercept, dtype=dtype)

    def _reset_average(self):
        k, p = self._standard_coef.shape
        size = (k, p) if self.average else (1, 1)  # the kernel wants an array either way
        self._average_coef = np.zeros(size, dtype=self._coef_dtype)
        self._average_intercept = np.zeros(size[0], dtype=self._coef_dtype)
        self._counters.n_avg = 0

    def _validation_split(self, X, Y, sample_weight):
        if not self.early_stopping:
            return X, Y, sample_weight, None, None, None
        n_samples = X.shape[0]
        splitter = ShuffleSplit(test_size=self.validation_fraction,
                                random_state=self.random_state)
        try:
            train, val = next(splitter.split(np.zeros((n_samples, 1))))
        except ValueError as exc:
            raise ValueError(
                f"early_stopping needs a validation split of validation_fraction="
                f"{self.validation_fraction} of {n_samples} samples: {exc}") from None
        if train.size == 0 or val.size < 2:
            raise ValueError(f"validation_fraction={self.validation_fraction} leaves fewer than "
                             f"2 validation samples (or no training sample) with {n_samples} "
                             f"samples")
        return (X[train], np.ascontiguousarray(Y[train]),
                np.ascontiguousarray(sample_weight[train]), X[val], Y[val], sample_weight[val])

    def _validation_score(self, X_val, Y_val, w_val):
        coef, intercept = self._current_coef()
        # pred = X_val @ coef.T + intercept
        prediction = np.asarray(X_val @ coef.T) + intercept
        if w_val.sum() == 0:
            w_val = None
        return float(r2_score(Y_val, prediction, sample_weight=w_val))

    def _current_coef(self):
        if self.average and self._counters.n_avg > 0:
            return self._average_coef, self._average_intercept
        return self._standard_coef, self._standard_intercept

    def _penalty_value(self):
        if self.penalty != "l2":
            return 0.0
        coef = self._standard_coef
        return 0.5 * self.alpha * float(np.vdot(coef, coef))

    def _schedule(self, eta):
        average_start = 0 if not self.average else int(self.average)
        return _sgd._make_schedule(
            _SCHEDULES[self.learning_rate], eta, float(self.power_t), float(self.alpha),
            _optimal_t0(self.alpha) if self.learning_rate == "optimal" else 0.0,
            self.penalty == "l2", bool(self.fit_intercept), average_start)

    def _run_epoch(self, X, Y, sample_weight, shuffle_rng, eta, divergence):
        """One compiled epoch: ``(True, mean_loss)``, or ``(False, (status, mean_loss))`` after
        restoring the epoch's starting weights when ``divergence`` finds it diverged."""
        n_samples = X.shape[0]
        if self.shuffle:
            perm = shuffle_rng.permutation(n_samples).astype(np.intp, copy=False)
        else:
            perm = np.arange(n_samples, dtype=np.intp)
        batch_size = min(int(self.batch_size), n_samples)
        if self.average and self._average_coef.shape != self._standard_coef.shape:
            self._reset_average()  # `average` was switched on between partial_fit calls
        # Copies to restore if this epoch diverges (O(k p), small next to an epoch).
        saved = (self._standard_coef.copy(), self._standard_intercept.copy(),
                 self._average_coef.copy(), self._average_intercept.copy())
        counters = self._counters
        args = (self._standard_coef, self._standard_intercept, self._average_coef,
                self._average_intercept, batch_size, self._schedule(eta), counters.t,
                counters.n_seen, counters.n_avg)
        if sp.issparse(X):
            indices = X.indices.astype(np.int32, copy=False)  # columns < 2^31 (checked)
            indptr = X.indptr.astype(np.intp, copy=False)
            data = np.ascontiguousarray(X.data)
            status, t, n_seen, n_avg, loss, first_loss = _sgd.epoch_csr(
                data, indices, indptr, X.shape[1], Y, sample_weight, perm, *args)
        else:
            status, t, n_seen, n_avg, loss, first_loss = _sgd.epoch_dense(
                X, Y, sample_weight, perm, *args)
        mean_loss = loss / n_samples
        status = divergence.check(status, mean_loss, first_loss)
        if status != 0:
            (self._standard_coef, self._standard_intercept, self._average_coef,
             self._average_intercept) = saved
            return False, (status, mean_loss)
        counters.t, counters.n_seen, counters.n_avg = t, n_seen, n_avg
        return True, mean_loss

    def _publish(self):
        """Expose coef_ / intercept_ (the averaged ones once averaging has started) and t_."""
        coef, intercept = self._current_coef()
        coef, intercept = coef.copy(), intercept.copy()
        self.coef_ = coef[0] if self._y_ndim == 1 and self._n_outputs == 1 else coef
        self.intercept_ = intercept
        self.t_ = self._counters.t
