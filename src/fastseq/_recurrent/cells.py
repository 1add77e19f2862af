"""Public LSTM / Elman RNN kernels (re-exported by ``fastseq.ops``): validation, workspace
allocation and the opaque cache; the work itself is ``fastseq._recurrent._recurrent_fast``
(Cython + C + BLAS).

See ``fastseq.reference.recurrent`` for the maths these compute, in readable NumPy.
"""

import numpy as np

from fastseq._lib import _workspace
from fastseq._lib.validation import check_blas_dims
from fastseq._recurrent import _recurrent_fast as _recurrent

__all__ = ["lstm_forward", "lstm_backward", "rnn_forward", "rnn_backward",
           "LSTMCache", "RNNCache"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


# ---- validation ---------------------------------------------------------------------------------
def _float_array(a, name, dtype=None):
    """`a` as a C-contiguous ndarray of `dtype` (or float32/float64 if None); TypeError if not."""
    arr = np.asarray(a)
    if dtype is None:
        if arr.dtype not in _FLOATS:
            raise TypeError(f"{name} must be a float32 or float64 array, got dtype {arr.dtype}")
    elif arr.dtype != dtype:
        raise TypeError(
            f"{name} has dtype {arr.dtype} but x has dtype {dtype}: all arrays must share one "
            f"dtype (float32 or float64); convert with .astype(np.{dtype})")
    return np.ascontiguousarray(arr)


def _check_finite(arr, name):
    if not _recurrent.all_finite(arr.reshape(-1)):
        raise ValueError(f"{name} contains NaN or infinity")


def _check_shape(arr, shape, name, what):
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape} ({what}), got {arr.shape}")


def _owned(arr, original):
    """A copy if `arr` is (a view of) the caller's array, so the cache never aliases inputs."""
    return arr.copy() if np.may_share_memory(arr, np.asarray(original)) else arr


def _validate(kind, x, w_ih, w_hh, bias, states, lengths):
    """Validate the forward arguments; returns arrays, sizes, perm and batch_sizes."""
    x_arr = _float_array(x, "x")
    if x_arr.ndim != 3:
        raise ValueError(f"x must be 3-D (batch, time, features), got shape {x_arr.shape}")
    B, T, D = x_arr.shape
    if B == 0 or T == 0 or D == 0:
        raise ValueError(f"x must be non-empty (batch, time, features), got shape {x_arr.shape}")
    dtype = x_arr.dtype
    w_hh_arr = _float_array(w_hh, "w_hh", dtype)
    gates = 4 if kind == "lstm" else 1
    rows = "4*hidden_size" if gates == 4 else "hidden_size"
    if (w_hh_arr.ndim != 2 or w_hh_arr.shape[1] == 0
            or w_hh_arr.shape[0] != gates * w_hh_arr.shape[1]):
        raise ValueError(f"w_hh must have shape ({rows}, hidden_size), got {w_hh_arr.shape}")
    H = w_hh_arr.shape[1]
    w_ih_arr = _float_array(w_ih, "w_ih", dtype)
    _check_shape(w_ih_arr, (gates * H, D), "w_ih", f"{rows}, n_features of x")
    bias_arr = _float_array(bias, "bias", dtype)
    _check_shape(bias_arr, (gates * H,), "bias", rows)
    arrays = [("x", x_arr), ("w_ih", w_ih_arr), ("w_hh", w_hh_arr), ("bias", bias_arr)]
    state_arrs = []
    for name, s in states:
        if s is not None:
            s = _float_array(s, name, dtype)
            _check_shape(s, (B, H), name, "batch, hidden_size")
            arrays.append((name, s))
        state_arrs.append(s)
    for name, arr in arrays:
        _check_finite(arr, name)
    if kind == "rnn":   # the RNN's products are BLAS calls (32-bit sizes); the LSTM has none
        check_blas_dims(rows_total=B * T, gate_width=gates * H, n_features=D, hidden_size=H)

    perm, batch_sizes, ragged = _packing(_check_lengths(lengths, B, T), B, T)
    weights = (_owned(w_ih_arr, w_ih), _owned(w_hh_arr, w_hh))
    return x_arr, weights, bias_arr, state_arrs, (B, T, D, H), perm, batch_sizes, ragged


