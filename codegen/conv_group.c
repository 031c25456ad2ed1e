/*
 * conv_group.c — grouped convolutions (ONNX's `group`), NHWC: the forward,
 * the input gradient (also ConvTranspose's forward) and the filter
 * gradient of a CONV2D with groups > 1; codegen/conv.c hands them here.
 *
 * Contract: x (n, H, W, C), w (KH, KW, C/G, F), y (n, OH, OW, F); output
 * channel f belongs to group g = f / (F/G), which reads input channels
 * g·C/G … (g+1)·C/G − 1.  Pads are pad[0] (top) and pad[2] (left); the end
 * pads only decide the output size, which the kernels take from the shapes.
 *
 * Two shapes of kernel:
 *   depthwise  C/G = 1 (each group reads one channel, F = k·C): direct
 *              loops over the taps, vectorized over the F output channels
 *              (a GEMM per group would have k = KH·KW and n = k: all
 *              overhead); with multiplier 1 the forward and the input
 *              gradient (a gather, each dx written once) hold four pixels
 *              by two vectors of channels in registers;
 *   general    C/G > 1: per tile of output rows and per group, the group's
 *              columns (KH·KW·C/G) built on the stack and one GEMM against
 *              that group's weight columns, packed once per call.
 * Threads as in conv.c: the forward splits output rows, the input gradient
 * images (col2im adds of one image never race; the gather splits rows), the
 * filter gradient eight
 * fixed runs of rows summed apart then in order; so every value is summed
 * in the same order whatever the thread count.  Fused epilogues (bias_act
 * on the forward, dact on the input gradient) run here as in conv.c.
 */
#include "codegen/codegen.h"

struct gconv {
    long long H, W, C, OH, OW, F, KH, KW, G, Cg, Fg, Kg;
    int sh, sw, dh, dw, pt, pl;
};

static struct gconv gconv_dims(const struct ir_node *n, const nncc_tensor *x,
                               const nncc_tensor *y, const nncc_tensor *w)
{
    const int64_t *xd = x->shape.dim, *yd = y->shape.dim, *wd = w->shape.dim;
    struct gconv c = {.H = xd[1], .W = xd[2], .C = xd[3], .OH = yd[1], .OW = yd[2], .F = yd[3],
                      .KH = wd[0], .KW = wd[1], .G = n->a.groups > 1 ? n->a.groups : 1,
                      .sh = n->a.stride[0], .sw = n->a.stride[1], .dh = n->a.dilation[0],
                      .dw = n->a.dilation[1], .pt = n->a.pad[0], .pl = n->a.pad[2]};
    c.Cg = c.C / c.G;
    c.Fg = c.F / c.G;
    c.Kg = c.KH * c.KW * c.Cg;
    return c;
}

static void gcomment(struct cg *cg, const struct ir_node *n, const char *kind, const struct gconv *c)
{
    char what[320];
    snprintf(what, sizeof what, "%s: (n, %lld, %lld, %lld) * w (%lld, %lld, %lld, %lld) in %lld "
             "groups -> (n, %lld, %lld, %lld), stride %dx%d, dilation %dx%d, pad t%d b%d l%d r%d",
             kind, c->H, c->W, c->C, c->KH, c->KW, c->Cg, c->F, c->G, c->OH, c->OW, c->F, c->sh,
             c->sw, c->dh, c->dw, n->a.pad[0], n->a.pad[1], n->a.pad[2], n->a.pad[3]);
    cg_kernel_comment(cg, n, what);
}

/* Rows r0 … r0+m-1 (batch-wide pixel indices) of group g's columns into
 * col (m × Kg): taps in (KH, KW, C/G) order, zeros over the padding. */
static void emit_group_im2col(struct cw *w, const struct gconv *c)
{
    cw_line(w, "for (long r = 0; r < m; r++) {");
    w->indent++;
    cw_line(w, "const long q = r0 + r, b = q / %lldL, pix = q %% %lldL;", c->OH * c->OW,
            c->OH * c->OW);
    cw_line(w, "const long oh = pix / %lldL, ow = pix %% %lldL;", c->OW, c->OW);
    cw_line(w, "float *restrict cr = col + r * %lldL;", c->Kg);
    cw_line(w, "for (long kh = 0; kh < %lldL; kh++) {", c->KH);
    cw_line(w, "    const long ih = oh * %d - %d + kh * %d;", c->sh, c->pt, c->dh);
    cw_line(w, "    for (long kw = 0; kw < %lldL; kw++) {", c->KW);
    cw_line(w, "        const long iw = ow * %d - %d + kw * %d;", c->sw, c->pl, c->dw);
    cw_line(w, "        float *restrict d = cr + (kh * %lldL + kw) * %lldL;", c->KW, c->Cg);
    cw_line(w, "        if (ih < 0 || ih >= %lldL || iw < 0 || iw >= %lldL)", c->H, c->W);
    cw_line(w, "            memset(d, 0, sizeof(float) * %lldL);", c->Cg);
    cw_line(w, "        else");
    cw_line(w, "            memcpy(d, x + ((b * %lldL + ih) * %lldL + iw) * %lldL + g * %lldL, "
            "sizeof(float) * %lldL);", c->H, c->W, c->C, c->Cg, c->Cg);
    cw_line(w, "    }");
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
}

