/*
 * interp_train.c — reference kernels of the training ops: gradients, the
 * losses, metrics and optimizer updates, in double with naive loops.
 *
 * The formulas are Keras 2.15's (see ../shared/reference/keras-behaviour.md):
 * losses reduce the last axis and average over everything else
 * (sum_over_batch_size), cross-entropies clip to [ε, 1−ε] with ε = 1e-7
 * unless they take logits, and the optimizers follow keras/optimizers/
 * step for step (clipping, then the update; the step count t starts at 1).
 * Gradients follow TensorFlow's kernels where a choice exists (the maximum
 * of a pooling window is its first maximal cell).
 */
#include <math.h>
#include <string.h>
#include "runtime/oracle/interp.h"
#include "ir/eltwise.h"
#include "ir/dropout_rng.h"

NNCC_DROPOUT_RNG_SRC

#define EPS 1e-7

static int64_t per_sample(const nncc_tensor *t) { return ir_shape_numel(t->shape, 1); }

static int64_t count(const nncc_tensor *t, int batch)
{
    return t->batched ? batch * per_sample(t) : ir_shape_numel(t->shape, 0);
}

/* dx (rows, K) = dy (rows, N) · wᵀ, w (K, N) */
void ref_matmul_nt(const struct ir_node *n, int batch, const double *const *in, double *out,
                   const double *h)
{
    (void)h;
    int64_t K = n->in[1]->shape.dim[0], N = n->in[1]->shape.dim[1];
    int64_t rows = count(n->in[0], batch) / N;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < K; k++) {
            double acc = 0;
            for (int64_t j = 0; j < N; j++)
                acc += in[0][r * N + j] * in[1][k * N + j];
            out[r * K + k] = acc;
        }
}

/* dw (K, N) = Σ_rows xᵀ · dy */
void ref_matmul_tn(const struct ir_node *n, int batch, const double *const *in, double *out,
                   const double *h)
{
    (void)h;
    int64_t K = n->out->shape.dim[0], N = n->out->shape.dim[1];
    int64_t rows = count(n->in[0], batch) / K;
    for (int64_t k = 0; k < K; k++)
        for (int64_t j = 0; j < N; j++) {
            double acc = 0;
            for (int64_t r = 0; r < rows; r++)
                acc += in[0][r * K + k] * in[1][r * N + j];
            out[k * N + j] = acc;
        }
}

/* db (C) = Σ_rows dy */
void ref_bias_grad(const struct ir_node *n, int batch, const double *const *in, double *out,
                   const double *h)
{
    (void)h;
    int64_t C = n->out->shape.dim[0], rows = count(n->in[0], batch) / C;
    for (int64_t c = 0; c < C; c++) {
        double acc = 0;
        for (int64_t r = 0; r < rows; r++)
            acc += in[0][r * C + c];
        out[c] = acc;
    }
}

static double deriv(enum nncc_activation a, double v, double y)
{
#define K(x) ((double)(x))
    switch (a) {
#define ACT(id, name, expr, d) case NNCC_##id: return d;
#include "ir/activations.def"
#undef ACT
    default: break;
    }
#undef K
    NNCC_ASSERT(!"unknown activation");
    return 0;
}

/* dx = dy · f'(x), inputs (dy, x, y) */
void ref_activation_grad(const struct ir_node *n, int batch, const double *const *in,
                         double *out, const double *h)
{
    (void)h;
    int64_t total = count(n->out, batch);
    for (int64_t i = 0; i < total; i++)
        out[i] = in[0][i] * deriv(n->a.act, in[1][i], in[2][i]);
}

/* ACTIVATION_ALPHA's gradient, inputs (dy, x): dy where x > 0, else
 * α·dy (LeakyReLU) or α·eˣ·dy (ELU); at x = 0 the α branch, as TF's
 * LeakyReluGrad and Keras' ELU (tf.where(x > 0, …)) take it. */
void ref_activation_alpha_grad(const struct ir_node *n, int batch, const double *const *in,
                               double *out, const double *h)
{
    (void)h;
    double alpha = n->a.alpha;
    int64_t total = count(n->out, batch);
    for (int64_t i = 0; i < total; i++) {
        double dy = in[0][i], x = in[1][i];
        out[i] = x > 0 ? dy : n->a.act == NNCC_ELU ? alpha * exp(x) * dy : alpha * dy;
    }
}

