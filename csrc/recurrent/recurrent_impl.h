/* Type-generic bodies of the recurrent kernels, included twice by recurrent.c (float, double).
 * Not a public header. Expects: REAL (float/double), SFX(name) (fs_ ## name ## _f / _d),
 * VSIGMOID, VTANH (vecmath.h functions of that type), ONE, ZERO, TILE_FN, CELL_FN, BROW_FN,
 * TILE_NR (packed-tile kernel, forward and backward cell types, panel width), UINT and EXP_BITS
 * (the unsigned integer of REAL's width and its exponent mask); it #undefs them all at its end.
 *
 * Every body is FS_INLINE (always_inline) so that it is compiled twice: once for the baseline
 * ISA and once inside a function carrying FS_TARGET_AVX2, chosen at run time (FS_DISPATCH_AVX2
 * below, lib/dispatch.h). After the bodies: the AVX-512 cells (V512(op), VT512, MASK512, W512 on
 * x86) and the public functions.
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
    /* x is inf or NaN iff its exponent bits are all ones. An integer OR-reduction vectorises
     * into independent lanes; a floating-point sum (x - x) was one dependent add chain, since
     * the compiler may not reassociate it. */
    UINT bad = 0;
    for (ptrdiff_t i = 0; i < n; ++i) {
        UINT u;
        memcpy(&u, a + i, sizeof u);
        bad |= (UINT)((u & EXP_BITS) == EXP_BITS);
    }
    return bad == 0;
}

/* ---- whole-sequence LSTM loops on packed weights (see fs_lstm_forward_seq_* in recurrent.h) ---
 * One thread's share: the row tiles of slots tid, tid + nt, ... (fs_tile_count / fs_tile_rows),
 * every step.
 * A row is one sequence (rows are sorted by length), and nothing in a step couples two rows, so a
 * thread owns its sequences for the whole call and the threads never wait for each other. Tiles
 * interleave across threads (snake order) so that a ragged batch (long sequences first) splits
 * evenly.
 *
 * Forward, per step: tbuf = [x_t | h_{t-1}][tile rows] @ [w_ih | w_hh]^T (the four gates of a
 * unit block, K = D + H; the input projection rides in the same tile product instead of a
 * separate GEMM over all steps), then the cell update of those rows and units. */
