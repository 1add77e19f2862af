"""LSTM and Elman RNN kernels (fastseq.ops) against the NumPy reference, central finite
differences, a step worked by hand, and PyTorch; plus threads, input immutability and errors."""
import math
import os
import warnings

import numpy as np
import pytest

from fastseq import ops
from fastseq.reference import recurrent as ref
from fastseq.reference.testing import (
    assert_close_to_scale,
    assert_concurrent_matches_serial,
    central_differences,
    torch_recurrent_module,
)

DTYPES = [np.float64, np.float32]
# (relative) tolerance of kernel vs reference/torch, per dtype
RTOL = {np.float64: 1e-12, np.float32: 2e-5}


def _lstm_args(rng, B, T, D, H, dtype, states=True, scale=0.5):
    x = rng.standard_normal((B, T, D)).astype(dtype)
    w_ih = (scale * rng.standard_normal((4 * H, D))).astype(dtype)
    w_hh = (scale * rng.standard_normal((4 * H, H))).astype(dtype)
    bias = (0.3 * rng.standard_normal(4 * H)).astype(dtype)
    h0 = rng.standard_normal((B, H)).astype(dtype) if states else None
    c0 = rng.standard_normal((B, H)).astype(dtype) if states else None
    return x, w_ih, w_hh, bias, h0, c0


def _rnn_args(rng, B, T, D, H, dtype, states=True, scale=0.5):
    x = rng.standard_normal((B, T, D)).astype(dtype)
    w_ih = (scale * rng.standard_normal((H, D))).astype(dtype)
    w_hh = (scale * rng.standard_normal((H, H))).astype(dtype)
    bias = (0.3 * rng.standard_normal(H)).astype(dtype)
    h0 = rng.standard_normal((B, H)).astype(dtype) if states else None
    return x, w_ih, w_hh, bias, h0


def _random_lengths(rng, B, T):
    lengths = rng.integers(1, T + 1, size=B)
    lengths[rng.integers(B)] = T       # keep T meaningful
    return lengths


def _close(actual, desired, dtype, name):
    assert_close_to_scale(actual, desired, dtype, RTOL[dtype], name)


SHAPES = [(3, 5, 4, 6), (1, 1, 1, 1), (2, 1, 3, 4), (1, 7, 1, 1), (4, 6, 3, 1), (5, 4, 1, 3),
          (1, 9, 2, 5)]


# ---- against the NumPy reference ----------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,T,D,H", SHAPES)
@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("states", [False, True])
def test_lstm_matches_reference(rng, dtype, B, T, D, H, ragged, states):
    x, w_ih, w_hh, bias, h0, c0 = _lstm_args(rng, B, T, D, H, dtype, states)
    lengths = _random_lengths(rng, B, T) if ragged else None
    out = ops.lstm_forward(x, w_ih, w_hh, bias, h0, c0, lengths)
    want = ref.lstm_forward(x, w_ih, w_hh, bias, h0, c0, lengths)
    for name, a, b in zip(("y", "h_n", "c_n"), out[:3], want[:3]):
        _close(a, b, dtype, name)
    dy = rng.standard_normal((B, T, H)).astype(dtype)
    dh_n = rng.standard_normal((B, H)).astype(dtype) if states else None
    dc_n = rng.standard_normal((B, H)).astype(dtype) if states else None
    grads = ops.lstm_backward(out[3], dy, dh_n, dc_n)
    want_grads = ref.lstm_backward(want[3], dy, dh_n, dc_n)
    for name, a, b in zip(("dx", "dw_ih", "dw_hh", "dbias", "dh0", "dc0"), grads, want_grads):
        _close(a, b, dtype, name)
    # the activations accessor is the reference's, batch-first, zeros past each length
    gates = out[3].gates()
    for k, name in enumerate(("input", "forget", "cell", "output")):
        _close(gates[name], want[3]["gates"][:, :, k * H:(k + 1) * H], dtype, name)
    _close(out[3].cell_states(), want[3]["cells"], dtype, "cells")
    expected_lengths = np.full(B, T) if lengths is None else lengths
    np.testing.assert_array_equal(out[3].lengths, expected_lengths)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,T,D,H", SHAPES)
