/*
 * model_io.c — nncc_save / nncc_load: a whole model in one safetensors file
 * (the container: runtime/io/safetensors.c).
 *
 * Tensors: every weight "<layer>/<weight>" (Keras layouts) and, when the
 * model is compiled, every optimizer slot "optimizer/<layer>/<weight>/<slot>",
 * all F32.  __metadata__ (strings only, as the format requires):
 *   format "nncc-model", version "1", nncc_version,
 *   architecture    model_config_json() (frontend/serialize.c),
 *   compile         {"optimizer": {"name": "Adam", "learning_rate": …, every
 *                   hyper-parameter}, "loss": "categorical_crossentropy",
 *                   "metrics": ["accuracy"], "from_logits": false,
 *                   "seed": "42"} (the seed a decimal string: all 64 bits),
 *   training_state  {"epochs_done": 3, "iterations": 2814, "learning_rate": …}
 *                   (the current rate, which callbacks may have changed),
 *   checksum        SHA-256 hex of the data section.
 * Shuffling depends on (seed, epoch) and dropout masks on (seed, iterations),
 * so seed + iterations are the RNG state: fit(.initial_epoch =
 * nncc_model_epochs_done(m)) after nncc_load continues bit-identically.
 *
 * nncc_load trusts nothing: the container is validated by st_open(), the
 * checksum verified before anything is used, the architecture rebuilt by
 * model_from_config() (which checks every layer and option), every tensor
 * matched by name with its shape checked (missing and extra tensors are
 * errors naming them), and the compile configuration and training state
 * checked field by field (unknown names, wrong JSON types, out-of-range
 * values).  Every error names the file.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "runtime/io/keras_io.h"
#include "runtime/io/safetensors.h"

#define MODEL_FORMAT "nncc-model"
#define MODEL_VERSION "1"

/* ---- Names and fields of the compile configuration --------------------- */

static const char *const optimizer_names[] = {
    [NNCC_SGD] = "SGD", [NNCC_ADAM] = "Adam", [NNCC_ADAGRAD] = "Adagrad",
    [NNCC_RMSPROP] = "RMSprop",
};
static const char *const loss_names[] = {
    [NNCC_MEAN_SQUARED_ERROR] = "mean_squared_error",
    [NNCC_MEAN_ABSOLUTE_ERROR] = "mean_absolute_error",
    [NNCC_BINARY_CROSSENTROPY] = "binary_crossentropy",
    [NNCC_CATEGORICAL_CROSSENTROPY] = "categorical_crossentropy",
    [NNCC_SPARSE_CATEGORICAL_CROSSENTROPY] = "sparse_categorical_crossentropy",
};
static const struct {
    unsigned flag;
    const char *name;
} metric_names[] = {{NNCC_ACCURACY, "accuracy"},
                    {NNCC_METRIC_MSE, "mean_squared_error"},
                    {NNCC_METRIC_MAE, "mean_absolute_error"}};

#define N_OPT_NAMES ((int)(sizeof optimizer_names / sizeof *optimizer_names))
#define N_LOSS_NAMES ((int)(sizeof loss_names / sizeof *loss_names))
#define N_METRICS ((int)(sizeof metric_names / sizeof *metric_names))

struct opt_field {
    const char *key;
    bool is_bool;
    size_t offset;
    unsigned kinds; /* bit k: relevant to kind k (what the summary prints) */
};
#define K(k) (1u << (k))
#define OF(f, b, kinds) {#f, b, offsetof(struct nncc_optimizer, f), kinds}
static const struct opt_field opt_fields[] = { /* in Keras' get_config() order */
    OF(learning_rate, false, ~0u),
    OF(rho, false, K(NNCC_RMSPROP)),
    OF(momentum, false, K(NNCC_SGD) | K(NNCC_RMSPROP)),
    OF(nesterov, true, K(NNCC_SGD)),
    OF(beta_1, false, K(NNCC_ADAM)),
    OF(beta_2, false, K(NNCC_ADAM)),
    OF(initial_accumulator_value, false, K(NNCC_ADAGRAD)),
    OF(epsilon, false, K(NNCC_ADAM) | K(NNCC_ADAGRAD) | K(NNCC_RMSPROP)),
    OF(amsgrad, true, K(NNCC_ADAM)),
    OF(centered, true, K(NNCC_RMSPROP)),
    OF(clipnorm, false, 0), /* printed only when set */
    OF(clipvalue, false, 0),
    OF(global_clipnorm, false, 0),
};
#define N_OPT_FIELDS ((int)(sizeof opt_fields / sizeof *opt_fields))

