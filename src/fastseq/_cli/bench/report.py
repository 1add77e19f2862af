"""Turn a benchmark run (pytest-benchmark JSON + machine JSON + convergence JSON) into a report.

Writes ``report.md`` (Markdown tables), ``summary.json`` (the same numbers, machine-readable) and,
when matplotlib is installed, PNG plots: time against each size that varies (sequence length T,
hidden size H, batch B, ...) per case, and CGLS convergence curves.

Ratios are ``time(other) / time(fastseq)`` from medians measured side by side in one run:
above 1 means fastseq is faster.
"""
import json
import math
import os
from collections import Counter, defaultdict

from fastseq._cli.bench import IMPLS, SIZE_KEYS

_IMPL_ORDER = {name: i for i, name in enumerate(IMPLS)}


def _have_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _infer_impl(bench):
    params = bench.get("params") or {}
    if params.get("impl") in IMPLS:
        return params["impl"]
    name = bench.get("name", "").lower()
    for impl in ("torch", "sklearn", "scipy", "reference", "numpy"):
        if impl in name:
            return impl
    return "fastseq"


def load_rows(benchmark_json):
    """One row per benchmark: group, case, dtype, impl, sizes, median seconds and metadata."""
    with open(benchmark_json, encoding="utf-8") as f:
        data = json.load(f)
    rows = []
    for bench in data.get("benchmarks", []):
        info = dict(bench.get("extra_info") or {})
        params = bench.get("params") or {}
        impl = info.get("impl") or _infer_impl(bench)
        group = bench.get("group") or bench.get("name")
        sizes = {k: info[k] for k in SIZE_KEYS if isinstance(info.get(k), (int, float))}
        for k in SIZE_KEYS:  # fall back to parametrize names
            if k not in sizes and isinstance(params.get(k), (int, float)):
                sizes[k] = params[k]
        missing = [k for k in ("impl", "case", "dtype") if k not in info]
        if impl != "reference" and "agreement" not in info:
            missing.append("agreement")
        rows.append({
            "group": group,
            "name": bench.get("name"),
            "file": (bench.get("fullname") or "").split("::")[0],
            "missing_keys": missing,
            "case": info.get("case") or bench.get("name", "").split("[")[0],
            "dtype": info.get("dtype") or str(params.get("dtype", "")),
            "impl": impl,
            "sizes": sizes,
            "median": bench["stats"]["median"],
            "rounds": bench["stats"]["rounds"],
            "flops": info.get("flops"),
            "iterations": info.get("iterations"),
            "residual": info.get("residual"),
            "agreement": info.get("agreement"),
            "tolerance": info.get("tolerance"),
        })
    return rows


def _first_per_impl(rows):
    """{(group, impl): row}: the first benchmark of each implementation in a group (the
    convention allows one; duplicates are reported by :func:`convention_problems`)."""
    first = {}
    for row in rows:
        first.setdefault((row["group"], row["impl"]), row)
    return first


def convention_problems(rows):
    """Lines describing benchmarks that do not follow bench/README.md's convention."""
    lines = []
    by_file = defaultdict(set)
    for row in rows:
        if row["missing_keys"]:
            by_file[row["file"] or row["name"].split("[")[0]].update(row["missing_keys"])
    for name, keys in sorted(by_file.items()):
        lines.append(f"- `{name}`: extra_info lacks {', '.join(sorted(keys))}")
    counts = Counter((row["group"], row["impl"]) for row in rows)
    for (group, impl), n in sorted(counts.items()):
        if n > 1:
            lines.append(f"- group `{group}` has {n} `{impl}` benchmarks (one per impl per group); "
                         f"ratios use the first")
    return lines


def compute_ratios(rows, peak):
    """Add ``ratio`` (time / fastseq's time in the same group), ``gflops`` and ``peak_fraction``."""
    fastseq_time = {g: r["median"] for (g, impl), r in _first_per_impl(rows).items()
                    if impl == "fastseq"}
    for row in rows:
        base = fastseq_time.get(row["group"])
        row["ratio"] = row["median"] / base if base else None
        row["gflops"] = (row["flops"] / row["median"] / 1e9
                         if row["flops"] and row["median"] > 0 else None)
        p = (peak or {}).get(row["dtype"], {}).get("gflops")
        row["peak_fraction"] = row["gflops"] / p if row["gflops"] and p else None
    return rows


def _fmt_time(seconds):
    if seconds is None:
        return "–"
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def _fmt(x, spec=".3g"):
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _sizes_label(sizes):
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in sizes.items()) or "–"


