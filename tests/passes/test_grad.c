/*
 * test_grad: the training step's gradients (passes/autodiff.c, the op
 * table's gradient kernels and their emitters), three ways.
 *
 * 1. Every op's backward against central finite differences, in double,
 *    through the reference interpreter.  Small models are built with the
 *    public API and given weights that are multiples of 2^-10 (exact in
 *    float) with nncc_set_weights; the gradients-only training program
 *    (nncc_autodiff, through nncc_lower) gives the analytic gradient of every trainable weight;
 *    each weight element (or 40 evenly spread ones of a bigger tensor) is
 *    moved by ±h, h = 2^-14 (w ± h is exact in float), and the loss is
 *    evaluated again with the evaluation program, or with the training
 *    program and the same step seed where training differs from inference
 *    (dropout masks, batch statistics).  The interpreter's double outputs
 *    (nncc_interp_step_d) are used, so the loss is not rounded to float.
 *    Inputs are full-precision random floats from a fixed seed, so
 *    pre-activations, pooling windows and |ŷ − y| lie far (≫ h·|x|) from
 *    kinks and ties, except in one case built to have max-pool ties that
 *    persist under any perturbation.  Covered: Dense (rank 2 and 3, with
 *    and without bias), every activation (softmax also inside the model),
 *    the Activation layer, Conv2D (valid/same, strides, dilation, odd
 *    sizes, 1×1 without bias), Max/AveragePooling2D (valid/same, strides,
 *    overlapping windows), GlobalAveragePooling2D, Flatten, Reshape, Add
 *    (same shapes, broadcasting, three inputs), Concatenate (axis −1 and
 *    1), Dropout (rate 0; rate 0.5 in training), BatchNormalization in
 *    training (2-D and 4-D), shared layers, several inputs, and every loss
 *    on each of its paths (Keras' stable softmax/sigmoid path, clipped
 *    probabilities, from_logits).  Every loss value is also checked
 *    against Keras 2.15's formula written out here from the predictions
 *    (../shared/reference/keras-behaviour.md §4).
 * 2. The generated training step (codegen, through the JIT) against the
 *    reference step for an MLP, a CNN, a model with two inputs, Add,
 *    Dropout and Concatenate, and one with broadcasting Add (sum_to) and a
 *    softmax in the middle (softmax_grad), which the plan must hold: loss,
 *    metrics and every gradient, for two dropout seeds; then one full
 *    step with an optimizer (Adam; RMSprop centered with momentum; SGD
 *    Nesterov with clipvalue) whose updated weights and slots must match
 *    the interpreter's (every parameter and slot value is saved and
 *    restored between the two runs).  Max-pooling ties, generated and
 *    reference, fused and not, against hand-worked gradients that name the
 *    winning cell (the first in window order).
 * 3. The generated step gives the same gradients on 1 and 2 OpenMP threads
 *    (omp_set_num_threads, looked up in the loaded object's dependencies;
 *    skipped where generated code is built without OpenMP, as in the
 *    sanitizer build).
 *
 * Tolerances.  (1) |g − fd| ≤ 1e-6·max(|g|, |fd|) + 1e-9: central
 * differences err by h²/6·|f‴| ≈ 6e-10·|f‴| (truncation) plus about
 * 1e-16·|L|/h ≈ 2e-12 (rounding of the double loss), well below the bound
 * for the O(1) losses and third derivatives of these models (the largest
 * error seen is 0.2 of the bound), while a wrong rule (a factor, a
 * transposition, a missed term) is off by far more.  Loss values against
 * the Keras formula: 1e-10 relative (both in double).  (2) The generated
 * code computes in float with float accumulation, the interpreter in
 * double: an element's error grows with the magnitude of the terms summed,
 * not of the result, so gradients must agree to 1e-4 relative with a floor
 * of 1e-4 × the tensor's RMS (for elements that cancel).  After an
 * optimizer step, weights and slots must agree to 1e-5 relative; the
 * floor is 1e-4 × lr for weights (a gradient error of 1e-4 relative moves
 * a weight by at most that through a step of size ~lr) and 1e-5 × the
 * tensor's RMS for slots.  The slots start from fixed non-zero values
 * (step 5), as after a few steps: Adam's first step has m/√v = ±1, which
 * turns tiny float/double differences of near-zero gradients into whole
 * steps of opposite sign.  (3) 1 and 2 threads: the same 1e-4 bound (the
 * kernels split outputs, not sums, across threads, so they in fact agree
 * bit for bit).  TEST_GRAD_VERBOSE=1 prints each case's largest error.
 *
 * Cases that expose memory corruption in the library run in a child
 * process (this program with --isolated NAME), so they fail alone.  JIT
 * compiles cost 0.5–6 s each, so each compiled model puts its
 * gradients-only step and its optimizer step into one object, and the
 * thread test rebuilds the same sources (JIT cache hits).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/jit/exec.h"
#include "runtime/oracle/interp.h"

#define FD_H 0x1p-14
#define FD_REL 1e-6
#define FD_ABS 1e-9
#define LOSS_REL 1e-10
#define CG_REL 1e-4
#define OPT_REL 1e-5

#define MAXP 32 /* trainable weights per model */
#define MAXIN 4 /* model inputs */

static bool verbose; /* TEST_GRAD_VERBOSE=1 prints the error of every case */

/* ---- Helpers ------------------------------------------------------------ */

#define OK(expr)                                                             \
    do {                                                                     \
        enum nncc_status st_ = (expr);                                       \
        if (st_ != NNCC_OK)                                                  \
            fail_msg("%s failed (%s): %s", #expr, nncc_status_name(st_),     \
                     nncc_last_error());                                     \
    } while (0)

#define NN(expr) nn_((expr), #expr, __LINE__)
static void *nn_(void *p, const char *what, int line)
{
    if (!p)
        fail_msg("line %d: %s is NULL: %s", line, what, nncc_last_error());
    return p;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    assert_non_null(p);
    return p;
}

