/*
 * test_train.c — compile, fit, evaluate, callbacks' view of a fit, the
 * History and the progress bar (runtime/train/train.c, progbar.c, history.c),
 * against Keras 2.15's semantics as /work/shared/reference/keras-behaviour.md
 * sections 5, 7 and 8 state them, through the public API only.
 *
 * Most tests use tiny synthetic data, where the expectation can be computed
 * independently: nncc_evaluate() on chosen rows, called from callbacks at
 * the right moment (before a batch for its pre-update loss, after an epoch
 * for the validation loss), or sums done here in double from nncc_predict().
 * One test trains a real MLP on a slice of Fashion-MNIST (skipped when the
 * data set is not installed).  Determinism is checked in-process and across
 * OpenMP thread counts by re-executing this binary (/proc/self/exe) with
 * `--determinism-child` and OMP_NUM_THREADS set before any code runs.  The
 * progress output is captured by pointing fd 1 at a temporary file around a
 * call (so it is not a terminal: verbose=1 writes only each epoch's final
 * line, nncc's documented choice; Keras 2.15 itself redraws with \b and \r
 * into pipes too, its Progbar counting `"posix" in sys.modules` as a
 * dynamic display) and matched byte for byte, with the timings as
 * wildcards.  A failing assertion marked BUG is a deviation from Keras found
 * by this test.
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* mkdtemp, fdopen, dup */
#endif

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nncc.h"

#ifndef FASHION_DIR
#define FASHION_DIR "/usr/share/datasets/fashion-mnist"
#endif
#define CHILD_FLAG "--determinism-child"

extern char **environ;

/* ---- Small helpers ------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* |a - b| <= tol · max(|a|, |b|) (+ a tiny absolute slack for zeros). */
static void assert_close_(double a, double b, double tol, const char *as, const char *bs,
                          const char *file, int line)
{
    bool ok = fabs(a - b) <= tol * fmax(fabs(a), fabs(b)) + 1e-12;
    if (!ok) {
        print_error("%s = %.9g, %s = %.9g: not within a relative %g\n", as, a, bs, b, tol);
        _fail(file, line);
    }
}
#define assert_close(a, b, tol) assert_close_((a), (b), (tol), #a, #b, __FILE__, __LINE__)

/* The last error must have `status` and contain every listed word. */
static void expect_error_(enum nncc_status status, const char *const *words, const char *file,
                          int line)
{
    const char *msg = nncc_last_error();
    if (nncc_last_status() != status) {
        print_error("status %s, expected %s (message: \"%s\")\n",
                    nncc_status_name(nncc_last_status()), nncc_status_name(status), msg);
        _fail(file, line);
    }
    for (int i = 0; words[i]; i++)
        if (!strstr(msg, words[i])) {
            print_error("the message \"%s\" does not contain \"%s\"\n", msg, words[i]);
            _fail(file, line);
        }
}
#define EXPECT_ERROR(status, ...) \
    expect_error_((status), (const char *const[]){__VA_ARGS__, NULL}, __FILE__, __LINE__)

/* A deterministic stream of numbers in [-1, 1). */
static float lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static struct nncc_array *array2(int64_t rows, int64_t cols)
{
    struct nncc_array *a = nncc_array_new(NNCC_SHAPE(rows, cols));
    assert_non_null(a);
    return a;
}

static struct nncc_array *array1(int64_t rows)
{
    struct nncc_array *a = nncc_array_new(NNCC_SHAPE(rows));
    assert_non_null(a);
    return a;
}

/* Rows [from, to) of a, as a new array. */
static struct nncc_array *rows_of(const struct nncc_array *a, int64_t from, int64_t to)
{
    struct nncc_shape s = a->shape;
    int64_t row = nncc_array_size(a) / s.dim[0];
    s.dim[0] = to - from;
    struct nncc_array *r = nncc_array_new(s);
    assert_non_null(r);
    memcpy(r->data, a->data + from * row, sizeof(float) * (size_t)(row * (to - from)));
    return r;
}

/* Synthetic classification data: x (n, in) uniform in [-1, 1), labels the
 * argmax of a fixed random linear map (so they are learnable), one-hot y
 * (n, classes), and the class numbers in *labels (n,) when asked. */
static void make_data(uint64_t seed, int64_t n, int in, int classes, struct nncc_array **x,
                      struct nncc_array **y, struct nncc_array **labels)
{
    uint64_t s = seed;
    float w[64 * 16];
    assert_true(in <= 64 && classes <= 16);
    for (int i = 0; i < in * classes; i++)
        w[i] = lcg(&s);
    *x = array2(n, in);
    *y = array2(n, classes);
    if (labels)
        *labels = array1(n);
    for (int64_t r = 0; r < n; r++) {
        int best = 0;
        double best_v = -1e30;
        for (int i = 0; i < in; i++)
            (*x)->data[r * in + i] = lcg(&s);
        for (int c = 0; c < classes; c++) {
            double v = 0;
            for (int i = 0; i < in; i++)
                v += (double)(*x)->data[r * in + i] * w[i * classes + c];
            if (v > best_v)
                best_v = v, best = c;
        }
        (*y)->data[r * classes + best] = 1;
        if (labels)
            (*labels)->data[r] = (float)best;
    }
}

/* Input(in) → Dense(units, act): the small model most tests train. */
static nncc_model *dense_model(uint64_t seed, int in, int units, enum nncc_activation act)
{
    nncc_graph *g = nncc_graph_new();
    assert_non_null(g);
    nncc_graph_set_seed(g, seed);
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(in));
    nncc_tensor *y = nncc_dense(x, .units = units, .activation = act);
    nncc_model *m = y ? nncc_model_new(x, y) : NULL;
    if (!m) {
        print_error("%s\n", nncc_last_error());
        nncc_graph_free(g);
    }
    assert_non_null(m);
    return m;
}

/* The model's first layer with weights. */
static nncc_layer *first_weighted(const nncc_model *m)
{
    for (int i = 0; i < nncc_model_num_layers(m); i++)
        if (nncc_layer_num_weights(nncc_model_layer(m, i)) > 0)
            return nncc_model_layer(m, i);
    fail_msg("the model has no weights");
    return NULL;
}

/* Every weight of a model, concatenated. */
struct snap {
    float *v;
    int64_t n;
};

static struct snap snapshot(const nncc_model *m)
{
    struct snap s = {0};
    for (int pass = 0; pass < 2; pass++) {
        int64_t at = 0;
        for (int i = 0; i < nncc_model_num_layers(m); i++) {
            nncc_layer *l = nncc_model_layer(m, i);
            for (int k = 0; k < nncc_layer_num_weights(l); k++) {
                struct nncc_shape sh = nncc_layer_weight_shape(l, k);
                int64_t cnt = 1;
                for (int d = 0; d < sh.rank; d++)
                    cnt *= sh.dim[d];
                if (pass == 1)
                    assert_int_equal(nncc_get_weights(l, k, s.v + at, cnt), NNCC_OK);
                at += cnt;
            }
        }
        if (pass == 0) {
            s.n = at;
            s.v = malloc(sizeof(float) * (size_t)(at + 1));
            assert_non_null(s.v);
        }
    }
    return s;
}

static void restore(nncc_model *m, const struct snap *s)
{
    int64_t at = 0;
    for (int i = 0; i < nncc_model_num_layers(m); i++) {
        nncc_layer *l = nncc_model_layer(m, i);
        for (int k = 0; k < nncc_layer_num_weights(l); k++) {
            struct nncc_shape sh = nncc_layer_weight_shape(l, k);
            int64_t cnt = 1;
            for (int d = 0; d < sh.rank; d++)
                cnt *= sh.dim[d];
            assert_int_equal(nncc_set_weights(l, k, s->v + at, cnt), NNCC_OK);
            at += cnt;
        }
    }
    assert_int_equal(at, s->n);
}

static bool same_weights(const struct snap *a, const struct snap *b)
{
    return a->n == b->n && memcmp(a->v, b->v, sizeof(float) * (size_t)a->n) == 0;
}

/* Loss of rows [from, to) of (x, y) with the current weights. */
static double eval_rows(nncc_model *m, const struct nncc_array *x, const struct nncc_array *y,
                        int64_t from, int64_t to, const char *key)
{
    struct nncc_array *xs = rows_of(x, from, to), *ys = rows_of(y, from, to);
    struct nncc_logs l = nncc_evaluate(m, xs, ys, .batch_size = 1000);
    nncc_array_free(xs);
    nncc_array_free(ys);
    if (l.n == 0)
        fail_msg("evaluate failed: %s", nncc_last_error());
    return nncc_logs_get(&l, key);
}

/* ---- A recording callback ---------------------------------------------- */

#define REC_MAX 128

struct rec {
    /* what to do */
    const struct nncc_array *x, *y; /* for the evaluations below */
    int bs;                        /* batch size (no_shuffle runs) */
    bool eval_batches;             /* evaluate each batch's rows before and after it */
    int64_t val_from;              /* > 0: evaluate rows [val_from, n) at epoch end */
    int64_t train_rows;            /* > 0: evaluate rows [0, train_rows) at epoch begin */
    int stop_at_batch, stop_at_epoch; /* -1: never */
    int stop_at_epoch_begin;       /* -1: never */
    bool stop_at_train_begin;
    float lr_at_epoch[REC_MAX];    /* < 0: leave the learning rate */
    bool snap_weights;
    /* what happened */
    int n_train_begin, n_train_end, n_epoch_begin, n_epoch_end, n_batch_begin, n_batch_end;
    int epoch_begin[REC_MAX], epoch_end[REC_MAX], batch_begin[REC_MAX], batch_end[REC_MAX];
    struct nncc_logs batch_logs[REC_MAX], epoch_logs[REC_MAX], train_end_logs;
    double pre_loss[REC_MAX], pre_acc[REC_MAX], post_loss[REC_MAX];
    int batch_rows[REC_MAX];
    double epoch_begin_loss[REC_MAX], epoch_end_val_loss[REC_MAX], epoch_end_val_acc[REC_MAX];
    float lr_seen[REC_MAX];
    struct snap w_begin[REC_MAX], w_end[REC_MAX];
};

static void rec_init(struct rec *r)
{
    memset(r, 0, sizeof *r);
    r->stop_at_batch = r->stop_at_epoch = r->stop_at_epoch_begin = -1;
    for (int i = 0; i < REC_MAX; i++)
        r->lr_at_epoch[i] = -1;
}

static void rec_free(struct rec *r)
{
    for (int i = 0; i < REC_MAX; i++) {
        free(r->w_begin[i].v);
        free(r->w_end[i].v);
    }
}

static void on_train_begin(void *u, nncc_model *m, const struct nncc_logs *logs)
{
    struct rec *r = u;
    assert_int_equal(logs->n, 0);
    r->n_train_begin++;
    if (r->stop_at_train_begin)
        nncc_model_stop_training(m);
}

static void on_train_end(void *u, nncc_model *m, const struct nncc_logs *logs)
{
    (void)m;
    struct rec *r = u;
    r->train_end_logs = *logs;
    r->n_train_end++;
}

static void on_epoch_begin(void *u, nncc_model *m, int epoch, const struct nncc_logs *logs)
{
    struct rec *r = u;
    assert_int_equal(logs->n, 0);
    assert_true(r->n_epoch_begin < REC_MAX && epoch >= 0 && epoch < REC_MAX);
    r->epoch_begin[r->n_epoch_begin++] = epoch;
    if (r->lr_at_epoch[epoch] >= 0)
        assert_int_equal(nncc_set_learning_rate(m, r->lr_at_epoch[epoch]), NNCC_OK);
    if (r->train_rows > 0)
        r->epoch_begin_loss[epoch] = eval_rows(m, r->x, r->y, 0, r->train_rows, "loss");
    if (r->snap_weights)
        r->w_begin[epoch] = snapshot(m);
    if (epoch == r->stop_at_epoch_begin)
        nncc_model_stop_training(m);
}

static void on_epoch_end(void *u, nncc_model *m, int epoch, struct nncc_logs *logs)
{
    struct rec *r = u;
    assert_true(r->n_epoch_end < REC_MAX && epoch >= 0 && epoch < REC_MAX);
    r->epoch_end[r->n_epoch_end++] = epoch;
    r->epoch_logs[epoch] = *logs;
    r->lr_seen[epoch] = nncc_get_learning_rate(m);
    if (r->val_from > 0) {
        r->epoch_end_val_loss[epoch] =
            eval_rows(m, r->x, r->y, r->val_from, r->x->shape.dim[0], "loss");
        r->epoch_end_val_acc[epoch] =
            eval_rows(m, r->x, r->y, r->val_from, r->x->shape.dim[0], "accuracy");
    }
    if (r->snap_weights)
        r->w_end[epoch] = snapshot(m);
    if (epoch == r->stop_at_epoch)
        nncc_model_stop_training(m);
}

