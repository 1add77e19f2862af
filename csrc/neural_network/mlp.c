/* Dense-network kernels (see mlp.h): instantiates mlp_impl.h for double and float. */
#include <math.h>
#include <string.h>

/* No FMA contraction anywhere in this file, so the portable, AVX2 and AVX-512 copies of each
 * kernel (dispatch.h) round exactly alike: results do not depend on the CPU, and they follow
 * scikit-learn's (unfused) NumPy arithmetic. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "lib/dispatch.h"
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
#include "neural_network/mlp_impl.h"   /* undefines the parameters above */

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
#include "neural_network/mlp_impl.h"   /* undefines the parameters above */
