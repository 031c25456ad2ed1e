/*
 * callbacks.c — the built-in callbacks, with Keras 2.15's behaviour and
 * messages (keras/callbacks.py at v2.15.0; the behaviour reference, §9):
 * EarlyStopping, ModelCheckpoint, TerminateOnNaN, ReduceLROnPlateau and
 * CSVLogger.
 *
 * Contract.  Each constructor returns a struct nncc_callback by value whose
 * `user` is a malloc'd state (TerminateOnNaN has none: NULL) that its
 * `destroy` hook frees; nncc_fit calls destroy when it ends, so a callback
 * value serves exactly one fit (one never handed to fit must be destroyed
 * by its owner: `cb.destroy(cb.user)`).  Option strings (monitor, paths) are
 * copied.  Hooks use only the public API, as a user's callback would.
 *
 * Bad options (a negative patience, cooldown or start_from_epoch, factor
 * outside [0, 1), a negative min_lr, a NaN, a NULL filepath or filename, a
 * separator that cannot separate) are reported twice, without adding to the
 * API: the constructor sets the error (nncc_last_error()), and it returns a
 * callback whose only hook, on_train_begin, prints the message on stderr,
 * sets the error again and stops training.  fit checks stop_training only
 * after a batch and after an epoch, as Keras does, so it still runs one
 * batch and that epoch's end, then returns a History of one epoch with the
 * error set.  (A callback cannot do better without a check in fit before
 * the first step.)  When even its state cannot be allocated, the
 * constructor returns an all-NULL callback with NNCC_ERR_NOMEM set.  An
 * unknown mode warns and falls back to auto, as Keras does.
 *
 * Failures while training (a checkpoint that cannot be written, a file path
 * that cannot be formatted, a CSV file that cannot be opened) print the
 * message on stderr, set the error and stop training, where Keras would raise.
 *
 * Messages: what Keras prints with print() goes to stdout with the same text
 * (numbers formatted as Python formats them: %.5f, and repr() for floats,
 * via py_repr below); what Keras logs with logging.warning() goes to stderr
 * as `WARNING:nncc:<Keras' text>`, once per fit and callback (Keras repeats
 * it every epoch).
 *
 * Numbers.  Options arrive as float; Keras compares against the Python float
 * the user typed (0.1, not 0.100000001490116), so each is widened through its
 * shortest decimal (`decimal`).  ReduceLROnPlateau's "lr" log is that decimal
 * of the float32 rate, as Keras logs np.float32; the rate it announces is
 * float32(old) · factor in double, as NumPy 1.x computes it, so the text is
 * Keras' ("reducing learning rate to 0.00010000000474974513.").  CSVLogger
 * writes floats as Python's str() does (shortest round-trip digits; `nan`,
 * `inf`), lines end in "\r\n" (Python's csv "excel" dialect) and fields are
 * quoted as csv.QUOTE_MINIMAL would.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "runtime/train/callbacks.h"

#define MSG_CAP 600

/* ---- Numbers as Python writes them -------------------------------------- */

/* The double nearest the shortest decimal that reads back as f. */
static double decimal(float f)
{
    if (!isfinite(f))
        return f;
    char buf[40];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        double d = strtod(buf, NULL);
        if ((float)d == f)
            return d;
    }
    return f;
}

/* Python's repr(float): the shortest digits that read back as v (glibc's
 * printf rounds correctly), positional for exponents in [-4, 16), otherwise
 * d.ddde±XX.  buf needs 32 bytes. */