static void on_batch_begin(void *u, nncc_model *m, int batch, const struct nncc_logs *logs)
{
    struct rec *r = u;
    assert_int_equal(logs->n, 0);
    assert_true(r->n_batch_begin < REC_MAX);
    r->batch_begin[r->n_batch_begin] = batch;
    if (r->eval_batches) {
        int64_t n = r->x->shape.dim[0], from = (int64_t)batch * r->bs;
        int64_t to = from + r->bs < n ? from + r->bs : n;
        r->pre_loss[r->n_batch_begin] = eval_rows(m, r->x, r->y, from, to, "loss");
        r->pre_acc[r->n_batch_begin] = eval_rows(m, r->x, r->y, from, to, "accuracy");
        r->batch_rows[r->n_batch_begin] = (int)(to - from);
    }
    r->n_batch_begin++;
}

static void on_batch_end(void *u, nncc_model *m, int batch, const struct nncc_logs *logs)
{
    struct rec *r = u;
    assert_true(r->n_batch_end < REC_MAX);
    r->batch_end[r->n_batch_end] = batch;
    r->batch_logs[r->n_batch_end] = *logs;
    if (r->eval_batches) {
        int64_t n = r->x->shape.dim[0], from = (int64_t)batch * r->bs;
        int64_t to = from + r->bs < n ? from + r->bs : n;
        r->post_loss[r->n_batch_end] = eval_rows(m, r->x, r->y, from, to, "loss");
    }
    r->n_batch_end++;
    if (batch == r->stop_at_batch)
        nncc_model_stop_training(m);
}

static struct nncc_callback rec_callback(struct rec *r)
{
    return (struct nncc_callback){
        .user = r,
        .on_train_begin = on_train_begin,
        .on_train_end = on_train_end,
        .on_epoch_begin = on_epoch_begin,
        .on_epoch_end = on_epoch_end,
        .on_train_batch_begin = on_batch_begin,
        .on_train_batch_end = on_batch_end,
    };
}

static nncc_history *fit_ok(nncc_history *h)
{
    if (!h)
        fail_msg("fit failed: %s", nncc_last_error());
    return h;
}

static int setup(void **state)
{
    (void)state;
    nncc_clear_error();
    return 0;
}

/* nncc_predict takes an array and checks it against the model's input: a
 * float pointer and a row count let a short buffer be read past its end
 * (a segfault at 100,000 rows, a silent over-read at one). */
static void test_predict_checks_shape(void **state)
{
    (void)state;
    nncc_model *m = dense_model(3, 4, 2, NNCC_LINEAR);
    struct nncc_array *wide = array2(3, 5), *flat = nncc_array_new(NNCC_SHAPE(3));
    struct nncc_array *deep = nncc_array_new(NNCC_SHAPE(3, 4, 1)), *good = array2(3, 4);
    for (int i = 0; i < 12; i++)
        good->data[i] = (float)i / 4;
    assert_null(nncc_predict(m, wide));
    EXPECT_ERROR(NNCC_ERR_SHAPE, "predict: model \"model\": x of shape (3, 5) does not match the "
                                 "input \"input_1\" (None, 4)");
    assert_null(nncc_predict(m, flat));
    EXPECT_ERROR(NNCC_ERR_SHAPE, "x of shape (3,) does not match", "(None, 4)");
    assert_null(nncc_predict(m, deep));
    EXPECT_ERROR(NNCC_ERR_SHAPE, "x of shape (3, 4, 1) does not match", "(None, 4)");
    assert_null(nncc_predict(m, NULL));
    EXPECT_ERROR(NNCC_ERR_ARG, "predict: model \"model\": input 0 (\"input_1\") is NULL");
    /* The right shape predicts as the raw-row form does. */
    struct nncc_array *p = nncc_predict(m, good), *q = nncc_predict_rows(m, good->data, 3);
    assert_non_null(p);
    assert_non_null(q);
    assert_int_equal(p->shape.rank, 2);
    assert_int_equal(p->shape.dim[0], 3);
    assert_int_equal(p->shape.dim[1], 2);
    assert_memory_equal(p->data, q->data, sizeof(float) * 6);
    nncc_array_free(p);
    nncc_array_free(q);
    nncc_array_free(wide);
    nncc_array_free(flat);
    nncc_array_free(deep);
    nncc_array_free(good);
    nncc_model_free(m);
}

/* nncc_predict_n checks every input and that all have the same rows. */
static void test_predict_n_checks_each_input(void **state)
{
    (void)state;
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *a = nncc_input(g, NNCC_SHAPE(2), .name = "a");
    nncc_tensor *b = nncc_input(g, NNCC_SHAPE(3), .name = "b");
    nncc_tensor *c = nncc_concatenate(NNCC_TENSORS(a, b));
    nncc_model *m = nncc_model_new_n(NNCC_TENSORS(a, b), NNCC_TENSORS(c), .name = "two");
    assert_non_null(m);
    struct nncc_array *xa = array2(4, 2), *xb = array2(4, 3), *xb3 = array2(3, 3);
    struct nncc_array *out[1] = {NULL};
    for (int i = 0; i < 8; i++)
        xa->data[i] = (float)(i + 1);
    for (int i = 0; i < 12; i++)
        xb->data[i] = (float)(-i - 1);
    assert_int_equal(nncc_predict_n(m, ((const struct nncc_array *[]){xa, xa}), out),
                     NNCC_ERR_SHAPE);
    EXPECT_ERROR(NNCC_ERR_SHAPE,
                 "predict: model \"two\": x of shape (4, 2) does not match the input \"b\" (None, 3)");
    assert_int_equal(nncc_predict_n(m, ((const struct nncc_array *[]){xa, xb3}), out),
                     NNCC_ERR_SHAPE);
    EXPECT_ERROR(NNCC_ERR_SHAPE, "predict: model \"two\": input \"b\" has 3 rows but \"a\" has 4");
    assert_null(out[0]);
    assert_null(nncc_predict(m, xa));
    EXPECT_ERROR(NNCC_ERR_ARG, "model \"two\" has 2 inputs and 1 outputs; use nncc_predict_n()");
    assert_int_equal(nncc_predict_n(m, ((const struct nncc_array *[]){xa, xb}), out), NNCC_OK);
    assert_int_equal(out[0]->shape.dim[0], 4);
    assert_int_equal(out[0]->shape.dim[1], 5);
    assert_memory_equal(out[0]->data, xa->data, sizeof(float) * 2); /* row 0: a then b */
    assert_memory_equal(out[0]->data + 2, xb->data, sizeof(float) * 3);
    nncc_array_free(out[0]);
    nncc_array_free(xa);
    nncc_array_free(xb);
    nncc_array_free(xb3);
    nncc_model_free(m);
}

/* A model with several inputs was compiled, then fit and evaluate crashed:
 * the step expects one array per input plus the target but is called with
 * {x, y}.  Several outputs were already refused; both say what is not
 * supported. */
static void test_compile_refuses_several_inputs_or_outputs(void **state)
{
    (void)state;
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *a = nncc_input(g, NNCC_SHAPE(2), .name = "a");
    nncc_tensor *b = nncc_input(g, NNCC_SHAPE(3), .name = "b");
    nncc_tensor *c = nncc_dense(nncc_concatenate(NNCC_TENSORS(a, b)), .units = 1);
    nncc_model *m = nncc_model_new_n(NNCC_TENSORS(a, b), NNCC_TENSORS(c), .name = "m");
    assert_non_null(m);
    assert_int_equal(nncc_compile(m, .loss = NNCC_MEAN_SQUARED_ERROR), NNCC_ERR_ARG);
    EXPECT_ERROR(NNCC_ERR_ARG,
                 "compile: model \"m\" has 2 inputs; fit and evaluate take one input array today");
    struct nncc_array *x = array2(4, 2), *y = array2(4, 1);
    assert_null(nncc_fit(m, x, y));
    EXPECT_ERROR(NNCC_ERR_ARG, "fit: model \"m\" must be compiled first");
    struct nncc_logs logs = nncc_evaluate(m, x, y);
    assert_int_equal(logs.n, 0);
    EXPECT_ERROR(NNCC_ERR_ARG, "evaluate: model \"m\" must be compiled first");
    nncc_model_free(m);

    g = nncc_graph_new();
    nncc_tensor *in = nncc_input(g, NNCC_SHAPE(2));
    nncc_tensor *o1 = nncc_dense(in, .units = 1), *o2 = nncc_dense(in, .units = 2);
    m = nncc_model_new_n(NNCC_TENSORS(in), NNCC_TENSORS(o1, o2), .name = "two_out");
    assert_non_null(m);
    assert_int_equal(nncc_compile(m, .loss = NNCC_MEAN_SQUARED_ERROR), NNCC_ERR_ARG);
    EXPECT_ERROR(NNCC_ERR_ARG,
                 "compile: model \"two_out\" has 2 outputs; training supports one output");
    assert_null(nncc_fit(m, x, y));
    EXPECT_ERROR(NNCC_ERR_ARG, "must be compiled first");
    nncc_model_free(m);
    nncc_array_free(x);
    nncc_array_free(y);
}

/* ---- 1. Real training on Fashion-MNIST ------------------------------------ */

static void test_fashion_mnist_mlp(void **state)
{
    (void)state;
    const char *tri = FASHION_DIR "/train-images-idx3-ubyte.gz",
               *trl = FASHION_DIR "/train-labels-idx1-ubyte.gz",
               *tei = FASHION_DIR "/t10k-images-idx3-ubyte.gz",
               *tel = FASHION_DIR "/t10k-labels-idx1-ubyte.gz";
    if (access(tri, R_OK) || access(trl, R_OK) || access(tei, R_OK) || access(tel, R_OK)) {
        print_message("Fashion-MNIST is not installed in " FASHION_DIR ": skipped\n");
        skip();
    }
    double t0 = now_s();
    struct nncc_data train = nncc_load_idx(tri, trl, .one_hot = 10, .scale = 1 / 255.f,
                                           .limit = 3000);
    struct nncc_data test = nncc_load_idx(tei, tel, .one_hot = 10, .scale = 1 / 255.f,
                                          .limit = 1000);
    if (!train.x || !test.x)
        fail_msg("loading Fashion-MNIST: %s", nncc_last_error());
    assert_int_equal(train.x->shape.dim[0], 3000);
    assert_int_equal(test.x->shape.dim[0], 1000);

    nncc_graph *g = nncc_graph_new();
    nncc_graph_set_seed(g, 7);
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(28, 28, 1));
    nncc_tensor *h = nncc_flatten(x);
    h = nncc_dense(h, .units = 64, .activation = NNCC_RELU);
    nncc_tensor *y = nncc_dense(h, .units = 10, .activation = NNCC_SOFTMAX);
    nncc_model *m = nncc_model_new(x, y);
    assert_non_null(m);
    assert_int_equal(nncc_compile(m, .optimizer = nncc_adam(), .seed = 7,
                                  .loss = NNCC_CATEGORICAL_CROSSENTROPY,
                                  .metrics = NNCC_ACCURACY),
                     NNCC_OK);
    struct nncc_logs before = nncc_evaluate(m, test.x, test.y, .batch_size = 64);
    assert_int_equal(before.n, 2);

    struct rec r;
    rec_init(&r);
    struct nncc_callback cb = rec_callback(&r);
    double t1 = now_s();
    nncc_history *hist = fit_ok(nncc_fit(m, train.x, train.y, .batch_size = 64, .epochs = 2,
                                         .callbacks = &cb, .n_callbacks = 1));
    double t2 = now_s();
    struct nncc_logs after = nncc_evaluate(m, test.x, test.y, .batch_size = 64);
    double t3 = now_s();
    assert_int_equal(after.n, 2);

    /* ⌈3000/64⌉ = 47 steps an epoch, the last one of 56 rows. */
    assert_int_equal(r.n_batch_end, 2 * 47);
    assert_int_equal(r.batch_end[46], 46);
    assert_int_equal(nncc_history_num_epochs(hist), 2);
    assert_int_equal(nncc_history_num_keys(hist), 2);
    assert_string_equal(nncc_history_key(hist, 0), "loss");
    assert_string_equal(nncc_history_key(hist, 1), "accuracy");
    double l0 = nncc_history_get(hist, "loss", 0), l1 = nncc_history_get(hist, "loss", 1);
    double a0 = nncc_history_get(hist, "accuracy", 0), a1 = nncc_history_get(hist, "accuracy", 1);
    double acc = nncc_logs_get(&after, "accuracy");
    print_message("Fashion-MNIST MLP, 3000 images, 2 epochs: loss %.4f → %.4f, accuracy "
                  "%.4f → %.4f; test (1000 images) accuracy %.4f (before training %.4f), loss "
                  "%.4f; fit %.2fs, evaluate %.2fs, total %.2fs\n",
                  l0, l1, a0, a1, acc, nncc_logs_get(&before, "accuracy"),
                  nncc_logs_get(&after, "loss"), t2 - t1, t3 - t2, t3 - t0);
    assert_true(l1 < l0);
    assert_true(a1 > a0);
    assert_true(acc > 0.6); /* chance is 0.1 */
    assert_true(nncc_logs_get(&after, "loss") < nncc_logs_get(&before, "loss"));

    nncc_history_free(hist);
    rec_free(&r);
    nncc_model_free(m);
    nncc_data_free(&train);
    nncc_data_free(&test);
}

