/*
 * keras_config.c — a Keras model config (tf-keras 2.x or Keras 3) read into
 * an nncc model.
 *
 * The config is translated into nncc's architecture JSON (serialize.c's
 * format) and rebuilt by model_from_config, so every value also passes the
 * layer constructors' checks.  Per layer class a table lists every config
 * field Keras 2.15 and Keras 3 write and what nncc does with it: map it to
 * an nncc option, require the one value nncc implements (regularizers and
 * constraints null, "channels_last", groups 1, trainable true, float32), or
 * accept it as harmless (an initializer's seed and build_config: weights
 * and shapes come from the file).  A field not in the table, a value nncc
 * lacks, a class nncc lacks, or a call with keyword arguments is an error
 * naming the layer, its class and the field.
 *
 * Functional models keep their calls (shared layers are nncc's shared
 * layers); a nested model (Sequential or Functional) called once is
 * flattened into the outer model: its layers are called on the tensors the
 * outer call passes.  A top-level Sequential without nesting stays a
 * Sequential.  For every layer with weights the translation records where
 * they are in the file (struct keras_loc): the top-level layer whose .h5
 * group holds them, and the folder of the .keras weights file, named as
 * Keras names containers' members (the snake_case of the class, numbered
 * _1, _2, … in list order).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "keras.h"

/* ---- The translation's state --------------------------------------------- */

/* Models inside models: each level takes a few dozen KB of stack here. */
#define KERAS_MAX_NESTING 16

struct kc {
    const char *label;
    int major;
    enum nncc_status st;
    json_t *layers;       /* nncc layer entries, in order */
    bool flattened;       /* a nested model was flattened */
    int depth;            /* models being translated (nested ones inside) */
    struct keras_loc *locs;
    int n_locs, cap_locs;
};

/* A tensor of the output model: an nncc layer's name and its node. */
struct ref {
    char name[NNCC_MAX_NAME + 1];
    int node;
};

static enum nncc_status kfail(struct kc *c, enum nncc_status code, const char *fmt, ...)
{
    if (c->st)
        return c->st;
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return c->st = nncc_fail(code, "'%s': %s", c->label, msg);
}

#define BAD(c, ...) kfail((c), NNCC_ERR_FORMAT, __VA_ARGS__)
#define UNSUP(c, ...) kfail((c), NNCC_ERR_UNSUPPORTED, __VA_ARGS__)

/* A short rendering of a JSON value for messages. */
static const char *jshow(json_t *v, char *buf, size_t n)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    snprintf(buf, n, "%.80s%s", s ? s : "(missing)", s && strlen(s) > 80 ? "…" : "");
    free(s);
    return buf;
}

/* ---- Field types --------------------------------------------------------- */

enum kt {
    KT_INT,        /* an integer, copied */
    KT_FLOAT,      /* a number, copied */
    KT_BOOL,       /* true/false, copied */
    KT_PAIR,       /* [a, b] or a (Keras accepts both), as [a, b] */
    KT_PAIR_NULL,  /* a pair, or null: left to nncc's default */
    KT_ACT,        /* an activation name */
    KT_INIT,       /* an initializer */
    KT_PAD,        /* "valid" or "same" */
    KT_SHAPE,      /* a list of sizes */
    KT_SEED,       /* an integer or null */
    KT_BN_AXIS,    /* an integer or a list of one (Keras 2 writes [3]) */
    KT_NULL,       /* must be null: nncc has no such feature */
    KT_ONEOF,      /* must be one of `vals` (JSON text of an array) */
    KT_HARMLESS,   /* accepted: see the comment at the row */
};

struct kfield {
    const char *key;
    enum kt type;
    const char *to;   /* nncc's option key (NULL: same as key) */
    const char *vals; /* KT_ONEOF: the accepted values; KT_INIT: the one accepted */
};

#define END {NULL, 0, NULL, NULL}

static const struct kfield dense_f[] = {
    {"units", KT_INT, NULL, NULL},
    {"activation", KT_ACT, NULL, NULL},
    {"use_bias", KT_BOOL, NULL, NULL},
    {"kernel_initializer", KT_INIT, NULL, NULL},
    {"bias_initializer", KT_INIT, NULL, NULL},
    {"kernel_regularizer", KT_NULL, NULL, NULL},
    {"bias_regularizer", KT_NULL, NULL, NULL},
    {"activity_regularizer", KT_NULL, NULL, NULL},
    {"kernel_constraint", KT_NULL, NULL, NULL},
    {"bias_constraint", KT_NULL, NULL, NULL},
    {"lora_rank", KT_NULL, NULL, NULL},
    {"lora_alpha", KT_HARMLESS, NULL, NULL}, /* used only with a lora_rank */
    {"quantization_config", KT_NULL, NULL, NULL},
    END,
};

static const struct kfield conv2d_f[] = {
    {"filters", KT_INT, NULL, NULL},
    {"kernel_size", KT_PAIR, NULL, NULL},
    {"strides", KT_PAIR, NULL, NULL},
    {"padding", KT_PAD, NULL, NULL},
    {"data_format", KT_ONEOF, NULL, "[\"channels_last\", null]"},
    {"dilation_rate", KT_PAIR, NULL, NULL},
    {"groups", KT_ONEOF, NULL, "[1]"},
    {"activation", KT_ACT, NULL, NULL},
    {"use_bias", KT_BOOL, NULL, NULL},
    {"kernel_initializer", KT_INIT, NULL, NULL},
    {"bias_initializer", KT_INIT, NULL, NULL},
    {"kernel_regularizer", KT_NULL, NULL, NULL},
    {"bias_regularizer", KT_NULL, NULL, NULL},
    {"activity_regularizer", KT_NULL, NULL, NULL},
    {"kernel_constraint", KT_NULL, NULL, NULL},
    {"bias_constraint", KT_NULL, NULL, NULL},
    {"lora_rank", KT_NULL, NULL, NULL},
    {"lora_alpha", KT_HARMLESS, NULL, NULL},
    END,
};

static const struct kfield pool_f[] = {
    {"pool_size", KT_PAIR, NULL, NULL},
    {"strides", KT_PAIR_NULL, NULL, NULL},
    {"padding", KT_PAD, NULL, NULL},
    {"data_format", KT_ONEOF, NULL, "[\"channels_last\", null]"},
    END,
};

static const struct kfield gap_f[] = {
    {"data_format", KT_ONEOF, NULL, "[\"channels_last\", null]"},
    {"keepdims", KT_BOOL, NULL, NULL},
    END,
};

static const struct kfield flatten_f[] = {
    {"data_format", KT_ONEOF, NULL, "[\"channels_last\", null]"},
    END,
};

static const struct kfield reshape_f[] = {
    {"target_shape", KT_SHAPE, NULL, NULL},
    END,
};

