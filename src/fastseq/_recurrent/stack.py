"""The recurrent layer stack: layers x directions x inter-layer dropout over any registered cell.

What PyTorch keeps in ``aten/src/ATen/native/RNN.cpp`` (cell templates, full/packed and
bidirectional layers, one layer-stack loop that also applies the inter-layer dropout) lives
here, so model code never loops over layers and directions itself. The stack only knows cells
through their :class:`CellSpec`: the number of gate blocks, the names of the parameters and of
the recurrent states, and two kernel adapters. Adding a cell = writing its kernels and calling
:func:`register_cell` once; nothing below branches on a cell's name.

Layout (batch-first, as everywhere in ``fastseq.ops``):

- ``x`` (B, T, D); a layer's output (B, T, ndir H), the backward direction in the second half,
  aligned to the input's time order.
- ``weights[layer][direction]`` = the cell's parameters in ``spec.params`` order, e.g.
  ``(w_ih, w_hh, bias)``; layer 0 reads D features, the others ndir H.
- states (initial, final and their gradients) nest the same way:
  ``states[layer][direction]`` = one (B, H) array per name of ``spec.states``.

Ragged batches: the backward direction reverses each sequence within its own length (the
padding stays where it is), so it starts at the sequence's last valid step, as PyTorch's
bidirectional layers do on a packed sequence; the cell kernels then skip the padding.
"""
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fastseq._lib.validation import check_blas_dims
from fastseq._recurrent.cells import (
    _check_finite,
    _check_lengths,
    _float_array,
    _lstm_backward_impl,
    _lstm_forward_impl,
    _owned,
    _packing,
    _rnn_backward_impl,
    _rnn_forward_impl,
)

__all__ = ["CellSpec", "register_cell", "get_cell", "StackTape",
           "recurrent_stack_forward", "recurrent_stack_backward"]


# ---- cells ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CellSpec:
    """What the stack needs to know about one kind of recurrent cell.

    Attributes
    ----------
    name : str
        Registry key (``"lstm"``, ``"rnn_tanh"``, ``"rnn_relu"``).
    gates : int
        Gate blocks stacked along the rows of ``w_ih`` (gates H, D) and ``w_hh`` (gates H, H).
    gate_names : tuple of str
        The blocks, in row order (e.g. input, forget, cell, output).
    states : tuple of str
        Recurrent states, each (B, H): ``("h",)`` or ``("h", "c")``.
    biases : tuple of str
        Bias vectors, each (gates H,), after ``w_ih`` and ``w_hh`` in the parameter tuple: one
        folded ``"bias"`` when b_ih + b_hh can be summed, two (``"b_ih"``, ``"b_hh"``) when a
        gate multiplies b_hh alone (GRU's n gate).
    forward : callable
        ``forward(spec, x, params, init_states, packing) -> (y, final_states, cache)``: one
        direction over C-contiguous arrays of one dtype (no validation); ``init_states`` and
        ``final_states`` are tuples in ``states`` order (entries of ``init_states`` may be
        None = zeros); ``packing`` is ``cells._packing(lengths, B, T)``.
    backward : callable
        ``backward(spec, cache, dy, d_final_states) -> (dx, d_params, d_init_states)``; entries
        of ``d_final_states`` may be None.
    nonlinearity : str or None
        The Elman cell's activation, read by its kernel adapter.
    activations : callable or None
        ``activations(cache) -> dict`` of named (B, T, H) per-step arrays (e.g. gate
        activations) that :meth:`StackTape.activations` exposes; None if the cell has none.
    blas_sizes : bool
        The kernels hand sizes to 32-bit BLAS (checked by the public validation).
    """

    name: str
    gates: int
    gate_names: tuple[str, ...]
    states: tuple[str, ...]
    biases: tuple[str, ...]
    forward: Callable
    backward: Callable
    nonlinearity: str | None = None
    activations: Callable | None = None
    blas_sizes: bool = False

    @property
    def params(self):
        """Names of one layer-direction's parameters, in the order the tuples hold them."""
        return ("w_ih", "w_hh") + self.biases

    def weight_shapes(self, input_size, hidden_size):
        """Shapes of (w_ih, w_hh)."""
        return [(self.gates * hidden_size, input_size), (self.gates * hidden_size, hidden_size)]

    def bias_shapes(self, hidden_size):
        return [(self.gates * hidden_size,)] * len(self.biases)

    def param_shapes(self, input_size, hidden_size):
        """Shapes of every parameter, in ``params`` order."""
        return self.weight_shapes(input_size, hidden_size) + self.bias_shapes(hidden_size)


