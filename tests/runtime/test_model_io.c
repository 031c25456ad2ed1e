/*
 * test_model_io.c — nncc_save / nncc_load (runtime/io/model_io.c) and the
 * safetensors container they share with the weights files.
 *
 * - Round trips: one model per layer family (every layer kind) saved and
 *   loaded: same summary, bit-identical weights and predictions; every
 *   optimizer (and its options): configuration, slots, iterations, epochs
 *   and learning rate restored exactly.
 * - Resume: 2 epochs straight vs 1 epoch, nncc_save, nncc_load in a new
 *   process (this binary re-executed with --resume-child), 1 more epoch
 *   with initial_epoch = epochs_done: bit-identical weights and slots.
 * - Kill while saving: a child saving a large model in a loop is SIGKILLed
 *   at random moments; the file under the name always loads intact; a
 *   successful save leaves no temporary file and removes a killed one's.
 * - Saving (nncc_save, nncc_save_weights, nncc_save_npy): a file saved over
 *   keeps its mode; a symbolic link is written through to its target (a
 *   loop of links is an error); a 240-byte file name saves and loads; stale
 *   temporary files of the same path are removed, a live writer's and other
 *   paths' kept.
 * - Broken and hostile files: one test per committed fixture in
 *   tests/fixtures/model_io/ (made by make_fixtures.py there), each a clear
 *   error naming the file and the problem; hostile names load and predict
 *   (the generated C escapes them); names of NNCC_MAX_NAME bytes, the limit
 *   both the constructors and the loader check, save and load in full.
 * - `nncc summary FILE.safetensors`.
 * With --interop (a CTest test of its own) it runs the scripts in tests/interop, or
 * prints "skipped" and exits 77 when python3 with NumPy is missing (fails
 * instead when NNCC_REQUIRE_INTEROP is set, as CI does).
 */
#define _XOPEN_SOURCE 700 /* nftw, mkdtemp */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <nncc.h>
#include "runtime/train/train.h"
#include "runtime/io/atomic.h"

#define FIXTURES NNCC_SOURCE_DIR "/tests/fixtures/model_io/"

/* ---- Helpers ------------------------------------------------------------- */

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
    snprintf(dir, 64, "/tmp/nncc-test-model-io-XXXXXX");
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

static char *in_dir(const char *dir, const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", dir, name);
    return buf;
}

/* Fills every weight with a distinct, deterministic pattern (variances
 * positive). */
static void fill_weights(nncc_model *m, float salt)
{
    for (int i = 0; i < nncc_model_num_layers(m); i++) {
        nncc_layer *l = nncc_model_layer(m, i);
        for (int k = 0; k < nncc_layer_num_weights(l); k++) {
            struct nncc_shape s = nncc_layer_weight_shape(l, k);
            int64_t n = 1;
            for (int d = 0; d < s.rank; d++)
                n *= s.dim[d];
            float *v = malloc(sizeof *v * (size_t)n);
            assert_non_null(v);
            bool var = strstr(nncc_layer_weight_name(l, k), "variance") != NULL;
            for (int64_t j = 0; j < n; j++)
                v[j] = 0.3f * sinf(1.7f * (float)j + 3.1f * (float)k + salt + (float)i) + (var ? 1.f : 0);
            assert_int_equal(nncc_set_weights(l, k, v, n), NNCC_OK);
            free(v);
        }
    }
}

/* Every weight of a and b bit-identical (same names, same order). */
static void assert_weights_identical(const nncc_model *a, const nncc_model *b)
{
    assert_int_equal(nncc_model_num_layers(a), nncc_model_num_layers(b));
    for (int i = 0; i < nncc_model_num_layers(a); i++) {
        nncc_layer *la = nncc_model_layer(a, i), *lb = nncc_model_layer(b, i);
        assert_int_equal(nncc_layer_num_weights(la), nncc_layer_num_weights(lb));
        for (int k = 0; k < nncc_layer_num_weights(la); k++) {
            assert_string_equal(nncc_layer_weight_name(la, k), nncc_layer_weight_name(lb, k));
            const nncc_tensor *wa = la->weights[k], *wb = lb->weights[k];
            int64_t n = ir_shape_numel(wa->shape, 0);
            assert_true(ir_shape_eq(wa->shape, wb->shape));
            if (memcmp(wa->data, wb->data, sizeof(float) * (size_t)n) != 0)
                fail_msg("weight %s differs", wa->name);
        }
    }
}

/* Optimizer state of a and b identical. */
static void assert_train_identical(const nncc_model *a, const nncc_model *b)
{
    const struct nncc_train_state *ta = a->train, *tb = b->train;
    assert_non_null(ta);
    assert_non_null(tb);
    const struct nncc_optimizer *oa = &ta->opts.optimizer, *ob = &tb->opts.optimizer;
    assert_int_equal(oa->kind, ob->kind);
#define SAME(f) assert_memory_equal(&oa->f, &ob->f, sizeof oa->f)
    SAME(learning_rate), SAME(momentum), SAME(nesterov), SAME(beta_1), SAME(beta_2);
    SAME(amsgrad), SAME(rho), SAME(centered), SAME(initial_accumulator_value), SAME(epsilon);
    SAME(clipnorm), SAME(clipvalue), SAME(global_clipnorm);
#undef SAME
    assert_int_equal(ta->opts.loss, tb->opts.loss);
    assert_int_equal(ta->opts.metrics, tb->opts.metrics);
    assert_int_equal(ta->opts.from_logits, tb->opts.from_logits);
    assert_true(ta->opts.seed == tb->opts.seed);
    assert_int_equal(ta->iterations, tb->iterations);
    assert_int_equal(ta->epochs_done, tb->epochs_done);
    assert_memory_equal(&ta->learning_rate, &tb->learning_rate, sizeof(float));
    assert_int_equal(ta->n_params, tb->n_params);
    assert_int_equal(ta->n_slots, tb->n_slots);
    for (int i = 0; i < ta->n_params * ta->n_slots; i++) {
        assert_string_equal(ta->slots[i]->name, tb->slots[i]->name);
        int64_t n = ir_shape_numel(ta->slots[i]->shape, 0);
        if (memcmp(ta->slots[i]->data, tb->slots[i]->data, sizeof(float) * (size_t)n) != 0)
            fail_msg("slot %s differs", ta->slots[i]->name);
    }
}

