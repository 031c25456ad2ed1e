/*
 * eltwise_onnx.c — kernels of the element-wise family with ONNX semantics
 * (ir/eltwise.h): UNARY and UNARY_GRAD (formulas of ir/unary.def as C
 * text, the text the oracle compiles in double), BINARY with numpy
 * broadcasting and BINARY_GRAD(_CONST), LOG_SOFTMAX and its gradient, and
 * SOFTMAX / SOFTMAX_GRAD along an axis other than the last (or on an
 * unbatched value; codegen/reduce.c keeps the row kernels of the last axis).
 *
 * Broadcasting: each operand is classified against the output shape as
 * full (the output's own layout), scalar (one value), periodic (the
 * output's trailing block of P elements, repeated: a per-channel vector
 * on the last axis, or a constant sample broadcast over the batch), or
 * strided.  The common pairs get plain loops (a flat one, or rows of P);
 * anything else gets one loop that decomposes the output index with
 * per-operand strides (0 on broadcast axes).  Gradients use the same
 * classification to sum dy back into the operand: an operand laid out
 * like the output is written element-wise, any other is zeroed and
 * accumulated serially (the sum order is fixed).
 *
 * Axis kernels (softmax, log_softmax, their gradients) view the value as
 * (outer, C, inner) around the axis; rows (inner = 1) are processed one
 * at a time (the exponentials in a vectorizing loop of their own),
 * otherwise blocks of up to 64 inner positions run together so
 * that the loops over them vectorize.
 */
#include <math.h>
#include <string.h>
#include "codegen/codegen.h"
#include "ir/eltwise.h"

/* The element count of a value as a C expression: n × per-sample count
 * when batched, else the constant. */
static const char *total_expr(const nncc_tensor *t, char *buf, size_t size)
{
    snprintf(buf, size, t->batched ? "(long)n * %lldL" : "%lldL", (long long)cg_numel(t));
    return buf;
}

/* A float parameter as a C constant (±INFINITY and NAN spelled out). */
static const char *fconst(float v, char *buf, size_t size)
{
    if (isnan(v))
        snprintf(buf, size, "NAN");
    else if (isinf(v))
        snprintf(buf, size, v > 0 ? "INFINITY" : "(-INFINITY)");
    else
        snprintf(buf, size, "K(%.9g)", (double)v);
    return buf;
}

/* ---- UNARY ------------------------------------------------------------- */

static void emit_unary_kernel(struct cg *cg, const struct ir_node *n, bool grad)
{
    struct cw *w = &cg->defs;
    char what[200], xs[100], tot[64], c0[48], c1[48];
    snprintf(what, sizeof what, "%s%s (p0 %g, p1 %g) on %s", ir_unary_name(n->a.unary),
             grad ? " gradient" : "", (double)n->a.p0, (double)n->a.p1,
             cg_shape(n->out->shape, xs, sizeof xs));
    cg_kernel_comment(cg, n, what);
    if (grad)
        cw_line(w, "static void %sk%d(int n, const float *restrict dy, const float *restrict x, "
                   "const float *restrict yv, float *restrict dx)", cg->prefix, cg_id(cg, n));
    else
        cw_line(w, "static void %sk%d(int n, const float *restrict x, float *restrict y)",
                cg->prefix, cg_id(cg, n));
    cw_line(w, "{");
    w->indent++;
    cw_line(w, "const float p0 = %s, p1 = %s;", fconst(n->a.p0, c0, sizeof c0),
            fconst(n->a.p1, c1, sizeof c1));
    cw_line(w, "(void)n, (void)p0, (void)p1;");
    total_expr(n->out, tot, sizeof tot);
    char work[96];
    snprintf(work, sizeof work, "%s * 8L", tot);
    cg_parallel_simd(w, work);
    cw_line(w, "for (long i = 0; i < %s; i++) {", tot);
    if (grad) {
        cw_line(w, "    const float v = x[i], y = yv[i];");
        cw_line(w, "    (void)v, (void)y;");
        cw_line(w, "    dx[i] = dy[i] * (%s);", ir_unary_deriv(n->a.unary));
    } else {
        cw_line(w, "    const float v = x[i];");
        cw_line(w, "    y[i] = %s;", ir_unary_expr(n->a.unary));
    }
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    cw_raw(&cg->body, "    %sk%d(n", cg->prefix, cg_id(cg, n));
    for (int k = 0; k < n->n_in; k++)
        cw_raw(&cg->body, ", %s", cg_buf(cg, n->in[k]));
    cw_raw(&cg->body, ", %s);\n", cg_buf(cg, n->out));
}