/* x's value for output channel f in a depthwise kernel: channel f / k. */
static const char *dw_src(const struct gconv *c, char *buf, size_t size)
{
    if (c->Fg == 1)
        snprintf(buf, size, "xp[f]");
    else
        snprintf(buf, size, "xp[f / %lldL]", c->Fg);
    return buf;
}

/* Depthwise forward with multiplier 1 (F = C), channels 0 … FV−1 (whole
 * blocks of two vectors): four output pixels of the line by two vectors of
 * channels accumulate in registers over the taps, (kh, kw) in order, each
 * tap's weights loaded once for the four; a pixel whose tap falls into
 * the padding skips it.  In scope: b, l, ih0; defines FV.  The channels
 * from FV on are left to the scalar loop after it. */
static void emit_dw_line_blocked(struct cw *w, const struct gconv *c)
{
    cw_line(w, "const long FV = %lldL / (2 * NN_VW) * (2 * NN_VW);", c->F);
    cw_line(w, "for (long ow0 = 0; ow0 < %lldL; ow0 += 4) {", c->OW);
    w->indent++;
    cw_line(w, "const long np = %lldL - ow0 < 4 ? %lldL - ow0 : 4;", c->OW, c->OW);
    /* Every tap of the four pixels inside the row: no checks. */
    cw_line(w, "const int inner = np == 4 && ow0 * %d - %d >= 0 && (ow0 + 3) * %d - %d + %lldL < %lldL;",
            c->sw, c->pl, c->sw, c->pl, (c->KW - 1) * c->dw, c->W);
    cw_line(w, "for (long c0 = 0; c0 < FV; c0 += 2 * NN_VW) {");
    w->indent++;
    cw_line(w, "nn_vf a[4][2];");
    cw_line(w, "NN_FULL_UNROLL for (int p = 0; p < 4; p++)");
    cw_line(w, "    a[p][0] = a[p][1] = (nn_vf){0};");
    cw_line(w, "for (long kh = 0; kh < %lldL; kh++) {", c->KH);
    cw_line(w, "    const long ih = ih0 + kh * %d;", c->dh);
    cw_line(w, "    if (ih < 0 || ih >= %lldL)", c->H);
    cw_line(w, "        continue;");
    cw_line(w, "    const float *restrict xr = x + (b * %lldL + ih) * %lldL + c0;", c->H,
            c->W * c->C);
    cw_line(w, "    for (long kw = 0; kw < %lldL; kw++) {", c->KW);
    cw_line(w, "        const float *restrict wt = w + (kh * %lldL + kw) * %lldL + c0;", c->KW,
            c->F);
    cw_line(w, "        const nn_vf w0 = nn_load(wt), w1 = nn_load(wt + NN_VW);");
    cw_line(w, "        if (inner) {");
    cw_line(w, "            const float *restrict xp = xr + (ow0 * %d - %d + kw * %d) * %lldL;", c->sw,
            c->pl, c->dw, c->C);
    cw_line(w, "            NN_FULL_UNROLL for (int p = 0; p < 4; p++) {");
    cw_line(w, "                a[p][0] += nn_load(xp + p * %lldL) * w0;", c->sw * c->C);
    cw_line(w, "                a[p][1] += nn_load(xp + p * %lldL + NN_VW) * w1;", c->sw * c->C);
    cw_line(w, "            }");
    cw_line(w, "            continue;");
    cw_line(w, "        }");
    cw_line(w, "        NN_FULL_UNROLL for (int p = 0; p < 4; p++) {");
    cw_line(w, "            const long iw = (ow0 + p) * %d - %d + kw * %d;", c->sw, c->pl, c->dw);
    cw_line(w, "            if (p >= np || iw < 0 || iw >= %lldL)", c->W);
    cw_line(w, "                continue;");
    cw_line(w, "            const float *restrict xp = xr + iw * %lldL;", c->C);
    cw_line(w, "            a[p][0] += nn_load(xp) * w0;");
    cw_line(w, "            a[p][1] += nn_load(xp + NN_VW) * w1;");
    cw_line(w, "        }");
    cw_line(w, "    }");
    cw_line(w, "}");
    cw_line(w, "for (int p = 0; p < np; p++) {");
    cw_line(w, "    float *restrict yq = y + (l * %lldL + ow0 + p) * %lldL + c0;", c->OW, c->F);
    cw_line(w, "    nn_store(yq, a[p][0]);");
    cw_line(w, "    nn_store(yq + NN_VW, a[p][1]);");
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
}