/* splitmix64: a small deterministic PRNG. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi). */
static double urand(uint64_t *s, double lo, double hi)
{
    return lo + (hi - lo) * (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* A multiple of 2^-10: exact in float, and so is w ± FD_H. */
static float quant(double v) { return (float)ldexp(nearbyint(ldexp(v, 10)), -10); }

static int64_t numel(const nncc_tensor *t) { return ir_shape_numel(t->shape, t->batched ? 1 : 0); }

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Gives every weight of the model's layers exact values: kernels uniform in
 * ±wscale·√(3/fan_in) (unit variance forward), biases and β in ±0.25, γ in
 * [0.5, 1.5], moving statistics plausible. */
static void fill_weights(nncc_model *m, uint64_t seed, double wscale)
{
    uint64_t s = seed;
    for (int i = 0; i < nncc_model_num_layers(m); i++) {
        nncc_layer *l = nncc_model_layer(m, i);
        for (int k = 0; k < nncc_layer_num_weights(l); k++) {
            struct nncc_shape sh = nncc_layer_weight_shape(l, k);
            const char *name = nncc_layer_weight_name(l, k);
            int64_t n = ir_shape_numel(sh, 0);
            float *v = xcalloc((size_t)n, sizeof *v);
            double fan_in = (double)(sh.rank > 1 ? n / sh.dim[sh.rank - 1] : 1);
            for (int64_t j = 0; j < n; j++) {
                double u = urand(&s, -1, 1), x;
                if (ends_with(name, "kernel"))
                    x = u * wscale * sqrt(3.0 / fan_in);
                else if (ends_with(name, "gamma"))
                    x = 1 + 0.5 * u;
                else if (ends_with(name, "moving_variance"))
                    x = 1 + 0.5 * u;
                else
                    x = 0.25 * u;
                v[j] = quant(x);
            }
            OK(nncc_set_weights(l, k, v, n));
            free(v);
        }
    }
}

/* The trainable weights of the model's layers, in model order (a shared
 * layer is listed once), as runtime/train/train.c collects them. */
static int collect_params(nncc_model *m, nncc_tensor **out)
{
    int n = 0;
    for (int i = 0; i < nncc_model_num_layers(m); i++) {
        nncc_layer *l = nncc_model_layer(m, i);
        for (int k = 0; k < l->n_weights; k++)
            if (l->weights[k]->trainable) {
                assert_true(n < MAXP);
                out[n++] = l->weights[k];
            }
    }
    return n;
}

static int popcount(unsigned v)
{
    int n = 0;
    for (; v; v &= v - 1)
        n++;
    return n;
}

/* ---- A model with its training programs and data ------------------------ */

enum target_kind {
    T_UNIFORM, /* regression targets in [−1, 1) */
    T_AWAY,    /* ŷ ± [0.25, 0.75): |ŷ − y| far from MAE's kink */
    T_PROB,    /* independent values in [0, 1) */
    T_BINARY,  /* 0 or 1 */
    T_DIST,    /* rows of positive values summing to 1 */
    T_ONEHOT,
    T_LABEL,   /* a class index per row (sparse) */
};

/* How the loss is worked out here from the predictions (Keras 2.15). */
enum keras_path { K_PROBS, K_LOGITS, K_STABLE };

struct spec {
    enum nncc_loss loss;
    bool from_logits;
    unsigned metrics;
    int batch;                 /* default 4 */
    enum target_kind target;
    bool sparse_keep_last;     /* sparse labels (N…, 1) rather than (N…) */
    double wscale;             /* default 1 */
    bool train_mode;           /* evaluate the loss with the training program */
    int max_per_tensor;        /* elements checked per weight; default 40 */
    bool stable;               /* a softmax/sigmoid output on Keras' stable path */
    double prob_lo, prob_hi;   /* if set: every prediction must lie inside */
    bool tied_blocks;          /* images constant on 2×2 blocks (max-pool ties) */
};

struct gm {
    const char *name;
    nncc_model *m;
    struct spec o;
    int n_metrics;
    nncc_tensor *params[MAXP];
    int n_params;
    struct nncc_train_spec ts;
    struct ir_plan plans[2];      /* nncc_lower's: the gradient step, the evaluation step */
    struct ir_program train, eval; /* their programs (owned by the plans) */
    int batch, n_in;
    float *in[MAXIN + 1]; /* the model's inputs, then the target */
    struct nncc_shape target;
};

static struct nncc_shape target_shape(const nncc_model *m, const struct spec *o)
{
    struct nncc_shape s = m->outputs[0]->shape;
    if (o->loss == NNCC_SPARSE_CATEGORICAL_CROSSENTROPY) {
        if (o->sparse_keep_last)
            s.dim[s.rank - 1] = 1;
        else
            s.rank--;
    }
    return s;
}

/* Runs the model's inference program in double. */
static double *predict_d(struct gm *g)
{
    const nncc_tensor *out = g->m->outputs[0];
    double *pred = xcalloc((size_t)(g->batch * numel(out)), sizeof *pred);
    double *outs[1] = {pred};
    OK(nncc_interp_step_d(&g->m->program, g->batch, (const float *const *)g->in, outs, NULL,
                          false));
    return pred;
}

static void make_targets(struct gm *g, uint64_t *s)
{
    const nncc_tensor *out = g->m->outputs[0];
    int64_t C = out->shape.dim[out->shape.rank - 1];
    int64_t rows = g->batch * numel(out) / C;
    float *t = g->in[g->n_in] = xcalloc((size_t)(g->batch * ir_shape_numel(g->target, 1)),
                                        sizeof *t);
    double *pred = g->o.target == T_AWAY ? predict_d(g) : NULL;
    for (int64_t r = 0; r < rows; r++) {
        float *tr = t + (g->o.target == T_LABEL ? r : r * C);
        double sum = 0;
        int64_t hot = (int64_t)(rng_next(s) % (uint64_t)C);
        if (g->o.target == T_LABEL) {
            tr[0] = (float)hot;
            continue;
        }
        for (int64_t c = 0; c < C; c++) {
            double v = 0;
            switch (g->o.target) {
            case T_UNIFORM: v = urand(s, -1, 1); break;
            case T_AWAY: {
                double d = urand(s, 0.25, 0.75);
                v = pred[r * C + c] + (rng_next(s) & 1 ? d : -d);
                break;
            }
            case T_PROB: v = urand(s, 0, 1); break;
            case T_BINARY: v = (double)(rng_next(s) & 1); break;
            case T_DIST: v = urand(s, 0.05, 1); break;
            case T_ONEHOT: v = c == hot; break;
            case T_LABEL: break;
            }
            tr[c] = (float)v;
            sum += (double)tr[c];
        }
        if (g->o.target == T_DIST)
            for (int64_t c = 0; c < C; c++)
                tr[c] = (float)(tr[c] / sum);
    }
    free(pred);
}

/* Builds the gradients-only training program and the evaluation program
 * for a model (taking ownership of it) and makes its data. */
static void gm_init(struct gm *g, const char *name, nncc_model *m, struct spec o)
{
    memset(g, 0, sizeof *g);
    g->name = name;
    g->m = NN(m);
    if (!o.batch)
        o.batch = 4;
    if (!o.wscale)
        o.wscale = 1;
    if (!o.max_per_tensor)
        o.max_per_tensor = 40;
    g->o = o;
    g->batch = o.batch;
    g->n_metrics = popcount(o.metrics);
    uint64_t s = hash_str(name);
    fill_weights(m, s, o.wscale);
    g->n_params = collect_params(m, g->params);
    g->target = target_shape(m, &o);
    g->ts = (struct nncc_train_spec){
        .loss = o.loss,
        .from_logits = o.from_logits,
        .metrics = o.metrics,
        .target_shape = g->target,
        .seed = 7,
        .params = g->params,
        .n_params = g->n_params,
        .gradients_only = true,
    };
    struct nncc_lower_opts lo = {.model_name = name, .train = &g->ts};
    enum nncc_status st = nncc_lower(&m->program, &lo, g->plans);
    g->train = g->plans[0].program;
    g->eval = g->plans[1].program;
    if (st)
        fail_msg("%s: autodiff: %s", name, nncc_last_error());
    OK(ir_verify(&g->train, "autodiff"));
    OK(ir_verify(&g->eval, "autodiff"));
    assert_int_equal(g->train.n_outputs, 1 + g->n_metrics + g->n_params);
    assert_int_equal(g->eval.n_outputs, 1 + g->n_metrics);
    g->n_in = m->n_inputs;
    assert_true(g->n_in <= MAXIN);
    assert_int_equal(g->train.n_inputs, g->n_in + 1);
    for (int i = 0; i < g->n_in; i++) {
        int64_t n = g->batch * numel(m->inputs[i]);
        g->in[i] = xcalloc((size_t)n, sizeof *g->in[i]);
        for (int64_t j = 0; j < n; j++)
            g->in[i][j] = (float)urand(&s, -1, 1);
        const int64_t *d = m->inputs[i]->shape.dim;
        if (o.tied_blocks && m->inputs[i]->shape.rank == 4) /* (b, y, x, c) = (b, y&~1, x&~1, c) */
            for (int64_t j = 0; j < n; j++) {
                int64_t c = j % d[3], x = j / d[3] % d[2], y = j / (d[3] * d[2]) % d[1];
                int64_t b = j / (d[3] * d[2] * d[1]);
                g->in[i][j] = g->in[i][((b * d[1] + (y & ~1)) * d[2] + (x & ~1)) * d[3] + c];
            }
    }
    make_targets(g, &s);
}

static void gm_free(struct gm *g)
{
    ir_plan_free(&g->plans[0]);
    ir_plan_free(&g->plans[1]);
    for (int i = 0; i <= g->n_in; i++)
        free(g->in[i]);
    nncc_model_free(g->m);
}

/* Output buffers (double) for a program's outputs. */
static double **alloc_outs_d(const struct ir_program *p, int batch)
{
    double **o = xcalloc((size_t)p->n_outputs, sizeof *o);
    for (int k = 0; k < p->n_outputs; k++)
        o[k] = xcalloc((size_t)(p->outputs[k]->batched ? batch * numel(p->outputs[k])
                                                       : numel(p->outputs[k])),
                       sizeof *o[k]);
    return o;
}

static float **alloc_outs_f(const struct ir_program *p, int batch)
{
    float **o = xcalloc((size_t)p->n_outputs, sizeof *o);
    for (int k = 0; k < p->n_outputs; k++)
        o[k] = xcalloc((size_t)(p->outputs[k]->batched ? batch * numel(p->outputs[k])
                                                       : numel(p->outputs[k])),
                       sizeof *o[k]);
    return o;
}

static void free_outs(void *outs, int n)
{
    void **o = outs;
    for (int k = 0; k < n; k++)
        free(o[k]);
    free(o);
}

/* The loss of the current weights: the evaluation program, or in training
 * mode the training program with the step's hyper-parameters h. */
static double loss_of(struct gm *g, double **eval_outs, double **train_outs, const double *h)
{
    if (g->o.train_mode) {
        OK(nncc_interp_step_d(&g->train, g->batch, (const float *const *)g->in, train_outs, h,
                              false));
        return train_outs[0][0];
    }
    OK(nncc_interp_step_d(&g->eval, g->batch, (const float *const *)g->in, eval_outs, NULL,
                          false));
    return eval_outs[0][0];
}

/* Keras 2.15's loss from the predictions (keras-behaviour.md §4): each row
 * (the last axis) reduced, then the mean over all other elements. */
static double keras_loss(enum nncc_loss loss, enum keras_path path, const double *o,
                         const float *t, int64_t rows, int64_t C)
{
    const double eps = 1e-7;
    double total = 0;
    for (int64_t r = 0; r < rows; r++) {
        const double *z = o + r * C;
        const float *yf = t + (loss == NNCC_SPARSE_CATEGORICAL_CROSSENTROPY ? r : r * C);
        double y[64]; /* in double: 1 − y must not round to float */
        assert_true(C <= 64);
        for (int64_t c = 0; c < (loss == NNCC_SPARSE_CATEGORICAL_CROSSENTROPY ? 1 : C); c++)
            y[c] = (double)yf[c];
        double l = 0, mx = z[0], se = 0, sum = 0;
        for (int64_t c = 1; c < C; c++)
            mx = fmax(mx, z[c]);
        for (int64_t c = 0; c < C; c++) {
            se += exp(z[c] - mx);
            sum += z[c];
        }
        double lse = mx + log(se);
        switch (loss) {
        case NNCC_MEAN_SQUARED_ERROR:
            for (int64_t c = 0; c < C; c++)
                l += (z[c] - y[c]) * (z[c] - y[c]) / (double)C;
            break;
        case NNCC_MEAN_ABSOLUTE_ERROR:
            for (int64_t c = 0; c < C; c++)
                l += fabs(z[c] - y[c]) / (double)C;
            break;
        case NNCC_BINARY_CROSSENTROPY:
            for (int64_t c = 0; c < C; c++) {
                double v;
                if (path == K_LOGITS)
                    v = fmax(z[c], 0) - z[c] * y[c] + log1p(exp(-fabs(z[c])));
                else if (path == K_STABLE) /* sigmoid's logits: no clip, no ε */
                    v = -(y[c] * log(z[c]) + (1 - y[c]) * log(1 - z[c]));
                else {
                    double p = fmin(fmax(z[c], eps), 1 - eps);
                    v = -(y[c] * log(p + eps) + (1 - y[c]) * log(1 - p + eps));
                }
                l += v / (double)C;
            }
            break;
        case NNCC_CATEGORICAL_CROSSENTROPY:
            for (int64_t c = 0; c < C; c++) {
                if (path == K_LOGITS)
                    l += y[c] * (lse - z[c]);
                else if (path == K_STABLE)
                    l -= y[c] * log(z[c]);
                else
                    l -= y[c] * log(fmin(fmax(z[c] / sum, eps), 1 - eps));
            }
            break;
        case NNCC_SPARSE_CATEGORICAL_CROSSENTROPY: {
            int64_t k = (int64_t)y[0];
            if (path == K_LOGITS) {
                l = lse - z[k];
            } else if (path == K_STABLE) {
                l = -log(z[k]);
            } else { /* clip, log, then softmax cross-entropy of those */
                double ps = 0;
                for (int64_t c = 0; c < C; c++)
                    ps += fmin(fmax(z[c], eps), 1 - eps);
                l = -(log(fmin(fmax(z[k], eps), 1 - eps)) - log(ps));
            }
            break;
        }
        case NNCC_LOSS_NONE:
            fail_msg("no loss");
        }
        total += l;
    }
    return total / (double)rows;
}

/* Every prediction must lie in [lo, hi] (a precondition of a case). */
static void check_pred_range(struct gm *g, double lo, double hi)
{
    double *pred = predict_d(g);
    int64_t n = g->batch * numel(g->m->outputs[0]);
    for (int64_t i = 0; i < n; i++)
        if (!(pred[i] > lo && pred[i] < hi))
            fail_msg("%s: precondition: prediction %lld is %g, outside (%g, %g)", g->name,
                     (long long)i, pred[i], lo, hi);
    free(pred);
}

static void check_keras_loss(struct gm *g, double got)
{
    const nncc_tensor *out = g->m->outputs[0];
    int64_t C = out->shape.dim[out->shape.rank - 1];
    int64_t rows = g->batch * numel(out) / C;
    double *pred = predict_d(g);
    enum keras_path path = g->o.from_logits ? K_LOGITS : g->o.stable ? K_STABLE : K_PROBS;
    double want = keras_loss(g->o.loss, path, pred, g->in[g->n_in], rows, C);
    free(pred);
    if (!(fabs(got - want) <= LOSS_REL * fmax(1, fabs(want))))
        fail_msg("%s: loss %.17g, but Keras' formula gives %.17g", g->name, got, want);
}

/* Element indices to check: all, or max evenly spread ones. */
static int64_t sample_index(int64_t k, int64_t n, int64_t max, uint64_t *s)
{
    if (n <= max)
        return k;
    int64_t lo = k * n / max, hi = (k + 1) * n / max;
    return lo + (int64_t)(rng_next(s) % (uint64_t)(hi - lo));
}

/* Analytic gradients (interpreter) against central differences of the
 * loss; returns the number of elements outside the tolerance. */
static int fd_check(struct gm *g, double seed)
{
    const double h[IR_HYPER_COUNT] = {[IR_HYPER_LR] = 0, [IR_HYPER_STEP] = 1,
                                      [IR_HYPER_SEED] = seed};
    double **tout = alloc_outs_d(&g->train, g->batch);
    double **tout2 = alloc_outs_d(&g->train, g->batch);
    double **eout = alloc_outs_d(&g->eval, g->batch);
    OK(nncc_interp_step_d(&g->train, g->batch, (const float *const *)g->in, tout, h, false));
    double loss = tout[0][0];
    if (!isfinite(loss))
        fail_msg("%s: loss %g", g->name, loss);
    double base = loss_of(g, eout, tout2, h);
    if (!(base == loss))
        fail_msg("%s: the training step's loss %.17g differs from the loss the differences "
                 "start from %.17g",
                 g->name, loss, base);
    if (!g->o.train_mode)
        check_keras_loss(g, loss);
    uint64_t s = hash_str(g->name) ^ 0x5eed;
    int bad = 0, checked = 0;
    double worst = 0, worst_abs = 0; /* the largest err/tol and |g − fd| */
    for (int i = 0; i < g->n_params; i++) {
        nncc_tensor *w = g->params[i];
        const double *grad = tout[1 + g->n_metrics + i];
        int64_t n = numel(w), m = n < g->o.max_per_tensor ? n : g->o.max_per_tensor;
        bool nonzero = false;
        for (int64_t j = 0; j < n; j++)
            nonzero |= grad[j] != 0;
        if (!nonzero) {
            print_error("%s: the gradient of %s is identically zero\n", g->name, w->name);
            bad++;
        }
        for (int64_t k = 0; k < m; k++) {
            int64_t j = sample_index(k, n, m, &s);
            float w0 = w->data[j];
            float wp = w0 + (float)FD_H, wm = w0 - (float)FD_H;
            assert_true((double)wp - (double)wm == 2 * FD_H); /* exact steps */
            w->data[j] = wp;
            double lp = loss_of(g, eout, tout2, h);
            w->data[j] = wm;
            double lm = loss_of(g, eout, tout2, h);
            w->data[j] = w0;
            double fd = (lp - lm) / (2 * FD_H), an = grad[j];
            double err = fabs(an - fd), tol = FD_REL * fmax(fabs(an), fabs(fd)) + FD_ABS;
            worst = fmax(worst, err / tol);
            worst_abs = fmax(worst_abs, err);
            checked++;
            if (!(err <= tol)) {
                if (bad < 10)
                    print_error("%s: d loss / d %s[%lld]: autodiff %.12g, finite differences "
                                "%.12g (diff %.3g, tol %.3g)\n",
                                g->name, w->name, (long long)j, an, fd, err, tol);
                bad++;
            }
        }
    }
    if (verbose)
        print_message("%-28s loss %-9.6g %4d elements, max |g - fd| %.1e = %.3f tol\n",
                      g->name, loss, checked, worst_abs, worst);
    free_outs(tout, g->train.n_outputs);
    free_outs(tout2, g->train.n_outputs);
    free_outs(eout, g->eval.n_outputs);
    return bad;
}

/* Builds, checks and frees one case; returns its mismatches. */
static int fd_case(const char *name, nncc_model *m, struct spec o)
{
    struct gm g;
    gm_init(&g, name, m, o);
    if (o.prob_hi > 0)
        check_pred_range(&g, o.prob_lo, o.prob_hi);
    int bad = fd_check(&g, 12345);
    gm_free(&g);
    return bad;
}

#define MSE(...) ((struct spec){.loss = NNCC_MEAN_SQUARED_ERROR, .target = T_UNIFORM, __VA_ARGS__})

/* An input (per-sample shape) on a new graph (the model frees it). */
static nncc_tensor *input(struct nncc_shape s)
{
    return NN(nncc_input(NN(nncc_graph_new()), s));
}

static nncc_model *model1(nncc_tensor *x, nncc_tensor *y)
{
    return NN(nncc_model_new(x, NN(y)));
}

/* ---- 1. Finite differences: core layers --------------------------------- */

static void test_fd_dense(void **state)
{
    (void)state;
    int bad = 0;
    nncc_tensor *x, *h;

    /* Rank 2: matmul, bias, tanh, linear; metrics in the outputs. */
    x = input(NNCC_SHAPE(6));
    h = nncc_dense(x, .units = 5, .activation = NNCC_TANH);
    bad += fd_case("dense rank 2", model1(x, nncc_dense(h, .units = 3)),
                   MSE(.metrics = NNCC_ACCURACY | NNCC_METRIC_MSE | NNCC_METRIC_MAE));

    /* Rank 3: only the last axis is contracted. */
    x = input(NNCC_SHAPE(4, 6));
    h = nncc_dense(x, .units = 5, .activation = NNCC_SIGMOID);
    bad += fd_case("dense rank 3", model1(x, nncc_dense(h, .units = 3)), MSE(.batch = 3));

    /* No bias. */
    x = input(NNCC_SHAPE(5));
    h = nncc_dense(x, .units = 4, .activation = NNCC_TANH, .no_bias = true);
    bad += fd_case("dense no bias", model1(x, nncc_dense(h, .units = 2, .no_bias = true)), MSE());

    /* Reshape (with −1) and Flatten between dense layers of rank 3. */
    x = input(NNCC_SHAPE(6));
    h = nncc_dense(x, .units = 12, .activation = NNCC_TANH);
    h = nncc_reshape(h, .target_shape = NNCC_SHAPE(3, 4));
    h = nncc_dense(h, .units = 4, .activation = NNCC_SOFTSIGN);
    h = nncc_reshape(h, .target_shape = NNCC_SHAPE(-1, 2));
    h = nncc_flatten(h);
    bad += fd_case("reshape flatten", model1(x, nncc_dense(h, .units = 3)), MSE());

    /* Dropout with rate 0 is the identity in training too. */
    x = input(NNCC_SHAPE(6));
    h = nncc_dense(x, .units = 8, .activation = NNCC_TANH);
    h = nncc_dropout(h, .rate = 0);
    bad += fd_case("dropout rate 0", model1(x, nncc_dense(h, .units = 3)), MSE());
    assert_int_equal(bad, 0);
}

static void test_fd_activations(void **state)
{
    (void)state;
    int bad = 0;
    for (int a = 0; a < NNCC_ACTIVATION_COUNT; a++) {
        nncc_tensor *x = input(NNCC_SHAPE(6));
        /* hard_sigmoid: pre-activations out to ±4 cover both flat parts. */
        double ws = a == NNCC_HARD_SIGMOID ? 3 : a == NNCC_SOFTMAX ? 2 : 1.5;
        nncc_tensor *h = nncc_dense(x, .units = 7, .activation = (enum nncc_activation)a);
        char name[64];
        snprintf(name, sizeof name, "activation %s", nncc_activation_name((enum nncc_activation)a));
        bad += fd_case(name, model1(x, nncc_dense(h, .units = 3)), MSE(.wscale = ws));
    }
    /* The Activation layer, and softmax as a layer in the middle. */
    nncc_tensor *x = input(NNCC_SHAPE(6));
    nncc_tensor *h = nncc_dense(x, .units = 6);
    h = nncc_activation(h, .activation = NNCC_GELU);
    h = nncc_dense(h, .units = 5);
    h = nncc_activation(h, .activation = NNCC_SOFTMAX);
    h = nncc_dense(h, .units = 4, .activation = NNCC_SELU);
    bad += fd_case("activation layers", model1(x, nncc_dense(h, .units = 2)), MSE(.wscale = 2));
    /* LeakyReLU and ELU layers with an alpha (activation_alpha). */
    x = input(NNCC_SHAPE(6));
    h = nncc_dense(x, .units = 7);
    h = nncc_leaky_relu(h, .alpha = 0.2f);
    h = nncc_dense(h, .units = 6);
    h = nncc_elu(h, .alpha = 0.5f);
    h = nncc_dense(h, .units = 5);
    h = nncc_elu(h);
    bad += fd_case("leaky_relu and elu layers", model1(x, nncc_dense(h, .units = 2)),
                   MSE(.wscale = 2));
    assert_int_equal(bad, 0);
}

/* ---- 1. Finite differences: convolution and pooling --------------------- */

static void test_fd_conv(void **state)
{
    (void)state;
    int bad = 0;
    nncc_tensor *x, *h;

    /* same 3×3 → valid 3×3 stride 2 → same 2×2 dilation 2, each with bias,
     * each after a trainable layer (so its input gradient is exercised). */
    x = input(NNCC_SHAPE(9, 9, 2));
    h = nncc_conv2d(x, .filters = 3, .kernel_size = {3, 3}, .padding = NNCC_SAME,
                    .activation = NNCC_TANH);
    h = nncc_conv2d(h, .filters = 4, .kernel_size = {3, 3}, .strides = {2, 2},
                    .activation = NNCC_SIGMOID);
    h = nncc_conv2d(h, .filters = 3, .kernel_size = {2, 2}, .padding = NNCC_SAME,
                    .dilation_rate = {2, 2}, .activation = NNCC_TANH);
    h = nncc_flatten(h);
    bad += fd_case("conv same/stride/dilation", model1(x, nncc_dense(h, .units = 2)),
                   MSE(.batch = 2));

    /* Odd sizes: same with stride 2 pads only bottom/right; non-square
     * kernels, dilation (2, 1), relu, a 1×1 convolution without bias. */
    x = input(NNCC_SHAPE(8, 7, 1));
    h = nncc_conv2d(x, .filters = 2, .kernel_size = {3, 2}, .strides = {2, 2},
                    .padding = NNCC_SAME, .activation = NNCC_TANH);
    h = nncc_conv2d(h, .filters = 3, .kernel_size = {2, 2}, .dilation_rate = {2, 1},
                    .activation = NNCC_RELU);
    h = nncc_conv2d(h, .filters = 2, .kernel_size = {1, 1}, .no_bias = true);
    h = nncc_flatten(h);
    bad += fd_case("conv odd sizes", model1(x, nncc_dense(h, .units = 2)), MSE(.batch = 3));
    assert_int_equal(bad, 0);
}

static void test_fd_pool(void **state)
{
    (void)state;
    int bad = 0;
    nncc_tensor *x, *h;

    /* MaxPooling valid 2×2, AveragePooling same 3×3 stride 2 (the divisor
     * counts real cells only). */
    x = input(NNCC_SHAPE(8, 8, 2));
    h = nncc_conv2d(x, .filters = 3, .kernel_size = {3, 3}, .padding = NNCC_SAME,
                    .activation = NNCC_TANH);
    h = nncc_maxpool2d(h);
    h = nncc_conv2d(h, .filters = 3, .kernel_size = {2, 2}, .padding = NNCC_SAME);
    h = nncc_avgpool2d(h, .pool_size = {3, 3}, .strides = {2, 2}, .padding = NNCC_SAME);
    h = nncc_flatten(h);
    bad += fd_case("pool max valid, avg same", model1(x, nncc_dense(h, .units = 2)),
                   MSE(.batch = 2));

    /* MaxPooling same 3×3 stride 2 (padding bottom/right), then overlapping
     * windows (stride 1): max and average. */
    x = input(NNCC_SHAPE(7, 7, 2));
    h = nncc_conv2d(x, .filters = 3, .kernel_size = {2, 2}, .activation = NNCC_TANH);
    h = nncc_maxpool2d(h, .pool_size = {3, 3}, .strides = {2, 2}, .padding = NNCC_SAME);
    h = nncc_conv2d(h, .filters = 2, .kernel_size = {1, 1});
    h = nncc_maxpool2d(h, .pool_size = {2, 2}, .strides = {1, 1});
    h = nncc_avgpool2d(h, .pool_size = {2, 1}, .strides = {1, 1});
    h = nncc_flatten(h);
    bad += fd_case("pool max same, overlapping", model1(x, nncc_dense(h, .units = 2)),
                   MSE(.batch = 2));

    /* AveragePooling same with stride 1 (windows clipped at every edge). */
    x = input(NNCC_SHAPE(5, 4, 2));
    h = nncc_conv2d(x, .filters = 2, .kernel_size = {2, 2}, .padding = NNCC_SAME,
                    .activation = NNCC_ELU);
    h = nncc_avgpool2d(h, .pool_size = {3, 2}, .strides = {1, 1}, .padding = NNCC_SAME);
    h = nncc_flatten(h);
    bad += fd_case("pool avg same stride 1", model1(x, nncc_dense(h, .units = 2)), MSE());

    /* Ties: each 2×2 window of the input is one value, so a 1×1 convolution
     * keeps every window tied for any weights and the loss is smooth; the
     * gradient must reach one cell per window (TensorFlow: the first). */
    x = input(NNCC_SHAPE(4, 6, 1));
    h = nncc_conv2d(x, .filters = 2, .kernel_size = {1, 1}, .no_bias = true);
    h = nncc_maxpool2d(h);
    h = nncc_flatten(h);
    bad += fd_case("pool max ties", model1(x, nncc_dense(h, .units = 2)),
                   MSE(.tied_blocks = true));

    /* GlobalAveragePooling2D, and with keepdims. */
    x = input(NNCC_SHAPE(5, 5, 2));
    h = nncc_conv2d(x, .filters = 4, .kernel_size = {3, 3}, .padding = NNCC_SAME,
                    .activation = NNCC_TANH);
    h = nncc_global_avgpool2d(h);
    bad += fd_case("global avg pool", model1(x, nncc_dense(h, .units = 2)), MSE());
    x = input(NNCC_SHAPE(4, 3, 2));
    h = nncc_conv2d(x, .filters = 3, .kernel_size = {2, 2}, .activation = NNCC_SWISH);
    h = nncc_global_avgpool2d(h, .keepdims = true);
    h = nncc_conv2d(h, .filters = 2, .kernel_size = {1, 1});
    h = nncc_flatten(h);
    bad += fd_case("global avg pool keepdims", model1(x, nncc_dense(h, .units = 2)), MSE());
    assert_int_equal(bad, 0);
}

/* ---- 1. Finite differences: merging, sharing, several inputs ------------ */

static void test_fd_merge(void **state)
{
    (void)state;
    int bad = 0;
    nncc_graph *g;
    nncc_tensor *x, *h;

    /* Add of same shapes. */
    x = input(NNCC_SHAPE(5));
    nncc_tensor *a = nncc_dense(x, .units = 4);
    nncc_tensor *b = nncc_dense(x, .units = 4, .activation = NNCC_TANH);
    h = nncc_add(NNCC_TENSORS(a, b));
    bad += fd_case("add", model1(x, nncc_dense(h, .units = 3)), MSE());

    /* Add broadcasting (None, 4, 1, 3) + (None, 4, 5, 3) + (None, 1, 5, 3),
     * three inputs. */
    g = NN(nncc_graph_new());
    nncc_tensor *x1 = NN(nncc_input(g, NNCC_SHAPE(4, 1, 2)));
    nncc_tensor *x2 = NN(nncc_input(g, NNCC_SHAPE(4, 5, 2)));
    nncc_tensor *x3 = NN(nncc_input(g, NNCC_SHAPE(1, 5, 2)));
    a = nncc_dense(x1, .units = 3);
    b = nncc_dense(x2, .units = 3, .activation = NNCC_TANH);
    nncc_tensor *c = nncc_dense(x3, .units = 3, .activation = NNCC_SIGMOID);
    h = nncc_add(NNCC_TENSORS(a, b));
    h = nncc_add(NNCC_TENSORS(c, h));
    h = nncc_flatten(h);
    h = nncc_dense(h, .units = 2);
    bad += fd_case("add broadcasting",
                   NN(nncc_model_new_n(NNCC_TENSORS(x1, x2, x3), NNCC_TENSORS(NN(h)))),
                   MSE(.batch = 3));

    /* Concatenate on axis −1, then axis 1, two inputs. */
    g = NN(nncc_graph_new());
    x1 = NN(nncc_input(g, NNCC_SHAPE(4, 3)));
    x2 = NN(nncc_input(g, NNCC_SHAPE(2, 3)));
    a = nncc_dense(x1, .units = 5, .activation = NNCC_TANH);
    b = nncc_dense(x1, .units = 2);
    h = nncc_concatenate(NNCC_TENSORS(a, b));
    c = nncc_dense(x2, .units = 7, .activation = NNCC_SIGMOID);
    h = nncc_concatenate(NNCC_TENSORS(h, c), .axis = 1);
    h = nncc_flatten(h);
    h = nncc_dense(h, .units = 3);
    bad += fd_case("concatenate", NN(nncc_model_new_n(NNCC_TENSORS(x1, x2), NNCC_TENSORS(NN(h)))),
                   MSE(.batch = 3));
    assert_int_equal(bad, 0);
}

/* Shared layers: a weight used by two calls gets the sum of both calls'
 * gradients (an ADD of values without a batch dimension).
 * Regression (fixed): that ADD was wrong in the interpreter and in the generated code.
 * ref_add (runtime/oracle/interp.c) sets the output's dim 0 to the batch size
 * even for values that have none, so for a (3, 4) kernel gradient at batch
 * 4 it computes 16 values into a 12-value buffer (heap overflow), and at
 * batch 3 a (4, 4) one only 12 of its 16 (the rest is uninitialized);
 * emit_add (codegen/eltwise.c) loops over n × numel for them likewise.
 * Each runs in a child process so that the memory corruption cannot take
 * the other tests down. */
static void iso_fd_shared(void **state)
{
    (void)state;
    int bad = 0;
    nncc_graph *g;
    nncc_tensor *x, *h, *x1, *x2, *a, *b;
    nncc_layer *d;

    /* A shared layer called twice in a chain. */
    x = input(NNCC_SHAPE(4));
    d = NN(nncc_dense_layer(.units = 4, .activation = NNCC_TANH));
    h = nncc_call(d, x);
    h = nncc_call(d, h);
    bad += fd_case("shared layer chain", model1(x, nncc_dense(h, .units = 2)),
                   MSE(.wscale = 1.5, .batch = 3));

    /* A shared layer on two inputs, summed. */
    g = NN(nncc_graph_new());
    x1 = NN(nncc_input(g, NNCC_SHAPE(3)));
    x2 = NN(nncc_input(g, NNCC_SHAPE(3)));
    d = NN(nncc_dense_layer(.units = 4, .activation = NNCC_SIGMOID));
    a = nncc_call(d, x1);
    b = nncc_call(d, x2);
    h = nncc_concatenate(NNCC_TENSORS(nncc_add(NNCC_TENSORS(a, b)), a));
    h = nncc_dense(h, .units = 2);
    bad += fd_case("shared layer two inputs",
                   NN(nncc_model_new_n(NNCC_TENSORS(x1, x2), NNCC_TENSORS(NN(h)))), MSE());
    assert_int_equal(bad, 0);
}

/* ---- 1. Finite differences: training-mode ops --------------------------- */

/* Dropout 0.5 in training: the differences use the training program with
 * the same step seed, so the analytic gradient matches only if backward
 * applies the forward's mask.  Also: the mask is really applied (training
 * and inference losses differ) and depends on the seed. */
static void test_fd_dropout_train(void **state)
{
    (void)state;
    int bad = 0;
    nncc_tensor *x = input(NNCC_SHAPE(6));
    nncc_tensor *h = nncc_dense(x, .units = 10, .activation = NNCC_TANH);
    h = nncc_dropout(h, .rate = 0.5f);
    struct gm m;
    gm_init(&m, "dropout 0.5 (train)", model1(x, nncc_dense(h, .units = 3)),
            MSE(.train_mode = true));
    bad += fd_check(&m, 12345);
    bad += fd_check(&m, 987654321);
    double **tout = alloc_outs_d(&m.train, m.batch), **eout = alloc_outs_d(&m.eval, m.batch);
    const double h1[IR_HYPER_COUNT] = {0, 1, 12345}, h2[IR_HYPER_COUNT] = {0, 1, 987654321};
    OK(nncc_interp_step_d(&m.eval, m.batch, (const float *const *)m.in, eout, NULL, false));
    OK(nncc_interp_step_d(&m.train, m.batch, (const float *const *)m.in, tout, h1, false));
    double l1 = tout[0][0];
    OK(nncc_interp_step_d(&m.train, m.batch, (const float *const *)m.in, tout, h2, false));
    double l2 = tout[0][0];
    if (l1 == eout[0][0] || l1 == l2)
        fail_msg("dropout: losses with seed 1, seed 2 and at inference: %.17g %.17g %.17g", l1,
                 l2, eout[0][0]);
    free_outs(tout, m.train.n_outputs);
    free_outs(eout, m.eval.n_outputs);
    gm_free(&m);

    /* On a 4-D activation. */
    x = input(NNCC_SHAPE(4, 4, 2));
    h = nncc_conv2d(x, .filters = 3, .kernel_size = {2, 2}, .activation = NNCC_TANH);
    h = nncc_dropout(h, .rate = 0.5f);
    h = nncc_flatten(h);
    bad += fd_case("dropout 0.5 conv (train)", model1(x, nncc_dense(h, .units = 2)),
                   MSE(.train_mode = true, .batch = 2));
    assert_int_equal(bad, 0);
}

/* BatchNormalization in training normalizes with the batch statistics:
 * the differences go through the training program (the moving statistics
 * it updates are not written back). */
static void test_fd_batchnorm_train(void **state)
{
    (void)state;
    int bad = 0;
    nncc_tensor *x = input(NNCC_SHAPE(6));
    nncc_tensor *h = nncc_dense(x, .units = 5);
    h = nncc_batchnorm(h);
    h = nncc_activation(h, .activation = NNCC_TANH);
    bad += fd_case("batchnorm 2-D (train)", model1(x, nncc_dense(h, .units = 3)),
                   MSE(.train_mode = true, .batch = 6));

    x = input(NNCC_SHAPE(4, 4, 2));
    h = nncc_conv2d(x, .filters = 3, .kernel_size = {2, 2});
    h = nncc_batchnorm(h, .no_center = true);
    h = nncc_activation(h, .activation = NNCC_TANH);
    h = nncc_conv2d(h, .filters = 2, .kernel_size = {2, 2});
    h = nncc_batchnorm(h, .no_scale = true, .axis = 3);
    h = nncc_flatten(h);
    bad += fd_case("batchnorm 4-D (train)", model1(x, nncc_dense(h, .units = 2)),
                   MSE(.train_mode = true, .batch = 3));
    assert_int_equal(bad, 0);
}

/* ---- 1. Finite differences: every loss ---------------------------------- */

/* x (5) → Dense 6 tanh → Dense C with `act` [→ Activation `layer_act`]. */
static nncc_model *head_model(int C, enum nncc_activation act, enum nncc_activation layer_act,
                              bool rank3)
{
    nncc_tensor *x = input(rank3 ? NNCC_SHAPE(3, 5) : NNCC_SHAPE(5));
    nncc_tensor *h = nncc_dense(x, .units = 6, .activation = NNCC_TANH);
    h = nncc_dense(h, .units = C, .activation = act);
    if (layer_act)
        h = nncc_activation(h, .activation = layer_act);
    return model1(x, h);
}

static void test_fd_losses(void **state)
{
    (void)state;
    int bad = 0;
    const enum nncc_loss MAE = NNCC_MEAN_ABSOLUTE_ERROR, BCE = NNCC_BINARY_CROSSENTROPY,
                         CCE = NNCC_CATEGORICAL_CROSSENTROPY,
                         SCCE = NNCC_SPARSE_CATEGORICAL_CROSSENTROPY;
    const enum nncc_activation LIN = NNCC_LINEAR, SIG = NNCC_SIGMOID, SMAX = NNCC_SOFTMAX;

    bad += fd_case("mse rank 3", head_model(3, NNCC_TANH, LIN, true), MSE());
    bad += fd_case("mae", head_model(3, LIN, LIN, false),
                   (struct spec){.loss = MAE, .target = T_AWAY, .metrics = NNCC_METRIC_MAE});

    /* Binary cross-entropy: sigmoid output (stable logits path), one unit
     * and several; probabilities from a hard_sigmoid output kept inside
     * (0.1, 0.9) (clipped, ε-in-log path); logits. */
    bad += fd_case("bce sigmoid", head_model(3, SIG, LIN, false),
                   (struct spec){.loss = BCE, .target = T_PROB, .stable = true,
                                 .metrics = NNCC_ACCURACY});
    bad += fd_case("bce sigmoid 1 unit", head_model(1, SIG, LIN, false),
                   (struct spec){.loss = BCE, .target = T_BINARY, .stable = true, .batch = 6,
                                 .metrics = NNCC_ACCURACY});
    bad += fd_case("bce hard_sigmoid probs", head_model(3, LIN, NNCC_HARD_SIGMOID, false),
                   (struct spec){.loss = BCE, .target = T_PROB, .wscale = 0.8, .prob_lo = 0.1,
                                 .prob_hi = 0.9});
    bad += fd_case("bce from_logits", head_model(3, LIN, LIN, false),
                   (struct spec){.loss = BCE, .from_logits = true, .target = T_PROB});

    /* Categorical cross-entropy: softmax output (stable), sigmoid outputs
     * (renormalised and clipped), logits with targets that do not sum to 1. */
    bad += fd_case("cce softmax", head_model(4, SMAX, LIN, false),
                   (struct spec){.loss = CCE, .target = T_DIST, .stable = true,
                                 .metrics = NNCC_ACCURACY});
    bad += fd_case("cce softmax one-hot", head_model(4, SMAX, LIN, false),
                   (struct spec){.loss = CCE, .target = T_ONEHOT, .stable = true});
    bad += fd_case("cce sigmoid renormalised", head_model(4, SIG, LIN, false),
                   (struct spec){.loss = CCE, .target = T_DIST});
    bad += fd_case("cce from_logits", head_model(4, LIN, LIN, false),
                   (struct spec){.loss = CCE, .from_logits = true, .target = T_PROB});
    bad += fd_case("cce softmax rank 3", head_model(4, SMAX, LIN, true),
                   (struct spec){.loss = CCE, .target = T_DIST, .stable = true, .batch = 2});

    /* Sparse categorical cross-entropy: softmax (stable), sigmoid outputs
     * (clipped log-probabilities), logits; labels (N,), (N, 1), (N, 3). */
    bad += fd_case("scce softmax", head_model(4, SMAX, LIN, false),
                   (struct spec){.loss = SCCE, .target = T_LABEL, .stable = true, .batch = 6,
                                 .metrics = NNCC_ACCURACY});
    bad += fd_case("scce sigmoid probs", head_model(4, SIG, LIN, false),
                   (struct spec){.loss = SCCE, .target = T_LABEL, .sparse_keep_last = true,
                                 .batch = 6});
    bad += fd_case("scce from_logits", head_model(4, LIN, LIN, false),
                   (struct spec){.loss = SCCE, .from_logits = true, .target = T_LABEL,
                                 .batch = 6});
    bad += fd_case("scce softmax rank 3", head_model(4, SMAX, LIN, true),
                   (struct spec){.loss = SCCE, .target = T_LABEL, .stable = true, .batch = 2});
    assert_int_equal(bad, 0);
}

/* ---- 2. The generated step against the reference step ------------------- */

struct compiled {
    struct gm g;
    struct nncc_optimizer opt;
    int n_slots;
    nncc_tensor *slots[MAXP * 3];
    struct nncc_train_spec ots;
    struct ir_plan oplans[2];
    struct ir_program otrain; /* oplans[0]'s */
    struct nncc_exec *ex;
};

static int optimizer_slots(const struct nncc_optimizer *o)
{
    switch (o->kind) {
    case NNCC_SGD: return o->momentum > 0;
    case NNCC_ADAM: return 2 + o->amsgrad;
    case NNCC_ADAGRAD: return 1;
    case NNCC_RMSPROP: return 1 + (o->momentum > 0) + o->centered;
    default: return 0;
    }
}

static void compiled_free(struct compiled *c)
{
    nncc_exec_free(c->ex);
    ir_plan_free(&c->oplans[0]);
    ir_plan_free(&c->oplans[1]);
    gm_free(&c->g);
}

/* The model's gradients-only step and its optimizer step, compiled into one
 * object.  `opt` must have every field set (compile()'s defaults are
 * resolved by runtime/train/train.c, which is not under test here). */
static void compiled_init(struct compiled *c, const char *name, nncc_model *m, struct spec o,
                          struct nncc_optimizer opt)
{
    memset(c, 0, sizeof *c);
    gm_init(&c->g, name, m, o);
    c->opt = opt;
    c->n_slots = optimizer_slots(&opt);
    static const char *const slot_name[] = {"s0", "s1", "s2"};
    for (int i = 0; i < c->g.n_params; i++)
        for (int s = 0; s < c->n_slots; s++) {
            char nm[300];
            snprintf(nm, sizeof nm, "optimizer/%s/%s", c->g.params[i]->name, slot_name[s]);
            c->slots[i * c->n_slots + s] = NN(ir_add_slot(m->g, c->g.params[i], nm, 0));
        }
    c->ots = c->g.ts;
    c->ots.gradients_only = false;
    c->ots.optimizer = opt;
    c->ots.slots = c->slots;
    c->ots.n_slots = c->n_slots;
    struct nncc_lower_opts lo = {.model_name = name, .train = &c->ots};
    enum nncc_status st = nncc_lower(&m->program, &lo, c->oplans);
    c->otrain = c->oplans[0].program;
    if (st)
        fail_msg("%s: autodiff with an optimizer: %s", name, nncc_last_error());
    OK(ir_verify(&c->otrain, "autodiff"));
    assert_int_equal(c->otrain.n_outputs, 1 + c->g.n_metrics);
    struct cg_entry e[2] = {
        {.plan = &c->g.plans[0], .name = "grad_step", .prefix = "g"},
        {.plan = &c->oplans[0], .name = "opt_step", .prefix = "o"},
    };
    c->ex = nncc_exec_build(e, 2, name);
    if (!c->ex) {
        /* Free first, so that LeakSanitizer does not bury the message. */
        char *why = strdup(nncc_last_error());
        compiled_free(c);
        print_error("%s: the generated steps do not build: %s\n", name, why ? why : "");
        free(why);
        fail();
    }
}

/* Runs a compiled entry on the case's data. */
static void run_compiled(struct compiled *c, int entry, float **outs, const double *h)
{
    struct nncc_exec_entry *e = &c->ex->entry[entry];
    float *ws = xcalloc(nncc_exec_ws_floats(e, c->g.batch) + 1, sizeof *ws);
    e->step(c->g.batch, e->params, (const float *const *)c->g.in, outs, ws, h);
    free(ws);
}

static double rms(const double *v, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += v[i] * v[i];
    return sqrt(s / (double)(n ? n : 1));
}

static double cmp_worst; /* the largest diff/tol compare() has seen (verbose) */

/* Counts elements of got outside |got − want| ≤ rel·|want| + floor. */
static int compare(const char *what, const char *name, const float *got, const double *want,
                   int64_t n, double rel, double floor)
{
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]), tol = rel * fabs(want[i]) + floor;
        if (tol > 0)
            cmp_worst = fmax(cmp_worst, d / tol);
        if (!(d <= tol)) {
            if (bad < 6)
                print_error("%s: %s[%lld]: generated %.9g, reference %.9g (diff %.3g, tol %.3g)\n",
                            what, name, (long long)i, (double)got[i], want[i], d, tol);
            bad++;
        }
    }
    return bad;
}

