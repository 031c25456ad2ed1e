/*
 * keras_continue.c — a model trained in Keras, trained on by nncc, and
 * handed back to Keras: tests/keras/fixtures/fmnist_cnn.k3.keras (a small
 * Fashion-MNIST CNN that Keras 3 compiled with Adagrad and trained for two
 * epochs on 256 images) is loaded with nncc_load, with its compile
 * configuration and Adagrad's accumulators, so nncc_fit continues Keras'
 * run on the full training set; the result is evaluated and saved as a
 * .keras file that keras.models.load_model reads (or as nncc compile's
 * input: see scripts/demo.sh).
 *
 *   nncc run examples/keras_continue.c [MODEL.keras|MODEL.h5] [--epochs N] [--save PATH]
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
    const char *path = "tests/keras/fixtures/fmnist_cnn.k3.keras", *save = NULL;
    int epochs = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--epochs") == 0 && i + 1 < argc)
            epochs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--save") == 0 && i + 1 < argc)
            save = argv[++i];
        else if (argv[i][0] != '-')
            path = argv[i];
        else
            return fprintf(stderr, "usage: %s [MODEL.keras] [--epochs N] [--save PATH]\n",
                           argv[0]), 2;
    }
    nncc_model *m = nncc_load(path);
    if (!m)
        return fprintf(stderr, "%s\n", nncc_last_error()), 1;
    nncc_summary(m, stdout);
    printf("compiled by Keras: learning rate %g\n", (double)nncc_get_learning_rate(m));
    /* the fixture was compiled with categorical cross-entropy: one-hot labels */
    struct nncc_data train = nncc_load_idx(DATA "train-images-idx3-ubyte.gz",
                                           DATA "train-labels-idx1-ubyte.gz", .one_hot = 10,
                                           .scale = 1 / 255.f);
    struct nncc_data test = nncc_load_idx(DATA "t10k-images-idx3-ubyte.gz",
                                          DATA "t10k-labels-idx1-ubyte.gz", .one_hot = 10,
                                          .scale = 1 / 255.f);
    if (!train.x || !test.x)
        return fprintf(stderr, "%s\n", nncc_last_error()), 1;
    struct nncc_logs before = nncc_evaluate(m, test.x, test.y);
    printf("as Keras saved it: test_accuracy %.4f\n", nncc_logs_get(&before, "accuracy"));
    nncc_history *h = nncc_fit(m, train.x, train.y, .epochs = epochs, .batch_size = 32,
                               .verbose = 2);
    if (!h)
        return fprintf(stderr, "%s\n", nncc_last_error()), 1;
    nncc_history_free(h);
    if (save && nncc_save(m, save) != NNCC_OK)
        return fprintf(stderr, "%s\n", nncc_last_error()), 1;
    if (save)
        printf("saved %s\n", save);
    struct nncc_logs l = nncc_evaluate(m, test.x, test.y);
    printf("test_loss: %.4f - test_accuracy: %.4f\n", nncc_logs_get(&l, "loss"),
           nncc_logs_get(&l, "accuracy"));
    nncc_data_free(&train);
    nncc_data_free(&test);
    nncc_model_free(m);
    return 0;
}
