/* CGLS fused normal-equation products (see cgls.h for the math).
 *
 * Why fused: CGLS needs A^T (A p) every iteration. Computed as two products it streams X from
 * memory twice (q = X p, then s = X^T q); for a matrix far larger than the caches that is the whole
 * cost. Here each row (dense: a group of 4 rows) is dotted with V and immediately scattered back
 * into T while it is still in L1/L2, so X crosses the memory bus once per iteration.
 *
 * Templates: one macro body per layout, instantiated for float/double data (and int32/int64
 * CSR indices, so scipy's index arrays are used as they are, never copied).
 */
#include "linear_model/cgls.h"

/* The portable build targets baseline x86-64 (SSE2). The fused dense loop is compute-heavy
 * enough (two FMAs per element read) that AVX2/AVX-512 matter, so GCC builds clones for them
 * and picks one at load time (ifunc); other compilers/targets get the baseline only. The clones
 * name ISA levels (x86-64-v4 = AVX-512, v3 = AVX2+FMA), which the resolver tests by CPU feature:
 * "arch=skylake-avx512"/"arch=haswell" are tested by CPU model, so an AMD CPU ran the SSE2
 * baseline. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(FS_NO_CLONES)
#define FS_CGLS_CLONES \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FS_CGLS_CLONES
#endif

#include <string.h>

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
/* `nthreads` is the layout the slices were placed with (CGLS_THREAD_SETUP); `team` <= nthreads
 * is the number of threads OpenMP actually started (fewer under OMP_THREAD_LIMIT, nesting or
 * OMP_DYNAMIC): only their slices were written, but they sit at the nthreads layout. */
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

/* Rows [i0, i1) of thread `tid`: the slice it accumulates into and its scalar slots. */
#define CGLS_THREAD_SETUP                                                                       \
    const ptrdiff_t i0 = n * tid / nt, i1 = n * (tid + 1) / nt;                                 \
    double *Tt = tid == 0 ? T : work + (ptrdiff_t)(tid - 1) * p * k;                            \
    double *scal = work + (ptrdiff_t)(nthreads - 1) * p * k + (ptrdiff_t)tid * 3 * k;           \
    double *ssq = scal, *usm = scal + k, *e = scal + 2 * k;                                     \
    memset(Tt, 0, sizeof(double) * (size_t)(p * k));                                            \
    for (ptrdiff_t l = 0; l < k; l++) {                                                         \
        ssq[l] = 0.0;                                                                           \
        usm[l] = 0.0;                                                                           \
    }

