/*
 * merge_layers.c — Add and Concatenate, the layers that join branches.
 *
 * Both take a list of tensors.  Add sums element-wise, broadcasting dims of
 * size 1 (aligned from the right, as Keras' _Merge); Concatenate joins along
 * an axis (default -1) and needs every other dimension to match.  The shape
 * rules in ir/ops.c report mismatches with both shapes.
 */
#include "frontend.h"

static nncc_layer *merge_layer(enum layer_kind kind, struct nncc_merge_opts o)
{
    return layer_make(kind, &o, sizeof o);
}

nncc_layer *nncc_add_layer_(struct nncc_merge_opts o) { return merge_layer(LAYER_ADD, o); }

nncc_layer *nncc_concatenate_layer_(struct nncc_merge_opts o)
{
    return merge_layer(LAYER_CONCATENATE, o);
}

nncc_tensor *lower_add(nncc_layer *l, nncc_tensor *const *in, int n_in)
{
    l->built = true;
    return layer_node(l, IR_ADD, in, n_in, NULL, "add");
}

nncc_tensor *lower_concatenate(nncc_layer *l, nncc_tensor *const *in, int n_in)
{
    l->built = true;
    struct ir_attrs a = {.axis = l->o.merge.axis ? l->o.merge.axis : -1};
    return layer_node(l, IR_CONCAT, in, n_in, &a, "concat");
}
