/*
 * conv.c — Conv2D, NHWC, as a direct cross-correlation.
 *
 * For each output pixel the F output channels are accumulated in the
 * innermost loop over the kernel's contiguous filter axis (kernel layout
 * (KH, KW, C, F)); taps that fall into the padding are skipped, which is
 * the same as reading zeros.  Images × output rows are spread over threads.
 * (Implicit GEMM with packed weights comes with passes/tile.c.)
 */
#include "codegen.h"

void emit_conv2d(struct cg *cg, const struct ir_node *n)
{
    const struct ir_attrs *a = &n->a;
    const int64_t *xd = n->in[0]->shape.dim, *yd = n->out->shape.dim, *wd = n->in[1]->shape.dim;
    long long H = xd[1], W = xd[2], C = xd[3], OH = yd[1], OW = yd[2], F = yd[3];
    long long KH = wd[0], KW = wd[1];
    struct cw *w = &cg->defs;
    char what[300], xs[100];
    snprintf(what, sizeof what, "x %s * w (%lld, %lld, %lld, %lld), stride %dx%d, dilation %dx%d, "
             "pad t%d b%d l%d r%d", cg_shape(n->in[0]->shape, xs, sizeof xs), KH, KW, C, F,
             a->stride[0], a->stride[1], a->dilation[0], a->dilation[1], a->pad[0], a->pad[1],
             a->pad[2], a->pad[3]);
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict x, const float *restrict w,", cg->prefix, cg_id(cg, n));
    cw_line(w, "               float *restrict y)");
    cw_line(w, "{");
    w->indent++;
    char work[96];
    snprintf(work, sizeof work, "(long)n * %lldL", OH * OW * F * KH * KW * C);
    cg_parallel(w, work);
    cw_line(w, "for (long bo = 0; bo < (long)n * %lldL; bo++) {", OH);
    w->indent++;
    cw_line(w, "const long b = bo / %lldL, oh = bo %% %lldL;", OH, OH);
    cw_line(w, "for (long ow = 0; ow < %lldL; ow++) {", OW);
    w->indent++;
    cw_line(w, "float *restrict yp = y + ((b * %lldL + oh) * %lldL + ow) * %lldL;", OH, OW, F);
    cw_line(w, "for (long f = 0; f < %lldL; f++)", F);
    cw_line(w, "    yp[f] = 0.0f;");
    cw_line(w, "for (long kh = 0; kh < %lldL; kh++) {", KH);
    w->indent++;
    cw_line(w, "const long ih = oh * %d - %d + kh * %d;", a->stride[0], a->pad[0], a->dilation[0]);
    cw_line(w, "if (ih < 0 || ih >= %lldL)", H);
    cw_line(w, "    continue;");
    cw_line(w, "for (long kw = 0; kw < %lldL; kw++) {", KW);
    w->indent++;
    cw_line(w, "const long iw = ow * %d - %d + kw * %d;", a->stride[1], a->pad[2], a->dilation[1]);
    cw_line(w, "if (iw < 0 || iw >= %lldL)", W);
    cw_line(w, "    continue;");
    cw_line(w, "const float *restrict xp = x + ((b * %lldL + ih) * %lldL + iw) * %lldL;", H, W, C);
    cw_line(w, "const float *restrict wp = w + (kh * %lldL + kw) * %lldL;", KW, C * F);
    cw_line(w, "for (long c = 0; c < %lldL; c++) {", C);
    cw_line(w, "    const float v = xp[c];");
    cw_line(w, "    for (long f = 0; f < %lldL; f++)", F);
    cw_line(w, "        yp[f] += v * wp[c * %lldL + f];", F);
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    cw_line(&cg->body, "%sk%d(n, %s, %s, %s);", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]), cg_buf(cg, n->in[1]),
            cg_buf(cg, n->out));
}

/* dx = the transposed convolution of dy with w: every output pixel's taps
 * scatter Σ_f dy·w back to the input cells they read.  The kernel is first
 * transposed to (KH, KW, F, C) so the innermost loop runs over contiguous
 * input channels (a vectorisable axpy rather than a reduction).  Images are
 * independent, so they are spread over threads. */
