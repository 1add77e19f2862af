"""fastseq.ops.cgls against the NumPy reference CGLS, scipy's lsqr and LAPACK lstsq."""
import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg
from scipy.sparse.linalg import aslinearoperator, lsqr
from sklearn.exceptions import ConvergenceWarning

from fastseq.linear_model._cgls import _cgls_solve
from fastseq.ops import CGLSResult, cgls
from fastseq.reference.linear import cgls_reference

TIGHT = dict(atol=1e-12, btol=1e-12)
TIGHT_IT = dict(TIGHT, max_iter=2000)


def _problem(rng, n=300, p=20, cond=10.0, k=None, dtype=np.float64):
    """A with singular values spread log-uniformly over [1, cond], and b with a residual."""
    U, _ = np.linalg.qr(rng.standard_normal((n, p)))
    V, _ = np.linalg.qr(rng.standard_normal((p, p)))
    A = (U * np.logspace(0, np.log10(cond), p)) @ V.T
    b = rng.standard_normal(n if k is None else (n, k))
    return A.astype(dtype), b


def _lstsq(A, b):
    return scipy.linalg.lstsq(np.asarray(A, dtype=np.float64), b)[0]


def _normal_residual(A, b, x, damp=0.0):
    A = np.asarray(A, dtype=np.float64)
    return np.linalg.norm(A.T @ (b - A @ x) - damp**2 * x) / np.linalg.norm(A.T @ b)


# ---- against the NumPy reference ------------------------------------------------------------
@pytest.mark.parametrize("kw", [
    dict(),
    dict(precondition=False),
    dict(damp=0.7),
    dict(atol=1e-5, btol=1e-5),
    dict(conlim=np.inf),
])
def test_matches_reference(rng, kw):
    A, b = _problem(rng, cond=10.0)
    A = A * np.logspace(0, 1, A.shape[1])  # unequal columns: preconditioning matters
    kw = dict(max_iter=500, **kw)
    res = cgls(A, b, **kw)
    ref = cgls_reference(A, b, **kw)
    # same stopping decision (the compiled recurrences may cross a threshold one step apart)
    assert res.istop == ref["istop"]
    assert abs(res.n_iter - ref["n_iter"]) <= 1
    if res.n_iter == ref["n_iter"]:
        for key in ("r1norm", "r2norm", "anorm", "acond", "xnorm"):
            np.testing.assert_allclose(getattr(res, key), ref[key], rtol=1e-4)
    # driven to full accuracy, both land on the same solution
    tight = {**kw, **TIGHT_IT}
    np.testing.assert_allclose(cgls(A, b, **tight).x, cgls_reference(A, b, **tight)["x"],
                               rtol=1e-9, atol=1e-12)


def test_preconditioning_helps_badly_scaled_columns(rng):
    A, b = _problem(rng, cond=5.0)
    A = A * np.logspace(-3, 3, A.shape[1])
    pre = cgls(A, b, **TIGHT_IT)
    with pytest.warns(ConvergenceWarning):
        plain = cgls(A, b, max_iter=pre.n_iter, precondition=False, **TIGHT)
    assert pre.istop in (1, 2)
    np.testing.assert_allclose(pre.x, _lstsq(A, b), rtol=1e-7)
    assert _normal_residual(A, b, pre.x) < 1e-3 * _normal_residual(A, b, plain.x)


# ---- against scipy lsqr -----------------------------------------------------------------------
@pytest.mark.parametrize("cond", [10.0, 1e4])
@pytest.mark.parametrize("tol", [1e-6, 1e-10])
def test_same_istop_and_iterations_as_lsqr(rng, cond, tol):
    A, b = _problem(rng, n=400, p=40, cond=cond)
    res = cgls(A, b, atol=tol, btol=tol, precondition=False, max_iter=2000)
    x_l, istop, itn, r1, r2, anorm, acond, arnorm, xnorm = lsqr(A, b, atol=tol, btol=tol,
                                                                   iter_lim=2000)[:9]
    assert res.istop == istop
    assert abs(res.n_iter - itn) <= max(2, 0.1 * itn)
    np.testing.assert_allclose(res.r1norm, r1, rtol=1e3 * tol)
    np.testing.assert_allclose(res.anorm, anorm, rtol=0.05)
    np.testing.assert_allclose(res.acond, acond, rtol=0.05)
    np.testing.assert_allclose(res.xnorm, xnorm, rtol=1e3 * tol)
    x_star = _lstsq(A, b)
    # both solve to the requested accuracy (LSQR's S2 bound on the normal residual)
    err = np.linalg.norm(res.x - x_star) / np.linalg.norm(x_star)
    err_l = np.linalg.norm(x_l - x_star) / np.linalg.norm(x_star)
    assert err <= 10 * err_l + 1e-12


