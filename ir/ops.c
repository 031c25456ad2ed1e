/*
 * ops.c — the op table and every op's shape rule.
 *
 * A shape rule reads the node's input shapes and attributes and writes the
 * output shape, or fails with a message that names the layer (ir_node_label)
 * and the shapes involved.  Rules may normalise attributes (the SAME padding
 * split, a negative axis), so running a rule twice is harmless.  Output size
 * formulas are Keras 2.15's (keras/utils/conv_utils.py, TF's SAME split).
 * The activation tables follow ir/activations.def, whose order the public
 * enum nncc_activation must match (checked at build time).
 */
#include <string.h>
#include "ir.h"
#include "eltwise.h"

#define LABEL(n) ir_node_label((n), label_buf, sizeof label_buf)
#define SHAPE(s, b) nncc_shape_str((s), (b), sizeof(b))
#define RULE(name) static enum nncc_status name(struct ir_node *n, struct nncc_shape *out)
#define DECL char label_buf[192], s0[160], s1[160]; (void)s0; (void)s1

static enum nncc_status need_rank(struct ir_node *n, int i, int rank, const char *what)
{
    char label_buf[192], s0[160];
    struct nncc_shape s = n->in[i]->shape;
    if (s.rank == rank)
        return NNCC_OK;
    return nncc_fail(NNCC_ERR_SHAPE, "%s: expects input of rank %d %s, got %s", LABEL(n), rank,
                     what, SHAPE(s, s0));
}

RULE(shape_input)
{
    *out = n->out->shape;
    return NNCC_OK;
}

RULE(shape_param)
{
    *out = n->out->shape;
    return NNCC_OK;
}

/* MATMUL: x (…, k) · w (k, u) → (…, u); contracts the last axis only. */
RULE(shape_matmul)
{
    DECL;
    struct nncc_shape x = n->in[0]->shape, w = n->in[1]->shape;
    NNCC_ASSERT(w.rank == 2);
    if (x.rank < 2 || x.dim[x.rank - 1] < 0)
        return nncc_fail(NNCC_ERR_SHAPE,
                         "%s: the last dimension of its input must be known, got %s", LABEL(n),
                         SHAPE(x, s0));
    if (x.dim[x.rank - 1] != w.dim[0])
        return nncc_fail(NNCC_ERR_SHAPE,
                         "%s: expects input with last dimension %lld (its kernel is %s), got %s",
                         LABEL(n), (long long)w.dim[0], SHAPE(w, s1), SHAPE(x, s0));
    *out = x;
    out->dim[x.rank - 1] = w.dim[1];
    return NNCC_OK;
}

/* BIAS_ADD: x (…, c) + b (c). */
RULE(shape_bias_add)
{
    DECL;
    struct nncc_shape x = n->in[0]->shape, b = n->in[1]->shape;
    if (b.rank != 1 || x.rank < 1 || x.dim[x.rank - 1] != b.dim[0])
        return nncc_fail(NNCC_ERR_SHAPE, "%s: bias %s does not fit input %s", LABEL(n),
                         SHAPE(b, s1), SHAPE(x, s0));
    *out = x;
    return NNCC_OK;
}

/* ACTIVATION, DROPOUT: element-wise. */
RULE(shape_same)
{
    *out = n->in[0]->shape;
    return NNCC_OK;
}

/* ACTIVATION_ALPHA(x) and its gradient (dy, x): shaped like input 0, for
 * the two activations that take an alpha. */
RULE(shape_activation_alpha)
{
    DECL;
    if (n->a.act != NNCC_LEAKY_RELU && n->a.act != NNCC_ELU)
        return nncc_fail(NNCC_ERR_GRAPH, "%s: %s takes leaky_relu or elu, got activation %d",
                         LABEL(n), ir_op(n->op)->name, (int)n->a.act);
    if (n->n_in == 2 && !ir_shape_eq(n->in[0]->shape, n->in[1]->shape))
        return nncc_fail(NNCC_ERR_SHAPE, "%s: gradient %s does not match input %s", LABEL(n),
                         SHAPE(n->in[0]->shape, s0), SHAPE(n->in[1]->shape, s1));
    *out = n->in[0]->shape;
    return NNCC_OK;
}

/* SOFTMAX, LOG_SOFTMAX along a.axis (0: the last; ir/eltwise.h): the
 * batch axis of a batched input cannot be reduced, so Keras' rank-1 input
 * is rejected as before.  Stores the canonical axis. */
RULE(shape_softmax)
{
    DECL;
    struct nncc_shape x = n->in[0]->shape;
    bool batched = n->in[0]->batched;
    const char *what = n->op == IR_LOG_SOFTMAX ? "log_softmax" : "softmax";
    if (x.rank < (batched ? 2 : 1))
        return nncc_fail(NNCC_ERR_SHAPE, "%s: %s needs an input of rank >= 2, got %s", LABEL(n),
                         what, SHAPE(x, s0));
    int ax = n->a.axis == 0 ? x.rank - 1 : n->a.axis < 0 ? n->a.axis + x.rank : n->a.axis;
    if (ax < 0 || ax >= x.rank)
        return nncc_fail(NNCC_ERR_SHAPE, "%s: %s axis %d is out of range for input %s", LABEL(n),
                         what, n->a.axis, SHAPE(x, s0));
    if (ax == 0 && batched)
        return nncc_fail(NNCC_ERR_SHAPE,
                         "%s: %s along axis 0 of input %s would mix the samples of a batch",
                         LABEL(n), what, SHAPE(x, s0));
    n->a.axis = ax == x.rank - 1 ? 0 : ax == 0 ? -x.rank : ax;
    *out = x;
    return NNCC_OK;
}

static enum nncc_status explicit_spatial(struct ir_node *n, const char *what, int kh, int kw,
                                         struct nncc_shape *out);

static enum nncc_status spatial(struct ir_node *n, const char *what, int kh, int kw,
                                struct nncc_shape *out)
{
    DECL;
    struct nncc_shape x = n->in[0]->shape;
    struct ir_attrs *a = &n->a;
    if (a->explicit_pad || a->ceil_mode) /* ONNX's pads (the conv family's block below) */
        return explicit_spatial(n, what, kh, kw, out);
    int64_t oh = ir_conv_out_size(x.dim[1], kh, a->stride[0], a->dilation[0], a->padding,
                                  &a->pad[0], &a->pad[1]);
    int64_t ow = ir_conv_out_size(x.dim[2], kw, a->stride[1], a->dilation[1], a->padding,
                                  &a->pad[2], &a->pad[3]);
    if (oh <= 0 || ow <= 0) {
        int eh = kh + (kh - 1) * (a->dilation[0] - 1), ew = kw + (kw - 1) * (a->dilation[1] - 1);
        return nncc_fail(NNCC_ERR_SHAPE,
                         "%s: the %dx%d %s is larger than its input %s (valid padding), so the "
                         "output would be empty",
                         LABEL(n), eh, ew, what, SHAPE(x, s0));
    }
    *out = x;
    out->dim[1] = oh;
    out->dim[2] = ow;
    return NNCC_OK;
}

