/* Template body of mlp.c, included once per floating type with T, SFX(name), FEXP, FLOG, FLOG1P,
 * FABS, FSQRT, SIGMOID, TANH, DSIGMOID, DTANH defined; undefines them at its end. Not a public
 * header. */

/* z[i, j] = act(z[i, j] + b[j]) in place: the GEMM X @ W has already been written to z. */
FS_INLINE void SFX(bias_act_body)(ptrdiff_t n, ptrdiff_t m, T *z, const T *b, int act)
{
    for (ptrdiff_t i = 0; i < n; ++i) {
        T *row = z + i * m;
        switch (act) {
        case FS_ACT_LOGISTIC:
            for (ptrdiff_t j = 0; j < m; ++j) row[j] = SIGMOID(row[j] + b[j]);
            break;
        case FS_ACT_TANH:
            for (ptrdiff_t j = 0; j < m; ++j) row[j] = TANH(row[j] + b[j]);
            break;
        case FS_ACT_RELU:
            for (ptrdiff_t j = 0; j < m; ++j) {
                const T v = row[j] + b[j];
                row[j] = v > (T)0 ? v : (T)0;
            }
            break;
        default:
            for (ptrdiff_t j = 0; j < m; ++j) row[j] += b[j];
        }
    }
}

/* delta *= f'(z), with f' written in terms of the stored output a = f(z). */
void SFX(fs_nn_act_backward)(ptrdiff_t n, ptrdiff_t m, T *delta, const T *a, int act)
{
    const ptrdiff_t nm = n * m;
    switch (act) {
    case FS_ACT_LOGISTIC:
        for (ptrdiff_t k = 0; k < nm; ++k) delta[k] *= DSIGMOID(a[k]);
        break;
    case FS_ACT_TANH:
        for (ptrdiff_t k = 0; k < nm; ++k) delta[k] *= DTANH(a[k]);
        break;
    case FS_ACT_RELU:
        /* a > 0 exactly where z > 0; at z == 0 the subgradient 0 is used (as scikit-learn). */
        for (ptrdiff_t k = 0; k < nm; ++k) delta[k] = a[k] > (T)0 ? delta[k] : (T)0;
        break;
    default:
        break;
    }
}

/* delta *= f'(z) (as fs_nn_act_backward) and bias_grad[j] = sum_i delta[i, j] (as fs_nn_colsum)
 * in ONE pass over delta: the backward pass needs both, and delta is read once instead of twice.
 * The column sums accumulate row by row, in the same order as fs_nn_colsum (same rounding). */
FS_INLINE void SFX(act_backward_colsum_body)(ptrdiff_t n, ptrdiff_t m, T *delta, const T *a,
                                             int act, T *bias_grad)
{
    for (ptrdiff_t j = 0; j < m; ++j) bias_grad[j] = (T)0;
    for (ptrdiff_t i = 0; i < n; ++i) {
        T *d = delta + i * m;
        const T *ar = a + i * m;
        switch (act) {
        case FS_ACT_LOGISTIC:
            for (ptrdiff_t j = 0; j < m; ++j) {
                d[j] *= DSIGMOID(ar[j]);
                bias_grad[j] += d[j];
            }
            break;
        case FS_ACT_TANH:
            for (ptrdiff_t j = 0; j < m; ++j) {
                d[j] *= DTANH(ar[j]);
                bias_grad[j] += d[j];
            }
            break;
        case FS_ACT_RELU:
            /* subgradient 0 at z == 0, as fs_nn_act_backward */
            for (ptrdiff_t j = 0; j < m; ++j) {
                d[j] = ar[j] > (T)0 ? d[j] : (T)0;
                bias_grad[j] += d[j];
            }
            break;
        default:
            for (ptrdiff_t j = 0; j < m; ++j) bias_grad[j] += d[j];
        }
    }
}