def _check_lengths(lengths, B, T):
    """``lengths`` as an intp array of B values in [1, T], or None (every sequence has T steps)."""
    if lengths is None:
        return None
    lens = np.asarray(lengths)
    if lens.dtype.kind not in "iu" or lens.dtype == np.bool_:
        raise TypeError(f"lengths must be an integer array, got dtype {lens.dtype}")
    if lens.shape != (B,):
        raise ValueError(f"lengths must have shape ({B},) (one length per sequence of x), "
                         f"got {lens.shape}")
    if lens.min() < 1 or lens.max() > T:
        raise ValueError(f"lengths must lie in [1, {T}] (T = x.shape[1]), got values in "
                         f"[{lens.min()}, {lens.max()}]")
    return lens.astype(np.intp)


def _packing(lens, B, T):
    """(perm, batch_sizes, ragged) of validated lengths (intp, in [1, T]; None = all T)."""
    if lens is None or lens.min() == T:
        return np.arange(B, dtype=np.intp), np.full(T, B, dtype=np.intp), False
    # Longest first, so the sequences running at step t are a prefix of the sorted batch.
    perm = np.argsort(-lens, kind="stable").astype(np.intp, copy=False)
    # n_t = #{b : lengths[b] > t} = B - #{b : lengths[b] <= t}
    batch_sizes = B - np.cumsum(np.bincount(lens, minlength=T + 1))[:T]
    return perm, batch_sizes.astype(np.intp), True


class _RecurrentCache:
    """Shared machinery of LSTMCache / RNNCache (opaque to users; see their docstrings)."""

    __slots__ = ("_kind", "_shape", "_dtype", "_perm", "_batch_sizes", "_ragged", "_arrays")

    def __init__(self, kind, shape, dtype, perm, batch_sizes, ragged, arrays):
        self._kind = kind
        self._shape = shape
        self._dtype = dtype
        self._perm = perm
        self._batch_sizes = batch_sizes
        self._ragged = ragged
        self._arrays = arrays

    @property
    def shape(self):
        """(batch, time, n_features, hidden_size) of the forward call."""
        return self._shape

    @property
    def dtype(self):
        return self._dtype

    @property
    def lengths(self):
        """Length of each sequence (in the caller's batch order)."""
        B, T = self._shape[:2]
        lengths = np.empty(B, dtype=np.intp)
        lengths[self._perm] = np.searchsorted(-self._batch_sizes, -np.arange(B), side="left")
        return lengths

    @property
    def nbytes(self):
        """Memory held by the cache, in bytes: O(N (D + k H)) with N = sum of lengths."""
        return sum(a.nbytes for a in self._arrays.values() if isinstance(a, np.ndarray))

    def _unpack(self, packed):
        """Packed time-major rows (N, w) -> batch-first (B, T, w), zeros past each length."""
        B, T = self._shape[:2]
        out = np.zeros((B, T, packed.shape[1]), dtype=packed.dtype)
        steps = np.repeat(np.arange(T), self._batch_sizes)
        rows = np.concatenate([np.arange(n) for n in self._batch_sizes])
        out[self._perm[rows], steps] = packed
        return out

    def _check_grad(self, kind, dy, extra):
        if not isinstance(self, _RecurrentCache) or self._kind != kind:
            raise TypeError(f"{kind}_backward needs the cache returned by {kind}_forward, "
                            f"got {type(self).__name__}")
        B, T, D, H = self._shape
        dy_arr = _float_array(dy, "dy", self._dtype)
        _check_shape(dy_arr, (B, T, H), "dy", "batch, time, hidden_size of the forward call")
        _check_finite(dy_arr, "dy")
        out = []
        for name, g in extra:
            if g is not None:
                g = _float_array(g, name, self._dtype)
                _check_shape(g, (B, H), name, "batch, hidden_size of the forward call")
                _check_finite(g, name)
            out.append(g)
        return dy_arr, out

    def __repr__(self):
        B, T, D, H = self._shape
        return (f"<{type(self).__name__} batch={B} time={T} features={D} hidden={H} "
                f"dtype={self._dtype} {self.nbytes / 2**20:.1f} MiB>")


