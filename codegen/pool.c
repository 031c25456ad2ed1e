/*
 * pool.c — MaxPooling2D, AveragePooling2D and GlobalAveragePooling2D, NHWC.
 *
 * Windows skip cells that fall into the padding: for max pooling they act
 * as −∞, for average pooling they are left out of the divisor (TF's SAME
 * average), so the divisor is counted per window; ONNX's count_include_pad
 * counts the window's cells inside the padded input instead.  ONNX's
 * dilated windows and count_include_pad are emitted over the window's taps;
 * explicit asymmetric pads and ceil_mode need nothing here (the output
 * size comes from the shape rule, the windows are clipped to the image).
 * Training keeps each max window's winning cell (pool_argmax), so the
 * gradient reads one float per window instead of searching the window in x
 * again.  Global pooling takes the mean, or the maximum with pool_max.
 */
#include <ctype.h>
#include <string.h>
#include "codegen/codegen.h"

void cg_max_cell(struct cw *w, long long C, const char *src, bool argmax)
{
    cg_simd(w);
    cw_line(w, "for (long c_ = 0; c_ < %lldL; c_++) {", C);
    /* Loads first: a conditional load becomes a masked one (3x slower). */
    cw_line(w, "    const float xv = %s[c_], yo = yp[c_];", src);
    cw_line(w, "    const int win = xv > yo;");
    if (argmax) {
        cw_line(w, "    const float ao = ap[c_];");
        cw_line(w, "    ap[c_] = win ? k : ao;");
    }
    cw_line(w, "    yp[c_] = win ? xv : yo;");
    cw_line(w, "}");
}

/* ONNX's dilated windows and count_include_pad go through the windows'
 * taps (kh, kw), tap kh at row h0 + kh·dilation; Keras' windows (dilation
 * 1, real cells counted) keep the plain loops over the cells they cover. */
static bool pool_taps(const struct ir_node *n)
{
    const struct ir_attrs *a = &n->a;
    return a->dilation[0] > 1 || a->dilation[1] > 1 ||
           (a->count_include_pad && !a->pool_max && n->op != IR_MAXPOOL2D &&
            n->op != IR_POOL_ARGMAX);
}

/* Output pixel (oh, ow)'s window in tap form: h0, w0, the taps inside the
 * image khs ≤ kh < khe, kws ≤ kw < kwe, and cnt, the divisor of an average
 * (with count_include_pad the taps inside the padded image). */
static void emit_window_taps(struct cw *w, const struct ir_attrs *a, long long H, long long W)
{
    int dh = a->dilation[0], dw = a->dilation[1], KH = a->kernel[0], KW = a->kernel[1];
    cw_line(w, "const long h0 = oh * %d - %d, w0 = ow * %d - %d;", a->stride[0], a->pad[0],
            a->stride[1], a->pad[2]);
    cw_line(w, "const long khs = h0 < 0 ? (%d - h0) / %d : 0, kws = w0 < 0 ? (%d - w0) / %d : 0;",
            dh - 1, dh, dw - 1, dw);
    cw_line(w, "const long khl = (%lldL - h0 + %d) / %d, kwl = (%lldL - w0 + %d) / %d;", H, dh - 1,
            dh, W, dw - 1, dw);
    cw_line(w, "const long khe = khl < %d ? khl : %d, kwe = kwl < %d ? kwl : %d;", KH, KH, KW, KW);
    if (a->count_include_pad) {
        cw_line(w, "const long khp = (%lldL - h0 + %d) / %d, kwp = (%lldL - w0 + %d) / %d;",
                H + a->pad[1], dh - 1, dh, W + a->pad[3], dw - 1, dw);
        cw_line(w, "const float cnt = (float)((khp < %d ? khp : %d) * (kwp < %d ? kwp : %d));", KH,
                KH, KW, KW);
    } else {
        cw_line(w, "const float cnt = (float)((khe - khs) * (kwe - kws));");
    }
    cw_line(w, "(void)cnt;");
}

/* The forward over the taps (emit_window_taps in scope): max with first
 * maximum in tap order, or the sum divided by cnt. */
