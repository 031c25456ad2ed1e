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
 * convolution is a plain GEMM on x.  A forward with at most 32 taps (a
 * first layer) builds no columns: each output line's receptive fields are
 * read in place (nn_taps_rows), the same floats as through columns.
 *
 * Fusion (passes/fuse.c) adds two kernels here: conv_pool (the forward
 * max-pools each band of its output in cache and never stores it) and
 * pool_wgrad (a pooling gradient computes the first convolution's filter
 * and bias gradients per image, from a direct small-filter kernel).
 *
 * Threads: the forward splits rows, the input gradient images (their
 * scatter-adds never meet), the filter gradient eight fixed runs of rows
 * into partial sums (dw's rows for a pointwise or very large filter); so
 * every value is summed in the same order whatever the thread count.
 * Grouped convolutions (groups > 1) have their own kernels, conv_group.c.
 */
#include "codegen/codegen.h"

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

/* The forward without columns or packing, for a small K and a dilation of
 * 1 across (a kernel row's KW taps adjacent in x).  Parallel over output
 * lines (image, oh).  A pixel's taps are KH runs of KW*C floats in x, the
 * runs dh*W*C apart and neighbouring pixels sw*C apart, so a line's
 * interior pixels (whose fields lie inside the image) go to nn_taps_rows
 * as one strided matrix read in place; a pixel whose field hangs over the
 * padding gets its taps copied, zeros included, into tap[] first.  Taps
 * are summed from zero in the columns' (KH, KW, C) order, padding zeros
 * included, so every output is the very float the im2col path gives; the
 * epilogue then runs on each block of lines, in L1, as it does there. */
/* Which pixels of an output line have their whole field inside the image
 * (lo <= ow < hi), and whether any pixel's field hangs over the padding. */
struct direct_span {
    long long lo, hi;
    bool border;
};

static struct direct_span direct_span(const struct conv *c)
{
    struct direct_span d = {.lo = (c->pl + c->sw - 1) / c->sw};
    if (c->W - c->KW + c->pl >= 0)
        d.hi = (c->W - c->KW + c->pl) / c->sw + 1;
    d.hi = d.hi > c->OW ? c->OW : d.hi;
    d.hi = d.hi < d.lo ? d.lo : d.hi;
    bool rows_out = c->pt > 0 || (c->OH - 1) * c->sh - c->pt + (c->KH - 1) * c->dh > c->H - 1;
    d.border = rows_out || d.lo > 0 || d.hi < c->OW;
    return d;
}

/* Output line l (image b = l / OH, row oh) of a small-K convolution into
 * yl (OW·F floats): interior pixels straight from x through nn_taps_rows,
 * border pixels through tap[] (declared by the caller when there are any). */
static void emit_direct_line(struct cw *w, const struct conv *c)
{
    struct direct_span d = direct_span(c);
    long long lo = d.lo, hi = d.hi, KWC = c->KW * c->C;
    bool border = d.border;
    cw_line(w, "const long b = l / %lldL, oh = l %% %lldL, ih0 = oh * %d - %d;", c->OH, c->OH,
            c->sh, c->pt);
    cw_line(w, "const int inside = ih0 >= 0 && ih0 + %lldL <= %lldL;", (c->KH - 1) * c->dh,
            c->H - 1);
    if (hi > lo) {
        cw_line(w, "if (inside)");
        cw_line(w, "    nn_taps_rows(%lldL, %lldL, %lldL, %lldL, %lldL, x + ((b * %lldL + ih0) * "
                "%lldL + %lldL) * %lldL, w, %lldL, %lldL, yl + %lldL, %lldL, 0);",
                hi - lo, (long long)c->sw * c->C, c->KH, KWC, c->dh * c->W * c->C, c->H, c->W,
                lo * c->sw - c->pl, c->C, c->F, c->F, lo * c->F, c->F);
    }
    if (border) {
        cw_line(w, "for (long ow = 0; ow < %lldL; ow++) {", c->OW);
        w->indent++;
        cw_line(w, "if (inside && ow >= %lldL && ow < %lldL)", lo, hi);
        cw_line(w, "    continue;");
        cw_line(w, "const long iw0 = ow * %d - %d;", c->sw, c->pl);
        cw_line(w, "for (long kh = 0; kh < %lldL; kh++) {", c->KH);
        cw_line(w, "    const long ih = ih0 + kh * %d;", c->dh);
        cw_line(w, "    for (long kw = 0; kw < %lldL; kw++) {", c->KW);
        cw_line(w, "        const long iw = iw0 + kw;");
        cw_line(w, "        float *d = tap + (kh * %lldL + kw) * %lldL;", c->KW, c->C);
        cw_line(w, "        if (ih < 0 || ih >= %lldL || iw < 0 || iw >= %lldL)", c->H, c->W);
        cw_line(w, "            memset(d, 0, sizeof(float) * %lldL);", c->C);
        cw_line(w, "        else");
        cw_line(w, "            memcpy(d, x + ((b * %lldL + ih) * %lldL + iw) * %lldL, "
                "sizeof(float) * %lldL);", c->H, c->W, c->C, c->C);
        cw_line(w, "    }");
        cw_line(w, "}");
        cw_line(w, "nn_taps_rows(1, 0, %lldL, %lldL, %lldL, tap, w, %lldL, %lldL, yl + ow * %lldL, "
                "%lldL, 0);", c->KH, KWC, KWC, c->F, c->F, c->F, c->F);
        w->indent--;
        cw_line(w, "}");
    }
}

static void emit_conv2d_direct(struct cg *cg, const struct ir_node *n, const struct conv *c)
{
    struct cw *out = &cg->defs, body = {.indent = cg->defs.indent + 1}, *w = out;
    const struct ir_tile *t = cg_tile(cg, n);
    long long OWF = c->OW * c->F;
    bool border = direct_span(c).border;
    /* Lines per block: their outputs (about 24 KiB) stay in L1 for the epilogue. */
    long long cap = 6144 / (OWF > 0 ? OWF : 1);
    cap = cap < 1 ? 1 : cap;
    cw_line(w, "const long lines = (long)n * %lldL;", c->OH);
    cw_line(w, "const long rb = nn_row_block(lines, %lldL), nb = (lines + rb - 1) / rb;", cap);
    char work[128];
    snprintf(work, sizeof work, "nb > 1 && lines * %lldL > %lldL", c->OW * c->K * c->F,
             (long long)t->min_work);
    w = &body;
    cw_line(w, "const long l0 = blk * rb, nl = nn_min(rb, lines - l0);");
    if (border)
        cw_line(w, "float tap[%lldL];", c->K);
    cw_line(w, "for (long l = l0; l < l0 + nl; l++) {");
    w->indent++;
    cw_line(w, "float *yl = y + l * %lldL;", OWF);
    emit_direct_line(w, c);
    w->indent--;
    cw_line(w, "}");
    char at[64], count[64];
    snprintf(at, sizeof at, "(y + l0 * %lldL)", OWF);
    snprintf(count, sizeof count, "nl * %lldL", c->OW);
    cg_epilogue_rows(w, cg_epilogue(cg, n), at, count, c->F);
    cg_parallel_or_serial(out, work, "for (long blk = 0; blk < nb; blk++) {", &body);
    cw_free(&body);
}

void emit_conv2d(struct cg *cg, const struct ir_node *n)
{
    if (n->a.groups > 1) {
        emit_conv2d_grouped(cg, n);
        return;
    }
    struct conv c = conv_dims(n, n->in[0], n->out, n->in[1]);
    struct cw *w = &cg->defs;
    const struct ir_tile *t = cg_tile(cg, n);
    comment(cg, n, "convolution", &c);
    /* A schedule's direct flag (passes/tile.c): with so few taps a GEMM over
     * columns spends its time writing and re-reading them (a 3x3
     * convolution of a one-channel image ran at ~20 GFLOP/s through
     * im2col, k = 9). */
    if (t->direct) {
        cg_gemm_open(cg, n, "x", "w", "y", 0);
        emit_conv2d_direct(cg, n, &c);
        cg_gemm_close(cg, n, 0);
        return;
    }
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
    struct cw *out = w, body = {.indent = w->indent + 1};
    w = &body;
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
    cg_epilogue_rows(w, cg_epilogue(cg, n), at, "m", c.F);
    cg_parallel_or_serial(out, work, "for (long blk = 0; blk < nb; blk++) {", &body);
    cw_free(&body);
    cg_gemm_close(cg, n, cg_packed_floats(c.K, c.F));
}

/* Also CONV2D_TRANSPOSE's forward: the same computation (ops.def). */
void emit_conv2d_grad_input(struct cg *cg, const struct ir_node *n)
{
    if (n->a.groups > 1) {
        emit_conv2d_grad_input_grouped(cg, n);
        return;
    }
    struct conv c = conv_dims(n, n->out, n->in[0], n->in[1]);
    struct cw *w = &cg->defs;
    comment(cg, n, n->op == IR_CONV2D_TRANSPOSE ? "transposed convolution (as an input gradient)"
                                                : "input gradient", &c);
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
    cg_epilogue_dact(w, cg_epilogue(cg, n), "dxb", yat, count);
    w->indent--;
    cw_line(w, "}");
    cg_gemm_close(cg, n, cg_packed_floats(c.F, c.K));
}

/* The filter gradient in eight fixed runs of rows (the schedule's
 * IR_PAR_RUNS), each summed apart, in parallel, into partials that are
 * then added in order, so the result does not depend on the thread count;
 * or (pointwise, very large filters) split by rows of dw. */
/* dst (+)= colᵀ · dy over rows from … to of the batch, in column tiles of
 * tr rows; only columns k0 … k0+kn of the columns (rows of dw) are
 * multiplied.  colᵀ(k, r) = col[r·K + k]: A's row stride 1, column stride K. */
static void emit_wgrad_rows(struct cw *w, const struct conv *c, long long tr, const char *from,
                            const char *to, const char *k0, const char *kn, const char *dst)
{
    cw_line(w, "float col[%lldL];", tr * c->K);
    cw_line(w, "for (long r0 = %s; r0 < %s; r0 += %lldL) {", from, to, tr);
    w->indent++;
    cw_line(w, "const long m = nn_min(%lldL, %s - r0);", tr, to);
    emit_im2col(w, c);
    cw_line(w, "nn_gemm(%s, %lldL, m, col + %s, 1, %lldL, dy + r0 * %lldL, %lldL, 1, %s, %lldL, "
            "r0 > %s);", kn, c->F, k0, c->K, c->F, c->F, dst, c->F, from);
    w->indent--;
    cw_line(w, "}");
}

void emit_conv2d_grad_filter(struct cg *cg, const struct ir_node *n)
{
    if (n->a.groups > 1) {
        emit_conv2d_grad_filter_grouped(cg, n);
        return;
    }
    struct conv c = conv_dims(n, n->in[0], n->in[1], n->out);
    struct cw *w = &cg->defs;
    comment(cg, n, "filter gradient", &c);
    const struct ir_tile *t = cg_tile(cg, n);
    long long tr = t->tile_rows, KF = c.K * c.F, stride = (KF + 15) / 16 * 16;
    bool chunks = t->parallel == IR_PAR_RUNS;
    cg_gemm_open(cg, n, "x", "dy", "dw", chunks ? 8 * stride : 0);
    cw_line(w, "const long rows = (long)n * %lldL;", c.OH * c.OW);
    char work[128];
    if (chunks) {
        /* Each run's rows: columns built once, by the thread that owns them. */
        snprintf(work, sizeof work, "rows * %lldL > %lldL", KF, (long long)t->min_work);
        cg_parallel_if(w, work);
        cw_line(w, "for (int q = 0; q < 8; q++) {");
        w->indent++;
        cw_line(w, "float *restrict pw = wp + q * %lldL;", stride);
        cw_line(w, "const long ra = rows * q / 8, rz = rows * (q + 1) / 8;");
        cw_line(w, "if (ra == rz)");
        cw_line(w, "    memset(pw, 0, sizeof(float) * %lldL);", KF);
        char all[32];
        snprintf(all, sizeof all, "%lldL", c.K);
        emit_wgrad_rows(w, &c, tr, "ra", "rz", "0", all, "pw");
        w->indent--;
        cw_line(w, "}");
        cg_sum_eight(w, KF, "wp", stride, "dw");
        cg_gemm_close(cg, n, 8 * stride);
        return;
    }
    cw_line(w, "const long kt = nn_row_block(%lldL, 1L << 30), nk = (%lldL + kt - 1) / kt;", c.K, c.K);
    snprintf(work, sizeof work, "nk > 1 && rows * %lldL > %lldL", KF, (long long)t->min_work);
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
        char dst[64];
        snprintf(dst, sizeof dst, "dw + k0 * %lldL", c.F);
        emit_wgrad_rows(w, &c, tr, "0", "rows", "k0", "kn", dst);
    }
    w->indent--;
    cw_line(w, "}");
    cg_gemm_close(cg, n, 0);
}