void emit_unary(struct cg *cg, const struct ir_node *n) { emit_unary_kernel(cg, n, false); }
void emit_unary_grad(struct cg *cg, const struct ir_node *n) { emit_unary_kernel(cg, n, true); }

/* ---- Broadcasting ------------------------------------------------------ */

enum layout { L_FULL, L_SCALAR, L_PERIODIC, L_STRIDED };

/* An operand t against the output shape ys (both with dim 0 the batch
 * when batched): its stride per output axis (0 where it broadcasts), and
 * its layout; for L_PERIODIC, *period is the output's trailing block it
 * repeats. */
static enum layout classify(struct nncc_shape ys, const nncc_tensor *t, long long *stride,
                            long long *period)
{
    struct nncc_shape ts = t->shape;
    int r = ys.rank;
    for (int d = 0; d < r; d++) {
        int td = d - (r - ts.rank);
        stride[d] = td < 0 || ts.dim[td] == 1 ? 0 : ir_shape_numel(ts, td + 1);
    }
    /* q: one past the last axis where t does not follow the output. */
    int q = 0;
    for (int d = 0; d < r; d++)
        if (ys.dim[d] != 1 && stride[d] != ir_shape_numel(ys, d + 1))
            q = d + 1;
    for (int d = 0; d < q; d++)
        if (ys.dim[d] != 1 && stride[d] != 0)
            return L_STRIDED;
    *period = ir_shape_numel(ys, q);
    return q == 0 ? L_FULL : q == r ? L_SCALAR : L_PERIODIC;
}

/* Writes, for output element i of shape ys, the index of each operand
 * k < count into j<k> (strided decomposition); `rem`, `i` in scope. */
static void strided_indices(struct cw *w, struct nncc_shape ys, long long (*stride)[NNCC_MAX_RANK],
                            int count)
{
    cw_line(w, "long rem = i;");
    for (int k = 0; k < count; k++)
        cw_line(w, "long j%d = 0;", k);
    for (int d = ys.rank - 1; d >= 0; d--) {
        if (d > 0)
            cw_line(w, "{ const long c = rem %% %lldL; rem /= %lldL;", (long long)ys.dim[d],
                    (long long)ys.dim[d]);
        else
            cw_line(w, "{ const long c = rem;");
        bool any = false;
        for (int k = 0; k < count; k++)
            if (stride[k][d]) {
                cw_line(w, "  j%d += c * %lldL;", k, stride[k][d]);
                any = true;
            }
        if (!any)
            cw_line(w, "  (void)c;");
        cw_line(w, "}");
    }
    for (int k = 0; k < count; k++) /* a gradient written element-wise needs no j of its own */
        cw_line(w, "(void)j%d;", k);
}

/* The loop shape of a broadcast kernel over the output: a flat loop over
 * i (with index expressions per operand), rows of `period` (i = r·P + c),
 * or the strided decomposition. */
struct bloop {
    struct nncc_shape ys;
    int count;                /* operands */
    enum layout lay[3];
    long long stride[3][NNCC_MAX_RANK], period[3];
    bool rows;                /* rows of P: some operand is periodic */
    long long P;
    bool strided;
    char idx[3][16];          /* each operand's index expression */
};

static void bloop_init(struct bloop *L, struct nncc_shape ys, const nncc_tensor *const *ops,
                       int count)
{
    memset(L, 0, sizeof *L);
    L->ys = ys;
    L->count = count;
    for (int k = 0; k < count; k++) {
        L->lay[k] = classify(ys, ops[k], L->stride[k], &L->period[k]);
        if (L->lay[k] == L_STRIDED)
            L->strided = true;
        if (L->lay[k] == L_PERIODIC) {
            if (L->rows && L->period[k] != L->P)
                L->strided = true; /* two different periods: the general loop */
            L->rows = true;
            L->P = L->period[k];
        }
    }
    if (L->strided)
        L->rows = false;
    for (int k = 0; k < count; k++) {
        if (L->strided)
            snprintf(L->idx[k], sizeof L->idx[k], "j%d", k);
        else
            snprintf(L->idx[k], sizeof L->idx[k], "%s",
                     L->lay[k] == L_SCALAR ? "0" : L->lay[k] == L_PERIODIC ? "c" : "i");
    }
}

/* Opens the loop(s) over the output's `total` elements (a C expression);
 * `par`: on several threads when large (each i written by one thread). */
