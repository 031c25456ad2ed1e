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
#include "runtime/train/train.h"

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
static char *py_repr(double v, char *buf, size_t size)
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

static bool logs_find(const struct nncc_logs *logs, const char *name, double *value)
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

static char *copy_string(const char *s)
{
    char *c = malloc(strlen(s) + 1);
    if (c)
        strcpy(c, s);
    return c;
}

/* "loss,accuracy,val_loss": the keys, as Keras' ",".join(logs.keys()). */
static char *key_list(const struct nncc_logs *logs, char *buf, size_t size)
{
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; logs && i < logs->n && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%s", i ? "," : "", logs->names[i]);
    return buf;
}

/* Keras' logging.warning() text on stderr. */
static void warn(const char *fmt, ...) NNCC_PRINTF(1, 2);
static void warn(const char *fmt, ...)
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
    if (logs_find(logs, monitor, value))
        return true;
    if (!*warned) {
        char keys[NNCC_LOGS_MAX * 41];
        warn("%s conditioned on metric `%s` which is not available. Available metrics are: %s",
             what, monitor, key_list(logs, keys, sizeof keys));
        *warned = true;
    }
    return false;
}

/* A failure during training: the error is set, printed, and training stops. */
static void fail_training(nncc_model *m, enum nncc_status status, const char *fmt, ...)
    NNCC_PRINTF(3, 4);
static void fail_training(nncc_model *m, enum nncc_status status, const char *fmt, ...)
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
static void say(const char *fmt, ...) NNCC_PRINTF(1, 2);
static void say(const char *fmt, ...)
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
    fail_training(m, NNCC_ERR_ARG, "%s", (const char *)user);
}

static struct nncc_callback bad_options(const char *fmt, ...) NNCC_PRINTF(1, 2);
static struct nncc_callback bad_options(const char *fmt, ...)
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

static struct nncc_callback out_of_memory(void)
{
    nncc_fail(NNCC_ERR_NOMEM, "out of memory (callback)");
    return (struct nncc_callback){0};
}

/* Keras falls back to auto for an unknown mode, with a warning. */
static enum nncc_mode check_mode(enum nncc_mode mode, const char *what)
{
    if (mode == NNCC_MODE_AUTO || mode == NNCC_MODE_MIN || mode == NNCC_MODE_MAX)
        return mode;
    warn("%s mode %d is unknown, fallback to auto mode.", what, (int)mode);
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
            fail_training(m, nncc_last_status(), "EarlyStopping: %s", nncc_last_error());
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
            fail_training(m, nncc_last_status(), "EarlyStopping: %s", nncc_last_error());
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
                say("Restoring model weights from the end of the best epoch: %d.",
                    s->best_epoch + 1);
            if (weights_restore(m, &s->best_weights))
                fail_training(m, nncc_last_status(), "EarlyStopping: %s", nncc_last_error());
        }
    }
}