/* The summary as text (malloc'd). */
static char *summary_text(const nncc_model *m)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(nncc_summary(m, f), NNCC_OK);
    fclose(f);
    return buf;
}

/* n deterministic input rows for m's (single) input. */
static float *inputs_for(const nncc_model *m, int64_t n, int64_t *row)
{
    struct nncc_shape s = nncc_tensor_shape(nncc_model_input(m, 0));
    *row = 1;
    for (int d = 1; d < s.rank; d++)
        *row *= s.dim[d];
    float *x = malloc(sizeof *x * (size_t)(n * *row));
    assert_non_null(x);
    for (int64_t i = 0; i < n * *row; i++)
        x[i] = cosf(0.37f * (float)i);
    return x;
}

static void assert_predictions_identical(nncc_model *a, nncc_model *b)
{
    int64_t row;
    float *x = inputs_for(a, 5, &row);
    struct nncc_array *pa = nncc_predict_rows(a, x, 5), *pb = nncc_predict_rows(b, x, 5);
    if (!pa || !pb)
        fail_msg("predict: %s", nncc_last_error());
    assert_int_equal(nncc_array_size(pa), nncc_array_size(pb));
    assert_memory_equal(pa->data, pb->data, sizeof(float) * (size_t)nncc_array_size(pa));
    nncc_array_free(pa);
    nncc_array_free(pb);
    free(x);
}

/* Saves m, loads it back and checks summary, weights and predictions; the
 * loaded model is returned (caller frees). */
static nncc_model *round_trip(nncc_model *m, const char *dir, const char *file)
{
    char path[256];
    in_dir(dir, file, path, sizeof path);
    if (nncc_save(m, path) != NNCC_OK)
        fail_msg("save: %s", nncc_last_error());
    nncc_model *r = nncc_load(path);
    if (!r)
        fail_msg("load: %s", nncc_last_error());
    char *sa = summary_text(m), *sb = summary_text(r);
    assert_string_equal(sa, sb);
    free(sa);
    free(sb);
    assert_string_equal(nncc_model_name(m), nncc_model_name(r));
    assert_weights_identical(m, r);
    return r;
}

/* ---- Round trips of every layer kind ------------------------------------- */

static nncc_model *dense_family(void) /* Sequential: Dense, Dropout, Activation */
{
    return nncc_sequential(NNCC_LAYERS(nncc_dense_layer(.units = 8, .activation = NNCC_RELU,
                                                        .input_shape = NNCC_SHAPE(6)),
                                       nncc_dropout_layer(.rate = 0.3f, .seed = 5),
                                       nncc_activation_layer(.activation = NNCC_TANH),
                                       nncc_dense_layer(.units = 4, .no_bias = true,
                                                        .activation = NNCC_SOFTMAX)),
                           .name = "dense_family");
}

static nncc_model *conv_family(void) /* Conv2D, MaxPooling2D, AveragePooling2D, Flatten */
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(8, 8, 2), .name = "image");
    nncc_tensor *h = nncc_conv2d(x, .filters = 4, .kernel_size = {3, 3}, .padding = NNCC_SAME,
                                 .activation = NNCC_RELU);
    h = nncc_maxpool2d(h, .pool_size = {2, 2});
    h = nncc_conv2d(h, .filters = 3, .kernel_size = {2, 2}, .dilation_rate = {1, 1},
                    .kernel_initializer = NNCC_HE_NORMAL);
    h = nncc_avgpool2d(h, .pool_size = {2, 2}, .strides = {1, 1}, .padding = NNCC_SAME);
    h = nncc_flatten(h);
    nncc_tensor *y = nncc_dense(h, .units = 5, .activation = NNCC_SIGMOID);
    return nncc_model_new(x, y, .name = "conv_family");
}

static nncc_model *norm_family(void) /* BatchNormalization, GlobalAveragePooling2D */
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(6, 6, 3));
    nncc_tensor *h = nncc_conv2d(x, .filters = 4, .kernel_size = {3, 3}, .no_bias = true);
    h = nncc_batchnorm(h, .momentum = 0.9f, .epsilon = 1e-2f);
    h = nncc_activation(h, .activation = NNCC_GELU);
    h = nncc_global_avgpool2d(h);
    nncc_tensor *y = nncc_dense(h, .units = 2);
    return nncc_model_new(x, y, .name = "norm_family");
}

static nncc_model *merge_family(void) /* Add, Concatenate, Reshape; a shared layer */
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(10));
    nncc_tensor *a = nncc_dense(x, .units = 6, .activation = NNCC_ELU, .name = "left");
    nncc_layer *shared = nncc_dense_layer(.units = 6, .name = "shared");
    nncc_tensor *b = nncc_call(shared, x);
    nncc_tensor *s = nncc_add(NNCC_TENSORS(a, b));
    nncc_tensor *c = nncc_concatenate(NNCC_TENSORS(s, a), .axis = -1);
    nncc_tensor *r = nncc_reshape(c, .target_shape = NNCC_SHAPE(3, 4));
    r = nncc_flatten(r);
    nncc_tensor *y = nncc_dense(r, .units = 3, .activation = NNCC_SOFTMAX);
    return nncc_model_new(x, y, .name = "merge_family");
}

