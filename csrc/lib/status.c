#include "lib/fastseq.h"

const char *fs_status_message(int status)
{
    switch (status) {
    case FS_OK: return "ok";
    case FS_ERR_NONFINITE: return "non-finite value (NaN or inf) encountered";
    case FS_ERR_SINGULAR: return "matrix is singular or not positive definite";
    case FS_ERR_ARGUMENT: return "argument out of range";
    case FS_ERR_NOMEM: return "out of memory allocating a workspace";
    case FS_ERR_NOT_CONVERGED: return "iteration did not converge";
    default: return "unknown fastseq status";
    }
}
