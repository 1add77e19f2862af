/* exp / sigmoid / tanh on AVX-512F vectors (16 floats, 8 doubles) for the LSTM cell update that
 * follows each packed tile (recurrent.c), where the auto-vectorised scalar versions of vecmath.h
 * ran 3x slower (short unit blocks, two-branch selects). Only included when FS_HAVE_X86_ISA (dispatch.h);
 * every function carries FS_TARGET_AVX512 and is called only after a run-time CPU check.
 *
 * Same reductions and polynomials as vecmath.h; differences:
 *  - 2^n is applied with vscalefps/pd (exact, no exponent-bit arithmetic);
 *  - float 1/x is vrcp14ps refined by one Newton step (about 1 ulp), and float tanh for
 *    |z| >= 0.625 is 1 - 2/(E + 1) instead of (E - 1)/(E + 1): measured worst cases 2.9 ulp
 *    (sigmoid) and 3.1 ulp (tanh near 0.627) against 2.4 / 2.2 for vecmath.h, well inside the
 *    float tests' tolerance (tests/test_recurrent.py checks 8 ulp); double keeps IEEE division
 *    and matches vecmath.h to ~1e-23.
 * NaN propagates: clamps are max(lo, x) / min(hi, x), which return x when x is NaN.
 */
#ifndef FS_VECMATH512_H
#define FS_VECMATH512_H

#include <immintrin.h>

#include "lib/dispatch.h"   /* FS_INLINE, FS_TARGET_AVX512 (included only when FS_HAVE_X86_ISA) */

/* ---- float ---------------------------------------------------------------------------------- */
FS_INLINE FS_TARGET_AVX512 __m512 fs_exp512_f(__m512 x)
{
    x = _mm512_max_ps(_mm512_set1_ps(-87.0f), x);
    x = _mm512_min_ps(_mm512_set1_ps(88.0f), x);
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* 1/d for d >= 1 (finite or NaN): rcp14 + one Newton step r (2 - d r). */
FS_INLINE FS_TARGET_AVX512 __m512 fs_recip512_f(__m512 d)
{
    const __m512 r = _mm512_rcp14_ps(d);
    return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
}

FS_INLINE FS_TARGET_AVX512 __m512 fs_sigmoid512_f(__m512 z)
{
    const __m512 e = fs_exp512_f(_mm512_sub_ps(_mm512_setzero_ps(), z));
    return fs_recip512_f(_mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

FS_INLINE FS_TARGET_AVX512 __m512 fs_tanh512_f(__m512 z)
{
    const __m512i sign_bit = _mm512_set1_epi32((int)0x80000000u);
    const __m512 a = _mm512_abs_ps(z);
    const __m512 s = _mm512_mul_ps(z, z);
    /* |z| < 0.625: Cephes tanhf polynomial z + z^3 p(z^2) */
    __m512 p = _mm512_set1_ps(-5.70498872745e-3f);
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(2.06390887954e-2f));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(-5.37397155531e-2f));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(1.33314422036e-1f));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(-3.33332819422e-1f));
    const __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(p, s), z, z);
    /* otherwise 1 - 2 / (e^{2|z|} + 1), |z| clamped at 10 (tanhf(10) == 1), sign of z */
    const __m512 e = fs_exp512_f(_mm512_add_ps(_mm512_min_ps(_mm512_set1_ps(10.0f), a),
                                                _mm512_min_ps(_mm512_set1_ps(10.0f), a)));
    const __m512 t = _mm512_fnmadd_ps(_mm512_set1_ps(2.0f),
                                      fs_recip512_f(_mm512_add_ps(e, _mm512_set1_ps(1.0f))),
                                      _mm512_set1_ps(1.0f));
    const __m512 large = _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_castps_si512(t), _mm512_and_si512(_mm512_castps_si512(z), sign_bit)));
    const __mmask16 is_small = _mm512_cmp_ps_mask(a, _mm512_set1_ps(0.625f), _CMP_LT_OQ);
    return _mm512_mask_blend_ps(is_small, large, small);
}

/* ---- double --------------------------------------------------------------------------------- */
FS_INLINE FS_TARGET_AVX512 __m512d fs_exp512_d(__m512d x)
{
    x = _mm512_max_pd(_mm512_set1_pd(-708.0), x);
    x = _mm512_min_pd(_mm512_set1_pd(708.0), x);
    const __m512d n = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(1.4426950408889634)),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512d r = _mm512_fnmadd_pd(n, _mm512_set1_pd(6.93147180369123816490e-01), x);
    r = _mm512_fnmadd_pd(n, _mm512_set1_pd(1.90821492927058770002e-10), r);
    static const double c[] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0,
                               1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0,
                               1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0};
    __m512d p = _mm512_set1_pd(c[0]);
    for (int k = 1; k < 14; ++k)
        p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(c[k]));
    return _mm512_scalef_pd(p, n);
}

FS_INLINE FS_TARGET_AVX512 __m512d fs_sigmoid512_d(__m512d z)
{
    const __m512d e = fs_exp512_d(_mm512_sub_pd(_mm512_setzero_pd(), z));
    return _mm512_div_pd(_mm512_set1_pd(1.0), _mm512_add_pd(_mm512_set1_pd(1.0), e));
}

FS_INLINE FS_TARGET_AVX512 __m512d fs_tanh512_d(__m512d z)
{
    const __m512i sign_bit = _mm512_set1_epi64((long long)0x8000000000000000ull);
    const __m512d a = _mm512_abs_pd(z);
    const __m512d s = _mm512_mul_pd(z, z);
    /* |z| < 0.625: Cephes' z (Q + s P) / Q; otherwise sign(z) (E - 1) / (E + 1), E = e^{2|z|} */
    const __m512d P = _mm512_fmadd_pd(
        _mm512_fmadd_pd(_mm512_set1_pd(-9.64399179425052238628e-1), s,
                        _mm512_set1_pd(-9.92877231001918586564e1)),
        s, _mm512_set1_pd(-1.61468768441708447952e3));
    const __m512d Q = _mm512_fmadd_pd(
        _mm512_fmadd_pd(_mm512_add_pd(s, _mm512_set1_pd(1.12811678491632931402e2)), s,
                        _mm512_set1_pd(2.23548839060100448583e3)),
        s, _mm512_set1_pd(4.84406305325125486048e3));
    const __m512d ac = _mm512_min_pd(_mm512_set1_pd(20.0), a);
    const __m512d E = fs_exp512_d(_mm512_add_pd(ac, ac));
    const __m512d em1 = _mm512_castsi512_pd(_mm512_or_si512(
        _mm512_castpd_si512(_mm512_sub_pd(E, _mm512_set1_pd(1.0))),
        _mm512_and_si512(_mm512_castpd_si512(z), sign_bit)));
    const __mmask8 is_small = _mm512_cmp_pd_mask(a, _mm512_set1_pd(0.625), _CMP_LT_OQ);
    const __m512d num =
        _mm512_mask_blend_pd(is_small, em1, _mm512_mul_pd(z, _mm512_fmadd_pd(s, P, Q)));
    const __m512d den = _mm512_mask_blend_pd(is_small, _mm512_add_pd(E, _mm512_set1_pd(1.0)), Q);
    return _mm512_div_pd(num, den);
}

#endif /* FS_VECMATH512_H */
