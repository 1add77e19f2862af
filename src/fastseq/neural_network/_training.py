"""What the network estimators (MLPs, recurrent networks) add to the shared epoch loop
(``fastseq._lib.epoch_loop``: ``ConvergenceMonitor``, ``EpochLoop``, ``AdaptiveRate``).

Python orchestration only; every numerical loop is compiled in ``_mlp_fast.pyx``:

- ``FlatLayout``: all parameter tensors of a network packed in ONE contiguous buffer (weights
  first, then biases, so L2 decay applies to a prefix), with per-tensor views; gradients and
  optimizer state (SGD velocity, Adam moments) are buffers of the same layout, so an optimizer
  step is a single fused C loop over the whole network.
- ``OptimizerState``: those moment buffers and the Adam step count, with the fused step and the
  reset after divergence.
- The networks' policies for the loop: ``KeepLowestLossWeights`` (divergence),
  ``NetworkReport`` (scikit-learn MLP's verbose lines) and ``network_epoch_loop``, which puts
  them together with scikit-learn MLP's schedules and stopping convention.
"""
import time
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions

from fastseq._lib.epoch_loop import AdaptiveRate, EpochLoop
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


# What a network estimator exposes (scikit-learn's MLP attributes).
NETWORK_ATTRIBUTES = ("loss_", "loss_curve_", "best_loss_", "validation_scores_",
                      "best_validation_score_", "n_iter_", "t_", "_no_improvement_count")


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
