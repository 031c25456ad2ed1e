/*
 * test_math.c — the elementary functions generated kernels call
 * (codegen/prelude/math.c), compiled here directly.  nn_expf against libm's
 * double exp: every 97th float bit pattern whose e^x is neither 0 nor inf
 * in float (about 23 million values, denormal results included) must be
 * within 1 ulp of the exact value (the prelude's promise; an exhaustive
 * run over every float measured 0.988 at most); outside that range, and at
 * the special values, the result must be exactly the correctly rounded
 * one (0, +inf, NaN for NaN).  The sweep goes through arrays, so
 * the compiler vectorizes it as it does generated loops, and each result
 * must equal the scalar one (a call through a volatile pointer): fused and
 * unfused kernels rely on that.  Built twice: for the baseline target
 * (plain multiply-adds) and as test_math_avx2 with -mavx2 -mfma (FMA, 8
 * wide, as the JIT's -march=native builds it here).
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "codegen/prelude/math.c"

#define CHUNK 4096

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* |y − e^x| in units of the last place of e^x in float (2^-149 for the
 * denormals), e^x from libm in double. */
static double ulp_error(float y, float x)
{
    double ref = exp((double)x);
    int e;
    frexp(ref, &e); /* ref = m 2^e, m in [0.5, 1) */
    double ulp = ldexp(1.0, e - 24 < -149 ? -149 : e - 24);
    return fabs((double)y - ref) / ulp;
}

/* The vectorized loop, as in generated kernels. */
static void exp_all(long n, const float *restrict x, float *restrict y)
{
    for (long i = 0; i < n; i++)
        y[i] = nn_expf(x[i]);
}

static float (*volatile scalar_expf)(float) = nn_expf;

static void test_sweep(void **state)
{
    (void)state;
    static float xs[CHUNK], ys[CHUNK];
    const uint32_t step = 97;
    double worst = 0;
    float worst_x = 0;
    long checked = 0, saturated = 0;
    for (uint64_t u0 = 0; u0 < (1ull << 32); u0 += (uint64_t)step * CHUNK) {
        long n = 0;
        for (; n < CHUNK && u0 + (uint64_t)n * step < (1ull << 32); n++)
            xs[n] = from_bits((uint32_t)(u0 + (uint64_t)n * step));
        exp_all(n, xs, ys);
        for (long i = 0; i < n; i++) {
            const float x = xs[i], y = ys[i];
            const float s = scalar_expf(x);
            if (memcmp(&y, &s, sizeof y) != 0 && !(isnan(y) && isnan(s)))
                fail_msg("nn_expf(%a): vectorized %a, scalar %a", x, y, s);
            if (isnan(x)) {
                if (!isnan(y))
                    fail_msg("nn_expf(%a) = %a, want NaN", x, y);
                continue;
            }
            const float want = (float)exp((double)x);
            if (want == 0.0f || isinf(want)) { /* saturated: exactly */
                if (y != want)
                    fail_msg("nn_expf(%a) = %a, want %a", x, y, want);
                saturated++;
                continue;
            }
            double err = ulp_error(y, x);
            if (err > worst) {
                worst = err;
                worst_x = x;
            }
            checked++;
        }
    }
    printf("nn_expf: %ld values, max error %.3f ulp at %a; %ld saturated\n", checked, worst,
           worst_x, saturated);
    assert_true(checked > 20000000);
    assert_true(worst < 1.0);
}

static void test_specials(void **state)
{
    (void)state;
    assert_true(isnan(nn_expf(NAN)));
    assert_true(isnan(nn_expf(-NAN)));
    assert_true(isnan(nn_expf(from_bits(0x7f800001u)))); /* signaling */
    assert_true(nn_expf(INFINITY) == INFINITY);
    assert_true(nn_expf(-INFINITY) == 0.0f && !signbit(nn_expf(-INFINITY)));
    assert_true(nn_expf(0.0f) == 1.0f);
    assert_true(nn_expf(-0.0f) == 1.0f);
    assert_true(nn_expf(1e-30f) == 1.0f);
    assert_true(nn_expf(FLT_MAX) == INFINITY);
    assert_true(nn_expf(-FLT_MAX) == 0.0f);
    /* The last float below overflow and the first above, the smallest
     * denormal and the last x that rounds to it rather than 0. */
    assert_true(nn_expf(from_bits(0x42b17217u)) == (float)exp((double)from_bits(0x42b17217u)));
    assert_true(isfinite(nn_expf(from_bits(0x42b17217u))));
    assert_true(nn_expf(from_bits(0x42b17218u)) == INFINITY);
    assert_true(nn_expf(-103.278931f) == from_bits(1));
    for (float x = -104.5f; x < -102.0f; x += 0x1p-12f) {
        const float y = nn_expf(x), want = (float)exp((double)x);
        if (fabs((double)y - (double)want) > from_bits(1))
            fail_msg("nn_expf(%a) = %a, want %a", x, y, want);
    }
    for (float x = 88.0f; x < 89.5f; x += 0x1p-12f) {
        const float y = nn_expf(x), want = (float)exp((double)x);
        if (isinf(want) != isinf(y) || (!isinf(y) && ulp_error(y, x) >= 1.0))
            fail_msg("nn_expf(%a) = %a, want %a", x, y, want);
    }
}

int main(void)
{
#if defined(__FMA__)
    /* The test_math_avx2 build: the CPU must have what it was compiled for. */
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        return 77;
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_specials),
        cmocka_unit_test(test_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
