"""CGLS (fastseq.ops.cgls) against scipy lsqr/lsmr, scikit-learn Ridge and the NumPy reference.

Run (quick cases only):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m pytest bench/bench_cgls.py \
        --benchmark-only -p no:randomly -s
Add the big cases (dense 200000x500 well/ill, 20000x10000, CSR 1e6x1e5 with 1e7 nonzeros;
~3 GB peak, minutes) with FASTSEQ_BENCH_HUGE=1.

Every case x method is one pytest-benchmark test in the case's group; before timing, the method's
solution is checked against the problem (normal-equation residual ||X^T(y - X b)|| / ||X^T y||
within the method's tolerance), and one untimed run samples RSS (psutil, 2 ms) for the peak extra
memory. At the end a table is printed: case, method, iterations, ms/iter, total s, normal-eq
residual, peak extra memory (% of X), and ms/iter relative to lsqr.

Metadata (bench/README.md, ``fastseq._cli.bench.record``): one benchmark per impl per group, so each
problem has two groups: ``{case} [precond]`` (fastseq cgls, scipy lsqr, sklearn Ridge lsqr) and
``{case} [no precond]`` (fastseq cgls without Jacobi scaling, the NumPy reference CGLS - the same
algorithm -, scipy lsmr, sklearn Ridge sparse_cg). ``agreement``: the normal equations, X'X b
against X'y (max-norm relative difference <= sqrt(p) x the asserted 2-norm residual bound).
The fused-pass benchmark is split the same way (BLAS row blocks / fused C loop, each against
NumPy's two passes). Quick mode (``fastseq bench --quick``) runs small problems.
"""
import os
import sys
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import threadpoolctl
from scipy.sparse.linalg import lsmr, lsqr

from fastseq._cli.bench import check_agreement, peak_extra_rss, pick, record
from fastseq.linear_model import _cgls_fast as _cgls
from fastseq.ops import cgls
from fastseq.reference.linear import cgls_reference

HUGE = os.environ.get("FASTSEQ_BENCH_HUGE") == "1"
TOL = 1e-8
RESULTS = []