_CELLS = {}


_BUILTIN_CELLS = ("lstm", "rnn_tanh", "rnn_relu")


def register_cell(spec, *, replace=False):
    """Make ``spec`` available to the stack under ``spec.name``. A registered name is replaced
    only with ``replace=True``, and a built-in cell never (every estimator of the process uses
    it)."""
    if not isinstance(spec, CellSpec):
        raise TypeError(f"register_cell needs a CellSpec, got {type(spec).__name__}")
    if spec.name in _CELLS and (not replace or spec.name in _BUILTIN_CELLS):
        raise ValueError(f"a cell named {spec.name!r} is registered already: choose another "
                         "name" + ("" if spec.name in _BUILTIN_CELLS else " or pass replace=True"))
    _CELLS[spec.name] = spec
    return spec


def get_cell(cell):
    """The CellSpec for a registered name (a CellSpec is returned as is)."""
    if isinstance(cell, CellSpec):
        return cell
    if not isinstance(cell, str):
        raise TypeError(f"cell must be a cell name (str) or a CellSpec, got {type(cell).__name__}")
    try:
        return _CELLS[cell]
    except KeyError:
        raise ValueError(f"unknown cell {cell!r}: expected one of {sorted(_CELLS)} (register "
                         "new kinds with fastseq._recurrent.stack.register_cell)") from None


def _lstm_forward(spec, x, params, init_states, packing):
    y, h_n, c_n, cache = _lstm_forward_impl(x, *params, *init_states, packing)
    return y, (h_n, c_n), cache


def _lstm_backward(spec, cache, dy, d_final_states):
    dx, dw_ih, dw_hh, dbias, dh0, dc0 = _lstm_backward_impl(cache, dy, *d_final_states)
    return dx, (dw_ih, dw_hh, dbias), (dh0, dc0)


def _lstm_activations(cache):
    gates = cache.gates()
    return {"input_gate": gates["input"], "forget_gate": gates["forget"],
            "output_gate": gates["output"], "cell_state": cache.cell_states()}


def _rnn_forward(spec, x, params, init_states, packing):
    y, h_n, cache = _rnn_forward_impl(x, *params, *init_states, spec.nonlinearity == "relu",
                                      packing)
    return y, (h_n,), cache


def _rnn_backward(spec, cache, dy, d_final_states):
    dx, dw_ih, dw_hh, dbias, dh0 = _rnn_backward_impl(cache, dy, *d_final_states)
    return dx, (dw_ih, dw_hh, dbias), (dh0,)


register_cell(CellSpec("lstm", 4, ("input", "forget", "cell", "output"), ("h", "c"), ("bias",),
                       _lstm_forward, _lstm_backward, activations=_lstm_activations))
for _act in ("tanh", "relu"):
    register_cell(CellSpec(f"rnn_{_act}", 1, ("hidden",), ("h",), ("bias",), _rnn_forward,
                           _rnn_backward, nonlinearity=_act, blas_sizes=True))
del _act