/* dst[i, :] = src[idx[i], :] for i < n (rows of width `width`): the rows of a shuffled
 * mini-batch made contiguous for the GEMMs. Then prefetches the n_next rows next_idx[...] of the
 * following batch: random rows of a large X come from DRAM, and issuing their loads now lets
 * them arrive while this batch's GEMMs run, instead of stalling the next gather. */
void SFX(fs_nn_gather_rows)(ptrdiff_t n, const ptrdiff_t *idx, const T *src, ptrdiff_t width,
                            T *dst, const ptrdiff_t *next_idx, ptrdiff_t n_next)
{
    const size_t row_bytes = (size_t)width * sizeof(T);
    for (ptrdiff_t i = 0; i < n; ++i) memcpy(dst + i * width, src + idx[i] * width, row_bytes);
#if defined(__GNUC__) || defined(__clang__)
    for (ptrdiff_t i = 0; i < n_next; ++i) {
        const char *row = (const char *)(src + next_idx[i] * width);
        /* one prefetch per 64-byte line, kept in the outer cache levels (locality 1) */
        for (size_t off = 0; off < row_bytes; off += 64) __builtin_prefetch(row + off, 0, 1);
        __builtin_prefetch(row + row_bytes - 1, 0, 1);
    }
#else
    (void)next_idx;
    (void)n_next;
#endif
}

/* out[j] = sum_i x[i, j]  (bias gradient: column sums of the layer's delta). */
void SFX(fs_nn_colsum)(ptrdiff_t n, ptrdiff_t m, const T *x, T *out)
{
    for (ptrdiff_t j = 0; j < m; ++j) out[j] = (T)0;
    for (ptrdiff_t i = 0; i < n; ++i) {
        const T *row = x + i * m;
        for (ptrdiff_t j = 0; j < m; ++j) out[j] += row[j];
    }
}

/* Loss summed over the batch (in double) and its gradient w.r.t. the output pre-activation z,
 * multiplied by `scale` (1/n for a mean), written to delta (may alias z; may be NULL).
 *   squared:        l = 1/2 (z - y)^2                         dl/dz = z - y
 *   binary xent:    l = softplus(z) - y z
 *                     = max(z, 0) - y z + log1p(exp(-|z|))    dl/dz = sigmoid(z) - y
 *   softmax xent:   l = sum_j y_j (lse(z) - z_j),  lse(z) = max(z) + log sum_j exp(z_j - max(z))
 *                                                             dl/dz_j = softmax(z)_j - y_j
 * Both cross-entropies never take log of a probability, so they stay finite for any finite z.
 * If bias_grad is not NULL (requires delta), it receives the column sums of delta (the output
 * layer's bias gradient), accumulated row by row as fs_nn_colsum does, in the same pass.
 * Returns FS_ERR_NONFINITE if the summed loss is not finite. */