/* dx = y · (dy − Σ dy·y), the sum along the softmax's axis (ir/eltwise.h;
 * the last by default); inputs (dy, y) */
void ref_softmax_grad(const struct ir_node *n, int batch, const double *const *in, double *out,
                      const double *h)
{
    (void)h;
    struct nncc_shape s = n->out->shape;
    if (n->out->batched)
        s.dim[0] = batch;
    int axis = ir_softmax_axis(n);
    int64_t C = s.dim[axis], inner = ir_shape_numel(s, axis + 1);
    int64_t outer = ir_shape_numel(s, 0) / (C * inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < inner; k++) {
            int64_t base = o * C * inner + k;
            const double *dy = in[0] + base, *y = in[1] + base;
            double dot = 0;
            for (int64_t c = 0; c < C; c++)
                dot += dy[c * inner] * y[c * inner];
            for (int64_t c = 0; c < C; c++)
                out[base + c * inner] = y[c * inner] * (dy[c * inner] - dot);
        }
}

/* dx[b, ih, iw, c] = Σ dy[b, oh, ow, f] · w[kh, kw, c mod C/G, f] over the
 * taps that read (ih, iw) and the f of c's group; inputs (dy, w).  Also
 * CONV2D_TRANSPOSE's forward (x in dy's place, its output in dx's). */
void ref_conv2d_grad_input(const struct ir_node *n, int batch, const double *const *in,
                           double *out, const double *h)
{
    (void)h;
    const struct ir_attrs *a = &n->a;
    const int64_t *xd = n->out->shape.dim, *yd = n->in[0]->shape.dim, *wd = n->in[1]->shape.dim;
    int64_t H = xd[1], W = xd[2], C = xd[3], OH = yd[1], OW = yd[2], F = yd[3];
    int64_t KH = wd[0], KW = wd[1], G = a->groups > 1 ? a->groups : 1, Cg = C / G, Fg = F / G;
    memset(out, 0, sizeof *out * (size_t)count(n->out, batch));
    for (int64_t b = 0; b < batch; b++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++)
                for (int64_t kh = 0; kh < KH; kh++) {
                    int64_t ih = oh * a->stride[0] - a->pad[0] + kh * a->dilation[0];
                    if (ih < 0 || ih >= H)
                        continue;
                    for (int64_t kw = 0; kw < KW; kw++) {
                        int64_t iw = ow * a->stride[1] - a->pad[2] + kw * a->dilation[1];
                        if (iw < 0 || iw >= W)
                            continue;
                        for (int64_t c = 0; c < C; c++) {
                            double acc = 0;
                            int64_t f0 = c / Cg * Fg;
                            for (int64_t f = f0; f < f0 + Fg; f++)
                                acc += in[0][((b * OH + oh) * OW + ow) * F + f] *
                                       in[1][((kh * KW + kw) * Cg + c % Cg) * F + f];
                            out[((b * H + ih) * W + iw) * C + c] += acc;
                        }
                    }
                }
}

/* dw[kh, kw, c, f] = Σ x[b, ih, iw, c0 + c] · dy[b, oh, ow, f], c0 the first
 * input channel of f's group; inputs (x, dy). */
void ref_conv2d_grad_filter(const struct ir_node *n, int batch, const double *const *in,
                            double *out, const double *h)
{
    (void)h;
    const struct ir_attrs *a = &n->a;
    const int64_t *xd = n->in[0]->shape.dim, *yd = n->in[1]->shape.dim, *wd = n->out->shape.dim;
    int64_t H = xd[1], W = xd[2], C = xd[3], OH = yd[1], OW = yd[2], F = yd[3];
    int64_t KH = wd[0], KW = wd[1], G = a->groups > 1 ? a->groups : 1, Cg = C / G, Fg = F / G;
    memset(out, 0, sizeof *out * (size_t)count(n->out, batch));
    for (int64_t b = 0; b < batch; b++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++)
                for (int64_t kh = 0; kh < KH; kh++) {
                    int64_t ih = oh * a->stride[0] - a->pad[0] + kh * a->dilation[0];
                    if (ih < 0 || ih >= H)
                        continue;
                    for (int64_t kw = 0; kw < KW; kw++) {
                        int64_t iw = ow * a->stride[1] - a->pad[2] + kw * a->dilation[1];
                        if (iw < 0 || iw >= W)
                            continue;
                        for (int64_t c = 0; c < Cg; c++)
                            for (int64_t f = 0; f < F; f++)
                                out[((kh * KW + kw) * Cg + c) * F + f] +=
                                    in[0][((b * H + ih) * W + iw) * C + f / Fg * Cg + c] *
                                    in[1][((b * OH + oh) * OW + ow) * F + f];
                    }
                }
}

