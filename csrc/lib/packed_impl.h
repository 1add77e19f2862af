/* Type-generic bodies of the packed-panel kernels (layout and contract in packed.h), included by
 * packed.c once per (precision, left-operand layout). Expects REAL, SFX(name) (name ## _f / _d,
 * or _tf / _td for the transposed-A kernels), NR (panel width), AX(r, k) (element (r, k) of the
 * left operand), PACK_FUNCTIONS (defined for the row-major instantiations only: the packing
 * routines), and on x86 V512(op) / VT512 / W512 and V256(op) / VT256 / W256 (the intrinsic
 * `_mm512_<op>_ps` etc., the vector type and its width in elements). Not a public header; it
 * #undefs its parameters at its end.
 */

#ifdef PACK_FUNCTIONS
/* ---- packing (once per call; plain loops) ------------------------------------------------- */
void SFX(fs_pack_row)(ptrdiff_t K, ptrdiff_t N, const REAL *row, ptrdiff_t k, REAL *Bp)
{
    Bp += k * NR;
    for (ptrdiff_t j0 = 0; j0 < N; j0 += NR, Bp += K * NR) {
        const ptrdiff_t nj = N - j0 < NR ? N - j0 : NR;
        ptrdiff_t c = 0;
        for (; c < nj; ++c)
            Bp[c] = row[j0 + c];
        for (; c < NR; ++c)
            Bp[c] = 0;
    }
}

void SFX(fs_pack_rows)(ptrdiff_t K, ptrdiff_t N, const REAL *b, ptrdiff_t ldb, REAL *Bp)
{
    for (ptrdiff_t k = 0; k < K; ++k)
        SFX(fs_pack_row)(K, N, b + k * ldb, k, Bp);
}

void SFX(fs_pack_lstm_gates)(ptrdiff_t H, ptrdiff_t K, const REAL *w, REAL *Bp)
{
    const ptrdiff_t U = NR / 4;
    for (ptrdiff_t u0 = 0; u0 < H; u0 += U) {
        const ptrdiff_t nu = H - u0 < U ? H - u0 : U;
        for (ptrdiff_t k = 0; k < K; ++k, Bp += NR)
            for (ptrdiff_t q = 0; q < 4; ++q)
                for (ptrdiff_t u = 0; u < U; ++u)
                    Bp[q * U + u] = u < nu ? w[(q * H + u0 + u) * K + k] : 0;
    }
}
#endif

/* ---- portable kernel ---------------------------------------------------------------------- */
static void SFX(tile_generic)(int mr, int nc, ptrdiff_t K, const REAL *A, ptrdiff_t lda,
                               const REAL *Bp, REAL *C)
{
    (void)nc; /* all NR columns: the padding is zeros */
    for (int r = 0; r < mr; ++r)
        for (int c = 0; c < NR; ++c)
            C[r * NR + c] = 0;
    for (ptrdiff_t k = 0; k < K; ++k)
        for (int r = 0; r < mr; ++r) {
            const REAL a = AX(r, k);
            REAL *restrict cr = C + r * NR;
            const REAL *restrict b = Bp + k * NR;
            for (int c = 0; c < NR; ++c)
                cr[c] += a * b[c];
        }
}

#ifdef FS_HAVE_X86_ISA
/* ---- AVX-512: tile mr x (nv vectors of W512), nv = the vectors holding the nc valid columns ----
 * 24 named accumulators rather than arrays: with arrays GCC zeroed a 1.5 KiB stack copy with
 * `rep stos` on every call (4% of a forward) before keeping the live rows in registers. Rows
 * r >= mr and vectors q >= nv vanish at compile time (both are constants in each instantiation),
 * so a panel's zero padding costs no FMAs: e.g. D + H = 96 floats is a full panel and a half
 * one, and the half one runs a 6 x 2-vector tile. */
