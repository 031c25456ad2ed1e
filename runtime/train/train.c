/*
 * train.c — compile, fit and evaluate, with Keras 2.15's semantics
 * (keras/engine/training.py, data_adapter.py; see the behaviour reference).
 *
 * compile() checks and resolves the configuration and makes the optimizer
 * slots.  The first fit/evaluate lowers the model for the target's shape
 * (nncc_lower, passes/pipeline.c) and compiles both steps into one object: a training step
 * (forward, loss, backward, updates, metrics) and an evaluation step.
 *
 * fit(): validation_split takes the last rows before any shuffling; each
 * epoch draws a new permutation; the partial last batch is kept; the logs
 * are batch-size-weighted running means of the values each batch computed
 * before its update; validation runs after the epoch with the final
 * weights.  Every check on the data runs before training starts.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "runtime/train/train.h"
#include "ir/rng.h"

void nncc_train_state_free(struct nncc_train_state *t)
{
    if (!t)
        return;
    nncc_exec_free(t->exec);
    ir_plan_free(&t->train);
    ir_plan_free(&t->eval);
    free(t->params);
    free(t->slots);
    free(t);
}

/* ---- compile ----------------------------------------------------------- */

static enum nncc_status resolve_optimizer(struct nncc_optimizer *o)
{
    if (o->kind == NNCC_OPTIMIZER_DEFAULT)
        o->kind = NNCC_RMSPROP;
    if ((int)o->kind < NNCC_SGD || o->kind > NNCC_RMSPROP)
        return nncc_fail(NNCC_ERR_ARG, "compile: unknown optimizer %d", (int)o->kind);
    if (o->learning_rate == 0)
        o->learning_rate = o->kind == NNCC_SGD ? 0.01f : 0.001f;
    if (o->epsilon == 0)
        o->epsilon = 1e-7f;
    if (o->beta_1 == 0)
        o->beta_1 = 0.9f;
    if (o->beta_2 == 0)
        o->beta_2 = 0.999f;
    if (o->rho == 0)
        o->rho = 0.9f;
    if (o->initial_accumulator_value == 0)
        o->initial_accumulator_value = 0.1f;
    if (!(o->learning_rate > 0) || isinf(o->learning_rate))
        return nncc_fail(NNCC_ERR_ARG, "compile: learning_rate must be positive, got %g",
                         (double)o->learning_rate);
    if (o->momentum < 0 || o->momentum > 1 || isnan(o->momentum))
        return nncc_fail(NNCC_ERR_ARG, "compile: momentum must be in [0, 1], got %g",
                         (double)o->momentum);
    if (!(o->beta_1 > 0 && o->beta_1 < 1) || !(o->beta_2 > 0 && o->beta_2 < 1))
        return nncc_fail(NNCC_ERR_ARG, "compile: beta_1 and beta_2 must be in (0, 1), got %g, %g",
                         (double)o->beta_1, (double)o->beta_2);
    if (!(o->rho > 0 && o->rho < 1))
        return nncc_fail(NNCC_ERR_ARG, "compile: rho must be in (0, 1), got %g", (double)o->rho);
    if (!(o->epsilon > 0))
        return nncc_fail(NNCC_ERR_ARG, "compile: epsilon must be positive, got %g",
                         (double)o->epsilon);
    int clips = (o->clipnorm != 0) + (o->clipvalue != 0) + (o->global_clipnorm != 0);
    if (clips > 1)
        return nncc_fail(NNCC_ERR_ARG, "compile: at most one of clipnorm, clipvalue and "
                                       "global_clipnorm may be set");
    if (o->clipnorm < 0 || o->clipvalue < 0 || o->global_clipnorm < 0)
        return nncc_fail(NNCC_ERR_ARG, "compile: clipping thresholds must be positive");
    if (o->nesterov && o->kind == NNCC_SGD && o->momentum == 0)
        return nncc_fail(NNCC_ERR_ARG, "compile: nesterov needs a momentum");
    return NNCC_OK;
}