/* Max: dy goes to the window's cell the argmax input names (its first
 * maximum); average: dy/count to every real cell, count as the forward
 * divides (ref_pool2d).  Inputs (dy, x, y), and the argmax for max
 * pooling. */
void ref_pool2d_grad(const struct ir_node *n, int batch, const double *const *in, double *out,
                     const double *h)
{
    (void)h;
    const struct ir_attrs *a = &n->a;
    const int64_t *xd = n->out->shape.dim, *yd = n->in[0]->shape.dim;
    int64_t H = xd[1], W = xd[2], C = xd[3], OH = yd[1], OW = yd[2];
    int64_t KH = a->kernel[0], KW = a->kernel[1], dh = a->dilation[0], dw = a->dilation[1];
    bool incl = a->count_include_pad && !a->pool_max;
    memset(out, 0, sizeof *out * (size_t)count(n->out, batch));
    for (int64_t b = 0; b < batch; b++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++)
                for (int64_t c = 0; c < C; c++) {
                    int64_t o = ((b * OH + oh) * OW + ow) * C + c;
                    int64_t h0 = oh * a->stride[0] - a->pad[0], w0 = ow * a->stride[1] - a->pad[2];
                    int64_t cells = 0, arg = -1;
                    for (int64_t kh = 0; kh < KH; kh++)
                        for (int64_t kw = 0; kw < KW; kw++) {
                            int64_t ih = h0 + kh * dh, iw = w0 + kw * dw;
                            if (incl && ih < H + a->pad[1] && iw < W + a->pad[3])
                                cells++;
                            if (ih < 0 || ih >= H || iw < 0 || iw >= W)
                                continue;
                            int64_t xi = ((b * H + ih) * W + iw) * C + c;
                            cells += !incl;
                            if (a->pool_max && /* the window's cell pool_argmax kept */
                                kh * KW + kw == (int64_t)in[3][o])
                                arg = xi;
                        }
                    if (a->pool_max) {
                        if (arg >= 0)
                            out[arg] += in[0][o];
                        continue;
                    }
                    for (int64_t kh = 0; kh < KH; kh++)
                        for (int64_t kw = 0; kw < KW; kw++) {
                            int64_t ih = h0 + kh * dh, iw = w0 + kw * dw;
                            if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                                out[((b * H + ih) * W + iw) * C + c] += in[0][o] / (double)cells;
                        }
                }
}

/* Which cell of each max-pooling window holds its maximum, the first in
 * window order (row-major over the window's taps, padding included): the
 * tap index kh·KW + kw, as the pooling gradient reads it. */
void ref_pool_argmax(const struct ir_node *n, int batch, const double *const *in, double *out,
                     const double *h)
{
    (void)h;
    const struct ir_attrs *a = &n->a;
    const int64_t *xd = n->in[0]->shape.dim, *yd = n->out->shape.dim;
    int64_t H = xd[1], W = xd[2], C = xd[3], OH = yd[1], OW = yd[2];
    int64_t KH = a->kernel[0], KW = a->kernel[1], dh = a->dilation[0], dw = a->dilation[1];
    for (int64_t b = 0; b < batch; b++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++)
                for (int64_t c = 0; c < C; c++) {
                    int64_t h0 = oh * a->stride[0] - a->pad[0], w0 = ow * a->stride[1] - a->pad[2];
                    /* The pooling's own comparison (NaN never wins); a
                     * window of −∞ (or NaN) keeps its first real cell. */
                    double best = -INFINITY;
                    int64_t arg = -1;
                    for (int64_t kh = 0; kh < KH; kh++)
                        for (int64_t kw = 0; kw < KW; kw++) {
                            int64_t ih = h0 + kh * dh, iw = w0 + kw * dw;
                            if (ih < 0 || ih >= H || iw < 0 || iw >= W)
                                continue;
                            double v = in[0][((b * H + ih) * W + iw) * C + c];
                            if (arg < 0)
                                arg = kh * KW + kw;
                            if (v > best) {
                                best = v;
                                arg = kh * KW + kw;
                            }
                        }
                    out[((b * OH + oh) * OW + ow) * C + c] = (double)arg;
                }
}

