"""Machine, library and BLAS description, and the GEMM peak of the BLAS fastseq calls.

``python -m fastseq._cli.bench.machine OUT.json [--quick]`` writes both as JSON; ``fastseq bench``
runs it in the same environment as the benchmark suite so GFLOP/s can be quoted against a peak
measured in the same run.
"""
import json
import os
import platform
import sys
import time

import numpy as np


def cpu_model():
    """CPU model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(module_name):
    try:
        module = __import__(module_name)
    except Exception:  # not installed, or broken: the report says so
        return None
    return getattr(module, "__version__", "unknown")


def machine_info():
    """Dict: CPU, cores, Python, library versions and threadpoolctl's view of BLAS/OpenMP."""
    import scipy.linalg  # noqa: F401  -- loads SciPy's BLAS so threadpoolctl sees it
    import threadpoolctl

    import fastseq

    pools = []
    for info in threadpoolctl.threadpool_info():
        pools.append({k: info.get(k) for k in ("user_api", "internal_api", "version",
                                                "architecture", "num_threads", "filepath",
                                                "threading_layer")})
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {name: _version(name) for name in
                     ("fastseq", "numpy", "scipy", "sklearn", "torch", "threadpoolctl",
                      "matplotlib", "pytest_benchmark")},
        "fastseq_path": os.path.dirname(fastseq.__file__),
        "threadpools": pools,
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                "MKL_NUM_THREADS", "OPENBLAS_CORETYPE",
                                                "OPENBLAS_L2_SIZE") if k in os.environ},
    }


def gemm_peak(sizes=(256, 512, 1024), dtypes=("float64", "float32"), repeats=5, budget=3.0):
    """Best-size, best-round GFLOP/s of ``fastseq._lib._gemm.gemm`` (row-major GEMM through
    SciPy's BLAS).

    For each dtype, square products of each size are timed ``repeats`` times (best round: a peak,
    not a typical rate), and the peak is the best size's rate: 2 n^3 flops per product.
    ``budget`` seconds caps each size.
    """
    from fastseq._lib._gemm import gemm

    rng = np.random.default_rng(0)
    peaks = {}
    for dtype in dtypes:
        rates = {}
        for n in sizes:
            a = rng.standard_normal((n, n)).astype(dtype)
            b = rng.standard_normal((n, n)).astype(dtype)
            c = gemm(a, b)  # warm-up, and a correctness check against NumPy's own product
            tol = 1e-4 if dtype == "float32" else 1e-10
            if not np.allclose(c, a @ b, rtol=tol, atol=tol * np.sqrt(n)):
                raise AssertionError(
                    f"fastseq._lib._gemm.gemm disagrees with a @ b for n={n} {dtype}")
            times = []
            start = time.perf_counter()
            for _ in range(repeats):
                t0 = time.perf_counter()
                gemm(a, b)
                times.append(time.perf_counter() - t0)
                if time.perf_counter() - start > budget:
                    break
            rates[n] = 2.0 * n ** 3 / min(times) / 1e9  # peak: the best round
        best = max(rates, key=rates.get)
        peaks[dtype] = {"gflops": rates[best], "n": best, "by_size": rates}
    return peaks


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        raise SystemExit("usage: python -m fastseq._cli.bench.machine OUT.json [--quick]")
    quick = "--quick" in argv
    out = [a for a in argv if not a.startswith("--")][0]
    info = machine_info()
    # Many short rounds within a time budget: the best round is the peak even on a busy machine.
    info["gemm_peak"] = gemm_peak(sizes=(256, 512) if quick else (256, 512, 1024),
                                  repeats=20 if quick else 50, budget=1.0 if quick else 3.0)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)


if __name__ == "__main__":
    main()