static void check_family(void **state, nncc_model *(*build)(void), const char *file)
{
    nncc_model *m = build();
    if (!m)
        fail_msg("build: %s", nncc_last_error());
    fill_weights(m, 0.5f);
    nncc_model *r = round_trip(m, *state, file);
    assert_predictions_identical(m, r);
    assert_null(r->train); /* saved uncompiled, loaded uncompiled */
    nncc_model_free(r);
    nncc_model_free(m);
}

static void test_round_trip_dense(void **state) { check_family(state, dense_family, "dense.st"); }
static void test_round_trip_conv(void **state) { check_family(state, conv_family, "conv.st"); }
static void test_round_trip_norm(void **state) { check_family(state, norm_family, "norm.st"); }
static void test_round_trip_merge(void **state) { check_family(state, merge_family, "merge.st"); }

/* ---- Round trips of every optimizer -------------------------------------- */

static void test_round_trip_optimizers(void **state)
{
    const struct nncc_optimizer opts[] = {
        nncc_sgd(),
        nncc_sgd(.learning_rate = 0.05f, .momentum = 0.9f, .nesterov = true, .clipvalue = 0.5f),
        nncc_adam(),
        nncc_adam(.learning_rate = 3e-4f, .beta_1 = 0.8f, .beta_2 = 0.99f, .amsgrad = true,
                  .clipnorm = 1.f),
        nncc_adagrad(.initial_accumulator_value = 0.2f, .epsilon = 1e-6f),
        nncc_rmsprop(),
        nncc_rmsprop(.rho = 0.8f, .momentum = 0.5f, .centered = true, .global_clipnorm = 2.f),
        {.kind = NNCC_OPTIMIZER_DEFAULT},
    };
    const enum nncc_loss losses[] = {NNCC_CATEGORICAL_CROSSENTROPY, NNCC_MEAN_SQUARED_ERROR,
                                     NNCC_SPARSE_CATEGORICAL_CROSSENTROPY,
                                     NNCC_BINARY_CROSSENTROPY, NNCC_MEAN_ABSOLUTE_ERROR};
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++) {
        nncc_model *m = dense_family();
        assert_non_null(m);
        fill_weights(m, (float)i);
        assert_int_equal(nncc_compile(m, .optimizer = opts[i], .loss = losses[i % 5],
                                      .metrics = (unsigned)(i % 8), .from_logits = i % 2,
                                      .seed = 12345678901234567890ull + i),
                         NNCC_OK);
        struct nncc_train_state *t = m->train;
        for (int s = 0; s < t->n_params * t->n_slots; s++) {
            int64_t n = ir_shape_numel(t->slots[s]->shape, 0);
            for (int64_t j = 0; j < n; j++)
                t->slots[s]->data[j] = 0.001f * (float)(s + 1) + 1e-5f * (float)j;
        }
        t->iterations = 1234 + (int64_t)i;
        t->epochs_done = 7;
        t->learning_rate = 0.123456789f;
        char file[32];
        snprintf(file, sizeof file, "opt%zu.st", i);
        nncc_model *r = round_trip(m, *state, file);
        assert_train_identical(m, r);
        assert_int_equal(nncc_model_epochs_done(r), 7);
        assert_true(r->train->n_slots > 0 || opts[i].kind == NNCC_SGD);
        nncc_model_free(r);
        nncc_model_free(m);
    }
}

/* load_weights reads a whole-model file (skipping its optimizer slots). */
static void test_load_weights_from_model_file(void **state)
{
    char path[256];
    nncc_model *m = dense_family(), *w = dense_family();
    fill_weights(m, 2.f);
    assert_int_equal(nncc_compile(m, .optimizer = nncc_adam(), .loss = NNCC_MEAN_SQUARED_ERROR),
                     NNCC_OK);
    assert_int_equal(nncc_save(m, in_dir(*state, "whole.st", path, sizeof path)), NNCC_OK);
    assert_int_equal(nncc_load_weights(w, path), NNCC_OK);
    assert_weights_identical(m, w);
    /* and nncc_load refuses a weights-only file, naming it */
    assert_int_equal(nncc_save_weights(m, in_dir(*state, "weights.st", path, sizeof path)), NNCC_OK);
    assert_null(nncc_load(path));
    assert_non_null(strstr(nncc_last_error(), path));
    assert_non_null(strstr(nncc_last_error(), "weights only"));
    nncc_model_free(m);
    nncc_model_free(w);
}

/* ---- Resume in a new process --------------------------------------------- */

#define RESUME_N 96

static void resume_data(struct nncc_array **x, struct nncc_array **y)
{
    *x = nncc_array_new(NNCC_SHAPE(RESUME_N, 6));
    *y = nncc_array_new(NNCC_SHAPE(RESUME_N, 4));
    assert_non_null(*x);
    assert_non_null(*y);
    for (int i = 0; i < RESUME_N; i++) {
        float s = 0;
        for (int k = 0; k < 6; k++) {
            (*x)->data[i * 6 + k] = sinf(0.7f * (float)(i * 6 + k));
            s += (*x)->data[i * 6 + k] * (float)(k - 2);
        }
        (*y)->data[i * 4 + (s > 1 ? 0 : s > 0 ? 1 : s > -1 ? 2 : 3)] = 1;
    }
}

static nncc_model *resume_model(void)
{
    nncc_model *m = dense_family();
    assert_non_null(m);
    assert_int_equal(nncc_model_init_weights(m, 11), NNCC_OK);
    assert_int_equal(nncc_compile(m, .optimizer = nncc_adam(.learning_rate = 0.01f),
                                  .loss = NNCC_CATEGORICAL_CROSSENTROPY,
                                  .metrics = NNCC_ACCURACY, .seed = 99),
                     NNCC_OK);
    return m;
}

