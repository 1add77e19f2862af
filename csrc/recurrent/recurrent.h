/* LSTM and Elman RNN kernels. LSTM: the whole time loops of forward and backward and the weight
 * gradients, every product a register-tiled kernel on weights packed once per call, fused with the
 * gate math (packed.h; no BLAS call, see ARCHITECTURE.md). Elman RNN: the per-step elementwise
 * math (its products are all BLAS calls in src/fastseq/_recurrent/_recurrent_fast.pyx).
 *
 * Layout (see ARCHITECTURE.md): the driver keeps every per-step quantity "packed" and time-major,
 * as PyTorch's PackedSequence does. Sequences are sorted by length, longest first, so at step t the
 * n_t running sequences are the first n_t rows of the sorted batch, and step t's rows occupy one
 * contiguous block [off_t, off_t + n_t) of a (sum of lengths, width) array. Each kernel below
 * works on one such block of n rows; `perm[r]` maps sorted row r back to its batch index, which is
 * how results are written to (and dy read from) the caller's batch-first (B, T, H) arrays.
 *
 * Gate order inside a row of `gates` (width 4H): input i, forget f, cell g, output o (PyTorch's).
 * Sizes and indices are ptrdiff_t. No allocation in the kernels; the one global is the LSTM's
 * sleeping worker pool (lib/pool.c); safe to call from many threads.
 */
#ifndef FS_RECURRENT_H
#define FS_RECURRENT_H

#include <stddef.h>

/* LSTM forward over all T steps on packed weights: per step and tile of rows, one register-tiled
 * product [x_t | h_{t-1}] @ [w_ih | w_hh]^T (see packed.h) followed by the cell update:
 *   z = x_t w_ih^T + h_{t-1} w_hh^T + bias;  i,f,o = sigmoid(z_i,f,o), g = tanh(z_g)
 *   c = f * c_prev + i * g;  h = o * tanh(c)
 * Rows are the packed, length-sorted layout above:
 *   x (B, T, D) batch-first, the input;
 *   xh (N, D + H): out row j = [x_t | h_{t-1}] of packed row j. On entry the h parts of step 0's
 *     rows (h0 in sorted order, or zeros); each thread copies x_t of its rows in just before
 *     step t's products, and the h parts of step t + 1's rows receive h_t of the sequences still
 *     running (a sequence's last h goes to h_n only).
 *     The same array is the input of the weight gradients: [dw_ih | dw_hh] = dgates^T @ xh.
 *   gates (N, 4H): out the activations i, f, g, o;  cells (N, H): out c_t;
 *   c_init (B, H): c0 in sorted order (zeros when none);
 *   y (B, T, H) batch-first: y[perm[r], t] = h_t[r] (positions past a length untouched);
 *   h_n, c_n (B, H): the state at each sequence's last step, in batch order;
 *   w_packed: fs_pack_lstm_gates_*(H, D + H, [w_ih | w_hh]). isa: see fs_tile_kernel_* (0 = best).
 * Threads: min(max_threads, ceil(B / 6), total flops / 4e6) POSIX threads (the caller and
 * workers kept asleep between calls, see lib/pool.h)
 * (max_threads <= 0: the OpenMP thread limit, i.e. OMP_NUM_THREADS / threadpoolctl, or the
 * online cores in a build without OpenMP), each owning whole sequences (row tiles), so no step
 * waits for another thread. */
void fs_lstm_forward_seq_f(ptrdiff_t T, ptrdiff_t D, ptrdiff_t H, const ptrdiff_t *batch_sizes,
                           float *gates, const float *bias, const float *w_packed,
                           const float *c_init, float *cells, const float *x, float *xh,
                           float *y, const ptrdiff_t *perm, float *h_n, float *c_n, int isa,
                           int max_threads);
void fs_lstm_forward_seq_d(ptrdiff_t T, ptrdiff_t D, ptrdiff_t H, const ptrdiff_t *batch_sizes,
                           double *gates, const double *bias, const double *w_packed,
                           const double *c_init, double *cells, const double *x, double *xh,
                           double *y, const ptrdiff_t *perm, double *h_n, double *c_n, int isa,
                           int max_threads);