/* Loss, metrics and gradients of the generated gradients-only step against
 * the interpreter's. */
static int compare_gradients(struct compiled *c, const double *h, const char *what)
{
    struct gm *g = &c->g;
    float **cout = alloc_outs_f(&g->train, g->batch);
    double **rout = alloc_outs_d(&g->train, g->batch);
    run_compiled(c, 0, cout, h);
    OK(nncc_interp_step_d(&g->train, g->batch, (const float *const *)g->in, rout, h, false));
    int bad = 0;
    for (int k = 0; k < g->train.n_outputs; k++) {
        const nncc_tensor *t = g->train.outputs[k];
        int64_t n = numel(t);
        char name[300];
        if (k == 0)
            snprintf(name, sizeof name, "loss");
        else if (k <= g->n_metrics)
            snprintf(name, sizeof name, "metric %d", k);
        else
            snprintf(name, sizeof name, "gradient of %s", g->params[k - 1 - g->n_metrics]->name);
        bad += compare(what, name, cout[k], rout[k], n, CG_REL, CG_REL * rms(rout[k], n));
    }
    free_outs(cout, g->train.n_outputs);
    free_outs(rout, g->train.n_outputs);
    return bad;
}

/* Every PARAM value of the optimizer program (weights, slots, moving
 * statistics), for saving and restoring. */
