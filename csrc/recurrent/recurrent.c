/* LSTM / Elman RNN per-step kernels (declarations and math in recurrent.h).
 *
 * The bodies live in recurrent_impl.h, instantiated for float and double. Each public function
 * is compiled twice, baseline and AVX2+FMA, and picks one per call (FS_DISPATCH_AVX2 of
 * lib/dispatch.h). The package is built without -march flags, so this is how the gate loops get
 * 8-wide float / 4-wide double SIMD on the machines that have it while the wheel still runs
 * everywhere.
 */
/* The gate loops contain selects (clamps, the two tanh branches) whose arms divide; GCC only
 * if-converts them into SIMD blends when it may assume FP operations don't trap. fastseq never
 * enables FP exceptions, so this changes no results, only vectorisation. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* sched_getaffinity / CPU_COUNT */
#endif
#include <stdint.h>
#include <string.h>

#include <sched.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>   /* _mm_sfence */
#endif

#include "lib/dispatch.h"
#include "lib/packed.h"
#include "lib/pool.h"
#include "recurrent/recurrent.h"
#include "lib/vecmath.h"

/* The LSTM cell update of one packed tile: rows r < mr, units u0..u0+nu of block row r:
 * pre-activations acc + bias -> activations stored to z (stride H between gates), c, h, y.
 * acc: the tile, row r at acc + r * NR laid out [i f g o] (U each; overwritten with the
 * activations). z, cp, co: row r at
 * + r * zs / r * H. ho[r], yo[r]: where row r's h goes.
 * A NULL cell function means the portable per-row loop of recurrent_impl.h. */
typedef void (*fs_cell_fn_f)(int mr, int nu, float *acc, float *z, ptrdiff_t zs,
                             ptrdiff_t H, const float *b, const float *cp, float *co,
                             float *const *ho, float *const *yo);
typedef void (*fs_cell_fn_d)(int mr, int nu, double *acc, double *z, ptrdiff_t zs,
                             ptrdiff_t H, const double *b, const double *cp, double *co,
                             double *const *ho, double *const *yo);
/* The backward cell of one row: a = [i f g o] activations (stride H), cp / cc = c_{t-1} / c_t,
 * dy, dhn = dL/dh_t from y and from step t+1, dcn: in dL/dc_t from step t+1, out dL/dc_{t-1};
 * d = the row of dgates. NULL: the portable loop of recurrent_impl.h. */
typedef void (*fs_brow_fn_f)(ptrdiff_t H, const float *a, const float *cp, const float *cc,
                             const float *dy, const float *dhn, float *dcn, float *d);
typedef void (*fs_brow_fn_d)(ptrdiff_t H, const double *a, const double *cp, const double *cc,
                             const double *dy, const double *dhn, double *dcn, double *d);

#ifdef FS_HAVE_X86_ISA
#include "lib/vecmath512.h"
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
/* Stores of values no later step of this forward reads (the activations, y): with a full
 * block and a 64-byte aligned address, non-temporal, so the big gates / y arrays are written
 * without first being read into the cache (nothing reads them before the call returns). */
#define STNT_(S, p, v)                                                                            \
    do {                                                                                          \
        if (full && ((uintptr_t)(p) & 63) == 0)                                                   \
            _mm512_stream_##S(p, v);                                                              \
        else                                                                                      \
            ST_(S, p, v);                                                                         \
    } while (0)
