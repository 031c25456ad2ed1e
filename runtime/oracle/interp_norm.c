/*
 * interp_norm.c — reference kernels of batch normalization in training.
 *
 * Keras 2.15: y = γ(x − μ_B)/√(σ²_B + ε) + β with the batch's mean and
 * biased variance over every axis but the channel axis; the moving
 * statistics become moving·m + batch·(1 − m), where for 4-D inputs the
 * fused kernel Keras uses feeds the Bessel-corrected variance n/(n−1).
 * The gradients are the standard ones of that normalization.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "runtime/oracle/interp.h"

struct chan {
    int64_t C, inner, total, per; /* channels, elements after the axis, all, per channel */
};

static struct chan chan_of(const struct ir_node *n, const nncc_tensor *x, int batch)
{
    struct chan c;
    struct nncc_shape s = x->shape;
    s.dim[0] = batch;
    c.C = s.dim[n->a.axis];
    c.inner = ir_shape_numel(s, n->a.axis + 1);
    c.total = ir_shape_numel(s, 0);
    c.per = c.total / c.C;
    return c;
}

#define CH(i) (((i) / c.inner) % c.C)

/* stats (2, C) = [mean; biased variance] of x per channel. */
void ref_bn_stats(const struct ir_node *n, int batch, const double *const *in, double *out,
                  const double *h)
{
    (void)h;
    struct chan c = chan_of(n, n->in[0], batch);
    double *mean = out, *var = out + c.C;
    memset(out, 0, sizeof *out * (size_t)(2 * c.C));
    for (int64_t i = 0; i < c.total; i++)
        mean[CH(i)] += in[0][i];
    for (int64_t k = 0; k < c.C; k++)
        mean[k] /= (double)c.per;
    for (int64_t i = 0; i < c.total; i++) {
        double d = in[0][i] - mean[CH(i)];
        var[CH(i)] += d * d;
    }
    for (int64_t k = 0; k < c.C; k++)
        var[k] /= (double)c.per;
}

/* y = γ(x − mean)/√(var + ε) + β; inputs (x, stats, [gamma], [beta]). */
void ref_bn_train(const struct ir_node *n, int batch, const double *const *in, double *out,
                  const double *h)
{
    (void)h;
    struct chan c = chan_of(n, n->in[0], batch);
    const double *mean = in[1], *var = in[1] + c.C;
    const double *gamma = n->a.has_gamma ? in[2] : NULL;
    const double *beta = n->a.has_beta ? in[2 + n->a.has_gamma] : NULL;
    for (int64_t i = 0; i < c.total; i++) {
        int64_t k = CH(i);
        double y = (in[0][i] - mean[k]) / sqrt(var[k] + (double)n->a.epsilon);
        out[i] = y * (gamma ? gamma[k] : 1.0) + (beta ? beta[k] : 0.0);
    }
}

/* moving = moving·m + batch·(1 − m), in place; inputs (moving_mean,
 * moving_variance, stats).  The batch count comes from attrs.size. */
void ref_bn_moving(const struct ir_node *n, int batch, const double *const *in, double *out,
                   const double *h)
{
    (void)h;
    int64_t C = n->in[0]->shape.dim[0];
    double m = n->a.momentum, per = (double)n->a.size * batch;
    double cm = (float)(1 - ir_decimal(n->a.momentum)); /* Keras' 1 − momentum */
    double *mm = (double *)in[0], *mv = (double *)in[1];
    const double *mean = in[2], *var = in[2] + C;
    for (int64_t k = 0; k < C; k++) {
        double v = var[k];
        if (n->a.bessel && per > 1)
            v *= per / (per - 1);
        mm[k] = mm[k] * m + mean[k] * cm;
        mv[k] = mv[k] * m + v * cm;
    }
    out[0] = 0;
}

/* dx = γ·inv/N · (N·dy − Σdy − x̂·Σ(dy·x̂)); inputs (dy, x, stats, [gamma]). */
void ref_bn_grad(const struct ir_node *n, int batch, const double *const *in, double *out,
                 const double *h)
{
    (void)h;
    struct chan c = chan_of(n, n->in[1], batch);
    const double *dy = in[0], *x = in[1], *mean = in[2], *var = in[2] + c.C;
    const double *gamma = n->a.has_gamma ? in[3] : NULL;
    double *sdy = calloc((size_t)(2 * c.C), sizeof *sdy), *sdyx = sdy + c.C;
    NNCC_ASSERT(sdy != NULL); /* the oracle runs on small test models */
    for (int64_t i = 0; i < c.total; i++) {
        int64_t k = CH(i);
        double xh = (x[i] - mean[k]) / sqrt(var[k] + (double)n->a.epsilon);
        sdy[k] += dy[i];
        sdyx[k] += dy[i] * xh;
    }
    double N = (double)c.per;
    for (int64_t i = 0; i < c.total; i++) {
        int64_t k = CH(i);
        double inv = 1 / sqrt(var[k] + (double)n->a.epsilon);
        double xh = (x[i] - mean[k]) * inv;
        out[i] = (gamma ? gamma[k] : 1.0) * inv / N * (N * dy[i] - sdy[k] - xh * sdyx[k]);
    }
    free(sdy);
}

/* dγ = Σ dy·x̂ (offset 0) or dβ = Σ dy (offset 1); inputs (dy, x, stats). */
void ref_bn_param_grad(const struct ir_node *n, int batch, const double *const *in, double *out,
                       const double *h)
{
    (void)h;
    struct chan c = chan_of(n, n->in[1], batch);
    const double *mean = in[2], *var = in[2] + c.C;
    memset(out, 0, sizeof *out * (size_t)c.C);
    for (int64_t i = 0; i < c.total; i++) {
        int64_t k = CH(i);
        double xh = (in[1][i] - mean[k]) / sqrt(var[k] + (double)n->a.epsilon);
        out[k] += n->a.offset == 0 ? in[0][i] * xh : in[0][i];
    }
}