def test_conlim_stops_like_lsqr(rng):
    A, b = _problem(rng, n=200, p=30, cond=1e6)
    with pytest.warns(ConvergenceWarning, match="conlim"):
        res = cgls(A, b, conlim=1e3, precondition=False, **TIGHT_IT)
    istop, itn = lsqr(A, b, conlim=1e3, iter_lim=2000, **TIGHT)[1:3]
    assert res.istop == istop == 3
    assert abs(res.n_iter - itn) <= 1


def test_damped_matches_lsqr_and_augmented_system(rng):
    A, b = _problem(rng, n=200, p=25, cond=1e3)
    damp = 0.3
    res = cgls(A, b, damp=damp, **TIGHT_IT)
    aug = _lstsq(np.vstack([A, damp * np.eye(25)]), np.r_[b, np.zeros(25)])
    np.testing.assert_allclose(res.x, aug, rtol=1e-8)
    x_l = lsqr(A, b, damp=damp, iter_lim=2000, **TIGHT)[0]
    np.testing.assert_allclose(res.x, x_l, rtol=1e-7)
    np.testing.assert_allclose(res.r2norm**2, res.r1norm**2 + damp**2 * res.x @ res.x, rtol=1e-10)


@pytest.mark.parametrize("shape", [(50, 3), (7, 7), (1, 1), (40, 1), (5, 12)])
def test_small_problems_match_lstsq(rng, shape):
    A = rng.standard_normal(shape)
    b = rng.standard_normal(shape[0])
    res = cgls(A, b, **TIGHT, max_iter=10 * shape[1], precondition=False)
    # from x0 = 0 the Krylov iterates stay in range(A^T): the minimum-norm solution
    np.testing.assert_allclose(res.x, _lstsq(A, b), rtol=1e-7, atol=1e-9)
    pre = cgls(A, b, **TIGHT, max_iter=10 * shape[1])
    # column scaling D makes it the minimum-||D^-1 x|| least-squares solution instead
    np.testing.assert_allclose(A.T @ (A @ pre.x - b), 0.0, atol=1e-9)
    if shape[0] >= shape[1]:
        np.testing.assert_allclose(pre.x, res.x, rtol=1e-7, atol=1e-9)


def test_zero_column_and_zero_rhs(rng):
    A, b = _problem(rng, n=100, p=6)
    A[:, 2] = 0.0
    res = cgls(A, b, **TIGHT_IT)
    np.testing.assert_allclose(res.x, _lstsq(A, b), atol=1e-9)
    assert res.x[2] == 0.0
    zero = cgls(A, np.zeros(100))
    assert zero.istop == 0 and zero.n_iter == 0 and not zero.x.any()
    assert zero.message.startswith("x = x0")


# ---- one answer for every input kind -----------------------------------------------------------
@pytest.mark.parametrize("precondition", [True, False])
def test_dense_csr_csc_operator_agree(rng, precondition):
    A, b = _problem(rng, n=250, p=30, cond=100.0)
    A[np.abs(A) < 0.03] = 0.0
    kw = dict(precondition=precondition, **TIGHT_IT)
    dense = cgls(A, b, **kw)
    fused = _cgls_solve(A, b, dense_kernel="fused_c", **kw)[0]
    csr64 = sp.csr_matrix(A)
    csr64.indices = csr64.indices.astype(np.int64)
    csr64.indptr = csr64.indptr.astype(np.int64)
    others = [fused["x"][:, 0]] + [cgls(M, b, **kw).x for M in (
        sp.csr_matrix(A), csr64, sp.csc_matrix(A), sp.coo_matrix(A), sp.csr_array(A))]
    if not precondition:  # a LinearOperator has no column norms: always unpreconditioned
        others.append(cgls(aslinearoperator(A), b, **kw).x)
    for x in others:
        np.testing.assert_allclose(x, dense.x, rtol=1e-8, atol=1e-12)


