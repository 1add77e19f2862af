"""Readable NumPy reference for the LSTM and Elman RNN kernels and the layer stack built on them
(``fastseq.ops``).

Batch-first: x (B, T, D), y (B, T, H), states (B, H). Weights as in PyTorch: the LSTM stacks its
four gates along the rows of ``w_ih`` (4H, D) and ``w_hh`` (4H, H) in the order input, forget,
cell (g), output; ``bias`` (4H,) is the sum of PyTorch's ``bias_ih`` and ``bias_hh``.

LSTM step, for every sequence still running at time t (t < length):
    z = x_t @ w_ih.T + h_{t-1} @ w_hh.T + bias              (B, 4H)
    i = sigmoid(z_i), f = sigmoid(z_f), g = tanh(z_g), o = sigmoid(z_o)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)                                      (= y_t)
Elman RNN step:  h_t = act(x_t @ w_ih.T + h_{t-1} @ w_hh.T + bias),  act = tanh or relu.

Ragged batches (``lengths``): sequence b runs for lengths[b] steps; y is zero past its end and
h_n / c_n are its states at its last valid step. Backward treats dy past the end as absent and
returns zero dx there.

The backward passes are plain backpropagation through time, written out step by step with the
derivatives expressed through the cached activations (sigmoid' = a(1-a), tanh' = 1-a^2).
Vectorised over the batch; loops over time. Clarity over speed.
"""
import numpy as np