# ---- the tape -----------------------------------------------------------------------------------
class StackTape:
    """What :func:`recurrent_stack_backward` needs from one :func:`recurrent_stack_forward` call
    (opaque; the cell caches hold the packed activations of every layer and direction).

    ``layer_outputs`` (with ``keep_layer_outputs=True``) lists every layer's (B, T, ndir H)
    output; :meth:`activations` gives the cells' per-step activations (LSTM gates, cell states).
    """

    __slots__ = ("spec", "shape", "dtype", "rev", "masks", "caches", "_layer_outputs")

    def __init__(self, spec, shape, dtype, rev, masks, caches, layer_outputs):
        self.spec = spec
        self.shape = shape          # (B, T, D, H, num_layers, num_directions)
        self.dtype = dtype
        self.rev = rev              # (B, T) per-sequence reversal index, None if unidirectional
        self.masks = masks          # per layer: the dropout multiplier of its input, or None
        self.caches = caches        # per layer, per direction: the cell kernel's cache
        self._layer_outputs = layer_outputs

    @property
    def layer_outputs(self):
        if self._layer_outputs is None:
            raise ValueError("the forward pass did not keep the layer outputs: call "
                             "recurrent_stack_forward(..., keep_layer_outputs=True)")
        return self._layer_outputs

    def activations(self):
        """The cell's named per-step arrays as ``{name: [per layer (B, T, ndir H)]}``, the
        backward direction re-aligned to input time (empty for cells without any)."""
        if self.spec.activations is None:
            return {}
        out = {}
        for caches in self.caches:
            per = {}
            for d, cache in enumerate(caches):
                for key, a in self.spec.activations(cache).items():
                    per.setdefault(key, []).append(a if d == 0 else _take_time(a, self.rev))
            for key, vals in per.items():
                out.setdefault(key, []).append(
                    vals[0] if len(vals) == 1 else np.concatenate(vals, axis=2))
        return out

    def __repr__(self):
        B, T, D, H, L, ndir = self.shape
        return (f"<StackTape cell={self.spec.name} layers={L} directions={ndir} batch={B} "
                f"time={T} features={D} hidden={H}>")


def _reverse_index(lengths, T):
    """(B, T) index reversing each sequence within its length (padding stays in place)."""
    t = np.arange(T)[None, :]
    L = lengths[:, None]
    return np.where(t < L, L - 1 - t, t)


def _take_time(a, idx):
    # a[b, idx[b, t]] for every (b, t); the reversal is its own inverse
    return np.ascontiguousarray(np.take_along_axis(a, idx[:, :, None], axis=1))


# ---- forward / backward after validation ---------------------------------------------------------
def _forward(spec, x, weights, lengths, packing, initial_states=None, dropout=0.0, rng=None,
             masks=None, keep_layer_outputs=False):
    """The stack over validated arguments: C-contiguous arrays of x's dtype with consistent
    shapes (weights may be views into a larger buffer: they are read, never copied or
    written), ``lengths`` intp (B,), ``packing = _packing(lengths, B, T)``. No finiteness
    checks: an overflowing network reaches the caller's divergence test. Dropout masks come
    from ``masks`` (per layer, None for layer 0) or, with ``dropout > 0`` and ``rng``, are
    drawn layer by layer with ``rng.random_sample`` (the estimators' RandomState)."""
    B, T, D = x.shape
    L, ndir = len(weights), len(weights[0])
    H = weights[0][0][1].shape[1]
    no_states = (None,) * len(spec.states)
    rev = _reverse_index(lengths, T) if ndir == 2 else None
    keep = 1.0 - dropout
    tape_masks, caches, finals, layer_outputs = [], [], [], [] if keep_layer_outputs else None
    inp = x
    for l, layer in enumerate(weights):
        mask = None
        if l > 0:
            if masks is not None:
                mask = masks[l]
            elif rng is not None and dropout > 0:
                mask = (rng.random_sample(inp.shape) < keep).astype(x.dtype) / x.dtype.type(keep)
            if mask is not None:
                inp = inp * mask
        outs, layer_finals, layer_caches = [], [], []
        for d, params in enumerate(layer):
            states = no_states if initial_states is None or initial_states[l] is None \
                else initial_states[l][d]
            xin = inp if d == 0 else _take_time(inp, rev)
            y, final, cache = spec.forward(spec, xin, params, states, packing)
            outs.append(y if d == 0 else _take_time(y, rev))
            layer_finals.append(final)
            layer_caches.append(cache)
        inp = outs[0] if ndir == 1 else np.concatenate(outs, axis=2)
        if keep_layer_outputs:
            layer_outputs.append(inp)
        tape_masks.append(mask)
        caches.append(layer_caches)
        finals.append(layer_finals)
    tape = StackTape(spec, (B, T, D, H, L, ndir), x.dtype, rev, tape_masks, caches, layer_outputs)
    return inp, finals, tape


