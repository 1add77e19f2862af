/* Type-generic bodies of the CGLS kernels (math in cgls.h), included by cgls.c once per
 * instantiation: dense with DATA_T (float/double) and SFX(name) = name ## _f / _d; CSR with INDEX_T
 * (int32_t/int64_t) defined as well and SFX(name) = name ## _i32_d etc. Not a public header; it
 * #undefs its parameters at its end.
 */
#ifndef INDEX_T
/* ---- dense row-major X ---------------------------------------------------------------------
 * k == 1: four rows per sweep, so v is read once and t read/written once per four rows.
 * k > 1 : one row at a time, e (k) accumulated over the row, then T[j, :] += x_ij u.
 * Thread tid of nt: rows [i0, i1), accumulated into its slice of `work` (layout in cgls.c). */
FS_INLINE void SFX(dense_rows_body)(int tid, int nt, ptrdiff_t n, ptrdiff_t p, ptrdiff_t k,
                                    const DATA_T *X, ptrdiff_t ldx, const double *V,
                                    const double *c, const double *B, ptrdiff_t ldb,
                                    const double *w, double *T, int nthreads, double *work)
{
    /* this thread's rows [i0, i1), its slice Tt of T, its scalars and row buffer */
    const struct fs_cgls_slice sl = fs_cgls_thread_slice(tid, nt, n, p, k, T, nthreads, work);
    const ptrdiff_t i0 = sl.i0, i1 = sl.i1;
    double *Tt = sl.Tt, *ssq = sl.ssq, *usm = sl.usm, *e = sl.e;
    if (k == 1) {
        const double c0 = c[0];
        ptrdiff_t i = i0;
        for (; i + 4 <= i1; i += 4) {
            const DATA_T *restrict a0 = X + i * ldx, *restrict a1 = a0 + ldx;
            const DATA_T *restrict a2 = a1 + ldx, *restrict a3 = a2 + ldx;
            double e0 = 0.0, e1 = 0.0, e2 = 0.0, e3 = 0.0;
            /* e_r = x_r . v for four rows r (one read of v) */
            FS_OMP_SIMD_REDUCE4
            for (ptrdiff_t j = 0; j < p; j++) {
                const double vj = V[j];
                e0 += (double)a0[j] * vj;
                e1 += (double)a1[j] * vj;
                e2 += (double)a2[j] * vj;
                e3 += (double)a3[j] * vj;
            }
            double ee[4] = {e0 - c0, e1 - c0, e2 - c0, e3 - c0}, uu[4];
            for (int r = 0; r < 4; r++) {
                if (B) ee[r] += B[(i + r) * ldb];
                uu[r] = w ? w[i + r] * ee[r] : ee[r];
                ssq[0] += uu[r] * ee[r];
                usm[0] += uu[r];
            }
            const double u0 = uu[0], u1 = uu[1], u2 = uu[2], u3 = uu[3];
            double *restrict t = Tt;
            /* t += x_0 u_0 + x_1 u_1 + x_2 u_2 + x_3 u_3 (rows still in cache) */
            FS_OMP_SIMD
            for (ptrdiff_t j = 0; j < p; j++) {
                t[j] += (double)a0[j] * u0 + (double)a1[j] * u1
                      + (double)a2[j] * u2 + (double)a3[j] * u3;
            }
        }
        for (; i < i1; i++) {
            const DATA_T *restrict a = X + i * ldx;
            double e0 = 0.0;
            FS_OMP_SIMD_REDUCE1
            for (ptrdiff_t j = 0; j < p; j++) e0 += (double)a[j] * V[j];
            e0 -= c0;
            if (B) e0 += B[i * ldb];
            const double u0 = w ? w[i] * e0 : e0;
            ssq[0] += u0 * e0;
            usm[0] += u0;
            double *restrict t = Tt;
            FS_OMP_SIMD
            for (ptrdiff_t j = 0; j < p; j++) t[j] += (double)a[j] * u0;
        }
    } else {
        for (ptrdiff_t i = i0; i < i1; i++) {
            const DATA_T *restrict a = X + i * ldx;
            for (ptrdiff_t l = 0; l < k; l++) e[l] = B ? B[i * ldb + l] - c[l] : -c[l];
            /* e += x_i V   (row i of X V) */
            for (ptrdiff_t j = 0; j < p; j++) {
                const double aj = (double)a[j];
                const double *restrict vj = V + j * k;
                for (ptrdiff_t l = 0; l < k; l++) e[l] += aj * vj[l];
            }
            const double wi = w ? w[i] : 1.0;
            for (ptrdiff_t l = 0; l < k; l++) {
                const double u = wi * e[l];
                ssq[l] += u * e[l];
                usm[l] += u;
                e[l] = u;
            }
            /* T += x_i^T u_i */
            for (ptrdiff_t j = 0; j < p; j++) {
                const double aj = (double)a[j];
                double *restrict tj = Tt + j * k;
                for (ptrdiff_t l = 0; l < k; l++) tj[l] += aj * e[l];
            }
        }
    }
}
/* The fused dense loop is compute-heavy enough (two FMAs per element read) that AVX2/AVX-512
 * matter: portable, AVX2+FMA and AVX-512F copies (dispatch.h), called by each thread. */
