"""Row-major GEMM through the same BLAS door as every fastseq kernel.

Used by the benchmarks to measure the GEMM peak (GFLOP/s) of the BLAS that fastseq actually calls
(SciPy's), in the same run as the kernels it is compared with.
"""
from cython cimport floating
from fastseq._lib._blas cimport _gemm_rm

import numpy as np


def _gemm_into(const floating[:, ::1] a, const floating[:, ::1] b, floating[:, ::1] c):
    cdef int m = a.shape[0], k = a.shape[1], n = b.shape[1]
    with nogil:
        # c = a @ b
        _gemm_rm(False, False, m, n, k, <floating>1.0, &a[0, 0], k, &b[0, 0], n,
                 <floating>0.0, &c[0, 0], n)


def gemm(a, b):
    """Return ``a @ b`` for C-contiguous float32/float64 matrices of one dtype (no validation
    beyond shapes: a benchmark helper, not public API)."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0] or a.dtype != b.dtype:
        raise ValueError("gemm needs a (m, k) and b (k, n) of one dtype")
    if min(a.shape[0], a.shape[1], b.shape[1]) == 0:
        raise ValueError("gemm needs non-empty matrices")
    a = np.ascontiguousarray(a)
    b = np.ascontiguousarray(b)
    c = np.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
    _gemm_into(a, b, c)
    return c
