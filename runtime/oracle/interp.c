/*
 * interp.c — the reference interpreter: the unscheduled IR executed with
 * naive loops and double accumulation.  It is the oracle every generated
 * kernel is tested against, now and after the optimizing passes land, so
 * it stays simple: one plain loop nest per op, formulas written as Keras
 * documents them, no layout tricks.  Inference mode: dropout is the
 * identity, batch normalization uses the moving statistics.
 *
 * Every value gets a double buffer of batch × (its per-sample size);
 * parameters are converted from their float values.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "runtime/oracle/interp.h"
#include "ir/eltwise.h"

/* Per-sample element count of a value (its dims after the batch). */
static int64_t per_sample(const nncc_tensor *t) { return ir_shape_numel(t->shape, 1); }

/* ---- Kernels (one per op, in ops.def order) ----------------------------- */

void ref_leaf(const struct ir_node *n, int batch, const double *const *in, double *out,
                const double *h)
{
    (void)h;
    (void)n, (void)batch, (void)in, (void)out;
    NNCC_ASSERT(!"inputs and parameters are not computed");
}

void ref_view(const struct ir_node *n, int batch, const double *const *in, double *out,
                const double *h)
{
    (void)h;
    memcpy(out, in[0], sizeof *out * (size_t)(batch * per_sample(n->out)));
}

/* y (rows, N) = x (rows, K) · w (K, N) */
void ref_matmul(const struct ir_node *n, int batch, const double *const *in, double *out,
                const double *h)
{
    (void)h;
    int64_t K = n->in[1]->shape.dim[0], N = n->in[1]->shape.dim[1];
    int64_t rows = batch * per_sample(n->in[0]) / K;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < N; j++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++)
                acc += in[0][i * K + k] * in[1][k * N + j];
            out[i * N + j] = acc;
        }
}

void ref_bias_add(const struct ir_node *n, int batch, const double *const *in, double *out,
                const double *h)
{
    (void)h;
    int64_t C = n->in[1]->shape.dim[0], total = batch * per_sample(n->out);
    for (int64_t i = 0; i < total; i++)
        out[i] = in[0][i] + in[1][i % C];
}

static double act(enum nncc_activation a, double v)
{
#define K(x) ((double)(x))
    switch (a) {
#define ACT(id, name, expr, deriv) case NNCC_##id: return expr;
#include "ir/activations.def"
#undef ACT
    default: break;
    }
#undef K
    NNCC_ASSERT(!"unknown activation");
    return v;
}

void ref_activation(const struct ir_node *n, int batch, const double *const *in, double *out,
                const double *h)
{
    (void)h;
    int64_t total = batch * per_sample(n->out);
    for (int64_t i = 0; i < total; i++)
        out[i] = act(n->a.act, in[0][i]);
}

/* LeakyReLU: x > 0 ? x : αx; ELU: x > 0 ? x : α(eˣ − 1) (Keras 2.15's
 * layers; α is the float32 the layer holds). */
void ref_activation_alpha(const struct ir_node *n, int batch, const double *const *in,
                          double *out, const double *h)
{
    (void)h;
    double alpha = n->a.alpha;
    int64_t total = batch * per_sample(n->out);
    for (int64_t i = 0; i < total; i++) {
        double x = in[0][i];
        out[i] = x > 0 ? x : n->a.act == NNCC_ELU ? alpha * expm1(x) : alpha * x;
    }
}

/* softmax along its axis (ir/eltwise.h; the last by default):
 * e^{x − max} / Σ over that axis, for every (outer, inner) position. */
void ref_softmax(const struct ir_node *n, int batch, const double *const *in, double *out,
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
            const double *x = in[0] + o * C * inner + k;
            double *y = out + o * C * inner + k, mx = x[0], sum = 0;
            for (int64_t c = 1; c < C; c++)
                mx = x[c * inner] > mx ? x[c * inner] : mx;
            for (int64_t c = 0; c < C; c++)
                sum += y[c * inner] = exp(x[c * inner] - mx);
            for (int64_t c = 0; c < C; c++)
                y[c * inner] /= sum;
        }
}