static const struct kfield dropout_f[] = {
    {"rate", KT_FLOAT, NULL, NULL},
    {"noise_shape", KT_NULL, NULL, NULL},
    {"seed", KT_SEED, NULL, NULL},
    END,
};

static const struct kfield activation_f[] = {
    {"activation", KT_ACT, NULL, NULL},
    END,
};

static const struct kfield leaky_relu_f[] = {
    {"alpha", KT_FLOAT, NULL, NULL},          /* Keras 2 */
    {"negative_slope", KT_FLOAT, "alpha", NULL}, /* Keras 3 */
    END,
};

static const struct kfield elu_f[] = {
    {"alpha", KT_FLOAT, NULL, NULL},
    END,
};

static const struct kfield add_f[] = {END};

static const struct kfield concatenate_f[] = {
    {"axis", KT_INT, NULL, NULL},
    END,
};

static const struct kfield batchnorm_f[] = {
    {"axis", KT_BN_AXIS, NULL, NULL},
    {"momentum", KT_FLOAT, NULL, NULL},
    {"epsilon", KT_FLOAT, NULL, NULL},
    {"center", KT_BOOL, NULL, NULL},
    {"scale", KT_BOOL, NULL, NULL},
    /* nncc's batch normalization starts from Keras' default values only */
    {"beta_initializer", KT_INIT, "-", "zeros"},
    {"gamma_initializer", KT_INIT, "-", "ones"},
    {"moving_mean_initializer", KT_INIT, "-", "zeros"},
    {"moving_variance_initializer", KT_INIT, "-", "ones"},
    {"beta_regularizer", KT_NULL, NULL, NULL},
    {"gamma_regularizer", KT_NULL, NULL, NULL},
    {"beta_constraint", KT_NULL, NULL, NULL},
    {"gamma_constraint", KT_NULL, NULL, NULL},
    {"synchronized", KT_ONEOF, NULL, "[false]"},
    {"renorm", KT_ONEOF, NULL, "[false]"},
    {"renorm_clipping", KT_NULL, NULL, NULL},
    {"renorm_momentum", KT_HARMLESS, NULL, NULL}, /* used only with renorm */
    {"virtual_batch_size", KT_NULL, NULL, NULL},
    {"adjustment", KT_NULL, NULL, NULL},
    {"fused", KT_HARMLESS, NULL, NULL}, /* a kernel choice, same results */
    END,
};

/* Keras classes nncc builds, by layers.def kind; InputLayer and models are
 * handled apart. */
static const struct {
    const char *cls;
    enum layer_kind kind;
    const struct kfield *fields;
} classes[] = {
    {"Dense", LAYER_DENSE, dense_f},
    {"Conv2D", LAYER_CONV2D, conv2d_f},
    {"Convolution2D", LAYER_CONV2D, conv2d_f},
    {"MaxPooling2D", LAYER_MAXPOOL2D, pool_f},
    {"MaxPool2D", LAYER_MAXPOOL2D, pool_f},
    {"AveragePooling2D", LAYER_AVGPOOL2D, pool_f},
    {"AvgPool2D", LAYER_AVGPOOL2D, pool_f},
    {"GlobalAveragePooling2D", LAYER_GLOBAL_AVGPOOL2D, gap_f},
    {"GlobalAvgPool2D", LAYER_GLOBAL_AVGPOOL2D, gap_f},
    {"Flatten", LAYER_FLATTEN, flatten_f},
    {"Reshape", LAYER_RESHAPE, reshape_f},
    {"Dropout", LAYER_DROPOUT, dropout_f},
    {"Activation", LAYER_ACTIVATION, activation_f},
    {"LeakyReLU", LAYER_LEAKY_RELU, leaky_relu_f},
    {"ELU", LAYER_ELU, elu_f},
    {"Add", LAYER_ADD, add_f},
    {"Concatenate", LAYER_CONCATENATE, concatenate_f},
    {"BatchNormalization", LAYER_BATCHNORM, batchnorm_f},
};
#define N_CLASSES ((int)(sizeof classes / sizeof *classes))

static bool is_model_class(const char *cls)
{
    return strcmp(cls, "Sequential") == 0 || strcmp(cls, "Functional") == 0 ||
           strcmp(cls, "Model") == 0;
}

/* ---- Values -------------------------------------------------------------- */

/* Activation names as Keras writes them, to nncc's names. */
static const char *activation_of(struct kc *c, json_t *v, const char *where)
{
    char b[100];
    if (json_is_null(v))
        return "linear";
    const char *s = json_string_value(v);
    if (!s) {
        UNSUP(c, "%s: activation %s is not a built-in activation's name (custom activations "
              "are not supported)", where, jshow(v, b, sizeof b));
        return NULL;
    }
    if (strcmp(s, "silu") == 0) /* Keras 3's name for swish */
        return "swish";
    if (strcmp(s, "hard_sigmoid") == 0 && c->major >= 3) {
        UNSUP(c, "%s: activation \"hard_sigmoid\" of Keras 3 is relu6(x + 3)/6, nncc's is Keras "
              "2's clip(0.2x + 0.5, 0, 1)", where);
        return NULL;
    }
    for (int a = 0; a < NNCC_ACTIVATION_COUNT; a++)
        if (strcmp(nncc_activation_name((enum nncc_activation)a), s) == 0)
            return s;
    UNSUP(c, "%s: activation \"%.40s\" is not supported (nncc has linear, relu, sigmoid, tanh, "
          "softmax, elu, selu, softplus, softsign, hard_sigmoid, swish, gelu, leaky_relu)",
          where, s);
    return NULL;
}

static bool num_is(json_t *v, double want)
{
    return json_is_number(v) && json_number_value(v) == want;
}

/* An initializer ("glorot_uniform" or {"class_name": "GlorotUniform",
 * "config": {...}}) to nncc's name.  Its seed is harmless (the weights are
 * read from the file); any other parameter must be the one nncc uses. */
