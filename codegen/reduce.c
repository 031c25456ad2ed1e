/*
 * reduce.c — softmax over the last axis: e^{x − max} / Σ, one row at a time
 * (other axes and unbatched values: codegen/eltwise_onnx.c).
 *
 * The exponentials are computed by nn_expf (codegen/prelude/math.c) in a
 * loop of their own, which vectorizes; the sum is a separate serial loop,
 * so each row is summed in one fixed order (the same on any number of
 * threads, and the same as the softmax fused into a dense epilogue,
 * codegen/epilogue.c, which must compute identical floats).
 */
#include "codegen/codegen.h"

void emit_softmax(struct cg *cg, const struct ir_node *n)
{
    if (n->a.axis != 0 || !n->out->batched) { /* ONNX's other axes (ir/eltwise.h) */
        cg_softmax_axis(cg, n, false);
        return;
    }
    struct nncc_shape s = n->out->shape;
    long long C = s.dim[s.rank - 1], rows = cg_numel(n->out) / C;
    struct cw *w = &cg->defs;
    char what[200], xs[100];
    snprintf(what, sizeof what, "softmax over the last axis of x %s", cg_shape(s, xs, sizeof xs));
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict x, float *restrict y)", cg->prefix, cg_id(cg, n));
    cw_line(w, "{");
    w->indent++;
    char work[64];
    snprintf(work, sizeof work, "(long)n * %lldL", rows * C * 16);
    cg_parallel(w, work);
    cw_line(w, "for (long r = 0; r < (long)n * %lldL; r++) {", rows);
    w->indent++;
    cw_line(w, "const float *restrict xr = x + r * %lldL;", C);
    cw_line(w, "float *restrict yr = y + r * %lldL;", C);
    cg_softmax_row(w, "xr", "yr", C);
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    cw_line(&cg->body, "%sk%d(n, %s, %s);", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]), cg_buf(cg, n->out));
}

/* dx = y · (dy − Σ dy·y) per row; inputs (dy, y). */
void emit_softmax_grad(struct cg *cg, const struct ir_node *n)
{
    if (n->a.axis != 0 || !n->out->batched) {
        cg_softmax_axis(cg, n, true);
        return;
    }
    struct nncc_shape s = n->out->shape;
    long long C = s.dim[s.rank - 1], rows = cg_numel(n->out) / C;
    struct cw *w = &cg->defs;
    char what[200], xs[100];
    snprintf(what, sizeof what, "softmax gradient of %s", cg_shape(s, xs, sizeof xs));
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict dy, const float *restrict y,",
            cg->prefix, cg_id(cg, n));
    cw_line(w, "               float *restrict dx)");
    cw_line(w, "{");
    cw_line(w, "    for (long r = 0; r < (long)n * %lldL; r++) {", rows);
    cw_line(w, "        float dot = 0.0f;");
    cw_line(w, "        for (long c = 0; c < %lldL; c++)", C);
    cw_line(w, "            dot += dy[r * %lldL + c] * y[r * %lldL + c];", C, C);
    cw_line(w, "        for (long c = 0; c < %lldL; c++)", C);
    cw_line(w, "            dx[r * %lldL + c] = y[r * %lldL + c] * (dy[r * %lldL + c] - dot);", C,
            C, C);
    cw_line(w, "    }");
    cw_line(w, "}");
    cw_line(&cg->body, "%sk%d(n, %s, %s, %s);", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]),
            cg_buf(cg, n->in[1]), cg_buf(cg, n->out));
}