def sigmoid(z):
    """Stable logistic function: exp is only taken of -|z|."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _lengths_or_full(lengths, B, T):
    if lengths is None:
        return np.full(B, T, dtype=np.intp)
    return np.asarray(lengths, dtype=np.intp)


def _zeros_or(a, shape, dtype):
    return np.zeros(shape, dtype) if a is None else np.array(a, dtype=dtype)


def lstm_forward(x, w_ih, w_hh, bias, h0=None, c0=None, lengths=None):
    """Return (y, h_n, c_n, cache); cache is a dict for :func:`lstm_backward`."""
    B, T, D = x.shape
    H = w_hh.shape[1]
    dtype = x.dtype
    lengths = _lengths_or_full(lengths, B, T)
    h = _zeros_or(h0, (B, H), dtype)
    c = _zeros_or(c0, (B, H), dtype)
    y = np.zeros((B, T, H), dtype)
    gates = np.zeros((B, T, 4 * H), dtype)     # activations i, f, g, o
    cells = np.zeros((B, T, H), dtype)         # c_t
    h_prev = np.zeros((B, T, H), dtype)        # h_{t-1} entering step t
    c_prev = np.zeros((B, T, H), dtype)        # c_{t-1} entering step t
    for t in range(T):
        active = (lengths > t)[:, None]
        z = x[:, t] @ w_ih.T + h @ w_hh.T + bias
        i = sigmoid(z[:, :H])
        f = sigmoid(z[:, H:2 * H])
        g = np.tanh(z[:, 2 * H:3 * H])
        o = sigmoid(z[:, 3 * H:])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        gates[:, t] = np.where(active, np.concatenate([i, f, g, o], axis=1), 0)
        h_prev[:, t] = h
        c_prev[:, t] = c
        cells[:, t] = np.where(active, c_new, 0)
        y[:, t] = np.where(active, h_new, 0)
        h = np.where(active, h_new, h)
        c = np.where(active, c_new, c)
    cache = dict(kind="lstm", x=x, w_ih=w_ih, w_hh=w_hh, lengths=lengths, gates=gates,
                 cells=cells, h_prev=h_prev, c_prev=c_prev)
    return y, h, c, cache


def lstm_backward(cache, dy, dh_n=None, dc_n=None):
    """Return (dx, dw_ih, dw_hh, dbias, dh0, dc0) by backpropagation through time."""
    x, w_ih, w_hh, lengths = cache["x"], cache["w_ih"], cache["w_hh"], cache["lengths"]
    B, T, D = x.shape
    H = w_hh.shape[1]
    dtype = x.dtype
    dh = _zeros_or(dh_n, (B, H), dtype)     # dL/dh_t flowing back from later steps
    dc = _zeros_or(dc_n, (B, H), dtype)     # dL/dc_t flowing back from later steps
    dx = np.zeros_like(x)
    dw_ih = np.zeros_like(w_ih)
    dw_hh = np.zeros_like(w_hh)
    dbias = np.zeros(4 * H, dtype)
    for t in reversed(range(T)):
        active = (lengths > t)[:, None]
        a = cache["gates"][:, t]
        i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        tanh_c = np.tanh(cache["cells"][:, t])
        dh_t = dh + np.where(active, dy[:, t], 0)
        do = dh_t * tanh_c
        dc_t = dc + dh_t * o * (1 - tanh_c ** 2)
        di = dc_t * g
        dg = dc_t * i
        df = dc_t * cache["c_prev"][:, t]
        dz = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g ** 2),
                             do * o * (1 - o)], axis=1)
        dz = np.where(active, dz, 0)       # finished sequences contribute nothing at step t
        dx[:, t] = dz @ w_ih
        dw_ih += dz.T @ x[:, t]
        dw_hh += dz.T @ cache["h_prev"][:, t]
        dbias += dz.sum(axis=0)
        dh = np.where(active, dz @ w_hh, dh)
        dc = np.where(active, dc_t * f, dc)
    return dx, dw_ih, dw_hh, dbias, dh, dc


def _act(z, nonlinearity):
    return np.tanh(z) if nonlinearity == "tanh" else np.maximum(z, 0)


def _act_grad_from_out(a, nonlinearity):
    return 1 - a ** 2 if nonlinearity == "tanh" else (a > 0).astype(a.dtype)


def rnn_forward(x, w_ih, w_hh, bias, h0=None, lengths=None, nonlinearity="tanh"):
    """Return (y, h_n, cache) of the Elman RNN h_t = act(x_t w_ih^T + h_{t-1} w_hh^T + b)."""
    B, T, D = x.shape
    H = w_hh.shape[1]
    dtype = x.dtype
    lengths = _lengths_or_full(lengths, B, T)
    h = _zeros_or(h0, (B, H), dtype)
    y = np.zeros((B, T, H), dtype)
    h_prev = np.zeros((B, T, H), dtype)
    for t in range(T):
        active = (lengths > t)[:, None]
        h_new = _act(x[:, t] @ w_ih.T + h @ w_hh.T + bias, nonlinearity)
        h_prev[:, t] = h
        y[:, t] = np.where(active, h_new, 0)
        h = np.where(active, h_new, h)
    cache = dict(kind="rnn", x=x, w_ih=w_ih, w_hh=w_hh, lengths=lengths, y=y, h_prev=h_prev,
                 nonlinearity=nonlinearity)
    return y, h, cache


def rnn_backward(cache, dy, dh_n=None):
    """Return (dx, dw_ih, dw_hh, dbias, dh0) by backpropagation through time."""
    x, w_ih, w_hh, lengths = cache["x"], cache["w_ih"], cache["w_hh"], cache["lengths"]
    B, T, D = x.shape
    H = w_hh.shape[1]
    dh = _zeros_or(dh_n, (B, H), x.dtype)
    dx = np.zeros_like(x)
    dw_ih = np.zeros_like(w_ih)
    dw_hh = np.zeros_like(w_hh)
    dbias = np.zeros(H, x.dtype)
    for t in reversed(range(T)):
        active = (lengths > t)[:, None]
        dh_t = dh + np.where(active, dy[:, t], 0)
        dz = np.where(active, dh_t * _act_grad_from_out(cache["y"][:, t], cache["nonlinearity"]), 0)
        dx[:, t] = dz @ w_ih
        dw_ih += dz.T @ x[:, t]
        dw_hh += dz.T @ cache["h_prev"][:, t]
        dbias += dz.sum(axis=0)
        dh = np.where(active, dz @ w_hh, dh)
    return dx, dw_ih, dw_hh, dbias, dh


# ---- the layer stack (fastseq.ops.recurrent_stack_forward / _backward) ---------------------------
# Cells by name: (forward, backward, state names). forward(x, params, states, lengths) returns
# (y, final states tuple, cache); backward(cache, dy, d_final states) returns
# (dx, d_params tuple, d_initial states tuple).
def _lstm_cell_fwd(x, params, states, lengths):
    y, h, c, cache = lstm_forward(x, *params, *states, lengths=lengths)
    return y, (h, c), cache


def _lstm_cell_bwd(cache, dy, d_final):
    dx, dw_ih, dw_hh, dbias, dh0, dc0 = lstm_backward(cache, dy, *d_final)
    return dx, (dw_ih, dw_hh, dbias), (dh0, dc0)


def _rnn_cell(nonlinearity):
    def fwd(x, params, states, lengths):
        y, h, cache = rnn_forward(x, *params, *states, lengths=lengths, nonlinearity=nonlinearity)
        return y, (h,), cache

    def bwd(cache, dy, d_final):
        dx, dw_ih, dw_hh, dbias, dh0 = rnn_backward(cache, dy, *d_final)
        return dx, (dw_ih, dw_hh, dbias), (dh0,)
    return fwd, bwd, ("h",)


STACK_CELLS = {"lstm": (_lstm_cell_fwd, _lstm_cell_bwd, ("h", "c")),
               "rnn_tanh": _rnn_cell("tanh"), "rnn_relu": _rnn_cell("relu")}


def reverse_within_lengths(a, lengths):
    """a (B, T, ...) with each sequence's first lengths[b] steps reversed; padding untouched."""
    out = a.copy()
    for b, L in enumerate(lengths):
        out[b, :L] = a[b, :L][::-1]
    return out


