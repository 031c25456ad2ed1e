/*
 * core_layers.c — Dense, Activation, Flatten, Reshape and Dropout.
 *
 * Each constructor checks its options as Keras does at construction and
 * keeps a copy; each lower function builds the weights on the first call
 * (shapes from that call's input) and appends the layer's IR nodes:
 *   Dense       matmul (+ bias_add) (+ activation): x (…, in) → (…, units)
 *   Activation  activation / softmax
 *   Flatten     reshape to (N, ∏dims), row-major (NHWC: channels fastest)
 *   Reshape     reshape to (N, target…), one -1 inferred
 *   Dropout     dropout (identity outside training)
 *   LeakyReLU   activation_alpha [leaky_relu], alpha the slope below 0
 *   ELU         activation_alpha [elu], alpha the scale of eˣ − 1
 */
#include <math.h>
#include <string.h>
#include "frontend.h"

#define WHO(kind, o) layer_who((kind), (o).name, who, sizeof who)

nncc_layer *nncc_dense_layer_(struct nncc_dense_opts o)
{
    char who[WHO_SIZE];
    WHO(LAYER_DENSE, o);
    if (o.units <= 0)
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "%s: units must be a positive integer, got %d", who,
                              o.units);
    if (!check_activation(who, o.activation) ||
        !check_initializer(who, "kernel_initializer", o.kernel_initializer) ||
        !check_initializer(who, "bias_initializer", o.bias_initializer))
        return NULL;
    return layer_make(LAYER_DENSE, &o, sizeof o);
}

nncc_tensor *lower_dense(nncc_layer *l, nncc_tensor *const *in, int n_in)
{
    (void)n_in;
    const struct nncc_dense_opts *o = &l->o.dense;
    nncc_tensor *x = in[0];
    struct nncc_shape xs = x->shape;
    if (!l->built) {
        char who[WHO_SIZE], s0[160];
        if (xs.rank < 2 || xs.dim[xs.rank - 1] < 0)
            return NNCC_FAIL_NULL(NNCC_ERR_SHAPE,
                                  "%s: the last dimension of its input must be known, got %s",
                                  layer_who(l->kind, l->name, who, sizeof who),
                                  nncc_shape_str(xs, s0, sizeof s0));
        int64_t fan_in = xs.dim[xs.rank - 1];
        if (!layer_weight(l, "kernel", NNCC_SHAPE(fan_in, o->units), true,
                          o->kernel_initializer ? o->kernel_initializer : NNCC_GLOROT_UNIFORM))
            return NULL;
        if (!o->no_bias && !layer_weight(l, "bias", NNCC_SHAPE(o->units), true,
                                         o->bias_initializer ? o->bias_initializer : NNCC_ZEROS))
            return NULL;
        l->built = true;
    }
    nncc_tensor *mm[2] = {x, l->weights[0]};
    nncc_tensor *y = layer_node(l, IR_MATMUL, mm, 2, NULL, "matmul");
    if (y && !o->no_bias) {
        nncc_tensor *ba[2] = {y, l->weights[1]};
        y = layer_node(l, IR_BIAS_ADD, ba, 2, NULL, "bias_add");
    }
    return layer_activation(l, y, o->activation);
}

nncc_layer *nncc_activation_layer_(struct nncc_activation_opts o)
{
    char who[WHO_SIZE];
    WHO(LAYER_ACTIVATION, o);
    if (!check_activation(who, o.activation))
        return NULL;
    return layer_make(LAYER_ACTIVATION, &o, sizeof o);
}

nncc_tensor *lower_activation(nncc_layer *l, nncc_tensor *const *in, int n_in)
{
    (void)n_in;
    l->built = true;
    if (l->o.activation.activation == NNCC_LINEAR) {
        /* Keep one node per call so the layer has an output of its own. */
        struct ir_attrs a = {.act = NNCC_LINEAR};
        return layer_node(l, IR_ACTIVATION, in, 1, &a, "linear");
    }
    return layer_activation(l, in[0], l->o.activation.activation);
}

nncc_layer *nncc_flatten_layer_(struct nncc_flatten_opts o)
{
    return layer_make(LAYER_FLATTEN, &o, sizeof o);
}