@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_matches_reference(rng, dtype, B, T, D, H, ragged, nonlinearity):
    states = bool(rng.integers(2))
    x, w_ih, w_hh, bias, h0 = _rnn_args(rng, B, T, D, H, dtype, states)
    lengths = _random_lengths(rng, B, T) if ragged else None
    y, h_n, cache = ops.rnn_forward(x, w_ih, w_hh, bias, h0, lengths, nonlinearity)
    y_r, h_n_r, cache_r = ref.rnn_forward(x, w_ih, w_hh, bias, h0, lengths, nonlinearity)
    _close(y, y_r, dtype, "y")
    _close(h_n, h_n_r, dtype, "h_n")
    assert cache.nonlinearity == nonlinearity
    dy = rng.standard_normal((B, T, H)).astype(dtype)
    dh_n = rng.standard_normal((B, H)).astype(dtype) if states else None
    grads = ops.rnn_backward(cache, dy, dh_n)
    for name, a, b in zip(("dx", "dw_ih", "dw_hh", "dbias", "dh0"), grads,
                          ref.rnn_backward(cache_r, dy, dh_n)):
        _close(a, b, dtype, name)


def test_backward_is_repeatable_and_padding_is_ignored(rng):
    B, T, D, H = 3, 6, 2, 4
    x, w_ih, w_hh, bias, h0, c0 = _lstm_args(rng, B, T, D, H, np.float64)
    lengths = np.array([2, 6, 4])
    y, h_n, c_n, cache = ops.lstm_forward(x, w_ih, w_hh, bias, h0, c0, lengths)
    mask = np.arange(T)[None, :] < lengths[:, None]
    assert np.all(y[~mask] == 0)
    np.testing.assert_array_equal(h_n, y[np.arange(B), lengths - 1])
    dy = rng.standard_normal((B, T, H))
    g1 = ops.lstm_backward(cache, dy)
    dy_junk = dy.copy()
    dy_junk[~mask] = 1e3                      # dy at padded positions must be ignored
    g2 = ops.lstm_backward(cache, dy_junk)
    for a, b in zip(g1, g2):
        np.testing.assert_array_equal(a, b)
    assert np.all(g1[0][~mask] == 0)           # dx is zero at padding
    # changing x at padded positions changes nothing
    x2 = x.copy()
    x2[~mask] = 7.0
    y2 = ops.lstm_forward(x2, w_ih, w_hh, bias, h0, c0, lengths)[0]
    np.testing.assert_array_equal(y, y2)


