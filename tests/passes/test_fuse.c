/*
 * test_fuse: the fusion pass (passes/fuse.c), rule by rule.
 *
 * For each rule, a model through the public API whose program must contain
 * the group (head, rule, epilogue, absorbed nodes, result) — in the
 * inference program, or in the training step nncc_fit builds — and cases a
 * rule must refuse (an activation whose derivative needs its input keeps
 * its own kernel).  Then the numbers: the same models trained and run with
 * fusion and with NNCC_NO_FUSE=1 must give the same History, weights and
 * predictions; fused epilogues do the same float operations in the same
 * order, so they are compared exactly (pool_wgrad, which reorders sums, to
 * a tolerance).  (test_codegen, test_grad and
 * test_golden compare fused code with the reference interpreter and Keras.)
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


/* Input 8x8x2, Conv2D 4 3x3 relu, MaxPooling2D 2, Flatten, Dense 8 tanh,
 * Dense 6 softplus (its derivative needs its input), Dense 3 softmax. */
static nncc_model *model(void)
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(8, 8, 2));
    nncc_tensor *h = OK(nncc_conv2d(x, .filters = 4, .kernel_size = {3, 3}, .padding = NNCC_SAME,
                                    .activation = NNCC_RELU, .name = "conv"));
    h = OK(nncc_maxpool2d(h, .pool_size = {2, 2}, .name = "pool"));
    h = OK(nncc_flatten(h));
    h = OK(nncc_dense(h, .units = 8, .activation = NNCC_TANH, .name = "hidden"));
    h = OK(nncc_dense(h, .units = 6, .activation = NNCC_SOFTPLUS, .name = "soft"));
    nncc_tensor *y = OK(nncc_dense(h, .units = 3, .activation = NNCC_SOFTMAX, .name = "out"));
    return OK(nncc_model_new(x, y, .name = "fuse"));
}

/* Element-wise chains: BatchNormalization → relu (inference), Add → tanh
 * → sigmoid (Activation layers; in training tanh's gradient reads the
 * Add, so only Add → tanh fuses, its gradient taking tanh' from y). */
static nncc_model *model_chain(void)
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(6, 6, 3));
    nncc_tensor *c = OK(nncc_conv2d(x, .filters = 4, .kernel_size = {3, 3}, .padding = NNCC_SAME,
                                    .name = "conv"));
    c = OK(nncc_batchnorm(c, .name = "bn"));
    c = OK(nncc_activation(c, .activation = NNCC_RELU, .name = "bn_relu"));
    nncc_tensor *f = OK(nncc_flatten(c));
    nncc_tensor *a = OK(nncc_dense(f, .units = 8, .name = "a"));
    nncc_tensor *b = OK(nncc_dense(f, .units = 8, .name = "b"));
    nncc_tensor *s = OK(nncc_add(((nncc_tensor *[]){a, b}), 2, .name = "sum"));
    s = OK(nncc_activation(s, .activation = NNCC_TANH, .name = "sum_tanh"));
    s = OK(nncc_activation(s, .activation = NNCC_SIGMOID, .name = "sum_sigmoid"));
    nncc_tensor *y = OK(nncc_dense(s, .units = 3, .activation = NNCC_SOFTMAX, .name = "out"));
    return OK(nncc_model_new(x, y, .name = "chain"));
}

/* pool_wgrad's other paths: 40 filters (a vector block of 32 and a scalar
 * tail), stride 2 with SAME padding, 3 input channels, average pooling
 * with overlapping windows; then a 7x7x3 filter (147 taps: im2col and a
 * GEMM per image). */
static nncc_model *model_wgrad(void)
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(11, 11, 3));
    nncc_tensor *a = OK(nncc_conv2d(x, .filters = 40, .kernel_size = {3, 3}, .strides = {2, 2},
                                    .padding = NNCC_SAME, .activation = NNCC_RELU, .name = "conv"));
    a = OK(nncc_avgpool2d(a, .pool_size = {3, 3}, .strides = {1, 1}, .name = "pool"));
    a = OK(nncc_flatten(a));
    nncc_tensor *b = OK(nncc_conv2d(x, .filters = 8, .kernel_size = {7, 7}, .activation = NNCC_TANH,
                                    .name = "big"));
    b = OK(nncc_maxpool2d(b, .pool_size = {2, 2}, .name = "bigpool"));
    b = OK(nncc_flatten(b));
    nncc_tensor *h = OK(nncc_concatenate(((nncc_tensor *[]){a, b}), 2));
    nncc_tensor *y = OK(nncc_dense(h, .units = 3, .activation = NNCC_SOFTMAX, .name = "out"));
    return OK(nncc_model_new(x, y, .name = "fuse_wgrad"));
}


