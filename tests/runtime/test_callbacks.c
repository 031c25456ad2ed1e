/*
 * test_callbacks.c — fit's callbacks and the weights files, through the
 * public API only.
 *
 * The built-in callbacks (runtime/train/callbacks.c) are checked against Keras
 * 2.15's behaviour with exact expectations: a user callback placed before a
 * built-in writes scripted values into the epoch logs (callbacks run in
 * order, so the built-in sees them), which makes EarlyStopping's stopping
 * epoch, ReduceLROnPlateau's rate sequence and ModelCheckpoint's messages
 * exact.  Printed messages are captured from stdout/stderr and compared
 * byte for byte with Keras' texts.  Some hooks are also called directly
 * (cb.on_epoch_end(cb.user, m, …)), which needs no training.
 *
 * The training model is a Dense softmax on a small synthetic data set (its
 * step is compiled once and cached); weights files (runtime/io/safetensors.c)
 * are checked for a bit-identical round trip, the exact layout, and clear
 * errors naming the file for wrong shapes, missing and extra tensors and
 * hostile files (corrupt, truncated, overlapping, byte-flipped).
 *
 * Every file is written in a fresh mkdtemp() folder, removed at the end.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <dirent.h>
#include <nncc.h>

/* ---- Fixtures ------------------------------------------------------------ */

/* The fixture: a fresh folder for the files of the whole run (cmocka's
 * group state), removed at the end. */
static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int setup_dir(void **state)
{
    char *dir = malloc(64);
    if (!dir)
        return -1;
    snprintf(dir, 64, "/tmp/nncc-test-callbacks-XXXXXX");
    if (!mkdtemp(dir)) {
        free(dir);
        return -1;
    }
    *state = dir;
    return 0;
}