/* ---- 2. Determinism -------------------------------------------------------- */

#define DET_EPOCHS 3
#define DET_KEYS 4
static const char *const det_keys[DET_KEYS] = {"loss", "accuracy", "val_loss", "val_accuracy"};

/* Input(64) → Dense 128 relu → Dropout 0.25 → Dense 10 softmax, Adam, on
 * 600 synthetic rows (the first matmul is large enough for the generated
 * code's OpenMP loops), shuffled, with a validation split: everything the
 * seed drives.  Returns 0 on success; fills out[epoch][key] and the weights. */
static int det_run(uint64_t seed, double out[DET_EPOCHS][DET_KEYS], struct snap *weights)
{
    struct nncc_array *x, *y;
    make_data(99, 600, 64, 10, &x, &y, NULL);
    nncc_graph *g = nncc_graph_new();
    nncc_graph_set_seed(g, seed);
    nncc_tensor *in = nncc_input(g, NNCC_SHAPE(64));
    nncc_tensor *h = nncc_dense(in, .units = 128, .activation = NNCC_RELU);
    h = nncc_dropout(h, .rate = 0.25f);
    nncc_tensor *o = nncc_dense(h, .units = 10, .activation = NNCC_SOFTMAX);
    nncc_model *m = o ? nncc_model_new(in, o) : NULL;
    int rc = 1;
    if (m && nncc_compile(m, .optimizer = nncc_adam(), .seed = seed,
                          .loss = NNCC_CATEGORICAL_CROSSENTROPY, .metrics = NNCC_ACCURACY) == 0) {
        nncc_history *hist = nncc_fit(m, x, y, .batch_size = 32, .epochs = DET_EPOCHS,
                                      .validation_split = 0.2);
        if (hist && nncc_history_num_epochs(hist) == DET_EPOCHS) {
            for (int e = 0; e < DET_EPOCHS; e++)
                for (int k = 0; k < DET_KEYS; k++)
                    out[e][k] = nncc_history_get(hist, det_keys[k], e);
            if (weights)
                *weights = snapshot(m);
            rc = 0;
        }
        nncc_history_free(hist);
    }
    if (rc)
        fprintf(stderr, "det_run: %s\n", nncc_last_error());
    if (m)
        nncc_model_free(m);
    else
        nncc_graph_free(g);
    nncc_array_free(x);
    nncc_array_free(y);
    return rc;
}

/* The child: trains, prints the history as hex floats and the number of
 * threads the process has, and exits. */
static int determinism_child(void)
{
    double out[DET_EPOCHS][DET_KEYS];
    if (det_run(1234, out, NULL))
        return 1;
    for (int e = 0; e < DET_EPOCHS; e++)
        for (int k = 0; k < DET_KEYS; k++)
            printf("%a%c", out[e][k], k + 1 < DET_KEYS ? ' ' : '\n');
    int threads = -1;
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "Threads:", 8) == 0)
            threads = atoi(line + 8);
    if (f)
        fclose(f);
    printf("threads %d\n", threads);
    return fflush(stdout) != 0;
}

