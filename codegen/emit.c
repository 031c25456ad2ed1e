/*
 * emit.c — the driver: programs in, one C translation unit out.
 *
 * Buffers: inputs are in[k], parameters and optimizer slots p[k] (program
 * order), view ops (reshape, inference dropout) reuse their input's memory,
 * a node whose value is a program output writes straight into out[k], and
 * every other value gets its own workspace region.  Batched values take
 * `n × (per-sample size)` floats at `ws_fixed + n × (earlier per-sample
 * sizes)`; values without a batch dimension (weight gradients, the loss)
 * take a fixed region at the front.  So a step needs ws_fixed + n ×
 * ws_per_sample floats for any batch n, the fixed part also covering the
 * scratch space kernels share, placed after the batched regions.  (Reusing regions by liveness is
 * the memory planner's job, passes/memplan.c.)
 */
#include <stdlib.h>
#include <string.h>
#include "codegen.h"
#include "../passes/passes.h"
#include "../ir/dropout_rng.h"

int cg_id(const struct cg *cg, const struct ir_node *n) { return cg->local[n->id]; }

const char *cg_scratch(struct cg *cg, int64_t floats)
{
    if (floats > cg->scratch_max)
        cg->scratch_max = floats;
    return cg->scratch;
}

bool cg_needs_gemm(enum ir_op op)
{
    return op == IR_MATMUL || op == IR_MATMUL_NT || op == IR_MATMUL_TN || op == IR_CONV2D ||
           op == IR_CONV2D_GRAD_INPUT || op == IR_CONV2D_GRAD_FILTER;
}

void emit_leaf(struct cg *cg, const struct ir_node *n)
{
    (void)cg, (void)n; /* inputs, parameters and views need no kernel */
}

static int output_slot(const struct ir_program *p, const nncc_tensor *t)
{
    for (int k = 0; k < p->n_outputs; k++)
        if (p->outputs[k] == t)
            return k;
    return -1;
}

static bool needs_region(const struct ir_program *p, const struct ir_node *n)
{
    return n->op != IR_INPUT && n->op != IR_PARAM && !ir_op(n->op)->view &&
           output_slot(p, n->out) < 0;
}

/* Emits one entry's kernels and function into tu. */
static enum nncc_status emit_entry(struct cg_entry *e, struct cw *tu)
{
    const struct ir_program *p = e->p;
    struct cg cg = {.p = p, .body = {.indent = 1}, .prefix = e->prefix};
    cg.buf = calloc((size_t)p->g->n_nodes + 1, sizeof *cg.buf);
    cg.local = calloc((size_t)p->g->n_nodes + 1, sizeof *cg.local);
    if (!cg.buf || !cg.local) {
        free(cg.buf);
        free(cg.local);
        return nncc_fail(NNCC_ERR_NOMEM, "out of memory (codegen)");
    }
    for (int i = 0; i < p->n_nodes; i++)
        cg.local[p->nodes[i]->id] = i;
    int64_t fixed = 0, per_sample = 0;
    for (int i = 0; i < p->n_nodes; i++)
        if (needs_region(p, p->nodes[i]) && !p->nodes[i]->out->batched)
            fixed += cg_numel(p->nodes[i]->out);
    int64_t at_fixed = 0;
    int n_params = 0;
    enum nncc_status st = NNCC_OK;
    for (int i = 0; i < p->n_nodes && !st; i++) {
        const struct ir_node *n = p->nodes[i];
        const nncc_tensor *t = n->out;
        char expr[96];
        int slot = output_slot(p, t);
        if (n->op == IR_INPUT) {
            int k = 0;
            while (k < p->n_inputs && p->inputs[k] != t)
                k++;
            NNCC_ASSERT(k < p->n_inputs);
            snprintf(expr, sizeof expr, "in[%d]", k);
        } else if (n->op == IR_PARAM) {
            snprintf(expr, sizeof expr, "p[%d]", n_params++);
        } else if (ir_op(n->op)->view) {
            snprintf(expr, sizeof expr, "%s", cg.buf[n->in[0]->id]);
        } else if (slot >= 0) {
            snprintf(expr, sizeof expr, "out[%d]", slot);
        } else {
            snprintf(expr, sizeof expr, "t%d", i);
            if (t->batched) {
                cw_line(&cg.body, "float *t%d = ws + %lldL + (size_t)n * %lldL;", i,
                        (long long)fixed, (long long)per_sample);
                per_sample += cg_numel(t);
            } else {
                cw_line(&cg.body, "float *t%d = ws + %lldL;", i, (long long)at_fixed);
                at_fixed += cg_numel(t);
            }
        }
        if (!(cg.buf[t->id] = strdup(expr)))
            st = nncc_fail(NNCC_ERR_NOMEM, "out of memory (codegen)");
    }
    snprintf(cg.scratch, sizeof cg.scratch, "(ws + %lldL + (size_t)n * %lldL)", (long long)fixed,
             (long long)per_sample);
    for (int i = 0; i < p->n_nodes && !st; i++)
        ir_op(p->nodes[i]->op)->emit(&cg, p->nodes[i]);
    fixed += cg.scratch_max; /* reported with the fixed part: it does not grow with n */
    /* Outputs that are views, inputs or parameters are copied out. */
    for (int k = 0; k < p->n_outputs && !st; k++) {
        char want[32];
        snprintf(want, sizeof want, "out[%d]", k);
        const nncc_tensor *t = p->outputs[k];
        if (strcmp(cg.buf[t->id], want) != 0)
            cw_line(&cg.body, "memcpy(out[%d], %s, sizeof(float) * %s%lldL);", k, cg.buf[t->id],
                    t->batched ? "(size_t)n * " : "", (long long)cg_numel(t));
    }