/* Filters with at most 48 taps (KH·KW·C) get their per-image filter
 * gradient from emit_direct_wgrad, not im2col and a GEMM with a tiny m,
 * when the padded image fits in 128 KiB of stack. */
static bool direct_wgrad(const struct conv *c)
{
    long long Hp = (c->OH - 1) * c->sh + (c->KH - 1) * c->dh + 1;
    long long Wp = (c->OW - 1) * c->sw + (c->KW - 1) * c->dw + 1;
    return c->K <= 48 && Hp * Wp * c->C <= 32768;
}

/* pw[t][f] += Σ_p x(p, t) · dxb[p][f] for one image b, reading the taps
 * from a zero-padded copy of the image (so no tap needs a bounds check):
 * three taps by 32 output channels accumulate in registers (12 AVX2
 * vectors) over all pixels, p in order; channels past the last full 32
 * in scalar code, a last group of fewer than three taps repeats its first
 * tap and stores only the real ones. */
static void emit_direct_wgrad(struct cw *w, const struct conv *c)
{
    long long Hp = (c->OH - 1) * c->sh + (c->KH - 1) * c->dh + 1;
    long long Wp = (c->OW - 1) * c->sw + (c->KW - 1) * c->dw + 1;
    long long F = c->F, F32 = F / 32 * 32;
    cw_line(w, "float xp[%lldL];", Hp * Wp * c->C);
    cw_line(w, "memset(xp, 0, sizeof xp);");
    cw_line(w, "for (long ih = 0; ih < %lldL; ih++) {", c->H);
    cw_line(w, "    const long ph = ih + %d;", c->pt);
    cw_line(w, "    if (ph >= %lldL) break;", Hp);
    cw_line(w, "    const long w0 = %d, n_ = %lldL < %lldL - w0 ? %lldL : %lldL - w0;", c->pl, c->W, Wp,
            c->W, Wp);
    cw_line(w, "    if (n_ > 0)");
    cw_line(w, "        memcpy(xp + (ph * %lldL + w0) * %lldL, x + ((b * %lldL + ih) * %lldL) * %lldL, "
            "sizeof(float) * (size_t)n_ * %lldL);", Wp, c->C, c->H, c->W, c->C, c->C);
    cw_line(w, "}");
    cw_raw(w, "%*sstatic const long tofs[%lld] = {", w->indent * 4, "", c->K);
    for (long long kh = 0; kh < c->KH; kh++)
        for (long long kw = 0; kw < c->KW; kw++)
            for (long long ci = 0; ci < c->C; ci++)
                cw_raw(w, "%s%lld", kh + kw + ci ? ", " : "",
                       ((kh * c->dh) * Wp + kw * c->dw) * c->C + ci);
    cw_raw(w, "};\n");
    cw_line(w, "for (long t0 = 0; t0 < %lldL; t0 += 3) {", c->K);
    w->indent++;
    cw_line(w, "const long o0 = tofs[t0], o1 = tofs[t0 + 1 < %lldL ? t0 + 1 : t0], "
            "o2 = tofs[t0 + 2 < %lldL ? t0 + 2 : t0];", c->K, c->K);
    cw_line(w, "const long nt = %lldL - t0 < 3 ? %lldL - t0 : 3;", c->K, c->K);
    if (F32 > 0) {
        cw_line(w, "for (long f0 = 0; f0 < %lldL; f0 += 32) {", F32);
        w->indent++;
        cw_line(w, "nn_vf acc[3][32 / NN_VW];");
        cw_line(w, "NN_FULL_UNROLL for (int i = 0; i < 3; i++)");
        cw_line(w, "    NN_FULL_UNROLL for (int v = 0; v < 32 / NN_VW; v++)");
        cw_line(w, "        acc[i][v] = (nn_vf){0};");
        cw_line(w, "for (long oh = 0; oh < %lldL; oh++)", c->OH);
        cw_line(w, "    for (long ow = 0; ow < %lldL; ow++) {", c->OW);
        cw_line(w, "        const float *restrict xq = xp + (oh * %lldL + ow * %dL) * %lldL;",
                c->sh * Wp, c->sw, c->C);
        cw_line(w, "        const float *restrict d = dxb + (oh * %lldL + ow) * %lldL + f0;", c->OW, F);
        cw_line(w, "        const nn_vf a0 = xq[o0] - (nn_vf){0}, a1 = xq[o1] - (nn_vf){0}, "
                "a2 = xq[o2] - (nn_vf){0};");
        cw_line(w, "        NN_FULL_UNROLL for (int v = 0; v < 32 / NN_VW; v++) {");
        cw_line(w, "            const nn_vf dv = nn_load(d + v * NN_VW);");
        cw_line(w, "            acc[0][v] += a0 * dv;");
        cw_line(w, "            acc[1][v] += a1 * dv;");
        cw_line(w, "            acc[2][v] += a2 * dv;");
        cw_line(w, "        }");
        cw_line(w, "    }");
        cw_line(w, "for (int i = 0; i < nt; i++)");
        cw_line(w, "    for (int v = 0; v < 32 / NN_VW; v++) {");
        cw_line(w, "        float *restrict q = pw + (t0 + i) * %lldL + f0 + v * NN_VW;", F);
        cw_line(w, "        nn_store(q, nn_load(q) + acc[i][v]);");
        cw_line(w, "    }");
        w->indent--;
        cw_line(w, "}");
    }
    if (F32 < F) {
        cw_line(w, "float acc[3][%lld];", F - F32);
        cw_line(w, "memset(acc, 0, sizeof acc);");
        cw_line(w, "for (long oh = 0; oh < %lldL; oh++)", c->OH);
        cw_line(w, "    for (long ow = 0; ow < %lldL; ow++) {", c->OW);
        cw_line(w, "        const float *restrict xq = xp + (oh * %lldL + ow * %dL) * %lldL;",
                c->sh * Wp, c->sw, c->C);
        cw_line(w, "        const float *restrict d = dxb + (oh * %lldL + ow) * %lldL + %lldL;", c->OW,
                F, F32);
        cw_line(w, "        for (long f = 0; f < %lldL; f++) {", F - F32);
        cw_line(w, "            acc[0][f] += xq[o0] * d[f];");
        cw_line(w, "            acc[1][f] += xq[o1] * d[f];");
        cw_line(w, "            acc[2][f] += xq[o2] * d[f];");
        cw_line(w, "        }");
        cw_line(w, "    }");
        cw_line(w, "for (int i = 0; i < nt; i++)");
        cw_line(w, "    for (long f = 0; f < %lldL; f++)", F - F32);
        cw_line(w, "        pw[(t0 + i) * %lldL + %lldL + f] += acc[i][f];", F, F32);
    }
    w->indent--;
    cw_line(w, "}");
}

