/*
 * eltwise.c — element-wise kernels: bias_add, activations, inference batch
 * normalization and Add (with size-1 broadcasting).
 *
 * Activation formulas come from ir/activations.def as C text in `v`,
 * compiled here in float through <tgmath.h>, the same text the reference
 * interpreter compiles in double.
 */
#include <string.h>
#include "codegen/codegen.h"
#include "ir/dropout_rng.h"

void emit_bias_add(struct cg *cg, const struct ir_node *n)
{
    long long C = n->in[1]->shape.dim[0], rows = cg_numel(n->out) / C;
    struct cw *w = &cg->defs;
    char what[200], xs[100];
    snprintf(what, sizeof what, "x %s + b (%lld)", cg_shape(n->in[0]->shape, xs, sizeof xs), C);
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict x, const float *restrict b,", cg->prefix, cg_id(cg, n));
    cw_line(w, "               float *restrict y)");
    cw_line(w, "{");
    cw_line(w, "    for (long i = 0; i < (long)n * %lldL; i++)", rows);
    cw_line(w, "        for (long c = 0; c < %lldL; c++)", C);
    cw_line(w, "            y[i * %lldL + c] = x[i * %lldL + c] + b[c];", C, C);
    cw_line(w, "}");
    cw_line(&cg->body, "%sk%d(n, %s, %s, %s);", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]), cg_buf(cg, n->in[1]),
            cg_buf(cg, n->out));
}

void emit_activation(struct cg *cg, const struct ir_node *n)
{
    struct cw *w = &cg->defs;
    char what[200], xs[100];
    snprintf(what, sizeof what, "%s(x %s)", nncc_activation_name(n->a.act),
             cg_shape(n->in[0]->shape, xs, sizeof xs));
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict x, float *restrict y)", cg->prefix, cg_id(cg, n));
    cw_line(w, "{");
    char work[64];
    snprintf(work, sizeof work, "(long)n * %lldL", (long long)cg_numel(n->out) * 8);
    w->indent++;
    cg_parallel_simd(w, work);
    w->indent--;
    cw_line(w, "    for (long i = 0; i < (long)n * %lldL; i++) {", (long long)cg_numel(n->out));
    cw_line(w, "        const float v = x[i];");
    cw_line(w, "        y[i] = %s;", ir_activation_expr(n->a.act));
    cw_line(w, "    }");
    cw_line(w, "}");
    cw_line(&cg->body, "%sk%d(n, %s, %s);", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]), cg_buf(cg, n->out));
}

/* The float expressions of ACTIVATION_ALPHA and its gradient, in v = x
 * (and g = dy): LeakyReLU and ELU as TensorFlow computes them in float32
 * (ELU's gradient (α·g)(r + 1) with r = eˣ − 1, its EluGrad). */
static void alpha_exprs(const struct ir_node *n, char *y, char *dx, size_t size)
{
    char a[40];
    snprintf(a, sizeof a, "K(%.9g)", (double)n->a.alpha);
    if (n->a.act == NNCC_ELU) {
        snprintf(y, size, "v > K(0) ? v : %s * expm1(v)", a);
        snprintf(dx, size, "v > K(0) ? g : (%s * g) * (expm1(v) + K(1))", a);
    } else {
        snprintf(y, size, "v > K(0) ? v : v * %s", a);
        snprintf(dx, size, "v > K(0) ? g : g * %s", a);
    }
}

/* ACTIVATION_ALPHA (x → y) or its gradient ((dy, x) → dx): one loop, not
 * fused (the alpha is the node's own). */
static void emit_alpha_kernel(struct cg *cg, const struct ir_node *n, bool grad)
{
    struct cw *w = &cg->defs;
    char what[200], xs[100], y[160], dx[160];
    alpha_exprs(n, y, dx, sizeof y);
    snprintf(what, sizeof what, "%s%s, alpha %g, on %s", nncc_activation_name(n->a.act),
             grad ? " gradient" : "", (double)n->a.alpha,
             cg_shape(n->out->shape, xs, sizeof xs));
    cg_kernel_comment(cg, n, what);
    if (grad)
        cw_line(w, "static void %sk%d(int n, const float *restrict dy, const float *restrict x, "
                   "float *restrict out)", cg->prefix, cg_id(cg, n));
    else
        cw_line(w, "static void %sk%d(int n, const float *restrict x, float *restrict out)",
                cg->prefix, cg_id(cg, n));
    cw_line(w, "{");
    char work[64];
    snprintf(work, sizeof work, "(long)n * %lldL", (long long)cg_numel(n->out) * 8);
    w->indent++;
    cg_parallel_simd(w, work);
    w->indent--;
    cw_line(w, "    for (long i = 0; i < (long)n * %lldL; i++) {", (long long)cg_numel(n->out));
    cw_line(w, "        const float v = x[i]%s;", grad ? ", g = dy[i]" : "");
    cw_line(w, "        out[i] = %s;", grad ? dx : y);
    cw_line(w, "    }");
    cw_line(w, "}");
    cw_raw(&cg->body, "    %sk%d(n, %s, ", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]));
    if (grad)
        cw_raw(&cg->body, "%s, ", cg_buf(cg, n->in[1]));
    cw_raw(&cg->body, "%s);\n", cg_buf(cg, n->out));
}

