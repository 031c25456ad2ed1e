/*
 * test_layers: layers and models built through the public API, checked with
 * exact values computed by hand from Keras 2.15's formulas.  For every layer
 * kind: output shapes (valid ⌊(n−k')/s⌋+1, same ⌈n/s⌉, k' = k+(k−1)(d−1)),
 * parameter counts (total and trainable) and Keras class names.  Then the
 * seed models, automatic naming, weight sharing (nodes, input/output shapes),
 * Sequential models, multi-input/multi-output and branching models, layer
 * order in model.layers, and nncc_shape_str().  Nothing here is compiled.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "nncc.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define NONE NNCC_NONE

/* Tensor and layer lists for nncc_add / nncc_concatenate / nncc_model_new_n /
 * nncc_sequential.  The extra parentheses matter: a bare compound literal
 * such as `(nncc_tensor *[]){a, b}` has a comma outside parentheses, which
 * the preprocessor takes as a macro argument separator. */
#define TENSORS(...) ((nncc_tensor *[]){__VA_ARGS__})
#define LAYERS(...) ((nncc_layer *[]){__VA_ARGS__})

/* ---- Helpers ----------------------------------------------------------- */

static bool shape_is(struct nncc_shape got, struct nncc_shape want, const char *file, int line)
{
    bool ok = got.rank == want.rank;
    for (int i = 0; ok && i < got.rank; i++)
        ok = got.dim[i] == want.dim[i];
    if (!ok) {
        char a[160], b[160];
        print_error("%s:%d: shape %s (rank %d), expected %s (rank %d); last error: %s\n", file,
                    line, nncc_shape_str(got, a, sizeof a), got.rank,
                    nncc_shape_str(want, b, sizeof b), want.rank, nncc_last_error());
    }
    return ok;
}

/* ASSERT_SHAPE(t, NONE, 28, 28, 1): the tensor's shape, batch included. */
#define ASSERT_SHAPE(t, ...)                                                              \
    do {                                                                                  \
        if (!shape_is(nncc_tensor_shape(t), NNCC_SHAPE(__VA_ARGS__), __FILE__, __LINE__)) \
            _fail(__FILE__, __LINE__);                                                    \
    } while (0)

#define ASSERT_SHAPE_VALUE(s, ...)                                                        \
    do {                                                                                  \
        if (!shape_is((s), NNCC_SHAPE(__VA_ARGS__), __FILE__, __LINE__))                  \
            _fail(__FILE__, __LINE__);                                                    \
    } while (0)

/* The layer that produced t: its class name, total and trainable params. */
#define ASSERT_LAYER(t, type, params, trainable)                                          \
    do {                                                                                  \
        nncc_layer *l_ = nncc_tensor_layer(t);                                            \
        assert_non_null(l_);                                                              \
        assert_string_equal(nncc_layer_type(l_), (type));                                 \
        assert_int_equal(nncc_layer_count_params(l_), (params));                          \
        assert_int_equal(nncc_layer_count_trainable_params(l_), (trainable));             \
    } while (0)

#define LAYER_NAME(t) nncc_layer_name(nncc_tensor_layer(t))

static const struct nncc_shape rank0 = {.rank = 0};

/* A fresh graph with one input of the given shape. */
static nncc_tensor *input_on(nncc_graph **g, struct nncc_shape s)
{
    *g = nncc_graph_new();
    assert_non_null(*g);
    nncc_tensor *x = nncc_input(*g, s);
    assert_non_null(x);
    return x;
}

static void free_graph(nncc_graph *g) { assert_int_equal(nncc_graph_free(g), NNCC_OK); }

/* ---- Inputs ------------------------------------------------------------ */

static void test_input_shapes(void **state)
{
    (void)state;
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *a = nncc_input(g, NNCC_SHAPE(28, 28, 1));
    nncc_tensor *b = nncc_input(g, NNCC_SHAPE(784), .batch_size = 32);
    nncc_tensor *c = nncc_input(g, rank0);
    ASSERT_SHAPE(a, NONE, 28, 28, 1);
    ASSERT_SHAPE(b, 32, 784);
    ASSERT_SHAPE(c, NONE);
    ASSERT_LAYER(a, "InputLayer", 0, 0);
    assert_ptr_equal(nncc_tensor_graph(a), g);
    /* Keras: an InputLayer's input is its output. */
    nncc_layer *il = nncc_tensor_layer(a);
    assert_int_equal(nncc_layer_num_nodes(il), 1);
    assert_ptr_equal(nncc_layer_input(il), a);
    assert_ptr_equal(nncc_layer_output(il), a);
    struct nncc_shape s;
    assert_int_equal(nncc_layer_input_shape(il, &s), NNCC_OK);
    ASSERT_SHAPE_VALUE(s, NONE, 28, 28, 1);
    assert_int_equal(nncc_layer_output_shape(il, &s), NNCC_OK);
    ASSERT_SHAPE_VALUE(s, NONE, 28, 28, 1);
    free_graph(g);
}

/* ---- Dense ------------------------------------------------------------- */

static void test_dense(void **state)
{
    (void)state;
    nncc_graph *g;
    nncc_tensor *x = input_on(&g, NNCC_SHAPE(784));
    nncc_tensor *y = nncc_dense(x, .units = 10);
    ASSERT_SHAPE(y, NONE, 10);
    ASSERT_LAYER(y, "Dense", 7850, 7850);
    /* An activation adds no parameters. */
    y = nncc_dense(x, .units = 64, .activation = NNCC_RELU);
    ASSERT_SHAPE(y, NONE, 64);
    ASSERT_LAYER(y, "Dense", 50240, 50240);
    /* use_bias=False */
    y = nncc_dense(x, .units = 10, .no_bias = true);
    ASSERT_SHAPE(y, NONE, 10);
    ASSERT_LAYER(y, "Dense", 7840, 7840);
    y = nncc_dense(x, .units = 1, .activation = NNCC_SIGMOID);
    ASSERT_SHAPE(y, NONE, 1);
    ASSERT_LAYER(y, "Dense", 785, 785);
    free_graph(g);
}

static void test_dense_contracts_last_axis(void **state)
{
    (void)state;
    nncc_graph *g;
    nncc_tensor *x = input_on(&g, NNCC_SHAPE(5, 7));
    nncc_tensor *y = nncc_dense(x, .units = 3);
    ASSERT_SHAPE(y, NONE, 5, 3);
    ASSERT_LAYER(y, "Dense", 7 * 3 + 3, 24);
    nncc_tensor *x4 = nncc_input(g, NNCC_SHAPE(2, 3, 4));
    y = nncc_dense(x4, .units = 6, .activation = NNCC_SOFTMAX);
    ASSERT_SHAPE(y, NONE, 2, 3, 6);
    ASSERT_LAYER(y, "Dense", 4 * 6 + 6, 30);
    y = nncc_dense(x4, .units = 6, .no_bias = true);
    ASSERT_SHAPE(y, NONE, 2, 3, 6);
    ASSERT_LAYER(y, "Dense", 24, 24);
    free_graph(g);
}

static void test_dense_fixed_batch(void **state)
{
    (void)state;
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(784), .batch_size = 32);
    nncc_tensor *y = nncc_dense(x, .units = 10);
    ASSERT_SHAPE(y, 32, 10);
    nncc_tensor *x3 = nncc_input(g, NNCC_SHAPE(5, 7), .batch_size = 1);
    ASSERT_SHAPE(nncc_dense(x3, .units = 2), 1, 5, 2);
    free_graph(g);
}

/* ---- Activation -------------------------------------------------------- */

static void test_activation_all_kinds(void **state)
{
    (void)state;
    static const char *const names[NNCC_ACTIVATION_COUNT] = {
        "linear", "relu", "sigmoid", "tanh", "softmax", "elu", "selu",
        "softplus", "softsign", "hard_sigmoid", "swish", "gelu", "leaky_relu",
    };
    assert_int_equal(NNCC_ACTIVATION_COUNT, 13);
    nncc_graph *g;
    nncc_tensor *x = input_on(&g, NNCC_SHAPE(4, 5));
    nncc_tensor *x2 = nncc_input(g, NNCC_SHAPE(6));
    for (int a = 0; a < NNCC_ACTIVATION_COUNT; a++) {
        assert_string_equal(nncc_activation_name((enum nncc_activation)a), names[a]);
        nncc_tensor *y = nncc_activation(x, .activation = (enum nncc_activation)a);
        ASSERT_SHAPE(y, NONE, 4, 5);
        ASSERT_LAYER(y, "Activation", 0, 0);
        y = nncc_activation(x2, .activation = (enum nncc_activation)a);
        ASSERT_SHAPE(y, NONE, 6);
    }
    assert_null(nncc_activation_name(NNCC_ACTIVATION_COUNT));
    assert_null(nncc_activation_name((enum nncc_activation)-1));
    free_graph(g);
}

