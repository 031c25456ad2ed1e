/*
 * predict.c — nncc_predict: inference over many samples in batches.
 *
 * nncc_predict / nncc_predict_n take arrays and check each one's shape
 * against its model input before reading a float (a short buffer was read
 * past its end); nncc_predict_rows / _rows_n take raw rows and trust the
 * caller's row count, as their contract in nncc.h says.
 *
 * Keras semantics: inference mode, batches of batch_size (default 32) with
 * the partial last batch kept, outputs concatenated along the samples.
 * Batches read the caller's rows and write the result rows in place, so
 * nothing is copied; one workspace of ws_fixed + batch_size × ws_per_sample
 * floats (the fixed part: kernel scratch space)
 * serves every batch.
 */
#include <stdlib.h>
#include <string.h>
#include "runtime/train/train.h"
#include "runtime/oracle/interp.h"
#include "frontend/onnx.h"

enum nncc_status nncc_predict_ensure_built(nncc_model *m)
{
    if (m->exec)
        return NNCC_OK;
    struct nncc_lower_opts lo = {.model_name = m->name};
    struct ir_plan plan[2];
    enum nncc_status st = nncc_lower(&m->program, &lo, plan);
    struct cg_entry ce = {.plan = &plan[0], .name = "nncc_forward", .prefix = ""};
    if (!st && !(m->exec = nncc_exec_build(&ce, 1, m->name)))
        st = nncc_last_status();
    if (m->exec)
        m->release_runtime = nncc_runtime_release;
    ir_plan_free(&plan[0]);
    return st;
}

static enum nncc_status run_batches(nncc_model *m, const float *const *xs, int64_t n,
                                    struct nncc_array **outs, struct nncc_predict_opts o)
{
    const struct ir_program *p = &m->program;
    int bs = o.batch_size ? o.batch_size : 32;
    if (bs > n)
        bs = (int)n;
    struct nncc_exec_entry *e = NULL;
    float *ws = NULL;
    if (!o.reference) {
        if (nncc_predict_ensure_built(m) != NNCC_OK)
            return nncc_last_status();
        e = &m->exec->entry[0];
        size_t floats = nncc_exec_ws_floats(e, bs);
        if (floats && !(ws = malloc(floats * sizeof *ws)))
            return nncc_fail(NNCC_ERR_NOMEM, "predict: out of memory (workspace of %zu floats)",
                             floats);
    }
    const float **in = malloc(sizeof *in * (size_t)p->n_inputs);
    float **out = malloc(sizeof *out * (size_t)p->n_outputs);
    enum nncc_status st = NNCC_OK;
    if (!in || !out)
        st = nncc_fail(NNCC_ERR_NOMEM, "predict: out of memory");
    for (int64_t start = 0; start < n && !st; start += bs) {
        int chunk = (int)(n - start < bs ? n - start : bs);
        for (int i = 0; i < p->n_inputs; i++)
            in[i] = xs[i] + start * ir_shape_numel(p->inputs[i]->shape, 1);
        for (int k = 0; k < p->n_outputs; k++)
            out[k] = outs[k]->data + start * ir_shape_numel(p->outputs[k]->shape, 1);
        if (e)
            e->forward(chunk, (const float *const *)e->params, in, out, ws);
        else
            st = nncc_interp_run(p, chunk, in, out);
    }
    free(in);
    free(out);
    free(ws);
    return st;
}

enum nncc_status nncc_predict_rows_n_(nncc_model *m, const float *const *xs, int64_t n,
                                      struct nncc_array **outs, struct nncc_predict_opts o)
{
    if (!model_check_ready(m))
        return nncc_last_status();
    if (!xs || !outs)
        return nncc_fail(NNCC_ERR_ARG, "predict: inputs or outputs are NULL");
    if (n <= 0)
        return nncc_fail(NNCC_ERR_ARG, "predict: the number of samples must be positive, got %lld",
                         (long long)n);
    if (o.batch_size < 0)
        return nncc_fail(NNCC_ERR_ARG, "predict: batch_size must be positive, got %d",
                         o.batch_size);
    const struct ir_program *p = &m->program;
    for (int i = 0; i < p->n_inputs; i++)
        if (!xs[i])
            return nncc_fail(NNCC_ERR_ARG, "predict: input %d (\"%s\") is NULL", i,
                             p->inputs[i]->name);
    enum nncc_status st = NNCC_OK;
    for (int k = 0; k < p->n_outputs; k++)
        outs[k] = NULL;
    for (int k = 0; k < p->n_outputs && !st; k++) {
        struct nncc_shape s = p->outputs[k]->shape;
        s.dim[0] = n;
        if (!(outs[k] = nncc_array_new(s)))
            st = nncc_last_status();
    }
    if (!st)
        st = run_batches(m, xs, n, outs, o);
    if (st)
        for (int k = 0; k < p->n_outputs; k++) {
            nncc_array_free(outs[k]);
            outs[k] = NULL;
        }
    return st;
}

static bool single_io(const nncc_model *m)
{
    if (m->n_inputs == 1 && m->n_outputs == 1)
        return true;
    nncc_fail(NNCC_ERR_ARG, "predict: model \"%s\" has %d inputs and %d outputs; use nncc_predict_n()",
              m->name, m->n_inputs, m->n_outputs);
    return false;
}