struct snapshot {
    int n;
    nncc_tensor *t[MAXP * 5];
    float *v[MAXP * 5];
};

static void snap_take(struct snapshot *s, const struct ir_program *p)
{
    s->n = 0;
    for (int i = 0; i < p->n_nodes; i++)
        if (p->nodes[i]->op == IR_PARAM) {
            assert_true(s->n < MAXP * 5);
            nncc_tensor *t = p->nodes[i]->out;
            s->t[s->n] = t;
            s->v[s->n] = xcalloc((size_t)numel(t), sizeof(float));
            memcpy(s->v[s->n], t->data, sizeof(float) * (size_t)numel(t));
            s->n++;
        }
}

static void snap_restore(const struct snapshot *s)
{
    for (int i = 0; i < s->n; i++)
        memcpy(s->t[i]->data, s->v[i], sizeof(float) * (size_t)numel(s->t[i]));
}

static void snap_free(struct snapshot *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->v[i]);
    s->n = 0;
}

/* One optimizer step, generated and reference, from the same state. */
static int compare_update(struct compiled *c, const double *h)
{
    struct gm *g = &c->g;
    /* Slots as after a few steps: magnitudes of the gradient's. */
    double **rout = alloc_outs_d(&g->train, g->batch);
    OK(nncc_interp_step_d(&g->train, g->batch, (const float *const *)g->in, rout, h, false));
    uint64_t s = hash_str(g->name) ^ 0x510;
    for (int i = 0; i < g->n_params; i++) {
        double r = rms(rout[1 + g->n_metrics + i], numel(g->params[i]));
        for (int k = 0; k < c->n_slots; k++) {
            nncc_tensor *t = c->slots[i * c->n_slots + k];
            /* Mean squares ≥ 2r² keep RMSprop's centered v − ḡ² ≥ r². */
            bool squares = (c->opt.kind == NNCC_ADAM && k >= 1) ||
                           (c->opt.kind == NNCC_RMSPROP && k == 0) ||
                           c->opt.kind == NNCC_ADAGRAD;
            for (int64_t j = 0; j < numel(t); j++)
                t->data[j] = (float)(squares ? r * r * urand(&s, 2, 4) : r * urand(&s, -1, 1));
        }
    }
    free_outs(rout, g->train.n_outputs);

    struct snapshot before, gen;
    snap_take(&before, &c->otrain);
    float **cout = alloc_outs_f(&c->otrain, g->batch), **iout = alloc_outs_f(&c->otrain, g->batch);
    run_compiled(c, 1, cout, h);
    snap_take(&gen, &c->otrain);
    snap_restore(&before);
    OK(nncc_interp_step(&c->otrain, g->batch, (const float *const *)g->in, iout, h, true));
    int bad = 0;
    for (int k = 0; k < c->otrain.n_outputs; k++) {
        double want = (double)iout[k][0];
        bad += compare("optimizer step", k ? "metric" : "loss", cout[k], &want, 1, CG_REL, 0);
    }
    double lr = h[IR_HYPER_LR];
    for (int i = 0; i < gen.n; i++) {
        nncc_tensor *t = gen.t[i];
        int64_t n = numel(t);
        double *want = xcalloc((size_t)n, sizeof *want);
        for (int64_t j = 0; j < n; j++)
            want[j] = (double)t->data[j];
        bool weight = t->role == IR_ROLE_PARAM && t->trainable;
        double floor = weight ? 1e-4 * lr : OPT_REL * rms(want, n);
        bad += compare("optimizer step", t->name, gen.v[i], want, n, OPT_REL, floor);
        /* The step must move every trainable weight that has a gradient. */
        if (weight && memcmp(before.v[i], t->data, sizeof(float) * (size_t)n) == 0) {
            print_error("optimizer step: %s did not change\n", t->name);
            bad++;
        }
        free(want);
    }
    snap_restore(&before);
    snap_free(&before);
    snap_free(&gen);
    free_outs(cout, c->otrain.n_outputs);
    free_outs(iout, c->otrain.n_outputs);
    return bad;
}