static void bloop_open(struct cw *w, const struct bloop *L, const char *total, bool par)
{
    char work[96];
    snprintf(work, sizeof work, "%s * 4L", total);
    if (L->rows) {
        if (par)
            cg_parallel(w, work);
        cw_line(w, "for (long r = 0; r < %s / %lldL; r++) {", total, L->P);
        w->indent++;
        if (par)
            cg_simd(w);
        cw_line(w, "for (long c = 0; c < %lldL; c++) {", L->P);
        w->indent++;
        cw_line(w, "const long i = r * %lldL + c;", L->P);
        cw_line(w, "(void)i;");
    } else {
        if (par)
            (L->strided ? cg_parallel : cg_parallel_simd)(w, work);
        cw_line(w, "for (long i = 0; i < %s; i++) {", total);
        w->indent++;
        if (L->strided)
            strided_indices(w, L->ys, (long long (*)[NNCC_MAX_RANK])L->stride, L->count);
    }
}

static void bloop_close(struct cw *w, const struct bloop *L)
{
    w->indent--;
    cw_line(w, "}");
    if (L->rows) {
        w->indent--;
        cw_line(w, "}");
    }
}

/* ---- BINARY ------------------------------------------------------------ */

static const char *layout_name(enum layout l)
{
    return l == L_FULL ? "full" : l == L_SCALAR ? "scalar" : l == L_PERIODIC ? "periodic" : "strided";
}

void emit_binary(struct cg *cg, const struct ir_node *n)
{
    struct cw *w = &cg->defs;
    struct bloop L;
    bloop_init(&L, n->out->shape, (const nncc_tensor *const *)n->in, 2);
    char what[300], s0[100], s1[100], s2[100], tot[64];
    snprintf(what, sizeof what, "%s of a %s (%s) and b %s (%s) to %s", ir_binary_name(n->a.binary),
             cg_shape(n->in[0]->shape, s0, sizeof s0), layout_name(L.lay[0]),
             cg_shape(n->in[1]->shape, s1, sizeof s1), layout_name(L.lay[1]),
             cg_shape(n->out->shape, s2, sizeof s2));
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict xa, const float *restrict xb, "
               "float *restrict y)", cg->prefix, cg_id(cg, n));
    cw_line(w, "{");
    w->indent++;
    cw_line(w, "(void)n;");
    bloop_open(w, &L, total_expr(n->out, tot, sizeof tot), true);
    cw_line(w, "const float a = xa[%s], b = xb[%s];", L.idx[0], L.idx[1]);
    cw_line(w, "y[i] = %s;", ir_binary_expr(n->a.binary));
    bloop_close(w, &L);
    w->indent--;
    cw_line(w, "}");
    cw_line(&cg->body, "%sk%d(n, %s, %s, %s);", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]),
            cg_buf(cg, n->in[1]), cg_buf(cg, n->out));
}

/* d(operand which) = Σ dy · ∂f/∂operand, shaped like the operand;
 * inputs (dy, a, b). */
void emit_binary_grad(struct cg *cg, const struct ir_node *n)
{
    struct cw *w = &cg->defs;
    const nncc_tensor *dy = n->in[0], *x = n->in[1 + n->a.which];
    const nncc_tensor *ops[3] = {n->in[1], n->in[2], x};
    struct bloop L;
    bloop_init(&L, dy->shape, ops, 3);
    bool direct = L.lay[2] == L_FULL && (x->batched == dy->batched);
    char what[300], s0[100], s1[100], tot[64], xtot[64];
    snprintf(what, sizeof what, "%s gradient for %s %s from dy %s (%s)",
             ir_binary_name(n->a.binary), n->a.which ? "b" : "a",
             cg_shape(x->shape, s0, sizeof s0), cg_shape(dy->shape, s1, sizeof s1),
             direct ? "element-wise" : "summed over the broadcast axes");
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict dy, const float *restrict xa, "
               "const float *restrict xb, float *restrict dx)", cg->prefix, cg_id(cg, n));
    cw_line(w, "{");
    w->indent++;
    cw_line(w, "(void)n;");
    if (!direct) {
        cw_line(w, "for (long i = 0; i < %s; i++)", total_expr(x, xtot, sizeof xtot));
        cw_line(w, "    dx[i] = 0.0f;");
    }
    bloop_open(w, &L, total_expr(dy, tot, sizeof tot), direct);
    cw_line(w, "const float a = xa[%s], b = xb[%s];", L.idx[0], L.idx[1]);
    cw_line(w, "(void)a, (void)b;");
    if (direct)
        cw_line(w, "dx[i] = dy[i] * (%s);", ir_binary_deriv(n->a.binary, n->a.which));
    else
        cw_line(w, "dx[%s] += dy[i] * (%s);", L.idx[2], ir_binary_deriv(n->a.binary, n->a.which));
    bloop_close(w, &L);
    w->indent--;
    cw_line(w, "}");
    cw_line(&cg->body, "%sk%d(n, %s, %s, %s, %s);", cg->prefix, cg_id(cg, n), cg_buf(cg, dy),
            cg_buf(cg, n->in[1]), cg_buf(cg, n->in[2]), cg_buf(cg, n->out));
}

