"""Functional API: the compiled kernels behind fastseq's estimators, callable directly.

Each area adds its functions in its own block below, imported from its private module.
"""

# ---- least squares: conjugate-gradient least squares (CGLS) --------------------------------
from fastseq._cgls_solver import CGLSResult, cgls  # noqa: E402,F401
# ---- end CGLS -------------------------------------------------------------------------------
