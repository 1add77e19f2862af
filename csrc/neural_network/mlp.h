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

enum fs_nn_activation {
    FS_ACT_IDENTITY = 0, FS_ACT_LOGISTIC = 1, FS_ACT_TANH = 2, FS_ACT_RELU = 3
};
/* Output layer + loss pairs (canonical links: dLoss/dz = prediction - target). */
enum fs_nn_loss { FS_LOSS_SQUARED = 0, FS_LOSS_BINARY_XENT = 1, FS_LOSS_SOFTMAX_XENT = 2 };
/* Optimizer step kernels: fs_nn_sgd_step_* (momentum / Nesterov SGD) or fs_nn_adam_step_*. */
enum fs_nn_solver { FS_SOLVER_SGD = 0, FS_SOLVER_ADAM = 1 };

void fs_nn_bias_act_d(ptrdiff_t n, ptrdiff_t m, double *z, const double *b, int act);
void fs_nn_act_backward_d(ptrdiff_t n, ptrdiff_t m, double *delta, const double *a, int act);
void fs_nn_colsum_d(ptrdiff_t n, ptrdiff_t m, const double *x, double *out);
void fs_nn_act_backward_colsum_d(ptrdiff_t n, ptrdiff_t m, double *delta, const double *a, int act,
                                 double *bias_grad);
void fs_nn_gather_rows_d(ptrdiff_t n, const ptrdiff_t *idx, const double *src, ptrdiff_t width,
                         double *dst, const ptrdiff_t *next_idx, ptrdiff_t n_next);
int fs_nn_loss_grad_d(int loss, ptrdiff_t n, ptrdiff_t m, const double *z, const double *y,
                      double *delta, double scale, double *loss_sum, double *bias_grad);
void fs_nn_output_d(int loss, ptrdiff_t n, ptrdiff_t m, double *z);
int fs_nn_sgd_step_d(ptrdiff_t n, ptrdiff_t n_decay, double *w, double *velocity, const double *g,
                     double gscale, double decay, double lr, double momentum, int nesterov,
                     double *w_sq);
int fs_nn_adam_step_d(ptrdiff_t n, ptrdiff_t n_decay, double *w, double *m1, double *m2,
                      const double *g, double gscale, double decay, double lr_t, double beta1,
                      double beta2, double eps, double *w_sq);

void fs_nn_bias_act_f(ptrdiff_t n, ptrdiff_t m, float *z, const float *b, int act);
void fs_nn_act_backward_f(ptrdiff_t n, ptrdiff_t m, float *delta, const float *a, int act);
void fs_nn_colsum_f(ptrdiff_t n, ptrdiff_t m, const float *x, float *out);
void fs_nn_act_backward_colsum_f(ptrdiff_t n, ptrdiff_t m, float *delta, const float *a, int act,
                                 float *bias_grad);
void fs_nn_gather_rows_f(ptrdiff_t n, const ptrdiff_t *idx, const float *src, ptrdiff_t width,
                         float *dst, const ptrdiff_t *next_idx, ptrdiff_t n_next);
int fs_nn_loss_grad_f(int loss, ptrdiff_t n, ptrdiff_t m, const float *z, const float *y,
                      float *delta, float scale, double *loss_sum, float *bias_grad);
void fs_nn_output_f(int loss, ptrdiff_t n, ptrdiff_t m, float *z);
int fs_nn_sgd_step_f(ptrdiff_t n, ptrdiff_t n_decay, float *w, float *velocity, const float *g,
                     float gscale, float decay, float lr, float momentum, int nesterov,
                     float *w_sq);
int fs_nn_adam_step_f(ptrdiff_t n, ptrdiff_t n_decay, float *w, float *m1, float *m2,
                      const float *g, float gscale, float decay, float lr_t, float beta1,
                      float beta2, float eps, float *w_sq);

#endif /* FS_NN_H */
