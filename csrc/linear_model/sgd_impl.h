/* Type-generic bodies of the SGD step kernels (math and notation in sgd.h), included by sgd.c
 * once per precision with T (float/double) and SFX(name) = name ## _f / _d. Not a public header;
 * it #undefs its parameters at its end. */

double SFX(fs_sgd_residual)(ptrdiff_t m, ptrdiff_t k, const ptrdiff_t *rows,
                            const T *Y, const T *sw, const T *b, T *R)
{
    double loss = 0.0;
    for (ptrdiff_t i = 0; i < m; ++i) {
        const T *y = Y + rows[i] * k;
        const T w = sw[rows[i]];
        T *r = R + i * k;
        double sq = 0.0;
        for (ptrdiff_t j = 0; j < k; ++j) {
            const T rij = r[j] + b[j] - y[j]; /* prediction - target */
            sq += (double)rij * (double)rij;
            r[j] = w * rij;                      /* d(0.5 w r^2)/d(prediction) */
        }
        loss += 0.5 * (double)w * sq;
    }
    return loss;
}

double SFX(fs_sgd_csr_residual)(ptrdiff_t m, ptrdiff_t k, ptrdiff_t p,
                                const ptrdiff_t *rows, const ptrdiff_t *indptr,
                                const int32_t *indices, const T *data,
                                const T *V, T scale, const T *Y,
                                const T *sw, const T *b, T *R)
{
    for (ptrdiff_t i = 0; i < m; ++i) {
        T *r = R + i * k;
        const ptrdiff_t lo = indptr[rows[i]], hi = indptr[rows[i] + 1];
        for (ptrdiff_t j = 0; j < k; ++j) {
            const T *v = V + j * p;
            T acc = 0;
            for (ptrdiff_t q = lo; q < hi; ++q) {
                acc += data[q] * v[indices[q]];
            }
            r[j] = scale * acc;
        }
    }
    return SFX(fs_sgd_residual)(m, k, rows, Y, sw, b, R);
}

void SFX(fs_sgd_csr_update)(ptrdiff_t m, ptrdiff_t k, ptrdiff_t p,
                            const ptrdiff_t *rows, const ptrdiff_t *indptr,
                            const int32_t *indices, const T *data, const T *R,
                            T coef, T *V)
{
    for (ptrdiff_t i = 0; i < m; ++i) {
        const ptrdiff_t lo = indptr[rows[i]], hi = indptr[rows[i] + 1];
        for (ptrdiff_t j = 0; j < k; ++j) {
            const T c = coef * R[i * k + j];
            T *v = V + j * p;
            for (ptrdiff_t q = lo; q < hi; ++q) {
                v[indices[q]] += c * data[q];
            }
        }
    }
}

void SFX(fs_sgd_intercept)(ptrdiff_t m, ptrdiff_t k, const T *R, T coef, T *b)
{
    for (ptrdiff_t j = 0; j < k; ++j) {
        T s = 0;
        for (ptrdiff_t i = 0; i < m; ++i) {
            s += R[i * k + j];
        }
        b[j] += coef * s;
    }
}

void SFX(fs_sgd_average)(ptrdiff_t len, const T *V, T scale, T mu, T *avg)
{
    for (ptrdiff_t i = 0; i < len; ++i) {
        avg[i] += mu * (scale * V[i] - avg[i]);
    }
}

void SFX(fs_sgd_gather)(ptrdiff_t m, ptrdiff_t p, const ptrdiff_t *rows, const T *X,
                        T *Xb)
{
    for (ptrdiff_t i = 0; i < m; ++i) {
        memcpy(Xb + i * p, X + rows[i] * p, (size_t)p * sizeof(T));
    }
}

#undef T
#undef SFX
