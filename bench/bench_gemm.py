"""GEMM through fastseq's BLAS door (``fastseq._lib._gemm.gemm``, SciPy's BLAS) vs NumPy's matmul
and PyTorch: the yardstick every other benchmark's GFLOP/s is read against.

Also the worked example of the metadata convention (see bench/README.md and fastseq._cli.bench).
"""
import numpy as np
import pytest

from fastseq._cli.bench import check_agreement, pick, record
from fastseq._lib._gemm import gemm

SIZES = pick(full=[128, 256, 512, 1024], quick=[64, 128])
DTYPES = ["float64", "float32"]
TOL = {"float64": 1e-12, "float32": 1e-5}


def _operands(n, dtype):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((n, n)).astype(dtype), rng.standard_normal((n, n)).astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("impl", ["fastseq", "reference", "torch"])
def test_gemm(benchmark, impl, n, dtype):
    a, b = _operands(n, dtype)
    reference = a @ b  # NumPy's matmul is the reference: its own BLAS (may differ from SciPy's)
    if impl == "fastseq":
        fn, args = gemm, (a, b)
    elif impl == "reference":
        fn, args = np.matmul, (a, b)
    else:
        torch = pytest.importorskip("torch")
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        fn, args = torch.mm, (ta, tb)
    extra = {}
    if impl != "reference":
        result = np.asarray(fn(*args))
        extra = dict(agreement=check_agreement(result, reference, TOL[dtype] * np.sqrt(n)),
                     tolerance=TOL[dtype] * np.sqrt(n))
    benchmark.group = f"gemm n={n} {dtype}"
    record(benchmark, impl=impl, case="gemm", dtype=dtype, flops=2.0 * n ** 3, n=n, **extra)
    benchmark(fn, *args)
