/*
 * keras_config_write.c — an nncc model's Keras config, as tf-keras 2.15
 * (major 2: the "model_config" of .h5 files) or Keras 3 (major 3: the
 * config.json of .keras archives) writes it, so that their load_model
 * rebuilds the same network.
 *
 * It starts from nncc's own architecture JSON (serialize.c), whose option
 * keys are already Keras' (units, kernel_size, use_bias, …), and adds what
 * Keras expects around them: the class and module names, name, trainable
 * and dtype, initializers as objects, the InputLayer, the calls as inbound
 * nodes (Keras 2: [[layer, node, 0, {}]]; Keras 3: "__keras_tensor__"
 * arguments with their shapes) and the build config Keras 3 builds layers
 * from before it reads weights.  Options Keras has and nncc lacks are left
 * out so Keras uses its defaults, which are nncc's behaviour.  A model with
 * an imported ONNX node has no Keras equivalent: an error naming the layer.
 */
#include <stdlib.h>
#include <string.h>
#include "keras.h"

static json_t *shape_json(struct nncc_shape s)
{
    json_t *a = json_array();
    for (int i = 0; i < s.rank; i++)
        json_array_append_new(a, s.dim[i] < 0 ? json_null() : json_integer(s.dim[i]));
    return a;
}

static json_t *dtype_json(int major)
{
    if (major < 3)
        return json_string("float32");
    return json_pack("{s:s,s:s,s:{s:s},s:n}", "module", "keras", "class_name", "DTypePolicy",
                     "config", "name", "float32", "registered_name");
}

/* nncc's initializer name to Keras' object. */
static json_t *initializer_json(const char *nncc)
{
    static const char *const map[][2] = {
        {"glorot_uniform", "GlorotUniform"}, {"glorot_normal", "GlorotNormal"},
        {"he_normal", "HeNormal"},           {"he_uniform", "HeUniform"},
        {"lecun_normal", "LecunNormal"},     {"lecun_uniform", "LecunUniform"},
        {"zeros", "Zeros"},                  {"ones", "Ones"},
        {"random_normal", "RandomNormal"},   {"random_uniform", "RandomUniform"},
        {"truncated_normal", "TruncatedNormal"},
    };
    const char *cls = "GlorotUniform";
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (strcmp(map[i][0], nncc) == 0)
            cls = map[i][1];
    json_t *cfg = json_object();
    if (strcmp(cls, "Zeros") != 0 && strcmp(cls, "Ones") != 0)
        json_object_set_new(cfg, "seed", json_null());
    if (strcmp(cls, "RandomNormal") == 0 || strcmp(cls, "TruncatedNormal") == 0) {
        json_object_set_new(cfg, "mean", json_real(0.0));
        json_object_set_new(cfg, "stddev", json_real(0.05));
    } else if (strcmp(cls, "RandomUniform") == 0) {
        json_object_set_new(cfg, "minval", json_real(-0.05));
        json_object_set_new(cfg, "maxval", json_real(0.05));
    }
    return json_pack("{s:s,s:s,s:o,s:n}", "module", "keras.initializers", "class_name", cls,
                     "config", cfg, "registered_name");
}

/* A zero pair is nncc's "default": Keras writes the value. */
static void pair_default(json_t *cfg, const char *key, int dflt)
{
    json_t *v = json_object_get(cfg, key);
    if (v && json_integer_value(json_array_get(v, 0)) == 0 &&
        json_integer_value(json_array_get(v, 1)) == 0)
        json_object_set_new(cfg, key, dflt ? json_pack("[ii]", dflt, dflt) : json_null());
}

static void num_default(json_t *cfg, const char *key, double dflt)
{
    json_t *v = json_object_get(cfg, key);
    if (v && json_number_value(v) == 0)
        json_object_set_new(cfg, key, json_integer_value(v) == 0 && json_is_integer(v)
                                          ? json_integer((json_int_t)dflt)
                                          : json_real(dflt));
}

