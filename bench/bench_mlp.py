"""MLPClassifier epoch time: fastseq vs scikit-learn's MLPClassifier (same architecture, batch
size, solver, initial weights and shuffles) vs the plain NumPy reference (``reference.nn``).

One benchmark round = ``fit`` with ``max_iter=EPOCHS[case]`` (tol=0: every epoch runs), so the
per-call validation cost is amortised as in real training; per-epoch time = round / epochs.
Before timing, each competitor's one-epoch loss from identical weights is checked against
fastseq's. BLAS threads: ``FASTSEQ_BENCH_THREADS`` (default 1; on a loaded 2-core machine
OpenBLAS with 2 threads becomes erratic).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m pytest bench/bench_mlp.py \
        --benchmark-only --benchmark-columns=median,min,rounds -s
"""
import os
import warnings

import numpy as np
import pytest
import threadpoolctl
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkMLPClassifier

from fastseq import MLPClassifier
from fastseq._cli.bench import check_agreement, pick, record
from fastseq.reference import nn as ref

THREADS = int(os.environ.get("FASTSEQ_BENCH_THREADS", "1"))
# name: (n_samples, n_features, hidden_layer_sizes, n_classes)
CASES = {"large": (20000, 100, (256, 128), 10), "small": (2000, 20, (32,), 3)}
EPOCHS = {"large": 2, "small": 20}
CASE_NAMES = pick(full=list(CASES), quick=["small"])
TOL = {"float64": 1e-9, "float32": 1e-4}


def _data(case, dtype):
    n, d, hidden, k = CASES[case]
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(k, d))
    y = rng.integers(0, k, n)
    X = (centers[y] + 2 * rng.normal(size=(n, d))).astype(dtype)
    return X, y, hidden, k


def _est(Est, hidden, **kw):
    return Est(hidden_layer_sizes=hidden, solver="adam", batch_size=200, random_state=0,
               tol=0.0, n_iter_no_change=10**6, **kw)


@pytest.fixture(autouse=True)
def _limits():
    with threadpoolctl.threadpool_limits(THREADS), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASE_NAMES)
@pytest.mark.parametrize("impl", ["fastseq", "sklearn", "reference"])
def test_mlp_epoch(benchmark, impl, case, dtype):
    X, y, hidden, k = _data(case, dtype)
    classes = np.arange(k)
    # agreement: one epoch (adam, no shuffle) from identical Glorot weights (same random_state)
    ours = _est(MLPClassifier, hidden, shuffle=False).partial_fit(X, y, classes=classes)
    if impl == "sklearn":
        other = _est(SkMLPClassifier, hidden, shuffle=False).partial_fit(X, y, classes=classes)
        other_loss = other.loss_
    elif impl == "reference":
        init = _est(MLPClassifier, hidden, max_iter=1)
        init._random_state = np.random.RandomState(0)
        sizes, layout = init._layout(X.shape[1], k)
        coefs, intercepts = layout.views(init._init_params(layout, X.dtype))
        Y = np.eye(k, dtype=X.dtype)[y]
        other_loss = ref.train_epoch(list(coefs), list(intercepts), X, Y, "relu", "log_loss",
                                     200, 1e-3, alpha=1e-4)
    else:
        other_loss = ours.loss_
    # fastseq is the one checked: against scikit-learn / the NumPy reference
    agreement = check_agreement(ours.loss_, other_loss, TOL[dtype], what="epoch loss")

    epochs = EPOCHS[case]
    benchmark.group = (f"mlp {case} {CASES[case][:2]} hidden={hidden} {dtype} adam b200: "
                       f"{epochs} epochs")
    n, d = CASES[case][:2]
    flops_per_row = sum(a * b for a, b in zip((d, *hidden), (*hidden, k)))
    # forward GEMMs + dW GEMMs + dX GEMMs (all but the first layer): ~ 6 flops per weight per row
    flops = epochs * n * (6 * flops_per_row - 2 * d * hidden[0])
    record(benchmark, impl=impl, case="MLPClassifier.fit", dtype=dtype, n=n, p=d, flops=flops,
           **({} if impl == "reference" else dict(agreement=agreement, tolerance=TOL[dtype])))
    if impl == "reference":
        def train():
            for _ in range(epochs):
                ref.train_epoch(list(coefs), list(intercepts), X, Y, "relu", "log_loss", 200,
                                1e-3, alpha=1e-4)
    else:
        est = _est(MLPClassifier if impl == "fastseq" else SkMLPClassifier, hidden,
                   max_iter=epochs)

        def train():
            est.fit(X, y)
    rounds = 3 if case == "large" else 7
    benchmark.pedantic(train, rounds=rounds, iterations=1, warmup_rounds=1)

