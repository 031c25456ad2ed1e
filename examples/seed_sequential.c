/*
 * seed_sequential.c — the tutorial's Sequential model: Dense 16 relu on a
 * 32-feature input, then Dense 8 softmax (664 parameters).
 *
 *   nncc summary examples/seed_sequential.c
 */
#include <nncc.h>

nncc_model *model(void)
{
    return nncc_sequential(NNCC_LAYERS(
        nncc_dense_layer(.units = 16, .activation = NNCC_RELU, .input_shape = NNCC_SHAPE(32)),
        nncc_dense_layer(.units = 8, .activation = NNCC_SOFTMAX)));
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