static void emit_pool_fwd_taps(struct cw *w, const struct ir_attrs *a, long long H, long long W,
                               long long C, bool max, bool argmax)
{
    cg_simd(w);
    cw_line(w, "for (long c = 0; c < %lldL; c++) {", C);
    cw_line(w, "    yp[c] = %s;", max ? "-INFINITY" : "0.0f");
    if (argmax)
        cw_line(w, "    ap[c] = first;");
    cw_line(w, "}");
    cw_line(w, "for (long kh = khs; kh < khe; kh++)");
    cw_line(w, "    for (long kw = kws; kw < kwe; kw++) {");
    cw_line(w, "        const float *restrict xp = x + ((b * %lldL + h0 + kh * %d) * %lldL + w0 + "
            "kw * %d) * %lldL;", H, a->dilation[0], W, a->dilation[1], C);
    if (argmax)
        cw_line(w, "        const float k = (float)(kh * %dL + kw);", a->kernel[1]);
    w->indent += 2;
    if (max) {
        cg_max_cell(w, C, "xp", argmax);
    } else {
        cg_simd(w);
        cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
        cw_line(w, "    yp[c] += xp[c];");
    }
    w->indent -= 2;
    cw_line(w, "    }");
    if (!max) {
        cw_line(w, "const float inv = 1.0f / cnt;");
        cg_simd(w);
        cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
        cw_line(w, "    yp[c] *= inv;");
    }
}

/* The pooling forward: y (want_y) and, for max pooling, the winning
 * cell of each window into `am` (pool_argmax's value: its index in the
 * window, first maximum in window order, as a float). */
static void emit_pool_fwd(struct cg *cg, const struct ir_node *n, bool want_y, bool argmax)
{
    const struct ir_attrs *a = &n->a;
    const int64_t *xd = n->in[0]->shape.dim, *yd = n->out->shape.dim;
    long long H = xd[1], W = xd[2], C = xd[3], OH = yd[1], OW = yd[2];
    bool max = n->op != IR_AVGPOOL2D, taps = pool_taps(n);
    struct cw *w = &cg->defs;
    char what[300], xs[100];
    char opts[64] = "";
    if (taps) /* ONNX's options */
        snprintf(opts, sizeof opts, ", dilation %dx%d%s", a->dilation[0], a->dilation[1],
                 a->count_include_pad && !max ? ", pads counted" : "");
    snprintf(what, sizeof what, "x %s, %s window %dx%d, stride %dx%d, pad t%d b%d l%d r%d%s%s",
             cg_shape(n->in[0]->shape, xs, sizeof xs), max ? "max" : "average", a->kernel[0],
             a->kernel[1], a->stride[0], a->stride[1], a->pad[0], a->pad[1], a->pad[2], a->pad[3],
             opts, argmax ? want_y ? ", and which cell won" : ", which cell wins" : "");
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict x%s%s)", cg->prefix, cg_id(cg, n),
            want_y ? ", float *restrict y" : "", argmax ? ", float *restrict am" : "");
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
    cw_line(w, "const long o = ((b * %lldL + oh) * %lldL + ow) * %lldL;", OH, OW, C);
    if (want_y)
        cw_line(w, "float *restrict yp = y + o;");
    else
        cw_line(w, "float yp[%lld];", C);
    if (taps) {
        emit_window_taps(w, a, H, W);
        if (argmax) {
            cw_line(w, "float *restrict ap = am + o;");
            cw_line(w, "const float first = (float)(khs * %dL + kws);", a->kernel[1]);
        }
        emit_pool_fwd_taps(w, a, H, W, C, max, argmax);
        goto close; /* the loops' closing braces are shared */
    }
    cw_line(w, "const long h0 = oh * %d - %d, w0 = ow * %d - %d;", a->stride[0], a->pad[0],
            a->stride[1], a->pad[2]);
    cw_line(w, "const long hs = h0 < 0 ? 0 : h0, ws = w0 < 0 ? 0 : w0;");
    cw_line(w, "const long h1 = h0 + %d < %lldL ? h0 + %d : %lldL;", a->kernel[0], H, a->kernel[0], H);
    cw_line(w, "const long w1 = w0 + %d < %lldL ? w0 + %d : %lldL;", a->kernel[1], W, a->kernel[1], W);
    if (argmax) {
        cw_line(w, "float *restrict ap = am + o;");
        cw_line(w, "const float first = (float)((hs - h0) * %dL + (ws - w0));", a->kernel[1]);
    }
    cg_simd(w);
    cw_line(w, "for (long c = 0; c < %lldL; c++) {", C);
    cw_line(w, "    yp[c] = %s;", max ? "-INFINITY" : "0.0f");
    if (argmax)
        cw_line(w, "    ap[c] = first;");
    cw_line(w, "}");
    cw_line(w, "for (long ih = hs; ih < h1; ih++)");
    cw_line(w, "    for (long iw = ws; iw < w1; iw++) {");
    cw_line(w, "        const float *restrict xp = x + ((b * %lldL + ih) * %lldL + iw) * %lldL;", H, W,
            C);
    if (argmax)
        cw_line(w, "        const float k = (float)((ih - h0) * %dL + (iw - w0));", a->kernel[1]);
    w->indent += 2;
    if (max) {
        cg_max_cell(w, C, "xp", argmax);
    } else {
        cg_simd(w);
        cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
        cw_line(w, "    yp[c] += xp[c];");
    }
    w->indent -= 2;
    cw_line(w, "    }");
    if (!max) {
        cw_line(w, "const float inv = 1.0f / (float)((h1 - hs) * (w1 - ws));");
        cg_simd(w);
        cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
        cw_line(w, "    yp[c] *= inv;");
    }
