/*
 * norm.c — batch normalization in training (see runtime/oracle/interp_norm.c for
 * the formulas).  Per-channel sums are accumulated in double; channel c of
 * element i is (i / inner) % C, inner being the size after the channel axis.
 */
#include "codegen/codegen.h"

struct chan {
    long long C, inner, per_sample; /* channels, size after the axis, elements per sample */
};

static struct chan chan_of(const struct ir_node *n, const nncc_tensor *x)
{
    struct chan c = {.C = x->shape.dim[n->a.axis],
                     .inner = ir_shape_numel(x->shape, n->a.axis + 1),
                     .per_sample = ir_shape_numel(x->shape, 1)};
    return c;
}

static void head(struct cg *cg, const struct ir_node *n, const char *what, const char *params)
{
    char s[100], w[300];
    snprintf(w, sizeof w, "%s on %s, axis %d", what, cg_shape(n->out->shape, s, sizeof s),
             n->a.axis);
    cg_kernel_comment(cg, n, w);
    cw_line(&cg->defs, "static void %sk%d(int n, %s)", cg->prefix, cg_id(cg, n), params);
}

void emit_bn_stats(struct cg *cg, const struct ir_node *n)
{
    struct chan c = chan_of(n, n->in[0]);
    struct cw *w = &cg->defs;
    head(cg, n, "batch mean and variance", "const float *restrict x, float *restrict st");
    cw_line(w, "{");
    cw_line(w, "    double sum[%lld], sq[%lld];", c.C, c.C);
    cw_line(w, "    const long total = (long)n * %lldL;", c.per_sample);
    cw_line(w, "    const double per = (double)total / %lld.0;", c.C);
    cw_line(w, "    for (long k = 0; k < %lldL; k++)", c.C);
    cw_line(w, "        sum[k] = sq[k] = 0;");
    cw_line(w, "    for (long i = 0; i < total; i++)");
    cw_line(w, "        sum[(i / %lldL) %% %lldL] += x[i];", c.inner, c.C);
    cw_line(w, "    for (long k = 0; k < %lldL; k++)", c.C);
    cw_line(w, "        sum[k] /= per;");
    cw_line(w, "    for (long i = 0; i < total; i++) {");
    cw_line(w, "        const long k = (i / %lldL) %% %lldL;", c.inner, c.C);
    cw_line(w, "        const double d = x[i] - sum[k];");
    cw_line(w, "        sq[k] += d * d;");
    cw_line(w, "    }");
    cw_line(w, "    for (long k = 0; k < %lldL; k++) {", c.C);
    cw_line(w, "        st[k] = (float)sum[k];");
    cw_line(w, "        st[%lldL + k] = (float)(sq[k] / per);", c.C);
    cw_line(w, "    }");
    cw_line(w, "}");
    cw_line(&cg->body, "%sk%d(n, %s, %s);", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]),
            cg_buf(cg, n->out));
}

void emit_bn_train(struct cg *cg, const struct ir_node *n)
{
    struct chan c = chan_of(n, n->in[0]);
    struct cw *w = &cg->defs;
    head(cg, n, "batch normalization with batch statistics",
         "const float *restrict x, const float *restrict st,\n"
         "               const float *restrict gamma, const float *restrict beta, float *restrict y");
    cw_line(w, "{");
    cw_line(w, "    float scale[%lld], shift[%lld];", c.C, c.C);
    cw_line(w, "    for (long k = 0; k < %lldL; k++) {", c.C);
    cw_line(w, "        scale[k] = (gamma ? gamma[k] : 1.0f) / sqrt(st[%lldL + k] + K(%.17g));", c.C,
            (double)n->a.epsilon);
    cw_line(w, "        shift[k] = (beta ? beta[k] : 0.0f) - st[k] * scale[k];");
    cw_line(w, "    }");
    cw_line(w, "    for (long i = 0; i < (long)n * %lldL; i++) {", c.per_sample);
    cw_line(w, "        const long k = (i / %lldL) %% %lldL;", c.inner, c.C);
    cw_line(w, "        y[i] = x[i] * scale[k] + shift[k];");
    cw_line(w, "    }");
    cw_line(w, "}");
    const char *gamma = n->a.has_gamma ? cg_buf(cg, n->in[2]) : "NULL";
    const char *beta = n->a.has_beta ? cg_buf(cg, n->in[2 + n->a.has_gamma]) : "NULL";
    cw_line(&cg->body, "%sk%d(n, %s, %s, %s, %s, %s);", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]),
            cg_buf(cg, n->in[1]), gamma, beta, cg_buf(cg, n->out));
}

