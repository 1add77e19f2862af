"""The recurrent layer stack (fastseq.ops.recurrent_stack_forward / _backward) against its NumPy
reference, central finite differences through every layer, and torch.nn.LSTM / torch.nn.RNN
(2 layers, bidirectional, packed sequences); plus the cell registry, dropout and errors."""
import doctest

import numpy as np
import pytest

from fastseq import ops
from fastseq._recurrent import stack
from fastseq._recurrent.cells import _packing
from fastseq.reference import recurrent as ref
from fastseq.reference.testing import assert_close_to_scale, central_differences

pytestmark = pytest.mark.kernels

DTYPES = [np.float64, np.float32]
# tolerance of stack vs reference/torch per dtype (errors add up over layers and directions)
RTOL = {np.float64: 1e-11, np.float32: 1e-4}
CELLS = ["lstm", "rnn_tanh", "rnn_relu"]


# ---- helpers -------------------------------------------------------------------------------------
def _weights(rng, cell, D, H, num_layers, ndir, dtype, scale=0.5):
    """Random weights[l][d] = (w_ih, w_hh, bias) of the cell's shapes."""
    spec = stack.get_cell(cell)
    out = []
    for l in range(num_layers):
        d_in = D if l == 0 else ndir * H
        out.append([tuple((scale * rng.standard_normal(s)).astype(dtype)
                          for s in spec.param_shapes(d_in, H)) for _ in range(ndir)])
    return out


def _states(rng, cell, B, H, num_layers, ndir, dtype):
    n = len(stack.get_cell(cell).states)
    return [[tuple(rng.standard_normal((B, H)).astype(dtype) for _ in range(n))
             for _ in range(ndir)] for _ in range(num_layers)]


def _masks(rng, B, T, H, num_layers, ndir, dtype, p=0.4):
    """Inverted-dropout multipliers per layer (None for layer 0)."""
    return [None] + [((rng.random((B, T, ndir * H)) >= p) / (1 - p)).astype(dtype)
                     for _ in range(num_layers - 1)]


def _lengths(rng, B, T):
    lengths = rng.integers(1, T + 1, size=B)
    lengths[0] = T
    if B > 2:
        lengths[-1] = 1                 # always one length-1 sequence in ragged batches
    return lengths


def _close(actual, desired, dtype, name):
    assert_close_to_scale(actual, desired, dtype, RTOL[dtype], name)


def _close_nested(actual, desired, dtype, name):
    """Compare nested [layer][direction] tuples of arrays."""
    assert len(actual) == len(desired), name
    for l, (a_l, d_l) in enumerate(zip(actual, desired)):
        assert len(a_l) == len(d_l), name
        for d, (a, b) in enumerate(zip(a_l, d_l)):
            assert len(a) == len(b), name
            for k, (u, v) in enumerate(zip(a, b)):
                _close(u, v, dtype, f"{name}[{l}][{d}][{k}]")


def _flat_params(weights, states):
    """Every array the loss depends on (besides x), for finite differences."""
    arrs = [p for layer in weights for params in layer for p in params]
    if states is not None:
        arrs += [s for layer in states for entry in layer for s in entry]
    return arrs


