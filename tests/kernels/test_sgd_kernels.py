"""The compiled SGD epoch (fastseq.linear_model._sgd_fast, csrc/linear_model/sgd.c) against the
NumPy epoch in fastseq.reference.sgd (to rounding), worked by hand on edge shapes, on two threads
at once, and with inconsistent arguments. Estimator-level tests: tests/test_sgd.py."""
import numpy as np
import pytest
import scipy.sparse as sp

from fastseq.linear_model import _sgd_fast as _sgd
from fastseq.reference.sgd import optimal_init, sgd_epoch_reference
from fastseq.reference.testing import assert_concurrent_matches_serial, make_linear_problem

SCHEDULES = ["constant", "optimal", "invscaling"]
KERNEL_SCHEDULE = {"constant": _sgd.SCHEDULE_CONSTANT, "optimal": _sgd.SCHEDULE_OPTIMAL,
                   "invscaling": _sgd.SCHEDULE_INVSCALING}
# Tolerance of one epoch against the reference, relative to the size of the coefficients
# (tests/test_sgd.py holds the estimator against the same reference with the same numbers).
RTOL = {np.float64: 1e-11, np.float32: 2e-5}


def run_kernel_epoch(X, Y, sw, perm, coef, intercept, *, batch_size, learning_rate, eta0=0.05,
                     power_t=0.3, alpha=0.01, penalty="l2", fit_intercept=True, t=1.0,
                     average=0, avg_coef=None, avg_intercept=None, n_seen=0, n_avg=0):
    """Call the compiled epoch with the reference's signature; returns the same dict."""
    dtype = X.dtype
    W = np.array(coef, dtype=dtype)
    b = np.array(intercept, dtype=dtype)
    k, p = W.shape
    aW = np.zeros((1, 1), dtype) if avg_coef is None else np.array(avg_coef, dtype=dtype)
    ab = np.zeros(1, dtype) if avg_intercept is None else np.array(avg_intercept, dtype=dtype)
    schedule = _sgd._make_schedule(KERNEL_SCHEDULE[learning_rate], eta0, power_t, alpha,
                                   optimal_init(alpha) if alpha > 0 else 0.0, penalty == "l2",
                                   fit_intercept, average)
    args = (W, b, aW, ab, batch_size, schedule, t, n_seen, n_avg)
    perm = np.ascontiguousarray(perm, dtype=np.intp)
    if sp.issparse(X):
        status, t, n_seen, n_avg, loss, _ = _sgd.epoch_csr(
            X.data, X.indices.astype(np.int32), X.indptr.astype(np.intp), X.shape[1], Y, sw,
            perm, *args)
    else:
        status, t, n_seen, n_avg, loss, _ = _sgd.epoch_dense(X, Y, sw, perm, *args)
    assert status == 0
    return dict(coef=W, intercept=b, t=t, n_seen=n_seen, n_avg=n_avg, avg_coef=aW,
                avg_intercept=ab, loss=loss)


def assert_state_close(got, want, dtype):
    rtol = RTOL[dtype]
    assert got["t"] == want["t"] and got["n_seen"] == want["n_seen"]
    assert got["n_avg"] == want["n_avg"]
    assert got["coef"].dtype == dtype
    for key in ("coef", "intercept", "avg_coef", "avg_intercept"):
        if want[key] is None:
            continue
        ref = np.asarray(want[key], dtype=np.float64)
        np.testing.assert_allclose(got[key], ref, rtol=rtol,
                                   atol=rtol * max(1.0, np.abs(ref).max()), err_msg=key)
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=10 * rtol)


