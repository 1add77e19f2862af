"""fastseq.LinearRegression (every solver) against scikit-learn LinearRegression and
Ridge(solver="cholesky"), through the estimators.

Run (quick cases only, ~1 min):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m pytest bench/bench_linear.py \
        --benchmark-only -p no:randomly -s
Add the large cases (dense 200000x500 well-/ill-conditioned: 800 MB; dense 20000x10000: 1.6 GB;
~4 GB peak, many minutes) with FASTSEQ_BENCH_HUGE=1 (the variable bench_cgls.py uses too).

Every case x method is one pytest-benchmark test in the case's group. Before timing, one untimed
fit samples RSS (psutil, 5 ms) for the peak extra memory and its coefficients are checked: against
the known beta (consistent data y = X beta + c), to the accuracy the method's theory allows.
At the end a table is printed: case, method, median s, ratio vs sklearn LinearRegression (or vs
the fastest fastseq solver where sklearn is not run), normal-equation residual
||Xc'(yc - Xc b)|| / ||Xc' yc||, coefficient relative error ||b - beta|| / ||beta||, peak extra RSS.

Metadata (bench/README.md, ``fastseq._cli.bench.record``): one benchmark per impl per group, so each
fastseq solver has its own group ``{case} [{solver}]`` (case ``LinearRegression.fit[{solver}]
well|ill1e6``)
with one scikit-learn competitor: Ridge(solver="cholesky") for cholesky, LinearRegression for the
others (timed in each of its groups). ``agreement``: fastseq, the coefficients against the known
beta (max|b - beta| / max|beta| <= sqrt(p) x the asserted 2-norm bound); scikit-learn, the
normal equations Xc'Xc b against Xc'yc (<= sqrt(p) x the asserted residual bound).
Quick mode (``fastseq bench --quick``): dense 2000x50 well- and ill-conditioned.
"""
import os
import warnings

import numpy as np
import pytest
import threadpoolctl
from sklearn.linear_model import LinearRegression as SkLinearRegression
from sklearn.linear_model import Ridge

from fastseq import LinearRegression
from fastseq._cli.bench import check_agreement, peak_extra_rss, pick, record

HUGE = os.environ.get("FASTSEQ_BENCH_HUGE") == "1"
RESULTS = []