/* Runs this binary as a determinism child with OMP_NUM_THREADS=threads. */
static void run_child(int threads, double out[DET_EPOCHS][DET_KEYS], int *child_threads)
{
    /* The environment for execve(), built before fork(). */
    size_t n = 0;
    while (environ[n])
        n++;
    char **envp = calloc(n + 2, sizeof *envp);
    assert_non_null(envp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "OMP_NUM_THREADS=", 16) != 0)
            envp[k++] = environ[i];
    char omp[64];
    snprintf(omp, sizeof omp, "OMP_NUM_THREADS=%d", threads);
    envp[k++] = omp;
    char *argv[] = {"test_train", CHILD_FLAG, NULL};
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Only async-signal-safe calls until execve. */
        close(fd[0]);
        if (dup2(fd[1], 1) < 0)
            _exit(126);
        execve("/proc/self/exe", argv, envp);
        _exit(127);
    }
    free(envp);
    close(fd[1]);
    char buf[8192];
    size_t len = 0;
    ssize_t got;
    while ((got = read(fd[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)got;
    buf[len] = '\0';
    close(fd[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("the OMP_NUM_THREADS=%d child failed (status 0x%x); its output: %s", threads,
                 status, buf);
    char *p = buf;
    for (int e = 0; e < DET_EPOCHS; e++)
        for (int j = 0; j < DET_KEYS; j++) {
            char *end;
            out[e][j] = strtod(p, &end);
            if (end == p)
                fail_msg("cannot parse the child's output: %s", buf);
            p = end;
        }
    assert_int_equal(sscanf(p, " threads %d", child_threads), 1);
}

static void test_determinism_in_process(void **state)
{
    (void)state;
    double a[DET_EPOCHS][DET_KEYS], b[DET_EPOCHS][DET_KEYS], c[DET_EPOCHS][DET_KEYS];
    struct snap wa, wb;
    assert_int_equal(det_run(1234, a, &wa), 0);
    assert_int_equal(det_run(1234, b, &wb), 0);
    for (int e = 0; e < DET_EPOCHS; e++)
        for (int k = 0; k < DET_KEYS; k++) {
            assert_false(isnan(a[e][k]));
            if (memcmp(&a[e][k], &b[e][k], sizeof(double)) != 0)
                fail_msg("epoch %d %s: %a then %a with the same seed", e, det_keys[k], a[e][k],
                         b[e][k]);
        }
    assert_true(same_weights(&wa, &wb));
    /* The seed matters: another one gives another run. */
    assert_int_equal(det_run(4321, c, NULL), 0);
    assert_true(a[0][0] != c[0][0]);
    assert_true(a[0][0] > a[DET_EPOCHS - 1][0]); /* and it learns */
    free(wa.v);
    free(wb.v);
}

static void test_determinism_threads(void **state)
{
    (void)state;
    double one[DET_EPOCHS][DET_KEYS], two[DET_EPOCHS][DET_KEYS], here[DET_EPOCHS][DET_KEYS];
    int t1 = 0, t2 = 0;
    run_child(1, one, &t1);
    run_child(2, two, &t2);
    assert_int_equal(det_run(1234, here, NULL), 0);
    bool identical = true;
    double worst = 0;
    for (int e = 0; e < DET_EPOCHS; e++)
        for (int k = 0; k < DET_KEYS; k++) {
            /* Reduction order may differ between thread counts: losses to
             * 1e-5 relative; accuracies (steps of 1/480 and 1/120) to one
             * sample, since a tiny difference may flip one prediction. */
            if (k % 2 == 0) {
                assert_close(one[e][k], two[e][k], 1e-5);
                assert_close(one[e][k], here[e][k], 1e-5);
            } else {
                assert_true(fabs(one[e][k] - two[e][k]) <= 1.0 / 120 + 1e-9);
                assert_true(fabs(one[e][k] - here[e][k]) <= 1.0 / 120 + 1e-9);
            }
            identical = identical && one[e][k] == two[e][k] && one[e][k] == here[e][k];
            worst = fmax(worst, fabs(one[e][k] - two[e][k]) / fmax(fabs(one[e][k]), 1e-30));
        }
    print_message("determinism: OMP_NUM_THREADS=1 child ran %d thread(s), =2 ran %d; histories "
                  "%s (largest relative difference %.3g)\n",
                  t1, t2, identical ? "bit-identical" : "within 1e-5", worst);
    assert_int_equal(t1, 1);
}

/* ---- 3. Keras semantics on tiny data ------------------------------------- */

/* validation_split = 0.25 on 8 rows: rows 6 and 7 validate, taken before
 * shuffling; training sees rows 0..5 only. */
static void test_validation_split_last_rows(void **state)
{
    (void)state;
    struct nncc_array *x, *y;
    make_data(1, 8, 4, 3, &x, &y, NULL);
    nncc_model *m = dense_model(3, 4, 3, NNCC_SOFTMAX);
    assert_int_equal(nncc_compile(m, .optimizer = nncc_sgd(.learning_rate = 0.5f), .seed = 5,
                                  .loss = NNCC_CATEGORICAL_CROSSENTROPY,
                                  .metrics = NNCC_ACCURACY),
                     NNCC_OK);
    struct rec r;
    rec_init(&r);
    r.x = x, r.y = y, r.val_from = 6, r.train_rows = 6;
    struct nncc_callback cb = rec_callback(&r);
    /* batch 8 > 6 training rows: one batch per epoch, so the epoch loss is
     * the pre-update loss of rows 0..5 whatever the order. Shuffling on. */
    nncc_history *h = fit_ok(nncc_fit(m, x, y, .batch_size = 8, .epochs = 3,
                                      .validation_split = 0.25, .callbacks = &cb,
                                      .n_callbacks = 1));
    assert_int_equal(nncc_history_num_epochs(h), 3);
    assert_int_equal(r.n_batch_end, 3);
    for (int e = 0; e < 3; e++) {
        /* One batch of the 6 training rows, not 8. */
        assert_close(nncc_history_get(h, "loss", e), r.epoch_begin_loss[e], 1e-5);
        /* val_* = evaluate(rows 6, 7) with the epoch's final weights. */
        assert_close(nncc_history_get(h, "val_loss", e), r.epoch_end_val_loss[e], 1e-6);
        assert_close(nncc_history_get(h, "val_accuracy", e), r.epoch_end_val_acc[e], 1e-6);
    }
    /* After the fit, too. */
    assert_close(nncc_history_get(h, "val_loss", 2), eval_rows(m, x, y, 6, 8, "loss"), 1e-6);
    /* The choice of rows matters for these data (else the test proves nothing). */
    assert_true(fabs(eval_rows(m, x, y, 0, 2, "loss") - eval_rows(m, x, y, 6, 8, "loss")) > 1e-3);
    nncc_history_free(h);

    /* validation_data overrides validation_split: training uses all 8 rows
     * (one batch: its loss is the pre-update loss of rows 0..7) and the
     * val_* values are those of the given data. */
    struct nncc_array *vx, *vy;
    make_data(21, 3, 4, 3, &vx, &vy, NULL);
    struct nncc_data val = {vx, vy};
    double all_rows = eval_rows(m, x, y, 0, 8, "loss");
    h = fit_ok(nncc_fit(m, x, y, .batch_size = 8, .validation_split = 0.25,
                        .validation_data = &val));
    assert_close(nncc_history_get(h, "loss", 0), all_rows, 1e-5);
    assert_close(nncc_history_get(h, "val_loss", 0), eval_rows(m, vx, vy, 0, 3, "loss"), 1e-6);
    nncc_history_free(h);
    nncc_array_free(vx);
    nncc_array_free(vy);
    rec_free(&r);
    nncc_model_free(m);
    nncc_array_free(x);
    nncc_array_free(y);
}

/* no_shuffle, batch 3 on 7 rows: batches of 3, 3, 1; the batch logs are
 * batch-size-weighted running means of each batch's pre-update values. */
static void test_batches_running_means(void **state)
{
    (void)state;
    struct nncc_array *x, *y;
    make_data(2, 7, 4, 3, &x, &y, NULL);
    nncc_model *m = dense_model(3, 4, 3, NNCC_SOFTMAX);
    assert_int_equal(nncc_compile(m, .optimizer = nncc_sgd(.learning_rate = 0.5f),
                                  .loss = NNCC_CATEGORICAL_CROSSENTROPY,
                                  .metrics = NNCC_ACCURACY),
                     NNCC_OK);
    struct rec r;
    rec_init(&r);
    r.x = x, r.y = y, r.bs = 3, r.eval_batches = true;
    struct nncc_callback cb = rec_callback(&r);
    nncc_history *h = fit_ok(nncc_fit(m, x, y, .batch_size = 3, .no_shuffle = true,
                                      .callbacks = &cb, .n_callbacks = 1));
    assert_int_equal(r.n_train_begin, 1);
    assert_int_equal(r.n_train_end, 1);
    assert_int_equal(r.n_epoch_begin, 1);
    assert_int_equal(r.n_epoch_end, 1);
    assert_int_equal(r.n_batch_begin, 3);
    assert_int_equal(r.n_batch_end, 3);
    int sizes[3] = {3, 3, 1};
    double sum_l = 0, sum_a = 0;
    int count = 0;
    for (int b = 0; b < 3; b++) {
        assert_int_equal(r.batch_begin[b], b);
        assert_int_equal(r.batch_end[b], b);
        assert_int_equal(r.batch_rows[b], sizes[b]);
        /* The learning rate is large enough that pre- and post-update
         * losses differ: the check below tells them apart. */
        assert_true(fabs(r.pre_loss[b] - r.post_loss[b]) > 1e-3);
        sum_l += r.pre_loss[b] * sizes[b];
        sum_a += r.pre_acc[b] * sizes[b];
        count += sizes[b];
        assert_int_equal(r.batch_logs[b].n, 2);
        assert_string_equal(r.batch_logs[b].names[0], "loss");
        assert_string_equal(r.batch_logs[b].names[1], "accuracy");
        assert_close(nncc_logs_get(&r.batch_logs[b], "loss"), sum_l / count, 1e-5);
        assert_close(nncc_logs_get(&r.batch_logs[b], "accuracy"), sum_a / count, 1e-6);
    }
    /* The epoch's values are the last batch's running means, exactly. */
    assert_true(nncc_history_get(h, "loss", 0) == nncc_logs_get(&r.batch_logs[2], "loss"));
    assert_true(nncc_history_get(h, "accuracy", 0) ==
                nncc_logs_get(&r.batch_logs[2], "accuracy"));
    assert_close(nncc_history_get(h, "loss", 0), sum_l / 7, 1e-5);
    /* on_train_end gets the last epoch's logs. */
    assert_true(nncc_logs_get(&r.train_end_logs, "loss") == nncc_history_get(h, "loss", 0));
    nncc_history_free(h);
    rec_free(&r);
    nncc_model_free(m);
    nncc_array_free(x);
    nncc_array_free(y);
}

/* stop_training in on_train_batch_end of batch 1: the epoch ends after
 * batch 1, on_epoch_end still runs, and no further epoch starts. */
static void test_stop_training(void **state)
{
    (void)state;
    struct nncc_array *x, *y;
    make_data(2, 7, 4, 3, &x, &y, NULL);
    nncc_model *m = dense_model(3, 4, 3, NNCC_SOFTMAX);
    assert_int_equal(nncc_compile(m, .optimizer = nncc_sgd(.learning_rate = 0.5f),
                                  .loss = NNCC_CATEGORICAL_CROSSENTROPY,
                                  .metrics = NNCC_ACCURACY),
                     NNCC_OK);
    struct rec r;
    rec_init(&r);
    r.stop_at_batch = 1;
    struct nncc_callback cb = rec_callback(&r);
    nncc_history *h = fit_ok(nncc_fit(m, x, y, .batch_size = 3, .epochs = 3, .no_shuffle = true,
                                      .callbacks = &cb, .n_callbacks = 1));
    assert_int_equal(r.n_batch_end, 2);
    assert_int_equal(r.batch_end[1], 1);
    assert_int_equal(r.n_epoch_begin, 1);
    assert_int_equal(r.n_epoch_end, 1);
    assert_int_equal(r.epoch_end[0], 0);
    assert_int_equal(r.n_train_end, 1);
    assert_int_equal(nncc_history_num_epochs(h), 1);
    /* The cut-short epoch's values are the means over batches 0 and 1. */
    assert_true(nncc_history_get(h, "loss", 0) == nncc_logs_get(&r.batch_logs[1], "loss"));
    nncc_history_free(h);

    /* Stopping from on_epoch_end ends the fit after that epoch; a new fit
     * starts afresh (stop_training is reset). */
    rec_init(&r);
    r.stop_at_epoch = 0;
    h = fit_ok(nncc_fit(m, x, y, .batch_size = 3, .epochs = 3, .callbacks = &cb,
                        .n_callbacks = 1));
    assert_int_equal(r.n_batch_end, 3);
    assert_int_equal(r.n_epoch_end, 1);
    assert_int_equal(nncc_history_num_epochs(h), 1);
    nncc_history_free(h);
    rec_init(&r);
    h = fit_ok(nncc_fit(m, x, y, .batch_size = 3, .epochs = 2, .callbacks = &cb,
                        .n_callbacks = 1));
    assert_int_equal(nncc_history_num_epochs(h), 2);
    assert_int_equal(r.n_batch_end, 6);
    nncc_history_free(h);
    rec_free(&r);
    nncc_model_free(m);
    nncc_array_free(x);
    nncc_array_free(y);
}

/* Keras checks stop_training only after a batch and after an epoch
 * (training.py fit(): `if self.stop_training: break` after
 * on_train_batch_end and after on_epoch_end; fit() resets it before
 * on_train_begin).  So a stop requested in on_epoch_begin still runs that
 * epoch's first batch and its on_epoch_end, and one requested in
 * on_train_begin runs one batch of the first epoch. */
static void test_stop_training_before_batches(void **state)
{
    (void)state;
    struct nncc_array *x, *y;
    make_data(2, 7, 4, 3, &x, &y, NULL);
    nncc_model *m = dense_model(3, 4, 3, NNCC_SOFTMAX);
    assert_int_equal(nncc_compile(m, .optimizer = nncc_sgd(.learning_rate = 0.5f),
                                  .loss = NNCC_CATEGORICAL_CROSSENTROPY),
                     NNCC_OK);
    struct rec r;
    rec_init(&r);
    r.stop_at_epoch_begin = 1;
    struct nncc_callback cb = rec_callback(&r);
    nncc_history *h = fit_ok(nncc_fit(m, x, y, .batch_size = 3, .epochs = 3, .callbacks = &cb,
                                      .n_callbacks = 1));
    int got_rows = nncc_history_num_epochs(h), got_end = r.n_epoch_end, got_batches = r.n_batch_end;
    nncc_history_free(h);
    rec_init(&r);
    r.stop_at_train_begin = true;
    h = fit_ok(nncc_fit(m, x, y, .batch_size = 3, .epochs = 3, .callbacks = &cb,
                        .n_callbacks = 1));
    int got_rows2 = nncc_history_num_epochs(h), got_end2 = r.n_epoch_end,
        got_batches2 = r.n_batch_end;
    nncc_history_free(h);
    rec_free(&r);
    nncc_model_free(m);
    nncc_array_free(x);
    nncc_array_free(y);
    /* Regression test for a fixed bug: runtime/train/train.c tested t->stop before each batch and each epoch,
     * so these fits end without that batch, on_epoch_end or History row. */
    if (got_rows != 2 || got_end != 2 || got_batches != 4 || got_rows2 != 1 || got_end2 != 1 ||
        got_batches2 != 1)
        fail_msg("stop_training in on_epoch_begin(1) of 3 epochs of 3 batches: %d History rows, "
                 "%d on_epoch_end, %d batches (Keras: 2, 2, 4); in on_train_begin: %d rows, %d "
                 "on_epoch_end, %d batches (Keras: 1, 1, 1)",
                 got_rows, got_end, got_batches, got_rows2, got_end2, got_batches2);
}

/* initial_epoch = 2, epochs = 4: epochs 2 and 3 run; validation_freq = 2
 * validates after epochs 1 and 3 only ((epoch + 1) % 2 == 0). */
static void test_initial_epoch_and_validation_freq(void **state)
{
    (void)state;
    struct nncc_array *x, *y;
    make_data(1, 8, 4, 3, &x, &y, NULL);
    nncc_model *m = dense_model(3, 4, 3, NNCC_SOFTMAX);
    assert_int_equal(nncc_compile(m, .optimizer = nncc_sgd(.learning_rate = 0.5f),
                                  .loss = NNCC_CATEGORICAL_CROSSENTROPY,
                                  .metrics = NNCC_ACCURACY),
                     NNCC_OK);
    struct rec r;
    rec_init(&r);
    struct nncc_callback cb = rec_callback(&r);
    nncc_history *h = fit_ok(nncc_fit(m, x, y, .batch_size = 4, .epochs = 4, .initial_epoch = 2,
                                      .callbacks = &cb, .n_callbacks = 1));
    assert_int_equal(nncc_history_num_epochs(h), 2);
    assert_int_equal(nncc_history_epoch(h, 0), 2);
    assert_int_equal(nncc_history_epoch(h, 1), 3);
    assert_int_equal(r.n_epoch_begin, 2);
    assert_int_equal(r.epoch_begin[0], 2);
    assert_int_equal(r.epoch_begin[1], 3);
    assert_int_equal(r.epoch_end[0], 2);
    assert_int_equal(r.epoch_end[1], 3);
    assert_int_equal(r.n_batch_end, 4);
    nncc_history_free(h);

    /* initial_epoch == epochs: nothing to run, an empty History. */
    rec_init(&r);
    h = fit_ok(nncc_fit(m, x, y, .epochs = 4, .initial_epoch = 4, .callbacks = &cb,
                        .n_callbacks = 1));
    assert_int_equal(nncc_history_num_epochs(h), 0);
    assert_int_equal(r.n_epoch_begin, 0);
    assert_int_equal(r.n_train_begin, 1);
    assert_int_equal(r.n_train_end, 1);
    nncc_history_free(h);

    rec_init(&r);
    h = fit_ok(nncc_fit(m, x, y, .batch_size = 4, .epochs = 4, .validation_split = 0.25,
                        .validation_freq = 2, .callbacks = &cb, .n_callbacks = 1));
    assert_int_equal(nncc_history_num_epochs(h), 4);
    assert_int_equal(nncc_history_num_keys(h), 4);
    const char *keys[] = {"loss", "accuracy", "val_loss", "val_accuracy"};
    for (int k = 0; k < 4; k++)
        assert_string_equal(nncc_history_key(h, k), keys[k]);
    for (int e = 0; e < 4; e++) {
        bool validated = (e + 1) % 2 == 0;
        assert_false(isnan(nncc_history_get(h, "loss", e)));
        assert_int_equal(isnan(nncc_history_get(h, "val_loss", e)), !validated);
        assert_int_equal(isnan(nncc_history_get(h, "val_accuracy", e)), !validated);
        assert_int_equal(r.epoch_logs[e].n, validated ? 4 : 2);
    }
    /* 6 training rows in batches of 4: 2 steps an epoch. */
    assert_int_equal(r.n_batch_end, 8);
    nncc_history_free(h);
    rec_free(&r);
    nncc_model_free(m);
    nncc_array_free(x);
    nncc_array_free(y);
}

/* nncc_set_learning_rate from on_epoch_begin: with 0 the weights do not
 * move during that epoch; the next epoch's rate applies again. */
static void check_lr_schedule(nncc_model *m, const struct nncc_array *x,
                              const struct nncc_array *y)
{
    struct rec r;
    rec_init(&r);
    r.snap_weights = true;
    r.lr_at_epoch[1] = 0;
    r.lr_at_epoch[2] = 0.05f;
    struct nncc_callback cb = rec_callback(&r);
    nncc_history *h = fit_ok(nncc_fit(m, x, y, .batch_size = 4, .epochs = 3, .callbacks = &cb,
                                      .n_callbacks = 1));
    assert_int_equal(nncc_history_num_epochs(h), 3);
    assert_false(same_weights(&r.w_begin[0], &r.w_end[0]));
    assert_true(same_weights(&r.w_begin[1], &r.w_end[1]));
    assert_false(same_weights(&r.w_begin[2], &r.w_end[2]));
    assert_true(r.lr_seen[1] == 0.0f);
    assert_true(r.lr_seen[2] == 0.05f);
    assert_true(nncc_get_learning_rate(m) == 0.05f);
    nncc_history_free(h);
    rec_free(&r);
}

static void test_set_learning_rate(void **state)
{
    (void)state;
    struct nncc_array *x, *y;
    make_data(4, 12, 4, 3, &x, &y, NULL);
    nncc_model *m = dense_model(3, 4, 3, NNCC_SOFTMAX);
    assert_int_equal(nncc_compile(m, .optimizer = nncc_sgd(.learning_rate = 0.5f),
                                  .loss = NNCC_CATEGORICAL_CROSSENTROPY,
                                  .metrics = NNCC_ACCURACY),
                     NNCC_OK);
    assert_true(nncc_get_learning_rate(m) == 0.5f);
    check_lr_schedule(m, x, y);
    assert_int_equal(nncc_compile(m, .optimizer = nncc_adam(.learning_rate = 0.01f),
                                  .loss = NNCC_CATEGORICAL_CROSSENTROPY,
                                  .metrics = NNCC_ACCURACY),
                     NNCC_OK);
    assert_true(nncc_get_learning_rate(m) == 0.01f); /* compile resets it */
    check_lr_schedule(m, x, y);
    assert_int_equal(nncc_set_learning_rate(m, -1), NNCC_ERR_ARG);
    nncc_model_free(m);
    nncc_array_free(x);
    nncc_array_free(y);
}

/* A 1-unit sigmoid output with BCE: "accuracy" is binary accuracy,
 * y == (p > 0.5), strict; y (N,) and (N, 1) both work. */
static void test_binary_accuracy(void **state)
{
    (void)state;
    nncc_model *m = dense_model(1, 1, 1, NNCC_SIGMOID);
    nncc_layer *d = first_weighted(m);
    float one = 1, zero = 0;
    assert_int_equal(nncc_set_weights(d, 0, &one, 1), NNCC_OK);
    assert_int_equal(nncc_set_weights(d, 1, &zero, 1), NNCC_OK);
    assert_int_equal(nncc_compile(m, .optimizer = nncc_sgd(), .loss = NNCC_BINARY_CROSSENTROPY,
                                  .metrics = NNCC_ACCURACY),
                     NNCC_OK);
    /* p = sigmoid(x): predictions 1, 1, 0, 1, 0 (p = 0.5 is not > 0.5);
     * labels 1, 1, 0, 0, 0.  Binary accuracy 4/5; a sparse reading (argmax
     * of one column is 0) would give 3/5, a categorical one 5/5, and
     * p >= 0.5 would give 3/5. */
    const float xs[5] = {2, 2, -2, 0.5f, 0}, ys[5] = {1, 1, 0, 0, 0};
    struct nncc_array *x = array2(5, 1), *y1 = array1(5), *y2 = array2(5, 1);
    memcpy(x->data, xs, sizeof xs);
    memcpy(y1->data, ys, sizeof ys);
    memcpy(y2->data, ys, sizeof ys);
    /* K2's BCE on a sigmoid output takes the logits path. */
    double want = 0;
    for (int i = 0; i < 5; i++) {
        double z = xs[i];
        want += fmax(z, 0) - z * ys[i] + log1p(exp(-fabs(z)));
    }
    want /= 5;
    struct nncc_logs l1 = nncc_evaluate(m, x, y1), l2 = nncc_evaluate(m, x, y2);
    assert_int_equal(l1.n, 2);
    assert_int_equal(l2.n, 2);
    assert_close(nncc_logs_get(&l1, "accuracy"), 0.8, 1e-6);
    assert_close(nncc_logs_get(&l2, "accuracy"), 0.8, 1e-6);
    assert_close(nncc_logs_get(&l1, "loss"), want, 1e-5);
    assert_close(nncc_logs_get(&l2, "loss"), want, 1e-5);
    nncc_history *h = fit_ok(nncc_fit(m, x, y1, .batch_size = 5));
    assert_close(nncc_history_get(h, "accuracy", 0), 0.8, 1e-6); /* pre-update */
    nncc_history_free(h);
    nncc_model_free(m);
    nncc_array_free(x);
    nncc_array_free(y1);
    nncc_array_free(y2);
}

/* Sparse labels (N,) and (N, 1) with sparse_categorical_crossentropy give
 * the same loss and sparse accuracy as one-hot labels with CCE. */
static void test_sparse_labels(void **state)
{
    (void)state;
    struct nncc_array *x, *onehot, *labels;
    make_data(6, 20, 4, 3, &x, &onehot, &labels);
    struct nncc_array *labels2 = array2(20, 1);
    memcpy(labels2->data, labels->data, sizeof(float) * 20);
    nncc_model *m = dense_model(11, 4, 3, NNCC_SOFTMAX);
    struct snap w0 = snapshot(m);
    /* The expectation, in double from the predictions. */
    struct nncc_array *p = nncc_predict(m, x);
    assert_non_null(p);
    double want_loss = 0;
    int right = 0;
    for (int i = 0; i < 20; i++) {
        int label = (int)labels->data[i], arg = 0;
        for (int c = 1; c < 3; c++)
            if (p->data[i * 3 + c] > p->data[i * 3 + arg])
                arg = c;
        right += arg == label;
        want_loss -= log((double)p->data[i * 3 + label]);
    }
    want_loss /= 20;
    nncc_array_free(p);

    assert_int_equal(nncc_compile(m, .optimizer = nncc_sgd(.learning_rate = 0.1f),
                                  .loss = NNCC_SPARSE_CATEGORICAL_CROSSENTROPY,
                                  .metrics = NNCC_ACCURACY),
                     NNCC_OK);
    struct nncc_logs a = nncc_evaluate(m, x, labels, .batch_size = 7);
    struct nncc_logs b = nncc_evaluate(m, x, labels2, .batch_size = 7);
    if (!a.n || !b.n)
        fail_msg("evaluate: %s", nncc_last_error());
    assert_close(nncc_logs_get(&a, "loss"), want_loss, 1e-5);
    assert_close(nncc_logs_get(&b, "loss"), want_loss, 1e-5);
    assert_close(nncc_logs_get(&a, "accuracy"), right / 20.0, 1e-6);
    assert_close(nncc_logs_get(&b, "accuracy"), right / 20.0, 1e-6);
    nncc_history *ha = fit_ok(nncc_fit(m, x, labels, .batch_size = 5, .epochs = 2,
                                       .no_shuffle = true));
    restore(m, &w0);
    assert_int_equal(nncc_compile(m, .optimizer = nncc_sgd(.learning_rate = 0.1f),
                                  .loss = NNCC_SPARSE_CATEGORICAL_CROSSENTROPY,
                                  .metrics = NNCC_ACCURACY),
                     NNCC_OK);
    nncc_history *hb = fit_ok(nncc_fit(m, x, labels2, .batch_size = 5, .epochs = 2,
                                       .no_shuffle = true));
    for (int e = 0; e < 2; e++) {
        assert_close(nncc_history_get(ha, "loss", e), nncc_history_get(hb, "loss", e), 1e-6);
        assert_close(nncc_history_get(ha, "accuracy", e), nncc_history_get(hb, "accuracy", e),
                     1e-6);
    }
    /* One-hot labels with CCE: the same numbers (categorical accuracy). */
    restore(m, &w0);
    assert_int_equal(nncc_compile(m, .optimizer = nncc_sgd(.learning_rate = 0.1f),
                                  .loss = NNCC_CATEGORICAL_CROSSENTROPY,
                                  .metrics = NNCC_ACCURACY),
                     NNCC_OK);
    struct nncc_logs c = nncc_evaluate(m, x, onehot, .batch_size = 7);
    assert_close(nncc_logs_get(&c, "loss"), want_loss, 1e-5);
    assert_close(nncc_logs_get(&c, "accuracy"), right / 20.0, 1e-6);
    nncc_history *hc = fit_ok(nncc_fit(m, x, onehot, .batch_size = 5, .epochs = 2,
                                       .no_shuffle = true));
    for (int e = 0; e < 2; e++)
        assert_close(nncc_history_get(ha, "loss", e), nncc_history_get(hc, "loss", e), 1e-5);
    nncc_history_free(ha);
    nncc_history_free(hb);
    nncc_history_free(hc);
    free(w0.v);
    nncc_model_free(m);
    nncc_array_free(x);
    nncc_array_free(onehot);
    nncc_array_free(labels);
    nncc_array_free(labels2);
}

/* NNCC_METRIC_MSE / MAE: keys mean_squared_error / mean_absolute_error;
 * evaluate returns loss then the metrics in order, named. */
static void test_metric_keys_and_evaluate_order(void **state)
{
    (void)state;
    struct nncc_array *x, *y;
    make_data(8, 10, 4, 2, &x, &y, NULL);
    for (int i = 0; i < 20; i++) /* real-valued targets */
        y->data[i] = y->data[i] * 1.5f - 0.25f;
    nncc_model *m = dense_model(5, 4, 2, NNCC_LINEAR);
    struct nncc_array *p = nncc_predict(m, x);
    assert_non_null(p);
    double mse = 0, mae = 0;
    int right = 0;
    for (int i = 0; i < 10; i++) {
        for (int c = 0; c < 2; c++) {
            double d = (double)p->data[i * 2 + c] - y->data[i * 2 + c];
            mse += d * d / 20;
            mae += fabs(d) / 20;
        }
        right += (p->data[i * 2 + 1] > p->data[i * 2]) == (y->data[i * 2 + 1] > y->data[i * 2]);
    }
    nncc_array_free(p);
    assert_int_equal(nncc_compile(m, .optimizer = nncc_sgd(), .loss = NNCC_MEAN_ABSOLUTE_ERROR,
                                  .metrics = NNCC_METRIC_MAE | NNCC_METRIC_MSE | NNCC_ACCURACY),
                     NNCC_OK);
    struct nncc_logs l = nncc_evaluate(m, x, y, .batch_size = 3);
    assert_int_equal(l.n, 4);
    assert_string_equal(l.names[0], "loss");
    assert_string_equal(l.names[1], "accuracy");
    assert_string_equal(l.names[2], "mean_squared_error");
    assert_string_equal(l.names[3], "mean_absolute_error");
    assert_close(l.values[0], mae, 1e-5);
    assert_close(l.values[1], right / 10.0, 1e-6); /* categorical: argmax == argmax */
    assert_close(l.values[2], mse, 1e-5);
    assert_close(l.values[3], mae, 1e-5);
    nncc_history *h = fit_ok(nncc_fit(m, x, y, .batch_size = 3, .epochs = 2));
    assert_int_equal(nncc_history_num_keys(h), 4);
    for (int k = 0; k < 4; k++)
        assert_string_equal(nncc_history_key(h, k), l.names[k]);
    nncc_history_free(h);

    /* The loss alone: one entry. */
    assert_int_equal(nncc_compile(m, .loss = NNCC_MEAN_SQUARED_ERROR), NNCC_OK);
    l = nncc_evaluate(m, x, y);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.names[0], "loss");
    assert_true(isnan(nncc_logs_get(&l, "accuracy")));
    nncc_model_free(m);
    nncc_array_free(x);
    nncc_array_free(y);
}

/* nncc_history_write_csv: "epoch,loss,accuracy,val_loss,val_accuracy" and
 * one line per epoch whose fields read back as the History's values. */
static void test_history_csv(void **state)
{
    (void)state;
    struct nncc_array *x, *y;
    make_data(1, 8, 4, 3, &x, &y, NULL);
    nncc_model *m = dense_model(3, 4, 3, NNCC_SOFTMAX);
    assert_int_equal(nncc_compile(m, .optimizer = nncc_sgd(.learning_rate = 0.5f),
                                  .loss = NNCC_CATEGORICAL_CROSSENTROPY,
                                  .metrics = NNCC_ACCURACY),
                     NNCC_OK);
    nncc_history *h = fit_ok(nncc_fit(m, x, y, .batch_size = 4, .epochs = 3,
                                      .validation_split = 0.25));
    char dir[] = "/tmp/nncc-test-train-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/history.csv", dir);
    assert_int_equal(nncc_history_write_csv(h, path), NNCC_OK);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[1024];
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "epoch,loss,accuracy,val_loss,val_accuracy\n");
    const char *keys[] = {"loss", "accuracy", "val_loss", "val_accuracy"};
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        assert_true(rows < 3);
        assert_non_null(strchr(line, '\n'));
        char *p = line, *end;
        assert_int_equal(strtol(p, &end, 10), rows);
        p = end;
        for (int k = 0; k < 4; k++) {
            assert_int_equal(*p, ',');
            double v = strtod(p + 1, &end);
            assert_true(end > p + 1);
            /* exact: the file holds enough digits to round-trip */
            assert_true(v == nncc_history_get(h, keys[k], rows));
            p = end;
        }
        assert_string_equal(p, "\n");
        rows++;
    }
    assert_int_equal(rows, 3);
    fclose(f);
    /* An unwritable path is an I/O error naming it. */
    char bad[300];
    snprintf(bad, sizeof bad, "%s/missing/history.csv", dir);
    assert_int_equal(nncc_history_write_csv(h, bad), NNCC_ERR_IO);
    EXPECT_ERROR(NNCC_ERR_IO, bad);
    unlink(path);
    rmdir(dir);
    nncc_history_free(h);
    nncc_model_free(m);
    nncc_array_free(x);
    nncc_array_free(y);
}

