/*
 * reduce.c — softmax over the last axis: e^{x − max} / Σ, one row at a time.
 */
#include "codegen.h"

void emit_softmax(struct cg *cg, const struct ir_node *n)
{
    struct nncc_shape s = n->out->shape;
    long long C = s.dim[s.rank - 1], rows = cg_numel(n->out) / C;
    struct cw *w = &cg->defs;
    char what[200], xs[100];
    snprintf(what, sizeof what, "softmax over the last axis of x %s", cg_shape(s, xs, sizeof xs));
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void k%d(int n, const float *restrict x, float *restrict y)", n->id);
    cw_line(w, "{");
    cw_line(w, "    for (long r = 0; r < (long)n * %lldL; r++) {", rows);
    cw_line(w, "        const float *restrict xr = x + r * %lldL;", C);
    cw_line(w, "        float *restrict yr = y + r * %lldL;", C);
    cw_line(w, "        float mx = xr[0], sum = 0.0f;");
    cw_line(w, "        for (long c = 1; c < %lldL; c++)", C);
    cw_line(w, "            mx = xr[c] > mx ? xr[c] : mx;");
    cw_line(w, "        for (long c = 0; c < %lldL; c++)", C);
    cw_line(w, "            sum += yr[c] = exp(xr[c] - mx);");
    cw_line(w, "        for (long c = 0; c < %lldL; c++)", C);
    cw_line(w, "            yr[c] /= sum;");
    cw_line(w, "    }");
    cw_line(w, "}");
    cw_line(&cg->body, "k%d(n, %s, %s);", n->id, cg_buf(cg, n->in[0]), cg_buf(cg, n->out));
}
