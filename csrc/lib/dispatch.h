/* One inline macro, one ISA enum and one run-time dispatch mechanism for every csrc kernel.
 *
 * The package is built without -march flags (the wheel runs on any x86-64), so the hot loops are
 * compiled more than once, each copy for an instruction-set level, and a run-time CPU check
 * picks one:
 *
 *   FS_ISA_PORTABLE  the baseline build (SSE2 on x86-64; any C99 target)
 *   FS_ISA_AVX2      target("avx2,fma")  on CPUs with AVX2 and FMA
 *   FS_ISA_AVX512    target("avx512f,avx512cd,avx512bw,avx512dq,avx512vl") on CPUs with all five
 *                    (the AVX-512 part of x86-64-v4: every AVX-512 CPU since Skylake-SP / Zen 4)
 *
 * The mechanism: a body written once as an FS_INLINE function (always_inline), wrapped by
 * FS_DISPATCH_AVX2 / FS_DISPATCH_AVX512 into the public function plus one clone per level
 * (each clone inlines the body under its target attribute); the public function asks
 * fs_cpu_isa() on every call (__builtin_cpu_supports: a few loads from libgcc's CPU-model word,
 * no state of our own, nothing next to a kernel call). Chosen over GCC's target_clones (ifunc)
 * and over tables of function pointers filled at load time because it is the only one of them
 * that (a) lets a caller force a lower level (the `isa` arguments the tests use to run the
 * portable and AVX2 paths on an AVX-512 machine, via fs_isa_resolve; today the packed tiles
 * and the LSTM cells take it, the other kernels run the best copy and their portable copies are
 * tested by the FS_PORTABLE build) and (b) needs no glibc ifunc and builds with GCC and Clang
 * alike. With OpenMP, the dispatched function is the per-thread loop, called from inside the
 * parallel region, so the outlined region itself needs no target attribute. Kernels written per
 * level by hand (packed.c's tiles) are picked with the same fs_isa_resolve().
 * The AVX-512 level needs VL/BW/DQ as well as F because GCC uses their 256-bit EVEX forms in the
 * auto-vectorised loops: the CGLS dense loop compiles to the same instructions as under
 * "arch=x86-64-v4", while with avx512f alone GCC 12 contracted fewer products into FMAs, which
 * changes rounding. The hand-written AVX-512 kernels (packed.c, vecmath512.h, the LSTM cells)
 * compile to the same arithmetic under both (only the encoding of some bitwise ops differs).
 * The one CPU family this moves is Xeon Phi (AVX-512F without BW/DQ/VL), which runs the AVX2
 * copies. AVX2 comes with FMA: every AVX2 CPU has both, and "avx2,fma" compiles the CGLS loop to
 * the same instructions as "arch=x86-64-v3".
 *
 * FS_PORTABLE (CMake option FASTSEQ_PORTABLE): no clones, no intrinsics, fs_cpu_isa() returns
 * FS_ISA_PORTABLE: only the portable C paths are compiled and run.
 */
#ifndef FS_DISPATCH_H
#define FS_DISPATCH_H

#if defined(__GNUC__) || defined(__clang__)
#define FS_INLINE static inline __attribute__((always_inline))
#else
#define FS_INLINE static inline
#endif

/* Instruction-set levels; FS_ISA_BEST asks for the best the CPU has. A forced level the CPU lacks
 * falls back to the best available (fs_isa_resolve). */
enum fs_isa { FS_ISA_BEST = 0, FS_ISA_PORTABLE = 1, FS_ISA_AVX2 = 2, FS_ISA_AVX512 = 3 };

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(FS_PORTABLE)
#define FS_HAVE_X86_ISA 1
#define FS_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define FS_TARGET_AVX512 __attribute__((target("avx512f,avx512cd,avx512bw,avx512dq,avx512vl")))
#endif

/* The best level of the running CPU. */
static inline int fs_cpu_isa(void)
{
#ifdef FS_HAVE_X86_ISA
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd")
        && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx512vl"))
        return FS_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return FS_ISA_AVX2;
#endif
    return FS_ISA_PORTABLE;
}

/* The level a request runs at: `isa` if the CPU has it, else the best it has. */
static inline int fs_isa_resolve(int isa)
{
    const int best = fs_cpu_isa();
    return (isa <= FS_ISA_BEST || isa > best) ? best : isa;
}

/* FS_DISPATCH_AVX2(ret, name, body, (params), (args)): `ret name params`, which runs `body args`
 * compiled for AVX2+FMA on a CPU that has them and the portable compile otherwise.
 * FS_DISPATCH_AVX512: the same with a third copy for FS_ISA_AVX512 CPUs. `body` is an FS_INLINE
 * function. */
#define FS_DISPATCH_AVX2(ret, name, body, params, args)                                           \
    FS_DISPATCH_AVX2_(ret, name, body, params, args)
#define FS_DISPATCH_AVX512(ret, name, body, params, args)                                         \
    FS_DISPATCH_AVX512_(ret, name, body, params, args)
/* (one level of indirection, so that `name` may itself be a macro call such as SFX(fs_x)) */
#ifdef FS_HAVE_X86_ISA
#define FS_DISPATCH_AVX2_(ret, name, body, params, args)                                          \
    static FS_TARGET_AVX2 ret name##_avx2 params { return body args; }                            \
    ret name params                                                                               \
    {                                                                                             \
        if (fs_cpu_isa() >= FS_ISA_AVX2)                                                          \
            return name##_avx2 args;                                                              \
        return body args;                                                                         \
    }
#define FS_DISPATCH_AVX512_(ret, name, body, params, args)                                        \
    static FS_TARGET_AVX512 ret name##_avx512 params { return body args; }                        \
    static FS_TARGET_AVX2 ret name##_avx2 params { return body args; }                            \
    ret name params                                                                               \
    {                                                                                             \
        const int isa_ = fs_cpu_isa();                                                            \
        if (isa_ >= FS_ISA_AVX512)                                                                \
            return name##_avx512 args;                                                            \
        if (isa_ >= FS_ISA_AVX2)                                                                  \
            return name##_avx2 args;                                                              \
        return body args;                                                                         \
    }
#else
#define FS_DISPATCH_AVX2_(ret, name, body, params, args) ret name params { return body args; }
#define FS_DISPATCH_AVX512_(ret, name, body, params, args) ret name params { return body args; }
#endif

#endif /* FS_DISPATCH_H */