static void es_train_end(void *user, nncc_model *m, const struct nncc_logs *logs)
{
    (void)m, (void)logs;
    struct early_stopping *s = user;
    if (s->stopped_epoch > 0 && s->verbose > 0)
        say("Epoch %d: early stopping", s->stopped_epoch + 1);
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
        return bad_options("EarlyStopping: patience must not be negative, got %d", o.patience);
    if (o.start_from_epoch < 0)
        return bad_options("EarlyStopping: start_from_epoch must not be negative, got %d",
                           o.start_from_epoch);
    if (isnan(o.min_delta))
        return bad_options("EarlyStopping: min_delta is NaN");
    struct early_stopping *s = calloc(1, sizeof *s);
    if (!s || !(s->monitor = copy_string(o.monitor ? o.monitor : "val_loss"))) {
        free(s);
        return out_of_memory();
    }
    enum nncc_mode mode = check_mode(o.mode, "EarlyStopping");
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

/* ---- ModelCheckpoint: the file path ------------------------------------ */

/* Pads s (NUL-terminated, in a buffer of size) to width, right-aligned as
 * Python aligns numbers; with zero, zeros go after the sign. */
static bool pad(char *s, size_t size, int width, bool zero)
{
    size_t len = strlen(s);
    if (width <= 0 || (size_t)width <= len)
        return true;
    if ((size_t)width >= size)
        return false;
    size_t fill = (size_t)width - len, keep = zero && (s[0] == '-' || s[0] == '+') ? 1 : 0;
    memmove(s + keep + fill, s + keep, len - keep + 1);
    memset(s + keep, zero ? '0' : ' ', fill);
    return true;
}

/* Formats one replacement field's value with a Python format spec of the
 * form [0][width][.precision][type], type one of d f F e E g G or none.
 * is_int: the value is the epoch (an int).  false with why set if the spec
 * is not supported or does not fit the value. */
static bool format_value(double v, bool is_int, const char *spec, size_t spec_len, char *out,
                         size_t size, const char **why)
{
    const char *p = spec, *end = spec + spec_len;
    bool zero = false;
    int width = 0, prec = -1;
    char type = 0;
    if (p < end && *p == '0')
        zero = true, p++;
    for (; p < end && *p >= '0' && *p <= '9'; p++)
        if ((width = width * 10 + (*p - '0')) > 256)
            return *why = "a width over 256", false;
    if (p < end && *p == '.') {
        p++;
        if (p == end || *p < '0' || *p > '9')
            return *why = "a precision without digits", false;
        for (prec = 0; p < end && *p >= '0' && *p <= '9'; p++)
            if ((prec = prec * 10 + (*p - '0')) > 100)
                return *why = "a precision over 100", false;
    }
    if (p < end && strchr("dfFeEgG", *p) && *p)
        type = *p++;
    if (p != end)
        return *why = "an unsupported format spec (use [0][width][.precision][d|f|e|g])", false;
    char buf[1024];
    if (type == 'd' || (!type && is_int)) {
        if (!is_int)
            return *why = "format code 'd' for a float value", false;
        if (prec >= 0)
            return *why = "a precision for an integer", false;
        snprintf(buf, sizeof buf, "%lld", (long long)v);
    } else if (!type) {
        if (prec >= 0)
            return *why = "a precision without a type (use .Nf, .Ne or .Ng)", false;
        py_repr(v, buf, sizeof buf);
    } else if (isnan(v) || isinf(v)) {
        bool upper = type == 'F' || type == 'E' || type == 'G';
        snprintf(buf, sizeof buf, "%s%s", isinf(v) && v < 0 ? "-" : "",
                 isnan(v) ? (upper ? "NAN" : "nan") : (upper ? "INF" : "inf"));
    } else {
        int pr = prec < 0 ? 6 : prec, n = 0;
        switch (type) {
        case 'f': n = snprintf(buf, sizeof buf, "%.*f", pr, v); break;
        case 'F': n = snprintf(buf, sizeof buf, "%.*F", pr, v); break;
        case 'e': n = snprintf(buf, sizeof buf, "%.*e", pr, v); break;
        case 'E': n = snprintf(buf, sizeof buf, "%.*E", pr, v); break;
        case 'g': n = snprintf(buf, sizeof buf, "%.*g", pr, v); break;
        default: n = snprintf(buf, sizeof buf, "%.*G", pr, v); break;
        }
        if (n < 0 || (size_t)n >= sizeof buf)
            return *why = "a value too long to format", false;
    }
    if (!pad(buf, sizeof buf, width, zero))
        return *why = "a value too long to format", false;
    if (strlen(buf) >= size)
        return *why = "a path longer than the limit", false;
    strcpy(out, buf);
    return true;
}

/* Python's str.format(epoch=epoch + 1, **logs) for the fields a file path
 * uses: {name} and {name:spec}, with {{ and }} for braces.  NNCC_OK, or the
 * error (naming the path and the field) with nothing written past size. */
static enum nncc_status format_path(const char *fmt, int epoch, const struct nncc_logs *logs,
                                    char *out, size_t size)
{
    size_t k = 0;
    const char *why = NULL;
    char field[64] = "";
    for (const char *p = fmt; *p;) {
        char piece[1100];
        if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
            piece[0] = p[0], piece[1] = '\0';
            p += 2;
        } else if (*p == '}') {
            why = "a single '}'";
            goto bad;
        } else if (*p == '{') {
            const char *name = ++p;
            while (*p && *p != '}' && *p != ':' && *p != '!' && *p != '{')
                p++;
            size_t nlen = (size_t)(p - name);
            snprintf(field, sizeof field, "%.*s", (int)(nlen < 60 ? nlen : 60), name);
            if (!*p) {
                why = "an unterminated field";
                goto bad;
            }
            if (*p == '!' || *p == '{') {
                why = *p == '!' ? "a conversion (!r, !s) is not supported" : "a nested field";
                goto bad;
            }
            if (nlen == 0) {
                why = "positional fields {} are not supported (name a log: {epoch}, {val_loss})";
                goto bad;
            }
            const char *spec = p, *spec_end = p;
            if (*p == ':') {
                spec = ++p;
                while (*p && *p != '}' && *p != '{')
                    p++;
                if (*p != '}') {
                    why = *p ? "a nested field in a format spec" : "an unterminated field";
                    goto bad;
                }
                spec_end = p;
            }
            p++; /* the '}' */
            double v;
            bool is_int = nlen == 5 && strncmp(name, "epoch", 5) == 0;
            if (is_int) {
                v = epoch + 1;
            } else {
                char key[sizeof logs->names[0]];
                bool found = nlen < sizeof key;
                if (found) {
                    memcpy(key, name, nlen);
                    key[nlen] = '\0';
                    found = logs_find(logs, key, &v);
                }
                if (!found) {
                    char keys[NNCC_LOGS_MAX * 41];
                    return nncc_fail(NNCC_ERR_ARG,
                                     "ModelCheckpoint: cannot format the file path \"%s\": no log "
                                     "named \"%s\" (available: epoch%s%s)",
                                     fmt, field, logs && logs->n ? "," : "",
                                     key_list(logs, keys, sizeof keys));
                }
            }
            if (!format_value(v, is_int, spec, (size_t)(spec_end - spec), piece, sizeof piece,
                              &why))
                goto bad;
            field[0] = '\0';
        } else {
            piece[0] = *p++, piece[1] = '\0';
        }
        size_t n = strlen(piece);
        if (k + n >= size)
            return nncc_fail(NNCC_ERR_ARG,
                             "ModelCheckpoint: the file path formatted from \"%s\" is longer than "
                             "%zu bytes",
                             fmt, size - 1);
        memcpy(out + k, piece, n + 1);
        k += n;
    }
    out[k] = '\0';
    return NNCC_OK;
bad:
    if (field[0])
        return nncc_fail(NNCC_ERR_ARG,
                         "ModelCheckpoint: cannot format the file path \"%s\": field \"%s\": %s",
                         fmt, field, why);
    return nncc_fail(NNCC_ERR_ARG, "ModelCheckpoint: cannot format the file path \"%s\": %s", fmt,
                     why);
}

