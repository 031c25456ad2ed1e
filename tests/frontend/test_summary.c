/*
 * test_summary.c — nncc_summary() against real Keras 2.15's model.summary().
 *
 * Each test builds one model through the nncc C API, layer for layer and in
 * the same creation order as tests/golden/summaries.py builds it with
 * tf_keras (so automatic names agree), prints its summary to a memory
 * stream and compares it byte for byte with tests/expected/summary_<name>.txt,
 * which that script wrote from real Keras.  The models cover a Sequential and
 * functional chains (65-column layout), branches, a layer shared between two
 * inputs ("dense[1][0]"), a shared layer whose node shapes differ
 * ("multiple"), non-trainable BatchNormalization parameters, several inputs
 * and outputs, and long names that wrap every column.  The expected files are
 * Keras' text: when nncc differs, nncc is wrong.  Also checks that
 * nncc_summary() refuses a NULL model, a NULL stream and an unbuilt
 * Sequential.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "include/nncc.h"

/* ---- Helpers ----------------------------------------------------------- */

/* Reads a whole file; NULL if it cannot. */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    size_t n;
    while (s && (n = fread(s + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            char *p = realloc(s, cap * 2);
            if (!p) {
                free(s);
                s = NULL;
                break;
            }
            s = p;
            cap *= 2;
        }
    }
    fclose(f);
    if (s)
        s[len] = '\0';
    return s;
}

/* nncc_summary() into a string (asserts that it succeeds). */
static char *summary_text(const nncc_model *m)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buf, &size);
    assert_non_null(out);
    enum nncc_status st = nncc_summary(m, out);
    fclose(out);
    if (st != NNCC_OK) {
        free(buf);
        fail_msg("nncc_summary: %s: %s", nncc_status_name(st), nncc_last_error());
    }
    return buf;
}

/* Prints line `no` (1-based) of `s` to stderr, showing its end. */
static void print_line(const char *tag, const char *s, int no)
{
    for (int i = 1; i < no && s; i++) {
        s = strchr(s, '\n');
        if (s)
            s++;
    }
    if (!s || !*s) {
        fprintf(stderr, "%s (no line %d: the text ends here)\n", tag, no);
        return;
    }
    size_t n = strcspn(s, "\n");
    fprintf(stderr, "%s%.*s|%s\n", tag, (int)n, s, s[n] == '\n' ? "" : " (no final newline)");
}

/* Compares a model's summary with tests/expected/summary_<name>.txt; on a
 * difference shows the first differing line of each, then fails. */
static void check_summary(nncc_model *m, const char *name)
{
    if (!m)
        fail_msg("building model %s: %s", name, nncc_last_error());
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/expected/summary_%s.txt", NNCC_SOURCE_DIR, name);
    char *want = read_text(path);
    if (!want) {
        nncc_model_free(m);
        fail_msg("cannot read %s", path);
    }
    char *got = summary_text(m);
    nncc_model_free(m);
    if (strcmp(want, got) != 0) {
        int line = 1;
        for (size_t i = 0; want[i] == got[i]; i++)
            if (want[i] == '\n')
                line++;
        fprintf(stderr, "--- %s (real Keras 2.15)\n+++ nncc_summary()\n@@ line %d @@ ('|' marks the end of a line)\n",
                path, line);
        if (line > 1)
            print_line(" ", want, line - 1);
        print_line("-", want, line);
        print_line("+", got, line);
        fprintf(stderr, "=== whole nncc output:\n%s", got);
        free(want);
        free(got);
        fail_msg("summary of %s differs from Keras at line %d", name, line);
    }
    free(want);
    free(got);
}

#define ARR(...) ((nncc_tensor *[]){__VA_ARGS__})

/* ---- The models (as tests/golden/summaries.py builds them) -------------- */

static void test_seed_sequential(void **state)
{
    (void)state;
    nncc_model *m = nncc_sequential(
        ((nncc_layer *[]){
            nncc_dense_layer(.units = 16, .activation = NNCC_RELU, .input_shape = NNCC_SHAPE(32)),
            nncc_dense_layer(.units = 8, .activation = NNCC_SOFTMAX),
        }),
        2);
    check_summary(m, "seed_sequential");
}

static void test_seed_functional(void **state)
{
    (void)state;
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(32));
    nncc_tensor *h = nncc_dense(x, .units = 16, .activation = NNCC_RELU);
    nncc_tensor *y = nncc_dense(h, .units = 8, .activation = NNCC_SOFTMAX);
    nncc_model *m = nncc_model_new(x, y);
    if (!m)
        nncc_graph_free(g);
    check_summary(m, "seed_functional");
}