/* Small constant loops over registers must unroll even under
 * -fno-unroll-loops (as conv.c's direct filter gradient does). */
static void emit_full_unroll(struct cw *w)
{
    cw_raw(w, "#ifndef NN_FULL_UNROLL\n#if defined(__clang__)\n"
              "#define NN_FULL_UNROLL _Pragma(\"clang loop unroll(full)\")\n"
              "#elif defined(__GNUC__)\n#define NN_FULL_UNROLL _Pragma(\"GCC unroll 16\")\n"
              "#else\n#define NN_FULL_UNROLL\n#endif\n#endif\n");
}

/* Depthwise forward: lines (image, oh) in blocks, each pixel's F outputs
 * summed over its taps in (kh, kw) order from zero, then the epilogue on
 * the block while it is in cache. */
static void emit_dw_forward(struct cg *cg, const struct ir_node *n, const struct gconv *c)
{
    const struct ir_tile *t = cg_tile(cg, n);
    long long OWF = c->OW * c->F;
    long long cap = 6144 / (OWF > 0 ? OWF : 1);
    cap = cap < 1 ? 1 : cap;
    char src[64];
    if (c->Fg == 1)
        emit_full_unroll(&cg->defs);
    cg_gemm_open(cg, n, "x", "w", "y", 0);
    struct cw *out = &cg->defs, body = {.indent = cg->defs.indent + 1}, *w = &body;
    cw_line(out, "const long lines = (long)n * %lldL;", c->OH);
    cw_line(out, "const long rb = nn_row_block(lines, %lldL), nb = (lines + rb - 1) / rb;", cap);
    char work[128];
    snprintf(work, sizeof work, "nb > 1 && lines * %lldL > %lldL", OWF * c->KH * c->KW,
             (long long)t->min_work);
    cw_line(w, "const long l0 = blk * rb, nl = nn_min(rb, lines - l0);");
    cw_line(w, "for (long l = l0; l < l0 + nl; l++) {");
    w->indent++;
    cw_line(w, "const long b = l / %lldL, oh = l %% %lldL, ih0 = oh * %d - %d;", c->OH, c->OH,
            c->sh, c->pt);
    if (c->Fg == 1) {
        emit_dw_line_blocked(w, c);
        cw_line(w, "if (FV < %lldL)", c->F);
    }
    cw_line(w, "for (long ow = 0; ow < %lldL; ow++) {", c->OW);
    w->indent++;
    cw_line(w, "float *restrict yp = y + (l * %lldL + ow) * %lldL;", c->OW, c->F);
    cw_line(w, "const long iw0 = ow * %d - %d;", c->sw, c->pl);
    const char *f0 = c->Fg == 1 ? "FV" : "0";
    cw_line(w, "float acc[%lldL];", c->F);
    cw_line(w, "memset(acc, 0, sizeof acc);");
    cw_line(w, "for (long kh = 0; kh < %lldL; kh++) {", c->KH);
    cw_line(w, "    const long ih = ih0 + kh * %d;", c->dh);
    cw_line(w, "    if (ih < 0 || ih >= %lldL)", c->H);
    cw_line(w, "        continue;");
    cw_line(w, "    for (long kw = 0; kw < %lldL; kw++) {", c->KW);
    cw_line(w, "        const long iw = iw0 + kw * %d;", c->dw);
    cw_line(w, "        if (iw < 0 || iw >= %lldL)", c->W);
    cw_line(w, "            continue;");
    cw_line(w, "        const float *restrict xp = x + ((b * %lldL + ih) * %lldL + iw) * %lldL;",
            c->H, c->W, c->C);
    cw_line(w, "        const float *restrict wt = w + (kh * %lldL + kw) * %lldL;", c->KW, c->F);
    w->indent += 2;
    cg_simd(w);
    w->indent -= 2;
    cw_line(w, "        for (long f = %s; f < %lldL; f++)", f0, c->F);
    cw_line(w, "            acc[f] += %s * wt[f];", dw_src(c, src, sizeof src));
    cw_line(w, "    }");
    cw_line(w, "}");
    cw_line(w, "for (long f = %s; f < %lldL; f++)", f0, c->F);
    cw_line(w, "    yp[f] = acc[f];");
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    char at[64], count[64];
    snprintf(at, sizeof at, "(y + l0 * %lldL)", OWF);
    snprintf(count, sizeof count, "nl * %lldL", c->OW);
    cg_epilogue_rows(w, cg_epilogue(cg, n), at, count, c->F);
    cg_parallel_or_serial(out, work, "for (long blk = 0; blk < nb; blk++) {", &body);
    cw_free(&body);
    cg_gemm_close(cg, n, 0);
}

