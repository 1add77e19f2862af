/* Dense-network kernels: fused bias + activation, activation derivatives, losses with their
 * gradients w.r.t. the output pre-activation, and fused optimizer updates over one flat
 * parameter buffer. Float and double versions (suffix _f / _d) from one template (mlp_impl.h).
 *
 * Layouts: every matrix is row-major, (n rows = samples, m columns = units).
 * Flat parameter buffer of a network: [W_1, ..., W_L, b_1, ..., b_L]; the first n_decay entries
 * (the weights) receive L2 weight decay, the biases do not.
 */
#ifndef FS_NN_H
#define FS_NN_H

#include <stddef.h>
#include "lib/fastseq.h"

enum fs_nn_activation { FS_ACT_IDENTITY = 0, FS_ACT_LOGISTIC = 1, FS_ACT_TANH = 2, FS_ACT_RELU = 3 };
/* Output layer + loss pairs (canonical links: dLoss/dz = prediction - target). */
enum fs_nn_loss { FS_LOSS_SQUARED = 0, FS_LOSS_BINARY_XENT = 1, FS_LOSS_SOFTMAX_XENT = 2 };
/* Optimizer step kernels: fs_nn_sgd_step_* (momentum / Nesterov SGD) or fs_nn_adam_step_*. */
enum fs_nn_solver { FS_SOLVER_SGD = 0, FS_SOLVER_ADAM = 1 };

#define FS_NN_DECLARE(T, SFX)                                                                    \
    void fs_nn_bias_act_##SFX(ptrdiff_t n, ptrdiff_t m, T *z, const T *b, int act);            \
    void fs_nn_act_backward_##SFX(ptrdiff_t n, ptrdiff_t m, T *delta, const T *a, int act);    \
    void fs_nn_colsum_##SFX(ptrdiff_t n, ptrdiff_t m, const T *x, T *out);                     \
    void fs_nn_act_backward_colsum_##SFX(ptrdiff_t n, ptrdiff_t m, T *delta, const T *a,       \
                                         int act, T *bias_grad);                               \
    void fs_nn_gather_rows_##SFX(ptrdiff_t n, const ptrdiff_t *idx, const T *src,              \
                                 ptrdiff_t width, T *dst, const ptrdiff_t *next_idx,           \
                                 ptrdiff_t n_next);                                            \
    int fs_nn_loss_grad_##SFX(int loss, ptrdiff_t n, ptrdiff_t m, const T *z, const T *y,      \
                              T *delta, T scale, double *loss_sum, T *bias_grad);               \
    void fs_nn_output_##SFX(int loss, ptrdiff_t n, ptrdiff_t m, T *z);                         \
    int fs_nn_sgd_step_##SFX(ptrdiff_t n, ptrdiff_t n_decay, T *w, T *velocity, const T *g,    \
                             T gscale, T decay, T lr, T momentum, int nesterov, T *w_sq);      \
    int fs_nn_adam_step_##SFX(ptrdiff_t n, ptrdiff_t n_decay, T *w, T *m1, T *m2, const T *g,  \
                              T gscale, T decay, T lr_t, T beta1, T beta2, T eps, T *w_sq);

FS_NN_DECLARE(double, d)
FS_NN_DECLARE(float, f)

#undef FS_NN_DECLARE

#endif /* FS_NN_H */