static int teardown_dir(void **state)
{
    int r = nftw(*state, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(*state);
    return r;
}

static char *in_dir(const char *tmpdir, const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", tmpdir, name);
    return buf;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* A whole file, NUL-terminated (NULL if unreadable); *len gets its size. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t k;
    while (buf && (k = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (cap - n - 1 == 0) {
            char *b = realloc(buf, cap *= 2);
            if (!b)
                free(buf);
            buf = b;
        }
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static void spit(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Captures what is printed on fd 1 or 2 between begin and end. */
struct capture {
    int fd, saved;
    FILE *tmp;
};

static void capture_begin(struct capture *c, int fd)
{
    fflush(stdout);
    fflush(stderr);
    c->fd = fd;
    c->tmp = tmpfile();
    assert_non_null(c->tmp);
    c->saved = dup(fd);
    assert_true(c->saved >= 0);
    assert_true(dup2(fileno(c->tmp), fd) >= 0);
}

static char *capture_end(struct capture *c)
{
    fflush(stdout);
    fflush(stderr);
    dup2(c->saved, c->fd);
    close(c->saved);
    fseek(c->tmp, 0, SEEK_END);
    long n = ftell(c->tmp);
    if (n < 0)
        n = 0;
    rewind(c->tmp);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    s[fread(s, 1, (size_t)n, c->tmp)] = '\0';
    fclose(c->tmp);
    return s;
}

/* Asserts a captured text, showing both on a mismatch. */
#define assert_text(got, want)                                               \
    do {                                                                     \
        if (strcmp((got), (want)) != 0)                                      \
            fail_msg("text differs.\n---- got:\n%s\n---- want:\n%s\n----", \
                     (got), (want));                                         \
    } while (0)

#define assert_starts_with(text, prefix)                                         \
    do {                                                                         \
        if (strncmp((text), (prefix), strlen(prefix)) != 0)                      \
            fail_msg("\"%s\" does not start with \"%s\"", (text), (prefix));     \
    } while (0)

#define assert_contains(hay, needle)                                                   \
    do {                                                                               \
        if (!strstr((hay), (needle)))                                                  \
            fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));             \
    } while (0)

/* Input(4) → Dense(3, softmax), SGD(lr), categorical cross-entropy, accuracy. */
static nncc_model *softmax_model(float lr)
{
    nncc_graph *g = nncc_graph_new();
    nncc_graph_set_seed(g, 7);
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(4));
    nncc_tensor *y = nncc_dense(x, .units = 3, .activation = NNCC_SOFTMAX);
    nncc_model *m = nncc_model_new(x, y);
    assert_non_null(m);
    assert_int_equal(nncc_compile(m, .optimizer = nncc_sgd(.learning_rate = lr),
                                  .loss = NNCC_CATEGORICAL_CROSSENTROPY, .metrics = NNCC_ACCURACY),
                     NNCC_OK);
    return m;
}

/* 40 samples of 4 features, 3 classes, one-hot. */
struct dataset {
    struct nncc_array *x, *y;
};

static struct dataset make_data(int n)
{
    struct dataset d = {nncc_array_new(NNCC_SHAPE(n, 4)), nncc_array_new(NNCC_SHAPE(n, 3))};
    assert_non_null(d.x);
    assert_non_null(d.y);
    for (int i = 0; i < n; i++) {
        int c = (i * 5 + 1) % 3;
        for (int j = 0; j < 4; j++)
            d.x->data[i * 4 + j] = (float)(j == c) + 0.1f * (float)((i * 7 + j * 3) % 5);
        d.y->data[i * 3 + c] = 1;
    }
    return d;
}

static void free_data(struct dataset *d)
{
    nncc_array_free(d->x);
    nncc_array_free(d->y);
}

/* Every weight of a model, concatenated (malloc'd); *n gets the count. */
static float *all_weights(const nncc_model *m, size_t *n)
{
    size_t total = 0;
    for (int i = 0; i < nncc_model_num_layers(m); i++) {
        nncc_layer *l = nncc_model_layer(m, i);
        for (int k = 0; k < nncc_layer_num_weights(l); k++) {
            struct nncc_shape s = nncc_layer_weight_shape(l, k);
            int64_t c = 1;
            for (int d = 0; d < s.rank; d++)
                c *= s.dim[d];
            total += (size_t)c;
        }
    }
    float *v = malloc(sizeof *v * (total + 1));
    assert_non_null(v);
    size_t at = 0;
    for (int i = 0; i < nncc_model_num_layers(m); i++) {
        nncc_layer *l = nncc_model_layer(m, i);
        for (int k = 0; k < nncc_layer_num_weights(l); k++) {
            struct nncc_shape s = nncc_layer_weight_shape(l, k);
            int64_t c = 1;
            for (int d = 0; d < s.rank; d++)
                c *= s.dim[d];
            assert_int_equal(nncc_get_weights(l, k, v + at, c), NNCC_OK);
            at += (size_t)c;
        }
    }
    *n = total;
    return v;
}

/* ---- A recording, scripting user callback -------------------------------- */

#define MAX_EPOCHS 16

struct recorder {
    char events[8192];
    size_t len;
    const char *key;                /* scripted on_epoch_end value, if set */
    double script[MAX_EPOCHS];
    int stop_epoch, stop_batch;     /* stop in on_train_batch_end there (-1: never) */
    int lr_epoch;                   /* set lr_value in on_epoch_begin there (-1: never) */
    float lr_value;
    float *weights[MAX_EPOCHS];     /* the weights at each epoch end */
    size_t n_weights;
    double batch_loss[64];          /* loss at each batch end of epoch 0 */
    int n_batches;
    int destroyed;
    bool logs_ok;                   /* every hook saw the logs it should */
    struct nncc_logs train_end_logs, last_epoch_logs;
};

static void rec_add(struct recorder *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    r->len += (size_t)vsnprintf(r->events + r->len, sizeof r->events - r->len, fmt, ap);
    va_end(ap);
    if (r->len >= sizeof r->events)
        r->len = sizeof r->events - 1;
}

static void rec_train_begin(void *u, nncc_model *m, const struct nncc_logs *logs)
{
    (void)m;
    struct recorder *r = u;
    r->logs_ok &= logs && logs->n == 0;
    rec_add(r, "train_begin;");
}

static void rec_train_end(void *u, nncc_model *m, const struct nncc_logs *logs)
{
    (void)m;
    struct recorder *r = u;
    r->train_end_logs = *logs;
    rec_add(r, "train_end;");
}

static void rec_epoch_begin(void *u, nncc_model *m, int epoch, const struct nncc_logs *logs)
{
    struct recorder *r = u;
    r->logs_ok &= logs && logs->n == 0;
    if (epoch == r->lr_epoch)
        assert_int_equal(nncc_set_learning_rate(m, r->lr_value), NNCC_OK);
    rec_add(r, "epoch_begin %d;", epoch);
}

static void rec_epoch_end(void *u, nncc_model *m, int epoch, struct nncc_logs *logs)
{
    struct recorder *r = u;
    r->logs_ok &= !isnan(nncc_logs_get(logs, "loss"));
    if (r->key && epoch < MAX_EPOCHS)
        assert_int_equal(nncc_logs_set(logs, r->key, r->script[epoch]), NNCC_OK);
    if (epoch < MAX_EPOCHS) {
        free(r->weights[epoch]);
        r->weights[epoch] = all_weights(m, &r->n_weights);
    }
    r->last_epoch_logs = *logs;
    rec_add(r, "epoch_end %d;", epoch);
}

static void rec_batch_begin(void *u, nncc_model *m, int batch, const struct nncc_logs *logs)
{
    (void)m;
    struct recorder *r = u;
    r->logs_ok &= logs && logs->n == 0;
    rec_add(r, "batch_begin %d;", batch);
}

static int rec_epoch_now(const struct recorder *r)
{
    /* the epoch in progress: the number of "epoch_begin" events minus 1 */
    int n = -1;
    for (const char *p = r->events; (p = strstr(p, "epoch_begin")); p++)
        n++;
    return n;
}

static void rec_batch_end(void *u, nncc_model *m, int batch, const struct nncc_logs *logs)
{
    struct recorder *r = u;
    r->logs_ok &= !isnan(nncc_logs_get(logs, "loss"));
    if (rec_epoch_now(r) == 0 && batch < 64) {
        r->batch_loss[batch] = nncc_logs_get(logs, "loss");
        r->n_batches = batch + 1;
    }
    rec_add(r, "batch_end %d;", batch);
    if (rec_epoch_now(r) == r->stop_epoch && batch == r->stop_batch)
        nncc_model_stop_training(m);
}

static void rec_destroy(void *u) { ((struct recorder *)u)->destroyed++; }

static struct recorder *recorder_new(void)
{
    struct recorder *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->stop_epoch = r->stop_batch = r->lr_epoch = -1;
    r->logs_ok = true;
    return r;
}

static void recorder_free(struct recorder *r)
{
    for (int i = 0; i < MAX_EPOCHS; i++)
        free(r->weights[i]);
    free(r);
}

static struct nncc_callback recorder_cb(struct recorder *r)
{
    return (struct nncc_callback){
        .user = r,
        .on_train_begin = rec_train_begin,
        .on_train_end = rec_train_end,
        .on_epoch_begin = rec_epoch_begin,
        .on_epoch_end = rec_epoch_end,
        .on_train_batch_begin = rec_batch_begin,
        .on_train_batch_end = rec_batch_end,
        .destroy = rec_destroy,
    };
}

/* A recorder scripting `key` with values (n of them) at each epoch end. */
static struct recorder *script(const char *key, const double *values, int n)
{
    struct recorder *r = recorder_new();
    r->key = key;
    for (int i = 0; i < n && i < MAX_EPOCHS; i++)
        r->script[i] = values[i];
    return r;
}

/* Fits softmax_model-style models: callbacks cbs[0..n), output captured. */
struct run {
    nncc_history *h;
    char *out, *err;
};

static struct run fit_captured(nncc_model *m, const struct dataset *d, int epochs, int bs,
                               float vsplit, struct nncc_callback *cbs, int n)
{
    struct capture co, ce;
    struct run r;
    capture_begin(&co, 1);
    capture_begin(&ce, 2);
    r.h = nncc_fit(m, d->x, d->y, .epochs = epochs, .batch_size = bs, .validation_split = vsplit,
                   .callbacks = cbs, .n_callbacks = n);
    r.err = capture_end(&ce);
    r.out = capture_end(&co);
    if (!r.h)
        fail_msg("fit failed: %s\nstderr: %s", nncc_last_error(), r.err);
    return r;
}

static void run_free(struct run *r)
{
    nncc_history_free(r->h);
    free(r->out);
    free(r->err);
}

/* ---- Hook order, logs, stop_training, set_learning_rate ------------------ */

static void test_hook_order(void **state)
{
    (void)state;
    nncc_model *m = softmax_model(0.1f);
    struct dataset d = make_data(12); /* 9 train rows at batch 4: 3 batches; 3 validate */
    struct recorder *r = recorder_new();
    struct nncc_callback cb = recorder_cb(r);
    struct run run = fit_captured(m, &d, 2, 4, 0.25f, &cb, 1);
    assert_text(r->events,
                "train_begin;"
                "epoch_begin 0;batch_begin 0;batch_end 0;batch_begin 1;batch_end 1;"
                "batch_begin 2;batch_end 2;epoch_end 0;"
                "epoch_begin 1;batch_begin 0;batch_end 0;batch_begin 1;batch_end 1;"
                "batch_begin 2;batch_end 2;epoch_end 1;"
                "train_end;");
    assert_true(r->logs_ok);
    assert_int_equal(r->destroyed, 1);
    /* epoch logs: loss, metrics, then val_*; train_end gets the last epoch's */
    const struct nncc_logs *l = &r->last_epoch_logs;
    assert_int_equal(l->n, 4);
    assert_string_equal(l->names[0], "loss");
    assert_string_equal(l->names[1], "accuracy");
    assert_string_equal(l->names[2], "val_loss");
    assert_string_equal(l->names[3], "val_accuracy");
    assert_int_equal(r->train_end_logs.n, 4);
    assert_true(r->train_end_logs.values[2] == l->values[2]);
    assert_int_equal(nncc_history_num_epochs(run.h), 2);
    assert_text(run.out, "");
    assert_text(run.err, "");
    run_free(&run);
    recorder_free(r);
    free_data(&d);
    nncc_model_free(m);
}

static void test_stop_in_batch_end(void **state)
{
    (void)state;
    nncc_model *m = softmax_model(0.1f);
    struct dataset d = make_data(12);
    struct recorder *r = recorder_new();
    r->stop_epoch = 1;
    r->stop_batch = 0;
    struct nncc_callback cb = recorder_cb(r);
    struct run run = fit_captured(m, &d, 5, 4, 0, &cb, 1);
    /* fit stops after that batch; on_epoch_end still runs for the cut epoch */
    assert_text(r->events,
                "train_begin;"
                "epoch_begin 0;batch_begin 0;batch_end 0;batch_begin 1;batch_end 1;"
                "batch_begin 2;batch_end 2;epoch_end 0;"
                "epoch_begin 1;batch_begin 0;batch_end 0;epoch_end 1;"
                "train_end;");
    assert_int_equal(nncc_history_num_epochs(run.h), 2);
    assert_int_equal(nncc_history_epoch(run.h, 1), 1);
    run_free(&run);
    recorder_free(r);
    free_data(&d);
    nncc_model_free(m);
}

static void test_set_learning_rate_from_callback(void **state)
{
    (void)state;
    nncc_model *m = softmax_model(0.1f);
    struct dataset d = make_data(12);
    struct recorder *r = recorder_new();
    r->lr_epoch = 1; /* lr 0 from epoch 1 on: the weights stop moving */
    r->lr_value = 0;
    struct nncc_callback cb = recorder_cb(r);
    size_t n0;
    float *w0 = all_weights(m, &n0);
    struct run run = fit_captured(m, &d, 3, 4, 0, &cb, 1);
    assert_true(nncc_get_learning_rate(m) == 0);
    assert_int_equal(r->n_weights, n0);
    assert_true(memcmp(w0, r->weights[0], n0 * sizeof *w0) != 0); /* lr 0.1 moved them */
    assert_memory_equal(r->weights[0], r->weights[1], n0 * sizeof *w0);
    assert_memory_equal(r->weights[0], r->weights[2], n0 * sizeof *w0);
    free(w0);
    run_free(&run);
    recorder_free(r);
    free_data(&d);
    nncc_model_free(m);
}

/* ---- EarlyStopping ------------------------------------------------------- */

/* Fits with [recorder scripting `key`, EarlyStopping(o)]; returns epochs run. */
static int es_epochs(const char *key, const double *v, int epochs,
                     struct nncc_early_stopping_opts o, char **out, char **err)
{
    nncc_model *m = softmax_model(0.1f);
    struct dataset d = make_data(12);
    struct recorder *r = script(key, v, epochs);
    struct nncc_callback cbs[2] = {recorder_cb(r), nncc_early_stopping_(o)};
    struct run run = fit_captured(m, &d, epochs, 4, 0.25f, cbs, 2);
    int n = nncc_history_num_epochs(run.h);
    if (out)
        *out = run.out, run.out = NULL;
    if (err)
        *err = run.err, run.err = NULL;
    run_free(&run);
    recorder_free(r);
    free_data(&d);
    nncc_model_free(m);
    return n;
}

static void test_early_stopping(void **state)
{
    (void)state;
    char *out, *err;
    /* wait counts non-improving epochs; stop when wait >= patience */
    const double a[] = {1.0, 0.9, 0.95, 0.92, 0.91, 0.5, 0.4, 0.3};
    assert_int_equal(es_epochs("val_loss", a, 8,
                               (struct nncc_early_stopping_opts){.patience = 2, .verbose = 1},
                               &out, &err),
                     4);
    assert_text(out, "Epoch 4: early stopping\n");
    assert_text(err, "");
    free(out), free(err);
    /* patience 0: the first epoch > 0 without improvement */
    assert_int_equal(es_epochs("val_loss", a, 8, (struct nncc_early_stopping_opts){0}, NULL, NULL),
                     3);
    /* never at epoch 0: a NaN there does not improve on inf, yet training goes on */
    const double n0[] = {NAN, 1.0, 2.0, 0.5};
    assert_int_equal(es_epochs("val_loss", n0, 4, (struct nncc_early_stopping_opts){0}, NULL, NULL),
                     3);
    /* min_delta: 0.95 is not better than 1.0 by 0.1 (sign of min_delta ignored) */
    const double b[] = {1.0, 0.95, 0.93, 0.2, 0.1};
    assert_int_equal(es_epochs("val_loss", b, 5,
                               (struct nncc_early_stopping_opts){.min_delta = -0.1f, .patience = 1},
                               NULL, NULL),
                     2);
    /* auto mode maximises names ending in acc/accuracy/auc */
    const double c[] = {0.5, 0.6, 0.55, 0.58, 0.9};
    assert_int_equal(es_epochs("val_my_auc", c, 5,
                               (struct nncc_early_stopping_opts){.monitor = "val_my_auc",
                                                                 .patience = 2},
                               NULL, NULL),
                     4);
    assert_int_equal(es_epochs("score", c, 5,
                               (struct nncc_early_stopping_opts){.monitor = "score",
                                                                 .mode = NNCC_MODE_MAX,
                                                                 .patience = 2},
                               NULL, NULL),
                     4);
    /* min mode on the same values: 0.6 > 0.5 does not improve, stops at epoch 1 */
    assert_int_equal(es_epochs("score", c, 5,
                               (struct nncc_early_stopping_opts){.monitor = "score",
                                                                 .patience = 1},
                               NULL, NULL),
                     2);
    /* start_from_epoch: epochs before it are not monitored */
    const double e[] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6};
    assert_int_equal(es_epochs("val_loss", e, 6,
                               (struct nncc_early_stopping_opts){.patience = 1,
                                                                 .start_from_epoch = 3},
                               NULL, NULL),
                     5);
    /* a missing monitor warns once (Keras' text) and never stops */
    assert_int_equal(es_epochs(NULL, a, 3,
                               (struct nncc_early_stopping_opts){.monitor = "val_nope"}, &out,
                               &err),
                     3);
    assert_text(out, "");
    assert_text(err, "WARNING:nncc:Early stopping conditioned on metric `val_nope` which is not "
                     "available. Available metrics are: loss,accuracy,val_loss,val_accuracy\n");
    free(out), free(err);
}

static void test_early_stopping_restore(void **state)
{
    (void)state;
    const double v[] = {0.5, 0.3, 0.4, 0.45, 0.35, 0.2};
    for (int stop = 0; stop < 2; stop++) {
        nncc_model *m = softmax_model(0.1f);
        struct dataset d = make_data(12);
        struct recorder *r = script("val_loss", v, 6);
        struct nncc_callback cbs[2] = {
            recorder_cb(r),
            nncc_early_stopping(.patience = stop ? 2 : 10, .restore_best_weights = true,
                                .verbose = 1),
        };
        struct run run = fit_captured(m, &d, stop ? 6 : 4, 4, 0, cbs, 2);
        size_t n;
        float *w = all_weights(m, &n);
        if (stop) {
            /* stops at epoch 3 (wait 2) and restores epoch 1's weights */
            assert_int_equal(nncc_history_num_epochs(run.h), 4);
            assert_memory_equal(w, r->weights[1], n * sizeof *w);
            assert_true(memcmp(w, r->weights[3], n * sizeof *w) != 0);
            assert_text(run.out, "Restoring model weights from the end of the best epoch: 2.\n"
                                 "Epoch 4: early stopping\n");
        } else {
            /* Keras 2.15 restores only when it stopped: the last weights stay */
            assert_int_equal(nncc_history_num_epochs(run.h), 4);
            assert_memory_equal(w, r->weights[3], n * sizeof *w);
            assert_true(memcmp(w, r->weights[1], n * sizeof *w) != 0);
            assert_text(run.out, "");
        }
        free(w);
        run_free(&run);
        recorder_free(r);
        free_data(&d);
        nncc_model_free(m);
    }
}

/* ---- ModelCheckpoint ------------------------------------------------------ */

static void test_checkpoint_every_epoch(void **state)
{
    const char *tmpdir = *state;
    nncc_model *m = softmax_model(0.1f);
    struct dataset d = make_data(12);
    const double v[] = {0.41, 0.386, 0.5};
    struct recorder *r = script("val_loss", v, 3);
    char fmt[512], want[2048], p1[512], p2[512], p3[512];
    snprintf(fmt, sizeof fmt, "%s/sub/dir/w.{epoch:02d}-{val_loss:.2f}.safetensors", tmpdir);
    struct nncc_callback cbs[2] = {recorder_cb(r),
                                   nncc_model_checkpoint(.filepath = fmt, .verbose = 1)};
    struct run run = fit_captured(m, &d, 3, 4, 0.25f, cbs, 2);
    in_dir(tmpdir, "sub/dir/w.01-0.41.safetensors", p1, sizeof p1);
    in_dir(tmpdir, "sub/dir/w.02-0.39.safetensors", p2, sizeof p2);
    in_dir(tmpdir, "sub/dir/w.03-0.50.safetensors", p3, sizeof p3);
    snprintf(want, sizeof want,
             "\nEpoch 1: saving model to %s\n\nEpoch 2: saving model to %s\n"
             "\nEpoch 3: saving model to %s\n",
             p1, p2, p3);
    assert_text(run.out, want);
    assert_text(run.err, "");
    assert_true(exists(p1) && exists(p2) && exists(p3));
    /* each file holds that epoch's weights */
    nncc_model *other = softmax_model(0.1f);
    assert_int_equal(nncc_load_weights(other, p2), NNCC_OK);
    size_t n;
    float *w = all_weights(other, &n);
    assert_memory_equal(w, r->weights[1], n * sizeof *w);
    free(w);
    nncc_model_free(other);
    run_free(&run);
    recorder_free(r);
    free_data(&d);
    nncc_model_free(m);
}

static void test_checkpoint_best_only(void **state)
{
    const char *tmpdir = *state;
    nncc_model *m = softmax_model(0.1f);
    struct dataset d = make_data(12);
    const double v[] = {0.41, 0.39, 0.39, 0.5, 0.2};
    struct recorder *r = script("val_loss", v, 5);
    char fmt[512], want[4096], p[5][512];
    snprintf(fmt, sizeof fmt, "%s/best-{epoch}.st", tmpdir);
    for (int i = 0; i < 5; i++)
        snprintf(p[i], sizeof p[i], "%s/best-%d.st", tmpdir, i + 1);
    struct nncc_callback cbs[2] = {
        recorder_cb(r), nncc_model_checkpoint(.filepath = fmt, .save_best_only = true, .verbose = 1)};
    struct run run = fit_captured(m, &d, 5, 4, 0.25f, cbs, 2);
    snprintf(want, sizeof want,
             "\nEpoch 1: val_loss improved from inf to 0.41000, saving model to %s\n"
             "\nEpoch 2: val_loss improved from 0.41000 to 0.39000, saving model to %s\n"
             "\nEpoch 3: val_loss did not improve from 0.39000\n"
             "\nEpoch 4: val_loss did not improve from 0.39000\n"
             "\nEpoch 5: val_loss improved from 0.39000 to 0.20000, saving model to %s\n",
             p[0], p[1], p[4]);
    assert_text(run.out, want);
    assert_true(exists(p[0]) && exists(p[1]) && exists(p[4]));
    assert_false(exists(p[2]) || exists(p[3]));
    run_free(&run);
    recorder_free(r);

    /* auto mode maximises names containing "acc"; -inf to start */
    const double a[] = {0.5, 0.7, 0.6};
    r = script("val_accuracy", a, 3);
    snprintf(fmt, sizeof fmt, "%s/acc.st", tmpdir);
    cbs[0] = recorder_cb(r);
    cbs[1] = nncc_model_checkpoint(.filepath = fmt, .monitor = "val_accuracy",
                                   .save_best_only = true, .verbose = 1);
    run = fit_captured(m, &d, 3, 4, 0.25f, cbs, 2);
    snprintf(want, sizeof want,
             "\nEpoch 1: val_accuracy improved from -inf to 0.50000, saving model to %s\n"
             "\nEpoch 2: val_accuracy improved from 0.50000 to 0.70000, saving model to %s\n"
             "\nEpoch 3: val_accuracy did not improve from 0.70000\n",
             fmt, fmt);
    assert_text(run.out, want);
    run_free(&run);
    recorder_free(r);

    /* save_best_only without the monitor: Keras' warning, once; nothing saved */
    snprintf(fmt, sizeof fmt, "%s/never.st", tmpdir);
    struct nncc_callback ck = nncc_model_checkpoint(.filepath = fmt, .save_best_only = true);
    run = fit_captured(m, &d, 2, 4, 0, &ck, 1);
    assert_text(run.err, "WARNING:nncc:Can save best model only with val_loss available, "
                         "skipping.\n");
    assert_false(exists(fmt));
    run_free(&run);
    free_data(&d);
    nncc_model_free(m);
}

/* Calls a checkpoint's hooks directly for epoch index `epoch` with logs;
 * returns the hook's status (nncc_last_status) and stderr. */
static enum nncc_status checkpoint_once(nncc_model *m, const char *fmt, int epoch,
                                        const struct nncc_logs *logs, char **err)
{
    struct nncc_callback cb = nncc_model_checkpoint(.filepath = fmt);
    struct nncc_logs l = *logs, empty = {0};
    struct capture ce;
    nncc_clear_error();
    capture_begin(&ce, 2);
    cb.on_train_begin(cb.user, m, &empty);
    cb.on_epoch_end(cb.user, m, epoch, &l);
    *err = capture_end(&ce);
    cb.destroy(cb.user);
    return nncc_last_status();
}

static void test_checkpoint_path_format(void **state)
{
    const char *tmpdir = *state;
    nncc_model *m = softmax_model(0.1f);
    struct nncc_logs logs = {0};
    nncc_logs_set(&logs, "loss", 0.123456);
    nncc_logs_set(&logs, "val_loss", 1e-05);
    nncc_logs_set(&logs, "accuracy", 1234567.0);
    char fmt[512], want[512], *err;
    /* Python's str.format: {name}, {name:0Nd}, {name:.Nf}, {name:.Ne}, repr, {{ }} */
    snprintf(fmt, sizeof fmt,
             "%s/{epoch}_{epoch:03d}_{epoch:4}_{loss:.3f}_{loss:.2e}_{loss}_{val_loss}_"
             "{accuracy}_{loss:08.3f}_{loss:g}_{{x}}.st",
             tmpdir);
    assert_int_equal(checkpoint_once(m, fmt, 4, &logs, &err), NNCC_OK);
    assert_text(err, "");
    free(err);
    snprintf(want, sizeof want,
             "%s/5_005_   5_0.123_1.23e-01_0.123456_1e-05_1234567.0_0000.123_0.123456_{x}.st",
             tmpdir);
    assert_true(exists(want));

    /* malformed fields and unknown names: an error naming the path, no crash */
    static const struct {
        const char *fmt, *says;
    } bad[] = {
        {"w{nope}.st", "no log named \"nope\" (available: epoch,loss,val_loss,accuracy)"},
        {"w{epoch:02q}.st", "unsupported format spec"},
        {"w{epoch", "unterminated field"},
        {"w{epoch:02d", "unterminated field"},
        {"w}x", "a single '}'"},
        {"w{loss:02d}", "format code 'd' for a float value"},
        {"w{}", "positional fields"},
        {"w{loss!r}", "conversion"},
        {"w{loss:{epoch}}", "nested field"},
        {"w{epoch:.2d}", "precision for an integer"},
        {"w{loss:.}", "precision without digits"},
        {"w{loss:9999}", "width over 256"},
        {"w{loss:.999f}", "precision over 100"},
        {"w{a_very_long_name_that_is_not_a_log_at_all_and_goes_on_and_on}", "no log named"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(fmt, sizeof fmt, "%s/%s", tmpdir, bad[i].fmt);
        assert_int_equal(checkpoint_once(m, fmt, 0, &logs, &err), NNCC_ERR_ARG);
        assert_contains(nncc_last_error(), bad[i].says);
        assert_contains(nncc_last_error(), bad[i].fmt);
        assert_contains(err, bad[i].says);
        free(err);
    }
    /* a path that grows past the limit is an error, not an overflow */
    size_t k = (size_t)snprintf(fmt, sizeof fmt, "%s/", tmpdir);
    for (int i = 0; i < 20; i++)
        k += (size_t)snprintf(fmt + k, sizeof fmt - k, "{epoch:0250d}");
    assert_int_equal(checkpoint_once(m, fmt, 0, &logs, &err), NNCC_ERR_ARG);
    assert_contains(nncc_last_error(), "longer than 4095 bytes");
    free(err);
    nncc_model_free(m);
}

static void test_checkpoint_unwritable(void **state)
{
    const char *tmpdir = *state;
    nncc_model *m = softmax_model(0.1f);
    struct dataset d = make_data(12);
    char file[400], path[512];
    in_dir(tmpdir, "plain-file", file, sizeof file);
    spit(file, "x", 1);
    snprintf(path, sizeof path, "%s/w.st", file); /* a folder that is a file */
    struct nncc_callback ck = nncc_model_checkpoint(.filepath = path);
    struct run run = fit_captured(m, &d, 3, 4, 0, &ck, 1);
    /* the failure stops training after the epoch; the message names the file */
    assert_int_equal(nncc_history_num_epochs(run.h), 1);
    assert_contains(run.err, path);
    assert_contains(nncc_last_error(), path);
    assert_int_equal(nncc_last_status(), NNCC_ERR_IO);
    run_free(&run);
    free_data(&d);
    nncc_model_free(m);
}

/* ---- TerminateOnNaN -------------------------------------------------------- */

static void test_terminate_on_nan(void **state)
{
    (void)state;
    /* Directly: a NaN or an infinite batch loss stops training. */
    struct nncc_callback cb = nncc_terminate_on_nan();
    struct nncc_logs logs = {0};
    struct capture co;
    capture_begin(&co, 1);
    nncc_logs_set(&logs, "loss", 0.5);
    cb.on_train_batch_end(cb.user, NULL, 3, &logs);
    nncc_logs_set(&logs, "loss", NAN);
    cb.on_train_batch_end(cb.user, NULL, 7, &logs);
    nncc_logs_set(&logs, "loss", -INFINITY);
    cb.on_train_batch_end(cb.user, NULL, 8, &logs);
    char *out = capture_end(&co);
    assert_text(out, "Batch 7: Invalid loss, terminating training\n"
                     "Batch 8: Invalid loss, terminating training\n");
    free(out);
    if (cb.destroy)
        cb.destroy(cb.user);

    /* In fit: a linear model with a huge SGD rate on MSE diverges to inf/NaN. */
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(4));
    nncc_model *m = nncc_model_new(x, nncc_dense(x, .units = 1));
    assert_non_null(m);
    assert_int_equal(nncc_compile(m, .optimizer = nncc_sgd(.learning_rate = 1e6f),
                                  .loss = NNCC_MEAN_SQUARED_ERROR),
                     NNCC_OK);
    struct dataset d = {nncc_array_new(NNCC_SHAPE(64, 4)), nncc_array_new(NNCC_SHAPE(64, 1))};
    for (int i = 0; i < 64 * 4; i++)
        d.x->data[i] = (float)(i % 7) + 1;
    for (int i = 0; i < 64; i++)
        d.y->data[i] = (float)(i % 3);
    struct recorder *r = recorder_new();
    struct nncc_callback cbs[2] = {recorder_cb(r), nncc_terminate_on_nan()};
    struct run run = fit_captured(m, &d, 5, 2, 0, cbs, 2);
    int first_bad = -1;
    for (int b = 0; b < r->n_batches && first_bad < 0; b++)
        if (!isfinite(r->batch_loss[b]))
            first_bad = b;
    assert_true(first_bad > 0);
    assert_int_equal(r->n_batches, first_bad + 1); /* no batch after it */
    char want[128];
    snprintf(want, sizeof want, "Batch %d: Invalid loss, terminating training\n", first_bad);
    assert_text(run.out, want);
    assert_int_equal(nncc_history_num_epochs(run.h), 1); /* on_epoch_end still ran */
    run_free(&run);
    recorder_free(r);
    free_data(&d);
    nncc_model_free(m);
}

/* ---- ReduceLROnPlateau ------------------------------------------------------ */

static void test_reduce_lr(void **state)
{
    (void)state;
    nncc_model *m = softmax_model(0.1f);
    struct dataset d = make_data(12);
    const double v[] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    struct recorder *r = script("val_loss", v, 9);
    struct nncc_callback cbs[2] = {
        recorder_cb(r), nncc_reduce_lr_on_plateau(.factor = 0.5f, .patience = 2, .cooldown = 2,
                                                  .min_lr = 0.02f, .verbose = 1)};
    struct run run = fit_captured(m, &d, 9, 4, 0.25f, cbs, 2);
    /* "lr" is logged before the epoch's reduction; values as Keras logs float32.
     * After a reduction, `cooldown` epochs count no waiting. */
    const double want_lr[] = {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025};
    bool has_lr = false;
    for (int k = 0; k < nncc_history_num_keys(run.h); k++)
        has_lr |= strcmp(nncc_history_key(run.h, k), "lr") == 0;
    assert_true(has_lr);
    for (int e = 0; e < 9; e++)
        if (nncc_history_get(run.h, "lr", e) != want_lr[e])
            fail_msg("epoch %d: lr %.17g, want %.17g", e, nncc_history_get(run.h, "lr", e),
                     want_lr[e]);
    assert_true(nncc_get_learning_rate(m) == 0.02f);
    /* float32(lr) · factor in double, printed as Python's repr */
    assert_text(run.out,
                "\nEpoch 3: ReduceLROnPlateau reducing learning rate to 0.05000000074505806.\n"
                "\nEpoch 6: ReduceLROnPlateau reducing learning rate to 0.02500000037252903.\n"
                "\nEpoch 9: ReduceLROnPlateau reducing learning rate to 0.02.\n");
    run_free(&run);
    recorder_free(r);

    /* Keras' own texts for 0.001 and 0.01 with the default factor 0.1 */
    static const struct {
        float lr;
        const char *says;
    } cases[] = {
        {0.001f, "\nEpoch 2: ReduceLROnPlateau reducing learning rate to 0.00010000000474974513.\n"},
        {0.01f, "\nEpoch 2: ReduceLROnPlateau reducing learning rate to 0.0009999999776482583.\n"},
    };
    for (int i = 0; i < 2; i++) {
        assert_int_equal(nncc_set_learning_rate(m, cases[i].lr), NNCC_OK);
        struct nncc_callback cb = nncc_reduce_lr_on_plateau(.patience = 1, .verbose = 1);
        struct nncc_logs logs = {0}, empty = {0};
        nncc_logs_set(&logs, "val_loss", 1.0);
        struct capture co;
        capture_begin(&co, 1);
        cb.on_train_begin(cb.user, m, &empty);
        cb.on_epoch_end(cb.user, m, 0, &logs);
        cb.on_epoch_end(cb.user, m, 1, &logs);
        char *out = capture_end(&co);
        assert_text(out, cases[i].says);
        assert_true(nncc_logs_get(&logs, "lr") == (i ? 0.01 : 0.001));
        free(out);
        cb.destroy(cb.user);
    }

    /* a missing monitor: Keras' warning (the keys include "lr"), once */
    struct nncc_callback rl = nncc_reduce_lr_on_plateau(.monitor = "val_nope");
    run = fit_captured(m, &d, 2, 4, 0, &rl, 1);
    assert_text(run.err, "WARNING:nncc:Learning rate reduction is conditioned on metric "
                         "`val_nope` which is not available. Available metrics are: "
                         "loss,accuracy,lr\n");
    run_free(&run);
    free_data(&d);
    nncc_model_free(m);
}

/* ---- CSVLogger ---------------------------------------------------------------- */

static void test_csv_logger(void **state)
{
    const char *tmpdir = *state;
    nncc_model *m = softmax_model(0.1f);
    struct dataset d = make_data(12);
    char path[512];
    in_dir(tmpdir, "log.csv", path, sizeof path);

    /* values as Python's str(float): scripted so the text is exact */
    struct recorder *r = recorder_new();
    const double losses[] = {0.1, 1e-05, 1e16, 123.0, -0.0001, NAN};
    r->key = "loss";
    for (int i = 0; i < 6; i++)
        r->script[i] = losses[i];
    struct nncc_callback cbs[2] = {recorder_cb(r), nncc_csv_logger(.filename = path)};
    struct run run = fit_captured(m, &d, 6, 4, 0.25f, cbs, 2);
    char *text = slurp(path, NULL);
    assert_non_null(text);
    /* header: epoch + sorted keys; rows 0-based; CRLF like Python's csv */
    assert_starts_with(text, "epoch,accuracy,loss,val_accuracy,val_loss\r\n0,");
    const char *reprs[] = {"0.1", "1e-05", "1e+16", "123.0", "-0.0001", "nan"};
    const char *line = text;
    for (int e = 0; e < 6; e++) {
        line = strstr(line, "\r\n");
        assert_non_null(line);
        line += 2;
        /* the scripted loss as Python writes it; the other columns read
         * back as the History's values exactly (shortest round trip) */
        int epoch = -1;
        double fa, fva, fvl;
        char floss[64];
        assert_int_equal(sscanf(line, "%d,%lf,%63[^,],%lf,%lf", &epoch, &fa, floss, &fva, &fvl),
                         5);
        assert_int_equal(epoch, e);
        assert_string_equal(floss, reprs[e]);
        assert_true(fa == nncc_history_get(run.h, "accuracy", e));
        assert_true(fva == nncc_history_get(run.h, "val_accuracy", e));
        assert_true(fvl == nncc_history_get(run.h, "val_loss", e));
    }
    assert_string_equal(strstr(line, "\r\n"), "\r\n"); /* nothing after the last row */
    free(text);
    run_free(&run);
    recorder_free(r);

    /* shortest repr: a value like 0.30000000000000004 keeps its digits */
    r = recorder_new();
    r->key = "val_loss";
    r->script[0] = 0.1 + 0.2;
    cbs[0] = recorder_cb(r);
    cbs[1] = nncc_csv_logger(.filename = path, .separator = ';');
    run = fit_captured(m, &d, 1, 4, 0.25f, cbs, 2);
    text = slurp(path, NULL);
    assert_non_null(text);
    assert_starts_with(text, "epoch;accuracy;loss;val_accuracy;val_loss\r\n0;");
    assert_non_null(strstr(text, ";0.30000000000000004\r\n"));
    free(text);
    run_free(&run);
    recorder_free(r);

    /* no validation: placeholder val_* columns hold NA; append keeps one header */
    in_dir(tmpdir, "append.csv", path, sizeof path);
    for (int rep = 0; rep < 2; rep++) {
        struct nncc_callback cb = nncc_csv_logger(.filename = path, .append = true);
        run = fit_captured(m, &d, 2, 4, 0, &cb, 1);
        run_free(&run);
    }
    text = slurp(path, NULL);
    assert_non_null(text);
    int headers = 0, nas = 0, lines = 0;
    for (const char *p = text; (p = strstr(p, "epoch,")); p++)
        headers++;
    for (const char *p = text; (p = strstr(p, ",NA")); p++)
        nas++;
    for (const char *p = text; (p = strstr(p, "\r\n")); p++)
        lines++;
    assert_starts_with(text, "epoch,accuracy,loss,val_accuracy,val_loss\r\n0,");
    assert_int_equal(headers, 1);
    assert_int_equal(lines, 5);
    assert_int_equal(nas, 8);
    assert_non_null(strstr(text, ",NA,NA\r\n1,"));
    free(text);
    /* without append the file is replaced */
    struct nncc_callback cb = nncc_csv_logger(.filename = path);
    run = fit_captured(m, &d, 1, 4, 0, &cb, 1);
    run_free(&run);
    text = slurp(path, NULL);
    lines = 0;
    for (const char *p = text; (p = strstr(p, "\r\n")); p++)
        lines++;
    assert_int_equal(lines, 2);
    free(text);

    /* csv.QUOTE_MINIMAL: a field holding the separator is quoted */
    cb = nncc_csv_logger(.filename = path, .separator = '_');
    run = fit_captured(m, &d, 1, 4, 0.25f, &cb, 1);
    run_free(&run);
    text = slurp(path, NULL);
    assert_starts_with(text, "epoch_accuracy_loss_\"val_accuracy\"_\"val_loss\"\r\n0_");
    free(text);

    /* an unopenable file stops training with a message naming it */
    in_dir(tmpdir, "no/such/dir/log.csv", path, sizeof path);
    cb = nncc_csv_logger(.filename = path);
    run = fit_captured(m, &d, 3, 4, 0, &cb, 1);
    assert_int_equal(nncc_history_num_epochs(run.h), 1); /* stops after its first batch */
    assert_contains(run.err, path);
    assert_int_equal(nncc_last_status(), NNCC_ERR_IO);
    run_free(&run);
    free_data(&d);
    nncc_model_free(m);
}

/* ---- Bad options ------------------------------------------------------------ */

static void test_bad_options(void **state)
{
    (void)state;
    nncc_model *m = softmax_model(0.1f);
    struct dataset d = make_data(12);
    struct {
        struct nncc_callback cb;
        const char *says;
    } bad[6];
    nncc_clear_error();
    bad[0].cb = nncc_early_stopping(.patience = -1);
    bad[0].says = "EarlyStopping: patience must not be negative, got -1";
    assert_int_equal(nncc_last_status(), NNCC_ERR_ARG);
    bad[1].cb = nncc_reduce_lr_on_plateau(.factor = 1.0f);
    bad[1].says = "ReduceLROnPlateau does not support a factor >= 1.0";
    bad[2].cb = nncc_reduce_lr_on_plateau(.patience = -3);
    bad[2].says = "patience and cooldown must not be negative";
    bad[3].cb = nncc_model_checkpoint(.filepath = NULL);
    bad[3].says = "ModelCheckpoint: filepath is NULL";
    bad[4].cb = nncc_csv_logger(.filename = NULL);
    bad[4].says = "CSVLogger: filename is NULL";
    bad[5].cb = nncc_early_stopping(.start_from_epoch = -2);
    bad[5].says = "start_from_epoch must not be negative";
    for (int i = 0; i < 6; i++) {
        /* reported at train begin: training stops after its first batch
         * (fit checks stop_training only after a batch, as Keras) */
        struct recorder *r = recorder_new();
        struct nncc_callback cbs[2] = {recorder_cb(r), bad[i].cb};
        nncc_clear_error();
        struct run run = fit_captured(m, &d, 3, 4, 0, cbs, 2);
        assert_text(r->events, "train_begin;epoch_begin 0;batch_begin 0;batch_end 0;epoch_end 0;"
                               "train_end;");
        assert_int_equal(nncc_history_num_epochs(run.h), 1);
        assert_int_equal(nncc_last_status(), NNCC_ERR_ARG);
        assert_contains(nncc_last_error(), bad[i].says);
        assert_contains(run.err, bad[i].says);
        run_free(&run);
        recorder_free(r);
    }
    /* an unknown mode falls back to auto with Keras' warning */
    struct capture ce;
    capture_begin(&ce, 2);
    struct nncc_callback es = nncc_early_stopping(.mode = (enum nncc_mode)7);
    char *err = capture_end(&ce);
    assert_text(err, "WARNING:nncc:EarlyStopping mode 7 is unknown, fallback to auto mode.\n");
    free(err);
    es.destroy(es.user);
    free_data(&d);
    nncc_model_free(m);
}

/* ---- Weights files ---------------------------------------------------------- */

/* A small convnet with every kind of weight: conv kernel/bias, batchnorm
 * gamma/beta/moving statistics (non-trainable), dense kernel/bias. */
static nncc_model *convnet(uint64_t seed, int units)
{
    nncc_graph *g = nncc_graph_new();
    nncc_graph_set_seed(g, seed);
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(6, 6, 2));
    nncc_tensor *h = nncc_conv2d(x, .filters = 3, .kernel_size = {3, 3});
    h = nncc_batchnorm(h);
    h = nncc_flatten(h);
    nncc_model *m = nncc_model_new(x, nncc_dense(h, .units = units));
    assert_non_null(m);
    return m;
}

