"""LSTMClassifier / RNNClassifier epoch time vs an equivalent hand-written PyTorch training loop
(same model: one recurrent layer + linear output on the last hidden state, binary cross-entropy
on logits, Adam, same batch size, shuffled batches; 2 threads on both sides).

Before timing, one unshuffled epoch from identical initial weights must give the same epoch loss
(scikit-learn's Adam, which fastseq follows, adds epsilon before the bias correction, torch after
it; with epsilon = 1e-12 on both sides the two coincide up to rounding).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m pytest \
        bench/bench_recurrent_estimators.py --benchmark-only --benchmark-columns=median,min,rounds
"""
import os
import warnings

import numpy as np
import pytest
import threadpoolctl
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from fastseq import LSTMClassifier, RNNClassifier
from fastseq._cli.bench import check_agreement, pick, record
from fastseq.datasets import make_agreement
from fastseq.reference.testing import torch_recurrent_module

# default: the thread count `fastseq bench --threads N` set (OMP_NUM_THREADS), else 2
THREADS = int(os.environ.get("FASTSEQ_BENCH_THREADS", os.environ.get("OMP_NUM_THREADS", "2")))
# (n_sequences, depth, n_fillers -> T = 2 + 4 depth + fillers, hidden)
SIZES = pick(full=[(1000, 2, 20, 64)], quick=[(500, 2, 10, 32)])
EPOCHS = 2
BATCH = 32
TOL = {"float32": 1e-5, "float64": 1e-9}
EPS = 1e-12


@pytest.fixture(autouse=True)
def _limits():
    with threadpoolctl.threadpool_limits(THREADS), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _estimator(cell, H, dtype, **kw):
    Est = LSTMClassifier if cell == "lstm" else RNNClassifier
    return Est(hidden_size=H, batch_size=BATCH, learning_rate_init=1e-3, epsilon=EPS,
               max_grad_norm=None,
               alpha=0.0, tol=0.0, n_iter_no_change=10**6, random_state=0, **kw)


def _torch_model(torch, cell, D, H, params, dtype):
    """torch modules holding fastseq's initial weights: bias_ih = fastseq's bias, bias_hh = 0 and
    frozen (two trainable biases would each take an Adam step: twice fastseq's single bias)."""
    (w_ih, w_hh, bias), W, b = params
    rnn = torch_recurrent_module(cell, w_ih, w_hh, bias)
    head = torch.nn.Linear(H, 1)
    head.to(getattr(torch, dtype))
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
        head.bias.copy_(torch.from_numpy(b))
    rnn.bias_hh_l0.requires_grad_(False)
    return rnn, head


def _torch_epochs(torch, rnn, head, X, y, epochs, shuffle, generator=None):
    params = [p for p in list(rnn.parameters()) + list(head.parameters()) if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3, eps=EPS)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    n = X.shape[0]
    total = 0.0
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        total = 0.0
        for s in range(0, n, BATCH):
            idx = order[s:s + BATCH]
            out = rnn(X[idx])[1]
            h_n = out[0] if isinstance(out, tuple) else out
            loss = loss_fn(head(h_n[-1]).squeeze(1), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * idx.numel()
    return total / n


@pytest.mark.parametrize("dtype", ["float32"])
@pytest.mark.parametrize("n,depth,fillers,H", SIZES)
@pytest.mark.parametrize("cell", ["lstm", "rnn"])
@pytest.mark.parametrize("impl", ["fastseq", "torch"])
def test_recurrent_epoch(benchmark, impl, cell, n, depth, fillers, H, dtype):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(THREADS)
    X, y = make_agreement(n, depth=depth, n_fillers=fillers, dtype=np.dtype(dtype),
                          random_state=0)
    T, D = X.shape[1:]
    # agreement: one unshuffled epoch from identical initial weights
    ours = _estimator(cell, H, dtype, shuffle=False, max_iter=1).fit(X, y)
    init = _estimator(cell, H, dtype)
    init._per_step = False
    layout = init._layout(D, 1)
    buf = init._init_params(layout, np.dtype(dtype), check_random_state(0))
    cells, W, b = init._unpack(buf, layout)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(dtype))
    rnn, head = _torch_model(torch, cell, D, H, (cells[0][0], W, b), dtype)
    torch_loss = _torch_epochs(torch, rnn, head, Xt, yt, 1, shuffle=False)
    agreement = check_agreement(ours.loss_curve_[0], torch_loss, TOL[dtype], what="epoch loss")

    benchmark.group = f"{cell} classifier epoch n={n} T={T} D={D} H={H} B={BATCH} {dtype} adam"
    record(benchmark, impl=impl, case=f"{cell.upper()}Classifier.fit", dtype=dtype, T=T, B=BATCH,
           H=H, D=D, n=n, agreement=agreement, tolerance=TOL[dtype])
    if impl == "fastseq":
        est = _estimator(cell, H, dtype, max_iter=EPOCHS)

        def train():
            est.fit(X, y)
    else:
        gen = torch.Generator().manual_seed(0)

        def train():
            _torch_epochs(torch, rnn, head, Xt, yt, EPOCHS, shuffle=True, generator=gen)
    # one warm-up fit: the timed ones then start after the other library's worker threads (busy
    # for up to ~0.1 s after their last call) have gone to sleep
    benchmark.pedantic(train, rounds=3, iterations=1, warmup_rounds=1)