    cw_raw(tu, "%s", cg.defs.s ? cg.defs.s : "");
    cw_raw(tu, "\n");
    cw_line(tu, "const long %s_ws_fixed = %lldL;", e->name, (long long)fixed);
    cw_line(tu, "const long %s_ws_per_sample = %lldL;", e->name, (long long)per_sample);
    const char *sig = e->kind == CG_FORWARD
                          ? "(int n, const float *const *p, const float *const *in,\n"
                            "        float *const *out, float *ws)"
                          : "(int n, float *const *p, const float *const *in,\n"
                            "        float *const *out, float *ws, const double *h)";
    cw_line(tu, "void %s%s;", e->name, sig);
    cw_line(tu, "void %s%s", e->name, sig);
    cw_line(tu, "{");
    cw_line(tu, "    (void)p, (void)in, (void)ws;");
    if (e->kind == CG_STEP)
        cw_line(tu, "    (void)h;");
    cw_raw(tu, "%s", cg.body.s ? cg.body.s : "");
    cw_line(tu, "}");
    if (cg.defs.oom || cg.body.oom)
        st = nncc_fail(NNCC_ERR_NOMEM, "out of memory (codegen)");
    e->ws_fixed = fixed;
    e->ws_per_sample = per_sample;
    for (int i = 0; i < p->g->n_nodes; i++)
        free(cg.buf[i]);
    free(cg.buf);
    free(cg.local);
    cw_free(&cg.defs);
    cw_free(&cg.body);
    return st;
}

enum nncc_status nncc_codegen(struct cg_entry *entries, int n_entries, const char *model_name,
                              char **source, size_t *len)
{
    struct cw tu = {0};
    char name[400];
    cw_line(&tu, "/* Generated by nncc %s for model \"%s\". */", NNCC_VERSION_STRING,
            cg_name(model_name, name, sizeof name));
    cw_line(&tu, "#include <stddef.h>");
    cw_line(&tu, "#include <stdint.h>");
    cw_line(&tu, "#include <string.h>");
    cw_line(&tu, "#include <tgmath.h>");
    cw_raw(&tu, "\n");
    cw_line(&tu, "#define K(x) ((float)(x))");
    cw_raw(&tu, "\n");
    cw_line(&tu, "const long nncc_abi_version = %d;", NNCC_ABI_VERSION);
    bool dropout = false;
    for (int i = 0; i < n_entries; i++)
        for (int k = 0; k < entries[i].p->n_nodes; k++)
            dropout |= entries[i].p->nodes[k]->op == IR_DROPOUT_TRAIN ||
                       entries[i].p->nodes[k]->op == IR_DROPOUT_GRAD;
    if (dropout)
        cw_line(&tu, "%s", NNCC_XSTR(NNCC_DROPOUT_RNG_SRC));
    bool gemm = false;
    for (int i = 0; i < n_entries; i++)
        for (int k = 0; k < entries[i].p->n_nodes; k++)
            gemm |= cg_needs_gemm(entries[i].p->nodes[k]->op);
    if (gemm)
        cw_raw(&tu, "%s\n", nncc_prelude_gemm_text);
    enum nncc_status st = NNCC_OK;
    for (int i = 0; i < n_entries && !st; i++) {
        if (nncc_dump_wanted("emit")) {
            fprintf(stderr, "; model \"%s\", %s, before code generation\n", model_name,
                    entries[i].name);
            ir_print(entries[i].p, stderr);
        }
        st = emit_entry(&entries[i], &tu);
    }
    if (!st && tu.oom)
        st = nncc_fail(NNCC_ERR_NOMEM, "out of memory (codegen)");
    if (st) {
        cw_free(&tu);
        return st;
    }
    *source = tu.s;
    *len = tu.len;
    return NNCC_OK;
}

enum nncc_status nncc_codegen_forward(const struct ir_program *p, const char *model_name,
                                      char **source, size_t *len, int64_t *ws_per_sample)
{
    struct cg_entry e = {.p = p, .name = "nncc_forward", .prefix = "", .kind = CG_FORWARD};
    enum nncc_status st = nncc_codegen(&e, 1, model_name, source, len);
    /* Inference values are all batched; a fixed region would be a bug. */
    NNCC_ASSERT(st || e.ws_fixed == 0);
    *ws_per_sample = e.ws_per_sample;
    return st;
}