/* x (20) → Dense 32 relu → Dense 10 softmax; categorical cross-entropy.
 * Batch 64 makes every matmul big enough for OpenMP's threshold. */
static nncc_model *mlp(void)
{
    nncc_tensor *x = input(NNCC_SHAPE(20));
    nncc_tensor *h = nncc_dense(x, .units = 32, .activation = NNCC_RELU);
    return model1(x, nncc_dense(h, .units = 10, .activation = NNCC_SOFTMAX));
}
#define MLP_SPEC                                                                         \
    ((struct spec){.loss = NNCC_CATEGORICAL_CROSSENTROPY, .target = T_ONEHOT, .batch = 64, \
                   .metrics = NNCC_ACCURACY, .stable = true})

/* Conv same relu → MaxPool → Conv valid tanh → AvgPool stride 1 → Flatten →
 * Dense softmax; sparse categorical cross-entropy. */
static nncc_model *cnn(void)
{
    nncc_tensor *x = input(NNCC_SHAPE(10, 10, 2));
    nncc_tensor *h = nncc_conv2d(x, .filters = 4, .kernel_size = {3, 3}, .padding = NNCC_SAME,
                                 .activation = NNCC_RELU);
    h = nncc_maxpool2d(h);
    h = nncc_conv2d(h, .filters = 6, .kernel_size = {3, 3}, .activation = NNCC_TANH);
    h = nncc_avgpool2d(h, .pool_size = {2, 2}, .strides = {1, 1});
    h = nncc_flatten(h);
    return model1(x, nncc_dense(h, .units = 5, .activation = NNCC_SOFTMAX));
}
#define CNN_SPEC                                                                        \
    ((struct spec){.loss = NNCC_SPARSE_CATEGORICAL_CROSSENTROPY, .target = T_LABEL,      \
                   .batch = 16, .metrics = NNCC_ACCURACY, .stable = true})