/* ---- Flatten, Reshape, Dropout ----------------------------------------- */

static void test_flatten(void **state)
{
    (void)state;
    nncc_graph *g;
    nncc_tensor *x = input_on(&g, NNCC_SHAPE(5));
    nncc_tensor *y = nncc_flatten(x);
    ASSERT_SHAPE(y, NONE, 5);
    ASSERT_LAYER(y, "Flatten", 0, 0);
    ASSERT_SHAPE(nncc_flatten(nncc_input(g, NNCC_SHAPE(4, 4, 2))), NONE, 32);
    ASSERT_SHAPE(nncc_flatten(nncc_input(g, NNCC_SHAPE(2, 3, 4))), NONE, 24);
    ASSERT_SHAPE(nncc_flatten(nncc_input(g, NNCC_SHAPE(3, 1, 2, 5))), NONE, 30);
    /* Keras: (N,) flattens to (N, 1). */
    ASSERT_SHAPE(nncc_flatten(nncc_input(g, rank0)), NONE, 1);
    /* A fixed batch is kept. */
    ASSERT_SHAPE(nncc_flatten(nncc_input(g, NNCC_SHAPE(4, 4, 2), .batch_size = 8)), 8, 32);
    free_graph(g);
}

static void test_reshape(void **state)
{
    (void)state;
    nncc_graph *g;
    nncc_tensor *x = input_on(&g, NNCC_SHAPE(4, 6));
    nncc_tensor *y = nncc_reshape(x, .target_shape = NNCC_SHAPE(3, 8));
    ASSERT_SHAPE(y, NONE, 3, 8);
    ASSERT_LAYER(y, "Reshape", 0, 0);
    ASSERT_SHAPE(nncc_reshape(x, .target_shape = NNCC_SHAPE(-1, 2)), NONE, 12, 2);
    ASSERT_SHAPE(nncc_reshape(x, .target_shape = NNCC_SHAPE(2, -1, 3)), NONE, 2, 4, 3);
    ASSERT_SHAPE(nncc_reshape(x, .target_shape = NNCC_SHAPE(24)), NONE, 24);
    ASSERT_SHAPE(nncc_reshape(x, .target_shape = NNCC_SHAPE(-1)), NONE, 24);
    ASSERT_SHAPE(nncc_reshape(x, .target_shape = NNCC_SHAPE(1, 2, 3, 4)), NONE, 1, 2, 3, 4);
    nncc_tensor *f = nncc_input(g, NNCC_SHAPE(784));
    ASSERT_SHAPE(nncc_reshape(f, .target_shape = NNCC_SHAPE(28, 28, 1)), NONE, 28, 28, 1);
    ASSERT_SHAPE(nncc_reshape(f, .target_shape = NNCC_SHAPE(28, -1, 1)), NONE, 28, 28, 1);
    free_graph(g);
}

static void test_dropout(void **state)
{
    (void)state;
    nncc_graph *g;
    nncc_tensor *x = input_on(&g, NNCC_SHAPE(10));
    nncc_tensor *y = nncc_dropout(x, .rate = 0.5f);
    ASSERT_SHAPE(y, NONE, 10);
    ASSERT_LAYER(y, "Dropout", 0, 0);
    ASSERT_SHAPE(nncc_dropout(x), NONE, 10); /* rate 0 is allowed */
    nncc_tensor *x4 = nncc_input(g, NNCC_SHAPE(8, 8, 3));
    ASSERT_SHAPE(nncc_dropout(x4, .rate = 0.25f, .seed = 42), NONE, 8, 8, 3);
    free_graph(g);
}

/* ---- Conv2D ------------------------------------------------------------ */

struct conv_case {
    int h, w, c, filters, kh, kw, sh, sw, dh, dw;
    enum nncc_padding padding;
    bool no_bias;
    int64_t out_h, out_w, params;
};

static void test_conv2d_shapes_and_params(void **state)
{
    (void)state;
    static const struct conv_case cases[] = {
        /* h   w   c   f  kh kw sh sw dh dw  padding     nob  out_h out_w params */
        {28, 28, 1, 32, 3, 3, 0, 0, 0, 0, NNCC_VALID, false, 26, 26, 320},
        {28, 28, 1, 8, 3, 3, 1, 1, 1, 1, NNCC_SAME, false, 28, 28, 80},
        {28, 28, 3, 4, 3, 3, 2, 2, 0, 0, NNCC_VALID, false, 13, 13, 112},
        {28, 28, 3, 4, 3, 3, 2, 2, 0, 0, NNCC_SAME, false, 14, 14, 112},
        {28, 28, 3, 4, 3, 3, 3, 3, 0, 0, NNCC_VALID, false, 9, 9, 112},
        {28, 28, 3, 4, 3, 3, 3, 3, 0, 0, NNCC_SAME, false, 10, 10, 112},
        {28, 28, 3, 4, 3, 3, 0, 0, 2, 2, NNCC_VALID, false, 24, 24, 112},
        {28, 28, 3, 4, 3, 3, 0, 0, 2, 2, NNCC_SAME, false, 28, 28, 112},
        {7, 7, 2, 5, 3, 3, 2, 2, 0, 0, NNCC_SAME, false, 4, 4, 95},
        {7, 7, 2, 5, 3, 3, 2, 2, 0, 0, NNCC_VALID, false, 3, 3, 95},
        {8, 8, 16, 4, 1, 1, 0, 0, 0, 0, NNCC_VALID, false, 8, 8, 68},
        {8, 8, 16, 4, 1, 1, 2, 2, 0, 0, NNCC_VALID, false, 4, 4, 68},
        {8, 8, 16, 4, 1, 1, 0, 0, 0, 0, NNCC_VALID, true, 8, 8, 64},
        {32, 32, 3, 16, 3, 3, 0, 0, 0, 0, NNCC_VALID, true, 30, 30, 432},
        {10, 12, 3, 6, 3, 5, 1, 2, 0, 0, NNCC_VALID, false, 8, 4, 276},
        {10, 12, 3, 6, 3, 5, 1, 2, 0, 0, NNCC_SAME, false, 10, 6, 276},
        {9, 9, 1, 1, 3, 3, 0, 0, 2, 3, NNCC_VALID, false, 5, 3, 10},
        {5, 5, 1, 1, 5, 5, 0, 0, 0, 0, NNCC_VALID, false, 1, 1, 26},
        {11, 11, 1, 2, 4, 4, 3, 3, 0, 0, NNCC_VALID, false, 3, 3, 34},
        {11, 11, 1, 2, 4, 4, 3, 3, 0, 0, NNCC_SAME, false, 4, 4, 34},
        {64, 64, 3, 16, 3, 3, 2, 2, 0, 0, NNCC_SAME, false, 32, 32, 448},
        {3, 3, 2, 7, 5, 5, 0, 0, 0, 0, NNCC_SAME, false, 3, 3, 357},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct conv_case *k = &cases[i];
        nncc_graph *g;
        nncc_tensor *x = input_on(&g, NNCC_SHAPE(k->h, k->w, k->c));
        nncc_tensor *y = nncc_conv2d(x, .filters = k->filters, .kernel_size = {k->kh, k->kw},
                                     .strides = {k->sh, k->sw}, .dilation_rate = {k->dh, k->dw},
                                     .padding = k->padding, .no_bias = k->no_bias);
        if (!shape_is(nncc_tensor_shape(y), NNCC_SHAPE(NONE, k->out_h, k->out_w, k->filters),
                      __FILE__, __LINE__))
            fail_msg("conv case %zu", i);
        ASSERT_LAYER(y, "Conv2D", k->params, k->params);
        free_graph(g);
    }
}

static void test_conv2d_fixed_batch_and_activation(void **state)
{
    (void)state;
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(6, 6, 2), .batch_size = 4);
    nncc_tensor *y = nncc_conv2d(x, .filters = 3, .kernel_size = {3, 3},
                                 .activation = NNCC_RELU);
    ASSERT_SHAPE(y, 4, 4, 4, 3);
    ASSERT_LAYER(y, "Conv2D", 57, 57);
    free_graph(g);
}