static void test_seed_cnn(void **state)
{
    (void)state;
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(64, 64, 3));
    nncc_tensor *h = nncc_conv2d(x, .filters = 16, .kernel_size = {3, 3}, .strides = {2, 2},
                                 .padding = NNCC_SAME, .activation = NNCC_RELU);
    h = nncc_maxpool2d(h, .pool_size = {2, 2});
    h = nncc_flatten(h);
    nncc_tensor *y = nncc_dense(h, .units = 4, .activation = NNCC_SOFTMAX);
    nncc_model *m = nncc_model_new(x, y);
    if (!m)
        nncc_graph_free(g);
    check_summary(m, "seed_cnn");
}

/* examples/inception_block.c */
static void test_inception_block(void **state)
{
    (void)state;
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(32, 32, 16), .name = "features");
    nncc_tensor *b1 = nncc_conv2d(x, .filters = 8, .kernel_size = {1, 1}, .padding = NNCC_SAME,
                                  .activation = NNCC_RELU);
    nncc_tensor *b2 = nncc_conv2d(x, .filters = 8, .kernel_size = {1, 1}, .padding = NNCC_SAME,
                                  .activation = NNCC_RELU);
    b2 = nncc_conv2d(b2, .filters = 16, .kernel_size = {3, 3}, .padding = NNCC_SAME,
                     .activation = NNCC_RELU);
    nncc_tensor *b3 = nncc_maxpool2d(x, .pool_size = {3, 3}, .strides = {1, 1},
                                     .padding = NNCC_SAME);
    b3 = nncc_conv2d(b3, .filters = 8, .kernel_size = {1, 1}, .padding = NNCC_SAME,
                     .activation = NNCC_RELU);
    nncc_tensor *h = nncc_concatenate(ARR(b1, b2, b3), 3, .axis = -1);
    h = nncc_global_avgpool2d(h);
    nncc_tensor *y = nncc_dense(h, .units = 10, .activation = NNCC_SOFTMAX);
    nncc_model *m = nncc_model_new(x, y, .name = "inception_block");
    if (!m)
        nncc_graph_free(g);
    check_summary(m, "inception_block");
}

/* One Dense object called on two inputs. */
static void test_shared(void **state)
{
    (void)state;
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *a = nncc_input(g, NNCC_SHAPE(8));
    nncc_tensor *b = nncc_input(g, NNCC_SHAPE(8));
    nncc_layer *d = nncc_dense_layer(.units = 4, .activation = NNCC_RELU);
    nncc_tensor *da = nncc_call(d, a);
    nncc_tensor *db = nncc_call(d, b);
    nncc_tensor *s = nncc_add(ARR(da, db), 2);
    nncc_tensor *y = nncc_dense(s, .units = 1);
    nncc_model *m = nncc_model_new_n(ARR(a, b), 2, ARR(y), 1);
    if (!m)
        nncc_graph_free(g);
    check_summary(m, "shared");
}

/* One MaxPooling2D object called on two shapes: "multiple". */
static void test_shared_multiple(void **state)
{
    (void)state;
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *a = nncc_input(g, NNCC_SHAPE(8, 8, 3));
    nncc_tensor *b = nncc_input(g, NNCC_SHAPE(4, 4, 3));
    nncc_layer *pool = nncc_maxpool2d_layer(.pool_size = {2, 2});
    nncc_tensor *ga = nncc_global_avgpool2d(nncc_call(pool, a));
    nncc_tensor *gb = nncc_global_avgpool2d(nncc_call(pool, b));
    nncc_tensor *c = nncc_concatenate(ARR(ga, gb), 2);
    nncc_tensor *y = nncc_dense(c, .units = 2, .activation = NNCC_SOFTMAX);
    nncc_model *m = nncc_model_new_n(ARR(a, b), 2, ARR(y), 1);
    if (!m)
        nncc_graph_free(g);
    check_summary(m, "shared_multiple");
}

static void test_batchnorm(void **state)
{
    (void)state;
    nncc_model *m = nncc_sequential(
        ((nncc_layer *[]){
            nncc_conv2d_layer(.filters = 8, .kernel_size = {3, 3},
                              .input_shape = NNCC_SHAPE(16, 16, 3)),
            nncc_batchnorm_layer(),
            nncc_global_avgpool2d_layer(),
            nncc_dense_layer(.units = 10, .activation = NNCC_SOFTMAX),
        }),
        4);
    check_summary(m, "batchnorm");
}

