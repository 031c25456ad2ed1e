/*
 * seed_mlp.c — benchmark model (issue 6): Input 32, Dense 16 relu, Dense 8 softmax.
 * Adam, categorical cross-entropy, accuracy; compiled here so that
 * `nncc bench bench/models/seed_mlp.c` can train it.
 *
 *   nncc bench bench/models/seed_mlp.c --batch 64
 */
#include <nncc.h>

nncc_model *model(void)
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(32));
    nncc_tensor *h = nncc_dense(x, .units = 16, .activation = NNCC_RELU);
    nncc_tensor *y = nncc_dense(h, .units = 8, .activation = NNCC_SOFTMAX);
    nncc_model *m = nncc_model_new(x, y);
    if (!m) {
        nncc_graph_free(g);
        return NULL;
    }
    if (nncc_compile(m, .optimizer = nncc_adam(), .loss = NNCC_CATEGORICAL_CROSSENTROPY,
                     .metrics = NNCC_ACCURACY) != NNCC_OK) {
        nncc_model_free(m);
        return NULL;
    }
    return m;
}
