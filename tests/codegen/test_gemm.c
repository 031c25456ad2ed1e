/*
 * test_gemm.c — the GEMM core generated kernels call (codegen/prelude/gemm.c),
 * compiled here directly: every combination of transposed operands, edge
 * tiles in m, n and k (sizes around the micro-kernel's 6 x 2·VW tile and the
 * k blocking), accumulate on and off, and row strides wider than the
 * matrix, against a double-precision triple loop.  Elements outside C's
 * rows and columns must stay untouched, and B packed once up front
 * (nn_pack_b_all, nn_gemm_packed) must give the very same floats.  Built twice: for the baseline
 * target (4-wide vectors) and as test_gemm_avx2 with -mavx2 -mfma (8-wide).
 *
 * The unpacked few-rows path (nn_gemm_direct, nn_taps_rows) must give the
 * very floats nn_gemm gives, for plain rows and for a convolution's
 * receptive fields read in place (segments, pixel strides); with small
 * integers every sum is exact and must equal the double reference exactly;
 * and its whole-vector loads must stay inside a B allocated to the byte
 * (the ASan build would see them leave it).
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
    /* And, for row-major operands, without packing (nn_gemm_direct). */
    float *c3 = malloc(sizeof(float) * (size_t)(m * ldc + 1));
    assert_non_null(c3);
    memcpy(c3, c, sizeof(float) * (size_t)(m * ldc));
    nn_gemm(m, n, k, a, sai, sak, b, sbk, sbj, c, ldc, accumulate);
    nn_pack_b_all(k, n, b, sbk, sbj, bp);
    nn_gemm_packed(m, n, k, a, sai, sak, bp, c2, ldc, accumulate);
    if (sak == 1 && sbj == 1)
        nn_gemm_direct(m, n, k, a, sai, b, sbk, c3, ldc, accumulate);
    else
        memcpy(c3, c, sizeof(float) * (size_t)(m * ldc));
    for (long i = 0; i < m; i++)
        for (long j = 0; j < ldc; j++) {
            double tol = 1e-5 * (double)(k + 1) + 1e-6 * fabs(want[i * ldc + j]);
            if (fabs(c[i * ldc + j] - want[i * ldc + j]) > tol)
                fail_msg("m %ld n %ld k %ld ta %d tb %d acc %d: c[%ld][%ld] = %.7g, want %.7g", m,
                         n, k, ta, tb, accumulate, i, j, c[i * ldc + j], want[i * ldc + j]);
            if (c2[i * ldc + j] != c[i * ldc + j])
                fail_msg("m %ld n %ld k %ld: packed B gives %.9g, not %.9g at [%ld][%ld]", m, n,
                         k, c2[i * ldc + j], c[i * ldc + j], i, j);
            if (memcmp(&c3[i * ldc + j], &c[i * ldc + j], sizeof(float)) != 0)
                fail_msg("m %ld n %ld k %ld acc %d: nn_gemm_direct gives %.9g, not %.9g at "
                         "[%ld][%ld]", m, n, k, accumulate, c3[i * ldc + j], c[i * ldc + j], i, j);
        }
    free(c3);
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

/* nn_gemm_direct with B allocated to the byte (no slack after its last
 * row: the whole-vector loads must not run past it) and small integers,
 * whose sums are exact: the double reference exactly, and nn_gemm's floats. */
