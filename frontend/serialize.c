/*
 * serialize.c — a model's architecture as JSON, and a model rebuilt from it.
 *
 * The JSON names every layer with its class, its "config" and, for
 * functional models, each call's inbound (layer, node) pairs, plus the
 * model's inputs and outputs.  A Sequential is written as its list of layers
 * and rebuilt as a Sequential, so its summary is unchanged.
 *
 * How each kind's config is written and read are the hooks layers.def names
 * (ser_<kind>_write / ser_<kind>_read, below): an InputLayer's config is its
 * shape and batch size; every other kind's is its options, under Keras' names
 * (units, activation, use_bias, kernel_size, …), described by a table of
 * fields.
 *
 * Reading trusts nothing: unknown classes and options, wrong types,
 * missing fields, names too long or repeated, calls that reference layers
 * or nodes that do not exist, and cycles are errors naming the file and the
 * problem.  Option values then go through the ordinary layer constructors,
 * which check them as they check a programmer's.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "frontend.h"
#include "onnx.h"

/* ---- Config fields ----------------------------------------------------- */

enum field_type { F_INT, F_FLOAT, F_USE, F_ACT, F_INIT, F_PAD, F_PAIR, F_SHAPE, F_U64, F_BOOL };

/* A config key and the option it holds: its type and place in the kind's
 * options struct (a member of union layer_opts).  Tables end with {0}. */
struct field {
    const char *key;
    enum field_type type;
    size_t offset;
};

#define FIELD(s, k, t, m) {k, t, offsetof(struct s, m)}

static const char *const init_names[NNCC_INITIALIZER_COUNT] = {
    [NNCC_INIT_DEFAULT] = "default",   [NNCC_GLOROT_UNIFORM] = "glorot_uniform",
    [NNCC_GLOROT_NORMAL] = "glorot_normal", [NNCC_HE_NORMAL] = "he_normal",
    [NNCC_HE_UNIFORM] = "he_uniform",  [NNCC_LECUN_NORMAL] = "lecun_normal",
    [NNCC_LECUN_UNIFORM] = "lecun_uniform", [NNCC_ZEROS] = "zeros", [NNCC_ONES] = "ones",
    [NNCC_RANDOM_NORMAL] = "random_normal", [NNCC_RANDOM_UNIFORM] = "random_uniform",
    [NNCC_TRUNCATED_NORMAL] = "truncated_normal",
};

/* ---- Writing a config ---------------------------------------------------- */

static json_t *shape_json(struct nncc_shape s, int from)
{
    json_t *a = json_array();
    for (int i = from; i < s.rank; i++)
        json_array_append_new(a, s.dim[i] < 0 ? json_null() : json_integer(s.dim[i]));
    return a;
}

/* A shape the user gave (a Reshape target), as given: its -1 stays -1,
 * which reading accepts (shape_json would write null). */
static json_t *dims_json(struct nncc_shape s)
{
    json_t *a = json_array();
    for (int i = 0; i < s.rank; i++)
        json_array_append_new(a, json_integer(s.dim[i]));
    return a;
}

/* A config object holding the layer's options, one key per field. */
static json_t *write_fields(const nncc_layer *l, const struct field *fields)
{
    json_t *o = json_object();
    const char *base = (const char *)&l->o;
    for (const struct field *f = fields; f->key; f++) {
        const void *p = base + f->offset;
        json_t *v = NULL;
        switch (f->type) {
        case F_INT: v = json_integer(*(const int *)p); break;
        case F_FLOAT: v = json_real(*(const float *)p); break;
        case F_USE: v = json_boolean(!*(const bool *)p); break;
        case F_BOOL: v = json_boolean(*(const bool *)p); break;
        case F_ACT: v = json_string(nncc_activation_name(*(const enum nncc_activation *)p)); break;
        case F_INIT: {
            enum nncc_initializer i = *(const enum nncc_initializer *)p;
            if (i == NNCC_INIT_DEFAULT) /* write what the default is */
                i = strstr(f->key, "kernel") ? NNCC_GLOROT_UNIFORM : NNCC_ZEROS;
            v = json_string(init_names[i]);
            break;
        }
        case F_PAD: v = json_string(*(const enum nncc_padding *)p == NNCC_SAME ? "same" : "valid"); break;
        case F_PAIR: v = json_pack("[ii]", ((const int *)p)[0], ((const int *)p)[1]); break;
        case F_SHAPE: v = dims_json(*(const struct nncc_shape *)p); break;
        case F_U64: v = json_integer((json_int_t)(*(const uint64_t *)p & 0x7fffffffffffffffull)); break;
        }
        json_object_set_new(o, f->key, v);
    }
    return o;
}

