/*
 * matmul.c — matrix products with ONNX MatMul / Gemm semantics (family
 * h4-matmul) on the GEMM core (codegen/prelude/gemm.c):
 *   batch_matmul      c (…, M, P) = op(a) (…, M, K) · op(b) (…, K, P)
 *   batch_matmul_sum  the same products summed over leading axes to a.like
 * op swaps an operand's last two axes (a.trans_a, a.trans_b); the leading
 * axes broadcast as numpy's (ir/ops.c has the rules, the batch among them).
 * Transposes and broadcasts are strides: a broadcast axis has stride 0.
 *
 * Three schedules, chosen from the shapes when the code is generated:
 *   rows  (batch_matmul, b the same matrix for every leading index and a
 *         not transposed nor broadcast): one product of all of a's rows
 *         stacked, as the dense layer's matmul (codegen/gemm.c) computes
 *         it: b packed once, row blocks over threads, and few rows read b
 *         in place (nn_gemm_direct);
 *   fold  (batch_matmul_sum into one matrix with op(a) = aᵀ, op(b) = b, and
 *         neither operand broadcast): Σ_t aₜᵀ·bₜ is one product whose
 *         contraction runs over every leading index, as matmul_tn's
 *         weight gradient; threads split the output's rows;
 *   general: one product per output matrix and block of its rows (the
 *         tasks split over threads), accumulating, in a fixed order, the
 *         products of every leading index that sums into it.
 * Every output element is computed by one thread and summed in an order
 * that does not depend on the thread count or on the row blocks, so
 * results are the same on any number of threads.  The size below which a
 * kernel stays on one thread comes from its schedule (passes/tile.c).
 */
#include "codegen/codegen.h"

/* A product's geometry.  Leading axis i has size lead[i] (the run-time
 * batch n when i == 0 and batch0); an operand's stride on it is 0 where it
 * broadcasts; the output keeps the axis (kept) or sums over it. */
struct mm {
    bool sum, ta, tb;
    int L;
    long long lead[NNCC_MAX_RANK];
    bool batch0;
    long long sa[NNCC_MAX_RANK], sb[NNCC_MAX_RANK];
    bool kept[NNCC_MAX_RANK];
    bool m_batch, k_batch; /* M (K) is the batch: a batched rank-2 operand */
    long long M, K, P;     /* constants unless m_batch (k_batch) */
    long long sai, sak, sbk, sbj; /* op(a)(i, k) = a[i·sai + k·sak], op(b)(k, j) = b[k·sbk + j·sbj] */
};

static void geometry(const struct ir_node *n, bool sum, struct mm *g)
{
    const nncc_tensor *A = n->in[0], *B = n->in[1];
    struct nncc_shape a = A->shape, b = B->shape;
    int ra = a.rank, rb = b.rank, ro = ra > rb ? ra : rb;
    *g = (struct mm){0};
    g->sum = sum;
    g->ta = n->a.trans_a;
    g->tb = n->a.trans_b;
    g->L = ro - 2;
    g->m_batch = A->batched && ra == 2 && !g->ta;
    g->k_batch = A->batched && ra == 2 && g->ta;
    g->M = a.dim[ra - (g->ta ? 1 : 2)];
    g->K = a.dim[ra - (g->ta ? 2 : 1)];
    g->P = b.dim[rb - (g->tb ? 2 : 1)];
    g->sai = g->ta ? 1 : a.dim[ra - 1];
    g->sak = g->ta ? a.dim[ra - 1] : 1;
    g->sbk = g->tb ? 1 : b.dim[rb - 1];
    g->sbj = g->tb ? b.dim[rb - 1] : 1;
    struct nncc_shape o = n->out->shape;
    for (int i = 0; i < g->L; i++) {
        int ia = i - (ro - ra), ib = i - (ro - rb), io = i - (ro - o.rank);
        bool abat = A->batched && ia == 0, bbat = B->batched && ib == 0;
        long long da = ia >= 0 ? a.dim[ia] : 1, db = ib >= 0 ? b.dim[ib] : 1;
        g->batch0 |= abat || bbat;
        g->lead[i] = abat || bbat ? -1 : da > db ? da : db;
        g->sa[i] = abat || da != 1 ? ir_shape_numel(a, ia + 1) : 0;
        g->sb[i] = bbat || db != 1 ? ir_shape_numel(b, ib + 1) : 0;
        g->kept[i] = !sum || (io >= 0 && o.dim[io] != 1);
    }
}