static enum nncc_status conv_groups(struct ir_node *n, int64_t C, int64_t F, struct nncc_shape w);

/* CONV2D: x (N, H, W, C) ⋆ w (kh, kw, C/groups, F) → (N, H', W', F). */
RULE(shape_conv2d)
{
    if (need_rank(n, 0, 4, "(batch, height, width, channels)"))
        return NNCC_ERR_SHAPE;
    struct nncc_shape x = n->in[0]->shape, w = n->in[1]->shape;
    NNCC_ASSERT(w.rank == 4);
    if (conv_groups(n, x.dim[3], w.dim[3], w))
        return NNCC_ERR_SHAPE;
    n->a.kernel[0] = (int)w.dim[0];
    n->a.kernel[1] = (int)w.dim[1];
    if (spatial(n, "kernel", (int)w.dim[0], (int)w.dim[1], out))
        return NNCC_ERR_SHAPE;
    out->dim[3] = w.dim[3];
    return NNCC_OK;
}

/* MAXPOOL2D, AVGPOOL2D: window a.kernel, a.stride, a.padding, a.dilation
 * (0 taken as 1); or ONNX's explicit pads, ceil_mode and count_include_pad. */
RULE(shape_pool2d)
{
    if (need_rank(n, 0, 4, "(batch, height, width, channels)"))
        return NNCC_ERR_SHAPE;
    for (int i = 0; i < 2; i++) /* Keras' pools have none; ONNX's MaxPool may */
        n->a.dilation[i] = n->a.dilation[i] > 0 ? n->a.dilation[i] : 1;
    return spatial(n, "pooling window", n->a.kernel[0], n->a.kernel[1], out);
}

/* GLOBAL_AVGPOOL2D: (N, H, W, C) → (N, C), or (N, 1, 1, C) with keepdims;
 * the maximum instead of the mean with a.pool_max. */
RULE(shape_global_pool2d)
{
    if (need_rank(n, 0, 4, "(batch, height, width, channels)"))
        return NNCC_ERR_SHAPE;
    struct nncc_shape x = n->in[0]->shape;
    if (n->a.keepdims) {
        *out = x;
        out->dim[1] = out->dim[2] = 1;
    } else {
        *out = (struct nncc_shape){.rank = 2, .dim = {x.dim[0], x.dim[3]}};
    }
    return NNCC_OK;
}

/* RESHAPE: (N, …) → (N, target…); at most one -1 in the target. */
RULE(shape_reshape)
{
    DECL;
    struct nncc_shape x = n->in[0]->shape, t = n->a.target;
    int64_t have = ir_shape_numel(x, 1), known = 1;
    int unknown = -1;
    for (int i = 0; i < t.rank; i++) {
        if (t.dim[i] == -1 && unknown < 0)
            unknown = i;
        else
            known *= t.dim[i];
    }
    char ts[160];
    ir_dims_str(t, ts, sizeof ts);
    if (have < 0)
        return nncc_fail(NNCC_ERR_SHAPE, "%s: the input %s must have known dimensions", LABEL(n),
                         SHAPE(x, s0));
    if (unknown >= 0 ? (known == 0 || have % known != 0) : known != have)
        return nncc_fail(NNCC_ERR_SHAPE,
                         "%s: cannot reshape input %s (%lld values per sample) to %s", LABEL(n),
                         SHAPE(x, s0), (long long)have, ts);
    if (t.rank + 1 > NNCC_MAX_RANK)
        return nncc_fail(NNCC_ERR_SHAPE, "%s: target shape %s has more than %d dimensions",
                         LABEL(n), ts, NNCC_MAX_RANK - 1);
    out->rank = t.rank + 1;
    out->dim[0] = x.dim[0];
    for (int i = 0; i < t.rank; i++)
        out->dim[i + 1] = i == unknown ? have / known : t.dim[i];
    return NNCC_OK;
}

/* BATCHNORM: x (…, C at a.axis), mean (C), var (C), [gamma (C)], [beta (C)]. */
RULE(shape_batchnorm)
{
    DECL;
    struct nncc_shape x = n->in[0]->shape;
    int axis = n->a.axis < 0 ? x.rank + n->a.axis : n->a.axis;
    if (x.rank < 2 || axis < 1 || axis >= x.rank)
        return nncc_fail(NNCC_ERR_SHAPE, "%s: axis %d is out of range for input %s", LABEL(n),
                         n->a.axis, SHAPE(x, s0));
    n->a.axis = axis;
    int want = 3 + n->a.has_gamma + n->a.has_beta;
    NNCC_ASSERT(n->n_in == want);
    for (int i = 1; i < n->n_in; i++) {
        struct nncc_shape p = n->in[i]->shape;
        if (p.rank != 1 || p.dim[0] != x.dim[axis])
            return nncc_fail(NNCC_ERR_SHAPE,
                             "%s: expects %lld features on axis %d (its weights are %s), got "
                             "input %s",
                             LABEL(n), (long long)p.dim[0], axis, SHAPE(p, s1), SHAPE(x, s0));
    }
    *out = x;
    return NNCC_OK;
}

/* ADD: element-wise sum (Keras' _Merge).  Batch sizes must agree (an open
 * one takes the known one); the other dims align from the right, and dims
 * of size 1 broadcast. */
RULE(shape_add)
{
    DECL;
    if (n->n_in < 1)
        return nncc_fail(NNCC_ERR_SHAPE, "%s: needs at least one input", LABEL(n));
    struct nncc_shape acc = n->in[0]->shape;
    for (int k = 1; k < n->n_in; k++) {
        struct nncc_shape b = n->in[k]->shape;
        if (acc.rank < 1 || b.rank < 1)
            return nncc_fail(NNCC_ERR_SHAPE, "%s: inputs need a batch dimension", LABEL(n));
        if (acc.dim[0] >= 0 && b.dim[0] >= 0 && acc.dim[0] != b.dim[0])
            return nncc_fail(NNCC_ERR_SHAPE,
                             "%s: cannot merge tensors with different batch sizes: %s and %s "
                             "(input %d)",
                             LABEL(n), SHAPE(n->in[0]->shape, s0), SHAPE(b, s1), k);
        const struct nncc_shape *lo = acc.rank >= b.rank ? &acc : &b;
        const struct nncc_shape *sh = acc.rank >= b.rank ? &b : &acc;
        struct nncc_shape r = *lo;
        r.dim[0] = acc.dim[0] >= 0 ? acc.dim[0] : b.dim[0];
        int off = lo->rank - sh->rank;
        for (int i = 1; i < sh->rank; i++) {
            int64_t p = lo->dim[off + i], q = sh->dim[i], d;
            if (p == 1)
                d = q;
            else if (q == 1 || p == q)
                d = p;
            else
                return nncc_fail(NNCC_ERR_SHAPE,
                                 "%s: inputs have incompatible shapes %s and %s (input %d)",
                                 LABEL(n), SHAPE(n->in[0]->shape, s0), SHAPE(b, s1), k);
            r.dim[off + i] = d;
        }
        acc = r;
    }
    *out = acc;
    return NNCC_OK;
}

