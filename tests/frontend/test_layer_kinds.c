/*
 * test_layer_kinds — every layer kind of frontend/layers.def, one case each,
 * so a fact of the table cannot change unnoticed:
 *   - its Keras class and automatic names (base, base_1; input_1, input_2);
 *   - messages name its layers `base "name"`;
 *   - the "config" it writes to a model file, pinned as text (model files
 *     keep their format);
 *   - a save/load round trip (nncc_save, nncc_load) gives back the same
 *     architecture JSON, so every option is read back as written.
 * A kind in layers.def without a case here fails the coverage test.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "nncc.h"
#include "frontend/frontend.h"
#include "frontend/onnx.h"

/* Calls one automatically named layer of a kind on x. */
typedef nncc_tensor *(*call_fn)(nncc_tensor *x);

static nncc_tensor *call_input(nncc_tensor *x)
{
    return nncc_input(nncc_tensor_graph(x), NNCC_SHAPE(4));
}
static nncc_tensor *call_dense(nncc_tensor *x)
{
    return nncc_dense(x, .units = 3, .activation = NNCC_RELU, .no_bias = true,
                      .kernel_initializer = NNCC_HE_NORMAL, .bias_initializer = NNCC_ONES);
}
static nncc_tensor *call_activation(nncc_tensor *x)
{
    return nncc_activation(x, .activation = NNCC_GELU);
}
static nncc_tensor *call_flatten(nncc_tensor *x) { return nncc_flatten(x); }
static nncc_tensor *call_reshape(nncc_tensor *x)
{
    return nncc_reshape(x, .target_shape = NNCC_SHAPE(2, -1));
}
static nncc_tensor *call_dropout(nncc_tensor *x) { return nncc_dropout(x, .rate = 0.25f, .seed = 7); }
static nncc_tensor *call_leaky_relu(nncc_tensor *x) { return nncc_leaky_relu(x, .alpha = 0.2f); }
static nncc_tensor *call_elu(nncc_tensor *x) { return nncc_elu(x); }
static nncc_tensor *call_conv2d(nncc_tensor *x)
{
    return nncc_conv2d(x, .filters = 2, .kernel_size = {3, 2}, .strides = {1, 1},
                       .padding = NNCC_SAME, .dilation_rate = {2, 1}, .activation = NNCC_TANH,
                       .no_bias = true, .kernel_initializer = NNCC_LECUN_UNIFORM);
}
static nncc_tensor *call_maxpool2d(nncc_tensor *x)
{
    return nncc_maxpool2d(x, .pool_size = {3, 2}, .strides = {1, 2}, .padding = NNCC_SAME);
}
static nncc_tensor *call_avgpool2d(nncc_tensor *x)
{
    return nncc_avgpool2d(x, .pool_size = {2, 3}, .padding = NNCC_VALID);
}
static nncc_tensor *call_global_avgpool2d(nncc_tensor *x)
{
    return nncc_global_avgpool2d(x, .keepdims = true);
}
static nncc_tensor *call_add(nncc_tensor *x) { return nncc_add(NNCC_TENSORS(x, x)); }
static nncc_tensor *call_concatenate(nncc_tensor *x)
{
    return nncc_concatenate(NNCC_TENSORS(x, x), .axis = 1);
}
static nncc_tensor *call_batchnorm(nncc_tensor *x)
{
    return nncc_batchnorm(x, .axis = 3, .momentum = 0.5f, .epsilon = 0.25f, .no_center = true);
}

/* An imported ONNX node: a LeakyRelu with its attribute (the importer's
 * way in; there is no C-API constructor). */
static nncc_tensor *call_onnx(nncc_tensor *x)
{
    struct onnx_node n = {.op = ONNX_OP_LEAKY_RELU, .opset = 13, .n_in = 1,
                          .src = {ONNX_SRC_TENSOR}, .n_attrs = 1};
    strcpy(n.attrs[0].name, "alpha");
    n.attrs[0].kind = ONNX_ATTR_FLOAT;
    n.attrs[0].floats[0] = 0.25f;
    nncc_layer *l = onnx_layer_new(&n, NULL);
    return l ? nncc_call(l, x) : NULL;
}

