/*
 * conv.c — Conv2D in NHWC on the GEMM core (codegen/prelude/gemm.c).
 *
 * A convolution is a GEMM over "columns": row r is output pixel r's
 * receptive field, KH·KW·C values in the kernel's (KH, KW, C, F) order
 * (zeros where it hangs over the padding), so that
 *   forward       y (rows, F) = col (rows, K) · w (K, F)
 *   input grad    dcol = dy · wᵀ, then each column value is added back to
 *                 the input cell it came from
 *   filter grad   dw (K, F) = Σ_rows colᵀ · dy
 * with K = KH·KW·C.  Columns are never built for a whole batch: each thread
 * fills a tile (on its stack; rows from the node's schedule, passes/tile.c)
 * and multiplies it while it is in cache.  A 1x1 stride-1 unpadded
 * convolution is a plain GEMM on x.
 *
 * Threads: the forward splits rows, the input gradient images (their
 * scatter-adds never meet), the filter gradient dw's rows; so every value
 * is summed in the same order whatever the thread count.
 */
#include "codegen.h"
#include "../passes/passes.h"

struct conv {
    long long H, W, C, OH, OW, F, KH, KW, K;
    int sh, sw, dh, dw, pt, pl;
};

static struct conv conv_dims(const struct ir_node *n, const nncc_tensor *x, const nncc_tensor *y,
                             const nncc_tensor *w)
{
    const int64_t *xd = x->shape.dim, *yd = y->shape.dim, *wd = w->shape.dim;
    struct conv c = {.H = xd[1], .W = xd[2], .C = xd[3], .OH = yd[1], .OW = yd[2], .F = yd[3],
                     .KH = wd[0], .KW = wd[1], .sh = n->a.stride[0], .sw = n->a.stride[1],
                     .dh = n->a.dilation[0], .dw = n->a.dilation[1], .pt = n->a.pad[0],
                     .pl = n->a.pad[2]};
    c.K = c.KH * c.KW * c.C;
    return c;
}

static void comment(struct cg *cg, const struct ir_node *n, const char *kind, const struct conv *c)
{
    char what[300];
    snprintf(what, sizeof what, "%s: (n, %lld, %lld, %lld) * w (%lld, %lld, %lld, %lld) -> "
             "(n, %lld, %lld, %lld), stride %dx%d, dilation %dx%d, pad t%d b%d l%d r%d", kind,
             c->H, c->W, c->C, c->KH, c->KW, c->C, c->F, c->OH, c->OW, c->F, c->sh, c->sw, c->dh,
             c->dw, n->a.pad[0], n->a.pad[1], n->a.pad[2], n->a.pad[3]);
    cg_kernel_comment(cg, n, what);
}

/* Defines ih, iw-dependent code for output pixel q (batch-wide row index):
 * b, oh, ow. */
static void pixel_coords(struct cw *w, const struct conv *c, const char *q)
{
    cw_line(w, "const long b = %s / %lldL, pix = %s %% %lldL;", q, c->OH * c->OW, q, c->OH * c->OW);
    cw_line(w, "const long oh = pix / %lldL, ow = pix %% %lldL;", c->OW, c->OW);
}

/* Rows r0 … r0+m-1 of the columns into col (m × K, row-major): each
 * row's taps in (KH, KW, C) order, zeros where they hang over the padding;
 * a kernel row's KW taps are one copy when all are inside. */
static void emit_im2col(struct cw *w, const struct conv *c)
{
    cw_line(w, "for (long r = 0; r < m; r++) {");
    w->indent++;
    pixel_coords(w, c, "(r0 + r)");
    cw_line(w, "float *restrict cr = col + r * %lldL;", c->K);
    cw_line(w, "for (long kh = 0; kh < %lldL; kh++) {", c->KH);
    w->indent++;
    cw_line(w, "const long ih = oh * %d - %d + kh * %d, iw0 = ow * %d - %d;", c->sh, c->pt, c->dh,
            c->sw, c->pl);
    cw_line(w, "float *restrict dst = cr + kh * %lldL;", c->KW * c->C);
    cw_line(w, "if (ih < 0 || ih >= %lldL) {", c->H);
    cw_line(w, "    memset(dst, 0, sizeof(float) * %lldL);", c->KW * c->C);
    cw_line(w, "    continue;");
    cw_line(w, "}");
    cw_line(w, "const float *restrict src = x + (b * %lldL + ih) * %lldL;", c->H, c->W * c->C);
    if (c->dw == 1) {
        /* The row's taps are adjacent pixels: one copy when all are inside. */
        cw_line(w, "if (iw0 >= 0 && iw0 + %lldL <= %lldL) {", c->KW, c->W);
        cw_line(w, "    memcpy(dst, src + iw0 * %lldL, sizeof(float) * %lldL);", c->C, c->KW * c->C);
        cw_line(w, "    continue;");
        cw_line(w, "}");
    }
    cw_line(w, "for (long kw = 0; kw < %lldL; kw++) {", c->KW);
    cw_line(w, "    const long iw = iw0 + kw * %d;", c->dw);
    cw_line(w, "    if (iw < 0 || iw >= %lldL)", c->W);
    cw_line(w, "        memset(dst + kw * %lldL, 0, sizeof(float) * %lldL);", c->C, c->C);
    cw_line(w, "    else");
    cw_line(w, "        memcpy(dst + kw * %lldL, src + iw * %lldL, sizeof(float) * %lldL);", c->C,
            c->C, c->C);
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
}