/* Slot names in Keras' order (keras/optimizers, build()). */
static int slot_names(const struct nncc_optimizer *o, const char **names, float *init)
{
    int n = 0;
    switch (o->kind) {
    case NNCC_SGD:
        if (o->momentum > 0)
            names[n] = "momentum", init[n++] = 0;
        break;
    case NNCC_ADAM:
        names[n] = "m", init[n++] = 0;
        names[n] = "v", init[n++] = 0;
        if (o->amsgrad)
            names[n] = "vhat", init[n++] = 0;
        break;
    case NNCC_ADAGRAD:
        names[n] = "accumulator", init[n++] = o->initial_accumulator_value;
        break;
    case NNCC_RMSPROP:
        names[n] = "velocity", init[n++] = 0;
        if (o->momentum > 0)
            names[n] = "momentum", init[n++] = 0;
        if (o->centered)
            names[n] = "average_gradient", init[n++] = 0;
        break;
    case NNCC_OPTIMIZER_DEFAULT:
        break;
    }
    return n;
}

enum nncc_status nncc_compile_(nncc_model *m, struct nncc_compile_opts o)
{
    if (!model_check_ready(m))
        return nncc_last_status();
    if (m->n_outputs != 1)
        return nncc_fail(NNCC_ERR_ARG,
                         "compile: model \"%s\" has %d outputs; training supports one output",
                         m->name, m->n_outputs);
    /* The step takes one array per input, but fit and evaluate hand it {x, y}:
     * a second input would be read from y (a crash), so refuse it here. */
    if (m->n_inputs != 1)
        return nncc_fail(NNCC_ERR_ARG,
                         "compile: model \"%s\" has %d inputs; fit and evaluate take one input "
                         "array today",
                         m->name, m->n_inputs);
    if ((int)o.loss <= NNCC_LOSS_NONE || o.loss > NNCC_SPARSE_CATEGORICAL_CROSSENTROPY)
        return nncc_fail(NNCC_ERR_ARG, "compile: %s loss", o.loss ? "unknown" : "missing");
    if (o.metrics & ~(unsigned)(NNCC_ACCURACY | NNCC_METRIC_MSE | NNCC_METRIC_MAE))
        return nncc_fail(NNCC_ERR_ARG, "compile: unknown metric flags 0x%x", o.metrics);
    enum nncc_status st = resolve_optimizer(&o.optimizer);
    if (st)
        return st;
    struct nncc_train_state *t = calloc(1, sizeof *t);
    if (!t)
        return nncc_fail(NNCC_ERR_NOMEM, "out of memory (compile)");
    t->opts = o;
    t->learning_rate = o.optimizer.learning_rate;
    float init[NNCC_MAX_SLOTS];
    t->n_slots = slot_names(&o.optimizer, t->slot_names, init);
    int cap = 0;
    for (int i = 0; i < m->n_layers; i++)
        cap += m->layers[i]->n_weights;
    t->params = malloc(sizeof *t->params * (size_t)(cap + 1));
    t->slots = malloc(sizeof *t->slots * (size_t)(cap * t->n_slots + 1));
    if (!t->params || !t->slots) {
        nncc_train_state_free(t);
        return nncc_fail(NNCC_ERR_NOMEM, "out of memory (compile)");
    }
    for (int i = 0; i < m->n_layers; i++)
        for (int k = 0; k < m->layers[i]->n_weights; k++) {
            nncc_tensor *w = m->layers[i]->weights[k];
            if (!w->trainable)
                continue;
            for (int s = 0; s < t->n_slots; s++) {
                /* Allocated: a saved tensor's name must never be cut short. */
                char *name = ir_strfmt("optimizer/%s/%s", w->name, t->slot_names[s]);
                nncc_tensor *slot = name ? ir_add_slot(m->g, w, name, init[s]) : NULL;
                free(name);
                if (!slot) {
                    nncc_train_state_free(t);
                    return nncc_last_status();
                }
                t->slots[t->n_params * t->n_slots + s] = slot;
            }
            t->params[t->n_params++] = w;
        }
    static const struct {
        unsigned flag;
        const char *name;
    } metric_keys[] = {{NNCC_ACCURACY, "accuracy"},
                       {NNCC_METRIC_MSE, "mean_squared_error"},
                       {NNCC_METRIC_MAE, "mean_absolute_error"}};
    for (int k = 0; k < 3; k++)
        if (o.metrics & metric_keys[k].flag)
            snprintf(t->metric_names[t->n_metrics++], sizeof t->metric_names[0], "%s",
                     metric_keys[k].name);
    nncc_train_state_free(m->train);
    m->train = t;
    m->release_runtime = nncc_runtime_release;
    return NNCC_OK;
}

