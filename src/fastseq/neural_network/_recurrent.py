"""Elman-RNN and LSTM estimators on fastseq's training engine.

The networks: ``num_layers`` stacked recurrent layers (optionally bidirectional, with inverted
dropout between layers) and a dense output layer + loss from the task (sigmoid + binary
cross-entropy, softmax + cross-entropy, identity + squared error). All parameters live in ONE
flat buffer (``_training.FlatLayout``: recurrent weights, output weights, then biases), the
optimizer steps are the fused kernels of ``_nn`` (SGD/Nesterov, Adam, L2 decay, gradient clipping
by global norm), the epoch bookkeeping is ``fastseq._lib.epoch_loop.EpochLoop`` — the same engine
as the MLPs.
Per batch, Python only slices the batch and calls compiled code: the recurrent layer stack of
the ops layer (``fastseq.ops.recurrent_stack_forward`` / ``_backward``, entered past its public
validation: ``fastseq._recurrent.stack._forward``), which runs the cell kernels per layer and
direction, and ``_nn.loss_grad`` for the output layer (its forward, loss, backward and the
gradient w.r.t. the recurrent features).

Inputs: ``(n, T, F)`` arrays, ``(n, T)`` arrays (univariate), or lists of ``(T_i, F)`` /
``(T_i,)`` arrays (ragged: sequences are zero-padded once per fit, and the kernels receive the
lengths, so no work is spent on the padding).

Targets: one per sequence, read from the LAST VALID step of each sequence (for a bidirectional
network: the final state of each direction, i.e. the forward state after the last step and the
backward state after the first), or one per time step (sequence tagging / seq2seq regression,
``y`` shaped like the time axis; padded positions are masked from the loss).
"""
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from fastseq._lib.epoch_loop import ConvergenceMonitor
from fastseq._lib.validation import check_blas_dims
from fastseq._recurrent.cells import _packing
from fastseq._recurrent.stack import _backward as _stack_backward
from fastseq._recurrent.stack import _forward as _stack_forward
from fastseq._recurrent.stack import get_cell
from fastseq.neural_network import _mlp_fast as _nn
from fastseq.neural_network._sequences import _valid_steps, check_sequences
from fastseq.neural_network._training import (  # noqa: F401 (DivergenceWarning re-exported)
    TRAINING_PARAMETER_CONSTRAINTS,
    DivergenceWarning,
    FlatLayout,
    OptimizerState,
    network_epoch_loop,
)

__all__ = ["RNNClassifier", "RNNRegressor", "LSTMClassifier", "LSTMRegressor"]


def _check_y_present(y):
    if y is None:
        raise ValueError("requires y to be passed, but the target y is None")