struct nncc_array *nncc_predict_rows_(nncc_model *m, const float *x, int64_t n,
                                      struct nncc_predict_opts o)
{
    if (!model_check_ready(m) || !single_io(m))
        return NULL;
    struct nncc_array *out = NULL;
    if (nncc_predict_rows_n_(m, &x, n, &out, o) != NNCC_OK)
        return NULL;
    return out;
}

/* Checks every xs[i] against input i (rank, each non-batch dim) and that
 * all have the same rows; the rows' data is then safe to read. */
static enum nncc_status check_inputs(const nncc_model *m, const struct nncc_array *const *xs)
{
    const struct ir_program *p = &m->program;
    char a[160], b[160];
    if (!xs)
        return nncc_fail(NNCC_ERR_ARG, "predict: inputs are NULL");
    for (int i = 0; i < p->n_inputs; i++) {
        const struct nncc_array *x = xs[i];
        struct nncc_shape in = p->inputs[i]->shape;
        if (!x || !x->data)
            return nncc_fail(NNCC_ERR_ARG, "predict: model \"%s\": input %d (\"%s\") is NULL",
                             m->name, i, p->inputs[i]->name);
        bool same = x->shape.rank == in.rank;
        for (int d = 1; same && d < in.rank; d++)
            same = x->shape.dim[d] == in.dim[d];
        if (!same)
            return nncc_fail(NNCC_ERR_SHAPE,
                             "predict: model \"%s\": x of shape %s does not match the input \"%s\" "
                             "%s",
                             m->name, ir_dims_str(x->shape, a, sizeof a), p->inputs[i]->name,
                             nncc_shape_str(in, b, sizeof b));
        if (i > 0 && x->shape.dim[0] != xs[0]->shape.dim[0])
            return nncc_fail(NNCC_ERR_SHAPE,
                             "predict: model \"%s\": input \"%s\" has %lld rows but \"%s\" has %lld",
                             m->name, p->inputs[i]->name, (long long)x->shape.dim[0],
                             p->inputs[0]->name, (long long)xs[0]->shape.dim[0]);
    }
    return NNCC_OK;
}

/* A model imported from ONNX "whole" takes its inputs as ONNX does, one
 * tensor each, without the sample axis nncc adds: true when every xs[i] is
 * exactly input i's shape without that axis (one row then). */
static bool whole_sample(const nncc_model *m, const struct nncc_array *const *xs)
{
    const struct ir_program *p = &m->program;
    if (!xs || !onnx_model_whole(m))
        return false;
    for (int i = 0; i < p->n_inputs; i++) {
        struct nncc_shape in = p->inputs[i]->shape;
        if (!xs[i] || xs[i]->shape.rank != in.rank - 1)
            return false;
        for (int d = 1; d < in.rank; d++)
            if (xs[i]->shape.dim[d - 1] != in.dim[d])
                return false;
    }
    return true;
}

enum nncc_status nncc_predict_n_(nncc_model *m, const struct nncc_array *const *xs,
                                 struct nncc_array **outs, struct nncc_predict_opts o)
{
    if (!model_check_ready(m))
        return nncc_last_status();
    if (whole_sample(m, xs)) {
        const struct ir_program *p = &m->program;
        const float **rows = malloc(sizeof *rows * (size_t)p->n_inputs);
        if (!rows)
            return nncc_fail(NNCC_ERR_NOMEM, "predict: out of memory");
        for (int i = 0; i < p->n_inputs; i++)
            rows[i] = xs[i]->data;
        enum nncc_status st = nncc_predict_rows_n_(m, rows, 1, outs, o);
        free(rows);
        for (int k = 0; !st && k < p->n_outputs; k++) { /* drop the sample axis */
            struct nncc_shape *s = &outs[k]->shape;
            if (s->rank > 1) {
                for (int d = 1; d < s->rank; d++)
                    s->dim[d - 1] = s->dim[d];
                s->rank--;
            }
        }
        return st;
    }
    if (check_inputs(m, xs))
        return nncc_last_status();
    const struct ir_program *p = &m->program;
    const float **rows = malloc(sizeof *rows * (size_t)p->n_inputs);
    if (!rows)
        return nncc_fail(NNCC_ERR_NOMEM, "predict: out of memory");
    for (int i = 0; i < p->n_inputs; i++)
        rows[i] = xs[i]->data;
    enum nncc_status st = nncc_predict_rows_n_(m, rows, xs[0]->shape.dim[0], outs, o);
    free(rows);
    return st;
}

struct nncc_array *nncc_predict_(nncc_model *m, const struct nncc_array *x,
                                 struct nncc_predict_opts o)
{
    if (!model_check_ready(m) || !single_io(m))
        return NULL;
    struct nncc_array *out = NULL;
    if (nncc_predict_n_(m, &x, &out, o) != NNCC_OK)
        return NULL;
    return out;
}

char *nncc_model_emit_c(const nncc_model *m)
{
    if (!model_check_ready(m))
        return NULL;
    char *src = NULL;
    size_t len;
    int64_t ws;
    struct nncc_lower_opts lo = {.model_name = m->name};
    struct ir_plan plan[2];
    enum nncc_status st = nncc_lower(&m->program, &lo, plan);
    if (!st)
        st = nncc_codegen_forward(&plan[0], m->name, &src, &len, &ws);
    ir_plan_free(&plan[0]);
    return st ? NULL : src;
}
