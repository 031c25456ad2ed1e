/*
 * test_export.c — nncc_export_onnx: models built with the C API (every
 * layer kind, grouped into a few models so that few JIT compiles run) and
 * the ONNX fixtures of tests/onnx/fixtures/ (imported, then exported) are
 * exported, imported again with nncc_load_onnx, and must predict what the
 * original predicts on random inputs.
 *
 * Tolerance: the exported graph computes the same math, and most outputs
 * come out bit for bit; but the re-imported program is not the same IR
 * (a Conv becomes Transpose + Conv + Add of a (C,1,1) bias + Transpose,
 * which nncc's importer folds back with its own layout choices, so the
 * fusion groups and therefore the float summation order of the generated
 * kernels can differ; batch normalization on a middle axis is exported as
 * x·s + t with s, t precomputed in double).  Hence 1e-6 relative, with
 * an absolute floor of 1e-6 for values near 0.
 *
 * Each exported file also goes through Debian's onnx.checker
 * (/usr/bin/python3): skipped with a message when that python cannot
 * import onnx, unless NNCC_REQUIRE_INTEROP=1, which makes it a failure.
 * When a python3 on PATH has onnxruntime, the file is also run there and
 * compared with nncc (1e-4: another library's kernels); skipped silently
 * otherwise.  Errors: a path that cannot be written, an opset out of range.
 * The CLI: `nncc export FILE.c -o OUT.onnx` writes a file the checker
 * accepts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <math.h>
#include <cmocka.h>
#include "nncc.h"

#define FIXTURES NNCC_SOURCE_DIR "/tests/onnx/fixtures/"
#define NNCC NNCC_BINARY_DIR "/nncc"

/* ---- Helpers ------------------------------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void) /* uniform in [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 11) * (1.0 / 9007199254740992.0)) * 2 - 1;
}

static struct nncc_array *random_array(struct nncc_shape s)
{
    struct nncc_array *a = nncc_array_new(s);
    assert_non_null(a);
    for (int64_t i = 0; i < nncc_array_size(a); i++)
        a->data[i] = frand() * 2;
    return a;
}

static char *temp_path(const char *suffix)
{
    char tmpl[] = "/tmp/nncc-test-export-XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    close(fd);
    unlink(tmpl);
    char *p = malloc(strlen(tmpl) + strlen(suffix) + 1);
    assert_non_null(p);
    sprintf(p, "%s%s", tmpl, suffix);
    return p;
}

static bool interop_required(void)
{
    const char *v = getenv("NNCC_REQUIRE_INTEROP");
    return v && strcmp(v, "1") == 0;
}

/* Debian's onnx.checker on path (full check, shape inference included). */
static void check_onnx(const char *path)
{
    static int have = -1;
    if (have < 0)
        have = system("/usr/bin/python3 -c 'import onnx' >/dev/null 2>&1") == 0;
    if (!have) {
        if (interop_required())
            fail_msg("NNCC_REQUIRE_INTEROP=1 but /usr/bin/python3 cannot import onnx "
                     "(install python3-onnx)");
        static bool said;
        if (!said)
            print_message("skipped: onnx.checker (/usr/bin/python3 cannot import onnx)\n");
        said = true;
        return;
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c 'import onnx,sys; m = onnx.load(sys.argv[1]); "
             "onnx.checker.check_model(m, full_check=True)' '%s'",
             path);
    if (system(cmd) != 0)
        fail_msg("onnx.checker rejects %s", path);
}

/* max |a − b| / max(|a|, 1e-6·…) within tol: relative, floor tol absolute. */
static void compare(const char *what, const struct nncc_array *a, const struct nncc_array *b,
                    double tol)
{
    assert_int_equal(a->shape.rank, b->shape.rank);
    for (int d = 0; d < a->shape.rank; d++)
        assert_int_equal(a->shape.dim[d], b->shape.dim[d]);
    for (int64_t i = 0; i < nncc_array_size(a); i++) {
        double x = a->data[i], y = b->data[i];
        if (isnan(x) && isnan(y)) /* log, sqrt, pow of random inputs */
            continue;
        if (!(x == y || fabs(x - y) <= tol * fmax(1.0, fabs(x))))
            fail_msg("%s: output[%lld] = %.9g, after export and import %.9g", what, (long long)i,
                     x, y);
    }
}

/* onnxruntime (a python3 on PATH), when it is there: runs path on x and
 * compares with want. */
