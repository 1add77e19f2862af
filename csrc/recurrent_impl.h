/* Type-generic bodies of the recurrent kernels, included twice by recurrent.c (float, double).
 * Not a public header. Expects: REAL (float/double), SFX(name) (name ## _f / _d),
 * VEXP, VSIGMOID, VTANH (vecmath.h functions of that type), ONE, ZERO.
 *
 * Every body is `static inline` with always_inline so that recurrent.c can compile it twice:
 * once for the baseline ISA and once inside a function carrying
 * __attribute__((target("avx2,fma"))), chosen at run time (see FS_DISPATCH in recurrent.c).
 * The inner loops over k are unit-stride with no branches (selects only), so they vectorise.
 */

/* One row of each kernel, with every array a restrict parameter: GCC vectorises these inner
 * loops reliably, while the same loop written against pointers computed inside the row loop
 * defeats its dependence analysis. */
FS_INLINE void SFX(lstm_forward_row)(ptrdiff_t H, REAL *restrict z_i, REAL *restrict z_f,
                                     REAL *restrict z_g, REAL *restrict z_o,
                                     const REAL *restrict b_i, const REAL *restrict b_f,
                                     const REAL *restrict b_g, const REAL *restrict b_o,
                                     const REAL *restrict cp, REAL *restrict c,
                                     REAL *restrict h, REAL *restrict y)
{
    for (ptrdiff_t k = 0; k < H; ++k) {
        const REAL i = VSIGMOID(z_i[k] + b_i[k]);
        const REAL f = VSIGMOID(z_f[k] + b_f[k]);
        const REAL g = VTANH(z_g[k] + b_g[k]);
        const REAL o = VSIGMOID(z_o[k] + b_o[k]);
        const REAL cn = f * cp[k] + i * g;
        const REAL hn = o * VTANH(cn);
        z_i[k] = i;
        z_f[k] = f;
        z_g[k] = g;
        z_o[k] = o;
        c[k] = cn;
        h[k] = hn;
        y[k] = hn;
    }
}

FS_INLINE void SFX(lstm_forward_step_body)(ptrdiff_t n, ptrdiff_t H, REAL *gates,
                                           const REAL *bias, const REAL *c_prev, REAL *c_out,
                                           REAL *h_out, REAL *y_t, ptrdiff_t y_stride,
                                           const ptrdiff_t *perm)
{
    for (ptrdiff_t r = 0; r < n; ++r) {
        REAL *z = gates + r * 4 * H;
        SFX(lstm_forward_row)(H, z, z + H, z + 2 * H, z + 3 * H, bias, bias + H, bias + 2 * H,
                              bias + 3 * H, c_prev + r * H, c_out + r * H, h_out + r * H,
                              y_t + perm[r] * y_stride);
    }
}

FS_INLINE void SFX(lstm_backward_row)(ptrdiff_t H, const REAL *restrict a_i,
                                      const REAL *restrict a_f, const REAL *restrict a_g,
                                      const REAL *restrict a_o, const REAL *restrict cp,
                                      const REAL *restrict cc, const REAL *restrict dy,
                                      const REAL *restrict dhn, REAL *restrict dcn,
                                      REAL *restrict d_i, REAL *restrict d_f,
                                      REAL *restrict d_g, REAL *restrict d_o)
{
    for (ptrdiff_t k = 0; k < H; ++k) {
        const REAL i = a_i[k], f = a_f[k], g = a_g[k], o = a_o[k];
        const REAL tc = VTANH(cc[k]);
        const REAL dh = dhn[k] + dy[k];
        const REAL dc = dcn[k] + dh * o * (ONE - tc * tc);
        d_i[k] = dc * g * i * (ONE - i);
        d_f[k] = dc * cp[k] * f * (ONE - f);
        d_g[k] = dc * i * (ONE - g * g);
        d_o[k] = dh * tc * o * (ONE - o);
        dcn[k] = dc * f;
    }
}

