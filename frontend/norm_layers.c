/*
 * norm_layers.c — BatchNormalization.
 *
 * Weights in Keras' order: gamma (unless no_scale), beta (unless no_center),
 * moving_mean, moving_variance; the moving statistics are non-trainable, so
 * the layer counts 4C parameters of which 2C are non-trainable.  Lowered to
 * one batchnorm op with inputs (x, moving_mean, moving_variance, [gamma],
 * [beta]); its training semantics arrive with training.
 */
#include <math.h>
#include "frontend.h"

nncc_layer *nncc_batchnorm_layer_(struct nncc_batchnorm_opts o)
{
    char who[WHO_SIZE];
    layer_who(LAYER_BATCHNORM, o.name, who, sizeof who);
    if (o.momentum == 0.0f)
        o.momentum = 0.99f;
    if (o.epsilon == 0.0f)
        o.epsilon = 1e-3f;
    if (!(o.momentum >= 0.0f && o.momentum <= 1.0f))
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "%s: momentum must be in [0, 1], got %g", who,
                              (double)o.momentum);
    if (!(o.epsilon > 0.0f) || isinf(o.epsilon))
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "%s: epsilon must be positive, got %g", who,
                              (double)o.epsilon);
    if (o.axis == 0)
        o.axis = -1;
    return layer_make(LAYER_BATCHNORM, &o, sizeof o);
}

nncc_tensor *lower_batchnorm(nncc_layer *l, nncc_tensor *const *in, int n_in)
{
    (void)n_in;
    const struct nncc_batchnorm_opts *o = &l->o.batchnorm;
    nncc_tensor *x = in[0];
    struct nncc_shape xs = x->shape;
    int axis = o->axis < 0 ? xs.rank + o->axis : o->axis;
    if (!l->built) {
        char who[WHO_SIZE], s0[160];
        layer_who(l->kind, l->name, who, sizeof who);
        if (xs.rank < 2 || axis < 1 || axis >= xs.rank)
            return NNCC_FAIL_NULL(NNCC_ERR_SHAPE, "%s: axis %d is out of range for input %s",
                                  who, o->axis, nncc_shape_str(xs, s0, sizeof s0));
        struct nncc_shape c = NNCC_SHAPE(xs.dim[axis]);
        if ((!o->no_scale && !layer_weight(l, "gamma", c, true, NNCC_ONES)) ||
            (!o->no_center && !layer_weight(l, "beta", c, true, NNCC_ZEROS)) ||
            !layer_weight(l, "moving_mean", c, false, NNCC_ZEROS) ||
            !layer_weight(l, "moving_variance", c, false, NNCC_ONES))
            return NULL;
        l->built = true;
    }
    int k = 0;
    nncc_tensor *gamma = o->no_scale ? NULL : l->weights[k++];
    nncc_tensor *beta = o->no_center ? NULL : l->weights[k++];
    nncc_tensor *ins[5] = {x, l->weights[k], l->weights[k + 1]};
    int n = 3;
    if (gamma)
        ins[n++] = gamma;
    if (beta)
        ins[n++] = beta;
    struct ir_attrs a = {.axis = o->axis, .epsilon = o->epsilon, .momentum = o->momentum,
                         .has_gamma = gamma != NULL, .has_beta = beta != NULL};
    return layer_node(l, IR_BATCHNORM, ins, n, &a, "batchnorm");
}