/* pool_wgrad (passes/fuse.c): pooling gradient n makes the gradient of
 * the convolution's output one image at a time on the stack (never
 * stored), and each image's filter gradient (colᵀ · dx, from that image's
 * columns) and bias gradient (dx's column sums) are added to one of eight
 * partial sums, each over a fixed run of images; the partials are then
 * added in order, so the result does not depend on the thread count. */
void emit_pool_wgrad(struct cg *cg, const struct ir_node *n)
{
    const struct ir_group *g = cg_group(cg, n);
    const struct ir_epilogue *f = &g->pool_wgrad.epi;
    const struct ir_node *wn = g->pool_wgrad.wgrad;
    const nncc_tensor *bias_grad = g->pool_wgrad.bias_grad;
    struct conv c = conv_dims(wn, wn->in[0], wn->in[1], wn->out);
    long long P = c.OH * c.OW, KF = c.K * c.F, stride = (KF + c.F + 15) / 16 * 16;
    struct cw *w = &cg->defs;
    comment(cg, wn, "pooling gradient, then this filter gradient (and the bias gradient) per image",
            &c);
    if (direct_wgrad(&c)) {
        /* Small constant loops over registers must unroll even under
         * -fno-unroll-loops, and the pragma differs by compiler. */
        cw_raw(w, "#ifndef NN_FULL_UNROLL\n#if defined(__clang__)\n"
                  "#define NN_FULL_UNROLL _Pragma(\"clang loop unroll(full)\")\n"
                  "#elif defined(__GNUC__)\n#define NN_FULL_UNROLL _Pragma(\"GCC unroll 16\")\n"
                  "#else\n#define NN_FULL_UNROLL\n#endif\n#endif\n");
    }
    cw_line(w, "static void %sk%d(int n, const float *restrict dy, const float *restrict px,",
            cg->prefix, cg_id(cg, n));
    cw_raw(w, "               const float *restrict py, const float *restrict x, float *restrict dw,\n"
              "               float *restrict db");
    if (n->a.pool_max)
        cw_raw(w, ", const float *restrict am");
    cg_epilogue_params(w, f);
    cw_raw(w, ", float *restrict part)\n");
    cw_line(w, "{");
    w->indent++;
    cw_line(w, "(void)db, (void)px;");
    char work[64];
    snprintf(work, sizeof work, "(long)n * %lldL", P * KF);
    cg_parallel(w, work);
    cw_line(w, "for (int q = 0; q < 8; q++) {");
    w->indent++;
    cw_line(w, "float *restrict pw = part + q * %lldL, *restrict pb = pw + %lldL;", stride, KF);
    cw_line(w, "memset(pw, 0, sizeof(float) * %lldL);", KF + c.F);
    cw_line(w, "for (long b = (long)n * q / 8; b < (long)n * (q + 1) / 8; b++) {");
    w->indent++;
    if (direct_wgrad(&c))
        cw_line(w, "float dxb[%lldL];", P * c.F);
    else
        cw_line(w, "float dxb[%lldL], col[%lldL];", P * c.F, P * c.K);
    cg_pool_grad_image(w, n, f, "py");
    cw_line(w, "for (long r = 0; r < %lldL; r++)", P);
    w->indent++;
    cg_simd(w);
    w->indent--;
    cw_line(w, "    for (long ch = 0; ch < %lldL; ch++)", c.F);
    cw_line(w, "        pb[ch] += dxb[r * %lldL + ch];", c.F);
    if (direct_wgrad(&c)) {
        emit_direct_wgrad(w, &c);
    } else {
        cw_line(w, "const long r0 = b * %lldL, m = %lldL;", P, P);
        emit_im2col(w, &c);
        cw_line(w, "nn_gemm(%lldL, %lldL, %lldL, col, 1, %lldL, dxb, %lldL, 1, pw, %lldL, 1);", c.K,
                c.F, P, c.K, c.F, c.F);
    }
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    cg_sum_eight(w, KF, "part", stride, "dw");
    if (bias_grad) {
        char pb[64];
        snprintf(pb, sizeof pb, "(part + %lldL)", KF);
        cg_sum_eight(w, c.F, pb, stride, "db");
    }
    w->indent--;
    cw_line(w, "}");
    cw_raw(&cg->body, "    %sk%d(n, %s, %s, %s, %s, %s, %s", cg->prefix, cg_id(cg, n),
           cg_buf(cg, n->in[0]), cg_buf(cg, n->in[1]), cg_buf(cg, n->in[2]), cg_buf(cg, wn->in[0]),
           cg_buf(cg, wn->out), bias_grad ? cg_buf(cg, bias_grad) : "NULL");
    if (n->a.pool_max)
        cw_raw(&cg->body, ", %s", cg_buf(cg, n->in[3]));
    cg_epilogue_args(&cg->body, cg, f);
    cw_raw(&cg->body, ", %s);\n", cg_scratch(cg, 8 * stride));
}