class LSTMCache(_RecurrentCache):
    """What :func:`lstm_backward` needs from one :func:`lstm_forward` call (opaque).

    Holds copies of the packed inputs and weights, the gate activations, the cell states and the
    hidden states entering every step: memory O(N (D + 6H)) values with N = sum of lengths
    (B*T without ``lengths``), as in any backpropagation through time. The arrays are never
    modified, so backward may be called more than once. ``gates()`` exposes the activations.
    """

    __slots__ = ()

    def gates(self):
        """Per-step gate activations as a dict of (B, T, H) arrays (zeros past each length):
        ``"input"`` i, ``"forget"`` f, ``"cell"`` g (the tanh candidate), ``"output"`` o."""
        H = self._shape[3]
        g = self._unpack(self._arrays["gates"])
        return {name: g[:, :, k * H:(k + 1) * H].copy()
                for k, name in enumerate(("input", "forget", "cell", "output"))}

    def cell_states(self):
        """Cell states c_t, (B, T, H), zeros past each length."""
        return self._unpack(self._arrays["cells"])


class RNNCache(_RecurrentCache):
    """What :func:`rnn_backward` needs from one :func:`rnn_forward` call (opaque).

    Holds copies of the packed inputs and weights and the hidden states of every step:
    memory O(N (D + 2H)) values with N = sum of lengths. Never modified by backward.
    """

    __slots__ = ()

    @property
    def nonlinearity(self):
        return "relu" if self._arrays["relu"] else "tanh"


# ---- LSTM ---------------------------------------------------------------------------------------
def lstm_forward(x, w_ih, w_hh, bias, h0=None, c0=None, lengths=None):
    """LSTM over a batch of sequences (batch-first), as ``torch.nn.LSTM(batch_first=True)``.

    Parameters
    ----------
    x : ndarray (B, T, D), float32 or float64
    w_ih : ndarray (4H, D)
        Input weights, gates stacked in the order input, forget, cell (g), output.
    w_hh : ndarray (4H, H)
        Recurrent weights, same gate order.
    bias : ndarray (4H,)
        Sum of PyTorch's ``bias_ih`` and ``bias_hh``.
    h0, c0 : ndarray (B, H), optional
        Initial hidden and cell states (zeros if omitted).
    lengths : array of int (B,), optional
        Length of each sequence, in [1, T]. Outputs past a sequence's length are zero, ``h_n``
        and ``c_n`` are taken at its last step, and no work is spent on the padding.

    Returns
    -------
    y : ndarray (B, T, H)
        Hidden state h_t of every step.
    h_n, c_n : ndarray (B, H)
        Final hidden and cell states.
    cache : LSTMCache
        Opaque; pass to :func:`lstm_backward`. ``cache.gates()`` gives the gate activations.

    All arrays must share x's dtype (TypeError otherwise). The inputs are never modified.

    Examples
    --------
    >>> import numpy as np
    >>> from fastseq.ops import lstm_forward, lstm_backward
    >>> rng = np.random.default_rng(0)
    >>> B, T, D, H = 2, 5, 3, 4
    >>> x = rng.standard_normal((B, T, D))
    >>> w_ih, w_hh = rng.standard_normal((4 * H, D)), rng.standard_normal((4 * H, H))
    >>> y, h_n, c_n, cache = lstm_forward(x, w_ih, w_hh, np.zeros(4 * H), lengths=[5, 3])
    >>> y.shape, bool(np.all(y[1, 3:] == 0)), bool(np.allclose(h_n[1], y[1, 2]))
    ((2, 5, 4), True, True)
    >>> dx, dw_ih, dw_hh, dbias, dh0, dc0 = lstm_backward(cache, np.ones_like(y))
    >>> dw_ih.shape, dh0.shape
    ((16, 3), (2, 4))
    """
    x_arr, (w_ih_c, w_hh_c), bias_c, (h0_arr, c0_arr), _, perm, batch_sizes, ragged = \
        _validate("lstm", x, w_ih, w_hh, bias, (("h0", h0), ("c0", c0)), lengths)
    return _lstm_forward_impl(x_arr, w_ih_c, w_hh_c, bias_c, h0_arr, c0_arr,
                              (perm, batch_sizes, ragged))


