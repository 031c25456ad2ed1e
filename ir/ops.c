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

/* SOFTMAX over the last axis; Keras 2 rejects rank 1. */
RULE(shape_softmax)
{
    DECL;
    struct nncc_shape x = n->in[0]->shape;
    if (x.rank < 2)
        return nncc_fail(NNCC_ERR_SHAPE, "%s: softmax needs an input of rank >= 2, got %s",
                         LABEL(n), SHAPE(x, s0));
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
