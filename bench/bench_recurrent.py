"""LSTM / Elman RNN kernels: fastseq vs the NumPy reference vs torch.nn.LSTM / torch.nn.RNN.

Each (kind, shape, dtype, pass) is one benchmark group holding fastseq, the reference and torch
(when importable); results are checked to agree before anything is timed. extra_info carries the
flop count and the GEMM peak of fastseq's BLAS measured in this run, so

    python bench/recurrent_table.py

prints the table (shape, dtype, pass, fastseq ms, torch ms, ratio, reference ms, GFLOP/s, %peak).
Shapes are (T, B, D, H). Forward flops = 2*T*B*4H*(D+H) (LSTM; H instead of 4H for the RNN),
backward counted as twice that.

Metadata follows bench/README.md (``fastseq._cli.bench.record``: impl/case/dtype/agreement/flops/
T/B/D/H); the legacy keys kind/shape/pas/gemm_peak stay for the two table scripts. Quick mode
(``FASTSEQ_BENCH_QUICK=1``, ``fastseq bench --quick``) runs small shapes: a base LSTM shape and one
shape each with T, H and B doubled, so the report can plot time against T, H and B.
"""
import os
import time

import numpy as np
import pytest

from fastseq import ops
from fastseq._cli.bench import QUICK, check_agreement, pick, record
from fastseq._lib import _gemm
from fastseq.reference import recurrent as ref
from fastseq.reference.testing import torch_recurrent_module

try:
    import torch
    if "OMP_NUM_THREADS" not in os.environ:  # `fastseq bench --threads N` sets it: respect it
        torch.set_num_threads(2)
except ImportError:  # pragma: no cover
    torch = None

# (T, B, D, H). Quick: base (16, 8, 16, 32) and T, H, B doubled one at a time (the report's sweeps)
LSTM_SHAPES = pick(full=[(50, 32, 32, 64), (100, 64, 64, 128), (100, 64, 128, 256),
                         (100, 128, 256, 512), (500, 1, 32, 64)],
                   quick=[(16, 8, 16, 32), (32, 8, 16, 32), (16, 8, 16, 64), (16, 16, 16, 32)])
RNN_SHAPES = pick(full=[(100, 64, 64, 128), (100, 64, 128, 256), (500, 1, 32, 64)],
                  quick=[(16, 8, 16, 32), (32, 8, 16, 32)])
RAGGED_SHAPE = pick(full=[(100, 64, 128, 256)], quick=[(32, 16, 16, 32)])[0]
DTYPES = {"float32": np.float32, "float64": np.float64}
TOL = {"float32": 2e-3, "float64": 1e-9}


def _agree_tol(dt, want):
    """Tolerance on the relative difference max|a - b| / max|b| (recorded as `agreement`) that
    the assert_allclose checks imply: |a - b| <= TOL (max(1, M) + |b|), M = max|b|."""
    return max(TOL[dt] * (max(1.0, m) + m) / m
               for m in (float(np.abs(b).max()) for b in want) if m > 0)

_PEAK = {}


def gemm_peak(dtype):
    """GFLOP/s of fastseq's BLAS (fastseq._lib._gemm.gemm) on 1024^2 matrices, best of 5."""
    if dtype not in _PEAK:
        rng = np.random.default_rng(0)
        a = rng.standard_normal((1024, 1024)).astype(dtype)
        b = rng.standard_normal((1024, 1024)).astype(dtype)
        _gemm.gemm(a, b)
        best = np.inf
        for _ in range(5):
            t0 = time.perf_counter()
            _gemm.gemm(a, b)
            best = min(best, time.perf_counter() - t0)
        _PEAK[dtype] = 2 * 1024**3 / best / 1e9
    return _PEAK[dtype]


def _rounds(fn, budget=1.5, lo=3, hi=1000):
    if QUICK:  # a few rounds: the quick suite has a two-minute budget
        budget, lo, hi = min(budget, 0.05), min(lo, 3), min(hi, 10)
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    return int(min(hi, max(lo, budget / max(dt, 1e-6))))


def _warmup(fn):
    """Warm-up rounds covering ~0.2 s: the previous case's BLAS/OpenMP worker threads keep
    spinning for up to ~0.1 s after their last call (OpenBLAS's default thread timeout) and
    steal the second core; timing a millisecond kernel inside that window measures them."""
    return 1 if QUICK else _rounds(fn, 0.2, lo=1, hi=1000)