static const struct kind_case {
    const char *cls, *base;
    struct nncc_shape in; /* the model's input, batch excluded */
    call_fn call;
    const char *config; /* what the layer's call above writes */
} cases[] = {
    {"InputLayer", "input", {1, {4}}, call_input,
     "{\"shape\":[4],\"batch_size\":3}"},
    {"Dense", "dense", {1, {4}}, call_dense,
     "{\"units\":3,\"activation\":\"relu\",\"use_bias\":false,"
     "\"kernel_initializer\":\"he_normal\",\"bias_initializer\":\"ones\"}"},
    {"Activation", "activation", {1, {4}}, call_activation,
     "{\"activation\":\"gelu\"}"},
    {"Flatten", "flatten", {2, {2, 3}}, call_flatten,
     "{}"},
    {"Reshape", "reshape", {1, {6}}, call_reshape,
     "{\"target_shape\":[2,-1]}"},
    {"Dropout", "dropout", {1, {4}}, call_dropout,
     "{\"rate\":0.25,\"seed\":7}"},
    {"LeakyReLU", "leaky_re_lu", {1, {4}}, call_leaky_relu,
     "{\"alpha\":0.20000000298023224}"},
    {"ELU", "elu", {1, {4}}, call_elu, /* Keras' default alpha */
     "{\"alpha\":1.0}"},
    {"Conv2D", "conv2d", {3, {6, 6, 2}}, call_conv2d,
     "{\"filters\":2,\"kernel_size\":[3,2],\"strides\":[1,1],\"padding\":\"same\","
     "\"dilation_rate\":[2,1],\"activation\":\"tanh\",\"use_bias\":false,"
     "\"kernel_initializer\":\"lecun_uniform\",\"bias_initializer\":\"zeros\"}"},
    {"MaxPooling2D", "max_pooling2d", {3, {6, 6, 2}}, call_maxpool2d,
     "{\"pool_size\":[3,2],\"strides\":[1,2],\"padding\":\"same\"}"},
    {"AveragePooling2D", "average_pooling2d", {3, {6, 6, 2}}, call_avgpool2d,
     "{\"pool_size\":[2,3],\"strides\":[2,3],\"padding\":\"valid\"}"},
    {"GlobalAveragePooling2D", "global_average_pooling2d", {3, {6, 6, 2}},
     call_global_avgpool2d,
     "{\"keepdims\":true}"},
    {"Add", "add", {1, {4}}, call_add,
     "{}"},
    {"Concatenate", "concatenate", {1, {4}}, call_concatenate,
     "{\"axis\":1}"},
    {"BatchNormalization", "batch_normalization", {3, {6, 6, 2}}, call_batchnorm,
     "{\"axis\":3,\"momentum\":0.5,\"epsilon\":0.25,\"center\":false,\"scale\":true}"},
    /* (config_of stops at the first '}': the attribute list's first entry) */
    {"OnnxNode", "onnx_node", {2, {3, 4}}, call_onnx,
     "{\"op_type\":\"LeakyRelu\",\"opset\":13,\"whole\":false,\"attributes\":[{\"name\":"
     "\"alpha\",\"type\":\"float\",\"value\":0.25}"},
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

static bool is_input(const struct kind_case *c) { return strcmp(c->cls, "InputLayer") == 0; }

/* The model input → layer of the case (an InputLayer's case: the input
 * itself, with a batch size, feeding a Flatten). */
static nncc_model *case_model(const struct kind_case *c)
{
    nncc_graph *g = nncc_graph_new();
    assert_non_null(g);
    nncc_tensor *x = nncc_input(g, c->in, .batch_size = is_input(c) ? 3 : 0);
    nncc_tensor *y = is_input(c) ? nncc_flatten(x) : c->call(x);
    if (!y)
        fail_msg("%s: %s", c->cls, nncc_last_error());
    nncc_model *m = nncc_model_new(x, y, .name = "m");
    if (!m)
        fail_msg("%s: %s", c->cls, nncc_last_error());
    return m;
}

/* The "config" object written for the layer named `name` in a model's
 * architecture JSON (configs hold no nested objects); malloc'd. */
static char *config_of(const char *json, const char *cls, const char *name)
{
    char key[200];
    snprintf(key, sizeof key, "{\"class\":\"%s\",\"name\":\"%s\",\"config\":", cls, name);
    const char *p = strstr(json, key);
    if (!p)
        fail_msg("no %s \"%s\" in %s", cls, name, json);
    p += strlen(key);
    const char *end = strchr(p, '}');
    assert_non_null(end);
    return strndup(p, (size_t)(end - p + 1));
}

/* Every kind of layers.def has exactly one case, with the same facts. */
static void test_every_kind_has_a_case(void **state)
{
    (void)state;
    assert_int_equal(N_CASES, LAYER_KIND_COUNT);
    for (int k = 0; k < LAYER_KIND_COUNT; k++) {
        const struct layer_kind_info *info = layer_kind(k);
        const struct kind_case *c = NULL;
        for (int i = 0; i < N_CASES; i++)
            if (strcmp(cases[i].cls, info->cls) == 0)
                c = &cases[i];
        if (!c)
            fail_msg("layer kind %d (%s) has no case here", k, info->cls);
        assert_string_equal(info->base, c->base);
        assert_non_null(info->lower);
    }
}

/* base, then base_1 (Keras counts inputs from 1: input_1, input_2), and
 * messages name the layer `base "name"`. */
static void test_automatic_names(void **state)
{
    (void)state;
    for (int i = 0; i < N_CASES; i++) {
        const struct kind_case *c = &cases[i];
        nncc_graph *g = nncc_graph_new();
        nncc_tensor *x = nncc_input(g, c->in);
        nncc_tensor *a = is_input(c) ? x : c->call(x);
        nncc_tensor *b = c->call(x);
        if (!a || !b)
            fail_msg("%s: %s", c->cls, nncc_last_error());
        char first[64], second[64];
        snprintf(first, sizeof first, is_input(c) ? "%s_1" : "%s", c->base);
        snprintf(second, sizeof second, is_input(c) ? "%s_2" : "%s_1", c->base);
        assert_string_equal(nncc_layer_name(nncc_tensor_layer(a)), first);
        assert_string_equal(nncc_layer_name(nncc_tensor_layer(b)), second);
        /* An OnnxNode's type is its ONNX op. */
        assert_string_equal(nncc_layer_type(nncc_tensor_layer(a)),
                            strcmp(c->cls, "OnnxNode") == 0 ? "LeakyRelu" : c->cls);

        /* Calling it on no tensors is refused, naming the layer. */
        assert_null(nncc_call_n(nncc_tensor_layer(b), NULL, 0));
        char want[200];
        snprintf(want, sizeof want, "%s \"%s\": ", c->base, second);
        if (strncmp(nncc_last_error(), want, strlen(want)) != 0)
            fail_msg("%s: message \"%s\" does not start with '%s'", c->cls, nncc_last_error(),
                     want);
        nncc_clear_error();
        assert_int_equal(nncc_graph_free(g), NNCC_OK);
    }
}

/* The config each kind writes, as text. */
static void test_configs(void **state)
{
    (void)state;
    for (int i = 0; i < N_CASES; i++) {
        const struct kind_case *c = &cases[i];
        nncc_model *m = case_model(c);
        char *json = model_config_json(m);
        assert_non_null(json);
        char *got = config_of(json, c->cls, is_input(c) ? "input_1" : c->base);
        if (strcmp(got, c->config) != 0)
            fail_msg("%s writes config %s, expected %s", c->cls, got, c->config);
        free(got);
        free(json);
        nncc_model_free(m);
    }
}

/* Saved and loaded, every kind's model has the same architecture JSON. */
static void test_save_load_round_trip(void **state)
{
    (void)state;
    char dir[] = "/tmp/nncc-test-layer-kinds-XXXXXX";
    assert_non_null(mkdtemp(dir));
    for (int i = 0; i < N_CASES; i++) {
        const struct kind_case *c = &cases[i];
        nncc_model *m = case_model(c);
        char path[128];
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, c->base);
        if (nncc_save(m, path) != NNCC_OK)
            fail_msg("%s: save: %s", c->cls, nncc_last_error());
        nncc_model *r = nncc_load(path);
        if (!r)
            fail_msg("%s: load: %s", c->cls, nncc_last_error());
        char *a = model_config_json(m), *b = model_config_json(r);
        assert_non_null(a);
        assert_non_null(b);
        if (strcmp(a, b) != 0)
            fail_msg("%s: saved %s\nloaded %s", c->cls, a, b);
        free(a);
        free(b);
        nncc_model_free(r);
        nncc_model_free(m);
        assert_int_equal(unlink(path), 0);
    }
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_kind_has_a_case),
        cmocka_unit_test(test_automatic_names),
        cmocka_unit_test(test_configs),
        cmocka_unit_test(test_save_load_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