int SFX(fs_nn_loss_grad)(int loss, ptrdiff_t n, ptrdiff_t m, const T *z, const T *y,
                         T *delta, T scale, double *loss_sum, T *bias_grad)
{
    double total = 0.0;
    if (bias_grad) {
        for (ptrdiff_t j = 0; j < m; ++j) bias_grad[j] = (T)0;
    }
    for (ptrdiff_t i = 0; i < n; ++i) {
        const T *zr = z + i * m;
        const T *yr = y + i * m;
        T *dr = delta ? delta + i * m : NULL;
        if (loss == FS_LOSS_SQUARED) {
            for (ptrdiff_t j = 0; j < m; ++j) {
                const T r = zr[j] - yr[j];
                total += 0.5 * (double)r * (double)r;
                if (dr) dr[j] = scale * r;
            }
        } else if (loss == FS_LOSS_BINARY_XENT) {
            for (ptrdiff_t j = 0; j < m; ++j) {
                const T zj = zr[j], yj = yr[j];
                const T pos = zj > (T)0 ? zj : (T)0;
                total += (double)(pos - yj * zj + FLOG1P(FEXP(-FABS(zj))));
                if (dr) dr[j] = scale * (SIGMOID(zj) - yj);
            }
        } else {
            T zmax = zr[0];
            for (ptrdiff_t j = 1; j < m; ++j) zmax = zr[j] > zmax ? zr[j] : zmax;
            /* exp(z_j - max) is computed once: parked in delta's row when it does not alias z
             * (the training engine), recomputed below when it does */
            T *park = (dr && (const T *)dr != zr) ? dr : NULL;
            T sumexp = (T)0;
            for (ptrdiff_t j = 0; j < m; ++j) {
                const T e = FEXP(zr[j] - zmax);
                if (park) park[j] = e;
                sumexp += e;
            }
            const T lse = zmax + FLOG(sumexp);
            const T inv = (T)1 / sumexp;
            double row_loss = 0.0;
            for (ptrdiff_t j = 0; j < m; ++j) row_loss += (double)yr[j] * (double)(lse - zr[j]);
            total += row_loss;
            if (park) {
                for (ptrdiff_t j = 0; j < m; ++j) dr[j] = scale * (park[j] * inv - yr[j]);
            } else if (dr) {
                for (ptrdiff_t j = 0; j < m; ++j) dr[j] = scale * (FEXP(zr[j] - zmax) * inv - yr[j]);
            }
        }
        if (bias_grad && dr) {
            for (ptrdiff_t j = 0; j < m; ++j) bias_grad[j] += dr[j];
        }
    }
    *loss_sum = total;
    return isfinite(total) ? FS_OK : FS_ERR_NONFINITE;
}

/* Output activation in place: identity (squared loss), sigmoid (binary xent), softmax rows. */
void SFX(fs_nn_output)(int loss, ptrdiff_t n, ptrdiff_t m, T *z)
{
    if (loss == FS_LOSS_BINARY_XENT) {
        for (ptrdiff_t k = 0; k < n * m; ++k) z[k] = SIGMOID(z[k]);
    } else if (loss == FS_LOSS_SOFTMAX_XENT) {
        for (ptrdiff_t i = 0; i < n; ++i) {
            T *zr = z + i * m;
            T zmax = zr[0];
            for (ptrdiff_t j = 1; j < m; ++j) zmax = zr[j] > zmax ? zr[j] : zmax;
            T sumexp = (T)0;
            for (ptrdiff_t j = 0; j < m; ++j) {
                zr[j] = FEXP(zr[j] - zmax);
                sumexp += zr[j];
            }
            const T inv = (T)1 / sumexp;
            for (ptrdiff_t j = 0; j < m; ++j) zr[j] *= inv;
        }
    }
}

/* The optimizer loops below carry two sums besides the update: s = sum (w - w) over the new
 * weights (NaN iff some new w is inf or NaN: the divergence check) and q = sum w^2 over the new
 * decayed weights (||W||^2 for the L2 term of the NEXT batch's objective, so the engine does not
 * re-read the weights for it). Without -ffast-math a compiler keeps a floating-point sum in
 * order and will not vectorise it, so each sum is split into FS_NN_LANES independent partial sums
 * (blocks of FS_NN_LANES consecutive entries), which vectorise as plain elementwise code. */
#ifndef FS_NN_LANES
#define FS_NN_LANES 16
#endif

/* SGD with (Nesterov) momentum, as scikit-learn's SGDOptimizer, fused over the flat buffer:
 *   g'  = gscale g + decay w   (decay only on the first n_decay entries: L2 on weights)
 *   v   = momentum v - lr g'
 *   w  += v                          (classical)
 *   w  += momentum v - lr g'         (Nesterov)
 * gscale carries gradient clipping. Returns FS_ERR_NONFINITE if any new w is not finite.
 * If w_sq is not NULL it receives sum of the new w[k]^2 over k < n_decay.
 * The range is split at n_decay so each loop is branch-free. */
