/*
 * test_keras_files.c — models saved by real Keras (tf-keras 2.15 and Keras
 * 3, tests/keras/make_fixtures.py) loaded with nncc_load.
 *
 * Each fixture file comes with <file>.json: Keras' predictions on the first
 * rows of its training data, the optimizer's iteration count in the file,
 * and one more epoch of fit that Keras ran after load_model (loss, metric,
 * iterations and predictions after it).  nncc must load the file, match the
 * predictions to 1e-6, hold the same iteration count and learning rate,
 * and continue training from the file's optimizer state so that its
 * epoch's loss matches Keras' to 1e-5 relative.  "mixed" has a Dropout,
 * whose random masks differ between frameworks: its continuation is
 * checked on "mixed_rate0", the same trained model saved with rate 0.
 * "nested" has a layer called twice and a Sequential used as a layer; "zoo"
 * the other layer kinds and activations, Adam with amsgrad, mse and mae;
 * "untrained" was compiled and saved before any fit (no slots in the file).
 */
#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "frontend/frontend.h"
#include "nncc.h"
#include "runtime/train/train.h"

#define FIX NNCC_SOURCE_DIR "/tests/keras/fixtures/"
#define FMNIST "/usr/share/datasets/fashion-mnist/"

static const char *const models[] = {"seq_mlp", "func_mlp", "cnn", "fmnist_mlp",
                                     "fmnist_cnn", "mixed", "mixed_rate0", "nested", "zoo", "untrained"};
static const char *const formats[] = {"k2.h5", "k2.keras", "k3.keras", "k3.h5"};

/* The fixture's training data, as its JSON describes it. */
static void load_data(json_t *d, struct nncc_array **x, struct nncc_array **y)
{
    const char *src = json_string_value(json_object_get(d, "source"));
    assert_non_null(src);
    if (strcmp(src, "npy") == 0) {
        char px[512], py[512];
        snprintf(px, sizeof px, FIX "%s", json_string_value(json_object_get(d, "x")));
        snprintf(py, sizeof py, FIX "%s", json_string_value(json_object_get(d, "y")));
        *x = nncc_load_npy(px);
        *y = nncc_load_npy(py);
    } else {
        assert_string_equal(src, "fashion-mnist");
        const char *labels = json_string_value(json_object_get(d, "labels"));
        struct nncc_data fd = nncc_load_idx(FMNIST "train-images-idx3-ubyte.gz",
                                            FMNIST "train-labels-idx1-ubyte.gz",
                                            .one_hot = strcmp(labels, "onehot") == 0 ? 10 : 0,
                                            .scale = 1 / 255.f,
                                            .limit = json_integer_value(json_object_get(d, "rows")));
        *x = fd.x;
        *y = fd.y;
    }
    if (!*x || !*y)
        fail_msg("fixture data: %s", nncc_last_error());
}

static struct nncc_array *first_rows(const struct nncc_array *x, int64_t n)
{
    struct nncc_shape s = x->shape;
    int64_t per = nncc_array_size(x) / s.dim[0];
    s.dim[0] = n;
    struct nncc_array *r = nncc_array_new(s);
    memcpy(r->data, x->data, sizeof(float) * (size_t)(n * per));
    return r;
}

/* Predictions against Keras' within `tol` (absolute, relative above 1). */
static void expect_predictions(const char *what, const struct nncc_array *p, json_t *want,
                               double tol)
{
    json_t *vals = json_object_get(want, "values");
    assert_int_equal(nncc_array_size(p), json_array_size(vals));
    double worst = 0;
    for (size_t i = 0; i < json_array_size(vals); i++) {
        double k = json_number_value(json_array_get(vals, i));
        double d = fabs(p->data[i] - k) / fmax(1.0, fabs(k));
        worst = fmax(worst, d);
    }
    if (worst > tol)
        fail_msg("%s: predictions differ from Keras' by %.3g (allowed %.1g)", what, worst, tol);
}