def _problem(kind, T, B, D, H, dtype, lengths=None, seed=0):
    rng = np.random.default_rng(seed)
    G = 4 * H if kind == "lstm" else H
    x = rng.standard_normal((B, T, D)).astype(dtype)
    w_ih = (rng.standard_normal((G, D)) / np.sqrt(D)).astype(dtype)
    w_hh = (rng.standard_normal((G, H)) / np.sqrt(H)).astype(dtype)
    bias = (0.1 * rng.standard_normal(G)).astype(dtype)
    dy = rng.standard_normal((B, T, H)).astype(dtype)
    return x, w_ih, w_hh, bias, dy


def _runners(kind, T, B, D, H, dtype, lengths=None):
    """fastseq / reference / torch callables for forward and forward+backward; each returns
    (y, gradient of w_ih) (None for forward) so they can be compared."""
    x, w_ih, w_hh, bias, dy = _problem(kind, T, B, D, H, dtype)
    if kind == "lstm":
        def fs_fwd():
            return ops.lstm_forward(x, w_ih, w_hh, bias, lengths=lengths)[0], None

        def fs_fb():
            y, _, _, cache = ops.lstm_forward(x, w_ih, w_hh, bias, lengths=lengths)
            return y, ops.lstm_backward(cache, dy)[1]

        def ref_fwd():
            return ref.lstm_forward(x, w_ih, w_hh, bias, lengths=lengths)[0], None

        def ref_fb():
            y, _, _, cache = ref.lstm_forward(x, w_ih, w_hh, bias, lengths=lengths)
            return y, ref.lstm_backward(cache, dy)[1]
    else:
        def fs_fwd():
            return ops.rnn_forward(x, w_ih, w_hh, bias, lengths=lengths)[0], None

        def fs_fb():
            y, _, cache = ops.rnn_forward(x, w_ih, w_hh, bias, lengths=lengths)
            return y, ops.rnn_backward(cache, dy)[1]

        def ref_fwd():
            return ref.rnn_forward(x, w_ih, w_hh, bias, lengths=lengths)[0], None

        def ref_fb():
            y, _, cache = ref.rnn_forward(x, w_ih, w_hh, bias, lengths=lengths)
            return y, ref.rnn_backward(cache, dy)[1]
    runners = {"fastseq": (fs_fwd, fs_fb), "reference": (ref_fwd, ref_fb)}
    if torch is not None and lengths is None:
        m = torch_recurrent_module(kind, w_ih, w_hh, bias)
        tx = torch.from_numpy(x)
        tdy = torch.from_numpy(dy)

        def torch_fwd():
            with torch.no_grad():
                return m(tx)[0].numpy(), None

        def torch_fb():
            m.zero_grad(set_to_none=True)
            xr = tx.detach().requires_grad_(True)
            out = m(xr)[0]
            out.backward(tdy)
            return out.detach().numpy(), m.weight_ih_l0.grad.numpy()

        runners["torch"] = (torch_fwd, torch_fb)
    return runners


def _cases():
    for kind, shapes in (("lstm", LSTM_SHAPES), ("rnn", RNN_SHAPES)):
        for shape in shapes:
            for dt in DTYPES:
                for pas in ("fwd", "fwd+bwd"):
                    for impl in ("fastseq", "torch", "reference"):
                        case_id = f"{kind}-{'x'.join(map(str, shape))}-{dt}-{pas}-{impl}"
                        yield pytest.param(kind, shape, dt, pas, impl, id=case_id)


_checked = {}


def _check_agreement(kind, shape, dt, runners, pas):
    """fastseq vs reference (and torch) before timing; cached per group. Returns
    ({impl: max relative difference to the reference}, tolerance), as
    fastseq._cli.bench.check_agreement measures it."""
    key = (kind, shape, dt, pas)
    if key in _checked:
        return _checked[key]
    k = 0 if pas == "fwd" else 1
    got = runners["fastseq"][k]()
    T, B, D, H = shape
    # the reference on the biggest shapes is slow but affordable once
    want = runners["reference"][k]()
    outs = {"fastseq": got}
    for a, b in zip(got, want):
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=TOL[dt], atol=TOL[dt] * max(1, np.abs(b).max()))
    if "torch" in runners:
        outs["torch"] = runners["torch"][k]()
        for a, b in zip(got, outs["torch"]):
            if a is not None:
                np.testing.assert_allclose(a, b, rtol=TOL[dt],
                                           atol=TOL[dt] * max(1, np.abs(b).max()))
    want = [b for b in want if b is not None]
    # recorded: each implementation's difference to the reference (y, and dW_ih for fwd+bwd)
    tol = _agree_tol(dt, want)
    _checked[key] = ({impl: check_agreement([a for a in out if a is not None], want, tol,
                                            what=f"{impl} {kind} {pas}")
                      for impl, out in outs.items()}, tol)
    return _checked[key]