/* Node i heads a group of `rule` whose last node is j (absorbed, its value
 * the group's result). */
/* A plan's fusion groups, read the way the assertions below name them. */
#define ABSORBED(i) (f[i].kind == IR_GROUP_MEMBER && f[i].head < (i))
#define EPI(i) ir_group_epilogue(&f[i])
#define IS_HEAD(i) (f[i].kind != IR_GROUP_NONE && f[i].kind != IR_GROUP_MEMBER)

/* The model's inference plan (passes/pipeline.c), fused. */
static struct ir_plan *inference_plan(nncc_model *m, struct ir_plan plans[2])
{
    struct nncc_lower_opts lo = {.model_name = m->name};
    ST(nncc_lower(&m->program, &lo, plans));
    return &plans[0];
}

static void expect_group(const struct ir_program *p, const struct ir_group *f, int i,
                         const char *rule, int j)
{
    assert_true(i >= 0 && j > i);
    if (strcmp(ir_group_kind_name(f[i].kind), rule) != 0)
        fail_msg("node %d (%s): rule %s, want %s", i, p->nodes[i]->name,
                 ir_group_kind_name(f[i].kind), rule);
    assert_int_equal(f[j].head, i);
    assert_false(ABSORBED(i));
    assert_true(ABSORBED(j));
    assert_ptr_equal(f[i].result, p->nodes[j]->out);
    if (EPI(i)->bias) /* bias_act: the bias_add reading the head is absorbed */
        assert_true(ABSORBED(i + 1) && p->nodes[i + 1]->op == IR_BIAS_ADD);
}

static void test_inference_groups(void **state)
{
    (void)state;
    nncc_model *m = model();
    struct ir_plan plans[2];
    const struct ir_program *p = &inference_plan(m, plans)->program;
    const struct ir_group *f = plans[0].groups;
    /* conv_pool: the 2x2 max pooling runs in the convolution's kernel. */
    int conv = find_node(p, IR_CONV2D, "conv"), mp = find_node(p, IR_MAXPOOL2D, "pool");
    expect_group(p, f, conv, "conv_pool", mp);
    assert_ptr_equal(EPI(conv)->bias, p->nodes[conv + 1]->in[1]);
    assert_true(EPI(conv)->has_act);
    assert_int_equal(EPI(conv)->act, NNCC_RELU);
    assert_ptr_equal(f[conv].conv_pool.pool, p->nodes[mp]);
    assert_null(ir_group_second(&f[conv]));
    assert_true(ABSORBED(find_node(p, IR_ACTIVATION, "conv")));
    int hidden = find_node(p, IR_MATMUL, "hidden");
    expect_group(p, f, hidden, "bias_act", find_node(p, IR_ACTIVATION, "hidden"));
    assert_int_equal(EPI(hidden)->act, NNCC_TANH);
    /* At inference nothing needs softplus' input again: it fuses too. */
    int soft = find_node(p, IR_MATMUL, "soft");
    expect_group(p, f, soft, "bias_act", find_node(p, IR_ACTIVATION, "soft"));
    int out = find_node(p, IR_MATMUL, "out");
    expect_group(p, f, out, "bias_act", find_node(p, IR_SOFTMAX, "out"));
    assert_true(EPI(out)->softmax);
    assert_false(EPI(out)->has_act);
    /* Pooling and the reshape are no heads. */
    assert_false(IS_HEAD(mp));
    ir_plan_free(&plans[0]);
    nncc_model_free(m);
}


