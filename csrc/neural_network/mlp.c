/* Dense-network kernels (see nn.h): instantiates nn_impl.h for double and float. */
#include <math.h>
#include <string.h>

/* The portable build targets baseline x86-64 (SSE2). The optimizer steps run a square root and
 * a division per parameter on every mini-batch, which SSE2 does 2 (double) / 4 (float) at a
 * time; GCC builds AVX2 and AVX-512 clones of them (and of the per-layer elementwise passes)
 * and picks one at load time by CPU feature (ifunc; feature names, not "arch=" CPU models,
 * which an AMD CPU with AVX-512 would not match); other compilers/targets get the baseline. No FMA contraction anywhere in this
 * file, so every clone (and the baseline) rounds exactly alike: results do not depend on the
 * CPU, and they follow scikit-learn's (unfused) NumPy arithmetic. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(FS_NO_CLONES)
#define FS_NN_CLONES \
    __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FS_NN_CLONES
#endif
#if defined(__GNUC__)
#define FS_NN_INLINE static inline __attribute__((always_inline))
#else
#define FS_NN_INLINE static inline
#endif

#include "lib/activations.h"
#include "neural_network/mlp.h"

#define T double
#define SFX(name) name##_d
#define FEXP exp
#define FLOG log
#define FLOG1P log1p
#define FABS fabs
#define FSQRT sqrt
#define SIGMOID fs_sigmoid_d
#define TANH fs_tanh_d
#define DSIGMOID fs_dsigmoid_from_out_d
#define DTANH fs_dtanh_from_out_d
#include "neural_network/mlp_impl.h"
#undef T
#undef SFX
#undef FEXP
#undef FLOG
#undef FLOG1P
#undef FABS
#undef FSQRT
#undef SIGMOID
#undef TANH
#undef DSIGMOID
#undef DTANH

#define T float
#define SFX(name) name##_f
#define FEXP expf
#define FLOG logf
#define FLOG1P log1pf
#define FABS fabsf
#define FSQRT sqrtf
#define SIGMOID fs_sigmoid_f
#define TANH fs_tanh_f
#define DSIGMOID fs_dsigmoid_from_out_f
#define DTANH fs_dtanh_from_out_f
#include "neural_network/mlp_impl.h"