class _BaseRecurrent(BaseEstimator):
    _cell = "lstm"      # name of the stack's cell spec (fastseq._recurrent.stack.get_cell)

    _parameter_constraints: dict = {
        **TRAINING_PARAMETER_CONSTRAINTS,
        "hidden_size": [Interval(Integral, 1, None, closed="left")],
        "num_layers": [Interval(Integral, 1, None, closed="left")],
        "bidirectional": ["boolean"],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "output": [StrOptions({"auto", "sequence", "step"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    }

    def __init__(self, hidden_size=32, *, num_layers=1, bidirectional=False, dropout=0.0,
                 output="auto", solver="adam", alpha=0.0, batch_size="auto",
                 learning_rate="constant", learning_rate_init=0.005, power_t=0.5, max_iter=100,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10, max_grad_norm=5.0):
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.output = output
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

    # ---- architecture -------------------------------------------------------------------------
    @property
    def _spec(self):
        return get_cell(self._cell)

    def _layout(self, n_features, n_outputs):
        H, spec = self.hidden_size, self._spec
        ndir = 2 if self.bidirectional else 1
        # the stack is entered past its public validation (see _run_stack): check here what it
        # would have checked of the widths (BLAS takes 32-bit ints)
        check_blas_dims(gate_width=spec.gates * H, n_features=n_features, layer_input=ndir * H,
                        n_outputs=n_outputs)
        wshapes, bshapes = [], []
        for layer in range(self.num_layers):
            d_in = n_features if layer == 0 else ndir * H
            for _ in range(ndir):
                wshapes += spec.weight_shapes(d_in, H)
                bshapes += spec.bias_shapes(H)
        wshapes.append((ndir * H, n_outputs))  # output layer, (fan_in, fan_out) as MLP coefs_
        bshapes.append((n_outputs,))
        return FlatLayout(wshapes, bshapes)

    def _unpack(self, buf, layout):
        """Views: list over layers of list over directions of the cell's parameter tuple
        (w_ih, w_hh, bias...: the stack's ``weights``); head W, b."""
        ws, bs = layout.views(buf)
        ndir = 2 if self.bidirectional else 1
        nb = len(self._spec.biases)
        cells = [[(ws[2 * (l * ndir + d)], ws[2 * (l * ndir + d) + 1],
                   *bs[nb * (l * ndir + d):nb * (l * ndir + d + 1)])
                  for d in range(ndir)] for l in range(self.num_layers)]
        return cells, ws[-1], bs[-1]

    def _init_params(self, layout, dtype, rng):
        # PyTorch's recurrent init U(-1/sqrt(H), 1/sqrt(H)); LSTM forget-gate bias 1 (keeps the
        # cell's memory open early in training); Glorot-uniform output layer (as the MLPs).
        buf = np.empty(layout.n_params, dtype=dtype)
        cells, W, b = self._unpack(buf, layout)
        H = self.hidden_size
        k = 1.0 / np.sqrt(H)
        gate_names = self._spec.gate_names
        forget = gate_names.index("forget") if "forget" in gate_names else None
        for layer in cells:
            for params in layer:
                for p in params:        # w_ih, w_hh, then the bias(es)
                    p[...] = rng.uniform(-k, k, p.shape)
                if forget is not None:
                    params[2][forget * H:(forget + 1) * H] += 1.0
        bound = np.sqrt(6.0 / (W.shape[0] + W.shape[1]))
        W[...] = rng.uniform(-bound, bound, W.shape)
        b[...] = rng.uniform(-bound, bound, b.shape)
        return buf

    # ---- forward / backward of one batch --------------------------------------------------------
    def _run_stack(self, buf, layout, x, lengths, rng=None, keep_layer_outputs=False):
        """The recurrent layers over a batch: (top outputs (B, T, ndir H), final states
        [layer][direction], tape). Dropout between layers when rng is given.

        The stack is entered past its public validation (``stack._forward``): the weights are
        views into buf (never copied), every array is C-contiguous of buf's dtype with
        consistent shapes, and an overflow must surface as a non-finite loss/gradient
        (DivergenceWarning), not a ValueError about an intermediate layer's input."""
        cells, _, _ = self._unpack(buf, layout)
        lengths = np.asarray(lengths, dtype=np.intp)
        packing = _packing(lengths, *x.shape[:2])
        return _stack_forward(self._spec, x, cells, lengths, packing, dropout=self.dropout,
                              rng=rng, keep_layer_outputs=keep_layer_outputs)

    @staticmethod
    def _top_hidden(finals):
        """Final hidden state h of the top layer, directions side by side: (B, ndir H)."""
        hs = [states[0] for states in finals[-1]]
        return hs[0] if len(hs) == 1 else np.concatenate(hs, axis=1)

    @staticmethod
    def _head_offsets(layout, K):
        """The output layer as a one-layer dense network inside the flat buffer: its sizes and
        the offsets of its W and b (the last weight and the last bias of the layout)."""
        sizes = np.array([layout.weight_shapes[-1][0], K], dtype=np.intp)
        w_off = np.array([layout.offsets[len(layout.weight_shapes) - 1]], dtype=np.intp)
        b_off = np.array([layout.offsets[-2]], dtype=np.intp)
        return sizes, w_off, b_off

    def _batch_loss_grad(self, buf, grads, layout, x, lengths, Y, rng=None, work=None):
        """Objective (mean loss over the batch's targets, no L2) and its gradient in grads."""
        feats, finals, tape = self._run_stack(buf, layout, x, lengths, rng)
        per_step = self._per_step
        if per_step:
            valid = np.arange(x.shape[1])[None, :] < lengths[:, None]
            rows = np.ascontiguousarray(feats[valid])
            Yr = np.ascontiguousarray(Y[:, : x.shape[1]][valid])
        else:
            rows, Yr = np.ascontiguousarray(self._top_hidden(finals)), Y
        sizes, w_off, b_off = self._head_offsets(layout, Yr.shape[1])
        if work is None or work.size < _nn.workspace_size(sizes, rows.shape[0]):
            work = np.empty(_nn.workspace_size(sizes, rows.shape[0]), dtype=buf.dtype)
        d_rows = np.empty_like(rows)
        status, value = _nn.loss_grad(buf, grads, work, rows, Yr, sizes, w_off, b_off, 0, 0,
                                      _nn.LOSSES[self._loss_name], 0.0, d_rows)
        if status != 0:
            return status, value
        # the recurrent weights' gradients go straight into their views of grads
        gcells, _, _ = self._unpack(grads, layout)
        if per_step:
            d_top = np.zeros_like(feats)
            d_top[valid] = d_rows
            _stack_backward(tape, d_top, None, gcells, input_grad=False)
        else:
            # d loss / d (top final h) of each direction; the other states get none
            H, n_other = self.hidden_size, len(self._spec.states) - 1
            d_final = [None] * (len(gcells) - 1) + [
                [(np.ascontiguousarray(d_rows[:, d * H:(d + 1) * H]),) + (None,) * n_other
                 for d in range(len(gcells[-1]))]]
            _stack_backward(tape, None, d_final, gcells, input_grad=False)
        return 0, value

    def _predict_rows(self, buf, layout, X, lengths, chunk=256):
        """Output-layer activations: (n, K) per sequence, or (n, T, K) per step (zeros past
        each length)."""
        outs = []
        K = layout.weight_shapes[-1][1]
        sizes, w_off, b_off = self._head_offsets(layout, K)
        for s in range(0, X.shape[0], chunk):
            lens = lengths[s:s + chunk]
            x = np.ascontiguousarray(X[s:s + chunk, : lens.max()])
            feats, finals, _ = self._run_stack(buf, layout, x, lens)
            src = feats if self._per_step else self._top_hidden(finals)
            rows = np.ascontiguousarray(src.reshape(-1, src.shape[-1]))
            # output layer on the compiled dense engine: z = act(rows @ W + b)
            z = np.empty((rows.shape[0], K), dtype=buf.dtype)
            work = np.empty(_nn.workspace_size(sizes, rows.shape[0]), dtype=buf.dtype)
            _nn.predict(buf, rows, z, work, rows.shape[0], sizes, w_off, b_off, 0,
                        _nn.LOSSES[self._loss_name], True)
            z = z.reshape(src.shape[:-1] + (K,))
            if self._per_step:
                z[np.arange(z.shape[1])[None, :] >= lens[:, None]] = 0
                full = np.zeros((z.shape[0], X.shape[1], z.shape[2]), dtype=z.dtype)
                full[:, : z.shape[1]] = z
                z = full
            outs.append(z)
        return np.concatenate(outs, axis=0)

    # ---- fitting ------------------------------------------------------------------------------
    def _fit(self, X, y, incremental, classes=None):
        reuse = (self.warm_start or incremental) and hasattr(self, "_params")
        dtype = self._params.dtype if reuse else None
        Xp, lengths, _ = check_sequences(X, n_features=self.n_features_in_ if reuse else None,
                                         dtype=dtype)
        Y = self._encode_targets(y, Xp, lengths, reuse, incremental, classes)
        n = Xp.shape[0]
        self.n_features_in_ = Xp.shape[2]
        layout = self._layout(Xp.shape[2], Y.shape[-1])
        self._random_state = check_random_state(self.random_state)
        rng = self._random_state
        if reuse:
            # compare every tensor's shape, not only the total: e.g. one bidirectional layer
            # and two unidirectional ones can have the same number of parameters
            old = getattr(self, "_layout_", None)
            if (old is None or old.weight_shapes != layout.weight_shapes
                    or old.bias_shapes != layout.bias_shapes):
                raise ValueError("warm start: the architecture (hidden_size, num_layers, "
                                 "bidirectional, n_outputs) changed since the last fit; "
                                 "set warm_start=False to train a new network")
            params = self._params
        else:
            params = self._init_params(layout, Xp.dtype, rng)
            self._monitor = ConvergenceMonitor(early_stopping=self.early_stopping)
            self._optimizer = None
        monitor = self._monitor
        self.n_outputs_ = Y.shape[-1]
        # optimizer state and rate: kept across partial_fit calls, reset by fit
        optimizer = getattr(self, "_optimizer", None)
        if not incremental or optimizer is None:
            optimizer = OptimizerState(params)
            monitor.learning_rate = float(self.learning_rate_init)
        self._optimizer = optimizer.configure(self)

        idx_all = np.arange(n)
        val_idx = None
        if self.early_stopping and not incremental:
            perm = rng.permutation(n)
            n_val = max(1, int(round(self.validation_fraction * n)))
            if n - n_val < 1 or n_val < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            val_idx, idx_all = perm[:n_val], np.sort(perm[n_val:])
        n_train = idx_all.size
        batch = min(32, n_train) if self.batch_size == "auto" else min(self.batch_size, n_train)
        check_blas_dims(rows_per_batch=batch * Xp.shape[1])
        grads = np.empty_like(params)
        snapshot = np.empty_like(params)
        # output-layer workspace for the largest batch (rows = sequences, or valid steps)
        head_rows = batch * (Xp.shape[1] if self._per_step else 1)
        work = np.empty(_nn.workspace_size(self._head_offsets(layout, Y.shape[-1])[0],
                                           head_rows), dtype=params.dtype)
        max_norm = self.max_grad_norm
        order = idx_all.copy()

        def run_epoch(lr):
            if self.shuffle:
                rng.shuffle(order)
            snapshot[...] = params
            total = 0.0
            for s in range(0, n_train, batch):
                bi = np.sort(order[s:s + batch])
                lens = lengths[bi]
                x = np.ascontiguousarray(Xp[bi, : lens.max()])
                status, value = self._batch_loss_grad(
                    params, grads, layout, x, lens, Y[bi],
                    rng if self.dropout > 0 else None, work)
                rows = bi.size
                if status == 0:
                    # L2 penalty alpha/(2 n_batch) ||W||^2 on the weights (prefix of params)
                    w = params[: layout.n_weights]
                    value += 0.5 * self.alpha * float(w @ w) / rows
                    gnorm = _nn.grad_norm(grads)
                    status = 0 if np.isfinite(gnorm) and np.isfinite(value) else 1
                if status == 0:
                    clip = max_norm is not None and gnorm > max_norm
                    gscale = max_norm / gnorm if clip else 1.0
                    status = optimizer.step(params, grads, layout.n_weights, gscale,
                                            self.alpha / rows, lr)
                if status != 0:
                    params[...] = snapshot
                    optimizer.reset()
                    return False, None
                total += value * rows
            return True, total / n_train

        def score():
            return self._score_padded(params, layout, Xp[val_idx], lengths[val_idx], Y[val_idx])

        # set together, so a fit interrupted (KeyboardInterrupt) in the loop leaves a model
        # that predicts with the weights it has
        self._params, self._layout_ = params, layout
        network_epoch_loop(self, monitor, params, run_epoch, n_train,
                           None if val_idx is None else score, incremental)
        return self

    def _loss_grad(self, X, Y):
        """Private test hook: (objective, flat gradient) of one batch at the current weights,
        objective = mean loss + alpha/(2 n) ||W||^2 (no dropout). Y is the encoded target."""
        Xp, lengths, _ = check_sequences(X, dtype=self._params.dtype)
        grads = np.empty_like(self._params)
        layout = self._layout_
        status, value = self._batch_loss_grad(self._params, grads, layout, Xp, lengths, Y)
        n_w = layout.n_weights
        w = self._params[:n_w]
        value += 0.5 * self.alpha * float(w @ w) / Xp.shape[0]
        grads[:n_w] += self.alpha / Xp.shape[0] * w
        return value, grads

    def _forward(self, X):
        check_is_fitted(self, "_params")
        Xp, lengths, ragged = check_sequences(X, n_features=self.n_features_in_,
                                              dtype=self._params.dtype)
        return self._predict_rows(self._params, self._layout_, Xp, lengths), lengths, ragged

    def inspect(self, X):
        """Hidden states (and LSTM gate activations) of every layer at every time step.

        Parameters
        ----------
        X : sequences, as for fit.

        Returns
        -------
        states : dict
            ``"lengths"``: (n,) sequence lengths; ``"hidden"``: list over layers of
            (n, T, H * n_directions) hidden states h_t (zeros past each length; the backward
            direction, if any, in the second half, aligned to the input's time order). For LSTMs
            also ``"input_gate"``, ``"forget_gate"``, ``"output_gate"``, ``"cell_state"``: lists
            over layers of arrays of the same shape (gate activations i_t, f_t, o_t in (0, 1)
            and cell states c_t).
        """
        check_is_fitted(self, "_params")
        Xp, lengths, _ = check_sequences(X, n_features=self.n_features_in_,
                                         dtype=self._params.dtype)
        # one forward pass without dropout keeping each layer's outputs; the cell's named
        # activations (LSTM gates and cell states) come from the tape
        _, _, tape = self._run_stack(self._params, self._layout_, Xp, lengths,
                                     keep_layer_outputs=True)
        out = {"lengths": lengths, "hidden": tape.layer_outputs}
        out.update(tape.activations())
        return out

    def _score_padded(self, buf, layout, Xp, lengths, Y):
        """Validation score (the task's metric, ``_validation_score``) of padded sequences,
        with per-step padding masked out."""
        P = self._predict_rows(buf, layout, Xp, lengths)
        if self._per_step:
            valid = np.arange(Xp.shape[1])[None, :] < lengths[:, None]
            P, Y = P[valid], Y[valid]
        return self._validation_score(Y, P)


# ---- task heads -------------------------------------------------------------------------------
class _ClassifierMixin(ClassifierMixin):
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

    @property
    def _loss_name(self):
        return "log_loss" if getattr(self, "_softmax", False) else "binary_log_loss"

    def _target_mode(self, y, Xp, lengths):
        if self.output != "auto":
            return self.output
        if isinstance(y, (list, tuple)) and len(y) and not np.isscalar(y[0]):
            return "step"
        arr = np.asarray(y)
        return "step" if arr.ndim == 2 and arr.shape == Xp.shape[:2] else "sequence"

    def _encode_targets(self, y, Xp, lengths, reuse, incremental, classes):
        n, T = Xp.shape[:2]
        _check_y_present(y)
        mode = self._target_mode(y, Xp, lengths)
        if reuse and mode != ("step" if self._per_step else "sequence"):
            raise ValueError("warm start: the target type (per sequence / per step) changed")
        self._per_step = mode == "step"
        if self._per_step:
            if isinstance(y, (list, tuple)):
                ys = [np.asarray(v) for v in y]
            else:
                arr = np.asarray(y)
                if arr.ndim != 2 or arr.shape[0] != n:
                    raise ValueError(f"per-step y must have shape (n_samples, n_timesteps) = "
                                     f"{(n, T)} or be a list of (T_i,) label arrays, got "
                                     f"{arr.shape}")
                ys = [arr[i, : lengths[i]] for i in range(n)]
            if len(ys) != n:
                raise ValueError(f"y has {len(ys)} sequences, X has {n}")
            for i, v in enumerate(ys):
                if v.ndim != 1 or v.shape[0] != lengths[i]:
                    raise ValueError(f"per-step labels of sequence {i} must have shape "
                                     f"({lengths[i]},) (its length), got {v.shape}")
            flat = np.concatenate(ys)
        else:
            flat = np.asarray(y)
            if flat.ndim == 2 and flat.shape[1] == 1:
                flat = column_or_1d(flat, warn=True)
            if flat.ndim != 1:
                raise ValueError(f"y must be 1-D (one label per sequence) or shaped like the time "
                                 f"axis {(n, T)} (one label per step), got shape {flat.shape}")
            if flat.shape[0] != n:
                raise ValueError(f"y has {flat.shape[0]} labels, X has {n} sequences")
        if flat.dtype.kind == "f" and not np.isfinite(flat).all():
            raise ValueError("Input y contains NaN or infinity")
        check_classification_targets(flat)
        if incremental and not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit")
            self._binarizer = LabelBinarizer().fit(np.asarray(classes))
            self.classes_ = self._binarizer.classes_
        elif not (reuse and hasattr(self, "classes_")):
            self._binarizer = LabelBinarizer().fit(flat)
            self.classes_ = self._binarizer.classes_
        unknown = np.setdiff1d(np.unique(flat), self.classes_)
        if unknown.size:
            raise ValueError(f"y contains labels {unknown.tolist()} that are not in classes_ "
                             f"{self.classes_.tolist()}")
        self._softmax = len(self.classes_) > 2
        enc = self._binarizer.transform(flat).astype(Xp.dtype)
        if not self._per_step:
            return np.ascontiguousarray(enc)
        Y = np.zeros((n, T, enc.shape[1]), dtype=Xp.dtype)
        Y[np.arange(T)[None, :] < lengths[:, None]] = enc
        return Y

    def _decode(self, P):
        return self._binarizer.inverse_transform(P)

    def _validation_score(self, Y, P):
        """Accuracy of encoded outputs P against encoded targets Y (valid steps only)."""
        return accuracy_score(self._decode(Y), self._decode(P))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit on sequences X and labels y (one per sequence, or one per time step).

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y) from the current weights and optimizer state; ``classes`` is
        required on the first call.

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=True, classes=classes)

    def predict_proba(self, X):
        """Class probabilities: (n, n_classes), or per step (n, T, n_classes) for an array X /
        a list of (T_i, n_classes) arrays for a list X."""
        P, lengths, ragged = self._forward(X)
        if P.shape[-1] == 1:
            P = np.concatenate([1 - P, P], axis=-1)
        if self._per_step and ragged:
            return [P[i, : lengths[i]] for i in range(P.shape[0])]
        return P

    def predict(self, X):
        """Labels: (n,), or per step (n, T) for an array X / a list of (T_i,) arrays."""
        P, lengths, ragged = self._forward(X)
        if not self._per_step:
            return self._decode(P)
        n, T, K = P.shape
        labels = self._decode(P.reshape(n * T, K)).reshape(n, T)
        if ragged:
            return [labels[i, : lengths[i]] for i in range(n)]
        return labels

    def score(self, X, y):
        """Accuracy (over all valid time steps for per-step targets)."""
        pred = self.predict(X)
        if self._per_step:
            y = _valid_steps(y, pred)
            pred = np.concatenate([np.asarray(p).ravel() for p in pred])
            y = np.concatenate([np.asarray(v).ravel() for v in y])
        return accuracy_score(y, pred)


class _RegressorMixin(RegressorMixin):
    _loss_name = "squared_error"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.required = True
        return tags

    def _encode_targets(self, y, Xp, lengths, reuse, incremental, classes):
        n, T = Xp.shape[:2]
        _check_y_present(y)
        ragged_y = (isinstance(y, (list, tuple)) and len(y) and not np.isscalar(y[0])
                    and self.output != "sequence")
        if ragged_y:
            ys = [np.asarray(v, dtype=float) for v in y]
            ys = [v[:, None] if v.ndim == 1 else v for v in ys]
            # A list of equal-length rows that do not follow the sequence lengths is a
            # per-sequence (multi-output) target written as a list, e.g. y.tolist().
            ragged_y = not (len(ys) == n and len({v.shape for v in ys}) == 1 and
                            any(v.shape[0] != lengths[i] for i, v in enumerate(ys)))
        if ragged_y:
            if len(ys) != n:
                raise ValueError(f"y has {len(ys)} sequences, X has {n}")
            for i, v in enumerate(ys):
                if v.ndim != 2 or v.shape[0] != lengths[i]:
                    raise ValueError(f"per-step targets of sequence {i} must have {lengths[i]} "
                                     f"rows (its length), got shape {v.shape}")
            mode = "step"
        else:
            arr = np.asarray(y)
            if arr.dtype.kind not in "fiub":
                try:
                    arr = arr.astype(np.float64)
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"y must be numeric, got dtype {arr.dtype} ({exc})") from None
            if self.output != "auto":
                mode = self.output
            else:
                mode = "step" if (arr.ndim == 3 or (arr.ndim == 2 and arr.shape == (n, T)
                                                    and T > 1)) else "sequence"
        if reuse and mode != ("step" if self._per_step else "sequence"):
            raise ValueError("warm start: the target type (per sequence / per step) changed")
        self._per_step = mode == "step"
        if self._per_step:
            if not ragged_y:
                if arr.ndim == 2:
                    arr = arr[:, :, None]
                if arr.ndim != 3 or arr.shape[:2] != (n, T):
                    raise ValueError(f"per-step y must have shape {(n, T)} or {(n, T)} + "
                                     f"(n_outputs,), got {arr.shape}")
                ys = [arr[i, : lengths[i]] for i in range(n)]
            K = ys[0].shape[1]
            if any(v.shape[1] != K for v in ys):
                raise ValueError("all per-step targets must have the same number of outputs")
            flat = np.concatenate(ys).astype(Xp.dtype)
            if not np.isfinite(flat).all():
                raise ValueError("y contains NaN or infinity")
            Y = np.zeros((n, T, K), dtype=Xp.dtype)
            Y[np.arange(T)[None, :] < lengths[:, None]] = flat
            # predict returns per-step outputs without a trailing axis if y had none
            self._y_ndim = (2 if all(np.asarray(v).ndim == 1 for v in y) else 3) if ragged_y \
                else np.asarray(y).ndim
            return Y
        if arr.ndim not in (1, 2):
            raise ValueError(f"y must be (n_samples,) or (n_samples, n_outputs) per sequence, "
                             f"got shape {arr.shape}")
        if arr.shape[0] != n:
            raise ValueError(f"y has {arr.shape[0]} rows, X has {n} sequences")
        Y = arr.astype(Xp.dtype).reshape(n, -1)
        if not np.isfinite(Y).all():
            raise ValueError("y contains NaN or infinity")
        self._y_ndim = arr.ndim
        return np.ascontiguousarray(Y)

    def _validation_score(self, Y, P):
        """R^2 of outputs P against targets Y (valid steps only)."""
        return r2_score(Y, P)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit on sequences X and targets y (per sequence, or per time step).

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y):
        """One epoch over (X, y) from the current weights and optimizer state.

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """Predictions: (n,) / (n, n_outputs) per sequence; per step (n, T) / (n, T, n_outputs)
        for an array X, a list of (T_i,) / (T_i, n_outputs) arrays for a list X."""
        P, lengths, ragged = self._forward(X)
        # drop the output axis when y had none: (n,) per sequence, (n, T) per step
        if P.shape[-1] == 1 and self._y_ndim == (2 if self._per_step else 1):
            P = P[..., 0]
        if self._per_step and ragged:
            return [P[i, : lengths[i]] for i in range(P.shape[0])]
        return P

    def score(self, X, y):
        """R² (over all valid time steps for per-step targets)."""
        pred = self.predict(X)
        if self._per_step:
            y = _valid_steps(y, pred)
            pred = np.concatenate([np.asarray(p).reshape(np.asarray(p).shape[0], -1)
                                   for p in pred])
            y = np.concatenate([np.asarray(v).reshape(np.asarray(v).shape[0], -1) for v in y])
        return r2_score(y, pred)


_PARAMS_DOC = """
    Parameters
    ----------
    hidden_size : int, default=32
        Units per recurrent layer and direction.
    num_layers : int, default=1
        Stacked recurrent layers.
    bidirectional : bool, default=False
        Add a backward-in-time direction to every layer (outputs concatenated).
    dropout : float, default=0.0
        Inverted dropout on the inputs of layers 2.. during training.
    output : {"auto", "sequence", "step"}, default="auto"
        One target per sequence (read at the last valid step) or per time step; "auto" infers
        it from y's shape (shaped like the time axis, or a list of per-sequence arrays → step).
    solver, alpha, batch_size, learning_rate, learning_rate_init, power_t, max_iter, shuffle,
    random_state, tol, verbose, warm_start, momentum, nesterovs_momentum, early_stopping,
    validation_fraction, beta_1, beta_2, epsilon, n_iter_no_change :
        As :class:`fastseq.MLPClassifier` (batch_size "auto" = min(32, n_sequences); ``alpha``
        divides by the number of sequences in the batch; the early-stopping validation set is
        a random ``validation_fraction`` of the sequences, not stratified; ``partial_fit``
        never holds out data).
    max_grad_norm : float or None, default=5.0
        Clip the gradient to this global L2 norm before each step (on by default: recurrent
        gradients can explode).