# ---- against the NumPy reference -----------------------------------------------------------------
SHAPES = [(3, 5, 4, 3), (1, 1, 2, 2), (4, 1, 3, 4), (1, 6, 1, 1), (5, 4, 2, 5)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("num_layers,ndir", [(1, 1), (1, 2), (2, 1), (2, 2), (3, 2)])
@pytest.mark.parametrize("B,T,D,H", SHAPES)
@pytest.mark.parametrize("ragged", [False, True])
def test_stack_matches_reference(rng, dtype, cell, num_layers, ndir, B, T, D, H, ragged):
    x = rng.standard_normal((B, T, D)).astype(dtype)
    weights = _weights(rng, cell, D, H, num_layers, ndir, dtype)
    lengths = _lengths(rng, B, T) if ragged else None
    states = _states(rng, cell, B, H, num_layers, ndir, dtype) if ragged else None
    masks = _masks(rng, B, T, H, num_layers, ndir, dtype) if num_layers > 1 else None
    y, finals, tape = ops.recurrent_stack_forward(x, weights, cell, lengths=lengths,
                                                  initial_states=states, masks=masks)
    y_r, finals_r, tape_r = ref.recurrent_stack_forward(x, weights, cell, lengths, states, masks)
    _close(y, y_r, dtype, "y")
    _close_nested(finals, finals_r, dtype, "final_states")
    if lengths is not None:
        assert np.all(y[np.arange(T)[None, :] >= lengths[:, None]] == 0)

    dy = rng.standard_normal(y.shape).astype(dtype)
    d_final = _states(rng, cell, B, H, num_layers, ndir, dtype)
    dx, dweights, d_init = ops.recurrent_stack_backward(tape, dy, d_final)
    dx_r, dweights_r, d_init_r = ref.recurrent_stack_backward(tape_r, dy, d_final)
    _close(dx, dx_r, dtype, "dx")
    _close_nested(dweights, dweights_r, dtype, "dweights")
    _close_nested(d_init, d_init_r, dtype, "d_initial_states")


@pytest.mark.parametrize("cell", CELLS)
def test_layer_outputs_and_activations(rng, cell):
    B, T, D, H = 3, 4, 2, 3
    x = rng.standard_normal((B, T, D))
    weights = _weights(rng, cell, D, H, 2, 2, np.float64)
    lengths = np.array([4, 2, 1])
    y, _, tape = ops.recurrent_stack_forward(x, weights, cell, lengths=lengths,
                                             keep_layer_outputs=True)
    assert len(tape.layer_outputs) == 2 and tape.layer_outputs[1] is y
    # layer 1 = a one-layer stack run on layer 0's outputs
    y1, _, _ = ops.recurrent_stack_forward(tape.layer_outputs[0], weights[1:], cell,
                                           lengths=lengths)
    np.testing.assert_array_equal(y1, y)
    acts = tape.activations()
    if cell == "lstm":
        assert list(acts) == ["input_gate", "forget_gate", "output_gate", "cell_state"]
        # h_t = o_t tanh(c_t), both directions aligned to input time
        for l in range(2):
            np.testing.assert_allclose(tape.layer_outputs[l],
                                       acts["output_gate"][l] * np.tanh(acts["cell_state"][l]),
                                       rtol=1e-12, atol=1e-14)
    else:
        assert acts == {}
    with pytest.raises(ValueError, match="keep_layer_outputs=True"):
        _ = ops.recurrent_stack_forward(x, weights, cell)[2].layer_outputs


# ---- finite differences through the whole stack --------------------------------------------------
def _fd_check(loss, arrays, grads, eps=1e-6, rtol=1e-6, atol=1e-7):
    for k, (a, g) in enumerate(zip(arrays, grads)):
        np.testing.assert_allclose(g, central_differences(loss, a, eps), rtol=rtol, atol=atol,
                                   err_msg=f"array {k}")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("num_layers,ndir,lengths", [(2, 2, [3, 1, 2]), (3, 1, [2, 3, 3]),
                                                     (2, 2, None), (1, 2, [1, 3, 2])])
def test_gradients_finite_differences(rng, cell, num_layers, ndir, lengths):
    B, T, D, H = 3, 3, 2, 2
    x = rng.standard_normal((B, T, D))
    weights = _weights(rng, cell, D, H, num_layers, ndir, np.float64, scale=0.8)
    if cell == "rnn_relu":          # keep pre-activations away from relu's kink
        for layer in weights:
            for params in layer:
                params[2][:] = 0.5 + np.abs(params[2])
    states = _states(rng, cell, B, H, num_layers, ndir, np.float64)
    masks = _masks(rng, B, T, H, num_layers, ndir, np.float64) if num_layers > 1 else None
    dy = rng.standard_normal((B, T, ndir * H))
    d_final = _states(rng, cell, B, H, num_layers, ndir, np.float64)

    def loss():
        y, finals, _ = ops.recurrent_stack_forward(x, weights, cell, lengths=lengths,
                                                   initial_states=states, masks=masks)
        total = np.sum(y * dy)
        for f_l, g_l in zip(finals, d_final):
            for f, g in zip(f_l, g_l):
                total += sum(np.sum(a * b) for a, b in zip(f, g))
        return total

    tape = ops.recurrent_stack_forward(x, weights, cell, lengths=lengths,
                                       initial_states=states, masks=masks)[2]
    dx, dweights, d_init = ops.recurrent_stack_backward(tape, dy, d_final)
    grads = [dx] + _flat_params(dweights, d_init)
    _fd_check(loss, [x] + _flat_params(weights, states), grads)


def test_final_state_gradient_alone_reaches_lower_layers(rng):
    # dy = None: only dL/d(top final h) drives the backward pass, as for per-sequence targets
    B, T, D, H = 2, 3, 2, 2
    x = rng.standard_normal((B, T, D))
    weights = _weights(rng, "lstm", D, H, 2, 2, np.float64, scale=0.8)
    g = [None, [(rng.standard_normal((B, H)), None), (rng.standard_normal((B, H)), None)]]

    def loss():
        finals = ops.recurrent_stack_forward(x, weights, "lstm", lengths=[3, 2])[1]
        return sum(np.sum(finals[1][d][0] * g[1][d][0]) for d in range(2))

    tape = ops.recurrent_stack_forward(x, weights, "lstm", lengths=[3, 2])[2]
    dx, dweights, _ = ops.recurrent_stack_backward(tape, None, g)
    _fd_check(loss, [x] + _flat_params(weights, None), [dx] + _flat_params(dweights, None))


# ---- against PyTorch -----------------------------------------------------------------------------
def _torch_stack(torch, cell, D, H, weights, dtype):
    """torch.nn.LSTM / RNN (2 layers, bidirectional) holding our weights (bias_hh = 0)."""
    L, ndir = len(weights), len(weights[0])
    kw = {"num_layers": L, "bidirectional": ndir == 2, "batch_first": True}
    m = torch.nn.LSTM(D, H, **kw) if cell == "lstm" else \
        torch.nn.RNN(D, H, nonlinearity=cell[4:], **kw)
    m = m.double() if dtype == np.float64 else m.float()
    with torch.no_grad():
        for l in range(L):
            for d in range(ndir):
                sfx = f"_l{l}" + ("_reverse" if d else "")
                w_ih, w_hh, bias = weights[l][d]
                getattr(m, "weight_ih" + sfx).copy_(torch.from_numpy(w_ih))
                getattr(m, "weight_hh" + sfx).copy_(torch.from_numpy(w_hh))
                getattr(m, "bias_ih" + sfx).copy_(torch.from_numpy(bias))
                getattr(m, "bias_hh" + sfx).zero_()
    return m


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("packed", [False, True])
def test_matches_torch_two_layer_bidirectional(rng, dtype, cell, packed):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    B, T, D, H, L = 4, 6, 3, 5, 2
    n_states = len(stack.get_cell(cell).states)
    x = rng.standard_normal((B, T, D)).astype(dtype)
    weights = _weights(rng, cell, D, H, L, 2, dtype)
    states = _states(rng, cell, B, H, L, 2, dtype)
    lengths = np.array([4, 6, 1, 3]) if packed else np.full(B, T)
    valid = np.arange(T)[None, :] < lengths[:, None]
    dy = rng.standard_normal((B, T, 2 * H)).astype(dtype) * valid[:, :, None]
    d_final = _states(rng, cell, B, H, L, 2, dtype)

    y, finals, tape = ops.recurrent_stack_forward(x, weights, cell, lengths=lengths,
                                                  initial_states=states)
    dx, dweights, d_init = ops.recurrent_stack_backward(tape, dy, d_final)

    m = _torch_stack(torch, cell, D, H, weights, dtype)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    # torch's states are (L * ndir, B, H), index l * ndir + d
    t0 = [torch.from_numpy(np.stack([states[l][d][k] for l in range(L) for d in range(2)]))
          .requires_grad_(True) for k in range(n_states)]
    inp = pack_padded_sequence(tx, torch.from_numpy(lengths), batch_first=True,
                               enforce_sorted=False) if packed else tx
    out, tstates = m(inp, tuple(t0) if n_states == 2 else t0[0])
    if packed:
        out = pad_packed_sequence(out, batch_first=True, total_length=T)[0]
    tstates = tstates if n_states == 2 else (tstates,)
    _close(y, out.detach().numpy(), dtype, "y")
    for k in range(n_states):
        for l in range(L):
            for d in range(2):
                _close(finals[l][d][k], tstates[k][l * 2 + d].detach().numpy(), dtype,
                       f"final[{l}][{d}][{k}]")
    loss = (out * torch.from_numpy(dy)).sum()
    for k in range(n_states):
        g = np.stack([d_final[l][d][k] for l in range(L) for d in range(2)])
        loss = loss + (tstates[k] * torch.from_numpy(g)).sum()
    loss.backward()
    _close(dx, tx.grad.numpy() * valid[:, :, None], dtype, "dx")
    for l in range(L):
        for d in range(2):
            sfx = f"_l{l}" + ("_reverse" if d else "")
            dw_ih, dw_hh, dbias = dweights[l][d]
            _close(dw_ih, getattr(m, "weight_ih" + sfx).grad.numpy(), dtype, "dw_ih" + sfx)
            _close(dw_hh, getattr(m, "weight_hh" + sfx).grad.numpy(), dtype, "dw_hh" + sfx)
            _close(dbias, getattr(m, "bias_ih" + sfx).grad.numpy(), dtype, "dbias" + sfx)
            for k in range(n_states):
                _close(d_init[l][d][k], t0[k].grad[l * 2 + d].numpy(), dtype, f"d_init{sfx}")


# ---- dropout, buffers, registry ------------------------------------------------------------------
def test_rng_dropout_draws_one_mask_per_upper_layer_in_order(rng):
    B, T, D, H, p = 3, 4, 2, 3, 0.3
    x = rng.standard_normal((B, T, D))
    weights = _weights(rng, "lstm", D, H, 3, 2, np.float64)
    lengths = np.array([4, 2, 3])
    y, _, tape = ops.recurrent_stack_forward(x, weights, lengths=lengths, dropout=p,
                                             rng=np.random.RandomState(7))
    # the same draws, made by hand, as explicit masks
    draw = np.random.RandomState(7)
    masks = [None] + [(draw.random_sample((B, T, 2 * H)) < 1 - p) / (1 - p) for _ in range(2)]
    y2, _, _ = ops.recurrent_stack_forward(x, weights, lengths=lengths, masks=masks)
    np.testing.assert_array_equal(y, y2)
    assert tape.masks[0] is None and all(np.array_equal(a, b)
                                         for a, b in zip(tape.masks[1:], masks[1:]))
    # a Generator works too; without rng (inference) dropout is off
    ops.recurrent_stack_forward(x, weights, dropout=p, rng=np.random.default_rng(0))
    y3 = ops.recurrent_stack_forward(x, weights, lengths=lengths, dropout=p)[0]
    np.testing.assert_array_equal(y3, ops.recurrent_stack_forward(x, weights,
                                                                  lengths=lengths)[0])


def _nested_views(buf, cell, D, H, num_layers, ndir):
    """weights[l][d] as views into one flat buffer, as the estimators' FlatLayout gives them
    (buf None: only count the parameters)."""
    spec = stack.get_cell(cell)
    out, off = [], 0
    for l in range(num_layers):
        layer = []
        for _ in range(ndir):
            params = []
            for s in spec.param_shapes(D if l == 0 else ndir * H, H):
                n = int(np.prod(s))
                params.append(None if buf is None else buf[off:off + n].reshape(s))
                off += n
            layer.append(tuple(params))
        out.append(layer)
    return out, off


def test_weights_as_views_of_one_buffer_are_not_copied(rng):
    # the estimators' entry (validated arguments) reads their flat buffer's views in place; the
    # public entry keeps copies (test_weights_changed_after_forward_...)
    B, T, D, H = 2, 3, 2, 3
    n = _nested_views(None, "lstm", D, H, 2, 2)[1]
    buf = 0.5 * rng.standard_normal(n)
    weights = _nested_views(buf, "lstm", D, H, 2, 2)[0]
    x = rng.standard_normal((B, T, D))
    lengths = np.full(B, T, dtype=np.intp)
    _, _, tape = stack._forward(stack.get_cell("lstm"), x, weights, lengths,
                                _packing(lengths, B, T))
    for l in range(2):
        for d in range(2):
            cached = tape.caches[l][d]._arrays
            assert cached["w_ih"] is weights[l][d][0] and cached["w_hh"] is weights[l][d][1]
    # the private entry writes the weight gradients straight into a gradient buffer's views
    grads = np.zeros_like(buf)
    dy = rng.standard_normal((B, T, 2 * H))
    out = _nested_views(grads, "lstm", D, H, 2, 2)[0]
    _, dweights, _ = stack._backward(tape, dy, None, weight_grads_out=out)
    _, want, _ = ops.recurrent_stack_backward(tape, dy)
    for l in range(2):
        for d in range(2):
            for a, b in zip(dweights[l][d], want[l][d]):
                assert np.shares_memory(a, grads)
                np.testing.assert_array_equal(a, b)


def test_cell_registry():
    spec = stack.get_cell("lstm")
    assert spec.params == ("w_ih", "w_hh", "bias") and spec.states == ("h", "c")
    assert spec.param_shapes(3, 2) == [(8, 3), (8, 2), (8,)]
    assert stack.get_cell("rnn_relu").nonlinearity == "relu"
    assert stack.get_cell(spec) is spec
    with pytest.raises(ValueError, match="unknown cell 'gru'.*register_cell"):
        stack.get_cell("gru")
    with pytest.raises(TypeError, match="CellSpec"):
        stack.register_cell("gru")
    # a new kind of cell is one spec: here a relu RNN under another name
    alias = stack.CellSpec("test_relu", 1, ("hidden",), ("h",), ("bias",),
                           stack.get_cell("rnn_relu").forward,
                           stack.get_cell("rnn_relu").backward, nonlinearity="relu")
    stack.register_cell(alias)
    try:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((2, 3, 2))
        w = _weights(rng, "rnn_relu", 2, 3, 2, 2, np.float64)
        np.testing.assert_array_equal(ops.recurrent_stack_forward(x, w, "test_relu")[0],
                                      ops.recurrent_stack_forward(x, w, "rnn_relu")[0])
    finally:
        del stack._CELLS["test_relu"]


# ---- errors --------------------------------------------------------------------------------------
def test_errors_name_the_argument(rng):
    B, T, D, H = 2, 3, 2, 3
    x = rng.standard_normal((B, T, D))
    w = _weights(rng, "lstm", D, H, 2, 2, np.float64)
    f = ops.recurrent_stack_forward
    with pytest.raises(ValueError, match="x must be a non-empty 3-D"):
        f(x[0], w)
    with pytest.raises(TypeError, match="x must be a float32 or float64"):
        f(x.astype(int), w)
    with pytest.raises(TypeError, match="weights must be a non-empty list"):
        f(x, [])
    with pytest.raises(ValueError, match="1 .* or 2 .* parameter tuples"):
        f(x, [w[0] * 2])
    with pytest.raises(ValueError, match=r"weights\[1\] must hold one entry per direction"):
        f(x, [w[0], w[1][:1]])
    with pytest.raises(ValueError, match=r"weights\[1\]\[0\] \(w_ih\) must have shape \(12, 6\)"):
        f(x, [w[0], [w[0][0], w[1][1]]])
    with pytest.raises(TypeError, match=r"weights\[0\]\[1\] \(bias\) has dtype float32"):
        f(x, [[w[0][0], w[0][1][:2] + (w[0][1][2].astype(np.float32),)], w[1]])
    with pytest.raises(ValueError, match=r"weights\[0\]\[0\] \(w_ih\) must have shape \(3, 2\)"):
        f(x, w, "rnn_tanh")
    with pytest.raises(ValueError, match=r"weights\[1\]\[1\] must be a tuple \('w_ih', "):
        f(x, [w[0], [w[1][0], w[1][1][:2]]])
    with pytest.raises(ValueError, match="lengths must lie in"):
        f(x, w, lengths=[0, 3])
    with pytest.raises(ValueError, match=r"initial_states\[0\]\[1\] must be a tuple \('h', 'c'\)"):
        f(x, w, initial_states=[[None, (np.zeros((B, H)),)], None])
    with pytest.raises(ValueError, match=r"initial_states\[0\]\[0\] \(c\) must have shape"):
        f(x, w, initial_states=[[(None, np.zeros((B, 2))), None], None])
    with pytest.raises(ValueError, match="dropout must be a probability"):
        f(x, w, dropout=1.0)
    with pytest.raises(ValueError, match="either rng .* or masks"):
        f(x, w, rng=np.random.RandomState(0), masks=[None, None])
    with pytest.raises(TypeError, match="rng must be a numpy.random.RandomState"):
        f(x, w, dropout=0.5, rng=0)
    with pytest.raises(ValueError, match=r"masks\[1\] must have shape \(2, 3, 6\)"):
        f(x, w, masks=[None, np.ones((B, T, H))])
    with pytest.raises(ValueError, match="unknown cell"):
        f(x, w, "gru")
    bad = x.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="x contains NaN"):
        f(bad, w)
    tape = f(x, w)[2]
    with pytest.raises(TypeError, match="needs the tape"):
        ops.recurrent_stack_backward(None, np.zeros((B, T, 2 * H)))
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 3, 6\)"):
        ops.recurrent_stack_backward(tape, np.zeros((B, T, H)))
    with pytest.raises(ValueError, match=r"d_final_states must be a list over the 2 layers"):
        ops.recurrent_stack_backward(tape, None, [None])
    with pytest.raises(ValueError, match=r"weights\[1\] must hold one entry per direction"):
        f(x, [w[0], None])
    for not_tuples in ([[1.0]], [[1.0, 2.0]]):
        with pytest.raises(ValueError, match=r"weights\[0\]\[0\] must be a tuple"):
            f(x, not_tuples)
    nan_mask = np.ones((B, T, 2 * H))
    nan_mask[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match=r"masks\[1\] contains NaN"):
        f(x, w, masks=[None, nan_mask])