/* db (C) = Σ over rows of dy (…, C). */
void emit_bias_grad(struct cg *cg, const struct ir_node *n)
{
    long long C = n->out->shape.dim[0], rows = cg_numel(n->in[0]) / C;
    struct cw *w = &cg->defs;
    char what[200], xs[100];
    snprintf(what, sizeof what, "sum over rows of dy %s", cg_shape(n->in[0]->shape, xs, sizeof xs));
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict dy, float *restrict db)", cg->prefix,
            cg_id(cg, n));
    cw_line(w, "{");
    w->indent++;
    if (C <= 1024) {
        /* Eight row chunks summed apart (in parallel), then in chunk order:
         * the same result on any number of threads. */
        cw_line(w, "float part[8 * %lld];", C);
        cw_line(w, "const long rows = (long)n * %lldL, per = (rows + 7) / 8;", rows);
        char work[64];
        snprintf(work, sizeof work, "rows * %lldL", C * 4);
        cg_parallel(w, work);
        cw_line(w, "for (int q = 0; q < 8; q++) {");
        cw_line(w, "    float acc[%lld];", C);
        cw_line(w, "    for (long c = 0; c < %lldL; c++)", C);
        cw_line(w, "        acc[c] = 0.0f;");
        cw_line(w, "    const long r1 = (q + 1) * per < rows ? (q + 1) * per : rows;");
        cw_line(w, "    for (long r = q * per; r < r1; r++)");
        w->indent += 2;
        cg_simd(w);
        w->indent -= 2;
        cw_line(w, "        for (long c = 0; c < %lldL; c++)", C);
        cw_line(w, "            acc[c] += dy[r * %lldL + c];", C);
        cw_line(w, "    memcpy(part + q * %lldL, acc, sizeof acc);", C);
        cw_line(w, "}");
        cg_sum_eight(w, C, "part", C, "db");
    } else {
        cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
        cw_line(w, "    db[c] = 0.0f;");
        cw_line(w, "for (long r = 0; r < (long)n * %lldL; r++)", rows);
        cw_line(w, "    for (long c = 0; c < %lldL; c++)", C);
        cw_line(w, "        db[c] += dy[r * %lldL + c];", C);
    }
    w->indent--;
    cw_line(w, "}");
    cw_line(&cg->body, "%sk%d(n, %s, %s);", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]),
            cg_buf(cg, n->out));
}

/* One input's share of a broadcasting Add's gradient: dy summed over the
 * dims that input broadcast (dim 0 is the batch; others align right). */
void emit_sum_to(struct cg *cg, const struct ir_node *n)
{
    struct nncc_shape ys = n->in[0]->shape, xs = n->out->shape;
    struct cw *w = &cg->defs;
    char what[200], a[100];
    snprintf(what, sizeof what, "dy %s summed to the input's shape",
             cg_shape(ys, a, sizeof a));
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict dy, float *restrict dx)", cg->prefix,
            cg_id(cg, n));
    cw_line(w, "{");
    w->indent++;
    cw_line(w, "for (long i = 0; i < (long)n * %lldL; i++)", (long long)cg_numel(n->out));
    cw_line(w, "    dx[i] = 0.0f;");
    cw_line(w, "for (long i = 0; i < (long)n * %lldL; i++) {", (long long)cg_numel(n->in[0]));
    w->indent++;
    cw_line(w, "long rem = i, j = 0;");
    for (int d = ys.rank - 1; d >= 0; d--) {
        if (d > 0)
            cw_line(w, "{ const long c = rem %% %lldL; rem /= %lldL;", (long long)ys.dim[d],
                    (long long)ys.dim[d]);
        else
            cw_line(w, "{ const long c = rem;");
        int xd = d == 0 ? 0 : d - (ys.rank - xs.rank);
        bool skip = xd < 0 || (xd == 0 && d != 0) || (xd > 0 && xs.dim[xd] == 1 && ys.dim[d] != 1);
        if (!skip)
            cw_line(w, "  j += c * %lldL;", (long long)ir_shape_numel(xs, xd + 1));
        else
            cw_line(w, "  (void)c;");
        cw_line(w, "}");
    }
    cw_line(w, "dx[j] += dy[i];");
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    cw_line(&cg->body, "%sk%d(n, %s, %s);", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]),
            cg_buf(cg, n->out));
}

/* ‖(g1, g2, …)‖₂ over every input, for global_clipnorm. */
void emit_global_norm(struct cg *cg, const struct ir_node *n)
{
    struct cw *w = &cg->defs;
    cg_kernel_comment(cg, n, "global norm of the gradients");
    cw_raw(w, "static void %sk%d(int n, ", cg->prefix, cg_id(cg, n));
    for (int k = 0; k < n->n_in; k++)
        cw_raw(w, "const float *restrict g%d, ", k);
    cw_raw(w, "float *restrict out)\n{\n");
    cw_line(w, "    double sum = 0;");
    cw_line(w, "    (void)n;");
    for (int k = 0; k < n->n_in; k++) {
        bool b = n->in[k]->batched;
        cw_line(w, "    for (long i = 0; i < %s%lldL; i++)", b ? "(long)n * " : "",
                (long long)cg_numel(n->in[k]));
        cw_line(w, "        sum += (double)g%d[i] * g%d[i];", k, k);
    }
    cw_line(w, "    out[0] = (float)sqrt(sum);");
    cw_line(w, "}");
    cw_raw(&cg->body, "    %sk%d(n, ", cg->prefix, cg_id(cg, n));
    for (int k = 0; k < n->n_in; k++)
        cw_raw(&cg->body, "%s, ", cg_buf(cg, n->in[k]));
    cw_raw(&cg->body, "%s);\n", cg_buf(cg, n->out));
}
