"""The C status codes of ``csrc/lib/fastseq.h`` for the Python layer: cimported from the header,
never retyped as integers."""
from fastseq._lib._kernels cimport (
    FASTSEQ_OK, FASTSEQ_ERR_NONFINITE, FASTSEQ_ERR_SINGULAR, FASTSEQ_ERR_ARGUMENT,
    FASTSEQ_ERR_NOMEM, FASTSEQ_ERR_NOT_CONVERGED, fastseq_status_message)

OK = FASTSEQ_OK
ERR_NONFINITE = FASTSEQ_ERR_NONFINITE
ERR_SINGULAR = FASTSEQ_ERR_SINGULAR
ERR_ARGUMENT = FASTSEQ_ERR_ARGUMENT
ERR_NOMEM = FASTSEQ_ERR_NOMEM
ERR_NOT_CONVERGED = FASTSEQ_ERR_NOT_CONVERGED


def status_message(int status):
    """Text of a C status code (``'unknown fastseq status'`` for a code the C layer does not
    define)."""
    return fastseq_status_message(status).decode()