FS_INLINE T SFX(sgd_one)(T *restrict w, T *restrict velocity, const T *restrict g,
                             ptrdiff_t k, T gscale, T decay, T lr, T momentum, T mu_n, T lr_n,
                             int nesterov)
{
    const T gk = gscale * g[k] + decay * w[k];
    const T v = momentum * velocity[k] - lr * gk;
    velocity[k] = v;
    /* classical: w += v; Nesterov: w += momentum v - lr g' (= v + (mu v - lr g') - v) */
    const T step = nesterov ? mu_n * v - lr_n * gk : v;
    const T wn = w[k] + step;
    w[k] = wn;
    return wn;
}

FS_INLINE T SFX(sgd_range)(ptrdiff_t lo, ptrdiff_t hi, T *restrict w, T *restrict velocity,
                        const T *restrict g, T gscale, T decay, T lr, T momentum, int nesterov,
                        T *sq)
{
    T s[FS_NN_LANES], q[FS_NN_LANES];
    for (int j = 0; j < FS_NN_LANES; ++j) s[j] = q[j] = (T)0;
    const T mu_n = nesterov ? momentum : (T)0, lr_n = nesterov ? lr : (T)0;
    ptrdiff_t k = lo;
    for (; k + FS_NN_LANES <= hi; k += FS_NN_LANES) {
        for (int j = 0; j < FS_NN_LANES; ++j) {
            const T wn = SFX(sgd_one)(w, velocity, g, k + j, gscale, decay, lr, momentum, mu_n,
                                      lr_n, nesterov);
            s[j] += wn - wn;
            q[j] += wn * wn;
        }
    }
    for (int j = 0; k < hi; ++k, ++j) {
        const T wn = SFX(sgd_one)(w, velocity, g, k, gscale, decay, lr, momentum, mu_n, lr_n,
                                  nesterov);
        s[j] += wn - wn;
        q[j] += wn * wn;
    }
    T st = (T)0, qt = (T)0;
    for (int j = 0; j < FS_NN_LANES; ++j) {
        st += s[j];
        qt += q[j];
    }
    *sq = qt;
    return st;
}

FS_INLINE int SFX(sgd_step_body)(ptrdiff_t n, ptrdiff_t n_decay, T *w, T *velocity, const T *g,
                        T gscale, T decay, T lr, T momentum, int nesterov, T *w_sq)
{
    T q_decay, q_rest;
    T s = SFX(sgd_range)(0, n_decay, w, velocity, g, gscale, decay, lr, momentum, nesterov,
                         &q_decay);
    s += SFX(sgd_range)(n_decay, n, w, velocity, g, gscale, (T)0, lr, momentum, nesterov,
                        &q_rest);
    if (w_sq) *w_sq = q_decay;
    return s == (T)0 ? FS_OK : FS_ERR_NONFINITE;
}

/* Adam (Kingma & Ba), as scikit-learn's AdamOptimizer, with the bias correction folded into
 * lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t) by the caller:
 *   g'  = gscale g + decay w            m1 = beta1 m1 + (1 - beta1) g'
 *   m2  = beta2 m2 + (1 - beta2) g'^2   w -= lr_t m1 / (sqrt(m2) + eps)
 * Status and w_sq as fs_nn_sgd_step.                                                         */
FS_INLINE T SFX(adam_one)(T *restrict w, T *restrict m1, T *restrict m2,
                              const T *restrict g, ptrdiff_t k, T gscale, T decay, T lr_t,
                              T beta1, T beta2, T c1, T c2, T eps)
{
    const T gk = gscale * g[k] + decay * w[k];
    const T a = beta1 * m1[k] + c1 * gk;
    const T b = beta2 * m2[k] + c2 * (gk * gk);
    m1[k] = a;
    m2[k] = b;
    const T wn = w[k] - lr_t * a / (FSQRT(b) + eps);
    w[k] = wn;
    return wn;
}

