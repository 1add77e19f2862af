"""The training engine shared by fastseq's networks (MLPs now, recurrent networks next).

What lives here (Python orchestration only; every numerical loop is compiled in ``_mlp_fast.pyx``):

- ``FlatLayout``: all parameter tensors of a network packed in ONE contiguous buffer (weights
  first, then biases, so L2 decay applies to a prefix), with per-tensor views; gradients and
  optimizer state (SGD velocity, Adam moments) are buffers of the same layout, so an optimizer
  step is a single fused C loop over the whole network.
- ``EpochLoop``: scikit-learn's stochastic-solver bookkeeping around an ``epoch`` callable —
  ``loss_curve_``, ``t_``, ``n_iter_``, the ``tol``/``n_iter_no_change`` stopping rule, early
  stopping on a validation score that RESTORES the best weights, the ``invscaling`` and
  ``adaptive`` learning-rate schedules, verbose lines, ``ConvergenceWarning`` and divergence.
"""
import time
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions

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


class EpochLoop:
    """scikit-learn's ``_fit_stochastic`` epoch logic around a compiled epoch.

    Parameters are read from the estimator ``est`` (sklearn names). ``run_epoch(lr)`` trains one
    epoch and returns ``(ok, epoch_loss)``; ``score(Xv, yv)`` scores the current weights;
    ``params`` is the flat parameter buffer (copied when the validation score improves).
    """

    def __init__(self, est, params, run_epoch, n_train, validation=None, score=None,
                 incremental=False):
        self.est = est
        self.params = params
        self.run_epoch = run_epoch
        self.n_train = n_train
        self.validation = validation
        self.score = score
        self.incremental = incremental

    def _lr_after_epoch(self, lr):
        est = self.est
        if est.solver == "sgd" and est.learning_rate == "invscaling":
            return est.learning_rate_init / (est.t_ + 1) ** est.power_t
        return lr

    def run(self):
        est = self.est
        early = self.validation is not None
        # The bookkeeping attributes were initialised for the early_stopping value of the FIRST
        # fit; warm_start after set_params(early_stopping=...) and partial_fit (which never holds
        # out data) run the other rule, so give it its starting values instead of None.
        if early:
            if est.validation_scores_ is None:
                est.validation_scores_ = []
            if est.best_validation_score_ is None:
                est.best_validation_score_ = -np.inf
        elif est.best_loss_ is None:
            est.best_loss_ = np.inf
        best_params = self.params.copy() if early else None
        # weights of the lowest training loss so far: what a divergence falls back to
        lowest_loss, lowest_params = np.inf, None
        lr = est._lr
        max_epochs = 1 if self.incremental else est.max_iter
        if not self.incremental:
            est.n_iter_ = 0
        diverged = False
        for _ in range(max_epochs):
            tic = time.perf_counter()
            ok, loss = self.run_epoch(lr)
            if not ok:
                diverged = True
                break
            est.n_iter_ += 1
            est.t_ += self.n_train
            est.loss_ = loss
            est.loss_curve_.append(loss)
            if loss < lowest_loss:
                lowest_loss = loss
                if lowest_params is None:
                    lowest_params = self.params.copy()
                else:
                    lowest_params[...] = self.params
            if early:
                val = float(self.score(*self.validation))
                est.validation_scores_.append(val)
                if val < est.best_validation_score_ + est.tol:
                    est._no_improvement_count += 1
                else:
                    est._no_improvement_count = 0
                if val > est.best_validation_score_:
                    est.best_validation_score_ = val
                    best_params[...] = self.params
            else:
                if loss > est.best_loss_ - est.tol:
                    est._no_improvement_count += 1
                else:
                    est._no_improvement_count = 0
                est.best_loss_ = min(est.best_loss_, loss)
            if est.verbose:
                val_txt = f", validation score = {est.validation_scores_[-1]:.6f}" if early else ""
                print(f"Epoch {est.n_iter_}, loss = {loss:.8f}{val_txt}, "
                      f"time = {time.perf_counter() - tic:.3f}s")
            lr = self._lr_after_epoch(lr)
            if est._no_improvement_count > est.n_iter_no_change:
                what = "Validation score" if early else "Training loss"
                msg = (f"{what} did not improve more than tol={est.tol:f} for "
                       f"{est.n_iter_no_change} consecutive epochs.")
                if est.solver == "sgd" and est.learning_rate == "adaptive" and lr > 1e-6:
                    lr /= 5.0
                    est._no_improvement_count = 0
                    if est.verbose:
                        print(msg + f" Setting learning rate to {lr:f}")
                else:
                    if est.verbose:
                        print(msg + " Stopping.")
                    break
            if not self.incremental and est.n_iter_ == est.max_iter:
                warnings.warn(
                    f"Stochastic Optimizer: Maximum iterations ({est.max_iter}) reached and the "
                    "optimization hasn't converged yet.", ConvergenceWarning)
        est._lr = lr
        if diverged:
            # the epoch already restored its starting (finite) weights; prefer the weights of
            # the epoch with the lowest training loss (a slow blow-up passes through huge ones)
            if lowest_params is not None and not early:
                self.params[...] = lowest_params
            warnings.warn(
                f"Training diverged in epoch {est.n_iter_ + 1}: a non-finite loss, gradient or "
                "weight appeared. Training stopped and kept the weights of the epoch with the "
                "lowest training loss (the initial weights if none completed). Lower "
                "learning_rate_init, or set max_grad_norm to clip gradients.", DivergenceWarning)
        if early and np.isfinite(est.best_validation_score_):
            # restore the weights of the best validation epoch
            self.params[...] = best_params
        return diverged