/* Cross-correlation, NHWC, kernel (KH, KW, C/G, F) in G groups (output
 * channel f of group f / (F/G) reads that group's C/G input channels);
 * padded cells are zero. */
void ref_conv2d(const struct ir_node *n, int batch, const double *const *in, double *out,
                const double *h)
{
    (void)h;
    const struct ir_attrs *a = &n->a;
    const int64_t *xd = n->in[0]->shape.dim, *yd = n->out->shape.dim, *wd = n->in[1]->shape.dim;
    int64_t H = xd[1], W = xd[2], C = xd[3], OH = yd[1], OW = yd[2], F = yd[3];
    int64_t KH = wd[0], KW = wd[1], G = a->groups > 1 ? a->groups : 1, Cg = C / G, Fg = F / G;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++)
                for (int64_t f = 0; f < F; f++) {
                    double acc = 0;
                    int64_t c0 = f / Fg * Cg;
                    for (int64_t kh = 0; kh < KH; kh++) {
                        int64_t ih = oh * a->stride[0] - a->pad[0] + kh * a->dilation[0];
                        if (ih < 0 || ih >= H)
                            continue;
                        for (int64_t kw = 0; kw < KW; kw++) {
                            int64_t iw = ow * a->stride[1] - a->pad[2] + kw * a->dilation[1];
                            if (iw < 0 || iw >= W)
                                continue;
                            for (int64_t c = 0; c < Cg; c++)
                                acc += in[0][((b * H + ih) * W + iw) * C + c0 + c] *
                                       in[1][((kh * KW + kw) * Cg + c) * F + f];
                        }
                    }
                    out[((b * OH + oh) * OW + ow) * F + f] = acc;
                }
}

/* Max pooling ignores padded cells (−∞); average pooling divides by the
 * number of real cells in the window (TF's SAME average), or with ONNX's
 * count_include_pad by its cells inside the padded input (a ceil_mode
 * window running past the end padding counts only up to it, as ONNX
 * Runtime does).  Window taps are dilation apart. */
void ref_pool2d(const struct ir_node *n, int batch, const double *const *in, double *out,
                const double *h)
{
    (void)h;
    const struct ir_attrs *a = &n->a;
    const int64_t *xd = n->in[0]->shape.dim, *yd = n->out->shape.dim;
    int64_t H = xd[1], W = xd[2], C = xd[3], OH = yd[1], OW = yd[2];
    bool max = n->op == IR_MAXPOOL2D, incl = a->count_include_pad && !max;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++)
                for (int64_t c = 0; c < C; c++) {
                    double acc = max ? -INFINITY : 0;
                    int64_t count = 0;
                    for (int64_t kh = 0; kh < a->kernel[0]; kh++) {
                        int64_t ih = oh * a->stride[0] - a->pad[0] + kh * a->dilation[0];
                        for (int64_t kw = 0; kw < a->kernel[1]; kw++) {
                            int64_t iw = ow * a->stride[1] - a->pad[2] + kw * a->dilation[1];
                            if (incl && ih < H + a->pad[1] && iw < W + a->pad[3])
                                count++; /* begin pads: ih ≥ −pad[0] always */
                            if (ih < 0 || ih >= H || iw < 0 || iw >= W)
                                continue;
                            double v = in[0][((b * H + ih) * W + iw) * C + c];
                            acc = max ? (v > acc ? v : acc) : acc + v;
                            count += !incl;
                        }
                    }
                    out[((b * OH + oh) * OW + ow) * C + c] = max ? acc : acc / (double)count;
                }
}

/* The mean (or with a.pool_max the maximum) over height and width. */
void ref_global_pool2d(const struct ir_node *n, int batch, const double *const *in, double *out,
                const double *h)
{
    (void)h;
    const int64_t *xd = n->in[0]->shape.dim;
    int64_t HW = xd[1] * xd[2], C = xd[3];
    for (int64_t b = 0; b < batch; b++)
        for (int64_t c = 0; c < C; c++) {
            double acc = n->a.pool_max ? -INFINITY : 0;
            for (int64_t i = 0; i < HW; i++) {
                double v = in[0][(b * HW + i) * C + c];
                acc = n->a.pool_max ? (v > acc ? v : acc) : acc + v;
            }
            out[b * C + c] = n->a.pool_max ? acc : acc / (double)HW;
        }
}

