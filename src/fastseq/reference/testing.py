"""Helpers shared by fastseq's tests and benchmarks (like ``numpy.testing``; never imported by the
runtime): central finite differences, PyTorch recurrent modules holding given weights, and a
checker that runs calls on concurrent Python threads, and the small noisy linear problems the SGD
kernel and estimator tests share.
"""
import threading

import numpy as np

__all__ = ["assert_close_to_scale", "assert_concurrent_matches_serial", "central_differences",
           "make_linear_problem", "run_concurrently", "torch_recurrent_module"]


def make_linear_problem(rng, n=60, p=7, k=1, dtype=np.float64, density=None, noise=0.1):
    """``X`` (n, p) standard normal (entries zeroed with probability ``1 - density`` if given)
    and ``Y = X W^T + 0.5 + noise * N(0, 1)`` (n, k) for a standard normal ``W`` (k, p), both
    cast to ``dtype``; draws from the NumPy Generator ``rng``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastseq.reference.testing import make_linear_problem
    >>> X, Y = make_linear_problem(np.random.default_rng(0), n=5, p=3, k=2, dtype=np.float32)
    >>> X.shape, Y.shape, Y.dtype
    ((5, 3), (5, 2), dtype('float32'))
    """
    X = rng.standard_normal((n, p))
    if density is not None:
        X[rng.random((n, p)) > density] = 0.0
    W = rng.standard_normal((k, p))
    Y = X @ W.T + 0.5 + noise * rng.standard_normal((n, k))
    return X.astype(dtype), Y.astype(dtype)


def assert_close_to_scale(actual, desired, dtype, rtol, name):
    """``actual`` has ``dtype`` and equals ``desired`` to ``rtol``, with an absolute tolerance of
    ``rtol`` times the larger of 1 and ``desired``'s largest magnitude (entries near zero in an
    array of large values are held to the array's scale, not to their own).

    Examples
    --------
    >>> import numpy as np
    >>> from fastseq.reference.testing import assert_close_to_scale
    >>> assert_close_to_scale(np.array([100.0, 1e-11]), [100.0, 0.0], np.float64, 1e-12, "y")
    """
    desired = np.asarray(desired)
    scale = max(1.0, float(np.abs(desired).max(initial=0.0)))
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=rtol * scale, err_msg=name)
    assert np.asarray(actual).dtype == dtype, name


def central_differences(f, param, eps=1e-6):
    """Central finite differences ``(f(p + eps e_i) - f(p - eps e_i)) / (2 eps)`` of the scalar
    function ``f()`` with respect to every entry of the array ``param``.

    ``f`` takes no arguments: it reads ``param``, which is perturbed in place one entry at a time
    and restored afterwards. Returns an array shaped like ``param`` (float64 for accuracy).

    Examples
    --------
    >>> import numpy as np
    >>> from fastseq.reference.testing import central_differences
    >>> p = np.array([1.0, 2.0])
    >>> np.round(central_differences(lambda: p[0] ** 2 + 3 * p[1], p), 6)
    array([2., 3.])
    >>> p
    array([1., 2.])
    """
    grad = np.empty(param.shape, dtype=np.float64)
    for idx in np.ndindex(param.shape):
        old = param[idx]
        param[idx] = old + eps
        up = f()
        param[idx] = old - eps
        down = f()
        param[idx] = old
        grad[idx] = (up - down) / (2 * eps)
    return grad


def torch_recurrent_module(kind, w_ih, w_hh, bias, nonlinearity="tanh"):
    """A one-layer batch-first ``torch.nn.LSTM`` (``kind="lstm"``) or ``torch.nn.RNN``
    (``kind="rnn"``) holding fastseq's weights: ``weight_ih_l0 = w_ih``, ``weight_hh_l0 = w_hh``,
    ``bias_ih_l0 = bias`` and ``bias_hh_l0 = 0`` (fastseq has a single bias per gate). The module's
    dtype (float32/float64) and sizes follow the arrays. Needs PyTorch (imported here, so this
    module itself does not)."""
    import torch

    input_size, hidden_size = w_ih.shape[1], w_hh.shape[1]
    if kind == "lstm":
        module = torch.nn.LSTM(input_size, hidden_size, batch_first=True)
    elif kind == "rnn":
        module = torch.nn.RNN(input_size, hidden_size, batch_first=True,
                              nonlinearity=nonlinearity)
    else:
        raise ValueError(f"kind must be 'lstm' or 'rnn', got {kind!r}")
    module = module.double() if w_ih.dtype == np.float64 else module.float()
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.from_numpy(np.ascontiguousarray(w_ih)))
        module.weight_hh_l0.copy_(torch.from_numpy(np.ascontiguousarray(w_hh)))
        module.bias_ih_l0.copy_(torch.from_numpy(np.ascontiguousarray(bias)))
        module.bias_hh_l0.zero_()
    return module


def run_concurrently(runs, repeats=1):
    """Call each callable of ``runs`` ``repeats`` times on its own Python thread, all threads
    started together; return the last result of each. An exception in any thread is re-raised
    here (after every thread has finished), so a failing worker fails the test.

    Examples
    --------
    >>> from fastseq.reference.testing import run_concurrently
    >>> run_concurrently([lambda: 1, lambda: 2], repeats=3)
    [1, 2]
    """
    results = [None] * len(runs)
    errors = []

    def worker(i):
        try:
            for _ in range(repeats):
                results[i] = runs[i]()
        except BaseException as exc:  # re-raised in the calling thread below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(runs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def assert_concurrent_matches_serial(runs, repeats=1):
    """Run each callable of ``runs`` serially, then all of them at once on concurrent threads
    (:func:`run_concurrently`, ``repeats`` times each): no error, and every concurrent result
    (a sequence of arrays) bit-identical to its serial one."""
    serial = [run() for run in runs]
    for got, want in zip(run_concurrently(runs, repeats), serial):
        assert len(got) == len(want)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
