# Declarations shared by the Cython drivers: the C status codes of csrc/lib/fastseq.h.
cdef extern from "lib/fastseq.h" nogil:
    enum:
        FASTSEQ_OK
        FASTSEQ_ERR_NONFINITE
        FASTSEQ_ERR_SINGULAR
        FASTSEQ_ERR_ARGUMENT
        FASTSEQ_ERR_NOMEM
        FASTSEQ_ERR_NOT_CONVERGED
    const char *fastseq_status_message(int status)