# ---- problems ------------------------------------------------------------------------------
def _dense(n, p, cond, seed=0):
    """Consistent problem y = X beta + 3 with cond(centered X) ~ cond (1: plain Gaussian).

    Ill-conditioned: X = Z M with M = Q diag(s) Q', s geometric from 1 to 1/cond and Q random
    orthogonal, so column equilibration cannot undo it. Columns get mean 2 (the intercept must be
    centered out)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    if cond > 1:
        Q, _ = np.linalg.qr(rng.standard_normal((p, p)))
        M = (Q * np.geomspace(1.0, 1.0 / cond, p)) @ Q.T
        X = X @ M
    X += 2.0
    beta = rng.uniform(-1.0, 1.0, p)
    y = X @ beta + 3.0
    return X, y, beta


# case name -> (n, p, cond, methods, huge)
_ALL = ["sklearn-LinearRegression", "sklearn-Ridge-cholesky",
        "fastseq-auto", "fastseq-cholesky", "fastseq-qr", "fastseq-cgls"]
FULL_CASES = {
    "dense-20000x200-well": (20_000, 200, 1.0, _ALL, False),
    "dense-20000x200-ill1e6": (20_000, 200, 1e6, _ALL[:-1], False),
    "dense-200000x500-well": (200_000, 500, 1.0, _ALL, True),
    "dense-200000x500-ill1e6": (200_000, 500, 1e6, _ALL[:-1], True),
    "dense-20000x10000-well": (20_000, 10_000, 1.0,
                               ["fastseq-auto", "fastseq-cholesky", "fastseq-cgls"], True),
}
QUICK_CASES = {
    "dense-2000x50-well": (2_000, 50, 1.0, _ALL, False),
    "dense-2000x50-ill1e6": (2_000, 50, 1e6, _ALL[:-1], False),
}
CASES = pick(full=[FULL_CASES], quick=[QUICK_CASES])[0]
# fastseq solver -> the scikit-learn method timed in its group
COMPETITOR = {"auto": "sklearn-LinearRegression", "qr": "sklearn-LinearRegression",
              "cgls": "sklearn-LinearRegression", "cholesky": "sklearn-Ridge-cholesky"}
# CGLS is left out of the ill-conditioned cases: cond 1e6 needs ~1e6 iterations; auto never
# tries it there (direct is cheap at these shapes) - see the budget rule in LinearRegression.

_PROBLEMS = {}


def _problem(case):
    if case not in _PROBLEMS:
        _PROBLEMS.clear()  # keep one large problem in memory at a time
        n, p, cond, _, _ = CASES[case]
        _PROBLEMS[case] = _dense(n, p, cond)
    return _PROBLEMS[case]


def _make(method):
    if method == "sklearn-LinearRegression":
        return SkLinearRegression()
    if method == "sklearn-Ridge-cholesky":
        return Ridge(alpha=0.0, solver="cholesky")
    return LinearRegression(solver=method.split("-", 1)[1])


def _coef_error(est, beta):
    return float(np.linalg.norm(est.coef_ - beta) / np.linalg.norm(beta))


def _normal_residual(X, y, coef):
    """||Xc'(yc - Xc b)|| / ||Xc' yc|| in row blocks (no centered copy of X)."""
    g, g0 = _normal_sides(X, y, coef)
    return float(np.linalg.norm(g) / np.linalg.norm(g0))


def _normal_sides(X, y, coef):
    """(Xc'(yc - Xc b), Xc' yc) in row blocks: the normal equations' residual and right side."""
    xm, ym = X.mean(0), y.mean()
    g = np.zeros(X.shape[1])
    g0 = np.zeros(X.shape[1])
    for i in range(0, X.shape[0], 8192):
        Xc = X[i:i + 8192] - xm
        yc = y[i:i + 8192] - ym
        g += Xc.T @ (yc - Xc @ coef)
        g0 += Xc.T @ yc
    return g, g0


def _params():
    out = []
    for case, (_, _, _, methods, huge) in CASES.items():
        for solver in [m.split("-", 1)[1] for m in methods if m.startswith("fastseq")]:
            marks = [pytest.mark.skipif(huge and not HUGE, reason="set FASTSEQ_BENCH_HUGE=1")]
            for method in (f"fastseq-{solver}", COMPETITOR[solver]):
                if method in methods:
                    out.append(pytest.param(case, solver, method, marks=marks,
                                            id=f"{case}-{solver}-{method}"))
    return out


