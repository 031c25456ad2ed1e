/*
 * emit.c — the driver: programs in, one C translation unit out.
 *
 * Buffers: inputs are in[k], parameters and optimizer slots p[k] (program
 * order), view ops (reshape, inference dropout) reuse their input's memory,
 * a node whose value is a program output writes straight into out[k], and
 * every other value gets a workspace region from the plan's memory plan
 * (ir/plan.h, made by passes/memplan.c), which reuses regions by liveness.
 * Codegen runs no pass: each entry comes with a finished plan.  Values without a batch dimension (weight
 * gradients, the loss) live in the fixed arena at the front, `ws + offset`;
 * batched values in the batched arena after it, at `ws + fixed + n ×
 * offset` with offsets and sizes in floats per sample.  So a step needs
 * ws_fixed + n × ws_per_sample floats for any batch n, the fixed part also
 * covering the scratch space kernels share, placed after the batched arena.
 */
#include <stdlib.h>
#include <string.h>
#include "codegen/codegen.h"
#include "ir/dropout_rng.h"

int cg_id(const struct cg *cg, const struct ir_node *n) { return cg->local[n->id]; }

const struct ir_tile *cg_tile(const struct cg *cg, const struct ir_node *n)
{
    return &cg->plan->tiles[cg_id(cg, n)];
}

const char *cg_scratch(struct cg *cg, int64_t floats)
{
    if (floats > cg->scratch_max)
        cg->scratch_max = floats;
    return cg->scratch;
}

bool cg_needs_gemm(enum ir_op op)
{
    return op == IR_MATMUL || op == IR_MATMUL_NT || op == IR_MATMUL_TN || op == IR_CONV2D ||
           op == IR_CONV2D_GRAD_INPUT || op == IR_CONV2D_GRAD_FILTER || op == IR_CONV2D_TRANSPOSE ||
           op == IR_BATCH_MATMUL || op == IR_BATCH_MATMUL_SUM;
}

void emit_leaf(struct cg *cg, const struct ir_node *n)
{
    (void)cg, (void)n; /* inputs, parameters and views need no kernel */
}

/* codegen's per-op table, from ir/ops.def's emitter column: an op whose
 * emitter is missing fails to link, and the table has a row per op. */
typedef void (*cg_emit_fn)(struct cg *cg, const struct ir_node *n);
#define OP(id, name, arity, view, reduces, shape, ref, emit) \
    void emit(struct cg *cg, const struct ir_node *n);
#include "ir/ops.def"
#undef OP
static const cg_emit_fn emitters[] = {
#define OP(id, name, arity, view, reduces, shape, ref, emit) [IR_##id] = emit,
#include "ir/ops.def"
#undef OP
};
_Static_assert(sizeof emitters / sizeof emitters[0] == IR_OP_COUNT, "an emitter per op");

static int output_slot(const struct ir_program *p, const nncc_tensor *t)
{
    for (int k = 0; k < p->n_outputs; k++)
        if (p->outputs[k] == t)
            return k;
    return -1;
}

