"""Least-squares kernels (fastseq.linear_model._lstsq_fast, csrc/linear_model/lstsq.c) against
NumPy and scipy.linalg: block packing, weighted column sums, augmented Gram / R updates, the
refinement gradient and the small p x p solves. Estimator-level tests: tests/test_linear.py."""
import numpy as np
import pytest
import scipy.linalg as sl

from fastseq.linear_model import _lstsq_fast as _lstsq


# =============================================================================== kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("center,weighted", [(False, False), (True, False), (True, True)])
def test_pack_block_matches_numpy(rng, dtype, center, weighted):
    n, p, k = 37, 5, 2
    X = rng.standard_normal((n, p)).astype(dtype)
    Y = rng.standard_normal((n, k))
    xm = rng.standard_normal(p) if center else None
    ym = rng.standard_normal(k) if center else None
    sw = rng.uniform(0.1, 2.0, n) if weighted else None
    B = _lstsq.pack_block(X, Y, xm, ym, sw)
    ref = np.hstack([X.astype(np.float64) - (0 if xm is None else xm),
                     Y - (0 if ym is None else ym)])
    if sw is not None:
        ref = sw[:, None] * ref
    assert B.flags.f_contiguous and B.dtype == np.float64
    np.testing.assert_allclose(B, ref, rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block", [1, 7, 1000])
def test_weighted_column_sums(rng, dtype, block):
    X = rng.standard_normal((53, 4)).astype(dtype)
    w = rng.uniform(0, 2, 53)
    np.testing.assert_allclose(_lstsq.weighted_column_sums(X, w, block),
                               w @ X.astype(np.float64), rtol=1e-13)
    np.testing.assert_allclose(_lstsq.weighted_column_sums(X, None, block),
                               X.astype(np.float64).sum(0), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block", [1, 16, 1000])
def test_augmented_gram_matches_numpy(rng, dtype, block):
    n, p, k = 61, 6, 2
    X = rng.standard_normal((n, p)).astype(dtype)
    Y = rng.standard_normal((n, k))
    xm, ym, sw = X.mean(0).astype(np.float64), Y.mean(0), rng.uniform(0.5, 1.5, n)
    G = np.zeros((p + k, p + k), order="F")
    _lstsq.augmented_gram(X, Y, xm, ym, sw, G, block)
    B = sw[:, None] * np.hstack([X.astype(np.float64) - xm, Y - ym])
    np.testing.assert_allclose(np.triu(G), np.triu(B.T @ B), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("block", [1, 5, 1000])
def test_augmented_r_update_is_qr(rng, block):
    n, p, k = 40, 5, 2
    X = rng.standard_normal((n, p))
    Y = rng.standard_normal((n, k))
    R = np.zeros((p + k, p + k), order="F")
    _lstsq.augmented_r_update(X[:17], Y[:17], None, None, None, R, block)
    _lstsq.augmented_r_update(X[17:], Y[17:], None, None, None, R, block)
    ref = sl.qr(np.hstack([X, Y]), mode="r")[0][: p + k]
    # R is unique up to the signs of its rows
    np.testing.assert_allclose(np.abs(np.triu(R)), np.abs(ref), rtol=1e-12, atol=1e-12)
    extra = rng.standard_normal((3, p + k))
    _lstsq.r_update_rows(R, np.asfortranarray(extra.copy()))
    ref2 = sl.qr(np.vstack([np.hstack([X, Y]), extra]), mode="r")[0][: p + k]
    np.testing.assert_allclose(np.abs(np.triu(R)), np.abs(ref2), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_refine_gradient_matches_numpy(rng, dtype):
    n, p, k = 45, 4, 3
    X = rng.standard_normal((n, p)).astype(dtype)
    Y = rng.standard_normal((n, k))
    xm, ym, sw = rng.standard_normal(p), rng.standard_normal(k), rng.uniform(0.5, 2, n)
    beta = np.asfortranarray(rng.standard_normal((p, k)))
    g = _lstsq.refine_gradient(X, Y, xm, ym, sw, beta, 8)
    Xc = X.astype(np.float64) - xm
    ref = Xc.T @ (sw[:, None] ** 2 * (Y - ym - Xc @ beta))
    np.testing.assert_allclose(g, ref, rtol=1e-12, atol=1e-12)


def test_cholesky_factor_and_solve(rng):
    p, k = 6, 2
    A = rng.standard_normal((30, p)) * np.logspace(-3, 3, p)
    G = np.zeros((p + k, p + k), order="F")
    G[:p, :p] = A.T @ A
    rhs = np.asfortranarray(rng.standard_normal((p, k)))
    U, s, rcond, info = _lstsq.cholesky_factor(G, p, 0.7)
    assert info == 0 and 0 < rcond <= 1
    x = rhs.copy(order="F")
    _lstsq.cholesky_solve(U, s, x)
    np.testing.assert_allclose(x, sl.solve(A.T @ A + 0.7 * np.eye(p), rhs), rtol=1e-10)
    # exact 1-norm condition of the equilibrated matrix vs the pocon estimate (within p)
    S = np.diag(s)
    M = S @ (A.T @ A + 0.7 * np.eye(p)) @ S
    cond1 = np.linalg.cond(M, 1)
    assert cond1 / p <= 1 / rcond <= cond1 * 1.0001
    G[:p, :p] = 0.0
    G[0, 0] = 1.0
    assert _lstsq.cholesky_factor(G, p, 0.0)[3] > 0


def test_triangular_and_min_norm_solves(rng):
    p, k = 5, 2
    A = rng.standard_normal((20, p))
    Y = rng.standard_normal((20, k))
    R = np.asfortranarray(sl.qr(np.hstack([A, Y]), mode="r")[0][: p + k])
    beta, rcond, d, info = _lstsq.triangular_solve(R, p)
    assert info == 0 and rcond > 1e-3
    for bad_p in (0, p + k + 1):  # p beyond R: out-of-bounds reads with boundscheck off
        with pytest.raises(ValueError, match="augmented R"):
            _lstsq.triangular_solve(R, bad_p)
        with pytest.raises(ValueError, match="augmented R"):
            _lstsq.min_norm_solve(R, bad_p, 1e-12)
    np.testing.assert_allclose(beta, sl.lstsq(A, Y)[0], rtol=1e-12)
    np.testing.assert_allclose(d, np.linalg.norm(A, axis=0), rtol=1e-12)
    # rank 3 of 5: minimum-norm answer == pinv
    A[:, 3] = A[:, 0] - 2 * A[:, 1]
    A[:, 4] = 3 * A[:, 2]
    R = np.asfortranarray(sl.qr(np.hstack([A, Y]), mode="r")[0][: p + k])
    beta, rank = _lstsq.min_norm_solve(R, p, 1e-12)
    assert rank == 3
    np.testing.assert_allclose(beta, np.linalg.pinv(A, rcond=1e-10) @ Y, rtol=1e-10, atol=1e-12)