FS_INLINE void SFX(lstm_forward_seq_body)(int tid, int nt, ptrdiff_t T, ptrdiff_t D, ptrdiff_t H,
                                          const ptrdiff_t *batch_sizes, REAL *gates,
                                          const REAL *bias, const REAL *w_packed, TILE_FN tile,
                                          CELL_FN cell, const REAL *c_init, REAL *cells,
                                          const REAL *x, REAL *xh, REAL *y,
                                          const ptrdiff_t *perm, REAL *h_n, REAL *c_n)
{
    const ptrdiff_t U = TILE_NR / 4, G4 = 4 * H, L = D + H;
    const ptrdiff_t B0 = batch_sizes[0], ntiles = fs_tile_count(B0, nt);
    REAL tbuf[FS_TILE_MR * TILE_NR];
    ptrdiff_t off = 0, off_prev = 0;
    for (ptrdiff_t t = 0; t < T; ++t) {
        const ptrdiff_t n = batch_sizes[t], n_next = t + 1 < T ? batch_sizes[t + 1] : 0;
        const REAL *a_in = xh + off * L;                /* rows [x_t | h_{t-1}] of step t */
        /* h part of step t + 1's rows (none after the last step: no pointer past xh) */
        REAL *h_out = n_next > 0 ? xh + (off + n) * L + D : NULL;
        const REAL *c_prev = t == 0 ? c_init : cells + off_prev * H;
        REAL *c_out = cells + off * H;
        REAL *g = gates + off * G4;
        /* this thread's rows of x_t into xh, just before the tile products read them */
        for (ptrdiff_t k = tid; k < ntiles; k += nt) {
            ptrdiff_t r0;
            const int mr = fs_tile_rows(k, nt, B0, ntiles, n, &r0);
            for (ptrdiff_t row = r0; row < r0 + mr; ++row)
                memcpy(xh + (off + row) * L, x + (perm[row] * T + t) * D,
                       (size_t)D * sizeof(REAL));
        }
        /* panels outer, tiles inner: a panel (L x NR) stays in L1/L2 across this thread's tiles */
        for (ptrdiff_t u0 = 0; u0 < H; u0 += U) {
            const ptrdiff_t nu = H - u0 < U ? H - u0 : U;
            const REAL *panel = w_packed + (u0 / U) * L * TILE_NR;
            for (ptrdiff_t k = tid; k < ntiles; k += nt) {
                ptrdiff_t r0;
                const int mr = fs_tile_rows(k, nt, B0, ntiles, n, &r0);
                if (mr == 0)
                    break;
                REAL *ho[FS_TILE_MR], *yo[FS_TILE_MR];
                tile(mr, TILE_NR, L, a_in + r0 * L, L, panel, tbuf);
                for (int r = 0; r < mr; ++r) {
                    const ptrdiff_t row = r0 + r;
                    /* a sequence ending at t writes h straight to h_n: its row of step t+1 would
                     * lie past that step's block, in rows another thread fills at step t+1 */
                    ho[r] = (row < n_next ? h_out + row * L : h_n + perm[row] * H) + u0;
                    yo[r] = y + (perm[row] * T + t) * H + u0;
                }
                if (cell) {
                    cell(mr, (int)nu, tbuf, g + r0 * G4 + u0, G4, H, bias + u0,
                         c_prev + r0 * H + u0, c_out + r0 * H + u0, ho, yo);
                    continue;
                }
                for (int r = 0; r < mr; ++r) {
                    const ptrdiff_t row = r0 + r;
                    REAL *z = g + row * G4 + u0;
                    for (ptrdiff_t q = 0; q < 4; ++q)
                        memcpy(z + q * H, tbuf + r * TILE_NR + q * U, (size_t)nu * sizeof(REAL));
                    SFX(lstm_forward_row)(nu, z, z + H, z + 2 * H, z + 3 * H, bias + u0,
                                          bias + H + u0, bias + 2 * H + u0, bias + 3 * H + u0,
                                          c_prev + row * H + u0, c_out + row * H + u0, ho[r],
                                          yo[r]);
                }
            }
        }
        /* sequences whose last step is t (rows [n_next, n)) hand over their final cell state */
        for (ptrdiff_t k = tid; k < ntiles; k += nt) {
            ptrdiff_t r0;
            const int mr = fs_tile_rows(k, nt, B0, ntiles, n, &r0);
            for (ptrdiff_t row = r0 > n_next ? r0 : n_next; row < r0 + mr; ++row)
                memcpy(c_n + perm[row] * H, c_out + row * H, (size_t)H * sizeof(REAL));
        }
        off_prev = off;
        off += n;
    }
}

/* Backward through time for one thread's tiles, steps t1-1 down to t0. dh, dc (B, H): on entry
 * dL/dh, dL/dc reaching step t1 - 1 in sorted order; on exit those reaching step t0 - 1. dgates
 * receives the rows of steps [t0, t1) only (row 0 = first row of step t0). w_packed:
 * [w_hh | w_ih] (4H x (H + D)) packed with fs_pack_rows, so that ONE tile product per step gives
 * [dh_{t-1} | dx_t] = dgates_t @ [w_hh | w_ih] while dgates_t is in cache (dx_t goes straight to
 * dx[perm[row], t]). xh_packed receives the thread's rows of xh for those steps (fs_pack_row). */