float nncc_get_learning_rate(const nncc_model *m)
{
    return m && m->train ? m->train->learning_rate : NAN;
}

enum nncc_status nncc_set_learning_rate(nncc_model *m, float lr)
{
    if (!m || !m->train)
        return nncc_fail(NNCC_ERR_ARG, "set_learning_rate: the model is not compiled");
    if (!(lr >= 0) || isinf(lr))
        return nncc_fail(NNCC_ERR_ARG, "set_learning_rate: %g is not a learning rate", (double)lr);
    m->train->learning_rate = lr;
    return NNCC_OK;
}

void nncc_model_stop_training(nncc_model *m)
{
    if (m && m->train)
        m->train->stop = true;
}

/* ---- Checking the data ------------------------------------------------- */

static bool finite_array(const struct nncc_array *a, const char *what)
{
    int64_t n = nncc_array_size(a);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(a->data[i])) {
            int64_t row = i / (n / a->shape.dim[0]);
            nncc_fail(NNCC_ERR_ARG, "%s holds %s at row %lld (flat index %lld)", what,
                      isnan(a->data[i]) ? "NaN" : "an infinity", (long long)row, (long long)i);
            return false;
        }
    return true;
}

/* x must match the model's input; y the loss (Keras' rules, including a
 * (N,) target for an (N, 1) output).  Sets *target_shape. */
static enum nncc_status check_data(const nncc_model *m, const struct nncc_array *x,
                                   const struct nncc_array *y, const char *who,
                                   struct nncc_shape *target_shape)
{
    char a[160], b[160];
    if (m->n_inputs != 1 || m->n_outputs != 1) /* compile refuses these; a guard */
        return nncc_fail(NNCC_ERR_ARG,
                         "%s: model \"%s\" has %d inputs and %d outputs; fit and evaluate take "
                         "one input and one output today",
                         who, m->name, m->n_inputs, m->n_outputs);
    if (!x || !y || !x->data || !y->data)
        return nncc_fail(NNCC_ERR_ARG, "%s: x and y are required", who);
    if (x->shape.rank < 1 || y->shape.rank < 1 || x->shape.dim[0] < 1)
        return nncc_fail(NNCC_ERR_ARG, "%s: x and y need at least one row", who);
    if (x->shape.dim[0] != y->shape.dim[0])
        return nncc_fail(NNCC_ERR_ARG, "%s: x has %lld rows but y has %lld", who,
                         (long long)x->shape.dim[0], (long long)y->shape.dim[0]);
    struct nncc_shape in = m->inputs[0]->shape, out = m->outputs[0]->shape;
    bool same = x->shape.rank == in.rank;
    for (int i = 1; same && i < in.rank; i++)
        same = x->shape.dim[i] == in.dim[i];
    if (!same)
        return nncc_fail(NNCC_ERR_SHAPE, "%s: x of shape %s does not match the model's input %s",
                         who, ir_dims_str(x->shape, a, sizeof a), nncc_shape_str(in, b, sizeof b));
    struct nncc_shape ys = y->shape;
    ys.dim[0] = NNCC_NONE;
    int64_t C = out.dim[out.rank - 1];
    int64_t y_row = ir_shape_numel(y->shape, 1), out_row = ir_shape_numel(out, 1);
    enum nncc_loss loss = m->train->opts.loss;
    if (loss == NNCC_SPARSE_CATEGORICAL_CROSSENTROPY) {
        if (y_row * C != out_row || (ys.rank != out.rank && ys.rank != out.rank - 1))
            return nncc_fail(NNCC_ERR_SHAPE,
                             "%s: sparse labels y of shape %s do not fit the output %s (one class "
                             "index per row: (n,) or (n, 1))",
                             who, ir_dims_str(y->shape, a, sizeof a),
                             nncc_shape_str(out, b, sizeof b));
        int64_t n = nncc_array_size(y);
        for (int64_t i = 0; i < n; i++) {
            float v = y->data[i];
            if (!(v >= 0 && v < (float)C) || v != floorf(v))
                return nncc_fail(NNCC_ERR_ARG,
                                 "%s: label %g at row %lld is not a class index in [0, %lld)", who,
                                 (double)v, (long long)(i / (n / y->shape.dim[0])), (long long)C);
        }
    } else {
        bool fits = ys.rank == out.rank;
        for (int i = 1; fits && i < out.rank; i++)
            fits = ys.dim[i] == out.dim[i];
        /* Keras expands y (N,) to (N, 1) for an (N, 1) output. */
        bool expand = !fits && ys.rank == out.rank - 1 && C == 1 && y_row * C == out_row;
        if (!fits && !expand && loss == NNCC_CATEGORICAL_CROSSENTROPY && C > 1 &&
            y_row == 1) {
            /* One number per row for a one-hot loss: class indices? */
            int64_t n = nncc_array_size(y);
            float top = 0;
            bool indices = true;
            for (int64_t i = 0; i < n && indices; i++) {
                indices = y->data[i] >= 0 && y->data[i] == floorf(y->data[i]);
                top = fmaxf(top, y->data[i]);
            }
            if (indices && top > 1) {
                char c[160];
                struct nncc_shape onehot = NNCC_SHAPE(y->shape.dim[0], C);
                return nncc_fail(NNCC_ERR_SHAPE,
                                 "%s: y of shape %s does not match the output %s: y holds class "
                                 "indices (0 to %g); use sparse_categorical_crossentropy, or "
                                 "one-hot rows %s",
                                 who, ir_dims_str(y->shape, a, sizeof a),
                                 nncc_shape_str(out, b, sizeof b), (double)top,
                                 ir_dims_str(onehot, c, sizeof c));
            }
        }
        if (!fits && !expand)
            return nncc_fail(NNCC_ERR_SHAPE, "%s: y of shape %s does not match the output %s", who,
                             ir_dims_str(y->shape, a, sizeof a), nncc_shape_str(out, b, sizeof b));
        if (expand)
            ys = out;
        if (loss == NNCC_CATEGORICAL_CROSSENTROPY && C == 1)
            return nncc_fail(NNCC_ERR_SHAPE,
                             "%s: categorical_crossentropy needs one column per class, but the "
                             "output %s has one",
                             who, nncc_shape_str(out, b, sizeof b));
    }
    if (!finite_array(x, "x") || !finite_array(y, "y")) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s: %s", who, nncc_last_error());
        return nncc_fail(NNCC_ERR_ARG, "%s", msg);
    }
    *target_shape = ys;
    return NNCC_OK;
}

