/*
 * shape.c — ops that move data without arithmetic: Concatenate.
 * (Reshape and inference dropout are views: the driver gives them their
 * input's memory and no kernel runs.)
 */
#include "codegen/codegen.h"

/* y[o, off_k : off_k + row_k] = x_k[o, :] for every outer index o. */
void emit_concat(struct cg *cg, const struct ir_node *n)
{
    int axis = n->a.axis;
    struct nncc_shape ys = n->out->shape;
    long long yrow = ir_shape_numel(ys, axis), outer = cg_numel(n->out) / yrow;
    struct cw *w = &cg->defs;
    char what[200], xs[100];
    snprintf(what, sizeof what, "concatenation of %d inputs on axis %d, first %s", n->n_in, axis,
             cg_shape(n->in[0]->shape, xs, sizeof xs));
    cg_kernel_comment(cg, n, what);
    cw_raw(w, "static void %sk%d(int n, ", cg->prefix, cg_id(cg, n));
    for (int k = 0; k < n->n_in; k++)
        cw_raw(w, "const float *restrict x%d, ", k);
    cw_raw(w, "float *restrict y)\n{\n");
    cw_line(w, "    for (long o = 0; o < (long)n * %lldL; o++) {", outer);
    long long off = 0;
    for (int k = 0; k < n->n_in; k++) {
        long long row = ir_shape_numel(n->in[k]->shape, axis);
        cw_line(w, "        memcpy(y + o * %lldL + %lldL, x%d + o * %lldL, sizeof(float) * %lldL);",
                yrow, off, k, row, row);
        off += row;
    }
    cw_line(w, "    }");
    cw_line(w, "}");
    cw_raw(&cg->body, "    %sk%d(n, ", cg->prefix, cg_id(cg, n));
    for (int k = 0; k < n->n_in; k++)
        cw_raw(&cg->body, "%s, ", cg_buf(cg, n->in[k]));
    cw_raw(&cg->body, "%s);\n", cg_buf(cg, n->out));
}

/* One input's part of a Concatenate's gradient: dy[o, offset : offset+size]. */
void emit_slice(struct cg *cg, const struct ir_node *n)
{
    int axis = n->a.axis;
    struct nncc_shape ys = n->in[0]->shape;
    long long inner = ir_shape_numel(ys, axis + 1), yrow = ir_shape_numel(ys, axis);
    long long outer = cg_numel(n->in[0]) / yrow, row = n->a.size * inner;
    struct cw *w = &cg->defs;
    char what[200], s[100];
    snprintf(what, sizeof what, "slice %lld:%lld of axis %d of %s", (long long)n->a.offset,
             (long long)(n->a.offset + n->a.size), axis, cg_shape(ys, s, sizeof s));
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict dy, float *restrict dx)", cg->prefix,
            cg_id(cg, n));
    cw_line(w, "{");
    cw_line(w, "    for (long o = 0; o < (long)n * %lldL; o++)", outer);
    cw_line(w, "        memcpy(dx + o * %lldL, dy + o * %lldL + %lldL, sizeof(float) * %lldL);", row,
            yrow, (long long)n->a.offset * inner, row);
    cw_line(w, "}");
    cw_line(&cg->body, "%sk%d(n, %s, %s);", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]),
            cg_buf(cg, n->out));
}
