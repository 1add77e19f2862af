"""What fastseq needs to know of the BLAS it calls at run time (SciPy's OpenBLAS, through
``scipy.linalg.cython_blas``): which library it is and whether its small-matrix GEMM path
applies."""
import functools
import os

# OpenBLAS core types whose GEMM has the unpacked small-matrix path for m*n*k <= 100**3
# (kernel/x86_64/?gemm_small_kernel_permit_skylakex.c; Cooperlake and Sapphire Rapids use the
# SkylakeX kernels). On other cores (Haswell, Zen without AVX-512, ...) the packed path runs
# whatever the size, and splitting a product into small blocks would only make it slower.
SMALL_GEMM_CORES = {"skylakex", "cooperlake", "sapphirerapids"}
SMALL_GEMM_MNK = 100**3


@functools.cache
def scipy_openblas():
    """threadpoolctl's controller of the OpenBLAS that SciPy's ``cython_blas`` (hence fastseq)
    calls, or None if it cannot be told apart (found once per process)."""
    try:
        import scipy
        import threadpoolctl

        libs = [lc for lc in threadpoolctl.ThreadpoolController().lib_controllers
                if lc.internal_api == "openblas"]
        # SciPy's own copy (wheels: site-packages/scipy.libs/...), else the only OpenBLAS loaded
        scipy_dir = os.path.dirname(scipy.__file__)
        ours = [lc for lc in libs if str(lc.filepath).startswith(scipy_dir)]
        return ours[0] if len(ours) == 1 else (libs[0] if len(libs) == 1 else None)
    except Exception:  # no threadpoolctl / unexpected library layout: treat as unknown BLAS
        return None


def gemm_block_mnk():
    """m*n*k budget for row-blocking the training GEMMs (see
    ``fastseq.neural_network._mlp_fast.train_epoch``), 0 for none.

    Blocking pays only where OpenBLAS has the small-matrix path (core type as reported by
    threadpoolctl, which honours ``OPENBLAS_CORETYPE``) and runs one thread: that path is
    single-threaded, while one big product is split over all of OpenBLAS's threads."""
    lib = scipy_openblas()
    if lib is None or str(getattr(lib, "architecture", "")).lower() not in SMALL_GEMM_CORES:
        return 0
    return SMALL_GEMM_MNK if lib.get_num_threads() == 1 else 0