void emit_conv2d(struct cg *cg, const struct ir_node *n)
{
    struct conv c = conv_dims(n, n->in[0], n->out, n->in[1]);
    struct cw *w = &cg->defs;
    const struct ir_tile *t = cg_tile(cg, n);
    comment(cg, n, "convolution", &c);
    cg_gemm_open(cg, n, "x", "w", "y", cg_packed_floats(c.K, c.F));
    /* The weights are packed once, before the threads start. */
    cw_line(w, "nn_pack_b_all(%lldL, %lldL, w, %lldL, 1, wp);", c.K, c.F, c.F);
    cw_line(w, "const long rows = (long)n * %lldL;", c.OH * c.OW);
    if (t->pointwise)
        cw_line(w, "const long rb = nn_row_block(rows, 1L << 30), nb = (rows + rb - 1) / rb;");
    else
        cw_line(w, "const long rb = nn_row_block(rows, %lldL), nb = (rows + rb - 1) / rb;",
                (long long)t->tile_rows);
    char work[128];
    snprintf(work, sizeof work, "nb > 1 && rows * %lldL > %lldL", c.K * c.F, (long long)t->min_work);
    cg_parallel_if(w, work);
    cw_line(w, "for (long blk = 0; blk < nb; blk++) {");
    w->indent++;
    cw_line(w, "const long r0 = blk * rb, m = nn_min(rb, rows - r0);");
    if (t->pointwise) {
        cw_line(w, "nn_gemm_packed(m, %lldL, %lldL, x + r0 * %lldL, %lldL, 1, wp, y + r0 * %lldL, "
                "%lldL, 0);", c.F, c.C, c.C, c.C, c.F, c.F);
    } else {
        cw_line(w, "float col[%lldL];", (long long)t->tile_rows * c.K);
        emit_im2col(w, &c);
        cw_line(w, "nn_gemm_packed(m, %lldL, %lldL, col, %lldL, 1, wp, y + r0 * %lldL, %lldL, 0);",
                c.F, c.K, c.K, c.F, c.F);
    }
    char at[64];
    snprintf(at, sizeof at, "(y + r0 * %lldL)", c.F);
    cg_epilogue_rows(w, cg_fused(cg, n), at, "m", c.F);
    w->indent--;
    cw_line(w, "}");
    cg_gemm_close(cg, n, cg_packed_floats(c.K, c.F));
}