# ---- problems ----------------------------------------------------------------------------------
def _dense(n, p, ill, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    if ill:
        # columns scaled over 1.5 decades (cond(X) ~ 1e2, lsqr needs ~10x the iterations of the
        # well-conditioned case): what Jacobi column scaling undoes
        X *= np.logspace(0, 1.5, p)
    beta = rng.standard_normal(p)
    y = X @ beta + rng.standard_normal(n)
    return X, y


def _sparse(n, p, nnz_per_row, seed=0):
    rng = np.random.default_rng(seed)
    indptr = np.arange(0, n * nnz_per_row + 1, nnz_per_row, dtype=np.int32)
    indices = rng.integers(0, p, n * nnz_per_row, dtype=np.int32)
    data = rng.standard_normal(n * nnz_per_row)
    X = sp.csr_matrix((data, indices, indptr), shape=(n, p))
    X.sum_duplicates()
    y = X @ rng.standard_normal(p) + rng.standard_normal(n)
    return X, y


CASES = {
    "dense 50000x500 well": (lambda: _dense(50_000, 500, False), False),
    "dense 50000x500 ill": (lambda: _dense(50_000, 500, True), False),
    "csr 100000x10000 nnz1e6": (lambda: _sparse(100_000, 10_000, 10), False),
    "dense 200000x500 well": (lambda: _dense(200_000, 500, False), True),
    "dense 200000x500 ill": (lambda: _dense(200_000, 500, True), True),
    "dense 20000x10000 well": (lambda: _dense(20_000, 10_000, False), True),
    "csr 1000000x100000 nnz1e7": (lambda: _sparse(1_000_000, 100_000, 10), True),
    # quick mode (fastseq bench --quick) only
    "dense 5000x100 well": (lambda: _dense(5_000, 100, False), False),
    "dense 5000x100 ill": (lambda: _dense(5_000, 100, True), False),
    "csr 20000x2000 nnz2e5": (lambda: _sparse(20_000, 2_000, 10), False),
}
CASE_NAMES = pick(full=list(CASES)[:7], quick=list(CASES)[7:])
_cache = {}


def _get(case):
    if case not in _cache:
        _cache.clear()  # one big problem in memory at a time
        _cache[case] = CASES[case][0]()
    return _cache[case]


# ---- methods: each returns (coef, iterations or None) ------------------------------------------
def _max_iter(X):
    return 4 * X.shape[1]


def m_cgls(X, y):
    res = cgls(X, y, atol=TOL, btol=TOL, max_iter=_max_iter(X))
    return res.x, res.n_iter


def m_cgls_noprecond(X, y):
    res = cgls(X, y, atol=TOL, btol=TOL, max_iter=_max_iter(X), precondition=False)
    return res.x, res.n_iter


def m_lsqr(X, y):
    out = lsqr(X, y, atol=TOL, btol=TOL, iter_lim=_max_iter(X))
    return out[0], out[2]


def m_lsmr(X, y):
    out = lsmr(X, y, atol=TOL, btol=TOL, maxiter=_max_iter(X))
    return out[0], out[2]


def m_ridge_lsqr(X, y):
    from sklearn.linear_model import Ridge

    r = Ridge(alpha=1e-10, solver="lsqr", tol=TOL, fit_intercept=False,
              max_iter=_max_iter(X)).fit(X, y)
    return r.coef_, int(np.ravel(r.n_iter_)[0])


def m_ridge_sparse_cg(X, y):
    from sklearn.linear_model import Ridge

    r = Ridge(alpha=1e-10, solver="sparse_cg", tol=TOL, fit_intercept=False,
              max_iter=_max_iter(X)).fit(X, y)
    return r.coef_, None  # sklearn does not report sparse_cg iterations


def m_reference(X, y):
    out = cgls_reference(X, y, atol=TOL, btol=TOL, max_iter=_max_iter(X), precondition=False)
    return out["x"], out["n_iter"]


# method -> (impl, group/case variant)
IMPL = {
    "fastseq cgls": ("fastseq", "precond"),
    "fastseq cgls (no precond)": ("fastseq", "no precond"),
    "scipy lsqr": ("scipy", "precond"),
    "scipy lsmr": ("scipy", "no precond"),
    "sklearn Ridge lsqr": ("sklearn", "precond"),
    "sklearn Ridge sparse_cg": ("sklearn", "no precond"),
    "numpy reference cgls": ("reference", "no precond"),
}
METHODS = {
    "fastseq cgls": m_cgls,
    "fastseq cgls (no precond)": m_cgls_noprecond,
    "scipy lsqr": m_lsqr,
    "scipy lsmr": m_lsmr,
    "sklearn Ridge lsqr": m_ridge_lsqr,
    "sklearn Ridge sparse_cg": m_ridge_sparse_cg,
    "numpy reference cgls": m_reference,
}


def _normal_residual(X, y, coef):
    g = X.T @ (y - X @ coef)
    return float(np.linalg.norm(g) / np.linalg.norm(X.T @ y))


def _nbytes(X):
    return X.nbytes if isinstance(X, np.ndarray) else X.data.nbytes + X.indices.nbytes + \
        X.indptr.nbytes




@pytest.fixture(scope="module", autouse=True)
def _print_table():
    yield
    out = sys.__stdout__
    blas = [f"{i['internal_api']} {i['version']} {i['num_threads']} threads ({i['filepath']})"
            for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    out.write("\nBLAS: " + "; ".join(blas) + f"\nfastseq kernel threads: "
              f"{_cgls.max_threads()}\n")
    header = (f"{'case':28s} {'method':27s} {'iters':>6s} {'ms/iter':>9s} {'total s':>8s} "
              f"{'normal-eq res':>13s} {'peak MB':>8s} {'% of X':>7s} {'ms/iter vs lsqr':>15s}")
    out.write(header + "\n" + "-" * len(header) + "\n")
    lsqr_rate = {r["case"]: r["ms_iter"] for r in RESULTS if r["method"] == "scipy lsqr"}
    for r in RESULTS:
        ratio = (f"{r['ms_iter'] / lsqr_rate[r['case']]:.2f}"
                 if r["ms_iter"] and lsqr_rate.get(r["case"]) else "-")
        ms_iter = f"{r['ms_iter']:.1f}" if r["ms_iter"] else "-"
        iters = str(r["iters"]) if r["iters"] else "-"
        out.write(f"{r['case']:28s} {r['method']:27s} {iters:>6s} {ms_iter:>9s} "
                  f"{r['total']:8.2f} {r['res']:13.2e} {r['mem'] / 2**20:8.1f} "
                  f"{100 * r['mem'] / r['xbytes']:6.1f}% {ratio:>15s}\n")
    out.flush()


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("case", CASE_NAMES)
def test_cgls_bench(benchmark, case, method):
    huge = CASES[case][1]
    if huge and not HUGE:
        pytest.skip("big case: set FASTSEQ_BENCH_HUGE=1")
    if method == "numpy reference cgls" and huge and "20000x10000" not in case \
            and "ill" in case:
        pytest.skip("the two-pass NumPy reference on the big ill-conditioned case takes minutes")
    X, y = _get(case)
    fn = METHODS[method]
    impl, variant = IMPL[method]
    benchmark.group = f"{case} [{variant}]"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unpreconditioned runs may hit the iteration limit
        (coef, iters), mem = peak_extra_rss(lambda: fn(X, y))
        res = _normal_residual(X, y, coef)
        # agreement before timing: every method reaches a least-squares solution (the damped
        # sklearn ones up to their alpha=1e-10 shift; unpreconditioned ones on the ill case may
        # stop at the iteration limit, which the table shows)
        limit = 1e-4 if "ill" in case else 1e-6
        assert res < limit, f"{method} on {case}: normal-equation residual {res:.2e}"
        # recorded: max-norm form, X'X b vs X'y (max|g| <= ||g||, ||X'y|| <= sqrt(p) max|X'y|)
        tolerance = limit * np.sqrt(X.shape[1])
        extra = {} if impl == "reference" else dict(
            agreement=check_agreement(X.T @ (X @ coef), X.T @ y, tolerance,
                                      what=f"{method} normal equations"), tolerance=tolerance)
        # the problem family in the case: tables label rows by size, and well/ill share sizes
        words = case.split()
        family = words[0] if words[0] == "csr" else f"{words[0]} {words[2]}"
        record(benchmark, impl=impl, case=f"least squares [{variant}] {family}", dtype="float64",
               n=X.shape[0], p=X.shape[1], iterations=iters, residual=res, **extra)
        rounds = 1 if huge else 2
        benchmark.pedantic(lambda: fn(X, y), rounds=rounds, iterations=1, warmup_rounds=0)
    total = benchmark.stats.stats.median
    RESULTS.append(dict(case=case, method=method, iters=iters, total=total,
                        ms_iter=1e3 * total / iters if iters else None, res=res, mem=mem,
                        xbytes=_nbytes(X)))


# ---- the fused pass alone: BLAS row blocks vs the C loop vs NumPy's two passes ----------------
@pytest.mark.parametrize("impl", ["fastseq", "numpy"])
@pytest.mark.parametrize("kernel", ["blas", "fused_c"])
@pytest.mark.parametrize("shape", pick(full=[(50_000, 500), (5_000, 5_000)],
                                       quick=[(5_000, 100), (1_000, 1_000)]))
def test_cgls_pass(benchmark, kernel, impl, shape):
    """One group per fastseq kernel (BLAS row blocks, fused C loop), each with NumPy's two
    passes X.T @ (X @ v) (the result both are checked against)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal(shape)
    v = rng.standard_normal(shape[1])
    ref = X.T @ (X @ v)
    benchmark.group = f"normal pass X^T X v {shape[0]}x{shape[1]} [{kernel}]"
    if impl == "numpy":
        fn = lambda: X.T @ (X @ v)  # noqa: E731
    else:
        op = _cgls.NormalOperator(X, np.zeros((shape[0], 1)), dense_kernel=kernel)
        fn = lambda: op.normal_product(v)[0][:, 0]  # noqa: E731
    np.testing.assert_allclose(fn(), ref, rtol=1e-10, atol=1e-8 * np.abs(ref).max())
    # |a - b| <= 1e-8 max|b| + 1e-10 |b| implies a relative difference <= 1.01e-8
    agreement = check_agreement(fn(), ref, 1.01e-8, what=f"{kernel} normal pass")
    record(benchmark, impl=impl, case=f"normal pass X^T X v [{kernel}]", dtype="float64",
           n=shape[0], p=shape[1], flops=4.0 * shape[0] * shape[1], agreement=agreement,
           tolerance=1.01e-8)
    benchmark.pedantic(fn, rounds=7, iterations=1, warmup_rounds=1)