/* The order rows are trained in, recovered from the batch logs of a fit
 * with batch size 1 and learning rate 0 (so each row's loss is fixed and
 * known): per-batch loss k = M_k·(k+1) − M_{k−1}·k, matched to the rows'
 * own losses.  12 rows, validation_split 0.25: rows 0..8 train, 9..11
 * validate.  order[e][b] is the row of batch b in epoch e. */
#define SH_ROWS 12
#define SH_TRAIN 9
static void training_order(nncc_model *m, const struct nncc_array *x, const struct nncc_array *y,
                           bool no_shuffle, int order[3][SH_TRAIN])
{
    double row_loss[SH_ROWS];
    for (int i = 0; i < SH_ROWS; i++)
        row_loss[i] = eval_rows(m, x, y, i, i + 1, "loss");
    for (int i = 0; i < SH_ROWS; i++) /* distinguishable rows, or the test proves nothing */
        for (int j = 0; j < i; j++)
            assert_true(fabs(row_loss[i] - row_loss[j]) > 1e-3);
    struct rec r;
    rec_init(&r);
    for (int e = 0; e < 3; e++)
        r.lr_at_epoch[e] = 0;
    struct nncc_callback cb = rec_callback(&r);
    nncc_history *h = fit_ok(nncc_fit(m, x, y, .batch_size = 1, .epochs = 3,
                                      .validation_split = 0.25, .no_shuffle = no_shuffle,
                                      .callbacks = &cb, .n_callbacks = 1));
    assert_int_equal(r.n_batch_end, 3 * SH_TRAIN);
    for (int e = 0; e < 3; e++)
        for (int b = 0; b < SH_TRAIN; b++) {
            double mean = nncc_logs_get(&r.batch_logs[e * SH_TRAIN + b], "loss");
            double prev = b ? nncc_logs_get(&r.batch_logs[e * SH_TRAIN + b - 1], "loss") : 0;
            double l = mean * (b + 1) - prev * b;
            int best = 0;
            for (int i = 1; i < SH_ROWS; i++)
                if (fabs(l - row_loss[i]) < fabs(l - row_loss[best]))
                    best = i;
            assert_close(l, row_loss[best], 1e-5);
            order[e][b] = best;
        }
    nncc_history_free(h);
    rec_free(&r);
}