def recurrent_stack_forward(x, weights, cell="lstm", lengths=None, initial_states=None,
                            masks=None):
    """Return (y, final_states, tape) of a stack of recurrent layers.

    weights[l][d] = the cell's parameters (w_ih, w_hh, bias) of layer l, direction d (d = 1 is
    the backward direction); initial_states[l][d] = tuple of (B, H) states (None = zeros);
    masks[l] = dropout multiplier of layer l's input (masks[0] must be None). Layer l > 0 reads
    y_{l-1} * masks[l], y_l = [forward outputs | backward outputs]. The backward direction runs
    the cell on every sequence reversed within its length and reverses its outputs back.
    """
    fwd = STACK_CELLS[cell][0]
    n_states = len(STACK_CELLS[cell][2])
    B, T, _ = x.shape
    lengths = _lengths_or_full(lengths, B, T)
    inp = x
    finals, layers = [], []
    for l, layer in enumerate(weights):
        mask = None if masks is None else masks[l]
        if mask is not None:
            inp = inp * mask
        outs, layer_finals, caches = [], [], []
        for d, params in enumerate(layer):
            states = (None,) * n_states
            if initial_states is not None and initial_states[l] is not None:
                states = initial_states[l][d]
            xin = inp if d == 0 else reverse_within_lengths(inp, lengths)
            y, final, cache = fwd(xin, params, states, lengths)
            outs.append(y if d == 0 else reverse_within_lengths(y, lengths))
            layer_finals.append(final)
            caches.append(cache)
        layers.append((mask, caches))
        finals.append(layer_finals)
        inp = np.concatenate(outs, axis=2)
    tape = {"cell": cell, "lengths": lengths, "layers": layers, "H": weights[0][0][1].shape[1]}
    return inp, finals, tape


def recurrent_stack_backward(tape, dy, d_final_states=None):
    """Return (dx, dweights[l][d], d_initial_states[l][d]) of :func:`recurrent_stack_forward`.

    Layer by layer from the top: each direction's share of dL/dy_l goes through its cell's
    backward (reversed for the backward direction), the input gradients of the directions add
    up, and dropout multiplies them by the same mask on the way down.
    """
    bwd, n_states = STACK_CELLS[tape["cell"]][1], len(STACK_CELLS[tape["cell"]][2])
    lengths, H = tape["lengths"], tape["H"]
    L = len(tape["layers"])
    dweights = [None] * L
    d_init = [None] * L
    for l in reversed(range(L)):
        mask, caches = tape["layers"][l]
        dx_total = 0
        dweights[l], d_init[l] = [], []
        for d, cache in enumerate(caches):
            g_y = dy[:, :, d * H:(d + 1) * H]
            if d == 1:
                g_y = reverse_within_lengths(g_y, lengths)
            g_final = (None,) * n_states
            if d_final_states is not None and d_final_states[l] is not None:
                g_final = d_final_states[l][d]
            dx, dparams, dstates = bwd(cache, g_y, g_final)
            dx_total = dx_total + (dx if d == 0 else reverse_within_lengths(dx, lengths))
            dweights[l].append(dparams)
            d_init[l].append(dstates)
        dy = dx_total if mask is None else dx_total * mask
    return dy, dweights, d_init