/* ---- Reading a config ---------------------------------------------------- */

struct reader {
    const char *path;
    enum nncc_status st;
    nncc_graph *g; /* the functional model's graph being rebuilt (NULL for a Sequential) */
};

#define BAD(r, ...) ((r)->st ? (r)->st : ((r)->st = nncc_fail(NNCC_ERR_FORMAT, __VA_ARGS__)))

static bool get_int(struct reader *r, json_t *v, const char *what, json_int_t lo, json_int_t hi,
                    json_int_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        BAD(r, "'%s': %s must be an integer in [%lld, %lld]", r->path, what, (long long)lo,
            (long long)hi);
        return false;
    }
    *out = json_integer_value(v);
    return true;
}

static bool get_shape(struct reader *r, json_t *v, const char *what, bool allow_minus_one,
                      struct nncc_shape *s)
{
    if (!json_is_array(v) || json_array_size(v) >= NNCC_MAX_RANK) {
        BAD(r, "'%s': %s must be a list of at most %d sizes", r->path, what, NNCC_MAX_RANK - 1);
        return false;
    }
    s->rank = (int)json_array_size(v);
    for (int i = 0; i < s->rank; i++) {
        json_int_t d;
        if (!get_int(r, json_array_get(v, (size_t)i), what, allow_minus_one ? -1 : 1,
                     (json_int_t)1 << 40, &d))
            return false;
        s->dim[i] = d;
    }
    return true;
}

static bool lookup(struct reader *r, const char *const *names, int n, const char *s,
                   const char *what, int *out)
{
    for (int i = 0; i < n; i++)
        if (names[i] && strcmp(names[i], s) == 0) {
            *out = i;
            return true;
        }
    BAD(r, "'%s': unknown %s \"%.64s\"", r->path, what, s);
    return false;
}

/* Fills an options struct from a "config" object; every key must be known. */
static bool read_config(struct reader *r, const struct field *fields, json_t *cfg, void *opts,
                        const char *layer)
{
    if (!json_is_object(cfg)) {
        BAD(r, "'%s': layer \"%.64s\": config must be an object", r->path, layer);
        return false;
    }
    const char *key;
    json_t *v;
    json_object_foreach(cfg, key, v)
    {
        const struct field *f = fields;
        while (f->key && strcmp(f->key, key) != 0)
            f++;
        if (!f->key) {
            BAD(r, "'%s': layer \"%.64s\": unknown option \"%.64s\"", r->path, layer, key);
            return false;
        }
        char what[200];
        snprintf(what, sizeof what, "layer \"%.64s\" option %s", layer, key);
        char *p = (char *)opts + f->offset;
        json_int_t iv;
        switch (f->type) {
        case F_INT:
            if (!get_int(r, v, what, -(1 << 30), 1 << 30, &iv))
                return false;
            *(int *)p = (int)iv;
            break;
        case F_FLOAT:
            if (!json_is_number(v)) {
                BAD(r, "'%s': %s must be a number", r->path, what);
                return false;
            }
            *(float *)p = (float)json_number_value(v);
            break;
        case F_U64:
            if (!get_int(r, v, what, 0, INT64_MAX, &iv))
                return false;
            *(uint64_t *)p = (uint64_t)iv;
            break;
        case F_USE:
        case F_BOOL:
            if (!json_is_boolean(v)) {
                BAD(r, "'%s': %s must be true or false", r->path, what);
                return false;
            }
            *(bool *)p = f->type == F_USE ? !json_is_true(v) : json_is_true(v);
            break;
        case F_ACT:
        case F_INIT:
        case F_PAD: {
            int idx;
            if (!json_is_string(v)) {
                BAD(r, "'%s': %s must be a string", r->path, what);
                return false;
            }
            const char *act_names[NNCC_ACTIVATION_COUNT];
            for (int a = 0; a < NNCC_ACTIVATION_COUNT; a++)
                act_names[a] = nncc_activation_name(a);
            static const char *const pads[2] = {"valid", "same"};
            bool ok = f->type == F_ACT    ? lookup(r, act_names, NNCC_ACTIVATION_COUNT, json_string_value(v), what, &idx)
                      : f->type == F_INIT ? lookup(r, init_names, NNCC_INITIALIZER_COUNT, json_string_value(v), what, &idx)
                                          : lookup(r, pads, 2, json_string_value(v), what, &idx);
            if (!ok)
                return false;
            *(int *)p = idx; /* the enums are ints */
            break;
        }
        case F_PAIR:
            if (!json_is_array(v) || json_array_size(v) != 2) {
                BAD(r, "'%s': %s must be a pair of integers", r->path, what);
                return false;
            }
            for (int i = 0; i < 2; i++) {
                if (!get_int(r, json_array_get(v, (size_t)i), what, 0, 1 << 20, &iv))
                    return false;
                ((int *)p)[i] = (int)iv;
            }
            break;
        case F_SHAPE:
            if (!get_shape(r, v, what, true, (struct nncc_shape *)p))
                return false;
            break;
        }
    }
    return true;
}