/* CONCAT along a.axis; every other dimension must match. */
RULE(shape_concat)
{
    DECL;
    if (n->n_in < 1)
        return nncc_fail(NNCC_ERR_SHAPE, "%s: needs at least one input", LABEL(n));
    struct nncc_shape a0 = n->in[0]->shape;
    int axis = n->a.axis < 0 ? a0.rank + n->a.axis : n->a.axis;
    if (axis < 1 || axis >= a0.rank)
        return nncc_fail(NNCC_ERR_SHAPE,
                         "%s: axis %d is out of range for input %s (the batch axis cannot be "
                         "concatenated)",
                         LABEL(n), n->a.axis, SHAPE(a0, s0));
    n->a.axis = axis;
    *out = a0;
    for (int k = 1; k < n->n_in; k++) {
        struct nncc_shape b = n->in[k]->shape;
        bool ok = b.rank == a0.rank;
        for (int i = 0; ok && i < a0.rank; i++)
            if (i != axis && b.dim[i] != a0.dim[i])
                ok = false;
        if (!ok)
            return nncc_fail(NNCC_ERR_SHAPE,
                             "%s: inputs must match in every dimension but axis %d; got %s and "
                             "%s (input %d)",
                             LABEL(n), axis, SHAPE(a0, s0), SHAPE(b, s1), k);
        out->dim[axis] = out->dim[axis] < 0 || b.dim[axis] < 0 ? -1 : out->dim[axis] + b.dim[axis];
    }
    return NNCC_OK;
}

/* ---- Training ops ------------------------------------------------------ */

/* MATMUL_NT: dy (…, N) · wᵀ, w (K, N) → (…, K). */
RULE(shape_matmul_nt)
{
    struct nncc_shape dy = n->in[0]->shape, w = n->in[1]->shape;
    NNCC_ASSERT(w.rank == 2 && dy.dim[dy.rank - 1] == w.dim[1]);
    *out = dy;
    out->dim[dy.rank - 1] = w.dim[0];
    return NNCC_OK;
}

/* MATMUL_TN: Σ over rows of xᵀ · dy, x (…, K), dy (…, N) → (K, N). */
RULE(shape_matmul_tn)
{
    struct nncc_shape x = n->in[0]->shape, dy = n->in[1]->shape;
    *out = (struct nncc_shape){.rank = 2, .dim = {x.dim[x.rank - 1], dy.dim[dy.rank - 1]}};
    return NNCC_OK;
}

/* BIAS_GRAD: Σ over all but the last axis, dy (…, C) → (C). */
RULE(shape_bias_grad)
{
    struct nncc_shape dy = n->in[0]->shape;
    *out = (struct nncc_shape){.rank = 1, .dim = {dy.dim[dy.rank - 1]}};
    return NNCC_OK;
}

RULE(shape_like_first)
{
    *out = n->in[0]->shape;
    return NNCC_OK;
}

/* POOL2D_GRAD: (dy, x, y) for average pooling, (dy, x, y, argmax) for max
 * pooling (the winning cells, from POOL_ARGMAX); dx is shaped like x. */
RULE(shape_pool2d_grad)
{
    DECL;
    int want = n->a.pool_max ? 4 : 3;
    if (n->n_in != want)
        return nncc_fail(NNCC_ERR_GRAPH, "%s: a %s pooling gradient takes %d inputs, got %d",
                         LABEL(n), n->a.pool_max ? "max" : "average", want, n->n_in);
    *out = n->in[1]->shape;
    return NNCC_OK;
}

RULE(shape_like_second)
{
    *out = n->in[1]->shape;
    return NNCC_OK;
}

/* CONV2D_GRAD_*, SUM_TO: the shape they were made for. */
RULE(shape_target)
{
    *out = n->a.like;
    return NNCC_OK;
}

/* SLICE: dy with `size` entries of `axis` from `offset`. */
RULE(shape_slice)
{
    *out = n->in[0]->shape;
    NNCC_ASSERT(n->a.axis > 0 && n->a.axis < out->rank &&
                n->a.offset + n->a.size <= out->dim[n->a.axis]);
    out->dim[n->a.axis] = n->a.size;
    return NNCC_OK;
}

/* LOSS, METRIC, GLOBAL_NORM, UPDATE: one number per step. */
RULE(shape_scalar)
{
    (void)n;
    *out = (struct nncc_shape){.rank = 1, .dim = {1}};
    return NNCC_OK;
}

/* BN_STATS: x (…, C at axis, …) → (2, C). */
RULE(shape_bn_stats)
{
    struct nncc_shape x = n->in[0]->shape;
    *out = (struct nncc_shape){.rank = 2, .dim = {2, x.dim[n->a.axis]}};
    return NNCC_OK;
}

/* BN_PARAM_GRAD: → (C), the gradient of gamma (offset 0) or beta (offset 1). */
RULE(shape_bn_param)
{
    struct nncc_shape x = n->in[1]->shape;
    *out = (struct nncc_shape){.rank = 1, .dim = {x.dim[n->a.axis]}};
    return NNCC_OK;
}

/* The element-wise family's rules, at the end of the file. */
RULE(shape_unary);
RULE(shape_binary);
RULE(shape_binary_grad);
/* The tensor ops' rules, at the end of the file. */
RULE(shape_transpose);
RULE(shape_strided_slice);
RULE(shape_strided_slice_grad);
RULE(shape_pad);
RULE(shape_reduce);
RULE(shape_reduce_grad);
RULE(shape_gather);
RULE(shape_gather_grad);
/* ---- Convolution family: ONNX's options ------------------------------- */

/* Output size along one axis with explicit pads: ⌊(n + pb + pe − eff) / s⌋ + 1,
 * or with ceil_mode ⌈…⌉ + 1 less a last window that would start in the end
 * padding (ONNX / PyTorch); ≤ 0 when empty. */
static int64_t explicit_out(int64_t n, int k, int s, int d, int pb, int pe, bool ceil_mode)
{
    int64_t eff = (int64_t)(k - 1) * d + 1, span = n + pb + pe - eff;
    if (span < 0)
        return 0;
    int64_t o = ceil_mode ? (span + s - 1) / s + 1 : span / s + 1;
    if (ceil_mode && (o - 1) * s >= n + pb)
        o--;
    return o;
}