static void test_shuffle_order(void **state)
{
    (void)state;
    struct nncc_array *x, *y;
    make_data(18, SH_ROWS, 4, 3, &x, &y, NULL);
    nncc_model *m = dense_model(3, 4, 3, NNCC_SOFTMAX);
    assert_int_equal(nncc_compile(m, .optimizer = nncc_sgd(.learning_rate = 0.5f), .seed = 3,
                                  .loss = NNCC_CATEGORICAL_CROSSENTROPY),
                     NNCC_OK);
    int order[3][SH_TRAIN];
    /* shuffle=False: the training rows in order every epoch. */
    training_order(m, x, y, true, order);
    for (int e = 0; e < 3; e++)
        for (int b = 0; b < SH_TRAIN; b++)
            assert_int_equal(order[e][b], b);
    /* Shuffled: every epoch a permutation of the training rows (never a
     * validation row), and a new one each epoch. */
    training_order(m, x, y, false, order);
    for (int e = 0; e < 3; e++) {
        int seen[SH_ROWS] = {0};
        for (int b = 0; b < SH_TRAIN; b++) {
            assert_true(order[e][b] < SH_TRAIN);
            seen[order[e][b]]++;
        }
        for (int i = 0; i < SH_TRAIN; i++)
            assert_int_equal(seen[i], 1);
    }
    assert_true(memcmp(order[0], order[1], sizeof order[0]) != 0);
    assert_true(memcmp(order[1], order[2], sizeof order[0]) != 0);
    nncc_model_free(m);
    nncc_array_free(x);
    nncc_array_free(y);
}

/* The shuffle is uniform: over many epochs every training row appears at
 * every position equally often, and every permutation is drawn equally
 * often.  The model reveals each batch's row: x = 0, Dense 1 relu with
 * bias −1 predicts 0 with a zero gradient (so nothing changes), and row r's
 * target r + 1 makes its loss (r + 1)², recovered from the batch logs of a
 * batch-1 fit as in training_order.  N = 5 rows, E = 2400 epochs from a
 * fixed seed (deterministic).  Position counts: Pearson's χ² over the 5×5
 * table (expected E/5 each, (N−1)² = 16 degrees of freedom, 99.9%
 * quantile 39.3) must stay below 40; the permutations: χ² over the 120
 * (expected 20 each, 119 degrees of freedom, 99.9% quantile 173) below
 * 175.  An off-by-one Fisher–Yates (j drawn from [0, i) instead of
 * [0, i]: Sattolo's algorithm, only the 24 cyclic permutations, no row ever
 * in its own place) gives ≈ E·N/(N−1) = 3000 and ≈ 9600. */
#define UNI_N 5
#define UNI_EPOCHS 2400
struct uni_rec {
    int n;
    double *loss; /* the running mean after each batch */
};
static void uni_batch_end(void *user, nncc_model *m, int batch, const struct nncc_logs *logs)
{
    (void)m, (void)batch;
    struct uni_rec *r = user;
    if (r->n < UNI_N * UNI_EPOCHS)
        r->loss[r->n] = nncc_logs_get(logs, "loss");
    r->n++;
}

static void test_shuffle_uniform(void **state)
{
    (void)state;
    nncc_model *m = dense_model(5, 1, 1, NNCC_RELU);
    const float kernel = 0.5f, bias = -1;
    nncc_layer *d = first_weighted(m);
    assert_int_equal(nncc_set_weights(d, 0, &kernel, 1), NNCC_OK);
    assert_int_equal(nncc_set_weights(d, 1, &bias, 1), NNCC_OK);
    assert_int_equal(nncc_compile(m, .optimizer = nncc_sgd(.learning_rate = 0.5f), .seed = 11,
                                  .loss = NNCC_MEAN_SQUARED_ERROR),
                     NNCC_OK);
    struct nncc_array *x = nncc_array_new(NNCC_SHAPE(UNI_N, 1));
    struct nncc_array *y = nncc_array_new(NNCC_SHAPE(UNI_N, 1));
    assert_non_null(x);
    assert_non_null(y);
    for (int i = 0; i < UNI_N; i++)
        y->data[i] = (float)(i + 1);
    struct uni_rec r = {.loss = calloc(UNI_N * UNI_EPOCHS, sizeof(double))};
    assert_non_null(r.loss);
    struct nncc_callback cb = {.user = &r, .on_train_batch_end = uni_batch_end};
    nncc_history *h = fit_ok(nncc_fit(m, x, y, .batch_size = 1, .epochs = UNI_EPOCHS,
                                      .callbacks = &cb, .n_callbacks = 1));
    assert_int_equal(r.n, UNI_N * UNI_EPOCHS);
    long pos[UNI_N][UNI_N] = {{0}}, perm[120] = {0};
    for (int e = 0; e < UNI_EPOCHS; e++) {
        int order[UNI_N], seen = 0;
        for (int b = 0; b < UNI_N; b++) {
            const double *M = r.loss + e * UNI_N;
            double l = M[b] * (b + 1) - (b ? M[b - 1] * b : 0);
            int row = (int)lround(sqrt(l)) - 1;
            assert_true(row >= 0 && row < UNI_N);
            assert_close(l, (row + 1.0) * (row + 1.0), 1e-9);
            assert_false(seen & 1 << row); /* a permutation */
            seen |= 1 << row;
            order[b] = row;
            pos[b][row]++;
        }
        /* The permutation's index: its Lehmer code in the factorial base. */
        int index = 0;
        for (int b = 0; b < UNI_N; b++) {
            int smaller = 0;
            for (int c = b + 1; c < UNI_N; c++)
                smaller += order[c] < order[b];
            index = index * (UNI_N - b) + smaller;
        }
        perm[index]++;
    }
    double chi_pos = 0, chi_perm = 0, want_pos = UNI_EPOCHS / (double)UNI_N,
           want_perm = UNI_EPOCHS / 120.0;
    for (int b = 0; b < UNI_N; b++)
        for (int i = 0; i < UNI_N; i++)
            chi_pos += (pos[b][i] - want_pos) * (pos[b][i] - want_pos) / want_pos;
    for (int k = 0; k < 120; k++)
        chi_perm += (perm[k] - want_perm) * (perm[k] - want_perm) / want_perm;
    if (!(chi_pos < 40) || !(chi_perm < 175))
        fail_msg("the shuffle is not uniform: chi-square %.1f over row positions (bound 40), "
                 "%.1f over permutations (bound 175); row 0 at position 0 %ld times of %d",
                 chi_pos, chi_perm, pos[0][0], UNI_EPOCHS);
    free(r.loss);
    nncc_history_free(h);
    nncc_model_free(m);
    nncc_array_free(x);
    nncc_array_free(y);
}

/* Keras computes split_at = ⌊N·(1 − validation_split)⌋ with the Python
 * float (a double) the user wrote: 0.2 on 10 rows trains on 8 and validates
 * on 2.  Counted here as the steps of a batch-1 epoch. */
static void test_validation_split_decimal(void **state)
{
    (void)state;
    struct nncc_array *x, *y;
    make_data(17, 10, 4, 3, &x, &y, NULL);
    nncc_model *m = dense_model(3, 4, 3, NNCC_SOFTMAX);
    assert_int_equal(nncc_compile(m, .optimizer = nncc_sgd(.learning_rate = 0.5f),
                                  .loss = NNCC_CATEGORICAL_CROSSENTROPY),
                     NNCC_OK);
    const double splits[] = {0.1, 0.2, 0.3, 0.5}; /* .validation_split is a double, as in Keras */
    const int keras_train[] = {9, 8, 7, 5}; /* Python: math.floor(10 * (1.0 - v)) */
    char report[512] = "";
    bool ok = true;
    for (int i = 0; i < 4; i++) {
        struct rec r;
        rec_init(&r);
        struct nncc_callback cb = rec_callback(&r);
        nncc_history *h = fit_ok(nncc_fit(m, x, y, .batch_size = 1, .validation_split = splits[i],
                                          .callbacks = &cb, .n_callbacks = 1));
        size_t len = strlen(report);
        snprintf(report + len, sizeof report - len, " %g: %d/%d training rows (Keras %d/%d);",
                 (double)splits[i], r.n_batch_end, 10 - r.n_batch_end, keras_train[i],
                 10 - keras_train[i]);
        ok = ok && r.n_batch_end == keras_train[i];
        nncc_history_free(h);
        rec_free(&r);
    }
    nncc_model_free(m);
    nncc_array_free(x);
    nncc_array_free(y);
    /* Regression test: validation_split was a float, widened to a double
     * (0.2f = 0.20000000298…), so ⌊10·(1 − v)⌋ = ⌊7.99999997⌋ = 7 and one row
     * too many validated; it is a double now, as Keras' is. */
    if (!ok)
        fail_msg("validation_split on 10 rows:%s", report);
}

/* batch_size 0 means Keras' default 32: ⌈100/32⌉ = 4 steps. */
static void test_default_batch_size(void **state)
{
    (void)state;
    struct nncc_array *x, *y;
    make_data(3, 100, 4, 3, &x, &y, NULL);
    nncc_model *m = dense_model(3, 4, 3, NNCC_SOFTMAX);
    assert_int_equal(nncc_compile(m, .optimizer = nncc_sgd(.learning_rate = 0.5f),
                                  .loss = NNCC_CATEGORICAL_CROSSENTROPY,
                                  .metrics = NNCC_ACCURACY),
                     NNCC_OK);
    struct rec r;
    rec_init(&r);
    r.x = x, r.y = y, r.bs = 32, r.eval_batches = true;
    struct nncc_callback cb = rec_callback(&r);
    nncc_history *h = fit_ok(nncc_fit(m, x, y, .no_shuffle = true, .callbacks = &cb,
                                      .n_callbacks = 1));
    assert_int_equal(r.n_batch_end, 4);
    /* The means prove the batches were 32, 32, 32 and 4 rows. */
    double s = 0;
    for (int b = 0; b < 4; b++)
        s += r.pre_loss[b] * r.batch_rows[b];
    assert_int_equal(r.batch_rows[3], 4);
    assert_close(nncc_history_get(h, "loss", 0), s / 100, 1e-5);
    nncc_history_free(h);
    rec_free(&r);
    nncc_model_free(m);
    nncc_array_free(x);
    nncc_array_free(y);
}

