/*
 * gemm.c — dense layers on the GEMM core (codegen/prelude/gemm.c):
 *   matmul     y (rows, N) = x (rows, K) · w (K, N)
 *   matmul_nt  dx (rows, K) = dy (rows, N) · wᵀ
 *   matmul_tn  dw (K, N) = Σ_rows xᵀ · dy
 * where rows is the batch times every axis between the batch and the
 * contracted one.  Transposes are strides, absorbed by the core's packing.
 * A product of at most NN_DIRECT_M rows with row-major weights (a batch-1
 * forward) skips the packing: nn_gemm_direct, the same floats.
 *
 * Threads: matmul and matmul_nt split rows into one block per thread;
 * matmul_tn splits dw's rows, so no two threads write the same element and
 * no cross-thread reduction is needed.  Either way each element is summed
 * in the same order whatever the thread count.  The split and the size
 * below which a product stays on one thread come from the node's schedule
 * (passes/tile.c).
 */
#include "codegen/codegen.h"



/* The loop over row blocks, one per thread, in which `call` runs with r0
 * (first row) and m (rows in the block) defined; or `direct` instead of it
 * when that is given and the generated code's `direct` flag is set. */
static void row_blocks(struct cw *w, long long rows_per_sample, long long work_per_row,
                       const char *direct, const char *call, const struct ir_epilogue *f,
                       const char *out, long long N, const struct ir_tile *t)
{
    cw_line(w, "const long rows = (long)n * %lldL;", rows_per_sample);
    cw_line(w, "const long rb = nn_row_block(rows, 1L << 30), nb = (rows + rb - 1) / rb;");
    char work[128];
    snprintf(work, sizeof work, "nb > 1 && rows * %lldL > %lldL", work_per_row,
             (long long)t->min_work);
    struct cw b = {.indent = w->indent + 1}, *bw = &b;
    cw_line(bw, "const long r0 = blk * rb, m = nn_min(rb, rows - r0);");
    if (direct) {
        cw_line(bw, "if (direct)");
        cw_line(bw, "    %s", direct);
        cw_line(bw, "else");
        cw_line(bw, "    %s", call);
    } else {
        cw_line(bw, "%s", call);
    }
    char at[64];
    snprintf(at, sizeof at, "(%s + r0 * %lldL)", out, N);
    cg_epilogue_rows(bw, f, at, "m", N);
    if (f->has_dact) {
        char yat[64], count[64];
        snprintf(yat, sizeof yat, "(yv + r0 * %lldL)", N);
        snprintf(count, sizeof count, "m * %lldL", N);
        cg_epilogue_dact(bw, f, at, yat, count);
    }
    cg_parallel_or_serial(w, work, "for (long blk = 0; blk < nb; blk++) {", bw);
    cw_free(bw);
}

/* Row-parallel product of input 0 (rows, kin) with weights B (kin, nout)
 * read through strides (sbk, sbj) from w, packed once before the threads
 * start; the node's epilogue runs on each row block.  A product of at most
 * NN_DIRECT_M rows (a batch-1 dense layer) with row-major weights skips the
 * packing and reads w in place (nn_gemm_direct: the same floats, a third of
 * the memory traffic). */
static void rows_times_weights(struct cg *cg, const struct ir_node *n, const char *what,
                               const char *a, const char *c, long long kin, long long nout,
                               long long sbk, long long sbj)
{
    long long R = cg_numel(n->in[0]) / kin;
    struct cw *w = &cg->defs;
    char direct[200], call[200];
    cg_kernel_comment(cg, n, what);
    cg_gemm_open(cg, n, a, "w", c, cg_packed_floats(kin, nout));
    snprintf(call, sizeof call,
             "nn_gemm_packed(m, %lldL, %lldL, %s + r0 * %lldL, %lldL, 1, wp, %s + r0 * %lldL, "
             "%lldL, 0);", nout, kin, a, kin, kin, c, nout, nout);
    snprintf(direct, sizeof direct,
             "nn_gemm_direct(m, %lldL, %lldL, %s + r0 * %lldL, %lldL, w, %lldL, %s + r0 * %lldL, "
             "%lldL, 0);", nout, kin, a, kin, kin, sbk, c, nout, nout);
    if (sbj == 1) {
        cw_line(w, "const int direct = (long)n * %lldL <= NN_DIRECT_M;", R);
        cw_line(w, "if (!direct)");
        cw_line(w, "    nn_pack_b_all(%lldL, %lldL, w, %lldL, 1L, wp);", kin, nout, sbk);
    } else {
        cw_line(w, "nn_pack_b_all(%lldL, %lldL, w, %lldL, %lldL, wp);", kin, nout, sbk, sbj);
    }
    row_blocks(w, R, kin * nout, sbj == 1 ? direct : NULL, call, cg_epilogue(cg, n), c, nout,
               cg_tile(cg, n));
    cg_gemm_close(cg, n, cg_packed_floats(kin, nout));
}

void emit_matmul(struct cg *cg, const struct ir_node *n)
{
    long long K = n->in[1]->shape.dim[0], N = n->in[1]->shape.dim[1];
    char what[200], xs[100];
    snprintf(what, sizeof what, "x %s . w (%lld, %lld)", cg_shape(n->in[0]->shape, xs, sizeof xs),
             K, N);
    rows_times_weights(cg, n, what, "x", "y", K, N, N, 1);
}

void emit_matmul_nt(struct cg *cg, const struct ir_node *n)
{
    long long K = n->in[1]->shape.dim[0], N = n->in[1]->shape.dim[1];
    char what[200], s[100];
    snprintf(what, sizeof what, "dy %s . w(%lld, %lld)^T", cg_shape(n->in[0]->shape, s, sizeof s),
             K, N);
    /* wᵀ(j, k) = w[k·N + j]: B's row stride 1, column stride N. */
    rows_times_weights(cg, n, what, "dy", "dx", N, K, 1, N);
}

void emit_matmul_tn(struct cg *cg, const struct ir_node *n)
{
    long long K = n->out->shape.dim[0], N = n->out->shape.dim[1];
    long long R = cg_numel(n->in[0]) / K;
    struct cw *w = &cg->defs;
    char what[200], s[100];
    snprintf(what, sizeof what, "x %s^T . dy, summed over rows",
             cg_shape(n->in[0]->shape, s, sizeof s));
    cg_kernel_comment(cg, n, what);
    cg_gemm_open(cg, n, "x", "dy", "dw", 0);
    cw_line(w, "const long rows = (long)n * %lldL;", R);
    cw_line(w, "const long kt = nn_row_block(%lldL, 1L << 30), nk = (%lldL + kt - 1) / kt;", K, K);
    char work[128];
    snprintf(work, sizeof work, "nk > 1 && rows * %lldL > %lldL", K * N,
             (long long)cg_tile(cg, n)->min_work);
    cg_parallel_if(w, work);
    cw_line(w, "for (long kb = 0; kb < nk; kb++) {");
    cw_line(w, "    const long k0 = kb * kt, kn = nn_min(kt, %lldL - k0);", K);
    /* xᵀ(k, r) = x[r·K + k]: A's row stride 1, column stride K. */
    cw_line(w, "    nn_gemm(kn, %lldL, rows, x + k0, 1, %lldL, dy, %lldL, 1, dw + k0 * %lldL, %lldL, 0);",
            N, K, N, N, N);
    cw_line(w, "}");
    cg_gemm_close(cg, n, 0);
}