/* ---- Pooling ----------------------------------------------------------- */

struct pool_case {
    bool max;
    int h, w, c, ph, pw, sh, sw;
    enum nncc_padding padding;
    int64_t out_h, out_w;
};

static void test_pool2d(void **state)
{
    (void)state;
    static const struct pool_case cases[] = {
        /* max    h   w  c  ph pw sh sw padding     out_h out_w */
        {true, 28, 28, 8, 0, 0, 0, 0, NNCC_VALID, 14, 14}, /* all defaults: 2x2, strides 2 */
        {true, 5, 5, 1, 0, 0, 0, 0, NNCC_VALID, 2, 2},
        {true, 5, 5, 1, 2, 2, 0, 0, NNCC_SAME, 3, 3},
        {true, 5, 5, 1, 3, 3, 1, 1, NNCC_VALID, 3, 3},
        {true, 7, 7, 2, 3, 3, 2, 2, NNCC_VALID, 3, 3},
        {true, 5, 5, 1, 2, 2, 1, 1, NNCC_SAME, 5, 5},
        {true, 10, 10, 1, 3, 3, 0, 0, NNCC_VALID, 3, 3}, /* strides default to pool 3 */
        {true, 8, 9, 4, 2, 3, 0, 0, NNCC_VALID, 4, 3},
        {true, 2, 2, 1, 3, 3, 0, 0, NNCC_SAME, 1, 1},
        {true, 32, 32, 16, 2, 2, 0, 0, NNCC_VALID, 16, 16},
        {false, 5, 5, 1, 2, 2, 0, 0, NNCC_SAME, 3, 3},
        {false, 6, 6, 3, 0, 0, 0, 0, NNCC_VALID, 3, 3},
        {false, 7, 7, 3, 3, 3, 2, 2, NNCC_SAME, 4, 4},
        {false, 4, 6, 2, 2, 2, 1, 2, NNCC_VALID, 3, 3},
        {false, 7, 7, 3, 0, 0, 0, 0, NNCC_VALID, 3, 3},
        {false, 7, 7, 3, 0, 0, 0, 0, NNCC_SAME, 4, 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct pool_case *k = &cases[i];
        nncc_graph *g;
        nncc_tensor *x = input_on(&g, NNCC_SHAPE(k->h, k->w, k->c));
        nncc_tensor *y =
            k->max ? nncc_maxpool2d(x, .pool_size = {k->ph, k->pw}, .strides = {k->sh, k->sw},
                                    .padding = k->padding)
                   : nncc_avgpool2d(x, .pool_size = {k->ph, k->pw}, .strides = {k->sh, k->sw},
                                    .padding = k->padding);
        if (!shape_is(nncc_tensor_shape(y), NNCC_SHAPE(NONE, k->out_h, k->out_w, k->c), __FILE__,
                      __LINE__))
            fail_msg("pool case %zu", i);
        ASSERT_LAYER(y, k->max ? "MaxPooling2D" : "AveragePooling2D", 0, 0);
        free_graph(g);
    }
}

static void test_global_avgpool2d(void **state)
{
    (void)state;
    nncc_graph *g;
    nncc_tensor *x = input_on(&g, NNCC_SHAPE(7, 7, 64));
    nncc_tensor *y = nncc_global_avgpool2d(x);
    ASSERT_SHAPE(y, NONE, 64);
    ASSERT_LAYER(y, "GlobalAveragePooling2D", 0, 0);
    y = nncc_global_avgpool2d(x, .keepdims = true);
    ASSERT_SHAPE(y, NONE, 1, 1, 64);
    ASSERT_SHAPE(nncc_global_avgpool2d(nncc_input(g, NNCC_SHAPE(1, 1, 3))), NONE, 3);
    ASSERT_SHAPE(nncc_global_avgpool2d(nncc_input(g, NNCC_SHAPE(5, 3, 2), .batch_size = 2)), 2,
                 2);
    free_graph(g);
}

/* ---- Add, Concatenate -------------------------------------------------- */

static void test_add(void **state)
{
    (void)state;
    nncc_graph *g;
    nncc_tensor *a = input_on(&g, NNCC_SHAPE(4));
    nncc_tensor *b = nncc_input(g, NNCC_SHAPE(4));
    nncc_tensor *y = nncc_add(TENSORS(a, b), 2);
    ASSERT_SHAPE(y, NONE, 4);
    ASSERT_LAYER(y, "Add", 0, 0);
    assert_int_equal(nncc_layer_num_inputs_at(nncc_tensor_layer(y), 0), 2);
    assert_ptr_equal(nncc_layer_input_at(nncc_tensor_layer(y), 0, 1), b);

    nncc_tensor *p = nncc_input(g, NNCC_SHAPE(2, 3));
    nncc_tensor *q = nncc_input(g, NNCC_SHAPE(2, 3));
    nncc_tensor *r = nncc_input(g, NNCC_SHAPE(2, 3));
    y = nncc_add(TENSORS(p, q, r), 3);
    ASSERT_SHAPE(y, NONE, 2, 3);
    assert_int_equal(nncc_layer_num_inputs_at(nncc_tensor_layer(y), 0), 3);

    /* Size-1 dimensions broadcast. */
    nncc_tensor *c41 = nncc_input(g, NNCC_SHAPE(4, 1));
    nncc_tensor *c45 = nncc_input(g, NNCC_SHAPE(4, 5));
    nncc_tensor *c15 = nncc_input(g, NNCC_SHAPE(1, 5));
    ASSERT_SHAPE(nncc_add(TENSORS(c41, c45), 2), NONE, 4, 5);
    ASSERT_SHAPE(nncc_add(TENSORS(c45, c41), 2), NONE, 4, 5);
    ASSERT_SHAPE(nncc_add(TENSORS(c15, c41), 2), NONE, 4, 5);
    ASSERT_SHAPE(nncc_add(TENSORS(c45, c15, c41), 3), NONE, 4, 5);
    /* A residual connection. */
    nncc_tensor *img = nncc_input(g, NNCC_SHAPE(8, 8, 16));
    nncc_tensor *h = nncc_conv2d(img, .filters = 16, .kernel_size = {3, 3}, .padding = NNCC_SAME);
    ASSERT_SHAPE(nncc_add(TENSORS(img, h), 2), NONE, 8, 8, 16);
    free_graph(g);
}

/* Keras' _Merge aligns the dimensions after the batch from the right (it
 * expands the lower-rank input at axis 1), so (None, 4, 5) + (None, 5) is
 * (None, 4, 5). */
static void test_add_different_ranks(void **state)
{
    (void)state;
    nncc_graph *g;
    nncc_tensor *a = input_on(&g, NNCC_SHAPE(4, 5));
    nncc_tensor *b = nncc_input(g, NNCC_SHAPE(5));
    struct nncc_shape ab = nncc_tensor_shape(nncc_add(TENSORS(a, b), 2));
    struct nncc_shape ba = nncc_tensor_shape(nncc_add(TENSORS(b, a), 2));
    free_graph(g); /* before asserting, so a failure leaks nothing */
    /* Regression test for a fixed bug, where ir/ops.c shape_add aligns the batch dimension together with the
     * others, so the batch None of (None, 5) lands on the 4 and the result is
     * (None, None, 5) instead of Keras' (None, 4, 5). */
    ASSERT_SHAPE_VALUE(ab, NONE, 4, 5);
    ASSERT_SHAPE_VALUE(ba, NONE, 4, 5);
}

/* Keras' _Merge.compute_output_shape: a known batch size wins over None. */
static void test_add_known_batch(void **state)
{
    (void)state;
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *a = nncc_input(g, NNCC_SHAPE(4), .batch_size = 32);
    nncc_tensor *b = nncc_input(g, NNCC_SHAPE(4));
    struct nncc_shape ab = nncc_tensor_shape(nncc_add(TENSORS(a, b), 2));
    struct nncc_shape ba = nncc_tensor_shape(nncc_add(TENSORS(b, a), 2));
    free_graph(g); /* before asserting, so a failure leaks nothing */
    /* Regression test for a fixed bug, where ir/ops.c shape_add treats the batch like any dimension and turns
     * 32 + None into None: (None, 4) instead of Keras' (32, 4). */
    ASSERT_SHAPE_VALUE(ab, 32, 4);
    ASSERT_SHAPE_VALUE(ba, 32, 4);
}

static void test_concatenate(void **state)
{
    (void)state;
    nncc_graph *g;
    nncc_tensor *a = input_on(&g, NNCC_SHAPE(4, 5));
    nncc_tensor *b = nncc_input(g, NNCC_SHAPE(4, 3));
    nncc_tensor *c = nncc_input(g, NNCC_SHAPE(4, 2));
    nncc_tensor *y = nncc_concatenate(TENSORS(a, b, c), 3);
    ASSERT_SHAPE(y, NONE, 4, 10);
    ASSERT_LAYER(y, "Concatenate", 0, 0);
    assert_int_equal(nncc_layer_num_inputs_at(nncc_tensor_layer(y), 0), 3);
    ASSERT_SHAPE(nncc_concatenate(TENSORS(a, b, c), 3, .axis = -1), NONE, 4, 10);
    ASSERT_SHAPE(nncc_concatenate(TENSORS(a, b, c), 3, .axis = 2), NONE, 4, 10);

    nncc_tensor *p = nncc_input(g, NNCC_SHAPE(2, 5));
    nncc_tensor *q = nncc_input(g, NNCC_SHAPE(3, 5));
    nncc_tensor *r = nncc_input(g, NNCC_SHAPE(1, 5));
    ASSERT_SHAPE(nncc_concatenate(TENSORS(p, q, r), 3, .axis = 1), NONE, 6, 5);
    ASSERT_SHAPE(nncc_concatenate(TENSORS(p, q, r), 3, .axis = -2), NONE, 6, 5);

    nncc_tensor *m = nncc_input(g, NNCC_SHAPE(8, 8, 3));
    nncc_tensor *n = nncc_input(g, NNCC_SHAPE(8, 8, 5));
    ASSERT_SHAPE(nncc_concatenate(TENSORS(m, n), 2), NONE, 8, 8, 8);
    nncc_tensor *u = nncc_input(g, NNCC_SHAPE(4));
    nncc_tensor *v = nncc_input(g, NNCC_SHAPE(6));
    ASSERT_SHAPE(nncc_concatenate(TENSORS(u, v), 2), NONE, 10);
    free_graph(g);
}

/* ---- BatchNormalization ------------------------------------------------ */

static void test_batchnorm(void **state)
{
    (void)state;
    nncc_graph *g;
    nncc_tensor *x2 = input_on(&g, NNCC_SHAPE(10));
    nncc_tensor *x4 = nncc_input(g, NNCC_SHAPE(8, 8, 16));
    nncc_tensor *y = nncc_batchnorm(x2);
    ASSERT_SHAPE(y, NONE, 10);
    ASSERT_LAYER(y, "BatchNormalization", 40, 20);
    y = nncc_batchnorm(x4);
    ASSERT_SHAPE(y, NONE, 8, 8, 16);
    ASSERT_LAYER(y, "BatchNormalization", 64, 32);
    /* scale=False: no gamma. */
    y = nncc_batchnorm(x4, .no_scale = true);
    ASSERT_SHAPE(y, NONE, 8, 8, 16);
    ASSERT_LAYER(y, "BatchNormalization", 48, 16);
    /* center=False: no beta. */
    y = nncc_batchnorm(x2, .no_center = true);
    ASSERT_LAYER(y, "BatchNormalization", 30, 10);
    y = nncc_batchnorm(x4, .no_center = true, .no_scale = true);
    ASSERT_LAYER(y, "BatchNormalization", 32, 0);
    /* Explicit options that keep the counts. */
    y = nncc_batchnorm(x2, .momentum = 0.9f, .epsilon = 1e-5f, .axis = -1);
    ASSERT_LAYER(y, "BatchNormalization", 40, 20);
    /* axis=1 on channels-first-like data: C = 3. */
    nncc_tensor *xc = nncc_input(g, NNCC_SHAPE(3, 8, 8));
    y = nncc_batchnorm(xc, .axis = 1);
    ASSERT_SHAPE(y, NONE, 3, 8, 8);
    ASSERT_LAYER(y, "BatchNormalization", 12, 6);
    free_graph(g);
}

static void test_batchnorm_model_trainable_counts(void **state)
{
    (void)state;
    nncc_graph *g;
    nncc_tensor *x = input_on(&g, NNCC_SHAPE(10));
    nncc_tensor *h = nncc_batchnorm(x);
    nncc_tensor *y = nncc_dense(h, .units = 2);
    nncc_model *m = nncc_model_new(x, y);
    assert_non_null(m);
    assert_int_equal(nncc_model_count_params(m), 40 + 22);
    assert_int_equal(nncc_model_count_trainable_params(m), 20 + 22);
    nncc_model_free(m);
}

/* ---- The seed models --------------------------------------------------- */

static void test_seed_cnn(void **state)
{
    (void)state;
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(64, 64, 3), .name = "image");
    nncc_tensor *c = nncc_conv2d(x, .filters = 16, .kernel_size = {3, 3}, .strides = {2, 2},
                                 .padding = NNCC_SAME, .activation = NNCC_RELU);
    nncc_tensor *p = nncc_maxpool2d(c, .pool_size = {2, 2});
    nncc_tensor *f = nncc_flatten(p);
    nncc_tensor *y = nncc_dense(f, .units = 4, .activation = NNCC_SOFTMAX);
    ASSERT_SHAPE(x, NONE, 64, 64, 3);
    ASSERT_SHAPE(c, NONE, 32, 32, 16);
    ASSERT_SHAPE(p, NONE, 16, 16, 16);
    ASSERT_SHAPE(f, NONE, 4096);
    ASSERT_SHAPE(y, NONE, 4);
    ASSERT_LAYER(c, "Conv2D", 448, 448);
    ASSERT_LAYER(y, "Dense", 16388, 16388);
    nncc_model *m = nncc_model_new(x, y);
    assert_non_null(m);
    assert_string_equal(nncc_model_name(m), "model");
    assert_int_equal(nncc_model_count_params(m), 16836);
    assert_int_equal(nncc_model_count_trainable_params(m), 16836);
    static const char *const names[] = {"image", "conv2d", "max_pooling2d", "flatten", "dense"};
    assert_int_equal(nncc_model_num_layers(m), 5);
    for (int i = 0; i < 5; i++)
        assert_string_equal(nncc_layer_name(nncc_model_layer(m, i)), names[i]);
    assert_int_equal(nncc_model_num_inputs(m), 1);
    assert_int_equal(nncc_model_num_outputs(m), 1);
    assert_ptr_equal(nncc_model_input(m, 0), x);
    assert_ptr_equal(nncc_model_output(m, 0), y);
    assert_null(nncc_model_input(m, 1));
    assert_null(nncc_model_output(m, 1));
    assert_null(nncc_model_input(m, -1));
    nncc_model_free(m);
}

