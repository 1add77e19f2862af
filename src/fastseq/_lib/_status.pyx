"""The C status codes of ``csrc/lib/fastseq.h`` for the Python layer: cimported from the header,
never retyped as integers."""
from fastseq._lib._kernels cimport (
    FS_OK, FS_ERR_NONFINITE, FS_ERR_SINGULAR, FS_ERR_ARGUMENT, FS_ERR_NOMEM, FS_ERR_NOT_CONVERGED,
    fs_status_message)

OK = FS_OK
ERR_NONFINITE = FS_ERR_NONFINITE
ERR_SINGULAR = FS_ERR_SINGULAR
ERR_ARGUMENT = FS_ERR_ARGUMENT
ERR_NOMEM = FS_ERR_NOMEM
ERR_NOT_CONVERGED = FS_ERR_NOT_CONVERGED


def status_message(int status):
    """Text of a C status code (``'unknown fastseq status'`` for a code the C layer does not
    define)."""
    return fs_status_message(status).decode()