def test_ragged_equals_per_sequence_runs(rng):
    """A ragged batch gives exactly what running each sequence on its own gives."""
    B, T, D, H = 4, 7, 3, 5
    x, w_ih, w_hh, bias, h0, c0 = _lstm_args(rng, B, T, D, H, np.float64)
    lengths = np.array([3, 7, 1, 5])
    y, h_n, c_n, cache = ops.lstm_forward(x, w_ih, w_hh, bias, h0, c0, lengths)
    dy = rng.standard_normal((B, T, H))
    dx, dw_ih, dw_hh, dbias, dh0, dc0 = ops.lstm_backward(cache, dy)
    acc = [np.zeros_like(w_ih), np.zeros_like(w_hh), np.zeros_like(bias)]
    for b, L in enumerate(lengths):
        yb, hb, cb, cb_cache = ops.lstm_forward(x[b:b + 1, :L], w_ih, w_hh, bias,
                                                h0[b:b + 1], c0[b:b + 1])
        np.testing.assert_allclose(y[b, :L], yb[0], rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(h_n[b], hb[0], rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(c_n[b], cb[0], rtol=1e-13, atol=1e-14)
        gb = ops.lstm_backward(cb_cache, dy[b:b + 1, :L])
        np.testing.assert_allclose(dx[b, :L], gb[0][0], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(dh0[b], gb[4][0], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(dc0[b], gb[5][0], rtol=1e-12, atol=1e-13)
        for a, g in zip(acc, gb[1:4]):
            a += g
    for a, g in zip(acc, (dw_ih, dw_hh, dbias)):
        np.testing.assert_allclose(g, a, rtol=1e-12, atol=1e-12)


# ---- central finite differences (float64), every gradient --------------------------------------
def _fd_check(loss, params, grads, rtol=1e-6, atol=1e-8):
    # every analytic gradient against central differences of the scalar loss (float64)
    for name, p, g in zip(params.keys(), params.values(), grads):
        np.testing.assert_allclose(g, central_differences(loss, p, eps=1e-6), rtol=rtol,
                                   atol=atol, err_msg=name)


@pytest.mark.parametrize("lengths", [None, [3, 1]])
def test_lstm_gradients_finite_differences(rng, lengths):
    B, T, D, H = 2, 3, 2, 3
    x, w_ih, w_hh, bias, h0, c0 = _lstm_args(rng, B, T, D, H, np.float64)
    dy = rng.standard_normal((B, T, H))
    dh_n = rng.standard_normal((B, H))
    dc_n = rng.standard_normal((B, H))

    def loss():
        y, h_n, c_n, _ = ops.lstm_forward(x, w_ih, w_hh, bias, h0, c0, lengths)
        return np.sum(y * dy) + np.sum(h_n * dh_n) + np.sum(c_n * dc_n)

    cache = ops.lstm_forward(x, w_ih, w_hh, bias, h0, c0, lengths)[3]
    grads = ops.lstm_backward(cache, dy, dh_n, dc_n)
    params = dict(x=x, w_ih=w_ih, w_hh=w_hh, bias=bias, h0=h0, c0=c0)
    _fd_check(loss, params, grads)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("lengths", [None, [1, 3]])
def test_rnn_gradients_finite_differences(rng, nonlinearity, lengths):
    B, T, D, H = 2, 3, 2, 3
    x, w_ih, w_hh, bias, h0 = _rnn_args(rng, B, T, D, H, np.float64)
    dy = rng.standard_normal((B, T, H))
    dh_n = rng.standard_normal((B, H))

    def loss():
        y, h_n, _ = ops.rnn_forward(x, w_ih, w_hh, bias, h0, lengths, nonlinearity)
        return np.sum(y * dy) + np.sum(h_n * dh_n)

    cache = ops.rnn_forward(x, w_ih, w_hh, bias, h0, lengths, nonlinearity)[2]
    grads = ops.rnn_backward(cache, dy, dh_n)
    _fd_check(loss, dict(x=x, w_ih=w_ih, w_hh=w_hh, bias=bias, h0=h0), grads)


# ---- worked by hand -----------------------------------------------------------------------------
def test_single_lstm_step_by_hand():
    """H = D = 1, one step, every gate computed with scalar math."""
    x, h0, c0 = 0.7, -0.4, 0.3
    wi, wf, wg, wo = 0.5, -1.2, 0.8, 0.3          # input weights per gate
    ui, uf, ug, uo = -0.6, 0.9, 0.4, 1.1          # recurrent weights per gate
    bi, bf, bg, bo = 0.1, 0.2, -0.3, 0.05

    def sig(z):
        return 1.0 / (1.0 + math.exp(-z))

    i = sig(wi * x + ui * h0 + bi)
    f = sig(wf * x + uf * h0 + bf)
    g = math.tanh(wg * x + ug * h0 + bg)
    o = sig(wo * x + uo * h0 + bo)
    c = f * c0 + i * g
    h = o * math.tanh(c)
    y, h_n, c_n, cache = ops.lstm_forward(
        np.array([[[x]]]), np.array([[wi], [wf], [wg], [wo]]), np.array([[ui], [uf], [ug], [uo]]),
        np.array([bi, bf, bg, bo]), np.array([[h0]]), np.array([[c0]]))
    assert y[0, 0, 0] == pytest.approx(h, rel=1e-14)
    assert h_n[0, 0] == pytest.approx(h, rel=1e-14)
    assert c_n[0, 0] == pytest.approx(c, rel=1e-14)
    gates = cache.gates()
    for name, want in (("input", i), ("forget", f), ("cell", g), ("output", o)):
        assert gates[name][0, 0, 0] == pytest.approx(want, rel=1e-14)
    # d h / d(everything) with dy = 1: chain rule by hand
    tc = math.tanh(c)
    dc = o * (1 - tc * tc)
    dz = [dc * g * i * (1 - i), dc * c0 * f * (1 - f), dc * i * (1 - g * g), tc * o * (1 - o)]
    dx, dw_ih, dw_hh, dbias, dh0, dc0 = ops.lstm_backward(cache, np.ones((1, 1, 1)))
    np.testing.assert_allclose(dbias, dz, rtol=1e-13)
    np.testing.assert_allclose(dw_ih[:, 0], np.multiply(dz, x), rtol=1e-13)
    np.testing.assert_allclose(dw_hh[:, 0], np.multiply(dz, h0), rtol=1e-13)
    assert dx[0, 0, 0] == pytest.approx(np.dot(dz, [wi, wf, wg, wo]), rel=1e-13)
    assert dh0[0, 0] == pytest.approx(np.dot(dz, [ui, uf, ug, uo]), rel=1e-13)
    assert dc0[0, 0] == pytest.approx(dc * f, rel=1e-13)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 4e-16), (np.float32, 2.5e-7)])
def test_gate_nonlinearities_accuracy(dtype, rtol):
    """The vectorised sigmoid/tanh of the C kernels, over the whole range, through the gates:
    D = H = 1 and unit input weights make every gate's pre-activation equal to x."""
    z = np.concatenate([np.linspace(-100, 100, 4001), np.geomspace(1e-12, 30, 500),
                        -np.geomspace(1e-12, 30, 500), [0.0, 0.625, -0.625, 0.6249999]])
    z = z.astype(dtype)
    ones = np.ones((4, 1), dtype)
    _, _, _, cache = ops.lstm_forward(z.reshape(-1, 1, 1), ones, np.zeros((4, 1), dtype),
                                      np.zeros(4, dtype))
    gates = cache.gates()
    z64 = z.astype(np.float64)
    sig = ref.sigmoid(z64)
    # relative accuracy in a few ulps (float64 compares against NumPy's libm in float64)
    ulp = np.finfo(dtype).eps
    for name, want in (("input", sig), ("cell", np.tanh(z64))):
        got = gates[name][:, 0, 0].astype(np.float64)
        tiny = np.abs(want) < np.finfo(dtype).tiny * 1e6     # denormal range of sigmoid(-100)
        err = np.abs(got - want)[~tiny] / np.abs(want)[~tiny]
        assert err.max() < 8 * ulp, (name, err.max() / ulp)
        assert np.all(np.abs(got[tiny] - want[tiny]) < 1e-30)


# ---- against PyTorch ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("kind", ["lstm", "rnn_tanh", "rnn_relu"])
def test_matches_torch(rng, dtype, ragged, kind):
    torch = pytest.importorskip("torch")
    B, T, D, H = 4, 6, 3, 5
    nl = "relu" if kind == "rnn_relu" else "tanh"
    if kind == "lstm":
        x, w_ih, w_hh, bias, h0, c0 = _lstm_args(rng, B, T, D, H, dtype)
    else:
        x, w_ih, w_hh, bias, h0 = _rnn_args(rng, B, T, D, H, dtype)
        c0 = None
    lengths = np.array([6, 2, 5, 1]) if ragged else np.full(B, T)
    dy = rng.standard_normal((B, T, H)).astype(dtype)
    dh_n = rng.standard_normal((B, H)).astype(dtype)
    dc_n = rng.standard_normal((B, H)).astype(dtype)
    if kind == "lstm":
        y, h_n, c_n, cache = ops.lstm_forward(x, w_ih, w_hh, bias, h0, c0,
                                              lengths if ragged else None)
        grads = ops.lstm_backward(cache, dy, dh_n, dc_n)
    else:
        y, h_n, cache = ops.rnn_forward(x, w_ih, w_hh, bias, h0, lengths if ragged else None, nl)
        grads = ops.rnn_backward(cache, dy, dh_n)

    m = torch_recurrent_module("lstm" if kind == "lstm" else "rnn", w_ih, w_hh, bias, nl)
    # one torch run per sequence (its own length), gradients summed over them by autograd
    loss = 0
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    th0 = torch.from_numpy(h0.copy()).requires_grad_(True)
    tc0 = torch.from_numpy(c0.copy()).requires_grad_(True) if c0 is not None else None
    for b, L in enumerate(lengths):
        if kind == "lstm":
            out, (hb, cb) = m(tx[b:b + 1, :L], (th0[b:b + 1][None], tc0[b:b + 1][None]))
            loss = loss + (cb[0, 0] * torch.from_numpy(dc_n[b])).sum()
            _close(cb[0, 0].detach().numpy(), c_n[b], dtype, "c_n")
        else:
            out, hb = m(tx[b:b + 1, :L], th0[b:b + 1][None])
        _close(out[0].detach().numpy(), y[b, :L], dtype, "y")
        _close(hb[0, 0].detach().numpy(), h_n[b], dtype, "h_n")
        loss = loss + (out[0] * torch.from_numpy(dy[b, :L])).sum() \
            + (hb[0, 0] * torch.from_numpy(dh_n[b])).sum()
    loss.backward()
    want = [tx.grad, m.weight_ih_l0.grad, m.weight_hh_l0.grad, m.bias_ih_l0.grad, th0.grad]
    if kind == "lstm":
        want.append(tc0.grad)
    want = [w.numpy() for w in want]
    mask = np.arange(T)[None, :] < lengths[:, None]
    want[0] = want[0] * mask[:, :, None]       # torch never saw the padding
    for name, a, b in zip(("dx", "dw_ih", "dw_hh", "dbias", "dh0", "dc0"), grads, want):
        _close(a, b, dtype, name)


def test_matches_torch_packed_batch(rng):
    """Against torch's own packed-sequence LSTM on the whole ragged batch at once."""
    torch = pytest.importorskip("torch")
    B, T, D, H = 5, 8, 3, 4
    x, w_ih, w_hh, bias, h0, c0 = _lstm_args(rng, B, T, D, H, np.float64)
    lengths = np.array([3, 8, 8, 1, 5])
    y, h_n, c_n, cache = ops.lstm_forward(x, w_ih, w_hh, bias, h0, c0, lengths)
    m = torch_recurrent_module("lstm", w_ih, w_hh, bias)
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x), torch.from_numpy(lengths),
                                                     batch_first=True, enforce_sorted=False)
    with torch.no_grad():
        out, (hn, cn) = m(packed, (torch.from_numpy(h0)[None], torch.from_numpy(c0)[None]))
    yt = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)[0]
    np.testing.assert_allclose(y, yt.numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(h_n, hn[0].numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(c_n, cn[0].numpy(), rtol=1e-12, atol=1e-13)


# ---- threads, immutability ----------------------------------------------------------------------
def test_concurrent_calls_match_serial(rng):
    jobs = []
    for k in range(6):
        B, T, D, H = 3 + k, 20, 8, 16 + 4 * k
        args = _lstm_args(rng, B, T, D, H, DTYPES[k % 2])
        lengths = _random_lengths(rng, B, T) if k % 3 else None
        dy = rng.standard_normal((B, T, H)).astype(args[0].dtype)
        jobs.append((args, lengths, dy))

    def run(job):
        args, lengths, dy = job
        y, h_n, c_n, cache = ops.lstm_forward(*args, lengths=lengths)
        return (y, h_n, c_n) + ops.lstm_backward(cache, dy)

    assert_concurrent_matches_serial([lambda job=job: run(job) for job in jobs], repeats=3)


def test_inputs_not_modified(rng):
    x, w_ih, w_hh, bias, h0, c0 = _lstm_args(rng, 3, 4, 2, 3, np.float64)
    lengths = np.array([4, 1, 3])
    dy, dh_n, dc_n = rng.standard_normal((3, 4, 3)), rng.standard_normal((3, 3)), \
        rng.standard_normal((3, 3))
    inputs = [x, w_ih, w_hh, bias, h0, c0, lengths, dy, dh_n, dc_n]
    copies = [a.copy() for a in inputs]
    y, h_n, c_n, cache = ops.lstm_forward(x, w_ih, w_hh, bias, h0, c0, lengths)
    grads = ops.lstm_backward(cache, dy, dh_n, dc_n)
    for a, b in zip(inputs, copies):
        np.testing.assert_array_equal(a, b)
    # the cache owns its data: changing the caller's weights afterwards changes nothing
    w_hh += 1.0
    x += 1.0
    for a, b in zip(ops.lstm_backward(cache, dy, dh_n, dc_n), grads):
        np.testing.assert_array_equal(a, b)


# ---- errors -------------------------------------------------------------------------------------
def test_bad_inputs_raise_clear_errors(rng):
    x, w_ih, w_hh, bias, h0, c0 = _lstm_args(rng, 2, 3, 4, 5, np.float64)
    f = ops.lstm_forward
    with pytest.raises(ValueError, match="x must be 3-D"):
        f(x[0], w_ih, w_hh, bias)
    with pytest.raises(ValueError, match="non-empty"):
        f(x[:, :0], w_ih, w_hh, bias)
    with pytest.raises(ValueError, match="w_ih must have shape"):
        f(x, w_ih[:, :3], w_hh, bias)
    with pytest.raises(ValueError, match="w_hh must have shape"):
        f(x, w_ih, w_hh[:19], bias)
    with pytest.raises(ValueError, match="w_hh must have shape"):
        f(x, w_ih, w_hh.ravel(), bias)
    with pytest.raises(ValueError, match="bias must have shape"):
        f(x, w_ih, w_hh, bias[:5])
    with pytest.raises(ValueError, match="h0 must have shape"):
        f(x, w_ih, w_hh, bias, h0[:1])
    with pytest.raises(ValueError, match="c0 must have shape"):
        f(x, w_ih, w_hh, bias, h0, c0.T)
    with pytest.raises(ValueError, match="lengths must have shape"):
        f(x, w_ih, w_hh, bias, lengths=[3])
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 3\]"):
        f(x, w_ih, w_hh, bias, lengths=[0, 3])
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 3\]"):
        f(x, w_ih, w_hh, bias, lengths=[4, 3])
    with pytest.raises(TypeError, match="lengths must be an integer"):
        f(x, w_ih, w_hh, bias, lengths=[2.5, 3.0])
    with pytest.raises(TypeError, match="lengths must be an integer"):
        f(x, w_ih, w_hh, bias, lengths=[True, True])
    for name, pos in (("x", 0), ("w_ih", 1), ("w_hh", 2), ("bias", 3), ("h0", 4), ("c0", 5)):
        args = [x, w_ih, w_hh, bias, h0, c0]
        bad = args[pos].copy()
        bad.flat[1] = np.nan if pos % 2 else np.inf
        args[pos] = bad
        with pytest.raises(ValueError, match=f"{name} contains NaN or infinity"):
            f(*args)
    with pytest.raises(TypeError, match="w_hh has dtype float32 but x has dtype float64"):
        f(x, w_ih, w_hh.astype(np.float32), bias)
    with pytest.raises(TypeError, match="h0 has dtype float32"):
        f(x, w_ih, w_hh, bias, h0.astype(np.float32))
    with pytest.raises(TypeError, match="x must be a float32 or float64"):
        f(x.astype(int), w_ih, w_hh, bias)
    with pytest.raises(TypeError, match="x must be a float32 or float64"):
        f(x.astype(complex), w_ih, w_hh, bias)
    with pytest.raises(ValueError, match="nonlinearity"):
        ops.rnn_forward(x, w_ih[:5], w_hh[:5], bias[:5], nonlinearity="sigmoid")
    with pytest.raises(ValueError, match=r"w_hh must have shape \(hidden_size, hidden_size\)"):
        ops.rnn_forward(x, w_ih[:5], w_hh, bias[:5])

    y, h_n, c_n, cache = f(x, w_ih, w_hh, bias, lengths=[3, 1])
    dy = np.ones_like(y)
    with pytest.raises(ValueError, match="dy must have shape"):
        ops.lstm_backward(cache, dy[:, :2])
    with pytest.raises(TypeError, match="dy has dtype float32"):
        ops.lstm_backward(cache, dy.astype(np.float32))
    with pytest.raises(ValueError, match="dy contains NaN"):
        ops.lstm_backward(cache, dy * np.nan)
    with pytest.raises(ValueError, match="dh_n must have shape"):
        ops.lstm_backward(cache, dy, dh_n=np.ones((2, 4)))
    with pytest.raises(ValueError, match="dc_n contains NaN"):
        ops.lstm_backward(cache, dy, dc_n=np.full((2, 5), np.inf))
    with pytest.raises(TypeError, match="cache returned by lstm_forward"):
        ops.lstm_backward({"x": x}, dy)
    _, _, rnn_cache = ops.rnn_forward(x, w_ih[:5], w_hh[:5], bias[:5])
    with pytest.raises(TypeError, match="cache returned by lstm_forward"):
        ops.lstm_backward(rnn_cache, dy)
    with pytest.raises(TypeError, match="cache returned by rnn_forward"):
        ops.rnn_backward(cache, dy)
    assert "LSTMCache" in repr(cache) and cache.nbytes > 0


