/*
 * summary.c — Keras 2.15's model.summary() table (keras/utils/layer_utils.py).
 *
 * Sequential-like models (a Sequential, or a functional chain with one node
 * per depth, single inputs and no shared layers) print 65 columns wide with
 * columns ending at 29/55/65; other models print 98 wide with a "Connected
 * to" column, ending at 29/58/68/98.  Cells that do not fit wrap as Keras
 * wraps them: cut at the column width, or earlier right after "),", "},",
 * "],", "',".  Every layer row is followed by a row of spaces.  Totals give
 * the float32 memory size ("198.79 KB").
 */
#include <stdlib.h>
#include <string.h>
#include "frontend.h"
#include "onnx.h"

/* A growable string. */
struct str {
    char *s;
    size_t len, cap;
};

static bool str_add(struct str *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 128;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p)
            return false;
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
    return true;
}

static bool str_puts(struct str *b, const char *s) { return str_add(b, s, strlen(s)); }

static void pad_to(struct str *line, size_t pos)
{
    while (line->len < pos)
        str_add(line, " ", 1);
}

/* Keras' print_row: fields are consumed column by column, line by line. */
static void print_row(FILE *out, const char *const *fields, int ncols, const int *pos)
{
    const char *left[4];
    for (int c = 0; c < ncols; c++)
        left[c] = fields[c];
    static const char *const breaks[] = {"),", "},", "],", "',"};
    for (;;) {
        bool any = false;
        for (int c = 0; c < ncols; c++)
            any |= left[c][0] != '\0';
        if (!any)
            break;
        struct str line = {0};
        for (int c = 0; c < ncols; c++) {
            int start = c > 0 ? pos[c - 1] : 0;
            bool last = c == ncols - 1;
            int space = last ? 0 : 2;
            int cutoff = pos[c] - start - space - (last ? 0 : 1);
            size_t have = strlen(left[c]);
            size_t fit = cutoff < 0 ? 0 : (size_t)cutoff < have ? (size_t)cutoff : have;
            /* Break right after the earliest "),"-like mark within the fit. */
            size_t best = SIZE_MAX;
            for (size_t k = 0; k < 4; k++) {
                for (size_t i = 0; i + 2 <= fit; i++)
                    if (left[c][i] == breaks[k][0] && left[c][i + 1] == breaks[k][1]) {
                        if (i + 2 < best)
                            best = i + 2;
                        break;
                    }
            }
            size_t consumed = cutoff < 0 ? 0 : (size_t)cutoff;
            if (best != SIZE_MAX) {
                fit = best;
                consumed = best;
            }
            if (c == 0)
                str_add(&line, " ", 1);
            str_add(&line, left[c], fit);
            for (int s = 0; s < space; s++)
                str_add(&line, " ", 1);
            left[c] += consumed < have ? consumed : have;
            pad_to(&line, (size_t)pos[c]);
        }
        fprintf(out, "%s\n", line.s ? line.s : "");
        free(line.s);
    }
}

static void rule(FILE *out, char c, int n)
{
    for (int i = 0; i < n; i++)
        fputc(c, out);
    fputc('\n', out);
}

/* Keras' readable_memory_size. */
static void memory_str(double bytes, char *buf, size_t size)
{
    static const char *const units[] = {"Byte", "KB", "MB", "GB", "TB", "PB"};
    for (int i = 0; i < 6; i++) {
        if (bytes / 1024 < 1) {
            snprintf(buf, size, "%.2f %s", bytes, units[i]);
            return;
        }
        bytes /= 1024;
    }
    snprintf(buf, size, "%.2f %s", bytes, units[5]);
}

/* Keras' test for printing a functional model in the simple layout. */
static bool sequential_like(const nncc_model *m)
{
    if (m->sequential)
        return true;
    for (int i = 0; i < m->n_net; i++) {
        int same_depth = 0;
        for (int k = 0; k < m->n_net; k++)
            same_depth += m->net[k].depth == m->net[i].depth;
        const struct layer_call *c = &m->net[i].layer->calls[m->net[i].call];
        if (same_depth > 1 || c->n_in > 1)
            return false;
    }
    for (int i = 0; i < m->n_layers; i++) {
        int nodes = 0;
        for (int k = 0; k < m->n_net; k++)
            nodes += m->net[k].layer == m->layers[i];
        if (nodes > 1)
            return false;
    }
    return true;
}