#define FS_DEF_CELL512(SFX, REAL, VT, S, MASK, U)                                                 \
    static FS_TARGET_AVX512 void fs_cell512_##SFX(                              \
        int mr, int nu, REAL *acc, REAL *z, ptrdiff_t zs, ptrdiff_t H, const REAL *b,             \
        const REAL *cp, REAL *co, REAL *const *ho, REAL *const *yo)                               \
    {                                                                                             \
        const MASK m = (MASK)(nu >= U ? ~0u : (1u << nu) - 1u);                                   \
        const int full = nu >= U;                                                                 \
        VT bq[4];                                                                                 \
        for (int q = 0; q < 4; ++q)                                                               \
            bq[q] = LD_(S, b + q * H);                                                            \
        for (int r = 0; r < mr; ++r) {   /* pass 1: activations, in place in the tile */          \
            REAL *ar = acc + r * 4 * U;                                                           \
            VT pre[4];                                                                            \
            for (int q = 0; q < 4; ++q)                                                           \
                pre[q] = _mm512_add_##S(_mm512_loadu_##S(ar + q * U), bq[q]);                     \
            _mm512_storeu_##S(ar, fs_sigmoid512_##SFX(pre[0]));                                     \
            _mm512_storeu_##S(ar + U, fs_sigmoid512_##SFX(pre[1]));                                 \
            _mm512_storeu_##S(ar + 2 * U, fs_tanh512_##SFX(pre[2]));                                \
            _mm512_storeu_##S(ar + 3 * U, fs_sigmoid512_##SFX(pre[3]));                             \
        }                                                                                         \
        for (int r = 0; r < mr; ++r) {   /* pass 2: c, h; activations out to z */                 \
            const REAL *ar = acc + r * 4 * U;                                                     \
            REAL *zr = z + r * zs;                                                                \
            const VT i = _mm512_loadu_##S(ar), f = _mm512_loadu_##S(ar + U);                      \
            const VT g = _mm512_loadu_##S(ar + 2 * U), o = _mm512_loadu_##S(ar + 3 * U);          \
            const VT c = _mm512_fmadd_##S(f, LD_(S, cp + r * H), _mm512_mul_##S(i, g));           \
            const VT h = _mm512_mul_##S(o, fs_tanh512_##SFX(c));                                    \
            STNT_(S, zr, i);                                                                      \
            STNT_(S, zr + H, f);                                                                  \
            STNT_(S, zr + 2 * H, g);                                                              \
            STNT_(S, zr + 3 * H, o);                                                              \
            ST_(S, co + r * H, c);                                                                \
            ST_(S, ho[r], h);                                                                     \
            STNT_(S, yo[r], h);                                                                   \
        }                                                                                         \
    }
FS_DEF_CELL512(f, float, __m512, ps, __mmask16, 16)
FS_DEF_CELL512(d, double, __m512d, pd, __mmask8, 8)

/* The backward cell of one row (lstm_backward_row of recurrent_impl.h, same formulas, 16 floats
 * / 8 doubles per iteration; the units past the last full vector masked). */
