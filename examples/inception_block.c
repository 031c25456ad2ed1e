/*
 * inception_block.c — a small non-sequential model, like the tutorial's
 * picture of one: three parallel branches over a 32x32x16 feature map
 * (a 1x1 convolution, a 1x1 then 3x3 convolution, a 3x3 max pooling then
 * 1x1 convolution), concatenated on the channels, then global average
 * pooling and a Dense classifier.
 *
 *   nncc summary examples/inception_block.c
 *   nncc graph examples/inception_block.c | dot -Tsvg > inception.svg
 */
#include <nncc.h>

nncc_model *model(void)
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(32, 32, 16), .name = "features");

    nncc_tensor *b1 = nncc_conv2d(x, .filters = 8, .kernel_size = {1, 1}, .padding = NNCC_SAME,
                                  .activation = NNCC_RELU);

    nncc_tensor *b2 = nncc_conv2d(x, .filters = 8, .kernel_size = {1, 1}, .padding = NNCC_SAME,
                                  .activation = NNCC_RELU);
    b2 = nncc_conv2d(b2, .filters = 16, .kernel_size = {3, 3}, .padding = NNCC_SAME,
                     .activation = NNCC_RELU);

    nncc_tensor *b3 = nncc_maxpool2d(x, .pool_size = {3, 3}, .strides = {1, 1},
                                     .padding = NNCC_SAME);
    b3 = nncc_conv2d(b3, .filters = 8, .kernel_size = {1, 1}, .padding = NNCC_SAME,
                     .activation = NNCC_RELU);

    nncc_tensor *h = nncc_concatenate(NNCC_TENSORS(b1, b2, b3), .axis = -1);
    h = nncc_global_avgpool2d(h);
    nncc_tensor *y = nncc_dense(h, .units = 10, .activation = NNCC_SOFTMAX);
    return nncc_model_new(x, y, .name = "inception_block"); /* NULL on error: see nncc_last_error() */
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