static const char *initializer_of(struct kc *c, json_t *v, const char *where)
{
    static const struct {
        const char *cls, *snake, *nncc;
    } inits[] = {
        {"GlorotUniform", "glorot_uniform", "glorot_uniform"},
        {"GlorotNormal", "glorot_normal", "glorot_normal"},
        {"HeNormal", "he_normal", "he_normal"},
        {"HeUniform", "he_uniform", "he_uniform"},
        {"LecunNormal", "lecun_normal", "lecun_normal"},
        {"LecunUniform", "lecun_uniform", "lecun_uniform"},
        {"Zeros", "zeros", "zeros"},
        {"Ones", "ones", "ones"},
        {"RandomNormal", "random_normal", "random_normal"},
        {"RandomUniform", "random_uniform", "random_uniform"},
        {"TruncatedNormal", "truncated_normal", "truncated_normal"},
    };
    char b[100];
    const char *cls = json_is_string(v) ? json_string_value(v)
                                        : json_string_value(json_object_get(v, "class_name"));
    json_t *cfg = json_is_object(v) ? json_object_get(v, "config") : NULL;
    if (!cls || (json_is_object(v) && cfg && !json_is_object(cfg))) {
        BAD(c, "%s: initializer %s is neither a name nor {\"class_name\", \"config\"}", where,
            jshow(v, b, sizeof b));
        return NULL;
    }
    int k = -1;
    for (int i = 0; i < (int)(sizeof inits / sizeof *inits) && k < 0; i++)
        if (strcmp(cls, inits[i].cls) == 0 || strcmp(cls, inits[i].snake) == 0)
            k = i;
    if (k < 0) {
        UNSUP(c, "%s: initializer \"%.40s\" is not supported", where, cls);
        return NULL;
    }
    const char *key;
    json_t *p;
    json_object_foreach(cfg, key, p) {
        bool ok;
        if (strcmp(key, "seed") == 0)
            ok = json_is_null(p) || json_is_integer(p); /* harmless: weights come from the file */
        else if (strcmp(key, "input_axes") == 0 || strcmp(key, "output_axes") == 0)
            ok = json_is_null(p);
        else if (strcmp(key, "mean") == 0)
            ok = num_is(p, 0);
        else if (strcmp(key, "stddev") == 0)
            ok = num_is(p, 0.05);
        else if (strcmp(key, "minval") == 0)
            ok = num_is(p, -0.05);
        else if (strcmp(key, "maxval") == 0)
            ok = num_is(p, 0.05);
        else
            ok = false;
        if (!ok) {
            UNSUP(c, "%s: initializer %s: \"%.40s\": %s is not supported (nncc's %s has mean 0, "
                  "stddev 0.05, range ±0.05)", where, cls, key, jshow(p, b, sizeof b),
                  inits[k].nncc);
            return NULL;
        }
    }
    return inits[k].nncc;
}

/* A dtype: "float32", or a policy object named float32, or null. */
static bool dtype_ok(struct kc *c, json_t *v, const char *where)
{
    const char *s = json_string_value(v);
    if (json_is_object(v)) {
        json_t *cfg = json_object_get(v, "config");
        s = json_string_value(json_object_get(cfg, "name"));
    }
    if (json_is_null(v) || (s && strcmp(s, "float32") == 0))
        return true;
    char b[100];
    UNSUP(c, "%s: dtype %s: nncc computes in float32 only", where, jshow(v, b, sizeof b));
    return false;
}

static bool pair_of(struct kc *c, json_t *v, const char *where, json_t **out)
{
    char b[100];
    if (json_is_integer(v)) {
        *out = json_pack("[II]", json_integer_value(v), json_integer_value(v));
        return true;
    }
    if (json_is_array(v) && json_array_size(v) == 2 && json_is_integer(json_array_get(v, 0)) &&
        json_is_integer(json_array_get(v, 1))) {
        *out = json_deep_copy(v);
        return true;
    }
    BAD(c, "%s must be two integers, not %s", where, jshow(v, b, sizeof b));
    return false;
}

/* Translates one field; *out is the nncc value (NULL: nothing to set). */
static bool field_value(struct kc *c, const struct kfield *f, json_t *v, const char *where,
                        json_t **out)
{
    char b[100];
    *out = NULL;
    switch (f->type) {
    case KT_INT:
        if (!json_is_integer(v))
            return BAD(c, "%s must be an integer, not %s", where, jshow(v, b, sizeof b));
        *out = json_copy(v);
        return true;
    case KT_FLOAT:
        if (!json_is_number(v))
            return !BAD(c, "%s must be a number, not %s", where, jshow(v, b, sizeof b));
        *out = json_real(json_number_value(v));
        return true;
    case KT_BOOL:
        if (!json_is_boolean(v))
            return !BAD(c, "%s must be true or false, not %s", where, jshow(v, b, sizeof b));
        *out = json_copy(v);
        return true;
    case KT_PAIR_NULL:
        if (json_is_null(v))
            return true;
        /* fall through */
    case KT_PAIR:
        return pair_of(c, v, where, out);
    case KT_ACT: {
        const char *a = activation_of(c, v, where);
        return a ? (*out = json_string(a)) != NULL : false;
    }
    case KT_INIT: {
        const char *i = initializer_of(c, v, where);
        if (!i)
            return false;
        if (f->vals && strcmp(i, f->vals) != 0)
            return !UNSUP(c, "%s: initializer %s is not supported (nncc uses %s)", where, i,
                         f->vals);
        if (!f->vals)
            *out = json_string(i);
        return true;
    }
    case KT_PAD: {
        const char *s = json_string_value(v);
        if (!s || (strcmp(s, "valid") != 0 && strcmp(s, "same") != 0))
            return !UNSUP(c, "%s: padding %s is not supported (valid or same)", where,
                         jshow(v, b, sizeof b));
        *out = json_string(s);
        return true;
    }
    case KT_SHAPE:
        if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) >= NNCC_MAX_RANK)
            return !BAD(c, "%s must be a list of 1 to %d sizes, not %s", where, NNCC_MAX_RANK - 1,
                       jshow(v, b, sizeof b));
        for (size_t i = 0; i < json_array_size(v); i++)
            if (!json_is_integer(json_array_get(v, i)))
                return !BAD(c, "%s must be a list of integers, not %s", where,
                           jshow(v, b, sizeof b));
        *out = json_deep_copy(v);
        return true;
    case KT_SEED:
        if (json_is_null(v))
            return true;
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return !BAD(c, "%s must be null or a non-negative integer, not %s", where,
                       jshow(v, b, sizeof b));
        *out = json_copy(v);
        return true;
    case KT_BN_AXIS:
        if (json_is_array(v) && json_array_size(v) == 1)
            v = json_array_get(v, 0);
        if (!json_is_integer(v))
            return !UNSUP(c, "%s %s: nncc normalizes over one axis", where,
                         jshow(v, b, sizeof b));
        *out = json_copy(v);
        return true;
    case KT_NULL:
        if (!json_is_null(v))
            return !UNSUP(c, "%s is %s: nncc has no such feature (only null is supported)", where,
                         jshow(v, b, sizeof b));
        return true;
    case KT_ONEOF: {
        json_t *vals = json_loads(f->vals, 0, NULL);
        bool ok = false;
        for (size_t i = 0; i < json_array_size(vals) && !ok; i++)
            ok = json_equal(json_array_get(vals, i), v);
        json_decref(vals);
        if (!ok)
            return !UNSUP(c, "%s is %s: nncc supports only %s", where, jshow(v, b, sizeof b),
                         f->vals);
        return true;
    }
    case KT_HARMLESS:
        return true;
    }
    return false;
}

/* ---- Layers -------------------------------------------------------------- */

/* The input shape a layer's config may carry (a Sequential's first layer,
 * Keras 2): "batch_input_shape" / "batch_shape", as nncc's shape without
 * the batch.  *batch gets the fixed batch size or 0. */