/* Inference: γ(x − moving_mean)/√(moving_var + ε) + β on the channel axis. */
void ref_batchnorm(const struct ir_node *n, int batch, const double *const *in, double *out,
                const double *h)
{
    (void)h;
    const struct ir_attrs *a = &n->a;
    struct nncc_shape s = n->out->shape;
    int64_t C = s.dim[a->axis], inner = ir_shape_numel(s, a->axis + 1);
    int64_t total = batch * per_sample(n->out);
    const double *mean = in[1], *var = in[2];
    const double *gamma = a->has_gamma ? in[3] : NULL;
    const double *beta = a->has_beta ? in[3 + a->has_gamma] : NULL;
    for (int64_t i = 0; i < total; i++) {
        int64_t c = (i / inner) % C;
        double y = (in[0][i] - mean[c]) / sqrt(var[c] + (double)a->epsilon);
        out[i] = y * (gamma ? gamma[c] : 1.0) + (beta ? beta[c] : 0.0);
    }
}

/* Element-wise sum: input dim 0 is the batch; the other dims align from
 * the right with the output's, and dims of size 1 broadcast. */
void ref_add(const struct ir_node *n, int batch, const double *const *in, double *out,
                const double *h)
{
    (void)h;
    struct nncc_shape ys = n->out->shape;
    if (!n->out->batched) { /* e.g. summed weight gradients: all dims fixed, equal shapes */
        int64_t total = ir_shape_numel(ys, 0);
        for (int64_t i = 0; i < total; i++) {
            double acc = 0;
            for (int k = 0; k < n->n_in; k++)
                acc += in[k][i];
            out[i] = acc;
        }
        return;
    }
    ys.dim[0] = batch;
    int64_t total = ir_shape_numel(ys, 0);
    for (int64_t i = 0; i < total; i++) {
        double acc = 0;
        for (int k = 0; k < n->n_in; k++) {
            struct nncc_shape xs = n->in[k]->shape;
            int64_t rem = i, idx = 0, stride = 1;
            for (int d = ys.rank - 1; d >= 0; d--) {
                int64_t coord = rem % ys.dim[d];
                rem /= ys.dim[d];
                int xd = d == 0 ? 0 : d - (ys.rank - xs.rank);
                if (xd < 0 || (xd == 0 && d != 0))
                    continue; /* a dim input k does not have */
                int64_t size = xd == 0 ? batch : xs.dim[xd];
                idx += (size == 1 && ys.dim[d] != 1 ? 0 : coord) * stride;
                stride *= size;
            }
            acc += in[k][idx];
        }
        out[i] = acc;
    }
}

void ref_concat(const struct ir_node *n, int batch, const double *const *in, double *out,
                const double *h)
{
    (void)h;
    int axis = n->a.axis;
    struct nncc_shape ys = n->out->shape;
    ys.dim[0] = batch;
    int64_t outer = ir_shape_numel(ys, 0) / ir_shape_numel(ys, axis);
    int64_t off = 0, yrow = ir_shape_numel(ys, axis);
    for (int k = 0; k < n->n_in; k++) {
        int64_t row = ir_shape_numel(n->in[k]->shape, axis);
        for (int64_t o = 0; o < outer; o++)
            memcpy(out + o * yrow + off, in[k] + o * row, sizeof *out * (size_t)row);
        off += row;
    }
}

/* ---- Driver ------------------------------------------------------------ */

static int64_t value_count(const nncc_tensor *t, int batch)
{
    return t->batched ? batch * per_sample(t) : ir_shape_numel(t->shape, 0);
}

/* The step behind both entry points: outputs go to fout (rounded to float)
 * or, when dout is given, to dout unrounded. */
