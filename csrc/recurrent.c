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

#ifdef _OPENMP
#include <omp.h>
#endif

#include "packed.h"
#include "recurrent.h"
#include "vecmath.h"

#if defined(__GNUC__)
#define FS_INLINE static inline __attribute__((always_inline))
#define FS_PREFETCH_W(p) __builtin_prefetch((p), 1, 3)
#else
#define FS_INLINE static inline
#define FS_PREFETCH_W(p) ((void)0)
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

/* The LSTM cell update of one packed tile: rows r < mr, units u0..u0+nu of block row r:
 * z = acc + gates_x + bias -> activations stored to z (stride H between gates), c, h, y.
 * acc: the tile, row r at acc + r * NR laid out [i f g o] (U each), or NULL when there is no
 * recurrent term. z, cp, co: row r at + r * zs / r * H. ho[r], yo[r]: where row r's h goes.
 * A NULL cell function means the portable per-row loop of recurrent_impl.h. */
typedef void (*fs_cell_f_fn)(int mr, int nu, const float *acc, float *z, ptrdiff_t zs,
                             ptrdiff_t H, const float *b, const float *cp, float *co,
                             float *const *ho, float *const *yo);
typedef void (*fs_cell_d_fn)(int mr, int nu, const double *acc, double *z, ptrdiff_t zs,
                             ptrdiff_t H, const double *b, const double *cp, double *co,
                             double *const *ho, double *const *yo);

#ifdef FS_HAVE_AVX2_CLONE
#include "vecmath512.h"
/* Two passes over the tile rather than one per row: a row's update is a long dependent chain
 * (gate activations -> c -> tanh(c) -> h, ~150 cycles of latency), so one row at a time runs at
 * a third of the core's throughput; in two passes every iteration is independent of the last
 * and the out-of-order core overlaps them. Pass 2 re-reads the activations from L1. */
/* Masked loads/stores only for a partial unit block: on AMD Zen 4 a masked 512-bit store costs
 * several times a plain one. */
#define LD_(S, p) (full ? _mm512_loadu_##S(p) : _mm512_maskz_loadu_##S(m, p))
#define ST_(S, p, v)                                                                                \
    do {                                                                                          \
        if (full)                                                                                 \
            _mm512_storeu_##S(p, v);                                                              \
        else                                                                                      \
            _mm512_mask_storeu_##S(p, m, v);                                                      \
    } while (0)