static bool batch_shape_of(struct kc *c, json_t *v, const char *where, json_t **shape,
                           json_int_t *batch)
{
    char b[100];
    if (!json_is_array(v) || json_array_size(v) < 2 || json_array_size(v) > NNCC_MAX_RANK)
        return !BAD(c, "%s must be a list of 2 to %d sizes (the batch first), not %s", where,
                   NNCC_MAX_RANK, jshow(v, b, sizeof b));
    json_t *b0 = json_array_get(v, 0);
    if (!json_is_null(b0) && !(json_is_integer(b0) && json_integer_value(b0) > 0))
        return !BAD(c, "%s: the batch size %s must be null or positive", where,
                   jshow(b0, b, sizeof b));
    *batch = json_is_null(b0) ? 0 : json_integer_value(b0);
    *shape = json_array();
    for (size_t i = 1; i < json_array_size(v); i++) {
        json_t *d = json_array_get(v, i);
        if (json_is_null(d)) {
            json_decref(*shape);
            return !UNSUP(c, "%s %s: dimension %zu is dynamic (None); nncc compiles for fixed "
                         "sizes", where, jshow(v, b, sizeof b), i);
        }
        if (!json_is_integer(d) || json_integer_value(d) < 1) {
            json_decref(*shape);
            return !BAD(c, "%s %s: dimension %zu is not a positive integer", where,
                       jshow(v, b, sizeof b), i);
        }
        json_array_append(*shape, d);
    }
    return true;
}

/* Checks the fields every layer has (name, trainable, dtype) and the input
 * shape keys; the rest go to the class's table.  Returns the nncc config. */
static json_t *layer_config(struct kc *c, const char *cls, const struct kfield *fields,
                            json_t *cfg, const char *name, json_t **input_shape,
                            json_int_t *batch)
{
    char where[NNCC_MAX_NAME + 160];
    json_t *out = json_object();
    const char *key;
    json_t *v;
    *input_shape = NULL;
    json_object_foreach(cfg, key, v) {
        snprintf(where, sizeof where, "layer \"%.*s\" (%s) field \"%.40s\"", NNCC_MAX_NAME, name,
                 cls, key);
        if (strcmp(key, "name") == 0)
            continue;
        if (strcmp(key, "trainable") == 0) {
            if (!json_is_true(v)) {
                UNSUP(c, "%s: a frozen layer (trainable false) is not supported", where);
                break;
            }
            continue;
        }
        if (strcmp(key, "dtype") == 0) {
            if (!dtype_ok(c, v, where))
                break;
            continue;
        }
        if (strcmp(key, "batch_input_shape") == 0 || strcmp(key, "batch_shape") == 0) {
            json_decref(*input_shape);
            if (!batch_shape_of(c, v, where, input_shape, batch))
                break;
            continue;
        }
        if (strcmp(key, "batch_size") == 0 && json_is_null(v))
            continue;
        const struct kfield *f = fields;
        while (f->key && strcmp(f->key, key) != 0)
            f++;
        if (!f->key) {
            char b[100];
            UNSUP(c, "%s = %s is not supported by nncc's %s", where, jshow(v, b, sizeof b), cls);
            break;
        }
        json_t *nv;
        if (!field_value(c, f, v, where, &nv))
            break;
        if (nv && json_object_set_new(out, f->to ? f->to : f->key, nv))
            BAD(c, "out of memory");
    }
    if (c->st) {
        json_decref(out);
        json_decref(*input_shape);
        *input_shape = NULL;
        return NULL;
    }
    return out;
}

static bool add_loc(struct kc *c, const char *layer, const char *h5_group, const char *path)
{
    if (c->n_locs == c->cap_locs) {
        int cap = c->cap_locs ? 2 * c->cap_locs : 16;
        struct keras_loc *n = realloc(c->locs, sizeof *n * (size_t)cap);
        if (!n)
            return BAD(c, "out of memory");
        c->locs = n;
        c->cap_locs = cap;
    }
    struct keras_loc *l = &c->locs[c->n_locs];
    l->layer = strdup(layer);
    l->h5_group = strdup(h5_group);
    l->path = strdup(path);
    if (!l->layer || !l->h5_group || !l->path) {
        free(l->layer), free(l->h5_group), free(l->path);
        return !BAD(c, "out of memory");
    }
    c->n_locs++;
    return true;
}

/* Keras' names of a container's members: the class's snake_case, then
 * _1, _2, … for later members of the same class. */
struct member_names {
    char base[64][48];
    int count[64];
    int n;
};

static void member_name(struct member_names *mn, const char *base, char *out, size_t size)
{
    int i = 0;
    while (i < mn->n && strcmp(mn->base[i], base) != 0)
        i++;
    if (i == mn->n && mn->n < 64) {
        snprintf(mn->base[mn->n], sizeof mn->base[0], "%s", base);
        mn->count[mn->n++] = 0;
        snprintf(out, size, "%s", base);
        return;
    }
    if (i == mn->n) { /* more than 64 classes in one container: not Keras' */
        snprintf(out, size, "%s", base);
        return;
    }
    snprintf(out, size, "%s_%d", base, ++mn->count[i]);
}

static const char *snake_of(const char *cls, enum layer_kind kind, bool model)
{
    if (model)
        return strcmp(cls, "Sequential") == 0 ? "sequential" : "functional";
    if (strcmp(cls, "InputLayer") == 0)
        return "input_layer";
    return layer_kind(kind)->base;
}

/* ---- Models -------------------------------------------------------------- */

/* A Keras tensor reference (layer, node, tensor) resolved to an output
 * tensor, through the names of the model being translated. */
struct scope {
    const char *cls;  /* "Functional" or "Sequential" */
    const char *name; /* the model's name */
    /* Keras names that are not nncc layers: the inputs of a nested model
     * (bound to the outer call's tensors) and nested models (their outputs) */
    struct alias {
        const char *keras;
        int node; /* the node index references use (see emit_nested) */
        int tensor;
        struct ref r;
    } *alias;
    int n_alias, cap_alias;
    const char *top_group; /* the top-level layer whose .h5 group holds these layers */
    const char *path;      /* the container's folder in model.weights.h5 */
};

static bool alias_add(struct kc *c, struct scope *s, const char *keras, int node, int tensor,
                      struct ref r)
{
    if (s->n_alias == s->cap_alias) {
        int cap = s->cap_alias ? 2 * s->cap_alias : 8;
        struct alias *n = realloc(s->alias, sizeof *n * (size_t)cap);
        if (!n)
            return !BAD(c, "out of memory");
        s->alias = n;
        s->cap_alias = cap;
    }
    s->alias[s->n_alias++] = (struct alias){keras, node, tensor, r};
    return true;
}