static void test_weights_round_trip(void **state)
{
    const char *tmpdir = *state;
    char path[512];
    in_dir(tmpdir, "net.safetensors", path, sizeof path);
    nncc_model *a = convnet(1, 5), *b = convnet(2, 5);
    /* make the batchnorm statistics non-trivial too */
    nncc_layer *bn = nncc_model_get_layer(a, "batch_normalization");
    assert_non_null(bn);
    float stats[3] = {0.5f, -1.25f, 3.0e-7f};
    assert_int_equal(nncc_set_weights(bn, 3, stats, 3), NNCC_OK);
    size_t na, nb;
    float *wa = all_weights(a, &na), *wb = all_weights(b, &nb);
    assert_int_equal(na, nb);
    assert_true(memcmp(wa, wb, na * sizeof *wa) != 0);
    assert_int_equal(nncc_save_weights(a, path), NNCC_OK);
    assert_int_equal(nncc_save_weights(a, path), NNCC_OK); /* replaces it */
    assert_int_equal(nncc_load_weights(b, path), NNCC_OK);
    free(wb);
    wb = all_weights(b, &nb);
    assert_memory_equal(wa, wb, na * sizeof *wa); /* bit-identical */

    /* the layout: u64 LE length, JSON header padded to 8, raw LE float32 */
    size_t len;
    unsigned char *file = (unsigned char *)slurp(path, &len);
    assert_non_null(file);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)file[i] << (8 * i);
    assert_int_equal((8 + hlen) % 8, 0);
    assert_int_equal(len, 8 + hlen + na * sizeof(float));
    assert_memory_equal(file + 8 + hlen, wa, na * sizeof(float)); /* model order */
    char *header = malloc(hlen + 1);
    memcpy(header, file + 8, hlen);
    header[hlen] = '\0';
    assert_starts_with(header, "{\"__metadata__\":{\"format\":\"nncc-weights\"");
    assert_contains(header, "\"conv2d/kernel\":{\"dtype\":\"F32\",\"shape\":[3,3,2,3],"
                            "\"data_offsets\":[0,216]}");
    assert_contains(header, "\"conv2d/bias\":{\"dtype\":\"F32\",\"shape\":[3],"
                            "\"data_offsets\":[216,228]}");
    assert_contains(header, "\"batch_normalization/moving_variance\"");
    assert_contains(header, "\"dense/kernel\":{\"dtype\":\"F32\",\"shape\":[48,5],");
    free(header);
    free(file);

    /* no temporary file (named net.safetensors.tmp-…) is left next to it */
    DIR *dir = opendir(tmpdir);
    assert_non_null(dir);
    for (struct dirent *e; (e = readdir(dir));)
        if (strstr(e->d_name, ".tmp-"))
            fail_msg("a temporary file remains: %s", e->d_name);
    closedir(dir);
    free(wa);
    free(wb);
    nncc_model_free(a);
    nncc_model_free(b);
}

