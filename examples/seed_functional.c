/*
 * seed_functional.c — the tutorial's Sequential model written with the
 * functional API: an Input of 32 features, Dense 16 relu, Dense 8 softmax.
 *
 *   nncc summary examples/seed_functional.c
 */
#include <nncc.h>

nncc_model *model(void)
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(32));
    nncc_tensor *h = nncc_dense(x, .units = 16, .activation = NNCC_RELU);
    nncc_tensor *y = nncc_dense(h, .units = 8, .activation = NNCC_SOFTMAX);
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