static bool ref_set(struct kc *c, struct ref *r, const char *name, int node)
{
    if (strlen(name) > NNCC_MAX_NAME)
        return !BAD(c, "a layer name is longer than %d bytes", NNCC_MAX_NAME);
    snprintf(r->name, sizeof r->name, "%s", name);
    r->node = node;
    return true;
}

/* A call's keyword arguments: none, or a null mask, or training.  A null
 * training is the default; Keras 3 records the value the symbolic call
 * saw (false), but its Functional.call overrides a node's training with
 * the call's (fit: true, predict: false), so there it is harmless too.  In
 * tf-keras an explicit training in a node wins (always-on dropout), which
 * nncc does not do: refused. */
static bool kwargs_harmless(const struct kc *c, json_t *kw)
{
    if (!json_is_object(kw))
        return false;
    const char *k;
    json_t *v;
    json_object_foreach(kw, k, v) {
        if (strcmp(k, "mask") == 0 && json_is_null(v))
            continue;
        if (strcmp(k, "training") == 0 && (json_is_null(v) || (c->major >= 3 && json_is_boolean(v))))
            continue;
        return false;
    }
    return true;
}

/* Resolves [layer, node, tensor] (Keras 2 lists, with a 4th kwargs element
 * in inbound nodes) or a Keras 3 "__keras_tensor__" object. */
static bool resolve(struct kc *c, struct scope *s, json_t *t, const char *who, struct ref *r)
{
    char b[100];
    json_t *hist = t;
    if (json_is_object(t)) {
        const char *tc = json_string_value(json_object_get(t, "class_name"));
        if (!tc || strcmp(tc, "__keras_tensor__") != 0)
            return !UNSUP(c, "%s: argument %s is not a tensor (constant arguments are not "
                         "supported)", who, jshow(t, b, sizeof b));
        hist = json_object_get(json_object_get(t, "config"), "keras_history");
    }
    if (!json_is_array(hist) || json_array_size(hist) < 3 || json_array_size(hist) > 4 ||
        !json_is_string(json_array_get(hist, 0)) || !json_is_integer(json_array_get(hist, 1)) ||
        !json_is_integer(json_array_get(hist, 2)))
        return !BAD(c, "%s: malformed tensor reference %s", who, jshow(t, b, sizeof b));
    json_t *kw = json_array_get(hist, 3);
    if (kw && !kwargs_harmless(c, kw))
        return !UNSUP(c, "%s: call keyword arguments %s are not supported", who,
                     jshow(kw, b, sizeof b));
    const char *name = json_string_value(json_array_get(hist, 0));
    json_int_t node = json_integer_value(json_array_get(hist, 1));
    json_int_t tensor = json_integer_value(json_array_get(hist, 2));
    if (node < 0 || node > (1 << 20) || tensor < 0 || tensor > 64)
        return !BAD(c, "%s: malformed tensor reference %s", who, jshow(t, b, sizeof b));
    for (int i = 0; i < s->n_alias; i++)
        if (strcmp(s->alias[i].keras, name) == 0 && s->alias[i].tensor == (int)tensor) {
            if (node != s->alias[i].node)
                return !UNSUP(c, "%s: node %lld of \"%.64s\": a nested model called more than "
                             "once is not supported", who, (long long)node, name);
            *r = s->alias[i].r;
            return true;
        }
    if (tensor != 0)
        return !BAD(c, "%s: tensor %lld of layer \"%.64s\" (nncc's layers have one output)", who,
                   (long long)tensor, name);
    return ref_set(c, r, name, (int)node);
}

static json_t *ref_json(const struct ref *r) { return json_pack("[si]", r->name, r->node); }

static bool translate_model(struct kc *c, json_t *entry, const char *name, const char *top_group,
                            const char *path, const struct ref *bound, int n_bound,
                            struct ref *outs, int *n_outs, int max_outs);

/* The arguments of one inbound node: Keras 2 [[l, n, t, kw], ...], Keras 3
 * {"args": [tensor or [tensors]], "kwargs": {}}. */
static json_t *call_inputs(struct kc *c, struct scope *s, json_t *node, const char *who)
{
    char b[100];
    json_t *args = node;
    if (json_is_object(node)) {
        json_t *kw = json_object_get(node, "kwargs");
        if (kw && !kwargs_harmless(c, kw))
            return UNSUP(c, "%s: call keyword arguments %s are not supported", who,
                         jshow(kw, b, sizeof b)), NULL;
        args = json_object_get(node, "args");
        if (json_is_array(args) && json_array_size(args) == 1 &&
            json_is_array(json_array_get(args, 0)))
            args = json_array_get(args, 0); /* a merge layer's list of tensors */
    }
    if (!json_is_array(args) || json_array_size(args) < 1 || json_array_size(args) > 64)
        return BAD(c, "%s: malformed inbound node %s", who, jshow(node, b, sizeof b)), NULL;
    json_t *ins = json_array();
    for (size_t q = 0; q < json_array_size(args); q++) {
        struct ref r;
        if (!resolve(c, s, json_array_get(args, q), who, &r)) {
            json_decref(ins);
            return NULL;
        }
        json_array_append_new(ins, ref_json(&r));
    }
    return ins;
}

static enum layer_kind class_kind(const char *cls, const struct kfield **fields)
{
    for (int i = 0; i < N_CLASSES; i++)
        if (strcmp(classes[i].cls, cls) == 0) {
            *fields = classes[i].fields;
            return classes[i].kind;
        }
    return LAYER_KIND_COUNT;
}

/* A layer entry's name: "name" beside the config (Keras 2 functional) or
 * the config's. */
static const char *entry_name(struct kc *c, json_t *j, size_t i)
{
    json_t *cfg = json_object_get(j, "config");
    const char *n = json_string_value(json_object_get(j, "name"));
    const char *cn = json_string_value(json_object_get(cfg, "name"));
    if (!n)
        n = cn;
    if (!n || !*n || strlen(n) > NNCC_MAX_NAME) {
        BAD(c, "layer %zu has no name (or one longer than %d bytes)", i, NNCC_MAX_NAME);
        return NULL;
    }
    if (cn && strcmp(cn, n) != 0) {
        BAD(c, "layer %zu is named \"%.64s\" and \"%.64s\"", i, n, cn);
        return NULL;
    }
    return n;
}