/* Compiles and fits m for two epochs; returns its History. */
static nncc_history *train(nncc_model *m, struct nncc_array *x, struct nncc_array *y)
{
    ST(nncc_model_init_weights(m, 7));
    ST(nncc_compile(m, .optimizer = nncc_adam(.learning_rate = 1e-2f),
                    .loss = NNCC_CATEGORICAL_CROSSENTROPY, .metrics = NNCC_ACCURACY));
    return OK(nncc_fit(m, x, y, .batch_size = 8, .epochs = 2, .no_shuffle = true));
}

static void test_training_groups(void **state)
{
    (void)state;
    nncc_model *m = model();
    struct nncc_array *x = test_rows(20, m->inputs[0]->shape, 0);
    struct nncc_array *y = test_rows(20, m->outputs[0]->shape, 1);
    nncc_history_free(train(m, x, y));
    struct ir_plan *plan = &m->train->train;
    const struct ir_program *p = &plan->program;
    const struct ir_group *f = plan->groups;
    /* conv_pool with pool_keep: the convolution's kernel also writes the
     * pooling's argmax, which the pooling gradient reads. */
    int conv = find_node(p, IR_CONV2D, "conv");
    int mp = find_node(p, IR_MAXPOOL2D, "pool"), am = find_node(p, IR_POOL_ARGMAX, "pool");
    expect_group(p, f, conv, "conv_pool", mp);
    assert_ptr_equal(f[conv].conv_pool.pool, p->nodes[mp]);
    assert_ptr_equal(ir_group_second(&f[conv]), p->nodes[am]->out);
    assert_true(ABSORBED(am));
    assert_false(IS_HEAD(mp));
    int hidden = find_node(p, IR_MATMUL, "hidden");
    expect_group(p, f, hidden, "bias_act", find_node(p, IR_ACTIVATION, "hidden"));
    /* softplus' gradient reads its input z: only the bias joins the GEMM. */
    int soft = find_node(p, IR_MATMUL, "soft");
    expect_group(p, f, soft, "bias_act", find_node(p, IR_BIAS_ADD, "soft"));
    assert_false(EPI(soft)->has_act);
    int sg = find_node(p, IR_ACTIVATION_GRAD, "soft");
    assert_true(sg >= 0);
    assert_false(f[sg].grad_from_y);
    assert_false(ABSORBED(sg));
    /* The output layer feeds the loss through its logits (the stable path). */
    int out = find_node(p, IR_MATMUL, "out");
    expect_group(p, f, out, "bias_act", find_node(p, IR_BIAS_ADD, "out"));
    assert_false(EPI(out)->softmax);
    /* dact: "soft"'s matmul_nt computes the gradient of hidden's output;
     * tanh'(y) multiplies it in its epilogue. */
    int nt = find_node(p, IR_MATMUL_NT, "soft");
    expect_group(p, f, nt, "dact", find_node(p, IR_ACTIVATION_GRAD, "hidden"));
    assert_int_equal(EPI(nt)->dact, NNCC_TANH);
    assert_ptr_equal(EPI(nt)->dact_y, p->nodes[find_node(p, IR_ACTIVATION, "hidden")]->out);
    /* pool_wgrad: conv is the first layer, so the gradient of its output
     * (pooling gradient · relu') is read only by its filter and bias
     * gradients, which the pooling gradient's kernel computes per image. */
    int pg = find_node(p, IR_POOL2D_GRAD, "pool");
    int wg = find_node(p, IR_CONV2D_GRAD_FILTER, "conv"), bg = find_node(p, IR_BIAS_GRAD, "conv");
    expect_group(p, f, pg, "pool_wgrad", wg);
    assert_true(EPI(pg)->has_dact); /* the dact it extends */
    assert_int_equal(EPI(pg)->dact, NNCC_RELU);
    assert_ptr_equal(f[pg].pool_wgrad.wgrad, p->nodes[wg]);
    assert_ptr_equal(ir_group_second(&f[pg]), p->nodes[bg]->out);
    assert_true(ABSORBED(bg));
    assert_true(ABSORBED(find_node(p, IR_ACTIVATION_GRAD, "conv")));
    /* The relu gradient, absorbed, would read y, not z. */
    assert_true(f[find_node(p, IR_ACTIVATION_GRAD, "conv")].grad_from_y);
    assert_int_equal(p->nodes[pg]->n_in, 4);
    assert_ptr_equal(p->nodes[pg]->in[3], p->nodes[am]->out);
    /* Without conv_pool, pool_keep: the max pooling writes the argmax. */
    setenv("NNCC_NO_FUSE", "conv_pool", 1);
    ST(pass_fuse(plan));
    f = plan->groups;
    unsetenv("NNCC_NO_FUSE");
    assert_string_equal(ir_group_kind_name(f[mp].kind), "pool_keep");
    assert_ptr_equal(f[mp].result, p->nodes[mp]->out);
    assert_ptr_equal(ir_group_second(&f[mp]), p->nodes[am]->out);
    assert_true(ABSORBED(am));
    assert_null(f[conv].conv_pool.pool);
    /* Rules can be turned off by name: without pool_wgrad, only dact. */
    setenv("NNCC_NO_FUSE", "bias_act,pool_wgrad", 1);
    ST(pass_fuse(plan));
    f = plan->groups;
    unsetenv("NNCC_NO_FUSE");
    expect_group(p, f, pg, "dact", find_node(p, IR_ACTIVATION_GRAD, "conv"));
    assert_null(f[pg].pool_wgrad.wgrad);
    assert_null(ir_group_second(&f[pg]));
    assert_false(ABSORBED(wg));
    assert_false(IS_HEAD(conv));
    nncc_array_free(x);
    nncc_array_free(y);
    nncc_model_free(m);
}