def case_tables(rows):
    """Markdown table per (case, dtype): groups as rows, implementations as column pairs."""
    by_case = defaultdict(list)
    for row in rows:
        by_case[(row["case"], row["dtype"])].append(row)
    out = []
    for (case, dtype), case_rows in sorted(by_case.items()):
        impls = sorted({r["impl"] for r in case_rows}, key=lambda i: _IMPL_ORDER.get(i, 99))
        others = [i for i in impls if i != "fastseq"]
        groups = defaultdict(dict)
        order = []
        for r in case_rows:
            if r["group"] not in groups:
                order.append(r["group"])
            groups[r["group"]].setdefault(r["impl"], r)  # first per impl, as compute_ratios
        header = ["sizes", "fastseq"] + [f"{i} (×)" for i in others]
        has_flops = any(r["flops"] for r in case_rows)
        has_iter = any(r["iterations"] is not None for r in case_rows)
        if has_flops:
            header += ["GFLOP/s", "% GEMM peak"]
        if has_iter:
            header += ["iterations", "residual"]
        header += ["max rel. diff (tol)"]
        lines = [f"#### `{case}` ({dtype})", "", "| " + " | ".join(header) + " |",
                 "|" + "---|" * len(header)]
        for g in order:
            entries = groups[g]
            fs = entries.get("fastseq")
            any_row = next(iter(entries.values()))
            cells = [_sizes_label(any_row["sizes"]) if any_row["sizes"] else g,
                     _fmt_time(fs["median"]) if fs else "–"]
            for i in others:
                r = entries.get(i)
                if r is None:
                    cells.append("–")
                else:
                    ratio = f" ({r['ratio']:.2f}×)" if r["ratio"] else ""
                    cells.append(_fmt_time(r["median"]) + ratio)
            if has_flops:
                cells += [_fmt(fs["gflops"], ".2f") if fs else "–",
                          _fmt(100 * fs["peak_fraction"], ".0f")
                          if fs and fs["peak_fraction"] else "–"]
            if has_iter:
                cells += [str(fs["iterations"]) if fs and fs["iterations"] is not None else "–",
                          _fmt(fs["residual"], ".2e") if fs else "–"]
            diffs = [r for r in entries.values() if r["agreement"] is not None]
            if diffs:
                worst = max(diffs, key=lambda r: r["agreement"])
                cells.append(f"{worst['agreement']:.1e} ({_fmt(worst['tolerance'], '.0e')})")
            else:
                cells.append("–")
            lines.append("| " + " | ".join(cells) + " |")
        out.append("\n".join(lines))
    return out


def sweep_series(rows):
    """For each case, dtype and size key that varies: {impl: [(value, median), ...]} with the
    other sizes held at their most common combination."""
    series = {}
    by_case = defaultdict(list)
    for row in rows:
        by_case[(row["case"], row["dtype"])].append(row)
    for (case, dtype), case_rows in by_case.items():
        for key in SIZE_KEYS:
            values = {r["sizes"].get(key) for r in case_rows if key in r["sizes"]}
            if len(values) < 2:
                continue
            rest = Counter(tuple(sorted((k, v) for k, v in r["sizes"].items() if k != key))
                           for r in case_rows if key in r["sizes"])
            base = rest.most_common(1)[0][0]
            lines = defaultdict(list)
            for r in case_rows:
                if key in r["sizes"] and tuple(sorted((k, v) for k, v in r["sizes"].items()
                                                      if k != key)) == base:
                    lines[r["impl"]].append((r["sizes"][key], r["median"]))
            if any(len(v) >= 2 for v in lines.values()):
                series[(case, dtype, key)] = {"fixed": dict(base),
                                              "lines": {i: sorted(v) for i, v in lines.items()}}
    return series


_KEY_NAMES = {"T": "sequence length T", "B": "batch size B", "H": "hidden size H",
              "D": "input features D", "n": "samples n", "p": "features p"}