/* One ordinary layer: its nncc entry with the given calls. */
static bool emit_layer(struct kc *c, json_t *j, const char *name, const char *cls,
                       enum layer_kind kind, const struct kfield *fields, json_t *calls,
                       struct scope *s, const char *member, json_t **input_shape,
                       json_int_t *batch)
{
    json_t *cfg = json_object_get(j, "config");
    if (!json_is_object(cfg)) {
        json_decref(calls);
        return BAD(c, "layer \"%.64s\" (%s) has no config object", name, cls);
    }
    json_t *nc = layer_config(c, cls, fields, cfg, name, input_shape, batch);
    if (!nc) {
        json_decref(calls);
        return false;
    }
    json_t *e = json_pack("{s:s,s:s,s:o}", "class", layer_kind(kind)->cls, "name", name,
                          "config", nc);
    if (calls)
        json_object_set_new(e, "calls", calls);
    json_array_append_new(c->layers, e);
    if (kind == LAYER_DENSE || kind == LAYER_CONV2D || kind == LAYER_BATCHNORM) {
        char p[1024];
        snprintf(p, sizeof p, "%s/layers/%s", s->path, member);
        if (!add_loc(c, name, s->top_group ? s->top_group : name, p))
            return false;
    }
    return true;
}

/* An InputLayer's entry: {"shape", "batch_size"} from its config. */
static bool emit_input(struct kc *c, json_t *j, const char *name)
{
    json_t *cfg = json_object_get(j, "config");
    json_t *shape = NULL;
    json_int_t batch = 0;
    const char *key;
    json_t *v;
    char where[NNCC_MAX_NAME + 100];
    if (!json_is_object(cfg))
        return !BAD(c, "input \"%.64s\" has no config object", name);
    json_object_foreach(cfg, key, v) {
        snprintf(where, sizeof where, "input \"%.*s\" (InputLayer) field \"%.40s\"",
                 NNCC_MAX_NAME, name, key);
        bool ok = true;
        if (strcmp(key, "batch_input_shape") == 0 || strcmp(key, "batch_shape") == 0) {
            json_decref(shape);
            ok = batch_shape_of(c, v, where, &shape, &batch);
        } else if (strcmp(key, "dtype") == 0) {
            ok = dtype_ok(c, v, where);
        } else if (strcmp(key, "sparse") == 0 || strcmp(key, "ragged") == 0 ||
                   strcmp(key, "optional") == 0) {
            if (!json_is_false(v) && !json_is_null(v))
                ok = !UNSUP(c, "%s: %s inputs are not supported", where, key);
        } else if (strcmp(key, "name") == 0 || (strcmp(key, "batch_size") == 0 && json_is_null(v))) {
        } else {
            char b[100];
            ok = !UNSUP(c, "%s = %s is not supported", where, jshow(v, b, sizeof b));
        }
        if (!ok) {
            json_decref(shape);
            return false;
        }
    }
    if (!shape)
        return !BAD(c, "input \"%.64s\" has no batch_shape", name);
    json_t *e = json_pack("{s:s,s:s,s:{s:o,s:o}}", "class", "InputLayer", "name", name, "config",
                          "shape", shape, "batch_size",
                          batch ? json_integer(batch) : json_null());
    json_array_append_new(c->layers, e);
    return true;
}

/* A nested model called on `ins` (already resolved): flattened. */
static bool emit_nested(struct kc *c, struct scope *s, json_t *j, const char *name,
                        const char *member, json_t *ins_json)
{
    struct ref bound[64];
    int nb = (int)json_array_size(ins_json);
    for (int q = 0; q < nb; q++) {
        json_t *rj = json_array_get(ins_json, (size_t)q);
        ref_set(c, &bound[q], json_string_value(json_array_get(rj, 0)),
                (int)json_integer_value(json_array_get(rj, 1)));
    }
    char p[1024];
    snprintf(p, sizeof p, "%s/layers/%s", s->path, member);
    struct ref outs[64];
    int n_outs = 0;
    c->flattened = true;
    if (c->depth >= KERAS_MAX_NESTING)
        return !UNSUP(c, "model \"%.64s\" is nested more than %d deep", name, KERAS_MAX_NESTING);
    if (!translate_model(c, j, name, s->top_group ? s->top_group : name, p, bound, nb, outs,
                         &n_outs, 64))
        return false;
    /* tf-keras numbers a nested model's nodes from 1 when the model has an
     * InputLayer of its own: node 0 is that input's (not saved).  Keras 3
     * numbers its calls from 0. */
    json_t *first = json_array_get(json_object_get(json_object_get(j, "config"), "layers"), 0);
    const char *fc = json_string_value(json_object_get(first, "class_name"));
    int node = c->major < 3 && fc && strcmp(fc, "InputLayer") == 0 ? 1 : 0;
    for (int t = 0; t < n_outs; t++)
        if (!alias_add(c, s, name, node, t, outs[t]))
            return false;
    return true;
}

/* One layer entry of a model's list: its name, class, kind (LAYER_KIND_COUNT
 * for InputLayer and models) and Keras' member name in the container.
 * False with the error set when the entry is malformed or its class is one
 * nncc lacks. */
struct entry {
    const char *name, *cls;
    enum layer_kind kind;
    const struct kfield *fields;
    bool model, input;
    char member[80];
};

static bool read_entry(struct kc *c, struct scope *s, struct member_names *mn, json_t *j, size_t i,
                       struct entry *e)
{
    e->name = json_is_object(j) ? entry_name(c, j, i) : NULL;
    e->cls = json_string_value(json_object_get(j, "class_name"));
    if (!e->name || !e->cls)
        return !BAD(c, "model \"%.64s\": layer %zu has no class_name or name", s->name, i);
    e->fields = NULL;
    e->kind = class_kind(e->cls, &e->fields);
    e->model = is_model_class(e->cls);
    e->input = strcmp(e->cls, "InputLayer") == 0;
    if (e->kind == LAYER_KIND_COUNT && !e->model && !e->input)
        return !UNSUP(c, "layer \"%.64s\": class %.64s is not supported", e->name, e->cls);
    member_name(mn, snake_of(e->cls, e->kind, e->model), e->member, sizeof e->member);
    return true;
}

