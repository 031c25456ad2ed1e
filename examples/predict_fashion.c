/*
 * predict_fashion.c — the tutorial's CNN, built for Fashion-MNIST (28x28x1
 * images, 10 classes), run with nncc_predict on the 10,000 test images.
 *
 * The weights are the initializers' draws for a fixed seed (training comes
 * later), so the predictions are arbitrary but reproducible: the same seed
 * prints the same histogram on every machine.  It shows the whole inference
 * path: IDX loading, code generation, the JIT and its cache.
 *
 *   nncc run examples/predict_fashion.c [IMAGES.gz LABELS.gz]
 */
#include <nncc.h>
#include <stdlib.h>

#define DATA "/usr/share/datasets/fashion-mnist/"

static const char *const classes[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};

nncc_model *model(void)
{
    nncc_graph *g = nncc_graph_new();
    nncc_graph_set_seed(g, 2026);
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(28, 28, 1));
    nncc_tensor *h = nncc_conv2d(x, .filters = 16, .kernel_size = {3, 3}, .strides = {2, 2},
                                 .padding = NNCC_SAME, .activation = NNCC_RELU);
    h = nncc_maxpool2d(h, .pool_size = {2, 2});
    h = nncc_flatten(h);
    nncc_tensor *y = nncc_dense(h, .units = 10, .activation = NNCC_SOFTMAX);
    return nncc_model_new(x, y); /* NULL on error: see nncc_last_error() */
}

int main(int argc, char **argv)
{
    const char *images = argc > 2 ? argv[1] : DATA "t10k-images-idx3-ubyte.gz";
    const char *labels = argc > 2 ? argv[2] : DATA "t10k-labels-idx1-ubyte.gz";
    struct nncc_data test = nncc_load_idx(images, labels, .scale = 1 / 255.f);
    nncc_model *m = test.x ? model() : NULL;
    struct nncc_array *p = m ? nncc_predict(m, test.x, .batch_size = 256)
                             : NULL;
    if (!p) {
        fprintf(stderr, "predict_fashion: %s\n", nncc_last_error());
        nncc_data_free(&test);
        nncc_model_free(m);
        return 1;
    }
    int64_t n = p->shape.dim[0], hist[10] = {0}, correct = 0;
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        for (int c = 1; c < 10; c++)
            if (p->data[i * 10 + c] > p->data[i * 10 + best])
                best = c;
        hist[best]++;
        correct += best == (int)test.y->data[i];
    }
    printf("predicted classes of %lld test images (untrained, seed 2026):\n", (long long)n);
    for (int c = 0; c < 10; c++)
        printf("  %d %-12s %6lld\n", c, classes[c], (long long)hist[c]);
    printf("accuracy of untrained weights: %.4f (chance: 0.1000)\n", (double)correct / (double)n);
    nncc_array_free(p);
    nncc_data_free(&test);
    nncc_model_free(m);
    return 0;
}
