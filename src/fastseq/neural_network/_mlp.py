"""Multi-layer perceptrons with scikit-learn's MLP vocabulary on fastseq's compiled engine.

The whole mini-batch step — forward GEMMs with fused bias+activation, the loss and its gradient,
backward GEMMs, gradient clipping and the fused optimizer update over one flat parameter buffer —
runs in compiled code (``_mlp_fast.pyx`` + ``csrc/neural_network/mlp.c``), one call per epoch.
Python only validates, initialises, and runs the shared epoch loop
(``fastseq._lib.epoch_loop.EpochLoop``).
"""
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call,
    check_classification_targets,
    type_of_target,
    unique_labels,
)
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from fastseq._lib import blas_runtime
from fastseq._lib.epoch_loop import ConvergenceMonitor
from fastseq._lib.validation import check_blas_dims
from fastseq.neural_network import _mlp_fast as _nn
from fastseq.neural_network._training import (  # noqa: F401 (DivergenceWarning re-exported)
    TRAINING_PARAMETER_CONSTRAINTS,
    DivergenceWarning,
    FlatLayout,
    OptimizerState,
    network_epoch_loop,
)

__all__ = ["MLPClassifier", "MLPRegressor", "DivergenceWarning"]

_DTYPES = [np.float64, np.float32]

