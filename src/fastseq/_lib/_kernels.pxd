# Declarations shared by the Cython drivers: the C status codes of csrc/lib/fastseq.h.
cdef extern from "lib/fastseq.h" nogil:
    enum:
        FS_OK
        FS_ERR_NONFINITE
        FS_ERR_SINGULAR
        FS_ERR_ARGUMENT
        FS_ERR_NOMEM
        FS_ERR_NOT_CONVERGED
    const char *fs_status_message(int status)
