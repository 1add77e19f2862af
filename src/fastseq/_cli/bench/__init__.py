"""Benchmark support shipped with the package (private).

Why inside the package: ``fastseq bench`` must work after ``pip install .`` from any directory,
and the repository's ``bench/`` files are not importable from there. So:

- the pytest-benchmark files live in the repository's ``bench/`` (one per kernel/estimator) and
  are *also* installed as ``fastseq/_cli/bench/bench/`` (``wheel.packages`` in pyproject.toml);
  ``fastseq bench`` runs pytest on that copy (or on the checkout's ``bench/`` in an editable
  install) and turns the JSON into a report (:mod:`fastseq._cli.bench.report`);
- this module holds the one metadata convention those files follow (:func:`record`), the quick
  mode switch (:data:`QUICK`, :func:`pick`) and the agreement check run before timing
  (:func:`check_agreement`).

Metadata convention (``benchmark.extra_info``; see bench/README.md)::

    impl        required  "fastseq" | "reference" | "torch" | "sklearn" | "scipy" | "numpy"
    case        required  what is computed, e.g. "lstm_forward", "LinearRegression.fit[qr]";
                          implementations of one computation share case and benchmark.group
    dtype       required  "float32" | "float64"
    flops       optional  floating-point operations of one call (for GFLOP/s)
    iterations  optional  iterations done by an iterative solver
    residual    optional  its final relative residual (normal-equation residual for least squares)
    agreement   required for non-reference impls: max relative difference to the reference,
                measured (and asserted <= tolerance) before timing
    tolerance   the tolerance that agreement was asserted against
    T, B, H, D, n, p   optional sizes (sequence length, batch, hidden, input features, samples,
                features): the report plots time against each one that varies
"""
import os

import numpy as np

__all__ = ["QUICK", "IMPLS", "pick", "record", "check_agreement", "relative_difference",
           "peak_extra_rss"]

QUICK = os.environ.get("FASTSEQ_BENCH_QUICK", "") not in ("", "0")
"""True when the suite runs in quick mode (``fastseq bench --quick``, env FASTSEQ_BENCH_QUICK=1)."""

IMPLS = ("fastseq", "reference", "numpy", "torch", "sklearn", "scipy")
SIZE_KEYS = ("T", "B", "H", "D", "n", "p")
_KEYS = {"impl", "case", "dtype", "flops", "iterations", "residual", "agreement", "tolerance",
         *SIZE_KEYS}


def pick(full, quick):
    """Parametrization values: ``quick`` in quick mode, else ``full``."""
    return list(quick) if QUICK else list(full)


def relative_difference(result, reference):
    """max |result - reference| / max(max |reference|, tiny): one number per comparison."""
    result = np.asarray(result, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if result.shape != reference.shape:
        raise AssertionError(f"shape {result.shape} differs from the reference's {reference.shape}")
    scale = max(float(np.max(np.abs(reference), initial=0.0)), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(result - reference), initial=0.0) / scale)


def check_agreement(result, reference, tolerance, what="result"):
    """Assert ``result`` agrees with ``reference`` (see :func:`relative_difference`); return the
    difference, to be recorded as ``agreement``. Arrays may be tuples/lists of arrays."""
    if isinstance(result, (tuple, list)):
        diffs = [relative_difference(r, ref) for r, ref in zip(result, reference, strict=True)]
        diff = max(diffs)
    else:
        diff = relative_difference(result, reference)
    if not diff <= tolerance:
        raise AssertionError(f"{what}: relative difference {diff:.3g} to the reference exceeds "
                             f"{tolerance:.3g}")
    return diff


def record(benchmark, *, impl, case, dtype, **extra):
    """Set ``benchmark.extra_info`` following the convention above (validated)."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    unknown = set(extra) - _KEYS
    if unknown:
        raise ValueError(f"unknown benchmark metadata keys {sorted(unknown)}; "
                         f"known: {sorted(_KEYS)}")
    if impl not in ("reference",) and "agreement" not in extra:
        raise ValueError("non-reference implementations must record 'agreement' (measured "
                         "before timing with check_agreement)")
    info = {"impl": impl, "case": str(case), "dtype": str(np.dtype(dtype))}
    for key, value in extra.items():
        if value is None:
            continue
        if isinstance(value, (np.integer, np.floating)):
            value = value.item()
        info[key] = value
    benchmark.extra_info.update(info)
    return info


def peak_extra_rss(fn, interval=0.002):
    """Run ``fn()`` while a thread samples the process RSS every ``interval`` seconds.

    Returns ``(fn(), peak RSS minus the RSS before the call, in bytes)``. Sampling can miss a
    short spike and counts reused memory as nothing, so it bounds the extra memory from below.
    Needs psutil (the ``bench`` extra).
    """
    import threading
    import time

    import psutil

    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out = fn()
    finally:
        stop.set()
        sampler.join()
    return out, max(0, max(peak[0], proc.memory_info().rss) - base)