/* Axis i has more than one index (the batch always may). */
static bool varies(const struct mm *g, int i) { return g->lead[i] != 1; }

/* "(long)n * 12L" or "12L": the indices of the kept (or the summed) axes. */
static const char *count_expr(const struct mm *g, bool kept, long long times, char *buf,
                              size_t size)
{
    long long c = times;
    bool batch = false;
    for (int i = 0; i < g->L; i++) {
        if (g->kept[i] != kept || !varies(g, i))
            continue;
        if (g->lead[i] < 0)
            batch = true;
        else
            c *= g->lead[i];
    }
    snprintf(buf, size, batch ? "(long)n * %lldL" : "%lldL", c);
    return buf;
}

/* Adds to ao and bo the offsets of a's and b's matrices at index `var`
 * over the kept (or the summed) axes, innermost first; the outermost needs
 * no modulo, so the batch (always axis 0) needs no size. */
static void offsets(struct cw *w, const struct mm *g, bool kept, const char *var,
                    const char *ao, const char *bo)
{
    int axes[NNCC_MAX_RANK], na = 0;
    for (int i = 0; i < g->L; i++)
        if (g->kept[i] == kept && varies(g, i))
            axes[na++] = i;
    if (!na)
        return;
    cw_line(w, "{");
    w->indent++;
    cw_line(w, "long rem_ = %s;", var);
    for (int q = na - 1; q >= 0; q--) {
        int i = axes[q];
        if (q == 0)
            cw_line(w, "const long i%d_ = rem_;", i);
        else
            cw_line(w, "const long i%d_ = rem_ %% %lldL; rem_ /= %lldL;", i, g->lead[i], g->lead[i]);
        if (g->sa[i])
            cw_line(w, "%s += i%d_ * %lldL;", ao, i, g->sa[i]);
        if (g->sb[i])
            cw_line(w, "%s += i%d_ * %lldL;", bo, i, g->sb[i]);
    }
    cw_line(w, "(void)rem_;");
    w->indent--;
    cw_line(w, "}");
}

/* rows: b the same matrix at every leading index, a's rows contiguous. */
static bool rows_schedule(const struct mm *g)
{
    if (g->sum || g->ta)
        return false;
    for (int i = 0; i < g->L; i++)
        if (varies(g, i) && (!g->sa[i] || g->sb[i]))
            return false;
    return true;
}

/* fold: Σ_t aₜᵀ·bₜ into one matrix, neither operand broadcast. */
static bool fold_schedule(const struct mm *g)
{
    if (!g->sum || !g->ta || g->tb)
        return false;
    for (int i = 0; i < g->L; i++)
        if (varies(g, i) && (g->kept[i] || !g->sa[i] || !g->sb[i]))
            return false;
    return true;
}