def plot_sweeps(series, out_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    for (case, dtype, key), s in sorted(series.items()):
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for impl, points in sorted(s["lines"].items(), key=lambda kv: _IMPL_ORDER.get(kv[0], 99)):
            xs, ys = zip(*points)
            ax.plot(xs, [y * 1e3 for y in ys], marker="o", label=impl)
        ax.set_xlabel(_KEY_NAMES.get(key, key))
        ax.set_ylabel("median time (ms)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        fixed = _sizes_label(s["fixed"])
        ax.set_title(f"{case} ({dtype})" + (f"\n{fixed}" if fixed != "–" else ""), fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        name = f"sweep_{_slug(case)}_{dtype}_{key}.png"
        fig.savefig(os.path.join(out_dir, name), dpi=100)
        plt.close(fig)
        files.append((case, dtype, key, name))
    return files


def _slug(text):
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")


def plot_convergence(curves, out_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for c in curves:
        hist = [h for h in c["history"] if h is not None and h > 0]
        if hist:
            ax.semilogy(range(len(hist)), [h / hist[0] for h in hist], label=c["label"])
    ax.set_xlabel("iteration")
    ax.set_ylabel("‖Aᵀr‖ / ‖Aᵀb‖  (relative normal-equation residual)")
    ax.set_title("CGLS convergence (fastseq.ops.cgls)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    name = "cgls_convergence.png"
    fig.savefig(os.path.join(out_dir, name), dpi=100)
    plt.close(fig)
    return name


def write_report(out_dir, *, benchmark_json, machine_json, convergence_json=None,
                 pytest_summary="", command="fastseq bench", quick=False):
    """Write report.md and summary.json (and PNGs when matplotlib is installed) into out_dir."""
    with open(machine_json, encoding="utf-8") as f:
        machine = json.load(f)
    rows = load_rows(benchmark_json) if os.path.exists(benchmark_json) else []
    peak = machine.get("gemm_peak", {})
    compute_ratios(rows, peak)
    curves = []
    convergence_note = None
    if convergence_json and os.path.exists(convergence_json):
        with open(convergence_json, encoding="utf-8") as f:
            conv = json.load(f)
        curves = conv.get("curves", [])
        convergence_note = conv.get("note")
    plots = _have_matplotlib()

    md = ["# fastseq benchmark report", "",
          f"Command: `{command}`{' (quick mode: small sizes, few rounds)' if quick else ''}  ",
          f"pytest: {pytest_summary or 'no summary'}", "",
          "Times are medians of pytest-benchmark rounds; every ratio `(×)` is "
          "time(other) / time(fastseq) measured side by side in this run — above 1 means fastseq "
          "is faster. Before timing, each implementation's result was checked against the NumPy "
          "reference: the last column is the largest relative difference found and the "
          "tolerance it was asserted against.", "",
          "## Machine", "",
          f"- CPU: {machine.get('cpu')} — {machine.get('logical_cpus')} logical CPUs "
          f"({machine.get('affinity_cpus')} usable)",
          f"- {machine.get('platform')}, Python {machine.get('python')}",
          "- versions: " + ", ".join(f"{k} {v}" for k, v in machine.get("versions", {}).items()
                                     if v is not None),
          "- not installed: " + (", ".join(k for k, v in machine.get("versions", {}).items()
                                           if v is None) or "none")]
    for pool in machine.get("threadpools", []):
        md.append(f"- {pool.get('user_api')}: {pool.get('internal_api')} {pool.get('version')} "
                  f"({pool.get('architecture')}, {pool.get('num_threads')} threads) "
                  f"`{os.path.basename(pool.get('filepath') or '')}`")
    if machine.get("env"):
        md.append("- environment: " + ", ".join(f"{k}={v}" for k, v in machine["env"].items()))
    md += ["", "GEMM peak of fastseq's BLAS door (`fastseq._lib._gemm.gemm`, square, best size, "
           "measured in this run):", ""]
    md += ["| dtype | GFLOP/s | at n | by size |", "|---|---|---|---|"]
    for dtype, p in peak.items():
        by = ", ".join(f"{n}: {g:.1f}" for n, g in p.get("by_size", {}).items())
        md.append(f"| {dtype} | {p['gflops']:.2f} | {p['n']} | {by} |")

    over = [r for r in rows if r["peak_fraction"] and r["peak_fraction"] > 1.0]
    if over:
        md += ["", f"**Note:** {len(over)} benchmark(s) ran faster than this GEMM peak, so the "
               "machine was busier (or the BLAS thread pool colder) while the peak was measured "
               "than during the suite: read `% GEMM peak` in this run as unreliable."]
    md += ["", "## Results", ""]
    if rows:
        md += ["\n\n".join(case_tables(rows)), ""]
    else:
        md += ["No benchmark results (see pytest.log).", ""]

    series = sweep_series(rows)
    sweep_files = []
    conv_file = None
    md += ["## Plots", ""]
    if not plots:
        md += ["matplotlib is not installed, so this report has no pictures "
               "(`pip install \".[plot]\"` from the checkout adds them).", ""]
    else:
        sweep_files = plot_sweeps(series, out_dir)
        if curves:
            conv_file = plot_convergence(curves, out_dir)
        for case, dtype, key, name in sweep_files:
            md += [f"![{case} {dtype} vs {key}]({name})", ""]
        if not sweep_files:
            md += ["No size sweeps in these results (a case needs >= 2 values of T, B, H, D, n "
                   "or p with the other sizes fixed).", ""]

    md += ["## CGLS convergence", ""]
    if curves:
        if conv_file:
            md += [f"![CGLS convergence]({conv_file})", ""]
        md += ["| design | n × p | iterations | stop reason | relative coef error | "
               "relative normal-eq residual | time |", "|---|---|---|---|---|---|---|"]
        for c in curves:
            md.append(f"| {c['label']} | {c['shape'][0]} × {c['shape'][1]} | {c['n_iter']} | "
                      f"{c['message']} | {c['coef_error']:.2e} | {c['normal_residual']:.2e} | "
                      f"{_fmt_time(c['time'])} |")
        md.append("")
    else:
        md += [convergence_note or "No convergence data.", ""]

    problems = convention_problems(rows)
    if problems:
        md += ["## Benchmarks not following the metadata convention (bench/README.md)", "",
               *problems, ""]

    with open(os.path.join(out_dir, "report.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(md) + "\n")
    summary = {"quick": quick, "pytest": pytest_summary, "gemm_peak": peak, "rows": rows,
               "convention_problems": problems,
               "plots": [name for *_, name in sweep_files] + ([conv_file] if conv_file else []),
               "matplotlib": plots, "convergence": curves}
    with open(os.path.join(out_dir, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1, default=str)
    return summary
