/* LSTM / Elman RNN per-step kernels (declarations and math in recurrent.h).
 *
 * The bodies live in recurrent_impl.h, instantiated for float and double. On x86-64 with GCC or
 * Clang each public function is compiled twice, baseline and AVX2+FMA, and picks one per call
 * with __builtin_cpu_supports (a read of libgcc's CPU-feature word; no state of our own). The
 * package is built without -march flags, so this is how the gate loops get 8-wide float / 4-wide
 * double SIMD on the machines that have it while the wheel still runs everywhere.
 */
/* The gate loops contain selects (clamps, the two tanh branches) whose arms divide; GCC only
 * if-converts them into SIMD blends when it may assume FP operations don't trap. fastseq never
 * enables FP exceptions, so this changes no results, only vectorisation. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include <string.h>

#include "recurrent.h"
#include "vecmath.h"

#if defined(__GNUC__)
#define FS_INLINE static inline __attribute__((always_inline))
#else
#define FS_INLINE static inline
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(FASTSEQ_NO_DISPATCH)
#define FS_HAVE_AVX2_CLONE 1
#define FS_AVX2 __attribute__((target("avx2,fma")))
static inline int fs_cpu_has_avx2_fma(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

/* ---- float ---------------------------------------------------------------------------------- */
#define REAL float
#define SFX(name) fs_##name##_f
#define VSIGMOID fs_vsigmoidf
#define VTANH fs_vtanhf
#define ONE 1.0f
#define ZERO 0.0f
#include "recurrent_impl.h"
#undef REAL
#undef SFX
#undef VSIGMOID
#undef VTANH
#undef ONE
#undef ZERO

/* ---- double --------------------------------------------------------------------------------- */
#define REAL double
#define SFX(name) fs_##name##_d
#define VSIGMOID fs_vsigmoid
#define VTANH fs_vtanh
#define ONE 1.0
#define ZERO 0.0
#include "recurrent_impl.h"
#undef REAL
#undef SFX
#undef VSIGMOID
#undef VTANH
#undef ONE
#undef ZERO

/* FS_DISPATCH(ret, public_name, body, (params), (args)): the public function, an AVX2+FMA clone
 * of `body`, and the run-time choice between them. */
#ifdef FS_HAVE_AVX2_CLONE
#define FS_DISPATCH(ret, name, body, params, args)                                               \
    static FS_AVX2 ret name##_avx2 params { return body args; }                                  \
    ret name params                                                                               \
    {                                                                                             \
        if (fs_cpu_has_avx2_fma())                                                                \
            return name##_avx2 args;                                                              \
        return body args;                                                                         \
    }
#else
#define FS_DISPATCH(ret, name, body, params, args)                                               \
    ret name params { return body args; }
#endif

#define FS_LSTM_FWD_PARAMS(R)                                                                    \
    (ptrdiff_t n, ptrdiff_t H, R *gates, const R *bias, const R *c_prev, R *c_out, R *h_out,      \
     R *y_t, ptrdiff_t y_stride, const ptrdiff_t *perm)
#define FS_LSTM_FWD_ARGS (n, H, gates, bias, c_prev, c_out, h_out, y_t, y_stride, perm)
FS_DISPATCH(void, fs_lstm_forward_step_f, fs_lstm_forward_step_body_f, FS_LSTM_FWD_PARAMS(float),
            FS_LSTM_FWD_ARGS)
FS_DISPATCH(void, fs_lstm_forward_step_d, fs_lstm_forward_step_body_d,
            FS_LSTM_FWD_PARAMS(double), FS_LSTM_FWD_ARGS)

#define FS_LSTM_BWD_PARAMS(R)                                                                    \
    (ptrdiff_t n, ptrdiff_t H, const R *gates, const R *c_prev, const R *c_cur, const R *dy_t,    \
     ptrdiff_t dy_stride, const ptrdiff_t *perm, const R *dh_next, R *dc_next, R *dgates)
#define FS_LSTM_BWD_ARGS (n, H, gates, c_prev, c_cur, dy_t, dy_stride, perm, dh_next, dc_next, dgates)
FS_DISPATCH(void, fs_lstm_backward_step_f, fs_lstm_backward_step_body_f,
            FS_LSTM_BWD_PARAMS(float), FS_LSTM_BWD_ARGS)
FS_DISPATCH(void, fs_lstm_backward_step_d, fs_lstm_backward_step_body_d,
            FS_LSTM_BWD_PARAMS(double), FS_LSTM_BWD_ARGS)

#define FS_RNN_FWD_PARAMS(R)                                                                     \
    (ptrdiff_t n, ptrdiff_t H, R *z, const R *bias, int relu, R *h_out, R *y_t,                  \
     ptrdiff_t y_stride, const ptrdiff_t *perm)
#define FS_RNN_FWD_ARGS (n, H, z, bias, relu, h_out, y_t, y_stride, perm)
FS_DISPATCH(void, fs_rnn_forward_step_f, fs_rnn_forward_step_body_f, FS_RNN_FWD_PARAMS(float),
            FS_RNN_FWD_ARGS)
FS_DISPATCH(void, fs_rnn_forward_step_d, fs_rnn_forward_step_body_d, FS_RNN_FWD_PARAMS(double),
            FS_RNN_FWD_ARGS)

#define FS_RNN_BWD_PARAMS(R)                                                                     \
    (ptrdiff_t n, ptrdiff_t H, const R *h, int relu, const R *dy_t, ptrdiff_t dy_stride,          \
     const ptrdiff_t *perm, const R *dh_next, R *dz)
#define FS_RNN_BWD_ARGS (n, H, h, relu, dy_t, dy_stride, perm, dh_next, dz)
FS_DISPATCH(void, fs_rnn_backward_step_f, fs_rnn_backward_step_body_f, FS_RNN_BWD_PARAMS(float),
            FS_RNN_BWD_ARGS)
FS_DISPATCH(void, fs_rnn_backward_step_d, fs_rnn_backward_step_body_d,
            FS_RNN_BWD_PARAMS(double), FS_RNN_BWD_ARGS)

FS_DISPATCH(void, fs_column_sums_f, fs_column_sums_body_f,
            (ptrdiff_t n, ptrdiff_t m, const float *a, float *out), (n, m, a, out))
FS_DISPATCH(void, fs_column_sums_d, fs_column_sums_body_d,
            (ptrdiff_t n, ptrdiff_t m, const double *a, double *out), (n, m, a, out))
FS_DISPATCH(int, fs_all_finite_f, fs_all_finite_body_f, (ptrdiff_t n, const float *a), (n, a))
FS_DISPATCH(int, fs_all_finite_d, fs_all_finite_body_d, (ptrdiff_t n, const double *a), (n, a))

void fs_gather_rows(ptrdiff_t n, size_t row_bytes, const void *src, ptrdiff_t src_stride_bytes,
                    const ptrdiff_t *perm, void *dst)
{
    const char *s = (const char *)src;
    char *d = (char *)dst;
    for (ptrdiff_t r = 0; r < n; ++r)
        memcpy(d + r * (ptrdiff_t)row_bytes, s + perm[r] * src_stride_bytes, row_bytes);
}

void fs_scatter_rows(ptrdiff_t r0, ptrdiff_t r1, size_t row_bytes, const void *src, void *dst,
                     ptrdiff_t dst_stride_bytes, const ptrdiff_t *perm)
{
    const char *s = (const char *)src;
    char *d = (char *)dst;
    for (ptrdiff_t r = r0; r < r1; ++r)
        memcpy(d + perm[r] * dst_stride_bytes, s + r * (ptrdiff_t)row_bytes, row_bytes);
}