void nncc_runtime_release(nncc_model *m)
{
    nncc_exec_free(m->exec);
    m->exec = NULL;
    nncc_train_state_free(m->train);
    m->train = NULL;
}

struct nncc_train_spec nncc_train_spec_of(const nncc_model *m, struct nncc_shape target)
{
    const struct nncc_train_state *t = m->train;
    return (struct nncc_train_spec){
        .loss = t->opts.loss,
        .from_logits = t->opts.from_logits,
        .metrics = t->opts.metrics,
        .optimizer = t->opts.optimizer,
        .target_shape = target,
        .seed = t->opts.seed,
        .params = t->params,
        .n_params = t->n_params,
        .slots = t->slots,
        .n_slots = t->n_slots,
    };
}

struct nncc_shape nncc_train_default_target(const nncc_model *m)
{
    struct nncc_shape out = m->outputs[0]->shape, target = out;
    if (m->train->opts.loss == NNCC_SPARSE_CATEGORICAL_CROSSENTROPY)
        target.rank = out.rank - 1; /* one class index per row */
    if (target.rank < 1)
        target = out;
    return target;
}

void nncc_train_hyper(const struct nncc_train_state *t, double h[IR_HYPER_COUNT])
{
    h[IR_HYPER_LR] = t->learning_rate;
    h[IR_HYPER_STEP] = (double)(t->iterations + 1);
    /* 53 bits: exact in a double */
    h[IR_HYPER_SEED] = (double)(nncc_rng_key(t->opts.seed ^ (uint64_t)t->iterations, "dropout") >> 11);
}

void nncc_train_hyper_next(double h[IR_HYPER_COUNT]) { h[IR_HYPER_STEP] += 1; }

