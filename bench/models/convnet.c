/*
 * convnet.c — benchmark model (issue 6): Input 28x28x1, Conv2D 32 3x3 relu, MaxPooling2D,
 * Conv2D 64 3x3 relu, MaxPooling2D, Flatten, Dense 10 softmax (Keras' MNIST convnet
 * without dropout).
 * Adam, categorical cross-entropy, accuracy; compiled here so that
 * `nncc bench bench/models/convnet.c` can train it.
 *
 *   nncc bench bench/models/convnet.c --batch 64
 */
#include <nncc.h>

nncc_model *model(void)
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(28, 28, 1));
    nncc_tensor *h = nncc_conv2d(x, .filters = 32, .kernel_size = {3, 3}, .activation = NNCC_RELU);
    h = nncc_maxpool2d(h, .pool_size = {2, 2});
    h = nncc_conv2d(h, .filters = 64, .kernel_size = {3, 3}, .activation = NNCC_RELU);
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