/* ---- 4. Progress output ------------------------------------------------------ */

/* A tiny matcher: %d is \d+, %u is (ms|us|s), %f is \d+\.\d{4}; anything
 * else matches itself. */
static bool match(const char *p, const char *s)
{
    if (!*p)
        return !*s;
    if (p[0] == '%' && p[1] == 'd') {
        if (!(*s >= '0' && *s <= '9'))
            return false;
        for (const char *t = s; *t >= '0' && *t <= '9'; t++)
            if (match(p + 2, t + 1))
                return true;
        return false;
    }
    if (p[0] == '%' && p[1] == 'u') {
        static const char *const units[] = {"ms", "us", "s"};
        for (int i = 0; i < 3; i++)
            if (strncmp(s, units[i], strlen(units[i])) == 0 &&
                match(p + 2, s + strlen(units[i])))
                return true;
        return false;
    }
    if (p[0] == '%' && p[1] == 'f') {
        const char *t = s;
        if (!(*t >= '0' && *t <= '9'))
            return false;
        while (*t >= '0' && *t <= '9')
            t++;
        if (*t++ != '.')
            return false;
        for (int i = 0; i < 4; i++, t++)
            if (!(*t >= '0' && *t <= '9'))
                return false;
        return match(p + 2, t);
    }
    return *p == *s && match(p + 1, s + 1);
}

/* Keras' value format: %.4f when |v| > 1e-3 (verbose 2: v > 1e-3), else %.4e. */
static const char *fmt_value(char *buf, double v, bool abs_test)
{
    bool fixed = abs_test ? fabs(v) > 1e-3 : v > 1e-3;
    snprintf(buf, 32, fixed ? "%.4f" : "%.4e", v);
    return buf;
}

struct capture {
    int saved;
    FILE *tmp;
};

static struct capture capture_begin(void)
{
    struct capture c;
    fflush(stdout);
    c.tmp = tmpfile();
    assert_non_null(c.tmp);
    c.saved = dup(1);
    assert_true(c.saved >= 0);
    assert_true(dup2(fileno(c.tmp), 1) >= 0);
    return c;
}

/* The captured text (malloc'd). */
static char *capture_end(struct capture c)
{
    fflush(stdout);
    assert_true(dup2(c.saved, 1) >= 0);
    close(c.saved);
    fseek(c.tmp, 0, SEEK_END);
    long len = ftell(c.tmp);
    rewind(c.tmp);
    char *s = malloc((size_t)len + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)len, c.tmp), (size_t)len);
    s[len] = '\0';
    fclose(c.tmp);
    return s;
}

/* Splits text at newlines in place; every line must end with one. */
static int split_lines(char *text, char **lines, int max)
{
    int n = 0;
    char *p = text;
    while (*p) {
        char *nl = strchr(p, '\n');
        if (!nl)
            fail_msg("output does not end with a newline: \"%s\"", p);
        *nl = '\0';
        assert_true(n < max);
        lines[n++] = p;
        p = nl + 1;
    }
    return n;
}

#define BAR30 "[==============================]"

/* The verbose=1 final line expected for history row `row`. */
static void final_line_pattern(char *pat, size_t size, const char *counter,
                               const nncc_history *h, int row)
{
    char a[32], b[32];
    int len = snprintf(pat, size, "%s " BAR30 " - %%ds %%d%%u/step - loss: %s - accuracy: %s",
                       counter, fmt_value(a, nncc_history_get(h, "loss", row), true),
                       fmt_value(b, nncc_history_get(h, "accuracy", row), true));
    if (!isnan(nncc_history_get(h, "val_loss", row)))
        snprintf(pat + len, size - (size_t)len, " - val_loss: %s - val_accuracy: %s",
                 fmt_value(a, nncc_history_get(h, "val_loss", row), true),
                 fmt_value(b, nncc_history_get(h, "val_accuracy", row), true));
}

static void expect_match(const char *pat, const char *line)
{
    if (!match(pat, line))
        fail_msg("the line\n  \"%s\"\ndoes not match\n  \"%s\"", line, pat);
}

static void add_lr(void *u, nncc_model *m, int epoch, struct nncc_logs *logs)
{
    (void)u, (void)epoch;
    assert_int_equal(nncc_logs_set(logs, "lr", nncc_get_learning_rate(m)), NNCC_OK);
}

static void test_progress_verbose1(void **state)
{
    (void)state;
    struct nncc_array *x, *y;
    make_data(1, 8, 4, 3, &x, &y, NULL);
    struct nncc_array *x7 = rows_of(x, 0, 7), *y7 = rows_of(y, 0, 7);
    nncc_model *m = dense_model(3, 4, 3, NNCC_SOFTMAX);
    assert_int_equal(nncc_compile(m, .optimizer = nncc_sgd(.learning_rate = 0.5f),
                                  .loss = NNCC_CATEGORICAL_CROSSENTROPY,
                                  .metrics = NNCC_ACCURACY),
                     NNCC_OK);
    char pat[512], *lines[16];

    /* Two epochs of 7 steps: a header before each, one final line each. */
    struct capture c = capture_begin();
    nncc_history *h = nncc_fit(m, x7, y7, .batch_size = 1, .epochs = 2, .verbose = 1);
    char *out = capture_end(c);
    fit_ok(h);
    assert_int_equal(split_lines(out, lines, 16), 4);
    assert_string_equal(lines[0], "Epoch 1/2");
    assert_string_equal(lines[2], "Epoch 2/2");
    /* The shape, as the reference writes it. */
    expect_match("7/7 " BAR30 " - %ds %d%u/step - loss: %f - accuracy: %f", lines[1]);
    /* And byte for byte but the times. */
    final_line_pattern(pat, sizeof pat, "7/7", h, 0);
    expect_match(pat, lines[1]);
    final_line_pattern(pat, sizeof pat, "7/7", h, 1);
    expect_match(pat, lines[3]);
    /* Exactly 30 characters between the brackets. */
    char *open = strchr(lines[1], '['), *close_ = strchr(lines[1], ']');
    assert_true(open && close_ && close_ - open - 1 == 30);
    free(out);
    nncc_history_free(h);

    /* One epoch: no "Epoch 1/1" line; validation values follow. */
    c = capture_begin();
    h = nncc_fit(m, x, y, .batch_size = 2, .validation_split = 0.25, .verbose = 1);
    out = capture_end(c);
    fit_ok(h);
    assert_int_equal(split_lines(out, lines, 16), 1);
    expect_match("3/3 " BAR30
                 " - %ds %d%u/step - loss: %f - accuracy: %f - val_loss: %f - val_accuracy: %f",
                 lines[0]);
    final_line_pattern(pat, sizeof pat, "3/3", h, 0);
    expect_match(pat, lines[0]);
    free(out);
    nncc_history_free(h);

    /* initial_epoch 2 of 4: "Epoch 3/4" and "Epoch 4/4". */
    c = capture_begin();
    h = nncc_fit(m, x7, y7, .batch_size = 3, .epochs = 4, .initial_epoch = 2, .verbose = 1);
    out = capture_end(c);
    fit_ok(h);
    assert_int_equal(split_lines(out, lines, 16), 4);
    assert_string_equal(lines[0], "Epoch 3/4");
    assert_string_equal(lines[2], "Epoch 4/4");
    final_line_pattern(pat, sizeof pat, "3/3", h, 1);
    expect_match(pat, lines[3]);
    free(out);
    nncc_history_free(h);

    /* An entry on_epoch_end adds (as ReduceLROnPlateau's "lr") reaches the
     * History and, user callbacks running first, the bar's last line. */
    struct nncc_callback lr_cb = {.on_epoch_end = add_lr};
    c = capture_begin();
    h = nncc_fit(m, x7, y7, .batch_size = 7, .verbose = 1, .callbacks = &lr_cb, .n_callbacks = 1);
    out = capture_end(c);
    fit_ok(h);
    assert_int_equal(nncc_history_num_keys(h), 3);
    assert_string_equal(nncc_history_key(h, 2), "lr");
    assert_int_equal(split_lines(out, lines, 16), 1);
    final_line_pattern(pat, sizeof pat, "1/1", h, 0);
    strcat(pat, " - lr: 0.5000");
    expect_match(pat, lines[0]);
    free(out);
    nncc_history_free(h);

    /* evaluate(verbose=1) draws the same final line. */
    c = capture_begin();
    struct nncc_logs l = nncc_evaluate(m, x7, y7, .batch_size = 2, .verbose = 1);
    out = capture_end(c);
    assert_int_equal(l.n, 2);
    assert_int_equal(split_lines(out, lines, 16), 1);
    char a[32], b[32];
    snprintf(pat, sizeof pat, "4/4 " BAR30 " - %%ds %%d%%u/step - loss: %s - accuracy: %s",
             fmt_value(a, l.values[0], true), fmt_value(b, l.values[1], true));
    expect_match(pat, lines[0]);
    free(out);

    /* verbose 0: nothing at all. */
    c = capture_begin();
    h = nncc_fit(m, x7, y7, .batch_size = 3, .epochs = 2, .verbose = 0);
    out = capture_end(c);
    fit_ok(h);
    assert_string_equal(out, "");
    free(out);
    nncc_history_free(h);
    c = capture_begin();
    l = nncc_evaluate(m, x7, y7);
    out = capture_end(c);
    assert_string_equal(out, "");
    free(out);

    nncc_model_free(m);
    nncc_array_free(x);
    nncc_array_free(y);
    nncc_array_free(x7);
    nncc_array_free(y7);
}

static void test_progress_verbose2(void **state)
{
    (void)state;
    struct nncc_array *x, *y;
    make_data(1, 8, 4, 3, &x, &y, NULL);
    struct nncc_array *x7 = rows_of(x, 0, 7), *y7 = rows_of(y, 0, 7);
    nncc_model *m = dense_model(3, 4, 3, NNCC_SOFTMAX);
    assert_int_equal(nncc_compile(m, .optimizer = nncc_sgd(.learning_rate = 0.5f),
                                  .loss = NNCC_CATEGORICAL_CROSSENTROPY,
                                  .metrics = NNCC_ACCURACY),
                     NNCC_OK);
    char pat[512], *lines[16], a[32], b[32];
    struct capture c = capture_begin();
    nncc_history *h = nncc_fit(m, x7, y7, .batch_size = 1, .epochs = 2, .verbose = 2);
    char *out = capture_end(c);
    fit_ok(h);
    assert_int_equal(split_lines(out, lines, 16), 4);
    assert_string_equal(lines[0], "Epoch 1/2");
    assert_string_equal(lines[2], "Epoch 2/2");
    expect_match("7/7 - %ds - loss: %f - accuracy: %f - %d%u/epoch - %d%u/step", lines[1]);
    for (int e = 0; e < 2; e++) {
        snprintf(pat, sizeof pat,
                 "7/7 - %%ds - loss: %s - accuracy: %s - %%d%%u/epoch - %%d%%u/step",
                 fmt_value(a, nncc_history_get(h, "loss", e), false),
                 fmt_value(b, nncc_history_get(h, "accuracy", e), false));
        expect_match(pat, lines[1 + 2 * e]);
    }
    free(out);
    nncc_history_free(h);

    /* One epoch with validation: no header, val_* before the times. */
    c = capture_begin();
    h = nncc_fit(m, x, y, .batch_size = 2, .validation_split = 0.25, .verbose = 2);
    out = capture_end(c);
    fit_ok(h);
    assert_int_equal(split_lines(out, lines, 16), 1);
    expect_match("3/3 - %ds - loss: %f - accuracy: %f - val_loss: %f - val_accuracy: %f - "
                 "%d%u/epoch - %d%u/step",
                 lines[0]);
    free(out);
    nncc_history_free(h);
    nncc_model_free(m);
    nncc_array_free(x);
    nncc_array_free(y);
    nncc_array_free(x7);
    nncc_array_free(y7);
}

