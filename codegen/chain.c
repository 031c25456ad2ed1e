/*
 * chain.c — the kernel of a chain fusion group (passes/fuse.c): an
 * element-wise head (Add of equal shapes, bias_add, inference batch
 * normalization, an activation or an activation gradient) followed by
 * activations and activation gradients, computed in one loop that carries
 * each element in a register `t` and writes only the group's result.
 *
 * Every step is the float expression its own kernel (codegen/eltwise.c)
 * evaluates, in the same order, so fused and unfused code give the same
 * bits (tests/passes/test_fuse.c compares them).  Elements are independent:
 * large chains are split over threads.
 */
#include <string.h>
#include "codegen/codegen.h"

/* Kernel parameter names: the head's inputs h0…, then each follower's
 * inputs after its first (the chain value) as f<k>_<s>. */
static void params(struct cw *w, const struct ir_node *n, const struct ir_group *f)
{
    for (int s = 0; s < n->n_in; s++)
        cw_raw(w, ", const float *restrict h%d", s);
    for (int k = 0; k < f->chain.n; k++)
        for (int s = 1; s < f->chain.node[k]->n_in; s++)
            cw_raw(w, ", const float *restrict f%d_%d", k, s);
}

static void args(struct cw *w, const struct cg *cg, const struct ir_node *n,
                 const struct ir_group *f)
{
    for (int s = 0; s < n->n_in; s++) {
        /* An activation gradient whose z was fused away reads y for it. */
        const nncc_tensor *t = n->in[s];
        if (n->op == IR_ACTIVATION_GRAD && s == 1 && f->grad_from_y)
            t = n->in[2];
        cw_raw(w, ", %s", cg_buf(cg, t));
    }
    for (int k = 0; k < f->chain.n; k++) {
        const struct ir_node *r = f->chain.node[k];
        const struct ir_group *rf = cg_group(cg, r);
        for (int s = 1; s < r->n_in; s++)
            cw_raw(w, ", %s", cg_buf(cg, s == 1 && rf->grad_from_y ? r->in[2] : r->in[s]));
    }
}

void emit_chain(struct cg *cg, const struct ir_node *n)
{
    const struct ir_group *f = cg_group(cg, n);
    const nncc_tensor *res = f->result;
    struct cw *w = &cg->defs;
    char what[400], xs[100];
    int len = snprintf(what, sizeof what, "%s", ir_op(n->op)->name);
    for (int k = 0; k < f->chain.n && len > 0 && (size_t)len < sizeof what; k++)
        len += snprintf(what + len, sizeof what - (size_t)len, " -> %s %s",
                        ir_op(f->chain.node[k]->op)->name, nncc_activation_name(f->chain.node[k]->a.act));
    snprintf(what + (len > 0 && (size_t)len < sizeof what ? len : 0),
             sizeof what - (len > 0 && (size_t)len < sizeof what ? (size_t)len : 0),
             " on %s, one loop", cg_shape(n->out->shape, xs, sizeof xs));
    cg_kernel_comment(cg, n, what);
    cw_raw(w, "static void %sk%d(int n", cg->prefix, cg_id(cg, n));
    params(w, n, f);
    cw_raw(w, ", float *restrict out)\n{\n");
    w->indent++;
    cw_line(w, "(void)n;");
    long long total = cg_numel(n->out);
    const struct ir_attrs *a = &n->a;
    long long C = 0, inner = 1;
    if (n->op == IR_BIAS_ADD)
        C = n->in[1]->shape.dim[0];
    if (n->op == IR_BATCHNORM) { /* as emit_batchnorm folds it */
        C = n->out->shape.dim[a->axis];
        inner = ir_shape_numel(n->out->shape, a->axis + 1);
        cw_line(w, "float scale[%lld], shift[%lld];", C, C);
        cw_line(w, "for (long c = 0; c < %lldL; c++) {", C);
        cw_line(w, "    scale[c] = %s / sqrt(h2[c] + K(%.17g));", a->has_gamma ? "h3[c]" : "1.0f",
                (double)a->epsilon);
        cw_line(w, "    shift[c] = %s - h1[c] * scale[c];",
                a->has_beta ? (a->has_gamma ? "h4[c]" : "h3[c]") : "0.0f");
        cw_line(w, "}");
    }
    char count[64], work[96];
    snprintf(count, sizeof count, "%s%lldL", n->out->batched ? "(long)n * " : "", total);
    snprintf(work, sizeof work, "%s * 8L", count);
    cg_parallel_simd(w, work);
    cw_line(w, "for (long i = 0; i < %s; i++) {", count);
    w->indent++;
    switch (n->op) {
    case IR_ADD:
        cw_raw(w, "%*sfloat t = h0[i]", w->indent * 4, "");
        for (int s = 1; s < n->n_in; s++)
            cw_raw(w, " + h%d[i]", s);
        cw_raw(w, ";\n");
        break;
    case IR_BIAS_ADD:
        cw_line(w, "float t = h0[i] + h1[i %% %lldL];", C);
        break;
    case IR_BATCHNORM:
        cw_line(w, "const long c = (i / %lldL) %% %lldL;", inner, C);
        cw_line(w, "float t = h0[i] * scale[c] + shift[c];");
        break;
    case IR_ACTIVATION:
        cw_line(w, "float t;");
        cw_line(w, "{ const float v = h0[i]; t = %s; }", ir_activation_expr(a->act));
        break;
    default: /* IR_ACTIVATION_GRAD */
        cw_line(w, "float t;");
        cw_line(w, "{ const float v = h1[i], y = h2[i]; (void)v, (void)y; t = h0[i] * (%s); }",
                ir_activation_deriv(a->act));
        break;
    }
    for (int k = 0; k < f->chain.n; k++) {
        const struct ir_node *r = f->chain.node[k];
        if (r->op == IR_ACTIVATION)
            cw_line(w, "{ const float v = t; t = %s; }", ir_activation_expr(r->a.act));
        else
            cw_line(w, "{ const float v = f%d_1[i], y = f%d_2[i]; (void)v, (void)y; t = t * (%s); }",
                    k, k, ir_activation_deriv(r->a.act));
    }
    cw_line(w, "out[i] = t;");
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    cw_raw(&cg->body, "    %sk%d(n", cg->prefix, cg_id(cg, n));
    args(&cg->body, cg, n, f);
    cw_raw(&cg->body, ", %s);\n", cg_buf(cg, res));
}
