/*
 * conv_layers.c — Conv2D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D.
 *
 * All NHWC.  Conv2D is a cross-correlation with kernel (kh, kw, in, filters)
 * lowered to conv2d (+ bias_add) (+ activation); the pools lower to one op.
 * Output sizes follow Keras: valid ⌊(n − k')/s⌋ + 1, same ⌈n/s⌉, with the odd
 * padding pixel at the bottom/right (computed by the ops' shape rules).
 */
#include <string.h>
#include "frontend.h"

/* {0, 0} is the default when allowed; one zero is `.kernel_size = 3`, which
 * C fills as {3, 0}: refused with the fix, never completed silently. */
static bool pair_ok(const char *who, const char *field, int v[2], int dflt, bool allow_default)
{
    if ((v[0] == 0) != (v[1] == 0) && v[0] >= 0 && v[1] >= 0) {
        int k = v[0] ? v[0] : v[1];
        nncc_fail(NNCC_ERR_ARG,
                  "%s: %s {%d, %d}: write {%d, %d} (a single number fills only the first "
                  "element)",
                  who, field, v[0], v[1], k, k);
        return false;
    }
    for (int i = 0; i < 2; i++) {
        if (v[i] == 0 && allow_default)
            v[i] = dflt;
        if (v[i] <= 0) {
            nncc_fail(NNCC_ERR_ARG, "%s: %s must be positive integers, got {%d, %d}", who, field,
                      v[0], v[1]);
            return false;
        }
    }
    return true;
}

static bool padding_ok(const char *who, enum nncc_padding p)
{
    if (p == NNCC_VALID || p == NNCC_SAME)
        return true;
    nncc_fail(NNCC_ERR_ARG, "%s: padding must be NNCC_VALID or NNCC_SAME, got %d", who, (int)p);
    return false;
}

nncc_layer *nncc_conv2d_layer_(struct nncc_conv2d_opts o)
{
    char who[WHO_SIZE];
    layer_who(LAYER_CONV2D, o.name, who, sizeof who);
    if (o.filters <= 0)
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "%s: filters must be a positive integer, got %d", who,
                              o.filters);
    if (!pair_ok(who, "kernel_size", o.kernel_size, 0, false) ||
        !pair_ok(who, "strides", o.strides, 1, true) ||
        !pair_ok(who, "dilation_rate", o.dilation_rate, 1, true) || !padding_ok(who, o.padding) ||
        !check_activation(who, o.activation) ||
        !check_initializer(who, "kernel_initializer", o.kernel_initializer) ||
        !check_initializer(who, "bias_initializer", o.bias_initializer))
        return NULL;
    if ((o.strides[0] > 1 || o.strides[1] > 1) && (o.dilation_rate[0] > 1 || o.dilation_rate[1] > 1))
        return NNCC_FAIL_NULL(NNCC_ERR_ARG,
                              "%s: strides > 1 are not compatible with dilation_rate > 1 "
                              "(strides {%d, %d}, dilation_rate {%d, %d})",
                              who, o.strides[0], o.strides[1], o.dilation_rate[0],
                              o.dilation_rate[1]);
    return layer_make(LAYER_CONV2D, &o, sizeof o);
}

nncc_tensor *lower_conv2d(nncc_layer *l, nncc_tensor *const *in, int n_in)
{
    (void)n_in;
    const struct nncc_conv2d_opts *o = &l->o.conv2d;
    nncc_tensor *x = in[0];
    if (!l->built) {
        char who[WHO_SIZE], s0[160];
        struct nncc_shape xs = x->shape;
        if (xs.rank != 4)
            return NNCC_FAIL_NULL(NNCC_ERR_SHAPE,
                                  "%s: expects input of rank 4 (batch, height, width, "
                                  "channels), got %s",
                                  layer_who(l->kind, l->name, who, sizeof who),
                                  nncc_shape_str(xs, s0, sizeof s0));
        struct nncc_shape ks = NNCC_SHAPE(o->kernel_size[0], o->kernel_size[1], xs.dim[3], o->filters);
        if (!layer_weight(l, "kernel", ks, true,
                          o->kernel_initializer ? o->kernel_initializer : NNCC_GLOROT_UNIFORM))
            return NULL;
        if (!o->no_bias && !layer_weight(l, "bias", NNCC_SHAPE(o->filters), true,
                                         o->bias_initializer ? o->bias_initializer : NNCC_ZEROS))
            return NULL;
        l->built = true;
    }
    struct ir_attrs a = {
        .stride = {o->strides[0], o->strides[1]},
        .dilation = {o->dilation_rate[0], o->dilation_rate[1]},
        .padding = o->padding,
    };
    nncc_tensor *cv[2] = {x, l->weights[0]};
    nncc_tensor *y = layer_node(l, IR_CONV2D, cv, 2, &a, "conv2d");
    if (y && !o->no_bias) {
        nncc_tensor *ba[2] = {y, l->weights[1]};
        y = layer_node(l, IR_BIAS_ADD, ba, 2, NULL, "bias_add");
    }
    return layer_activation(l, y, o->activation);
}

static nncc_layer *pool_layer(enum layer_kind kind, struct nncc_pool2d_opts o)
{
    char who[WHO_SIZE];
    layer_who(kind, o.name, who, sizeof who);
    if (!pair_ok(who, "pool_size", o.pool_size, 2, true))
        return NULL;
    if (o.strides[0] == 0 && o.strides[1] == 0) {
        o.strides[0] = o.pool_size[0];
        o.strides[1] = o.pool_size[1];
    }
    if (!pair_ok(who, "strides", o.strides, 1, false) || !padding_ok(who, o.padding))
        return NULL;
    return layer_make(kind, &o, sizeof o);
}

nncc_layer *nncc_maxpool2d_layer_(struct nncc_pool2d_opts o) { return pool_layer(LAYER_MAXPOOL2D, o); }

nncc_layer *nncc_avgpool2d_layer_(struct nncc_pool2d_opts o) { return pool_layer(LAYER_AVGPOOL2D, o); }

nncc_tensor *lower_pool2d(nncc_layer *l, nncc_tensor *const *in, int n_in)
{
    (void)n_in;
    l->built = true;
    const struct nncc_pool2d_opts *o = &l->o.pool2d;
    struct ir_attrs a = {
        .kernel = {o->pool_size[0], o->pool_size[1]},
        .stride = {o->strides[0], o->strides[1]},
        .dilation = {1, 1},
        .padding = o->padding,
    };
    bool max = l->kind == LAYER_MAXPOOL2D;
    return layer_node(l, max ? IR_MAXPOOL2D : IR_AVGPOOL2D, in, 1, &a, max ? "maxpool" : "avgpool");
}

nncc_layer *nncc_global_avgpool2d_layer_(struct nncc_global_pool2d_opts o)
{
    return layer_make(LAYER_GLOBAL_AVGPOOL2D, &o, sizeof o);
}

nncc_tensor *lower_global_pool2d(nncc_layer *l, nncc_tensor *const *in, int n_in)
{
    (void)n_in;
    l->built = true;
    struct ir_attrs a = {.keepdims = l->o.global_pool2d.keepdims};
    return layer_node(l, IR_GLOBAL_AVGPOOL2D, in, 1, &a, "global_avgpool");
}