static float *opt_float(struct nncc_optimizer *o, const struct opt_field *f)
{
    return (float *)(void *)((char *)o + f->offset);
}
static bool *opt_bool(struct nncc_optimizer *o, const struct opt_field *f)
{
    return (bool *)(void *)((char *)o + f->offset);
}

/* ---- save -------------------------------------------------------------- */

static char *compile_json(const struct nncc_compile_opts *c)
{
    struct nncc_optimizer o = c->optimizer;
    json_t *root = json_object(), *opt = json_object(), *metrics = json_array();
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->seed);
    bool bad = !root || !opt || !metrics;
    if (!bad && o.kind > 0 && (int)o.kind < N_OPT_NAMES)
        bad |= json_object_set_new(opt, "name", json_string(optimizer_names[o.kind])) != 0;
    for (int i = 0; i < N_OPT_FIELDS && !bad; i++)
        bad |= json_object_set_new(opt, opt_fields[i].key,
                                   opt_fields[i].is_bool
                                       ? json_boolean(*opt_bool(&o, &opt_fields[i]))
                                       : json_real(*opt_float(&o, &opt_fields[i]))) != 0;
    for (int i = 0; i < N_METRICS && !bad; i++)
        if (c->metrics & metric_names[i].flag)
            bad |= json_array_append_new(metrics, json_string(metric_names[i].name)) != 0;
    if (!bad) {
        bad |= json_object_set(root, "optimizer", opt) != 0;
        bad |= json_object_set_new(root, "loss", json_string(loss_names[c->loss])) != 0;
        bad |= json_object_set(root, "metrics", metrics) != 0;
        bad |= json_object_set_new(root, "from_logits", json_boolean(c->from_logits)) != 0;
        bad |= json_object_set_new(root, "seed", json_string(seed)) != 0;
    }
    char *text = bad ? NULL : json_dumps(root, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(opt);
    json_decref(metrics);
    json_decref(root);
    return text;
}

static char *state_json(const struct nncc_train_state *t)
{
    json_t *root = json_pack("{s:i,s:I,s:f}", "epochs_done", t->epochs_done, "iterations",
                             (json_int_t)t->iterations, "learning_rate", (double)t->learning_rate);
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return text;
}

static bool set_text(json_t *meta, const char *key, char *text)
{
    bool ok = text && json_object_set_new(meta, key, json_string(text)) == 0;
    free(text);
    return ok;
}