/* conv_pool (passes/fuse.c): the convolution computes whole bands of
 * pooling windows (PH output rows of one image each) into a tile on the
 * stack, applies its epilogue there and max-pools the band into y, and
 * into am the winning cell of each window, as emit_pool_fwd (pool.c)
 * does: from −∞, first maximum in window order.  The activations are
 * never stored.  Work items are (image, group of bands), at least two per
 * image so a single image still uses two threads. */
void emit_conv_pool(struct cg *cg, const struct ir_node *n)
{
    const struct ir_group *g = cg_group(cg, n);
    const struct ir_node *pn = g->conv_pool.pool;
    const nncc_tensor *argmax = g->conv_pool.argmax;
    const struct ir_epilogue *f = &g->conv_pool.epi;
    struct conv c = conv_dims(n, n->in[0], n->in[1], n->in[1]);
    c.OH = n->out->shape.dim[1], c.OW = n->out->shape.dim[2], c.F = n->out->shape.dim[3];
    const struct ir_tile *t = cg_tile(cg, n);
    long long PH = pn->a.kernel[0], PW = pn->a.kernel[1];
    long long POH = pn->out->shape.dim[1], POW = pn->out->shape.dim[2];
    long long band = PH * c.OW; /* conv output rows (pixels) per band */
    long long bpt = t->tile_rows / band;
    if (bpt * band * (c.K + c.F) > 65536) /* columns and tile within 256 KiB */
        bpt = 65536 / (band * (c.K + c.F));
    if (bpt > (POH + 1) / 2)
        bpt = (POH + 1) / 2;
    if (bpt < 1)
        bpt = 1;
    long long groups = (POH + bpt - 1) / bpt;
    /* As emit_conv2d decides: a small K reads its taps in place. */
    bool direct = t->direct;
    long long packed = direct ? 0 : cg_packed_floats(c.K, c.F);
    struct cw *w = &cg->defs;
    comment(cg, n, "convolution, then max pooling of each band of its output", &c);
    cw_line(w, "static void %sk%d(int n, const float *restrict x, const float *restrict w,",
            cg->prefix, cg_id(cg, n));
    cw_raw(w, "               float *restrict py%s", argmax ? ", float *restrict am" : "");
    cg_epilogue_params(w, f);
    cw_raw(w, "%s)\n", packed ? ", float *restrict wp" : "");
    cw_line(w, "{");
    w->indent++;
    if (packed)
        cw_line(w, "nn_pack_b_all(%lldL, %lldL, w, %lldL, 1, wp);", c.K, c.F, c.F);
    char work[128];
    snprintf(work, sizeof work, "(long)n * %lldL > %lldL", groups * bpt * band * c.K * c.F,
             (long long)t->min_work);
    cg_parallel_if(w, work);
    cw_line(w, "for (long item = 0; item < (long)n * %lldL; item++) {", groups);
    w->indent++;
    cw_line(w, "const long img = item / %lldL, g0 = item %% %lldL * %lldL;", groups, groups, bpt);
    cw_line(w, "const long nb = nn_min(%lldL, %lldL - g0);", bpt, POH);
    cw_line(w, "const long r0 = (img * %lldL + g0 * %lldL) * %lldL, m = nb * %lldL;", c.OH, PH, c.OW,
            band);
    if (direct) {
        cw_line(w, "float yt[%lldL];", bpt * band * c.F);
        if (direct_span(&c).border)
            cw_line(w, "float tap[%lldL];", c.K);
        cw_line(w, "(void)r0;");
        cw_line(w, "for (long l = img * %lldL + g0 * %lldL; l < img * %lldL + (g0 + nb) * %lldL; l++) {",
                c.OH, PH, c.OH, PH);
        w->indent++;
        cw_line(w, "float *yl = yt + (l - img * %lldL - g0 * %lldL) * %lldL;", c.OH, PH, c.OW * c.F);
        emit_direct_line(w, &c);
        w->indent--;
        cw_line(w, "}");
    } else {
        cw_line(w, "float col[%lldL], yt[%lldL];", bpt * band * c.K, bpt * band * c.F);
        emit_im2col(w, &c);
        cw_line(w, "nn_gemm_packed(m, %lldL, %lldL, col, %lldL, 1, wp, yt, %lldL, 0);", c.F, c.K,
                c.K, c.F);
    }
    cg_epilogue_rows(w, f, "yt", "m", c.F);
    cw_line(w, "for (long pb = 0; pb < nb; pb++)");
    cw_line(w, "    for (long pw = 0; pw < %lldL; pw++) {", POW);
    w->indent += 2;
    cw_line(w, "const long o = ((img * %lldL + g0 + pb) * %lldL + pw) * %lldL;", POH, POW, c.F);
    cw_line(w, "float *restrict yp = py + o;");
    if (argmax)
        cw_line(w, "float *restrict ap = am + o;");
    cg_simd(w);
    cw_line(w, "for (long ch = 0; ch < %lldL; ch++) {", c.F);
    cw_line(w, "    yp[ch] = -INFINITY;");
    if (argmax)
        cw_line(w, "    ap[ch] = 0.0f;");
    cw_line(w, "}");
    cw_line(w, "for (long kh = 0; kh < %lldL; kh++)", PH);
    cw_line(w, "    for (long kw = 0; kw < %lldL; kw++) {", PW);
    cw_line(w, "        const float *restrict tp = yt + ((pb * %lldL + kh) * %lldL + pw * %lldL + kw) * "
            "%lldL;", PH, c.OW, PW, c.F);
    if (argmax)
        cw_line(w, "        const float k = (float)(kh * %lldL + kw);", PW);
    w->indent += 2;
    cg_max_cell(w, c.F, "tp", argmax != NULL);
    w->indent -= 2;
    cw_line(w, "    }");
    w->indent -= 2;
    cw_line(w, "    }");
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    cw_raw(&cg->body, "    %sk%d(n, %s, %s, %s", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]),
           cg_buf(cg, n->in[1]), cg_buf(cg, g->result));
    if (argmax)
        cw_raw(&cg->body, ", %s", cg_buf(cg, argmax));
    cg_epilogue_args(&cg->body, cg, f);
    if (packed)
        cw_raw(&cg->body, ", %s", cg_scratch(cg, packed));
    cw_raw(&cg->body, ");\n");
}