close:
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    cw_raw(&cg->body, "    %sk%d(n, %s", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]));
    if (want_y)
        cw_raw(&cg->body, ", %s", cg_buf(cg, n->out));
    if (argmax) {
        const nncc_tensor *am = want_y ? cg_group(cg, n)->pool_keep.argmax : n->out;
        cw_raw(&cg->body, ", %s", cg_buf(cg, am));
    }
    cw_raw(&cg->body, ");\n");
}

/* MAXPOOL2D, AVGPOOL2D; with pool_keep (passes/fuse.c) the max pooling
 * also writes its pool_argmax's value. */
void emit_pool2d(struct cg *cg, const struct ir_node *n)
{
    emit_pool_fwd(cg, n, true, cg_group(cg, n)->kind == IR_GROUP_POOL_KEEP);
}

/* POOL_ARGMAX on its own (not fused into its max pooling). */
void emit_pool_argmax(struct cg *cg, const struct ir_node *n)
{
    emit_pool_fwd(cg, n, false, true);
}

void emit_global_pool2d(struct cg *cg, const struct ir_node *n)
{
    const int64_t *xd = n->in[0]->shape.dim;
    long long HW = xd[1] * xd[2], C = xd[3];
    bool max = n->a.pool_max;
    struct cw *w = &cg->defs;
    char what[200], xs[100];
    snprintf(what, sizeof what, "%s of x %s over height and width", max ? "maximum" : "mean",
             cg_shape(n->in[0]->shape, xs, sizeof xs));
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict x, float *restrict y)", cg->prefix, cg_id(cg, n));
    cw_line(w, "{");
    w->indent++;
    cw_line(w, "for (long b = 0; b < n; b++) {");
    cw_line(w, "    float *restrict yb = y + b * %lldL;", C);
    cw_line(w, "    for (long c = 0; c < %lldL; c++)", C);
    cw_line(w, "        yb[c] = %s;", max ? "-INFINITY" : "0.0f");
    cw_line(w, "    for (long i = 0; i < %lldL; i++)", HW);
    cw_line(w, "        for (long c = 0; c < %lldL; c++)", C);
    if (max) {
        cw_line(w, "        {");
        cw_line(w, "            const float v = x[(b * %lldL + i) * %lldL + c], yo = yb[c];", HW, C);
        cw_line(w, "            yb[c] = v > yo ? v : yo;");
        cw_line(w, "        }");
    } else {
        cw_line(w, "            yb[c] += x[(b * %lldL + i) * %lldL + c];", HW, C);
        cw_line(w, "    for (long c = 0; c < %lldL; c++)", C);
        cw_line(w, "        yb[c] /= %lld.0f;", HW);
    }
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    cw_line(&cg->body, "%sk%d(n, %s, %s);", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]), cg_buf(cg, n->out));
}