def test_weights_changed_after_forward_do_not_change_the_gradients(rng):
    # the tape holds its own copy of the caller's weights, as the cell ops' caches do
    x = rng.standard_normal((2, 4, 3))
    w = _weights(rng, "lstm", 3, 2, 2, 2, np.float64)
    dy = rng.standard_normal((2, 4, 4))
    _, _, tape = ops.recurrent_stack_forward(x, w)
    want = ops.recurrent_stack_backward(tape, dy)
    _, _, tape = ops.recurrent_stack_forward(x, w)
    for layer in w:
        for params in layer:
            for p in params:
                p *= 2.0
    got = ops.recurrent_stack_backward(tape, dy)
    np.testing.assert_array_equal(got[0], want[0])
    for g_layer, w_layer in zip(got[1], want[1]):
        for g, ww in zip(g_layer, w_layer):
            for a, b in zip(g, ww):
                np.testing.assert_array_equal(a, b)


def test_register_cell_never_replaces_silently():
    lstm = stack.get_cell("lstm")
    with pytest.raises(ValueError, match="'lstm' is registered already"):
        stack.register_cell(lstm)
    with pytest.raises(ValueError, match="'lstm' is registered already"):
        stack.register_cell(lstm, replace=True)
    alias = stack.CellSpec("test_alias", 1, ("hidden",), ("h",), ("bias",),
                           stack.get_cell("rnn_tanh").forward, stack.get_cell("rnn_tanh").backward,
                           nonlinearity="tanh")
    stack.register_cell(alias)
    try:
        with pytest.raises(ValueError, match="or pass replace=True"):
            stack.register_cell(alias)
        assert stack.register_cell(alias, replace=True) is alias
    finally:
        del stack._CELLS["test_alias"]
    assert stack.get_cell("lstm") is lstm


def test_docstring_examples():
    result = doctest.testmod(stack, verbose=False)
    assert result.attempted > 0 and result.failed == 0
