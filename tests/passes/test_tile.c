/*
 * test_tile: the tiling pass (passes/tile.c) and the kernels it schedules.
 *
 * The schedules of a CNN's training step (parallel axis, column-tile rows
 * within the per-thread stack budget and a multiple of the micro-kernel's
 * 6 rows, the pointwise case), and that a schedule never changes results
 * beyond reassociation: convolutions of several kinds (3x3 same, strided,
 * dilated, 1x1) predicted and trained with the default tiles and with
 * NNCC_TILE_ROWS=6 (many small tiles, partial last tiles) agree with each
 * other — the forward exactly, since each output's dot product runs in the
 * same order — and with the reference interpreter.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nncc.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/train/train.h"
#include "pass_helpers.h"


/* 9x9x3 → 3x3 same (8) → 3x3 stride 2 (12) → 1x1 (6) → 3x3 dilation 2 (5)
 * → flatten → dense 4 softmax. */
static nncc_model *model(void)
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(9, 9, 3));
    nncc_tensor *h = OK(nncc_conv2d(x, .filters = 8, .kernel_size = {3, 3}, .padding = NNCC_SAME,
                                    .activation = NNCC_RELU, .name = "same"));
    h = OK(nncc_conv2d(h, .filters = 12, .kernel_size = {3, 3}, .strides = {2, 2},
                       .activation = NNCC_TANH, .name = "strided"));
    h = OK(nncc_conv2d(h, .filters = 6, .kernel_size = {1, 1}, .name = "pointwise"));
    h = OK(nncc_conv2d(h, .filters = 5, .kernel_size = {3, 3}, .dilation_rate = {2, 2},
                       .padding = NNCC_SAME, .activation = NNCC_RELU, .name = "dilated"));
    h = OK(nncc_flatten(h));
    nncc_tensor *y = OK(nncc_dense(h, .units = 4, .activation = NNCC_SOFTMAX, .name = "out"));
    return OK(nncc_model_new(x, y, .name = "tile"));
}



static nncc_history *train(nncc_model *m, struct nncc_array *x, struct nncc_array *y)
{
    ST(nncc_model_init_weights(m, 3));
    ST(nncc_compile(m, .optimizer = nncc_adam(.learning_rate = 1e-2f),
                    .loss = NNCC_CATEGORICAL_CROSSENTROPY));
    return OK(nncc_fit(m, x, y, .batch_size = 16, .epochs = 2, .no_shuffle = true));
}

static void test_schedules(void **state)
{
    (void)state;
    nncc_model *m = model();
    struct nncc_array *x = test_rows(16, m->inputs[0]->shape, 0), *y = test_rows(16, m->outputs[0]->shape, 1);
    nncc_history_free(train(m, x, y));
    struct ir_plan *plan = &m->train->train;
    const struct ir_program *p = &plan->program;
    const struct ir_tile *t = plan->tiles;
    const struct ir_tile *f = &t[find_node(p, IR_CONV2D, "same")];
    assert_int_equal(f->parallel, IR_PAR_ROWS);
    assert_false(f->pointwise);
    assert_int_equal(f->tile_rows, 384); /* K = 27: the 384-row cap, not the stack budget */
    assert_true(f->min_work > 0);
    assert_true(f->direct); /* K = 27 taps: read in place */
    assert_false(t[find_node(p, IR_CONV2D, "strided")].direct); /* K = 72 */
    assert_false(t[find_node(p, IR_CONV2D, "dilated")].direct);
    assert_true(t[find_node(p, IR_CONV2D, "pointwise")].pointwise);
    assert_false(t[find_node(p, IR_CONV2D, "pointwise")].direct);
    const struct ir_tile *gi = &t[find_node(p, IR_CONV2D_GRAD_INPUT, "strided")];
    assert_int_equal(gi->parallel, IR_PAR_IMAGES);
    assert_int_equal(gi->tile_rows % 6, 0);
    assert_true(gi->tile_rows * 72 <= 65536);
    const struct ir_tile *gf = &t[find_node(p, IR_CONV2D_GRAD_FILTER, "dilated")];
    assert_int_equal(gf->parallel, IR_PAR_RUNS);
    assert_int_equal(t[find_node(p, IR_CONV2D_GRAD_FILTER, "pointwise")].parallel, IR_PAR_OUT_ROWS);
    assert_int_equal(gf->tile_rows % 6, 0);
    assert_int_equal(t[find_node(p, IR_MATMUL, "out")].parallel, IR_PAR_ROWS);
    assert_int_equal(t[find_node(p, IR_MATMUL_TN, "out")].parallel, IR_PAR_OUT_ROWS);
    assert_int_equal(t[find_node(p, IR_BIAS_ADD, "out")].parallel, IR_PAR_NONE);
    setenv("NNCC_TILE_ROWS", "6", 1);
    ST(pass_tile(plan));
    t = plan->tiles;
    assert_int_equal(t[find_node(p, IR_CONV2D, "same")].tile_rows, 6);
    unsetenv("NNCC_TILE_ROWS");
    nncc_array_free(x);
    nncc_array_free(y);
    nncc_model_free(m);
}

static void test_tiles_do_not_change_results(void **state)
{
    (void)state;
    nncc_model *m[2];
    nncc_history *h[2];
    struct nncc_array *pred[2], *ref = NULL;
    struct nncc_array *x = NULL, *y = NULL;
    for (int k = 0; k < 2; k++) {
        if (k == 1)
            setenv("NNCC_TILE_ROWS", "6", 1);
        m[k] = model();
        if (!x) {
            x = test_rows(37, m[k]->inputs[0]->shape, 0);
            y = test_rows(37, m[k]->outputs[0]->shape, 1);
        }
        ST(nncc_model_init_weights(m[k], 5));
        pred[k] = OK(nncc_predict(m[k], x, .batch_size = 37));
        if (k == 0)
            ref = OK(nncc_predict(m[k], x, .reference = true));
        h[k] = train(m[k], x, y);
        unsetenv("NNCC_TILE_ROWS");
    }
    for (int64_t i = 0; i < nncc_array_size(pred[0]); i++) {
        if (pred[0]->data[i] != pred[1]->data[i])
            fail_msg("output %lld: default tiles %.9g, 6-row tiles %.9g", (long long)i,
                     pred[0]->data[i], pred[1]->data[i]);
        assert_true(fabs(pred[0]->data[i] - ref->data[i]) <= 1e-5);
    }
    for (int e = 0; e < 2; e++) {
        double a = nncc_history_get(h[0], "loss", e), b = nncc_history_get(h[1], "loss", e);
        if (!(fabs(a - b) <= 1e-5 * fabs(a)))
            fail_msg("epoch %d loss: default tiles %.9g, 6-row tiles %.9g", e, a, b);
    }
    for (int k = 0; k < 2; k++) {
        nncc_history_free(h[k]);
        nncc_array_free(pred[k]);
        nncc_model_free(m[k]);
    }
    nncc_array_free(ref);
    nncc_array_free(x);
    nncc_array_free(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedules),
        cmocka_unit_test(test_tiles_do_not_change_results),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