/* Average: dx[b, h, w, c] = dy[b, c] / (H·W); max (a.pool_max): dy[b, c]
 * to the first maximal cell of channel c, 0 elsewhere.  Inputs (dy, x). */
void ref_global_pool2d_grad(const struct ir_node *n, int batch, const double *const *in,
                            double *out, const double *h)
{
    (void)h;
    const int64_t *xd = n->out->shape.dim;
    int64_t HW = xd[1] * xd[2], C = xd[3];
    for (int64_t b = 0; b < batch; b++)
        for (int64_t c = 0; c < C; c++) {
            int64_t arg = 0;
            double best = -INFINITY;
            for (int64_t i = 0; i < HW; i++) {
                double v = in[1][(b * HW + i) * C + c];
                if (n->a.pool_max && v > best)
                    best = v, arg = i;
            }
            for (int64_t i = 0; i < HW; i++)
                out[(b * HW + i) * C + c] =
                    n->a.pool_max ? (i == arg ? in[0][b * C + c] : 0.0) : in[0][b * C + c] / (double)HW;
        }
}

/* y = x · mask / (1 − rate), the mask drawn from (step seed, node key, i);
 * DROPOUT_GRAD applies the same mask to dy. */
void ref_dropout_train(const struct ir_node *n, int batch, const double *const *in, double *out,
                       const double *h)
{
    int64_t total = count(n->out, batch);
    unsigned long long seed = (unsigned long long)h[IR_HYPER_SEED];
    unsigned long long thr = NNCC_DROPOUT_THRESHOLD(n->a.rate);
    double scale = 1.0 / (1.0 - ir_decimal(n->a.rate)); /* Keras: from the decimal rate */
    for (int64_t i = 0; i < total; i++)
        out[i] = nncc_keep(seed, n->a.seed, (long)i, thr) ? in[0][i] * scale : 0.0;
}

/* The gradient of a broadcasting Add for one input: dy summed over the
 * dims the input broadcast (dim 0 is the batch; others align right). */
void ref_sum_to(const struct ir_node *n, int batch, const double *const *in, double *out,
                const double *h)
{
    (void)h;
    struct nncc_shape ys = n->in[0]->shape, xs = n->out->shape;
    ys.dim[0] = batch;
    memset(out, 0, sizeof *out * (size_t)count(n->out, batch));
    int64_t total = ir_shape_numel(ys, 0);
    for (int64_t i = 0; i < total; i++) {
        int64_t rem = i, idx = 0, stride = 1;
        for (int d = ys.rank - 1; d >= 0; d--) {
            int64_t coord = rem % ys.dim[d];
            rem /= ys.dim[d];
            int xd = d == 0 ? 0 : d - (ys.rank - xs.rank);
            if (xd < 0 || (xd == 0 && d != 0))
                continue;
            int64_t size = xd == 0 ? batch : xs.dim[xd];
            idx += (size == 1 && ys.dim[d] != 1 ? 0 : coord) * stride;
            stride *= size;
        }
        out[idx] += in[0][i];
    }
}

/* The gradient of Concatenate for one input: its part of dy along axis. */
void ref_slice(const struct ir_node *n, int batch, const double *const *in, double *out,
               const double *h)
{
    (void)h;
    int axis = n->a.axis;
    struct nncc_shape ys = n->in[0]->shape;
    ys.dim[0] = batch;
    int64_t inner = ir_shape_numel(ys, axis + 1), yrow = ir_shape_numel(ys, axis);
    int64_t outer = ir_shape_numel(ys, 0) / yrow, row = n->a.size * inner;
    for (int64_t o = 0; o < outer; o++)
        memcpy(out + o * row, in[0] + o * yrow + n->a.offset * inner, sizeof *out * (size_t)row);
}

/* ---- Losses ------------------------------------------------------------ */

