/*
 * weights.c — reading, writing and re-drawing layer weights.
 *
 * Values live with their parameter tensors, in Keras' layouts; a layer
 * shared by several models shares its weights with all of them, as in
 * Keras.  (When the compiler keeps packed copies for its kernels, they are
 * refreshed from these on the next run.)
 */
#include <string.h>
#include "frontend.h"

void nncc_graph_set_seed(nncc_graph *g, uint64_t seed)
{
    if (g)
        g->seed = seed;
}

static const nncc_tensor *weight(const nncc_layer *l, int i)
{
    if (!l)
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "layer is NULL");
    if (i < 0 || i >= l->n_weights) {
        char who[WHO_SIZE];
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "%s: no weight %d (it has %d)",
                              layer_who(l->kind, l->name, who, sizeof who), i, l->n_weights);
    }
    return l->weights[i];
}

int nncc_layer_num_weights(const nncc_layer *l) { return l ? l->n_weights : 0; }

const char *nncc_layer_weight_name(const nncc_layer *l, int i)
{
    const nncc_tensor *t = weight(l, i);
    return t ? t->name : NULL;
}

struct nncc_shape nncc_layer_weight_shape(const nncc_layer *l, int i)
{
    const nncc_tensor *t = weight(l, i);
    return t ? t->shape : (struct nncc_shape){0};
}

static enum nncc_status check_count(const nncc_tensor *t, const void *buf, int64_t count)
{
    int64_t n = ir_shape_numel(t->shape, 0);
    if (!buf)
        return nncc_fail(NNCC_ERR_ARG, "weight \"%s\": the buffer is NULL", t->name);
    if (count != n) {
        char s[160];
        return nncc_fail(NNCC_ERR_SHAPE, "weight \"%s\" of shape %s holds %lld values, not %lld",
                         t->name, nncc_shape_str(t->shape, s, sizeof s), (long long)n,
                         (long long)count);
    }
    return NNCC_OK;
}

enum nncc_status nncc_get_weights(const nncc_layer *l, int i, float *out, int64_t count)
{
    const nncc_tensor *t = weight(l, i);
    if (!t)
        return nncc_last_status();
    enum nncc_status st = check_count(t, out, count);
    if (!st)
        memcpy(out, t->data, (size_t)count * sizeof *out);
    return st;
}

enum nncc_status nncc_set_weights(nncc_layer *l, int i, const float *values, int64_t count)
{
    const nncc_tensor *t = weight(l, i);
    if (!t)
        return nncc_last_status();
    enum nncc_status st = check_count(t, values, count);
    if (!st)
        memcpy(t->data, values, (size_t)count * sizeof *values);
    return st;
}

enum nncc_status nncc_model_init_weights(nncc_model *m, uint64_t seed)
{
    if (!m)
        return nncc_fail(NNCC_ERR_ARG, "model is NULL");
    for (int i = 0; i < m->n_layers; i++)
        for (int k = 0; k < m->layers[i]->n_weights; k++)
            ir_param_init(m->layers[i]->weights[k], seed);
    return NNCC_OK;
}