/* LSTM backward through steps t1-1 down to t0 (backprop through time, all but the weight
 * gradients; the driver runs it on chunks of steps and turns each chunk's dgates into weight
 * gradients with fs_lstm_weight_grads while they are in cache). Per step and row, with
 * dh = dh_next + dy_t (the gradient reaching h_t) and dc = dc_next:
 *   tc = tanh(c);  dc += dh * o * (1 - tc^2)
 *   dz_i = dc g i (1-i),  dz_f = dc c_prev f (1-f),  dz_g = dc i (1-g^2),  dz_o = dh tc o (1-o)
 *   dc_next = dc * f;  [dh_next | dx_t] = dz @ [w_hh | w_ih]
 * With the arrays of fs_lstm_forward_seq_*, dy (B, T, H) batch-first, dh / dc (B, H) in sorted
 * order (on entry the gradients reaching step t1 - 1: dL/dh_n, dL/dc_n for t1 = T; on exit those
 * reaching step t0 - 1: dL/dh0, dL/dc0 for t0 = 0), it fills dgates with dz of steps [t0, t1)
 * (row 0 = the first row of step t0) and dx (B, T, D) batch-first at those steps (positions past
 * a length untouched). w_packed: fs_pack_rows_*(4H, H + D, [w_hh | w_ih], H + D). It also packs
 * the rows of xh (the forward's) of steps [t0, t1) into xh_packed as fs_pack_rows_*(rows,
 * D + H, ...) would (rows = the chunk's row count; fs_packed_size(rows, D + H, NR) elements),
 * each thread the rows it owns, for fs_lstm_weight_grads. Threads as in the forward. */
void fs_lstm_backward_seq_f(ptrdiff_t T, ptrdiff_t t0, ptrdiff_t t1, ptrdiff_t H, ptrdiff_t D,
                            const ptrdiff_t *batch_sizes, const float *gates, const float *cells,
                            const float *c_init, const float *dy, const ptrdiff_t *perm,
                            const float *w_packed, float *dh, float *dc, float *dgates, float *dx,
                            const float *xh, float *xh_packed, int isa, int max_threads);
void fs_lstm_backward_seq_d(ptrdiff_t T, ptrdiff_t t0, ptrdiff_t t1, ptrdiff_t H, ptrdiff_t D,
                            const ptrdiff_t *batch_sizes, const double *gates,
                            const double *cells, const double *c_init, const double *dy,
                            const ptrdiff_t *perm, const double *w_packed, double *dh, double *dc,
                            double *dgates, double *dx, const double *xh, double *xh_packed,
                            int isa, int max_threads);

/* LSTM weight gradients of a chunk of rows (the backward's dgates of some steps and the matching
 * rows of xh, packed by fs_lstm_backward_seq_* into xh_packed): dw (4H, D + H) += dgates^T @ xh,
 * dbias (4H) += dgates.sum(axis=0). dw = [dw_ih | dw_hh] side by side. Threads as in the
 * forward (split over the rows of dw). */
void fs_lstm_weight_grads_f(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t D, const float *dgates,
                            const float *xh_packed, float *dw, float *dbias, int isa,
                            int max_threads);
void fs_lstm_weight_grads_d(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t D, const double *dgates,
                            const double *xh_packed, double *dw, double *dbias, int isa,
                            int max_threads);

/* Elman RNN forward, one step: h = act(z + bias), act = relu if `relu` else tanh.
 * z (n, H): in the pre-activations without bias, out h. Also h_out[r] = h[r] (the next step's
 * input block) and y_t[perm[r] * y_stride + k] = h[r, k]. */
void fs_rnn_forward_step_f(ptrdiff_t n, ptrdiff_t H, float *z, const float *bias, int relu,
                           float *h_out, float *y_t, ptrdiff_t y_stride, const ptrdiff_t *perm);
void fs_rnn_forward_step_d(ptrdiff_t n, ptrdiff_t H, double *z, const double *bias, int relu,
                           double *h_out, double *y_t, ptrdiff_t y_stride, const ptrdiff_t *perm);

/* Elman RNN backward, one step: dz = (dh_next + dy_t[perm[r]]) * act'(h), act' from the output
 * h (tanh: 1 - h^2, relu: [h > 0]). */
void fs_rnn_backward_step_f(ptrdiff_t n, ptrdiff_t H, const float *h, int relu, const float *dy_t,
                            ptrdiff_t dy_stride, const ptrdiff_t *perm, const float *dh_next,
                            float *dz);
void fs_rnn_backward_step_d(ptrdiff_t n, ptrdiff_t H, const double *h, int relu,
                            const double *dy_t, ptrdiff_t dy_stride, const ptrdiff_t *perm,
                            const double *dh_next, double *dz);

/* out[j] = sum_i a[i * m + j] for a (n, m) row-major (bias gradients). */
void fs_column_sums_f(ptrdiff_t n, ptrdiff_t m, const float *a, float *out);
void fs_column_sums_d(ptrdiff_t n, ptrdiff_t m, const double *a, double *out);

/* Row scatter from packed blocks to batch-first arrays (any element type; sizes in bytes):
 * dst[perm[r] * dst_stride] = src[r], r in [r0, r1). Rows are row_bytes long, packed rows
 * contiguous. */
void fs_scatter_rows(ptrdiff_t r0, ptrdiff_t r1, size_t row_bytes, const void *src, void *dst,
                     ptrdiff_t dst_stride_bytes, const ptrdiff_t *perm);

/* 1 if all n values are finite, else 0 (input validation without a temporary array). */
int fs_all_finite_f(ptrdiff_t n, const float *a);
int fs_all_finite_d(ptrdiff_t n, const double *a);

#endif /* FS_RECURRENT_H */