# ---- the packed tile kernels and the fused LSTM loops -----------------------------------------
# csrc/lib/packed.c has AVX-512, AVX2+FMA and portable kernels; the machine running the tests picks
# one, so each is forced here (an ISA the CPU lacks resolves to the best available: still tested).
ISAS = [1, 2, 3]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("isa", ISAS)
def test_tile_kernels_match_numpy(rng, dtype, isa):
    from fastseq._recurrent import _recurrent_fast as _recurrent
    assert _recurrent.tile_isa(isa) <= isa and _recurrent.tile_isa(isa) >= 1
    # every row count 1..6 of the last tile, panels with and without zero padding (the last
    # panel's valid columns spanning 1, 2, 3 and 4 vectors in both dtypes), K = 1
    for M, K, N in [(1, 1, 1), (7, 5, 3), (13, 33, 70), (6, 64, 64), (5, 128, 129), (12, 7, 100),
                    (4, 3, 32), (3, 9, 20), (5, 4, 13), (2, 6, 120)]:
        a = rng.standard_normal((M, K)).astype(dtype)
        b = rng.standard_normal((K, N)).astype(dtype)
        want = a.astype(np.float64) @ b.astype(np.float64)
        bound = RTOL[dtype] * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64))
        for trans_a in (False, True):    # the transposed-A kernels compute the same from a.T
            got = _recurrent.packed_matmul(np.ascontiguousarray(a.T) if trans_a else a, b, isa,
                                           trans_a)
            assert got.dtype == dtype
            assert np.all(np.abs(got - want) <= bound), (M, K, N, trans_a)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("B,T,D,H", [(13, 7, 5, 37), (24, 100, 3, 150), (1, 30, 2, 17)])