/* Two inputs; Add, Dropout, Concatenate; sigmoid outputs, binary
 * cross-entropy. */
static nncc_model *merge_dropout(float rate)
{
    nncc_graph *g = NN(nncc_graph_new());
    nncc_tensor *x1 = NN(nncc_input(g, NNCC_SHAPE(12)));
    nncc_tensor *x2 = NN(nncc_input(g, NNCC_SHAPE(6)));
    nncc_tensor *a = nncc_dense(x1, .units = 8, .activation = NNCC_TANH);
    nncc_tensor *b = nncc_dense(x2, .units = 8, .activation = NNCC_ELU);
    nncc_tensor *h = nncc_dropout(nncc_add(NNCC_TENSORS(a, b)), .rate = rate);
    nncc_tensor *c = nncc_dense(x1, .units = 4, .activation = NNCC_SWISH);
    h = nncc_concatenate(NNCC_TENSORS(h, c));
    h = nncc_dense(h, .units = 3, .activation = NNCC_SIGMOID);
    return NN(nncc_model_new_n(NNCC_TENSORS(x1, x2), NNCC_TENSORS(NN(h))));
}
#define MERGE_SPEC                                                                        \
    ((struct spec){.loss = NNCC_BINARY_CROSSENTROPY, .target = T_BINARY, .batch = 16,    \
                   .metrics = NNCC_ACCURACY | NNCC_METRIC_MAE, .stable = true})

static const struct nncc_optimizer ADAM = {.kind = NNCC_ADAM, .learning_rate = 1e-3f,
                                           .beta_1 = 0.9f, .beta_2 = 0.999f,
                                           .epsilon = 1e-7f};
static const struct nncc_optimizer RMSPROP = {.kind = NNCC_RMSPROP, .learning_rate = 1e-3f,
                                              .rho = 0.9f, .momentum = 0.5f, .centered = true,
                                              .epsilon = 1e-7f};
static const struct nncc_optimizer SGD = {.kind = NNCC_SGD, .learning_rate = 0.01f,
                                          .momentum = 0.9f, .nesterov = true,
                                          .clipvalue = 0.25f, .epsilon = 1e-7f};

static void compiled_case(const char *name, nncc_model *m, struct spec o,
                          struct nncc_optimizer opt, double lr)
{
    struct compiled c;
    compiled_init(&c, name, m, o, opt);
    const double h1[IR_HYPER_COUNT] = {[IR_HYPER_LR] = lr, [IR_HYPER_STEP] = 5,
                                       [IR_HYPER_SEED] = 4242};
    const double h2[IR_HYPER_COUNT] = {[IR_HYPER_LR] = lr, [IR_HYPER_STEP] = 5,
                                       [IR_HYPER_SEED] = 77777};
    cmp_worst = 0;
    int bad = compare_gradients(&c, h1, name);
    bad += compare_gradients(&c, h2, name); /* another dropout mask */
    double grad_worst = cmp_worst;
    cmp_worst = 0;
    bad += compare_update(&c, h1);
    if (verbose)
        print_message("%s: generated vs reference: gradients %.3f tol, optimizer step %.3f tol\n",
                      name, grad_worst, cmp_worst);
    compiled_free(&c);
    assert_int_equal(bad, 0);
}