#define FS_DEF_BROW512(SFX, REAL, VT, S, MASK, W)                                                 \
    static FS_TARGET_AVX512 void fs_brow512_##SFX(                              \
        ptrdiff_t H, const REAL *a, const REAL *cp, const REAL *cc, const REAL *dy,               \
        const REAL *dhn, REAL *dcn, REAL *d)                                                      \
    {                                                                                             \
        const VT one = _mm512_set1_##S(1);                                                        \
        for (ptrdiff_t k = 0; k < H; k += W) {                                                    \
            const int full = H - k >= W;                                                          \
            const MASK m = (MASK)(full ? ~0u : (1u << (H - k)) - 1u);                             \
            const VT i = LD_(S, a + k), f = LD_(S, a + H + k);                                    \
            const VT g = LD_(S, a + 2 * H + k), o = LD_(S, a + 3 * H + k);                        \
            const VT tc = fs_tanh512_##SFX(LD_(S, cc + k));                                         \
            const VT dh = _mm512_add_##S(LD_(S, dhn + k), LD_(S, dy + k));                        \
            const VT dc = _mm512_fmadd_##S(_mm512_mul_##S(dh, o),                                 \
                                           _mm512_fnmadd_##S(tc, tc, one), LD_(S, dcn + k));      \
            ST_(S, d + k, _mm512_mul_##S(_mm512_mul_##S(dc, g),                                   \
                                         _mm512_mul_##S(i, _mm512_sub_##S(one, i))));             \
            ST_(S, d + H + k, _mm512_mul_##S(_mm512_mul_##S(dc, LD_(S, cp + k)),                  \
                                             _mm512_mul_##S(f, _mm512_sub_##S(one, f))));         \
            ST_(S, d + 2 * H + k, _mm512_mul_##S(_mm512_mul_##S(dc, i),                           \
                                                 _mm512_fnmadd_##S(g, g, one)));                  \
            ST_(S, d + 3 * H + k, _mm512_mul_##S(_mm512_mul_##S(dh, tc),                          \
                                                 _mm512_mul_##S(o, _mm512_sub_##S(one, o))));     \
            ST_(S, dcn + k, _mm512_mul_##S(dc, f));                                               \
        }                                                                                         \
    }
FS_DEF_BROW512(f, float, __m512, ps, __mmask16, 16)
FS_DEF_BROW512(d, double, __m512d, pd, __mmask8, 8)
#undef LD_
#undef ST_
#undef STNT_
#endif

/* Row tiles of a team: `rows` rows cut into nt * ceil(rows / (nt * MR)) tiles of near-equal size
 * (at most MR each); tile k is rows [k rows / ntiles, (k + 1) rows / ntiles). Thread tid takes
 * the slots s = tid, tid + nt, ...; slot s of round j = s / nt is tile j nt + p in even rounds
 * and j nt + nt - 1 - p in odd ones (p = s % nt): a snake, so that in a ragged batch (rows
 * sorted longest first) the thread holding the longer half of a round alternates and the totals
 * even out (a plain k % nt gave thread 0 the longer rows of every round, ~53% of the work of the
 * benchmark's ragged batch). Equal tile counts per thread and sizes differing by at most one row
 * balance a full batch (fixed 6-row tiles left 32 rows split 18 / 14). */
static inline ptrdiff_t fs_tile_count(ptrdiff_t rows, int nt)
{
    const ptrdiff_t per = (rows + (ptrdiff_t)nt * FS_TILE_MR - 1) / ((ptrdiff_t)nt * FS_TILE_MR);
    return per * nt;
}

/* Slot s's tile (see fs_tile_count): its first row (*r0) and how many of its rows lie below n
 * (the rows still running at a step; 0 when the whole tile is past n, and then so are the tiles
 * of every later slot of the same thread: they lie in later rounds). */
static inline int fs_tile_rows(ptrdiff_t s, int nt, ptrdiff_t rows, ptrdiff_t ntiles, ptrdiff_t n,
                               ptrdiff_t *r0)
{
    const ptrdiff_t j = s / nt, p = s % nt;
    const ptrdiff_t k = j * nt + (j & 1 ? nt - 1 - p : p);
    const ptrdiff_t lo = k * rows / ntiles, hi = (k + 1) * rows / ntiles;
    const ptrdiff_t end = hi < n ? hi : n;
    *r0 = lo;
    return end > lo ? (int)(end - lo) : 0;
}

/* ---- float ---------------------------------------------------------------------------------- */
#define REAL float
#define SFX(name) fs_##name##_f
#define VSIGMOID fs_vsigmoid_f
#define VTANH fs_vtanh_f
#define ONE 1.0f
#define ZERO 0.0f
#define TILE_FN fs_tile_fn_f
#define CELL_FN fs_cell_fn_f
#define BROW_FN fs_brow_fn_f
#define TILE_NR FS_TILE_NR_F
#define UINT uint32_t
#define EXP_BITS UINT32_C(0x7f800000)
#include "recurrent/recurrent_impl.h"   /* undefines the parameters above */

/* ---- double --------------------------------------------------------------------------------- */
#define REAL double
#define SFX(name) fs_##name##_d
#define VSIGMOID fs_vsigmoid_d
#define VTANH fs_vtanh_d
#define ONE 1.0
#define ZERO 0.0
#define TILE_FN fs_tile_fn_d
#define CELL_FN fs_cell_fn_d
#define BROW_FN fs_brow_fn_d
#define TILE_NR FS_TILE_NR_D
#define UINT uint64_t
#define EXP_BITS UINT64_C(0x7ff0000000000000)
#include "recurrent/recurrent_impl.h"   /* undefines the parameters above */

/* The per-step and per-thread bodies of recurrent_impl.h run in a portable and an AVX2+FMA copy
 * (dispatch.h); their AVX-512 paths are the explicit tile and cell kernels chosen by `isa`. */
#define FS_RNN_FWD_PARAMS(R)                                                                     \
    (ptrdiff_t n, ptrdiff_t H, R *z, const R *bias, int relu, R *h_out, R *y_t,                  \
     ptrdiff_t y_stride, const ptrdiff_t *perm)
#define FS_RNN_FWD_ARGS (n, H, z, bias, relu, h_out, y_t, y_stride, perm)
FS_DISPATCH_AVX2(void, fs_rnn_forward_step_f, fs_rnn_forward_step_body_f, FS_RNN_FWD_PARAMS(float),
            FS_RNN_FWD_ARGS)
FS_DISPATCH_AVX2(void, fs_rnn_forward_step_d, fs_rnn_forward_step_body_d, FS_RNN_FWD_PARAMS(double),
            FS_RNN_FWD_ARGS)

#define FS_RNN_BWD_PARAMS(R)                                                                     \
    (ptrdiff_t n, ptrdiff_t H, const R *h, int relu, const R *dy_t, ptrdiff_t dy_stride,          \
     const ptrdiff_t *perm, const R *dh_next, R *dz)
#define FS_RNN_BWD_ARGS (n, H, h, relu, dy_t, dy_stride, perm, dh_next, dz)
FS_DISPATCH_AVX2(void, fs_rnn_backward_step_f, fs_rnn_backward_step_body_f, FS_RNN_BWD_PARAMS(float),
            FS_RNN_BWD_ARGS)
FS_DISPATCH_AVX2(void, fs_rnn_backward_step_d, fs_rnn_backward_step_body_d,
            FS_RNN_BWD_PARAMS(double), FS_RNN_BWD_ARGS)

FS_DISPATCH_AVX2(void, fs_column_sums_f, fs_column_sums_body_f,
            (ptrdiff_t n, ptrdiff_t m, const float *a, float *out), (n, m, a, out))
FS_DISPATCH_AVX2(void, fs_column_sums_d, fs_column_sums_body_d,
            (ptrdiff_t n, ptrdiff_t m, const double *a, double *out), (n, m, a, out))
FS_DISPATCH_AVX2(int, fs_all_finite_f, fs_all_finite_body_f, (ptrdiff_t n, const float *a), (n, a))
FS_DISPATCH_AVX2(int, fs_all_finite_d, fs_all_finite_body_d, (ptrdiff_t n, const double *a), (n, a))

/* ---- whole-sequence LSTM on packed weights: a team of threads, each with its own sequences ---
 * The team is the sleeping worker pool of lib/pool.c (why not OpenMP: see there). Waking a
 * worker costs ~15 us, so a call gets a second thread only with a few MFLOP of work per thread
 * (a tile interleave needs >= 2 row tiles, too). */
#define FS_MIN_FLOP_PER_THREAD 4e6

#ifndef _OPENMP
static int fs_usable_cpus(void)
{
#if defined(__linux__) && defined(CPU_COUNT)
    cpu_set_t set;   /* the affinity mask (taskset, cpusets), not the machine's core count */
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return CPU_COUNT(&set);
#endif
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
#endif

static int fs_team_size(ptrdiff_t rows, double flops, int max_threads)
{
    int nt = max_threads;
    if (nt <= 0) {
#ifdef _OPENMP
        nt = omp_get_max_threads();   /* OMP_NUM_THREADS / threadpoolctl's "openmp" limit */
#else
        nt = fs_usable_cpus();        /* built without OpenMP: the CPUs this process may use */
#endif
    }
    const ptrdiff_t tiles = (rows + FS_TILE_MR - 1) / FS_TILE_MR;
    if ((ptrdiff_t)nt > tiles)
        nt = (int)tiles;
    if ((double)nt * FS_MIN_FLOP_PER_THREAD > flops)
        nt = (int)(flops / FS_MIN_FLOP_PER_THREAD);
    if (nt > FS_POOL_MAX_TEAM)
        nt = FS_POOL_MAX_TEAM;
    return nt < 1 ? 1 : nt;
}

#define FS_LSTM_FWD_SEQ_PARAMS(R, F, C)                                                             \
    (int tid, int nt, ptrdiff_t T, ptrdiff_t D, ptrdiff_t H, const ptrdiff_t *batch_sizes,        \
     R *gates, const R *bias, const R *w_packed, F tile, C cell, const R *c_init, R *cells,       \
     const R *x, R *xh, R *y, const ptrdiff_t *perm, R *h_n, R *c_n)
#define FS_LSTM_FWD_SEQ_ARGS                                                                      \
    (tid, nt, T, D, H, batch_sizes, gates, bias, w_packed, tile, cell, c_init, cells, x, xh, y,   \
     perm, h_n, c_n)
FS_DISPATCH_AVX2(void, fs_lstm_forward_rows_f, fs_lstm_forward_seq_body_f,
            FS_LSTM_FWD_SEQ_PARAMS(float, fs_tile_fn_f, fs_cell_fn_f), FS_LSTM_FWD_SEQ_ARGS)
FS_DISPATCH_AVX2(void, fs_lstm_forward_rows_d, fs_lstm_forward_seq_body_d,
            FS_LSTM_FWD_SEQ_PARAMS(double, fs_tile_fn_d, fs_cell_fn_d), FS_LSTM_FWD_SEQ_ARGS)

#define FS_LSTM_BWD_SEQ_PARAMS(R, F, BR)                                                         \
    (int tid, int nt, ptrdiff_t T, ptrdiff_t t0, ptrdiff_t t1, ptrdiff_t H, ptrdiff_t D,          \
     const ptrdiff_t *batch_sizes, const R *gates, const R *cells, const R *c_init, const R *dy,  \
     const ptrdiff_t *perm, const R *w_packed, F tile, BR brow, R *dh, R *dc, R *dgates, R *dx,   \
     const R *xh, R *xh_packed)
#define FS_LSTM_BWD_SEQ_ARGS                                                                      \
    (tid, nt, T, t0, t1, H, D, batch_sizes, gates, cells, c_init, dy, perm, w_packed, tile, brow, \
     dh, dc, dgates, dx, xh, xh_packed)
FS_DISPATCH_AVX2(void, fs_lstm_backward_rows_f, fs_lstm_backward_seq_body_f,
            FS_LSTM_BWD_SEQ_PARAMS(float, fs_tile_fn_f, fs_brow_fn_f), FS_LSTM_BWD_SEQ_ARGS)
FS_DISPATCH_AVX2(void, fs_lstm_backward_rows_d, fs_lstm_backward_seq_body_d,
            FS_LSTM_BWD_SEQ_PARAMS(double, fs_tile_fn_d, fs_brow_fn_d), FS_LSTM_BWD_SEQ_ARGS)

/* The AVX-512 cells go with the AVX-512 tiles (isa 3), so forcing a lower ISA (tests) runs the
 * portable / AVX2 loops end to end. FS_SFENCE orders the forward cell's non-temporal stores. */
#ifdef FS_HAVE_X86_ISA
#define FS_CELL512(SFX, isa) (fs_isa_resolve(isa) == FS_ISA_AVX512 ? fs_cell512_##SFX : NULL)
#define FS_BROW512(SFX, isa) (fs_isa_resolve(isa) == FS_ISA_AVX512 ? fs_brow512_##SFX : NULL)
#define FS_SFENCE() _mm_sfence()
#else
#define FS_CELL512(SFX, isa) NULL
#define FS_BROW512(SFX, isa) NULL
#define FS_SFENCE() ((void)0)
#endif

#define FS_DEF_LSTM_SEQ(SFX, R)                                                                   \
    struct fs_fwd_args_##SFX {                                                                    \
        ptrdiff_t T, D, H;                                                                        \
        const ptrdiff_t *batch_sizes, *perm;                                                      \
        R *gates, *cells, *xh, *y, *h_n, *c_n;                                                    \
        const R *bias, *w_packed, *c_init, *x;                                                    \
        fs_tile_fn_##SFX tile;                                                                  \
        fs_cell_fn_##SFX cell;                                                                  \
    };                                                                                            \
    static void fs_fwd_share_##SFX(void *p, int tid, int nt)                                      \
    {                                                                                             \
        const struct fs_fwd_args_##SFX *a = (const struct fs_fwd_args_##SFX *)p;                  \
        fs_lstm_forward_rows_##SFX(tid, nt, a->T, a->D, a->H, a->batch_sizes, a->gates, a->bias,  \
                                   a->w_packed, a->tile, a->cell, a->c_init, a->cells, a->x,      \
                                   a->xh, a->y, a->perm, a->h_n, a->c_n);                         \
        FS_SFENCE(); /* the cell's non-temporal stores are visible before the join */            \
    }                                                                                             \
    void fs_lstm_forward_seq_##SFX(ptrdiff_t T, ptrdiff_t D, ptrdiff_t H,                         \
                                   const ptrdiff_t *batch_sizes, R *gates, const R *bias,         \
                                   const R *w_packed, const R *c_init, R *cells, const R *x,      \
                                   R *xh, R *y, const ptrdiff_t *perm, R *h_n, R *c_n, int isa,   \
                                   int max_threads)                                               \
    {                                                                                             \
        struct fs_fwd_args_##SFX a = {T, D, H, batch_sizes, perm, gates, cells, xh, y, h_n, c_n,  \
                                      bias, w_packed, c_init, x, fs_tile_kernel_##SFX(isa),       \
                                      FS_CELL512(SFX, isa)};                                      \
        double rows = 0;                                                                          \
        for (ptrdiff_t t = 0; t < T; ++t)                                                         \
            rows += (double)batch_sizes[t];                                                       \
        fs_pool_run(fs_team_size(batch_sizes[0], rows * 8.0 * (double)H * (double)(D + H),        \
                                 max_threads),                                                    \
                    fs_fwd_share_##SFX, &a);                                                      \
    }                                                                                             \
    struct fs_bwd_args_##SFX {                                                                    \
        ptrdiff_t T, t0, t1, H, D;                                                                \
        const ptrdiff_t *batch_sizes, *perm;                                                      \
        const R *gates, *cells, *c_init, *dy, *w_packed, *xh;                                     \
        R *dh, *dc, *dgates, *dx, *xh_packed;                                                     \
        fs_tile_fn_##SFX tile;                                                                  \
        fs_brow_fn_##SFX brow;                                                                  \
    };                                                                                            \
    static void fs_bwd_share_##SFX(void *p, int tid, int nt)                                      \
    {                                                                                             \
        const struct fs_bwd_args_##SFX *a = (const struct fs_bwd_args_##SFX *)p;                  \
        fs_lstm_backward_rows_##SFX(tid, nt, a->T, a->t0, a->t1, a->H, a->D, a->batch_sizes,      \
                                    a->gates, a->cells, a->c_init, a->dy, a->perm, a->w_packed,   \
                                    a->tile, a->brow, a->dh, a->dc, a->dgates, a->dx, a->xh,      \
                                    a->xh_packed);                                                \
    }                                                                                             \
    void fs_lstm_backward_seq_##SFX(ptrdiff_t T, ptrdiff_t t0, ptrdiff_t t1, ptrdiff_t H,         \
                                    ptrdiff_t D, const ptrdiff_t *batch_sizes, const R *gates,    \
                                    const R *cells, const R *c_init, const R *dy,                 \
                                    const ptrdiff_t *perm, const R *w_packed, R *dh, R *dc,       \
                                    R *dgates, R *dx, const R *xh, R *xh_packed, int isa,         \
                                    int max_threads)                                              \
    {                                                                                             \
        struct fs_bwd_args_##SFX a = {T, t0, t1, H, D, batch_sizes, perm, gates, cells, c_init,   \
                                      dy, w_packed, xh, dh, dc, dgates, dx, xh_packed,            \
                                      fs_tile_kernel_##SFX(isa), FS_BROW512(SFX, isa)};           \
        double rows = 0;                                                                          \
        for (ptrdiff_t t = t0; t < t1; ++t)                                                       \
            rows += (double)batch_sizes[t];                                                       \
        fs_pool_run(fs_team_size(batch_sizes[t0], rows * 8.0 * (double)H * (double)(H + D),       \
                                 max_threads),                                                    \
                    fs_bwd_share_##SFX, &a);                                                      \
    }
FS_DEF_LSTM_SEQ(f, float)
FS_DEF_LSTM_SEQ(d, double)

/* Weight gradients of a chunk of rows: the team splits the rows of dw (4H), each thread running
 * the transposed-A tiles over the xh chunk that fs_lstm_backward_seq packed (no BLAS call: see
 * fs_pool_run). */
#define FS_LSTM_WGRAD_PARAMS(R, F)                                                               \
    (int tid, int nt, ptrdiff_t rows, ptrdiff_t G4, ptrdiff_t L, const R *dgates,                 \
     const R *xh_packed, R *dw, R *dbias, F tile)
#define FS_LSTM_WGRAD_ARGS (tid, nt, rows, G4, L, dgates, xh_packed, dw, dbias, tile)
FS_DISPATCH_AVX2(void, fs_lstm_wgrad_rows_f, fs_lstm_wgrad_body_f,
            FS_LSTM_WGRAD_PARAMS(float, fs_tile_fn_f), FS_LSTM_WGRAD_ARGS)
FS_DISPATCH_AVX2(void, fs_lstm_wgrad_rows_d, fs_lstm_wgrad_body_d,
            FS_LSTM_WGRAD_PARAMS(double, fs_tile_fn_d), FS_LSTM_WGRAD_ARGS)

#define FS_DEF_LSTM_WGRAD(SFX, R)                                                                 \
    struct fs_wgrad_args_##SFX {                                                                  \
        ptrdiff_t rows, G4, L;                                                                    \
        const R *dgates, *xh_packed;                                                              \
        R *dw, *dbias;                                                                            \
        fs_tile_fn_##SFX tile;                                                                  \
    };                                                                                            \
    static void fs_wgrad_share_##SFX(void *p, int tid, int nt)                                    \
    {                                                                                             \
        const struct fs_wgrad_args_##SFX *a = (const struct fs_wgrad_args_##SFX *)p;              \
        fs_lstm_wgrad_rows_##SFX(tid, nt, a->rows, a->G4, a->L, a->dgates, a->xh_packed, a->dw,   \
                                 a->dbias, a->tile);                                              \
    }                                                                                             \
    void fs_lstm_weight_grads_##SFX(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t D, const R *dgates,    \
                                    const R *xh_packed, R *dw, R *dbias, int isa,                 \
                                    int max_threads)                                              \
    {                                                                                             \
        const ptrdiff_t L = D + H;                                                                \
        struct fs_wgrad_args_##SFX a = {rows, 4 * H, L, dgates, xh_packed, dw, dbias,             \
                                        fs_tile_t_kernel_##SFX(isa)};                             \
        fs_pool_run(fs_team_size(4 * H, 8.0 * (double)rows * (double)H * (double)L, max_threads), \
                    fs_wgrad_share_##SFX, &a);                                                    \
    }
FS_DEF_LSTM_WGRAD(f, float)
FS_DEF_LSTM_WGRAD(d, double)

void fs_scatter_rows(ptrdiff_t r0, ptrdiff_t r1, size_t row_bytes, const void *src, void *dst,
                     ptrdiff_t dst_stride_bytes, const ptrdiff_t *perm)
{
    const char *s = (const char *)src;
    char *d = (char *)dst;
    for (ptrdiff_t r = r0; r < r1; ++r)
        memcpy(d + perm[r] * dst_stride_bytes, s + r * (ptrdiff_t)row_bytes, row_bytes);
}
