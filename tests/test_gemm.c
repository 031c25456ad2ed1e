/*
 * test_gemm.c — the GEMM core generated kernels call (codegen/prelude/gemm.c),
 * compiled here directly: every combination of transposed operands, edge
 * tiles in m, n and k (sizes around the micro-kernel's 6 x 2·VW tile and the
 * k blocking), accumulate on and off, and row strides wider than the
 * matrix, against a double-precision triple loop.  Elements outside C's
 * rows and columns must stay untouched, and B packed once up front
 * (nn_pack_b_all, nn_gemm_packed) must give the very same floats.  Built twice: for the baseline
 * target (4-wide vectors) and as test_gemm_avx2 with -mavx2 -mfma (8-wide).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "codegen/prelude/gemm.c"

static float value(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) % 2001) / 1000.0f - 1.0f;
}

/* One case: A is m×k (or k×m stored, when ta), B k×n (or n×k, when tb). */
static void check(long m, long n, long k, int ta, int tb, int accumulate)
{
    unsigned seed = (unsigned)(m * 131 + n * 17 + k * 3 + ta * 2 + tb + accumulate * 7);
    long lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 5;
    long arows = ta ? k : m, brows = tb ? n : k;
    float *a = malloc(sizeof(float) * (size_t)(arows * lda + 1));
    float *b = malloc(sizeof(float) * (size_t)(brows * ldb + 1));
    float *c = malloc(sizeof(float) * (size_t)(m * ldc + 1));
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    for (long i = 0; i < arows * lda; i++)
        a[i] = value(&seed);
    for (long i = 0; i < brows * ldb; i++)
        b[i] = value(&seed);
    for (long i = 0; i < m * ldc; i++)
        c[i] = value(&seed);
    double *want = calloc((size_t)(m * ldc + 1), sizeof(double));
    assert_non_null(want);
    for (long i = 0; i < m * ldc; i++)
        want[i] = c[i];
    long sai = ta ? 1 : lda, sak = ta ? lda : 1, sbk = tb ? 1 : ldb, sbj = tb ? ldb : 1;
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) {
            double s = accumulate ? c[i * ldc + j] : 0.0;
            for (long p = 0; p < k; p++)
                s += (double)a[i * sai + p * sak] * b[p * sbk + j * sbj];
            want[i * ldc + j] = s;
        }
    /* The same product with B packed once (nn_pack_b_all + nn_gemm_packed)
     * must give the very same floats. */
    float *c2 = malloc(sizeof(float) * (size_t)(m * ldc + 1));
    float *bp = malloc(sizeof(float) * (size_t)(nn_packed_size(k, n) + 1));
    assert_non_null(c2);
    assert_non_null(bp);
    memcpy(c2, c, sizeof(float) * (size_t)(m * ldc));
    nn_gemm(m, n, k, a, sai, sak, b, sbk, sbj, c, ldc, accumulate);
    nn_pack_b_all(k, n, b, sbk, sbj, bp);
    nn_gemm_packed(m, n, k, a, sai, sak, bp, c2, ldc, accumulate);
    for (long i = 0; i < m; i++)
        for (long j = 0; j < ldc; j++) {
            double tol = 1e-5 * (double)(k + 1) + 1e-6 * fabs(want[i * ldc + j]);
            if (fabs(c[i * ldc + j] - want[i * ldc + j]) > tol)
                fail_msg("m %ld n %ld k %ld ta %d tb %d acc %d: c[%ld][%ld] = %.7g, want %.7g", m,
                         n, k, ta, tb, accumulate, i, j, c[i * ldc + j], want[i * ldc + j]);
            if (c2[i * ldc + j] != c[i * ldc + j])
                fail_msg("m %ld n %ld k %ld: packed B gives %.9g, not %.9g at [%ld][%ld]", m, n,
                         k, c2[i * ldc + j], c[i * ldc + j], i, j);
        }
    free(c2);
    free(bp);
    free(a);
    free(b);
    free(c);
    free(want);
}

static void test_shapes(void **state)
{
    (void)state;
    const long ms[] = {1, 5, 6, 7, 13, 95, 96, 97, 200};
    const long ns[] = {1, 10, 2 * NN_VW - 1, 2 * NN_VW, 2 * NN_VW + 1, 64, NN_NC + 3};
    const long ks[] = {1, 9, 288, NN_KC + 1, 800};
    for (size_t i = 0; i < sizeof ms / sizeof *ms; i++)
        for (size_t j = 0; j < sizeof ns / sizeof *ns; j++)
            for (size_t q = 0; q < sizeof ks / sizeof *ks; q++)
                check(ms[i], ns[j], ks[q], (int)(i + q) % 2, (int)(j + q) % 2, (int)(i + j) % 2);
}

static void test_transposes(void **state)
{
    (void)state;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int acc = 0; acc < 2; acc++)
                check(37, 45, 301, ta, tb, acc);
}

/* k = 0: C = 0, or C unchanged when accumulating. */
static void test_empty_k(void **state)
{
    (void)state;
    check(7, 9, 0, 0, 0, 0);
    check(7, 9, 0, 1, 1, 1);
}

int main(void)
{
#ifdef __AVX2__
    /* The test_gemm_avx2 build: the CPU must have what it was compiled for. */
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        return 77;
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_transposes),
        cmocka_unit_test(test_empty_k),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
