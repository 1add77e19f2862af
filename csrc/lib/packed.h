/* Small GEMM tiles against a right-hand matrix packed once, for the LSTM's per-step products.
 *
 * Why not a BLAS call per step: an LSTM step multiplies the (n x H) hidden state by the same
 * weight matrix W_hh T times. A BLAS GEMM re-packs W_hh (4H x H) into its internal panel layout
 * on every call; at n = 32..128 rows that copy is 15-20% of the step (perf: sgemm_incopy /
 * oncopy), and the product cannot be fused with the gate math that reads its result. Here the
 * weights are packed ONCE per forward/backward call and every step runs register-tiled kernels
 * over the packed panels (the BLAS "macro kernel" without the repacking).
 *
 * Packed layout: B (K x N) is cut into column panels of NR columns (zero-padded on the right);
 * panel p is K rows of NR contiguous values: Bp[p * K * NR + k * NR + c] = B[k, p * NR + c].
 * NR is 64 floats or 32 doubles (four 512-bit vectors, eight 256-bit ones), MR = 6 rows.
 *
 * fs_tile_*(mr, nc, K, A, lda, Bp_panel, C):
 *   C[r * NR + c] = sum_k A[r * lda + k] * panel[k * NR + c]
 * for r < mr <= MR and at least the columns c < nc (1 <= nc <= NR; a kernel may skip the vectors
 * past nc, so C's columns from nc on may be left unwritten). No accumulation into C: the
 * caller adds the tile where it belongs (and fuses its own epilogue). Kernels for AVX-512F,
 * AVX2+FMA and portable C exist; fs_tile_kernel_* returns the best for the running CPU.
 * No allocation, no globals; safe to call from many threads.
 */
#ifndef FS_PACKED_H
#define FS_PACKED_H

#include <stddef.h>

#define FS_TILE_MR 6
#define FS_TILE_NR_F 64
#define FS_TILE_NR_D 32

typedef void (*fs_tile_fn_f)(int mr, int nc, ptrdiff_t K, const float *A, ptrdiff_t lda,
                             const float *panel, float *C);
typedef void (*fs_tile_fn_d)(int mr, int nc, ptrdiff_t K, const double *A, ptrdiff_t lda,
                             const double *panel, double *C);

/* The tile kernel for this CPU. `isa` (enum fs_isa, lib/dispatch.h) forces one: 0 = best
 * available, 1 = portable C,
 * 2 = AVX2+FMA, 3 = AVX-512 (a forced ISA the CPU lacks falls back to the best available). */
fs_tile_fn_f fs_tile_kernel_f(int isa);
fs_tile_fn_d fs_tile_kernel_d(int isa);
/* The same with the left operand transposed: C[r * NR + c] = sum_k A[k * lda + r] panel[k, c]
 * (weight gradients dgates^T @ xh without transposing dgates). */
fs_tile_fn_f fs_tile_t_kernel_f(int isa);
fs_tile_fn_d fs_tile_t_kernel_d(int isa);
/* Which ISA fs_tile_kernel_*(isa) resolves to (same codes), for tests and benchmark reports. */
int fs_tile_isa(int isa);

/* Number of elements of the packed form of a K x N matrix with panels of nr columns. */
ptrdiff_t fs_packed_size(ptrdiff_t K, ptrdiff_t N, ptrdiff_t nr);

/* Pack B (K x N) given row-major with leading dimension ldb: B[k, j] = b[k * ldb + j]. */
void fs_pack_rows_f(ptrdiff_t K, ptrdiff_t N, const float *b, ptrdiff_t ldb, float *Bp);
void fs_pack_rows_d(ptrdiff_t K, ptrdiff_t N, const double *b, ptrdiff_t ldb, double *Bp);
/* Row k alone (N values at `row`) into the packed form of a K x N matrix: the rows of one matrix
 * may be packed in any order, e.g. each by the thread that owns it. */
void fs_pack_row_f(ptrdiff_t K, ptrdiff_t N, const float *row, ptrdiff_t k, float *Bp);
void fs_pack_row_d(ptrdiff_t K, ptrdiff_t N, const double *row, ptrdiff_t k, double *Bp);

/* Pack the transpose of an LSTM weight matrix w (4H x K, gates stacked i, f, g, o; the driver
 * passes [w_ih | w_hh], K = D + H) with the gates of a unit block side by side: panel p holds
 * units [p U, p U + U), U = nr / 4, as columns [i(U) f(U) g(U) o(U)], so one tile yields all four
 * gate pre-activations of U units and the cell update can follow at once.
 * Bp[p * K * nr + k * nr + q * U + u] = w[(q * H + p * U + u) * K + k] (0 past unit H). */
void fs_pack_lstm_gates_f(ptrdiff_t H, ptrdiff_t K, const float *w, float *Bp);
void fs_pack_lstm_gates_d(ptrdiff_t H, ptrdiff_t K, const double *w, double *Bp);

#endif /* FS_PACKED_H */