/* The oracle's per-op table, from ops.def: a missing kernel fails to link. */
typedef void (*ref_kernel)(const struct ir_node *n, int batch, const double *const *in,
                           double *out, const double *h);
static const ref_kernel ref_kernels[] = {
#define OP(id, name, arity, view, reduces, shape, ref, emit) [IR_##id] = ref,
#include "ir/ops.def"
#undef OP
};
_Static_assert(sizeof ref_kernels / sizeof ref_kernels[0] == IR_OP_COUNT, "a kernel per op");

static enum nncc_status step(const struct ir_program *p, int batch, const float *const *inputs,
                             float *const *fout, double *const *dout, const double *h,
                             bool write_params)
{
    nncc_graph *g = p->g;
    double **buf = calloc((size_t)g->n_nodes + 1, sizeof *buf);
    if (!buf)
        return nncc_fail(NNCC_ERR_NOMEM, "out of memory (interpreter)");
    enum nncc_status st = NNCC_OK;
    for (int i = 0; i < p->n_nodes && !st; i++) {
        const struct ir_node *n = p->nodes[i];
        const nncc_tensor *t = n->out;
        int64_t count = value_count(t, batch);
        double *b = malloc(sizeof *b * (size_t)(count ? count : 1));
        if (!b) {
            st = nncc_fail(NNCC_ERR_NOMEM, "out of memory (interpreter, %lld values)",
                           (long long)count);
            break;
        }
        buf[t->id] = b;
        if (n->op == IR_PARAM) {
            for (int64_t k = 0; k < count; k++)
                b[k] = t->data[k];
        } else if (n->op == IR_INPUT) {
            int slot = -1;
            for (int k = 0; k < p->n_inputs; k++)
                if (p->inputs[k] == t)
                    slot = k;
            NNCC_ASSERT(slot >= 0);
            for (int64_t k = 0; k < count; k++)
                b[k] = inputs[slot][k];
        } else {
            const double *ins[16];
            const double **insp = n->n_in <= 16 ? ins : malloc(sizeof *insp * (size_t)n->n_in);
            if (!insp) {
                st = nncc_fail(NNCC_ERR_NOMEM, "out of memory (interpreter)");
                break;
            }
            for (int k = 0; k < n->n_in; k++)
                insp[k] = buf[n->in[k]->id];
            ref_kernels[n->op](n, batch, insp, b, h);
            if (insp != ins)
                free(insp);
        }
    }
    for (int k = 0; k < p->n_outputs && !st; k++) {
        const nncc_tensor *t = p->outputs[k];
        int64_t count = value_count(t, batch);
        for (int64_t i = 0; i < count; i++) {
            if (dout)
                dout[k][i] = buf[t->id][i];
            else
                fout[k][i] = (float)buf[t->id][i];
        }
    }
    /* Updates wrote the parameter and slot buffers: store them back. */
    for (int i = 0; i < p->n_nodes && !st && write_params; i++) {
        const struct ir_node *n = p->nodes[i];
        if (n->op != IR_PARAM)
            continue;
        int64_t count = value_count(n->out, batch);
        for (int64_t k = 0; k < count; k++)
            n->out->data[k] = (float)buf[n->out->id][k];
    }
    for (int i = 0; i < g->n_nodes; i++)
        free(buf[i]);
    free(buf);
    return st;
}

enum nncc_status nncc_interp_step(const struct ir_program *p, int batch,
                                  const float *const *inputs, float *const *outputs,
                                  const double *h, bool write_params)
{
    return step(p, batch, inputs, outputs, NULL, h, write_params);
}

enum nncc_status nncc_interp_step_d(const struct ir_program *p, int batch,
                                    const float *const *inputs, double *const *outputs,
                                    const double *h, bool write_params)
{
    return step(p, batch, inputs, NULL, outputs, h, write_params);
}

enum nncc_status nncc_interp_run(const struct ir_program *p, int batch,
                                 const float *const *inputs, float *const *outputs)
{
    return nncc_interp_step(p, batch, inputs, outputs, NULL, false);
}
