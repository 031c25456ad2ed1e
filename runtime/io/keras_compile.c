/*
 * keras_compile.c — Keras' compile configuration (the "training_config" of
 * an .h5 file, the "compile_config" of a .keras archive) to nncc's compile
 * options and back.
 *
 * Read: the optimizer (a name, or {"class_name", "config"} of tf-keras 2.x
 * — "Custom>Adam" included — or Keras 3), the loss (a name or a loss
 * object with from_logits) and the metrics (names, or metric objects, in
 * Keras 2's per-output lists).  Every optimizer option is mapped or must
 * hold the value nncc implements (no weight decay, no EMA, no schedule, a
 * new-style optimizer); harmless ones (name, jit_compile) are accepted.
 * Anything else is NNCC_ERR_UNSUPPORTED naming the file and the field.
 *
 * Write: the same configuration as tf-keras 2.15 (.h5) or Keras 3 (.keras)
 * writes it.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "runtime/io/keras_io.h"

static const char *const opt_classes[] = {
    [NNCC_SGD] = "SGD", [NNCC_ADAM] = "Adam", [NNCC_ADAGRAD] = "Adagrad",
    [NNCC_RMSPROP] = "RMSprop",
};

static enum nncc_status unsup(const char *label, const char *what, json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    enum nncc_status st = nncc_fail(NNCC_ERR_UNSUPPORTED, "'%s': compile configuration: %s%s%.100s",
                                    label, what, s ? " = " : "", s ? s : "");
    free(s);
    return st;
}

static bool is_null_or(json_t *v, double x)
{
    return !v || json_is_null(v) || (json_is_number(v) && json_number_value(v) == x);
}

static enum nncc_status read_optimizer(const char *label, json_t *v, struct nncc_optimizer *o,
                                       bool *have_lr)
{
    const char *cls = json_string_value(v);
    json_t *cfg = NULL;
    if (json_is_object(v)) {
        cls = json_string_value(json_object_get(v, "class_name"));
        cfg = json_object_get(v, "config");
    }
    if (cls && strncmp(cls, "Custom>", 7) == 0) /* tf-keras 2.11+ new optimizers in .h5 */
        cls += 7;
    memset(o, 0, sizeof *o);
    for (int k = NNCC_SGD; k <= NNCC_RMSPROP && cls; k++)
        if (strcasecmp(cls, opt_classes[k]) == 0)
            o->kind = (enum nncc_optimizer_kind)k;
    if (!o->kind)
        return unsup(label, "optimizer (nncc has SGD, Adam, Adagrad, RMSprop)", v);
    *have_lr = false;
    const char *key;
    json_t *x;
    json_object_foreach(cfg, key, x) {
        char what[120];
        snprintf(what, sizeof what, "optimizer %s option \"%.40s\"", opt_classes[o->kind], key);
        float *f = NULL;
        bool *b = NULL;
        if (strcmp(key, "learning_rate") == 0 || strcmp(key, "lr") == 0) {
            f = &o->learning_rate;
            *have_lr = true;
        } else if (strcmp(key, "beta_1") == 0) f = &o->beta_1;
        else if (strcmp(key, "beta_2") == 0) f = &o->beta_2;
        else if (strcmp(key, "epsilon") == 0) f = &o->epsilon;
        else if (strcmp(key, "momentum") == 0) f = &o->momentum;
        else if (strcmp(key, "rho") == 0) f = &o->rho;
        else if (strcmp(key, "initial_accumulator_value") == 0) f = &o->initial_accumulator_value;
        else if (strcmp(key, "amsgrad") == 0) b = &o->amsgrad;
        else if (strcmp(key, "nesterov") == 0) b = &o->nesterov;
        else if (strcmp(key, "centered") == 0) b = &o->centered;
        else if (strcmp(key, "clipnorm") == 0) f = json_is_null(x) ? NULL : &o->clipnorm;
        else if (strcmp(key, "clipvalue") == 0) f = json_is_null(x) ? NULL : &o->clipvalue;
        else if (strcmp(key, "global_clipnorm") == 0) f = json_is_null(x) ? NULL : &o->global_clipnorm;
        else if (strcmp(key, "name") == 0 || strcmp(key, "jit_compile") == 0 ||
                 strcmp(key, "ema_momentum") == 0 || strcmp(key, "ema_overwrite_frequency") == 0)
            continue; /* harmless: a label, a TF compile choice, EMA settings unused without EMA */
        else if ((strcmp(key, "weight_decay") == 0 || strcmp(key, "loss_scale_factor") == 0 ||
                  strcmp(key, "gradient_accumulation_steps") == 0 || strcmp(key, "decay") == 0) &&
                 is_null_or(x, 0))
            continue;
        else if ((strcmp(key, "use_ema") == 0 || strcmp(key, "is_legacy_optimizer") == 0) &&
                 json_is_false(x))
            continue;
        else if (strcmp(key, "clipnorm") && strcmp(key, "clipvalue") && strcmp(key, "global_clipnorm"))
            return unsup(label, what, x);
        if (f) {
            double d = json_number_value(x);
            if (!json_is_number(x) || !isfinite(d) || fabs(d) > 3e38)
                return unsup(label, what, x); /* a schedule object, a string */
            *f = (float)d;
        } else if (b) {
            if (!json_is_boolean(x))
                return unsup(label, what, x);
            *b = json_is_true(x);
        }
    }
    /* Keras' defaults where nncc's "0 means default" would differ */
    if (o->kind == NNCC_RMSPROP && !json_object_get(cfg, "rho"))
        o->rho = 0.9f;
    return NNCC_OK;
}