/* Reads a layer's options from its entry: the config, by the kind's fields,
 * and the input_shape a Sequential's first layer carries. */
static bool read_fields(struct reader *r, json_t *j, const char *name, const struct field *fields,
                        union layer_opts *o)
{
    memset(o, 0, sizeof *o);
    if (!read_config(r, fields, json_object_get(j, "config"), o, name))
        return false;
    o->head.name = name;
    json_t *is = json_object_get(j, "input_shape");
    return !is || get_shape(r, is, "input_shape", false, &o->head.input_shape);
}

/* ---- Each kind's config: the hooks layers.def names --------------------- */

/* InputLayer: its shape and batch size.  Reading makes the input on the
 * graph being rebuilt, as nncc_input() does. */
static json_t *ser_input_write(const nncc_layer *l)
{
    json_t *c = json_object();
    json_object_set_new(c, "shape", shape_json(l->input_shape, 0));
    json_object_set_new(c, "batch_size",
                        l->o.input.batch_size > 0 ? json_integer(l->o.input.batch_size) : json_null());
    return c;
}

static nncc_layer *ser_input_read(struct reader *r, json_t *j, const char *name)
{
    json_t *cfg = json_object_get(j, "config");
    struct nncc_shape s;
    json_t *bsz = json_object_get(cfg, "batch_size");
    json_int_t batch = 0;
    if (!json_is_object(cfg) || !get_shape(r, json_object_get(cfg, "shape"), "input shape", false, &s) ||
        (bsz && !json_is_null(bsz) && !get_int(r, bsz, "batch_size", 1, 1 << 30, &batch)))
        return NULL;
    nncc_tensor *t = nncc_input(r->g, s, .name = name, .batch_size = batch);
    if (!t) {
        char msg[1024];
        snprintf(msg, sizeof msg, "'%s': %s", r->path, nncc_last_error());
        r->st = nncc_fail(NNCC_ERR_FORMAT, "%s", msg);
        return NULL;
    }
    return nncc_tensor_layer(t);
}

/* Every other kind's config is its options, one key per field; reading ends
 * in the kind's public constructor, which checks the values.  The read hooks
 * make a layer object that is not called yet. */

static const struct field dense_fields[] = {
    FIELD(nncc_dense_opts, "units", F_INT, units),
    FIELD(nncc_dense_opts, "activation", F_ACT, activation),
    FIELD(nncc_dense_opts, "use_bias", F_USE, no_bias),
    FIELD(nncc_dense_opts, "kernel_initializer", F_INIT, kernel_initializer),
    FIELD(nncc_dense_opts, "bias_initializer", F_INIT, bias_initializer),
    {0},
};

static json_t *ser_dense_write(const nncc_layer *l) { return write_fields(l, dense_fields); }

static nncc_layer *ser_dense_read(struct reader *r, json_t *j, const char *name)
{
    union layer_opts o;
    return read_fields(r, j, name, dense_fields, &o) ? nncc_dense_layer_(o.dense) : NULL;
}

static const struct field activation_fields[] = {
    FIELD(nncc_activation_opts, "activation", F_ACT, activation),
    {0},
};

static json_t *ser_activation_write(const nncc_layer *l)
{
    return write_fields(l, activation_fields);
}

static nncc_layer *ser_activation_read(struct reader *r, json_t *j, const char *name)
{
    union layer_opts o;
    return read_fields(r, j, name, activation_fields, &o) ? nncc_activation_layer_(o.activation)
                                                           : NULL;
}

static const struct field no_fields[] = {{0}};

static json_t *ser_flatten_write(const nncc_layer *l) { return write_fields(l, no_fields); }

static nncc_layer *ser_flatten_read(struct reader *r, json_t *j, const char *name)
{
    union layer_opts o;
    return read_fields(r, j, name, no_fields, &o) ? nncc_flatten_layer_(o.flatten) : NULL;
}

static const struct field reshape_fields[] = {
    FIELD(nncc_reshape_opts, "target_shape", F_SHAPE, target_shape),
    {0},
};

static json_t *ser_reshape_write(const nncc_layer *l) { return write_fields(l, reshape_fields); }