enum nncc_status nncc_save(const nncc_model *m, const char *path)
{
    if (!m || !path || !*path)
        return nncc_fail(NNCC_ERR_ARG, "save: %s is NULL or empty", !m ? "the model" : "the path");
    if (!model_check_ready(m))
        return nncc_last_status();
    if (keras_file_kind(path)) /* m.h5, m.keras: a file Keras loads */
        return keras_save(m, path);
    const struct nncc_train_state *t = m->train;
    int n = 0;
    for (int i = 0; i < m->n_layers; i++)
        n += m->layers[i]->n_weights;
    if (t)
        n += t->n_params * t->n_slots;
    struct st_tensor *ts = malloc(sizeof *ts * (size_t)(n + 1));
    json_t *meta = json_object();
    enum nncc_status st;
    bool ok = ts && meta && json_object_set_new(meta, "format", json_string(MODEL_FORMAT)) == 0 &&
              json_object_set_new(meta, "version", json_string(MODEL_VERSION)) == 0 &&
              json_object_set_new(meta, "nncc_version", json_string(NNCC_VERSION_STRING)) == 0 &&
              set_text(meta, "architecture", model_config_json(m));
    if (ok && t)
        ok = set_text(meta, "compile", compile_json(&t->opts)) &&
             set_text(meta, "training_state", state_json(t));
    if (!ok) {
        st = nncc_fail(NNCC_ERR_NOMEM, "save '%s': out of memory", path);
    } else {
        n = 0;
        for (int i = 0; i < m->n_layers; i++)
            for (int k = 0; k < m->layers[i]->n_weights; k++) {
                const nncc_tensor *w = m->layers[i]->weights[k];
                ts[n++] = (struct st_tensor){w->name, w->shape, w->data};
            }
        for (int i = 0; t && i < t->n_params * t->n_slots; i++)
            ts[n++] = (struct st_tensor){t->slots[i]->name, t->slots[i]->shape, t->slots[i]->data};
        st = st_write(path, "save", ts, n, meta, true);
    }
    json_decref(meta);
    free(ts);
    return st;
}

/* ---- load -------------------------------------------------------------- */

#define BAD(sf, ...) nncc_fail(NNCC_ERR_FORMAT, __VA_ARGS__)

static int find_name(const char *const *names, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (names[i] && strcmp(names[i], s) == 0)
            return i;
    return -1;
}

/* A finite float from a JSON number; false (error set) otherwise. */
static bool get_float(const char *path, json_t *v, const char *what, float *out)
{
    double d = json_number_value(v);
    if (!json_is_number(v) || !isfinite(d) || fabs(d) > 3.0e38) {
        nncc_fail(NNCC_ERR_FORMAT, "load '%s': %s must be a finite number", path, what);
        return false;
    }
    *out = (float)d;
    return true;
}

