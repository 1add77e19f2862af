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
/* Masked loads/stores only for a partial unit block: on AMD Zen 4 a masked 512-bit store costs
 * several times a plain one. */
#define LD512(p) (full ? V512(loadu)(p) : V512(maskz_loadu)(m, p))
#define ST512(p, v)                                                                                \
    do {                                                                                           \
        if (full)                                                                                  \
            V512(storeu)(p, v);                                                                    \
        else                                                                                       \
            V512(mask_storeu)(p, m, v);                                                            \
    } while (0)
/* Stores of values no later step of this forward reads (the activations, y): with a full
 * block and a 64-byte aligned address, non-temporal, so the big gates / y arrays are written
 * without first being read into the cache (nothing reads them before the call returns). */
#define STNT512(p, v)                                                                              \
    do {                                                                                           \
        if (full && ((uintptr_t)(p) & 63) == 0)                                                    \
            V512(stream)(p, v);                                                                    \
        else                                                                                       \
            ST512(p, v);                                                                           \
    } while (0)
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

/* ---- team size of the whole-sequence LSTM calls ----------------------------------------------
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

/* The AVX-512 cells go with the AVX-512 tiles (FS_ISA_AVX512), so forcing a lower ISA (tests)
 * runs the portable / AVX2 loops end to end. FS_SFENCE orders the forward cell's non-temporal
 * stores. (SFX is the instantiation's, recurrent_impl.h.) */
#ifdef FS_HAVE_X86_ISA
#define FS_CELL512(isa) (fs_isa_resolve(isa) == FS_ISA_AVX512 ? SFX(cell512) : NULL)
#define FS_BROW512(isa) (fs_isa_resolve(isa) == FS_ISA_AVX512 ? SFX(brow512) : NULL)
#define FS_SFENCE() _mm_sfence()
#else
#define FS_CELL512(isa) NULL
#define FS_BROW512(isa) NULL
#define FS_SFENCE() ((void)0)
#endif

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
#define V512(op) _mm512_##op##_ps
#define VT512 __m512
#define MASK512 __mmask16
#define W512 16
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
#define V512(op) _mm512_##op##_pd
#define VT512 __m512d
#define MASK512 __mmask8
#define W512 8
#include "recurrent/recurrent_impl.h"   /* undefines the parameters above */

void fs_scatter_rows(ptrdiff_t r0, ptrdiff_t r1, size_t row_bytes, const void *src, void *dst,
                     ptrdiff_t dst_stride_bytes, const ptrdiff_t *perm)
{
    const char *s = (const char *)src;
    char *d = (char *)dst;
    for (ptrdiff_t r = r0; r < r1; ++r)
        memcpy(d + perm[r] * dst_stride_bytes, s + r * (ptrdiff_t)row_bytes, row_bytes);
}
