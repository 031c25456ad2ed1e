/*
 * test_memplan: the memory planner (passes/memplan.c) on real programs.
 *
 * Models are built through the public API: an MLP, a CNN with pooling (and
 * batch normalization), a branching model with Add and Concatenate, and a
 * model with Reshape, Dropout and Flatten views (one of its outputs a view
 * of a view, copied out at the end).  Their inference programs, and the
 * training and evaluation steps nncc_fit builds (Adam), are planned, both
 * without fusion and with the groups passes/fuse.c finds (as codegen plans
 * them), and each plan is checked against liveness recomputed here from
 * the program alone: the right values have regions (none for values fused
 * away: absorbed nodes' and heads' that write their group's result), of
 * the right size, aligned to 16 floats, inside their arena, and
 * no two values alive at the same node share a float of the same arena (a
 * fusion group's result being written by the group's head).  The code
 * generator must use the plan (the workspace it reports and the addresses
 * in the source), the CNN's training step must need less than one region
 * per value, and generated inference must still match the reference
 * interpreter.  (test_codegen, test_grad, test_train and test_golden check
 * the numbers further.)
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
#include "codegen/codegen.h"
#include "runtime/train/train.h"
#include "pass_helpers.h"

#define T(...) ((nncc_tensor *[]){__VA_ARGS__})


/* ---- Models -------------------------------------------------------------- */

static nncc_model *mlp(void)
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(20));
    nncc_tensor *h = OK(nncc_dense(x, .units = 32, .activation = NNCC_RELU));
    h = OK(nncc_dense(h, .units = 16, .activation = NNCC_RELU));
    nncc_tensor *y = OK(nncc_dense(h, .units = 5, .activation = NNCC_SOFTMAX));
    return OK(nncc_model_new(x, y, .name = "mlp"));
}

static nncc_model *cnn(void)
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(12, 12, 3));
    nncc_tensor *h = OK(nncc_conv2d(x, .filters = 8, .kernel_size = {3, 3}, .padding = NNCC_SAME,
                                    .activation = NNCC_RELU));
    h = OK(nncc_batchnorm(h));
    h = OK(nncc_maxpool2d(h, .pool_size = {2, 2}));
    h = OK(nncc_conv2d(h, .filters = 16, .kernel_size = {3, 3}, .activation = NNCC_RELU));
    h = OK(nncc_avgpool2d(h, .pool_size = {2, 2}));
    h = OK(nncc_flatten(h));
    nncc_tensor *y = OK(nncc_dense(h, .units = 4, .activation = NNCC_SOFTMAX));
    return OK(nncc_model_new(x, y, .name = "cnn"));
}

/* Two branches joined by Add and Concatenate; with `two_outputs`, the Add
 * (read again later) is an output too. */
static nncc_model *branching(bool two_outputs)
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(8, 8, 4));
    nncc_tensor *a = OK(nncc_conv2d(x, .filters = 6, .kernel_size = {1, 1}, .activation = NNCC_RELU));
    nncc_tensor *b = OK(nncc_conv2d(x, .filters = 6, .kernel_size = {3, 3}, .padding = NNCC_SAME,
                                    .activation = NNCC_TANH));
    nncc_tensor *s = OK(nncc_add(T(a, b), 2));
    nncc_tensor *c = OK(nncc_conv2d(s, .filters = 6, .kernel_size = {3, 3}, .padding = NNCC_SAME));
    nncc_tensor *cat = OK(nncc_concatenate(T(a, c), 2));
    nncc_tensor *p = OK(nncc_global_avgpool2d(cat));
    nncc_tensor *y = OK(nncc_dense(p, .units = 3, .activation = NNCC_SOFTMAX));
    if (two_outputs)
        return OK(nncc_model_new_n(T(x), 1, T(y, s), 2, .name = "branching2"));
    return OK(nncc_model_new(x, y, .name = "branching"));
}