FS_INLINE void SFX(lstm_backward_seq_body)(int tid, int nt, ptrdiff_t T, ptrdiff_t t0,
                                           ptrdiff_t t1, ptrdiff_t H, ptrdiff_t D,
                                           const ptrdiff_t *batch_sizes,
                                           const REAL *gates, const REAL *cells,
                                           const REAL *c_init, const REAL *dy,
                                           const ptrdiff_t *perm, const REAL *w_packed,
                                           TILE_FN tile, BROW_FN brow, REAL *dh, REAL *dc,
                                           REAL *dgates, REAL *dx, const REAL *xh,
                                           REAL *xh_packed)
{
    const ptrdiff_t G4 = 4 * H, W = H + D;
    const ptrdiff_t B0 = batch_sizes[t0], ntiles = fs_tile_count(B0, nt);
    REAL tbuf[FS_TILE_MR * TILE_NR];
    ptrdiff_t off = 0, off0 = 0;           /* rows before step t1 / before step t0 */
    for (ptrdiff_t t = 0; t < t1; ++t) {
        off += batch_sizes[t];
        off0 += t < t0 ? batch_sizes[t] : 0;
    }
    const ptrdiff_t chunk = off - off0;    /* rows of steps [t0, t1): xh_packed's K */
    for (ptrdiff_t t = t1 - 1; t >= t0; --t) {
        const ptrdiff_t n = batch_sizes[t];
        off -= n;
        const REAL *c_prev = t == 0 ? c_init : cells + (off - batch_sizes[t - 1]) * H;
        const REAL *c_cur = cells + off * H;
        const REAL *a = gates + off * G4;
        REAL *d = dgates + (off - off0) * G4;
        for (ptrdiff_t k = tid; k < ntiles; k += nt) {
            ptrdiff_t r0;
            const int mr = fs_tile_rows(k, nt, B0, ntiles, n, &r0);
            for (ptrdiff_t row = r0; row < r0 + mr; ++row) {
                const REAL *ar = a + row * G4;
                REAL *dr = d + row * G4;
                /* this row of xh into the chunk's packed panels, for the weight gradients that
                 * follow: each thread packs the rows it owns */
                SFX(pack_row)(chunk, W, xh + (off + row) * W, off - off0 + row, xh_packed);
                if (brow) {
                    brow(H, ar, c_prev + row * H, c_cur + row * H, dy + (perm[row] * T + t) * H,
                         dh + row * H, dc + row * H, dr);
                    continue;
                }
                SFX(lstm_backward_row)(H, ar, ar + H, ar + 2 * H, ar + 3 * H, c_prev + row * H,
                                       c_cur + row * H, dy + (perm[row] * T + t) * H,
                                       dh + row * H, dc + row * H, dr, dr + H, dr + 2 * H,
                                       dr + 3 * H);
            }
        }
        /* [dh | dx_t][rows] = dgates_t[rows] @ [w_hh | w_ih] */
        for (ptrdiff_t j0 = 0; j0 < W; j0 += TILE_NR) {
            const ptrdiff_t j1 = W - j0 < TILE_NR ? W : j0 + TILE_NR;
            const ptrdiff_t jh = j1 < H ? j1 : H;            /* columns [j0, jh) are dh's */
            const REAL *panel = w_packed + (j0 / TILE_NR) * G4 * TILE_NR;
            for (ptrdiff_t k = tid; k < ntiles; k += nt) {
                ptrdiff_t r0;
                const int mr = fs_tile_rows(k, nt, B0, ntiles, n, &r0);
                if (mr == 0)
                    break;
                tile(mr, (int)(j1 - j0), G4, d + r0 * G4, G4, panel, tbuf);
                for (int r = 0; r < mr; ++r) {
                    const ptrdiff_t row = r0 + r;
                    const REAL *src = tbuf + r * TILE_NR;
                    if (jh > j0)
                        memcpy(dh + row * H + j0, src, (size_t)(jh - j0) * sizeof(REAL));
                    const ptrdiff_t jx = j0 > H ? j0 : H;     /* columns [jx, j1) are dx's */
                    if (j1 > jx)
                        memcpy(dx + (perm[row] * T + t) * D + (jx - H), src + (jx - j0),
                               (size_t)(j1 - jx) * sizeof(REAL));
                }
            }
        }
    }
}