static void test_direct_exact(void **state)
{
    (void)state;
    const long ms[] = {1, 2, 3, 4, 5, 9};
    const long ns[] = {1, 3, NN_VW - 1, NN_VW, NN_VW + 1, 2 * NN_VW - 1, 2 * NN_VW + 3, 10,
                       8 * NN_VW, 8 * NN_VW + 5, 130};
    const long ks[] = {1, 2, 9, 100, 2 * NN_KC + 7};
    unsigned seed = 7;
    for (size_t i = 0; i < sizeof ms / sizeof *ms; i++)
        for (size_t j = 0; j < sizeof ns / sizeof *ns; j++)
            for (size_t q = 0; q < sizeof ks / sizeof *ks; q++) {
                long m = ms[i], n = ns[j], k = ks[q];
                float *a = malloc(sizeof(float) * (size_t)(m * k));
                float *b = malloc(sizeof(float) * (size_t)(k * n));
                float *c = malloc(sizeof(float) * (size_t)(m * n));
                float *g = malloc(sizeof(float) * (size_t)(m * n));
                assert_true(a && b && c && g);
                for (long t = 0; t < m * k; t++)
                    a[t] = (float)((int)(value(&seed) * 4.0f));
                for (long t = 0; t < k * n; t++)
                    b[t] = (float)((int)(value(&seed) * 4.0f));
                nn_gemm_direct(m, n, k, a, k, b, n, c, n, 0);
                nn_gemm(m, n, k, a, k, 1, b, n, 1, g, n, 0);
                for (long r = 0; r < m; r++)
                    for (long col = 0; col < n; col++) {
                        double want = 0.0;
                        for (long p = 0; p < k; p++)
                            want += (double)a[r * k + p] * b[p * n + col];
                        if (c[r * n + col] != want || g[r * n + col] != c[r * n + col])
                            fail_msg("m %ld n %ld k %ld [%ld][%ld]: direct %.9g, nn_gemm %.9g, "
                                     "want %.9g", m, n, k, r, col, c[r * n + col],
                                     g[r * n + col], want);
                    }
                free(a);
                free(b);
                free(c);
                free(g);
            }
}

/* nn_taps_rows on receptive fields read in place: an h x w x ch image,
 * kh x kw fields (KH segments of kw*ch floats, dil rows apart), output
 * pixels `step` apart along a row, against columns built by hand and
 * multiplied by nn_gemm: the same floats. */
static void check_fields(long h, long wd, long ch, long kh, long kw, long dil, long step, long f)
{
    unsigned seed = (unsigned)(h * 7 + ch * 3 + kh + f);
    long ow = (wd - kw) / step + 1, kk = kh * kw * ch;
    float *x = malloc(sizeof(float) * (size_t)(h * wd * ch));
    float *w = malloc(sizeof(float) * (size_t)(kk * f));
    float *col = malloc(sizeof(float) * (size_t)(ow * kk));
    float *y = malloc(sizeof(float) * (size_t)(ow * f));
    float *want = malloc(sizeof(float) * (size_t)(ow * f));
    assert_true(x && w && col && y && want);
    for (long t = 0; t < h * wd * ch; t++)
        x[t] = value(&seed);
    for (long t = 0; t < kk * f; t++)
        w[t] = value(&seed);
    for (long px = 0; px < ow; px++)
        for (long r = 0; r < kh; r++)
            memcpy(col + px * kk + r * kw * ch, x + (r * dil * wd + px * step) * ch,
                   sizeof(float) * (size_t)(kw * ch));
    nn_gemm(ow, f, kk, col, kk, 1, w, f, 1, want, f, 0);
    nn_taps_rows(ow, step * ch, kh, kw * ch, dil * wd * ch, x, w, f, f, y, f, 0);
    for (long t = 0; t < ow * f; t++)
        if (memcmp(&y[t], &want[t], sizeof(float)) != 0)
            fail_msg("%ldx%ldx%ld, %ldx%ld fields, f %ld: pixel %ld filter %ld: %.9g, not %.9g", h,
                     wd, ch, kh, kw, f, t / f, t % f, y[t], want[t]);
    free(x);
    free(w);
    free(col);
    free(y);
    free(want);
}

static void test_taps_fields(void **state)
{
    (void)state;
    const long fs[] = {1, 7, 16, 32, 33, 64};
    for (size_t i = 0; i < sizeof fs / sizeof *fs; i++) {
        check_fields(5, 28, 1, 3, 3, 1, 1, fs[i]);  /* the convnet's first layer */
        check_fields(9, 13, 3, 3, 3, 2, 2, fs[i]);  /* dilated rows, stride 2 */
        check_fields(4, 11, 2, 2, 5, 1, 3, fs[i]);
        check_fields(1, 6, 4, 1, 1, 1, 1, fs[i]);   /* 1x1 */
    }
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
        cmocka_unit_test(test_direct_exact),
        cmocka_unit_test(test_taps_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