static void test_seed_sequential(void **state)
{
    (void)state;
    nncc_layer *layers[] = {
        nncc_dense_layer(.units = 16, .activation = NNCC_RELU, .input_shape = NNCC_SHAPE(32)),
        nncc_dense_layer(.units = 8, .activation = NNCC_SOFTMAX),
    };
    nncc_model *m = nncc_sequential(layers, 2);
    assert_non_null(m);
    assert_string_equal(nncc_model_name(m), "sequential");
    assert_int_equal(nncc_model_num_layers(m), 2);
    assert_ptr_equal(nncc_model_layer(m, 0), layers[0]);
    assert_ptr_equal(nncc_model_layer(m, 1), layers[1]);
    assert_string_equal(nncc_layer_name(layers[0]), "dense");
    assert_string_equal(nncc_layer_name(layers[1]), "dense_1");
    assert_int_equal(nncc_layer_count_params(layers[0]), 528);
    assert_int_equal(nncc_layer_count_params(layers[1]), 136);
    assert_int_equal(nncc_model_count_params(m), 664);
    assert_int_equal(nncc_model_count_trainable_params(m), 664);
    ASSERT_SHAPE(nncc_layer_output(layers[0]), NONE, 16);
    ASSERT_SHAPE(nncc_model_output(m, 0), NONE, 8);
    ASSERT_SHAPE(nncc_model_input(m, 0), NONE, 32);
    assert_int_equal(nncc_model_num_inputs(m), 1);
    assert_int_equal(nncc_model_num_outputs(m), 1);
    nncc_model_free(m);
}

/* ---- Naming ------------------------------------------------------------ */