/* CONV2D and pools with a.explicit_pad: pad[] = top, bottom, left, right as
 * given.  Begin pads must be ≥ 0; end pads may be negative (they crop: the
 * transposed convolution's gradient needs that when output_padding exceeds
 * its end pad). */
static enum nncc_status explicit_spatial(struct ir_node *n, const char *what, int kh, int kw,
                                         struct nncc_shape *out)
{
    DECL;
    struct nncc_shape x = n->in[0]->shape;
    struct ir_attrs *a = &n->a;
    if (!a->explicit_pad)
        return nncc_fail(NNCC_ERR_ARG, "%s: ceil_mode needs explicit pads", LABEL(n));
    if (a->ceil_mode && n->op == IR_CONV2D)
        return nncc_fail(NNCC_ERR_ARG, "%s: ceil_mode is for pooling only", LABEL(n));
    if (a->pad[0] < 0 || a->pad[2] < 0 || a->stride[0] < 1 || a->stride[1] < 1 ||
        a->dilation[0] < 1 || a->dilation[1] < 1)
        return nncc_fail(NNCC_ERR_ARG,
                         "%s: needs begin pads >= 0 and strides, dilations >= 1; got pads "
                         "(t%d b%d l%d r%d), strides %dx%d, dilations %dx%d",
                         LABEL(n), a->pad[0], a->pad[1], a->pad[2], a->pad[3], a->stride[0],
                         a->stride[1], a->dilation[0], a->dilation[1]);
    int64_t oh = explicit_out(x.dim[1], kh, a->stride[0], a->dilation[0], a->pad[0], a->pad[1],
                              a->ceil_mode);
    int64_t ow = explicit_out(x.dim[2], kw, a->stride[1], a->dilation[1], a->pad[2], a->pad[3],
                              a->ceil_mode);
    if (oh <= 0 || ow <= 0)
        return nncc_fail(NNCC_ERR_SHAPE,
                         "%s: the %dx%d %s (dilation %dx%d) does not fit its input %s padded by "
                         "t%d b%d l%d r%d, so the output would be empty",
                         LABEL(n), kh, kw, what, a->dilation[0], a->dilation[1], SHAPE(x, s0),
                         a->pad[0], a->pad[1], a->pad[2], a->pad[3]);
    *out = x;
    out->dim[1] = oh;
    out->dim[2] = ow;
    return NNCC_OK;
}

/* Groups of a convolution with C input and F output channels and kernel w
 * (KH, KW, C/groups, ·): both divisible, w's third dim C/groups. */
static enum nncc_status conv_groups(struct ir_node *n, int64_t C, int64_t F, struct nncc_shape w)
{
    DECL;
    int64_t G = n->a.groups > 1 ? n->a.groups : 1;
    if (n->a.groups < 0 || C % G != 0 || F % G != 0)
        return nncc_fail(NNCC_ERR_SHAPE,
                         "%s: %lld input and %lld output channels cannot be split into %d groups",
                         LABEL(n), (long long)C, (long long)F, n->a.groups);
    if (w.dim[2] != C / G)
        return nncc_fail(NNCC_ERR_SHAPE,
                         "%s: expects %lld input channels (its kernel is %s, %lld group%s), got "
                         "input %s",
                         LABEL(n), (long long)(w.dim[2] * G), SHAPE(w, s1), (long long)G,
                         G > 1 ? "s" : "", SHAPE(n->in[0]->shape, s0));
    return NNCC_OK;
}

/* CONV2D_TRANSPOSE: x (N, H, W, C_in), w (KH, KW, C_out/groups, C_in) →
 * (N, H', W', C_out), H' = s·(H − 1) + output_padding + (KH − 1)·d + 1 −
 * pad_top − pad_bottom (likewise W'); pads ≥ 0, 0 ≤ output_padding <
 * max(stride, dilation) as ONNX requires. */
RULE(shape_conv2d_transpose)
{
    DECL;
    if (need_rank(n, 0, 4, "(batch, height, width, channels)"))
        return NNCC_ERR_SHAPE;
    struct nncc_shape x = n->in[0]->shape, w = n->in[1]->shape;
    struct ir_attrs *a = &n->a;
    if (w.rank != 4 || w.dim[3] != x.dim[3])
        return nncc_fail(NNCC_ERR_SHAPE,
                         "%s: a kernel (KH, KW, C_out/groups, C_in) with C_in = %lld is needed, "
                         "got %s",
                         LABEL(n), (long long)x.dim[3], SHAPE(w, s1));
    int64_t G = a->groups > 1 ? a->groups : 1;
    if (a->groups < 0 || x.dim[3] % G != 0)
        return nncc_fail(NNCC_ERR_SHAPE, "%s: %lld input channels cannot be split into %d groups",
                         LABEL(n), (long long)x.dim[3], a->groups);
    for (int i = 0; i < 2; i++) {
        if (a->stride[i] < 1 || a->dilation[i] < 1 || a->pad[2 * i] < 0 || a->pad[2 * i + 1] < 0 ||
            a->output_padding[i] < 0 ||
            (a->output_padding[i] >= a->stride[i] && a->output_padding[i] >= a->dilation[i]))
            return nncc_fail(NNCC_ERR_ARG,
                             "%s: needs strides, dilations >= 1, pads >= 0 and 0 <= "
                             "output_padding < stride or dilation; got strides %dx%d, dilations "
                             "%dx%d, pads t%d b%d l%d r%d, output_padding %dx%d",
                             LABEL(n), a->stride[0], a->stride[1], a->dilation[0], a->dilation[1],
                             a->pad[0], a->pad[1], a->pad[2], a->pad[3], a->output_padding[0],
                             a->output_padding[1]);
    }
    a->explicit_pad = true;
    a->kernel[0] = (int)w.dim[0];
    a->kernel[1] = (int)w.dim[1];
    *out = x;
    for (int i = 0; i < 2; i++) {
        int64_t o = (int64_t)a->stride[i] * (x.dim[1 + i] - 1) + a->output_padding[i] +
                    (w.dim[i] - 1) * a->dilation[i] + 1 - a->pad[2 * i] - a->pad[2 * i + 1];
        if (o <= 0)
            return nncc_fail(NNCC_ERR_SHAPE,
                             "%s: pads t%d b%d l%d r%d leave no output for input %s and kernel %s",
                             LABEL(n), a->pad[0], a->pad[1], a->pad[2], a->pad[3], SHAPE(x, s0),
                             SHAPE(w, s1));
        out->dim[1 + i] = o;
    }
    out->dim[3] = w.dim[2] * G;
    return NNCC_OK;
}
/* Matrix products (family h4-matmul): the rules are at the end of the file. */
RULE(shape_batch_matmul);
RULE(shape_batch_matmul_sum);