static nncc_layer *ser_reshape_read(struct reader *r, json_t *j, const char *name)
{
    union layer_opts o;
    return read_fields(r, j, name, reshape_fields, &o) ? nncc_reshape_layer_(o.reshape) : NULL;
}

static const struct field dropout_fields[] = {
    FIELD(nncc_dropout_opts, "rate", F_FLOAT, rate),
    FIELD(nncc_dropout_opts, "seed", F_U64, seed),
    {0},
};

static json_t *ser_dropout_write(const nncc_layer *l) { return write_fields(l, dropout_fields); }

static nncc_layer *ser_dropout_read(struct reader *r, json_t *j, const char *name)
{
    union layer_opts o;
    return read_fields(r, j, name, dropout_fields, &o) ? nncc_dropout_layer_(o.dropout) : NULL;
}

static const struct field leaky_relu_fields[] = {
    FIELD(nncc_leaky_relu_opts, "alpha", F_FLOAT, alpha),
    {0},
};

static json_t *ser_leaky_relu_write(const nncc_layer *l) { return write_fields(l, leaky_relu_fields); }

static nncc_layer *ser_leaky_relu_read(struct reader *r, json_t *j, const char *name)
{
    union layer_opts o;
    return read_fields(r, j, name, leaky_relu_fields, &o) ? nncc_leaky_relu_layer_(o.leaky_relu)
                                                           : NULL;
}

static const struct field elu_fields[] = {
    FIELD(nncc_elu_opts, "alpha", F_FLOAT, alpha),
    {0},
};

static json_t *ser_elu_write(const nncc_layer *l) { return write_fields(l, elu_fields); }

static nncc_layer *ser_elu_read(struct reader *r, json_t *j, const char *name)
{
    union layer_opts o;
    return read_fields(r, j, name, elu_fields, &o) ? nncc_elu_layer_(o.elu) : NULL;
}

static const struct field conv2d_fields[] = {
    FIELD(nncc_conv2d_opts, "filters", F_INT, filters),
    FIELD(nncc_conv2d_opts, "kernel_size", F_PAIR, kernel_size),
    FIELD(nncc_conv2d_opts, "strides", F_PAIR, strides),
    FIELD(nncc_conv2d_opts, "padding", F_PAD, padding),
    FIELD(nncc_conv2d_opts, "dilation_rate", F_PAIR, dilation_rate),
    FIELD(nncc_conv2d_opts, "activation", F_ACT, activation),
    FIELD(nncc_conv2d_opts, "use_bias", F_USE, no_bias),
    FIELD(nncc_conv2d_opts, "kernel_initializer", F_INIT, kernel_initializer),
    FIELD(nncc_conv2d_opts, "bias_initializer", F_INIT, bias_initializer),
    {0},
};

static json_t *ser_conv2d_write(const nncc_layer *l) { return write_fields(l, conv2d_fields); }

static nncc_layer *ser_conv2d_read(struct reader *r, json_t *j, const char *name)
{
    union layer_opts o;
    return read_fields(r, j, name, conv2d_fields, &o) ? nncc_conv2d_layer_(o.conv2d) : NULL;
}

static const struct field pool2d_fields[] = {
    FIELD(nncc_pool2d_opts, "pool_size", F_PAIR, pool_size),
    FIELD(nncc_pool2d_opts, "strides", F_PAIR, strides),
    FIELD(nncc_pool2d_opts, "padding", F_PAD, padding),
    {0},
};

static json_t *ser_maxpool2d_write(const nncc_layer *l) { return write_fields(l, pool2d_fields); }

static nncc_layer *ser_maxpool2d_read(struct reader *r, json_t *j, const char *name)
{
    union layer_opts o;
    return read_fields(r, j, name, pool2d_fields, &o) ? nncc_maxpool2d_layer_(o.pool2d) : NULL;
}

static json_t *ser_avgpool2d_write(const nncc_layer *l) { return write_fields(l, pool2d_fields); }

static nncc_layer *ser_avgpool2d_read(struct reader *r, json_t *j, const char *name)
{
    union layer_opts o;
    return read_fields(r, j, name, pool2d_fields, &o) ? nncc_avgpool2d_layer_(o.pool2d) : NULL;
}

static const struct field global_avgpool2d_fields[] = {
    FIELD(nncc_global_pool2d_opts, "keepdims", F_BOOL, keepdims),
    {0},
};

static json_t *ser_global_avgpool2d_write(const nncc_layer *l)
{
    return write_fields(l, global_avgpool2d_fields);
}