static void test_automatic_names(void **state)
{
    (void)state;
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x1 = nncc_input(g, NNCC_SHAPE(8, 8, 3));
    nncc_tensor *x2 = nncc_input(g, NNCC_SHAPE(8, 8, 3));
    assert_string_equal(LAYER_NAME(x1), "input_1");
    assert_string_equal(LAYER_NAME(x2), "input_2");
    nncc_tensor *c = nncc_conv2d(x1, .filters = 3, .kernel_size = {3, 3}, .padding = NNCC_SAME);
    assert_string_equal(LAYER_NAME(c), "conv2d");
    assert_string_equal(LAYER_NAME(nncc_maxpool2d(c)), "max_pooling2d");
    assert_string_equal(LAYER_NAME(nncc_avgpool2d(x2)), "average_pooling2d");
    assert_string_equal(LAYER_NAME(nncc_global_avgpool2d(c)), "global_average_pooling2d");
    assert_string_equal(LAYER_NAME(nncc_batchnorm(x1)), "batch_normalization");
    assert_string_equal(LAYER_NAME(nncc_concatenate(TENSORS(x1, x2), 2)),
                        "concatenate");
    assert_string_equal(LAYER_NAME(nncc_add(TENSORS(x1, c), 2)), "add");
    nncc_tensor *f = nncc_flatten(x1);
    assert_string_equal(LAYER_NAME(f), "flatten");
    assert_string_equal(LAYER_NAME(nncc_reshape(f, .target_shape = NNCC_SHAPE(-1))), "reshape");
    assert_string_equal(LAYER_NAME(nncc_dropout(f, .rate = 0.1f)), "dropout");
    assert_string_equal(LAYER_NAME(nncc_activation(f, .activation = NNCC_TANH)), "activation");
    nncc_tensor *d0 = nncc_dense(f, .units = 4);
    nncc_tensor *d1 = nncc_dense(f, .units = 4);
    assert_string_equal(LAYER_NAME(d0), "dense");
    assert_string_equal(LAYER_NAME(d1), "dense_1");
    /* An explicit name is kept and does not disturb the count. */
    nncc_tensor *named = nncc_dense(f, .units = 4, .name = "head");
    assert_string_equal(LAYER_NAME(named), "head");
    assert_string_equal(LAYER_NAME(nncc_dense(f, .units = 4)), "dense_2");
    /* Second of each kind. */
    assert_string_equal(LAYER_NAME(nncc_conv2d(x2, .filters = 1, .kernel_size = {1, 1})),
                        "conv2d_1");
    assert_string_equal(LAYER_NAME(nncc_maxpool2d(x2)), "max_pooling2d_1");
    assert_string_equal(LAYER_NAME(nncc_batchnorm(x2)), "batch_normalization_1");
    assert_string_equal(LAYER_NAME(nncc_add(TENSORS(x1, x2), 2)), "add_1");
    assert_string_equal(LAYER_NAME(nncc_input(g, NNCC_SHAPE(2))), "input_3");
    assert_string_equal(LAYER_NAME(nncc_input(g, NNCC_SHAPE(2), .name = "extra")), "extra");
    assert_string_equal(LAYER_NAME(nncc_input(g, NNCC_SHAPE(2))), "input_4");

    /* Models on one graph: "model", then "model_1". */
    nncc_model *m0 = nncc_model_new(x1, d0);
    nncc_model *m1 = nncc_model_new(x1, d1);
    assert_non_null(m0);
    assert_non_null(m1);
    assert_string_equal(nncc_model_name(m0), "model");
    assert_string_equal(nncc_model_name(m1), "model_1");
    nncc_model *m2 = nncc_model_new(x1, named, .name = "explicit");
    assert_non_null(m2);
    assert_string_equal(nncc_model_name(m2), "explicit");
    nncc_model_free(m0);
    nncc_model_free(m2);
    nncc_model_free(m1); /* the last one frees the graph */
}

static void test_names_are_per_graph(void **state)
{
    (void)state;
    nncc_graph *g1, *g2;
    nncc_tensor *a = input_on(&g1, NNCC_SHAPE(3));
    nncc_tensor *b = input_on(&g2, NNCC_SHAPE(3));
    assert_string_equal(LAYER_NAME(a), "input_1");
    assert_string_equal(LAYER_NAME(b), "input_1");
    assert_string_equal(LAYER_NAME(nncc_dense(a, .units = 1)), "dense");
    assert_string_equal(LAYER_NAME(nncc_dense(b, .units = 1)), "dense");
    free_graph(g1);
    free_graph(g2);
}

static void test_auto_name_skips_explicit(void **state)
{
    (void)state;
    nncc_graph *g;
    nncc_tensor *x = input_on(&g, NNCC_SHAPE(3));
    nncc_tensor *e = nncc_dense(x, .units = 2, .name = "dense");
    assert_non_null(e);
    assert_string_equal(LAYER_NAME(e), "dense");
    nncc_tensor *a = nncc_dense(x, .units = 2);
    assert_non_null(a);
    assert_string_equal(LAYER_NAME(a), "dense_1");
    /* An explicit name further ahead is skipped too. */
    assert_non_null(nncc_dense(x, .units = 2, .name = "dense_3"));
    assert_string_equal(LAYER_NAME(nncc_dense(x, .units = 2)), "dense_2");
    assert_string_equal(LAYER_NAME(nncc_dense(x, .units = 2)), "dense_4");
    /* Inputs too. */
    assert_string_equal(LAYER_NAME(nncc_input(g, NNCC_SHAPE(1), .name = "input_2")), "input_2");
    assert_string_equal(LAYER_NAME(nncc_input(g, NNCC_SHAPE(1))), "input_3");
    free_graph(g);
}

static void test_sequential_names(void **state)
{
    (void)state;
    nncc_model *m = nncc_sequential(
        LAYERS(nncc_dense_layer(.units = 4, .input_shape = NNCC_SHAPE(3)),
               nncc_dense_layer(.units = 2)),
        2);
    assert_non_null(m);
    assert_string_equal(nncc_model_name(m), "sequential");
    nncc_layer *first = nncc_model_layer(m, 0);
    assert_string_equal(nncc_layer_name(first), "dense");
    nncc_tensor *in = nncc_layer_input(first);
    assert_non_null(in);
    assert_ptr_equal(in, nncc_model_input(m, 0));
    assert_string_equal(nncc_layer_name(nncc_tensor_layer(in)), "dense_input");
    assert_string_equal(nncc_layer_type(nncc_tensor_layer(in)), "InputLayer");
    /* model.layers omits the InputLayer, and get_layer() looks there. */
    assert_int_equal(nncc_model_num_layers(m), 2);
    assert_ptr_equal(nncc_model_get_layer(m, "dense"), first);
    assert_string_equal(nncc_layer_name(nncc_model_get_layer(m, "dense_1")), "dense_1");
    assert_null(nncc_model_get_layer(m, "dense_input"));
    assert_null(nncc_model_get_layer(m, "nope"));
    assert_int_equal(nncc_last_status(), NNCC_ERR_ARG);
    assert_null(nncc_model_layer(m, 2));
    assert_null(nncc_model_layer(m, -1));
    nncc_clear_error();

    /* Each Sequential has its own graph: the same names again. */
    nncc_model *m2 = nncc_sequential(
        LAYERS(nncc_conv2d_layer(.name = "stem", .filters = 2, .kernel_size = {3, 3},
                                 .input_shape = NNCC_SHAPE(8, 8, 1)),
               nncc_flatten_layer(), nncc_dense_layer(.units = 3)),
        3, .name = "cnn");
    assert_non_null(m2);
    assert_string_equal(nncc_model_name(m2), "cnn");
    assert_string_equal(LAYER_NAME(nncc_model_input(m2, 0)), "stem_input");
    assert_string_equal(nncc_layer_name(nncc_model_layer(m2, 1)), "flatten");
    assert_string_equal(nncc_layer_name(nncc_model_layer(m2, 2)), "dense");
    ASSERT_SHAPE(nncc_model_output(m2, 0), NONE, 3);
    assert_int_equal(nncc_model_count_params(m2), 20 + 6 * 6 * 2 * 3 + 3);

    nncc_model *m3 = nncc_sequential(
        LAYERS(nncc_conv2d_layer(.filters = 2, .kernel_size = {1, 1},
                                 .input_shape = NNCC_SHAPE(4, 4, 1))),
        1);
    assert_non_null(m3);
    assert_string_equal(nncc_model_name(m3), "sequential");
    assert_string_equal(LAYER_NAME(nncc_model_input(m3, 0)), "conv2d_input");
    nncc_model_free(m);
    nncc_model_free(m2);
    nncc_model_free(m3);
}

