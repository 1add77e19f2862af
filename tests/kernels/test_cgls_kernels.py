"""CGLS kernels (fastseq.linear_model._cgls_fast, csrc/linear_model/cgls.c): the fused normal
pass against NumPy across layouts, dtypes and thread counts, degenerate shapes, and malformed CSR
input. Solver-level tests: tests/test_cgls.py."""
import numpy as np
import pytest
import scipy.sparse as sp

from fastseq.linear_model import _cgls_fast as _cgls
from fastseq.ops import cgls


# ---- kernel level: the fused pass against NumPy ----------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", ["blas", "fused_c", "csr32", "csr64"])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_fused_normal_pass_matches_numpy(rng, dtype, layout, k, n_threads):
    n, p = 601, 37           # n not a multiple of 4 or of the block size
    A = rng.standard_normal((n, p))
    A[rng.random((n, p)) < 0.5] = 0.0
    A = A.astype(dtype)
    B = rng.standard_normal((n, k))
    w = rng.uniform(0, 2, n)
    mu = rng.standard_normal(p)
    V = rng.standard_normal((p, k))
    if layout.startswith("csr"):
        M = sp.csr_matrix(A)
        if layout == "csr64":
            M.indices = M.indices.astype(np.int64)
            M.indptr = M.indptr.astype(np.int64)
        op = _cgls.NormalOperator(M, B, sample_weight=w, column_offset=mu, n_threads=n_threads)
    else:
        op = _cgls.NormalOperator(A, B, sample_weight=w, column_offset=mu, n_threads=n_threads,
                                  dense_kernel=layout, block_bytes=4096)
    Ac = A.astype(np.float64) - mu
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for with_b in (False, True):
        E = Ac @ V + (B if with_b else 0.0)
        T, sumsq, usum = op.normal_product(V, with_b=with_b)
        np.testing.assert_allclose(T, Ac.T @ (w[:, None] * E), rtol=tol, atol=tol * n)
        np.testing.assert_allclose(sumsq, np.einsum("i,il,il->l", w, E, E), rtol=tol)
        np.testing.assert_allclose(usum, (w[:, None] * (A.astype(np.float64) @ V
                                                         + (B if with_b else 0.0)
                                                         - mu @ V)).sum(0), rtol=tol,
                                   atol=tol * n)
    colsumsq, colsum = op.column_stats()
    np.testing.assert_allclose(colsumsq, w @ A.astype(np.float64) ** 2, rtol=1e-12)
    np.testing.assert_allclose(colsum, w @ A.astype(np.float64), rtol=1e-12, atol=1e-12)


def test_fused_pass_degenerate_shapes(rng):
    for n, p in [(1, 1), (3, 1), (1, 5), (4, 2), (5, 3)]:
        A = rng.standard_normal((n, p))
        b = rng.standard_normal((n, 1))
        V = rng.standard_normal((p, 1))
        for M, kw in [(A, dict(dense_kernel="blas")), (A, dict(dense_kernel="fused_c")),
                      (sp.csr_matrix(A), {}), (sp.csr_matrix((n, p)), {})]:
            op = _cgls.NormalOperator(M, b, n_threads=2, **kw)
            dense = M.toarray() if sp.issparse(M) else M
            T = op.normal_product(V)[0]
            np.testing.assert_allclose(T, dense.T @ (dense @ V), rtol=1e-12, atol=1e-14)


def test_malformed_csr_is_rejected_not_written_out_of_bounds():
    # scipy does not check index bounds on construction; the kernels scatter into T[indices]
    b = np.ones(3)
    bad_index = sp.csr_matrix((np.ones(3), np.array([0, 1, 5]), np.array([0, 1, 2, 3])),
                              shape=(3, 2))
    with pytest.raises(ValueError, match="malformed CSR"):
        cgls(bad_index, b)
    bad_indptr = sp.csr_matrix((np.ones(3), np.array([0, 1, 1]), np.array([0, 1, 2, 3])),
                               shape=(3, 2))
    bad_indptr.indptr[1:3] = [3, 1]  # not monotone
    with pytest.raises(ValueError, match="malformed CSR"):
        cgls(bad_indptr, b)


# The fused kernels place per-thread slices of their workspace for the requested thread count; the
# threaded path only runs above ~2e6 stored entries (NormalOperator's cut-off).
_THREADED_PASS = """
import numpy as np, scipy.sparse as sp
from fastseq.linear_model import _cgls_fast as _cgls
rng = np.random.default_rng(0)
A = rng.standard_normal((20000, 101))
A[rng.random(A.shape) < 0.01] = 0.0
V = rng.standard_normal((101, 2))
for M, kw in [(A, dict(dense_kernel="fused_c")), (sp.csr_matrix(A), {})]:
    for k in (1, 2):
        B = rng.standard_normal((20000, k))
        op = _cgls.NormalOperator(M, B, n_threads=2, **kw)
        E = A @ V[:, :k] + B
        T, ss, us = op.normal_product(V[:, :k], with_b=True)
        np.testing.assert_allclose(T, A.T @ E, rtol=1e-10, atol=1e-8)
        np.testing.assert_allclose(ss, (E * E).sum(0), rtol=1e-10)
        np.testing.assert_allclose(us, E.sum(0), rtol=1e-8, atol=1e-8)
print("ok")
"""


@pytest.mark.parametrize("thread_limit", [None, "1"])
def test_threaded_fused_pass_when_openmp_gives_fewer_threads(thread_limit):
    # OMP_THREAD_LIMIT=1: OpenMP starts a team of 1 although 2 threads were asked for; the
    # reduction must read the slices where that team wrote them (it used to read garbage).
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    env.pop("OMP_THREAD_LIMIT", None)
    if thread_limit is not None:
        env["OMP_THREAD_LIMIT"] = thread_limit
    out = subprocess.run([sys.executable, "-c", _THREADED_PASS], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
