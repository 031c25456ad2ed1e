/*
 * mlp.c — benchmark model (issue 6): Input 28x28x1, Flatten, Dense 128 relu, Dense 10 softmax.
 * Adam, categorical cross-entropy, accuracy; compiled here so that
 * `nncc bench bench/models/mlp.c` can train it.
 *
 *   nncc bench bench/models/mlp.c --batch 64
 */
#include <nncc.h>

nncc_model *model(void)
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(28, 28, 1));
    nncc_tensor *h = nncc_flatten(x);
    h = nncc_dense(h, .units = 128, .activation = NNCC_RELU);
    nncc_tensor *y = nncc_dense(h, .units = 10, .activation = NNCC_SOFTMAX);
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
