/*
 * shape.c — ops that move data without arithmetic: Concatenate.
 * (Reshape and inference dropout are views: the driver gives them their
 * input's memory and no kernel runs.)
 */
#include "codegen.h"

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
    cw_raw(w, "static void k%d(int n, ", n->id);
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
    cw_raw(&cg->body, "    k%d(n, ", n->id);
    for (int k = 0; k < n->n_in; k++)
        cw_raw(&cg->body, "%s, ", cg_buf(cg, n->in[k]));
    cw_raw(&cg->body, "%s);\n", cg_buf(cg, n->out));
}