void emit_conv2d_grad_input(struct cg *cg, const struct ir_node *n)
{
    struct conv c = conv_dims(n, n->out, n->in[0], n->in[1]);
    struct cw *w = &cg->defs;
    comment(cg, n, "input gradient", &c);
    cg_gemm_open(cg, n, "dy", "w", "dx", cg_packed_floats(c.F, c.K));
    /* wᵀ(f, k) = w[k·F + f], packed once for all images. */
    cw_line(w, "nn_pack_b_all(%lldL, %lldL, w, 1, %lldL, wp);", c.F, c.K, c.F);
    const struct ir_tile *t = cg_tile(cg, n);
    long long pix = c.OH * c.OW, tr = t->tile_rows;
    char work[128];
    snprintf(work, sizeof work, "n > 1 && (long)n * %lldL > %lldL", pix * c.K * c.F,
             (long long)t->min_work);
    cg_parallel_if(w, work);
    cw_line(w, "for (long b = 0; b < n; b++) {");
    w->indent++;
    cw_line(w, "float dcol[%lldL];", tr * c.K);
    cw_line(w, "float *restrict dxb = dx + b * %lldL;", c.H * c.W * c.C);
    cw_line(w, "memset(dxb, 0, sizeof(float) * %lldL);", c.H * c.W * c.C);
    cw_line(w, "for (long p0 = 0; p0 < %lldL; p0 += %lldL) {", pix, tr);
    w->indent++;
    cw_line(w, "const long m = nn_min(%lldL, %lldL - p0);", tr, pix);
    cw_line(w, "nn_gemm_packed(m, %lldL, %lldL, dy + (b * %lldL + p0) * %lldL, %lldL, 1, wp, "
            "dcol, %lldL, 0);", c.K, c.F, pix, c.F, c.F, c.K);
    cw_line(w, "for (long r = 0; r < m; r++) {");
    w->indent++;
    cw_line(w, "const long oh = (p0 + r) / %lldL, ow = (p0 + r) %% %lldL;", c.OW, c.OW);
    cw_line(w, "for (long kh = 0; kh < %lldL; kh++) {", c.KH);
    cw_line(w, "    const long ih = oh * %d - %d + kh * %d;", c.sh, c.pt, c.dh);
    cw_line(w, "    if (ih < 0 || ih >= %lldL)", c.H);
    cw_line(w, "        continue;");
    cw_line(w, "    for (long kw = 0; kw < %lldL; kw++) {", c.KW);
    cw_line(w, "        const long iw = ow * %d - %d + kw * %d;", c.sw, c.pl, c.dw);
    cw_line(w, "        if (iw < 0 || iw >= %lldL)", c.W);
    cw_line(w, "            continue;");
    cw_line(w, "        float *restrict d = dxb + (ih * %lldL + iw) * %lldL;", c.W, c.C);
    cw_line(w, "        const float *restrict s = dcol + r * %lldL + (kh * %lldL + kw) * %lldL;", c.K,
            c.KW, c.C);
    w->indent += 2;
    cg_simd(w);
    w->indent -= 2;
    cw_line(w, "        for (long ch = 0; ch < %lldL; ch++)", c.C);
    cw_line(w, "            d[ch] += s[ch];");
    cw_line(w, "    }");
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    char yat[64], count[32];
    snprintf(yat, sizeof yat, "(yv + b * %lldL)", c.H * c.W * c.C);
    snprintf(count, sizeof count, "%lldL", c.H * c.W * c.C);
    cg_epilogue_dact(w, cg_fused(cg, n), "dxb", yat, count);
    w->indent--;
    cw_line(w, "}");
    cg_gemm_close(cg, n, cg_packed_floats(c.F, c.K));
}

void emit_conv2d_grad_filter(struct cg *cg, const struct ir_node *n)
{
    struct conv c = conv_dims(n, n->in[0], n->in[1], n->out);
    struct cw *w = &cg->defs;
    comment(cg, n, "filter gradient", &c);
    cg_gemm_open(cg, n, "x", "dy", "dw", 0);
    const struct ir_tile *t = cg_tile(cg, n);
    long long tr = t->tile_rows;
    cw_line(w, "const long rows = (long)n * %lldL;", c.OH * c.OW);
    cw_line(w, "const long kt = nn_row_block(%lldL, 1L << 30), nk = (%lldL + kt - 1) / kt;", c.K, c.K);
    char work[128];
    snprintf(work, sizeof work, "nk > 1 && rows * %lldL > %lldL", c.K * c.F, (long long)t->min_work);
    cg_parallel_if(w, work);
    cw_line(w, "for (long kb = 0; kb < nk; kb++) {");
    w->indent++;
    cw_line(w, "const long k0 = kb * kt, kn = nn_min(kt, %lldL - k0);", c.K);
    cw_line(w, "if (rows == 0)");
    cw_line(w, "    memset(dw + k0 * %lldL, 0, sizeof(float) * (size_t)(kn * %lldL));", c.F, c.F);
    if (t->pointwise) {
        cw_line(w, "nn_gemm(kn, %lldL, rows, x + k0, 1, %lldL, dy, %lldL, 1, dw + k0 * %lldL, %lldL, 0);",
                c.F, c.C, c.F, c.F, c.F);
    } else {
        /* Whole column rows (cheap next to the product), of which this
         * thread multiplies its columns k0 … k0+kn. */
        cw_line(w, "float col[%lldL];", tr * c.K);
        cw_line(w, "for (long r0 = 0; r0 < rows; r0 += %lldL) {", tr);
        w->indent++;
        cw_line(w, "const long m = nn_min(%lldL, rows - r0);", tr);
        emit_im2col(w, &c);
        /* colᵀ(k, r) = col[r·K + k]: A's row stride 1, column stride K. */
        cw_line(w, "nn_gemm(kn, %lldL, m, col + k0, 1, %lldL, dy + r0 * %lldL, %lldL, 1, "
                "dw + k0 * %lldL, %lldL, r0 > 0);", c.F, c.K, c.F, c.F, c.F, c.F);
        w->indent--;
        cw_line(w, "}");
    }
    w->indent--;
    cw_line(w, "}");
    cg_gemm_close(cg, n, 0);
}