/* Parses the "compile" metadata into o. */
static enum nncc_status parse_compile(const char *path, const char *text,
                                      struct nncc_compile_opts *o)
{
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    enum nncc_status st = NNCC_OK;
    memset(o, 0, sizeof *o);
    if (!root) {
        st = nncc_fail(NNCC_ERR_FORMAT, "load '%s': the compile configuration is malformed JSON: "
                       "%s (column %d)", path, jerr.text, jerr.column);
        goto done;
    }
    if (!json_is_object(root)) {
        st = nncc_fail(NNCC_ERR_FORMAT, "load '%s': the compile configuration is not an object",
                       path);
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "optimizer") == 0) {
            if (!json_is_object(v)) {
                st = BAD(0, "load '%s': compile: \"optimizer\" must be an object", path);
                goto done;
            }
            const char *k2;
            json_t *v2;
            json_object_foreach(v, k2, v2) {
                if (strcmp(k2, "name") == 0) {
                    int i = json_is_string(v2)
                                ? find_name(optimizer_names, N_OPT_NAMES, json_string_value(v2))
                                : -1;
                    if (i <= 0) {
                        st = BAD(0, "load '%s': compile: unknown optimizer %s%.64s%s (SGD, Adam, "
                                 "Adagrad or RMSprop)", path, json_is_string(v2) ? "\"" : "",
                                 json_is_string(v2) ? json_string_value(v2) : "(not a string)",
                                 json_is_string(v2) ? "\"" : "");
                        goto done;
                    }
                    o->optimizer.kind = (enum nncc_optimizer_kind)i;
                    continue;
                }
                const struct opt_field *f = NULL;
                for (int i = 0; i < N_OPT_FIELDS && !f; i++)
                    if (strcmp(opt_fields[i].key, k2) == 0)
                        f = &opt_fields[i];
                char what[120];
                snprintf(what, sizeof what, "compile: optimizer option \"%.64s\"", k2);
                if (!f) {
                    st = BAD(0, "load '%s': %s is unknown", path, what);
                    goto done;
                }
                if (f->is_bool) {
                    if (!json_is_boolean(v2)) {
                        st = BAD(0, "load '%s': %s must be true or false", path, what);
                        goto done;
                    }
                    *opt_bool(&o->optimizer, f) = json_is_true(v2);
                } else if (!get_float(path, v2, what, opt_float(&o->optimizer, f))) {
                    st = nncc_last_status();
                    goto done;
                }
            }
            if (o->optimizer.kind == NNCC_OPTIMIZER_DEFAULT) {
                st = BAD(0, "load '%s': compile: the optimizer has no \"name\"", path);
                goto done;
            }
        } else if (strcmp(key, "loss") == 0) {
            int i = json_is_string(v) ? find_name(loss_names, N_LOSS_NAMES, json_string_value(v))
                                      : -1;
            if (i <= 0) {
                st = BAD(0, "load '%s': compile: unknown loss \"%.64s\"", path,
                         json_is_string(v) ? json_string_value(v) : "(not a string)");
                goto done;
            }
            o->loss = (enum nncc_loss)i;
        } else if (strcmp(key, "metrics") == 0) {
            if (!json_is_array(v) || json_array_size(v) > (size_t)N_METRICS) {
                st = BAD(0, "load '%s': compile: \"metrics\" must be a list of at most %d names",
                         path, N_METRICS);
                goto done;
            }
            for (size_t i = 0; i < json_array_size(v); i++) {
                const char *s = json_string_value(json_array_get(v, i));
                int k = 0;
                while (s && k < N_METRICS && strcmp(metric_names[k].name, s) != 0)
                    k++;
                if (!s || k == N_METRICS) {
                    st = BAD(0, "load '%s': compile: unknown metric %.64s", path,
                             s ? s : "(not a string)");
                    goto done;
                }
                o->metrics |= metric_names[k].flag;
            }
        } else if (strcmp(key, "from_logits") == 0) {
            if (!json_is_boolean(v)) {
                st = BAD(0, "load '%s': compile: \"from_logits\" must be true or false", path);
                goto done;
            }
            o->from_logits = json_is_true(v);
        } else if (strcmp(key, "seed") == 0) {
            const char *s = json_string_value(v);
            char *end = NULL;
            errno = 0;
            unsigned long long x = s && s[0] >= '0' && s[0] <= '9' ? strtoull(s, &end, 10) : 0;
            if (!s || !end || *end || errno || strlen(s) > 20) {
                st = BAD(0, "load '%s': compile: \"seed\" must be a decimal string of an unsigned "
                         "64-bit integer", path);
                goto done;
            }
            o->seed = (uint64_t)x;
        } else {
            st = BAD(0, "load '%s': compile: unknown field \"%.64s\"", path, key);
            goto done;
        }
    }
    if (!o->loss)
        st = BAD(0, "load '%s': compile: no \"loss\"", path);
    else if (!o->optimizer.kind)
        st = BAD(0, "load '%s': compile: no \"optimizer\"", path);
done:
    json_decref(root);
    return st;
}

/* Parses "training_state" into t. */
static enum nncc_status parse_state(const char *path, const char *text, struct nncc_train_state *t)
{
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    enum nncc_status st = NNCC_OK;
    if (!json_is_object(root)) {
        st = BAD(0, "load '%s': the training state is not a JSON object", path);
        goto done;
    }
    json_t *e = json_object_get(root, "epochs_done"), *it = json_object_get(root, "iterations");
    json_t *lr = json_object_get(root, "learning_rate");
    if (json_object_size(root) != 3 || !json_is_integer(e) || json_integer_value(e) < 0 ||
        json_integer_value(e) > INT_MAX / 2 || !json_is_integer(it) ||
        json_integer_value(it) < 0 || json_integer_value(it) > ((json_int_t)1 << 53)) {
        st = BAD(0, "load '%s': the training state needs exactly \"epochs_done\" (an integer in "
                 "[0, %d]), \"iterations\" (an integer in [0, 2^53]) and \"learning_rate\"",
                 path, INT_MAX / 2);
        goto done;
    }
    float rate;
    if (!get_float(path, lr, "training_state: learning_rate", &rate)) {
        st = nncc_last_status();
        goto done;
    }
    if (rate < 0) {
        st = BAD(0, "load '%s': training_state: learning_rate %g is negative", path, (double)rate);
        goto done;
    }
    t->epochs_done = (int)json_integer_value(e);
    t->iterations = (int64_t)json_integer_value(it);
    t->learning_rate = rate;
done:
    json_decref(root);
    return st;
}

