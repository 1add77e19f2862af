/* Numerically stable elementwise activations and their derivatives, float and double.
 *
 * static inline so every kernel file gets them inlined into its loops. Derivatives are written in
 * terms of the activation's *output* a = f(z), which is what backward passes keep in their caches:
 *   sigmoid: a' = a (1 - a)     tanh: a' = 1 - a^2     relu: a' = [a > 0]
 */
#ifndef FS_ACTIVATIONS_H
#define FS_ACTIVATIONS_H

#include <math.h>

/* sigmoid(z) = 1 / (1 + exp(-z)) without overflow: exp is only taken of -|z| <= 0. */
static inline double fs_sigmoid_d(double z)
{
    if (z >= 0.0) {
        return 1.0 / (1.0 + exp(-z));
    }
    const double e = exp(z);
    return e / (1.0 + e);
}

static inline float fs_sigmoid_f(float z)
{
    if (z >= 0.0f) {
        return 1.0f / (1.0f + expf(-z));
    }
    const float e = expf(z);
    return e / (1.0f + e);
}

static inline double fs_tanh_d(double z) { return tanh(z); }
static inline float fs_tanh_f(float z) { return tanhf(z); }
static inline double fs_relu_d(double z) { return z > 0.0 ? z : 0.0; }
static inline float fs_relu_f(float z) { return z > 0.0f ? z : 0.0f; }

static inline double fs_dsigmoid_from_out_d(double a) { return a * (1.0 - a); }
static inline float fs_dsigmoid_from_out_f(float a) { return a * (1.0f - a); }
static inline double fs_dtanh_from_out_d(double a) { return 1.0 - a * a; }
static inline float fs_dtanh_from_out_f(float a) { return 1.0f - a * a; }
static inline double fs_drelu_from_out_d(double a) { return a > 0.0 ? 1.0 : 0.0; }
static inline float fs_drelu_from_out_f(float a) { return a > 0.0f ? 1.0f : 0.0f; }

#endif /* FS_ACTIVATIONS_H */