char *cb_py_repr(double v, char *buf, size_t size)
{
    if (isnan(v))
        return snprintf(buf, size, "nan"), buf;
    if (isinf(v))
        return snprintf(buf, size, v > 0 ? "inf" : "-inf"), buf;
    if (v == 0)
        return snprintf(buf, size, signbit(v) ? "-0.0" : "0.0"), buf;
    char e[48];
    for (int p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, v);
        if (strtod(e, NULL) == v)
            break;
    }
    /* e is [-]d[.ddd]e±XX (the point may be a locale's comma). */
    char digits[24];
    int nd = 0, x = 0;
    const char *s = e;
    bool neg = *s == '-';
    if (neg)
        s++;
    for (; *s && *s != 'e' && *s != 'E'; s++)
        if (*s >= '0' && *s <= '9' && nd < 20)
            digits[nd++] = *s;
    if (*s)
        x = atoi(s + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    char out[64];
    int k = 0;
    if (neg)
        out[k++] = '-';
    if (x < -4 || x >= 16) {
        out[k++] = digits[0];
        if (nd > 1)
            k += snprintf(out + k, sizeof out - (size_t)k, ".%s", digits + 1);
        snprintf(out + k, sizeof out - (size_t)k, "e%c%02d", x < 0 ? '-' : '+', x < 0 ? -x : x);
    } else if (x < 0) {
        k += snprintf(out + k, sizeof out - (size_t)k, "0.");
        for (int i = 0; i < -x - 1; i++)
            out[k++] = '0';
        snprintf(out + k, sizeof out - (size_t)k, "%s", digits);
    } else if (nd <= x + 1) {
        k += snprintf(out + k, sizeof out - (size_t)k, "%s", digits);
        for (int i = nd; i < x + 1; i++)
            out[k++] = '0';
        snprintf(out + k, sizeof out - (size_t)k, ".0");
    } else {
        snprintf(out + k, sizeof out - (size_t)k, "%.*s.%s", x + 1, digits, digits + x + 1);
    }
    snprintf(buf, size, "%s", out);
    return buf;
}

/* ---- Small helpers ----------------------------------------------------- */