def _backward(tape, dy=None, d_final_states=None, weight_grads_out=None, input_grad=True):
    """recurrent_stack_backward after validation. ``dy`` None = no gradient on the top outputs
    (one read-only zeros array serves every direction); ``weight_grads_out`` (same nesting as
    the weights) receives the weight gradients in place (the estimators' flat gradient buffer);
    ``input_grad=False`` skips assembling dx of layer 0 (returned as None)."""
    spec = tape.spec
    B, T, _, H, L, ndir = tape.shape
    rev = tape.rev
    no_states = (None,) * len(spec.states)
    d_top = dy
    zeros = None if d_top is not None else np.zeros((B, T, H), dtype=tape.dtype)
    dweights = [[None] * ndir for _ in range(L)]
    d_init = [[None] * ndir for _ in range(L)]
    d_in = None
    for l in range(L - 1, -1, -1):
        d_in = None
        for d, cache in enumerate(tape.caches[l]):
            if d_top is None:
                g_y = zeros
            else:
                g_y = np.ascontiguousarray(d_top[:, :, d * H:(d + 1) * H])
                if d == 1:
                    g_y = _take_time(g_y, rev)
            g_final = no_states if d_final_states is None or d_final_states[l] is None \
                else d_final_states[l][d]
            dx, dparams, dstates = spec.backward(spec, cache, g_y, g_final)
            if weight_grads_out is not None:
                for out, g in zip(weight_grads_out[l][d], dparams):
                    out[...] = g
                dparams = weight_grads_out[l][d]
            dweights[l][d] = dparams
            d_init[l][d] = dstates
            if l > 0 or input_grad:
                if d == 1:
                    dx = _take_time(dx, rev)
                d_in = dx if d_in is None else d_in + dx
        if l > 0:
            mask = tape.masks[l]
            d_top = d_in * mask if mask is not None else d_in
    return (d_in if input_grad else None), dweights, d_init


# ---- public entry points (validation) ------------------------------------------------------------
def _nested(value, L, ndir, name, what, layers_optional=True):
    """Check `value` nests as [layer][direction] (or is None; so may a layer be, if
    ``layers_optional``); returns it as nested lists."""
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != L:
        raise ValueError(f"{name} must be a list over the {L} layers of lists over the {ndir} "
                         f"direction(s) of {what}, or None")
    out = []
    for l, layer in enumerate(value):
        if layer is None and layers_optional:
            out.append(None)
            continue
        if not isinstance(layer, (list, tuple)) or len(layer) != ndir:
            raise ValueError(f"{name}[{l}] must hold one entry per direction ({ndir}), "
                             f"got {layer!r:.80}")
        out.append(list(layer))
    return out


