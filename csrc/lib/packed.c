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

/* One row r of the AVX-512 tile (packed_impl.h): the FMAs of step k, and the stores. */
#define FS_ROW512_FMA(r, c0, c1, c2, c3)                                                           \
    if (mr > (r)) {                                                                                \
        const __typeof__(b0) a = V512(set1)(AX(r, k));                                             \
        c0 = V512(fmadd)(a, b0, c0);                                                               \
        if (nv > 1)                                                                                \
            c1 = V512(fmadd)(a, b1, c1);                                                           \
        if (nv > 2)                                                                                \
            c2 = V512(fmadd)(a, b2, c2);                                                           \
        if (nv > 3)                                                                                \
            c3 = V512(fmadd)(a, b3, c3);                                                           \
    }
#define FS_ROW512_STORE(r, c0, c1, c2, c3)                                                         \
    if (mr > (r)) {                                                                                \
        V512(storeu)(C + (r) * 4 * W512, c0);                                                      \
        if (nv > 1)                                                                                \
            V512(storeu)(C + (r) * 4 * W512 + W512, c1);                                           \
        if (nv > 2)                                                                                \
            V512(storeu)(C + (r) * 4 * W512 + 2 * W512, c2);                                       \
        if (nv > 3)                                                                                \
            V512(storeu)(C + (r) * 4 * W512 + 3 * W512, c3);                                       \
    }

#define REAL float
#define SFX(name) name##_f
#define NR FS_TILE_NR_F
#define AX FS_A_N
#define PACK_FUNCTIONS
#define V512(op) _mm512_##op##_ps
#define VT512 __m512
#define W512 16
#define V256(op) _mm256_##op##_ps
#define VT256 __m256
#define W256 8
#include "lib/packed_impl.h"

#define REAL double
#define SFX(name) name##_d
#define NR FS_TILE_NR_D
#define AX FS_A_N
#define PACK_FUNCTIONS
#define V512(op) _mm512_##op##_pd
#define VT512 __m512d
#define W512 8
#define V256(op) _mm256_##op##_pd
#define VT256 __m256d
#define W256 4
#include "lib/packed_impl.h"

#define REAL float
#define SFX(name) name##_tf
#define NR FS_TILE_NR_F
#define AX FS_A_T
#define V512(op) _mm512_##op##_ps
#define VT512 __m512
#define W512 16
#define V256(op) _mm256_##op##_ps
#define VT256 __m256
#define W256 8
#include "lib/packed_impl.h"

#define REAL double
#define SFX(name) name##_td
#define NR FS_TILE_NR_D
#define AX FS_A_T
#define V512(op) _mm512_##op##_pd
#define VT512 __m512d
#define W512 8
#define V256(op) _mm256_##op##_pd
#define VT256 __m256d
#define W256 4
#include "lib/packed_impl.h"

int fs_tile_isa(int isa) { return fs_isa_resolve(isa); }

#ifdef FS_HAVE_X86_ISA
#define FS_PICK(name) \
    switch (fs_tile_isa(isa)) { \
    case FS_ISA_AVX512: return tile512_##name;                                                     \
    case FS_ISA_AVX2: return tile256_##name;                                                       \
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