/* General groups: per row tile, per group, columns then a GEMM against the
 * group's packed weight columns (B(k, j) = w[k·F + g·Fg + j]). */
static void emit_group_forward(struct cg *cg, const struct ir_node *n, const struct gconv *c)
{
    const struct ir_tile *t = cg_tile(cg, n);
    long long pg = cg_packed_floats(c->Kg, c->Fg), packed = pg * c->G;
    cg_gemm_open(cg, n, "x", "w", "y", packed);
    struct cw *out = &cg->defs, body = {.indent = cg->defs.indent + 1}, *w = &body;
    cw_line(out, "for (long g = 0; g < %lldL; g++)", c->G);
    cw_line(out, "    nn_pack_b_all(%lldL, %lldL, w + g * %lldL, %lldL, 1, wp + g * %lldL);", c->Kg,
            c->Fg, c->Fg, c->F, pg);
    cw_line(out, "const long rows = (long)n * %lldL;", c->OH * c->OW);
    cw_line(out, "const long rb = nn_row_block(rows, %lldL), nb = (rows + rb - 1) / rb;",
            (long long)t->tile_rows);
    char work[128];
    snprintf(work, sizeof work, "nb > 1 && rows * %lldL > %lldL", c->Kg * c->F,
             (long long)t->min_work);
    cw_line(w, "const long r0 = blk * rb, m = nn_min(rb, rows - r0);");
    cw_line(w, "float col[%lldL];", (long long)t->tile_rows * c->Kg);
    cw_line(w, "for (long g = 0; g < %lldL; g++) {", c->G);
    w->indent++;
    emit_group_im2col(w, c);
    cw_line(w, "nn_gemm_packed(m, %lldL, %lldL, col, %lldL, 1, wp + g * %lldL, y + r0 * %lldL + g * "
            "%lldL, %lldL, 0);", c->Fg, c->Kg, c->Kg, pg, c->F, c->Fg, c->F);
    w->indent--;
    cw_line(w, "}");
    char at[64];
    snprintf(at, sizeof at, "(y + r0 * %lldL)", c->F);
    cg_epilogue_rows(w, cg_epilogue(cg, n), at, "m", c->F);
    cg_parallel_or_serial(out, work, "for (long blk = 0; blk < nb; blk++) {", &body);
    cw_free(&body);
    cg_gemm_close(cg, n, packed);
}

void emit_conv2d_grouped(struct cg *cg, const struct ir_node *n)
{
    struct gconv c = gconv_dims(n, n->in[0], n->out, n->in[1]);
    gcomment(cg, n, c.Cg == 1 ? "depthwise convolution" : "grouped convolution", &c);
    if (c.Cg == 1)
        emit_dw_forward(cg, n, &c);
    else
        emit_group_forward(cg, n, &c);
}

/* The depthwise input gradient with multiplier 1 (and the depthwise
 * ConvTranspose) as a gather: each dx pixel sums, over the taps (kh, kw)
 * in order, dy at the output pixel that tap reads it from (oh·sh = ih +
 * pt − kh·dh, likewise ow), times the tap's weights; four pixels of a dx
 * row by two vectors of channels in registers, so each dx value is written
 * once (no zeroing, no read-modify-write) and the rows (image, ih) can be
 * split over threads.  Channels past the last whole pair of vectors in
 * scalar code; the fused dact epilogue on each block of rows. */