static void test_compiled_mlp(void **state)
{
    (void)state;
    compiled_case("mlp", mlp(), MLP_SPEC, ADAM, 1e-3);
}

static void test_compiled_cnn(void **state)
{
    (void)state;
    compiled_case("cnn", cnn(), CNN_SPEC, RMSPROP, 1e-3);
}

/* Max pooling through pool_argmax in every emitted form: overlapping
 * padded windows (3x3 stride 2 SAME) after the first convolution
 * (pool_wgrad with a scattered gradient), overlapping unpadded windows
 * (2x2 stride 1), and tiling windows over images constant on 2x2 blocks,
 * so that every window of the first pooling has ties (the first maximum
 * wins, as in TensorFlow). */
static nncc_model *pools(void)
{
    nncc_tensor *x = input(NNCC_SHAPE(12, 12, 1));
    nncc_tensor *h = nncc_maxpool2d(x, .pool_size = {2, 2});
    h = nncc_conv2d(h, .filters = 4, .kernel_size = {3, 3}, .padding = NNCC_SAME,
                    .activation = NNCC_RELU);
    h = nncc_maxpool2d(h, .pool_size = {3, 3}, .strides = {2, 2}, .padding = NNCC_SAME);
    h = nncc_conv2d(h, .filters = 5, .kernel_size = {1, 1}, .activation = NNCC_TANH);
    h = nncc_maxpool2d(h, .pool_size = {2, 2}, .strides = {1, 1});
    h = nncc_flatten(h);
    return model1(x, nncc_dense(h, .units = 3, .activation = NNCC_SOFTMAX));
}

static void test_compiled_pools(void **state)
{
    (void)state;
    struct spec o = CNN_SPEC;
    o.tied_blocks = true;
    compiled_case("pools", pools(), o, ADAM, 1e-3);
}

static void test_compiled_merge_dropout(void **state)
{
    (void)state;
    compiled_case("merge dropout", merge_dropout(0.25f), MERGE_SPEC, SGD, 0.01);
}

/* The usual dropout rate 0.5.
 * Regression (fixed): emit_dropout_train (codegen/eltwise.c) prints the scale 1/(1 − rate)
 * with "%.9gf", which for rate 0.5 is "2f", not a C constant: the step does
 * not compile ("invalid digit 'f' in decimal constant"). */
static void test_compiled_dropout_half(void **state)
{
    (void)state;
    compiled_case("merge dropout 0.5", merge_dropout(0.5f), MERGE_SPEC, ADAM, 1e-3);
}

/* An integral clipping threshold, as Keras users write clipnorm=1.0.
 * Regression (fixed): emit_update (codegen/optimizer.c) prints clipnorm, clipvalue and
 * global_clipnorm with "%.9gf" too: 1.0 becomes "1f" and the step does not
 * compile. */
static void test_compiled_clipnorm_one(void **state)
{
    (void)state;
    struct nncc_optimizer opt = ADAM;
    opt.clipnorm = 1.0f;
    compiled_case("mlp clipnorm 1", mlp(), MLP_SPEC, opt, 1e-3);
}

/* Broadcasting Add (its gradient sums dy back to each input's shape:
 * sum_to) and softmax in the middle of a network (its own gradient kernel,
 * softmax_grad, not the p − y of a softmax fused into the loss): three
 * inputs (None, 4, 1, 2), (None, 4, 5, 2), (None, 1, 5, 2), a Dense on
 * each, added with broadcasting over axes 2 and 1, a softmax Activation,
 * Dense tanh, Flatten, Dense. */
static nncc_model *broadcast_softmax(void)
{
    nncc_graph *g = NN(nncc_graph_new());
    nncc_tensor *x1 = NN(nncc_input(g, NNCC_SHAPE(4, 1, 2)));
    nncc_tensor *x2 = NN(nncc_input(g, NNCC_SHAPE(4, 5, 2)));
    nncc_tensor *x3 = NN(nncc_input(g, NNCC_SHAPE(1, 5, 2)));
    nncc_tensor *a = nncc_dense(x1, .units = 3);
    nncc_tensor *b = nncc_dense(x2, .units = 3, .activation = NNCC_TANH);
    nncc_tensor *c = nncc_dense(x3, .units = 3, .activation = NNCC_SIGMOID);
    nncc_tensor *h = nncc_add(NNCC_TENSORS(a, b));
    h = nncc_add(NNCC_TENSORS(c, h));
    h = nncc_activation(h, .activation = NNCC_SOFTMAX);
    h = nncc_dense(h, .units = 4, .activation = NNCC_TANH);
    h = nncc_flatten(h);
    h = nncc_dense(h, .units = 3);
    return NN(nncc_model_new_n(NNCC_TENSORS(x1, x2, x3), NNCC_TENSORS(NN(h))));
}

/* The nodes of `op` with their own kernel (not absorbed into a group). */
static int kernels_of(const struct ir_plan *p, enum ir_op op)
{
    int k = 0;
    for (int i = 0; i < p->program.n_nodes; i++)
        k += p->program.nodes[i]->op == op && p->groups[i].kind != IR_GROUP_MEMBER;
    return k;
}

static void test_compiled_broadcast_softmax(void **state)
{
    (void)state;
    /* The training step must hold the kernels this case is for: one
     * sum_to per broadcast input (x1's and x3's branches), and a
     * softmax_grad. */
    struct gm g;
    gm_init(&g, "broadcast softmax (plan)", broadcast_softmax(), MSE(.batch = 3));
    int sum_to = kernels_of(&g.plans[0], IR_SUM_TO);
    int softmax_grad = kernels_of(&g.plans[0], IR_SOFTMAX_GRAD);
    gm_free(&g);
    if (sum_to < 2 || softmax_grad != 1)
        fail_msg("the training step has %d sum_to and %d softmax_grad kernels; the case needs "
                 "at least 2 and 1",
                 sum_to, softmax_grad);
    /* The reference's gradients against finite differences, then the
     * generated step against the reference. */
    assert_int_equal(fd_case("broadcast softmax", broadcast_softmax(), MSE(.batch = 3)), 0);
    compiled_case("broadcast softmax", broadcast_softmax(), MSE(.batch = 8), ADAM, 1e-3);
}

/* A shared layer in the generated step (see iso_fd_shared: a fixed bug). */
static void iso_compiled_shared(void **state)
{
    (void)state;
    nncc_tensor *x = input(NNCC_SHAPE(8));
    nncc_layer *d = NN(nncc_dense_layer(.units = 8, .activation = NNCC_TANH));
    nncc_tensor *h = nncc_call(d, nncc_call(d, x));
    compiled_case("shared layer", model1(x, nncc_dense(h, .units = 3, .activation = NNCC_SOFTMAX)),
                  (struct spec){.loss = NNCC_CATEGORICAL_CROSSENTROPY, .target = T_ONEHOT,
                                .batch = 5, .stable = true},
                  ADAM, 1e-3);
}

/* Runs an iso_* test in a child process (this program again, with
 * --isolated NAME): a memory error there fails that test only. */
static void run_isolated(const char *name)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/proc/self/exe", "test_grad", "--isolated", name, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        fail_msg("%s: its child process died of signal %d (memory corruption?)", name,
                 WTERMSIG(status));
    if (WEXITSTATUS(status) != 0)
        fail_msg("%s failed in its child process (exit status %d, messages above)", name,
                 WEXITSTATUS(status));
}

static void test_fd_shared(void **state)
{
    (void)state;
    run_isolated("iso_fd_shared");
}

static void test_compiled_shared(void **state)
{
    (void)state;
    run_isolated("iso_compiled_shared");
}

/* ---- 2. Max-pooling ties: the first maximum in window order ------------- */

/* Every cell of a window that ties for its maximum is a valid argmax, and
 * nothing above (finite differences, random data, the tied_blocks cases,
 * where tied cells have the same inputs) tells them apart.  Here the tied
 * cells hold different inputs x = (x0, x1) with the same 1x1 convolution
 * z = x0 + x1 (kernel (1, 1), bias 0, relu, z > 0), so d loss / d kernel
 * = Σ dy·x[winning cell] names the winner: TensorFlow's, the first in
 * window order (row-major over the window), and never a later one.
 * Expected values are worked by hand (in the comments); every number is
 * exact in float.  Each case runs through the reference interpreter and the
 * generated step, with fusion (conv_pool: the argmax kept by the
 * convolution's kernel, and pool_wgrad; or pool_keep) and without
 * (NNCC_NO_FUSE=conv_pool: pool_keep; NNCC_NO_FUSE=1: pool_argmax and
 * pool2d_grad as their own kernels); the plan must hold the expected kind,
 * so that the case cannot silently stop covering it. */
struct tie_case {
    const char *name;
    int H, W, stride;          /* input H×W×2; max pooling 2×2 with this stride */
    float x[2 * 4 * 2];        /* the image, NHWC */
    float target[2];           /* y_true for the two pooled outputs */
    double loss, dkernel[2], dbias;
};

/* Whether the plan has a node of op `op` heading (or in, for MEMBER) a
 * group of kind `kind`. */
static bool plan_has(const struct ir_plan *p, enum ir_op op, enum ir_group_kind kind)
{
    for (int i = 0; i < p->program.n_nodes; i++)
        if (p->program.nodes[i]->op == op && p->groups[i].kind == kind)
            return true;
    return false;
}