/* One thread's share of a chunk's weight gradients: dw (G4 x L) += dgates^T @ xh over `rows`
 * rows (xh_packed: the chunk's xh packed as by fs_pack_rows; transposed-A tiles over this
 * thread's row tiles of dw, see fs_tile_rows) and dbias += the column sums of dgates over
 * columns [G4 tid / nt, G4 (tid+1) / nt).
 * Every element is summed by one thread in row order, so the result does not depend on nt. */
FS_INLINE void SFX(lstm_wgrad_body)(int tid, int nt, ptrdiff_t rows, ptrdiff_t G4, ptrdiff_t L,
                                    const REAL *dgates, const REAL *xh_packed, REAL *dw,
                                    REAL *dbias, TILE_FN tile)
{
    REAL tbuf[FS_TILE_MR * TILE_NR];
    const ptrdiff_t ntiles = fs_tile_count(G4, nt);
    for (ptrdiff_t kt = tid; kt < ntiles; kt += nt) {
        ptrdiff_t i0;
        const int mr = fs_tile_rows(kt, nt, G4, ntiles, G4, &i0);
        for (ptrdiff_t j0 = 0; j0 < L; j0 += TILE_NR) {
            const ptrdiff_t nj = L - j0 < TILE_NR ? L - j0 : TILE_NR;
            /* tbuf = dgates[:, i0:i0+mr].T @ xh[:, j0:j0+NR] */
            tile(mr, (int)nj, rows, dgates + i0, G4, xh_packed + (j0 / TILE_NR) * rows * TILE_NR,
                 tbuf);
            for (int r = 0; r < mr; ++r)
                SFX(add_row)(nj, tbuf + r * TILE_NR, dw + (i0 + r) * L + j0);
        }
    }
    const ptrdiff_t c0 = G4 * tid / nt, c1 = G4 * (tid + 1) / nt;
    for (ptrdiff_t k = 0; k < rows; ++k)
        SFX(add_row)(c1 - c0, dgates + k * G4 + c0, dbias + c0);
}

/* ---- the public functions: portable and AVX2+FMA copies of the bodies above (dispatch.h) -----
 * The AVX-512 paths of the LSTM are the explicit tile and cell kernels chosen by `isa`. */
FS_DISPATCH_AVX2(void, SFX(rnn_forward_step), SFX(rnn_forward_step_body),
                 (ptrdiff_t n, ptrdiff_t H, REAL *z, const REAL *bias, int relu, REAL *h_out,
                  REAL *y_t, ptrdiff_t y_stride, const ptrdiff_t *perm),
                 (n, H, z, bias, relu, h_out, y_t, y_stride, perm))
FS_DISPATCH_AVX2(void, SFX(rnn_backward_step), SFX(rnn_backward_step_body),
                 (ptrdiff_t n, ptrdiff_t H, const REAL *h, int relu, const REAL *dy_t,
                  ptrdiff_t dy_stride, const ptrdiff_t *perm, const REAL *dh_next, REAL *dz),
                 (n, H, h, relu, dy_t, dy_stride, perm, dh_next, dz))
FS_DISPATCH_AVX2(void, SFX(column_sums), SFX(column_sums_body),
                 (ptrdiff_t n, ptrdiff_t m, const REAL *a, REAL *out), (n, m, a, out))
FS_DISPATCH_AVX2(int, SFX(all_finite), SFX(all_finite_body), (ptrdiff_t n, const REAL *a), (n, a))

/* One thread's share of the whole-sequence loops (called by the team's threads). */
FS_DISPATCH_AVX2(void, SFX(lstm_forward_rows), SFX(lstm_forward_seq_body),
                 (int tid, int nt, ptrdiff_t T, ptrdiff_t D, ptrdiff_t H,
                  const ptrdiff_t *batch_sizes, REAL *gates, const REAL *bias,
                  const REAL *w_packed, TILE_FN tile, CELL_FN cell, const REAL *c_init,
                  REAL *cells, const REAL *x, REAL *xh, REAL *y, const ptrdiff_t *perm, REAL *h_n,
                  REAL *c_n),
                 (tid, nt, T, D, H, batch_sizes, gates, bias, w_packed, tile, cell, c_init, cells,
                  x, xh, y, perm, h_n, c_n))