bool cb_logs_find(const struct nncc_logs *logs, const char *name, double *value)
{
    for (int i = 0; logs && i < logs->n; i++)
        if (strcmp(logs->names[i], name) == 0) {
            *value = logs->values[i];
            return true;
        }
    return false;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

char *cb_copy_string(const char *s)
{
    char *c = malloc(strlen(s) + 1);
    if (c)
        strcpy(c, s);
    return c;
}

/* "loss,accuracy,val_loss": the keys, as Keras' ",".join(logs.keys()). */
char *cb_key_list(const struct nncc_logs *logs, char *buf, size_t size)
{
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; logs && i < logs->n && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%s", i ? "," : "", logs->names[i]);
    return buf;
}

/* Keras' logging.warning() text on stderr. */
void cb_warn(const char *fmt, ...)
{
    char msg[MSG_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "WARNING:nncc:%s\n", msg);
}

/* The monitored value; when it is missing, Keras' warning (once) and false.
 * `what` begins the message: "Early stopping", "Learning rate reduction is". */
static bool monitored(const struct nncc_logs *logs, const char *monitor, const char *what,
                      bool *warned, double *value)
{
    if (cb_logs_find(logs, monitor, value))
        return true;
    if (!*warned) {
        char keys[NNCC_LOGS_MAX * 41];
        cb_warn("%s conditioned on metric `%s` which is not available. Available metrics are: %s",
             what, monitor, cb_key_list(logs, keys, sizeof keys));
        *warned = true;
    }
    return false;
}

/* A failure during training: the error is set, printed, and training stops. */
void cb_fail_training(nncc_model *m, enum nncc_status status, const char *fmt, ...)
{
    char msg[MSG_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "nncc: %s\n", msg);
    nncc_fail(status, "%s", msg);
    nncc_model_stop_training(m);
}

/* Keras' print(): a line on stdout. */
void cb_say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* ---- Bad options: a callback that reports them at fit time ------------- */

static void bad_options_begin(void *user, nncc_model *m, const struct nncc_logs *logs)
{
    (void)logs;
    cb_fail_training(m, NNCC_ERR_ARG, "%s", (const char *)user);
}

struct nncc_callback cb_bad_options(const char *fmt, ...)
{
    char *msg = malloc(MSG_CAP);
    if (!msg) {
        nncc_fail(NNCC_ERR_NOMEM, "out of memory (callback)");
        return (struct nncc_callback){0};
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, MSG_CAP, fmt, ap);
    va_end(ap);
    nncc_fail(NNCC_ERR_ARG, "%s", msg);
    return (struct nncc_callback){.user = msg, .on_train_begin = bad_options_begin, .destroy = free};
}

struct nncc_callback cb_out_of_memory(void)
{
    nncc_fail(NNCC_ERR_NOMEM, "out of memory (callback)");
    return (struct nncc_callback){0};
}

/* Keras falls back to auto for an unknown mode, with a warning. */
enum nncc_mode cb_check_mode(enum nncc_mode mode, const char *what)
{
    if (mode == NNCC_MODE_AUTO || mode == NNCC_MODE_MIN || mode == NNCC_MODE_MAX)
        return mode;
    cb_warn("%s mode %d is unknown, fallback to auto mode.", what, (int)mode);
    return NNCC_MODE_AUTO;
}

/* ---- A copy of every weight (EarlyStopping's best weights) ------------- */

struct weights_copy {
    float *v;
    size_t n; /* floats held */
};

/* Copies the model's weights (layer order, Keras order within a layer). */
static enum nncc_status weights_save(nncc_model *m, struct weights_copy *c)
{
    size_t total = 0;
    for (int i = 0; i < nncc_model_num_layers(m); i++) {
        nncc_layer *l = nncc_model_layer(m, i);
        for (int k = 0; k < nncc_layer_num_weights(l); k++) {
            struct nncc_shape s = nncc_layer_weight_shape(l, k);
            size_t n = 1;
            for (int d = 0; d < s.rank; d++)
                n *= (size_t)s.dim[d];
            total += n;
        }
    }
    if (!c->v || c->n != total) {
        float *v = realloc(c->v, sizeof *v * (total + 1));
        if (!v)
            return nncc_fail(NNCC_ERR_NOMEM, "out of memory (best weights)");
        c->v = v;
        c->n = total;
    }
    size_t at = 0;
    for (int i = 0; i < nncc_model_num_layers(m); i++) {
        nncc_layer *l = nncc_model_layer(m, i);
        for (int k = 0; k < nncc_layer_num_weights(l); k++) {
            struct nncc_shape s = nncc_layer_weight_shape(l, k);
            int64_t n = 1;
            for (int d = 0; d < s.rank; d++)
                n *= s.dim[d];
            enum nncc_status st = nncc_get_weights(l, k, c->v + at, n);
            if (st)
                return st;
            at += (size_t)n;
        }
    }
    return NNCC_OK;
}

static enum nncc_status weights_restore(nncc_model *m, const struct weights_copy *c)
{
    size_t at = 0;
    for (int i = 0; i < nncc_model_num_layers(m); i++) {
        nncc_layer *l = nncc_model_layer(m, i);
        for (int k = 0; k < nncc_layer_num_weights(l); k++) {
            struct nncc_shape s = nncc_layer_weight_shape(l, k);
            int64_t n = 1;
            for (int d = 0; d < s.rank; d++)
                n *= s.dim[d];
            if (at + (size_t)n > c->n)
                return nncc_fail(NNCC_ERR_GRAPH, "the model's weights changed during fit");
            enum nncc_status st = nncc_set_weights(l, k, c->v + at, n);
            if (st)
                return st;
            at += (size_t)n;
        }
    }
    return NNCC_OK;
}

/* ---- EarlyStopping ------------------------------------------------------ */

struct early_stopping {
    char *monitor;
    double min_delta; /* signed as Keras keeps it: +|d| for max, -|d| for min */
    int patience, verbose, start_from_epoch;
    bool maximize, restore_best_weights;
    /* per fit */
    int wait, stopped_epoch, best_epoch;
    double best;
    bool have_best_weights, warned;
    struct weights_copy best_weights;
};

static bool es_improvement(const struct early_stopping *s, double current, double reference)
{
    double v = current - s->min_delta;
    return s->maximize ? v > reference : v < reference;
}

static void es_train_begin(void *user, nncc_model *m, const struct nncc_logs *logs)
{
    (void)m, (void)logs;
    struct early_stopping *s = user;
    s->wait = 0;
    s->stopped_epoch = 0;
    s->best = s->maximize ? -INFINITY : INFINITY;
    s->have_best_weights = false;
    s->best_epoch = 0;
    s->warned = false;
}

static void es_epoch_end(void *user, nncc_model *m, int epoch, struct nncc_logs *logs)
{
    struct early_stopping *s = user;
    double current = 0;
    if (!monitored(logs, s->monitor, "Early stopping", &s->warned, &current))
        return;
    if (epoch < s->start_from_epoch)
        return;
    if (s->restore_best_weights && !s->have_best_weights) {
        /* Keras: the first monitored epoch's weights, if nothing improves. */
        if (weights_save(m, &s->best_weights)) {
            cb_fail_training(m, nncc_last_status(), "EarlyStopping: %s", nncc_last_error());
            return;
        }
        s->have_best_weights = true;
        s->best_epoch = epoch;
    }
    s->wait++;
    if (es_improvement(s, current, s->best)) {
        s->best = current;
        s->best_epoch = epoch;
        if (s->restore_best_weights && weights_save(m, &s->best_weights)) {
            cb_fail_training(m, nncc_last_status(), "EarlyStopping: %s", nncc_last_error());
            return;
        }
        s->wait = 0;
        return;
    }
    /* Only check after the first epoch. */
    if (s->wait >= s->patience && epoch > 0) {
        s->stopped_epoch = epoch;
        nncc_model_stop_training(m);
        /* Keras 2.15 restores only here, when it stopped (K3 also at train end). */
        if (s->restore_best_weights && s->have_best_weights) {
            if (s->verbose > 0)
                cb_say("Restoring model weights from the end of the best epoch: %d.",
                    s->best_epoch + 1);
            if (weights_restore(m, &s->best_weights))
                cb_fail_training(m, nncc_last_status(), "EarlyStopping: %s", nncc_last_error());
        }
    }
}

static void es_train_end(void *user, nncc_model *m, const struct nncc_logs *logs)
{
    (void)m, (void)logs;
    struct early_stopping *s = user;
    if (s->stopped_epoch > 0 && s->verbose > 0)
        cb_say("Epoch %d: early stopping", s->stopped_epoch + 1);
}

static void es_destroy(void *user)
{
    struct early_stopping *s = user;
    if (!s)
        return;
    free(s->monitor);
    free(s->best_weights.v);
    free(s);
}

struct nncc_callback nncc_early_stopping_(struct nncc_early_stopping_opts o)
{
    if (o.patience < 0)
        return cb_bad_options("EarlyStopping: patience must not be negative, got %d", o.patience);
    if (o.start_from_epoch < 0)
        return cb_bad_options("EarlyStopping: start_from_epoch must not be negative, got %d",
                           o.start_from_epoch);
    if (isnan(o.min_delta))
        return cb_bad_options("EarlyStopping: min_delta is NaN");
    struct early_stopping *s = calloc(1, sizeof *s);
    if (!s || !(s->monitor = cb_copy_string(o.monitor ? o.monitor : "val_loss"))) {
        free(s);
        return cb_out_of_memory();
    }
    enum nncc_mode mode = cb_check_mode(o.mode, "EarlyStopping");
    s->maximize = mode == NNCC_MODE_MAX ||
                  (mode == NNCC_MODE_AUTO &&
                   (ends_with(s->monitor, "acc") || ends_with(s->monitor, "accuracy") ||
                    ends_with(s->monitor, "auc")));
    double d = fabs(decimal(o.min_delta));
    s->min_delta = s->maximize ? d : -d;
    s->patience = o.patience;
    s->verbose = o.verbose;
    s->start_from_epoch = o.start_from_epoch;
    s->restore_best_weights = o.restore_best_weights;
    return (struct nncc_callback){
        .user = s,
        .on_train_begin = es_train_begin,
        .on_epoch_end = es_epoch_end,
        .on_train_end = es_train_end,
        .destroy = es_destroy,
    };
}

/* ---- TerminateOnNaN ----------------------------------------------------- */

static void nan_batch_end(void *user, nncc_model *m, int batch, const struct nncc_logs *logs)
{
    (void)user;
    double loss;
    if (cb_logs_find(logs, "loss", &loss) && (isnan(loss) || isinf(loss))) {
        cb_say("Batch %d: Invalid loss, terminating training", batch);
        nncc_model_stop_training(m);
    }
}

struct nncc_callback nncc_terminate_on_nan(void)
{
    return (struct nncc_callback){.on_train_batch_end = nan_batch_end};
}

/* ---- ReduceLROnPlateau -------------------------------------------------- */

struct reduce_lr {
    char *monitor;
    double factor, min_delta, min_lr;
    int patience, verbose, cooldown;
    bool maximize;
    /* per fit */
    int wait, cooldown_counter;
    double best;
    bool warned, warned_full;
};

static void rl_train_begin(void *user, nncc_model *m, const struct nncc_logs *logs)
{
    (void)m, (void)logs;
    struct reduce_lr *s = user;
    s->best = s->maximize ? -INFINITY : INFINITY;
    s->wait = 0;
    s->cooldown_counter = 0;
    s->warned = s->warned_full = false;
}

static void rl_epoch_end(void *user, nncc_model *m, int epoch, struct nncc_logs *logs)
{
    struct reduce_lr *s = user;
    double current = 0, old;
    if (!logs)
        return;
    /* Keras writes the rate before anything else, so it reaches the History
     * (and the CSVLogger and progress bar after it). */
    if (logs->n < NNCC_LOGS_MAX || cb_logs_find(logs, "lr", &old))
        nncc_logs_set(logs, "lr", decimal(nncc_get_learning_rate(m)));
    else if (!s->warned_full) {
        cb_warn("ReduceLROnPlateau: the logs are full (%d entries); \"lr\" is not logged",
             NNCC_LOGS_MAX);
        s->warned_full = true;
    }
    if (!monitored(logs, s->monitor, "Learning rate reduction is", &s->warned, &current))
        return;
    if (s->cooldown_counter > 0) {
        s->cooldown_counter--;
        s->wait = 0;
    }
    bool better = s->maximize ? current > s->best + s->min_delta : current < s->best - s->min_delta;
    if (better) {
        s->best = current;
        s->wait = 0;
    } else if (s->cooldown_counter <= 0) {
        s->wait++;
        if (s->wait >= s->patience) {
            float old_lr = nncc_get_learning_rate(m);
            if (old_lr > (float)s->min_lr) {
                /* NumPy 1.x: np.float32 · Python float is a float64. */
                double new_lr = (double)old_lr * s->factor;
                if (new_lr < s->min_lr)
                    new_lr = s->min_lr;
                if (nncc_set_learning_rate(m, (float)new_lr)) {
                    cb_fail_training(m, nncc_last_status(), "ReduceLROnPlateau: %s",
                                  nncc_last_error());
                    return;
                }
                if (s->verbose > 0) {
                    char r[40];
                    cb_say("\nEpoch %d: ReduceLROnPlateau reducing learning rate to %s.", epoch + 1,
                        cb_py_repr(new_lr, r, sizeof r));
                }
                s->cooldown_counter = s->cooldown;
                s->wait = 0;
            }
        }
    }
}

static void rl_destroy(void *user)
{
    struct reduce_lr *s = user;
    if (!s)
        return;
    free(s->monitor);
    free(s);
}

struct nncc_callback nncc_reduce_lr_on_plateau_(struct nncc_reduce_lr_opts o)
{
    if (!(o.factor < 1) || o.factor < 0)
        return cb_bad_options("ReduceLROnPlateau does not support a factor >= 1.0 (or negative). "
                           "Got %g",
                           (double)o.factor);
    if (o.patience < 0 || o.cooldown < 0)
        return cb_bad_options("ReduceLROnPlateau: patience and cooldown must not be negative, got "
                           "%d and %d",
                           o.patience, o.cooldown);
    if (!(o.min_lr >= 0) || isinf(o.min_lr) || isnan(o.min_delta))
        return cb_bad_options("ReduceLROnPlateau: min_lr must be a finite non-negative number and "
                           "min_delta a number, got %g and %g",
                           (double)o.min_lr, (double)o.min_delta);
    struct reduce_lr *s = calloc(1, sizeof *s);
    if (!s || !(s->monitor = cb_copy_string(o.monitor ? o.monitor : "val_loss"))) {
        free(s);
        return cb_out_of_memory();
    }
    enum nncc_mode mode = cb_check_mode(o.mode, "Learning rate reduction");
    s->maximize = mode == NNCC_MODE_MAX || (mode == NNCC_MODE_AUTO && strstr(s->monitor, "acc"));
    s->factor = o.factor != 0 ? decimal(o.factor) : 0.1;
    s->patience = o.patience ? o.patience : 10;
    s->min_delta = o.min_delta != 0 ? decimal(o.min_delta) : 1e-4;
    s->min_lr = decimal(o.min_lr);
    s->cooldown = o.cooldown;
    s->verbose = o.verbose;
    return (struct nncc_callback){
        .user = s,
        .on_train_begin = rl_train_begin,
        .on_epoch_end = rl_epoch_end,
        .destroy = rl_destroy,
    };
}

/* ---- CSVLogger ---------------------------------------------------------- */

#define CSV_KEY_CAP 48 /* "val_" + a log name */

struct csv_logger {
    char *filename;
    char sep;
    bool append;
    /* per fit */
    FILE *f;
    bool header; /* write the header before the first row */
    int n_keys;  /* 0 until the first epoch fixes the columns */
    char keys[2 * NNCC_LOGS_MAX][CSV_KEY_CAP];
};

/* One field as csv.QUOTE_MINIMAL writes it: quoted when it holds the
 * separator, a quote or a line break (quotes doubled). */
static void csv_field(FILE *f, const char *s, char sep)
{
    if (!strchr(s, sep) && !strpbrk(s, "\"\r\n")) {
        fputs(s, f);
        return;
    }
    putc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            putc('"', f);
        putc(*s, f);
    }
    putc('"', f);
}

