/*
 * epilogue.c — the work fusion (passes/fuse.c) moves into a head kernel,
 * emitted where the head has just finished a block of its output:
 *   bias_act  y = act(y + bias[c]) on each row (or a row-wise softmax);
 *   dact      g = g · act'(y), the derivative written in y (the
 *             activation's output), as the unfused activation_grad does.
 * The formulas are activations.def's, so fused and unfused kernels compute
 * the same floats in the same order.  Also the signature and call of the
 * GEMM-family kernels, which carry these epilogues' operands.
 */
#include "codegen/codegen.h"

const struct ir_group *cg_group(const struct cg *cg, const struct ir_node *n)
{
    static const struct ir_group none;
    return cg->plan->groups ? &cg->plan->groups[cg_id(cg, n)] : &none;
}

const struct ir_epilogue *cg_epilogue(const struct cg *cg, const struct ir_node *n)
{
    return ir_group_epilogue(cg_group(cg, n));
}

const char *cg_out(const struct cg *cg, const struct ir_node *n)
{
    const struct ir_group *g = cg_group(cg, n);
    return cg_buf(cg, g->result ? g->result : n->out);
}

void cg_epilogue_params(struct cw *w, const struct ir_epilogue *f)
{
    if (f->bias)
        cw_raw(w, ", const float *restrict bias");
    if (f->has_dact)
        cw_raw(w, ", const float *restrict yv");
}

void cg_epilogue_args(struct cw *w, const struct cg *cg, const struct ir_epilogue *f)
{
    if (f->bias)
        cw_raw(w, ", %s", cg_buf(cg, f->bias));
    if (f->has_dact)
        cw_raw(w, ", %s", cg_buf(cg, f->dact_y));
}

void cg_epilogue_rows(struct cw *w, const struct ir_epilogue *f, const char *ptr, const char *rows,
                      long long N)
{
    if (!f->bias && !f->has_act && !f->softmax)
        return;
    cw_line(w, "for (long r_ = 0; r_ < %s; r_++) {", rows);
    w->indent++;
    cw_line(w, "float *restrict yr = %s + r_ * %lldL;", ptr, N);
    if (f->bias || f->has_act) {
        cg_simd(w);
        cw_line(w, "for (long c_ = 0; c_ < %lldL; c_++) {", N);
        cw_line(w, "    const float v = yr[c_]%s;", f->bias ? " + bias[c_]" : "");
        cw_line(w, "    yr[c_] = %s;", f->has_act ? ir_activation_expr(f->act) : "v");
        cw_line(w, "}");
    }
    if (f->softmax) /* exactly as codegen/reduce.c's softmax kernel */
        cg_softmax_row(w, "yr", "yr", N);
    w->indent--;
    cw_line(w, "}");
}

void cg_softmax_row(struct cw *w, const char *x, const char *y, long long N)
{
    /* mx starts at -inf, not at x[0]: a load of x[0] before the loops lets
     * clang 14's load PRE carry x[c] across the exp loop's iterations,
     * which then does not vectorize. */
    cw_line(w, "float mx = -INFINITY, sum = 0.0f;");
    cw_line(w, "for (long c_ = 0; c_ < %lldL; c_++)", N);
    cw_line(w, "    mx = %s[c_] > mx ? %s[c_] : mx;", x, x);
    cg_simd(w);
    cw_line(w, "for (long c_ = 0; c_ < %lldL; c_++)", N);
    cw_line(w, "    %s[c_] = nn_expf(%s[c_] - mx);", y, x);
    cw_line(w, "for (long c_ = 0; c_ < %lldL; c_++)", N); /* one fixed order */
    cw_line(w, "    sum += %s[c_];", y);
    cg_simd(w);
    cw_line(w, "for (long c_ = 0; c_ < %lldL; c_++)", N);
    cw_line(w, "    %s[c_] /= sum;", y);
}

void cg_epilogue_dact(struct cw *w, const struct ir_epilogue *f, const char *ptr, const char *yptr,
                      const char *count)
{
    if (!f->has_dact)
        return;
    cg_simd(w);
    cw_line(w, "for (long i_ = 0; i_ < %s; i_++) {", count);
    cw_line(w, "    const float y = %s[i_], v = y;", yptr);
    cw_line(w, "    (void)v, (void)y;");
    cw_line(w, "    %s[i_] = %s[i_] * (%s);", ptr, ptr, ir_activation_deriv(f->dact));
    cw_line(w, "}");
}

/* Kernels take (n, a, b, c[, epilogue operands][, wp]); wp is scratch space
 * for B packed once (`packed` floats, 0: none). */
void cg_gemm_open(struct cg *cg, const struct ir_node *n, const char *a, const char *b,
                        const char *c, long long packed)
{
    struct cw *w = &cg->defs;
    cw_line(w, "static void %sk%d(int n, const float *restrict %s, const float *restrict %s,",
            cg->prefix, cg_id(cg, n), a, b);
    cw_raw(w, "               float *restrict %s", c);
    cg_epilogue_params(w, cg_epilogue(cg, n));
    if (packed)
        cw_raw(w, ", float *restrict wp");
    cw_raw(w, ")\n");
    cw_line(w, "{");
    w->indent++;
}

void cg_gemm_close(struct cg *cg, const struct ir_node *n, long long packed)
{
    struct cw *w = &cg->defs;
    w->indent--;
    cw_line(w, "}");
    cw_raw(&cg->body, "    %sk%d(n, %s, %s, %s", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]),
           cg_buf(cg, n->in[1]), cg_out(cg, n));
    cg_epilogue_args(&cg->body, cg, cg_epilogue(cg, n));
    if (packed)
        cw_raw(&cg->body, ", %s", cg_scratch(cg, packed));
    cw_raw(&cg->body, ");\n");
}

/* Scratch floats for a k x n B packed whole, for any vector width (the
 * widest target, AVX-512, has 32-column panels). */
long long cg_packed_floats(long long k, long long n) { return k * ((n + 31) / 32 * 32); }