/* Finds tensor `name`, checks its shape and reads it into dst. */
static enum nncc_status load_tensor(struct st_file *sf, const char *name, struct nncc_shape shape,
                                    float *dst, const char *what)
{
    struct st_entry *e = st_find(sf, name);
    if (!e)
        return nncc_fail(NNCC_ERR_FORMAT, "load '%s': no tensor \"%s\" in the file (the %s is "
                         "missing)", sf->path, name, what);
    if (!ir_shape_eq(e->shape, shape)) {
        char a[160], b[160];
        return nncc_fail(NNCC_ERR_SHAPE, "load '%s': tensor \"%s\" has shape %s in the file but "
                         "%s in the saved architecture", sf->path, name,
                         ir_dims_str(e->shape, a, sizeof a), ir_dims_str(shape, b, sizeof b));
    }
    e->used = true;
    return st_read(sf, e, dst);
}

/* Everything after the container checks; the model is returned or freed. */
static nncc_model *load_from(struct st_file *sf)
{
    const char *path = sf->path;
    const char *format = st_meta(sf, "format"), *version = st_meta(sf, "version");
    if (!format || strcmp(format, MODEL_FORMAT) != 0) {
        if (format && strcmp(format, "nncc-weights") == 0)
            return NNCC_FAIL_NULL(NNCC_ERR_FORMAT, "load '%s': the file holds weights only "
                                  "(format nncc-weights): build the model and use "
                                  "nncc_load_weights", path);
        return NNCC_FAIL_NULL(NNCC_ERR_FORMAT, "load '%s': not an nncc model file (its "
                              "__metadata__ has no \"format\": \"nncc-model\")", path);
    }
    if (!version || strcmp(version, MODEL_VERSION) != 0)
        return NNCC_FAIL_NULL(NNCC_ERR_FORMAT, "load '%s': format version %.20s is not supported "
                              "(this nncc reads version " MODEL_VERSION ")", path,
                              version ? version : "(none)");
    const char *sum = st_meta(sf, "checksum");
    char hex[65];
    if (!sum || strlen(sum) != 64 || strspn(sum, "0123456789abcdef") != 64)
        return NNCC_FAIL_NULL(NNCC_ERR_FORMAT, "load '%s': the \"checksum\" metadata is missing "
                              "or not 64 lowercase hex digits", path);
    if (st_data_sha256(sf, hex))
        return NULL;
    if (strcmp(hex, sum) != 0)
        return NNCC_FAIL_NULL(NNCC_ERR_FORMAT, "load '%s': checksum mismatch: the tensor data "
                              "has SHA-256 %.16s…, the file says %.16s… (the file is corrupt)",
                              path, hex, sum);
    const char *arch = st_meta(sf, "architecture");
    const char *compile = st_meta(sf, "compile"), *state = st_meta(sf, "training_state");
    if (!arch)
        return NNCC_FAIL_NULL(NNCC_ERR_FORMAT, "load '%s': no \"architecture\" metadata", path);
    if (!compile != !state)
        return NNCC_FAIL_NULL(NNCC_ERR_FORMAT, "load '%s': \"compile\" and \"training_state\" "
                              "must come together", path);
    nncc_model *m = model_from_config(arch, strlen(arch), path);
    if (!m)
        return NULL;
    for (int i = 0; i < m->n_layers; i++)
        for (int k = 0; k < m->layers[i]->n_weights; k++) {
            nncc_tensor *w = m->layers[i]->weights[k];
            if (load_tensor(sf, w->name, w->shape, w->data, "model's weight"))
                goto fail;
        }
    if (compile) {
        struct nncc_compile_opts o;
        if (parse_compile(path, compile, &o))
            goto fail;
        if (nncc_compile_(m, o)) {
            char msg[1024];
            snprintf(msg, sizeof msg, "load '%s': the saved compile configuration: %s", path,
                     nncc_last_error());
            nncc_fail(NNCC_ERR_FORMAT, "%s", msg);
            goto fail;
        }
        struct nncc_train_state *t = m->train;
        for (int i = 0; i < t->n_params * t->n_slots; i++)
            if (load_tensor(sf, t->slots[i]->name, t->slots[i]->shape, t->slots[i]->data,
                            "optimizer slot"))
                goto fail;
        if (parse_state(path, state, t))
            goto fail;
    }
    for (size_t i = 0; i < sf->n_ents; i++)
        if (!sf->ents[i].used) {
            nncc_fail(NNCC_ERR_FORMAT, "load '%s': tensor \"%s\" matches no weight%s of the saved "
                      "model", path, sf->ents[i].name, compile ? " or optimizer slot" : "");
            goto fail;
        }
    return m;
fail:
    nncc_model_free(m);
    return NULL;
}

