"""CGLS convergence curves on the generated least squares designs (for the benchmark report).

``python -m fastseq._cli.bench.convergence OUT.json [--quick]`` runs :func:`fastseq.ops.cgls` on
each design of :func:`fastseq.datasets.make_least_squares` and records the normal-equation
residual history, iterations, stop reason, coefficient error against the exact solution and time.
"""
import json
import sys
import time

import numpy as np


def designs(quick):
    if quick:
        return [("well", 1000, 50, {}), ("ill", 1000, 30, {"cond": 1e3}),
                ("sparse", 5000, 100, {"density": 0.02}), ("wide", 100, 500, {})]
    return [("well", 20000, 400, {}), ("ill", 10000, 200, {"cond": 1e4}),
            ("ill", 10000, 200, {"cond": 1e6}),
            ("sparse", 100000, 1000, {"density": 0.005}), ("wide", 1000, 10000, {})]


def run(quick):
    try:
        from fastseq.ops import cgls
    except ImportError as exc:
        return {"curves": [], "note": f"fastseq.ops.cgls is not available in this build ({exc})."}
    from scipy import sparse

    from fastseq.datasets import make_least_squares

    curves = []
    for kind, n, p, kwargs in designs(quick):
        noise = 0.0 if p >= n else 0.1
        X, y, beta = make_least_squares(kind, n, p, noise=noise, random_state=0, **kwargs)
        t0 = time.perf_counter()
        res = cgls(X, y, atol=1e-14, btol=1e-14, conlim=1e16, max_iter=4 * p if kind != "wide"
                   else 2 * n)
        elapsed = time.perf_counter() - t0
        x = np.asarray(res.x, dtype=np.float64)
        r = y - X @ x
        normal = np.linalg.norm(X.T @ r) / np.linalg.norm(X.T @ y)
        label = kind + (f" cond={kwargs['cond']:.0e}" if "cond" in kwargs else "")
        label += " (CSR)" if sparse.issparse(X) else ""
        hist = np.asarray(res.normal_residual_history, dtype=np.float64).ravel()
        curves.append({
            "label": label, "shape": [n, p], "n_iter": int(res.n_iter),
            "message": res.message, "time": elapsed,
            "coef_error": float(np.linalg.norm(x - beta) / np.linalg.norm(beta)),
            "normal_residual": float(normal),
            "history": [float(h) if np.isfinite(h) else None for h in hist],
        })
    return {"curves": curves}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    out = [a for a in argv if not a.startswith("--")][0]
    with open(out, "w", encoding="utf-8") as f:
        json.dump(run("--quick" in argv), f)


if __name__ == "__main__":
    main()