def test_lstm_every_kernel_path_matches_reference(rng, dtype, isa, B, T, D, H):
    """Shapes past the tiny ones above: several row tiles, unit blocks with a partial last one
    (H = 37, 17, 150 against blocks of 16 / 8 units), B = 1 streaming, and (24, 100, 3, 150) with
    more than one backward chunk of steps (2 MiB of dgates each, _recurrent_fast.pyx)."""
    from fastseq._recurrent.cells import _lstm_backward_impl, _lstm_forward_impl, _packing
    # weights scaled by 1/sqrt(H) as in torch's init: larger ones make an 80-step recurrence
    # amplify rounding differences (of summation order) past the reference tolerance
    x, w_ih, w_hh, bias, h0, c0 = _lstm_args(rng, B, T, D, H, dtype, True, scale=H ** -0.5)
    lengths = _random_lengths(rng, B, T)
    if B == 24:
        assert lengths.sum() * 4 * H * np.dtype(dtype).itemsize > 2 ** 21
    out = _lstm_forward_impl(x, w_ih, w_hh, bias, h0, c0, _packing(lengths, B, T), isa)
    want = ref.lstm_forward(x, w_ih, w_hh, bias, h0, c0, lengths)
    for name, a, b in zip(("y", "h_n", "c_n"), out[:3], want[:3]):
        _close(a, b, dtype, name)
    dy = rng.standard_normal((B, T, H)).astype(dtype)
    dh_n = rng.standard_normal((B, H)).astype(dtype)
    dc_n = rng.standard_normal((B, H)).astype(dtype)
    grads = _lstm_backward_impl(out[3], dy, dh_n, dc_n, isa)
    for name, a, b in zip(("dx", "dw_ih", "dw_hh", "dbias", "dh0", "dc0"), grads,
                          ref.lstm_backward(want[3], dy, dh_n, dc_n)):
        _close(a, b, dtype, name)


