"""Single-threaded CPU-time comparison of the recurrent kernels (fastseq vs torch vs reference).

On a shared machine wall-clock medians swing by 10x (other processes, spinning BLAS/OpenMP
workers); process CPU time with every library limited to ONE thread is a far steadier measure of
the work each implementation does. Complements bench/bench_recurrent.py (wall clock, 2 threads).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/recurrent_cputime.py [--quick]

--quick: the benchmark suite's quick shapes (FASTSEQ_BENCH_QUICK=1) and no reference timings.
"""
import os
import sys
import time

import numpy as np
import threadpoolctl

if "--quick" in sys.argv:  # before importing bench_recurrent: its shapes follow quick mode
    os.environ["FASTSEQ_BENCH_QUICK"] = "1"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_recurrent as br  # noqa: E402


def cpu_median(fn, budget=1.0, lo=3, hi=30):
    t0 = time.process_time()
    fn()
    dt = max(time.process_time() - t0, 1e-6)
    times = []
    for _ in range(int(min(hi, max(lo, budget / dt)))):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return float(np.median(times))


def main():
    quick = "--quick" in sys.argv
    if br.torch is not None:
        br.torch.set_num_threads(1)
    with threadpoolctl.threadpool_limits(1):
        peak = {}
        for dt, dtype in br.DTYPES.items():
            a = np.random.default_rng(0).standard_normal((1024, 1024)).astype(dtype)
            peak[dt] = 2 * 1024**3 / cpu_median(lambda a=a: br._gemm.gemm(a, a)) / 1e9
        print("GEMM peak, 1 thread (fastseq._lib._gemm.gemm 1024^2): "
              + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in peak.items()))
        print(f"{'kind':5} {'T,B,D,H':>16} {'dtype':7} {'pass':7} {'fastseq ms':>10} "
              f"{'torch ms':>9} {'ratio':>6} {'ref ms':>9} {'x ref':>6} {'GFLOP/s':>8} "
              f"{'%peak':>6}")
        for kind, shapes in (("lstm", br.LSTM_SHAPES), ("rnn", br.RNN_SHAPES)):
            for shape in shapes:
                for dt, dtype in br.DTYPES.items():
                    runners = br._runners(kind, *shape, dtype)
                    for k, pas in enumerate(("fwd", "fwd+bwd")):
                        br._check_agreement(kind, shape, dt, runners, pas)
                        fs = cpu_median(runners["fastseq"][k])
                        tt = cpu_median(runners["torch"][k]) if "torch" in runners else np.nan
                        rf = np.nan if quick else cpu_median(runners["reference"][k], 0.5, 1, 3)
                        gf = br._flops(kind, shape, pas) / fs / 1e9
                        print(f"{kind:5} {','.join(map(str, shape)):>16} {dt:7} {pas:7} "
                              f"{fs * 1e3:10.2f} {tt * 1e3:9.2f} {fs / tt:6.2f} {rf * 1e3:9.1f} "
                              f"{rf / fs:6.1f} {gf:8.1f} {100 * gf / peak[dt]:5.0f}%", flush=True)
        T, B, D, H = br.RAGGED_SHAPE
        lengths = np.linspace(T // 4, T, B).astype(int)
        for dt, dtype in br.DTYPES.items():
            rag = br._runners("lstm", T, B, D, H, dtype, lengths=lengths)["fastseq"]
            pad = br._runners("lstm", T, B, D, H, dtype)["fastseq"]
            for k, pas in enumerate(("fwd", "fwd+bwd")):
                r, p = cpu_median(rag[k]), cpu_median(pad[k])
                print(f"ragged vs padded {T},{B},{D},{H} {dt} {pas}: {r * 1e3:.1f} ms vs "
                      f"{p * 1e3:.1f} ms, speed-up {p / r:.2f}x (ideal "
                      f"{B * T / lengths.sum():.2f}x)", flush=True)


if __name__ == "__main__":
    main()