def _check_states(states, spec, L, ndir, B, H, dtype, name):
    """Validate nested states: each [l][d] a tuple of (B, H) arrays (or None) per state name."""
    what = f"{len(spec.states)}-tuples {spec.states} of (B, H) arrays"
    states = _nested(states, L, ndir, name, what)
    if states is None:
        return None
    for l, layer in enumerate(states):
        if layer is None:
            continue
        for d, entry in enumerate(layer):
            if entry is None:
                layer[d] = (None,) * len(spec.states)
                continue
            if not isinstance(entry, (list, tuple)) or len(entry) != len(spec.states):
                raise ValueError(f"{name}[{l}][{d}] must be a tuple {spec.states} (the "
                                 f"{spec.name} cell's states), got {entry!r:.80}")
            arrs = []
            for s_name, s in zip(spec.states, entry):
                label = f"{name}[{l}][{d}] ({s_name})"
                if s is not None:
                    s = _float_array(s, label, dtype)
                    if s.shape != (B, H):
                        raise ValueError(f"{label} must have shape {(B, H)} (batch, "
                                         f"hidden_size), got {s.shape}")
                    _check_finite(s, label)
                arrs.append(s)
            layer[d] = tuple(arrs)
    return states


def _full_lengths(lengths, B, T):
    lens = _check_lengths(lengths, B, T)
    return np.full(B, T, dtype=np.intp) if lens is None else lens