FS_DISPATCH_AVX2(void, SFX(lstm_backward_rows), SFX(lstm_backward_seq_body),
                 (int tid, int nt, ptrdiff_t T, ptrdiff_t t0, ptrdiff_t t1, ptrdiff_t H,
                  ptrdiff_t D, const ptrdiff_t *batch_sizes, const REAL *gates, const REAL *cells,
                  const REAL *c_init, const REAL *dy, const ptrdiff_t *perm,
                  const REAL *w_packed, TILE_FN tile, BROW_FN brow, REAL *dh, REAL *dc,
                  REAL *dgates, REAL *dx, const REAL *xh, REAL *xh_packed),
                 (tid, nt, T, t0, t1, H, D, batch_sizes, gates, cells, c_init, dy, perm, w_packed,
                  tile, brow, dh, dc, dgates, dx, xh, xh_packed))
FS_DISPATCH_AVX2(void, SFX(lstm_wgrad_rows), SFX(lstm_wgrad_body),
                 (int tid, int nt, ptrdiff_t rows, ptrdiff_t G4, ptrdiff_t L,
                  const REAL *dgates, const REAL *xh_packed, REAL *dw, REAL *dbias,
                  TILE_FN tile),
                 (tid, nt, rows, G4, L, dgates, xh_packed, dw, dbias, tile))

#ifdef FS_HAVE_X86_ISA
/* ---- AVX-512 LSTM cells (x86: V512(op) = _mm512_<op>_ps/pd, VT512, MASK512, W512 lanes) ------
 * The forward cell update of one packed tile. Two passes over the tile rather than one per row:
 * a row's update is a long dependent chain (gate activations -> c -> tanh(c) -> h, ~150 cycles
 * of latency), so one row at a time runs at a third of the core's throughput; in two passes
 * every iteration is independent of the last and the out-of-order core overlaps them. Pass 2
 * re-reads the activations from L1. */
static FS_TARGET_AVX512 void SFX(cell512)(
    int mr, int nu, REAL *acc, REAL *z, ptrdiff_t zs, ptrdiff_t H, const REAL *b,
    const REAL *cp, REAL *co, REAL *const *ho, REAL *const *yo)
{
    const MASK512 m = (MASK512)(nu >= W512 ? ~0u : (1u << nu) - 1u);
    const int full = nu >= W512;
    VT512 bq[4];
    for (int q = 0; q < 4; ++q)
        bq[q] = LD512(b + q * H);
    for (int r = 0; r < mr; ++r) {   /* pass 1: activations, in place in the tile */
        REAL *ar = acc + r * 4 * W512;
        VT512 pre[4];
        for (int q = 0; q < 4; ++q)
            pre[q] = V512(add)(V512(loadu)(ar + q * W512), bq[q]);
        V512(storeu)(ar, SFX(sigmoid512)(pre[0]));
        V512(storeu)(ar + W512, SFX(sigmoid512)(pre[1]));
        V512(storeu)(ar + 2 * W512, SFX(tanh512)(pre[2]));
        V512(storeu)(ar + 3 * W512, SFX(sigmoid512)(pre[3]));
    }
    for (int r = 0; r < mr; ++r) {   /* pass 2: c, h; activations out to z */
        const REAL *ar = acc + r * 4 * W512;
        REAL *zr = z + r * zs;
        const VT512 i = V512(loadu)(ar), f = V512(loadu)(ar + W512);
        const VT512 g = V512(loadu)(ar + 2 * W512), o = V512(loadu)(ar + 3 * W512);
        const VT512 c = V512(fmadd)(f, LD512(cp + r * H), V512(mul)(i, g));
        const VT512 h = V512(mul)(o, SFX(tanh512)(c));
        STNT512(zr, i);
        STNT512(zr + H, f);
        STNT512(zr + 2 * H, g);
        STNT512(zr + 3 * H, o);
        ST512(co + r * H, c);
        ST512(ho[r], h);
        STNT512(yo[r], h);
    }
}