/* mkdir -p of the folder holding path (Keras makes it too). */
static void make_parent_dirs(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path || (size_t)(slash - path) >= sizeof dir)
        return;
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = '\0';
    for (char *p = dir + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(dir, 0777) != 0 && errno != EEXIST)
                return; /* the save reports the real problem */
            *p = c;
            if (!c)
                return;
        }
    }
}

/* ---- ModelCheckpoint ---------------------------------------------------- */

#define PATH_CAP 4096

struct checkpoint {
    char *filepath, *monitor;
    int verbose;
    bool save_best_only, save_weights_only, maximize;
    double best; /* kept across epochs; Keras does not reset it per fit */
    bool warned;
};

static void ck_train_begin(void *user, nncc_model *m, const struct nncc_logs *logs)
{
    (void)m, (void)logs;
    ((struct checkpoint *)user)->warned = false;
}

/* Keras' choice: the weights only (nncc_save_weights), or the whole model
 * with its optimizer state (nncc_save), both atomic. */
static void ck_save(nncc_model *m, const char *path, bool weights_only)
{
    make_parent_dirs(path);
    if (weights_only ? nncc_save_weights(m, path) : nncc_save(m, path))
        fail_training(m, nncc_last_status(), "ModelCheckpoint: %s", nncc_last_error());
}

static void ck_epoch_end(void *user, nncc_model *m, int epoch, struct nncc_logs *logs)
{
    struct checkpoint *s = user;
    char path[PATH_CAP];
    if (format_path(s->filepath, epoch, logs, path, sizeof path)) {
        fail_training(m, nncc_last_status(), "%s", nncc_last_error());
        return;
    }
    if (!s->save_best_only) {
        if (s->verbose > 0)
            say("\nEpoch %d: saving model to %s", epoch + 1, path);
        ck_save(m, path, s->save_weights_only);
        return;
    }
    double current = 0;
    if (!logs_find(logs, s->monitor, &current)) {
        if (!s->warned)
            warn("Can save best model only with %s available, skipping.", s->monitor);
        s->warned = true;
        return;
    }
    if (s->maximize ? current > s->best : current < s->best) {
        if (s->verbose > 0)
            say("\nEpoch %d: %s improved from %.5f to %.5f, saving model to %s", epoch + 1,
                s->monitor, s->best, current, path);
        s->best = current;
        ck_save(m, path, s->save_weights_only);
    } else if (s->verbose > 0) {
        say("\nEpoch %d: %s did not improve from %.5f", epoch + 1, s->monitor, s->best);
    }
}