void emit_activation_alpha(struct cg *cg, const struct ir_node *n) { emit_alpha_kernel(cg, n, false); }

void emit_activation_alpha_grad(struct cg *cg, const struct ir_node *n)
{
    emit_alpha_kernel(cg, n, true);
}

/* y = γ(x − mean)/√(var + ε) + β, folded per channel into y = x·s + t. */
void emit_batchnorm(struct cg *cg, const struct ir_node *n)
{
    const struct ir_attrs *a = &n->a;
    struct nncc_shape s = n->out->shape;
    long long C = s.dim[a->axis], inner = ir_shape_numel(s, a->axis + 1);
    long long total = cg_numel(n->out);
    struct cw *w = &cg->defs;
    char what[200], xs[100];
    snprintf(what, sizeof what, "batch normalization of x %s on axis %d (moving statistics)",
             cg_shape(s, xs, sizeof xs), a->axis);
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict x, const float *restrict mean,", cg->prefix, cg_id(cg, n));
    cw_line(w, "               const float *restrict var, const float *restrict gamma,");
    cw_line(w, "               const float *restrict beta, float *restrict y)");
    cw_line(w, "{");
    cw_line(w, "    float scale[%lld], shift[%lld];", C, C);
    cw_line(w, "    for (long c = 0; c < %lldL; c++) {", C);
    cw_line(w, "        scale[c] = (gamma ? gamma[c] : 1.0f) / sqrt(var[c] + K(%.17g));",
            (double)a->epsilon);
    cw_line(w, "        shift[c] = (beta ? beta[c] : 0.0f) - mean[c] * scale[c];");
    cw_line(w, "    }");
    cw_line(w, "    for (long i = 0; i < (long)n * %lldL; i++) {", total);
    cw_line(w, "        const long c = (i / %lldL) %% %lldL;", inner, C);
    cw_line(w, "        y[i] = x[i] * scale[c] + shift[c];");
    cw_line(w, "    }");
    cw_line(w, "}");
    const char *gamma = a->has_gamma ? cg_buf(cg, n->in[3]) : "NULL";
    const char *beta = a->has_beta ? cg_buf(cg, n->in[3 + a->has_gamma]) : "NULL";
    cw_line(&cg->body, "%sk%d(n, %s, %s, %s, %s, %s, %s);", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]),
            cg_buf(cg, n->in[1]), cg_buf(cg, n->in[2]), gamma, beta, cg_buf(cg, n->out));
}

/* Sum of k inputs; an input dim of size 1 (or a missing leading dim) is
 * broadcast.  The output index is decomposed once per element; each input
 * has its own strides, 0 on broadcast dims. */