class _BaseMLP(BaseEstimator):
    """Shared fit/partial_fit/predict machinery of MLPClassifier and MLPRegressor."""

    _parameter_constraints: dict = {
        **TRAINING_PARAMETER_CONSTRAINTS,
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 max_grad_norm=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_grad_norm = max_grad_norm

    # ---- architecture ---------------------------------------------------------------------
    def _hidden_sizes(self):
        h = self.hidden_layer_sizes
        h = [h] if isinstance(h, Integral) else list(h)
        if any(isinstance(v, bool) or not isinstance(v, Integral) or v < 1 for v in h):
            raise ValueError(
                f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}")
        return [int(v) for v in h]

    def _layout(self, n_features, n_outputs):
        sizes = [n_features] + self._hidden_sizes() + [n_outputs]
        check_blas_dims(**{f"layer_{i}_width": s for i, s in enumerate(sizes)})
        layout = FlatLayout([(a, b) for a, b in zip(sizes[:-1], sizes[1:])],
                            [(b,) for b in sizes[1:]])
        return np.asarray(sizes, dtype=np.intp), layout

    def _init_params(self, layout, dtype):
        # Glorot-uniform as scikit-learn (same draws for the same random_state):
        # bound = sqrt(factor / (fan_in + fan_out)), factor 2 for logistic, 6 otherwise.
        coefs, intercepts = [], []
        for fan_in, fan_out in layout.weight_shapes:
            factor = 2.0 if self.activation == "logistic" else 6.0
            bound = np.sqrt(factor / (fan_in + fan_out))
            coefs.append(self._random_state.uniform(-bound, bound, (fan_in, fan_out)))
            intercepts.append(self._random_state.uniform(-bound, bound, fan_out))
        return layout.pack(coefs, intercepts, dtype)

    # ---- fitting ----------------------------------------------------------------------------
    def _fit(self, X, y, incremental, classes=None):
        reuse = (self.warm_start or incremental) and hasattr(self, "coefs_")
        X, Y = self._validate_training_data(X, y, reuse, incremental, classes)
        dtype = X.dtype
        n_samples, n_features = X.shape
        n_outputs = Y.shape[1]
        sizes, layout = self._layout(n_features, n_outputs)
        act = _nn.ACTIVATIONS[self.activation]
        loss = _nn.LOSSES[self._loss_name]

        # as scikit-learn: a fresh RandomState from random_state on every fit/partial_fit call
        self._random_state = check_random_state(self.random_state)
        if reuse:
            params = layout.pack(self.coefs_, self.intercepts_, dtype)
        else:
            params = self._init_params(layout, dtype)
        if not reuse or not hasattr(self, "_monitor"):
            # first training of these weights (fresh, or assigned by the user for warm_start)
            self._monitor = ConvergenceMonitor(early_stopping=self.early_stopping)
            self._optimizer = None
        monitor = self._monitor
        self.n_outputs_ = n_outputs
        self.n_layers_ = len(sizes)
        self.out_activation_ = {"squared_error": "identity", "binary_log_loss": "logistic",
                                "log_loss": "softmax"}[self._loss_name]

        # optimizer state and rate: kept across partial_fit calls, reset by fit (as scikit-learn)
        optimizer = self._optimizer
        if not incremental or optimizer is None or not optimizer.matches(params):
            optimizer = OptimizerState(params)
            monitor.learning_rate = float(self.learning_rate_init)
        self._optimizer = optimizer.configure(self)

        early = self.early_stopping and not incremental
        if early:
            if monitor.best_loss is not None:  # warm start from a fit without early stopping
                monitor.restart_validation()
            # as scikit-learn: stratified split only for a classifier with one output column
            stratify = Y if (self._loss_name != "squared_error" and n_outputs == 1) else None
            X, X_val, Y, Y_val = train_test_split(
                X, Y, random_state=self._random_state, test_size=self.validation_fraction,
                stratify=stratify)
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            X, Y = np.ascontiguousarray(X), np.ascontiguousarray(Y)
            validation = (np.ascontiguousarray(X_val), self._decode(Y_val))
        else:
            validation = None

        n_train = X.shape[0]
        batch = min(200, n_train) if self.batch_size == "auto" else min(self.batch_size, n_train)
        work = np.empty(_nn.workspace_size(sizes, batch), dtype=dtype)
        grads = np.empty_like(params)
        snapshot = np.empty_like(params)
        w_off, b_off = layout.weight_offsets, layout.bias_offsets
        solver = _nn.SOLVERS[self.solver]
        max_norm = -1.0 if self.max_grad_norm is None else float(self.max_grad_norm)
        nesterov = bool(optimizer.nesterov)

        # scikit-learn shuffles one index array in place every epoch (same draws, same order)
        sample_idx = np.arange(n_train, dtype=np.intp)

        def run_epoch(lr):
            order = None
            if self.shuffle:
                self._random_state.shuffle(sample_idx)
                order = sample_idx
            status, total, step_count, _ = _nn.train_epoch(
                params, grads, optimizer.first_moment, optimizer.second_moment, snapshot, work,
                X, Y, order, sizes, w_off, b_off, layout.n_weights, act, loss, batch, solver, lr,
                float(optimizer.momentum), nesterov, float(optimizer.beta_1),
                float(optimizer.beta_2), float(optimizer.epsilon), float(self.alpha), max_norm,
                optimizer.step_count, blas_runtime.gemm_block_mnk())
            if status != 0:
                # the epoch restored its starting weights; the moments saw the bad step
                optimizer.reset()
                return False, None
            optimizer.step_count = step_count
            return True, total / n_train

        self._publish(params, layout)
        score = None if validation is None else (
            lambda: self._score_arrays(params, sizes, w_off, b_off, *validation))
        network_epoch_loop(self, monitor, params, run_epoch, n_train, score, incremental)
        self._publish(params, layout)
        return self

    def _publish(self, params, layout):
        # coefs_/intercepts_ are views of the flat buffer (lists, like scikit-learn)
        self.coefs_, self.intercepts_ = layout.views(params)

    # ---- prediction -------------------------------------------------------------------------
    def _forward_arrays(self, params, sizes, w_off, b_off, X, apply_output=True):
        chunk = max(1, min(X.shape[0], _nn.DEFAULT_CHUNK))
        work = np.empty(_nn.workspace_size(sizes, chunk), dtype=params.dtype)
        out = np.empty((X.shape[0], sizes[-1]), dtype=params.dtype)
        _nn.predict(params, X, out, work, chunk, sizes, w_off, b_off,
                    _nn.ACTIVATIONS[self.activation], _nn.LOSSES[self._loss_name], apply_output)
        return out

    def _forward(self, X):
        """Output-layer activations (probabilities / regression values), shape (n, n_outputs)."""
        check_is_fitted(self)
        dtype = self.coefs_[0].dtype
        X = validate_data(self, X, reset=False, dtype=_DTYPES)
        X = np.ascontiguousarray(X, dtype=dtype)
        sizes, layout = self._layout(self.n_features_in_, self.n_outputs_)
        params = layout.pack(self.coefs_, self.intercepts_, dtype)
        return self._forward_arrays(params, sizes, layout.weight_offsets, layout.bias_offsets, X)

    def _loss_grad(self, X, Y):
        """Private test hook: objective of the batch (X, Y) — mean loss + L2 — and its gradient
        as (loss, coef_grads, intercept_grads), at the current coefs_/intercepts_. Y is the
        2-D encoded target (one-hot / indicator / values)."""
        dtype = self.coefs_[0].dtype
        X = np.ascontiguousarray(X, dtype=dtype)
        Y = np.ascontiguousarray(Y, dtype=dtype)
        sizes, layout = self._layout(X.shape[1], Y.shape[1])
        params = layout.pack(self.coefs_, self.intercepts_, dtype)
        grads = np.empty_like(params)
        work = np.empty(_nn.workspace_size(sizes, X.shape[0]), dtype=dtype)
        status, value = _nn.loss_grad(params, grads, work, X, Y, sizes, layout.weight_offsets,
                                      layout.bias_offsets, layout.n_weights,
                                      _nn.ACTIVATIONS[self.activation],
                                      _nn.LOSSES[self._loss_name], float(self.alpha))
        gw, gb = layout.views(grads)
        return value, gw, gb

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier trained by SGD or Adam on compiled kernels.

    Same parameters, attributes and defaults as :class:`sklearn.neural_network.MLPClassifier`
    (solvers ``"sgd"`` and ``"adam"``), plus ``max_grad_norm``. The output layer follows the
    task: binary → one sigmoid unit + binary cross-entropy; multiclass → softmax + cross-entropy;
    multilabel (2-D indicator ``y``) → one sigmoid + binary cross-entropy per label. The
    objective is scikit-learn's: mean loss over the batch + ``alpha / (2 n_batch) * ||W||^2``
    (weights only), so ``alpha`` and ``loss_curve_`` mean the same thing as in scikit-learn.

    Parameters
    ----------
    hidden_layer_sizes : array-like of int, default=(100,)
        Width of each hidden layer (may be empty: no hidden layer).
    activation : {"identity", "logistic", "tanh", "relu"}, default="relu"
        Hidden-layer activation.
    solver : {"sgd", "adam"}, default="adam"
        Optimizer, applied as one fused update over the flat parameter buffer.
    alpha : float, default=1e-4
        L2 penalty strength (scikit-learn's convention, see above).
    batch_size : int or "auto", default="auto"
        Mini-batch rows; "auto" = ``min(200, n_samples)``; larger values are clipped to n.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Step-size schedule for ``solver="sgd"`` (as scikit-learn).
    learning_rate_init : float, default=1e-3
        Initial step size.
    power_t : float, default=0.5
        Exponent of the "invscaling" schedule ``lr = lr_init / (t_ + 1) ** power_t``.
    max_iter : int, default=200
        Maximum number of epochs.
    shuffle : bool, default=True
        Shuffle the samples every epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling and the early-stopping split; an int makes runs
        reproducible bit for bit on one machine (same BLAS, same thread count).
    tol : float, default=1e-4
        Improvement threshold of the stopping rule.
    verbose : bool, default=False
        Print one line per epoch: loss, validation score (early stopping) and seconds.
    warm_start : bool, default=False
        Start ``fit`` from the current ``coefs_``/``intercepts_`` (which may also be assigned by
        the user before the first fit, to train from given weights; shapes must match).
    momentum : float, default=0.9
        SGD momentum.
    nesterovs_momentum : bool, default=True
        Use Nesterov's momentum (SGD).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (stratified), stop when the validation
        accuracy has not improved by ``tol`` for ``n_iter_no_change`` epochs, and restore the
        weights of the best validation epoch.
    validation_fraction : float, default=0.1
        Held-out fraction for early stopping.
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam parameters.
    n_iter_no_change : int, default=10
        Epochs without improvement before stopping (or dividing the adaptive learning rate by 5).
    max_grad_norm : float or None, default=None
        Clip the gradient (data term) to this global L2 norm before the optimizer step.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coefs_ : list of ndarray
        Weight matrices, ``coefs_[i]`` of shape (fan_in, fan_out), views of one flat buffer.
    intercepts_ : list of ndarray
        Bias vectors.
    loss_ : float
        Objective of the last epoch (mean over samples of the batch objectives).
    loss_curve_ : list of float
        ``loss_`` of every epoch.
    best_loss_ : float or None
        Lowest ``loss_`` (None with early stopping).
    validation_scores_ : list of float or None
        Validation accuracy per epoch (early stopping only).
    best_validation_score_ : float or None
    n_iter_ : int
        Epochs run by the last ``fit`` (accumulated over ``partial_fit`` calls).
    t_ : int
        Training samples seen.
    n_outputs_ : int
    n_layers_ : int
    out_activation_ : str
        "logistic" or "softmax".
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when X has feature names.

    Notes
    -----
    Training that produces a non-finite loss, gradient or weight stops with a
    :class:`fastseq.neural_network.DivergenceWarning` (a ``ConvergenceWarning``) and keeps the
    weights of the epoch with the lowest training loss (the best validation epoch with early
    stopping; the initial weights if no epoch completed). Reaching ``max_iter`` without meeting the
    stopping rule raises ``sklearn.exceptions.ConvergenceWarning``, as scikit-learn.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from fastseq import MLPClassifier
    >>> X, y = make_classification(n_samples=200, random_state=0)
    >>> clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=1000, random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    >>> bool(clf.score(X, y) > 0.9)
    True
    """

    @property
    def _loss_name(self):
        # softmax for a multiclass target (set in fit); sigmoid outputs otherwise
        return "log_loss" if getattr(self, "_softmax", False) else "binary_log_loss"

    def _validate_training_data(self, X, y, reuse, incremental, classes):
        first = not (reuse and hasattr(self, "classes_"))
        dtype = self.coefs_[0].dtype if (reuse and hasattr(self, "coefs_")) else _DTYPES
        X, y = validate_data(self, X, y, multi_output=True, dtype=dtype, reset=not reuse)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        X = np.ascontiguousarray(X)
        if incremental:
            if _check_partial_fit_first_call(self, classes):
                if type_of_target(y) == "multilabel-indicator":
                    raise ValueError("partial_fit does not support multilabel targets; use fit")
                self._label_binarizer = LabelBinarizer().fit(self.classes_)
            unknown = np.setdiff1d(unique_labels(y), self.classes_)
            if unknown.size:
                raise ValueError(f"y contains labels {unknown.tolist()} that are not in "
                                 f"classes_ {self.classes_.tolist()} (given to the first "
                                 "partial_fit call)")
        elif first or not self.warm_start:
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            unknown = np.setdiff1d(unique_labels(y), self.classes_)
            if unknown.size:
                raise ValueError(f"warm_start fit got labels {unknown.tolist()} not in "
                                 f"classes_ {self.classes_.tolist()}")
        self._softmax = (self._label_binarizer.y_type_ == "multiclass")
        Y = self._label_binarizer.transform(y).astype(X.dtype)
        return X, np.ascontiguousarray(Y)

    def _decode(self, Y):
        return self._label_binarizer.inverse_transform(Y)

    def _score_arrays(self, params, sizes, w_off, b_off, X_val, y_val):
        proba = self._forward_arrays(params, sizes, w_off, b_off, X_val)
        return accuracy_score(y_val, self._label_binarizer.inverse_transform(proba))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit the network to data matrix X (n_samples, n_features) and labels y.

        Returns
        -------
        self : MLPClassifier
        """
        return self._fit(X, y, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y), continuing from the current weights and optimizer state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        classes : array-like of shape (n_classes,), default=None
            All labels; required on the first call, ignored afterwards. Labels of later calls
            must be among them (a ValueError otherwise).

        Returns
        -------
        self : MLPClassifier
        """
        return self._fit(X, y, incremental=True, classes=classes)

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes) (per-label for multilabel)."""
        p = self._forward(X)
        if p.shape[1] == 1 and not self._label_binarizer.y_type_.startswith("multilabel"):
            return np.hstack([1 - p, p])
        return p

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """Predicted labels."""
        proba = self._forward(X)
        return self._label_binarizer.inverse_transform(proba)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor trained by SGD or Adam on compiled kernels.

    Same parameters, attributes and defaults as :class:`sklearn.neural_network.MLPRegressor`
    (solvers ``"sgd"``/``"adam"``), plus ``max_grad_norm``; see :class:`MLPClassifier` for their
    meaning. Identity output and squared error; the objective is scikit-learn's
    ``0.5 * mean over samples and outputs of (y - y_pred)**2 + alpha / (2 n_batch) ||W||^2``.
    Unlike scikit-learn (whose backpropagation for several outputs uses ``n_outputs`` times
    the gradient of the loss it reports), the gradient used is exactly that of this objective;
    for a single output the two coincide. Early stopping scores with R².

    Examples
    --------
    >>> import numpy as np
    >>> from fastseq import MLPRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 3))
    >>> y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2]
    >>> reg = MLPRegressor(hidden_layer_sizes=(64,), max_iter=500, random_state=0).fit(X, y)
    >>> bool(reg.score(X, y) > 0.9)
    True
    """

    _loss_name = "squared_error"

    def _validate_training_data(self, X, y, reuse, incremental, classes):
        dtype = self.coefs_[0].dtype if reuse else _DTYPES
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=dtype,
                             reset=not reuse)
        X = np.ascontiguousarray(X)
        Y = np.asarray(y, dtype=X.dtype)
        if Y.ndim == 1:
            Y = Y.reshape(-1, 1)
        return X, np.ascontiguousarray(Y)

    def _decode(self, Y):
        return Y

    def _score_arrays(self, params, sizes, w_off, b_off, X_val, y_val):
        return r2_score(y_val, self._forward_arrays(params, sizes, w_off, b_off, X_val))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit the network to X (n_samples, n_features) and targets y (n_samples[, n_outputs]).

        Returns
        -------
        self : MLPRegressor
        """
        return self._fit(X, y, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y):
        """One epoch over (X, y), continuing from the current weights and optimizer state.

        Returns
        -------
        self : MLPRegressor
        """
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """Predicted values, shape (n_samples,) or (n_samples, n_outputs)."""
        y = self._forward(X)
        return y.ravel() if y.shape[1] == 1 else y

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