static bool translate_functional(struct kc *c, struct scope *s, json_t *cfg,
                                 const struct ref *bound, int n_bound, struct ref *outs,
                                 int *n_outs, int max_outs)
{
    json_t *layers = json_object_get(cfg, "layers");
    if (!json_is_array(layers) || json_array_size(layers) < 1 || json_array_size(layers) > 100000)
        return !BAD(c, "model \"%.64s\" has no list of layers", s->name);
    /* input_layers / output_layers: a list of [l, n, t], or one [l, n, t] */
    json_t *io[2] = {json_object_get(cfg, "input_layers"), json_object_get(cfg, "output_layers")};
    json_t *single[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        if (json_is_array(io[k]) && json_is_string(json_array_get(io[k], 0))) {
            single[k] = json_pack("[O]", io[k]);
            io[k] = single[k];
        }
        if (!json_is_array(io[k]) || json_array_size(io[k]) < 1 || json_array_size(io[k]) > 64) {
            json_decref(single[0]);
            json_decref(single[1]);
            return !BAD(c, "model \"%.64s\" has no list of %s", s->name,
                       k ? "output_layers" : "input_layers");
        }
    }
    bool ok = true;
    if (bound && (int)json_array_size(io[0]) != n_bound)
        ok = !UNSUP(c, "nested model \"%.64s\" takes %zu inputs but is called with %d", s->name,
                   json_array_size(io[0]), n_bound);
    /* a nested model's inputs are the outer call's tensors */
    for (size_t i = 0; ok && bound && i < json_array_size(io[0]); i++) {
        json_t *h = json_array_get(io[0], i);
        const char *in = json_string_value(json_array_get(h, 0));
        if (!in)
            ok = !BAD(c, "model \"%.64s\": malformed input_layers", s->name);
        else
            ok = alias_add(c, s, in, 0, 0, bound[i]);
    }
    struct member_names mn = {.n = 0};
    for (size_t i = 0; ok && i < json_array_size(layers); i++) {
        json_t *j = json_array_get(layers, i);
        struct entry e;
        if (!(ok = read_entry(c, s, &mn, j, i, &e)))
            break;
        const char *name = e.name, *cls = e.cls, *member = e.member;
        if (e.input) {
            if (!bound)
                ok = emit_input(c, j, name);
            continue;
        }
        json_t *nodes = json_object_get(j, "inbound_nodes");
        if (!json_is_array(nodes) || json_array_size(nodes) > 4096) {
            ok = !BAD(c, "layer \"%.64s\" (%s) has no list of inbound_nodes", name, cls);
            break;
        }
        char who[NNCC_MAX_NAME + 80];
        snprintf(who, sizeof who, "layer \"%.*s\" (%s)", NNCC_MAX_NAME, name, cls);
        if (e.model) {
            if (json_array_size(nodes) != 1) {
                ok = !UNSUP(c, "%s: a nested model called %zu times is not supported (once is)",
                           who, json_array_size(nodes));
                break;
            }
            json_t *ins = call_inputs(c, s, json_array_get(nodes, 0), who);
            ok = ins && emit_nested(c, s, j, name, member, ins);
            json_decref(ins);
            continue;
        }
        json_t *calls = json_array();
        for (size_t k = 0; ok && k < json_array_size(nodes); k++) {
            json_t *ins = call_inputs(c, s, json_array_get(nodes, k), who);
            if (!ins)
                ok = false;
            else
                json_array_append_new(calls, json_pack("{s:i,s:o}", "node", (int)k, "inputs", ins));
        }
        if (!ok) {
            json_decref(calls);
            break;
        }
        json_t *shape = NULL;
        json_int_t batch;
        ok = emit_layer(c, j, name, cls, e.kind, e.fields, calls, s, member, &shape, &batch);
        json_decref(shape); /* functional layers take shapes from their inputs */
    }
    for (size_t i = 0; ok && i < json_array_size(io[1]); i++) {
        if ((int)i >= max_outs) {
            ok = !UNSUP(c, "model \"%.64s\" has more than %d outputs", s->name, max_outs);
            break;
        }
        json_t *h = json_array_get(io[1], i);
        char who[NNCC_MAX_NAME + 60];
        snprintf(who, sizeof who, "model \"%.*s\" output %zu", NNCC_MAX_NAME, s->name, i);
        ok = resolve(c, s, h, who, &outs[i]);
        *n_outs = (int)i + 1;
    }
    if (ok && !bound) { /* the top level: nncc's inputs and outputs */
        json_t *ins = json_array(), *os = json_array();
        for (size_t i = 0; ok && i < json_array_size(io[0]); i++) {
            struct ref r;
            char who[NNCC_MAX_NAME + 60];
            snprintf(who, sizeof who, "model \"%.*s\" input %zu", NNCC_MAX_NAME, s->name, i);
            ok = resolve(c, s, json_array_get(io[0], i), who, &r);
            if (ok)
                json_array_append_new(ins, ref_json(&r));
        }
        for (int i = 0; i < *n_outs; i++)
            json_array_append_new(os, ref_json(&outs[i]));
        json_t *root = json_object();
        json_object_set_new(root, "inputs", ins);
        json_object_set_new(root, "outputs", os);
        /* handed to the caller through the layers array's owner */
        json_array_append_new(c->layers, json_pack("{s:o}", "__io__", root));
    }
    json_decref(single[0]);
    json_decref(single[1]);
    return ok && !c->st;
}

static bool translate_sequential(struct kc *c, struct scope *s, json_t *cfg,
                                 const struct ref *bound, int n_bound, struct ref *outs,
                                 int *n_outs)
{
    json_t *layers = json_is_array(cfg) ? cfg : json_object_get(cfg, "layers");
    if (!json_is_array(layers) || json_array_size(layers) < 1 || json_array_size(layers) > 100000)
        return !BAD(c, "model \"%.64s\" has no list of layers", s->name);
    if (bound && n_bound != 1)
        return !UNSUP(c, "nested Sequential \"%.64s\" called with %d inputs", s->name, n_bound);
    struct ref prev;
    bool have_prev = bound != NULL;
    if (bound)
        prev = bound[0];
    struct member_names mn = {.n = 0};
    bool ok = true;
    for (size_t i = 0; ok && i < json_array_size(layers); i++) {
        json_t *j = json_array_get(layers, i);
        struct entry e;
        if (!(ok = read_entry(c, s, &mn, j, i, &e)))
            break;
        const char *name = e.name, *cls = e.cls, *member = e.member;
        if (e.input) {
            if (i != 0)
                ok = !BAD(c, "Sequential \"%.64s\": an InputLayer after the first layer", s->name);
            else if (!bound) {
                ok = emit_input(c, j, name) && ref_set(c, &prev, name, 0);
                have_prev = true;
            }
            continue;
        }
        if (e.model) {
            if (!have_prev) {
                ok = BAD(c, "Sequential \"%.64s\" starts with a model and has no input shape",
                         s->name);
                break;
            }
            json_t *ins = json_pack("[o]", ref_json(&prev));
            ok = emit_nested(c, s, j, name, member, ins);
            json_decref(ins);
            if (ok) {
                struct alias *a = &s->alias[s->n_alias - 1];
                if (strcmp(a->keras, name) != 0 || a->tensor != 0)
                    ok = !UNSUP(c, "nested model \"%.64s\" in a Sequential has no single output",
                               name);
                else
                    prev = a->r;
            }
            continue;
        }
        json_t *shape = NULL;
        json_int_t batch = 0;
        json_t *calls = json_array();
        size_t at = json_array_size(c->layers);
        if (!emit_layer(c, j, name, cls, e.kind, e.fields, calls, s, member, &shape, &batch)) {
            ok = false;
            break;
        }
        if (!have_prev) { /* Keras 2: the first layer carries batch_input_shape */
            if (!shape) {
                ok = !BAD(c, "Sequential \"%.64s\" has no input shape (it was never built)",
                         s->name);
                break;
            }
            char in_name[NNCC_MAX_NAME + 8];
            snprintf(in_name, sizeof in_name, "%.*s_input", NNCC_MAX_NAME - 6, name);
            json_t *e = json_pack("{s:s,s:s,s:{s:O,s:o}}", "class", "InputLayer", "name", in_name,
                                  "config", "shape", shape, "batch_size",
                                  batch ? json_integer(batch) : json_null());
            json_array_insert_new(c->layers, at, e);
            ok = ref_set(c, &prev, in_name, 0);
            have_prev = true;
        }
        json_decref(shape);
        json_array_append_new(calls, json_pack("{s:i,s:[o]}", "node", 0, "inputs",
                                               ref_json(&prev)));
        ok = ok && ref_set(c, &prev, name, 0);
    }
    if (ok && !have_prev)
        ok = !BAD(c, "Sequential \"%.64s\" has no layers with an input shape", s->name);
    if (ok) {
        outs[0] = prev;
        *n_outs = 1;
        if (!bound) {
            json_t *root = json_object();
            json_t *in0 = NULL;
            for (size_t i = 0; i < json_array_size(c->layers) && !in0; i++) {
                json_t *e = json_array_get(c->layers, i);
                if (strcmp(json_string_value(json_object_get(e, "class")), "InputLayer") == 0)
                    in0 = json_pack("[[si]]", json_string_value(json_object_get(e, "name")), 0);
            }
            json_object_set_new(root, "inputs", in0);
            json_object_set_new(root, "outputs", json_pack("[o]", ref_json(&prev)));
            json_array_append_new(c->layers, json_pack("{s:o}", "__io__", root));
        }
    }
    return ok && !c->st;
}