static nncc_layer *ser_global_avgpool2d_read(struct reader *r, json_t *j, const char *name)
{
    union layer_opts o;
    return read_fields(r, j, name, global_avgpool2d_fields, &o)
               ? nncc_global_avgpool2d_layer_(o.global_pool2d)
               : NULL;
}

/* Keras' Add has no axis; Concatenate has. */
static json_t *ser_add_write(const nncc_layer *l) { return write_fields(l, no_fields); }

static nncc_layer *ser_add_read(struct reader *r, json_t *j, const char *name)
{
    union layer_opts o;
    return read_fields(r, j, name, no_fields, &o) ? nncc_add_layer_(o.merge) : NULL;
}

static const struct field concatenate_fields[] = {
    FIELD(nncc_merge_opts, "axis", F_INT, axis),
    {0},
};

static json_t *ser_concatenate_write(const nncc_layer *l)
{
    return write_fields(l, concatenate_fields);
}

static nncc_layer *ser_concatenate_read(struct reader *r, json_t *j, const char *name)
{
    union layer_opts o;
    return read_fields(r, j, name, concatenate_fields, &o) ? nncc_concatenate_layer_(o.merge)
                                                            : NULL;
}

static const struct field batchnorm_fields[] = {
    FIELD(nncc_batchnorm_opts, "axis", F_INT, axis),
    FIELD(nncc_batchnorm_opts, "momentum", F_FLOAT, momentum),
    FIELD(nncc_batchnorm_opts, "epsilon", F_FLOAT, epsilon),
    FIELD(nncc_batchnorm_opts, "center", F_USE, no_center),
    FIELD(nncc_batchnorm_opts, "scale", F_USE, no_scale),
    {0},
};

static json_t *ser_batchnorm_write(const nncc_layer *l) { return write_fields(l, batchnorm_fields); }

static nncc_layer *ser_batchnorm_read(struct reader *r, json_t *j, const char *name)
{
    union layer_opts o;
    return read_fields(r, j, name, batchnorm_fields, &o) ? nncc_batchnorm_layer_(o.batchnorm)
                                                          : NULL;
}

static json_t *ser_onnx_write(const nncc_layer *l)
{
    json_t *cfg = onnx_node_config(l->onnx);
    json_object_set_new(cfg, "name", json_string(l->name));
    return cfg;
}

static nncc_layer *ser_onnx_read(struct reader *r, json_t *j, const char *name)
{
    struct onnx_node n;
    char err[256];
    if (!onnx_node_from_config(json_object_get(j, "config"), &n, err, sizeof err)) {
        BAD(r, "'%s': layer \"%.64s\" (OnnxNode): %s", r->path, name, err);
        return NULL;
    }
    return onnx_layer_new(&n, name);
}

/* A kind's hooks, looked up by its enum: one entry per line of layers.def,
 * which names the functions above, so a kind without them does not compile. */
static const struct {
    json_t *(*write)(const nncc_layer *l); /* the "config" object */
    nncc_layer *(*read)(struct reader *r, json_t *entry, const char *name);
} config_hooks[] = {
#define LAYER(id, cls, base, mn, mx, lower, cw, cr) [LAYER_##id] = {.write = cw, .read = cr},
#include "layers.def"
#undef LAYER
};
_Static_assert(sizeof config_hooks / sizeof config_hooks[0] == LAYER_KIND_COUNT,
               "one entry per layer kind");

/* ---- Writing ----------------------------------------------------------- */

static json_t *ref_json(const nncc_tensor *t)
{
    return json_pack("[si]", t->layer->name, t->node_index);
}