static void check_onnxruntime(const char *path, const struct nncc_array *x,
                              const struct nncc_array *want, int out_index)
{
    static int have = -1;
    if (have < 0)
        have = system("python3 -c 'import onnxruntime, numpy' >/dev/null 2>&1") == 0;
    if (!have)
        return;
    char *in = temp_path(".npy"), *out = temp_path(".npy");
    assert_int_equal(nncc_save_npy(in, x), NNCC_OK);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import sys, numpy as np, onnxruntime as ort; "
             "s = ort.InferenceSession(sys.argv[1], providers=[\"CPUExecutionProvider\"]); "
             "i = s.get_inputs()[0]; "
             "x = np.load(sys.argv[2]).astype(np.int64 if i.type == \"tensor(int64)\" else np.float32); "
             "y = s.run(None, {i.name: x})[int(sys.argv[4])]; "
             "np.save(sys.argv[3], np.ascontiguousarray(y, dtype=np.float32))' '%s' '%s' '%s' %d",
             path, in, out, out_index);
    if (system(cmd) != 0)
        fail_msg("onnxruntime cannot run %s", path);
    struct nncc_array *got = nncc_load_npy(out);
    if (!got)
        fail_msg("%s: %s", out, nncc_last_error());
    char what[600];
    snprintf(what, sizeof what, "onnxruntime on %s", path);
    compare(what, want, got, 1e-4);
    nncc_array_free(got);
    unlink(in);
    unlink(out);
    free(in);
    free(out);
}

/* Exports m, checks the file, imports it back and compares predictions on
 * xs (one array per input; every output), and with onnxruntime when ort
 * (one input only). */
static void round_trip_n(const char *what, nncc_model *m, const struct nncc_array *const *xs,
                         int opset, bool ort)
{
    char *path = temp_path(".onnx");
    enum nncc_status st = nncc_export_onnx(m, path, .opset = opset);
    if (st)
        fail_msg("%s: export: %s", what, nncc_last_error());
    check_onnx(path);
    nncc_model *back = nncc_load_onnx(path);
    if (!back)
        fail_msg("%s: re-import: %s", what, nncc_last_error());
    enum { MAX_OUT = 8 };
    struct nncc_array *a[MAX_OUT] = {0}, *b[MAX_OUT] = {0};
    int n_out = nncc_model_num_outputs(m);
    assert_true(n_out <= MAX_OUT);
    if (nncc_predict_n(m, xs, a))
        fail_msg("%s: predict: %s", what, nncc_last_error());
    if (nncc_predict_n(back, xs, b))
        fail_msg("%s: predict after re-import: %s", what, nncc_last_error());
    for (int k = 0; k < n_out; k++) {
        char w[300];
        snprintf(w, sizeof w, "%s (output %d)", what, k);
        compare(w, a[k], b[k], 1e-6);
        if (ort && nncc_model_num_inputs(m) == 1)
            check_onnxruntime(path, xs[0], a[k], k);
        nncc_array_free(a[k]);
        nncc_array_free(b[k]);
    }
    nncc_model_free(back);
    unlink(path);
    free(path);
}

static void round_trip(const char *what, nncc_model *m, const struct nncc_array *x, int opset)
{
    const struct nncc_array *xs[1] = {x};
    round_trip_n(what, m, xs, opset, true);
}

/* Sets every weight of every layer of m to random values; variances (a
 * batch norm's moving variance, weight index 3) positive. */
static void randomize(nncc_model *m)
{
    for (int i = 0; i < nncc_model_num_layers(m); i++) {
        nncc_layer *l = nncc_model_layer(m, i);
        for (int w = 0; w < nncc_layer_num_weights(l); w++) {
            struct nncc_shape s = nncc_layer_weight_shape(l, w);
            int64_t n = 1;
            for (int d = 0; d < s.rank; d++)
                n *= s.dim[d];
            float *v = malloc((size_t)n * sizeof *v);
            assert_non_null(v);
            for (int64_t k = 0; k < n; k++)
                v[k] = frand() * 0.5f + (w == 3 ? 1.0f : 0.0f);
            assert_int_equal(nncc_set_weights(l, w, v, n), NNCC_OK);
            free(v);
        }
    }
}

/* ---- Models of the C API ---------------------------------------------------- */

/* Dense with every activation, Add, Concatenate, BatchNormalization 2-D,
 * Dropout, LeakyReLU, ELU, two outputs. */
