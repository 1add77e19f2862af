/* Branch-free exp / sigmoid / tanh that compilers can vectorise (float and double).
 *
 * libm's exp/tanh are opaque calls, so a loop calling them runs one element at a time. These
 * versions are straight-line arithmetic plus integer bit tricks, so GCC/Clang turn a loop over
 * them into SIMD code (SSE2 by default, AVX2+FMA in the target-specific clones of recurrent.c).
 *
 * Accuracy (checked against NumPy in tests/test_recurrent.py):
 *   exp:     Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, Taylor polynomial of degree 13
 *            (double, truncation < 5e-18) / 7 (float, < 6e-9), scaled by 2^n built in the
 *            exponent bits. ~1-2 ulp.
 *   sigmoid: 1 / (1 + exp(-z)); never overflows (the exp argument is clamped; past the clamp
 *            sigmoid is 0 or 1 to working precision up to a denormal).
 *   tanh:    |z| < 0.625: Cephes' odd rational (double) / polynomial (float) in z^2, which keeps
 *            full relative accuracy near 0 (no cancellation);
 *            |z| >= 0.625: (e^{2|z|} - 1) / (e^{2|z|} + 1), with |z| clamped where tanh == 1
 *            exactly; sign restored with copysign. One division per call.
 * NaN propagates (comparisons with NaN are false, so the clamps keep it).
 */
#ifndef FS_VECMATH_H
#define FS_VECMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline double fs_vexp_d(double x)
{
    /* exp(709.78) overflows and exp(-708.4) is denormal: clamp so 2^n stays a normal number. */
    x = x < -708.0 ? -708.0 : x;
    x = x > 708.0 ? 708.0 : x;
    /* n = round(x / ln2) with the 1.5*2^52 shift: the integer lands in the low mantissa bits. */
    const double shift = 0x1.8p52;
    const double t = x * 1.4426950408889634 + shift;
    const double n = t - shift;
    /* r = x - n ln2 in two pieces (fdlibm's ln2_hi has trailing zeros so n*ln2_hi is exact). */
    double r = x - n * 6.93147180369123816490e-01;
    r = r - n * 1.90821492927058770002e-10;
    /* e^r = sum_{k<=13} r^k / k!  (Horner) */
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    /* 2^n: the low bits of t hold n + 2^51; shifting left by 52 drops the 2^51 and leaves n in
     * the exponent field, to which the bias 1023 is added. */
    uint64_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits << 52) + ((uint64_t)1023 << 52);
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float fs_vexp_f(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float shift = 0x1.8p23f;
    const float t = x * 1.44269504f + shift;
    const float n = t - shift;
    float r = x - n * 0.693359375f;      /* ln2 = 0.693359375 - 2.12194440e-4 */
    r = r + n * 2.12194440e-4f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    uint32_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits << 23) + ((uint32_t)127 << 23);
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline double fs_vsigmoid_d(double z) { return 1.0 / (1.0 + fs_vexp_d(-z)); }
static inline float fs_vsigmoid_f(float z) { return 1.0f / (1.0f + fs_vexp_f(-z)); }

/* Both branches are written as one quotient num/den so a vectorised loop pays one division:
 *   |z| <  0.625:  tanh z = z (Q + s P) / Q,  s = z^2        (Cephes' rational form)
 *   |z| >= 0.625:  tanh z = sign(z) (E - 1) / (E + 1),  E = e^{2|z|} >= e^{1.25}, no cancellation */
static inline double fs_vtanh_d(double z)
{
    double a = fabs(z);
    const double s = z * z;
    const double P = (-9.64399179425052238628e-1 * s - 9.92877231001918586564e1) * s
                     - 1.61468768441708447952e3;
    const double Q = ((s + 1.12811678491632931402e2) * s + 2.23548839060100448583e3) * s
                     + 4.84406305325125486048e3;
    const int small = a < 0.625;
    a = a > 20.0 ? 20.0 : a;                /* tanh(20) == 1 in double */
    const double E = fs_vexp_d(2.0 * a);
    const double num = small ? z * (Q + s * P) : copysign(E - 1.0, z);
    const double den = small ? Q : E + 1.0;
    return num / den;
}

static inline float fs_vtanh_f(float z)
{
    float a = fabsf(z);
    const float s = z * z;
    /* Cephes tanhf: z + z^3 p(z^2) on |z| < 0.625 (a polynomial: no division needed) */
    const float small = ((((-5.70498872745e-3f * s + 2.06390887954e-2f) * s - 5.37397155531e-2f) * s
                          + 1.33314422036e-1f) * s - 3.33332819422e-1f) * s * z + z;
    const int is_small = a < 0.625f;
    a = a > 10.0f ? 10.0f : a;               /* tanhf(10) == 1 in float */
    const float E = fs_vexp_f(2.0f * a);
    const float large = copysignf((E - 1.0f) / (E + 1.0f), z);
    return is_small ? small : large;
}

#endif /* FS_VECMATH_H */