def recurrent_stack_forward(x, weights, cell="lstm", *, lengths=None, initial_states=None,
                            dropout=0.0, rng=None, masks=None, keep_layer_outputs=False):
    """Multi-layer (optionally bidirectional) recurrent network, as ``torch.nn.LSTM`` /
    ``torch.nn.RNN`` with ``batch_first=True``.

    Layer l > 0 reads the previous layer's outputs (both directions concatenated), multiplied
    by an inverted-dropout mask when dropout is active. The backward direction of a layer reads
    every sequence reversed within its own length, so ragged batches behave as PyTorch's
    packed sequences.

    Parameters
    ----------
    x : ndarray (B, T, D), float32 or float64
    weights : list over layers of lists over directions (1 or 2) of parameter tuples
        ``weights[l][d]`` holds the cell's parameters in ``get_cell(cell).params`` order:
        ``(w_ih, w_hh, bias)`` for ``"lstm"`` and ``"rnn_*"`` (w_ih (gates H, D_l),
        w_hh (gates H, H), bias = PyTorch's b_ih + b_hh), with D_0 = D and D_l = ndir H.
        The tape keeps copies of arrays that share memory with them, so modifying the weights
        before the backward pass does not change its gradients.
    cell : {"lstm", "rnn_tanh", "rnn_relu"} or CellSpec, default="lstm"
    lengths : array of int (B,), optional
        Length of each sequence, in [1, T]; outputs past it are zero and no work is spent on
        the padding.
    initial_states : nested list, optional
        ``initial_states[l][d]`` = tuple of (B, H) arrays in the cell's ``states`` order
        (``(h0,)`` or ``(h0, c0)``); None at any level means zeros.
    dropout : float in [0, 1), default=0.0
        Probability of zeroing an input of layers 1.. (survivors scaled by 1/(1 - dropout));
        applied only when ``rng`` is given (training).
    rng : numpy.random.RandomState or numpy.random.Generator, optional
        Draws the masks, one (B, T, ndir H) array per layer l > 0, in layer order.
    masks : list of length num_layers, optional
        Explicit dropout multipliers instead (entry 0 must be None; None = no dropout on that
        layer's input), e.g. to fix the mask in a test. Exclusive with ``rng``.
    keep_layer_outputs : bool, default=False
        Keep every layer's outputs in ``tape.layer_outputs``.

    Returns
    -------
    y : ndarray (B, T, ndir H)
        The top layer's outputs.
    final_states : nested list
        ``final_states[l][d]`` = tuple of (B, H) final states (a sequence's state after its
        last valid step; for the backward direction, after its first step).
    tape : StackTape
        Opaque; pass to :func:`recurrent_stack_backward`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastseq.ops import recurrent_stack_forward, recurrent_stack_backward
    >>> rng = np.random.default_rng(0)
    >>> B, T, D, H = 3, 5, 2, 4
    >>> def params(d_in):
    ...     return (rng.normal(size=(4 * H, d_in)), rng.normal(size=(4 * H, H)), np.zeros(4 * H))
    >>> weights = [[params(D), params(D)], [params(2 * H), params(2 * H)]]  # 2 layers, bidir.
    >>> x = rng.normal(size=(B, T, D))
    >>> y, finals, tape = recurrent_stack_forward(x, weights, "lstm", lengths=[5, 2, 4])
    >>> y.shape, len(finals), [s.shape for s in finals[1][0]]
    ((3, 5, 8), 2, [(3, 4), (3, 4)])
    >>> dx, dweights, d_init = recurrent_stack_backward(tape, np.ones_like(y))
    >>> dx.shape, dweights[1][1][0].shape, bool(np.all(dx[1, 2:] == 0))
    ((3, 5, 2), (16, 8), True)
    """
    spec = get_cell(cell)
    x_arr = _float_array(x, "x")
    if x_arr.ndim != 3 or 0 in x_arr.shape:
        raise ValueError(f"x must be a non-empty 3-D array (batch, time, features), got shape "
                         f"{x_arr.shape}")
    B, T, D = x_arr.shape
    dtype = x_arr.dtype
    n_par = len(spec.params)
    if not isinstance(weights, (list, tuple)) or len(weights) == 0:
        raise TypeError("weights must be a non-empty list over layers of lists over directions "
                        f"of {spec.params} tuples")
    L = len(weights)
    first = weights[0]
    ndir = len(first) if isinstance(first, (list, tuple)) else 0
    if ndir not in (1, 2):
        raise ValueError(f"weights[0] must hold 1 (unidirectional) or 2 (bidirectional) "
                         f"parameter tuples, got {ndir}: weights nest as [layer][direction], "
                         f"e.g. [[(w_ih, w_hh, bias)]] for one unidirectional layer")
    _nested(weights, L, ndir, "weights", f"{spec.params} tuples", layers_optional=False)
    w_hh0 = (np.asarray(first[0][1])
             if isinstance(first[0], (list, tuple)) and len(first[0]) == n_par else None)
    if w_hh0 is None or w_hh0.ndim != 2 or w_hh0.shape[1] == 0:
        raise ValueError(f"weights[0][0] must be a tuple {spec.params} with w_hh of shape "
                         f"({spec.gates}*hidden_size, hidden_size)")
    H = w_hh0.shape[1]
    checked = []
    for l, layer in enumerate(weights):
        d_in = D if l == 0 else ndir * H
        shapes = spec.param_shapes(d_in, H)
        row = []
        for d, params in enumerate(layer):
            if not isinstance(params, (list, tuple)) or len(params) != n_par:
                raise ValueError(f"weights[{l}][{d}] must be a tuple {spec.params} "
                                 f"(the {spec.name} cell's parameters)")
            arrs = []
            for p_name, p, shape in zip(spec.params, params, shapes):
                label = f"weights[{l}][{d}] ({p_name})"
                arr = _float_array(p, label, dtype)
                if arr.shape != shape:
                    src = "x's n_features" if l == 0 else "num_directions * hidden_size"
                    raise ValueError(f"{label} must have shape {shape} (gates {spec.gates}, "
                                     f"hidden_size {H}, inputs = {src}), got {arr.shape}")
                _check_finite(arr, label)
                # the tape keeps its own copy of a caller's array, as the cell ops' caches do:
                # changing the weights between forward and backward cannot change the gradients
                arrs.append(_owned(arr, p))
            row.append(tuple(arrs))
        checked.append(row)
    _check_finite(x_arr, "x")
    if spec.blas_sizes:
        check_blas_dims(rows_total=B * T, gate_width=spec.gates * H, n_features=D,
                        layer_input=ndir * H)
    lens = _full_lengths(lengths, B, T)
    states = _check_states(initial_states, spec, L, ndir, B, H, dtype, "initial_states")
    if not (isinstance(dropout, (int, float, np.floating)) and 0 <= dropout < 1):
        raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
    if masks is not None and rng is not None:
        raise ValueError("pass either rng (masks drawn) or masks (fixed), not both")
    if rng is not None:
        if isinstance(rng, np.random.Generator):
            rng = _GeneratorAdapter(rng)
        elif not isinstance(rng, np.random.RandomState):
            raise TypeError("rng must be a numpy.random.RandomState or Generator, got "
                            f"{type(rng).__name__}")
    if masks is not None:
        if not isinstance(masks, (list, tuple)) or len(masks) != L or masks[0] is not None:
            raise ValueError(f"masks must be a list of {L} entries (one per layer), the first "
                             "None (layer 0 reads x undropped)")
        masks = [None] + [None if m is None else _float_array(m, f"masks[{l}]", dtype)
                          for l, m in enumerate(masks[1:], 1)]
        for l, m in enumerate(masks[1:], 1):
            if m is not None and m.shape != (B, T, ndir * H):
                raise ValueError(f"masks[{l}] must have shape {(B, T, ndir * H)} (layer {l}'s "
                                 f"input), got {m.shape}")
            if m is not None:
                _check_finite(m, f"masks[{l}]")
    packing = _packing(lens, B, T)
    return _forward(spec, x_arr, checked, lens, packing, states, float(dropout), rng, masks,
                    bool(keep_layer_outputs))