/* An activation's derivative with both v and y read from variable `var`
 * (fusion only uses activations whose derivative is exact that way). */
static const char *deriv_in(enum nncc_activation act, const char *var, char *buf, size_t size)
{
    const char *d = ir_activation_deriv(act);
    size_t o = 0, vl = strlen(var);
    for (const char *p = d; *p && o + vl + 2 < size; p++) {
        bool ident = (*p == 'v' || *p == 'y') &&
                     (p == d || !(isalnum((unsigned char)p[-1]) || p[-1] == '_')) &&
                     !(isalnum((unsigned char)p[1]) || p[1] == '_');
        if (ident) {
            memcpy(buf + o, var, vl);
            o += vl;
        } else {
            buf[o++] = *p;
        }
    }
    buf[o] = '\0';
    return buf;
}

/* Pooling gradients, inputs (dy, x, y[, argmax]): max sends dy to the
 * window's cell pool_argmax names (its first maximum, TF's choice); average
 * spreads dy/count over the window's real cells.  Images are independent:
 * spread over threads. */

/* One image's pooling gradient into dxb (H·W·C floats), the fused
 * activation gradient applied; in scope: b, dy, am (max), `y` (the
 * pooling's output) and, with dact, yv. */
void cg_pool_grad_image(struct cw *w, const struct ir_node *n, const struct ir_epilogue *f,
                        const char *y)
{
    bool max = n->a.pool_max; /* in[3]: pool_argmax's value, read as `am` */
    const struct ir_attrs *a = &n->a;
    const int64_t *xd = n->out->shape.dim, *yd = n->in[0]->shape.dim;
    long long H = xd[1], W = xd[2], C = xd[3], OH = yd[1], OW = yd[2];
    /* Unpadded windows with stride = size cover each cell at most once. */
    bool taps = pool_taps(n);
    bool tiles = a->stride[0] == a->kernel[0] && a->stride[1] == a->kernel[1] && a->pad[0] == 0 &&
                 a->pad[2] == 0 && !taps;
    if (!tiles) {
        cw_line(w, "memset(dxb, 0, sizeof(float) * %lldL);", H * W * C);
    } else { /* only the cells past the last window */
        if (OH * a->kernel[0] < H)
            cw_line(w, "memset(dxb + %lldL, 0, sizeof(float) * %lldL);",
                    OH * a->kernel[0] * W * C, (H - OH * a->kernel[0]) * W * C);
        if (OW * a->kernel[1] < W)
            cw_line(w, "for (long ih = 0; ih < %lldL; ih++) memset(dxb + (ih * %lldL + %lldL) * %lldL, 0, sizeof(float) * %lldL);",
                    OH * a->kernel[0], W, OW * a->kernel[1], C, (W - OW * a->kernel[1]) * C);
    }
    cw_line(w, "for (long oh = 0; oh < %lldL; oh++)", OH);
    cw_line(w, "for (long ow = 0; ow < %lldL; ow++) {", OW);
    w->indent++;
    if (taps) { /* dilated windows, count_include_pad: as the forward's taps */
        emit_window_taps(w, a, H, W);
        cw_line(w, "const long o = ((b * %lldL + oh) * %lldL + ow) * %lldL;", OH, OW, C);
        cw_line(w, "for (long kh = khs; kh < khe; kh++)");
        cw_line(w, "    for (long kw = kws; kw < kwe; kw++) {");
        cw_line(w, "        float *restrict dp = dxb + ((h0 + kh * %d) * %lldL + w0 + kw * %d) * %lldL;",
                a->dilation[0], W, a->dilation[1], C);
        if (max)
            cw_line(w, "        const float k = (float)(kh * %dL + kw);", a->kernel[1]);
        cg_simd(w);
        cw_line(w, "        for (long c = 0; c < %lldL; c++)", C);
        if (max)
            cw_line(w, "            dp[c] += am[o + c] == k ? dy[o + c] : 0.0f;");
        else
            cw_line(w, "            dp[c] += dy[o + c] / cnt;");
        cw_line(w, "    }");
        w->indent--;
        cw_line(w, "}");
        char yat[64], count[32];
        snprintf(yat, sizeof yat, "(yv + b * %lldL)", H * W * C);
        snprintf(count, sizeof count, "%lldL", H * W * C);
        cg_epilogue_dact(w, f, "dxb", yat, count);
        (void)y;
        return;
    }
    cw_line(w, "const long h0 = oh * %d - %d, w0 = ow * %d - %d;", a->stride[0], a->pad[0],
            a->stride[1], a->pad[2]);
    cw_line(w, "const long hs = h0 < 0 ? 0 : h0, ws = w0 < 0 ? 0 : w0;");
    cw_line(w, "const long h1 = h0 + %d < %lldL ? h0 + %d : %lldL;", a->kernel[0], H, a->kernel[0], H);
    cw_line(w, "const long w1 = w0 + %d < %lldL ? w0 + %d : %lldL;", a->kernel[1], W, a->kernel[1], W);
    cw_line(w, "const long o = ((b * %lldL + oh) * %lldL + ow) * %lldL;", OH, OW, C);
    if (max && tiles) {
        /* Windows tile the input: every cell they cover is written once.
         * A fused act' of the pooling's input is read at the winning cell,
         * where it equals the window's output. */
        bool at_y = f->has_dact && f->dact_y == n->in[1];
        if (at_y)
            cw_line(w, "(void)yv;");
        cw_line(w, "for (long ih = hs; ih < h1; ih++)");
        cw_line(w, "    for (long iw = ws; iw < w1; iw++) {");
        cw_line(w, "        const long at = (ih * %lldL + iw) * %lldL;", W, C);
        cw_line(w, "        const float k = (float)((ih - h0) * %dL + (iw - w0));", a->kernel[1]);
        cg_simd(w);
        cw_line(w, "        for (long c = 0; c < %lldL; c++) {", C);
        if (f->has_dact) {
            char d[400];
            if (at_y)
                cw_line(w, "            const float yy = %s[o + c];", y);
            else
                cw_line(w, "            const float yy = yv[b * %lldL + at + c];", H * W * C);
            cw_line(w, "            const float g = dy[o + c] * (%s);", deriv_in(f->dact, "yy", d, sizeof d));
        } else {
            cw_line(w, "            const float g = dy[o + c];");
        }
        cw_line(w, "            dxb[at + c] = am[o + c] == k ? g : 0.0f;");
        cw_line(w, "        }");
        cw_line(w, "    }");
    } else if (max) {
        cw_line(w, "for (long ih = hs; ih < h1; ih++)");
        cw_line(w, "    for (long iw = ws; iw < w1; iw++) {");
        cw_line(w, "        float *restrict dp = dxb + (ih * %lldL + iw) * %lldL;", W, C);
        cw_line(w, "        const float k = (float)((ih - h0) * %dL + (iw - w0));", a->kernel[1]);
        cg_simd(w);
        cw_line(w, "        for (long c = 0; c < %lldL; c++) {", C);
        cw_line(w, "            const float g = dy[o + c];");
        cw_line(w, "            dp[c] += am[o + c] == k ? g : 0.0f;");
        cw_line(w, "        }");
        cw_line(w, "    }");
    } else {
        cw_line(w, "const float cnt = (float)((h1 - hs) * (w1 - ws));");
        cw_line(w, "for (long ih = hs; ih < h1; ih++)");
        cw_line(w, "    for (long iw = ws; iw < w1; iw++)");
        cg_simd(w);
        cw_line(w, "        for (long c = 0; c < %lldL; c++)", C);
        /* Tiling windows write each cell they cover once; the rest was zeroed. */
        cw_line(w, "            dxb[(ih * %lldL + iw) * %lldL + c] %s dy[o + c] / cnt;", W, C,
                tiles ? "=" : "+=");
    }
    w->indent--;
    cw_line(w, "}");
    char yat[64], count[32];
    snprintf(yat, sizeof yat, "(yv + b * %lldL)", H * W * C);
    snprintf(count, sizeof count, "%lldL", H * W * C);
    if (!(max && tiles))
        cg_epilogue_dact(w, f, "dxb", yat, count);
    (void)y;
}