void emit_conv2d_grad_input(struct cg *cg, const struct ir_node *n)
{
    const struct ir_attrs *a = &n->a;
    const int64_t *xd = n->out->shape.dim, *yd = n->in[0]->shape.dim, *wd = n->in[1]->shape.dim;
    long long H = xd[1], W = xd[2], C = xd[3], OH = yd[1], OW = yd[2], F = yd[3];
    long long KH = wd[0], KW = wd[1];
    struct cw *w = &cg->defs;
    char what[200], s[100];
    snprintf(what, sizeof what, "input gradient of a %lldx%lld convolution, dy %s", KH, KW,
             cg_shape(n->in[0]->shape, s, sizeof s));
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict dy, const float *restrict w,",
            cg->prefix, cg_id(cg, n));
    cw_line(w, "               float *restrict dx, float *restrict wt)");
    cw_line(w, "{");
    w->indent++;
    cw_line(w, "/* wt: the kernel as (KH, KW, F, C), in scratch space */");
    cw_line(w, "for (long t = 0; t < %lldL; t++)", KH * KW);
    cw_line(w, "    for (long c = 0; c < %lldL; c++)", C);
    cw_line(w, "        for (long f = 0; f < %lldL; f++)", F);
    cw_line(w, "            wt[(t * %lldL + f) * %lldL + c] = w[(t * %lldL + c) * %lldL + f];", F, C, C, F);
    char work[64];
    snprintf(work, sizeof work, "(long)n * %lldL", OH * OW * F * KH * KW * C);
    cg_parallel(w, work);
    cw_line(w, "for (long b = 0; b < n; b++) {");
    w->indent++;
    cw_line(w, "float *restrict dxb = dx + b * %lldL;", H * W * C);
    cw_line(w, "for (long i = 0; i < %lldL; i++)", H * W * C);
    cw_line(w, "    dxb[i] = 0.0f;");
    cw_line(w, "for (long oh = 0; oh < %lldL; oh++)", OH);
    cw_line(w, "for (long ow = 0; ow < %lldL; ow++) {", OW);
    w->indent++;
    cw_line(w, "const float *restrict g = dy + ((b * %lldL + oh) * %lldL + ow) * %lldL;", OH, OW, F);
    cw_line(w, "for (long kh = 0; kh < %lldL; kh++) {", KH);
    cw_line(w, "    const long ih = oh * %d - %d + kh * %d;", a->stride[0], a->pad[0], a->dilation[0]);
    cw_line(w, "    if (ih < 0 || ih >= %lldL)", H);
    cw_line(w, "        continue;");
    cw_line(w, "    for (long kw = 0; kw < %lldL; kw++) {", KW);
    cw_line(w, "        const long iw = ow * %d - %d + kw * %d;", a->stride[1], a->pad[2],
            a->dilation[1]);
    cw_line(w, "        if (iw < 0 || iw >= %lldL)", W);
    cw_line(w, "            continue;");
    cw_line(w, "        float *restrict xp = dxb + (ih * %lldL + iw) * %lldL;", W, C);
    cw_line(w, "        const float *restrict wp = wt + (kh * %lldL + kw) * %lldL;", KW, C * F);
    cw_line(w, "        for (long f = 0; f < %lldL; f++) {", F);
    cw_line(w, "            const float gf = g[f];");
    cw_line(w, "            for (long c = 0; c < %lldL; c++)", C);
    cw_line(w, "                xp[c] += gf * wp[f * %lldL + c];", C);
    cw_line(w, "        }");
    cw_line(w, "    }");
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    cw_line(&cg->body, "%sk%d(n, %s, %s, %s, %s);", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]),
            cg_buf(cg, n->in[1]), cg_buf(cg, n->out), cg_scratch(cg, KH * KW * C * F));
}

/* dw[kh, kw, c, f] = Σ_{b, oh, ow} x · dy: threads own disjoint kernel
 * taps (kh, kw), so they never write the same weights. */
void emit_conv2d_grad_filter(struct cg *cg, const struct ir_node *n)
{
    const struct ir_attrs *a = &n->a;
    const int64_t *xd = n->in[0]->shape.dim, *yd = n->in[1]->shape.dim, *wd = n->out->shape.dim;
    long long H = xd[1], W = xd[2], C = xd[3], OH = yd[1], OW = yd[2], F = yd[3];
    long long KH = wd[0], KW = wd[1];
    struct cw *w = &cg->defs;
    char what[200], s[100];
    snprintf(what, sizeof what, "filter gradient of a %lldx%lld convolution, x %s", KH, KW,
             cg_shape(n->in[0]->shape, s, sizeof s));
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict x, const float *restrict dy,",
            cg->prefix, cg_id(cg, n));
    cw_line(w, "               float *restrict dw)");
    cw_line(w, "{");
    w->indent++;
    char work[64];
    snprintf(work, sizeof work, "(long)n * %lldL", OH * OW * F * KH * KW * C);
    cg_parallel(w, work);
    cw_line(w, "for (long t = 0; t < %lldL; t++) {", KH * KW);
    w->indent++;
    cw_line(w, "const long kh = t / %lldL, kw = t %% %lldL;", KW, KW);
    cw_line(w, "float *restrict wp = dw + t * %lldL;", C * F);
    cw_line(w, "for (long i = 0; i < %lldL; i++)", C * F);
    cw_line(w, "    wp[i] = 0.0f;");
    cw_line(w, "for (long b = 0; b < n; b++)");
    cw_line(w, "for (long oh = 0; oh < %lldL; oh++) {", OH);
    cw_line(w, "    const long ih = oh * %d - %d + kh * %d;", a->stride[0], a->pad[0], a->dilation[0]);
    cw_line(w, "    if (ih < 0 || ih >= %lldL)", H);
    cw_line(w, "        continue;");
    cw_line(w, "    for (long ow = 0; ow < %lldL; ow++) {", OW);
    cw_line(w, "        const long iw = ow * %d - %d + kw * %d;", a->stride[1], a->pad[2],
            a->dilation[1]);
    cw_line(w, "        if (iw < 0 || iw >= %lldL)", W);
    cw_line(w, "            continue;");
    cw_line(w, "        const float *restrict xp = x + ((b * %lldL + ih) * %lldL + iw) * %lldL;", H,
            W, C);
    cw_line(w, "        const float *restrict g = dy + ((b * %lldL + oh) * %lldL + ow) * %lldL;", OH,
            OW, F);
    cw_line(w, "        for (long c = 0; c < %lldL; c++) {", C);
    cw_line(w, "            const float v = xp[c];");
    cw_line(w, "            for (long f = 0; f < %lldL; f++)", F);
    cw_line(w, "                wp[c * %lldL + f] += v * g[f];", F);
    cw_line(w, "        }");
    cw_line(w, "    }");
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    cw_line(&cg->body, "%sk%d(n, %s, %s, %s);", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]),
            cg_buf(cg, n->in[1]), cg_buf(cg, n->out));
}
