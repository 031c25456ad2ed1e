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

static enum nncc_status spatial(struct ir_node *n, const char *what, int kh, int kw,
                                struct nncc_shape *out)
{
    DECL;
    struct nncc_shape x = n->in[0]->shape;
    struct ir_attrs *a = &n->a;
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

/* CONV2D: x (N, H, W, C) ⋆ w (kh, kw, C, F) → (N, H', W', F). */
RULE(shape_conv2d)
{
    DECL;
    if (need_rank(n, 0, 4, "(batch, height, width, channels)"))
        return NNCC_ERR_SHAPE;
    struct nncc_shape x = n->in[0]->shape, w = n->in[1]->shape;
    NNCC_ASSERT(w.rank == 4);
    if (x.dim[3] != w.dim[2])
        return nncc_fail(NNCC_ERR_SHAPE,
                         "%s: expects %lld input channels (its kernel is %s), got input %s",
                         LABEL(n), (long long)w.dim[2], SHAPE(w, s1), SHAPE(x, s0));
    n->a.kernel[0] = (int)w.dim[0];
    n->a.kernel[1] = (int)w.dim[1];
    if (spatial(n, "kernel", (int)w.dim[0], (int)w.dim[1], out))
        return NNCC_ERR_SHAPE;
    out->dim[3] = w.dim[3];
    return NNCC_OK;
}

/* MAXPOOL2D, AVGPOOL2D: window a.kernel, a.stride, a.padding. */
RULE(shape_pool2d)
{
    if (need_rank(n, 0, 4, "(batch, height, width, channels)"))
        return NNCC_ERR_SHAPE;
    n->a.dilation[0] = n->a.dilation[1] = 1;
    return spatial(n, "pooling window", n->a.kernel[0], n->a.kernel[1], out);
}

/* GLOBAL_AVGPOOL2D: (N, H, W, C) → (N, C), or (N, 1, 1, C) with keepdims. */
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