static void test_multi_io(void **state)
{
    (void)state;
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *img = nncc_input(g, NNCC_SHAPE(16, 16, 3));
    nncc_tensor *meta = nncc_input(g, NNCC_SHAPE(4));
    nncc_tensor *h = nncc_conv2d(img, .filters = 8, .kernel_size = {3, 3},
                                 .activation = NNCC_RELU);
    h = nncc_avgpool2d(h, .pool_size = {2, 2});
    h = nncc_flatten(h);
    nncc_tensor *mt = nncc_dense(meta, .units = 8, .activation = NNCC_RELU);
    nncc_tensor *c = nncc_concatenate(ARR(h, mt), 2);
    c = nncc_dropout(c, .rate = 0.5f);
    nncc_tensor *out1 = nncc_dense(c, .units = 3, .activation = NNCC_SOFTMAX);
    nncc_tensor *r = nncc_dense(c, .units = 16);
    r = nncc_reshape(r, .target_shape = NNCC_SHAPE(4, 4));
    nncc_tensor *out2 = nncc_activation(r, .activation = NNCC_SIGMOID);
    nncc_model *m = nncc_model_new_n(ARR(img, meta), 2, ARR(out1, out2), 2);
    if (!m)
        nncc_graph_free(g);
    check_summary(m, "multi_io");
}

/* Long names wrap the name column; a 5-way Concatenate wraps "Connected to". */
static void test_long_names(void **state)
{
    (void)state;
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(8), .name = "input_features_with_a_rather_long_name");
    nncc_tensor *branches[5];
    char names[5][64];
    for (int i = 0; i < 5; i++) {
        snprintf(names[i], sizeof names[i], "branch_%d_dense_layer_with_a_very_long_name", i);
        branches[i] = nncc_dense(x, .units = 4, .activation = NNCC_RELU, .name = names[i]);
    }
    nncc_tensor *c = nncc_concatenate(branches, 5,
                                      .name = "concatenate_all_five_branches_of_the_model");
    nncc_tensor *y = nncc_dense(c, .units = 2, .name = "final_output_dense_layer_with_a_long_name");
    nncc_model *m = nncc_model_new(x, y, .name = "model_with_long_layer_names");
    if (!m)
        nncc_graph_free(g);
    check_summary(m, "long_names");
}

/* ---- Errors ------------------------------------------------------------ */

static void test_summary_null_model(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buf, &size);
    assert_non_null(out);
    nncc_clear_error();
    enum nncc_status st = nncc_summary(NULL, out);
    fclose(out);
    assert_int_not_equal(st, NNCC_OK);
    assert_int_equal(nncc_last_status(), st);
    assert_true(nncc_last_error()[0] != '\0');
    assert_int_equal(size, 0); /* nothing printed */
    free(buf);
}

static void test_summary_null_stream(void **state)
{
    (void)state;
    nncc_model *m = nncc_sequential(
        ((nncc_layer *[]){nncc_dense_layer(.units = 2, .input_shape = NNCC_SHAPE(3))}), 1);
    assert_non_null(m);
    nncc_clear_error();
    assert_int_equal(nncc_summary(m, NULL), NNCC_ERR_ARG);
    assert_true(nncc_last_error()[0] != '\0');
    nncc_model_free(m);
}

static void expect_unbuilt(nncc_model *m)
{
    assert_non_null(m);
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buf, &size);
    assert_non_null(out);
    nncc_clear_error();
    enum nncc_status st = nncc_summary(m, out);
    fclose(out);
    assert_int_not_equal(st, NNCC_OK);
    assert_int_equal(nncc_last_status(), st);
    /* Keras: "This model has not yet been built." */
    assert_non_null(strstr(nncc_last_error(), "not been built"));
    assert_non_null(strstr(nncc_last_error(), "sequential"));
    assert_int_equal(size, 0);
    free(buf);
    nncc_model_free(m);
}

/* An empty Sequential, and one whose first layer has no input shape. */
static void test_summary_unbuilt_sequential(void **state)
{
    (void)state;
    expect_unbuilt(nncc_sequential(NULL, 0));
    expect_unbuilt(nncc_sequential(((nncc_layer *[]){nncc_dense_layer(.units = 4),
                                                     nncc_dense_layer(.units = 2)}),
                                   2));
    /* Adding layers without an input shape keeps it unbuilt. */
    nncc_model *m = nncc_sequential(NULL, 0);
    assert_non_null(m);
    assert_int_equal(nncc_sequential_add(m, nncc_dense_layer(.units = 3)), NNCC_OK);
    expect_unbuilt(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_sequential),
        cmocka_unit_test(test_seed_functional),
        cmocka_unit_test(test_seed_cnn),
        cmocka_unit_test(test_inception_block),
        cmocka_unit_test(test_shared),
        cmocka_unit_test(test_shared_multiple),
        cmocka_unit_test(test_batchnorm),
        cmocka_unit_test(test_multi_io),
        cmocka_unit_test(test_long_names),
        cmocka_unit_test(test_summary_null_model),
        cmocka_unit_test(test_summary_null_stream),
        cmocka_unit_test(test_summary_unbuilt_sequential),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