static void dense_model(void **state)
{
    (void)state;
    static const enum nncc_activation acts[] = {
        NNCC_LINEAR, NNCC_RELU, NNCC_SIGMOID, NNCC_TANH, NNCC_ELU, NNCC_SELU,
        NNCC_SOFTPLUS, NNCC_SOFTSIGN, NNCC_HARD_SIGMOID, NNCC_SWISH, NNCC_GELU,
        NNCC_LEAKY_RELU};
    enum { NA = sizeof acts / sizeof *acts };
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(7));
    nncc_tensor *hs[NA];
    for (int i = 0; i < NA; i++)
        hs[i] = nncc_dense(x, .units = 3, .activation = acts[i]);
    nncc_tensor *c = nncc_concatenate(hs, NA);
    nncc_tensor *sum[3] = {nncc_dense(c, .units = 6), nncc_dense(x, .units = 6),
                           nncc_dense(x, .units = 6, .no_bias = true)};
    nncc_tensor *s = nncc_add(sum, 3);
    s = nncc_batchnorm(s, .epsilon = 0.01f);
    s = nncc_dropout(s, .rate = 0.5f);
    s = nncc_leaky_relu(s, .alpha = 0.1f);
    s = nncc_elu(s, .alpha = 0.7f);
    nncc_tensor *y = nncc_dense(s, .units = 4, .activation = NNCC_SOFTMAX);
    nncc_tensor *outs[2] = {y, c};
    nncc_model *m = nncc_model_new_n(&x, 1, outs, 2);
    assert_non_null(m);
    randomize(m);
    struct nncc_array *in = random_array(NNCC_SHAPE(5, 7));
    round_trip("dense model", m, in, 0);
    round_trip("dense model, opset 17", m, in, 17);
    nncc_array_free(in);
    nncc_model_free(m);
}

/* Conv2D valid / same / strided / dilated, BatchNormalization 4-D on the
 * channels and on a middle axis, pools (max same, average same and
 * valid), GlobalAveragePooling2D with and without keepdims, Flatten,
 * Reshape, Add, Concatenate, LeakyReLU and ELU on feature maps. */
static void conv_model(void **state)
{
    (void)state;
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(10, 10, 3));
    nncc_tensor *c1 = nncc_conv2d(x, .filters = 4, .kernel_size = {3, 3}, .activation = NNCC_RELU);
    nncc_tensor *c2 = nncc_conv2d(c1, .filters = 5, .kernel_size = {3, 3}, .strides = {2, 2},
                                  .padding = NNCC_SAME);
    nncc_tensor *bn = nncc_batchnorm(c2);
    nncc_tensor *c3 = nncc_conv2d(bn, .filters = 5, .kernel_size = {2, 2}, .padding = NNCC_SAME,
                                  .dilation_rate = {2, 2});
    c3 = nncc_leaky_relu(c3);
    nncc_tensor *a = nncc_maxpool2d(bn, .padding = NNCC_SAME);
    nncc_tensor *b = nncc_avgpool2d(c3, .pool_size = {3, 3}, .strides = {1, 1},
                                    .padding = NNCC_SAME);
    b = nncc_avgpool2d(nncc_elu(b));
    nncc_tensor *ab[2] = {a, b};
    nncc_tensor *s = nncc_add(ab, 2);                       /* (2, 2, 5) */
    nncc_tensor *mid = nncc_batchnorm(s, .axis = 2);        /* a middle axis */
    nncc_tensor *h1 = nncc_batchnorm(s, .axis = 1, .no_scale = true);
    nncc_tensor *gp = nncc_global_avgpool2d(mid);
    nncc_tensor *gk = nncc_flatten(nncc_global_avgpool2d(c3, .keepdims = true));
    nncc_tensor *r = nncc_flatten(nncc_reshape(h1, .target_shape = NNCC_SHAPE(4, -1)));
    nncc_tensor *cs[3] = {gp, gk, r};
    nncc_tensor *y = nncc_dense(nncc_concatenate(cs, 3), .units = 3, .activation = NNCC_SOFTMAX);
    nncc_model *m = nncc_model_new(x, y);
    assert_non_null(m);
    randomize(m);
    struct nncc_array *in = random_array(NNCC_SHAPE(3, 10, 10, 3));
    round_trip("conv model", m, in, 0);
    nncc_array_free(in);
    nncc_model_free(m);
}

