/* fastseq C kernels: shared definitions.
 *
 * Layer 1 of the architecture (see ARCHITECTURE.md): plain C99, no Python headers, no globals,
 * no allocation inside hot loops. Every fallible function returns an int status below; callers in
 * Cython turn a non-zero status into a Python exception after re-acquiring the GIL.
 * Sizes and indices are ptrdiff_t so that B*T*4H beyond 2^31 cannot overflow.
 */
#ifndef FS_H
#define FS_H

#include <stddef.h>

enum fs_status {
    FS_OK = 0,
    FS_ERR_NONFINITE = 1,   /* a NaN or inf appeared (input, loss or gradient) */
    FS_ERR_SINGULAR = 2,    /* a factorization met a zero/negative pivot */
    FS_ERR_ARGUMENT = 3,    /* an argument is out of range (shape, index, length) */
    FS_ERR_NOMEM = 4,       /* workspace allocation failed (drivers only) */
    FS_ERR_NOT_CONVERGED = 5
};

/* Human-readable text for a status code (static storage, never NULL). */
const char *fs_status_message(int status);

#endif /* FS_H */