FS_INLINE T SFX(adam_range)(ptrdiff_t lo, ptrdiff_t hi, T *restrict w, T *restrict m1,
                         T *restrict m2, const T *restrict g, T gscale, T decay, T lr_t,
                         T beta1, T beta2, T eps, T *sq)
{
    T s[FS_NN_LANES], q[FS_NN_LANES];
    for (int j = 0; j < FS_NN_LANES; ++j) s[j] = q[j] = (T)0;
    const T c1 = (T)1 - beta1, c2 = (T)1 - beta2;
    ptrdiff_t k = lo;
    for (; k + FS_NN_LANES <= hi; k += FS_NN_LANES) {
        for (int j = 0; j < FS_NN_LANES; ++j) {
            const T wn = SFX(adam_one)(w, m1, m2, g, k + j, gscale, decay, lr_t, beta1, beta2,
                                       c1, c2, eps);
            s[j] += wn - wn;
            q[j] += wn * wn;
        }
    }
    for (int j = 0; k < hi; ++k, ++j) {
        const T wn = SFX(adam_one)(w, m1, m2, g, k, gscale, decay, lr_t, beta1, beta2, c1, c2,
                                   eps);
        s[j] += wn - wn;
        q[j] += wn * wn;
    }
    T st = (T)0, qt = (T)0;
    for (int j = 0; j < FS_NN_LANES; ++j) {
        st += s[j];
        qt += q[j];
    }
    *sq = qt;
    return st;
}

FS_INLINE int SFX(adam_step_body)(ptrdiff_t n, ptrdiff_t n_decay, T *w, T *m1, T *m2, const T *g,
                         T gscale, T decay, T lr_t, T beta1, T beta2, T eps, T *w_sq)
{
    T q_decay, q_rest;
    T s = SFX(adam_range)(0, n_decay, w, m1, m2, g, gscale, decay, lr_t, beta1, beta2, eps,
                          &q_decay);
    s += SFX(adam_range)(n_decay, n, w, m1, m2, g, gscale, (T)0, lr_t, beta1, beta2, eps,
                         &q_rest);
    if (w_sq) *w_sq = q_decay;
    return s == (T)0 ? FS_OK : FS_ERR_NONFINITE;
}

/* The public functions: the bodies above in a portable, an AVX2 and an AVX-512 copy (dispatch.h).
 * The optimizer steps run a square root and a division per parameter on every mini-batch, which
 * SSE2 does 2 (double) / 4 (float) at a time. */
FS_DISPATCH_AVX512(void, SFX(fs_nn_bias_act), SFX(bias_act_body),
                   (ptrdiff_t n, ptrdiff_t m, T *z, const T *b, int act), (n, m, z, b, act))
FS_DISPATCH_AVX512(void, SFX(fs_nn_act_backward_colsum), SFX(act_backward_colsum_body),
                   (ptrdiff_t n, ptrdiff_t m, T *delta, const T *a, int act, T *bias_grad),
                   (n, m, delta, a, act, bias_grad))
FS_DISPATCH_AVX512(int, SFX(fs_nn_sgd_step), SFX(sgd_step_body),
                   (ptrdiff_t n, ptrdiff_t n_decay, T *w, T *velocity, const T *g, T gscale,
                    T decay, T lr, T momentum, int nesterov, T *w_sq),
                   (n, n_decay, w, velocity, g, gscale, decay, lr, momentum, nesterov, w_sq))
FS_DISPATCH_AVX512(int, SFX(fs_nn_adam_step), SFX(adam_step_body),
                   (ptrdiff_t n, ptrdiff_t n_decay, T *w, T *m1, T *m2, const T *g, T gscale,
                    T decay, T lr_t, T beta1, T beta2, T eps, T *w_sq),
                   (n, n_decay, w, m1, m2, g, gscale, decay, lr_t, beta1, beta2, eps, w_sq))

#undef T
#undef SFX
#undef FEXP
#undef FLOG
#undef FLOG1P
#undef FABS
#undef FSQRT
#undef SIGMOID
#undef TANH
#undef DSIGMOID
#undef DTANH