static void test_functional_layer_order_and_get_layer(void **state)
{
    (void)state;
    nncc_graph *g;
    nncc_tensor *x = input_on(&g, NNCC_SHAPE(784));
    nncc_tensor *h = nncc_dense(x, .units = 64, .activation = NNCC_RELU);
    nncc_tensor *y = nncc_dense(h, .units = 10, .name = "logits");
    nncc_model *m = nncc_model_new(x, y);
    assert_non_null(m);
    assert_int_equal(nncc_model_num_layers(m), 3);
    assert_string_equal(nncc_layer_name(nncc_model_layer(m, 0)), "input_1");
    assert_string_equal(nncc_layer_type(nncc_model_layer(m, 0)), "InputLayer");
    assert_string_equal(nncc_layer_name(nncc_model_layer(m, 1)), "dense");
    assert_string_equal(nncc_layer_name(nncc_model_layer(m, 2)), "logits");
    assert_ptr_equal(nncc_model_get_layer(m, "logits"), nncc_tensor_layer(y));
    assert_ptr_equal(nncc_model_get_layer(m, "input_1"), nncc_tensor_layer(x));
    assert_null(nncc_model_get_layer(m, "dense_1"));
    assert_int_equal(nncc_model_count_params(m), 50240 + 650);
    nncc_model_free(m);
}

/* A layer called in the graph but not needed by the outputs is not part of
 * the model (Keras' model.layers only holds the network). */
static void test_model_ignores_unused_layers(void **state)
{
    (void)state;
    nncc_graph *g;
    nncc_tensor *x = input_on(&g, NNCC_SHAPE(8));
    nncc_tensor *unused = nncc_dense(x, .units = 100, .name = "unused");
    assert_non_null(unused);
    nncc_tensor *y = nncc_dense(x, .units = 2, .name = "used");
    nncc_model *m = nncc_model_new(x, y);
    assert_non_null(m);
    assert_int_equal(nncc_model_num_layers(m), 2);
    assert_string_equal(nncc_layer_name(nncc_model_layer(m, 1)), "used");
    assert_null(nncc_model_get_layer(m, "unused"));
    assert_int_equal(nncc_model_count_params(m), 18);
    nncc_clear_error();
    nncc_model_free(m);
}

/* ---- Weight sharing ---------------------------------------------------- */

static void test_shared_layer(void **state)
{
    (void)state;
    nncc_graph *g;
    nncc_tensor *x1 = input_on(&g, NNCC_SHAPE(8));
    nncc_tensor *x2 = nncc_input(g, NNCC_SHAPE(8));
    nncc_layer *l = nncc_dense_layer(.units = 4);
    assert_non_null(l);
    assert_int_equal(nncc_layer_num_nodes(l), 0);
    nncc_tensor *y1 = nncc_call(l, x1);
    nncc_tensor *y2 = nncc_call(l, x2);
    assert_non_null(y1);
    assert_non_null(y2);
    assert_ptr_not_equal(y1, y2);
    assert_int_equal(nncc_layer_num_nodes(l), 2);
    assert_string_equal(nncc_layer_name(l), "dense");
    assert_ptr_equal(nncc_tensor_layer(y1), l);
    assert_ptr_equal(nncc_tensor_layer(y2), l);
    assert_ptr_equal(nncc_layer_output(l), y1);
    assert_ptr_equal(nncc_layer_output_at(l, 0), y1);
    assert_ptr_equal(nncc_layer_output_at(l, 1), y2);
    assert_ptr_equal(nncc_layer_input(l), x1);
    assert_ptr_equal(nncc_layer_input_at(l, 1, 0), x2);
    assert_int_equal(nncc_layer_num_inputs_at(l, 1), 1);
    assert_null(nncc_layer_output_at(l, 2));
    assert_int_equal(nncc_last_status(), NNCC_ERR_ARG);
    nncc_clear_error();
    /* Both nodes agree, so input_shape / output_shape are defined. */
    struct nncc_shape s;
    assert_int_equal(nncc_layer_input_shape(l, &s), NNCC_OK);
    ASSERT_SHAPE_VALUE(s, NONE, 8);
    assert_int_equal(nncc_layer_output_shape(l, &s), NNCC_OK);
    ASSERT_SHAPE_VALUE(s, NONE, 4);
    /* Weights are made once. */
    assert_int_equal(nncc_layer_count_params(l), 36);

    nncc_tensor *sum = nncc_add(TENSORS(y1, y2), 2);
    nncc_model *m = nncc_model_new_n(TENSORS(x1, x2), 2, TENSORS(sum), 1);
    assert_non_null(m);
    assert_int_equal(nncc_model_count_params(m), 36);
    assert_int_equal(nncc_model_count_trainable_params(m), 36);
    static const char *const order[] = {"input_1", "input_2", "dense", "add"};
    assert_int_equal(nncc_model_num_layers(m), 4);
    for (int i = 0; i < 4; i++)
        assert_string_equal(nncc_layer_name(nncc_model_layer(m, i)), order[i]);
    nncc_model_free(m);
}

static void test_shared_layer_shapes_disagree(void **state)
{
    (void)state;
    nncc_graph *g;
    nncc_tensor *a = input_on(&g, NNCC_SHAPE(4, 4, 2));
    nncc_tensor *b = nncc_input(g, NNCC_SHAPE(3, 3, 2));
    nncc_layer *f = nncc_flatten_layer(.name = "flat");
    nncc_tensor *fa = nncc_call(f, a);
    nncc_tensor *fb = nncc_call(f, b);
    ASSERT_SHAPE(fa, NONE, 32);
    ASSERT_SHAPE(fb, NONE, 18);
    assert_int_equal(nncc_layer_num_nodes(f), 2);
    assert_ptr_equal(nncc_layer_output_at(f, 1), fb);
    ASSERT_SHAPE(nncc_layer_input_at(f, 1, 0), NONE, 3, 3, 2);
    struct nncc_shape s = NNCC_SHAPE(7);
    nncc_clear_error();
    assert_int_equal(nncc_layer_input_shape(f, &s), NNCC_ERR_GRAPH);
    assert_int_equal(nncc_last_status(), NNCC_ERR_GRAPH);
    assert_non_null(strstr(nncc_last_error(), "multiple inbound nodes"));
    assert_non_null(strstr(nncc_last_error(), "\"flat\""));
    assert_non_null(strstr(nncc_last_error(), "(None, 4, 4, 2)"));
    assert_non_null(strstr(nncc_last_error(), "(None, 3, 3, 2)"));
    nncc_clear_error();
    assert_int_equal(nncc_layer_output_shape(f, &s), NNCC_ERR_GRAPH);
    assert_non_null(strstr(nncc_last_error(), "multiple inbound nodes"));
    assert_non_null(strstr(nncc_last_error(), "(None, 32)"));
    assert_non_null(strstr(nncc_last_error(), "(None, 18)"));
    nncc_clear_error();
    /* Node 0's tensors are still there. */
    assert_ptr_equal(nncc_layer_input(f), a);
    assert_ptr_equal(nncc_layer_output(f), fa);
    free_graph(g);
}

/* Shared Conv2D: the same kernel on two images of different sizes. */
static void test_shared_conv_different_sizes(void **state)
{
    (void)state;
    nncc_graph *g;
    nncc_tensor *a = input_on(&g, NNCC_SHAPE(8, 8, 3));
    nncc_tensor *b = nncc_input(g, NNCC_SHAPE(6, 10, 3));
    nncc_layer *c = nncc_conv2d_layer(.filters = 4, .kernel_size = {3, 3});
    ASSERT_SHAPE(nncc_call(c, a), NONE, 6, 6, 4);
    ASSERT_SHAPE(nncc_call(c, b), NONE, 4, 8, 4);
    assert_int_equal(nncc_layer_count_params(c), 112);
    struct nncc_shape s;
    assert_int_equal(nncc_layer_output_shape(c, &s), NNCC_ERR_GRAPH);
    nncc_clear_error();
    free_graph(g);
}

