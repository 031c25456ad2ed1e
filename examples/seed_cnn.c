/*
 * seed_cnn.c — the tutorial's CNN: a 64x64 RGB image, Conv2D 16 filters 3x3
 * strides 2 same relu, MaxPooling2D 2x2, Flatten, Dense 4 softmax.
 * Output shapes (None, 32, 32, 16), (None, 16, 16, 16), (None, 4096),
 * (None, 4); 16,836 parameters.
 *
 *   nncc summary examples/seed_cnn.c
 */
#include <nncc.h>

nncc_model *model(void)
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(64, 64, 3));
    nncc_tensor *h = nncc_conv2d(x, .filters = 16, .kernel_size = {3, 3}, .strides = {2, 2},
                                 .padding = NNCC_SAME, .activation = NNCC_RELU);
    h = nncc_maxpool2d(h, .pool_size = {2, 2});
    h = nncc_flatten(h);
    nncc_tensor *y = nncc_dense(h, .units = 4, .activation = NNCC_SOFTMAX);
    return nncc_model_new(x, y); /* NULL on error: see nncc_last_error() */
}

int main(void)
{
    nncc_model *m = model();
    if (!m) {
        fprintf(stderr, "%s\n", nncc_last_error());
        return 1;
    }
    nncc_summary(m, stdout);
    nncc_model_free(m);
    return 0;
}