static enum nncc_status read_loss(const char *label, json_t *v, struct nncc_compile_opts *o)
{
    static const struct {
        const char *name, *cls;
        enum nncc_loss loss;
    } losses[] = {
        {"mean_squared_error", "MeanSquaredError", NNCC_MEAN_SQUARED_ERROR},
        {"mse", NULL, NNCC_MEAN_SQUARED_ERROR},
        {"mean_absolute_error", "MeanAbsoluteError", NNCC_MEAN_ABSOLUTE_ERROR},
        {"mae", NULL, NNCC_MEAN_ABSOLUTE_ERROR},
        {"binary_crossentropy", "BinaryCrossentropy", NNCC_BINARY_CROSSENTROPY},
        {"categorical_crossentropy", "CategoricalCrossentropy", NNCC_CATEGORICAL_CROSSENTROPY},
        {"sparse_categorical_crossentropy", "SparseCategoricalCrossentropy",
         NNCC_SPARSE_CATEGORICAL_CROSSENTROPY},
    };
    if (json_is_array(v) && json_array_size(v) == 1)
        v = json_array_get(v, 0);
    const char *name = json_string_value(v);
    json_t *cfg = NULL;
    if (json_is_object(v)) {
        name = json_string_value(json_object_get(v, "class_name"));
        cfg = json_object_get(v, "config");
    }
    o->loss = NNCC_LOSS_NONE;
    for (size_t i = 0; i < sizeof losses / sizeof *losses && name; i++)
        if (strcmp(name, losses[i].name) == 0 || (losses[i].cls && strcmp(name, losses[i].cls) == 0))
            o->loss = losses[i].loss;
    if (!o->loss)
        return unsup(label, "loss (nncc has mean_squared_error, mean_absolute_error, "
                     "binary_crossentropy, categorical_crossentropy, "
                     "sparse_categorical_crossentropy)", v);
    const char *key;
    json_t *x;
    json_object_foreach(cfg, key, x) {
        char what[100];
        snprintf(what, sizeof what, "loss %s option \"%.40s\"", name, key);
        if (strcmp(key, "from_logits") == 0 && json_is_boolean(x))
            o->from_logits = json_is_true(x);
        else if (strcmp(key, "name") == 0 || strcmp(key, "dtype") == 0 ||
                 (strcmp(key, "reduction") == 0 && json_is_string(x) &&
                  (strcmp(json_string_value(x), "auto") == 0 ||
                   strcmp(json_string_value(x), "sum_over_batch_size") == 0)) ||
                 (strcmp(key, "label_smoothing") == 0 && is_null_or(x, 0)) ||
                 (strcmp(key, "axis") == 0 && is_null_or(x, -1)) ||
                 (strcmp(key, "ignore_class") == 0 && json_is_null(x)))
            continue;
        else
            return unsup(label, what, x);
    }
    return NNCC_OK;
}