static void emit_dw_grad_input_gather(struct cg *cg, const struct ir_node *n, const struct gconv *c)
{
    const struct ir_tile *t = cg_tile(cg, n);
    long long WC = c->W * c->C, C = c->C;
    long long cap = 6144 / (WC > 0 ? WC : 1);
    cap = cap < 1 ? 1 : cap;
    bool unit = c->sh == 1 && c->sw == 1;
    emit_full_unroll(&cg->defs);
    cg_gemm_open(cg, n, "dy", "w", "dx", 0);
    struct cw *out = &cg->defs, body = {.indent = cg->defs.indent + 1}, *w = &body;
    cw_line(out, "const long lines = (long)n * %lldL;", c->H);
    cw_line(out, "const long rb = nn_row_block(lines, %lldL), nb = (lines + rb - 1) / rb;", cap);
    char work[128];
    snprintf(work, sizeof work, "nb > 1 && lines * %lldL > %lldL", WC * c->KH * c->KW,
             (long long)t->min_work);
    cw_line(w, "const long l0 = blk * rb, nl = nn_min(rb, lines - l0);");
    cw_line(w, "const long FV = %lldL / (2 * NN_VW) * (2 * NN_VW);", C);
    cw_line(w, "for (long l = l0; l < l0 + nl; l++) {");
    w->indent++;
    cw_line(w, "const long b = l / %lldL, ih = l %% %lldL;", c->H, c->H);
    cw_line(w, "float *restrict dl = dx + l * %lldL;", WC);
    cw_line(w, "for (long iw0 = 0; iw0 < %lldL; iw0 += 4) {", c->W);
    w->indent++;
    cw_line(w, "const long np = %lldL - iw0 < 4 ? %lldL - iw0 : 4;", c->W, c->W);
    if (unit)
        cw_line(w, "const int inner = np == 4 && iw0 + %d - %lldL >= 0 && iw0 + 3 + %d < %lldL;",
                c->pl, (c->KW - 1) * c->dw, c->pl, c->OW);
    cw_line(w, "for (long c0 = 0; c0 < FV; c0 += 2 * NN_VW) {");
    w->indent++;
    cw_line(w, "nn_vf a[4][2];");
    cw_line(w, "NN_FULL_UNROLL for (int p = 0; p < 4; p++)");
    cw_line(w, "    a[p][0] = a[p][1] = (nn_vf){0};");
    cw_line(w, "for (long kh = 0; kh < %lldL; kh++) {", c->KH);
    cw_line(w, "    const long th = ih + %d - kh * %d;", c->pt, c->dh);
    cw_line(w, "    if (th < 0 || th %% %d != 0 || th / %d >= %lldL)", c->sh, c->sh, c->OH);
    cw_line(w, "        continue;");
    cw_line(w, "    const float *restrict dr = dy + (b * %lldL + th / %d) * %lldL + c0;", c->OH, c->sh,
            c->OW * C);
    cw_line(w, "    for (long kw = 0; kw < %lldL; kw++) {", c->KW);
    cw_line(w, "        const float *restrict wt = w + (kh * %lldL + kw) * %lldL + c0;", c->KW, C);
    cw_line(w, "        const nn_vf w0 = nn_load(wt), w1 = nn_load(wt + NN_VW);");
    if (unit) {
        cw_line(w, "        if (inner) {");
        cw_line(w, "            const float *restrict dp = dr + (iw0 + %d - kw * %d) * %lldL;", c->pl,
                c->dw, C);
        cw_line(w, "            NN_FULL_UNROLL for (int p = 0; p < 4; p++) {");
        cw_line(w, "                a[p][0] += nn_load(dp + p * %lldL) * w0;", C);
        cw_line(w, "                a[p][1] += nn_load(dp + p * %lldL + NN_VW) * w1;", C);
        cw_line(w, "            }");
        cw_line(w, "            continue;");
        cw_line(w, "        }");
    }
    cw_line(w, "        NN_FULL_UNROLL for (int p = 0; p < 4; p++) {");
    cw_line(w, "            const long tw = iw0 + p + %d - kw * %d;", c->pl, c->dw);
    cw_line(w, "            if (p >= np || tw < 0 || tw %% %d != 0 || tw / %d >= %lldL)", c->sw, c->sw,
            c->OW);
    cw_line(w, "                continue;");
    cw_line(w, "            const float *restrict dp = dr + tw / %d * %lldL;", c->sw, C);
    cw_line(w, "            a[p][0] += nn_load(dp) * w0;");
    cw_line(w, "            a[p][1] += nn_load(dp + NN_VW) * w1;");
    cw_line(w, "        }");
    cw_line(w, "    }");
    cw_line(w, "}");
    cw_line(w, "for (int p = 0; p < np; p++) {");
    cw_line(w, "    nn_store(dl + (iw0 + p) * %lldL + c0, a[p][0]);", C);
    cw_line(w, "    nn_store(dl + (iw0 + p) * %lldL + c0 + NN_VW, a[p][1]);", C);
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    /* The channels from FV on, one pixel at a time. */
    cw_line(w, "if (FV < %lldL)", C);
    cw_line(w, "for (long iw = 0; iw < %lldL; iw++) {", c->W);
    w->indent++;
    cw_line(w, "float acc[%lldL];", C);
    cw_line(w, "memset(acc, 0, sizeof acc);");
    cw_line(w, "for (long kh = 0; kh < %lldL; kh++) {", c->KH);
    cw_line(w, "    const long th = ih + %d - kh * %d;", c->pt, c->dh);
    cw_line(w, "    if (th < 0 || th %% %d != 0 || th / %d >= %lldL)", c->sh, c->sh, c->OH);
    cw_line(w, "        continue;");
    cw_line(w, "    for (long kw = 0; kw < %lldL; kw++) {", c->KW);
    cw_line(w, "        const long tw = iw + %d - kw * %d;", c->pl, c->dw);
    cw_line(w, "        if (tw < 0 || tw %% %d != 0 || tw / %d >= %lldL)", c->sw, c->sw, c->OW);
    cw_line(w, "            continue;");
    cw_line(w, "        const float *restrict dp = dy + ((b * %lldL + th / %d) * %lldL + tw / %d) * "
            "%lldL;", c->OH, c->sh, c->OW, c->sw, C);
    cw_line(w, "        const float *restrict wt = w + (kh * %lldL + kw) * %lldL;", c->KW, C);
    cw_line(w, "        for (long f = FV; f < %lldL; f++)", C);
    cw_line(w, "            acc[f] += dp[f] * wt[f];");
    cw_line(w, "    }");
    cw_line(w, "}");
    cw_line(w, "for (long f = FV; f < %lldL; f++)", C);
    cw_line(w, "    dl[iw * %lldL + f] = acc[f];", C);
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    char at[64], yat[64], count[64];
    snprintf(at, sizeof at, "(dx + l0 * %lldL)", WC);
    snprintf(yat, sizeof yat, "(yv + l0 * %lldL)", WC);
    snprintf(count, sizeof count, "nl * %lldL", WC);
    cg_epilogue_dact(w, cg_epilogue(cg, n), at, yat, count);
    cg_parallel_or_serial(out, work, "for (long blk = 0; blk < nb; blk++) {", &body);
    cw_free(&body);
    cg_gemm_close(cg, n, 0);
}