void emit_bn_moving(struct cg *cg, const struct ir_node *n)
{
    long long C = n->in[0]->shape.dim[0];
    struct cw *w = &cg->defs;
    head(cg, n, "moving statistics update",
         "float *restrict mm, float *restrict mv, const float *restrict st");
    cw_line(w, "{");
    cw_line(w, "    const double per = (double)n * %lld.0;", (long long)n->a.size);
    cw_line(w, "    (void)per;");
    cw_line(w, "    for (long k = 0; k < %lldL; k++) {", C);
    if (n->a.bessel)
        cw_line(w, "        const float v = per > 1 ? (float)(st[%lldL + k] * per / (per - 1)) : "
                   "st[%lldL + k];",
                C, C);
    else
        cw_line(w, "        const float v = st[%lldL + k];", C);
    cw_line(w, "        mm[k] = mm[k] * K(%.17g) + st[k] * K(%.17g);", (double)n->a.momentum,
            1.0 - ir_decimal(n->a.momentum));
    cw_line(w, "        mv[k] = mv[k] * K(%.17g) + v * K(%.17g);", (double)n->a.momentum,
            1.0 - ir_decimal(n->a.momentum));
    cw_line(w, "    }");
    cw_line(w, "}");
    cw_line(&cg->body, "%sk%d(n, %s, %s, %s);", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]),
            cg_buf(cg, n->in[1]), cg_buf(cg, n->in[2]));
}

void emit_bn_grad(struct cg *cg, const struct ir_node *n)
{
    struct chan c = chan_of(n, n->in[1]);
    struct cw *w = &cg->defs;
    head(cg, n, "batch normalization input gradient",
         "const float *restrict dy, const float *restrict x,\n"
         "               const float *restrict st, const float *restrict gamma, float *restrict dx");
    cw_line(w, "{");
    cw_line(w, "    double sdy[%lld], sdyx[%lld];", c.C, c.C);
    cw_line(w, "    float inv[%lld];", c.C);
    cw_line(w, "    const long total = (long)n * %lldL;", c.per_sample);
    cw_line(w, "    const float N = (float)((double)total / %lld.0);", c.C);
    cw_line(w, "    for (long k = 0; k < %lldL; k++) {", c.C);
    cw_line(w, "        sdy[k] = sdyx[k] = 0;");
    cw_line(w, "        inv[k] = 1.0f / sqrt(st[%lldL + k] + K(%.17g));", c.C, (double)n->a.epsilon);
    cw_line(w, "    }");
    cw_line(w, "    for (long i = 0; i < total; i++) {");
    cw_line(w, "        const long k = (i / %lldL) %% %lldL;", c.inner, c.C);
    cw_line(w, "        sdy[k] += dy[i];");
    cw_line(w, "        sdyx[k] += (double)dy[i] * (x[i] - st[k]) * inv[k];");
    cw_line(w, "    }");
    cw_line(w, "    for (long i = 0; i < total; i++) {");
    cw_line(w, "        const long k = (i / %lldL) %% %lldL;", c.inner, c.C);
    cw_line(w, "        const float xh = (x[i] - st[k]) * inv[k];");
    cw_line(w, "        dx[i] = (gamma ? gamma[k] : 1.0f) * inv[k] / N *");
    cw_line(w, "                (N * dy[i] - (float)sdy[k] - xh * (float)sdyx[k]);");
    cw_line(w, "    }");
    cw_line(w, "}");
    cw_line(&cg->body, "%sk%d(n, %s, %s, %s, %s, %s);", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]),
            cg_buf(cg, n->in[1]), cg_buf(cg, n->in[2]),
            n->a.has_gamma ? cg_buf(cg, n->in[3]) : "NULL", cg_buf(cg, n->out));
}

void emit_bn_param_grad(struct cg *cg, const struct ir_node *n)
{
    struct chan c = chan_of(n, n->in[1]);
    struct cw *w = &cg->defs;
    head(cg, n, n->a.offset == 0 ? "gamma gradient" : "beta gradient",
         "const float *restrict dy, const float *restrict x,\n"
         "               const float *restrict st, float *restrict g");
    cw_line(w, "{");
    cw_line(w, "    double acc[%lld];", c.C);
    cw_line(w, "    (void)x, (void)st;");
    cw_line(w, "    for (long k = 0; k < %lldL; k++)", c.C);
    cw_line(w, "        acc[k] = 0;");
    cw_line(w, "    for (long i = 0; i < (long)n * %lldL; i++) {", c.per_sample);
    cw_line(w, "        const long k = (i / %lldL) %% %lldL;", c.inner, c.C);
    if (n->a.offset == 0)
        cw_line(w, "        acc[k] += (double)dy[i] * (x[i] - st[k]) / sqrt(st[%lldL + k] + K(%.17g));",
                c.C, (double)n->a.epsilon);
    else
        cw_line(w, "        acc[k] += dy[i];");
    cw_line(w, "    }");
    cw_line(w, "    for (long k = 0; k < %lldL; k++)", c.C);
    cw_line(w, "        g[k] = (float)acc[k];");
    cw_line(w, "}");
    cw_line(&cg->body, "%sk%d(n, %s, %s, %s, %s);", cg->prefix, cg_id(cg, n), cg_buf(cg, n->in[0]),
            cg_buf(cg, n->in[1]), cg_buf(cg, n->in[2]), cg_buf(cg, n->out));
}