/* Trains model() fused as NNCC_NO_FUSE says (NULL: every rule) and
 * unfused, and compares History, weights and predictions: to `tol`
 * relative (0: bit for bit). */
static void compare_unfused(nncc_model *(*model)(void), const char *no_fuse, double tol)
{
    nncc_model *m[2];
    nncc_history *h[2];
    struct nncc_array *pred[2];
    struct nncc_array *x = NULL, *y = NULL;
    for (int k = 0; k < 2; k++) {
        if (k == 1)
            setenv("NNCC_NO_FUSE", "1", 1);
        else if (no_fuse)
            setenv("NNCC_NO_FUSE", no_fuse, 1);
        m[k] = model();
        if (!x) {
            x = test_rows(20, m[k]->inputs[0]->shape, 0);
            y = test_rows(20, m[k]->outputs[0]->shape, 1);
        }
        h[k] = train(m[k], x, y);
        pred[k] = OK(nncc_predict(m[k], x));
        unsetenv("NNCC_NO_FUSE");
    }
#define SAME(a, b) (tol == 0 ? (a) == (b) : fabs((double)(a) - (b)) <= tol * (1e-3 + fabs((double)(b))))
    for (int e = 0; e < 2; e++)
        for (int q = 0; q < nncc_history_num_keys(h[0]); q++) {
            const char *key = nncc_history_key(h[0], q);
            double a = nncc_history_get(h[0], key, e), b = nncc_history_get(h[1], key, e);
            if (!SAME(a, b))
                fail_msg("epoch %d %s: fused %.9g, unfused %.9g", e, key, a, b);
        }
    for (int64_t i = 0; i < nncc_array_size(pred[0]); i++)
        if (!SAME(pred[0]->data[i], pred[1]->data[i]))
            fail_msg("prediction %lld: fused %.9g, unfused %.9g", (long long)i,
                     pred[0]->data[i], pred[1]->data[i]);
    for (int l = 0; l < nncc_model_num_layers(m[0]); l++) {
        const nncc_layer *la = nncc_model_layer(m[0], l), *lb = nncc_model_layer(m[1], l);
        for (int w = 0; w < nncc_layer_num_weights(la); w++) {
            int64_t cnt = 1;
            struct nncc_shape s = nncc_layer_weight_shape(la, w);
            for (int d = 0; d < s.rank; d++)
                cnt *= s.dim[d];
            float *a = malloc(sizeof *a * (size_t)cnt), *b = malloc(sizeof *b * (size_t)cnt);
            assert_non_null(a);
            assert_non_null(b);
            ST(nncc_get_weights(la, w, a, cnt));
            ST(nncc_get_weights(lb, w, b, cnt));
            for (int64_t i = 0; i < cnt; i++)
                if (!SAME(a[i], b[i]))
                    fail_msg("layer %s weight %d [%lld]: fused %.9g, unfused %.9g",
                             nncc_layer_name(la), w, (long long)i, a[i], b[i]);
            free(a);
            free(b);
        }
    }
#undef SAME
    for (int k = 0; k < 2; k++) {
        nncc_history_free(h[k]);
        nncc_array_free(pred[k]);
        nncc_model_free(m[k]);
    }
    nncc_array_free(x);
    nncc_array_free(y);
}