void emit_pool2d_grad(struct cg *cg, const struct ir_node *n)
{
    const struct ir_attrs *a = &n->a;
    const int64_t *xd = n->out->shape.dim, *yd = n->in[0]->shape.dim;
    long long H = xd[1], W = xd[2], C = xd[3], OH = yd[1], OW = yd[2];
    if (cg_group(cg, n)->kind == IR_GROUP_POOL_WGRAD) {
        emit_pool_wgrad(cg, n);
        return;
    }
    const struct ir_epilogue *f = cg_epilogue(cg, n);
    struct cw *w = &cg->defs;
    char what[200], s[100];
    snprintf(what, sizeof what, "%s pooling gradient, dy %s", a->pool_max ? "max" : "average",
             cg_shape(n->in[0]->shape, s, sizeof s));
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict dy, const float *restrict x,",
            cg->prefix, cg_id(cg, n));
    cw_raw(w, "               const float *restrict y, float *restrict dx");
    if (a->pool_max)
        cw_raw(w, ", const float *restrict am");
    cg_epilogue_params(w, f);
    cw_raw(w, ")\n");
    cw_line(w, "{");
    w->indent++;
    cw_line(w, "(void)x, (void)y;");
    char work[64];
    snprintf(work, sizeof work, "(long)n * %lldL", OH * OW * C * a->kernel[0] * a->kernel[1]);
    cg_parallel(w, work);
    cw_line(w, "for (long b = 0; b < n; b++) {");
    w->indent++;
    cw_line(w, "float *restrict dxb = dx + b * %lldL;", H * W * C);
    cg_pool_grad_image(w, n, f, "y");
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    cw_raw(&cg->body, "    %sk%d(n, %s, %s, %s, %s", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]),
           cg_buf(cg, n->in[1]), cg_buf(cg, n->in[2]), cg_out(cg, n));
    if (a->pool_max)
        cw_raw(&cg->body, ", %s", cg_buf(cg, n->in[3]));
    cg_epilogue_args(&cg->body, cg, f);
    cw_raw(&cg->body, ");\n");
}