/* The counter's digits: 469 steps print "469/469", 7 steps "7/7"; the bar
 * stays 30 wide. */
static void test_progress_469_steps(void **state)
{
    (void)state;
    struct nncc_array *x, *y;
    make_data(12, 469, 4, 3, &x, &y, NULL);
    nncc_model *m = dense_model(3, 4, 3, NNCC_SOFTMAX);
    assert_int_equal(nncc_compile(m, .optimizer = nncc_sgd(.learning_rate = 0.05f),
                                  .loss = NNCC_CATEGORICAL_CROSSENTROPY,
                                  .metrics = NNCC_ACCURACY),
                     NNCC_OK);
    char pat[512], *lines[4];
    struct capture c = capture_begin();
    nncc_history *h = nncc_fit(m, x, y, .batch_size = 1, .verbose = 1);
    char *out = capture_end(c);
    fit_ok(h);
    assert_int_equal(split_lines(out, lines, 4), 1);
    assert_int_equal(strncmp(lines[0], "469/469 " BAR30 " - ", 8 + 32 + 3), 0);
    final_line_pattern(pat, sizeof pat, "469/469", h, 0);
    expect_match(pat, lines[0]);
    free(out);
    nncc_history_free(h);
    nncc_model_free(m);
    nncc_array_free(x);
    nncc_array_free(y);
}

/* ---- 5. Bad input ----------------------------------------------------------- */

static int bad_callback_calls;
static void count_train_begin(void *u, nncc_model *m, const struct nncc_logs *l)
{
    (void)u, (void)m, (void)l;
    bad_callback_calls++;
}

static void test_bad_input(void **state)
{
    (void)state;
    struct nncc_array *x, *y, *labels;
    make_data(9, 8, 4, 3, &x, &y, &labels);
    nncc_model *m = dense_model(3, 4, 3, NNCC_SOFTMAX);

    /* fit and evaluate before compile */
    assert_null(nncc_fit(m, x, y));
    EXPECT_ERROR(NNCC_ERR_ARG, "compile");
    assert_int_equal(nncc_evaluate(m, x, y).n, 0);
    EXPECT_ERROR(NNCC_ERR_ARG, "compile");

    assert_int_equal(nncc_compile(m, .optimizer = nncc_sgd(.learning_rate = 0.5f),
                                  .loss = NNCC_CATEGORICAL_CROSSENTROPY,
                                  .metrics = NNCC_ACCURACY),
                     NNCC_OK);
    /* Build the steps once, so that "unchanged" below means something. */
    assert_int_equal(nncc_evaluate(m, x, y).n, 2);
    struct snap w0 = snapshot(m);
    struct nncc_callback cb = {.on_train_begin = count_train_begin};
    bad_callback_calls = 0;
#define FIT_FAILS(xx, yy, ...)                                                           \
    do {                                                                                 \
        nncc_clear_error();                                                              \
        nncc_history *h_ = nncc_fit(m, (xx), (yy), .callbacks = &cb, .n_callbacks = 1, \
                                    __VA_ARGS__);                                        \
        if (h_) {                                                                        \
            nncc_history_free(h_);                                                       \
            fail_msg("fit accepted bad input (line %d)", __LINE__);                     \
        }                                                                                \
        struct snap w_ = snapshot(m);                                                    \
        bool same_ = same_weights(&w0, &w_);                                             \
        free(w_.v);                                                                      \
        assert_true(same_);                                                              \
        assert_int_equal(bad_callback_calls, 0);                                         \
    } while (0)

    /* x and y row counts that differ */
    struct nncc_array *y7 = rows_of(y, 0, 7);
    FIT_FAILS(x, y7, .verbose = 0);
    EXPECT_ERROR(NNCC_ERR_ARG, "8", "7", "rows");
    assert_int_equal(nncc_evaluate(m, x, y7).n, 0);
    EXPECT_ERROR(NNCC_ERR_ARG, "8", "7");

    /* y of the wrong width for CCE: (8, 4) against the output (None, 3) */
    struct nncc_array *y4 = array2(8, 4);
    FIT_FAILS(x, y4, .verbose = 0);
    EXPECT_ERROR(NNCC_ERR_SHAPE, "(8, 4)", "(None, 3)");
    /* CCE with class numbers (8,) or (8, 1) instead of one-hot rows: the
     * message suggests the sparse loss or one-hot rows. */
    FIT_FAILS(x, labels, .verbose = 0);
    EXPECT_ERROR(NNCC_ERR_SHAPE, "fit: y of shape (8,) does not match the output (None, 3): y "
                                 "holds class indices (0 to 2); use "
                                 "sparse_categorical_crossentropy, or one-hot rows (8, 3)");
    struct nncc_array *labels81 = array2(8, 1);
    memcpy(labels81->data, labels->data, sizeof(float) * 8);
    FIT_FAILS(x, labels81, .verbose = 0);
    EXPECT_ERROR(NNCC_ERR_SHAPE, "fit: y of shape (8, 1) does not match the output (None, 3): y "
                                 "holds class indices (0 to 2)");
    assert_int_equal(nncc_evaluate(m, x, labels81).n, 0);
    EXPECT_ERROR(NNCC_ERR_SHAPE, "evaluate: y of shape (8, 1)", "sparse_categorical_crossentropy");
    nncc_array_free(labels81);

    /* x not matching the input (None, 4) */
    struct nncc_array *x5 = array2(8, 5);
    FIT_FAILS(x5, y, .verbose = 0);
    EXPECT_ERROR(NNCC_ERR_SHAPE, "x", "(8, 5)", "(None, 4)");

    /* NaN in x (row 3) and an infinity in y (row 6) */
    struct nncc_array *xn = rows_of(x, 0, 8), *yi = rows_of(y, 0, 8);
    xn->data[3 * 4 + 2] = NAN;
    yi->data[6 * 3 + 1] = INFINITY;
    FIT_FAILS(xn, y, .verbose = 0);
    EXPECT_ERROR(NNCC_ERR_ARG, "NaN", "row 3");
    FIT_FAILS(x, yi, .verbose = 0);
    EXPECT_ERROR(NNCC_ERR_ARG, "infinity", "row 6");
    assert_int_equal(nncc_evaluate(m, xn, y).n, 0);
    EXPECT_ERROR(NNCC_ERR_ARG, "NaN", "row 3");

    /* Options */
    FIT_FAILS(x, y, .batch_size = -1);
    EXPECT_ERROR(NNCC_ERR_ARG, "fit: batch_size must not be negative, got -1");
    FIT_FAILS(x, y, .initial_epoch = -4);
    EXPECT_ERROR(NNCC_ERR_ARG, "fit: initial_epoch must not be negative, got -4");
    FIT_FAILS(x, y, .validation_freq = -3);
    EXPECT_ERROR(NNCC_ERR_ARG, "fit: validation_freq must not be negative, got -3");
    assert_null(nncc_fit(m, x, y, .n_callbacks = -5));
    EXPECT_ERROR(NNCC_ERR_ARG, "fit: n_callbacks must not be negative, got -5");
    assert_null(nncc_fit(m, x, y, .n_callbacks = 2));
    EXPECT_ERROR(NNCC_ERR_ARG, "fit: n_callbacks is 2 but callbacks is NULL");
    FIT_FAILS(x, y, .validation_split = 1.0);
    EXPECT_ERROR(NNCC_ERR_ARG, "validation_split", "1");
    FIT_FAILS(x, y, .validation_split = 1.5);
    EXPECT_ERROR(NNCC_ERR_ARG, "validation_split", "1.5");
    FIT_FAILS(x, y, .validation_split = -0.25f);
    EXPECT_ERROR(NNCC_ERR_ARG, "validation_split");
    /* ⌊8 · 0.1⌋ = 0 training rows; 1e-20 leaves no validation row */
    FIT_FAILS(x, y, .validation_split = 0.9);
    EXPECT_ERROR(NNCC_ERR_ARG, "validation_split", "8", "empty");
    FIT_FAILS(x, y, .validation_split = 1e-20f);
    EXPECT_ERROR(NNCC_ERR_ARG, "validation_split", "8", "empty");
    FIT_FAILS(x, y, .verbose = 3);
    EXPECT_ERROR(NNCC_ERR_ARG, "verbose", "3");
    FIT_FAILS(x, y, .verbose = -1);
    EXPECT_ERROR(NNCC_ERR_ARG, "verbose");
    FIT_FAILS(x, y, .epochs = -2);
    EXPECT_ERROR(NNCC_ERR_ARG, "fit: epochs must not be negative, got -2");
    assert_int_equal(nncc_evaluate(m, x, y, .batch_size = -3).n, 0);
    EXPECT_ERROR(NNCC_ERR_ARG, "batch_size");
    FIT_FAILS(NULL, y, .verbose = 0);
    EXPECT_ERROR(NNCC_ERR_ARG, "x and y");

    /* Sparse labels outside [0, 3): the row and the value are named. */
    assert_int_equal(nncc_compile(m, .optimizer = nncc_sgd(.learning_rate = 0.5f),
                                  .loss = NNCC_SPARSE_CATEGORICAL_CROSSENTROPY,
                                  .metrics = NNCC_ACCURACY),
                     NNCC_OK);
    struct nncc_array *bad_labels = rows_of(labels, 0, 8);
    bad_labels->data[5] = 3;
    FIT_FAILS(x, bad_labels, .verbose = 0);
    EXPECT_ERROR(NNCC_ERR_ARG, "label 3", "row 5", "[0, 3)");
    bad_labels->data[5] = 0;
    bad_labels->data[2] = -1;
    FIT_FAILS(x, bad_labels, .verbose = 0);
    EXPECT_ERROR(NNCC_ERR_ARG, "label -1", "row 2");
    bad_labels->data[2] = 1.5f;
    FIT_FAILS(x, bad_labels, .verbose = 0);
    EXPECT_ERROR(NNCC_ERR_ARG, "label 1.5", "row 2");
    /* one-hot rows for SCCE: (8, 3) is not (n,) or (n, 1) */
    FIT_FAILS(x, y, .verbose = 0);
    EXPECT_ERROR(NNCC_ERR_SHAPE, "(8, 3)");
    /* The good labels still work, and change the weights. */
    nncc_history *h = fit_ok(nncc_fit(m, x, labels));
    struct snap w1 = snapshot(m);
    assert_false(same_weights(&w0, &w1));
    assert_int_equal(bad_callback_calls, 0);
#undef FIT_FAILS
    nncc_history_free(h);
    free(w0.v);
    free(w1.v);
    nncc_array_free(bad_labels);
    nncc_array_free(xn);
    nncc_array_free(yi);
    nncc_array_free(x5);
    nncc_array_free(y4);
    nncc_array_free(y7);
    nncc_model_free(m);
    nncc_array_free(x);
    nncc_array_free(y);
    nncc_array_free(labels);
}

/* ------------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], CHILD_FLAG) == 0)
        return determinism_child();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_validation_split_last_rows, setup),
        cmocka_unit_test_setup(test_batches_running_means, setup),
        cmocka_unit_test_setup(test_stop_training, setup),
        cmocka_unit_test_setup(test_stop_training_before_batches, setup),
        cmocka_unit_test_setup(test_initial_epoch_and_validation_freq, setup),
        cmocka_unit_test_setup(test_set_learning_rate, setup),
        cmocka_unit_test_setup(test_binary_accuracy, setup),
        cmocka_unit_test_setup(test_sparse_labels, setup),
        cmocka_unit_test_setup(test_metric_keys_and_evaluate_order, setup),
        cmocka_unit_test_setup(test_history_csv, setup),
        cmocka_unit_test_setup(test_shuffle_order, setup),
        cmocka_unit_test_setup(test_shuffle_uniform, setup),
        cmocka_unit_test_setup(test_validation_split_decimal, setup),
        cmocka_unit_test_setup(test_default_batch_size, setup),
        cmocka_unit_test_setup(test_progress_verbose1, setup),
        cmocka_unit_test_setup(test_progress_verbose2, setup),
        cmocka_unit_test_setup(test_progress_469_steps, setup),
        cmocka_unit_test_setup(test_bad_input, setup),
        cmocka_unit_test_setup(test_determinism_in_process, setup),
        cmocka_unit_test_setup(test_determinism_threads, setup),
        cmocka_unit_test_setup(test_fashion_mnist_mlp, setup),
        cmocka_unit_test_setup(test_predict_checks_shape, setup),
        cmocka_unit_test_setup(test_predict_n_checks_each_input, setup),
        cmocka_unit_test_setup(test_compile_refuses_several_inputs_or_outputs, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