@pytest.mark.parametrize("case,solver,method", _params())
def test_linear_regression(benchmark, case, solver, method):
    X, y, beta = _problem(case)
    n, p, cond, _, huge = CASES[case]
    benchmark.group = f"{case} [{solver}]"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's Ridge may warn on ill-conditioned systems
        est, rss_bytes = peak_extra_rss(lambda: _make(method).fit(X, y), interval=0.005)
        rss_mb = rss_bytes / 2**20
    err = _coef_error(est, beta)
    # agreement before timing. fastseq: coefficient error within what each method's theory
    # allows (QR-class incl. auto: ~cond * eps; normal equations: ~cond^2 * eps; CGLS: tol).
    # Competitors: a least-squares solution (small normal-equation residual); their coefficient
    # error is reported, not asserted (sklearn's lstsq cut-off can cost digits, see the table).
    eps = np.finfo(np.float64).eps
    coef = np.asarray(est.coef_, dtype=np.float64)
    if method.startswith("fastseq"):
        kind = est.solver_ if method == "fastseq-auto" else method.split("-", 1)[1]
        allowed = {"cholesky": 1e3 * cond**2 * eps, "cgls": 1e-6}.get(kind, 1e3 * cond * eps)
        if method == "fastseq-auto" and kind == "cholesky":
            allowed = 1e3 * cond * eps  # refined: QR-class accuracy
        assert err <= max(allowed, 1e-12), (method, err)
        # max-norm form of the same bound: max|d| <= ||d|| and ||beta|| <= sqrt(p) max|beta|
        tolerance = np.sqrt(p) * max(allowed, 1e-12)
        agreement = check_agreement(coef, beta, tolerance, what=f"{method} coefficients")
    else:
        assert _normal_residual(X, y, coef) < 1e-6, method
        g, g0 = _normal_sides(X, y, coef)
        tolerance = np.sqrt(p) * 1e-6
        agreement = check_agreement(g0 - g, g0, tolerance, what=f"{method} normal equations")
    n_iter = getattr(est, "n_iter_", None)
    # the conditioning in the case: tables label rows by size, and well/ill share sizes
    record(benchmark, impl=method.split("-", 1)[0],
           case=f"LinearRegression.fit[{solver}] {case.rsplit('-', 1)[1]}",
           dtype="float64", n=n, p=p, agreement=agreement, tolerance=tolerance,
           residual=_normal_residual(X, y, coef),
           iterations=int(np.max(n_iter)) if n_iter is not None else None)
    rounds = 1 if huge and method.startswith("sklearn") else (2 if huge else 3)

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _make(method).fit(X, y)

    benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=0)
    row = {
        "case": case, "method": method, "median": benchmark.stats.stats.median,
        "nres": _normal_residual(X, y, np.asarray(est.coef_, dtype=np.float64)),
        "err": err, "rss": rss_mb, "solver_": getattr(est, "solver_", ""),
        "refine": getattr(est, "n_refine_", ""), "iters": getattr(est, "n_iter_", None),
    }
    if not any(r["case"] == case and r["method"] == method for r in RESULTS):
        RESULTS.append(row)  # sklearn is timed in several groups: one table row
    # one line per case as it finishes (the full table comes at the end of the module)
    print(f"\n[bench_linear] {case} {method}: median {row['median']:.3f} s, normal-eq residual "
          f"{row['nres']:.2e}, coef rel err {row['err']:.2e}, peak +{row['rss']:.0f} MB, "
          f"solver_={row['solver_']} refine={row['refine']} iters={row['iters']}", flush=True)


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    if not RESULTS:
        return
    blas = [f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} "
            f"{i.get('num_threads')} threads" for i in threadpoolctl.threadpool_info()
            if i.get("user_api") == "blas"]
    print("\n\nBLAS:", "; ".join(sorted(set(blas))))
    print(f"{'case':26s} {'method':26s} {'median s':>9s} {'ratio':>7s} {'normal-eq res':>13s} "
          f"{'coef rel err':>12s} {'peak MB':>8s}  solver_ (refine/iters)")
    for case in CASES:
        rows = [r for r in RESULTS if r["case"] == case]
        if not rows:
            continue
        base = [r["median"] for r in rows if r["method"] == "sklearn-LinearRegression"]
        ref = base[0] if base else min(r["median"] for r in rows)
        ref_name = "sklearn LR" if base else "fastest"
        for r in rows:
            extra = r["solver_"]
            if r["solver_"] == "cgls" or r["iters"]:
                extra += f" ({r['iters']} it)"
            elif r["refine"]:
                extra += f" ({r['refine']} refine)"
            print(f"{case:26s} {r['method']:26s} {r['median']:9.3f} {r['median'] / ref:7.3f} "
                  f"{r['nres']:13.2e} {r['err']:12.2e} {r['rss']:8.0f}  {extra}")
        print(f"{'':26s} (ratio vs {ref_name})")