/* The Keras config of one layer from nncc's. */
static json_t *layer_keras_config(const nncc_layer *l, json_t *ncfg, int major)
{
    json_t *cfg = json_pack("{s:s,s:b,s:o}", "name", l->name, "trainable", 1, "dtype",
                            dtype_json(major));
    const char *key;
    json_t *v;
    json_object_foreach(ncfg, key, v) {
        if (strcmp(key, "name") == 0)
            continue;
        if (strstr(key, "_initializer"))
            json_object_set_new(cfg, key, initializer_json(json_string_value(v)));
        else if (strcmp(key, "seed") == 0)
            json_object_set_new(cfg, key, json_integer_value(v) ? json_copy(v) : json_null());
        else
            json_object_set(cfg, key, v);
    }
    switch (l->kind) {
    case LAYER_CONV2D:
        pair_default(cfg, "strides", 1);
        pair_default(cfg, "dilation_rate", 1);
        json_object_set_new(cfg, "data_format", json_string("channels_last"));
        json_object_set_new(cfg, "groups", json_integer(1));
        break;
    case LAYER_MAXPOOL2D:
    case LAYER_AVGPOOL2D:
        pair_default(cfg, "pool_size", 2);
        pair_default(cfg, "strides", 0);
        json_object_set_new(cfg, "data_format", json_string("channels_last"));
        break;
    case LAYER_GLOBAL_AVGPOOL2D:
    case LAYER_FLATTEN:
        json_object_set_new(cfg, "data_format", json_string("channels_last"));
        break;
    case LAYER_BATCHNORM:
        num_default(cfg, "axis", -1);
        num_default(cfg, "momentum", 0.99);
        num_default(cfg, "epsilon", 1e-3);
        break;
    case LAYER_CONCATENATE:
        num_default(cfg, "axis", -1);
        break;
    case LAYER_LEAKY_RELU:
        num_default(cfg, "alpha", 0.3);
        if (major >= 3) { /* Keras 3 renamed it */
            json_object_set(cfg, "negative_slope", json_object_get(cfg, "alpha"));
            json_object_del(cfg, "alpha");
        }
        break;
    case LAYER_ELU:
        num_default(cfg, "alpha", 1.0);
        break;
    default:
        break;
    }
    return cfg;
}

/* The output of call `node` of the layer named `name`. */
static const nncc_tensor *call_output(const nncc_model *m, const char *name, int node)
{
    for (int i = 0; i < m->n_layers; i++)
        if (strcmp(m->layers[i]->name, name) == 0 && node < m->layers[i]->n_calls)
            return m->layers[i]->calls[node].out;
    return NULL;
}

/* A reference [name, node] of nncc's JSON as a Keras tensor argument. */
static json_t *tensor_arg(const nncc_model *m, json_t *ref, int major)
{
    const char *name = json_string_value(json_array_get(ref, 0));
    int node = (int)json_integer_value(json_array_get(ref, 1));
    if (major < 3)
        return json_pack("[sii{}]", name, node, 0);
    const nncc_tensor *t = call_output(m, name, node);
    return json_pack("{s:s,s:{s:o,s:s,s:[sii]}}", "class_name", "__keras_tensor__", "config",
                     "shape", t ? shape_json(t->shape) : json_null(), "dtype", "float32",
                     "keras_history", name, node, 0);
}

static json_t *input_entry(const char *name, struct nncc_shape s, int major)
{
    json_t *cfg = json_object();
    json_object_set_new(cfg, major < 3 ? "batch_input_shape" : "batch_shape", shape_json(s));
    json_object_set_new(cfg, "dtype", json_string("float32"));
    json_object_set_new(cfg, "sparse", json_false());
    json_object_set_new(cfg, "ragged", json_false());
    json_object_set_new(cfg, "name", json_string(name));
    json_t *e = json_pack("{s:s,s:o}", "class_name", "InputLayer", "config", cfg);
    if (major >= 3) {
        json_object_set_new(e, "module", json_string("keras.layers"));
        json_object_set_new(e, "registered_name", json_null());
    }
    return e;
}

static const nncc_layer *layer_named(const nncc_model *m, const char *name)
{
    for (int i = 0; i < m->n_layers; i++)
        if (strcmp(m->layers[i]->name, name) == 0)
            return m->layers[i];
    return NULL;
}

