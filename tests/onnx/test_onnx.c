/*
 * test_onnx.c — nncc_load_onnx on the models of tests/onnx/cases/ (written
 * by make_cases.py, expected outputs from ONNX's reference evaluator):
 * exact ONNX numbers for a Flatten after a convolution with and without a
 * Gemm after it, and only the transposes the layouts need; a residual block
 * with batch normalization; external data inside and outside the model's
 * folder; dynamic dimensions; unsupported operators; save and load; and
 * fine-tuning an imported graph with nncc_fit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <math.h>
#include <cmocka.h>
#include "nncc.h"

#define CASES NNCC_SOURCE_DIR "/tests/onnx/cases/"

static struct nncc_array *npy(const char *name, const char *what)
{
    char path[512];
    snprintf(path, sizeof path, CASES "%s.%s.npy", name, what);
    struct nncc_array *a = nncc_load_npy(path);
    if (!a)
        fail_msg("%s: %s", path, nncc_last_error());
    return a;
}

/* Imports NAME.onnx, runs NAME.in.npy, compares with NAME.out.npy. */
static nncc_model *check_case(const char *name, double tol)
{
    char path[512];
    snprintf(path, sizeof path, CASES "%s.onnx", name);
    nncc_model *m = nncc_load_onnx(path);
    if (!m)
        fail_msg("%s: %s", name, nncc_last_error());
    struct nncc_array *x = npy(name, "in"), *want = npy(name, "out");
    struct nncc_array *got = nncc_predict(m, x);
    if (!got)
        fail_msg("%s: predict: %s", name, nncc_last_error());
    assert_int_equal(nncc_array_size(got), nncc_array_size(want));
    for (int64_t i = 0; i < nncc_array_size(want); i++)
        if (fabs(got->data[i] - want->data[i]) > tol * (1 + fabs(want->data[i])))
            fail_msg("%s: output[%lld] = %.8g, ONNX says %.8g", name, (long long)i, got->data[i],
                     want->data[i]);
    /* The output keeps ONNX's shape. */
    assert_int_equal(got->shape.rank, want->shape.rank);
    for (int d = 0; d < want->shape.rank; d++)
        assert_int_equal(got->shape.dim[d], want->shape.dim[d]);
    nncc_array_free(x);
    nncc_array_free(want);
    nncc_array_free(got);
    return m;
}

/* How many IR nodes of `op` the model's graph has. */
static int count_ops(nncc_model *m, const char *op)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(nncc_model_dump_ir(m, f), NNCC_OK);
    fclose(f);
    int n = 0;
    char pat[64];
    snprintf(pat, sizeof pat, "= %s", op); /* "%3 = transpose[perm=…] %2" */
    for (const char *p = buf; (p = strstr(p, pat)); p++)
        n++;
    free(buf);
    return n;
}

static void flatten_after_conv(void **state)
{
    (void)state;
    /* Output of the Flatten itself: ONNX's (C, H, W) order needs one
     * transpose back, besides the input's NCHW → NHWC. */
    nncc_model *m = check_case("conv_flatten", 1e-5);
    assert_int_equal(count_ops(m, "transpose"), 2);
    nncc_model_free(m);
    /* Flatten → Gemm: the Gemm's rows are permuted instead: no transpose
     * but the input's. */
    m = check_case("conv_flatten_gemm", 1e-5);
    assert_int_equal(count_ops(m, "transpose"), 1);
    nncc_model_free(m);
}

static void residual_block(void **state)
{
    (void)state;
    nncc_model *m = check_case("residual", 1e-5);
    assert_int_equal(count_ops(m, "transpose"), 1);
    /* Summary rows name the ONNX op types. */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(nncc_summary(m, f), NNCC_OK);
    fclose(f);
    assert_non_null(strstr(buf, "(BatchNormalization)"));
    assert_non_null(strstr(buf, "(GlobalAveragePool)"));
    free(buf);
    /* Saved and loaded back, it computes the same numbers. */
    char path[] = "/tmp/nncc-test-onnx-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(nncc_save(m, path), NNCC_OK);
    nncc_model *back = nncc_load(path);
    if (!back)
        fail_msg("load: %s", nncc_last_error());
    struct nncc_array *x = npy("residual", "in");
    struct nncc_array *a = nncc_predict(m, x), *b = nncc_predict(back, x);
    assert_non_null(a);
    assert_non_null(b);
    assert_memory_equal(a->data, b->data, (size_t)nncc_array_size(a) * sizeof(float));
    nncc_array_free(a);
    nncc_array_free(b);
    nncc_array_free(x);
    nncc_model_free(back);
    nncc_model_free(m);
    unlink(path);
}