def test_multi_rhs_equals_column_by_column(rng):
    A, B = _problem(rng, n=300, p=25, cond=1e3, k=4)
    B[:, 2] = 0.0                     # a column that stops at once (istop 0)
    B[:, 3] = A @ rng.standard_normal(25)  # a consistent column (istop 1)
    for M in (A, sp.csr_matrix(A)):
        block = cgls(M, B, **TIGHT_IT)
        assert block.x.shape == (25, 4) and block.istop.shape == (4,)
        assert block.normal_residual_history.shape[1] == 4
        for j in range(4):
            single = cgls(M, B[:, j], **TIGHT_IT)
            assert block.istop[j] == single.istop
            assert abs(block.n_iter[j] - single.n_iter) <= max(2, 0.1 * single.n_iter)
            np.testing.assert_allclose(block.x[:, j], single.x, rtol=1e-8, atol=1e-12)
    assert block.istop[2] == 0 and block.istop[3] == 1


def test_warm_start_converges_in_fewer_iterations(rng):
    A, b = _problem(rng, n=300, p=40, cond=1e3)
    cold = cgls(A, b, precondition=False, **TIGHT_IT)
    x0 = cold.x + 1e-6 * rng.standard_normal(40)
    warm = cgls(A, b, x0=x0, precondition=False, **TIGHT_IT)
    assert warm.n_iter < cold.n_iter
    x_star = _lstsq(A, b)
    np.testing.assert_allclose(warm.x, x_star, rtol=1e-6)
    np.testing.assert_allclose(cold.x, x_star, rtol=1e-6)
    B = np.c_[b, 2 * b]
    warm2 = cgls(A, B, x0=np.c_[x0, 2 * x0], precondition=False, **TIGHT_IT)
    np.testing.assert_allclose(warm2.x[:, 1], 2 * x_star, rtol=1e-6)


def test_convergence_warning_when_max_iter_too_small(rng):
    A, b = _problem(rng, cond=1e3)
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        res = cgls(A, b, max_iter=3)
    assert res.istop == 7 and res.n_iter == 3
    # the reported norms are the true ones (recomputed), not the recurrences'
    np.testing.assert_allclose(res.r1norm, np.linalg.norm(b - A @ res.x), rtol=1e-10)
    assert res.normal_residual_history.shape == (4,)


@pytest.mark.parametrize("kernel", ["blas", "fused_c"])
def test_float32_keeps_dtype_and_accuracy(rng, kernel):
    A, b = _problem(rng, n=400, p=30, cond=100.0)
    A32 = A.astype(np.float32)
    x64 = _lstsq(A32, b)  # exact answer for the float32 data
    for M in (A32, sp.csr_matrix(A32)):
        # float32 directions, float64-accumulated residual passes: full float64-level accuracy
        raw = _cgls_solve(M, b.astype(np.float32), dense_kernel=kernel, atol=1e-12,
                          btol=1e-12, max_iter=300)[0]
        assert raw["istop"][0] in (1, 2)
        assert np.linalg.norm(raw["x"][:, 0] - x64) < 1e-5 * np.linalg.norm(x64)
        raw, _, dtype = _cgls_solve(M, b.astype(np.float32), dense_kernel=kernel, atol=1e-6,
                                    btol=1e-6, max_iter=300)
        assert dtype is np.float32 and raw["istop"][0] in (1, 2)
        assert np.linalg.norm(raw["x"][:, 0] - x64) < 1e-3 * np.linalg.norm(x64)
    res = cgls(A32, b.astype(np.float32), max_iter=300)
    assert res.x.dtype == np.float32
    assert _normal_residual(A32, b, res.x.astype(np.float64)) < 1e-5


@pytest.mark.parametrize("sparse", [False, True])
def test_sample_weight_and_column_offset_equal_explicit(rng, sparse):
    A, b = _problem(rng, n=200, p=15, cond=50.0)
    A = A + 3.0  # big column means: centring matters
    w = rng.uniform(0.0, 2.0, 200)
    w[:5] = 0.0
    mu = np.average(A, axis=0, weights=w)
    explicit = np.sqrt(w)[:, None] * (A - mu)
    want = _lstsq(explicit, np.sqrt(w) * b)
    M = sp.csr_matrix(A) if sparse else A
    res = cgls(M, b, sample_weight=w, column_offset=mu, **TIGHT_IT)
    np.testing.assert_allclose(res.x, want, rtol=1e-8)
    np.testing.assert_allclose(res.r1norm, np.linalg.norm(np.sqrt(w) * b - explicit @ res.x),
                               rtol=1e-10)
    damped = cgls(M, b, sample_weight=w, column_offset=mu, damp=0.5, **TIGHT_IT)
    ref = cgls_reference(explicit, np.sqrt(w) * b, damp=0.5, **TIGHT_IT)
    np.testing.assert_allclose(damped.x, ref["x"], rtol=1e-8)
    op = cgls(aslinearoperator(A), b, sample_weight=w, column_offset=mu, **TIGHT_IT)
    np.testing.assert_allclose(op.x, want, rtol=1e-8)