static const struct ir_op_info op_table[IR_OP_COUNT] = {
#define OP(id, nm, ar, vw, rd, rule, rf, em) \
    [IR_##id] = {.name = nm, .arity = ar, .view = vw, .reduces = rd, .shape = rule},
#include "ops.def"
#undef OP
};

const struct ir_op_info *ir_op(enum ir_op op)
{
    NNCC_ASSERT(op >= 0 && op < IR_OP_COUNT);
    return &op_table[op];
}

/* include/nncc.h's public enum nncc_activation indexes the tables below and
 * is what users pass: each NNCC_<ACT> must be its line's index in
 * activations.def, and the counts must agree, or the build fails. */
enum activation_def_index {
#define ACT(id, name, expr, deriv) ACT_DEF_##id,
#include "activations.def"
#undef ACT
    ACT_DEF_COUNT
};
#define ACT(id, name, expr, deriv)                      \
    _Static_assert((int)NNCC_##id == (int)ACT_DEF_##id, \
                   "NNCC_" #id " in include/nncc.h is not its index in ir/activations.def");
#include "activations.def"
#undef ACT
_Static_assert((int)NNCC_ACTIVATION_COUNT == (int)ACT_DEF_COUNT,
               "include/nncc.h and ir/activations.def list different numbers of activations");

static const char *const activation_names[NNCC_ACTIVATION_COUNT] = {
#define ACT(id, name, expr, deriv) [NNCC_##id] = name,
#include "activations.def"
#undef ACT
};

const char *nncc_activation_name(enum nncc_activation act)
{
    return (int)act >= 0 && act < NNCC_ACTIVATION_COUNT ? activation_names[act] : NULL;
}

const char *ir_activation_expr(enum nncc_activation act)
{
    switch (act) {
#define ACT(id, name, expr, deriv) case NNCC_##id: return #expr;
#include "activations.def"
#undef ACT
    default: return NULL;
    }
}

const char *ir_activation_deriv(enum nncc_activation act)
{
    switch (act) {
#define ACT(id, name, expr, deriv) case NNCC_##id: return #deriv;
#include "activations.def"
#undef ACT
    default: return NULL;
    }
}

/* ---- Element-wise family with ONNX semantics (ir/eltwise.h) ------------ */

/* UNARY (x) and UNARY_GRAD (dy, x, y): element-wise, shaped like x. */
RULE(shape_unary)
{
    DECL;
    if (!ir_unary_name(n->a.unary))
        return nncc_fail(NNCC_ERR_GRAPH, "%s: unknown unary function %d", LABEL(n), n->a.unary);
    for (int k = 1; k < n->n_in; k++)
        if (!ir_shape_eq(n->in[k]->shape, n->in[0]->shape))
            return nncc_fail(NNCC_ERR_SHAPE, "%s: %s input %d %s does not match %s", LABEL(n),
                             ir_op(n->op)->name, k, SHAPE(n->in[k]->shape, s1),
                             SHAPE(n->in[0]->shape, s0));
    *out = n->in[0]->shape;
    return NNCC_OK;
}

/* BINARY (a, b): numpy/ONNX multidirectional broadcasting, dims aligned
 * from the right, a dim of 1 stretched.  The batch axis only meets the
 * batch axis: a batched operand has the output's rank (two batched ones
 * the same rank); an unbatched operand of that rank has dim 0 of 1 (it is
 * the same for every sample) or a lower rank.  Two unbatched operands
 * broadcast freely.  Dims other than a batch must be known. */
RULE(shape_binary)
{
    DECL;
    if (!ir_binary_name(n->a.binary))
        return nncc_fail(NNCC_ERR_GRAPH, "%s: unknown binary operation %d", LABEL(n),
                         n->a.binary);
    const nncc_tensor *a = n->in[0], *b = n->in[1];
    struct nncc_shape as = a->shape, bs = b->shape;
    int r = as.rank > bs.rank ? as.rank : bs.rank;
    for (int k = 0; k < 2; k++) {
        const nncc_tensor *t = n->in[k], *o = n->in[1 - k];
        if (t->batched && t->shape.rank != r)
            return nncc_fail(NNCC_ERR_SHAPE,
                             "%s: cannot broadcast %s (batched) with %s of higher rank: the "
                             "batch axis must stay axis 0",
                             LABEL(n), SHAPE(t->shape, s0), SHAPE(o->shape, s1));
        if (t->batched && !o->batched && o->shape.rank == r && o->shape.dim[0] != 1)
            return nncc_fail(NNCC_ERR_SHAPE,
                             "%s: the constant %s has the rank of the batched %s, so its dim 0 "
                             "must be 1 to broadcast over the batch",
                             LABEL(n), SHAPE(o->shape, s1), SHAPE(t->shape, s0));
        for (int d = 0; d < t->shape.rank; d++)
            if (t->shape.dim[d] < 0 && !(t->batched && d == 0))
                return nncc_fail(NNCC_ERR_SHAPE, "%s: input %s has an unknown dimension",
                                 LABEL(n), SHAPE(t->shape, s0));
    }
    out->rank = r;
    for (int d = 0; d < r; d++) {
        int da = d - (r - as.rank), db = d - (r - bs.rank);
        int64_t p = da >= 0 ? as.dim[da] : 1, q = db >= 0 ? bs.dim[db] : 1;
        if (p == q || q == 1)
            out->dim[d] = p;
        else if (p == 1)
            out->dim[d] = q;
        else
            return nncc_fail(NNCC_ERR_SHAPE, "%s: cannot broadcast %s with %s (axis %d: %lld vs %lld)",
                             LABEL(n), SHAPE(as, s0), SHAPE(bs, s1), d, (long long)p,
                             (long long)q);
    }
    if (a->batched || b->batched)
        out->dim[0] = NNCC_NONE;
    return NNCC_OK;
}

/* BINARY_GRAD(_CONST) (dy, a, b): shaped like operand `which`; _CONST is
 * the one for an unbatched operand of a batched dy (it sums the batch). */
RULE(shape_binary_grad)
{
    DECL;
    if (!ir_binary_name(n->a.binary) || (n->a.which != 0 && n->a.which != 1))
        return nncc_fail(NNCC_ERR_GRAPH, "%s: binary gradient of operation %d, operand %d",
                         LABEL(n), n->a.binary, n->a.which);
    const nncc_tensor *dy = n->in[0], *x = n->in[1 + n->a.which];
    bool want_const = dy->batched && !x->batched;
    if (want_const != (n->op == IR_BINARY_GRAD_CONST))
        return nncc_fail(NNCC_ERR_GRAPH, "%s: %s for operand %s of gradient %s", LABEL(n),
                         ir_op(n->op)->name, SHAPE(x->shape, s0), SHAPE(dy->shape, s1));
    *out = x->shape;
    return NNCC_OK;
}

/* ---- Tensor ops: transpose, strided slice, pad, reduce, gather ---------- */

/* Every rule here refuses what would move, mix or reduce the batch axis of
 * a batched input: the batch is known only at run time.  On unbatched
 * values axis 0 is an ordinary axis. */

/* An axis's size for messages and checks: the batch is NNCC_NONE. */
static bool batched_in(const struct ir_node *n, int i) { return n->in[i]->batched; }

/* TRANSPOSE: output axis i is input axis perm[i], over the full shape
 * (batch included); perm is a permutation of 0 … rank−1 (entries from rank
 * on are ignored).  A batched input needs perm[0] == 0. */
RULE(shape_transpose)
{
    DECL;
    struct nncc_shape x = n->in[0]->shape;
    bool seen[NNCC_MAX_RANK] = {false};
    for (int i = 0; i < x.rank; i++) {
        int p = n->a.perm[i];
        if (p < 0 || p >= x.rank || seen[p])
            return nncc_fail(NNCC_ERR_SHAPE,
                             "%s: perm[%d] = %d: the permutation must list each axis 0 … %d of "
                             "input %s once",
                             LABEL(n), i, p, x.rank - 1, SHAPE(x, s0));
        seen[p] = true;
    }
    if (batched_in(n, 0) && n->a.perm[0] != 0)
        return nncc_fail(NNCC_ERR_SHAPE,
                         "%s: perm[0] = %d would move the batch axis of input %s (it must stay "
                         "axis 0)",
                         LABEL(n), n->a.perm[0], SHAPE(x, s0));
    *out = x;
    for (int i = 0; i < x.rank; i++)
        out->dim[i] = x.dim[n->a.perm[i]];
    return NNCC_OK;
}

/* One axis of a strided slice (ONNX Slice after the importer clamped it):
 * index begin + k·step for k = 0 … count−1.
 *   step > 0: 0 <= begin <= D, begin <= end, end <= D or end == INT64_MAX
 *             ("to the end"); count = ⌈(end − begin)/step⌉.
 *   step < 0: begin is the first index taken, 0 <= begin <= D − 1;
 *             end is exclusive, −1 <= end <= begin (−1: down to index 0
 *             inclusive); count = ⌈(begin − end)/|step|⌉.
 * The batch axis of a batched input must be begin 0, step 1, end
 * INT64_MAX.  An empty result (count 0) is refused: nncc has no empty
 * tensors.  Returns the count, or -1 with the reason in why. */
static int64_t slice_count(int64_t D, int64_t b, int64_t e, int64_t s, const char **why)
{
    if (s == 0) {
        *why = "step 0";
        return -1;
    }
    /* |step| and the distance in uint64_t: any int64_t step, no overflow. */
    uint64_t m = s < 0 ? (uint64_t)0 - (uint64_t)s : (uint64_t)s, d;
    if (s > 0) {
        if (e == INT64_MAX)
            e = D;
        if (b < 0 || b > D || e < b || e > D) {
            *why = "with a positive step, 0 <= begin <= end <= size (or end INT64_MAX) is needed";
            return -1;
        }
        d = (uint64_t)(e - b);
    } else {
        if (b < 0 || b >= D || e < -1 || e > b) {
            *why = "with a negative step, 0 <= begin < size and -1 <= end <= begin are needed";
            return -1;
        }
        d = (uint64_t)(b - e);
    }
    return (int64_t)(d / m + (d % m != 0));
}

/* Checks a slice's attributes against x and writes its output shape. */
static enum nncc_status slice_shape(struct ir_node *n, struct nncc_shape x, bool batched,
                                    struct nncc_shape *out)
{
    DECL;
    const struct ir_attrs *a = &n->a;
    *out = x;
    for (int i = 0; i < x.rank; i++) {
        if (i == 0 && batched) {
            if (a->begin[0] != 0 || a->step[0] != 1 || a->end[0] != INT64_MAX)
                return nncc_fail(NNCC_ERR_SHAPE,
                                 "%s: the batch axis of input %s cannot be sliced (begin %lld, "
                                 "end %lld, step %lld; it needs begin 0, end INT64_MAX, step 1)",
                                 LABEL(n), SHAPE(x, s0), (long long)a->begin[0],
                                 (long long)a->end[0], (long long)a->step[0]);
            continue;
        }
        const char *why = "";
        int64_t c = slice_count(x.dim[i], a->begin[i], a->end[i], a->step[i], &why);
        if (c <= 0)
            return nncc_fail(NNCC_ERR_SHAPE,
                             "%s: axis %d of input %s: begin %lld, end %lld, step %lld %s", LABEL(n),
                             i, SHAPE(x, s0), (long long)a->begin[i], (long long)a->end[i],
                             (long long)a->step[i], c == 0 ? "selects nothing" : why);
        out->dim[i] = c;
    }
    return NNCC_OK;
}

/* STRIDED_SLICE: y[k…] = x[begin + k·step …] per axis (see slice_count). */
RULE(shape_strided_slice) { return slice_shape(n, n->in[0]->shape, batched_in(n, 0), out); }

/* STRIDED_SLICE_GRAD (dy) → zeros shaped like the input (a.like) with dy
 * written back where the slice read. */
RULE(shape_strided_slice_grad)
{
    DECL;
    struct nncc_shape want;
    if (slice_shape(n, n->a.like, batched_in(n, 0), &want))
        return NNCC_ERR_SHAPE;
    if (!ir_shape_eq(want, n->in[0]->shape))
        return nncc_fail(NNCC_ERR_GRAPH, "%s: gradient %s does not match the slice's output %s",
                         LABEL(n), SHAPE(n->in[0]->shape, s0), SHAPE(want, s1));
    *out = n->a.like;
    return NNCC_OK;
}

/* PAD (constant mode): pad_begin[i] and pad_end[i] cells of pad_value
 * before and after axis i; both >= 0 (the importer turns negative ONNX
 * pads into a strided slice); a batched input needs 0 on axis 0. */
RULE(shape_pad)
{
    DECL;
    struct nncc_shape x = n->in[0]->shape;
    *out = x;
    for (int i = 0; i < x.rank; i++) {
        int64_t pb = n->a.pad_begin[i], pe = n->a.pad_end[i];
        if (pb < 0 || pe < 0 || pb > (1LL << 40) || pe > (1LL << 40))
            return nncc_fail(NNCC_ERR_SHAPE, "%s: pads %lld, %lld of axis %d of input %s must be "
                             ">= 0 (and sane)",
                             LABEL(n), (long long)pb, (long long)pe, i, SHAPE(x, s0));
        if (i == 0 && batched_in(n, 0)) {
            if (pb || pe)
                return nncc_fail(NNCC_ERR_SHAPE,
                                 "%s: the batch axis of input %s cannot be padded (pads %lld, %lld)",
                                 LABEL(n), SHAPE(x, s0), (long long)pb, (long long)pe);
            continue;
        }
        out->dim[i] = x.dim[i] + pb + pe;
    }
    return NNCC_OK;
}

/* REDUCE: a.reduce (enum ir_reduce) over the axes in a.reduce_axes (bit i:
 * axis i of the full shape; at least one, all < rank).  With keepdims the
 * reduced axes stay with size 1 (as GLOBAL_AVGPOOL2D's keepdims); without,
 * they go, and reducing every axis gives shape (1) (nncc has no rank 0).
 * The batch axis of a batched input cannot be reduced. */
static enum nncc_status reduce_shape(struct ir_node *n, struct nncc_shape x, bool batched,
                                     struct nncc_shape *out)
{
    DECL;
    uint32_t m = n->a.reduce_axes;
    if (n->a.reduce < IR_REDUCE_SUM || n->a.reduce > IR_REDUCE_PROD)
        return nncc_fail(NNCC_ERR_GRAPH, "%s: unknown reduction %d", LABEL(n), n->a.reduce);
    if (m == 0 || (x.rank < 32 && (m >> x.rank) != 0))
        return nncc_fail(NNCC_ERR_SHAPE, "%s: reduce axes mask 0x%x does not fit input %s (it "
                         "needs at least one axis below the rank)",
                         LABEL(n), (unsigned)m, SHAPE(x, s0));
    if (batched && (m & 1u))
        return nncc_fail(NNCC_ERR_SHAPE, "%s: cannot reduce the batch axis of input %s", LABEL(n),
                         SHAPE(x, s0));
    *out = (struct nncc_shape){.rank = 0};
    for (int i = 0; i < x.rank; i++) {
        if (!(m >> i & 1u))
            out->dim[out->rank++] = x.dim[i];
        else if (n->a.keepdims)
            out->dim[out->rank++] = 1;
    }
    if (out->rank == 0)
        *out = (struct nncc_shape){.rank = 1, .dim = {1}};
    return NNCC_OK;
}

RULE(shape_reduce) { return reduce_shape(n, n->in[0]->shape, batched_in(n, 0), out); }

/* REDUCE_GRAD (dy, x, y) → dx shaped like x: SUM dy broadcast; MEAN dy /
 * count; MAX, MIN dy shared equally among the cells equal to y (ties split,
 * as TensorFlow).  PROD has no gradient. */
RULE(shape_reduce_grad)
{
    DECL;
    struct nncc_shape want;
    if (reduce_shape(n, n->in[1]->shape, batched_in(n, 1), &want))
        return NNCC_ERR_SHAPE;
    if (!ir_shape_eq(want, n->in[0]->shape) || !ir_shape_eq(want, n->in[2]->shape))
        return nncc_fail(NNCC_ERR_GRAPH, "%s: gradient %s or output %s does not match %s",
                         LABEL(n), SHAPE(n->in[0]->shape, s0), SHAPE(n->in[2]->shape, s1),
                         ir_op(n->op)->name);
    *out = n->in[1]->shape;
    return NNCC_OK;
}

/* GATHER (data, indices), ONNX Gather along a.axis (negative: from the
 * end; normalised): y = data[:axis] + indices.shape + data[axis+1:].
 * Indices are floats holding integers (exact up to 2^24), truncated toward
 * zero; a negative index i means i + size; one outside [−size, size)
 * gives zeros in generated code (never a read out of bounds) and NaN in
 * the oracle, so tests see it.  Batches: data unbatched and indices
 * batched with axis 0 (an embedding: (V, d) by (N, L) → (N, L, d)); data
 * batched and indices unbatched with axis >= 1; or neither batched. */
RULE(shape_gather)
{
    DECL;
    struct nncc_shape x = n->in[0]->shape, ix = n->in[1]->shape;
    int axis = n->a.axis < 0 ? x.rank + n->a.axis : n->a.axis;
    if (axis < 0 || axis >= x.rank)
        return nncc_fail(NNCC_ERR_SHAPE, "%s: axis %d is out of range for data %s", LABEL(n),
                         n->a.axis, SHAPE(x, s0));
    n->a.axis = axis;
    bool bx = batched_in(n, 0), bi = batched_in(n, 1);
    if (bx && bi)
        return nncc_fail(NNCC_ERR_SHAPE,
                         "%s: data %s and indices %s cannot both have a batch dimension",
                         LABEL(n), SHAPE(x, s0), SHAPE(ix, s1));
    if (bx && axis == 0)
        return nncc_fail(NNCC_ERR_SHAPE, "%s: cannot gather along the batch axis of data %s",
                         LABEL(n), SHAPE(x, s0));
    if (bi && axis != 0)
        return nncc_fail(NNCC_ERR_SHAPE,
                         "%s: batched indices %s need axis 0 (got %d), so that the batch stays "
                         "the output's axis 0; data %s",
                         LABEL(n), SHAPE(ix, s1), axis, SHAPE(x, s0));
    if (ix.rank < 1 || x.rank + ix.rank - 1 > NNCC_MAX_RANK)
        return nncc_fail(NNCC_ERR_SHAPE, "%s: data %s gathered by indices %s would have rank %d "
                         "(1 … %d allowed)",
                         LABEL(n), SHAPE(x, s0), SHAPE(ix, s1), x.rank + ix.rank - 1,
                         NNCC_MAX_RANK);
    out->rank = 0;
    for (int i = 0; i < axis; i++)
        out->dim[out->rank++] = x.dim[i];
    for (int i = 0; i < ix.rank; i++)
        out->dim[out->rank++] = ix.dim[i];
    for (int i = axis + 1; i < x.rank; i++)
        out->dim[out->rank++] = x.dim[i];
    return NNCC_OK;
}

/* GATHER_GRAD, GATHER_GRAD_PARAM (dy, indices) → zeros like the data
 * (a.like) with every row of dy added at its index (duplicates
 * accumulate).  GATHER_GRAD_PARAM is the embedding case (batched indices,
 * unbatched data): the sum over the batch. */
RULE(shape_gather_grad)
{
    DECL;
    char s2[160];
    struct nncc_shape x = n->a.like, ix = n->in[1]->shape, dy = n->in[0]->shape;
    int axis = n->a.axis;
    bool ok = axis >= 0 && axis < x.rank && dy.rank == x.rank + ix.rank - 1;
    for (int i = 0; ok && i < dy.rank; i++) {
        int64_t want = i < axis ? x.dim[i] : i < axis + ix.rank ? ix.dim[i - axis]
                                                                : x.dim[i - ix.rank + 1];
        ok = want == dy.dim[i];
    }
    if (!ok)
        return nncc_fail(NNCC_ERR_GRAPH, "%s: gradient %s does not fit data %s, indices %s, axis %d",
                         LABEL(n), SHAPE(dy, s0), SHAPE(x, s1), SHAPE(ix, s2), axis);
    *out = x;
    return NNCC_OK;
}

/* ---- Matrix products (family h4-matmul) -------------------------------- */

/* The product of BATCH_MATMUL and BATCH_MATMUL_SUM: op(a) (…, M, K) ·
 * op(b) (…, K, P) → (…, M, P), op swapping the last two axes where
 * a.trans_a (a.trans_b) is set; the leading axes align from the right and
 * broadcast as numpy's (a missing axis or a 1 takes the other's size).
 * Batch: a batched operand's dim 0 is the batch, known only at run time,
 * so it must stay the product's dim 0: the operand has the product's rank,
 * and an unbatched operand of that rank has 1 there (it broadcasts over the
 * batch).  A batched operand of rank 2 has its batch on a matrix axis: it
 * may be a's rows (not transposed: the product's rows are the batch, as in
 * a dense layer), and, with `sum` (BATCH_MATMUL_SUM, whose output has no
 * batch), the contracted axis of both operands (a weight's gradient summed
 * over the batch).  Every other dimension must be known. */
static enum nncc_status matmul_product(struct ir_node *n, bool sum, struct nncc_shape *out)
{
    DECL;
    const nncc_tensor *A = n->in[0], *B = n->in[1];
    struct nncc_shape a = A->shape, b = B->shape;
    bool ta = n->a.trans_a, tb = n->a.trans_b;
    if (a.rank < 2 || b.rank < 2)
        return nncc_fail(NNCC_ERR_SHAPE,
                         "%s: a matrix product needs operands of rank >= 2, got %s and %s",
                         LABEL(n), SHAPE(a, s0), SHAPE(b, s1));
    for (int k = 0; k < 2; k++) {
        const nncc_tensor *X = n->in[k];
        for (int i = X->batched ? 1 : 0; i < X->shape.rank; i++)
            if (X->shape.dim[i] < 1)
                return nncc_fail(NNCC_ERR_SHAPE,
                                 "%s: operand %d %s needs known, non-zero dimensions (only a "
                                 "batched operand's first one is open)",
                                 LABEL(n), k, SHAPE(X->shape, s0));
    }
    int ro = a.rank > b.rank ? a.rank : b.rank;
    bool a_contract = A->batched && a.rank == 2 && ta, b_contract = B->batched && b.rank == 2 && !tb;
    if (a_contract || b_contract) {
        if (!sum || !a_contract || !b_contract)
            return nncc_fail(NNCC_ERR_SHAPE,
                             "%s: the product of %s%s and %s%s would contract the batch axis; "
                             "a batched operand of rank 2 can only give the product's rows "
                             "(the first operand, not transposed)",
                             LABEL(n), SHAPE(a, s0), ta ? "^T" : "", SHAPE(b, s1),
                             tb ? "^T" : "");
    } else if (B->batched && b.rank == 2) {
        return nncc_fail(NNCC_ERR_SHAPE,
                         "%s: the product of %s%s and %s^T would make the batch axis its "
                         "columns; a batched operand of rank 2 can only give the product's "
                         "rows (the first operand, not transposed)",
                         LABEL(n), SHAPE(a, s0), ta ? "^T" : "", SHAPE(b, s1));
    }
    for (int k = 0; k < 2; k++) {
        const nncc_tensor *X = n->in[k], *Y = n->in[1 - k];
        if (X->batched && X->shape.rank != ro)
            return nncc_fail(NNCC_ERR_SHAPE,
                             "%s: operand %d %s is batched but has fewer axes than operand %d "
                             "%s: its batch axis would not stay the product's first axis",
                             LABEL(n), k, SHAPE(X->shape, s0), 1 - k, SHAPE(Y->shape, s1));
        if (X->batched && ro > 2 && !Y->batched && Y->shape.rank == ro && Y->shape.dim[0] != 1)
            return nncc_fail(NNCC_ERR_SHAPE,
                             "%s: operand %d %s has no batch axis and as many axes as the "
                             "batched operand %d %s: its first dimension must be 1 (it "
                             "broadcasts over the batch), got %lld",
                             LABEL(n), 1 - k, SHAPE(Y->shape, s0), k, SHAPE(X->shape, s1),
                             (long long)Y->shape.dim[0]);
    }
    int64_t M = a.dim[a.rank - (ta ? 1 : 2)], Ka = a.dim[a.rank - (ta ? 2 : 1)];
    int64_t Kb = b.dim[b.rank - (tb ? 1 : 2)], P = b.dim[b.rank - (tb ? 2 : 1)];
    if (Ka != Kb)
        return nncc_fail(NNCC_ERR_SHAPE,
                         "%s: cannot multiply %s%s by %s%s: the inner dimensions differ (%lld "
                         "and %lld)",
                         LABEL(n), SHAPE(a, s0), ta ? "^T" : "", SHAPE(b, s1), tb ? "^T" : "",
                         (long long)Ka, (long long)Kb);
    *out = (struct nncc_shape){.rank = ro};
    for (int i = 0; i < ro - 2; i++) {
        int ia = i - (ro - a.rank), ib = i - (ro - b.rank);
        int64_t da = ia >= 0 ? a.dim[ia] : 1, db = ib >= 0 ? b.dim[ib] : 1;
        if (i == 0 && A->batched && B->batched) { /* two batches: the same at run time */
            out->dim[0] = da >= 0 ? da : db;
            continue;
        }
        if (da != db && da != 1 && db != 1)
            return nncc_fail(NNCC_ERR_SHAPE,
                             "%s: the leading axes of %s and %s do not broadcast (%lld and "
                             "%lld)",
                             LABEL(n), SHAPE(a, s0), SHAPE(b, s1), (long long)da, (long long)db);
        out->dim[i] = da == 1 ? db : da;
    }
    out->dim[ro - 2] = M;
    out->dim[ro - 1] = P;
    return NNCC_OK;
}

/* BATCH_MATMUL(a, b): the product (above). */
RULE(shape_batch_matmul) { return matmul_product(n, false, out); }

/* BATCH_MATMUL_SUM(a, b): the product summed to a.like, which has no batch:
 * its last two dims are the product's, and its leading ones (aligned from
 * the right) each equal the product's or are 1, where it sums (the batch
 * axis always sums). */
RULE(shape_batch_matmul_sum)
{
    DECL;
    struct nncc_shape p, l = n->a.like;
    if (matmul_product(n, true, &p))
        return NNCC_ERR_SHAPE;
    bool ok = l.rank >= 2 && l.rank <= p.rank;
    for (int i = 0; ok && i < l.rank; i++) {
        int64_t d = l.dim[i], pd = p.dim[i + p.rank - l.rank];
        ok = d >= 1 && (d == pd || (d == 1 && i < l.rank - 2));
    }
    if (!ok)
        return nncc_fail(NNCC_ERR_SHAPE, "%s: cannot sum the product %s to the shape %s",
                         LABEL(n), SHAPE(p, s0), SHAPE(l, s1));
    *out = l;
    return NNCC_OK;
}