nncc_model *nncc_load(const char *path)
{
    if (!path || !*path)
        return NNCC_FAIL_NULL(NNCC_ERR_ARG, "load: the path is NULL or empty");
    if (keras_file_kind(path))
        return keras_load(path);
    struct st_file sf;
    if (st_open(&sf, path, "load"))
        return NULL;
    nncc_model *m = load_from(&sf);
    st_close(&sf);
    return m;
}

/* ---- Printing ---------------------------------------------------------- */

enum nncc_status nncc_model_print_training(const nncc_model *m, FILE *out)
{
    if (!m || !out)
        return nncc_fail(NNCC_ERR_ARG, "print_training: the model or the stream is NULL");
    const struct nncc_train_state *t = m->train;
    if (!t) {
        fprintf(out, "Not compiled: no optimizer state (architecture and weights only)\n");
        return NNCC_OK;
    }
    struct nncc_optimizer o = t->opts.optimizer;
    unsigned kind = (unsigned)o.kind;
    fprintf(out, "Optimizer: %s (", kind < (unsigned)N_OPT_NAMES && optimizer_names[kind]
                                        ? optimizer_names[kind] : "?");
    const char *sep = "";
    for (int i = 0; i < N_OPT_FIELDS; i++) {
        const struct opt_field *f = &opt_fields[i];
        if (f->is_bool) {
            if (f->kinds & K(kind))
                fprintf(out, "%s%s=%s", sep, f->key, *opt_bool(&o, f) ? "True" : "False");
            else
                continue;
        } else {
            float v = *opt_float(&o, f);
            if (!(f->kinds & K(kind)) && (f->kinds || v == 0))
                continue;
            fprintf(out, "%s%s=%g", sep, f->key, (double)v);
        }
        sep = ", ";
    }
    fprintf(out, ")\n");
    fprintf(out, "Loss: %s%s\n", loss_names[t->opts.loss], t->opts.from_logits ? " (from_logits)" : "");
    fprintf(out, "Metrics: ");
    sep = "";
    for (int i = 0; i < N_METRICS; i++)
        if (t->opts.metrics & metric_names[i].flag) {
            fprintf(out, "%s%s", sep, metric_names[i].name);
            sep = ", ";
        }
    fprintf(out, "%s\n", *sep ? "" : "(none)");
    fprintf(out, "Trained: %d epoch%s, %lld iteration%s (learning rate now %g, seed %llu)\n",
            t->epochs_done, t->epochs_done == 1 ? "" : "s", (long long)t->iterations,
            t->iterations == 1 ? "" : "s", (double)t->learning_rate,
            (unsigned long long)t->opts.seed);
    return NNCC_OK;
}