static bool translate_model(struct kc *c, json_t *entry, const char *name, const char *top_group,
                            const char *path, const struct ref *bound, int n_bound,
                            struct ref *outs, int *n_outs, int max_outs)
{
    const char *cls = json_string_value(json_object_get(entry, "class_name"));
    json_t *cfg = json_object_get(entry, "config");
    if (!cls || !is_model_class(cls))
        return !UNSUP(c, "the model's class %.64s is not Sequential or Functional",
                     cls ? cls : "(none)");
    if (!json_is_object(cfg) && !(strcmp(cls, "Sequential") == 0 && json_is_array(cfg)))
        return !BAD(c, "model \"%.64s\" has no config", name ? name : "?");
    const char *mname = json_string_value(json_object_get(cfg, "name"));
    if (!mname)
        mname = name ? name : "model";
    json_t *tr = json_object_get(cfg, "trainable");
    if (tr && !json_is_true(tr))
        return !UNSUP(c, "model \"%.64s\": a frozen model (trainable false) is not supported",
                     mname);
    struct scope s = {.cls = cls, .name = mname, .top_group = top_group, .path = path};
    c->depth++;
    bool ok = strcmp(cls, "Sequential") == 0
                  ? translate_sequential(c, &s, cfg, bound, n_bound, outs, n_outs)
                  : translate_functional(c, &s, cfg, bound, n_bound, outs, n_outs, max_outs);
    free(s.alias);
    c->depth--;
    return ok;
}

/* nncc's JSON for the translated layers: Functional, or a Sequential when
 * the Keras model was a Sequential with nothing flattened and an open batch. */
static json_t *nncc_root(struct kc *c, const char *cls, const char *mname)
{
    json_t *io = NULL;
    size_t n = json_array_size(c->layers);
    if (n && json_object_get(json_array_get(c->layers, n - 1), "__io__")) {
        io = json_incref(json_object_get(json_array_get(c->layers, n - 1), "__io__"));
        json_array_remove(c->layers, n - 1);
    }
    if (!io) {
        BAD(c, "the model has no inputs and outputs");
        return NULL;
    }
    json_t *root = json_object();
    json_t *first = json_array_get(c->layers, 0);
    json_t *in_cfg = json_object_get(first, "config");
    bool seq = strcmp(cls, "Sequential") == 0 && !c->flattened &&
               json_is_null(json_object_get(in_cfg, "batch_size"));
    json_object_set_new(root, "name", json_string(mname));
    if (seq) {
        json_t *layers = json_array();
        for (size_t i = 1; i < json_array_size(c->layers); i++) {
            json_t *e = json_deep_copy(json_array_get(c->layers, i));
            json_object_del(e, "calls");
            if (i == 1)
                json_object_set(e, "input_shape", json_object_get(in_cfg, "shape"));
            json_array_append_new(layers, e);
        }
        json_object_set_new(root, "class", json_string("Sequential"));
        json_object_set_new(root, "layers", layers);
    } else {
        json_object_set_new(root, "class", json_string("Functional"));
        json_object_set(root, "layers", c->layers);
        json_object_set(root, "inputs", json_object_get(io, "inputs"));
        json_object_set(root, "outputs", json_object_get(io, "outputs"));
    }
    json_decref(io);
    return root;
}

enum nncc_status keras_model_from_config(json_t *config, int keras_major, const char *label,
                                         struct keras_arch *a)
{
    memset(a, 0, sizeof *a);
    struct kc c = {.label = label, .major = keras_major, .layers = json_array()};
    struct ref outs[64];
    int n_outs = 0;
    const char *cls = json_string_value(json_object_get(config, "class_name"));
    json_t *cfg = json_object_get(config, "config");
    const char *mname = json_string_value(json_object_get(cfg, "name"));
    if (!json_is_object(config) || !cls)
        BAD(&c, "the model config has no class_name");
    else if (!c.layers)
        BAD(&c, "out of memory");
    else if (translate_model(&c, config, mname, NULL, "", NULL, 0, outs, &n_outs, 64)) {
        json_t *root = nncc_root(&c, cls, mname ? mname : "model");
        char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
        json_decref(root);
        if (root && !text)
            BAD(&c, "out of memory");
        if (text) {
            a->m = model_from_config(text, strlen(text), label);
            free(text);
            if (!a->m)
                c.st = nncc_last_status();
        }
    }
    json_decref(c.layers);
    /* locations' paths start with "/layers/..." from the empty top path */
    for (int i = 0; i < c.n_locs; i++)
        if (c.locs[i].path[0] == '/')
            memmove(c.locs[i].path, c.locs[i].path + 1, strlen(c.locs[i].path));
    a->locs = c.locs;
    a->n_locs = c.n_locs;
    if (c.st) {
        keras_arch_free(a);
        if (a->m)
            nncc_model_free(a->m);
        a->m = NULL;
        return c.st;
    }
    return NNCC_OK;
}

void keras_arch_free(struct keras_arch *a)
{
    for (int i = 0; i < a->n_locs; i++) {
        free(a->locs[i].layer);
        free(a->locs[i].h5_group);
        free(a->locs[i].path);
    }
    free(a->locs);
    a->locs = NULL;
    a->n_locs = 0;
}

const char *keras_weight_short(const nncc_tensor *w)
{
    const char *s = strrchr(w->name, '/');
    return s ? s + 1 : w->name;
}