static void csv_train_begin(void *user, nncc_model *m, const struct nncc_logs *logs)
{
    (void)logs;
    struct csv_logger *s = user;
    s->n_keys = 0;
    if (s->f)
        fclose(s->f);
    s->f = fopen(s->filename, s->append ? "ab" : "wb");
    if (!s->f) {
        cb_fail_training(m, NNCC_ERR_IO, "CSVLogger: cannot open '%s': %s", s->filename,
                      strerror(errno));
        return;
    }
    /* Append to a file that has content: its header is already there. */
    s->header = true;
    if (s->append && fseek(s->f, 0, SEEK_END) == 0 && ftell(s->f) > 0)
        s->header = false;
}

static int compare_keys(const void *a, const void *b) { return strcmp(a, b); }

static void csv_epoch_end(void *user, nncc_model *m, int epoch, struct nncc_logs *logs)
{
    struct csv_logger *s = user;
    if (!s->f || !logs)
        return;
    if (s->n_keys == 0) {
        /* Keras: sorted keys; with no val_* key (validation_freq > 1, or no
         * validation), a val_ column per key so later rows fit. */
        bool has_val = false;
        for (int i = 0; i < logs->n; i++) {
            snprintf(s->keys[s->n_keys++], CSV_KEY_CAP, "%s", logs->names[i]);
            has_val |= strncmp(logs->names[i], "val_", 4) == 0;
        }
        qsort(s->keys, (size_t)s->n_keys, CSV_KEY_CAP, compare_keys);
        if (!has_val)
            for (int i = 0, n = s->n_keys; i < n; i++)
                snprintf(s->keys[s->n_keys++], CSV_KEY_CAP, "val_%s", s->keys[i]);
    }
    char buf[48];
    if (s->header) {
        csv_field(s->f, "epoch", s->sep);
        for (int i = 0; i < s->n_keys; i++) {
            putc(s->sep, s->f);
            csv_field(s->f, s->keys[i], s->sep);
        }
        fputs("\r\n", s->f);
        s->header = false;
    }
    snprintf(buf, sizeof buf, "%d", epoch);
    csv_field(s->f, buf, s->sep);
    for (int i = 0; i < s->n_keys; i++) {
        double v;
        putc(s->sep, s->f);
        csv_field(s->f, cb_logs_find(logs, s->keys[i], &v) ? cb_py_repr(v, buf, sizeof buf) : "NA",
                  s->sep);
    }
    fputs("\r\n", s->f);
    if (fflush(s->f) != 0 || ferror(s->f)) {
        cb_fail_training(m, NNCC_ERR_IO, "CSVLogger: writing '%s' failed: %s", s->filename,
                      strerror(errno));
        fclose(s->f);
        s->f = NULL;
    }
}