FS_INLINE void SFX(lstm_backward_step_body)(ptrdiff_t n, ptrdiff_t H, const REAL *gates,
                                            const REAL *c_prev, const REAL *c_cur,
                                            const REAL *dy_t, ptrdiff_t dy_stride,
                                            const ptrdiff_t *perm, const REAL *dh_next,
                                            REAL *dc_next, REAL *dgates)
{
    for (ptrdiff_t r = 0; r < n; ++r) {
        const REAL *a = gates + r * 4 * H;
        REAL *d = dgates + r * 4 * H;
        SFX(lstm_backward_row)(H, a, a + H, a + 2 * H, a + 3 * H, c_prev + r * H, c_cur + r * H,
                               dy_t + perm[r] * dy_stride, dh_next + r * H, dc_next + r * H,
                               d, d + H, d + 2 * H, d + 3 * H);
    }
}

FS_INLINE void SFX(rnn_forward_row)(ptrdiff_t H, int relu, REAL *restrict z,
                                    const REAL *restrict b, REAL *restrict h, REAL *restrict y)
{
    if (relu) {
        for (ptrdiff_t k = 0; k < H; ++k) {
            const REAL v = z[k] + b[k];
            const REAL a = v > ZERO ? v : ZERO;
            z[k] = a;
            h[k] = a;
            y[k] = a;
        }
    } else {
        for (ptrdiff_t k = 0; k < H; ++k) {
            const REAL a = VTANH(z[k] + b[k]);
            z[k] = a;
            h[k] = a;
            y[k] = a;
        }
    }
}

FS_INLINE void SFX(rnn_forward_step_body)(ptrdiff_t n, ptrdiff_t H, REAL *z, const REAL *bias,
                                          int relu, REAL *h_out, REAL *y_t, ptrdiff_t y_stride,
                                          const ptrdiff_t *perm)
{
    for (ptrdiff_t r = 0; r < n; ++r)
        SFX(rnn_forward_row)(H, relu, z + r * H, bias, h_out + r * H, y_t + perm[r] * y_stride);
}

FS_INLINE void SFX(rnn_backward_row)(ptrdiff_t H, int relu, const REAL *restrict h,
                                     const REAL *restrict dy, const REAL *restrict dhn,
                                     REAL *restrict d)
{
    if (relu) {
        for (ptrdiff_t k = 0; k < H; ++k)
            d[k] = h[k] > ZERO ? dhn[k] + dy[k] : ZERO;
    } else {
        for (ptrdiff_t k = 0; k < H; ++k)
            d[k] = (dhn[k] + dy[k]) * (ONE - h[k] * h[k]);
    }
}

FS_INLINE void SFX(rnn_backward_step_body)(ptrdiff_t n, ptrdiff_t H, const REAL *h_act, int relu,
                                           const REAL *dy_t, ptrdiff_t dy_stride,
                                           const ptrdiff_t *perm, const REAL *dh_next,
                                           REAL *dz)
{
    for (ptrdiff_t r = 0; r < n; ++r)
        SFX(rnn_backward_row)(H, relu, h_act + r * H, dy_t + perm[r] * dy_stride,
                              dh_next + r * H, dz + r * H);
}

FS_INLINE void SFX(add_row)(ptrdiff_t m, const REAL *restrict row, REAL *restrict o)
{
    for (ptrdiff_t j = 0; j < m; ++j)
        o[j] += row[j];
}

FS_INLINE void SFX(column_sums_body)(ptrdiff_t n, ptrdiff_t m, const REAL *a, REAL *out)
{
    for (ptrdiff_t j = 0; j < m; ++j)
        out[j] = ZERO;
    for (ptrdiff_t i = 0; i < n; ++i)
        SFX(add_row)(m, a + i * m, out);
}

FS_INLINE int SFX(all_finite_body)(ptrdiff_t n, const REAL *a)
{
    /* x - x is 0 for finite x and NaN for inf/NaN; summing keeps the loop branch-free. */
    REAL acc = ZERO;
    for (ptrdiff_t i = 0; i < n; ++i)
        acc += a[i] - a[i];
    return acc == ZERO;
}