/* Views: Reshape and Dropout of a Dense, Flatten of those (a chain of
 * three views read by an Add late in the program); with `two_outputs`, a
 * Reshape of the chain is an output, copied out after the last kernel. */
static nncc_model *views(bool two_outputs)
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(24));
    nncc_tensor *d1 = OK(nncc_dense(x, .units = 12, .activation = NNCC_RELU));
    nncc_tensor *r = OK(nncc_reshape(d1, .target_shape = NNCC_SHAPE(3, 4)));
    nncc_tensor *dr = OK(nncc_dropout(r, .rate = 0.25f));
    nncc_tensor *d2 = OK(nncc_dense(dr, .units = 4, .activation = NNCC_TANH));
    nncc_tensor *f = OK(nncc_flatten(d2));
    nncc_tensor *d3 = OK(nncc_dense(f, .units = 12, .activation = NNCC_SIGMOID));
    nncc_tensor *f2 = OK(nncc_flatten(dr));
    nncc_tensor *s = OK(nncc_add(T(d3, f2), 2));
    nncc_tensor *y = OK(nncc_dense(s, .units = 2, .activation = NNCC_SOFTMAX));
    if (two_outputs) {
        nncc_tensor *v = OK(nncc_reshape(f2, .target_shape = NNCC_SHAPE(4, 3)));
        return OK(nncc_model_new_n(T(x), 1, T(y, v), 2, .name = "views2"));
    }
    return OK(nncc_model_new(x, y, .name = "views"));
}

/* ---- Checking a plan against liveness recomputed here --------------------- */

static bool is_output(const struct ir_program *p, const nncc_tensor *t)
{
    for (int k = 0; k < p->n_outputs; k++)
        if (p->outputs[k] == t)
            return true;
    return false;
}

/* Whether reading t reads v's memory (t is v, or a view chain over v). */
static bool reads_memory_of(const nncc_tensor *t, const nncc_tensor *v)
{
    for (;;) {
        if (t == v)
            return true;
        if (!ir_op(t->producer->op)->view)
            return false;
        t = t->producer->in[0];
    }
}

struct sizes {
    int64_t planned_fixed, planned_per_sample; /* the plan */
    int64_t sum_fixed, sum_per_sample;         /* one region per value */
    int64_t peak_per_sample;                   /* most floats per sample alive at one node */
};

/* Plans pl's memory again with its fusion groups (or none: pl->groups
 * NULL) and checks the plan; with `emitted`, also that the code generator
 * uses it.  Returns the arena sizes. */