static void external_data(void **state)
{
    (void)state;
    nncc_model *m = check_case("external", 1e-6);
    nncc_model_free(m);
    assert_null(nncc_load_onnx(CASES "external_escape.onnx"));
    assert_int_equal(nncc_last_status(), NNCC_ERR_FORMAT);
    assert_non_null(strstr(nncc_last_error(), "../../escape.weights"));
    assert_non_null(strstr(nncc_last_error(), "inside the model's folder"));
}

static void dynamic_and_unsupported(void **state)
{
    (void)state;
    assert_null(nncc_load_onnx(CASES "dynamic.onnx"));
    assert_int_equal(nncc_last_status(), NNCC_ERR_UNSUPPORTED);
    assert_non_null(strstr(nncc_last_error(), "dimension 1 is dynamic (len)"));
    assert_non_null(strstr(nncc_last_error(), "--input-shape"));
    /* Fixed by the caller: 0 keeps the batch open. */
    struct nncc_shape s = NNCC_SHAPE(0, 7);
    nncc_model *m = nncc_load_onnx(CASES "dynamic.onnx", .input_shapes = &s, .n_input_shapes = 1);
    if (!m)
        fail_msg("%s", nncc_last_error());
    struct nncc_shape in = nncc_tensor_shape(nncc_model_input(m, 0));
    assert_int_equal(in.rank, 2);
    assert_int_equal(in.dim[0], NNCC_NONE);
    assert_int_equal(in.dim[1], 7);
    nncc_model_free(m);

    assert_null(nncc_load_onnx(CASES "unsupported.onnx"));
    assert_int_equal(nncc_last_status(), NNCC_ERR_UNSUPPORTED);
    assert_non_null(strstr(nncc_last_error(), "Tile"));
    assert_non_null(strstr(nncc_last_error(), "tile_it"));

    /* Not ONNX at all, and no file. */
    assert_null(nncc_load_onnx(CASES "residual.in.npy"));
    assert_int_equal(nncc_last_status(), NNCC_ERR_FORMAT);
    assert_non_null(strstr(nncc_last_error(), "residual.in.npy"));
    assert_null(nncc_load_onnx(CASES "missing.onnx"));
    assert_int_equal(nncc_last_status(), NNCC_ERR_IO);
}

/* Fine-tuning through an imported graph: the loss falls, the weights move. */
static void fine_tune(void **state)
{
    (void)state;
    nncc_model *m = nncc_load_onnx(CASES "conv_flatten_gemm.onnx");
    if (!m)
        fail_msg("%s", nncc_last_error());
    struct nncc_array *x = nncc_array_new(NNCC_SHAPE(16, 3, 6, 6));
    struct nncc_array *y = nncc_array_new(NNCC_SHAPE(16, 5));
    uint64_t s = 42;
    for (int64_t i = 0; i < nncc_array_size(x); i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        x->data[i] = (float)((s >> 40) & 0xffff) / 65536.0f - 0.5f;
    }
    for (int64_t i = 0; i < nncc_array_size(y); i++)
        y->data[i] = (float)(i % 5) / 5.0f;
    assert_int_equal(nncc_compile(m, .loss = NNCC_MEAN_SQUARED_ERROR, .optimizer = {.kind = NNCC_SGD,
                                                                     .learning_rate = 0.01f}),
                     NNCC_OK);
    nncc_history *h = nncc_fit(m, x, y, .epochs = 5, .batch_size = 8, .verbose = 0);
    if (!h)
        fail_msg("fit: %s", nncc_last_error());
    double first = nncc_history_get(h, "loss", 0), last = nncc_history_get(h, "loss", 4);
    assert_true(last < first);
    nncc_history_free(h);
    nncc_array_free(x);
    nncc_array_free(y);
    nncc_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(flatten_after_conv),
        cmocka_unit_test(residual_block),
        cmocka_unit_test(external_data),
        cmocka_unit_test(dynamic_and_unsupported),
        cmocka_unit_test(fine_tune),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