"""


class _RNNParams(_BaseRecurrent):
    """Adds the Elman cell's ``nonlinearity`` to the shared parameters."""

    @property
    def _cell(self):
        return "rnn_" + self.nonlinearity   # the stack's cell specs "rnn_tanh" / "rnn_relu"

    _parameter_constraints: dict = {**_BaseRecurrent._parameter_constraints,
                                    "nonlinearity": [StrOptions({"tanh", "relu"})]}

    def __init__(self, hidden_size=32, *, nonlinearity="tanh", num_layers=1,
                 bidirectional=False, dropout=0.0, output="auto", solver="adam", alpha=0.0,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.005,
                 power_t=0.5, max_iter=100, shuffle=True, random_state=None, tol=1e-4,
                 verbose=False, warm_start=False, momentum=0.9, nesterovs_momentum=True,
                 early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, max_grad_norm=5.0):
        self.nonlinearity = nonlinearity
        super().__init__(
            hidden_size, num_layers=num_layers, bidirectional=bidirectional, dropout=dropout,
            output=output, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state,
            tol=tol, verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_grad_norm=max_grad_norm)


_ATTRS_DOC = """
    Attributes
    ----------
    classes_ : ndarray (classifiers)
    n_features_in_ : int
        Features per time step.
    n_outputs_ : int
    loss_, loss_curve_, best_loss_, validation_scores_, best_validation_score_, n_iter_, t_ :
        As :class:`fastseq.MLPClassifier`.

    Notes
    -----
    Divergence (non-finite loss, gradient or weight) stops training with
    :class:`fastseq.neural_network.DivergenceWarning` and keeps the weights of the epoch with the
    lowest training loss. :meth:`inspect` returns hidden states and LSTM gate activations per
    time step.
"""


