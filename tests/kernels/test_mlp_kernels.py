"""Compiled dense-network kernels (fastseq.neural_network._mlp_fast / csrc/neural_network/mlp.c)
against the NumPy reference."""
import numpy as np
import pytest

from fastseq.neural_network import _mlp_fast as _nn
from fastseq.reference import nn as ref

DTYPES = [np.float64, np.float32]
TOL = {np.float64: dict(rtol=1e-12, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-5)}
SHAPES = [(1, 1), (1, 5), (7, 1), (13, 6)]
ACTS = list(_nn.ACTIVATIONS)
LOSSES = list(_nn.LOSSES)


def _targets(rng, loss, shape, dtype):
    n, m = shape
    if loss == "squared_error":
        return rng.normal(size=shape).astype(dtype)
    if loss == "binary_log_loss":
        return (rng.random(shape) < 0.5).astype(dtype)
    return np.eye(m, dtype=dtype)[rng.integers(0, m, n)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("act", ACTS)
def test_bias_act_and_backward(rng, dtype, shape, act):
    z = (3 * rng.normal(size=shape)).astype(dtype)
    b = rng.normal(size=shape[1]).astype(dtype)
    a = z.copy()
    _nn.bias_act(a, b, _nn.ACTIVATIONS[act])
    np.testing.assert_allclose(a, ref.activation(z + b, act), **TOL[dtype])
    delta = rng.normal(size=shape).astype(dtype)
    d = delta.copy()
    _nn.act_backward(d, a, _nn.ACTIVATIONS[act])
    np.testing.assert_allclose(d, delta * ref.activation_derivative_from_output(a, act),
                               **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_colsum(rng, dtype, shape):
    x = rng.normal(size=shape).astype(dtype)
    out = np.full(shape[1], np.nan, dtype=dtype)
    _nn.colsum(x, out)
    np.testing.assert_allclose(out, x.sum(axis=0), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("act", ACTS)
def test_act_backward_colsum(rng, dtype, shape, act):
    # the fused backward kernel: delta *= f'(z) and the bias gradient delta.sum(0) in one pass
    a = ref.activation((3 * rng.normal(size=shape)), act).astype(dtype)
    if act == "relu":
        a[0, 0] = 0  # the subgradient at z == 0 is 0
    delta = rng.normal(size=shape).astype(dtype)
    d, bias_grad = delta.copy(), np.full(shape[1], np.nan, dtype=dtype)
    _nn.act_backward_colsum(d, a, _nn.ACTIVATIONS[act], bias_grad)
    want = delta.astype(np.float64) * ref.activation_derivative_from_output(
        a.astype(np.float64), act)
    np.testing.assert_allclose(d, want, **TOL[dtype])
    np.testing.assert_allclose(bias_grad, want.sum(axis=0), **TOL[dtype])
    # same arithmetic, in the same order, as the two separate kernels
    d2, b2 = delta.copy(), np.empty_like(bias_grad)
    _nn.act_backward(d2, a, _nn.ACTIVATIONS[act])
    _nn.colsum(d2, b2)
    np.testing.assert_array_equal(d, d2)
    np.testing.assert_array_equal(bias_grad, b2)
    with pytest.raises(ValueError, match="bias_grad"):
        _nn.act_backward_colsum(d, a, 0, np.empty(shape[1] + 1, dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("width", [1, 3, 17, 100])
def test_gather_rows(rng, dtype, width):
    src = rng.normal(size=(50, width)).astype(dtype)
    idx = rng.permutation(50)[:23].astype(np.intp)
    nxt = rng.permutation(50)[:7].astype(np.intp)
    dst = np.full((30, width), np.nan, dtype=dtype)
    _nn.gather_rows(idx, src, dst, nxt)
    np.testing.assert_array_equal(dst[:23], src[idx])
    assert np.isnan(dst[23:]).all()
    _nn.gather_rows(idx[:0], src, dst, nxt[:0])  # empty batch, nothing to prefetch
    with pytest.raises(ValueError, match="out of range"):
        _nn.gather_rows(np.array([0, 50], dtype=np.intp), src, dst, nxt)
    with pytest.raises(ValueError, match="out of range"):
        _nn.gather_rows(idx, src, dst, np.array([-1], dtype=np.intp))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("loss", LOSSES)
def test_loss_and_delta_with_bias_grad(rng, dtype, shape, loss):
    # the output layer's bias gradient (column sums of delta) formed in the loss pass
    z = (2 * rng.normal(size=shape)).astype(dtype)
    y = _targets(rng, loss, shape, dtype)
    delta, bias_grad = np.empty_like(z), np.full(shape[1], np.nan, dtype=dtype)
    status, total = _nn.loss_and_delta(_nn.LOSSES[loss], z, y, delta, 0.25, bias_grad)
    want_total, want_delta = ref.loss_sum_and_delta(z.astype(np.float64), y.astype(np.float64),
                                                    loss)
    assert status == 0
    np.testing.assert_allclose(total, want_total, **TOL[dtype])
    np.testing.assert_allclose(delta, 0.25 * want_delta, **TOL[dtype])
    np.testing.assert_allclose(bias_grad, 0.25 * want_delta.sum(axis=0), **TOL[dtype])
    # delta may alias z (the softmax then recomputes its exponentials): same results
    zd = z.copy()
    status, total2 = _nn.loss_and_delta(_nn.LOSSES[loss], zd, y, zd, 0.25)
    assert status == 0 and total2 == total
    np.testing.assert_array_equal(zd, delta)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("loss", LOSSES)
def test_loss_and_delta(rng, dtype, shape, loss):
    z = (2 * rng.normal(size=shape)).astype(dtype)
    y = _targets(rng, loss, shape, dtype)
    delta = np.empty_like(z)
    status, total = _nn.loss_and_delta(_nn.LOSSES[loss], z, y, delta, 0.25)
    want_total, want_delta = ref.loss_sum_and_delta(z.astype(np.float64), y.astype(np.float64),
                                                    loss)
    assert status == 0
    np.testing.assert_allclose(total, want_total, **TOL[dtype])
    np.testing.assert_allclose(delta, 0.25 * want_delta, **TOL[dtype])
    p = z.copy()
    _nn.output_activation(_nn.LOSSES[loss], p)
    np.testing.assert_allclose(p, ref.output_activation(z, loss), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["binary_log_loss", "log_loss"])
def test_cross_entropies_stable_for_huge_logits(dtype, loss):
    # log(sigmoid(z)) and log(softmax) are never formed: no overflow, no log(0)
    z = np.array([[1e4, -1e4, 0.0], [-3e3, 2e3, 5.0]], dtype=dtype)
    y = np.array([[0, 1, 0], [1, 0, 0]], dtype=dtype)
    delta = np.empty_like(z)
    status, total = _nn.loss_and_delta(_nn.LOSSES[loss], z, y, delta, 1.0)
    want, want_delta = ref.loss_sum_and_delta(z.astype(np.float64), y.astype(np.float64), loss)
    assert status == 0 and np.isfinite(total) and np.isfinite(delta).all()
    np.testing.assert_allclose(total, want, rtol=1e-6)
    np.testing.assert_allclose(delta, want_delta, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_reports_nonfinite(dtype):
    z = np.array([[np.inf, 1.0]], dtype=dtype)
    y = np.array([[1.0, 0.0]], dtype=dtype)
    status, _ = _nn.loss_and_delta(_nn.LOSSES["squared_error"], z, y, np.empty_like(z), 1.0)
    assert status == 1  # FASTSEQ_ERR_NONFINITE


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 2, 37])
@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_step(rng, dtype, n, nesterov):
    w, v, g = (rng.normal(size=n).astype(dtype) for _ in range(3))
    n_decay = n // 2
    want_w, want_v = ref.sgd_step(w.astype(np.float64), v.astype(np.float64), g.astype(np.float64),
                                  lr=0.1, momentum=0.9, nesterov=nesterov, decay=0.01,
                                  n_decay=n_decay, gscale=0.5)
    assert _nn.sgd_step(w, v, g, n_decay, 0.5, 0.01, 0.1, 0.9, nesterov) == 0
    np.testing.assert_allclose(w, want_w, **TOL[dtype])
    np.testing.assert_allclose(v, want_v, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 2, 37])
def test_adam_steps(rng, dtype, n):
    w, g = rng.normal(size=n).astype(dtype), rng.normal(size=n).astype(dtype)
    m1, m2 = np.zeros_like(w), np.zeros_like(w)
    rw, rm1, rm2 = w.astype(np.float64), m1.astype(np.float64), m2.astype(np.float64)
    for t in (1, 2, 3):
        g = rng.normal(size=n).astype(dtype)
        assert _nn.adam_step(w, m1, m2, g, n - 1, 0.7, 0.02, 1e-2, 0.9, 0.999, 1e-8, t) == 0
        rw, rm1, rm2 = ref.adam_step(rw, rm1, rm2, g.astype(np.float64), t, 1e-2, 0.9, 0.999,
                                     1e-8, decay=0.02, n_decay=n - 1, gscale=0.7)
    np.testing.assert_allclose(w, rw, **TOL[dtype])
    np.testing.assert_allclose(m1, rm1, **TOL[dtype])
    np.testing.assert_allclose(m2, rm2, rtol=1e-4 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [5, 16, 37, 100])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_steps_return_squared_norm_of_new_weights(rng, dtype, n, solver):
    # ||w[:n_decay]||^2 after the step: the L2 term of the next batch's objective
    w, v, v2, g = (rng.normal(size=n).astype(dtype) for _ in range(4))
    v2 = np.abs(v2)
    n_decay = (2 * n) // 3
    if solver == "sgd":
        status, w_sq = _nn.sgd_step(w, v, g, n_decay, 0.5, 0.01, 0.1, 0.9, True,
                                    return_w_sq=True)
    else:
        status, w_sq = _nn.adam_step(w, v, v2, g, n_decay, 0.5, 0.01, 0.1, 0.9, 0.999, 1e-8, 3,
                                     return_w_sq=True)
    assert status == 0
    np.testing.assert_allclose(w_sq, np.sum(w[:n_decay].astype(np.float64) ** 2), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [0, 20, 47, 49])
def test_steps_report_nonfinite_anywhere(dtype, bad):
    # the finiteness check is split in lanes: an inf gradient in a full block, in the tail,
    # in the decayed prefix or among the biases must all be caught
    n, n_decay = 50, 30
    w = np.linspace(-1, 1, n).astype(dtype)
    g = np.zeros(n, dtype=dtype)
    g[bad] = np.inf
    assert _nn.sgd_step(w.copy(), np.zeros_like(w), g, n_decay, 1.0, 0.0, 0.1, 0.0, False) == 1
    assert _nn.adam_step(w.copy(), np.zeros_like(w), np.zeros_like(w), g, n_decay, 1.0, 0.0,
                         0.1, 0.9, 0.999, 1e-8, 1) == 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_steps_report_nonfinite_weights(dtype):
    w = np.array([1.0, 2.0], dtype=dtype)
    g = np.array([np.inf, 0.0], dtype=dtype)
    assert _nn.sgd_step(w.copy(), np.zeros_like(w), g, 2, 1.0, 0.0, 0.1, 0.0, False) == 1
    assert _nn.adam_step(w.copy(), np.zeros_like(w), np.zeros_like(w), np.full_like(w, np.nan), 2,
                         1.0, 0.0, 0.1, 0.9, 0.999, 1e-8, 1) == 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_grad_norm(rng, dtype):
    g = rng.normal(size=101).astype(dtype)
    np.testing.assert_allclose(_nn.grad_norm(g), np.linalg.norm(g.astype(np.float64)),
                               **TOL[dtype])


def _engine_loss_grad(coefs, intercepts, X, Y, act, loss, alpha):
    from fastseq.neural_network._training import FlatLayout
    sizes = np.array([X.shape[1]] + [W.shape[1] for W in coefs], dtype=np.intp)
    layout = FlatLayout([W.shape for W in coefs], [b.shape for b in intercepts])
    params = layout.pack(coefs, intercepts, X.dtype)
    grads = np.full_like(params, np.nan)
    work = np.full(_nn.workspace_size(sizes, X.shape[0]), np.nan, dtype=X.dtype)
    dX = np.full_like(X, np.nan)
    status, value = _nn.loss_grad(params, grads, work, X, Y, sizes, layout.weight_offsets,
                                  layout.bias_offsets, layout.n_weights, _nn.ACTIVATIONS[act],
                                  _nn.LOSSES[loss], alpha, dX)
    assert status == 0
    gw, gb = layout.views(grads)
    return value, gw, gb, dX


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("widths", [[1, 1, 1], [4, 1, 3], [5, 7, 6, 3], [3, 2]])
@pytest.mark.parametrize("n", [1, 9])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("loss", LOSSES)
def test_network_loss_grad_vs_reference(rng, dtype, widths, n, act, loss):
    if loss == "log_loss" and widths[-1] == 1:
        widths = widths[:-1] + [2]
    coefs = [rng.normal(size=(a, b)).astype(dtype) for a, b in zip(widths[:-1], widths[1:])]
    intercepts = [rng.normal(size=b).astype(dtype) for b in widths[1:]]
    X = rng.normal(size=(n, widths[0])).astype(dtype)
    Y = _targets(rng, loss, (n, widths[-1]), dtype)
    value, gw, gb, dX = _engine_loss_grad(coefs, intercepts, X, Y, act, loss, 0.3)
    f64 = [c.astype(np.float64) for c in coefs], [b.astype(np.float64) for b in intercepts]
    want, rgw, rgb, rdX = ref.loss_and_grad(*f64, X.astype(np.float64), Y.astype(np.float64),
                                            act, loss, 0.3, return_input_grad=True)
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(value, want, **tol)
    for a, b in zip(gw + gb + [dX], rgw + rgb + [rdX]):
        np.testing.assert_allclose(a, b, **tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("gemm_mnk", [0, 693])
@pytest.mark.parametrize("shuffled", [False, True])
def test_train_epoch_vs_reference(rng, dtype, solver, gemm_mnk, shuffled):
    # The compiled epoch (gathered shuffled batches, fused bias gradients, ||W||^2 carried by the
    # optimizer step, and with gemm_mnk > 0 the layer GEMMs split into row blocks: here layers 1
    # and 2 in blocks of <= 10 and 9 rows, the output layer whole) against the NumPy epoch.
    from fastseq.neural_network._training import FlatLayout
    widths, n, batch, alpha, lr = [6, 11, 7, 3], 67, 25, 0.3, 0.05
    coefs = [rng.uniform(-0.6, 0.6, (a, b)) for a, b in zip(widths[:-1], widths[1:])]
    intercepts = [rng.uniform(-0.6, 0.6, b) for b in widths[1:]]
    X = rng.normal(size=(n, widths[0])).astype(dtype)
    Y = _targets(rng, "log_loss", (n, widths[-1]), dtype)
    order = rng.permutation(n).astype(np.intp) if shuffled else None
    sizes = np.array(widths, dtype=np.intp)
    layout = FlatLayout([W.shape for W in coefs], [b.shape for b in intercepts])
    params = layout.pack(coefs, intercepts, dtype)
    m1, m2 = np.zeros_like(params), np.zeros_like(params)
    status, total, adam_t, n_updates = _nn.train_epoch(
        params, np.empty_like(params), m1, m2, np.empty_like(params),
        np.full(_nn.workspace_size(sizes, batch), np.nan, dtype=dtype), X, Y, order, sizes,
        layout.weight_offsets, layout.bias_offsets, layout.n_weights, _nn.ACTIVATIONS["tanh"],
        _nn.LOSSES["log_loss"], batch, _nn.SOLVERS[solver], lr, 0.9, True, 0.9, 0.999, 1e-8,
        alpha, -1.0, 0, gemm_mnk)
    assert status == 0 and n_updates == 3 and adam_t == (3 if solver == "adam" else 0)
    rc, ri = [c.copy() for c in coefs], [b.copy() for b in intercepts]
    Xr, Yr = (X, Y) if order is None else (X[order], Y[order])
    want = ref.train_epoch(rc, ri, Xr.astype(np.float64), Yr.astype(np.float64), "tanh",
                           "log_loss", batch, lr, alpha=alpha, solver=solver)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(total / n, want, **tol)
    gw, gb = layout.views(params)
    for a, b in zip(gw + gb, rc + ri):
        np.testing.assert_allclose(a, b, **tol)


# ---- the whole training engine, end to end --------------------------------------------------
def test_short_fits_run_the_whole_training_path():
    """A few epochs of each MLP estimator through every compiled piece in one go (validation,
    _mlp_fast.train_epoch's batch gathering and prefetch, GEMMs, fused loss/gradient, the Adam
    and momentum-SGD steps, early stopping's weight copy). CI runs tests/kernels under ASan +
    UBSan: this puts the training engine's memory accesses under the sanitizers, not only the
    kernels one at a time. Both fits reduce their training loss on a learnable problem."""
    from sklearn.exceptions import ConvergenceWarning

    from fastseq import MLPClassifier, MLPRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(96, 5))
    y = np.tanh(X @ rng.normal(size=5))
    fits = [
        (MLPRegressor(hidden_layer_sizes=(16, 8), learning_rate_init=0.01, batch_size=16,
                      max_iter=8, early_stopping=True, n_iter_no_change=100, random_state=0),
         y),
        (MLPClassifier(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=0.1,
                       batch_size=10, max_iter=8, random_state=0),
         np.digitize(y, [-0.3, 0.3])),
    ]
    for est, target in fits:
        with pytest.warns(ConvergenceWarning):     # a fixed budget of 8 epochs
            est.fit(X, target)
        assert np.all(np.isfinite(est.loss_curve_))
        assert est.loss_curve_[-1] < est.loss_curve_[0]
        assert np.all(np.isfinite(est.predict(X)))