# ---- kernel: one epoch against the NumPy reference -----------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("learning_rate", SCHEDULES)
@pytest.mark.parametrize("k,batch_size", [(1, 1), (1, 8), (3, 8), (2, 1000)])
def test_epoch_matches_reference(rng, dtype, sparse, learning_rate, k, batch_size):
    X, Y = make_linear_problem(rng, k=k, dtype=dtype, density=0.4 if sparse else None)
    Xin = sp.csr_matrix(X) if sparse else X
    n, p = X.shape
    sw = rng.uniform(0.2, 2.0, n).astype(dtype)
    perm = rng.permutation(n)
    coef = (0.1 * rng.standard_normal((k, p))).astype(dtype)
    intercept = rng.standard_normal(k).astype(dtype)
    kwargs = dict(batch_size=batch_size, learning_rate=learning_rate, eta0=0.02, power_t=0.3,
                  alpha=0.05, t=3.0)
    want = sgd_epoch_reference(Xin, Y, sw, perm, coef, intercept, **kwargs)
    got = run_kernel_epoch(Xin, Y, sw, perm, coef, intercept, **kwargs)
    assert_state_close(got, want, dtype)
    assert not np.array_equal(got["coef"], coef)  # the epoch did move the weights


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("average", [1, 25])
def test_epoch_averaging_matches_reference(rng, dtype, sparse, average):
    X, Y = make_linear_problem(rng, k=2, dtype=dtype, density=0.5 if sparse else None)
    Xin = sp.csr_matrix(X) if sparse else X
    n, p = X.shape
    sw = np.ones(n, dtype)
    perm = rng.permutation(n)
    kwargs = dict(batch_size=4, learning_rate="invscaling", eta0=0.05, power_t=0.25, alpha=1e-3,
                  average=average, avg_coef=np.zeros((2, p), dtype),
                  avg_intercept=np.zeros(2, dtype))
    coef, intercept = np.zeros((2, p), dtype), np.zeros(2, dtype)
    want = sgd_epoch_reference(Xin, Y, sw, perm, coef, intercept, **kwargs)
    got = run_kernel_epoch(Xin, Y, sw, perm, coef, intercept, **kwargs)
    assert want["n_avg"] == ((n - average) // 4 + 1 if average > 1 else n // 4)
    assert_state_close(got, want, dtype)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_epoch_edge_shapes(rng, sparse):
    # n = 1, p = 1, no intercept, no penalty; and a CSR matrix with empty rows / no entries.
    X = np.array([[2.0]])
    Y = np.array([[3.0]])
    Xin = sp.csr_matrix(X) if sparse else X
    kwargs = dict(batch_size=5, learning_rate="constant", eta0=0.1, power_t=0.25, alpha=0.0,
                  penalty=None, fit_intercept=False)
    got = run_kernel_epoch(Xin, Y, np.ones(1), [0], np.zeros((1, 1)), np.zeros(1), **kwargs)
    # by hand: r = 0 - 3, W <- 0 - 0.1 * (-3) * 2 = 0.6;  loss = 0.5 * 9
    np.testing.assert_allclose(got["coef"], [[0.6]])
    np.testing.assert_allclose(got["loss"], 4.5)
    assert got["intercept"][0] == 0.0
    if sparse:
        for Xs in (sp.csr_matrix((5, 4)), sp.csr_matrix(np.diag([1.0, 0.0, 2.0, 0.0])[:, :3])):
            n, p = Xs.shape
            Y = rng.standard_normal((n, 1))
            args = (Xs, Y, np.ones(n), rng.permutation(n), np.ones((1, p)), np.zeros(1))
            kw = dict(batch_size=2, learning_rate="constant", eta0=0.1, power_t=0.25, alpha=0.01)
            want = sgd_epoch_reference(*args, **kw)
            assert_state_close(run_kernel_epoch(*args, **kw), want, np.float64)


def test_epoch_reports_nonfinite(rng):
    X, Y = make_linear_problem(rng)
    X = 1e3 * X
    W, b = np.zeros((1, X.shape[1])), np.zeros(1)
    schedule = _sgd._make_schedule(_sgd.SCHEDULE_CONSTANT, 1e3, 0.25, 0.0, 0.0, False, True, 0)
    status = _sgd.epoch_dense(X, Y, np.ones(len(X)), np.arange(len(X), dtype=np.intp), W, b,
                              np.zeros((1, 1)), np.zeros(1), 1, schedule, 1.0, 0, 0)[0]
    assert status == 1  # FASTSEQ_ERR_NONFINITE


def test_kernel_is_thread_safe(rng):
    # Two epochs on different data in two threads (GIL released) == the same epochs serially.
    problems = [make_linear_problem(np.random.default_rng(s), n=3000, p=40, k=2) for s in (1, 2)]

    def epoch_coef(X, Y):
        return (run_kernel_epoch(X, Y, np.ones(len(X)), np.arange(len(X))[::-1],
                                 np.zeros((2, 40)), np.zeros(2), batch_size=16,
                                 learning_rate="invscaling")["coef"],)

    assert_concurrent_matches_serial([lambda X=X, Y=Y: epoch_coef(X, Y) for X, Y in problems])


def test_kernel_rejects_inconsistent_arguments(rng):
    X, Y = make_linear_problem(rng, n=10, p=3)
    sw, W, b = np.ones(10), np.zeros((1, 3)), np.zeros(1)
    schedule = _sgd._make_schedule(_sgd.SCHEDULE_CONSTANT, 0.01, 0.25, 0.0, 0.0, False, True, 1)
    good = dict(perm=np.arange(10, dtype=np.intp), W=W, aW=np.zeros((1, 3)))
    bad_cases = [dict(perm=np.array([0, 10], dtype=np.intp)),  # row index out of range
                 dict(W=np.zeros((2, 3))),                      # coef shape
                 dict(aW=np.zeros((1, 1)))]                     # averaging workspace shape
    for bad in bad_cases:
        a = {**good, **bad}
        with pytest.raises(ValueError):
            _sgd.epoch_dense(X, Y, sw, a["perm"], a["W"], b, a["aW"], np.zeros(1), 4, schedule,
                             1.0, 0, 0)
    Xs = sp.csr_matrix(X)
    with pytest.raises(ValueError, match="CSR"):
        _sgd.epoch_csr(Xs.data[:-1], Xs.indices[:-1], Xs.indptr.astype(np.intp), 3, Y, sw,
                       good["perm"], W, b, good["aW"], np.zeros(1), 4, schedule, 1.0, 0, 0)