/* The backward cell of one row (lstm_backward_row above, same formulas, W512 units per
 * iteration; the units past the last full vector masked). */
static FS_TARGET_AVX512 void SFX(brow512)(
    ptrdiff_t H, const REAL *a, const REAL *cp, const REAL *cc, const REAL *dy,
    const REAL *dhn, REAL *dcn, REAL *d)
{
    const VT512 one = V512(set1)(1);
    for (ptrdiff_t k = 0; k < H; k += W512) {
        const int full = H - k >= W512;
        const MASK512 m = (MASK512)(full ? ~0u : (1u << (H - k)) - 1u);
        const VT512 i = LD512(a + k), f = LD512(a + H + k);
        const VT512 g = LD512(a + 2 * H + k), o = LD512(a + 3 * H + k);
        const VT512 tc = SFX(tanh512)(LD512(cc + k));
        const VT512 dh = V512(add)(LD512(dhn + k), LD512(dy + k));
        const VT512 dc = V512(fmadd)(V512(mul)(dh, o),
                                       V512(fnmadd)(tc, tc, one), LD512(dcn + k));
        ST512(d + k, V512(mul)(V512(mul)(dc, g),
                                     V512(mul)(i, V512(sub)(one, i))));
        ST512(d + H + k, V512(mul)(V512(mul)(dc, LD512(cp + k)),
                                         V512(mul)(f, V512(sub)(one, f))));
        ST512(d + 2 * H + k, V512(mul)(V512(mul)(dc, i),
                                             V512(fnmadd)(g, g, one)));
        ST512(d + 3 * H + k, V512(mul)(V512(mul)(dh, tc),
                                             V512(mul)(o, V512(sub)(one, o))));
        ST512(dcn + k, V512(mul)(dc, f));
    }
}
#endif /* FS_HAVE_X86_ISA */

/* ---- whole-sequence LSTM calls: a team of the pool's threads, each with its own sequences ---- */
struct SFX(fwd_args) {
    ptrdiff_t T, D, H;
    const ptrdiff_t *batch_sizes, *perm;
    REAL *gates, *cells, *xh, *y, *h_n, *c_n;
    const REAL *bias, *w_packed, *c_init, *x;
    TILE_FN tile;
    CELL_FN cell;
};

static void SFX(fwd_share)(void *p, int tid, int nt)
{
    const struct SFX(fwd_args) *a = (const struct SFX(fwd_args) *)p;
    SFX(lstm_forward_rows)(tid, nt, a->T, a->D, a->H, a->batch_sizes, a->gates, a->bias,
                           a->w_packed, a->tile, a->cell, a->c_init, a->cells, a->x,
                           a->xh, a->y, a->perm, a->h_n, a->c_n);
    FS_SFENCE(); /* the cell's non-temporal stores are visible before the join */
}

void SFX(lstm_forward_seq)(ptrdiff_t T, ptrdiff_t D, ptrdiff_t H, const ptrdiff_t *batch_sizes,
                           REAL *gates, const REAL *bias, const REAL *w_packed, const REAL *c_init,
                           REAL *cells, const REAL *x, REAL *xh, REAL *y, const ptrdiff_t *perm,
                           REAL *h_n, REAL *c_n, int isa, int max_threads)
{
    struct SFX(fwd_args) a = {T, D, H, batch_sizes, perm, gates, cells, xh, y, h_n, c_n,
                              bias, w_packed, c_init, x, SFX(tile_kernel)(isa),
                              FS_CELL512(isa)};
    double rows = 0;
    for (ptrdiff_t t = 0; t < T; ++t)
        rows += (double)batch_sizes[t];
    fs_pool_run(fs_team_size(batch_sizes[0], rows * 8.0 * (double)H * (double)(D + H),
                             max_threads),
                SFX(fwd_share), &a);
}

