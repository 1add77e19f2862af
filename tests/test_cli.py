"""The command line (``fastseq demo``, ``fastseq bench``) and the benchmark report machinery.

The quick forms of both commands run in subprocesses (marked slow: they take ~20-40 s each);
the report/convention helpers are tested directly on hand-made inputs.
"""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastseq
from fastseq._cli.bench import check_agreement, record, relative_difference
from fastseq._cli.bench.report import compute_ratios, load_rows, sweep_series, write_report

HAVE_MPL = importlib.util.find_spec("matplotlib") is not None


def _run(args, cwd, timeout=300):
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "fastseq", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_help_lists_commands(tmp_path):
    proc = _run(["--help"], tmp_path)
    assert proc.returncode == 0
    assert "demo" in proc.stdout and "bench" in proc.stdout
    from fastseq.__main__ import main

    assert main([]) == 2  # no command: help, exit status 2


# ---- convention helpers ------------------------------------------------------------------------
class _FakeBenchmark:
    def __init__(self):
        self.extra_info = {}


def test_record_validates_the_convention():
    b = _FakeBenchmark()
    record(b, impl="fastseq", case="gemm", dtype=np.float32, flops=np.float64(2e6), n=128,
           agreement=1e-7, tolerance=1e-5)
    assert b.extra_info == {"impl": "fastseq", "case": "gemm", "dtype": "float32",
                            "flops": 2e6, "n": 128, "agreement": 1e-7, "tolerance": 1e-5}
    assert type(b.extra_info["flops"]) is float  # JSON-serialisable
    with pytest.raises(ValueError, match="impl"):
        record(_FakeBenchmark(), impl="jax", case="x", dtype="float64")
    with pytest.raises(ValueError, match="unknown"):
        record(_FakeBenchmark(), impl="reference", case="x", dtype="float64", speed=1)
    with pytest.raises(ValueError, match="agreement"):
        record(_FakeBenchmark(), impl="torch", case="x", dtype="float64")


def test_check_agreement():
    ref = np.array([1.0, -2.0, 4.0])
    assert relative_difference(ref + [0, 0, 4e-6], ref) == pytest.approx(1e-6)
    assert check_agreement((ref, ref), (ref, ref), 0.0) == 0.0
    with pytest.raises(AssertionError, match="exceeds"):
        check_agreement(ref * 1.01, ref, 1e-3)
    with pytest.raises(AssertionError, match="shape"):
        check_agreement(ref[:2], ref, 1e-3)


def _bench_entry(group, impl, median, **info):
    return {"group": group, "name": f"test_x[{impl}]", "params": {"impl": impl},
            "extra_info": {"impl": impl, "case": "lstm_forward", "dtype": "float32", **info},
            "stats": {"median": median, "rounds": 5}}


def test_report_ratios_sweeps_and_no_matplotlib(tmp_path, monkeypatch):
    entries = []
    for T, fs, ref, torch in [(8, 1.0e-3, 4.0e-3, 2.0e-3), (16, 2.0e-3, 8.0e-3, 3.0e-3),
                              (32, 4.0e-3, 1.6e-2, 5.0e-3)]:
        g = f"lstm_forward T={T}"
        entries += [_bench_entry(g, "fastseq", fs, T=T, B=4, flops=1e6 * T, agreement=1e-7,
                                 tolerance=1e-5),
                    _bench_entry(g, "reference", ref, T=T, B=4),
                    _bench_entry(g, "torch", torch, T=T, B=4, agreement=2e-7, tolerance=1e-5)]
    # A benchmark that ignores the convention still gets reported, and flagged.
    entries.append({"group": "other", "name": "test_other[fastseq]", "params": {},
                    "fullname": "bench_other.py::test_other[fastseq]", "extra_info": {},
                    "stats": {"median": 1e-3, "rounds": 3}})
    (tmp_path / "b.json").write_text(json.dumps({"benchmarks": entries}))
    peak = {"float32": {"gflops": 16.0, "n": 512, "by_size": {"512": 16.0}}}
    (tmp_path / "m.json").write_text(json.dumps({"cpu": "test cpu", "gemm_peak": peak,
                                                 "versions": {"numpy": "1"}}))
    rows = compute_ratios(load_rows(str(tmp_path / "b.json")), peak)
    by = {(r["group"], r["impl"]): r for r in rows}
    assert by[("lstm_forward T=8", "reference")]["ratio"] == pytest.approx(4.0)
    assert by[("lstm_forward T=16", "torch")]["ratio"] == pytest.approx(1.5)
    assert by[("lstm_forward T=32", "fastseq")]["gflops"] == pytest.approx(32e6 / 4e-3 / 1e9)
    assert by[("lstm_forward T=32", "fastseq")]["peak_fraction"] == pytest.approx(0.5)
    series = sweep_series(rows)
    assert set(series) == {("lstm_forward", "float32", "T")}
    assert series[("lstm_forward", "float32", "T")]["lines"]["torch"] == [
        (8, 2e-3), (16, 3e-3), (32, 5e-3)]

    import fastseq._cli.bench.report as report

    monkeypatch.setattr(report, "_have_matplotlib", lambda: False)
    summary = write_report(str(tmp_path), benchmark_json=str(tmp_path / "b.json"),
                           machine_json=str(tmp_path / "m.json"))
    text = (tmp_path / "report.md").read_text()
    assert "matplotlib is not installed" in text and summary["plots"] == []
    assert "4.00×" in text and "test cpu" in text
    assert summary["convention_problems"] == [
        "- `bench_other.py`: extra_info lacks agreement, case, dtype, impl"]
    assert not list(tmp_path.glob("*.png"))