/* ---- Softmax family along an axis -------------------------------------- */

enum axis_kind { AX_SOFTMAX, AX_LOG_SOFTMAX, AX_SOFTMAX_GRAD, AX_LOG_SOFTMAX_GRAD };

/* outer (per sample when batched, the batch axis being before any axis a
 * batched value may use), C, inner around the node's axis. */
static void axis_dims(const struct ir_node *n, long long *outer, long long *C, long long *inner)
{
    struct nncc_shape s = n->out->shape;
    int axis = ir_softmax_axis(n);
    *C = s.dim[axis];
    *inner = ir_shape_numel(s, axis + 1);
    *outer = cg_numel(n->out) / (*C * *inner);
}

/* One row o of C contiguous elements (the last axis): the exponentials in
 * a loop of their own that vectorizes (the output row holds them), sums
 * in one fixed order; softmax is cg_softmax_row, the row kernel's own. */
static void emit_axis_row(struct cw *w, enum axis_kind kind, long long C)
{
    cw_line(w, "const long base = o * %lldL;", C);
    switch (kind) {
    case AX_SOFTMAX:
        cw_line(w, "const float *restrict xr = x + base;");
        cw_line(w, "float *restrict yr = y + base;");
        cg_softmax_row(w, "xr", "yr", C);
        break;
    case AX_LOG_SOFTMAX:
        cw_line(w, "const float *restrict xr = x + base;");
        cw_line(w, "float *restrict yr = y + base;");
        cw_line(w, "float mx = -INFINITY, sum = 0.0f;");
        cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
        cw_line(w, "    mx = xr[c] > mx ? xr[c] : mx;");
        cg_simd(w);
        cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
        cw_line(w, "    yr[c] = nn_expf(xr[c] - mx);");
        cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
        cw_line(w, "    sum += yr[c];");
        cw_line(w, "const float lse = mx + log(sum);");
        cg_simd(w);
        cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
        cw_line(w, "    yr[c] = xr[c] - lse;");
        break;
    case AX_SOFTMAX_GRAD:
    case AX_LOG_SOFTMAX_GRAD:
        cw_line(w, "float acc = 0.0f;");
        cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
        cw_line(w, kind == AX_SOFTMAX_GRAD ? "    acc += dy[base + c] * y[base + c];"
                                           : "    acc += dy[base + c];");
        cg_simd(w);
        cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
        cw_line(w, kind == AX_SOFTMAX_GRAD
                       ? "    dx[base + c] = y[base + c] * (dy[base + c] - acc);"
                       : "    dx[base + c] = dy[base + c] - nn_expf(y[base + c]) * acc;");
        break;
    }
}

/* The kernel: forward ops read x and write y; gradients read (dy, y) and
 * write dx.  Per (outer, inner) position: a reduction along the axis,
 * then the element-wise result. */
