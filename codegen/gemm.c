/*
 * gemm.c — dense layers: y (rows, N) = x (rows, K) · w (K, N), where rows is
 * the batch times every axis between the batch and the contracted last one.
 *
 * The loop nest keeps one output row in the innermost j loop over the
 * weights' contiguous rows, which compilers vectorise; rows are spread over
 * threads.  (Register blocking and packed weights come with passes/tile.c.)
 */
#include "codegen.h"

void emit_matmul(struct cg *cg, const struct ir_node *n)
{
    int64_t K = n->in[1]->shape.dim[0], N = n->in[1]->shape.dim[1];
    int64_t R = cg_numel(n->in[0]) / K;
    struct cw *w = &cg->defs;
    char what[200], xs[100], ws[100];
    snprintf(what, sizeof what, "x %s . w (%lld, %lld)", cg_shape(n->in[0]->shape, xs, sizeof xs),
             (long long)K, (long long)N);
    (void)ws;
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict x, const float *restrict w,", cg->prefix, cg_id(cg, n));
    cw_line(w, "               float *restrict y)");
    cw_line(w, "{");
    w->indent++;
    cw_line(w, "const long rows = (long)n * %lldL;", (long long)R);
    char work[64];
    snprintf(work, sizeof work, "rows * %lldL", (long long)(K * N));
    cg_parallel(w, work);
    cw_line(w, "for (long i = 0; i < rows; i++) {");
    w->indent++;
    cw_line(w, "float *restrict yi = y + i * %lldL;", (long long)N);
    cw_line(w, "const float *restrict xi = x + i * %lldL;", (long long)K);
    cw_line(w, "for (long j = 0; j < %lldL; j++)", (long long)N);
    cw_line(w, "    yi[j] = 0.0f;");
    cw_line(w, "for (long k = 0; k < %lldL; k++) {", (long long)K);
    cw_line(w, "    const float a = xi[k];");
    cw_line(w, "    const float *restrict wk = w + k * %lldL;", (long long)N);
    cw_line(w, "    for (long j = 0; j < %lldL; j++)", (long long)N);
    cw_line(w, "        yi[j] += a * wk[j];");
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    cw_line(&cg->body, "%sk%d(n, %s, %s, %s);", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]), cg_buf(cg, n->in[1]),
            cg_buf(cg, n->out));
}

/* dx (rows, K) = dy (rows, N) · wᵀ: each row is K dot products over the
 * weights' contiguous rows. */
void emit_matmul_nt(struct cg *cg, const struct ir_node *n)
{
    long long K = n->in[1]->shape.dim[0], N = n->in[1]->shape.dim[1];
    long long R = cg_numel(n->in[0]) / N;
    struct cw *w = &cg->defs;
    char what[200], s[100];
    snprintf(what, sizeof what, "dy %s . w(%lld, %lld)^T", cg_shape(n->in[0]->shape, s, sizeof s),
             K, N);
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict dy, const float *restrict w,",
            cg->prefix, cg_id(cg, n));
    cw_line(w, "               float *restrict dx)");
    cw_line(w, "{");
    w->indent++;
    cw_line(w, "const long rows = (long)n * %lldL;", R);
    char work[64];
    snprintf(work, sizeof work, "rows * %lldL", K * N);
    cg_parallel(w, work);
    cw_line(w, "for (long i = 0; i < rows; i++)");
    cw_line(w, "    for (long k = 0; k < %lldL; k++) {", K);
    cw_line(w, "        float acc = 0.0f;");
    cw_line(w, "        for (long j = 0; j < %lldL; j++)", N);
    cw_line(w, "            acc += dy[i * %lldL + j] * w[k * %lldL + j];", N, N);
    cw_line(w, "        dx[i * %lldL + k] = acc;", K);
    cw_line(w, "    }");
    w->indent--;
    cw_line(w, "}");
    cw_line(&cg->body, "%sk%d(n, %s, %s, %s);", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]),
            cg_buf(cg, n->in[1]), cg_buf(cg, n->out));
}

/* dw (K, N) = Σ_rows xᵀ · dy: threads own disjoint rows k of dw, so no
 * reduction across threads is needed. */
void emit_matmul_tn(struct cg *cg, const struct ir_node *n)
{
    long long K = n->out->shape.dim[0], N = n->out->shape.dim[1];
    long long R = cg_numel(n->in[0]) / K;
    struct cw *w = &cg->defs;
    char what[200], s[100];
    snprintf(what, sizeof what, "x %s^T . dy, summed over rows",
             cg_shape(n->in[0]->shape, s, sizeof s));
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict x, const float *restrict dy,",
            cg->prefix, cg_id(cg, n));
    cw_line(w, "               float *restrict dw)");
    cw_line(w, "{");
    w->indent++;
    cw_line(w, "const long rows = (long)n * %lldL;", R);
    char work[64];
    snprintf(work, sizeof work, "rows * %lldL", K * N);
    cg_parallel(w, work);
    cw_line(w, "for (long k = 0; k < %lldL; k++) {", K);
    cw_line(w, "    float *restrict dwk = dw + k * %lldL;", N);
    cw_line(w, "    for (long j = 0; j < %lldL; j++)", N);
    cw_line(w, "        dwk[j] = 0.0f;");
    cw_line(w, "    for (long i = 0; i < rows; i++) {");
    cw_line(w, "        const float a = x[i * %lldL + k];", K);
    cw_line(w, "        const float *restrict dyi = dy + i * %lldL;", N);
    cw_line(w, "        for (long j = 0; j < %lldL; j++)", N);
    cw_line(w, "            dwk[j] += a * dyi[j];");
    cw_line(w, "    }");
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    cw_line(&cg->body, "%sk%d(n, %s, %s, %s);", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]),
            cg_buf(cg, n->in[1]), cg_buf(cg, n->out));
}