FS_DISPATCH_AVX512(void, SFX(fs_cgls_dense_rows), SFX(dense_rows_body),
                   (int tid, int nt, ptrdiff_t n, ptrdiff_t p, ptrdiff_t k, const DATA_T *X,
                    ptrdiff_t ldx, const double *V, const double *c, const double *B,
                    ptrdiff_t ldb, const double *w, double *T, int nthreads, double *work),
                   (tid, nt, n, p, k, X, ldx, V, c, B, ldb, w, T, nthreads, work))

int SFX(fs_cgls_dense_normal)(ptrdiff_t n, ptrdiff_t p, ptrdiff_t k, const DATA_T *X,
                              ptrdiff_t ldx, const double *V, const double *c, const double *B,
                              ptrdiff_t ldb, const double *w, double *T, double *sumsq,
                              double *usum, int nthreads, double *work)
{
    if (n < 0 || p < 1 || k < 1 || ldx < p || nthreads < 1 || (B && ldb < k))
        return FS_ERR_ARGUMENT;
    if ((ptrdiff_t)nthreads > n) nthreads = n > 0 ? (int)n : 1;
    int team = 1;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads)
    {
        const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
        if (tid == 0) team = nt;
        SFX(fs_cgls_dense_rows)(tid, nt, n, p, k, X, ldx, V, c, B, ldb, w, T, nthreads, work);
    }
#else
    SFX(fs_cgls_dense_rows)(0, 1, n, p, k, X, ldx, V, c, B, ldb, w, T, nthreads, work);
#endif
    cgls_reduce(p, k, nthreads, team, T, sumsq, usum, work);
    return FS_OK;
}

int SFX(fs_cgls_dense_colstats)(
    ptrdiff_t n, ptrdiff_t p, const DATA_T *X, ptrdiff_t ldx, const double *w,
    double *colsumsq, double *colsum)
{
    if (n < 0 || p < 1 || ldx < p) return FS_ERR_ARGUMENT;
    for (ptrdiff_t j = 0; j < p; j++) {
        colsumsq[j] = 0.0;
        colsum[j] = 0.0;
    }
    for (ptrdiff_t i = 0; i < n; i++) {
        const DATA_T *restrict a = X + i * ldx;
        const double wi = w ? w[i] : 1.0;
        for (ptrdiff_t j = 0; j < p; j++) {
            const double wa = wi * (double)a[j];
            colsum[j] += wa;
            colsumsq[j] += wa * (double)a[j];
        }
    }
    return FS_OK;
}

#else /* INDEX_T */
/* ---- CSR: for row i, e = a_i . V over its nonzeros, then T[j, :] += a_ij u over the same
 * nonzeros (the row's data/indices are in L1 for the second sweep). Thread tid of nt as above;
 * one portable copy (the indexed loads leave nothing for wider vectors). */