def test_constant_column_with_offset_gets_zero(rng):
    A, b = _problem(rng, n=100, p=5)
    A[:, 1] = 4.0
    res = cgls(A, b, column_offset=A.mean(axis=0), **TIGHT_IT)
    assert res.x[1] == 0.0
    Ac = A - A.mean(axis=0)
    np.testing.assert_allclose(res.x, _lstsq(Ac, b), atol=1e-9)


def test_inputs_not_modified(rng):
    A, B = _problem(rng, n=120, p=10, k=2)
    w = rng.uniform(0.5, 1.0, 120)
    mu = rng.standard_normal(10)
    x0 = rng.standard_normal((10, 2))
    S = sp.csc_matrix(A)
    copies = [a.copy() for a in (A, B, w, mu, x0, S.data)]
    for a in (A, B, w, mu, x0, S.data):
        a.flags.writeable = False
    for M in (A, S):
        cgls(M, B, x0=x0, sample_weight=w, column_offset=mu, damp=0.1)
    for a, c in zip((A, B, w, mu, x0, S.data), copies):
        np.testing.assert_array_equal(a, c)
    assert S.format == "csc"


def test_history_and_result_fields(rng):
    A, b = _problem(rng)
    res = cgls(A, b, **TIGHT_IT)
    assert isinstance(res, CGLSResult)
    h = res.normal_residual_history
    assert h.shape == (res.n_iter + 1,)
    assert h[-1] == pytest.approx(res.arnorm) and h[-1] < 1e-6 * h[0]
    with pytest.raises(AttributeError):
        res.x = None  # frozen


@pytest.mark.parametrize("recompute_every", [0, 1, 7])
def test_residual_replacement_period_does_not_change_answer(rng, recompute_every):
    A, b = _problem(rng, n=200, p=30, cond=1e3)
    res = cgls(A, b, recompute_every=recompute_every, **TIGHT_IT)
    assert res.istop in (1, 2)
    np.testing.assert_allclose(res.x, _lstsq(A, b), rtol=1e-8)


# ---- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(damp=-1.0), ValueError, "damp"),
    (dict(atol=0.0), ValueError, "atol"),
    (dict(btol=-1e-3), ValueError, "btol"),
    (dict(conlim=0.0), ValueError, "conlim"),
    (dict(max_iter=0), ValueError, "max_iter"),
    (dict(max_iter=2.5), TypeError, "max_iter"),
    (dict(precondition="yes"), TypeError, "precondition"),
    (dict(x0=np.zeros(3)), ValueError, "x0"),
    (dict(sample_weight=-np.ones(20)), ValueError, "sample_weight"),
    (dict(sample_weight=np.ones(19)), ValueError, "sample_weight"),
    (dict(column_offset=np.ones(3)), ValueError, "column_offset"),
    (dict(column_offset=np.array([np.nan, 0, 0, 0])), ValueError, "column_offset"),
])
def test_bad_parameters(kwargs, exc, match):
    A = np.ones((20, 4))
    with pytest.raises(exc, match=match):
        cgls(A, np.ones(20), **kwargs)


def test_bad_arrays():
    A = np.ones((20, 4))
    b = np.ones(20)
    bad_A = A.copy()
    bad_A[3, 1] = np.nan
    with pytest.raises(ValueError, match="A contains NaN"):
        cgls(bad_A, b)
    with pytest.raises(ValueError, match="A contains NaN"):
        cgls(sp.csr_matrix(bad_A), b)
    with pytest.raises(ValueError, match="b contains NaN"):
        cgls(A, np.r_[b[:-1], np.inf])
    with pytest.raises(ValueError, match="rows"):
        cgls(A, np.ones(19))
    with pytest.raises(ValueError, match="A must be 2-D"):
        cgls(np.ones(5), np.ones(5))
    with pytest.raises(ValueError, match="empty"):
        cgls(np.ones((0, 3)), np.ones(0))
    with pytest.raises(TypeError, match="complex"):
        cgls(A.astype(complex), b)
    with pytest.raises(TypeError, match="dtype"):
        cgls(np.full((3, 2), "a"), np.ones(3))
    with pytest.raises(ValueError, match="b must be"):
        cgls(A, np.ones((20, 1, 1)))
    nan_op = scipy.sparse.linalg.LinearOperator(
        (20, 4), matvec=lambda v: np.full(20, np.nan), rmatvec=lambda u: np.full(4, np.nan))
    with pytest.raises(ValueError, match="LinearOperator returned NaN"):
        cgls(nan_op, b)


