/*
 * pool.c — MaxPooling2D, AveragePooling2D and GlobalAveragePooling2D, NHWC.
 *
 * Windows skip cells that fall into the padding: for max pooling they act
 * as −∞, for average pooling they are left out of the divisor (TF's SAME
 * average), so the divisor is counted per window.
 */
#include "codegen.h"

void emit_pool2d(struct cg *cg, const struct ir_node *n)
{
    const struct ir_attrs *a = &n->a;
    const int64_t *xd = n->in[0]->shape.dim, *yd = n->out->shape.dim;
    long long H = xd[1], W = xd[2], C = xd[3], OH = yd[1], OW = yd[2];
    bool max = n->op == IR_MAXPOOL2D;
    struct cw *w = &cg->defs;
    char what[300], xs[100];
    snprintf(what, sizeof what, "x %s, %s window %dx%d, stride %dx%d, pad t%d b%d l%d r%d",
             cg_shape(n->in[0]->shape, xs, sizeof xs), max ? "max" : "average", a->kernel[0],
             a->kernel[1], a->stride[0], a->stride[1], a->pad[0], a->pad[1], a->pad[2], a->pad[3]);
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void k%d(int n, const float *restrict x, float *restrict y)", n->id);
    cw_line(w, "{");
    w->indent++;
    char work[64];
    snprintf(work, sizeof work, "(long)n * %lldL", OH * OW * C * a->kernel[0] * a->kernel[1]);
    cg_parallel(w, work);
    cw_line(w, "for (long bo = 0; bo < (long)n * %lldL; bo++) {", OH);
    w->indent++;
    cw_line(w, "const long b = bo / %lldL, oh = bo %% %lldL;", OH, OH);
    cw_line(w, "for (long ow = 0; ow < %lldL; ow++) {", OW);
    w->indent++;
    cw_line(w, "float *restrict yp = y + ((b * %lldL + oh) * %lldL + ow) * %lldL;", OH, OW, C);
    cw_line(w, "const long h0 = oh * %d - %d, w0 = ow * %d - %d;", a->stride[0], a->pad[0],
            a->stride[1], a->pad[2]);
    cw_line(w, "const long h1 = h0 + %d < %lldL ? h0 + %d : %lldL;", a->kernel[0], H, a->kernel[0], H);
    cw_line(w, "const long w1 = w0 + %d < %lldL ? w0 + %d : %lldL;", a->kernel[1], W, a->kernel[1], W);
    cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
    cw_line(w, "    yp[c] = %s;", max ? "-INFINITY" : "0.0f");
    cw_line(w, "for (long ih = h0 < 0 ? 0 : h0; ih < h1; ih++)");
    cw_line(w, "    for (long iw = w0 < 0 ? 0 : w0; iw < w1; iw++) {");
    cw_line(w, "        const float *restrict xp = x + ((b * %lldL + ih) * %lldL + iw) * %lldL;", H, W,
            C);
    cw_line(w, "        for (long c = 0; c < %lldL; c++)", C);
    if (max)
        cw_line(w, "            yp[c] = xp[c] > yp[c] ? xp[c] : yp[c];");
    else
        cw_line(w, "            yp[c] += xp[c];");
    cw_line(w, "    }");
    if (!max) {
        cw_line(w, "const float inv = 1.0f / (float)((h1 - (h0 < 0 ? 0 : h0)) * (w1 - (w0 < 0 ? 0 : w0)));");
        cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
        cw_line(w, "    yp[c] *= inv;");
    }
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    cw_line(&cg->body, "k%d(n, %s, %s);", n->id, cg_buf(cg, n->in[0]), cg_buf(cg, n->out));
}

void emit_global_pool2d(struct cg *cg, const struct ir_node *n)
{
    const int64_t *xd = n->in[0]->shape.dim;
    long long HW = xd[1] * xd[2], C = xd[3];
    struct cw *w = &cg->defs;
    char what[200], xs[100];
    snprintf(what, sizeof what, "mean of x %s over height and width",
             cg_shape(n->in[0]->shape, xs, sizeof xs));
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void k%d(int n, const float *restrict x, float *restrict y)", n->id);
    cw_line(w, "{");
    w->indent++;
    cw_line(w, "for (long b = 0; b < n; b++) {");
    cw_line(w, "    float *restrict yb = y + b * %lldL;", C);
    cw_line(w, "    for (long c = 0; c < %lldL; c++)", C);
    cw_line(w, "        yb[c] = 0.0f;");
    cw_line(w, "    for (long i = 0; i < %lldL; i++)", HW);
    cw_line(w, "        for (long c = 0; c < %lldL; c++)", C);
    cw_line(w, "            yb[c] += x[(b * %lldL + i) * %lldL + c];", HW, C);
    cw_line(w, "    for (long c = 0; c < %lldL; c++)", C);
    cw_line(w, "        yb[c] /= %lld.0f;", HW);
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    cw_line(&cg->body, "k%d(n, %s, %s);", n->id, cg_buf(cg, n->in[0]), cg_buf(cg, n->out));
}