/* ------------------------------------------------------------------------------------------ */
/* Dense row-major X.                                                                          */
/* k == 1: four rows per sweep, so v is read once and t read/written once per four rows.       */
/* k > 1 : one row at a time, e (k) accumulated over the row, then T[j, :] += x_ij u.          */
/* ------------------------------------------------------------------------------------------ */
#define FS_CGLS_DENSE_DEF(SUFFIX, DATA_T)                                                  \
    FS_CGLS_CLONES int fs_cgls_dense_normal_##SUFFIX(                                                     \
        ptrdiff_t n, ptrdiff_t p, ptrdiff_t k, const DATA_T *X, ptrdiff_t ldx,                  \
        const double *V, const double *c, const double *B, ptrdiff_t ldb, const double *w,      \
        double *T, double *sumsq, double *usum, int nthreads, double *work)                     \
    {                                                                                           \
        if (n < 0 || p < 1 || k < 1 || ldx < p || nthreads < 1 || (B && ldb < k))               \
            return FS_ERR_ARGUMENT;                                                        \
        if ((ptrdiff_t)nthreads > n) nthreads = n > 0 ? (int)n : 1;                             \
        int team = 1;                                                                           \
        DATA_PARALLEL_BEGIN                                                                     \
        {                                                                                       \
            CGLS_THREAD_SETUP                                                                   \
            if (k == 1) {                                                                       \
                const double c0 = c[0];                                                         \
                ptrdiff_t i = i0;                                                               \
                for (; i + 4 <= i1; i += 4) {                                                   \
                    const DATA_T *restrict a0 = X + i * ldx, *restrict a1 = a0 + ldx;           \
                    const DATA_T *restrict a2 = a1 + ldx, *restrict a3 = a2 + ldx;              \
                    double e0 = 0.0, e1 = 0.0, e2 = 0.0, e3 = 0.0;                              \
                    /* e_r = x_r . v for four rows r (one read of v) */                         \
                    SIMD_REDUCE(e0, e1, e2, e3)                                                 \
                    for (ptrdiff_t j = 0; j < p; j++) {                                         \
                        const double vj = V[j];                                                 \
                        e0 += (double)a0[j] * vj;                                               \
                        e1 += (double)a1[j] * vj;                                               \
                        e2 += (double)a2[j] * vj;                                               \
                        e3 += (double)a3[j] * vj;                                               \
                    }                                                                           \
                    double ee[4] = {e0 - c0, e1 - c0, e2 - c0, e3 - c0}, uu[4];                 \
                    for (int r = 0; r < 4; r++) {                                               \
                        if (B) ee[r] += B[(i + r) * ldb];                                       \
                        uu[r] = w ? w[i + r] * ee[r] : ee[r];                                   \
                        ssq[0] += uu[r] * ee[r];                                                \
                        usm[0] += uu[r];                                                        \
                    }                                                                           \
                    const double u0 = uu[0], u1 = uu[1], u2 = uu[2], u3 = uu[3];                \
                    double *restrict t = Tt;                                                    \
                    /* t += x_0 u_0 + x_1 u_1 + x_2 u_2 + x_3 u_3 (rows still in cache) */      \
                    SIMD_PLAIN                                                                  \
                    for (ptrdiff_t j = 0; j < p; j++) {                                         \
                        t[j] += (double)a0[j] * u0 + (double)a1[j] * u1                         \
                              + (double)a2[j] * u2 + (double)a3[j] * u3;                        \
                    }                                                                           \
                }                                                                               \
                for (; i < i1; i++) {                                                           \
                    const DATA_T *restrict a = X + i * ldx;                                     \
                    double e0 = 0.0;                                                            \
                    SIMD_REDUCE1(e0)                                                            \
                    for (ptrdiff_t j = 0; j < p; j++) e0 += (double)a[j] * V[j];                \
                    e0 -= c0;                                                                   \
                    if (B) e0 += B[i * ldb];                                                    \
                    const double u0 = w ? w[i] * e0 : e0;                                       \
                    ssq[0] += u0 * e0;                                                          \
                    usm[0] += u0;                                                               \
                    double *restrict t = Tt;                                                    \
                    SIMD_PLAIN                                                                  \
                    for (ptrdiff_t j = 0; j < p; j++) t[j] += (double)a[j] * u0;                \
                }                                                                               \
            } else {                                                                            \
                for (ptrdiff_t i = i0; i < i1; i++) {                                           \
                    const DATA_T *restrict a = X + i * ldx;                                     \
                    for (ptrdiff_t l = 0; l < k; l++) e[l] = B ? B[i * ldb + l] - c[l] : -c[l]; \
                    /* e += x_i V   (row i of X V) */                                           \
                    for (ptrdiff_t j = 0; j < p; j++) {                                         \
                        const double aj = (double)a[j];                                         \
                        const double *restrict vj = V + j * k;                                  \
                        for (ptrdiff_t l = 0; l < k; l++) e[l] += aj * vj[l];                   \
                    }                                                                           \
                    const double wi = w ? w[i] : 1.0;                                           \
                    for (ptrdiff_t l = 0; l < k; l++) {                                         \
                        const double u = wi * e[l];                                             \
                        ssq[l] += u * e[l];                                                     \
                        usm[l] += u;                                                            \
                        e[l] = u;                                                               \
                    }                                                                           \
                    /* T += x_i^T u_i */                                                        \
                    for (ptrdiff_t j = 0; j < p; j++) {                                         \
                        const double aj = (double)a[j];                                         \
                        double *restrict tj = Tt + j * k;                                       \
                        for (ptrdiff_t l = 0; l < k; l++) tj[l] += aj * e[l];                   \
                    }                                                                           \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
        DATA_PARALLEL_END                                                                       \
        cgls_reduce(p, k, nthreads, team, T, sumsq, usum, work);                                \
        return FS_OK;                                                                      \
    }                                                                                           \
                                                                                                \
    int fs_cgls_dense_colstats_##SUFFIX(                                                   \
        ptrdiff_t n, ptrdiff_t p, const DATA_T *X, ptrdiff_t ldx, const double *w,              \
        double *colsumsq, double *colsum)                                                       \
    {                                                                                           \
        if (n < 0 || p < 1 || ldx < p) return FS_ERR_ARGUMENT;                             \
        for (ptrdiff_t j = 0; j < p; j++) {                                                     \
            colsumsq[j] = 0.0;                                                                  \
            colsum[j] = 0.0;                                                                    \
        }                                                                                       \
        for (ptrdiff_t i = 0; i < n; i++) {                                                     \
            const DATA_T *restrict a = X + i * ldx;                                             \
            const double wi = w ? w[i] : 1.0;                                                   \
            for (ptrdiff_t j = 0; j < p; j++) {                                                 \
                const double wa = wi * (double)a[j];                                            \
                colsum[j] += wa;                                                                \
                colsumsq[j] += wa * (double)a[j];                                               \
            }                                                                                   \
        }                                                                                       \
        return FS_OK;                                                                      \
    }

/* ------------------------------------------------------------------------------------------ */
/* CSR: for row i, e = a_i . V over its nonzeros, then T[j, :] += a_ij u over the same         */
/* nonzeros (the row's data/indices are in L1 for the second sweep).                           */
/* ------------------------------------------------------------------------------------------ */
#define FS_CGLS_CSR_DEF(SUFFIX, DATA_T, INDEX_T)                                           \
    int fs_cgls_csr_normal_##SUFFIX(                                                       \
        ptrdiff_t n, ptrdiff_t p, ptrdiff_t k, const DATA_T *data, const INDEX_T *indices,      \
        const INDEX_T *indptr, const double *V, const double *c, const double *B,               \
        ptrdiff_t ldb, const double *w, double *T, double *sumsq, double *usum, int nthreads,   \
        double *work)                                                                           \
    {                                                                                           \
        if (n < 0 || p < 1 || k < 1 || nthreads < 1 || (B && ldb < k))                          \
            return FS_ERR_ARGUMENT;                                                        \
        if ((ptrdiff_t)nthreads > n) nthreads = n > 0 ? (int)n : 1;                             \
        int team = 1;                                                                           \
        DATA_PARALLEL_BEGIN                                                                     \
        {                                                                                       \
            CGLS_THREAD_SETUP                                                                   \
            if (k == 1) {                                                                       \
                const double c0 = c[0];                                                         \
                double s_acc = 0.0, u_acc = 0.0;                                                \
                for (ptrdiff_t i = i0; i < i1; i++) {                                           \
                    const INDEX_T q0 = indptr[i], q1 = indptr[i + 1];                           \
                    double e0 = -c0;                                                            \
                    for (INDEX_T q = q0; q < q1; q++) e0 += (double)data[q] * V[indices[q]];    \
                    if (B) e0 += B[i * ldb];                                                    \
                    const double u0 = w ? w[i] * e0 : e0;                                       \
                    s_acc += u0 * e0;                                                           \
                    u_acc += u0;                                                                \
                    for (INDEX_T q = q0; q < q1; q++) Tt[indices[q]] += (double)data[q] * u0;   \
                }                                                                               \
                ssq[0] = s_acc;                                                                 \
                usm[0] = u_acc;                                                                 \
            } else {                                                                            \
                for (ptrdiff_t i = i0; i < i1; i++) {                                           \
                    const INDEX_T q0 = indptr[i], q1 = indptr[i + 1];                           \
                    for (ptrdiff_t l = 0; l < k; l++) e[l] = B ? B[i * ldb + l] - c[l] : -c[l]; \
                    for (INDEX_T q = q0; q < q1; q++) {                                         \
                        const double a = (double)data[q];                                       \
                        const double *restrict vj = V + (ptrdiff_t)indices[q] * k;              \
                        for (ptrdiff_t l = 0; l < k; l++) e[l] += a * vj[l];                    \
                    }                                                                           \
                    const double wi = w ? w[i] : 1.0;                                           \
                    for (ptrdiff_t l = 0; l < k; l++) {                                         \
                        const double u = wi * e[l];                                             \
                        ssq[l] += u * e[l];                                                     \
                        usm[l] += u;                                                            \
                        e[l] = u;                                                               \
                    }                                                                           \
                    for (INDEX_T q = q0; q < q1; q++) {                                         \
                        const double a = (double)data[q];                                       \
                        double *restrict tj = Tt + (ptrdiff_t)indices[q] * k;                   \
                        for (ptrdiff_t l = 0; l < k; l++) tj[l] += a * e[l];                    \
                    }                                                                           \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
        DATA_PARALLEL_END                                                                       \
        cgls_reduce(p, k, nthreads, team, T, sumsq, usum, work);                                \
        return FS_OK;                                                                      \
    }                                                                                           \
                                                                                                \
    int fs_cgls_csr_colstats_##SUFFIX(                                                     \
        ptrdiff_t n, ptrdiff_t p, const DATA_T *data, const INDEX_T *indices,                   \
        const INDEX_T *indptr, const double *w, double *colsumsq, double *colsum)               \
    {                                                                                           \
        if (n < 0 || p < 1) return FS_ERR_ARGUMENT;                                        \
        for (ptrdiff_t j = 0; j < p; j++) {                                                     \
            colsumsq[j] = 0.0;                                                                  \
            colsum[j] = 0.0;                                                                    \
        }                                                                                       \
        for (ptrdiff_t i = 0; i < n; i++) {                                                     \
            const double wi = w ? w[i] : 1.0;                                                   \
            for (INDEX_T q = indptr[i]; q < indptr[i + 1]; q++) {                               \
                const double a = (double)data[q];                                               \
                colsum[indices[q]] += wi * a;                                                   \
                colsumsq[indices[q]] += wi * a * a;                                             \
            }                                                                                   \
        }                                                                                       \
        return FS_OK;                                                                      \
    }

/* One OpenMP team, thread tid takes a contiguous block of rows. */
#ifdef _OPENMP
#define DATA_PARALLEL_BEGIN                                                                     \
    _Pragma("omp parallel num_threads(nthreads)")                                               \
    {                                                                                           \
        const int tid = omp_get_thread_num(), nt = omp_get_num_threads();                       \
        if (tid == 0) team = nt;
#define DATA_PARALLEL_END }
#define SIMD_REDUCE(a, b, c, d) _Pragma("omp simd reduction(+:e0,e1,e2,e3)")
#define SIMD_REDUCE1(a) _Pragma("omp simd reduction(+:e0)")
#define SIMD_PLAIN _Pragma("omp simd")
#else
#define DATA_PARALLEL_BEGIN                                                                     \
    {                                                                                           \
        const int tid = 0, nt = 1;                                                              \
        (void)nthreads;
#define DATA_PARALLEL_END }
#define SIMD_REDUCE(a, b, c, d)
#define SIMD_REDUCE1(a)
#define SIMD_PLAIN
#endif

FS_CGLS_DENSE_DEF(d, double)
FS_CGLS_DENSE_DEF(f, float)
FS_CGLS_CSR_DEF(i32_d, double, int32_t)
FS_CGLS_CSR_DEF(i64_d, double, int64_t)
FS_CGLS_CSR_DEF(i32_f, float, int32_t)
FS_CGLS_CSR_DEF(i64_f, float, int64_t)