/* Emits one entry's kernels and function into tu. */
static enum nncc_status emit_entry(struct cg_entry *e, struct cw *tu)
{
    const struct ir_plan *pl = e->plan;
    const struct ir_program *p = &pl->program;
    struct cg cg = {.p = p, .plan = pl, .body = {.indent = 1}, .prefix = e->prefix};
    NNCC_ASSERT(pl->groups && pl->tiles && pl->mem.n == p->n_nodes); /* a finished plan */
    cg.buf = calloc((size_t)p->g->n_nodes + 1, sizeof *cg.buf);
    cg.local = calloc((size_t)p->g->n_nodes + 1, sizeof *cg.local);
    if (!cg.buf || !cg.local) {
        free(cg.buf);
        free(cg.local);
        return nncc_fail(NNCC_ERR_NOMEM, "out of memory (codegen)");
    }
    for (int i = 0; i < p->n_nodes; i++)
        cg.local[p->nodes[i]->id] = i;
    const struct ir_group *fused = pl->groups;
    const struct ir_memplan plan = pl->mem;
    enum nncc_status st = NNCC_OK;
    int64_t fixed = plan.fixed_size, per_sample = plan.per_sample_size;
    int n_params = 0;
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
        } else if (plan.offset[i] < 0) { /* absorbed, or a head writing its result */
            snprintf(expr, sizeof expr, "NULL /* fused away */");
        } else {
            snprintf(expr, sizeof expr, "t%d", i);
            NNCC_ASSERT(plan.offset[i] >= 0 && plan.batched_arena[i] == t->batched);
            if (t->batched)
                cw_line(&cg.body, "float *t%d = ws + %lldL + (size_t)n * %lldL;", i,
                        (long long)fixed, (long long)plan.offset[i]);
            else
                cw_line(&cg.body, "float *t%d = ws + %lldL;", i, (long long)plan.offset[i]);
        }
        if (!(cg.buf[t->id] = strdup(expr)))
            st = nncc_fail(NNCC_ERR_NOMEM, "out of memory (codegen)");
    }
    snprintf(cg.scratch, sizeof cg.scratch, "(ws + %lldL + (size_t)n * %lldL)", (long long)fixed,
             (long long)per_sample);
    int *prof_node = e->profile ? malloc(sizeof *prof_node * (size_t)(p->n_nodes + 1)) : NULL;
    int n_prof = 0;
    if (e->profile && !prof_node)
        st = nncc_fail(NNCC_ERR_NOMEM, "out of memory (codegen)");
    for (int i = 0; i < p->n_nodes && !st; i++) {
        size_t before = cg.body.len;
        if (e->profile)
            cw_line(&cg.body, "{ const double t0_ = nn_prof_now();");
        size_t opened = cg.body.len;
        switch (fused[i].kind) {
        case IR_GROUP_MEMBER: /* its head's kernel computed it */
            break;
        case IR_GROUP_CHAIN: /* an element-wise chain's one loop */
            emit_chain(&cg, p->nodes[i]);
            break;
        case IR_GROUP_CONV_POOL: /* a convolution with its max pooling */
            emit_conv_pool(&cg, p->nodes[i]);
            break;
        default: /* the op's emitter reads the group's operands */
            emitters[p->nodes[i]->op](&cg, p->nodes[i]);
            break;
        }
        if (!e->profile)
            continue;
        if (cg.body.len == opened) { /* no kernel: drop the timer */
            cg.body.len = before;
            if (cg.body.s)
                cg.body.s[before] = '\0';
            continue;
        }
        cw_line(&cg.body, "  %s_prof_s[%d] += nn_prof_now() - t0_; }", e->name, n_prof);
        prof_node[n_prof++] = i;
    }
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
    if (e->profile && !st) {
        cw_line(tu, "const int %s_prof_count = %d;", e->name, n_prof);
        cw_line(tu, "double %s_prof_s[%d];", e->name, n_prof + 1);
        cw_raw(tu, "const int %s_prof_node[%d] = {", e->name, n_prof + 1);
        for (int k = 0; k < n_prof; k++)
            cw_raw(tu, "%d, ", prof_node[k]);
        cw_raw(tu, "-1};\n");
    }
    free(prof_node);
    const char *sig = !pl->step
                          ? "(int n, const float *const *p, const float *const *in,\n"
                            "        float *const *out, float *ws)"
                          : "(int n, float *const *p, const float *const *in,\n"
                            "        float *const *out, float *ws, const double *h)";
    cw_line(tu, "void %s%s;", e->name, sig);
    cw_line(tu, "void %s%s", e->name, sig);
    cw_line(tu, "{");
    cw_line(tu, "    (void)p, (void)in, (void)ws;");
    if (pl->step)
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
    for (int i = 0; i < n_entries; i++)
        if (entries[i].profile) { /* clock_gettime under -std=c11 */
            cw_line(&tu, "#define _POSIX_C_SOURCE 200809L");
            break;
        }
    cw_line(&tu, "#include <stddef.h>");
    cw_line(&tu, "#include <stdint.h>");
    cw_line(&tu, "#include <string.h>");
    cw_line(&tu, "#include <tgmath.h>");
    cw_raw(&tu, "\n");
    bool profile = false;
    for (int i = 0; i < n_entries; i++)
        profile |= entries[i].profile;
    if (profile) {
        cw_line(&tu, "#include <time.h>");
        cw_line(&tu, "static double nn_prof_now(void)");
        cw_line(&tu, "{");
        cw_line(&tu, "    struct timespec t;");
        cw_line(&tu, "    clock_gettime(CLOCK_MONOTONIC, &t);");
        cw_line(&tu, "    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;");
        cw_line(&tu, "}");
    }
    /* `omp simd` is a hint: a loop clang cannot vectorize still compiles. */
    cw_line(&tu, "#ifdef __clang__");
    cw_line(&tu, "#pragma clang diagnostic ignored \"-Wpass-failed\"");
    cw_line(&tu, "#endif");
    cw_line(&tu, "#define K(x) ((float)(x))");
    cw_raw(&tu, "\n");
    cw_line(&tu, "const long nncc_abi_version = %d;", NNCC_ABI_VERSION);
    bool dropout = false;
    for (int i = 0; i < n_entries; i++)
        for (int k = 0; k < entries[i].plan->program.n_nodes; k++)
            dropout |= entries[i].plan->program.nodes[k]->op == IR_DROPOUT_TRAIN ||
                       entries[i].plan->program.nodes[k]->op == IR_DROPOUT_GRAD;
    if (dropout)
        cw_line(&tu, "%s", NNCC_XSTR(NNCC_DROPOUT_RNG_SRC));
    bool gemm = false;
    for (int i = 0; i < n_entries; i++)
        for (int k = 0; k < entries[i].plan->program.n_nodes; k++)
            gemm |= cg_needs_gemm(entries[i].plan->program.nodes[k]->op);
    if (gemm)
        cw_raw(&tu, "%s\n", nncc_prelude_gemm_text);
    /* The entries go to a buffer of their own first: the math prelude is
     * written only into units whose kernels call it, which is simplest to
     * see from their text.  It comes after the GEMM prelude so that under
     * GCC it has the kernels' optimize pragma (GCC does not inline across
     * a difference in floating-point options, and then cannot vectorize). */
    struct cw entries_tu = {0};
    enum nncc_status st = NNCC_OK;
    for (int i = 0; i < n_entries && !st; i++) {
        st = emit_entry(&entries[i], &entries_tu);
    }
    if (!st && entries_tu.s) {
        if (strstr(entries_tu.s, "nn_expf("))
            cw_raw(&tu, "%s\n", nncc_prelude_math_text);
        cw_raw(&tu, "%s", entries_tu.s);
    }
    if (!st && (tu.oom || entries_tu.oom))
        st = nncc_fail(NNCC_ERR_NOMEM, "out of memory (codegen)");
    cw_free(&entries_tu);
    if (st) {
        cw_free(&tu);
        return st;
    }
    *source = tu.s;
    *len = tu.len;
    return NNCC_OK;
}

enum nncc_status nncc_codegen_forward(const struct ir_plan *plan, const char *model_name,
                                      char **source, size_t *len, int64_t *ws_per_sample)
{
    struct cg_entry e = {.plan = plan, .name = "nncc_forward", .prefix = ""};
    enum nncc_status st = nncc_codegen(&e, 1, model_name, source, len);
    *ws_per_sample = e.ws_per_sample; /* (the fixed part is kernel scratch space) */
    return st;
}
