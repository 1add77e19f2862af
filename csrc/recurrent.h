/* LSTM and Elman RNN kernels: the per-timestep elementwise math of forward and backward
 * (the matrix products are BLAS calls made by the Cython driver src/fastseq/_recurrent.pyx).
 *
 * Layout (see ARCHITECTURE.md): the driver keeps every per-step quantity "packed" and time-major,
 * as PyTorch's PackedSequence does. Sequences are sorted by length, longest first, so at step t the
 * n_t running sequences are the first n_t rows of the sorted batch, and step t's rows occupy one
 * contiguous block [off_t, off_t + n_t) of a (sum of lengths, width) array. Each kernel below
 * works on one such block of n rows; `perm[r]` maps sorted row r back to its batch index, which is
 * how results are written to (and dy read from) the caller's batch-first (B, T, H) arrays.
 *
 * Gate order inside a row of `gates` (width 4H): input i, forget f, cell g, output o (PyTorch's).
 * Sizes and indices are ptrdiff_t. No allocation, no globals; safe to call from many threads.
 */
#ifndef FASTSEQ_RECURRENT_H
#define FASTSEQ_RECURRENT_H

#include <stddef.h>

/* LSTM forward, one step, rows [0, n):
 *   z = gates + bias;  i,f,o = sigmoid(z_i,f,o), g = tanh(z_g)
 *   c = f * c_prev + i * g;  h = o * tanh(c)
 * gates (n, 4H): in the pre-activations without bias, out the activations i, f, g, o.
 * c_out, h_out (n, H) contiguous; y_t points at y[0, t, 0] of a batch-first array whose rows
 * are y_stride elements apart: y_t[perm[r] * y_stride + k] = h[r, k]. */
void fs_lstm_forward_step_f(ptrdiff_t n, ptrdiff_t H, float *gates, const float *bias,
                            const float *c_prev, float *c_out, float *h_out,
                            float *y_t, ptrdiff_t y_stride, const ptrdiff_t *perm);
void fs_lstm_forward_step_d(ptrdiff_t n, ptrdiff_t H, double *gates, const double *bias,
                            const double *c_prev, double *c_out, double *h_out,
                            double *y_t, ptrdiff_t y_stride, const ptrdiff_t *perm);

/* LSTM backward, one step, rows [0, n). With dh = dh_next + dy_t[perm[r]] (the gradient reaching
 * h_t) and dc = dc_next (reaching c_t from step t+1 or dc_n):
 *   tc = tanh(c);  dc += dh * o * (1 - tc^2)
 *   dz_i = dc g i (1-i),  dz_f = dc c_prev f (1-f),  dz_g = dc i (1-g^2),  dz_o = dh tc o (1-o)
 *   dc_next <- dc * f   (the gradient reaching c_{t-1}; updated in place)
 * gates (n, 4H) activations; c_prev, c_cur (n, H); dh_next (n, H); dgates (n, 4H) out. */
void fs_lstm_backward_step_f(ptrdiff_t n, ptrdiff_t H, const float *gates, const float *c_prev,
                             const float *c_cur, const float *dy_t, ptrdiff_t dy_stride,
                             const ptrdiff_t *perm, const float *dh_next, float *dc_next,
                             float *dgates);
void fs_lstm_backward_step_d(ptrdiff_t n, ptrdiff_t H, const double *gates, const double *c_prev,
                             const double *c_cur, const double *dy_t, ptrdiff_t dy_stride,
                             const ptrdiff_t *perm, const double *dh_next, double *dc_next,
                             double *dgates);

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

/* Row gather/scatter between packed blocks and batch-first arrays (any element type; sizes in
 * bytes). gather: dst[r] = src[perm[r] * src_stride], r in [0, n). scatter: dst[perm[r] *
 * dst_stride] = src[r], r in [r0, r1). Rows are row_bytes long, packed rows contiguous. */
void fs_gather_rows(ptrdiff_t n, size_t row_bytes, const void *src, ptrdiff_t src_stride_bytes,
                    const ptrdiff_t *perm, void *dst);
void fs_scatter_rows(ptrdiff_t r0, ptrdiff_t r1, size_t row_bytes, const void *src, void *dst,
                     ptrdiff_t dst_stride_bytes, const ptrdiff_t *perm);

/* 1 if all n values are finite, else 0 (input validation without a temporary array). */
int fs_all_finite_f(ptrdiff_t n, const float *a);
int fs_all_finite_d(ptrdiff_t n, const double *a);

#endif /* FASTSEQ_RECURRENT_H */