static void ck_destroy(void *user)
{
    struct checkpoint *s = user;
    if (!s)
        return;
    free(s->filepath);
    free(s->monitor);
    free(s);
}

struct nncc_callback nncc_model_checkpoint_(struct nncc_model_checkpoint_opts o)
{
    if (!o.filepath || !*o.filepath)
        return bad_options("ModelCheckpoint: filepath is %s", o.filepath ? "empty" : "NULL");
    struct checkpoint *s = calloc(1, sizeof *s);
    if (!s || !(s->filepath = copy_string(o.filepath)) ||
        !(s->monitor = copy_string(o.monitor ? o.monitor : "val_loss"))) {
        ck_destroy(s);
        return out_of_memory();
    }
    enum nncc_mode mode = check_mode(o.mode, "ModelCheckpoint");
    s->maximize = mode == NNCC_MODE_MAX ||
                  (mode == NNCC_MODE_AUTO &&
                   (strstr(s->monitor, "acc") || strncmp(s->monitor, "fmeasure", 8) == 0));
    s->best = s->maximize ? -INFINITY : INFINITY;
    s->verbose = o.verbose;
    s->save_best_only = o.save_best_only;
    s->save_weights_only = o.save_weights_only;
    return (struct nncc_callback){
        .user = s,
        .on_train_begin = ck_train_begin,
        .on_epoch_end = ck_epoch_end,
        .destroy = ck_destroy,
    };
}

/* ---- TerminateOnNaN ----------------------------------------------------- */

static void nan_batch_end(void *user, nncc_model *m, int batch, const struct nncc_logs *logs)
{
    (void)user;
    double loss;
    if (logs_find(logs, "loss", &loss) && (isnan(loss) || isinf(loss))) {
        say("Batch %d: Invalid loss, terminating training", batch);
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
    if (logs->n < NNCC_LOGS_MAX || logs_find(logs, "lr", &old))
        nncc_logs_set(logs, "lr", decimal(nncc_get_learning_rate(m)));
    else if (!s->warned_full) {
        warn("ReduceLROnPlateau: the logs are full (%d entries); \"lr\" is not logged",
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
                    fail_training(m, nncc_last_status(), "ReduceLROnPlateau: %s",
                                  nncc_last_error());
                    return;
                }
                if (s->verbose > 0) {
                    char r[40];
                    say("\nEpoch %d: ReduceLROnPlateau reducing learning rate to %s.", epoch + 1,
                        py_repr(new_lr, r, sizeof r));
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
        return bad_options("ReduceLROnPlateau does not support a factor >= 1.0 (or negative). "
                           "Got %g",
                           (double)o.factor);
    if (o.patience < 0 || o.cooldown < 0)
        return bad_options("ReduceLROnPlateau: patience and cooldown must not be negative, got "
                           "%d and %d",
                           o.patience, o.cooldown);
    if (!(o.min_lr >= 0) || isinf(o.min_lr) || isnan(o.min_delta))
        return bad_options("ReduceLROnPlateau: min_lr must be a finite non-negative number and "
                           "min_delta a number, got %g and %g",
                           (double)o.min_lr, (double)o.min_delta);
    struct reduce_lr *s = calloc(1, sizeof *s);
    if (!s || !(s->monitor = copy_string(o.monitor ? o.monitor : "val_loss"))) {
        free(s);
        return out_of_memory();
    }
    enum nncc_mode mode = check_mode(o.mode, "Learning rate reduction");
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
        fail_training(m, NNCC_ERR_IO, "CSVLogger: cannot open '%s': %s", s->filename,
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
        csv_field(s->f, logs_find(logs, s->keys[i], &v) ? py_repr(v, buf, sizeof buf) : "NA",
                  s->sep);
    }
    fputs("\r\n", s->f);
    if (fflush(s->f) != 0 || ferror(s->f)) {
        fail_training(m, NNCC_ERR_IO, "CSVLogger: writing '%s' failed: %s", s->filename,
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
        fail_training(m, NNCC_ERR_IO, "CSVLogger: closing '%s' failed: %s", s->filename,
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
        return bad_options("CSVLogger: filename is %s", o.filename ? "empty" : "NULL");
    char sep = o.separator ? o.separator : ',';
    if (sep == '"' || sep == '\r' || sep == '\n')
        return bad_options("CSVLogger: separator %d cannot separate fields", (int)sep);
    struct csv_logger *s = calloc(1, sizeof *s);
    if (!s || !(s->filename = copy_string(o.filename))) {
        free(s);
        return out_of_memory();
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
