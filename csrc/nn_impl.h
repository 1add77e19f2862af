/* Template body of nn.c, included once per floating type with T, SFX(name), FEXP, FLOG, FLOG1P,
 * FABS, FSQRT, SIGMOID, TANH, DSIGMOID, DTANH defined. Not a public header. */

/* z[i, j] = act(z[i, j] + b[j]) in place: the GEMM X @ W has already been written to z. */
void SFX(fs_nn_bias_act)(ptrdiff_t n, ptrdiff_t m, T *z, const T *b, int act)
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
 * Returns FASTSEQ_ERR_NONFINITE if the summed loss is not finite. */
int SFX(fs_nn_loss_grad)(int loss, ptrdiff_t n, ptrdiff_t m, const T *z, const T *y,
                         T *delta, T scale, double *loss_sum)
{
    double total = 0.0;
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
            T sumexp = (T)0;
            for (ptrdiff_t j = 0; j < m; ++j) sumexp += FEXP(zr[j] - zmax);
            const T lse = zmax + FLOG(sumexp);
            const T inv = (T)1 / sumexp;
            double row_loss = 0.0;
            for (ptrdiff_t j = 0; j < m; ++j) row_loss += (double)yr[j] * (double)(lse - zr[j]);
            total += row_loss;
            if (dr) {
                for (ptrdiff_t j = 0; j < m; ++j) dr[j] = scale * (FEXP(zr[j] - zmax) * inv - yr[j]);
            }
        }
    }
    *loss_sum = total;
    return isfinite(total) ? FASTSEQ_OK : FASTSEQ_ERR_NONFINITE;
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

/* SGD with (Nesterov) momentum, as scikit-learn's SGDOptimizer, fused over the flat buffer:
 *   g'  = gscale g + decay w   (decay only on the first n_decay entries: L2 on weights)
 *   v   = momentum v - lr g'
 *   w  += v                          (classical)
 *   w  += momentum v - lr g'         (Nesterov)
 * gscale carries gradient clipping. Returns FASTSEQ_ERR_NONFINITE if any new w is not finite
 * (the sum s of w - w is NaN iff some w is inf or NaN; keeps the loop vectorisable).
 * The range is split at n_decay so each loop is branch-free. */
static T SFX(sgd_range)(ptrdiff_t lo, ptrdiff_t hi, T *w, T *velocity, const T *g, T gscale,
                        T decay, T lr, T momentum, int nesterov)
{
    T s = (T)0;
    const T mu_n = nesterov ? momentum : (T)0, lr_n = nesterov ? lr : (T)0;
    for (ptrdiff_t k = lo; k < hi; ++k) {
        const T gk = gscale * g[k] + decay * w[k];
        const T v = momentum * velocity[k] - lr * gk;
        velocity[k] = v;
        /* classical: w += v; Nesterov: w += momentum v - lr g' (= v + (mu v - lr g') - v) */
        const T step = nesterov ? mu_n * v - lr_n * gk : v;
        w[k] += step;
        s += w[k] - w[k];
    }
    return s;
}

int SFX(fs_nn_sgd_step)(ptrdiff_t n, ptrdiff_t n_decay, T *w, T *velocity, const T *g,
                        T gscale, T decay, T lr, T momentum, int nesterov)
{
    T s = SFX(sgd_range)(0, n_decay, w, velocity, g, gscale, decay, lr, momentum, nesterov);
    s += SFX(sgd_range)(n_decay, n, w, velocity, g, gscale, (T)0, lr, momentum, nesterov);
    return s == (T)0 ? FASTSEQ_OK : FASTSEQ_ERR_NONFINITE;
}

/* Adam (Kingma & Ba), as scikit-learn's AdamOptimizer, with the bias correction folded into
 * lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t) by the caller:
 *   g'  = gscale g + decay w            m1 = beta1 m1 + (1 - beta1) g'
 *   m2  = beta2 m2 + (1 - beta2) g'^2   w -= lr_t m1 / (sqrt(m2) + eps)                   */
static T SFX(adam_range)(ptrdiff_t lo, ptrdiff_t hi, T *w, T *m1, T *m2, const T *g, T gscale,
                         T decay, T lr_t, T beta1, T beta2, T eps)
{
    T s = (T)0;
    const T c1 = (T)1 - beta1, c2 = (T)1 - beta2;
    for (ptrdiff_t k = lo; k < hi; ++k) {
        const T gk = gscale * g[k] + decay * w[k];
        const T a = beta1 * m1[k] + c1 * gk;
        const T b = beta2 * m2[k] + c2 * (gk * gk);
        m1[k] = a;
        m2[k] = b;
        w[k] -= lr_t * a / (FSQRT(b) + eps);
        s += w[k] - w[k];
    }
    return s;
}

int SFX(fs_nn_adam_step)(ptrdiff_t n, ptrdiff_t n_decay, T *w, T *m1, T *m2, const T *g,
                         T gscale, T decay, T lr_t, T beta1, T beta2, T eps)
{
    T s = SFX(adam_range)(0, n_decay, w, m1, m2, g, gscale, decay, lr_t, beta1, beta2, eps);
    s += SFX(adam_range)(n_decay, n, w, m1, m2, g, gscale, (T)0, lr_t, beta1, beta2, eps);
    return s == (T)0 ? FASTSEQ_OK : FASTSEQ_ERR_NONFINITE;
}
