/* Register-tiled products against packed panels (layout and contract in packed.h).
 *
 * Three kernels per precision, chosen at run time (the wheel is built for baseline x86-64):
 *   AVX-512F: a 6 x 4-vector tile (24 accumulators of 32), per k 4 panel loads + 6 broadcasts
 *             for 24 FMAs; vectors past the nc valid columns are skipped;
 *   AVX2+FMA: the panel in 4 column strips of 2 vectors, 6 x 2 accumulators each (12 of 16);
 *             strips past nc are skipped;
 *   portable: plain loops over all NR columns (the compiler vectorises the column loop).
 * The row count mr is a compile-time constant inside each kernel (a switch over 1..6 calls an
 * always_inline body), so the accumulators live in registers and the row loops are unrolled.
 */
#include "lib/dispatch.h"
#include "lib/packed.h"

#ifdef FS_HAVE_X86_ISA
#include <immintrin.h>
#endif

/* Element (r, k) of the left operand: row-major A (lda = row stride) or, for the "_t" kernels,
 * the transpose of a row-major matrix (A^T[r, k] = A[k * lda + r]). */
#define FS_A_N(r, k) A[(r) * lda + (k)]
#define FS_A_T(r, k) A[(k) * lda + (r)]

/* KERNEL(mr, args...) with mr a compile-time constant 1..6 chosen by the run-time `mr`. */
#define FS_MR_SWITCH(KERNEL, ...)                                                                  \
    switch (mr) {                                                                                  \
    case 6: KERNEL(6, __VA_ARGS__); break;                                                         \
    case 5: KERNEL(5, __VA_ARGS__); break;                                                         \
    case 4: KERNEL(4, __VA_ARGS__); break;                                                         \
    case 3: KERNEL(3, __VA_ARGS__); break;                                                         \
    case 2: KERNEL(2, __VA_ARGS__); break;                                                         \
    default: KERNEL(1, __VA_ARGS__); break;                                                        \
    }

ptrdiff_t fs_packed_size(ptrdiff_t K, ptrdiff_t N, ptrdiff_t nr)
{
    return (N + nr - 1) / nr * K * nr;
}

/* ---- packing (once per call; plain loops) ------------------------------------------------- */
#define FS_DEF_PACK(SFX, REAL, NR)                                                                \
    void fs_pack_row_##SFX(ptrdiff_t K, ptrdiff_t N, const REAL *row, ptrdiff_t k, REAL *Bp)     \
    {                                                                                              \
        Bp += k * NR;                                                                              \
        for (ptrdiff_t j0 = 0; j0 < N; j0 += NR, Bp += K * NR) {                                   \
            const ptrdiff_t nj = N - j0 < NR ? N - j0 : NR;                                        \
            ptrdiff_t c = 0;                                                                       \
            for (; c < nj; ++c)                                                                    \
                Bp[c] = row[j0 + c];                                                               \
            for (; c < NR; ++c)                                                                    \
                Bp[c] = 0;                                                                         \
        }                                                                                          \
    }                                                                                              \
    void fs_pack_rows_##SFX(ptrdiff_t K, ptrdiff_t N, const REAL *b, ptrdiff_t ldb, REAL *Bp)     \
    {                                                                                              \
        for (ptrdiff_t k = 0; k < K; ++k)                                                          \
            fs_pack_row_##SFX(K, N, b + k * ldb, k, Bp);                                           \
    }                                                                                              \
    void fs_pack_lstm_gates_##SFX(ptrdiff_t H, ptrdiff_t K, const REAL *w, REAL *Bp)             \
    {                                                                                              \
        const ptrdiff_t U = NR / 4;                                                                \
        for (ptrdiff_t u0 = 0; u0 < H; u0 += U) {                                                  \
            const ptrdiff_t nu = H - u0 < U ? H - u0 : U;                                          \
            for (ptrdiff_t k = 0; k < K; ++k, Bp += NR)                                            \
                for (ptrdiff_t q = 0; q < 4; ++q)                                                  \
                    for (ptrdiff_t u = 0; u < U; ++u)                                              \
                        Bp[q * U + u] = u < nu ? w[(q * H + u0 + u) * K + k] : 0;                  \
        }                                                                                          \
    }
FS_DEF_PACK(f, float, FS_TILE_NR_F)
FS_DEF_PACK(d, double, FS_TILE_NR_D)

/* ---- portable kernel ---------------------------------------------------------------------- */
#define FS_DEF_GENERIC(SFX, REAL, NR, AX)                                                         \
    static void tile_generic_##SFX(int mr, int nc, ptrdiff_t K, const REAL *A, ptrdiff_t lda,     \
                                   const REAL *Bp, REAL *C)                                       \
    {                                                                                              \
        (void)nc; /* all NR columns: the padding is zeros */                                      \
        for (int r = 0; r < mr; ++r)                                                               \
            for (int c = 0; c < NR; ++c)                                                           \
                C[r * NR + c] = 0;                                                                 \
        for (ptrdiff_t k = 0; k < K; ++k)                                                          \
            for (int r = 0; r < mr; ++r) {                                                         \
                const REAL a = AX(r, k);                                                           \
                REAL *restrict cr = C + r * NR;                                                    \
                const REAL *restrict b = Bp + k * NR;                                              \
                for (int c = 0; c < NR; ++c)                                                       \
                    cr[c] += a * b[c];                                                             \
            }                                                                                      \
    }
