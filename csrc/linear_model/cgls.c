/* CGLS fused normal-equation products (see cgls.h for the math).
 *
 * Why fused: CGLS needs A^T (A p) every iteration. Computed as two products it streams X from
 * memory twice (q = X p, then s = X^T q); for a matrix far larger than the caches that is the whole
 * cost. Here each row (dense: a group of 4 rows) is dotted with V and immediately scattered back
 * into T while it is still in L1/L2, so X crosses the memory bus once per iteration.
 *
 * Templates: one body per layout in cgls_impl.h, included for float/double data (and int32/int64
 * CSR indices, so scipy's index arrays are used as they are, never copied).
 */
#include <string.h>

#include "lib/dispatch.h"
#include "linear_model/cgls.h"

#ifdef _OPENMP
#include <omp.h>
#endif

int fs_cgls_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* Thread-slice layout inside `work`: thread t > 0 owns T_t = work + (t - 1) * p * k.
 * Per-thread scalars (sumsq, usum: k each) and the row buffer e (k) live after all slices:
 * scal_t = work + (nthreads - 1) * p * k + t * 3 * k.  The driver sizes work accordingly:
 * (nthreads - 1) * p * k + nthreads * 3 * k doubles. */
struct fs_cgls_slice {
    ptrdiff_t i0, i1;        /* the thread's rows [i0, i1) of the n */
    double *Tt;              /* its slice of T (thread 0 writes T itself), zeroed */
    double *ssq, *usm, *e;   /* its sumsq and usum (zeroed) and its row buffer, k each */
};

FS_INLINE struct fs_cgls_slice fs_cgls_thread_slice(int tid, int nt, ptrdiff_t n, ptrdiff_t p,
                                                    ptrdiff_t k, double *T, int nthreads,
                                                    double *work)
{
    struct fs_cgls_slice s;
    double *scal = work + (ptrdiff_t)(nthreads - 1) * p * k + (ptrdiff_t)tid * 3 * k;
    s.i0 = n * tid / nt;
    s.i1 = n * (tid + 1) / nt;
    s.Tt = tid == 0 ? T : work + (ptrdiff_t)(tid - 1) * p * k;
    s.ssq = scal;
    s.usm = scal + k;
    s.e = scal + 2 * k;
    memset(s.Tt, 0, sizeof(double) * (size_t)(p * k));
    for (ptrdiff_t l = 0; l < k; l++) {
        s.ssq[l] = 0.0;
        s.usm[l] = 0.0;
    }
    return s;
}

/* `nthreads` is the layout the slices were placed with (see the bodies in cgls_impl.h);
 * `team` <= nthreads is the number of threads OpenMP actually started (fewer under
 * OMP_THREAD_LIMIT, nesting or OMP_DYNAMIC): only their slices were written, but they sit at the
 * nthreads layout. */
static void cgls_reduce(ptrdiff_t p, ptrdiff_t k, int nthreads, int team, double *T,
                        double *sumsq, double *usum, double *work)
{
    const ptrdiff_t pk = p * k;
    double *scal = work + (ptrdiff_t)(nthreads - 1) * pk;
    for (ptrdiff_t l = 0; l < k; l++) {
        sumsq[l] = 0.0;
        usum[l] = 0.0;
    }
    for (int t = 0; t < team; t++) {
        for (ptrdiff_t l = 0; l < k; l++) {
            sumsq[l] += scal[t * 3 * k + l];
            usum[l] += scal[t * 3 * k + k + l];
        }
    }
    /* T += sum_t T_t, parallel over entries (the slices are p * k, tiny next to X). */
    if (team > 1) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(team) schedule(static)
#endif
        for (ptrdiff_t j = 0; j < pk; j++) {
            double acc = T[j];
            for (int t = 1; t < team; t++) {
                acc += work[(ptrdiff_t)(t - 1) * pk + j];
            }
            T[j] = acc;
        }
    }
}

/* Inside the per-thread bodies: OpenMP SIMD reductions where OpenMP is on (no pragma at all
 * without it, so that -Wall stays quiet about unknown pragmas). */
#ifdef _OPENMP
#define FS_OMP_SIMD_REDUCE4 _Pragma("omp simd reduction(+:e0,e1,e2,e3)")
#define FS_OMP_SIMD_REDUCE1 _Pragma("omp simd reduction(+:e0)")
#define FS_OMP_SIMD _Pragma("omp simd")
#else
#define FS_OMP_SIMD_REDUCE4
#define FS_OMP_SIMD_REDUCE1
#define FS_OMP_SIMD
#endif

#define DATA_T double
#define SFX(name) name##_d
#include "linear_model/cgls_impl.h"
#define DATA_T float
#define SFX(name) name##_f
#include "linear_model/cgls_impl.h"

#define DATA_T double
#define INDEX_T int32_t
#define SFX(name) name##_i32_d
#include "linear_model/cgls_impl.h"
#define DATA_T double
#define INDEX_T int64_t
#define SFX(name) name##_i64_d
#include "linear_model/cgls_impl.h"
#define DATA_T float
#define INDEX_T int32_t
#define SFX(name) name##_i32_f
#include "linear_model/cgls_impl.h"
#define DATA_T float
#define INDEX_T int64_t
#define SFX(name) name##_i64_f
#include "linear_model/cgls_impl.h"