#define FS_DEF_CELL512(SFX, REAL, VT, S, MASK, U)                                                 \
    __attribute__((target("avx512f"))) static void fs_cell512_##SFX(                              \
        int mr, int nu, const REAL *acc, REAL *z, ptrdiff_t zs, ptrdiff_t H, const REAL *b,       \
        const REAL *cp, REAL *co, REAL *const *ho, REAL *const *yo)                               \
    {                                                                                             \
        const MASK m = (MASK)(nu >= U ? ~0u : (1u << nu) - 1u);                                   \
        const int full = nu >= U;                                                                 \
        VT bq[4];                                                                                 \
        for (int q = 0; q < 4; ++q)                                                               \
            bq[q] = LD_(S, b + q * H);                                         \
        for (int r = 0; r < mr; ++r) {                                                            \
            REAL *zr = z + r * zs;                                                                \
            VT pre[4];                                                                            \
            for (int q = 0; q < 4; ++q) {                                                         \
                pre[q] = _mm512_add_##S(LD_(S, zr + q * H), bq[q]);            \
                if (acc)                                                                          \
                    pre[q] = _mm512_add_##S(pre[q], _mm512_loadu_##S(acc + r * 4 * U + q * U));   \
            }                                                                                     \
            ST_(S, zr, fs_sigmoid512_##S(pre[0]));                             \
            ST_(S, zr + H, fs_sigmoid512_##S(pre[1]));                         \
            ST_(S, zr + 2 * H, fs_tanh512_##S(pre[2]));                        \
            ST_(S, zr + 3 * H, fs_sigmoid512_##S(pre[3]));                     \
        }                                                                                         \
        for (int r = 0; r < mr; ++r) {                                                            \
            const REAL *zr = z + r * zs;                                                          \
            const VT i = LD_(S, zr), f = LD_(S, zr + H);    \
            const VT g = LD_(S, zr + 2 * H);                                   \
            const VT o = LD_(S, zr + 3 * H);                                   \
            const VT c = _mm512_fmadd_##S(f, LD_(S, cp + r * H),               \
                                          _mm512_mul_##S(i, g));                                  \
            const VT h = _mm512_mul_##S(o, fs_tanh512_##S(c));                                    \
            ST_(S, co + r * H, c);                                             \
            ST_(S, ho[r], h);                                                  \
            ST_(S, yo[r], h);                                                  \
        }                                                                                         \
    }
FS_DEF_CELL512(f, float, __m512, ps, __mmask16, 16)
FS_DEF_CELL512(d, double, __m512d, pd, __mmask8, 8)
#undef LD_
#undef ST_
#endif

/* ---- float ---------------------------------------------------------------------------------- */
#define REAL float
#define SFX(name) fs_##name##_f
#define VSIGMOID fs_vsigmoidf
#define VTANH fs_vtanhf
#define ONE 1.0f
#define ZERO 0.0f
#define TILE_FN fs_tile_f_fn
#define CELL_FN fs_cell_f_fn
#define TILE_NR FS_TILE_NR_F
#include "recurrent_impl.h"
#undef REAL
#undef SFX
#undef VSIGMOID
#undef VTANH
#undef ONE
#undef ZERO
#undef TILE_FN
#undef CELL_FN
#undef TILE_NR

/* ---- double --------------------------------------------------------------------------------- */
#define REAL double
#define SFX(name) fs_##name##_d
#define VSIGMOID fs_vsigmoid
#define VTANH fs_vtanh
#define ONE 1.0
#define ZERO 0.0
#define TILE_FN fs_tile_d_fn
#define CELL_FN fs_cell_d_fn
#define TILE_NR FS_TILE_NR_D
#include "recurrent_impl.h"
#undef REAL
#undef SFX
#undef VSIGMOID
#undef VTANH
#undef ONE
#undef ZERO
#undef TILE_FN
#undef CELL_FN
#undef TILE_NR

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

/* ---- whole-sequence LSTM on packed weights: one OpenMP team, each thread its own sequences -- */
static int fs_team_size(ptrdiff_t rows, int max_threads)
{
#ifdef _OPENMP
    int nt = max_threads > 0 ? max_threads : omp_get_max_threads();
#else
    int nt = 1;
    (void)max_threads;
#endif
    const ptrdiff_t tiles = (rows + FS_TILE_MR - 1) / FS_TILE_MR;
    if ((ptrdiff_t)nt > tiles)
        nt = (int)tiles;
    return nt < 1 ? 1 : nt;
}

#ifdef _OPENMP
#define FS_TEAM_BEGIN(nt)                                                                         \
    _Pragma("omp parallel num_threads(nt) if (nt > 1)")                                           \
    {                                                                                             \
        const int tid_ = omp_get_thread_num(), nt_ = omp_get_num_threads();
#define FS_TEAM_END }
#else
#define FS_TEAM_BEGIN(nt) { const int tid_ = 0, nt_ = 1; (void)(nt);
#define FS_TEAM_END }
#endif

#define FS_LSTM_FWD_SEQ_PARAMS(R, F, C)                                                             \
    (int tid, int nt, ptrdiff_t T, ptrdiff_t H, const ptrdiff_t *batch_sizes, int has_h0,         \
     R *gates, const R *bias, const R *whh_packed, F tile, C cell, const R *c_init, R *cells,     \
     R *h_in, ptrdiff_t ldh, R *y, const ptrdiff_t *perm, R *h_n, R *c_n)
#define FS_LSTM_FWD_SEQ_ARGS                                                                      \
    (tid, nt, T, H, batch_sizes, has_h0, gates, bias, whh_packed, tile, cell, c_init, cells,      \
     h_in, ldh, y, perm, h_n, c_n)
FS_DISPATCH(void, fs_lstm_forward_rows_f, fs_lstm_forward_seq_body_f,
            FS_LSTM_FWD_SEQ_PARAMS(float, fs_tile_f_fn, fs_cell_f_fn), FS_LSTM_FWD_SEQ_ARGS)
FS_DISPATCH(void, fs_lstm_forward_rows_d, fs_lstm_forward_seq_body_d,
            FS_LSTM_FWD_SEQ_PARAMS(double, fs_tile_d_fn, fs_cell_d_fn), FS_LSTM_FWD_SEQ_ARGS)

#define FS_LSTM_BWD_SEQ_PARAMS(R, F)                                                             \
    (int tid, int nt, ptrdiff_t T, ptrdiff_t t0, ptrdiff_t t1, ptrdiff_t H, ptrdiff_t D,          \
     const ptrdiff_t *batch_sizes, const R *gates, const R *cells, const R *c_init, const R *dy,  \
     const ptrdiff_t *perm, const R *w_packed, F tile, R *dh, R *dc, R *dgates, R *dx)
#define FS_LSTM_BWD_SEQ_ARGS                                                                      \
    (tid, nt, T, t0, t1, H, D, batch_sizes, gates, cells, c_init, dy, perm, w_packed, tile, dh,   \
     dc, dgates, dx)
FS_DISPATCH(void, fs_lstm_backward_rows_f, fs_lstm_backward_seq_body_f,
            FS_LSTM_BWD_SEQ_PARAMS(float, fs_tile_f_fn), FS_LSTM_BWD_SEQ_ARGS)
FS_DISPATCH(void, fs_lstm_backward_rows_d, fs_lstm_backward_seq_body_d,
            FS_LSTM_BWD_SEQ_PARAMS(double, fs_tile_d_fn), FS_LSTM_BWD_SEQ_ARGS)

#ifdef FS_HAVE_AVX2_CLONE
#define FS_CELL512(SFX, isa) (fs_tile_isa(isa) == 3 ? fs_cell512_##SFX : NULL)
#else
#define FS_CELL512(SFX, isa) NULL
#endif

#define FS_DEF_LSTM_SEQ(SFX, R)                                                                   \
    void fs_lstm_forward_seq_##SFX(ptrdiff_t T, ptrdiff_t H, const ptrdiff_t *batch_sizes,        \
                                   int has_h0, R *gates, const R *bias, const R *whh_packed,      \
                                   const R *c_init, R *cells, R *h_in, ptrdiff_t ldh, R *y,       \
                                   const ptrdiff_t *perm, R *h_n, R *c_n, int isa,                \
                                   int max_threads)                                               \
    {                                                                                             \
        const fs_tile_##SFX##_fn tile = fs_tile_kernel_##SFX(isa);                                \
        const fs_cell_##SFX##_fn cell = FS_CELL512(SFX, isa);                                     \
        const int nt = fs_team_size(batch_sizes[0], max_threads);                                 \
        FS_TEAM_BEGIN(nt)                                                                         \
        fs_lstm_forward_rows_##SFX(tid_, nt_, T, H, batch_sizes, has_h0, gates, bias,             \
                                   whh_packed, tile, cell, c_init, cells, h_in, ldh, y, perm,     \
                                   h_n, c_n);                                                     \
        FS_TEAM_END                                                                               \
    }                                                                                             \
    void fs_lstm_backward_seq_##SFX(ptrdiff_t T, ptrdiff_t t0, ptrdiff_t t1, ptrdiff_t H,         \
                                    ptrdiff_t D, const ptrdiff_t *batch_sizes, const R *gates,    \
                                    const R *cells, const R *c_init, const R *dy,                 \
                                    const ptrdiff_t *perm, const R *w_packed, R *dh, R *dc,       \
                                    R *dgates, R *dx, int isa, int max_threads)                   \
    {                                                                                             \
        const fs_tile_##SFX##_fn tile = fs_tile_kernel_##SFX(isa);                                \
        const int nt = fs_team_size(batch_sizes[t0], max_threads);                                \
        FS_TEAM_BEGIN(nt)                                                                         \
        fs_lstm_backward_rows_##SFX(tid_, nt_, T, t0, t1, H, D, batch_sizes, gates, cells,        \
                                    c_init, dy, perm, w_packed, tile, dh, dc, dgates, dx);        \
        FS_TEAM_END                                                                               \
    }
FS_DEF_LSTM_SEQ(f, float)
FS_DEF_LSTM_SEQ(d, double)

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
