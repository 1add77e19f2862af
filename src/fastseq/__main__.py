"""Command line: ``fastseq demo`` and ``fastseq bench`` (also ``python -m fastseq ...``)."""
import argparse
import sys


def _parser():
    parser = argparse.ArgumentParser(
        prog="fastseq",
        description="fastseq: fast CPU least squares, MLPs, RNNs and LSTMs.")
    sub = parser.add_subparsers(dest="command", metavar="{demo,bench}")
    demo = sub.add_parser(
        "demo", help="least squares solvers side by side, then MLP vs RNN vs LSTM on a "
                     "long-range agreement task (generated data)")
    demo.add_argument("--quick", action="store_true", help="smaller problems (~20 s)")
    demo.add_argument("--out", default="fastseq-demo", metavar="DIR",
                      help="output directory for plots and results (default: ./fastseq-demo)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    bench = sub.add_parser(
        "bench", help="run the benchmark suite (pytest-benchmark) and write a Markdown report")
    bench.add_argument("--quick", action="store_true",
                       help="small sizes and few rounds (under two minutes)")
    bench.add_argument("--out", default="fastseq-bench", metavar="DIR",
                       help="output directory for the report (default: ./fastseq-bench)")
    bench.add_argument("-k", dest="keyword", default=None, metavar="EXPR",
                       help="only benchmarks matching this pytest -k expression")
    bench.add_argument("--threads", type=int, default=None, metavar="N",
                       help="BLAS/OpenMP threads in the benchmark processes (sets "
                            "OPENBLAS/OMP/MKL_NUM_THREADS; default: the libraries' own)")
    bench.add_argument("--files", default="bench_*.py", metavar="GLOB",
                       help="benchmark files to run (default: bench_*.py, the whole suite)")
    return parser


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "demo":
        from fastseq._cli.demo import run_demo

        return run_demo(args.out, quick=args.quick, seed=args.seed)
    if args.command == "bench":
        from fastseq._cli.bench.run import run_bench

        return run_bench(args.out, quick=args.quick, keyword=args.keyword, files=args.files,
                         threads=args.threads)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