static void emit_rows(struct cg *cg, const struct ir_node *n, const struct mm *g)
{
    struct cw *w = &cg->defs;
    long long K = g->K, P = g->P, packed = cg_packed_floats(K, P);
    char rows[64];
    if (g->m_batch)
        snprintf(rows, sizeof rows, "(long)n");
    else
        count_expr(g, true, g->M, rows, sizeof rows);
    cg_gemm_open(cg, n, "a", "b", "c", packed);
    cw_line(w, "(void)n; /* unused when no operand is batched */");
    cw_line(w, "const long rows = %s;", rows);
    if (g->sbj == 1) {
        cw_line(w, "const int direct = rows <= NN_DIRECT_M;");
        cw_line(w, "if (!direct)");
        cw_line(w, "    nn_pack_b_all(%lldL, %lldL, b, %lldL, 1L, wp);", K, P, g->sbk);
    } else {
        cw_line(w, "nn_pack_b_all(%lldL, %lldL, b, %lldL, %lldL, wp);", K, P, g->sbk, g->sbj);
    }
    cw_line(w, "const long rb = nn_row_block(rows, 1L << 30), nb = (rows + rb - 1) / rb;");
    struct cw body = {.indent = w->indent + 1};
    cw_line(&body, "const long r0 = blk * rb, m = nn_min(rb, rows - r0);");
    char call[256];
    snprintf(call, sizeof call,
             "nn_gemm_packed(m, %lldL, %lldL, a + r0 * %lldL, %lldL, 1, wp, c + r0 * %lldL, "
             "%lldL, 0);", P, K, K, K, P, P);
    if (g->sbj == 1) {
        cw_line(&body, "if (direct)");
        cw_line(&body, "    nn_gemm_direct(m, %lldL, %lldL, a + r0 * %lldL, %lldL, b, %lldL, "
                       "c + r0 * %lldL, %lldL, 0);", P, K, K, K, g->sbk, P, P);
        cw_line(&body, "else");
        cw_line(&body, "    %s", call);
    } else {
        cw_line(&body, "%s", call);
    }
    char work[128];
    snprintf(work, sizeof work, "nb > 1 && rows * %lldL > %lldL", K * P,
             (long long)cg_tile(cg, n)->min_work);
    cg_parallel_or_serial(w, work, "for (long blk = 0; blk < nb; blk++) {", &body);
    cw_free(&body);
    cg_gemm_close(cg, n, packed);
}

static void emit_fold(struct cg *cg, const struct ir_node *n, const struct mm *g)
{
    struct cw *w = &cg->defs;
    long long M = g->M, P = g->P;
    char kk[64];
    if (g->k_batch)
        snprintf(kk, sizeof kk, "(long)n");
    else
        count_expr(g, false, g->K, kk, sizeof kk);
    cg_gemm_open(cg, n, "a", "b", "c", 0);
    cw_line(w, "(void)n; /* unused when no operand is batched */");
    /* aₜᵀ(i, k) = a[(t·K + k)·M + i]: the leading index continues k. */
    cw_line(w, "const long kk = %s;", kk);
    cw_line(w, "const long kt = nn_row_block(%lldL, 1L << 30), nk = (%lldL + kt - 1) / kt;", M, M);
    struct cw body = {.indent = w->indent + 1};
    cw_line(&body, "const long k0 = kb * kt, kn = nn_min(kt, %lldL - k0);", M);
    cw_line(&body, "nn_gemm(kn, %lldL, kk, a + k0, 1, %lldL, b, %lldL, 1, c + k0 * %lldL, %lldL, 0);",
            P, M, P, P, P);
    char work[128];
    snprintf(work, sizeof work, "nk > 1 && kk * %lldL > %lldL", M * P,
             (long long)cg_tile(cg, n)->min_work);
    cg_parallel_or_serial(w, work, "for (long kb = 0; kb < nk; kb++) {", &body);
    cw_free(&body);
    cg_gemm_close(cg, n, 0);
}