static enum nncc_status read_metric(const char *label, json_t *v, unsigned *flags)
{
    const char *name = json_string_value(v);
    if (json_is_object(v)) {
        const char *cls = json_string_value(json_object_get(v, "class_name"));
        json_t *cfg = json_object_get(v, "config");
        /* Keras 2 wraps a function: its fn (or its name) says which */
        if (cls && strcmp(cls, "MeanMetricWrapper") == 0) {
            name = json_string_value(json_object_get(cfg, "fn"));
            if (!name)
                name = json_string_value(json_object_get(cfg, "name"));
        } else {
            name = cls;
        }
    }
    static const struct {
        const char *name;
        unsigned flag;
    } metrics[] = {
        {"accuracy", NNCC_ACCURACY},
        {"acc", NNCC_ACCURACY},
        {"categorical_accuracy", NNCC_ACCURACY},
        {"sparse_categorical_accuracy", NNCC_ACCURACY},
        {"binary_accuracy", NNCC_ACCURACY},
        {"CategoricalAccuracy", NNCC_ACCURACY},
        {"SparseCategoricalAccuracy", NNCC_ACCURACY},
        {"BinaryAccuracy", NNCC_ACCURACY},
        {"mean_squared_error", NNCC_METRIC_MSE},
        {"mse", NNCC_METRIC_MSE},
        {"MeanSquaredError", NNCC_METRIC_MSE},
        {"mean_absolute_error", NNCC_METRIC_MAE},
        {"mae", NNCC_METRIC_MAE},
        {"MeanAbsoluteError", NNCC_METRIC_MAE},
    };
    for (size_t i = 0; i < sizeof metrics / sizeof *metrics && name; i++)
        if (strcmp(name, metrics[i].name) == 0) {
            *flags |= metrics[i].flag;
            return NNCC_OK;
        }
    return unsup(label, "metric (nncc has accuracy, mean_squared_error, mean_absolute_error)", v);
}

enum nncc_status keras_compile_read(const char *label, json_t *cfg, struct nncc_compile_opts *o,
                                    bool *have_lr)
{
    memset(o, 0, sizeof *o);
    json_t *opt = json_object_get(cfg, "optimizer_config");
    if (!opt)
        opt = json_object_get(cfg, "optimizer");
    enum nncc_status st = read_optimizer(label, opt, &o->optimizer, have_lr);
    if (st)
        return st;
    if ((st = read_loss(label, json_object_get(cfg, "loss"), o)))
        return st;
    const char *key;
    json_t *v;
    json_object_foreach(cfg, key, v) {
        if (strcmp(key, "metrics") == 0) {
            /* Keras 2 .h5: one list per output */
            json_t *list = v;
            if (json_is_array(v) && json_array_size(v) == 1 && json_is_array(json_array_get(v, 0)))
                list = json_array_get(v, 0);
            if (!json_is_null(list) && !json_is_array(list))
                return unsup(label, "metrics", v);
            size_t i;
            json_t *m;
            json_array_foreach(list, i, m)
                if ((st = read_metric(label, m, &o->metrics)))
                    return st;
        } else if (strcmp(key, "weighted_metrics") == 0 || strcmp(key, "loss_weights") == 0) {
            if (!json_is_null(v) && !(json_is_array(v) && json_array_size(v) == 0))
                return unsup(label, key, v);
        } else if (strcmp(key, "optimizer") && strcmp(key, "optimizer_config") &&
                   strcmp(key, "loss") && strcmp(key, "run_eagerly") &&
                   strcmp(key, "steps_per_execution") && strcmp(key, "jit_compile") &&
                   strcmp(key, "auto_scale_loss")) {
            return unsup(label, key, v);
        }
    }
    return NNCC_OK;
}

/* ---- Writing ------------------------------------------------------------ */

static const char *const loss_names[] = {
    [NNCC_MEAN_SQUARED_ERROR] = "mean_squared_error",
    [NNCC_MEAN_ABSOLUTE_ERROR] = "mean_absolute_error",
    [NNCC_BINARY_CROSSENTROPY] = "binary_crossentropy",
    [NNCC_CATEGORICAL_CROSSENTROPY] = "categorical_crossentropy",
    [NNCC_SPARSE_CATEGORICAL_CROSSENTROPY] = "sparse_categorical_crossentropy",
};
static const char *const loss_classes[] = {
    [NNCC_MEAN_SQUARED_ERROR] = "MeanSquaredError",
    [NNCC_MEAN_ABSOLUTE_ERROR] = "MeanAbsoluteError",
    [NNCC_BINARY_CROSSENTROPY] = "BinaryCrossentropy",
    [NNCC_CATEGORICAL_CROSSENTROPY] = "CategoricalCrossentropy",
    [NNCC_SPARSE_CATEGORICAL_CROSSENTROPY] = "SparseCategoricalCrossentropy",
};

static json_t *num_or_null(float v) { return v > 0 ? json_real(v) : json_null(); }