# ---- the commands, quick forms -----------------------------------------------------------------
@pytest.mark.slow
def test_bench_quick(tmp_path):
    out = tmp_path / "report"
    # One file keeps the test short; the quick suite as a whole is what `fastseq bench --quick`
    # runs (README, Benchmarks).
    proc = _run(["bench", "--quick", "--out", str(out), "--files", "bench_gemm.py"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ("report.md", "summary.json", "benchmarks.json", "machine.json", "pytest.log"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    rows = summary["rows"]
    assert {r["impl"] for r in rows} >= {"fastseq", "reference"}
    for r in rows:
        assert r["median"] > 0 and r["ratio"] > 0
        if r["impl"] != "reference":
            assert r["agreement"] is not None and r["agreement"] <= r["tolerance"]
    for peak in summary["gemm_peak"].values():
        assert peak["gflops"] > 0
    assert all(r["gflops"] > 0 for r in rows if r["impl"] == "fastseq")
    text = (out / "report.md").read_text()
    assert "## Machine" in text and "GEMM peak" in text and "gemm" in text
    if HAVE_MPL:
        assert summary["plots"], "expected plots with matplotlib installed"
        for name in summary["plots"]:
            assert (out / name).stat().st_size > 1000
    if hasattr(fastseq, "ops") and hasattr(fastseq.ops, "cgls"):
        conv = summary["convergence"]
        assert conv and all(c["normal_residual"] < 1e-6 for c in conv if "ill" not in c["label"])


@pytest.mark.slow
def test_demo_quick(tmp_path):
    out = tmp_path / "demo"
    proc = _run(["demo", "--quick", "--out", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "[1/2]" in proc.stdout and "[2/2]" in proc.stdout
    result = json.loads((out / "demo.json").read_text())
    assert (out / "demo.txt").read_text().startswith("fastseq")

    lsq = {(r["design"].split()[0], r["solver"]): r for r in result["least_squares"]}
    # The NumPy reference recovers the exact answer on the well-conditioned design...
    assert lsq[("well", "numpy lstsq (SVD)")]["coef_error"] < 1e-10
    # ...and the textbook normal equations lose digits on the polynomial design (cond² eps).
    naive_poly = lsq[("polynomial", "numpy XᵀX + Cholesky")]
    assert "error" in naive_poly or naive_poly["coef_error"] > 1e-6
    if hasattr(fastseq, "LinearRegression"):
        assert lsq[("well", "Householder QR")]["coef_error"] < 1e-10
        assert lsq[("polynomial", "Householder QR")]["coef_error"] < 1e-5
        assert lsq[("well", "CGLS")]["normal_residual"] < 1e-8
        assert lsq[("sparse", "CGLS")]["coef_error"] < 1e-6
        assert lsq[("wide", "CGLS")]["normal_residual"] < 1e-8
    for r in result["least_squares"]:
        assert r["time"] >= 0

    seq = result["sequences"]
    assert abs(seq["chance"] - 0.5) < 0.08
    assert abs(seq["last_noun_accuracy"] - 0.5) < 0.1
    acc = {m["key"]: m["test_accuracy"] for m in seq["models"]}
    if hasattr(fastseq, "MLPClassifier"):
        assert acc["mlp"] < 0.65  # a window of the last tokens holds no information
    if hasattr(fastseq, "LSTMClassifier"):
        assert acc["lstm"] > 0.85
        gates = np.array(seq["forget_gates"])
        assert gates.shape[0] == len(seq["forget_gate_words"])
        assert np.all((gates >= 0) & (gates <= 1))
        if HAVE_MPL:
            assert (out / "lstm_forget_gates.png").stat().st_size > 1000
    if hasattr(fastseq, "RNNClassifier"):
        assert acc["rnn"] < 0.65
        sweep = {int(t): a for t, a in seq["length_sweep"]["rnn"].items()}
        assert sweep[min(sweep)] > 0.8  # the control: short dependencies are learnable
        if HAVE_MPL:
            assert (out / "agreement_vs_length.png").stat().st_size > 1000