/* The input gradient (and ConvTranspose): per image (in parallel), dxb
 * zeroed then every output pixel's taps add into it; the fused dact
 * epilogue then runs on the image. */
void emit_conv2d_grad_input_grouped(struct cg *cg, const struct ir_node *n)
{
    struct gconv c = gconv_dims(n, n->out, n->in[0], n->in[1]);
    const struct ir_tile *t = cg_tile(cg, n);
    bool dwise = c.Cg == 1;
    if (dwise && c.Fg == 1) {
        gcomment(cg, n, n->op == IR_CONV2D_TRANSPOSE ? "depthwise transposed convolution"
                                                     : "depthwise input gradient", &c);
        emit_dw_grad_input_gather(cg, n, &c);
        return;
    }
    long long pix = c.OH * c.OW, tr = t->tile_rows, pg = cg_packed_floats(c.Fg, c.Kg);
    long long packed = dwise ? 0 : pg * c.G;
    struct cw *w = &cg->defs;
    gcomment(cg, n, n->op == IR_CONV2D_TRANSPOSE ? "transposed convolution"
                                                 : "input gradient",
             &c);
    cg_gemm_open(cg, n, "dy", "w", "dx", packed);
    if (!dwise) {
        /* group g's wᵀ(f, k) = w[k·F + g·Fg + f] */
        cw_line(w, "for (long g = 0; g < %lldL; g++)", c.G);
        cw_line(w, "    nn_pack_b_all(%lldL, %lldL, w + g * %lldL, 1, %lldL, wp + g * %lldL);", c.Fg,
                c.Kg, c.Fg, c.F, pg);
    }
    char work[128];
    snprintf(work, sizeof work, "n > 1 && (long)n * %lldL > %lldL", pix * c.Kg * c.F,
             (long long)t->min_work);
    cg_parallel_if(w, work);
    cw_line(w, "for (long b = 0; b < n; b++) {");
    w->indent++;
    cw_line(w, "float *restrict dxb = dx + b * %lldL;", c.H * c.W * c.C);
    cw_line(w, "memset(dxb, 0, sizeof(float) * %lldL);", c.H * c.W * c.C);
    if (dwise) {
        cw_line(w, "for (long p = 0; p < %lldL; p++) {", pix);
        w->indent++;
        cw_line(w, "const long oh = p / %lldL, ow = p %% %lldL;", c.OW, c.OW);
        cw_line(w, "const float *restrict dp = dy + (b * %lldL + p) * %lldL;", pix, c.F);
        cw_line(w, "for (long kh = 0; kh < %lldL; kh++) {", c.KH);
        cw_line(w, "    const long ih = oh * %d - %d + kh * %d;", c.sh, c.pt, c.dh);
        cw_line(w, "    if (ih < 0 || ih >= %lldL)", c.H);
        cw_line(w, "        continue;");
        cw_line(w, "    for (long kw = 0; kw < %lldL; kw++) {", c.KW);
        cw_line(w, "        const long iw = ow * %d - %d + kw * %d;", c.sw, c.pl, c.dw);
        cw_line(w, "        if (iw < 0 || iw >= %lldL)", c.W);
        cw_line(w, "            continue;");
        cw_line(w, "        float *restrict d = dxb + (ih * %lldL + iw) * %lldL;", c.W, c.C);
        cw_line(w, "        const float *restrict wt = w + (kh * %lldL + kw) * %lldL;", c.KW, c.F);
        w->indent += 2;
        cg_simd(w);
        w->indent -= 2;
        if (c.Fg == 1) {
            cw_line(w, "        for (long ch = 0; ch < %lldL; ch++)", c.C);
            cw_line(w, "            d[ch] += dp[ch] * wt[ch];");
        } else {
            cw_line(w, "        for (long ch = 0; ch < %lldL; ch++) {", c.C);
            cw_line(w, "            float s = 0.0f;");
            cw_line(w, "            for (long j = 0; j < %lldL; j++)", c.Fg);
            cw_line(w, "                s += dp[ch * %lldL + j] * wt[ch * %lldL + j];", c.Fg, c.Fg);
            cw_line(w, "            d[ch] += s;");
            cw_line(w, "        }");
        }
        cw_line(w, "    }");
        cw_line(w, "}");
        w->indent--;
        cw_line(w, "}");
    } else {
        cw_line(w, "float dcol[%lldL];", tr * c.Kg);
        cw_line(w, "for (long p0 = 0; p0 < %lldL; p0 += %lldL) {", pix, tr);
        w->indent++;
        cw_line(w, "const long m = nn_min(%lldL, %lldL - p0);", tr, pix);
        cw_line(w, "for (long g = 0; g < %lldL; g++) {", c.G);
        w->indent++;
        cw_line(w, "nn_gemm_packed(m, %lldL, %lldL, dy + (b * %lldL + p0) * %lldL + g * %lldL, %lldL, "
                "1, wp + g * %lldL, dcol, %lldL, 0);", c.Kg, c.Fg, pix, c.F, c.Fg, c.F, pg, c.Kg);
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
        cw_line(w, "        float *restrict d = dxb + (ih * %lldL + iw) * %lldL + g * %lldL;", c.W,
                c.C, c.Cg);
        cw_line(w, "        const float *restrict s = dcol + r * %lldL + (kh * %lldL + kw) * %lldL;",
                c.Kg, c.KW, c.Cg);
        w->indent += 2;
        cg_simd(w);
        w->indent -= 2;
        cw_line(w, "        for (long ch = 0; ch < %lldL; ch++)", c.Cg);
        cw_line(w, "            d[ch] += s[ch];");
        cw_line(w, "    }");
        cw_line(w, "}");
        w->indent--;
        cw_line(w, "}");
        w->indent--;
        cw_line(w, "}");
        w->indent--;
        cw_line(w, "}");
    }
    char yat[64], count[32];
    snprintf(yat, sizeof yat, "(yv + b * %lldL)", c.H * c.W * c.C);
    snprintf(count, sizeof count, "%lldL", c.H * c.W * c.C);
    cg_epilogue_dact(w, cg_epilogue(cg, n), "dxb", yat, count);
    w->indent--;
    cw_line(w, "}");
    cg_gemm_close(cg, n, packed);
}