FS_DEF_GENERIC(f, float, FS_TILE_NR_F, FS_A_N)
FS_DEF_GENERIC(d, double, FS_TILE_NR_D, FS_A_N)
FS_DEF_GENERIC(tf, float, FS_TILE_NR_F, FS_A_T)
FS_DEF_GENERIC(td, double, FS_TILE_NR_D, FS_A_T)

#ifdef FS_HAVE_X86_ISA
/* ---- AVX-512F: tile mr x (nv vectors of W), nv = the vectors holding the nc valid columns ----
 * 24 named accumulators rather than arrays: with arrays GCC zeroed a 1.5 KiB stack copy with
 * `rep stos` on every call (4% of a forward) before keeping the live rows in registers. Rows
 * r >= mr and vectors q >= nv vanish at compile time (both are constants in each instantiation),
 * so a panel's zero padding costs no FMAs: e.g. D + H = 96 floats is a full panel and a half
 * one, and the half one runs a 6 x 2-vector tile. */
#define FS_ROW512_FMA(S, r, AX, c0, c1, c2, c3)                                                   \
    if (mr > (r)) {                                                                                \
        const __typeof__(b0) a = _mm512_set1_##S(AX(r, k));                                        \
        c0 = _mm512_fmadd_##S(a, b0, c0);                                                          \
        if (nv > 1)                                                                                \
            c1 = _mm512_fmadd_##S(a, b1, c1);                                                      \
        if (nv > 2)                                                                                \
            c2 = _mm512_fmadd_##S(a, b2, c2);                                                      \
        if (nv > 3)                                                                                \
            c3 = _mm512_fmadd_##S(a, b3, c3);                                                      \
    }
#define FS_ROW512_STORE(S, r, W, c0, c1, c2, c3)                                                  \
    if (mr > (r)) {                                                                                \
        _mm512_storeu_##S(C + (r) * 4 * (W), c0);                                                  \
        if (nv > 1)                                                                                \
            _mm512_storeu_##S(C + (r) * 4 * (W) + (W), c1);                                        \
        if (nv > 2)                                                                                \
            _mm512_storeu_##S(C + (r) * 4 * (W) + 2 * (W), c2);                                    \
        if (nv > 3)                                                                                \
            _mm512_storeu_##S(C + (r) * 4 * (W) + 3 * (W), c3);                                    \
    }
#define FS_DEF_AVX512(SFX, REAL, VT, S, W, AX)                                                    \
    FS_INLINE FS_TARGET_AVX512 void                                      \
    tile512_##SFX##_n(const int mr, const int nv, ptrdiff_t K, const REAL *A, ptrdiff_t lda,       \
                      const REAL *Bp, REAL *C)                                                     \
    {                                                                                              \
        const VT zero = _mm512_setzero_##S();                                                      \
        VT c00 = zero, c01 = zero, c02 = zero, c03 = zero, c10 = zero, c11 = zero, c12 = zero;     \
        VT c13 = zero, c20 = zero, c21 = zero, c22 = zero, c23 = zero, c30 = zero, c31 = zero;     \
        VT c32 = zero, c33 = zero, c40 = zero, c41 = zero, c42 = zero, c43 = zero, c50 = zero;     \
        VT c51 = zero, c52 = zero, c53 = zero;                                                     \
        for (ptrdiff_t k = 0; k < K; ++k) {                                                        \
            const REAL *b = Bp + k * 4 * W;                                                        \
            const VT b0 = _mm512_loadu_##S(b);                                                     \
            const VT b1 = nv > 1 ? _mm512_loadu_##S(b + W) : zero;                                 \
            const VT b2 = nv > 2 ? _mm512_loadu_##S(b + 2 * W) : zero;                             \
            const VT b3 = nv > 3 ? _mm512_loadu_##S(b + 3 * W) : zero;                             \
            FS_ROW512_FMA(S, 0, AX, c00, c01, c02, c03)                                            \
            FS_ROW512_FMA(S, 1, AX, c10, c11, c12, c13)                                            \
            FS_ROW512_FMA(S, 2, AX, c20, c21, c22, c23)                                            \
            FS_ROW512_FMA(S, 3, AX, c30, c31, c32, c33)                                            \
            FS_ROW512_FMA(S, 4, AX, c40, c41, c42, c43)                                            \
            FS_ROW512_FMA(S, 5, AX, c50, c51, c52, c53)                                            \
        }                                                                                          \
        FS_ROW512_STORE(S, 0, W, c00, c01, c02, c03)                                               \
        FS_ROW512_STORE(S, 1, W, c10, c11, c12, c13)                                               \
        FS_ROW512_STORE(S, 2, W, c20, c21, c22, c23)                                               \
        FS_ROW512_STORE(S, 3, W, c30, c31, c32, c33)                                               \
        FS_ROW512_STORE(S, 4, W, c40, c41, c42, c43)                                               \
        FS_ROW512_STORE(S, 5, W, c50, c51, c52, c53)                                               \
    }                                                                                              \
    FS_INLINE FS_TARGET_AVX512 void tile512_##SFX##_nv(                  \
        const int nv, int mr, ptrdiff_t K, const REAL *A, ptrdiff_t lda, const REAL *Bp, REAL *C)  \
    {                                                                                              \
        FS_MR_SWITCH(tile512_##SFX##_n, nv, K, A, lda, Bp, C)                                      \
    }                                                                                              \
    static FS_TARGET_AVX512 void tile512_##SFX(                                 \
        int mr, int nc, ptrdiff_t K, const REAL *A, ptrdiff_t lda, const REAL *Bp, REAL *C)        \
    {                                                                                              \
        switch ((nc + W - 1) / W) {                                                                \
        case 1: tile512_##SFX##_nv(1, mr, K, A, lda, Bp, C); break;                                \
        case 2: tile512_##SFX##_nv(2, mr, K, A, lda, Bp, C); break;                                \
        case 3: tile512_##SFX##_nv(3, mr, K, A, lda, Bp, C); break;                                \
        default: tile512_##SFX##_nv(4, mr, K, A, lda, Bp, C); break;                               \
        }                                                                                          \
    }