/* Builds (or rebuilds, for another target shape) and compiles the steps. */
enum nncc_status nncc_train_ensure_steps(nncc_model *m, struct nncc_shape target)
{
    struct nncc_train_state *t = m->train;
    if (t->built && ir_shape_eq(t->target_shape, target))
        return NNCC_OK;
    nncc_exec_free(t->exec);
    t->exec = NULL;
    ir_plan_free(&t->train);
    ir_plan_free(&t->eval);
    t->built = false;
    struct nncc_train_spec spec = nncc_train_spec_of(m, target);
    struct nncc_lower_opts lo = {.model_name = m->name, .train = &spec};
    struct ir_plan plans[2];
    enum nncc_status st = nncc_lower(&m->program, &lo, plans);
    t->train = plans[0];
    t->eval = plans[1];
    if (st)
        return st;
    struct cg_entry e[2] = {
        {.plan = &t->train, .name = "nncc_train_step", .prefix = "t"},
        {.plan = &t->eval, .name = "nncc_eval_step", .prefix = "e"},
    };
    if (!(t->exec = nncc_exec_build(e, 2, m->name)))
        return nncc_last_status();
    t->target_shape = target;
    t->built = true;
    return NNCC_OK;
}

/* ---- Running steps ----------------------------------------------------- */

/* Gathers rows idx[0..n) of a into dst (row-major). */
static void gather(const struct nncc_array *a, const int64_t *idx, int n, float *dst)
{
    int64_t row = nncc_array_size(a) / a->shape.dim[0];
    for (int i = 0; i < n; i++)
        memcpy(dst + (int64_t)i * row, a->data + idx[i] * row, sizeof *dst * (size_t)row);
}

/* Running, batch-size-weighted means of the step's outputs. */
struct means {
    double sum[NNCC_LOGS_MAX];
    int64_t count;
};

static void logs_from(const struct nncc_train_state *t, const struct means *mean,
                      const char *prefix, struct nncc_logs *logs)
{
    char name[48];
    snprintf(name, sizeof name, "%sloss", prefix);
    nncc_logs_set(logs, name, mean->sum[0] / (double)mean->count);
    for (int k = 0; k < t->n_metrics; k++) {
        snprintf(name, sizeof name, "%s%s", prefix, t->metric_names[k]);
        nncc_logs_set(logs, name, mean->sum[k + 1] / (double)mean->count);
    }
}

/* Runs the evaluation step over rows [from, to) in order. */
static enum nncc_status run_eval(nncc_model *m, const struct nncc_array *x,
                                 const struct nncc_array *y, int64_t from, int64_t to, int bs,
                                 struct means *mean, struct nncc_progbar *pb)
{
    struct nncc_train_state *t = m->train;
    struct nncc_exec_entry *e = &t->exec->entry[1];
    int64_t xrow = nncc_array_size(x) / x->shape.dim[0], yrow = nncc_array_size(y) / y->shape.dim[0];
    float *ws = malloc(sizeof *ws * (nncc_exec_ws_floats(e, bs) + 1));
    if (!ws)
        return nncc_fail(NNCC_ERR_NOMEM, "out of memory (workspace)");
    memset(mean, 0, sizeof *mean);
    float outs[NNCC_LOGS_MAX];
    float *outp[NNCC_LOGS_MAX];
    for (int k = 0; k < NNCC_LOGS_MAX; k++)
        outp[k] = &outs[k];
    double h[IR_HYPER_COUNT] = {0};
    int step = 0;
    for (int64_t s = from; s < to; s += bs) {
        int n = (int)(to - s < bs ? to - s : bs);
        const float *in[2] = {x->data + s * xrow, y->data + s * yrow};
        e->step(n, e->params, in, outp, ws, h);
        for (int k = 0; k <= t->n_metrics; k++)
            mean->sum[k] += (double)outs[k] * n;
        mean->count += n;
        if (pb) {
            struct nncc_logs l = {0};
            logs_from(t, mean, "", &l);
            step++;
            nncc_progbar_update(pb, step, &l, step == pb->target);
        }
    }
    free(ws);
    return NNCC_OK;
}

/* ---- evaluate ---------------------------------------------------------- */

struct nncc_logs nncc_evaluate_(nncc_model *m, const struct nncc_array *x,
                                const struct nncc_array *y, struct nncc_evaluate_opts o)
{
    struct nncc_logs logs = {0};
    struct nncc_shape target;
    if (!model_check_ready(m))
        return logs;
    if (!m->train) {
        nncc_fail(NNCC_ERR_ARG, "evaluate: model \"%s\" must be compiled first", m->name);
        return logs;
    }
    if (o.batch_size < 0) {
        nncc_fail(NNCC_ERR_ARG, "evaluate: batch_size must be positive, got %d", o.batch_size);
        return logs;
    }
    if (check_data(m, x, y, "evaluate", &target) || nncc_train_ensure_steps(m, target))
        return logs;
    int bs = o.batch_size ? o.batch_size : 32;
    int64_t n = x->shape.dim[0];
    struct nncc_progbar pb;
    int steps = (int)((n + bs - 1) / bs);
    if (o.verbose)
        nncc_progbar_init(&pb, stdout, steps, o.verbose);
    struct means mean;
    if (run_eval(m, x, y, 0, n, bs, &mean, o.verbose ? &pb : NULL) == NNCC_OK)
        logs_from(m->train, &mean, "", &logs);
    return logs;
}