/* The filter gradient dw (KH, KW, C/G, F): eight fixed runs of rows, each
 * summed into its own partial (in parallel), then the partials added in
 * order.  Depthwise: dw[t, f] += x(tap t, channel f/k) · dy[f] directly;
 * general: per row tile and group, the group's columns and one GEMM into
 * the partial's columns of that group. */
void emit_conv2d_grad_filter_grouped(struct cg *cg, const struct ir_node *n)
{
    struct gconv c = gconv_dims(n, n->in[0], n->in[1], n->out);
    const struct ir_tile *t = cg_tile(cg, n);
    long long tr = t->tile_rows, KF = c.Kg * c.F, stride = (KF + 15) / 16 * 16;
    struct cw *w = &cg->defs;
    gcomment(cg, n, "filter gradient", &c);
    cg_gemm_open(cg, n, "x", "dy", "dw", 8 * stride);
    cw_line(w, "const long rows = (long)n * %lldL;", c.OH * c.OW);
    char work[128];
    snprintf(work, sizeof work, "rows * %lldL > %lldL", KF, (long long)t->min_work);
    cg_parallel_if(w, work);
    cw_line(w, "for (int q = 0; q < 8; q++) {");
    w->indent++;
    cw_line(w, "float *restrict pw = wp + q * %lldL;", stride);
    cw_line(w, "const long ra = rows * q / 8, rz = rows * (q + 1) / 8;");
    cw_line(w, "memset(pw, 0, sizeof(float) * %lldL);", KF);
    if (c.Cg == 1) {
        char src[64];
        cw_line(w, "for (long q_ = ra; q_ < rz; q_++) {");
        w->indent++;
        cw_line(w, "const long b = q_ / %lldL, pix = q_ %% %lldL;", c.OH * c.OW, c.OH * c.OW);
        cw_line(w, "const long oh = pix / %lldL, ow = pix %% %lldL;", c.OW, c.OW);
        cw_line(w, "const float *restrict dp = dy + q_ * %lldL;", c.F);
        cw_line(w, "for (long kh = 0; kh < %lldL; kh++) {", c.KH);
        cw_line(w, "    const long ih = oh * %d - %d + kh * %d;", c.sh, c.pt, c.dh);
        cw_line(w, "    if (ih < 0 || ih >= %lldL)", c.H);
        cw_line(w, "        continue;");
        cw_line(w, "    for (long kw = 0; kw < %lldL; kw++) {", c.KW);
        cw_line(w, "        const long iw = ow * %d - %d + kw * %d;", c.sw, c.pl, c.dw);
        cw_line(w, "        if (iw < 0 || iw >= %lldL)", c.W);
        cw_line(w, "            continue;");
        cw_line(w, "        const float *restrict xp = x + ((b * %lldL + ih) * %lldL + iw) * %lldL;",
                c.H, c.W, c.C);
        cw_line(w, "        float *restrict pt = pw + (kh * %lldL + kw) * %lldL;", c.KW, c.F);
        w->indent += 2;
        cg_simd(w);
        w->indent -= 2;
        cw_line(w, "        for (long f = 0; f < %lldL; f++)", c.F);
        cw_line(w, "            pt[f] += %s * dp[f];", dw_src(&c, src, sizeof src));
        cw_line(w, "    }");
        cw_line(w, "}");
        w->indent--;
        cw_line(w, "}");
    } else {
        cw_line(w, "float col[%lldL];", tr * c.Kg);
        cw_line(w, "for (long r0 = ra; r0 < rz; r0 += %lldL) {", tr);
        w->indent++;
        cw_line(w, "const long m = nn_min(%lldL, rz - r0);", tr);
        cw_line(w, "for (long g = 0; g < %lldL; g++) {", c.G);
        w->indent++;
        emit_group_im2col(w, &c);
        /* colᵀ(k, r) = col[r·Kg + k] */
        cw_line(w, "nn_gemm(%lldL, %lldL, m, col, 1, %lldL, dy + r0 * %lldL + g * %lldL, %lldL, 1, "
                "pw + g * %lldL, %lldL, 1);", c.Kg, c.Fg, c.Kg, c.F, c.Fg, c.F, c.Fg, c.F);
        w->indent--;
        cw_line(w, "}");
        w->indent--;
        cw_line(w, "}");
    }
    w->indent--;
    cw_line(w, "}");
    cg_sum_eight(w, KF, "wp", stride, "dw");
    cg_gemm_close(cg, n, 8 * stride);
}