static struct sizes check_plan_with(struct ir_plan *pl, bool emitted, const char *what)
{
    const struct ir_program *p = &pl->program;
    const struct ir_group *fused = pl->groups;
    ST(pass_memplan(pl));
    const struct ir_memplan plan = pl->mem;
    int n = p->n_nodes;
    assert_int_equal(plan.n, n);
    int *first = calloc((size_t)n + 1, sizeof *first), *last = calloc((size_t)n + 1, sizeof *last);
    assert_non_null(first);
    assert_non_null(last);
    /* Which kernel writes each value: its own, or its fusion group's head. */
    for (int i = 0; i < n; i++)
        first[i] = i;
    for (int h = 0; fused && h < n; h++)
        for (int r = h + 1; fused[h].result && r < n; r++)
            if (p->nodes[r]->out == fused[h].result || p->nodes[r]->out == ir_group_second(&fused[h]))
                first[r] = h;
    struct sizes z = {.planned_fixed = plan.fixed_size, .planned_per_sample = plan.per_sample_size};
    assert_int_equal(plan.fixed_size % 16, 0);
    assert_int_equal(plan.per_sample_size % 16, 0);
    int regions = 0;
    for (int i = 0; i < n; i++) {
        const struct ir_node *nd = p->nodes[i];
        const nncc_tensor *t = nd->out;
        bool want = nd->op != IR_INPUT && nd->op != IR_PARAM && !ir_op(nd->op)->view &&
                    !is_output(p, t) && !(fused && fused[i].kind == IR_GROUP_MEMBER && first[i] == i) &&
                    !(fused && fused[i].result && fused[i].result != t);
        if (!want) {
            if (plan.offset[i] != -1)
                fail_msg("%s: %s (node %d) has a region", what, nd->name, i);
            continue;
        }
        regions++;
        int64_t size = ir_shape_numel(t->shape, t->batched ? 1 : 0);
        if (plan.offset[i] < 0)
            fail_msg("%s: %s (node %d) has no region", what, nd->name, i);
        assert_int_equal(plan.size[i], size);
        assert_int_equal(plan.batched_arena[i], t->batched);
        assert_int_equal(plan.offset[i] % 16, 0);
        assert_true(plan.offset[i] + size <=
                    (t->batched ? plan.per_sample_size : plan.fixed_size));
        *(t->batched ? &z.sum_per_sample : &z.sum_fixed) += size;
        /* Alive from node i to its last reader (through views), or to the
         * end when an output reads it. */
        last[i] = i;
        for (int j = i + 1; j < n; j++) {
            const struct ir_node *r = p->nodes[j];
            if (ir_op(r->op)->view)
                continue;
            for (int k = 0; k < r->n_in; k++)
                if (reads_memory_of(r->in[k], t))
                    last[i] = j;
        }
        for (int k = 0; k < p->n_outputs; k++)
            if (reads_memory_of(p->outputs[k], t))
                last[i] = n;
        assert_int_equal(plan.last[i], last[i]);
        assert_int_equal(plan.first[i], first[i]);
    }
    assert_int_equal(plan.unplanned_fixed, z.sum_fixed);
    assert_int_equal(plan.unplanned_per_sample, z.sum_per_sample);

    /* The invariant: values alive at one node never share a float. */
    int pairs = 0;
    for (int i = 0; i < n; i++) {
        if (plan.offset[i] < 0)
            continue;
        for (int j = i + 1; j < n; j++) {
            if (plan.offset[j] < 0 || plan.batched_arena[j] != plan.batched_arena[i])
                continue;
            if (first[j] > last[i] || first[i] > last[j]) /* never alive together */
                continue;
            pairs++;
            int64_t a0 = plan.offset[i], a1 = a0 + plan.size[i];
            int64_t b0 = plan.offset[j], b1 = b0 + plan.size[j];
            if (a0 < b1 && b0 < a1)
                fail_msg("%s: %s [%lld, %lld) and %s [%lld, %lld) overlap in the %s arena "
                         "but both live at node %d",
                         what, p->nodes[i]->name, (long long)a0, (long long)a1, p->nodes[j]->name,
                         (long long)b0, (long long)b1, plan.batched_arena[i] ? "batched" : "fixed",
                         j);
        }
    }
    /* A lower bound no plan can beat: the floats alive at the worst node. */
    for (int at = 0; at < n; at++) {
        int64_t alive = 0;
        for (int i = 0; i <= at; i++)
            if (plan.offset[i] >= 0 && plan.batched_arena[i] && first[i] <= at && last[i] >= at)
                alive += plan.size[i];
        if (alive > z.peak_per_sample)
            z.peak_per_sample = alive;
    }
    assert_true(plan.per_sample_size >= z.peak_per_sample);

    /* The text form names the arenas. */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    ir_plan_print_memory(pl, f);
    fclose(f);
    assert_non_null(strstr(text, "memory plan: fixed arena"));
    free(text);

