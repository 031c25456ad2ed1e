/*
 * seed_cnn.c — benchmark model (issue 6): Input 28x28x1, Conv2D 16 3x3 strides 2 same relu,
 * MaxPooling2D 2x2, Flatten, Dense 10 softmax.
 * Adam, categorical cross-entropy, accuracy; compiled here so that
 * `nncc bench bench/models/seed_cnn.c` can train it.
 *
 *   nncc bench bench/models/seed_cnn.c --batch 64
 */
#include <nncc.h>

nncc_model *model(void)
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(28, 28, 1));
    nncc_tensor *h = nncc_conv2d(x, .filters = 16, .kernel_size = {3, 3}, .strides = {2, 2},
                                 .padding = NNCC_SAME, .activation = NNCC_RELU);
    h = nncc_maxpool2d(h, .pool_size = {2, 2});
    h = nncc_flatten(h);
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