class LSTMClassifier(_ClassifierMixin, _BaseRecurrent):
    __doc__ = """LSTM sequence classifier: one label per sequence or per time step.
""" + _PARAMS_DOC + _ATTRS_DOC + """
    Examples
    --------
    >>> from fastseq import LSTMClassifier
    >>> from fastseq.datasets import make_agreement
    >>> X, y = make_agreement(300, depth=1, random_state=0)
    >>> clf = LSTMClassifier(hidden_size=16, tol=1e-2, random_state=0).fit(X, y)
    >>> bool(clf.score(X, y) > 0.9)
    True
    >>> clf.inspect(X[:2])["forget_gate"][0].shape
    (2, 6, 16)
    """
    _cell = "lstm"


class LSTMRegressor(_RegressorMixin, _BaseRecurrent):
    __doc__ = """LSTM sequence regressor: targets per sequence or per time step.
""" + _PARAMS_DOC + _ATTRS_DOC + """
    Examples
    --------
    >>> import numpy as np
    >>> from fastseq import LSTMRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 8, 1))
    >>> y = X[:, :, 0].cumsum(axis=1)              # running sum: one target per step
    >>> reg = LSTMRegressor(hidden_size=16, tol=1e-2, max_iter=300, random_state=0).fit(X, y)
    >>> reg.predict(X[:3]).shape, bool(reg.score(X, y) > 0.9)
    ((3, 8), True)
    """
    _cell = "lstm"