static void csv_train_end(void *user, nncc_model *m, const struct nncc_logs *logs)
{
    (void)logs;
    struct csv_logger *s = user;
    if (s->f && fclose(s->f) != 0)
        cb_fail_training(m, NNCC_ERR_IO, "CSVLogger: closing '%s' failed: %s", s->filename,
                      strerror(errno));
    s->f = NULL;
}

static void csv_destroy(void *user)
{
    struct csv_logger *s = user;
    if (!s)
        return;
    if (s->f)
        fclose(s->f);
    free(s->filename);
    free(s);
}

struct nncc_callback nncc_csv_logger_(struct nncc_csv_logger_opts o)
{
    if (!o.filename || !*o.filename)
        return cb_bad_options("CSVLogger: filename is %s", o.filename ? "empty" : "NULL");
    char sep = o.separator ? o.separator : ',';
    if (sep == '"' || sep == '\r' || sep == '\n')
        return cb_bad_options("CSVLogger: separator %d cannot separate fields", (int)sep);
    struct csv_logger *s = calloc(1, sizeof *s);
    if (!s || !(s->filename = cb_copy_string(o.filename))) {
        free(s);
        return cb_out_of_memory();
    }
    s->sep = sep;
    s->append = o.append;
    return (struct nncc_callback){
        .user = s,
        .on_train_begin = csv_train_begin,
        .on_epoch_end = csv_epoch_end,
        .on_train_end = csv_train_end,
        .destroy = csv_destroy,
    };
}