static void emit_axis(struct cg *cg, const struct ir_node *n, enum axis_kind kind)
{
    struct cw *w = &cg->defs;
    long long outer, C, inner;
    axis_dims(n, &outer, &C, &inner);
    bool grad = kind == AX_SOFTMAX_GRAD || kind == AX_LOG_SOFTMAX_GRAD;
    static const char *const names[] = {"softmax", "log_softmax", "softmax gradient",
                                        "log_softmax gradient"};
    char what[200], xs[100];
    snprintf(what, sizeof what, "%s along axis %d of %s", names[kind], ir_softmax_axis(n),
             cg_shape(n->out->shape, xs, sizeof xs));
    cg_kernel_comment(cg, n, what);
    if (grad)
        cw_line(w, "static void %sk%d(int n, const float *restrict dy, const float *restrict y, "
                   "float *restrict dx)", cg->prefix, cg_id(cg, n));
    else
        cw_line(w, "static void %sk%d(int n, const float *restrict x, float *restrict y)",
                cg->prefix, cg_id(cg, n));
    cw_line(w, "{");
    w->indent++;
    cw_line(w, "(void)n;");
    char work[96], outer_s[64];
    snprintf(outer_s, sizeof outer_s, n->out->batched ? "(long)n * %lldL" : "%lldL", outer);
    snprintf(work, sizeof work, "%s * %lldL", outer_s, C * inner * 16);
    cg_parallel(w, work);
    cw_line(w, "for (long o = 0; o < %s; o++) {", outer_s);
    w->indent++;
    if (inner == 1) {
        emit_axis_row(w, kind, C);
        w->indent--;
        cw_line(w, "}");
        w->indent--;
        cw_line(w, "}");
        goto call;
    }
    long long B = inner < 64 ? inner : 64;
    /* Every access below is base[c * inner + k] for k < kn. */
    cw_line(w, "for (long k0 = 0; k0 < %lldL; k0 += %lldL) {", inner, B);
    w->indent++;
    cw_line(w, "const long kn = %lldL - k0 < %lldL ? %lldL - k0 : %lldL;", inner, B, inner, B);
    cw_line(w, "const long base = o * %lldL + k0;", C * inner);
    cw_line(w, "float acc[%lld];", B);
    switch (kind) {
    case AX_SOFTMAX:
    case AX_LOG_SOFTMAX:
        cw_line(w, "float mx[%lld];", B);
        cw_line(w, "for (long k = 0; k < kn; k++) { mx[k] = -INFINITY; acc[k] = 0.0f; }");
        cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
        cw_line(w, "    for (long k = 0; k < kn; k++) {");
        cw_line(w, "        const float v = x[base + c * %lldL + k];", inner);
        cw_line(w, "        mx[k] = v > mx[k] ? v : mx[k];");
        cw_line(w, "    }");
        cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
        cw_line(w, "    for (long k = 0; k < kn; k++) {");
        cw_line(w, "        const float e = nn_expf(x[base + c * %lldL + k] - mx[k]);", inner);
        if (kind == AX_SOFTMAX)
            cw_line(w, "        y[base + c * %lldL + k] = e;", inner);
        cw_line(w, "        acc[k] += e;");
        cw_line(w, "    }");
        if (kind == AX_LOG_SOFTMAX)
            cw_line(w, "for (long k = 0; k < kn; k++) acc[k] = mx[k] + log(acc[k]);");
        cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
        cw_line(w, "    for (long k = 0; k < kn; k++)");
        if (kind == AX_SOFTMAX)
            cw_line(w, "        y[base + c * %lldL + k] /= acc[k];", inner);
        else
            cw_line(w, "        y[base + c * %lldL + k] = x[base + c * %lldL + k] - acc[k];",
                    inner, inner);
        break;
    case AX_SOFTMAX_GRAD:
    case AX_LOG_SOFTMAX_GRAD:
        cw_line(w, "for (long k = 0; k < kn; k++) acc[k] = 0.0f;");
        cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
        cw_line(w, "    for (long k = 0; k < kn; k++)");
        if (kind == AX_SOFTMAX_GRAD)
            cw_line(w, "        acc[k] += dy[base + c * %lldL + k] * y[base + c * %lldL + k];",
                    inner, inner);
        else
            cw_line(w, "        acc[k] += dy[base + c * %lldL + k];", inner);
        cw_line(w, "for (long c = 0; c < %lldL; c++)", C);
        cw_line(w, "    for (long k = 0; k < kn; k++) {");
        cw_line(w, "        const long j = base + c * %lldL + k;", inner);
        if (kind == AX_SOFTMAX_GRAD)
            cw_line(w, "        dx[j] = y[j] * (dy[j] - acc[k]);");
        else
            cw_line(w, "        dx[j] = dy[j] - nn_expf(y[j]) * acc[k];");
        cw_line(w, "    }");
        break;
    }
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
call:
    cw_raw(&cg->body, "    %sk%d(n", cg->prefix, cg_id(cg, n));
    for (int k = 0; k < n->n_in; k++)
        cw_raw(&cg->body, ", %s", cg_buf(cg, n->in[k]));
    cw_raw(&cg->body, ", %s);\n", cg_buf(cg, n->out));
}

void emit_log_softmax(struct cg *cg, const struct ir_node *n) { emit_axis(cg, n, AX_LOG_SOFTMAX); }

void emit_log_softmax_grad(struct cg *cg, const struct ir_node *n)
{
    emit_axis(cg, n, AX_LOG_SOFTMAX_GRAD);
}

void cg_softmax_axis(struct cg *cg, const struct ir_node *n, bool grad)
{
    emit_axis(cg, n, grad ? AX_SOFTMAX_GRAD : AX_SOFTMAX);
}