FS_INLINE void SFX(csr_rows)(int tid, int nt, ptrdiff_t n, ptrdiff_t p, ptrdiff_t k,
                             const DATA_T *data, const INDEX_T *indices, const INDEX_T *indptr,
                             const double *V, const double *c, const double *B, ptrdiff_t ldb,
                             const double *w, double *T, int nthreads, double *work)
{
    /* this thread's rows [i0, i1), its slice Tt of T, its scalars and row buffer */
    const struct fs_cgls_slice sl = fs_cgls_thread_slice(tid, nt, n, p, k, T, nthreads, work);
    const ptrdiff_t i0 = sl.i0, i1 = sl.i1;
    double *Tt = sl.Tt, *ssq = sl.ssq, *usm = sl.usm, *e = sl.e;
    if (k == 1) {
        const double c0 = c[0];
        double s_acc = 0.0, u_acc = 0.0;
        for (ptrdiff_t i = i0; i < i1; i++) {
            const INDEX_T q0 = indptr[i], q1 = indptr[i + 1];
            double e0 = -c0;
            for (INDEX_T q = q0; q < q1; q++) e0 += (double)data[q] * V[indices[q]];
            if (B) e0 += B[i * ldb];
            const double u0 = w ? w[i] * e0 : e0;
            s_acc += u0 * e0;
            u_acc += u0;
            for (INDEX_T q = q0; q < q1; q++) Tt[indices[q]] += (double)data[q] * u0;
        }
        ssq[0] = s_acc;
        usm[0] = u_acc;
    } else {
        for (ptrdiff_t i = i0; i < i1; i++) {
            const INDEX_T q0 = indptr[i], q1 = indptr[i + 1];
            for (ptrdiff_t l = 0; l < k; l++) e[l] = B ? B[i * ldb + l] - c[l] : -c[l];
            for (INDEX_T q = q0; q < q1; q++) {
                const double a = (double)data[q];
                const double *restrict vj = V + (ptrdiff_t)indices[q] * k;
                for (ptrdiff_t l = 0; l < k; l++) e[l] += a * vj[l];
            }
            const double wi = w ? w[i] : 1.0;
            for (ptrdiff_t l = 0; l < k; l++) {
                const double u = wi * e[l];
                ssq[l] += u * e[l];
                usm[l] += u;
                e[l] = u;
            }
            for (INDEX_T q = q0; q < q1; q++) {
                const double a = (double)data[q];
                double *restrict tj = Tt + (ptrdiff_t)indices[q] * k;
                for (ptrdiff_t l = 0; l < k; l++) tj[l] += a * e[l];
            }
        }
    }
}

int SFX(fs_cgls_csr_normal)(ptrdiff_t n, ptrdiff_t p, ptrdiff_t k, const DATA_T *data,
                            const INDEX_T *indices, const INDEX_T *indptr, const double *V,
                            const double *c, const double *B, ptrdiff_t ldb, const double *w,
                            double *T, double *sumsq, double *usum, int nthreads, double *work)
{
    if (n < 0 || p < 1 || k < 1 || nthreads < 1 || (B && ldb < k))
        return FS_ERR_ARGUMENT;
    if ((ptrdiff_t)nthreads > n) nthreads = n > 0 ? (int)n : 1;
    int team = 1;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads)
    {
        const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
        if (tid == 0) team = nt;
        SFX(csr_rows)(tid, nt, n, p, k, data, indices, indptr, V, c, B, ldb, w, T, nthreads,
                      work);
    }
#else
    SFX(csr_rows)(0, 1, n, p, k, data, indices, indptr, V, c, B, ldb, w, T, nthreads, work);
#endif
    cgls_reduce(p, k, nthreads, team, T, sumsq, usum, work);
    return FS_OK;
}

int SFX(fs_cgls_csr_colstats)(
    ptrdiff_t n, ptrdiff_t p, const DATA_T *data, const INDEX_T *indices,
    const INDEX_T *indptr, const double *w, double *colsumsq, double *colsum)
{
    if (n < 0 || p < 1) return FS_ERR_ARGUMENT;
    for (ptrdiff_t j = 0; j < p; j++) {
        colsumsq[j] = 0.0;
        colsum[j] = 0.0;
    }
    for (ptrdiff_t i = 0; i < n; i++) {
        const double wi = w ? w[i] : 1.0;
        for (INDEX_T q = indptr[i]; q < indptr[i + 1]; q++) {
            const double a = (double)data[q];
            colsum[indices[q]] += wi * a;
            colsumsq[indices[q]] += wi * a * a;
        }
    }
    return FS_OK;
}
#endif /* INDEX_T */

#undef DATA_T
#undef INDEX_T
#undef SFX