/* ---- fit --------------------------------------------------------------- */

#define FOR_CALLBACKS(o, hook, ...)                                  \
    for (int c_ = 0; c_ < (o)->n_callbacks; c_++)                    \
        if ((o)->callbacks[c_].hook)                                 \
            (o)->callbacks[c_].hook((o)->callbacks[c_].user, __VA_ARGS__)

static nncc_history *fit(nncc_model *m, const struct nncc_array *x, const struct nncc_array *y,
                         struct nncc_fit_opts o)
{
    struct nncc_shape target, vtarget;
    if (!model_check_ready(m))
        return NULL;
    if (!m->train)
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "fit: model \"%s\" must be compiled first", m->name);
    const struct {
        const char *name;
        int value;
    } counts[] = {{"batch_size", o.batch_size},
                  {"epochs", o.epochs},
                  {"initial_epoch", o.initial_epoch},
                  {"validation_freq", o.validation_freq},
                  {"n_callbacks", o.n_callbacks}};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        if (counts[i].value < 0)
            return NNCC_FAIL_NULL(NNCC_ERR_ARG, "fit: %s must not be negative, got %d",
                                  counts[i].name, counts[i].value);
    if (o.n_callbacks > 0 && !o.callbacks)
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "fit: n_callbacks is %d but callbacks is NULL",
                              o.n_callbacks);
    if (!(o.validation_split >= 0 && o.validation_split < 1))
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "fit: validation_split must be in [0, 1), got %g",
                              o.validation_split);
    if (o.verbose < 0 || o.verbose > 2)
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "fit: verbose must be 0, 1 or 2, got %d", o.verbose);
    if (check_data(m, x, y, "fit", &target))
        return NULL;
    int bs = o.batch_size ? o.batch_size : 32;
    int epochs = o.epochs ? o.epochs : 1, freq = o.validation_freq ? o.validation_freq : 1;
    int64_t n = x->shape.dim[0], n_train = n;
    const struct nncc_array *vx = NULL, *vy = NULL;
    int64_t v_from = 0, v_to = 0;
    if (o.validation_data) {
        vx = o.validation_data->x;
        vy = o.validation_data->y;
        if (check_data(m, vx, vy, "fit (validation_data)", &vtarget))
            return NULL;
        if (!ir_shape_eq(vtarget, target))
            return NNCC_FAIL_NULL(NNCC_ERR_SHAPE,
                                  "fit: validation targets are shaped differently from y");
        v_to = vx->shape.dim[0];
    } else if (o.validation_split > 0) {
        /* Keras: the last rows, as given, before shuffling. */
        n_train = (int64_t)floor((double)n * (1.0 - o.validation_split));
        if (n_train < 1 || n_train >= n)
            return NNCC_FAIL_NULL(NNCC_ERR_ARG,
                                  "fit: validation_split %g of %lld rows leaves an empty side",
                                  o.validation_split, (long long)n);
        vx = x;
        vy = y;
        v_from = n_train;
        v_to = n;
    }
    if (nncc_train_ensure_steps(m, target))
        return NULL;

    struct nncc_train_state *t = m->train;
    struct nncc_exec_entry *e = &t->exec->entry[0];
    int64_t xrow = nncc_array_size(x) / n, yrow = nncc_array_size(y) / n;
    nncc_history *hist = nncc_history_new();
    int64_t *idx = malloc(sizeof *idx * (size_t)n_train);
    float *xb = malloc(sizeof *xb * (size_t)(xrow * bs));
    float *yb = malloc(sizeof *yb * (size_t)(yrow * bs));
    float *ws = malloc(sizeof *ws * (nncc_exec_ws_floats(e, bs) + 1));
    if (!hist || !idx || !xb || !yb || !ws) {
        nncc_fail(NNCC_ERR_NOMEM, "fit: out of memory");
        goto fail;
    }
    struct nncc_rng rng;
    int steps = (int)((n_train + bs - 1) / bs);
    struct nncc_logs empty = {0}, logs = {0};
    float outs[NNCC_LOGS_MAX];
    float *outp[NNCC_LOGS_MAX];
    for (int k = 0; k < NNCC_LOGS_MAX; k++)
        outp[k] = &outs[k];
    /* Keras checks stop_training only after a batch and after an epoch. */
    t->stop = false;
    FOR_CALLBACKS(&o, on_train_begin, m, &empty);
    for (int epoch = o.initial_epoch; epoch < epochs; epoch++) {
        FOR_CALLBACKS(&o, on_epoch_begin, m, epoch, &empty);
        if (o.verbose && epochs > 1)
            printf("Epoch %d/%d\n", epoch + 1, epochs);
        struct nncc_progbar pb;
        if (o.verbose)
            nncc_progbar_init(&pb, stdout, steps, o.verbose);
        /* Each epoch's order depends only on (seed, epoch), so training
         * resumed at initial_epoch sees the batches it would have seen. */
        for (int64_t i = 0; i < n_train; i++)
            idx[i] = i;
        char key[32];
        snprintf(key, sizeof key, "shuffle/%d", epoch);
        nncc_rng_seed(&rng, nncc_rng_key(t->opts.seed, key));
        if (!o.no_shuffle) /* Fisher–Yates with the epoch's stream */
            for (int64_t i = n_train - 1; i > 0; i--) {
                int64_t j = (int64_t)(nncc_rng_next(&rng) % (uint64_t)(i + 1));
                int64_t tmp = idx[i];
                idx[i] = idx[j];
                idx[j] = tmp;
            }
        struct means mean = {0};
        for (int b = 0; b < steps; b++) {
            int64_t s = (int64_t)b * bs;
            int cnt = (int)(n_train - s < bs ? n_train - s : bs);
            FOR_CALLBACKS(&o, on_train_batch_begin, m, b, &empty);
            gather(x, idx + s, cnt, xb);
            gather(y, idx + s, cnt, yb);
            const float *in[2] = {xb, yb};
            double h[IR_HYPER_COUNT];
            nncc_train_hyper(t, h);
            e->step(cnt, e->params, in, outp, ws, h);
            t->iterations++;
            for (int k = 0; k <= t->n_metrics; k++)
                mean.sum[k] += (double)outs[k] * cnt;
            mean.count += cnt;
            logs = (struct nncc_logs){0};
            logs_from(t, &mean, "", &logs);
            FOR_CALLBACKS(&o, on_train_batch_end, m, b, &logs);
            if (o.verbose == 1 && b + 1 < steps)
                nncc_progbar_update(&pb, b + 1, &logs, false);
            if (t->stop)
                break;
        }
        if (vx && (epoch + 1) % freq == 0) {
            struct means vm;
            if (run_eval(m, vx, vy, v_from, v_to, bs, &vm, NULL))
                goto fail;
            logs_from(t, &vm, "val_", &logs);
        }
        FOR_CALLBACKS(&o, on_epoch_end, m, epoch, &logs);
        if (nncc_history_append(hist, epoch, &logs))
            goto fail;
        t->epochs_done = epoch + 1;
        if (o.verbose)
            nncc_progbar_update(&pb, steps, &logs, true);
        if (t->stop)
            break;
    }
    FOR_CALLBACKS(&o, on_train_end, m, &logs);
    free(idx);
    free(xb);
    free(yb);
    free(ws);
    return hist;
fail:
    nncc_history_free(hist);
    free(idx);
    free(xb);
    free(yb);
    free(ws);
    return NULL;
}

nncc_history *nncc_fit_(nncc_model *m, const struct nncc_array *x, const struct nncc_array *y,
                        struct nncc_fit_opts o)
{
    nncc_history *h = fit(m, x, y, o);
    /* Callbacks are fit's to free, whether it trained or refused to. */
    for (int c = 0; c < o.n_callbacks && o.callbacks; c++)
        if (o.callbacks[c].destroy)
            o.callbacks[c].destroy(o.callbacks[c].user);
    return h;
}

int nncc_model_epochs_done(const nncc_model *m)
{
    return m && m->train ? m->train->epochs_done : 0;
}