    /* The code generator uses this plan: its workspace and addresses. */
    struct cg_entry e = {.plan = pl, .name = "entry", .prefix = ""};
    char *src = NULL;
    size_t slen = 0;
    if (emitted) {
        ST(nncc_codegen(&e, 1, "memplan", &src, &slen));
        assert_int_equal(e.ws_per_sample, plan.per_sample_size);
        assert_true(e.ws_fixed >= plan.fixed_size); /* kernel scratch space is added */
    }
    for (int i = 0; emitted && i < n; i++) {
        if (plan.offset[i] < 0)
            continue;
        char line[160];
        if (plan.batched_arena[i])
            snprintf(line, sizeof line, "float *t%d = ws + %lldL + (size_t)n * %lldL;", i,
                     (long long)plan.fixed_size, (long long)plan.offset[i]);
        else
            snprintf(line, sizeof line, "float *t%d = ws + %lldL;", i, (long long)plan.offset[i]);
        if (!strstr(src, line))
            fail_msg("%s: the generated source lacks \"%s\"", what, line);
    }
    free(src);

    printf("  %-34s %3d regions, %4d overlapping pairs checked; per sample %6lld floats "
           "planned, %6lld one region per value, %6lld alive at the worst node; fixed %6lld "
           "planned, %6lld unplanned\n",
           what, regions, pairs, (long long)plan.per_sample_size, (long long)z.sum_per_sample,
           (long long)z.peak_per_sample, (long long)plan.fixed_size, (long long)z.sum_fixed);
    free(first);
    free(last);
    return z;
}

/* pl's memory planned without fusion and with its groups; returns the
 * sizes of the latter, the plan code generation uses. */
static struct sizes check_plan(struct ir_plan *pl, const char *what)
{
    char label[80];
    snprintf(label, sizeof label, "%s, unfused", what);
    struct ir_group *fused = pl->groups;
    pl->groups = NULL;
    check_plan_with(pl, false, label);
    pl->groups = fused;
    int groups = 0;
    for (int i = 0; i < pl->program.n_nodes; i++)
        groups += fused[i].result != NULL;
    snprintf(label, sizeof label, "%s, %d fused", what, groups);
    return check_plan_with(pl, true, label);
}

/* The model's inference plan (passes/pipeline.c). */
static void inference_plan(nncc_model *m, struct ir_plan plans[2])
{
    struct nncc_lower_opts lo = {.model_name = m->name};
    ST(nncc_lower(&m->program, &lo, plans));
}

/* ---- Inference: the plan, and the numbers it computes --------------------- */

/* Generated inference (with the plan) against the reference interpreter. */
static void check_predict(nncc_model *m, uint64_t seed)
{
    ST(nncc_model_init_weights(m, seed));
    const int64_t n = 7;
    int64_t row = ir_shape_numel(m->inputs[0]->shape, 1);
    float *x = malloc(sizeof *x * (size_t)(n * row));
    assert_non_null(x);
    uint64_t s = seed;
    for (int64_t i = 0; i < n * row; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = (float)((double)(s >> 11) * 0x1.0p-53 * 2 - 1);
    }
    struct nncc_array *got[4] = {0}, *want[4] = {0};
    const float *xs[1] = {x};
    ST(nncc_predict_rows_n(m, xs, n, got, .batch_size = 3)); /* a partial last batch */
    ST(nncc_predict_rows_n(m, xs, n, want, .batch_size = 3, .reference = true));
    for (int k = 0; k < m->n_outputs; k++) {
        int64_t size = nncc_array_size(want[k]);
        assert_int_equal(nncc_array_size(got[k]), size);
        for (int64_t i = 0; i < size; i++) {
            double a = got[k]->data[i], b = want[k]->data[i];
            if (!(fabs(a - b) <= 1e-5 + 1e-4 * fabs(b)))
                fail_msg("%s output %d [%lld]: generated %.9g, reference %.9g", m->name, k,
                         (long long)i, a, b);
        }
        nncc_array_free(got[k]);
        nncc_array_free(want[k]);
    }
    free(x);
}

static void test_inference_plans(void **state)
{
    (void)state;
    nncc_model *models[] = {mlp(), cnn(), branching(true), views(true)};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        nncc_model *m = models[i];
        char what[64];
        snprintf(what, sizeof what, "%s inference", m->name);
        struct ir_plan plans[2];
        inference_plan(m, plans);
        struct sizes z = check_plan(&plans[0], what);
        ir_plan_free(&plans[0]);
        /* Inference values are all batched. */
        assert_int_equal(z.planned_fixed, 0);
        assert_true(z.planned_per_sample <= z.sum_per_sample + 16);
        check_predict(m, 100 + i);
        nncc_model_free(m);
    }
}