def _team_sized_job(rng, seed_shift=0):
    """An LSTM call big enough for a 2-thread team (a few MFLOP per thread,
    csrc/recurrent/recurrent.c)."""
    B, T, D, H = 24 + seed_shift, 30, 8, 64
    args = _lstm_args(rng, B, T, D, H, np.float32, scale=0.125)
    lengths = _random_lengths(rng, B, T)
    dy = rng.standard_normal((B, T, H)).astype(np.float32)

    def run():
        y, h_n, c_n, cache = ops.lstm_forward(*args, lengths=lengths)
        return (y, h_n, c_n) + ops.lstm_backward(cache, dy)
    return run


def test_lstm_teams_from_concurrent_calls(rng):
    """Several Python threads running team-sized LSTM calls at once: one call holds the worker
    pool, the others start threads of their own; every result equals the serial one."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    runs = [_team_sized_job(rng, k) for k in range(4)]
    with threadpoolctl.threadpool_limits(limits=2, user_api="openmp"):
        assert_concurrent_matches_serial(runs, repeats=5)


def test_lstm_team_uses_the_callers_floating_point_mode(rng):
    """Pool workers compute their rows in the caller's floating-point mode: with flush-to-zero
    turned on after the workers were started, a team call still equals a 1-thread call, and no
    row keeps a subnormal value."""
    torch = pytest.importorskip("torch")
    threadpoolctl = pytest.importorskip("threadpoolctl")
    B, T, D, H = 24, 30, 8, 64
    x = np.full((B, T, D), 1e-20, np.float32)       # x w_ih ~ 1e-39: subnormal in float32
    w_ih = np.full((4 * H, D), 1e-20, np.float32)
    w_hh = np.zeros((4 * H, H), np.float32)
    bias = np.zeros(4 * H, np.float32)

    def run():
        return ops.lstm_forward(x, w_ih, w_hh, bias)[0]

    with threadpoolctl.threadpool_limits(limits=2, user_api="openmp"):
        run()                                       # the pool's worker exists from here
    assert np.any((run() != 0) & (np.abs(run()) < np.finfo(np.float32).tiny))
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush subnormals")
    try:
        with threadpoolctl.threadpool_limits(limits=2, user_api="openmp"):
            team = run()
        with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
            alone = run()
    finally:
        torch.set_flush_denormal(False)
    np.testing.assert_array_equal(team, alone)
    assert not np.any((team != 0) & (np.abs(team) < np.finfo(np.float32).tiny))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_lstm_team_after_fork(rng):
    """The worker pool is per process: a forked child (whose copy of the pool has no threads)
    runs team-sized calls with fresh workers and gets the parent's results."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    run = _team_sized_job(rng)
    with threadpoolctl.threadpool_limits(limits=2, user_api="openmp"):
        want = run()                      # the parent's pool now has a worker
        with warnings.catch_warnings():   # Python >= 3.12 warns about fork with threads
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:                      # child: exit status 0 iff the results match
            ok = False
            try:
                got = run()
                ok = all(np.array_equal(a, b) for a, b in zip(got, want))
            finally:
                os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        got = run()                       # and the parent's pool still works
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_lstm_results_do_not_depend_on_thread_count(rng):
    """Each thread of the team owns whole sequences and runs the same kernels on them, so the
    result is bit-identical for any team size (which follows the OpenMP thread limit)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    # big enough for a team: a thread needs a few MFLOP of work (csrc/recurrent/recurrent.c)
    x, w_ih, w_hh, bias, h0, c0 = _lstm_args(rng, 29, 40, 6, 64, np.float32, True, scale=0.125)
    lengths = _random_lengths(rng, 29, 40)
    dy = rng.standard_normal((29, 40, 64)).astype(np.float32)

    def run():
        y, h_n, c_n, cache = ops.lstm_forward(x, w_ih, w_hh, bias, h0, c0, lengths)
        return (y, h_n, c_n) + ops.lstm_backward(cache, dy)

    results = []
    for n in (1, 2, 3):
        with threadpoolctl.threadpool_limits(limits=n, user_api="openmp"):
            results.append(run())
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


# ---- the whole training engine, end to end --------------------------------------------------
def test_short_lstm_fit_runs_the_whole_training_path():
    """A few epochs of a 2-layer bidirectional LSTMClassifier on a ragged batch of sequences:
    the packed forward/backward per layer and direction, the workspace pool, the output layer's
    fused loss/gradient and the Adam step, all in one call path. CI runs tests/kernels under
    ASan + UBSan, so this puts the recurrent training loop's memory accesses under the
    sanitizers. The agreement task's training loss falls over the epochs."""
    from sklearn.exceptions import ConvergenceWarning

    from fastseq import LSTMClassifier
    from fastseq.datasets import make_agreement

    X, y = make_agreement(64, depth=1, n_fillers=2, random_state=0)
    X = [x[: len(x) - i % 3] for i, x in enumerate(X)]    # ragged: lengths differ by up to 2
    est = LSTMClassifier(hidden_size=8, num_layers=2, bidirectional=True, batch_size=16,
                         learning_rate_init=0.02, max_iter=6, random_state=0)
    with pytest.warns(ConvergenceWarning):     # a fixed budget of 6 epochs
        est.fit(X, y)
    assert np.all(np.isfinite(est.loss_curve_))
    assert est.loss_curve_[-1] < est.loss_curve_[0]
    proba = est.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
