/*
 * prelude/math.c - elementary functions for generated kernels, written so
 * that a loop calling them vectorizes.  libm's expf is an opaque call: a
 * loop over it stays scalar (about 20 cycles an element), and softmax at
 * small widths spent most of its time there.  nn_expf is inline,
 * branch-free float arithmetic plus integer bit operations, which clang
 * and GCC turn into 8-wide AVX2 code.  Like prelude/gemm.c this is not
 * part of libnncc: cmake/embed.cmake turns it into a string and
 * codegen/emit.c writes it into every generated unit that uses it
 * (tests/codegen/test_math.c compiles it directly and checks its accuracy).  It
 * must stay ASCII, C11 and warning-free under -Wall -Wextra with GCC and
 * Clang, and needs nothing from libm.
 *
 * nn_expf(x): less than 1 ulp from the exact e^x over the whole float
 * range (0.988 at most over every float, with and without FMA; so the
 * correctly rounded value or its neighbour; tests/codegen/test_math.c checks it),
 * +inf above ~88.72, 0 or a denormal below ~-87.3, NaN for NaN, 0 for
 * -inf, +inf for +inf.  Method:
 * x = n ln2 + r with n = round(x / ln2) and |r| <= ln2/2 (Cody and
 * Waite: ln2 in two parts, so n ln2 costs no accuracy), e^r from a degree
 * 7 polynomial (1 + r + r^2 P(r), the coefficients of SLEEF's expf, where
 * the 1 is added last so only that sum rounds at the scale of the result),
 * then e^x = e^r 2^n.  2^n is applied as two factors 2^(n/2) 2^(n-n/2),
 * each a normal float for every n we meet, so results that overflow or
 * fall into the denormals are rounded once, by the last multiply.
 */
#include <stdint.h>
#include <string.h>

/* a*b + c.  With FMA hardware (-march=native here) an explicit fused
 * multiply-add: one rounding, and the same bits in every loop whether it
 * is vectorized or not.  Without it, plain arithmetic (fmaf would be a slow
 * libm call); the Cody-Waite split stays exact either way. */
#if defined(__FMA__)
#define NN_FMA(a, b, c) __builtin_fmaf((a), (b), (c))
#else
#define NN_FMA(a, b, c) ((a) * (b) + (c))
#endif

static __attribute__((unused)) inline float nn_bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static __attribute__((unused)) inline float nn_expf(float x)
{
    /* Past these e^x is +inf (above ln FLT_MAX = 88.72) or rounds to 0
     * (below ln 2^-150 = -103.97), and the clamped value still gets
     * there; the clamp keeps n small.  A NaN passes (comparisons with it
     * are false) and propagates through the arithmetic.  No branch,
     * and no select between computed values: GCC does not vectorize a
     * loop that would have to speculate floating-point operations. */
    float xc = x < -104.0f ? -104.0f : x;
    xc = xc > 89.0f ? 89.0f : xc;
    /* n = round(x / ln2): adding 1.5 * 2^23 leaves the rounded integer in
     * the low mantissa bits (read below as an integer, which is defined
     * for a NaN too); subtracting it again gives n as a float. */
    const float shift = 12582912.0f;
    const float t = NN_FMA(xc, 1.44269504088896341f, shift), kf = t - shift;
    /* r = x - n ln2; the high part of ln2 has 16 significant bits, so
     * n * ln2_hi is exact for |n| < 2^8. */
    float r = NN_FMA(kf, -0.693145751953125f, xc);
    r = NN_FMA(kf, -1.428606765330187045e-06f, r);
    float p = 1.98527617612853646278381e-4f;
    p = NN_FMA(p, r, 1.39304355252534151077271e-3f);
    p = NN_FMA(p, r, 8.33336077630519866943359e-3f);
    p = NN_FMA(p, r, 4.16664853692054748535156e-2f);
    p = NN_FMA(p, r, 1.66666671633720397949219e-1f);
    p = NN_FMA(p, r, 0.5f);
    const float er = 1.0f + NN_FMA(r * r, p, r);
    /* m = n + 150 is in [0, 279]; 2^n = 2^(m1 - 75) 2^(m - m1 - 75) with
     * m1 = m/2, both factors normal (biased exponents 52 to 192).
     * Unsigned arithmetic: whatever a NaN leaves in t is harmless. */
    uint32_t m;
    memcpy(&m, &t, sizeof m);
    m = m - 0x4B400000u + 150u;
    const uint32_t m1 = m >> 1;
    const float s1 = nn_bits_to_float((m1 + 52u) << 23);
    const float s2 = nn_bits_to_float((m - m1 + 52u) << 23);
    return er * s1 * s2;
}
