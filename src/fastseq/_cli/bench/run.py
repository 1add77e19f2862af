"""``fastseq bench``: run the benchmark suite with pytest-benchmark and write the report.

Three subprocesses share one cleaned environment (OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed,
FASTSEQ_BENCH_QUICK set in quick mode), so the GEMM peak, the convergence curves and the suite
see the same BLAS configuration:

1. ``python -m fastseq._cli.bench.machine``      -> machine.json (CPU, versions, BLAS, GEMM peak)
2. ``python -m fastseq._cli.bench.convergence``  -> convergence.json (CGLS curves)
3. ``python -m pytest <suite> --benchmark-only --benchmark-json=...`` -> benchmarks.json, pytest.log

then :func:`fastseq._cli.bench.report.write_report` writes report.md, summary.json and the plots.
"""
import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import fastseq
import fastseq._cli.bench as _bench_pkg

_INI = """[pytest]
python_files = bench_*.py test_*.py
filterwarnings =
    error
    ignore::pytest_benchmark.logger.PytestBenchmarkWarning
markers =
    slow: slow benchmarks
    kernels: kernel-level benchmarks
"""


def suite_dir():
    """The benchmark files: the installed copy (``fastseq/_cli/bench/bench``), else -- in an
    editable install -- the checkout's ``bench/`` next to ``src/``."""
    installed = Path(_bench_pkg.__file__).parent / "bench"
    if installed.is_dir() and any(installed.glob("bench_*.py")):
        return installed
    checkout = Path(fastseq.__file__).resolve().parents[2] / "bench"
    if checkout.is_dir() and any(checkout.glob("bench_*.py")):
        return checkout
    return None


def _clean_env(quick, threads=None):
    env = dict(os.environ)
    if threads is not None:
        # One BLAS thread count for every pool in the process (NumPy's and SciPy's OpenBLAS,
        # torch's OpenMP): on a small shared machine idle pools spinning against each other
        # stall multi-threaded calls by a scheduler tick (~16 ms), far above the work itself.
        for key in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[key] = str(threads)
    for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        env.pop(key, None)
    env["FASTSEQ_BENCH_QUICK"] = "1" if quick else "0"
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("MPLBACKEND", "Agg")
    return env


def _run_step(title, args, env, cwd, log=None):
    """Run a subprocess, streaming its output (and teeing it to ``log``); return (rc, text)."""
    print(f"==> {title}", flush=True)
    start = time.perf_counter()
    proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if log is not None:
            print(line, end="", flush=True)
    rc = proc.wait()
    text = "".join(lines)
    if log is not None:
        Path(log).write_text(text, encoding="utf-8")
    elif rc != 0:
        print(text, end="")
    print(f"    ({time.perf_counter() - start:.1f} s, exit {rc})", flush=True)
    return rc, text


def run_bench(out_dir, quick=False, keyword=None, files="bench_*.py", threads=None):
    """Run everything; return the process exit code (0 when every benchmark passed)."""
    missing = [m for m in ("pytest", "pytest_benchmark") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"fastseq bench needs {' and '.join(missing)}: install the bench extra from the "
              "checkout, e.g. pip install \".[bench,plot]\"", file=sys.stderr)
        return 2
    suite = suite_dir()
    if suite is None:
        print("fastseq bench: no benchmark suite found (neither fastseq/_cli/bench/bench nor a "
              "checkout's bench/ directory)", file=sys.stderr)
        return 2
    files_pattern = files
    files = sorted(str(p) for p in suite.glob(files_pattern) if p.name.endswith(".py"))
    if not files:
        print(f"fastseq bench: no benchmark file in {suite} matches {files_pattern!r}",
              file=sys.stderr)
        return 2
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if threads is not None and threads < 1:
        print(f"fastseq bench: --threads must be >= 1, got {threads}", file=sys.stderr)
        return 2
    env = _clean_env(quick, threads)
    flag = ["--quick"] if quick else []
    print(f"fastseq bench: suite {suite}, output {out}{' (quick)' if quick else ''}", flush=True)

    rc, _ = _run_step("machine description and GEMM peak",
                      [sys.executable, "-m", "fastseq._cli.bench.machine",
                       str(out / "machine.json"), *flag], env, out)
    if rc != 0:
        return rc
    _run_step("CGLS convergence curves",
              [sys.executable, "-m", "fastseq._cli.bench.convergence",
               str(out / "convergence.json"), *flag], env, out)

    ini = out / "pytest-bench.ini"
    ini.write_text(_INI, encoding="utf-8")
    bench_json = out / "benchmarks.json"
    if bench_json.exists():
        bench_json.unlink()
    timing = (["--benchmark-min-rounds=3", "--benchmark-max-time=0.1", "--benchmark-warmup=off"]
              if quick else ["--benchmark-min-rounds=5", "--benchmark-max-time=0.5",
                             "--benchmark-warmup=on"])
    args = [sys.executable, "-m", "pytest", *files, "-c", str(ini), "--rootdir", str(suite),
            "--durations=15",
            "--import-mode=importlib", "-p", "no:cacheprovider", "-p", "no:randomly",
            "--benchmark-only",
            f"--benchmark-json={bench_json}", "--benchmark-columns=median,iqr,rounds",
            "--benchmark-sort=name", "-q", "-rfEs", *timing]
    if keyword:
        args += ["-k", keyword]
    rc, text = _run_step(f"benchmark suite ({len(files)} files)", args, env, out,
                         log=out / "pytest.log")
    summary = ""
    for line in reversed(text.splitlines()):
        if re.search(r"\b(passed|failed|error|skipped|no tests ran)\b", line):
            summary = line.strip("= ").strip()
            break

    from fastseq._cli.bench.report import write_report

    command = ("fastseq bench" + (" --quick" if quick else "")
               + (f" --threads {threads}" if threads is not None else "")
               + (f" --files '{files_pattern}'" if files_pattern != "bench_*.py" else "")
               + (f" -k '{keyword}'" if keyword else "") + f" --out {out_dir}")
    result = write_report(str(out), benchmark_json=str(bench_json),
                          machine_json=str(out / "machine.json"),
                          convergence_json=str(out / "convergence.json"),
                          pytest_summary=summary, command=command, quick=quick)
    print(f"\nReport: {out / 'report.md'}  ({len(result['rows'])} timings, "
          f"{len(result['plots'])} plots"
          f"{'' if result['matplotlib'] else '; matplotlib not installed: no plots'})")
    return rc