/* Transpose nodes in an exported file: its op_type strings (no value
 * name holds the word). */
static int count_transposes(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 20];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    int n = 0;
    for (size_t i = 0; i + 9 <= len; i++)
        n += memcmp(buf + i, "Transpose", 9) == 0;
    return n;
}

/* A conv chain keeps NCHW inside: one Transpose in, one out. */
static void conv_chain_transposes(void **state)
{
    (void)state;
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(8, 8, 2));
    nncc_tensor *h = nncc_conv2d(x, .filters = 3, .kernel_size = {3, 3}, .activation = NNCC_RELU);
    h = nncc_batchnorm(h);
    h = nncc_conv2d(h, .filters = 3, .kernel_size = {3, 3}, .padding = NNCC_SAME);
    h = nncc_maxpool2d(h);
    h = nncc_conv2d(h, .filters = 2, .kernel_size = {1, 1}, .activation = NNCC_SIGMOID);
    nncc_model *m = nncc_model_new(x, h);
    assert_non_null(m);
    randomize(m);
    char *path = temp_path(".onnx");
    assert_int_equal(nncc_export_onnx(m, path), NNCC_OK);
    check_onnx(path);
    assert_int_equal(count_transposes(path), 2);
    struct nncc_array *in = random_array(NNCC_SHAPE(2, 8, 8, 2));
    round_trip("conv chain", m, in, 0);
    nncc_array_free(in);
    unlink(path);
    free(path);
    nncc_model_free(m);
}

/* ---- ONNX fixtures: imported, exported, imported again ----------------------- */

static void fixtures(void **state)
{
    (void)state;
    static const char *const names[] = {"mlp", "convnet", "resnet", "options",
                                        "seed_cnn", "seed_mlp", "external"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char path[512];
        snprintf(path, sizeof path, FIXTURES "%s.onnx", names[i]);
        nncc_model *m = nncc_load_onnx(path);
        if (!m)
            fail_msg("%s: %s", path, nncc_last_error());
        snprintf(path, sizeof path, FIXTURES "%s.input.npy", names[i]);
        struct nncc_array *x = nncc_load_npy(path);
        if (!x)
            fail_msg("%s: %s", path, nncc_last_error());
        round_trip(names[i], m, x, 0);
        if (strcmp(names[i], "resnet") == 0) {
            /* NCHW in and NCHW inside: the importer's Transpose to NHWC is
             * the convolutions' NCHW form, residual sums stay NCHW; one
             * Transpose is left (before the classifier's Reshape). */
            char *out = temp_path(".onnx");
            assert_int_equal(nncc_export_onnx(m, out), NNCC_OK);
            assert_int_equal(count_transposes(out), 1);
            unlink(out);
            free(out);
        }
        nncc_array_free(x);
        nncc_model_free(m);
    }
}

/* ONNX's backend tests (Debian's libonnx-testdata) that nncc imports
 * (tests/onnx/CONFORMANCE.md): every IR op the importer makes, with its
 * options, on random inputs.  A curated set by default, one or more
 * per op family; NNCC_EXPORT_BACKEND=all runs every one that imports. */