static void output_shape_str(const nncc_layer *l, char *buf, size_t size)
{
    struct nncc_shape s;
    enum nncc_status saved = nncc_last_status();
    if (nncc_layer_output_shape(l, &s) != NNCC_OK) {
        snprintf(buf, size, "multiple");
        if (saved == NNCC_OK)
            nncc_clear_error();
        return;
    }
    /* An imported ONNX node shows ONNX's shape (NCHW), not how nncc stores
     * it (frontend/onnx.h); in a model imported whole, without the sample
     * axis nncc adds. */
    const struct onnx_node *on = onnx_layer_node(l);
    if (on && on->out_shape.rank > 0)
        s = on->out_shape;
    char sh[160];
    nncc_shape_str(s, sh, sizeof sh);
    if (l->kind == LAYER_INPUT)
        snprintf(buf, size, "[%s]", sh); /* an InputLayer reports a list */
    else
        snprintf(buf, size, "%s", sh);
}

enum nncc_status nncc_summary(const nncc_model *m, FILE *out)
{
    if (!out)
        return nncc_fail(NNCC_ERR_ARG, "summary: the output stream is NULL");
    if (!model_check_ready(m))
        return nncc_last_status();
    bool simple = sequential_like(m);
    int width = simple ? 65 : 98;
    int pos4[4] = {29, 58, 68, 98}, pos3[3] = {29, 55, 65};
    const int *pos = simple ? pos3 : pos4;
    int ncols = simple ? 3 : 4;

    fprintf(out, "Model: \"%s\"\n", m->name);
    rule(out, '_', width);
    const char *head[4] = {"Layer (type)", "Output Shape", "Param #", "Connected to"};
    print_row(out, head, ncols, pos);
    rule(out, '=', width);

    for (int i = 0; i < m->n_layers; i++) {
        const nncc_layer *l = m->layers[i];
        char name[600], shape[256], params[32];
        snprintf(name, sizeof name, "%s (%s)", l->name, nncc_layer_type(l));
        output_shape_str(l, shape, sizeof shape);
        snprintf(params, sizeof params, "%lld", (long long)nncc_layer_count_params(l));
        struct str conn = {0};
        str_puts(&conn, "[");
        bool first = true;
        for (int k = 0; !simple && k < l->n_calls; k++) {
            if (!model_has_node(m, l, k))
                continue;
            const struct layer_call *c = &l->calls[k];
            for (int j = 0; j < c->n_in; j++) {
                char item[600];
                snprintf(item, sizeof item, "%s'%s[%d][0]'", first ? "" : ", ",
                         c->in[j]->layer->name, c->in[j]->node_index);
                str_puts(&conn, item);
                first = false;
            }
        }
        str_puts(&conn, "]");
        const char *fields[4] = {name, shape, params, conn.s ? conn.s : "[]"};
        print_row(out, fields, ncols, pos);
        free(conn.s);
        for (int c = 0; c < width; c++)
            fputc(' ', out);
        fputc('\n', out);
    }
    rule(out, '=', width);

    int64_t total = nncc_model_count_params(m), trainable = nncc_model_count_trainable_params(m);
    char a[64], b[64], c[64];
    memory_str((double)total * 4, a, sizeof a);
    memory_str((double)trainable * 4, b, sizeof b);
    memory_str((double)(total - trainable) * 4, c, sizeof c);
    fprintf(out, "Total params: %lld (%s)\n", (long long)total, a);
    fprintf(out, "Trainable params: %lld (%s)\n", (long long)trainable, b);
    fprintf(out, "Non-trainable params: %lld (%s)\n", (long long)(total - trainable), c);
    rule(out, '_', width);
    return ferror(out) ? nncc_fail(NNCC_ERR_IO, "summary: writing failed") : NNCC_OK;
}