static void check_file(const char *model, const char *format)
{
    char path[512], jpath[600];
    snprintf(path, sizeof path, FIX "%s.%s", model, format);
    snprintf(jpath, sizeof jpath, "%s.json", path);
    json_error_t err;
    json_t *j = json_load_file(jpath, 0, &err);
    if (!j)
        fail_msg("%s: %s", jpath, err.text);
    struct nncc_array *x, *y;
    load_data(json_object_get(j, "data"), &x, &y);
    int64_t rows = json_integer_value(json_object_get(j, "predict_rows"));
    struct nncc_array *x8 = first_rows(x, rows);

    nncc_model *m = nncc_load(path);
    if (!m)
        fail_msg("nncc_load(%s): %s", path, nncc_last_error());
    struct nncc_array *p = nncc_predict(m, x8);
    if (!p)
        fail_msg("%s: predict: %s", path, nncc_last_error());
    expect_predictions(path, p, json_object_get(j, "predictions"), 1e-6);
    nncc_array_free(p);

    /* the optimizer's state as Keras left it */
    assert_non_null(m->train);
    assert_int_equal(m->train->iterations, json_integer_value(json_object_get(j, "iterations")));
    assert_float_equal(m->train->learning_rate,
                       json_number_value(json_object_get(j, "learning_rate")), 1e-9);

    /* one more epoch continues Keras' run */
    json_t *cont = json_object_get(j, "continuation");
    if (strcmp(model, "mixed") != 0) {
        nncc_history *h = nncc_fit(m, x, y, .epochs = 1,
                                   .batch_size = (int)json_integer_value(
                                       json_object_get(cont, "batch_size")),
                                   .no_shuffle = true, .verbose = 0);
        if (!h)
            fail_msg("%s: fit: %s", path, nncc_last_error());
        json_t *hist = json_object_get(cont, "history");
        double want = json_number_value(json_object_get(hist, "loss"));
        double got = nncc_history_get(h, "loss", 0);
        if (fabs(got - want) > 1e-5 * fabs(want))
            fail_msg("%s: the continued epoch's loss is %.9g, Keras' %.9g", path, got, want);
        json_t *acc = json_object_get(hist, "accuracy");
        if (acc)
            assert_float_equal(nncc_history_get(h, "accuracy", 0), json_number_value(acc), 1e-6);
        json_t *mae = json_object_get(hist, "mae");
        if (!mae)
            mae = json_object_get(hist, "mean_absolute_error");
        if (mae)
            assert_float_equal(nncc_history_get(h, "mean_absolute_error", 0),
                               json_number_value(mae), 1e-5 * json_number_value(mae));
        assert_int_equal(m->train->iterations,
                         json_integer_value(json_object_get(cont, "iterations")));
        p = nncc_predict(m, x8);
        assert_non_null(p);
        expect_predictions(path, p, json_object_get(cont, "predictions"), 2e-5);
        nncc_array_free(p);
        nncc_history_free(h);
    }
    nncc_model_free(m);
    nncc_array_free(x8);
    nncc_array_free(x);
    nncc_array_free(y);
    json_decref(j);
}

static void test_model(void **state)
{
    const char *model = *state;
    for (size_t f = 0; f < sizeof formats / sizeof *formats; f++)
        check_file(model, formats[f]);
}

/* The path a Keras user takes to deployment: `nncc compile m.keras -o
 * classify`, a program without nncc, gives Keras' predictions; so does
 * `nncc run m.keras --input x.npy --output p.npy`. */
static void test_deploy(void **state)
{
    (void)state;
    const char *file = FIX "fmnist_cnn.k3.keras";
    char jpath[512], dir[] = "/tmp/nncc-keras-deploy-XXXXXX", cmd[4096], xp[600], pp[600],
                     exe[600];
    snprintf(jpath, sizeof jpath, "%s.json", file);
    json_t *j = json_load_file(jpath, 0, NULL);
    assert_non_null(j);
    assert_non_null(mkdtemp(dir));
    struct nncc_array *x, *y;
    load_data(json_object_get(j, "data"), &x, &y);
    struct nncc_array *x8 = first_rows(x, json_integer_value(json_object_get(j, "predict_rows")));
    snprintf(xp, sizeof xp, "%s/x.npy", dir);
    snprintf(pp, sizeof pp, "%s/p.npy", dir);
    snprintf(exe, sizeof exe, "%s/classify", dir);
    assert_int_equal(nncc_save_npy(xp, x8), NNCC_OK);
    snprintf(cmd, sizeof cmd, NNCC_BINARY_DIR "/nncc compile %s -o %s 2>&1 && %s --input %s "
             "--output %s", file, exe, exe, xp, pp);
    assert_int_equal(system(cmd), 0);
    struct nncc_array *p = nncc_load_npy(pp);
    assert_non_null(p);
    expect_predictions("nncc compile fmnist_cnn.k3.keras", p, json_object_get(j, "predictions"),
                       1e-6);
    nncc_array_free(p);
    /* and without compiling a program: nncc run MODEL --input */
    snprintf(cmd, sizeof cmd, NNCC_BINARY_DIR "/nncc run %s --input %s --output %s", file, xp,
             pp);
    assert_int_equal(system(cmd), 0);
    p = nncc_load_npy(pp);
    assert_non_null(p);
    expect_predictions("nncc run fmnist_cnn.k3.keras", p, json_object_get(j, "predictions"),
                       1e-6);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    nncc_array_free(p);
    nncc_array_free(x8);
    nncc_array_free(x);
    nncc_array_free(y);
    json_decref(j);
}

int main(void)
{
    struct CMUnitTest tests[sizeof models / sizeof *models + 1];
    size_t n = 0;
    for (size_t i = 0; i < sizeof models / sizeof *models; i++)
        tests[n++] = (struct CMUnitTest){models[i], test_model, NULL, NULL, (void *)models[i]};
    tests[n++] = (struct CMUnitTest){"deploy", test_deploy, NULL, NULL, NULL};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