#define BACKEND "/usr/share/libonnx-testdata/data/"
static const char *const backend_tests[] = {
    "node/test_abs", "node/test_add_bcast", "node/test_averagepool_2d_ceil",
    "node/test_averagepool_2d_pads_count_include_pad", "node/test_averagepool_2d_same_lower",
    "node/test_averagepool_1d_default", "node/test_basic_conv_with_padding",
    "node/test_conv_with_strides_and_asymmetric_padding", "node/test_batchnorm_epsilon",
    "node/test_ceil", "node/test_celu_expanded", "node/test_clip_splitbounds",
    "node/test_concat_3d_axis_negative_2", "node/test_constant_pad", "node/test_convtranspose",
    "node/test_convtranspose_1d", "node/test_convtranspose_dilations", "node/test_convtranspose_pads",
    "node/test_div_bcast", "node/test_dropout_default", "node/test_elu", "node/test_erf",
    "node/test_exp", "node/test_flatten_axis2", "node/test_floor", "node/test_gather_0",
    "node/test_gather_1", "node/test_gather_2d_indices", "node/test_gemm_all_attributes",
    "node/test_gemm_transposeA", "node/test_globalmaxpool", "node/test_globalaveragepool",
    "node/test_hardsigmoid", "node/test_hardswish", "node/test_leakyrelu", "node/test_log",
    "node/test_logsoftmax_axis_0", "node/test_logsoftmax_axis_1", "node/test_matmul_4d",
    "node/test_max_example", "node/test_maxpool_2d_ceil", "node/test_maxpool_2d_dilations",
    "node/test_maxpool_2d_same_lower", "node/test_maxpool_1d_default", "node/test_min_two_inputs",
    "node/test_mul_bcast", "node/test_mvn_expanded", "node/test_neg", "node/test_pow_bcast_array",
    "node/test_prelu_broadcast", "node/test_reciprocal", "node/test_reduce_max_do_not_keepdims_random",
    "node/test_reduce_mean_keepdims_random", "node/test_reduce_sum_default_axes_keepdims_random",
    "node/test_reduce_sum_negative_axes_keepdims_random", "node/test_relu",
    "node/test_reshape_reordered_all_dims", "node/test_reshape_zero_and_negative_dim",
    "node/test_selu", "node/test_sigmoid", "node/test_slice", "node/test_slice_neg_steps",
    "node/test_slice_negative_axes", "node/test_softmax_axis_0", "node/test_softmax_axis_1",
    "node/test_softplus", "node/test_softsign", "node/test_split_variable_parts_2d",
    "node/test_sqrt", "node/test_squeeze", "node/test_sub_bcast", "node/test_tanh",
    "node/test_transpose_all_permutations_3", "node/test_unsqueeze_three_axes",
    "pytorch-converted/test_Conv2d_depthwise_strided", "pytorch-converted/test_Conv1d_groups",
    "pytorch-converted/test_BatchNorm3d_eval", "pytorch-converted/test_ConstantPad2d",
    "pytorch-converted/test_Conv2d_groups", "pytorch-converted/test_ConvTranspose2d",
    "pytorch-converted/test_Embedding", "pytorch-operator/test_operator_permute2",
};

/* Imports a backend test's model; its inputs after the first bound to the
 * data set's values when it only imports so (weights given as inputs). */
static nncc_model *load_backend(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    nncc_model *m = nncc_load_onnx(path);
    if (m)
        return m;
    struct nncc_array *vals[16] = {0};
    char names[16][256];
    const char *np[16];
    int n = 0;
    for (int i = 1; i < 16; i++) {
        char p[1100];
        snprintf(p, sizeof p, "%s/test_data_set_0/input_%d.pb", dir, i);
        if (access(p, R_OK) != 0)
            break;
        if ((vals[n] = nncc_load_onnx_tensor_named(p, names[n], sizeof names[n])))
            np[n] = names[n], n++;
    }
    m = n ? nncc_load_onnx(path, .constant_names = np,
                           .constant_values = (const struct nncc_array *const *)vals,
                           .n_constants = n)
          : NULL;
    for (int i = 0; i < n; i++)
        nncc_array_free(vals[i]);
    return m;
}

/* must: the curated tests all import; with NNCC_EXPORT_BACKEND=all, the
 * list's n/a ones are skipped (CONFORMANCE.md says why). */
static void backend_round_trip(const char *name, int opset, bool must)
{
    char dir[512];
    snprintf(dir, sizeof dir, BACKEND "%s", name);
    nncc_model *m = load_backend(dir);
    if (!m && must)
        fail_msg("%s: import: %s", name, nncc_last_error());
    if (!m)
        return;
    int n_in = nncc_model_num_inputs(m);
    struct nncc_array *xs[16] = {0};
    assert_true(n_in <= 16);
    for (int i = 0; i < n_in; i++) {
        struct nncc_shape s = nncc_tensor_shape(nncc_model_input(m, i));
        s.dim[0] = 2; /* two rows */
        xs[i] = random_array(s);
    }
    round_trip_n(name, m, (const struct nncc_array *const *)xs, opset, false);
    for (int i = 0; i < n_in; i++)
        nncc_array_free(xs[i]);
    nncc_model_free(m);
}