struct SFX(bwd_args) {
    ptrdiff_t T, t0, t1, H, D;
    const ptrdiff_t *batch_sizes, *perm;
    const REAL *gates, *cells, *c_init, *dy, *w_packed, *xh;
    REAL *dh, *dc, *dgates, *dx, *xh_packed;
    TILE_FN tile;
    BROW_FN brow;
};

static void SFX(bwd_share)(void *p, int tid, int nt)
{
    const struct SFX(bwd_args) *a = (const struct SFX(bwd_args) *)p;
    SFX(lstm_backward_rows)(tid, nt, a->T, a->t0, a->t1, a->H, a->D, a->batch_sizes,
                            a->gates, a->cells, a->c_init, a->dy, a->perm, a->w_packed,
                            a->tile, a->brow, a->dh, a->dc, a->dgates, a->dx, a->xh,
                            a->xh_packed);
}

void SFX(lstm_backward_seq)(ptrdiff_t T, ptrdiff_t t0, ptrdiff_t t1, ptrdiff_t H, ptrdiff_t D,
                            const ptrdiff_t *batch_sizes, const REAL *gates, const REAL *cells,
                            const REAL *c_init, const REAL *dy, const ptrdiff_t *perm,
                            const REAL *w_packed, REAL *dh, REAL *dc, REAL *dgates, REAL *dx,
                            const REAL *xh, REAL *xh_packed, int isa, int max_threads)
{
    struct SFX(bwd_args) a = {T, t0, t1, H, D, batch_sizes, perm, gates, cells, c_init,
                              dy, w_packed, xh, dh, dc, dgates, dx, xh_packed,
                              SFX(tile_kernel)(isa), FS_BROW512(isa)};
    double rows = 0;
    for (ptrdiff_t t = t0; t < t1; ++t)
        rows += (double)batch_sizes[t];
    fs_pool_run(fs_team_size(batch_sizes[t0], rows * 8.0 * (double)H * (double)(H + D),
                             max_threads),
                SFX(bwd_share), &a);
}

/* Weight gradients of a chunk of rows: the team splits the rows of dw (4H), each thread running
 * the transposed-A tiles over the xh chunk that fs_lstm_backward_seq packed (no BLAS call: see
 * lib/pool.c). */
struct SFX(wgrad_args) {
    ptrdiff_t rows, G4, L;
    const REAL *dgates, *xh_packed;
    REAL *dw, *dbias;
    TILE_FN tile;
};

static void SFX(wgrad_share)(void *p, int tid, int nt)
{
    const struct SFX(wgrad_args) *a = (const struct SFX(wgrad_args) *)p;
    SFX(lstm_wgrad_rows)(tid, nt, a->rows, a->G4, a->L, a->dgates, a->xh_packed, a->dw,
                         a->dbias, a->tile);
}

void SFX(lstm_weight_grads)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t D, const REAL *dgates,
                            const REAL *xh_packed, REAL *dw, REAL *dbias, int isa, int max_threads)
{
    const ptrdiff_t L = D + H;
    struct SFX(wgrad_args) a = {rows, 4 * H, L, dgates, xh_packed, dw, dbias,
                                SFX(tile_t_kernel)(isa)};
    fs_pool_run(fs_team_size(4 * H, 8.0 * (double)rows * (double)H * (double)L, max_threads),
                SFX(wgrad_share), &a);
}

#undef REAL
#undef SFX
#undef VSIGMOID
#undef VTANH
#undef ONE
#undef ZERO
#undef TILE_FN
#undef CELL_FN
#undef BROW_FN
#undef TILE_NR
#undef UINT
#undef EXP_BITS
#undef V512
#undef VT512
#undef MASK512
#undef W512
