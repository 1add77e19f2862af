"""Run bench/bench_recurrent.py and print one table (medians; ratio = fastseq / torch).

    python bench/recurrent_table.py [extra pytest args, e.g. -k "lstm and float32"]

OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are removed from the environment of the run, as for every
fastseq benchmark. `--json PATH` re-prints the table from an earlier run's JSON without running.
"""
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))


def run(extra):
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    cmd = [sys.executable, "-m", "pytest", os.path.join(HERE, "bench_recurrent.py"),
           "--benchmark-only", f"--benchmark-json={path}", "-q", "-p", "no:cacheprovider",
           *extra]
    subprocess.run(cmd, env=env, check=True)
    return path


def table(path):
    with open(path) as f:
        data = json.load(f)
    groups = defaultdict(dict)
    for b in data["benchmarks"]:
        groups[b["group"]][b["extra_info"]["impl"]] = b
    print(data.get("machine_info", {}).get("cpu", {}).get("brand_raw", ""))
    rows = []
    hdr = (f"{'kind':5} {'T,B,D,H':>16} {'dtype':7} {'pass':7} {'fastseq ms':>10} {'torch ms':>9} "
           f"{'ratio':>6} {'ref ms':>9} {'x ref':>6} {'GFLOP/s':>8} {'%peak':>6}")
    print(hdr)
    print("-" * len(hdr))
    for g, impls in groups.items():
        if "fastseq" not in impls or "ragged-vs-padded" in g:
            continue
        fs = impls["fastseq"]
        info = fs["extra_info"]
        ms = fs["stats"]["median"] * 1e3
        gf = info["flops"] / fs["stats"]["median"] / 1e9
        t = impls.get("torch")
        r = impls.get("reference")
        tms = t["stats"]["median"] * 1e3 if t else float("nan")
        rms = r["stats"]["median"] * 1e3 if r else float("nan")
        rows.append(f"{info['kind']:5} {','.join(map(str, info['shape'])):>16} {info['dtype']:7} "
                    f"{info['pas']:7} {ms:10.2f} {tms:9.2f} {ms / tms:6.2f} {rms:9.1f} "
                    f"{rms / ms:6.1f} {gf:8.1f} {100 * gf / info['gemm_peak']:5.0f}%")
    print("\n".join(rows))
    ragged = defaultdict(dict)  # (dtype, pass) -> {"ragged": bench, "padded": bench}
    for b in data["benchmarks"]:
        info = b["extra_info"]
        if "ragged-vs-padded" in b["group"] and info["impl"] == "fastseq":
            ragged[(info["dtype"], info["pas"])][info["batch"]] = b
    if ragged:
        print("\nragged (lengths spread over [T/4, T]) vs the same batch padded to T:")
        for (dt, pas), pair in sorted(ragged.items()):
            if len(pair) < 2:
                continue
            rg, pd = pair["ragged"], pair["padded"]
            frac = rg["extra_info"]["length_fraction"]
            label = f"{','.join(map(str, rg['extra_info']['shape']))} {dt} {pas}"
            print(f"  {label:28} ragged {rg['stats']['median'] * 1e3:8.2f} ms  padded "
                  f"{pd['stats']['median'] * 1e3:8.2f} ms  speed-up "
                  f"{pd['stats']['median'] / rg['stats']['median']:4.2f}x "
                  f"(sum(lengths)/(B*T) = {frac:.2f}, ideal {1 / frac:.2f}x)")
    for name, peak in sorted({(i["extra_info"]["dtype"], i["extra_info"]["gemm_peak"])
                              for i in data["benchmarks"]}):
        print(f"GEMM peak ({name}, 1024^2, fastseq._lib._gemm.gemm, this run): {peak:.1f} GFLOP/s")


if __name__ == "__main__":
    args = sys.argv[1:]
    import threadpoolctl

    for info in threadpoolctl.threadpool_info():
        print(f"{info.get('user_api')}: {info.get('internal_api')} {info.get('version')} "
              f"({info.get('architecture')}, {info.get('num_threads')} threads) "
              f"{os.path.basename(info.get('filepath', ''))}")
    if args[:1] == ["--json"]:
        table(args[1])
    else:
        table(run(args))