def _lstm_forward_impl(x_arr, w_ih_c, w_hh_c, bias_c, h0_arr, c0_arr, packing, isa=0):
    """lstm_forward after validation. Also fastseq's estimators' entry point: they pass
    C-contiguous arrays of one dtype with consistent shapes, weights they do not modify before
    backward, and ``packing = _packing(lengths, B, T)`` computed once for all layers. No
    finiteness checks: an overflowing network must reach the training loop's divergence test
    (non-finite loss or gradient norm), not a ValueError about an intermediate array.
    ``isa`` forces the tile kernels (tests; 0 = the best for this CPU, see csrc/lib/packed.h)."""
    perm, batch_sizes, ragged = packing
    B, T, D = x_arr.shape
    H = w_hh_c.shape[1]
    dtype = x_arr.dtype
    N = int(batch_sizes.sum())
    y = (_workspace.zeros if ragged else _workspace.empty)((B, T, H), dtype)
    h_n = np.empty((B, H), dtype)
    c_n = np.empty((B, H), dtype)
    arrays = dict(
        w_ih=w_ih_c, w_hh=w_hh_c,
        xh=_workspace.empty((N, D + H), dtype),  # [x_packed | h_in], see _recurrent_fast.pyx
        gates=_workspace.empty((N, 4 * H), dtype),
        cells=_workspace.empty((N, H), dtype),
        c_init=np.empty((B, H), dtype),
    )
    _recurrent.lstm_forward(x_arr, w_ih_c, w_hh_c, bias_c, h0_arr, c0_arr, perm, batch_sizes,
                            y, h_n, c_n, arrays["xh"], arrays["gates"], arrays["cells"],
                            arrays["c_init"], isa)
    cache = LSTMCache("lstm", (B, T, D, H), dtype, perm, batch_sizes, ragged, arrays)
    return y, h_n, c_n, cache


def lstm_backward(cache, dy, dh_n=None, dc_n=None):
    """Gradients of an LSTM forward pass by backpropagation through time.

    Parameters
    ----------
    cache : LSTMCache
        From :func:`lstm_forward`.
    dy : ndarray (B, T, H)
        dL/dy; entries past a sequence's length are ignored.
    dh_n, dc_n : ndarray (B, H), optional
        dL/dh_n and dL/dc_n (zeros if omitted).

    Returns
    -------
    dx : ndarray (B, T, D)  (zero past each length)
    dw_ih : ndarray (4H, D)
    dw_hh : ndarray (4H, H)
    dbias : ndarray (4H,)
    dh0, dc0 : ndarray (B, H)
        Gradients w.r.t. the initial states (also when h0/c0 were omitted, i.e. zero).
    """
    if not isinstance(cache, _RecurrentCache):
        raise TypeError(f"lstm_backward needs the cache returned by lstm_forward, "
                        f"got {type(cache).__name__}")
    dy_arr, (dh_arr, dc_arr) = _RecurrentCache._check_grad(
        cache, "lstm", dy, (("dh_n", dh_n), ("dc_n", dc_n)))
    return _lstm_backward_impl(cache, dy_arr, dh_arr, dc_arr)


def _lstm_backward_impl(cache, dy_arr, dh_arr, dc_arr, isa=0):
    """lstm_backward after validation (see _lstm_forward_impl for who may call it)."""
    B, T, D, H = cache._shape
    dtype = cache._dtype
    a = cache._arrays
    dx = (_workspace.zeros if cache._ragged else _workspace.empty)((B, T, D), dtype)
    dw_ih = np.empty((4 * H, D), dtype)
    dw_hh = np.empty((4 * H, H), dtype)
    dbias = np.empty(4 * H, dtype)
    dh0 = np.empty((B, H), dtype)
    dc0 = np.empty((B, H), dtype)
    _recurrent.lstm_backward(a["w_ih"], a["w_hh"], cache._perm, cache._batch_sizes,
                             a["xh"], a["gates"], a["cells"], a["c_init"],
                             dy_arr, dh_arr, dc_arr, dx, dw_ih, dw_hh, dbias, dh0, dc0, isa)
    return dx, dw_ih, dw_hh, dbias, dh0, dc0