static void test_never_called_layer(void **state)
{
    (void)state;
    nncc_layer *l = nncc_dense_layer(.units = 3, .name = "lonely");
    assert_non_null(l);
    assert_string_equal(nncc_layer_type(l), "Dense");
    assert_string_equal(nncc_layer_name(l), "lonely");
    assert_int_equal(nncc_layer_num_nodes(l), 0);
    assert_int_equal(nncc_layer_count_params(l), 0);
    nncc_clear_error();
    assert_null(nncc_layer_input(l));
    assert_int_equal(nncc_last_status(), NNCC_ERR_GRAPH);
    assert_non_null(strstr(nncc_last_error(), "lonely"));
    assert_non_null(strstr(nncc_last_error(), "never been called"));
    nncc_clear_error();
    assert_null(nncc_layer_output(l));
    assert_int_equal(nncc_last_status(), NNCC_ERR_GRAPH);
    nncc_clear_error();
    struct nncc_shape s;
    assert_int_equal(nncc_layer_input_shape(l, &s), NNCC_ERR_GRAPH);
    assert_int_equal(nncc_layer_output_shape(l, &s), NNCC_ERR_GRAPH);
    assert_int_equal(nncc_layer_num_inputs_at(l, 0), -1);
    nncc_clear_error();
    nncc_layer_free(l);

    /* An unnamed layer has no name until it joins a graph. */
    nncc_layer *u = nncc_maxpool2d_layer();
    assert_non_null(u);
    assert_string_equal(nncc_layer_type(u), "MaxPooling2D");
    assert_null(nncc_layer_output(u));
    nncc_clear_error();
    nncc_layer_free(u);
}

/* ---- Sequential -------------------------------------------------------- */

static void test_sequential_add(void **state)
{
    (void)state;
    nncc_model *m = nncc_sequential(NULL, 0);
    assert_non_null(m);
    assert_string_equal(nncc_model_name(m), "sequential");
    assert_int_equal(nncc_model_num_layers(m), 0);
    assert_int_equal(nncc_sequential_add(m, nncc_dense_layer(.units = 16, .activation = NNCC_RELU,
                                                             .input_shape = NNCC_SHAPE(32))),
                     NNCC_OK);
    assert_int_equal(nncc_model_num_layers(m), 1);
    ASSERT_SHAPE(nncc_model_output(m, 0), NONE, 16);
    assert_int_equal(nncc_sequential_add(m, nncc_dense_layer(.units = 8,
                                                             .activation = NNCC_SOFTMAX)),
                     NNCC_OK);
    assert_int_equal(nncc_model_num_layers(m), 2);
    ASSERT_SHAPE(nncc_model_output(m, 0), NONE, 8);
    assert_int_equal(nncc_model_count_params(m), 664);
    assert_string_equal(LAYER_NAME(nncc_model_input(m, 0)), "dense_input");
    FILE *out = tmpfile();
    assert_non_null(out);
    assert_int_equal(nncc_summary(m, out), NNCC_OK);
    fclose(out);

    /* Adding an Add layer fails cleanly and leaves the model as it was. */
    nncc_clear_error();
    assert_int_equal(nncc_sequential_add(m, nncc_add_layer()), NNCC_ERR_ARG);
    assert_int_equal(nncc_last_status(), NNCC_ERR_ARG);
    assert_non_null(strstr(nncc_last_error(), "add"));
    assert_int_equal(nncc_sequential_add(m, nncc_concatenate_layer(.name = "cat")),
                     NNCC_ERR_ARG);
    assert_non_null(strstr(nncc_last_error(), "concatenate \"cat\""));
    nncc_clear_error();
    assert_int_equal(nncc_model_num_layers(m), 2);
    assert_int_equal(nncc_model_count_params(m), 664);
    ASSERT_SHAPE(nncc_model_output(m, 0), NONE, 8);
    /* A further valid layer still goes on. */
    assert_int_equal(nncc_sequential_add(m, nncc_dense_layer(.units = 2)), NNCC_OK);
    assert_int_equal(nncc_model_num_layers(m), 3);
    assert_string_equal(nncc_layer_name(nncc_model_layer(m, 2)), "dense_2");
    assert_int_equal(nncc_model_count_params(m), 664 + 18);
    nncc_model_free(m);
}

static void test_sequential_cnn(void **state)
{
    (void)state;
    nncc_model *m = nncc_sequential(
        LAYERS(
            nncc_conv2d_layer(.filters = 8, .kernel_size = {3, 3}, .activation = NNCC_RELU,
                              .input_shape = NNCC_SHAPE(28, 28, 1)),
            nncc_batchnorm_layer(),
            nncc_maxpool2d_layer(),
            nncc_dropout_layer(.rate = 0.25f),
            nncc_conv2d_layer(.filters = 16, .kernel_size = {3, 3}, .padding = NNCC_SAME),
            nncc_global_avgpool2d_layer(),
            nncc_reshape_layer(.target_shape = NNCC_SHAPE(4, 4)),
            nncc_flatten_layer(),
            nncc_activation_layer(.activation = NNCC_GELU),
            nncc_dense_layer(.units = 10, .activation = NNCC_SOFTMAX),
        ),
        10);
    assert_non_null(m);
    assert_int_equal(nncc_model_num_layers(m), 10);
    static const char *const names[] = {
        "conv2d",   "batch_normalization",      "max_pooling2d", "dropout",
        "conv2d_1", "global_average_pooling2d", "reshape",       "flatten",
        "activation", "dense",
    };
    static const int64_t params[] = {80, 32, 0, 0, 1168, 0, 0, 0, 0, 170};
    static const struct nncc_shape shapes[] = {
        NNCC_SHAPE(NONE, 26, 26, 8), NNCC_SHAPE(NONE, 26, 26, 8), NNCC_SHAPE(NONE, 13, 13, 8),
        NNCC_SHAPE(NONE, 13, 13, 8), NNCC_SHAPE(NONE, 13, 13, 16), NNCC_SHAPE(NONE, 16),
        NNCC_SHAPE(NONE, 4, 4),      NNCC_SHAPE(NONE, 16),         NNCC_SHAPE(NONE, 16),
        NNCC_SHAPE(NONE, 10),
    };
    for (int i = 0; i < 10; i++) {
        nncc_layer *l = nncc_model_layer(m, i);
        assert_string_equal(nncc_layer_name(l), names[i]);
        assert_int_equal(nncc_layer_count_params(l), params[i]);
        struct nncc_shape s;
        assert_int_equal(nncc_layer_output_shape(l, &s), NNCC_OK);
        if (!shape_is(s, shapes[i], __FILE__, __LINE__))
            fail_msg("layer %d (%s)", i, names[i]);
    }
    assert_int_equal(nncc_model_count_params(m), 80 + 32 + 1168 + 170);
    assert_int_equal(nncc_model_count_trainable_params(m), 80 + 16 + 1168 + 170);
    nncc_model_free(m);
}

static void test_sequential_unbuilt(void **state)
{
    (void)state;
    nncc_model *m = nncc_sequential(
        LAYERS(nncc_dense_layer(.units = 4), nncc_dense_layer(.units = 2)), 2);
    assert_non_null(m);
    assert_int_equal(nncc_model_num_layers(m), 2);
    FILE *out = tmpfile();
    assert_non_null(out);
    nncc_clear_error();
    assert_int_equal(nncc_summary(m, out), NNCC_ERR_GRAPH);
    assert_int_equal(nncc_last_status(), NNCC_ERR_GRAPH);
    assert_non_null(strstr(nncc_last_error(), "input_shape"));
    assert_non_null(strstr(nncc_last_error(), "sequential"));
    fclose(out);
    nncc_clear_error();
    nncc_model_free(m); /* frees the layers still pending */

    /* An empty Sequential is unbuilt too. */
    nncc_model *e = nncc_sequential(NULL, 0, .name = "empty");
    assert_non_null(e);
    out = tmpfile();
    assert_int_equal(nncc_summary(e, out), NNCC_ERR_GRAPH);
    assert_non_null(strstr(nncc_last_error(), "input_shape"));
    fclose(out);
    nncc_clear_error();
    nncc_model_free(e);
}

/* ---- Multi-input / multi-output and branching models ------------------- */

