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

/* Static inputs and a Reshape that mixes axis 0: imported whole; predict
 * takes and gives ONNX's arrays as they are. */
static void whole_model(void **state)
{
    (void)state;
    nncc_model *m = check_case("whole", 1e-6);
    struct nncc_shape in = nncc_tensor_shape(nncc_model_input(m, 0));
    assert_int_equal(in.rank, 4); /* (None, 2, 3, 4): one more axis inside */
    nncc_model_free(m);
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

/* The PyTorch exports of tests/onnx/fixtures/ (make_fixtures.py): the
 * bench models, a ResNet-style network, a model of options, one with
 * external data.  nncc_predict and the program `nncc compile` writes both
 * give PyTorch's outputs to 1e-5. */
static void pytorch_fixtures(void **state)
{
    (void)state;
    static const char *const names[] = {"seed_mlp", "mlp",     "seed_cnn", "convnet",
                                        "resnet",   "options", "external"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char model[512], in[512], want_path[512], prog[512], out[512], cmd[2400];
        snprintf(model, sizeof model, NNCC_SOURCE_DIR "/tests/onnx/fixtures/%s.onnx", names[i]);
        snprintf(in, sizeof in, NNCC_SOURCE_DIR "/tests/onnx/fixtures/%s.input.npy", names[i]);
        snprintf(want_path, sizeof want_path, NNCC_SOURCE_DIR "/tests/onnx/fixtures/%s.output.npy",
                 names[i]);
        nncc_model *m = nncc_load_onnx(model);
        if (!m)
            fail_msg("%s: %s", names[i], nncc_last_error());
        struct nncc_array *x = nncc_load_npy(in), *want = nncc_load_npy(want_path);
        assert_non_null(x);
        assert_non_null(want);
        struct nncc_array *got = nncc_predict(m, x);
        if (!got)
            fail_msg("%s: predict: %s", names[i], nncc_last_error());
        assert_int_equal(nncc_array_size(got), nncc_array_size(want));
        for (int64_t k = 0; k < nncc_array_size(want); k++)
            if (fabs(got->data[k] - want->data[k]) > 1e-5)
                fail_msg("%s: output[%lld] = %.8g, PyTorch %.8g", names[i], (long long)k,
                         got->data[k], want->data[k]);
        nncc_array_free(got);
        nncc_model_free(m);
        /* The deployment program, no nncc at run time. */
        snprintf(prog, sizeof prog, NNCC_BINARY_DIR "/tests/onnx-%s", names[i]);
        snprintf(out, sizeof out, NNCC_BINARY_DIR "/tests/onnx-%s.out.npy", names[i]);
        snprintf(cmd, sizeof cmd, NNCC_BINARY_DIR "/nncc compile %s -o %s >/dev/null", model, prog);
        assert_int_equal(system(cmd), 0);
        snprintf(cmd, sizeof cmd, "%s --input %s --output %s", prog, in, out);
        assert_int_equal(system(cmd), 0);
        struct nncc_array *p = nncc_load_npy(out);
        if (!p)
            fail_msg("%s: %s", names[i], nncc_last_error());
        assert_int_equal(nncc_array_size(p), nncc_array_size(want));
        for (int64_t k = 0; k < nncc_array_size(want); k++)
            if (fabs(p->data[k] - want->data[k]) > 1e-5)
                fail_msg("%s (program): output[%lld] = %.8g, PyTorch %.8g", names[i],
                         (long long)k, p->data[k], want->data[k]);
        nncc_array_free(p);
        nncc_array_free(x);
        nncc_array_free(want);
        unlink(prog);
        unlink(out);
    }
}

/* Training through an imported graph on real data: the PyTorch MLP
 * (untrained, its initial weights) fine-tuned on Fashion-MNIST for one
 * epoch reaches the accuracy a Keras MLP reaches in its first epoch. */
static void fine_tune_fashion_mnist(void **state)
{
    (void)state;
    if (access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK) != 0)
        skip();
    struct nncc_data train = nncc_load_idx("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
                                           "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz",
                                           .scale = 1 / 255.f, .limit = 20000);
    struct nncc_data test = nncc_load_idx("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz",
                                          "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz",
                                          .scale = 1 / 255.f);
    assert_non_null(train.x);
    assert_non_null(test.x);
    /* (n, 28, 28, 1) NHWC is (n, 1, 28, 28) NCHW in memory: one channel. */
    train.x->shape = NNCC_SHAPE(train.x->shape.dim[0], 1, 28, 28);
    test.x->shape = NNCC_SHAPE(test.x->shape.dim[0], 1, 28, 28);
    nncc_model *m = nncc_load_onnx(NNCC_SOURCE_DIR "/tests/onnx/fixtures/mlp.onnx");
    if (!m)
        fail_msg("%s", nncc_last_error());
    assert_int_equal(nncc_compile(m, .loss = NNCC_SPARSE_CATEGORICAL_CROSSENTROPY,
                                  .optimizer = {.kind = NNCC_ADAM, .learning_rate = 0.001f},
                                  .metrics = NNCC_ACCURACY),
                     NNCC_OK);
    struct nncc_logs l0 = nncc_evaluate(m, test.x, test.y);
    nncc_history *h = nncc_fit(m, train.x, train.y, .epochs = 1, .batch_size = 32);
    if (!h)
        fail_msg("fit: %s", nncc_last_error());
    struct nncc_logs l1 = nncc_evaluate(m, test.x, test.y);
    double acc0 = nncc_logs_get(&l0, "accuracy"), acc1 = nncc_logs_get(&l1, "accuracy");
    print_message("fashion-mnist through the imported mlp.onnx: test accuracy %.4f before, %.4f "
                  "after one epoch on 20000 samples\n",
                  acc0, acc1);
    assert_true(acc0 < 0.3);
    assert_true(acc1 > 0.78);
    nncc_history_free(h);
    nncc_data_free(&train);
    nncc_data_free(&test);
    nncc_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(flatten_after_conv),
        cmocka_unit_test(residual_block),
        cmocka_unit_test(whole_model),
        cmocka_unit_test(external_data),
        cmocka_unit_test(dynamic_and_unsupported),
        cmocka_unit_test(fine_tune),
        cmocka_unit_test(pytorch_fixtures),
        cmocka_unit_test(fine_tune_fashion_mnist),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