json_t *keras_config_write(const nncc_model *m, int major)
{
    if (!model_check_ready(m))
        return NULL;
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i]->kind == LAYER_ONNX)
            return NNCC_FAIL_NULL(NNCC_ERR_UNSUPPORTED, "Keras file: layer \"%s\" is an imported "
                                  "ONNX node (%s), which has no Keras class", m->layers[i]->name,
                                  nncc_layer_type(m->layers[i]));
    char *text = model_config_json(m);
    if (!text)
        return NULL;
    json_t *n = json_loads(text, 0, NULL);
    free(text);
    if (!n)
        return NNCC_FAIL_NULL(NNCC_ERR_NOMEM, "Keras file: out of memory (model config)");
    json_t *layers = json_array();
    json_t *nlayers = json_object_get(n, "layers");
    if (m->sequential) {
        /* Keras lists the Sequential's input first */
        char in_name[NNCC_MAX_NAME + 8];
        snprintf(in_name, sizeof in_name, "%s", major < 3 ? "" : "input_layer");
        if (major < 3)
            snprintf(in_name, sizeof in_name, "%.*s_input", NNCC_MAX_NAME - 6, m->layers[0]->name);
        json_array_append_new(layers, input_entry(in_name, m->inputs[0]->shape, major));
    }
    size_t i;
    json_t *nl;
    json_array_foreach(nlayers, i, nl) {
        const char *name = json_string_value(json_object_get(nl, "name"));
        const nncc_layer *l = layer_named(m, name);
        if (!l)
            continue;
        if (l->kind == LAYER_INPUT) {
            json_t *e = input_entry(name, l->calls[0].out->shape, major);
            json_object_set_new(e, "name", json_string(name));
            json_object_set_new(e, "inbound_nodes", json_array());
            json_array_append_new(layers, e);
            continue;
        }
        json_t *e = json_object();
        if (major >= 3)
            json_object_set_new(e, "module", json_string("keras.layers"));
        json_object_set_new(e, "class_name", json_string(layer_kind(l->kind)->cls));
        json_object_set_new(e, "config",
                            layer_keras_config(l, json_object_get(nl, "config"), major));
        if (major >= 3) {
            json_object_set_new(e, "registered_name", json_null());
            /* Keras 3 builds a layer from this before reading its weights */
            json_t *in_shapes = json_array();
            for (int q = 0; q < l->calls[0].n_in; q++)
                json_array_append_new(in_shapes, shape_json(l->calls[0].in[q]->shape));
            json_t *bs = l->calls[0].n_in == 1 ? json_incref(json_array_get(in_shapes, 0))
                                               : json_incref(in_shapes);
            json_decref(in_shapes);
            json_object_set_new(e, "build_config", json_pack("{s:o}", "input_shape", bs));
        }
        if (!m->sequential) {
            json_object_set_new(e, "name", json_string(name));
            json_t *nodes = json_array(), *calls = json_object_get(nl, "calls");
            size_t k;
            json_t *call;
            json_array_foreach(calls, k, call) {
                json_t *args = json_array();
                size_t q;
                json_t *ref;
                json_array_foreach(json_object_get(call, "inputs"), q, ref)
                    json_array_append_new(args, tensor_arg(m, ref, major));
                if (major < 3) {
                    json_array_append_new(nodes, args);
                } else {
                    /* a merge layer takes one list argument */
                    json_t *a = json_array_size(args) == 1 && l->kind != LAYER_ADD &&
                                        l->kind != LAYER_CONCATENATE
                                    ? args
                                    : json_pack("[O]", args);
                    if (a != args)
                        json_decref(args);
                    json_array_append_new(nodes, json_pack("{s:o,s:{}}", "args", a, "kwargs"));
                }
            }
            json_object_set_new(e, "inbound_nodes", nodes);
        }
        json_array_append_new(layers, e);
    }
    json_t *cfg = json_pack("{s:s,s:b,s:o}", "name", m->name, "trainable", 1, "layers", layers);
    json_t *root = json_object();
    if (m->sequential) {
        if (major >= 3)
            json_object_set_new(root, "module", json_string("keras"));
        json_object_set_new(root, "class_name", json_string("Sequential"));
    } else {
        json_t *io[2] = {json_array(), json_array()};
        const char *keys[2] = {"inputs", "outputs"};
        for (int k = 0; k < 2; k++) {
            size_t q;
            json_t *ref;
            json_array_foreach(json_object_get(n, keys[k]), q, ref)
                json_array_append_new(io[k], json_pack("[Oii]", json_array_get(ref, 0),
                                                       (int)json_integer_value(json_array_get(ref, 1)),
                                                       0));
        }
        json_object_set_new(cfg, "input_layers", io[0]);
        json_object_set_new(cfg, "output_layers", io[1]);
        if (major >= 3)
            json_object_set_new(root, "module", json_string("keras.src.models.functional"));
        json_object_set_new(root, "class_name", json_string("Functional"));
    }
    json_object_set_new(root, "config", cfg);
    if (major >= 3) {
        json_object_set_new(root, "registered_name",
                            m->sequential ? json_null() : json_string("Functional"));
        json_object_set_new(root, "build_config",
                            json_pack("{s:o}", "input_shape",
                                      m->sequential ? shape_json(m->inputs[0]->shape)
                                                    : json_null()));
    }
    json_decref(n);
    return root;
}

void keras_layer_path(const nncc_model *m, int i, char *buf, size_t size)
{
    const char *base = m->layers[i]->kind == LAYER_INPUT ? "input_layer"
                                                          : layer_kind(m->layers[i]->kind)->base;
    int before = 0;
    for (int k = 0; k < i; k++) {
        const char *b = m->layers[k]->kind == LAYER_INPUT ? "input_layer"
                                                           : layer_kind(m->layers[k]->kind)->base;
        before += strcmp(b, base) == 0;
    }
    if (before)
        snprintf(buf, size, "layers/%s_%d", base, before);
    else
        snprintf(buf, size, "layers/%s", base);
}