static void test_two_inputs_two_outputs(void **state)
{
    (void)state;
    nncc_graph *g;
    nncc_tensor *x1 = input_on(&g, NNCC_SHAPE(16));
    nncc_tensor *x2 = nncc_input(g, NNCC_SHAPE(8));
    nncc_tensor *h = nncc_dense(x1, .units = 8, .activation = NNCC_RELU);
    nncc_tensor *c = nncc_concatenate(TENSORS(h, x2), 2);
    ASSERT_SHAPE(c, NONE, 16);
    nncc_tensor *o1 = nncc_dense(c, .units = 1, .activation = NNCC_SIGMOID);
    nncc_tensor *o2 = nncc_dense(c, .units = 3, .activation = NNCC_SOFTMAX);
    nncc_model *m = nncc_model_new_n(TENSORS(x1, x2), 2, TENSORS(o1, o2),
                                     2, .name = "two_heads");
    assert_non_null(m);
    assert_string_equal(nncc_model_name(m), "two_heads");
    assert_int_equal(nncc_model_num_inputs(m), 2);
    assert_int_equal(nncc_model_num_outputs(m), 2);
    assert_ptr_equal(nncc_model_input(m, 0), x1);
    assert_ptr_equal(nncc_model_input(m, 1), x2);
    assert_ptr_equal(nncc_model_output(m, 0), o1);
    assert_ptr_equal(nncc_model_output(m, 1), o2);
    assert_null(nncc_model_input(m, 2));
    assert_null(nncc_model_output(m, 2));
    ASSERT_SHAPE(nncc_model_output(m, 0), NONE, 1);
    ASSERT_SHAPE(nncc_model_output(m, 1), NONE, 3);
    assert_int_equal(nncc_model_count_params(m), 136 + 17 + 51);
    /* Keras orders model.layers by decreasing depth (input_1 3; dense and
     * input_2 2; concatenate 1; the heads 0), ties in the order the search
     * from the outputs first met them. */
    static const char *const order[] = {"input_1",     "dense",   "input_2",
                                        "concatenate", "dense_1", "dense_2"};
    assert_int_equal(nncc_model_num_layers(m), 6);
    for (int i = 0; i < 6; i++)
        assert_string_equal(nncc_layer_name(nncc_model_layer(m, i)), order[i]);
    FILE *out = tmpfile();
    assert_int_equal(nncc_summary(m, out), NNCC_OK);
    fclose(out);
    nncc_model_free(m);
}

static void test_branching_add(void **state)
{
    (void)state;
    nncc_graph *g;
    nncc_tensor *x = input_on(&g, NNCC_SHAPE(8));
    nncc_tensor *a = nncc_dense(x, .units = 4, .name = "a");
    nncc_tensor *b = nncc_dense(x, .units = 4, .name = "b", .activation = NNCC_TANH);
    nncc_tensor *s = nncc_add(TENSORS(a, b), 2);
    nncc_tensor *y = nncc_dense(s, .units = 1);
    nncc_model *m = nncc_model_new(x, y);
    assert_non_null(m);
    assert_int_equal(nncc_model_num_inputs(m), 1);
    assert_int_equal(nncc_model_num_outputs(m), 1);
    static const char *const order[] = {"input_1", "a", "b", "add", "dense"};
    assert_int_equal(nncc_model_num_layers(m), 5);
    for (int i = 0; i < 5; i++)
        assert_string_equal(nncc_layer_name(nncc_model_layer(m, i)), order[i]);
    assert_int_equal(nncc_model_count_params(m), 36 + 36 + 5);
    nncc_layer *add = nncc_model_get_layer(m, "add");
    assert_non_null(add);
    assert_string_equal(nncc_layer_type(add), "Add");
    assert_int_equal(nncc_layer_num_inputs_at(add, 0), 2);
    assert_ptr_equal(nncc_layer_input_at(add, 0, 0), a);
    assert_ptr_equal(nncc_layer_input_at(add, 0, 1), b);
    assert_ptr_equal(nncc_layer_input(add), a);
    assert_null(nncc_layer_input_at(add, 0, 2));
    nncc_clear_error();
    nncc_model_free(m);
}

/* Two models on one graph share layers; the graph is freed with the last. */
static void test_two_models_share_graph(void **state)
{
    (void)state;
    nncc_graph *g;
    nncc_tensor *x = input_on(&g, NNCC_SHAPE(8));
    nncc_tensor *h = nncc_dense(x, .units = 4, .name = "encoder");
    nncc_tensor *y = nncc_dense(h, .units = 8, .name = "decoder");
    nncc_model *encoder = nncc_model_new(x, h);
    nncc_model *autoenc = nncc_model_new(x, y);
    assert_non_null(encoder);
    assert_non_null(autoenc);
    assert_string_equal(nncc_model_name(encoder), "model");
    assert_string_equal(nncc_model_name(autoenc), "model_1");
    assert_int_equal(nncc_model_count_params(encoder), 36);
    assert_int_equal(nncc_model_count_params(autoenc), 36 + 40);
    assert_ptr_equal(nncc_model_get_layer(encoder, "encoder"),
                     nncc_model_get_layer(autoenc, "encoder"));
    nncc_model_free(autoenc);
    assert_int_equal(nncc_model_count_params(encoder), 36);
    nncc_model_free(encoder);
}

/* ---- nncc_shape_str ---------------------------------------------------- */

static void test_shape_str(void **state)
{
    (void)state;
    char buf[64];
    assert_string_equal(nncc_shape_str(NNCC_SHAPE(NONE, 28, 28, 1), buf, sizeof buf),
                        "(None, 28, 28, 1)");
    assert_ptr_equal(nncc_shape_str(NNCC_SHAPE(3), buf, sizeof buf), buf);
    assert_string_equal(buf, "(3,)");
    assert_string_equal(nncc_shape_str((struct nncc_shape){.rank = 1, .dim = {NONE}}, buf,
                                       sizeof buf),
                        "(None,)");
    assert_string_equal(nncc_shape_str(NNCC_SHAPE(32, 10), buf, sizeof buf), "(32, 10)");
    assert_string_equal(nncc_shape_str(rank0, buf, sizeof buf), "()");
    assert_string_equal(nncc_shape_str(NNCC_SHAPE(NONE, 4096), buf, sizeof buf), "(None, 4096)");
    /* A short buffer is cut, still terminated. */
    char small[6];
    memset(small, 'x', sizeof small);
    nncc_shape_str(NNCC_SHAPE(NONE, 28, 28, 1), small, sizeof small);
    assert_true(memchr(small, '\0', sizeof small) != NULL);
    assert_int_equal(strncmp(small, "(None", 5), 0);
    /* Through a tensor. */
    nncc_graph *g;
    nncc_tensor *x = input_on(&g, NNCC_SHAPE(28, 28, 1));
    assert_string_equal(nncc_shape_str(nncc_tensor_shape(x), buf, sizeof buf),
                        "(None, 28, 28, 1)");
    free_graph(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_input_shapes),
        cmocka_unit_test(test_dense),
        cmocka_unit_test(test_dense_contracts_last_axis),
        cmocka_unit_test(test_dense_fixed_batch),
        cmocka_unit_test(test_activation_all_kinds),
        cmocka_unit_test(test_flatten),
        cmocka_unit_test(test_reshape),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_conv2d_shapes_and_params),
        cmocka_unit_test(test_conv2d_fixed_batch_and_activation),
        cmocka_unit_test(test_pool2d),
        cmocka_unit_test(test_global_avgpool2d),
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_add_different_ranks),
        cmocka_unit_test(test_add_known_batch),
        cmocka_unit_test(test_concatenate),
        cmocka_unit_test(test_batchnorm),
        cmocka_unit_test(test_batchnorm_model_trainable_counts),
        cmocka_unit_test(test_seed_cnn),
        cmocka_unit_test(test_seed_sequential),
        cmocka_unit_test(test_automatic_names),
        cmocka_unit_test(test_names_are_per_graph),
        cmocka_unit_test(test_auto_name_skips_explicit),
        cmocka_unit_test(test_sequential_names),
        cmocka_unit_test(test_functional_layer_order_and_get_layer),
        cmocka_unit_test(test_model_ignores_unused_layers),
        cmocka_unit_test(test_shared_layer),
        cmocka_unit_test(test_shared_layer_shapes_disagree),
        cmocka_unit_test(test_shared_conv_different_sizes),
        cmocka_unit_test(test_never_called_layer),
        cmocka_unit_test(test_sequential_add),
        cmocka_unit_test(test_sequential_cnn),
        cmocka_unit_test(test_sequential_unbuilt),
        cmocka_unit_test(test_two_inputs_two_outputs),
        cmocka_unit_test(test_branching_add),
        cmocka_unit_test(test_two_models_share_graph),
        cmocka_unit_test(test_shape_str),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
