/*
 * fashion_mnist.h — the training driver the Fashion-MNIST examples share:
 * parse --epochs/--verbose, load the real data set (package
 * dataset-fashion-mnist), compile with Adam and categorical cross-entropy,
 * fit with batch 64, evaluate on the test set and print
 * `test_loss: L - test_accuracy: A` as the last line.
 */
#ifndef FASHION_MNIST_H
#define FASHION_MNIST_H

#include <nncc.h>
#include <stdlib.h>
#include <string.h>

#define FASHION_DATA "/usr/share/datasets/fashion-mnist/"

static int fashion_mnist_main(int argc, char **argv, nncc_model *(*build)(void), int epochs)
{
    int verbose = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--epochs") == 0 && i + 1 < argc)
            epochs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--verbose") == 0 && i + 1 < argc)
            verbose = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--epochs N] [--verbose 0|1|2]\n", argv[0]);
            return 2;
        }
    }
    if (epochs < 1) {
        fprintf(stderr, "%s: --epochs must be at least 1\n", argv[0]);
        return 2;
    }
    struct nncc_data train = nncc_load_idx(FASHION_DATA "train-images-idx3-ubyte.gz",
                                           FASHION_DATA "train-labels-idx1-ubyte.gz",
                                           .one_hot = 10, .scale = 1 / 255.f);
    struct nncc_data test = nncc_load_idx(FASHION_DATA "t10k-images-idx3-ubyte.gz",
                                          FASHION_DATA "t10k-labels-idx1-ubyte.gz",
                                          .one_hot = 10, .scale = 1 / 255.f);
    nncc_model *m = train.x && test.x ? build() : NULL;
    int rc = 1;
    if (m && nncc_compile(m, .optimizer = nncc_adam(.learning_rate = 1e-3f),
                          .loss = NNCC_CATEGORICAL_CROSSENTROPY, .metrics = NNCC_ACCURACY) == NNCC_OK) {
        nncc_summary(m, stdout);
        nncc_history *h = nncc_fit(m, train.x, train.y, .batch_size = 64, .epochs = epochs,
                                   .verbose = verbose);
        if (h) {
            struct nncc_logs r = nncc_evaluate(m, test.x, test.y, .batch_size = 64);
            if (r.n) {
                printf("test_loss: %.4f - test_accuracy: %.4f\n", nncc_logs_get(&r, "loss"),
                       nncc_logs_get(&r, "accuracy"));
                rc = 0;
            }
            nncc_history_free(h);
        }
    }
    if (rc)
        fprintf(stderr, "%s: %s\n", argv[0], nncc_last_error());
    nncc_model_free(m);
    nncc_data_free(&train);
    nncc_data_free(&test);
    return rc;
}

#endif