class _GeneratorAdapter:
    """A numpy Generator seen through RandomState's ``random_sample``."""

    __slots__ = ("_gen",)

    def __init__(self, gen):
        self._gen = gen

    def random_sample(self, shape):
        return self._gen.random(shape)


def recurrent_stack_backward(tape, dy=None, d_final_states=None):
    """Gradients of a :func:`recurrent_stack_forward` pass by backpropagation through time.

    Parameters
    ----------
    tape : StackTape
        From :func:`recurrent_stack_forward`.
    dy : ndarray (B, T, ndir H), optional
        dL/d(top layer outputs); entries past a sequence's length are ignored. None = zeros.
    d_final_states : nested list, optional
        ``d_final_states[l][d]`` = tuple of (B, H) arrays dL/d(final states) in the cell's
        ``states`` order; None at any level means zeros.

    Returns
    -------
    dx : ndarray (B, T, D)
        Zero past each length.
    dweights : nested list
        Same nesting as the weights: ``dweights[l][d]`` = gradient of each parameter.
    d_initial_states : nested list
        ``d_initial_states[l][d]`` = tuple of (B, H) gradients w.r.t. the initial states.

    Examples
    --------
    >>> import numpy as np
    >>> from fastseq.ops import recurrent_stack_forward, recurrent_stack_backward
    >>> rng = np.random.default_rng(0)
    >>> w = [[(rng.normal(size=(3, 2)), rng.normal(size=(3, 3)), np.zeros(3))]]
    >>> y, finals, tape = recurrent_stack_forward(np.ones((1, 4, 2)), w, "rnn_relu")
    >>> dx, dw, dh0 = recurrent_stack_backward(tape, d_final_states=[[(np.ones((1, 3)),)]])
    >>> dx.shape, dw[0][0][1].shape, dh0[0][0][0].shape
    ((1, 4, 2), (3, 3), (1, 3))
    """
    if not isinstance(tape, StackTape):
        raise TypeError(f"recurrent_stack_backward needs the tape returned by "
                        f"recurrent_stack_forward, got {type(tape).__name__}")
    spec = tape.spec
    B, T, _, H, L, ndir = tape.shape
    dtype = tape.dtype
    dy_arr = None
    if dy is not None:
        dy_arr = _float_array(dy, "dy", dtype)
        if dy_arr.shape != (B, T, ndir * H):
            raise ValueError(f"dy must have shape {(B, T, ndir * H)} (batch, time, "
                             f"num_directions * hidden_size of the forward call), got "
                             f"{dy_arr.shape}")
        _check_finite(dy_arr, "dy")
    d_final = _check_states(d_final_states, spec, L, ndir, B, H, dtype, "d_final_states")
    return _backward(tape, dy_arr, d_final)