/* A chain where each node reads only the one before: the plan is the two
 * largest neighbours, matmul (32) and bias_add (32) of the first Dense. */
static void test_chain_is_tight(void **state)
{
    (void)state;
    nncc_model *m = mlp();
    struct ir_plan plans[2];
    inference_plan(m, plans);
    free(plans[0].groups);
    plans[0].groups = NULL; /* unfused */
    ST(pass_memplan(&plans[0]));
    assert_int_equal(plans[0].mem.per_sample_size, 64);
    assert_int_equal(plans[0].mem.fixed_size, 0);
    ir_plan_free(&plans[0]);
    nncc_model_free(m);
}

/* ---- Training: the steps nncc_fit builds ----------------------------------- */

/* Compiles m (Adam, categorical cross-entropy, accuracy), fits it for one
 * epoch on random data so the training and evaluation steps are built and
 * run, and checks their plans; returns the training step's sizes. */
static struct sizes fit_and_check(nncc_model *m, uint64_t seed)
{
    ST(nncc_model_init_weights(m, seed));
    ST(nncc_compile(m, .optimizer = nncc_adam(.learning_rate = 1e-3f),
                    .loss = NNCC_CATEGORICAL_CROSSENTROPY, .metrics = NNCC_ACCURACY));
    struct nncc_shape xs = m->inputs[0]->shape, ys = m->outputs[0]->shape;
    xs.dim[0] = ys.dim[0] = 10;
    struct nncc_array *x = OK(nncc_array_new(xs)), *y = OK(nncc_array_new(ys));
    int64_t C = ys.dim[ys.rank - 1];
    for (int64_t i = 0; i < nncc_array_size(x); i++)
        x->data[i] = (float)((i * 37 + (int64_t)seed) % 101) / 50.0f - 1.0f;
    for (int64_t r = 0; r < 10; r++)
        y->data[r * C + r % C] = 1.0f;
    nncc_history *h = OK(nncc_fit(m, x, y, .batch_size = 4, .epochs = 2));
    for (int e = 0; e < 2; e++)
        assert_true(isfinite(nncc_history_get(h, "loss", e)));
    nncc_history_free(h);
    assert_true(m->train && m->train->built);
    char what[64];
    snprintf(what, sizeof what, "%s training step", m->name);
    struct sizes z = check_plan(&m->train->train, what);
    snprintf(what, sizeof what, "%s eval step", m->name);
    check_plan(&m->train->eval, what);
    nncc_array_free(x);
    nncc_array_free(y);
    return z;
}

/* Regression (fixed): the gradient of a tiling average pooling (cnn()'s 2x2)
 * added into its output without zeroing it first; once the plan reused that
 * region, stale values made the loss NaN here. */
static void test_training_plans(void **state)
{
    (void)state;
    nncc_model *m = cnn();
    struct sizes z = fit_and_check(m, 1);
    /* Reuse must pay off on the CNN: less than one region per value, at a
     * batch of one and of 64. */
    for (int batch = 1; batch <= 64; batch *= 64) {
        int64_t planned = z.planned_fixed + batch * z.planned_per_sample;
        int64_t sum = z.sum_fixed + batch * z.sum_per_sample;
        printf("  cnn training step, batch %2d: %lld floats planned, %lld one region per value\n",
               batch, (long long)planned, (long long)sum);
        assert_true(planned < sum);
    }
    nncc_model_free(m);
    nncc_model *others[] = {mlp(), branching(false), views(false)};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        fit_and_check(others[i], 2 + i);
        nncc_model_free(others[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain_is_tight),
        cmocka_unit_test(test_inference_plans),
        cmocka_unit_test(test_training_plans),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