static double clip(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Rows are everything but the last axis: Keras averages over them. */
static void loss_dims(const struct ir_node *n, int batch, int64_t *rows, int64_t *C)
{
    struct nncc_shape s = n->in[0]->shape;
    *C = s.dim[s.rank - 1];
    *rows = count(n->in[0], batch) / *C;
}

/* One row's loss: pred (or logits) z, target t (a class index for sparse). */
static double row_loss(const struct ir_attrs *a, const double *z, const double *t, int64_t C)
{
    double l = 0;
    switch (a->loss) {
    case NNCC_MEAN_SQUARED_ERROR:
        for (int64_t c = 0; c < C; c++)
            l += (z[c] - t[c]) * (z[c] - t[c]);
        return l / (double)C;
    case NNCC_MEAN_ABSOLUTE_ERROR:
        for (int64_t c = 0; c < C; c++)
            l += fabs(z[c] - t[c]);
        return l / (double)C;
    case NNCC_BINARY_CROSSENTROPY:
        for (int64_t c = 0; c < C; c++) {
            if (a->logits) {
                l += (z[c] > 0 ? z[c] : 0) - z[c] * t[c] + log1p(exp(-fabs(z[c])));
            } else {
                double p = clip(z[c], EPS, 1 - EPS);
                l += -(t[c] * log(p + EPS) + (1 - t[c]) * log(1 - p + EPS));
            }
        }
        return l / (double)C;
    case NNCC_CATEGORICAL_CROSSENTROPY:
        if (a->logits) {
            double mx = z[0], sum = 0, ty = 0;
            for (int64_t c = 1; c < C; c++)
                mx = z[c] > mx ? z[c] : mx;
            for (int64_t c = 0; c < C; c++)
                sum += exp(z[c] - mx);
            double lse = mx + log(sum);
            for (int64_t c = 0; c < C; c++) {
                l -= t[c] * z[c];
                ty += t[c];
            }
            return l + ty * lse;
        } else {
            double s = 0;
            for (int64_t c = 0; c < C; c++)
                s += z[c];
            for (int64_t c = 0; c < C; c++)
                l -= t[c] * log(clip(z[c] / s, EPS, 1 - EPS));
            return l;
        }
    case NNCC_SPARSE_CATEGORICAL_CROSSENTROPY: {
        int64_t k = (int64_t)t[0];
        if (a->logits) {
            double mx = z[0], sum = 0;
            for (int64_t c = 1; c < C; c++)
                mx = z[c] > mx ? z[c] : mx;
            for (int64_t c = 0; c < C; c++)
                sum += exp(z[c] - mx);
            return mx + log(sum) - z[k];
        }
        double s = 0;
        for (int64_t c = 0; c < C; c++)
            s += clip(z[c], EPS, 1 - EPS);
        return -log(clip(z[k], EPS, 1 - EPS) / s);
    }
    case NNCC_LOSS_NONE:
        break;
    }
    NNCC_ASSERT(!"unknown loss");
    return 0;
}

/* Target elements per row: C, or 1 class index for the sparse loss. */
static int64_t target_width(const struct ir_attrs *a, int64_t C)
{
    return a->loss == NNCC_SPARSE_CATEGORICAL_CROSSENTROPY ? 1 : C;
}

/* The loss value: the mean over rows of the per-row loss. */
void ref_loss(const struct ir_node *n, int batch, const double *const *in, double *out,
              const double *h)
{
    (void)h;
    int64_t rows, C;
    loss_dims(n, batch, &rows, &C);
    int64_t tw = target_width(&n->a, C);
    double sum = 0;
    for (int64_t r = 0; r < rows; r++)
        sum += row_loss(&n->a, in[0] + r * C, in[1] + r * tw, C);
    out[0] = sum / (double)rows;
}

/* d(mean loss)/d(input 0): the prediction, or the logits on the stable
 * path (where it is softmax/sigmoid minus the target, the fused p − y). */
void ref_loss_grad(const struct ir_node *n, int batch, const double *const *in, double *out,
                   const double *h)
{
    (void)h;
    const struct ir_attrs *a = &n->a;
    int64_t rows, C;
    loss_dims(n, batch, &rows, &C);
    int64_t tw = target_width(a, C);
    double R = (double)rows;
    for (int64_t r = 0; r < rows; r++) {
        const double *z = in[0] + r * C, *t = in[1] + r * tw;
        double *g = out + r * C;
        switch (a->loss) {
        case NNCC_MEAN_SQUARED_ERROR:
            for (int64_t c = 0; c < C; c++)
                g[c] = 2 * (z[c] - t[c]) / (R * (double)C);
            break;
        case NNCC_MEAN_ABSOLUTE_ERROR:
            for (int64_t c = 0; c < C; c++) {
                double d = z[c] - t[c];
                g[c] = (d > 0 ? 1.0 : d < 0 ? -1.0 : 0.0) / (R * (double)C);
            }
            break;
        case NNCC_BINARY_CROSSENTROPY:
            for (int64_t c = 0; c < C; c++) {
                if (a->logits) {
                    g[c] = (1 / (1 + exp(-z[c])) - t[c]) / (R * (double)C);
                } else {
                    bool inside = z[c] >= EPS && z[c] <= 1 - EPS;
                    double p = clip(z[c], EPS, 1 - EPS);
                    g[c] = inside ? (-t[c] / (p + EPS) + (1 - t[c]) / (1 - p + EPS)) /
                                        (R * (double)C)
                                  : 0.0;
                }
            }
            break;
        case NNCC_CATEGORICAL_CROSSENTROPY:
            if (a->logits) {
                double mx = z[0], sum = 0, ty = 0;
                for (int64_t c = 1; c < C; c++)
                    mx = z[c] > mx ? z[c] : mx;
                for (int64_t c = 0; c < C; c++) {
                    sum += exp(z[c] - mx);
                    ty += t[c];
                }
                for (int64_t c = 0; c < C; c++)
                    g[c] = (exp(z[c] - mx) / sum * ty - t[c]) / R;
            } else {
                /* L = −Σ y_c log clip(ŷ_c / S); the clip passes gradient
                 * only inside [ε, 1 − ε]. */
                double S = 0, common = 0;
                for (int64_t c = 0; c < C; c++)
                    S += z[c];
                for (int64_t c = 0; c < C; c++) {
                    double q = z[c] / S;
                    if (q >= EPS && q <= 1 - EPS)
                        common += t[c] * z[c] / q;
                }
                for (int64_t c = 0; c < C; c++) {
                    double q = z[c] / S;
                    double own = q >= EPS && q <= 1 - EPS ? t[c] / q : 0.0;
                    g[c] = (-own / S + common / (S * S)) / R;
                }
            }
            break;
        case NNCC_SPARSE_CATEGORICAL_CROSSENTROPY: {
            int64_t k = (int64_t)t[0];
            if (a->logits) {
                double mx = z[0], sum = 0;
                for (int64_t c = 1; c < C; c++)
                    mx = z[c] > mx ? z[c] : mx;
                for (int64_t c = 0; c < C; c++)
                    sum += exp(z[c] - mx);
                for (int64_t c = 0; c < C; c++)
                    g[c] = (exp(z[c] - mx) / sum - (c == k)) / R;
            } else {
                /* L = −log p_k + log Σ p, p = clip(ŷ). */
                double s = 0;
                for (int64_t c = 0; c < C; c++)
                    s += clip(z[c], EPS, 1 - EPS);
                for (int64_t c = 0; c < C; c++) {
                    bool inside = z[c] >= EPS && z[c] <= 1 - EPS;
                    double p = clip(z[c], EPS, 1 - EPS);
                    g[c] = inside ? ((c == k ? -1 / p : 0.0) + 1 / s) / R : 0.0;
                }
            }
            break;
        }
        case NNCC_LOSS_NONE:
            NNCC_ASSERT(!"unknown loss");
        }
    }
}

/* ---- Metrics ----------------------------------------------------------- */

static int64_t argmax(const double *v, int64_t C)
{
    int64_t best = 0;
    for (int64_t c = 1; c < C; c++)
        if (v[c] > v[best])
            best = c;
    return best;
}

/* The batch's metric value (a mean over its rows); inputs (pred, target). */
void ref_metric(const struct ir_node *n, int batch, const double *const *in, double *out,
                const double *h)
{
    (void)h;
    struct nncc_shape s = n->in[0]->shape;
    int64_t C = s.dim[s.rank - 1], rows = count(n->in[0], batch) / C;
    const double *p = in[0], *t = in[1];
    double sum = 0;
    switch (n->a.metric) {
    case IR_METRIC_BINARY_ACCURACY:
        for (int64_t i = 0; i < rows * C; i++)
            sum += t[i] == (p[i] > 0.5 ? 1.0 : 0.0);
        out[0] = sum / (double)(rows * C);
        return;
    case IR_METRIC_CATEGORICAL_ACCURACY:
        for (int64_t r = 0; r < rows; r++)
            sum += argmax(p + r * C, C) == argmax(t + r * C, C);
        break;
    case IR_METRIC_SPARSE_ACCURACY:
        for (int64_t r = 0; r < rows; r++)
            sum += (double)argmax(p + r * C, C) == t[r];
        break;
    case IR_METRIC_MSE:
    case IR_METRIC_MAE:
        for (int64_t i = 0; i < rows * C; i++) {
            double d = p[i] - t[i];
            sum += n->a.metric == IR_METRIC_MSE ? d * d : fabs(d);
        }
        out[0] = sum / (double)(rows * C);
        return;
    }
    out[0] = sum / (double)rows;
}

/* ---- Optimizers -------------------------------------------------------- */

void ref_global_norm(const struct ir_node *n, int batch, const double *const *in, double *out,
                     const double *h)
{
    (void)h;
    double sum = 0;
    for (int k = 0; k < n->n_in; k++) {
        int64_t c = count(n->in[k], batch);
        for (int64_t i = 0; i < c; i++)
            sum += in[k][i] * in[k][i];
    }
    out[0] = sqrt(sum);
}

/* Inputs (param, grad, slots…, [global norm]); writes param and slots in
 * place (their buffers are the interpreter's copies, stored back after the
 * step). */
void ref_update(const struct ir_node *n, int batch, const double *const *in, double *out,
                const double *h)
{
    const struct nncc_optimizer *o = &n->a.opt;
    int64_t size = count(n->in[0], batch);
    double *w = (double *)in[0];
    double *s0 = n->a.n_slots > 0 ? (double *)in[2] : NULL;
    double *s1 = n->a.n_slots > 1 ? (double *)in[3] : NULL;
    double *s2 = n->a.n_slots > 2 ? (double *)in[4] : NULL;
    double lr = h[IR_HYPER_LR], t = h[IR_HYPER_STEP];
    /* (1) clipping */
    double scale = 1;
    if (o->clipnorm > 0) {
        double sq = 0;
        for (int64_t i = 0; i < size; i++)
            sq += in[1][i] * in[1][i];
        double norm = sqrt(sq);
        scale = o->clipnorm / (norm > o->clipnorm ? norm : o->clipnorm);
    }
    if (n->a.global_norm) {
        double norm = in[n->n_in - 1][0];
        scale = o->global_clipnorm / (norm > o->global_clipnorm ? norm : o->global_clipnorm);
    }
    double b1 = o->beta_1, b2 = o->beta_2, eps = o->epsilon;
    /* Keras' 1 − β from the decimal β (see ir_decimal), rounded to float. */
    double c1 = (float)(1 - ir_decimal(o->beta_1)), c2 = (float)(1 - ir_decimal(o->beta_2));
    double crho = (float)(1 - ir_decimal(o->rho));
    double alpha = lr * sqrt(1 - pow(b2, t)) / (1 - pow(b1, t));
    for (int64_t i = 0; i < size; i++) {
        double g = in[1][i] * scale;
        if (o->clipvalue > 0)
            g = clip(g, -o->clipvalue, o->clipvalue);
        switch (o->kind) {
        case NNCC_SGD:
            if (s0) {
                s0[i] = -g * lr + s0[i] * o->momentum;
                w[i] += o->nesterov ? -g * lr + s0[i] * o->momentum : s0[i];
            } else {
                w[i] -= lr * g;
            }
            break;
        case NNCC_ADAM: {
            s0[i] += (g - s0[i]) * c1;
            s1[i] += (g * g - s1[i]) * c2;
            double v = s1[i];
            if (o->amsgrad) {
                s2[i] = s2[i] > v ? s2[i] : v;
                v = s2[i];
            }
            w[i] -= s0[i] * alpha / (sqrt(v) + eps);
            break;
        }
        case NNCC_ADAGRAD:
            s0[i] += g * g;
            w[i] -= lr * g / sqrt(s0[i] + eps);
            break;
        case NNCC_RMSPROP: {
            double rho = o->rho;
            s0[i] = rho * s0[i] + crho * g * g;
            double denom = s0[i] + eps;
            double *mom = o->momentum > 0 ? s1 : NULL;
            double *avg = o->centered ? (o->momentum > 0 ? s2 : s1) : NULL;
            if (avg) {
                avg[i] = rho * avg[i] + crho * g;
                denom = s0[i] - avg[i] * avg[i] + eps;
            }
            double inc = lr * g / sqrt(denom);
            if (mom) {
                mom[i] = o->momentum * mom[i] + inc;
                w[i] -= mom[i];
            } else {
                w[i] -= inc;
            }
            break;
        }
        case NNCC_OPTIMIZER_DEFAULT:
            NNCC_ASSERT(!"optimizer defaults are resolved by compile");
        }
    }
    out[0] = 0;
}
