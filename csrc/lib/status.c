#include "lib/fastseq.h"

const char *fastseq_status_message(int status)
{
    switch (status) {
    case FASTSEQ_OK: return "ok";
    case FASTSEQ_ERR_NONFINITE: return "non-finite value (NaN or inf) encountered";
    case FASTSEQ_ERR_SINGULAR: return "matrix is singular or not positive definite";
    case FASTSEQ_ERR_ARGUMENT: return "argument out of range";
    case FASTSEQ_ERR_NOMEM: return "out of memory allocating a workspace";
    case FASTSEQ_ERR_NOT_CONVERGED: return "iteration did not converge";
    default: return "unknown fastseq status";
    }
}
