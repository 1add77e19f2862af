/* Dense-network kernels (see nn.h): instantiates nn_impl.h for double and float. */
#include <math.h>

#include "activations.h"
#include "nn.h"

#define T double
#define SFX(name) name##_d
#define FEXP exp
#define FLOG log
#define FLOG1P log1p
#define FABS fabs
#define FSQRT sqrt
#define SIGMOID fs_sigmoid
#define TANH fs_tanh
#define DSIGMOID fs_dsigmoid_from_out
#define DTANH fs_dtanh_from_out
#include "nn_impl.h"
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
#define SIGMOID fs_sigmoidf
#define TANH fs_tanhf
#define DSIGMOID fs_dsigmoidf_from_out
#define DTANH fs_dtanhf_from_out
#include "nn_impl.h"