char *model_config_json(const nncc_model *m)
{
    json_t *root = json_object();
    json_object_set_new(root, "class", json_string(m->sequential ? "Sequential" : "Functional"));
    json_object_set_new(root, "name", json_string(m->name));
    json_object_set_new(root, "seed", json_integer((json_int_t)(m->g->seed & 0x7fffffffffffffffull)));
    json_t *layers = json_array();
    for (int i = 0; i < m->n_layers; i++) {
        const nncc_layer *l = m->layers[i];
        json_t *j = json_object();
        json_object_set_new(j, "class", json_string(layer_kind(l->kind)->cls));
        json_object_set_new(j, "name", json_string(l->name));
        json_object_set_new(j, "config", config_hooks[l->kind].write(l));
        if (m->sequential && i == 0)
            json_object_set_new(j, "input_shape", shape_json(m->inputs[0]->shape, 1));
        if (!m->sequential && l->kind != LAYER_INPUT) {
            json_t *calls = json_array();
            for (int k = 0; k < l->n_calls; k++) {
                if (!model_has_node(m, l, k))
                    continue;
                json_t *ins = json_array();
                for (int q = 0; q < l->calls[k].n_in; q++)
                    json_array_append_new(ins, ref_json(l->calls[k].in[q]));
                json_array_append_new(calls, json_pack("{s:i,s:o}", "node", k, "inputs", ins));
            }
            json_object_set_new(j, "calls", calls);
        }
        json_array_append_new(layers, j);
    }
    json_object_set_new(root, "layers", layers);
    if (!m->sequential) {
        json_t *ins = json_array(), *outs = json_array();
        for (int i = 0; i < m->n_inputs; i++)
            json_array_append_new(ins, ref_json(m->inputs[i]));
        for (int i = 0; i < m->n_outputs; i++)
            json_array_append_new(outs, ref_json(m->outputs[i]));
        json_object_set_new(root, "inputs", ins);
        json_object_set_new(root, "outputs", outs);
    }
    char *text = json_dumps(root, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(root);
    if (!text)
        nncc_fail(NNCC_ERR_NOMEM, "out of memory (model config)");
    return text;
}

/* ---- Reading ----------------------------------------------------------- */

static bool name_ok(struct reader *r, json_t *v, const char *what, const char **out)
{
    /* The limit the constructors check (NNCC_MAX_NAME), so what saves loads. */
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        json_string_length(v) > NNCC_MAX_NAME ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        BAD(r, "'%s': %s must be a non-empty name of at most NNCC_MAX_NAME (%d) bytes", r->path,
            what, NNCC_MAX_NAME);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

/* Makes a layer object of `cls` from its JSON entry (the kind's read hook);
 * a value the constructor refuses is reported with the layer and class. */
static nncc_layer *make_layer(struct reader *r, json_t *j, const char *name, const char *cls,
                              enum layer_kind kind)
{
    nncc_layer *l = config_hooks[kind].read(r, j, name);
    if (!l && !r->st) {
        char msg[1024];
        snprintf(msg, sizeof msg, "'%s': layer \"%.64s\" (%s): %s", r->path, name, cls,
                 nncc_last_error());
        r->st = nncc_fail(NNCC_ERR_FORMAT, "%s", msg);
    }
    return l;
}

static bool kind_of(struct reader *r, json_t *j, enum layer_kind *kind, const char **cls)
{
    json_t *c = json_object_get(j, "class");
    if (!json_is_string(c)) {
        BAD(r, "'%s': a layer has no class", r->path);
        return false;
    }
    *cls = json_string_value(c);
    for (int k = 0; k < LAYER_KIND_COUNT; k++)
        if (strcmp(layer_kind(k)->cls, *cls) == 0) {
            *kind = k;
            return true;
        }
    BAD(r, "'%s': unknown layer class \"%.64s\"", r->path, *cls);
    return false;
}

/* A built node of the saved graph: (layer index, saved node) → tensor. */
struct built {
    int layer;
    json_int_t node;
    nncc_tensor *t;
};

static nncc_tensor *find_built(const struct built *b, int n, int layer, json_int_t node)
{
    for (int i = 0; i < n; i++)
        if (b[i].layer == layer && b[i].node == node)
            return b[i].t;
    return NULL;
}

static int find_name(const char **names, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (names[i] && strcmp(names[i], s) == 0)
            return i;
    return -1;
}

/* Resolves a ["layer", node] reference to a built tensor (NULL: not yet). */
static bool resolve(struct reader *r, json_t *ref, const char **names, int n_layers,
                    const struct built *b, int n_built, nncc_tensor **out)
{
    const char *name;
    json_int_t node;
    if (!json_is_array(ref) || json_array_size(ref) != 2 ||
        !name_ok(r, json_array_get(ref, 0), "a reference's layer", &name) ||
        !get_int(r, json_array_get(ref, 1), "a reference's node", 0, 1 << 20, &node))
        return BAD(r, "'%s': a reference must be [\"layer\", node]", r->path), false;
    int li = find_name(names, n_layers, name);
    if (li < 0)
        return BAD(r, "'%s': reference to unknown layer \"%.64s\"", r->path, name), false;
    *out = find_built(b, n_built, li, node);
    return true;
}

static nncc_model *read_functional(struct reader *r, json_t *root, json_t *layers, const char *mname,
                                   uint64_t seed)
{
    size_t n = json_array_size(layers);
    nncc_graph *g = nncc_graph_new();
    const char **names = calloc(n + 1, sizeof *names);
    nncc_layer **objs = calloc(n + 1, sizeof *objs);
    size_t *next_call = calloc(n + 1, sizeof *next_call);
    size_t cap = 16, n_built = 0, total_calls = 0;
    struct built *b = malloc(sizeof *b * cap);
    nncc_model *m = NULL;
    if (!g || !names || !objs || !next_call || !b) {
        r->st = nncc_fail(NNCC_ERR_NOMEM, "out of memory (loading '%s')", r->path);
        goto done;
    }
    nncc_graph_set_seed(g, seed);
    r->g = g;
    for (size_t i = 0; i < n && !r->st; i++) {
        json_t *j = json_array_get(layers, i);
        enum layer_kind kind;
        const char *cls;
        if (!json_is_object(j)) {
            BAD(r, "'%s': layer %zu is not an object", r->path, i);
            break;
        }
        if (!kind_of(r, j, &kind, &cls) ||
            !name_ok(r, json_object_get(j, "name"), "a layer name", &names[i]))
            break;
        if (find_name(names, (int)i, names[i]) >= 0) {
            BAD(r, "'%s': layer name \"%.64s\" appears twice", r->path, names[i]);
            break;
        }
        if (kind == LAYER_INPUT) {
            /* Made and called at once: its output is a node later calls use. */
            nncc_layer *in = config_hooks[kind].read(r, j, names[i]);
            if (!in)
                break;
            b[n_built++] = (struct built){.layer = (int)i, .node = 0, .t = nncc_layer_output(in)};
            if (n_built == cap) {
                struct built *nb = realloc(b, sizeof *b * (cap *= 2));
                if (!nb) {
                    r->st = nncc_fail(NNCC_ERR_NOMEM, "out of memory");
                    break;
                }
                b = nb;
            }
            continue;
        }
        json_t *calls = json_object_get(j, "calls");
        if (!json_is_array(calls)) {
            BAD(r, "'%s': layer \"%.64s\" has no calls list", r->path, names[i]);
            break;
        }
        total_calls += json_array_size(calls);
        objs[i] = make_layer(r, j, names[i], cls, kind);
    }
    /* Run calls whose inputs exist until none is left; no progress means a
     * reference to nothing or a cycle. */
    for (size_t done_calls = 0; !r->st && done_calls < total_calls;) {
        size_t before = done_calls;
        for (size_t i = 0; i < n && !r->st; i++) {
            if (!objs[i])
                continue;
            json_t *calls = json_object_get(json_array_get(layers, i), "calls");
            while (!r->st && next_call[i] < json_array_size(calls)) {
                json_t *c = json_array_get(calls, next_call[i]);
                json_t *ins = json_object_get(c, "inputs");
                json_int_t node;
                if (!json_is_object(c) || !json_is_array(ins) || json_array_size(ins) < 1 ||
                    json_array_size(ins) > 64 ||
                    !get_int(r, json_object_get(c, "node"), "a call's node", 0, 1 << 20, &node)) {
                    BAD(r, "'%s': layer \"%.64s\": malformed call", r->path, names[i]);
                    break;
                }
                nncc_tensor *xs[64];
                bool ready = true;
                for (size_t q = 0; q < json_array_size(ins) && ready && !r->st; q++)
                    if (!resolve(r, json_array_get(ins, q), names, (int)n, b, (int)n_built, &xs[q]) ||
                        !xs[q])
                        ready = false;
                if (!ready)
                    break;
                if (find_built(b, (int)n_built, (int)i, node)) {
                    BAD(r, "'%s': layer \"%.64s\" node %lld appears twice", r->path, names[i],
                        (long long)node);
                    break;
                }
                nncc_tensor *y = nncc_call_n(objs[i], xs, (int)json_array_size(ins));
                if (!y) {
                    char msg[1024];
                    snprintf(msg, sizeof msg, "'%s': %s", r->path, nncc_last_error());
                    r->st = nncc_fail(NNCC_ERR_FORMAT, "%s", msg);
                    break;
                }
                if (n_built + 1 >= cap) {
                    struct built *nb = realloc(b, sizeof *b * (cap *= 2));
                    if (!nb) {
                        r->st = nncc_fail(NNCC_ERR_NOMEM, "out of memory");
                        break;
                    }
                    b = nb;
                }
                b[n_built++] = (struct built){.layer = (int)i, .node = node, .t = y};
                next_call[i]++;
                done_calls++;
            }
        }
        if (!r->st && done_calls == before)
            BAD(r, "'%s': the layers' calls reference nodes that never exist (or form a cycle)",
                r->path);
    }
    json_t *ins = json_object_get(root, "inputs"), *outs = json_object_get(root, "outputs");
    if (!r->st && (!json_is_array(ins) || !json_is_array(outs) || json_array_size(ins) < 1 ||
                   json_array_size(outs) < 1 || json_array_size(ins) > 64 ||
                   json_array_size(outs) > 64))
        BAD(r, "'%s': the model needs lists of inputs and outputs", r->path);
    if (!r->st) {
        nncc_tensor *xi[64], *yo[64];
        for (size_t i = 0; i < json_array_size(ins) && !r->st; i++)
            if (resolve(r, json_array_get(ins, i), names, (int)n, b, (int)n_built, &xi[i]) && !xi[i])
                BAD(r, "'%s': model input %zu does not exist", r->path, i);
        for (size_t i = 0; i < json_array_size(outs) && !r->st; i++)
            if (resolve(r, json_array_get(outs, i), names, (int)n, b, (int)n_built, &yo[i]) && !yo[i])
                BAD(r, "'%s': model output %zu does not exist", r->path, i);
        if (!r->st) {
            m = nncc_model_new_n(xi, (int)json_array_size(ins), yo, (int)json_array_size(outs),
                                 .name = mname);
            if (!m) {
                char msg[1024];
                snprintf(msg, sizeof msg, "'%s': %s", r->path, nncc_last_error());
                r->st = nncc_fail(NNCC_ERR_FORMAT, "%s", msg);
            }
        }
    }
done:
    for (size_t i = 0; objs && i < n; i++)
        if (objs[i] && !objs[i]->g)
            nncc_layer_free(objs[i]); /* never called */
    if (!m && g)
        nncc_graph_free(g);
    free(names);
    free(objs);
    free(next_call);
    free(b);
    return m;
}

static nncc_model *read_sequential(struct reader *r, json_t *layers, const char *mname, uint64_t seed)
{
    nncc_model *m = nncc_sequential_(NULL, 0, (struct nncc_model_opts){.name = mname});
    if (!m) {
        r->st = nncc_last_status();
        return NULL;
    }
    nncc_graph_set_seed(m->g, seed);
    for (size_t i = 0; i < json_array_size(layers) && !r->st; i++) {
        json_t *j = json_array_get(layers, i);
        enum layer_kind kind;
        const char *cls, *name;
        if (!json_is_object(j)) {
            BAD(r, "'%s': layer %zu is not an object", r->path, i);
            break;
        }
        if (!kind_of(r, j, &kind, &cls) ||
            !name_ok(r, json_object_get(j, "name"), "a layer name", &name))
            break;
        if (kind == LAYER_INPUT) {
            BAD(r, "'%s': a Sequential model lists no InputLayer", r->path);
            break;
        }
        nncc_layer *l = make_layer(r, j, name, cls, kind);
        if (l && nncc_sequential_add(m, l) != NNCC_OK) {
            char msg[1024];
            snprintf(msg, sizeof msg, "'%s': %s", r->path, nncc_last_error());
            r->st = nncc_fail(NNCC_ERR_FORMAT, "%s", msg);
        }
    }
    if (!r->st && !m->built)
        BAD(r, "'%s': the Sequential model's first layer has no input_shape", r->path);
    if (r->st) {
        nncc_model_free(m);
        return NULL;
    }
    return m;
}

nncc_model *model_from_config(const char *text, size_t len, const char *path)
{
    struct reader r = {.path = path};
    json_error_t err;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return NNCC_FAIL_NULL(NNCC_ERR_FORMAT, "'%s': malformed model JSON at line %d: %s", path,
                              err.line, err.text);
    nncc_model *m = NULL;
    const char *mname, *cls = json_string_value(json_object_get(root, "class"));
    json_t *layers = json_object_get(root, "layers");
    json_int_t seed = 0;
    json_t *sj = json_object_get(root, "seed");
    if (!json_is_object(root) || !cls || !name_ok(&r, json_object_get(root, "name"), "the model name", &mname) ||
        !json_is_array(layers) || json_array_size(layers) < 1 || json_array_size(layers) > 100000 ||
        (sj && !get_int(&r, sj, "seed", 0, INT64_MAX, &seed)))
        BAD(&r, "'%s': the model needs a class, a name and a list of layers", path);
    else if (strcmp(cls, "Sequential") == 0)
        m = read_sequential(&r, layers, mname, (uint64_t)seed);
    else if (strcmp(cls, "Functional") == 0)
        m = read_functional(&r, root, layers, mname, (uint64_t)seed);
    else
        BAD(&r, "'%s': unknown model class \"%.64s\"", path, cls);
    json_decref(root);
    if (r.st && m) {
        nncc_model_free(m);
        m = NULL;
    }
    if (!m && !r.st)
        nncc_fail(NNCC_ERR_FORMAT, "'%s': cannot rebuild the model", path);
    return m;
}