nncc_tensor *lower_flatten(nncc_layer *l, nncc_tensor *const *in, int n_in)
{
    (void)n_in;
    l->built = true;
    struct ir_attrs a = {.target = NNCC_SHAPE(-1)};
    /* Keras: (N,) flattens to (N, 1). */
    return layer_node(l, IR_RESHAPE, in, 1, &a, "flatten");
}

nncc_layer *nncc_reshape_layer_(struct nncc_reshape_opts o)
{
    char who[WHO_SIZE], s0[160];
    WHO(LAYER_RESHAPE, o);
    struct nncc_shape t = o.target_shape;
    if (t.rank < 0 || t.rank >= NNCC_MAX_RANK)
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "%s: target_shape has rank %d; at most %d dimensions "
                                            "besides the batch are supported",
                              who, t.rank, NNCC_MAX_RANK - 1);
    int unknown = 0;
    for (int i = 0; i < t.rank; i++) {
        if (t.dim[i] == -1)
            unknown++;
        else if (t.dim[i] <= 0)
            return NNCC_FAIL_NULL(NNCC_ERR_ARG,
                                  "%s: target_shape %s has a dimension that is neither positive "
                                  "nor -1",
                                  who, ir_dims_str(t, s0, sizeof s0));
    }
    if (unknown > 1)
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "%s: target_shape %s may hold at most one -1", who,
                              ir_dims_str(t, s0, sizeof s0));
    return layer_make(LAYER_RESHAPE, &o, sizeof o);
}

nncc_tensor *lower_reshape(nncc_layer *l, nncc_tensor *const *in, int n_in)
{
    (void)n_in;
    l->built = true;
    struct ir_attrs a = {.target = l->o.reshape.target_shape};
    return layer_node(l, IR_RESHAPE, in, 1, &a, "reshape");
}

nncc_layer *nncc_dropout_layer_(struct nncc_dropout_opts o)
{
    char who[WHO_SIZE];
    WHO(LAYER_DROPOUT, o);
    if (!(o.rate >= 0.0f && o.rate < 1.0f))
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "%s: rate must be in [0, 1), got %g", who,
                              (double)o.rate);
    return layer_make(LAYER_DROPOUT, &o, sizeof o);
}

nncc_tensor *lower_dropout(nncc_layer *l, nncc_tensor *const *in, int n_in)
{
    (void)n_in;
    l->built = true;
    struct ir_attrs a = {.rate = l->o.dropout.rate, .seed = l->o.dropout.seed};
    return layer_node(l, IR_DROPOUT, in, 1, &a, "dropout");
}

/* Keras keeps alpha as a float32 (backend.cast_to_floatx); 0 stands for
 * the default, as zero fields do throughout the API. */
static bool check_alpha(const char *who, float *alpha, float dflt)
{
    if (*alpha == 0.0f)
        *alpha = dflt;
    if (!isfinite(*alpha)) {
        nncc_fail(NNCC_ERR_ARG, "%s: alpha must be a finite number, got %g", who, (double)*alpha);
        return false;
    }
    return true;
}

nncc_layer *nncc_leaky_relu_layer_(struct nncc_leaky_relu_opts o)
{
    char who[WHO_SIZE];
    WHO(LAYER_LEAKY_RELU, o);
    if (!check_alpha(who, &o.alpha, 0.3f))
        return NULL;
    return layer_make(LAYER_LEAKY_RELU, &o, sizeof o);
}

nncc_layer *nncc_elu_layer_(struct nncc_elu_opts o)
{
    char who[WHO_SIZE];
    WHO(LAYER_ELU, o);
    if (!check_alpha(who, &o.alpha, 1.0f))
        return NULL;
    return layer_make(LAYER_ELU, &o, sizeof o);
}

nncc_tensor *lower_activation_alpha(nncc_layer *l, nncc_tensor *const *in, int n_in)
{
    (void)n_in;
    l->built = true;
    bool elu = l->kind == LAYER_ELU;
    struct ir_attrs a = {.act = elu ? NNCC_ELU : NNCC_LEAKY_RELU,
                         .alpha = elu ? l->o.elu.alpha : l->o.leaky_relu.alpha};
    return layer_node(l, IR_ACTIVATION_ALPHA, in, 1, &a, elu ? "elu" : "leaky_relu");
}