/* The child's side: load `in`, train to epoch 2, save to `out`. */
static int resume_child(const char *in, const char *out)
{
    struct nncc_array *x, *y;
    resume_data(&x, &y);
    nncc_model *m = nncc_load(in);
    nncc_history *h = m ? nncc_fit(m, x, y, .batch_size = 16, .epochs = 2,
                                   .initial_epoch = nncc_model_epochs_done(m))
                        : NULL;
    int rc = h && nncc_save(m, out) == NNCC_OK ? 0 : 1;
    if (rc)
        fprintf(stderr, "resume child: %s\n", nncc_last_error());
    nncc_history_free(h);
    nncc_model_free(m);
    nncc_array_free(x);
    nncc_array_free(y);
    return rc;
}

static void test_resume_in_new_process(void **state)
{
    struct nncc_array *x, *y;
    resume_data(&x, &y);
    nncc_model *a = resume_model(), *b = resume_model();
    nncc_history *h = nncc_fit(a, x, y, .batch_size = 16, .epochs = 2);
    assert_non_null(h);
    nncc_history_free(h);
    h = nncc_fit(b, x, y, .batch_size = 16, .epochs = 1);
    assert_non_null(h);
    nncc_history_free(h);
    assert_int_equal(nncc_model_epochs_done(b), 1);
    char in[256], out[256];
    assert_int_equal(nncc_save(b, in_dir(*state, "resume1.st", in, sizeof in)), NNCC_OK);
    in_dir(*state, "resume2.st", out, sizeof out);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *argv[] = {"test_model_io", "--resume-child", in, out, NULL};
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    nncc_model *r = nncc_load(out);
    if (!r)
        fail_msg("load: %s", nncc_last_error());
    assert_int_equal(nncc_model_epochs_done(r), 2);
    assert_weights_identical(a, r);
    assert_train_identical(a, r);
    nncc_model_free(r);
    nncc_model_free(a);
    nncc_model_free(b);
    nncc_array_free(x);
    nncc_array_free(y);
}

/* ---- Kill while saving --------------------------------------------------- */

static nncc_model *big_model(void)
{
    nncc_model *m = nncc_sequential(
        NNCC_LAYERS(nncc_dense_layer(.units = 1024, .input_shape = NNCC_SHAPE(1024)),
                    nncc_dense_layer(.units = 8)), .name = "big");
    assert_non_null(m);
    assert_int_equal(nncc_compile(m, .optimizer = nncc_adam(), .loss = NNCC_MEAN_SQUARED_ERROR),
                     NNCC_OK);
    return m;
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void test_kill_while_saving(void **state)
{
    char dir[256], path[300];
    in_dir(*state, "kill", dir, sizeof dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(path, sizeof path, "%s/big.safetensors", dir);
    nncc_model *m = big_model();
    assert_int_equal(nncc_save(m, path), NNCC_OK);
    assert_int_equal(count_entries(dir), 1); /* no temporary file left */
    unsigned seed = 20240601u;
    for (int round = 0; round < 6; round++) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            for (int i = 0;; i++) {
                m->layers[0]->weights[1]->data[0] = (float)i; /* each save differs */
                if (nncc_save(m, path) != NNCC_OK)
                    _exit(3);
            }
        }
        seed = seed * 1103515245u + 12345u;
        struct timespec ts = {0, (long)(5 + (seed >> 16) % 120) * 1000000L};
        nanosleep(&ts, NULL);
        assert_int_equal(kill(pid, SIGKILL), 0);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status)); /* killed, not failed */
        nncc_model *r = nncc_load(path); /* checksum verified: intact */
        if (!r)
            fail_msg("round %d: %s", round, nncc_last_error());
        assert_int_equal(r->layers[0]->weights[0]->shape.dim[0], 1024);
        nncc_model_free(r);
        /* A killed save may leave its temporary file (never under the
         * name); the next save removes it, so there is at most one. */
        assert_true(count_entries(dir) <= 2);
    }
    assert_int_equal(nncc_save(m, path), NNCC_OK);
    assert_int_equal(count_entries(dir), 1); /* the last orphan removed */
    nncc_model_free(m);
}

/* ---- Saving: permissions, links, long names, stale temporary files ------- */

/* The three atomic writers of runtime/io, each writing `path`. */
static enum nncc_status save_with(int writer, const char *path)
{
    nncc_model *m = dense_family();
    assert_non_null(m);
    struct nncc_array *a = nncc_array_new(NNCC_SHAPE(2, 3));
    assert_non_null(a);
    enum nncc_status st = writer == 0   ? nncc_save(m, path)
                          : writer == 1 ? nncc_save_weights(m, path)
                                        : nncc_save_npy(path, a);
    nncc_array_free(a);
    nncc_model_free(m);
    return st;
}

static const char *const writer_names[] = {"nncc_save", "nncc_save_weights", "nncc_save_npy"};

static unsigned mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (unsigned)(st.st_mode & 07777);
}

/* Saving over a file keeps its mode (a 0600 file stays private); a new file
 * gets 0666 & ~umask, as fopen() gives. */
static void test_save_keeps_mode(void **state)
{
    for (int w = 0; w < 3; w++) {
        char path[300];
        snprintf(path, sizeof path, "%s/mode-%d", (const char *)*state, w);
        mode_t old = umask(027);
        assert_int_equal(save_with(w, path), NNCC_OK);
        umask(old);
        if (mode_of(path) != 0640)
            fail_msg("%s: a new file has mode %o, not 0640 (umask 027)", writer_names[w],
                     mode_of(path));
        assert_int_equal(chmod(path, 0600), 0);
        assert_int_equal(save_with(w, path), NNCC_OK);
        if (mode_of(path) != 0600)
            fail_msg("%s: saving over a 0600 file left mode %o", writer_names[w], mode_of(path));
        assert_int_equal(chmod(path, 0604), 0);
        assert_int_equal(save_with(w, path), NNCC_OK);
        assert_int_equal(mode_of(path), 0604);
    }
}