void emit_add(struct cg *cg, const struct ir_node *n)
{
    struct nncc_shape ys = n->out->shape;
    struct cw *w = &cg->defs;
    bool same = true;
    for (int k = 0; k < n->n_in; k++)
        same &= ir_shape_eq(n->in[k]->shape, ys);
    char what[300], xs[100];
    snprintf(what, sizeof what, "sum of %d inputs like %s%s", n->n_in,
             cg_shape(n->in[0]->shape, xs, sizeof xs), same ? "" : " (broadcast)");
    cg_kernel_comment(cg, n, what);
    cw_raw(w, "static void %sk%d(int n, ", cg->prefix, cg_id(cg, n));
    for (int k = 0; k < n->n_in; k++)
        cw_raw(w, "const float *restrict x%d, ", k);
    cw_raw(w, "float *restrict y)\n{\n");
    w->indent++;
    long long total = cg_numel(n->out);
    /* Values without a batch (summed weight gradients) do not scale with n. */
    if (!n->out->batched)
        cw_line(w, "(void)n;");
    cw_line(w, "for (long i = 0; i < %s%lldL; i++) {", n->out->batched ? "(long)n * " : "", total);
    w->indent++;
    if (same) {
        cw_raw(w, "%*sy[i] = x0[i]", w->indent * 4, "");
        for (int k = 1; k < n->n_in; k++)
            cw_raw(w, " + x%d[i]", k);
        cw_raw(w, ";\n");
    } else {
        cw_line(w, "long rem = i;");
        for (int k = 0; k < n->n_in; k++)
            cw_line(w, "long j%d = 0;", k);
        /* Walk dims from the last; dim 0 is the batch (the runtime n) and
         * every input has it; the others align from the right. */
        for (int d = ys.rank - 1; d >= 0; d--) {
            if (d > 0)
                cw_line(w, "{ const long c = rem %% %lldL; rem /= %lldL;", (long long)ys.dim[d],
                        (long long)ys.dim[d]);
            else
                cw_line(w, "{ const long c = rem;");
            w->indent++;
            for (int k = 0; k < n->n_in; k++) {
                struct nncc_shape xs2 = n->in[k]->shape;
                int xd = d == 0 ? 0 : d - (ys.rank - xs2.rank);
                if (xd < 0 || (xd == 0 && d != 0))
                    continue;
                bool bcast = xd > 0 && xs2.dim[xd] == 1 && ys.dim[d] != 1;
                long long stride = ir_shape_numel(xs2, xd + 1);
                if (!bcast)
                    cw_line(w, "j%d += c * %lldL;", k, stride);
            }
            w->indent--;
            cw_line(w, "}");
        }
        cw_raw(w, "%*sy[i] = x0[j0]", w->indent * 4, "");
        for (int k = 1; k < n->n_in; k++)
            cw_raw(w, " + x%d[j%d]", k, k);
        cw_raw(w, ";\n");
    }
    w->indent--;
    cw_line(w, "}");
    w->indent--;
    cw_line(w, "}");
    cw_raw(&cg->body, "    %sk%d(n, ", cg->prefix, cg_id(cg, n));
    for (int k = 0; k < n->n_in; k++)
        cw_raw(&cg->body, "%s, ", cg_buf(cg, n->in[k]));
    cw_raw(&cg->body, "%s);\n", cg_buf(cg, n->out));
}

/* dx = dy · f'(x) with f' from ir/activations.def; inputs (dy, x, y). */
void emit_activation_grad(struct cg *cg, const struct ir_node *n)
{
    struct cw *w = &cg->defs;
    char what[200], xs[100];
    snprintf(what, sizeof what, "%s gradient on %s", nncc_activation_name(n->a.act),
             cg_shape(n->out->shape, xs, sizeof xs));
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict dy, const float *restrict x,",
            cg->prefix, cg_id(cg, n));
    cw_line(w, "               const float *restrict yv, float *restrict dx)");
    cw_line(w, "{");
    cw_line(w, "    for (long i = 0; i < (long)n * %lldL; i++) {", (long long)cg_numel(n->out));
    cw_line(w, "        const float v = x[i], y = yv[i];");
    cw_line(w, "        (void)v, (void)y;");
    cw_line(w, "        dx[i] = dy[i] * (%s);", ir_activation_deriv(n->a.act));
    cw_line(w, "    }");
    cw_line(w, "}");
    /* When fusion removed the activation's input, f' is computed from y
     * (passes/fuse.c allows that only where it is exact). */
    const nncc_tensor *x = cg_group(cg, n)->grad_from_y ? n->in[2] : n->in[1];
    cw_line(&cg->body, "%sk%d(n, %s, %s, %s, %s);", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]),
            cg_buf(cg, x), cg_buf(cg, n->in[2]), cg_buf(cg, n->out));
}

/* y = x · mask / (1 − rate), the mask from ir/dropout_rng.h (same bits as
 * the interpreter's); also dropout's gradient, with the same key. */
void emit_dropout_train(struct cg *cg, const struct ir_node *n)
{
    struct cw *w = &cg->defs;
    char what[200], xs[100];
    snprintf(what, sizeof what, "dropout (rate %g) of %s", (double)n->a.rate,
             cg_shape(n->out->shape, xs, sizeof xs));
    cg_kernel_comment(cg, n, what);
    cw_line(w, "static void %sk%d(int n, const float *restrict x, float *restrict y, const double *h)",
            cg->prefix, cg_id(cg, n));
    cw_line(w, "{");
    cw_line(w, "    const unsigned long long seed = (unsigned long long)h[%d];", IR_HYPER_SEED);
    cw_line(w, "    for (long i = 0; i < (long)n * %lldL; i++)", (long long)cg_numel(n->out));
    cw_line(w, "        y[i] = nncc_keep(seed, %lluull, i, %lluull) ? x[i] * K(%.17g) : 0.0f;",
            (unsigned long long)n->a.seed, NNCC_DROPOUT_THRESHOLD(n->a.rate),
            1.0 / (1.0 - ir_decimal(n->a.rate)));
    cw_line(w, "}");
    cw_line(&cg->body, "%sk%d(n, %s, %s, h);", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]),
            cg_buf(cg, n->out));
}
