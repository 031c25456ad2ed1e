/*
 * onnx_finetune.c — a model trained elsewhere, fine-tuned with nncc: the
 * PyTorch convnet of tests/onnx/fixtures/convnet.onnx (Conv 32, MaxPool,
 * Conv 64, MaxPool, Flatten, Linear 10, Softmax; its weights are PyTorch's
 * untrained initial ones) is imported with nncc_load_onnx, trained with
 * nncc_fit on Fashion-MNIST, evaluated and saved — an ordinary nncc model
 * from the import on, whose input stays ONNX's NCHW (N, 1, 28, 28).
 *
 *   nncc run examples/onnx_finetune.c [MODEL.onnx] [--epochs N] [--save PATH]
 *
 * The last line is `test_loss: L - test_accuracy: A`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <nncc.h>

#define DATA "/usr/share/datasets/fashion-mnist/"

int main(int argc, char **argv)
{
    const char *path = "tests/onnx/fixtures/convnet.onnx", *save = NULL;
    int epochs = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--epochs") == 0 && i + 1 < argc)
            epochs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--save") == 0 && i + 1 < argc)
            save = argv[++i];
        else if (argv[i][0] != '-')
            path = argv[i];
        else
            return fprintf(stderr, "usage: %s [MODEL.onnx] [--epochs N] [--save PATH]\n",
                           argv[0]), 2;
    }
    nncc_model *m = nncc_load_onnx(path);
    if (!m)
        return fprintf(stderr, "%s\n", nncc_last_error()), 1;
    nncc_summary(m, stdout);
    struct nncc_data train = nncc_load_idx(DATA "train-images-idx3-ubyte.gz",
                                           DATA "train-labels-idx1-ubyte.gz", .scale = 1 / 255.f);
    struct nncc_data test = nncc_load_idx(DATA "t10k-images-idx3-ubyte.gz",
                                          DATA "t10k-labels-idx1-ubyte.gz", .scale = 1 / 255.f);
    if (!train.x || !test.x)
        return fprintf(stderr, "%s\n", nncc_last_error()), 1;
    /* IDX images are (n, 28, 28, 1); with one channel that is also the
     * memory of the NCHW (n, 1, 28, 28) the ONNX model takes. */
    train.x->shape = NNCC_SHAPE(train.x->shape.dim[0], 1, 28, 28);
    test.x->shape = NNCC_SHAPE(test.x->shape.dim[0], 1, 28, 28);
    if (nncc_compile(m, .loss = NNCC_SPARSE_CATEGORICAL_CROSSENTROPY,
                     .optimizer = {.kind = NNCC_ADAM, .learning_rate = 0.001f},
                     .metrics = NNCC_ACCURACY) != NNCC_OK)
        return fprintf(stderr, "%s\n", nncc_last_error()), 1;
    struct nncc_logs before = nncc_evaluate(m, test.x, test.y);
    printf("imported, before fine-tuning: test_accuracy %.4f\n",
           nncc_logs_get(&before, "accuracy"));
    nncc_history *h = nncc_fit(m, train.x, train.y, .epochs = epochs, .batch_size = 64,
                               .verbose = 2);
    if (!h)
        return fprintf(stderr, "%s\n", nncc_last_error()), 1;
    nncc_history_free(h);
    if (save && nncc_save(m, save) != NNCC_OK)
        return fprintf(stderr, "%s\n", nncc_last_error()), 1;
    struct nncc_logs l = nncc_evaluate(m, test.x, test.y);
    printf("test_loss: %.4f - test_accuracy: %.4f\n", nncc_logs_get(&l, "loss"),
           nncc_logs_get(&l, "accuracy"));
    nncc_data_free(&train);
    nncc_data_free(&test);
    nncc_model_free(m);
    return 0;
}