static void emit_general(struct cg *cg, const struct ir_node *n, const struct mm *g)
{
    NNCC_ASSERT(!g->m_batch && !g->k_batch); /* rank-2 batched operands take rows or fold */
    struct cw *w = &cg->defs;
    long long M = g->M, K = g->K, P = g->P;
    char items[64], S[64];
    count_expr(g, true, 1, items, sizeof items);
    count_expr(g, false, 1, S, sizeof S);
    cg_gemm_open(cg, n, "a", "b", "c", 0);
    cw_line(w, "(void)n; /* unused when no operand is batched */");
    cw_line(w, "const long items = %s, S = %s;", items, S);
    cw_line(w, "if (S == 0 || items == 0) { /* no samples: an empty sum */");
    cw_line(w, "    memset(c, 0, sizeof(float) * (size_t)items * %lldL);", M * P);
    cw_line(w, "    return;");
    cw_line(w, "}");
    /* Enough tasks for the threads: an output matrix's rows split into
     * blocks (multiples of the micro-kernel's rows) when there are fewer
     * matrices than threads. */
    cw_line(w, "const long nt = nn_threads(), per = items >= nt ? 1 : (nt + items - 1) / items;");
    cw_line(w, "long rb = %lldL;", M);
    cw_line(w, "if (per > 1)");
    cw_line(w, "    rb = ((%lldL + per - 1) / per + NN_MR - 1) / NN_MR * NN_MR;", M);
    cw_line(w, "const long nrb = (%lldL + rb - 1) / rb, tasks = items * nrb;", M);
    struct cw body = {.indent = w->indent + 1}, *bw = &body;
    cw_line(bw, "const long o = task / nrb, r0 = task %% nrb * rb, m = nn_min(rb, %lldL - r0);", M);
    cw_line(bw, "long ao = r0 * %lldL, bo = 0;", g->sai);
    offsets(bw, g, true, "o", "ao", "bo");
    cw_line(bw, "float *co = c + o * %lldL + r0 * %lldL;", M * P, P);
    cw_line(bw, "for (long s = 0; s < S; s++) {");
    bw->indent++;
    cw_line(bw, "long as = ao, bs = bo;");
    offsets(bw, g, false, "s", "as", "bs");
    char call[256];
    snprintf(call, sizeof call,
             "nn_gemm(m, %lldL, %lldL, a + as, %lldL, %lldL, b + bs, %lldL, %lldL, co, %lldL, "
             "s > 0);", P, K, g->sai, g->sak, g->sbk, g->sbj, P);
    if (g->sak == 1 && g->sbj == 1) { /* rows and b row-major: few rows read b in place */
        cw_line(bw, "if (m <= NN_DIRECT_M)");
        cw_line(bw, "    nn_gemm_direct(m, %lldL, %lldL, a + as, %lldL, b + bs, %lldL, co, "
                    "%lldL, s > 0);", P, K, g->sai, g->sbk, P);
        cw_line(bw, "else");
        cw_line(bw, "    %s", call);
    } else {
        cw_line(bw, "%s", call);
    }
    bw->indent--;
    cw_line(bw, "}");
    char work[160];
    snprintf(work, sizeof work, "tasks > 1 && items * S * %lldL > %lldL", M * K * P,
             (long long)cg_tile(cg, n)->min_work);
    cg_parallel_or_serial(w, work, "for (long task = 0; task < tasks; task++) {", bw);
    cw_free(bw);
    cg_gemm_close(cg, n, 0);
}

/* An operand's shape for the kernel's comment: the batch spelled n. */
static const char *operand_shape(const nncc_tensor *t, char *buf, size_t size)
{
    return t->batched ? cg_shape(t->shape, buf, size) : ir_dims_str(t->shape, buf, size);
}

static void emit_product(struct cg *cg, const struct ir_node *n, bool sum)
{
    struct mm g;
    geometry(n, sum, &g);
    char what[400], s0[160], s1[160];
    const char *how = rows_schedule(&g) ? "rows" : fold_schedule(&g) ? "fold" : "general";
    snprintf(what, sizeof what, "a %s%s . b %s%s%s (%s)",
             operand_shape(n->in[0], s0, sizeof s0), g.ta ? "^T" : "",
             operand_shape(n->in[1], s1, sizeof s1), g.tb ? "^T" : "",
             sum ? ", summed" : "", how);
    cg_kernel_comment(cg, n, what);
    if (rows_schedule(&g))
        emit_rows(cg, n, &g);
    else if (fold_schedule(&g))
        emit_fold(cg, n, &g);
    else
        emit_general(cg, n, &g);
}

void emit_batch_matmul(struct cg *cg, const struct ir_node *n) { emit_product(cg, n, false); }

void emit_batch_matmul_sum(struct cg *cg, const struct ir_node *n) { emit_product(cg, n, true); }