static int tie_run(const struct tie_case *tc, const char *no_fuse)
{
    if (no_fuse)
        setenv("NNCC_NO_FUSE", no_fuse, 1);
    else
        unsetenv("NNCC_NO_FUSE");
    char name[128];
    snprintf(name, sizeof name, "%s, NNCC_NO_FUSE=%s", tc->name, no_fuse ? no_fuse : "");
    nncc_tensor *x = input(NNCC_SHAPE(tc->H, tc->W, 2));
    nncc_tensor *h = nncc_conv2d(x, .filters = 1, .kernel_size = {1, 1}, .activation = NNCC_RELU);
    h = nncc_maxpool2d(h, .pool_size = {2, 2}, .strides = {tc->stride, tc->stride});
    struct gm g;
    gm_init(&g, name, model1(x, nncc_flatten(h)), MSE(.batch = 1));
    unsetenv("NNCC_NO_FUSE");
    assert_int_equal(g.n_params, 2);
    g.params[0]->data[0] = g.params[0]->data[1] = 1; /* kernel (1, 1, 2, 1) */
    g.params[1]->data[0] = 0;                        /* bias */
    memcpy(g.in[0], tc->x, sizeof(float) * (size_t)(tc->H * tc->W * 2));
    memcpy(g.in[1], tc->target, sizeof tc->target);

    /* What the plan must cover. */
    const struct ir_plan *p = &g.plans[0];
    bool tiling = tc->stride == 2, covered;
    if (!no_fuse)
        covered = tiling ? plan_has(p, IR_CONV2D, IR_GROUP_CONV_POOL) &&
                               plan_has(p, IR_POOL2D_GRAD, IR_GROUP_POOL_WGRAD)
                         : plan_has(p, IR_MAXPOOL2D, IR_GROUP_POOL_KEEP);
    else if (strcmp(no_fuse, "1") == 0)
        covered = plan_has(p, IR_POOL_ARGMAX, IR_GROUP_NONE) &&
                  plan_has(p, IR_POOL2D_GRAD, IR_GROUP_NONE);
    else
        covered = plan_has(p, IR_MAXPOOL2D, IR_GROUP_POOL_KEEP);
    if (!covered) {
        print_error("%s: the plan lacks the kernels this case is for:\n", name);
        ir_plan_print_groups(p, stderr);
        gm_free(&g);
        return 1;
    }

    const double h0[IR_HYPER_COUNT] = {[IR_HYPER_LR] = 0, [IR_HYPER_STEP] = 1,
                                       [IR_HYPER_SEED] = 1};
    const double want[4] = {tc->loss, tc->dkernel[0], tc->dkernel[1], tc->dbias};
    const char *what[4] = {"loss", "d kernel[0]", "d kernel[1]", "d bias"};
    int bad = 0;
    /* The reference interpreter (its pool_argmax), then the generated step. */
    double **rout = alloc_outs_d(&g.train, 1);
    OK(nncc_interp_step_d(&g.train, 1, (const float *const *)g.in, rout, h0, false));
    /* Outputs: loss, the kernel's gradient (2), the bias's (1). */
    const double rgot[4] = {rout[0][0], rout[1][0], rout[1][1], rout[2][0]};
    for (int k = 0; k < 4; k++)
        if (rgot[k] != want[k]) {
            print_error("%s: reference %s is %.9g, want %.9g\n", name, what[k], rgot[k], want[k]);
            bad++;
        }
    free_outs(rout, g.train.n_outputs);
    struct cg_entry e = {.plan = p, .name = "grad_step", .prefix = "g"};
    struct nncc_exec *ex = nncc_exec_build(&e, 1, name);
    if (!ex)
        fail_msg("%s: the step does not build: %s", name, nncc_last_error());
    float **cout = alloc_outs_f(&g.train, 1);
    float *ws = xcalloc(nncc_exec_ws_floats(&ex->entry[0], 1) + 1, sizeof *ws);
    ex->entry[0].step(1, ex->entry[0].params, (const float *const *)g.in, cout, ws, h0);
    const double cgot[4] = {cout[0][0], cout[1][0], cout[1][1], cout[2][0]};
    for (int k = 0; k < 4; k++)
        if (cgot[k] != want[k]) {
            print_error("%s: generated %s is %.9g, want %.9g\n", name, what[k], cgot[k], want[k]);
            bad++;
        }
    free(ws);
    free_outs(cout, g.train.n_outputs);
    nncc_exec_free(ex);
    gm_free(&g);
    return bad;
}

static void test_pool_ties_first(void **state)
{
    (void)state;
    /* Tiling windows (2×2 stride 2) over a 2×4 image; cells as (x0, x1):
     *   row 0: (0.5,0) (2,0)   | (0,3) (3,0)
     *   row 1: (0,2)   (1,1)   | (1,0) (1.5,1.5)
     * z = x0 + x1: window 0 is [0.5 2 | 2 2] in window order, its first
     * maximum the second cell, x = (2, 0) (the last would be (1, 1));
     * window 1 is [3 3 | 1 3], first the first cell, x = (0, 3) (the last
     * (1.5, 1.5)).  Pooled (2, 3) against targets (1, 1): loss (1² + 2²)/2
     * = 2.5, d loss / d pooled = (1, 2); d kernel = 1·(2, 0) + 2·(0, 3) =
     * (2, 6) (the last maxima would give (4, 4)); d bias = 1 + 2 = 3. */
    const struct tie_case tiling = {
        .name = "ties, tiling windows", .H = 2, .W = 4, .stride = 2,
        .x = {0.5f, 0, 2, 0, 0, 3, 3, 0, /**/ 0, 2, 1, 1, 1, 0, 1.5f, 1.5f},
        .target = {1, 1}, .loss = 2.5, .dkernel = {2, 6}, .dbias = 3};
    /* Overlapping windows (2×2 stride 1) over a 2×3 image:
     *   row 0: (3,0)     (1,1) (0,3)
     *   row 1: (0.5,0.5) (1,2) (2.5,0.5)
     * z: row 0 [3 2 3], row 1 [1 3 3].  Window 0 is [3 2 | 1 3]: first
     * the first cell, x = (3, 0) (the last (1, 2)); window 1 is [2 3 | 3 3]:
     * first the second cell, x = (0, 3) (the last (2.5, 0.5)).  Pooled
     * (3, 3) against (2, 1): loss (1² + 2²)/2 = 2.5, d pooled = (1, 2);
     * d kernel = 1·(3, 0) + 2·(0, 3) = (3, 6) (the last maxima: (6, 3));
     * d bias = 3. */
    const struct tie_case overlap = {
        .name = "ties, overlapping windows", .H = 2, .W = 3, .stride = 1,
        .x = {3, 0, 1, 1, 0, 3, /**/ 0.5f, 0.5f, 1, 2, 2.5f, 0.5f},
        .target = {2, 1}, .loss = 2.5, .dkernel = {3, 6}, .dbias = 3};
    int bad = 0;
    const char *settings[] = {NULL, "conv_pool", "1"};
    for (int s = 0; s < 3; s++) {
        bad += tie_run(&tiling, settings[s]);
        if (s != 1) /* conv_pool never applies to overlapping windows */
            bad += tie_run(&overlap, settings[s]);
    }
    assert_int_equal(bad, 0);
}

/* ---- 3. One thread and two ---------------------------------------------- */

/* Gradients of a compiled model on 1 and then 2 threads; false when the
 * generated code has no OpenMP runtime to ask. */
static bool threads_case(const char *name, nncc_model *m, struct spec o)
{
    struct compiled c;
    compiled_init(&c, name, m, o, ADAM); /* the same source as before: a cache hit */
    /* dlsym on the handle searches the object's dependencies too. */
    void *set = dlsym(c.ex->handle, "omp_set_num_threads");
    void *get = dlsym(c.ex->handle, "omp_get_max_threads");
    if (!set || !get) {
        compiled_free(&c);
        return false;
    }
    void (*set_threads)(int);
    int (*max_threads)(void);
    memcpy(&set_threads, &set, sizeof set);
    memcpy(&max_threads, &get, sizeof get);
    int was = max_threads();
    const double h[IR_HYPER_COUNT] = {[IR_HYPER_LR] = 1e-3, [IR_HYPER_STEP] = 1,
                                      [IR_HYPER_SEED] = 4242};
    float **o1 = alloc_outs_f(&c.g.train, c.g.batch), **o2 = alloc_outs_f(&c.g.train, c.g.batch);
    set_threads(1);
    run_compiled(&c, 0, o1, h);
    set_threads(2);
    assert_int_equal(max_threads(), 2);
    run_compiled(&c, 0, o2, h);
    set_threads(was);
    int bad = 0;
    bool same = true;
    for (int k = 0; k < c.g.train.n_outputs; k++) {
        int64_t n = numel(c.g.train.outputs[k]);
        double *want = xcalloc((size_t)n, sizeof *want);
        for (int64_t j = 0; j < n; j++)
            want[j] = (double)o1[k][j];
        bad += compare("2 threads vs 1", c.g.train.outputs[k]->name, o2[k], want, n, CG_REL,
                       CG_REL * rms(want, n));
        same &= memcmp(o1[k], o2[k], sizeof(float) * (size_t)n) == 0;
        free(want);
    }
    if (verbose)
        print_message("%s: 1 and 2 threads give %s results\n", name,
                      same ? "bit-identical" : "different (within tolerance)");
    free_outs(o1, c.g.train.n_outputs);
    free_outs(o2, c.g.train.n_outputs);
    compiled_free(&c);
    assert_int_equal(bad, 0);
    return true;
}

static void test_threads(void **state)
{
    (void)state;
    bool ran = threads_case("mlp", mlp(), MLP_SPEC);
    ran &= threads_case("cnn", cnn(), CNN_SPEC);
    if (!ran) {
        /* NNCC_SANITIZE builds compile generated code without OpenMP. */
        print_message("test_threads: the generated code has no OpenMP runtime; skipped\n");
        skip();
    }
}

int main(int argc, char **argv)
{
    const char *v = getenv("TEST_GRAD_VERBOSE");
    verbose = v && *v && strcmp(v, "0") != 0;
    if (argc == 3 && strcmp(argv[1], "--isolated") == 0) {
        const struct CMUnitTest fd[] = {cmocka_unit_test(iso_fd_shared)};
        const struct CMUnitTest cg[] = {cmocka_unit_test(iso_compiled_shared)};
        if (strcmp(argv[2], "iso_fd_shared") == 0)
            return cmocka_run_group_tests_name("isolated", fd, NULL, NULL);
        if (strcmp(argv[2], "iso_compiled_shared") == 0)
            return cmocka_run_group_tests_name("isolated", cg, NULL, NULL);
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_dense),
        cmocka_unit_test(test_fd_activations),
        cmocka_unit_test(test_fd_conv),
        cmocka_unit_test(test_fd_pool),
        cmocka_unit_test(test_fd_merge),
        cmocka_unit_test(test_fd_shared),
        cmocka_unit_test(test_fd_dropout_train),
        cmocka_unit_test(test_fd_batchnorm_train),
        cmocka_unit_test(test_fd_losses),
        cmocka_unit_test(test_compiled_mlp),
        cmocka_unit_test(test_compiled_cnn),
        cmocka_unit_test(test_compiled_pools),
        cmocka_unit_test(test_compiled_merge_dropout),
        cmocka_unit_test(test_compiled_dropout_half),
        cmocka_unit_test(test_compiled_clipnorm_one),
        cmocka_unit_test(test_compiled_broadcast_softmax),
        cmocka_unit_test(test_compiled_shared),
        cmocka_unit_test(test_pool_ties_first),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
