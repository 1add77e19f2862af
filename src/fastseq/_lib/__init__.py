"""Shared plumbing of every area: BLAS and kernel declarations (``_blas.pxd``, ``_kernels.pxd``),
C status codes (``_status``), input validation, the workspace pool and the GEMM probe."""