class RNNClassifier(_ClassifierMixin, _RNNParams):
    __doc__ = """Elman RNN sequence classifier: one label per sequence or per time step.
""" + _PARAMS_DOC + """    nonlinearity : {"tanh", "relu"}, default="tanh"
""" + _ATTRS_DOC + """
    Examples
    --------
    >>> import numpy as np
    >>> from fastseq import RNNClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = [rng.normal(size=(t, 2)) for t in rng.integers(3, 9, 200)]   # ragged
    >>> y = np.array([int(x[:, 0].sum() > 0) for x in X])
    >>> clf = RNNClassifier(hidden_size=8, tol=1e-2, random_state=0).fit(X, y)
    >>> bool(clf.score(X, y) > 0.9)
    True
    """


class RNNRegressor(_RegressorMixin, _RNNParams):
    __doc__ = """Elman RNN sequence regressor: targets per sequence or per time step.
""" + _PARAMS_DOC + """    nonlinearity : {"tanh", "relu"}, default="tanh"
""" + _ATTRS_DOC + """
    Examples
    --------
    >>> import numpy as np
    >>> from fastseq import RNNRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 6))              # 2-D: univariate sequences
    >>> y = X[:, -3:].sum(axis=1)                  # sum of the last three steps
    >>> reg = RNNRegressor(hidden_size=16, tol=1e-2, max_iter=300, random_state=0).fit(X, y)
    >>> bool(reg.score(X, y) > 0.9)
    True
    """