json_t *keras_optimizer_json(const struct nncc_optimizer *o, float lr, int major)
{
    json_t *cfg = json_object();
    const char *cls = opt_classes[o->kind];
    char lower[16];
    snprintf(lower, sizeof lower, "%s", cls);
    for (char *p = lower; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    json_object_set_new(cfg, "name", json_string(major >= 3 ? lower : cls));
    json_object_set_new(cfg, "learning_rate", json_real(lr));
    json_object_set_new(cfg, "weight_decay", json_null());
    json_object_set_new(cfg, "clipnorm", num_or_null(o->clipnorm));
    json_object_set_new(cfg, "global_clipnorm", num_or_null(o->global_clipnorm));
    json_object_set_new(cfg, "clipvalue", num_or_null(o->clipvalue));
    json_object_set_new(cfg, "use_ema", json_false());
    json_object_set_new(cfg, "ema_momentum", json_real(0.99));
    json_object_set_new(cfg, "ema_overwrite_frequency", json_null());
    if (major < 3) {
        json_object_set_new(cfg, "jit_compile", json_false());
        json_object_set_new(cfg, "is_legacy_optimizer", json_false());
    }
    switch (o->kind) {
    case NNCC_SGD:
        json_object_set_new(cfg, "momentum", json_real(o->momentum));
        json_object_set_new(cfg, "nesterov", json_boolean(o->nesterov));
        break;
    case NNCC_ADAM:
        json_object_set_new(cfg, "beta_1", json_real(o->beta_1));
        json_object_set_new(cfg, "beta_2", json_real(o->beta_2));
        json_object_set_new(cfg, "epsilon", json_real(o->epsilon));
        json_object_set_new(cfg, "amsgrad", json_boolean(o->amsgrad));
        break;
    case NNCC_ADAGRAD:
        json_object_set_new(cfg, "initial_accumulator_value",
                            json_real(o->initial_accumulator_value));
        json_object_set_new(cfg, "epsilon", json_real(o->epsilon));
        break;
    case NNCC_RMSPROP:
        json_object_set_new(cfg, "rho", json_real(o->rho));
        json_object_set_new(cfg, "momentum", json_real(o->momentum));
        json_object_set_new(cfg, "epsilon", json_real(o->epsilon));
        json_object_set_new(cfg, "centered", json_boolean(o->centered));
        break;
    case NNCC_OPTIMIZER_DEFAULT:
        break;
    }
    json_t *v = json_object();
    if (major >= 3)
        json_object_set_new(v, "module", json_string("keras.optimizers"));
    char cn[24];
    snprintf(cn, sizeof cn, "%s%s", major < 3 ? "Custom>" : "", cls);
    json_object_set_new(v, "class_name", json_string(cn));
    json_object_set_new(v, "config", cfg);
    if (major >= 3)
        json_object_set_new(v, "registered_name", json_null());
    return v;
}

json_t *keras_compile_write(const struct nncc_compile_opts *o, float lr, int major)
{
    json_t *c = json_object();
    json_t *loss;
    if (o->from_logits) {
        json_t *lc = json_pack("{s:s,s:b}", "name", loss_names[o->loss], "from_logits", 1);
        if (o->loss != NNCC_MEAN_SQUARED_ERROR && o->loss != NNCC_MEAN_ABSOLUTE_ERROR)
            json_object_set_new(lc, "reduction", json_string(major >= 3 ? "sum_over_batch_size"
                                                                           : "auto"));
        loss = json_pack("{s:s,s:o}", "class_name", loss_classes[o->loss], "config", lc);
        if (major >= 3) {
            json_object_set_new(loss, "module", json_string("keras.losses"));
            json_object_set_new(loss, "registered_name", json_null());
        }
    } else {
        loss = json_string(loss_names[o->loss]);
    }
    json_t *metrics = json_array();
    if (o->metrics & NNCC_ACCURACY)
        json_array_append_new(metrics, json_string("accuracy"));
    if (o->metrics & NNCC_METRIC_MSE)
        json_array_append_new(metrics, json_string("mean_squared_error"));
    if (o->metrics & NNCC_METRIC_MAE)
        json_array_append_new(metrics, json_string("mean_absolute_error"));
    if (major < 3) {
        /* tf-keras 2.15's training_config */
        json_object_set_new(c, "loss", loss);
        json_object_set_new(c, "metrics", json_pack("[o]", metrics));
        json_object_set_new(c, "weighted_metrics", json_null());
        json_object_set_new(c, "loss_weights", json_null());
        json_object_set_new(c, "optimizer_config", keras_optimizer_json(&o->optimizer, lr, 2));
    } else {
        json_object_set_new(c, "optimizer", keras_optimizer_json(&o->optimizer, lr, 3));
        json_object_set_new(c, "loss", loss);
        json_object_set_new(c, "loss_weights", json_null());
        json_object_set_new(c, "metrics", metrics);
        json_object_set_new(c, "weighted_metrics", json_null());
        json_object_set_new(c, "run_eagerly", json_false());
        json_object_set_new(c, "steps_per_execution", json_integer(1));
        json_object_set_new(c, "jit_compile", json_false());
    }
    return c;
}