/* A symbolic link at the path is written through to its target (relative
 * to the link's folder, over two hops), and stays a link; a dangling link
 * creates its target. */
static void test_save_through_symlink(void **state)
{
    const char *dir = *state;
    char sub[300], target[400], link1[300], link2[300], dangling[300], created[400];
    snprintf(sub, sizeof sub, "%s/real", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    for (int w = 0; w < 3; w++) {
        snprintf(target, sizeof target, "%s/target-%d", sub, w);
        snprintf(link1, sizeof link1, "%s/link1-%d", dir, w);
        snprintf(link2, sizeof link2, "%s/link2-%d", dir, w);
        char rel[64];
        snprintf(rel, sizeof rel, "real/target-%d", w);
        assert_int_equal(symlink(rel, link1), 0);
        snprintf(rel, sizeof rel, "link1-%d", w);
        assert_int_equal(symlink(rel, link2), 0);
        FILE *f = fopen(target, "w");
        assert_non_null(f);
        fclose(f);
        assert_int_equal(chmod(target, 0600), 0);
        assert_int_equal(save_with(w, link2), NNCC_OK);
        struct stat st;
        assert_int_equal(lstat(link2, &st), 0);
        if (!S_ISLNK(st.st_mode))
            fail_msg("%s: the link at the path was replaced by a regular file", writer_names[w]);
        assert_int_equal(lstat(link1, &st), 0);
        assert_true(S_ISLNK(st.st_mode));
        assert_int_equal(lstat(target, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_true(st.st_size > 0); /* the new contents went to the target */
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(count_entries(sub), w + 1); /* no temporary file left */
        /* A dangling link: its target is created. */
        snprintf(dangling, sizeof dangling, "%s/dangling-%d", dir, w);
        snprintf(rel, sizeof rel, "real/created-%d", w);
        assert_int_equal(symlink(rel, dangling), 0);
        assert_int_equal(save_with(w, dangling), NNCC_OK);
        snprintf(created, sizeof created, "%s/created-%d", sub, w);
        assert_int_equal(lstat(dangling, &st), 0);
        assert_true(S_ISLNK(st.st_mode));
        assert_int_equal(lstat(created, &st), 0);
        assert_true(S_ISREG(st.st_mode) && st.st_size > 0);
        assert_int_equal(unlink(created), 0);
    }
    snprintf(link2, sizeof link2, "%s/link2-0", dir); /* nncc_save's */
    nncc_model *r = nncc_load(link2);
    if (!r)
        fail_msg("%s", nncc_last_error());
    nncc_model_free(r);
    /* A loop of links is an error naming the path, and both stay links. */
    char loop_a[300], loop_b[300];
    snprintf(loop_a, sizeof loop_a, "%s/loop-a", dir);
    snprintf(loop_b, sizeof loop_b, "%s/loop-b", dir);
    assert_int_equal(symlink("loop-b", loop_a), 0);
    assert_int_equal(symlink("loop-a", loop_b), 0);
    for (int w = 0; w < 3; w++) {
        assert_int_not_equal(save_with(w, loop_a), NNCC_OK);
        assert_int_equal(nncc_last_status(), NNCC_ERR_IO);
        assert_non_null(strstr(nncc_last_error(), loop_a));
        assert_non_null(strstr(nncc_last_error(), strerror(ELOOP)));
        struct stat st;
        assert_int_equal(lstat(loop_a, &st), 0);
        assert_true(S_ISLNK(st.st_mode));
    }
}

/* A file name of 240 bytes (NAME_MAX is 255) saves and loads: the temporary
 * name does not grow with it. */
static void test_save_long_file_name(void **state)
{
    char dir[300], name[241], path[600];
    in_dir(*state, "long", dir, sizeof dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    memset(name, 'n', 240);
    memcpy(name + 240 - 12, ".safetensors", 12);
    name[240] = '\0';
    snprintf(path, sizeof path, "%s/%s", dir, name);
    nncc_model *m = dense_family();
    fill_weights(m, 0.25f);
    if (nncc_save(m, path) != NNCC_OK)
        fail_msg("%s", nncc_last_error());
    assert_int_equal(nncc_save(m, path), NNCC_OK); /* over the old one */
    nncc_model *r = nncc_load(path);
    if (!r)
        fail_msg("%s", nncc_last_error());
    assert_weights_identical(m, r);
    nncc_model_free(r);
    assert_int_equal(nncc_save_weights(m, path), NNCC_OK);
    assert_int_equal(nncc_load_weights(m, path), NNCC_OK);
    assert_int_equal(count_entries(dir), 1);
    nncc_model_free(m);
}

/* Makes an empty file `name` in dir, modified `age` seconds ago. */
static void make_file(const char *dir, const char *name, int age)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("partial", f);
    fclose(f);
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec -= age;
    t[1] = t[0];
    assert_int_equal(utimensat(AT_FDCWD, p, t, 0), 0);
}

static bool exists_in(const char *dir, const char *name)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

/* A save removes the temporary files earlier saves of the same path left
 * (their writer is dead, or they are older than ATOMIC_STALE_SECONDS), and
 * keeps a live writer's and other paths'. */
static void test_save_removes_stale_temps(void **state)
{
    char dir[300], path[400], prefix[24], other[24];
    in_dir(*state, "stale", dir, sizeof dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    atomic_temp_prefix(path, prefix);
    atomic_temp_prefix("other.safetensors", other);
    fflush(NULL);
    pid_t dead = fork(); /* a pid that is certainly no longer alive */
    assert_true(dead >= 0);
    if (dead == 0)
        _exit(0);
    assert_int_equal(waitpid(dead, NULL, 0), dead);
    char killed[64], old[64], live[64], others[64];
    snprintf(killed, sizeof killed, "%s%d.0000abcd.tmp", prefix, (int)dead);
    snprintf(old, sizeof old, "%s%d.00001234.tmp", prefix, (int)getppid());
    snprintf(live, sizeof live, "%s%d.00005678.tmp", prefix, (int)getpid());
    snprintf(others, sizeof others, "%s%d.0000abcd.tmp", other, (int)dead);
    make_file(dir, killed, 0);
    make_file(dir, old, ATOMIC_STALE_SECONDS + 60);
    make_file(dir, live, 0);
    make_file(dir, others, 0);
    nncc_model *m = dense_family();
    assert_int_equal(nncc_save(m, path), NNCC_OK);
    nncc_model_free(m);
    if (exists_in(dir, killed))
        fail_msg("a dead writer's temporary file '%s' was left", killed);
    if (exists_in(dir, old))
        fail_msg("a temporary file older than %d s was left", ATOMIC_STALE_SECONDS);
    assert_true(exists_in(dir, live));   /* a live writer's */
    assert_true(exists_in(dir, others)); /* another path's */
    assert_true(exists_in(dir, "m.safetensors"));
    assert_int_equal(count_entries(dir), 3);
}

/* ---- Broken and hostile files -------------------------------------------- */

/* Loads fixture `name` and expects an error naming the file and holding
 * each of the NULL-terminated substrings. */
static void check_bad(const char *name, const char *const *expect)
{
    char path[512];
    snprintf(path, sizeof path, FIXTURES "%s.safetensors", name);
    nncc_clear_error();
    nncc_model *m = nncc_load(path);
    if (m) {
        nncc_model_free(m);
        fail_msg("%s loaded", name);
    }
    const char *msg = nncc_last_error();
    if (!strstr(msg, path))
        fail_msg("%s: the message does not name the file: %s", name, msg);
    for (int i = 0; expect[i]; i++)
        if (!strstr(msg, expect[i]))
            fail_msg("%s: expected \"%s\" in: %s", name, expect[i], msg);
}

#define BAD_FILE(name, ...)                                            \
    static void test_bad_##name(void **state)                          \
    {                                                                  \
        (void)state;                                                   \
        check_bad(#name, (const char *const[]){__VA_ARGS__, NULL});    \
    }
BAD_FILE(header_len_past_end, "header length 1048576", "does not fit")
BAD_FILE(header_len_absurd, "not a safetensors file", "the limit is 100 MB")
BAD_FILE(malformed_json, "malformed header")
BAD_FILE(missing_tensor, "no tensor \"dense/bias\"", "missing")
BAD_FILE(missing_slot, "no tensor \"optimizer/dense/bias/v\"", "optimizer slot")
BAD_FILE(extra_tensor, "\"dense/extra\"", "matches no weight")
BAD_FILE(dtype_f16, "\"dense/bias\"", "dtype F16", "F32 only")
BAD_FILE(dtype_i64, "\"dense/kernel\"", "dtype I64", "F32 only")
BAD_FILE(offsets_overlap, "\"dense/bias\"", "overlap")
BAD_FILE(offsets_backwards, "\"dense/bias\"", "bad data_offsets")
BAD_FILE(offsets_out_of_buffer, "ends at byte", "truncated")
BAD_FILE(shape_mismatch, "\"dense/kernel\"", "(3, 4) in the file but (4, 3)")
BAD_FILE(unknown_layer_class, "unknown layer class \"Dense9\"")
BAD_FILE(unknown_option, "unknown option \"unitz\"")
BAD_FILE(checksum_mismatch, "checksum mismatch")
BAD_FILE(unknown_optimizer, "unknown optimizer \"Adamax\"")
BAD_FILE(unknown_loss, "unknown loss \"hinge\"")
BAD_FILE(wrong_json_type, "\"learning_rate\"", "must be a finite number")
BAD_FILE(out_of_range_beta, "compile configuration", "beta_1")
BAD_FILE(out_of_range_epochs, "epochs_done")
BAD_FILE(metadata_not_string, "\"compile\" is not a string")
BAD_FILE(weights_only, "weights only", "nncc_load_weights")
BAD_FILE(invalid_utf8, "malformed header")

static void test_valid_fixture(void **state)
{
    (void)state;
    nncc_model *m = nncc_load(FIXTURES "valid.safetensors");
    if (!m)
        fail_msg("%s", nncc_last_error());
    float k[12], v[3];
    nncc_layer *d = nncc_model_get_layer(m, "dense");
    assert_non_null(d);
    assert_int_equal(nncc_get_weights(d, 0, k, 12), NNCC_OK);
    assert_int_equal(nncc_get_weights(d, 1, v, 3), NNCC_OK);
    for (int i = 0; i < 12; i++)
        assert_true(k[i] == (float)(0.1 * i - 0.5));
    assert_true(v[2] == 0.5f);
    assert_int_equal(nncc_model_epochs_done(m), 2);
    assert_true(nncc_get_learning_rate(m) == 0.0005f);
    assert_int_equal(m->train->iterations, 10);
    assert_int_equal(m->train->opts.optimizer.kind, NNCC_ADAM);
    assert_true(m->train->opts.seed == 7);
    assert_int_equal(m->train->opts.metrics, NNCC_ACCURACY);
    assert_true(m->train->slots[0]->data[0] == 0.01f); /* optimizer/dense/kernel/m */
    nncc_model_free(m);
}

/* Names with quotes, newlines, comment ends, #include lines and non-ASCII
 * bytes load, stay out of the generated C unescaped, and predict. */
static void test_hostile_names(void **state)
{
    nncc_model *m = nncc_load(FIXTURES "hostile_names.safetensors");
    if (!m)
        fail_msg("%s", nncc_last_error());
    char *src = nncc_model_emit_c(m);
    assert_non_null(src);
    assert_null(strstr(src, "#include <stdlib.h>\n#define x"));
    assert_null(strstr(src, "q\"uote"));
    assert_null(strstr(src, "#define x */"));
    free(src);
    float x[8] = {1, 2, 3, 4, -1, 0, 1, 0.5f};
    struct nncc_array *p = nncc_predict_rows(m, x, 2);
    if (!p)
        fail_msg("predict: %s", nncc_last_error());
    for (int r = 0; r < 2; r++)
        assert_float_equal(p->data[r * 3] + p->data[r * 3 + 1] + p->data[r * 3 + 2], 1.0, 1e-5);
    nncc_array_free(p);
    /* and it saves and loads again */
    nncc_model *r = round_trip(m, *state, "hostile.st");
    assert_predictions_identical(m, r);
    nncc_model_free(r);
    nncc_model_free(m);
}

/* Names of NNCC_MAX_NAME (256) bytes, the limit the loader checks too, save
 * and load: a functional model whose input, layers (two of them with four
 * weights and optimizer slots) and model name have 256 bytes; and a
 * Sequential whose first layer's name has 250, so its implicit input is
 * named "<250 bytes>_input", 256 bytes, in full. */
static void test_names_at_limit_round_trip(void **state)
{
    char in_name[NNCC_MAX_NAME + 1], bn_name[NNCC_MAX_NAME + 1], d_name[NNCC_MAX_NAME + 1],
        m_name[NNCC_MAX_NAME + 1], first[251], implicit[NNCC_MAX_NAME + 1];
    memset(in_name, 'i', NNCC_MAX_NAME);
    memset(bn_name, 'b', NNCC_MAX_NAME);
    memset(d_name, 'd', NNCC_MAX_NAME);
    memset(m_name, 'm', NNCC_MAX_NAME);
    in_name[NNCC_MAX_NAME] = bn_name[NNCC_MAX_NAME] = d_name[NNCC_MAX_NAME] =
        m_name[NNCC_MAX_NAME] = '\0';
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(4), .name = in_name);
    nncc_tensor *y = nncc_batchnorm(x, .name = bn_name);
    y = nncc_dense(y, .units = 3, .activation = NNCC_SOFTMAX, .name = d_name);
    nncc_model *m = nncc_model_new(x, y, .name = m_name);
    if (!m)
        fail_msg("%s", nncc_last_error());
    assert_int_equal(nncc_compile(m, .optimizer = nncc_adam(),
                                  .loss = NNCC_CATEGORICAL_CROSSENTROPY),
                     NNCC_OK);
    fill_weights(m, 0.5f);
    nncc_model *r = round_trip(m, *state, "limit.st");
    assert_train_identical(m, r);
    assert_string_equal(nncc_layer_name(nncc_tensor_layer(nncc_model_input(r, 0))), in_name);
    assert_non_null(nncc_model_get_layer(r, bn_name));
    assert_non_null(nncc_model_get_layer(r, d_name));
    nncc_model_free(r);
    nncc_model_free(m);

    memset(first, 'f', 250);
    first[250] = '\0';
    snprintf(implicit, sizeof implicit, "%s_input", first);
    assert_int_equal(strlen(implicit), NNCC_MAX_NAME);
    m = nncc_sequential(NNCC_LAYERS(nncc_dense_layer(.units = 2, .input_shape = NNCC_SHAPE(3),
                                                     .name = first)));
    if (!m)
        fail_msg("%s", nncc_last_error());
    assert_string_equal(nncc_layer_name(nncc_tensor_layer(nncc_model_input(m, 0))), implicit);
    r = round_trip(m, *state, "limit_seq.st");
    assert_string_equal(nncc_layer_name(nncc_tensor_layer(nncc_model_input(r, 0))), implicit);
    nncc_model_free(r);
    nncc_model_free(m);
}

static void test_bad_arguments(void **state)
{
    char path[256];
    assert_null(nncc_load(NULL));
    assert_null(nncc_load(""));
    assert_null(nncc_load(in_dir(*state, "does-not-exist.st", path, sizeof path)));
    assert_non_null(strstr(nncc_last_error(), "cannot open"));
    assert_int_equal(nncc_save(NULL, path), NNCC_ERR_ARG);
    nncc_model *m = dense_family();
    assert_int_equal(nncc_save(m, ""), NNCC_ERR_ARG);
    assert_int_equal(nncc_save(m, "/nonexistent-dir/x.st"), NNCC_ERR_IO);
    assert_non_null(strstr(nncc_last_error(), "/nonexistent-dir/x.st"));
    /* a folder and an empty file are not model files */
    assert_null(nncc_load(*state));
    FILE *f = fopen(in_dir(*state, "empty.st", path, sizeof path), "wb");
    fclose(f);
    assert_null(nncc_load(path));
    assert_non_null(strstr(nncc_last_error(), "too short"));
    nncc_model_free(m);
}

/* ---- nncc summary FILE.safetensors --------------------------------------- */

static void test_cli_summary(void **state)
{
    (void)state;
    FILE *p = popen(NNCC_BINARY_DIR "/nncc summary " FIXTURES "valid.safetensors 2>&1", "r");
    assert_non_null(p);
    char out[8192];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    assert_non_null(strstr(out, "Total params: 15"));
    assert_non_null(strstr(out, "Optimizer: Adam (learning_rate=0.001, beta_1=0.9, beta_2=0.999, "
                                "epsilon=1e-07, amsgrad=False)\n"));
    assert_non_null(strstr(out, "Loss: categorical_crossentropy\n"));
    assert_non_null(strstr(out, "Metrics: accuracy\n"));
    assert_non_null(strstr(out, "Trained: 2 epochs, 10 iterations (learning rate now 0.0005"));
    p = popen(NNCC_BINARY_DIR "/nncc summary " FIXTURES "checksum_mismatch.safetensors 2>&1", "r");
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    assert_non_null(strstr(out, "checksum mismatch"));
}

/* ---- Interoperability (--interop) ---------------------------------------- */

static int interop(void)
{
    if (system("python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
        /* CI sets NNCC_REQUIRE_INTEROP=1 (.ci/run; scripts/setup.sh installs
         * both), so that a missing package fails there instead of skipping. */
        const char *req = getenv("NNCC_REQUIRE_INTEROP");
        if (req && *req && strcmp(req, "0") != 0) {
            printf("FAIL: python3 with NumPy is not available, and NNCC_REQUIRE_INTEROP=%s "
                   "(install python3-numpy: bash scripts/setup.sh)\n", req);
            return 1;
        }
        printf("skipped: python3 with NumPy is not available\n");
        return 77;
    }
    char dir[] = "/tmp/nncc-interop-XXXXXX", path[256], cmd[1024];
    if (!mkdtemp(dir))
        return 1;
    int rc = 1;
    /* nncc writes, Python reads and checks dense/bias */
    nncc_model *m = nncc_sequential(NNCC_LAYERS(nncc_dense_layer(.units = 3, .name = "dense",
                                                                 .input_shape = NNCC_SHAPE(4))));
    float bias[3] = {0.125f, -2.5f, 3.0e-5f}, k[12];
    nncc_layer *d = nncc_model_layer(m, 0);
    snprintf(path, sizeof path, "%s/nncc.safetensors", dir);
    if (nncc_set_weights(d, 1, bias, 3) || nncc_compile(m, .loss = NNCC_MEAN_SQUARED_ERROR) ||
        nncc_save(m, path)) {
        fprintf(stderr, "%s\n", nncc_last_error());
        goto done;
    }
    snprintf(cmd, sizeof cmd, "python3 %s/tests/interop/read_nncc.py %s dense/bias %.9g %.9g %.9g",
             NNCC_SOURCE_DIR, path, (double)bias[0], (double)bias[1], (double)bias[2]);
    if (system(cmd) != 0) {
        fprintf(stderr, "FAIL: %s\n", cmd);
        goto done;
    }
    /* Python writes, nncc_load_weights reads */
    snprintf(path, sizeof path, "%s/py.safetensors", dir);
    snprintf(cmd, sizeof cmd, "python3 %s/tests/interop/write_safetensors.py %s", NNCC_SOURCE_DIR,
             path);
    if (system(cmd) != 0 || nncc_load_weights(m, path) != NNCC_OK) {
        fprintf(stderr, "FAIL: %s: %s\n", cmd, nncc_last_error());
        goto done;
    }
    nncc_get_weights(d, 0, k, 12);
    nncc_get_weights(d, 1, bias, 3);
    rc = 0;
    for (int i = 0; i < 12; i++)
        rc |= k[i] != (float)i * 0.5f - 1;
    rc |= bias[0] != 1 || bias[1] != 2 || bias[2] != 3;
    printf(rc ? "FAIL: values written by Python differ\n" : "interop: ok\n");
done:
    nncc_model_free(m);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        rc = 1;
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--resume-child") == 0)
        return resume_child(argv[2], argv[3]);
    if (argc == 2 && strcmp(argv[1], "--interop") == 0)
        return interop();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_dense),
        cmocka_unit_test(test_round_trip_conv),
        cmocka_unit_test(test_round_trip_norm),
        cmocka_unit_test(test_round_trip_merge),
        cmocka_unit_test(test_round_trip_optimizers),
        cmocka_unit_test(test_load_weights_from_model_file),
        cmocka_unit_test(test_resume_in_new_process),
        cmocka_unit_test(test_kill_while_saving),
        cmocka_unit_test(test_save_keeps_mode),
        cmocka_unit_test(test_save_through_symlink),
        cmocka_unit_test(test_save_long_file_name),
        cmocka_unit_test(test_save_removes_stale_temps),
        cmocka_unit_test(test_valid_fixture),
        cmocka_unit_test(test_hostile_names),
        cmocka_unit_test(test_names_at_limit_round_trip),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_cli_summary),
        cmocka_unit_test(test_bad_header_len_past_end),
        cmocka_unit_test(test_bad_header_len_absurd),
        cmocka_unit_test(test_bad_malformed_json),
        cmocka_unit_test(test_bad_missing_tensor),
        cmocka_unit_test(test_bad_missing_slot),
        cmocka_unit_test(test_bad_extra_tensor),
        cmocka_unit_test(test_bad_dtype_f16),
        cmocka_unit_test(test_bad_dtype_i64),
        cmocka_unit_test(test_bad_offsets_overlap),
        cmocka_unit_test(test_bad_offsets_backwards),
        cmocka_unit_test(test_bad_offsets_out_of_buffer),
        cmocka_unit_test(test_bad_shape_mismatch),
        cmocka_unit_test(test_bad_unknown_layer_class),
        cmocka_unit_test(test_bad_unknown_option),
        cmocka_unit_test(test_bad_checksum_mismatch),
        cmocka_unit_test(test_bad_unknown_optimizer),
        cmocka_unit_test(test_bad_unknown_loss),
        cmocka_unit_test(test_bad_wrong_json_type),
        cmocka_unit_test(test_bad_out_of_range_beta),
        cmocka_unit_test(test_bad_out_of_range_epochs),
        cmocka_unit_test(test_bad_metadata_not_string),
        cmocka_unit_test(test_bad_weights_only),
        cmocka_unit_test(test_bad_invalid_utf8),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