FS_INLINE FS_TARGET_AVX512 void
SFX(tile512_n)(const int mr, const int nv, ptrdiff_t K, const REAL *A, ptrdiff_t lda,
                  const REAL *Bp, REAL *C)
{
    const VT512 zero = V512(setzero)();
    VT512 c00 = zero, c01 = zero, c02 = zero, c03 = zero, c10 = zero, c11 = zero, c12 = zero;
    VT512 c13 = zero, c20 = zero, c21 = zero, c22 = zero, c23 = zero, c30 = zero, c31 = zero;
    VT512 c32 = zero, c33 = zero, c40 = zero, c41 = zero, c42 = zero, c43 = zero, c50 = zero;
    VT512 c51 = zero, c52 = zero, c53 = zero;
    for (ptrdiff_t k = 0; k < K; ++k) {
        const REAL *b = Bp + k * 4 * W512;
        const VT512 b0 = V512(loadu)(b);
        const VT512 b1 = nv > 1 ? V512(loadu)(b + W512) : zero;
        const VT512 b2 = nv > 2 ? V512(loadu)(b + 2 * W512) : zero;
        const VT512 b3 = nv > 3 ? V512(loadu)(b + 3 * W512) : zero;
        FS_ROW512_FMA(0, c00, c01, c02, c03)
        FS_ROW512_FMA(1, c10, c11, c12, c13)
        FS_ROW512_FMA(2, c20, c21, c22, c23)
        FS_ROW512_FMA(3, c30, c31, c32, c33)
        FS_ROW512_FMA(4, c40, c41, c42, c43)
        FS_ROW512_FMA(5, c50, c51, c52, c53)
    }
    FS_ROW512_STORE(0, c00, c01, c02, c03)
    FS_ROW512_STORE(1, c10, c11, c12, c13)
    FS_ROW512_STORE(2, c20, c21, c22, c23)
    FS_ROW512_STORE(3, c30, c31, c32, c33)
    FS_ROW512_STORE(4, c40, c41, c42, c43)
    FS_ROW512_STORE(5, c50, c51, c52, c53)
}

FS_INLINE FS_TARGET_AVX512 void SFX(tile512_nv)(
    const int nv, int mr, ptrdiff_t K, const REAL *A, ptrdiff_t lda, const REAL *Bp, REAL *C)
{
    FS_MR_SWITCH(SFX(tile512_n), nv, K, A, lda, Bp, C)
}

static FS_TARGET_AVX512 void SFX(tile512)(
    int mr, int nc, ptrdiff_t K, const REAL *A, ptrdiff_t lda, const REAL *Bp, REAL *C)
{
    switch ((nc + W512 - 1) / W512) {
    case 1: SFX(tile512_nv)(1, mr, K, A, lda, Bp, C); break;
    case 2: SFX(tile512_nv)(2, mr, K, A, lda, Bp, C); break;
    case 3: SFX(tile512_nv)(3, mr, K, A, lda, Bp, C); break;
    default: SFX(tile512_nv)(4, mr, K, A, lda, Bp, C); break;
    }
}

/* ---- AVX2+FMA: the 8-vector panel in 4 strips of 2 vectors, tile mr x 2 each -------------- */
FS_INLINE FS_TARGET_AVX2 void
SFX(tile256_n)(const int mr, int ns, ptrdiff_t K, const REAL *A, ptrdiff_t lda,
                  const REAL *Bp, REAL *C)
{
    for (int s = 0; s < ns; ++s) {
        VT256 c0[FS_TILE_MR], c1[FS_TILE_MR];
        for (int r = 0; r < mr; ++r)
            c0[r] = c1[r] = V256(setzero)();
        for (ptrdiff_t k = 0; k < K; ++k) {
            const REAL *b = Bp + k * 8 * W256 + s * 2 * W256;
            const VT256 b0 = V256(loadu)(b), b1 = V256(loadu)(b + W256);
            for (int r = 0; r < mr; ++r) {
                const VT256 a = V256(set1)(AX(r, k));
                c0[r] = V256(fmadd)(a, b0, c0[r]);
                c1[r] = V256(fmadd)(a, b1, c1[r]);
            }
        }
        for (int r = 0; r < mr; ++r) {
            V256(storeu)(C + r * 8 * W256 + s * 2 * W256, c0[r]);
            V256(storeu)(C + r * 8 * W256 + s * 2 * W256 + W256, c1[r]);
        }
    }
}

static FS_TARGET_AVX2 void SFX(tile256)(
    int mr, int nc, ptrdiff_t K, const REAL *A, ptrdiff_t lda, const REAL *Bp, REAL *C)
{
    const int ns = (nc + 2 * W256 - 1) / (2 * W256); /* strips holding the nc valid columns */
    FS_MR_SWITCH(SFX(tile256_n), ns, K, A, lda, Bp, C)
}
#endif /* FS_HAVE_X86_ISA */

#undef REAL
#undef SFX
#undef NR
#undef AX
#undef PACK_FUNCTIONS
#undef V512
#undef VT512
#undef W512
#undef V256
#undef VT256
#undef W256