/* Writes a safetensors file from a header string and n data bytes. */
static void write_st(const char *path, const char *header, const void *data, size_t n)
{
    size_t h = strlen(header);
    unsigned char *buf = malloc(8 + h + n + 1);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, header, h);
    if (n)
        memcpy(buf + 8 + h, data, n);
    spit(path, buf, 8 + h + n);
    free(buf);
}

/* Loads path into m, which must fail with status and a message containing
 * the path and `says`; m's weights must be unchanged. */
static void expect_load_error(nncc_model *m, const char *path, enum nncc_status status,
                              const char *says)
{
    size_t n0, n1;
    float *before = all_weights(m, &n0);
    enum nncc_status st = nncc_load_weights(m, path);
    if (st != status)
        fail_msg("loading %s: status %d (%s), want %d", path, st, nncc_last_error(), status);
    assert_contains(nncc_last_error(), path);
    assert_contains(nncc_last_error(), says);
    float *after = all_weights(m, &n1);
    assert_memory_equal(before, after, n0 * sizeof *before);
    free(before);
    free(after);
}

static void test_weights_errors(void **state)
{
    const char *tmpdir = *state;
    char path[512], other[512];
    in_dir(tmpdir, "dense.safetensors", path, sizeof path);
    nncc_model *m = softmax_model(0.1f); /* dense/kernel (4, 3), dense/bias (3,) */
    assert_int_equal(nncc_save_weights(m, path), NNCC_OK);

    /* a wrong shape */
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(4));
    nncc_model *narrow = nncc_model_new(x, nncc_dense(x, .units = 2));
    expect_load_error(narrow, path, NNCC_ERR_SHAPE,
                      "tensor \"dense/kernel\" has shape (4, 3) in the file but (4, 2) in the model");
    /* a missing tensor: the file lacks dense_1's weights */
    g = nncc_graph_new();
    x = nncc_input(g, NNCC_SHAPE(4));
    nncc_model *deeper = nncc_model_new(x, nncc_dense(nncc_dense(x, .units = 3), .units = 2));
    expect_load_error(deeper, path, NNCC_ERR_FORMAT, "no tensor \"dense_1/kernel\" in the file");
    /* an extra tensor: the file has dense_1's, the model does not */
    in_dir(tmpdir, "deeper.safetensors", other, sizeof other);
    assert_int_equal(nncc_save_weights(deeper, other), NNCC_OK);
    g = nncc_graph_new();
    x = nncc_input(g, NNCC_SHAPE(4));
    nncc_model *single = nncc_model_new(x, nncc_dense(x, .units = 3));
    expect_load_error(single, other, NNCC_ERR_FORMAT,
                      "tensor \"dense_1/kernel\" matches no weight of model");

    /* missing file, not a file, too short, absurd header length */
    in_dir(tmpdir, "nothing-here.safetensors", other, sizeof other);
    expect_load_error(m, other, NNCC_ERR_IO, "cannot open");
    expect_load_error(m, tmpdir, NNCC_ERR_IO, "not a regular file");
    in_dir(tmpdir, "short.safetensors", other, sizeof other);
    spit(other, "\x10\0\0", 3);
    expect_load_error(m, other, NNCC_ERR_FORMAT, "too short for the 8-byte header length");
    spit(other, "\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10);
    expect_load_error(m, other, NNCC_ERR_FORMAT, "header length 9223372036854775807");
    spit(other, "\x08\0\0\0\0\0\0\0{}", 10);
    expect_load_error(m, other, NNCC_ERR_FORMAT, "header length 8 does not fit");

    /* corrupt headers */
    float data[15] = {0};
    static const struct {
        const char *header, *says;
    } bad[] = {
        {"{\"dense/kernel\": {\"dtype\": ", "malformed header"},
        {"[1, 2]", "not a JSON object"},
        {"{\"a\": 1, \"a\": 2}", "malformed header"},
        {"{\"dense/kernel\": 5}", "tensor \"dense/kernel\" is not a JSON object"},
        {"{\"dense/kernel\": {\"dtype\": \"F16\", \"shape\": [4, 3], \"data_offsets\": [0, 24]}}",
         "has dtype F16; nncc reads F32 only"},
        {"{\"dense/kernel\": {\"dtype\": \"F32\", \"shape\": [4, -3], \"data_offsets\": [0, 48]}}",
         "bad shape"},
        {"{\"dense/kernel\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], "
         "\"data_offsets\": [0, 4]}}",
         "rank 9"},
        {"{\"dense/kernel\": {\"dtype\": \"F32\", \"shape\": [4, 3], \"data_offsets\": [0, 40]}}",
         "needs 48 bytes but its data_offsets [0, 40] hold 40"},
        {"{\"dense/kernel\": {\"dtype\": \"F32\", \"shape\": [4, 3], \"data_offsets\": [48, 0]}}",
         "bad data_offsets"},
        {"{\"dense/kernel\": {\"dtype\": \"F32\", \"shape\": [4, 3]}}", "needs \"dtype\", \"shape\""},
        {"{\"dense/kernel\": {\"dtype\": \"F32\", \"shape\": [4611686018427387904, 4611686018427387904], "
         "\"data_offsets\": [0, 48]}}",
         "impossibly large"},
        {"{\"__metadata__\": {\"format\": 3}}", "\"__metadata__\" value \"format\" is not a string"},
        /* overlap: bias inside the kernel's bytes */
        {"{\"dense/kernel\": {\"dtype\": \"F32\", \"shape\": [4, 3], \"data_offsets\": [0, 48]}, "
         "\"dense/bias\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [36, 48]}}",
         "(overlap)"},
        /* a gap between the tensors */
        {"{\"dense/kernel\": {\"dtype\": \"F32\", \"shape\": [4, 3], \"data_offsets\": [0, 48]}, "
         "\"dense/bias\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [52, 60]}}",
         "(gap)"},
        /* bytes after the last tensor */
        {"{\"dense/kernel\": {\"dtype\": \"F32\", \"shape\": [4, 3], \"data_offsets\": [0, 48]}}",
         "the tensors hold 48 bytes but the data section has 60"},
        /* past the end of the file */
        {"{\"dense/kernel\": {\"dtype\": \"F32\", \"shape\": [4, 4], \"data_offsets\": [0, 64]}}",
         "truncated"},
    };
    in_dir(tmpdir, "bad.safetensors", other, sizeof other);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_st(other, bad[i].header, data, sizeof data);
        expect_load_error(m, other, NNCC_ERR_FORMAT, bad[i].says);
    }

    /* a truncated file */
    size_t len;
    char *file = slurp(path, &len);
    assert_non_null(file);
    spit(other, file, len - 4);
    expect_load_error(m, other, NNCC_ERR_FORMAT, "truncated");
    spit(other, file, 20);
    expect_load_error(m, other, NNCC_ERR_FORMAT, "does not fit a file of 20 bytes");

    /* every truncation and many byte flips: an error or success, never a crash */
    for (size_t cut = 0; cut < len; cut++) {
        spit(other, file, cut);
        assert_int_not_equal(nncc_load_weights(m, other), NNCC_OK);
    }
    uint64_t seed = 12345;
    for (int trial = 0; trial < 400; trial++) {
        char *copy = malloc(len);
        memcpy(copy, file, len);
        for (int flips = 0; flips < 3; flips++) {
            seed = seed * 6364136223846793005u + 1442695040888963407u;
            size_t at = (size_t)(seed >> 33) % len;
            copy[at] = (char)(seed >> 8);
        }
        spit(other, copy, len);
        (void)nncc_load_weights(m, other);
        free(copy);
    }
    free(file);

    /* save errors name the file */
    in_dir(tmpdir, "no/such/dir/w.safetensors", other, sizeof other);
    assert_int_equal(nncc_save_weights(m, other), NNCC_ERR_IO);
    assert_contains(nncc_last_error(), other);
    assert_int_equal(nncc_save_weights(m, tmpdir), NNCC_ERR_IO);
    assert_contains(nncc_last_error(), tmpdir);
    assert_int_equal(nncc_save_weights(NULL, path), NNCC_ERR_ARG);
    assert_int_equal(nncc_load_weights(m, NULL), NNCC_ERR_ARG);

    nncc_model_free(narrow);
    nncc_model_free(deeper);
    nncc_model_free(single);
    nncc_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hook_order),
        cmocka_unit_test(test_stop_in_batch_end),
        cmocka_unit_test(test_set_learning_rate_from_callback),
        cmocka_unit_test(test_early_stopping),
        cmocka_unit_test(test_early_stopping_restore),
        cmocka_unit_test(test_checkpoint_every_epoch),
        cmocka_unit_test(test_checkpoint_best_only),
        cmocka_unit_test(test_checkpoint_path_format),
        cmocka_unit_test(test_checkpoint_unwritable),
        cmocka_unit_test(test_terminate_on_nan),
        cmocka_unit_test(test_reduce_lr),
        cmocka_unit_test(test_csv_logger),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_weights_round_trip),
        cmocka_unit_test(test_weights_errors),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