/* Epilogue rules do the same float operations in the same order. */
static void test_numbers_match_unfused(void **state)
{
    (void)state;
    compare_unfused(model, "pool_wgrad", 0);
}

/* pool_wgrad sums dw and db in another order (per image, then eight
 * partial sums): equal up to rounding after two epochs of Adam. */
static void test_pool_wgrad_numbers(void **state)
{
    (void)state;
    compare_unfused(model, NULL, 1e-4);
    /* Both pool_wgrad groups form in model_wgrad's training step. */
    nncc_model *m = model_wgrad();
    struct nncc_array *x = test_rows(20, m->inputs[0]->shape, 0);
    struct nncc_array *y = test_rows(20, m->outputs[0]->shape, 1);
    nncc_history_free(train(m, x, y));
    struct ir_plan *plan = &m->train->train;
    const struct ir_program *p = &plan->program;
    const struct ir_group *f = plan->groups;
    expect_group(p, f, find_node(p, IR_POOL2D_GRAD, "pool"), "pool_wgrad",
                 find_node(p, IR_CONV2D_GRAD_FILTER, "conv"));
    expect_group(p, f, find_node(p, IR_POOL2D_GRAD, "bigpool"), "pool_wgrad",
                 find_node(p, IR_CONV2D_GRAD_FILTER, "big"));
    nncc_array_free(x);
    nncc_array_free(y);
    nncc_model_free(m);
    compare_unfused(model_wgrad, NULL, 1e-4);
}

static void test_chain_groups(void **state)
{
    (void)state;
    nncc_model *m = model_chain();
    struct ir_plan plans[2];
    const struct ir_program *p = &inference_plan(m, plans)->program;
    const struct ir_group *f = plans[0].groups;
    int bn = find_node(p, IR_BATCHNORM, "bn");
    expect_group(p, f, bn, "chain", find_node(p, IR_ACTIVATION, "bn_relu"));
    assert_int_equal(f[bn].chain.n, 1);
    int sum = find_node(p, IR_ADD, "sum");
    expect_group(p, f, sum, "chain", find_node(p, IR_ACTIVATION, "sum_sigmoid"));
    assert_int_equal(f[sum].chain.n, 2);
    assert_true(ABSORBED(find_node(p, IR_ACTIVATION, "sum_tanh")));
    ir_plan_free(&plans[0]);

    struct nncc_array *x = test_rows(20, m->inputs[0]->shape, 0);
    struct nncc_array *y = test_rows(20, m->outputs[0]->shape, 1);
    nncc_history_free(train(m, x, y));
    p = &m->train->train.program;
    f = m->train->train.groups;
    sum = find_node(p, IR_ADD, "sum");
    int tanh_ = find_node(p, IR_ACTIVATION, "sum_tanh");
    expect_group(p, f, sum, "chain", tanh_);
    assert_int_equal(f[sum].chain.n, 1);
    assert_false(ABSORBED(find_node(p, IR_ACTIVATION, "sum_sigmoid")));
    int tg = find_node(p, IR_ACTIVATION_GRAD, "sum_tanh");
    assert_true(f[tg].grad_from_y);
    nncc_array_free(x);
    nncc_array_free(y);
    nncc_model_free(m);
    /* The chains compute the same floats as the separate kernels. */
    compare_unfused(model_chain, NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inference_groups),
        cmocka_unit_test(test_training_groups),
        cmocka_unit_test(test_numbers_match_unfused),
        cmocka_unit_test(test_pool_wgrad_numbers),
        cmocka_unit_test(test_chain_groups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