# ---- Elman RNN ----------------------------------------------------------------------------------
def rnn_forward(x, w_ih, w_hh, bias, h0=None, lengths=None, nonlinearity="tanh"):
    """Elman RNN h_t = act(x_t w_ih^T + h_{t-1} w_hh^T + bias), as ``torch.nn.RNN``.

    Parameters
    ----------
    x : ndarray (B, T, D), float32 or float64
    w_ih : ndarray (H, D)
    w_hh : ndarray (H, H)
    bias : ndarray (H,)
        Sum of PyTorch's ``bias_ih`` and ``bias_hh``.
    h0 : ndarray (B, H), optional
    lengths : array of int (B,), optional
        As in :func:`lstm_forward`.
    nonlinearity : {"tanh", "relu"}

    Returns
    -------
    y : ndarray (B, T, H)
    h_n : ndarray (B, H)
    cache : RNNCache
        Opaque; pass to :func:`rnn_backward`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastseq.ops import rnn_forward, rnn_backward
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    >>> w_ih = rng.standard_normal((5, 3)).astype(np.float32)
    >>> w_hh = rng.standard_normal((5, 5)).astype(np.float32)
    >>> y, h_n, cache = rnn_forward(x, w_ih, w_hh, np.zeros(5, np.float32), nonlinearity="relu")
    >>> bool(np.all(y >= 0)), rnn_backward(cache, np.ones_like(y))[0].shape
    (True, (2, 4, 3))
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    x_arr, (w_ih_c, w_hh_c), bias_c, (h0_arr,), _, perm, batch_sizes, ragged = \
        _validate("rnn", x, w_ih, w_hh, bias, (("h0", h0),), lengths)
    return _rnn_forward_impl(x_arr, w_ih_c, w_hh_c, bias_c, h0_arr, nonlinearity == "relu",
                             (perm, batch_sizes, ragged))


def _rnn_forward_impl(x_arr, w_ih_c, w_hh_c, bias_c, h0_arr, relu, packing):
    """rnn_forward after validation (see _lstm_forward_impl for who may call it)."""
    perm, batch_sizes, ragged = packing
    B, T, D = x_arr.shape
    H = w_hh_c.shape[1]
    dtype = x_arr.dtype
    N = int(batch_sizes.sum())
    y = (_workspace.zeros if ragged else _workspace.empty)((B, T, H), dtype)
    h_n = np.empty((B, H), dtype)
    arrays = dict(
        w_ih=w_ih_c, w_hh=w_hh_c, relu=relu,
        x_packed=_workspace.empty((N, D), dtype),
        hidden=_workspace.empty((N, H), dtype),
        h_in=_workspace.empty((N + B, H), dtype),
    )
    _recurrent.rnn_forward(x_arr, w_ih_c, w_hh_c, bias_c, h0_arr, relu, perm, batch_sizes,
                           y, h_n, arrays["x_packed"], arrays["hidden"], arrays["h_in"])
    cache = RNNCache("rnn", (B, T, D, H), dtype, perm, batch_sizes, ragged, arrays)
    return y, h_n, cache


def rnn_backward(cache, dy, dh_n=None):
    """Gradients of an Elman RNN forward pass: (dx, dw_ih, dw_hh, dbias, dh0).

    dy (B, T, H) entries past a sequence's length are ignored; dh_n (B, H) optional; dx is zero
    past each length. See :func:`lstm_backward`.
    """
    if not isinstance(cache, _RecurrentCache):
        raise TypeError(f"rnn_backward needs the cache returned by rnn_forward, "
                        f"got {type(cache).__name__}")
    dy_arr, (dh_arr,) = _RecurrentCache._check_grad(cache, "rnn", dy, (("dh_n", dh_n),))
    return _rnn_backward_impl(cache, dy_arr, dh_arr)


def _rnn_backward_impl(cache, dy_arr, dh_arr):
    """rnn_backward after validation (see _lstm_forward_impl for who may call it)."""
    B, T, D, H = cache._shape
    dtype = cache._dtype
    a = cache._arrays
    dx = (_workspace.zeros if cache._ragged else _workspace.empty)((B, T, D), dtype)
    dw_ih = np.empty((H, D), dtype)
    dw_hh = np.empty((H, H), dtype)
    dbias = np.empty(H, dtype)
    dh0 = np.empty((B, H), dtype)
    _recurrent.rnn_backward(a["w_ih"], a["w_hh"], a["relu"], cache._perm, cache._batch_sizes,
                            a["x_packed"], a["hidden"], a["h_in"], dy_arr, dh_arr,
                            dx, dw_ih, dw_hh, dbias, dh0)
    return dx, dw_ih, dw_hh, dbias, dh0
