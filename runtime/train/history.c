/*
 * history.c — the History a fit returns: per-epoch logs, keys in the order
 * they first appear (loss, metrics, val_*, lr), as Keras' History.history.
 * Also nncc_logs helpers.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "runtime/train/train.h"

struct nncc_history {
    int n_rows, cap_rows;
    int *epochs;
    struct nncc_logs *rows;
    int n_keys;
    char keys[NNCC_LOGS_MAX][40];
};

double nncc_logs_get(const struct nncc_logs *logs, const char *name)
{
    for (int i = 0; logs && name && i < logs->n; i++)
        if (strcmp(logs->names[i], name) == 0)
            return logs->values[i];
    return NAN;
}

enum nncc_status nncc_logs_set(struct nncc_logs *logs, const char *name, double value)
{
    if (!logs || !name)
        return nncc_fail(NNCC_ERR_ARG, "logs_set: NULL argument");
    if (strlen(name) >= sizeof logs->names[0])
        return nncc_fail(NNCC_ERR_ARG, "logs_set: name \"%s\" is longer than %zu characters",
                         name, sizeof logs->names[0] - 1);
    for (int i = 0; i < logs->n; i++)
        if (strcmp(logs->names[i], name) == 0) {
            logs->values[i] = value;
            return NNCC_OK;
        }
    if (logs->n >= NNCC_LOGS_MAX)
        return nncc_fail(NNCC_ERR_ARG, "logs_set: no room for \"%s\" (%d entries)", name,
                         NNCC_LOGS_MAX);
    snprintf(logs->names[logs->n], sizeof logs->names[0], "%s", name);
    logs->values[logs->n++] = value;
    return NNCC_OK;
}

nncc_history *nncc_history_new(void)
{
    nncc_history *h = calloc(1, sizeof *h);
    if (!h)
        nncc_fail(NNCC_ERR_NOMEM, "out of memory (history)");
    return h;
}

enum nncc_status nncc_history_append(nncc_history *h, int epoch, const struct nncc_logs *logs)
{
    if (h->n_rows == h->cap_rows) {
        int cap = h->cap_rows ? h->cap_rows * 2 : 16;
        int *e = realloc(h->epochs, sizeof *e * (size_t)cap);
        if (e)
            h->epochs = e;
        struct nncc_logs *r = realloc(h->rows, sizeof *r * (size_t)cap);
        if (r)
            h->rows = r;
        if (!e || !r)
            return nncc_fail(NNCC_ERR_NOMEM, "out of memory (history)");
        h->cap_rows = cap;
    }
    h->epochs[h->n_rows] = epoch;
    h->rows[h->n_rows++] = *logs;
    for (int i = 0; i < logs->n; i++) {
        bool known = false;
        for (int k = 0; k < h->n_keys && !known; k++)
            known = strcmp(h->keys[k], logs->names[i]) == 0;
        if (!known && h->n_keys < NNCC_LOGS_MAX)
            snprintf(h->keys[h->n_keys++], sizeof h->keys[0], "%s", logs->names[i]);
    }
    return NNCC_OK;
}

int nncc_history_num_epochs(const nncc_history *h) { return h ? h->n_rows : 0; }

int nncc_history_num_keys(const nncc_history *h) { return h ? h->n_keys : 0; }

const char *nncc_history_key(const nncc_history *h, int i)
{
    return h && i >= 0 && i < h->n_keys ? h->keys[i] : NULL;
}

int nncc_history_epoch(const nncc_history *h, int i)
{
    return h && i >= 0 && i < h->n_rows ? h->epochs[i] : -1;
}

double nncc_history_get(const nncc_history *h, const char *key, int i)
{
    if (!h || i < 0 || i >= h->n_rows)
        return NAN;
    return nncc_logs_get(&h->rows[i], key);
}

enum nncc_status nncc_history_write_csv(const nncc_history *h, const char *path)
{
    if (!h || !path)
        return nncc_fail(NNCC_ERR_ARG, "history_write_csv: NULL argument");
    FILE *f = fopen(path, "w");
    if (!f)
        return nncc_fail(NNCC_ERR_IO, "cannot write '%s'", path);
    fprintf(f, "epoch");
    for (int k = 0; k < h->n_keys; k++)
        fprintf(f, ",%s", h->keys[k]);
    fprintf(f, "\n");
    for (int r = 0; r < h->n_rows; r++) {
        fprintf(f, "%d", h->epochs[r]);
        for (int k = 0; k < h->n_keys; k++) {
            const struct nncc_logs *row = &h->rows[r];
            int at = -1;
            for (int i = 0; i < row->n && at < 0; i++)
                if (strcmp(row->names[i], h->keys[k]) == 0)
                    at = i;
            if (at < 0)
                fprintf(f, ","); /* e.g. val_* on an epoch without validation */
            else
                fprintf(f, ",%.17g", row->values[at]);
        }
        fprintf(f, "\n");
    }
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad)
        return nncc_fail(NNCC_ERR_IO, "writing '%s' failed", path);
    return NNCC_OK;
}

void nncc_history_free(nncc_history *h)
{
    if (!h)
        return;
    free(h->epochs);
    free(h->rows);
    free(h);
}