def _flops(kind, shape, pas, n_steps_total=None):
    T, B, D, H = shape
    G = 4 * H if kind == "lstm" else H
    rows = T * B if n_steps_total is None else n_steps_total
    fwd = 2 * rows * G * (D + H)
    return fwd if pas == "fwd" else 3 * fwd


@pytest.mark.parametrize("kind,shape,dt,pas,impl", list(_cases()))
def test_recurrent(benchmark, kind, shape, dt, pas, impl):
    dtype = DTYPES[dt]
    runners = _runners(kind, *shape, dtype)
    if impl not in runners:
        pytest.skip(f"{impl} not available")
    agreement, tol = _check_agreement(kind, shape, dt, runners, pas)
    fn = runners[impl][0 if pas == "fwd" else 1]
    benchmark.group = f"{kind} T,B,D,H={','.join(map(str, shape))} {dt} {pas}"
    T, B, D, H = shape
    extra = {} if impl == "reference" else dict(agreement=agreement[impl], tolerance=tol)
    record(benchmark, impl=impl, case=f"{kind}_{'forward' if pas == 'fwd' else 'forward_backward'}",
           dtype=dt, flops=_flops(kind, shape, pas), T=T, B=B, D=D, H=H, **extra)
    # legacy keys read by recurrent_table.py
    benchmark.extra_info.update(kind=kind, shape=list(shape), pas=pas,
                                gemm_peak=gemm_peak(dtype))
    if impl == "reference":   # slow by design: a few rounds are enough for its median
        benchmark.pedantic(fn, rounds=_rounds(fn, 0.5, lo=2, hi=10), iterations=1)
    else:
        benchmark.pedantic(fn, rounds=_rounds(fn, 1.0, lo=5), iterations=1,
                           warmup_rounds=_warmup(fn))


@pytest.mark.parametrize("dt", list(DTYPES))
@pytest.mark.parametrize("pas", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("batch", ["ragged", "padded"])
@pytest.mark.parametrize("impl", ["fastseq", "reference"])
def test_lstm_ragged_vs_padded(benchmark, dt, pas, batch, impl):
    """Lengths spread over [T/4, T]: the ragged call should cost ~ sum(lengths) / (B T) of the
    padded one (here ~0.63), since finished sequences drop out of every product. Ragged and
    padded are two groups (one fastseq benchmark per group), each with the NumPy reference."""
    T, B, D, H = RAGGED_SHAPE
    dtype = DTYPES[dt]
    lengths = np.linspace(T // 4, T, B).astype(int)
    runners = _runners("lstm", T, B, D, H, dtype, lengths=lengths if batch == "ragged" else None)
    k = 0 if pas == "fwd" else 1
    got, want = runners["fastseq"][k](), runners["reference"][k]()
    for a, b in zip(got, want):  # agreement with the reference before timing
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=TOL[dt],
                                       atol=TOL[dt] * max(1, np.abs(b).max()))
    fn = runners[impl][k]
    benchmark.group = f"lstm ragged-vs-padded T,B,D,H={T},{B},{D},{H} {dt} {pas} {batch}"
    extra = {}
    if impl != "reference":
        want = [b for b in want if b is not None]
        tol = _agree_tol(dt, want)
        extra = dict(agreement=check_agreement([a for a in got if a is not None], want, tol),
                     tolerance=tol)
    case = f"lstm_{'forward' if pas == 'fwd' else 'forward_backward'}_{batch}"
    record(benchmark, impl=impl, case=case, dtype=dt, T=T, B=B, D=D, H=H,
           flops=_flops("lstm", (T, B, D, H), pas,
                        int(lengths.sum()) if batch == "ragged" else None), **extra)
    # legacy keys read by recurrent_table.py
    benchmark.extra_info.update(kind="lstm", shape=[T, B, D, H], pas=pas, batch=batch,
                                gemm_peak=gemm_peak(dtype),
                                length_fraction=float(lengths.sum() / (B * T)))
    if impl == "reference":
        benchmark.pedantic(fn, rounds=_rounds(fn, 0.5, lo=2, hi=10), iterations=1)
    else:
        benchmark.pedantic(fn, rounds=_rounds(fn), iterations=1, warmup_rounds=_warmup(fn))