/* dx[b, h, w, c] = dy[b, c] / (H·W); with pool_max dy[b, c] to the first
 * maximal cell of channel c (searched again in x), 0 elsewhere.  Inputs
 * (dy, x). */
void emit_global_pool2d_grad(struct cg *cg, const struct ir_node *n)
{
    const int64_t *xd = n->out->shape.dim;
    long long HW = xd[1] * xd[2], C = xd[3];
    struct cw *w = &cg->defs;
    bool max = n->a.pool_max;
    cg_kernel_comment(cg, n, max ? "global max pooling gradient" : "global average pooling gradient");
    cw_line(w, "static void %sk%d(int n, const float *restrict dy, const float *restrict x, "
            "float *restrict dx)", cg->prefix, cg_id(cg, n));
    cw_line(w, "{");
    cw_line(w, "    (void)x;");
    if (max) {
        cw_line(w, "    for (long b = 0; b < n; b++) {");
        cw_line(w, "        const float *restrict xb = x + b * %lldL;", HW * C);
        cw_line(w, "        float *restrict db = dx + b * %lldL;", HW * C);
        cw_line(w, "        memset(db, 0, sizeof(float) * %lldL);", HW * C);
        cw_line(w, "        for (long c = 0; c < %lldL; c++) {", C);
        cw_line(w, "            long arg = 0;");
        cw_line(w, "            float best = -INFINITY;");
        cw_line(w, "            for (long i = 0; i < %lldL; i++)", HW);
        cw_line(w, "                if (xb[i * %lldL + c] > best)", C);
        cw_line(w, "                    best = xb[i * %lldL + c], arg = i;", C);
        cw_line(w, "            db[arg * %lldL + c] = dy[b * %lldL + c];", C, C);
        cw_line(w, "        }");
        cw_line(w, "    }");
    } else {
        cw_line(w, "    for (long b = 0; b < n; b++)");
        cw_line(w, "        for (long i = 0; i < %lldL; i++)", HW);
        cw_line(w, "            for (long c = 0; c < %lldL; c++)", C);
        cw_line(w, "                dx[(b * %lldL + i) * %lldL + c] = dy[b * %lldL + c] / %lld.0f;", HW,
                C, C, HW);
    }
    cw_line(w, "}");
    cw_line(&cg->body, "%sk%d(n, %s, %s, %s);", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]),
            cg_buf(cg, n->in[1]), cg_buf(cg, n->out));
}