static void backend_models(void **state)
{
    (void)state;
    if (access(BACKEND, R_OK) != 0) {
        if (interop_required())
            fail_msg("NNCC_REQUIRE_INTEROP=1 but " BACKEND " is missing (libonnx-testdata)");
        skip();
    }
    const char *all = getenv("NNCC_EXPORT_BACKEND");
    if (all && strcmp(all, "all") == 0) {
        FILE *f = fopen(NNCC_SOURCE_DIR "/tests/onnx/CONFORMANCE.md", "r");
        assert_non_null(f);
        char line[2048], folder[256], test[256];
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "| %255s | %255s | pass |", folder, test) == 2) {
                char name[600];
                snprintf(name, sizeof name, "%s/%s", folder, test);
                backend_round_trip(name, 0, false);
            }
        fclose(f);
        return;
    }
    /* Opsets 13 to 17 in turn; HardSwish is a node from 14 on, Mul and
     * HardSigmoid before. */
    for (size_t i = 0; i < sizeof backend_tests / sizeof *backend_tests; i++)
        backend_round_trip(backend_tests[i], 13 + (int)(i % 5), true);
    backend_round_trip("node/test_hardswish", 13, true);
    backend_round_trip("node/test_hardswish", 14, true);
}

/* tests/onnx/export_cases/ (make_export_cases.py): a slice that reverses
 * through index 0 (nncc's end −1, ONNX's INT64_MIN), Pad, PRelu. */
static void export_cases(void **state)
{
    (void)state;
    nncc_model *m = nncc_load_onnx(NNCC_SOURCE_DIR "/tests/onnx/export_cases/reverse_slice.onnx");
    if (!m)
        fail_msg("reverse_slice: %s", nncc_last_error());
    struct nncc_array *x = random_array(NNCC_SHAPE(3, 5, 6));
    round_trip("reverse_slice", m, x, 0);
    nncc_array_free(x);
    nncc_model_free(m);
}

/* ---- Errors and the CLI ------------------------------------------------------ */

static void errors(void **state)
{
    (void)state;
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(3));
    nncc_model *m = nncc_model_new(x, nncc_dense(x, .units = 2));
    assert_non_null(m);
    assert_int_equal(nncc_export_onnx(m, "/nonexistent-dir/m.onnx"), NNCC_ERR_IO);
    assert_non_null(strstr(nncc_last_error(), "/nonexistent-dir/m.onnx"));
    char *path = temp_path(".onnx");
    assert_int_equal(nncc_export_onnx(m, path, .opset = 12), NNCC_ERR_ARG);
    assert_non_null(strstr(nncc_last_error(), "opset 12"));
    assert_int_equal(nncc_export_onnx(m, path, .opset = 18), NNCC_ERR_ARG);
    assert_int_equal(access(path, F_OK), -1); /* nothing written */
    free(path);
    nncc_model_free(m);
}

static void cli_export(void **state)
{
    (void)state;
    char *src = temp_path(".c"), *out = temp_path(".onnx");
    FILE *f = fopen(src, "w");
    assert_non_null(f);
    fputs("#include <nncc.h>\n"
          "nncc_model *model(void)\n"
          "{\n"
          "    nncc_graph *g = nncc_graph_new();\n"
          "    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(6, 6, 1));\n"
          "    nncc_tensor *h = nncc_conv2d(x, .filters = 2, .kernel_size = {3, 3},\n"
          "                                 .activation = NNCC_RELU);\n"
          "    h = nncc_flatten(nncc_maxpool2d(h));\n"
          "    return nncc_model_new(x, nncc_dense(h, .units = 3, .activation = NNCC_SOFTMAX));\n"
          "}\n",
          f);
    fclose(f);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' export '%s' -o '%s' --opset 14", NNCC, src, out);
    assert_int_equal(system(cmd), 0);
    check_onnx(out);
    nncc_model *m = nncc_load_onnx(out);
    if (!m)
        fail_msg("%s: %s", out, nncc_last_error());
    nncc_model_free(m);
    /* Usage errors exit 2. */
    snprintf(cmd, sizeof cmd, "'%s' export '%s' 2>/dev/null", NNCC, src);
    int rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
    snprintf(cmd, sizeof cmd, "'%s' export '%s' -o '%s' --opset 9 2>/dev/null", NNCC, src, out);
    rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) != 0);
    unlink(src);
    unlink(out);
    free(src);
    free(out);
}

int main(void)
{
    setenv("XDG_CACHE_HOME", NNCC_BINARY_DIR "/test-cache", 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dense_model),     cmocka_unit_test(conv_model),
        cmocka_unit_test(conv_chain_transposes), cmocka_unit_test(fixtures),
        cmocka_unit_test(backend_models),  cmocka_unit_test(export_cases),
        cmocka_unit_test(errors),          cmocka_unit_test(cli_export),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
