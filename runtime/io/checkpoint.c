/*
 * checkpoint.c — Keras' ModelCheckpoint callback: after each epoch, the
 * model (nncc_save) or its weights (nncc_save_weights) to a path formatted
 * from the epoch and the logs as Python's str.format would, optionally only
 * when the monitored value improves.  It lives with the model files it
 * writes (runtime/io/), above training (runtime/train/), whose callback
 * helpers it uses through runtime/train/callbacks.h.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "runtime/train/callbacks.h"

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
        cb_py_repr(v, buf, sizeof buf);
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
                    found = cb_logs_find(logs, key, &v);
                }
                if (!found) {
                    char keys[NNCC_LOGS_MAX * 41];
                    return nncc_fail(NNCC_ERR_ARG,
                                     "ModelCheckpoint: cannot format the file path \"%s\": no log "
                                     "named \"%s\" (available: epoch%s%s)",
                                     fmt, field, logs && logs->n ? "," : "",
                                     cb_key_list(logs, keys, sizeof keys));
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
        cb_fail_training(m, nncc_last_status(), "ModelCheckpoint: %s", nncc_last_error());
}

static void ck_epoch_end(void *user, nncc_model *m, int epoch, struct nncc_logs *logs)
{
    struct checkpoint *s = user;
    char path[PATH_CAP];
    if (format_path(s->filepath, epoch, logs, path, sizeof path)) {
        cb_fail_training(m, nncc_last_status(), "%s", nncc_last_error());
        return;
    }
    if (!s->save_best_only) {
        if (s->verbose > 0)
            cb_say("\nEpoch %d: saving model to %s", epoch + 1, path);
        ck_save(m, path, s->save_weights_only);
        return;
    }
    double current = 0;
    if (!cb_logs_find(logs, s->monitor, &current)) {
        if (!s->warned)
            cb_warn("Can save best model only with %s available, skipping.", s->monitor);
        s->warned = true;
        return;
    }
    if (s->maximize ? current > s->best : current < s->best) {
        if (s->verbose > 0)
            cb_say("\nEpoch %d: %s improved from %.5f to %.5f, saving model to %s", epoch + 1,
                s->monitor, s->best, current, path);
        s->best = current;
        ck_save(m, path, s->save_weights_only);
    } else if (s->verbose > 0) {
        cb_say("\nEpoch %d: %s did not improve from %.5f", epoch + 1, s->monitor, s->best);
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
        return cb_bad_options("ModelCheckpoint: filepath is %s", o.filepath ? "empty" : "NULL");
    struct checkpoint *s = calloc(1, sizeof *s);
    if (!s || !(s->filepath = cb_copy_string(o.filepath)) ||
        !(s->monitor = cb_copy_string(o.monitor ? o.monitor : "val_loss"))) {
        ck_destroy(s);
        return cb_out_of_memory();
    }
    enum nncc_mode mode = cb_check_mode(o.mode, "ModelCheckpoint");
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