FS_DEF_AVX512(f, float, __m512, ps, 16, FS_A_N)
FS_DEF_AVX512(d, double, __m512d, pd, 8, FS_A_N)
FS_DEF_AVX512(tf, float, __m512, ps, 16, FS_A_T)
FS_DEF_AVX512(td, double, __m512d, pd, 8, FS_A_T)

/* ---- AVX2+FMA: the 8-vector panel in 4 strips of 2 vectors, tile mr x 2 each -------------- */
#define FS_DEF_AVX2(SFX, REAL, VT, S, W, AX)                                                      \
    FS_INLINE FS_TARGET_AVX2 void                                     \
    tile256_##SFX##_n(const int mr, int ns, ptrdiff_t K, const REAL *A, ptrdiff_t lda,             \
                      const REAL *Bp, REAL *C)                                                     \
    {                                                                                              \
        for (int s = 0; s < ns; ++s) {                                                             \
            VT c0[FS_TILE_MR], c1[FS_TILE_MR];                                                     \
            for (int r = 0; r < mr; ++r)                                                           \
                c0[r] = c1[r] = _mm256_setzero_##S();                                              \
            for (ptrdiff_t k = 0; k < K; ++k) {                                                    \
                const REAL *b = Bp + k * 8 * W + s * 2 * W;                                        \
                const VT b0 = _mm256_loadu_##S(b), b1 = _mm256_loadu_##S(b + W);                  \
                for (int r = 0; r < mr; ++r) {                                                     \
                    const VT a = _mm256_set1_##S(AX(r, k));                                        \
                    c0[r] = _mm256_fmadd_##S(a, b0, c0[r]);                                        \
                    c1[r] = _mm256_fmadd_##S(a, b1, c1[r]);                                        \
                }                                                                                  \
            }                                                                                      \
            for (int r = 0; r < mr; ++r) {                                                         \
                _mm256_storeu_##S(C + r * 8 * W + s * 2 * W, c0[r]);                               \
                _mm256_storeu_##S(C + r * 8 * W + s * 2 * W + W, c1[r]);                           \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    static FS_TARGET_AVX2 void tile256_##SFX(                                \
        int mr, int nc, ptrdiff_t K, const REAL *A, ptrdiff_t lda, const REAL *Bp, REAL *C)        \
    {                                                                                              \
        const int ns = (nc + 2 * W - 1) / (2 * W); /* strips holding the nc valid columns */     \
        FS_MR_SWITCH(tile256_##SFX##_n, ns, K, A, lda, Bp, C)                                      \
    }
FS_DEF_AVX2(f, float, __m256, ps, 8, FS_A_N)
FS_DEF_AVX2(d, double, __m256d, pd, 4, FS_A_N)
FS_DEF_AVX2(tf, float, __m256, ps, 8, FS_A_T)
FS_DEF_AVX2(td, double, __m256d, pd, 4, FS_A_T)
#endif /* FS_HAVE_X86_ISA */

int fs_tile_isa(int isa) { return fs_isa_resolve(isa); }

#ifdef FS_HAVE_X86_ISA
#define FS_PICK(name) \
    switch (fs_tile_isa(isa)) { \
    case FS_ISA_AVX512: return tile512_##name; \
    case FS_ISA_AVX2: return tile256_##name; \
    default: return tile_generic_##name; \
    }
#else
#define FS_PICK(name) \
    (void)isa; \
    return tile_generic_##name;
#endif

fs_tile_fn_f fs_tile_kernel_f(int isa) { FS_PICK(f) }
fs_tile_fn_d fs_tile_kernel_d(int isa) { FS_PICK(d) }
fs_tile_fn_f fs_tile_t_kernel_f(int isa) { FS_PICK(tf) }
fs_tile_fn_d fs_tile_t_kernel_d(int isa) { FS_PICK(td) }
